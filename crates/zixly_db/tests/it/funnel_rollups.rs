//! The funnel rollups (migrations/0016_funnel_rollups.sql) and the pipeline rollups
//! (migrations/0018_pipeline_rollups.sql) against the raw lead events.
//!
//! A property test applies random sequences of loads (through the loader: new events and
//! re-loads that change value, currency and status), updates that move events to other instants
//! or stages, deletions of leads (as the connectors delete them), of days and of whole clients,
//! all as `zixly_app` under RLS. After every step it checks that every rollup table equals its
//! recomputation from `lead_events`, and that each client's all-time funnel and the tenant's (read
//! from the rollups) equal the funnels read from raw events over a range holding all of them;
//! and that the tenant's pipeline summaries of a set of periods (open value and leads at each
//! end, won and lost inside) read from the pipeline rollups equal those computed from the raw
//! events. A change of the tenant's time zone (which moves every day boundary) is one of the
//! steps.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rust_decimal::Decimal;
use uuid::Uuid;
use zixly_db::queries::reports::FunnelQuery;
use zixly_domain::ingest::LeadEventRow;
use zixly_domain::period::DateRange;
use zixly_testkit::TestDb;

const CLIENTS: u8 = 2;
const LEADS: u8 = 6;
const STAGES: [&str; 4] = ["lead", "qualified", "proposal", "won"];
const STATUSES: [&str; 4] = ["active", "won", "lost", "stale"];
const DAYS: u16 = 90;

fn day(offset: i64) -> NaiveDate {
    let base = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    if offset >= 0 {
        base + Days::new(offset as u64)
    } else {
        base - Days::new(offset.unsigned_abs())
    }
}

#[derive(Debug, Clone)]
struct Event {
    client: u8,
    lead: u8,
    stage: u8,
    day: u16,
    /// Half-hours past midnight (UTC): several events of a lead on one day.
    slot: u8,
    source: u8,
    status: u8,
    /// Cents; `None` is an event without a value.
    value: Option<i64>,
    usd: bool,
}

#[derive(Debug, Clone)]
enum Op {
    /// Through the loader; keys already stored are updated (value, currency, status).
    Load(Vec<Event>),
    /// `update … set event_date = event_date + shift` over a client's days.
    Move {
        client: u8,
        from: u16,
        len: u16,
        shift: i16,
    },
    /// Renames one stage of one lead (a key change other than the instant).
    Restage {
        client: u8,
        lead: u8,
        to: u8,
    },
    /// Changes status and value only.
    Restatus {
        client: u8,
        status: u8,
    },
    /// As a connector deletes a lead: all its events.
    DeleteLead {
        client: u8,
        lead: u8,
    },
    DeleteDays {
        client: u8,
        from: u16,
        len: u16,
    },
    DeleteClient(u8),
    /// As the superuser would: every day of the pipeline rollups moves.
    TimeZone(u8),
}

const ZONES: [&str; 4] = [
    "Australia/Sydney",
    "UTC",
    "America/Los_Angeles",
    "Pacific/Kiritimati",
];

fn event() -> impl Strategy<Value = Event> {
    (
        (0..CLIENTS, 0..LEADS, 0..STAGES.len() as u8, 0..DAYS),
        (0u8..4, 0u8..2, 0..STATUSES.len() as u8),
        (prop::option::weighted(0.8, 0i64..1_000_000), any::<bool>()),
    )
        .prop_map(
            |((client, lead, stage, day), (slot, source, status), (value, usd))| Event {
                client,
                lead,
                stage,
                day,
                slot,
                source,
                status,
                value,
                usd,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => prop::collection::vec(event(), 1..30).prop_map(Op::Load),
        1 => (0..CLIENTS, 0..DAYS, 1u16..40, -30i16..30)
            .prop_map(|(client, from, len, shift)| Op::Move { client, from, len, shift }),
        1 => (0..CLIENTS, 0..LEADS, 0..STAGES.len() as u8)
            .prop_map(|(client, lead, to)| Op::Restage { client, lead, to }),
        1 => (0..CLIENTS, 0..STATUSES.len() as u8).prop_map(|(client, status)| Op::Restatus { client, status }),
        1 => (0..CLIENTS, 0..LEADS).prop_map(|(client, lead)| Op::DeleteLead { client, lead }),
        1 => (0..CLIENTS, 0..DAYS, 1u16..30).prop_map(|(client, from, len)| Op::DeleteDays { client, from, len }),
        1 => (0..CLIENTS).prop_map(Op::DeleteClient),
        1 => (0..ZONES.len() as u8).prop_map(Op::TimeZone),
    ]
}

async fn load(db: &TestDb, tenant: Uuid, events: &[Event]) {
    // One event per stored key: a file may not give one key two values.
    let mut by_key = BTreeMap::new();
    for e in events {
        by_key.insert(
            (e.client, e.source, e.lead, e.stage, e.day, e.slot),
            e.clone(),
        );
    }
    let mut csv = String::from(
        "client_id,client_name,event_date,lead_id,stage,value,currency,status,source_system\n",
    );
    for e in by_key.values() {
        csv.push_str(&format!(
            "C{c},Client {c},{d}T{h:02}:{m:02}:00Z,L{l},{s},{v},{cur},{st},{src}\n",
            c = e.client,
            d = day(i64::from(e.day)),
            h = e.slot / 2,
            m = (e.slot % 2) * 30,
            l = e.lead,
            s = STAGES[usize::from(e.stage)],
            v = e
                .value
                .map(|v| Decimal::new(v, 2).to_string())
                .unwrap_or_default(),
            cur = if e.usd { "USD" } else { "AUD" },
            st = STATUSES[usize::from(e.status)],
            src = ["csv", "hubspot"][usize::from(e.source)],
        ));
    }
    crate::partitions::import::<LeadEventRow>(&db.app, tenant, &csv).await;
}

async fn apply(db: &TestDb, tenant: Uuid, op: &Op) {
    let client = |c: u8| {
        format!("client_kpi_id = (select id from client_kpis where tenant_id = '{tenant}' and client_id = 'C{c}')")
    };
    let days = |from: u16, len: u16| {
        format!(
            "event_date >= '{}T00:00:00Z' and event_date < '{}T00:00:00Z'",
            day(i64::from(from)),
            day(i64::from(from) + i64::from(len))
        )
    };
    // Updates that would give two events one natural key leave those events where they are (the
    // statement must succeed to say anything about the rollups).
    let sql = match op {
        Op::Load(events) => return load(db, tenant, events).await,
        Op::Move {
            client: c,
            from,
            len,
            shift,
        } => format!(
            "update lead_events e set event_date = e.event_date + interval '{shift} days'
              where tenant_id = '{tenant}' and {} and {}
                and not exists (select 1 from lead_events o
                                 where o.tenant_id = e.tenant_id and o.client_kpi_id = e.client_kpi_id
                                   and o.source_system = e.source_system and o.lead_id = e.lead_id
                                   and o.stage = e.stage and o.event_date = e.event_date + interval '{shift} days')",
            client(*c),
            days(*from, *len)
        ),
        Op::Restage { client: c, lead, to } => {
            let to = STAGES[usize::from(*to)];
            format!(
                "update lead_events e set stage = '{to}'
                  where tenant_id = '{tenant}' and {} and lead_id = 'L{lead}'
                    and e.id = (select min(id::text)::uuid from lead_events x
                                 where x.tenant_id = e.tenant_id and x.client_kpi_id = e.client_kpi_id
                                   and x.lead_id = e.lead_id)
                    and not exists (select 1 from lead_events o
                                     where o.tenant_id = e.tenant_id and o.client_kpi_id = e.client_kpi_id
                                       and o.source_system = e.source_system and o.lead_id = e.lead_id
                                       and o.stage = '{to}' and o.event_date = e.event_date)",
                client(*c)
            )
        }
        Op::Restatus { client: c, status } => format!(
            "update lead_events set status = '{}', value = value + 1.01,
                    currency = case when currency = 'AUD' then 'USD' else 'AUD' end
              where tenant_id = '{tenant}' and {} and lead_id in ('L0', 'L1', 'L2')",
            STATUSES[usize::from(*status)],
            client(*c)
        ),
        Op::DeleteLead { client: c, lead } => format!(
            "delete from lead_events where tenant_id = '{tenant}' and {} and lead_id = 'L{lead}'",
            client(*c)
        ),
        Op::DeleteDays {
            client: c,
            from,
            len,
        } => format!(
            "delete from lead_events where tenant_id = '{tenant}' and {} and {}",
            client(*c),
            days(*from, *len)
        ),
        Op::DeleteClient(c) => {
            return crate::rollups::delete_client(db, tenant, &format!("C{c}")).await;
        }
        Op::TimeZone(z) => {
            db.superuser()
                .await
                .batch_execute(&format!(
                    "update tenants set time_zone = '{}' where id = '{tenant}'",
                    ZONES[usize::from(*z)]
                ))
                .await
                .unwrap();
            return;
        }
    };
    crate::rollups::execute_as_app(db, tenant, &sql).await;
}

/// Each rollup table as stored and as recomputed from `lead_events` (read as the superuser, so
/// neither side depends on RLS or on the report code): (table, stored rows, recomputed rows).
async fn rollups_and_raw(
    db: &TestDb,
    tenant: Uuid,
) -> Vec<(&'static str, Vec<String>, Vec<String>)> {
    let su = db.superuser().await;
    let t = format!("tenant_id = '{tenant}'");
    let firsts = format!(
        "select tenant_id, client_kpi_id, lead_id, stage, min(event_date) as first_at, count(*) as n
           from lead_events where {t} group by 1, 2, 3, 4"
    );
    // Each event's span (to the lead's next event) in the tenant's days, from the raw events.
    let spans = format!(
        "select e.status, e.currency, e.value, (e.event_date at time zone t.time_zone)::date as ds,
                (lead(e.event_date) over (partition by e.client_kpi_id, e.lead_id order by e.event_date, e.id)
                    at time zone t.time_zone)::date as de
           from lead_events e join tenants t on t.id = e.tenant_id where e.{t}"
    );
    let pairs: [(&str, String, String); 8] = [
        (
            "lead_stage_firsts",
            format!("select concat_ws('|', client_kpi_id, lead_id, stage, first_at, event_count) as x from lead_stage_firsts where {t}"),
            format!("select concat_ws('|', client_kpi_id, lead_id, stage, first_at, n) as x from ({firsts}) f"),
        ),
        (
            "lead_funnel_stages",
            format!("select concat_ws('|', client_kpi_id, stage, leads, rank_sum) as x from lead_funnel_stages where {t}"),
            format!(
                "select concat_ws('|', client_kpi_id, stage, count(*), sum(r)) as x
                   from (select client_kpi_id, stage,
                                rank() over (partition by client_kpi_id, lead_id order by first_at) as r
                           from ({firsts}) f) r
                  group by client_kpi_id, stage"
            ),
        ),
        (
            "lead_funnel_pairs",
            format!("select concat_ws('|', client_kpi_id, stage, other_stage, leads) as x from lead_funnel_pairs where {t}"),
            format!(
                "select concat_ws('|', a.client_kpi_id, a.stage, b.stage, count(*)) as x
                   from ({firsts}) a join ({firsts}) b using (client_kpi_id, lead_id)
                  where a.stage <> b.stage
                  group by a.client_kpi_id, a.stage, b.stage"
            ),
        ),
        (
            "lead_funnel_totals",
            format!("select concat_ws('|', client_kpi_id, stage, status, currency, events, valued, value) as x from lead_funnel_totals where {t}"),
            format!(
                "select concat_ws('|', client_kpi_id, stage, status, currency, count(*), count(value),
                                  coalesce(sum(value), 0)::numeric(18,2)) as x
                   from lead_events where {t} group by client_kpi_id, stage, status, currency"
            ),
        ),
        (
            "lead_funnel_clients",
            format!("select concat_ws('|', client_kpi_id, leads) as x from lead_funnel_clients where {t}"),
            format!(
                "select concat_ws('|', client_kpi_id, count(distinct lead_id)) as x
                   from lead_events where {t} group by client_kpi_id"
            ),
        ),
        (
            "lead_states",
            format!("select concat_ws('|', client_kpi_id, lead_id, event_date, event_id, status, currency, value) as x from lead_states where {t}"),
            format!("select concat_ws('|', client_kpi_id, lead_id, event_date, id, status, currency, value) as x from lead_events where {t}"),
        ),
        (
            "lead_pipeline_days",
            format!("select concat_ws('|', day, status, currency, leads, valued, value, started) as x from lead_pipeline_days where {t}"),
            format!(
                "select concat_ws('|', day, status, currency, sum(n), sum(v), sum(val)::numeric(18,2), sum(st)) as x
                   from (select ds as day, status, currency, 1 as n, (value is not null)::int as v,
                                coalesce(value, 0) as val, 1 as st
                           from ({spans}) s where status <> 'stale'
                         union all
                         select de, status, currency, -1, -(value is not null)::int, -coalesce(value, 0), 0
                           from ({spans}) s where status <> 'stale' and de is not null) d
                  group by day, status, currency
                 having sum(n) <> 0 or sum(v) <> 0 or sum(val) <> 0 or sum(st) <> 0"
            ),
        ),
        (
            "lead_closing_ends",
            format!("select concat_ws('|', start_day, end_day, status, spans) as x from lead_closing_ends where {t}"),
            format!(
                "select concat_ws('|', ds, de, status, count(*)) as x from ({spans}) s
                  where status in ('won', 'lost') and de is not null group by ds, de, status"
            ),
        ),
    ];
    let mut out = Vec::new();
    for (table, stored, raw) in pairs {
        let mut sides = Vec::new();
        for sql in [stored, raw] {
            let rows = su
                .query(&format!("select x from ({sql}) q order by x"), &[])
                .await
                .unwrap_or_else(|e| panic!("{table}: {e}"));
            sides.push(
                rows.iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>(),
            );
        }
        let raw = sides.pop().unwrap();
        out.push((table, sides.pop().unwrap(), raw));
    }
    out
}

/// Per client and for the whole tenant: the all-time funnel (rollups) and the funnel over a range
/// holding every event (raw), as debug text of their stages.
async fn funnels(db: &TestDb, tenant: Uuid) -> Vec<(String, String)> {
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let ids = tx
        .raw_strings(&format!(
            "select id::text from client_kpis where tenant_id = '{tenant}' order by client_id"
        ))
        .await
        .unwrap();
    let everything = FunnelQuery {
        range: Some(DateRange::new(day(-400), day(400)).unwrap()),
        stages: None,
    };
    let mut out = Vec::new();
    // Each client, then the tenant-wide funnel (`None`).
    let clients = ids
        .into_iter()
        .flatten()
        .map(|id| Some(id.parse::<Uuid>().unwrap()));
    for id in clients.chain([None]) {
        let all = tx.funnel(id, &FunnelQuery::default()).await.unwrap();
        let raw = tx.funnel(id, &everything).await.unwrap();
        out.push((
            format!("{:?} {:?}", all.stages, all.missing_rates),
            format!("{:?} {:?}", raw.stages, raw.missing_rates),
        ));
    }
    tx.commit().await.unwrap();
    out
}

async fn check(db: &TestDb, tenant: Uuid, after: &str) -> Result<(), TestCaseError> {
    for (table, stored, raw) in rollups_and_raw(db, tenant).await {
        prop_assert_eq!(stored, raw, "{} after {}", table, after);
    }
    for (all, raw) in funnels(db, tenant).await {
        prop_assert_eq!(all, raw, "all-time funnel after {}", after);
    }
    let (rollup, raw) = pipelines(db, tenant).await;
    prop_assert_eq!(rollup, raw, "pipeline summaries after {}", after);
    let (span, raw) = lead_span(db, tenant).await;
    prop_assert_eq!(span, raw, "the lead events' span after {}", after);
    Ok(())
}

/// The first and last day of the tenant's lead events (its time zone) as the overview reads them
/// (`data_spans`, from `lead_states`) and from the raw events.
async fn lead_span(
    db: &TestDb,
    tenant: Uuid,
) -> (
    Option<(NaiveDate, NaiveDate)>,
    Option<(NaiveDate, NaiveDate)>,
) {
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let spans = tx.data_spans().await.unwrap();
    tx.commit().await.unwrap();
    let row = db
        .superuser()
        .await
        .query_one(
            "select (min(e.event_date) at time zone t.time_zone)::date,
                    (max(e.event_date) at time zone t.time_zone)::date
               from tenants t left join lead_events e on e.tenant_id = t.id
              where t.id = $1 group by t.time_zone",
            &[&tenant],
        )
        .await
        .unwrap();
    let raw = match (row.get(0), row.get(1)) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    };
    (spans.lead_events.map(|s| (s.from(), s.to())), raw)
}

/// The tenant's pipeline summaries of weekly periods over the events' days (and one period
/// before them, one after, one holding all), from the rollups and from the raw events.
async fn pipelines(
    db: &TestDb,
    tenant: Uuid,
) -> (
    Vec<zixly_db::queries::dashboard::PipelineSummary>,
    Vec<zixly_db::queries::dashboard::PipelineSummary>,
) {
    let mut periods: Vec<(NaiveDate, NaiveDate)> = (-35..i64::from(DAYS) + 35)
        .step_by(7)
        .map(|d| (day(d), day(d + 6)))
        .collect();
    periods.push((day(-400), day(-300)));
    periods.push((day(-400), day(400)));
    periods.push((day(3), day(3)));
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let rollup = tx.pipeline_summaries(&periods, None).await.unwrap();
    let raw = tx
        .pipeline_summaries_from_events(&periods, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (rollup, raw)
}

async fn seed_rates(db: &TestDb) {
    db.superuser()
        .await
        .batch_execute(
            "insert into fx_rates (rate_date, base_currency, quote_currency, rate)
             select d::date, 'EUR', q, r
               from generate_series('2023-10-01'::date, '2024-06-30'::date, '1 day') d,
                    (values ('AUD', 1.5), ('USD', 1.25)) as x(q, r)
             on conflict do nothing",
        )
        .await
        .unwrap();
}

#[test]
fn funnel_rollups_equal_the_raw_events_after_every_write() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDb::new());
    rt.block_on(seed_rates(&db));
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&prop::collection::vec(op(), 1..14), |ops| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            rt.block_on(async {
                let tenant = db.tenant(&format!("Funnel {case}")).await;
                for (i, op) in ops.iter().enumerate() {
                    apply(&db, tenant, op).await;
                    check(&db, tenant, &format!("step {i} ({op:?})")).await?;
                }
                Ok(())
            })
        })
        .unwrap();
}

/// The concurrency tests' starting point: lead 0 of `client`, active at its first stage on day 1.
fn first_lead_of(client: u8) -> Event {
    Event {
        client,
        lead: 0,
        stage: 0,
        day: 1,
        slot: 0,
        source: 0,
        status: 0,
        value: Some(100),
        usd: false,
    }
}

/// Two transactions adding different stages of the same lead at once: the second waits for the
/// first at the client's lock row, so neither computes the lead's ranks and pairs without the
/// other's stage. (The lead exists already, so the first changes no count of the client's row: a
/// new lead's count update would make the second wait anyway, and hide a missing lock.)
#[tokio::test]
async fn concurrent_writers_of_one_lead_serialise_on_the_clients_row() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Concurrent").await;
    load(&db, tenant, &[first_lead_of(0)]).await;
    let insert = |stage: &str, day: u32| {
        format!(
            "insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, status)
             select tenant_id, id, '2024-02-{day:02}T00:00:00Z', 'L0', '{stage}', 'active'
               from client_kpis where tenant_id = '{tenant}' and client_id = 'C0'"
        )
    };
    let first = db.app.begin_tenant(tenant).await.unwrap();
    first.raw_execute(&insert("qualified", 1)).await.unwrap();
    let second_db = &db;
    let second = async {
        let tx = second_db.app.begin_tenant(tenant).await.unwrap();
        tx.raw_execute(&insert("proposal", 2)).await.unwrap();
        tx.commit().await.unwrap();
    };
    let commit_first = async {
        // Give the second transaction time to reach the lock before the first commits.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        first.commit().await.unwrap();
    };
    tokio::join!(second, commit_first);
    for (table, stored, raw) in rollups_and_raw(&db, tenant).await {
        assert_eq!(stored, raw, "{table}");
    }
}

/// Two transactions writing lead events of two clients of one tenant, each in two statements
/// over the same two days in opposite orders. The pipeline's day rows are per tenant, so without
/// the tenant's lock (taken before any row is written) the second statements would wait on each
/// other's day rows: a deadlock, and one load lost. With it, the second transaction waits at its
/// first statement until the first commits.
#[tokio::test]
async fn two_writers_of_one_tenants_leads_run_one_after_the_other() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Two writers").await;
    load(&db, tenant, &[first_lead_of(0), first_lead_of(1)]).await;
    let insert = |client: u8, day: u32| {
        format!(
            "insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, status, value)
             select tenant_id, id, '2024-03-{day:02}T03:00:00Z', 'L9', 'lead', 'active', 10
               from client_kpis where tenant_id = '{tenant}' and client_id = 'C{client}'"
        )
    };
    crate::rollups::two_writers_in_opposite_orders(&db, tenant, insert).await;
    for (table, stored, raw) in rollups_and_raw(&db, tenant).await {
        assert_eq!(stored, raw, "{table}");
    }
    let (rollup, raw) = pipelines(&db, tenant).await;
    assert_eq!(rollup, raw);
}

/// The backfill of migration 0016 over events written before it: the same rollups as the
/// triggers keep.
#[tokio::test]
async fn the_migration_backfills_the_funnel_rollups_of_existing_events() {
    let db = TestDb::at_version(15).await;
    let tenant = "00000000-0000-0000-0000-0000000000a1";
    db.superuser()
        .await
        .batch_execute(&format!(
            "insert into tenants (id, name) values ('{tenant}', 'Before');
             insert into client_kpis (tenant_id, id, client_id, client_name)
                  values ('{tenant}', '00000000-0000-0000-0000-0000000000c1', 'C', 'C');
             insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, value, currency, status)
             select '{tenant}', '00000000-0000-0000-0000-0000000000c1', '2024-01-01'::timestamptz + i * interval '1 day',
                    'L' || (i % 5), (array['lead', 'qualified', 'won'])[1 + i % 3],
                    case when i % 4 = 0 then null else i end, case when i % 7 = 0 then 'USD' else 'AUD' end,
                    (array['active', 'won', 'lost'])[1 + i % 3]::lead_status
               from generate_series(0, 59) i;"
        ))
        .await
        .unwrap();
    // From 0016 on (later migrations follow it).
    let applied = zixly_db::migrate::run(&db.owner_url).await.unwrap();
    assert_eq!(applied.first(), Some(&16), "{applied:?}");
    let tenant: Uuid = tenant.parse().unwrap();
    for (table, stored, raw) in rollups_and_raw(&db, tenant).await {
        assert!(!stored.is_empty(), "{table} is empty");
        assert_eq!(stored, raw, "{table}");
    }
}

/// A lead file larger than one upsert statement (the loader writes lead events in chunks of
/// staging pages, `loader::sql::LEAD_EVENT_CHUNK_PAGES`, so that the rollup triggers' statements
/// stay bounded): 12,000 events whose leads straddle the chunks, loaded and then re-loaded with
/// other values, leave every rollup equal to its recomputation from the raw events, and the
/// report counts every row once.
#[tokio::test]
async fn a_lead_file_of_several_statements_keeps_the_rollups_whole() {
    let db = TestDb::new().await;
    let tenant = db.tenant("Chunked").await;
    let events = |value: i64| -> Vec<Event> {
        (0..12_000u32)
            .map(|i| Event {
                client: (i % 2) as u8,
                // A lead's events are spread over the whole file (every 500th line).
                lead: (i % 250) as u8,
                stage: ((i / 250) % 4) as u8,
                day: (i / 1000) as u16,
                slot: ((i / 250) % 48) as u8,
                source: 0,
                status: ((i / 1000) % 4) as u8,
                value: Some(value + i64::from(i)),
                usd: false,
            })
            .collect()
    };
    let csv_rows = |value| {
        let mut keys = BTreeMap::new();
        for e in events(value) {
            keys.insert((e.client, e.source, e.lead, e.stage, e.day, e.slot), ());
        }
        keys.len() as u64
    };
    let distinct = csv_rows(100);
    assert!(distinct > 10_000, "{distinct} distinct events");
    load(&db, tenant, &events(100)).await;
    for (table, stored, raw) in rollups_and_raw(&db, tenant).await {
        assert!(!stored.is_empty(), "{table} is empty");
        assert_eq!(stored, raw, "{table} after the load");
    }
    let stored: i64 = db
        .superuser()
        .await
        .query_one(
            "select count(*) from lead_events where tenant_id = $1",
            &[&tenant],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored as u64, distinct);
    load(&db, tenant, &events(7)).await;
    for (table, stored, raw) in rollups_and_raw(&db, tenant).await {
        assert_eq!(stored, raw, "{table} after the re-load");
    }
}
