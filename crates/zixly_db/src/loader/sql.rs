//! The loader's SQL, per dataset. Staging tables share a prefix
//! (`line, client_id, client_name, industry, currency, fx_date`): `currency`/`fx_date` are the
//! amount's currency and the date its exchange rate is needed for (NULL: no amount to convert).

use tokio_postgres::types::Type;

#[doc(hidden)]
pub struct DatasetSql {
    pub(crate) create_staging: &'static str,
    pub(crate) copy: &'static str,
    pub(crate) copy_types: &'static [Type],
    pub(crate) checks_prepare: &'static str,
    /// Drops every row that repeats an earlier line's row exactly (one row out: the number of
    /// duplicated keys, and of rows dropped).
    pub(crate) collapse_exact_duplicates: &'static str,
    pub(crate) find_duplicates: &'static str,
    /// Writes the staged rows ($1 = tenant). Answers one row: inserted, updated and (for a
    /// single statement) rows kept out by the tenant's retention.
    pub(crate) upsert: &'static str,
    pub(crate) upsert_context: &'static str,
    /// `Some(pages)`: the upsert runs as one statement per `pages` heap pages of the staging
    /// table (`$2`, `$3`: the first page and the page after the last), all in the load's one
    /// transaction. For tables whose rollup triggers join the statement's rows with each other
    /// (`lead_events`: migrations/0016, 0018), so that a statement's size, and with it the
    /// triggers' plans and memory, stays bounded whatever the file's size. `None`: one statement.
    pub(crate) upsert_chunk_pages: Option<i64>,
    /// Run after `upsert`, in its transaction: records what the rows need beside themselves (the
    /// metric catalogue's first sight of a name).
    pub(crate) after_upsert: Option<(&'static str, &'static str)>,
    /// The monthly-partitioned table the upsert writes (migrations/0014_partitions.sql).
    pub(crate) table: &'static str,
    /// The months of the staged rows that have no partition of `table` yet ($1 = `table`): the
    /// loader creates them before the upsert, so no row lands in the default partition.
    pub(crate) missing_months: &'static str,
}

/// `missing_months` of a dataset whose partition column in the staging table is `$month`
/// (a month in UTC: the partitions' bounds).
macro_rules! missing_months {
    ($month:literal) => {
        concat!(
            "select zixly_missing_month_partitions($1, coalesce(array_agg(m), '{}'))
               from (select distinct ",
            $month,
            " as m from zixly_stage) s"
        )
    };
}

/// Creates the partitions of the months given ($2) of `$1`, in the caller's own (autocommit)
/// transaction: idempotent and race-safe (migrations/0014_partitions.sql).
pub(crate) const CREATE_MONTH_PARTITIONS: &str = "select zixly_create_month_partitions($1, $2)";

macro_rules! staging {
    ($cols:literal) => {
        concat!(
            "set local work_mem = '64MB';
             create temp table zixly_stage (
                 line bigint not null, client_id text not null, client_name text, industry text,
                 currency text, fx_date date, ",
            $cols,
            ") on commit drop;
             create temp table zixly_rejects (line bigint not null, col text, reason text not null) on commit drop;"
        )
    };
}

/// Deletes the rows of a duplicated key that repeat an earlier line exactly (every staged column
/// but `line` equal; `partition by` treats NULLs as equal, as "the same row" needs). Answers the
/// number of duplicated keys and of deleted rows. Only the rows of duplicated keys (a hash
/// aggregate) are sorted, not the whole input; with no duplicated key the loader skips the
/// duplicate-key check, so a file without duplicates pays for one aggregate, as before.
macro_rules! collapse {
    ($key:literal, $cols:literal) => {
        concat!(
            "with dup_keys as (select ",
            $key,
            " from zixly_stage group by ",
            $key,
            " having count(*) > 1),
                  ranked as (select s.line, row_number() over (partition by ",
            $cols,
            " order by s.line) as n
                               from zixly_stage s join dup_keys using (",
            $key,
            ")),
                  gone as (delete from zixly_stage s using ranked r where s.line = r.line and r.n > 1
                           returning s.line)
             select (select count(*) from dup_keys), (select count(*) from gone)"
        )
    };
}

/// Rejects every row of a key that occurs more than once. Keys are found with a hash aggregate
/// (no sort of the whole input); line lists are built only for the duplicated keys, and name at
/// most 10 other lines (then "and N more"): a key repeated on every line must not make each of
/// its errors as long as the file.
macro_rules! duplicates {
    ($key:literal, $fmt:literal, $args:literal) => {
        concat!(
            "with dup_keys as (select ",
            $key,
            " from zixly_stage group by ",
            $key,
            " having count(*) > 1),
                  dup_rows as (select s.* from zixly_stage s join dup_keys using (",
            $key,
            ")),
                  grouped as (select ",
            $key,
            ", (array_agg(line order by line))[1:11] as lines, count(*) as n from dup_rows group by ",
            $key,
            ")
             insert into zixly_rejects (line, col, reason)
             select r.line, null,
                    format('duplicate key (",
            $key,
            ") = (",
            $fmt,
            "): also on line %s; every row of a duplicated key is rejected', ",
            $args,
            ", array_to_string((array_remove(g.lines, r.line))[1:10], ', ')
                      || case when g.n > 11 then format(' and %s more', g.n - 11) else '' end)
               from dup_rows r join grouped g using (",
            $key,
            ")"
        )
    };
}

/// Rows whose currency has no rate to the base currency ($1) for their date. The rate is looked up
/// once per distinct (currency, date): `offset 0` keeps the planner from pushing the lookup below
/// the `distinct` (it would then run once per staged row).
pub(crate) const FIND_MISSING_RATES: &str = "
    insert into zixly_rejects (line, col, reason)
    select s.line, 'currency',
           format('no exchange rate from %s to %s (the tenant''s base currency) on %s or in the 7 days before; '
                  'import rates with `zixly fx import`', s.currency, $1::text, s.fx_date)
      from zixly_stage s
      join (select currency, fx_date
              from (select distinct currency, fx_date from zixly_stage
                     where fx_date is not null and currency <> $1::text
                    offset 0) needed
             where zixly_fx_rate(currency::bpchar, $1::text::bpchar, fx_date) is null) missing
     using (currency, fx_date)";

/// After the client upsert ($1 = clients inserted): fresh client_kpis statistics when the load
/// added many clients, so that the per-row foreign-key checks of the upsert probe the primary key
/// (migrations/0006_loader_stats.sql).
pub(crate) const REFRESH_CLIENT_STATS: &str = "select zixly_refresh_client_stats($1)";

pub(crate) const LIST_REJECTS: &str =
    "select line, col, reason from zixly_rejects order by line, col nulls first, reason";

pub(crate) const DROP_REJECTED: &str =
    "delete from zixly_stage s using (select distinct line from zixly_rejects) r where s.line = r.line";

/// Clients by (tenant_id, client_id), $1 = tenant. Name and industry come from the last line that
/// gives them; a client without a name in the input keeps its name (a new one is named by its id).
pub(crate) const UPSERT_CLIENTS: &str = "
    with g as (
        select client_id,
               max(line) filter (where client_name is not null) as name_line,
               max(line) filter (where industry is not null) as industry_line
          from zixly_stage group by client_id
    ), given as (
        select g.client_id, n.client_name, i.industry
          from g left join zixly_stage n on n.line = g.name_line
                 left join zixly_stage i on i.line = g.industry_line
    ), up as (
        insert into client_kpis as c (tenant_id, client_id, client_name, industry)
        select $1, given.client_id,
               coalesce(given.client_name,
                        (select e.client_name from client_kpis e where e.tenant_id = $1 and e.client_id = given.client_id),
                        given.client_id),
               given.industry
          from given
        on conflict (tenant_id, client_id) do update
           set client_name = excluded.client_name, industry = coalesce(excluded.industry, c.industry)
         where (c.client_name, c.industry) is distinct from (excluded.client_name, coalesce(excluded.industry, c.industry))
        returning (xmax = 0) as inserted
    )
    select count(*) filter (where inserted), count(*) filter (where not inserted) from up";

// Inserts are told from updates by `created_at = now()`, not `xmax = 0`: a partitioned table's
// RETURNING cannot read system columns of a routed insert ("cannot retrieve a system column in
// this context"). The loader never sets `created_at` (its default is `now()`, the transaction's
// start) and an update never changes it, so the one row counted wrongly would be one inserted by
// another load whose transaction started in the same microsecond, then updated by this one: a
// count, never the data, and only under that race.
pub(crate) const FINANCIALS: DatasetSql = DatasetSql {
    create_staging: staging!(
        "record_date date not null, revenue numeric(12,2) not null, expenses numeric(12,2) not null,
         net_profit numeric(12,2) not null, cash_flow numeric(12,2) not null, source_system text not null,
         external_id text"
    ),
    copy: "copy zixly_stage (line, client_id, client_name, industry, currency, fx_date, record_date, revenue,
                             expenses, net_profit, cash_flow, source_system, external_id)
           from stdin (format binary)",
    copy_types: &[
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::DATE,
        Type::DATE,
        Type::NUMERIC,
        Type::NUMERIC,
        Type::NUMERIC,
        Type::NUMERIC,
        Type::TEXT,
        Type::TEXT,
    ],
    checks_prepare: "analyze zixly_stage",
    collapse_exact_duplicates: collapse!(
        "client_id, record_date, source_system",
        "client_id, client_name, industry, currency, fx_date, record_date, revenue, expenses, net_profit,
         cash_flow, source_system, external_id"
    ),
    find_duplicates: duplicates!(
        "client_id, record_date, source_system",
        "%s, %s, %s",
        "r.client_id, r.record_date, r.source_system"
    ),
    // Rows before the tenant's retention cutoff stay out (migrations/0022): their month is kept
    // as a total in `financial_months` already, so adding them would count them twice.
    upsert: "
        with k as (select coalesce(zixly_raw_data_from(raw_retention_months, time_zone), '-infinity'::date) as raw_from
                     from tenants where id = $1),
        up as (
            insert into financials as f (tenant_id, client_kpi_id, record_date, revenue, expenses, net_profit,
                                         cash_flow, currency, source_system, external_id)
            select $1, c.id, s.record_date, s.revenue, s.expenses, s.net_profit, s.cash_flow, s.currency,
                   s.source_system, s.external_id
              from zixly_stage s join client_kpis c on c.tenant_id = $1 and c.client_id = s.client_id
             where s.record_date >= (select raw_from from k)
            on conflict (tenant_id, client_kpi_id, record_date, source_system) do update
               set revenue = excluded.revenue, expenses = excluded.expenses, net_profit = excluded.net_profit,
                   cash_flow = excluded.cash_flow, currency = excluded.currency, external_id = excluded.external_id
             where (f.revenue, f.expenses, f.net_profit, f.cash_flow, f.currency, f.external_id)
                   is distinct from
                   (excluded.revenue, excluded.expenses, excluded.net_profit, excluded.cash_flow,
                    excluded.currency, excluded.external_id)
            returning (f.created_at = now()) as inserted
        )
        select count(*) filter (where inserted), count(*) filter (where not inserted),
               (select count(*) from zixly_stage s where s.record_date < (select raw_from from k))
          from up",
    upsert_context: "upserting financials",
    // The financial rollup triggers (0015, 0019) only group the statement's rows: linear.
    upsert_chunk_pages: None,
    after_upsert: None,
    table: "financials",
    missing_months: missing_months!("date_trunc('month', record_date)::date"),
};

/// Staging pages per lead-event upsert statement (see [`DatasetSql::upsert_chunk_pages`]).
pub(crate) const LEAD_EVENT_CHUNK_PAGES: i64 = 80;

pub(crate) const LEAD_EVENTS: DatasetSql = DatasetSql {
    create_staging: staging!(
        "event_date timestamptz not null, lead_id text not null, stage text not null, value numeric(12,2),
         status text not null, source_system text not null, external_id text"
    ),
    copy: "copy zixly_stage (line, client_id, client_name, industry, currency, fx_date, event_date, lead_id, stage,
                             value, status, source_system, external_id)
           from stdin (format binary)",
    copy_types: &[
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::DATE,
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::TEXT,
        Type::NUMERIC,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
    ],
    checks_prepare: "analyze zixly_stage",
    collapse_exact_duplicates: collapse!(
        "client_id, source_system, lead_id, stage, event_date",
        "client_id, client_name, industry, currency, fx_date, event_date, lead_id, stage, value, status,
         source_system, external_id"
    ),
    find_duplicates: duplicates!(
        "client_id, source_system, lead_id, stage, event_date",
        "%s, %s, %s, %s, %s",
        "r.client_id, r.source_system, r.lead_id, r.stage, to_char(r.event_date at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    ),
    upsert: "
        with up as (
            insert into lead_events as e (tenant_id, client_kpi_id, event_date, lead_id, stage, value, currency,
                                          status, source_system, external_id)
            select $1, c.id, s.event_date, s.lead_id, s.stage, s.value, s.currency, s.status::lead_status,
                   s.source_system, s.external_id
              from zixly_stage s join client_kpis c on c.tenant_id = $1 and c.client_id = s.client_id
             -- One chunk of pages (a TID range scan of the staging table, no index needed).
             where s.ctid >= format('(%s,0)', $2::bigint)::tid and s.ctid < format('(%s,0)', $3::bigint)::tid
            on conflict (tenant_id, client_kpi_id, source_system, lead_id, stage, event_date) do update
               set value = excluded.value, currency = excluded.currency, status = excluded.status,
                   external_id = excluded.external_id
             where (e.value, e.currency, e.status, e.external_id)
                   is distinct from (excluded.value, excluded.currency, excluded.status, excluded.external_id)
            returning (e.created_at = now()) as inserted
        )
        select count(*) filter (where inserted), count(*) filter (where not inserted) from up",
    upsert_context: "upserting lead events",
    // About 5,000 staged events per statement (~60 per 8 kB page).
    upsert_chunk_pages: Some(LEAD_EVENT_CHUNK_PAGES),
    after_upsert: None,
    table: "lead_events",
    missing_months: missing_months!("date_trunc('month', event_date at time zone 'UTC')::date"),
};

pub(crate) const CUSTOM_METRICS: DatasetSql = DatasetSql {
    create_staging: staging!(
        "metric_name text not null, metric_value numeric(12,4) not null, unit text,
         record_date timestamptz not null, source_system text not null"
    ),
    copy: "copy zixly_stage (line, client_id, client_name, industry, currency, fx_date, metric_name, metric_value,
                             unit, record_date, source_system)
           from stdin (format binary)",
    copy_types: &[
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::DATE,
        Type::TEXT,
        Type::NUMERIC,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TEXT,
    ],
    checks_prepare: "analyze zixly_stage",
    collapse_exact_duplicates: collapse!(
        "client_id, metric_name, record_date, source_system",
        "client_id, client_name, industry, currency, fx_date, metric_name, metric_value, unit, record_date,
         source_system"
    ),
    find_duplicates: duplicates!(
        "client_id, metric_name, record_date, source_system",
        "%s, %s, %s, %s",
        "r.client_id, r.metric_name, to_char(r.record_date at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), r.source_system"
    ),
    upsert: "
        with up as (
            insert into custom_metrics as m (tenant_id, client_kpi_id, metric_name, metric_value, unit, record_date,
                                             source_system)
            select $1, c.id, s.metric_name, s.metric_value, s.unit, s.record_date, s.source_system
              from zixly_stage s join client_kpis c on c.tenant_id = $1 and c.client_id = s.client_id
            on conflict (tenant_id, client_kpi_id, metric_name, record_date, source_system) do update
               set metric_value = excluded.metric_value, unit = excluded.unit
             where (m.metric_value, m.unit) is distinct from (excluded.metric_value, excluded.unit)
            returning (m.created_at = now()) as inserted
        )
        -- Custom metrics are not subject to retention (migrations/0022).
        select count(*) filter (where inserted), count(*) filter (where not inserted), 0::bigint from up",
    upsert_context: "upserting custom metrics",
    upsert_chunk_pages: None,
    // First sight of a metric name defines it with the defaults; `do nothing` keeps whatever an
    // EDITOR changed since. One row per name of the file (a hash aggregate over the staging table).
    after_upsert: Some((
        "insert into metric_definitions (tenant_id, name, display_name, unit)
         select $1, s.metric_name, zixly_metric_display_name(s.metric_name), min(s.unit)
           from zixly_stage s
          group by s.metric_name
         on conflict (tenant_id, name) do nothing",
        "defining metrics seen for the first time",
    )),
    table: "custom_metrics",
    missing_months: missing_months!("date_trunc('month', record_date at time zone 'UTC')::date"),
};
