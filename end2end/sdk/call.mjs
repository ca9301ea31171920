// One chat call made with the official OpenAI SDK for Node (`openai` from
// end2end/node_modules, unmodified), for the Rust integration tests in
// end2end/http/sdk.rs. Prints one JSON line: what the SDK returned, the text a
// stream yielded, and the error it threw, as the SDK typed it.
//
// Environment: TOLLGATE_URL (the server's origin), TOLLGATE_KEY, SDK_BODY (the
// request, JSON); argument: `json`, `stream`, or `models` (list every model,
// then retrieve the request's).
import OpenAI from "openai";

const client = new OpenAI({
  apiKey: process.env.TOLLGATE_KEY,
  baseURL: `${process.env.TOLLGATE_URL}/v1`,
  // The tests look at what one call answers; the SDK would retry 429s and 5xx.
  maxRetries: 0,
  timeout: 20_000,
});
const body = JSON.parse(process.env.SDK_BODY);
const outcome = {};

function describe(error) {
  return {
    class: error?.constructor?.name ?? typeof error,
    is_api_error: error instanceof OpenAI.APIError,
    status: error?.status ?? null,
    code: error?.code ?? null,
    type: error?.type ?? null,
    param: error?.param ?? null,
    message: String(error?.message ?? error),
    retry_after: error?.headers?.get?.("retry-after") ?? null,
  };
}

try {
  if (process.argv[2] === "models") {
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    outcome.models = ids;
    outcome.retrieved = await client.models.retrieve(body.model);
  } else if (process.argv[2] === "stream") {
    const stream = await client.chat.completions.create({ ...body, stream: true });
    outcome.text = "";
    for await (const chunk of stream) outcome.text += chunk.choices[0]?.delta?.content ?? "";
  } else {
    outcome.answer = await client.chat.completions.create(body);
  }
} catch (error) {
  outcome.error = describe(error);
}
process.stdout.write(`${JSON.stringify(outcome)}\n`);
