//! Pipedrive API v2: organizations, stages and deals (live, deleted, archived), `cursor` paging,
//! `updated_since` increments, `x-ratelimit-*` headers; normalized into clients and lead events.
//!
//! Mapping (issue 5): organizations -> clients (`client_id` = organization id). Each deal -> one
//! lead event at its current stage (`lead_id` = deal id, `stage` = the stage's name, `event_date` =
//! `stage_change_time`, else `add_time`; `value`/`currency` from the deal). Because the loader keys
//! lead events by (lead, stage, event date), a deal that moves on adds an event and keeps the earlier
//! ones: the stage history builds up sync by sync without one changelog call per deal. Status:
//! `won`, `lost`, `stale` (open, in a stage with rotting enabled, and not updated for the stage's
//! `days_to_rotten`) or `active`. Deals without an organization have no client and are skipped.
//!
//! Deleted deals: listed with `status=deleted` for 30 days and reported as removed. Deleting does
//! not bump `update_time` (tap-pipedrive #60), so every incremental read also lists the deleted
//! deals (a small set) without `updated_since`. Archived deals are only served by
//! `/deals/archived`; archiving hides a deal from the pipeline but does not undo its history, so
//! they are kept as lead events (with their status) and read from that endpoint too.
//!
//! Reads: [`PipedriveClient::deal_page`] reads one page of a [`DealList`] from a `next_cursor`
//! (the sync runner's resumable reads, a checkpoint per page); [`PipedriveClient::read`] reads
//! everything in one go. No search endpoint is used (the contract's separate search limit,
//! `search_per_2s`, does not apply).
//!
//! The API root is the token answer's `api_domain` ([`api_base`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use zixly_crypto::SecretString;

use crate::http::{classify, send_raw, DEFAULT_RETRY_AFTER};
use crate::hubspot::LeadEvent;
use crate::pace::Pacer;
use crate::{ClientRecord, ConnectorError, ConnectorResult};

/// Largest page v2 serves.
pub const PAGE_LIMIT: usize = 500;
/// Longest wait for a spent budget before a request; longer waits (the daily budget's) are
/// reported as [`ConnectorError::RateLimited`] to the queue instead of holding a worker.
pub const MAX_INLINE_WAIT: Duration = Duration::from_secs(10);
/// The burst window (contracts/pipedrive.json `rate_limits`: a rolling 2-second window) when an
/// answer has no `x-ratelimit-reset`.
pub const BURST_WINDOW: Duration = Duration::from_secs(2);

/// The API root: the token answer's `api_domain` when it is an http(s) URL (https required unless
/// the configured root is plain http, as with a local fake), else the configured root.
pub fn api_base(extra: &serde_json::Map<String, serde_json::Value>, configured: &str) -> String {
    extra
        .get("api_domain")
        .and_then(|v| v.as_str())
        .and_then(|s| valid_api_domain(s, configured))
        .unwrap_or_else(|| configured.trim_end_matches('/').to_string())
}

/// A token answer's `api_domain` when it is safe to send the access token to: an absolute
/// https URL with a host (plain http only when the configured root is http, as with a local
/// fake), without a trailing slash. The one check of `api_domain`, used at connect time, on
/// every refresh (Pipedrive's company domain can change; the contract says to refresh it from
/// each token response) and by [`api_base`].
pub fn valid_api_domain(api_domain: &str, configured: &str) -> Option<String> {
    let allow_http = configured.trim_end_matches('/').starts_with("http://");
    url::Url::parse(api_domain.trim())
        .ok()
        .filter(|u| u.scheme() == "https" || (allow_http && u.scheme() == "http"))
        .filter(|u| u.host_str().is_some())
        .filter(|u| u.username().is_empty() && u.password().is_none())
        .filter(|u| u.query().is_none() && u.fragment().is_none())
        .map(|u| u.as_str().trim_end_matches('/').to_string())
        .filter(|s| s.len() <= 200)
}

/// v2 timestamps are RFC 3339; v1 ones `2021-12-07 04:26:52` (UTC without a zone) and may be
/// `0000-00-00 00:00:00` (none).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|n| n.and_utc())
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.and_then(|s| parse_time(&s)))
}

/// A JSON number (or numeric string) as a decimal, from its shortest text.
pub(crate) fn de_opt_dec<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => Decimal::from_str_exact(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .map(Some)
            .map_err(D::Error::custom),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => s.trim().parse().map(Some).map_err(D::Error::custom),
        Some(other) => Err(D::Error::custom(format!("expected a number, got {other}"))),
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Organization {
    pub id: i64,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de_time")]
    pub update_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub is_deleted: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Stage {
    pub id: i64,
    pub name: String,
    pub pipeline_id: Option<i64>,
    #[serde(default)]
    pub is_deal_rot_enabled: bool,
    pub days_to_rotten: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Deal {
    pub id: i64,
    pub title: Option<String>,
    pub org_id: Option<i64>,
    pub pipeline_id: Option<i64>,
    pub stage_id: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_dec")]
    pub value: Option<Decimal>,
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "de_time")]
    pub add_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "de_time")]
    pub update_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "de_time")]
    pub stage_change_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub is_deleted: bool,
    #[serde(default)]
    pub is_archived: bool,
    /// `open`, `won`, `lost` (`deleted` on deleted deals).
    pub status: Option<String>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    success: bool,
    /// `null` on some empty answers.
    data: Option<Vec<T>>,
    additional_data: Option<AdditionalData>,
}

#[derive(Deserialize)]
struct AdditionalData {
    next_cursor: Option<String>,
}

/// The last `x-ratelimit-*` headers seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimit {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Seconds until the window resets.
    pub reset: Option<u64>,
}

impl RateLimit {
    fn from_headers(h: &reqwest::header::HeaderMap) -> RateLimit {
        let n = |k: &str| {
            h.get(k)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        RateLimit {
            limit: n("x-ratelimit-limit"),
            remaining: n("x-ratelimit-remaining"),
            reset: n("x-ratelimit-reset"),
        }
    }
}

pub struct PipedriveClient {
    http: reqwest::Client,
    api_base: String,
    access_token: SecretString,
    /// Requests made (for benchmarks and tests).
    pub calls: AtomicU64,
    rate: Mutex<RateLimit>,
    /// The connection's pacer: the burst window (shared with every other client of it).
    pacer: Arc<Pacer>,
    /// No request before this: a wait longer than [`MAX_INLINE_WAIT`] (the daily budget); shorter
    /// ones are the pacer's.
    blocked_until: Mutex<Option<Instant>>,
    /// The `Date` of the first answer since [`Self::read`] started (the provider's clock).
    first_answer: Mutex<Option<DateTime<Utc>>>,
}

/// One read: the clients and deals changed since the cursor (all of them on a full read).
#[derive(Debug, Clone)]
pub struct PipedriveRead {
    pub clients: Vec<ClientRecord>,
    pub events: Vec<LeadEvent>,
    /// Deal ids deleted (within Pipedrive's 30-day window): their lead events are to be removed.
    pub removed_leads: Vec<String>,
    /// Deals without an organization.
    pub skipped: usize,
    /// The next `updated_since`: the provider's clock (`Date`) at the first answer of this read,
    /// less [`crate::http::CURSOR_SAFETY`]. Whatever changed after the read began is at or after
    /// it; what is read twice is upserted twice, harmlessly.
    pub cursor: Option<DateTime<Utc>>,
}

const LIVE_STATUSES: &str = "open,won,lost";

/// One page of a listing and the cursor of the next (`None` on the last page).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// The three deal listings a read goes through (contracts/pipedrive.json `deals`,
/// `deals_archived`: cursor paging, sorted by `update_time` ascending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DealList {
    /// Open, won and lost deals (`/deals`), updated since the cursor.
    Live,
    /// Archived deals (`/deals/archived`: archiving hides a deal from `/deals`), updated since
    /// the cursor.
    Archived,
    /// Deals deleted in the last 30 days, never filtered by `updated_since`: deleting does not
    /// bump `update_time`.
    Deleted,
}

impl DealList {
    fn request(self, since: Option<DateTime<Utc>>) -> (&'static str, Vec<(&'static str, String)>) {
        let (path, since, status) = match self {
            DealList::Live => ("/api/v2/deals", since, LIVE_STATUSES),
            DealList::Archived => ("/api/v2/deals/archived", since, LIVE_STATUSES),
            DealList::Deleted => ("/api/v2/deals", None, "deleted"),
        };
        let mut q = PipedriveClient::incremental(since);
        q.push(("status", status.into()));
        (path, q)
    }
}

/// Whether a 429 is the spent daily token budget rather than the 2-second burst limit.
///
/// The contract (rate_limits.token_budget_headers, edge case daily_budget_429) documents no
/// header that names the daily budget; what it does document is that `x-ratelimit-remaining`
/// counts the 2-second burst window. A 429 while that window still has room cannot be the burst
/// limit, so it is the daily budget. A 429 with the window spent (or without the headers) is
/// taken as a burst; if it was the daily budget after all, the repeated 429s end in the engine's
/// NoProgress ERROR, which is readable, not a silent loop. Unverified against the live API.
pub fn is_daily_budget_429(rl: RateLimit) -> bool {
    rl.remaining.is_some_and(|r| r > 0)
}

/// The wait until the daily budget resets. The contract documents the daily counters in UTC
/// (`x-daily-requests-left`: "left today (UTC)"), so the reset is taken as the next UTC midnight.
pub fn until_utc_midnight(now: DateTime<Utc>) -> Duration {
    let midnight = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    (midnight - now)
        .to_std()
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_secs(1))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl PipedriveClient {
    /// `api_base`: see [`api_base`].
    pub fn new(http: reqwest::Client, api_base: &str, access_token: SecretString) -> Self {
        PipedriveClient {
            http,
            api_base: api_base.trim_end_matches('/').into(),
            access_token,
            calls: 0.into(),
            rate: Mutex::new(RateLimit::default()),
            pacer: Arc::new(Pacer::unlimited()),
            blocked_until: Mutex::new(None),
            first_answer: Mutex::new(None),
        }
    }

    /// Paces every request of this client with `pacer` (the connection's, shared).
    pub fn with_pacer(mut self, pacer: Arc<Pacer>) -> PipedriveClient {
        self.pacer = pacer;
        self
    }

    /// The rate-limit headers of the last answer.
    pub fn rate_limit(&self) -> RateLimit {
        *self.rate.lock().unwrap()
    }

    /// When an answer said to wait longer than [`MAX_INLINE_WAIT`] (the daily budget), reports the
    /// wait without calling. Shorter waits are the pacer's.
    async fn respect_budget(&self) -> ConnectorResult<()> {
        let until = *self.blocked_until.lock().unwrap();
        if let Some(wait) = until.and_then(|u| u.checked_duration_since(Instant::now())) {
            if wait > MAX_INLINE_WAIT {
                return Err(ConnectorError::RateLimited {
                    retry_after: Duration::from_secs(wait.as_secs().max(1)),
                });
            }
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    async fn get_page<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> ConnectorResult<(Vec<T>, Option<String>)> {
        self.respect_budget().await?;
        self.pacer.acquire().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let request = self
            .http
            .get(format!("{}{path}", self.api_base))
            .bearer_auth(self.access_token.expose())
            .header("Accept", "application/json")
            .query(query);
        let (status, headers, body) = send_raw(request).await?;
        if let Some(date) = crate::http::server_date(&headers) {
            self.first_answer.lock().unwrap().get_or_insert(date);
        }
        let rl = RateLimit::from_headers(&headers);
        *self.rate.lock().unwrap() = rl;
        let daily = status.as_u16() == 429 && is_daily_budget_429(rl);
        let wait = if daily {
            Some(until_utc_midnight(Utc::now()))
        } else {
            (rl.remaining == Some(0) || status.as_u16() == 429)
                .then(|| rl.reset.map_or(BURST_WINDOW, Duration::from_secs))
        };
        // A spent burst window (seconds): the pacer holds every request of the connection until
        // it resets. A longer wait (the daily budget) stops this client's requests instead (the
        // run ends with RateLimited and is rescheduled), and must not hold the connection's pacer
        // for hours.
        *self.blocked_until.lock().unwrap() = match wait {
            Some(w) if w <= MAX_INLINE_WAIT => {
                self.pacer.hold_for(w);
                None
            }
            w => w.map(|w| Instant::now() + w),
        };
        if daily {
            // Waiting a 2-second window does not help (edge case daily_budget_429): report the
            // wait until the budget resets, so the engine pauses the integration with a readable
            // reason and resume time instead of retrying every few seconds.
            return Err(ConnectorError::RateLimited {
                retry_after: until_utc_midnight(Utc::now()),
            });
        }
        if status.as_u16() == 429 {
            // Pipedrive's 429 carries the wait in `x-ratelimit-reset`, not `Retry-After`.
            let retry_after = headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .or(rl.reset)
                .map_or(DEFAULT_RETRY_AFTER, |s| Duration::from_secs(s.max(1)));
            return Err(ConnectorError::RateLimited { retry_after });
        }
        if !status.is_success() {
            return Err(classify(status, &headers, &body));
        }
        let envelope: Envelope<T> = serde_json::from_str(&body).map_err(|e| {
            ConnectorError::Permanent(format!("unexpected Pipedrive response: {e}"))
        })?;
        if !envelope.success {
            return Err(ConnectorError::Permanent(
                "Pipedrive answered success=false".into(),
            ));
        }
        Ok((
            envelope.data.unwrap_or_default(),
            envelope
                .additional_data
                .and_then(|a| a.next_cursor)
                .filter(|c| !c.is_empty()),
        ))
    }

    /// One page of `path` from `cursor` (the previous page's `next_cursor`; `None`: the first),
    /// [`PAGE_LIMIT`] items at most.
    async fn page<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        mut query: Vec<(&'static str, String)>,
        cursor: Option<&str>,
    ) -> ConnectorResult<Page<T>> {
        query.push(("limit", PAGE_LIMIT.to_string()));
        if let Some(c) = cursor {
            query.push(("cursor", c.to_string()));
        }
        let (items, next) = self.get_page::<T>(path, &query).await?;
        Ok(Page { items, next })
    }

    /// Every page, following `next_cursor` until it is null.
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: Vec<(&'static str, String)>,
    ) -> ConnectorResult<Vec<T>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .page::<T>(path, query.clone(), cursor.as_deref())
                .await?;
            out.extend(page.items);
            match page.next {
                Some(n) => cursor = Some(n),
                None => return Ok(out),
            }
        }
    }

    fn incremental(since: Option<DateTime<Utc>>) -> Vec<(&'static str, String)> {
        let mut q = vec![
            ("sort_by", "update_time".to_string()),
            ("sort_direction", "asc".to_string()),
        ];
        if let Some(s) = since {
            q.push(("updated_since", rfc3339(s)));
        }
        q
    }

    pub async fn organizations(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> ConnectorResult<Vec<Organization>> {
        self.list("/api/v2/organizations", Self::incremental(since))
            .await
    }

    pub async fn stages(&self) -> ConnectorResult<Vec<Stage>> {
        self.list("/api/v2/stages", vec![]).await
    }

    /// One page of a deal listing (see [`DealList`]), from `cursor`.
    pub async fn deal_page(
        &self,
        list: DealList,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> ConnectorResult<Page<Deal>> {
        let (path, query) = list.request(since);
        self.page(path, query, cursor).await
    }

    /// Every page of a deal listing.
    pub async fn deal_list(
        &self,
        list: DealList,
        since: Option<DateTime<Utc>>,
    ) -> ConnectorResult<Vec<Deal>> {
        let (path, query) = list.request(since);
        self.list(path, query).await
    }

    /// Open, won and lost deals updated since `since` (all of them without).
    pub async fn deals(&self, since: Option<DateTime<Utc>>) -> ConnectorResult<Vec<Deal>> {
        self.deal_list(DealList::Live, since).await
    }

    /// The `Date` of this client's first answer (the provider's clock when its read began), once
    /// it has had one.
    pub fn first_answer(&self) -> Option<DateTime<Utc>> {
        *self.first_answer.lock().unwrap()
    }

    /// A full read (`since` = None) or the changes since the previous cursor, in one go (the
    /// sync runner reads page by page instead: [`Self::deal_page`]).
    pub async fn read(
        &self,
        since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> ConnectorResult<PipedriveRead> {
        *self.first_answer.lock().unwrap() = None;
        let orgs = self.organizations(since).await?;
        let stages = self.stages().await?;
        let mut deals = self.deals(since).await?;
        deals.extend(self.deal_list(DealList::Archived, since).await?);
        let deleted = self.deal_list(DealList::Deleted, since).await?;
        let started = self.first_answer.lock().unwrap().unwrap_or(now);
        let cursor = Some(crate::http::next_cursor(started, since));
        deals.extend(deleted);
        let leads = lead_events(&deals, &stages, now);
        Ok(PipedriveRead {
            clients: orgs
                .into_iter()
                .filter(|o| !o.is_deleted)
                .map(|o| ClientRecord {
                    client_id: o.id.to_string(),
                    name: o.name,
                })
                .collect(),
            events: leads.events,
            removed_leads: leads.removed,
            skipped: leads.skipped,
            cursor,
        })
    }
}

/// Normalized deals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leads {
    pub events: Vec<LeadEvent>,
    /// Ids of deleted deals.
    pub removed: Vec<String>,
    /// Live deals without an organization.
    pub skipped: usize,
}

/// Normalizes deals (see the module docs). `now` is injected so the rotting rule is testable.
pub fn lead_events(deals: &[Deal], stages: &[Stage], now: DateTime<Utc>) -> Leads {
    let stages: HashMap<i64, &Stage> = stages.iter().map(|s| (s.id, s)).collect();
    let mut out = Leads::default();
    let mut seen = std::collections::HashSet::new();
    for deal in deals {
        // A deal can come from both the live and the deleted listing within one read.
        let deleted = deal.is_deleted || deal.status.as_deref() == Some("deleted");
        if !seen.insert((deal.id, deleted)) {
            continue;
        }
        if deleted {
            out.removed.push(deal.id.to_string());
            continue;
        }
        let Some(org) = deal.org_id else {
            out.skipped += 1;
            continue;
        };
        let Some(event_date) = deal
            .stage_change_time
            .or(deal.add_time)
            .or(deal.update_time)
        else {
            out.skipped += 1;
            continue;
        };
        let stage = deal.stage_id.and_then(|id| stages.get(&id));
        let rotten = stage
            .filter(|s| s.is_deal_rot_enabled)
            .and_then(|s| s.days_to_rotten)
            .zip(deal.update_time.or(Some(event_date)))
            .is_some_and(|(days, last)| now - last > chrono::Duration::days(days));
        let status = match deal.status.as_deref() {
            Some("won") => "won",
            Some("lost") => "lost",
            _ if rotten => "stale",
            _ => "active",
        };
        out.events.push(LeadEvent {
            client_id: org.to_string(),
            lead_id: deal.id.to_string(),
            stage: stage.map_or_else(
                || deal.stage_id.map_or_else(String::new, |s| s.to_string()),
                |s| s.name.clone(),
            ),
            event_date,
            value: deal.value.map(|v| v.round_dp(2)),
            currency: deal.currency.clone().filter(|c| !c.is_empty()),
            status,
        });
    }
    // A deal deleted in this read is not also an event.
    let removed: std::collections::HashSet<&str> = out.removed.iter().map(String::as_str).collect();
    out.events.retain(|e| !removed.contains(e.lead_id.as_str()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deal(v: serde_json::Value) -> Deal {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn times_v1_v2_and_zero() {
        assert_eq!(
            parse_time("2021-12-07T04:26:52Z").unwrap().to_rfc3339(),
            "2021-12-07T04:26:52+00:00"
        );
        assert_eq!(
            parse_time("2021-12-07 04:26:52").unwrap().to_rfc3339(),
            "2021-12-07T04:26:52+00:00"
        );
        assert!(parse_time("0000-00-00 00:00:00").is_none());
    }

    #[test]
    fn a_429_with_room_in_the_burst_window_is_the_daily_budget() {
        let rl = |remaining| RateLimit {
            limit: Some(80),
            remaining,
            reset: Some(2),
        };
        assert!(is_daily_budget_429(rl(Some(37))));
        assert!(!is_daily_budget_429(rl(Some(0))), "burst window spent");
        assert!(!is_daily_budget_429(rl(None)), "no headers: a burst");
        let now: DateTime<Utc> = "2026-12-02T23:00:00Z".parse().unwrap();
        assert_eq!(until_utc_midnight(now), Duration::from_secs(3600));
        let late: DateTime<Utc> = "2026-12-02T23:59:59.900Z".parse().unwrap();
        assert_eq!(until_utc_midnight(late), Duration::from_secs(1));
    }

    #[test]
    fn api_domain_is_used_only_when_it_is_a_safe_url() {
        let extra = |d: &str| {
            serde_json::json!({ "api_domain": d })
                .as_object()
                .unwrap()
                .clone()
        };
        assert_eq!(
            api_base(
                &extra("https://acme.pipedrive.com/"),
                "https://api.pipedrive.com"
            ),
            "https://acme.pipedrive.com"
        );
        assert_eq!(
            api_base(&extra("http://evil.example"), "https://api.pipedrive.com"),
            "https://api.pipedrive.com"
        );
        assert_eq!(
            api_base(&extra("not a url"), "https://api.pipedrive.com/"),
            "https://api.pipedrive.com"
        );
        assert_eq!(
            api_base(&serde_json::Map::new(), "http://127.0.0.1:9"),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            valid_api_domain(
                "https://user:pw@acme.pipedrive.com",
                "https://api.pipedrive.com"
            ),
            None
        );
        assert_eq!(
            valid_api_domain(
                "https://acme.pipedrive.com?x=1",
                "https://api.pipedrive.com"
            ),
            None
        );
        assert_eq!(
            valid_api_domain(" https://new.pipedrive.com/ ", "https://api.pipedrive.com")
                .as_deref(),
            Some("https://new.pipedrive.com")
        );
    }

    #[test]
    fn deals_become_events_with_status_rot_and_removals() {
        let stages: Vec<Stage> = serde_json::from_value(serde_json::json!([
            {"id": 1, "name": "Qualified", "pipeline_id": 1, "is_deal_rot_enabled": true, "days_to_rotten": 10},
            {"id": 2, "name": "Proposal", "pipeline_id": 1, "is_deal_rot_enabled": false, "days_to_rotten": null}
        ]))
        .unwrap();
        let now: DateTime<Utc> = "2024-03-01T00:00:00Z".parse().unwrap();
        let deals = vec![
            deal(
                serde_json::json!({"id": 1, "org_id": 7, "stage_id": 1, "value": 1500.5, "currency": "EUR", "status": "open",
                "add_time": "2024-01-01T00:00:00Z", "stage_change_time": "2024-02-01T00:00:00Z", "update_time": "2024-02-01T00:00:00Z"}),
            ),
            deal(
                serde_json::json!({"id": 2, "org_id": 7, "stage_id": 2, "value": 10, "currency": "EUR", "status": "open",
                "add_time": "2024-01-01T00:00:00Z", "update_time": "2024-01-01T00:00:00Z"}),
            ),
            deal(
                serde_json::json!({"id": 3, "org_id": 8, "stage_id": 1, "value": 0, "status": "won",
                "add_time": "2024-01-01T00:00:00Z", "update_time": "2024-01-01T00:00:00Z"}),
            ),
            deal(
                serde_json::json!({"id": 4, "org_id": null, "stage_id": 1, "status": "open", "add_time": "2024-01-01T00:00:00Z"}),
            ),
            deal(
                serde_json::json!({"id": 5, "org_id": 8, "stage_id": 1, "status": "lost", "is_deleted": true, "add_time": "2024-01-01T00:00:00Z"}),
            ),
            deal(
                serde_json::json!({"id": 6, "org_id": 8, "stage_id": 2, "status": "lost", "is_archived": true, "add_time": "2024-01-01T00:00:00Z"}),
            ),
        ];
        let l = lead_events(&deals, &stages, now);
        assert_eq!(l.skipped, 1);
        assert_eq!(l.removed, vec!["5".to_string()]);
        let by: HashMap<&str, &LeadEvent> =
            l.events.iter().map(|e| (e.lead_id.as_str(), e)).collect();
        assert_eq!(by.len(), 4);
        assert_eq!(
            (by["1"].stage.as_str(), by["1"].status),
            ("Qualified", "stale"),
            "29 days without update in a 10-day rotting stage"
        );
        assert_eq!(by["1"].event_date.to_rfc3339(), "2024-02-01T00:00:00+00:00");
        assert_eq!(by["1"].value, Some("1500.5".parse().unwrap()));
        assert_eq!(by["2"].status, "active", "rotting is off in stage 2");
        assert_eq!(by["3"].status, "won");
        assert_eq!((by["6"].status, by["6"].client_id.as_str()), ("lost", "8"));
    }
}
