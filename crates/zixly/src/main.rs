//! The `zixly` binary: one executable with subcommands.
//!
//! Layout: `main.rs` parses the command line (clap) and dispatches; `env.rs` resolves which
//! database to use (the embedded cluster of `--data-dir`, or `DATABASE_URL`); `cmd/` has one file
//! per command.

mod cmd;
mod demo;
mod env;

/// mimalloc instead of glibc's malloc: the server's request path (rows → views → JSON) is
/// allocation-heavy, and glibc's malloc/free took ~18% of its CPU under the API benchmark
/// (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "zixly",
    version,
    about = "Zixly — self-hosted, multi-tenant business-KPI platform",
    long_about = "Zixly pulls client numbers from accounting and CRM systems or CSV files, loads them into \
PostgreSQL as per-client time series, and serves dashboards and a REST API, with tenants isolated by \
PostgreSQL row-level security.\n\nWithout DATABASE_URL every command uses the embedded PostgreSQL cluster \
in --data-dir, starting it when needed and stopping what it started.",
    after_help = "Quick start:  zixly up        (then open http://127.0.0.1:8080)"
)]
struct Cli {
    /// Data directory of the embedded database (used when DATABASE_URL is unset).
    #[arg(
        long,
        global = true,
        env = "ZIXLY_DATA_DIR",
        default_value = "./.zixly"
    )]
    data_dir: PathBuf,

    /// Log format on stderr.
    #[arg(long, global = true, env = "ZIXLY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Zixly with its embedded PostgreSQL: initialise on first start, migrate, serve HTTP.
    Up(cmd::server::UpArgs),
    /// Run the server against DATABASE_URL (an external PostgreSQL 15+).
    Serve(cmd::server::ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Embedded database utilities.
    #[command(subcommand)]
    Db(cmd::db::DbCommand),
    /// Manage tenants (cross-tenant administration).
    #[command(subcommand)]
    Tenant(cmd::tenant::TenantCommand),
    /// Manage users of a tenant.
    #[command(subcommand)]
    User(cmd::user::UserCommand),
    /// Direct-SQL logins for BI tools, each confined to one tenant's business data.
    #[command(subcommand)]
    BiRole(cmd::bi_role::BiRoleCommand),
    /// Import a CSV file of financials, lead events or custom metrics into a tenant.
    #[command(subcommand)]
    Import(cmd::import::ImportCommand),
    /// Exchange rates (global reference data).
    #[command(subcommand)]
    Fx(cmd::fx::FxCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Run background jobs (integration syncs and their scheduler) without serving HTTP.
    Worker(cmd::worker::WorkerArgs),
    /// Sync one integration of a tenant now.
    Sync(cmd::sync::SyncArgs),
    /// Encryption keys of stored provider tokens.
    #[command(subcommand)]
    Keys(cmd::keys::KeysCommand),
}

/// The log filter without `ZIXLY_LOG`: `info`, but PostgreSQL's NOTICE messages (which
/// tokio-postgres logs at INFO) only from `warn` up, so that a terminal shows what Zixly says.
const DEFAULT_LOG_FILTER: &str = "info,tokio_postgres=warn";

fn init_logging(format: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("ZIXLY_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    // Colours only on a terminal (a file, a pipe or journald gets plain text), and never with
    // NO_COLOR set (https://no-color.org).
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let global = env::Global {
            data_dir: cli.data_dir,
            may_create: matches!(cli.command, Command::Up(_)),
        };
        match cli.command {
            Command::Up(args) => cmd::server::up(&global, args).await,
            Command::Serve(args) => cmd::server::serve(&global, args).await,
            Command::Migrate => cmd::db::migrate(&global).await,
            Command::Db(c) => cmd::db::run(&global, c).await,
            Command::Tenant(c) => cmd::tenant::run(&global, c).await,
            Command::User(c) => cmd::user::run(&global, c).await,
            Command::BiRole(c) => cmd::bi_role::run(&global, c).await,
            Command::Import(c) => cmd::import::run(&global, c).await,
            Command::Fx(c) => cmd::fx::run(&global, c).await,
            Command::Bench(c) => cmd::bench::run(&global, c).await,
            Command::Worker(a) => cmd::worker::run(&global, a).await,
            Command::Sync(a) => cmd::sync::run(&global, a).await,
            Command::Keys(c) => cmd::keys::run(&global, c).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<env::UsageError>().is_some() => {
            eprintln!("error: {e:#}\n\nFor more information, try '--help'.");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every option, argument and subcommand of every command explains itself in `--help`.
    #[test]
    fn every_option_and_command_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(sub_path.clone());
                }
                walk(sub, &sub_path, missing);
            }
        }
        let cli = Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cli, "zixly", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }
}
