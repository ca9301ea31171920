//! The names of the cookies the dashboard sets. Served over HTTPS, each
//! carries the `__Host-` prefix: browsers then accept it only with `Secure`,
//! for path `/` and no domain, so a page on a sibling subdomain cannot set or
//! shadow it (planting its own session, or a device cookie, in the browser).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_https_each_name_is_its_plain_name_with_the_host_prefix() {
        for cookie in [SESSION, DEVICE, NEW_KEY] {
            assert_eq!(cookie.on(true), format!("__Host-{}", cookie.on(false)));
            assert!(cookie.is(cookie.on(true)) && cookie.is(cookie.on(false)));
            assert!(!cookie.is("tollgate") && !cookie.is(&cookie.on(false).to_uppercase()));
        }
    }
}
