import { expect, type Page } from "@playwright/test";

/**
 * Collects console errors, uncaught exceptions and Leptos' warnings of
 * untracked signal reads for the whole test. A 4xx
 * answer logs a console error too; where the page shows such answers by
 * design (a refused form, a 429 in the playground), pass `allow4xx`.
 */
export function watchErrors(page: Page, { allow4xx = false } = {}): string[] {
  const errors: string[] = [];
  page.on("console", (msg) => {
    // Debug builds warn of a signal read where nothing tracks it: a read
    // that should be untracked, or an update the page would miss.
    if (msg.type() === "warning" && /outside a reactive tracking context/.test(msg.text())) {
      errors.push(msg.text());
      return;
    }
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
  return (await registerAccount(page, who)).key;
}

/** {@link register}, with the account's email and password. */
export async function registerAccount(
  page: Page,
  who: string,
): Promise<{ key: string; email: string; password: string }> {
  const email = `${who}-${unique()}@example.com`;
  const password = `${who}-long-passphrase-5`;
  await page.goto("/register");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Display name").fill(`E2E ${who}`);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(/\/welcome$/);
  const key = ((await page.getByTestId("primary-key").textContent()) ?? "").trim();
  return { key, email, password };
}

/** Waits until the page's code has loaded and taken over the page. */
export async function hydrated(page: Page) {
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
}

/** Signs `page` in as the admin the browser tests' server was started with. */
export async function logInAsAdmin(page: Page) {
  await page.goto("/login");
  await page.getByLabel("Email").fill("root@example.com");
  await page.getByLabel("Password").fill("admin-passphrase-for-e2e");
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page).toHaveURL(/\/account$/);
}
