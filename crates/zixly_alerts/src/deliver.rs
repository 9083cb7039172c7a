//! Notification delivery: the `alert_notify` and `notification_deliver` jobs.

use zixly_queue::Worker;

use crate::Services;

/// The job kind that turns a notified `alert_transitions` row into notifications and deliveries.
pub const NOTIFY_JOB: &str = "alert_notify";
/// The job kind that delivers one `notification_deliveries` row to its channel.
pub const DELIVER_JOB: &str = "notification_deliver";

pub(crate) fn register(_worker: &mut Worker, _services: &Services) {}
