//! Fake Asana: `/-/oauth_authorize`, `/-/oauth_token` (client credentials in the form body, PKCE;
//! a refresh answers a new access token and NO refresh token), and `/api/1.0/{workspaces,projects,
//! tasks}` plus `/api/1.0/projects/{gid}/tasks` with `limit` (1..=100) / opaque `offset` tokens and
//! `next_page: null` on the last page, compact records unless `opt_fields` asks for more,
//! `completed_since` (incomplete tasks OR tasks completed since then; `now`: incomplete only),
//! `modified_since`, `/tasks` refusing anything but exactly one of project, tag or
//! assignee+workspace, `{errors:[{message, help}]}` bodies, 401 `Not Authorized`, 429 with
//! `Retry-After` (the per-token window, or injected at the n-th request to a path). Deleted tasks
//! simply disappear and moved tasks keep their `modified_at` (Asana shows both only through events).

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
    /// `completed_at: Some` completes it at that instant.
    pub fn upsert_task(
        &self,
        gid: &str,
        projects: &[&str],
        completed_at: Option<DateTime<Utc>>,
        due_on: Option<&str>,
    ) {
        let mut d = self.data.lock().unwrap();
        let now = ts(d.now);
        let created = d
            .tasks
            .iter()
            .find(|t| t["gid"] == gid)
            .map_or_else(|| json!(now), |t| t["created_at"].clone());
        d.tasks.retain(|t| t["gid"] != gid);
        d.tasks.push(
            json!({"gid": gid, "resource_type": "task", "name": format!("Task {gid}"),
            "completed": completed_at.is_some(), "completed_at": completed_at.map(ts),
            "created_at": created, "modified_at": now, "due_on": due_on, "_projects": projects}),
        );
    }

    /// Moves a task to `projects` without touching `modified_at`: Asana does not count a move as
    /// a modification (contracts/asana.json `modified_at_not_on_move`).
    pub fn move_task(&self, gid: &str, projects: &[&str]) {
        let mut d = self.data.lock().unwrap();
        let t = d
            .tasks
            .iter_mut()
            .find(|t| t["gid"] == gid)
            .expect("a task to move");
        t["_projects"] = json!(projects);
    }

    /// Deletes a task: lists stop returning it (its deletion shows only in the events feed).
    pub fn delete_task(&self, gid: &str) {
        self.data.lock().unwrap().tasks.retain(|t| t["gid"] != gid);
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
