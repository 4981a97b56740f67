//! Singleton tasks under leases: the scheduled sync and the promotion scheduler (and the
//! rebuild and retention runs to come) run on the replica that holds their lease in the store
//! (`berth_store::leases`). The holder renews it every third of its time to live while it works
//! or waits; a run whose lease cannot be renewed is stopped at its next repository boundary,
//! and its writes are fenced by the store meanwhile. What this replica last saw of each lease
//! is kept in a [`LeaseBook`] for `/api/v1/status` and `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use berth_store::{Fence, Store};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The scheduled sync's lease (and task name in `task_runs`).
pub const SYNC_LEASE: &str = "sync";
/// The promotion scheduler's lease.
pub const PROMOTION_LEASE: &str = "promotion";

/// How this replica takes part in leases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    /// Who this replica is in the `leases` table: the pod's name (`$HOSTNAME`) or the host's,
    /// the process id and a random suffix, so two processes never share a holder.
    pub holder: String,
    /// How long a lease lasts unless renewed: a crashed holder's tasks move to another replica
    /// after at most this long.
    pub ttl: Duration,
}

impl LeaseSettings {
    pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
    /// The shortest time to live accepted: renewals every third of it cost one write each.
    pub const TTL_MIN: Duration = Duration::from_millis(300);

    /// A holder name for this process: `name/pid/random`.
    pub fn holder_for(name: &str) -> String {
        format!("{name}/{}/{:08x}", std::process::id(), fastrand::u32(..))
    }

    /// How often a holder renews (and a waiting replica retries).
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }
}

/// What this replica last saw of one lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseView {
    pub name: String,
    /// Who held it when last looked at (this replica or another); `None` before the first look.
    pub holder: Option<String>,
    /// Whether this replica holds it.
    pub held_here: bool,
    pub epoch: Option<i64>,
    /// Until when this replica's claim lasts (only when held here).
    pub expires_at: Option<DateTime<Utc>>,
    pub checked_at: DateTime<Utc>,
}

/// Every lease this replica takes part in, as last seen.
#[derive(Debug, Default)]
pub struct LeaseBook {
    leases: Mutex<BTreeMap<String, LeaseView>>,
}

impl LeaseBook {
    pub fn views(&self) -> Vec<LeaseView> {
        let leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        leases.values().cloned().collect()
    }

    fn set(&self, view: LeaseView) {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        leases.insert(view.name.clone(), view);
    }

    /// The `/metrics` text: per lease, whether this replica holds it, and its expiry.
    pub fn metrics(&self) -> String {
        let views = self.views();
        let mut text = String::new();
        if views.is_empty() {
            return text;
        }
        let _ = writeln!(
            text,
            "# HELP berth_lease_held Whether this replica holds the lease (1) or another does (0)."
        );
        let _ = writeln!(text, "# TYPE berth_lease_held gauge");
        for view in &views {
            let _ = writeln!(
                text,
                "berth_lease_held{{lease=\"{}\",holder=\"{}\"}} {}",
                view.name,
                view.holder.as_deref().unwrap_or(""),
                u8::from(view.held_here)
            );
        }
        let _ = writeln!(
            text,
            "# HELP berth_lease_expires_timestamp_seconds When this replica's hold on the lease ends unless renewed."
        );
        let _ = writeln!(text, "# TYPE berth_lease_expires_timestamp_seconds gauge");
        for view in &views {
            if let Some(expires) = view.expires_at {
                let _ = writeln!(
                    text,
                    "berth_lease_expires_timestamp_seconds{{lease=\"{}\",holder=\"{}\"}} {}",
                    view.name,
                    view.holder.as_deref().unwrap_or(""),
                    expires.timestamp_millis() as f64 / 1000.0
                );
            }
        }
        text
    }
}

/// One replica's side of one lease: claims, renews, releases, and tells the book.
pub struct LeaseHolder {
    pub name: &'static str,
    pub store: Store,
    pub settings: LeaseSettings,
    pub book: Arc<LeaseBook>,
}

impl LeaseHolder {
    /// Claims (or renews) the lease; `Some` while this replica holds it. A store error counts
    /// as not holding it: a task never runs on a lease it could not confirm.
    pub async fn claim(&self) -> Option<Fence> {
        let claimed = self
            .store
            .claim_lease(self.name, &self.settings.holder, self.settings.ttl)
            .await;
        let now = Utc::now();
        match claimed {
            Ok(Some(fence)) => {
                self.held(&fence);
                Some(fence)
            }
            Ok(None) => {
                let other =
                    self.store.leases().await.ok().and_then(|leases| {
                        leases.into_iter().find(|lease| lease.name == self.name)
                    });
                self.book.set(LeaseView {
                    name: self.name.to_string(),
                    holder: other.as_ref().map(|lease| lease.holder.clone()),
                    held_here: false,
                    epoch: other.as_ref().map(|lease| lease.epoch),
                    expires_at: None,
                    checked_at: now,
                });
                None
            }
            Err(error) => {
                tracing::warn!(lease = self.name, error = %error, "lease not claimed");
                self.book.set(LeaseView {
                    name: self.name.to_string(),
                    holder: None,
                    held_here: false,
                    epoch: None,
                    expires_at: None,
                    checked_at: now,
                });
                None
            }
        }
    }

    /// Tells the book this replica holds the lease until one time to live from now.
    fn held(&self, fence: &Fence) {
        let now = Utc::now();
        self.book.set(LeaseView {
            name: self.name.to_string(),
            holder: Some(fence.holder.clone()),
            held_here: true,
            epoch: Some(fence.epoch),
            expires_at: Some(
                now + chrono::Duration::from_std(self.settings.ttl)
                    .unwrap_or(chrono::Duration::MAX),
            ),
            checked_at: now,
        });
    }

    /// Renews while `work` runs; when a renewal fails, `lost` is called once (the work should
    /// stop at its next safe point; its writes are refused by the store meanwhile).
    pub async fn renewing<T>(
        &self,
        fence: &Fence,
        work: impl std::future::Future<Output = T>,
        lost: impl Fn(),
    ) -> T {
        tokio::pin!(work);
        let mut held = true;
        loop {
            tokio::select! {
                output = &mut work => return output,
                () = tokio::time::sleep(self.settings.renew_every()), if held => {
                    match self.store.renew_lease(fence, self.settings.ttl).await {
                        Ok(true) => self.held(fence),
                        Ok(false) | Err(_) => {
                            tracing::warn!(lease = self.name, epoch = fence.epoch, "lease lost; stopping the task at its next boundary");
                            held = false;
                            lost();
                        }
                    }
                }
            }
        }
    }

    /// Gives the lease up (at shutdown) so another replica takes over at once.
    pub async fn release(&self, fence: &Fence) {
        if let Err(error) = self.store.release_lease(fence).await {
            tracing::warn!(lease = self.name, error = %error, "lease not released; it expires");
        }
        self.book.set(LeaseView {
            name: self.name.to_string(),
            holder: None,
            held_here: false,
            epoch: Some(fence.epoch),
            expires_at: None,
            checked_at: Utc::now(),
        });
    }
}
