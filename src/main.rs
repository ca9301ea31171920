//! The `tollgate` server binary.

#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() -> std::process::ExitCode {
    use std::process::ExitCode;
    use tollgate::{config::Config, startup, telemetry};

    // A missing .env is normal; a malformed one is worth stopping for.
    if let Err(error) = dotenvy::dotenv()
        && !error.not_found()
    {
        eprintln!("tollgate: cannot read .env: {error}");
        return ExitCode::from(2);
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tollgate: {error}");
            return ExitCode::from(2);
        }
    };
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
            return ExitCode::FAILURE;
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

#[cfg(not(feature = "ssr"))]
fn main() {
    // The browser bundle is the library's `hydrate` entry point; there is no client binary.
}
