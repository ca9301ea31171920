//! What a key may give the keys it creates, changes or rotates (with
//! `keys:write`): nothing it has not got itself. No scope it lacks, no model
//! outside its list, no later expiry, no more uses than it has left, no
//! address outside its allowlist, no site outside its referrer rule.
//! Otherwise a key limited to one address could mint a key usable from
//! anywhere, or lift its own limits. A signed-in owner has no such bounds.

use ipnet::IpNet;

use super::{auth::KeyHolder, types::CreateKey};
use crate::{gateway::client_ip::parse_network, store::KeyRecord};

/// The most a key may give: its own scopes and restrictions.
#[derive(Debug, Clone, Default)]
pub struct Bounds {
    scopes: Vec<String>,
    models: Option<Vec<String>>,
    /// Stored form (RFC 3339, milliseconds, `Z`), compared as text.
    expires_at: Option<String>,
    uses_left: Option<i64>,
    used: i64,
    ip_allowlist: Option<Vec<String>>,
    referrers: Option<Vec<String>>,
}

/// What a key can do, to hold against [`Bounds`]. Lists are `None` when
/// the key is not restricted that way.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reach<'a> {
    pub scopes: &'a [String],
    pub models: Option<&'a [String]>,
    pub expires_at: Option<&'a str>,
    pub uses_left: Option<i64>,
    /// Uses already made (0 for a new key): its cap less them is `uses_left`.
    pub used: i64,
    pub ip_allowlist: Option<&'a [String]>,
    pub referrers: Option<&'a [String]>,
}

/// A stored JSON list; an empty one, like none, restricts nothing.
fn stored_list(json: Option<&str>) -> Option<Vec<String>> {
    json.and_then(|j| serde_json::from_str::<Vec<String>>(j).ok())
        .filter(|list| !list.is_empty())
}

impl Bounds {
    /// The bounds of the key `holder` presented.
    pub fn of(holder: &KeyHolder) -> Self {
        Self::of_key(&holder.key, holder.scopes.clone())
    }

    /// What `key`, with `scopes`, can do.
    pub fn of_key(key: &KeyRecord, scopes: Vec<String>) -> Self {
        Self {
            scopes,
            models: stored_list(key.allowed_models.as_deref()),
            expires_at: key.expires_at.clone(),
            uses_left: key.usage_cap.map(|cap| (cap - key.usage_count).max(0)),
            used: key.usage_count,
            ip_allowlist: stored_list(key.ip_allowlist.as_deref()),
            referrers: stored_list(key.referrer_domains.as_deref()),
        }
    }

    /// A key with `scopes` and no restrictions.
    #[cfg(test)]
    pub fn with_scopes(scopes: &[&str]) -> Self {
        Self {
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..Self::default()
        }
    }

    /// These bounds as a key's reach: to hold a key against another's.
    pub fn reach(&self) -> Reach<'_> {
        Reach {
            scopes: &self.scopes,
            models: self.models.as_deref(),
            expires_at: self.expires_at.as_deref(),
            uses_left: self.uses_left,
            used: self.used,
            ip_allowlist: self.ip_allowlist.as_deref(),
            referrers: self.referrers.as_deref(),
        }
    }

    /// Whether the key has a usage cap. Such a key makes no keys and raises
    /// no key's cap: each would be a fresh allowance of uses beside its own.
    pub fn is_capped(&self) -> bool {
        self.uses_left.is_some()
    }

    /// `input` with each restriction it leaves unset taken from the caller:
    /// a key made by a key is as limited as its maker unless it asks for less.
    /// (A capped key makes none, so the cap is not among them.)
    pub fn fill(&self, input: &CreateKey) -> CreateKey {
        let unset = |list: &Option<Vec<String>>| list.as_ref().is_none_or(Vec::is_empty);
        let mut filled = input.clone();
        if unset(&filled.allowed_models) {
            filled.allowed_models.clone_from(&self.models);
        }
        let no_expiry = filled.expires_at.as_deref().is_none_or(str::is_empty);
        if no_expiry && filled.ttl_seconds.is_none() {
            filled.expires_at.clone_from(&self.expires_at);
        }
        if unset(&filled.ip_allowlist) {
            filled.ip_allowlist.clone_from(&self.ip_allowlist);
        }
        if unset(&filled.referrer_domains) {
            filled.referrer_domains.clone_from(&self.referrers);
        }
        filled
    }

    /// Each field in which `reach` goes beyond these bounds, and why.
    pub fn exceeded(&self, reach: &Reach<'_>) -> Vec<(&'static str, String)> {
        let mut beyond = Vec::new();
        if let Some(scope) = reach.scopes.iter().find(|s| !self.scopes.contains(s)) {
            beyond.push((
                "scopes",
                format!("A key cannot grant the scope {scope:?}, which it does not have itself."),
            ));
        }
        if let Some(own) = &self.models {
            let outside = match reach.models {
                None => true,
                Some(models) => models.iter().any(|m| !own.contains(m)),
            };
            if outside {
                beyond.push((
                    "allowed_models",
                    format!(
                        "This key may call only {}, so the key it makes or changes must be limited to those models too.",
                        own.join(", ")
                    ),
                ));
            }
        }
        if let Some(own) = &self.expires_at
            && reach.expires_at.is_none_or(|at| at > own.as_str())
        {
            beyond.push((
                "expires_at",
                format!(
                    "This key expires at {own}, so the key it makes or changes must expire by then too."
                ),
            ));
        }
        if let Some(own) = self.uses_left
            && reach.uses_left.is_none_or(|uses| uses > own)
        {
            beyond.push((
                "usage_cap",
                format!(
                    "This key has {own} uses left, so a key it changes may have at most that many left: a usage_cap of at most {}.",
                    reach.used.saturating_add(own)
                ),
            ));
        }
        if let Some(own) = &self.ip_allowlist {
            let nets: Vec<IpNet> = own.iter().filter_map(|e| parse_network(e)).collect();
            let within = |entry: &String| {
                parse_network(entry).is_some_and(|net| nets.iter().any(|own| own.contains(&net)))
            };
            if reach
                .ip_allowlist
                .is_none_or(|list| !list.iter().all(within))
            {
                beyond.push((
                    "ip_allowlist",
                    format!(
                        "This key may be used only from {}, so the key it makes or changes must be limited to addresses within them.",
                        own.join(", ")
                    ),
                ));
            }
        }
        if let Some(own) = &self.referrers {
            let within = |rule: &String| own.iter().any(|mine| covers(mine, rule));
            if reach.referrers.is_none_or(|list| !list.iter().all(within)) {
                beyond.push((
                    "referrer_domains",
                    format!(
                        "This key may be used only from {}, so the key it makes or changes must be limited to sites within them.",
                        own.join(", ")
                    ),
                ));
            }
        }
        beyond
    }
}

/// Whether every site the referrer rule `theirs` admits, `mine` admits too:
/// `example.com` covers only itself; `*.example.com` covers its subdomains
/// and wildcards under them.
fn covers(mine: &str, theirs: &str) -> bool {
    if mine == theirs {
        return true;
    }
    let Some(parent) = mine.strip_prefix("*.") else {
        return false;
    };
    let host = theirs.strip_prefix("*.").unwrap_or(theirs);
    host.strip_suffix(parent)
        .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn limited() -> Bounds {
        Bounds {
            scopes: strings(&["chat", "keys:write"]),
            models: Some(strings(&["demo"])),
            expires_at: Some("2030-01-01T00:00:00.000Z".into()),
            uses_left: Some(5),
            used: 0,
            ip_allowlist: Some(strings(&["10.0.0.0/8"])),
            referrers: Some(strings(&["*.example.com"])),
        }
    }

    #[test]
    fn referrer_rules_cover_only_what_they_admit() {
        assert!(covers("app.example.com", "app.example.com"));
        assert!(!covers("app.example.com", "*.app.example.com"));
        assert!(covers("*.example.com", "app.example.com"));
        assert!(covers("*.example.com", "*.app.example.com"));
        assert!(covers("*.example.com", "*.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "badexample.com"));
        assert!(!covers("*.example.com", "*.badexample.com"));
        assert!(!covers("*.example.com", ".example.com"));
    }

    #[test]
    fn a_key_within_every_bound_passes() {
        let (scopes, models) = (strings(&["chat"]), strings(&["demo"]));
        let (ips, sites) = (
            strings(&["10.1.2.3", "10.2.0.0/16"]),
            strings(&["a.example.com"]),
        );
        let reach = Reach {
            scopes: &scopes,
            models: Some(&models),
            expires_at: Some("2029-12-31T23:59:59.999Z"),
            uses_left: Some(5),
            used: 0,
            ip_allowlist: Some(&ips),
            referrers: Some(&sites),
        };
        assert!(limited().exceeded(&reach).is_empty());
        // Unbounded (a key without restrictions): anything within its scopes.
        let open = Bounds {
            scopes: scopes.clone(),
            ..Bounds::default()
        };
        let unlimited = Reach {
            scopes: &scopes,
            ..Reach::default()
        };
        assert!(open.exceeded(&unlimited).is_empty());
    }

    #[test]
    fn each_field_beyond_a_bound_is_named() {
        let (scopes, models) = (strings(&["admin"]), strings(&["demo", "gpt"]));
        let (ips, sites) = (strings(&["10.0.0.0/7"]), strings(&["example.com"]));
        let wider = Reach {
            scopes: &scopes,
            models: Some(&models),
            expires_at: Some("2030-01-01T00:00:00.001Z"),
            uses_left: Some(6),
            used: 3,
            ip_allowlist: Some(&ips),
            referrers: Some(&sites),
        };
        let beyond = limited().exceeded(&wider);
        let named: Vec<&str> = beyond.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            named,
            [
                "scopes",
                "allowed_models",
                "expires_at",
                "usage_cap",
                "ip_allowlist",
                "referrer_domains"
            ]
        );
        // The cap it may have: its uses so far and the maker's left.
        assert!(
            beyond[3].1.contains("usage_cap of at most 8"),
            "{}",
            beyond[3].1
        );
        // No restriction at all is beyond every bound but the scopes.
        let chat = strings(&["chat"]);
        let unrestricted = Reach {
            scopes: &chat,
            ..Reach::default()
        };
        assert_eq!(limited().exceeded(&unrestricted).len(), 5);
    }

    #[test]
    fn unset_restrictions_are_taken_from_the_maker() {
        let filled = limited().fill(&CreateKey {
            name: "child".into(),
            ip_allowlist: Some(vec![]),
            usage_cap: Some(2),
            ..CreateKey::default()
        });
        assert_eq!(filled.allowed_models, Some(strings(&["demo"])));
        assert_eq!(
            filled.expires_at.as_deref(),
            Some("2030-01-01T00:00:00.000Z")
        );
        assert_eq!(filled.usage_cap, Some(2), "what it sets is kept");
        assert!(limited().is_capped() && !Bounds::with_scopes(&["chat"]).is_capped());
        assert_eq!(filled.ip_allowlist, Some(strings(&["10.0.0.0/8"])));
        assert_eq!(filled.referrer_domains, Some(strings(&["*.example.com"])));
        // A TTL is its expiry: none is added beside it.
        let with_ttl = limited().fill(&CreateKey {
            ttl_seconds: Some(60),
            ..CreateKey::default()
        });
        assert_eq!(with_ttl.expires_at, None);
    }
}
