//! Outgoing mail: invitations and password resets (sent by zixly_web) and alert e-mails (sent by
//! the `notification_deliver` job).
//!
//! Mail is optional. Without a mailer (`AppState::mailer == None`), an ADMIN who invites someone or
//! issues a password reset gets the link in the API response and passes it on; a self-service
//! reset request is accepted (202, same answer whether or not the email exists) but sends nothing,
//! and the user asks an ADMIN for a link.
//!
//! [`SmtpMailer`] sends through SMTP with [`lettre`] (TLS by rustls, server certificates checked
//! against the Mozilla roots of `webpki-roots`). It is configured with `ZIXLY_SMTP_URL` (passed to
//! lettre's `AsyncSmtpTransport::from_url`) and `ZIXLY_MAIL_FROM`:
//!
//! | URL | connection | default port |
//! |---|---|---|
//! | `smtp://host[:port]` | plain SMTP, no TLS (a relay on localhost or a private network, Mailpit) | 25 |
//! | `smtp://host[:port]?tls=required` | STARTTLS, refused if the server does not offer it | 587 |
//! | `smtp://host[:port]?tls=opportunistic` | STARTTLS if the server offers it, else plain | 587 |
//! | `smtps://host[:port]` | implicit TLS from the first byte | 465 |
//!
//! - Credentials: `smtp://user:password@host...` / `smtps://user:password@host...`, both
//!   percent-decoded (write `@` as `%40`, `/` as `%2F`, `:` as `%3A`, `#` as `%23`, `?` as `%3F`,
//!   `%` as `%25`); sent with AUTH PLAIN (or LOGIN if the server offers only that). A user name
//!   needs a password. Credentials are refused at start-up unless the connection is encrypted before
//!   AUTH (`smtps://` or `?tls=required`) or the host is a loopback address (`localhost`,
//!   `127.x.x.x`).
//! - A path names the client in EHLO: `smtp://relay:25/app.example.com`; default `[127.0.0.1]`.
//! - Other query parameters are ignored; any other scheme or `tls` value is refused.
//!
//! Time limits: 10 s for connecting and for each SMTP reply, 20 s for a whole message (less than the
//! 30 s request time limit). Every message opens its own connection. Neither the password nor the
//! URL appears in logs, `Debug` output or [`MailError`]s.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// One plain-text message.
#[derive(Clone)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl std::fmt::Debug for Email {
    // Bodies carry one-time links: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("sending mail failed: {0}")]
pub struct MailError(pub String);

pub type MailFuture<'a> = Pin<Box<dyn Future<Output = Result<(), MailError>> + Send + 'a>>;

pub trait Mailer: Send + Sync + 'static {
    fn send(&self, email: Email) -> MailFuture<'_>;
}

/// Time limit of connecting and of each SMTP reply.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Time limit of one whole message.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: no TLS.
    Plain,
    /// `smtp://...?tls=opportunistic`: STARTTLS when offered.
    StartTlsOpportunistic,
    /// `smtp://...?tls=required`: STARTTLS or no mail.
    StartTlsRequired,
    /// `smtps://`: TLS from the first byte.
    ImplicitTls,
}

impl SmtpSecurity {
    /// Whether the connection is always encrypted before AUTH.
    pub fn always_encrypted(self) -> bool {
        matches!(
            self,
            SmtpSecurity::StartTlsRequired | SmtpSecurity::ImplicitTls
        )
    }
}

impl std::fmt::Display for SmtpSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SmtpSecurity::Plain => "none",
            SmtpSecurity::StartTlsOpportunistic => "STARTTLS if offered",
            SmtpSecurity::StartTlsRequired => "STARTTLS",
            SmtpSecurity::ImplicitTls => "TLS",
        })
    }
}

/// SMTP through lettre (see the module documentation).
#[derive(Clone)]
pub struct SmtpMailer {
    /// Server host, for logs.
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// Whether credentials are configured (AUTH is used).
    pub authenticated: bool,
    from: Mailbox,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// The password as written in the URL and percent-decoded, scrubbed from error messages.
    secrets: Vec<String>,
}

impl std::fmt::Debug for SmtpMailer {
    // No transport: it holds the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("authenticated", &self.authenticated)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// From `ZIXLY_SMTP_URL` and the sender address (see the module documentation).
    pub fn from_url(url: &str, from: &str) -> Result<Self, MailError> {
        // Parsed here for the checks and the log fields, then again by lettre, which builds the
        // transport; both use the `url` crate. No error repeats the URL: it may hold a password.
        let parsed =
            url::Url::parse(url).map_err(|e| MailError(format!("invalid SMTP URL: {e}")))?;
        let tls = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let (security, default_port) = match (parsed.scheme(), tls.as_deref()) {
            ("smtp", None) => (SmtpSecurity::Plain, 25),
            ("smtp", Some("required")) => (SmtpSecurity::StartTlsRequired, 587),
            ("smtp", Some("opportunistic")) => (SmtpSecurity::StartTlsOpportunistic, 587),
            ("smtps", _) => (SmtpSecurity::ImplicitTls, 465),
            ("smtp", Some(_)) => {
                return Err(MailError(
                    "the SMTP URL's tls parameter must be `required` or `opportunistic`".into(),
                ))
            }
            _ => {
                return Err(MailError(
                    "the SMTP URL must start with smtp:// or smtps://".into(),
                ))
            }
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| MailError("the SMTP URL needs a host".into()))?
            .to_string();
        let loopback = match parsed.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        let mut secrets = Vec::new();
        if let Some(password) = parsed.password() {
            secrets.push(password.to_string());
            if let Ok(decoded) = percent_encoding::percent_decode_str(password).decode_utf8() {
                secrets.push(decoded.into_owned());
            }
        } else if !parsed.username().is_empty() {
            return Err(MailError(
                "the SMTP URL has a user name but no password".into(),
            ));
        }
        secrets.retain(|s| !s.is_empty());
        let authenticated = parsed.password().is_some();
        if authenticated && !security.always_encrypted() && !loopback {
            return Err(MailError(
                "the SMTP URL has credentials but does not require TLS: use smtps:// or \
                 ?tls=required (credentials go unencrypted only to a loopback host)"
                    .into(),
            ));
        }
        let from: Mailbox = if from.contains(['\r', '\n']) {
            None
        } else {
            from.parse().ok()
        }
        .ok_or_else(|| MailError("the sender address is invalid".into()))?;
        let redact = |e: &dyn std::fmt::Display| scrub(&e.to_string(), &secrets);
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailError(format!("invalid SMTP URL: {}", redact(&e))))?
            .timeout(Some(COMMAND_TIMEOUT))
            .build();
        Ok(SmtpMailer {
            host,
            port: parsed.port().unwrap_or(default_port),
            security,
            authenticated,
            from,
            transport,
            secrets,
        })
    }

    fn message(&self, email: &Email) -> Result<Message, MailError> {
        if email.to.contains(['\r', '\n']) || email.subject.contains(['\r', '\n']) {
            return Err(MailError("header injection refused".into()));
        }
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|_| MailError("the recipient address is invalid".into()))?;
        Message::builder()
            .message_id(Some(format!(
                "<{}@{}>",
                uuid::Uuid::now_v7(),
                self.from.email.domain()
            )))
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.as_str())
            .header(ContentType::TEXT_PLAIN)
            .body(email.body.clone())
            .map_err(|e| MailError(format!("building the message: {e}")))
    }

    async fn deliver(&self, email: &Email) -> Result<(), MailError> {
        let message = self.message(email)?;
        self.transport
            .send(message)
            .await
            .map_err(|e| MailError(scrub(&e.to_string(), &self.secrets)))?;
        Ok(())
    }
}

/// `text` with every secret replaced by `***`.
fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text.to_string(), |t, s| t.replace(s.as_str(), "***"))
}

impl Mailer for SmtpMailer {
    fn send(&self, email: Email) -> MailFuture<'_> {
        Box::pin(async move {
            tokio::time::timeout(SEND_TIMEOUT, self.deliver(&email))
                .await
                .map_err(|_| MailError("the SMTP server did not answer in time".into()))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// What the fake server saw.
    #[derive(Debug, Default)]
    struct Session {
        /// Every command line before DATA and after it, without CRLF.
        commands: Vec<String>,
        /// The message as received (dot-stuffed), without the final `.` line.
        data: String,
    }

    /// A minimal SMTP server over plain TCP: accepts one connection, advertises `ehlo_extra`
    /// extensions, answers AUTH (one-shot PLAIN or LOGIN) with 235, and records everything.
    async fn fake_server(listener: TcpListener, ehlo_extra: &'static [&'static str]) -> Session {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let mut session = Session::default();
        write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
        let mut in_data = false;
        let mut login_steps = 0;
        loop {
            let mut line = String::new();
            match read.read_line(&mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if in_data {
                if line == ".\r\n" {
                    in_data = false;
                    write.write_all(b"250 queued\r\n").await.unwrap();
                } else {
                    session.data.push_str(&line);
                }
                continue;
            }
            let command = line.trim_end().to_string();
            session.commands.push(command.clone());
            if login_steps > 0 {
                login_steps -= 1;
                let reply: &[u8] = if login_steps == 0 {
                    b"235 ok\r\n"
                } else {
                    b"334 UGFzc3dvcmQ6\r\n"
                };
                write.write_all(reply).await.unwrap();
                continue;
            }
            let verb = command
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            let reply = match verb.as_str() {
                "EHLO" => {
                    let mut r = String::from("250-fake\r\n");
                    for e in ehlo_extra {
                        r.push_str(&format!("250-{e}\r\n"));
                    }
                    r + "250 8BITMIME\r\n"
                }
                "AUTH" if command.to_ascii_uppercase().starts_with("AUTH LOGIN") => {
                    login_steps = 2;
                    "334 VXNlcm5hbWU6\r\n".into()
                }
                "AUTH" => "235 ok\r\n".into(),
                "MAIL" | "RCPT" => "250 ok\r\n".into(),
                "DATA" => {
                    in_data = true;
                    "354 go ahead\r\n".into()
                }
                "QUIT" => {
                    let _ = write.write_all(b"221 bye\r\n").await;
                    break;
                }
                _ => "502 what\r\n".into(),
            };
            write.write_all(reply.as_bytes()).await.unwrap();
        }
        session
    }

    /// The message the transport tests send.
    fn hello() -> Email {
        Email {
            to: "a@example.com".into(),
            subject: "Hi".into(),
            body: "hello".into(),
        }
    }

    async fn listen() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    #[tokio::test]
    async fn delivers_over_smtp_with_recipient_subject_and_dot_stuffed_body() {
        let (listener, port) = listen().await;
        let server = tokio::spawn(fake_server(listener, &[]));
        let mailer =
            SmtpMailer::from_url(&format!("smtp://127.0.0.1:{port}"), "zixly@example.com").unwrap();
        assert_eq!(mailer.security, SmtpSecurity::Plain);
        assert!(!mailer.authenticated);
        let email = Email {
            to: "a@example.com".into(),
            subject: "Hi".into(),
            body: "line one\n.starts with a dot\nhttps://zixly.example/accept#token=abc\n".into(),
        };
        mailer.send(email).await.unwrap();
        let session = server.await.unwrap();
        assert_eq!(session.commands[0], "EHLO [127.0.0.1]", "{session:?}");
        assert!(
            session
                .commands
                .contains(&"MAIL FROM:<zixly@example.com>".to_string()),
            "{session:?}"
        );
        assert!(
            session
                .commands
                .contains(&"RCPT TO:<a@example.com>".to_string()),
            "{session:?}"
        );
        assert!(
            !session.commands.iter().any(|c| c.starts_with("AUTH")),
            "{session:?}"
        );
        let data = session.data;
        assert!(data.contains("\r\nTo: a@example.com\r\n"), "{data}");
        assert!(data.contains("\r\nSubject: Hi\r\n"), "{data}");
        assert!(
            data.contains("\r\nContent-Type: text/plain; charset=utf-8\r\n"),
            "{data}"
        );
        assert!(data.starts_with("Message-ID: <"), "{data}");
        assert!(data.contains("\r\nFrom: zixly@example.com\r\n"), "{data}");
        assert!(
            data.contains(
                "\r\n\r\nline one\r\n..starts with a dot\r\nhttps://zixly.example/accept#token=abc\r\n"
            ),
            "{data}"
        );
    }

    /// Credentials in the URL are percent-decoded and sent with AUTH PLAIN (loopback host, so
    /// allowed over plain TCP); the path is the EHLO name.
    #[tokio::test]
    async fn url_credentials_are_sent_with_auth_plain() {
        let (listener, port) = listen().await;
        let server = tokio::spawn(fake_server(listener, &["AUTH PLAIN LOGIN"]));
        let mailer = SmtpMailer::from_url(
            &format!("smtp://mailer%40zixly.example:p%40ss%2Fw0rd@localhost:{port}/app.example"),
            "zixly@example.com",
        )
        .unwrap();
        assert!(mailer.authenticated);
        assert!(!format!("{mailer:?}").contains("w0rd"));
        mailer.send(hello()).await.unwrap();
        let session = server.await.unwrap();
        assert_eq!(session.commands[0], "EHLO app.example", "{session:?}");
        use base64::Engine as _;
        let expected =
            base64::engine::general_purpose::STANDARD.encode("\0mailer@zixly.example\0p@ss/w0rd");
        let auth = session.commands.iter().position(|c| c.starts_with("AUTH"));
        let mail = session.commands.iter().position(|c| c.starts_with("MAIL"));
        assert_eq!(
            session.commands[auth.expect("no AUTH")],
            format!("AUTH PLAIN {expected}")
        );
        assert!(auth < mail, "{session:?}");
    }

    /// With `?tls=required`, a server that offers no STARTTLS gets no AUTH (nor mail), and the
    /// error does not contain the password.
    #[tokio::test]
    async fn required_tls_is_enforced_before_auth_and_errors_hide_the_password() {
        let (listener, port) = listen().await;
        let server = tokio::spawn(fake_server(listener, &["AUTH PLAIN LOGIN"]));
        let mailer = SmtpMailer::from_url(
            &format!("smtp://user:hunter2secret@127.0.0.1:{port}?tls=required"),
            "zixly@example.com",
        )
        .unwrap();
        assert_eq!(mailer.security, SmtpSecurity::StartTlsRequired);
        let err = mailer.send(hello()).await.unwrap_err().to_string();
        assert!(err.contains("STARTTLS"), "{err}");
        assert!(!err.contains("hunter2secret"), "{err}");
        let session = server.await.unwrap();
        assert!(
            !session
                .commands
                .iter()
                .any(|c| c.starts_with("AUTH") || c.starts_with("MAIL")),
            "{session:?}"
        );
    }

    /// `smtps://` speaks TLS from the first byte: a plain server sees no SMTP command.
    #[tokio::test]
    async fn smtps_starts_with_tls() {
        let (listener, port) = listen().await;
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut first = [0u8; 1];
            tokio::io::AsyncReadExt::read_exact(&mut stream, &mut first)
                .await
                .unwrap();
            // The stream is returned, not dropped: a reset would end the client's attempt.
            (first[0], stream)
        });
        let mailer = SmtpMailer::from_url(
            &format!("smtps://user:hunter2secret@localhost:{port}"),
            "zixly@example.com",
        )
        .unwrap();
        assert_eq!(mailer.security, SmtpSecurity::ImplicitTls);
        let send = mailer.send(hello());
        // The server never greets, so the client fails on its own time limit: only the first
        // byte matters here. 0x16 is a TLS handshake record (ClientHello).
        let first = tokio::select! {
            first = server => first.unwrap().0,
            r = send => panic!("finished before the server read a byte: {r:?}"),
        };
        assert_eq!(first, 0x16);
    }

    #[test]
    fn configuration_is_parsed_and_checked() {
        let m = |url: &str| SmtpMailer::from_url(url, "a@b.example");
        let ok = |url: &str| {
            let m = m(url).unwrap();
            (m.host, m.port, m.security, m.authenticated)
        };
        use SmtpSecurity::*;
        assert_eq!(ok("smtp://relay"), ("relay".into(), 25, Plain, false));
        assert_eq!(
            ok("smtp://relay:2525"),
            ("relay".into(), 2525, Plain, false)
        );
        assert_eq!(
            ok("smtp://u:p@smtp.example.com?tls=required"),
            ("smtp.example.com".into(), 587, StartTlsRequired, true)
        );
        assert_eq!(
            ok("smtp://smtp.example.com:2587?tls=opportunistic"),
            (
                "smtp.example.com".into(),
                2587,
                StartTlsOpportunistic,
                false
            )
        );
        assert_eq!(
            ok("smtps://u:p@smtp.example.com"),
            ("smtp.example.com".into(), 465, ImplicitTls, true)
        );
        assert_eq!(ok("smtp://u:p@[::1]:25"), ("[::1]".into(), 25, Plain, true));
        // The default sender of `zixly up`.
        assert!(SmtpMailer::from_url("smtp://relay", "zixly@localhost").is_ok());
        assert!(SmtpMailer::from_url("smtp://relay", "Zixly <zixly@example.com>").is_ok());

        let err = |url: &str| m(url).unwrap_err().to_string();
        assert!(err("http://relay").contains("smtp://"));
        assert!(err("smtp://relay?tls=maybe").contains("tls"));
        assert!(err("smtp:///nohost").contains("host"));
        assert!(err("smtp://user@relay").contains("no password"));
        for url in [
            "smtp://u:topsecret@smtp.example.com:587",
            "smtp://u:topsecret@smtp.example.com:587?tls=opportunistic",
        ] {
            let e = err(url);
            assert!(e.contains("does not require TLS"), "{e}");
            assert!(!e.contains("topsecret"), "{e}");
        }
        // lettre refuses a password that is not UTF-8 once decoded; the error hides it.
        let e = err("smtps://u:topsecret%FF@smtp.example.com");
        assert!(!e.contains("topsecret"), "{e}");

        for from in ["a@b.example\r\nBcc: evil@x.example", "not an address", ""] {
            assert!(
                SmtpMailer::from_url("smtp://relay", from).is_err(),
                "{from}"
            );
        }
    }

    #[test]
    fn header_injection_is_refused() {
        let mailer = SmtpMailer::from_url("smtp://relay", "a@b.example").unwrap();
        let email = |to: &str, subject: &str| Email {
            to: to.into(),
            subject: subject.into(),
            body: "x".into(),
        };
        assert!(mailer.message(&email("c@d.example", "ok")).is_ok());
        assert!(mailer
            .message(&email("c@d.example\r\nBcc: e@f.example", "ok"))
            .is_err());
        assert!(mailer
            .message(&email("c@d.example", "ok\r\nBcc: e@f.example"))
            .is_err());
        assert!(mailer.message(&email("not an address", "ok")).is_err());
    }

    #[test]
    fn scrub_removes_every_secret() {
        let secrets = vec!["p%40ss".to_string(), "p@ss".to_string()];
        assert_eq!(scrub("a p@ss b p%40ss", &secrets), "a *** b ***");
    }
}
