//! Goals (`queries::goals`): CRUD and targets under RLS (another tenant's goal is invisible and
//! cannot be changed), the KPI-actuals reader on real rows, and a goal's progress with and
//! without a year of history. Fixtures as superuser, reads through a `TenantTx`.

use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use uuid::Uuid;
use zixly_db::queries::goals::{GoalChanges, NewGoal};
use zixly_domain::goals::{GoalKind, GoalPeriod, GoalStatus, Pacing};
use zixly_domain::metrics::Aggregation;
use zixly_domain::period::DateRange;
use zixly_testkit::TestDb;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}
fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}
fn range(a: &str, b: &str) -> DateRange {
    DateRange::new(d(a), d(b)).unwrap()
}

async fn exec(db: &TestDb, sql: &str) {
    db.superuser()
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("fixture failed: {e:?}\n{sql}"));
}

async fn client(db: &TestDb, tenant: Uuid, code: &str) -> Uuid {
    let id = Uuid::now_v7();
    exec(
        db,
        &format!(
            "insert into client_kpis (tenant_id, id, client_id, client_name)
             values ('{tenant}', '{id}', '{code}', 'Client {code}')"
        ),
    )
    .await;
    id
}

/// One financials row per (day, revenue, expenses), in the tenant's base currency (AUD).
async fn financials(db: &TestDb, tenant: Uuid, client: Uuid, rows: &[(&str, &str, &str)]) {
    let values: Vec<String> = rows
        .iter()
        .map(|(day, r, e)| {
            format!("('{tenant}', '{client}', '{day}', {r}, {e}, {r} - {e}, 0, 'AUD')")
        })
        .collect();
    exec(
        db,
        &format!(
            "insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow, currency)
             values {}",
            values.join(", ")
        ),
    )
    .await;
}

fn new_goal(kpi: &str, client: Option<Uuid>, period: GoalPeriod, kind: GoalKind) -> NewGoal {
    NewGoal {
        name: Some("Sales".into()),
        kpi: kpi.into(),
        client_id: client,
        period,
        kind,
        target: dec("1000"),
        created_by: None,
    }
}

#[tokio::test]
async fn goals_and_targets_are_invisible_to_another_tenant() {
    let db = TestDb::new().await;
    let (a, b) = (db.tenant("A").await, db.tenant("B").await);
    let ca = client(&db, a, "C1").await;

    let tx = db.app.begin_tenant(a).await.unwrap();
    let goal = tx
        .create_goal(&new_goal(
            "revenue",
            Some(ca),
            GoalPeriod::Month,
            GoalKind::Reach,
        ))
        .await
        .unwrap();
    tx.set_goal_targets(goal.id, &[(d("2025-01-01"), dec("500"))], false)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let tx = db.app.begin_tenant(b).await.unwrap();
    assert!(tx.list_goals(None).await.unwrap().is_empty());
    assert_eq!(tx.goal(goal.id).await.unwrap(), None);
    assert!(tx.goal_targets(&[goal.id]).await.unwrap().is_empty());
    let change = GoalChanges {
        target: Some(dec("1")),
        ..Default::default()
    };
    assert_eq!(tx.update_goal(goal.id, &change).await.unwrap(), None);
    assert_eq!(tx.archive_goal(goal.id).await.unwrap(), None);
    // A target row pointing at another tenant's goal breaks the composite key under RLS.
    assert!(tx
        .set_goal_targets(goal.id, &[(d("2025-02-01"), dec("9"))], false)
        .await
        .is_err());
    drop(tx);

    let tx = db.app.begin_tenant(a).await.unwrap();
    assert_eq!(tx.list_goals(None).await.unwrap(), vec![goal.clone()]);
    assert_eq!(tx.list_goals(Some(ca)).await.unwrap().len(), 1);
    assert!(tx
        .list_goals(Some(Uuid::now_v7()))
        .await
        .unwrap()
        .is_empty());
    let targets = tx.goal_targets(&[goal.id]).await.unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].target, dec("500"));

    // Change: kind, period, target; the name is cleared.
    let change = GoalChanges {
        name: Some(None),
        period: Some(GoalPeriod::Fixed(range("2025-01-01", "2025-06-30"))),
        kind: Some(GoalKind::StayAbove),
        target: Some(dec("1234.5")),
    };
    let (before, after) = tx.update_goal(goal.id, &change).await.unwrap().unwrap();
    assert_eq!(before, goal);
    assert_eq!(after.name, None);
    assert_eq!(after.kind, GoalKind::StayAbove);
    assert_eq!(
        after.period,
        GoalPeriod::Fixed(range("2025-01-01", "2025-06-30"))
    );
    assert_eq!(after.target, dec("1234.5"));

    // A PUT of targets replaces the list.
    tx.set_goal_targets(
        goal.id,
        &[(d("2025-03-01"), dec("7")), (d("2025-04-01"), dec("8"))],
        true,
    )
    .await
    .unwrap();
    let starts: Vec<_> = tx
        .goal_targets(&[goal.id])
        .await
        .unwrap()
        .iter()
        .map(|t| t.period_start)
        .collect();
    assert_eq!(starts, vec![d("2025-03-01"), d("2025-04-01")]);

    assert!(tx.archive_goal(goal.id).await.unwrap().is_some());
    assert!(tx.list_goals(None).await.unwrap().is_empty());
    assert_eq!(tx.goal(goal.id).await.unwrap(), None);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn kpi_actuals_read_each_kind_of_kpi_per_range() {
    let db = TestDb::new().await;
    let t = db.tenant("T").await;
    let (c1, c2) = (client(&db, t, "C1").await, client(&db, t, "C2").await);
    financials(
        &db,
        t,
        c1,
        &[("2025-01-10", "100", "40"), ("2025-02-10", "200", "50")],
    )
    .await;
    financials(&db, t, c2, &[("2025-02-11", "300", "350")]).await;
    exec(
        &db,
        &format!(
            "insert into custom_metrics (tenant_id, client_kpi_id, metric_name, metric_value, record_date) values
                 ('{t}', '{c1}', 'nps', 40, '2025-02-03 01:00Z'), ('{t}', '{c1}', 'nps', 60, '2025-02-04 01:00Z'),
                 ('{t}', '{c2}', 'nps', 20, '2025-02-05 01:00Z'),
                 ('{t}', '{c1}', 'headcount', 10, '2025-02-03 01:00Z'), ('{t}', '{c1}', 'headcount', 12, '2025-02-20 01:00Z');
             insert into metric_definitions (tenant_id, name, display_name, aggregation) values
                 ('{t}', 'nps', 'NPS', 'average'), ('{t}', 'headcount', 'Headcount', 'last');
             insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, value, currency, status) values
                 ('{t}', '{c1}', '2025-02-02 02:00Z', 'L1', 'proposal', 500, 'AUD', 'active'),
                 ('{t}', '{c1}', '2025-02-03 02:00Z', 'L2', 'closed', 50, 'AUD', 'won'),
                 ('{t}', '{c1}', '2025-02-04 02:00Z', 'L3', 'closed', 50, 'AUD', 'lost'),
                 ('{t}', '{c1}', '2025-02-05 02:00Z', 'L4', 'closed', 50, 'AUD', 'won');"
        ),
    )
    .await;
    let jan = range("2025-01-01", "2025-01-31");
    let feb = range("2025-02-01", "2025-02-28");
    let mar = range("2025-03-01", "2025-03-31");
    let tx = db.app.begin_tenant(t).await.unwrap();
    let some = |s: &str| Some(dec(s));

    let revenue = tx
        .kpi_actuals("revenue", None, &[jan, feb, mar])
        .await
        .unwrap();
    assert_eq!(revenue.aggregation, Some(Aggregation::Sum));
    assert_eq!(revenue.values, vec![some("100"), some("500"), None]);
    let expenses = tx.kpi_actuals("expenses", Some(c1), &[feb]).await.unwrap();
    assert_eq!(expenses.values, vec![some("50")]);
    // Margin: a ratio of the range's sums (net 100 of revenue 500), not a sum of ratios.
    let margin = tx.kpi_actuals("margin", None, &[feb, mar]).await.unwrap();
    assert_eq!(margin.aggregation, None);
    assert_eq!(margin.values, vec![some("0.200"), None]);

    // Win rate: 2 won of 3 closed in February; open pipeline: L1 at the end of February.
    let win = tx
        .kpi_actuals("win_rate", Some(c1), &[feb, jan])
        .await
        .unwrap();
    assert_eq!(win.values, vec![some("0.667"), None]);
    let open = tx
        .kpi_actuals("open_pipeline", None, &[feb, jan])
        .await
        .unwrap();
    assert_eq!(open.aggregation, Some(Aggregation::Last));
    assert_eq!(open.values[0], some("500.00"));
    assert_eq!(open.values[1], None);

    // Custom metrics by their definition: the average of every value, tenant-wide or one
    // client's; `last` is the latest day's value.
    let nps = tx.kpi_actuals("nps", None, &[feb, jan]).await.unwrap();
    assert_eq!(nps.aggregation, Some(Aggregation::Average));
    assert_eq!(nps.values, vec![some("40"), None]);
    let nps1 = tx.kpi_actuals("nps", Some(c1), &[feb]).await.unwrap();
    assert_eq!(nps1.values, vec![some("50")]);
    let heads = tx
        .kpi_actuals(
            "headcount",
            Some(c1),
            &[feb, range("2025-02-01", "2025-02-10")],
        )
        .await
        .unwrap();
    assert_eq!(heads.values, vec![some("12"), some("10")]);
    // A client of no tenant of ours: 404, not an empty answer.
    assert!(tx
        .kpi_actuals("revenue", Some(Uuid::now_v7()), &[feb])
        .await
        .is_err());
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn progress_follows_last_years_shape_when_it_exists() {
    let db = TestDb::new().await;
    let t = db.tenant("T").await;
    let (seasonal, fresh) = (client(&db, t, "S").await, client(&db, t, "F").await);
    // Last December: 800 of 1000 by the 15th. This December: 600 by the 15th.
    financials(
        &db,
        t,
        seasonal,
        &[
            ("2024-12-05", "800", "0"),
            ("2024-12-20", "200", "0"),
            ("2025-12-10", "600", "0"),
            // Past months for the history.
            ("2025-10-10", "1200", "0"),
            ("2025-11-10", "900", "0"),
        ],
    )
    .await;
    financials(&db, t, fresh, &[("2025-12-10", "600", "0")]).await;

    let tx = db.app.begin_tenant(t).await.unwrap();
    let mut g = new_goal(
        "revenue",
        Some(seasonal),
        GoalPeriod::Month,
        GoalKind::Reach,
    );
    let with_history = tx.create_goal(&g).await.unwrap();
    g.client_id = Some(fresh);
    let without = tx.create_goal(&g).await.unwrap();
    // November's target is overridden: 900 reaches it.
    tx.set_goal_targets(with_history.id, &[(d("2025-11-01"), dec("900"))], false)
        .await
        .unwrap();
    let targets = tx.goal_targets(&[with_history.id]).await.unwrap();
    let today = d("2025-12-15");

    let p = tx
        .goal_progress(&with_history, &targets, today, 3)
        .await
        .unwrap();
    assert_eq!(p.current.pacing, Pacing::Seasonal);
    assert_eq!(p.current.actual, Some(dec("600")));
    assert_eq!(p.current.expected_to_date, Some(dec("800")));
    assert_eq!(p.current.projected, Some(dec("750")));
    assert_eq!(p.current.status, Some(GoalStatus::OffTrack));
    let history: Vec<_> = p
        .history
        .iter()
        .map(|e| (e.period.from(), e.target, e.status))
        .collect();
    assert_eq!(
        history,
        vec![
            (d("2025-09-01"), dec("1000"), None),
            (d("2025-10-01"), dec("1000"), Some(GoalStatus::Achieved)),
            (d("2025-11-01"), dec("900"), Some(GoalStatus::Achieved)),
        ]
    );

    let p = tx.goal_progress(&without, &[], today, 0).await.unwrap();
    assert_eq!(p.current.pacing, Pacing::Linear);
    assert_eq!(p.current.status, Some(GoalStatus::OnTrack));
    assert!(p.history.is_empty());

    // A margin floor reads the ratio to date: (600 − 0) / 600 = 100 % ≥ 30 %.
    let mut m = new_goal(
        "margin",
        Some(fresh),
        GoalPeriod::Quarter,
        GoalKind::StayAbove,
    );
    m.target = dec("0.3");
    let margin = tx.create_goal(&m).await.unwrap();
    let p = tx.goal_progress(&margin, &[], today, 0).await.unwrap();
    assert_eq!(p.current.pacing, Pacing::ToDate);
    assert_eq!(p.current.actual, Some(dec("1.000")));
    assert_eq!(p.current.status, Some(GoalStatus::OnTrack));
    tx.commit().await.unwrap();
}
