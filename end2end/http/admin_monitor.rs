//! The monitor and security figures over real HTTP: calls made through the
//! model API (admitted, limited, refused by a key's rules, with a revoked key)
//! and failed sign-ins show up in `GET /api/v1/admin/monitor`, on
//! /admin/monitor and on /admin/security.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    admin::{Setup, send, setup},
    admin_pages::page,
    support::TestApp,
};

async fn chat(app: &TestApp, key: &str, origin: Option<&str>) -> u16 {
    let mut request = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({ "model": "demo", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 8 }));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.unwrap().status().as_u16()
}

fn count(list: &Value, label: &str) -> i64 {
    list.as_array()
        .unwrap()
        .iter()
        .find(|p| p["label"] == label)
        .map_or(0, |p| p["count"].as_i64().unwrap())
}

#[tokio::test]
async fn calls_refusals_and_failed_logins_reach_the_monitor_and_security_pages() {
    let Setup {
        app,
        admin,
        user,
        user_id,
    } = setup().await;
    // Room for four more keys, and a minute limit of 2.
    let path = |what: &str| format!("/api/v1/admin/users/{user_id}/{what}");
    let (status, _) = send(
        &app,
        &admin,
        Method::PUT,
        &path("plan"),
        Some(json!({ "plan": "pro" })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        &app,
        &admin,
        Method::PUT,
        &path("limits"),
        Some(json!({ "requests_per_minute": 2 })),
    )
    .await;
    assert_eq!(status, 200);

    let key = app.create_key(&user, json!({ "name": "main" })).await;
    let office = app
        .create_key(
            &user,
            json!({ "name": "office", "ip_allowlist": ["10.1.2.0/24"] }),
        )
        .await;
    let site = app
        .create_key(
            &user,
            json!({ "name": "site", "referrer_domains": ["example.com"] }),
        )
        .await;
    let old = app.create_key(&user, json!({ "name": "old" })).await;
    app.revoke_key_named(&user, "old").await;

    assert_eq!(chat(&app, &key, None).await, 200);
    assert_eq!(chat(&app, &key, None).await, 200);
    assert_eq!(chat(&app, &key, None).await, 429);
    assert_eq!(chat(&app, &office, None).await, 403);
    assert_eq!(chat(&app, &site, Some("https://evil.test")).await, 403);
    assert_eq!(chat(&app, &old, None).await, 401);
    for (email, password) in [
        ("member@example.com", "wrong password one"),
        ("member@example.com", "wrong password two"),
        ("nobody@example.com", "wrong password"),
    ] {
        let answer = app.login(&app.browser(), email, password).await;
        assert_ne!(answer.status, 200);
    }

    // The monitor API.
    let (status, m) = send(&app, &admin, Method::GET, "/api/v1/admin/monitor", None).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["window"], "hour");
    assert_eq!(m["requests"], 6, "{m}");
    assert_eq!(m["errors"], 4);
    assert_eq!(m["error_rate_percent"], "66.7");
    assert_eq!(m["series"].as_array().unwrap().len(), 60);
    let series_total: i64 = m["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_i64().unwrap())
        .sum();
    assert_eq!(series_total, 6, "every call is in a bucket");
    for (status, n) in [("200", 2), ("429", 1), ("403", 2), ("401", 1)] {
        assert_eq!(count(&m["by_status"], status), n, "{status}: {m}");
    }
    assert_eq!(count(&m["rejections"], "requests_per_minute"), 1);
    assert_eq!(m["latency"][0]["model"], "demo");
    assert_eq!(m["latency"][0]["calls"], 2);
    assert_eq!(m["top_users_by_requests"][0]["label"], "member@example.com");
    assert_eq!(m["top_users_by_requests"][0]["requests"], 2);
    assert!(
        m["top_keys_by_credits"][0]["label"]
            .as_str()
            .unwrap()
            .starts_with("main (tg_"),
        "{m}"
    );
    let (status, _) = send(
        &app,
        &admin,
        Method::GET,
        "/api/v1/admin/monitor?window=month",
        None,
    )
    .await;
    assert_eq!(status, 422);
    let (status, day) = send(
        &app,
        &admin,
        Method::GET,
        "/api/v1/admin/monitor?window=day",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            day["requests"].as_i64(),
            day["series"].as_array().unwrap().len()
        ),
        (Some(6), 24)
    );

    // The monitor page.
    let (status, _, html) = page(&app, &admin, "/admin/monitor").await;
    assert_eq!(status, 200);
    let shown = html
        .split(r#"data-testid="monitor-requests""#)
        .nth(1)
        .and_then(|rest| rest.split_once('>'))
        .map(|(_, rest)| rest.split('<').next().unwrap_or_default());
    assert_eq!(shown, Some("6"));
    assert!(html.contains("66.7% (4 errors)"));
    // The limit refusals' table, not the page's data for hydration (which
    // has a field of that name too): its one row and count.
    let refusals: String = html
        .split(r#"data-testid="rejections""#)
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .expect("the limit refusals' table")
        .replace("<!>", "");
    assert!(
        refusals.contains(r#">requests_per_minute</td><td class="text-right">1</td>"#),
        "{refusals}"
    );

    // The security view, through the page's server function and the page.
    let answer = app
        .call(&admin, "admin/security", &[("window", "day")])
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let s = answer.body;
    assert_eq!(
        count(&s["failed_logins_by_account"], &format!("user:{user_id}")),
        2,
        "{s}"
    );
    assert_eq!(
        count(&s["failed_logins_by_account"], "email:nobody@example.com"),
        1
    );
    assert_eq!(count(&s["failed_logins_by_ip"], "127.0.0.1"), 3);
    assert_eq!(count(&s["rate_limit_hits_by_ip"], "127.0.0.1"), 1);
    let rules = s["key_rule_refusals"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{s}");
    let referrer = rules
        .iter()
        .find(|r| r["code"] == "referrer_not_allowed")
        .unwrap();
    assert_eq!(referrer["referrer"], "evil.test");
    let site_shown = format!("{}…{}", &site[..12], &site[site.len() - 4..]);
    assert_eq!(
        referrer["api_key"],
        site_shown.as_str(),
        "the key as displayed"
    );
    assert!(rules.iter().any(|r| r["code"] == "ip_not_allowed"));
    let revoked = s["revoked_key_use"].as_array().unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["count"], 1);
    let stored: Vec<Option<String>> =
        sqlx::query_scalar("SELECT NULLIF(api_key, '') FROM gateway_refusals")
            .fetch_all(&app.db().await)
            .await
            .unwrap();
    assert_eq!(stored.iter().flatten().count(), 4, "{stored:?}");
    for shown in stored.iter().flatten() {
        for secret in [&key, &office, &site, &old] {
            assert_ne!(shown, secret, "no secret is stored");
        }
    }
    let (status, _, html) = page(&app, &admin, "/admin/security").await;
    assert_eq!(status, 200);
    assert!(html.contains("evil.test") && html.contains("nobody@example.com"));
    let answer = app
        .call(&admin, "admin/security", &[("window", "year")])
        .await;
    assert_eq!(answer.status, 422);
}
