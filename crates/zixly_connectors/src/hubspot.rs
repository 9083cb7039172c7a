//! HubSpot CRM v3: pipelines, companies and deals (with `dealstage` history and company
//! associations), `after`-cursor paging; normalized into lead events.
//!
//! Mapping (issue 5): companies -> clients (`client_id` = company id); each `dealstage` history
//! entry of a deal -> one lead event (`lead_id` = deal id, `stage` = the stage's label, `event_date`
//! = the entry's timestamp, `value` = `amount`). The latest entry carries the deal's status: `won`
//! (`hs_is_closed_won`), `lost` (closed, not won), `stale` (open and not modified for the
//! configured number of days) or `active`; earlier entries are `active`. Archived deals are listed
//! separately (`archived=true`; archiving does not bump `hs_lastmodifieddate`) and reported as
//! removed. Every property value is a string, `amount` included.
//!
//! Incremental reads: [`HubspotClient::modified_deal_ids`] searches
//! (`POST /crm/v3/objects/deals/search`) on `hs_lastmodifieddate GTE <epoch-ms>`, sorted ascending,
//! `limit` 200 with `after` paging; a query stops before HubSpot's 10,000-result cap and restarts
//! from the last `hs_lastmodifieddate` it saw (splitting the time window). Search results carry
//! neither property history nor associations, so each modified deal is then read with
//! [`HubspotClient::deal`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use zixly_crypto::SecretString;

use crate::pace::{header_u64, Lane, Pacer};
use crate::ConnectorResult;

pub const PAGE_LIMIT: usize = 100;
/// Smaller pages when asking for property history.
pub const HISTORY_PAGE_LIMIT: usize = 50;
/// Largest `limit` the search endpoint accepts.
pub const SEARCH_LIMIT: usize = 200;
/// Results one search query can page through (HubSpot answers 400 past it).
pub const SEARCH_CAP: usize = 10_000;

#[derive(Debug, Clone, Deserialize)]
pub struct Pipeline {
    pub id: String,
    pub label: String,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Stage {
    pub id: String,
    pub label: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HistoryEntry {
    pub value: String,
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AssociationRef {
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AssociationList {
    pub results: Vec<AssociationRef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrmObject {
    pub id: String,
    #[serde(default)]
    pub properties: HashMap<String, Option<String>>,
    #[serde(default)]
    pub properties_with_history: HashMap<String, Vec<HistoryEntry>>,
    #[serde(default)]
    pub associations: HashMap<String, AssociationList>,
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub archived: bool,
    /// The deal's primary company, when it has several (set by
    /// [`HubspotClient::resolve_primary_companies`]; never in HubSpot's answer).
    #[serde(skip)]
    pub primary_company: Option<String>,
}

impl CrmObject {
    /// The distinct company ids associated with this deal, in ascending order. HubSpot's v3
    /// answer lists a company once per association type (the unlabeled type is always there)
    /// in no defined order.
    pub fn company_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .associations
            .get("companies")
            .map(|a| a.results.iter().map(|r| r.id.as_str()).collect())
            .unwrap_or_default();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The company a deal's figures belong to: its only company, or the primary one of several
    /// (the lowest id when HubSpot names no primary, so the choice is at least stable).
    pub fn company(&self) -> Option<&str> {
        let ids = self.company_ids();
        match (ids.len(), self.primary_company.as_deref()) {
            (0, _) => None,
            (1, _) => Some(ids[0]),
            (_, Some(p)) if ids.contains(&p) => Some(p),
            _ => Some(ids[0]),
        }
    }

    pub fn prop(&self, name: &str) -> Option<&str> {
        self.properties
            .get(name)
            .and_then(|v| v.as_deref())
            .filter(|s| !s.is_empty())
    }
}

#[derive(Deserialize)]
struct Page<T> {
    results: Vec<T>,
    paging: Option<Paging>,
}

/// One entry of `GET /crm/v4/objects/deals/{id}/associations/companies`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V4Association {
    to_object_id: serde_json::Value,
    #[serde(default)]
    association_types: Vec<V4AssociationType>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V4AssociationType {
    category: String,
    type_id: i64,
}

/// HubSpot's association type id of "deal to primary company" (category `HUBSPOT_DEFINED`).
pub const DEAL_TO_PRIMARY_COMPANY: i64 = 5;

#[derive(Deserialize)]
struct SearchPage {
    results: Vec<CrmObject>,
    paging: Option<Paging>,
    /// How many records match the query (all pages).
    #[serde(default)]
    total: Option<u64>,
}

/// One page of a deal listing ([`HubspotClient::deal_page`]).
#[derive(Debug, Clone)]
pub struct DealPage {
    pub deals: Vec<CrmObject>,
    /// `paging.next.after`: the next page's cursor; `None` on the last page.
    pub next: Option<String>,
}

/// The first page of a search for modified deals ([`HubspotClient::modified_deals`]).
#[derive(Debug, Clone)]
pub struct ModifiedDeals {
    /// Ids of the first page (each once), ascending by modification.
    pub ids: Vec<String>,
    /// How many live deals match (HubSpot's `total`).
    pub total: u64,
    /// Whether more pages follow this one.
    pub more: bool,
}

#[derive(Deserialize)]
struct Paging {
    next: Option<Next>,
}

#[derive(Deserialize)]
struct Next {
    after: String,
}

pub struct HubspotClient {
    http: reqwest::Client,
    api_url: String,
    access_token: SecretString,
    pub calls: std::sync::atomic::AtomicU64,
    /// The connection's general lane (every request but search), shared with every worker.
    pacer: std::sync::Arc<Pacer>,
    /// The connection's search lane: HubSpot limits `POST .../search` separately (per second per
    /// token) and exempts it from the ten-secondly limit (contracts/hubspot.json `rate_limits`).
    search_pacer: std::sync::Arc<Pacer>,
}

const DEAL_PROPERTIES: &str =
    "dealname,amount,deal_currency_code,dealstage,pipeline,closedate,createdate,hs_lastmodifieddate,hs_is_closed,hs_is_closed_won";

impl HubspotClient {
    pub fn new(http: reqwest::Client, api_url: &str, access_token: SecretString) -> HubspotClient {
        HubspotClient {
            http,
            api_url: api_url.trim_end_matches('/').into(),
            access_token,
            calls: 0.into(),
            pacer: std::sync::Arc::new(Pacer::unlimited()),
            search_pacer: std::sync::Arc::new(Pacer::unlimited()),
        }
    }

    /// Paces general requests with `general` and searches with `search` (the connection's
    /// pacers of those lanes, shared).
    pub fn with_pacers(
        mut self,
        general: std::sync::Arc<Pacer>,
        search: std::sync::Arc<Pacer>,
    ) -> HubspotClient {
        self.pacer = general;
        self.search_pacer = search;
        self
    }

    /// Sends a request under its lane's pacer, counted, and tells the general pacer what
    /// HubSpot's `X-HubSpot-RateLimit-Remaining` / `-Interval-Milliseconds` say (search answers
    /// do not carry the ten-secondly budget, so they are not read as one).
    async fn send(
        &self,
        lane: Lane,
        request: reqwest::RequestBuilder,
    ) -> ConnectorResult<(reqwest::StatusCode, reqwest::header::HeaderMap, String)> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pacer = match lane {
            Lane::General => &self.pacer,
            Lane::Search => &self.search_pacer,
        };
        pacer.acquire().await;
        let answer = crate::http::send_raw(request).await?;
        if lane == Lane::General {
            let headers = &answer.1;
            let interval = header_u64(headers, "x-hubspot-ratelimit-interval-milliseconds")
                .map(std::time::Duration::from_millis)
                .unwrap_or(std::time::Duration::from_secs(10));
            pacer.observe_remaining(
                header_u64(headers, "x-hubspot-ratelimit-remaining"),
                interval,
            );
        }
        Ok(answer)
    }

    /// [`Self::send`], then a successful JSON answer parsed; anything else classified (a 429
    /// with `Retry-After` is [`crate::ConnectorError::RateLimited`]).
    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        lane: Lane,
        request: reqwest::RequestBuilder,
    ) -> ConnectorResult<T> {
        let (status, headers, body) = self.send(lane, request).await?;
        if !status.is_success() {
            return Err(crate::http::classify(status, &headers, &body));
        }
        serde_json::from_str(&body).map_err(|e| {
            crate::ConnectorError::Permanent(format!("unexpected response shape: {e}"))
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> ConnectorResult<T> {
        self.send_json(
            Lane::General,
            self.http
                .get(format!("{}{path}", self.api_url))
                .bearer_auth(self.access_token.expose())
                .query(query),
        )
        .await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> ConnectorResult<T> {
        // The only POST this client sends is a search.
        self.send_json(
            Lane::Search,
            self.http
                .post(format!("{}{path}", self.api_url))
                .bearer_auth(self.access_token.expose())
                .json(body),
        )
        .await
    }

    /// The account's company (home) currency, `companyCurrency` of `/account-info/v3/details`:
    /// the currency of every amount whose deal has no `deal_currency_code`.
    pub async fn company_currency(&self) -> ConnectorResult<String> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Details {
            company_currency: String,
        }
        Ok(self
            .get::<Details>("/account-info/v3/details", &[])
            .await?
            .company_currency)
    }

    pub async fn pipelines(&self) -> ConnectorResult<Vec<Pipeline>> {
        Ok(self
            .get::<Page<Pipeline>>("/crm/v3/pipelines/deals", &[])
            .await?
            .results)
    }

    /// Every page of a list endpoint, following `paging.next.after` until it is absent.
    async fn list(
        &self,
        path: &str,
        query: Vec<(&str, String)>,
        limit: usize,
    ) -> ConnectorResult<Vec<CrmObject>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut q = query.clone();
            q.push(("limit", limit.to_string()));
            if let Some(a) = &after {
                q.push(("after", a.clone()));
            }
            let page: Page<CrmObject> = self.get(path, &q).await?;
            out.extend(page.results);
            match page.paging.and_then(|p| p.next) {
                Some(next) => after = Some(next.after),
                None => return Ok(out),
            }
        }
    }

    pub async fn companies(&self) -> ConnectorResult<Vec<CrmObject>> {
        self.list(
            "/crm/v3/objects/companies",
            vec![("properties", "name,industry".into())],
            PAGE_LIMIT,
        )
        .await
    }

    /// One page of deals (live or archived) with stage history and company associations,
    /// [`HISTORY_PAGE_LIMIT`] a page, from `after` (`None`: the first page). A resumable runner
    /// keeps `next` in its checkpoint.
    pub async fn deal_page(
        &self,
        archived: bool,
        after: Option<&str>,
    ) -> ConnectorResult<DealPage> {
        let mut q: Vec<(&str, String)> = vec![
            ("properties", DEAL_PROPERTIES.into()),
            ("propertiesWithHistory", "dealstage".into()),
            ("associations", "companies".into()),
            ("archived", archived.to_string()),
            ("limit", HISTORY_PAGE_LIMIT.to_string()),
        ];
        if let Some(a) = after {
            q.push(("after", a.to_string()));
        }
        let page: Page<CrmObject> = self.get("/crm/v3/objects/deals", &q).await?;
        Ok(DealPage {
            deals: page.results,
            next: page.paging.and_then(|p| p.next).map(|n| n.after),
        })
    }

    /// The first search page of live deals whose `hs_lastmodifieddate` is at or after `since`
    /// (one search request): enough to tell a small increment (read deal by deal) from a large
    /// one (cheaper through the listing, 50 deals a request) by HubSpot's `total`.
    pub async fn modified_deals(&self, since: DateTime<Utc>) -> ConnectorResult<ModifiedDeals> {
        let page = self
            .search_modified(since.timestamp_millis(), SEARCH_LIMIT)
            .await?;
        let mut ids: Vec<String> = Vec::with_capacity(page.results.len());
        for d in page.results {
            if !ids.contains(&d.id) {
                ids.push(d.id);
            }
        }
        Ok(ModifiedDeals {
            total: page.total.unwrap_or(ids.len() as u64),
            more: page.paging.and_then(|p| p.next).is_some(),
            ids,
        })
    }

    /// How many live deals the portal has (a search of one result for its `total`): the size
    /// of a complete read, for progress.
    pub async fn live_deal_count(&self) -> ConnectorResult<Option<u64>> {
        Ok(self.search_modified(0, 1).await?.total)
    }

    /// One search page: live deals modified at or after `from_ms`, ascending, `limit` a page.
    async fn search_modified(&self, from_ms: i64, limit: usize) -> ConnectorResult<SearchPage> {
        let body = serde_json::json!({
            "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate",
                "operator": "GTE", "value": from_ms.to_string()}]}],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": ["hs_lastmodifieddate"],
            "limit": limit,
        });
        self.post("/crm/v3/objects/deals/search", &body).await
    }

    /// Deals (live or archived) with stage history and company associations.
    pub async fn deals(&self, archived: bool) -> ConnectorResult<Vec<CrmObject>> {
        self.list(
            "/crm/v3/objects/deals",
            vec![
                ("properties", DEAL_PROPERTIES.into()),
                ("propertiesWithHistory", "dealstage".into()),
                ("associations", "companies".into()),
                ("archived", archived.to_string()),
            ],
            HISTORY_PAGE_LIMIT,
        )
        .await
    }
}

impl HubspotClient {
    /// Sets [`CrmObject::primary_company`] on every deal associated with several companies,
    /// from the v4 associations endpoint: only there is the primary company marked (by type id
    /// [`DEAL_TO_PRIMARY_COMPANY`]); the v3 list gives the companies in no defined order. One
    /// call per such deal; deals with one company or none need none.
    pub async fn resolve_primary_companies(&self, deals: &mut [CrmObject]) -> ConnectorResult<()> {
        for deal in deals.iter_mut().filter(|d| d.company_ids().len() > 1) {
            let mut after: Option<String> = None;
            loop {
                let mut q = vec![("limit", "500".to_string())];
                if let Some(a) = &after {
                    q.push(("after", a.clone()));
                }
                let page: Page<V4Association> = self
                    .get(
                        &format!("/crm/v4/objects/deals/{}/associations/companies", deal.id),
                        &q,
                    )
                    .await?;
                let primary = page.results.iter().find(|a| {
                    a.association_types.iter().any(|t| {
                        t.category == "HUBSPOT_DEFINED" && t.type_id == DEAL_TO_PRIMARY_COMPANY
                    })
                });
                if let Some(p) = primary {
                    // The spec types the id as a string; accept a number too.
                    deal.primary_company = Some(match &p.to_object_id {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                    break;
                }
                match page.paging.and_then(|p| p.next) {
                    Some(next) => after = Some(next.after),
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Ids of the live deals whose `hs_lastmodifieddate` is at or after `since` (each once), in
    /// ascending order of modification. `None` when more than [`SEARCH_CAP`] deals share one
    /// millisecond, so the window cannot be split: the caller lists everything instead.
    pub async fn modified_deal_ids(
        &self,
        since: DateTime<Utc>,
    ) -> ConnectorResult<Option<Vec<String>>> {
        let mut out: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut from = since.timestamp_millis();
        loop {
            let mut after: Option<String> = None;
            let mut read = 0usize;
            let mut last: Option<i64> = None;
            loop {
                let mut body = serde_json::json!({
                    "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate",
                        "operator": "GTE", "value": from.to_string()}]}],
                    "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                    "properties": ["hs_lastmodifieddate"],
                    "limit": SEARCH_LIMIT,
                });
                if let Some(a) = &after {
                    body["after"] = serde_json::json!(a);
                }
                let page: SearchPage = self.post("/crm/v3/objects/deals/search", &body).await?;
                read += page.results.len();
                for d in page.results {
                    if let Some(m) = d.prop("hs_lastmodifieddate").and_then(parse_modified) {
                        last = Some(last.map_or(m, |l: i64| l.max(m)));
                    }
                    if seen.insert(d.id.clone()) {
                        out.push(d.id);
                    }
                }
                match page.paging.and_then(|p| p.next) {
                    None => return Ok(Some(out)),
                    Some(next) if read + SEARCH_LIMIT <= SEARCH_CAP => after = Some(next.after),
                    Some(_) => break,
                }
            }
            // The cap is near: restart the window at the newest modification read so far.
            match last {
                Some(l) if l > from => from = l,
                _ => return Ok(None),
            }
        }
    }

    /// One live deal with stage history and company associations; `None` when it is gone
    /// (archived or deleted since it was found).
    pub async fn deal(&self, id: &str) -> ConnectorResult<Option<CrmObject>> {
        let (status, headers, body) = self
            .send(
                Lane::General,
                self.http
                    .get(format!("{}/crm/v3/objects/deals/{id}", self.api_url))
                    .bearer_auth(self.access_token.expose())
                    .query(&[
                        ("properties", DEAL_PROPERTIES),
                        ("propertiesWithHistory", "dealstage"),
                        ("associations", "companies"),
                    ]),
            )
            .await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(crate::http::classify(status, &headers, &body));
        }
        serde_json::from_str(&body).map(Some).map_err(|e| {
            crate::ConnectorError::Permanent(format!("unexpected response shape: {e}"))
        })
    }
}

/// `hs_lastmodifieddate` as epoch milliseconds (search answers ISO 8601; accept epoch-ms too).
fn parse_modified(s: &str) -> Option<i64> {
    s.parse::<DateTime<Utc>>()
        .map(|t| t.timestamp_millis())
        .ok()
        .or_else(|| s.parse::<i64>().ok())
}

/// One lead event, before validation by the domain layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadEvent {
    pub client_id: String,
    pub lead_id: String,
    pub stage: String,
    pub event_date: DateTime<Utc>,
    pub value: Option<Decimal>,
    pub currency: Option<String>,
    /// `active`, `won`, `lost`, `stale`.
    pub status: &'static str,
}

/// Normalizes deals. Deals without an associated company have no client and are skipped (counted
/// by the caller as rejected). `stale_after_days` per pipeline id (settings); `now` is injected so
/// the rule is testable.
pub fn lead_events(
    deals: &[CrmObject],
    pipelines: &[Pipeline],
    stale_after_days: &HashMap<String, i64>,
    now: DateTime<Utc>,
) -> (Vec<LeadEvent>, usize) {
    let labels: HashMap<&str, &str> = pipelines
        .iter()
        .flat_map(|p| p.stages.iter().map(|s| (s.id.as_str(), s.label.as_str())))
        .collect();
    let mut out = Vec::new();
    let mut skipped = 0;
    for deal in deals.iter().filter(|d| !d.archived) {
        let Some(company) = deal.company() else {
            skipped += 1;
            continue;
        };
        let value = deal
            .prop("amount")
            .and_then(|a| a.parse::<Decimal>().ok())
            .map(|d| d.round_dp(2));
        let closed = deal.prop("hs_is_closed") == Some("true");
        let won = deal.prop("hs_is_closed_won") == Some("true");
        let modified = deal
            .prop("hs_lastmodifieddate")
            .and_then(|s| s.parse::<DateTime<Utc>>().ok())
            .or(deal.updated_at);
        let stale = deal
            .prop("pipeline")
            .and_then(|p| stale_after_days.get(p))
            .zip(modified)
            .is_some_and(|(days, m)| now - m > chrono::Duration::days(*days));
        let current = if won {
            "won"
        } else if closed {
            "lost"
        } else if stale {
            "stale"
        } else {
            "active"
        };
        let mut history = deal
            .properties_with_history
            .get("dealstage")
            .cloned()
            .unwrap_or_default();
        history.sort_by_key(|h| h.timestamp);
        if history.is_empty() {
            if let (Some(stage), Some(at)) = (deal.prop("dealstage"), modified) {
                history.push(HistoryEntry {
                    value: stage.into(),
                    timestamp: at,
                });
            }
        }
        let last = history.len().saturating_sub(1);
        for (i, h) in history.iter().enumerate() {
            out.push(LeadEvent {
                client_id: company.to_string(),
                lead_id: deal.id.clone(),
                stage: labels
                    .get(h.value.as_str())
                    .map_or_else(|| h.value.clone(), |l| (*l).to_string()),
                event_date: h.timestamp,
                value,
                currency: deal.prop("deal_currency_code").map(str::to_string),
                status: if i == last { current } else { "active" },
            });
        }
    }
    (out, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deals_become_stage_events_with_status() {
        let pipelines: Vec<Pipeline> = serde_json::from_value(serde_json::json!([{"id":"default","label":"Sales",
            "stages":[{"id":"appointmentscheduled","label":"Appointment"},{"id":"closedwon","label":"Won"}]}]))
        .unwrap();
        let deals: Vec<CrmObject> = serde_json::from_value(serde_json::json!([
            {"id":"1","properties":{"amount":"1500.5","dealstage":"closedwon","pipeline":"default","hs_is_closed":"true","hs_is_closed_won":"true"},
             "propertiesWithHistory":{"dealstage":[{"value":"closedwon","timestamp":"2024-02-01T00:00:00Z"},{"value":"appointmentscheduled","timestamp":"2024-01-01T00:00:00Z"}]},
             "associations":{"companies":{"results":[{"id":"c9","type":"deal_to_company"}]}},"archived":false},
            {"id":"2","properties":{"amount":null,"dealstage":"appointmentscheduled","pipeline":"default","hs_is_closed":"false","hs_lastmodifieddate":"2024-01-01T00:00:00Z"},
             "associations":{"companies":{"results":[{"id":"c9"}]}},"archived":false},
            {"id":"3","properties":{"amount":"1"},"archived":false}
        ]))
        .unwrap();
        let now: DateTime<Utc> = "2024-03-01T00:00:00Z".parse().unwrap();
        let (events, skipped) = lead_events(
            &deals,
            &pipelines,
            &HashMap::from([("default".into(), 30)]),
            now,
        );
        assert_eq!(skipped, 1);
        assert_eq!(events.len(), 3);
        assert_eq!(
            (events[0].stage.as_str(), events[0].status),
            ("Appointment", "active")
        );
        assert_eq!((events[1].stage.as_str(), events[1].status), ("Won", "won"));
        assert_eq!(events[1].value, Some("1500.5".parse().unwrap()));
        assert_eq!(
            (
                events[2].lead_id.as_str(),
                events[2].status,
                events[2].value
            ),
            ("2", "stale", None)
        );
    }
}
