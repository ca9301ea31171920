//! Refuses request bodies over `TOLLGATE_MAX_BODY_BYTES` with a JSON 413.
//!
//! A declared `Content-Length` over the limit is refused before reading. A body
//! without one (chunked) is read up to the limit here, so no handler ever sees a
//! truncated body or turns the overflow into a 500.

use axum::{
    body::Body,
    extract::{Request, State},
    http::{StatusCode, header::CONTENT_LENGTH},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http_body_util::LengthLimitError;

use crate::api_error::ApiError;

pub async fn limit_request_body(
    State(limit): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => ApiError::payload_too_large(limit).into_response(),
        // Hyper never delivers more than the declared length.
        Some(_) => next.run(request).await,
        None if axum::body::HttpBody::is_end_stream(request.body()) => next.run(request).await,
        None => {
            let (parts, body) = request.into_parts();
            match axum::body::to_bytes(body, limit).await {
                Ok(bytes) => {
                    next.run(Request::from_parts(parts, Body::from(bytes)))
                        .await
                }
                Err(error) if is_length_limit(&error) => {
                    ApiError::payload_too_large(limit).into_response()
                }
                Err(_) => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "body_unreadable",
                    "The request body could not be read.",
                )
                .into_response(),
            }
        }
    }
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}
