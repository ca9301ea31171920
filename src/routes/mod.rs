//! Plain HTTP handlers outside the Leptos pages, grouped by resource.

pub mod admin;
pub mod gateway;
pub mod health;
pub mod keys;
pub mod model_api_doc;
pub mod openapi;
pub mod usage;

use axum::extract::{FromRequestParts, rejection::JsonRejection};

use crate::api_error::ApiError;

/// axum's `Path`, answering a path parameter that does not parse (a key id
/// that is not a number) with the API's 400 instead of axum's plain text.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// axum's `Query`, answering a query that does not parse (`limit=ten`) with
/// the API's 400 instead of axum's plain text.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// A JSON body, or the API's error for one that does not parse. Taken as a
/// `Result` rather than by an extractor that rejects, so that the handler
/// checks the caller's scope before the body.
pub(crate) fn json_body<T>(body: Result<axum::Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|axum::Json(value)| value)
        .map_err(ApiError::bad_json)
}

/// An optional JSON body: none when the request has no body at all, else one
/// that must parse (whatever its content type says), so a body that does not
/// parse is refused rather than read as absent.
pub(crate) fn optional_json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    // JSON `null` is no body too, as the documents' `null or T` says.
    axum::Json::<Option<T>>::from_bytes(body)
        .map(|axum::Json(value)| value)
        .map_err(ApiError::bad_json)
}

/// Unknown paths under `/api/v1` answer in the API's shape, not with the
/// dashboard's 404 page.
pub async fn unknown_api_route() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "invalid_request_error",
        "unknown_url",
        "No such API route. /openapi.json lists them.",
    )
}

/// A method a route does not take, in the API's shape (axum adds `Allow`).
pub async fn wrong_api_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method_not_allowed",
        format!("{} does not take {method}.", uri.path()),
    )
}
