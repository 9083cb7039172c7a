//! Notification channels (`notification_providers`), in-app notifications, the delivery outbox
//! (`notification_deliveries`) and the per-attempt dispatch log (migration 0013).
//!
//! Channel secrets (a webhook's signing secret, a Slack incoming-webhook URL) cross this layer only
//! as `zixly_crypto` ciphertexts, like integration tokens: this crate never sees a plaintext
//! secret, and no listing returns the ciphertext.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::{Ctx, DbResult};
use crate::TenantTx;

/// A channel as listed (never its secret).
#[derive(Debug, Clone)]
pub struct Channel {
    pub id: Uuid,
    /// `webhook`, `slack` or `email`.
    pub kind: String,
    pub name: String,
    /// The e-mail address, the webhook URL, or (Slack) only the URL's host.
    pub target: String,
    pub has_secret: bool,
    pub is_active: bool,
    pub verified_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

const CHANNEL_COLUMNS: &str = "id, kind, name, target, secret_ciphertext is not null, is_active, \
                               verified_at, last_error, created_at";

fn channel_from_row(r: &Row) -> Channel {
    Channel {
        id: r.get(0),
        kind: r.get(1),
        name: r.get(2),
        target: r.get(3),
        has_secret: r.get(4),
        is_active: r.get(5),
        verified_at: r.get(6),
        last_error: r.get(7),
        created_at: r.get(8),
    }
}

/// A channel to create. The id is chosen by the caller because the secret's ciphertext is bound
/// to it (associated data), so it must be known before the row exists.
pub struct NewChannel<'a> {
    pub id: Uuid,
    pub kind: &'a str,
    pub name: &'a str,
    pub target: &'a str,
    pub secret_ciphertext: Option<Vec<u8>>,
    pub created_by: Option<Uuid>,
}

/// An in-app notification.
#[derive(Debug, Clone)]
pub struct Notification {
    pub id: Uuid,
    pub kind: String,
    pub message: String,
    pub link: Option<String>,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// What an `alert_transitions` row says, with its alert and rule: the material of a message.
#[derive(Debug, Clone)]
pub struct TransitionEvent {
    pub transition_id: Uuid,
    pub notify: bool,
    pub from_state: Option<String>,
    pub to_state: String,
    pub occurred_at: DateTime<Utc>,
    pub alert_id: Uuid,
    pub rule_id: Uuid,
    pub rule_name: String,
    pub rule_kind: String,
    pub kpi: Option<String>,
    pub client_id: Option<Uuid>,
    pub client_name: Option<String>,
    pub bucket: String,
    pub bucket_start: NaiveDate,
    pub value: Option<Decimal>,
    pub threshold: Option<Decimal>,
    pub expected_low: Option<Decimal>,
    pub expected_high: Option<Decimal>,
    pub detail: serde_json::Value,
    /// The tenant's base currency, in which amounts are written.
    pub base_currency: String,
    /// The rule's custom metric, when its KPI is one: display name and unit.
    pub custom_metric: Option<(String, Option<String>)>,
}

/// One delivery with what sending it needs.
pub struct DeliveryToSend {
    pub id: Uuid,
    pub channel_id: Uuid,
    pub channel_kind: String,
    pub channel_name: String,
    pub target: String,
    pub secret_ciphertext: Option<Vec<u8>>,
    pub channel_active: bool,
    pub event_type: String,
    pub payload: serde_json::Value,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
}

impl std::fmt::Debug for DeliveryToSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryToSend")
            .field("id", &self.id)
            .field("channel_id", &self.channel_id)
            .field("channel_kind", &self.channel_kind)
            .field("event_type", &self.event_type)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// One attempt to record.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    pub attempt: i32,
    pub sent: bool,
    pub duration_ms: i32,
    pub response_status: Option<i32>,
    /// At most 1 KiB (the column's CHECK).
    pub response: Option<&'a str>,
    pub error: Option<&'a str>,
    /// The delivery's state after this attempt: `pending` (will retry), `delivered`, `failed`.
    pub state_after: &'a str,
}

/// A row of the dispatch log.
#[derive(Debug, Clone)]
pub struct DispatchLogRow {
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub channel_id: Uuid,
    pub channel: String,
    pub kind: String,
    pub status: String,
    pub attempt: i32,
    pub duration_ms: i32,
    pub response_status: Option<i32>,
    pub response: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl TenantTx {
    pub async fn create_channel(&self, c: &NewChannel<'_>) -> DbResult<Channel> {
        let row = self
            .client()
            .query_one(
                &format!(
                    "insert into notification_providers
                        (tenant_id, id, kind, name, target, secret_ciphertext, created_by)
                     values ($1, $2, $3, $4, $5, $6, $7) returning {CHANNEL_COLUMNS}"
                ),
                &[
                    &self.tenant_id(),
                    &c.id,
                    &c.kind,
                    &c.name,
                    &c.target,
                    &c.secret_ciphertext,
                    &c.created_by,
                ],
            )
            .await
            .ctx("creating a notification channel")?;
        Ok(channel_from_row(&row))
    }

    pub async fn list_channels(&self) -> DbResult<Vec<Channel>> {
        let rows = self
            .client()
            .query(
                &format!(
                    "select {CHANNEL_COLUMNS} from notification_providers
                      where tenant_id = $1 order by name"
                ),
                &[&self.tenant_id()],
            )
            .await
            .ctx("listing notification channels")?;
        Ok(rows.iter().map(channel_from_row).collect())
    }

    pub async fn channel(&self, id: Uuid) -> DbResult<Option<Channel>> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "select {CHANNEL_COLUMNS} from notification_providers
                      where tenant_id = $1 and id = $2"
                ),
                &[&self.tenant_id(), &id],
            )
            .await
            .ctx("reading a notification channel")?;
        Ok(row.as_ref().map(channel_from_row))
    }

    /// Renames and/or (de)activates a channel; `None` when it does not exist (or is another
    /// tenant's).
    pub async fn update_channel(
        &self,
        id: Uuid,
        name: Option<&str>,
        active: Option<bool>,
    ) -> DbResult<Option<Channel>> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "update notification_providers
                        set name = coalesce($3, name), is_active = coalesce($4, is_active)
                      where tenant_id = $1 and id = $2 returning {CHANNEL_COLUMNS}"
                ),
                &[&self.tenant_id(), &id, &name, &active],
            )
            .await
            .ctx("updating a notification channel")?;
        Ok(row.as_ref().map(channel_from_row))
    }

    /// Deletes a channel (its deliveries and log rows go with it); `None` when absent.
    pub async fn delete_channel(&self, id: Uuid) -> DbResult<Option<Channel>> {
        let row = self
            .client()
            .query_opt(
                &format!(
                    "delete from notification_providers where tenant_id = $1 and id = $2
                     returning {CHANNEL_COLUMNS}"
                ),
                &[&self.tenant_id(), &id],
            )
            .await
            .ctx("deleting a notification channel")?;
        Ok(row.as_ref().map(channel_from_row))
    }

    /// The transition with its alert and rule; `None` when absent.
    pub async fn transition_event(&self, transition_id: Uuid) -> DbResult<Option<TransitionEvent>> {
        let row = self
            .client()
            .query_opt(
                "select t.id, t.notify, t.from_state, t.to_state, t.occurred_at,
                        a.id, r.id, r.name, r.kind, r.kpi, a.client_id, c.client_name, r.bucket,
                        a.bucket_start, coalesce(t.value, a.value), a.threshold,
                        a.expected_low, a.expected_high, a.detail, tn.base_currency::text,
                        m.display_name, m.unit
                   from alert_transitions t
                   join alerts a on a.tenant_id = t.tenant_id and a.id = t.alert_id
                   join alert_rules r on r.tenant_id = a.tenant_id and r.id = a.rule_id
                   join tenants tn on tn.id = t.tenant_id
                   left join client_kpis c on c.tenant_id = a.tenant_id and c.id = a.client_id
                   left join metric_definitions m on m.tenant_id = r.tenant_id and m.name = r.kpi
                  where t.tenant_id = $1 and t.id = $2",
                &[&self.tenant_id(), &transition_id],
            )
            .await
            .ctx("reading an alert transition")?;
        Ok(row.map(|r| TransitionEvent {
            transition_id: r.get(0),
            notify: r.get(1),
            from_state: r.get(2),
            to_state: r.get(3),
            occurred_at: r.get(4),
            alert_id: r.get(5),
            rule_id: r.get(6),
            rule_name: r.get(7),
            rule_kind: r.get(8),
            kpi: r.get(9),
            client_id: r.get(10),
            client_name: r.get(11),
            bucket: r.get(12),
            bucket_start: r.get(13),
            value: r.get(14),
            threshold: r.get(15),
            expected_low: r.get(16),
            expected_high: r.get(17),
            detail: r.get(18),
            base_currency: r.get(19),
            custom_metric: r.get::<_, Option<String>>(20).map(|name| (name, r.get(21))),
        }))
    }

    /// Records what a notified transition produces, idempotently: one in-app notification per
    /// active user of the tenant and one delivery per active channel of the rule. Running it
    /// again for the same transition inserts nothing. Returns the deliveries still `pending`
    /// (new ones, and ones a previous run created whose jobs must exist), to be enqueued in this
    /// transaction.
    pub async fn record_alert_notifications(
        &self,
        event: &TransitionEvent,
        event_type: &str,
        message: &str,
        link: &str,
        payload: &serde_json::Value,
    ) -> DbResult<Vec<Uuid>> {
        let c = self.client();
        // Two runs of the same job can overlap only after a rescue; the lock makes the second
        // wait and then see the first one's rows instead of inserting its own notifications.
        c.execute(
            "select pg_advisory_xact_lock(hashtextextended('alert_notify:' || $1::uuid::text, 0))",
            &[&event.transition_id],
        )
        .await
        .ctx("locking an alert transition")?;
        c.execute(
            "insert into notifications (tenant_id, id, user_id, type, message, link, ref_type, ref_id)
             select $1, zixly_uuid_v7(), u.id, $3, $4, $5, 'alert_transition', $2
               from users u
              where u.tenant_id = $1 and u.deactivated_at is null
                and not exists (select 1 from notifications n
                                 where n.tenant_id = $1 and n.user_id = u.id
                                   and n.ref_type = 'alert_transition' and n.ref_id = $2)",
            &[&self.tenant_id(), &event.transition_id, &event_type, &message, &link],
        )
        .await
        .ctx("creating in-app notifications")?;
        c.execute(
            "insert into notification_deliveries
                 (tenant_id, id, channel_id, transition_id, event_type, payload)
             select $1, zixly_uuid_v7(), p.id, $2, $4, $5
               from alert_rule_channels rc
               join notification_providers p on p.tenant_id = rc.tenant_id and p.id = rc.channel_id
              where rc.tenant_id = $1 and rc.rule_id = $3 and p.is_active
             on conflict (tenant_id, transition_id, channel_id) do nothing",
            &[
                &self.tenant_id(),
                &event.transition_id,
                &event.rule_id,
                &event_type,
                payload,
            ],
        )
        .await
        .ctx("creating notification deliveries")?;
        let rows = c
            .query(
                "select id from notification_deliveries
                  where tenant_id = $1 and transition_id = $2 and state = 'pending' order by id",
                &[&self.tenant_id(), &event.transition_id],
            )
            .await
            .ctx("listing pending deliveries")?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// A "send test" delivery of a channel (no transition), `pending`.
    pub async fn create_test_delivery(
        &self,
        channel_id: Uuid,
        event_type: &str,
        payload: &serde_json::Value,
    ) -> DbResult<Uuid> {
        let row = self
            .client()
            .query_one(
                "insert into notification_deliveries (tenant_id, id, channel_id, event_type, payload)
                 values ($1, $2, $3, $4, $5) returning id",
                &[&self.tenant_id(), &Uuid::now_v7(), &channel_id, &event_type, payload],
            )
            .await
            .ctx("creating a test delivery")?;
        Ok(row.get(0))
    }

    /// The delivery and its channel; `None` when either is gone (a deleted channel takes its
    /// deliveries with it).
    pub async fn delivery_to_send(&self, id: Uuid) -> DbResult<Option<DeliveryToSend>> {
        let row = self
            .client()
            .query_opt(
                "select d.id, p.id, p.kind, p.name, p.target, p.secret_ciphertext, p.is_active,
                        d.event_type, d.payload, d.state
                   from notification_deliveries d
                   join notification_providers p on p.tenant_id = d.tenant_id and p.id = d.channel_id
                  where d.tenant_id = $1 and d.id = $2",
                &[&self.tenant_id(), &id],
            )
            .await
            .ctx("reading a notification delivery")?;
        Ok(row.map(|r| DeliveryToSend {
            id: r.get(0),
            channel_id: r.get(1),
            channel_kind: r.get(2),
            channel_name: r.get(3),
            target: r.get(4),
            secret_ciphertext: r.get(5),
            channel_active: r.get(6),
            event_type: r.get(7),
            payload: r.get(8),
            state: r.get(9),
        }))
    }

    /// Appends one dispatch-log row and moves the delivery (attempts, state) and its channel
    /// (`verified_at` on success, `last_error`) along, in this transaction.
    pub async fn record_delivery_attempt(
        &self,
        delivery: &DeliveryToSend,
        a: &Attempt<'_>,
    ) -> DbResult<()> {
        let c = self.client();
        let status = if a.sent { "sent" } else { "failed" };
        c.execute(
            "insert into notification_dispatch_log
                 (tenant_id, id, delivery_id, channel_id, channel, type, status, attempt,
                  duration_ms, response_status, provider_response, error)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                &self.tenant_id(),
                &Uuid::now_v7(),
                &delivery.id,
                &delivery.channel_id,
                &delivery.channel_kind,
                &delivery.event_type,
                &status,
                &a.attempt,
                &a.duration_ms,
                &a.response_status,
                &a.response,
                &a.error,
            ],
        )
        .await
        .ctx("appending to the dispatch log")?;
        c.execute(
            "update notification_deliveries
                set attempts = greatest(attempts, $3), state = $4,
                    delivered_at = case when $4 = 'delivered' then now() else delivered_at end
              where tenant_id = $1 and id = $2",
            &[&self.tenant_id(), &delivery.id, &a.attempt, &a.state_after],
        )
        .await
        .ctx("updating a notification delivery")?;
        c.execute(
            "update notification_providers
                set verified_at = case when $3 then now() else verified_at end,
                    last_error = case when $3 then null else $4 end
              where tenant_id = $1 and id = $2",
            &[&self.tenant_id(), &delivery.channel_id, &a.sent, &a.error],
        )
        .await
        .ctx("updating a channel's last result")?;
        Ok(())
    }

    /// The newest dispatch-log rows (of one channel, or all), newest first.
    pub async fn dispatch_log(
        &self,
        channel_id: Option<Uuid>,
        limit: i64,
    ) -> DbResult<Vec<DispatchLogRow>> {
        let rows = self
            .client()
            .query(
                "select id, delivery_id, channel_id, channel, type, status, attempt, duration_ms,
                        response_status, provider_response, error, created_at
                   from notification_dispatch_log
                  where tenant_id = $1 and ($2::uuid is null or channel_id = $2)
                  order by created_at desc, id desc limit $3",
                &[&self.tenant_id(), &channel_id, &limit],
            )
            .await
            .ctx("reading the dispatch log")?;
        Ok(rows
            .iter()
            .map(|r| DispatchLogRow {
                id: r.get(0),
                delivery_id: r.get(1),
                channel_id: r.get(2),
                channel: r.get(3),
                kind: r.get(4),
                status: r.get(5),
                attempt: r.get(6),
                duration_ms: r.get(7),
                response_status: r.get(8),
                response: r.get(9),
                error: r.get(10),
                created_at: r.get(11),
            })
            .collect())
    }

    /// A user's notifications, newest first (keyset on the UUIDv7 id).
    pub async fn list_notifications(
        &self,
        user_id: Uuid,
        before: Option<Uuid>,
        limit: i64,
    ) -> DbResult<Vec<Notification>> {
        let rows = self
            .client()
            .query(
                "select id, type, message, link, read_at, created_at from notifications
                  where tenant_id = $1 and user_id = $2 and ($3::uuid is null or id < $3)
                  order by id desc limit $4",
                &[&self.tenant_id(), &user_id, &before, &limit],
            )
            .await
            .ctx("listing notifications")?;
        Ok(rows
            .iter()
            .map(|r| Notification {
                id: r.get(0),
                kind: r.get(1),
                message: r.get(2),
                link: r.get(3),
                read_at: r.get(4),
                created_at: r.get(5),
            })
            .collect())
    }

    pub async fn unread_notifications(&self, user_id: Uuid) -> DbResult<i64> {
        let row = self
            .client()
            .query_one(
                "select count(*) from notifications
                  where tenant_id = $1 and user_id = $2 and read_at is null",
                &[&self.tenant_id(), &user_id],
            )
            .await
            .ctx("counting unread notifications")?;
        Ok(row.get(0))
    }

    /// Marks one of the user's notifications read; `false` when it is not theirs (or absent).
    pub async fn mark_notification_read(&self, user_id: Uuid, id: Uuid) -> DbResult<bool> {
        let n = self
            .client()
            .execute(
                "update notifications set read_at = coalesce(read_at, now())
                  where tenant_id = $1 and user_id = $2 and id = $3",
                &[&self.tenant_id(), &user_id, &id],
            )
            .await
            .ctx("marking a notification read")?;
        Ok(n == 1)
    }

    /// Marks all the user's unread notifications read; returns how many.
    pub async fn mark_all_notifications_read(&self, user_id: Uuid) -> DbResult<u64> {
        self.client()
            .execute(
                "update notifications set read_at = now()
                  where tenant_id = $1 and user_id = $2 and read_at is null",
                &[&self.tenant_id(), &user_id],
            )
            .await
            .ctx("marking notifications read")
    }
}

/// A stored channel secret, for `zixly keys rotate`.
pub struct StoredChannelSecret {
    pub tenant_id: Uuid,
    pub channel_id: Uuid,
    pub ciphertext: Vec<u8>,
}

impl crate::SystemDb {
    /// **Cross-tenant.** Every channel secret's ciphertext (for `zixly keys rotate`).
    pub async fn channel_secrets(&self) -> DbResult<Vec<StoredChannelSecret>> {
        let client = self.pool().get().await?;
        let rows = client
            .query(
                "select /* cross-tenant */ tenant_id, id, secret_ciphertext from notification_providers
                  where secret_ciphertext is not null",
                &[],
            )
            .await
            .ctx("reading channel secrets")?;
        Ok(rows
            .iter()
            .map(|r| StoredChannelSecret {
                tenant_id: r.get(0),
                channel_id: r.get(1),
                ciphertext: r.get(2),
            })
            .collect())
    }

    /// **Cross-tenant.** Replaces a channel's ciphertext if it is still the one read (a channel
    /// deleted or re-created meanwhile is left alone).
    pub async fn replace_channel_secret(
        &self,
        secret: &StoredChannelSecret,
        new: &[u8],
    ) -> DbResult<bool> {
        let client = self.pool().get().await?;
        let n = client
            .execute(
                "update notification_providers set secret_ciphertext = $3
                  where tenant_id = $1 and id = $2 and secret_ciphertext = $4",
                &[
                    &secret.tenant_id,
                    &secret.channel_id,
                    &new,
                    &secret.ciphertext,
                ],
            )
            .await
            .ctx("re-encrypting a channel secret")?;
        Ok(n == 1)
    }
}
