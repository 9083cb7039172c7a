//! Rule evaluation: the `alert_evaluate` job and its schedule.

use zixly_queue::Worker;

use crate::Services;

/// The job kind that evaluates a tenant's alert rules.
pub const EVALUATE_JOB: &str = "alert_evaluate";

pub(crate) fn register(_worker: &mut Worker, _services: &Services) {}
