//! `zixly user add`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use uuid::Uuid;
use zixly_domain::password::{generate_password, hash_password};
use zixly_domain::{EmailAddress, Role};

use crate::env::{Database, Global};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user to a tenant. Without --password-stdin a strong password is generated and printed once.
    Add {
        /// The tenant's id (`zixly tenant list`).
        #[arg(long)]
        tenant: Uuid,
        /// The user's e-mail address: their login, unique in the tenant.
        #[arg(long, value_parser = parse_email)]
        email: EmailAddress,
        /// ADMIN (everything, including users and integrations), EDITOR (data and clients) or
        /// VIEWER (read only).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Read the password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
    },
}

/// The one email check ([`EmailAddress`]); a refusal is a usage error, like a bad role.
fn parse_email(s: &str) -> Result<EmailAddress, String> {
    EmailAddress::parse(s).map_err(|e| e.to_string())
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
        .map_err(|e: zixly_domain::role::UnknownRole| e.to_string())
}

pub async fn run(global: &Global, command: UserCommand) -> Result<ExitCode> {
    let UserCommand::Add {
        tenant,
        email,
        role,
        password_stdin,
    } = command;
    let (password, generated) = if password_stdin {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("reading the password from standard input")?;
        let line = input.lines().next().unwrap_or("").to_string();
        (line, false)
    } else {
        (generate_password(), true)
    };
    let hash = hash_password(&password).context("--password-stdin")?;

    let db = Database::open(global, 1).await?;
    let result = async {
        if !db.system.tenant_exists(tenant).await? {
            bail!("no tenant with id {tenant} (see `zixly tenant list`)");
        }
        let tx = db.app.begin_tenant(tenant).await?;
        let id = tx
            .insert_user(email.as_str(), role, Some(&hash))
            .await
            .map_err(|e| match e {
                zixly_db::DbError::UniqueViolation { .. } => {
                    anyhow::anyhow!("{email} is already a user of this tenant")
                }
                other => other.into(),
            })?;
        // The same action name and summary as a web invitation's acceptance would create.
        tx.append_audit(&crate::env::cli_audit(
            "user.create",
            "user",
            Some(id.to_string()),
            serde_json::json!({"email": email.as_str(), "role": role.as_str()}),
        ))
        .await?;
        tx.commit().await?;
        Ok(id)
    }
    .await;
    db.close().await?;
    let id = result?;
    println!("Added {email} as {role} (user id {id})");
    if generated {
        println!("Password (shown once): {password}");
    }
    Ok(ExitCode::SUCCESS)
}
