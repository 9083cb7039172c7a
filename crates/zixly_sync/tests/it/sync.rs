//! The sync engine end to end: OAuth connect against the fakes, runs through the job queue, data
//! checked in the database (as a superuser, independently of the code under test).

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;
use zixly_connectors::oauth::Pkce;
use zixly_connectors::{http_client, Provider, ProviderConfig};
use zixly_crypto::{generate_key, Keyring};
use zixly_queue::{JobState, Worker, WorkerConfig};
use zixly_sync::engine::{enqueue_sync, SyncConfig, SyncEngine};
use zixly_sync::tokens::{aad, store_new_tokens};
use zixly_testkit::fakes::hubspot::FakeHubspot;
use zixly_testkit::fakes::oauth::Fault;
use zixly_testkit::fakes::xero::FakeXero;
use zixly_testkit::TestDb;

const REDIRECT: &str = "http://zixly.test/api/v1/integrations/callback";

pub(crate) fn config(
    p: Provider,
    id: &str,
    secret: &str,
    auth: String,
    token: String,
    api: &str,
) -> ProviderConfig {
    let n = p.as_str();
    let vars: std::collections::HashMap<String, String> = [
        (format!("ZIXLY_{n}_CLIENT_ID"), id.to_string()),
        (format!("ZIXLY_{n}_CLIENT_SECRET"), secret.to_string()),
        (format!("ZIXLY_{n}_AUTH_URL"), auth),
        (format!("ZIXLY_{n}_TOKEN_URL"), token),
        (format!("ZIXLY_{n}_API_URL"), api.to_string()),
    ]
    .into();
    ProviderConfig::from_vars(p, |k| vars.get(k).cloned())
        .unwrap()
        .unwrap()
}

pub(crate) struct Env {
    pub(crate) db: TestDb,
    pub(crate) tenant: Uuid,
    pub(crate) integration: Uuid,
    pub(crate) engine: SyncEngine,
}

/// Connects `cfg` for a new tenant through the authorize redirect and the code exchange.
pub(crate) async fn connect(cfg: ProviderConfig, settings: serde_json::Value) -> Env {
    connect_with(
        cfg,
        settings,
        SyncConfig {
            max_jitter: std::time::Duration::ZERO,
            ..SyncConfig::default()
        },
    )
    .await
}

/// [`connect`], with the engine configured by `sync_config`.
pub(crate) async fn connect_with(
    cfg: ProviderConfig,
    settings: serde_json::Value,
    sync_config: SyncConfig,
) -> Env {
    let db = TestDb::new().await;
    let tenant = db.tenant("A").await;
    let keyring = Arc::new(Keyring::new(&generate_key(), &[]));
    let pkce = cfg.pkce.then(Pkce::generate);
    let resp = http_client()
        .get(cfg.authorize_url("st", REDIRECT, pkce.as_ref()))
        .send()
        .await
        .unwrap();
    let loc = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = loc
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens = cfg
        .exchange_code(
            &http_client(),
            &code,
            REDIRECT,
            pkce.as_ref().map(|p| &p.verifier),
        )
        .await
        .unwrap();
    let tx = db.app.begin_tenant(tenant).await.unwrap();
    let integration = tx.ensure_integration(cfg.provider.as_str()).await.unwrap();
    tx.set_integration_settings(integration.id, &settings, None)
        .await
        .unwrap();
    store_new_tokens(&tx, &keyring, integration.id, &tokens)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let engine = SyncEngine::new(db.app.clone(), keyring, vec![cfg], sync_config);
    Env {
        db,
        tenant,
        integration: integration.id,
        engine,
    }
}

impl Env {
    /// The stored (access, refresh) tokens in plaintext.
    pub(crate) async fn stored_tokens(&self) -> (String, String) {
        let r = self
            .db
            .superuser()
            .await
            .query_one(
                "select access_token, refresh_token from integrations where id = $1",
                &[&self.integration],
            )
            .await
            .unwrap();
        let k = self.engine.keyring();
        let (t, i) = (self.tenant, self.integration);
        let access = k
            .decrypt_str(&r.get::<_, Vec<u8>>(0), &aad(t, i, "access_token"))
            .unwrap();
        let refresh = k
            .decrypt_str(&r.get::<_, Vec<u8>>(1), &aad(t, i, "refresh_token"))
            .unwrap();
        (access.expose().to_string(), refresh.expose().to_string())
    }

    /// Makes every waiting job due and lets a worker run them.
    pub(crate) async fn run_due_jobs(&self) {
        self.db
            .superuser()
            .await
            .execute(
                "update jobs set scheduled_at = now() where state in ('available', 'retryable')",
                &[],
            )
            .await
            .unwrap();
        let mut worker = Worker::new(self.db.system.clone(), WorkerConfig::default());
        self.engine.register(&mut worker, self.db.system.clone());
        worker.run_until_idle().await.unwrap();
    }

    /// Starts a run and drops it (killed) after `polls` polls (a yield count, not a time), then
    /// runs once to completion.
    pub(crate) async fn run_killed_then_complete(&self, polls: usize) {
        let engine = self.engine.clone();
        let (tenant, id) = (self.tenant, self.integration);
        let mut run = Box::pin(async move { engine.run(tenant, id, true).await });
        let mut n = 0;
        std::future::poll_fn(|cx| {
            n += 1;
            if n > polls {
                return std::task::Poll::Ready(());
            }
            run.as_mut().poll(cx).map(|_| ())
        })
        .await;
        drop(run);
        self.engine
            .run(self.tenant, self.integration, true)
            .await
            .unwrap();
    }

    /// Enqueues a manual sync and lets a worker run every due job; returns the job's state.
    pub(crate) async fn sync_via_queue(&self) -> (JobState, serde_json::Value) {
        let tx = self.db.app.begin_tenant(self.tenant).await.unwrap();
        let job = enqueue_sync(&tx, self.integration).await.unwrap().id();
        tx.commit().await.unwrap();
        let mut worker = Worker::new(self.db.system.clone(), WorkerConfig::default());
        self.engine.register(&mut worker, self.db.system.clone());
        worker.run_until_idle().await.unwrap();
        let j = self.db.system.job(self.tenant, job).await.unwrap().unwrap();
        (j.state, j.errors)
    }

    pub(crate) async fn integration_row(&self) -> (String, Option<String>, i32) {
        let r = self
            .db
            .superuser()
            .await
            .query_one(
                "select status::text, last_error, consecutive_failures from integrations where id = $1",
                &[&self.integration],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    }

    /// `financials` of the source as (client_id, date, revenue, expenses, cash_flow) strings.
    pub(crate) async fn financials(&self) -> Vec<(String, String, String, String, String)> {
        self.financials_of("xero").await
    }

    /// `financials` of `source` as (client_id, date, revenue, expenses, cash_flow) strings.
    pub(crate) async fn financials_of(
        &self,
        source: &str,
    ) -> Vec<(String, String, String, String, String)> {
        self.db
            .superuser()
            .await
            .query(
                "select k.client_id, f.record_date::text, f.revenue::text, f.expenses::text, f.cash_flow::text
                   from financials f join client_kpis k on k.tenant_id = f.tenant_id and k.id = f.client_kpi_id
                  where f.source_system = $1 order by 1, 2",
                &[&source],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect()
    }

    /// The latest sync run's (status, inserted, updated, cursor present).
    pub(crate) async fn last_run(&self) -> (String, i64, i64, bool) {
        let r = self
            .db
            .superuser()
            .await
            .query_one(
                "select status::text, rows_inserted, rows_updated, cursor is not null from sync_runs
                  where integration_id = $1 order by started_at desc, id desc limit 1",
                &[&self.integration],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3))
    }
}

pub(crate) fn f(
    c: &str,
    d: &str,
    rev: &str,
    exp: &str,
    cash: &str,
) -> (String, String, String, String, String) {
    (c.into(), d.into(), rev.into(), exp.into(), cash.into())
}

const JAN10: &str = "/Date(1704844800000+0000)/"; // 2024-01-10
const JAN11: &str = "/Date(1704931200000+0000)/"; // 2024-01-11

async fn xero() -> (FakeXero, Env) {
    let fake = FakeXero::start().await;
    let cfg = config(
        Provider::Xero,
        zixly_testkit::fakes::xero::CLIENT_ID,
        zixly_testkit::fakes::xero::CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.url,
    );
    fake.upsert(
        "Contacts",
        "ContactID",
        json!({"ContactID": "c1", "Name": "Acme Pty", "ContactStatus": "ACTIVE"}),
    );
    fake.upsert(
        "Contacts",
        "ContactID",
        json!({"ContactID": "c2", "Name": "Beta Ltd", "ContactStatus": "ACTIVE"}),
    );
    fake.upsert(
        "Invoices",
        "InvoiceID",
        json!({"InvoiceID": "i1", "Type": "ACCREC", "Status": "PAID",
        "Contact": {"ContactID": "c1"}, "Date": JAN10, "SubTotal": 100.0}),
    );
    fake.upsert("Invoices", "InvoiceID", json!({"InvoiceID": "i2", "Type": "ACCREC", "Status": "AUTHORISED",
        "Contact": {"ContactID": "c1"}, "Date": JAN10, "SubTotal": 50.5, "CurrencyCode": "USD", "CurrencyRate": 0.5}));
    fake.upsert(
        "Invoices",
        "InvoiceID",
        json!({"InvoiceID": "b1", "Type": "ACCPAY", "Status": "AUTHORISED",
        "Contact": {"ContactID": "supplier"}, "Date": JAN10, "LineAmountTypes": "Exclusive",
        "LineItems": [{"LineAmount": 30, "Tracking": [{"Name": "Client", "Option": "Acme Pty"}]}]}),
    );
    fake.upsert(
        "Invoices",
        "InvoiceID",
        json!({"InvoiceID": "i3", "Type": "ACCREC", "Status": "DRAFT",
        "Contact": {"ContactID": "c2"}, "Date": JAN10, "SubTotal": 999}),
    );
    fake.upsert(
        "Payments",
        "PaymentID",
        json!({"PaymentID": "p1", "Status": "AUTHORISED", "Date": JAN11, "Amount": 100,
        "Invoice": {"InvoiceID": "i1", "Type": "ACCREC", "Contact": {"ContactID": "c1"}}}),
    );
    let env = connect(cfg, json!({})).await;
    (fake, env)
}

#[tokio::test]
async fn xero_full_incremental_voids_and_no_change_runs() {
    let (fake, env) = xero().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    // i1 100 + i2 50.50 USD at 0.5 = 101.00; the bill's Client-tracked line 30; the draft counts nothing.
    let full = vec![
        f("c1", "2024-01-10", "201.00", "30.00", "0.00"),
        f("c1", "2024-01-11", "0.00", "0.00", "100.00"),
    ];
    assert_eq!(env.financials().await, full);
    assert_eq!(env.last_run().await, ("succeeded".into(), 2, 0, true));
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));

    // No change at the provider: the run writes nothing.
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(env.last_run().await, ("succeeded".into(), 0, 0, true));
    assert_eq!(env.financials().await, full);

    // Incremental: only documents changed since the cursor come back (If-Modified-Since).
    fake.tick(chrono::Duration::hours(1));
    fake.upsert("Invoices", "InvoiceID", json!({"InvoiceID": "i2", "Type": "ACCREC", "Status": "VOIDED",
        "Contact": {"ContactID": "c1"}, "Date": JAN10, "SubTotal": 50.5, "CurrencyCode": "USD", "CurrencyRate": 0.5}));
    fake.upsert(
        "Invoices",
        "InvoiceID",
        json!({"InvoiceID": "i4", "Type": "ACCREC", "Status": "AUTHORISED",
        "Contact": {"ContactID": "c2"}, "Date": JAN11, "SubTotal": 10}),
    );
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        env.financials().await,
        vec![
            f("c1", "2024-01-10", "100.00", "30.00", "0.00"),
            f("c1", "2024-01-11", "0.00", "0.00", "100.00"),
            f("c2", "2024-01-11", "10.00", "0.00", "0.00"),
        ]
    );
    assert_eq!(env.last_run().await, ("succeeded".into(), 1, 1, true));

    // Deleting/voiding everything of a day removes the day; a moved document moves its amount.
    fake.tick(chrono::Duration::hours(1));
    fake.upsert(
        "Payments",
        "PaymentID",
        json!({"PaymentID": "p1", "Status": "DELETED", "Date": JAN11, "Amount": 100,
        "Invoice": {"InvoiceID": "i1", "Type": "ACCREC", "Contact": {"ContactID": "c1"}}}),
    );
    fake.upsert(
        "Invoices",
        "InvoiceID",
        json!({"InvoiceID": "i4", "Type": "ACCREC", "Status": "AUTHORISED",
        "Contact": {"ContactID": "c2"}, "Date": JAN10, "SubTotal": 10}),
    );
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        env.financials().await,
        vec![
            f("c1", "2024-01-10", "100.00", "30.00", "0.00"),
            f("c2", "2024-01-10", "10.00", "0.00", "0.00")
        ]
    );
}

#[tokio::test]
async fn xero_bank_transactions_add_expenses_and_cash_and_a_void_removes_them() {
    let (fake, env) = xero().await;
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    let full = vec![
        f("c1", "2024-01-10", "201.00", "30.00", "0.00"),
        f("c1", "2024-01-11", "0.00", "0.00", "100.00"),
    ];
    assert_eq!(env.financials().await, full);

    // Spend money tracked to Acme (its id deliberately equal to invoice i1's: the stored
    // document ids must not collide) and receive money from Beta, read incrementally.
    fake.tick(chrono::Duration::hours(1));
    let spend = |status: &str| {
        json!({"BankTransactionID": "i1", "Type": "SPEND", "Status": status,
        "Contact": {"ContactID": "supplier"}, "Date": JAN10, "LineAmountTypes": "Exclusive",
        "LineItems": [{"LineAmount": 20, "TaxAmount": 2, "Tracking": [{"Name": "Client", "Option": "Acme Pty"}]},
                      {"LineAmount": 99, "TaxAmount": 0}]})
    };
    fake.upsert("BankTransactions", "BankTransactionID", spend("AUTHORISED"));
    fake.upsert(
        "BankTransactions",
        "BankTransactionID",
        json!({"BankTransactionID": "bt-r", "Type": "RECEIVE", "Status": "AUTHORISED",
        "Contact": {"ContactID": "c2"}, "Date": JAN11, "LineAmountTypes": "NoTax",
        "LineItems": [{"LineAmount": 50}]}),
    );
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        env.financials().await,
        vec![
            // Revenue untouched; the tracked line's 20 ex-tax is an expense, 22 left the bank.
            f("c1", "2024-01-10", "201.00", "50.00", "-22.00"),
            f("c1", "2024-01-11", "0.00", "0.00", "100.00"),
            f("c2", "2024-01-11", "0.00", "0.00", "50.00"),
        ]
    );

    // Voided spend and deleted receipt: what they contributed is removed, the emptied day too.
    fake.tick(chrono::Duration::hours(1));
    fake.upsert("BankTransactions", "BankTransactionID", spend("VOIDED"));
    fake.upsert(
        "BankTransactions",
        "BankTransactionID",
        json!({"BankTransactionID": "bt-r", "Type": "RECEIVE", "Status": "DELETED",
        "Contact": {"ContactID": "c2"}, "Date": JAN11, "LineAmountTypes": "NoTax",
        "LineItems": [{"LineAmount": 50}]}),
    );
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(env.financials().await, full);

    // A payment on bill b1 (tracked to Acme, supplier contact), read without its bill: the bill
    // is fetched by id and the payment is Acme's cash out, not the supplier's.
    fake.tick(chrono::Duration::hours(1));
    fake.upsert(
        "Payments",
        "PaymentID",
        json!({"PaymentID": "p-b1", "Status": "AUTHORISED", "Date": JAN11, "Amount": 30,
        "Invoice": {"InvoiceID": "b1", "Type": "ACCPAY", "Contact": {"ContactID": "supplier"}}}),
    );
    let calls = fake.oauth.api_calls();
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        fake.oauth.api_calls() - calls,
        8,
        "connections, organisation, contacts, invoices, credit notes, payments, bank transactions, the bill by id"
    );
    assert_eq!(
        env.financials().await,
        vec![
            f("c1", "2024-01-10", "201.00", "30.00", "0.00"),
            f("c1", "2024-01-11", "0.00", "0.00", "70.00"),
        ]
    );
}

#[tokio::test]
async fn xero_token_expiring_mid_sync_is_refreshed_once_and_the_run_completes() {
    let (fake, env) = xero().await;
    fake.oauth.expire_access_tokens();
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(fake.oauth.refreshes(), 1);
    assert_eq!(env.financials().await.len(), 2);
    assert_eq!(env.integration_row().await.0, "ACTIVE");
}

#[tokio::test]
async fn rate_limits_snooze_without_counting_a_failure() {
    let (fake, env) = xero().await;
    fake.oauth.inject(Fault::RateLimited { retry_after: 7 });
    let (state, _) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Retryable, "snoozed for Retry-After");
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
    let r = env
        .db
        .superuser()
        .await
        .query_one(
            "select attempt, scheduled_at > now() + interval '5 seconds' from jobs where kind = 'sync'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.get::<_, i32>(0), r.get::<_, bool>(1)),
        (0, true),
        "not counted, waits ~7 s"
    );
    // Due again: completes.
    env.db
        .superuser()
        .await
        .execute("update jobs set scheduled_at = now()", &[])
        .await
        .unwrap();
    let mut worker = Worker::new(env.db.system.clone(), WorkerConfig::default());
    env.engine.register(&mut worker, env.db.system.clone());
    worker.run_until_idle().await.unwrap();
    assert_eq!(env.financials().await.len(), 2);
}

#[tokio::test]
async fn repeated_transient_failures_end_in_error_with_a_readable_reason() {
    let (fake, env) = xero().await;
    for _ in 0..3 {
        fake.oauth.inject(Fault::Status(503));
    }
    assert_eq!(env.sync_via_queue().await.0, JobState::Retryable);
    let mut worker = Worker::new(env.db.system.clone(), WorkerConfig::default());
    env.engine.register(&mut worker, env.db.system.clone());
    for _ in 0..2 {
        env.db
            .superuser()
            .await
            .execute(
                "update jobs set scheduled_at = now() where state = 'retryable'",
                &[],
            )
            .await
            .unwrap();
        worker.run_until_idle().await.unwrap();
    }
    let (status, error, failures) = env.integration_row().await;
    assert_eq!((status.as_str(), failures), ("ERROR", 3));
    assert!(error.unwrap().contains("HTTP 503"));
    let state: String = env
        .db
        .superuser()
        .await
        .query_one("select state from jobs where kind = 'sync'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "discarded");
    // A scheduled run skips an integration in ERROR; a manual one (after the fix) recovers it.
    assert!(env
        .engine
        .run(env.tenant, env.integration, false)
        .await
        .unwrap()
        .not_run
        .is_some());
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
}

#[tokio::test]
async fn a_revoked_grant_is_a_permanent_error_without_secrets() {
    let (fake, env) = xero().await;
    fake.oauth.expire_access_tokens();
    fake.oauth.revoke_refresh_tokens();
    let (state, errors) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Discarded);
    let (status, error, _) = env.integration_row().await;
    assert_eq!(status, "ERROR");
    let error = error.unwrap();
    assert!(error.contains("invalid_grant"), "{error}");
    assert!(
        !error.contains("at-") && !error.contains("rt-"),
        "no token in {error}"
    );
    assert!(
        !errors.to_string().contains("rt-"),
        "no token in the job errors"
    );
}

#[tokio::test]
async fn the_scheduler_enqueues_active_due_integrations_once_and_skips_disabled() {
    let (_fake, env) = xero().await;
    assert_eq!(env.engine.schedule_due(&env.db.system).await.unwrap(), 1);
    assert_eq!(
        env.engine.schedule_due(&env.db.system).await.unwrap(),
        0,
        "one live job per integration"
    );
    let mut worker = Worker::new(env.db.system.clone(), WorkerConfig::default());
    env.engine.register(&mut worker, env.db.system.clone());
    worker.run_until_idle().await.unwrap();
    assert_eq!(env.financials().await.len(), 2);
    assert_eq!(
        env.engine.schedule_due(&env.db.system).await.unwrap(),
        0,
        "synced within its interval"
    );
    let su = env.db.superuser().await;
    su.execute(
        "update integrations set last_sync_at = now() - interval '2 hours'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        env.engine.schedule_due(&env.db.system).await.unwrap(),
        1,
        "due again after its interval"
    );
    su.execute("delete from jobs where kind = 'sync'", &[])
        .await
        .unwrap();
    su.execute("update integrations set status = 'DISABLED'", &[])
        .await
        .unwrap();
    assert_eq!(env.engine.schedule_due(&env.db.system).await.unwrap(), 0);
}

#[tokio::test]
async fn a_run_killed_at_any_point_then_restarted_converges() {
    let (fake, env) = xero().await;
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    let expected_after_change = vec![
        f("c1", "2024-01-10", "101.00", "30.00", "0.00"),
        f("c2", "2024-01-11", "7.00", "0.00", "0.00"),
    ];
    fake.tick(chrono::Duration::hours(1));
    fake.upsert(
        "Invoices",
        "InvoiceID",
        json!({"InvoiceID": "i1", "Type": "ACCREC", "Status": "VOIDED",
        "Contact": {"ContactID": "c1"}, "Date": JAN10, "SubTotal": 100.0}),
    );
    fake.upsert(
        "Payments",
        "PaymentID",
        json!({"PaymentID": "p1", "Status": "DELETED", "Date": JAN11, "Amount": 100,
        "Invoice": {"InvoiceID": "i1", "Type": "ACCREC", "Contact": {"ContactID": "c1"}}}),
    );
    fake.upsert(
        "Invoices",
        "InvoiceID",
        json!({"InvoiceID": "i5", "Type": "ACCREC", "Status": "AUTHORISED",
        "Contact": {"ContactID": "c2"}, "Date": JAN11, "SubTotal": 7}),
    );
    // Kill runs at increasing points (a yield count, not a time): whatever each one left
    // committed, the next complete run converges to the same data.
    for polls in [1usize, 3, 8, 20, 50, 120] {
        let engine = env.engine.clone();
        let (tenant, id) = (env.tenant, env.integration);
        let mut run = Box::pin(async move { engine.run(tenant, id, true).await });
        let mut n = 0;
        std::future::poll_fn(|cx| {
            n += 1;
            if n > polls {
                return std::task::Poll::Ready(());
            }
            match run.as_mut().poll(cx) {
                std::task::Poll::Ready(_) => std::task::Poll::Ready(()),
                std::task::Poll::Pending => std::task::Poll::Pending,
            }
        })
        .await;
        drop(run); // killed
        env.engine
            .run(env.tenant, env.integration, true)
            .await
            .unwrap();
        assert_eq!(
            env.financials().await,
            expected_after_change,
            "killed after {polls} polls"
        );
    }
}

use std::future::Future;

/// (lead events, won events, distinct leads) of HubSpot.
async fn lead_counts(env: &Env) -> (i64, i64, i64) {
    let r = env
        .db
        .superuser()
        .await
        .query_one(
            "select count(*), count(*) filter (where status = 'won'), count(distinct lead_id) from lead_events where source_system = 'hubspot'",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

#[tokio::test]
async fn hubspot_full_sync_archived_deals_expiry_and_no_change_runs() {
    let fake = FakeHubspot::start().await;
    let cfg = config(
        Provider::Hubspot,
        zixly_testkit::fakes::hubspot::CLIENT_ID,
        zixly_testkit::fakes::hubspot::CLIENT_SECRET,
        fake.auth_url(),
        fake.token_url(),
        &fake.url,
    );
    fake.data.lock().unwrap().pipelines = vec![
        json!({"id": "default", "label": "Sales", "displayOrder": 0, "archived": false,
        "stages": [{"id": "s1", "label": "Qualified", "displayOrder": 0, "metadata": {"probability": "0.2", "isClosed": "false"}},
                   {"id": "won", "label": "Closed won", "displayOrder": 1, "metadata": {"probability": "1.0", "isClosed": "true"}}]}),
    ];
    fake.add(
        "companies",
        json!({"id": "co-1", "properties": {"name": "Acme"}, "archived": false}),
    );
    let deal = |id: &str, archived: bool, stages: &[(&str, &str)]| {
        let history: Vec<_> = stages
            .iter()
            .map(|(s, t)| json!({"value": s, "timestamp": t, "sourceType": "CRM_UI"}))
            .collect();
        let last = stages.last().unwrap().0;
        json!({"id": id, "archived": archived,
            "properties": {"amount": "100.25", "dealstage": last, "pipeline": "default", "hs_is_closed": (last == "won").to_string(),
                           "hs_is_closed_won": (last == "won").to_string(), "hs_lastmodifieddate": "2024-01-02T00:00:00.000Z"},
            "propertiesWithHistory": {"dealstage": history},
            "associations": {"companies": {"results": [{"id": "co-1", "type": "deal_to_company"}]}},
            "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-02T00:00:00.000Z"})
    };
    let two = [
        ("s1", "2024-01-01T00:00:00.000Z"),
        ("won", "2024-01-02T00:00:00.000Z"),
    ];
    for i in 0..60 {
        fake.add("deals", deal(&i.to_string(), false, &two));
    }
    let env = connect(cfg, json!({})).await;
    fake.oauth.expire_access_tokens(); // expires before the first call: the EXPIRED_AUTHENTICATION 401
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(fake.oauth.refreshes(), 1);
    assert_eq!(lead_counts(&env).await, (120, 60, 60));
    // Committed page by page (50 deals a page) into one run row, which has every page's counts;
    // the last page's load carries the cursor.
    assert_eq!(env.last_run().await, ("succeeded".into(), 120, 0, true));

    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        env.last_run().await,
        ("succeeded".into(), 0, 0, true),
        "no change, nothing written"
    );

    // One deal edited (HubSpot bumps its hs_lastmodifieddate): the increment finds it by search
    // and reads only that deal, not the live listing.
    fake.data.lock().unwrap().requests.clear();
    let mut edited = deal("5", false, &two);
    edited["properties"]["amount"] = json!("250");
    fake.modify("deals", edited);
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert!(fake.requests("POST /crm/v3/objects/deals/search") >= 1);
    assert_eq!(
        fake.requests("GET /crm/v3/objects/deals"),
        0,
        "no live listing"
    );
    assert_eq!(
        fake.requests_starting("GET /crm/v3/objects/deals/"),
        vec!["GET /crm/v3/objects/deals/5".to_string()]
    );
    assert_eq!(env.last_run().await, ("succeeded".into(), 0, 2, true));
    let values: Vec<(String, String)> = env
        .db
        .superuser()
        .await
        .query(
            "select lead_id, value::text from lead_events where source_system = 'hubspot' and lead_id in ('4', '5') order by lead_id, event_date",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let v = |l: &str, x: &str| (l.to_string(), x.to_string());
    assert_eq!(
        values,
        vec![
            v("4", "100.25"),
            v("4", "100.25"),
            v("5", "250.00"),
            v("5", "250.00")
        ]
    );
    assert_eq!(lead_counts(&env).await, (120, 60, 60));
    assert_eq!(env.sync_via_queue().await.0, JobState::Completed);
    assert_eq!(
        env.last_run().await,
        ("succeeded".into(), 0, 0, true),
        "no change since the increment, nothing written"
    );

    // Archived deals (not visible through hs_lastmodifieddate) and a stage entry that vanished.
    fake.add("deals", deal("0", true, &two));
    fake.modify(
        "deals",
        deal("1", false, &[("s1", "2024-01-01T00:00:00.000Z")]),
    );
    fake.oauth.inject(Fault::RateLimited { retry_after: 1 });
    assert_eq!(
        env.sync_via_queue().await.0,
        JobState::Retryable,
        "429 snoozes"
    );
    env.db
        .superuser()
        .await
        .execute("update jobs set scheduled_at = now()", &[])
        .await
        .unwrap();
    let mut worker = Worker::new(env.db.system.clone(), WorkerConfig::default());
    env.engine.register(&mut worker, env.db.system.clone());
    worker.run_until_idle().await.unwrap();
    assert_eq!(lead_counts(&env).await, (117, 58, 59));
    assert_eq!(env.integration_row().await, ("ACTIVE".into(), None, 0));
}

/// `If-Modified-Since` and `xero-tenant-id` of the accounting list requests the fake recorded.
fn xero_list_requests(fake: &FakeXero) -> Vec<(Option<String>, String)> {
    zixly_testkit::fakes::recorded(&fake.url)
        .iter()
        .filter(|r| r.path.starts_with("/api.xro/2.0/") && r.path != "/api.xro/2.0/Organisation")
        .map(|r| {
            let h = |name: &str| {
                r.headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            (
                h("if-modified-since"),
                h("xero-tenant-id").unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_cursor_is_used_only_for_the_organisation_it_was_read_from() {
    let (fake, env) = xero().await;
    fake.set_organisations(&[("org-a", "A"), ("org-b", "B")]);
    let set_org = |org: &'static str| {
        let env = &env;
        async move {
            let tx = env.db.app.begin_tenant(env.tenant).await.unwrap();
            let mut m = serde_json::Map::new();
            m.insert("xero_tenant_id".into(), json!(org));
            tx.merge_integration_settings(env.integration, &m)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    };
    // None chosen among two: a readable ERROR for the ADMIN.
    let (state, _) = env.sync_via_queue().await;
    assert_eq!(state, JobState::Discarded);
    let (status, error, _) = env.integration_row().await;
    assert_eq!(status, "ERROR");
    assert!(
        error.unwrap().contains("pick one on the Integrations page"),
        "the error says where to choose"
    );

    set_org("org-a").await;
    zixly_testkit::fakes::clear_recorded(&fake.url);
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    let first = xero_list_requests(&fake);
    assert!(
        first
            .iter()
            .all(|(since, org)| since.is_none() && org == "org-a"),
        "{first:?}"
    );
    // The next run of the same organisation is incremental.
    zixly_testkit::fakes::clear_recorded(&fake.url);
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    let second = xero_list_requests(&fake);
    assert!(
        second
            .iter()
            .any(|(since, org)| since.is_some() && org == "org-a"),
        "{second:?}"
    );
    // Another organisation chosen: read in full, with its own header.
    set_org("org-b").await;
    zixly_testkit::fakes::clear_recorded(&fake.url);
    env.engine
        .run(env.tenant, env.integration, true)
        .await
        .unwrap();
    let third = xero_list_requests(&fake);
    assert!(!third.is_empty());
    assert!(
        third
            .iter()
            .all(|(since, org)| since.is_none() && org == "org-b"),
        "{third:?}"
    );
}
