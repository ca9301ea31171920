//! Plain HTTP handlers outside the Leptos pages, grouped by resource.

pub mod admin;
pub mod gateway;
pub mod health;
pub mod keys;
pub mod openapi;

/// A JSON body, or the API's error for one that does not parse.
pub(crate) fn json_body<T>(
    body: Result<axum::Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, crate::api_error::ApiError> {
    body.map(|axum::Json(value)| value)
        .map_err(crate::api_error::ApiError::bad_json)
}
