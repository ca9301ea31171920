//! The JSON error body every API answer uses, in OpenAI's shape:
//! `{"error":{"message","type","param","code"}}`.

use axum::{
    Json,
    extract::rejection::{PathRejection, QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

/// What went wrong, for people (`message`) and for programs (`type`, `code`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ErrorObject)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub message: String,
    /// The class of error, e.g. `invalid_request_error`, `authentication_error`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: &'static str,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    /// A stable machine-readable code, e.g. `invalid_fields`.
    #[schema(value_type = Option<String>)]
    pub code: Option<&'static str>,
    /// For validation errors: a message for each bad field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<std::collections::BTreeMap<String, String>>,
}

/// Every API error answer: `{"error":{"message","type","param","code"}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ApiError,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: Some(code),
            fields: None,
        }
    }

    /// 422 naming each bad field; `param` is the first of them.
    pub fn invalid_fields(fields: std::collections::BTreeMap<String, String>) -> Self {
        let message = format!(
            "Some fields are invalid: {}.",
            fields.keys().cloned().collect::<Vec<_>>().join(", ")
        );
        Self {
            param: fields.keys().next().cloned(),
            fields: Some(fields),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request_error",
                "invalid_fields",
                message,
            )
        }
    }

    /// A body that is not the JSON the route expects.
    pub fn bad_json(rejection: axum::extract::rejection::JsonRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_json",
            format!("The request body is not valid: {}", rejection.body_text()),
        )
    }

    /// A request whose URL does not parse: `code` names the part
    /// (`invalid_path`, `invalid_query`).
    fn bad_url(code: &'static str, reason: String) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            format!("The request URL is not valid: {reason}"),
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("The request body is larger than the limit of {limit} bytes."),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_url("invalid_path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_url("invalid_query", rejection.body_text())
    }
}

/// Lets handlers that answer `Result<Response, Response>` use `?` on an `ApiError`.
impl From<ApiError> for Response {
    fn from(error: ApiError) -> Self {
        error.into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorResponse { error: self })).into_response()
    }
}

/// The answer to a request whose handler panicked (`CatchPanicLayer`): the
/// API's error shape rather than a plain-text page. The panic itself is
/// reported by the panic hook.
pub fn panicked(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "internal_error",
        "The server hit an unexpected error; it has been logged.",
    )
    .into_response()
}
