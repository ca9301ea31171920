import { readFile } from "node:fs/promises";
import { expect, test } from "@playwright/test";
import { hydrated, register, watchErrors } from "./support";

test("the usage page downloads the calls of the days chosen as CSV", async ({ page }) => {
  const errors = watchErrors(page);
  const key = await register(page, "export");
  const call = await page.request.post("/v1/chat/completions", {
    headers: { authorization: `Bearer ${key}` },
    data: { model: "demo", messages: [{ role: "user", content: "count my words" }] },
  });
  expect(call.status()).toBe(200);
  const requestId = call.headers()["x-request-id"];

  await page.goto("/usage");
  await hydrated(page);
  const form = page.locator("#usage-export");
  const today = new Date().toISOString().slice(0, 10);
  // The form starts on the 30 days the page shows.
  await expect(form.getByLabel("To")).toHaveValue(today);
  await expect(form.getByLabel("From")).toHaveValue(new Date(Date.now() - 29 * 86_400_000).toISOString().slice(0, 10));
  // Days out of order are stopped at the field, not sent for the export's
  // JSON refusal.
  await form.getByLabel("From").fill("2999-01-01");
  await form.getByRole("button", { name: "Download CSV" }).click();
  expect(await form.getByLabel("From").evaluate((input: HTMLInputElement) => input.validity.rangeOverflow)).toBe(true);
  await expect(page).toHaveURL(/\/usage$/);
  await form.getByLabel("From").fill(today);
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    form.getByRole("button", { name: "Download CSV" }).click(),
  ]);
  expect(download.suggestedFilename()).toBe(`tollgate-usage-${today}-to-${today}.csv`);
  const lines = (await readFile(await download.path(), "utf8")).trim().split("\n");
  expect(lines[0]).toBe(
    "time_utc,request_id,key,key_last_four,model,stream,status,error_code,prompt_tokens,completion_tokens,total_tokens,cost_credits,cost_micros,latency_ms",
  );
  expect(lines).toHaveLength(2);
  const cells = lines[1].split(",");
  expect(cells[1]).toBe(requestId);
  expect(cells.slice(2, 7)).toEqual(["Primary key", key.slice(-4), "demo", "false", "200"]);
  // The page is still there: the file came as a download.
  await expect(page).toHaveURL(/\/usage$/);
  expect(errors).toEqual([]);
});
