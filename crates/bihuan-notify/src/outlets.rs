//! The plug-ins of the one outbox sender, a channel each: mail ([`Mailer`]), SMS ([`Sms`]: the
//! province's HTTP gateway, or files) and the push to the provincial platform ([`Upstream`], 数据回传).
//! Every one delivers one claimed row and says how it went; claiming, retrying with backoff, dead
//! letters and marking are the sender's, the same for all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bihuan_store::entity::outbox;
use bihuan_store::{OutboxChannel, idempotency_key};
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::{Mailer, NotifyError, SendFailure};

/// How long a push or an SMS gateway may take to answer.
const HTTP_TIME: Duration = Duration::from_secs(30);

/// One way out of the outbox.
pub trait Outlet: Send + Sync + std::fmt::Debug {
    /// The rows it delivers.
    fn channel(&self) -> OutboxChannel;
    /// Where it delivers to, for logs (never a credential, never a recipient).
    fn describe(&self) -> String;
    /// Delivers one claimed row.
    fn deliver<'a>(&'a self, row: &'a outbox::Model) -> BoxFuture<'a, Result<(), SendFailure>>;
}

impl Outlet for Mailer {
    fn channel(&self) -> OutboxChannel {
        OutboxChannel::Mail
    }

    fn describe(&self) -> String {
        Mailer::describe(self)
    }

    fn deliver<'a>(&'a self, row: &'a outbox::Model) -> BoxFuture<'a, Result<(), SendFailure>> {
        Box::pin(self.send(row))
    }
}

/// A plain-HTTP or HTTPS client for the outlets that post JSON.
#[expect(
    clippy::disallowed_methods,
    reason = "the crypto provider is installed on the line before"
)]
fn client() -> Result<reqwest::Client, NotifyError> {
    // reqwest's TLS is rustls with the process's provider (ring), installed here if nobody did.
    bihuan_store::files::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(HTTP_TIME)
        .build()
        .map_err(|e| NotifyError::Config(format!("cannot build the HTTP client: {e}")))
}

/// An http(s) URL, or an error naming the setting.
fn http_url(setting: &str, url: &str) -> Result<reqwest::Url, NotifyError> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| NotifyError::Config(format!("{setting}: not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(NotifyError::Config(format!(
            "{setting}: should start with http:// or https://"
        )));
    }
    Ok(parsed)
}

/// The address of a URL for logs: scheme, host and port only (no path, query or credentials).
fn shown(url: &reqwest::Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    )
}

/// POSTs `body` (JSON) to `url` with an `Idempotency-Key`: any 2xx is delivered; anything else, or no
/// answer, is retried (never permanent: the receiver may be down or refusing for now).
async fn post(
    client: &reqwest::Client,
    url: &reqwest::Url,
    key: &str,
    body: String,
) -> Result<(), SendFailure> {
    let failed = |message: String| SendFailure {
        message,
        permanent: false,
    };
    let response = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", key)
        .body(body)
        .send()
        .await
        .map_err(|e| failed(format!("{}: no answer ({})", shown(url), e.without_url())))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    // The receiver's words, briefly: they say why it refused.
    let text = response.text().await.unwrap_or_default();
    let text: String = text.chars().take(200).collect();
    Err(failed(format!("{}: HTTP {status} {text}", shown(url))))
}

/// A row's payload, which a channel other than mail needs.
fn payload(row: &outbox::Model) -> Result<&str, SendFailure> {
    row.payload.as_deref().ok_or_else(|| SendFailure {
        message: format!("outbox row {} has no payload", row.id),
        permanent: true,
    })
}

/// 数据回传: each row a JSON POST to the platform's URL (`BIHUAN_UPSTREAM_URL`), its
/// `Idempotency-Key` `{case id}:{event number}`.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl Upstream {
    /// Pushes to `url`.
    pub fn new(url: &str) -> Result<Self, NotifyError> {
        Ok(Self {
            client: client()?,
            url: http_url("BIHUAN_UPSTREAM_URL", url)?,
        })
    }
}

impl Outlet for Upstream {
    fn channel(&self) -> OutboxChannel {
        OutboxChannel::Upstream
    }

    fn describe(&self) -> String {
        format!("pushes to {}", shown(&self.url))
    }

    fn deliver<'a>(&'a self, row: &'a outbox::Model) -> BoxFuture<'a, Result<(), SendFailure>> {
        Box::pin(async move {
            let body = payload(row)?.to_owned();
            post(&self.client, &self.url, idempotency_key(row), body).await
        })
    }
}

/// Where SMS go.
#[derive(Debug, Clone)]
enum SmsTarget {
    /// The province's HTTP gateway: `{"to","text","idempotency_key"}`.
    Gateway {
        client: reqwest::Client,
        url: reqwest::Url,
    },
    /// No gateway: one JSON file a message in this folder, like mail's `.eml` files.
    Files(PathBuf),
}

/// SMS: through an HTTP gateway (`BIHUAN_SMS_URL`), or written as files under `./outbox/sms/`;
/// every text starts with the sender's signature (【…】, `BIHUAN_SMS_SIGNATURE`).
#[derive(Debug, Clone)]
pub struct Sms {
    target: SmsTarget,
    signature: String,
}

/// The signature an SMS starts with unless a deployment sets its own.
pub const DEFAULT_SMS_SIGNATURE: &str = "【政务服务好差评】";

impl Sms {
    /// SMS through the gateway at `url`.
    pub fn gateway(url: &str) -> Result<Self, NotifyError> {
        Ok(Self {
            target: SmsTarget::Gateway {
                client: client()?,
                url: http_url("BIHUAN_SMS_URL", url)?,
            },
            signature: DEFAULT_SMS_SIGNATURE.to_owned(),
        })
    }

    /// The same, signing with `signature` (brackets 【】 added when it has none); at most 20
    /// characters, as gateways require a short registered signature.
    pub fn signed(mut self, signature: &str) -> Result<Self, NotifyError> {
        let name = signature
            .trim()
            .trim_start_matches('【')
            .trim_end_matches('】')
            .trim();
        if name.is_empty() || name.chars().count() > 20 {
            return Err(NotifyError::Config(format!(
                "BIHUAN_SMS_SIGNATURE: 1 to 20 characters, as registered with the gateway (got {} characters)",
                name.chars().count()
            )));
        }
        self.signature = format!("【{name}】");
        Ok(self)
    }

    /// SMS written as JSON files into `dir` (created with the first one).
    pub fn files(dir: &Path) -> Result<Self, NotifyError> {
        Ok(Self {
            target: SmsTarget::Files(dir.to_path_buf()),
            signature: DEFAULT_SMS_SIGNATURE.to_owned(),
        })
    }
}

impl Outlet for Sms {
    fn channel(&self) -> OutboxChannel {
        OutboxChannel::Sms
    }

    fn describe(&self) -> String {
        match &self.target {
            SmsTarget::Gateway { url, .. } => format!("SMS gateway {}", shown(url)),
            SmsTarget::Files(dir) => format!("SMS files in {}", dir.display()),
        }
    }

    fn deliver<'a>(&'a self, row: &'a outbox::Model) -> BoxFuture<'a, Result<(), SendFailure>> {
        Box::pin(async move {
            let message: Value = serde_json::from_str(payload(row)?).map_err(|e| SendFailure {
                message: format!("outbox row {}: its payload is not JSON ({e})", row.id),
                permanent: true,
            })?;
            let (Some(to), Some(text)) = (message["to"].as_str(), message["text"].as_str()) else {
                return Err(SendFailure {
                    message: format!("outbox row {}: an SMS without its number or text", row.id),
                    permanent: true,
                });
            };
            let sent = serde_json::json!({
                "to": to,
                "text": format!("{}{text}", self.signature),
                "idempotency_key": row.unique_key,
            });
            match &self.target {
                SmsTarget::Gateway { client, url } => {
                    post(client, url, &row.unique_key, sent.to_string()).await
                }
                SmsTarget::Files(dir) => {
                    let path = dir.join(format!("{}.json", row.id));
                    let failed = |e: std::io::Error| SendFailure {
                        message: format!("cannot write {}: {e}", path.display()),
                        permanent: false,
                    };
                    tokio::fs::create_dir_all(dir).await.map_err(failed)?;
                    let text = serde_json::to_string_pretty(&sent).unwrap_or_default();
                    tokio::fs::write(&path, text).await.map_err(failed)
                }
            }
        })
    }
}

/// Every outlet the sender delivers through: mail and SMS always, the push when a platform is
/// configured.
#[derive(Debug)]
pub struct Outlets {
    pub mail: Mailer,
    pub sms: Sms,
    pub upstream: Option<Upstream>,
}

impl Outlets {
    /// The outlets, in the order the sender serves them.
    pub fn each(&self) -> Vec<&dyn Outlet> {
        let mut all: Vec<&dyn Outlet> = vec![&self.mail, &self.sms];
        if let Some(upstream) = &self.upstream {
            all.push(upstream);
        }
        all
    }
}
