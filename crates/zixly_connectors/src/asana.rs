//! Asana: workspaces, projects and tasks with `limit`/`offset` paging, `modified_since`
//! increments and `completed_since`; normalized into clients and per-day custom metrics.
//!
//! Mapping (issue 5): projects -> clients through a [`ProjectMapping`] (settings): each project is
//! a client (default), or the client is the part of the project name before a separator
//! (`Acme - Website` -> `Acme`), or an explicit `project gid -> client id` table (unlisted
//! projects are ignored). Completed tasks -> per client and calendar day (the tenant's zone) of
//! `completed_at`: `tasks_completed`, `tasks_completed_on_time` (completed on or before `due_on`)
//! and `on_time_rate` = on time / completed tasks that had a due date (absent when none had one).
//! Tasks without `due_on` count as completed but neither on time nor late. A task in several
//! projects of one client counts once (deduplicated by gid).
//!
//! Days are aggregates, so an increment cannot add to them: `GET /tasks?project=&modified_since=`
//! finds the tasks changed since the cursor; for each client with a changed completed task the
//! metrics of every day from the earliest such completion day on are recomputed from
//! `GET /projects/{gid}/tasks?completed_since=<that day's start>` over all of the client's projects,
//! and [`AsanaRead::recomputed`] says which days are complete (the caller replaces those days).
//! Not seen by increments (documented limits of the API without the events feed): deleted tasks and
//! tasks marked incomplete again; a full read corrects both.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::Deserialize;
use zixly_crypto::SecretString;

use crate::http::{classify, send_raw};
use crate::pace::Pacer;
use crate::{ClientRecord, ConnectorError, ConnectorResult};

/// Largest page Asana serves.
pub const PAGE_LIMIT: usize = 100;
/// Longest `Retry-After` the connection's pacer is held for (see [`AsanaClient`]'s requests).
pub const MAX_HOLD: std::time::Duration = std::time::Duration::from_secs(10);
const TASK_FIELDS: &str = "name,completed,completed_at,created_at,modified_at,due_on";

#[derive(Debug, Clone, Deserialize)]
pub struct Workspace {
    pub gid: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub gid: String,
    pub name: Option<String>,
    #[serde(default)]
    pub archived: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Task {
    pub gid: String,
    #[serde(default)]
    pub completed: bool,
    pub completed_at: Option<DateTime<Utc>>,
    pub modified_at: Option<DateTime<Utc>>,
    /// `2019-09-15`
    pub due_on: Option<NaiveDate>,
}

#[derive(Deserialize)]
struct Page<T> {
    data: Vec<T>,
    next_page: Option<NextPage>,
}

#[derive(Deserialize)]
struct NextPage {
    offset: String,
}

/// How projects become clients (integration settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectMapping {
    /// Each project is a client (`client_id` = project gid).
    Project,
    /// The client is the project name before `separator` (trimmed), `client_id` = that name.
    /// Projects without the separator are their own client (by name).
    NamePrefix { separator: String },
    /// project gid -> client id; other projects are ignored.
    Explicit(HashMap<String, String>),
}

impl ProjectMapping {
    /// From the settings JSON: `{"asana_client_mapping": "project" | "name_prefix" | "explicit",
    /// "asana_name_separator": " - ", "asana_projects": {"<gid>": "<client id>"}}`.
    pub fn from_settings(settings: &serde_json::Value) -> Result<ProjectMapping, String> {
        match settings
            .get("asana_client_mapping")
            .and_then(|v| v.as_str())
            .unwrap_or("project")
        {
            "project" => Ok(ProjectMapping::Project),
            "name_prefix" => Ok(ProjectMapping::NamePrefix {
                separator: settings
                    .get("asana_name_separator")
                    .and_then(|v| v.as_str())
                    .filter(|s| !s.is_empty())
                    .unwrap_or(" - ")
                    .to_string(),
            }),
            "explicit" => {
                let map = settings
                    .get("asana_projects")
                    .and_then(|v| v.as_object())
                    .ok_or("asana_client_mapping \"explicit\" needs an asana_projects object")?;
                map.iter()
                    .map(|(gid, client)| {
                        client
                            .as_str()
                            .filter(|c| !c.trim().is_empty())
                            .map(|c| (gid.clone(), c.trim().to_string()))
                            .ok_or_else(|| format!("asana_projects.{gid} must be a client id"))
                    })
                    .collect::<Result<_, _>>()
                    .map(ProjectMapping::Explicit)
            }
            other => Err(format!(
                "asana_client_mapping must be project, name_prefix or explicit, not {other}"
            )),
        }
    }

    /// The client of a project, or `None` when the project is not mapped.
    pub fn client_of(&self, p: &Project) -> Option<ClientRecord> {
        match self {
            ProjectMapping::Project => Some(ClientRecord {
                client_id: p.gid.clone(),
                name: p.name.clone(),
            }),
            ProjectMapping::NamePrefix { separator } => {
                let name = p.name.as_deref()?.trim();
                let client = name
                    .split_once(separator.as_str())
                    .map_or(name, |(a, _)| a)
                    .trim();
                (!client.is_empty()).then(|| ClientRecord {
                    client_id: client.to_string(),
                    name: Some(client.to_string()),
                })
            }
            ProjectMapping::Explicit(map) => map.get(&p.gid).map(|c| ClientRecord {
                client_id: c.clone(),
                name: None,
            }),
        }
    }
}

/// Picks the workspace: the one named in the settings (`asana_workspace`), or the only one.
pub fn choose_workspace(all: &[Workspace], wanted: Option<&str>) -> ConnectorResult<Workspace> {
    match (wanted, all) {
        (Some(w), _) => all
            .iter()
            .find(|x| x.gid == w)
            .cloned()
            .ok_or_else(|| ConnectorError::Permanent(format!("Asana workspace {w} is not reachable"))),
        (None, [one]) => Ok(one.clone()),
        (None, []) => Err(ConnectorError::Permanent("no Asana workspace is reachable".into())),
        (None, many) => Err(ConnectorError::Permanent(format!(
            "{} Asana workspaces are reachable; choose one in the integration's settings (asana_workspace)",
            many.len()
        ))),
    }
}

/// One metric value of a client's day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyMetric {
    pub client_id: String,
    /// The calendar day in the tenant's zone.
    pub date: NaiveDate,
    /// The start of that day as an instant (`custom_metrics.record_date`).
    pub record_date: DateTime<Utc>,
    /// `tasks_completed`, `tasks_completed_on_time` or `on_time_rate`.
    pub metric_name: &'static str,
    /// Counts, or a rate in 0..=1 with 4 decimals.
    pub value: Decimal,
    pub unit: &'static str,
}

/// Which of a client's days [`AsanaRead::metrics`] covers completely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recomputed {
    pub client_id: String,
    /// `None`: every day (a full read). `Some(d)`: every day from `d` on; days in that range
    /// without metrics had no completed task.
    pub from: Option<NaiveDate>,
}

#[derive(Debug, Clone)]
pub struct AsanaRead {
    pub clients: Vec<ClientRecord>,
    pub metrics: Vec<DailyMetric>,
    pub recomputed: Vec<Recomputed>,
    /// The next `modified_since`: the provider's clock at the first answer, less
    /// [`crate::http::CURSOR_SAFETY`].
    pub cursor: Option<DateTime<Utc>>,
}

pub struct AsanaClient {
    http: reqwest::Client,
    api_url: String,
    access_token: SecretString,
    pub calls: AtomicU64,
    first_answer: Mutex<Option<DateTime<Utc>>>,
    /// The connection's pacer (Asana's limits are per token: shared by every client of it).
    pacer: Arc<Pacer>,
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The instant a calendar day starts in `tz` (the earliest valid local time on DST days).
fn day_start(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    let mut t = d.and_hms_opt(0, 0, 0).expect("midnight");
    loop {
        if let Some(x) = tz.from_local_datetime(&t).earliest() {
            return x.with_timezone(&Utc);
        }
        t += chrono::Duration::minutes(30);
    }
}

impl AsanaClient {
    /// `api_url`: the API root (`https://app.asana.com/api/1.0`).
    pub fn new(http: reqwest::Client, api_url: &str, access_token: SecretString) -> AsanaClient {
        AsanaClient {
            http,
            api_url: api_url.trim_end_matches('/').into(),
            access_token,
            calls: 0.into(),
            first_answer: Mutex::new(None),
            pacer: Arc::new(Pacer::unlimited()),
        }
    }

    /// Paces every request of this client with `pacer` (the connection's, shared).
    pub fn with_pacer(mut self, pacer: Arc<Pacer>) -> AsanaClient {
        self.pacer = pacer;
        self
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> ConnectorResult<Page<T>> {
        self.pacer.acquire().await;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let request = self
            .http
            .get(format!("{}{path}", self.api_url))
            .bearer_auth(self.access_token.expose())
            .header("Accept", "application/json")
            .query(query);
        let (status, headers, body) = send_raw(request).await?;
        if let Some(date) = crate::http::server_date(&headers) {
            self.first_answer.lock().unwrap().get_or_insert(date);
        }
        if !status.is_success() {
            let err = classify(status, &headers, &body);
            if let ConnectorError::RateLimited { retry_after } = &err {
                // Asana sends no remaining-count headers: its 429's `Retry-After` is the one word
                // on the budget. Hold the connection's other requests for as long, unless that is
                // long: this run ends with RateLimited and is rescheduled after the wait, and a
                // pacer held for minutes would block whatever else a worker does with it.
                if *retry_after <= MAX_HOLD {
                    self.pacer.hold_for(*retry_after);
                }
            }
            return Err(err);
        }
        serde_json::from_str(&body)
            .map_err(|e| ConnectorError::Permanent(format!("unexpected Asana response: {e}")))
    }

    /// Every page, following `next_page.offset` until `next_page` is null.
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: Vec<(&str, String)>,
    ) -> ConnectorResult<Vec<T>> {
        let mut out = Vec::new();
        let mut offset: Option<String> = None;
        loop {
            let mut q = query.clone();
            q.push(("limit", PAGE_LIMIT.to_string()));
            if let Some(o) = offset.take() {
                q.push(("offset", o));
            }
            let page: Page<T> = self.get(path, &q).await?;
            out.extend(page.data);
            match page.next_page {
                Some(n) => offset = Some(n.offset),
                None => return Ok(out),
            }
        }
    }

    pub async fn workspaces(&self) -> ConnectorResult<Vec<Workspace>> {
        self.list("/workspaces", vec![]).await
    }

    /// Every project of the workspace, archived ones included (their tasks still count).
    pub async fn projects(&self, workspace: &str) -> ConnectorResult<Vec<Project>> {
        self.list(
            "/projects",
            vec![
                ("workspace", workspace.to_string()),
                ("opt_fields", "name,archived".into()),
            ],
        )
        .await
    }

    /// A project's tasks: all of them, or (`completed_since`) the incomplete ones and those
    /// completed since then.
    pub async fn project_tasks(
        &self,
        project: &str,
        completed_since: Option<DateTime<Utc>>,
    ) -> ConnectorResult<Vec<Task>> {
        let mut q = vec![("opt_fields", TASK_FIELDS.to_string())];
        if let Some(c) = completed_since {
            q.push(("completed_since", iso(c)));
        }
        self.list(&format!("/projects/{project}/tasks"), q).await
    }

    /// A project's tasks modified since `since`.
    pub async fn tasks_modified_since(
        &self,
        project: &str,
        since: DateTime<Utc>,
    ) -> ConnectorResult<Vec<Task>> {
        self.list(
            "/tasks",
            vec![
                ("project", project.to_string()),
                ("modified_since", iso(since)),
                ("opt_fields", TASK_FIELDS.to_string()),
            ],
        )
        .await
    }

    /// A full read (`since` = None) or the changes since the previous cursor. `tz`: the tenant's
    /// zone for calendar days.
    pub async fn read(
        &self,
        workspace: &str,
        mapping: &ProjectMapping,
        since: Option<DateTime<Utc>>,
        tz: Tz,
        now: DateTime<Utc>,
    ) -> ConnectorResult<AsanaRead> {
        *self.first_answer.lock().unwrap() = None;
        let projects = self.projects(workspace).await?;
        // client id -> (record, project gids)
        let mut clients: BTreeMap<String, (ClientRecord, Vec<String>)> = BTreeMap::new();
        for p in &projects {
            if let Some(c) = mapping.client_of(p) {
                let entry = clients
                    .entry(c.client_id.clone())
                    .or_insert_with(|| (c.clone(), vec![]));
                if entry.0.name.is_none() {
                    entry.0.name = c.name;
                }
                entry.1.push(p.gid.clone());
            }
        }
        let mut metrics = Vec::new();
        let mut recomputed = Vec::new();
        for (client_id, (_, project_gids)) in &clients {
            let (from, tasks) = match since {
                None => {
                    let mut tasks = Vec::new();
                    for gid in project_gids {
                        tasks.extend(self.project_tasks(gid, None).await?);
                    }
                    (None, tasks)
                }
                Some(since) => {
                    let mut earliest: Option<NaiveDate> = None;
                    for gid in project_gids {
                        for t in self.tasks_modified_since(gid, since).await? {
                            if let (true, Some(at)) = (t.completed, t.completed_at) {
                                let d = at.with_timezone(&tz).date_naive();
                                earliest = Some(earliest.map_or(d, |e| e.min(d)));
                            }
                        }
                    }
                    let Some(from) = earliest else { continue };
                    let start = day_start(tz, from);
                    let mut tasks = Vec::new();
                    for gid in project_gids {
                        tasks.extend(self.project_tasks(gid, Some(start)).await?);
                    }
                    (Some(from), tasks)
                }
            };
            metrics.extend(daily_metrics(client_id, &tasks, tz, from));
            recomputed.push(Recomputed {
                client_id: client_id.clone(),
                from,
            });
        }
        let started = self.first_answer.lock().unwrap().unwrap_or(now);
        Ok(AsanaRead {
            clients: clients.into_values().map(|(c, _)| c).collect(),
            metrics,
            recomputed,
            cursor: Some(crate::http::next_cursor(started, since)),
        })
    }
}

/// Per-day metrics of one client's tasks (deduplicated by gid), for days `>= from`.
pub fn daily_metrics(
    client_id: &str,
    tasks: &[Task],
    tz: Tz,
    from: Option<NaiveDate>,
) -> Vec<DailyMetric> {
    // day -> (completed, with a due date, on time)
    let mut days: BTreeMap<NaiveDate, (u32, u32, u32)> = BTreeMap::new();
    let mut seen = HashSet::new();
    for t in tasks {
        let (true, Some(at)) = (t.completed, t.completed_at) else {
            continue;
        };
        if !seen.insert(t.gid.as_str()) {
            continue;
        }
        let day = at.with_timezone(&tz).date_naive();
        if from.is_some_and(|f| day < f) {
            continue;
        }
        let e = days.entry(day).or_default();
        e.0 += 1;
        if let Some(due) = t.due_on {
            e.1 += 1;
            if day <= due {
                e.2 += 1;
            }
        }
    }
    let mut out = Vec::new();
    for (date, (completed, dated, on_time)) in days {
        let record_date = day_start(tz, date);
        let m = |metric_name, value, unit| DailyMetric {
            client_id: client_id.to_string(),
            date,
            record_date,
            metric_name,
            value,
            unit,
        };
        out.push(m("tasks_completed", Decimal::from(completed), "tasks"));
        out.push(m(
            "tasks_completed_on_time",
            Decimal::from(on_time),
            "tasks",
        ));
        if dated > 0 {
            out.push(m(
                "on_time_rate",
                (Decimal::from(on_time) / Decimal::from(dated)).round_dp(4),
                "ratio",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(gid: &str, completed_at: Option<&str>, due: Option<&str>) -> Task {
        Task {
            gid: gid.into(),
            completed: completed_at.is_some(),
            completed_at: completed_at.map(|s| s.parse().unwrap()),
            modified_at: None,
            due_on: due.map(|s| s.parse().unwrap()),
        }
    }

    #[test]
    fn metrics_per_local_day_with_on_time_rate_and_dedup() {
        let tz: Tz = "Australia/Sydney".parse().unwrap();
        let tasks = vec![
            // 2024-03-01 23:30 UTC is 2024-03-02 in Sydney: late against a 03-01 due date.
            task("1", Some("2024-03-01T23:30:00Z"), Some("2024-03-01")),
            task("2", Some("2024-03-02T01:00:00Z"), Some("2024-03-05")),
            task("2", Some("2024-03-02T01:00:00Z"), Some("2024-03-05")),
            task("3", Some("2024-03-02T02:00:00Z"), None),
            task("4", None, Some("2024-03-01")),
            task("5", Some("2024-02-20T02:00:00Z"), None),
        ];
        let m = daily_metrics("c", &tasks, tz, Some("2024-03-01".parse().unwrap()));
        let get = |name: &str| {
            m.iter()
                .find(|x| x.metric_name == name)
                .map(|x| (x.date.to_string(), x.value))
        };
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(
            get("tasks_completed"),
            Some(("2024-03-02".into(), 3.into()))
        );
        assert_eq!(
            get("tasks_completed_on_time"),
            Some(("2024-03-02".into(), 1.into()))
        );
        assert_eq!(
            get("on_time_rate"),
            Some(("2024-03-02".into(), "0.5".parse().unwrap()))
        );
        assert_eq!(m[0].record_date.to_rfc3339(), "2024-03-01T13:00:00+00:00");
    }

    #[test]
    fn mappings_from_settings() {
        let p = |gid: &str, name: &str| Project {
            gid: gid.into(),
            name: Some(name.into()),
            archived: false,
        };
        let m = ProjectMapping::from_settings(&serde_json::json!({})).unwrap();
        assert_eq!(m.client_of(&p("1", "Acme - Web")).unwrap().client_id, "1");
        let m = ProjectMapping::from_settings(
            &serde_json::json!({"asana_client_mapping": "name_prefix"}),
        )
        .unwrap();
        assert_eq!(
            m.client_of(&p("1", "Acme - Web")).unwrap().client_id,
            "Acme"
        );
        assert_eq!(
            m.client_of(&p("2", "Internal")).unwrap().client_id,
            "Internal"
        );
        let m = ProjectMapping::from_settings(
            &serde_json::json!({"asana_client_mapping": "explicit", "asana_projects": {"1": "acme"}}),
        )
        .unwrap();
        assert_eq!(m.client_of(&p("1", "x")).unwrap().client_id, "acme");
        assert!(m.client_of(&p("2", "x")).is_none());
        assert!(ProjectMapping::from_settings(
            &serde_json::json!({"asana_client_mapping": "explicit"})
        )
        .is_err());
        assert!(ProjectMapping::from_settings(
            &serde_json::json!({"asana_client_mapping": "nope"})
        )
        .is_err());
    }
}
