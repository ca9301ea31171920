import { expect, test } from "@playwright/test";
import { register, registerAccount, watchErrors } from "./support";

test("paste a key, stream a reply from demo, hit the plan's limit and see the countdown", async ({ page }) => {
  const errors = watchErrors(page, { allow4xx: true });
  const key = await register(page, "play");
  expect(key).toMatch(/^tg_live_/);

  // A fresh page load: the key is not remembered anywhere, so it is pasted.
  await page.goto("/playground");
  await expect(page.getByLabel("API key")).toHaveValue("");
  await page.getByLabel("API key").fill(key);
  await expect(page.getByLabel("Model")).toHaveValue("demo");
  await page.getByLabel("System prompt (optional)").fill("Be brief.");

  const transcript = page.getByTestId("transcript");
  const send = async (text: string) => {
    await page.getByLabel("Message").fill(text);
    await page.getByRole("button", { name: "Send" }).click();
  };

  // The reply streams in word by word: Stop is live while it does, and the
  // finished text is the demo model's deterministic answer.
  await send("Hello there playground");
  await expect(page.getByRole("button", { name: "Stop" })).toBeEnabled();
  const reply = transcript.locator('[data-role="assistant"]').last();
  await expect(reply).toContainText("Hello!");
  await expect(reply).toContainText('Your message had 3 words: "Hello there playground".');
  await expect(page.getByRole("button", { name: "Stop" })).toBeDisabled();
  await expect(page.getByTestId("requests-remaining")).toContainText("1 of 2 requests left");
  // The reply shows what it used: its tokens, from the stream's usage
  // chunk, and once settled, its credits.
  await expect(reply.getByTestId("reply-usage")).toHaveText(/^[1-9]\d* prompt \+ [1-9]\d* completion tokens, 0\.\d+ credits$/);

  await send("Second question");
  await expect(transcript.locator('[data-role="assistant"]').last()).toContainText("had 2 words");
  const remaining = page.getByTestId("requests-remaining");
  await expect(remaining).toContainText("0 of 2 requests left");
  // The line counts down to the window's reset (Tollgate's `x-ratelimit-reset-requests`).
  await expect(remaining).toHaveText(/^0 of 2 requests left, the window resets in \d+ s\.$/);
  const resetIn = Number((await remaining.textContent())?.match(/in (\d+) s/)?.[1]);
  expect(resetIn).toBeGreaterThan(1);
  expect(resetIn).toBeLessThanOrEqual(60);
  await expect(remaining).not.toContainText(`in ${resetIn} s`, { timeout: 3_000 });
  expect(Number((await remaining.textContent())?.match(/in (\d+) s/)?.[1])).toBeLessThan(resetIn);

  // The third call in a minute is over the Starter plan's limit: the page names
  // the limit and counts down from Retry-After.
  await send("One too many");
  const refusal = page.getByTestId("refusal");
  await expect(refusal).toContainText("Rate limit reached: requests per minute (429)");
  const countdown = page.getByTestId("retry-countdown");
  await expect(countdown).toHaveText(/^Try again in \d+ s\.$/);
  const first = Number((await countdown.textContent())?.match(/\d+/)?.[0]);
  expect(first).toBeGreaterThan(0);
  expect(first).toBeLessThanOrEqual(60);
  await expect(countdown).not.toHaveText(`Try again in ${first} s.`, { timeout: 3_000 });
  const later = Number((await countdown.textContent())?.match(/\d+/)?.[0]);
  expect(later).toBeLessThan(first);
  // The line beside Send counts to the same next request, not to the whole window.
  await expect(remaining).toHaveText(/^0 of 2 requests left; one comes back in \d+ s\.$/);
  const next = Number((await remaining.textContent())?.match(/in (\d+) s/)?.[1]);
  const shown = Number((await countdown.textContent())?.match(/\d+/)?.[0]);
  expect(Math.abs(next - shown)).toBeLessThanOrEqual(1);
  // The refused message stays in the transcript without an empty reply.
  await expect(transcript.locator('[data-role="assistant"]')).toHaveCount(2);

  expect(errors).toEqual([]);
});

test("a bad key is explained, and a key just shown is offered without pasting", async ({ page }) => {
  const errors = watchErrors(page, { allow4xx: true });
  const { key, email, password } = await registerAccount(page, "play");

  // Client-side navigation from /welcome keeps the new key in memory.
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  await page.getByRole("link", { name: "Try it in the playground" }).click();
  await expect(page).toHaveURL(/\/playground$/);
  await expect(page.getByLabel("API key")).toHaveValue(key);

  // A mistyped key is said to be refused as soon as it is pasted (the page
  // asks for its models), and refused with what it means and what to do when
  // sent.
  const refused = page.getByTestId("key-refused");
  await expect(refused).toHaveText("");
  await page.getByLabel("API key").fill(key.slice(0, -1) + (key.endsWith("A") ? "B" : "A"));
  await expect(refused).toHaveText("The API key has a typo: its checksum does not match. Copy it again.");
  await expect(page.getByLabel("API key")).toHaveAttribute("aria-invalid", "true");
  await page.getByLabel("Message").fill("hi");
  await page.getByRole("button", { name: "Send" }).click();
  const refusal = page.getByTestId("refusal");
  await expect(refusal).toContainText("The key was not accepted (401)");
  await expect(refusal).toContainText("Paste the whole key");
  await expect(page.getByTestId("retry-countdown")).toHaveCount(0);
  // Its rate-limit headers are the client address's, not a plan's: not shown.
  await expect(page.getByTestId("requests-remaining")).toHaveCount(0);
  // The refused message stays on screen but is not sent again.
  const asked = page.getByTestId("transcript").locator('[data-role="user"]');
  await expect(asked).toHaveAttribute("data-left-out", "true");
  await expect(page.getByTestId("transcript").locator('[data-role="assistant"]')).toHaveCount(0);

  // After a logout and a login on this tab, with no reload between, the key
  // is no longer offered (on a shared computer, the next person's playground).
  const nav = page.getByRole("navigation", { name: "Main" });
  await page.evaluate(() => ((window as unknown as { sameTab: boolean }).sameTab = true));
  await nav.getByRole("button", { name: "Log out" }).click();
  await nav.getByRole("link", { name: "Log in" }).click();
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(nav.getByRole("button", { name: "Log out" })).toBeVisible();
  await nav.getByRole("link", { name: "Playground" }).click();
  await expect(page).toHaveURL(/\/playground$/);
  await expect(page.getByLabel("API key")).toHaveValue("");
  // The page was never reloaded, which would have forgotten the key anyway.
  expect(await page.evaluate(() => (window as unknown as { sameTab?: boolean }).sameTab)).toBe(true);

  expect(errors).toEqual([]);
});

test("the model list follows the pasted key's allowed models", async ({ page, baseURL }) => {
  const errors = watchErrors(page, { allow4xx: true });
  const key = await register(page, "play");
  const created = await page.request.post("/api/v1/keys", {
    data: { name: "lite-only", allowed_models: ["demo-lite"] },
    headers: { origin: baseURL! },
  });
  expect(created.status()).toBe(201);
  const liteOnly: string = (await created.json()).secret;

  await page.goto("/playground");
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  const model = page.getByLabel("Model");
  // Before a key is pasted, every model in the table is offered, with its prices.
  const everyModel = [
    "demo (0.5 in, 1.5 out credits per 1k tokens)",
    "demo-lite (0.1 in, 0.3 out credits per 1k tokens)",
    "cut-off (1 in, 1 out credits per 1k tokens)",
  ];
  await expect(model.locator("option")).toHaveText(everyModel);

  // A key limited to demo-lite offers only it, and the chat uses it.
  await page.getByLabel("API key").fill(liteOnly);
  await expect(model.locator("option")).toHaveText([everyModel[1]]);
  await expect(model).toHaveValue("demo-lite");
  await page.getByLabel("Message").fill("Hello lite");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page.getByTestId("transcript").locator('[data-role="assistant"]').last()).toContainText(
    "had 2 words",
  );

  // Back to an unrestricted key: both again.
  await page.getByLabel("API key").fill(key);
  await expect(model.locator("option")).toHaveText(everyModel);
  await expect(model).toHaveValue("demo-lite");

  expect(errors).toEqual([]);
});

test("leaving the playground mid-reply ends the call, and Stop works after coming back", async ({ page }) => {
  const errors = watchErrors(page, { allow4xx: true });
  await register(page, "play");
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  await page.getByRole("link", { name: "Try it in the playground" }).click();
  await expect(page).toHaveURL(/\/playground$/);

  const assistant = page.getByTestId("transcript").locator('[data-role="assistant"]');
  const sendSlowly = async (text: string) => {
    // demo-lite streams a word every 250 ms: about eight seconds a reply.
    await page.getByLabel("Model").selectOption("demo-lite");
    await page.getByLabel("Message").fill(text);
    await page.getByRole("button", { name: "Send" }).click();
    await expect(assistant.last()).toContainText("Hello!");
    await expect(page.getByRole("button", { name: "Stop" })).toBeEnabled();
  };
  await sendSlowly("First question");

  // Away and back by the menu, while the reply is still coming.
  await page.getByRole("link", { name: "Usage", exact: true }).click();
  await expect(page).toHaveURL(/\/usage$/);
  await page.getByRole("link", { name: "Playground", exact: true }).click();
  await expect(page).toHaveURL(/\/playground$/);
  // Leaving aborted the first call, so the Starter plan's one parallel call
  // is free again once Tollgate has seen the client go (at its next word).
  await page.waitForTimeout(1_000);
  await sendSlowly("Second question");
  await expect(page.getByTestId("refusal")).toHaveCount(0);

  // Stop ends this call, not a handle the first call left behind.
  await page.getByRole("button", { name: "Stop" }).click();
  await expect(page.getByRole("button", { name: "Stop" })).toBeDisabled();
  // What came stays, marked as stopped, and nothing more comes.
  await expect(assistant.last()).toHaveAttribute("data-stopped", "true");
  await expect(assistant.last()).toContainText("(stopped; what came is charged");
  // What it was charged, once Tollgate has settled it.
  const charged = assistant.last().getByTestId("reply-usage");
  await expect(charged).toHaveText(/^\d+ prompt \+ [1-9]\d* completion tokens, 0\.\d+ credits$/);
  await expect(assistant.last()).toContainText("(stopped; what came is charged)");
  const stoppedAt = await assistant.last().textContent();
  await page.waitForTimeout(600);
  await expect(assistant.last()).toHaveText(stoppedAt ?? "");
  await expect(assistant.last()).not.toContainText("Add a real model");

  expect(errors).toEqual([]);
});

test("Clear stops a reply as it streams, and Enter picking an input method's word does not send", async ({ page }) => {
  const errors = watchErrors(page, { allow4xx: true });
  await register(page, "clear");
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  await page.getByRole("link", { name: "Try it in the playground" }).click();
  await expect(page).toHaveURL(/\/playground$/);

  const transcript = page.getByTestId("transcript");
  const assistant = transcript.locator('[data-role="assistant"]');
  const message = page.getByLabel("Message");
  await page.getByLabel("Model").selectOption("demo-lite");
  await message.fill("A long answer, please");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(assistant.last()).toContainText("Hello!");
  await expect(page.getByRole("button", { name: "Stop" })).toBeEnabled();

  // demo-lite has seconds of words left; Clear ends the call with the text,
  // at once (a reply left running would keep Stop live for seconds).
  await page.getByRole("button", { name: "Clear" }).click();
  await expect(transcript).toContainText("Send a message to start.");
  await expect(page.getByRole("button", { name: "Stop" })).toBeDisabled({ timeout: 1_000 });
  await expect(page.getByRole("button", { name: "Send" })).toBeEnabled({ timeout: 1_000 });
  await page.waitForTimeout(800);
  await expect(transcript.locator("[data-role]")).toHaveCount(0);
  await expect(page.getByRole("button", { name: "Stop" })).toBeDisabled({ timeout: 0 });

  // An Enter that an input method uses to pick a word is not a send.
  await message.fill("こんにちは");
  await message.dispatchEvent("keydown", { key: "Enter", isComposing: true, bubbles: true });
  await page.waitForTimeout(300);
  await expect(transcript.locator("[data-role]")).toHaveCount(0);
  await expect(message).toHaveValue("こんにちは");
  // A plain Enter sends (the Starter plan's one parallel call is free again
  // once Tollgate has seen the cleared call's client go, at its next word).
  await page.waitForTimeout(700);
  await message.press("Enter");
  await expect(transcript.locator('[data-role="user"]')).toHaveText(/こんにちは/);
  await expect(assistant.last()).toContainText("Hello!");

  expect(errors).toEqual([]);
});

test("a stream that ends after only the role chunk leaves the message unanswered", async ({ page }) => {
  const errors = watchErrors(page, { allow4xx: true });
  const key = await register(page, "roleonly");
  await page.goto("/playground");
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  await page.getByLabel("API key").fill(key);
  // An upstream that names the role and then breaks off: nothing was said.
  const roleOnly = {
    id: "chatcmpl-x",
    object: "chat.completion.chunk",
    created: 1,
    model: "demo",
    choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }],
  };
  await page.route("**/v1/chat/completions", (route) =>
    route.fulfill({
      status: 200,
      headers: { "content-type": "text/event-stream" },
      body: `data: ${JSON.stringify(roleOnly)}\n\n`,
    }),
  );
  await page.getByLabel("Message").fill("Hello?");
  await page.getByRole("button", { name: "Send" }).click();
  const transcript = page.getByTestId("transcript");
  await expect(transcript.locator('[data-role="user"]')).toHaveAttribute("data-left-out", "true");
  await expect(transcript.locator('[data-role="user"]')).toContainText("(not answered; not sent again)");
  await expect(transcript.locator('[data-role="assistant"]')).toHaveCount(0);
  expect(errors).toEqual([]);
});

test("a message keeps its lines and long words wrap, a missing key is asked for, and a revoked key is not offered", async ({ page }) => {
  const errors = watchErrors(page, { allow4xx: true });
  await page.setViewportSize({ width: 375, height: 800 });
  const { key } = await registerAccount(page, "wrap");
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  await page.getByRole("link", { name: "Try it in the playground" }).click();
  await expect(page.getByLabel("API key")).toHaveValue(key);

  // Typed over two lines, with a word longer than a phone is wide.
  const long = "x".repeat(150);
  const message = page.getByLabel("Message");
  await message.fill("line one");
  await message.press("Shift+Enter");
  await message.pressSequentially(`line two ${long}`);
  await page.getByRole("button", { name: "Send" }).click();
  const asked = page.getByTestId("transcript").locator('[data-role="user"]').last();
  await expect(asked).toContainText(long);
  expect(await asked.evaluate((e) => (e as HTMLElement).innerText)).toContain(`line one\nline two`);
  expect(await asked.evaluate((e) => e.scrollWidth <= e.clientWidth + 1)).toBe(true);
  await expect(page.getByRole("button", { name: "Stop" })).toBeDisabled();
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);

  // No key: asked for, not reported as a refused call.
  await page.getByLabel("API key").fill("");
  await message.fill("hello");
  await page.getByRole("button", { name: "Send" }).click();
  const refusal = page.getByTestId("refusal");
  await expect(refusal).toContainText("No key yet");
  await expect(refusal).not.toContainText("401");
  // Focus goes where the key is asked for.
  await expect(page.getByLabel("API key")).toBeFocused();

  // The key is revoked on the keys page: the playground no longer offers it.
  await page.getByLabel("API key").fill(key);
  const nav = page.getByRole("navigation", { name: "Main" });
  await nav.getByRole("link", { name: "Keys" }).click();
  await expect(page).toHaveURL(/\/keys$/);
  await page.getByRole("button", { name: "Revoke Primary key" }).click();
  await page.getByRole("alertdialog", { name: "Confirm revocation" }).getByRole("button", { name: "Revoke" }).click();
  await expect(page.getByRole("status").filter({ hasText: "Revoked." })).toBeVisible();
  await nav.getByRole("link", { name: "Playground" }).click();
  await expect(page).toHaveURL(/\/playground$/);
  await expect(page.getByLabel("API key")).toHaveValue("");
  // Pasted again, it is said to be revoked before anything is sent; an
  // empty field clears that.
  const refused = page.getByTestId("key-refused");
  await page.getByLabel("API key").fill(key);
  await expect(refused).toHaveText("The API key was revoked. Create a new one.");
  await page.getByLabel("API key").fill("");
  await expect(refused).toHaveText("");
  await expect(page.getByLabel("API key")).not.toHaveAttribute("aria-invalid", "true");

  expect(errors).toEqual([]);
});

test("a reply cut off mid-stream is marked, and neither it nor its message is sent again", async ({ page, request }) => {
  const errors = watchErrors(page, { allow4xx: true });
  const { key } = await registerAccount(page, "cut");
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  await page.getByRole("link", { name: "Try it in the playground" }).click();
  await expect(page.getByLabel("API key")).toHaveValue(key);
  // This model's upstream sends two words, then cuts the connection.
  await page.getByLabel("Model").selectOption("cut-off");
  const send = async (text: string) => {
    await page.getByLabel("Message").fill(text);
    await page.getByRole("button", { name: "Send" }).click();
    await expect(page.getByRole("button", { name: "Stop" })).toBeDisabled();
  };
  await send("First question");
  const transcript = page.getByTestId("transcript");
  const reply = transcript.locator('[data-role="assistant"]').last();
  await expect(reply).toContainText("Partial reply that breaks");
  await expect(reply).toHaveAttribute("data-cut-off", "true");
  await expect(reply).toContainText("(cut off when the call failed; what came is charged; not sent again)");
  // Its charge, as settled: the two words and the prompt.
  await expect(reply.getByTestId("reply-usage")).toHaveText(/^[1-9]\d* prompt \+ [1-9]\d* completion tokens, [\d.]+ credits$/);
  const asked = transcript.locator('[data-role="user"]').last();
  await expect(asked).toHaveAttribute("data-cut-off", "true");
  await expect(asked).toContainText("(its reply was cut off; not sent again)");
  await expect(page.getByTestId("refusal")).toContainText("The model's server failed (502)");

  // The next call carries only the new message.
  await send("Second question");
  await expect(transcript.locator('[data-role="assistant"]')).toHaveCount(2);
  const sent = await (await request.get(`http://127.0.0.1:${process.env.E2E_CUT_PORT}/last`)).json();
  expect(sent.messages.map((m: { content: string }) => m.content)).toEqual(["Second question"]);

  expect(errors).toEqual([]);
});

test("a longest reply is sent as max_tokens and a reply cut there says so; one that is not a number is explained", async ({ page }) => {
  const errors = watchErrors(page, { allow4xx: true });
  const key = await register(page, "longest");
  await page.goto("/playground");
  await expect(page.locator("html[data-hydrated]")).toHaveCount(1);
  await page.getByLabel("API key").fill(key);
  const longest = page.getByLabel("Longest reply, in tokens (optional)");
  const problem = page.getByTestId("max-tokens-error");
  const transcript = page.getByTestId("transcript");

  // Not a number: said beside the field, which takes the focus; nothing is sent.
  let calls = 0;
  page.on("request", (r) => {
    if (r.url().endsWith("/v1/chat/completions")) calls += 1;
  });
  await longest.fill("lots");
  await page.getByLabel("Message").fill("Hello there playground");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(problem).toHaveText("Enter a whole number of tokens from 1 to 1,000,000, or leave it empty.");
  await expect(longest).toBeFocused();
  await expect(longest).toHaveAttribute("aria-invalid", "true");
  await expect(page.getByLabel("Message")).toHaveValue("Hello there playground");
  await expect(transcript.locator("[data-role]")).toHaveCount(0);
  expect(calls).toBe(0);

  // Three tokens: sent as max_tokens, and the demo model's reply stops there.
  await longest.fill("3");
  await expect(problem).toHaveText("");
  const sent = page.waitForRequest("**/v1/chat/completions");
  await page.getByRole("button", { name: "Send" }).click();
  expect((await sent).postDataJSON().max_tokens).toBe(3);
  const reply = transcript.locator('[data-role="assistant"]');
  await expect(reply).toContainText("(cut short at the longest reply)");
  await expect(reply.getByTestId("reply-usage")).toHaveText(/^[1-9]\d* prompt \+ 3 completion tokens, [\d.]+ credits$/);
  expect(errors).toEqual([]);
});
