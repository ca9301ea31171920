import { expect, test } from "@playwright/test";
import { watchErrors } from "./support";

test("home page loads, hydrates and logs no errors", async ({ page }) => {
  const errors = watchErrors(page);
  await page.goto("/");
  await expect(page).toHaveTitle("Tollgate");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(
    "One gateway in front of your language models",
  );
  await expect(page.getByRole("navigation", { name: "Main" })).toBeVisible();
  await expect(page.getByTestId("status")).toContainText("Ready");

  // The code-sample tabs only respond once the wasm bundle has hydrated the page.
  const code = page.getByTestId("sample-code");
  await expect(code).toContainText("curl ");
  await page.getByRole("tab", { name: "Python" }).click();
  await expect(code).toContainText("from openai import OpenAI");
  await expect(page.getByRole("tab", { name: "Python" })).toHaveAttribute("aria-selected", "true");
  await page.getByRole("tab", { name: "JavaScript" }).click();
  await expect(code).toContainText('import OpenAI from "openai"');

  // Styles from Tailwind were built and served.
  const navBackground = await page
    .locator("header")
    .evaluate((el) => getComputedStyle(el).backgroundColor);
  expect(navBackground).not.toBe("rgba(0, 0, 0, 0)");

  expect(errors).toEqual([]);
});

test("the status check can be run again from the page", async ({ page }) => {
  const errors = watchErrors(page);
  await page.goto("/");
  await expect(page.getByTestId("status")).toContainText("Ready");
  const statusCall = page.waitForResponse((r) => r.url().endsWith("/api/status") && r.status() === 200);
  await page.getByRole("button", { name: "Check again" }).click();
  await statusCall;
  await expect(page.getByTestId("status")).toContainText("Ready");
  expect(errors).toEqual([]);
});

test("unknown pages show a friendly 404 that leads home", async ({ page }) => {
  const response = await page.goto("/no/such/page");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("This page does not exist");
  await page.getByRole("link", { name: "Back to the home page" }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(
    "One gateway in front of your language models",
  );
});
