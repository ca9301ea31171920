//! Every key rule, written once, for the pages and the REST API alike.

use std::{collections::BTreeMap, str::FromStr};

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};
use serde_json::json;

use super::{
    bounds::{Bounds, Reach},
    format::{ApiKey, KeyEnv},
    hashing::KeyHasher,
    types::{ADMIN_SCOPE, CreateKey, IssuedKey, KeyView, ModelPrice, PlanView, SCOPES, UpdateKey},
};
use crate::{
    gateway::providers::ModelTable,
    request_meta::RequestMeta,
    store::{
        AuditEvent, KeyCreation, KeyRecord, KeySettings, KeyUpdate, NewKey, NewSecret, Store,
        StoreError,
    },
};

pub const MAX_GRACE_SECS: i64 = 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid fields")]
    Invalid(BTreeMap<String, String>),
    #[error("daily key creation limit reached")]
    DailyLimit { frees_at: String },
    #[error("active key limit reached")]
    ActiveLimit { allowed: i64 },
    #[error("no such key")]
    NotFound,
    /// A key asked to rotate a key that can do more than it can
    /// (`field`, as in [`Bounds::exceeded`]).
    #[error("{field} not held")]
    BeyondCaller { field: &'static str, why: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for KeyError {
    fn from(error: StoreError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl KeyError {
    pub fn message(&self) -> String {
        match self {
            Self::Invalid(fields) => format!(
                "Some fields are invalid: {}.",
                fields.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            Self::DailyLimit { frees_at } => format!(
                "You can create at most {} keys in 24 hours. The next one can be created after {frees_at}.",
                crate::store::CREATIONS_PER_DAY
            ),
            Self::ActiveLimit { allowed } => format!(
                "Your plan allows {allowed} active keys. Revoke a key or switch to a larger plan first."
            ),
            Self::NotFound => {
                "No such key of yours, or it was revoked meanwhile: reload to see your keys as they are."
                    .to_owned()
            }
            Self::BeyondCaller { why, .. } => format!("This key cannot rotate that key. {why}"),
            Self::Internal(_) => {
                "Something went wrong on our side. Try again in a moment.".to_owned()
            }
        }
    }
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses `input` field by field, collecting every problem.
struct Validated {
    name: String,
    env: KeyEnv,
    scopes: Vec<String>,
    allowed_models: Option<Vec<String>>,
    expires_at: Option<String>,
    usage_cap: Option<i64>,
    ip_allowlist: Option<Vec<String>>,
    referrer_domains: Option<Vec<String>>,
}

/// Settings a change leaves as they are: kept without checking them again
/// against what may have changed since they were set (the owner's role, the
/// plan's models, the clock), so that renaming a key whose expiry has passed,
/// or whose plan has dropped a model, still works. A calling key's bounds
/// are always checked: a key may not change a key that can do more than it.
#[derive(Debug, Default, Clone, Copy)]
struct Kept {
    name: bool,
    scopes: bool,
    allowed_models: bool,
    expires_at: bool,
}

fn validate(
    input: &CreateKey,
    caller: Option<&Bounds>,
    models: Models<'_>,
    owner_is_admin: bool,
) -> Result<Validated, KeyError> {
    validate_kept(input, (caller, 0), models, owner_is_admin, Kept::default())
}

/// The models a key may be limited to: those in the model table and, when
/// the plan names some, on the plan.
#[derive(Clone, Copy)]
struct Models<'a> {
    plan: Option<&'a [String]>,
    /// `None` in unit tests of other fields: any name is known.
    table: Option<&'a ModelTable>,
}

impl<'a> Models<'a> {
    fn known(&self, name: &str) -> bool {
        self.table.is_none_or(|table| table.get(name).is_some())
    }

    #[cfg(test)]
    fn any(plan: Option<&'a [String]>) -> Self {
        Self { plan, table: None }
    }
}

/// `caller` is the calling key's bounds, if a key calls, and the uses the
/// key changed has made (its cap minus them is what it has left).
fn validate_kept(
    input: &CreateKey,
    (caller, used): (Option<&Bounds>, i64),
    models: Models<'_>,
    owner_is_admin: bool,
    kept: Kept,
) -> Result<Validated, KeyError> {
    let mut errors = BTreeMap::new();
    let mut fail = |field: &str, message: String| {
        errors.entry(field.to_owned()).or_insert(message);
    };

    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 64 {
        fail("name", "Give the key a name of 1 to 64 characters.".into());
    } else if !kept.name && crate::accounts::domain::hides_text(&name) {
        fail(
            "name",
            "The name contains characters that cannot be shown.".into(),
        );
    }

    let env = match input.env.as_deref() {
        None | Some("") => KeyEnv::Live,
        Some(value) => KeyEnv::parse(value).unwrap_or_else(|| {
            fail("env", "Choose live, test, staging or dev.".into());
            KeyEnv::Live
        }),
    };

    let mut scopes = input.scopes.clone().unwrap_or_else(|| vec!["chat".into()]);
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        fail("scopes", "Choose at least one scope.".into());
    }
    if let Some(bad) = scopes
        .iter()
        .find(|s| !SCOPES.contains(&s.as_str()) && s.as_str() != ADMIN_SCOPE)
    {
        fail(
            "scopes",
            format!("Unknown scope {bad:?}; use chat, keys:read or keys:write."),
        );
    } else if !kept.scopes && scopes.iter().any(|s| s == ADMIN_SCOPE) && !owner_is_admin {
        fail(
            "scopes",
            "Only administrators can give a key the admin scope.".into(),
        );
    }
    let allowed_models = input.allowed_models.clone().filter(|m| !m.is_empty());
    if let Some(list) = &allowed_models {
        if let Some(bad) = list.iter().find(|m| m.trim().is_empty() || m.len() > 128) {
            fail("allowed_models", format!("{bad:?} is not a model name."));
        } else if let Some(bad) = list
            .iter()
            .find(|m| !kept.allowed_models && !models.known(m))
        {
            fail(
                "allowed_models",
                format!("There is no model {bad:?}. GET /v1/models lists the ones there are."),
            );
        } else if let Some(plan) = models.plan.filter(|_| !kept.allowed_models)
            && let Some(bad) = list.iter().find(|m| !plan.contains(m))
        {
            fail(
                "allowed_models",
                format!("Your plan does not include the model {bad:?}."),
            );
        }
    }

    let expires_at = match (
        input.expires_at.as_deref().filter(|s| !s.is_empty()),
        input.ttl_seconds,
    ) {
        (Some(_), Some(_)) => {
            fail(
                "expires_at",
                "Give an expiry date or a TTL, not both.".into(),
            );
            None
        }
        (Some(raw), None) => {
            let parsed = DateTime::parse_from_rfc3339(raw)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    NaiveDate::from_str(raw)
                        .ok()
                        .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 999))
                        .map(|t| t.and_utc())
                });
            match parsed {
                // Stored times are four-digit years compared as text.
                Some(t) if t.year() > 9999 => {
                    fail("expires_at", "Use an expiry before the year 10000.".into());
                    None
                }
                Some(t) if t > now() || kept.expires_at => Some(timestamp(t)),
                Some(_) => {
                    fail("expires_at", "The expiry must be in the future.".into());
                    None
                }
                None => {
                    fail(
                        "expires_at",
                        "Use a date like 2027-01-31 or an RFC 3339 time.".into(),
                    );
                    None
                }
            }
        }
        (None, Some(ttl)) if (60..=10 * 365 * 86_400).contains(&ttl) => {
            Some(timestamp(now() + chrono::Duration::seconds(ttl)))
        }
        (None, Some(_)) => {
            fail(
                "ttl_seconds",
                "Use a TTL from 60 seconds to 10 years.".into(),
            );
            None
        }
        (None, None) => None,
    };

    let usage_cap = input.usage_cap;
    if usage_cap.is_some_and(|n| !(1..=1_000_000_000).contains(&n)) {
        fail(
            "usage_cap",
            "Use a cap from 1 (a one-time key) to 1,000,000,000 requests.".into(),
        );
    }

    let ip_allowlist = input
        .ip_allowlist
        .clone()
        .filter(|l| !l.is_empty())
        .map(|list| {
            list.iter()
                .map(|entry| entry.trim().to_owned())
                .collect::<Vec<_>>()
        });
    if let Some(list) = &ip_allowlist {
        if list.len() > 100 {
            fail("ip_allowlist", "Use at most 100 entries.".into());
        }
        let bad: Vec<&String> = list
            .iter()
            .filter(|e| crate::gateway::client_ip::parse_network(e).is_none())
            .collect();
        if !bad.is_empty() {
            fail(
                "ip_allowlist",
                refused_entries(
                    &bad,
                    "is not an IP address or CIDR range",
                    "are not IP addresses or CIDR ranges",
                ),
            );
        }
    }

    let referrer_domains = input
        .referrer_domains
        .clone()
        .filter(|l| !l.is_empty())
        .map(|list| {
            list.iter()
                .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect::<Vec<_>>()
        });
    if let Some(list) = &referrer_domains {
        let valid = |d: &str| {
            let host = d.strip_prefix("*.").unwrap_or(d);
            !host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        };
        if list.len() > 50 {
            fail("referrer_domains", "Use at most 50 domains.".into());
        }
        let bad: Vec<&String> = list.iter().filter(|d| !valid(d)).collect();
        if !bad.is_empty() {
            fail(
                "referrer_domains",
                refused_entries(
                    &bad,
                    "is not a domain like app.example.com or *.example.com",
                    "are not domains like app.example.com or *.example.com",
                ),
            );
        }
    }

    if let Some(bounds) = caller {
        let reach = Reach {
            scopes: &scopes,
            models: allowed_models.as_deref(),
            expires_at: expires_at.as_deref(),
            // Saturating: a cap out of range is refused above but still arrives here.
            uses_left: usage_cap.map(|cap| cap.saturating_sub(used)),
            used,
            ip_allowlist: ip_allowlist.as_deref(),
            referrers: referrer_domains.as_deref(),
        };
        for (field, why) in bounds.exceeded(&reach) {
            fail(field, why);
        }
    }

    if errors.is_empty() {
        Ok(Validated {
            name,
            env,
            scopes,
            allowed_models,
            expires_at,
            usage_cap,
            ip_allowlist,
            referrer_domains,
        })
    } else {
        Err(KeyError::Invalid(errors))
    }
}

fn to_json(list: &Option<Vec<String>>) -> Option<String> {
    list.as_ref().map(|l| json!(l).to_string())
}

fn from_json(text: &Option<String>) -> Option<Vec<String>> {
    text.as_deref().and_then(|t| serde_json::from_str(t).ok())
}

/// A plan as its viewers see it; `current_plan_id` marks the viewer's own.
pub fn plan_view(plan: &crate::store::PlanRecord, current_plan_id: i64) -> PlanView {
    PlanView {
        id: plan.slug.clone(),
        name: plan.name.clone(),
        description: plan.description.clone(),
        requests_per_minute: plan.requests_per_minute,
        requests_per_hour: plan.requests_per_hour,
        requests_per_day: plan.requests_per_day,
        tokens_per_minute: plan.tokens_per_minute,
        max_parallel: plan.max_parallel,
        monthly_credits_micros: plan.monthly_credits,
        max_active_keys: plan.max_active_keys,
        allowed_models: plan.allowed_models(),
        current: plan.id == current_plan_id,
        offered: plan.is_public && !plan.retired,
    }
}

/// Every model in the table, in its order, with its prices and whether
/// `plan` includes it.
pub fn model_prices(table: &ModelTable, plan: &crate::store::PlanRecord) -> Vec<ModelPrice> {
    let plan_models = plan.allowed_models();
    table
        .iter()
        .map(|model| ModelPrice {
            name: model.name.clone(),
            input_per_1k: crate::credits::format_credits(model.prices.input_per_1k),
            output_per_1k: crate::credits::format_credits(model.prices.output_per_1k),
            on_plan: crate::store::PlanRecord::list_includes(plan_models.as_deref(), &model.name),
        })
        .collect()
}

/// The public plans with the user's own marked; their own comes first when
/// it is not among them (private, or retired since they joined it).
pub async fn plans_for(store: &Store, user_id: i64) -> Result<Vec<PlanView>, KeyError> {
    let mine = store.plan_of_user(user_id).await?;
    let mut plans: Vec<PlanView> = store
        .public_plans()
        .await?
        .iter()
        .map(|p| plan_view(p, mine.id))
        .collect();
    // A private or retired plan an admin put the user on is shown too, first.
    if !plans.iter().any(|p| p.current) {
        plans.insert(0, plan_view(&mine, mine.id));
    }
    Ok(plans)
}

/// Why a plan switch was refused.
pub enum PlanSwitch {
    Switched,
    NoSuchPlan,
    TooManyActiveKeys { active: i64, allowed: i64 },
}

/// Moves the user to another public plan; it applies from the next request.
pub async fn switch_plan(
    store: &Store,
    meta: &RequestMeta,
    user_id: i64,
    slug: &str,
) -> Result<PlanSwitch, KeyError> {
    let audit = AuditEvent::new("plan.change", meta)
        .actor(user_id)
        .target(format!("user:{user_id}"))
        .details(json!({ "plan": slug }));
    Ok(
        match store.switch_public_plan(user_id, slug, audit).await? {
            crate::store::PlanChange::Changed => PlanSwitch::Switched,
            crate::store::PlanChange::NoSuchPlan => PlanSwitch::NoSuchPlan,
            crate::store::PlanChange::TooManyActiveKeys { active, allowed } => {
                PlanSwitch::TooManyActiveKeys { active, allowed }
            }
        },
    )
}

impl PlanSwitch {
    /// The refusal in words, or `None` when the switch happened.
    pub fn refusal(&self, slug: &str) -> Option<String> {
        match self {
            PlanSwitch::Switched => None,
            PlanSwitch::NoSuchPlan => Some(format!("There is no public plan {slug:?}.")),
            PlanSwitch::TooManyActiveKeys { active, allowed } => Some(format!(
                "You have {active} active keys and that plan allows {allowed}. Revoke keys first."
            )),
        }
    }
}

/// A stored key's state: `revoked`, `expired`, `used_up` or `active`. Key
/// authentication refuses all but `active`; views show it.
pub fn status(record: &KeyRecord) -> &'static str {
    if record.revoked_at.is_some() {
        "revoked"
    } else if record
        .expires_at
        .as_deref()
        .is_some_and(|t| t <= timestamp(now()).as_str())
    {
        "expired"
    } else if record
        .usage_cap
        .is_some_and(|cap| record.usage_count >= cap)
    {
        "used_up"
    } else {
        "active"
    }
}

/// A stored key as its owner sees it.
pub fn view(record: &KeyRecord) -> KeyView {
    let status = status(record);
    KeyView {
        id: record.id,
        name: record.name.clone(),
        env: record.env.clone(),
        display: format!("{}…{}", record.display_prefix, record.last_four),
        scopes: serde_json::from_str(&record.scopes).unwrap_or_default(),
        allowed_models: from_json(&record.allowed_models),
        ip_allowlist: from_json(&record.ip_allowlist),
        referrer_domains: from_json(&record.referrer_domains),
        usage_cap: record.usage_cap,
        usage_count: record.usage_count,
        expires_at: record.expires_at.clone(),
        created_at: record.created_at.clone(),
        last_used_at: record.last_used_at.clone(),
        revoked_at: record.revoked_at.clone(),
        grace_until: record
            .grace_until
            .clone()
            .filter(|until| status == "active" && until.as_str() > timestamp(now()).as_str()),
        status: status.to_owned(),
    }
}

async fn owner_is_admin(store: &Store, user_id: i64) -> Result<bool, KeyError> {
    Ok(store.user_by_id(user_id).await?.is_some_and(|u| u.is_admin))
}

/// Creates a key for `user_id`, limited to models of `table` if to any.
/// `caller` is set when the caller is itself a key, which gives no more than
/// it has (see [`Bounds`]): what the input leaves unset is taken from it.
pub async fn create(
    store: &Store,
    hasher: &KeyHasher,
    meta: &RequestMeta,
    table: &ModelTable,
    user_id: i64,
    input: &CreateKey,
    caller: Option<&Bounds>,
) -> Result<IssuedKey, KeyError> {
    if caller.is_some_and(Bounds::is_capped) {
        return Err(capped_caller(
            "A key with a usage cap cannot create keys: each would have uses of its own. Create it signed in, or with a key without a cap.",
        ));
    }
    let plan = store.plan_of_user(user_id).await?;
    let plan_models = plan.allowed_models();
    let filled = caller.map(|bounds| {
        let mut filled = bounds.fill(input);
        // Models taken from the caller that the plan has since dropped.
        if input.allowed_models.as_ref().is_none_or(Vec::is_empty)
            && let (Some(models), Some(plan)) = (&mut filled.allowed_models, &plan_models)
        {
            models.retain(|m| plan.contains(m));
        }
        filled
    });
    let models = Models {
        plan: plan_models.as_deref(),
        table: Some(table),
    };
    let valid = validate(
        filled.as_ref().unwrap_or(input),
        caller,
        models,
        owner_is_admin(store, user_id).await?,
    )?;
    let key = ApiKey::generate(valid.env).map_err(|e| KeyError::Internal(e.to_string()))?;
    let hash = hasher.hash(&key);
    let audit = AuditEvent::new("key.create", meta)
        .actor(user_id)
        .details(json!({
            "name": valid.name, "env": valid.env.as_str(), "scopes": valid.scopes,
        }));
    let created = store
        .create_key(
            NewKey {
                user_id,
                name: &valid.name,
                env: valid.env.as_str(),
                secret_hash: &hash,
                display_prefix: &key.display_prefix(),
                last_four: &key.last_four(),
                scopes: json!(valid.scopes).to_string(),
                allowed_models: to_json(&valid.allowed_models),
                ip_allowlist: to_json(&valid.ip_allowlist),
                referrer_domains: to_json(&valid.referrer_domains),
                usage_cap: valid.usage_cap,
                expires_at: valid.expires_at,
            },
            audit,
        )
        .await?;
    match created {
        KeyCreation::Created(record) => Ok(IssuedKey {
            key: view(&record),
            secret: key.expose().to_owned(),
        }),
        KeyCreation::DailyLimit { frees_at } => Err(KeyError::DailyLimit { frees_at }),
        KeyCreation::ActiveLimit { allowed } => Err(KeyError::ActiveLimit { allowed }),
    }
}

pub async fn list(store: &Store, user_id: i64) -> Result<Vec<KeyView>, KeyError> {
    Ok(store
        .keys_of_user(user_id)
        .await?
        .iter()
        .map(view)
        .collect())
}

pub async fn get(store: &Store, user_id: i64, key_id: i64) -> Result<KeyView, KeyError> {
    store
        .key_of_user(user_id, key_id)
        .await?
        .map(|k| view(&k))
        .ok_or(KeyError::NotFound)
}

/// Changes a key's name or restrictions, validated as at creation. Only the
/// fields in `changes` change: an edit that lands meanwhile is read again and
/// kept, not overwritten with what was read before it.
pub async fn update(
    store: &Store,
    meta: &RequestMeta,
    table: &ModelTable,
    user_id: i64,
    key_id: i64,
    changes: &UpdateKey,
    caller: Option<&Bounds>,
) -> Result<KeyView, KeyError> {
    // Each try loses only to another edit that committed since its read, so
    // with fewer than this many sent at once, one try always goes through.
    for _ in 0..32 {
        let current = store
            .key_of_user(user_id, key_id)
            .await?
            .ok_or(KeyError::NotFound)?;
        match update_from(store, meta, table, &current, changes, caller).await? {
            KeyUpdate::Updated(updated) => return Ok(view(&updated)),
            KeyUpdate::Missing => return Err(KeyError::NotFound),
            KeyUpdate::ActiveLimit { allowed } => return Err(KeyError::ActiveLimit { allowed }),
            KeyUpdate::ChangedMeanwhile => continue,
        }
    }
    Err(KeyError::Internal(format!(
        "key {key_id} kept changing while it was updated"
    )))
}

/// A refusal for a key with a usage cap, on the `usage_cap` field.
fn capped_caller(message: &str) -> KeyError {
    KeyError::Invalid(BTreeMap::from([(
        "usage_cap".to_owned(),
        message.to_owned(),
    )]))
}

/// One try of [`update`], from the key as `current` reads.
async fn update_from(
    store: &Store,
    meta: &RequestMeta,
    table: &ModelTable,
    current: &KeyRecord,
    changes: &UpdateKey,
    caller: Option<&Bounds>,
) -> Result<KeyUpdate, KeyError> {
    let (user_id, key_id) = (current.user_id, current.id);
    let raises_cap = changes
        .usage_cap
        .is_some_and(|cap| current.usage_cap.is_none_or(|now| cap > now));
    if raises_cap && caller.is_some_and(Bounds::is_capped) {
        return Err(capped_caller(
            "A key with a usage cap cannot raise a key's cap: the uses would be new ones. Raise it signed in.",
        ));
    }
    let existing = view(current);
    let merged = CreateKey {
        name: changes.name.clone().unwrap_or(existing.name),
        env: Some(existing.env),
        scopes: Some(changes.scopes.clone().unwrap_or(existing.scopes)),
        allowed_models: changes.allowed_models.clone().or(existing.allowed_models),
        expires_at: changes.expires_at.clone().or(existing.expires_at),
        ttl_seconds: None,
        usage_cap: changes.usage_cap.or(existing.usage_cap),
        ip_allowlist: changes.ip_allowlist.clone().or(existing.ip_allowlist),
        referrer_domains: changes
            .referrer_domains
            .clone()
            .or(existing.referrer_domains),
    };
    let plan_models = store.plan_of_user(user_id).await?.allowed_models();
    let kept = Kept {
        name: changes.name.is_none(),
        scopes: changes.scopes.is_none(),
        allowed_models: changes.allowed_models.is_none(),
        expires_at: changes.expires_at.is_none(),
    };
    let models = Models {
        plan: plan_models.as_deref(),
        table: Some(table),
    };
    let valid = validate_kept(
        &merged,
        (caller, current.usage_count),
        models,
        owner_is_admin(store, user_id).await?,
        kept,
    )?;
    let changed: Vec<&str> = [
        ("name", changes.name.is_some()),
        ("scopes", changes.scopes.is_some()),
        ("allowed_models", changes.allowed_models.is_some()),
        ("expires_at", changes.expires_at.is_some()),
        ("usage_cap", changes.usage_cap.is_some()),
        ("ip_allowlist", changes.ip_allowlist.is_some()),
        ("referrer_domains", changes.referrer_domains.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, set)| set.then_some(field))
    .collect();
    let audit = AuditEvent::new("key.update", meta)
        .actor(user_id)
        .target(format!("key:{key_id}"))
        .details(json!({ "fields": changed }));
    Ok(store
        .update_key(
            current,
            KeySettings {
                name: &valid.name,
                scopes: json!(valid.scopes).to_string(),
                allowed_models: to_json(&valid.allowed_models),
                ip_allowlist: to_json(&valid.ip_allowlist),
                referrer_domains: to_json(&valid.referrer_domains),
                usage_cap: valid.usage_cap,
                expires_at: valid.expires_at,
            },
            audit,
        )
        .await?)
}

/// The most keys one request may revoke or rotate: few enough that a request
/// cannot hold the one database writer for long (more than the plans ship
/// with; an account allowed more revokes them in several requests).
pub const MOST_KEYS_AT_ONCE: usize = 500;

/// Refuses a list of keys longer than [`MOST_KEYS_AT_ONCE`].
fn at_most_a_batch(key_ids: &[i64]) -> Result<(), KeyError> {
    if key_ids.len() > MOST_KEYS_AT_ONCE {
        return Err(KeyError::Invalid(BTreeMap::from([(
            "ids".to_owned(),
            format!("Select at most {MOST_KEYS_AT_ONCE} keys at once."),
        )])));
    }
    Ok(())
}

/// Revokes the listed keys; effective on the next request.
pub async fn revoke(
    store: &Store,
    meta: &RequestMeta,
    user_id: i64,
    key_ids: &[i64],
) -> Result<u64, KeyError> {
    revoke_by(store, meta, user_id, user_id, key_ids).await
}

/// [`revoke`] done by `actor_id` (the owner or an admin, named in the audit log).
pub async fn revoke_by(
    store: &Store,
    meta: &RequestMeta,
    actor_id: i64,
    user_id: i64,
    key_ids: &[i64],
) -> Result<u64, KeyError> {
    at_most_a_batch(key_ids)?;
    let each = AuditEvent::new("key.revoke", meta).actor(actor_id);
    Ok(store.revoke_keys(user_id, key_ids, &each).await?)
}

/// Ends a key's rotation grace period early: the previous secret stops
/// working from the next request. A key with none running is left as it is.
pub async fn end_grace(
    store: &Store,
    meta: &RequestMeta,
    user_id: i64,
    key_id: i64,
) -> Result<KeyView, KeyError> {
    let audit = AuditEvent::new("key.end_grace", meta)
        .actor(user_id)
        .target(format!("key:{key_id}"));
    // Only the user's keys are touched: another's answers 404 below.
    store.end_grace(user_id, key_id, &audit).await?;
    get(store, user_id, key_id).await
}

/// Who rotates keys: the owner (signed in), the owner with one of their keys
/// (which may rotate only keys within its own [`Bounds`]: a new secret is as
/// good as a new key, which it could not create either), or an admin,
/// signed in or with an admin key (`key`). An admin key gets no secret of a
/// key with more reach than its own but for scopes, which the admin scope
/// covers: a key limited to one address or an hour would otherwise take an
/// account's unrestricted admin key.
#[derive(Debug, Clone, Copy)]
pub enum RotatedBy<'a> {
    Owner,
    OwnerKey(&'a Bounds),
    Admin {
        admin_id: i64,
        key: Option<&'a Bounds>,
    },
}

/// Rotates one key; see [`rotate_many`]. `caller` is the bounds of the key
/// that asks, if a key asks (see [`RotatedBy::OwnerKey`]).
pub async fn rotate(
    store: &Store,
    hasher: &KeyHasher,
    meta: &RequestMeta,
    user_id: i64,
    key_id: i64,
    grace_secs: i64,
    caller: Option<&Bounds>,
) -> Result<IssuedKey, KeyError> {
    let by = caller.map_or(RotatedBy::Owner, RotatedBy::OwnerKey);
    let mut issued = rotate_as(store, hasher, meta, by, user_id, &[key_id], grace_secs).await?;
    issued.pop().ok_or(KeyError::NotFound)
}

/// Gives each key a new secret with the same settings; with `grace_secs` the
/// old secret keeps working that long. All or nothing: when one key is missing,
/// another user's or revoked, no key changes, so no new secret goes unseen.
pub async fn rotate_many(
    store: &Store,
    hasher: &KeyHasher,
    meta: &RequestMeta,
    user_id: i64,
    key_ids: &[i64],
    grace_secs: i64,
) -> Result<Vec<IssuedKey>, KeyError> {
    at_most_a_batch(key_ids)?;
    rotate_as(
        store,
        hasher,
        meta,
        RotatedBy::Owner,
        user_id,
        key_ids,
        grace_secs,
    )
    .await
}

/// [`rotate_many`] done `by` the owner, one of their keys or an admin (named
/// in the audit log).
pub async fn rotate_as(
    store: &Store,
    hasher: &KeyHasher,
    meta: &RequestMeta,
    by: RotatedBy<'_>,
    user_id: i64,
    key_ids: &[i64],
    grace_secs: i64,
) -> Result<Vec<IssuedKey>, KeyError> {
    if !(0..=MAX_GRACE_SECS).contains(&grace_secs) {
        return Err(KeyError::Invalid(BTreeMap::from([(
            "grace_seconds".to_owned(),
            "Use a grace period from 0 to 86400 seconds (24 hours).".to_owned(),
        )])));
    }
    let actor_id = match by {
        RotatedBy::Admin { admin_id, .. } => admin_id,
        RotatedBy::Owner | RotatedBy::OwnerKey { .. } => user_id,
    };
    let mut fresh = Vec::with_capacity(key_ids.len());
    for &key_id in key_ids {
        let current = store
            .key_of_user(user_id, key_id)
            .await?
            .ok_or(KeyError::NotFound)?;
        let (bounds, scopes_count) = match by {
            RotatedBy::OwnerKey(bounds) => (Some(bounds), true),
            RotatedBy::Admin { key, .. } => (key, false),
            RotatedBy::Owner => (None, false),
        };
        if let Some(bounds) = bounds {
            let scopes: Vec<String> = serde_json::from_str(&current.scopes)
                .map_err(|e| KeyError::Internal(format!("key {key_id}'s scopes: {e}")))?;
            let rotated = Bounds::of_key(&current, scopes);
            let beyond = bounds
                .exceeded(&rotated.reach())
                .into_iter()
                .find(|(field, _)| scopes_count || *field != "scopes");
            if let Some((field, why)) = beyond {
                return Err(KeyError::BeyondCaller { field, why });
            }
        }
        let env = KeyEnv::parse(&current.env).unwrap_or(KeyEnv::Live);
        let key = ApiKey::generate(env).map_err(|e| KeyError::Internal(e.to_string()))?;
        let parts = (hasher.hash(&key), key.display_prefix(), key.last_four());
        fresh.push((key_id, key, parts));
    }
    let rotations: Vec<_> = fresh
        .iter()
        .map(|(key_id, _, (hash, display_prefix, last_four))| {
            let audit = AuditEvent::new("key.rotate", meta)
                .actor(actor_id)
                .target(format!("key:{key_id}"))
                .details(json!({ "grace_seconds": grace_secs }));
            let secret = NewSecret {
                hash,
                display_prefix,
                last_four,
            };
            (*key_id, secret, audit)
        })
        .collect();
    let rotated = store
        .rotate_keys(user_id, &rotations, grace_secs)
        .await?
        .ok_or(KeyError::NotFound)?;
    Ok(rotated
        .iter()
        .zip(&fresh)
        .map(|(record, (_, key, _))| IssuedKey {
            key: view(record),
            secret: key.expose().to_owned(),
        })
        .collect())
}

/// A list's refused entries, each quoted, then what is wrong with them, said
/// of one or of several: `"a" is …`, `"a" and "b" are …`, `"a", "b", "c"
/// and 2 more are …`. Every one is named (a few at most), so a form does not
/// refuse them one at a time.
fn refused_entries(bad: &[&String], of_one: &str, of_several: &str) -> String {
    const NAMED: usize = 3;
    let mut names: Vec<String> = bad.iter().take(NAMED).map(|e| format!("{e:?}")).collect();
    if bad.len() > NAMED {
        names.push(format!("{} more", bad.len() - NAMED));
    }
    let last = names.pop().unwrap_or_default();
    if names.is_empty() {
        format!("{last} {of_one}.")
    } else {
        format!("{} and {last} {of_several}.", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str) -> CreateKey {
        CreateKey {
            name: name.into(),
            ..CreateKey::default()
        }
    }

    #[test]
    fn every_refused_entry_of_a_list_is_named() {
        let named = |entries: &[&str]| {
            let owned: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
            refused_entries(&owned.iter().collect::<Vec<_>>(), "is bad", "are bad")
        };
        assert_eq!(named(&["foo"]), r#""foo" is bad."#);
        assert_eq!(named(&["foo", "bar"]), r#""foo" and "bar" are bad."#);
        assert_eq!(named(&["a", "b", "c"]), r#""a", "b" and "c" are bad."#);
        assert_eq!(
            named(&["a", "b", "c", "d", "e"]),
            r#""a", "b", "c" and 2 more are bad."#
        );
    }

    #[test]
    fn defaults_are_a_live_chat_key_without_restrictions() {
        let v = validate(&input(" My key "), None, Models::any(None), false).unwrap();
        assert_eq!(v.name, "My key");
        assert_eq!(v.env, KeyEnv::Live);
        assert_eq!(v.scopes, ["chat"]);
        assert!(v.expires_at.is_none() && v.ip_allowlist.is_none() && v.usage_cap.is_none());
    }

    #[test]
    fn only_admins_grant_the_admin_scope() {
        let wants = CreateKey {
            name: "ops".into(),
            scopes: Some(vec!["admin".into(), "chat".into()]),
            ..CreateKey::default()
        };
        assert!(validate(&wants, None, Models::any(None), true).is_ok());
        let Err(KeyError::Invalid(fields)) = validate(&wants, None, Models::any(None), false)
        else {
            panic!("a user cannot grant admin");
        };
        assert!(fields["scopes"].contains("Only administrators"));
        // A key of an admin still grants only scopes it has itself.
        let own = Bounds::with_scopes(&["chat"]);
        assert!(validate(&wants, Some(&own), Models::any(None), true).is_err());
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = CreateKey {
            name: "".into(),
            env: Some("prod".into()),
            scopes: Some(vec!["admin".into()]),
            expires_at: Some("2001-01-01".into()),
            usage_cap: Some(0),
            ip_allowlist: Some(vec!["10.0.0.0/33".into()]),
            referrer_domains: Some(vec!["https://x.com/".into()]),
            ..CreateKey::default()
        };
        let Err(KeyError::Invalid(fields)) = validate(&bad, None, Models::any(None), false) else {
            panic!("expected field errors");
        };
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "env",
                "expires_at",
                "ip_allowlist",
                "name",
                "referrer_domains",
                "scopes",
                "usage_cap"
            ]
        );
    }

    #[test]
    fn a_cap_far_out_of_range_is_refused_for_a_used_key_called_by_a_key() {
        let wants = CreateKey {
            name: "k".into(),
            usage_cap: Some(i64::MIN),
            ..CreateKey::default()
        };
        let own = Bounds::with_scopes(&["keys:write"]);
        let Err(KeyError::Invalid(fields)) = validate_kept(
            &wants,
            (Some(&own), 1),
            Models::any(None),
            false,
            Kept::default(),
        ) else {
            panic!("expected field errors");
        };
        assert!(fields.contains_key("usage_cap"), "{fields:?}");
    }

    #[test]
    fn a_key_name_may_not_hide_or_reorder_text() {
        let Err(KeyError::Invalid(fields)) =
            validate(&input("prod\u{202E}ved"), None, Models::any(None), false)
        else {
            panic!("a right-to-left override was accepted");
        };
        assert!(fields["name"].contains("cannot be shown"), "{fields:?}");
        // A name stored before the rule is kept by a change that leaves it.
        let kept = Kept {
            name: true,
            ..Kept::default()
        };
        assert!(
            validate_kept(
                &input("prod\u{202E}ved"),
                (None, 0),
                Models::any(None),
                false,
                kept
            )
            .is_ok()
        );
    }

    #[test]
    fn restrictions_parse_addresses_ranges_dates_and_domains() {
        let ok = CreateKey {
            name: "k".into(),
            ip_allowlist: Some(vec![
                "203.0.113.7".into(),
                "10.0.0.0/8".into(),
                "2001:db8::/32".into(),
            ]),
            referrer_domains: Some(vec!["App.Example.com".into(), "*.example.org".into()]),
            expires_at: Some("2999-12-31".into()),
            usage_cap: Some(1),
            ..CreateKey::default()
        };
        let v = validate(&ok, None, Models::any(None), false).unwrap();
        assert_eq!(
            v.referrer_domains.unwrap(),
            ["app.example.com", "*.example.org"]
        );
        assert!(v.expires_at.unwrap().starts_with("2999-12-31T23:59:59"));
    }

    #[test]
    fn an_expiry_past_the_year_9999_is_refused() {
        for late in ["+10000-01-01", "9999-12-31T23:59:59-01:00"] {
            let key = CreateKey {
                name: "k".into(),
                expires_at: Some(late.into()),
                ..CreateKey::default()
            };
            let Err(KeyError::Invalid(fields)) = validate(&key, None, Models::any(None), false)
            else {
                panic!("{late} was accepted");
            };
            assert!(fields["expires_at"].contains("10000"), "{fields:?}");
        }
    }

    #[test]
    fn a_key_cannot_grant_scopes_it_lacks() {
        let wants = CreateKey {
            name: "child".into(),
            scopes: Some(vec!["chat".into(), "keys:write".into()]),
            ..CreateKey::default()
        };
        let own = Bounds::with_scopes(&["keys:write"]);
        let Err(KeyError::Invalid(fields)) = validate(&wants, Some(&own), Models::any(None), false)
        else {
            panic!("expected a scope error");
        };
        assert!(fields["scopes"].contains("\"chat\""));
    }

    #[test]
    fn models_must_be_within_the_plan() {
        let wants = CreateKey {
            name: "k".into(),
            allowed_models: Some(vec!["gpt-big".into()]),
            ..CreateKey::default()
        };
        let plan = vec!["demo".to_owned()];
        assert!(validate(&wants, None, Models::any(Some(&plan)), false).is_err());
        assert!(validate(&wants, None, Models::any(None), false).is_ok());
    }

    /// What a change keeps is not checked again against a plan, role or
    /// clock that moved since; what it sets is.
    #[test]
    fn kept_settings_are_not_checked_again() {
        let stored = CreateKey {
            name: "renamed".into(),
            scopes: Some(vec!["admin".into(), "chat".into()]),
            allowed_models: Some(vec!["gpt-old".into()]),
            expires_at: Some("2020-01-01T00:00:00.000Z".into()),
            ..CreateKey::default()
        };
        let plan = vec!["demo".to_owned()];
        let own = Bounds::with_scopes(&["keys:write"]);
        let all_kept = Kept {
            name: true,
            scopes: true,
            allowed_models: true,
            expires_at: true,
        };
        let v = validate_kept(
            &stored,
            (None, 0),
            Models::any(Some(&plan)),
            false,
            all_kept,
        )
        .unwrap();
        assert_eq!(v.expires_at.as_deref(), Some("2020-01-01T00:00:00.000Z"));
        assert_eq!(v.scopes, ["admin", "chat"]);
        // A key lacking the scopes may not change such a key at all.
        let Err(KeyError::Invalid(fields)) = validate_kept(
            &stored,
            (Some(&own), 0),
            Models::any(Some(&plan)),
            false,
            all_kept,
        ) else {
            panic!("a weaker key changed a stronger one");
        };
        assert!(fields.contains_key("scopes"), "{fields:?}");

        let Err(KeyError::Invalid(fields)) = validate_kept(
            &stored,
            (Some(&own), 0),
            Models::any(Some(&plan)),
            false,
            Kept::default(),
        ) else {
            panic!("set anew, the same settings are refused");
        };
        let named: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(named, ["allowed_models", "expires_at", "scopes"]);
    }
}
