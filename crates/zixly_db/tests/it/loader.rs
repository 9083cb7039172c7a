//! The bulk loader (issue 3), through `zixly_app` and RLS. Assertions read the stored rows as the
//! superuser, independently of the loader's own counts.

use std::io::Read;

use futures_util::stream;
use uuid::Uuid;
use zixly_db::loader::{self, Input, LoadOptions, LoadReport, LoadStatus, Loadable, RejectSink};
use zixly_domain::ingest::fx::parse_fx_csv;
use zixly_domain::ingest::{
    CsvRows, CustomMetricRow, FinancialRow, IngestRow, LeadEventRow, RowError, RowResult,
};
use zixly_testkit::TestDb;

#[derive(Default)]
struct Rejects(Vec<(u64, Vec<RowError>)>);
impl RejectSink for Rejects {
    fn rejected(&mut self, line: u64, errors: &[RowError]) {
        self.0.push((line, errors.to_vec()));
    }
}

async fn parse<T: Loadable>(db: &TestDb, tenant: Uuid, csv: &str) -> Vec<RowResult<T>> {
    let ctx = loader::ingest_context(&db.app, tenant, "csv")
        .await
        .unwrap();
    CsvRows::<_, T>::new(csv.as_bytes().to_vec().as_slice(), ctx)
        .expect("valid header")
        .collect::<Vec<_>>()
}

async fn import<T: Loadable>(
    db: &TestDb,
    tenant: Uuid,
    csv: &str,
    skip_invalid: bool,
) -> (LoadReport, Rejects) {
    let rows = parse::<T>(db, tenant, csv).await;
    let mut rejects = Rejects::default();
    let options = LoadOptions {
        skip_invalid,
        file_name: Some("input.csv".into()),
        ..LoadOptions::new("csv")
    };
    let report = loader::load(
        &db.app,
        tenant,
        &options,
        stream::iter(rows),
        Some(&mut rejects),
    )
    .await
    .unwrap();
    (report, rejects)
}

/// (line, column) of every error, in report order.
fn locations(errors: &[RowError]) -> Vec<(u64, Option<&str>)> {
    errors
        .iter()
        .map(|e| (e.line, e.column.as_deref()))
        .collect()
}

async fn strings(db: &TestDb, sql: &str) -> Vec<String> {
    let client = db.superuser().await;
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.superuser()
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

const FIN_HEADER: &str = "client_id,client_name,record_date,revenue,expenses,net_profit,cash_flow,currency,source_system,external_id";

#[tokio::test]
async fn loads_financials_and_records_one_sync_run() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let other = db.tenant("Other").await;
    let csv = format!(
        "{FIN_HEADER}\n\
         C1,Client One,2024-03-01,100.5,40,,10,,,\n\
         C1,Client One,2024-03-02,200,50,150.00,-5.25,AUD,xero,INV-1\n\
         C2,Client Two,2024-03-01,0,0,0,0,,,\n"
    );
    let (report, rejects) = import::<FinancialRow>(&db, tenant, &csv, false).await;
    assert_eq!(report.status, LoadStatus::Succeeded, "{:?}", report.errors);
    assert_eq!(
        (
            report.rows_read,
            report.inserted,
            report.updated,
            report.unchanged
        ),
        (3, 3, 0, 0)
    );
    assert_eq!(
        (
            report.clients_inserted,
            report.clients_updated,
            report.rejected
        ),
        (2, 0, 0)
    );
    assert!(rejects.0.is_empty());

    let stored = strings(
        &db,
        "select concat_ws('|', c.client_id, c.client_name, f.record_date, f.revenue, f.expenses, f.net_profit,
                          f.cash_flow, f.currency, f.source_system, coalesce(f.external_id, '-'))
           from financials f join client_kpis c on c.tenant_id = f.tenant_id and c.id = f.client_kpi_id
          order by c.client_id, f.record_date",
    )
    .await;
    assert_eq!(
        stored,
        [
            "C1|Client One|2024-03-01|100.50|40.00|60.50|10.00|AUD|csv|-",
            "C1|Client One|2024-03-02|200.00|50.00|150.00|-5.25|AUD|xero|INV-1",
            "C2|Client Two|2024-03-01|0.00|0.00|0.00|0.00|AUD|csv|-",
        ]
    );
    assert_eq!(
        count(
            &db,
            &format!("select count(*) from financials where tenant_id = '{tenant}'")
        )
        .await,
        3
    );
    assert_eq!(
        count(
            &db,
            &format!("select count(*) from financials where tenant_id = '{other}'")
        )
        .await,
        0
    );

    let runs = strings(
        &db,
        &format!(
            "select concat_ws('|', id, source, dataset, file_name, status, rows_read, rows_inserted, rows_updated,
                              rows_unchanged, rows_rejected, error_count, errors, finished_at >= started_at, duration_ms >= 0)
               from sync_runs where tenant_id = '{tenant}'"
        ),
    )
    .await;
    assert_eq!(
        runs,
        [format!(
            "{}|csv|financials|input.csv|succeeded|3|3|0|0|0|0|[]|t|t",
            report.sync_run_id
        )]
    );
}

#[tokio::test]
async fn any_invalid_row_rolls_back_everything_and_lists_every_error() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let csv = format!(
        "{FIN_HEADER}\n\
         C1,One,2024-03-01,100,40,,10,,,\n\
         C1,One,2024-02-30,100,40,,10,,,\n\
         C2,Two,2024-03-01,1.005,40,,10,,,\n\
         C3,Three,2024-03-01,\"1,000\",40,,10,,,\n\
         C4,Four,2024-03-01,100,40,61,10,,,\n\
         C5,Five,2024-03-01,100,40,,10,usd,,\n\
         ,Six,2024-03-01,100,40,,10,,,\n\
         C7,Seven,2024-03-01,100,40,,10000000000,,,\n\
         C8,Eight,2024-03-01,100,40,,10,,,\n"
    );
    let (report, rejects) = import::<FinancialRow>(&db, tenant, &csv, false).await;
    assert_eq!(report.status, LoadStatus::Failed);
    assert_eq!(
        locations(&report.errors),
        [
            (3, Some("record_date")),
            (4, Some("revenue")),
            (5, Some("revenue")),
            (6, Some("net_profit")),
            (7, Some("currency")),
            (8, Some("client_id")),
            (9, Some("cash_flow")),
        ]
    );
    assert!(
        report.errors[1].reason.contains("3 decimal places"),
        "{}",
        report.errors[1].reason
    );
    assert!(report.errors[2].reason.contains("thousands separators"));
    assert!(report.errors[3]
        .reason
        .contains("is not revenue - expenses"));
    assert_eq!(
        (
            report.rows_read,
            report.rejected,
            report.error_count,
            report.inserted
        ),
        (9, 7, 7, 0)
    );
    assert_eq!(
        rejects.0.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        [3, 4, 5, 6, 7, 8, 9]
    );
    // Nothing written: neither the valid rows nor their clients.
    assert_eq!(count(&db, "select count(*) from financials").await, 0);
    assert_eq!(count(&db, "select count(*) from client_kpis").await, 0);
    // One failed run, written after the rollback, with the errors.
    let runs = strings(
        &db,
        "select concat_ws('|', status, rows_read, rows_inserted, rows_rejected, error_count,
                          errors->0->>'line', errors->0->>'column', jsonb_array_length(errors)) from sync_runs",
    )
    .await;
    assert_eq!(runs, ["failed|9|0|7|7|3|record_date|7"]);
}

#[tokio::test]
async fn only_the_first_hundred_errors_are_listed() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let mut csv = format!("{FIN_HEADER}\n");
    for i in 0..150 {
        csv.push_str(&format!("C{i},Name,2024-13-01,1,1,,1,,,\n"));
    }
    let (report, _) = import::<FinancialRow>(&db, tenant, &csv, false).await;
    assert_eq!(
        (
            report.error_count,
            report.errors.len() as u64,
            report.errors_not_listed()
        ),
        (150, 100, 50)
    );
    assert_eq!(report.errors.last().unwrap().line, 101);
    assert_eq!(
        count(
            &db,
            "select jsonb_array_length(errors)::bigint from sync_runs"
        )
        .await,
        100
    );
}

#[tokio::test]
async fn skip_invalid_loads_the_valid_rows_and_reports_the_others() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let csv = format!(
        "{FIN_HEADER}\n\
         C1,One,2024-03-01,100,40,,10,,,\n\
         C1,One,2024-02-30,100,40,,10,,,\n\
         C2,Two,2024-03-01,100,40,,10,,,\n"
    );
    let (report, rejects) = import::<FinancialRow>(&db, tenant, &csv, true).await;
    assert_eq!(report.status, LoadStatus::Partial);
    assert_eq!(
        (report.rows_read, report.inserted, report.rejected),
        (3, 2, 1)
    );
    assert_eq!(locations(&report.errors), [(3, Some("record_date"))]);
    assert_eq!(rejects.0.len(), 1);
    assert_eq!(rejects.0[0].0, 3);
    assert_eq!(count(&db, "select count(*) from financials").await, 2);
    assert_eq!(
        strings(
            &db,
            "select concat_ws('|', status, rows_inserted, rows_rejected) from sync_runs"
        )
        .await,
        ["partial|2|1"]
    );

    // Every row invalid: nothing written, the run failed.
    let csv = format!("{FIN_HEADER}\nC9,Nine,2024-02-30,1,1,,1,,,\n");
    let (report, _) = import::<FinancialRow>(&db, tenant, &csv, true).await;
    assert_eq!((report.status, report.inserted), (LoadStatus::Failed, 0));
}

#[tokio::test]
async fn reimport_changes_nothing_byte_for_byte_and_updates_only_what_changed() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let csv = format!(
        "{FIN_HEADER}\n\
         C1,One,2024-03-01,100.5,40,,10,,,\n\
         C1,One,2024-03-02,200,50,,-5,,,\n\
         C2,Two,2024-03-01,7,8,,9,,,\n"
    );
    let snapshot = "select string_agg(row_to_json(t)::text, E'\\n' order by t.id) from
                      (select * from financials) t
                    union all
                    select string_agg(row_to_json(c)::text, E'\\n' order by c.id) from client_kpis c";
    let (first, _) = import::<FinancialRow>(&db, tenant, &csv, false).await;
    assert_eq!(first.inserted, 3);
    let before = strings(&db, snapshot).await;

    let (again, _) = import::<FinancialRow>(&db, tenant, &csv, false).await;
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 3));
    assert_eq!((again.clients_inserted, again.clients_updated), (0, 0));
    assert_eq!(
        strings(&db, snapshot).await,
        before,
        "a re-import rewrote stored rows"
    );
    // Not even a dead tuple: no row version was created (xmin unchanged).
    let xmins = "select string_agg(xmin::text, ',' order by id) from financials";
    let xmin_before = strings(&db, xmins).await;
    import::<FinancialRow>(&db, tenant, &csv, false).await;
    assert_eq!(strings(&db, xmins).await, xmin_before);

    // One value changes: one update, and only that row's updated_at moves.
    let changed = csv.replace("C2,Two,2024-03-01,7,8,,9", "C2,Two,2024-03-01,7,8,,10");
    let (third, _) = import::<FinancialRow>(&db, tenant, &changed, false).await;
    assert_eq!((third.inserted, third.updated, third.unchanged), (0, 1, 2));
    let moved = strings(&db, "select r.client_id from financials f join client_kpis r on r.id = f.client_kpi_id where f.updated_at > f.created_at").await;
    assert_eq!(moved, ["C2"]);

    // A new client name is an update of the client, not of its rows.
    let renamed = changed.replace(",One,", ",One Ltd,");
    let (fourth, _) = import::<FinancialRow>(&db, tenant, &renamed, false).await;
    assert_eq!(
        (fourth.clients_updated, fourth.updated, fourth.unchanged),
        (1, 0, 3)
    );
    assert_eq!(
        strings(
            &db,
            "select client_name from client_kpis order by client_id"
        )
        .await,
        ["One Ltd", "Two"]
    );
    assert_eq!(count(&db, "select count(*) from sync_runs").await, 5);
}

#[tokio::test]
async fn duplicate_keys_in_one_input_reject_every_occurrence() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let csv = format!(
        "{FIN_HEADER}\n\
         C1,One,2024-03-01,100,40,,10,,,\n\
         C2,Two,2024-03-01,1,1,,1,,,\n\
         C1,One,2024-03-01,100,40,,10,,,E4\n\
         C1,One,2024-03-01,100,40,,10,,xero,\n\
         C1,One,2024-03-01,1,1,,1,,,\n"
    );
    let (report, rejects) = import::<FinancialRow>(&db, tenant, &csv, false).await;
    assert_eq!(report.status, LoadStatus::Failed);
    assert_eq!(locations(&report.errors), [(2, None), (4, None), (6, None)]);
    assert_eq!(
        report.errors[0].reason,
        "duplicate key (client_id, record_date, source_system) = (C1, 2024-03-01, csv): also on line 4, 6; \
         every row of a duplicated key is rejected"
    );
    assert!(report.errors[1].reason.contains("also on line 2, 6"));
    assert_eq!(
        rejects.0.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        [2, 4, 6]
    );
    assert_eq!(count(&db, "select count(*) from financials").await, 0);

    let (report, _) = import::<FinancialRow>(&db, tenant, &csv, true).await;
    assert_eq!(
        (report.status, report.inserted, report.rejected),
        (LoadStatus::Partial, 2, 3)
    );
    assert_eq!(
        strings(&db, "select r.client_id || '|' || f.source_system from financials f join client_kpis r on r.id = f.client_kpi_id order by 1").await,
        ["C1|xero", "C2|csv"]
    );
}

#[tokio::test]
async fn a_key_repeated_on_many_lines_names_ten_other_lines_and_counts_the_rest() {
    // Each error used to list every other line of its key: n errors of n line numbers each.
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let mut csv = format!("{FIN_HEADER}\n");
    for i in 0..300 {
        // Rows that differ (by external_id): exact copies would collapse into one.
        csv.push_str(&format!("C1,One,2024-03-01,100,40,,10,,,E{i}\n"));
    }
    let (report, _) = import::<FinancialRow>(&db, tenant, &csv, false).await;
    assert_eq!((report.status, report.rejected), (LoadStatus::Failed, 300));
    assert_eq!(report.errors.len(), loader::MAX_REPORTED_ERRORS);
    assert_eq!(
        report.errors[0].reason,
        "duplicate key (client_id, record_date, source_system) = (C1, 2024-03-01, csv): also on line \
         3, 4, 5, 6, 7, 8, 9, 10, 11, 12 and 289 more; every row of a duplicated key is rejected"
    );
    assert!(
        report.errors[50]
            .reason
            .contains("also on line 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and 289 more;"),
        "{}",
        report.errors[50].reason
    );
}

#[tokio::test]
async fn foreign_currencies_need_a_dated_rate() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await; // base AUD
                                          // Monday 2024-03-04, and 2024-03-20 (more than 7 days after the last rate).
    let csv = format!(
        "{FIN_HEADER}\n\
         C1,One,2024-03-04,100,40,,10,USD,,\n\
         C1,One,2024-03-04,100,40,,10,AUD,xero,\n\
         C1,One,2024-03-05,100,40,,10,EUR,,\n\
         C1,One,2024-03-20,100,40,,10,USD,xero,\n"
    );
    let (report, _) = import::<FinancialRow>(&db, tenant, &csv, false).await;
    assert_eq!(
        locations(&report.errors),
        [
            (2, Some("currency")),
            (4, Some("currency")),
            (5, Some("currency"))
        ]
    );
    assert_eq!(
        report.errors[0].reason,
        "no exchange rate from USD to AUD (the tenant's base currency) on 2024-03-04 or in the 7 days before; \
         import rates with `zixly fx import`"
    );

    // ECB rates of Friday 2024-03-01 (base EUR): cover the weekend and the next days, not 03-20.
    let fx = parse_fx_csv("Date,USD,AUD,\n2024-03-01,1.0830,1.6612,\n".as_bytes()).unwrap();
    let counts = db.system.import_fx_rates(&fx.rates, "ecb").await.unwrap();
    assert_eq!(
        (counts.inserted, counts.updated, counts.unchanged),
        (2, 0, 0)
    );
    let counts = db.system.import_fx_rates(&fx.rates, "ecb").await.unwrap();
    assert_eq!(
        (counts.inserted, counts.updated, counts.unchanged),
        (0, 0, 2)
    );

    let (report, _) = import::<FinancialRow>(&db, tenant, &csv, false).await;
    assert_eq!(locations(&report.errors), [(5, Some("currency"))]);
    assert!(report.errors[0].reason.contains("on 2024-03-20"));

    let (report, _) = import::<FinancialRow>(&db, tenant, &csv, true).await;
    assert_eq!((report.inserted, report.rejected), (3, 1));
    // Amounts keep their currency.
    assert_eq!(
        strings(
            &db,
            "select currency || ' ' || revenue from financials order by record_date, currency"
        )
        .await,
        ["AUD 100.00", "USD 100.00", "EUR 100.00"]
    );
    // The conversion the reports use: USD -> AUD through EUR.
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let usd = "USD".parse().unwrap();
    let aud = "AUD".parse().unwrap();
    let rate = tx
        .fx_rate(usd, aud, "2024-03-04".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rate.round_dp(6).to_string(), "1.533887");
    assert_eq!(
        tx.fx_rate(usd, aud, "2024-03-09".parse().unwrap())
            .await
            .unwrap(),
        None
    );
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn lead_events_and_custom_metrics_load_idempotently() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await; // Australia/Sydney
    let csv = "client_id,client_name,event_date,lead_id,stage,value,status\n\
               C1,One,2024-03-01 09:30,L1,proposal,1000,active\n\
               C1,,2024-03-02T10:00:00Z,L1,won,1000,WON\n\
               C1,,2024-03-02T10:00:00Z,L2,won,,lost\n\
               C1,,2024-10-06 02:30,L3,new,,active\n\
               C1,,2024-03-03,L4,new,,open\n";
    let (report, _) = import::<LeadEventRow>(&db, tenant, csv, false).await;
    assert_eq!(
        locations(&report.errors),
        [(5, Some("event_date")), (6, Some("status"))]
    );
    let (report, _) = import::<LeadEventRow>(&db, tenant, csv, true).await;
    assert_eq!((report.inserted, report.rejected), (3, 2));
    let stored = strings(
        &db,
        "select concat_ws('|', lead_id, stage, to_char(event_date at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
                          coalesce(value::text, '-'), currency, status)
           from lead_events order by event_date, lead_id",
    )
    .await;
    assert_eq!(
        stored,
        [
            "L1|proposal|2024-02-29 22:30|1000.00|AUD|active",
            "L1|won|2024-03-02 10:00|1000.00|AUD|won",
            "L2|won|2024-03-02 10:00|-|AUD|lost",
        ]
    );
    let (again, _) = import::<LeadEventRow>(&db, tenant, csv, true).await;
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 3));
    // The client was created without a name in the input: named after its id, then kept.
    assert_eq!(
        strings(&db, "select client_name from client_kpis").await,
        ["One"]
    );

    let csv = "metric_name,client_id,metric_value,unit,record_date\n\
               nps,C1,42.1234,score,2024-03-01\n\
               nps,C2,42.12345,score,2024-03-01\n\
               nps,C2,1,score,2024-03-01T00:00:00+11:00\n";
    let (report, _) = import::<CustomMetricRow>(&db, tenant, csv, false).await;
    assert_eq!(locations(&report.errors), [(3, Some("metric_value"))]);
    let (report, _) = import::<CustomMetricRow>(&db, tenant, csv, true).await;
    assert_eq!((report.inserted, report.clients_inserted), (2, 1));
    assert_eq!(
        strings(&db, "select concat_ws('|', c.client_id, c.client_name, m.metric_value, m.record_date at time zone 'UTC') from custom_metrics m join client_kpis c on c.id = m.client_kpi_id order by 1").await,
        ["C1|One|42.1234|2024-02-29 13:00:00", "C2|C2|1.0000|2024-02-29 13:00:00"]
    );
}

#[tokio::test]
async fn an_aborted_source_writes_nothing() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let ctx = loader::ingest_context(&db.app, tenant, "api")
        .await
        .unwrap();
    let good = FinancialRow::parse_named(
        &[
            ("client_id", "C1"),
            ("client_name", "One"),
            ("record_date", "2024-03-01"),
            ("revenue", "1"),
            ("expenses", "1"),
            ("cash_flow", "1"),
        ],
        2,
        &ctx,
    )
    .unwrap();
    let items: Vec<Input<FinancialRow>> = vec![
        Input::Row(zixly_domain::ingest::ValidRow { line: 2, row: good }),
        Input::Abort("connection reset".into()),
    ];
    let report = loader::load(
        &db.app,
        tenant,
        &LoadOptions::new("api"),
        stream::iter(items),
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.status, LoadStatus::Failed);
    assert_eq!(report.aborted.as_deref(), Some("connection reset"));
    assert_eq!(count(&db, "select count(*) from financials").await, 0);
    assert_eq!(
        strings(
            &db,
            "select status || '|' || source || '|' || (errors->0->>'reason') from sync_runs"
        )
        .await,
        ["failed|api|connection reset"]
    );
}

/// Synthetic CSV produced on the fly: the input never exists whole, in memory or on disk.
struct Generated {
    next_row: u64,
    rows: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if self.next_row == 0 {
                self.buf.extend_from_slice(
                    b"client_id,client_name,record_date,revenue,expenses,cash_flow\n",
                );
            }
            while self.buf.len() < 64 * 1024 && self.next_row < self.rows {
                let i = self.next_row;
                let day = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()
                    + chrono::Days::new(i / 1000);
                use std::io::Write;
                writeln!(
                    self.buf,
                    "client-{},Client number {},{day},{}.{:02},{},{}",
                    i % 1000,
                    i % 1000,
                    i % 99_999,
                    i % 100,
                    i % 777,
                    i % 13
                )?;
                self.next_row += 1;
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn vm_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A streamed input much larger than what the process may grow by: 300,000 rows are ~20 MB of
/// CSV and, held as parsed rows, well over 60 MB; the process may grow by at most 40 MB.
#[tokio::test]
async fn a_large_input_streams_in_bounded_memory() {
    const ROWS: u64 = 300_000;
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let ctx = loader::ingest_context(&db.app, tenant, "csv")
        .await
        .unwrap();
    let input = Generated {
        next_row: 0,
        rows: ROWS,
        buf: Vec::new(),
        pos: 0,
    };
    let rows = CsvRows::<_, FinancialRow>::new(input, ctx).unwrap();
    let rss_before = vm_kib("VmRSS:");
    let report = loader::load(
        &db.app,
        tenant,
        &LoadOptions::new("csv"),
        stream::iter(rows),
        None,
    )
    .await
    .unwrap();
    let growth_mib = (vm_kib("VmHWM:").saturating_sub(rss_before)) / 1024;
    assert_eq!(
        (report.status, report.inserted, report.clients_inserted),
        (LoadStatus::Succeeded, ROWS, 1000)
    );
    assert_eq!(
        count(&db, "select count(*) from financials").await,
        ROWS as i64
    );
    assert!(
        growth_mib < 40,
        "the loader grew the process by {growth_mib} MiB for a streamed input"
    );
}

/// Compile-time check (not a test): the load future is `Send`, so the web server and the job
/// worker can spawn it.
#[allow(dead_code)]
fn the_load_future_is_send(db: &TestDb) {
    fn assert_send<T: Send>(_: T) {}
    let rows: Vec<RowResult<FinancialRow>> = Vec::new();
    let options = LoadOptions::new("api");
    assert_send(loader::load(
        &db.app,
        Uuid::nil(),
        &options,
        stream::iter(rows),
        None,
    ));
}

/// A load that adds many clients refreshes client_kpis' statistics in its own transaction
/// (migration 0006), so that the per-row foreign-key check probes the primary key instead of
/// walking every client of the tenant through an index on tenant_id alone.
#[tokio::test]
async fn a_load_with_many_new_clients_leaves_statistics_for_a_primary_key_check() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Acme").await;
    let mut csv = String::from("client_id,client_name,record_date,revenue,expenses,cash_flow\n");
    for i in 0..300 {
        csv.push_str(&format!("C{i},Client {i},2024-03-01,10,4,1\n"));
    }
    let (report, _) = import::<FinancialRow>(&db, tenant, &csv, false).await;
    assert_eq!(report.status, LoadStatus::Succeeded, "{:?}", report.errors);
    assert_eq!((report.inserted, report.clients_inserted), (300, 300));
    let known = db
        .superuser()
        .await
        .query_one(
            "select reltuples::float8 from pg_class where oid = 'client_kpis'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get::<_, f64>(0);
    assert!(known >= 300.0, "client_kpis reltuples {known}");
    // The plan of the check `RI_FKey_check_ins` runs (a generic plan, as it is cached).
    let client = db.superuser().await;
    client
        .batch_execute(
            "set plan_cache_mode = force_generic_plan;
             prepare fk_check(uuid, uuid) as
             select 1 from only client_kpis x where tenant_id = $1 and id = $2 for key share of x",
        )
        .await
        .unwrap();
    let plan: Vec<String> = client
        .query(
            &format!("explain execute fk_check('{tenant}', '{tenant}')"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        plan.iter().any(|l| l.contains("client_kpis_pkey")),
        "{plan:#?}"
    );
}
