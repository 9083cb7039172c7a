//! `zixly migrate` and `zixly db ...`.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::env::{embedded_cluster, external_url, no_database, Database, Global, EMBEDDED_DB};

#[derive(Subcommand)]
pub enum DbCommand {
    /// Print a superuser connection URL for the embedded cluster (for psql and BI tools).
    Url,
}

pub async fn migrate(global: &Global) -> Result<ExitCode> {
    // Opening applies pending migrations (and starts/stops the embedded cluster when needed).
    let db = Database::open(global, 1).await?;
    db.close().await?;
    println!(
        "database schema is at version {}",
        zixly_db::migrate::latest_version()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn run(global: &Global, command: DbCommand) -> Result<ExitCode> {
    match command {
        DbCommand::Url => {
            if external_url().is_some() {
                bail!("DATABASE_URL is set: Zixly is using that database, not an embedded one");
            }
            let cluster = embedded_cluster(global)?;
            if !cluster.is_initialized() {
                bail!(no_database(&cluster));
            }
            println!("{}", cluster.superuser_url(EMBEDDED_DB)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
