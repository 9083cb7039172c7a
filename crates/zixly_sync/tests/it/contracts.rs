//! Contract tests: full and incremental syncs against the fakes with every request recorded,
//! then judged by `contracts/<provider>.json` (`zixly_testkit::contracts`). One module per
//! provider (`contract_hubspot`, ...); this one holds what they share.

use zixly_testkit::contracts::{self, assert_no_violations, check_requests, check_responses};
use zixly_testkit::fakes::{record, recorded, RecordedRequest};

/// Asserts that every request the fake at `base_url` answered, and every JSON answer it gave,
/// follows `provider`'s contract; returns the recorded requests for further assertions.
pub(crate) fn assert_conforms(provider: &str, base_url: &str) -> Vec<RecordedRequest> {
    let c = contracts::load(provider);
    let rec = recorded(base_url);
    assert_eq!(record::dropped(base_url), 0, "every request recorded");
    assert!(
        rec.iter().any(|r| r.response.is_some() && r.status == 200),
        "{provider}: no answers recorded"
    );
    assert_no_violations(&format!("{provider} requests"), &check_requests(&c, &rec));
    assert_no_violations(&format!("{provider} answers"), &check_responses(&c, &rec));
    rec
}
