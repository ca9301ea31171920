//! The admin REST API (`/api/v1/admin/…`): admin session only, same-origin checked.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    accounts::{
        service::{self, AccountError},
        session::Admin,
    },
    api_error::{ApiError, ErrorResponse},
    request_meta::RequestMeta,
    startup::AppState,
    store::{UserRecord, UserStatus},
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

/// A page of users, oldest first.
#[derive(Serialize, ToSchema)]
pub struct UserList {
    #[schema(example = "list")]
    pub object: String,
    pub data: Vec<AdminUser>,
    pub limit: i64,
    pub offset: i64,
}

fn account_error(error: AccountError) -> Response {
    match error {
        AccountError::NotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "user_not_found",
            "No such user.",
        )
        .into_response(),
        other => {
            tracing::error!(error = %other, "admin action failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal_error",
                "The action failed.",
            )
            .into_response()
        }
    }
}

/// List users
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", params(Page),
    security(("session" = [])),
    responses(
        (status = 200, description = "A page of users", body = UserList),
        (status = 401, description = "Not signed in", body = ErrorResponse),
        (status = 403, description = "Not an admin, or a cross-site request", body = ErrorResponse),
    ))]
pub async fn list_users(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(page): Query<Page>,
) -> Response {
    let limit = page.limit.clamp(1, 200);
    let offset = page.offset.max(0);
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
    security(("session" = [])),
    responses(
        (status = 200, description = "The user, now disabled", body = AdminUser),
        (status = 400, description = "Admins cannot disable themselves", body = ErrorResponse),
        (status = 401, description = "Not signed in", body = ErrorResponse),
        (status = 403, description = "Not an admin, or a cross-site request", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn disable_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    meta: RequestMeta,
    Path(user_id): Path<i64>,
) -> Response {
    set_disabled(state, admin, meta, user_id, true).await
}

/// Enable a disabled user
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/enable", tag = "admin",
    params(("id" = i64, Path, description = "The user's id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The user, active again", body = AdminUser),
        (status = 401, description = "Not signed in", body = ErrorResponse),
        (status = 403, description = "Not an admin, or a cross-site request", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn enable_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    meta: RequestMeta,
    Path(user_id): Path<i64>,
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
    if disabled && user_id == admin.id {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "cannot_disable_self",
            "You cannot disable your own account.",
        )
        .into_response();
    }
    match service::set_disabled(&state, &meta, &admin, user_id, disabled).await {
        Ok(()) => match state.store.user_by_id(user_id).await {
            Ok(Some(user)) => Json(AdminUser::from(&user)).into_response(),
            Ok(None) => account_error(AccountError::NotFound),
            Err(error) => account_error(error.into()),
        },
        Err(error) => account_error(error),
    }
}
