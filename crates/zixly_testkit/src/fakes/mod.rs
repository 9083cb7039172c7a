//! Fake provider servers for tests, emulating `shared/docs/providers.md`: each provider's OAuth
//! authorize redirect and token endpoint (its client-auth style, `expires_in`, refresh-token
//! rotation with Xero's grace period, `invalid_grant`), its API shapes and paging, and its failure
//! modes (the exact 401 body of an expired token, 429 with `Retry-After`, injectable 5xx).
//!
//! The fakes are independent of `zixly_connectors` on purpose: they are written from the provider
//! facts, so a connector that misreads a shape fails against them.

pub mod asana;
pub mod hubspot;
pub mod myob;
pub mod oauth;
pub mod pipedrive;
pub mod record;
pub mod xero;

pub use record::{clear_recorded, recorded, RecordedRequest};

use std::net::SocketAddr;

/// Serves `router` on 127.0.0.1 with an ephemeral port; returns its base URL. Every request it
/// answers is recorded under that URL ([`recorded`]) for the contract checks.
pub async fn serve(router: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("binding a fake server");
    let addr = listener.local_addr().unwrap();
    let recording = record::register(&format!("http://{addr}"));
    let router = router.layer(axum::middleware::from_fn_with_state(
        recording,
        record::layer,
    ));
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), handle)
}

/// A provider's per-window request limit as a fake enforces it (an optional `limit` requests in
/// any `per`-long interval, sliding), and a record of the requests it let through, so a test can
/// assert how many were seen in any window.
#[derive(Debug, Default)]
pub struct RequestWindow {
    /// `(calls, per)`; `None`: unlimited (the default: tests of other behaviour never see it).
    pub limit: Option<(usize, std::time::Duration)>,
    /// When the requests answered (not refused) arrived.
    pub times: Vec<std::time::Instant>,
    /// Requests refused for the limit (answered 429).
    pub refused: u64,
}

impl RequestWindow {
    /// Counts a request arriving now. `Ok(Some(remaining))` when a limit is set (what is left in
    /// the window after this request), `Ok(None)` without one; `Err(wait)` when the request is
    /// above the limit: the time until the oldest request in the window leaves it.
    pub fn admit(&mut self) -> Result<Option<usize>, std::time::Duration> {
        let now = std::time::Instant::now();
        let Some((calls, per)) = self.limit else {
            self.times.push(now);
            return Ok(None);
        };
        let in_window: Vec<std::time::Instant> = self
            .times
            .iter()
            .rev()
            .take_while(|t| now.duration_since(**t) < per)
            .copied()
            .collect();
        if in_window.len() >= calls {
            self.refused += 1;
            // `in_window` is newest first: the one that frees a slot is `calls` from the end.
            let frees = in_window[calls - 1] + per;
            return Err(frees.saturating_duration_since(now));
        }
        self.times.push(now);
        Ok(Some(calls - in_window.len() - 1))
    }

    /// The most requests answered within any `per`-long interval.
    pub fn max_in_window(&self, per: std::time::Duration) -> usize {
        let t = &self.times;
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..t.len() {
            while t[hi].duration_since(t[lo]) >= per {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }
}

/// Whole seconds, rounded up, at least 1 (what `Retry-After` and `x-ratelimit-reset` carry).
pub fn ceil_secs(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}
