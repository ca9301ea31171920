//! Cross-site request forgery defence: a state-changing request from the
//! dashboard must come from the app's own origin.
//!
//! It applies to server functions (`/api/…` outside the versioned REST API) and to
//! any request carrying the session cookie. Requests authenticated only by an API
//! key carry no ambient authority and are left alone; the model API, which knows
//! only keys, is not behind this layer at all (`startup::router`). The origin is the `Origin`
//! header or, lacking it, the `Referer`'s; it must equal `TOLLGATE_PUBLIC_URL` or
//! the `Host` the request was sent to (a browser always sends the real host).

use std::{str::FromStr, sync::Arc};

use axum::{
    extract::{Request, State},
    http::{
        HeaderMap, Method, StatusCode, Uri,
        header::{COOKIE, HOST, ORIGIN, REFERER},
    },
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{accounts::session::SESSION_COOKIE, api_error::ApiError};

pub async fn require_same_origin(
    State(public_url): State<Arc<str>>,
    request: Request,
    next: Next,
) -> Response {
    if !is_state_changing(request.method()) || !needs_check(&request) {
        return next.run(request).await;
    }
    if is_same_origin(request.headers(), &public_url) {
        next.run(request).await
    } else {
        tracing::warn!(path = %request.uri().path(), "refused a cross-site request");
        ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            "cross_site_request",
            "This request did not come from this site, so it was refused. Reload the page and try again.",
        )
        .into_response()
    }
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

fn needs_check(request: &Request) -> bool {
    let path = request.uri().path();
    let server_function = path.starts_with("/api/") && !path.starts_with("/api/v1/");
    server_function || has_session_cookie(request.headers())
}

fn has_session_cookie(headers: &HeaderMap) -> bool {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|pair| pair.trim_start().split('=').next() == Some(SESSION_COOKIE))
}

/// `scheme://authority` of an absolute URL.
fn origin_of(url: &str) -> Option<(String, String)> {
    let uri = Uri::from_str(url).ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?.as_str().to_ascii_lowercase();
    Some((scheme, authority))
}

fn is_same_origin(headers: &HeaderMap, public_url: &str) -> bool {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let claimed = match header(ORIGIN) {
        Some("null") => None,
        Some(origin) => origin_of(origin),
        None => header(REFERER).and_then(origin_of),
    };
    let Some((scheme, authority)) = claimed else {
        return false;
    };
    let matches_public = origin_of(public_url).is_some_and(|(s, a)| s == scheme && a == authority);
    let matches_host = header(HOST).is_some_and(|host| host.eq_ignore_ascii_case(&authority));
    matches_public || matches_host
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn accepts_the_public_origin_or_the_requested_host() {
        let public = "https://llm.example.com";
        assert!(is_same_origin(
            &headers(&[("origin", "https://llm.example.com")]),
            public
        ));
        assert!(is_same_origin(
            &headers(&[
                ("origin", "http://127.0.0.1:3000"),
                ("host", "127.0.0.1:3000")
            ]),
            public
        ));
        assert!(is_same_origin(
            &headers(&[("referer", "https://llm.example.com/account?x=1")]),
            public
        ));
    }

    #[test]
    fn refuses_other_origins_null_and_nothing() {
        let public = "https://llm.example.com";
        for h in [
            headers(&[
                ("origin", "https://evil.example"),
                ("host", "llm.example.com"),
            ]),
            headers(&[("origin", "null"), ("host", "llm.example.com")]),
            headers(&[
                ("referer", "https://evil.example/page"),
                ("host", "llm.example.com"),
            ]),
            headers(&[("origin", "http://llm.example.com")]),
            headers(&[("host", "llm.example.com")]),
        ] {
            assert!(!is_same_origin(&h, public), "{h:?}");
        }
    }
}
