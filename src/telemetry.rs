//! Logging: human-readable lines on stdout and JSON lines in a daily-rotated file.
//!
//! Each HTTP request gets a span carrying its `x-request-id`, so every line logged
//! while serving it names the same id the client sees in the response header.

use std::io::IsTerminal;

use axum::http::Request;
use tower_http::request_id::RequestId;
use tracing::Span;
use tracing_appender::{
    non_blocking::WorkerGuard,
    rolling::{RollingFileAppender, Rotation},
};
use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::Config;

/// Installs the global subscriber. Keep the guard alive until exit: dropping it
/// flushes the file writer.
pub fn init(config: &Config) -> Result<WorkerGuard, String> {
    let cannot_write = |e: std::io::Error| {
        format!(
            "invalid TOLLGATE_LOG_DIR: cannot write logs to {}: {e}",
            config.log_dir.display()
        )
    };
    // Before the appender: pruning old files reads the directory first, and
    // reports a missing one on stderr. Made for its owner alone: the logs
    // name accounts and client addresses.
    crate::store::create_private_dir(&config.log_dir).map_err(cannot_write)?;
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .max_log_files(config.log_keep_days)
        .filename_prefix("tollgate")
        .filename_suffix("log")
        .build(&config.log_dir)
        .map_err(|e| {
            format!(
                "invalid TOLLGATE_LOG_DIR: cannot write logs to {}: {e}",
                config.log_dir.display()
            )
        })?;
    let (file_writer, guard) = tracing_appender::non_blocking(appender);

    // The filter was validated when the config was read.
    let filter =
        EnvFilter::try_new(&config.log_filter).map_err(|e| format!("invalid RUST_LOG: {e}"))?;
    tracing_subscriber::registry()
        .with(filter)
        .with(
            fmt::layer()
                .compact()
                .with_ansi(std::io::stdout().is_terminal()),
        )
        .with(
            fmt::layer()
                .json()
                .with_current_span(true)
                .with_writer(file_writer),
        )
        .try_init()
        .map_err(|e| format!("logging was already initialised: {e}"))?;
    Ok(guard)
}

/// The span every request runs in. Only the path is recorded: query strings may
/// carry things that do not belong in logs.
pub fn request_span<B>(request: &Request<B>) -> Span {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        model = tracing::field::Empty,
    )
}

/// Names the model a failing call asked for in its request's log lines, so
/// the operator sees which upstream failed. Recorded only on failure: it
/// costs a formatted field, on every call's path otherwise.
pub fn note_model(model: &str) {
    tracing::Span::current().record("model", model);
}
