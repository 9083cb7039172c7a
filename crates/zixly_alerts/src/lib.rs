//! Alerts and notifications as background jobs (issue 13).
//!
//! * [`evaluate`]: the `alert_evaluate` job — enqueued after every load that touches a tenant's
//!   data and on a schedule — evaluates the tenant's enabled rules and records each change of an
//!   alert's state in `alert_transitions`; a change to be notified enqueues an `alert_notify` job
//!   (args `{"transition_id"}`, unique key the transition id) in the same transaction.
//! * [`deliver`]: the `alert_notify` job turns a transition into in-app notifications and one
//!   `notification_deliveries` row per channel of the rule, each delivered by a
//!   `notification_deliver` job (retries with backoff, one `notification_dispatch_log` row per
//!   attempt).
//!
//! The two halves meet only through those tables and job kinds, so evaluation never waits on a
//! receiver and a receiver's outage never loses an alert.

pub mod deliver;
pub mod evaluate;
pub mod mail;

use std::sync::Arc;

use zixly_crypto::Keyring;
use zixly_db::{AppDb, SystemDb};
use zixly_queue::Worker;

/// What the alert and notification jobs need from the process that runs them.
#[derive(Clone)]
pub struct Services {
    pub app: AppDb,
    pub system: SystemDb,
    /// Channel secrets are encrypted with the token keyring; without one (an external database
    /// and no `ZIXLY_ENCRYPTION_KEY`) channels that hold a secret cannot deliver.
    pub keyring: Option<Arc<Keyring>>,
}

/// Registers every alert and notification job handler (and their schedules) on `worker`.
pub fn register(worker: &mut Worker, services: &Services) {
    evaluate::register(worker, services);
    deliver::register(worker, services);
}
