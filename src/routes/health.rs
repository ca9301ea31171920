//! `GET /healthz` (the process answers) and `GET /readyz` (the database
//! answers, and takes the records calls leave).

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use crate::startup::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        // Reads work, but the records calls leave cannot be written (a full
        // disk, a read-only file): the gateway takes no calls.
        Ok(()) if state.store.writes_failing() => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "database": "writes failing" })),
        ),
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": "ok" })),
        ),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "unreachable" })),
            )
        }
    }
}
