//! `BENCHMARKS.md` "Sync (connectors)": a full Xero sync of a large fake dataset, measured, not
//! asserted on time. Run:
//!
//! ```text
//! ZIXLY_BENCH_INVOICES=100000 cargo nextest run --release -p zixly_sync --run-ignored only \
//!     -E 'test(bench_)' --no-capture
//! ```

use std::time::Instant;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use serde_json::json;
use zixly_connectors::Provider;
use zixly_testkit::fakes::xero::{FakeXero, CLIENT_ID, CLIENT_SECRET};

use crate::sync::{config, connect};

const CONTACTS: usize = 1000;

#[tokio::test]
#[ignore = "benchmark: run explicitly (see the module docs)"]
async fn bench_xero_full_sync() {
    let invoices: usize = std::env::var("ZIXLY_BENCH_INVOICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let fake = FakeXero::start().await;
    let cfg = config(
        Provider::Xero,
        CLIENT_ID,
        CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.url,
    );
    {
        // Straight into the fake's store (its `upsert` is O(n) per document).
        let mut d = fake.data.lock().unwrap();
        let at = d.now;
        let ms = |t: chrono::DateTime<Utc>| format!("/Date({}+0000)/", t.timestamp_millis());
        let contacts: Vec<_> = (0..CONTACTS)
            .map(|c| {
                (
                    at,
                    json!({"ContactID": format!("c{c}"), "Name": format!("Client {c}"),
                            "ContactStatus": "ACTIVE", "UpdatedDateUTC": ms(at)}),
                )
            })
            .collect();
        d.records.insert("Contacts", contacts);
        let day0 = NaiveDate::from_ymd_opt(2023, 1, 1).unwrap();
        let docs: Vec<_> = (0..invoices)
            .map(|i| {
                // Every invoice its own client-day: one financials row each.
                let date = day0 + Duration::days((i / CONTACTS) as i64 % 365);
                let t = Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap());
                (
                    at,
                    json!({"InvoiceID": format!("i{i}"), "Type": "ACCREC", "Status": "AUTHORISED",
                            "Contact": {"ContactID": format!("c{}", i % CONTACTS)},
                            "Date": ms(t), "SubTotal": 100 + (i % 97), "UpdatedDateUTC": ms(at)}),
                )
            })
            .collect();
        d.records.insert("Invoices", docs);
    }
    let env = connect(cfg, json!({})).await;
    let calls0 = fake.oauth.api_calls();
    let t = Instant::now();
    let full = env
        .engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    let full_time = t.elapsed();
    let full_calls = fake.oauth.api_calls() - calls0;
    let calls1 = fake.oauth.api_calls();
    let t = Instant::now();
    let again = env
        .engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    let again_time = t.elapsed();
    let again_calls = fake.oauth.api_calls() - calls1;
    // Pages the provider's paging needs at least (pageSize 1000, pageCount known from the first
    // page): connections + organisation + contacts + invoices + payments and bank transactions
    // (one empty page each).
    let minimum = 1 + 1 + CONTACTS.div_ceil(1000) + invoices.div_ceil(1000) + 1 + 1;
    eprintln!(
        "BENCH xero full: {invoices} invoices -> {} financials rows in {:.2} s = {:.0} invoices/s; {full_calls} API calls (minimum {minimum})",
        full.inserted,
        full_time.as_secs_f64(),
        invoices as f64 / full_time.as_secs_f64(),
    );
    eprintln!(
        "BENCH xero no-change rerun: {} rows read, {} inserted, {} updated, {} unchanged in {:.2} s; {again_calls} API calls",
        again.rows_read,
        again.inserted,
        again.updated,
        again.unchanged,
        again_time.as_secs_f64(),
    );
    assert_eq!(full.inserted as usize, invoices, "one row per client-day");
    assert_eq!((again.inserted, again.updated), (0, 0));
}

/// `BENCHMARKS.md` "Paced, resumable first sync": a first Xero sync of a large organisation
/// against a fake that enforces Xero's per-organisation minute limit (60 calls), time-scaled:
/// the minute lasts `60 / ZIXLY_BENCH_TIME_SCALE` seconds, and the engine paces under the same
/// scaled limit. Reports calls made against the paging minimum, pages asked twice, 429s
/// answered and the pacer's waits. Run:
///
/// ```text
/// ZIXLY_BENCH_INVOICES=200000 ZIXLY_BENCH_TIME_SCALE=60 cargo nextest run --release -p zixly_sync \
///     --run-ignored only -E 'test(bench_xero_paced)' --no-capture
/// ```
#[tokio::test]
#[ignore = "benchmark: run explicitly (see the docs)"]
async fn bench_xero_paced_first_sync() {
    use zixly_connectors::pace::{Lane, RateLimit};
    use zixly_sync::engine::SyncConfig;
    let env_num = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let invoices = env_num("ZIXLY_BENCH_INVOICES", 200_000) as usize;
    let scale = env_num("ZIXLY_BENCH_TIME_SCALE", 60).max(1);
    let minute = std::time::Duration::from_secs(60) / scale as u32;
    let fake = FakeXero::start().await;
    let cfg = config(
        Provider::Xero,
        CLIENT_ID,
        CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.url,
    );
    {
        let mut d = fake.data.lock().unwrap();
        d.minute_limit = Some((60, minute));
        d.day_remaining = Some(5000);
        let at = d.now;
        let ms = |t: chrono::DateTime<Utc>| format!("/Date({}+0000)/", t.timestamp_millis());
        let contacts: Vec<_> = (0..CONTACTS)
            .map(|c| {
                (
                    at,
                    json!({"ContactID": format!("c{c}"), "Name": format!("Client {c}"),
                            "ContactStatus": "ACTIVE", "UpdatedDateUTC": ms(at)}),
                )
            })
            .collect();
        d.records.insert("Contacts", contacts);
        let day0 = NaiveDate::from_ymd_opt(2023, 1, 1).unwrap();
        // Created over the years, one a minute: every page ends in a second of its own.
        let docs: Vec<_> = (0..invoices)
            .map(|i| {
                let date = day0 + Duration::days((i / CONTACTS) as i64 % 365);
                let t = Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap());
                let stamp = at - Duration::minutes((invoices - i) as i64);
                (
                    stamp,
                    json!({"InvoiceID": format!("i{i}"), "Type": "ACCREC", "Status": "AUTHORISED",
                            "Contact": {"ContactID": format!("c{}", i % CONTACTS)},
                            "Date": ms(t), "SubTotal": 100 + (i % 97), "UpdatedDateUTC": ms(stamp)}),
                )
            })
            .collect();
        d.records.insert("Invoices", docs);
    }
    let sync_config = SyncConfig {
        max_jitter: std::time::Duration::ZERO,
        rate_limits: [(Provider::Xero, vec![RateLimit::new(60, minute)])].into(),
        ..SyncConfig::default()
    };
    let env = crate::sync::connect_with(cfg, json!({}), sync_config).await;
    zixly_testkit::fakes::record::clear_recorded(&fake.url);
    let t = Instant::now();
    // As the queue would: a 429 waits for Retry-After, and the next attempt resumes at the
    // checkpoint.
    let mut attempts = 0;
    let summary = loop {
        attempts += 1;
        match env.engine.run(env.tenant, env.integration, true).await {
            Ok(s) => break s,
            Err(zixly_sync::SyncError::Connector(
                zixly_connectors::ConnectorError::RateLimited { retry_after },
            )) => tokio::time::sleep(retry_after).await,
            Err(e) => panic!("{e}"),
        }
    };
    let elapsed = t.elapsed();
    let requests = zixly_testkit::fakes::record::recorded(&fake.url);
    let calls = requests.len();
    let rate_limited = fake.data.lock().unwrap().rate_limited;
    let pages: Vec<(String, String, String)> = requests
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| {
            (
                r.path.clone(),
                r.header("if-modified-since").unwrap_or("").into(),
                r.query_values("page").join(","),
            )
        })
        .collect();
    let twice = pages
        .iter()
        .enumerate()
        .filter(|(i, p)| pages[..*i].contains(p))
        .count();
    // Documents of every stream read (the run's checkpointed count, across attempts).
    let documents_read = summary.rows_read as usize;
    // connections + organisation + contacts + invoices + one (empty) page of each other stream.
    let minimum = 1 + 1 + CONTACTS.div_ceil(1000) + invoices.div_ceil(1000) + 3;
    let pacer = env
        .engine
        .pacer(env.integration, Provider::Xero, Lane::General)
        .stats();
    let rows: i64 = env
        .db
        .superuser()
        .await
        .query_one("select count(*) from financials", &[])
        .await
        .unwrap()
        .get(0);
    eprintln!(
        "BENCH xero paced first sync: {invoices} invoices -> {rows} rows in {:.2} s (minute = {:.2} s); \
         {attempts} attempt(s); {calls} API calls (minimum {minimum}); pages asked twice {twice}; \
         429s answered {rate_limited}; pacer waits {} ({:.2} s in all); documents read {documents_read} \
         (re-read at page boundaries {})",
        elapsed.as_secs_f64(),
        minute.as_secs_f64(),
        pacer.waits,
        pacer.waited.as_secs_f64(),
        documents_read.saturating_sub(invoices),
    );
    assert_eq!(rows as usize, invoices);
    assert_eq!(twice, 0);
}

/// `BENCHMARKS.md` "HubSpot paced, resumable sync": `ZIXLY_BENCH_DEALS` (50,000) deals created
/// since the last run of a portal that had none. The increment's one search finds that many
/// (more than `FULL_LIST_ABOVE`), a one-result search counts the live deals (progress), and the
/// deals are listed with history, 50 a page, each page committed with the run's checkpoint. The
/// fake refuses a search above the search limit and answers one 429 in the middle of the
/// listing (page `ZIXLY_BENCH_429_AT`, default 500; 0: none), which the next attempt resumes
/// from; both lanes are time-scaled by `ZIXLY_BENCH_SCALE` (10: 40 searches/s, 1,000
/// requests / 10 s). Run:
///
/// ```text
/// ZIXLY_BENCH_DEALS=50000 cargo nextest run -p zixly_sync --run-ignored only \
///     -E 'test(bench_hubspot)' --no-capture
/// ```
#[tokio::test]
#[ignore = "benchmark: run explicitly (see the module docs)"]
async fn bench_hubspot_paced_search() {
    use zixly_connectors::pace::{Lane, RateLimit};
    use zixly_sync::engine::SyncConfig;
    use zixly_testkit::fakes::hubspot::FakeHubspot;
    let env_num = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let deals = env_num("ZIXLY_BENCH_DEALS", 50_000);
    let scale = env_num("ZIXLY_BENCH_SCALE", 10).max(1) as u32;
    let refuse_at = env_num("ZIXLY_BENCH_429_AT", 500);
    let fake = FakeHubspot::start().await;
    let cfg = config(
        Provider::Hubspot,
        zixly_testkit::fakes::hubspot::CLIENT_ID,
        zixly_testkit::fakes::hubspot::CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.url,
    );
    let second = std::time::Duration::from_secs(1);
    let search_limit = 4 * scale;
    fake.data.lock().unwrap().pipelines = vec![json!({"id": "default", "label": "Sales",
        "displayOrder": 0, "archived": false, "createdAt": "2024-01-01T00:00:00.000Z",
        "updatedAt": "2024-01-01T00:00:00.000Z", "stages": [
            {"id": "s1", "label": "Qualified", "displayOrder": 0, "archived": false,
             "metadata": {"probability": "0.2", "isClosed": "false"},
             "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-01T00:00:00.000Z"}]})];
    fake.add(
        "companies",
        json!({"id": "co-1", "properties": {"name": "Acme"}, "archived": false}),
    );
    let sync_config = SyncConfig {
        max_jitter: std::time::Duration::ZERO,
        rate_limits: [(
            Provider::Hubspot,
            vec![RateLimit::new(100 * scale, 10 * second)],
        )]
        .into(),
        search_rate_limits: [(
            Provider::Hubspot,
            vec![RateLimit::new(search_limit, second)],
        )]
        .into(),
        ..SyncConfig::default()
    };
    let env = crate::sync::connect_with(cfg, json!({}), sync_config).await;
    // The first (empty) run sets the cursor; the deals are created after it.
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let start = Utc::now();
    let setup = Instant::now();
    {
        // Straight into the fake's store: `FakeHubspot::add` scans the list for the id (O(n)
        // per deal, 1.25 billion comparisons for 50,000 — what kept the last session's run from
        // finishing in its 170 s).
        let mut d = fake.data.lock().unwrap();
        let list = d.objects.entry("deals".into()).or_default();
        for i in 0..deals {
            let at = (start + Duration::milliseconds(i as i64))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            list.push(json!({"id": (1000 + i).to_string(), "archived": false,
                "properties": {"amount": "10", "dealstage": "s1", "pipeline": "default",
                    "hs_is_closed": "false", "hs_is_closed_won": "false", "hs_lastmodifieddate": at},
                "propertiesWithHistory": {"dealstage": [{"value": "s1", "timestamp": at, "sourceType": "CRM_UI"}]},
                "associations": {"companies": {"results": [{"id": "co-1", "type": "deal_to_company"}]}},
                "createdAt": at, "updatedAt": at}));
        }
        d.search_per_second = Some(search_limit as usize);
        // Count this run's requests only (the 429 below is the n-th of this run's).
        d.requests.clear();
        d.requests_by_entry.clear();
        if refuse_at > 0 {
            d.rate_limit_requests
                .push(("GET /crm/v3/objects/deals".into(), refuse_at, 1));
        }
    }
    let setup_time = setup.elapsed();
    zixly_testkit::fakes::record::clear_recorded(&fake.url);
    let t = Instant::now();
    let mut attempts = 0;
    let summary = loop {
        attempts += 1;
        match env.engine.run(env.tenant, env.integration, true).await {
            Ok(s) => break s,
            // As the queue would: wait for Retry-After, resume at the checkpoint.
            Err(zixly_sync::SyncError::Connector(
                zixly_connectors::ConnectorError::RateLimited { retry_after },
            )) => tokio::time::sleep(retry_after).await,
            Err(e) => panic!("{e}"),
        }
    };
    let elapsed = t.elapsed();
    let requests = zixly_testkit::fakes::record::recorded(&fake.url);
    // Deal pages and searches answered, and what each asked (reference data, re-read by each
    // attempt, left out).
    let pages: Vec<String> = requests
        .iter()
        .filter(|r| r.status == 200 && r.path.starts_with("/crm/v3/objects/deals"))
        .map(|r| format!("{} {} {:?} {:?}", r.method, r.path, r.query, r.json_body))
        .collect();
    let mut sorted = pages.clone();
    sorted.sort_unstable();
    let twice = sorted.windows(2).filter(|w| w[0] == w[1]).count();
    let (searches, rate_limited, max_per_second) = {
        let d = fake.data.lock().unwrap();
        let searches = d
            .requests
            .iter()
            .filter(|r| *r == "POST /crm/v3/objects/deals/search")
            .count();
        (searches, d.rate_limited, d.max_searches_per_second())
    };
    // Per attempt: account + pipelines + companies (1 page); once: the archived page, the
    // search, the count and the listing (pages of 50).
    let minimum = 3 + 1 + 2 + deals.div_ceil(50);
    let reference_again = 3 * (attempts - 1);
    let search_pacer = env
        .engine
        .pacer(env.integration, Provider::Hubspot, Lane::Search)
        .stats();
    let pacer = env
        .engine
        .pacer(env.integration, Provider::Hubspot, Lane::General)
        .stats();
    let rows: i64 = env
        .db
        .superuser()
        .await
        .query_one("select count(*) from lead_events", &[])
        .await
        .unwrap()
        .get(0);
    eprintln!(
        "BENCH hubspot paced resumable: {deals} deals -> {rows} lead events in {:.2} s (setup {:.2} s; \
         scale x{scale}: {search_limit} searches/s, {} requests/10 s); {attempts} attempt(s); {} API \
         calls (paging minimum {minimum} + {reference_again} reference re-reads by later attempts); \
         {searches} searches; max searches in one second {max_per_second}; pages asked twice \
         {twice}; 429s answered {rate_limited}; pacer waits general {} ({:.2} s), search {} \
         ({:.2} s); deals read {}; recorded requests dropped {}",
        elapsed.as_secs_f64(),
        setup_time.as_secs_f64(),
        100 * scale,
        requests.len(),
        pacer.waits,
        pacer.waited.as_secs_f64(),
        search_pacer.waits,
        search_pacer.waited.as_secs_f64(),
        summary.rows_read,
        zixly_testkit::fakes::record::dropped(&fake.url),
    );
    assert_eq!(rows as usize, deals);
    assert_eq!(twice, 0);
    assert!(max_per_second <= search_limit as usize);
}
