//! zixly_web integration tests: the real server over real HTTP (one test binary).
//!
//! `routes.rs` holds `ROUTES`, the route table every resource registers in (role × route ×
//! tenant matrix, cross-tenant 404s, OpenAPI coverage).
mod account_page;
mod alerts;
mod audit_page;
mod auth;
mod auth_hardening;
mod auth_schema;
mod catalogue;
mod client_pages;
mod errors;
mod escaping;
mod goals;
mod import_limits;
mod imports_page;
mod integrations;
mod notify;
mod nul;
mod openapi_doc;
mod page_kit;
mod probe;
mod ranges_page;
mod resources;
mod retention;
mod routes;
mod series_csv;
mod team_page;
mod uploads;
mod users;
