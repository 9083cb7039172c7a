//! Browser tests: the real server on a fresh database, driven in Debian's headless Chromium by
//! `e2e/run.mjs` (playwright-core). Needs Node.js with npm and `/usr/bin/chromium` (or
//! `CHROMIUM_PATH`); `e2e/node_modules` is installed by the test itself (`npm ci --prefix e2e`)
//! when missing. Without Chromium or npm the test fails and says what to install (it never passes
//! by skipping).
//!
//! Only [`pages_work_in_headless_chromium`] runs Node, so two test processes never run `npm ci`
//! on the same directory at once.
//!
//! Screenshots of the main pages land in `target/screenshots/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;
use zixly_domain::password::hash_password;
use zixly_domain::Role;
use zixly_testkit::TestDb;
use zixly_web::{AppState, WebConfig};

const PASSWORD: &str = "correct horse battery staple";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

struct Seeded {
    tenant: Uuid,
    other_client: Uuid,
}

/// Two tenants. The first ("Acme Agency") has an ADMIN and a VIEWER, `clients` clients with daily
/// financials over the last `days` days, a sales pipeline and two custom metrics; the second has
/// one client, whose page the first tenant's users must not see.
async fn seed(db: &TestDb, clients: i32, days: i32) -> Seeded {
    let tenant = db.tenant("Acme Agency").await;
    let other = db.tenant("Other Co").await;
    let hash = hash_password(PASSWORD).expect("hashing");
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    tx.create_user(
        "admin@acme.test",
        Some("Ada Admin"),
        Role::Admin,
        Some(&hash),
    )
    .await
    .unwrap();
    tx.create_user(
        "viewer@acme.test",
        Some("Vic Viewer"),
        Role::Viewer,
        Some(&hash),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // Fixtures in bulk as superuser (bypasses RLS; tenant ids are explicit).
    let su = db.superuser().await;
    // Two unread alert notifications for the ADMIN (e2e/notify.mjs: the top bar's count and the
    // notification centre; the worker that makes them in production does not run here).
    su.batch_execute(
        "insert into notifications (tenant_id, id, user_id, type, message, link, created_at)
         select tenant_id, m.id, users.id, 'alert.firing', m.message, '/clients', now() - m.age
           from users,
                -- explicit ids: the list sorts by (time-ordered) id, and two ids made in the
                -- same millisecond would sort at random
                (values ('01900000-0000-7000-8000-000000000001'::uuid, 'Alert “Pipeline stale” is firing: lead events for all clients, week from 2026-11-23.', interval '1 day'),
                        ('01900000-0000-7000-8000-000000000002'::uuid, 'Alert “Revenue too low” is firing: revenue for Bluegum Bakery, month from 2026-11-01 was 812.5 (threshold 1000).', interval '2 hours')) as m(id, message, age)
          where email = 'admin@acme.test'",
    )
    .await
    .unwrap();
    let names = [
        "Bluegum Bakery",
        "Harbour Legal",
        "Koala Logistics",
        "Summit Dental",
        "Wattle Design",
        "Outback Tours",
        "Coral Fitness",
        "Ironbark Builders",
        "Lyrebird Media",
        "Mallee Farms",
        "Quokka Cafe",
        "Red Centre Realty",
    ];
    for i in 0..clients {
        let name = if (i as usize) < names.len() {
            names[i as usize].to_string()
        } else {
            format!("Client {i:04}")
        };
        su.execute(
            "insert into client_kpis (tenant_id, client_id, client_name, industry) values ($1, $2, $3, $4)",
            &[&tenant, &format!("C-{i:04}"), &name, &(if i % 2 == 0 { "Hospitality" } else { "Professional services" })],
        )
        .await
        .unwrap();
    }
    su.execute(
        "with c as (select tenant_id, id, row_number() over (order by client_id)::int as k from client_kpis where tenant_id = $1),
              v as (select c.tenant_id, c.id, d::date as d,
                           round((600 + (c.k % 7) * 90 + 180 * sin(extract(doy from d) / 58.0) + extract(dow from d) * 25)::numeric, 2) as r,
                           round((420 + (c.k % 5) * 110 + 60 * cos(extract(doy from d) / 41.0))::numeric, 2) as e
                      from c, generate_series(current_date - $2::int, current_date, interval '1 day') d)
         insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow, currency, source_system)
         select tenant_id, id, d, r, e, r - e, round(r * 0.92 - e, 2), 'AUD', 'seed' from v",
        &[&tenant, &days],
    )
    .await
    .unwrap();
    // Records with missing months, for the charts' gaps (e2e/charts.mjs): only the first client
    // ("Bluegum Bakery"), in 2020, on the 10th and 20th of Jan, Feb, Apr, May and Jul.
    su.execute(
        "insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow, currency, source_system)
         select tenant_id, id, make_date(2020, m, d), 400, 150, 250, 200, 'AUD', 'seed'
           from client_kpis, unnest(array[1, 2, 4, 5, 7]) m, unnest(array[10, 20]) d
          where tenant_id = $1 and client_id = 'C-0000'",
        &[&tenant],
    )
    .await
    .unwrap();
    su.execute(
        "with c as (select tenant_id, id, row_number() over (order by client_id)::int as k from client_kpis where tenant_id = $1)
         insert into lead_events (tenant_id, client_kpi_id, event_date, lead_id, stage, value, currency, status, source_system)
         select c.tenant_id, c.id,
                (current_date - 20 - ((l * 23 + c.k * 7) % 330))::timestamp + s.n * interval '4 days' + time '10:00',
                'L-' || c.k || '-' || l, s.stage, 1500 + l * 250, 'AUD',
                (case when s.n = 3 then (case when l % 3 = 0 then 'lost' else 'won' end) else 'active' end)::lead_status, 'seed'
           from c, generate_series(1, 16) l, (values (0, 'Lead'), (1, 'Qualified'), (2, 'Proposal'), (3, 'Closed')) s(n, stage)
          where s.n <= (l % 4)",
        &[&tenant],
    )
    .await
    .unwrap();
    su.execute(
        "with c as (select tenant_id, id, row_number() over (order by client_id)::int as k from client_kpis where tenant_id = $1)
         insert into custom_metrics (tenant_id, client_kpi_id, metric_name, metric_value, unit, record_date, source_system)
         select c.tenant_id, c.id, m.name, round((m.base + c.k * 3 + 8 * sin(g / 7.0))::numeric, 2), m.unit,
                ((current_date - g)::timestamp + time '12:00') at time zone 'Australia/Sydney', 'seed'
           from c, generate_series(0, 400) g, (values ('Billable hours', 'h', 30), ('NPS', null, 40)) m(name, unit, base)",
        &[&tenant],
    )
    .await
    .unwrap();
    // Their catalogue entries, as the loader's first sight (and migration 0012's backfill)
    // would create them: raw SQL bypasses the loader.
    su.execute(
        "insert into metric_definitions (tenant_id, name, display_name, unit)
         select tenant_id, metric_name, zixly_metric_display_name(metric_name), min(unit)
           from custom_metrics where tenant_id = $1 group by tenant_id, metric_name
         on conflict do nothing",
        &[&tenant],
    )
    .await
    .unwrap();
    // Integrations in the states the Integrations page must explain (issue 10): a first Xero
    // sync part-way through (a checkpoint), a HubSpot connection paused by a spent budget.
    // (The tokens are placeholders: the page never decrypts them.)
    su.batch_execute(&format!(
        "insert into integrations (tenant_id, provider, status, access_token, last_sync_at)
              values ('{tenant}', 'XERO', 'ACTIVE', '\\x00', null);
         insert into sync_checkpoints (tenant_id, integration_id, state, stream, pages_read, items_read, items_total, requests)
              select tenant_id, id, '{{}}', 'invoices', 12, 12000, 200000, 14 from integrations
               where tenant_id = '{tenant}' and provider = 'XERO';
         insert into integrations (tenant_id, provider, status, access_token, last_sync_at, paused_until, pause_reason)
              values ('{tenant}', 'HUBSPOT', 'ACTIVE', '\\x00', now() - interval '2 hours',
                      now() + interval '5 hours', 'HubSpot''s daily request budget is spent');"
    ))
    .await
    .unwrap();
    let other_client: Uuid = su
        .query_one(
            "insert into client_kpis (tenant_id, client_id, client_name) values ($1, 'S-1', 'Secret Corp') returning id",
            &[&other],
        )
        .await
        .unwrap()
        .get(0);
    su.execute(
        "insert into financials (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit, cash_flow)
         values ($1, $2, current_date, 999.00, 1.00, 998.00, 998.00)",
        &[&other, &other_client],
    )
    .await
    .unwrap();
    Seeded {
        tenant,
        other_client,
    }
}

/// Serves the application on an ephemeral port; returns its base URL.
async fn serve(db: &TestDb) -> String {
    serve_with(db, |_| {}).await
}

/// [`serve`] with a changed configuration.
async fn serve_with(db: &TestDb, change: impl FnOnce(&mut WebConfig)) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = WebConfig::new(&base).unwrap();
    change(&mut config);
    let state = AppState::new(db.app.clone(), config);
    tokio::spawn(zixly_web::serve(listener, state, std::future::pending()));
    base
}

fn require(what: &str, ok: bool, how: &str) {
    assert!(ok, "browser tests need {what}: {how}");
}

/// Installs `e2e/node_modules` from the lock file (`npm ci`) unless playwright-core is there.
fn ensure_node_modules(e2e: &Path) {
    if e2e
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    let npm = std::process::Command::new("npm").arg("--version").output();
    require(
        "npm (Node.js) to install e2e/node_modules",
        matches!(&npm, Ok(o) if o.status.success()),
        "apt-get install -y nodejs npm",
    );
    let out = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(e2e)
        .output()
        .expect("running npm ci");
    assert!(
        out.status.success(),
        "`npm ci --prefix e2e` failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    require(
        "playwright-core in e2e/node_modules",
        e2e.join("node_modules/playwright-core/package.json")
            .exists(),
        "npm ci --prefix e2e did not install it; check e2e/package-lock.json",
    );
}

/// Sessions of the second server last this long (the session-expiry check waits it out).
const SHORT_SESSION_SECS: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_work_in_headless_chromium() {
    let root = workspace_root();
    let e2e = root.join("e2e");
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    require(
        "Chromium",
        std::path::Path::new(&chromium).exists(),
        "apt-get install -y chromium chromium-driver",
    );
    ensure_node_modules(&e2e);

    let db = TestDb::new().await;
    let seeded = seed(&db, 12, 800).await;
    let base = serve(&db).await;
    // The alert evaluation runs as in `zixly worker` (e2e/alerts.mjs sees a rule fire after an
    // import). Only the evaluation: the notification jobs stay queued, so the seeded
    // notifications of e2e/notify.mjs stay the only ones.
    let mut evaluator = zixly_queue::Worker::new(
        db.system.clone(),
        zixly_queue::WorkerConfig {
            poll_interval: Duration::from_millis(200),
            ..Default::default()
        },
    );
    zixly_alerts::evaluate::register(
        &mut evaluator,
        &zixly_alerts::Services {
            app: db.app.clone(),
            system: db.system.clone(),
            keyring: None,
        },
    );
    tokio::spawn(evaluator.run(std::future::pending()));
    // Same database, sessions that expire after a few seconds (and no cached token outliving
    // them): the session-expiry check logs in here.
    let short_base = serve_with(&db, |c| {
        c.session_ttl = Duration::from_secs(SHORT_SESSION_SECS);
        c.token_cache_ttl = Duration::from_millis(200);
    })
    .await;
    let screenshots = root.join("target/screenshots");
    let cfg = json!({
        "base": base,
        "admin": {"email": "admin@acme.test", "password": PASSWORD},
        "viewer": {"email": "viewer@acme.test", "password": PASSWORD},
        "otherTenantClientId": seeded.other_client,
        "clientName": "Bluegum Bakery",
        "screenshots": screenshots,
        "shortBase": short_base,
        "shortSessionSeconds": SHORT_SESSION_SECS,
    });
    let _ = seeded.tenant;
    let started = Instant::now();
    // e2e/imports.mjs uploads and loads a 500,000-line file (tens of seconds in a debug build).
    let output = tokio::time::timeout(
        Duration::from_secs(480),
        tokio::process::Command::new("node")
            .arg("run.mjs")
            .current_dir(&e2e)
            .env("ZIXLY_E2E", cfg.to_string())
            .env("CHROMIUM_PATH", &chromium)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser run finished within 8 minutes")
    .expect("running node (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "browser checks failed after {:?}:\n{stdout}\n{stderr}",
        started.elapsed()
    );
    assert!(stdout.contains("all browser checks passed"));
    for shot in [
        "login",
        "overview",
        "overview-375",
        "clients",
        "client",
        "reports",
        "imports",
        "team",
        "accept-invitation",
        "integrations",
        "integrations-375",
        "audit",
        "not-found",
        "charts-overview-this-month",
        "charts-overview-12-months",
        "charts-client-gaps",
        "charts-client-weeks",
        "charts-clients",
    ] {
        assert!(
            screenshots.join(format!("{shot}.png")).exists(),
            "screenshot {shot}.png was saved"
        );
    }
}
