//! What the load benchmarks share: the real server as a child process (its memory measured
//! apart from the load generator) and one cheap keep-alive HTTP/1.1 connection per worker.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::env::{external_url, Global};

pub(super) struct Server {
    child: tokio::process::Child,
    pub(super) base: String,
}

impl Server {
    pub(super) fn child_id(&self) -> Option<u32> {
        self.child.id()
    }

    pub(super) fn peak_rss_mb(&self) -> Option<f64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    }

    /// User + system CPU seconds the server process has used so far (`/proc/PID/stat`).
    pub(super) fn cpu_seconds(&self) -> Option<f64> {
        let pid = self.child.id()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()?;
        Some((utime + stime) as f64 / ticks as f64)
    }

    pub(super) async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Starts this binary as the server on an ephemeral port and waits for its "ready" line.
pub(super) async fn spawn_server(global: &Global) -> Result<Server> {
    spawn_server_with(global, &[]).await
}

/// [`spawn_server`] with extra environment variables for the server (`zixly bench attack`).
pub(super) async fn spawn_server_with(global: &Global, env: &[(&str, String)]) -> Result<Server> {
    let exe = std::env::current_exe().context("locating the zixly binary")?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd.arg("--data-dir").arg(&global.data_dir);
    if external_url().is_some() {
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    } else {
        cmd.args(["up", "--no-demo", "--listen", "127.0.0.1:0"]);
    }
    cmd.env(
        "ZIXLY_LOG",
        std::env::var("ZIXLY_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting the server")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.split("Zixly is ready at ").nth(1) {
                return Ok::<_, anyhow::Error>(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
        }
        bail!("the server exited before it was ready")
    })
    .await
    .context("the server did not become ready within 60 s")??;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server { child, base })
}

/// One keep-alive HTTP/1.1 connection of a load-generating worker, driven through hyper
/// directly. The load generator shares the machine's two cores with the server and PostgreSQL;
/// a real client would run elsewhere, so it should cost as little as it can (with reqwest's pool,
/// URL parsing and header maps it took 12.6 % of both cores during range_90d; with this, 7.2 %).
pub(super) struct Conn {
    addr: String,
    host: HeaderValue,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

impl Conn {
    pub(super) fn new(addr: &str) -> Result<Conn> {
        Ok(Conn {
            addr: addr.to_string(),
            host: HeaderValue::from_str(addr).context("server address as a Host header")?,
            sender: None,
        })
    }

    /// `GET path_and_query`; true for a 2xx whose body arrived whole. A failed connection is
    /// dropped and the next request opens a fresh one.
    pub(super) async fn get(
        &mut self,
        path_and_query: &str,
        credential: &HeaderName,
        value: &HeaderValue,
    ) -> bool {
        match self.try_get(path_and_query, credential, value).await {
            Ok(ok) => ok,
            Err(e) => {
                tracing::debug!(error = %e, "bench request failed");
                self.sender = None;
                false
            }
        }
    }

    async fn try_get(
        &mut self,
        path_and_query: &str,
        credential: &HeaderName,
        value: &HeaderValue,
    ) -> Result<bool> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(&self.addr).await?;
            stream.set_nodelay(true)?;
            let (sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected above");
        sender.ready().await?;
        let request = hyper::Request::get(path_and_query)
            .header(header::HOST, self.host.clone())
            .header(credential, value.clone())
            .body(Empty::new())?;
        let ok = tokio::time::timeout(Duration::from_secs(30), async {
            let response = sender.send_request(request).await?;
            let ok = response.status().is_success();
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                frame?;
            }
            Ok::<_, hyper::Error>(ok)
        })
        .await
        .context("no answer within 30 s")??;
        Ok(ok)
    }
}
