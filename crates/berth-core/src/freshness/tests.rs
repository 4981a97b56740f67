//! Freshness decisions over small hand-built stores: base moved (through an index, twins,
//! the nearest moved ancestor), age and its fallbacks, OS end of life, retired bases, scope,
//! and the plan's waves.

use super::*;
use crate::catalog::{self, Source};

pub(crate) fn at(day: &str) -> DateTime<Utc> {
    format!("{day}T00:00:00Z").parse().unwrap()
}

pub(crate) fn digest(name: &str) -> Digest {
    use std::fmt::Write as _;
    let mut hex = String::new();
    for byte in name.bytes().cycle().take(32) {
        write!(hex, "{byte:02x}").unwrap();
    }
    Digest::parse(&format!("sha256:{hex}")).unwrap()
}

pub(crate) fn reference(text: &str) -> ImageRef {
    ImageRef::parse(text).unwrap()
}

pub(crate) const CATALOG: &str = "
images:
  base:
    image: registry.test/base
    channels: [latest]
  oldbase:
    image: registry.test/oldbase
    state: deprecated
    replacement: base
  app:
    image: registry.test/app
    max_age: 10d
";

pub(crate) fn catalog(text: &str) -> Catalog {
    let loaded = catalog::load(
        &[Source {
            name: "catalog.yaml",
            text,
        }],
        catalog::Format::Berth,
        at("2026-01-01"),
    );
    let errors: Vec<String> = loaded.errors().map(|e| e.to_string()).collect();
    loaded.catalog.unwrap_or_else(|| panic!("{errors:?}"))
}

/// A store in the making: images by name, tags, moves.
#[derive(Default)]
pub(crate) struct Bed {
    pub(crate) facts: Facts,
}

impl Bed {
    pub(crate) fn image(&mut self, name: &str, base: Option<&str>) -> &mut ImageFacts {
        self.facts.images.push(ImageFacts {
            digest: digest(name),
            platform: "linux/amd64".into(),
            created: Some(at("2026-01-01")),
            first_seen: at("2026-01-01"),
            os_id: None,
            base: base.map(digest),
            chain_key: Some(format!("chain-{name}")),
        });
        self.facts.images.last_mut().unwrap()
    }

    pub(crate) fn tag(&mut self, text: &str, name: &str) {
        self.facts.tags.push(TagFacts {
            reference: reference(text),
            digest: digest(name),
            since: at("2026-01-01"),
        });
    }

    pub(crate) fn moved(&mut self, text: &str, from: &str, to: &str, day: &str) {
        self.facts.moves.push(TagMove {
            reference: reference(text),
            from: digest(from),
            to: digest(to),
            at: at(day),
        });
        let tag = self
            .facts
            .tags
            .iter_mut()
            .find(|tag| tag.reference == reference(text))
            .expect("move a tag that exists");
        tag.digest = digest(to);
        tag.since = at(day);
    }
}

fn kinds(report: &Report, text: &str) -> Vec<&'static str> {
    report
        .stale
        .iter()
        .find(|image| image.reference == reference(text))
        .map(|image| image.reasons.iter().map(Reason::kind).collect())
        .unwrap_or_default()
}

/// base v1 → child → grandchild; then base:latest moves to v2.
pub(crate) fn moved_base() -> Bed {
    let mut bed = Bed::default();
    bed.image("base-v1", None);
    bed.image("base-v2", None);
    bed.image("child", Some("base-v1"));
    bed.image("grandchild", Some("child"));
    bed.tag("registry.test/base:latest", "base-v1");
    bed.tag("registry.test/child:latest", "child");
    bed.tag("registry.test/grandchild:latest", "grandchild");
    bed.moved(
        "registry.test/base:latest",
        "base-v1",
        "base-v2",
        "2026-02-01",
    );
    bed
}

#[test]
fn a_moved_base_makes_child_and_grandchild_stale_with_its_evidence() {
    let bed = moved_base();
    let report = stale(
        &catalog(CATALOG),
        &bed.facts,
        &Settings::default(),
        at("2026-02-02"),
    );
    assert_eq!(report.checked, 3, "base, child and grandchild are in scope");
    let child = &report.stale[0];
    assert_eq!(child.reference, reference("registry.test/child:latest"));
    assert_eq!(
        child.reasons,
        vec![Reason::BaseMoved {
            base: digest("base-v1"),
            channel: reference("registry.test/base:latest"),
            now: digest("base-v2"),
            since: at("2026-02-01"),
        }]
    );
    // The grandchild's nearest moved ancestor is the base (the child has not moved).
    assert_eq!(
        kinds(&report, "registry.test/grandchild:latest"),
        ["base-moved"]
    );
    assert!(kinds(&report, "registry.test/base:latest").is_empty());

    let plan = plan(&report, |_| None);
    let waves: Vec<(String, u32)> = plan
        .items
        .iter()
        .map(|item| (item.reference.repository().to_string(), item.wave))
        .collect();
    assert_eq!(waves, [("child".into(), 1), ("grandchild".into(), 2)]);
    assert_eq!(plan.waves, 2);
}

#[test]
fn a_base_still_on_its_channel_or_moved_to_a_twin_is_fresh() {
    let mut bed = Bed::default();
    bed.image("base-v1", None);
    bed.image("base-v1-docker", None).chain_key = Some("chain-base-v1".into());
    bed.image("child", Some("base-v1"));
    bed.tag("registry.test/base:latest", "base-v1");
    bed.tag("registry.test/child:latest", "child");
    let catalog = catalog(CATALOG);
    let report = stale(&catalog, &bed.facts, &Settings::default(), at("2026-02-02"));
    assert!(report.stale.is_empty(), "{:?}", report.stale);

    // The same layers pushed again in the other manifest format: not a new base.
    bed.moved(
        "registry.test/base:latest",
        "base-v1",
        "base-v1-docker",
        "2026-02-01",
    );
    let report = stale(&catalog, &bed.facts, &Settings::default(), at("2026-02-02"));
    assert!(report.stale.is_empty(), "{:?}", report.stale);
}

#[test]
fn a_base_behind_an_index_is_matched_by_platform() {
    let mut bed = Bed::default();
    bed.image("base-v1-amd64", None);
    bed.image("base-v1-arm64", None).platform = "linux/arm64".into();
    bed.image("base-v2-amd64", None);
    bed.image("base-v2-arm64", None).platform = "linux/arm64".into();
    bed.image("child", Some("base-v1-arm64")).platform = "linux/arm64".into();
    for version in ["v1", "v2"] {
        bed.facts.indexes.push((
            digest(&format!("index-{version}")),
            vec![
                (
                    digest(&format!("base-{version}-amd64")),
                    "linux/amd64".into(),
                ),
                (
                    digest(&format!("base-{version}-arm64")),
                    "linux/arm64".into(),
                ),
            ],
        ));
    }
    bed.tag("registry.test/base:latest", "index-v1");
    bed.tag("registry.test/child:latest", "child");
    bed.moved(
        "registry.test/base:latest",
        "index-v1",
        "index-v2",
        "2026-02-01",
    );
    let report = stale(
        &catalog(CATALOG),
        &bed.facts,
        &Settings::default(),
        at("2026-02-02"),
    );
    let child = &report.stale[0];
    let Reason::BaseMoved { base, now, .. } = &child.reasons[0] else {
        panic!("{:?}", child.reasons);
    };
    assert_eq!(base, &digest("base-v1-arm64"));
    assert_eq!(
        now,
        &digest("base-v2-arm64"),
        "the same platform's new image"
    );
}

#[test]
fn age_counts_from_a_plausible_created_else_first_seen() {
    let mut bed = Bed::default();
    bed.image("base", None);
    bed.image("app-old", Some("base")).created = Some(at("2026-01-01"));
    bed.image("app-epoch", Some("base")).created = Some(at("1970-01-01"));
    bed.image("app-future", Some("base")).created = Some(at("2030-01-01"));
    for name in ["app-epoch", "app-future"] {
        let image = bed
            .facts
            .images
            .iter_mut()
            .find(|i| i.digest == digest(name));
        image.unwrap().first_seen = at("2026-01-25");
    }
    bed.tag("registry.test/base:latest", "base");
    bed.tag("registry.test/app:latest", "app-old");
    bed.tag("registry.test/other:epoch", "app-epoch");
    bed.tag("registry.test/other:future", "app-future");
    let settings = Settings {
        max_age: Some(Duration::from_secs(30 * 86_400)),
        ..Settings::default()
    };
    let report = stale(&catalog(CATALOG), &bed.facts, &settings, at("2026-02-01"));
    // The entry's own max_age (10d) applies to app; the default (30d) to the others, whose
    // implausible created falls back to first seen (7 days ago): fresh.
    let app = report
        .stale
        .iter()
        .find(|image| image.reference == reference("registry.test/app:latest"))
        .unwrap();
    assert_eq!(
        app.reasons,
        vec![Reason::TooOld {
            age_days: 31,
            max_age_days: 10,
            from: at("2026-01-01"),
            source: AgeSource::Created,
        }]
    );
    assert!(kinds(&report, "registry.test/other:epoch").is_empty());
    let later = stale(&catalog(CATALOG), &bed.facts, &settings, at("2026-03-01"));
    let epoch = later
        .stale
        .iter()
        .find(|image| image.reference == reference("registry.test/other:epoch"))
        .unwrap();
    assert!(matches!(
        epoch.reasons[0],
        Reason::TooOld {
            source: AgeSource::FirstSeen,
            age_days: 35,
            ..
        }
    ));
}

#[test]
fn os_end_of_life_and_its_warning_window() {
    let mut bed = Bed::default();
    bed.image("base", None);
    bed.image("on-debian-11", Some("base")).os_id = Some(OsIdentity {
        id: "debian-11-amd64".into(),
    });
    bed.image("on-alpine", Some("base")).os_id = Some(OsIdentity {
        id: "alpine-3.22-amd64".into(),
    });
    bed.tag("registry.test/base:latest", "base");
    bed.tag("registry.test/a:latest", "on-debian-11");
    bed.tag("registry.test/b:latest", "on-alpine");
    let report = stale(
        &catalog(CATALOG),
        &bed.facts,
        &Settings::default(),
        at("2027-03-01"),
    );
    let reasons = |text: &str| {
        report
            .stale
            .iter()
            .find(|image| image.reference == reference(text))
            .map(|image| image.reasons.clone())
    };
    assert_eq!(
        reasons("registry.test/a:latest"),
        Some(vec![Reason::OsEol {
            os: "debian-11-amd64".into(),
            eol_on: "2026-09-01".parse().unwrap(),
            warning: false,
            table: LifecycleSource::Berth,
        }])
    );
    // Alpine 3.22 ends 2027-05-01: within the default 90-day window.
    assert!(matches!(
        reasons("registry.test/b:latest").unwrap()[0],
        Reason::OsEol { warning: true, .. }
    ));
    // An operator's extended support moves the date.
    let settings = Settings {
        os_lifecycle: vec![OsLifecycle {
            distribution: "debian".into(),
            version: "11".into(),
            eol_on: "2030-01-01".parse().unwrap(),
        }],
        ..Settings::default()
    };
    let report = stale(&catalog(CATALOG), &bed.facts, &settings, at("2027-03-01"));
    assert!(kinds(&report, "registry.test/a:latest").is_empty());
}

#[test]
fn a_retired_base_and_scope_outside_the_catalog() {
    let mut bed = Bed::default();
    bed.image("oldbase", None);
    bed.image("tool", Some("oldbase"));
    bed.image("loner", None);
    bed.image("on-loner", Some("loner"));
    bed.tag("registry.test/oldbase:latest", "oldbase");
    bed.tag("registry.test/tool:v1", "tool");
    bed.tag("registry.test/loner:latest", "loner");
    bed.tag("registry.test/on-loner:latest", "on-loner");
    let report = stale(
        &catalog(CATALOG),
        &bed.facts,
        &Settings::default(),
        at("2026-02-01"),
    );
    // oldbase (a channel) and tool (reaches the catalog) are in scope; loner's family is not.
    assert_eq!(report.checked, 2);
    let tool = &report.stale[0];
    assert_eq!(tool.reference, reference("registry.test/tool:v1"));
    assert_eq!(
        tool.reasons,
        vec![Reason::BaseRetired {
            base: digest("oldbase"),
            entry: "oldbase".into(),
            state: State::Deprecated,
            replacement: Some("base".into()),
        }]
    );
}

#[test]
fn a_chain_reports_the_nearest_moved_ancestor_and_waves_follow_lineage() {
    // base → mid → leaf, where both base and mid moved: leaf reports mid.
    let mut bed = moved_base();
    bed.image("child-v2", Some("base-v2"));
    bed.moved(
        "registry.test/child:latest",
        "child",
        "child-v2",
        "2026-02-03",
    );
    let report = stale(
        &catalog(CATALOG),
        &bed.facts,
        &Settings::default(),
        at("2026-02-04"),
    );
    // The child was rebuilt on v2: fresh. The grandchild was built on the old child.
    assert!(kinds(&report, "registry.test/child:latest").is_empty());
    let grandchild = &report.stale[0];
    assert!(matches!(
        &grandchild.reasons[0],
        Reason::BaseMoved { base, now, .. } if *base == digest("child") && *now == digest("child-v2")
    ));
    let plan = plan(&report, |image| {
        Some(format!("ci-{}", image.reference.repository()))
    });
    assert_eq!(plan.items.len(), 1);
    assert_eq!(
        plan.items[0].wave, 1,
        "its base is not in the plan any more"
    );
    assert_eq!(plan.items[0].target.as_deref(), Some("ci-grandchild"));
    assert_eq!(count_by_reason(&report)["base-moved"], 1);
}
