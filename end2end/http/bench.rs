//! The gateway benchmark: throughput, latency overhead and memory of the real
//! `tollgate` binary in front of the mock upstream. Not a test: it asserts
//! nothing about speed and is ignored by default. Run it (release build) with
//!
//! ```sh
//! cargo test --release --features ssr --test http bench -- --ignored --nocapture
//! ```
//!
//! Two kinds of load, JSON and streaming, each three ways: on the mock
//! directly, through the bare proxy (`end2end/bench/bare_proxy.rs`: the same
//! HTTP stack doing nothing but forward, so what is left is the pipeline's own
//! cost) and through Tollgate:
//! - closed loop: `BENCH_REQUESTS` calls (default 20000: a second or more
//!   on each route; 2,000 lasted a tenth of one), `BENCH_CONCURRENCY` at a
//!   time (default 32), for the most requests a second each can serve;
//! - open loop: a call started every 1/`BENCH_RATE` of a second (default 2000 a
//!   second) for `BENCH_SECONDS` (default 5) on each route, whatever the
//!   answers do, for the latency each proxy adds at that rate (its percentile
//!   minus the mock's). The routes take one-second turns, so noise on the
//!   machine falls on all of them alike.

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

/// What the server process has used so far.
#[derive(Clone, Copy, Default)]
struct Used {
    /// CPU seconds, user and system.
    cpu: f64,
    /// read and write system calls through the file layer (`syscr` and
    /// `syscw`): writes to sockets (`writev`; `recv` and `send` are not
    /// counted), wake-ups of parked runtime threads and database file I/O.
    io_calls: f64,
    /// Context switches over all its threads: how often a thread slept and woke.
    switches: f64,
}

impl std::ops::Add for Used {
    type Output = Used;
    fn add(self, other: Used) -> Used {
        Used {
            cpu: self.cpu + other.cpu,
            io_calls: self.io_calls + other.io_calls,
            switches: self.switches + other.switches,
        }
    }
}

impl std::ops::Sub for Used {
    type Output = Used;
    fn sub(self, earlier: Used) -> Used {
        Used {
            cpu: self.cpu - earlier.cpu,
            io_calls: self.io_calls - earlier.io_calls,
            switches: self.switches - earlier.switches,
        }
    }
}

fn used(pid: u32) -> Used {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let number_after = |text: &str, label: &str| {
        text.lines()
            .filter_map(|line| line.strip_prefix(label))
            .filter_map(|rest| rest.trim().parse::<f64>().ok())
            .sum::<f64>()
    };
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let switches = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|task| {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            number_after(&status, "voluntary_ctxt_switches:")
                + number_after(&status, "nonvoluntary_ctxt_switches:")
        })
        .sum();
    Used {
        // utime and stime are the 14th and 15th fields; CLK_TCK is 100 on Linux.
        cpu: (ticks(11) + ticks(12)) / 100.0,
        io_calls: number_after(&io, "syscr:") + number_after(&io, "syscw:"),
        switches,
    }
}

/// CPU time the hypervisor gave to other machines (`steal` in `/proc/stat`), in
/// seconds over all cores. On a shared virtual machine this is what makes one
/// run's tail differ from the next.
fn stolen_seconds() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            let cpu = stat.lines().next()?.split_whitespace().collect::<Vec<_>>();
            cpu.get(8)?.parse::<f64>().ok()
        })
        .map_or(0.0, |ticks| ticks / 100.0)
}

/// The calls of one run.
struct Outcome {
    /// Sorted.
    latencies: Vec<Duration>,
    wall: Duration,
    failures: usize,
    /// The share of the machine's CPU time stolen by the hypervisor meanwhile.
    stolen: f64,
}

impl Outcome {
    /// Several runs' calls as one run.
    fn pooled(runs: Vec<Outcome>) -> Outcome {
        let wall: Duration = runs.iter().map(|r| r.wall).sum();
        let stolen = runs
            .iter()
            .map(|r| r.stolen * r.wall.as_secs_f64())
            .sum::<f64>()
            / wall.as_secs_f64().max(f64::MIN_POSITIVE);
        let failures = runs.iter().map(|r| r.failures).sum();
        let mut latencies: Vec<Duration> = runs.into_iter().flat_map(|r| r.latencies).collect();
        latencies.sort();
        Outcome {
            latencies,
            wall,
            failures,
            stolen,
        }
    }

    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }

    fn new(
        mut latencies: Vec<Duration>,
        started: Instant,
        failures: usize,
        stolen_before: f64,
    ) -> Self {
        latencies.sort();
        let wall = started.elapsed();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        Outcome {
            latencies,
            wall,
            failures,
            stolen: (stolen_seconds() - stolen_before) / (wall.as_secs_f64() * cores),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Sends `total` calls, `concurrency` at a time.
async fn run(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: &Value,
    total: usize,
    concurrency: usize,
) -> Outcome {
    let stolen_before = stolen_seconds();
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
    let latencies = results.into_iter().map(|(d, _)| d).collect();
    Outcome::new(latencies, started, failures, stolen_before)
}

/// Starts a call every `1 / rate` seconds for `seconds`, each on its own task,
/// reading each answer to its end. The starts are spaced by a thread that
/// sleeps to each one: tokio's timer ticks once a millisecond, so its interval
/// started calls in pairs at 2,000 a second.
async fn paced(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: &Value,
    rate: usize,
    seconds: usize,
) -> Outcome {
    let stolen_before = stolen_seconds();
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let count = rate * seconds;
    let runtime = tokio::runtime::Handle::current();
    let (client, url, key, body) = (
        client.clone(),
        url.to_owned(),
        key.map(str::to_owned),
        body.clone(),
    );
    let started = Instant::now();
    let calls = tokio::task::spawn_blocking(move || {
        (0..count)
            .map(|i| {
                let due = started + period.mul_f64(i as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let mut request = client.post(&url).json(&body);
                if let Some(key) = &key {
                    request = request.bearer_auth(key);
                }
                runtime.spawn(async move {
                    let begun = Instant::now();
                    let ok = match request.send().await {
                        Ok(response) => {
                            let ok = response.status().is_success();
                            ok && response.bytes().await.is_ok()
                        }
                        Err(_) => false,
                    };
                    (begun.elapsed(), ok)
                })
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("the pacing thread does not panic");
    let mut latencies = Vec::with_capacity(calls.len());
    let mut failures = 0;
    for call in calls {
        match call.await {
            Ok((latency, ok)) => {
                latencies.push(latency);
                failures += usize::from(!ok);
            }
            Err(_) => failures += 1,
        }
    }
    Outcome::new(latencies, started, failures, stolen_before)
}

/// One way to reach the mock: directly, through the bare proxy, or through
/// Tollgate; `pid` is the process in between.
struct Route<'a> {
    label: &'static str,
    url: String,
    key: Option<&'a str>,
    json: &'a Value,
    streaming: &'a Value,
    pid: Option<u32>,
}

impl Route<'_> {
    fn body(&self, stream: bool) -> &Value {
        if stream { self.streaming } else { self.json }
    }
}

/// What the process in between used since the last call, per process.
struct Meter {
    marks: Vec<(u32, Used)>,
}

impl Meter {
    fn since_last(&mut self, pid: Option<u32>) -> Option<Used> {
        let pid = pid?;
        let now = used(pid);
        let earlier = match self.marks.iter_mut().find(|(p, _)| *p == pid) {
            Some((_, mark)) => std::mem::replace(mark, now),
            None => {
                self.marks.push((pid, now));
                Used::default()
            }
        };
        Some(now - earlier)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The latency `through` adds to `direct` at p50, p90 and p99.
fn added(label: &str, direct: &Outcome, through: &Outcome) {
    let at = |p: f64| ms(percentile(&through.latencies, p)) - ms(percentile(&direct.latencies, p));
    println!(
        "{label:<44} added latency: p50 {:>6.2} ms   p90 {:>6.2} ms   p99 {:>6.2} ms",
        at(0.50),
        at(0.90),
        at(0.99)
    );
}

/// One line of results; `server` is what the process in between used for
/// these calls (steadier than requests a second when the load generator and
/// the mock share the cores with it).
fn report(label: &str, outcome: &Outcome, server: Option<Used>) {
    let latencies = &outcome.latencies;
    let cpu = server.map_or(String::new(), |used| {
        let calls = latencies.len().max(1) as f64;
        format!(
            "   in between, a call: CPU {:>4.0} µs, {:>4.1} read/write calls, {:>4.1} context switches",
            used.cpu * 1e6 / calls,
            used.io_calls / calls,
            used.switches / calls,
        )
    });
    println!(
        "{label:<44} {:>8.0} req/s   p50 {:>6.2} ms   p90 {:>6.2} ms   p99 {:>6.2} ms   failures {}   stolen {:>4.1}%{cpu}",
        outcome.rate(),
        ms(percentile(latencies, 0.50)),
        ms(percentile(latencies, 0.90)),
        ms(percentile(latencies, 0.99)),
        outcome.failures,
        outcome.stolen * 100.0,
    );
}

fn kind(stream: bool) -> &'static str {
    if stream { "streaming" } else { "JSON" }
}

/// Waits until `base` answers `path` with a success, for up to ten seconds.
async fn wait_until_up(client: &reqwest::Client, url: &str) {
    for _ in 0..100 {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not answer within ten seconds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark, not a test; see the module docs"]
async fn gateway_benchmark() {
    let total = setting("BENCH_REQUESTS", 20000);
    let concurrency = setting("BENCH_CONCURRENCY", 32);
    let rate = setting("BENCH_RATE", 2000).max(1);
    let seconds = setting("BENCH_SECONDS", 5).max(1);
    let mock = MockUpstream::start().await;
    let upstream_url = format!("{}/chat/completions", mock.base_url());
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
    // Another build to compare: BENCH_SERVER_BIN=path/to/tollgate cargo test …
    let server_bin =
        std::env::var("BENCH_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tollgate").into());
    let mut server = Command::new(server_bin)
        .current_dir(dir.path())
        .env_clear()
        .env("TOLLGATE_ADDR", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_MODELS", "models.toml")
        .env("TOLLGATE_IP_REQUESTS_PER_MINUTE", "1000000")
        .env("TOLLGATE_IP_REQUESTS_PER_DAY", "1000000")
        .env("TOLLGATE_SIGNUP_CREDITS", "1000000")
        .env("RUST_LOG", "warn")
        // Another runtime size to try: TOKIO_WORKER_THREADS=1 cargo test …
        .envs(std::env::var("TOKIO_WORKER_THREADS").map(|n| ("TOKIO_WORKER_THREADS", n)))
        .stdout(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let bare_port = free_port();
    let mut bare = Command::new(env!("CARGO_BIN_EXE_bare-proxy"))
        .args([format!("127.0.0.1:{bare_port}"), upstream_url.clone()])
        .env_clear()
        .envs(std::env::var("TOKIO_WORKER_THREADS").map(|n| ("TOKIO_WORKER_THREADS", n)))
        .stdout(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    wait_until_up(&client, &format!("{base}/readyz")).await;
    // It knows one route: any answer but a refused connection means it is up.
    wait_until_up(&client, &format!("http://127.0.0.1:{bare_port}/")).await;
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
    // Changed behind the server's back: its read cache serves the old plan for
    // up to a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
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
    let mut streaming = body.clone();
    streaming["stream"] = json!(true);
    // What Tollgate sends up for those (the upstream model name, and the
    // usage chunk asked for), so every route asks the mock for the same.
    let upstream_body = json!({ "model": "mock-small", "messages": [{ "role": "user", "content": "Say hello" }], "max_tokens": 64 });
    let mut upstream_streaming = upstream_body.clone();
    upstream_streaming["stream"] = json!(true);
    upstream_streaming["stream_options"] = json!({ "include_usage": true });

    let routes = [
        Route {
            label: "mock upstream directly",
            url: upstream_url.clone(),
            key: None,
            json: &upstream_body,
            streaming: &upstream_streaming,
            pid: None,
        },
        Route {
            label: "through the bare proxy",
            url: format!("http://127.0.0.1:{bare_port}/v1/chat/completions"),
            key: None,
            json: &upstream_body,
            streaming: &upstream_streaming,
            pid: Some(bare.id()),
        },
        Route {
            label: "through Tollgate",
            url: format!("{base}/v1/chat/completions"),
            key: Some(&key),
            json: &body,
            streaming: &streaming,
            pid: Some(server.id()),
        },
    ];
    for route in &routes[1..] {
        run(&api, &route.url, route.key, route.json, 200, concurrency).await; // warm-up
    }
    let mut meter = Meter { marks: Vec::new() };

    println!("\nclosed loop: {total} calls, {concurrency} at a time, mock upstream on loopback\n");
    for stream in [false, true] {
        let mut rates = Vec::new();
        for route in &routes {
            meter.since_last(route.pid);
            let outcome = run(
                &api,
                &route.url,
                route.key,
                route.body(stream),
                total,
                concurrency,
            )
            .await;
            report(
                &format!("{}, {}", route.label, kind(stream)),
                &outcome,
                meter.since_last(route.pid),
            );
            rates.push(outcome.rate());
        }
        println!(
            "{:<44} bare proxy {:.0}%, Tollgate {:.0}% of the direct rate\n",
            format!("throughput, {}:", kind(stream)),
            rates[1] / rates[0] * 100.0,
            rates[2] / rates[0] * 100.0,
        );
    }

    println!("open loop: {rate} calls a second for {seconds} s each, in one-second turns\n");
    for stream in [false, true] {
        // One second of each route in turn, the order rotating, so a spell of
        // noise on the machine (CPU stolen by the hypervisor) falls on every
        // route alike rather than on whichever ran at that moment.
        let mut slices: Vec<Vec<Outcome>> = routes.iter().map(|_| Vec::new()).collect();
        let mut used_by: Vec<Option<Used>> = routes.iter().map(|_| None).collect();
        for turn in 0..seconds {
            for offset in 0..routes.len() {
                let at = (turn + offset) % routes.len();
                let route = &routes[at];
                meter.since_last(route.pid);
                let slice = paced(&api, &route.url, route.key, route.body(stream), rate, 1).await;
                if let Some(used) = meter.since_last(route.pid) {
                    used_by[at] = Some(used_by[at].map_or(used, |sum| sum + used));
                }
                slices[at].push(slice);
            }
        }
        let outcomes: Vec<Outcome> = slices.into_iter().map(Outcome::pooled).collect();
        for ((route, outcome), used) in routes.iter().zip(&outcomes).zip(used_by) {
            report(&format!("{}, {}", route.label, kind(stream)), outcome, used);
        }
        added(
            &format!("bare proxy over direct, {}", kind(stream)),
            &outcomes[0],
            &outcomes[1],
        );
        added(
            &format!("Tollgate over direct, {}", kind(stream)),
            &outcomes[0],
            &outcomes[2],
        );
        added(
            &format!("Tollgate over the bare proxy, {}", kind(stream)),
            &outcomes[1],
            &outcomes[2],
        );
        println!();
    }

    let (rss, peak) = memory_mib(server.id());
    println!("Tollgate's memory: {rss_idle:.1} MiB idle, {rss:.1} MiB after, {peak:.1} MiB peak");
    let _ = bare.kill();
    let _ = bare.wait();
    // Stop the server as SIGTERM does, so it writes what it queued, then check.
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    let ledger_ok: bool = sqlx::query_scalar(
        "SELECT balance_micros = (SELECT SUM(amount_micros) FROM credit_ledger WHERE user_id = users.id) FROM users WHERE email = 'bench@example.com'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let calls: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_records")
        .fetch_one(&db)
        .await
        .unwrap();
    println!("after shutdown: {calls} usage records; balance equals ledger sum: {ledger_ok}\n");
    let _ = server.kill();
    let _ = server.wait();
}
