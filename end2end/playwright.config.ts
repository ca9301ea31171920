import { defineConfig } from "@playwright/test";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

// The server under test: the built binary on a free port with a fresh database.
// Chosen once in the main process; workers inherit them through the environment.
const root = resolve(__dirname, "..");
const freePort = () =>
  execFileSync(process.execPath, [
    "-e",
    "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close()})",
  ]).toString();
process.env.TOLLGATE_E2E_PORT ??= freePort();
process.env.E2E_CUT_PORT ??= freePort();
process.env.TOLLGATE_E2E_SCRATCH ??= mkdtempSync(join(tmpdir(), "tollgate-e2e-"));
const port = process.env.TOLLGATE_E2E_PORT;
const scratch = process.env.TOLLGATE_E2E_SCRATCH;
const baseURL = `http://127.0.0.1:${port}`;
// The model table: the demo models, and one whose upstream breaks its
// streams off (end2end/cut_upstream.mjs), on the port chosen above.
const models = join(scratch, "models.toml");
writeFileSync(
  models,
  readFileSync(join(root, "end2end/models.toml"), "utf8") +
    `
[[model]]
name = "cut-off"
provider = "openai"
base_url = "http://127.0.0.1:${process.env.E2E_CUT_PORT}/v1"
upstream_model = "cut"
input_price = "1"
output_price = "1"
`,
);

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [["list"]],
  use: {
    baseURL,
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    },
  },
  webServer: [
    {
      command: `${JSON.stringify(process.execPath)} ${JSON.stringify(join(root, "end2end/cut_upstream.mjs"))}`,
      url: `http://127.0.0.1:${process.env.E2E_CUT_PORT}/ready`,
      timeout: 10_000,
      reuseExistingServer: false,
      stdout: "ignore",
      stderr: "pipe",
      env: { E2E_CUT_PORT: process.env.E2E_CUT_PORT },
    },
    {
      command: JSON.stringify(resolve(root, process.env.E2E_SERVER_BIN ?? "target/debug/tollgate")),
      // Not the checkout: a developer's .env there would set the server up too.
      cwd: scratch,
      url: `${baseURL}/readyz`,
      timeout: 60_000,
      reuseExistingServer: false,
      stdout: "ignore",
      stderr: "pipe",
      env: {
        TOLLGATE_ADDR: `127.0.0.1:${port}`,
        DATABASE_URL: `sqlite://${join(scratch, "tollgate.db")}`,
        TOLLGATE_LOG_DIR: join(scratch, "logs"),
        LEPTOS_SITE_ROOT: join(root, "target/site"),
        RUST_LOG: "warn",
        // Test-only admin credentials for the admin console tests.
        TOLLGATE_ADMIN_EMAIL: "root@example.com",
        TOLLGATE_ADMIN_PASSWORD: "admin-passphrase-for-e2e",
        TOLLGATE_SIGNUP_CREDITS: "10",
        // Every test signs up from 127.0.0.1.
        TOLLGATE_SIGNUPS_PER_IP: "1000",
        // And calls the models from it: the address's windows are wide, so
        // that the plan's windows the tests read stay the tightest whatever
        // the tests before them called (the default 20 a minute was not).
        TOLLGATE_IP_REQUESTS_PER_MINUTE: "1000",
        TOLLGATE_IP_REQUESTS_PER_DAY: "100000",
        TOLLGATE_MODELS: models,
      },
    },
  ],
});
