//! The dashboard's sign-in sessions (`ui_sessions`), in the store so that every `berth serve`
//! replica sharing it knows them: a browser signed in through one replica is signed in on all.
//!
//! The store is given a session's id and keeps only its SHA-256, so a dump of the store holds
//! no working cookie; what the session may do is the server's to decide (it checks the token
//! recorded here against the tokens it is configured with on every request).

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};

use crate::error::db;
use crate::store::stored_time;
use crate::{Store, StoreError};

/// One sign-in: which API token it was made with, and how long it lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    /// The token's name: who the dashboard says is signed in, the actor of its forms.
    pub token_name: String,
    /// The SHA-256 the config lists for the token: a token whose secret was replaced under
    /// the same name no longer carries the session.
    pub token_sha256: String,
    /// The token's scope at sign-in, as the config spells it (`read`, `admin`, ...).
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

type SessionRow = (String, String, String, DateTime<Utc>, DateTime<Utc>);

/// The SHA-256 of a session id in lowercase hex: the key the store keeps.
fn id_sha256(id: &str) -> String {
    Sha256::digest(id.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl Store {
    /// Records a new sign-in under `id` (the cookie's value, kept only as its hash), and
    /// removes the sessions that expired by its `created_at`.
    pub async fn create_ui_session(&self, id: &str, session: &UiSession) -> Result<(), StoreError> {
        let created_at = stored_time(session.created_at);
        on_pool!(self, |pool, Db| {
            sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1")
                .bind(created_at)
                .execute(pool)
                .await
                .map_err(db("remove expired dashboard sessions"))?;
            sqlx::query(
                "INSERT INTO ui_sessions
                     (id_sha256, token_name, token_sha256, scope, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id_sha256(id))
            .bind(&session.token_name)
            .bind(&session.token_sha256)
            .bind(&session.scope)
            .bind(created_at)
            .bind(stored_time(session.expires_at))
            .execute(pool)
            .await
            .map_err(db("record a dashboard session"))?;
        });
        Ok(())
    }

    /// The session a cookie's `id` names, unless it has expired by `now`.
    pub async fn ui_session(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UiSession>, StoreError> {
        let row: Option<SessionRow> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT token_name, token_sha256, scope, created_at, expires_at
                 FROM ui_sessions WHERE id_sha256 = $1 AND expires_at > $2",
            )
            .bind(id_sha256(id))
            .bind(stored_time(now))
            .fetch_optional(pool)
            .await
            .map_err(db("read a dashboard session"))?
        });
        Ok(row.map(
            |(token_name, token_sha256, scope, created_at, expires_at)| UiSession {
                token_name,
                token_sha256,
                scope,
                created_at,
                expires_at,
            },
        ))
    }

    /// Ends the session `id` names (sign-out, or a token no longer configured); whether there
    /// was one.
    pub async fn end_ui_session(&self, id: &str) -> Result<bool, StoreError> {
        let ended = on_pool!(self, |pool, Db| {
            sqlx::query("DELETE FROM ui_sessions WHERE id_sha256 = $1")
                .bind(id_sha256(id))
                .execute(pool)
                .await
                .map_err(db("end a dashboard session"))?
                .rows_affected()
        });
        Ok(ended > 0)
    }
}
