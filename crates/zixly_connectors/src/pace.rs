//! Pacing requests under a provider's documented rate limits, so that 429s are the exception.
//!
//! A [`Pacer`] belongs to one connection (an integration) and is shared by every request made for
//! it in this process (the sync engine keeps one per integration; the job queue runs at most one
//! sync per integration across all workers). It enforces each [`RateLimit`] as a **sliding**
//! window: at most `calls` requests in any `per`-long interval. Providers count in fixed windows
//! that start at times we cannot see (Xero: "fixed windows that reset at different times per
//! tenant"); a sliding window of the same size never exceeds any fixed one.
//!
//! The providers' rate-limit headers correct the local view (another app or process spending the
//! same budget): [`Pacer::observe_remaining`] with 0 remaining holds every request until the
//! window has passed. A 429 that still arrives is returned to the caller as
//! [`crate::ConnectorError::RateLimited`]: resumable runs snooze and continue at their checkpoint.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::Provider;

/// At most `calls` requests in any `per`-long interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub calls: u32,
    pub per: Duration,
}

impl RateLimit {
    pub const fn new(calls: u32, per: Duration) -> RateLimit {
        RateLimit { calls, per }
    }
}

/// Which of a provider's budgets a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    General,
    /// HubSpot's CRM search (its own, lower per-second limit, exempt from the ten-secondly one).
    Search,
}

/// The documented limits (`contracts/<provider>.json`, `rate_limits`) of a provider's lane.
pub fn documented_limits(provider: Provider, lane: Lane) -> Vec<RateLimit> {
    const SEC: Duration = Duration::from_secs(1);
    const MIN: Duration = Duration::from_secs(60);
    match (provider, lane) {
        // per tenant: 60 per minute (and 5,000 per day: headers and 429s tell).
        (Provider::Xero, _) => vec![RateLimit::new(60, MIN)],
        // OAuth apps: 100 per 10 s per account; search: 4 per second per token.
        (Provider::Hubspot, Lane::General) => {
            vec![RateLimit::new(100, Duration::from_secs(10))]
        }
        (Provider::Hubspot, Lane::Search) => vec![RateLimit::new(4, SEC)],
        // Burst: 80 per 2 s for the smallest plan's OAuth tokens (the headers tell the real one).
        (Provider::Pipedrive, _) => vec![RateLimit::new(80, Duration::from_secs(2))],
        // 150 per minute on free workspaces (1,500 on paid ones): the safe default.
        (Provider::Asana, _) => vec![RateLimit::new(150, MIN)],
        // 8 per second per API key.
        (Provider::Myob, _) => vec![RateLimit::new(8, SEC)],
    }
}

/// What a pacer did (for progress, logs and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaceStats {
    /// Requests let through.
    pub requests: u64,
    /// Requests that had to wait for a slot.
    pub waits: u64,
    /// Total time spent waiting.
    pub waited: Duration,
}

#[derive(Debug)]
struct State {
    /// Send times within the longest window, oldest first.
    sent: VecDeque<Instant>,
    /// No request before this (the provider said its window is spent).
    hold_until: Option<Instant>,
    stats: PaceStats,
    /// The provider's last word on its daily budget (Xero's `X-DayLimit-Remaining`).
    day_remaining: Option<u64>,
}

/// Paces the requests of one connection.
#[derive(Debug)]
pub struct Pacer {
    limits: Vec<RateLimit>,
    state: Mutex<State>,
}

impl Pacer {
    pub fn new(limits: Vec<RateLimit>) -> Pacer {
        Pacer {
            limits: limits.into_iter().filter(|l| l.calls > 0).collect(),
            state: Mutex::new(State {
                sent: VecDeque::new(),
                hold_until: None,
                stats: PaceStats::default(),
                day_remaining: None,
            }),
        }
    }

    /// No pacing (tests of a connector's own behaviour, one-off calls).
    pub fn unlimited() -> Pacer {
        Pacer::new(Vec::new())
    }

    pub fn limits(&self) -> &[RateLimit] {
        &self.limits
    }

    /// Waits until a request fits every limit, then counts it as sent.
    pub async fn acquire(&self) {
        let mut waited = false;
        let start = Instant::now();
        loop {
            let wait = {
                let mut st = self.state.lock().expect("pacer lock");
                let now = Instant::now();
                match self.wait_needed(&mut st, now) {
                    None => {
                        st.sent.push_back(now);
                        st.stats.requests += 1;
                        if waited {
                            st.stats.waits += 1;
                            st.stats.waited += now - start;
                        }
                        return;
                    }
                    Some(w) => w,
                }
            };
            waited = true;
            tokio::time::sleep(wait).await;
        }
    }

    /// How long a request sent at `now` must wait, pruning send times no window needs.
    fn wait_needed(&self, st: &mut State, now: Instant) -> Option<Duration> {
        if let Some(h) = st.hold_until {
            if h > now {
                return Some(h - now);
            }
            st.hold_until = None;
        }
        let longest = self.limits.iter().map(|l| l.per).max()?;
        while st.sent.front().is_some_and(|t| now - *t >= longest) {
            st.sent.pop_front();
        }
        let mut wait = Duration::ZERO;
        for limit in &self.limits {
            let in_window: Vec<&Instant> =
                st.sent.iter().filter(|t| now - **t < limit.per).collect();
            let n = in_window.len();
            if n >= limit.calls as usize {
                // The request may go when enough of the oldest ones leave this window.
                let frees = *in_window[n - limit.calls as usize] + limit.per;
                wait = wait.max(frees - now);
            }
        }
        (!wait.is_zero()).then_some(wait)
    }

    /// The provider's count of requests left in a window of length `window` (e.g. Xero's
    /// `X-MinLimit-Remaining`, HubSpot's `X-HubSpot-RateLimit-Remaining`): at 0, nothing is sent
    /// until `window` has passed since this answer.
    pub fn observe_remaining(&self, remaining: Option<u64>, window: Duration) {
        if remaining == Some(0) {
            let until = Instant::now() + window;
            let mut st = self.state.lock().expect("pacer lock");
            st.hold_until = Some(st.hold_until.map_or(until, |h| h.max(until)));
        }
    }

    /// Holds every request for `wait` (a 429's `Retry-After` seen by another caller).
    pub fn hold_for(&self, wait: Duration) {
        self.observe_remaining(Some(0), wait);
    }

    /// Records the provider's count of requests left today.
    pub fn observe_day_remaining(&self, remaining: Option<u64>) {
        if remaining.is_some() {
            self.state.lock().expect("pacer lock").day_remaining = remaining;
        }
    }

    /// The provider's last count of requests left today, when it sends one.
    pub fn day_remaining(&self) -> Option<u64> {
        self.state.lock().expect("pacer lock").day_remaining
    }

    pub fn stats(&self) -> PaceStats {
        self.state.lock().expect("pacer lock").stats
    }
}

/// A header's value as a non-negative integer.
pub fn header_u64(headers: &reqwest::header::HeaderMap, name: &str) -> Option<u64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    //! Real time with short windows (tokio's paused clock needs a feature the rest of the
    //! workspace would then be rebuilt with): the assertions are the invariant — never more than
    //! the limit in any window — and lower bounds on waiting, which load cannot break.
    use super::*;

    const W: Duration = Duration::from_millis(200);

    fn at_most_in_any_window(at: &[Duration], calls: usize, per: Duration) {
        for (i, a) in at.iter().enumerate() {
            let n = at[i..].iter().take_while(|b| **b - *a < per).count();
            assert!(n <= calls, "{n} sends within {per:?} from {a:?}: {at:?}");
        }
    }

    #[tokio::test]
    async fn a_sliding_window_never_exceeds_the_limit() {
        let pacer = Pacer::new(vec![RateLimit::new(3, W)]);
        let t0 = Instant::now();
        let mut at = Vec::new();
        for _ in 0..7 {
            pacer.acquire().await;
            at.push(Instant::now() - t0);
        }
        at_most_in_any_window(&at, 3, W);
        assert!(at[6] >= 2 * W, "the 7th waits two windows: {at:?}");
        let stats = pacer.stats();
        assert_eq!(stats.requests, 7);
        // The 4th and the 7th must wait; the 5th and 6th may or may not, depending on how far
        // the 4th's sleep overshot.
        assert!(stats.waits >= 2, "{stats:?}");
        assert!(stats.waited >= W, "{stats:?}");
    }

    #[tokio::test]
    async fn two_limits_both_hold() {
        // HubSpot-like: a short window and a long one.
        let short = Duration::from_millis(50);
        let pacer = Pacer::new(vec![RateLimit::new(4, short), RateLimit::new(10, W * 2)]);
        let t0 = Instant::now();
        let mut at = Vec::new();
        for _ in 0..11 {
            pacer.acquire().await;
            at.push(Instant::now() - t0);
        }
        at_most_in_any_window(&at, 4, short);
        at_most_in_any_window(&at, 10, W * 2);
        assert!(
            at[10] >= W * 2,
            "the 11th waits for the long window: {at:?}"
        );
    }

    #[tokio::test]
    async fn a_spent_window_reported_by_the_provider_holds_requests() {
        let pacer = Pacer::new(vec![RateLimit::new(60, Duration::from_secs(60))]);
        pacer.acquire().await;
        pacer.observe_remaining(Some(5), W);
        let t0 = Instant::now();
        pacer.acquire().await;
        assert!(Instant::now() - t0 < W, "5 left: no wait");
        pacer.observe_remaining(Some(0), W);
        pacer.acquire().await;
        assert!(Instant::now() - t0 >= W, "0 left: wait the window");
        assert_eq!(pacer.day_remaining(), None);
        pacer.observe_day_remaining(Some(4321));
        pacer.observe_day_remaining(None);
        assert_eq!(pacer.day_remaining(), Some(4321));
    }

    #[tokio::test]
    async fn unlimited_never_waits() {
        let pacer = Pacer::unlimited();
        for _ in 0..1000 {
            pacer.acquire().await;
        }
        assert_eq!(pacer.stats().requests, 1000);
        assert_eq!(pacer.stats().waits, 0);
    }

    #[test]
    fn every_provider_has_documented_limits() {
        for p in Provider::ALL {
            assert!(!documented_limits(p, Lane::General).is_empty(), "{p}");
        }
        assert_eq!(
            documented_limits(Provider::Hubspot, Lane::Search),
            vec![RateLimit::new(4, Duration::from_secs(1))]
        );
    }
}
