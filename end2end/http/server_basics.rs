//! Request ids, body limits and graceful shutdown.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{spawn_app, spawn_app_with};

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let mut seen = Vec::new();
    for path in ["/", "/healthz", "/readyz", "/missing"] {
        let response = app.get(path).await;
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(id.len(), 36, "{path}: a UUID, got {id}");
        seen.push(id);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "each request gets its own id");
}

#[tokio::test]
async fn a_caller_supplied_request_id_is_kept() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc-123");

    // One that does not look like an id (too long, or with spaces) is
    // replaced: it would be written into every log line of the request.
    for unusable in ["r".repeat(65), "two words".to_owned()] {
        let response = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", unusable.as_str())
            .send()
            .await
            .unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert!(id != unusable && id.len() == 36, "{id}");
    }
}

#[tokio::test]
async fn oversized_bodies_get_413_in_openai_shape() {
    let app = spawn_app_with(&[("TOLLGATE_MAX_BODY_BYTES", "2048")]).await;
    let response = app
        .client
        .post(app.url("/api/status"))
        .header("origin", &app.base_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_too_large");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("2048"));
    assert!(body["error"].get("param").is_some());
}

#[tokio::test]
async fn oversized_streamed_bodies_without_length_get_413() {
    let app = spawn_app_with(&[("TOLLGATE_MAX_BODY_BYTES", "2048")]).await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b'a'; 1024])).collect();
    let response = app
        .client
        .post(app.url("/api/status"))
        .header("origin", &app.base_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_too_large");
}

/// A compressed body is refused as such on the model API, not read as broken
/// JSON, nor a plain body labelled compressed read as if it were not; an
/// empty one labelled so passes.
#[tokio::test]
async fn compressed_bodies_get_415_in_openai_shape() {
    let app = spawn_app().await;
    for (encoding, body, expected) in [
        ("gzip", "{}", 415),
        ("br", "{}", 415),
        ("gzip", "", 400),
        ("identity", "{}", 400),
    ] {
        let response = app
            .client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth("tg_live_x")
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, expected, "{encoding}: {body}");
        if expected == 415 {
            assert_eq!(body["error"]["code"], "unsupported_content_encoding");
            assert_eq!(body["error"]["type"], "invalid_request_error");
        } else {
            assert_eq!(
                body["error"]["code"], "invalid_request",
                "read as sent: {body}"
            );
        }
    }
}

/// A request whose body is still arriving when shutdown begins is answered in full.
#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let mut app = spawn_app().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let body = b"x=1";
    let head = format!(
        "POST /api/status HTTP/1.1\r\nHost: {}\r\nOrigin: http://{}\r\nAccept: application/json\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        app.addr,
        app.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // the handler is now waiting for the body

    app.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = app.server.take().unwrap();
    assert!(
        !server.is_finished(),
        "the server waits for the in-flight request"
    );
    // New connections are refused once shutdown has begun.
    assert!(tokio::net::TcpStream::connect(app.addr).await.is_err());

    stream.write_all(body).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"database_ready\":true"), "{response}");

    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops after the last request")
        .unwrap()
        .unwrap();
}

/// A connection that never sent a request does not hold the shutdown up (it
/// would, until the grace period ran out, and the last write with it).
#[tokio::test]
async fn an_idle_connection_does_not_delay_shutdown() {
    let mut app = spawn_app().await;
    let mut silent = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut idle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!("GET /healthz HTTP/1.1\r\nhost: {}\r\n\r\n", app.addr);
    idle.write_all(head.as_bytes()).await.unwrap();
    assert!(read_answer(&mut idle).await.is_some());
    tokio::time::sleep(Duration::from_millis(100)).await;

    app.begin_shutdown();
    let server = app.server.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops at once, not after the grace period")
        .unwrap()
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(silent.read(&mut byte).await.unwrap_or(0), 0, "closed");
}

/// A second server is refused on a database file a running one uses: at its
/// start it would give back the running calls' credit holds as if their
/// process had stopped. Also when it names the file by another name (a
/// symbolic link). Once the first stops, a server starts on the file.
#[tokio::test]
async fn a_second_server_on_the_same_database_is_refused() {
    let app = spawn_app().await;
    let second_on = |path: std::path::PathBuf| async move {
        let url = format!("sqlite://{}", path.display());
        let env = std::collections::HashMap::from([
            ("TOLLGATE_ADDR", "127.0.0.1:0"),
            ("DATABASE_URL", url.as_str()),
        ]);
        let config = tollgate::config::Config::from_lookup(|k| env.get(k).map(|v| (*v).to_owned()))
            .expect("a valid config");
        tollgate::startup::Application::build(config)
            .await
            .err()
            .expect("the second server is refused")
    };
    let refused = second_on(app.db_path.clone()).await;
    assert!(
        matches!(refused, tollgate::startup::StartupError::AlreadyRunning(_)),
        "{refused}"
    );
    #[cfg(unix)]
    {
        let elsewhere = tempfile::tempdir().unwrap();
        let link = elsewhere.path().join("other.db");
        std::os::unix::fs::symlink(&app.db_path, &link).unwrap();
        let refused = second_on(link).await;
        assert!(
            matches!(refused, tollgate::startup::StartupError::AlreadyRunning(_)),
            "{refused}"
        );
    }
    assert_eq!(app.get("/healthz").await.status(), 200);

    let restarted = app.restart(&[]).await;
    assert_eq!(restarted.get("/healthz").await.status(), 200);
}

/// One HTTP/1.1 answer read off `stream`: its status line and body (by its
/// `content-length`); `None` when the server closed the connection instead.
async fn read_answer(stream: &mut tokio::net::TcpStream) -> Option<(String, String)> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|n| n.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&bytes[end + 4..end + 4 + length]).to_string();
                return Some((head.lines().next().unwrap_or_default().to_owned(), body));
            }
        }
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        if read == 0 {
            return None;
        }
        bytes.extend_from_slice(&chunk[..read]);
    }
}

/// A refusal that needs no body (an unknown route, a wrong method) still
/// reads it, so the connection stays open for the next call: the OpenAI SDKs
/// reuse theirs, and saw the close as a failed call.
#[tokio::test]
async fn an_early_refusal_keeps_the_connection_for_the_next_call() {
    let app = spawn_app().await;
    let address = app.base_url.trim_start_matches("http://").to_owned();
    for (method, path) in [("POST", "/v1/nothing"), ("DELETE", "/v1/models/demo")] {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // The body comes a moment after the head, as on a busy client.
        tokio::time::sleep(Duration::from_millis(200)).await;
        stream.write_all(b"{}").await.unwrap();
        let (status, body) = read_answer(&mut stream).await.expect("an answer");
        assert!(
            status.contains("404") || status.contains("405"),
            "{status}: {body}"
        );
        let next = format!("GET /healthz HTTP/1.1\r\nhost: {address}\r\n\r\n");
        stream.write_all(next.as_bytes()).await.unwrap();
        let answer = read_answer(&mut stream).await;
        let (status, _) =
            answer.unwrap_or_else(|| panic!("{method} {path}: the connection was closed"));
        assert!(status.contains("200"), "{status}");
    }
}

/// A connection that sends nothing, or its headers a byte at a time, is
/// closed once `TOLLGATE_HEADER_TIMEOUT_SECS` pass, as is one idle after a
/// request: one client cannot hold every file descriptor.
#[tokio::test]
async fn connections_that_send_no_request_are_closed_after_the_header_timeout() {
    let app = spawn_app_with(&[("TOLLGATE_HEADER_TIMEOUT_SECS", "1")]).await;
    let address = app.base_url.trim_start_matches("http://").to_owned();
    let closed_within = |mut stream: tokio::net::tcp::OwnedReadHalf, secs: u64| async move {
        let mut byte = [0u8; 1024];
        // Read until the server closes (0 bytes) or the wait runs out.
        tokio::time::timeout(Duration::from_secs(secs), async {
            loop {
                match stream.read(&mut byte).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    };

    let silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    assert!(
        closed_within(silent.into_split().0, 5).await,
        "a silent connection is closed"
    );

    // The start of HTTP/2's preface, then nothing: timed all the same.
    let mut preface = tokio::net::TcpStream::connect(&address).await.unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    assert!(
        closed_within(preface.into_split().0, 5).await,
        "a part of a preface is timed"
    );

    // The headers would take 6.6 s a byte at a time: the connection is
    // closed while they still come, a second or so after it opened, not a
    // second after the last byte.
    let (reader, mut writer) = tokio::net::TcpStream::connect(&address)
        .await
        .unwrap()
        .into_split();
    let trickle = tokio::spawn(async move {
        for byte in b"GET /healthz HTTP/1.1\r\nhost: x\r\n" {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    assert!(
        closed_within(reader, 3).await,
        "slow headers are cut off while they come"
    );
    trickle.abort();

    // A request answered, then idle: closed too, after its answer.
    let mut idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!("GET /healthz HTTP/1.1\r\nhost: {address}\r\n\r\n");
    idle.write_all(head.as_bytes()).await.unwrap();
    let (status, _) = read_answer(&mut idle).await.expect("an answer");
    assert!(status.contains("200"), "{status}");
    assert!(
        closed_within(idle.into_split().0, 5).await,
        "an idle connection is closed"
    );
}

/// A request body that sends nothing for `TOLLGATE_HEADER_TIMEOUT_SECS` is
/// answered 408, OpenAI-shaped, and its connection closed, on the model API
/// and the dashboard's alike; a body that keeps coming, however slowly, is
/// read to its end.
#[tokio::test]
async fn a_body_that_stops_arriving_is_answered_408() {
    let app = spawn_app_with(&[("TOLLGATE_HEADER_TIMEOUT_SECS", "1")]).await;
    let address = app.base_url.trim_start_matches("http://").to_owned();
    let body = br#"{"model":"demo","messages":[{"role":"user","content":"hi"}]}"#;
    let head = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        )
    };
    let until_closed = |mut stream: tokio::net::TcpStream| async move {
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("answered and closed within 5 s")
            .unwrap();
        String::from_utf8_lossy(&answer).to_ascii_lowercase()
    };

    for path in ["/v1/chat/completions", "/api/v1/keys"] {
        let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
        stalled.write_all(head(path).as_bytes()).await.unwrap();
        stalled.write_all(&body[..10]).await.unwrap();
        let answer = until_closed(stalled).await;
        assert!(answer.starts_with("http/1.1 408"), "{path}: {answer}");
        assert!(answer.contains("connection: close"), "{path}: {answer}");
        assert!(
            answer.contains(r#""code":"request_timeout""#),
            "{path}: {answer}"
        );
    }

    // Ten bytes every 300 ms: two seconds in all, but never a second's pause.
    let mut steady = tokio::net::TcpStream::connect(&address).await.unwrap();
    steady
        .write_all(head("/v1/chat/completions").as_bytes())
        .await
        .unwrap();
    for piece in body.chunks(10) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        steady.write_all(piece).await.unwrap();
    }
    let (status, answer) = read_answer(&mut steady).await.expect("an answer");
    assert!(
        status.contains("401"),
        "read whole, then refused for the key: {status} {answer}"
    );
}
