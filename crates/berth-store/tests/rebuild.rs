//! Rebuild dispatches on both backends: recorded with an audit entry before sending, keys
//! stable across attempts and fresh for a re-dispatch of the same content, the ledger a pass
//! reads, closings, timeouts counting failures up to a suspension, a success lifting it, and
//! a person resuming a target.

#[macro_use]
mod common;

use berth_core::rebuild::{Closing, DispatchItem, ItemState, NewDispatch};
use berth_core::{Digest, ImageRef};
use berth_store::Store;
use berth_store::rebuild::{Attempt, DispatchState};
use common::at;

on_both_backends! {
    memory: [
        a_dispatch_is_recorded_and_audited_before_it_is_sent,
        failures_suspend_a_target_and_a_closed_rebuild_or_a_person_lifts_it,
    ],
    file: [],
}

fn digest(n: u8) -> Digest {
    Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
}

fn dispatch(target: &str, images: &[(&str, u8)]) -> NewDispatch {
    NewDispatch {
        target: target.to_string(),
        wave: 1,
        items: images
            .iter()
            .map(|(reference, n)| DispatchItem {
                reference: ImageRef::parse(reference).unwrap(),
                platform: "linux/amd64".into(),
                digest: digest(*n),
                reasons: vec!["base-moved"],
                old_base: Some(digest(200)),
                stale_since: at(1),
            })
            .collect(),
    }
}

async fn a_dispatch_is_recorded_and_audited_before_it_is_sent(url: String) {
    let store = Store::open(&url).await.unwrap();
    let new = dispatch("ci", &[("r.test/a:latest", 1), ("r.test/b:latest", 2)]);
    let record = store
        .record_dispatch(&new, "{\"images\":[]}", "berth", at(10))
        .await
        .unwrap();
    assert!(
        record.key.starts_with("rb-") && record.key.ends_with("-1"),
        "{}",
        record.key
    );
    assert_eq!(record.state, DispatchState::Pending);
    let audit = store.audit_log(Some("rebuild:ci"), 10).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry.action, "rebuild.dispatch");
    assert_eq!(
        audit[0].entry.after.as_ref().unwrap()["key"],
        record.key.as_str()
    );

    // Pending and due: what a restarted sender finds.
    let due = store.due_dispatches(at(10)).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].key, record.key);
    assert_eq!(due[0].items.len(), 2);
    // A retry waits for its time.
    store
        .record_attempt(
            record.id,
            &Attempt::Retry {
                error: "answered 503".into(),
                next: at(20),
            },
            3,
            at(11),
        )
        .await
        .unwrap();
    assert!(store.due_dispatches(at(15)).await.unwrap().is_empty());
    let due = store.due_dispatches(at(20)).await.unwrap();
    assert_eq!(
        (due[0].attempts, due[0].key.as_str()),
        (1, record.key.as_str())
    );
    store
        .record_attempt(record.id, &Attempt::Delivered, 3, at(21))
        .await
        .unwrap();
    assert!(store.due_dispatches(at(30)).await.unwrap().is_empty());

    let ledger = store.rebuild_ledger(at(21)).await.unwrap();
    assert_eq!(ledger.open.len(), 1);
    assert_eq!(ledger.open[0].sent_at, Some(at(21)));
    assert_eq!(ledger.open[0].items.len(), 2);
    assert!(
        ledger.open[0]
            .items
            .iter()
            .all(|(_, state)| *state == ItemState::InFlight)
    );
    assert_eq!(ledger.last_hour.len(), 1);

    // One image lands, then the other: the dispatch closes.
    let closing = |reference: &str, state, n| Closing {
        dispatch: record.id,
        reference: ImageRef::parse(reference).unwrap(),
        platform: "linux/amd64".into(),
        state,
        new_digest: Some(digest(n)),
        time_to_fresh: None,
    };
    store
        .record_rebuild_outcomes(
            &[closing("r.test/a:latest", ItemState::Closed, 11)],
            &[],
            &[],
            3,
            at(22),
        )
        .await
        .unwrap();
    store
        .record_rebuild_outcomes(
            &[closing("r.test/b:latest", ItemState::Closed, 12)],
            &[record.id],
            &[],
            3,
            at(23),
        )
        .await
        .unwrap();
    assert!(store.rebuild_ledger(at(23)).await.unwrap().open.is_empty());
    let all = store.rebuild_dispatches(None, 10).await.unwrap();
    assert_eq!(all[0].state, DispatchState::Closed);
    assert_eq!(all[0].items[1].new_digest, Some(digest(12)));

    // The same content dispatched again (after a timeout, say) gets a fresh key.
    let again = store
        .record_dispatch(&new, "{}", "berth", at(30))
        .await
        .unwrap();
    assert!(again.key.ends_with("-2") && again.key[..27] == record.key[..27]);
}

async fn failures_suspend_a_target_and_a_closed_rebuild_or_a_person_lifts_it(url: String) {
    let store = Store::open(&url).await.unwrap();
    let mut ids = Vec::new();
    for n in 0..3u8 {
        let record = store
            .record_dispatch(
                &dispatch("gh", &[("r.test/a:latest", n)]),
                "{}",
                "berth",
                at(1),
            )
            .await
            .unwrap();
        ids.push(record.id);
    }
    let rejected = Attempt::Failed {
        error: "answered 401".into(),
    };
    assert!(
        !store
            .record_attempt(ids[0], &rejected, 3, at(2))
            .await
            .unwrap()
    );
    let failed = &store.rebuild_dispatches(None, 10).await.unwrap()[2];
    assert_eq!((failed.id, failed.state), (ids[0], DispatchState::Failed));
    assert_eq!(failed.items[0].state, ItemState::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("answered 401"));
    store
        .record_attempt(ids[1], &Attempt::Delivered, 3, at(2))
        .await
        .unwrap();
    let suspended = store
        .record_rebuild_outcomes(&[], &[], &[ids[1]], 3, at(3))
        .await
        .unwrap();
    assert!(suspended.is_empty(), "two failures");
    assert!(
        store
            .record_attempt(ids[2], &rejected, 3, at(4))
            .await
            .unwrap(),
        "the third suspends"
    );
    let ledger = store.rebuild_ledger(at(4)).await.unwrap();
    assert!(ledger.suspended.contains("gh"));
    let targets = store.rebuild_targets().await.unwrap();
    assert_eq!(targets[0].failures, 3);
    assert!(
        targets[0]
            .suspended_reason
            .as_deref()
            .unwrap()
            .contains("answered 401")
    );
    let audit = store.audit_log(Some("rebuild:gh"), 10).await.unwrap();
    assert_eq!(audit[0].entry.action, "rebuild.suspend");

    assert!(
        store
            .resume_rebuild_target("gh", "alice", at(5))
            .await
            .unwrap()
    );
    assert!(
        !store
            .resume_rebuild_target("gh", "alice", at(5))
            .await
            .unwrap()
    );
    assert!(
        store
            .rebuild_ledger(at(5))
            .await
            .unwrap()
            .suspended
            .is_empty()
    );
    assert_eq!(
        store.audit_log(Some("rebuild:gh"), 1).await.unwrap()[0]
            .entry
            .actor,
        "alice"
    );
}
