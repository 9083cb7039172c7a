//! `zixly up` and `zixly serve`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use zixly_domain::password::{generate_password, hash_password};
use zixly_domain::{CurrencyCode, Role};

use super::worker::JobArgs;
use crate::env::{external_url, Database, Global, Supervision};

#[derive(Args)]
pub struct UpArgs {
    /// Address to serve HTTP on.
    #[arg(long, env = "ZIXLY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Do not create the demo tenant and admin on a fresh database.
    #[arg(long)]
    pub no_demo: bool,
    #[command(flatten)]
    pub web: WebArgs,
    #[command(flatten)]
    pub jobs: JobArgs,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to serve HTTP on.
    #[arg(long, env = "ZIXLY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub web: WebArgs,
    #[command(flatten)]
    pub jobs: JobArgs,
}

/// HTTP settings shared by `up` and `serve`.
#[derive(Args, Clone)]
pub struct WebArgs {
    /// The URL users reach Zixly at (links in invitation and reset mails; https turns on Secure
    /// cookies and HSTS). Default: http://<listen address>.
    #[arg(long, env = "ZIXLY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Behind a reverse proxy: take the client address from the last X-Forwarded-For entry.
    #[arg(long, env = "ZIXLY_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// SMTP server for invitation and reset mails: smtp://host[:port] (plain, port 25),
    /// smtp://host[:port]?tls=required (STARTTLS, port 587), smtps://host[:port] (TLS, port 465);
    /// credentials as user:password@ (percent-encoded). Without it, links are shown to the ADMIN
    /// who creates them.
    // `hide_env_values`: --help must not print the password.
    #[arg(long, env = "ZIXLY_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender address of outgoing mail.
    #[arg(long, env = "ZIXLY_MAIL_FROM", default_value = "zixly@localhost")]
    pub mail_from: String,
    /// Serve /metrics (and nothing else) on this separate address, e.g. 127.0.0.1:9464, for the
    /// Prometheus scraper. Without it (and without a token) /metrics is not served at all.
    #[arg(long, env = "ZIXLY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Bearer token /metrics requires (at least 16 characters); with it, the main listener serves
    /// /metrics too.
    #[arg(long, env = "ZIXLY_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// CSV uploads (API and page) one tenant may run at once; more answer 429.
    #[arg(long, env = "ZIXLY_IMPORTS_PER_TENANT", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub imports_per_tenant: u16,
    /// CSV uploads the server parses and loads at once, all tenants together (each uses one of
    /// the 16 database connections while it loads).
    #[arg(long, env = "ZIXLY_IMPORTS_TOTAL", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=12))]
    pub imports_total: u16,
    /// Seconds an upload's body may send nothing before it is refused (408).
    #[arg(long, env = "ZIXLY_IMPORT_IDLE_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub import_idle_timeout: u64,
}

impl WebArgs {
    fn state(&self, app: zixly_db::AppDb, bound: SocketAddr) -> Result<zixly_web::AppState> {
        let public_url = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"));
        let mut config = zixly_web::WebConfig::new(&public_url)
            .with_context(|| format!("invalid public URL `{public_url}`"))?;
        config.trust_forwarded_for = self.trust_forwarded_for;
        if let Some(token) = &self.metrics_token {
            // The token guards operational detail on a public listener: refuse a guessable one.
            if token.trim().chars().count() < 16 {
                bail!("ZIXLY_METRICS_TOKEN must be at least 16 characters");
            }
            config.metrics_token = Some(zixly_crypto::SecretString::new(token.trim()));
        }
        config.imports_per_tenant = usize::from(self.imports_per_tenant);
        config.imports_total = usize::from(self.imports_total);
        config.import_idle_timeout = std::time::Duration::from_secs(self.import_idle_timeout);
        let mut state = zixly_web::AppState::new(app, config);
        if let Some(url) = &self.smtp_url {
            let mailer = zixly_web::mail::SmtpMailer::from_url(url, &self.mail_from)
                .context("invalid mail configuration (ZIXLY_SMTP_URL, ZIXLY_MAIL_FROM)")?;
            tracing::info!(
                host = %mailer.host,
                port = mailer.port,
                tls = %mailer.security,
                auth = mailer.authenticated,
                "sending mail through SMTP"
            );
            state = state.with_mailer(std::sync::Arc::new(mailer));
        }
        Ok(state)
    }
}

pub async fn up(global: &Global, args: UpArgs) -> Result<ExitCode> {
    if external_url().is_some() {
        tracing::info!("DATABASE_URL is set: using it instead of the embedded database");
    }
    run_server(global, args.listen, &args.web, args.jobs, !args.no_demo).await
}

pub async fn serve(global: &Global, args: ServeArgs) -> Result<ExitCode> {
    if external_url().is_none() {
        bail!("`zixly serve` needs DATABASE_URL (an external PostgreSQL 15+); use `zixly up` for the embedded database");
    }
    run_server(global, args.listen, &args.web, args.jobs, false).await
}

async fn run_server(
    global: &Global,
    listen: SocketAddr,
    web: &WebArgs,
    jobs: JobArgs,
    create_demo: bool,
) -> Result<ExitCode> {
    let mut db = Database::open(global, 16).await?;
    // The embedded PostgreSQL is restarted if it dies while we serve (a no-op for `serve`).
    let supervision = db.supervise();
    let outcome =
        serve_until_signal(global, &db, listen, web, jobs, create_demo, supervision).await;
    // Stop PostgreSQL whatever happened above, then report the first error.
    let closed = db.close().await;
    outcome?;
    closed?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn serve_until_signal(
    global: &Global,
    db: &Database,
    listen: SocketAddr,
    web: &WebArgs,
    jobs: JobArgs,
    create_demo: bool,
    supervision: Option<Supervision>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {listen} (is another server using it? try --listen 127.0.0.1:0)"
            )
        })?;
    let bound = listener.local_addr()?;
    let metrics_listener = match web.metrics_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen on {addr} for metrics (ZIXLY_METRICS_LISTEN)")
            })?;
            tracing::info!(address = %l.local_addr()?, "serving /metrics there");
            Some(l)
        }
        None => None,
    };
    // Imports and syncs killed before they finished (a previous server, a CLI, ...).
    zixly_queue::interrupt_orphaned_sync_runs(&db.system).await;
    if let Some(mut restarts) = supervision.as_ref().map(|s| s.restarts.clone()) {
        // A PostgreSQL restart ended every session: the runs they were loading are over.
        let system = db.system.clone();
        tokio::spawn(async move {
            while restarts.changed().await.is_ok() {
                zixly_queue::interrupt_orphaned_sync_runs(&system).await;
            }
        });
    }
    if create_demo {
        // After binding, so the printed login URL has the real port.
        create_demo_tenant_if_empty(global, db, bound).await?;
    }
    // One sync engine (keyring, provider configs) for the worker and the integration routes.
    let engine = super::worker::sync_engine(global, db)?;
    let mut state = web.state(db.app.clone(), bound)?;
    if let Some(engine) = &engine {
        state = state.with_integrations(engine.clone());
    }
    // Before "ready": a SIGTERM from then on is a clean shutdown.
    let signalled = shutdown_signal();
    tracing::info!(address = %bound, "serving HTTP");
    println!("Zixly is ready at http://{bound}  (Ctrl-C to stop)");
    // The job worker (integration syncs and their scheduler) runs next to HTTP and stops with it:
    // on a signal HTTP drains, then the worker finishes or requeues its running jobs.
    let worker = super::worker::build_with(db, 4, jobs, engine.as_ref());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(worker.run(async move {
        let _ = stopped.await; // sent, or the sender dropped because HTTP failed
    }));
    // The metrics listener, when configured, lives as long as the main one.
    let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = metrics_listener.map(|l| {
        tokio::spawn(zixly_web::serve_metrics(l, state.clone(), async move {
            let _ = metrics_stopped.await;
        }))
    });
    let stand_down = supervision.as_ref().map(|s| s.stand_down.clone());
    let shutdown = async move {
        signalled.await;
        // From here on PostgreSQL exiting is part of the shutdown, not a crash to recover from.
        if let Some(stand_down) = stand_down {
            stand_down.stand_down();
        }
    };
    let served = zixly_web::serve(listener, state, shutdown)
        .await
        .context("HTTP server failed");
    drop(stop);
    drop(metrics_stop);
    if let Some(m) = metrics {
        match m.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics listener failed"),
            Err(e) => tracing::warn!(error = %e, "metrics listener task failed"),
            Ok(Ok(())) => {}
        }
    }
    let worked = worker
        .await
        .context("job worker task")?
        .context("job worker failed");
    served?;
    worked?;
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled: a signal arriving between "ready" and the first poll (a
/// loaded machine) must shut down cleanly rather than kill the process by the default action.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt());
    let term = signal(SignalKind::terminate());
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(interrupt) => tracing::info!("received Ctrl-C, shutting down"),
            _ = wait(term) => tracing::info!("received SIGTERM, shutting down"),
        }
    }
}

/// On a database without tenants, creates "Demo Agency" with an ADMIN and prints how to log in.
async fn create_demo_tenant_if_empty(
    global: &Global,
    db: &Database,
    listen: SocketAddr,
) -> Result<()> {
    if !db.system.list_tenants().await?.is_empty() {
        return Ok(());
    }
    let tenant = db
        .system
        .create_tenant("Demo Agency", CurrencyCode::AUD, "Australia/Sydney")
        .await?;
    let email = "admin@example.com";
    let password = generate_password();
    let hash = hash_password(&password)?;
    let tx = db.app.begin_tenant(tenant).await?;
    tx.insert_user(email, Role::Admin, Some(&hash)).await?;
    tx.commit().await?;
    let rows = crate::demo::load(&db.app, tenant).await?;
    tracing::info!(rows, "loaded demo data");
    let note = format!(
        "Demo tenant \"Demo Agency\" ({tenant}) created with sample clients and a year of data.\nLog in at http://{listen}/login\n  email:    {email}\n  password: {password}\n"
    );
    println!("{note}");
    if external_url().is_none() {
        use std::os::unix::fs::OpenOptionsExt;
        let path = global.data_dir.join("initial-admin.txt");
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, note.as_bytes()));
        match written {
            Ok(()) => println!(
                "(also saved to {}, readable only by you; delete it once you have logged in)",
                path.display()
            ),
            Err(e) => tracing::warn!(error = %e, "could not save the initial admin credentials"),
        }
    }
    Ok(())
}
