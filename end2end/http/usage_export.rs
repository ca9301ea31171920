//! The usage export (`GET /api/v1/usage/export`) over real HTTP: every call of
//! the days asked, exactly as charged, across the pages it is read in.

use serde_json::json;

use crate::{
    gateway::{assert_refused, setup, user_with_plan_signed_in},
    support::TestApp,
};

/// The export's header and rows, parsed.
fn parse(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|row| row.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

async fn export(app: &TestApp, client: &reqwest::Client, query: &str) -> reqwest::Response {
    client
        .get(app.url(&format!("/api/v1/usage/export{query}")))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_export_lists_every_call_of_the_days_asked_exactly_as_charged() {
    let s = setup(&[]).await;
    let (key, b) = user_with_plan_signed_in(&s.app, "export@example.com", 100, 1000, None).await;
    let mut request_ids = Vec::new();
    for (model, stream) in [("mock", false), ("mock", true), ("demo", false)] {
        let response = s
            .app
            .client
            .post(s.app.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({ "model": model, "stream": stream, "messages": [{ "role": "user", "content": "hello there" }], "max_tokens": 50 }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        request_ids.push(
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        response.bytes().await.unwrap();
    }

    let response = export(&s.app, &b.client, "").await;
    assert_eq!(response.status(), 200);
    let today = chrono::Utc::now().date_naive();
    let first = today - chrono::Duration::days(29);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert_eq!(
        response.headers()["content-disposition"],
        format!("attachment; filename=\"tollgate-usage-{first}-to-{today}.csv\"").as_str()
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let (header, rows) = parse(&response.text().await.unwrap());
    assert_eq!(
        header,
        [
            "time_utc",
            "request_id",
            "key",
            "key_last_four",
            "model",
            "stream",
            "status",
            "error_code",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "cost_credits",
            "cost_micros",
            "latency_ms"
        ]
    );
    // The calls in the order made, each with its request id and its key.
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r[column("request_id")].as_str())
        .collect();
    assert_eq!(ids, request_ids);
    let models: Vec<&str> = rows.iter().map(|r| r[column("model")].as_str()).collect();
    assert_eq!(models, ["mock", "mock", "demo"]);
    let streams: Vec<&str> = rows.iter().map(|r| r[column("stream")].as_str()).collect();
    assert_eq!(streams, ["false", "true", "false"]);
    let last_four = &key[key.len() - 4..];
    for row in &rows {
        assert_eq!(row[column("key")], "gateway");
        assert_eq!(row[column("key_last_four")], last_four);
        assert_eq!(row[column("status")], "200");
        assert!(row[column("time_utc")].starts_with(&today.to_string()));
    }
    // Each charge as recorded, in micro-credits and as the same decimal.
    let recorded: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT request_id, prompt_tokens, completion_tokens, cost_micros FROM usage_records ORDER BY id",
    )
    .fetch_all(&s.app.db().await)
    .await
    .unwrap();
    assert_eq!(recorded.len(), 3);
    for (row, (id, prompt, completion, cost)) in rows.iter().zip(&recorded) {
        assert_eq!(&row[column("request_id")], id);
        assert_eq!(row[column("prompt_tokens")], prompt.to_string());
        assert_eq!(row[column("completion_tokens")], completion.to_string());
        assert_eq!(
            row[column("total_tokens")],
            (prompt + completion).to_string()
        );
        assert_eq!(row[column("cost_micros")], cost.to_string());
        let credits: f64 = row[column("cost_credits")].parse().unwrap();
        assert_eq!((credits * 1e6).round() as i64, *cost);
    }
    assert!(recorded[0].3 > 0, "the mock's calls cost something");

    // Today alone, asked by day; a day before the calls has none.
    let (_, rows) = parse(
        &export(&s.app, &b.client, &format!("?from={today}&to={today}"))
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(rows.len(), 3);
    let yesterday = today - chrono::Duration::days(1);
    let response = export(&s.app, &b.client, &format!("?to={yesterday}")).await;
    assert_eq!(response.status(), 200);
    let (header, rows) = parse(&response.text().await.unwrap());
    assert_eq!((header.len(), rows.len()), (14, 0));
}

#[tokio::test]
async fn a_long_export_is_read_in_pages_without_a_call_lost_or_repeated() {
    let s = setup(&[]).await;
    let (_, b) = user_with_plan_signed_in(&s.app, "long@example.com", 100, 1000, None).await;
    let (_, other) = user_with_plan_signed_in(&s.app, "other@example.com", 100, 1000, None).await;
    let db = s.app.db().await;
    let user = |email: &str| {
        let db = db.clone();
        let email = email.to_owned();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE email = ?")
                .bind(email)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let (long, another) = (
        user("long@example.com").await,
        user("other@example.com").await,
    );
    // 2,500 calls on one day, many sharing a millisecond, so pages of 1,000
    // break inside runs of equal times; others' calls and the days around it
    // are not in the export.
    let mut tx = db.begin().await.unwrap();
    for n in 0..2_500 {
        let at = format!("2026-03-15T{:02}:00:00.000Z", n / 300);
        sqlx::query(
            "INSERT INTO usage_records (request_id, user_id, model, stream, status, prompt_tokens,
                    completion_tokens, cost_micros, latency_ms, created_at)
             VALUES (?, ?, 'demo', 0, 200, 1, 2, ?, 5, ?)",
        )
        .bind(format!("r{n}"))
        .bind(long)
        .bind(n)
        .bind(at)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    for (user_id, at) in [
        (another, "2026-03-15T01:00:00.000Z"),
        (long, "2026-03-14T23:59:59.999Z"),
        (long, "2026-03-16T00:00:00.000Z"),
    ] {
        sqlx::query(
            "INSERT INTO usage_records (request_id, user_id, model, stream, status, prompt_tokens,
                    completion_tokens, cost_micros, latency_ms, created_at)
             VALUES ('outside', ?, 'demo', 0, 200, 1, 2, 0, 5, ?)",
        )
        .bind(user_id)
        .bind(at)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let response = export(&s.app, &b.client, "?from=2026-03-15&to=2026-03-15").await;
    assert_eq!(response.status(), 200);
    let (_, rows) = parse(&response.text().await.unwrap());
    let ids: Vec<String> = rows.iter().map(|r| r[1].clone()).collect();
    let expected: Vec<String> = (0..2_500).map(|n| format!("r{n}")).collect();
    assert_eq!(ids, expected);
    // The other account sees only its own call.
    let (_, theirs) = parse(
        &export(&s.app, &other.client, "?from=2026-03-01&to=2026-03-31")
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(theirs.len(), 1);
}

#[tokio::test]
async fn a_bad_day_a_missing_session_or_a_key_without_the_scope_is_refused() {
    let s = setup(&[]).await;
    let (chat_key, b) =
        user_with_plan_signed_in(&s.app, "refused@example.com", 100, 1000, None).await;
    for (query, param) in [
        ("?from=2026-02-30", "from"),
        ("?to=tomorrow", "to"),
        ("?from=2026-12-09&to=2026-12-08", "from"),
    ] {
        let response = export(&s.app, &b.client, query).await;
        assert_eq!(response.status(), 400, "{query}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_date", "{query}");
        assert_eq!(body["error"]["param"], param, "{query}");
    }
    assert_refused(
        export(&s.app, &s.app.client, "").await,
        401,
        "not_signed_in",
    )
    .await;
    // A key reads it with `keys:read`, not with `chat` alone.
    let by_key = |key: String| {
        let app = &s.app;
        async move {
            app.client
                .get(app.url("/api/v1/usage/export"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
        }
    };
    assert_refused(by_key(chat_key).await, 403, "missing_scope").await;
    let reader = s
        .app
        .create_key(&b, json!({ "name": "reader", "scopes": ["keys:read"] }))
        .await;
    let response = by_key(reader).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().starts_with("time_utc,"));
}

#[tokio::test]
async fn an_admin_exports_an_accounts_calls_as_the_account_does() {
    let s = setup(&[
        ("TOLLGATE_ADMIN_EMAIL", "root@example.com"),
        ("TOLLGATE_ADMIN_PASSWORD", "admin-passphrase-for-tests"),
    ])
    .await;
    let (key, member) =
        user_with_plan_signed_in(&s.app, "member@example.com", 100, 1000, None).await;
    for model in ["mock", "demo"] {
        let response = s
            .app
            .client
            .post(s.app.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let member_id = s.app.me(&member).await["id"].as_i64().unwrap();
    let admin = s.app.browser();
    s.app
        .login(&admin, "root@example.com", "admin-passphrase-for-tests")
        .await;
    let path = format!("/api/v1/admin/users/{member_id}/usage/export");

    let own = export(&s.app, &member.client, "")
        .await
        .text()
        .await
        .unwrap();
    let response = admin.client.get(s.app.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with(&format!(
                "attachment; filename=\"tollgate-usage-user-{member_id}-"
            ))
    );
    let by_admin = response.text().await.unwrap();
    assert_eq!(parse(&by_admin).1.len(), 2);
    assert_eq!(by_admin, own);

    // Only admins; only accounts that exist; days as the account's own export.
    assert_refused(
        member.client.get(s.app.url(&path)).send().await.unwrap(),
        403,
        "admin_only",
    )
    .await;
    assert_refused(
        admin
            .client
            .get(s.app.url("/api/v1/admin/users/999999/usage/export"))
            .send()
            .await
            .unwrap(),
        404,
        "user_not_found",
    )
    .await;
    assert_refused(
        admin
            .client
            .get(s.app.url(&format!("{path}?from=someday")))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_date",
    )
    .await;
}
