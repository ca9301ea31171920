//! Settings, read once at start-up from the environment (and `.env` when present).
//!
//! Every setting has a default, so a fresh install needs no configuration. A value
//! that does not parse stops start-up with one line naming the variable.

use std::{fmt, net::SocketAddr, num::NonZeroU32, path::PathBuf, str::FromStr, time::Duration};

use axum::http::Uri;
use sqlx::sqlite::SqliteConnectOptions;
use tracing_subscriber::EnvFilter;

/// Where the embedded database lives when `DATABASE_URL` is unset.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/tollgate.db";

#[derive(Clone, Debug)]
pub struct Config {
    /// `TOLLGATE_ADDR`: the socket the server listens on.
    pub addr: SocketAddr,
    /// `TOLLGATE_PUBLIC_URL`: the origin users reach the server at (no trailing
    /// slash). Unset means the bound address, see [`Config::public_url_for`].
    pub public_url: Option<String>,
    /// `DATABASE_URL`: a `sqlite:` URL.
    pub database_url: String,
    /// `TOLLGATE_LOG_DIR`: where the daily-rotated log files go.
    pub log_dir: PathBuf,
    /// `TOLLGATE_LOG_KEEP_DAYS`: how many daily log files are kept; older
    /// ones are deleted as a new one starts.
    pub log_keep_days: usize,
    /// `RUST_LOG`: the tracing filter directive.
    pub log_filter: String,
    /// `TOLLGATE_MAX_BODY_BYTES`: larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// `TOLLGATE_SHUTDOWN_GRACE_SECS`: how long in-flight requests may run after SIGTERM.
    pub shutdown_grace: Duration,
    /// `TOLLGATE_HEADER_TIMEOUT_SECS`: how long a connection may take to send
    /// a request's headers, pause while sending its body, or wait idle for its
    /// next request.
    pub header_timeout: Duration,
    /// `LEPTOS_SITE_ROOT`: the built site (wasm, js, css, assets), as cargo-leptos writes it.
    pub site_root: String,
    /// `LEPTOS_ENV`: `PROD` or `DEV` (any case; `production` and
    /// `development` too). `None`: the build's own (a release build is PROD).
    pub leptos_prod: Option<bool>,
    /// `TOLLGATE_SESSION_IDLE_SECS`: a dashboard session ends after this long unused.
    pub session_idle: Duration,
    /// `TOLLGATE_LOGIN_ATTEMPTS_PER_IP`: login attempts a minute from one client IP.
    pub login_attempts_per_ip: NonZeroU32,
    /// `TOLLGATE_LOGIN_ATTEMPTS_PER_ACCOUNT`: login attempts a minute for one email.
    pub login_attempts_per_account: NonZeroU32,
    /// `TOLLGATE_SIGNUPS_PER_IP`: accounts an hour one client IP may register.
    pub signups_per_ip: NonZeroU32,
    /// `TOLLGATE_ADMIN_EMAIL` and `TOLLGATE_ADMIN_PASSWORD`: an admin created at
    /// start-up when no user has that email.
    pub bootstrap_admin: Option<(String, Secret)>,
    /// `TOLLGATE_KEY_SECRET`: the HMAC secret API keys are hashed under. Unset
    /// means a generated one in `key_secret` beside the database.
    pub key_secret: Option<Secret>,
    /// `TOLLGATE_MODELS`: the TOML model table; unset means the built-in `demo` model.
    pub models_path: Option<PathBuf>,
    /// `TOLLGATE_TRUSTED_PROXIES`: proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `TOLLGATE_METRICS_ALLOW`: client addresses that may read `/metrics`.
    pub metrics_allow: Vec<ipnet::IpNet>,
    /// `TOLLGATE_IP_REQUESTS_PER_MINUTE` / `_PER_DAY`: gateway calls from one client IP.
    pub ip_requests_per_minute: NonZeroU32,
    pub ip_requests_per_day: NonZeroU32,
    /// `TOLLGATE_SIGNUP_CREDITS`: what a new account starts with, in micro-credits.
    pub signup_credits_micros: i64,
    /// `TOLLGATE_CORS_ORIGINS`: browser origins that may call the model API;
    /// `None` is any, an empty list none (`none`: the playground, on the
    /// site's own origin, needs no CORS).
    pub cors_origins: Option<Vec<String>>,
    /// `TOLLGATE_UPSTREAM_{CONNECT,FIRST_BYTE,IDLE}_TIMEOUT_MS`.
    pub upstream_timeouts: UpstreamTimeouts,
    /// `TOLLGATE_UPSTREAM_MAX_BODY_BYTES`: the most an upstream's answer may
    /// send, whole or streamed, before the call fails with 502.
    pub upstream_max_body_bytes: usize,
    /// `TOLLGATE_STREAM_KEEPALIVE_MS`: how often a stream that sent the caller
    /// nothing meanwhile gets an SSE comment, so that proxies on the way do
    /// not take a model thinking quietly for a dead connection.
    pub stream_keep_alive: Duration,
    /// `TOLLGATE_*` variables set in the environment that no setting reads (a
    /// misspelled one leaves its setting's default in place), each with the
    /// setting its name is nearest when one is near. Start-up warns of them,
    /// leaving out the names the model table reads upstream keys from.
    pub unknown_settings: Vec<(String, Option<String>)>,
}

/// How long Tollgate waits on an upstream model server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    /// To open the connection.
    pub connect: Duration,
    /// From sending a streamed request to the answer's headers (a JSON
    /// answer's come only once it is whole: it has until `total`).
    pub first_byte: Duration,
    /// Between two pieces of the answer.
    pub idle: Duration,
    /// From sending the request to the answer's end, however steadily it
    /// arrives (an upstream sending keep-alives forever holds no call open).
    pub total: Duration,
}

/// A setting that must never reach a log line or a debug print.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// A setting that did not parse. Displays as one line for the operator.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {var}: expected {expected}, got {got:?}")]
pub struct ConfigError {
    pub var: &'static str,
    pub expected: &'static str,
    pub got: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A value that is not UTF-8 would read as unset, and its default be
        // used without a word. Not shown: it may be a secret.
        let read_here = |name: &str| {
            name.starts_with("TOLLGATE_")
                || ["DATABASE_URL", "RUST_LOG", "LEPTOS_ENV", "LEPTOS_SITE_ROOT"].contains(&name)
        };
        for (name, value) in std::env::vars_os() {
            if let (Some(name), None) = (name.to_str(), value.to_str())
                && read_here(name)
            {
                return Err(ConfigError {
                    // Leaked once, on the way out.
                    var: Box::leak(name.to_owned().into_boxed_str()),
                    expected: "UTF-8 text",
                    got: "(bytes that are not UTF-8)".to_owned(),
                });
            }
        }
        let read = std::cell::RefCell::new(Vec::new());
        let mut config = Self::from_lookup(|name| {
            read.borrow_mut().push(name.to_owned());
            std::env::var(name).ok()
        })?;
        let read = read.into_inner();
        config.unknown_settings = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| name.starts_with("TOLLGATE_") && !read.contains(name))
            .map(|name| {
                let nearest = nearest_setting(&name, &read);
                (name, nearest)
            })
            .collect();
        config.unknown_settings.sort();
        Ok(config)
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of the
    /// process environment. Empty values count as unset, but for the
    /// database and the key secret: `DATABASE_URL=${DB}` with `DB` unset
    /// would otherwise start a new, empty database, or a new key secret that
    /// no stored key matches, without a word.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        for (var, expected) in [
            (
                "DATABASE_URL",
                "a sqlite: URL such as sqlite://data/tollgate.db, or no DATABASE_URL at all for that default",
            ),
            (
                "TOLLGATE_KEY_SECRET",
                "a secret of 32 bytes or more, or no TOLLGATE_KEY_SECRET at all for the generated one",
            ),
        ] {
            if lookup(var).is_some_and(|v| v.trim().is_empty()) {
                return Err(ConfigError {
                    var,
                    expected,
                    got: "an empty value".to_owned(),
                });
            }
        }

        let addr = parse(
            "TOLLGATE_ADDR",
            get("TOLLGATE_ADDR"),
            "127.0.0.1:3000",
            "a socket address such as 127.0.0.1:3000",
            |v| SocketAddr::from_str(v).ok(),
        )?;

        let public_url = get("TOLLGATE_PUBLIC_URL")
            .map(|v| {
                parse_public_url(&v).ok_or_else(|| ConfigError {
                    var: "TOLLGATE_PUBLIC_URL",
                    expected: "an http:// or https:// origin such as https://llm.example.com",
                    got: shown_url(v),
                })
            })
            .transpose()?;

        let database_url = parse(
            "DATABASE_URL",
            get("DATABASE_URL"),
            DEFAULT_DATABASE_URL,
            "a sqlite: URL such as sqlite://data/tollgate.db",
            |v| {
                (v.starts_with("sqlite:") && SqliteConnectOptions::from_str(v).is_ok())
                    .then(|| v.to_owned())
            },
        )
        .map_err(|e| ConfigError {
            got: shown_url(e.got),
            ..e
        })?;

        let log_dir = PathBuf::from(get("TOLLGATE_LOG_DIR").unwrap_or_else(|| "logs".into()));
        let log_keep_days = parse(
            "TOLLGATE_LOG_KEEP_DAYS",
            get("TOLLGATE_LOG_KEEP_DAYS"),
            "14",
            "a whole number of days from 1 to 3650",
            |v| usize::from_str(v).ok().filter(|n| (1..=3650).contains(n)),
        )?;

        let log_filter = parse(
            "RUST_LOG",
            get("RUST_LOG"),
            "info,tollgate=info,sqlx=warn",
            "a tracing filter such as info or tollgate=debug,warn",
            |v| EnvFilter::try_new(v).ok().map(|_| v.to_owned()),
        )?;

        let max_body_bytes = parse(
            "TOLLGATE_MAX_BODY_BYTES",
            get("TOLLGATE_MAX_BODY_BYTES"),
            "4194304",
            "a whole number of bytes from 1024 to 268435456",
            |v| {
                usize::from_str(v)
                    .ok()
                    .filter(|n| (1024..=268_435_456).contains(n))
            },
        )?;

        let leptos_prod = match get("LEPTOS_ENV") {
            None => None,
            Some(value) => Some(parse(
                "LEPTOS_ENV",
                Some(value),
                "",
                "PROD or DEV",
                |v| match v.to_ascii_lowercase().as_str() {
                    "prod" | "production" => Some(true),
                    "dev" | "development" => Some(false),
                    _ => None,
                },
            )?),
        };

        let shutdown_grace = parse(
            "TOLLGATE_SHUTDOWN_GRACE_SECS",
            get("TOLLGATE_SHUTDOWN_GRACE_SECS"),
            "30",
            "a whole number of seconds from 0 to 3600",
            |v| {
                u64::from_str(v)
                    .ok()
                    .filter(|n| *n <= 3600)
                    .map(Duration::from_secs)
            },
        )?;

        let header_timeout = parse(
            "TOLLGATE_HEADER_TIMEOUT_SECS",
            get("TOLLGATE_HEADER_TIMEOUT_SECS"),
            "30",
            "a whole number of seconds from 1 to 3600",
            |v| {
                u64::from_str(v)
                    .ok()
                    .filter(|n| (1..=3600).contains(n))
                    .map(Duration::from_secs)
            },
        )?;

        let site_root = get("LEPTOS_SITE_ROOT").unwrap_or_else(|| "target/site".into());

        let session_idle = parse(
            "TOLLGATE_SESSION_IDLE_SECS",
            get("TOLLGATE_SESSION_IDLE_SECS"),
            "604800",
            "a whole number of seconds from 60 to 31536000",
            |v| {
                u64::from_str(v)
                    .ok()
                    .filter(|n| (60..=31_536_000).contains(n))
                    .map(Duration::from_secs)
            },
        )?;
        // A budget of 1 to 10,000 (attempts, sign-ups) a period.
        let budget = |var: &'static str, default: &str, expected: &'static str| {
            parse(var, get(var), default, expected, |v| {
                u32::from_str(v)
                    .ok()
                    .filter(|n| *n <= 10_000)
                    .and_then(NonZeroU32::new)
            })
        };
        let attempts = "a whole number of attempts a minute from 1 to 10000";
        let login_attempts_per_ip = budget("TOLLGATE_LOGIN_ATTEMPTS_PER_IP", "20", attempts)?;
        let login_attempts_per_account =
            budget("TOLLGATE_LOGIN_ATTEMPTS_PER_ACCOUNT", "5", attempts)?;
        let signups_per_ip = budget(
            "TOLLGATE_SIGNUPS_PER_IP",
            "10",
            "a whole number of sign-ups an hour from 1 to 10000",
        )?;

        let bootstrap_admin = match (get("TOLLGATE_ADMIN_EMAIL"), get("TOLLGATE_ADMIN_PASSWORD")) {
            (None, None) => None,
            (Some(email), Some(password)) => Some((email, Secret(password))),
            (Some(_), None) => {
                return Err(ConfigError {
                    var: "TOLLGATE_ADMIN_PASSWORD",
                    expected: "a password when TOLLGATE_ADMIN_EMAIL is set",
                    got: String::new(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError {
                    var: "TOLLGATE_ADMIN_EMAIL",
                    expected: "an email when TOLLGATE_ADMIN_PASSWORD is set",
                    got: String::new(),
                });
            }
        };

        let networks = |v: &str| {
            v.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(crate::gateway::client_ip::parse_network)
                .collect::<Option<Vec<_>>>()
        };
        let trusted_proxies = parse(
            "TOLLGATE_TRUSTED_PROXIES",
            get("TOLLGATE_TRUSTED_PROXIES"),
            "",
            "comma-separated IP addresses or CIDR ranges such as 10.0.0.0/8,::1",
            networks,
        )?;
        let metrics_allow = parse(
            "TOLLGATE_METRICS_ALLOW",
            get("TOLLGATE_METRICS_ALLOW"),
            "127.0.0.1,::1",
            "comma-separated IP addresses or CIDR ranges such as 127.0.0.1,10.0.0.0/8",
            networks,
        )?;
        let per = |var: &'static str, default: &str| {
            parse(
                var,
                get(var),
                default,
                "a whole number of requests from 1 to 1000000",
                |v| {
                    u32::from_str(v)
                        .ok()
                        .filter(|n| *n <= 1_000_000)
                        .and_then(NonZeroU32::new)
                },
            )
        };
        let ip_requests_per_minute = per("TOLLGATE_IP_REQUESTS_PER_MINUTE", "20")?;
        let ip_requests_per_day = per("TOLLGATE_IP_REQUESTS_PER_DAY", "100")?;
        let signup_credits_micros = parse(
            "TOLLGATE_SIGNUP_CREDITS",
            get("TOLLGATE_SIGNUP_CREDITS"),
            "10",
            "a number of credits from 0 to 1000000000 with at most 6 decimals, such as 10 or 2.5",
            |v| {
                crate::credits::parse_credits(v).filter(|micros| {
                    *micros
                        <= crate::credits::MOST_CREDITS_GRANTED * crate::credits::MICROS_PER_CREDIT
                })
            },
        )?;
        // Checked with the other settings, before the database is opened, and
        // said without its value.
        let key_secret = match get("TOLLGATE_KEY_SECRET") {
            Some(secret) if secret.len() < crate::keys::hashing::MIN_SECRET_BYTES => {
                return Err(ConfigError {
                    var: "TOLLGATE_KEY_SECRET",
                    expected: "a secret of 32 bytes or more",
                    got: format!("{} bytes", secret.len()),
                });
            }
            secret => secret.map(Secret),
        };
        let cors_origins = parse(
            "TOLLGATE_CORS_ORIGINS",
            get("TOLLGATE_CORS_ORIGINS"),
            "*",
            "*, none, or comma-separated origins such as https://app.example.com",
            |v| {
                if v == "*" {
                    return Some(None);
                }
                if v.eq_ignore_ascii_case("none") {
                    return Some(Some(Vec::new()));
                }
                v.split(',')
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(parse_public_url)
                    .collect::<Option<Vec<_>>>()
                    .filter(|list| !list.is_empty())
                    .map(Some)
            },
        )?;
        let millis = |var: &'static str, default: &str| {
            parse(
                var,
                get(var),
                default,
                "a whole number of milliseconds from 1 to 3600000",
                |v| {
                    u64::from_str(v)
                        .ok()
                        .filter(|n| (1..=3_600_000).contains(n))
                        .map(Duration::from_millis)
                },
            )
        };
        let upstream_timeouts = UpstreamTimeouts {
            connect: millis("TOLLGATE_UPSTREAM_CONNECT_TIMEOUT_MS", "10000")?,
            first_byte: millis("TOLLGATE_UPSTREAM_FIRST_BYTE_TIMEOUT_MS", "60000")?,
            idle: millis("TOLLGATE_UPSTREAM_IDLE_TIMEOUT_MS", "60000")?,
            total: millis("TOLLGATE_UPSTREAM_TOTAL_TIMEOUT_MS", "600000")?,
        };
        let stream_keep_alive = millis("TOLLGATE_STREAM_KEEPALIVE_MS", "15000")?;
        let upstream_max_body_bytes = parse(
            "TOLLGATE_UPSTREAM_MAX_BODY_BYTES",
            get("TOLLGATE_UPSTREAM_MAX_BODY_BYTES"),
            "67108864",
            "a whole number of bytes from 1024 to 1073741824",
            |v| {
                usize::from_str(v)
                    .ok()
                    .filter(|n| (1024..=1_073_741_824).contains(n))
            },
        )?;

        Ok(Self {
            addr,
            public_url,
            database_url,
            log_dir,
            log_keep_days,
            log_filter,
            max_body_bytes,
            shutdown_grace,
            header_timeout,
            site_root,
            leptos_prod,
            session_idle,
            login_attempts_per_ip,
            login_attempts_per_account,
            signups_per_ip,
            bootstrap_admin,
            key_secret,
            models_path: get("TOLLGATE_MODELS").map(PathBuf::from),
            trusted_proxies,
            metrics_allow,
            ip_requests_per_minute,
            ip_requests_per_day,
            signup_credits_micros,
            cors_origins,
            upstream_timeouts,
            upstream_max_body_bytes,
            stream_keep_alive,
            unknown_settings: Vec::new(),
        })
    }
}

/// The setting among `read` whose name is nearest `name`, when it is a
/// likely misspelling of it: in any case, and at most about one letter in
/// seven apart (TOLLGATE_CORS_ORIGIN, TOLLGATE_TRUSTED_PROXY, a timeout
/// without its `_MS`).
fn nearest_setting(name: &str, read: &[String]) -> Option<String> {
    let name = name.to_ascii_uppercase();
    read.iter()
        .filter(|known| known.starts_with("TOLLGATE_"))
        .map(|known| (strsim::normalized_damerau_levenshtein(&name, known), known))
        .filter(|(similarity, _)| *similarity >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, known)| known.clone())
}

impl Config {
    /// Whether users reach the server over TLS, so cookies must be `Secure`.
    pub fn is_https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }

    /// The public origin: the configured one, or else the address actually bound
    /// (which knows the real port when `TOLLGATE_ADDR` asked for port 0).
    pub fn public_url_for(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.clone(),
            None if bound.ip().is_unspecified() => format!("http://localhost:{}", bound.port()),
            None => format!("http://{bound}"),
        }
    }
}

/// A refused URL as an error repeats it: not at all when it may carry a
/// password (`user:pw@host`, a PostgreSQL `DATABASE_URL`).
fn shown_url(url: String) -> String {
    if url.contains('@') {
        "(a URL with a user name or password)".to_owned()
    } else {
        url
    }
}

fn parse<T>(
    var: &'static str,
    value: Option<String>,
    default: &str,
    expected: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, ConfigError> {
    let raw = value.unwrap_or_else(|| default.to_owned());
    parse(raw.trim()).ok_or(ConfigError {
        var,
        expected,
        got: raw,
    })
}

/// Accepts `http(s)://host[:port]` with no path, query or fragment; returns it
/// without a trailing slash.
fn parse_public_url(value: &str) -> Option<String> {
    let trimmed = value.trim().trim_end_matches('/');
    let uri = Uri::from_str(trimmed).ok()?;
    let scheme = uri
        .scheme_str()
        .filter(|s| matches!(*s, "http" | "https"))?;
    let path_ok = uri.path().is_empty() || uri.path() == "/";
    // A user name or password has no place in an origin (browsers never
    // send one in `Origin`, so no form would pass the same-origin check).
    let authority = uri
        .authority()
        .filter(|a| path_ok && uri.query().is_none() && !a.as_str().contains('@'))?;
    // Lower case, as browsers send Origin: `HTTPS://LLM.Example.com` is
    // https (its cookies Secure) and the same origin.
    Some(format!(
        "{scheme}://{}",
        authority.as_str().to_ascii_lowercase()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn a_misspelled_setting_is_matched_to_the_one_it_is_nearest() {
        let asked = std::cell::RefCell::new(Vec::new());
        Config::from_lookup(|name| {
            asked.borrow_mut().push(name.to_owned());
            None
        })
        .unwrap();
        let read = asked.into_inner();
        let nearest = |name| nearest_setting(name, &read);
        for (typed, meant) in [
            ("TOLLGATE_CORS_ORIGIN", "TOLLGATE_CORS_ORIGINS"),
            ("TOLLGATE_TRUSTED_PROXY", "TOLLGATE_TRUSTED_PROXIES"),
            (
                "TOLLGATE_UPSTREAM_TOTAL_TIMEOUT",
                "TOLLGATE_UPSTREAM_TOTAL_TIMEOUT_MS",
            ),
            ("tollgate_addr", "TOLLGATE_ADDR"),
        ] {
            assert_eq!(nearest(typed).as_deref(), Some(meant), "{typed}");
        }
        // A variable of the operator's own (the README's shell examples).
        assert_eq!(nearest("TOLLGATE_KEY"), None);
        assert_eq!(nearest("TOLLGATE_ADMIN_KEY"), None);
    }

    #[test]
    fn defaults_need_no_configuration() {
        let c = config(&[]).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.public_url_for(c.addr), "http://127.0.0.1:3000");
        assert_eq!(
            c.public_url_for("0.0.0.0:8080".parse().unwrap()),
            "http://localhost:8080"
        );
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.log_dir, PathBuf::from("logs"));
        assert_eq!(c.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(c.shutdown_grace, Duration::from_secs(30));
        assert_eq!(c.header_timeout, Duration::from_secs(30));
    }

    #[test]
    fn empty_values_fall_back_to_defaults() {
        assert_eq!(config(&[("TOLLGATE_ADDR", " ")]).unwrap().addr.port(), 3000);
    }

    #[test]
    fn an_empty_database_url_or_key_secret_is_refused_not_defaulted() {
        for var in ["DATABASE_URL", "TOLLGATE_KEY_SECRET"] {
            let err = config(&[(var, "")]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().contains("an empty value"), "{err}");
        }
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let cases = [
            ("TOLLGATE_ADDR", "localhost"),
            ("TOLLGATE_PUBLIC_URL", "ftp://example.com"),
            ("TOLLGATE_PUBLIC_URL", "https://example.com/app"),
            ("TOLLGATE_PUBLIC_URL", "https://user:pw@example.com"),
            ("DATABASE_URL", "postgres://localhost/db"),
            ("DATABASE_URL", "postgres://tollgate:hunter2@db/tollgate"),
            ("DATABASE_URL", " "),
            ("TOLLGATE_KEY_SECRET", ""),
            ("RUST_LOG", "info,[[["),
            ("TOLLGATE_MAX_BODY_BYTES", "12"),
            ("TOLLGATE_SHUTDOWN_GRACE_SECS", "-1"),
            ("TOLLGATE_HEADER_TIMEOUT_SECS", "0"),
            ("TOLLGATE_SESSION_IDLE_SECS", "5"),
            ("TOLLGATE_LOGIN_ATTEMPTS_PER_IP", "0"),
            ("TOLLGATE_LOGIN_ATTEMPTS_PER_ACCOUNT", "many"),
            ("TOLLGATE_LOG_KEEP_DAYS", "0"),
            ("LEPTOS_ENV", "staging"),
            ("TOLLGATE_SIGNUPS_PER_IP", "0"),
            ("TOLLGATE_SIGNUPS_PER_IP", "10001"),
            ("TOLLGATE_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("TOLLGATE_IP_REQUESTS_PER_MINUTE", "0"),
            ("TOLLGATE_IP_REQUESTS_PER_DAY", "lots"),
            ("TOLLGATE_SIGNUP_CREDITS", "-5"),
            ("TOLLGATE_SIGNUP_CREDITS", "1000000000.000001"),
            ("TOLLGATE_CORS_ORIGINS", "app.example.com"),
            ("TOLLGATE_UPSTREAM_IDLE_TIMEOUT_MS", "0"),
            ("TOLLGATE_UPSTREAM_MAX_BODY_BYTES", "100"),
            ("TOLLGATE_KEY_SECRET", "hunter2-but-too-short"),
        ];
        for (var, value) in cases {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{value}");
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid {var}: expected "))
            );
            assert!(!err.to_string().contains('\n'));
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn cors_origins_are_any_none_or_a_list() {
        assert_eq!(config(&[]).unwrap().cors_origins, None);
        assert_eq!(
            config(&[("TOLLGATE_CORS_ORIGINS", "*")])
                .unwrap()
                .cors_origins,
            None
        );
        assert_eq!(
            config(&[("TOLLGATE_CORS_ORIGINS", "None")])
                .unwrap()
                .cors_origins,
            Some(vec![])
        );
        assert_eq!(
            config(&[(
                "TOLLGATE_CORS_ORIGINS",
                "https://a.example, https://b.example:8443"
            )])
            .unwrap()
            .cors_origins,
            Some(vec![
                "https://a.example".into(),
                "https://b.example:8443".into()
            ])
        );
    }

    #[test]
    fn signup_credits_go_up_to_the_largest_grant() {
        let c = config(&[("TOLLGATE_SIGNUP_CREDITS", "1000000000")]).unwrap();
        assert_eq!(c.signup_credits_micros, 1_000_000_000_000_000);
        let c = config(&[("TOLLGATE_SIGNUP_CREDITS", "0.5")]).unwrap();
        assert_eq!(c.signup_credits_micros, 500_000);
    }

    #[test]
    fn admin_email_and_password_come_together() {
        let err = config(&[("TOLLGATE_ADMIN_PASSWORD", "only-a-password")]).unwrap_err();
        assert_eq!(err.var, "TOLLGATE_ADMIN_EMAIL");
        let err = config(&[("TOLLGATE_ADMIN_EMAIL", "root@example.com")]).unwrap_err();
        assert_eq!(err.var, "TOLLGATE_ADMIN_PASSWORD");
        assert!(!err.to_string().contains("only-a-password"));
    }

    #[test]
    fn the_admin_password_never_shows_in_debug_output() {
        let c = config(&[
            ("TOLLGATE_ADMIN_EMAIL", "root@example.com"),
            ("TOLLGATE_ADMIN_PASSWORD", "hunter2-but-longer"),
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.bootstrap_admin.unwrap().1.expose(), "hunter2-but-longer");
    }

    #[test]
    fn public_url_is_lower_cased_so_https_is_seen_whatever_the_case() {
        let c = config(&[("TOLLGATE_PUBLIC_URL", "HTTPS://LLM.Example.com/")]).unwrap();
        assert!(c.is_https());
        assert_eq!(c.public_url_for(c.addr), "https://llm.example.com");
    }

    #[test]
    fn public_url_drops_the_trailing_slash() {
        let c = config(&[("TOLLGATE_PUBLIC_URL", "https://llm.example.com/")]).unwrap();
        assert_eq!(c.public_url_for(c.addr), "https://llm.example.com");
    }
}
