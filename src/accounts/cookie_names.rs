//! The names of the cookies the dashboard sets. Served over HTTPS, each
//! carries the `__Host-` prefix: browsers then accept it only with `Secure`,
//! for path `/` and no domain, so a page on a sibling subdomain cannot set or
//! shadow it (planting its own session, or a device cookie, in the browser).

use axum::{
    http::{HeaderName, HeaderValue, header::SET_COOKIE},
    response::Response,
};

/// A cookie's name over plain HTTP and over HTTPS.
#[derive(Debug, Clone, Copy)]
pub struct CookieName {
    plain: &'static str,
    host_only: &'static str,
}

impl CookieName {
    const fn new(plain: &'static str, host_only: &'static str) -> Self {
        Self { plain, host_only }
    }

    /// The name to set on a site served over HTTPS (`https`) or not.
    pub fn on(self, https: bool) -> &'static str {
        if https { self.host_only } else { self.plain }
    }

    /// Whether `name` is this cookie under either name.
    pub fn is(self, name: &str) -> bool {
        name == self.plain || name == self.host_only
    }
}

/// The dashboard's session.
pub const SESSION: CookieName = CookieName::new("tollgate_session", "__Host-tollgate_session");
/// A browser that signed in to an account before (see `accounts::device`).
pub const DEVICE: CookieName = CookieName::new("tollgate_device", "__Host-tollgate_device");
/// A new account's primary key on its way to `/welcome`.
pub const NEW_KEY: CookieName = CookieName::new("tollgate_new_key", "__Host-tollgate_new_key");

/// Set on an answer, inside the server only, whose session cookie the browser
/// keeps: tower-sessions removes the cookie of every session it finds empty,
/// and a session id the store no longer knows (a password change replaced
/// it) may be older than the cookie the browser holds by then. Removed from
/// the answer by [`secure_host_only`], with the removal it asks to drop.
pub const KEEP_SESSION_COOKIE: HeaderName = HeaderName::from_static("x-tollgate-keep-session");

/// Marks `Secure` every `__Host-` cookie `response` sets without it, which
/// browsers would ignore. tower-sessions ends a session with a removal cookie
/// that has only its name and path, so a signed-out browser kept the ended
/// session's id. An answer marked with [`KEEP_SESSION_COOKIE`] loses that
/// removal instead.
pub async fn secure_host_only(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let keep_session = headers.remove(KEEP_SESSION_COOKIE).is_some();
    if !headers.contains_key(SET_COOKIE) {
        return response;
    }
    let cookies: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter(|cookie| !(keep_session && is_session_removal(cookie)))
        .map(|cookie| match cookie.to_str() {
            Ok(text) if text.starts_with("__Host-") && !is_secure(text) => {
                HeaderValue::from_str(&format!("{text}; Secure")).unwrap_or_else(|_| cookie.clone())
            }
            _ => cookie.clone(),
        })
        .collect();
    headers.remove(SET_COOKIE);
    for cookie in cookies {
        headers.append(SET_COOKIE, cookie);
    }
    response
}

/// Whether a `Set-Cookie` value removes the session cookie (sets it empty):
/// a session's own cookie always carries its id.
fn is_session_removal(set_cookie: &HeaderValue) -> bool {
    let Ok(text) = set_cookie.to_str() else {
        return false;
    };
    let pair = text.split(';').next().unwrap_or_default();
    pair.split_once('=')
        .is_some_and(|(name, value)| SESSION.is(name.trim()) && value.trim().is_empty())
}

/// Whether a `Set-Cookie` value carries the `Secure` attribute.
fn is_secure(set_cookie: &str) -> bool {
    set_cookie
        .split(';')
        .skip(1)
        .any(|attribute| attribute.trim().eq_ignore_ascii_case("secure"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_host_only_cookie_set_without_secure_is_marked_secure() {
        let mut response = Response::new(axum::body::Body::empty());
        for cookie in [
            "__Host-tollgate_session=; Path=/; Max-Age=0",
            "__Host-tollgate_device=x; Path=/; secure",
            "tollgate_session=; Path=/; Max-Age=0",
        ] {
            response
                .headers_mut()
                .append(SET_COOKIE, HeaderValue::from_static(cookie));
        }
        let response = secure_host_only(response).await;
        let set: Vec<_> = response.headers().get_all(SET_COOKIE).iter().collect();
        assert_eq!(
            set,
            [
                "__Host-tollgate_session=; Path=/; Max-Age=0; Secure",
                "__Host-tollgate_device=x; Path=/; secure",
                "tollgate_session=; Path=/; Max-Age=0",
            ]
        );
    }

    /// Marked to keep the session cookie, an answer loses the session's
    /// removal and the marker, and keeps every other cookie.
    #[tokio::test]
    async fn an_answer_marked_to_keep_the_session_loses_only_its_removal() {
        let mut response = Response::new(axum::body::Body::empty());
        for cookie in [
            "__Host-tollgate_session=; Path=/; Max-Age=0",
            "tollgate_session=; Path=/; Max-Age=0",
            "tollgate_session=abc; Path=/; HttpOnly",
            "tollgate_new_key=; Path=/; Max-Age=0",
        ] {
            response
                .headers_mut()
                .append(SET_COOKIE, HeaderValue::from_static(cookie));
        }
        response
            .headers_mut()
            .insert(KEEP_SESSION_COOKIE, HeaderValue::from_static("1"));
        let response = secure_host_only(response).await;
        let set: Vec<_> = response.headers().get_all(SET_COOKIE).iter().collect();
        assert_eq!(
            set,
            [
                "tollgate_session=abc; Path=/; HttpOnly",
                "tollgate_new_key=; Path=/; Max-Age=0",
            ]
        );
        assert!(!response.headers().contains_key(KEEP_SESSION_COOKIE));
    }

    #[test]
    fn over_https_each_name_is_its_plain_name_with_the_host_prefix() {
        for cookie in [SESSION, DEVICE, NEW_KEY] {
            assert_eq!(cookie.on(true), format!("__Host-{}", cookie.on(false)));
            assert!(cookie.is(cookie.on(true)) && cookie.is(cookie.on(false)));
            assert!(!cookie.is("tollgate") && !cookie.is(&cookie.on(false).to_uppercase()));
        }
    }
}
