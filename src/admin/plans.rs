//! Plan administration: create, edit, retire and restore plans. Forms send
//! text; [`PlanForm::parse`] checks every field once and says what is wrong
//! with each, then the store writes the plan and its audit event together.

use std::collections::BTreeMap;

use serde_json::json;

use super::service::{AdminError, MAX_LIMIT, valid_limit};
use crate::{
    credits::{MICROS_PER_CREDIT, format_credits, parse_credits},
    pages::admin_plans::PlanForm,
    request_meta::RequestMeta,
    store::{AuditEvent, PlanSettings, PlanSummary, Retirement, Store, StoreError},
};

/// The most credits a plan can grant a month.
pub const MAX_MONTHLY_CREDITS: i64 = crate::credits::MOST_CREDITS_GRANTED;

/// A plan's id: 2 to 32 of `a-z`, `0-9` and `-`, starting with a letter.
pub fn parse_slug(text: &str) -> Result<String, String> {
    let slug = text.trim().to_ascii_lowercase();
    let ok = (2..=32).contains(&slug.len())
        && slug.starts_with(|c: char| c.is_ascii_lowercase())
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(slug)
    } else {
        Err("Use 2 to 32 lowercase letters, digits and dashes, starting with a letter.".to_owned())
    }
}

impl PlanForm {
    /// Checks every field; `models` are the names in the model table.
    pub fn parse<'a>(
        &self,
        models: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<PlanSettings, BTreeMap<String, String>> {
        let mut fields = BTreeMap::new();
        let mut fail = |name: &str, message: String| {
            fields.insert(name.to_owned(), message);
        };
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 60 {
            fail("name", "Give a name of 1 to 60 characters.".to_owned());
        }
        let description = self.description.trim().to_owned();
        if description.chars().count() > 300 {
            fail(
                "description",
                "Keep the description to 300 characters.".to_owned(),
            );
        }
        let count = |text: &str| {
            text.trim()
                .replace('_', "")
                .parse::<i64>()
                .ok()
                .filter(|n| valid_limit(*n))
        };
        let whole = format!("Give a whole number from 1 to {MAX_LIMIT}.");
        let mut required = |name: &str, text: &str| {
            count(text).unwrap_or_else(|| {
                fail(name, whole.clone());
                1
            })
        };
        let requests_per_minute = required("requests_per_minute", &self.requests_per_minute);
        let requests_per_hour = required("requests_per_hour", &self.requests_per_hour);
        let requests_per_day = required("requests_per_day", &self.requests_per_day);
        let max_active_keys = required("max_active_keys", &self.max_active_keys);
        let mut optional = |name: &str, text: &str| {
            if text.trim().is_empty() {
                return None;
            }
            let n = count(text);
            if n.is_none() {
                fail(
                    name,
                    format!(
                        "Give a whole number from 1 to {MAX_LIMIT}, or leave it empty for no limit."
                    ),
                );
            }
            n
        };
        let tokens_per_minute = optional("tokens_per_minute", &self.tokens_per_minute);
        let max_parallel = optional("max_parallel", &self.max_parallel);
        // Only between numbers that parsed, and on the window that breaks
        // the order.
        let windows = [
            &self.requests_per_minute,
            &self.requests_per_hour,
            &self.requests_per_day,
        ];
        if windows.iter().all(|text| count(text).is_some()) {
            let order = "A longer window cannot allow fewer requests than a shorter one (minute ≤ hour ≤ day).";
            if requests_per_hour < requests_per_minute {
                fail("requests_per_hour", order.to_owned());
            } else if requests_per_day < requests_per_hour {
                fail("requests_per_day", order.to_owned());
            }
        }
        let monthly_credits = parse_credits(&self.monthly_credits)
            .filter(|m| *m <= MAX_MONTHLY_CREDITS * MICROS_PER_CREDIT)
            .unwrap_or_else(|| {
                fail(
                    "monthly_credits",
                    format!("Give credits from 0 to {MAX_MONTHLY_CREDITS}, at most six decimals."),
                );
                0
            });
        let named: Vec<String> = self
            .allowed_models
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect();
        let unknown: Vec<&str> = named
            .iter()
            .map(String::as_str)
            .filter(|m| !models.clone().into_iter().any(|known| known == *m))
            .collect();
        if !unknown.is_empty() {
            fail(
                "allowed_models",
                format!("Not in the model table: {}.", unknown.join(", ")),
            );
        }
        // Empty: after the other plans (0 put a new plan before the classics).
        let sort_order = match self.sort_order.trim() {
            "" => None,
            text => text.parse::<i64>().map(Some).unwrap_or_else(|_| {
                fail(
                    "sort_order",
                    "Give a whole number (lower comes first), or leave it empty for last."
                        .to_owned(),
                );
                None
            }),
        };
        if !fields.is_empty() {
            return Err(fields);
        }
        let mut allowed = named;
        let mut seen = std::collections::HashSet::new();
        allowed.retain(|m| seen.insert(m.clone()));
        Ok(PlanSettings {
            name,
            description,
            requests_per_minute,
            requests_per_hour,
            requests_per_day,
            tokens_per_minute,
            max_parallel,
            monthly_credits,
            max_active_keys,
            allowed_models: (!allowed.is_empty()).then_some(allowed),
            is_public: self.is_public.is_some(),
            sort_order,
        })
    }

    /// The form filled with a plan's current settings, for editing.
    pub fn of(summary: &PlanSummary) -> Self {
        let p = &summary.plan;
        let optional = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
        Self {
            name: p.name.clone(),
            description: p.description.clone(),
            requests_per_minute: p.requests_per_minute.to_string(),
            requests_per_hour: p.requests_per_hour.to_string(),
            requests_per_day: p.requests_per_day.to_string(),
            tokens_per_minute: optional(p.tokens_per_minute),
            max_parallel: optional(p.max_parallel),
            monthly_credits: format_credits(p.monthly_credits),
            max_active_keys: p.max_active_keys.to_string(),
            allowed_models: p.allowed_models().unwrap_or_default().join(", "),
            is_public: p.is_public.then(|| "on".to_owned()),
            sort_order: summary.sort_order.to_string(),
        }
    }
}

fn audit(action: &'static str, meta: &RequestMeta, admin_id: i64, slug: &str) -> AuditEvent {
    AuditEvent::new(action, meta)
        .actor(admin_id)
        .target(format!("plan:{slug}"))
}

fn settings_details(s: &PlanSettings) -> serde_json::Value {
    json!({
        "name": s.name,
        "requests_per_minute": s.requests_per_minute,
        "requests_per_hour": s.requests_per_hour,
        "requests_per_day": s.requests_per_day,
        "tokens_per_minute": s.tokens_per_minute,
        "max_parallel": s.max_parallel,
        "monthly_credits": format_credits(s.monthly_credits),
        "max_active_keys": s.max_active_keys,
        "allowed_models": s.allowed_models,
        "is_public": s.is_public,
    })
}

/// Adds a plan; returns its id (slug).
pub async fn create_plan<'a>(
    store: &Store,
    models: impl IntoIterator<Item = &'a str> + Clone,
    meta: &RequestMeta,
    admin_id: i64,
    slug: &str,
    form: &PlanForm,
) -> Result<String, AdminError> {
    let slug_checked = parse_slug(slug);
    let settings = form.parse(models);
    let (slug, settings) = match (slug_checked, settings) {
        (Ok(slug), Ok(settings)) => (slug, settings),
        (slug, settings) => {
            let mut fields = settings.err().unwrap_or_default();
            if let Err(message) = slug {
                fields.insert("slug".to_owned(), message);
            }
            return Err(AdminError::Invalid(fields));
        }
    };
    let event = audit("plan.create", meta, admin_id, &slug).details(settings_details(&settings));
    match store.create_plan(&slug, &settings, &event).await {
        Ok(()) => Ok(slug),
        Err(StoreError::Duplicate(_)) => Err(AdminError::Invalid(BTreeMap::from([(
            "slug".to_owned(),
            "A plan with this id exists already.".to_owned(),
        )]))),
        Err(e) => Err(e.into()),
    }
}

/// Changes a plan's settings; its users get them from their next request.
pub async fn update_plan<'a>(
    store: &Store,
    models: impl IntoIterator<Item = &'a str> + Clone,
    meta: &RequestMeta,
    admin_id: i64,
    slug: &str,
    form: &PlanForm,
) -> Result<(), AdminError> {
    let settings = form.parse(models).map_err(AdminError::Invalid)?;
    let event = audit("plan.update", meta, admin_id, slug).details(settings_details(&settings));
    if store.update_plan(slug, &settings, &event).await? {
        Ok(())
    } else {
        Err(AdminError::PlanNotFound)
    }
}

/// Retires a plan (no new users; its users stay until moved) or restores it.
pub async fn set_retired(
    store: &Store,
    meta: &RequestMeta,
    admin_id: i64,
    slug: &str,
    retire: bool,
) -> Result<(), AdminError> {
    let action = if retire {
        "plan.retire"
    } else {
        "plan.restore"
    };
    match store
        .set_plan_retired(slug, retire, &audit(action, meta, admin_id, slug))
        .await?
    {
        Retirement::Done => Ok(()),
        Retirement::NoSuchPlan => Err(AdminError::PlanNotFound),
        Retirement::IsDefault => Err(AdminError::Conflict(
            "New accounts get the default plan, so it cannot be retired.".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> PlanForm {
        PlanForm {
            name: "Team".into(),
            requests_per_minute: "10".into(),
            requests_per_hour: "100".into(),
            requests_per_day: "1_000".into(),
            monthly_credits: "12.5".into(),
            max_active_keys: "4".into(),
            allowed_models: "demo, gpt, demo".into(),
            is_public: Some("on".into()),
            ..PlanForm::default()
        }
    }

    #[test]
    fn a_plan_form_parses_once_into_settings() {
        let s = form().parse(["demo", "gpt"]).unwrap();
        assert_eq!(s.requests_per_day, 1000);
        assert_eq!(s.monthly_credits, 12_500_000);
        assert_eq!(
            s.allowed_models,
            Some(vec!["demo".to_owned(), "gpt".to_owned()])
        );
        assert_eq!((s.tokens_per_minute, s.max_parallel), (None, None));
        assert!(s.is_public);
        let round_trip = PlanForm::of(&PlanSummary {
            plan: crate::store::PlanRecord {
                id: 1,
                slug: "team".into(),
                name: s.name.clone(),
                description: String::new(),
                requests_per_minute: 10,
                requests_per_hour: 100,
                requests_per_day: 1000,
                tokens_per_minute: None,
                max_parallel: None,
                monthly_credits: 12_500_000,
                max_active_keys: 4,
                allowed_models: Some("[\"demo\",\"gpt\"]".into()),
                is_public: true,
                is_default: false,
                limits_overridden: false,
                retired: false,
            },
            sort_order: 0,
            retired_at: None,
            users: 0,
        });
        // The stored place is kept; the empty field asked for "last".
        assert_eq!(s.sort_order, None);
        assert_eq!(
            round_trip.parse(["demo", "gpt"]).unwrap(),
            PlanSettings {
                sort_order: Some(0),
                ..s
            }
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = PlanForm {
            name: " ".into(),
            requests_per_minute: "0".into(),
            requests_per_hour: "x".into(),
            requests_per_day: "5".into(),
            tokens_per_minute: "-1".into(),
            monthly_credits: "-3".into(),
            max_active_keys: "".into(),
            allowed_models: "nope".into(),
            sort_order: "first".into(),
            ..form()
        };
        let fields = bad.parse(["demo"]).unwrap_err();
        for name in [
            "name",
            "requests_per_minute",
            "requests_per_hour",
            "tokens_per_minute",
            "monthly_credits",
            "max_active_keys",
            "allowed_models",
            "sort_order",
        ] {
            assert!(fields.contains_key(name), "{name}: {fields:?}");
        }
        // No order error beside a number that did not parse.
        assert!(!fields.contains_key("requests_per_day"), "{fields:?}");
        // The order error is on the window that breaks it.
        let shrinking = |hour: &str, day: &str| {
            PlanForm {
                requests_per_hour: hour.into(),
                requests_per_day: day.into(),
                ..form()
            }
            .parse(["demo", "gpt"])
            .unwrap_err()
        };
        let fields = shrinking("5", "1000");
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["requests_per_hour"]);
        let fields = shrinking("100", "50");
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["requests_per_day"]);
    }

    #[test]
    fn slugs() {
        assert_eq!(parse_slug(" Team-2 ").as_deref(), Ok("team-2"));
        for bad in ["", "a", "2team", "te am", "tëam", &"x".repeat(33)] {
            assert!(parse_slug(bad).is_err(), "{bad:?}");
        }
    }
}
