//! The catalog being served and how it is replaced: a snapshot behind an `Arc`, swapped only
//! for a catalog that loaded without error. An invalid edit is logged with its diagnostics,
//! counted, shown in the status, and the last good catalog keeps being served: a typo must never
//! empty a platform's image list. With a store, a reload that changes what is served is
//! appended to the audit log (`catalog.reload`, actor `berth-serve`).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use berth_core::catalog::{Catalog, Diagnostic, Format};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

use crate::Clock;
use crate::catalog_source::{self, CatalogSource, Fingerprint};

/// A catalog that loaded without error, and when.
#[derive(Debug)]
pub struct Snapshot {
    pub catalog: Catalog,
    /// 1 for the first catalog loaded, then one more for each successful reload.
    pub generation: u64,
    pub loaded_at: DateTime<Utc>,
    pub warnings: Vec<Diagnostic>,
}

/// The actor of catalog reloads in the audit log.
pub const RELOAD_ACTOR: &str = "berth-serve";

/// A served catalog, as the audit log describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Served {
    pub generation: u64,
    pub entries: usize,
}

/// A reload that replaced the served catalog with one of different content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogChange {
    pub before: Served,
    pub after: Served,
}

/// The outcome of the latest attempt to load the catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// Why the files could not be read, when they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Errors and warnings of the catalog read.
    pub diagnostics: Vec<Diagnostic>,
}

/// `/api/v1/status`'s catalog part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogStatus {
    pub path: String,
    pub format: &'static str,
    /// The catalog being served, if any has loaded yet.
    pub serving: Option<ServingStatus>,
    pub last_attempt: Option<Attempt>,
    pub reloads: ReloadCounts,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServingStatus {
    pub generation: u64,
    pub loaded_at: DateTime<Utc>,
    pub entries: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ReloadCounts {
    pub success: u64,
    pub failure: u64,
}

#[derive(Debug, Default)]
struct Inner {
    serving: Option<Arc<Snapshot>>,
    last_attempt: Option<Attempt>,
    reloads: ReloadCounts,
}

/// The served catalog and its load history, shared by the handlers and the poller.
#[derive(Debug)]
pub struct CatalogState {
    source: CatalogSource,
    inner: RwLock<Inner>,
}

/// What one attempt to load produced.
#[derive(Debug)]
pub enum LoadResult {
    Loaded {
        catalog: Catalog,
        warnings: Vec<Diagnostic>,
    },
    Invalid {
        diagnostics: Vec<Diagnostic>,
    },
    Unreadable {
        error: String,
    },
}

pub fn format_name(format: Format) -> &'static str {
    match format {
        Format::Berth => "berth",
        Format::Toolforge => "toolforge",
    }
}

impl CatalogState {
    pub fn new(source: CatalogSource) -> CatalogState {
        CatalogState {
            source,
            inner: RwLock::new(Inner::default()),
        }
    }

    /// A state already serving `catalog` (for tests and embedding).
    pub fn with_catalog(
        source: CatalogSource,
        catalog: Catalog,
        at: DateTime<Utc>,
    ) -> CatalogState {
        let state = CatalogState::new(source);
        state.record(
            LoadResult::Loaded {
                catalog,
                warnings: Vec::new(),
            },
            at,
        );
        state
    }

    pub fn source(&self) -> &CatalogSource {
        &self.source
    }

    /// The catalog being served, if one has loaded.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner.serving.clone()
    }

    pub fn status(&self) -> CatalogStatus {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        CatalogStatus {
            path: self.source.path.display().to_string(),
            format: format_name(self.source.format),
            serving: inner.serving.as_ref().map(|snapshot| ServingStatus {
                generation: snapshot.generation,
                loaded_at: snapshot.loaded_at,
                entries: snapshot.catalog.len(),
            }),
            last_attempt: inner.last_attempt.clone(),
            reloads: inner.reloads,
        }
    }

    /// Records an attempt: a loaded catalog replaces the served one; anything else leaves it.
    /// Returns the change when a catalog of different entries replaced a served one (not for
    /// the first load, nor for a reload of the same content).
    pub fn record(&self, result: LoadResult, at: DateTime<Utc>) -> Option<CatalogChange> {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let mut change = None;
        let attempt = match result {
            LoadResult::Loaded { catalog, warnings } => {
                let generation = inner.serving.as_ref().map_or(1, |old| old.generation + 1);
                if let Some(old) = &inner.serving
                    && old.catalog.entries() != catalog.entries()
                {
                    change = Some(CatalogChange {
                        before: Served {
                            generation: old.generation,
                            entries: old.catalog.len(),
                        },
                        after: Served {
                            generation,
                            entries: catalog.len(),
                        },
                    });
                }
                tracing::info!(
                    path = %self.source.path.display(),
                    generation,
                    entries = catalog.len(),
                    warnings = warnings.len(),
                    "catalog loaded"
                );
                for warning in &warnings {
                    log_diagnostic(warning);
                }
                inner.reloads.success += 1;
                let attempt = Attempt {
                    at,
                    ok: true,
                    error: None,
                    diagnostics: warnings.clone(),
                };
                inner.serving = Some(Arc::new(Snapshot {
                    catalog,
                    generation,
                    loaded_at: at,
                    warnings,
                }));
                attempt
            }
            LoadResult::Invalid { diagnostics } => {
                let errors = diagnostics.iter().filter(|d| d.is_error()).count();
                for diagnostic in &diagnostics {
                    log_diagnostic(diagnostic);
                }
                inner.reloads.failure += 1;
                tracing::error!(
                    path = %self.source.path.display(),
                    errors,
                    serving_generation = inner.serving.as_ref().map(|s| s.generation),
                    "catalog rejected; the last good catalog is still served"
                );
                Attempt {
                    at,
                    ok: false,
                    error: None,
                    diagnostics,
                }
            }
            LoadResult::Unreadable { error } => {
                inner.reloads.failure += 1;
                tracing::error!(
                    path = %self.source.path.display(),
                    error = %error,
                    serving_generation = inner.serving.as_ref().map(|s| s.generation),
                    "catalog unreadable; the last good catalog is still served"
                );
                Attempt {
                    at,
                    ok: false,
                    error: Some(error),
                    diagnostics: Vec::new(),
                }
            }
        };
        inner.last_attempt = Some(attempt);
        change
    }

    /// Reads and checks the catalog's files and records the outcome (see [`CatalogState::record`]
    /// for what is returned). Blocking: file I/O and a CPU-bound parse; call from a blocking
    /// thread.
    pub fn reload(&self, now: DateTime<Utc>) -> Option<CatalogChange> {
        let result = match catalog_source::load(&self.source, now) {
            Err(error) => LoadResult::Unreadable {
                error: error_chain(&error),
            },
            Ok(loaded) => match loaded.catalog {
                Some(catalog) => LoadResult::Loaded {
                    catalog,
                    warnings: loaded.diagnostics,
                },
                None => LoadResult::Invalid {
                    diagnostics: loaded.diagnostics,
                },
            },
        };
        self.record(result, now)
    }
}

fn log_diagnostic(diagnostic: &Diagnostic) {
    let (file, line, column) = (diagnostic.file.as_str(), diagnostic.line, diagnostic.column);
    let (field, message) = (diagnostic.field.as_str(), diagnostic.message.as_str());
    if diagnostic.is_error() {
        tracing::error!(file, line, column, field, message, "catalog error");
    } else {
        tracing::warn!(file, line, column, field, message, "catalog warning");
    }
}

/// `error: cause: cause`, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reloads the catalog (on a blocking thread) and, when that changed what is served and there is
/// a store, appends the change to the audit log. A store that cannot be written is logged; the
/// new catalog is served all the same.
pub async fn reload_and_audit(
    state: &Arc<CatalogState>,
    now: DateTime<Utc>,
    audit: Option<&berth_store::Store>,
) -> Option<CatalogChange> {
    let reload_state = Arc::clone(state);
    let change = match tokio::task::spawn_blocking(move || reload_state.reload(now)).await {
        Ok(change) => change?,
        Err(error) => {
            tracing::error!(error = %error, "catalog reload task failed");
            return None;
        }
    };
    if let Some(store) = audit {
        let entry = berth_store::AuditEntry {
            at: now,
            actor: RELOAD_ACTOR.to_string(),
            action: "catalog.reload".to_string(),
            subject: state.source().path.display().to_string(),
            before: serde_json::to_value(change.before).ok(),
            after: serde_json::to_value(change.after).ok(),
        };
        if let Err(error) = store.append_audit(&entry).await {
            tracing::error!(error = %error_chain(&error), "cannot append the catalog reload to the audit log");
        }
    }
    Some(change)
}

/// Loads the catalog now, then every `interval` reloads it if its files changed, until
/// `shutdown` turns true. With `audit`, reloads that change the catalog go to its audit log.
pub async fn watch(
    state: Arc<CatalogState>,
    interval: Duration,
    clock: Clock,
    audit: Option<berth_store::Store>,
    mut shutdown: watch::Receiver<bool>,
) {
    let path = state.source().path.clone();
    let mut last: Option<Fingerprint> = None;
    loop {
        let print_path = path.clone();
        let print =
            tokio::task::spawn_blocking(move || catalog_source::fingerprint(&print_path)).await;
        match print {
            Ok(print) if last.as_ref() != Some(&print) => {
                last = Some(print);
                reload_and_audit(&state, clock(), audit.as_ref()).await;
            }
            Ok(_) => {}
            Err(error) => tracing::error!(error = %error, "catalog fingerprint task failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = crate::until_stopped(&mut shutdown) => break,
        }
    }
    tracing::debug!("catalog poller stopped");
}
