import { expect, type Page } from "@playwright/test";

/**
 * Collects console errors and uncaught exceptions for the whole test. A 4xx
 * answer logs a console error too; where the page shows such answers by
 * design (a refused form, a 429 in the playground), pass `allow4xx`.
 */
export function watchErrors(page: Page, { allow4xx = false } = {}): string[] {
  const errors: string[] = [];
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    if (allow4xx && /status of 4\d\d/.test(msg.text())) return;
    errors.push(msg.text());
  });
  page.on("pageerror", (err) => errors.push(err.message));
  return errors;
}

/** A suffix that makes an email address new to the shared test database. */
export const unique = () => `${Date.now()}-${Math.floor(Math.random() * 1e6)}`;

/**
 * Registers `who`-<unique>@example.com on the default Starter plan (2
 * requests a minute) and returns the primary key /welcome shows once.
 */
export async function register(page: Page, who: string): Promise<string> {
  await page.goto("/register");
  await page.getByLabel("Email").fill(`${who}-${unique()}@example.com`);
  await page.getByLabel("Display name").fill(`E2E ${who}`);
  await page.getByLabel("Password").fill(`${who}-long-passphrase-5`);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(/\/welcome$/);
  return ((await page.getByTestId("primary-key").textContent()) ?? "").trim();
}
