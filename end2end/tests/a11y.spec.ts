import AxeBuilder from "@axe-core/playwright";
import { expect, test, type Page } from "@playwright/test";
import { hydrated, logInAsAdmin, watchErrors } from "./support";

// Every page, as a visitor and as an admin: no serious or critical WCAG 2.2
// A/AA findings from axe, and nothing wider than a 320 px screen (WCAG
// 1.4.10: content reflows, only a table may scroll inside its own box).

const PUBLIC = ["/", "/login", "/register", "/docs", "/no-such-page"];
const SIGNED_IN = [
  "/account",
  "/keys",
  "/plans",
  "/usage",
  "/playground",
  "/admin",
  "/admin/plans",
  "/admin/monitor",
  "/admin/security",
  "/admin/audit",
  "/admin/users/1",
];

async function serious(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page })
    .withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"])
    .analyze();
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

async function check(page: Page, path: string) {
  await page.goto(path);
  await hydrated(page);
  await checkAsShown(page, path);
}

/** The checks of `check`, on the page as it is now (`path` names it). */
async function checkAsShown(page: Page, path: string) {
  expect(await serious(page), path).toEqual([]);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(width, `${path} is ${width} px wide`).toBeLessThanOrEqual(320);
  // A box that scrolls sideways must take the focus itself, so a keyboard
  // can scroll it (axe accepts a box with a link inside, which a keyboard
  // user reaches only column by column).
  const unreachable = await page.evaluate(() =>
    [...document.querySelectorAll<HTMLElement>("body *")]
      .filter((e) => {
        const overflow = getComputedStyle(e).overflowX;
        return (overflow === "auto" || overflow === "scroll") && e.scrollWidth > e.clientWidth + 1 && e.tabIndex < 0;
      })
      .map((e) => e.outerHTML.slice(0, 100)),
  );
  expect(unreachable, `${path}: boxes that scroll without taking the focus`).toEqual([]);
}

test.use({ viewport: { width: 320, height: 800 } });

test("public pages pass axe and fit a 320 px screen", async ({ page }) => {
  const errors = watchErrors(page, { allow4xx: true });
  for (const path of PUBLIC) await check(page, path);
  expect(errors).toEqual([]);
});

test("signed-in and admin pages pass axe and fit a 320 px screen", async ({ page }) => {
  test.setTimeout(90_000);
  const errors = watchErrors(page, { allow4xx: true });
  await logInAsAdmin(page);
  for (const path of SIGNED_IN) await check(page, path);
  // A question asked in the page, open, on a phone.
  await page.getByRole("button", { name: "Rotate all keys" }).click();
  await expect(page.getByRole("alertdialog", { name: "Confirm: Rotate all keys" })).toBeVisible();
  await checkAsShown(page, "/admin/users/1 asking to rotate");
  // A key's settings open for editing, on a phone.
  await check(page, "/keys");
  await page.getByLabel("Name").fill(`a11y-${Date.now()}`);
  await page.getByRole("button", { name: "Create key" }).click();
  await page.getByRole("button", { name: "I have saved it" }).click();
  await page.getByRole("button", { name: /^Edit a11y-/ }).first().click();
  await expect(page.getByRole("button", { name: "Save changes" })).toBeVisible();
  await checkAsShown(page, "/keys editing a key");
  expect(errors).toEqual([]);
});

test("a page changed in place takes focus to its content, and the skip link reaches it", async ({ page }) => {
  await logInAsAdmin(page);
  await hydrated(page);
  // The nav's links are in the menu on a phone; a wide screen shows them.
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.getByRole("navigation").first().getByRole("link", { name: "Usage" }).click();
  await expect(page).toHaveURL(/\/usage$/);
  await expect(page.locator("main")).toBeFocused();

  const skip = page.getByRole("link", { name: "Skip to content" });
  await page.goto("/keys");
  await hydrated(page);
  await page.keyboard.press("Tab");
  await expect(skip).toBeFocused();
  await page.keyboard.press("Enter");
  await expect(page.locator("main")).toBeFocused();
});

test("the main menu names an admin page's section, and its tab the page", async ({ page }) => {
  await logInAsAdmin(page);
  await page.goto("/admin/plans");
  await hydrated(page);
  const menu = page.getByRole("navigation", { name: "Main" });
  const tabs = page.getByRole("navigation", { name: "Admin" });
  await expect(menu.getByRole("link", { name: "Admin", exact: true })).toHaveAttribute("aria-current", "true");
  await expect(tabs.getByRole("link", { name: "Plans" })).toHaveAttribute("aria-current", "page");
  await expect(tabs.getByRole("link", { name: "Users" })).not.toHaveAttribute("aria-current", /.*/);
  await expect(menu.locator("[aria-current=page]")).toHaveCount(0);
  // Followed in the app, the menu follows: the users list is the Admin link's own page.
  await tabs.getByRole("link", { name: "Users" }).click();
  await expect(page).toHaveURL(/\/admin$/);
  await expect(menu.getByRole("link", { name: "Admin", exact: true })).toHaveAttribute("aria-current", "page");
  await expect(tabs.getByRole("link", { name: "Users" })).toHaveAttribute("aria-current", "page");
});
