//! Admin limit overrides and plan administration over real HTTP: the forms'
//! server functions and the admin API, what callers of the model API feel
//! from the next request on, and the audit events.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    admin::{Setup, send, setup},
    admin_pages::page,
    support::TestApp,
};

/// A demo call's status, `error.code` (when refused), request limit header
/// and `error.message`.
async fn call(app: &TestApp, key: &str) -> (u16, Option<String>, Option<String>, String) {
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({ "model": "demo", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 8 }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let limit = response
        .headers()
        .get("x-ratelimit-limit-requests")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    let code = body["error"]["code"].as_str().map(str::to_owned);
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, code, limit, message)
}

async fn audit_count(app: &TestApp, action: &str, target: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action = ? AND target = ?")
        .bind(action)
        .bind(target)
        .fetch_one(&app.db().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn limit_overrides_replace_the_plans_limits_from_the_next_call() {
    let Setup {
        app,
        admin,
        user,
        user_id,
    } = setup().await;
    let key = app.create_key(&user, json!({ "name": "limits" })).await;
    let limits = format!("/api/v1/admin/users/{user_id}/limits");

    // Starter allows 2 a minute; the admin raises it to 3 for this user.
    let (status, body) = send(
        &app,
        &admin,
        Method::PUT,
        &limits,
        Some(json!({ "requests_per_minute": 3 })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["overrides"]["requests_per_minute"], 3);
    assert_eq!(body["overrides"]["requests_per_day"], Value::Null);
    for _ in 0..3 {
        assert_eq!(call(&app, &key).await.0, 200);
    }
    let (status, code, limit, message) = call(&app, &key).await;
    assert_eq!(status, 429);
    assert_eq!(code.as_deref(), Some("requests_per_minute"));
    assert_eq!(limit.as_deref(), Some("3"));
    // Not the plan's limit: a larger plan would not change it.
    assert_eq!(message, "Your account's limits allow 3 requests a minute.");

    // The form on the user page: a day limit of 3, already used up. Blank
    // fields follow the plan, so the minute override is dropped.
    let id = user_id.to_string();
    let answer = app
        .call(
            &admin,
            "admin/user/limits",
            &[("user_id", &id), ("requests_per_day", "3")],
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let (status, code, ..) = call(&app, &key).await;
    assert_eq!((status, code.as_deref()), (429, Some("requests_per_day")));
    let (status, _, html) = page(&app, &admin, &format!("/admin/users/{user_id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("plan: 10"), "the plan's day limit is shown");
    assert!(html.contains(r#"value="3""#), "the override is filled in");

    // Bad values change nothing and name the field.
    let answer = app
        .call(
            &admin,
            "admin/user/limits",
            &[
                ("user_id", &id),
                ("max_parallel", "0"),
                ("requests_per_hour", "lots"),
            ],
        )
        .await;
    assert_eq!(answer.status, 422);
    assert!(answer.body["fields"]["max_parallel"].is_string());
    assert!(answer.body["fields"]["requests_per_hour"].is_string());
    assert_eq!(answer.body["values"]["requests_per_hour"], "lots");
    let (status, body) = send(
        &app,
        &admin,
        Method::PUT,
        &limits,
        Some(json!({ "requests_per_day": -1 })),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["param"], "requests_per_day");
    let (status, _) = send(
        &app,
        &admin,
        Method::PUT,
        &limits,
        Some(json!({ "requests_per_week": 5 })),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = send(
        &app,
        &admin,
        Method::PUT,
        "/api/v1/admin/users/999999/limits",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, code, ..) = call(&app, &key).await;
    assert_eq!(
        (status, code.as_deref()),
        (429, Some("requests_per_day")),
        "still the override of 3"
    );

    // An empty object removes every override: the plan's 10 a day again.
    let (status, body) = send(&app, &admin, Method::PUT, &limits, Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    let overridden: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM limit_overrides")
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(overridden, 0);
    let (status, code, ..) = call(&app, &key).await;
    assert_ne!(code.as_deref(), Some("requests_per_day"), "{status}");
    assert_eq!(
        audit_count(&app, "limits.set", &format!("user:{user_id}")).await,
        3,
        "one event per change that was made"
    );
}

#[tokio::test]
async fn admins_create_edit_retire_and_restore_plans() {
    let Setup {
        app,
        admin,
        user,
        user_id,
    } = setup().await;
    let plan_form = |slug: &'static str, rpm: &'static str| {
        vec![
            ("create", "true"),
            ("slug", slug),
            ("name", "Team"),
            ("description", "For a team."),
            ("requests_per_minute", rpm),
            ("requests_per_hour", "100"),
            ("requests_per_day", "1000"),
            ("tokens_per_minute", ""),
            ("max_parallel", "4"),
            ("monthly_credits", "12.5"),
            ("max_active_keys", "5"),
            ("allowed_models", "demo"),
            ("is_public", "on"),
            ("sort_order", "40"),
        ]
    };

    // Every field is checked, and a refused form keeps what was typed.
    let mut bad = plan_form("Team!", "0");
    bad.retain(|(k, _)| *k != "name");
    bad.push(("name", ""));
    bad.retain(|(k, _)| *k != "allowed_models");
    bad.push(("allowed_models", "demo, gpt-9"));
    // Unticked, as a browser sends it: no field at all.
    bad.retain(|(k, _)| *k != "is_public");
    let answer = app.call(&admin, "admin/plans/save", &bad).await;
    assert_eq!(answer.status, 422, "{:?}", answer.body);
    for field in ["slug", "name", "requests_per_minute", "allowed_models"] {
        assert!(
            answer.body["fields"][field].is_string(),
            "{field}: {:?}",
            answer.body
        );
    }
    assert_eq!(answer.body["values"]["allowed_models"], "demo, gpt-9");
    // Kept unticked, so the form shown again does not make the plan public.
    assert_eq!(answer.body["values"]["is_public"], "");

    let answer = app
        .call(&admin, "admin/plans/save", &plan_form("team", "3"))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body, "team");
    let answer = app
        .call(&admin, "admin/plans/save", &plan_form("team", "3"))
        .await;
    assert_eq!(answer.status, 422);
    assert!(answer.body["fields"]["slug"].is_string(), "a taken id");

    // It is public, so users see it and can pick it.
    let plans = || async {
        send(&app, &user, Method::GET, "/api/v1/plans", None)
            .await
            .1
    };
    let public = plans().await;
    let team = public["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "team")
        .cloned()
        .unwrap_or_else(|| panic!("team is listed: {public}"));
    assert_eq!(team["requests_per_minute"], 3, "{team}");
    let (status, _, html) = page(&app, &admin, "/admin/plans").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-testid="plan-team""#) && html.contains("3 / 100 / 1,000"));

    // The admin puts the user on it; an edit applies to their next call.
    let (status, body) = send(
        &app,
        &admin,
        Method::PUT,
        &format!("/api/v1/admin/users/{user_id}/plan"),
        Some(json!({ "plan": "team" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let key = app.create_key(&user, json!({ "name": "team" })).await;
    let mut edit = plan_form("team", "1");
    edit[0] = ("create", "false");
    let answer = app.call(&admin, "admin/plans/save", &edit).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(call(&app, &key).await.0, 200);
    let (status, code, limit, message) = call(&app, &key).await;
    assert_eq!(
        (status, code.as_deref()),
        (429, Some("requests_per_minute"))
    );
    assert_eq!(limit.as_deref(), Some("1"));
    assert_eq!(message, "Your plan allows 1 request a minute.");
    let mut unknown = edit.clone();
    unknown[1] = ("slug", "nosuch");
    assert_eq!(
        app.call(&admin, "admin/plans/save", &unknown).await.status,
        404
    );

    // Retired: gone from /plans and from assignment, but its users keep it.
    let retire = |slug: &'static str, retire: &'static str| {
        let (app, admin) = (&app, &admin);
        async move {
            app.call(
                admin,
                "admin/plans/retire",
                &[("slug", slug), ("retire", retire)],
            )
            .await
        }
    };
    assert_eq!(retire("team", "true").await.status, 200);
    // The audit log links a plan target to the plan's page.
    let (_, _, html) = page(&app, &admin, "/admin/audit?target=plan:team").await;
    assert!(
        html.contains(r#"href="/admin/plans/team""#) && html.contains("plan.update"),
        "{html}"
    );
    let other = app.browser();
    app.register(&other, "other@example.com", "Other").await;
    let (_, public) = send(&app, &other, Method::GET, "/api/v1/plans", None).await;
    assert!(!public.to_string().contains("\"team\""), "{public}");
    let other_id = app.me(&other).await["id"].as_i64().unwrap();
    let assign = |id: i64| {
        let (app, admin) = (&app, &admin);
        async move {
            send(
                app,
                admin,
                Method::PUT,
                &format!("/api/v1/admin/users/{id}/plan"),
                Some(json!({ "plan": "team" })),
            )
            .await
        }
    };
    assert_eq!(assign(other_id).await.0, 422);
    let switched = app.call(&other, "plans/switch", &[("plan", "team")]).await;
    assert_ne!(switched.status, 200, "{:?}", switched.body);
    let me: Value = app.get_json(&user, "/api/v1/me").await;
    assert_eq!(me["plan"]["id"], "team", "{me}");
    let listed = plans().await;
    assert_eq!(
        listed["data"][0]["id"], "team",
        "their own plan first: {listed}"
    );
    assert_eq!(listed["data"][0]["current"], true);
    // It says it is not offered, and the user's plans page warns them.
    assert_eq!(listed["data"][0]["offered"], false, "{listed}");
    assert_eq!(listed["data"][1]["offered"], true, "{listed}");
    let (status, _, html) = page(&app, &user, "/plans").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("This plan is no longer offered")
            && html.contains("if you switch, you cannot switch back"),
        "{html}"
    );
    let (status, _, html) = page(&app, &admin, "/admin/plans/team").await;
    assert_eq!(status, 200);
    assert!(html.contains("takes no new users") && html.contains("1 account on it"));

    // The default plan cannot be retired, and its page offers no button for
    // it; a retired plan can be restored.
    assert_eq!(retire("starter", "true").await.status, 409);
    let (_, _, html) = page(&app, &admin, "/admin/plans/starter").await;
    assert!(
        html.contains("so it cannot be retired"),
        "the page says why"
    );
    assert!(!html.contains("Retire plan"), "no Retire plan button");
    assert_eq!(retire("team", "false").await.status, 200);
    assert_eq!(assign(other_id).await.0, 200);

    for (action, count) in [
        ("plan.create", 1),
        ("plan.update", 1),
        ("plan.retire", 1),
        ("plan.restore", 1),
    ] {
        assert_eq!(
            audit_count(&app, action, "plan:team").await,
            count,
            "{action}"
        );
    }
}

/// A plan saved with no order goes after the others on `/plans` (it went
/// first: an empty order was 0, before the classic plans), and the cards
/// group large numbers by thousands.
#[tokio::test]
async fn a_plan_without_an_order_is_listed_last() {
    let Setup {
        app, admin, user, ..
    } = setup().await;
    let form = |create: &'static str, slug: &'static str| {
        vec![
            ("create", create),
            ("slug", slug),
            ("name", "Big"),
            ("description", ""),
            ("requests_per_minute", "100"),
            ("requests_per_hour", "2000"),
            ("requests_per_day", "25000"),
            ("monthly_credits", "1500000.25"),
            ("max_active_keys", "5"),
            ("is_public", "on"),
            ("sort_order", ""),
        ]
    };
    let listed = || async {
        let (_, plans) = send(&app, &user, Method::GET, "/api/v1/plans", None).await;
        plans["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["current"] == false)
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let before = listed().await;
    for slug in ["big", "bigger"] {
        let answer = app
            .call(&admin, "admin/plans/save", &form("true", slug))
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }
    let after = listed().await;
    assert_eq!(after[..before.len()], before[..], "{after:?}");
    assert_eq!(after[before.len()..], ["big", "bigger"], "{after:?}");

    // Saved again with no order, "big" moves after "bigger".
    let answer = app
        .call(&admin, "admin/plans/save", &form("false", "big"))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let after = listed().await;
    assert_eq!(after[before.len()..], ["bigger", "big"], "{after:?}");

    let (status, _, html) = page(&app, &user, "/plans").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(">25,000<") || html.contains(">25,000 <"),
        "{html}"
    );
    assert!(
        html.contains("1,500,000.25") && html.contains("2,000"),
        "{html}"
    );
    let (_, _, html) = page(&app, &admin, "/admin/plans").await;
    assert!(html.contains("100 / 2,000 / 25,000"), "{html}");
}

#[tokio::test]
async fn keys_with_the_admin_scope_call_the_admin_api_and_only_admins_grant_it() {
    let Setup {
        app,
        admin,
        user,
        user_id,
    } = setup().await;
    let (status, body) = send(
        &app,
        &user,
        Method::POST,
        "/api/v1/keys",
        Some(json!({ "name": "sneaky", "scopes": ["chat", "admin"] })),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["param"], "scopes");

    let admin_key = app
        .create_key(&admin, json!({ "name": "ops", "scopes": ["admin"] }))
        .await;
    let chat_key = app.create_key(&admin, json!({ "name": "chat only" })).await;
    let user_key = app
        .create_key(
            &user,
            json!({ "name": "mine", "scopes": ["chat", "keys:write"] }),
        )
        .await;
    let with_key = |key: &str, method: Method, path: &str, body: Option<Value>| {
        // A script: no cookies, no Origin header.
        let mut request = app.client.request(method, app.url(path)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    let (status, users) = with_key(&admin_key, Method::GET, "/api/v1/admin/users", None).await;
    assert_eq!(status, 200, "{users}");
    assert!(users.to_string().contains("member@example.com"));
    let limits = format!("/api/v1/admin/users/{user_id}/limits");
    let (status, body) = with_key(
        &admin_key,
        Method::PUT,
        &limits,
        Some(json!({ "requests_per_day": 7 })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = with_key(
        &admin_key,
        Method::POST,
        &format!("/api/v1/admin/users/{user_id}/credits"),
        Some(json!({ "amount": "1", "reason": "scripted" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance"], "11");

    for key in [&chat_key, &user_key] {
        let (status, body) = with_key(key, Method::GET, "/api/v1/admin/monitor", None).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "missing_scope");
        let (status, _) = with_key(key, Method::PUT, &limits, Some(json!({}))).await;
        assert_eq!(status, 403);
    }
    let (status, _) = with_key(
        "tg_live_not-a-key",
        Method::GET,
        "/api/v1/admin/users",
        None,
    )
    .await;
    assert_eq!(status, 401);

    // The admin scope does not open the model API or the key API by itself.
    let (status, _) = with_key(&admin_key, Method::GET, "/api/v1/keys", None).await;
    assert_eq!(status, 403);
    // Revoked, it stops at once.
    app.revoke_key_named(&admin, "ops").await;
    let (status, _) = with_key(&admin_key, Method::GET, "/api/v1/admin/users", None).await;
    assert_eq!(status, 401);
    let overrides: Option<i64> =
        sqlx::query_scalar("SELECT requests_per_day FROM limit_overrides WHERE user_id = ?")
            .bind(user_id)
            .fetch_one(&app.db().await)
            .await
            .unwrap();
    assert_eq!(overrides, Some(7), "the key-less calls changed nothing");

    // A key fenced to another network is refused here as on the model API.
    let fenced = app
        .create_key(
            &admin,
            json!({ "name": "office", "scopes": ["admin"], "ip_allowlist": ["10.0.0.0/8"] }),
        )
        .await;
    let (status, body) = with_key(&fenced, Method::GET, "/api/v1/admin/users", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "ip_not_allowed");

    // An admin key limited to this machine for an hour gets no secret of a
    // key without those limits: rotating the account's keys is refused whole.
    app.revoke_key_named(&admin, "office").await;
    let local = app
        .create_key(
            &admin,
            json!({ "name": "local", "scopes": ["admin"], "ip_allowlist": ["127.0.0.0/8"], "ttl_seconds": 3600 }),
        )
        .await;
    let rotate = format!("/api/v1/admin/users/{user_id}/keys/rotate");
    let (status, body) = with_key(&local, Method::POST, &rotate, None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "restriction_not_held");
    let rotated = app
        .db_number("SELECT COUNT(*) FROM audit_events WHERE action = 'key.rotate'")
        .await;
    assert_eq!(rotated, 0, "nothing was rotated");
}
