//! Rebuild decisions over the freshness tests' hand-built stores: one dispatch per target for
//! wave 1, in flight until the channel moves, closing on the new base or reporting a rebuild
//! on the old one, timeouts, storms under hourly limits, windows, suspension; and the
//! `rebuild` section's reading with every error at its place.

use super::*;
use crate::freshness::tests::{Bed, CATALOG, at, catalog, digest, moved_base, reference};
use crate::freshness::{self, Settings};

fn settings_for(text: &str) -> Result<RebuildSettings, Vec<String>> {
    crate::catalog::read::section_for(text, read_section)
}

const SETTINGS: &str = "
targets:
  - name: ci
    webhook: {url: 'http://127.0.0.1:9/hook', secret_env: HOOK_SECRET}
repositories:
  - {pattern: 'registry.test/**', target: ci}
";

/// Stale, the dispatchable part planned with targets, and the decision.
fn pass(
    bed: &Bed,
    settings: &RebuildSettings,
    ledger: &Ledger,
    now: DateTime<Utc>,
) -> (Decision, Vec<Held>) {
    let catalog = catalog(CATALOG);
    let report = freshness::stale(&catalog, &bed.facts, &Settings::default(), now);
    let (report, held) = dispatchable(&report, &catalog, settings);
    let plan = freshness::plan(&report, |image| {
        settings.target_of(&catalog, image).map(str::to_string)
    });
    let decision = decide(&plan, &report, &bed.facts, ledger, settings, now);
    (decision, held)
}

fn references(items: &[DispatchItem]) -> Vec<String> {
    items
        .iter()
        .map(|item| item.reference.to_string())
        .collect()
}

/// What the store would hold after `dispatch` was sent at `sent`.
fn open(id: i64, dispatch: &NewDispatch, sent: DateTime<Utc>) -> OpenDispatch {
    OpenDispatch {
        id,
        target: dispatch.target.clone(),
        created_at: sent,
        sent_at: Some(sent),
        items: dispatch
            .items
            .iter()
            .map(|item| (item.clone(), ItemState::InFlight))
            .collect(),
    }
}

#[test]
fn wave_one_goes_out_in_one_dispatch_and_stays_in_flight_until_its_channel_moves() {
    let settings = settings_for(SETTINGS).unwrap();
    let mut bed = moved_base();
    let now = at("2026-02-02");
    let (first, _) = pass(&bed, &settings, &Ledger::default(), now);
    assert_eq!(first.send.len(), 1);
    let dispatch = &first.send[0];
    assert_eq!(dispatch.target, "ci");
    assert_eq!(
        references(&dispatch.items),
        ["registry.test/child:latest"],
        "the grandchild waits for its base"
    );
    assert_eq!(dispatch.items[0].old_base, Some(digest("base-v1")));
    assert_eq!(dispatch.items[0].stale_since, at("2026-02-01"));
    assert_eq!(
        first.held,
        [Held {
            target: Some("ci".into()),
            hold: Hold::WaitingForBase,
            images: vec![reference("registry.test/grandchild:latest")],
        }]
    );

    // A second pass while it is in flight sends nothing.
    let ledger = Ledger {
        open: vec![open(7, dispatch, now)],
        last_hour: vec![("ci".into(), now)],
        ..Ledger::default()
    };
    let later = at("2026-02-02") + chrono::Duration::minutes(30);
    let (second, _) = pass(&bed, &settings, &ledger, later);
    assert!(second.send.is_empty(), "{:?}", second.send);
    assert!(second.closings.is_empty());

    // The child rebuilt on base v2 lands: it closes, and the grandchild goes out.
    bed.image("child-v2", Some("base-v2"));
    bed.moved(
        "registry.test/child:latest",
        "child",
        "child-v2",
        "2026-02-03",
    );
    let landed = at("2026-02-03");
    let (third, _) = pass(&bed, &settings, &ledger, landed);
    assert_eq!(third.closings.len(), 1);
    let closing = &third.closings[0];
    assert_eq!(closing.state, ItemState::Closed);
    assert_eq!(closing.new_digest, Some(digest("child-v2")));
    assert_eq!(
        closing.time_to_fresh,
        Some(Duration::from_secs(2 * 86_400)),
        "from the base's move to the rebuild's landing"
    );
    assert_eq!(third.finished, [7]);
    assert_eq!(
        third
            .send
            .iter()
            .map(|d| references(&d.items))
            .collect::<Vec<_>>(),
        [["registry.test/grandchild:latest"]]
    );
}

#[test]
fn a_rebuild_on_the_old_base_is_reported_and_left_open() {
    let settings = settings_for(SETTINGS).unwrap();
    let mut bed = moved_base();
    let now = at("2026-02-02");
    let (first, _) = pass(&bed, &settings, &Ledger::default(), now);
    let ledger = Ledger {
        open: vec![open(3, &first.send[0], now)],
        ..Ledger::default()
    };
    bed.image("child-again", Some("base-v1"));
    bed.moved(
        "registry.test/child:latest",
        "child",
        "child-again",
        "2026-02-03",
    );
    let landed = now + chrono::Duration::hours(2);
    let (decision, _) = pass(&bed, &settings, &ledger, landed);
    assert_eq!(decision.closings.len(), 1);
    assert_eq!(decision.closings[0].state, ItemState::RebuiltOnOldBase);
    assert_eq!(decision.closings[0].new_digest, Some(digest("child-again")));
    assert!(decision.finished.is_empty());
    assert!(
        decision.send.is_empty(),
        "the target is still in flight: {:?}",
        decision.send
    );

    // Reported once: the next pass with the state recorded says nothing new.
    let mut ledger = ledger;
    ledger.open[0].items[0].1 = ItemState::RebuiltOnOldBase;
    let (again, _) = pass(&bed, &settings, &ledger, landed);
    assert!(again.closings.is_empty());

    // Past the timeout it times out, and the stale child is dispatched again later.
    let late = now + chrono::Duration::hours(7);
    let (timed, _) = pass(&bed, &settings, &ledger, late);
    assert_eq!(timed.timed_out, [3]);
    assert_eq!(timed.send.len(), 1, "a timed-out target is free again");
    assert_eq!(timed.send[0].items[0].digest, digest("child-again"));
}

#[test]
fn a_tag_that_vanished_closes_as_gone() {
    let settings = settings_for(SETTINGS).unwrap();
    let mut bed = moved_base();
    let now = at("2026-02-02");
    let (first, _) = pass(&bed, &settings, &Ledger::default(), now);
    let ledger = Ledger {
        open: vec![open(1, &first.send[0], now)],
        ..Ledger::default()
    };
    bed.facts
        .tags
        .retain(|tag| tag.reference != reference("registry.test/child:latest"));
    let (decision, _) = pass(&bed, &settings, &ledger, now);
    assert_eq!(decision.closings[0].state, ItemState::Gone);
    assert_eq!(decision.finished, [1]);
}

/// `count` children of base v1 in `registry.test/team{i % teams}/svc{i}`, after base moved.
fn storm(count: usize) -> Bed {
    let mut bed = Bed::default();
    bed.image("base-v1", None);
    bed.image("base-v2", None);
    bed.tag("registry.test/base:latest", "base-v1");
    for i in 0..count {
        let name = format!("svc{i}");
        bed.image(&name, Some("base-v1"));
        bed.tag(&format!("registry.test/team{i}/svc{i}:latest"), &name);
    }
    bed.moved(
        "registry.test/base:latest",
        "base-v1",
        "base-v2",
        "2026-02-01",
    );
    bed
}

fn storm_settings(targets: usize, per_hour: u32) -> RebuildSettings {
    let mut settings = RebuildSettings {
        per_hour,
        ..RebuildSettings::default()
    };
    for t in 0..targets {
        settings.targets.push(Target {
            name: format!("t{t}"),
            kind: TargetKind::Webhook {
                url: "http://127.0.0.1:9/".into(),
            },
            secret: SecretSource::Env("S".into()),
        });
    }
    for i in 0..300 {
        settings.repositories.push(RepositoryTarget {
            pattern: RepositoryPattern::parse(&format!("registry.test/team{i}/**")).unwrap(),
            target: format!("t{}", i % targets),
        });
    }
    settings
}

#[test]
fn three_hundred_children_under_five_per_hour_go_out_in_five_dispatches() {
    let bed = storm(300);
    let now = at("2026-02-02");
    // Five targets: five dispatches carry all 300, and the next passes in the hour add none.
    let settings = storm_settings(5, 5);
    let (decision, _) = pass(&bed, &settings, &Ledger::default(), now);
    assert_eq!(decision.send.len(), 5);
    let carried: usize = decision.send.iter().map(|d| d.items.len()).sum();
    assert_eq!(carried, 300);
    let mut ledger = Ledger::default();
    for (id, dispatch) in decision.send.iter().enumerate() {
        ledger.open.push(open(id as i64, dispatch, now));
        ledger.last_hour.push((dispatch.target.clone(), now));
    }
    for minutes in [1, 10, 59] {
        let (again, _) = pass(
            &bed,
            &settings,
            &ledger,
            now + chrono::Duration::minutes(minutes),
        );
        assert!(again.send.is_empty());
    }

    // Three hundred targets: five go out, the rest wait for the hour, oldest need first.
    let settings = storm_settings(300, 5);
    let (decision, _) = pass(&bed, &settings, &Ledger::default(), now);
    assert_eq!(decision.send.len(), 5);
    let waiting: usize = decision
        .held
        .iter()
        .filter(|held| held.hold == Hold::HourlyLimit)
        .map(|held| held.images.len())
        .sum();
    assert_eq!(waiting, 295);
    let ledger = Ledger {
        last_hour: decision
            .send
            .iter()
            .map(|d| (d.target.clone(), now))
            .collect(),
        ..Ledger::default()
    };
    let (within, _) = pass(
        &bed,
        &settings,
        &ledger,
        now + chrono::Duration::minutes(59),
    );
    assert!(within.send.is_empty());
    let (after, _) = pass(
        &bed,
        &settings,
        &ledger,
        now + chrono::Duration::minutes(61),
    );
    assert_eq!(after.send.len(), 5, "the next hour's budget");
}

#[test]
fn windows_suspension_and_the_per_target_limit_hold_a_target() {
    let bed = moved_base();
    let now = at("2026-02-02"); // a Monday, 00:00 UTC
    let windowed = settings_for(&format!(
        "{SETTINGS}time_zone: Europe/Copenhagen\nwindows: [{{days: [mon], from: '09:00', until: '17:00'}}]\n"
    ))
    .unwrap();
    let holds = |settings: &RebuildSettings, ledger: &Ledger, when| {
        let (decision, _) = pass(&bed, settings, ledger, when);
        (
            decision.send.len(),
            decision
                .held
                .iter()
                .map(|held| held.hold)
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        holds(&windowed, &Ledger::default(), now),
        (0, vec![Hold::WaitingForBase, Hold::OutsideWindow])
    );
    assert_eq!(
        holds(
            &windowed,
            &Ledger::default(),
            now + chrono::Duration::hours(9)
        ),
        (1, vec![Hold::WaitingForBase]),
        "10:00 in Copenhagen"
    );
    let plain = settings_for(SETTINGS).unwrap();
    let suspended = Ledger {
        suspended: ["ci".to_string()].into_iter().collect(),
        ..Ledger::default()
    };
    assert_eq!(
        holds(&plain, &suspended, now),
        (0, vec![Hold::WaitingForBase, Hold::Suspended])
    );
    let twice = Ledger {
        last_hour: vec![("ci".into(), now), ("ci".into(), now)],
        ..Ledger::default()
    };
    assert_eq!(
        holds(&plain, &twice, now),
        (0, vec![Hold::WaitingForBase, Hold::TargetLimit])
    );
}

#[test]
fn images_without_a_target_or_a_dispatching_reason_are_held_and_do_not_block_children() {
    // No pattern for registry.test/child: the child has no target; the grandchild does, and
    // does not wait for a base nobody will rebuild.
    let settings = settings_for(
        "targets:\n  - name: ci\n    webhook: {url: 'http://h/x', secret_env: S}\nrepositories:\n  - {pattern: 'registry.test/grandchild', target: ci}\n",
    )
    .unwrap();
    let bed = moved_base();
    let (decision, held) = pass(&bed, &settings, &Ledger::default(), at("2026-02-02"));
    assert_eq!(
        held,
        [Held {
            target: None,
            hold: Hold::NoTarget,
            images: vec![reference("registry.test/child:latest")],
        }]
    );
    assert_eq!(
        references(&decision.send[0].items),
        ["registry.test/grandchild:latest"]
    );
    // Only os-eol and base-retired dispatch: base-moved images are held as not dispatched.
    let only_eol = settings_for(&format!("{SETTINGS}reasons: [os-eol]\n")).unwrap();
    let (decision, held) = pass(&bed, &only_eol, &Ledger::default(), at("2026-02-02"));
    assert!(decision.send.is_empty());
    assert_eq!(held[0].hold, Hold::NotDispatched);
    assert_eq!(held[0].images.len(), 2);
}

#[test]
fn the_section_reads_every_target_kind_and_reports_each_mistake_at_its_place() {
    let settings = settings_for(
        "
targets:
  - name: images
    github: {repository: org/images, token_env: GITHUB_TOKEN}
  - name: apps
    gitlab: {project: group/apps, ref: main, token_file: /run/t, api_url: 'https://gitlab.example/'}
default_target: images
per_hour: 4
in_flight_timeout: 2h
",
    )
    .unwrap();
    assert_eq!(
        settings.targets[0].kind,
        TargetKind::Github {
            repository: "org/images".into(),
            event_type: "berth-rebuild".into(),
            api_url: "https://api.github.com".into(),
        }
    );
    assert_eq!(
        settings.targets[1].kind,
        TargetKind::Gitlab {
            project: "group/apps".into(),
            git_ref: "main".into(),
            api_url: "https://gitlab.example".into(),
        }
    );
    assert_eq!(
        settings.targets[1].secret,
        SecretSource::File("/run/t".into())
    );
    assert_eq!(settings.per_hour, 4);
    assert_eq!(settings.per_target_per_hour, 2);
    assert_eq!(settings.in_flight_timeout, Duration::from_secs(7200));

    let long = "x".repeat(101);
    let errors = settings_for(&format!(
        "
targets:
  - name: images
    github: {{repository: org/images, token_env: T}}
  - name: bad
    github: {{repository: images, event_type: {long}, token_env: T}}
  - name: both
    webhook: {{url: 'ftp://x', secret_env: S, secret_file: f}}
    gitlab: {{project: p, ref: main, token_env: T}}
default_target: imagse
reasons: [base-moved, stale]
per_hour: 0
"
    ))
    .unwrap_err();
    let expected = [
        "berth.yaml:6:26: error: targets[1].github.repository: \"images\" is not `owner/repository`",
        "berth.yaml:6:46: error: targets[1].github.event_type: is 101 characters; GitHub allows at most 100",
        "berth.yaml:7:5: error: targets[2]: a target needs exactly one of `github`, `gitlab`, `webhook`",
        "berth.yaml:10:17: error: default_target: \"imagse\" is not a declared target; did you mean images?",
        "berth.yaml:11:23: error: reasons[1]: \"stale\" is not a reason; expected one of: base-moved, too-old, os-eol, base-retired",
        "berth.yaml:12:11: error: per_hour: \"0\" is not a whole number above 0",
    ];
    assert_eq!(errors, expected);
}
