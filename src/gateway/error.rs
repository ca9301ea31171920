//! Every way a gateway call can be refused or fail, and its OpenAI-shaped answer.

use axum::{
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};

use super::providers::UpstreamError;
use crate::{api_error::ApiError, credits::format_credits, keys::auth::KeyAuthError};

/// The most of an unknown model's name an error repeats, in characters.
const MODEL_NAME_SHOWN: usize = 200;

#[derive(Debug)]
pub enum GatewayError {
    /// 400: the body is not a valid request.
    Invalid {
        message: String,
        param: Option<&'static str>,
    },
    /// 401 / 403 from key verification.
    Key(KeyAuthError),
    /// 403: a key restriction or scope refuses the call.
    Forbidden {
        code: &'static str,
        message: String,
        /// The field refused (`model` for a model the key may not use).
        param: Option<&'static str>,
    },
    /// 404: no such model in the table.
    UnknownModel(String),
    /// 429: `code` names the limit.
    Limited {
        code: &'static str,
        message: String,
        retry_after_secs: u64,
    },
    /// 429 too, for a call larger than a limit allows at all (more tokens
    /// than the plan's minute): waiting will not help, so the answer says
    /// not to retry (`x-should-retry: false`, which the OpenAI SDKs obey),
    /// as 429s whose wait is longer than a minute do.
    NeverFits {
        code: &'static str,
        message: String,
    },
    /// 402: the balance cannot cover the worst case.
    Credits {
        needed: i64,
        balance: i64,
    },
    Upstream(UpstreamError),
    /// An upstream failure after the upstream had read the prompt (a body
    /// cut off, too slow, carrying an error or not OpenAI's): answered as
    /// [`Self::Upstream`] is, but the prompt was charged, so the answer says
    /// so and tells the OpenAI SDKs not to retry by themselves
    /// (`x-should-retry: false`): each retry would be charged again, without
    /// the caller knowing.
    AfterPrompt(UpstreamError),
    /// An upstream failure partway through a stream that had answered: the
    /// prompt and what was streamed are charged, so the error event says so.
    StreamCut(UpstreamError),
    /// 503: the server stopped the call at the end of its shutdown grace period.
    Stopping,
    /// 503: the database refuses the records a call leaves (the last write
    /// failed), so none is admitted until a write goes through again.
    Unrecordable,
    Internal(String),
}

impl GatewayError {
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self::Invalid {
            message: message.into(),
            param,
        }
    }

    /// A refusal by a limit (rate windows, parallel calls, credits, a key's
    /// usage cap), which must take nothing from the other limits.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Self::Limited { .. }
                | Self::NeverFits { .. }
                | Self::Credits { .. }
                | Self::Key(KeyAuthError::UsedUp | KeyAuthError::UsedUpInFlight)
        )
    }

    pub fn status(&self) -> StatusCode {
        self.to_api_error().status
    }

    /// The machine-readable code, for usage records and logs.
    pub fn code(&self) -> Option<&'static str> {
        self.to_api_error().code
    }

    pub fn to_api_error(&self) -> ApiError {
        match self {
            Self::Invalid { message, param } => {
                let mut error = ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "invalid_request",
                    message.clone(),
                );
                error.param = param.map(str::to_owned);
                error
            }
            Self::Key(error) => error.to_api_error(),
            Self::Forbidden {
                code,
                message,
                param,
            } => {
                let mut error = ApiError::new(
                    StatusCode::FORBIDDEN,
                    "permission_error",
                    code,
                    message.clone(),
                );
                error.param = param.map(str::to_owned);
                error
            }
            Self::UnknownModel(model) => {
                // Named back as far as a model's name goes, not whatever
                // length the caller sent (a 100 kB name came back whole).
                let shown: String = model.chars().take(MODEL_NAME_SHOWN).collect();
                let model = if shown.len() < model.len() {
                    format!("{shown:?}…")
                } else {
                    format!("{shown:?}")
                };
                let mut error = ApiError::new(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    "model_not_found",
                    format!(
                        "The model {model} does not exist. GET /v1/models lists the models your key may use."
                    ),
                );
                error.param = Some("model".into());
                error
            }
            Self::Limited { code, message, .. } | Self::NeverFits { code, message } => {
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    code,
                    message.clone(),
                )
            }
            Self::Credits { needed, balance } => ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_quota",
                "insufficient_credits",
                format!(
                    "Your balance of {} credits cannot cover this request, which may cost up to {} credits. Lower max_tokens, or wait for the plan's monthly credits or ask an admin for more.",
                    format_credits(*balance),
                    format_credits(*needed)
                ),
            ),
            Self::Upstream(UpstreamError::Timeout(stage)) => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "api_error",
                "upstream_timeout",
                format!("The model server did not answer in time ({stage} timeout). Try again."),
            ),
            Self::Upstream(UpstreamError::Status {
                status: 400 | 422,
                message,
                code,
                param,
                ..
            }) => {
                let mut error = ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    code.unwrap_or("upstream_rejected_request"),
                    format!("The model server refused the request: {message}"),
                );
                error.param.clone_from(param);
                error
            }
            Self::Upstream(UpstreamError::Status {
                status: 413,
                message,
                ..
            }) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "upstream_rejected_request",
                format!("The model server refused the request as too large: {message}"),
            ),
            // Its message is not passed on: OpenAI's names the account behind
            // the gateway's upstream key.
            Self::Upstream(UpstreamError::Status { status: 429, .. }) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "upstream_rate_limited",
                format!(
                    "The model server is limiting calls; try again in {} s.",
                    upstream_retry_after(self).unwrap_or(1)
                ),
            ),
            // The upstream refusing the gateway's own key, the model name or
            // the account's quota, or not answering as an API: the
            // operator's set-up, which no retry changes.
            Self::Upstream(UpstreamError::Status {
                set_up: true,
                answered,
                ..
            }) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "api_error",
                "upstream_error",
                match answered {
                    429 => "The model server refused this call: the operator's account with it has no quota left, and trying again will not help. Tell the operator.".to_owned(),
                    402 => "The model server refused this call for payment (402): the operator's account with it has no credit left, and trying again will not help. Tell the operator.".to_owned(),
                    answered => format!(
                        "{}: this model is not set up right, and trying again will not help. Tell the operator.",
                        match answered {
                            401 => "The model server refused Tollgate's own key (401)",
                            403 => "The model server refused this call (403)",
                            // Not only an unknown model name: a `base_url`
                            // without its `/v1` gets a 404 for every path.
                            404 => "The model server answered 404 (an unknown model name, or an address that is not its API)",
                            _ => "The model server did not answer as an OpenAI-compatible API (a web page, a redirect or no body)",
                        }
                    ),
                },
            ),
            Self::Upstream(_) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "api_error",
                "upstream_error",
                match upstream_retry_after(self) {
                    Some(secs) => format!(
                        "The model server failed to answer and asked for a wait of {secs} s. Try again then."
                    ),
                    None => "The model server failed to answer. Try again.".to_owned(),
                },
            ),
            Self::AfterPrompt(error) => {
                let mut api = Self::Upstream(error.clone()).to_api_error();
                api.message.push_str(
                    " The prompt was charged, as the model server had read it: each new try is charged again.",
                );
                api
            }
            Self::StreamCut(error) => {
                let mut api = Self::Upstream(error.clone()).to_api_error();
                api.message.push_str(
                    " The prompt and the reply streamed before this were charged: each new try is charged again.",
                );
                api
            }
            Self::Stopping => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "server_stopping",
                "The server is restarting and stopped this call; only what it produced is charged. Try again in a moment.",
            ),
            Self::Unrecordable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "records_unavailable",
                "Tollgate cannot record calls right now, so it takes none; nothing was charged. Try again in a moment.",
            ),
            Self::Internal(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal_error",
                "Something went wrong on our side. Try again.",
            ),
        }
    }

    /// Logs a failure the operator must know of (the upstream's, the
    /// gateway's own), whose answer tells the caller only to try again.
    /// Called once, where the answer is made.
    pub fn log(&self) {
        match self {
            Self::Internal(detail) => tracing::error!(%detail, "gateway failure"),
            // Its 429s and timeouts too: a caller retries them, and only the
            // log tells the operator the upstream is limiting or slow.
            Self::Upstream(error) | Self::AfterPrompt(error) | Self::StreamCut(error)
                if matches!(
                    self.code(),
                    Some("upstream_error" | "upstream_rate_limited" | "upstream_timeout")
                ) =>
            {
                tracing::warn!(%error, "upstream failed");
            }
            _ => {}
        }
    }
}

impl From<crate::store::StoreError> for GatewayError {
    fn from(error: crate::store::StoreError) -> Self {
        Self::Internal(error.to_string())
    }
}

/// What an upstream's 429 asked to wait, at least a second and at most a day
/// (an hour here cut the day the upstream's wait was read up to); and what a
/// failing upstream (503 while a model loads or the server is overloaded)
/// asked, when it named a wait.
fn upstream_retry_after(error: &GatewayError) -> Option<u64> {
    let longest = super::providers::LONGEST_UPSTREAM_WAIT_SECS;
    match error {
        GatewayError::Upstream(UpstreamError::Status {
            status: 429,
            retry_after_secs,
            ..
        }) => Some(retry_after_secs.unwrap_or(1).clamp(1, longest)),
        GatewayError::Upstream(UpstreamError::Status {
            status: 500..=599,
            set_up: false,
            retry_after_secs: Some(secs),
            ..
        }) => Some((*secs).clamp(1, longest)),
        _ => None,
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.log();
        let mut response = self.to_api_error().into_response();
        let retry_after = match &self {
            Self::Limited {
                retry_after_secs, ..
            } => Some((*retry_after_secs).max(1)),
            // Every 429 carries one; this call will not fit after it either.
            Self::NeverFits { .. } => Some(60),
            other => upstream_retry_after(other),
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        // Nor will waiting past a minute help a caller that is waiting on
        // it: the Node SDK sleeps whatever Retry-After says (hours, for a
        // day's window) before it gives up.
        let wait_is_long = matches!(retry_after, Some(secs) if secs > 60);
        // An upstream refusing the gateway's own key or model, or not
        // answering as an API (the operator's set-up) answers the same to
        // every retry.
        let upstream_set_up = matches!(
            self,
            Self::Upstream(UpstreamError::Status { set_up: true, .. })
        );
        let charged = matches!(self, Self::AfterPrompt(_) | Self::StreamCut(_));
        if matches!(self, Self::NeverFits { .. }) || wait_is_long || upstream_set_up || charged {
            response.headers_mut().insert(
                axum::http::HeaderName::from_static("x-should-retry"),
                HeaderValue::from_static("false"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::GatewayError;

    #[test]
    fn an_unknown_model_is_named_back_at_most_two_hundred_characters_long() {
        let said = |model: &str| {
            GatewayError::UnknownModel(model.into())
                .to_api_error()
                .message
        };
        assert!(said("gpt-4o").starts_with(r#"The model "gpt-4o" does not exist."#));
        let long = said(&"é".repeat(100_000));
        assert!(
            long.starts_with(&format!(
                "The model \"{}\"… does not exist.",
                "é".repeat(200)
            )),
            "{long}"
        );
        assert!(long.len() < 600);
        assert!(said(&"m".repeat(200)).contains(&format!("\"{}\" does", "m".repeat(200))));
    }
}
