//! Asana: workspaces, projects and tasks with `limit`/`offset` paging, `modified_since`
//! increments, `completed_since` and each project's events feed (sync tokens); normalized into
//! clients and per-day custom metrics.
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
//! Days are aggregates, so the connector reads tasks page by page ([`AsanaClient::task_page`]) and
//! says what each completed task contributes to which client's day ([`task_days`]); the runner
//! stores those per task (replacing a re-read task's) and re-sums the days they touch
//! ([`day_metrics`]). Increments: `GET /tasks?project=&modified_since=` (a change of `completed`,
//! `completed_at` or `due_on` bumps `modified_at`, so reopened tasks are seen). What that list
//! cannot show (contracts/asana.json `modified_at_not_on_move`, `deletions_via_events`) — deleted
//! tasks, tasks moved out of or into a project without another edit — is in each project's events
//! feed, `GET /events?resource=<project>&sync=<token>` ([`AsanaClient::events`]): at most 100
//! events a call with `has_more`; without a token, or with one that expired, Asana answers 412 with
//! a fresh token ([`Events::Expired`], `events_412`), after which the caller reads everything again;
//! a 403 ([`events_forbidden`]) means this app may not read it.
//! [`Event::task_event`] says what an event means for the metrics: a task deleted, removed from
//! the project, or to be read (added, undeleted, changed). Asana's `GET /tasks/{gid}` is not in
//! the contract, so a task to be read is found in its project's task list.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
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
/// `projects`: every project of a task, so its contributions are the same whichever of its
/// projects' pages it is read from.
const TASK_FIELDS: &str = "name,completed,completed_at,created_at,modified_at,due_on,projects";

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
    /// The projects the task belongs to (compact records).
    #[serde(default)]
    pub projects: Vec<ProjectRef>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProjectRef {
    pub gid: String,
}

/// One event of a project's feed (the fields the runner reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// `changed`, `added`, `removed`, `deleted` or `undeleted`.
    pub action: String,
    /// What changed (a task, a story, a section, ...).
    pub resource: Option<ResourceRef>,
    /// For `added`/`removed`: the container (the project, a section, ...).
    pub parent: Option<ResourceRef>,
}

/// A compact record `{gid, resource_type, name}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ResourceRef {
    pub gid: String,
    pub resource_type: Option<String>,
}

/// One answer of the events feed.
#[derive(Debug, Clone, Deserialize)]
pub struct EventPage {
    pub data: Vec<Event>,
    /// The token to call with next.
    pub sync: String,
    /// More events remain after these (call again with `sync` at once).
    #[serde(default)]
    pub has_more: bool,
}

/// What a call of the events feed answered.
#[derive(Debug, Clone)]
pub enum Events {
    Page(EventPage),
    /// 412: no token, or one Asana no longer accepts; `sync` is a fresh one.
    Expired {
        sync: String,
    },
}

/// What an event of project `project`'s feed means for the task metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEvent {
    /// The task is gone from every project.
    Deleted(String),
    /// The task left this project (it may still be in others).
    Removed(String),
    /// The task is (again) in this project, or changed: to be read.
    Read(String),
}

impl Event {
    /// `None` for events about anything but a task, and for additions to or removals from
    /// another container than the project (a section, a tag).
    pub fn task_event(&self, project: &str) -> Option<TaskEvent> {
        let r = self.resource.as_ref()?;
        if r.resource_type.as_deref() != Some("task") {
            return None;
        }
        let gid = r.gid.clone();
        let in_project = self
            .parent
            .as_ref()
            .is_some_and(|p| p.gid == project && p.resource_type.as_deref() != Some("section"));
        match self.action.as_str() {
            "deleted" => Some(TaskEvent::Deleted(gid)),
            "removed" if in_project => Some(TaskEvent::Removed(gid)),
            "added" if in_project => Some(TaskEvent::Read(gid)),
            "undeleted" | "changed" => Some(TaskEvent::Read(gid)),
            _ => None,
        }
    }
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

    /// The provider's clock (`Date`) at this client's first answer: a run's next `modified_since`
    /// is computed from it, so a change made while the run reads is read again by the next.
    pub fn first_answer(&self) -> Option<DateTime<Utc>> {
        *self.first_answer.lock().unwrap()
    }

    /// Paces every request of this client with `pacer` (the connection's, shared).
    pub fn with_pacer(mut self, pacer: Arc<Pacer>) -> AsanaClient {
        self.pacer = pacer;
        self
    }

    /// One paced request: the status and body of an answer that is a success or `accept`ed;
    /// anything else classified (a 429's short `Retry-After` holds the connection's pacer).
    async fn send(
        &self,
        path: &str,
        query: &[(&str, String)],
        accept: Option<reqwest::StatusCode>,
    ) -> ConnectorResult<(reqwest::StatusCode, String)> {
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
        if !status.is_success() && Some(status) != accept {
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
        Ok((status, body))
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> ConnectorResult<Page<T>> {
        let (_, body) = self.send(path, query, None).await?;
        serde_json::from_str(&body)
            .map_err(|e| ConnectorError::Permanent(format!("unexpected Asana response: {e}")))
    }

    /// One call of a project's events feed, `GET /events?resource=<project>&sync=<token>`
    /// (contracts/asana.json `events`): at most 100 events after `sync` with the token to go on
    /// from, or — without a token, or with one that is invalid or has expired — Asana's 412 with a
    /// fresh token ([`Events::Expired`]), after which the caller must read everything again.
    pub async fn events(&self, project: &str, sync: Option<&str>) -> ConnectorResult<Events> {
        let mut q = vec![("resource", project.to_string())];
        if let Some(s) = sync {
            q.push(("sync", s.to_string()));
        }
        let (status, body) = self
            .send(
                "/events",
                &q,
                Some(reqwest::StatusCode::PRECONDITION_FAILED),
            )
            .await?;
        let unexpected = |e: serde_json::Error| {
            ConnectorError::Permanent(format!("unexpected Asana events: {e}"))
        };
        if status == reqwest::StatusCode::PRECONDITION_FAILED {
            #[derive(Deserialize)]
            struct Expired {
                sync: String,
            }
            let e: Expired = serde_json::from_str(&body).map_err(unexpected)?;
            return Ok(Events::Expired { sync: e.sync });
        }
        serde_json::from_str(&body)
            .map(Events::Page)
            .map_err(unexpected)
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

    /// One page of a project's tasks, from `offset` (`None`: the first page): on a complete read
    /// (`modified_since` None) every task of the project, `GET /projects/{gid}/tasks`; on an
    /// increment the ones modified since then, `GET /tasks?project=&modified_since=` (the only
    /// list with that filter).
    pub async fn task_page(
        &self,
        project: &str,
        modified_since: Option<DateTime<Utc>>,
        offset: Option<&str>,
    ) -> ConnectorResult<TaskPage> {
        let mut q = vec![
            ("opt_fields", TASK_FIELDS.to_string()),
            ("limit", PAGE_LIMIT.to_string()),
        ];
        let path = match modified_since {
            None => format!("/projects/{project}/tasks"),
            Some(since) => {
                q.push(("project", project.to_string()));
                q.push(("modified_since", iso(since)));
                "/tasks".to_string()
            }
        };
        if let Some(o) = offset {
            q.push(("offset", o.to_string()));
        }
        let page: Page<Task> = self.get(&path, &q).await?;
        Ok(TaskPage {
            tasks: page.data,
            next: page.next_page.map(|n| n.offset),
        })
    }
}

/// Whether `e` is Asana refusing an `offset` token (they "expire after a while",
/// contracts/asana.json `paging.note`): the caller restarts that listing from its first page.
pub fn offset_refused(e: &ConnectorError) -> bool {
    matches!(e, ConnectorError::Permanent(m) if m.starts_with("HTTP 400") && m.contains("offset"))
}

/// Whether `e` is Asana refusing the events feed to this app (403): the spec lists no granular
/// scope for `GET /events` (contracts/asana.json `events.scopes`, "may require a full-permissions
/// app", unverified), so an app with granular scopes may be refused it. The caller goes on
/// without the feeds.
pub fn events_forbidden(e: &ConnectorError) -> bool {
    matches!(e, ConnectorError::Permanent(m) if m.starts_with("HTTP 403"))
}

/// One page of tasks and the `offset` of the next one (`None`: the project's last page).
#[derive(Debug, Clone)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    pub next: Option<String>,
}

/// The clients of a workspace's projects under `mapping`: the clients (ordered by id, names
/// merged) and `project gid -> client id` for every mapped project, in the listing's order.
pub fn project_clients(
    projects: &[Project],
    mapping: &ProjectMapping,
) -> (Vec<ClientRecord>, Vec<(String, String)>) {
    let mut clients: BTreeMap<String, ClientRecord> = BTreeMap::new();
    let mut of = Vec::new();
    for p in projects {
        if let Some(c) = mapping.client_of(p) {
            of.push((p.gid.clone(), c.client_id.clone()));
            let entry = clients
                .entry(c.client_id.clone())
                .or_insert_with(|| c.clone());
            if entry.name.is_none() {
                entry.name = c.name;
            }
        }
    }
    (clients.into_values().collect(), of)
}

/// What one completed task contributes to one client's day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDay {
    pub task_gid: String,
    pub client_id: String,
    /// The calendar day of `completed_at` in the tenant's zone.
    pub date: NaiveDate,
    /// Completed on or before `due_on`; `None` without a due date (neither on time nor late).
    pub on_time: Option<bool>,
}

impl TaskDay {
    /// What it adds to the day's counts: (completed, with a due date, on time), the arguments of
    /// [`day_metrics`] once summed.
    pub fn counts(&self) -> (Decimal, Decimal, Decimal) {
        let one = |b: bool| if b { Decimal::ONE } else { Decimal::ZERO };
        (
            Decimal::ONE,
            one(self.on_time.is_some()),
            one(self.on_time == Some(true)),
        )
    }
}

/// The contributions of `tasks` read from project `read_from`: one per completed task and
/// distinct client among its projects (`projects`, plus `read_from` itself), so a task in two
/// projects of one client counts once for it, and a task's contributions are the same whichever
/// of its projects' pages it was read from (the caller replaces them per task). `clients`:
/// project gid -> client id of the mapped projects.
pub fn task_days(
    tasks: &[Task],
    read_from: &str,
    clients: &HashMap<String, String>,
    tz: Tz,
) -> Vec<TaskDay> {
    let mut out = Vec::new();
    for t in tasks {
        let (true, Some(at)) = (t.completed, t.completed_at) else {
            continue;
        };
        let date = at.with_timezone(&tz).date_naive();
        let mut seen = HashSet::new();
        let projects = std::iter::once(read_from).chain(t.projects.iter().map(|p| p.gid.as_str()));
        for client in projects.filter_map(|p| clients.get(p)) {
            if seen.insert(client.as_str()) {
                out.push(TaskDay {
                    task_gid: t.gid.clone(),
                    client_id: client.clone(),
                    date,
                    on_time: t.due_on.map(|due| date <= due),
                });
            }
        }
    }
    out
}

/// A client-day's metrics from its counts: `tasks_completed`, `tasks_completed_on_time`, and
/// `on_time_rate` = on time / completed with a due date (4 decimals; absent when none had one),
/// as (metric name, value, unit).
pub fn day_metrics(
    completed: Decimal,
    dated: Decimal,
    on_time: Decimal,
) -> Vec<(&'static str, Decimal, &'static str)> {
    let mut out = vec![
        ("tasks_completed", completed.normalize(), "tasks"),
        ("tasks_completed_on_time", on_time.normalize(), "tasks"),
    ];
    if dated > Decimal::ZERO {
        out.push((
            "on_time_rate",
            (on_time / dated).round_dp(4).normalize(),
            "ratio",
        ));
    }
    out
}
#[cfg(test)]
mod tests {
    use super::*;

    fn task(gid: &str, completed_at: Option<&str>, due: Option<&str>, projects: &[&str]) -> Task {
        Task {
            gid: gid.into(),
            completed: completed_at.is_some(),
            completed_at: completed_at.map(|s| s.parse().unwrap()),
            modified_at: None,
            due_on: due.map(|s| s.parse().unwrap()),
            projects: projects
                .iter()
                .map(|p| ProjectRef { gid: p.to_string() })
                .collect(),
        }
    }

    #[test]
    fn task_days_per_local_day_and_client_deduplicated() {
        let tz: Tz = "Australia/Sydney".parse().unwrap();
        let clients: HashMap<String, String> = [("p1", "acme"), ("p2", "acme"), ("p3", "beta")]
            .into_iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect();
        let tasks = vec![
            // 2024-03-01 23:30 UTC is 2024-03-02 in Sydney: late against a 03-01 due date.
            task(
                "1",
                Some("2024-03-01T23:30:00Z"),
                Some("2024-03-01"),
                &["p1"],
            ),
            // In both Acme projects and in Beta's: once for each client.
            task(
                "2",
                Some("2024-03-02T01:00:00Z"),
                Some("2024-03-05"),
                &["p1", "p2", "p3"],
            ),
            // No `projects` field: the project it was read from.
            task("3", Some("2024-03-02T02:00:00Z"), None, &[]),
            task("4", None, Some("2024-03-01"), &["p1"]),
            // An unmapped project adds nothing.
            task("5", Some("2024-03-02T02:00:00Z"), None, &["p1", "p9"]),
        ];
        let days = task_days(&tasks, "p1", &clients, tz);
        let got: Vec<(&str, &str, String, Option<bool>)> = days
            .iter()
            .map(|d| {
                (
                    d.task_gid.as_str(),
                    d.client_id.as_str(),
                    d.date.to_string(),
                    d.on_time,
                )
            })
            .collect();
        let d = "2024-03-02".to_string();
        assert_eq!(
            got,
            vec![
                ("1", "acme", d.clone(), Some(false)),
                ("2", "acme", d.clone(), Some(true)),
                ("2", "beta", d.clone(), Some(true)),
                ("3", "acme", d.clone(), None),
                ("5", "acme", d, None),
            ]
        );
    }

    #[test]
    fn day_metrics_with_and_without_due_dates() {
        let n = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(
            day_metrics(n("3.00"), n("2.00"), n("1.00")),
            vec![
                ("tasks_completed", n("3"), "tasks"),
                ("tasks_completed_on_time", n("1"), "tasks"),
                ("on_time_rate", n("0.5"), "ratio"),
            ]
        );
        assert_eq!(
            day_metrics(n("3"), n("3"), n("2"))[2],
            ("on_time_rate", n("0.6667"), "ratio")
        );
        assert_eq!(day_metrics(n("2"), n("0"), n("0")).len(), 2, "no rate");
    }

    #[test]
    fn task_events_of_a_project_feed() {
        let ev = |action: &str, kind: &str, parent: Option<(&str, &str)>| Event {
            action: action.into(),
            resource: Some(ResourceRef {
                gid: "t1".into(),
                resource_type: Some(kind.into()),
            }),
            parent: parent.map(|(gid, kind)| ResourceRef {
                gid: gid.into(),
                resource_type: Some(kind.into()),
            }),
        };
        let t = || "t1".to_string();
        let p1 = Some(("p1", "project"));
        assert_eq!(
            ev("deleted", "task", None).task_event("p1"),
            Some(TaskEvent::Deleted(t()))
        );
        assert_eq!(
            ev("removed", "task", p1).task_event("p1"),
            Some(TaskEvent::Removed(t()))
        );
        assert_eq!(
            ev("added", "task", p1).task_event("p1"),
            Some(TaskEvent::Read(t()))
        );
        assert_eq!(
            ev("undeleted", "task", None).task_event("p1"),
            Some(TaskEvent::Read(t()))
        );
        assert_eq!(
            ev("changed", "task", None).task_event("p1"),
            Some(TaskEvent::Read(t()))
        );
        // Another container (a section, another project), or not a task: nothing to do.
        assert_eq!(
            ev("removed", "task", Some(("s1", "section"))).task_event("p1"),
            None
        );
        assert_eq!(
            ev("added", "task", Some(("p2", "project"))).task_event("p1"),
            None
        );
        assert_eq!(ev("added", "story", p1).task_event("p1"), None);
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
