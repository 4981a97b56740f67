//! Accepting and serving connections, plain or TLS (`tokio-rustls`), with hyper's HTTP/1.1, and
//! the limits that keep slow or idle clients from starving everyone else: a TLS handshake must
//! finish within `handshake_timeout`, a request's headers must arrive within
//! `header_read_timeout`, and at most `max_connections` are open at once (past that, new
//! connections wait in the kernel's accept queue until one closes). A shutdown stops accepting
//! and lets requests in flight finish.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// The limits on connections (the config file's `connections` section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a TLS handshake may take (a client that opens a connection and sends nothing).
    pub handshake_timeout: Duration,
    /// How long a request's headers may take to arrive (a client sending a byte a second).
    pub header_read_timeout: Duration,
    /// Connections open at once; keep it below the process's file descriptor limit.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 512,
        }
    }
}

/// Serves `router` on `listener` (over TLS with `tls`) until `stop` says so, then waits for the
/// connections in flight.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // A free slot first: at the bound, nothing more is accepted until a connection ends.
        let slot = tokio::select! {
            () = crate::until_stopped(&mut stop) => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            () = crate::until_stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!(error = %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Answers are small and written at once: Nagle's algorithm would only hold back the
        // last segment of one until the client's delayed ACK (tens of ms at p99).
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(peer = %peer, error = %error, "cannot set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let http = {
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(limits.header_read_timeout);
                builder
            };
            let served = match acceptor {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await;
                    let tls = match handshake {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(error)) => {
                            tracing::debug!(peer = %peer, error = %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(peer = %peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    watcher
                        .watch(http.serve_connection(TokioIo::new(tls), service))
                        .await
                }
                None => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(tcp), service))
                        .await
                }
            };
            if let Err(error) = served {
                tracing::debug!(peer = %peer, error = %error, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}
