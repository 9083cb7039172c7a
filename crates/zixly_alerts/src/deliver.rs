//! Notification delivery: the `alert_notify` and `notification_deliver` jobs, and the rules a
//! channel must meet (shared with the channel actions of the web crate).
//!
//! * `alert_notify` (args `{"transition_id"}`): one in-app notification per active user, one
//!   `notification_deliveries` row per active channel of the rule, one `notification_deliver`
//!   job per pending delivery — all in one transaction and idempotent (see
//!   `TenantTx::record_alert_notifications`), so running it twice creates nothing new.
//! * `notification_deliver` (args `{"delivery_id"}`, unique key the delivery id): one attempt to
//!   send, one `notification_dispatch_log` row per attempt; a failure retries through the queue
//!   with [`DeliveryConfig::backoff`] until the job's last attempt, which marks the delivery
//!   `failed`. A delivery already `delivered`/`failed` is not sent again, so a job re-run after a
//!   crash between the send and its record is the only duplicate — which is why the webhook-id
//!   (the delivery id) is the same on every attempt: receivers deduplicate on it.
//!
//! Webhooks are signed ([`signature`]); receiver addresses follow [`address`]. Requests follow
//! no redirect (a redirect could lead past the address rule), time out, and keep at most 1 KiB of
//! the answer. Errors recorded anywhere never carry a secret: reqwest errors are stripped of
//! their URL (a Slack URL is a secret), and the signing secret is only ever in memory.

pub mod address;
pub mod signature;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;
use zixly_crypto::{Keyring, SecretString};
use zixly_db::queries::notifications::{Attempt, DeliveryToSend, TransitionEvent};
use zixly_db::TenantTx;
use zixly_domain::alerts::{ChangeMode, RuleKind};
use zixly_domain::display::{self, CustomMetricWords, Figures};
use zixly_domain::period::Bucket;
use zixly_queue::{Job, JobError, NewJob, Worker};

use crate::mail::{Email, Mailer};
use crate::Services;

/// The job kind that turns a notified `alert_transitions` row into notifications and deliveries.
pub const NOTIFY_JOB: &str = "alert_notify";
/// The job kind that delivers one `notification_deliveries` row to its channel.
pub const DELIVER_JOB: &str = "notification_deliver";

/// The environment variable that lifts the address rule (operators with receivers on their own
/// network; tests with a local receiver).
pub const ALLOW_PRIVATE_ENV: &str = "ZIXLY_WEBHOOK_ALLOW_PRIVATE";

/// At most this much of a receiver's answer is kept (the dispatch log's CHECK).
pub const RESPONSE_LIMIT: usize = 1024;
/// Attempts per delivery (the job's `max_attempts`).
pub const MAX_ATTEMPTS: i32 = 6;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Whether `ZIXLY_WEBHOOK_ALLOW_PRIVATE` is set (to anything but empty, `0` or `false`).
pub fn allow_private_from_env() -> bool {
    std::env::var(ALLOW_PRIVATE_ENV)
        .map(|v| !matches!(v.trim(), "" | "0" | "false"))
        .unwrap_or(false)
}

/// How deliveries are made.
#[derive(Clone)]
pub struct DeliveryConfig {
    pub allow_private: bool,
    /// The wait before the retry after failed attempt `n` (1-based).
    pub backoff: fn(i32) -> Duration,
    /// The transport of e-mail channels; `None`: e-mail deliveries fail with a readable error.
    pub mailer: Option<Arc<dyn Mailer>>,
}

impl DeliveryConfig {
    /// From the environment: the address rule's switch, and the server's mail settings
    /// (`ZIXLY_SMTP_URL`, `ZIXLY_MAIL_FROM`) so that a worker started with the same environment as
    /// the server sends alert mail the same way.
    pub fn from_env() -> DeliveryConfig {
        let mailer = std::env::var("ZIXLY_SMTP_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .and_then(|url| {
                let from = std::env::var("ZIXLY_MAIL_FROM")
                    .unwrap_or_else(|_| "zixly@localhost".into());
                match crate::mail::SmtpMailer::from_url(&url, &from) {
                    Ok(m) => Some(Arc::new(m) as Arc<dyn Mailer>),
                    Err(e) => {
                        tracing::warn!(error = %e, "alert e-mail is off: invalid ZIXLY_SMTP_URL / ZIXLY_MAIL_FROM");
                        None
                    }
                }
            });
        DeliveryConfig {
            allow_private: allow_private_from_env(),
            backoff: default_backoff,
            mailer,
        }
    }
}

/// The Standard Webhooks retry schedule: 5 s, 5 min, 30 min, 2 h, 5 h, then 10 h.
pub fn default_backoff(attempt: i32) -> Duration {
    Duration::from_secs(match attempt {
        ..=1 => 5,
        2 => 300,
        3 => 1800,
        4 => 7200,
        5 => 18_000,
        _ => 36_000,
    })
}

pub(crate) fn register(worker: &mut Worker, services: &Services) {
    register_with(worker, services, DeliveryConfig::from_env());
}

/// Registers both jobs with an explicit configuration (tests: a local receiver, no backoff).
pub fn register_with(worker: &mut Worker, services: &Services, config: DeliveryConfig) {
    let s = services.clone();
    worker.register(NOTIFY_JOB, move |job: Job| {
        let s = s.clone();
        async move { notify(&s, job).await }
    });
    let s = services.clone();
    let config = Arc::new(config);
    worker.register(DELIVER_JOB, move |job: Job| {
        let (s, config) = (s.clone(), config.clone());
        async move { deliver(&s, &config, job).await }
    });
}

/// The delivery job of `delivery_id`, enqueued in `tx` (unique per delivery).
pub async fn enqueue_delivery(tx: &TenantTx, delivery_id: Uuid) -> Result<(), zixly_db::DbError> {
    let mut job = NewJob::new(DELIVER_JOB, json!({ "delivery_id": delivery_id }));
    job.unique_key = Some(delivery_id.to_string());
    job.max_attempts = MAX_ATTEMPTS;
    tx.enqueue_job(&job).await?;
    Ok(())
}

fn uuid_arg(job: &Job, name: &str) -> Result<Uuid, JobError> {
    job.args
        .get(name)
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| JobError::Discard(anyhow!("job arguments lack a valid `{name}`")))
}

fn retry(e: impl Into<anyhow::Error>) -> JobError {
    JobError::Retry(e.into())
}

async fn notify(s: &Services, job: Job) -> Result<(), JobError> {
    let transition_id = uuid_arg(&job, "transition_id")?;
    let tx = s
        .app
        .begin_tenant(job.tenant_id)
        .await
        .context("alert_notify: starting")
        .map_err(retry)?;
    let Some(event) = tx
        .transition_event(transition_id)
        .await
        .context("alert_notify: reading the transition")
        .map_err(retry)?
    else {
        // Deleted with its rule meanwhile: nothing left to tell.
        return Ok(());
    };
    if !event.notify {
        return Ok(());
    }
    let event_type = event_type(&event.to_state);
    let payload = payload(&event, &event_type);
    let deliveries = tx
        .record_alert_notifications(
            &event,
            &event_type,
            &message(&event),
            &link(&event),
            &payload,
        )
        .await
        .context("alert_notify: recording notifications")
        .map_err(retry)?;
    for id in deliveries {
        enqueue_delivery(&tx, id)
            .await
            .context("alert_notify: enqueueing a delivery")
            .map_err(retry)?;
    }
    tx.commit()
        .await
        .context("alert_notify: committing")
        .map_err(retry)
}

/// `alert.firing`, `alert.resolved` (an alert back to ok counts as resolved), else `alert.<state>`.
pub fn event_type(to_state: &str) -> String {
    match to_state {
        "firing" => "alert.firing".into(),
        "resolved" | "ok" => "alert.resolved".into(),
        other => format!("alert.{other}"),
    }
}

/// Where a person sees the figure: for a catalogue KPI of one client, the client's page over the
/// judged bucket's dates (its charts and figures for exactly that day, week or month); otherwise
/// (tenant-wide, a custom metric, a goal or stale rule, which the client page does not show) the
/// alert's own page: figure, expected band, reason and history.
fn link(e: &TransitionEvent) -> String {
    let on_client_page = matches!(e.rule_kind.as_str(), "threshold" | "change" | "anomaly")
        && e.custom_metric.is_none();
    match (e.client_id, e.bucket.parse::<Bucket>()) {
        (Some(id), Ok(bucket)) if on_client_page => {
            let from = bucket.start_of(e.bucket_start);
            let to = bucket.next_start(from).pred_opt().unwrap_or(from);
            format!("/clients/{id}?range=custom&from={from}&to={to}")
        }
        _ => format!("/alerts/{}", e.alert_id),
    }
}

/// The webhook body (and what Slack and e-mail messages are written from). Decimals are strings,
/// as everywhere in the API, so no receiver rounds money through a float.
fn payload(e: &TransitionEvent, event_type: &str) -> serde_json::Value {
    json!({
        "type": event_type,
        "transition_id": e.transition_id,
        "alert_id": e.alert_id,
        "rule_id": e.rule_id,
        "rule_name": e.rule_name,
        "rule_kind": e.rule_kind,
        "client_id": e.client_id,
        "client_name": e.client_name,
        "kpi": e.kpi,
        "bucket": e.bucket,
        "bucket_start": e.bucket_start,
        "from_state": e.from_state,
        "state": e.to_state,
        "value": e.value.map(|v| v.normalize().to_string()),
        "threshold": e.threshold.map(|v| v.normalize().to_string()),
        "expected_low": e.expected_low.map(|v| v.normalize().to_string()),
        "expected_high": e.expected_high.map(|v| v.normalize().to_string()),
        "detail": e.detail,
        "occurred_at": e.occurred_at,
        "message": message(e),
        "test": false,
    })
}

/// How the event's figures read: the tenant's currency, the custom metric's name and unit.
fn figures_of(e: &TransitionEvent) -> Figures {
    let custom = match (&e.kpi, &e.custom_metric) {
        (Some(name), Some((display_name, unit))) => vec![CustomMetricWords {
            name: name.clone(),
            display_name: display_name.clone(),
            unit: unit.clone(),
        }],
        _ => Vec::new(),
    };
    Figures::new(&e.base_currency, custom)
}

/// One sentence a person reads in the notification centre, a Slack channel or a mail subject:
/// "Alert “Big month” is firing: Revenue of Acme Pty for Mar 2026 is $1,250.00 (threshold
/// $1,000.00)." Figures are written as the pages write them, from the transition's own value
/// (not the alert's latest, which a later evaluation may have changed before this is sent).
fn message(e: &TransitionEvent) -> String {
    let what = match e.to_state.as_str() {
        "firing" => "is firing",
        "resolved" | "ok" => "is resolved",
        "no_data" => "has no data",
        "pending" => "is pending",
        other => other,
    };
    let f = figures_of(e);
    let kind = e.rule_kind.parse::<RuleKind>().ok();
    let kpi = e.kpi.as_deref();
    let mode = e
        .detail
        .pointer("/comparison/change_mode")
        .and_then(|m| m.as_str())
        .and_then(|m| m.parse::<ChangeMode>().ok());
    let subject = e.client_name.as_deref().unwrap_or("all clients");
    let show = |d: Decimal| match kind {
        Some(k) => f.judged(k, kpi, mode, d),
        None => display::number(d),
    };
    let mut text = format!("Alert “{}” {what}: ", e.rule_name);
    if kind == Some(RuleKind::Stale) {
        text.push_str(&format!("data of {subject}"));
        match e.value {
            Some(v) => text.push_str(&format!(" last new {} ago", show(v))),
            None => text.push_str(" has none yet"),
        }
        if let Some(t) = e.threshold {
            text.push_str(&format!(" (limit {})", show(t)));
        }
        text.push('.');
        return text;
    }
    let bucket = e.bucket.parse::<Bucket>().unwrap_or(Bucket::Month);
    text.push_str(&format!(
        "{} of {subject} for {}",
        f.kpi_name(kpi),
        display::bucket_label(bucket, e.bucket_start)
    ));
    if let Some(v) = e.value {
        let verb = if kind == Some(RuleKind::Change) {
            "changed by"
        } else {
            "is"
        };
        text.push_str(&format!(" {verb} {}", show(v)));
    }
    if let (Some(lo), Some(hi)) = (e.expected_low, e.expected_high) {
        text.push_str(&format!(
            " (expected {} – {})",
            f.kpi(kpi, lo),
            f.kpi(kpi, hi)
        ));
    } else if let Some(t) = e.threshold {
        let word = if kind == Some(RuleKind::Goal) {
            "target"
        } else {
            "threshold"
        };
        text.push_str(&format!(" ({word} {})", show(t)));
    }
    text.push('.');
    text
}

/// The payload of a channel's "send test".
pub fn test_payload(channel_name: &str) -> serde_json::Value {
    json!({
        "type": "alert.test",
        "test": true,
        "message": format!("Test notification for channel “{channel_name}” from Zixly."),
        "rule_id": null, "client_id": null, "kpi": null, "bucket_start": null,
        "value": null, "threshold": null,
    })
}

/// The associated data of a channel's secret: tenant, row and column, so a ciphertext copied to
/// another row or tenant does not decrypt.
pub fn secret_aad(tenant_id: Uuid, channel_id: Uuid) -> Vec<u8> {
    format!("notification_providers/{tenant_id}/{channel_id}/secret_ciphertext").into_bytes()
}

/// What ends an attempt.
struct Outcome {
    sent: bool,
    status: Option<i32>,
    response: Option<String>,
    error: Option<String>,
    /// Do not retry (a refused address, a channel without what it needs).
    permanent: bool,
    retry_after: Option<Duration>,
}

impl Outcome {
    fn failed(error: impl std::fmt::Display, permanent: bool) -> Outcome {
        Outcome {
            sent: false,
            status: None,
            response: None,
            error: Some(error.to_string()),
            permanent,
            retry_after: None,
        }
    }
}

async fn deliver(s: &Services, config: &DeliveryConfig, job: Job) -> Result<(), JobError> {
    let delivery_id = uuid_arg(&job, "delivery_id")?;
    let tx = s
        .app
        .begin_tenant(job.tenant_id)
        .await
        .context("notification_deliver: starting")
        .map_err(retry)?;
    let Some(delivery) = tx
        .delivery_to_send(delivery_id)
        .await
        .context("notification_deliver: reading the delivery")
        .map_err(retry)?
    else {
        return Ok(()); // the channel was deleted, and its deliveries with it
    };
    // Done already (a re-run after a crash that followed the record): never send twice.
    if delivery.state != "pending" {
        return Ok(());
    }
    // The read transaction ends before the request: a slow receiver must not hold a connection.
    tx.commit()
        .await
        .context("notification_deliver: reading")
        .map_err(retry)?;

    let started = Instant::now();
    let outcome = if delivery.channel_active {
        attempt(s, config, job.tenant_id, &delivery).await
    } else {
        Outcome::failed("the channel is deactivated", true)
    };
    let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);

    let last = job.attempt >= job.max_attempts;
    let state_after = if outcome.sent {
        "delivered"
    } else if outcome.permanent || last {
        "failed"
    } else {
        "pending"
    };
    let tx = s
        .app
        .begin_tenant(job.tenant_id)
        .await
        .context("notification_deliver: recording")
        .map_err(retry)?;
    tx.record_delivery_attempt(
        &delivery,
        &Attempt {
            attempt: job.attempt,
            sent: outcome.sent,
            duration_ms,
            response_status: outcome.status,
            response: outcome.response.as_deref(),
            error: outcome.error.as_deref(),
            state_after,
        },
    )
    .await
    .context("notification_deliver: recording the attempt")
    .map_err(retry)?;
    tx.commit()
        .await
        .context("notification_deliver: committing the attempt")
        .map_err(retry)?;

    match state_after {
        "delivered" => Ok(()),
        "failed" => Err(JobError::Discard(anyhow!(
            "delivery {delivery_id} failed: {}",
            outcome.error.unwrap_or_default()
        ))),
        _ => {
            let wait = outcome
                .retry_after
                .unwrap_or_else(|| (config.backoff)(job.attempt));
            Err(JobError::RetryAfter(
                wait,
                anyhow!(
                    "delivery {delivery_id} attempt {}: {}",
                    job.attempt,
                    outcome.error.unwrap_or_default()
                ),
            ))
        }
    }
}

fn decrypt_secret(
    s: &Services,
    tenant_id: Uuid,
    d: &DeliveryToSend,
) -> Result<Option<SecretString>, &'static str> {
    let Some(ct) = &d.secret_ciphertext else {
        return Ok(None);
    };
    let keyring: &Keyring = s
        .keyring
        .as_deref()
        .ok_or("no encryption key is configured, so the channel's secret cannot be read")?;
    keyring
        .decrypt_str(ct, &secret_aad(tenant_id, d.channel_id))
        .map(Some)
        .map_err(|_| "the channel's secret does not decrypt with the configured keys")
}

async fn attempt(
    s: &Services,
    config: &DeliveryConfig,
    tenant_id: Uuid,
    d: &DeliveryToSend,
) -> Outcome {
    let secret = match decrypt_secret(s, tenant_id, d) {
        Ok(secret) => secret,
        Err(e) => return Outcome::failed(e, true),
    };
    match d.channel_kind.as_str() {
        "webhook" => {
            let Some(key) = secret
                .as_ref()
                .and_then(|s| signature::secret_bytes(s.expose()))
            else {
                return Outcome::failed("the webhook has no valid signing secret", true);
            };
            let body = serde_json::to_vec(&d.payload).expect("a JSON value serializes");
            let id = d.id.to_string();
            let timestamp = chrono::Utc::now().timestamp();
            let headers = [
                ("webhook-id", id.clone()),
                ("webhook-timestamp", timestamp.to_string()),
                (
                    "webhook-signature",
                    signature::sign(&key, &id, timestamp, &body),
                ),
            ];
            post(config, &d.target, &headers, body).await
        }
        "slack" => {
            let Some(url) = secret else {
                return Outcome::failed("the Slack channel has no URL", true);
            };
            let body = serde_json::to_vec(&json!({ "text": text_of(d) })).expect("JSON");
            post(config, url.expose(), &[], body).await
        }
        "email" => {
            let Some(mailer) = &config.mailer else {
                return Outcome::failed("no mail transport is configured (ZIXLY_SMTP_URL)", true);
            };
            let text = text_of(d);
            let email = Email {
                to: d.target.clone(),
                subject: format!("[Zixly] {}", first_line(&text)),
                body: format!("{text}\n\nChannel: {}\n", d.channel_name),
            };
            match mailer.send(email).await {
                Ok(()) => Outcome {
                    sent: true,
                    status: None,
                    response: None,
                    error: None,
                    permanent: false,
                    retry_after: None,
                },
                Err(e) => Outcome::failed(format!("sending mail: {}", e.0), false),
            }
        }
        other => Outcome::failed(format!("unknown channel kind `{other}`"), true),
    }
}

/// The human text of a delivery: the payload's `message` (alerts and tests both carry one).
fn text_of(d: &DeliveryToSend) -> String {
    match d.payload.get("message").and_then(|m| m.as_str()) {
        Some(m) => m.to_string(),
        // A payload stored before messages were part of it.
        None => format!(
            "Alert “{}”: {}",
            d.payload
                .get("rule_name")
                .and_then(|r| r.as_str())
                .unwrap_or("?"),
            d.event_type
        ),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// One POST to a receiver, checked against the address rule after resolution and pinned to the
/// checked addresses.
async fn post(
    config: &DeliveryConfig,
    target: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Outcome {
    let url = match address::check_url(target, config.allow_private) {
        Ok(u) => u,
        Err(e) => return Outcome::failed(e, true),
    };
    let addrs = match address::resolve_checked(&url, config.allow_private).await {
        Ok(a) => a,
        Err(e @ address::AddressError::Unresolved) => return Outcome::failed(e, false),
        Err(e) => return Outcome::failed(e, true),
    };
    let host = url.host_str().unwrap_or_default().to_string();
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .resolve_to_addrs(&host, &addrs)
        .user_agent("Zixly-Webhooks/1")
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return Outcome::failed(
                format!("building the HTTP client: {}", e.without_url()),
                false,
            )
        }
    };
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            let kind = if e.is_timeout() {
                "timed out"
            } else {
                "failed"
            };
            return Outcome::failed(format!("the request {kind}: {}", error_chain(e)), false);
        }
    };
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(86_400)));
    let mut kept = Vec::new();
    // Read at most RESPONSE_LIMIT bytes: a receiver cannot make us hold a large answer.
    while kept.len() < RESPONSE_LIMIT {
        match resp.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let response = Some(truncate_utf8(&kept, RESPONSE_LIMIT)).filter(|s| !s.is_empty());
    let code = i32::from(status.as_u16());
    if status.is_success() {
        Outcome {
            sent: true,
            status: Some(code),
            response,
            error: None,
            permanent: false,
            retry_after: None,
        }
    } else {
        let what = if status.is_redirection() {
            "answered a redirect, which is not followed"
        } else {
            "answered an error"
        };
        Outcome {
            sent: false,
            status: Some(code),
            response,
            error: Some(format!("the receiver {what} ({code})")),
            permanent: false,
            retry_after: (code == 429 || code == 503)
                .then_some(retry_after)
                .flatten(),
        }
    }
}

/// reqwest's error and its causes, without the URL (a Slack URL is a secret).
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// At most `limit` bytes of `bytes` as text, cut at a character boundary (invalid UTF-8 replaced).
pub fn truncate_utf8(bytes: &[u8], limit: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(limit + 4)]);
    if text.len() <= limit {
        return text.into_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        let s = "é".repeat(600); // 1200 bytes
        let t = truncate_utf8(s.as_bytes(), 1024);
        assert_eq!(t.len(), 1024);
        assert!(t.chars().all(|c| c == 'é'));
        let s = format!("a{}", "é".repeat(600));
        let t = truncate_utf8(s.as_bytes(), 1024);
        assert_eq!(t.len(), 1023);
        assert_eq!(truncate_utf8(b"ok", 1024), "ok");
    }

    #[test]
    fn backoff_grows() {
        let waits: Vec<u64> = (1..=7).map(|a| default_backoff(a).as_secs()).collect();
        assert_eq!(waits, [5, 300, 1800, 7200, 18_000, 36_000, 36_000]);
    }

    fn event(kind: &str, client: Option<Uuid>, bucket: &str, start: &str) -> TransitionEvent {
        TransitionEvent {
            transition_id: Uuid::nil(),
            notify: true,
            from_state: Some("pending".into()),
            to_state: "firing".into(),
            occurred_at: chrono::Utc::now(),
            alert_id: Uuid::from_u128(7),
            rule_id: Uuid::nil(),
            rule_name: "r".into(),
            rule_kind: kind.into(),
            kpi: Some("revenue".into()),
            client_id: client,
            client_name: client.map(|_| "Acme".into()),
            bucket: bucket.into(),
            bucket_start: start.parse().unwrap(),
            value: None,
            threshold: None,
            expected_low: None,
            expected_high: None,
            detail: json!({}),
            base_currency: "AUD".into(),
            custom_metric: None,
        }
    }

    #[test]
    fn links_open_the_judged_bucket_on_the_clients_page_or_the_alert() {
        let c = Uuid::from_u128(3);
        let alert = format!("/alerts/{}", Uuid::from_u128(7));
        assert_eq!(
            link(&event("threshold", Some(c), "month", "2024-02-01")),
            format!("/clients/{c}?range=custom&from=2024-02-01&to=2024-02-29")
        );
        assert_eq!(
            link(&event("anomaly", Some(c), "week", "2026-11-30")),
            format!("/clients/{c}?range=custom&from=2026-11-30&to=2026-12-06")
        );
        assert_eq!(
            link(&event("change", Some(c), "day", "2026-12-03")),
            format!("/clients/{c}?range=custom&from=2026-12-03&to=2026-12-03")
        );
        assert_eq!(
            link(&event("threshold", None, "month", "2024-02-01")),
            alert
        );
        assert_eq!(link(&event("stale", Some(c), "day", "2026-12-03")), alert);
        assert_eq!(link(&event("goal", Some(c), "month", "2026-12-01")), alert);
        let mut custom = event("threshold", Some(c), "month", "2024-02-01");
        custom.custom_metric = Some(("Billable hours".into(), Some("h".into())));
        assert_eq!(link(&custom), alert);
    }

    #[test]
    fn event_types() {
        assert_eq!(event_type("firing"), "alert.firing");
        assert_eq!(event_type("resolved"), "alert.resolved");
        assert_eq!(event_type("ok"), "alert.resolved");
    }
}
