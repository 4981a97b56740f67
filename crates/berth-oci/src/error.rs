//! The one error type of the registry client: variants a caller can act on, context in fields.
//!
//! Messages name the registry, the repository and the reference. They never contain credentials:
//! URLs are built by berth without userinfo, and token or password values are never formatted.

use std::time::Duration;

/// Where a failing request was aimed: `registry/repository` and, when there is one, the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub registry: String,
    /// Empty for registry-wide requests (`/v2/`, `_catalog`).
    pub repository: String,
    /// A tag or digest; empty when the request is about the repository as a whole.
    pub reference: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.registry)?;
        if !self.repository.is_empty() {
            write!(f, "/{}", self.repository)?;
        }
        if !self.reference.is_empty() {
            let separator = if self.reference.contains(':') {
                '@'
            } else {
                ':'
            };
            write!(f, "{separator}{}", self.reference)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("{target}: not found")]
    NotFound { target: Target },
    #[error("{target}: unauthorized ({detail})")]
    Unauthorized { target: Target, detail: String },
    #[error("{target}: access denied ({detail})")]
    Denied { target: Target, detail: String },
    #[error("{target}: rate limited{}", retry_after_text(.retry_after))]
    RateLimited {
        target: Target,
        retry_after: Option<Duration>,
    },
    #[error("{target}: content does not match its digest (expected {expected}, got {actual})")]
    Corrupt {
        target: Target,
        expected: String,
        actual: String,
    },
    #[error("{target}: size mismatch (expected {expected} bytes, got {actual})")]
    WrongSize {
        target: Target,
        expected: u64,
        actual: u64,
    },
    #[error("{target}: {what} larger than the limit of {limit} bytes")]
    TooLarge {
        target: Target,
        what: &'static str,
        limit: u64,
    },
    #[error("{target}: unsupported media type {media_type:?}{}", unsupported_hint(.media_type))]
    UnsupportedMediaType { target: Target, media_type: String },
    #[error("{target}: registry answered HTTP {status}{}", detail_text(.detail))]
    Server {
        target: Target,
        status: u16,
        detail: String,
    },
    #[error("{target}: cannot reach the registry: {detail}")]
    Transport { target: Target, detail: String },
    /// An https connection was answered in plain HTTP: the registry speaks only HTTP. Not
    /// transient: retries cannot change it.
    #[error(
        "{target}: the registry answered plain HTTP; pass --insecure-registry {} if you mean it",
        .target.registry
    )]
    PlainHttp { target: Target },
    #[error("{target}: protocol error: {detail}")]
    Protocol { target: Target, detail: String },
    #[error("{target}: refused token realm {realm:?}: {reason}")]
    TokenRealm {
        target: Target,
        realm: String,
        reason: &'static str,
    },
    #[error("registry {registry}: {detail}")]
    Config { registry: String, detail: String },
    /// A credential helper was missing, failed, hung or said too much; `detail` never holds
    /// what it printed.
    #[error("registry {registry}: credential helper {helper} {detail}")]
    CredentialHelper {
        registry: String,
        helper: String,
        detail: String,
    },
}

impl OciError {
    /// Whether retrying later could succeed (the registry or the network was the problem).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            OciError::RateLimited { .. } | OciError::Transport { .. }
        ) || matches!(self, OciError::Server { status, .. } if *status >= 500)
    }
}

fn retry_after_text(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(delay) => format!(" (retry after {} s)", delay.as_secs()),
        None => String::new(),
    }
}

fn detail_text(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

fn unsupported_hint(media_type: &str) -> &'static str {
    if media_type.contains("manifest.v1") || media_type == "schemaVersion 1" {
        " (Docker schema 1 manifests are deprecated and not supported; re-push the image with a current client)"
    } else {
        ""
    }
}
