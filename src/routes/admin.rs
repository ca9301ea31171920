//! The admin REST API (`/api/v1/admin/…`): admin session only, same-origin checked.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    accounts::{
        service::{self, AccountError},
        session::Admin,
    },
    api_error::ApiError,
    request_meta::RequestMeta,
    startup::AppState,
    store::{UserRecord, UserStatus},
};

#[derive(Deserialize)]
pub struct Page {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    50
}

fn user_json(user: &UserRecord) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "role": if user.is_admin { "admin" } else { "user" },
        "status": match user.status {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
            UserStatus::Deleted => "deleted",
        },
        "created_at": user.created_at,
    })
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

pub async fn list_users(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(page): Query<Page>,
) -> Response {
    let limit = page.limit.clamp(1, 200);
    let offset = page.offset.max(0);
    match state.store.list_users(limit, offset).await {
        Ok(users) => Json(json!({
            "object": "list",
            "data": users.iter().map(user_json).collect::<Vec<_>>(),
            "limit": limit,
            "offset": offset,
        }))
        .into_response(),
        Err(error) => account_error(error.into()),
    }
}

pub async fn disable_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    meta: RequestMeta,
    Path(user_id): Path<i64>,
) -> Response {
    set_disabled(state, admin, meta, user_id, true).await
}

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
            Ok(Some(user)) => Json(user_json(&user)).into_response(),
            Ok(None) => account_error(AccountError::NotFound),
            Err(error) => account_error(error.into()),
        },
        Err(error) => account_error(error),
    }
}
