//! Times on pages are shown in the tenant's time zone (its `time_zone`, an IANA name), with the
//! zone's abbreviation so nobody has to guess: `3 Dec 2026 14:05 AEDT`. A stored zone that no
//! longer parses falls back to UTC, labelled as such.

use chrono::{DateTime, Utc};
use zixly_domain::timezone::Tz;

/// `t` as a date and time in `time_zone`.
pub fn local(t: DateTime<Utc>, time_zone: &str) -> String {
    match time_zone.parse::<Tz>() {
        Ok(tz) => t
            .with_timezone(&tz)
            .format("%-d %b %Y %H:%M %Z")
            .to_string(),
        Err(_) => t.format("%-d %b %Y %H:%M UTC").to_string(),
    }
}

/// `t` as a date in `time_zone` (`3 Dec 2026`).
pub fn local_date(t: DateTime<Utc>, time_zone: &str) -> String {
    match time_zone.parse::<Tz>() {
        Ok(tz) => t.with_timezone(&tz).format("%-d %b %Y").to_string(),
        Err(_) => t.format("%-d %b %Y").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_the_tenants_zone_with_its_abbreviation() {
        let t: DateTime<Utc> = "2026-12-02T23:30:00Z".parse().unwrap();
        // Sydney is UTC+11 in December: already the 3rd there.
        assert_eq!(local(t, "Australia/Sydney"), "3 Dec 2026 10:30 AEDT");
        assert_eq!(local_date(t, "Australia/Sydney"), "3 Dec 2026");
        assert_eq!(local(t, "Europe/London"), "2 Dec 2026 23:30 GMT");
        assert_eq!(local(t, "Not/AZone"), "2 Dec 2026 23:30 UTC");
    }
}
