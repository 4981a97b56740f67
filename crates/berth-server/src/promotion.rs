//! The promotion scheduler inside `berth serve`: every tick, `berth_channels::scheduler::tick`
//! over the catalog being served and the configured rules, with the server's clock; what it did
//! is logged (and recorded by berth-channels in the channel history and audit log). Only the
//! replica holding the promotion lease ticks.

use std::sync::Arc;

use berth_oci::Client;
use berth_store::Store;
use tokio::sync::watch;

use crate::Clock;
use crate::config::PromotionSettings;
use crate::leases::LeaseHolder;
use crate::reload::CatalogState;

/// Runs until `stopped` turns true.
pub async fn schedule(
    store: Store,
    catalog: Arc<CatalogState>,
    settings: PromotionSettings,
    clock: Clock,
    lease: LeaseHolder,
    mut stopped: watch::Receiver<bool>,
) {
    let client = Client::new(settings.client.clone());
    // The first tick waits for the catalog's first load (good or bad), as the sync does.
    while catalog.status().last_attempt.is_none() {
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
            () = crate::until_stopped(&mut stopped) => return,
        }
    }
    let shutdown = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let (client, store, catalog, rules, lease) =
        (&client, &store, &catalog, &settings.rules, &lease);
    berth_channels::scheduler::run(
        || clock(),
        settings.interval,
        shutdown,
        |now| async move {
            // Before the catalog's first good load there is nothing to promote.
            let Some(snapshot) = catalog.snapshot() else {
                return;
            };
            // Only the replica holding the promotion lease ticks; its slot claims are fenced.
            let Some(fence) = lease.claim().await else {
                return;
            };
            let store = &store.fenced(fence);
            match berth_channels::scheduler::tick(client, store, &snapshot.catalog, rules, now)
                .await
            {
                Ok(ran) => {
                    for ran in ran {
                        match &ran.outcome {
                            Ok(outcome) => tracing::info!(
                                image = %ran.subject,
                                from = %ran.from,
                                to = %ran.to,
                                slot = ?ran.slot,
                                missed = ran.missed,
                                action = ?outcome.action,
                                "promotion run"
                            ),
                            Err(error) => tracing::warn!(
                                image = %ran.subject,
                                from = %ran.from,
                                to = %ran.to,
                                error = %error,
                                "promotion failed"
                            ),
                        }
                    }
                }
                Err(error) => tracing::warn!(error = %error, "promotion scheduler tick failed"),
            }
        },
    )
    .await;
}
