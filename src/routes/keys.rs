//! The key and plan management API (`/api/v1/…`), for scripts: a signed-in
//! session (same-origin checked) or a key with `keys:read` / `keys:write`. Every
//! rule lives in the services; these handlers only translate.

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    api_caller::{Caller, Needs},
    api_error::{ApiError, ErrorResponse},
    keys::{
        service::{self, KeyError, PlanSwitch},
        types::{CreateKey, IssuedKey, KeyView, PlanView, UpdateKey},
    },
    request_meta::RequestMeta,
    routes::{ApiPath, json_body, optional_json_body},
    startup::AppState,
    store::{StoreError, UserRecord},
};

impl IntoResponse for KeyError {
    fn into_response(self) -> Response {
        let message = self.message();
        match self {
            KeyError::Invalid(fields) => ApiError::invalid_fields(fields),
            KeyError::DailyLimit { frees_at } => {
                let mut answer = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "key_creation_daily_limit",
                    message,
                )
                .into_response();
                // `frees_at` is to the second, cut down: a second more, so a
                // script that waits is not refused again.
                if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&frees_at) {
                    let wait = (at.to_utc() - chrono::Utc::now()).num_seconds().max(0) + 1;
                    answer
                        .headers_mut()
                        .insert(axum::http::header::RETRY_AFTER, wait.into());
                }
                return answer;
            }
            // Waiting never frees an active key's slot: revoking one does.
            KeyError::ActiveLimit { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "active_key_limit",
                message,
            ),
            KeyError::NotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "key_not_found",
                message,
            ),
            KeyError::BeyondCaller { field, .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                if field == "scopes" {
                    "scope_not_held"
                } else {
                    "restriction_not_held"
                },
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

/// `{"object":"list","data":[…]}`, as OpenAI's list answers.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    /// Always `list`.
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<KeyView>,
}

/// `{"object":"list","data":[…]}`: the public plans.
#[derive(Serialize, ToSchema)]
pub struct PlanList {
    /// Always `list`.
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<PlanView>,
}

/// The caller's account and plan.
#[derive(Serialize, ToSchema)]
pub struct Me {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    /// `user` or `admin`.
    pub role: String,
    pub plan: PlanView,
}

#[utoipa::path(get, path = "/api/v1/plans", tag = "plans",
    security(("session" = []), ("api_key" = ["keys:read"])),
    responses(
        (status = 200, description = "The public plans; the caller's is marked `current`", body = PlanList),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "The key lacks the scope, is a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
    ))]
/// List the public plans
///
/// Every plan a user may pick, with the caller's own marked `current`.
pub async fn list_plans(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Response> {
    caller.require(Needs::Read)?;
    let data = service::plans_for(&state.store, caller.user().id).await?;
    Ok(Json(PlanList {
        object: "list".to_owned(),
        data,
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/me", tag = "account",
    security(("session" = []), ("api_key" = ["keys:read"])),
    responses(
        (status = 200, description = "The caller's account and plan", body = Me),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "The key lacks the scope, is a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
    ))]
/// The caller's account and plan
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Response, Response> {
    caller.require(Needs::Read)?;
    me_json(&state, caller.user()).await
}

async fn me_json(state: &AppState, user: &UserRecord) -> Result<Response, Response> {
    let plan = state.store.plan_of_user(user.id).await.map_err(internal)?;
    Ok(Json(Me {
        id: user.id,
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        role: if user.is_admin { "admin" } else { "user" }.to_owned(),
        plan: service::plan_view(&plan, plan.id),
    })
    .into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanChoice {
    /// The plan's id, e.g. `standard`.
    pub plan: String,
}

#[utoipa::path(put, path = "/api/v1/me/plan", tag = "plans", request_body = PlanChoice,
    security(("session" = []), ("api_key" = ["keys:write"])),
    responses(
        (status = 200, description = "Switched; the new plan applies to the next request", body = Me),
        (status = 400, description = "The body is not valid JSON", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "The key lacks the scope, is a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
        (status = 409, description = "More active keys than the plan allows: revoke some first", body = ErrorResponse),
        (status = 422, description = "No such public plan", body = ErrorResponse),
    ))]
/// Switch plan
///
/// Moves the caller to another public plan; it applies to the next request. A plan
/// that allows fewer active keys than the caller has is refused until keys are revoked.
pub async fn switch_plan(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    body: Result<Json<PlanChoice>, JsonRejection>,
) -> Result<Response, Response> {
    caller.require(Needs::Write)?;
    let choice = json_body(body)?;
    let user = caller.user();
    let switch = service::switch_plan(&state.store, &meta, user.id, &choice.plan).await?;
    match (&switch, switch.refusal(&choice.plan)) {
        (_, None) => me_json(&state, user).await,
        (PlanSwitch::NoSuchPlan, Some(message)) => {
            Err(ApiError::invalid_fields([("plan".to_owned(), message)].into()).into())
        }
        (_, Some(message)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "too_many_active_keys",
            message,
        )
        .into()),
    }
}

#[utoipa::path(get, path = "/api/v1/keys", tag = "keys",
    security(("session" = []), ("api_key" = ["keys:read"])),
    responses(
        (status = 200, description = "The caller's keys, newest first", body = KeyList),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "The key lacks the scope, is a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
    ))]
/// List keys
///
/// The caller's keys with their settings and status; never their secrets.
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Response> {
    caller.require(Needs::Read)?;
    let data = service::list(&state.store, caller.user().id).await?;
    Ok(Json(KeyList {
        object: "list".to_owned(),
        data,
    })
    .into_response())
}

#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = CreateKey,
    security(("session" = []), ("api_key" = ["keys:write"])),
    responses(
        (status = 201, description = "Created; `secret` is shown this once", body = IssuedKey),
        (status = 400, description = "The body is not valid JSON", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "The key lacks the scope, is a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
        (status = 422, description = "Invalid fields, each named in `error.fields`", body = ErrorResponse),
        (status = 409, description = "The plan's active-key limit: revoke a key first", body = ErrorResponse),
        (status = 429, description = "The most keys a day were created in the last 24 hours; `Retry-After` says when the next may be", body = ErrorResponse),
    ))]
/// Create a key
///
/// The answer holds the secret, the only time it is ever shown. A key may only
/// create keys within its own scopes and restrictions; those the new key
/// leaves unset are taken from it.
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
        &state.gateway.models,
        caller.user().id,
        &input,
        caller.key_bounds().as_ref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

#[utoipa::path(get, path = "/api/v1/keys/{id}", tag = "keys",
    params(("id" = i64, Path, description = "The key's id")),
    security(("session" = []), ("api_key" = ["keys:read"])),
    responses(
        (status = 200, description = "The key", body = KeyView),
        (status = 400, description = "The id is not a number", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "The key lacks the scope, is a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
        (status = 404, description = "No such key of the caller's", body = ErrorResponse),
    ))]
/// Get a key
pub async fn get_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(key_id): ApiPath<i64>,
) -> Result<Response, Response> {
    caller.require(Needs::Read)?;
    Ok(Json(service::get(&state.store, caller.user().id, key_id).await?).into_response())
}

#[utoipa::path(patch, path = "/api/v1/keys/{id}", tag = "keys", request_body = UpdateKey,
    params(("id" = i64, Path, description = "The key's id")),
    security(("session" = []), ("api_key" = ["keys:write"])),
    responses(
        (status = 200, description = "The key after the change", body = KeyView),
        (status = 400, description = "The body is not valid JSON, or the id is not a number", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "The key lacks the scope, is a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
        (status = 404, description = "No such key of the caller's", body = ErrorResponse),
        (status = 409, description = "The change would make a used-up or expired key active past the plan's active keys (`active_key_limit`)", body = ErrorResponse),
        (status = 422, description = "Invalid fields, each named in `error.fields`", body = ErrorResponse),
    ))]
/// Change a key
///
/// Its name or restrictions; omitted fields stay as they are, and an empty list
/// or an empty `expires_at` removes that restriction. A usage cap can be
/// raised, not removed: a key without one is a new key.
pub async fn update_key(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(key_id): ApiPath<i64>,
    body: Result<Json<UpdateKey>, JsonRejection>,
) -> Result<Response, Response> {
    caller.require(Needs::Write)?;
    let changes = json_body(body)?;
    let key = service::update(
        &state.store,
        &meta,
        &state.gateway.models,
        caller.user().id,
        key_id,
        &changes,
        caller.key_bounds().as_ref(),
    )
    .await?;
    Ok(Json(key).into_response())
}

#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys",
    params(("id" = i64, Path, description = "The key's id")),
    security(("session" = []), ("api_key" = ["keys:write"])),
    responses(
        (status = 200, description = "Revoked; refused from the next request on", body = KeyView),
        (status = 400, description = "The id is not a number", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "The key lacks the scope, is a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
        (status = 404, description = "No such key of the caller's", body = ErrorResponse),
    ))]
/// Revoke a key
///
/// Effective from the next request.
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(key_id): ApiPath<i64>,
) -> Result<Response, Response> {
    caller.require(Needs::Write)?;
    let user_id = caller.user().id;
    // 404 for keys that are not the caller's, whether or not they exist.
    service::get(&state.store, user_id, key_id).await?;
    service::revoke(&state.store, &meta, user_id, &[key_id]).await?;
    Ok(Json(service::get(&state.store, user_id, key_id).await?).into_response())
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// How long the old secret keeps working, 0 to 86400 seconds (default 0).
    #[serde(default)]
    pub grace_seconds: i64,
}

#[utoipa::path(post, path = "/api/v1/keys/{id}/rotate", tag = "keys", request_body(content = Option<Rotation>, description = "Optional; without it the old secret stops at once"),
    params(("id" = i64, Path, description = "The key's id")),
    security(("session" = []), ("api_key" = ["keys:write"])),
    responses(
        (status = 200, description = "A new secret with the same settings, shown this once", body = IssuedKey),
        (status = 400, description = "The body is not valid JSON, or the id is not a number", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "The key lacks the scope, or the rotated key has a scope or reach it lacks; or a cross-site request", body = ErrorResponse),
        (status = 404, description = "No such key of the caller's", body = ErrorResponse),
        (status = 422, description = "Invalid grace period", body = ErrorResponse),
    ))]
/// Rotate a key
///
/// Issues a new secret with the same settings. With `grace_seconds` (up to 24
/// hours) the old secret keeps working until the grace period ends.
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(key_id): ApiPath<i64>,
    body: Bytes,
) -> Result<Response, Response> {
    caller.require(Needs::Write)?;
    let rotation: Option<Rotation> = optional_json_body(&body)?;
    let grace = rotation.map(|r| r.grace_seconds).unwrap_or_default();
    let issued = service::rotate(
        &state.store,
        &state.key_hasher,
        &meta,
        caller.user().id,
        key_id,
        grace,
        caller.key_bounds().as_ref(),
    )
    .await?;
    Ok(Json(issued).into_response())
}

#[utoipa::path(post, path = "/api/v1/keys/{id}/end-grace", tag = "keys",
    params(("id" = i64, Path, description = "The key's id")),
    security(("session" = []), ("api_key" = ["keys:write"])),
    responses(
        (status = 200, description = "The key, its previous secret refused from the next request on", body = KeyView),
        (status = 400, description = "The id is not a number", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "The key lacks the scope, is a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
        (status = 404, description = "No such key of the caller's", body = ErrorResponse),
    ))]
/// End a rotation's grace period
///
/// The key's previous secret stops working now instead of at `grace_until`.
/// A key with no grace period running is answered as it is.
pub async fn end_grace(
    State(state): State<AppState>,
    caller: Caller,
    meta: RequestMeta,
    ApiPath(key_id): ApiPath<i64>,
) -> Result<Response, Response> {
    caller.require(Needs::Write)?;
    let key = service::end_grace(&state.store, &meta, caller.user().id, key_id).await?;
    Ok(Json(key).into_response())
}
