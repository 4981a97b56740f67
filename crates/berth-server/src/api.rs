//! The HTTP handlers: thin adapters from a request to one of the catalog's pure questions, whose
//! `Serialize` answers are the response bodies (the same JSON `berth catalog ... --json` prints).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_core::ImageRef;
use berth_core::catalog::{self, ResolveError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::reload::Snapshot;

/// The OpenAPI description of this API, served at `/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../../docs/openapi.yaml");

/// Why a request got no answer.
#[derive(Debug)]
pub enum ApiError {
    /// The request itself is malformed: a query value, a reference.
    BadRequest(String),
    /// No catalog has loaded yet.
    NoCatalog,
    /// The catalog answered no.
    Resolve(ResolveError),
    NotFound,
    /// No store is configured: knowledge endpoints have nothing to read.
    NoStore,
    /// The store could not be read.
    Store(String),
}

/// `{"error": code, "message": text}`, the body of every error but the catalog's own.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = |status: StatusCode, error: &str, message: String| {
            (status, Json(ErrorBody { error, message })).into_response()
        };
        match self {
            ApiError::BadRequest(message) => body(StatusCode::BAD_REQUEST, "bad_request", message),
            ApiError::NoCatalog => body(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_catalog",
                "no catalog has loaded yet; see /api/v1/status".to_string(),
            ),
            ApiError::NotFound => body(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint; see /openapi.yaml".to_string(),
            ),
            ApiError::NoStore => body(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_store",
                "berth serve runs without a store; set `store` in its config".to_string(),
            ),
            ApiError::Store(message) => body(StatusCode::SERVICE_UNAVAILABLE, "store", message),
            ApiError::Resolve(error) => {
                let status = match error {
                    ResolveError::VariantRequired { .. } => StatusCode::BAD_REQUEST,
                    ResolveError::UnknownName { .. }
                    | ResolveError::UnknownVariant { .. }
                    | ResolveError::UnknownChannel { .. }
                    | ResolveError::NotInCatalog { .. } => StatusCode::NOT_FOUND,
                };
                (status, Json(error)).into_response()
            }
        }
    }
}

impl From<ResolveError> for ApiError {
    fn from(error: ResolveError) -> ApiError {
        ApiError::Resolve(error)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::BadRequest(rejection.body_text())
    }
}

type Answer<T> = Result<Json<T>, ApiError>;

fn snapshot(state: &AppState) -> Result<Arc<Snapshot>, ApiError> {
    state.catalog.snapshot().ok_or(ApiError::NoCatalog)
}

/// The moment to answer for: `?now=` when given (RFC 3339 or a day), else the clock.
fn moment(state: &AppState, now: Option<&str>) -> Result<DateTime<Utc>, ApiError> {
    match now {
        Some(text) => catalog::parse_moment(text).map_err(ApiError::BadRequest),
        None => Ok((state.clock)()),
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
    now: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Answer<catalog::Listing> {
    let Query(query) = query?;
    let now = moment(&state, query.now.as_deref())?;
    Ok(Json(snapshot(&state)?.catalog.list(query.all, now)))
}

#[derive(Debug, Deserialize)]
pub struct AtQuery {
    now: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<AtQuery>, QueryRejection>,
) -> Answer<catalog::EntryView> {
    let Query(query) = query?;
    let now = moment(&state, query.now.as_deref())?;
    Ok(Json(snapshot(&state)?.catalog.show(&name, now)?))
}

#[derive(Debug, Deserialize)]
pub struct ResolveQuery {
    variant: Option<String>,
    channel: Option<String>,
    now: Option<String>,
}

pub async fn resolve(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<ResolveQuery>, QueryRejection>,
) -> Answer<catalog::Resolution> {
    let Query(query) = query?;
    let now = moment(&state, query.now.as_deref())?;
    let snapshot = snapshot(&state)?;
    let resolution = snapshot.catalog.resolve(
        &name,
        query.variant.as_deref(),
        query.channel.as_deref(),
        now,
    )?;
    Ok(Json(resolution))
}

#[derive(Debug, Deserialize)]
pub struct WhichQuery {
    #[serde(rename = "ref")]
    reference: Option<String>,
    now: Option<String>,
}

pub async fn which(
    State(state): State<AppState>,
    query: Result<Query<WhichQuery>, QueryRejection>,
) -> Answer<catalog::Which> {
    let Query(query) = query?;
    let now = moment(&state, query.now.as_deref())?;
    let Some(text) = query.reference else {
        return Err(ApiError::BadRequest(
            "missing query parameter `ref`".to_string(),
        ));
    };
    let reference =
        ImageRef::parse(&text).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    Ok(Json(snapshot(&state)?.catalog.which(&reference, now)?))
}

#[derive(Debug, Serialize)]
pub struct Status {
    catalog: crate::reload::CatalogStatus,
    /// The webhook's policy; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<crate::admission_tasks::PolicyStatus>,
    /// The leases this replica takes part in (name, holder, whether held here, expiry).
    leases: Vec<crate::leases::LeaseView>,
}

pub async fn status(State(state): State<AppState>) -> Json<Status> {
    Json(Status {
        catalog: state.catalog.status(),
        policy: state.policy.as_ref().map(|policy| policy.status()),
        leases: state.leases.views(),
    })
}

#[derive(Debug, Serialize)]
struct Probe {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation: Option<u64>,
    /// Why not ready: the policy's errors (file:line:column), or why it could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
}

pub async fn healthz() -> Response {
    Json(Probe {
        status: "ok",
        generation: None,
        errors: Vec::new(),
    })
    .into_response()
}

/// Ready once a catalog has loaded and, with a webhook, a policy checked against it (from then
/// on, a later invalid edit of either keeps the last good one serving). Not ready: 503 with the
/// errors; the server keeps trying.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let unavailable = |status: &'static str, errors: Vec<String>| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Probe {
                status,
                generation: None,
                errors,
            }),
        )
            .into_response()
    };
    let Some(snapshot) = state.catalog.snapshot() else {
        let errors = state
            .catalog
            .status()
            .last_attempt
            .map(|attempt| {
                let mut errors: Vec<String> = attempt.error.into_iter().collect();
                errors.extend(
                    attempt
                        .diagnostics
                        .iter()
                        .filter(|d| d.is_error())
                        .map(ToString::to_string),
                );
                errors
            })
            .unwrap_or_default();
        return unavailable("no catalog loaded", errors);
    };
    if let Some(policy) = &state.policy {
        let status = policy.status();
        if !status.loaded {
            let mut errors: Vec<String> = status.error.into_iter().collect();
            errors.extend(
                status
                    .diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .map(ToString::to_string),
            );
            return unavailable("no policy loaded", errors);
        }
    }
    Json(Probe {
        status: "ready",
        generation: Some(snapshot.generation),
        errors: Vec::new(),
    })
    .into_response()
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = crate::metrics::render(&state.catalog.status());
    if let Some(knowledge) = &state.knowledge {
        text.push_str(&crate::knowledge::metrics(&knowledge.runs()));
    }
    if let Some(resolver) = &state.resolver {
        text.push_str(&crate::metrics::resolve_metrics(&resolver.stats()));
    }
    if let Some(reader) = &state.namespace_labels {
        text.push_str(&crate::namespaces::metrics(&reader.stats()));
    }
    if let Some(policy) = &state.policy {
        text.push_str(&crate::admission_metrics::policy_metrics(&policy.status()));
        text.push_str(
            &policy
                .metrics
                .render(policy.cell.refreshed(), (state.clock)()),
        );
    }
    text.push_str(&state.leases.metrics());
    if let Some(events) = &state.events {
        text.push_str(&events.metrics());
    }
    if let Some(freshness) = &state.freshness {
        text.push_str(&freshness.metrics());
    }
    if let Some(notifications) = &state.notifications {
        text.push_str(&notifications.metrics());
    }
    if let Some(retention) = &state.retention {
        text.push_str(&retention.metrics());
    }
    if let Some(rebuild) = &state.rebuild {
        text.push_str(&rebuild.metrics());
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML).into_response()
}

pub async fn catalog_schema() -> Response {
    (
        [(header::CONTENT_TYPE, "application/schema+json")],
        catalog::SCHEMA_JSON,
    )
        .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Logs each request once it is answered: method, path, status and time taken. Probes and
/// scrapes log at debug level so they do not drown the rest.
pub async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = tokio::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    if matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics") {
        tracing::debug!(%method, path, status, elapsed_ms, "request");
    } else {
        tracing::info!(%method, path, status, elapsed_ms, "request");
    }
    response
}
