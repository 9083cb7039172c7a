//! Business actions that more than one front end performs: each exists once, here, and the REST
//! handler and the page both call it. An action takes typed, already-parsed input (an
//! [`zixly_domain::EmailAddress`], a [`zixly_domain::Role`]) and the caller's
//! [`crate::auth::Auth`] capability; it opens the tenant transaction, applies the business rules
//! (e.g. "the tenant keeps an active ADMIN"), writes the audit row in the same transaction and
//! answers with rows or an [`crate::error::ApiError`]. What differs between the front ends stays
//! with them: parsing JSON or a form, and shaping the answer as JSON or as a page.
//!
//! - [`account`]: the caller's own password and personal API tokens.
//! - [`alerts`]: alert rules (create, change, snooze, delete) and their alerts with history.
//! - [`clients`]: create, change (rename), delete a client.
//! - [`goals`]: list goals with their progress, create, change, archive, per-period targets, budget CSV import.
//! - [`metrics`]: list the metric catalogue, change a custom metric's definition.
//! - [`notifications`]: notification channels (add, change, delete, send test) and the caller's
//!   in-app notifications (list, mark read).
//! - [`settings`]: workspace settings (raw-data retention).
//! - [`users`]: invite, change a user's role or name, deactivate, reactivate.
//!
//! (The CSV import action, older, lives in `crate::imports` and follows the same rule.)

pub(crate) mod account;
pub(crate) mod alerts;
pub(crate) mod clients;
pub(crate) mod goals;
pub(crate) mod metrics;
pub(crate) mod notifications;
pub(crate) mod settings;
pub(crate) mod users;
