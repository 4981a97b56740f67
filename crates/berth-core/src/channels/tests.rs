//! Channel decisions, table by table: each case is a history written as text, a moment, and the
//! decision rendered as one line, so the tests pin behaviour rather than the API.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use super::rule::parse_span;
use super::*;
use crate::catalog::{CatalogEntry, Lifecycle, State};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// `a` → `sha256:aaaa…`: one letter names a digest in the tables.
fn digest(letter: char) -> Digest {
    Digest::parse(&format!("sha256:{}", letter.to_string().repeat(64))).unwrap()
}

fn letter(digest: &Digest) -> char {
    digest.hex().chars().next().unwrap()
}

/// A history as `letter@moment kind[<previous]`, oldest first:
/// `"a@2026-11-16T10:00:00Z promotion, b@2026-11-20T10:00:00Z rollback<c"`.
fn channel(text: &str) -> ChannelState {
    let mut previous = None;
    let history = text
        .split(", ")
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (head, kind) = item.split_once(' ').unwrap();
            let (digest_letter, moment) = head.split_once('@').unwrap();
            let (kind, rolled_from) = match kind.split_once('<') {
                Some((kind, from)) => (kind, Some(digest(from.chars().next().unwrap()))),
                None => (kind, None),
            };
            let kind = match kind {
                "promotion" => ChangeKind::Promotion,
                "rollback" => ChangeKind::Rollback,
                "manual" => ChangeKind::Manual,
                "outside" => ChangeKind::OutsideChange,
                other => panic!("unknown kind {other}"),
            };
            let entry = HistoryEntry {
                digest: digest(digest_letter.chars().next().unwrap()),
                previous: rolled_from.or(previous.clone()),
                at: at(moment),
                actor: "test".into(),
                reason: String::new(),
                kind,
            };
            previous = Some(entry.digest.clone());
            entry
        })
        .collect();
    ChannelState::new(history)
}

fn entry(lifecycle: Lifecycle) -> CatalogEntry {
    CatalogEntry {
        name: "python3.11".into(),
        description: None,
        aliases: vec!["py311".into()],
        lifecycle,
        image: None,
        variants: Default::default(),
        base: None,
        owners: Vec::new(),
        channels: vec![
            channel_tag("staging").unwrap(),
            channel_tag("latest").unwrap(),
        ],
        max_age: None,
        build: None,
    }
}

/// The dotnet rollout: Wednesdays 10:00 Copenhagen, 2 days on staging, Monday to Thursday
/// 09:00-16:00, frozen over the year's end, new variants on `latest` at once.
const WEEKLY: &str = r#"
promotions:
  - from: staging
    to: latest
    schedule: "0 10 * * WED"
    time_zone: Europe/Copenhagen
    soak: 2d
    gates: [not-retired, facts-known]
    windows:
      - {days: [mon, tue, wed, thu], from: "09:00", until: "16:00"}
    freezes:
      - {from: 2026-12-18, until: 2027-01-04, reason: year-end freeze}
    first_publish: immediate
    stamp: true
"#;

fn weekly() -> PromotionRule {
    RulesFile::parse("rules.yaml", WEEKLY)
        .unwrap()
        .promotions
        .remove(0)
}

fn render(decision: &Decision) -> String {
    match decision {
        Decision::Promote {
            digest,
            first_publish,
        } => {
            let first = if *first_publish {
                " (first publish)"
            } else {
                ""
            };
            format!("promote {}{first}", letter(digest))
        }
        Decision::Blocked { digest, reasons } => {
            let reasons: Vec<String> = reasons.iter().map(ToString::to_string).collect();
            format!("blocked {}: {}", letter(digest), reasons.join("; "))
        }
        Decision::NothingToDo {
            why: Idle::SourceEmpty,
        } => "nothing: source empty".into(),
        Decision::NothingToDo {
            why: Idle::AlreadyThere { digest },
        } => format!("nothing: already at {}", letter(digest)),
    }
}

struct Case {
    source: &'static str,
    target: &'static str,
    lifecycle: Lifecycle,
    facts_known: bool,
    request: Request,
    now: &'static str,
    expect: &'static str,
}

impl Default for Case {
    fn default() -> Case {
        Case {
            source: "",
            target: "",
            lifecycle: Lifecycle::default(),
            facts_known: true,
            request: Request::Scheduled,
            now: "2026-11-25T09:00:00Z",
            expect: "",
        }
    }
}

fn check_evaluate(rule: &PromotionRule, cases: Vec<Case>) {
    for case in cases {
        let decision = evaluate_promotion(
            &channel(case.source),
            &channel(case.target),
            rule,
            &entry(case.lifecycle.clone()),
            Evidence {
                facts_known: case.facts_known,
                ..Evidence::default()
            },
            &case.request,
            at(case.now),
        );
        assert_eq!(
            render(&decision),
            case.expect,
            "source [{}] target [{}] at {}",
            case.source,
            case.target,
            case.now
        );
    }
}

#[test]
fn promotions_wait_for_soak_gates_windows_and_freezes() {
    let on_latest = "a@2026-11-01T09:00:00Z promotion";
    check_evaluate(
        &weekly(),
        vec![
            Case {
                source: "b@2026-11-20T12:00:00Z outside",
                target: on_latest,
                expect: "promote b",
                ..Case::default()
            },
            Case {
                // Issue 15, item 20: a deadline computed from a recorded moment prints to the
                // second, not with its microseconds.
                source: "b@2026-11-24T12:00:00.123456Z outside",
                target: on_latest,
                expect: "blocked b: soaking on the source until 2026-11-26 12:00:00 UTC",
                ..Case::default()
            },
            Case {
                // Pushed to staging on Monday: two days have not passed by Wednesday 10:00.
                source: "b@2026-11-24T12:00:00Z outside",
                target: on_latest,
                expect: "blocked b: soaking on the source until 2026-11-26 12:00:00 UTC",
                ..Case::default()
            },
            Case {
                source: "b@2026-11-20T12:00:00Z outside",
                target: on_latest,
                // 17:00 in Copenhagen.
                now: "2026-11-25T16:00:00Z",
                expect: "blocked b: outside every promotion window",
                ..Case::default()
            },
            Case {
                source: "b@2026-12-10T12:00:00Z outside",
                target: on_latest,
                now: "2026-12-23T09:00:00Z",
                expect: "blocked b: frozen until 2027-01-04 00:00:00 UTC (year-end freeze)",
                ..Case::default()
            },
            Case {
                source: "b@2026-11-20T12:00:00Z outside",
                target: on_latest,
                lifecycle: Lifecycle {
                    deprecated_on: NaiveDate::from_ymd_opt(2026, 11, 1),
                    ..Lifecycle::default()
                },
                facts_known: false,
                expect: "blocked b: the image is deprecated; berth does not know the image's facts yet",
                ..Case::default()
            },
            Case {
                source: "a@2026-10-20T12:00:00Z outside",
                target: on_latest,
                expect: "nothing: already at a",
                ..Case::default()
            },
            Case {
                source: "",
                target: on_latest,
                expect: "nothing: source empty",
                ..Case::default()
            },
        ],
    );
}

#[test]
fn the_scheduler_does_not_bring_back_what_was_rolled_back() {
    let source = "c@2026-11-10T12:00:00Z outside";
    let target = "a@2026-11-01T09:00:00Z promotion, c@2026-11-18T09:00:00Z promotion, a@2026-11-18T10:00:00Z rollback<c";
    check_evaluate(
        &weekly(),
        vec![
            Case {
                source,
                target,
                expect: "blocked c: the target was rolled back from it at 2026-11-18 10:00:00 UTC; promote it by hand to bring it back",
                ..Case::default()
            },
            Case {
                source,
                target,
                request: Request::ByHand { digest: None },
                expect: "promote c",
                ..Case::default()
            },
            Case {
                // A new build on staging goes out as usual.
                source: "c@2026-11-10T12:00:00Z outside, d@2026-11-19T12:00:00Z outside",
                target,
                expect: "promote d",
                ..Case::default()
            },
        ],
    );
}

/// Issue 15, item 10: a hand fix on a channel berth manages holds it — for the scheduler and
/// by hand — until a person acknowledges it (a manual entry); a channel only ever moved
/// outside berth (staging, pushed by CI) is never held.
#[test]
fn a_hand_fix_holds_the_channel_until_acknowledged() {
    let source = "c@2026-11-10T12:00:00Z outside";
    let fixed = "a@2026-11-01T09:00:00Z promotion, b@2026-11-20T08:00:00Z outside";
    let held = "blocked c: the target was moved outside berth at 2026-11-20 08:00:00 UTC (to sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb) and is held; `berth channels ack` accepts that change, --force promotes over it";
    check_evaluate(
        &weekly(),
        vec![
            Case {
                source,
                target: fixed,
                expect: held,
                ..Case::default()
            },
            Case {
                source,
                target: fixed,
                request: Request::ByHand { digest: None },
                expect: held,
                ..Case::default()
            },
            Case {
                source,
                target: "a@2026-11-01T09:00:00Z promotion, b@2026-11-20T08:00:00Z outside, b@2026-11-21T08:00:00Z manual",
                expect: "promote c",
                ..Case::default()
            },
            Case {
                source,
                target: "b@2026-11-01T09:00:00Z outside, d@2026-11-20T08:00:00Z outside",
                expect: "promote c",
                ..Case::default()
            },
        ],
    );
    assert!(channel(fixed).held().is_some());
    assert!(channel("b@2026-11-01T09:00:00Z outside").held().is_none());
}

#[test]
fn a_new_variant_reaches_latest_at_once_but_still_passes_its_gates() {
    check_evaluate(
        &weekly(),
        vec![
            Case {
                // A Saturday night, an hour after the first push, in the freeze.
                source: "b@2026-12-19T22:00:00Z outside",
                now: "2026-12-19T23:00:00Z",
                expect: "promote b (first publish)",
                ..Case::default()
            },
            Case {
                source: "b@2026-12-19T22:00:00Z outside",
                now: "2026-12-19T23:00:00Z",
                lifecycle: Lifecycle {
                    state: State::Eol,
                    ..Lifecycle::default()
                },
                expect: "blocked b: the image is eol",
                ..Case::default()
            },
        ],
    );
    let mut scheduled = weekly();
    scheduled.first_publish = FirstPublish::Scheduled;
    check_evaluate(
        &scheduled,
        vec![Case {
            source: "b@2026-12-19T22:00:00Z outside",
            now: "2026-12-19T23:00:00Z",
            expect: "blocked b: soaking on the source until 2026-12-21 22:00:00 UTC; outside every promotion window; frozen until 2027-01-04 00:00:00 UTC (year-end freeze)",
            ..Case::default()
        }],
    );
}

#[test]
fn a_promotion_by_hand_may_name_a_digest_the_source_held() {
    let source = "b@2026-11-10T12:00:00Z outside, c@2026-11-24T12:00:00Z outside";
    let target = "a@2026-11-01T09:00:00Z promotion";
    check_evaluate(
        &weekly(),
        vec![
            Case {
                source,
                target,
                request: Request::ByHand {
                    digest: Some(digest('b')),
                },
                expect: "promote b",
                ..Case::default()
            },
            Case {
                source,
                target,
                request: Request::ByHand { digest: None },
                expect: "blocked c: soaking on the source until 2026-11-26 12:00:00 UTC",
                ..Case::default()
            },
            Case {
                source,
                target,
                request: Request::ByHand {
                    digest: Some(digest('e')),
                },
                expect: "blocked e: the source channel never held this digest",
                ..Case::default()
            },
        ],
    );
    // Held for a day only, then replaced: it never soaked, however long ago that was.
    check_evaluate(
        &weekly(),
        vec![Case {
            source: "b@2026-11-10T12:00:00Z outside, c@2026-11-11T12:00:00Z outside",
            target,
            request: Request::ByHand {
                digest: Some(digest('b')),
            },
            expect: "blocked b: soaking on the source until 2026-11-12 12:00:00 UTC",
            ..Case::default()
        }],
    );
}

fn render_due(due: &Due) -> String {
    match due {
        Due::Now { slot, missed } => format!("now {} missed {missed}", slot.to_rfc3339()),
        Due::Later { at } => format!("later {}", at.to_rfc3339()),
        Due::Manual => "manual".into(),
        Due::Never => "never".into(),
    }
}

#[test]
fn due_runs_each_slot_once_and_catches_up_once() {
    let rule = weekly();
    // Wednesdays 10:00 in Copenhagen: 09:00Z in winter, 08:00Z in summer.
    let cases = [
        (
            "2026-11-18T09:00:00Z",
            "2026-11-24T12:00:00Z",
            "later 2026-11-25T09:00:00+00:00",
        ),
        (
            "2026-11-18T09:00:00Z",
            "2026-11-25T09:00:00Z",
            "now 2026-11-25T09:00:00+00:00 missed 0",
        ),
        // Down for three weeks: one run, for the latest slot.
        (
            "2026-11-04T09:00:00Z",
            "2026-11-26T00:00:00Z",
            "now 2026-11-25T09:00:00+00:00 missed 2",
        ),
        // The run just recorded: next week.
        (
            "2026-11-25T09:00:00Z",
            "2026-11-26T00:00:00Z",
            "later 2026-12-02T09:00:00+00:00",
        ),
        // Across the change to summer time (2026-03-29).
        (
            "2026-03-26T00:00:00Z",
            "2026-03-30T00:00:00Z",
            "later 2026-04-01T08:00:00+00:00",
        ),
    ];
    for (last_run, now, expect) in cases {
        assert_eq!(
            render_due(&due(&rule, at(last_run), at(now))),
            expect,
            "last run {last_run}, now {now}"
        );
    }
    let manual = PromotionRule::manual(
        channel_tag("staging").unwrap(),
        channel_tag("latest").unwrap(),
    );
    assert_eq!(
        render_due(&due(
            &manual,
            at("2026-01-01T00:00:00Z"),
            at("2027-01-01T00:00:00Z")
        )),
        "manual"
    );
}

#[test]
fn rollback_goes_one_step_back_and_never_to_a_rolled_back_digest() {
    let cases = [
        (
            "a@2026-11-01T09:00:00Z promotion, b@2026-11-08T09:00:00Z promotion",
            None,
            "b -> a",
        ),
        (
            "a@2026-11-01T09:00:00Z promotion, b@2026-11-08T09:00:00Z promotion, c@2026-11-15T09:00:00Z promotion, b@2026-11-16T09:00:00Z rollback<c",
            None,
            "b -> a",
        ),
        (
            "a@2026-11-01T09:00:00Z promotion, b@2026-11-08T09:00:00Z promotion, a@2026-11-09T09:00:00Z rollback<b",
            None,
            "refused: the channel has no earlier digest to roll back to",
        ),
        (
            "a@2026-11-01T09:00:00Z promotion",
            None,
            "refused: the channel has no earlier digest to roll back to",
        ),
        (
            "",
            None,
            "refused: the channel has no earlier digest to roll back to",
        ),
        (
            "a@2026-11-01T09:00:00Z promotion, b@2026-11-08T09:00:00Z promotion, c@2026-11-15T09:00:00Z promotion",
            Some('a'),
            "c -> a",
        ),
        (
            "a@2026-11-01T09:00:00Z promotion, b@2026-11-08T09:00:00Z promotion",
            Some('e'),
            "refused: the channel never pointed at sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee; a rollback goes only to a digest it held",
        ),
        (
            "a@2026-11-01T09:00:00Z promotion, b@2026-11-08T09:00:00Z promotion",
            Some('b'),
            "refused: the channel already points at sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        ),
    ];
    for (history, to, expect) in cases {
        let state = channel(history);
        let to = to.map(digest);
        let got = match rollback_target(&state, to.as_ref()) {
            Ok(target) => format!(
                "{} -> {}",
                letter(state.current().unwrap()),
                letter(&target)
            ),
            Err(refused) => format!("refused: {refused}"),
        };
        assert_eq!(got, expect, "{history} to {to:?}");
    }
}

#[test]
fn the_registry_is_compared_with_the_history() {
    let history = "a@2026-11-01T09:00:00Z promotion";
    let cases = [
        (history, Some('a'), Some('b'), "agrees"),
        ("", None, Some('b'), "agrees"),
        (history, Some('b'), Some('b'), "unrecorded b"),
        ("", Some('b'), Some('b'), "unrecorded b"),
        ("", Some('c'), Some('b'), "first sight c"),
        (history, Some('c'), Some('b'), "drift a -> c"),
        (history, Some('c'), None, "drift a -> c"),
        (history, None, Some('b'), "drift a -> gone"),
    ];
    for (history, found, intended, expect) in cases {
        let (found, intended) = (found.map(digest), intended.map(digest));
        let got = match observe(&channel(history), found.as_ref(), intended.as_ref()) {
            Observation::Agrees => "agrees".to_string(),
            Observation::FirstSight { found } => format!("first sight {}", letter(&found)),
            Observation::Unrecorded { found } => format!("unrecorded {}", letter(&found)),
            Observation::Drift { recorded, found } => format!(
                "drift {} -> {}",
                letter(&recorded),
                found.map_or("gone".to_string(), |found| letter(&found).to_string())
            ),
        };
        assert_eq!(
            got, expect,
            "[{history}] found {found:?} intended {intended:?}"
        );
    }
}

#[test]
fn rules_files_are_read_whole_and_every_problem_is_reported() {
    let rule = weekly();
    assert_eq!(rule.soak, TimeDelta::days(2));
    assert_eq!(rule.gates, vec![Gate::NotRetired, Gate::FactsKnown]);
    assert_eq!(rule.first_publish, FirstPublish::Immediate);
    assert!(rule.stamp);
    assert_eq!(rule.zone.name(), "Europe/Copenhagen");
    assert!(matches!(&rule.trigger, Trigger::Scheduled(s) if s.expression() == "0 10 * * WED"));
    assert!(rule.applies_to(&entry(Lifecycle::default())));

    let minimal = RulesFile::parse("r.yaml", "promotions:\n  - {from: staging, to: latest}\n")
        .unwrap()
        .promotions
        .remove(0);
    assert_eq!(
        minimal,
        PromotionRule::manual(
            channel_tag("staging").unwrap(),
            channel_tag("latest").unwrap()
        )
    );

    let broken = r#"
promotions:
  - from: staging
    to: staging
    schedule: "0 10 * * WENSDAY"
    time_zone: Europe/Kopenhagen
    soak: two days
    gates: [tsted]
    windows:
      - {days: [someday], from: "16:00", until: "09:00"}
    freezes:
      - {from: 2027-01-04, until: 2026-12-18}
    first_publish: now
    stamp: yes
    shedule: x
  - to: latest
    soak: forever
"#;
    let diagnostics = RulesFile::parse("r.yaml", broken).unwrap_err();
    let got: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    let expect = [
        "r.yaml:3:5: error: promotions[0]: promotes staging to itself",
        "r.yaml:5:15: error: promotions[0].schedule: \"0 10 * * WENSDAY\" is not a cron expression: the day of week field \"WENSDAY\" is not valid; expected 0-7 or SUN-SAT, a range (1-5), a list (1,3) or a step (*/2)",
        "r.yaml:6:16: error: promotions[0].time_zone: \"Europe/Kopenhagen\" is not an IANA time zone (Europe/Copenhagen, UTC)",
        "r.yaml:7:11: error: promotions[0].soak: \"two days\" is not a duration (500ms, 30s, 15m, 1h, 2d, 1w, 1h30m)",
        "r.yaml:8:13: error: promotions[0].gates[0]: unknown gate \"tsted\"; expected not-retired, facts-known, signed or tested",
        "r.yaml:10:9: error: promotions[0].windows[0]: the window ends (09:00:00) before it starts (16:00:00); split a window across midnight in two",
        "r.yaml:10:17: error: promotions[0].windows[0].days[0]: \"someday\" is not a day of the week (mon, tue, ...)",
        "r.yaml:12:9: error: promotions[0].freezes[0]: the freeze ends before it starts",
        "r.yaml:13:20: error: promotions[0].first_publish: unknown first_publish \"now\"; expected immediate or scheduled",
        "r.yaml:14:12: error: promotions[0].stamp: \"yes\" is not true or false",
        "r.yaml:15:5: error: promotions[0].shedule: unknown field `shedule`; did you mean `schedule`?",
        "r.yaml:16:5: error: promotions[1]: a promotion needs `from`",
        // issue 15, item 20: the rest of a rule without `from` is checked in the same round.
        "r.yaml:17:11: error: promotions[1].soak: \"forever\" is not a duration (500ms, 30s, 15m, 1h, 2d, 1w, 1h30m)",
    ];
    assert_eq!(got, expect);
}

#[test]
fn spans_and_stamps() {
    for (text, expect) in [
        ("90m", Some(TimeDelta::minutes(90))),
        ("12h", Some(TimeDelta::hours(12))),
        ("2d", Some(TimeDelta::days(2))),
        ("1w", Some(TimeDelta::weeks(1))),
        ("0", Some(TimeDelta::zero())),
        ("2", None),
        ("d", None),
        ("2 d", None),
        ("-2d", None),
    ] {
        assert_eq!(parse_span(text).ok(), expect, "{text}");
    }
    let latest = channel_tag("latest").unwrap();
    assert_eq!(
        stamp_tag(&latest, at("2026-11-22T10:00:59Z"))
            .unwrap()
            .as_str(),
        "latest-20261122T1000Z"
    );
    assert!(
        stamp_tag(
            &channel_tag(&"x".repeat(120)).unwrap(),
            at("2026-11-22T10:00:00Z")
        )
        .is_none()
    );
}

#[test]
fn a_rule_may_target_another_variant() {
    let text = "promotions:\n  - {from: latest, to: latest, to_variant: public}\n  - {from: staging, to: latest, from_variant: internal, to_variant: public}\n";
    let rules = RulesFile::parse("r.yaml", text).unwrap();
    assert_eq!(rules.promotions[0].to_variant.as_deref(), Some("public"));
    assert_eq!(rules.promotions[0].from_variant, None);
    assert_eq!(
        rules.promotions[1].from_variant.as_deref(),
        Some("internal")
    );
    let staging = channel_tag("staging").unwrap();
    let latest = channel_tag("latest").unwrap();
    let entry = entry(Lifecycle::default());
    assert!(rules.rule_for(&entry, &latest, &latest).is_none());
    assert_eq!(
        rules.rule_to(&entry, &staging, &latest, Some("public")),
        Some(&rules.promotions[1])
    );

    let broken = "promotions:\n  - {from: latest, to: latest, from_variant: a, to_variant: a}\n  - {from: staging, to: latest, from_variant: a}\n";
    let got: Vec<String> = RulesFile::parse("r.yaml", broken)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        got,
        [
            "r.yaml:2:5: error: promotions[0]: promotes latest to itself",
            "r.yaml:3:5: error: promotions[1]: `from_variant` names the source of a promotion to another variant; add `to_variant`",
        ]
    );
}

#[test]
fn the_signed_and_tested_gates_block_until_evidence_is_known() {
    let rule = RulesFile::parse(
        "rules.yaml",
        "promotions:\n  - {from: staging, to: latest, gates: [signed, tested]}\n",
    )
    .unwrap()
    .promotions
    .remove(0);
    let decide = |signed: bool, tested: bool| {
        render(&evaluate_promotion(
            &channel("b@2026-11-20T12:00:00Z outside"),
            &channel("a@2026-10-01T12:00:00Z promotion"),
            &rule,
            &entry(Lifecycle::default()),
            Evidence {
                facts_known: true,
                signed,
                tested,
            },
            &Request::ByHand { digest: None },
            at("2026-11-25T09:00:00Z"),
        ))
    };
    assert_eq!(decide(true, true), "promote b");
    assert_eq!(
        decide(false, true),
        "blocked b: no signature by a trusted key is known (cosign sign, then berth sync --policy)"
    );
    assert!(decide(true, false).starts_with("blocked b: no passing test result is known"));
    assert_eq!(decide(false, false).matches("; ").count(), 1);
    let wrong = RulesFile::parse(
        "rules.yaml",
        "promotions:\n  - {from: staging, to: latest, gates: [sigend]}\n",
    )
    .unwrap_err()
    .iter()
    .map(ToString::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    assert!(
        wrong.contains(
            "unknown gate \"sigend\"; expected not-retired, facts-known, signed or tested"
        ),
        "{wrong}"
    );
}
