import { readFile } from "node:fs/promises";
import { expect, test, type Page } from "@playwright/test";
import { hydrated, logInAsAdmin, registerAccount, unique, watchErrors } from "./support";

// An admin grants credits and moves a user to another plan from the admin
// console; the user sees both on /usage and /plans.

/** Finds `email` on /admin and opens that account's page, hydrated. */
async function openAccount(admin: Page, email: string) {
  await admin.goto("/admin");
  await hydrated(admin);
  await admin.getByLabel("Search users").fill(email);
  await admin.getByRole("button", { name: "Search" }).click();
  await admin.getByRole("link", { name: email }).click();
  await expect(admin).toHaveURL(/\/admin\/users\/\d+$/);
  await hydrated(admin);
}

test("an admin grants credits and changes a user's plan; the user sees both", async ({ browser }) => {
  const email = `member-${unique()}@example.com`;

  // The user registers and looks at their usage: Starter, 10 credits.
  const userContext = await browser.newContext();
  const user = await userContext.newPage();
  const userErrors = watchErrors(user, { allow4xx: true });
  await user.goto("/register");
  await user.getByLabel("Email").fill(email);
  await user.getByLabel("Display name").fill("Member");
  await user.getByLabel("Password").fill("member-long-passphrase-7");
  await user.getByRole("button", { name: "Create account" }).click();
  await expect(user).toHaveURL(/\/welcome$/);
  await user.goto("/usage");
  await expect(user.getByTestId("usage-plan")).toHaveText("Starter");
  await expect(user.getByTestId("usage-balance")).toHaveText("10 credits");
  await expect(user.getByTestId("chart-requests")).toBeVisible();

  // The admin finds the user, adds 25 credits with a reason, and assigns Pro.
  const adminContext = await browser.newContext();
  const admin = await adminContext.newPage();
  const adminErrors = watchErrors(admin, { allow4xx: true });
  await logInAsAdmin(admin);
  // A search that finds no one says so, without an empty table under it.
  await admin.goto(`/admin?q=${encodeURIComponent(`nobody-${unique()}`)}`);
  await expect(admin.getByText("No users match.")).toBeVisible();
  await expect(admin.getByRole("table")).toHaveCount(0);
  await openAccount(admin, email);
  await expect(admin.getByTestId("admin-user-balance")).toHaveText("10 credits");
  // The account's calls download as the CSV the account gets itself.
  const [download] = await Promise.all([
    admin.waitForEvent("download"),
    admin.getByRole("link", { name: "Download 30 days as CSV" }).click(),
  ]);
  expect(download.suggestedFilename()).toMatch(/^tollgate-usage-user-\d+-\d{4}-\d{2}-\d{2}-to-\d{4}-\d{2}-\d{2}\.csv$/);
  expect((await readFile(await download.path(), "utf8")).trim()).toBe(
    "time_utc,request_id,key,key_last_four,model,stream,status,error_code,prompt_tokens,completion_tokens,total_tokens,cost_credits,cost_micros,latency_ms",
  );

  await admin.getByLabel("Amount (credits; negative to deduct)").fill("25");
  await admin.getByLabel("Reason").fill("welcome bonus");
  // Held on its way: Apply is off until it answers, so a double click cannot
  // send it twice (the form's own idempotency key covers a plain post).
  await admin.route("**/api/admin/user/credits", async (route) => {
    await new Promise((done) => setTimeout(done, 800));
    await route.continue();
  });
  await admin.getByRole("button", { name: "Apply" }).click();
  await expect(admin.getByRole("button", { name: "Apply" })).toBeDisabled({ timeout: 500 });
  await expect(admin.getByRole("status")).toHaveText("Credits adjusted.");
  await admin.unroute("**/api/admin/user/credits");
  await expect(admin.getByTestId("admin-user-balance")).toHaveText("35 credits");
  // The form empties once applied, so a second click cannot grant twice.
  await expect(admin.getByLabel("Amount (credits; negative to deduct)")).toHaveValue("");

  // A refused deduction is said beside its form until another action
  // succeeds; then it no longer reads as standing.
  await admin.getByLabel("Amount (credits; negative to deduct)").fill("-1000");
  await admin.getByLabel("Reason").fill("too much");
  await admin.getByRole("button", { name: "Apply" }).click();
  const refusal = admin.getByText("is more than the balance");
  await expect(refusal).toBeVisible();
  // Focus goes to the field the refusal is about, once the page has drawn
  // its data again.
  await expect(admin.getByLabel("Amount (credits; negative to deduct)")).toBeFocused();

  await admin.getByLabel("Move to plan").selectOption("pro");
  await admin.getByRole("button", { name: "Assign plan" }).click();
  await expect(admin.getByTestId("admin-user-plan")).toHaveText("Pro");
  await expect(refusal).toHaveCount(0);
  // The banner names the last action, not the first that succeeded.
  await expect(admin.getByRole("status")).toHaveText("Plan changed.");
  await expect(admin.getByTestId("audit-events")).toContainText("credits.adjust");
  await expect(admin.getByTestId("audit-events")).toContainText("plan.assign");

  // One key revoked from the user page, once the admin confirms in the page
  // (not with the browser's confirm(), which a browser told to stop the
  // page's dialogs answers no at once); the others would go on.
  const keyRow = admin.locator('[data-testid^="admin-key-"]').filter({ hasText: "Primary key" });
  await expect(keyRow).toContainText("active");
  const revokeButton = keyRow.getByRole("button", { name: "Revoke Primary key" });
  const ask = admin.getByRole("alertdialog", { name: "Confirm: Revoke Primary key" });
  await expect(ask).toHaveCount(0);
  // Cancel leaves it be; focus goes to Cancel, then back to the button.
  await revokeButton.click();
  // Its question is read with it (its description), not only its name.
  await expect(ask).toHaveAccessibleDescription(/Callers using it get 401 at once/);
  await expect(ask.getByRole("button", { name: "Cancel" })).toBeFocused();
  await ask.getByRole("button", { name: "Cancel" }).click();
  await expect(ask).toHaveCount(0);
  await expect(revokeButton).toBeFocused();
  await expect(keyRow).toContainText("active");
  await revokeButton.click();
  await ask.getByRole("button", { name: "Yes, revoke" }).click();
  await expect(admin.getByRole("status")).toHaveText("Key revoked.");
  await expect(keyRow).toContainText("revoked");
  // The button pressed is gone: focus goes to the keys' heading, not back
  // to the start of the page.
  await expect(admin.getByRole("heading", { name: "Keys" })).toBeFocused();
  await expect(keyRow.getByRole("button", { name: "Revoke" })).toHaveCount(0);
  await expect(admin.getByTestId("audit-events")).toContainText("key.revoke");

  // Rotating all keys of an account with none active says so, with no
  // empty list of new secrets.
  await admin.getByRole("button", { name: "Rotate all keys" }).click();
  await admin.getByRole("button", { name: "Yes, rotate all keys" }).click();
  await expect(admin.getByRole("status")).toHaveText("The account has no active keys: none was rotated.");
  await expect(admin.getByTestId("rotated-secrets")).toHaveCount(0);

  // Saved limits show as saved, the second time too (the fields are kept
  // when the page's data comes again, and used to show the values before).
  // A refused value gets the focus.
  const perMinute = admin.getByLabel("Requests a minute");
  await perMinute.fill("lots");
  await admin.getByRole("button", { name: "Save limits" }).click();
  await expect(perMinute).toHaveAttribute("aria-invalid", "true");
  await expect(perMinute).toBeFocused();
  // Each save is waited for (the status still says the first one's), and
  // its audit event comes with the page's data again.
  const limitEvents = admin.getByTestId("audit-events").getByRole("cell", { name: "limits.set", exact: true });
  for (const [i, value] of ["7", "9"].entries()) {
    await perMinute.fill(value);
    const saved = admin.waitForResponse((r) => r.url().endsWith("/api/admin/user/limits") && r.request().method() === "POST");
    await admin.getByRole("button", { name: "Save limits" }).click();
    expect((await saved).status()).toBe(200);
    await expect(limitEvents).toHaveCount(i + 1);
    await expect(admin.getByRole("status")).toHaveText("Limits saved. They apply from the account's next request.");
    await expect(perMinute).toHaveValue(value);
  }

  // The user sees the new balance and plan.
  await user.goto("/usage");
  await expect(user.getByTestId("usage-balance")).toHaveText("35 credits");
  await expect(user.getByTestId("usage-plan")).toHaveText("Pro");
  await user.goto("/plans");
  await expect(user.getByTestId("plan-pro")).toContainText("Current");
  await expect(user.getByTestId("plan-starter")).not.toContainText("Current");

  expect(userErrors).toEqual([]);
  expect(adminErrors).toEqual([]);
  await userContext.close();
  await adminContext.close();
});

test("an admin creates a plan, and the monitor refreshes itself after a call", async ({ page, baseURL }) => {
  test.setTimeout(60_000);
  const errors = watchErrors(page, { allow4xx: true });
  await logInAsAdmin(page);

  // A new plan from the form; a refused field is explained inline first.
  const slug = `team-${Math.floor(Math.random() * 1e6)}`;
  await page.goto("/admin/plans");
  await hydrated(page);
  await page.getByLabel("Id").fill(slug);
  await page.getByLabel("Name").fill("Team");
  await page.getByLabel("Requests a minute").fill("0");
  await page.getByRole("button", { name: "Create plan" }).click();
  await expect(page.locator("#field-requests_per_minute-error")).toContainText("whole number");
  await page.getByLabel("Requests a minute").fill("7");
  await page.getByRole("button", { name: "Create plan" }).click();
  await expect(page.getByRole("status")).toContainText(`Plan ${slug} created.`);
  await expect(page.getByTestId(`plan-${slug}`)).toContainText("7 / 50 / 100");

  // The monitor, then one call through the model API with a fresh key.
  await page.goto("/admin/monitor");
  await hydrated(page);
  const calls = page.getByTestId("monitor-requests");
  const before = Number(await calls.textContent());
  const created = await page.request.post("/api/v1/keys", {
    data: { name: `monitor-${slug}` },
    headers: { origin: baseURL! },
  });
  expect(created.status()).toBe(201);
  const key = (await created.json()).secret as string;
  const call = async () => {
    const answer = await page.request.post("/v1/chat/completions", {
      data: { model: "demo", messages: [{ role: "user", content: "hi" }], max_tokens: 8 },
      headers: { authorization: `Bearer ${key}` },
    });
    expect(answer.status()).toBe(200);
  };
  await call();
  // No reload: the page refreshes every 10 seconds.
  await expect(calls).toHaveText(String(before + 1), { timeout: 15_000 });
  // Paused, it holds still (WCAG 2.2.2); resumed, it catches up.
  await page.getByRole("button", { name: "Pause updates" }).click();
  await expect(page.getByRole("button", { name: "Resume updates" })).toHaveAttribute("aria-pressed", "true");
  await call();
  await page.waitForTimeout(11_000);
  await expect(calls).toHaveText(String(before + 1));
  await page.getByRole("button", { name: "Resume updates" }).click();
  await expect(calls).toHaveText(String(before + 2), { timeout: 15_000 });

  await page.goto("/admin/security");
  await expect(page.getByRole("heading", { name: "Security" })).toBeVisible();
  await expect(page.getByRole("heading", { name: "Failed sign-ins and reset links by address" })).toBeVisible();
  expect(errors).toEqual([]);
});

test("the monitor says so when its session ends in another tab, and comes back after signing in again", async ({ page, context }) => {
  test.setTimeout(60_000);
  const errors = watchErrors(page, { allow4xx: true });
  await logInAsAdmin(page);
  await page.goto("/admin/monitor");
  await hydrated(page);
  await expect(page.getByTestId("monitor-requests")).toBeVisible();

  const other = await context.newPage();
  await other.goto("/account");
  await hydrated(other);
  await other.getByRole("button", { name: "Log out" }).click();
  await expect(other.getByRole("link", { name: "Log in" }).first()).toBeVisible();

  // The next refresh, within 10 seconds, is refused: the figures give way to
  // the reason and a way back.
  const alert = page.getByRole("alert");
  await expect(alert).toContainText("Your session has ended", { timeout: 15_000 });
  await expect(page.getByTestId("monitor-requests")).toHaveCount(0);
  await expect(alert.getByRole("link", { name: "Log in" })).toHaveAttribute("href", /\/login\?next=%2Fadmin%2Fmonitor/);

  // Signed in again in the other tab, the next refresh shows the figures.
  await logInAsAdmin(other);
  await expect(page.getByTestId("monitor-requests")).toBeVisible({ timeout: 15_000 });
  await expect(page.getByRole("alert")).toHaveCount(0);
  expect(errors.filter((e) => !/status of 401/.test(e))).toEqual([]);
});

test("a user who forgot their password sets a new one with the link an admin made", async ({ browser }) => {
  const userContext = await browser.newContext();
  const user = await userContext.newPage();
  const userErrors = watchErrors(user, { allow4xx: true });
  const { email } = await registerAccount(user, "forgot");

  const adminContext = await browser.newContext();
  const admin = await adminContext.newPage();
  const adminErrors = watchErrors(admin, { allow4xx: true });
  await logInAsAdmin(admin);
  await openAccount(admin, email);
  await admin.getByRole("button", { name: "Make a password reset link" }).click();
  const link = ((await admin.getByTestId("reset-link-url").textContent()) ?? "").trim();
  expect(link).toMatch(/\/reset-password#token=[0-9A-Za-z]{40,}$/);
  await expect(admin.getByTestId("audit-events")).toContainText("password.reset_link");

  // The link's page takes the new password; the user's session has ended.
  await user.goto(link);
  await hydrated(user);
  await user.getByLabel("New password").fill("short");
  await user.getByRole("button", { name: "Set password" }).click();
  await expect(user.locator("#field-password-error")).toContainText("at least 8");
  await user.getByLabel("New password").fill("a-fresh-long-passphrase-8");
  await user.getByRole("button", { name: "Set password" }).click();
  await expect(user.getByTestId("password-reset-done")).toContainText("every session of your account has ended");
  await user.getByRole("link", { name: "Log in" }).click();
  await user.getByLabel("Email").fill(email);
  await user.getByLabel("Password").fill("a-fresh-long-passphrase-8");
  await user.getByRole("button", { name: "Log in" }).click();
  await expect(user).toHaveURL(/\/account$/);

  // A second use is refused with what to do.
  const again = await userContext.newPage();
  await again.goto(link);
  await hydrated(again);
  await again.getByLabel("New password").fill("yet-another-passphrase-9");
  await again.getByRole("button", { name: "Set password" }).click();
  await expect(again.getByRole("alert")).toContainText("Ask an administrator for a new one");

  expect(userErrors).toEqual([]);
  expect(adminErrors).toEqual([]);
  await userContext.close();
  await adminContext.close();
});

test("a form sent after the session ended keeps what was typed and offers a login in a new tab; a link into the admin pages comes back after login", async ({ browser }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = watchErrors(page, { allow4xx: true });
  await logInAsAdmin(page);
  const slug = `lost-${Math.floor(Math.random() * 1e6)}`;
  await page.goto("/admin/plans");
  await hydrated(page);
  await page.getByLabel("Id").fill(slug);
  await page.getByLabel("Name").fill("Kept");
  await page.getByLabel("Requests a minute").fill("9");
  await page.getByLabel("Requests an hour").fill("90");
  await page.getByLabel("Active keys").fill("12");

  // The session ends in another tab.
  const other = await context.newPage();
  await other.goto("/account");
  await hydrated(other);
  await other.getByRole("navigation", { name: "Main" }).getByRole("button", { name: "Log out" }).click();
  await expect(other.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Log in" })).toBeVisible();

  await page.getByRole("button", { name: "Create plan" }).click();
  // (The plan list above, reloaded, says the session ended too.)
  const alert = page.getByRole("alert").filter({ hasText: "Log in in a new tab" });
  await expect(alert).toContainText("Your session has ended");
  // What was typed is still there, not the form's defaults.
  await expect(page.getByLabel("Id")).toHaveValue(slug);
  await expect(page.getByLabel("Name")).toHaveValue("Kept");
  await expect(page.getByLabel("Requests a minute")).toHaveValue("9");
  await expect(page.getByLabel("Requests an hour")).toHaveValue("90");
  await expect(page.getByLabel("Active keys")).toHaveValue("12");

  // The login opens beside it; after it, the same form goes through.
  const [login] = await Promise.all([
    context.waitForEvent("page"),
    alert.getByRole("link", { name: "Log in in a new tab" }).click(),
  ]);
  await login.getByLabel("Email").fill("root@example.com");
  await login.getByLabel("Password").fill("admin-passphrase-for-e2e");
  await login.getByRole("button", { name: "Log in" }).click();
  await expect(login).toHaveURL(/\/admin\/plans$/);
  await page.getByRole("button", { name: "Create plan" }).click();
  await expect(page.getByRole("status")).toContainText(`Plan ${slug} created.`);
  await expect(page.getByTestId(`plan-${slug}`)).toContainText("9 / 90 /");

  // The plan's own page too: its editor stays, with the new name typed.
  await page.goto(`/admin/plans/${slug}`);
  await hydrated(page);
  await page.getByLabel("Name").fill("Renamed");
  await other.goto("/account");
  await other.getByRole("navigation", { name: "Main" }).getByRole("button", { name: "Log out" }).click();
  await expect(other.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Log in" })).toBeVisible();
  await page.getByRole("button", { name: "Save plan" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "Log in in a new tab" })).toBeVisible();
  await expect(page.getByLabel("Name")).toHaveValue("Renamed");

  // Signed out, a link to a filtered page comes back to it, filters kept.
  const visitor = await browser.newPage();
  await visitor.goto("/admin/audit?action=plan.create");
  await expect(visitor).toHaveURL(/\/login\?next=/);
  await visitor.getByLabel("Email").fill("root@example.com");
  await visitor.getByLabel("Password").fill("admin-passphrase-for-e2e");
  await visitor.getByRole("button", { name: "Log in" }).click();
  await expect(visitor).toHaveURL(/\/admin\/audit\?action=plan\.create$/);
  await visitor.close();
  expect(errors).toEqual([]);
  await context.close();
});

test("retiring a plan and leaving a plan no longer offered are asked in the page first", async ({ browser }) => {
  const adminContext = await browser.newContext();
  const admin = await adminContext.newPage();
  const adminErrors = watchErrors(admin, { allow4xx: true });
  await logInAsAdmin(admin);
  const slug = `gone-${Math.floor(Math.random() * 1e6)}`;
  await admin.goto("/admin/plans");
  await hydrated(admin);
  await admin.getByLabel("Id").fill(slug);
  await admin.getByLabel("Name").fill("Going");
  await admin.getByLabel("Models").fill("demo");
  await admin.getByRole("button", { name: "Create plan" }).click();
  await expect(admin.getByRole("status")).toContainText(`Plan ${slug} created.`);

  // A user on that plan.
  const userContext = await browser.newContext();
  const user = await userContext.newPage();
  const userErrors = watchErrors(user, { allow4xx: true });
  const { email } = await registerAccount(user, "leaver");
  await openAccount(admin, email);
  await admin.getByLabel("Move to plan").selectOption(slug);
  await admin.getByRole("button", { name: "Assign plan" }).click();
  await expect(admin.getByTestId("admin-user-plan")).toHaveText("Going");

  // Retiring asks first; Escape closes the question and changes nothing.
  await admin.goto(`/admin/plans/${slug}`);
  await hydrated(admin);
  const retire = admin.getByRole("button", { name: "Retire plan" });
  const askRetire = admin.getByRole("alertdialog", { name: "Confirm: Retire plan" });
  await retire.click();
  await expect(askRetire).toContainText("It takes no new users.");
  await admin.keyboard.press("Escape");
  await expect(askRetire).toHaveCount(0);
  await expect(retire).toBeFocused();
  await retire.click();
  await askRetire.getByRole("button", { name: "Yes, retire plan" }).click();
  await expect(admin.getByRole("button", { name: "Restore plan" })).toBeVisible();
  await expect(askRetire).toHaveCount(0);

  // The user may leave it, once they have said so: there is no way back.
  await user.goto("/plans");
  await hydrated(user);
  await expect(user.getByTestId("plan-not-offered")).toBeVisible();
  // Every model's prices, marked where this plan includes it.
  const prices = user.getByTestId("model-prices").locator("tbody tr");
  await expect(prices).toHaveText([
    /^demo\s*0\.5\s*1\.5\s*included$/,
    /^demo-lite\s*0\.1\s*0\.3\s*not included$/,
    /^cut-off\s*1\s*1\s*not included$/,
  ]);
  const starter = user.getByTestId("plan-starter");
  const askLeave = starter.getByRole("alertdialog", { name: "Confirm: Switch to Starter" });
  await starter.getByRole("button", { name: "Switch to Starter" }).click();
  await expect(askLeave).toContainText("Leave Going? It is no longer offered");
  await askLeave.getByRole("button", { name: "Cancel" }).click();
  await expect(askLeave).toHaveCount(0);
  await expect(user.getByTestId(`plan-${slug}`)).toContainText("Current");
  await starter.getByRole("button", { name: "Switch to Starter" }).click();
  await askLeave.getByRole("button", { name: "Yes, switch to Starter" }).click();
  await expect(user.getByRole("status")).toContainText("Plan switched.");
  await expect(starter).toContainText("Current");
  // Starter has every model.
  await expect(prices).toHaveText([/\dincluded$/, /\dincluded$/, /\dincluded$/]);
  await expect(prices.filter({ hasText: "not included" })).toHaveCount(0);
  // The retired plan, left, is no longer shown to the user.
  await expect(user.getByTestId(`plan-${slug}`)).toHaveCount(0);

  expect(adminErrors).toEqual([]);
  expect(userErrors).toEqual([]);
  await userContext.close();
  await adminContext.close();
});
