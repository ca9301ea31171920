//! Refuses request bodies over `TOLLGATE_MAX_BODY_BYTES` with a JSON 413.
//!
//! A declared `Content-Length` over the limit is refused before reading. A body
//! without one (chunked) is read up to the limit here, so no handler ever sees a
//! truncated body or turns the overflow into a 500.

use axum::{
    body::Body,
    extract::{Request, State},
    http::{StatusCode, header::CONTENT_LENGTH, request::Parts},
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
    match bounded(request, limit).await {
        Ok(request) => next.run(request).await,
        Err(refused) => refused.answer,
    }
}

/// A request refused by [`bounded`]: its head, and the answer.
pub struct Refused {
    pub parts: Parts,
    pub answer: Response,
}

/// The request with a body no larger than `limit`, or its refusal.
pub async fn bounded(request: Request, limit: usize) -> Result<Request, Refused> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => Err(Refused {
            parts: request.into_parts().0,
            answer: ApiError::payload_too_large(limit).into_response(),
        }),
        // Hyper never delivers more than the declared length.
        Some(_) => Ok(request),
        None if axum::body::HttpBody::is_end_stream(request.body()) => Ok(request),
        None => {
            let (parts, body) = request.into_parts();
            match axum::body::to_bytes(body, limit).await {
                Ok(bytes) => Ok(Request::from_parts(parts, Body::from(bytes))),
                Err(error) if is_length_limit(&error) => Err(Refused {
                    parts,
                    answer: ApiError::payload_too_large(limit).into_response(),
                }),
                Err(_) => Err(Refused {
                    parts,
                    answer: ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "body_unreadable",
                        "The request body could not be read.",
                    )
                    .into_response(),
                }),
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
