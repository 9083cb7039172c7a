//! `zixly migrate` and `zixly db ...`.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::env::{embedded_cluster, external_url, no_database, Database, Global, EMBEDDED_DB};

#[derive(Subcommand)]
pub enum DbCommand {
    /// Print a superuser connection URL for the embedded cluster (for psql and BI tools).
    Url,
    /// Print the statements that distribute the current schema on Citus (reference tables,
    /// tenant tables distributed by tenant_id and co-located); see docs/citus.md.
    CitusDdl,
    /// Show the statements that took the most database time (from pg_stat_statements), to find
    /// what to index or rewrite. Times are totals since the last `--reset`.
    Top {
        /// How many statements to show.
        #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(i64).range(1..=500))]
        limit: i64,
        /// Characters of each statement to show (the rest is cut with `…`).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(20..))]
        width: u16,
        /// Start the counts afresh after showing them.
        #[arg(long)]
        reset: bool,
    },
    /// Apply every tenant's raw-data retention now (the worker does it every 6 hours): delete
    /// raw daily financials before each tenant's cutoff, in batches, keeping the monthly totals;
    /// then drop the monthly partitions no tenant keeps. Set a tenant's period on its Data
    /// settings page or with `PUT /api/v1/settings/retention`.
    Retention {
        /// Rows deleted per transaction.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
        batch_rows: i64,
    },
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
        DbCommand::CitusDdl => {
            let db = Database::open(global, 1).await?;
            let plan = zixly_db::citus::plan(&db.admin_url).await;
            db.close().await?;
            let plan = plan?;
            if !plan.unclassified.is_empty() {
                bail!(
                    "tables without tenant_id that zixly_db::citus does not classify as reference or \
                     local: {} (decide in crates/zixly_db/src/citus.rs)",
                    plan.unclassified.join(", ")
                );
            }
            print!("{}", plan.ddl());
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Top {
            limit,
            width,
            reset,
        } => {
            let db = Database::open(global, 1).await?;
            let outcome = top(&db.admin_url, limit, usize::from(width), reset).await;
            db.close().await?;
            outcome?;
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Retention { batch_rows } => {
            let db = Database::open(global, 1).await?;
            let outcome = retention(&db.system, batch_rows).await;
            db.close().await?;
            outcome?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn retention(system: &zixly_db::SystemDb, batch_rows: i64) -> Result<()> {
    use std::io::Write;
    let started = std::time::Instant::now();
    let runs = system
        .apply_retention_with(batch_rows, |run| {
            // One line per tenant, rewritten after each batch.
            eprint!(
                "\rtenant {}: {} rows before {} deleted ({} batches, {:.1} s)",
                run.tenant_id,
                run.deleted,
                run.raw_data_from,
                run.batches,
                started.elapsed().as_secs_f64()
            );
            std::io::stderr().flush().ok();
        })
        .await;
    let runs = runs?;
    if !runs.is_empty() {
        eprintln!();
    }
    let deleted: u64 = runs.iter().map(|r| r.deleted).sum();
    println!(
        "{} with a retention period; {deleted} raw financial rows deleted in {:.1} s (monthly totals kept)",
        match runs.len() {
            1 => "1 tenant".to_string(),
            n => format!("{n} tenants"),
        },
        started.elapsed().as_secs_f64()
    );
    let dropped = system.drop_retained_partitions().await?;
    if dropped.is_empty() {
        println!("no partition to drop (some tenant keeps every month, or none is empty)");
    } else {
        println!(
            "dropped {} partitions: {}",
            dropped.len(),
            dropped.join(", ")
        );
    }
    Ok(())
}

async fn top(admin_url: &str, limit: i64, width: usize, reset: bool) -> Result<()> {
    let stats = zixly_db::statement_stats::top(admin_url, limit).await?;
    if stats.is_empty() {
        println!("no statements recorded yet");
    } else {
        println!(
            "{:>10} {:>9} {:>9} {:>9} {:>10} {:>5}  {:<14} statement",
            "total ms", "calls", "mean ms", "max ms", "rows", "hit%", "role"
        );
        for s in &stats {
            println!(
                "{:>10.1} {:>9} {:>9.2} {:>9.1} {:>10} {:>5}  {:<14} {}",
                s.total_ms,
                s.calls,
                s.mean_ms,
                s.max_ms,
                s.rows,
                s.hit_ratio
                    .map_or_else(|| "-".to_string(), |h| format!("{:.0}", h * 100.0)),
                s.role,
                one_line(&s.query, width)
            );
        }
    }
    if reset {
        zixly_db::statement_stats::reset(admin_url).await?;
        println!("statement statistics reset");
    }
    Ok(())
}

/// A statement on one line (runs of whitespace as one space), cut at `width` characters.
fn one_line(query: &str, width: usize) -> String {
    let flat = query.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(width) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn statements_print_on_one_line_cut_at_the_width() {
        assert_eq!(
            super::one_line("select 1\n  from  t", 100),
            "select 1 from t"
        );
        assert_eq!(super::one_line("select ééé from t", 9), "select éé…");
    }
}
