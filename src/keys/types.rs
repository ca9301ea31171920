//! Key types shared by the pages, the server functions and the REST API.

use serde::{Deserialize, Serialize};

/// What a caller may ask for when creating a key. Omitted fields take defaults:
/// environment `live`, scope `chat`, every model the plan allows, no expiry, no
/// usage cap, any IP, any referrer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub name: String,
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    /// An RFC 3339 time or a `YYYY-MM-DD` date (the key works until that day ends, UTC).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Alternatively, a lifetime in seconds from now.
    #[serde(default)]
    pub ttl_seconds: Option<i64>,
    /// Total requests the key may make; 1 makes a one-time key.
    #[serde(default)]
    pub usage_cap: Option<i64>,
    /// IPv4/IPv6 addresses and CIDR ranges.
    #[serde(default)]
    pub ip_allowlist: Option<Vec<String>>,
    /// Domains a browser caller's Referer/Origin must belong to.
    #[serde(default)]
    pub referrer_domains: Option<Vec<String>>,
}

/// A key as its owner sees it (never the secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct KeyView {
    pub id: i64,
    pub name: String,
    pub env: String,
    /// `tg_live_AbCd…wxyz`
    pub display: String,
    pub scopes: Vec<String>,
    pub allowed_models: Option<Vec<String>>,
    pub ip_allowlist: Option<Vec<String>>,
    pub referrer_domains: Option<Vec<String>>,
    pub usage_cap: Option<i64>,
    pub usage_count: i64,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// While a rotation's grace period lasts: when the previous secret stops
    /// working.
    #[serde(default)]
    pub grace_until: Option<String>,
    /// `active`, `revoked`, `expired` or `used_up`.
    pub status: String,
}

/// A key with its secret, returned exactly once: at creation or rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct IssuedKey {
    pub key: KeyView,
    pub secret: String,
}

/// The scopes any user can give their keys.
pub const SCOPES: [&str; 3] = ["chat", "keys:read", "keys:write"];

/// The scope that lets a key call the admin API; only admins can grant it.
pub const ADMIN_SCOPE: &str = "admin";

/// Changes to a key's settings; omitted fields stay as they are. An empty list
/// or an empty `expires_at` removes that restriction. A usage cap can be
/// raised, not removed: a key without one is a new key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub usage_cap: Option<i64>,
    #[serde(default)]
    pub ip_allowlist: Option<Vec<String>>,
    #[serde(default)]
    pub referrer_domains: Option<Vec<String>>,
}

/// A model as the plans page lists it: its prices, and whether the viewer's
/// plan includes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPrice {
    pub name: String,
    /// Credits per 1,000 prompt tokens, as a decimal (`0.15`).
    pub input_per_1k: String,
    /// Credits per 1,000 reply tokens, as a decimal.
    pub output_per_1k: String,
    pub on_plan: bool,
}

/// A plan as pages and the API show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PlanView {
    /// The plan's slug, e.g. `starter`.
    pub id: String,
    pub name: String,
    pub description: String,
    pub requests_per_minute: i64,
    pub requests_per_hour: i64,
    pub requests_per_day: i64,
    pub tokens_per_minute: Option<i64>,
    pub max_parallel: Option<i64>,
    /// The monthly grant in micro-credits (1 credit = 1,000,000).
    pub monthly_credits_micros: i64,
    pub max_active_keys: i64,
    /// `None`: every model.
    pub allowed_models: Option<Vec<String>>,
    /// Whether the caller is on this plan.
    pub current: bool,
    /// Whether users may switch to it themselves: public and not retired.
    /// The caller's own plan may be neither, put there by an admin.
    #[serde(default = "offered_by_default")]
    pub offered: bool,
}

fn offered_by_default() -> bool {
    true
}
