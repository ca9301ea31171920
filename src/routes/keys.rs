//! The key and plan management API (`/api/v1/…`), for scripts: a signed-in
//! session (same-origin checked) or a key with `keys:read` / `keys:write`. Every
//! rule lives in the services; these handlers only translate.

use axum::{
    Json,
    extract::{Path, State, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    api_caller::{Caller, Needs},
    api_error::ApiError,
    keys::{
        service::{self, KeyError},
        types::{CreateKey, UpdateKey},
    },
    request_meta::RequestMeta,
    startup::AppState,
    store::{AuditEvent, PlanChange, PlanRecord, StoreError, UserRecord},
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

impl From<KeyError> for Response {
    fn from(error: KeyError) -> Self {
        error.into_response()
    }
}

fn internal(error: StoreError) -> Response {
    KeyError::from(error).into_response()
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value).map_err(ApiError::bad_json)
}

pub fn plan_json(plan: &PlanRecord, current: Option<i64>) -> serde_json::Value {
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

/// `GET /api/v1/plans`: the public plans, the caller's marked `current`.
pub async fn list_plans(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Response> {
    caller.require(Needs::Read)?;
    let current = state
        .store
        .plan_of_user(caller.user().id)
        .await
        .map_err(internal)?
        .id;
    let plans = state.store.public_plans().await.map_err(internal)?;
    Ok(Json(json!({
        "object": "list",
        "data": plans.iter().map(|p| plan_json(p, Some(current))).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /api/v1/me`: the caller's account and plan.
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Response, Response> {
    caller.require(Needs::Read)?;
    me_json(&state, caller.user()).await
}

async fn me_json(state: &AppState, user: &UserRecord) -> Result<Response, Response> {
    let plan = state.store.plan_of_user(user.id).await.map_err(internal)?;
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
    pub plan: String,
}

/// `PUT /api/v1/me/plan`: switch to another public plan (applies to the next request).
pub async fn switch_plan(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    body: Result<Json<PlanChoice>, JsonRejection>,
) -> Result<Response, Response> {
    caller.require(Needs::Write)?;
    let choice = json_body(body)?;
    let user = caller.user();
    let audit = AuditEvent::new("plan.change", &meta)
        .actor(user.id)
        .target(format!("user:{}", user.id))
        .details(json!({ "plan": choice.plan }));
    match state
        .store
        .switch_public_plan(user.id, &choice.plan, audit)
        .await
    {
        Ok(PlanChange::Changed) => me_json(&state, user).await,
        Ok(PlanChange::NoSuchPlan) => Err(ApiError::invalid_fields(
            [(
                "plan".to_owned(),
                format!("There is no public plan {:?}.", choice.plan),
            )]
            .into(),
        )
        .into_response()),
        Ok(PlanChange::TooManyActiveKeys { active, allowed }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "too_many_active_keys",
            format!(
                "You have {active} active keys and that plan allows {allowed}. Revoke keys first."
            ),
        )
        .into_response()),
        Err(error) => Err(internal(error)),
    }
}

/// `GET /api/v1/keys`
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Response> {
    caller.require(Needs::Read)?;
    let keys = service::list(&state.store, caller.user().id).await?;
    Ok(Json(json!({ "object": "list", "data": keys })).into_response())
}

/// `POST /api/v1/keys`: the answer holds the secret, the only time it is shown.
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    body: Result<Json<CreateKey>, JsonRejection>,
) -> Result<Response, Response> {
    caller.require(Needs::Write)?;
    let input = json_body(body)?;
    let issued = service::create(
        &state.store,
        &state.key_hasher,
        &meta,
        caller.user().id,
        &input,
        caller.key_scopes(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

/// `GET /api/v1/keys/{id}`
pub async fn get_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(key_id): Path<i64>,
) -> Result<Response, Response> {
    caller.require(Needs::Read)?;
    Ok(Json(service::get(&state.store, caller.user().id, key_id).await?).into_response())
}

/// `PATCH /api/v1/keys/{id}`: change a key's name or restrictions.
pub async fn update_key(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    Path(key_id): Path<i64>,
    body: Result<Json<UpdateKey>, JsonRejection>,
) -> Result<Response, Response> {
    caller.require(Needs::Write)?;
    let changes = json_body(body)?;
    let key = service::update(
        &state.store,
        &meta,
        caller.user().id,
        key_id,
        &changes,
        caller.key_scopes(),
    )
    .await?;
    Ok(Json(key).into_response())
}

/// `DELETE /api/v1/keys/{id}`: revoke; effective on the next request.
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    Path(key_id): Path<i64>,
) -> Result<Response, Response> {
    caller.require(Needs::Write)?;
    let user_id = caller.user().id;
    // 404 for keys that are not the caller's, whether or not they exist.
    service::get(&state.store, user_id, key_id).await?;
    service::revoke(&state.store, &meta, user_id, &[key_id]).await?;
    Ok(Json(service::get(&state.store, user_id, key_id).await?).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    #[serde(default)]
    pub grace_seconds: i64,
}

/// `POST /api/v1/keys/{id}/rotate`: a new secret with the same settings.
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    Path(key_id): Path<i64>,
    body: Option<Json<Rotation>>,
) -> Result<Response, Response> {
    caller.require(Needs::Write)?;
    let grace = body.map(|Json(r)| r.grace_seconds).unwrap_or_default();
    let issued = service::rotate(
        &state.store,
        &state.key_hasher,
        &meta,
        caller.user().id,
        key_id,
        grace,
    )
    .await?;
    Ok(Json(issued).into_response())
}
