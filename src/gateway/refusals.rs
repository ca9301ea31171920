//! The refused calls' record: a call turned away before admission (bad body,
//! bad or revoked key, restriction, rate limit, credits) is queued for the
//! `gateway_refusals` table, so the monitor and security pages can count
//! refusals by kind, address, key and referrer. Admitted calls are recorded by
//! [`super::settle`] instead.

use axum::http::HeaderMap;

use super::{error::GatewayError, restrictions::caller_host};
use crate::{
    keys::{auth::presented_key, format::ApiKey},
    request_meta::RequestMeta,
    store::{RefusalRow, Store},
};

/// Queues the refusal of a call (server faults are not refusals, and an
/// upstream's own refusal of an admitted call is in its usage record).
pub fn record(store: &Store, meta: &RequestMeta, headers: &HeaderMap, error: &GatewayError) {
    if matches!(
        error,
        GatewayError::Upstream(_) | GatewayError::AfterPrompt(_) | GatewayError::StreamCut(_)
    ) {
        return;
    }
    let api = error.to_api_error();
    if !api.status.is_client_error() {
        return;
    }
    let row = RefusalRow {
        status: api.status.as_u16(),
        code: api.code.unwrap_or("refused").to_owned(),
        client_ip: meta.client_ip.map(|ip| ip.to_string()),
        // Only a well-formed key is named, as the pages show keys: never the secret.
        api_key: presented_key(headers)
            .key()
            .and_then(|k| ApiKey::parse(k).ok())
            .map(|k| format!("{}…{}", k.display_prefix(), k.last_four())),
        referrer: caller_host(headers),
        created_at: crate::store::stored_time(chrono::Utc::now()),
    };
    store.queue(|batch| batch.refusal(row));
}
