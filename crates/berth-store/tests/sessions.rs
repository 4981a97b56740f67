//! The dashboard's sessions on both backends: a session reads back until it expires, expired
//! ones are removed at the next sign-in, sign-out ends one, a reopened store still has it, and
//! the row is keyed by the id's SHA-256 (the id itself is nowhere in the store).

#[macro_use]
mod common;

use berth_store::{Store, UiSession};
use common::{at, execute, sha256};

on_both_backends! {
    memory: [a_session_lasts_until_it_expires_or_ends],
    file: [a_session_is_kept_by_its_hash_and_survives_a_reopen],
}

async fn open(url: &str) -> Store {
    Store::open(url)
        .await
        .unwrap_or_else(|error| panic!("open {url}: {error:?}"))
}

/// A session made at `at(created)` for an hour.
fn session(name: &str, created: i64) -> UiSession {
    UiSession {
        token_name: name.to_string(),
        token_sha256: sha256(name.as_bytes()).hex().to_string(),
        scope: "admin".to_string(),
        created_at: at(created),
        expires_at: at(created + 3600),
    }
}

async fn a_session_lasts_until_it_expires_or_ends(url: String) {
    let store = open(&url).await;
    store
        .create_ui_session("id-alice", &session("alice", 0))
        .await
        .unwrap();
    assert_eq!(
        store.ui_session("id-alice", at(10)).await.unwrap(),
        Some(session("alice", 0))
    );
    assert_eq!(store.ui_session("id-unknown", at(10)).await.unwrap(), None);
    // Expired at its `expires_at`, though still in the table until the next sign-in.
    assert_eq!(store.ui_session("id-alice", at(3600)).await.unwrap(), None);
    assert!(
        store
            .ui_session("id-alice", at(3599))
            .await
            .unwrap()
            .is_some()
    );

    // A sign-in after it expired removes it: not even an earlier `now` finds it then.
    store
        .create_ui_session("id-bob", &session("bob", 3600))
        .await
        .unwrap();
    assert_eq!(store.ui_session("id-alice", at(10)).await.unwrap(), None);
    // One that has not expired is kept.
    store
        .create_ui_session("id-carol", &session("carol", 3601))
        .await
        .unwrap();
    assert_eq!(
        store.ui_session("id-bob", at(3700)).await.unwrap(),
        Some(session("bob", 3600))
    );

    // Sign-out ends it, once.
    assert!(store.end_ui_session("id-bob").await.unwrap());
    assert!(!store.end_ui_session("id-bob").await.unwrap());
    assert_eq!(store.ui_session("id-bob", at(3700)).await.unwrap(), None);
    assert_eq!(
        store.ui_session("id-carol", at(3700)).await.unwrap(),
        Some(session("carol", 3601))
    );
}

async fn a_session_is_kept_by_its_hash_and_survives_a_reopen(url: String) {
    let store = open(&url).await;
    store
        .create_ui_session("id-alice", &session("alice", 0))
        .await
        .unwrap();
    store
        .create_ui_session("id-bob", &session("bob", 0))
        .await
        .unwrap();
    store.close().await;

    let store = open(&url).await;
    assert_eq!(
        store.ui_session("id-alice", at(10)).await.unwrap(),
        Some(session("alice", 0))
    );
    // Neither id is in the table; deleting a row by the id's SHA-256 ends that session.
    execute(
        &url,
        "DELETE FROM ui_sessions WHERE id_sha256 IN ('id-alice', 'id-bob')",
    )
    .await;
    assert!(store.ui_session("id-bob", at(10)).await.unwrap().is_some());
    execute(
        &url,
        &format!(
            "DELETE FROM ui_sessions WHERE id_sha256 = '{}'",
            sha256(b"id-bob").hex()
        ),
    )
    .await;
    assert_eq!(store.ui_session("id-bob", at(10)).await.unwrap(), None);
    assert!(
        store
            .ui_session("id-alice", at(10))
            .await
            .unwrap()
            .is_some()
    );
}
