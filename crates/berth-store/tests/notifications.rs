//! The notifications outbox on both backends: an event is recorded once by key with a
//! delivery per target, together with its cursor; attempts move a delivery to delivered or
//! failed and never twice; a former lease holder records nothing; denials gather per image and
//! window and are consumed with the event they became.

#[macro_use]
mod common;

use std::time::Duration;

use berth_core::notify::{self, Event};
use berth_store::notifications::{Delivery, DeliveryResult, Denial, Found};
use berth_store::{RepoSnapshot, RepositoryName, Store, StoreError};
use common::at;
use serde_json::json;

on_both_backends! {
    memory: [
        an_event_is_recorded_once_with_its_cursor,
        attempts_finish_a_delivery_once,
        a_former_holder_records_nothing,
        denials_gather_per_image_and_window,
        failing_counts_from_the_first_failure_after_a_success,
    ],
    file: [],
}

async fn open(url: &str) -> Store {
    Store::open(url)
        .await
        .unwrap_or_else(|error| panic!("open {url}: {error:?}"))
}

fn event(key: &str, seconds: i64) -> Event {
    Event {
        key: key.to_string(),
        kind: "rollback",
        at: at(seconds),
        subject: "python3.11:stable".to_string(),
        summary: format!("summary of {key}"),
        data: json!({"n": seconds}),
    }
}

fn targets(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

async fn an_event_is_recorded_once_with_its_cursor(url: String) {
    let store = open(&url).await;
    assert_eq!(store.notification_cursor("audit").await.unwrap(), None);
    let first = event("audit:1", 10);
    let found = Found {
        events: vec![(&first, targets(&["chat", "hook"]))],
        cursor: Some(("audit", 1)),
        ..Found::default()
    };
    assert_eq!(store.record_notifications(&found, at(20)).await.unwrap(), 1);
    // Found again (a restart that re-read the log): nothing new, the cursor moves on.
    let second = event("audit:2", 11);
    let again = Found {
        events: vec![
            (&first, targets(&["chat", "hook"])),
            (&second, targets(&["hook"])),
        ],
        cursor: Some(("audit", 2)),
        ..Found::default()
    };
    assert_eq!(store.record_notifications(&again, at(21)).await.unwrap(), 1);
    assert_eq!(store.notification_cursor("audit").await.unwrap(), Some(2));
    let due = store.due_notifications(at(30), 100).await.unwrap();
    let seen: Vec<(&str, &str)> = due
        .iter()
        .map(|delivery| (delivery.event.key.as_str(), delivery.target.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("audit:1", "chat"),
            ("audit:1", "hook"),
            ("audit:2", "hook")
        ]
    );
    assert_eq!(due[0].event.data, json!({"n": 10}));
    assert_eq!(due[0].event.at, at(10));
    assert_eq!(due[0].state, "pending");
    // Not due before it was recorded.
    assert!(
        store
            .due_notifications(at(19), 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn attempts_finish_a_delivery_once(url: String) {
    let store = open(&url).await;
    let one = event("audit:1", 10);
    let found = Found {
        events: vec![(&one, targets(&["hook", "chat"]))],
        ..Found::default()
    };
    store.record_notifications(&found, at(10)).await.unwrap();
    let id = store.due_notifications(at(10), 10).await.unwrap()[0]
        .event
        .id;
    let retry = DeliveryResult::Retry {
        error: "answered 503".to_string(),
        next: at(100),
    };
    assert!(
        store
            .record_notification_attempt(id, "hook", &retry, at(11))
            .await
            .unwrap()
    );
    let due: Vec<String> = store
        .due_notifications(at(50), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|delivery| delivery.target)
        .collect();
    assert_eq!(due, ["chat"], "the retried one waits for its time");
    assert!(
        store
            .record_notification_attempt(id, "hook", &DeliveryResult::Delivered, at(101))
            .await
            .unwrap()
    );
    // A second finish of the same delivery changes nothing.
    assert!(
        !store
            .record_notification_attempt(id, "hook", &DeliveryResult::Delivered, at(102))
            .await
            .unwrap()
    );
    let failed = DeliveryResult::Failed {
        error: "answered 404".to_string(),
    };
    assert!(
        store
            .record_notification_attempt(id, "chat", &failed, at(103))
            .await
            .unwrap()
    );
    assert!(
        store
            .due_notifications(at(1000), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let listed: Vec<Delivery> = store.notifications(10).await.unwrap();
    let hook = listed
        .iter()
        .find(|delivery| delivery.target == "hook")
        .unwrap();
    assert_eq!((hook.state.as_str(), hook.attempts), ("delivered", 2));
    assert_eq!(hook.delivered_at, Some(at(101)));
    let chat = listed
        .iter()
        .find(|delivery| delivery.target == "chat")
        .unwrap();
    assert_eq!(chat.state, "failed");
    assert_eq!(chat.last_error.as_deref(), Some("answered 404"));
}

async fn a_former_holder_records_nothing(url: String) {
    let store = open(&url).await;
    let old = store
        .claim_lease("notifications", "replica-a", Duration::from_millis(50))
        .await
        .unwrap()
        .unwrap();
    let old_store = store.fenced(old);
    tokio::time::sleep(Duration::from_millis(120)).await;
    store
        .claim_lease("notifications", "replica-b", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let one = event("audit:1", 10);
    let found = Found {
        events: vec![(&one, targets(&["hook"]))],
        cursor: Some(("audit", 1)),
        ..Found::default()
    };
    let refused = old_store.record_notifications(&found, at(10)).await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "{refused:?}"
    );
    assert_eq!(store.notification_cursor("audit").await.unwrap(), None);
    assert!(store.notifications(10).await.unwrap().is_empty());
}

async fn denials_gather_per_image_and_window(url: String) {
    let store = open(&url).await;
    let denial = |image: &str, window: i64, namespace: &str| Denial {
        image: image.to_string(),
        window_start: at(window),
        namespace: namespace.to_string(),
        message: format!("{image} is not pinned"),
    };
    store
        .record_denials(&[
            denial("app:1", 0, "shop"),
            denial("app:1", 0, "shop"),
            denial("app:1", 0, "blog"),
            denial("app:1", 600, "shop"),
            denial("other:2", 0, "shop"),
        ])
        .await
        .unwrap();
    let closed = store.closed_denials(at(600)).await.unwrap();
    assert_eq!(closed.len(), 2, "{closed:?}");
    assert_eq!(closed[0].image, "app:1");
    assert_eq!(closed[0].count, 3);
    assert_eq!(closed[0].namespaces, ["blog", "shop"]);
    assert_eq!(closed[0].message, "app:1 is not pinned");
    let message = notify::admission_denied(&closed[0], at(700));
    let found = Found {
        events: vec![(&message, targets(&["hook"]))],
        consumed_denials: vec![("app:1".to_string(), at(0))],
        ..Found::default()
    };
    store.record_notifications(&found, at(700)).await.unwrap();
    let left = store.closed_denials(at(1200)).await.unwrap();
    let left: Vec<(&str, u64)> = left
        .iter()
        .map(|denials| (denials.image.as_str(), denials.count))
        .collect();
    assert_eq!(left, [("other:2", 1), ("app:1", 1)]);
}

async fn failing_counts_from_the_first_failure_after_a_success(url: String) {
    let store = open(&url).await;
    let app = RepositoryName::parse("registry.example/team/app").unwrap();
    let failing = |store: &Store| {
        let store = store.clone();
        async move {
            store
                .failing_repositories()
                .await
                .unwrap()
                .into_iter()
                .map(|status| status.failing_since)
                .collect::<Vec<_>>()
        }
    };
    store
        .record_repository_failure(&app, "refused", at(10))
        .await
        .unwrap();
    store
        .record_repository_failure(&app, "refused", at(20))
        .await
        .unwrap();
    assert_eq!(failing(&store).await, [Some(at(10))]);
    store
        .record_repository_sync(&app, &RepoSnapshot::default(), at(30))
        .await
        .unwrap();
    assert!(failing(&store).await.is_empty());
    store
        .record_repository_failure(&app, "timed out", at(40))
        .await
        .unwrap();
    assert_eq!(failing(&store).await, [Some(at(40))]);
}
