//! Prometheus metrics, written by hand (the text exposition format is small; a metrics crate
//! would cost more build time than these hundred lines).
//!
//! - `zixly_http_requests_total{method,route,status}` — counter.
//! - `zixly_http_request_duration_seconds{method,route,status}` — histogram.
//! - `zixly_db_pool_connections{state="open"|"idle"|"in_use"}`, `zixly_db_pool_max_connections`.
//! - `zixly_password_verifications_total` — counter of argon2 verifications by login.
//!
//! `route` is the matched route template (`/api/v1/users/{id}`), or `unmatched`, so the label set
//! stays bounded whatever paths clients send.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    method: String,
    route: String,
    status: u16,
}

#[derive(Default)]
struct Series {
    count: AtomicU64,
    sum_nanos: AtomicU64,
    /// Non-cumulative counts per bucket (index BUCKETS.len() = above the last bound).
    buckets: [AtomicU64; BUCKETS.len() + 1],
}

#[derive(Default)]
pub struct Metrics {
    series: RwLock<HashMap<Key, Arc<Series>>>,
    /// Password hashes verified by login (argon2 work; also the seam the tests count login's
    /// constant work by).
    password_verifications: AtomicU64,
}

impl Metrics {
    pub fn count_password_verifications(&self, n: usize) {
        self.password_verifications
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn password_verifications(&self) -> u64 {
        self.password_verifications.load(Ordering::Relaxed)
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let key = Key {
            method: method.to_string(),
            route: route.to_string(),
            status,
        };
        let series = {
            let read = self.series.read().unwrap_or_else(|e| e.into_inner());
            read.get(&key).cloned()
        };
        let series = match series {
            Some(s) => s,
            None => self
                .series
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key)
                .or_default()
                .clone(),
        };
        let secs = elapsed.as_secs_f64();
        let idx = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        series.buckets[idx].fetch_add(1, Ordering::Relaxed);
        series.count.fetch_add(1, Ordering::Relaxed);
        series.sum_nanos.fetch_add(
            elapsed.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// The exposition text. `pool` is `(open, idle, max)` from `AppDb::pool_status()`.
    pub fn render(&self, pool: (usize, usize, usize)) -> String {
        let mut out = String::with_capacity(4096);
        let series: Vec<(Key, Arc<Series>)> = {
            let read = self.series.read().unwrap_or_else(|e| e.into_inner());
            let mut v: Vec<_> = read.iter().map(|(k, s)| (k.clone(), s.clone())).collect();
            v.sort_by(|a, b| {
                (&a.0.route, &a.0.method, a.0.status).cmp(&(&b.0.route, &b.0.method, b.0.status))
            });
            v
        };
        out.push_str(
            "# HELP zixly_http_requests_total HTTP requests by method, matched route and status.\n",
        );
        out.push_str("# TYPE zixly_http_requests_total counter\n");
        for (k, s) in &series {
            let _ = writeln!(
                out,
                "zixly_http_requests_total{{{}}} {}",
                labels(k),
                s.count.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP zixly_http_request_duration_seconds HTTP request latency by method, matched route and status.\n");
        out.push_str("# TYPE zixly_http_request_duration_seconds histogram\n");
        for (k, s) in &series {
            let l = labels(k);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += s.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "zixly_http_request_duration_seconds_bucket{{{l},le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += s.buckets[BUCKETS.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "zixly_http_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {cumulative}"
            );
            let sum = s.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "zixly_http_request_duration_seconds_sum{{{l}}} {sum}");
            let _ = writeln!(
                out,
                "zixly_http_request_duration_seconds_count{{{l}}} {cumulative}"
            );
        }
        let (open, idle, max) = pool;
        out.push_str(
            "# HELP zixly_db_pool_connections Connections of the application pool by state.\n",
        );
        out.push_str("# TYPE zixly_db_pool_connections gauge\n");
        let _ = writeln!(out, "zixly_db_pool_connections{{state=\"open\"}} {open}");
        let _ = writeln!(out, "zixly_db_pool_connections{{state=\"idle\"}} {idle}");
        let _ = writeln!(
            out,
            "zixly_db_pool_connections{{state=\"in_use\"}} {}",
            open.saturating_sub(idle)
        );
        out.push_str(
            "# HELP zixly_db_pool_max_connections Maximum size of the application pool.\n",
        );
        out.push_str("# TYPE zixly_db_pool_max_connections gauge\n");
        let _ = writeln!(out, "zixly_db_pool_max_connections {max}");
        out.push_str(
            "# HELP zixly_password_verifications_total Password hashes verified by login.\n",
        );
        out.push_str("# TYPE zixly_password_verifications_total counter\n");
        let _ = writeln!(
            out,
            "zixly_password_verifications_total {}",
            self.password_verifications()
        );
        out
    }
}

fn labels(k: &Key) -> String {
    format!(
        "method=\"{}\",route=\"{}\",status=\"{}\"",
        escape(&k.method),
        escape(&k.route),
        k.status
    )
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_matches() {
        let m = Metrics::default();
        m.observe("GET", "/api/v1/me", 200, Duration::from_micros(300));
        m.observe("GET", "/api/v1/me", 200, Duration::from_millis(3));
        m.observe("GET", "/api/v1/me", 200, Duration::from_secs(20));
        m.observe("POST", "/a\"b", 500, Duration::from_millis(1));
        let text = m.render((3, 1, 16));
        let me = "method=\"GET\",route=\"/api/v1/me\",status=\"200\"";
        assert!(text.contains(&format!("zixly_http_requests_total{{{me}}} 3\n")));
        assert!(text.contains(&format!(
            "zixly_http_request_duration_seconds_bucket{{{me},le=\"0.0005\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "zixly_http_request_duration_seconds_bucket{{{me},le=\"0.005\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "zixly_http_request_duration_seconds_bucket{{{me},le=\"10\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "zixly_http_request_duration_seconds_bucket{{{me},le=\"+Inf\"}} 3\n"
        )));
        assert!(text.contains(&format!(
            "zixly_http_request_duration_seconds_count{{{me}}} 3\n"
        )));
        assert!(text.contains("route=\"/a\\\"b\""));
        assert!(text.contains("zixly_db_pool_connections{state=\"in_use\"} 2\n"));
    }
}
