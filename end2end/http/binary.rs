//! The `tollgate` binary itself: configuration errors, `.env`, logs and SIGTERM.

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

#[test]
fn an_invalid_setting_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("TOLLGATE_ADDR", "not-an-address"),
        ("DATABASE_URL", "mysql://localhost/x"),
        ("RUST_LOG", "info,[["),
    ] {
        let output = base_command(dir.path()).env(var, value).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("tollgate: invalid {var}: expected ")),
            "{stderr}"
        );
        assert!(stderr.contains(value), "{stderr}");
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
    let output = base_command(dir.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("invalid TOLLGATE_SHUTDOWN_GRACE_SECS"),
        "{stderr}"
    );
}

/// Starts with no configuration but the port, in an empty directory: the data
/// directory and database are created, logs carry the request id, and SIGTERM
/// stops the process cleanly.
#[tokio::test]
async fn runs_from_defaults_logs_request_ids_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::from(base_command(dir.path()))
        .env("TOLLGATE_ADDR", "127.0.0.1:0")
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

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");

    // The daily file under logs/ holds JSON lines; the request's lines carry its id.
    let log_dir = dir.path().join("logs");
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
}

#[test]
fn a_broken_model_table_stops_start_up_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("models.toml"),
        "[[model]]\nname = \"demo\"\nprovider = \"demo\"\n\n[[model]]\nname = \"gpt\"\nprovider = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\napi_key_env = \"TOLLGATE_TEST_UNSET_KEY\"\n",
    )
    .unwrap();
    let output = base_command(dir.path())
        .env("TOLLGATE_ADDR", "127.0.0.1:0")
        .env("TOLLGATE_MODELS", "models.toml")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("models.toml, line 5"), "{stderr}");
    assert!(stderr.contains("TOLLGATE_TEST_UNSET_KEY"), "{stderr}");
}
