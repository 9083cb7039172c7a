//! The audit page (`/audit`): filtered by kind, rows readable by a person (subject named, details
//! as words, times in the tenant's zone), CLI rows named as such.

use serde_json::json;
use zixly_testkit::app::{spawn_app, PASSWORD};

use super::page_kit::get_page;

/// The `data-action` of each row, in order.
fn actions(html: &str) -> Vec<String> {
    html.split(r#"<tr data-action=""#)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_audit_page_filters_by_kind_and_reads_as_words() {
    let app = spawn_app().await;
    let a = &app.a;
    let res = app
        .post(
            "/api/v1/invitations",
            &a.admin,
            &json!({"email": "kind@a.example", "role": "VIEWER"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = app
        .patch(
            &format!("/api/v1/users/{}", a.viewer.id),
            &a.admin,
            &json!({"role": "EDITOR"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let token = app.login_token(&a.admin.email, PASSWORD).await;
    let cookie = format!("zixly_session={token}");

    let all = get_page(&app, &cookie, "/audit").await;
    let every = actions(&all);
    assert!(every.contains(&"user.invite".to_string()), "{every:?}");
    assert!(every.contains(&"auth.login".to_string()), "{every:?}");
    // Readable: the subject by its email, the change as from → to, the tenant's zone named.
    assert!(all.contains("invitation <b>kind@a.example</b>"), "{all}");
    assert!(all.contains("role: VIEWER → EDITOR"), "{all}");
    assert!(all.contains("When (Australia/Sydney)"), "{all}");
    assert!(
        all.contains("AEDT") || all.contains("AEST"),
        "times in the tenant's zone: {all}"
    );

    let people = actions(&get_page(&app, &cookie, "/audit?kind=user").await);
    assert!(!people.is_empty());
    assert!(people.iter().all(|a| a.starts_with("user.")), "{people:?}");
    assert!(people.contains(&"user.invite".to_string()), "{people:?}");
    let sign_ins = actions(&get_page(&app, &cookie, "/audit?kind=auth").await);
    assert!(
        sign_ins.iter().all(|a| a.starts_with("auth.")),
        "{sign_ins:?}"
    );
    // An unknown kind filters nothing rather than silently showing an empty log.
    assert_eq!(
        actions(&get_page(&app, &cookie, "/audit?kind=bogus").await),
        every
    );
    // The API filters by kind too.
    let api: serde_json::Value = app
        .get("/api/v1/audit-logs?kind=user", &a.admin)
        .await
        .json()
        .await
        .unwrap();
    let api: Vec<&str> = api["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(
        !api.is_empty() && api.iter().all(|a| a.starts_with("user.")),
        "{api:?}"
    );
}
