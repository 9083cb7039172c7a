//! Fake Asana: `/-/oauth_authorize`, `/-/oauth_token` (client credentials in the form body, PKCE;
//! a refresh answers a new access token and NO refresh token), and `/api/1.0/{workspaces,projects,
//! tasks}` plus `/api/1.0/projects/{gid}/tasks` with `limit` (1..=100) / opaque `offset` tokens and
//! `next_page: null` on the last page, compact records unless `opt_fields` asks for more,
//! `completed_since` (incomplete tasks OR tasks completed since then; `now`: incomplete only),
//! `modified_since`, `/tasks` refusing anything but exactly one of project, tag or
//! assignee+workspace, `{errors:[{message, help}]}` bodies, 401 `Not Authorized`, 429 with
//! `Retry-After` (the per-token window, or injected at the n-th request to a path). Deleted tasks
//! disappear from the lists and moved tasks keep their `modified_at`: Asana shows both only through
//! its events feed, `GET /api/1.0/events?resource=<project gid>&sync=<token>`
//! (contracts/asana.json `events`, `events_412`, `events_cap`): every change the helpers make to a
//! task is logged as an event of each project it concerns (`added`/`removed` with the project as
//! `parent`, `changed` with its `change`, `deleted`/`undeleted` with a null `parent`); a call without
//! `sync`, or with a token that is invalid or expired ([`FakeAsana::expire_sync_tokens`]), answers
//! 412 `{errors:[{message}], sync}` with a fresh token; otherwise at most 100 events after the
//! token's position, `has_more` when more remain, and the `sync` token to continue from.
//! `events_forbidden` answers 403 instead (an app Asana refuses the feed: unverified, see the
//! contract's `events.scopes`).

#![allow(clippy::result_large_err)] // handlers answer `Err(Response)`, like the other fakes

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use super::oauth::{self, ClientAuth, FakeOAuth, OAuthSettings};

pub const CLIENT_ID: &str = "asana-client";
pub const CLIENT_SECRET: &str = "asana-secret";

pub struct AsanaData {
    pub now: DateTime<Utc>,
    pub workspaces: Vec<Value>,
    /// Projects, each with a private `_workspace` gid.
    pub projects: Vec<Value>,
    /// Tasks, each with a private `_projects` list of project gids.
    pub tasks: Vec<Value>,
    pub expire_after_calls: Option<u32>,
    /// The per-token limit (contracts/asana.json `rate_limits`: 150 per minute free, 1,500 paid;
    /// tests set a time-scaled one). While set, a request above it is answered 429 with
    /// `Retry-After` (the seconds until a slot frees).
    pub window: super::RequestWindow,
    /// Injected 429s: `(path, n, retry_after)` refuses the n-th request (1-based) to `path`
    /// (e.g. `/api/1.0/projects/p1/tasks`), answered with `Retry-After: retry_after`.
    pub rate_limit_requests: Vec<(String, usize, u64)>,
    /// Requests per path so far (for `rate_limit_requests`).
    pub requests_per_path: HashMap<String, usize>,
    /// Offset tokens carry it; one of an older generation has expired (400, as Asana answers a
    /// token it no longer accepts). See [`FakeAsana::expire_offsets`].
    pub offset_generation: u32,
    /// The events feed: `(sequence, project gid, event)`, oldest first.
    pub events: Vec<(u64, String, Value)>,
    /// The sequence of the latest event (a sync token is a position in it).
    pub event_seq: u64,
    /// Sync tokens carry it; one of an older generation has expired (412 with a fresh token).
    pub sync_generation: u32,
    /// Deleted tasks, for [`FakeAsana::undelete_task`].
    pub trash: Vec<Value>,
    /// `GET /events` answers 403, as Asana may to an app with granular scopes only (the spec
    /// lists no scope for it; contracts/asana.json `events.scopes`, unverified).
    pub events_forbidden: bool,
}

/// The user the fake's events name (the one the OAuth answer describes).
fn event_user() -> Value {
    json!({"gid": "4673218951", "resource_type": "user", "name": "Greg Sanchez"})
}

impl AsanaData {
    fn project_ref(&self, gid: &str) -> Value {
        let name = self
            .projects
            .iter()
            .find(|p| p["gid"] == gid)
            .and_then(|p| p["name"].as_str())
            .unwrap_or("")
            .to_string();
        json!({"gid": gid, "resource_type": "project", "name": name})
    }

    /// Logs an event about `task` in `project`'s feed. `added`/`removed` name the project as
    /// `parent`; `changed` carries `change`.
    pub fn log_event(&mut self, project: &str, task: &Value, action: &str, change: Option<Value>) {
        let parent = match action {
            "added" | "removed" => self.project_ref(project),
            _ => Value::Null,
        };
        let mut event = json!({
            "user": event_user(),
            "resource": {"gid": task["gid"], "resource_type": "task", "name": task["name"]},
            "type": "task",
            "action": action,
            "parent": parent,
            "created_at": ts(self.now),
        });
        if let Some(c) = change {
            event["change"] = c;
        }
        self.push_event(project, event);
    }

    /// Appends a raw event to `project`'s feed (a test can serve a wrong one).
    pub fn push_event(&mut self, project: &str, event: Value) {
        self.event_seq += 1;
        let seq = self.event_seq;
        self.events.push((seq, project.to_string(), event));
    }

    /// Logs what changing a task's projects from `old` to `new` shows in the feeds.
    fn log_moves(&mut self, task: &Value, old: &[String], new: &[String]) {
        for p in old.iter().filter(|p| !new.contains(p)) {
            self.log_event(p, task, "removed", None);
        }
        for p in new.iter().filter(|p| !old.contains(p)) {
            self.log_event(p, task, "added", None);
        }
    }
}

fn projects_of(task: &Value) -> Vec<String> {
    task["_projects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(String::from))
        .collect()
}

fn sync_token(generation: u32, seq: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("sync:{generation}:{seq}"))
}

#[derive(Clone)]
pub struct FakeAsana {
    pub oauth: FakeOAuth,
    pub data: Arc<Mutex<AsanaData>>,
    pub url: String,
}

/// Asana's timestamps: `2012-02-22T02:06:58.147Z`.
pub fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl FakeAsana {
    pub async fn start() -> FakeAsana {
        let oauth = FakeOAuth::new(OAuthSettings {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            client_auth: ClientAuth::Body,
            expires_in: 3600,
            rotate_refresh_tokens: false,
            grace_uses: 0,
            extra: json!({"token_type": "bearer",
                          "data": {"id": 4673218951u64, "gid": "4673218951", "name": "Greg Sanchez", "email": "gsanchez@example.com"}}),
        });
        let data = Arc::new(Mutex::new(AsanaData {
            now: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            workspaces: vec![
                json!({"gid": "ws-1", "resource_type": "workspace", "name": "Agency"}),
            ],
            projects: vec![],
            tasks: vec![],
            expire_after_calls: None,
            window: Default::default(),
            rate_limit_requests: vec![],
            requests_per_path: HashMap::new(),
            offset_generation: 0,
            events: vec![],
            event_seq: 0,
            sync_generation: 0,
            trash: vec![],
            events_forbidden: false,
        }));
        let state = (oauth.clone(), data.clone());
        let router = Router::new()
            .route(
                "/-/oauth_authorize",
                get(oauth::authorize).with_state(oauth.clone()),
            )
            .route("/-/oauth_token", post(token).with_state(oauth.clone()))
            .route("/api/1.0/workspaces", get(workspaces))
            .route("/api/1.0/projects", get(projects))
            .route("/api/1.0/projects/{gid}/tasks", get(project_tasks))
            .route("/api/1.0/tasks", get(tasks))
            .route("/api/1.0/events", get(events))
            .with_state(state);
        let (url, _handle) = super::serve(router).await;
        FakeAsana { oauth, data, url }
    }

    pub fn auth_url(&self) -> String {
        format!("{}/-/oauth_authorize", self.url)
    }
    pub fn token_url(&self) -> String {
        format!("{}/-/oauth_token", self.url)
    }
    pub fn api_url(&self) -> String {
        format!("{}/api/1.0", self.url)
    }

    pub fn tick(&self, by: chrono::Duration) {
        self.data.lock().unwrap().now += by;
    }
    pub fn now(&self) -> DateTime<Utc> {
        self.data.lock().unwrap().now
    }
    pub fn expire_tokens_after(&self, n: u32) {
        self.data.lock().unwrap().expire_after_calls = Some(n);
    }

    pub fn add_project(&self, workspace: &str, gid: &str, name: &str, archived: bool) {
        let mut d = self.data.lock().unwrap();
        let now = ts(d.now);
        d.projects.retain(|p| p["gid"] != gid);
        d.projects.push(
            json!({"gid": gid, "resource_type": "project", "name": name, "archived": archived,
                               "created_at": now, "modified_at": now, "_workspace": workspace}),
        );
    }

    /// Adds or replaces a task (by gid) in `projects`, stamping `modified_at` (and `created_at`).
    /// `completed_at: Some` completes it at that instant. The feeds show a new task as `added` to
    /// each of its projects; an existing one as `changed` (one event per changed field of
    /// `completed`, `completed_at`, `due_on`, else `name`) in the projects it stays in, and as
    /// `removed`/`added` where its projects change.
    pub fn upsert_task(
        &self,
        gid: &str,
        projects: &[&str],
        completed_at: Option<DateTime<Utc>>,
        due_on: Option<&str>,
    ) {
        let mut d = self.data.lock().unwrap();
        let now = ts(d.now);
        let old = d.tasks.iter().find(|t| t["gid"] == gid).cloned();
        let created = old
            .as_ref()
            .map_or_else(|| json!(now), |t| t["created_at"].clone());
        d.tasks.retain(|t| t["gid"] != gid);
        let task = json!({"gid": gid, "resource_type": "task", "name": format!("Task {gid}"),
            "completed": completed_at.is_some(), "completed_at": completed_at.map(ts),
            "created_at": created, "modified_at": now, "due_on": due_on, "_projects": projects});
        d.tasks.push(task.clone());
        let new: Vec<String> = projects.iter().map(|p| p.to_string()).collect();
        let Some(old) = old else {
            d.log_moves(&task, &[], &new);
            return;
        };
        let before = projects_of(&old);
        let mut changes: Vec<Value> = ["completed", "completed_at", "due_on"]
            .into_iter()
            .filter(|f| old[*f] != task[*f])
            .map(|f| json!({"field": f, "action": "changed", "new_value": task[f]}))
            .collect();
        if changes.is_empty() {
            changes.push(json!({"field": "name", "action": "changed", "new_value": task["name"]}));
        }
        for p in new.iter().filter(|p| before.contains(p)) {
            for c in &changes {
                d.log_event(p, &task, "changed", Some(c.clone()));
            }
        }
        d.log_moves(&task, &before, &new);
    }

    /// Moves a task to `projects` without touching `modified_at`: Asana does not count a move as
    /// a modification (contracts/asana.json `modified_at_not_on_move`). The feeds show it:
    /// `removed` from the projects it left, `added` to the new ones.
    pub fn move_task(&self, gid: &str, projects: &[&str]) {
        let mut d = self.data.lock().unwrap();
        let t = d
            .tasks
            .iter_mut()
            .find(|t| t["gid"] == gid)
            .expect("a task to move");
        let before = projects_of(t);
        t["_projects"] = json!(projects);
        let task = t.clone();
        let new: Vec<String> = projects.iter().map(|p| p.to_string()).collect();
        d.log_moves(&task, &before, &new);
    }

    /// Deletes a task: lists stop returning it; each of its projects' feeds shows it `deleted`
    /// (contracts/asana.json `deletions_via_events`).
    pub fn delete_task(&self, gid: &str) {
        let mut d = self.data.lock().unwrap();
        let Some(i) = d.tasks.iter().position(|t| t["gid"] == gid) else {
            return;
        };
        let task = d.tasks.remove(i);
        for p in projects_of(&task) {
            d.log_event(&p, &task, "deleted", None);
        }
        d.trash.push(task);
    }

    /// Restores a deleted task as it was (its `modified_at` unchanged); its projects' feeds show
    /// it `undeleted`.
    pub fn undelete_task(&self, gid: &str) {
        let mut d = self.data.lock().unwrap();
        let Some(i) = d.trash.iter().position(|t| t["gid"] == gid) else {
            return;
        };
        let task = d.trash.remove(i);
        for p in projects_of(&task) {
            d.log_event(&p, &task, "undeleted", None);
        }
        d.tasks.push(task);
    }

    /// Every sync token handed out so far expires: the next call with one answers 412 with a
    /// fresh token (contracts/asana.json `events_412`).
    pub fn expire_sync_tokens(&self) {
        self.data.lock().unwrap().sync_generation += 1;
    }

    /// Every offset token handed out so far expires (Asana's "expire after a while").
    pub fn expire_offsets(&self) {
        self.data.lock().unwrap().offset_generation += 1;
    }
}

type S = (FakeOAuth, Arc<Mutex<AsanaData>>);

const HELP: &str = "For more information on API status codes and how to handle them, read the docs on errors: https://developers.asana.com/docs/errors";

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"errors": [{"message": message, "help": HELP}]})),
    )
        .into_response()
}

fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, "Not Authorized")
}

fn rate_limited(retry_after: u64) -> Response {
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        "You have made too many requests recently. Please, be chill.",
    );
    r.headers_mut()
        .insert("retry-after", retry_after.to_string().parse().unwrap());
    r
}

fn check(
    oauth: &FakeOAuth,
    data: &Mutex<AsanaData>,
    headers: &HeaderMap,
    path: &str,
) -> Result<(), Response> {
    {
        let mut d = data.lock().unwrap();
        let n = {
            let n = d.requests_per_path.entry(path.to_string()).or_default();
            *n += 1;
            *n
        };
        if let Some(&(_, _, retry_after)) = d
            .rate_limit_requests
            .iter()
            .find(|(p, at, _)| p == path && *at == n)
        {
            return Err(rate_limited(retry_after));
        }
        match d.expire_after_calls {
            Some(0) => {
                d.expire_after_calls = None;
                oauth.expire_access_tokens();
            }
            Some(n) => d.expire_after_calls = Some(n - 1),
            None => {}
        }
    }
    oauth.check_api(headers, unauthorized, rate_limited)?;
    data.lock()
        .unwrap()
        .window
        .admit()
        .map(|_| ())
        .map_err(|wait| rate_limited(super::ceil_secs(wait)))
}

/// The shared token endpoint; a refresh answer carries no refresh token (Asana keeps it).
async fn token(
    State(oauth): State<FakeOAuth>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let refresh = form.get("grant_type").map(String::as_str) == Some("refresh_token");
    let response = oauth::token(State(oauth), headers, Form(form)).await;
    if !response.status().is_success() || !refresh {
        return response;
    }
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let mut body: Value = serde_json::from_slice(&bytes).unwrap();
    body.as_object_mut().unwrap().remove("refresh_token");
    Json(body).into_response()
}

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    limit: Option<usize>,
    offset: Option<String>,
    opt_fields: Option<String>,
    workspace: Option<String>,
    archived: Option<bool>,
    project: Option<String>,
    tag: Option<String>,
    assignee: Option<String>,
    completed_since: Option<String>,
    modified_since: Option<String>,
}

/// Compact form unless `opt_fields` asks for more; private `_` fields never leave.
fn shape(v: &Value, opt_fields: Option<&str>) -> Value {
    let mut out = serde_json::Map::new();
    let compact = ["gid", "resource_type", "name"];
    let wanted: Vec<&str> = opt_fields.map_or(vec![], |f| f.split(',').map(str::trim).collect());
    for (k, val) in v.as_object().unwrap() {
        if !k.starts_with('_') && (compact.contains(&k.as_str()) || wanted.contains(&k.as_str())) {
            out.insert(k.clone(), val.clone());
        }
    }
    // A task's `projects`, asked for, are compact project records.
    if let (Some(ps), true) = (v["_projects"].as_array(), wanted.contains(&"projects")) {
        let projects: Vec<Value> = ps
            .iter()
            .map(|p| json!({"gid": p, "resource_type": "project", "name": format!("Project {}", p.as_str().unwrap_or(""))}))
            .collect();
        out.insert("projects".into(), json!(projects));
    }
    Value::Object(out)
}

/// Pages `items` with Asana's `limit`/`offset`; without `limit`, everything (400 when large).
fn page(items: Vec<Value>, q: &ListQuery, path: &str, d: &AsanaData) -> Response {
    let mut r = page_body(items, q, path, d.offset_generation);
    let now = d.now;
    r.headers_mut()
        .insert("date", super::pipedrive::http_date(now).parse().unwrap());
    r
}

fn page_body(items: Vec<Value>, q: &ListQuery, path: &str, generation: u32) -> Response {
    let offset = match q.offset.as_deref() {
        None => 0,
        Some(o) => match base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(o)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                let (g, n) = s.strip_prefix("off:")?.split_once(':')?;
                Some((g.parse::<u32>().ok()?, n.parse::<usize>().ok()?))
            }) {
            Some((g, n)) if g == generation => n,
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "offset: Your pagination token has expired.",
                )
            }
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "offset: Your pagination token is invalid.",
                )
            }
        },
    };
    let shaped: Vec<Value> = items
        .iter()
        .map(|v| shape(v, q.opt_fields.as_deref()))
        .collect();
    let Some(limit) = q.limit else {
        if shaped.len() > 1000 {
            return error(
                StatusCode::BAD_REQUEST,
                "The result is too large. You should use pagination (may require specifying a workspace)!",
            );
        }
        return Json(json!({"data": shaped})).into_response();
    };
    if !(1..=100).contains(&limit) {
        return error(StatusCode::BAD_REQUEST, "limit: Must be between 1 and 100");
    }
    let data: Vec<Value> = shaped.iter().skip(offset).take(limit).cloned().collect();
    let next_page = if offset + limit < shaped.len() {
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("off:{generation}:{}", offset + limit));
        let path = format!("{path}?limit={limit}&offset={token}");
        json!({"offset": token, "uri": format!("https://app.asana.com/api/1.0{path}"), "path": path})
    } else {
        Value::Null
    };
    Json(json!({"data": data, "next_page": next_page})).into_response()
}

fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    s.parse::<DateTime<Utc>>().ok()
}

async fn workspaces(
    State((oauth, data)): State<S>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check(&oauth, &data, &headers, "/api/1.0/workspaces") {
        return r;
    }
    let d = data.lock().unwrap();
    page(d.workspaces.clone(), &q, "/workspaces", &d)
}

async fn projects(
    State((oauth, data)): State<S>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check(&oauth, &data, &headers, "/api/1.0/projects") {
        return r;
    }
    let Some(ws) = q.workspace.clone() else {
        return error(
            StatusCode::BAD_REQUEST,
            "Need to specify a workspace to paginate!",
        );
    };
    let d = data.lock().unwrap();
    let items: Vec<Value> = d
        .projects
        .iter()
        .filter(|p| p["_workspace"] == ws.as_str())
        .filter(|p| q.archived.is_none_or(|a| p["archived"] == a))
        .cloned()
        .collect();
    page(items, &q, "/projects", &d)
}

fn filter_tasks(d: &AsanaData, project: &str, q: &ListQuery) -> Result<Vec<Value>, Response> {
    let completed_since = match q.completed_since.as_deref() {
        None => None,
        Some("now") => Some(d.now),
        Some(s) => Some(parse_instant(s).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "completed_since: Not a valid date-time",
            )
        })?),
    };
    let modified_since = match q.modified_since.as_deref() {
        None => None,
        Some(s) => Some(parse_instant(s).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "modified_since: Not a valid date-time",
            )
        })?),
    };
    if !d.projects.iter().any(|p| p["gid"] == project) {
        return Err(error(StatusCode::NOT_FOUND, "project: Unknown object"));
    }
    let time = |v: &Value, k: &str| v[k].as_str().and_then(parse_instant);
    Ok(d.tasks
        .iter()
        .filter(|t| {
            t["_projects"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p == project))
        })
        .filter(|t| {
            completed_since.is_none_or(|since| {
                !t["completed"].as_bool().unwrap_or(false)
                    || time(t, "completed_at").is_some_and(|c| c >= since)
            })
        })
        .filter(|t| {
            modified_since.is_none_or(|since| time(t, "modified_at").is_some_and(|m| m >= since))
        })
        .cloned()
        .collect())
}

async fn project_tasks(
    State((oauth, data)): State<S>,
    Path(gid): Path<String>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check(
        &oauth,
        &data,
        &headers,
        &format!("/api/1.0/projects/{gid}/tasks"),
    ) {
        return r;
    }
    // `/projects/{gid}/tasks` has no modified_since.
    let q = ListQuery {
        modified_since: None,
        ..q
    };
    let d = data.lock().unwrap();
    match filter_tasks(&d, &gid, &q) {
        Ok(items) => page(items, &q, &format!("/projects/{gid}/tasks"), &d),
        Err(r) => r,
    }
}

async fn tasks(
    State((oauth, data)): State<S>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check(&oauth, &data, &headers, "/api/1.0/tasks") {
        return r;
    }
    let selectors = usize::from(q.project.is_some())
        + usize::from(q.tag.is_some())
        + usize::from(q.assignee.is_some() && q.workspace.is_some());
    if selectors != 1 || (q.assignee.is_some() != q.workspace.is_some()) {
        return error(
            StatusCode::BAD_REQUEST,
            "Must specify exactly one of project, tag, section, user task list, or assignee + workspace",
        );
    }
    let d = data.lock().unwrap();
    let Some(project) = q.project.clone() else {
        // Tags and assignees are not emulated.
        return page(vec![], &q, "/tasks", &d);
    };
    match filter_tasks(&d, &project, &q) {
        Ok(items) => page(items, &q, "/tasks", &d),
        Err(r) => r,
    }
}

#[derive(serde::Deserialize, Default)]
struct EventsQuery {
    resource: Option<String>,
    sync: Option<String>,
    #[allow(dead_code)] // accepted (documented); events are served whole
    opt_fields: Option<String>,
}

/// The 412 Asana answers a missing, invalid or expired sync token with: a fresh token to go on
/// from, once the client has read everything again.
fn precondition_failed(sync: String) -> Response {
    (
        StatusCode::PRECONDITION_FAILED,
        Json(json!({"errors": [{"message": "Sync token invalid or too old. If you are attempting to keep resources in sync, you must fetch the full dataset for this query now and use the new sync token for the next sync."}],
                    "sync": sync})),
    )
        .into_response()
}

/// Most events one call answers (contracts/asana.json `events_cap`).
pub const EVENTS_PER_CALL: usize = 100;

async fn events(
    State((oauth, data)): State<S>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check(&oauth, &data, &headers, "/api/1.0/events") {
        return r;
    }
    let d = data.lock().unwrap();
    if d.events_forbidden {
        // The body of such a refusal is not in the contract: Asana's error shape, a plain message.
        return error(StatusCode::FORBIDDEN, "Forbidden");
    }
    let Some(resource) = q.resource else {
        return error(StatusCode::BAD_REQUEST, "resource: Missing input");
    };
    let known = d.projects.iter().any(|p| p["gid"] == resource.as_str())
        || d.tasks.iter().any(|t| t["gid"] == resource.as_str());
    if !known {
        return error(StatusCode::NOT_FOUND, "resource: Unknown object");
    }
    let generation = d.sync_generation;
    let from = q.sync.as_deref().and_then(|t| {
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t)
            .ok()?;
        let s = String::from_utf8(b).ok()?;
        let (g, n) = s.strip_prefix("sync:")?.split_once(':')?;
        (g.parse::<u32>().ok()? == generation).then_some(n.parse::<u64>().ok()?)
    });
    let Some(from) = from else {
        return precondition_failed(sync_token(generation, d.event_seq));
    };
    let mine: Vec<&(u64, String, Value)> = d
        .events
        .iter()
        .filter(|(seq, p, _)| *seq > from && *p == resource)
        .collect();
    let has_more = mine.len() > EVENTS_PER_CALL;
    let served = &mine[..mine.len().min(EVENTS_PER_CALL)];
    let upto = if has_more {
        served.last().map_or(from, |e| e.0)
    } else {
        d.event_seq
    };
    let body: Vec<Value> = served.iter().map(|e| e.2.clone()).collect();
    let mut r =
        Json(json!({"data": body, "sync": sync_token(generation, upto), "has_more": has_more}))
            .into_response();
    r.headers_mut()
        .insert("date", super::pipedrive::http_date(d.now).parse().unwrap());
    r
}
