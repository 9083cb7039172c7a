//! `zixly tenant create|list|delete` — cross-tenant administration through the system path.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use uuid::Uuid;
use zixly_domain::CurrencyCode;

use crate::env::{Database, Global};

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; prints its id alone on the last line.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// ISO 4217 currency that reports are converted to.
        #[arg(long, default_value = "AUD")]
        base_currency: String,
        /// IANA time zone used to read naive timestamps in imports.
        #[arg(long, default_value = "Australia/Sydney")]
        time_zone: String,
    },
    /// List tenants.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a tenant and everything it owns.
    Delete {
        /// Tenant id.
        id: Uuid,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(global: &Global, command: TenantCommand) -> Result<ExitCode> {
    // Validate arguments before touching (or starting) the database.
    if let TenantCommand::Create {
        name,
        base_currency,
        time_zone,
    } = &command
    {
        if name.trim().is_empty() {
            crate::env::usage_error!("--name must not be empty");
        }
        base_currency
            .parse::<CurrencyCode>()
            .context("--base-currency")?;
        if time_zone.parse::<chrono_tz_check::Tz>().is_err() {
            bail!(
                "--time-zone: `{time_zone}` is not an IANA time zone (e.g. Australia/Sydney, UTC)"
            );
        }
    }
    if let TenantCommand::Delete { id, yes: false } = &command {
        if !confirm(
            &format!("Delete tenant {id} and all its data? Type the tenant id to confirm: "),
            &id.to_string(),
        )? {
            eprintln!("not deleted");
            return Ok(ExitCode::FAILURE);
        }
    }
    let db = Database::open(global, 1).await?;
    let result = execute(&db, command).await;
    db.close().await?;
    result
}

async fn execute(db: &Database, command: TenantCommand) -> Result<ExitCode> {
    match command {
        TenantCommand::Create {
            name,
            base_currency,
            time_zone,
        } => {
            let currency: CurrencyCode = base_currency.parse()?;
            let id = db.system.create_tenant(&name, currency, &time_zone).await?;
            let tx = db.app.begin_tenant(id).await?;
            tx.append_audit(&crate::env::cli_audit(
                "tenant.create",
                "tenant",
                Some(id.to_string()),
                serde_json::json!({"name": name.trim(), "base_currency": currency.to_string(), "time_zone": time_zone}),
            ))
            .await?;
            tx.commit().await?;
            println!(
                "Created tenant \"{}\" with base currency {currency}",
                name.trim()
            );
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        TenantCommand::List { json } => {
            let tenants = db.system.list_tenants().await?;
            if json {
                println!("{}", serde_json::to_string(&tenants)?);
            } else if tenants.is_empty() {
                println!("no tenants (create one with `zixly tenant create --name NAME`)");
            } else {
                println!(
                    "{:<36}  {:<3}  {:>5}  {:>7}  NAME",
                    "ID", "CUR", "USERS", "CLIENTS"
                );
                for t in tenants {
                    println!(
                        "{:<36}  {:<3}  {:>5}  {:>7}  {}",
                        t.id, t.base_currency, t.users, t.clients, t.name
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TenantCommand::Delete { id, .. } => {
            // Its BI logins first: a cluster-wide login role outliving its tenant would see
            // nothing (its mapping goes with the tenant), but it should not linger either.
            let bi_logins: Vec<String> = zixly_db::bi_roles::list(&db.admin_url)
                .await?
                .into_iter()
                .filter(|l| l.tenant_id == id)
                .map(|l| l.name)
                .collect();
            for name in &bi_logins {
                match zixly_db::bi_roles::drop(&db.admin_url, name).await {
                    Ok(()) => println!("dropped BI login {name}"),
                    Err(e) => eprintln!("warning: BI login {name} was not dropped: {e}"),
                }
            }
            if db.system.delete_tenant(id).await? {
                println!("deleted tenant {id}");
                Ok(ExitCode::SUCCESS)
            } else {
                bail!("no tenant with id {id}")
            }
        }
    }
}

fn confirm(prompt: &str, expected: &str) -> Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        crate::env::usage_error!("refusing to delete without confirmation: pass --yes (standard input is not a terminal)");
    }
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim() == expected)
}

/// Time-zone validation without pulling a tz database into this crate: the domain crate owns it.
mod chrono_tz_check {
    pub use zixly_domain::timezone::Tz;
}
