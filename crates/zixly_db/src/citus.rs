//! How the schema distributes on Citus (issue 14 item 4; docs/citus.md): which tables are
//! distributed by `tenant_id` (co-located), which are reference tables, which stay on the
//! coordinator, and the DDL that says so (`zixly db citus-ddl`). Read from the catalog, so a new
//! tenant table is covered without editing this file; a new table without `tenant_id` must be
//! classified here deliberately (a catalog test fails until it is).

use crate::bootstrap::connect_one;
use crate::error::{Ctx, DbResult};

/// Tables without a tenant key that every node needs: the tenants themselves (policies and
/// foreign keys of every tenant table point at them), exchange rates (joined by the reports),
/// and the BI login → tenant mapping (read by `zixly_current_tenant()` wherever a BI login's
/// statement runs). Keyed by `role_oid`, `bi_logins` cannot be distributed by tenant.
pub const REFERENCE_TABLES: [&str; 3] = ["tenants", "fx_rates", "bi_logins"];

/// Tables only the coordinator uses: the migration ledger and the login throttle (logins are
/// answered by the coordinator before any tenant is known).
pub const LOCAL_TABLES: [&str; 2] = ["schema_migrations", "login_throttle"];

/// The distribution of the current schema.
#[derive(Debug, Clone, PartialEq)]
pub struct CitusPlan {
    /// The database read (named by the DDL's `alter database`).
    pub database: String,
    pub schema_version: i64,
    pub reference: Vec<String>,
    /// Every tenant table, each after the tables its foreign keys reference (Citus distributes a
    /// table only once what it references is distributed), co-located with the first.
    pub distributed: Vec<String>,
    /// Of `distributed`, the partitioned ones (their partitions follow the parent).
    pub partitioned: Vec<String>,
    pub local: Vec<String>,
    /// Tables in none of the classes above (a new table without `tenant_id`): the DDL refuses to
    /// guess.
    pub unclassified: Vec<String>,
}

/// Reads the plan from the database of `admin_url`.
pub async fn plan(admin_url: &str) -> DbResult<CitusPlan> {
    let client = connect_one(admin_url, "connecting to read the schema for Citus").await?;
    let tables = client
        .query(
            "select c.relname::text, c.relkind = 'p',
                    exists (select 1 from pg_attribute a where a.attrelid = c.oid
                               and a.attname = 'tenant_id' and not a.attisdropped)
               from pg_class c
              where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
                and not c.relispartition
                and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')
              order by 1",
            &[],
        )
        .await
        .ctx("listing tables")?;
    let edges = client
        .query(
            "select con.conrelid::regclass::text, con.confrelid::regclass::text
               from pg_constraint con
              where con.contype = 'f' and con.connamespace = 'public'::regnamespace
                and con.conrelid <> con.confrelid and con.conparentid = 0",
            &[],
        )
        .await
        .ctx("listing foreign keys")?;
    let head = client
        .query_one(
            "select current_database()::text, coalesce(max(version), 0)::int8 from schema_migrations",
            &[],
        )
        .await
        .ctx("reading the schema version")?;
    let mut plan = CitusPlan {
        database: head.get(0),
        schema_version: head.get(1),
        reference: Vec::new(),
        distributed: Vec::new(),
        partitioned: Vec::new(),
        local: Vec::new(),
        unclassified: Vec::new(),
    };
    let mut tenant_tables = Vec::new();
    for r in &tables {
        let (name, partitioned, has_tenant): (String, bool, bool) = (r.get(0), r.get(1), r.get(2));
        if REFERENCE_TABLES.contains(&name.as_str()) {
            plan.reference.push(name);
        } else if LOCAL_TABLES.contains(&name.as_str()) {
            plan.local.push(name);
        } else if has_tenant {
            if partitioned {
                plan.partitioned.push(name.clone());
            }
            tenant_tables.push(name);
        } else {
            plan.unclassified.push(name);
        }
    }
    let edges: Vec<(String, String)> = edges.iter().map(|r| (r.get(0), r.get(1))).collect();
    plan.distributed = referenced_first(tenant_tables, &edges);
    Ok(plan)
}

/// `tables` ordered so that each comes after every table of `tables` it references (by name
/// among the ready ones, so the order is stable). A cycle would leave tables out: they are
/// appended last, in name order, and Citus names the problem when the DDL runs.
fn referenced_first(mut tables: Vec<String>, edges: &[(String, String)]) -> Vec<String> {
    tables.sort();
    let mut ordered: Vec<String> = Vec::with_capacity(tables.len());
    while ordered.len() < tables.len() {
        let next = tables.iter().find(|t| {
            !ordered.contains(t)
                && edges.iter().all(|(from, to)| {
                    from != *t || to == *t || !tables.contains(to) || ordered.contains(to)
                })
        });
        match next {
            Some(t) => ordered.push(t.clone()),
            None => {
                let rest: Vec<String> = tables
                    .iter()
                    .filter(|t| !ordered.contains(t))
                    .cloned()
                    .collect();
                ordered.extend(rest);
            }
        }
    }
    ordered
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl CitusPlan {
    /// The statements that distribute the schema (run once on the coordinator, as a superuser,
    /// after `create extension citus` and adding the workers).
    pub fn ddl(&self) -> String {
        let mut out = format!(
            "-- Zixly on Citus: schema version {}. Generated by `zixly db citus-ddl`; see docs/citus.md.\n\
             -- Run as a superuser on the coordinator after `create extension citus` and\n\
             -- `select citus_add_node(...)` for each worker, before loading data.\n\n\
             -- RLS sets the tenant with SET LOCAL: send it to the workers of the transaction.\n\
             alter database {} set citus.propagate_set_commands = 'local';\n\n\
             -- Reference tables: a copy on every node.\n",
            self.schema_version,
            quote_ident(&self.database)
        );
        for t in &self.reference {
            out.push_str(&format!(
                "select create_reference_table({});\n",
                quote_literal(t)
            ));
        }
        out.push_str(
            "\n-- Tenant tables: distributed by tenant_id, co-located, referenced tables first.\n",
        );
        let mut first: Option<&str> = None;
        for t in &self.distributed {
            match first {
                None => {
                    out.push_str(&format!(
                        "select create_distributed_table({}, 'tenant_id');\n",
                        quote_literal(t)
                    ));
                    first = Some(t);
                }
                Some(with) => out.push_str(&format!(
                    "select create_distributed_table({}, 'tenant_id', colocate_with => {});\n",
                    quote_literal(t),
                    quote_literal(with)
                )),
            }
        }
        if !self.partitioned.is_empty() {
            // UTC months, the bounds Zixly's own partitions use (migrations/0014): Zixly then
            // sees Citus's months as its own and creates only the ones missing.
            out.push_str("\n-- Monthly partitions a year ahead (months in UTC, like Zixly's own).\nset timezone = 'UTC';\n");
            for t in &self.partitioned {
                out.push_str(&format!(
                    "select create_time_partitions(table_name := {}, partition_interval := '1 month', \
                     end_at := now() + interval '12 months');\n",
                    quote_literal(t)
                ));
            }
        }
        if !self.local.is_empty() {
            out.push_str(&format!(
                "\n-- Stay on the coordinator: {}.\n",
                self.local.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referenced_tables_come_first_and_the_order_is_stable() {
        let tables = ["users", "alerts", "alert_rules", "client_kpis", "goals"]
            .map(String::from)
            .to_vec();
        let edges = [
            ("alerts", "alert_rules"),
            ("alerts", "client_kpis"),
            ("alert_rules", "goals"),
            ("goals", "client_kpis"),
            ("users", "tenants"),
            ("goals", "goals"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()));
        assert_eq!(
            referenced_first(tables, &edges),
            ["client_kpis", "goals", "alert_rules", "alerts", "users"]
        );
    }

    #[test]
    fn the_ddl_distributes_co_located_and_quotes_names() {
        let plan = CitusPlan {
            database: "zix\"ly".into(),
            schema_version: 13,
            reference: vec!["tenants".into()],
            distributed: vec!["users".into(), "financials".into()],
            partitioned: vec!["financials".into()],
            local: vec!["schema_migrations".into()],
            unclassified: vec![],
        };
        let ddl = plan.ddl();
        assert!(ddl
            .contains("alter database \"zix\"\"ly\" set citus.propagate_set_commands = 'local';"));
        assert!(ddl.contains("select create_reference_table('tenants');"));
        assert!(ddl.contains("select create_distributed_table('users', 'tenant_id');"));
        assert!(ddl.contains(
            "select create_distributed_table('financials', 'tenant_id', colocate_with => 'users');"
        ));
        assert!(ddl.contains(
            "set timezone = 'UTC';\nselect create_time_partitions(table_name := 'financials'"
        ));
    }
}
