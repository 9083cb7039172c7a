//! `zixly fx import FILE`: exchange rates into the global `fx_rates` table (system path).
//!
//! Layouts: the ECB euro reference rates (`Date,USD,JPY,...`, units per 1 EUR, `N/A` skipped) or
//! `date,currency,rate[,base]` (units of `currency` per 1 `base`, default EUR). Conversions use
//! the latest rate on or before a date, at most 7 days older (migrations/0003_ingest.sql).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use zixly_domain::ingest::fx::{parse_fx_csv, FxLayout};

use crate::env::{Database, Global};

#[derive(Subcommand)]
pub enum FxCommand {
    /// Import exchange rates: the ECB reference-rate CSV (Date,USD,JPY,...; per 1 EUR) or
    /// date,currency,rate[,base] (rate = units of currency per 1 base; base defaults to EUR).
    Import {
        /// CSV file.
        file: PathBuf,
    },
}

pub async fn run(global: &Global, command: FxCommand) -> Result<ExitCode> {
    let FxCommand::Import { file } = command;
    let name = file.display().to_string();
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {name}"))?;
    let parsed = match parse_fx_csv(bytes.as_slice()) {
        Ok(parsed) => parsed,
        Err(errors) => {
            for e in errors.iter().take(100) {
                eprintln!("{}", e.display_in(&name));
            }
            if errors.len() > 100 {
                eprintln!("{name}: ... and {} more errors", errors.len() - 100);
            }
            println!("{name}: nothing imported ({} errors)", errors.len());
            return Ok(ExitCode::from(1));
        }
    };
    let (layout, source) = match parsed.layout {
        FxLayout::Ecb => ("ECB reference-rate layout", "ecb"),
        FxLayout::Simple => ("date,currency,rate layout", "file"),
    };
    let db = Database::open(global, 1).await?;
    let result = db.system.import_fx_rates(&parsed.rates, source).await;
    db.close().await?;
    let counts = result?;
    let skipped = if parsed.skipped_columns.is_empty() {
        String::new()
    } else {
        format!(
            "; skipped retired currencies {}",
            parsed.skipped_columns.join(", ")
        )
    };
    println!(
        "{name}: {} rates ({layout}): {} inserted, {} updated, {} unchanged{skipped}",
        parsed.rates.len(),
        counts.inserted,
        counts.updated,
        counts.unchanged
    );
    Ok(ExitCode::SUCCESS)
}
