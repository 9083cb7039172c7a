//! zixly_web integration tests: the real server over real HTTP (one test binary).
//!
//! `routes.rs` holds `ROUTES`, the route table every resource registers in (role × route ×
//! tenant matrix, cross-tenant 404s, OpenAPI coverage).
mod auth;
mod auth_hardening;
mod auth_schema;
mod catalogue;
mod errors;
mod escaping;
mod import_limits;
mod imports_page;
mod integrations;
mod nul;
mod openapi_doc;
mod probe;
mod resources;
mod routes;
mod series_csv;
mod team_page;
mod uploads;
mod users;
