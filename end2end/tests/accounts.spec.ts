import { expect, test, type Page } from "@playwright/test";
import { logInAsAdmin, unique, watchErrors } from "./support";

const nav = (page: Page) => page.getByRole("navigation", { name: "Main" });

test("register, log out, log in, change the password, log in again, delete the account", async ({ page }) => {
  const errors = watchErrors(page, { allow4xx: true });
  const email = `e2e-${unique()}@example.com`;
  const first = "first-long-passphrase-9";
  const second = "second-long-passphrase-7";

  // Register; a common password is refused inline first, and typed values stay.
  await page.goto("/register");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Display name").fill("Playwright Person");
  await page.getByLabel("Password").fill("password123");
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByText("commonly used passwords")).toBeVisible();
  await expect(page.getByLabel("Email")).toHaveValue(email);
  await page.getByLabel("Password").fill(first);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(/\/welcome$/);
  await expect(page.getByTestId("primary-key")).toContainText("tg_live_");
  // The one showing of the key has a Copy button, as new keys do.
  const primary = ((await page.getByTestId("primary-key").textContent()) ?? "").trim();
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"]);
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  await page.getByRole("button", { name: "Copy" }).click();
  await expect(page.getByRole("button", { name: "Copied" })).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(primary);
  await page.goto("/account");
  await expect(page.getByTestId("account-email")).toHaveText(email);
  await expect(nav(page)).toContainText("Playwright Person");

  // Renaming updates the nav and says so, and the confirmation stays.
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  await page.getByRole("textbox", { name: "Display name" }).fill("Renamed Person");
  await page.getByRole("button", { name: "Save name" }).click();
  await expect(nav(page)).toContainText("Renamed Person");
  // The name form's live region (the password form has its own).
  const saved = page.getByRole("status").first();
  await expect(saved).toHaveText("Saved.");
  await page.waitForTimeout(500);
  await expect(saved).toHaveText("Saved.");
  // The form was built again with the new name; the focus is back on its button.
  await expect(page.getByRole("button", { name: "Save name" })).toBeFocused();

  // Log out from the nav bar.
  await nav(page).getByRole("button", { name: "Log out" }).click();
  await expect(nav(page).getByRole("link", { name: "Log in" })).toBeVisible();

  // A wrong password gets the generic message; the right one signs in.
  await nav(page).getByRole("link", { name: "Log in" }).click();
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill("not-the-password-1");
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.getByRole("alert")).toHaveText("Invalid email or password.");
  await page.getByLabel("Password").fill(first);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page).toHaveURL(/\/account$/);

  // Change the password.
  await page.getByLabel("Current password").fill(first);
  await page.getByLabel("New password").fill(second);
  await page.getByRole("button", { name: "Change password" }).click();
  await expect(page.getByText("Password changed.")).toBeVisible();
  // Passwords do not stay on the page once the form has answered.
  await expect(page.getByLabel("Current password")).toHaveValue("");
  await expect(page.getByLabel("New password")).toHaveValue("");

  // Log out and back in with the new password; the old one no longer works.
  await nav(page).getByRole("button", { name: "Log out" }).click();
  await page.goto("/login");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(first);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.getByRole("alert")).toHaveText("Invalid email or password.");
  await page.getByLabel("Password").fill(second);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page).toHaveURL(/\/account$/);

  // Delete the account.
  await page.getByLabel("Your password, to confirm").fill(second);
  await page.getByRole("button", { name: "Delete my account" }).click();
  await expect(page).toHaveURL(/\/\?account=deleted$/);
  await expect(page.getByRole("status")).toContainText("Your account was deleted");
  await expect(nav(page).getByRole("link", { name: "Log in" })).toBeVisible();

  // It is gone: logging in fails.
  await page.goto("/login");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(second);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.getByRole("alert")).toHaveText("Invalid email or password.");

  expect(errors).toEqual([]);
});

test("what is typed before the page's code loads survives hydration", async ({ page }) => {
  const errors = watchErrors(page, { allow4xx: true });
  // Hold the wasm bundle back, as a slow connection would, while typing.
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route("**/*.wasm", async (route) => {
    await held;
    await route.continue();
  });
  await page.goto("/register");
  await page.getByLabel("Email").fill("early@example.com");
  await page.getByLabel("Display name").fill("Early Typist");
  await page.getByLabel("Password").fill("typed-before-hydration-1");
  await expect(page.locator("html[data-hydrated]")).toHaveCount(0);
  release();
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  await expect(page.getByLabel("Email")).toHaveValue("early@example.com");
  await expect(page.getByLabel("Display name")).toHaveValue("Early Typist");
  await expect(page.getByLabel("Password")).toHaveValue("typed-before-hydration-1");
  expect(errors).toEqual([]);
});

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("the register form posts plainly and shows errors inline", async ({ page }) => {
    const email = `nojs-${unique()}@example.com`;
    await page.goto("/register");
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Display name").fill("No Script");
    await page.getByLabel("Password").fill("short");
    await page.getByRole("button", { name: "Create account" }).click();
    await expect(page.getByText("Use at least 8 characters.")).toBeVisible();
    await expect(page.getByLabel("Email")).toHaveValue(email);
    await expect(page.getByLabel("Display name")).toHaveValue("No Script");
    await expect(page.getByLabel("Password")).toHaveValue("");

    await page.getByLabel("Password").fill("plain-form-passphrase-3");
    await page.getByRole("button", { name: "Create account" }).click();
    await expect(page).toHaveURL(/\/welcome$/);
    await expect(page.getByTestId("primary-key")).toContainText("tg_live_");

    // A form that succeeds says so, as it does with JavaScript.
    await page.goto("/account");
    const renamed = page.locator("#account-name");
    await expect(renamed.getByText("Saved.")).toHaveCount(0);
    await renamed.getByLabel("Display name").fill("Plain Poster");
    await renamed.getByRole("button", { name: "Save name" }).click();
    await expect(page.getByTestId("account-name")).toHaveText("Plain Poster");
    await expect(renamed.getByText("Saved.")).toBeVisible();
    const password = page.locator("#account-password");
    await password.getByLabel("Current password").fill("plain-form-passphrase-3");
    await password.getByLabel("New password").fill("plain-form-passphrase-4");
    await password.getByRole("button", { name: "Change password" }).click();
    await expect(password.getByText("Password changed. Other sessions have been signed out.")).toBeVisible();
    await expect(renamed.getByText("Saved.")).toHaveCount(0);

    // So does an admin's: the credits a correction added, and its message.
    await page.getByRole("button", { name: "Log out" }).click();
    await logInAsAdmin(page);
    await page.goto(`/admin?q=${encodeURIComponent(email)}`);
    await page.getByRole("link", { name: email }).click();
    await expect(page).toHaveURL(/\/admin\/users\/\d+$/);
    await page.getByLabel("Amount (credits; negative to deduct)").fill("5");
    await page.getByLabel("Reason").fill("posted plainly");
    await page.getByRole("button", { name: "Apply" }).click();
    await expect(page.getByRole("status")).toHaveText("Credits adjusted.");
    await expect(page.getByTestId("admin-user-balance")).toHaveText("15 credits");
    await page.getByLabel("Requests a minute").fill("4");
    await page.getByRole("button", { name: "Save limits" }).click();
    await expect(page.getByRole("status")).toHaveText("Limits saved. They apply from the account's next request.");
    await expect(page.getByLabel("Requests a minute")).toHaveValue("4");
  });

  test("the usage page's export downloads without JavaScript", async ({ page }) => {
    await registerPlainly(page);
    await page.goto("/usage");
    const form = page.locator("#usage-export");
    await expect(form.getByLabel("To")).toHaveValue(new Date().toISOString().slice(0, 10));
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      form.getByRole("button", { name: "Download CSV" }).click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/^tollgate-usage-\d{4}-\d{2}-\d{2}-to-\d{4}-\d{2}-\d{2}\.csv$/);
  });

  test("a success message comes only from the site's own redirect", async ({ page }) => {
    // A link from elsewhere cannot make a page say a form succeeded.
    await registerPlainly(page);
    await page.goto("/account?done=name", { referer: "https://elsewhere.test/" });
    await expect(page.locator("#account-name").getByText("Saved.")).toHaveCount(0);
  });
});

async function registerPlainly(page: Page) {
  await page.goto("/register");
  await page.getByLabel("Email").fill(`nojs-${unique()}@example.com`);
  await page.getByLabel("Display name").fill("No Script");
  await page.getByLabel("Password").fill("plain-form-passphrase-5");
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(/\/welcome$/);
}
