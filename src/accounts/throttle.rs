//! Login and sign-up throttling with governor (GCRA), in memory.
//!
//! Logins: one budget per client IP (an IPv6 caller's /64) and one per
//! account. Each password check takes a cell of both before the password is
//! verified, so guesses sent at once are limited too; a check that passes
//! gives its cells back, so only failed checks use the budgets up. A browser
//! that has signed in to the account before (see [`super::device`]) spends a
//! budget of its own instead of the account's, so someone guessing at an
//! account cannot lock its owner out.
//!
//! Sign-ups: one budget per client IP, taken before the password is hashed
//! and given back when no account was made, so only new accounts use it up:
//! each gets the signup credits, which a script would otherwise farm.
//!
//! Past a budget, the caller learns how long to wait.

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use crate::gateway::{client_ip::counted_address, limit_state::Returnable};

type Budgets<K> = RateLimiter<K, Returnable<K>, DefaultClock>;

pub struct LoginThrottle {
    per_ip: Budgets<IpAddr>,
    ip_cells: Returnable<IpAddr>,
    ip_interval: Duration,
    per_account: Budgets<AccountBudget>,
    account_cells: Returnable<AccountBudget>,
    account_interval: Duration,
}

/// Which budget ran out, and when the next attempt is allowed.
impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("tracked_ips", &self.per_ip.len())
            .field("tracked_accounts", &self.per_account.len())
            .finish()
    }
}

/// The cell an attempt that names no account took, given back by
/// [`LoginThrottle::passed_address`].
#[derive(Debug)]
pub struct AddressAttempt(Option<(IpAddr, u64)>);

/// The cells one attempt took, given back by [`LoginThrottle::passed`].
#[derive(Debug)]
pub struct Attempt {
    ip: Option<(IpAddr, u64)>,
    account: (AccountBudget, u64),
}

/// Whose failed password checks an attempt counts with, besides its address's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum AccountBudget {
    /// Every browser that has not signed in to the account before.
    Account(String),
    /// One browser that has, named by its device cookie's nonce.
    KnownDevice(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub scope: ThrottleScope,
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope {
    ClientIp,
    Account,
    /// A browser that has signed in to the account before.
    KnownDevice,
    /// Sign-ups from one client IP.
    SignupClientIp,
}

impl ThrottleScope {
    /// The `limit` label of its refusals in the metrics.
    pub fn limit_name(self) -> &'static str {
        match self {
            Self::ClientIp => "login_client_ip",
            Self::Account => "login_account",
            Self::KnownDevice => "login_known_device",
            Self::SignupClientIp => "signup_client_ip",
        }
    }
}

impl LoginThrottle {
    /// `per_ip` and `per_account` failed attempts a minute, each usable as a
    /// burst.
    pub fn new(per_ip: NonZeroU32, per_account: NonZeroU32) -> Self {
        let (ip_quota, account_quota) = (Quota::per_minute(per_ip), Quota::per_minute(per_account));
        let (ip_cells, account_cells) = (Returnable::default(), Returnable::default());
        Self {
            per_ip: RateLimiter::new(ip_quota, ip_cells.clone(), DefaultClock::default()),
            ip_cells,
            ip_interval: ip_quota.replenish_interval(),
            per_account: RateLimiter::new(
                account_quota,
                account_cells.clone(),
                DefaultClock::default(),
            ),
            account_cells,
            account_interval: account_quota.replenish_interval(),
        }
    }

    /// Counts one attempt at `account`. An attempt refused by one budget
    /// takes nothing from the other.
    pub fn check(&self, ip: Option<IpAddr>, account: &str) -> Result<Attempt, Throttled> {
        self.check_budgets(ip, AccountBudget::Account(account.to_owned()))
    }

    /// Counts one attempt from a browser that has signed in to the account
    /// before, named by its device cookie's nonce: it spends that browser's
    /// budget, not the account's.
    pub fn check_known_device(
        &self,
        ip: Option<IpAddr>,
        nonce: &str,
    ) -> Result<Attempt, Throttled> {
        self.check_budgets(ip, AccountBudget::KnownDevice(nonce.to_owned()))
    }

    fn check_budgets(
        &self,
        ip: Option<IpAddr>,
        account: AccountBudget,
    ) -> Result<Attempt, Throttled> {
        let clock = DefaultClock::default();
        let ip = match ip.map(counted_address) {
            None => None,
            Some(ip) => {
                self.per_ip.check_key(&ip).map_err(|not_until| Throttled {
                    scope: ThrottleScope::ClientIp,
                    retry_after: not_until.wait_time_from(clock.now()),
                })?;
                Some((ip, self.ip_cells.taken_until(&ip)))
            }
        };
        if let Err(not_until) = self.per_account.check_key(&account) {
            self.give_back_ip(ip);
            return Err(Throttled {
                scope: match account {
                    AccountBudget::Account(_) => ThrottleScope::Account,
                    AccountBudget::KnownDevice(_) => ThrottleScope::KnownDevice,
                },
                retry_after: not_until.wait_time_from(clock.now()),
            });
        }
        let account_until = self.account_cells.taken_until(&account);
        Ok(Attempt {
            ip,
            account: (account, account_until),
        })
    }

    /// Gives back the cells a [`Self::check`] took, once the password it
    /// let through was right.
    pub fn passed(&self, attempt: Attempt) {
        self.give_back_ip(attempt.ip);
        let (account, until) = attempt.account;
        self.account_cells
            .give_back(&account, self.account_interval, until);
    }

    /// Counts one attempt against the address's budget alone, for a check
    /// that names no account (a password reset link's token).
    pub fn check_address(&self, ip: Option<IpAddr>) -> Result<AddressAttempt, Throttled> {
        let Some(ip) = ip.map(counted_address) else {
            return Ok(AddressAttempt(None));
        };
        self.per_ip.check_key(&ip).map_err(|not_until| Throttled {
            scope: ThrottleScope::ClientIp,
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        })?;
        Ok(AddressAttempt(Some((ip, self.ip_cells.taken_until(&ip)))))
    }

    /// Gives back the cell a [`Self::check_address`] took, once what it let
    /// through was right.
    pub fn passed_address(&self, attempt: AddressAttempt) {
        self.give_back_ip(attempt.0);
    }

    /// Gives back a cell of the budget of a [`counted_address`].
    fn give_back_ip(&self, ip: Option<(IpAddr, u64)>) {
        if let Some((ip, until)) = ip {
            self.ip_cells.give_back(&ip, self.ip_interval, until);
        }
    }

    /// Forgets keys whose budgets are full again, so memory stays bounded.
    pub fn forget_idle(&self) {
        self.per_ip.retain_recent();
        self.per_account.retain_recent();
    }
}

/// Sign-ups a client IP may make an hour.
pub struct SignupThrottle {
    per_ip: Budgets<IpAddr>,
    cells: Returnable<IpAddr>,
    interval: Duration,
}

impl std::fmt::Debug for SignupThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignupThrottle")
            .field("tracked_ips", &self.per_ip.len())
            .finish()
    }
}

/// The cell a sign-up took, given back by [`SignupThrottle::no_account_made`].
#[derive(Debug)]
pub struct SignupTurn(Option<(IpAddr, u64)>);

impl SignupThrottle {
    /// `per_hour` sign-ups an hour from one address, usable as a burst.
    pub fn new(per_hour: NonZeroU32) -> Self {
        let quota = Quota::per_hour(per_hour);
        let cells = Returnable::default();
        Self {
            per_ip: RateLimiter::new(quota, cells.clone(), DefaultClock::default()),
            cells,
            interval: quota.replenish_interval(),
        }
    }

    /// Takes a cell for a sign-up from `ip` (none when the address is unknown).
    pub fn check(&self, ip: Option<IpAddr>) -> Result<SignupTurn, Throttled> {
        let Some(ip) = ip.map(counted_address) else {
            return Ok(SignupTurn(None));
        };
        self.per_ip.check_key(&ip).map_err(|not_until| Throttled {
            scope: ThrottleScope::SignupClientIp,
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        })?;
        Ok(SignupTurn(Some((ip, self.cells.taken_until(&ip)))))
    }

    /// Gives back the cell of a sign-up that made no account.
    pub fn no_account_made(&self, turn: SignupTurn) {
        if let SignupTurn(Some((ip, until))) = turn {
            self.cells.give_back(&ip, self.interval, until);
        }
    }

    /// Forgets addresses whose budgets are full again.
    pub fn forget_idle(&self) {
        self.per_ip.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_naming_no_account_share_the_address_budget() {
        let throttle =
            LoginThrottle::new(NonZeroU32::new(2).unwrap(), NonZeroU32::new(100).unwrap());
        let ip = Some("10.0.0.9".parse().unwrap());
        let right = throttle.check_address(ip).unwrap();
        throttle.passed_address(right);
        assert!(throttle.check_address(ip).is_ok());
        assert!(throttle.check(ip, "a@example.com").is_ok());
        let refused = throttle.check_address(ip).unwrap_err();
        assert_eq!(refused.scope, ThrottleScope::ClientIp);
        assert!(
            throttle.check_address(None).is_ok(),
            "an unknown address is not counted"
        );
    }

    #[test]
    fn refuses_past_the_account_budget_and_says_how_long_to_wait() {
        let throttle =
            LoginThrottle::new(NonZeroU32::new(100).unwrap(), NonZeroU32::new(2).unwrap());
        let ip = Some("10.0.0.1".parse().unwrap());
        assert!(throttle.check(ip, "a@example.com").is_ok());
        assert!(throttle.check(ip, "a@example.com").is_ok());
        let refused = throttle.check(ip, "a@example.com").unwrap_err();
        assert_eq!(refused.scope, ThrottleScope::Account);
        assert!(
            refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_secs(30)
        );
        // Another account from the same IP is unaffected.
        assert!(throttle.check(ip, "b@example.com").is_ok());
    }

    #[test]
    fn a_known_device_spends_its_own_budget_not_the_accounts() {
        let throttle =
            LoginThrottle::new(NonZeroU32::new(100).unwrap(), NonZeroU32::new(2).unwrap());
        let ip = Some("10.0.0.6".parse().unwrap());
        for _ in 0..2 {
            throttle.check(ip, "a@example.com").unwrap();
        }
        assert_eq!(
            throttle.check(ip, "a@example.com").unwrap_err().scope,
            ThrottleScope::Account
        );
        let passed = throttle.check_known_device(ip, "nonce-1").unwrap();
        throttle.passed(passed);
        for _ in 0..2 {
            throttle.check_known_device(ip, "nonce-1").unwrap();
        }
        assert_eq!(
            throttle
                .check_known_device(ip, "nonce-1")
                .unwrap_err()
                .scope,
            ThrottleScope::KnownDevice
        );
        // Another browser has its own; the account's stays used up.
        assert!(throttle.check_known_device(ip, "nonce-2").is_ok());
        assert!(throttle.check(ip, "a@example.com").is_err());
    }

    #[test]
    fn refuses_past_the_ip_budget_across_accounts() {
        let throttle =
            LoginThrottle::new(NonZeroU32::new(2).unwrap(), NonZeroU32::new(100).unwrap());
        let ip = Some("10.0.0.2".parse().unwrap());
        assert!(throttle.check(ip, "a@example.com").is_ok());
        assert!(throttle.check(ip, "b@example.com").is_ok());
        assert_eq!(
            throttle.check(ip, "c@example.com").unwrap_err().scope,
            ThrottleScope::ClientIp
        );
        // An IPv6 caller is one caller across its /64.
        let first = Some("2001:db8:1:2::1".parse().unwrap());
        let same_block = Some("2001:db8:1:2:ffff::9".parse().unwrap());
        let next_block = Some("2001:db8:1:3::1".parse().unwrap());
        assert!(throttle.check(first, "a@example.com").is_ok());
        assert!(throttle.check(first, "b@example.com").is_ok());
        assert_eq!(
            throttle
                .check(same_block, "c@example.com")
                .unwrap_err()
                .scope,
            ThrottleScope::ClientIp
        );
        assert!(throttle.check(next_block, "c@example.com").is_ok());
    }

    #[test]
    fn an_attempt_refused_for_its_account_takes_nothing_from_its_address() {
        let throttle = LoginThrottle::new(NonZeroU32::new(2).unwrap(), NonZeroU32::new(1).unwrap());
        let ip = Some("10.0.0.3".parse().unwrap());
        assert!(throttle.check(ip, "a@example.com").is_ok());
        for _ in 0..3 {
            let refused = throttle.check(ip, "a@example.com").unwrap_err();
            assert_eq!(refused.scope, ThrottleScope::Account);
        }
        assert!(throttle.check(ip, "b@example.com").is_ok());
        assert_eq!(
            throttle.check(ip, "c@example.com").unwrap_err().scope,
            ThrottleScope::ClientIp
        );
    }

    #[test]
    fn sign_ups_are_counted_per_address_and_a_failed_one_is_given_back() {
        let throttle = SignupThrottle::new(NonZeroU32::new(2).unwrap());
        let ip = Some("10.0.0.4".parse().unwrap());
        throttle.check(ip).unwrap();
        let failed = throttle.check(ip).unwrap();
        throttle.no_account_made(failed);
        throttle.check(ip).unwrap();
        let refused = throttle.check(ip).unwrap_err();
        assert_eq!(refused.scope, ThrottleScope::SignupClientIp);
        // One cell comes back every half hour.
        assert!(
            refused.retry_after > Duration::from_secs(29 * 60)
                && refused.retry_after <= Duration::from_secs(30 * 60),
            "{:?}",
            refused.retry_after
        );
        // Another address, and a caller whose address is unknown, are not held up.
        assert!(throttle.check(Some("10.0.0.5".parse().unwrap())).is_ok());
        assert!(throttle.check(None).is_ok());
    }
}
