//! Stage 4: what the key itself allows: the IP allowlist (on the real client
//! IP), allowed referrer domains, the `chat` scope, and the models (the key's
//! list within the plan's).

use std::net::IpAddr;

use axum::http::{HeaderMap, Uri, header};
use ipnet::IpNet;

use super::error::GatewayError;
use crate::keys::auth::KeyHolder;
use crate::store::{KeyRecord, PlanRecord};

fn list(json: Option<&str>) -> Option<Vec<String>> {
    json.and_then(|j| serde_json::from_str::<Vec<String>>(j).ok())
        .filter(|l| !l.is_empty())
}

/// The IP allowlist, the referrer rule and the `chat` scope.
pub fn check_caller(
    holder: &KeyHolder,
    client_ip: Option<IpAddr>,
    headers: &HeaderMap,
) -> Result<(), GatewayError> {
    check_whence(&holder.key, client_ip, headers)?;
    if !holder.scopes.iter().any(|s| s == "chat") {
        return Err(GatewayError::Forbidden {
            code: "missing_scope",
            message: "This key lacks the chat scope, so it cannot call models. Use a key with the chat scope.".to_owned(),
            param: None,
        });
    }
    Ok(())
}

/// The IP allowlist and the referrer rule: where a key may be used from, on
/// the model API and on the management and admin APIs alike.
pub fn check_whence(
    key: &KeyRecord,
    client_ip: Option<IpAddr>,
    headers: &HeaderMap,
) -> Result<(), GatewayError> {
    if let Some(allowed) = list(key.ip_allowlist.as_deref()) {
        let nets: Vec<IpNet> = allowed
            .iter()
            .filter_map(|entry| super::client_ip::parse_network(entry))
            .collect();
        let ok = client_ip
            .map(|ip| ip.to_canonical())
            .is_some_and(|ip| nets.iter().any(|net| net.contains(&ip)));
        if !ok {
            return Err(GatewayError::Forbidden {
                code: "ip_not_allowed",
                message: format!(
                    "This key may not be used from {}. Add the address to the key's IP allowlist.",
                    client_ip.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string())
                ),
                param: None,
            });
        }
    }
    if let Some(domains) = list(key.referrer_domains.as_deref()) {
        let host = caller_host(headers);
        let ok = host
            .as_deref()
            .is_some_and(|host| domains.iter().any(|d| domain_matches(d, host)));
        if !ok {
            return Err(GatewayError::Forbidden {
                code: "referrer_not_allowed",
                message: match host {
                    Some(host) => format!("This key may not be used from {host}. Add the domain to the key's allowed referrers."),
                    None => "This key is limited to certain websites, and the request named none (no Origin or Referer).".to_owned(),
                },
                param: None,
            });
        }
    }
    Ok(())
}

/// The models this key may call, in table order, from `names`.
pub fn allowed_models<'a>(
    key: &KeyRecord,
    plan: &PlanRecord,
    names: impl Iterator<Item = &'a str>,
) -> Vec<&'a str> {
    let plan_models = plan.allowed_models();
    let key_models = list(key.allowed_models.as_deref());
    names
        .filter(|name| PlanRecord::list_includes(plan_models.as_deref(), name))
        .filter(|name| {
            key_models
                .as_ref()
                .is_none_or(|m| m.iter().any(|x| x == name))
        })
        .collect()
}

/// Refuses a model the plan or the key does not include.
pub fn check_model(key: &KeyRecord, plan: &PlanRecord, model: &str) -> Result<(), GatewayError> {
    if allowed_models(key, plan, std::iter::once(model)).is_empty() {
        return Err(GatewayError::Forbidden {
            code: "model_not_allowed",
            message: format!(
                "This key or your plan does not include the model {model:?}. GET /v1/models lists the ones it does."
            ),
            param: Some("model"),
        });
    }
    Ok(())
}

/// The host of `Origin`, or else of `Referer`.
pub(crate) fn caller_host(headers: &HeaderMap) -> Option<String> {
    [header::ORIGIN, header::REFERER]
        .iter()
        .filter_map(|name| headers.get(name).and_then(|v| v.to_str().ok()))
        .filter_map(|v| v.parse::<Uri>().ok())
        .find_map(|uri| {
            uri.host()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        })
}

/// `example.com` matches only itself; `*.example.com` matches its subdomains.
fn domain_matches(rule: &str, host: &str) -> bool {
    let rule = rule.trim().trim_end_matches('.').to_ascii_lowercase();
    match rule.strip_prefix("*.") {
        Some(parent) => host.ends_with(&format!(".{parent}")),
        None => host == rule,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrer_rules() {
        assert!(domain_matches("app.example.com", "app.example.com"));
        assert!(!domain_matches("app.example.com", "evil-app.example.com"));
        assert!(domain_matches("*.example.com", "a.b.example.com"));
        assert!(!domain_matches("*.example.com", "example.com"));
        assert!(!domain_matches("*.example.com", "badexample.com"));
    }
}
