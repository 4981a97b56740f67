//! The dashboard under `/ui/`: server-rendered HTML (maud: templates compiled in, every
//! interpolation escaped), usable without JavaScript, each page at a stable URL and linked to
//! the others — overview, catalog, an entry, images, an image, the diff of two images (`diff`),
//! the usage campaign, the retention plan and the audit log. Pages that show who runs what or who did what need a
//! signed-in `read` token unless `ui.anonymous: all`; signing in sets an HttpOnly,
//! SameSite=Strict session cookie whose session (the token's name, hash and scope; never the
//! token) is in the store, so every replica on it knows the sign-in
//! (`berth_store::sessions`), and is checked against the configured tokens on every request.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use berth_channels::status::{self, Look, SubjectView};
use berth_core::Digest;
use berth_core::catalog::{CatalogEntry, State as Lifecycle};
use berth_core::channels::{Decision, Due, RulesFile};
use berth_store::{ImageFilter, ImageSummary, RepositoryName, UsageQuery};
use chrono::{DateTime, TimeDelta, Utc};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::AppState;
use crate::channels_api::{PromoteBody, RollbackBody};
use crate::config::{ApiToken, Scope};

pub mod diff;

/// Rows per page of the long listings.
pub const PAGE: usize = 50;
/// The session cookie's name.
const COOKIE: &str = "berth_session";
/// How long a sign-in lasts.
const SESSION_TTL: TimeDelta = TimeDelta::hours(8);
/// What a session's CSRF token is the HMAC of, keyed by the session id.
const CSRF_LABEL: &[u8] = b"berth dashboard csrf";

/// Who may see what without signing in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Anonymous {
    /// Nothing: every page needs a signed-in token.
    None,
    /// The pages that show no secrets: overview, catalog, entries, images.
    #[default]
    Catalog,
    /// Every page, usage, retention and audit included.
    All,
}

impl Anonymous {
    pub fn parse(text: &str) -> Result<Anonymous, String> {
        match text {
            "none" => Ok(Anonymous::None),
            "catalog" => Ok(Anonymous::Catalog),
            "all" => Ok(Anonymous::All),
            _ => Err(format!("{text:?} is not none, catalog or all")),
        }
    }
}

/// The dashboard, ready to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSettings {
    pub anonymous: Anonymous,
}

/// A signed-in browser, as this request sees it.
struct Session {
    /// The cookie's value: the CSRF token is derived from it.
    id: String,
    /// The token's name: who is signed in, the actor of its forms.
    name: String,
    scope: Scope,
}

impl Session {
    /// The token every form of this session carries; a POST without it is refused.
    ///
    /// HMAC-SHA256 of a fixed label keyed by the session id, rather than a random value kept
    /// beside the session: every replica computes the same token from the cookie it is sent,
    /// and the store, which keeps only the id's SHA-256, holds neither a working cookie nor a
    /// form's token. Only the cookie's holder can compute it, and it does not give the id away.
    fn csrf(&self) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.id.as_bytes());
        hex(ring::hmac::sign(&key, CSRF_LABEL).as_ref())
    }
}

/// The dashboard: its settings, the tokens sessions are checked against, and where the
/// sessions are kept.
pub struct Ui {
    pub settings: UiSettings,
    tokens: Vec<ApiToken>,
    /// The sessions' store, shared by every replica on it. `None` without a store: then there
    /// are no `api_tokens` either (berth serve refuses them without a store), so no one signs
    /// in and the pages open to anonymous visitors are all there is.
    sessions: Option<berth_store::Store>,
    /// The promotion rules the channel page evaluates (`promotions` of the config).
    rules: RulesFile,
    /// The overview's counts and the knowledge generation they were read at: counting 100k
    /// images takes tens of milliseconds, reading the generation one row.
    counts: Mutex<Option<(u64, berth_store::knowledge::KnowledgeCounts)>>,
}

impl Ui {
    pub fn new(
        settings: UiSettings,
        tokens: Vec<ApiToken>,
        rules: RulesFile,
        sessions: Option<berth_store::Store>,
    ) -> Ui {
        Ui {
            settings,
            tokens,
            rules,
            counts: Mutex::new(None),
            sessions,
        }
    }

    /// What the store knows, counted again only when its knowledge generation moved.
    async fn counts(
        &self,
        store: &berth_store::Store,
    ) -> Result<berth_store::knowledge::KnowledgeCounts, berth_store::StoreError> {
        let generation = store.knowledge_generation().await?;
        if let Some((at, counts)) = &*self.counts.lock().unwrap_or_else(PoisonError::into_inner)
            && *at == generation
        {
            return Ok(*counts);
        }
        let counts = store.counts().await?;
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner) = Some((generation, counts));
        Ok(counts)
    }

    /// The session the request's cookie names, unless it expired by `now` or its token is no
    /// longer configured as it was at sign-in (same name, secret and scope): a token removed
    /// from `api_tokens`, or given a new secret or scope, no longer carries its sessions. Such
    /// a session is refused, not deleted: replicas in the middle of a config rollout may
    /// disagree on the tokens, and one must not sign a browser out of the others.
    async fn session(
        &self,
        headers: &HeaderMap,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, Refusal> {
        let (Some(id), Some(store)) = (cookie(headers, COOKIE), &self.sessions) else {
            return Ok(None);
        };
        let Some(stored) = store.ui_session(id, now).await.map_err(failed)? else {
            return Ok(None);
        };
        let configured = self.tokens.iter().find(|token| {
            token.name == stored.token_name
                && token.sha256 == stored.token_sha256
                && token.scope.as_str() == stored.scope
        });
        match configured {
            Some(token) => Ok(Some(Session {
                id: id.to_string(),
                name: token.name.clone(),
                scope: token.scope,
            })),
            None => {
                tracing::info!(token = %stored.token_name, "dashboard session of a token no longer configured refused");
                Ok(None)
            }
        }
    }

    /// A new session for `token` when it is one of the configured tokens.
    async fn sign_in(&self, token: &str, now: DateTime<Utc>) -> Result<Option<Session>, Refusal> {
        let hash = crate::channels_api::token_hash(token);
        let Some(known) = self.tokens.iter().find(|known| known.sha256 == hash) else {
            return Ok(None);
        };
        let store = self.sessions.as_ref().ok_or_else(|| {
            refuse((
                StatusCode::SERVICE_UNAVAILABLE,
                "signing in needs a store to keep sessions in",
            ))
        })?;
        let id = random_hex().ok_or_else(|| failed("no random bytes for a session id"))?;
        let stored = berth_store::UiSession {
            token_name: known.name.clone(),
            token_sha256: known.sha256.clone(),
            scope: known.scope.as_str().to_string(),
            created_at: now,
            expires_at: now + SESSION_TTL,
        };
        store
            .create_ui_session(&id, &stored)
            .await
            .map_err(failed)?;
        Ok(Some(Session {
            id,
            name: known.name.clone(),
            scope: known.scope,
        }))
    }

    /// Ends the session the request's cookie names, on every replica.
    async fn sign_out(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        if let (Some(id), Some(store)) = (cookie(headers, COOKIE), &self.sessions) {
            store.end_ui_session(id).await.map_err(failed)?;
        }
        Ok(())
    }
}

/// 32 random bytes in hex: a session id.
fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).ok()?;
    Some(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Which pages a request may see.
enum Access {
    Public,
    /// Who runs what, who did what: a signed-in `read` token.
    Sensitive,
}

/// Why a page is not shown: the response to send instead (boxed: a `Response` is large).
pub struct Refusal(Box<Response>);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        *self.0
    }
}

fn refuse(response: impl IntoResponse) -> Refusal {
    Refusal(Box::new(response.into_response()))
}

/// A page of the dashboard sent with an error status instead of the one asked for.
fn refusal_page(
    status: StatusCode,
    title: &str,
    current: &str,
    user: Option<&str>,
    body: Markup,
) -> Refusal {
    refuse((status, Html(page_html(title, current, user, body))))
}

/// A page, or why it cannot be shown.
type Page = Result<Html<String>, Refusal>;

fn ui(state: &AppState) -> Result<&Ui, Refusal> {
    state
        .ui
        .as_deref()
        .ok_or_else(|| refuse((StatusCode::NOT_FOUND, "the dashboard is off (--ui=false)")))
}

/// Checks access; `Ok(signed-in name)`.
async fn allow(
    state: &AppState,
    headers: &HeaderMap,
    access: Access,
) -> Result<Option<String>, Refusal> {
    let ui = ui(state)?;
    let session = ui.session(headers, (state.clock)()).await?;
    let open = matches!(
        (ui.settings.anonymous, access),
        (Anonymous::All, _) | (Anonymous::Catalog, Access::Public)
    );
    match session {
        Some(session) if session.scope.allows(Scope::Read) => Ok(Some(session.name)),
        _ if open => Ok(None),
        _ => Err(refuse(Redirect::to("/ui/signin"))),
    }
}

fn store(state: &AppState) -> Result<&berth_store::Store, Refusal> {
    state
        .knowledge
        .as_ref()
        .map(|knowledge| &knowledge.store)
        .ok_or_else(|| {
            refuse((
                StatusCode::SERVICE_UNAVAILABLE,
                page_html(
                    "No store",
                    "",
                    None,
                    html! { p { "berth serve runs without a store: configure `store` to see what it knows." } },
                ),
            ))
        })
}

fn failed(error: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %error, "dashboard");
    refuse((StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
}

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fff;line-height:1.4}
header{background:#12355b;color:#fff;padding:.5rem 1rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
header a{color:#fff;text-decoration:none;padding:.2rem .4rem;border-radius:3px}
header a[aria-current=page]{background:#fff;color:#12355b}
main{padding:1rem;max-width:90rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ccc;vertical-align:top}
th{background:#eef2f6}
code{font-size:.9em;word-break:break-all}
.held{color:#a30000}.base-disagrees{color:#a30000;font-weight:bold}.decision-blocked{color:#7a4d00}
.state-stable{color:#145c2c}.state-deprecated{color:#7a4d00}.state-eol{color:#a30000;font-weight:bold}
.cards{display:flex;gap:1rem;flex-wrap:wrap}
.card{border:1px solid #ccc;border-radius:4px;padding:.5rem 1rem;min-width:12rem}
.card strong{font-size:1.6rem;display:block}
nav.pages a{margin-right:1rem}
form.inline{display:inline}
label{display:block;margin:.5rem 0 .2rem}
label.inline{display:inline;margin:0 .3rem}
";

const NAV: [(&str, &str); 8] = [
    ("overview", "/ui/"),
    ("catalog", "/ui/catalog"),
    ("channels", "/ui/channels"),
    ("images", "/ui/images"),
    ("usage", "/ui/usage"),
    ("retention", "/ui/retention"),
    ("audit", "/ui/audit"),
    ("sign in", "/ui/signin"),
];

fn page_html(title: &str, current: &str, user: Option<&str>, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — berth" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "berth" }
                    nav aria-label="pages" {
                        @for (name, href) in NAV {
                            @if name == "sign in" && user.is_some() {
                                a href="/ui/signout" { "sign out (" (user.unwrap_or_default()) ")" }
                            } @else if name == current {
                                a href=(href) aria-current="page" { (name) }
                            } @else {
                                a href=(href) { (name) }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
    .into_string()
}

fn page(title: &str, current: &str, user: &Option<String>, body: Markup) -> Html<String> {
    Html(page_html(title, current, user.as_deref(), body))
}

fn state_cell(state: Lifecycle) -> Markup {
    html! { span class=(format!("state-{}", state.as_str())) { (state.as_str()) } }
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

fn digest_link(digest: &str) -> Markup {
    html! { a href=(format!("/ui/images/{digest}")) { code title=(digest) { (short(digest)) } } }
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn pages(base: &str, page: usize, shown: usize, total: Option<usize>) -> Markup {
    let more = match total {
        Some(total) => (page + 1) * PAGE < total,
        None => shown == PAGE,
    };
    let join = if base.contains('?') { '&' } else { '?' };
    html! {
        nav.pages aria-label="pagination" {
            @if page > 0 { a href=(format!("{base}{join}page={}", page - 1)) rel="prev" { "← previous" } }
            span { "page " (page + 1) @if let Some(total) = total { " of " (total.div_ceil(PAGE).max(1)) } }
            @if more { " " a href=(format!("{base}{join}page={}", page + 1)) rel="next" { "next →" } }
        }
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    page: usize,
    os: Option<String>,
    state: Option<String>,
    subject: Option<String>,
    action: Option<String>,
}

/// `/`: the dashboard.
pub async fn root(State(state): State<AppState>) -> Response {
    match state.ui {
        Some(_) => Redirect::to("/ui/").into_response(),
        None => crate::api::not_found().await.into_response(),
    }
}

/// `/ui/`: the overview.
pub async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Page {
    let user = allow(&state, &headers, Access::Public).await?;
    let now = (state.clock)();
    let snapshot = state.catalog.snapshot();
    let mut states = [0usize; 3];
    if let Some(snapshot) = &snapshot {
        for entry in snapshot.catalog.entries() {
            states[entry.lifecycle.at(now).state as usize] += 1;
        }
    }
    let counts = match (&state.knowledge, &state.ui) {
        (Some(knowledge), Some(ui)) => Some(ui.counts(&knowledge.store).await.map_err(failed)?),
        _ => None,
    };
    let stale = state
        .freshness
        .as_ref()
        .and_then(|freshness| freshness.last())
        .map(|(report, at)| {
            (
                berth_core::freshness::count_by_reason(&report),
                report.stale.len(),
                at,
            )
        });
    let (campaign_eol, campaign_deprecated) = match (&state.knowledge, &snapshot) {
        (Some(knowledge), Some(snapshot)) => {
            let entries = knowledge
                .store
                .usage(&UsageQuery::default())
                .await
                .map_err(failed)?;
            let count = |wanted| {
                berth_store::usage::campaign(&snapshot.catalog, &entries, wanted, now)
                    .namespaces
                    .iter()
                    .map(|group| group.uses.iter().filter(|u| u.state == wanted).count())
                    .sum::<usize>()
            };
            (
                Some(count(Lifecycle::Eol)),
                Some(count(Lifecycle::Deprecated)),
            )
        }
        _ => (None, None),
    };
    let failing = match &state.knowledge {
        Some(knowledge) => knowledge
            .store
            .failing_repositories()
            .await
            .map_err(failed)?,
        None => Vec::new(),
    };
    let runs = state.knowledge.as_ref().map(|knowledge| knowledge.runs());
    let retention = state
        .retention
        .as_ref()
        .and_then(|retention| retention.last());
    let leases = state.leases.views();
    // Promotions blocked or due now, from the store's history (no registry request).
    let (mut blocked, mut due) = (0usize, 0usize);
    if let (Some(knowledge), Some(snapshot), Some(ui)) = (&state.knowledge, &snapshot, &state.ui) {
        for (subject, entry) in status::subjects(snapshot.catalog.entries()) {
            if ui
                .rules
                .promotions
                .iter()
                .all(|rule| !rule.applies_to(entry))
            {
                continue;
            }
            let view = status::status(
                Look::Recorded,
                &knowledge.store,
                &ui.rules,
                &subject,
                entry,
                now,
            )
            .await
            .map_err(|error| failed(crate::channels_api::chain(&error)))?;
            blocked += view
                .rules
                .iter()
                .filter(|rule| matches!(rule.now, Decision::Blocked { .. }))
                .count();
            due += view
                .rules
                .iter()
                .filter(|rule| matches!(rule.next, Due::Now { .. }))
                .count();
        }
    }
    Ok(page(
        "Overview",
        "overview",
        &user,
        html! {
            section.cards aria-label="at a glance" {
                div.card { strong { (snapshot.as_ref().map_or(0, |s| s.catalog.entries().len())) } "catalog entries: "
                    (states[0]) " stable, " (states[1]) " deprecated, " (states[2]) " eol" }
                @if let Some(counts) = counts {
                    div.card { strong { (counts.images) } "images known, in " (counts.repositories) " repositories (" (counts.live_tags) " live tags)" }
                }
                @if let Some((_, stale, _)) = &stale { div.card { strong { (stale) } a href="/api/v1/stale" { "stale images" } } }
                @if let Some(eol) = campaign_eol { div.card { strong { (eol) } a href="/ui/usage?state=eol" { "uses of eol images" } } }
                @if let Some(deprecated) = campaign_deprecated { div.card { strong { (deprecated) } a href="/ui/usage?state=deprecated" { "uses of deprecated images" } } }
                div.card { strong { (blocked) } a href="/ui/channels" { "promotions blocked" } " (" (due) " due now)" }
                @if let Some(run) = &retention { div.card { strong { (run.applied.plan.candidates) } a href="/ui/retention" { "retention candidates" } } }
            }
            @if let Some((counts, _, at)) = &stale {
                h2 { "Stale images by reason" }
                p { "Freshness pass at " (time(*at)) "." }
                table { thead { tr { th scope="col" { "reason" } th scope="col" { "images" } } }
                    tbody { @for (reason, count) in counts { tr { td { (reason) } td { (count) } } } } }
            }
            h2 { "Sync" }
            @match &runs {
                Some(runs) => p { "Scheduled sync: " (if runs.scheduled { "on" } else { "off" }) ", "
                    (runs.runs_ok) " runs ok, " (runs.runs_failed) " failed."
                    @if let Some(at) = runs.last_finished_at { " Last finished " (time(at)) "." } },
                None => p { "No store." },
            }
            @if !failing.is_empty() {
                table { caption { "Repositories whose last sync failed" }
                    thead { tr { th scope="col" { "repository" } th scope="col" { "last attempt" } th scope="col" { "error" } } }
                    tbody { @for status in &failing { tr {
                        td { code { (status.repository.to_string()) } }
                        td { (status.sync.last_sync_attempt_at.map(time).unwrap_or_default()) }
                        td { (status.sync.last_error.clone().unwrap_or_default()) } } } } }
            }
            h2 { "Leases" }
            @if leases.is_empty() { p { "No singleton tasks on this replica." } } @else {
                table { thead { tr { th scope="col" { "lease" } th scope="col" { "holder" } th scope="col" { "here" } } }
                    tbody { @for lease in &leases { tr { td { (lease.name) } td { (lease.holder.clone().unwrap_or_else(|| "none".into())) } td { (if lease.held_here { "yes" } else { "no" }) } } } } }
            }
        },
    ))
}

/// `/ui/catalog`: every entry with its lifecycle, replacement, owners, images and channels.
pub async fn catalog(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Page {
    let user = allow(&state, &headers, Access::Public).await?;
    let now = (state.clock)();
    let Some(snapshot) = state.catalog.snapshot() else {
        return Ok(page(
            "Catalog",
            "catalog",
            &user,
            html! { p { "No catalog has loaded yet." } },
        ));
    };
    let entries = snapshot.catalog.entries();
    let shown: Vec<&CatalogEntry> = entries.iter().skip(query.page * PAGE).take(PAGE).collect();
    Ok(page(
        "Catalog",
        "catalog",
        &user,
        html! {
            p { (entries.len()) " entries." }
            table {
                thead { tr { th scope="col" { "name" } th scope="col" { "state" } th scope="col" { "deprecated on" }
                    th scope="col" { "eol on" } th scope="col" { "replacement" } th scope="col" { "owners" }
                    th scope="col" { "images" } th scope="col" { "channels" } } }
                tbody { @for entry in &shown { tr {
                    td { a href=(format!("/ui/catalog/{}", entry.name)) { (entry.name) } }
                    td { (state_cell(entry.lifecycle.at(now).state)) }
                    td { (entry.lifecycle.deprecated_on.map(|d| d.to_string()).unwrap_or_default()) }
                    td { (entry.lifecycle.eol_on.map(|d| d.to_string()).unwrap_or_default()) }
                    td { @if let Some(replacement) = &entry.lifecycle.replacement { a href=(format!("/ui/catalog/{replacement}")) { (replacement) } } }
                    td { (entry.owners.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", ")) }
                    td { @for (variant, image) in entry.images() { div { @if let Some(variant) = variant { (variant) ": " } code { (image.canonical()) } } } }
                    td { (entry.channels.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")) }
                } } }
            }
            (pages("/ui/catalog", query.page, shown.len(), Some(entries.len())))
        },
    ))
}

/// `/ui/catalog/{name}`: one entry, each channel's digest, its history and who uses it.
pub async fn entry(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Page {
    let user = allow(&state, &headers, Access::Public).await?;
    let now = (state.clock)();
    let snapshot = state.catalog.snapshot();
    let Some(entry) = snapshot.as_ref().and_then(|snapshot| {
        snapshot
            .catalog
            .entries()
            .iter()
            .find(|entry| entry.name == name)
    }) else {
        return Err(refusal_page(
            StatusCode::NOT_FOUND,
            "Not in the catalog",
            "catalog",
            user.as_deref(),
            html! { p { "No entry " code { (name) } "." } },
        ));
    };
    let mut channels = Vec::new();
    let mut history = Vec::new();
    let mut uses = Vec::new();
    let sensitive_ok = allow(&state, &headers, Access::Sensitive).await.is_ok();
    if let Some(knowledge) = &state.knowledge {
        for (variant, image) in entry.images() {
            let Ok(repository) = RepositoryName::new(image.registry(), image.repository()) else {
                continue;
            };
            let tags = knowledge.store.tags(&repository).await.map_err(failed)?;
            for channel in &entry.channels {
                let digest = tags
                    .iter()
                    .find(|tag| tag.tag == *channel && tag.gone_at.is_none())
                    .map(|tag| (tag.digest.to_string(), tag.digest_since));
                channels.push((
                    variant.map(str::to_string),
                    image.canonical(),
                    channel.as_str().to_string(),
                    digest,
                ));
            }
        }
        history = knowledge
            .store
            .channel_history(Some(&entry.name), 20)
            .await
            .map_err(failed)?;
        if sensitive_ok {
            uses = knowledge
                .store
                .usage(&UsageQuery {
                    repositories: entry.images().map(|(_, image)| image.canonical()).collect(),
                    limit: Some(200),
                    ..UsageQuery::default()
                })
                .await
                .map_err(failed)?;
        }
    }
    let effective = entry.lifecycle.at(now);
    Ok(page(
        &entry.name,
        "catalog",
        &user,
        html! {
            @if let Some(description) = &entry.description { p { (description) } }
            dl {
                dt { "state" } dd { (state_cell(effective.state)) @if let Some(since) = effective.since { " since " (since.to_string()) } }
                @if let Some(replacement) = &entry.lifecycle.replacement { dt { "replacement" } dd { a href=(format!("/ui/catalog/{replacement}")) { (replacement) } } }
                @if let Some(base) = &entry.base { dt { "base" } dd { a href=(format!("/ui/catalog/{base}")) { (base) } } }
                dt { "owners" } dd { (entry.owners.iter().map(|o| match &o.contact { Some(c) => format!("{} ({c})", o.name), None => o.name.clone() }).collect::<Vec<_>>().join(", ")) }
            }
            h2 { "Channels" }
            p { a href=(format!("/ui/channels?image={}", entry.name)) { "Rules, what blocks them, roll back and promote" } }
            table { thead { tr { th scope="col" { "variant" } th scope="col" { "repository" } th scope="col" { "channel" } th scope="col" { "digest" } th scope="col" { "since" } } }
                tbody { @for (variant, repository, channel, digest) in &channels { tr {
                    td { (variant.clone().unwrap_or_else(|| "(default)".into())) } td { code { (repository) } } td { (channel) }
                    @match digest { Some((digest, since)) => { td { (digest_link(digest)) } td { (time(*since)) } }, None => { td { "not pushed" } td {} } }
                } } } }
            h2 { "Channel history" }
            (history_table(&history))
            h2 { "Who uses it" }
            @if !sensitive_ok { p { a href="/ui/signin" { "Sign in" } " to see who uses it." } }
            @else if uses.is_empty() { p { "Nobody berth knows of." } }
            @else { (uses_table(&uses)) }
        },
    ))
}

/// Channel moves, newest first; each move between two digests links to its diff.
fn history_table(history: &[berth_store::Logged<berth_store::ChannelChange>]) -> Markup {
    html! {
        @if history.is_empty() { p { "No moves recorded." } } @else {
            table { thead { tr { th scope="col" { "at" } th scope="col" { "channel" } th scope="col" { "kind" } th scope="col" { "from" } th scope="col" { "to" } th scope="col" { "diff" } th scope="col" { "actor" } th scope="col" { "reason" } } }
                tbody { @for logged in history { @let change = &logged.entry; tr {
                    td { (time(change.at)) } td { (change.channel) @if let Some(v) = &change.variant { " (" (v) ")" } } td { (change.kind.as_str()) }
                    td { @if let Some(previous) = &change.previous { (digest_link(previous.as_str())) } }
                    td { (digest_link(change.digest.as_str())) }
                    td { @if let Some(previous) = &change.previous { @if *previous != change.digest {
                        a href=(diff::href(previous, &change.digest)) data-diff=(change.channel) { "what changed" } } } }
                    td { (change.actor) } td { (change.reason) } } } } }
        }
    }
}

fn uses_table(uses: &[berth_store::UsageEntry]) -> Markup {
    html! {
        table { thead { tr { th scope="col" { "source" } th scope="col" { "scope" } th scope="col" { "where" } th scope="col" { "image" } th scope="col" { "digest" } th scope="col" { "last seen" } } }
            tbody { @for use_ in uses { tr {
                td { (use_.source.as_str()) } td { (use_.scope) }
                td { (use_.usage.namespace) "/" (use_.usage.kind) "/" (use_.usage.name) " [" (use_.usage.container) "]" }
                td { code { (use_.usage.image) } }
                td { @if let Some(digest) = &use_.usage.digest { (digest_link(digest.as_str())) } }
                td { (time(use_.last_seen)) } } } } }
    }
}

/// `/ui/images`: what the store knows, newest first, a page at a time.
pub async fn images(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Page {
    let user = allow(&state, &headers, Access::Public).await?;
    let store = store(&state)?;
    let filter = ImageFilter {
        os: query.os.clone().filter(|os| !os.is_empty()),
        limit: Some(PAGE as u32),
        offset: (query.page * PAGE) as u32,
        ..ImageFilter::default()
    };
    let images = store.images(&filter).await.map_err(failed)?;
    let base = match &filter.os {
        Some(os) => format!("/ui/images?os={os}"),
        None => "/ui/images".to_string(),
    };
    Ok(page(
        "Images",
        "images",
        &user,
        html! {
            form method="get" action="/ui/images" {
                label for="os" { "OS (debian, debian-12, alpine-3.20-arm64)" }
                input id="os" name="os" value=(query.os.clone().unwrap_or_default());
                " " button type="submit" { "filter" }
            }
            table { thead { tr { th scope="col" { "digest" } th scope="col" { "platform" } th scope="col" { "OS" } th scope="col" { "created" } th scope="col" { "size" } th scope="col" { "tags" } } }
                tbody { @for image in &images { (image_row(image)) } } }
            (pages(&base, query.page, images.len(), None))
        },
    ))
}

fn platform(image: &ImageSummary) -> String {
    platform_text(&image.platform)
}

/// `os/arch[/variant]`.
fn platform_text(platform: &berth_store::Platform) -> String {
    match &platform.variant {
        Some(variant) => format!("{}/{}/{variant}", platform.os, platform.architecture),
        None => format!("{}/{}", platform.os, platform.architecture),
    }
}

fn image_row(image: &ImageSummary) -> Markup {
    html! { tr {
        td { (digest_link(image.digest.as_str())) }
        td { (platform(image)) }
        td { (image.os_id.as_ref().map(ToString::to_string).unwrap_or_default()) }
        td { (image.created.map(time).unwrap_or_default()) }
        td { (image.total_size) }
        td { @for location in &image.references { div { code { (location.repository.to_string()) ":" (location.tag.as_str()) } } } }
    } }
}

/// `/ui/images/{digest}`: one image, its base chain by lineage, its tags and who uses it.
pub async fn image(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(digest): Path<String>,
) -> Page {
    let user = allow(&state, &headers, Access::Public).await?;
    let store = store(&state)?;
    let Ok(digest) = Digest::parse(&digest) else {
        return Err(refuse((StatusCode::BAD_REQUEST, "not a digest")));
    };
    let one = |digest: Digest| ImageFilter {
        digest: Some(digest),
        ..ImageFilter::default()
    };
    let Some(image) = store
        .images(&one(digest.clone()))
        .await
        .map_err(failed)?
        .into_iter()
        .next()
    else {
        return Err(refusal_page(
            StatusCode::NOT_FOUND,
            "Unknown image",
            "images",
            user.as_deref(),
            html! { p { "berth knows no platform image " code { (digest.to_string()) } "." } },
        ));
    };
    let mut chain = Vec::new();
    let mut next = image.base.as_ref().map(|base| base.base.clone());
    while let Some(base) = next.take() {
        if chain.len() >= 16 {
            break;
        }
        match store
            .images(&one(base.clone()))
            .await
            .map_err(failed)?
            .into_iter()
            .next()
        {
            Some(found) => {
                next = found.base.as_ref().map(|base| base.base.clone());
                chain.push(found);
            }
            None => break,
        }
    }
    let claims = berth_core::provenance::claims(&image.annotations, &image.labels);
    let base_indexes: Vec<Digest> = chain
        .first()
        .map(|base| {
            base.references
                .iter()
                .filter_map(|at| at.index.clone())
                .collect()
        })
        .unwrap_or_default();
    let base_check = berth_core::provenance::check_base(
        &claims,
        Some((
            image.base.as_ref().map(|found| &found.base),
            base_indexes.as_slice(),
        )),
    );
    let sensitive_ok = allow(&state, &headers, Access::Sensitive).await.is_ok();
    let uses = if sensitive_ok {
        store
            .usage(&UsageQuery {
                digests: vec![digest.clone()],
                limit: Some(200),
                ..UsageQuery::default()
            })
            .await
            .map_err(failed)?
    } else {
        Vec::new()
    };
    let owner = state.catalog.snapshot().and_then(|snapshot| {
        image.references.iter().find_map(|location| {
            let reference = berth_core::ImageRef::parse(&format!(
                "{}:{}",
                location.repository,
                location.tag.as_str()
            ))
            .ok()?;
            snapshot
                .catalog
                .owner_of(&reference)
                .map(|(entry, _)| entry.name.clone())
        })
    });
    // The moves of its entry's channels to or from this image (or an index that holds it).
    let mut moves = Vec::new();
    if let Some(owner) = &owner {
        let mut digests: Vec<&Digest> = vec![&digest];
        digests.extend(image.references.iter().filter_map(|at| at.index.as_ref()));
        moves = store
            .channel_history(Some(owner), 200)
            .await
            .map_err(failed)?;
        moves.retain(|logged| {
            let change = &logged.entry;
            digests.contains(&&change.digest)
                || change
                    .previous
                    .as_ref()
                    .is_some_and(|p| digests.contains(&p))
        });
    }
    Ok(page(
        &format!("Image {}", short(digest.as_str())),
        "images",
        &user,
        html! {
            dl {
                dt { "digest" } dd { code { (digest.to_string()) } }
                dt { "platform" } dd { (platform(&image)) }
                dt { "OS" } dd { (image.os_pretty.clone().unwrap_or_default()) " " code { (image.os_id.as_ref().map(ToString::to_string).unwrap_or_default()) } }
                dt { "libc" } dd { (image.libc.map(|libc| format!("{libc:?}")).unwrap_or_else(|| "unknown".into())) }
                dt { "created" } dd { (image.created.map(time).unwrap_or_else(|| "unknown".into())) }
                dt { "size" } dd { (image.total_size) " bytes" }
                @if let Some(owner) = &owner { dt { "catalog entry" } dd { a href=(format!("/ui/catalog/{owner}")) { (owner) } } }
            }
            h2 { "Provenance (as the image states it)" }
            dl {
                @for (name, claim) in [("source", &claims.source), ("revision", &claims.revision), ("created", &claims.created), ("base name", &claims.base_name), ("base digest", &claims.base_digest)] {
                    dt { (name) } dd { @match claim { Some(claim) => { code { (claim.value) } " (" (claim.from) ")" }, None => "—" } }
                }
                dt { "base claim" } dd class=(format!("base-{}", base_check.as_str())) { (base_check.as_str()) " (against layer lineage)" }
                dt { "signatures" } dd { "not checked: berth does not read signatures yet" }
            }
            h2 { "Base chain (by layer lineage)" }
            @if chain.is_empty() { p { "No base berth knows." } } @else {
                ol { @for base in &chain { li { (digest_link(base.digest.as_str())) " " (base.os_id.as_ref().map(ToString::to_string).unwrap_or_default())
                    @for location in base.references.iter().take(3) { " " code { (location.repository.to_string()) ":" (location.tag.as_str()) } } } } }
            }
            h2 { "Tags" }
            ul { @for location in &image.references { li { code { (location.repository.to_string()) ":" (location.tag.as_str()) }
                @if let Some(index) = &location.index { " (through index " (digest_link(index.as_str())) ")" } } } }
            @if owner.is_some() {
                h2 { "Channel moves" }
                (history_table(&moves))
            }
            h2 { "Who uses it" }
            @if !sensitive_ok { p { a href="/ui/signin" { "Sign in" } " to see who uses it." } }
            @else if uses.is_empty() { p { "Nobody berth knows of." } }
            @else { (uses_table(&uses)) }
        },
    ))
}

/// `/ui/usage`: the campaign — who still runs eol (or deprecated) images, by namespace.
pub async fn usage(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Page {
    let user = allow(&state, &headers, Access::Sensitive).await?;
    let store = store(&state)?;
    let wanted = match query.state.as_deref() {
        Some("deprecated") => Lifecycle::Deprecated,
        _ => Lifecycle::Eol,
    };
    let now = (state.clock)();
    let Some(snapshot) = state.catalog.snapshot() else {
        return Ok(page(
            "Usage",
            "usage",
            &user,
            html! { p { "No catalog has loaded yet." } },
        ));
    };
    let entries = store.usage(&UsageQuery::default()).await.map_err(failed)?;
    let campaign = berth_store::usage::campaign(&snapshot.catalog, &entries, wanted, now);
    let sources = store.usage_sources().await.map_err(failed)?;
    Ok(page(
        &format!("Still running {} images", wanted.as_str()),
        "usage",
        &user,
        html! {
            p { "Show: " a href="/ui/usage?state=eol" { "end of life" } " · " a href="/ui/usage?state=deprecated" { "deprecated or end of life" } }
            @if campaign.namespaces.is_empty() { p { "Nobody berth knows of." } }
            @for group in &campaign.namespaces {
                h2 { (if group.namespace.is_empty() { "(no namespace)" } else { group.namespace.as_str() }) }
                table { thead { tr { th scope="col" { "workload" } th scope="col" { "source" } th scope="col" { "image" } th scope="col" { "entry" } th scope="col" { "state" } th scope="col" { "replacement" } th scope="col" { "owners" } } }
                    tbody { @for found in &group.uses { tr {
                        td { (found.usage.kind) "/" (found.usage.name) " [" (found.usage.container) "]" }
                        td { (found.usage.source.as_str()) " " (found.usage.scope) }
                        td { code { (found.usage.image) } }
                        td { a href=(format!("/ui/catalog/{}", found.entry)) { (found.entry) } }
                        td { (state_cell(found.state)) @if let Some(since) = found.since { " since " (since.to_string()) } }
                        td { @if let Some(replacement) = &found.replacement { a href=(format!("/ui/catalog/{replacement}")) { (replacement) } } }
                        td { (found.owners.join(", ")) } } } } }
            }
            h2 { "Sources" }
            table { thead { tr { th scope="col" { "source" } th scope="col" { "scope" } th scope="col" { "uses" } th scope="col" { "last report" } th scope="col" { "last full report" } } }
                tbody { @for source in &sources { tr { td { (source.source.as_str()) } td { (source.scope) } td { (source.uses) }
                    td { (time(source.last_report_at)) } td { (source.last_full_at.map(time).unwrap_or_else(|| "never".into())) } } } } }
        },
    ))
}

/// `/ui/retention`: the last retention run on this replica.
pub async fn retention(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Page {
    let user = allow(&state, &headers, Access::Sensitive).await?;
    let Some(run) = state
        .retention
        .as_ref()
        .and_then(|retention| retention.last())
    else {
        return Ok(page(
            "Retention",
            "retention",
            &user,
            html! {
            p { "No retention run on this replica: it needs a " code { "retention" } " section, and runs on the holder of the " code { "retention" } " lease." } },
        ));
    };
    let plan = &run.applied.plan;
    let rows: Vec<(&str, &berth_core::retention::Candidate)> = plan
        .repositories
        .iter()
        .flat_map(|repository| {
            repository
                .delete
                .iter()
                .map(move |candidate| (repository.repository.as_str(), candidate))
        })
        .collect();
    let shown: Vec<_> = rows.iter().skip(query.page * PAGE).take(PAGE).collect();
    Ok(page(
        "Retention",
        "retention",
        &user,
        html! {
            p { "Run finished " (time(run.finished_at)) ", " (if run.apply { "deleting" } else { "planning only (apply: false)" }) ": "
                (plan.candidates) " candidates, " (plan.bytes) " bytes to free, " (run.applied.deleted) " deleted." }
            @if let Some(refused) = &run.applied.refused { p { strong { "Refused: " } (refused) } }
            @if !plan.stale_sources.is_empty() {
                h2 { "Stale usage sources" }
                ul { @for stale in &plan.stale_sources { li { (stale.source) @if let Some(scope) = &stale.scope { "/" (scope) } ": " (stale.reason) } } }
            }
            @for repository in plan.repositories.iter().filter(|r| r.blocked.is_some()) {
                p { "Blocked: " code { (repository.repository) } " — " (repository.blocked.clone().unwrap_or_default()) }
            }
            h2 { "Candidates" }
            table { thead { tr { th scope="col" { "repository" } th scope="col" { "digest" } th scope="col" { "tags" } th scope="col" { "rule" } th scope="col" { "why" } th scope="col" { "bytes" } } }
                tbody { @for (repository, candidate) in &shown { tr { td { code { (repository) } } td { (digest_link(candidate.digest.as_str())) }
                    td { (candidate.tags.join(", ")) } td { (serde_json::to_value(candidate.rule).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()) }
                    td { (candidate.detail) } td { (candidate.bytes) } } } } }
            (pages("/ui/retention", query.page, shown.len(), Some(rows.len())))
        },
    ))
}

/// `/ui/audit`: the audit log, newest first, filterable by subject and action.
pub async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Page {
    let user = allow(&state, &headers, Access::Sensitive).await?;
    let store = store(&state)?;
    let subject = query.subject.clone().filter(|s| !s.is_empty());
    let action = query.action.clone().filter(|s| !s.is_empty());
    let log = store
        .audit_log(subject.as_deref(), 1000)
        .await
        .map_err(failed)?;
    let log: Vec<_> = log
        .into_iter()
        .filter(|logged| {
            action
                .as_deref()
                .is_none_or(|action| logged.entry.action == action)
        })
        .collect();
    let shown: Vec<_> = log.iter().skip(query.page * PAGE).take(PAGE).collect();
    let base = format!(
        "/ui/audit?subject={}&action={}",
        subject.clone().unwrap_or_default(),
        action.clone().unwrap_or_default()
    );
    Ok(page(
        "Audit log",
        "audit",
        &user,
        html! {
            form method="get" action="/ui/audit" {
                label for="subject" { "subject" } input id="subject" name="subject" value=(subject.clone().unwrap_or_default());
                label for="action" { "action (promote, rollback, retention.delete, catalog.reload, rebuild.dispatch)" } input id="action" name="action" value=(action.clone().unwrap_or_default());
                " " button type="submit" { "filter" }
            }
            table { thead { tr { th scope="col" { "at" } th scope="col" { "actor" } th scope="col" { "action" } th scope="col" { "subject" } th scope="col" { "before" } th scope="col" { "after" } } }
                tbody { @for logged in &shown { @let entry = &logged.entry; tr { td { (time(entry.at)) } td { (entry.actor) } td { (entry.action) }
                    td { code { (entry.subject) } } td { code { (entry.before.as_ref().map(|v| v.to_string()).unwrap_or_default()) } }
                    td { code { (entry.after.as_ref().map(|v| v.to_string()).unwrap_or_default()) } } } } } }
            (pages(&base, query.page, shown.len(), Some(log.len())))
        },
    ))
}

/// `GET /ui/signin`: the sign-in form.
pub async fn signin_form(State(state): State<AppState>, headers: HeaderMap) -> Page {
    let ui = ui(&state)?;
    let user = ui
        .session(&headers, (state.clock)())
        .await?
        .map(|session| session.name);
    Ok(page(
        "Sign in",
        "sign in",
        &user,
        html! {
            @if let Some(name) = &user { p { "Signed in as " (name) "." } }
            form method="post" action="/ui/signin" {
                label for="token" { "API token (the secret whose SHA-256 is in " code { "api_tokens" } ")" }
                input id="token" name="token" type="password" autocomplete="current-password" required;
                " " button type="submit" { "sign in" }
            }
        },
    ))
}

#[derive(Debug, Deserialize)]
pub struct SignIn {
    token: String,
}

/// `POST /ui/signin`: checks the token and sets the session cookie.
pub async fn signin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let ui = match ui(&state) {
        Ok(ui) => ui,
        Err(refusal) => return refusal.into_response(),
    };
    // A sign-in from another site's page is refused (the cookie is SameSite=Strict anyway).
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "cross-site sign-in refused").into_response();
    }
    let signed_in = match ui.sign_in(form.token.trim(), (state.clock)()).await {
        Ok(signed_in) => signed_in,
        Err(refusal) => return refusal.into_response(),
    };
    match signed_in {
        Some(session) => {
            tracing::info!(token = %session.name, "dashboard sign-in");
            let cookie = format!(
                "{COOKIE}={}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}",
                session.id,
                SESSION_TTL.num_seconds()
            );
            let mut response = Redirect::to("/ui/").into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        None => (
            StatusCode::UNAUTHORIZED,
            Html(page_html("Sign in", "sign in", None, html! { p role="alert" { "That token is not one of the configured api_tokens." } a href="/ui/signin" { "Try again" } })),
        )
            .into_response(),
    }
}

/// `/ui/signout`: ends the session.
pub async fn signout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Ok(ui) = ui(&state)
        && let Err(refusal) = ui.sign_out(&headers).await
    {
        return refusal.into_response();
    }
    let mut response = Redirect::to("/ui/").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("berth_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

#[derive(Debug, Deserialize, Default)]
pub struct ChannelsQuery {
    #[serde(default)]
    page: usize,
    /// One entry (`NAME`) or one variant (`NAME/variant`).
    image: Option<String>,
}

/// `/ui/channels`: each image's channels (digest, since, held), each rule's next slot and what
/// it would decide now; roll back and promote forms for a signed-in admin.
pub async fn channels(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ChannelsQuery>,
) -> Page {
    let user = allow(&state, &headers, Access::Public).await?;
    let ui = ui(&state)?;
    let store = store(&state)?;
    let now = (state.clock)();
    let Some(snapshot) = state.catalog.snapshot() else {
        return Ok(page(
            "Channels",
            "channels",
            &user,
            html! { p { "No catalog has loaded yet." } },
        ));
    };
    // The forms: an admin's session, and a channel API to carry them out.
    let csrf = ui
        .session(&headers, (state.clock)())
        .await?
        .filter(|session| session.scope.allows(Scope::Admin) && state.channels.is_some())
        .map(|session| session.csrf());
    let chosen: Vec<_> = status::subjects(snapshot.catalog.entries())
        .into_iter()
        .filter(|(subject, _)| match &query.image {
            Some(wanted) => subject.name == *wanted || subject.label() == *wanted,
            None => true,
        })
        .collect();
    let mut views: Vec<(&berth_channels::Subject, SubjectView)> = Vec::new();
    for (subject, entry) in chosen.iter().skip(query.page * PAGE).take(PAGE) {
        let view = status::status(Look::Recorded, store, &ui.rules, subject, entry, now)
            .await
            .map_err(|error| failed(crate::channels_api::chain(&error)))?;
        views.push((subject, view));
    }
    let base = match &query.image {
        Some(image) => format!("/ui/channels?image={image}"),
        None => "/ui/channels".to_string(),
    };
    Ok(page(
        "Channels",
        "channels",
        &user,
        html! {
            @if csrf.is_none() && user.is_some() { p { "Roll back and promote need an admin token and a channel API (a store and api_tokens)." } }
            @if user.is_none() && state.channels.is_some() { p { a href="/ui/signin" { "Sign in" } " with an admin token to roll back or promote." } }
            @if views.is_empty() { p { "No catalog image has channels here." } }
            @for (subject, view) in &views {
                section aria-labelledby=(anchor(&view.image)) {
                    h2 id=(anchor(&view.image)) { a href=(format!("/ui/catalog/{}", subject.name)) { (view.image) } " " code { (view.repository) } }
                    table {
                        caption { "Channels of " (view.image) }
                        thead { tr { th scope="col" { "channel" } th scope="col" { "digest" } th scope="col" { "since" } th scope="col" { "managed by berth" } th scope="col" { "state" }
                            @if csrf.is_some() { th scope="col" { "action" } } } }
                        tbody { @for channel in &view.channels { tr data-channel=(channel.channel) {
                            td { (channel.channel) }
                            td { @match &channel.digest { Some(digest) => (digest_link(digest.as_str())), None => "nothing" } }
                            td { (channel.since.map(time).unwrap_or_default()) }
                            td { (if channel.managed { "yes" } else { "no" }) }
                            td { @match &channel.held {
                                Some(held) => strong.held { "held since " (time(held.since)) ": moved outside berth to " (digest_link(held.digest.as_str())) "; `berth channels ack` accepts it" },
                                None => "ok",
                            } }
                            @if let Some(csrf) = &csrf { td {
                                @if channel.digest.is_some() {
                                    form.inline method="post" action="/ui/channels/rollback" {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="name" value=(subject.name);
                                        input type="hidden" name="variant" value=(subject.variant.clone().unwrap_or_default());
                                        input type="hidden" name="channel" value=(channel.channel);
                                        label.inline for=(format!("rb-{}-{}", anchor(&view.image), channel.channel)) { "reason" }
                                        input id=(format!("rb-{}-{}", anchor(&view.image), channel.channel)) name="reason" type="text" size="18";
                                        " " button type="submit" { "roll back " (channel.channel) }
                                    }
                                }
                            } }
                        } } }
                    }
                    @if !view.rules.is_empty() {
                        table {
                            caption { "Promotion rules of " (view.image) }
                            thead { tr { th scope="col" { "from" } th scope="col" { "to" } th scope="col" { "schedule" } th scope="col" { "next" } th scope="col" { "now" }
                                @if csrf.is_some() { th scope="col" { "action" } } } }
                            tbody { @for rule in &view.rules { tr data-rule=(format!("{}->{}", rule.from, rule.to)) {
                                td { (rule.from) } td { (rule.to) } td { (rule.schedule.clone().unwrap_or_else(|| "by hand".into())) }
                                td { (rule.next_text(time)) }
                                td class=(decision_class(&rule.now)) { (rule.now_text()) }
                                @if let Some(csrf) = &csrf { td {
                                    form.inline method="post" action="/ui/channels/promote" {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="name" value=(subject.name);
                                        input type="hidden" name="variant" value=(subject.variant.clone().unwrap_or_default());
                                        input type="hidden" name="from" value=(rule.from);
                                        input type="hidden" name="to" value=(rule.to_channel);
                                        input type="hidden" name="to_variant" value=(rule.to_variant.clone().unwrap_or_default());
                                        button type="submit" { "promote " (rule.from) " → " (rule.to) }
                                    }
                                } }
                            } } }
                        }
                    }
                }
            }
            (pages(&base, query.page, views.len(), Some(chosen.len())))
        },
    ))
}

/// An id for an image's section: its label with `/` and `.` made plain.
fn anchor(label: &str) -> String {
    label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn decision_class(decision: &Decision) -> &'static str {
    match decision {
        Decision::Promote { .. } => "decision-promote",
        Decision::Blocked { .. } => "decision-blocked",
        Decision::NothingToDo { .. } => "decision-idle",
    }
}

/// A roll back or promote form, as the channel page sends it.
#[derive(Debug, Deserialize)]
pub struct ChannelForm {
    csrf: Option<String>,
    name: String,
    #[serde(default)]
    variant: String,
    channel: Option<String>,
    from: Option<String>,
    to: Option<String>,
    #[serde(default)]
    to_variant: String,
    #[serde(default)]
    reason: String,
}

impl ChannelForm {
    fn variant(&self) -> Option<String> {
        Some(self.variant.clone()).filter(|variant| !variant.is_empty())
    }

    fn reason(&self) -> String {
        match self.reason.trim() {
            "" => "from the dashboard".to_string(),
            reason => reason.to_string(),
        }
    }
}

/// Equal, in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Who may carry out a channel form: an admin's session, the form's CSRF token matching it,
/// from this site, with a channel API configured.
async fn form_actor(
    state: &AppState,
    headers: &HeaderMap,
    form: &ChannelForm,
) -> Result<(String, Arc<crate::channels_api::ChannelsApi>), Refusal> {
    let ui = ui(state)?;
    let forbidden = |why: &str| {
        refusal_page(
            StatusCode::FORBIDDEN,
            "Refused",
            "channels",
            None,
            html! { p role="alert" { (why) } p { a href="/ui/channels" { "Back to the channels" } } },
        )
    };
    if !same_origin(headers) {
        return Err(forbidden("A form from another site is refused."));
    }
    let Some(session) = ui.session(headers, (state.clock)()).await? else {
        return Err(forbidden(
            "Sign in with an admin token to roll back or promote.",
        ));
    };
    if !session.scope.allows(Scope::Admin) {
        return Err(forbidden(&format!(
            "The token {} is not an admin token.",
            session.name
        )));
    }
    match &form.csrf {
        Some(csrf) if same_secret(csrf, &session.csrf()) => {}
        _ => {
            tracing::warn!(token = %session.name, "dashboard form without its CSRF token refused");
            return Err(forbidden(
                "The form's CSRF token is missing or is not this session's: reload the page and try again.",
            ));
        }
    }
    let api = state.channels.clone().ok_or_else(|| {
        refuse((
            StatusCode::SERVICE_UNAVAILABLE,
            "the channel API is off: berth serve needs a store and api_tokens",
        ))
    })?;
    Ok((session.name, api))
}

/// Whether a request's `Origin`, when it has one, is this server.
fn same_origin(headers: &HeaderMap) -> bool {
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some(origin), Some(host)) => origin.ends_with(&format!("//{host}")),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// The page after a form: what happened, 200, or 409 when berth said no.
fn outcome_page(form: &ChannelForm, title: &str, result: Result<String, String>) -> Response {
    let back = format!("/ui/channels?image={}", form.name);
    let (status, line) = match result {
        Ok(line) => (StatusCode::OK, line),
        Err(line) => (StatusCode::CONFLICT, line),
    };
    (
        status,
        Html(page_html(
            title,
            "channels",
            None,
            html! { p role="status" data-outcome=(if status == StatusCode::OK { "done" } else { "refused" }) { (line) } p { a href=(back) { "Back to the channels" } } },
        )),
    )
        .into_response()
}

fn api_refusal(error: crate::channels_api::ChannelsApiError) -> Refusal {
    use crate::channels_api::ChannelsApiError;
    match error {
        ChannelsApiError::BadRequest(message) => refuse((StatusCode::BAD_REQUEST, message)),
        ChannelsApiError::NotFound(message) => refuse((StatusCode::NOT_FOUND, message)),
        other => refuse(other),
    }
}

/// `POST /ui/channels/rollback`: rolls a channel back one step, as the signed-in admin.
pub async fn rollback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ChannelForm>,
) -> Result<Response, Refusal> {
    let (actor, api) = form_actor(&state, &headers, &form).await?;
    let body = RollbackBody {
        variant: form.variant(),
        channel: form.channel.clone().unwrap_or_default(),
        to: None,
        reason: form.reason(),
        force: false,
    };
    let result = crate::channels_api::rollback_as(&api, actor, &form.name, body)
        .await
        .map_err(api_refusal)?;
    let result = match result {
        Ok(outcome) if outcome.is_negative() => Err(outcome.summary()),
        Ok(outcome) => Ok(outcome.summary()),
        Err(refused) => Err(refused),
    };
    Ok(outcome_page(&form, "Roll back", result))
}

/// `POST /ui/channels/promote`: promotes by hand under the rule (or a manual one), as the
/// signed-in admin.
pub async fn promote(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ChannelForm>,
) -> Result<Response, Refusal> {
    let (actor, api) = form_actor(&state, &headers, &form).await?;
    let body = PromoteBody {
        variant: form.variant(),
        from: form.from.clone().unwrap_or_default(),
        to: form.to.clone().unwrap_or_default(),
        to_variant: Some(form.to_variant.clone()).filter(|variant| !variant.is_empty()),
        digest: None,
        reason: form.reason(),
        force: false,
        stamp: false,
    };
    let outcome = crate::channels_api::promote_as(&api, actor, &form.name, body)
        .await
        .map_err(api_refusal)?;
    let result = if outcome.is_negative() {
        Err(outcome.summary())
    } else {
        Ok(outcome.summary())
    };
    Ok(outcome_page(&form, "Promote", result))
}

/// Whether the dashboard is on, which tokens sign in, and the store that keeps its sessions.
pub fn build(
    settings: Option<&UiSettings>,
    tokens: &[ApiToken],
    rules: &RulesFile,
    store: Option<&berth_store::Store>,
) -> Option<Arc<Ui>> {
    settings.map(|settings| {
        Arc::new(Ui::new(
            settings.clone(),
            tokens.to_vec(),
            rules.clone(),
            store.cloned(),
        ))
    })
}
