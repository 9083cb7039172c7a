//! Changes made from the CLI are in the tenant's audit log like changes made on the web, with the
//! actor `cli:<OS user>`: `tenant create`, `user add`, `import`.

use std::path::Path;
use std::process::{Command, Output};

use zixly_testkit::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_zixly");

fn zixly(db: &TestDb, dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", &db.superuser_url)
        .env("ZIXLY_APP_DATABASE_URL", &db.app_url)
        .env("ZIXLY_DATA_DIR", dir.join("unused"))
        .env("ZIXLY_LOG", "warn")
        .env("USER", "ops-anna")
        .output()
        .expect("running zixly")
}

fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn cli_changes_are_audited_with_the_os_user_as_actor() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let created = ok(&zixly(
        &db,
        dir.path(),
        &[
            "tenant",
            "create",
            "--name",
            "Audited Co",
            "--time-zone",
            "UTC",
        ],
    ));
    let tenant = created.lines().last().unwrap().trim().to_string();
    ok(&zixly(
        &db,
        dir.path(),
        &[
            "user",
            "add",
            "--tenant",
            &tenant,
            "--email",
            "Ann@Audited.example",
            "--role",
            "EDITOR",
        ],
    ));
    let file = dir.path().join("fin.csv");
    std::fs::write(
        &file,
        "client_id,client_name,record_date,revenue,expenses,cash_flow\nC1,One,2024-03-01,10,4,1\n",
    )
    .unwrap();
    ok(&zixly(
        &db,
        dir.path(),
        &[
            "import",
            "financials",
            "--tenant",
            &tenant,
            file.to_str().unwrap(),
        ],
    ));

    let rows = db
        .superuser()
        .await
        .query(
            "select actor_label, actor_user_id is null, action, entity_type, summary::text
               from audit_logs where tenant_id = $1::text::uuid order by occurred_at, id",
            &[&tenant],
        )
        .await
        .unwrap();
    let rows: Vec<(String, bool, String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    let actions: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(
        actions,
        ["tenant.create", "user.create", "import.csv"],
        "{rows:?}"
    );
    for (actor, no_user, ..) in &rows {
        assert_eq!(actor, "cli:ops-anna");
        assert!(no_user, "a CLI change has no acting user");
    }
    assert!(rows[0].4.contains("Audited Co"), "{rows:?}");
    assert!(rows[1].4.contains("ann@audited.example"), "{rows:?}");
    assert!(rows[1].4.contains("EDITOR"), "{rows:?}");
    assert!(rows[2].4.contains("fin.csv"), "{rows:?}");
    // The import's row carries its outcome like an upload's does.
    assert!(rows[2].4.contains("inserted"), "{rows:?}");
}
