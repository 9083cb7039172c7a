//! The metric catalogue (`metric_definitions`): first sight by the loader (CSV import and sync
//! share it), edits that later loads keep, isolation, and bucket `value`s by definition on real
//! numbers.

use std::str::FromStr;

use chrono::NaiveDate;
use futures_util::stream;
use rust_decimal::Decimal;
use uuid::Uuid;
use zixly_db::loader::{self, LoadOptions, LoadReport, LoadStatus};
use zixly_db::queries::metrics::{MetricChanges, MetricDefinition};
use zixly_db::queries::series::{bucket_window, Bucket, DateRange};
use zixly_domain::ingest::{CsvRows, CustomMetricRow};
use zixly_domain::metrics::{Aggregation, Direction};
use zixly_testkit::TestDb;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}
fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Loads `csv` as custom metrics from `source` (`csv` for an import; a provider's name is what a
/// sync passes to the same loader).
async fn load(db: &TestDb, tenant: Uuid, source: &str, csv: &str) -> LoadReport {
    let ctx = loader::ingest_context(&db.app, tenant, source)
        .await
        .unwrap();
    let rows: Vec<_> = CsvRows::<_, CustomMetricRow>::new(csv.as_bytes(), ctx)
        .expect("valid header")
        .collect();
    loader::load(
        &db.app,
        tenant,
        &LoadOptions::new(source),
        stream::iter(rows),
        None,
    )
    .await
    .unwrap()
}

async fn definitions(db: &TestDb, tenant: Uuid) -> Vec<MetricDefinition> {
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let list = tx.metric_definitions().await.unwrap();
    tx.commit().await.unwrap();
    list
}

fn summary(
    list: &[MetricDefinition],
) -> Vec<(String, String, Option<String>, Aggregation, Direction)> {
    list.iter()
        .map(|m| {
            (
                m.name.clone(),
                m.display_name.clone(),
                m.unit.clone(),
                m.aggregation,
                m.direction,
            )
        })
        .collect()
}

#[tokio::test]
async fn first_sight_defines_a_metric_and_later_loads_keep_edits() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    // A rejected load (line 3: bad value) writes nothing, definitions included.
    let bad = "metric_name,client_id,metric_value,unit,record_date\n\
               billable_hours,C1,2.5,h,2025-01-06\n\
               churn,C1,x,%,2025-01-06\n";
    let report = load(&db, tenant, "csv", bad).await;
    assert_eq!(report.status, LoadStatus::Failed);
    assert!(definitions(&db, tenant).await.is_empty());

    let csv = "metric_name,client_id,metric_value,unit,record_date\n\
               billable_hours,C1,2.5,h,2025-01-06\n\
               billable_hours,C2,4,h,2025-01-06\n\
               nps,C1,40,,2025-01-06\n";
    let report = load(&db, tenant, "csv", csv).await;
    assert_eq!((report.status, report.inserted), (LoadStatus::Succeeded, 3));
    assert_eq!(
        summary(&definitions(&db, tenant).await),
        [
            (
                "billable_hours".into(),
                "Billable hours".into(),
                Some("h".into()),
                Aggregation::Sum,
                Direction::UpIsGood
            ),
            (
                "nps".into(),
                "Nps".into(),
                None,
                Aggregation::Sum,
                Direction::UpIsGood
            ),
        ]
    );

    // An EDITOR's change...
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let (before, after) = tx
        .update_metric_definition(
            "nps",
            &MetricChanges {
                display_name: Some("Net promoter score".into()),
                unit: Some(Some("score".into())),
                aggregation: Some(Aggregation::Average),
                description: Some(Some("Asked every quarter".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (before.aggregation, after.aggregation),
        (Aggregation::Sum, Aggregation::Average)
    );
    assert_eq!(after.description.as_deref(), Some("Asked every quarter"));
    assert!(tx
        .update_metric_definition("unknown", &MetricChanges::default())
        .await
        .unwrap()
        .is_none());
    tx.commit().await.unwrap();

    // ...survives a re-import and a sync's load of the same metric (with another unit), while
    // a new name from the sync gets its own definition.
    let again = "metric_name,client_id,metric_value,unit,record_date\n\
                 nps,C1,60,pts,2025-02-03\n\
                 tasks_completed,C1,7,,2025-02-03\n";
    assert_eq!(
        load(&db, tenant, "csv", again).await.status,
        LoadStatus::Succeeded
    );
    assert_eq!(
        load(&db, tenant, "asana", again).await.status,
        LoadStatus::Succeeded
    );
    let list = definitions(&db, tenant).await;
    assert_eq!(
        summary(&list),
        [
            (
                "billable_hours".into(),
                "Billable hours".into(),
                Some("h".into()),
                Aggregation::Sum,
                Direction::UpIsGood
            ),
            (
                "nps".into(),
                "Net promoter score".into(),
                Some("score".into()),
                Aggregation::Average,
                Direction::UpIsGood
            ),
            (
                "tasks_completed".into(),
                "Tasks completed".into(),
                None,
                Aggregation::Sum,
                Direction::UpIsGood
            ),
        ]
    );
    assert_eq!(list[1].description.as_deref(), Some("Asked every quarter"));
}

#[tokio::test]
async fn another_tenant_cannot_read_or_change_a_definition() {
    let db = TestDb::new().await;
    let a = db.tenant("A").await;
    let b = db.tenant("B").await;
    let csv = "metric_name,client_id,metric_value,unit,record_date\nnps,C1,40,,2025-01-06\n";
    load(&db, a, "csv", csv).await;
    let tx = db.app.begin_tenant(b).await.unwrap();
    assert!(tx.metric_definitions().await.unwrap().is_empty());
    assert!(tx.metric_definition("nps").await.unwrap().is_none());
    let changed = tx
        .update_metric_definition(
            "nps",
            &MetricChanges {
                aggregation: Some(Aggregation::Max),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(changed.is_none(), "B changed A's definition");
    let err = tx
        .raw_execute(&format!(
            "insert into metric_definitions (tenant_id, name, display_name) values ('{a}', 'x', 'X')"
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.sql_state(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    drop(tx);
    let tx = db.app.begin_tenant(a).await.unwrap();
    let nps = tx.metric_definition("nps").await.unwrap().unwrap();
    assert_eq!(nps.aggregation, Aggregation::Sum);
}

#[tokio::test]
async fn bucket_values_follow_each_definition() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await; // Australia/Sydney: dates are local days
    let csv = "metric_name,client_id,metric_value,unit,record_date\n\
               billable_hours,C1,2.5,h,2025-01-06\n\
               billable_hours,C1,3,h,2025-01-07\n\
               billable_hours,C1,4.25,h,2025-01-20\n\
               billable_hours,C2,8,h,2025-01-09\n\
               billable_hours,C1,1.5,h,2025-02-03\n\
               nps,C1,40,,2025-01-06\n\
               nps,C1,50,,2025-01-15\n\
               nps,C1,45,,2025-01-31\n\
               nps,C2,10,,2025-01-10\n\
               headcount,C1,10,,2025-01-05\n\
               headcount,C1,12,,2025-01-20\n\
               headcount,C1,11,,2025-01-10\n\
               headcount,C2,30,,2025-01-12\n\
               response_hours,C1,5,h,2025-01-05\n\
               response_hours,C1,2,h,2025-01-20\n\
               response_hours,C1,9,h,2025-01-10\n";
    assert_eq!(
        load(&db, tenant, "csv", csv).await.status,
        LoadStatus::Succeeded
    );
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    for (name, aggregation, display) in [
        ("nps", Aggregation::Average, "NPS"),
        ("headcount", Aggregation::Last, "Headcount"),
        ("response_hours", Aggregation::Min, "Fastest response"),
    ] {
        tx.update_metric_definition(
            name,
            &MetricChanges {
                aggregation: Some(aggregation),
                display_name: Some(display.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    }
    let client: Uuid = tx
        .raw_strings("select id::text from client_kpis where client_id = 'C1'")
        .await
        .unwrap()[0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    let range = DateRange::new(d("2025-01-01"), d("2025-02-28")).unwrap();
    let window = bucket_window(range, Bucket::Month, None, 12).unwrap();
    let buckets = tx
        .custom_metric_buckets(client, None, Bucket::Month, &window)
        .await
        .unwrap();
    let got: Vec<_> = buckets
        .iter()
        .map(|b| {
            (
                b.bucket_start,
                b.metric_name.as_str(),
                b.display_name.as_str(),
                b.unit.as_deref(),
                b.aggregation,
                b.value,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                d("2025-01-01"),
                "billable_hours",
                "Billable hours",
                Some("h"),
                Aggregation::Sum,
                dec("9.75")
            ),
            (
                d("2025-01-01"),
                "headcount",
                "Headcount",
                None,
                Aggregation::Last,
                dec("12")
            ),
            (
                d("2025-01-01"),
                "nps",
                "NPS",
                None,
                Aggregation::Average,
                dec("45")
            ),
            (
                d("2025-01-01"),
                "response_hours",
                "Fastest response",
                Some("h"),
                Aggregation::Min,
                dec("2")
            ),
            (
                d("2025-02-01"),
                "billable_hours",
                "Billable hours",
                Some("h"),
                Aggregation::Sum,
                dec("1.5")
            ),
        ]
    );
    // The other aggregates stay beside `value`.
    let hours = &buckets[0];
    assert_eq!(
        (hours.count, hours.sum, hours.avg, hours.min, hours.max),
        (3, dec("9.75"), dec("3.25"), dec("2.5"), dec("4.25"))
    );

    // Across clients: hours add up, NPS averages, headcount is the latest value recorded.
    let report = |name: &'static str| {
        let tx = &tx;
        let window = &window;
        async move {
            tx.metric_report(name, Bucket::Month, window)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.bucket_start, r.value, r.display_name.clone()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        report("billable_hours").await,
        [
            (d("2025-01-01"), dec("17.75"), "Billable hours".to_string()),
            (d("2025-02-01"), dec("1.5"), "Billable hours".to_string())
        ]
    );
    assert_eq!(
        report("nps").await,
        [(d("2025-01-01"), dec("36.25"), "NPS".to_string())]
    );
    assert_eq!(
        report("headcount").await,
        [(d("2025-01-01"), dec("12"), "Headcount".to_string())]
    );
}
