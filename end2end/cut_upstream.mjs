// The browser tests' failing upstream: an OpenAI-compatible server whose
// streams break off after a few words (no error event, no [DONE]), as an
// upstream that dies mid-reply does. GET /last answers the last request's
// body, so a test can see what the gateway sent on.
import { createServer } from "node:http";

let last = null;
const chunk = (delta, extra = {}) =>
  `data: ${JSON.stringify({
    id: "chatcmpl-cut",
    object: "chat.completion.chunk",
    created: 1,
    model: "cut",
    choices: [{ index: 0, delta, finish_reason: null }],
    ...extra,
  })}\n\n`;

createServer((req, res) => {
  if (req.method === "GET" && req.url === "/last") {
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify(last));
  }
  if (req.method === "GET" && req.url === "/ready") return res.end("ok");
  let body = "";
  req.on("data", (part) => (body += part));
  req.on("end", () => {
    last = JSON.parse(body || "null");
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write(chunk({ role: "assistant", content: "" }));
    res.write(chunk({ content: "Partial reply" }));
    res.write(chunk({ content: " that breaks" }));
    // Sent, then the connection is cut.
    setTimeout(() => res.socket.destroy(), 100);
  });
}).listen(Number(process.env.E2E_CUT_PORT), "127.0.0.1");
