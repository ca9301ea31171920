//! The `tollgate` binary itself: configuration errors, `.env`, logs, SIGTERM,
//! and a start after SIGKILL.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

fn base_command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd`, a start that must stop (a bad setting, `--help`), to its end.
/// On a free port, and killed past 30 seconds, failing the test: a
/// regression would otherwise serve for ever.
fn exited(cmd: &mut Command) -> std::process::Output {
    if !cmd.get_envs().any(|(name, _)| name == "TOLLGATE_ADDR") {
        cmd.env("TOLLGATE_ADDR", "127.0.0.1:0");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after 30 seconds: it should have stopped");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Starts the binary on a free port in `dir`; returns it and its address once
/// it says it is listening.
async fn start(dir: &Path) -> (tokio::process::Child, String) {
    start_with(dir, &[]).await
}

/// [`start`] with more settings.
async fn start_with(dir: &Path, settings: &[(&str, &str)]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::from(base_command(dir))
        .env("TOLLGATE_ADDR", "127.0.0.1:0")
        .envs(settings.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server starts listening");
    (child, addr)
}

fn signal(child: &tokio::process::Child, name: &str) {
    let pid = child.id().unwrap().to_string();
    let sent = Command::new("kill").args([name, &pid]).status().unwrap();
    assert!(sent.success());
}

#[test]
fn an_invalid_setting_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("TOLLGATE_ADDR", "not-an-address"),
        ("DATABASE_URL", "mysql://localhost/x"),
        ("RUST_LOG", "info,[["),
    ] {
        let output = exited(base_command(dir.path()).env(var, value));
        assert_eq!(output.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("tollgate: invalid {var}: expected ")),
            "{stderr}"
        );
        assert!(stderr.contains(value), "{stderr}");
    }
    // A value that is not UTF-8 is not taken for unset (nor shown).
    #[cfg(unix)]
    for var in [
        "TOLLGATE_LOG_KEEP_DAYS",
        "TOLLGATE_KEY_SECRET",
        "TOLLGATE_MODELS",
    ] {
        use std::os::unix::ffi::OsStrExt;
        let output =
            exited(base_command(dir.path()).env(var, std::ffi::OsStr::from_bytes(b"secret\xff")));
        assert_eq!(output.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.starts_with(&format!("tollgate: invalid {var}: expected UTF-8 text")),
            "{stderr}"
        );
        assert!(!stderr.contains("secret"), "{stderr}");
    }
}

#[test]
fn settings_are_read_from_a_dot_env_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "TOLLGATE_SHUTDOWN_GRACE_SECS=forever\n",
    )
    .unwrap();
    let output = exited(&mut base_command(dir.path()));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("invalid TOLLGATE_SHUTDOWN_GRACE_SECS"),
        "{stderr}"
    );
}

/// A `.env` line that does not parse stops start-up without repeating it (it
/// may hold a password), and a parent directory's `.env` is not read.
#[test]
fn a_malformed_dot_env_is_not_repeated_and_a_parents_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "# settings\nTOLLGATE_LOG_KEEP_DAYS=3\n\nTOLLGATE_ADMIN_PASSWORD=correct horse battery staple\n",
    )
    .unwrap();
    let output = exited(&mut base_command(dir.path()));
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    // The line by its number and setting, not its value.
    assert!(
        stderr.contains("cannot read .env: line 4 (TOLLGATE_ADMIN_PASSWORD) does not parse"),
        "{stderr}"
    );
    assert!(!stderr.contains("horse"), "{stderr}");
    // Help needs no configuration, so a broken one does not hide it.
    let output = exited(base_command(dir.path()).arg("--help"));
    assert!(output.status.success());
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .starts_with("usage: tollgate")
    );

    // The parent's setting would stop start-up; the child directory has none.
    std::fs::write(
        dir.path().join(".env"),
        "TOLLGATE_SHUTDOWN_GRACE_SECS=forever\n",
    )
    .unwrap();
    let child = dir.path().join("child");
    std::fs::create_dir(&child).unwrap();
    let output = exited(base_command(&child).arg("--help"));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");

    // Asked after a command, help is help, not a usage error.
    let output = exited(base_command(&child).args(["create-admin", "--help"]));
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(
        help.contains("tollgate create-admin [--email EMAIL]"),
        "{help}"
    );
    // Running it alone starts the server: no `serve` command is offered.
    assert!(
        help.contains("start the server") && !help.contains(" serve "),
        "{help}"
    );
}

/// Old log files beyond `TOLLGATE_LOG_KEEP_DAYS` are deleted, so the log
/// directory does not grow for ever.
#[tokio::test]
async fn old_log_files_beyond_the_days_kept_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "TOLLGATE_LOG_KEEP_DAYS=2\n").unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    for day in 1..=6 {
        std::fs::write(logs.join(format!("tollgate.2026-01-0{day}.log")), "{}\n").unwrap();
    }
    std::fs::write(logs.join("notes.txt"), "not a log").unwrap();
    let (mut child, _) = start(dir.path()).await;
    let names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let kept = names.iter().filter(|n| n.starts_with("tollgate.")).count();
    assert!(kept <= 2, "{names:?}");
    assert!(
        names.contains(&"notes.txt".to_owned()),
        "other files stay: {names:?}"
    );
    signal(&child, "-TERM");
    child.wait().await.unwrap();
}

/// Starts with no configuration but the port, in an empty directory: the data
/// directory and database are created, logs carry the request id, and SIGTERM
/// stops the process cleanly.
#[tokio::test]
async fn runs_from_defaults_logs_request_ids_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(dir.path()).await;

    assert!(
        dir.path().join("data/tollgate.db").exists(),
        "default database under data/"
    );

    let response = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // SIGHUP (a closed terminal, a log rotator) is ignored, not the end.
    signal(&child, "-HUP");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(response.status(), 200);

    signal(&child, "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    if !status.success() {
        // What it said on the way out, and the log's last lines.
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut stderr).await;
        }
        let logs: Vec<String> = std::fs::read_dir(dir.path().join("logs"))
            .map(|entries| {
                entries
                    .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        let tail: Vec<&str> = logs.iter().flat_map(|l| l.lines()).rev().take(20).collect();
        panic!(
            "exited with {status} after SIGTERM\nstderr: {stderr}\nlog, newest first: {tail:#?}"
        );
    }

    // The daily file under logs/ holds JSON lines; the request's lines carry its id.
    let log_dir = dir.path().join("logs");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for private in ["logs", "data", "data/tollgate.db"] {
            let mode = std::fs::metadata(dir.path().join(private))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{private} is its owner's alone: {mode:o}");
        }
    }
    let files: Vec<_> = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with("tollgate.") && name.ends_with(".log"),
        "{name}"
    );
    let log = std::fs::read_to_string(&files[0]).unwrap();
    let request_lines: Vec<&str> = log.lines().filter(|l| l.contains(&request_id)).collect();
    assert!(!request_lines.is_empty(), "{log}");
    for line in &request_lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["span"]["request_id"], request_id.as_str());
        assert_eq!(value["span"]["path"], "/readyz");
    }
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("SIGHUP ignored"), "{log}");
}

/// A database whose keys were made under a secret file that is gone (moved
/// or restored without it), or under another secret than the one set, does
/// not start: every key would fail while logins still work. The message says
/// what to do.
#[tokio::test]
async fn a_lost_key_secret_stops_start_up_when_keys_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(dir.path()).await;
    one_time_key(&format!("http://{addr}"), "keeper@example.com").await;
    signal(&child, "-TERM");
    child.wait().await.unwrap();
    std::fs::remove_file(dir.path().join("data/key_secret")).unwrap();
    let output = exited(base_command(dir.path()).env("TOLLGATE_ADDR", "127.0.0.1:0"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("key_secret is missing, but the database holds API keys")
            && stderr.contains("set TOLLGATE_KEY_SECRET"),
        "{stderr}"
    );
    assert!(!dir.path().join("data/key_secret").exists());

    // Nor does another secret set beside it (every key would be refused):
    // that takes `replace-key-secret`, which revokes the keys made under
    // the old one, once.
    let other = "another-secret-of-forty-bytes-or-so-0123456789";
    let with_other = |cmd: &mut Command| {
        cmd.env("TOLLGATE_KEY_SECRET", other);
    };
    let mut command = base_command(dir.path());
    with_other(&mut command);
    let output = exited(&mut command);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(
            "TOLLGATE_KEY_SECRET) is not the one this database's API keys were made under"
        ) && stderr.contains("tollgate replace-key-secret"),
        "{stderr}"
    );
    assert!(!stderr.contains(other), "the secret is not shown: {stderr}");
    let mut command = base_command(dir.path());
    with_other(&mut command);
    let output = exited(command.arg("replace-key-secret"));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    // The key registration made, and the one-time key.
    assert!(stdout.contains("2 API keys were revoked"), "{stdout}");
    let mut command = base_command(dir.path());
    with_other(&mut command);
    let output = exited(command.arg("replace-key-secret"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("nothing to replace"), "{stderr}");
    let (mut child, _) = start_with(dir.path(), &[("TOLLGATE_KEY_SECRET", other)]).await;
    signal(&child, "-TERM");
    child.wait().await.unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("data/tollgate.db").display());
    let db = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    let (unrevoked, replaced): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL),
                (SELECT COUNT(*) FROM audit_events WHERE action = 'keys.secret_replaced')",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((unrevoked, replaced), (0, 1));

    // A database from before the secret was recorded cannot tell a new
    // secret from the keys' own: nothing is revoked.
    sqlx::query("UPDATE instance SET key_secret_check = NULL")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let mut command = base_command(dir.path());
    with_other(&mut command);
    let output = exited(command.arg("replace-key-secret"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("does not record the secret"), "{stderr}");
    // Nor is a database made where a mistyped DATABASE_URL points.
    let mut command = base_command(dir.path());
    with_other(&mut command);
    let output = exited(
        command
            .env("DATABASE_URL", "sqlite://data/tolgate.db")
            .arg("replace-key-secret"),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("no database at data/tolgate.db"),
        "{stderr}"
    );
    assert!(!dir.path().join("data/tolgate.db").exists());
}

/// Start-up says what the operator must fix: a site with no `pkg/` (pages
/// without styles or scripts), an admin email that a user who is not an
/// admin already has (no admin is made), and settings it does not know (a
/// misspelled one leaves its default in place). Said once each: the second start
/// has its `pkg/`.
#[tokio::test]
async fn start_up_warns_of_a_site_without_pkg_and_an_admin_email_a_user_has() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(dir.path()).await;
    one_time_key(&format!("http://{addr}"), "taken@example.com").await;
    signal(&child, "-TERM");
    child.wait().await.unwrap();

    std::fs::create_dir_all(dir.path().join("target/site/pkg")).unwrap();
    // An upstream key may be in a TOLLGATE_ variable of the operator's
    // naming: the table reads it, so it is no unknown setting.
    std::fs::write(
        dir.path().join("models.toml"),
        "[[model]]\nname = \"gpt\"\nprovider = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\napi_key_env = \"TOLLGATE_OPENAI_KEY\"\ninput_price = \"1\"\noutput_price = \"1\"\n",
    )
    .unwrap();
    let (mut again, _) = start_with(
        dir.path(),
        &[
            ("TOLLGATE_ADMIN_EMAIL", "taken@example.com"),
            ("TOLLGATE_ADMIN_PASSWORD", "another-long-passphrase"),
            ("TOLLGATE_MODELS", "models.toml"),
            ("TOLLGATE_OPENAI_KEY", "sk-test"),
            // Misspelled: the default (any origin) stays, so it is said.
            ("TOLLGATE_CORS_ORIGIN", "https://app.example"),
            ("TOLLGATE_WHATEVER", "1"),
        ],
    )
    .await;
    signal(&again, "-TERM");
    again.wait().await.unwrap();

    let mut log = String::new();
    for file in std::fs::read_dir(dir.path().join("logs")).unwrap() {
        log += &std::fs::read_to_string(file.unwrap().path()).unwrap();
    }
    let warnings = |text: &str| {
        log.lines()
            .filter(|line| line.contains("WARN") && line.contains(text))
            .count()
    };
    assert_eq!(warnings("has no pkg/ directory"), 1, "{log}");
    assert_eq!(warnings("is not an administrator"), 1, "{log}");
    assert_eq!(
        warnings(
            "TOLLGATE_CORS_ORIGIN is not a Tollgate setting and is ignored: did you mean TOLLGATE_CORS_ORIGINS?"
        ),
        1,
        "{log}"
    );
    assert_eq!(
        warnings(
            "TOLLGATE_WHATEVER is not a Tollgate setting and is ignored (.env.example lists them)"
        ),
        1,
        "{log}"
    );
    assert_eq!(warnings("not a Tollgate setting"), 2, "{log}");
}

#[test]
fn a_broken_model_table_stops_start_up_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("models.toml"),
        "[[model]]\nname = \"demo\"\nprovider = \"demo\"\ninput_price = \"0\"\noutput_price = \"0\"\n\n[[model]]\nname = \"gpt\"\nprovider = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\napi_key_env = \"TOLLGATE_TEST_UNSET_KEY\"\ninput_price = \"0\"\noutput_price = \"0\"\n",
    )
    .unwrap();
    let output = exited(
        base_command(dir.path())
            .env("TOLLGATE_ADDR", "127.0.0.1:0")
            .env("TOLLGATE_MODELS", "models.toml"),
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("models.toml, line 7"), "{stderr}");
    assert!(stderr.contains("TOLLGATE_TEST_UNSET_KEY"), "{stderr}");
}

/// Registers `email` on the server at `base` and returns a one-time key
/// (named `once`) of theirs.
async fn one_time_key(base: &str, email: &str) -> String {
    key_with_cap(base, email, 1).await
}

/// A new account's key for `cap` calls.
async fn key_with_cap(base: &str, email: &str, cap: u32) -> String {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let registered = browser
        .post(format!("{base}/api/register"))
        .header("origin", base)
        .header("accept", "application/json")
        .form(&[
            ("email", email),
            ("display_name", "Caller"),
            ("password", crate::support::PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert!(registered.status().is_success());
    let created: serde_json::Value = browser
        .post(format!("{base}/api/v1/keys"))
        .header("origin", base)
        .json(&serde_json::json!({
            "name": if cap == 1 { "once" } else { "capped" },
            "usage_cap": cap,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["secret"].as_str().unwrap().to_owned()
}

/// The upstream key, read from the variable the model table names, never
/// reaches the caller, whatever an upstream repeats it in: a chunk or an
/// object passed on as it came, an `error` event, a whole answer.
#[tokio::test]
async fn the_upstream_key_never_reaches_the_caller() {
    use serde_json::{Value, json};
    let mock = crate::support::mock_upstream::MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("models.toml"),
        format!(
            "[[model]]\nname = \"mock\"\nprovider = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"MOCK_UPSTREAM_KEY\"\ninput_price = \"1\"\noutput_price = \"1\"\n",
            mock.base_url()
        ),
    )
    .unwrap();
    let secret = "sk-mock-upstream-SECRET-4242";
    let (child, addr) = start_with(
        dir.path(),
        &[
            ("TOLLGATE_MODELS", "models.toml"),
            ("MOCK_UPSTREAM_KEY", secret),
        ],
    )
    .await;
    let base = format!("http://{addr}");
    // Two accounts: the default plan allows 2 calls a minute.
    let keys = [
        key_with_cap(&base, "leak@example.com", 2).await,
        key_with_cap(&base, "leak2@example.com", 2).await,
    ];
    let call = |stream: bool| {
        reqwest::Client::new()
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(&keys[usize::from(!stream)])
            .json(
                &json!({ "model": "mock", "stream": stream, "max_tokens": 20,
                "messages": [{ "role": "user", "content": "hi" }] }),
            )
            .send()
    };
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({ "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
    };

    // In a chunk, and in an object that is no error by its shape.
    let echoed = json!({ "message": format!("Incorrect API key provided: {secret}") });
    mock.set(|k| {
        k.raw_stream = Some(format!(
            "data: {}\n\ndata: {echoed}\n\ndata: {}\n\ndata: [DONE]\n\n",
            chunk(json!({ "content": format!("the key is {secret}") }), None),
            chunk(json!({}), Some("stop")),
        ));
    });
    let response = call(true).await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains(secret), "{text}");
    assert!(text.contains("the key is [the upstream key]"), "{text}");
    assert!(text.contains("provided: [the upstream key]"), "{text}");
    assert_eq!(
        mock.requests().last().unwrap().authorization.as_deref(),
        Some(format!("Bearer {secret}").as_str()),
        "the upstream got the key"
    );

    // In an `error` event: the stream ends with the gateway's error event.
    mock.set(|k| {
        k.raw_stream = Some(format!(
            "data: {}\n\nevent: error\ndata: {{\"message\":\"bad key {secret}\"}}\n\n",
            chunk(json!({ "content": "Hi" }), None),
        ));
    });
    let text = call(true).await.unwrap().text().await.unwrap();
    assert!(!text.contains(secret), "{text}");
    let (chunks, done) = crate::gateway::read_stream_text(&text);
    assert!(!done, "{text}");
    assert_eq!(chunks.last().unwrap()["error"]["code"], "upstream_error");

    // In a whole answer.
    let answer = json!({
        "id": "c2", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": format!("use {secret}") }, "finish_reason": "stop" }],
    });
    mock.set(|k| k.raw_answer = Some(answer.to_string()));
    let response = call(false).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "use [the upstream key]"
    );
    signal(&child, "-TERM");
}

/// Starts a streamed call of the demo model and waits for its first bytes.
async fn stream_demo(base: &str, key: &str) -> reqwest::Response {
    let mut call = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&serde_json::json!({
            "model": "demo", "stream": true, "max_tokens": 500,
            "messages": [{ "role": "user", "content": "one two three four five six seven eight nine ten" }],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), 200);
    assert!(call.chunk().await.unwrap().is_some(), "the reply began");
    call
}

/// An upstream failure's log line names the model called and what the
/// upstream answered (a used-up quota's 429, though the caller gets 502), so
/// the operator can tell which of several upstreams is failing and why.
#[tokio::test]
async fn an_upstream_failure_is_logged_with_its_model_and_the_upstreams_status() {
    use crate::support::mock_upstream::MockUpstream;
    let mock = MockUpstream::start().await;
    mock.set(|k| {
        k.error_status = Some(axum::http::StatusCode::TOO_MANY_REQUESTS);
        k.error_code = Some("insufficient_quota");
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("models.toml"),
        format!(
            "[[model]]\nname = \"out-of-quota\"\nprovider = \"openai\"\nbase_url = \"{}\"\nupstream_model = \"m\"\ninput_price = \"1\"\noutput_price = \"1\"\n",
            mock.base_url()
        ),
    )
    .unwrap();
    let (mut child, addr) = start_with(dir.path(), &[("TOLLGATE_MODELS", "models.toml")]).await;
    let base = format!("http://{addr}");
    let key = one_time_key(&base, "quota@example.com").await;
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&serde_json::json!({
            "model": "out-of-quota",
            "messages": [{ "role": "user", "content": "hi" }],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    signal(&child, "-TERM");
    child.wait().await.unwrap();
    let log: String = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let failed: serde_json::Value = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["fields"]["message"] == "upstream failed")
        .unwrap_or_else(|| panic!("no upstream failure logged: {log}"));
    assert_eq!(failed["span"]["request_id"], request_id.as_str());
    assert_eq!(failed["span"]["model"], "out-of-quota", "{failed}");
    let error = failed["fields"]["error"].as_str().unwrap();
    assert!(error.starts_with("the upstream answered 429: "), "{error}");
    assert!(error.contains("insufficient_quota"), "{error}");
}

/// SIGTERM with a stream running past the grace period: the stream is
/// stopped, the caller gets the `server_stopping` event before the process
/// exits, and what was sent is charged.
#[tokio::test]
async fn a_stream_running_past_the_grace_period_ends_with_an_error_event() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "TOLLGATE_SHUTDOWN_GRACE_SECS=1\nTOLLGATE_MODELS=models.toml\n",
    )
    .unwrap();
    // A word every 300 ms: a reply far longer than the grace period.
    std::fs::write(
        dir.path().join("models.toml"),
        "[[model]]\nname = \"demo\"\nprovider = \"demo\"\nword_delay_ms = 300\ninput_price = \"1\"\noutput_price = \"1\"\n",
    )
    .unwrap();
    let (mut child, addr) = start(dir.path()).await;
    let base = format!("http://{addr}");
    let key = one_time_key(&base, "stopped@example.com").await;
    let call = stream_demo(&base, &key).await;
    signal(&child, "-TERM");
    let rest = tokio::time::timeout(Duration::from_secs(10), call.text())
        .await
        .expect("the stream ends")
        .expect("the stream ends cleanly");
    assert!(rest.contains(r#""code":"server_stopping""#), "{rest}");
    assert!(!rest.contains("[DONE]"), "{rest}");
    let status = child.wait().await.unwrap();
    assert!(status.success(), "{status}");

    let db_url = format!("sqlite://{}", dir.path().join("data/tollgate.db").display());
    let db = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    let (status, completion, charged, balance, ledger): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT status FROM usage_records),
                (SELECT completion_tokens FROM usage_records),
                (SELECT cost_micros FROM usage_records),
                (SELECT balance_micros FROM users WHERE email = 'stopped@example.com'),
                (SELECT SUM(amount_micros) FROM credit_ledger)",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(status, 503);
    // The words sent, not only the prompt.
    assert!(
        completion > 0 && charged > 0,
        "{completion} tokens, {charged}"
    );
    assert_eq!(balance, ledger);
}

/// A process killed mid-call (SIGKILL, the OOM killer, a container stopped
/// past its timeout) cannot release the call's hold; the next start does, with
/// a `refund` row. The one-time key's use was written as kept when the
/// upstream answered, so the key does not work again.
#[tokio::test]
async fn holds_of_calls_cut_off_by_a_kill_are_refunded_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(dir.path()).await;
    let base = format!("http://{addr}");
    let key = one_time_key(&base, "killed@example.com").await;
    // The demo model streams a word every 40 ms: a second or so of reply.
    let call = stream_demo(&base, &key).await;

    let db_url = format!("sqlite://{}", dir.path().join("data/tollgate.db").display());
    let db = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    let open_holds = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM open_holds")
            .fetch_one(&db)
            .await
            .unwrap()
    };
    // The hold reaches the database within a write-behind batch.
    let written =
        crate::support::read_until(open_holds, |n| *n > 0, 20, Duration::from_millis(20)).await;
    assert_eq!(written, 1, "the running call's hold is on disk");
    let in_flight = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM capped_uses_in_flight")
            .fetch_one(&db)
            .await
            .unwrap()
    };
    // Answered, the use is no longer in flight: it is counted, on disk.
    let left =
        crate::support::read_until(in_flight, |n| *n == 0, 20, Duration::from_millis(20)).await;
    assert_eq!(left, 0, "the answered call's use is still in flight");
    signal(&child, "-KILL");
    child.wait().await.unwrap();
    drop(call);

    let held: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT SUM(amount_micros) FROM credit_ledger WHERE kind IN ('reserve', 'refund')),
                (SELECT usage_count FROM api_keys WHERE name = 'once')",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(
        held.0 < 0 && held.1 == 1,
        "the kill left the hold and the use taken: {held:?}"
    );

    let (mut again, _) = start(dir.path()).await;
    let after: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT SUM(amount_micros) FROM credit_ledger WHERE kind IN ('reserve', 'refund')),
                (SELECT usage_count FROM api_keys WHERE name = 'once'),
                (SELECT balance_micros FROM users WHERE email = 'killed@example.com'),
                (SELECT SUM(amount_micros) FROM credit_ledger)",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(after.0, 0, "every hold released");
    // The refund names the call whose hold it gives back.
    let tied: (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT (SELECT request_id FROM credit_ledger WHERE kind = 'reserve'),
                (SELECT request_id FROM credit_ledger WHERE kind = 'refund')",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(tied.0.is_some() && tied.0 == tied.1, "{tied:?}");
    assert_eq!(after.1, 1, "the answered call kept the one-time key's use");
    assert_eq!(after.2, after.3, "the balance equals the ledger");
    assert_eq!(open_holds().await, 0);
    assert_eq!(in_flight().await, 0);
    signal(&again, "-TERM");
    again.wait().await.unwrap();
}
