//! `zixly bench api`: the read API under load, against the same SQL run directly.
//!
//! 1. Seeds (unless present) `--tenants` tenants `bench-NN` × `--clients` clients × `--years`
//!    years of daily financials, weekly leads walking the funnel and a weekly custom metric,
//!    through `TenantTx` (RLS applies to the seeding too). A re-run reuses the data.
//! 2. Gives each bench tenant a VIEWER with a personal API token.
//! 3. Starts the real server as a child process (`zixly up`/`zixly serve` on 127.0.0.1:0) so its
//!    memory is measured apart from the load generator: `peak_rss_mb` is the server's VmHWM.
//! 4. For each query pattern, drives HTTP (bearer token, one keep-alive connection per worker,
//!    hyper without a pool) from `--concurrency` workers for `--seconds`, each request for a
//!    random tenant and client, and runs the same `zixly_db` calls (same SQL, same `TenantTx`
//!    with RLS) through a pool of the same size (the ceiling: no HTTP, no JSON, no auth). The two
//!    paths alternate in [`SLICES`] slices each, so both see the same machine conditions.
//!
//! Patterns: `range_90d` (one client's financial rows over 90 days — the seed's dashboard query),
//! `funnel` (stage × status of one client's leads, all time), `funnel_tenant` (the same over all
//! the tenant's clients), `metric` (one custom metric of one
//! client over the whole span), `profitability` (per-client quarterly profitability of a tenant),
//! `overview_12m` (the overview page `/` over the last 12 months, read with a session cookie; its
//! SQL side is the page's reads, `zixly_web::pages::overview_reads`).
//! The top-level `api_*`/`sql_*` figures of `--json` are those of `range_90d`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{Days, NaiveDate, Utc};
use clap::Args;
use hyper::header::{self, HeaderName, HeaderValue};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use uuid::Uuid;
use zixly_db::queries::auth::{NewToken, TokenKind};
use zixly_db::queries::clients::ClientQuery;
use zixly_db::queries::reports::{FunnelQuery, ProfitabilityQuery};
use zixly_db::queries::series::{DateRange, SeriesQuery};
use zixly_db::AppDb;
use zixly_domain::{CurrencyCode, Role};
use zixly_web::auth::SESSION_COOKIE;

use super::bench_server::{spawn_server, Conn, Server};
use crate::env::{Database, Global};

/// Read API throughput and latency over HTTP, against the same SQL through a pool.
#[derive(Args)]
pub struct BenchApiArgs {
    /// Concurrent requests (HTTP workers, and SQL workers with a pool of this size).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds per pattern and path.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Bench tenants to seed (`bench-NN`; a re-run reuses them).
    #[arg(long, default_value_t = 50)]
    pub tenants: u32,
    /// Clients per tenant.
    #[arg(long, default_value_t = 20)]
    pub clients: u32,
    /// Years of daily history per client, ending 2025-12-31 (fixed, so that runs on different days
    /// compare and re-use the seeded data).
    #[arg(long, default_value_t = 3)]
    pub years: u32,
    /// Print one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `zixly bench api`: a variant of the `zixly bench` subcommands (see `cmd::bench`).
pub async fn run(global: &Global, args: BenchApiArgs) -> Result<ExitCode> {
    api(global, args).await
}

/// One bench tenant: its id, a token, its clients (Zixly id, external id).
#[derive(Clone)]
struct Target {
    tenant: Uuid,
    /// A VIEWER's personal API token (the API patterns).
    token: String,
    /// The same VIEWER's session token, sent as the session cookie (the page pattern).
    session: String,
    clients: Vec<(Uuid, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pattern {
    Range90,
    Funnel,
    TenantFunnel,
    Metric,
    Profitability,
    Overview,
}

impl Pattern {
    const ALL: [Pattern; 6] = [
        Pattern::Range90,
        Pattern::Funnel,
        Pattern::TenantFunnel,
        Pattern::Metric,
        Pattern::Profitability,
        Pattern::Overview,
    ];
    fn name(self) -> &'static str {
        match self {
            Pattern::Range90 => "range_90d",
            Pattern::Funnel => "funnel",
            Pattern::TenantFunnel => "funnel_tenant",
            Pattern::Metric => "metric",
            Pattern::Profitability => "profitability",
            Pattern::Overview => "overview_12m",
        }
    }
}

/// The data's span: `days` days ending `end`.
#[derive(Clone, Copy)]
struct Span {
    end: NaiveDate,
    days: u32,
}

impl Span {
    fn start(&self) -> NaiveDate {
        self.end - Days::new(u64::from(self.days) - 1)
    }
    /// A random 90-day window inside the span.
    fn window90(&self, rng: &mut impl Rng) -> DateRange {
        let offset = rng.gen_range(0..=u64::from(self.days.saturating_sub(90)));
        let from = self.start() + Days::new(offset);
        DateRange::new(from, from + Days::new(89)).expect("ordered")
    }
    /// A random calendar quarter inside the span.
    fn quarter(&self, rng: &mut impl Rng) -> DateRange {
        use chrono::Datelike;
        let w = self.window90(rng);
        let from = w.from();
        let q_start =
            NaiveDate::from_ymd_opt(from.year(), ((from.month0() / 3) * 3) + 1, 1).expect("valid");
        let q_end = q_start
            .checked_add_months(chrono::Months::new(3))
            .expect("valid")
            - Days::new(1);
        DateRange::new(q_start, q_end).expect("ordered")
    }
}

#[derive(Debug, Default, Serialize, Clone)]
struct Figures {
    requests: u64,
    errors: u64,
    rps: f64,
    /// CPU time (user + system) the server process spent per request (HTTP phases only): a
    /// figure that a noisy machine moves far less than throughput.
    server_cpu_us: Option<f64>,
    p50_ms: f64,
    p99_ms: f64,
}

/// What one or more timed slices of a phase observed.
#[derive(Default)]
struct Sample {
    /// Latency of each successful request, µs.
    lat_us: Vec<u64>,
    errors: u64,
    elapsed: Duration,
}

impl Sample {
    fn add(&mut self, other: Sample) {
        self.lat_us.extend(other.lat_us);
        self.errors += other.errors;
        self.elapsed += other.elapsed;
    }
}

fn figures(sample: Sample) -> Figures {
    let Sample {
        mut lat_us,
        errors,
        elapsed,
    } = sample;
    lat_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat_us.is_empty() {
            return 0.0;
        }
        let i = ((lat_us.len() as f64 - 1.0) * p).round() as usize;
        lat_us[i] as f64 / 1000.0
    };
    Figures {
        server_cpu_us: None,
        requests: lat_us.len() as u64,
        errors,
        rps: lat_us.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

/// Each pattern's HTTP and SQL time is cut into this many alternating slices (HTTP, SQL, HTTP,
/// ...): on a shared machine whose speed drifts within minutes, both paths then see the same
/// conditions, and the API/SQL ratio measures the API rather than the drift.
const SLICES: u32 = 5;

async fn api(global: &Global, args: BenchApiArgs) -> Result<ExitCode> {
    if args.concurrency == 0 || args.tenants == 0 || args.clients == 0 || args.years == 0 {
        crate::env::usage_error!(
            "--concurrency, --tenants, --clients and --years must be at least 1"
        );
    }
    let db = Database::open(global, args.concurrency.max(4)).await?;
    let outcome = run_bench(global, &db, &args).await;
    let closed = db.close().await;
    let code = outcome?;
    closed?;
    Ok(code)
}

async fn run_bench(global: &Global, db: &Database, args: &BenchApiArgs) -> Result<ExitCode> {
    let span = Span {
        end: NaiveDate::from_ymd_opt(2025, 12, 31).expect("valid"),
        days: args.years * 365,
    };
    let seed_started = Instant::now();
    let targets = prepare(db, args, span).await?;
    let seed_secs = seed_started.elapsed().as_secs_f64();
    let database_mb = db.system.database_size_bytes().await? as f64 / 1e6;
    if !args.json {
        eprintln!(
            "dataset ready in {seed_secs:.1}s (seeding what was missing): {} tenants × {} clients × \
             {} days, database {database_mb:.0} MB",
            targets.len(),
            args.clients,
            span.days
        );
    }

    let server = spawn_server(global).await?;
    let result = measure(db, &targets, span, args, &server).await;
    let peak_rss_mb = server.peak_rss_mb();
    server.stop().await;
    let results = result?;

    let (api, sql) = &results[0].1;
    let line = serde_json::json!({
        "bench": "api",
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "tenants": args.tenants,
        "clients_per_tenant": args.clients,
        "days": span.days,
        // Seconds to seed what was missing (only the checks and tokens when a re-run finds the
        // dataset), and the database's size on disk once seeded.
        "seed_s": round1(seed_secs),
        "database_mb": round1(database_mb),
        "api_rps": round1(api.rps),
        "sql_rps": round1(sql.rps),
        "api_vs_sql": round3(api.rps / sql.rps.max(f64::EPSILON)),
        "api_p50_ms": round3(api.p50_ms),
        "api_p99_ms": round3(api.p99_ms),
        "sql_p50_ms": round3(sql.p50_ms),
        "sql_p99_ms": round3(sql.p99_ms),
        "peak_rss_mb": round1(peak_rss_mb.unwrap_or(f64::NAN)),
        "patterns": results.iter().map(|(p, (a, s))| (p.name().to_string(), serde_json::json!({
            "api_rps": round1(a.rps), "sql_rps": round1(s.rps), "api_vs_sql": round3(a.rps / s.rps.max(f64::EPSILON)),
            "api_p50_ms": round3(a.p50_ms), "api_p99_ms": round3(a.p99_ms),
            "sql_p50_ms": round3(s.p50_ms), "sql_p99_ms": round3(s.p99_ms),
            "server_cpu_us_per_request": a.server_cpu_us.map(round1),
            "api_requests": a.requests, "api_errors": a.errors, "sql_requests": s.requests, "sql_errors": s.errors,
        }))).collect::<serde_json::Map<_, _>>(),
    });
    if args.json {
        println!("{line}");
    } else {
        println!(
            "{:<14} {:>10} {:>10} {:>8} {:>10} {:>10} {:>10} {:>11} {:>7}",
            "pattern",
            "api rps",
            "sql rps",
            "api/sql",
            "api p50",
            "api p99",
            "sql p99",
            "server cpu",
            "errors"
        );
        for (p, (a, s)) in &results {
            println!(
                "{:<14} {:>10.0} {:>10.0} {:>7.0}% {:>8.2}ms {:>8.2}ms {:>8.2}ms {:>9.0}µs {:>7}",
                p.name(),
                a.rps,
                s.rps,
                100.0 * a.rps / s.rps.max(f64::EPSILON),
                a.p50_ms,
                a.p99_ms,
                s.p99_ms,
                a.server_cpu_us.unwrap_or(f64::NAN),
                a.errors + s.errors
            );
        }
        println!("server peak RSS: {:.1} MB", peak_rss_mb.unwrap_or(f64::NAN));
    }
    let errors: u64 = results.iter().map(|(_, (a, s))| a.errors + s.errors).sum();
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Seeds missing bench tenants and data, and issues a token per tenant.
async fn prepare(db: &Database, args: &BenchApiArgs, span: Span) -> Result<Vec<Target>> {
    let existing = db.system.list_tenants().await?;
    let mut targets = Vec::new();
    for i in 0..args.tenants {
        let name = format!("bench-{i:02}");
        let tenant = match existing.iter().find(|t| t.name == name) {
            Some(t) => t.id,
            None => {
                db.system
                    .create_tenant(&name, CurrencyCode::AUD, "Australia/Sydney")
                    .await?
            }
        };
        // The seed's months first (its lead events run a few days past its last day): rows
        // inserted outside the loader would otherwise land in the default partition.
        db.system
            .create_month_partitions(span.start(), span.end + Days::new(10))
            .await?;
        let tx = db.app.begin_tenant(tenant).await?;
        tx.seed_synthetic_series(args.clients, span.days, span.end)
            .await
            .with_context(|| format!("seeding {name}"))?;
        let email = "bench-viewer@example.com";
        let user_id = if tx.user_email_exists(email).await? {
            let users = tx.list_users(None, 1000).await?;
            users
                .into_iter()
                .find(|u| u.email == email)
                .map(|u| u.id)
                .context("bench user vanished")?
        } else {
            tx.insert_user(email, Role::Viewer, None).await?
        };
        let secret = zixly_web::auth::issue_secret(zixly_web::auth::SecretKind::Personal, tenant);
        tx.insert_auth_token(&NewToken {
            user_id,
            kind: TokenKind::Personal,
            name: Some("zixly bench api"),
            token_hash: &secret.hash,
            expires_at: Utc::now() + chrono::Duration::hours(6),
            created_addr: None,
        })
        .await?;
        let session = zixly_web::auth::issue_secret(zixly_web::auth::SecretKind::Session, tenant);
        tx.insert_auth_token(&NewToken {
            user_id,
            kind: TokenKind::Session,
            name: None,
            token_hash: &session.hash,
            expires_at: Utc::now() + chrono::Duration::hours(6),
            created_addr: None,
        })
        .await?;
        let page = tx
            .list_clients(&ClientQuery {
                search: Some("Bench client".into()),
                limit: 10_000,
                ..Default::default()
            })
            .await?;
        tx.commit().await?;
        let clients: Vec<(Uuid, String)> = page
            .items
            .into_iter()
            .map(|c| (c.id, c.client_id))
            .collect();
        if clients.is_empty() {
            bail!("tenant {name} has no bench clients");
        }
        targets.push(Target {
            tenant,
            token: secret.token,
            session: session.token,
            clients,
        });
    }
    Ok(targets)
}

async fn measure(
    db: &Database,
    targets: &[Target],
    span: Span,
    args: &BenchApiArgs,
    server: &Server,
) -> Result<Vec<(Pattern, (Figures, Figures))>> {
    let addr = server
        .base
        .strip_prefix("http://")
        .with_context(|| format!("unexpected server address {}", server.base))?;
    let targets = std::sync::Arc::new(targets.to_vec());
    let mut out = Vec::new();
    for pattern in Pattern::ALL {
        // Warm-up: connections, prepared statements, caches.
        let warm = Duration::from_millis(1000.min(args.seconds * 200));
        http_phase(addr, &targets, span, pattern, args.concurrency, warm).await;
        sql_phase(&db.app, &targets, span, pattern, args.concurrency, warm).await;
        let slice = Duration::from_secs(args.seconds) / SLICES;
        let (mut api_sample, mut sql_sample) = (Sample::default(), Sample::default());
        let mut server_cpu_seconds = Some(0.0);
        for _ in 0..SLICES {
            let cpu_before = server.cpu_seconds();
            api_sample
                .add(http_phase(addr, &targets, span, pattern, args.concurrency, slice).await);
            server_cpu_seconds = match (server_cpu_seconds, cpu_before, server.cpu_seconds()) {
                (Some(sum), Some(before), Some(after)) => Some(sum + after - before),
                _ => None,
            };
            sql_sample
                .add(sql_phase(&db.app, &targets, span, pattern, args.concurrency, slice).await);
        }
        let mut api = figures(api_sample);
        api.server_cpu_us = server_cpu_seconds.map(|cpu| cpu * 1e6 / api.requests.max(1) as f64);
        let sql = figures(sql_sample);
        if !args.json {
            eprintln!(
                "{}: api {:.0} rps, sql {:.0} rps",
                pattern.name(),
                api.rps,
                sql.rps
            );
        }
        out.push((pattern, (api, sql)));
    }
    Ok(out)
}

type Targets = std::sync::Arc<Vec<Target>>;

/// The overview page's "Last 12 months" preset.
fn last_12_months() -> zixly_web::pages::RangeParams {
    zixly_web::pages::RangeParams {
        range: Some("last_12_months".into()),
        ..Default::default()
    }
}

/// The request's path and query.
fn path_for(pattern: Pattern, span: Span, client: &(Uuid, String), rng: &mut impl Rng) -> String {
    match pattern {
        Pattern::Range90 => {
            let w = span.window90(rng);
            format!(
                "/api/v1/clients/{}/financials?from={}&to={}&limit=100",
                client.0,
                w.from(),
                w.to()
            )
        }
        Pattern::Funnel => format!("/api/v1/reports/funnel?client_id={}", client.1),
        Pattern::TenantFunnel => "/api/v1/reports/funnel".to_string(),
        Pattern::Metric => format!(
            "/api/v1/clients/{}/metrics?name=project_delivery_days&from={}&to={}&limit=500",
            client.0,
            span.start(),
            span.end
        ),
        Pattern::Overview => "/?range=last_12_months".to_string(),
        Pattern::Profitability => {
            let q = span.quarter(rng);
            format!(
                "/api/v1/reports/profitability?from={}&to={}&limit=100",
                q.from(),
                q.to()
            )
        }
    }
}

async fn http_phase(
    addr: &str,
    targets: &Targets,
    span: Span,
    pattern: Pattern,
    concurrency: usize,
    dur: Duration,
) -> Sample {
    let started = Instant::now();
    let deadline = started + dur;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (addr, targets) = (addr.to_string(), targets.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::from_entropy();
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            let Ok(mut conn) = Conn::new(&addr) else {
                return (lat, 1);
            };
            // The page is read with the session cookie, as a browser would; the API with the token.
            let credentials: Vec<(HeaderName, HeaderValue)> = targets
                .iter()
                .map(|t| {
                    let (name, value) = if pattern == Pattern::Overview {
                        (header::COOKIE, format!("{SESSION_COOKIE}={}", t.session))
                    } else {
                        (header::AUTHORIZATION, format!("Bearer {}", t.token))
                    };
                    (
                        name,
                        HeaderValue::from_str(&value).expect("tokens are URL-safe text"),
                    )
                })
                .collect();
            while Instant::now() < deadline {
                let target = rng.gen_range(0..targets.len());
                let clients = &targets[target].clients;
                let client = &clients[rng.gen_range(0..clients.len())];
                let path = path_for(pattern, span, client, &mut rng);
                let t0 = Instant::now();
                let (name, value) = &credentials[target];
                if conn.get(&path, name, value).await {
                    lat.push(t0.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    collect(tasks, started).await
}

async fn sql_phase(
    app: &AppDb,
    targets: &Targets,
    span: Span,
    pattern: Pattern,
    concurrency: usize,
    dur: Duration,
) -> Sample {
    let started = Instant::now();
    let deadline = started + dur;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (app, targets) = (app.clone(), targets.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::from_entropy();
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let Target {
                    tenant, clients, ..
                } = &targets[rng.gen_range(0..targets.len())];
                let client = clients[rng.gen_range(0..clients.len())].clone();
                let (w, q) = (span.window90(&mut rng), span.quarter(&mut rng));
                let t0 = Instant::now();
                let result: zixly_db::DbResult<()> = async {
                    let tx = app.begin_tenant(*tenant).await?;
                    match pattern {
                        Pattern::Range90 => {
                            tx.financials(
                                client.0,
                                &SeriesQuery {
                                    range: w,
                                    after: None,
                                    limit: 100,
                                },
                            )
                            .await?;
                        }
                        Pattern::Funnel => {
                            let c = tx
                                .get_client_by_external_id(&client.1)
                                .await?
                                .ok_or(zixly_db::DbError::NotFound("client"))?;
                            tx.funnel(Some(c.id), &FunnelQuery::default()).await?;
                        }
                        Pattern::TenantFunnel => {
                            tx.funnel(None, &FunnelQuery::default()).await?;
                        }
                        Pattern::Metric => {
                            let all = DateRange::new(span.start(), span.end).expect("ordered");
                            tx.custom_metrics(
                                client.0,
                                Some("project_delivery_days"),
                                &SeriesQuery {
                                    range: all,
                                    after: None,
                                    limit: 500,
                                },
                            )
                            .await?;
                        }
                        Pattern::Profitability => {
                            tx.profitability(&ProfitabilityQuery {
                                range: q,
                                after: None,
                                limit: 100,
                            })
                            .await?;
                        }
                        Pattern::Overview => {
                            // What the page reads (its handler calls the same function).
                            let tenant = tx.tenant_profile().await?;
                            let today = zixly_web::pages::today_in(&tenant.time_zone);
                            zixly_web::pages::overview_reads(&tx, &last_12_months(), today).await?;
                        }
                    }
                    tx.commit().await
                }
                .await;
                match result {
                    Ok(()) => lat.push(t0.elapsed().as_micros() as u64),
                    Err(e) => {
                        if errors == 0 {
                            tracing::warn!(error = %e, "bench query failed");
                        }
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    collect(tasks, started).await
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<(Vec<u64>, u64)>>, started: Instant) -> Sample {
    let mut sample = Sample::default();
    for t in tasks {
        if let Ok((l, e)) = t.await {
            sample.lat_us.extend(l);
            sample.errors += e;
        }
    }
    sample.elapsed = started.elapsed();
    sample
}
