//! `zixly keys rotate`: re-encrypt stored provider tokens and notification-channel secrets under a
//! new key.
//!
//! Embedded default (key file `<data dir>/encryption.keys`):
//! 1. `zixly keys rotate` appends a new current key to the file and re-encrypts every token
//!    under it (older keys stay in the file for decryption).
//! 2. Restart running servers/workers (they hold the previous keyring and would keep encrypting
//!    refreshed tokens with the old key), then `zixly keys rotate --finish` re-encrypts anything
//!    still under an old key and, when nothing is left, removes the old keys from the file.
//!
//! With `ZIXLY_ENCRYPTION_KEY`: set the NEW key there and the previous one(s) in
//! `ZIXLY_ENCRYPTION_OLD_KEYS`, run `zixly keys rotate`, restart, run it again; once it reports
//! nothing under an old key, drop `ZIXLY_ENCRYPTION_OLD_KEYS`.
//!
//! OAuth states (PKCE verifiers) live ten minutes and are not rotated. A token refreshed while the
//! rotation runs keeps the refresher's ciphertext (the replacement is compare-and-swap): it is
//! reported and picked up by the next run.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use zixly_crypto::Keyring;

use crate::env::{external_url, Database, Global};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Re-encrypt every stored provider token under a new current key.
    Rotate(RotateArgs),
}

#[derive(Args)]
pub struct RotateArgs {
    /// Do not add a key: re-encrypt what is left under old keys, then drop the old keys from the
    /// key file (run after restarting servers and workers).
    #[arg(long)]
    pub finish: bool,
}

pub async fn run(global: &Global, command: KeysCommand) -> Result<ExitCode> {
    let KeysCommand::Rotate(args) = command;
    let db = Database::open(global, 2).await?;
    let outcome = rotate(global, &db, &args).await;
    let closed = db.close().await;
    let code = outcome?;
    closed?;
    Ok(code)
}

async fn rotate(global: &Global, db: &Database, args: &RotateArgs) -> Result<ExitCode> {
    let from_env = std::env::var("ZIXLY_ENCRYPTION_KEY").is_ok_and(|k| !k.trim().is_empty());
    if !from_env && external_url().is_some() {
        anyhow::bail!("no key to rotate: set ZIXLY_ENCRYPTION_KEY (the new key) and ZIXLY_ENCRYPTION_OLD_KEYS (the previous ones)");
    }
    let path = super::worker::key_file(global);
    let keyring: Keyring = if from_env {
        super::worker::keyring(global)?.expect("set")
    } else if args.finish {
        zixly_crypto::keyfile::load_or_create(&path)
            .with_context(|| format!("key file {}", path.display()))?
    } else {
        zixly_crypto::keyfile::add_key(&path)
            .with_context(|| format!("adding a key to {}", path.display()))?
    };
    let (mut done, mut raced) = (0usize, 0usize);
    for secret in db.system.integration_secrets().await? {
        if !keyring.needs_reencryption(&secret.ciphertext) {
            continue;
        }
        let aad = zixly_sync::tokens::aad(secret.tenant_id, secret.integration_id, secret.column);
        let new = keyring
            .reencrypt(&secret.ciphertext, &aad)
            .with_context(|| {
                format!(
                    "a token of integration {} cannot be decrypted with the known keys",
                    secret.integration_id
                )
            })?;
        if db.system.replace_integration_secret(&secret, &new).await? {
            done += 1;
        } else {
            raced += 1;
        }
    }
    // Notification channels' secrets (webhook signing secrets, Slack URLs): same keyring.
    let mut channels = 0usize;
    for secret in db.system.channel_secrets().await? {
        if !keyring.needs_reencryption(&secret.ciphertext) {
            continue;
        }
        let aad = zixly_alerts::deliver::secret_aad(secret.tenant_id, secret.channel_id);
        let new = keyring
            .reencrypt(&secret.ciphertext, &aad)
            .with_context(|| {
                format!(
                    "the secret of notification channel {} cannot be decrypted with the known keys",
                    secret.channel_id
                )
            })?;
        if db.system.replace_channel_secret(&secret, &new).await? {
            channels += 1;
        } else {
            raced += 1;
        }
    }
    println!(
        "re-encrypted {done} token(s) and {channels} channel secret(s) under key {:08x}",
        keyring.current_key_id()
    );
    if raced > 0 {
        println!("{raced} secret(s) changed meanwhile (a token refreshed, a channel deleted); run `zixly keys rotate --finish` again");
        return Ok(ExitCode::FAILURE);
    }
    if args.finish && !from_env {
        zixly_crypto::keyfile::drop_older(&path)?;
        println!("old keys removed from {}", path.display());
    } else if !args.finish {
        println!("restart running servers and workers, then run `zixly keys rotate --finish`");
    }
    Ok(ExitCode::SUCCESS)
}
