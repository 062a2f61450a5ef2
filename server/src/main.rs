//! `dashboard-server`: runs the API (the default command), or one of the operator's commands
//! (`cli/`: admin, reconcile, doctor), or mints a development token.

mod cli;

use clap::{Parser, Subcommand};
use dashboard_server::config::{self, ServerArgs};
#[cfg(feature = "embedded")]
use dashboard_server::dev;
use dashboard_server::logging;
use slog::info;
use std::process::ExitCode;

#[derive(Parser)]
#[command(version, about = "Babes Club member dashboard API server")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (the default when no command is given).
    Serve(Box<ServeArgs>),
    /// Print a development HS256 token for a member (development only).
    #[cfg(feature = "embedded")]
    MintToken(MintArgs),
    /// Reconcile orders with Stripe once: one member (its report as JSON), or every linked
    /// member (the full sweep) with progress, Ctrl-C to stop and `--resume` to go on.
    Reconcile(Box<cli::reconcile::ReconcileArgs>),
    /// Link members without a customer to the one Stripe customer with their verified email,
    /// in bulk: a dry run by default (what it would link, every ambiguity); `--apply` links.
    Backfill(Box<cli::backfill::BackfillArgs>),
    /// Act on one member as the admin API does: link, unlink, show-member, export, erase.
    Admin(cli::admin::AdminArgs),
    /// Check the configuration against its environment (store tables, JWKS, Stripe key,
    /// webhook secret) without serving: one line per check, non-zero exit if any fails.
    Doctor(Box<cli::doctor::DoctorArgs>),
    /// Run only the embedded DynamoDB-API store, as its own process (benchmarks, local tools).
    #[cfg(feature = "embedded")]
    Store(StoreArgs),
}

#[cfg(feature = "embedded")]
#[derive(clap::Args)]
struct StoreArgs {
    /// Persist to `dynamodb.sqlite` in this folder (default: in memory).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Do not create the demo member on the development default.
    #[arg(long)]
    no_seed: bool,
}

#[cfg(feature = "embedded")]
#[derive(clap::Args)]
struct MintArgs {
    /// The member's user id (the token's `sub`).
    #[arg(long)]
    user_id: String,
    /// Optional `email` claim.
    #[arg(long)]
    email: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl_secs: u64,
    /// OAuth scopes to include (repeatable). A member's scopes never make it admin.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Cognito groups to include as `cognito:groups` (repeatable); `dashboard-admins` (or
    /// `DASHBOARD_ADMIN_GROUP`) makes the member admin.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Folder of the development secret.
    #[arg(long, env = "DASHBOARD_DATA_DIR", default_value = ".dashboard")]
    data_dir: std::path::PathBuf,
    /// Sign with this shared secret instead of the development one.
    #[arg(long, env = "DASHBOARD_JWT_HS256_SECRET", hide_env_values = true,
          value_parser = |s: &str| Ok::<_, std::convert::Infallible>(secrecy::SecretString::from(s)))]
    jwt_hs256_secret: Option<secrecy::SecretString>,
    #[arg(long, env = "DASHBOARD_JWT_ISSUER", default_value = dev::DEV_ISSUER)]
    jwt_issuer: String,
    #[arg(long, env = "DASHBOARD_JWT_CLIENT_ID", default_value = dev::DEV_CLIENT_ID)]
    jwt_client_id: String,
}

/// Only to read `ServeArgs` from the environment when no command is given.
#[derive(Parser)]
struct DefaultServe {
    #[command(flatten)]
    args: ServeArgs,
}

// glibc's malloc took a fifth of the listing's CPU under load (malloc, _int_malloc, _int_free,
// malloc_consolidate at the top of perf's profile); with mimalloc the server spends about a
// quarter less CPU per request. Its Linux default commits arena memory ahead of use (peak RSS
// 37 MiB under the profile load against 27 MiB with `MIMALLOC_ARENA_EAGER_COMMIT=0`, at the
// same throughput); the option is read from the environment before `main`, so the template sets
// it for the Lambda functions.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or_else(|| {
        Command::Serve(Box::new(DefaultServe::parse_from(["dashboard-server"]).args))
    });
    match command {
        #[cfg(feature = "embedded")]
        Command::MintToken(args) => mint(args),
        #[cfg(feature = "embedded")]
        Command::Store(args) => runtime().block_on(store(args)),
        Command::Serve(args) => runtime().block_on(serve(*args)),
        Command::Reconcile(args) => runtime().block_on(cli::reconcile::run(*args)),
        Command::Backfill(args) => runtime().block_on(cli::backfill::run(*args)),
        Command::Admin(args) => runtime().block_on(cli::admin::run(args)),
        Command::Doctor(args) => runtime().block_on(cli::doctor::run(*args)),
    }
}

/// Tokio's multi-threaded runtime: one worker per core unless `TOKIO_WORKER_THREADS` says
/// otherwise (the template sets 1 for the Lambda functions, which serve one request at a time).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime")
}

/// Resolves the configuration and starts the server; failures are printed as one line. A
/// Secrets Manager read overlaps the start-up that does not need the secrets (the store's
/// client, the API's description, the authenticator).
async fn boot(
    mut args: ServerArgs,
) -> Result<(config::Config, slog::Logger, dashboard_server::RunningServer), ExitCode> {
    let configuration_error = |error: String| {
        eprintln!("dashboard-server: configuration error: {error}");
        ExitCode::from(2)
    };
    let pending = args.read_secrets().map_err(configuration_error)?;
    let mut config = args.resolve().map_err(configuration_error)?;
    let log = logging::logger(config.log_format, &config.log_level);
    let failure = |error: anyhow::Error| {
        eprintln!("dashboard-server: {error:#}");
        ExitCode::FAILURE
    };
    let prepared = dashboard_server::prepare(&config, &log).await.map_err(failure)?;
    if let Some(pending) = pending {
        let secrets = config::await_secrets(pending).await.map_err(configuration_error)?;
        config.apply_secrets(secrets).map_err(configuration_error)?;
    }
    let running =
        dashboard_server::start_prepared(&config, &log, prepared).await.map_err(failure)?;
    Ok((config, log, running))
}

/// Prints the endpoint on stdout, then serves until interrupted.
#[cfg(feature = "embedded")]
async fn store(args: StoreArgs) -> ExitCode {
    use std::io::Write;
    let store =
        match dashboard_server::storage::embedded::EmbeddedStore::start(args.data_dir.as_deref())
            .await
        {
            Ok(store) => store,
            Err(error) => {
                eprintln!("dashboard-server: {error:#}");
                return ExitCode::FAILURE;
            }
        };
    println!("{}", store.endpoint);
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
    store.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(feature = "embedded")]
fn mint(args: MintArgs) -> ExitCode {
    use secrecy::ExposeSecret;
    let secret = match args.jwt_hs256_secret {
        Some(secret) => secrecy::SecretSlice::from(secret.expose_secret().as_bytes().to_vec()),
        None => match dev::hs256_secret(&args.data_dir) {
            Ok(secret) => secret,
            Err(error) => {
                eprintln!("dashboard-server: {error}");
                return ExitCode::from(2);
            }
        },
    };
    let token = dev::mint_token(
        secret.expose_secret(),
        &args.jwt_issuer,
        &args.jwt_client_id,
        &dev::DevSubject {
            user_id: &args.user_id,
            email: args.email.as_deref(),
            scopes: &args.scopes,
            groups: &args.groups,
        },
        std::time::Duration::from_secs(args.ttl_secs),
    );
    println!("{token}");
    ExitCode::SUCCESS
}

async fn serve(args: ServeArgs) -> ExitCode {
    let data_dir = args.server.data_dir.clone();
    let (config, log, running) = match boot(args.server).await {
        Ok(booted) => booted,
        Err(code) => return code,
    };
    // Dropshot has written the "listening" record (with `local_addr`) as it started.
    #[cfg(feature = "embedded")]
    if config.auth.dev_mode && !args.no_seed {
        let sim = running.stripe_sim.as_ref();
        dev::seed(running.store(), running.orders(), sim, &log).await;
        let token = running.dev_token().unwrap_or_default();
        println!("{}", dev::banner(running.local_addr(), &data_dir, token));
    }
    #[cfg(not(feature = "embedded"))]
    let _ = (data_dir, &config, args.no_seed);
    tokio::select! {
        result = running.server.wait_for_shutdown() => {
            if let Err(error) = result {
                eprintln!("dashboard-server: {error}");
                return ExitCode::FAILURE;
            }
            return ExitCode::SUCCESS;
        }
        _ = tokio::signal::ctrl_c() => info!(log, "shutting down"),
    }
    // Close the store cleanly so the embedded SQLite file is consistent.
    if let Err(error) = running.stop().await {
        eprintln!("dashboard-server: {error:#}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
