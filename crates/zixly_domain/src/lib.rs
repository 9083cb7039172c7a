//! `zixly_domain` — the vocabulary of Zixly: roles, email addresses, currencies, money and validated input rows.
//!
//! Architecture invariant: no IO. Nothing here opens a file, a socket or a database; parsers take
//! strings or `std::io::Read` implementations handed to them. Types have private fields and
//! `parse()` constructors ("parse, don't validate"), so a value of a domain type is always valid.

pub mod alerts;
pub mod currency;
pub mod display;
pub mod email;
pub mod figures;
pub mod fx;
pub mod goals;
pub mod ingest;
pub mod metrics;
pub mod password;
pub mod period;
pub mod role;

pub use currency::CurrencyCode;
pub use email::{EmailAddress, EmailError};
pub use role::Role;

/// IANA time zones (tenants read naive timestamps in theirs).
pub mod timezone {
    pub use chrono_tz::Tz;
}
