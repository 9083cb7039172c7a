//! Names and request values are escaped on every page that shows them: a client named like a
//! script renders as text, never as markup.

use serde_json::{json, Value};
use zixly_testkit::app::{spawn_app, PASSWORD};

use super::page_kit::get_page;

const EVIL: &str = r#"<script>alert(1)</script>"&'"#;
const RAW: &str = "<script>alert(1)</script>";
const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";

#[tokio::test]
async fn a_script_like_client_name_renders_escaped_on_every_page() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/api/v1/clients",
            &app.a.editor,
            &json!({"client_id": "EVIL-1", "client_name": EVIL}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let client: Value = res.json().await.unwrap();
    let id = client["id"].as_str().expect("the created client has an id");

    let token = app.login_token(&app.a.admin.email, PASSWORD).await;
    let cookie = format!("zixly_session={token}");
    let action = url::form_urlencoded::byte_serialize(EVIL.as_bytes()).collect::<String>();
    // (path, whether the evil text must appear there, escaped)
    let pages = [
        ("/clients".to_string(), true),
        (format!("/clients/{id}"), true),
        ("/".to_string(), false),
        ("/reports".to_string(), false),
        ("/team".to_string(), false),
        ("/integrations".to_string(), false),
        ("/imports".to_string(), false),
        (format!("/audit?action={action}"), true),
    ];
    for (path, shown) in &pages {
        let html = get_page(&app, &cookie, path).await;
        assert!(!html.contains(RAW), "{path} renders the name as markup");
        if *shown {
            assert!(
                html.contains(ESCAPED),
                "{path} does not show the escaped name"
            );
        }
    }
}
