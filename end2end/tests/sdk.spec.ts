import { expect, test } from "@playwright/test";
import { register } from "./support";
import OpenAI from "openai";

// The official OpenAI SDK for Node, unmodified, pointed at Tollgate: what a
// developer does with a key. No browser page is needed past registration.

test("the official OpenAI SDK lists models, chats, streams and gets typed errors", async ({ page, baseURL }) => {
  const key = await register(page, "sdk");
  expect(key).toMatch(/^tg_live_/);
  // No retries: the SDK would otherwise retry the 429 below by itself.
  const client = new OpenAI({ apiKey: key, baseURL: `${baseURL}/v1`, maxRetries: 0 });

  // Models: the list and one by name.
  const ids: string[] = [];
  for await (const model of client.models.list()) ids.push(model.id);
  expect(ids).toContain("demo");
  const demo = await client.models.retrieve("demo");
  expect(demo).toMatchObject({ id: "demo", object: "model" });

  // Refusals that cost nothing come back as the SDK's typed errors, with
  // OpenAI's error fields.
  const unknown = await client.chat.completions
    .create({ model: "no-such-model", messages: [{ role: "user", content: "hi" }] })
    .catch((e: unknown) => e);
  expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
  expect((unknown as InstanceType<typeof OpenAI.NotFoundError>).code).toBe("model_not_found");
  const stranger = new OpenAI({ apiKey: "tg_live_not-a-real-key", baseURL: `${baseURL}/v1`, maxRetries: 0 });
  const refused = await stranger.chat.completions
    .create({ model: "demo", messages: [{ role: "user", content: "hi" }] })
    .catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(OpenAI.AuthenticationError);
  expect((refused as InstanceType<typeof OpenAI.AuthenticationError>).status).toBe(401);

  // A whole answer, with the rate-limit headers beside it.
  const { data: answer, response } = await client.chat.completions
    .create({
      model: "demo",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hello from the SDK" },
      ],
      max_tokens: 64,
    })
    .withResponse();
  expect(answer.object).toBe("chat.completion");
  expect(answer.model).toBe("demo");
  expect(answer.choices[0].message.role).toBe("assistant");
  expect(answer.choices[0].message.content).toContain('Your message had 4 words: "Hello from the SDK".');
  expect(answer.usage?.prompt_tokens).toBeGreaterThan(0);
  expect(answer.usage?.total_tokens).toBe(
    (answer.usage?.prompt_tokens ?? 0) + (answer.usage?.completion_tokens ?? 0),
  );
  expect(response.headers.get("x-ratelimit-limit-requests")).toBe("2");
  expect(response.headers.get("x-ratelimit-remaining-requests")).toBe("1");

  // A stream, read by the SDK's own SSE parser, ending with the usage chunk.
  const stream = await client.chat.completions.create({
    model: "demo",
    messages: [{ role: "user", content: "please stream this" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let usage: OpenAI.CompletionUsage | null | undefined;
  let finish: string | null = null;
  for await (const chunk of stream) {
    expect(chunk.object).toBe("chat.completion.chunk");
    text += chunk.choices[0]?.delta?.content ?? "";
    finish = chunk.choices[0]?.finish_reason ?? finish;
    if (chunk.usage) usage = chunk.usage;
  }
  expect(text).toContain('Your message had 3 words: "please stream this".');
  expect(finish).toBe("stop");
  expect(usage?.completion_tokens).toBeGreaterThan(0);

  // The plan's third call in a minute: a RateLimitError whose response
  // carries the wait and names the limit.
  const limited = await client.chat.completions
    .create({ model: "demo", messages: [{ role: "user", content: "one too many" }] })
    .catch((e: unknown) => e);
  expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
  const rate = limited as InstanceType<typeof OpenAI.RateLimitError>;
  expect(rate.code).toBe("requests_per_minute");
  expect(Number(rate.headers?.get("retry-after"))).toBeGreaterThan(0);
});
