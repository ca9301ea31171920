//! The `tollgate` server binary.
//!
//! `tollgate` serves; `tollgate create-admin [--email EMAIL]` creates an admin
//! account, reading the password from the terminal without echo (or from stdin
//! when it is not a terminal); `tollgate replace-key-secret` puts a new key
//! secret in place, revoking every API key.

/// mimalloc: the gateway's calls allocate and free many small buffers across
/// threads, where glibc's malloc spent about 15% of the server's time and kept
/// per-thread arenas of freed memory.
#[cfg(feature = "ssr")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "ssr")]
fn main() -> std::process::ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => {
            eprintln!("tollgate: cannot start the async runtime: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "ssr")]
async fn run() -> std::process::ExitCode {
    use std::process::ExitCode;
    use tollgate::config::Config;

    let args: Vec<String> = std::env::args().skip(1).collect();
    // Help needs no configuration, so a broken one does not hide it; asked
    // after a command (`create-admin --help`) too.
    if args.first().is_some_and(|a| a == "help") || args.iter().any(|a| a == "-h" || a == "--help")
    {
        println!(
            "usage: tollgate                          start the server (settings from the environment and .env)\n       \
             tollgate create-admin [--email EMAIL]  create an admin account\n       \
             tollgate replace-key-secret            put a new key secret in place (revokes every API key)"
        );
        return ExitCode::SUCCESS;
    }
    // A missing .env is normal; a malformed one is worth stopping for. Only
    // the working directory's, not a parent's (dotenvy's `dotenv` looks up
    // the tree). A line it cannot parse is not repeated: its text is a value,
    // perhaps a password.
    if let Err(error) = dotenvy::from_path(".env")
        && !error.not_found()
    {
        match error {
            dotenvy::Error::LineParse(line, _) => eprintln!(
                "tollgate: cannot read .env: {} does not parse (quote values with spaces or $ in single quotes)",
                dot_env_line(&line)
            ),
            other => eprintln!("tollgate: cannot read .env: {other}"),
        }
        return ExitCode::from(2);
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tollgate: {error}");
            return ExitCode::from(2);
        }
    };
    match args.first().map(String::as_str) {
        None => serve(config).await,
        Some("create-admin") => create_admin(config, &args[1..]).await,
        Some("replace-key-secret") if args.len() == 1 => {
            match tollgate::startup::replace_key_secret(&config).await {
                Ok(revoked) => {
                    let keys = match revoked {
                        1 => "1 API key was".to_owned(),
                        n => format!("{n} API keys were"),
                    };
                    println!(
                        "The new key secret is in place; {keys} revoked, as none works under it. Their owners must make new ones."
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("tollgate: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(other) => {
            eprintln!("tollgate: unknown command {other:?}; try `tollgate --help`");
            ExitCode::from(2)
        }
    }
}

/// Where in `.env` the line that does not parse is, by its number and the
/// setting it names, never its value (it may be a password). dotenvy's error
/// holds the line, or only its value.
#[cfg(feature = "ssr")]
fn dot_env_line(unparsed: &str) -> String {
    let first = unparsed.lines().next().unwrap_or_default().trim();
    let text = std::fs::read_to_string(".env").unwrap_or_default();
    let found = text.lines().enumerate().find(|(_, line)| {
        line.trim() == first
            || line
                .split_once('=')
                .is_some_and(|(_, value)| !first.is_empty() && value.trim() == first)
    });
    let number = found.map(|(i, _)| format!("line {}", i + 1));
    let name = found
        .map_or(first, |(_, line)| line)
        .trim_start()
        .trim_start_matches("export ")
        .split_once('=')
        .map(|(name, _)| name.trim())
        .filter(|name| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    match (number, name) {
        (Some(number), Some(name)) => format!("{number} ({name})"),
        (Some(number), None) => number,
        (None, Some(name)) => format!("the line of {name}"),
        (None, None) => "a line".to_owned(),
    }
}

#[cfg(feature = "ssr")]
async fn serve(config: tollgate::config::Config) -> std::process::ExitCode {
    use std::process::ExitCode;
    use tollgate::{startup, telemetry};

    let _log_guard = match telemetry::init(&config) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("tollgate: {error}");
            return ExitCode::from(2);
        }
    };
    let app = match startup::Application::build(config).await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(%error, "start-up failed");
            eprintln!("tollgate: {error}");
            // A bad model table is a configuration mistake, like a bad setting.
            return match error {
                startup::StartupError::Models(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            };
        }
    };
    tracing::info!("listening on http://{}", app.local_addr());
    match app.run_until(startup::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server error");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "ssr")]
async fn create_admin(config: tollgate::config::Config, args: &[String]) -> std::process::ExitCode {
    use std::{
        io::{BufRead, IsTerminal, Write},
        process::ExitCode,
    };
    use tollgate::{
        accounts::service::{self, AccountError, AdminSetUp},
        request_meta::RequestMeta,
        store::Store,
    };

    let email = match args {
        [flag, email] if flag == "--email" => email.clone(),
        [] => {
            print!("Admin email: ");
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line).is_err() {
                eprintln!("tollgate: could not read the email");
                return ExitCode::from(2);
            }
            line.trim().to_owned()
        }
        _ => {
            eprintln!("tollgate: usage: tollgate create-admin [--email EMAIL]");
            return ExitCode::from(2);
        }
    };
    let password = if std::io::stdin().is_terminal() {
        match rpassword::prompt_password("Admin password (not shown): ") {
            Ok(p) => p,
            Err(error) => {
                eprintln!("tollgate: could not read the password: {error}");
                return ExitCode::from(2);
            }
        }
    } else {
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_err() {
            eprintln!("tollgate: could not read the password from stdin");
            return ExitCode::from(2);
        }
        line.trim_end_matches(['\r', '\n']).to_owned()
    };

    let store = match Store::open(&config.database_url).await {
        Ok(store) => store,
        Err(error) => {
            eprintln!("tollgate: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = service::ensure_admin(&store, &RequestMeta::default(), &email, &password).await;
    store.close().await;
    match result {
        Ok(AdminSetUp::Created) => {
            println!("Created admin account {}.", email.trim().to_lowercase());
            ExitCode::SUCCESS
        }
        Ok(AdminSetUp::AlreadyAdmin | AdminSetUp::TakenByUser) => {
            eprintln!(
                "tollgate: a user with the email {email} already exists; nothing was changed"
            );
            ExitCode::FAILURE
        }
        Err(AccountError::Invalid(problems)) => {
            for p in problems {
                eprintln!("tollgate: {}: {}", p.field, p.message);
            }
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("tollgate: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "ssr"))]
fn main() {
    // The browser bundle is the library's `hydrate` entry point; there is no client binary.
}
