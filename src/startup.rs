//! Builds the application: database, router and middleware, bound to a listener.
//!
//! `main` and the integration tests both go through [`Application::build`], so the
//! tests run exactly the server users run (on port 0, with their own database).

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRef},
    middleware,
    routing::{any, get, post, put},
};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use tower_sessions::{
    Expiry, SessionManagerLayer, cookie::SameSite, session_store::ExpiredDeletion,
};

use crate::{
    accounts::{
        passwords,
        service::{self, AccountError},
        throttle::{LoginThrottle, SignupThrottle},
    },
    app::{App, shell},
    body_limit,
    config::{Config, Secret},
    keys::hashing::{KeyHasher, KeySecretError},
    request_meta::RequestMeta,
    routes::{admin, gateway, health, keys, openapi},
    same_origin,
    store::{Store, StoreError},
    telemetry,
};

/// What handlers and server functions share. Every handler and middleware
/// clones it, so it is one `Arc` and reads through to [`Shared`].
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[derive(Debug)]
pub struct Shared {
    pub leptos_options: LeptosOptions,
    pub store: Store,
    pub config: Arc<Config>,
    /// The origin users reach this server at, without a trailing slash.
    pub public_url: Arc<str>,
    pub login_throttle: Arc<LoginThrottle>,
    pub signup_throttle: Arc<SignupThrottle>,
    pub key_hasher: Arc<KeyHasher>,
    pub gateway: Arc<crate::gateway::Gateway>,
    pub instruments: crate::instruments::Instruments,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    KeySecret(#[from] KeySecretError),
    #[error("invalid model table (TOLLGATE_MODELS): {0}")]
    Models(#[from] crate::gateway::providers::ModelTableError),
    #[error("cannot prepare the session store: {0}")]
    Sessions(String),
    #[error("invalid TOLLGATE_ADMIN_EMAIL or TOLLGATE_ADMIN_PASSWORD: {0}")]
    BootstrapAdmin(String),
    #[error("cannot start the upstream HTTP client: {0}")]
    UpstreamClient(#[from] reqwest::Error),
    #[error("cannot listen on {addr} (TOLLGATE_ADDR): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "another Tollgate server is running on this database (DATABASE_URL): {} is locked; stop it first",
        .0.display()
    )]
    AlreadyRunning(std::path::PathBuf),
    #[error("cannot lock the database (DATABASE_URL) at {}: {source}", .path.display())]
    Lock {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Held while a server runs on a database file: a second server starting on
/// it would give back, as left by a stopped process, the credit holds and
/// one-time key uses of the first one's running calls, which the first then
/// releases again when they end. Released when the server stops, or by the
/// system when the process dies.
#[derive(Debug)]
struct DatabaseLock {
    _file: Option<std::fs::File>,
}

impl DatabaseLock {
    /// Locks the lock file beside the database; an in-memory one needs none.
    fn take(database_url: &str) -> Result<Self, StartupError> {
        let Some(path) = Store::lock_path(database_url) else {
            return Ok(Self { _file: None });
        };
        let lock_failed = |source| StartupError::Lock {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            crate::store::create_private_dir(dir).map_err(lock_failed)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(lock_failed)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: Some(file) }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StartupError::AlreadyRunning(path)),
            Err(std::fs::TryLockError::Error(source)) => Err(StartupError::Lock { path, source }),
        }
    }
}

/// Stops a start whose key secret is not the one the stored keys were made
/// under, which would refuse every key while logins still work (a
/// TOLLGATE_KEY_SECRET set beside the generated file, a `.env` not read).
/// Records the secret's check value when there is none yet, or no keys.
async fn check_key_secret(
    store: &Store,
    hasher: &KeyHasher,
    keys_stored: bool,
    config: &Config,
) -> Result<(), StartupError> {
    let check = hasher.check_value();
    match store.key_secret_check().await? {
        Some(stored) if stored == check => Ok(()),
        Some(_) if keys_stored => Err(KeySecretError::Changed(match config.key_secret {
            Some(_) => "TOLLGATE_KEY_SECRET",
            None => "the key_secret file beside the database",
        })
        .into()),
        _ => Ok(store.record_key_secret_check(&check).await?),
    }
}

/// `tollgate replace-key-secret`: puts the key secret now configured (or a
/// new generated file, when none is) in place of the one the keys were made
/// under, revoking every key. Returns how many were revoked. Refused while a
/// server runs on the database, and when the secret has not changed.
pub async fn replace_key_secret(config: &Config) -> Result<u64, StartupError> {
    // A mistyped DATABASE_URL would otherwise make a new, empty database.
    let file = Store::database_file(&config.database_url);
    if !file.as_ref().is_some_and(|file| file.exists()) {
        let named = file.map_or(config.database_url.clone(), |f| f.display().to_string());
        return Err(KeySecretError::NoDatabase(named).into());
    }
    let _lock = DatabaseLock::take(&config.database_url)?;
    let store = Store::open(&config.database_url).await?;
    let data_dir = Store::data_dir(&config.database_url).unwrap_or_default();
    // Made by this run: the secret the keys were made under is lost.
    let generated = config.key_secret.is_none() && !data_dir.join("key_secret").exists();
    let hasher = KeyHasher::load(
        config.key_secret.as_ref().map(Secret::expose),
        &data_dir,
        false,
    )?;
    let check = hasher.check_value();
    let refused = match store.key_secret_check().await? {
        Some(stored) if stored == check => Some(KeySecretError::Unchanged),
        // An upgraded database whose server has not started since: the
        // secret in place may be the keys' own, which would all be revoked.
        None if !generated => Some(KeySecretError::NotRecorded),
        _ => None,
    };
    if let Some(refused) = refused {
        store.close().await;
        return Err(refused.into());
    }
    let audit = crate::store::AuditEvent::new(
        "keys.secret_replaced",
        &crate::request_meta::RequestMeta::default(),
    )
    .target("instance");
    let revoked = store.replace_key_secret(&check, audit).await;
    store.close().await;
    Ok(revoked?)
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    /// Housekeeping that runs while the server does (expired sessions, idle throttle keys).
    background: Vec<tokio::task::JoinHandle<()>>,
    /// The gateway's write-behind task, stopped (not aborted) at shutdown.
    write_behind: tokio::task::JoinHandle<()>,
    stop_writer: tokio::sync::watch::Sender<bool>,
    _database_lock: DatabaseLock,
}

/// A misspelled setting leaves its default in place without a word (no
/// trusted proxies, CORS for any origin) unless start-up says so. Variables
/// the model table read upstream keys from (`key_vars`) are the operator's.
fn warn_of_unknown_settings(config: &Config, key_vars: &[String]) {
    for (name, nearest) in &config.unknown_settings {
        if key_vars.contains(name) {
            continue;
        }
        match nearest {
            Some(nearest) => tracing::warn!(
                setting = %name,
                "{name} is not a Tollgate setting and is ignored: did you mean {nearest}?"
            ),
            None => tracing::warn!(
                setting = %name,
                "{name} is not a Tollgate setting and is ignored (.env.example lists them)"
            ),
        }
    }
}

/// How long refused calls are kept for the monitor and security pages.
const REFUSALS_KEPT: chrono::Duration = chrono::Duration::days(30);

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        // Pages would still render, but with no styles or scripts.
        let pkg = std::path::Path::new(&config.site_root).join("pkg");
        if !pkg.is_dir() {
            tracing::warn!(
                site_root = %config.site_root,
                "LEPTOS_SITE_ROOT has no pkg/ directory: pages will have no styles or scripts \
                 (build the site with `cargo leptos build`, or point LEPTOS_SITE_ROOT at it)"
            );
        }
        let key_vars = std::cell::RefCell::new(Vec::new());
        let models =
            crate::gateway::providers::ModelTable::load(config.models_path.as_deref(), |var| {
                key_vars.borrow_mut().push(var.to_owned());
                std::env::var(var)
            })?;
        warn_of_unknown_settings(&config, &key_vars.into_inner());
        // Before migrating, and before giving back what a stopped process
        // left: it must have stopped.
        let database_lock = DatabaseLock::take(&config.database_url)?;
        let database_file = Store::database_file(&config.database_url);
        let is_new = database_file.as_ref().is_some_and(|file| !file.exists());
        let store = Store::open(&config.database_url).await?;
        // Which file, and whether it was just made: a mistyped DATABASE_URL
        // shows as a new, empty database.
        match database_file {
            Some(file) if is_new => {
                tracing::info!(database = %file.display(), "created a new, empty database");
            }
            Some(file) => tracing::info!(database = %file.display(), "opened the database"),
            None => tracing::info!("the database is in memory: nothing outlives this process"),
        }
        let keys_stored = store.has_api_keys().await?;
        let key_hasher = Arc::new(KeyHasher::load(
            config.key_secret.as_ref().map(Secret::expose),
            &Store::data_dir(&config.database_url).unwrap_or_default(),
            keys_stored,
        )?);
        check_key_secret(&store, &key_hasher, keys_stored, &config).await?;
        let left = store.release_what_a_stop_left_taken().await?;
        if left.holds > 0 || left.capped_uses > 0 {
            tracing::warn!(
                holds = left.holds,
                capped_uses = left.capped_uses,
                "gave back the credit holds and one-time key uses of calls a stopped process never settled"
            );
        }
        let listener =
            TcpListener::bind(config.addr)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: config.addr,
                    source,
                })?;
        let bound = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.addr,
            source,
        })?;
        if let Some((email, password)) = &config.bootstrap_admin {
            let meta = RequestMeta::default();
            match service::ensure_admin(&store, &meta, email, password.expose()).await {
                Ok(service::AdminSetUp::Created) => {
                    tracing::info!("created the admin account from TOLLGATE_ADMIN_EMAIL");
                }
                Ok(service::AdminSetUp::AlreadyAdmin) => {}
                // Said, not silently skipped: the operator expects an admin.
                Ok(service::AdminSetUp::TakenByUser) => tracing::warn!(
                    "TOLLGATE_ADMIN_EMAIL names an account that is not an administrator; no admin \
                     was created (make one with `tollgate create-admin --email …`)"
                ),
                Err(AccountError::Invalid(problems)) => {
                    let why: Vec<String> = problems
                        .into_iter()
                        .map(|p| format!("{}: {}", p.field, p.message))
                        .collect();
                    return Err(StartupError::BootstrapAdmin(why.join("; ")));
                }
                Err(other) => return Err(StartupError::BootstrapAdmin(other.to_string())),
            }
        }

        let sessions = crate::store::SessionRows::open(store.pool().clone())
            .await
            .map_err(|e| StartupError::Sessions(e.to_string()))?;
        let login_throttle = Arc::new(LoginThrottle::new(
            config.login_attempts_per_ip,
            config.login_attempts_per_account,
        ));
        let signup_throttle = Arc::new(SignupThrottle::new(config.signups_per_ip));
        passwords::warm_up();

        let gateway = Arc::new(crate::gateway::Gateway::new(
            &config,
            models,
            store.clone(),
        )?);
        let (stop_writer, writer_stopped) = tokio::sync::watch::channel(false);
        let write_behind =
            tokio::spawn(write_behind(gateway.clone(), store.clone(), writer_stopped));
        let instruments = crate::instruments::Instruments::new();
        let background = vec![
            // Histogram samples are kept until upkeep folds them into the
            // buckets: without it, a server nobody scrapes would keep every
            // call's latencies, and they would pin freed memory.
            every(Duration::from_secs(5), {
                let instruments = instruments.clone();
                move || {
                    instruments.run_upkeep();
                    std::future::ready(())
                }
            }),
            tokio::spawn({
                let sessions = sessions.clone();
                async move {
                    let _ = sessions
                        .continuously_delete_expired(Duration::from_secs(3600))
                        .await;
                }
            }),
            every(Duration::from_secs(60), {
                let (login, signup) = (login_throttle.clone(), signup_throttle.clone());
                move || {
                    login.forget_idle();
                    signup.forget_idle();
                    std::future::ready(())
                }
            }),
            every(Duration::from_secs(3600), {
                let store = store.clone();
                move || {
                    let store = store.clone();
                    async move {
                        if let Err(error) = store.forget_old_refusals(REFUSALS_KEPT).await {
                            tracing::warn!(%error, "could not delete old refused-call records");
                        }
                        // Yesterday's day window is kept, for calls stamped
                        // just before midnight that are still being admitted.
                        let yesterday = crate::gateway::limits::Buckets::at(
                            chrono::Utc::now() - chrono::Duration::days(1),
                        );
                        if let Err(error) = store.forget_past_windows(&yesterday.day).await {
                            tracing::warn!(%error, "could not delete past limit windows");
                        }
                    }
                }
            }),
        ];

        let state = AppState(Arc::new(Shared {
            gateway: gateway.clone(),
            leptos_options: leptos_options(&config),
            public_url: config.public_url_for(bound).into(),
            store,
            login_throttle,
            signup_throttle,
            key_hasher,
            config: Arc::new(config),
            instruments,
        }));
        let router = router(state.clone(), sessions);
        Ok(Self {
            listener,
            router,
            state,
            background,
            write_behind,
            stop_writer,
            _database_lock: database_lock,
        })
    }

    /// The database handle, for tests that check what the server wrote.
    pub fn store(&self) -> Store {
        self.state.store.clone()
    }

    /// The bound address (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for
    /// up to the configured grace period.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let grace = self.state.config.shutdown_grace;
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!(
                grace_secs = grace.as_secs(),
                "shutting down; finishing in-flight requests"
            );
            let _ = stopping_tx.send(());
        };
        let header_timeout = self.state.config.header_timeout;
        let serve = serve_connections(self.listener, self.router, header_timeout, signal);
        let deadline = async move {
            match stopping_rx.await {
                Ok(()) => tokio::time::sleep(grace).await,
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(serve);
        tokio::select! {
            result = &mut serve => result?,
            () = deadline => {
                // The calls still running stop: each settles what it produced
                // and answers (a 503, a stream's error event). Serving on a
                // moment longer lets those answers out and the connections
                // close; a call that did not stop in time (one in its
                // admission) gets its hold back whole below.
                tracing::warn!("grace period over; stopping the calls still running");
                self.state.gateway.stop_calls();
                match tokio::time::timeout(Duration::from_secs(1), &mut serve).await {
                    Ok(result) => result?,
                    Err(_) => tracing::warn!("connections still open after the calls were stopped"),
                }
            }
        }
        // A stream whose client stopped reading is not polled, so it never saw
        // the stop: it is charged here for what it sent.
        let unread = self.state.gateway.settle_unread_streams();
        if unread > 0 {
            tracing::warn!(
                unread,
                "settled the streams whose clients had stopped reading"
            );
        }
        let released = self.state.gateway.accounts.release_open_holds();
        if released > 0 {
            tracing::warn!(released, "released the credit holds of calls still running");
        }
        for task in &self.background {
            task.abort();
        }
        let _ = self.stop_writer.send(true);
        let _ = self.write_behind.await;
        self.state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Serves `router` on `listener` until `signal` completes, then waits for
/// the connections to finish what they are doing and close (what
/// `axum::serve(…).with_graceful_shutdown` does; an idle one closes at
/// once). Its own loop, with hyper's header read timeout on
/// (`header_timeout`, which also ends connections idle between requests):
/// axum::serve gives hyper no timer, so a connection that sent nothing, sent
/// its headers a byte at a time, or idled was kept open for ever, and one
/// client could hold every file descriptor.
async fn serve_connections(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::{
        rt::{TokioIo, TokioTimer},
        server::graceful::GracefulShutdown,
        service::TowerToHyperService,
    };
    let graceful = GracefulShutdown::new();
    tokio::pin!(signal);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors, say: wait a moment rather than spin.
                Err(error) => {
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        // Streams are many small writes: without TCP_NODELAY, Nagle's algorithm
        // and delayed ACKs hold each chunk back by about 40 ms.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        // The peer's address, as `into_make_service_with_connect_info` gives it.
        let service = tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        );
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // HTTP/1.1 only: hyper's timer then runs from the connection's
            // first moment. Served as either, a connection was timed only
            // once its first bytes had shown which (a silent one, or one
            // sending part of HTTP/2's preface, never), and HTTP/2 has no
            // header timeout at all. TLS and HTTP/2 belong to a proxy.
            let mut http1 = hyper::server::conn::http1::Builder::new();
            http1
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let connection =
                http1.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Runs `task` now and then every `period`, until the server stops.
fn every<F, Fut>(period: Duration, mut task: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        loop {
            ticks.tick().await;
            task().await;
        }
    })
}

/// How long queued gateway records wait, at most, to be batched.
const WRITE_BEHIND_EVERY: Duration = Duration::from_millis(20);

/// Writes the gateway's queued records in batches until `stopped`, and forgets
/// past windows and idle users' minute windows once a minute. A failed batch
/// stays queued and is retried a second later, whether or not more comes.
async fn write_behind(
    gateway: Arc<crate::gateway::Gateway>,
    store: Store,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut last_tidy = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = store.queued() => {}
            _ = stopped.changed() => return,
        }
        tokio::time::sleep(WRITE_BEHIND_EVERY).await;
        if let Err(error) = store.flush().await {
            tracing::error!(%error, "could not write queued gateway records; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if last_tidy.elapsed() > Duration::from_secs(60) {
            let kept = crate::gateway::limits::buckets_kept(chrono::Utc::now());
            gateway
                .accounts
                .forget_windows_except(&kept.each_ref().map(String::as_str));
            gateway.limiters.forget_idle_users(&gateway.accounts);
            last_tidy = tokio::time::Instant::now();
        }
    }
}

/// Completes on Ctrl-C or SIGTERM. SIGHUP (a closed terminal, a log rotator
/// asking to reopen files) is logged and ignored: its default would end the
/// process at once, cutting the calls in flight; there is nothing to reload.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    #[cfg(unix)]
    let hang_up = async {
        if let Ok(mut sighup) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            while sighup.recv().await.is_some() {
                tracing::warn!(
                    "SIGHUP ignored: there are no settings to reload; stop the server with SIGTERM or Ctrl-C"
                );
            }
        }
        std::future::pending::<()>().await
    };
    #[cfg(not(unix))]
    let hang_up = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
        () = hang_up => {},
    }
}

fn leptos_options(config: &Config) -> LeptosOptions {
    let env = match config.leptos_prod {
        Some(true) => Env::PROD,
        Some(false) => Env::DEV,
        None if cfg!(debug_assertions) => Env::DEV,
        None => Env::PROD,
    };
    LeptosOptions::builder()
        .output_name("tollgate")
        .site_root(config.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(config.addr)
        .env(env)
        .build()
}

/// The app's page routes, generated once per process. Generating them runs
/// the whole app with resource loading suspended by a process-wide flag
/// (leptos_server's `SuppressResourceLoad`): a page rendered by another server
/// in the same process at that moment (the tests run many) would wait forever
/// for a resource that never loads.
fn page_routes() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> =
        std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

fn router(state: AppState, sessions: crate::store::SessionRows) -> Router {
    let routes = page_routes();
    let body_rules = body_limit::BodyRules::of(&state.config);
    let session_layer = SessionManagerLayer::new(sessions)
        .with_name(crate::accounts::cookie_names::SESSION.on(state.config.is_https()))
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.config.is_https())
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::try_from(state.config.session_idle)
                .unwrap_or(tower_sessions::cookie::time::Duration::days(7)),
        ));
    let site = same_origin::SiteOrigin {
        url: state.public_url.clone(),
        configured: state.config.public_url.is_some(),
    };
    let trusted_proxies: Arc<[ipnet::IpNet]> = state.config.trusted_proxies.clone().into();

    // The dashboard and its REST API: sessions and the same-origin check apply
    // here only; the model API authenticates by key and never reads a session.
    let record =
        || middleware::from_fn_with_state(state.clone(), crate::instruments::record_request);
    let limit_body = || middleware::from_fn_with_state(body_rules, body_limit::limit_request_body);
    let dashboard = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/api/v1/plans", get(keys::list_plans))
        .route("/api/v1/me", get(keys::me))
        .route("/api/v1/me/plan", put(keys::switch_plan))
        .route("/api/v1/keys", get(keys::list_keys).post(keys::create_key))
        .route(
            "/api/v1/keys/{id}",
            get(keys::get_key)
                .patch(keys::update_key)
                .delete(keys::revoke_key),
        )
        .route("/api/v1/keys/{id}/rotate", post(keys::rotate_key))
        .route("/api/v1/keys/{id}/end-grace", post(keys::end_grace))
        .route(
            "/api/v1/usage/export",
            get(crate::routes::usage::export_calls),
        )
        .route("/api/v1/admin/users", get(admin::list_users))
        .route(
            "/api/v1/admin/users/{id}/disable",
            post(admin::disable_user),
        )
        .route("/api/v1/admin/users/{id}/enable", post(admin::enable_user))
        .route(
            "/api/v1/admin/users/{id}/password-reset",
            post(admin::password_reset_link),
        )
        .route(
            "/api/v1/admin/users/{id}/credits",
            post(admin::adjust_credits),
        )
        .route("/api/v1/admin/users/{id}/plan", put(admin::assign_plan))
        .route("/api/v1/admin/users/{id}/limits", put(admin::set_limits))
        .route(
            "/api/v1/admin/users/{id}/keys/revoke",
            post(admin::revoke_all_keys),
        )
        .route(
            "/api/v1/admin/users/{id}/keys/{key_id}/revoke",
            post(admin::revoke_key),
        )
        .route(
            "/api/v1/admin/users/{id}/keys/rotate",
            post(admin::rotate_all_keys),
        )
        .route(
            "/api/v1/admin/users/{id}/usage/export",
            get(admin::export_user_calls),
        )
        .route("/api/v1/admin/balances", get(admin::list_balances))
        .route("/api/v1/admin/audit", get(admin::audit_log))
        .route("/api/v1/admin/monitor", get(admin::monitor))
        .route("/api/v1/{*rest}", any(crate::routes::unknown_api_route))
        // For the routes above only: pages and server functions keep axum's.
        .method_not_allowed_fallback(crate::routes::wrong_api_method)
        .route("/metrics", get(crate::instruments::metrics))
        .leptos_routes_with_context(
            &state,
            routes,
            {
                let state = state.clone();
                move || provide_context(state.clone())
            },
            {
                let options = state.leptos_options.clone();
                move || shell(options.clone())
            },
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell));
    // Counting is the outermost of a router's layers, so it counts what they
    // refuse too (a body too large, a form from another site). A router's
    // layers run after routing: requests are counted under their route's
    // template, the rest (static files, unknown pages, scans) as `unmatched`.
    let dashboard = with_dashboard_headers(dashboard)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::accounts::session::check_on_arrival,
        ))
        .layer(session_layer)
        .layer(middleware::map_response(
            crate::accounts::cookie_names::secure_host_only,
        ))
        .layer(limit_body())
        .layer(middleware::from_fn_with_state(
            site.clone(),
            same_origin::require_same_origin,
        ))
        .layer(middleware::from_fn_with_state(
            site,
            same_origin::drop_foreign_form_errors,
        ))
        .layer(record());
    let model_api = for_browsers(
        model_api()
            .layer(middleware::from_fn_with_state(
                state.clone(),
                gateway::limit_body,
            ))
            .route_layer(record()),
        &state.config,
    );

    let app = Router::new()
        .merge(model_api)
        .merge(dashboard)
        .with_state(state);
    // The layers every request passes, outermost first, so every response,
    // even a refused one, carries the request id and is traced. Our own body
    // limit replaces axum's per-extractor default, so every route agrees.
    // They wrap the router once, as one service: `Router::layer` would wrap
    // each route in a boxed service of its own, and a route's service is
    // cloned for every request, each boxed layer cloning the ones inside it.
    let layered = ServiceBuilder::new()
        .map_request(drop_unusable_request_id::<axum::body::Body>)
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(telemetry::request_span)
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(CatchPanicLayer::custom(crate::api_error::panicked))
        .layer(crate::gateway::client_ip::layer(trusted_proxies))
        .layer(DefaultBodyLimit::disable())
        .map_request(api_near_misses::<axum::body::Body>)
        .service(app);
    Router::new().fallback_service(layered)
}

/// A caller's own `x-request-id` is kept (its log lines and answer carry it)
/// only when it looks like an id: up to 64 letters, digits and `-_.:`.
/// Anything else is replaced by a new one, as one request could otherwise
/// write megabytes to the log (the id is in every line of the request).
fn drop_unusable_request_id<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    let usable = |id: &[u8]| {
        (1..=64).contains(&id.len())
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    };
    let headers = request.headers_mut();
    if headers
        .get_all("x-request-id")
        .iter()
        .any(|id| !usable(id.as_bytes()))
    {
        headers.remove("x-request-id");
    }
    request
}

/// A path that is the model API's but for its case or doubled slashes
/// (`/Response`, `//response`, `/V1/models`, `///v1/…`) is answered as one
/// of its unknown routes, in its shape with its rate-limit headers, rather
/// than with the site's page; so is one of OpenAI's paths without `/v1`
/// (`/Chat/completions`, `//responses`), with the answer that says where the
/// API lives. Logs and traces keep the path as sent: this runs inside them.
fn api_near_misses<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    if let Some(target) = api_near_miss(request.uri().path()) {
        let mut parts = request.uri().clone().into_parts();
        parts.path_and_query = Some(axum::http::uri::PathAndQuery::from_static(target));
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// The route a near miss is answered by, if `path` is one.
fn api_near_miss(path: &str) -> Option<&'static str> {
    let trimmed = path.trim_start_matches('/');
    let first = trimmed.split('/').next().unwrap_or_default();
    let doubled = path.len() - trimmed.len() > 1;
    let near = |name: &str| first.eq_ignore_ascii_case(name) && (doubled || first != name);
    if near("v1") || near("response") {
        Some("/v1/")
    } else if ["chat", "completions", "models", "embeddings", "responses"]
        .into_iter()
        .any(near)
    {
        // Answered by `gateway::missing_v1`.
        Some("/responses")
    } else {
        None
    }
}

/// What every dashboard answer carries: it may not be framed (a page on a
/// sibling subdomain could frame the admin pages and steer clicks on their
/// buttons) nor sniffed, its address is not sent to other sites, and a page or a JSON answer, which may show a new
/// key or balances, is kept in no cache; the static files keep theirs.
fn with_dashboard_headers(router: Router<AppState>) -> Router<AppState> {
    use axum::http::{HeaderValue, header};
    fn no_store_for_pages(response: &axum::response::Response) -> Option<HeaderValue> {
        // Pages and JSON answers (a new key's secret, balances); not files.
        let is_page = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|kind| {
                kind.as_bytes().starts_with(b"text/html")
                    || kind.as_bytes().starts_with(b"application/json")
            });
        is_page.then(|| HeaderValue::from_static("no-store"))
    }
    router.layer(
        ServiceBuilder::new()
            .layer(SetResponseHeaderLayer::overriding(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("frame-ancestors 'none'"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            // Links out do not carry the page's address (a failed form's
            // values ride in its query); our own same-origin check still
            // gets its Referer.
            .layer(SetResponseHeaderLayer::if_not_present(
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                no_store_for_pages as fn(&axum::response::Response) -> Option<HeaderValue>,
            )),
    )
}

/// The developers' model API: `/v1/chat/completions`, `/v1/models` (and one
/// model at `/v1/models/{model}`, whose name may hold slashes), the simple
/// `/response`, and an API-shaped 404 for the rest of `/v1` and for OpenAI's
/// paths without it.
fn model_api() -> Router<AppState> {
    let wrong_method = gateway::method_not_allowed;
    Router::new()
        .route(
            "/v1/chat/completions",
            post(gateway::chat_completions).fallback(wrong_method),
        )
        .route(
            "/v1/models",
            get(gateway::list_models).fallback(wrong_method),
        )
        .route(
            "/v1/models/{*model}",
            get(gateway::get_model).fallback(wrong_method),
        )
        .route(
            "/response",
            post(gateway::simple_response).fallback(wrong_method),
        )
        .route("/chat/completions", any(gateway::missing_v1))
        .route("/completions", any(gateway::missing_v1))
        .route("/models", any(gateway::missing_v1))
        .route("/embeddings", any(gateway::missing_v1))
        .route("/responses", any(gateway::missing_v1))
        .route("/v1", any(gateway::unknown_route))
        .route("/v1/", any(gateway::unknown_route))
        .route("/v1/{*rest}", any(gateway::unknown_route))
        // Near misses of the API's paths answer in its shape too, not with
        // the site's page: a trailing slash here, a capital or a doubled
        // slash by `api_near_misses`.
        .route("/response/", any(gateway::unknown_route))
        .route("/response/{*rest}", any(gateway::unknown_route))
}

/// Wraps the model API for browser callers: CORS outermost, so a refusal
/// from the layers inside (413) reaches a browser as itself rather than as a
/// CORS failure, and so does the 500 of a handler that panicked, caught here
/// (the catch around the whole app answers outside CORS).
fn for_browsers<S: Clone + Send + Sync + 'static>(router: Router<S>, config: &Config) -> Router<S> {
    router
        .layer(CatchPanicLayer::custom(crate::api_error::panicked))
        .layer(cors(config))
}

/// CORS for browser callers of the model API (the key's referrer rule still applies).
fn cors(config: &Config) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, Method, header};
    use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

    let origins = match &config.cors_origins {
        None => AllowOrigin::any(),
        Some(list) => AllowOrigin::list(list.iter().filter_map(|o| o.parse().ok())),
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        // Whatever headers the caller's preflight names: the OpenAI SDKs send
        // their own (`x-stainless-*`, `openai-organization`), and the key, not
        // a header list, is what guards the API.
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-ratelimit-limit-requests"),
            HeaderName::from_static("x-ratelimit-remaining-requests"),
            HeaderName::from_static("x-ratelimit-reset-requests"),
            HeaderName::from_static("x-ratelimit-limit-tokens"),
            HeaderName::from_static("x-ratelimit-remaining-tokens"),
            HeaderName::from_static("x-ratelimit-reset-tokens"),
            // Read by the OpenAI SDKs, in a browser too: a refusal that
            // waiting will not end is not retried.
            HeaderName::from_static("x-should-retry"),
        ])
        .max_age(Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use axum::{
        Router,
        body::Body,
        http::{Request, StatusCode, header},
        routing::post,
    };
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use crate::config::Config;

    async fn a_handler_with_a_bug() -> StatusCode {
        panic!("a bug in a handler")
    }

    /// A browser caller sees a model API handler's panic as the API's 500,
    /// not as a CORS failure with no answer it can read.
    #[tokio::test]
    async fn a_panic_in_the_model_api_answers_with_cors_headers() {
        let config = Config::from_lookup(|_| None).unwrap();
        let app = super::for_browsers(
            Router::new().route("/v1/chat/completions", post(a_handler_with_a_bug)),
            &config,
        );
        let request = Request::post("/v1/chat/completions")
            .header(header::ORIGIN, "https://app.example")
            .body(Body::empty())
            .unwrap();
        let answer = app.oneshot(request).await.unwrap();
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            answer.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some(&header::HeaderValue::from_static("*"))
        );
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(error["error"]["code"], "internal_error");
    }

    /// The API's own paths and the site's pages are left alone; only the
    /// API's paths with another case or doubled slashes are near misses.
    #[test]
    fn near_misses_of_the_api_paths() {
        for path in [
            "/Response",
            "/RESPONSE/",
            "//response",
            "//v1",
            "///v1/chat/completions",
            "/V1",
            "/V1/models",
        ] {
            assert_eq!(super::api_near_miss(path), Some("/v1/"), "{path}");
        }
        for path in [
            "/Chat/completions",
            "//chat/completions",
            "/Models",
            "//responses",
            "/Responses",
            "/EMBEDDINGS",
        ] {
            assert_eq!(super::api_near_miss(path), Some("/responses"), "{path}");
        }
        for path in [
            "/",
            "/v1",
            "/v1/",
            "/v1/chat/completions",
            "/v1//chat/completions",
            "/response",
            "/response/",
            "/responses",
            "/chat/completions",
            "/models",
            "/v10/models",
            "/login",
            "//",
            "",
            "/pkg/tollgate.js",
        ] {
            assert_eq!(super::api_near_miss(path), None, "{path}");
        }
    }
}
