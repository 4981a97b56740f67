//! The channel operations over HTTP — history, audit log, promote, roll back — behind API tokens
//! with scopes (read < promote < admin). Tokens are configured as the SHA-256 of their secret; a
//! request's bearer token is hashed and looked up, so no secret is ever stored or logged. The
//! token's name is the actor in the history and the audit log.
//!
//! The routes are always in `app` (and in docs/openapi.yaml); without a store and tokens in
//! the config they answer 503 `not_configured`, saying what is missing, rather than 404.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_channels::{Action, ChannelError, PromoteRequest, RollbackRequest, Subject};
use berth_core::channels::{self, PromotionRule, Request, RulesFile};
use berth_core::{Digest, Tag};
use berth_oci::Client;
use berth_store::Store;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config::{ApiToken, Scope};
use crate::reload::CatalogState;
use crate::{AppState, Clock};

/// What the channel API needs.
pub struct ChannelsApi {
    pub catalog: Arc<CatalogState>,
    pub store: Store,
    pub client: Client,
    /// The rules `promote` applies (a manual rule when none names the pair).
    pub rules: RulesFile,
    pub tokens: Vec<ApiToken>,
    pub clock: Clock,
}

/// The channel API of the app's state, or 503 `not_configured` when `berth serve` runs without it.
pub struct Channels(pub Arc<ChannelsApi>);

impl FromRequestParts<AppState> for Channels {
    type Rejection = ChannelsApiError;

    async fn from_request_parts(
        _parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        state
            .channels
            .clone()
            .map(Channels)
            .ok_or(ChannelsApiError::NotConfigured)
    }
}

/// Why a channel request got no answer; 5xx say only "internal error" (the chain is logged).
#[derive(Debug)]
pub enum ChannelsApiError {
    Unauthorized,
    Forbidden {
        needed: Scope,
    },
    BadRequest(String),
    NotFound(String),
    NoCatalog,
    /// `berth serve` has no store or no `api_tokens`: the channel API is off.
    NotConfigured,
    Internal,
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    message: String,
}

impl IntoResponse for ChannelsApiError {
    fn into_response(self) -> Response {
        let (status, error, message) = match self {
            ChannelsApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "an API token is required: Authorization: Bearer TOKEN".to_string(),
            ),
            ChannelsApiError::Forbidden { needed } => (
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this token's scope does not allow this; it needs {needed:?}")
                    .to_lowercase(),
            ),
            ChannelsApiError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, "bad_request", message)
            }
            ChannelsApiError::NotFound(message) => (StatusCode::NOT_FOUND, "not_found", message),
            ChannelsApiError::NoCatalog => (
                StatusCode::SERVICE_UNAVAILABLE,
                "no_catalog",
                "no catalog has loaded yet; see /api/v1/status".to_string(),
            ),
            ChannelsApiError::NotConfigured => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not_configured",
                "the channel API is off: berth serve needs a `store` and `api_tokens` in its config (docs/channels.md)"
                    .to_string(),
            ),
            ChannelsApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error".to_string(),
            ),
        };
        let mut response = (status, Json(ErrorBody { error, message })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

fn internal(error: impl std::error::Error) -> ChannelsApiError {
    tracing::error!(error = %chain(&error), "channel API");
    ChannelsApiError::Internal
}

/// An error and its causes, `: `-separated, for the log.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

/// The SHA-256 of a token's secret in lowercase hex, as `api_tokens` lists it.
pub(crate) fn token_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The token's name when it is known and its scope reaches `needed`.
fn authorize(
    api: &ChannelsApi,
    headers: &HeaderMap,
    needed: Scope,
) -> Result<String, ChannelsApiError> {
    authorize_token(&api.tokens, headers, needed)
}

/// The name of the token `headers` present (`Authorization: Bearer ...`) when it is one of
/// `tokens` and its scope allows `needed`.
pub(crate) fn authorize_token(
    tokens: &[ApiToken],
    headers: &HeaderMap,
    needed: Scope,
) -> Result<String, ChannelsApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(ChannelsApiError::Unauthorized)?;
    let hash = token_hash(presented.trim());
    let token = tokens
        .iter()
        .find(|token| token.sha256 == hash)
        .ok_or(ChannelsApiError::Unauthorized)?;
    if !token.scope.allows(needed) {
        return Err(ChannelsApiError::Forbidden { needed });
    }
    Ok(token.name.clone())
}

/// The catalog being served and the subject `name` (+ variant) names in it.
fn subject(
    api: &ChannelsApi,
    name: &str,
    variant: Option<&str>,
) -> Result<(Subject, berth_core::catalog::CatalogEntry), ChannelsApiError> {
    let snapshot = api.catalog.snapshot().ok_or(ChannelsApiError::NoCatalog)?;
    let text = match variant {
        Some(variant) => format!("{name}/{variant}"),
        None => name.to_string(),
    };
    let (subject, entry) =
        Subject::find(&snapshot.catalog, &text).map_err(ChannelsApiError::NotFound)?;
    Ok((subject, entry.clone()))
}

fn tag(text: &str, field: &str) -> Result<Tag, ChannelsApiError> {
    channels::channel_tag(text)
        .map_err(|error| ChannelsApiError::BadRequest(format!("{field}: {error}")))
}

fn digest(text: &str, field: &str) -> Result<Digest, ChannelsApiError> {
    Digest::parse(text).map_err(|error| ChannelsApiError::BadRequest(format!("{field}: {error}")))
}

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    pub variant: Option<String>,
    pub channel: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct HistoryLine {
    channel: String,
    #[serde(flatten)]
    entry: channels::HistoryEntry,
}

pub(crate) async fn history(
    Channels(api): Channels,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<Vec<HistoryLine>>, ChannelsApiError> {
    authorize(&api, &headers, Scope::Read)?;
    let (subject, entry) = subject(&api, &name, query.variant.as_deref())?;
    let names = match &query.channel {
        Some(channel) => vec![tag(channel, "channel")?],
        None => entry.channels.clone(),
    };
    let mut lines = Vec::new();
    for channel in names {
        let state = berth_channels::history::load(&api.store, &subject, &channel)
            .await
            .map_err(internal)?;
        lines.extend(state.history.into_iter().map(|entry| HistoryLine {
            channel: channel.to_string(),
            entry,
        }));
    }
    lines.sort_by_key(|line| line.entry.at);
    Ok(Json(lines))
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    pub subject: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AuditLine {
    id: i64,
    at: chrono::DateTime<chrono::Utc>,
    actor: String,
    action: String,
    subject: String,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
}

pub(crate) async fn audit(
    Channels(api): Channels,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditLine>>, ChannelsApiError> {
    authorize(&api, &headers, Scope::Read)?;
    let limit = query.limit.unwrap_or(50).min(1000);
    let entries = api
        .store
        .audit_log(query.subject.as_deref(), limit)
        .await
        .map_err(internal)?;
    Ok(Json(
        entries
            .into_iter()
            .map(|logged| AuditLine {
                id: logged.id,
                at: logged.entry.at,
                actor: logged.entry.actor,
                action: logged.entry.action,
                subject: logged.entry.subject,
                before: logged.entry.before,
                after: logged.entry.after,
            })
            .collect(),
    ))
}

/// `GET /api/v1/usage`'s filters: one each of digest, reference and repository (any matches;
/// none: every use).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    pub digest: Option<String>,
    pub reference: Option<String>,
    pub repository: Option<String>,
    #[serde(default)]
    pub include_gone: bool,
    pub limit: Option<u32>,
}

/// `GET /api/v1/usage`: who uses which image (what `berth usage --json` lists under `uses`).
/// A read token: workload names are the cluster's business.
pub(crate) async fn usage(
    Channels(api): Channels,
    headers: HeaderMap,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<berth_store::UsageView>>, ChannelsApiError> {
    authorize(&api, &headers, Scope::Read)?;
    let Query(query) = query.map_err(|error| ChannelsApiError::BadRequest(error.body_text()))?;
    let mut filter = berth_store::UsageQuery {
        include_gone: query.include_gone,
        limit: Some(query.limit.unwrap_or(100).min(1000)),
        ..berth_store::UsageQuery::default()
    };
    if let Some(text) = &query.digest {
        filter.digests.push(
            Digest::parse(text).map_err(|error| {
                ChannelsApiError::BadRequest(format!("digest {text:?}: {error}"))
            })?,
        );
    }
    if let Some(text) = &query.reference {
        filter
            .references
            .push(berth_core::ImageRef::parse(text).map_err(|error| {
                ChannelsApiError::BadRequest(format!("reference {text:?}: {error}"))
            })?);
    }
    if let Some(text) = &query.repository {
        let repository = berth_core::ImageRef::parse(text).map_err(|error| {
            ChannelsApiError::BadRequest(format!("repository {text:?}: {error}"))
        })?;
        filter.repositories.push(repository.name());
    }
    let entries = api.store.usage(&filter).await.map_err(internal)?;
    Ok(Json(
        entries.iter().map(berth_store::UsageView::from).collect(),
    ))
}

/// `GET /api/v1/usage/sources`: when each source last reported, and last reported in full.
pub(crate) async fn usage_sources(
    Channels(api): Channels,
    headers: HeaderMap,
) -> Result<Json<Vec<berth_store::SourceFreshness>>, ChannelsApiError> {
    authorize(&api, &headers, Scope::Read)?;
    Ok(Json(api.store.usage_sources().await.map_err(internal)?))
}

/// `GET /api/v1/notifications?limit=N`: the newest deliveries of the notifications outbox
/// (what `berth notifications list --json` prints). A read token: summaries name workloads.
pub(crate) async fn notifications(
    Channels(api): Channels,
    headers: HeaderMap,
    query: Result<Query<LimitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<berth_store::notifications::Delivery>>, ChannelsApiError> {
    authorize(&api, &headers, Scope::Read)?;
    let Query(query) = query.map_err(|error| ChannelsApiError::BadRequest(error.body_text()))?;
    let limit = query.limit.unwrap_or(50).min(1000);
    Ok(Json(
        api.store.notifications(limit).await.map_err(internal)?,
    ))
}

/// The body of `POST /api/v1/provenance`: what a pipeline built and tested.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceBody {
    /// `sha256:…` or `REF@sha256:…`.
    pub digest: String,
    pub source: Option<String>,
    pub commit: Option<String>,
    pub build: Option<String>,
    pub logs: Option<String>,
    /// `passed` or `failed`.
    pub tests: Option<String>,
    pub tests_url: Option<String>,
}

/// `POST /api/v1/provenance` (a `ci` token, or admin): records what a pipeline reports about
/// the digest it pushed, as `berth provenance record` does; the token's name is the recorder.
/// 201 with `{digest, record}`.
pub(crate) async fn record_provenance(
    Channels(api): Channels,
    headers: HeaderMap,
    body: Result<Json<ProvenanceBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ChannelsApiError> {
    let actor = authorize(&api, &headers, Scope::Ci)?;
    let Json(body) = body.map_err(|error| ChannelsApiError::BadRequest(error.body_text()))?;
    let digest = match Digest::parse(&body.digest) {
        Ok(digest) => digest,
        Err(_) => berth_core::ImageRef::parse(&body.digest)
            .ok()
            .and_then(|image| image.digest().cloned())
            .ok_or_else(|| {
                ChannelsApiError::BadRequest(format!(
                    "digest: {:?} is not sha256:… or REF@sha256:… (a tag can move)",
                    body.digest
                ))
            })?,
    };
    let tests = match body.tests.as_deref() {
        None => None,
        Some(text) => Some(berth_core::provenance::Tests::parse(text).ok_or_else(|| {
            ChannelsApiError::BadRequest(format!("tests: {text:?} is not passed or failed"))
        })?),
    };
    let record = berth_core::provenance::Record {
        source: body.source,
        commit: body.commit,
        build: body.build,
        logs: body.logs,
        tests,
        tests_url: body.tests_url,
        recorded_by: actor,
        recorded_at: (api.clock)(),
    };
    record.check().map_err(ChannelsApiError::BadRequest)?;
    api.store
        .record_provenance(&digest, &record)
        .await
        .map_err(internal)?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"digest": digest, "record": record})),
    ))
}

/// A page size, alone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    pub limit: Option<u32>,
}

/// The body of `POST /api/v1/channels/{name}/promote`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteBody {
    pub variant: Option<String>,
    pub from: String,
    pub to: String,
    /// The target is `to` of this variant of the entry (another repository or registry).
    pub to_variant: Option<String>,
    pub digest: Option<String>,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub stamp: bool,
}

/// 200 with the outcome when done or nothing to do; 409 with the outcome when blocked or when
/// the tag was moved outside berth.
fn outcome_response(outcome: berth_channels::Outcome) -> Response {
    let status = if outcome.is_negative() {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    (status, Json(outcome)).into_response()
}

pub(crate) async fn promote(
    Channels(api): Channels,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<PromoteBody>,
) -> Result<Response, ChannelsApiError> {
    let actor = authorize(&api, &headers, Scope::Promote)?;
    Ok(outcome_response(
        promote_as(&api, actor, &name, body).await?,
    ))
}

/// A promotion of `name` by `actor` (already authorized): the API's and the dashboard's.
pub(crate) async fn promote_as(
    api: &ChannelsApi,
    actor: String,
    name: &str,
    body: PromoteBody,
) -> Result<berth_channels::Outcome, ChannelsApiError> {
    let (subject, entry) = subject(api, name, body.variant.as_deref())?;
    let from = tag(&body.from, "from")?;
    let to = tag(&body.to, "to")?;
    let wanted = body
        .digest
        .as_deref()
        .map(|text| digest(text, "digest"))
        .transpose()?;
    if let Some(variant) = body.to_variant.as_deref() {
        Subject::of(&entry, Some(variant)).map_err(ChannelsApiError::NotFound)?;
    }
    let mut manual = PromotionRule::manual(from.clone(), to.clone());
    manual.to_variant = body.to_variant.clone();
    let rule = api
        .rules
        .rule_to(&entry, &from, &to, body.to_variant.as_deref())
        .unwrap_or(&manual);
    let request = PromoteRequest {
        rule,
        request: Request::ByHand { digest: wanted },
        actor,
        reason: body.reason,
        force: body.force,
        stamp: body.stamp || rule.stamp,
    };
    let now = (api.clock)();
    let outcome = berth_channels::promote(&api.client, &api.store, &subject, &entry, &request, now)
        .await
        .map_err(internal)?;
    if let Action::Moved { to: digest, .. } = &outcome.action {
        tracing::info!(image = %subject.label(), channel = %to, %digest, actor = %request.actor, "promoted");
    }
    Ok(outcome)
}

/// The body of `POST /api/v1/channels/{name}/rollback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    pub variant: Option<String>,
    pub channel: String,
    pub to: Option<String>,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub force: bool,
}

pub(crate) async fn rollback(
    Channels(api): Channels,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<RollbackBody>,
) -> Result<Response, ChannelsApiError> {
    let actor = authorize(&api, &headers, Scope::Promote)?;
    match rollback_as(&api, actor, &name, body).await? {
        Ok(outcome) => Ok(outcome_response(outcome)),
        Err(refused) => Ok((
            StatusCode::CONFLICT,
            Json(ErrorBody {
                error: "rollback_refused",
                message: refused,
            }),
        )
            .into_response()),
    }
}

/// A rollback of `name` by `actor` (already authorized): the outcome, or why berth refused it.
pub(crate) async fn rollback_as(
    api: &ChannelsApi,
    actor: String,
    name: &str,
    body: RollbackBody,
) -> Result<Result<berth_channels::Outcome, String>, ChannelsApiError> {
    let (subject, _) = subject(api, name, body.variant.as_deref())?;
    let request = RollbackRequest {
        channel: tag(&body.channel, "channel")?,
        to: body
            .to
            .as_deref()
            .map(|text| digest(text, "to"))
            .transpose()?,
        actor,
        reason: body.reason,
        force: body.force,
    };
    let now = (api.clock)();
    match berth_channels::rollback(&api.client, &api.store, &subject, &request, now).await {
        Ok(outcome) => Ok(Ok(outcome)),
        Err(refused @ ChannelError::Rollback { .. }) => Ok(Err(refused.to_string())),
        Err(error) => Err(internal(error)),
    }
}
