//! Device cookies: a browser that signed in to an account gets a signed
//! cookie naming the account, the account's session epoch, the time and a
//! random nonce. When it signs in again, its failed password checks count
//! against a budget of its own rather than the account's (see
//! [`super::throttle`]), so someone guessing at an account, who has no such
//! cookie, cannot keep its owner out by using the account's budget up. The
//! cookie proves nothing else: it is not a session and signs no one in. It
//! stops counting after [`KEPT_DAYS`], and when the account's session epoch
//! moves on (a password change or reset), so cookies collected by someone
//! who once knew the password give no budgets against the new one.

use tower_cookies::{
    Cookie, Cookies, Key,
    cookie::{SameSite, time::Duration},
};

use super::cookie_names::DEVICE;

/// How long a browser stays known without signing in again.
const KEPT_DAYS: i64 = 180;

/// A browser that has signed in to account `user_id` before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownDevice {
    pub user_id: i64,
    /// The account's session epoch when it signed in.
    pub epoch: i64,
    /// Names the browser's own budget.
    pub nonce: String,
}

impl KnownDevice {
    /// The device named by the request's cookie, when its signature holds
    /// and it is not older than [`KEPT_DAYS`] at `now` (Unix seconds), on a
    /// site served over HTTPS (`https`) or not.
    pub fn from_cookies(cookies: &Cookies, key: &Key, https: bool, now: i64) -> Option<Self> {
        let cookie = cookies.signed(key).get(DEVICE.on(https))?;
        let mut parts = cookie.value().split('.');
        let (user_id, epoch, issued, nonce) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let issued: i64 = issued.parse().ok()?;
        let fresh = (now - KEPT_DAYS * 86_400..=now + 60).contains(&issued);
        let nonce_ok = nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_hexdigit());
        if !fresh || !nonce_ok || parts.next().is_some() {
            return None;
        }
        Some(Self {
            user_id: user_id.parse().ok()?,
            epoch: epoch.parse().ok()?,
            nonce: nonce.to_owned(),
        })
    }

    /// Whether it counts for `user_id` in session epoch `epoch`.
    pub fn is_for(&self, user_id: i64, epoch: i64) -> bool {
        self.user_id == user_id && self.epoch == epoch
    }

    /// Gives the browser a new device cookie for `user_id` in session epoch
    /// `epoch` (replacing any other), after a sign-in with the right
    /// password, at `now` (Unix seconds).
    pub fn remember(
        cookies: &Cookies,
        key: &Key,
        user_id: i64,
        epoch: i64,
        secure: bool,
        now: i64,
    ) {
        let mut nonce = [0u8; 16];
        if getrandom::fill(&mut nonce).is_err() {
            // Without a nonce the browser stays unknown: it loses only the
            // budget of its own.
            return;
        }
        let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let cookie = Cookie::build((
            DEVICE.on(secure),
            format!("{user_id}.{epoch}.{now}.{nonce}"),
        ))
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

    /// A jar holding `value` as the browser sends it back to a site served
    /// over HTTPS.
    fn sent(value: &str) -> Cookies {
        let back = Cookies::default();
        back.add(Cookie::new(DEVICE.on(true), value.to_owned()));
        back
    }

    #[test]
    fn a_remembered_device_is_read_back_and_a_forged_or_old_one_is_not() {
        let now = 1_800_000_000;
        let cookies = Cookies::default();
        KnownDevice::remember(&cookies, &key(), 42, 3, true, now);
        let set = cookies.get("__Host-tollgate_device").unwrap().into_owned();
        assert_eq!(
            (set.http_only(), set.secure(), set.same_site()),
            (Some(true), Some(true), Some(SameSite::Strict))
        );
        let device = KnownDevice::from_cookies(&sent(set.value()), &key(), true, now).unwrap();
        assert_eq!(
            (device.user_id, device.epoch, device.nonce.len()),
            (42, 3, 32)
        );
        assert!(device.is_for(42, 3));
        assert!(
            !device.is_for(42, 4),
            "a password change moves the epoch on"
        );
        assert!(!device.is_for(43, 3));
        // Under its plain name it counts only on a site served over HTTP: a
        // sibling subdomain can set that name, not the `__Host-` one.
        let plain = Cookies::default();
        plain.add(Cookie::new(DEVICE.on(false), set.value().to_owned()));
        assert_eq!(KnownDevice::from_cookies(&plain, &key(), true, now), None);
        assert!(KnownDevice::from_cookies(&plain, &key(), false, now).is_some());

        // Past its days, or under another key, it is no device.
        let later = now + KEPT_DAYS * 86_400 + 1;
        assert_eq!(
            KnownDevice::from_cookies(&sent(set.value()), &key(), true, later),
            None
        );
        assert_eq!(
            KnownDevice::from_cookies(&sent(set.value()), &Key::from(&[8u8; 64]), true, now),
            None
        );
        // With the account changed, or unsigned, the signature fails.
        let (digest, signed) = set.value().split_at(44);
        assert_eq!(signed, format!("42.3.{now}.{}", device.nonce));
        let forged = format!("{digest}43.3.{now}.{}", device.nonce);
        assert_eq!(
            KnownDevice::from_cookies(&sent(&forged), &key(), true, now),
            None
        );
        assert_eq!(
            KnownDevice::from_cookies(&sent(signed), &key(), true, now),
            None
        );
        assert_eq!(
            KnownDevice::from_cookies(&Cookies::default(), &key(), true, now),
            None
        );
    }
}
