//! The key and plan management API (`/api/v1/…`), for scripts. Signed-in
//! sessions (same-origin checked) may call it; every rule lives in the services.

use axum::{
    Json,
    extract::{Path, State, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    accounts::session::SignedIn,
    api_error::ApiError,
    keys::{
        service::{self, KeyError},
        types::CreateKey,
    },
    request_meta::RequestMeta,
    startup::AppState,
    store::{AuditEvent, PlanChange, PlanRecord},
};

impl IntoResponse for KeyError {
    fn into_response(self) -> Response {
        let message = self.message();
        match self {
            KeyError::Invalid(fields) => ApiError::invalid_fields(fields),
            KeyError::DailyLimit { .. } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "key_creation_daily_limit",
                message,
            ),
            KeyError::ActiveLimit { .. } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "active_key_limit",
                message,
            ),
            KeyError::NotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "key_not_found",
                message,
            ),
            KeyError::Internal(detail) => {
                tracing::error!(%detail, "key operation failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal_error",
                    message,
                )
            }
        }
        .into_response()
    }
}

fn plan_json(plan: &PlanRecord, current: Option<i64>) -> serde_json::Value {
    json!({
        "id": plan.slug,
        "name": plan.name,
        "description": plan.description,
        "requests_per_minute": plan.requests_per_minute,
        "requests_per_hour": plan.requests_per_hour,
        "requests_per_day": plan.requests_per_day,
        "tokens_per_minute": plan.tokens_per_minute,
        "max_parallel": plan.max_parallel,
        "monthly_credits_micros": plan.monthly_credits,
        "max_active_keys": plan.max_active_keys,
        "allowed_models": plan.allowed_models(),
        "current": current == Some(plan.id),
    })
}

pub async fn list_plans(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
) -> Result<Response, KeyError> {
    let current = state.store.plan_of_user(user.id).await?.id;
    let plans = state.store.public_plans().await?;
    Ok(Json(json!({
        "object": "list",
        "data": plans.iter().map(|p| plan_json(p, Some(current))).collect::<Vec<_>>(),
    }))
    .into_response())
}

pub async fn me(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
) -> Result<Response, KeyError> {
    let plan = state.store.plan_of_user(user.id).await?;
    Ok(Json(json!({
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "role": if user.is_admin { "admin" } else { "user" },
        "plan": plan_json(&plan, Some(plan.id)),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanChoice {
    plan: String,
}

pub async fn switch_plan(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    meta: RequestMeta,
    body: Result<Json<PlanChoice>, JsonRejection>,
) -> Response {
    let Json(choice) = match body {
        Ok(body) => body,
        Err(rejection) => return ApiError::bad_json(rejection).into_response(),
    };
    let audit = AuditEvent::new("plan.change", &meta)
        .actor(user.id)
        .target(format!("user:{}", user.id))
        .details(json!({ "plan": choice.plan }));
    match state
        .store
        .switch_public_plan(user.id, &choice.plan, audit)
        .await
    {
        Ok(PlanChange::Changed) => me(State(state), SignedIn(user)).await.into_response(),
        Ok(PlanChange::NoSuchPlan) => ApiError::invalid_fields(
            [(
                "plan".to_owned(),
                format!("There is no public plan {:?}.", choice.plan),
            )]
            .into(),
        )
        .into_response(),
        Ok(PlanChange::TooManyActiveKeys { active, allowed }) => ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "too_many_active_keys",
            format!(
                "You have {active} active keys and that plan allows {allowed}. Revoke keys first."
            ),
        )
        .into_response(),
        Err(error) => KeyError::from(error).into_response(),
    }
}

pub async fn list_keys(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
) -> Result<Response, KeyError> {
    let keys = service::list(&state.store, user.id).await?;
    Ok(Json(json!({ "object": "list", "data": keys })).into_response())
}

pub async fn create_key(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    meta: RequestMeta,
    body: Result<Json<CreateKey>, JsonRejection>,
) -> Response {
    let Json(input) = match body {
        Ok(body) => body,
        Err(rejection) => return ApiError::bad_json(rejection).into_response(),
    };
    match service::create(
        &state.store,
        &state.key_hasher,
        &meta,
        user.id,
        &input,
        None,
    )
    .await
    {
        Ok(issued) => (StatusCode::CREATED, Json(issued)).into_response(),
        Err(error) => error.into_response(),
    }
}

pub async fn get_key(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Path(key_id): Path<i64>,
) -> Result<Response, KeyError> {
    Ok(Json(service::get(&state.store, user.id, key_id).await?).into_response())
}

pub async fn revoke_key(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    meta: RequestMeta,
    Path(key_id): Path<i64>,
) -> Result<Response, KeyError> {
    // 404 for keys that are not the caller's, whether or not they exist.
    service::get(&state.store, user.id, key_id).await?;
    service::revoke(&state.store, &meta, user.id, &[key_id]).await?;
    Ok(Json(service::get(&state.store, user.id, key_id).await?).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    #[serde(default)]
    grace_seconds: i64,
}

pub async fn rotate_key(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    meta: RequestMeta,
    Path(key_id): Path<i64>,
    body: Option<Json<Rotation>>,
) -> Result<Response, KeyError> {
    let grace = body.map(|Json(r)| r.grace_seconds).unwrap_or_default();
    let issued = service::rotate(
        &state.store,
        &state.key_hasher,
        &meta,
        user.id,
        key_id,
        grace,
    )
    .await?;
    Ok(Json(issued).into_response())
}
