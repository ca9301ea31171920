//! Sessions, same-origin checks, login throttling, roles and admin creation.

use std::{io::Write, process::Stdio};

use serde_json::Value;

use crate::support::{Answer, Browser, PASSWORD, TestApp, set_cookie, spawn_app, spawn_app_with};

const ADMIN: [(&str, &str); 2] = [
    ("TOLLGATE_ADMIN_EMAIL", "root@example.com"),
    ("TOLLGATE_ADMIN_PASSWORD", "admin-passphrase-for-tests"),
];

/// Asserts that the metrics count `count` refusals by `limit`.
async fn assert_rejections(app: &TestApp, limit: &str, count: u64) {
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let line = format!(r#"tollgate_limit_rejections_total{{limit="{limit}"}} {count}"#);
    assert!(metrics.contains(&line), "{line} is not in {metrics}");
}

/// `times` sign-ins to `email` with a wrong password from `browser`, each
/// refused as one (401), not yet throttled.
async fn guess_wrong(app: &TestApp, browser: &Browser, email: &str, times: usize) {
    for _ in 0..times {
        let guess = app.login(browser, email, "wrong-password-1").await;
        assert_eq!(guess.status, 401, "{:?}", guess.body);
    }
}

/// Asserts that `refused` is a throttled sign-in (429) whose message says
/// whose budget ran out (`"for this account"`, `"from this browser"`, ...).
fn assert_throttled(refused: &Answer, says: &str) {
    assert_eq!(refused.status, 429, "{:?}", refused.body);
    let message = refused.body["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{message:?} does not say {says:?}");
}

#[tokio::test]
async fn the_session_cookie_is_httponly_lax_and_secure_and_host_only_over_https() {
    let app = spawn_app().await;
    let answer = app.register(&app.browser(), "c@example.com", "C").await;
    let cookie = set_cookie(&answer.headers, "tollgate_session").expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(
        cookie.contains("Max-Age=604800") || cookie.contains("Expires="),
        "{cookie}"
    );

    let app = spawn_app_with(&[("TOLLGATE_PUBLIC_URL", "https://llm.example.com")]).await;
    // The browser is on the public origin, behind a TLS proxy.
    let response = reqwest::Client::new()
        .post(app.url("/api/register"))
        .header("origin", "https://llm.example.com")
        .header("accept", "application/json")
        .form(&[
            ("email", "s@example.com"),
            ("display_name", "S"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let cookies: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    // The session, the one-time new-key cookie and the device cookie, each
    // host-only: `__Host-`, Secure, path / and no domain (else browsers drop it).
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    for name in ["session", "new_key", "device"] {
        let cookie = cookies
            .iter()
            .find(|c| c.starts_with(&format!("__Host-tollgate_{name}=")))
            .unwrap_or_else(|| panic!("no host-only {name} cookie in {cookies:?}"));
        assert!(
            cookie.contains("; Secure")
                && cookie.contains("; Path=/")
                && !cookie.to_ascii_lowercase().contains("domain="),
            "{cookie}"
        );
    }

    // The session works under that name, and the same-origin check knows it.
    let session = cookies
        .iter()
        .find_map(|c| c.strip_prefix("__Host-tollgate_session="))
        .and_then(|c| c.split(';').next())
        .map(|id| format!("__Host-tollgate_session={id}"))
        .unwrap();
    let create_key = |origin: &'static str| {
        reqwest::Client::new()
            .post(app.url("/api/v1/keys"))
            .header("cookie", &session)
            .header("origin", origin)
            .json(&serde_json::json!({ "name": "second" }))
            .send()
    };
    let refused = create_key("https://evil.example").await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "cross_site_request");
    let created = create_key("https://llm.example.com").await.unwrap();
    assert_eq!(created.status(), 201, "{:?}", created.text().await);

    // Signing out removes it from the browser: a removal without Secure is
    // ignored for a `__Host-` name, and the ended session's id stayed.
    let signed_out = reqwest::Client::new()
        .post(app.url("/api/logout"))
        .header("cookie", &session)
        .header("origin", "https://llm.example.com")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let removal = set_cookie(signed_out.headers(), "__Host-tollgate_session")
        .expect("the session cookie removed");
    assert!(
        removal.contains("Max-Age=0") && removal.contains("; Secure"),
        "{removal}"
    );
}

#[tokio::test]
async fn login_issues_a_new_session_id_and_logout_deletes_the_session() {
    let app = spawn_app().await;
    let b = app.browser();
    app.register(&b, "rot@example.com", "Rot").await;
    let first = b.session_cookie().unwrap();
    app.login(&b, "rot@example.com", PASSWORD).await;
    let second = b.session_cookie().unwrap();
    assert_ne!(first, second, "the id changes at login");
    assert_eq!(
        app.me(&app.browser_with_cookie(&first)).await,
        Value::Null,
        "the old id is dead"
    );
    assert_eq!(
        app.me(&app.browser_with_cookie(&second)).await["email"],
        "rot@example.com"
    );

    let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tower_sessions")
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    app.call(&b, "logout", &[]).await;
    assert_eq!(app.me(&app.browser_with_cookie(&second)).await, Value::Null);
    let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tower_sessions")
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(after, before - 1, "the server-side session is deleted");
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let app = spawn_app().await;
    let b = app.browser();
    app.register(&b, "persist@example.com", "Persist").await;
    let cookie = b.session_cookie().unwrap();
    let app = app.restart(&[]).await;
    assert_eq!(
        app.me(&app.browser_with_cookie(&cookie)).await["email"],
        "persist@example.com"
    );
}

#[tokio::test]
async fn idle_sessions_expire() {
    let app = spawn_app_with(&[("TOLLGATE_SESSION_IDLE_SECS", "60")]).await;
    let b = app.browser();
    app.register(&b, "idle@example.com", "Idle").await;
    let cookie = b.session_cookie().unwrap();
    // Age the stored session past its expiry instead of waiting a minute
    // (stored as RFC 3339 text in UTC).
    sqlx::query(
        "UPDATE tower_sessions SET expiry_date = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 second')",
    )
        .execute(&app.db().await)
        .await
        .unwrap();
    assert_eq!(app.me(&app.browser_with_cookie(&cookie)).await, Value::Null);
}

#[tokio::test]
async fn a_session_in_use_is_extended_past_its_idle_time_from_sign_in() {
    let app = spawn_app_with(&[("TOLLGATE_SESSION_IDLE_SECS", "60")]).await;
    let b = app.browser();
    app.register(&b, "busy@example.com", "Busy").await;
    let cookie = b.session_cookie().unwrap();
    let db = app.db().await;
    // Stored as text, UTC, in one format: later times sort later.
    let expiry =
        || sqlx::query_scalar::<_, String>("SELECT expiry_date FROM tower_sessions").fetch_one(&db);
    let at_sign_in = expiry().await.unwrap();
    // A session in use is saved again once a hundredth of its idle time has
    // passed, at least a second.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let used = app.call(&app.browser_with_cookie(&cookie), "me", &[]).await;
    assert_eq!(used.body["email"], "busy@example.com", "{:?}", used.body);
    let after_use = expiry().await.unwrap();
    assert!(
        after_use > at_sign_in,
        "the use moved the expiry on: {at_sign_in} then {after_use}"
    );
    // And the browser's cookie with it.
    let renewed =
        set_cookie(&used.headers, "tollgate_session").expect("the session cookie set again");
    assert!(renewed.contains("Max-Age=60"), "{renewed}");

    // A page streamed to the browser extends it too: its session is checked
    // before the page's headers go out (it was read too late, and kept only
    // about half the time).
    for round in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let before = expiry().await.unwrap();
        let page = reqwest::Client::new()
            .get(app.url("/"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        assert!(
            set_cookie(page.headers(), "tollgate_session").is_some(),
            "round {round}: {:?}",
            page.headers()
        );
        page.text().await.unwrap();
        assert!(expiry().await.unwrap() > before, "round {round}");
    }
}

/// A session ended while away (the account disabled) is ended on the next
/// page, streamed or not, with its cookie removed; on a streamed page this
/// happened after the headers went out, and the page was at times a bare 500.
#[tokio::test]
async fn a_stale_session_is_ended_on_a_streamed_page() {
    let app = spawn_app_with(&ADMIN).await;
    let user = app.browser();
    app.register(&user, "stale@example.com", "Stale").await;
    // One session for each page: once ended, a session is unknown, and a
    // request with an unknown one keeps its cookie (see the test below).
    let other = app.browser();
    app.login(&other, "stale@example.com", PASSWORD).await;
    let cookies = [
        user.session_cookie().unwrap(),
        other.session_cookie().unwrap(),
    ];
    let admin = app.browser();
    app.login(&admin, "root@example.com", "admin-passphrase-for-tests")
        .await;
    let id = app
        .db_number("SELECT id FROM users WHERE email = 'stale@example.com'")
        .await;
    let disabled = admin
        .client
        .post(app.url(&format!("/api/v1/admin/users/{id}/disable")))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    for (path, cookie) in ["/", "/docs"].into_iter().zip(&cookies) {
        let page = reqwest::Client::new()
            .get(app.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{path}");
        let removal = set_cookie(page.headers(), "tollgate_session");
        assert!(
            removal.is_some_and(|c| c.contains("Max-Age=0")),
            "{path}: {:?}",
            page.headers()
        );
    }
}

/// A request sent with the session a password change then replaced, and
/// answered after it, leaves the browser's new cookie alone: its removal
/// cookie signed out the browser that had just changed its password. A
/// session the change ended elsewhere is ended all the same.
#[tokio::test]
async fn a_request_racing_a_password_change_does_not_sign_its_browser_out() {
    let app = spawn_app().await;
    let laptop = app.browser();
    app.register(&laptop, "racer@example.com", "Racer").await;
    let phone = app.browser();
    app.login(&phone, "racer@example.com", PASSWORD).await;
    let before = laptop.session_cookie().unwrap();
    let phone_cookie = phone.session_cookie().unwrap();
    let changed = app
        .call(
            &laptop,
            "account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "another-long-passphrase-9"),
            ],
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_ne!(laptop.session_cookie().unwrap(), before, "a new session id");
    // The laptop's page asked for something just before the change; its
    // answer comes after, carrying no removal of the session cookie.
    for cookie in [&before, &phone_cookie] {
        let page = reqwest::Client::new()
            .get(app.url("/usage"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(
            set_cookie(page.headers(), "tollgate_session"),
            None,
            "{:?}",
            page.headers()
        );
        assert!(page.headers().get("x-tollgate-keep-session").is_none());
    }
    assert_eq!(app.me(&laptop).await["email"], "racer@example.com");
    assert_eq!(app.me(&phone).await, Value::Null);
}

#[tokio::test]
async fn cross_site_state_changes_are_refused() {
    let app = spawn_app().await;
    let form = [
        ("email", "x@example.com"),
        ("display_name", "X"),
        ("password", PASSWORD),
    ];
    let post = |origin: Option<&'static str>, referer: Option<String>| {
        let mut request = reqwest::Client::new()
            .post(app.url("/api/register"))
            .header("accept", "application/json")
            .form(&form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(referer) = referer {
            request = request.header("referer", referer);
        }
        request.send()
    };
    for (origin, referer) in [
        (Some("https://evil.example"), None),
        (Some("null"), None),
        (None, Some("https://evil.example/form".to_owned())),
        (None, None),
    ] {
        let response = post(origin, referer.clone()).await.unwrap();
        assert_eq!(response.status(), 403, "{origin:?} {referer:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "cross_site_request");
    }
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(count, 0);

    // A same-origin Referer is enough when Origin is missing.
    let response = post(None, Some(app.url("/register"))).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["location"], "/welcome");

    // Session-authenticated REST calls are checked too.
    let admin_app = spawn_app_with(&ADMIN).await;
    let b = admin_app.browser();
    admin_app
        .login(&b, "root@example.com", "admin-passphrase-for-tests")
        .await;
    let cookie = b.session_cookie().unwrap();
    let response = reqwest::Client::new()
        .post(admin_app.url("/api/v1/admin/users/1/disable"))
        .header("cookie", cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn login_attempts_are_throttled_per_account() {
    let app = spawn_app_with(&[("TOLLGATE_LOGIN_ATTEMPTS_PER_ACCOUNT", "3")]).await;
    app.register(&app.browser(), "t@example.com", "T").await;
    let b = app.browser();
    guess_wrong(&app, &b, "t@example.com", 3).await;
    let refused = app.login(&b, "T@example.com", PASSWORD).await;
    assert_eq!(refused.status, 429);
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.body["retry_after_secs"], retry_after);
    let message = refused.body["message"].as_str().unwrap();
    assert!(
        message.contains("for this account")
            && message.contains(&format!("Wait {retry_after} seconds")),
        "{message}"
    );
    assert_eq!(
        app.me(&b).await,
        Value::Null,
        "even the right password is refused while throttled"
    );
    // The three guesses are audited; the refused attempts are counted in the
    // metrics instead, so a flood of them cannot fill the append-only log.
    for _ in 0..5 {
        assert_eq!(app.login(&b, "t@example.com", PASSWORD).await.status, 429);
    }
    let failures = app
        .audit_actions()
        .await
        .iter()
        .filter(|action| *action == "login.failure")
        .count();
    assert_eq!(failures, 3);
    assert_rejections(&app, "login_account", 6).await;
    // An address longer than any account's is refused before the throttle
    // or the log keeps it.
    let long = format!("{}@example.com", "a".repeat(300));
    assert_eq!(app.login(&b, &long, PASSWORD).await.status, 401);
    let logged: i64 = sqlx::query_scalar("SELECT MAX(LENGTH(target)) FROM audit_events")
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert!(logged < 300, "{logged}");
}

/// Each sign-up gets the signup credits, so one address may make only so many
/// accounts an hour; a sign-up refused for its input uses nothing up, and one
/// refused as taken counts (it says an account exists: asked freely, anyone
/// could check any list of addresses).
#[tokio::test]
async fn sign_ups_are_throttled_per_client_ip_and_only_new_accounts_and_taken_emails_count() {
    let app = spawn_app_with(&[
        ("TOLLGATE_SIGNUPS_PER_IP", "3"),
        ("TOLLGATE_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let made = app.register(&app.browser(), "one@example.com", "One").await;
    assert!(made.status.is_success(), "{:?}", made.body);
    let taken = app
        .register(&app.browser(), "one@example.com", "Again")
        .await;
    assert_eq!(taken.status, 409, "{:?}", taken.body);
    let invalid = app.register(&app.browser(), "not-an-email", "Bad").await;
    assert_eq!(invalid.status, 422, "{:?}", invalid.body);
    let made = app.register(&app.browser(), "two@example.com", "Two").await;
    assert!(made.status.is_success(), "{:?}", made.body);

    let refused = app
        .register(&app.browser(), "three@example.com", "Three")
        .await;
    assert_eq!(refused.status, 429, "{:?}", refused.body);
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // One sign-up an address comes back every 20 minutes.
    assert!((1140..=1200).contains(&retry_after), "{retry_after}");
    let message = refused.body["message"].as_str().unwrap();
    assert!(
        message.contains("new accounts from this address") && message.contains("minutes"),
        "{message}"
    );
    let users: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email = 'three@example.com'")
            .fetch_one(&app.db().await)
            .await
            .unwrap();
    assert_eq!(users, 0);
    assert_rejections(&app, "signup_client_ip", 1).await;

    // Another address, behind the trusted proxy, has its own budget.
    let elsewhere = app
        .browser()
        .client
        .post(app.url("/api/register"))
        .header("accept", "application/json")
        .header("x-forwarded-for", "203.0.113.7")
        .form(&[
            ("email", "three@example.com"),
            ("display_name", "Three"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert!(elsewhere.status().is_success(), "{}", elsewhere.status());
}

/// Only failed password checks use the budgets up: a user who signs in and
/// changes the password again and again is never throttled, and the budgets
/// still stop guessing after it.
#[tokio::test]
async fn right_passwords_do_not_use_up_the_login_budgets() {
    let app = spawn_app_with(&[
        ("TOLLGATE_LOGIN_ATTEMPTS_PER_ACCOUNT", "2"),
        ("TOLLGATE_LOGIN_ATTEMPTS_PER_IP", "2"),
    ])
    .await;
    app.register(&app.browser(), "often@example.com", "O").await;
    let b = app.browser();
    for _ in 0..4 {
        let signed_in = app.login(&b, "often@example.com", PASSWORD).await;
        assert!(signed_in.status.is_success(), "{:?}", signed_in.body);
    }
    // Away and back: a change to the same password is refused.
    for (current, new) in [
        (PASSWORD, "another-long-passphrase"),
        ("another-long-passphrase", PASSWORD),
    ] {
        let fields = [("current_password", current), ("new_password", new)];
        let changed = app.call(&b, "account/password", &fields).await;
        assert!(changed.status.is_success(), "{:?}", changed.body);
    }
    let b = app.browser();
    for _ in 0..2 {
        let wrong = app.login(&b, "often@example.com", "wrong-password-1").await;
        assert_eq!(wrong.status, 401);
    }
    let refused = app.login(&b, "often@example.com", PASSWORD).await;
    assert_eq!(refused.status, 429, "{:?}", refused.body);
}

/// Someone guessing at an account uses its budget up, but a browser that
/// has signed in to it before carries a signed device cookie and spends a
/// budget of its own, so the owner is not locked out; its own wrong guesses
/// use that budget up in turn. A forged or borrowed cookie buys nothing.
#[tokio::test]
async fn guessing_at_an_account_does_not_lock_out_a_browser_that_signed_in_before() {
    let app = spawn_app_with(&[("TOLLGATE_LOGIN_ATTEMPTS_PER_ACCOUNT", "3")]).await;
    let owner = app.browser();
    let device_cookie_set = |answer: &Answer| {
        let set: Vec<String> = answer
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|v| v.starts_with("tollgate_device="))
            .map(str::to_owned)
            .collect();
        assert_eq!(set.len(), 1, "{:?}", answer.headers);
        set[0].clone()
    };
    let set_cookie = device_cookie_set(&app.register(&owner, "owner@example.com", "O").await);
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=15552000"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let device_cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert_eq!(app.call(&owner, "logout", &[]).await.status, 200);

    let guesser = app.browser();
    guess_wrong(&app, &guesser, "owner@example.com", 3).await;
    assert_eq!(
        app.login(&guesser, "owner@example.com", PASSWORD)
            .await
            .status,
        429
    );
    // The same budget holds for a browser with a cookie that does not verify
    // (its value changed) or that was given for another account.
    let (name_and_mac, nonce) = device_cookie.rsplit_once('.').unwrap();
    let changed = format!("{name_and_mac}.{}", nonce.chars().rev().collect::<String>());
    let forged = app.browser_with_cookie(&changed);
    assert_eq!(
        app.login(&forged, "owner@example.com", PASSWORD)
            .await
            .status,
        429
    );
    let other = app.browser();
    app.register(&other, "other@example.com", "X").await;
    assert_eq!(
        app.login(&other, "owner@example.com", PASSWORD)
            .await
            .status,
        429
    );

    // The owner's browser signs in, and is given a new cookie.
    let signed_in = app.login(&owner, "owner@example.com", PASSWORD).await;
    assert_eq!(signed_in.status, 200, "{:?}", signed_in.body);
    assert_eq!(app.me(&owner).await["email"], "owner@example.com");
    assert!(!device_cookie_set(&signed_in).starts_with(&device_cookie));
    assert_eq!(app.call(&owner, "logout", &[]).await.status, 200);
    // Its own wrong guesses use its own budget, not the account's.
    guess_wrong(&app, &owner, "owner@example.com", 3).await;
    let refused = app.login(&owner, "owner@example.com", PASSWORD).await;
    assert_throttled(&refused, "from this browser");
    assert_rejections(&app, "login_known_device", 1).await;
}

/// A device cookie counts only in the session epoch it was given in: after a
/// password change, the cookies kept by someone who knew the old password
/// give no budget of their own, while the browser that changed it is given a
/// new one.
#[tokio::test]
async fn a_password_change_ends_other_browsers_device_cookies() {
    let app = spawn_app_with(&[("TOLLGATE_LOGIN_ATTEMPTS_PER_ACCOUNT", "3")]).await;
    let owner = app.browser();
    app.register(&owner, "moved@example.com", "M").await;
    let thief = app.browser();
    assert_eq!(
        app.login(&thief, "moved@example.com", PASSWORD)
            .await
            .status,
        200
    );
    assert_eq!(app.call(&thief, "logout", &[]).await.status, 200);
    let new_password = "a-brand-new-passphrase";
    let changed = app
        .call(
            &owner,
            "account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", new_password),
            ],
        )
        .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_eq!(app.call(&owner, "logout", &[]).await.status, 200);

    let guesser = app.browser();
    guess_wrong(&app, &guesser, "moved@example.com", 3).await;
    // The thief's cookie is from before the change: the account's budget, used up.
    let refused = app
        .login(&thief, "moved@example.com", "wrong-password-2")
        .await;
    assert_throttled(&refused, "for this account");
    let signed_in = app.login(&owner, "moved@example.com", new_password).await;
    assert_eq!(signed_in.status, 200, "{:?}", signed_in.body);
}

/// A signed-in session's password checks (changing the password, deleting
/// the account) spend the account's login budget, so a stolen session cannot
/// guess the password faster than a login could.
#[tokio::test]
async fn password_checks_of_a_signed_in_user_are_throttled_too() {
    let app = spawn_app_with(&[("TOLLGATE_LOGIN_ATTEMPTS_PER_ACCOUNT", "3")]).await;
    let b = app.browser();
    app.register(&b, "guess@example.com", "G").await;
    let change = |current: &'static str| {
        let (app, b) = (&app, &b);
        async move {
            let fields = [
                ("current_password", current),
                ("new_password", "a-brand-new-passphrase"),
            ];
            app.call(b, "account/password", &fields).await
        }
    };
    for _ in 0..3 {
        assert_eq!(change("wrong-password-1").await.status, 422);
    }
    let refused = change(PASSWORD).await;
    assert_throttled(&refused, "for this account");
    let refused = app
        .call(&b, "account/delete", &[("password", PASSWORD)])
        .await;
    assert_eq!(refused.status, 429);
    assert!(
        app.me(&b).await.is_object(),
        "still signed in, nothing changed"
    );
    // Counted with the logins' refusals.
    assert_rejections(&app, "login_account", 2).await;
}

#[tokio::test]
async fn login_attempts_are_throttled_per_client_ip() {
    let app = spawn_app_with(&[("TOLLGATE_LOGIN_ATTEMPTS_PER_IP", "3")]).await;
    let b = app.browser();
    for n in 0..3 {
        let email = format!("spray{n}@example.com");
        assert_eq!(app.login(&b, &email, "wrong-password-1").await.status, 401);
    }
    let refused = app
        .login(&b, "spray9@example.com", "wrong-password-1")
        .await;
    assert_throttled(&refused, "from this address");
}

#[tokio::test]
async fn admin_pages_and_routes_refuse_users_and_send_visitors_to_login() {
    let app = spawn_app_with(&ADMIN).await;
    let user = app.browser();
    app.register(&user, "user@example.com", "User").await;
    let admin = app.browser();
    app.login(&admin, "root@example.com", "admin-passphrase-for-tests")
        .await;
    let anonymous = app.browser();

    // Pages.
    let get = |b: &crate::support::Browser, path: &str| {
        b.client
            .get(app.url(path))
            .header("accept", "text/html")
            .send()
    };
    let response = get(&anonymous, "/admin").await.unwrap();
    assert!(response.status().is_redirection());
    assert_eq!(response.headers()["location"], "/login?next=%2Fadmin");
    // A link to a user's page or a filtered log comes back to it, filters too.
    for (asked, next) in [
        ("/admin/users/5", "%2Fadmin%2Fusers%2F5"),
        (
            "/admin/audit?actor=1&page=2",
            "%2Fadmin%2Faudit%3Factor%3D1%26page%3D2",
        ),
    ] {
        let response = get(&anonymous, asked).await.unwrap();
        assert!(response.status().is_redirection(), "{asked}");
        assert_eq!(
            response.headers()["location"],
            format!("/login?next={next}").as_str()
        );
    }
    // The login page hands `next` on decoded once: a page's own encoded `&`
    // and `/` stay encoded (decoded twice, they split its query).
    let response = get(&anonymous, "/usage?x=a%26b&y=%2Fz").await.unwrap();
    let login = response.headers()["location"].to_str().unwrap().to_owned();
    let html = get(&anonymous, &login).await.unwrap().text().await.unwrap();
    assert!(
        html.contains(r#"name="next" value="/usage?x=a%26b&amp;y=%2Fz""#),
        "{login}: {html}"
    );
    let response = get(&user, "/admin").await.unwrap();
    assert_eq!(response.status(), 403);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Administrators only")
    );
    let response = get(&admin, "/admin").await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("user@example.com"));

    // REST routes.
    let response = get(&anonymous, "/api/v1/admin/users").await.unwrap();
    assert!(response.status().is_redirection());
    assert_eq!(
        response.headers()["location"],
        "/login?next=%2Fapi%2Fv1%2Fadmin%2Fusers"
    );
    let response = anonymous
        .client
        .get(app.url("/api/v1/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "scripts get 401 rather than a redirect"
    );
    let response = user
        .client
        .get(app.url("/api/v1/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "admin_only");
    let response = user
        .client
        .post(app.url("/api/v1/admin/users/1/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = admin
        .client
        .get(app.url("/api/v1/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);

    // Admin server functions too.
    assert_eq!(app.call(&user, "admin/users", &[]).await.status, 403);
    assert_eq!(app.call(&anonymous, "admin/users", &[]).await.status, 401);
}

#[tokio::test]
async fn a_disabled_account_is_signed_out_at_once_and_cannot_log_in() {
    let app = spawn_app_with(&ADMIN).await;
    let user = app.browser();
    app.register(&user, "bad@example.com", "Bad").await;
    let user_id = app.me(&user).await["id"].as_i64().unwrap();
    let admin = app.browser();
    app.login(&admin, "root@example.com", "admin-passphrase-for-tests")
        .await;

    let response = admin
        .client
        .post(app.url(&format!("/api/v1/admin/users/{user_id}/disable")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "disabled");
    assert_eq!(
        app.me(&user).await,
        Value::Null,
        "the session ended at once"
    );
    let answer = app.login(&app.browser(), "bad@example.com", PASSWORD).await;
    assert_eq!(answer.status, 403);
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("disabled")
    );

    // Enabling twice (a second click, a second admin) answers the same and
    // audits once.
    for _ in 0..2 {
        let response = admin
            .client
            .post(app.url(&format!("/api/v1/admin/users/{user_id}/enable")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "active");
    }
    assert!(
        app.login(&app.browser(), "bad@example.com", PASSWORD)
            .await
            .location()
            .is_some()
    );
    let response = admin
        .client
        .post(app.url("/api/v1/admin/users/999/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    let actions = app.audit_actions().await;
    let count = |action: &str| actions.iter().filter(|a| *a == action).count();
    assert_eq!((count("account.disable"), count("account.enable")), (1, 1));
}

#[tokio::test]
async fn the_admin_from_the_environment_is_created_once() {
    let app = spawn_app_with(&ADMIN).await;
    let admin = app.browser();
    assert!(
        app.login(&admin, "root@example.com", "admin-passphrase-for-tests")
            .await
            .location()
            .is_some()
    );
    assert_eq!(app.me(&admin).await["is_admin"], true);
    let app = app.restart(&ADMIN).await;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_weak_admin_password_from_the_environment_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .current_dir(dir.path())
        .env_clear()
        .env("TOLLGATE_ADDR", "127.0.0.1:0")
        .env("TOLLGATE_ADMIN_EMAIL", "root@example.com")
        .env("TOLLGATE_ADMIN_PASSWORD", "password123")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("TOLLGATE_ADMIN_PASSWORD") && stderr.contains("commonly used"),
        "{stderr}"
    );
}

#[tokio::test]
async fn create_admin_reads_the_password_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let run = |password: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .current_dir(dir.path())
            .env_clear()
            .args(["create-admin", "--email", "Boss@Example.com"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let weak = run("short");
    assert_eq!(weak.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 8"));

    let created = run("boss-passphrase-long-enough");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(
        String::from_utf8_lossy(&created.stdout).contains("Created admin account boss@example.com")
    );
    let again = run("boss-passphrase-long-enough");
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // The server on that database lets the admin in.
    let app = crate::support::spawn_app_in(dir, &[]).await;
    let b = app.browser();
    app.login(&b, "boss@example.com", "boss-passphrase-long-enough")
        .await;
    assert_eq!(app.me(&b).await["is_admin"], true);
}
