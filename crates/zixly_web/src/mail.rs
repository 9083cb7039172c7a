//! Outgoing mail for invitations and password resets.
//!
//! Mail is optional. Without a mailer (`AppState::mailer == None`), an ADMIN who invites someone or
//! issues a password reset gets the link in the API response and passes it on; a self-service
//! reset request is accepted (202, same answer whether or not the email exists) but sends nothing,
//! and the user asks an ADMIN for a link.
//!
//! [`SmtpMailer`] speaks plain SMTP (RFC 5321: EHLO, MAIL, RCPT, DATA) without TLS or AUTH: point
//! it at a relay on localhost or a private network (Postfix, an SMTP sidecar, Mailpit) that
//! handles delivery. Configure with `ZIXLY_SMTP_URL=smtp://host:port` and `ZIXLY_MAIL_FROM`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

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

/// Plain SMTP to a relay (see the module documentation).
#[derive(Debug, Clone)]
pub struct SmtpMailer {
    pub host: String,
    pub port: u16,
    pub from: String,
}

impl SmtpMailer {
    /// From `smtp://host[:port]` (port 25 by default).
    pub fn from_url(url: &str, from: &str) -> Result<Self, MailError> {
        let parsed =
            url::Url::parse(url).map_err(|e| MailError(format!("invalid SMTP URL: {e}")))?;
        if parsed.scheme() != "smtp" {
            return Err(MailError(
                "the SMTP URL must start with smtp:// (TLS is the relay's job)".into(),
            ));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| MailError("the SMTP URL needs a host".into()))?
            .to_string();
        if from.contains(['\r', '\n', '<', '>']) || !from.contains('@') {
            return Err(MailError("the sender address is invalid".into()));
        }
        Ok(SmtpMailer {
            host,
            port: parsed.port().unwrap_or(25),
            from: from.to_string(),
        })
    }

    async fn deliver(&self, email: &Email) -> Result<(), MailError> {
        let err = |what: &str, e: std::io::Error| MailError(format!("{what}: {e}"));
        if email.to.contains(['\r', '\n', '<', '>']) || email.subject.contains(['\r', '\n']) {
            return Err(MailError("header injection refused".into()));
        }
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| err("connecting", e))?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        expect(&mut read, 220).await?;
        let commands = [
            ("EHLO zixly\r\n".to_string(), 250),
            (format!("MAIL FROM:<{}>\r\n", self.from), 250),
            (format!("RCPT TO:<{}>\r\n", email.to), 250),
            ("DATA\r\n".to_string(), 354),
        ];
        for (command, code) in commands {
            write
                .write_all(command.as_bytes())
                .await
                .map_err(|e| err("writing", e))?;
            expect(&mut read, code).await?;
        }
        let date = chrono::Utc::now().to_rfc2822();
        let mut message = format!(
            "From: <{}>\r\nTo: <{}>\r\nSubject: {}\r\nDate: {date}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
            self.from, email.to, email.subject
        );
        for line in email.body.lines() {
            // Dot-stuffing (RFC 5321 4.5.2).
            if line.starts_with('.') {
                message.push('.');
            }
            message.push_str(line);
            message.push_str("\r\n");
        }
        message.push_str(".\r\n");
        write
            .write_all(message.as_bytes())
            .await
            .map_err(|e| err("writing", e))?;
        expect(&mut read, 250).await?;
        let _ = write.write_all(b"QUIT\r\n").await;
        Ok(())
    }
}

/// Reads one (possibly multi-line) SMTP reply and checks its code.
async fn expect<R: tokio::io::AsyncBufRead + Unpin>(
    read: &mut R,
    code: u16,
) -> Result<(), MailError> {
    loop {
        let mut line = String::new();
        let n = read
            .read_line(&mut line)
            .await
            .map_err(|e| MailError(format!("reading: {e}")))?;
        if n == 0 {
            return Err(MailError("the SMTP server closed the connection".into()));
        }
        let got: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| MailError("malformed SMTP reply".into()))?;
        if line.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        if got != code {
            return Err(MailError(format!(
                "the SMTP server answered {got}, expected {code}"
            )));
        }
        return Ok(());
    }
}

impl Mailer for SmtpMailer {
    fn send(&self, email: Email) -> MailFuture<'_> {
        Box::pin(async move {
            tokio::time::timeout(Duration::from_secs(20), self.deliver(&email))
                .await
                .map_err(|_| MailError("the SMTP server did not answer in time".into()))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A minimal SMTP server that accepts one message and returns the DATA it received.
    async fn fake_server(listener: TcpListener) -> String {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
        let mut data = String::new();
        let mut in_data = false;
        loop {
            let mut line = String::new();
            if read.read_line(&mut line).await.unwrap() == 0 {
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
            let reply: &[u8] = match &line[..4] {
                "EHLO" => b"250-fake\r\n250 8BITMIME\r\n",
                "MAIL" | "RCPT" => b"250 ok\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                }
                _ => b"500 what\r\n",
            };
            write.write_all(reply).await.unwrap();
        }
        data
    }

    #[tokio::test]
    async fn smtp_mailer_speaks_enough_smtp_and_dot_stuffs() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(fake_server(listener));
        let mailer =
            SmtpMailer::from_url(&format!("smtp://127.0.0.1:{port}"), "zixly@example.com").unwrap();
        let email = Email {
            to: "a@example.com".into(),
            subject: "Hi".into(),
            body: "line one\n.starts with a dot\n".into(),
        };
        mailer.send(email).await.unwrap();
        let data = server.await.unwrap();
        assert!(data.contains("To: <a@example.com>\r\n"), "{data}");
        assert!(data.contains("Subject: Hi\r\n"), "{data}");
        assert!(
            data.contains("\r\n\r\nline one\r\n..starts with a dot\r\n"),
            "{data}"
        );
    }

    #[test]
    fn configuration_and_header_injection_are_checked() {
        assert!(SmtpMailer::from_url("smtps://x", "a@b.c").is_err());
        assert!(SmtpMailer::from_url("smtp://x", "a@b.c\r\nBcc: evil").is_err());
        assert_eq!(
            SmtpMailer::from_url("smtp://relay", "a@b.c").unwrap().port,
            25
        );
    }
}
