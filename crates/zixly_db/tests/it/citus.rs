//! Citus-ready SQL (issue 14 item 4). On Citus, RLS's `tenant_id = zixly_current_tenant()` does
//! not route a statement to one shard — the planner cannot see a setting's value, so it fans out
//! to every shard — while an explicit `tenant_id = $n` does. So every statement of `zixly_db` that
//! reads or changes a tenant table also names its tenant with a bound parameter (RLS stays the
//! guarantee), except the cross-tenant statements of the system path, which say so with the
//! comment `/* cross-tenant */` in their SQL.
//!
//! The check reads the crate's source: each string literal that is a statement (starts with
//! `select`, `with`, `insert`, `update` or `delete`) and names a tenant table after `from`,
//! `join`, `into` or `update` must contain `tenant_id = $n` (or `= any($n)`), or be an insert
//! whose column list has `tenant_id`, or carry the marker. Statements assembled from several
//! literals are checked by the literal that holds the verb, so a fragment cannot hide one. The
//! `bench` SQL (synthetic data, the `bench` feature only) is out of scope.

use std::path::{Path, PathBuf};

use zixly_testkit::TestDb;

use crate::schema::tenant_tables;

/// The string literals of a Rust source file (`"..."` with escapes, `r"..."`, `r#"..."#`), with
/// the line each starts on. Comments are skipped so that SQL quoted in docs is not checked.
fn string_literals(src: &str) -> Vec<(usize, String)> {
    let b = src.as_bytes();
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    while i < b.len() {
        match b[i] {
            b'\n' => line += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'\'' => {
                // A char literal ('"' would open a string otherwise) or a lifetime.
                if b.get(i + 2) == Some(&b'\'') {
                    i += 3;
                    continue;
                }
                if b.get(i + 1) == Some(&b'\\') && b.get(i + 3) == Some(&b'\'') {
                    i += 4;
                    continue;
                }
            }
            b'r' if matches!(b.get(i + 1), Some(b'"') | Some(b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) == Some(&b'"') {
                    let close = format!("\"{}", "#".repeat(hashes));
                    let start = j + 1;
                    let end = src[start..].find(&close).map_or(b.len(), |e| start + e);
                    out.push((line, src[start..end].to_string()));
                    line += src[i..end].matches('\n').count();
                    i = end + close.len();
                    continue;
                }
            }
            b'"' => {
                let start_line = line;
                let mut j = i + 1;
                let mut text = String::new();
                while j < b.len() && b[j] != b'"' {
                    if b[j] == b'\\' {
                        j += 1;
                    }
                    if b.get(j) == Some(&b'\n') {
                        line += 1;
                    }
                    j += 1;
                }
                text.push_str(&src[i + 1..j.min(b.len())]);
                out.push((start_line, text));
                i = j + 1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "bench") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `tenant_id = $n` or `tenant_id = any($n` somewhere in `sql` (lower case, any spacing).
fn binds_the_tenant(sql: &str) -> bool {
    sql.match_indices("tenant_id").any(|(at, _)| {
        let rest = sql[at + "tenant_id".len()..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            return false;
        };
        let rest = rest.trim_start();
        let rest = rest.strip_prefix("any(").unwrap_or(rest).trim_start();
        rest.starts_with('$') && rest[1..].chars().next().is_some_and(|c| c.is_ascii_digit())
    })
}

/// The tenant tables `sql` reads or changes (`from t`, `join t`, `into t`, `update t`).
fn tables_named<'a>(sql: &str, tables: &'a [String]) -> Vec<&'a str> {
    let words: Vec<&str> = sql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut named = Vec::new();
    for pair in words.windows(2) {
        if matches!(pair[0], "from" | "join" | "into" | "update") {
            if let Some(t) = tables.iter().find(|t| t.as_str() == pair[1]) {
                if !named.contains(&t.as_str()) {
                    named.push(t.as_str());
                }
            }
        }
    }
    named
}

/// Why `sql` is not Citus-ready, or `None`.
fn finding(sql: &str, tables: &[String]) -> Option<String> {
    let low = sql.to_lowercase();
    let head = low.trim_start();
    if !["select", "with", "insert", "update", "delete"]
        .iter()
        .any(|verb| head.starts_with(verb))
    {
        return None;
    }
    let named = tables_named(&low, tables);
    if named.is_empty() || low.contains("/* cross-tenant */") || binds_the_tenant(&low) {
        return None;
    }
    if head.starts_with("insert") || low.contains("insert into") {
        // Rows name their tenant in the column list (their values are bound parameters).
        if low.contains("tenant_id") {
            return None;
        }
    }
    Some(format!("{named:?} without tenant_id = $n"))
}

#[test]
fn the_check_tells_routed_statements_from_fanned_out_ones() {
    let tables = vec!["users".to_string(), "jobs".to_string()];
    assert!(finding(
        "select 1 from users where tenant_id = $2 and id = $1",
        &tables
    )
    .is_none());
    assert!(finding(
        "update users u set x = 1 where u.tenant_id=any($1)",
        &tables
    )
    .is_none());
    assert!(finding("insert into users (tenant_id, id) values ($1, $2)", &tables).is_none());
    assert!(finding("delete from jobs /* cross-tenant */ where x", &tables).is_none());
    assert!(finding("select {COLUMNS} from nothing_of_ours", &tables).is_none());
    assert!(
        finding("tenant_id, id from users", &tables).is_none(),
        "a fragment"
    );
    assert!(finding(
        "select * from users where tenant_id = zixly_current_tenant()",
        &tables
    )
    .is_some());
    assert!(finding(
        "select * from jobs j join users u on u.tenant_id = j.tenant_id",
        &tables
    )
    .is_some());
    let lits = string_literals(
        "let a = '\"'; // \"select from users\"\nq(r#\"select \"x\" from users\"#, \"b\\\"c\")",
    );
    assert_eq!(
        lits,
        vec![
            (2, "select \"x\" from users".to_string()),
            (2, "b\\\"c".to_string())
        ]
    );
}

#[tokio::test]
async fn every_tenant_statement_names_its_tenant_with_a_bound_parameter() {
    let db = TestDb::new().await;
    let tables = tenant_tables(&db.superuser().await).await;
    assert!(tables.len() > 10, "tenant tables read from the catalog");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let (mut checked, mut findings) = (0, Vec::new());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line, sql) in string_literals(&text) {
            if tables_named(&sql.to_lowercase(), &tables).is_empty() {
                continue;
            }
            checked += 1;
            if let Some(why) = finding(&sql, &tables) {
                let shown: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
                findings.push(format!(
                    "{}:{line}: {why}: {}",
                    file.strip_prefix(&src).unwrap().display(),
                    shown.chars().take(120).collect::<String>()
                ));
            }
        }
    }
    assert!(
        checked > 100,
        "the scan found the crate's statements ({checked})"
    );
    assert!(
        findings.is_empty(),
        "statements that would fan out to every shard on Citus (bind the tenant: `tenant_id = $n`, \
         or mark a system statement /* cross-tenant */):\n{}",
        findings.join("\n")
    );
}

/// The rules Citus imposes that can be checked without Citus, on the plan `zixly db citus-ddl`
/// prints: every table is classified; every unique key of a distributed table contains
/// `tenant_id` (the distribution column); every foreign key between distributed tables contains
/// it on both sides; a reference or local table references no distributed table; a local table
/// is referenced by nothing (Citus cannot reference a coordinator-only table from a shard).
#[tokio::test]
async fn the_schema_distributes_on_citus_as_planned() {
    let db = TestDb::new().await;
    let plan = zixly_db::citus::plan(&db.superuser_url).await.unwrap();
    assert!(
        plan.unclassified.is_empty(),
        "classify {:?} in zixly_db::citus",
        plan.unclassified
    );
    let client = db.superuser().await;
    let tenant = tenant_tables(&client).await;
    let mut distributed = plan.distributed.clone();
    distributed.sort();
    // Partitions follow their parent (create_distributed_table distributes them with it).
    let partitions: Vec<String> = client
        .query(
            "select c.relname::text from pg_class c
              where c.relnamespace = 'public'::regnamespace and c.relispartition",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        partitions.iter().any(|p| p == "financials_default"),
        "partitions read: {partitions:?}"
    );
    for t in ["financials", "lead_events", "custom_metrics"] {
        assert!(
            plan.partitioned.iter().any(|p| p == t),
            "{t} is partitioned"
        );
    }
    let expected: Vec<String> = tenant
        .into_iter()
        .filter(|t| t != "bi_logins" && !partitions.contains(t))
        .collect();
    assert_eq!(
        distributed, expected,
        "every tenant table is distributed, once"
    );
    for t in ["tenants", "fx_rates", "bi_logins"] {
        assert!(
            plan.reference.iter().any(|r| r == t),
            "{t} is a reference table"
        );
    }

    let keys = client
        .query(
            "select c.conrelid::regclass::text, c.conname::text,
                    exists (select 1 from unnest(c.conkey) k join pg_attribute a
                              on a.attrelid = c.conrelid and a.attnum = k where a.attname = 'tenant_id')
               from pg_constraint c
              where c.connamespace = 'public'::regnamespace and c.contype in ('p', 'u', 'x')
             union all
             select i.indrelid::regclass::text, x.relname::text,
                    exists (select 1 from unnest(i.indkey) k join pg_attribute a
                              on a.attrelid = i.indrelid and a.attnum = k where a.attname = 'tenant_id')
               from pg_index i join pg_class x on x.oid = i.indexrelid
              where i.indisunique and x.relnamespace = 'public'::regnamespace",
            &[],
        )
        .await
        .unwrap();
    for r in &keys {
        let (table, key, has_tenant): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
        if plan.distributed.contains(&table) {
            assert!(
                has_tenant,
                "{table}.{key}: a unique key of a distributed table needs tenant_id"
            );
        }
    }

    let fks = client
        .query(
            "select con.conname::text, con.conrelid::regclass::text, con.confrelid::regclass::text,
                    exists (select 1 from unnest(con.conkey) k join pg_attribute a
                              on a.attrelid = con.conrelid and a.attnum = k where a.attname = 'tenant_id'),
                    exists (select 1 from unnest(con.confkey) k join pg_attribute a
                              on a.attrelid = con.confrelid and a.attnum = k where a.attname = 'tenant_id')
               from pg_constraint con
              where con.contype = 'f' and con.connamespace = 'public'::regnamespace
                -- A partition's copy of its parent's key goes with the parent.
                and con.conparentid = 0",
            &[],
        )
        .await
        .unwrap();
    assert!(fks.len() > 20, "foreign keys read");
    let class = |t: &str| {
        if plan.distributed.iter().any(|d| d == t) {
            "distributed"
        } else if plan.reference.iter().any(|d| d == t) {
            "reference"
        } else {
            "local"
        }
    };
    for r in &fks {
        let (name, from, to, local_tenant, remote_tenant): (String, String, String, bool, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        match (class(&from), class(&to)) {
            ("distributed", "distributed") => assert!(
                local_tenant && remote_tenant,
                "{name}: a foreign key between distributed tables includes tenant_id on both sides"
            ),
            ("distributed", "reference") | ("reference", "reference") => {}
            (a, b) => {
                panic!("{name}: a {a} table ({from}) cannot reference a {b} table ({to}) on Citus")
            }
        }
    }
    let ddl = plan.ddl();
    let users = ddl.find("create_distributed_table('users'").unwrap();
    let tokens = ddl.find("create_distributed_table('auth_tokens'").unwrap();
    assert!(users < tokens, "auth_tokens references users: users first");
}
