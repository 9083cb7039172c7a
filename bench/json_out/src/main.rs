//! The hand-written JSON of series pages (`zixly_web::api::json_out`, the real file) against the
//! derived `Serialize` (what `axum::Json` sends) and against the derived `Serialize` with a fast
//! decimal `serialize_with`, on the API benchmark's two hot pages: 90 financial rows (`range_90d`)
//! and 156 metric values (`metric`, weekly over 3 years). All three answers are checked byte-equal
//! first. Then ROUNDS rounds, each timing every writer for SLICE of thread CPU time, in an order
//! that rotates per round (so the host's drift hits all writers alike); per writer: the median and
//! the range over rounds of CPU ns per page, response building included.

use std::time::Duration;

use axum::response::IntoResponse;
use chrono::{Days, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

mod api {
    #[path = "../../../../crates/zixly_web/src/api/json_out.rs"]
    pub(crate) mod json_out;
    #[path = "../../../../crates/zixly_web/src/api/json_time.rs"]
    pub(crate) mod json_time;
    pub mod series;

    #[derive(Debug, serde::Serialize)]
    pub struct Page<T> {
        pub data: Vec<T>,
        pub next_cursor: Option<String>,
    }
}

use api::series::{FinancialView, FinancialViewFast, MetricView, MetricViewFast};
use api::Page;

const ROUNDS: usize = 15;
const SLICE: Duration = Duration::from_millis(150);

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec on the stack.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

async fn body(r: axum::response::Response) -> Vec<u8> {
    use http_body_util::BodyExt;
    r.into_body().collect().await.unwrap().to_bytes().to_vec()
}

/// CPU ns per call of `f` over one slice.
fn time(f: &mut dyn FnMut() -> usize) -> f64 {
    let start = thread_cpu();
    let mut n = 0u64;
    let mut sink = 0usize;
    while thread_cpu() - start < SLICE {
        for _ in 0..20 {
            sink = sink.wrapping_add(std::hint::black_box(f()));
        }
        n += 20;
    }
    std::hint::black_box(sink);
    (thread_cpu() - start).as_nanos() as f64 / n as f64
}

fn len_of(r: axum::response::Response) -> usize {
    // The body is one buffer; its size hint is its length (no copy).
    use axum::body::HttpBody;
    r.body().size_hint().exact().unwrap_or(0) as usize
}

/// The derived `Serialize` into a buffer sized once as `json_out` sizes it (axum's `Json` starts at
/// 128 bytes and grows), with `json_out`'s response headers: the most favourable derived path.
fn presized<T: serde::Serialize>(page: &Page<T>, typical: usize) -> axum::response::Response {
    let mut buf = Vec::with_capacity(64 + page.data.len() * typical);
    serde_json::to_writer(&mut buf, page).expect("serializes");
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        buf,
    )
        .into_response()
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let rt = tokio_rt();
    let start = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    let fin: Vec<FinancialView> = (0..90u32)
        .map(|i| {
            let revenue = Decimal::new(1_000_000 + i64::from(i) * 7_919 % 500_000, 2);
            let expenses = Decimal::new(600_000 + i64::from(i) * 3_571 % 300_000, 2);
            FinancialView {
                id: Uuid::now_v7(),
                record_date: start + Days::new(u64::from(i)),
                revenue,
                expenses,
                net_profit: revenue - expenses,
                cash_flow: Decimal::new(i64::from(i) * 1_234 - 50_000, 2),
                currency: "AUD".into(),
                source_system: "bench".into(),
                external_id: None,
                metadata: None,
            }
        })
        .collect();
    let met: Vec<MetricView> = (0..156u32)
        .map(|i| MetricView {
            id: Uuid::now_v7(),
            metric_name: "project_delivery_days".into(),
            metric_value: Decimal::new(10_000 + i64::from(i) * 377 % 90_000, 4),
            unit: Some("days".into()),
            record_date: Utc.from_utc_datetime(
                &(start + Days::new(u64::from(i) * 7))
                    .and_hms_opt(9, 30, 0)
                    .unwrap(),
            ),
            source_system: "bench".into(),
            metadata: None,
        })
        .collect();
    let cursor = Some("7b227265636f72645f64617465223a22323032352d30342d3031227d".to_string());
    let fin_page = Page { data: fin.clone(), next_cursor: cursor.clone() };
    let fin_fast = Page { data: fin.iter().map(FinancialViewFast::from).collect::<Vec<_>>(), next_cursor: cursor.clone() };
    let met_page = Page { data: met.clone(), next_cursor: cursor.clone() };
    let met_fast = Page { data: met.iter().map(MetricViewFast::from).collect::<Vec<_>>(), next_cursor: cursor };

    // Same bytes from the three writers.
    rt.block_on(async {
        let hand = body(api::json_out::page_response(&fin_page)).await;
        assert_eq!(hand, body(axum::Json(&fin_page).into_response()).await);
        assert_eq!(hand, body(axum::Json(&fin_fast).into_response()).await);
        assert_eq!(hand, body(presized(&fin_fast, 240)).await);
        let hand = body(api::json_out::page_response(&met_page)).await;
        assert_eq!(hand, body(axum::Json(&met_page).into_response()).await);
        assert_eq!(hand, body(axum::Json(&met_fast).into_response()).await);
        assert_eq!(hand, body(presized(&met_fast, 200)).await);
    });
    println!("outputs byte-equal: yes");

    let mut writers: Vec<(&str, Box<dyn FnMut() -> usize>)> = vec![
        ("financials/hand-written", Box::new(|| len_of(api::json_out::page_response(&fin_page)))),
        ("financials/derived", Box::new(|| len_of(axum::Json(&fin_page).into_response()))),
        ("financials/derived+fast-decimal", Box::new(|| len_of(axum::Json(&fin_fast).into_response()))),
        ("financials/derived+fast-decimal+presized", Box::new(|| len_of(presized(&fin_fast, 240)))),
        ("metrics/hand-written", Box::new(|| len_of(api::json_out::page_response(&met_page)))),
        ("metrics/derived", Box::new(|| len_of(axum::Json(&met_page).into_response()))),
        ("metrics/derived+fast-decimal", Box::new(|| len_of(axum::Json(&met_fast).into_response()))),
        ("metrics/derived+fast-decimal+presized", Box::new(|| len_of(presized(&met_fast, 200)))),
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); writers.len()];
    for round in 0..ROUNDS {
        let k = writers.len();
        for j in 0..k {
            let i = (round + j) % k;
            samples[i].push(time(&mut writers[i].1));
        }
    }
    println!("writer | median ns/page | min | max | spread (max-min)/median");
    for (i, (name, _)) in writers.iter().enumerate() {
        let (med, lo, hi) = stats(samples[i].clone());
        println!("{name} | {med:.0} | {lo:.0} | {hi:.0} | {:.1} %", (hi - lo) / med * 100.0);
    }
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}
