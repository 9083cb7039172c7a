//! Users, invitations, password resets and the audit log.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use zixly_domain::Role;
use zixly_testkit::app::{spawn_app, TestApp, PASSWORD};

async fn body(res: reqwest::Response) -> Value {
    res.json().await.unwrap()
}

fn token_from_link(link: &str) -> String {
    link.split("#token=")
        .nth(1)
        .unwrap_or_else(|| panic!("no token in {link}"))
        .to_string()
}

async fn accept(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.anonymous(Method::POST, "/api/v1/auth/accept-invitation")
        .json(&json!({"token": token, "password": password, "display_name": "New Person"}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn invitation_without_mail_returns_a_single_use_link_that_creates_the_user() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/api/v1/invitations",
            &app.a.admin,
            &json!({"email": "New@A.example", "role": "EDITOR"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let v = body(res).await;
    assert_eq!(v["delivery"], "link");
    assert_eq!(v["invitation"]["email"], "new@a.example");
    let link = v["link"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("{}/accept-invitation#token=zxi_", app.base_url)),
        "{link}"
    );
    let token = token_from_link(link);

    let pending = body(app.get("/api/v1/invitations", &app.a.admin).await).await;
    assert_eq!(pending["data"].as_array().unwrap().len(), 1);
    assert!(!pending.to_string().contains(&token));

    // A rejected password does not use up the link.
    let short = accept(&app, &token, "short").await;
    assert_eq!(short.status(), 422);
    assert_eq!(
        body(short).await["error"]["details"][0]["field"],
        "password"
    );

    let res = accept(&app, &token, "a good new password").await;
    assert_eq!(res.status(), 201);
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("zixly_session="));
    let session = body(res).await;
    assert_eq!(session["user"]["role"], "EDITOR");
    assert_eq!(session["user"]["display_name"], "New Person");
    assert_eq!(session["user"]["tenant_id"], app.a.id.to_string());

    let again = accept(&app, &token, "a good new password").await;
    assert_eq!(again.status(), 400);
    assert_eq!(body(again).await["error"]["code"], "invalid_token");
    assert_eq!(
        app.login("new@a.example", "a good new password")
            .await
            .status(),
        200
    );
    assert!(
        body(app.get("/api/v1/invitations", &app.a.admin).await).await["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn invitation_with_mail_sends_the_link_instead_of_showing_it() {
    let app = TestApp::builder().with_mailer().spawn().await;
    let v = body(
        app.post(
            "/api/v1/invitations",
            &app.b.admin,
            &json!({"email": "mailme@b.example", "role": "VIEWER"}),
        )
        .await,
    )
    .await;
    assert_eq!(v["delivery"], "email");
    assert!(v["link"].is_null());
    let mails = app.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, "mailme@b.example");
    let link = mails[0]
        .body
        .lines()
        .find(|l| l.contains("#token="))
        .unwrap()
        .trim();
    assert_eq!(
        accept(&app, &token_from_link(link), "a good new password")
            .await
            .status(),
        201
    );
}

/// One SMTP session as a minimal server on localhost saw it: the command lines and the message.
async fn fake_smtp_session(listener: tokio::net::TcpListener) -> (Vec<String>, String) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (stream, _) = listener.accept().await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
    let (mut commands, mut data, mut in_data) = (Vec::new(), String::new(), false);
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
            break;
        }
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                write.write_all(b"250 queued\r\n").await.unwrap();
            } else {
                data.push_str(&line);
            }
            continue;
        }
        commands.push(line.trim_end().to_string());
        let reply: &[u8] = match line.get(..4).unwrap_or_default() {
            "EHLO" => b"250-fake\r\n250 8BITMIME\r\n",
            "MAIL" | "RCPT" => b"250 ok\r\n",
            "DATA" => {
                in_data = true;
                b"354 go ahead\r\n"
            }
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                break;
            }
            _ => b"502 what\r\n",
        };
        write.write_all(reply).await.unwrap();
    }
    (commands, data)
}

/// Decodes a quoted-printable body (RFC 2045 6.7): lettre uses it for lines of 76+ characters.
fn decode_quoted_printable(body: &str) -> String {
    let joined = body.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The invitation goes through the real SMTP client (`SmtpMailer`, lettre) to an SMTP server.
#[tokio::test]
async fn invitation_mail_is_delivered_over_smtp() {
    let app = spawn_app().await;
    let smtp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let smtp_url = format!("smtp://127.0.0.1:{}", smtp.local_addr().unwrap().port());
    let session = tokio::spawn(fake_smtp_session(smtp));
    // A second server on the same database, sending through SMTP.
    let mut state = app.state.clone();
    let mailer =
        zixly_web::mail::SmtpMailer::from_url(&smtp_url, "Zixly <zixly@a.example>").unwrap();
    state.mailer = Some(std::sync::Arc::new(mailer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(zixly_web::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let res = app
        .client
        .post(format!("{base}/api/v1/invitations"))
        .bearer_auth(&app.b.admin.token)
        .json(&json!({"email": "smtp-invitee@b.example", "role": "EDITOR"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let v = body(res).await;
    assert_eq!(v["delivery"], "email", "{v}");
    assert!(v["link"].is_null());
    let (commands, data) = tokio::time::timeout(Duration::from_secs(10), session)
        .await
        .unwrap()
        .unwrap();
    let _ = stop.send(());
    assert!(
        commands.contains(&"MAIL FROM:<zixly@a.example>".to_string()),
        "{commands:?}"
    );
    assert!(
        commands.contains(&"RCPT TO:<smtp-invitee@b.example>".to_string()),
        "{commands:?}"
    );
    assert_eq!(commands.iter().filter(|c| c.starts_with("RCPT")).count(), 1);
    assert!(
        data.contains("\r\nTo: smtp-invitee@b.example\r\n"),
        "{data}"
    );
    assert!(
        data.contains("\r\nFrom: Zixly <zixly@a.example>\r\n"),
        "{data}"
    );
    assert!(
        data.contains("\r\nSubject: You are invited to Zixly\r\n"),
        "{data}"
    );
    let (headers, raw_body) = data.split_once("\r\n\r\n").unwrap();
    let text = if headers.contains("Content-Transfer-Encoding: quoted-printable") {
        decode_quoted_printable(raw_body)
    } else {
        raw_body.to_string()
    };
    assert!(
        text.contains("admin@b.example invited you to Zixly as EDITOR."),
        "{text}"
    );
    let link = text
        .lines()
        .find(|l| l.contains("/accept-invitation#token="))
        .unwrap_or_else(|| panic!("no link in {text}"))
        .trim();
    assert!(link.starts_with(&app.base_url), "{link}");
    // The mailed link works, once.
    let token = token_from_link(link);
    assert_eq!(
        accept(&app, &token, "a good new password").await.status(),
        201
    );
    assert_eq!(
        accept(&app, &token, "a good new password").await.status(),
        400
    );
}

#[tokio::test]
async fn invitations_are_validated_and_expire_and_can_be_revoked() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/api/v1/invitations",
            &app.a.admin,
            &json!({"email": "not-an-email", "role": "OWNER"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    let v = body(res).await;
    let fields: Vec<&str> = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "role"]);
    let existing = app
        .post(
            "/api/v1/invitations",
            &app.a.admin,
            &json!({"email": "viewer@a.example", "role": "VIEWER"}),
        )
        .await;
    assert_eq!(existing.status(), 409);

    // Expired.
    let v = body(
        app.post(
            "/api/v1/invitations",
            &app.a.admin,
            &json!({"email": "late@a.example", "role": "VIEWER"}),
        )
        .await,
    )
    .await;
    let token = token_from_link(v["link"].as_str().unwrap());
    app.db
        .superuser()
        .await
        .execute("update invitations set created_at = now() - interval '8 days', expires_at = now() - interval '1 day'", &[])
        .await
        .unwrap();
    assert_eq!(
        accept(&app, &token, "a good new password").await.status(),
        400
    );

    // Revoked.
    let v = body(
        app.post(
            "/api/v1/invitations",
            &app.a.admin,
            &json!({"email": "gone@a.example", "role": "VIEWER"}),
        )
        .await,
    )
    .await;
    let token = token_from_link(v["link"].as_str().unwrap());
    let id = v["invitation"]["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/api/v1/invitations/{id}"), &app.a.admin)
            .await
            .status(),
        204
    );
    assert_eq!(
        accept(&app, &token, "a good new password").await.status(),
        400
    );

    // Re-inviting replaces the pending link.
    let first = body(
        app.post(
            "/api/v1/invitations",
            &app.a.admin,
            &json!({"email": "twice@a.example", "role": "VIEWER"}),
        )
        .await,
    )
    .await;
    let second = body(
        app.post(
            "/api/v1/invitations",
            &app.a.admin,
            &json!({"email": "twice@a.example", "role": "EDITOR"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        accept(
            &app,
            &token_from_link(first["link"].as_str().unwrap()),
            "a good new password"
        )
        .await
        .status(),
        400
    );
    let created = body(
        accept(
            &app,
            &token_from_link(second["link"].as_str().unwrap()),
            "a good new password",
        )
        .await,
    )
    .await;
    assert_eq!(created["user"]["role"], "EDITOR");

    // A token of one kind is not accepted as another.
    let personal = app.a.viewer.token.clone();
    assert_eq!(
        accept(&app, &personal, "a good new password")
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn admin_issued_password_reset_is_single_use_and_signs_the_user_out() {
    let app = spawn_app().await;
    let res = app
        .post(
            &format!("/api/v1/users/{}/password-reset", app.a.editor.id),
            &app.a.admin,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let v = body(res).await;
    assert_eq!(v["delivery"], "link");
    let token = token_from_link(v["link"].as_str().unwrap());
    assert!(token.starts_with("zxr_"));
    let confirm = |password: &'static str| {
        app.anonymous(Method::POST, "/api/v1/auth/password-reset/confirm")
            .json(&json!({"token": token, "password": password}))
            .send()
    };
    assert_eq!(confirm("short").await.unwrap().status(), 422);
    assert_eq!(confirm("the reset password").await.unwrap().status(), 204);
    assert_eq!(confirm("the reset password").await.unwrap().status(), 400);
    assert_eq!(
        app.get("/api/v1/me", &app.a.editor).await.status(),
        401,
        "tokens are revoked by a reset"
    );
    assert_eq!(app.login("editor@a.example", PASSWORD).await.status(), 401);
    assert_eq!(
        app.login("editor@a.example", "the reset password")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn self_service_reset_answers_the_same_for_any_email_and_mails_only_real_accounts() {
    let app = TestApp::builder().with_mailer().spawn().await;
    let mut answers = Vec::new();
    for email in ["viewer@b.example", "nobody@b.example"] {
        let res = app
            .anonymous(Method::POST, "/api/v1/auth/password-reset")
            .json(&json!({"email": email}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        answers.push(body(res).await);
    }
    assert_eq!(answers[0], answers[1]);
    // Mail goes out in the background: wait for it (bounded).
    let mut mails = Vec::new();
    for _ in 0..100 {
        mails = app.mails();
        if !mails.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].to, "viewer@b.example");
    let link = mails[0]
        .body
        .lines()
        .find(|l| l.contains("#token="))
        .unwrap()
        .trim()
        .to_string();
    let res = app
        .anonymous(Method::POST, "/api/v1/auth/password-reset/confirm")
        .json(&json!({"token": token_from_link(&link), "password": "the reset password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.login("viewer@b.example", "the reset password")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn users_list_is_keyset_paginated() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.add_user(app.a.id, &format!("extra{i}@a.example"), Role::Viewer)
            .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?limit=3&cursor={c}"),
            None => "/api/v1/users?limit=3".to_string(),
        };
        let page = body(app.get(&path, &app.a.admin).await).await;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 3);
        seen.extend(data.iter().map(|u| u["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(
        seen.len(),
        8,
        "3 fixture users + 5 extra, each once: {seen:?}"
    );
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "ordered by id");
    // Tenant B sees only its own.
    let b = body(app.get("/api/v1/users?limit=500", &app.b.admin).await).await;
    assert_eq!(b["data"].as_array().unwrap().len(), 3);
    let bad = app.get("/api/v1/users?cursor=garbage", &app.a.admin).await;
    assert_eq!(bad.status(), 422);
    assert_eq!(body(bad).await["error"]["details"][0]["field"], "cursor");
}

#[tokio::test]
async fn role_changes_take_effect_at_once() {
    let app = spawn_app().await;
    // The viewer's token is cached after this request.
    assert_eq!(app.get("/api/v1/users", &app.a.viewer).await.status(), 403);
    let res = app
        .patch(
            &format!("/api/v1/users/{}", app.a.viewer.id),
            &app.a.admin,
            &json!({"role": "ADMIN"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await["role"], "ADMIN");
    assert_eq!(app.get("/api/v1/users", &app.a.viewer).await.status(), 200);
    let res = app
        .patch(
            &format!("/api/v1/users/{}", app.a.viewer.id),
            &app.a.admin,
            &json!({"role": "VIEWER"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get("/api/v1/users", &app.a.viewer).await.status(), 403);
    let bad = app
        .patch(
            &format!("/api/v1/users/{}", app.a.viewer.id),
            &app.a.admin,
            &json!({"role": "ROOT"}),
        )
        .await;
    assert_eq!(bad.status(), 422);
    let unknown = app
        .patch(
            &format!("/api/v1/users/{}", app.a.viewer.id),
            &app.a.admin,
            &json!({"colour": "red"}),
        )
        .await;
    assert_eq!(unknown.status(), 422);
}

#[tokio::test]
async fn deactivation_revokes_access_and_blocks_login_until_reactivated() {
    let app = spawn_app().await;
    let session = app.login_token("editor@b.example", PASSWORD).await;
    let res = app
        .post(
            &format!("/api/v1/users/{}/deactivate", app.b.editor.id),
            &app.b.admin,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(body(res).await["deactivated_at"].is_string());
    assert_eq!(app.get("/api/v1/me", &app.b.editor).await.status(), 401);
    assert_eq!(
        app.get("/api/v1/me", &app.with_token(&app.b.editor, &session))
            .await
            .status(),
        401
    );
    assert_eq!(app.login("editor@b.example", PASSWORD).await.status(), 401);
    let res = app
        .post(
            &format!("/api/v1/users/{}/reactivate", app.b.editor.id),
            &app.b.admin,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.login("editor@b.example", PASSWORD).await.status(), 200);
    // Revoked tokens stay revoked.
    assert_eq!(app.get("/api/v1/me", &app.b.editor).await.status(), 401);
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_removed() {
    let app = spawn_app().await;
    let me = app.a.admin.id;
    let demote = app
        .patch(
            &format!("/api/v1/users/{me}"),
            &app.a.admin,
            &json!({"role": "EDITOR"}),
        )
        .await;
    assert_eq!(demote.status(), 409);
    assert_eq!(body(demote).await["error"]["code"], "last_admin");
    assert_eq!(
        app.post(
            &format!("/api/v1/users/{me}/deactivate"),
            &app.a.admin,
            &json!({})
        )
        .await
        .status(),
        409
    );
    assert_eq!(
        app.delete(&format!("/api/v1/users/{me}"), &app.a.admin)
            .await
            .status(),
        409
    );
    // With a second admin it is allowed.
    app.patch(
        &format!("/api/v1/users/{}", app.a.editor.id),
        &app.a.admin,
        &json!({"role": "ADMIN"}),
    )
    .await;
    assert_eq!(
        app.patch(
            &format!("/api/v1/users/{me}"),
            &app.a.admin,
            &json!({"role": "EDITOR"})
        )
        .await
        .status(),
        200
    );
}

#[tokio::test]
async fn deleting_a_user_removes_the_account_and_its_tokens() {
    let app = spawn_app().await;
    assert_eq!(
        app.delete(&format!("/api/v1/users/{}", app.b.viewer.id), &app.b.admin)
            .await
            .status(),
        204
    );
    assert_eq!(
        app.get(&format!("/api/v1/users/{}", app.b.viewer.id), &app.b.admin)
            .await
            .status(),
        404
    );
    assert_eq!(app.get("/api/v1/me", &app.b.viewer).await.status(), 401);
    assert_eq!(
        app.delete(&format!("/api/v1/users/{}", app.b.viewer.id), &app.b.admin)
            .await
            .status(),
        404
    );
    let tokens: i64 = app
        .db
        .superuser()
        .await
        .query_one(
            "select count(*) from auth_tokens where user_id = $1",
            &[&app.b.viewer.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tokens, 0);
}

/// Every write appends one audit row in its transaction, with actor, request id and address.
#[tokio::test]
async fn every_write_is_audited_with_actor_request_id_and_address() {
    let app = spawn_app().await;
    let a = &app.a;
    let invite = body(
        app.post(
            "/api/v1/invitations",
            &a.admin,
            &json!({"email": "aud@a.example", "role": "VIEWER"}),
        )
        .await,
    )
    .await;
    let invitation_id = invite["invitation"]["id"].as_str().unwrap().to_string();
    let token = body(
        app.post("/api/v1/me/tokens", &a.viewer, &json!({"name": "t"}))
            .await,
    )
    .await;
    let token_id = token["id"].as_str().unwrap().to_string();
    let login = body(app.login("editor@a.example", PASSWORD).await).await;
    let session = login["token"].as_str().unwrap().to_string();

    // (method, path, actor, body, expected action, entity id)
    let writes: Vec<(
        Method,
        String,
        zixly_testkit::app::TestUser,
        Value,
        &str,
        String,
    )> = vec![
        (
            Method::POST,
            "/api/v1/auth/logout".into(),
            app.with_token(&a.editor, &session),
            json!({}),
            "auth.logout",
            a.editor.id.to_string(),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{}", a.viewer.id),
            a.admin.clone(),
            json!({"display_name": "Vi"}),
            "user.update",
            a.viewer.id.to_string(),
        ),
        (
            Method::POST,
            format!("/api/v1/users/{}/deactivate", a.editor.id),
            a.admin.clone(),
            json!({}),
            "user.deactivate",
            a.editor.id.to_string(),
        ),
        (
            Method::POST,
            format!("/api/v1/users/{}/reactivate", a.editor.id),
            a.admin.clone(),
            json!({}),
            "user.reactivate",
            a.editor.id.to_string(),
        ),
        (
            Method::POST,
            format!("/api/v1/users/{}/password-reset", a.viewer.id),
            a.admin.clone(),
            json!({}),
            "user.password_reset_issue",
            a.viewer.id.to_string(),
        ),
        (
            Method::DELETE,
            format!("/api/v1/invitations/{invitation_id}"),
            a.admin.clone(),
            json!({}),
            "invitation.revoke",
            invitation_id.clone(),
        ),
        (
            Method::POST,
            "/api/v1/invitations".into(),
            a.admin.clone(),
            json!({"email": "aud2@a.example", "role": "EDITOR"}),
            "user.invite",
            String::new(),
        ),
        (
            Method::DELETE,
            format!("/api/v1/me/tokens/{token_id}"),
            a.viewer.clone(),
            json!({}),
            "token.revoke",
            token_id.clone(),
        ),
        (
            Method::POST,
            "/api/v1/me/tokens".into(),
            a.viewer.clone(),
            json!({"name": "u"}),
            "token.create",
            String::new(),
        ),
    ];
    for (method, path, actor, payload, action, entity_id) in writes {
        let res = app
            .request(method.clone(), &path, &actor)
            .json(&payload)
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success(),
            "{method} {path}: {}",
            res.status()
        );
        let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
        let page = body(
            app.get(&format!("/api/v1/audit-logs?action={action}"), &a.admin)
                .await,
        )
        .await;
        let rows: Vec<&Value> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["request_id"] == request_id.as_str())
            .collect();
        assert_eq!(
            rows.len(),
            1,
            "{action}: one audit row for request {request_id}: {page}"
        );
        let row = rows[0];
        assert_eq!(row["actor_user_id"], actor.id.to_string(), "{action}");
        assert_eq!(row["actor_label"], actor.email.as_str(), "{action}");
        assert_eq!(row["client_addr"], "127.0.0.1", "{action}");
        if !entity_id.is_empty() {
            assert_eq!(row["entity_id"], entity_id.as_str(), "{action}");
        }
        let text = row.to_string();
        assert!(
            !text.contains("zxp_")
                && !text.contains("zxs_")
                && !text.contains("zxr_")
                && !text.contains("zxi_"),
            "{text}"
        );
    }
    // Earlier writes of the setup were audited too.
    for action in ["auth.login", "user.invite", "token.create"] {
        let page = body(
            app.get(&format!("/api/v1/audit-logs?action={action}"), &a.admin)
                .await,
        )
        .await;
        assert!(!page["data"].as_array().unwrap().is_empty(), "{action}");
    }
    // A failed write leaves no row (same transaction).
    let before = body(app.get("/api/v1/audit-logs?limit=500", &a.admin).await).await["data"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        app.patch(
            &format!("/api/v1/users/{}", a.admin.id),
            &a.admin,
            &json!({"role": "VIEWER"})
        )
        .await
        .status(),
        409
    );
    let after = body(app.get("/api/v1/audit-logs?limit=500", &a.admin).await).await["data"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after);
    // Tenant B sees none of it.
    let b = body(app.get("/api/v1/audit-logs?limit=500", &app.b.admin).await).await;
    assert!(b["data"].as_array().unwrap().is_empty(), "{b}");
}

#[tokio::test]
async fn audit_log_is_newest_first_and_cursor_paginated() {
    let app = spawn_app().await;
    for i in 0..5 {
        let res = app
            .post(
                "/api/v1/me/tokens",
                &app.b.viewer,
                &json!({"name": format!("t{i}")}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    let first = body(app.get("/api/v1/audit-logs?limit=2", &app.b.admin).await).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let second = body(
        app.get(
            &format!("/api/v1/audit-logs?limit=2&cursor={cursor}"),
            &app.b.admin,
        )
        .await,
    )
    .await;
    let ids: Vec<String> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["data"].as_array().unwrap())
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 4);
    let mut desc = ids.clone();
    desc.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, desc, "newest first");
    let names: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["summary"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t4", "t3"]);
}
