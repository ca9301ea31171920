//! Device cookies: a browser that signed in to an account gets a signed
//! cookie naming the account and a random nonce. When it signs in again, its
//! failed password checks count against a budget of its own rather than the
//! account's (see [`super::throttle`]), so someone guessing at an account,
//! who has no such cookie, cannot keep its owner out by using the account's
//! budget up. The cookie proves nothing else: it is not a session and signs
//! no one in.

use tower_cookies::{
    Cookie, Cookies, Key,
    cookie::{SameSite, time::Duration},
};

pub const DEVICE_COOKIE: &str = "tollgate_device";

/// How long a browser stays known without signing in again.
const KEPT_DAYS: i64 = 180;

/// A browser that has signed in to account `user_id` before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownDevice {
    pub user_id: i64,
    /// Names the browser's own budget.
    pub nonce: String,
}

impl KnownDevice {
    /// The device named by the request's cookie, when its signature holds.
    pub fn from_cookies(cookies: &Cookies, key: &Key) -> Option<Self> {
        let cookie = cookies.signed(key).get(DEVICE_COOKIE)?;
        let (user_id, nonce) = cookie.value().split_once('.')?;
        let nonce_ok = nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_hexdigit());
        Some(Self {
            user_id: user_id.parse().ok()?,
            nonce: nonce.to_owned(),
        })
        .filter(|_| nonce_ok)
    }

    /// Gives the browser a new device cookie for `user_id` (replacing any
    /// other), after a sign-in with the right password.
    pub fn remember(cookies: &Cookies, key: &Key, user_id: i64, secure: bool) {
        let mut nonce = [0u8; 16];
        if getrandom::fill(&mut nonce).is_err() {
            // Without a nonce the browser stays unknown: it loses only the
            // budget of its own.
            return;
        }
        let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let cookie = Cookie::build((DEVICE_COOKIE, format!("{user_id}.{nonce}")))
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Strict)
            .max_age(Duration::days(KEPT_DAYS))
            .build();
        cookies.signed(key).add(cookie);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::from(&[7u8; 64])
    }

    /// A jar holding `value` as the browser sends it back.
    fn sent(value: &str) -> Cookies {
        let back = Cookies::default();
        back.add(Cookie::new(DEVICE_COOKIE, value.to_owned()));
        back
    }

    #[test]
    fn a_remembered_device_is_read_back_and_a_forged_one_is_not() {
        let cookies = Cookies::default();
        KnownDevice::remember(&cookies, &key(), 42, true);
        let set = cookies.get(DEVICE_COOKIE).unwrap().into_owned();
        assert_eq!(
            (set.http_only(), set.secure(), set.same_site()),
            (Some(true), Some(true), Some(SameSite::Strict))
        );
        let device = KnownDevice::from_cookies(&sent(set.value()), &key()).unwrap();
        assert_eq!(device.user_id, 42);
        assert_eq!(device.nonce.len(), 32);

        // Under another key, or with the account changed, the signature fails.
        assert_eq!(
            KnownDevice::from_cookies(&sent(set.value()), &Key::from(&[8u8; 64])),
            None
        );
        let (digest, signed) = set.value().split_at(44);
        assert_eq!(signed, format!("42.{}", device.nonce));
        let forged = format!("{digest}43.{}", device.nonce);
        assert_eq!(KnownDevice::from_cookies(&sent(&forged), &key()), None);
        assert_eq!(KnownDevice::from_cookies(&sent(signed), &key()), None);
        assert_eq!(KnownDevice::from_cookies(&Cookies::default(), &key()), None);
    }
}
