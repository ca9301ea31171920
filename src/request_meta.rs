//! Who is asking, as far as the request shows: client IP, user agent and the
//! request id. Audit events and throttles read it from here.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header::USER_AGENT, request::Parts},
};

#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl RequestMeta {
    pub fn from_parts(parts: &Parts) -> Self {
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(512).collect::<String>())
        };
        Self {
            // Resolved once per request (trusted proxies and X-Forwarded-For), else the peer.
            client_ip: parts
                .extensions
                .get::<crate::gateway::client_ip::ClientIp>()
                .map(|ip| ip.0)
                .or_else(|| {
                    parts
                        .extensions
                        .get::<ConnectInfo<SocketAddr>>()
                        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
                }),
            user_agent: header(USER_AGENT),
            request_id: header(axum::http::HeaderName::from_static("x-request-id")),
        }
    }

    /// The metadata of the request a server function is serving.
    pub fn current() -> Self {
        leptos::prelude::use_context::<Parts>()
            .map(|parts| Self::from_parts(&parts))
            .unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts))
    }
}
