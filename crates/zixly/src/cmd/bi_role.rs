//! `zixly bi-role create|list|drop` — direct-SQL logins for BI tools, each confined to one tenant.
//!
//! The confinement is in the database (`zixly_db::bi_roles`, migrations/0008): the login's tenant
//! comes from a mapping only `zixly_owner` writes, keyed by the login itself, so nothing the BI tool
//! sets can re-point it. Role DDL needs a superuser or CREATEROLE: the embedded cluster's
//! superuser, or `DATABASE_URL`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use uuid::Uuid;
use zixly_db::bi_roles::{self, BiRoleName, DEFAULT_CONNECTION_LIMIT};
use zixly_db::connect::connect_target;
use zixly_domain::password::generate_password;

use crate::env::{Database, Global, UsageError};

#[derive(Subcommand)]
pub enum BiRoleCommand {
    /// Create a login role for a BI tool that sees one tenant's business data (read-only) and
    /// prints how to connect. Without --password-stdin a strong password is generated and printed
    /// once.
    Create {
        /// Role name: lower-case letters, digits and `_` (e.g. bi_acme).
        name: String,
        /// The tenant it may read (see `zixly tenant list`).
        #[arg(long)]
        tenant: Uuid,
        /// Read the password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
        /// Connections the login may hold at once.
        #[arg(long, default_value_t = DEFAULT_CONNECTION_LIMIT, value_parser = clap::value_parser!(i32).range(1..=1000))]
        connection_limit: i32,
    },
    /// List BI logins with their tenants.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Drop a BI login (the role and its tenant mapping) and end its open sessions.
    Drop {
        /// Role name.
        name: String,
    },
}

/// Passwords shorter than this are refused: a BI login is reachable by whoever reaches the
/// database port.
const MIN_PASSWORD_CHARS: usize = 12;

pub async fn run(global: &Global, command: BiRoleCommand) -> Result<ExitCode> {
    // Validate arguments and read the password before touching (or starting) the database.
    let password = match &command {
        BiRoleCommand::Create {
            name,
            password_stdin,
            ..
        } => {
            // A bad name is a bad argument: exit status 2.
            BiRoleName::parse(name).map_err(|e| UsageError(format!("{e:#}")))?;
            Some(if *password_stdin {
                let mut input = String::new();
                std::io::stdin()
                    .read_to_string(&mut input)
                    .context("reading the password from standard input")?;
                let line = input.lines().next().unwrap_or("").to_string();
                if line.chars().count() < MIN_PASSWORD_CHARS {
                    bail!("--password-stdin: the password must have at least {MIN_PASSWORD_CHARS} characters");
                }
                (line, false)
            } else {
                (generate_password(), true)
            })
        }
        _ => None,
    };
    let db = Database::open(global, 1).await?;
    let result = execute(&db, command, password).await;
    db.close().await?;
    result
}

async fn execute(
    db: &Database,
    command: BiRoleCommand,
    password: Option<(String, bool)>,
) -> Result<ExitCode> {
    match command {
        BiRoleCommand::Create {
            name,
            tenant,
            connection_limit,
            ..
        } => {
            let name = BiRoleName::parse(&name)?;
            let (password, generated) = password.context("password read before connecting")?;
            bi_roles::create(&db.admin_url, &name, tenant, &password, connection_limit).await?;
            let tx = db.app.begin_tenant(tenant).await?;
            tx.append_audit(&crate::env::cli_audit(
                "bi_role.create",
                "bi_role",
                Some(name.to_string()),
                serde_json::json!({"connection_limit": connection_limit}),
            ))
            .await?;
            tx.commit().await?;
            let tenant_name = db
                .system
                .list_tenants()
                .await?
                .into_iter()
                .find(|t| t.id == tenant)
                .map(|t| t.name)
                .unwrap_or_default();
            let target = connect_target(&db.admin_url)?;
            println!("Created BI login {name} for tenant \"{tenant_name}\" ({tenant}).");
            if generated {
                println!("Password (shown only now): {password}");
            }
            println!();
            println!("Connect with:");
            println!(
                "  psql \"host={} port={} dbname={} user={name}\"",
                target.host, target.port, target.dbname
            );
            if target.unix_socket {
                println!(
                    "  (the embedded cluster listens only on the Unix socket in {}; a BI tool on another \
                     machine needs PostgreSQL on TCP behind your own access controls)",
                    target.host
                );
            }
            println!();
            println!(
                "It may read, for this tenant only: tenants, client_kpis, financials, lead_events, \
                 custom_metrics, fx_rates. At most {connection_limit} connections at once."
            );
            Ok(ExitCode::SUCCESS)
        }
        BiRoleCommand::List { json } => {
            let logins = bi_roles::list(&db.admin_url).await?;
            if json {
                println!("{}", serde_json::to_string(&logins)?);
            } else if logins.is_empty() {
                println!("no BI logins (create one with `zixly bi-role create NAME --tenant ID`)");
            } else {
                println!(
                    "{:<24}  {:<36}  {:>5}  TENANT",
                    "NAME", "TENANT ID", "CONNS"
                );
                for l in logins {
                    let note = if l.role_exists {
                        ""
                    } else {
                        "  (role dropped outside zixly: `zixly bi-role drop` removes the mapping)"
                    };
                    println!(
                        "{:<24}  {:<36}  {:>5}  {}{note}",
                        l.name, l.tenant_id, l.connection_limit, l.tenant_name
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BiRoleCommand::Drop { name } => {
            // Recorded in the tenant it served (looked up before the mapping goes).
            let tenant = bi_roles::list(&db.admin_url)
                .await?
                .into_iter()
                .find(|l| l.name == name)
                .map(|l| l.tenant_id);
            bi_roles::drop(&db.admin_url, &name).await?;
            if let Some(tenant) = tenant {
                let tx = db.app.begin_tenant(tenant).await?;
                tx.append_audit(&crate::env::cli_audit(
                    "bi_role.drop",
                    "bi_role",
                    Some(name.clone()),
                    serde_json::json!({}),
                ))
                .await?;
                tx.commit().await?;
            }
            println!("dropped BI login {name}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
