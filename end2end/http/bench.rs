//! The gateway benchmark: throughput, latency overhead and memory of the real
//! `tollgate` binary in front of the mock upstream. Not a test: it asserts
//! nothing about speed and is ignored by default. Run it (release build) with
//!
//! ```sh
//! cargo test --release --features ssr --test http bench -- --ignored --nocapture
//! ```
//!
//! Settings: `BENCH_REQUESTS` (default 2000) and `BENCH_CONCURRENCY` (default 32).

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::support::mock_upstream::MockUpstream;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `VmRSS` and `VmHWM` (peak) of a process, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Sends `total` calls, `concurrency` at a time; returns sorted latencies and the wall time.
async fn run(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: &Value,
    total: usize,
    concurrency: usize,
) -> (Vec<Duration>, Duration, usize) {
    let started = Instant::now();
    let results: Vec<(Duration, bool)> = futures::stream::iter(0..total)
        .map(|_| async {
            let begun = Instant::now();
            let mut request = client.post(url).json(body);
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            let ok = match request.send().await {
                Ok(response) => {
                    let ok = response.status().is_success();
                    let _ = response.bytes().await;
                    ok
                }
                Err(_) => false,
            };
            (begun.elapsed(), ok)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let failures = results.iter().filter(|(_, ok)| !ok).count();
    let mut latencies: Vec<Duration> = results.into_iter().map(|(d, _)| d).collect();
    latencies.sort();
    (latencies, started.elapsed(), failures)
}

fn report(label: &str, latencies: &[Duration], wall: Duration, failures: usize) {
    println!(
        "{label:<34} {:>8.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   failures {failures}",
        latencies.len() as f64 / wall.as_secs_f64(),
        percentile(latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(latencies, 0.99).as_secs_f64() * 1000.0,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark, not a test; see the module docs"]
async fn gateway_benchmark() {
    let total = setting("BENCH_REQUESTS", 2000);
    let concurrency = setting("BENCH_CONCURRENCY", 32);
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("models.toml"),
        format!(
            "[[model]]\nname = \"mock\"\nprovider = \"openai\"\nbase_url = \"{}\"\ninput_price = \"0.001\"\noutput_price = \"0.001\"\n",
            mock.base_url()
        ),
    )
    .unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .current_dir(dir.path())
        .env_clear()
        .env("TOLLGATE_ADDR", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_MODELS", "models.toml")
        .env("TOLLGATE_IP_REQUESTS_PER_MINUTE", "1000000")
        .env("TOLLGATE_IP_REQUESTS_PER_DAY", "1000000")
        .env("TOLLGATE_SIGNUP_CREDITS", "1000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    for _ in 0..100 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rss_idle, _) = memory_mib(server.id());

    // A user on a plan large enough not to be the bottleneck, and a key.
    let registered = client
        .post(format!("{base}/api/register"))
        .header("origin", &base)
        .header("accept", "application/json")
        .form(&[
            ("email", "bench@example.com"),
            ("display_name", "Bench"),
            ("password", crate::support::PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert!(registered.status().is_success());
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("data/tollgate.db").display()
    ))
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO plans (slug, name, requests_per_minute, requests_per_hour, requests_per_day, monthly_credits, max_active_keys, is_public)
         VALUES ('bench', 'Bench', 1000000, 1000000, 1000000, 0, 10, 0)",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query("UPDATE users SET plan_id = (SELECT id FROM plans WHERE slug = 'bench')")
        .execute(&db)
        .await
        .unwrap();
    let created: Value = client
        .post(format!("{base}/api/v1/keys"))
        .header("origin", &base)
        .json(&json!({ "name": "bench" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["secret"].as_str().unwrap().to_owned();
    let api = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();

    let body = json!({ "model": "mock", "messages": [{ "role": "user", "content": "Say hello" }], "max_tokens": 64 });
    let upstream_body =
        json!({ "model": "mock-small", "messages": [{ "role": "user", "content": "Say hello" }] });
    let mut streaming = body.clone();
    streaming["stream"] = json!(true);

    println!(
        "\nTollgate gateway benchmark: {total} calls, {concurrency} at a time, mock upstream on loopback\n"
    );
    let gateway_url = format!("{base}/v1/chat/completions");
    let upstream_url = format!("{}/chat/completions", mock.base_url());
    run(&api, &gateway_url, Some(&key), &body, 200, concurrency).await; // warm-up
    let (l, w, f) = run(
        &api,
        &upstream_url,
        None,
        &upstream_body,
        total,
        concurrency,
    )
    .await;
    report("mock upstream directly (baseline)", &l, w, f);
    let baseline = percentile(&l, 0.5);
    let (l, w, f) = run(&api, &gateway_url, Some(&key), &body, total, concurrency).await;
    report("through Tollgate, JSON", &l, w, f);
    let overhead = percentile(&l, 0.5).saturating_sub(baseline);
    let (l, w, f) = run(
        &api,
        &gateway_url,
        Some(&key),
        &streaming,
        total,
        concurrency,
    )
    .await;
    report("through Tollgate, streaming", &l, w, f);
    let (rss, peak) = memory_mib(server.id());
    println!(
        "\nmedian overhead vs direct: {:.2} ms   server memory: {rss_idle:.1} MiB idle, {rss:.1} MiB after, {peak:.1} MiB peak",
        overhead.as_secs_f64() * 1000.0
    );
    let ledger_ok: bool = sqlx::query_scalar(
        "SELECT balance_micros = (SELECT SUM(amount_micros) FROM credit_ledger WHERE user_id = users.id) FROM users WHERE email = 'bench@example.com'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    println!("balance equals ledger sum after the run: {ledger_ok}\n");
    let _ = server.kill();
    let _ = server.wait();
}
