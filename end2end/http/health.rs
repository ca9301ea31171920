use serde_json::Value;

use crate::support::spawn_app;

#[tokio::test]
async fn healthz_reports_the_process_up() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn readyz_reports_the_database_ready_after_migrations() {
    let app = spawn_app().await;
    assert!(
        app.db_path.exists(),
        "the SQLite file is created at start-up"
    );
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "ok");
}

#[tokio::test]
async fn readyz_answers_503_when_the_database_cannot_serve() {
    let app = spawn_app().await;
    // Break the schema behind the server's back.
    sqlx::query("DROP TABLE instance")
        .execute(&app.db().await)
        .await
        .unwrap();
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    // The process itself is still up.
    assert_eq!(app.get("/healthz").await.status(), 200);
}
