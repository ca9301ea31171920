//! The usage export (`/api/v1/usage/export`): the caller's calls between two
//! dates as CSV, for a signed-in session or a key with `keys:read`. The
//! `/usage` page links to it; `usage::export` writes it. The admin API's
//! export of an account's calls answers through the same functions.

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::{Stream, TryStreamExt};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{
    api_caller::{Caller, Needs},
    api_error::{ApiError, ErrorResponse},
    routes::ApiQuery,
    startup::AppState,
    store::StoreError,
    usage::export::{self, ExportRange},
};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// The first day, `YYYY-MM-DD` (UTC); by default 29 days before `to`
    /// (no earlier than year 1).
    from: Option<String>,
    /// The last day, included; by default today (UTC).
    to: Option<String>,
}

/// Every call the account made between two days, oldest first, as CSV with
/// a header row: `time_utc, request_id, key, key_last_four, model, stream,
/// status, error_code, prompt_tokens, completion_tokens, total_tokens,
/// cost_credits, cost_micros, latency_ms`. Cells a spreadsheet would run as a
/// formula start with `'`.
#[utoipa::path(get, path = "/api/v1/usage/export", tag = "usage", params(ExportQuery),
    security(("session" = []), ("api_key" = ["keys:read"])),
    responses(
        (status = 200, description = "The calls as CSV (`text/csv`), saved as `tollgate-usage-<from>-to-<to>.csv`", content_type = "text/csv", body = String),
        (status = 400, description = "A day is not a date, or `from` is after `to`", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "The key lacks the scope, or is a rotated key's previous secret (`previous_secret`)", body = ErrorResponse),
    ))]
pub async fn export_calls(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, Response> {
    caller.require(Needs::Read)?;
    let range = query.range()?;
    let user_id = caller.user().id;
    let rows = export::calls_csv(state.store.clone(), user_id, range)
        .await
        .map_err(|error| {
            tracing::error!(%error, "the usage export could not be read");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal_error",
                "The usage could not be read. Try again.",
            )
        })?;
    Ok(csv_download(&range.file_name(), user_id, rows))
}

impl ExportQuery {
    /// The days asked for, or the API's 400 naming the parameter at fault.
    pub(crate) fn range(&self) -> Result<ExportRange, ApiError> {
        ExportRange::parse(
            self.from.as_deref(),
            self.to.as_deref(),
            chrono::Utc::now().date_naive(),
        )
        .map_err(|error| ApiError {
            param: Some(error.param().to_owned()),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_date",
                error.to_string(),
            )
        })
    }
}

/// The answer that downloads `rows` (the export of `user_id`'s calls) as
/// the file `file_name`.
pub(crate) fn csv_download(
    file_name: &str,
    user_id: i64,
    rows: impl Stream<Item = Result<Bytes, StoreError>> + Send + 'static,
) -> Response {
    // A failure after the answer began can only cut the download short.
    let rows = rows.inspect_err(move |error| {
        tracing::error!(%error, user_id, "the usage export stopped part way");
    });
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(rows),
    )
        .into_response()
}
