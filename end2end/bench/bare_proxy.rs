//! The benchmark's reference proxy: it forwards `POST /v1/chat/completions` to
//! one upstream and does nothing else. It is built on what Tollgate is built
//! on (axum serving, one shared reqwest client, tokio's multi-threaded runtime,
//! mimalloc, the release profile), so the benchmark can show what that stack
//! costs on its own and what Tollgate's pipeline adds to it. Not part of
//! Tollgate; nothing but `end2end/http/bench.rs` starts it.
//!
//! ```sh
//! bare-proxy 127.0.0.1:4000 http://127.0.0.1:5000/v1/chat/completions
//! ```

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    url: reqwest::Url,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(listen), Some(url)) = (args.first(), args.get(1)) else {
        eprintln!("usage: bare-proxy LISTEN_ADDR UPSTREAM_URL");
        return std::process::ExitCode::from(2);
    };
    let url = match url.parse() {
        Ok(url) => url,
        Err(error) => {
            eprintln!("bare-proxy: invalid upstream URL {url:?}: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("bare-proxy: cannot listen on {listen}: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let upstream = Upstream {
        client: reqwest::Client::new(),
        url,
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(forward))
        .with_state(upstream);
    // As Tollgate does: without TCP_NODELAY each stream chunk waits for an ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    match axum::serve(listener, app).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bare-proxy: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The body goes up as it came; a stream comes back chunk by chunk, anything
/// else whole, as Tollgate answers.
async fn forward(State(upstream): State<Upstream>, body: Bytes) -> Response {
    let sent = upstream
        .client
        .post(upstream.url.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let Ok(answer) = sent else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let streaming = content_type
        .as_ref()
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let body = if streaming {
        Body::from_stream(answer.bytes_stream())
    } else {
        match answer.bytes().await {
            Ok(bytes) => Body::from(bytes),
            Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}
