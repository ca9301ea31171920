//! The admin API for credits and plans: the admin gate on every route, the
//! ledger entry and audit event each action writes, and refusals that write
//! nothing.

use serde_json::{Value, json};

use crate::support::{Browser, TestApp, spawn_app_with, status_and_json};

const ADMIN: [(&str, &str); 2] = [
    ("TOLLGATE_ADMIN_EMAIL", "root@example.com"),
    ("TOLLGATE_ADMIN_PASSWORD", "admin-passphrase-for-tests"),
];

/// A server with the admin account, a signed-in admin and a signed-in user
/// (`member@example.com`, 10 credits from signup).
pub struct Setup {
    pub app: TestApp,
    pub admin: Browser,
    pub user: Browser,
    pub user_id: i64,
}

pub async fn setup() -> Setup {
    let app = spawn_app_with(&ADMIN).await;
    let user = app.browser();
    app.register(&user, "member@example.com", "Member").await;
    let user_id = app.me(&user).await["id"].as_i64().unwrap();
    let admin = app.browser();
    app.login(&admin, "root@example.com", "admin-passphrase-for-tests")
        .await;
    Setup {
        app,
        admin,
        user,
        user_id,
    }
}

pub async fn send(
    app: &TestApp,
    b: &Browser,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = b.client.request(method, app.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// (balance, ledger sum, number of `adjust` rows) for a user.
async fn money(app: &TestApp, user_id: i64) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT balance_micros,
                (SELECT SUM(amount_micros) FROM credit_ledger WHERE user_id = users.id),
                (SELECT COUNT(*) FROM credit_ledger WHERE user_id = users.id AND kind = 'adjust')
         FROM users WHERE id = ?",
    )
    .bind(user_id)
    .fetch_one(&app.db().await)
    .await
    .unwrap()
}

/// Ids and query parameters that do not parse answer the API's JSON error.
#[tokio::test]
async fn bad_ids_and_queries_answer_the_apis_json_error() {
    let Setup { app, admin, .. } = setup().await;
    let cases = [
        ("POST", "/api/v1/admin/users/x/disable", "invalid_path"),
        ("POST", "/api/v1/admin/users/1.5/credits", "invalid_path"),
        ("GET", "/api/v1/admin/users?limit=ten", "invalid_query"),
        ("GET", "/api/v1/admin/audit?limit=many", "invalid_query"),
    ];
    for (method, path, code) in cases {
        let method = method.parse().unwrap();
        let (status, body) = send(&app, &admin, method, path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
    }
    // An actor is an id or an email address, as on the audit log's page.
    let path = "/api/v1/admin/audit?actor=me";
    let (status, body) = send(&app, &admin, reqwest::Method::GET, path, None).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["param"], "actor", "{body}");
}

#[tokio::test]
async fn only_admins_reach_the_credit_and_plan_routes() {
    let Setup {
        app, user, user_id, ..
    } = setup().await;
    let anonymous = app.browser();
    let credits = format!("/api/v1/admin/users/{user_id}/credits");
    let plan = format!("/api/v1/admin/users/{user_id}/plan");
    let adjust = json!({ "amount": "5", "reason": "trying" });
    let assign = json!({ "plan": "pro" });
    for (who, expected) in [(&anonymous, 401), (&user, 403)] {
        let calls = [
            (
                reqwest::Method::POST,
                credits.as_str(),
                Some(adjust.clone()),
            ),
            (reqwest::Method::PUT, plan.as_str(), Some(assign.clone())),
            (reqwest::Method::GET, "/api/v1/admin/balances", None),
            (reqwest::Method::GET, "/api/v1/admin/audit", None),
        ];
        for (method, path, body) in calls {
            let (status, body) = send(&app, who, method.clone(), path, body).await;
            assert_eq!(status, expected, "{method} {path}: {body}");
            assert!(body["error"]["message"].is_string(), "{body}");
        }
    }
    let (balance, _, adjustments) = money(&app, user_id).await;
    assert_eq!(adjustments, 0);
    assert_eq!(balance, 10_000_000, "the signup grant only");
    assert!(
        !app.audit_actions()
            .await
            .iter()
            .any(|a| a == "credits.adjust" || a == "plan.assign")
    );
}

/// A correction whose write the database refuses is made once, and said to
/// be unwritten (503): it is in the balance and stays queued, written with
/// the next write that succeeds, but a crash before then would lose it, so
/// it is not answered as done. Sent again under its idempotency key, it is
/// not made twice, failing or not.
#[tokio::test]
async fn a_correction_the_database_refuses_at_first_is_made_once() {
    let Setup {
        app,
        admin,
        user_id,
        ..
    } = setup().await;
    let path = format!("/api/v1/admin/users/{user_id}/credits");
    let post = |body: Value| {
        let (app, admin, path) = (&app, &admin, &path);
        async move {
            let response = admin
                .client
                .post(app.url(path))
                .header("idempotency-key", "first-1")
                .json(&body)
                .send()
                .await
                .unwrap();
            status_and_json(response).await
        }
    };
    let db = app.db().await;
    sqlx::query(
        "CREATE TRIGGER refuse_the_first BEFORE INSERT ON credit_ledger
         WHEN NEW.note = 'admin: first' BEGIN SELECT RAISE(ABORT, 'disk full'); END",
    )
    .execute(&db)
    .await
    .unwrap();
    for _ in 0..2 {
        let (status, body) = post(json!({ "amount": "1", "reason": "first" })).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "records_unavailable");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("The correction is made (the balance is now 11)")
                && message.contains("same idempotency key"),
            "{message}"
        );
    }

    // The user page's form is told it may apply it again, with its own key.
    let user_id_text = user_id.to_string();
    let from_page = app
        .call(
            &admin,
            "admin/user/credits",
            &[
                ("user_id", user_id_text.as_str()),
                ("amount", "1"),
                ("reason", "first"),
                ("idempotency_key", "page-key-1"),
            ],
        )
        .await;
    assert_eq!(from_page.status, 503);
    let message = from_page.body["message"].as_str().unwrap();
    assert!(
        message.contains("the balance is now 12 credits")
            && message.contains("Applying it again from this form does not make it twice"),
        "{message}"
    );

    sqlx::query("DROP TRIGGER refuse_the_first")
        .execute(&db)
        .await
        .unwrap();
    let (status, body) = post(json!({ "amount": "1", "reason": "first" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance"], "12");
    let (status, body) = send(
        &app,
        &admin,
        reqwest::Method::POST,
        &path,
        Some(json!({ "amount": "0.5", "reason": "second" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance"], "12.5");
    assert_eq!(money(&app, user_id).await, (12_500_000, 12_500_000, 3));
}

/// Corrections stop at the most a balance may hold, so repeated ones cannot
/// overflow it: the addition that would pass it is refused on its field.
#[tokio::test]
async fn a_balance_is_not_corrected_past_the_most_it_may_hold() {
    let Setup {
        app,
        admin,
        user_id,
        ..
    } = setup().await;
    // Near the ceiling, as many earlier corrections would have left it.
    let most = tollgate::credits::MOST_BALANCE_MICROS;
    let db = app.db().await;
    for statement in [
        "UPDATE users SET balance_micros = balance_micros + ?2 WHERE id = ?1",
        "INSERT INTO credit_ledger (user_id, kind, amount_micros, note, created_at)
         VALUES (?1, 'adjust', ?2, 'admin: setup', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
    ] {
        sqlx::query(statement)
            .bind(user_id)
            .bind(most - 12_000_000)
            .execute(&db)
            .await
            .unwrap();
    }
    let path = format!("/api/v1/admin/users/{user_id}/credits");
    let post = |amount: &str| {
        let body = json!({ "amount": amount, "reason": "top-up" });
        send(&app, &admin, reqwest::Method::POST, &path, Some(body))
    };
    let (status, body) = post("2").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post("0.000001").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["fields"]["amount"]
            .as_str()
            .unwrap()
            .contains("at most 1000000000000 credits"),
        "{body}"
    );
    assert_eq!(money(&app, user_id).await, (most, most, 2));
}

/// A deleted account takes no correction, even while the balance of its
/// earlier calls is still held in memory.
#[tokio::test]
async fn a_deleted_account_takes_no_credit_correction() {
    let Setup {
        app,
        admin,
        user,
        user_id,
    } = setup().await;
    let key = app.create_key(&user, json!({ "name": "caller" })).await;
    assert_eq!(crate::admin_pages::demo_call(&app, &key).await, 200);
    let deleted = app
        .call(
            &user,
            "account/delete",
            &[("password", crate::support::PASSWORD)],
        )
        .await;
    assert_eq!(deleted.status, 200);

    let path = format!("/api/v1/admin/users/{user_id}/credits");
    let body = json!({ "amount": "1", "reason": "goodwill" });
    let (status, body) = send(&app, &admin, reqwest::Method::POST, &path, Some(body)).await;
    assert_eq!(status, 404, "{body}");
    let adjusts: i64 = app
        .db_number("SELECT COUNT(*) FROM credit_ledger WHERE kind = 'adjust'")
        .await;
    assert_eq!(adjusts, 0);
}

/// A correction sent again under its idempotency key, after its answer was
/// lost or all at once, is made once; the key with another amount is refused.
#[tokio::test]
async fn a_correction_sent_again_under_its_key_is_made_once() {
    let Setup {
        app,
        admin,
        user_id,
        ..
    } = setup().await;
    let path = format!("/api/v1/admin/users/{user_id}/credits");
    let post = |key: &'static str, amount: &'static str| {
        admin
            .client
            .post(app.url(&path))
            .header("idempotency-key", key)
            .json(&json!({ "amount": amount, "reason": "goodwill" }))
            .send()
    };
    // Sent one after another (found in the ledger)...
    for _ in 0..2 {
        let (status, body) = status_and_json(post("retry-1", "5").await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["balance"], "15");
    }
    // ...and all at once (found in memory).
    let at_once = futures::future::join_all((0..6).map(|_| post("burst-2", "1"))).await;
    for response in at_once {
        let (status, body) = status_and_json(response.unwrap()).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(money(&app, user_id).await, (16_000_000, 16_000_000, 2));
    // The same key for another amount changes nothing.
    let (status, body) = status_and_json(post("retry-1", "50").await.unwrap()).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = status_and_json(post(" ", "1").await.unwrap()).await;
    assert_eq!(status, 200, "a blank key is no key: {body}");
    assert_eq!(money(&app, user_id).await, (17_000_000, 17_000_000, 3));
    let keys: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT request_id FROM credit_ledger WHERE kind = 'adjust' ORDER BY id",
    )
    .fetch_all(&app.db().await)
    .await
    .unwrap();
    assert_eq!(
        keys,
        [Some("retry-1".to_owned()), Some("burst-2".to_owned()), None]
    );

    // The user page's form carries a key of its own: a double submit, with or
    // without JavaScript, makes one correction.
    let form = [
        ("user_id", user_id.to_string()),
        ("amount", "2".to_owned()),
        ("reason", "form".to_owned()),
        ("idempotency_key", "form-render-1".to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for _ in 0..2 {
        let done = app.call(&admin, "admin/user/credits", &form).await;
        assert_eq!(done.status, 200, "{:?}", done.body);
    }
    assert_eq!(money(&app, user_id).await, (19_000_000, 19_000_000, 4));
}

#[tokio::test]
async fn admins_add_and_deduct_credits_with_a_reason_in_the_ledger() {
    let Setup {
        app,
        admin,
        user_id,
        ..
    } = setup().await;
    let path = format!("/api/v1/admin/users/{user_id}/credits");
    let post = |body: Value| send(&app, &admin, reqwest::Method::POST, &path, Some(body));

    let (status, body) =
        post(json!({ "amount": "2.5", "reason": "  refund for the outage  " })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance"], "12.5");
    assert_eq!(body["balance_micros"], 12_500_000);

    let (status, body) = post(json!({ "amount": "-0.000001", "reason": "rounding" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance_micros"], 12_499_999);
    assert_eq!(money(&app, user_id).await, (12_499_999, 12_499_999, 2));

    let note: String = sqlx::query_scalar(
        "SELECT note FROM credit_ledger WHERE user_id = ? AND kind = 'adjust' ORDER BY id LIMIT 1",
    )
    .bind(user_id)
    .fetch_one(&app.db().await)
    .await
    .unwrap();
    assert_eq!(note, "admin: refund for the outage");
    let (actor, target, details): (i64, String, String) = sqlx::query_as(
        "SELECT actor_user_id, target, details FROM audit_events WHERE action = 'credits.adjust' ORDER BY id LIMIT 1",
    )
    .fetch_one(&app.db().await)
    .await
    .unwrap();
    assert_eq!(app.me(&admin).await["id"], actor);
    assert_eq!(target, format!("user:{user_id}"));
    let details: Value = serde_json::from_str(&details).unwrap();
    assert_eq!(
        details,
        json!({ "amount": "2.5", "reason": "refund for the outage" })
    );

    // More than the balance: refused, and nothing is written.
    let (status, body) = post(json!({ "amount": "-12.5", "reason": "too much" })).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_credits");
    assert_eq!(body["error"]["param"], "amount");
    assert_eq!(
        body["error"]["message"],
        "A deduction of 12.5 credits is more than the balance of 12.499999 credits; nothing was deducted."
    );
    assert_eq!(money(&app, user_id).await, (12_499_999, 12_499_999, 2));

    // Bad input names each field; a missing user is 404; neither writes.
    let (status, body) = post(json!({ "amount": "1.0000001", "reason": " " })).await;
    assert_eq!(status, 422, "{body}");
    let fields = body["error"]["fields"].as_object().unwrap();
    assert!(
        fields.contains_key("amount") && fields.contains_key("reason"),
        "{body}"
    );
    for amount in ["0", "ten", "1e3", "-", "99999999999"] {
        let (status, body) = post(json!({ "amount": amount, "reason": "x" })).await;
        assert_eq!(status, 422, "{amount}: {body}");
    }
    // A reason that shows nothing, or breaks the ledger's lines.
    for reason in ["\u{200b}", "two\nlines", "nul\u{0}"] {
        let (status, body) = post(json!({ "amount": "1", "reason": reason })).await;
        assert_eq!(status, 422, "{reason:?}: {body}");
        assert_eq!(body["error"]["param"], "reason", "{body}");
    }
    let (status, body) = post(json!({ "amount": 5, "reason": "a number, not a string" })).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = send(
        &app,
        &admin,
        reqwest::Method::POST,
        "/api/v1/admin/users/999999/credits",
        Some(json!({ "amount": "5", "reason": "nobody" })),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(money(&app, user_id).await, (12_499_999, 12_499_999, 2));
    let adjustments = app
        .audit_actions()
        .await
        .into_iter()
        .filter(|a| a == "credits.adjust")
        .count();
    assert_eq!(adjustments, 2);

    // The balances list shows it exactly.
    let (status, body) = send(
        &app,
        &admin,
        reqwest::Method::GET,
        "/api/v1/admin/balances",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let member = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["user_id"] == user_id)
        .unwrap()
        .clone();
    assert_eq!(member["balance"], "12.499999");
    assert_eq!(member["plan"], "starter");
}

#[tokio::test]
async fn admins_assign_any_unretired_plan_and_it_applies_at_once() {
    let Setup {
        app,
        admin,
        user,
        user_id,
    } = setup().await;
    let db = app.db().await;
    sqlx::query(
        "INSERT INTO plans (slug, name, requests_per_minute, requests_per_hour, requests_per_day, max_active_keys, is_public)
         VALUES ('partner', 'Partner', 60, 600, 6000, 10, 0)",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO plans (slug, name, requests_per_minute, requests_per_hour, requests_per_day, max_active_keys, is_public, retired_at)
         VALUES ('legacy', 'Legacy', 1, 1, 1, 1, 1, '2026-01-01T00:00:00.000Z')",
    )
    .execute(&db)
    .await
    .unwrap();
    let path = format!("/api/v1/admin/users/{user_id}/plan");
    let put = |plan: &str| {
        send(
            &app,
            &admin,
            reqwest::Method::PUT,
            &path,
            Some(json!({ "plan": plan })),
        )
    };

    // A private plan, which users cannot pick themselves.
    let (status, body) = put("partner").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "user_id": user_id, "plan": "partner", "name": "Partner" })
    );
    let (status, me) = send(&app, &user, reqwest::Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, 200);
    assert_eq!(me["plan"]["id"], "partner");

    // Retired and unknown plans are refused and change nothing.
    for plan in ["legacy", "no-such-plan"] {
        let (status, body) = put(plan).await;
        assert_eq!(status, 422, "{plan}: {body}");
        assert_eq!(body["error"]["param"], "plan");
    }
    let (_, me) = send(&app, &user, reqwest::Method::GET, "/api/v1/me", None).await;
    assert_eq!(me["plan"]["id"], "partner");
    let (status, _) = send(
        &app,
        &admin,
        reqwest::Method::PUT,
        "/api/v1/admin/users/999999/plan",
        Some(json!({ "plan": "pro" })),
    )
    .await;
    assert_eq!(status, 404);
    let assignments: Vec<String> = sqlx::query_scalar(
        "SELECT details FROM audit_events WHERE action = 'plan.assign' ORDER BY id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(assignments, [json!({ "plan": "partner" }).to_string()]);

    // Retired since: the user page's plan list shows it as the current
    // choice, so "Assign plan" does not move the user to the first plan unseen.
    sqlx::query("UPDATE plans SET retired_at = '2026-12-01T00:00:00.000Z' WHERE slug = 'partner'")
        .execute(&db)
        .await
        .unwrap();
    let (status, _, html) =
        crate::admin_pages::page(&app, &admin, &format!("/admin/users/{user_id}")).await;
    assert_eq!(status, 200);
    let select = html
        .split_once(r#"<select id="field-plan""#)
        .and_then(|(_, rest)| rest.split_once("</select>"))
        .map(|(select, _)| select)
        .expect("the plan list");
    let selected: Vec<&str> = select
        .split("<option")
        .filter(|option| option.contains("selected"))
        .collect();
    assert_eq!(selected.len(), 1, "{select}");
    assert!(
        selected[0].contains(r#"value="partner""#)
            && selected[0].contains("Partner (retired; current)"),
        "{select}"
    );
}

#[tokio::test]
async fn the_audit_log_filters_by_actor_action_target_and_time_newest_first() {
    let Setup {
        app,
        admin,
        user_id,
        ..
    } = setup().await;
    let (status, _) = send(
        &app,
        &admin,
        reqwest::Method::POST,
        &format!("/api/v1/admin/users/{user_id}/credits"),
        Some(json!({ "amount": "1", "reason": "welcome" })),
    )
    .await;
    assert_eq!(status, 200);
    let admin_id = app.me(&admin).await["id"].as_i64().unwrap();
    let (app, admin) = (&app, &admin);
    let get = |query: String| async move {
        let path = format!("/api/v1/admin/audit{query}");
        send(app, admin, reqwest::Method::GET, &path, None).await
    };
    let ids = |body: &Value| -> Vec<i64> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    };

    let (status, all) = get(String::new()).await;
    assert_eq!(status, 200, "{all}");
    let all_ids = ids(&all);
    assert!(
        all_ids.len() >= 3,
        "register, login and the adjustment: {all}"
    );
    assert!(
        all_ids.windows(2).all(|w| w[0] > w[1]),
        "newest first: {all_ids:?}"
    );
    assert_eq!(all["data"][0]["action"], "credits.adjust");
    assert_eq!(all["data"][0]["details"]["reason"], "welcome");
    // Who and to whom, by email too.
    assert_eq!(all["data"][0]["actor_email"], "root@example.com");
    assert_eq!(all["data"][0]["target_label"], "member@example.com");

    let (_, mine) = get(format!("?actor={user_id}")).await;
    let events = mine["data"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e["actor_user_id"] == user_id),
        "{mine}"
    );
    // By email, in any case, the same events.
    let (status, by_email) = get("?actor=Member%40Example.com".to_owned()).await;
    assert_eq!(status, 200, "{by_email}");
    assert_eq!(ids(&by_email), ids(&mine));

    let (_, adjusted) = get(format!(
        "?action=credits.adjust&target=user:{user_id}&actor={admin_id}"
    ))
    .await;
    assert_eq!(ids(&adjusted), [all_ids[0]]);
    let (_, none) = get("?action=credits.adjust&target=user:999999".to_owned()).await;
    assert!(ids(&none).is_empty());

    let (_, today) = get(format!("?since={}", chrono::Utc::now().format("%Y-%m-%d"))).await;
    assert_eq!(ids(&today), all_ids);
    let (_, future) = get("?since=2999-01-01".to_owned()).await;
    assert!(ids(&future).is_empty());
    let (_, past) = get("?until=2000-01-01T00:00:00Z".to_owned()).await;
    assert!(ids(&past).is_empty());

    let (_, page) = get("?limit=1&offset=1".to_owned()).await;
    assert_eq!(ids(&page), [all_ids[1]]);
    assert_eq!(
        (page["limit"].as_i64(), page["offset"].as_i64()),
        (Some(1), Some(1))
    );

    let (status, body) = get("?since=soon&until=2026-11-22".to_owned()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["param"], "since");
    let (status, body) = get("?actor=someone".to_owned()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["param"], "actor");
}

/// A user who forgot their password gets a one-time link from an admin: it
/// sets a new password once and ends the user's sessions; a newer link, its
/// use or its hour's end closes it, and only an admin can make one.
#[tokio::test]
async fn a_password_reset_link_sets_a_new_password_once() {
    use crate::support::PASSWORD;
    let Setup {
        app,
        admin,
        user,
        user_id,
    } = setup().await;
    let make = format!("/api/v1/admin/users/{user_id}/password-reset");
    let (status, _) = send(&app, &user, reqwest::Method::POST, &make, None).await;
    assert_eq!(status, 403, "users make none");
    let token_of = |link: &Value| -> String {
        let url = link["url"].as_str().unwrap();
        assert!(url.starts_with(&app.url("/reset-password#token=")), "{url}");
        url.split("#token=").nth(1).unwrap().to_owned()
    };
    // Not with a key, even an admin's (a leaked one must not take over
    // accounts), and not for the admin's own account.
    let ops = app
        .create_key(&admin, json!({ "name": "ops", "scopes": ["admin"] }))
        .await;
    let response = reqwest::Client::new()
        .post(app.url(&make))
        .bearer_auth(&ops)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "session_required", "{body}");
    let admin_id = app.me(&admin).await["id"].as_i64().unwrap();
    let own = format!("/api/v1/admin/users/{admin_id}/password-reset");
    let (status, body) = send(&app, &admin, reqwest::Method::POST, &own, None).await;
    assert_eq!(status, 409, "{body}");

    let (status, first) = send(&app, &admin, reqwest::Method::POST, &make, None).await;
    assert_eq!(status, 200, "{first}");
    let expires = chrono::DateTime::parse_from_rfc3339(first["expires_at"].as_str().unwrap())
        .unwrap()
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!((3540..=3600).contains(&expires), "an hour: {expires} s");
    let (_, second) = send(&app, &admin, reqwest::Method::POST, &make, None).await;
    let (first, second) = (token_of(&first), token_of(&second));
    assert_ne!(first, second);
    // Only a keyed hash of the token is kept: 32 bytes, not its plain SHA-256.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM password_resets")
        .fetch_all(&app.db().await)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "the newer link replaced the first");
    assert_eq!(stored[0].len(), 32);
    use sha2::Digest;
    assert_ne!(stored[0], sha2::Sha256::digest(second.as_bytes()).to_vec());
    assert!(!String::from_utf8_lossy(&stored[0]).contains(&second));

    let page = app.get("/reset-password").await;
    assert_eq!(page.status(), 200);
    let stranger = app.browser();
    let reset = |token: String, password: &'static str| {
        let (app, stranger) = (&app, &stranger);
        async move {
            app.call(
                stranger,
                "reset-password",
                &[("token", token.as_str()), ("password", password)],
            )
            .await
        }
    };
    let new_password = "copper-meadow-violin-77";
    // The newer link replaced the first; a short password is refused and
    // leaves the link open.
    let answer = reset(first, new_password).await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    assert!(answer.body.to_string().contains("no longer works"));
    for weak in ["short", "password123"] {
        let answer = reset(second.clone(), weak).await;
        assert_eq!(answer.status, 422, "{weak}: {:?}", answer.body);
    }
    // Used at once from many tabs: exactly one sets the password.
    let tries: Vec<_> = (0..8)
        .map(|_| reset(second.clone(), new_password))
        .collect();
    let statuses: Vec<u16> = futures::future::join_all(tries)
        .await
        .iter()
        .map(|answer| answer.status.as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );

    // The user's session has ended, the admin's has not; the old password no
    // longer logs in, the new one does; the link works once.
    assert_eq!(app.me(&user).await, Value::Null);
    assert_eq!(app.me(&admin).await["id"], admin_id);
    let email = "member@example.com";
    assert_eq!(app.login(&app.browser(), email, PASSWORD).await.status, 401);
    assert_eq!(
        app.login(&app.browser(), email, new_password).await.status,
        200
    );
    assert_eq!(reset(second, "another-long-passphrase-3").await.status, 400);

    // An hour later it is closed too.
    let (_, third) = send(&app, &admin, reqwest::Method::POST, &make, None).await;
    sqlx::query(
        "UPDATE password_resets SET expires_at = '2026-01-01T00:00:00.000Z' WHERE used_at IS NULL",
    )
    .execute(&app.db().await)
    .await
    .unwrap();
    assert_eq!(
        reset(token_of(&third), "another-long-passphrase-3")
            .await
            .status,
        400
    );

    let actions = app.audit_actions().await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "password.reset_link")
            .count(),
        3
    );
    let reset_by: i64 = app
        .db_number("SELECT actor_user_id FROM audit_events WHERE action = 'password.reset'")
        .await;
    assert_eq!(reset_by, user_id);
    let made_by = app
        .db_number("SELECT details ->> 'made_by' FROM audit_events WHERE action = 'password.reset'")
        .await;
    assert_eq!(
        made_by, admin_id,
        "the reset names the admin who made the link"
    );

    // A password change, or a disable (even enabled again), closes a link.
    let signed_in = app.browser();
    app.login(&signed_in, email, new_password).await;
    let (_, link) = send(&app, &admin, reqwest::Method::POST, &make, None).await;
    let answer = app
        .call(
            &signed_in,
            "account/password",
            &[
                ("current_password", new_password),
                ("new_password", "changed-by-the-owner-11"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        reset(token_of(&link), "another-long-passphrase-3")
            .await
            .status,
        400
    );
    let (_, link) = send(&app, &admin, reqwest::Method::POST, &make, None).await;
    for state in ["disable", "enable"] {
        let path = format!("/api/v1/admin/users/{user_id}/{state}");
        assert_eq!(
            send(&app, &admin, reqwest::Method::POST, &path, None)
                .await
                .0,
            200
        );
    }
    assert_eq!(
        reset(token_of(&link), "another-long-passphrase-3")
            .await
            .status,
        400
    );

    // A disabled account gets none (it could not log in with it).
    let (status, _) = send(
        &app,
        &admin,
        reqwest::Method::POST,
        &format!("/api/v1/admin/users/{user_id}/disable"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = send(&app, &admin, reqwest::Method::POST, &make, None).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = send(
        &app,
        &admin,
        reqwest::Method::POST,
        "/api/v1/admin/users/999999/password-reset",
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// Wrong reset-link tokens use the address's login budget and show on the
/// security page; past the budget, even a good link waits (429).
#[tokio::test]
async fn wrong_reset_tokens_are_throttled_and_shown() {
    let mut env = ADMIN.to_vec();
    env.push(("TOLLGATE_LOGIN_ATTEMPTS_PER_IP", "3"));
    let app = spawn_app_with(&env).await;
    // Signed in first: the failures below use this address's login budget.
    let admin = app.browser();
    app.login(&admin, "root@example.com", "admin-passphrase-for-tests")
        .await;
    // Before any failure the table says so, with no header over no rows.
    let (_, _, html) = crate::admin_pages::page(&app, &admin, "/admin/security").await;
    let section = html
        .split("Failed sign-ins and reset links by address")
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .unwrap_or_default();
    assert!(
        section.contains("None.") && !section.contains("<table"),
        "{section}"
    );
    let stranger = app.browser();
    let wrong_token = || {
        app.call(
            &stranger,
            "reset-password",
            &[
                ("token", "not-a-token"),
                ("password", "copper-meadow-violin-77"),
            ],
        )
    };
    for _ in 0..3 {
        let answer = wrong_token().await;
        assert_eq!(answer.status, 400, "{:?}", answer.body);
    }
    let answer = wrong_token().await;
    assert_eq!(answer.status, 429, "{:?}", answer.body);
    assert!(answer.headers.contains_key("retry-after"));
    let failures = app
        .db_number("SELECT COUNT(*) FROM audit_events WHERE action = 'password.reset_failure'")
        .await;
    assert_eq!(failures, 3, "the refused attempt is not audited");

    let (status, _, html) = crate::admin_pages::page(&app, &admin, "/admin/security").await;
    assert_eq!(status, 200);
    let by_address = html
        .split(r#"data-testid="failed-by-ip""#)
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .unwrap_or_default();
    assert!(
        by_address.contains("127.0.0.1") && by_address.contains(">3<"),
        "the address's three failures: {by_address}"
    );
}
