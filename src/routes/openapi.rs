//! The OpenAPI 3 document of the REST API, generated from the handlers'
//! annotations and the shared types, served at `/openapi.json` and rendered for
//! people by the `/docs` page.

use axum::{Json, response::IntoResponse};
use serde_json::Value;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{admin, keys, model_api_doc, usage};
use crate::pages::docs::{ApiReference, Field, Operation, ResponseDoc, SchemaDoc};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tollgate API",
        description = "The model API, OpenAI's chat completions and models for any OpenAI SDK, \
                       called with a key that has the `chat` scope; and the management API for \
                       plans, account and API keys, called with a key that has the `keys:read` \
                       or `keys:write` scope in `Authorization: Bearer` (or `x-api-key`), or \
                       from the dashboard's \
                       own session. Errors are always \
                       `{\"error\":{\"message\",\"type\",\"param\",\"code\"}}`."
    ),
    paths(
        model_api_doc::chat_completions,
        model_api_doc::list_models,
        model_api_doc::get_model,
        model_api_doc::simple_response,
        keys::list_plans,
        keys::me,
        keys::switch_plan,
        keys::list_keys,
        keys::create_key,
        keys::get_key,
        keys::update_key,
        keys::revoke_key,
        keys::rotate_key,
        keys::end_grace,
        usage::export_calls,
        admin::list_users,
        admin::disable_user,
        admin::enable_user,
        admin::password_reset_link,
        admin::list_balances,
        admin::adjust_credits,
        admin::assign_plan,
        admin::set_limits,
        admin::revoke_all_keys,
        admin::revoke_key,
        admin::rotate_all_keys,
        admin::export_user_calls,
        admin::audit_log,
        admin::monitor,
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "models", description = "The model API: chat with the models this key may call"),
        (name = "account", description = "Who is calling"),
        (name = "plans", description = "Rate-limit plans"),
        (name = "keys", description = "API keys: create, restrict, rotate, revoke"),
        (name = "usage", description = "What the account's calls used"),
        (name = "admin", description = "Admins only"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("tg_live_…")
                    .description(Some(
                        "A Tollgate key. The scope listed on each route is the one it needs; \
                         `keys:write` includes `keys:read`. Only admins can grant `admin`, \
                         which the admin routes need. A key gives the keys it creates, \
                         changes or rotates no more than it has: its scopes, models, \
                         expiry, remaining uses, IP allowlist and referrer rule, which a \
                         new key takes where it sets none.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "x_api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key",
                "The same Tollgate key in a header of its own, for callers that cannot set \
                 `Authorization` (an OpenAI SDK may send its own bearer beside it).",
            ))),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::accounts::cookie_names::SESSION.on(false),
                "The dashboard's session (`__Host-tollgate_session` when the site is served \
                 over HTTPS); requests that change state must come from the app's own origin.",
            ))),
        );
    }
}

/// The document, built once: it only changes with the code.
pub fn document() -> &'static Value {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|error| {
            tracing::error!(%error, "the OpenAPI document does not serialize");
            Value::Null
        })
    })
}

/// `GET /openapi.json`
pub async fn openapi_json() -> impl IntoResponse {
    Json(document())
}

/// The document flattened for the `/docs` page.
pub fn reference() -> ApiReference {
    let doc = document();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut operations = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in ["get", "put", "post", "patch", "delete"] {
                let op = &item[method];
                if op.is_null() {
                    continue;
                }
                operations.push(Operation {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    tag: text(&op["tags"][0]),
                    summary: text(&op["summary"]),
                    description: text(&op["description"]),
                    auth: auth_of(op),
                    params: op["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| Field {
                            name: format!("{} ({})", text(&p["name"]), text(&p["in"])),
                            kind: type_label(&p["schema"]),
                            required: p["required"].as_bool().unwrap_or(false),
                            description: text(&p["description"]),
                        })
                        .collect(),
                    body: json_schema(&op["requestBody"]).map(|s| type_label(&s)),
                    responses: op["responses"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(status, r)| ResponseDoc {
                            status: status.clone(),
                            description: text(&r["description"]),
                            body: json_schema(r).map(|s| type_label(&s)),
                        })
                        .collect(),
                });
            }
        }
    }
    // The document's paths are sorted by path; list them by tag in the order declared.
    let tag_order: Vec<String> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| text(&t["name"]))
        .collect();
    operations.sort_by_key(|op| tag_order.iter().position(|t| *t == op.tag));

    let schemas = doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, schema)| {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            SchemaDoc {
                name: name.clone(),
                description: text(&schema["description"]),
                fields: schema["properties"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(field, s)| Field {
                        name: field.clone(),
                        kind: type_label(s),
                        required: required.contains(&field.as_str()),
                        description: text(&s["description"]),
                    })
                    .collect(),
            }
        })
        .collect();

    ApiReference {
        title: text(&doc["info"]["title"]),
        description: text(&doc["info"]["description"]),
        operations,
        schemas,
    }
}

fn json_schema(holder: &Value) -> Option<Value> {
    let schema = &holder["content"]["application/json"]["schema"];
    (!schema.is_null()).then(|| schema.clone())
}

fn auth_of(op: &Value) -> Vec<String> {
    op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|requirement| requirement.iter())
        .map(|(scheme, scopes)| {
            let scopes: Vec<&str> = scopes
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match (scheme.as_str(), scopes.is_empty()) {
                ("api_key", false) => format!("Bearer key with {}", scopes.join(", ")),
                ("api_key", true) => "Bearer key".to_owned(),
                ("x_api_key", false) => format!("key in x-api-key with {}", scopes.join(", ")),
                ("x_api_key", true) => "key in x-api-key".to_owned(),
                ("session", _) => "dashboard session".to_owned(),
                (other, _) => other.to_owned(),
            }
        })
        .collect()
}

/// A JSON Schema as a short type name: `string`, `KeyView`, `array of string`,
/// `integer or null`.
fn type_label(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        return reference.rsplit('/').next().unwrap_or(reference).to_owned();
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(options) = schema[combinator].as_array() {
            return options
                .iter()
                .map(type_label)
                .collect::<Vec<_>>()
                .join(" or ");
        }
    }
    let kinds: Vec<&str> = match &schema["type"] {
        Value::String(kind) => vec![kind.as_str()],
        Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    kinds
        .iter()
        .map(|kind| match *kind {
            "array" => format!("array of {}", type_label(&schema["items"])),
            "object" if schema["additionalProperties"].is_object() => {
                format!("map of {}", type_label(&schema["additionalProperties"]))
            }
            other => other.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" or ")
}
