//! `zixly bi-role create|list|drop` as an operator runs them: the printed connection line works,
//! the login sees only its tenant, errors say what to do.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use zixly_testkit::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_zixly");

fn zixly(db: &TestDb, dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", &db.superuser_url)
        .env("ZIXLY_APP_DATABASE_URL", &db.app_url)
        .env("ZIXLY_DATA_DIR", dir.join("unused"))
        .env("ZIXLY_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running zixly");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The libpq key=value string printed after "Connect with:" (`psql "..."`).
fn printed_connection(stdout: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("psql \""))
        .unwrap_or_else(|| panic!("no psql line in {stdout}"));
    line.trim()
        .trim_start_matches("psql \"")
        .trim_end_matches('"')
        .to_string()
}

#[tokio::test]
async fn create_prints_a_working_connection_list_shows_it_drop_removes_it() {
    let db = TestDb::new().await;
    let a = db.tenant("Acme").await;
    let b = db.tenant("Beta").await;
    for (t, c) in [(a, "A"), (b, "B")] {
        db.superuser()
            .await
            .batch_execute(&format!(
                "insert into client_kpis (tenant_id, client_id, client_name) values ('{t}', '{c}', 'Client {c}')"
            ))
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let name = format!("bi_cli_{}", &db.name[2..14]);
    let tenant = a.to_string();

    // Generated password, printed once, with a connection line that works.
    let out = zixly(
        &db,
        dir.path(),
        &["bi-role", "create", &name, "--tenant", &tenant],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("Created BI login {name} for tenant \"Acme\"")),
        "{stdout}"
    );
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Password (shown only now): "))
        .unwrap_or_else(|| panic!("no password in {stdout}"))
        .to_string();
    let conninfo = format!("{} password={password}", printed_connection(&stdout));
    let client = TestDb::connect(&conninfo).await;
    let seen: Vec<String> = client
        .query("select client_id from client_kpis", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seen, ["A"], "the login sees Acme's client only");
    drop(client);

    // The same name again: a clear refusal.
    let out = zixly(
        &db,
        dir.path(),
        &[
            "bi-role",
            "create",
            &name,
            "--tenant",
            &b.to_string(),
            "--password-stdin",
        ],
        Some("another-long-password\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );

    // Bad input is refused before touching the database.
    for (args, stdin, expected, code) in [
        (
            vec!["bi-role", "create", "Bad-Name", "--tenant", tenant.as_str()],
            None,
            "BI role name `Bad-Name`",
            2, // a bad argument
        ),
        (
            vec![
                "bi-role",
                "create",
                "bi_short_pw",
                "--tenant",
                tenant.as_str(),
                "--password-stdin",
            ],
            Some("short\n"),
            "at least 12 characters",
            1, // bad input
        ),
    ] {
        let out = zixly(&db, dir.path(), &args, stdin);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(
            text(&out.stderr).contains(expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = zixly(
        &db,
        dir.path(),
        &[
            "bi-role",
            "create",
            "bi_nobody",
            "--tenant",
            &uuid::Uuid::now_v7().to_string(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no tenant with id"),
        "{}",
        text(&out.stderr)
    );

    // list: table and JSON.
    let out = zixly(&db, dir.path(), &["bi-role", "list"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&name) && l.contains(&tenant) && l.ends_with("Acme")),
        "{listed}"
    );
    let out = zixly(&db, dir.path(), &["bi-role", "list", "--json"], None);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(json[0]["name"], name.as_str());
    assert_eq!(json[0]["tenant_id"], tenant.as_str());

    // drop: gone; dropping it again, or a role that is not a BI login, is refused.
    let out = zixly(&db, dir.path(), &["bi-role", "drop", &name], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        TestDb::try_connect(&conninfo).await.is_err(),
        "the login is gone"
    );
    for target in [name.as_str(), "zixly_app"] {
        let out = zixly(&db, dir.path(), &["bi-role", "drop", target], None);
        assert_eq!(out.status.code(), Some(1), "{target}");
        assert!(
            text(&out.stderr).contains("no BI login named"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[tokio::test]
async fn deleting_a_tenant_drops_its_bi_logins() {
    let db = TestDb::new().await;
    let a = db.tenant("Acme").await.to_string();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("bi_del_{}", &db.name[2..14]);
    let out = zixly(
        &db,
        dir.path(),
        &["bi-role", "create", &name, "--tenant", &a],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = zixly(&db, dir.path(), &["tenant", "delete", &a, "--yes"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("dropped BI login {name}")),
        "{}",
        text(&out.stdout)
    );
    let roles: i64 = db
        .superuser()
        .await
        .query_one("select count(*) from pg_roles where rolname = $1", &[&name])
        .await
        .unwrap()
        .get(0);
    assert_eq!(roles, 0);
}
