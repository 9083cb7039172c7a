//! `zixly bench attack`: what hostile and slow CSV uploads cost the server (issue 9).
//!
//! 1. Creates (or reuses) `--tenants` tenants `attack-NN`, each with an EDITOR and an API token,
//!    and a tenant `attack-normal` with a VIEWER (the "normal tenant" whose latency is measured).
//! 2. Starts the real server as a child process (as `zixly bench api` does), with the import caps
//!    of `--imports-per-tenant`/`--imports-total` when given (default: the server's defaults).
//! 3. **Slow phase** (`--slow-seconds`): `--slow` uploads spread over the tenants send their
//!    headers and the start of the file, then one byte every `--trickle-secs` seconds.
//! 4. **Hostile phase** (at most `--hostile-seconds`): `--uploads` concurrent uploads of
//!    `--size-mb` MB each, generated on the fly, kinds in turn: junk lines (3 errors each), an
//!    unclosed quote on line 3, and lines with a 900,000-digit value. Each answer's status is
//!    counted (422 expected; 429 when over the caps).
//!
//! Throughout, a probe sends `GET /readyz` and the normal tenant's `GET /api/v1/clients` one after
//! the other in a loop (10 s time-out each) and the server's RSS is sampled every 100 ms: per phase
//! the figures are the peak RSS, and each probe's p50/p99 latency and non-200 count.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use clap::Args;
use futures_util::stream;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::header::{self, HeaderValue};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use zixly_db::queries::auth::{NewToken, TokenKind};
use zixly_domain::{CurrencyCode, Role};

use super::bench_server::{spawn_server_with, Server};
use crate::env::{Database, Global};

#[derive(Args)]
pub struct BenchAttackArgs {
    /// Concurrent hostile uploads.
    #[arg(long, default_value_t = 16)]
    pub uploads: usize,
    /// Size of each hostile upload, MB.
    #[arg(long, default_value_t = 200)]
    pub size_mb: u64,
    /// Concurrent slow uploads.
    #[arg(long, default_value_t = 16)]
    pub slow: usize,
    /// Seconds between two bytes of a slow upload.
    #[arg(long, default_value_t = 5)]
    pub trickle_secs: u64,
    /// Length of the slow phase.
    #[arg(long, default_value_t = 20)]
    pub slow_seconds: u64,
    /// Upper bound of the hostile phase (unfinished uploads are then dropped and counted).
    #[arg(long, default_value_t = 90)]
    pub hostile_seconds: u64,
    /// Tenants the uploads are spread over (round robin).
    #[arg(long, default_value_t = 8)]
    pub tenants: usize,
    /// The server's --imports-per-tenant (default: the server's default).
    #[arg(long)]
    pub imports_per_tenant: Option<u16>,
    /// The server's --imports-total (default: the server's default).
    #[arg(long)]
    pub imports_total: Option<u16>,
    /// Print one JSON line instead of a summary.
    #[arg(long)]
    pub json: bool,
}

const BOUNDARY: &str = "zixlybenchattackboundary";
const HEADER: &[u8] = b"client_id,client_name,record_date,revenue,expenses,cash_flow\n";

pub async fn run(global: &Global, args: BenchAttackArgs) -> Result<ExitCode> {
    if args.tenants == 0 || args.size_mb == 0 || args.trickle_secs == 0 {
        crate::env::usage_error!("--tenants, --size-mb and --trickle-secs must be at least 1");
    }
    let db = Database::open(global, 4).await?;
    let outcome = attack(global, &db, &args).await;
    let closed = db.close().await;
    let code = outcome?;
    closed?;
    Ok(code)
}

/// An EDITOR token per attack tenant, and the normal tenant's VIEWER token.
async fn prepare(db: &Database, tenants: usize) -> Result<(Vec<String>, String)> {
    let mut editors = Vec::new();
    for i in 0..tenants {
        editors.push(token_for(db, &format!("attack-{i:02}"), Role::Editor).await?);
    }
    let viewer = token_for(db, "attack-normal", Role::Viewer).await?;
    Ok((editors, viewer))
}

/// A personal token of a `role` user of tenant `name`, both created when missing.
async fn token_for(db: &Database, name: &str, role: Role) -> Result<String> {
    let existing = db.system.list_tenants().await?;
    let tenant = match existing.iter().find(|t| t.name == name) {
        Some(t) => t.id,
        None => {
            db.system
                .create_tenant(name, CurrencyCode::AUD, "Australia/Sydney")
                .await?
        }
    };
    let tx = db.app.begin_tenant(tenant).await?;
    let email = format!("bench-{}@example.com", role.to_string().to_lowercase());
    let user_id = if tx.user_email_exists(&email).await? {
        tx.list_users(None, 1000)
            .await?
            .into_iter()
            .find(|u| u.email == email)
            .map(|u| u.id)
            .context("bench user vanished")?
    } else {
        tx.insert_user(&email, role, None).await?
    };
    let secret = zixly_web::auth::issue_secret(zixly_web::auth::SecretKind::Personal, tenant);
    tx.insert_auth_token(&NewToken {
        user_id,
        kind: TokenKind::Personal,
        name: Some("zixly bench attack"),
        token_hash: &secret.hash,
        expires_at: Utc::now() + chrono::Duration::hours(6),
        created_addr: None,
    })
    .await?;
    tx.commit().await?;
    Ok(secret.token)
}

/// What the probe saw during one phase.
#[derive(Default)]
struct Probe {
    readyz_us: Vec<u64>,
    readyz_bad: u64,
    api_us: Vec<u64>,
    api_bad: u64,
    peak_rss_kb: u64,
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    (v[i] as f64 / 100.0).round() / 10.0 // ms, one decimal
}

impl Probe {
    fn json(mut self) -> serde_json::Value {
        json!({
            "peak_rss_mb": (self.peak_rss_kb as f64 / 102.4).round() / 10.0,
            "readyz": {"requests": self.readyz_us.len() as u64 + self.readyz_bad, "not_200": self.readyz_bad,
                       "p50_ms": pct(&mut self.readyz_us, 0.5), "p99_ms": pct(&mut self.readyz_us, 0.99)},
            "normal_tenant_api": {"requests": self.api_us.len() as u64 + self.api_bad, "not_200": self.api_bad,
                       "p50_ms": pct(&mut self.api_us, 0.5), "p99_ms": pct(&mut self.api_us, 0.99)},
        })
    }
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One GET on a fresh connection: (200?, µs). A time-out counts as not 200.
async fn get(addr: &str, path: &str, token: Option<&str>) -> (bool, u64) {
    let started = Instant::now();
    let ok = tokio::time::timeout(Duration::from_secs(10), async {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.set_nodelay(true).ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let mut req = hyper::Request::get(path).header(header::HOST, addr);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let res = sender
            .send_request(req.body(Empty::<Bytes>::new()).ok()?)
            .await
            .ok()?;
        let ok = res.status() == 200;
        res.into_body().collect().await.ok()?;
        Some(ok)
    })
    .await
    .ok()
    .flatten()
    .unwrap_or(false);
    (ok, started.elapsed().as_micros() as u64)
}

/// Probes until `stop` is set.
fn probe(
    addr: String,
    viewer: String,
    pid: u32,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Probe> {
    tokio::spawn(async move {
        let mut p = Probe::default();
        let sampler = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut peak = 0;
                while !stop.load(Ordering::Relaxed) {
                    peak = peak.max(rss_kb(pid).unwrap_or(0));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                peak
            })
        };
        while !stop.load(Ordering::Relaxed) {
            let (ok, us) = get(&addr, "/readyz", None).await;
            if ok {
                p.readyz_us.push(us)
            } else {
                p.readyz_bad += 1
            }
            let (ok, us) = get(&addr, "/api/v1/clients?limit=20", Some(&viewer)).await;
            if ok {
                p.api_us.push(us)
            } else {
                p.api_bad += 1
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        p.peak_rss_kb = sampler.await.unwrap_or(0);
        p
    })
}

fn multipart_head(file_name: &str) -> Vec<u8> {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"dataset\"\r\n\r\nfinancials\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
         Content-Type: text/csv\r\n\r\n"
    )
    .into_bytes()
}

#[derive(Clone, Copy)]
enum Kind {
    Junk,
    Quote,
    Huge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Junk => "junk_lines",
            Kind::Quote => "unclosed_quote",
            Kind::Huge => "huge_values",
        }
    }
    /// The file's first bytes and the line repeated after them.
    fn parts(self) -> (Vec<u8>, Vec<u8>) {
        let mut head = HEADER.to_vec();
        match self {
            Kind::Junk => (head, b"J-1,Junk,junk,junk,0,junk\n".to_vec()),
            Kind::Quote => {
                head.extend_from_slice(b"Q-1,Quote,2024-01-01,1.00,1.00,0.00\nQ-2,\"Quote,");
                (head, b"Q-3,Quote,2024-01-03,1.00,1.00,0.00\n".to_vec())
            }
            Kind::Huge => {
                let mut line = b"H-1,Huge,2024-01-01,".to_vec();
                line.extend(std::iter::repeat_n(b'7', 900_000));
                line.extend_from_slice(b",1.00,0.00\n");
                (head, line)
            }
        }
    }
}

/// A hostile upload of `size` bytes of `kind`, streamed: the answer's status, or 0 if none.
async fn hostile_upload(addr: &str, token: &str, kind: Kind, size: u64) -> u16 {
    let run = async {
        let (head, line) = kind.parts();
        let mut chunk = Vec::with_capacity(256 * 1024);
        while chunk.len() < 256 * 1024 {
            chunk.extend_from_slice(&line);
        }
        let chunk = Bytes::from(chunk);
        let mut first = multipart_head(&format!("{}.csv", kind.name()));
        first.extend_from_slice(&head);
        let tail = Bytes::from(format!("\r\n--{BOUNDARY}--\r\n"));
        let n = (size / chunk.len() as u64).max(1);
        let frames = stream::iter(
            std::iter::once(Bytes::from(first))
                .chain(std::iter::repeat_n(chunk, n as usize))
                .chain(std::iter::once(tail))
                .map(|b| Ok::<_, Infallible>(Frame::data(b))),
        );
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = hyper::Request::post("/api/v1/imports")
            .header(header::HOST, addr)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_str(&format!("multipart/form-data; boundary={BOUNDARY}")).ok()?,
            )
            .body(StreamBody::new(frames))
            .ok()?;
        let res = sender.send_request(req).await.ok()?;
        let status = res.status().as_u16();
        res.into_body().collect().await.ok()?;
        Some(status)
    };
    run.await.unwrap_or(0)
}

/// A slow upload: the start of the body, then one byte every `every` until dropped.
async fn slow_upload(addr: String, token: String, every: Duration) {
    let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
        return;
    };
    let mut body = multipart_head("slow.csv");
    body.extend_from_slice(HEADER);
    let head = format!(
        "POST /api/v1/imports HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 100000000\r\n\r\n"
    );
    if s.write_all(head.as_bytes()).await.is_err() || s.write_all(&body).await.is_err() {
        return;
    }
    for b in b"S-1,Slow,2024-01-01,1.00,1.00,0.00\n".iter().cycle() {
        tokio::time::sleep(every).await;
        if s.write_all(&[*b]).await.is_err() {
            return;
        }
    }
}

async fn attack(global: &Global, db: &Database, args: &BenchAttackArgs) -> Result<ExitCode> {
    let (editors, viewer) = prepare(db, args.tenants).await?;
    let mut env = Vec::new();
    if let Some(n) = args.imports_per_tenant {
        env.push(("ZIXLY_IMPORTS_PER_TENANT", n.to_string()));
    }
    if let Some(n) = args.imports_total {
        env.push(("ZIXLY_IMPORTS_TOTAL", n.to_string()));
    }
    let server: Server = spawn_server_with(global, &env).await?;
    let outcome = phases(&server, &editors, &viewer, args).await;
    let hwm = server.peak_rss_mb();
    server.stop().await;
    let (slow, hostile, statuses) = outcome?;
    let line = json!({
        "bench": "attack",
        "slow": args.slow, "trickle_secs": args.trickle_secs, "slow_seconds": args.slow_seconds,
        "uploads": args.uploads, "size_mb": args.size_mb, "tenants": args.tenants,
        "imports_per_tenant": args.imports_per_tenant, "imports_total": args.imports_total,
        "slow_phase": slow,
        "hostile_phase": hostile,
        "hostile_statuses": statuses,
        "server_vmhwm_mb": hwm.map(|m| (m * 10.0).round() / 10.0),
    });
    if args.json {
        println!("{line}");
    } else {
        println!("{}", serde_json::to_string_pretty(&line)?);
    }
    Ok(ExitCode::SUCCESS)
}

type PhaseResults = (
    serde_json::Value,
    serde_json::Value,
    BTreeMap<String, BTreeMap<u16, u64>>,
);

async fn phases(
    server: &Server,
    editors: &[String],
    viewer: &str,
    args: &BenchAttackArgs,
) -> Result<PhaseResults> {
    let addr = server
        .base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let pid = server.child_id().context("server pid")?;

    // Slow phase.
    let stop = Arc::new(AtomicBool::new(false));
    let prober = probe(addr.clone(), viewer.to_string(), pid, stop.clone());
    let slow: Vec<_> = (0..args.slow)
        .map(|i| {
            tokio::spawn(slow_upload(
                addr.clone(),
                editors[i % editors.len()].clone(),
                Duration::from_secs(args.trickle_secs),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(args.slow_seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let slow_probe = prober.await?;
    for t in slow {
        t.abort();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Hostile phase.
    let stop = Arc::new(AtomicBool::new(false));
    let prober = probe(addr.clone(), viewer.to_string(), pid, stop.clone());
    let kinds = [Kind::Junk, Kind::Quote, Kind::Huge];
    let size = args.size_mb * 1_000_000;
    let uploads: Vec<_> = (0..args.uploads)
        .map(|i| {
            let (addr, token, kind) = (
                addr.clone(),
                editors[i % editors.len()].clone(),
                kinds[i % 3],
            );
            tokio::spawn(
                async move { (kind.name(), hostile_upload(&addr, &token, kind, size).await) },
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(args.hostile_seconds);
    let mut statuses: BTreeMap<String, BTreeMap<u16, u64>> = BTreeMap::new();
    for (i, u) in uploads.into_iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let (kind, status) = match tokio::time::timeout(left, u).await {
            Ok(Ok(r)) => r,
            _ => (kinds[i % 3].name(), 0), // unfinished at the deadline
        };
        *statuses
            .entry(kind.to_string())
            .or_default()
            .entry(status)
            .or_default() += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let hostile_probe = prober.await?;
    Ok((slow_probe.json(), hostile_probe.json(), statuses))
}
