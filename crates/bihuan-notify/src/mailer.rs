//! Sending one outbox row: through SMTP (`BIHUAN_SMTP_URL`, tokio + rustls, STARTTLS and login as the
//! URL says), or with no SMTP configured into `.eml` files under `./outbox/` (lettre's file transport).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bihuan_store::entity::outbox;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use crate::NotifyError;

/// Where mail goes.
#[derive(Debug, Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>, PathBuf),
}

/// Sends outbox rows as mail.
#[derive(Debug, Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

/// Why a mail was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// What went wrong, for the outbox row.
    pub message: String,
    /// True when retrying cannot help: the mail itself is wrong (a malformed address).
    pub permanent: bool,
}

impl Mailer {
    /// Mail through the SMTP server of `url`: `smtp://host:port` (plain), `smtp://…?tls=required`
    /// (STARTTLS), `smtps://host:port` (TLS); `user:password@` in the URL logs in.
    pub fn smtp(url: &str, from: &str) -> Result<Self, NotifyError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| {
                NotifyError::Config(format!(
                    "BIHUAN_SMTP_URL {}: {e}",
                    bihuan_store::redact(url)
                ))
            })?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        Ok(Self {
            transport: Transport::Smtp(transport),
            from: mailbox(from)?,
        })
    }

    /// Mail written as `.eml` files into `dir` (created when missing).
    pub fn files(dir: &Path, from: &str) -> Result<Self, NotifyError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            NotifyError::Config(format!(
                "cannot create the mail folder {}: {e}",
                dir.display()
            ))
        })?;
        Ok(Self {
            transport: Transport::Files(AsyncFileTransport::new(dir), dir.to_path_buf()),
            from: mailbox(from)?,
        })
    }

    /// Where mail goes, for logs.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(_) => "SMTP".to_owned(),
            Transport::Files(_, dir) => format!(".eml files in {}", dir.display()),
        }
    }

    /// Sends one row: the plain-text and HTML parts, the subject RFC 2047-encoded by lettre, and a
    /// Message-ID made from the row's id so a receiver can tell a resent copy.
    pub async fn send(&self, row: &outbox::Model) -> Result<(), SendFailure> {
        let message = self.message(row)?;
        match &self.transport {
            // A refusal for good (5xx) is retried like any failure: a wrong login or a server being
            // reconfigured answers 5xx too, and the mail must survive until that is fixed.
            Transport::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| SendFailure {
                permanent: false,
                message: format!("SMTP: {e}"),
            }),
            Transport::Files(t, dir) => {
                t.send(message).await.map(|_| ()).map_err(|e| SendFailure {
                    permanent: false,
                    message: format!("writing into {}: {e}", dir.display()),
                })
            }
        }
    }

    fn message(&self, row: &outbox::Model) -> Result<Message, SendFailure> {
        let bad = |message: String| SendFailure {
            message,
            permanent: true,
        };
        let addresses: Vec<&str> = match &row.recipients {
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if addresses.is_empty() {
            return Err(bad("no recipients".to_owned()));
        }
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(row.subject.clone())
            .message_id(Some(format!("<outbox-{}@bihuan>", row.id)));
        for address in addresses {
            let to: Mailbox = address
                .parse()
                .map_err(|e| bad(format!("recipient {address}: {e}")))?;
            builder = builder.to(to);
        }
        let html = row.html.clone().unwrap_or_else(|| escape_html(&row.body));
        builder
            .multipart(MultiPart::alternative_plain_html(row.body.clone(), html))
            .map_err(|e| bad(format!("building the message: {e}")))
    }
}

fn mailbox(from: &str) -> Result<Mailbox, NotifyError> {
    from.parse()
        .map_err(|e| NotifyError::Config(format!("BIHUAN_MAIL_FROM {from}: {e}")))
}

fn escape_html(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!("<pre>{escaped}</pre>")
}
