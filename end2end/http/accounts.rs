//! Registration, login, profile, password change, deletion and the audit trail.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{PASSWORD, spawn_app};

#[tokio::test]
async fn registration_signs_the_user_in_with_a_normalised_email() {
    let app = spawn_app().await;
    let ada = app.browser();
    let answer = app
        .register(&ada, "  Ada@Example.COM ", " Ada Lovelace ")
        .await;
    // The page's script follows the Location itself (a real redirect for plain form posts).
    assert_eq!(answer.status, 200);
    assert_eq!(answer.location(), Some("/welcome"));

    let me = app.me(&ada).await;
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["display_name"], "Ada Lovelace");
    assert_eq!(me["is_admin"], false);

    let hash: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE email = 'ada@example.com'")
            .fetch_one(&app.db().await)
            .await
            .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(PASSWORD));
}

#[tokio::test]
async fn registration_refuses_bad_input_field_by_field() {
    let app = spawn_app().await;
    let browser = app.browser();
    let answer = app
        .call(
            &browser,
            "register",
            &[
                ("email", "not-an-email"),
                ("display_name", "  "),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(answer.status, 422);
    let fields = &answer.body["fields"];
    assert!(fields["email"].as_str().unwrap().contains("email address"));
    assert!(
        fields["display_name"]
            .as_str()
            .unwrap()
            .contains("display name")
    );
    assert!(fields["password"].as_str().unwrap().contains("at least 8"));
    // What was typed comes back, except the password.
    assert_eq!(answer.body["values"]["email"], "not-an-email");
    assert!(answer.body["values"].get("password").is_none());

    let too_long = "x".repeat(129);
    let answer = app
        .call(
            &browser,
            "register",
            &[
                ("email", "a@example.com"),
                ("display_name", "A"),
                ("password", &too_long),
            ],
        )
        .await;
    assert!(
        answer.body["fields"]["password"]
            .as_str()
            .unwrap()
            .contains("at most 128")
    );

    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing is written for refused input");

    // A call missing a field is the caller's mistake: 400, not Leptos' 500.
    for form in [
        &[("email", "a@example.com")][..],
        &[("email", "a@example.com"), ("password", "long enough pass")][..],
    ] {
        let answer = app.call(&browser, "register", form).await;
        assert_eq!(answer.status, 400, "{form:?}: {:?}", answer.body);
        assert!(
            answer.body["message"]
                .as_str()
                .unwrap()
                .contains("incomplete"),
            "{:?}",
            answer.body
        );
    }
}

#[tokio::test]
async fn common_passwords_are_refused_with_the_reason() {
    let app = spawn_app().await;
    let browser = app.browser();
    for common in ["password1", "Iloveyou", "qwertyuiop", "1q2w3e4r5t"] {
        let answer = app
            .call(
                &browser,
                "register",
                &[
                    ("email", "b@example.com"),
                    ("display_name", "B"),
                    ("password", common),
                ],
            )
            .await;
        assert_eq!(answer.status, 422, "{common}");
        let message = answer.body["fields"]["password"].as_str().unwrap();
        assert!(
            message.contains("commonly used passwords"),
            "{common}: {message}"
        );
    }
}

#[tokio::test]
async fn an_email_registers_once_whatever_its_case() {
    let app = spawn_app().await;
    app.register(&app.browser(), "grace@example.com", "Grace")
        .await;
    let answer = app
        .register(&app.browser(), "GRACE@example.com ", "Impostor")
        .await;
    assert_eq!(answer.status, 409);
    assert!(
        answer.body["fields"]["email"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
}

#[tokio::test]
async fn login_failures_look_the_same_for_unknown_emails_and_wrong_passwords() {
    let app = spawn_app_with_generous_throttle().await;
    app.register(&app.browser(), "known@example.com", "Known")
        .await;
    let browser = app.browser();

    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let a = app.login(&browser, "nobody@example.com", PASSWORD).await;
        unknown.push(started.elapsed());
        let started = Instant::now();
        let b = app
            .login(&browser, "known@example.com", "wrong-password-123")
            .await;
        wrong.push(started.elapsed());
        assert_eq!(a.status, 401);
        assert_eq!(a.status, b.status);
        assert_eq!(a.body["message"], "Invalid email or password.");
        assert_eq!(a.body["message"], b.body["message"]);
        assert_eq!(a.body["fields"], b.body["fields"]);
    }
    // Both paths run one argon2 verification; without the dummy hash the unknown
    // email would answer many times faster.
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (u, w) = (median(&mut unknown), median(&mut wrong));
    let ratio = u.as_secs_f64() / w.as_secs_f64();
    assert!((0.33..3.0).contains(&ratio), "unknown {u:?} vs wrong {w:?}");
}

async fn spawn_app_with_generous_throttle() -> crate::support::TestApp {
    crate::support::spawn_app_with(&[
        ("TOLLGATE_LOGIN_ATTEMPTS_PER_IP", "1000"),
        ("TOLLGATE_LOGIN_ATTEMPTS_PER_ACCOUNT", "1000"),
    ])
    .await
}

#[tokio::test]
async fn login_redirects_to_a_local_next_page_only() {
    let app = spawn_app().await;
    app.register(&app.browser(), "next@example.com", "Next")
        .await;
    let browser = app.browser();
    let answer = app
        .call(
            &browser,
            "login",
            &[
                ("email", "next@example.com"),
                ("password", PASSWORD),
                ("next", "/admin"),
            ],
        )
        .await;
    assert_eq!(answer.location(), Some("/admin"));
    let answer = app
        .call(
            &browser,
            "login",
            &[
                ("email", "next@example.com"),
                ("password", PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(answer.location(), Some("/account"));
}

#[tokio::test]
async fn forms_work_as_plain_posts_with_inline_errors_and_kept_values() {
    let app = spawn_app().await;
    let browser = app.browser();
    // A browser without JavaScript posts the form and follows the redirect.
    let plain_post = |password: &'static str| {
        browser
            .client
            .post(app.url("/api/register"))
            .header("accept", "text/html")
            .header("referer", app.url("/register"))
            .form(&[
                ("email", "typed@example.com"),
                ("display_name", "Typed Name"),
                ("password", password),
            ])
            .send()
    };
    let response = plain_post("password").await.unwrap();
    assert!(response.status().is_redirection());
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains("/register?") && location.contains("__err="),
        "{location}"
    );

    // A huge value is kept only in part: the redirect's address stays small
    // enough for browsers and proxies (a 400,000-character name made 3 MB).
    let huge = "x".repeat(400_000);
    let response = browser
        .client
        .post(app.url("/api/register"))
        .header("accept", "text/html")
        .header("referer", app.url("/register"))
        .form(&[
            ("email", "huge@example.com"),
            ("display_name", huge.as_str()),
            ("password", "long enough passphrase 7"),
        ])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection());
    let long = response.headers()["location"].len();
    assert!(long < 4096, "a Location of {long} bytes");

    // As a browser follows the site's own redirect.
    let page = app.follow_own_redirect(&browser, &location).await;
    assert!(
        page.contains("commonly used passwords"),
        "the field error is on the page"
    );
    // The same error from a link elsewhere (or typed in) goes to the page
    // without it: any text could be put there so. A client that says nothing
    // of where it came from is judged by its Referer.
    let stranger = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for site in [Some("cross-site"), Some("none"), None] {
        let mut get = stranger.get(&location);
        if let Some(site) = site {
            get = get.header("sec-fetch-site", site);
        }
        let answer = get.send().await.unwrap();
        assert!(answer.status().is_redirection(), "{site:?}");
        assert_eq!(answer.headers()["location"], "/register", "{site:?}");
    }
    // Never to another site: `//evil.example/` would be one as a Location.
    for path in ["//evil.example/", "/\\evil.example/"] {
        let answer = stranger
            .get(app.url(&format!("{path}?__err=x&__path=/api/login")))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.headers()["location"], "/evil.example/", "{path}");
    }
    let referred = stranger
        .get(&location)
        .header("referer", app.url("/register"))
        .send()
        .await
        .unwrap();
    assert_eq!(referred.status(), 200);
    assert!(page.contains(r#"value="typed@example.com""#), "email kept");
    assert!(page.contains(r#"value="Typed Name""#), "name kept");
    assert!(!page.contains(r#"value="password""#), "password not kept");

    // A successful plain post lands on the welcome page, signed in.
    let response = plain_post(PASSWORD).await.unwrap();
    assert_eq!(response.headers()["location"], "/welcome");
    let page = browser
        .client
        .get(app.url("/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("typed@example.com"));
}

/// The `Set-Cookie` that hands a sign-up's key to `/welcome`.
fn new_key_cookie(answer: &crate::support::Answer) -> String {
    crate::support::set_cookie(&answer.headers, "tollgate_new_key").unwrap()
}

#[tokio::test]
async fn registration_creates_a_primary_key_shown_once_on_the_welcome_page() {
    let app = spawn_app().await;
    let b = app.browser();
    let answer = app.register(&b, "primary@example.com", "Primary").await;
    let cookie = new_key_cookie(&answer);
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Max-Age=300")
    );

    let welcome = |b: &crate::support::Browser| {
        b.client
            .get(app.url("/welcome"))
            .header("accept", "text/html")
            .send()
    };
    let page = welcome(&b).await.unwrap().text().await.unwrap();
    let secret = page
        .split("data-testid=\"primary-key\"")
        .nth(1)
        .and_then(|rest| rest.split_once('>'))
        .and_then(|(_, rest)| rest.split('<').next())
        .unwrap_or_else(|| panic!("{page}"))
        .to_owned();
    assert!(secret.starts_with("tg_live_"), "{secret}");
    // Shown once: the cookie was cleared.
    let again = welcome(&b).await.unwrap().text().await.unwrap();
    assert!(!again.contains(&secret));

    let (name, scopes): (String, String) = sqlx::query_as("SELECT name, scopes FROM api_keys")
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(
        (name.as_str(), scopes.as_str()),
        ("Primary key", r#"["chat"]"#)
    );
    // The key works; it has only the chat scope, so the key API refuses it with 403 rather than 401.
    let response = reqwest::Client::new()
        .get(app.url("/api/v1/keys"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

/// The sign-up's key cookie shows the key only to the account it was made
/// for: a shared browser whose last sign-up never reached `/welcome` does not
/// show that key to whoever comes next, and signing out ends the cookie.
#[tokio::test]
async fn the_welcome_key_is_shown_only_to_its_own_account() {
    let app = spawn_app().await;
    let first = app.browser();
    let answer = app.register(&first, "first@example.com", "First").await;
    let cookie = new_key_cookie(&answer);
    let secret = cookie
        .trim_start_matches("tollgate_new_key=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let welcome = |b: &crate::support::Browser| {
        let b = b.client.clone();
        let url = app.url("/welcome");
        async move {
            b.get(url)
                .header("accept", "text/html")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    // Signed out, or signed in as someone else: not shown (and no error).
    let anonymous = app.browser_with_cookie(&cookie);
    let visit = anonymous
        .client
        .get(app.url("/welcome"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(visit.status(), 200);
    assert!(!visit.text().await.unwrap().contains(&secret));
    let anonymous = app.browser_with_cookie(&cookie);
    assert!(!welcome(&anonymous).await.contains(&secret));
    let other = app.browser_with_cookie(&cookie);
    app.register(&other, "other@example.com", "Other").await;
    other.jar.add_cookie_str(&cookie, &other.base_url);
    assert!(!welcome(&other).await.contains(&secret));
    // Its own account sees it.
    assert!(welcome(&first).await.contains(&secret));

    // Signing out ends a key cookie not yet read.
    let third = app.browser();
    app.register(&third, "third@example.com", "Third").await;
    let out = app.call(&third, "logout", &[]).await;
    let cleared = crate::support::set_cookie(&out.headers, "tollgate_new_key")
        .is_some_and(|c| c.starts_with("tollgate_new_key=;") && c.contains("Max-Age=0"));
    assert!(cleared, "{:?}", out.headers);
}

#[tokio::test]
async fn the_account_page_needs_a_session() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/account"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(response.headers()["location"], "/login?next=%2Faccount");
}

#[tokio::test]
async fn display_name_changes_are_validated_and_saved() {
    let app = spawn_app().await;
    let b = app.browser();
    app.register(&b, "name@example.com", "Old Name").await;
    let answer = app
        .call(&b, "account/display-name", &[("display_name", " ")])
        .await;
    assert_eq!(answer.status, 422);
    let answer = app
        .call(
            &b,
            "account/display-name",
            &[("display_name", "  New Name ")],
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(app.me(&b).await["display_name"], "New Name");
}

#[tokio::test]
async fn a_password_change_needs_the_current_one_and_ends_other_sessions() {
    let app = spawn_app().await;
    let laptop = app.browser();
    app.register(&laptop, "pw@example.com", "Pw").await;
    let phone = app.browser();
    app.login(&phone, "pw@example.com", PASSWORD).await;
    assert_eq!(app.me(&phone).await["email"], "pw@example.com");

    let answer = app
        .call(
            &laptop,
            "account/password",
            &[
                ("current_password", "not-my-password"),
                ("new_password", "a-brand-new-passphrase"),
            ],
        )
        .await;
    assert_eq!(answer.status, 422);
    assert!(answer.body["fields"]["current_password"].is_string());

    let answer = app
        .call(
            &laptop,
            "account/password",
            &[("current_password", PASSWORD), ("new_password", PASSWORD)],
        )
        .await;
    assert_eq!(answer.status, 422);
    assert_eq!(
        answer.body["fields"]["new_password"],
        "This is your current password. Choose a new one."
    );
    assert_eq!(
        app.me(&phone).await["email"],
        "pw@example.com",
        "a refused change ends no session"
    );

    let answer = app
        .call(
            &laptop,
            "account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a-brand-new-passphrase"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        app.me(&laptop).await["email"],
        "pw@example.com",
        "this session continues"
    );
    assert_eq!(
        app.me(&phone).await,
        Value::Null,
        "the other session has ended"
    );

    assert_eq!(
        app.login(&app.browser(), "pw@example.com", PASSWORD)
            .await
            .status,
        401
    );
    assert!(
        app.login(&app.browser(), "pw@example.com", "a-brand-new-passphrase")
            .await
            .location()
            .is_some()
    );
}

#[tokio::test]
async fn deleting_an_account_erases_personal_data_and_ends_sessions() {
    let app = spawn_app().await;
    let b = app.browser();
    app.register(&b, "gone@example.com", "Soon Gone").await;
    // The address the deletion will rewrite the account's to cannot be
    // taken first, which would make the deletion fail on its uniqueness.
    let squatter = app
        .register(&app.browser(), "deleted-1@deleted.invalid", "Squatter")
        .await;
    assert_eq!(squatter.status, 422, "{:?}", squatter.body);
    let other = app.browser();
    app.login(&other, "gone@example.com", PASSWORD).await;
    let key = app
        .create_key(&b, serde_json::json!({ "name": "left behind" }))
        .await;

    let answer = app
        .call(&b, "account/delete", &[("password", "wrong-password-1")])
        .await;
    assert_eq!(answer.status, 422);
    assert_eq!(app.me(&b).await["email"], "gone@example.com");

    let answer = app
        .call(&b, "account/delete", &[("password", PASSWORD)])
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.location(), Some("/?account=deleted"));
    assert_eq!(app.me(&b).await, Value::Null);
    assert_eq!(app.me(&other).await, Value::Null);
    assert_eq!(
        app.login(&app.browser(), "gone@example.com", PASSWORD)
            .await
            .status,
        401
    );

    let db = app.db().await;
    let (email, name, hash, status): (String, String, String, String) =
        sqlx::query_as("SELECT email, display_name, password_hash, status FROM users")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(email.ends_with("@deleted.invalid"), "{email}");
    assert_eq!(
        (name.as_str(), hash.as_str(), status.as_str()),
        ("Deleted user", "", "deleted")
    );
    // Its keys are revoked with it (the primary key and the one made above),
    // and one presented is told so, not that the account is disabled.
    let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(live, 0);
    let refused = reqwest::Client::new()
        .get(app.url("/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let refusal: Value = refused.json().await.unwrap();
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(message.contains("was deleted"), "{message}");
    // The address is free again.
    assert_eq!(
        app.register(&app.browser(), "gone@example.com", "Back Again")
            .await
            .status,
        200
    );
}

/// The only active administrator cannot delete their account, which would
/// leave the dashboard without one; once there is another, they can.
#[tokio::test]
async fn the_last_administrator_cannot_delete_their_account() {
    let app = crate::support::spawn_app_with(&[
        ("TOLLGATE_ADMIN_EMAIL", "root@example.com"),
        ("TOLLGATE_ADMIN_PASSWORD", "admin-passphrase-for-tests"),
    ])
    .await;
    let admin = app.browser();
    app.login(&admin, "root@example.com", "admin-passphrase-for-tests")
        .await;
    let delete = || {
        app.call(
            &admin,
            "account/delete",
            &[("password", "admin-passphrase-for-tests")],
        )
    };
    let answer = delete().await;
    assert_eq!(answer.status, 409);
    assert!(
        answer.body.to_string().contains("only administrator"),
        "{}",
        answer.body
    );
    assert_eq!(app.me(&admin).await["is_admin"], true);
    assert!(
        !app.audit_actions()
            .await
            .contains(&"account.delete".to_owned())
    );

    let other = app.browser();
    app.register(&other, "second@example.com", "Second").await;
    sqlx::query("UPDATE users SET role = 'admin' WHERE email = 'second@example.com'")
        .execute(&app.db().await)
        .await
        .unwrap();
    assert_eq!(delete().await.status, 200);
    assert_eq!(app.me(&admin).await, Value::Null);
}

#[tokio::test]
async fn security_events_are_audited_with_ip_agent_and_request_id() {
    let app = spawn_app().await;
    let b = app.browser();
    let registered = app.register(&b, "audit@example.com", "Audit").await;
    app.login(&app.browser(), "audit@example.com", "wrong-password-1")
        .await;
    app.login(&app.browser(), "nobody@example.com", "wrong-password-1")
        .await;
    // A password typed into the email field.
    app.login(&app.browser(), "Hunter2-MySecret", "wrong-password-1")
        .await;
    app.call(
        &b,
        "account/password",
        &[
            ("current_password", PASSWORD),
            ("new_password", "another-long-passphrase"),
        ],
    )
    .await;
    app.call(&b, "logout", &[]).await;
    app.login(&b, "audit@example.com", "another-long-passphrase")
        .await;
    app.call(
        &b,
        "account/delete",
        &[("password", "another-long-passphrase")],
    )
    .await;

    assert_eq!(
        app.audit_actions().await,
        [
            "account.register",
            "key.create",
            "login.failure",
            "login.failure",
            "login.failure",
            "password.change",
            "logout",
            "login.success",
            "account.delete"
        ]
    );
    let db = app.db().await;
    let (ip, agent, request_id, target): (String, Option<String>, String, String) = sqlx::query_as(
        "SELECT client_ip, user_agent, request_id, target FROM audit_events WHERE action = 'account.register'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(ip, "127.0.0.1");
    assert!(agent.is_none(), "reqwest sends no user agent unless asked");
    assert_eq!(
        request_id,
        registered.headers["x-request-id"].to_str().unwrap()
    );
    assert!(target.starts_with("user:"));
    let details: String = sqlx::query_scalar(
        "SELECT details FROM audit_events WHERE action = 'login.failure' ORDER BY id LIMIT 1",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(details.contains("wrong_password"), "{details}");
    let failed: Vec<String> = sqlx::query_scalar(
        "SELECT target FROM audit_events WHERE action = 'login.failure' ORDER BY id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(
        failed[1..],
        ["email:nobody@example.com", "email:(not an address)"]
    );

    // Append-only: the database itself refuses edits and deletions.
    assert!(
        sqlx::query("UPDATE audit_events SET action = 'x'")
            .execute(&db)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM audit_events")
            .execute(&db)
            .await
            .is_err()
    );

    // A browser's user agent is recorded with its events.
    let answer = app
        .browser()
        .client
        .post(app.url("/api/login"))
        .header("accept", "application/json")
        .header("user-agent", "AuditTest/1.0 (X11; Linux)")
        .form(&[
            ("email", "nobody@example.com"),
            ("password", "wrong-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let agent: Option<String> = sqlx::query_scalar(
        "SELECT user_agent FROM audit_events WHERE action = 'login.failure' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(agent.as_deref(), Some("AuditTest/1.0 (X11; Linux)"));
}
