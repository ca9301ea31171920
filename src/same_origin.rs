//! Cross-site request forgery defence: a state-changing request from the
//! dashboard must come from the app's own origin.
//!
//! It applies to server functions (`/api/…` outside the versioned REST API) and to
//! any request carrying the session cookie. Requests authenticated only by an API
//! key carry no ambient authority and are left alone; the model API, which knows
//! only keys, is not behind this layer at all (`startup::router`). The origin is the `Origin`
//! header or, lacking it, the `Referer`'s. With `TOLLGATE_PUBLIC_URL` set it must
//! be that origin, scheme included: the `Host` header is the client's to
//! choose (a page on a rebound DNS name sends its own), and a plain-http page
//! on the same host is another origin. Unset, it may also be the `Host` the
//! request was sent to (a browser always sends the real host).

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

use crate::{accounts::cookie_names, api_error::ApiError};

/// The site's own origin, as the check knows it.
#[derive(Debug, Clone)]
pub struct SiteOrigin {
    /// The public origin: configured, or the address the server bound.
    pub url: Arc<str>,
    /// Whether `TOLLGATE_PUBLIC_URL` named it: then only it is the site.
    pub configured: bool,
}

pub async fn require_same_origin(
    State(site): State<SiteOrigin>,
    request: Request,
    next: Next,
) -> Response {
    if !is_state_changing(request.method()) || !needs_check(&request) {
        return next.run(request).await;
    }
    if is_same_origin(request.headers(), &site) {
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

/// A plain form post that fails comes back to its page with the error in
/// the query (Leptos' `__err`, beside `__path`), which the page shows, its
/// fields filled from it; one that succeeds, with `done` naming what it
/// did. Only the site's own redirect may bring one: a link from elsewhere
/// could put any message on the site's pages and fill in an admin's credit
/// form. Such a request is sent to the page without them.
pub async fn drop_foreign_form_errors(
    State(site): State<SiteOrigin>,
    request: Request,
    next: Next,
) -> Response {
    let Some(query) = request
        .uri()
        .query()
        .filter(|_| request.method() == Method::GET)
    else {
        return next.run(request).await;
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let is_round_trip = |name: &str| matches!(name, "__err" | "__path" | "done");
    if !pairs.iter().any(|(name, _)| is_round_trip(name))
        || from_this_site(request.headers(), &site)
    {
        return next.run(request).await;
    }
    let kept: Vec<_> = pairs
        .into_iter()
        .filter(|(name, _)| !is_round_trip(name))
        .collect();
    let query = serde_urlencoded::to_string(kept).unwrap_or_default();
    // One leading slash: `//evil.example/` (or `/\evil.example/`) as a
    // Location is another site.
    let path = format!("/{}", request.uri().path().trim_start_matches(['/', '\\']));
    let to = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    axum::response::Redirect::to(&to).into_response()
}

/// Whether a page request came from the site itself: a browser says so in
/// `Sec-Fetch-Site` (for a redirect, over its whole chain); one that does
/// not send it, by its `Referer`.
fn from_this_site(headers: &HeaderMap, site: &SiteOrigin) -> bool {
    match headers.get("sec-fetch-site") {
        Some(value) => value == "same-origin",
        None => is_same_origin(headers, site),
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

/// Read as the session layer reads the header (tower-cookies: names
/// percent-decoded, spaces trimmed), so no spelling of the cookie that the
/// session layer accepts (`tollgate%5Fsession`, `tollgate_session =`) goes
/// unchecked here.
fn has_session_cookie(headers: &HeaderMap) -> bool {
    use tower_sessions::cookie::Cookie;
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| Cookie::parse_encoded(pair).ok())
        .any(|cookie| cookie_names::SESSION.is(cookie.name()))
}

/// `scheme://authority` of an absolute URL.
/// `scheme://authority` of an absolute URL, without its scheme's default
/// port, which browsers leave out of `Origin`.
fn origin_of(url: &str) -> Option<(String, String)> {
    let uri = Uri::from_str(url).ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    let default_port = match scheme.as_str() {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    };
    let authority = if authority.port_u16().is_some() && authority.port_u16() == default_port {
        authority.host().to_ascii_lowercase()
    } else {
        authority.as_str().to_ascii_lowercase()
    };
    Some((scheme, authority))
}

fn is_same_origin(headers: &HeaderMap, site: &SiteOrigin) -> bool {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let claimed = match header(ORIGIN) {
        Some("null") => None,
        Some(origin) => origin_of(origin),
        None => header(REFERER).and_then(origin_of),
    };
    let Some((scheme, authority)) = claimed else {
        return false;
    };
    let matches_public = origin_of(&site.url).is_some_and(|(s, a)| s == scheme && a == authority);
    let matches_host = header(HOST).is_some_and(|host| host.eq_ignore_ascii_case(&authority));
    matches_public || (!site.configured && matches_host)
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

    fn site(url: &str, configured: bool) -> SiteOrigin {
        SiteOrigin {
            url: url.into(),
            configured,
        }
    }

    #[test]
    fn accepts_the_public_origin_or_unconfigured_the_requested_host() {
        let public = &site("https://llm.example.com", true);
        assert!(is_same_origin(
            &headers(&[("origin", "https://llm.example.com")]),
            public
        ));
        assert!(is_same_origin(
            &headers(&[("referer", "https://llm.example.com/account?x=1")]),
            public
        ));
        let bound = &site("http://127.0.0.1:3000", false);
        assert!(is_same_origin(
            &headers(&[
                ("origin", "http://localhost:3000"),
                ("host", "localhost:3000")
            ]),
            bound
        ));
        // A default port written out is no other origin.
        assert!(is_same_origin(
            &headers(&[("origin", "https://llm.example.com")]),
            &site("https://llm.example.com:443", true)
        ));
        assert!(!is_same_origin(
            &headers(&[("origin", "https://llm.example.com:8443")]),
            &site("https://llm.example.com:443", true)
        ));
        // Configured, a host is not enough: a rebound DNS name, or plain http
        // on the public host.
        for (origin, host) in [
            ("http://rebound.example", "rebound.example"),
            ("http://llm.example.com", "llm.example.com"),
        ] {
            let h = headers(&[("origin", origin), ("host", host)]);
            assert!(!is_same_origin(&h, public), "{h:?}");
            assert!(
                is_same_origin(&h, &site("https://llm.example.com", false)),
                "{h:?}"
            );
        }
    }

    #[test]
    fn refuses_other_origins_null_and_nothing() {
        let public = &site("https://llm.example.com", false);
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

    /// Every spelling of the session cookie the session layer reads is seen
    /// here too, so none of them skips the origin check.
    #[test]
    fn the_session_cookie_is_found_however_it_is_written() {
        for cookie in [
            "tollgate_session=abc",
            "a=1; tollgate_session=abc",
            "tollgate%5Fsession=abc",
            "tollgate_session =abc",
            " tollgate_session=abc ;b=2",
        ] {
            assert!(
                super::has_session_cookie(&headers(&[("cookie", cookie)])),
                "{cookie}"
            );
        }
        for cookie in ["tollgate_sessions=abc", "x=tollgate_session", ""] {
            assert!(
                !super::has_session_cookie(&headers(&[("cookie", cookie)])),
                "{cookie}"
            );
        }
    }
}
