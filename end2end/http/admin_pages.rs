//! The admin pages and the user's usage page, over real HTTP: who may open
//! them, what they show, and the actions on the admin user page.

use serde_json::{Value, json};

use reqwest::Method;

use crate::{
    admin::{Setup, send, setup},
    support::{Browser, TestApp},
};

/// A page as a browser gets it: status, `Location` and body.
pub async fn page(app: &TestApp, b: &Browser, path: &str) -> (u16, Option<String>, String) {
    let response = b
        .client
        .get(app.url(path))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (status, location, response.text().await.unwrap_or_default())
}

/// One call of the `demo` model with `key`; its status.
pub(crate) async fn demo_call(app: &TestApp, key: &str) -> u16 {
    app.client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({ "model": "demo", "messages": [{ "role": "user", "content": "hello there" }], "max_tokens": 16 }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn every_admin_page_and_route_refuses_users_and_anonymous_visitors() {
    let Setup {
        app, user, user_id, ..
    } = setup().await;
    let anonymous = app.browser();
    let pages = [
        "/admin".to_owned(),
        "/admin?q=member&page=2".to_owned(),
        "/admin/audit".to_owned(),
        format!("/admin/users/{user_id}"),
        "/admin/plans".to_owned(),
        "/admin/plans/starter".to_owned(),
        "/admin/monitor".to_owned(),
        "/admin/security?window=week".to_owned(),
    ];
    for path in &pages {
        let (status, location, _) = page(&app, &anonymous, path).await;
        assert!((300..400).contains(&status), "{path}: {status}");
        assert!(
            location
                .as_deref()
                .is_some_and(|l| l.starts_with("/login?next=")),
            "{path}: {location:?}"
        );
        let (status, _, html) = page(&app, &user, path).await;
        assert_eq!(status, 403, "{path}");
        assert!(html.contains("Administrators only"), "{path}");
        assert!(
            !html.contains("member@example.com</a>"),
            "{path} leaks the list"
        );
    }

    let id = user_id.to_string();
    let functions: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("admin/users", vec![("search", "member")]),
        (
            "admin/users/set-disabled",
            vec![("user_id", &id), ("disabled", "true")],
        ),
        ("admin/user", vec![("user_id", &id)]),
        (
            "admin/user/credits",
            vec![("user_id", &id), ("amount", "100"), ("reason", "mine")],
        ),
        ("admin/user/plan", vec![("user_id", &id), ("plan", "pro")]),
        ("admin/user/revoke-keys", vec![("user_id", &id)]),
        ("admin/user/rotate-keys", vec![("user_id", &id)]),
        ("admin/audit", vec![]),
        (
            "admin/user/limits",
            vec![("user_id", &id), ("requests_per_day", "1000")],
        ),
        ("admin/plans", vec![]),
        ("admin/monitor", vec![("window", "hour")]),
        ("admin/security", vec![("window", "day")]),
        ("admin/plan", vec![("slug", "starter")]),
        (
            "admin/plans/save",
            vec![
                ("create", "false"),
                ("slug", "starter"),
                ("name", "Mine"),
                ("requests_per_minute", "100"),
                ("requests_per_hour", "100"),
                ("requests_per_day", "100"),
                ("monthly_credits", "1000"),
                ("max_active_keys", "10"),
            ],
        ),
        (
            "admin/plans/retire",
            vec![("slug", "pro"), ("retire", "true")],
        ),
    ];
    for (endpoint, form) in &functions {
        assert_eq!(
            app.call(&user, endpoint, form).await.status,
            403,
            "{endpoint}"
        );
        assert_eq!(
            app.call(&anonymous, endpoint, form).await.status,
            401,
            "{endpoint}"
        );
    }

    let api = [
        (reqwest::Method::GET, "/api/v1/admin/users".to_owned()),
        (reqwest::Method::GET, "/api/v1/admin/balances".to_owned()),
        (reqwest::Method::GET, "/api/v1/admin/audit".to_owned()),
        (reqwest::Method::GET, "/api/v1/admin/monitor".to_owned()),
        (
            reqwest::Method::POST,
            format!("/api/v1/admin/users/{user_id}/disable"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/admin/users/{user_id}/enable"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/admin/users/{user_id}/credits"),
        ),
        (
            reqwest::Method::PUT,
            format!("/api/v1/admin/users/{user_id}/plan"),
        ),
        (
            reqwest::Method::PUT,
            format!("/api/v1/admin/users/{user_id}/limits"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/admin/users/{user_id}/keys/revoke"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/admin/users/{user_id}/keys/rotate"),
        ),
    ];
    for (method, path) in &api {
        for (who, expected) in [(&user, 403), (&anonymous, 401)] {
            let response = who
                .client
                .request(method.clone(), app.url(path))
                .json(&json!({ "amount": "5", "reason": "x", "plan": "pro" }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), expected, "{method} {path}");
        }
    }

    // Nothing was changed by any refused call: the account is active, its
    // primary key still lists as active, and no credits moved.
    let me = app.me(&user).await;
    assert_eq!(me["email"], "member@example.com");
    let keys: Value = app.get_json(&user, "/api/v1/keys").await;
    assert_eq!(keys["data"][0]["status"], "active", "{keys}");
    let db = app.db().await;
    let (status, adjustments): (String, i64) = sqlx::query_as(
        "SELECT status, (SELECT COUNT(*) FROM credit_ledger WHERE user_id = users.id AND kind = 'adjust') FROM users WHERE id = ?",
    )
    .bind(user_id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((status.as_str(), adjustments), ("active", 0));
    let (overrides, renamed, retired): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM limit_overrides),
                (SELECT COUNT(*) FROM plans WHERE name = 'Mine'),
                (SELECT COUNT(*) FROM plans WHERE retired_at IS NOT NULL)",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((overrides, renamed, retired), (0, 0, 0));
}

/// The usage page's last minute is the limit's own view, not the calls that
/// ended in the last 60 seconds: at 120 a minute a request comes back every
/// half second, so two calls are back within a second or so.
#[tokio::test]
async fn the_usage_pages_minute_window_follows_the_limit() {
    let Setup {
        app,
        admin,
        user,
        user_id,
    } = setup().await;
    let (status, body) = send(
        &app,
        &admin,
        Method::PUT,
        &format!("/api/v1/admin/users/{user_id}/limits"),
        Some(json!({ "requests_per_minute": 120 })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let key = app.create_key(&user, json!({ "name": "minute" })).await;
    assert_eq!(demo_call(&app, &key).await, 200);
    assert_eq!(demo_call(&app, &key).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let (status, _, html) = page(&app, &user, "/usage").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("0 of 120 requests"),
        "the minute window: {html}"
    );
    assert!(html.contains("2 of 10 requests"), "the day window");

    // Lowered below what was used: the page says so, not "2 of 1".
    let (status, body) = send(
        &app,
        &admin,
        Method::PUT,
        &format!("/api/v1/admin/users/{user_id}/limits"),
        Some(json!({ "requests_per_day": 1 })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, _, html) = page(&app, &user, "/usage").await;
    assert!(
        html.contains("2 requests used, over the limit of 1 (lowered since): none left"),
        "the day window: {html}"
    );
    assert!(!html.contains("2 of 1 requests"));
}

#[tokio::test]
async fn the_usage_page_shows_windows_charts_and_recent_calls() {
    let Setup { app, user, .. } = setup().await;
    let (status, location, _) = page(&app, &app.browser(), "/usage").await;
    assert!((300..400).contains(&status));
    assert_eq!(location.as_deref(), Some("/login?next=%2Fusage"));

    let key = app.create_key(&user, json!({ "name": "usage" })).await;
    assert_eq!(demo_call(&app, &key).await, 200);
    assert_eq!(demo_call(&app, &key).await, 200);
    // The Starter plan allows 2 a minute: the third is refused and not recorded.
    assert_eq!(demo_call(&app, &key).await, 429);

    // The key counts its two admitted calls and its last use.
    let keys: Value = app.get_json(&user, "/api/v1/keys").await;
    let used = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "usage")
        .unwrap();
    assert_eq!(used["usage_count"], 2, "{used}");
    assert!(used["last_used_at"].is_string(), "{used}");

    let (status, _, html) = page(&app, &user, "/usage").await;
    assert_eq!(status, 200);
    assert!(html.contains("Starter"), "the plan");
    assert!(
        html.contains("2 of 2 requests"),
        "the minute window: {html}"
    );
    assert!(html.contains("2 of 10 requests"), "the day window");
    for chart in ["chart-requests", "chart-tokens", "chart-credits"] {
        assert!(
            html.contains(&format!(r#"data-testid="{chart}""#)),
            "{chart}"
        );
    }
    // Today's bar carries today's two calls.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(html.contains(&format!("{today}: 2</title>")), "today's bar");
    // The span's ends are labelled in the page's text, under the drawing.
    let span = html
        .split(r#"data-testid="chart-requests-span""#)
        .nth(1)
        .and_then(|rest| rest.split("</div>").next())
        .unwrap_or_default();
    assert!(span.contains(&format!("<span>{today}</span>")), "{span}");
    assert!(html.contains("2 requests"), "the 30-day total");
    // The recent list names the key and model.
    let recent = html.split(r#"data-testid="recent-calls""#).nth(1).unwrap();
    let recent = recent.split("</table>").next().unwrap();
    assert_eq!(recent.matches("<tr").count(), 3, "a header and two calls");
    assert!(recent.contains("demo") && recent.contains("usage (…"));
}

#[tokio::test]
async fn admins_search_users_and_act_on_a_user_page_with_audit_events() {
    let Setup {
        app,
        admin,
        user,
        user_id,
    } = setup().await;
    app.register(&app.browser(), "other@example.com", "Other")
        .await;

    // Search by email or name.
    let (status, _, html) = page(&app, &admin, "/admin?q=MEMB").await;
    assert_eq!(status, 200);
    assert!(html.contains("member@example.com"));
    assert!(!html.contains("other@example.com"));
    let (_, _, html) = page(&app, &admin, "/admin?q=%25").await;
    assert!(html.contains("No users match"), "% is matched literally");
    // Case folds beyond ASCII too (SQLite's LIKE folds ASCII only).
    app.register(&app.browser(), "emile@example.com", "Émile Ångström")
        .await;
    for query in ["%C3%A9mile", "%C3%85NGSTR", "%C3%A9MILE%20%C3%A5ng"] {
        let (_, _, html) = page(&app, &admin, &format!("/admin?q={query}")).await;
        assert!(html.contains("emile@example.com"), "{query}");
        assert!(!html.contains("member@example.com"), "{query}");
    }

    // An admin is offered no Disable on their own row, and asking anyway is
    // refused with the reason (a 400, as on the REST API, not a 500).
    let (_, _, html) = page(&app, &admin, "/admin?q=member").await;
    assert!(html.contains(">Disable<"), "another's row has it");
    let (_, _, html) = page(&app, &admin, "/admin?q=root").await;
    assert!(
        html.contains("root@example.com") && !html.contains(">Disable<"),
        "{html}"
    );
    let own_id = app.me(&admin).await["id"].as_i64().unwrap().to_string();
    let answer = app
        .call(
            &admin,
            "admin/users/set-disabled",
            &[("user_id", &own_id), ("disabled", "true")],
        )
        .await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains("your own account")
    );

    // The user page.
    let (status, _, html) = page(&app, &admin, &format!("/admin/users/{user_id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("member@example.com") && html.contains("10 credits"));
    assert!(html.contains("Starter"));
    // An address that names no user, or no user id, is a 404 page.
    for missing in ["/admin/users/999999", "/admin/users/abc"] {
        let (status, _, html) = page(&app, &admin, missing).await;
        assert_eq!(status, 404, "{missing}");
        assert!(
            html.contains("no such user") || html.contains("not a user id"),
            "{missing}: the page says why"
        );
    }

    // Credits with a reason; a deduction past the balance is refused whole.
    let id = user_id.to_string();
    let answer = app
        .call(
            &admin,
            "admin/user/credits",
            &[("user_id", &id), ("amount", "2.5"), ("reason", "goodwill")],
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body, "12.5");
    let answer = app
        .call(
            &admin,
            "admin/user/credits",
            &[("user_id", &id), ("amount", "-100"), ("reason", "oops")],
        )
        .await;
    assert_eq!(answer.status, 422);
    let answer = app
        .call(
            &admin,
            "admin/user/credits",
            &[("user_id", &id), ("amount", "5"), ("reason", " ")],
        )
        .await;
    assert_eq!(answer.status, 422);
    assert!(
        answer.body["fields"]["reason"].is_string(),
        "{:?}",
        answer.body
    );

    // Plan, then revoke every key.
    let answer = app
        .call(
            &admin,
            "admin/user/plan",
            &[("user_id", &id), ("plan", "pro")],
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let old = app
        .create_key(
            &user,
            json!({ "name": "usage", "scopes": ["chat", "keys:read"] }),
        )
        .await;
    let list_keys = |key: String| {
        app.client
            .get(app.url("/api/v1/keys"))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(list_keys(old.clone()).await.unwrap().status(), 200);

    // Without JavaScript the new secrets could not be shown: a plain form
    // post is sent back to the page with the reason, and nothing rotates.
    let plain = admin
        .client
        .post(app.url("/api/admin/user/rotate-keys"))
        .header("accept", "text/html")
        .header("referer", app.url(&format!("/admin/users/{id}")))
        .form(&[("user_id", &id)])
        .send()
        .await
        .unwrap();
    assert!(plain.status().is_redirection(), "{}", plain.status());
    let back = plain.headers()["location"].to_str().unwrap().to_owned();
    let shown = app.follow_own_redirect(&admin, &back).await;
    assert!(
        shown.contains("needs JavaScript: nothing was rotated"),
        "{back}"
    );
    assert_eq!(list_keys(old.clone()).await.unwrap().status(), 200);

    // Rotate every key: new secrets shown once, the old ones stop at once, and
    // each rotation is audited with the admin as the actor.
    let answer = app
        .call(&admin, "admin/user/rotate-keys", &[("user_id", &id)])
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let issued = answer.body.as_array().unwrap();
    assert_eq!(issued.len(), 2, "the primary key and the new one");
    let key = issued
        .iter()
        .find(|k| k["key"]["name"] == "usage")
        .and_then(|k| k["secret"].as_str())
        .unwrap()
        .to_owned();
    assert_ne!(key, old);
    assert_eq!(list_keys(old.clone()).await.unwrap().status(), 401);
    let admin_id = app.me(&admin).await["id"].as_i64().unwrap();
    let rotations: Vec<Option<i64>> =
        sqlx::query_scalar("SELECT actor_user_id FROM audit_events WHERE action = 'key.rotate'")
            .fetch_all(&app.db().await)
            .await
            .unwrap();
    assert_eq!(rotations, vec![Some(admin_id); 2]);
    let list_keys = || list_keys(key.clone());
    // Used once, so the server has the key in its read cache...
    assert_eq!(list_keys().await.unwrap().status(), 200);
    let answer = app
        .call(&admin, "admin/user/revoke-keys", &[("user_id", &id)])
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, 2, "the primary key and the new one");
    // ...and the revocation still applies to the very next request.
    assert_eq!(list_keys().await.unwrap().status(), 401);
    assert_eq!(demo_call(&app, &key).await, 401);

    // The same through the admin API: nothing left to revoke, then a new key.
    let revoke = format!("/api/v1/admin/users/{user_id}/keys/revoke");
    let second = app.create_key(&user, json!({ "name": "second" })).await;
    let response = admin.client.post(app.url(&revoke)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "user_id": user_id, "revoked": 1 }));
    assert_eq!(demo_call(&app, &second).await, 401);
    // Nothing active is left to rotate.
    let response = admin
        .client
        .post(app.url(&format!("/api/v1/admin/users/{user_id}/keys/rotate")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "user_id": user_id, "data": [] }));
    let response = admin
        .client
        .post(app.url("/api/v1/admin/users/999999/keys/revoke"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    let (_, _, html) = page(&app, &admin, &format!("/admin/users/{user_id}")).await;
    assert!(html.contains("12.5 credits") && html.contains("Pro"));
    // Its confirmations are the page's code, not inline handlers that the
    // content security policy would refuse.
    assert!(!html.contains("onsubmit=") && !html.contains("onclick="));
    // So a browser running no scripts is told why they stay disabled.
    assert!(
        html.contains("<noscript>") && html.contains("or making a reset link needs JavaScript")
    );
    // Events on the account, on its keys, and by its owner.
    for action in [
        "credits.adjust",
        "plan.assign",
        "keys.revoke_all",
        "key.rotate",
        "key.create",
    ] {
        assert!(html.contains(action), "{action} on the user page");
    }

    // The audit log page filters by action.
    let (status, _, html) = page(&app, &admin, "/admin/audit?action=credits.adjust").await;
    assert_eq!(status, 200);
    let table = html.split(r#"data-testid="audit-events""#).nth(1).unwrap();
    let table = table.split("</table>").next().unwrap();
    assert_eq!(table.matches("credits.adjust").count(), 1, "{table}");
    assert!(!table.contains("plan.assign"));
    // Who and to whom by email, each a link to the account's page.
    let admin_id = app.me(&admin).await["id"].as_i64().unwrap();
    assert!(
        table.contains(&format!(
            r#"<a href="/admin/users/{admin_id}" class="underline">root@example.com</a>"#
        )),
        "{table}"
    );
    assert!(
        table.contains(&format!(
            r#"<a href="/admin/users/{user_id}" class="underline">member@example.com</a>"#
        )),
        "{table}"
    );
    // The actor filter takes an email too, in any case.
    let (status, _, html) = page(&app, &admin, "/admin/audit?actor=ROOT@example.com").await;
    assert_eq!(status, 200);
    let table = html.split(r#"data-testid="audit-events""#).nth(1).unwrap();
    assert!(table.contains("credits.adjust") && !table.contains("key.create"));
    let (_, _, html) = page(&app, &admin, "/admin/audit?actor=member@example.com").await;
    let table = html.split(r#"data-testid="audit-events""#).nth(1).unwrap();
    assert!(table.contains("key.create") && !table.contains("credits.adjust"));
    // A filter that is not one answers the page with its form's status.
    let (status, _, html) = page(&app, &admin, "/admin/audit?actor=me").await;
    assert_eq!(status, 422);
    // The message sits under the field it is about, which points to it; the
    // filter boxes show the filter, in the page as served.
    assert!(
        html.contains(r#"name="actor" placeholder="e.g. 1" value="me" aria-invalid="true" aria-describedby="audit-actor-error""#),
        "{html}"
    );
    let actor_error = html.split(r#"id="audit-actor-error""#).nth(1).unwrap();
    assert!(
        actor_error
            .split("</span>")
            .next()
            .unwrap()
            .contains("Give a user id")
    );
    assert!(html.contains(
        r#"name="action" placeholder="e.g. credits.adjust" value="" aria-invalid="false""#
    ));
    // Every wrong field is said at once; a range that holds no time too.
    let (status, _, html) = page(
        &app,
        &admin,
        "/admin/audit?actor=me&since=yesterday&until=tomorrow",
    )
    .await;
    assert_eq!(status, 422);
    for field in ["actor", "since", "until"] {
        assert!(
            html.contains(&format!(r#"id="audit-{field}-error""#)),
            "{field}: {html}"
        );
    }
    let (status, _, html) = page(
        &app,
        &admin,
        "/admin/audit?since=2026-12-08&until=2026-12-01",
    )
    .await;
    assert_eq!(status, 422);
    let until_error = html.split(r#"id="audit-until-error""#).nth(1).unwrap();
    assert!(
        until_error
            .split("</span>")
            .next()
            .unwrap()
            .contains("Make it later than the start")
    );
    let (_, _, html) = page(&app, &admin, "/admin?q=MEMB").await;
    assert!(html.contains(r#"value="MEMB""#));

    // "Older" only when there is an older page: not with exactly one page.
    let filter = "/admin/audit?action=test.event";
    let db = app.db().await;
    let events = |n: usize| {
        let db = &db;
        async move {
            for _ in 0..n {
                sqlx::query("INSERT INTO audit_events (action) VALUES ('test.event')")
                    .execute(db)
                    .await
                    .unwrap();
            }
        }
    };
    events(25).await;
    let (_, _, html) = page(&app, &admin, filter).await;
    assert_eq!(html.matches(">test.event</td>").count(), 25, "{html}");
    assert!(!html.contains(r#"rel="next""#));
    events(1).await;
    let (_, _, html) = page(&app, &admin, filter).await;
    assert_eq!(html.matches(">test.event</td>").count(), 25);
    assert!(html.contains(r#"rel="next""#));
    let (_, _, html) = page(&app, &admin, &format!("{filter}&page=2")).await;
    assert_eq!(html.matches(">test.event</td>").count(), 1);

    // The ledger agrees with the balance.
    let (balance, ledger): (i64, i64) = sqlx::query_as(
        "SELECT balance_micros, (SELECT SUM(amount_micros) FROM credit_ledger WHERE user_id = users.id) FROM users WHERE id = ?",
    )
    .bind(user_id)
    .fetch_one(&app.db().await)
    .await
    .unwrap();
    assert_eq!((balance, ledger), (12_500_000, 12_500_000));
}

/// An admin revokes one leaked key and leaves the account's others working;
/// revoking them all audits each key, so a key's own history shows it.
#[tokio::test]
async fn admins_revoke_one_key_and_each_key_revoked_is_audited() {
    let Setup {
        app,
        admin,
        user,
        user_id,
    } = setup().await;
    // Pro allows the three keys (Starter two).
    let answer = app
        .call(
            &admin,
            "admin/user/plan",
            &[("user_id", &user_id.to_string()), ("plan", "pro")],
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let leaked = app.create_key(&user, json!({ "name": "leaked" })).await;
    let kept = app.create_key(&user, json!({ "name": "kept" })).await;
    let keys: Value = app.get_json(&user, "/api/v1/keys").await;
    let id_of = |name: &str| {
        keys["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .and_then(|k| k["id"].as_i64())
            .unwrap()
    };
    let (leaked_id, kept_id) = (id_of("leaked"), id_of("kept"));
    let revoke_one =
        |user_id: i64, key_id: i64| format!("/api/v1/admin/users/{user_id}/keys/{key_id}/revoke");

    // Not for users, even on their own keys.
    let (status, _) = send(
        &app,
        &user,
        Method::POST,
        &revoke_one(user_id, leaked_id),
        None,
    )
    .await;
    assert_eq!(status, 403);

    let (status, body) = send(
        &app,
        &admin,
        Method::POST,
        &revoke_one(user_id, leaked_id),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "user_id": user_id, "revoked": 1 }));
    assert_eq!(demo_call(&app, &leaked).await, 401);
    assert_eq!(demo_call(&app, &kept).await, 200);

    // Again, or under another account's id: no such key, nothing changes.
    let admin_id = app.me(&admin).await["id"].as_i64().unwrap();
    for path in [
        revoke_one(user_id, leaked_id),
        revoke_one(admin_id, kept_id),
    ] {
        let (status, body) = send(&app, &admin, Method::POST, &path, None).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error"]["code"], "key_not_found", "{body}");
    }
    assert_eq!(demo_call(&app, &kept).await, 200);

    // The user page's button does the same.
    let answer = app
        .call(
            &admin,
            "admin/user/revoke-key",
            &[
                ("user_id", &user_id.to_string()),
                ("key_id", &kept_id.to_string()),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(demo_call(&app, &kept).await, 401);
    // Only keys not yet revoked have a Revoke button.
    let primary_id = id_of("Primary key");
    let (_, _, html) = page(&app, &admin, &format!("/admin/users/{user_id}")).await;
    let button = |id: i64| format!(r#"name="key_id" value="{id}""#);
    assert!(html.contains(&button(primary_id)), "{html}");
    assert!(!html.contains(&button(kept_id)) && !html.contains(&button(leaked_id)));

    // Revoking the rest (the primary key) audits it as a key of its own too.
    let revoke_all = format!("/api/v1/admin/users/{user_id}/keys/revoke");
    let (status, body) = send(&app, &admin, Method::POST, &revoke_all, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["revoked"], 1);
    // Action, actor, target, details.
    type Event = (String, Option<i64>, Option<String>, String);
    let events: Vec<Event> = sqlx::query_as(
        "SELECT action, actor_user_id, target, details FROM audit_events
         WHERE action IN ('key.revoke', 'keys.revoke_all') ORDER BY id",
    )
    .fetch_all(&app.db().await)
    .await
    .unwrap();
    let targets: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|(action, _, target, _)| (action.as_str(), target.as_deref()))
        .collect();
    assert_eq!(
        targets,
        [
            ("key.revoke", Some(format!("key:{leaked_id}").as_str())),
            ("key.revoke", Some(format!("key:{kept_id}").as_str())),
            ("key.revoke", Some(format!("key:{primary_id}").as_str())),
            ("keys.revoke_all", Some(format!("user:{user_id}").as_str())),
        ]
    );
    assert!(events.iter().all(|(_, actor, ..)| *actor == Some(admin_id)));
    let summary: Value = serde_json::from_str(&events[3].3).unwrap();
    assert_eq!(summary["keys"], 1);
}
