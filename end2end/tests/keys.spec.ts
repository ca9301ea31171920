import { expect, test } from "@playwright/test";
import { register, watchErrors } from "./support";

// The copy button writes to the clipboard; the test reads it back.
test.use({ permissions: ["clipboard-read", "clipboard-write"] });

test("switch plan, create a restricted key, copy it once, revoke it", async ({ page }) => {
  const errors = watchErrors(page, { allow4xx: true });
  await register(page, "keys");

  // Switch from the default Starter plan to Standard with one click.
  await page.goto("/plans");
  await expect(page.getByTestId("plan-starter")).toContainText("Current");
  await page.getByRole("button", { name: "Switch to Standard" }).click();
  await expect(page.getByTestId("plan-standard")).toContainText("Current");
  await expect(page.getByTestId("plan-starter")).not.toContainText("Current");
  const me = await (await page.request.get("/api/v1/me")).json();
  expect(me.plan.id).toBe("standard");

  // Create a key with restrictions, once the form is interactive (typing
  // before hydration would be overwritten by the form's initial values).
  await page.goto("/keys");
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  await page.getByLabel("Name").fill("ci-runner");
  await page.getByLabel("Environment").selectOption("test");
  await page.getByRole("checkbox", { name: "keys:read" }).check();
  await page.getByLabel("Allowed models").fill("demo");
  await page.getByLabel("Expires").fill("2099-12-31");
  await page.getByLabel("Usage cap (requests)").fill("100");
  await page.getByLabel("IP allowlist").fill("127.0.0.1\n10.0.0.0/8\n2001:db8::/32");
  await page.getByLabel("Allowed referrer domains").fill("*.example.com");
  // A refused field is marked, read with its message, and focused.
  const ips = page.getByLabel("IP allowlist");
  await ips.fill("127.0.0.1\nnot-an-ip");
  await page.getByRole("button", { name: "Create key" }).click();
  await expect(ips).toHaveAttribute("aria-invalid", "true");
  await expect(ips).toBeFocused();
  await expect(page.locator("#key-ips-error")).not.toBeEmpty();
  await expect(ips).toHaveAttribute("aria-describedby", "key-ips-hint key-ips-error");
  await ips.fill("127.0.0.1\n10.0.0.0/8\n2001:db8::/32");
  await page.getByRole("button", { name: "Create key" }).click();

  // The show-once dialog holds the secret, and focus goes to it; Copy puts
  // exactly it on the clipboard.
  const dialog = page.getByRole("dialog", { name: "Your new key" });
  await expect(dialog).toBeVisible();
  await expect(dialog).toBeFocused();
  await expect(ips).not.toHaveAttribute("aria-invalid", "true");
  // The form starts over for the next key instead of keeping this one's
  // restrictions.
  await expect(ips).toHaveValue("");
  await expect(page.getByLabel("Name")).toHaveValue("My key");
  await expect(page.getByLabel("Environment")).toHaveValue("live");
  await expect(page.getByLabel("Usage cap (requests)")).toHaveValue("");
  const secret = (await dialog.getByTestId("new-key-secret").textContent())?.trim() ?? "";
  expect(secret).toMatch(/^tg_test_[0-9A-Za-z]{50}$/);
  await dialog.getByRole("button", { name: "Copy" }).click();
  await expect(dialog.getByRole("button", { name: "Copied" })).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
  await dialog.getByRole("button", { name: "I have saved it" }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByRole("heading", { name: "API keys" })).toBeFocused();

  // The table shows the key without its secret, and the restrictions were stored.
  const row = page.getByTestId("key-row-ci-runner");
  await expect(row.getByTestId("key-status")).toHaveText("active");
  await expect(row).toContainText(`tg_test_${secret.slice(8, 12)}`);
  await expect(row).toContainText(secret.slice(-4));
  await expect(row).toContainText("chat, keys:read");
  await expect(row).toContainText("2099-12-31");
  // Its restrictions are on the row too, not only in the API.
  await expect(row.getByTestId("key-limits")).toHaveText(
    "models: demo · from: 127.0.0.1, 10.0.0.0/8, 2001:db8::/32 · sites: *.example.com · 0 of 100 uses",
  );
  await expect(page.getByTestId("key-row-Primary key").getByTestId("key-limits")).toHaveText("none");
  await page.reload();
  await expect(page.locator("body")).not.toContainText(secret);
  const keys = (await (await page.request.get("/api/v1/keys")).json()).data;
  const stored = keys.find((k: { name: string }) => k.name === "ci-runner");
  expect(stored).toMatchObject({
    env: "test",
    allowed_models: ["demo"],
    usage_cap: 100,
    ip_allowlist: ["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"],
    referrer_domains: ["*.example.com"],
  });

  // The key works from a site its referrer rule allows, and not from others.
  const asKey = (origin = "https://app.example.com") =>
    page.request.get("/api/v1/keys", {
      headers: { authorization: `Bearer ${secret}`, origin },
    });
  expect((await asKey()).status()).toBe(200);
  const elsewhere = await asKey("https://other.test");
  expect(elsewhere.status()).toBe(403);
  expect((await elsewhere.json()).error.code).toBe("referrer_not_allowed");

  // Revoke asks first, with focus on Cancel; Escape keeps the key and
  // gives focus back to the button that asked; Revoke ends it and says so.
  const revoke = row.getByRole("button", { name: "Revoke ci-runner" });
  await revoke.click();
  const confirm = page.getByRole("alertdialog", { name: "Confirm revocation" });
  await expect(confirm.getByRole("button", { name: "Cancel" })).toBeFocused();
  await page.keyboard.press("Escape");
  await expect(confirm).toBeHidden();
  await expect(revoke).toBeFocused();
  await expect(row.getByTestId("key-status")).toHaveText("active");
  await revoke.click();
  await confirm.getByRole("button", { name: "Revoke" }).click();
  await expect(row.getByTestId("key-status")).toHaveText("revoked");
  await expect(page.getByRole("status").filter({ hasText: "Revoked." })).toBeVisible();
  expect((await asKey()).status()).toBe(401);

  expect(errors).toEqual([]);
});

test("edit a key's name and restrictions from its row", async ({ page }) => {
  const errors = watchErrors(page, { allow4xx: true });
  await register(page, "edit-key");
  await page.goto("/keys");
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  await page.getByLabel("Name").fill("deploy");
  await page.getByLabel("Usage cap (requests)").fill("5");
  await page.getByLabel("IP allowlist").fill("10.0.0.0/8");
  await page.getByRole("button", { name: "Create key" }).click();
  const dialog = page.getByRole("dialog", { name: "Your new key" });
  const secret = ((await dialog.getByTestId("new-key-secret").textContent()) ?? "").trim();
  await dialog.getByRole("button", { name: "I have saved it" }).click();
  const models = () => page.request.get("/v1/models", { headers: { authorization: `Bearer ${secret}` } });
  expect((await models()).status()).toBe(403);

  // The form opens with the key's settings, focus on its first field.
  const row = page.getByTestId("key-row-deploy");
  await row.getByRole("button", { name: "Edit deploy" }).click();
  const form = page.locator("#edit-key");
  await expect(form.getByRole("heading")).toHaveText("Edit \u201cdeploy\u201d");
  await expect(form.getByLabel("Name")).toBeFocused();
  await expect(form.getByLabel("Name")).toHaveValue("deploy");
  await expect(form.getByLabel("IP allowlist")).toHaveValue("10.0.0.0/8");
  await expect(form.getByLabel("Usage cap (requests)")).toHaveValue("5");

  // A refused field is marked and focused in this form, not the create form,
  // and nothing is saved.
  const ips = form.getByLabel("IP allowlist");
  await ips.fill("10.0.0.0/8\nnot-an-ip");
  await form.getByRole("button", { name: "Save changes" }).click();
  await expect(ips).toHaveAttribute("aria-invalid", "true");
  await expect(ips).toBeFocused();
  await expect(page.locator("#edit-key-ips-error")).toContainText("not-an-ip");
  await expect(page.locator("#key-ips")).not.toHaveAttribute("aria-invalid", "true");
  await expect(row.getByTestId("key-limits")).toHaveText("from: 10.0.0.0/8 · 0 of 5 uses");

  // Saved, the form closes, the row shows the new settings, and the key
  // is held to them from its next request.
  await form.getByLabel("Name").fill("deploy-2");
  await ips.fill("");
  await form.getByLabel("Allowed models").fill("demo");
  await form.getByLabel("Usage cap (requests)").fill("7");
  await form.getByRole("button", { name: "Save changes" }).click();
  await expect(form).toBeHidden();
  await expect(page.getByRole("status").filter({ hasText: "Saved." })).toBeVisible();
  await expect(page.getByRole("heading", { name: "API keys" })).toBeFocused();
  const edited = page.getByTestId("key-row-deploy-2");
  await expect(edited.getByTestId("key-limits")).toHaveText("models: demo · 0 of 7 uses");
  const listed = await models();
  expect(listed.status()).toBe(200);
  expect((await listed.json()).data.map((m: { id: string }) => m.id)).toEqual(["demo"]);
  const keys = (await (await page.request.get("/api/v1/keys")).json()).data;
  const stored = keys.find((k: { name: string }) => k.name === "deploy-2");
  expect(stored).toMatchObject({ allowed_models: ["demo"], usage_cap: 7, env: "live" });
  expect(stored.ip_allowlist ?? null).toBeNull();

  // Escape closes the form unsaved, focus back on the button that opened it.
  const edit = edited.getByRole("button", { name: "Edit deploy-2" });
  await edit.click();
  await form.getByLabel("Name").fill("not saved");
  await page.keyboard.press("Escape");
  await expect(form).toBeHidden();
  await expect(edit).toBeFocused();
  await expect(edited).toBeVisible();

  // A cap lowered to the uses made stops the key; it keeps its Edit button,
  // and raising the cap brings it back.
  const chat = await page.request.post("/v1/chat/completions", {
    headers: { authorization: `Bearer ${secret}` },
    data: { model: "demo", messages: [{ role: "user", content: "hi" }], max_tokens: 5 },
  });
  expect(chat.status()).toBe(200);
  await edit.click();
  await form.getByLabel("Usage cap (requests)").fill("1");
  await form.getByRole("button", { name: "Save changes" }).click();
  await expect(edited.getByTestId("key-status")).toHaveText("used_up");
  await expect(edited.getByRole("button", { name: "Revoke deploy-2" })).toHaveCount(0);
  expect((await models()).status()).toBe(401);
  await edit.click();
  await form.getByLabel("Usage cap (requests)").fill("9");
  await form.getByRole("button", { name: "Save changes" }).click();
  await expect(edited.getByTestId("key-status")).toHaveText("active");
  expect((await models()).status()).toBe(200);

  // A refusal after a save: the form says why, and the banner no longer
  // says "Saved." beside it.
  await expect(page.getByRole("status").filter({ hasText: "Saved." })).toBeVisible();
  await edit.click();
  await ips.fill("not-an-ip");
  await form.getByRole("button", { name: "Save changes" }).click();
  await expect(page.locator("#edit-key-ips-error")).toContainText("not-an-ip");
  await expect(page.getByRole("status").filter({ hasText: "Saved." })).toHaveCount(0);

  // Revoking the key being edited closes its form.
  await edited.getByRole("button", { name: "Revoke deploy-2" }).click();
  await page.getByRole("alertdialog", { name: "Confirm revocation" }).getByRole("button", { name: "Revoke" }).click();
  await expect(edited.getByTestId("key-status")).toHaveText("revoked");
  await expect(form).toBeHidden();
  await expect(edited.getByRole("button", { name: "Edit deploy-2" })).toHaveCount(0);

  // Bringing a used-up key back beyond the plan's active keys is refused in
  // the form, and focus goes to its title (the refusal is about no field).
  const origin = new URL(page.url()).origin;
  const once = await page.request.post("/api/v1/keys", { headers: { origin }, data: { name: "once", usage_cap: 1 } });
  expect(once.status()).toBe(201);
  const onceSecret = (await once.json()).secret;
  const used = await page.request.post("/v1/chat/completions", {
    headers: { authorization: `Bearer ${onceSecret}` },
    data: { model: "demo", messages: [{ role: "user", content: "hi" }], max_tokens: 5 },
  });
  expect(used.status()).toBe(200);
  expect((await page.request.post("/api/v1/keys", { headers: { origin }, data: { name: "third" } })).status()).toBe(201);
  await page.reload();
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  await page.getByTestId("key-row-once").getByRole("button", { name: "Edit once" }).click();
  await form.getByLabel("Usage cap (requests)").fill("5");
  await form.getByRole("button", { name: "Save changes" }).click();
  await expect(form.getByRole("alert")).toContainText("active keys");
  await expect(form.getByRole("heading", { name: "Edit \u201conce\u201d" })).toBeFocused();

  expect(errors).toEqual([]);
});

test("rotating keys one after another keeps the grace period and shows every new secret", async ({ page }) => {
  const errors = watchErrors(page, { allow4xx: true });
  const primary = await register(page, "rotate");
  await page.goto("/keys");
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  await page.getByLabel("Name").fill("second");
  await page.getByRole("button", { name: "Create key" }).click();
  const dialog = page.getByRole("dialog", { name: "Your new key" });
  const second = ((await dialog.getByTestId("new-key-secret").textContent()) ?? "").trim();
  await dialog.getByRole("button", { name: "I have saved it" }).click();
  await expect(dialog).toBeHidden();

  const grace = page.getByLabel("Rotation grace period");
  await grace.selectOption("3600");
  await page.getByTestId("key-row-second").getByRole("button", { name: "Rotate" }).click();
  await expect(dialog.getByTestId("new-key-secret")).toHaveCount(1);
  // The table is built again after the rotation; the grace period stays.
  await expect(grace).toHaveValue("3600");
  // While a rotation is on its way, no other key action can start (a second
  // Rotate would put the never-seen secret in the grace slot).
  await page.route("**/api/keys/rotate", async (route) => {
    await new Promise((done) => setTimeout(done, 800));
    await route.continue();
  });
  await page.getByTestId("key-row-Primary key").getByRole("button", { name: "Rotate" }).click();
  for (const row of ["key-row-Primary key", "key-row-second"]) {
    await expect(page.getByTestId(row).getByRole("button", { name: "Rotate" })).toBeDisabled({ timeout: 500 });
    await expect(page.getByTestId(row).getByRole("button", { name: "Revoke" })).toBeDisabled({ timeout: 500 });
  }
  // Both new secrets are shown until saved, not only the last.
  await expect(dialog.getByTestId("new-key-secret")).toHaveCount(2);
  const shown = await dialog.getByTestId("new-key-secret").allTextContents();
  expect(shown.map((s) => s.trim())).not.toContain(second);
  expect(shown.map((s) => s.trim())).not.toContain(primary);

  // Both old secrets work for the hour of grace, which each row shows.
  const models = (secret: string) =>
    page.request.get("/v1/models", { headers: { authorization: `Bearer ${secret}` } });
  for (const old of [second, primary]) {
    expect((await models(old)).status()).toBe(200);
  }
  const secondGrace = page.getByTestId("key-row-second").getByTestId("key-grace");
  await expect(secondGrace).toContainText(/old secret works until \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC/);
  await expect(page.getByTestId("key-row-Primary key").getByTestId("key-grace")).toHaveCount(1);

  // Ending one early asks first, then stops that old secret only.
  await secondGrace.getByRole("button", { name: "End now" }).click();
  const ask = page.getByRole("alertdialog", { name: "Confirm ending the grace period" });
  await expect(ask).toContainText("Stop the old secret now?");
  await ask.getByRole("button", { name: "Cancel" }).click();
  await expect(secondGrace).toHaveCount(1);
  await secondGrace.getByRole("button", { name: "End now" }).click();
  await ask.getByRole("button", { name: "End now" }).click();
  await expect(page.getByTestId("key-row-second").getByTestId("key-grace")).toHaveCount(0);
  await expect(page.getByTestId("key-row-Primary key").getByTestId("key-grace")).toHaveCount(1);
  expect((await models(second)).status()).toBe(401);
  expect((await models(primary)).status()).toBe(200);

  // Select all, rotate them: the selection empties, and Select all with it.
  const all = page.getByLabel("Select all active keys");
  await all.check();
  await page.getByRole("button", { name: "Rotate selected (2)" }).click();
  await expect(page.getByRole("button", { name: "Rotate selected (0)" })).toBeDisabled();
  await expect(all).not.toBeChecked();
  expect(errors).toEqual([]);
});

test("a rotation without grace asks first, and the page fits a phone", async ({ page }) => {
  const errors = watchErrors(page, { allow4xx: true });
  await page.setViewportSize({ width: 390, height: 844 });
  const primary = await register(page, "rotate-now");
  await page.goto("/keys");
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  // The nav and the keys table stay within the screen's width.
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  await expect(page.getByLabel("Rotation grace period")).toHaveValue("0");

  const row = page.getByTestId("key-row-Primary key");
  const display = await row.locator("code").textContent();
  await row.getByRole("button", { name: "Rotate" }).click();
  const ask = page.getByRole("alertdialog", { name: "Confirm rotation" });
  // It names the key it asks about, away from the row that asked.
  await expect(ask).toContainText(`Rotate the key \u201cPrimary key\u201d (${display}) with no grace period?`);
  await expect(ask).toContainText("stops working at once");
  await ask.getByRole("button", { name: "Cancel" }).click();
  await expect(ask).toBeHidden();
  await expect(row.locator("code")).toHaveText(display ?? "");
  let answer = await page.request.get("/v1/models", { headers: { authorization: `Bearer ${primary}` } });
  expect(answer.status()).toBe(200);

  await row.getByRole("button", { name: "Rotate" }).click();
  await ask.getByRole("button", { name: "Rotate" }).click();
  const dialog = page.getByRole("dialog", { name: "Your new key" });
  await expect(dialog.getByTestId("new-key-secret")).toHaveCount(1);
  answer = await page.request.get("/v1/models", { headers: { authorization: `Bearer ${primary}` } });
  expect(answer.status()).toBe(401);
  expect(errors).toEqual([]);
});

test("Copy says when the browser would not copy the key", async ({ page }) => {
  // Plain http on a LAN address has no clipboard at all.
  await page.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, "clipboard", { get: () => undefined, configurable: true });
  });
  const errors = watchErrors(page, { allow4xx: true });
  await register(page, "nocopy");
  await page.goto("/keys");
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  await page.getByLabel("Name").fill("by hand");
  await page.getByRole("button", { name: "Create key" }).click();
  const dialog = page.getByRole("dialog", { name: "Your new key" });
  await dialog.getByRole("button", { name: "Copy" }).click();
  await expect(dialog.getByRole("alert")).toContainText("Select it and copy it yourself");
  await expect(dialog.getByRole("button", { name: "Copied" })).toHaveCount(0);
  expect(errors).toEqual([]);
});

test("the API reference renders from the OpenAPI document", async ({ page }) => {
  const errors = watchErrors(page, { allow4xx: true });
  await page.goto("/docs");
  await expect(page.getByRole("heading", { name: "Tollgate API", exact: true })).toBeVisible();
  // The model API is described too, with the header keys may come in.
  const chat = page.locator("#post--v1-chat-completions");
  await expect(chat).toContainText("Chat with a model");
  await expect(chat).toContainText("key in x-api-key with chat");
  const create = page.locator("#post--api-v1-keys");
  await expect(create).toContainText("Create a key");
  await expect(create).toContainText("key with keys:write");
  await create.getByRole("link", { name: "CreateKey" }).click();
  await expect(page).toHaveURL(/#type-CreateKey$/);
  await expect(page.locator("#type-CreateKey")).toContainText("ip_allowlist");
  const document = await (await page.request.get("/openapi.json")).json();
  expect(document.openapi).toMatch(/^3\./);
  expect(errors).toEqual([]);
});
