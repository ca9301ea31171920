//! Refuses request bodies over `TOLLGATE_MAX_BODY_BYTES` with a JSON 413,
//! compressed ones (`Content-Encoding`) with a JSON 415, and bodies that stall
//! with a JSON 408.
//!
//! A declared `Content-Length` over the limit is refused before reading. Every
//! other body is read here, up to the limit, so no handler ever sees a
//! truncated body or turns the overflow into a 500; a body that sends nothing
//! for `TOLLGATE_HEADER_TIMEOUT_SECS` is cut off, so a client sending a byte
//! now and then cannot hold a connection and its task for ever.

use std::time::Duration;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{
        HeaderValue, StatusCode,
        header::{CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH},
        request::Parts,
    },
    middleware::Next,
    response::{IntoResponse, Response},
};
use http_body_util::LengthLimitError;
use tower_http::timeout::{TimeoutBody, TimeoutError};

use crate::api_error::ApiError;

/// How much of a body is read, and how long it may pause.
#[derive(Debug, Clone, Copy)]
pub struct BodyRules {
    pub limit: usize,
    /// The longest a body may send nothing.
    pub pause: Duration,
}

impl BodyRules {
    /// The configured rules: the body limit, and the header timeout as the
    /// longest pause.
    pub fn of(config: &crate::config::Config) -> Self {
        Self {
            limit: config.max_body_bytes,
            pause: config.header_timeout,
        }
    }
}

pub async fn limit_request_body(
    State(rules): State<BodyRules>,
    request: Request,
    next: Next,
) -> Response {
    match bounded(request, rules).await {
        Ok(request) => next.run(request).await,
        Err(refused) => refused.answer,
    }
}

/// A request refused by [`bounded`]: its head, and the answer.
pub struct Refused {
    pub parts: Parts,
    pub answer: Response,
}

/// The request with its body read whole, no larger than the limit and sent
/// without a long pause, or its refusal.
pub async fn bounded(request: Request, rules: BodyRules) -> Result<Request, Refused> {
    let limit = rules.limit;
    // Bodies are read as sent: a gzip body was refused as JSON that does not
    // parse, and a plain one labelled gzip was read as if it were not.
    let compressed = request
        .headers()
        .get(CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if compressed && !axum::body::HttpBody::is_end_stream(request.body()) {
        return Err(Refused {
            parts: request.into_parts().0,
            answer: ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request_error",
                "unsupported_content_encoding",
                "Compressed request bodies are not accepted: send the body without Content-Encoding.",
            )
            .into_response(),
        });
    }
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
        _ if axum::body::HttpBody::is_end_stream(request.body()) => Ok(request),
        // Hyper never delivers more than a declared length; a body without
        // one (chunked) stops at the limit.
        _ => {
            let (parts, body) = request.into_parts();
            let body = TimeoutBody::new(rules.pause, body);
            match axum::body::to_bytes(Body::new(body), limit).await {
                Ok(bytes) => Ok(Request::from_parts(parts, Body::from(bytes))),
                Err(error) if caused_by::<LengthLimitError>(&error) => Err(Refused {
                    parts,
                    answer: ApiError::payload_too_large(limit).into_response(),
                }),
                Err(error) if caused_by::<TimeoutError>(&error) => Err(Refused {
                    parts,
                    answer: stalled(rules.pause),
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

/// The 408 for a body that paused too long. The rest of the body may still
/// come, so the connection is closed rather than read on.
fn stalled(pause: Duration) -> Response {
    let mut answer = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "invalid_request_error",
        "request_timeout",
        format!(
            "The request body stopped arriving: nothing came for {} seconds.",
            pause.as_secs()
        ),
    )
    .into_response();
    answer
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    answer
}

fn caused_by<E: std::error::Error + 'static>(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<E>() {
            return true;
        }
        source = e.source();
    }
    false
}
