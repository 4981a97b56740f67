//! Outbound webhooks, the one copy: Standard Webhooks signatures (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`), and one POST whose answer
//! is classified as delivered, worth retrying (with the receiver's `Retry-After`), or rejected.
//!
//! Used by rebuild dispatches (GitHub, GitLab, generic receivers) and notifications. What to send
//! and when is the caller's: callers record a message before sending it and keep the attempt
//! count, so a crash never sends twice unrecorded or loses one; this crate only signs, sends and
//! says what happened. The environment is not read here: secrets arrive as values.

use std::time::Duration;

use base64::Engine as _;
use berth_core::rebuild::SecretSource;
use chrono::{DateTime, Utc};

/// What can be wrong with a configured webhook.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HookError {
    #[error("the signing secret is empty")]
    EmptySecret,
    #[error("the signing secret starts with whsec_ but the rest is not base64")]
    SecretNotBase64,
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The key of a Standard Webhooks signature. `Debug` never shows it.
#[derive(Clone)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    /// `whsec_<base64>` as Standard Webhooks issue secrets (the key is the decoded bytes), else
    /// the text's own bytes. Surrounding whitespace (a secret file's newline) is ignored.
    pub fn parse(text: &str) -> Result<SigningSecret, HookError> {
        let text = text.trim();
        let key = match text.strip_prefix("whsec_") {
            Some(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| HookError::SecretNotBase64)?,
            None => text.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err(HookError::EmptySecret);
        }
        Ok(SigningSecret(key))
    }

    /// The key's bytes, for the one place that computes with them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// `v1,<base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`: the `webhook-signature` value.
pub fn sign(secret: &SigningSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose());
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(msg_id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    let tag = context.sign();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    )
}

/// The three Standard Webhooks headers for one message. `msg_id` is the idempotency key: the
/// same message retried carries the same id, so receivers can drop repeats.
pub fn standard_headers(
    secret: &SigningSecret,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", msg_id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", sign(secret, msg_id, timestamp, body)),
    ]
}

/// One request to send: a POST to `url`. Header values may be secrets (tokens): they are never
/// logged or put in an outcome.
#[derive(Clone)]
pub struct Outgoing {
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Outgoing")
            .field("url", &self.url.as_str())
            .field("headers", &names)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// What one send came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Delivered { status: u16 },
    /// Worth another attempt: a 5xx, 408 or 429 answer, a connection failure or a timeout.
    /// `after` is the receiver's `Retry-After`, when it sent one.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Any other answer (a 4xx: wrong token, wrong URL, a body the receiver refuses): sending
    /// the same request again will not help. `excerpt` quotes the start of the answer's body.
    Rejected { status: u16, excerpt: String },
}

/// How much of an answer's body is read, to quote in an outcome.
const EXCERPT_BYTES_MAX: usize = 512;

/// Sends webhooks over one HTTP client (rustls with ring, system roots, no redirects followed:
/// a redirect is an answer, and headers carrying tokens never go to another host).
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
}

impl Sender {
    /// A sender whose every request ends (connected, sent, answered) within `timeout`.
    pub fn new(timeout: Duration) -> Result<Sender, HookError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| HookError::Client(error.to_string()))?;
        Ok(Sender { client })
    }

    /// Sends `outgoing` once and classifies the answer.
    pub async fn send(&self, outgoing: &Outgoing) -> Outcome {
        let mut request = self.client.post(outgoing.url.clone());
        for (name, value) in &outgoing.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = match request.body(outgoing.body.clone()).send().await {
            Ok(response) => response,
            Err(error) => {
                let reason = if error.is_timeout() {
                    "timed out".to_string()
                } else if error.is_connect() {
                    "cannot connect".to_string()
                } else {
                    "the request failed".to_string()
                };
                return Outcome::Retry {
                    reason,
                    after: None,
                };
            }
        };
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Outcome::Delivered { status };
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| retry_after(value, Utc::now()));
        if status >= 500 || status == 408 || status == 429 {
            return Outcome::Retry {
                reason: format!("answered {status}"),
                after: retry_after,
            };
        }
        Outcome::Rejected {
            status,
            excerpt: body_excerpt(response).await,
        }
    }
}

/// The start of an answer's body, escaped and cut.
async fn body_excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_BYTES_MAX {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(EXCERPT_BYTES_MAX);
    let text = String::from_utf8_lossy(&bytes);
    let escaped = berth_core::quote::escape(text.trim());
    escaped.into_owned()
}

/// A `Retry-After` value: delay seconds, or an HTTP date (then the time from `now` until it;
/// a date in the past means now).
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// How long to wait before attempt `attempt + 1` after `attempt` failures counted from 0:
/// 10 s × 2^attempt, at most an hour, ±10 % so that many messages failing together do not
/// come back together.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_secs(10).saturating_mul(2u32.saturating_pow(attempt.min(16)));
    let capped = base.min(Duration::from_secs(3600));
    capped.mul_f64(0.9 + 0.2 * fastrand::f64())
}

/// A secret file larger than this is a mistake, not a token.
const SECRET_FILE_MAX: u64 = 64 * 1024;

/// A token, signing secret or secret URL, from the environment (`env` looks variables up) or
/// a file, trimmed; an empty one or a file larger than 64 KiB is refused.
pub fn read_secret(
    source: &SecretSource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let text = match source {
        SecretSource::Env(name) => env(name).ok_or_else(|| format!("${name} is not set"))?,
        SecretSource::File(path) => {
            let metadata = std::fs::metadata(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
            if metadata.len() > SECRET_FILE_MAX {
                return Err(format!(
                    "{} is larger than {SECRET_FILE_MAX} bytes",
                    path.display()
                ));
            }
            std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?
        }
    };
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err("the secret is empty".to_string());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse_as_standard_webhooks_issue_them() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
        assert_eq!(secret.expose().len(), 24);
        assert_eq!(format!("{secret:?}"), "***");
        let raw = SigningSecret::parse("plain words").unwrap();
        assert_eq!(raw.expose(), b"plain words");
        assert_eq!(
            SigningSecret::parse("whsec_!!").unwrap_err(),
            HookError::SecretNotBase64
        );
        assert_eq!(
            SigningSecret::parse("  \n").unwrap_err(),
            HookError::EmptySecret
        );
    }

    #[test]
    fn the_signature_is_the_one_the_specification_gives() {
        // The example of the Standard Webhooks specification (standard-webhooks/spec,
        // "Signature scheme"): this secret, id, timestamp and body sign to this value.
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Thu, 03 Dec 2026 10:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            retry_after("Thu, 03 Dec 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn backoff_doubles_and_stops_at_an_hour() {
        let first = backoff(0);
        assert!(first >= Duration::from_secs(9) && first <= Duration::from_secs(11));
        let third = backoff(2);
        assert!(third >= Duration::from_secs(36) && third <= Duration::from_secs(44));
        assert!(backoff(40) <= Duration::from_secs(3960));
        assert!(backoff(40) >= Duration::from_secs(3240));
    }
}
