//! The admin REST API (`/api/v1/admin/…`), for an admin's session (same-origin
//! checked) or an admin's key with the `admin` scope (the `Admin` extractor):
//! users, balances and credit corrections, plans and limits, keys, the
//! monitor and the audit log.

use axum::{
    Json,
    extract::{State, rejection::JsonRejection},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    accounts::{
        service::{self, AccountError},
        session::Admin,
    },
    admin::service::{self as admin_service, AdminError},
    api_caller::PresentedKeyBounds,
    api_error::{ApiError, ErrorResponse},
    credits::format_credits,
    request_meta::RequestMeta,
    routes::{ApiPath, ApiQuery, json_body},
    startup::AppState,
    store::{AuditRecord, LimitOverrides, UserBalance, UserRecord, UserStatus},
};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// At most this many, 1 to 200 (default 50).
    #[serde(default = "default_limit")]
    limit: i64,
    /// Skip this many.
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    50
}

/// A page's `limit` and `offset` within bounds: 1 to 200 items, none skipped
/// below zero.
fn page_bounds(limit: i64, offset: i64) -> (i64, i64) {
    (limit.clamp(1, 200), offset.max(0))
}

/// A user as admins see them.
#[derive(Serialize, ToSchema)]
pub struct AdminUser {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    /// `user` or `admin`.
    pub role: String,
    /// `active`, `disabled` or `deleted`.
    pub status: String,
    pub created_at: String,
}

impl From<&UserRecord> for AdminUser {
    fn from(user: &UserRecord) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            role: if user.is_admin { "admin" } else { "user" }.to_owned(),
            status: match user.status {
                UserStatus::Active => "active",
                UserStatus::Disabled => "disabled",
                UserStatus::Deleted => "deleted",
            }
            .to_owned(),
            created_at: user.created_at.clone(),
        }
    }
}

/// A page of users, newest first (by id).
#[derive(Serialize, ToSchema)]
pub struct UserList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<AdminUser>,
    pub limit: i64,
    pub offset: i64,
}

/// An account refusal on the admin API: the status and words the pages
/// give it (`AccountError::status`, `into_form_error`), with the API's code.
fn account_error(error: AccountError) -> Response {
    let status = error.status();
    let code = match &error {
        AccountError::NotFound => return AdminError::UserNotFound.into_response(),
        AccountError::DisablingSelf => "cannot_disable_self",
        // The asking admin was disabled meanwhile.
        AccountError::Disabled => "account_disabled",
        _ if status.is_server_error() => "internal_error",
        _ => "conflict",
    };
    let kind = match status {
        s if s.is_server_error() => "server_error",
        axum::http::StatusCode::FORBIDDEN => "permission_error",
        _ => "invalid_request_error",
    };
    // Logs a failure the way the pages do.
    let message = error.into_form_error().message;
    ApiError::new(status, kind, code, message).into_response()
}

/// List users
///
/// Newest first, by id. A sign-up while a script pages through moves every
/// later user one place on, so a walk may see one user twice; key on `id`.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", params(Page),
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 200, description = "A page of users", body = UserList),
        (status = 400, description = "A parameter is not of its type", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "Not an admin, a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
    ))]
pub async fn list_users(
    State(state): State<AppState>,
    Admin(_): Admin,
    ApiQuery(page): ApiQuery<Page>,
) -> Response {
    let (limit, offset) = page_bounds(page.limit, page.offset);
    match state.store.list_users(limit, offset).await {
        Ok(users) => Json(UserList {
            object: "list".to_owned(),
            data: users.iter().map(AdminUser::from).collect(),
            limit,
            offset,
        })
        .into_response(),
        Err(error) => account_error(error.into()),
    }
}

/// Disable a user
///
/// They cannot sign in, their sessions end at once and their keys stop working.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/disable", tag = "admin",
    params(("id" = i64, Path, description = "The user's id")),
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 200, description = "The user, now disabled", body = AdminUser),
        (status = 400, description = "Admins cannot disable themselves, or the id is not a number", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "Not an admin, a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn disable_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    meta: RequestMeta,
    ApiPath(user_id): ApiPath<i64>,
) -> Response {
    set_disabled(state, admin, meta, user_id, true).await
}

/// Enable a disabled user
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/enable", tag = "admin",
    params(("id" = i64, Path, description = "The user's id")),
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 200, description = "The user, active again", body = AdminUser),
        (status = 400, description = "The id is not a number", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "Not an admin, a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn enable_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    meta: RequestMeta,
    ApiPath(user_id): ApiPath<i64>,
) -> Response {
    set_disabled(state, admin, meta, user_id, false).await
}

async fn set_disabled(
    state: AppState,
    admin: UserRecord,
    meta: RequestMeta,
    user_id: i64,
    disabled: bool,
) -> Response {
    match service::set_disabled(&state, &meta, &admin, user_id, disabled).await {
        Ok(()) => match state.store.user_by_id(user_id).await {
            Ok(Some(user)) => Json(AdminUser::from(&user)).into_response(),
            Ok(None) => account_error(AccountError::NotFound),
            Err(error) => account_error(error.into()),
        },
        Err(error) => account_error(error),
    }
}

/// The API's error type, code and `param` for an admin refusal; its status
/// and message are the service's (`AdminError::status`, `message`).
fn admin_error_code(error: &AdminError) -> (&'static str, &'static str, Option<&'static str>) {
    match error {
        AdminError::Invalid(_) => ("invalid_request_error", "invalid_fields", None),
        AdminError::UserNotFound => ("invalid_request_error", "user_not_found", None),
        AdminError::Insufficient { .. } => (
            "invalid_request_error",
            "insufficient_credits",
            Some("amount"),
        ),
        AdminError::KeysChanged => ("invalid_request_error", "keys_changed", None),
        AdminError::KeyNotFound => ("invalid_request_error", "key_not_found", None),
        AdminError::PlanNotFound => ("invalid_request_error", "plan_not_found", None),
        AdminError::Conflict(_) => ("invalid_request_error", "conflict", None),
        AdminError::BeyondKey(_) => ("permission_error", "restriction_not_held", None),
        AdminError::SessionRequired(_) => ("permission_error", "session_required", None),
        AdminError::NotWritten { .. } => ("api_error", "records_unavailable", None),
        AdminError::Store(_) => ("server_error", "internal_error", None),
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match self {
            AdminError::Invalid(fields) => ApiError::invalid_fields(fields).into_response(),
            error => {
                if let AdminError::Store(detail) = &error {
                    tracing::error!(error = %detail, "admin action failed");
                }
                let (kind, code, param) = admin_error_code(&error);
                ApiError {
                    param: param.map(str::to_owned),
                    ..ApiError::new(error.status(), kind, code, error.message())
                }
                .into_response()
            }
        }
    }
}

/// A user's balance.
#[derive(Serialize, ToSchema)]
pub struct BalanceView {
    pub user_id: i64,
    pub email: String,
    pub display_name: String,
    /// The plan's id, such as `starter`.
    pub plan: String,
    /// Credits, exact, as a decimal string.
    #[schema(example = "12.5")]
    pub balance: String,
    /// The same in micro-credits (1 credit = 1,000,000).
    pub balance_micros: i64,
}

impl From<UserBalance> for BalanceView {
    fn from(b: UserBalance) -> Self {
        Self {
            user_id: b.user_id,
            email: b.email,
            display_name: b.display_name,
            plan: b.plan_slug,
            balance: format_credits(b.balance_micros),
            balance_micros: b.balance_micros,
        }
    }
}

/// A page of balances, oldest account first.
#[derive(Serialize, ToSchema)]
pub struct BalanceList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<BalanceView>,
    pub limit: i64,
    pub offset: i64,
}

/// List balances
#[utoipa::path(get, path = "/api/v1/admin/balances", tag = "admin", params(Page),
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 200, description = "A page of balances", body = BalanceList),
        (status = 400, description = "A parameter is not of its type", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "Not an admin, a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
    ))]
pub async fn list_balances(
    State(state): State<AppState>,
    Admin(_): Admin,
    ApiQuery(page): ApiQuery<Page>,
) -> Response {
    let (limit, offset) = page_bounds(page.limit, page.offset);
    match state.store.balances(limit, offset).await {
        Ok(balances) => Json(BalanceList {
            object: "list".to_owned(),
            data: balances.into_iter().map(BalanceView::from).collect(),
            limit,
            offset,
        })
        .into_response(),
        Err(error) => account_error(error.into()),
    }
}

/// A credit correction.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditAdjustment {
    /// Credits to add, or to deduct with a leading `-`, as an exact decimal
    /// string (at most six decimals).
    #[schema(example = "25")]
    pub amount: String,
    /// Why; kept in the ledger and the audit log.
    #[schema(example = "refund for the outage on 2026-11-20")]
    pub reason: String,
}

/// How many keys an admin action revoked.
#[derive(Serialize, ToSchema)]
pub struct RevokedKeys {
    pub user_id: i64,
    pub revoked: u64,
}

/// Revoke all of a user's keys
///
/// Every key that is not yet revoked stops working on its next request. Writes
/// a `key.revoke` audit event for each key and a `keys.revoke_all` event.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/keys/revoke", tag = "admin",
    params(("id" = i64, Path, description = "The user's id")),
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 200, description = "How many keys were revoked", body = RevokedKeys),
        (status = 400, description = "The id is not a number", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "Not an admin, a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn revoke_all_keys(
    State(state): State<AppState>,
    Admin(admin): Admin,
    meta: RequestMeta,
    ApiPath(user_id): ApiPath<i64>,
) -> Response {
    match admin_service::revoke_all_keys(&state.store, &meta, admin.id, user_id).await {
        Ok(revoked) => Json(RevokedKeys { user_id, revoked }).into_response(),
        Err(error) => error.into_response(),
    }
}

/// Export a user's calls as CSV
///
/// The file the account itself downloads from `/usage` (or
/// `/api/v1/usage/export`): its calls between two UTC days, oldest first.
#[utoipa::path(get, path = "/api/v1/admin/users/{id}/usage/export", tag = "admin",
    params(("id" = i64, Path, description = "The user's id"), crate::routes::usage::ExportQuery),
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 200, description = "The calls as CSV (`text/csv`), with the columns of `/api/v1/usage/export`, saved as `tollgate-usage-user-<id>-<from>-to-<to>.csv`", content_type = "text/csv", body = String),
        (status = 400, description = "The id is not a number, a day is not a date, or `from` is after `to`", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "Not an admin, or a rotated key's previous secret (`previous_secret`)", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn export_user_calls(
    State(state): State<AppState>,
    Admin(_): Admin,
    ApiPath(user_id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<crate::routes::usage::ExportQuery>,
) -> Response {
    let range = match query.range() {
        Ok(range) => range,
        Err(error) => return error.into_response(),
    };
    match admin_service::usage_export(&state.store, user_id, range).await {
        Ok(rows) => {
            crate::routes::usage::csv_download(&range.file_name_of_user(user_id), user_id, rows)
        }
        Err(error) => error.into_response(),
    }
}

/// Revoke one of a user's keys
///
/// The key stops working on its next request; the account's other keys go on.
/// Writes a `key.revoke` audit event with the admin as the actor.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/keys/{key_id}/revoke", tag = "admin",
    params(
        ("id" = i64, Path, description = "The user's id"),
        ("key_id" = i64, Path, description = "The key's id"),
    ),
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 200, description = "The key was revoked", body = RevokedKeys),
        (status = 400, description = "An id is not a number", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "Not an admin, a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
        (status = 404, description = "No such user, or the user has no such unrevoked key", body = ErrorResponse),
    ))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Admin(admin): Admin,
    meta: RequestMeta,
    ApiPath((user_id, key_id)): ApiPath<(i64, i64)>,
) -> Response {
    match admin_service::revoke_key(&state.store, &meta, admin.id, user_id, key_id).await {
        Ok(()) => Json(RevokedKeys {
            user_id,
            revoked: 1,
        })
        .into_response(),
        Err(error) => error.into_response(),
    }
}

/// Keys with their new secrets, shown this once.
#[derive(Serialize, ToSchema)]
pub struct RotatedKeys {
    pub user_id: i64,
    pub data: Vec<crate::keys::types::IssuedKey>,
}

/// Rotate all of a user's keys
///
/// Every active key gets a new secret at once; the old secrets stop working
/// (no grace period). The new secrets are in this answer only. Writes a
/// `key.rotate` audit event per key, with the admin as the actor.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/keys/rotate", tag = "admin",
    params(("id" = i64, Path, description = "The user's id")),
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 200, description = "The keys with their new secrets", body = RotatedKeys),
        (status = 400, description = "The id is not a number", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "Not an admin, a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
        (status = 409, description = "The keys changed meanwhile; nothing was rotated", body = ErrorResponse),
    ))]
pub async fn rotate_all_keys(
    State(state): State<AppState>,
    Admin(admin): Admin,
    PresentedKeyBounds(admin_key): PresentedKeyBounds,
    meta: RequestMeta,
    ApiPath(user_id): ApiPath<i64>,
) -> Response {
    let rotated = admin_service::rotate_all_keys(
        &state.store,
        &state.key_hasher,
        &meta,
        admin.id,
        admin_key.as_ref(),
        user_id,
    );
    match rotated.await {
        Ok(data) => Json(RotatedKeys { user_id, data }).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The balance after a correction.
#[derive(Serialize, ToSchema)]
pub struct AdjustedBalance {
    pub user_id: i64,
    #[schema(example = "37.5")]
    pub balance: String,
    pub balance_micros: i64,
}

/// Add or deduct credits
///
/// Writes an `adjust` entry in the user's ledger and an audit event. A
/// deduction larger than the balance is refused and changes nothing. With an
/// `Idempotency-Key` header, a correction sent again (a retry after a lost
/// answer) is made once and answers the balance as it is; the same key with
/// another amount answers 409.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/credits", tag = "admin",
    params(
        ("id" = i64, Path, description = "The user's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Up to 100 printable ASCII characters; the same key makes the correction once"),
    ),
    request_body = CreditAdjustment,
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 200, description = "The balance after", body = AdjustedBalance),
        (status = 400, description = "The body is not JSON of this shape, or the id is not a number", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "Not an admin, a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
        (status = 409, description = "The idempotency key was used for another amount", body = ErrorResponse),
        (status = 422, description = "A field is invalid, or the deduction is more than the balance", body = ErrorResponse),
        (status = 503, description = "Made, but the database refuses writes just now: written when it takes them again (`records_unavailable`); send it again under the same Idempotency-Key to learn when it is", body = ErrorResponse),
    ))]
pub async fn adjust_credits(
    State(state): State<AppState>,
    Admin(admin): Admin,
    meta: RequestMeta,
    ApiPath(user_id): ApiPath<i64>,
    headers: axum::http::HeaderMap,
    body: Result<Json<CreditAdjustment>, JsonRejection>,
) -> Response {
    let body = match json_body(body) {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let Ok(key) = headers
        .get("idempotency-key")
        .map(|v| v.to_str())
        .transpose()
    else {
        let fields = std::collections::BTreeMap::from([(
            "idempotency_key".to_owned(),
            "Use printable ASCII characters.".to_owned(),
        )]);
        return AdminError::Invalid(fields).into_response();
    };
    match admin_service::adjust_credits(
        &state.gateway.accounts,
        &meta,
        admin.id,
        user_id,
        &body.amount,
        &body.reason,
        key,
    )
    .await
    {
        Ok(balance_micros) => Json(AdjustedBalance {
            user_id,
            balance: format_credits(balance_micros),
            balance_micros,
        })
        .into_response(),
        Err(error) => error.into_response(),
    }
}

/// A plan to put a user on.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanAssignmentBody {
    /// The plan's id, public or private.
    #[schema(example = "pro")]
    pub plan: String,
}

/// The plan a user is now on.
#[derive(Serialize, ToSchema)]
pub struct AssignedPlan {
    pub user_id: i64,
    #[schema(example = "pro")]
    pub plan: String,
    pub name: String,
}

/// Assign a plan
///
/// Any plan that is not retired, public or private; it applies from the next
/// request. Keys over the plan's limit stay active.
#[utoipa::path(put, path = "/api/v1/admin/users/{id}/plan", tag = "admin",
    params(("id" = i64, Path, description = "The user's id")),
    request_body = PlanAssignmentBody,
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 200, description = "The user's plan now", body = AssignedPlan),
        (status = 400, description = "The body is not JSON of this shape, or the id is not a number", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "Not an admin, a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
        (status = 422, description = "No such plan, or it is retired", body = ErrorResponse),
    ))]
pub async fn assign_plan(
    State(state): State<AppState>,
    Admin(admin): Admin,
    meta: RequestMeta,
    ApiPath(user_id): ApiPath<i64>,
    body: Result<Json<PlanAssignmentBody>, JsonRejection>,
) -> Response {
    let body = match json_body(body) {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    match admin_service::assign_plan(&state.store, &meta, admin.id, user_id, &body.plan).await {
        Ok(plan) => Json(AssignedPlan {
            user_id,
            plan: plan.slug,
            name: plan.name,
        })
        .into_response(),
        Err(error) => error.into_response(),
    }
}

/// A user's limits over their plan's; `null` or absent follows the plan.
#[derive(Deserialize, Serialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    #[schema(example = 10)]
    #[serde(default)]
    pub requests_per_minute: Option<i64>,
    #[serde(default)]
    pub requests_per_hour: Option<i64>,
    #[serde(default)]
    pub requests_per_day: Option<i64>,
    #[serde(default)]
    pub tokens_per_minute: Option<i64>,
    #[serde(default)]
    pub max_parallel: Option<i64>,
}

/// The overrides a user now has.
#[derive(Serialize, ToSchema)]
pub struct UserLimits {
    pub user_id: i64,
    pub overrides: LimitsBody,
}

/// Set a user's limits
///
/// Replaces the user's overrides of their plan's request, token and parallel
/// limits; fields left out or `null` follow the plan, and an empty object
/// removes every override. They apply from the user's next request. Writes a
/// `limits.set` audit event.
#[utoipa::path(put, path = "/api/v1/admin/users/{id}/limits", tag = "admin",
    params(("id" = i64, Path, description = "The user's id")),
    request_body = LimitsBody,
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 200, description = "The user's overrides now", body = UserLimits),
        (status = 400, description = "The body is not JSON of this shape, or the id is not a number", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "Not an admin, a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
        (status = 422, description = "A limit is not from 1 to 1,000,000,000", body = ErrorResponse),
    ))]
pub async fn set_limits(
    State(state): State<AppState>,
    Admin(admin): Admin,
    meta: RequestMeta,
    ApiPath(user_id): ApiPath<i64>,
    body: Result<Json<LimitsBody>, JsonRejection>,
) -> Response {
    let body = match json_body(body) {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let overrides = LimitOverrides {
        requests_per_minute: body.requests_per_minute,
        requests_per_hour: body.requests_per_hour,
        requests_per_day: body.requests_per_day,
        tokens_per_minute: body.tokens_per_minute,
        max_parallel: body.max_parallel,
    };
    match admin_service::set_limits(&state.store, &meta, admin.id, user_id, overrides).await {
        Ok(o) => Json(UserLimits {
            user_id,
            overrides: LimitsBody {
                requests_per_minute: o.requests_per_minute,
                requests_per_hour: o.requests_per_hour,
                requests_per_day: o.requests_per_day,
                tokens_per_minute: o.tokens_per_minute,
                max_parallel: o.max_parallel,
            },
        })
        .into_response(),
        Err(error) => error.into_response(),
    }
}

/// Which span the monitor covers.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonitorQuery {
    /// `hour` (per-minute series, the default), `day` (per hour) or `week` (per day).
    window: Option<String>,
}

/// Read the monitor figures
///
/// Model API calls over the window: totals, calls per minute, the error rate
/// and calls by status, latency p50/p99 by model, the busiest users and keys by
/// calls and by credits, and rate-limit refusals by limit.
#[utoipa::path(get, path = "/api/v1/admin/monitor", tag = "admin", params(MonitorQuery),
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 200, description = "The figures", body = crate::monitor::types::MonitorReport),
        (status = 400, description = "A parameter is not of its type", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "Not an admin, a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
        (status = 422, description = "The window is not hour, day or week", body = ErrorResponse),
    ))]
pub async fn monitor(
    State(state): State<AppState>,
    Admin(_): Admin,
    ApiQuery(query): ApiQuery<MonitorQuery>,
) -> Response {
    use crate::monitor::service::{self as monitor, Window};
    let Some(window) = Window::parse(query.window.as_deref().unwrap_or("hour")) else {
        return ApiError::invalid_fields(
            [("window".to_owned(), "Use hour, day or week.".to_owned())].into(),
        )
        .into_response();
    };
    match monitor::monitor(&state.store, window, chrono::Utc::now()).await {
        Ok(report) => Json(report).into_response(),
        Err(error) => account_error(error.into()),
    }
}

/// Which audit events to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events by this user: an id, or an email address (any case), as
    /// the audit log page takes it.
    actor: Option<String>,
    /// Only this action, such as `login.failure` or `key.create`.
    action: Option<String>,
    /// Only this target, such as `user:7` or `key:3`.
    target: Option<String>,
    /// From this time on (a date or an RFC 3339 time).
    since: Option<String>,
    /// Before this time.
    until: Option<String>,
    /// At most this many, 1 to 200 (default 50).
    #[serde(default = "default_limit")]
    limit: i64,
    /// Skip this many.
    #[serde(default)]
    offset: i64,
}

/// One audit event.
#[derive(Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    pub at: String,
    pub actor_user_id: Option<i64>,
    /// The actor's email now (a deleted account's is a tombstone address).
    pub actor_email: Option<String>,
    pub action: String,
    pub target: Option<String>,
    /// What the target is now: a user's email, or a key's name and its
    /// owner's email.
    pub target_label: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// Facts particular to the event (never secrets).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<AuditRecord> for AuditView {
    fn from(r: AuditRecord) -> Self {
        Self {
            id: r.id,
            at: r.at,
            actor_user_id: r.actor_user_id,
            actor_email: r.actor_email,
            action: r.action,
            target: r.target,
            target_label: r.target_label,
            client_ip: r.client_ip,
            user_agent: r.user_agent,
            request_id: r.request_id,
            details: serde_json::from_str(&r.details).unwrap_or_default(),
        }
    }
}

/// A page of audit events, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<AuditView>,
    pub limit: i64,
    pub offset: i64,
}

/// Read the audit log
///
/// Every audit event, newest first, filtered by actor, action, target and
/// time range.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", params(AuditQuery),
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 200, description = "A page of events", body = AuditList),
        (status = 400, description = "A parameter is not of its type", body = ErrorResponse),
        (status = 401, description = "No valid session or key", body = ErrorResponse),
        (status = 403, description = "Not an admin, a rotated key's previous secret (`previous_secret`), or a cross-site request", body = ErrorResponse),
        (status = 422, description = "The actor is neither an id nor an email address, a time bound is not a date or time, or `until` is not after `since`", body = ErrorResponse),
    ))]
pub async fn audit_log(
    State(state): State<AppState>,
    Admin(_): Admin,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Response {
    let actor = match admin_service::audit_actor(query.actor.as_deref().unwrap_or_default()) {
        Ok(actor) => actor,
        Err(error) => return error.into_response(),
    };
    let filter = match admin_service::audit_filter(
        actor,
        query.action.as_deref(),
        query.target.as_deref(),
        query.since.as_deref(),
        query.until.as_deref(),
    ) {
        Ok(filter) => filter,
        Err(error) => return error.into_response(),
    };
    let (limit, offset) = page_bounds(query.limit, query.offset);
    match state.store.audit_log(&filter, limit, offset).await {
        Ok(events) => Json(AuditList {
            object: "list".to_owned(),
            data: events.into_iter().map(AuditView::from).collect(),
            limit,
            offset,
        })
        .into_response(),
        Err(error) => account_error(error.into()),
    }
}

/// Make a password reset link
///
/// A one-time link with which the user sets a new password, valid for an
/// hour, for the admin to pass on privately (Tollgate sends no email). The
/// account's earlier links stop working; using it ends the account's
/// sessions. A signed-in admin's session only (no key), and not for the
/// admin's own account. Writes a `password.reset_link` audit event.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/password-reset", tag = "admin",
    params(("id" = i64, Path, description = "The user's id")),
    security(("session" = []), ("api_key" = ["admin"])),
    responses(
        (status = 200, description = "The link, shown this once", body = crate::accounts::types::PasswordResetLink),
        (status = 400, description = "The id is not a number", body = ErrorResponse),
        (status = 401, description = "Not signed in", body = ErrorResponse),
        (status = 403, description = "Not an admin, a key rather than a session, or a cross-site request", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
        (status = 409, description = "The account is disabled, or the caller's own", body = ErrorResponse),
    ))]
pub async fn password_reset_link(
    State(state): State<AppState>,
    Admin(admin): Admin,
    PresentedKeyBounds(key): PresentedKeyBounds,
    meta: RequestMeta,
    ApiPath(user_id): ApiPath<i64>,
) -> Response {
    match admin_service::password_reset_link(
        &state.store,
        &state.key_hasher,
        &meta,
        &state.public_url,
        (admin.id, key.as_ref()),
        user_id,
    )
    .await
    {
        Ok(link) => Json(link).into_response(),
        Err(error) => error.into_response(),
    }
}
