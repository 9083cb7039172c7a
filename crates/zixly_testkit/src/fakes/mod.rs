//! Fake provider servers for tests, emulating `shared/docs/providers.md`: each provider's OAuth
//! authorize redirect and token endpoint (its client-auth style, `expires_in`, refresh-token
//! rotation with Xero's grace period, `invalid_grant`), its API shapes and paging, and its failure
//! modes (the exact 401 body of an expired token, 429 with `Retry-After`, injectable 5xx).
//!
//! The fakes are independent of `zixly_connectors` on purpose: they are written from the provider
//! facts, so a connector that misreads a shape fails against them.

pub mod asana;
pub mod hubspot;
pub mod myob;
pub mod oauth;
pub mod pipedrive;
pub mod record;
pub mod xero;

pub use record::{clear_recorded, recorded, RecordedRequest};

use std::net::SocketAddr;

/// Serves `router` on 127.0.0.1 with an ephemeral port; returns its base URL. Every request it
/// answers is recorded under that URL ([`recorded`]) for the contract checks.
pub async fn serve(router: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("binding a fake server");
    let addr = listener.local_addr().unwrap();
    let recording = record::register(&format!("http://{addr}"));
    let router = router.layer(axum::middleware::from_fn_with_state(
        recording,
        record::layer,
    ));
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), handle)
}
