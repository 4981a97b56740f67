//! Policy tests: the file's diagnostics, and a table of (policy, request) → verdict over the
//! demo catalog and a small, hand-made registry knowledge with real lineage.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;
use crate::catalog::{self, Catalog, Source};
use crate::lineage::LineageIndex;
use crate::provenance::{Signed, SignedKind, Tests};
use crate::reference::Digest;
use crate::workload::workload;

const DEMO_CATALOG: &str = include_str!("../../../../examples/catalog.yaml");
const EXAMPLE_POLICY: &str = include_str!("../../../../examples/policy.yaml");

fn at(text: &str) -> DateTime<Utc> {
    catalog::parse_moment(text).unwrap()
}

fn demo_catalog() -> Catalog {
    let sources = [Source {
        name: "catalog.yaml",
        text: DEMO_CATALOG,
    }];
    catalog::load(&sources, catalog::Format::Berth, at("2026-01-01"))
        .catalog
        .unwrap()
}

fn digest(n: u32) -> Digest {
    Digest::parse(&format!("sha256:{n:064x}")).unwrap()
}

/// Registry knowledge with lineage:
/// - berth/base:latest (bookworm) = image 1, layers [L1]
/// - berth/child:latest (python3.11 jobs) = index 20 → image 2, layers [L1, L2]
/// - berth/python312:latest = image 6, layers [L1, L2, L5] (built on child, so on bookworm)
/// - registry.example.com/alpine:3 = image 4, layers [L3]
/// - registry.example.com/app:1 = image 3, layers [L3, L4] (built on alpine)
/// - registry.example.com/scratch:1 = image 7, layers [L9] (built on nothing known)
/// - registry.example.com/ghost:1 = image 5, never read (not in the lineage)
/// - registry.example.com/multi:1 = index 21 → images 2 (on bookworm) and 7 (on nothing known)
fn knowledge() -> Knowledge {
    let layer = |n: u32| digest(1000 + n);
    let lineage = LineageIndex::build([
        (digest(1), vec![layer(1)]),
        (digest(2), vec![layer(1), layer(2)]),
        (digest(6), vec![layer(1), layer(2), layer(5)]),
        (digest(4), vec![layer(3)]),
        (digest(3), vec![layer(3), layer(4)]),
        (digest(7), vec![layer(9)]),
    ]);
    let mut knowledge = Knowledge::new(lineage);
    let tag = |text: &str| ImageRef::parse(text).unwrap();
    knowledge.add_tag(&tag("127.0.0.1:5050/berth/base:latest"), digest(1));
    knowledge.add_tag(&tag("127.0.0.1:5050/berth/child:latest"), digest(20));
    knowledge.add_index(digest(20), vec![digest(2)]);
    knowledge.add_tag(&tag("127.0.0.1:5050/berth/python312:latest"), digest(6));
    knowledge.add_tag(&tag("registry.example.com/alpine:3"), digest(4));
    knowledge.add_tag(&tag("registry.example.com/app:1"), digest(3));
    knowledge.add_tag(&tag("registry.example.com/scratch:1"), digest(7));
    knowledge.add_tag(&tag("registry.example.com/ghost:1"), digest(5));
    knowledge.add_tag(&tag("registry.example.com/multi:1"), digest(21));
    knowledge.add_index(digest(21), vec![digest(2), digest(7)]);
    knowledge
}

/// A pipeline's record of a digest built from git.example/app.
fn record(tests: Option<Tests>) -> crate::provenance::Record {
    crate::provenance::Record {
        source: Some("https://git.example/app".to_string()),
        commit: Some("0123456789abcdef".to_string()),
        build: None,
        logs: None,
        tests,
        tests_url: Some("https://ci.example/runs/7".to_string()).filter(|_| tests.is_some()),
        recorded_by: "ci-bot".to_string(),
        recorded_at: at("2026-07-30T10:00:00Z"),
    }
}

/// What a trusted key with fingerprint `key` verified.
fn signed(kind: SignedKind, key: &str) -> Signed {
    Signed {
        kind,
        key: key.to_string(),
        key_name: format!("key-{key}"),
        predicate_type: None,
        builder: None,
        source_repository: None,
        source_commit: None,
        tests: None,
        tests_url: None,
    }
}

/// A policy whose keys have the given fingerprints (as a loader from disk sets them: the
/// key named `NAME` gets fingerprint `NAME`).
fn keyed_policy(text: &str) -> Policy {
    let mut policy = policy(text);
    for key in policy.keys_mut() {
        key.fingerprint = Some(key.name.clone());
    }
    policy
}

fn policy(text: &str) -> Policy {
    let loaded = load("policy.yaml", text);
    let errors: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    loaded
        .policy
        .unwrap_or_else(|| panic!("invalid policy: {errors:#?}"))
}

fn deployment(images: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(index, image)| json!({"name": format!("c{index}"), "image": image}))
        .collect();
    json!({
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "tool-a"},
        "spec": {"template": {"spec": {"containers": containers}}}
    })
}

/// A verdict as lines: `deny|warn|exempt RULE CONTAINER: message`, `patch PATH VALUE`, and
/// `allowed` or `denied` last.
fn render(verdict: &Verdict) -> Vec<String> {
    let mut lines = Vec::new();
    for finding in &verdict.denials {
        lines.push(format!(
            "deny {} {}: {}",
            finding.rule, finding.container, finding.message
        ));
    }
    for finding in &verdict.warnings {
        lines.push(format!(
            "warn {} {}: {}",
            finding.rule, finding.container, finding.message
        ));
    }
    for exempted in &verdict.exempted {
        let finding = &exempted.finding;
        lines.push(format!(
            "exempt {} {} ({})",
            finding.rule, finding.container, exempted.reason
        ));
    }
    for patch in &verdict.patches {
        lines.push(format!("patch {} {}", patch.path, patch.value));
    }
    lines.push(if verdict.allowed { "allowed" } else { "denied" }.to_string());
    lines
}

struct Case<'a> {
    name: &'a str,
    policy: &'a str,
    object: Value,
    operation: Operation,
    old_object: Option<Value>,
    labels: &'a [(&'a str, &'a str)],
    now: &'a str,
    expect: &'a [&'a str],
}

impl Default for Case<'_> {
    fn default() -> Self {
        Case {
            name: "",
            policy: "",
            object: Value::Null,
            operation: Operation::Create,
            old_object: None,
            labels: &[],
            now: "2026-01-01",
            expect: &[],
        }
    }
}

fn check(cases: Vec<Case<'_>>) {
    let catalog = demo_catalog();
    let knowledge = knowledge();
    for case in cases {
        let object = workload(&case.object).unwrap();
        let mut request = Request::create(object);
        request.operation = case.operation;
        request.old_object = case.old_object.as_ref().map(|old| workload(old).unwrap());
        request.namespace_labels = case
            .labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect::<BTreeMap<_, _>>();
        let verdict = evaluate(
            &request,
            &policy(case.policy),
            &catalog,
            &knowledge,
            at(case.now),
        );
        assert_eq!(render(&verdict), case.expect, "case {:?}", case.name);
    }
}

const REGISTRIES: &str =
    "registries:\n  allow: [127.0.0.1:5050/berth/**, registry.example.com/team/*]\n";

#[test]
fn registries_match_hosts_exactly_and_check_every_container_list() {
    let denied = |image: &str| {
        format!(
            "deny registries c0: {} is not in an allowed repository; use an image from \
             127.0.0.1:5050/berth/**, registry.example.com/team/*",
            ImageRef::parse(image).unwrap().name()
        )
    };
    let mut cases = vec![Case {
        name: "allowed",
        policy: REGISTRIES,
        object: deployment(&[
            "127.0.0.1:5050/berth/base:1",
            "registry.example.com/team/app:2",
        ]),
        expect: &["allowed"],
        ..Case::default()
    }];
    let look_alikes = [
        "registry.example.com.evil.io/team/app:1",
        "registry.example.com-x/team/app:1",
        "registry.example.com:443/team/app:1",
        "evil.io/registry.example.com/team/app:1",
        "registry.example.com/team/sub/app:1",
        "registry.example.com/teamx/app:1",
        "127.0.0.1:5051/berth/base:1",
        "python:3.12",
    ];
    let expectations: Vec<[String; 2]> = look_alikes
        .iter()
        .map(|image| [denied(image), "denied".to_string()])
        .collect();
    for (image, expect) in look_alikes.iter().zip(&expectations) {
        let expect: Vec<&str> = expect.iter().map(String::as_str).collect();
        cases.push(Case {
            name: image,
            policy: REGISTRIES,
            object: deployment(&[image]),
            expect: Box::leak(expect.into_boxed_slice()),
            ..Case::default()
        });
    }
    // Init and ephemeral containers are checked too (Toolforge's webhook skipped them).
    let pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "initContainers": [{"name": "init", "image": "evil.io/x"}],
        "containers": [{"name": "app", "image": "127.0.0.1:5050/berth/base"}],
        "ephemeralContainers": [{"name": "debug", "image": "busybox"}]}});
    cases.push(Case {
        name: "every list",
        policy: REGISTRIES,
        object: pod,
        expect: &[
            "deny registries init: evil.io/x is not in an allowed repository; use an image from 127.0.0.1:5050/berth/**, registry.example.com/team/*",
            "deny registries debug: docker.io/library/busybox is not in an allowed repository; use an image from 127.0.0.1:5050/berth/**, registry.example.com/team/*",
            "denied",
        ],
        ..Case::default()
    });
    cases.push(Case {
        name: "warn mode",
        policy: "registries:\n  mode: warn\n  allow: [127.0.0.1:5050/berth/**]\n",
        object: deployment(&["evil.io/x:1"]),
        expect: &[
            "warn registries c0: evil.io/x is not in an allowed repository; use an image from 127.0.0.1:5050/berth/**",
            "allowed",
        ],
        ..Case::default()
    });
    cases.push(Case {
        name: "unparsable image",
        policy: REGISTRIES,
        object: deployment(&["Registry.Example.com/UPPER:1"]),
        expect: &[
            "deny reference c0: not a valid image reference: invalid image reference \"Registry.Example.com/UPPER:1\": repository name must be lowercase",
            "denied",
        ],
        ..Case::default()
    });
    check(cases);
}

#[test]
fn catalog_only_accepts_any_spelling_of_a_catalog_repository() {
    let policy = "catalog: {}\n";
    check(vec![
        Case {
            name: "tag, digest, other tag",
            policy,
            object: deployment(&[
                "127.0.0.1:5050/berth/base:latest",
                "127.0.0.1:5050/berth/python312@sha256:0000000000000000000000000000000000000000000000000000000000000006",
                "127.0.0.1:5050/berth/node24:staging",
            ]),
            expect: &["allowed"],
            ..Case::default()
        },
        Case {
            name: "not in the catalog",
            policy,
            object: deployment(&["127.0.0.1:5050/berth/base-evil:1"]),
            expect: &[
                "deny catalog c0: 127.0.0.1:5050/berth/base-evil is not in the platform's catalog; use a catalog image (`berth catalog list`)",
                "denied",
            ],
            ..Case::default()
        },
    ]);
}

#[test]
fn lifecycle_warns_when_deprecated_and_denies_only_new_eol_images() {
    let policy = "lifecycle:\n";
    let python311 = "127.0.0.1:5050/berth/child:latest";
    let eol = "use python3.12 (python3.11 is end of life since 2027-01-01)";
    let deny_eol = format!("deny lifecycle c0: {eol}");
    let warn_kept = format!("warn lifecycle c0: {eol}; allowed because the image is unchanged");
    check(vec![
        Case {
            name: "stable before its dates",
            policy,
            object: deployment(&[python311]),
            now: "2026-06-30",
            expect: &["allowed"],
            ..Case::default()
        },
        Case {
            name: "deprecated",
            policy,
            object: deployment(&[python311]),
            now: "2026-07-01",
            expect: &[
                "warn lifecycle c0: python3.11 is deprecated since 2026-07-01 and reaches end of life on 2027-01-01; use python3.12",
                "allowed",
            ],
            ..Case::default()
        },
        Case {
            name: "eol create",
            policy,
            object: deployment(&[python311]),
            now: "2027-01-01",
            expect: &[&deny_eol, "denied"],
            ..Case::default()
        },
        Case {
            name: "eol update keeping the image (a scale), spelled differently",
            policy,
            object: deployment(&[python311]),
            operation: Operation::Update,
            old_object: Some(deployment(&["127.0.0.1:5050/berth/child"])),
            now: "2027-01-01",
            expect: &[&warn_kept, "allowed"],
            ..Case::default()
        },
        Case {
            name: "eol update changing the image to it",
            policy,
            object: deployment(&[python311]),
            operation: Operation::Update,
            old_object: Some(deployment(&["127.0.0.1:5050/berth/python312"])),
            now: "2027-01-01",
            expect: &[&deny_eol, "denied"],
            ..Case::default()
        },
        Case {
            name: "eol update adding a container with it",
            policy,
            object: deployment(&["127.0.0.1:5050/berth/python312", python311]),
            operation: Operation::Update,
            old_object: Some(deployment(&["127.0.0.1:5050/berth/python312"])),
            now: "2027-01-01",
            expect: &[
                "deny lifecycle c1: use python3.12 (python3.11 is end of life since 2027-01-01)",
                "denied",
            ],
            ..Case::default()
        },
        Case {
            name: "a pod made by a ReplicaSet of an admitted deployment",
            policy,
            object: json!({"kind": "Pod", "metadata": {"name": "web-1-x", "ownerReferences": [
                {"kind": "ReplicaSet", "name": "web-1", "controller": true}]},
                "spec": {"containers": [{"name": "c0", "image": python311}]}}),
            now: "2027-01-01",
            expect: &[&warn_kept, "allowed"],
            ..Case::default()
        },
        Case {
            name: "a delete is never checked",
            policy,
            object: deployment(&[python311]),
            operation: Operation::Delete,
            now: "2027-01-01",
            expect: &["allowed"],
            ..Case::default()
        },
        Case {
            name: "eol without replacement, warn mode",
            policy: "lifecycle: {mode: warn}\n",
            object: deployment(&["127.0.0.1:5050/berth/bullseye:latest"]),
            now: "2026-09-01",
            expect: &[
                "warn lifecycle c0: use bookworm (bullseye is end of life since 2026-08-31)",
                "allowed",
            ],
            ..Case::default()
        },
    ]);
}

#[test]
fn approved_base_follows_lineage_and_never_passes_the_unknown_silently() {
    let policy = "base:\n  approved: [bookworm]\n  unknown: deny\n";
    check(vec![
        Case {
            name: "the base itself, a child through an index, a grandchild",
            policy,
            object: deployment(&[
                "127.0.0.1:5050/berth/base",
                "127.0.0.1:5050/berth/child",
                "127.0.0.1:5050/berth/python312",
            ]),
            expect: &["allowed"],
            ..Case::default()
        },
        Case {
            name: "built on another base",
            policy,
            object: deployment(&["registry.example.com/app:1"]),
            expect: &[
                "deny base c0: registry.example.com/app:1 is built on registry.example.com/alpine:3, which is not an approved base; rebuild it FROM one of: bookworm",
                "denied",
            ],
            ..Case::default()
        },
        Case {
            name: "built on nothing known",
            policy,
            object: deployment(&["registry.example.com/scratch:1"]),
            expect: &[
                "deny base c0: registry.example.com/scratch:1 is not built on any image berth knows; rebuild it FROM one of: bookworm",
                "denied",
            ],
            ..Case::default()
        },
        Case {
            name: "every platform of an index must pass",
            policy,
            object: deployment(&["registry.example.com/multi:1"]),
            expect: &[
                "deny base c0: registry.example.com/multi:1 (platform image sha256:0000000000000000000000000000000000000000000000000000000000000007) is not built on any image berth knows; rebuild it FROM one of: bookworm",
                "denied",
            ],
            ..Case::default()
        },
        Case {
            name: "a tag berth never saw",
            policy,
            object: deployment(&["registry.example.com/new:1"]),
            expect: &[
                "deny base c0: berth does not know registry.example.com/new:1 yet, so cannot tell whether it is built on an approved base (bookworm)",
                "denied",
            ],
            ..Case::default()
        },
        Case {
            name: "an image whose layers were never read, warn on unknown",
            policy: "base:\n  approved: [bookworm]\n  unknown: warn\n",
            object: deployment(&["registry.example.com/ghost:1"]),
            expect: &[
                "warn base c0: berth has not read the layers of registry.example.com/ghost:1 (sha256:0000000000000000000000000000000000000000000000000000000000000005), so cannot tell whether it is built on an approved base (bookworm)",
                "allowed",
            ],
            ..Case::default()
        },
        Case {
            name: "unknown allowed",
            policy: "base:\n  approved: [bookworm]\n  unknown: allow\n",
            object: deployment(&["registry.example.com/new:1"]),
            expect: &["allowed"],
            ..Case::default()
        },
        Case {
            name: "approved by image reference",
            policy: "base:\n  approved: [registry.example.com/alpine:3]\n",
            object: deployment(&["registry.example.com/app:1"]),
            expect: &["allowed"],
            ..Case::default()
        },
        Case {
            name: "a label cannot vouch: the digest given decides",
            policy,
            object: deployment(&[
                "127.0.0.1:5050/berth/child@sha256:0000000000000000000000000000000000000000000000000000000000000003",
            ]),
            expect: &[
                "deny base c0: 127.0.0.1:5050/berth/child@sha256:0000000000000000000000000000000000000000000000000000000000000003 is built on registry.example.com/alpine:3, which is not an approved base; rebuild it FROM one of: bookworm",
                "denied",
            ],
            ..Case::default()
        },
    ]);
}

#[test]
fn digests_are_required_or_pinned_idempotently() {
    let pointer = "/spec/template/spec/containers/0/image";
    let pinned = "127.0.0.1:5050/berth/base:latest@sha256:0000000000000000000000000000000000000000000000000000000000000001";
    let patch = format!("patch {pointer} {pinned}");
    let pin = "digest:\n  action: pin\n";
    check(vec![
        Case {
            name: "require",
            policy: "digest: {}\n",
            object: deployment(&[
                "127.0.0.1:5050/berth/base:latest",
                "registry.example.com/new:1",
            ]),
            expect: &[
                &format!("deny digest c0: the image has no digest; use {pinned}"),
                "deny digest c1: the image has no digest; pin it as registry.example.com/new:1@sha256:…",
                "denied",
            ],
            ..Case::default()
        },
        Case {
            name: "pin",
            policy: pin,
            object: deployment(&["127.0.0.1:5050/berth/base:latest"]),
            expect: &[&patch, "allowed"],
            ..Case::default()
        },
        Case {
            name: "pinning a pinned image changes nothing",
            policy: pin,
            object: deployment(&[pinned]),
            expect: &["allowed"],
            ..Case::default()
        },
        Case {
            name: "pin an unknown tag: deny by default",
            policy: pin,
            object: deployment(&["registry.example.com/new:1"]),
            expect: &[
                "deny digest c0: berth does not know the digest of registry.example.com/new:1, so cannot pin it; give the reference with @sha256:…",
                "denied",
            ],
            ..Case::default()
        },
        Case {
            name: "pin in warn mode only says so",
            policy: "digest: {action: pin, mode: warn}\n",
            object: deployment(&["127.0.0.1:5050/berth/base:latest"]),
            expect: &[
                &format!("warn digest c0: would be pinned to {pinned}"),
                "allowed",
            ],
            ..Case::default()
        },
    ]);
    // Applying the patch and asking again yields no patch.
    let catalog = demo_catalog();
    let knowledge = knowledge();
    let policy = policy(pin);
    let mut object = deployment(&["127.0.0.1:5050/berth/base:latest"]);
    let first = evaluate(
        &Request::create(workload(&object).unwrap()),
        &policy,
        &catalog,
        &knowledge,
        at("2026-01-01"),
    );
    for patch in &first.patches {
        *object.pointer_mut(&patch.path).unwrap() = json!(patch.value);
    }
    let second = evaluate(
        &Request::create(workload(&object).unwrap()),
        &policy,
        &catalog,
        &knowledge,
        at("2026-01-01"),
    );
    assert_eq!(first.patches.len(), 1);
    assert_eq!(
        second,
        Verdict {
            allowed: true,
            ..Verdict::default()
        }
    );
}

#[test]
fn exceptions_waive_named_rules_in_matching_namespaces_until_they_expire() {
    let policy = "\
registries:
  allow: [127.0.0.1:5050/berth/**]
catalog: {}
exceptions:
  - namespaces: [tool-*]
    rules: [registries]
    reason: BYOC trial (T302863)
    expires: 2026-07-01
  - labels: {toolforge.org/byoc: \"true\"}
    reason: approved BYOC tool
";
    let evil = deployment(&["evil.io/x:1"]);
    let registries_denial = "deny registries c0: evil.io/x is not in an allowed repository; use an image from 127.0.0.1:5050/berth/**";
    let catalog_denial = "deny catalog c0: evil.io/x is not in the platform's catalog; use a catalog image (`berth catalog list`)";
    let mut other_namespace = evil.clone();
    other_namespace["metadata"]["namespace"] = json!("kube-system-x");
    check(vec![
        Case {
            name: "namespace glob, one rule waived, the other still applies",
            policy,
            object: evil.clone(),
            expect: &[
                catalog_denial,
                "exempt registries c0 (BYOC trial (T302863))",
                "denied",
            ],
            ..Case::default()
        },
        Case {
            name: "expired",
            policy,
            object: evil.clone(),
            now: "2026-07-01",
            expect: &[registries_denial, catalog_denial, "denied"],
            ..Case::default()
        },
        Case {
            name: "another namespace",
            policy,
            object: other_namespace.clone(),
            expect: &[registries_denial, catalog_denial, "denied"],
            ..Case::default()
        },
        Case {
            name: "by namespace label, all rules",
            policy,
            object: other_namespace.clone(),
            labels: &[("toolforge.org/byoc", "true")],
            expect: &[
                "exempt registries c0 (approved BYOC tool)",
                "exempt catalog c0 (approved BYOC tool)",
                "allowed",
            ],
            ..Case::default()
        },
        Case {
            name: "label with another value",
            policy,
            object: other_namespace,
            labels: &[("toolforge.org/byoc", "false")],
            expect: &[registries_denial, catalog_denial, "denied"],
            ..Case::default()
        },
    ]);
}

/// Loads `text` and renders its diagnostics as `line:column: field: message`.
fn diagnostics(text: &str) -> Vec<String> {
    load("p.yaml", text)
        .diagnostics
        .iter()
        .map(|d| format!("{}:{}: {}: {}", d.line, d.column, d.field, d.message))
        .collect()
}

#[test]
fn policy_files_report_every_problem_with_its_place() {
    let text = "\
registries:
  mode: audit
  allow: [registry.example.com, '*.example.com/**', ok.example.com/**]
lifecycel: {}
base:
  approved: []
  unknown: maybe
digest:
  action: pin-all
exceptions:
  - namespaces: [a]
    rules: [registry]
    expires: 2027-13-01
  - reason: everywhere
";
    assert_eq!(
        diagnostics(text),
        [
            "2:9: registries.mode: unknown mode \"audit\"; expected enforce or warn",
            "3:11: registries.allow[0]: \"registry.example.com\" names no repository; write `registry.example.com/**` to allow every repository of that registry",
            "3:33: registries.allow[1]: \"*.example.com/**\": the registry host must be written out in full (no `*`): hosts are compared exactly",
            "4:1: lifecycel: unknown field `lifecycel`; did you mean `lifecycle`?",
            "6:13: base.approved: an empty list would deny every image; name the approved bases",
            "7:12: base.unknown: unknown handling \"maybe\"; expected deny, warn or allow",
            "9:11: digest.action: unknown action \"pin-all\"; expected require or pin",
            "11:5: exceptions[0].reason: missing field: say why the exception exists (it is shown with every waived finding)",
            "12:13: exceptions[0].rules[0]: unknown rule \"registry\"; expected one of registries, catalog, lifecycle, base, digest, provenance, signatures",
            "13:14: exceptions[0].expires: \"2027-13-01\" is not a date (YYYY-MM-DD)",
            "14:5: exceptions[1]: an exception needs `namespaces` or `labels`: it would otherwise waive the rules everywhere",
        ]
    );
    assert_eq!(
        diagnostics("exceptions: []\n"),
        [
            "1:1: : the policy has no rule; expected at least one of registries, catalog, lifecycle, base, digest, provenance, signatures"
        ]
    );
    assert_eq!(
        diagnostics("registries: [\n"),
        ["2:1: : invalid YAML: while parsing a node, did not find expected node content"]
    );
}

#[test]
fn approved_bases_are_checked_against_the_catalog() {
    let policy = policy("base:\n  approved: [bookworm, bookwrm, 127.0.0.1:5050/berth/base:1]\n");
    let found: Vec<String> = read::check_catalog(&policy, &demo_catalog())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "policy.yaml:2:24: error: base.approved[1]: \"bookwrm\" names no catalog entry; did you mean bookworm?"
        ]
    );
}

#[test]
fn the_example_policy_is_valid_and_decides() {
    let policy = policy(EXAMPLE_POLICY);
    assert!(read::check_catalog(&policy, &demo_catalog()).is_empty());
    let verdict = evaluate_image(
        "127.0.0.1:5050/berth/child:latest",
        &policy,
        &demo_catalog(),
        &knowledge(),
        at("2026-08-01"),
    );
    assert!(verdict.allowed, "{verdict:#?}");
    assert_eq!(verdict.warnings.len(), 2, "{verdict:#?}");
}

#[test]
fn the_schema_knows_exactly_the_fields_the_reader_accepts() {
    let schema: Value = serde_json::from_str(SCHEMA_JSON).unwrap();
    let keys = |value: &Value| -> Vec<String> {
        let mut keys: Vec<String> = value
            .as_object()
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    };
    let sorted = |fields: &[&str]| -> Vec<String> {
        let mut fields: Vec<String> = fields.iter().map(ToString::to_string).collect();
        fields.sort();
        fields
    };
    let properties = &schema["properties"];
    assert_eq!(keys(properties), sorted(read::FILE_FIELDS));
    assert_eq!(
        keys(&properties["registries"]["properties"]),
        sorted(read::REGISTRIES_FIELDS)
    );
    assert_eq!(
        keys(&schema["$defs"]["modeOnly"]["properties"]),
        sorted(read::MODE_ONLY_FIELDS)
    );
    assert_eq!(
        keys(&properties["base"]["properties"]),
        sorted(read::BASE_FIELDS)
    );
    assert_eq!(
        keys(&properties["digest"]["properties"]),
        sorted(read::DIGEST_FIELDS)
    );
    assert_eq!(
        keys(&properties["provenance"]["properties"]),
        sorted(read::PROVENANCE_FIELDS)
    );
    assert_eq!(
        keys(&properties["signatures"]["properties"]),
        sorted(read::SIGNATURES_FIELDS)
    );
    assert_eq!(
        keys(&properties["signatures"]["properties"]["keys"]["items"]["properties"]),
        sorted(read::KEY_FIELDS)
    );
    assert_eq!(
        keys(&properties["exceptions"]["items"]["properties"]),
        sorted(read::EXCEPTION_FIELDS)
    );
}

#[test]
fn only_unknown_tags_of_allowed_registries_are_worth_resolving() {
    let known = knowledge();
    let images = [
        "127.0.0.1:5050/berth/base:latest", // known to the store
        "127.0.0.1:5050/berth/fresh:1",     // unknown, allowed
        "127.0.0.1:5050/berth/fresh:1",     // asked twice, resolved once
        "127.0.0.1:5050/berth/pinned@sha256:0000000000000000000000000000000000000000000000000000000000000001",
        "127.0.0.1:5050.evil.io/berth/fresh:1", // a look-alike host: denied, never looked up
        "docker.io/library/python:3",           // not allowed
        "not a reference",
    ];
    let names = |policy_text: &str, configured: &[&str]| -> Vec<String> {
        let configured = configured.iter().map(ToString::to_string).collect();
        tags_to_resolve(images, &policy(policy_text), &known, &configured)
            .iter()
            .map(ImageRef::canonical)
            .collect()
    };
    let allow = "registries: {allow: [127.0.0.1:5050/berth/**]}\n";
    let fresh = vec!["127.0.0.1:5050/berth/fresh:1".to_string()];
    assert_eq!(
        names(&format!("{allow}digest: {{action: pin}}\n"), &[]),
        fresh
    );
    assert_eq!(
        names(
            &format!("{allow}base: {{approved: [127.0.0.1:5050/berth/base:latest]}}\n"),
            &[]
        ),
        fresh
    );
    // Requiring a digest needs no lookup: the answer is a denial either way.
    assert!(names(&format!("{allow}digest: {{action: require}}\n"), &[]).is_empty());
    // Without a registries rule, only the registries configured for resolution are asked.
    assert!(names("digest: {action: pin}\n", &[]).is_empty());
    assert_eq!(
        names("digest: {action: pin}\n", &["docker.io"]),
        vec!["docker.io/library/python:3".to_string()]
    );
}

#[test]
fn an_overlay_adds_tags_and_keeps_the_lineage_beneath() {
    let under = std::sync::Arc::new(knowledge());
    let mut overlay = Knowledge::overlay(std::sync::Arc::clone(&under));
    let fresh = ImageRef::parse("127.0.0.1:5050/berth/fresh:1").unwrap();
    assert_eq!(overlay.tag_digest(&fresh), None);
    overlay.add_tag(&fresh, digest(1));
    assert_eq!(overlay.tag_digest(&fresh), Some(digest(1)));
    assert_eq!(under.tag_digest(&fresh), None, "the snapshot is untouched");
    let child = ImageRef::parse("127.0.0.1:5050/berth/child:latest").unwrap();
    assert_eq!(overlay.digest_of(&child), Some(digest(20)));
    assert_eq!(overlay.platform_images(&digest(20)), vec![digest(2)]);
    assert_eq!(
        overlay.name_of(&digest(1)).as_deref(),
        Some("127.0.0.1:5050/berth/base:latest")
    );
    // A freshly resolved tag pins; the base rule still asks the lineage beneath.
    let verdict = evaluate(
        &Request::create(workload(&deployment(&["127.0.0.1:5050/berth/fresh:1"])).unwrap()),
        &policy("digest: {action: pin}\nbase: {approved: [127.0.0.1:5050/berth/base:latest]}\n"),
        &demo_catalog(),
        &overlay,
        at("2026-08-01"),
    );
    assert_eq!(
        render(&verdict),
        vec![
            format!(
                "patch /spec/template/spec/containers/0/image 127.0.0.1:5050/berth/fresh:1@{}",
                digest(1)
            ),
            "allowed".to_string()
        ]
    );
}

/// issue 15, item 11: a mistyped container field hid the container from every rule, and a
/// namespace exception must not let it through either.
#[test]
fn a_pod_spec_berth_cannot_read_is_denied_even_under_an_exception() {
    let typo = json!({
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "tool-a"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "c0", "image": "127.0.0.1:5050/berth/base:latest"},
            {"name": "c1", "imgae": "evil.io/x"}
        ]}}}
    });
    let expect = [
        "deny spec c1: /spec/template/spec/containers/1/imgae: unknown field `imgae` in a \
         container; did you mean `image`?",
        "deny spec c1: /spec/template/spec/containers/1: the container has no `image` \
         (Kubernetes requires one)",
        "denied",
    ];
    check(vec![
        Case {
            name: "no rule but the catalog's",
            policy: "catalog: {}\n",
            object: typo.clone(),
            expect: &expect,
            ..Case::default()
        },
        Case {
            name: "every rule waived for the namespace",
            policy: "registries:\n  allow: [127.0.0.1:5050/berth/**]\nexceptions:\n  - namespaces: [tool-*]\n    reason: trial\n",
            object: typo,
            expect: &expect,
            ..Case::default()
        },
    ]);
    let finding = Finding {
        container: "c1".to_string(),
        list: Some(crate::workload::ContainerList::Regular),
        image: String::new(),
        rule: RuleKind::Spec,
        message: "m".to_string(),
        pointer: "/p".to_string(),
    };
    assert_eq!(finding.to_string(), "container \"c1\": spec: m");
}

/// issue 15, item 19: pins patched the pod template of Deployments, so GitOps tools saw the
/// live object differ from Git forever. `on: pods` pins Pods only and leaves controllers alone.
#[test]
fn pins_on_pods_leave_controllers_as_written() {
    let pinned = "127.0.0.1:5050/berth/base:latest@sha256:0000000000000000000000000000000000000000000000000000000000000001";
    let pods_only = "digest: {action: pin, on: pods}\n";
    let pod = json!({
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "tool-a"},
        "spec": {"containers": [{"name": "c0", "image": "127.0.0.1:5050/berth/base:latest"}]}
    });
    check(vec![
        Case {
            name: "a Deployment is untouched, even with a tag berth does not know",
            policy: pods_only,
            object: deployment(&[
                "127.0.0.1:5050/berth/base:latest",
                "registry.example.com/new:1",
            ]),
            expect: &["allowed"],
            ..Case::default()
        },
        Case {
            name: "its Pod is pinned",
            policy: pods_only,
            object: pod,
            expect: &[
                &format!("patch /spec/containers/0/image {pinned}"),
                "allowed",
            ],
            ..Case::default()
        },
        Case {
            name: "on: all (the default) pins the Deployment",
            policy: "digest: {action: pin, on: all}\n",
            object: deployment(&["127.0.0.1:5050/berth/base:latest"]),
            expect: &[
                &format!("patch /spec/template/spec/containers/0/image {pinned}"),
                "allowed",
            ],
            ..Case::default()
        },
    ]);
    assert_eq!(
        diagnostics("digest: {action: require, on: pods}\n"),
        ["1:27: digest.on: `on` applies to `action: pin` only (require judges every kind)"]
    );
    assert_eq!(
        diagnostics("digest: {action: pin, on: deployments}\n"),
        ["1:27: digest.on: unknown value \"deployments\"; expected all or pods"]
    );
}

#[test]
fn changes_applied_to_a_snapshot_give_the_knowledge_built_whole() {
    let layer = |n: u32| digest(1000 + n);
    let tag = |text: &str| ImageRef::parse(text).unwrap();
    let previous = knowledge();
    // child:latest moves off index 20 (now untagged) to a new image 8 built on image 6;
    // ghost:1 goes; a new tag names index 21, which was known already.
    let changes = KnowledgeChanges {
        generation: 9,
        tags: vec![
            (tag("127.0.0.1:5050/berth/child:latest"), Some(digest(8))),
            (tag("registry.example.com/ghost:1"), None),
            (tag("registry.example.com/multi:stable"), Some(digest(21))),
        ],
        indexes: vec![(digest(21), vec![digest(2), digest(7)])],
        images: vec![(digest(8), vec![layer(1), layer(2), layer(5), layer(8)])],
        provenance: vec![(digest(8), record(Some(Tests::Passed)))],
        signatures: vec![(digest(8), vec![signed(SignedKind::Signature, "ab12")])],
    };
    let next = previous.clone().apply(&changes);

    let lineage = LineageIndex::build([
        (digest(1), vec![layer(1)]),
        (digest(2), vec![layer(1), layer(2)]),
        (digest(6), vec![layer(1), layer(2), layer(5)]),
        (digest(4), vec![layer(3)]),
        (digest(3), vec![layer(3), layer(4)]),
        (digest(7), vec![layer(9)]),
        (digest(8), vec![layer(1), layer(2), layer(5), layer(8)]),
    ]);
    let mut whole = Knowledge::new(lineage);
    whole.add_tag(&tag("127.0.0.1:5050/berth/base:latest"), digest(1));
    whole.add_tag(&tag("127.0.0.1:5050/berth/child:latest"), digest(8));
    whole.add_tag(&tag("127.0.0.1:5050/berth/python312:latest"), digest(6));
    whole.add_tag(&tag("registry.example.com/alpine:3"), digest(4));
    whole.add_tag(&tag("registry.example.com/app:1"), digest(3));
    whole.add_tag(&tag("registry.example.com/scratch:1"), digest(7));
    whole.add_tag(&tag("registry.example.com/multi:1"), digest(21));
    whole.add_tag(&tag("registry.example.com/multi:stable"), digest(21));
    whole.add_index(digest(21), vec![digest(2), digest(7)]);
    assert_ne!(
        next, whole,
        "the provenance record is part of the knowledge"
    );
    whole.add_provenance(&digest(8), record(Some(Tests::Passed)));
    assert_ne!(next, whole, "verified signatures are part of the knowledge");
    whole.set_signatures(&digest(8), vec![signed(SignedKind::Signature, "ab12")]);
    assert_eq!(next, whole);
    // A digest whose signatures went is the same as one that never had any.
    let unsigned = next.clone().apply(&KnowledgeChanges {
        generation: 10,
        signatures: vec![(digest(8), Vec::new())],
        ..KnowledgeChanges::default()
    });
    assert!(unsigned.signatures(&digest(8)).is_empty());
    assert_eq!(next.lineage().base_of(&digest(8)).unwrap().base, digest(6));
    // Applying again, or nothing, changes nothing.
    assert_eq!(next.clone().apply(&changes), whole);
    assert_eq!(next.apply(&KnowledgeChanges::default()), whole);
}

#[test]
fn the_provenance_rule_admits_the_tested_digest_and_denies_the_rest() {
    let catalog = demo_catalog();
    let mut knowledge = knowledge();
    // app:1 (image 3) was built and tested; scratch:1 (image 7) failed its tests; alpine:3
    // (image 4) has a record without tests or source; ghost:1 (image 5) has none.
    knowledge.add_provenance(&digest(3), record(Some(Tests::Passed)));
    knowledge.add_provenance(&digest(7), record(Some(Tests::Failed)));
    let mut bare = record(None);
    bare.source = None;
    knowledge.add_provenance(&digest(4), bare);
    let rule = policy("provenance: {require: [tested, source]}\n");
    let now = at("2026-08-01");
    let decide = |image: &str| render(&evaluate_image(image, &rule, &catalog, &knowledge, now));
    assert_eq!(decide("registry.example.com/app:1"), ["allowed"]);
    // By digest too: what runs is what was tested.
    assert_eq!(
        decide(&format!("registry.example.com/app@{}", digest(3))),
        ["allowed"]
    );
    let failed = decide("registry.example.com/scratch:1");
    assert!(
        failed[0].starts_with("deny provenance : registry.example.com/scratch:1 (sha256:")
            && failed[0].contains("its tests failed (recorded by ci-bot at 2026-07-30 10:00 UTC, https://ci.example/runs/7)"),
        "{failed:#?}"
    );
    let bare = decide("registry.example.com/alpine:3");
    assert!(
        bare[0].contains("its record has no test result; its record names no source repository"),
        "{bare:#?}"
    );
    let none = decide("registry.example.com/ghost:1");
    assert!(
        none[0].contains("has no provenance record (the policy requires: tested, source)")
            && none[0].contains(&format!("berth provenance record {}", digest(5))),
        "{none:#?}"
    );
    // A tag berth does not know: the unknown handling, deny by default, warn when asked.
    let unknown = decide("registry.example.com/nowhere:1");
    assert!(unknown[0].starts_with("deny provenance"), "{unknown:#?}");
    let lenient = policy("provenance: {unknown: warn}\n");
    let verdict = evaluate_image(
        "registry.example.com/nowhere:1",
        &lenient,
        &catalog,
        &knowledge,
        now,
    );
    assert!(
        verdict.allowed && verdict.warnings.len() == 1,
        "{verdict:#?}"
    );
    // Only tests by default: a record without a source passes.
    let tested_only = policy("provenance: {}\n");
    let mut sourceless = knowledge.clone();
    let mut without_source = record(Some(Tests::Passed));
    without_source.source = None;
    sourceless.add_provenance(&digest(6), without_source);
    assert!(
        evaluate_image(
            "127.0.0.1:5050/berth/python312:latest",
            &tested_only,
            &catalog,
            &sourceless,
            now
        )
        .allowed
    );
    // warn mode allows with the finding as a warning.
    let warn = policy("provenance: {mode: warn}\n");
    let verdict = evaluate_image(
        "registry.example.com/ghost:1",
        &warn,
        &catalog,
        &knowledge,
        now,
    );
    assert!(
        verdict.allowed && verdict.warnings.len() == 1,
        "{verdict:#?}"
    );
}

#[test]
fn provenance_rule_mistakes_are_named() {
    let loaded = load(
        "policy.yaml",
        "provenance:\n  require: [tested, signed]\n  from: [berth, attestation]\n",
    );
    let text: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    let text = text.join("\n");
    assert!(loaded.policy.is_none());
    assert!(
        text.contains("policy.yaml:2:21: error: provenance.require[1]: unknown requirement \"signed\"; expected tested or source"),
        "{text}"
    );
    assert!(
        text.contains("policy.yaml:2:3: error: provenance.from: attestations count only when signed by a trusted key: add a `signatures` rule"),
        "{text}"
    );
    let exception = load(
        "policy.yaml",
        "provenance: {}\nexceptions:\n  - {namespaces: [x], rules: [provenanse], reason: r}\n",
    );
    let text: Vec<String> = exception
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        text.join("\n").contains("unknown rule \"provenanse\"; expected one of registries, catalog, lifecycle, base, digest, provenance, signatures"),
        "{text:?}"
    );
}

#[test]
fn the_signatures_rule_admits_digests_signed_by_a_key_trusted_for_them() {
    let catalog = demo_catalog();
    let mut knowledge = knowledge();
    // app:1 (image 3) is signed by ci; alpine:3 (image 4) by tool-a's key only; scratch:1
    // (image 7) carries only an attestation by ci (no signature); ghost:1 (image 5) nothing.
    knowledge.set_signatures(&digest(3), vec![signed(SignedKind::Signature, "ci")]);
    knowledge.set_signatures(&digest(4), vec![signed(SignedKind::Signature, "tool-a")]);
    knowledge.set_signatures(&digest(7), vec![signed(SignedKind::Attestation, "ci")]);
    let rule = keyed_policy(
        "signatures:\n  keys:\n    - {name: ci, pem: x}\n    - {name: tool-a, file: a.pub, namespaces: [tool-a], images: [registry.example.com/alpine]}\n",
    );
    let now = at("2026-08-01");
    let decide = |image: &str| render(&evaluate_image(image, &rule, &catalog, &knowledge, now));
    assert_eq!(decide("registry.example.com/app:1"), ["allowed"]);
    assert_eq!(
        decide(&format!("registry.example.com/app@{}", digest(3))),
        ["allowed"]
    );
    let none = decide("registry.example.com/ghost:1");
    assert!(
        none[0].starts_with("deny signatures : registry.example.com/ghost:1 (sha256:")
            && none[0].contains("carries no signature by a trusted key (ci)")
            && none[0].contains("cosign sign --key KEY registry.example.com/ghost@sha256:"),
        "{none:#?}"
    );
    // An attestation is not a signature of the image.
    assert!(decide("registry.example.com/scratch:1")[0].starts_with("deny signatures"));
    // tool-a's key counts in namespace tool-a only, and for its own repository only.
    let outside = decide("registry.example.com/alpine:3");
    assert!(
        outside[0].contains("(it is signed by key-tool-a, which may not vouch for it)"),
        "{outside:#?}"
    );
    let in_namespace = |image: &str, namespace: &str| {
        let mut object = deployment(&[image]);
        object["metadata"]["namespace"] = json!(namespace);
        let request = Request::create(workload(&object).unwrap());
        render(&evaluate(&request, &rule, &catalog, &knowledge, now))
    };
    assert_eq!(
        in_namespace("registry.example.com/alpine:3", "tool-a"),
        ["allowed"]
    );
    assert!(
        in_namespace("registry.example.com/alpine:3", "tool-b")[0]
            .contains("which may not vouch for it in namespace tool-b")
    );
    // A key whose file was never read (no fingerprint) vouches for nothing.
    let unread = policy("signatures: {keys: [{name: ci, pem: x}]}\n");
    assert!(
        !evaluate_image(
            "registry.example.com/app:1",
            &unread,
            &catalog,
            &knowledge,
            now
        )
        .allowed
    );
    // An unknown tag: deny by default; warn mode warns.
    assert!(decide("registry.example.com/nowhere:1")[0].starts_with("deny signatures"));
    let warn = keyed_policy("signatures: {mode: warn, keys: [{name: ci, pem: x}]}\n");
    let verdict = evaluate_image(
        "registry.example.com/ghost:1",
        &warn,
        &catalog,
        &knowledge,
        now,
    );
    assert!(
        verdict.allowed && verdict.warnings.len() == 1,
        "{verdict:#?}"
    );
}

#[test]
fn signed_attestations_count_as_provenance_when_the_policy_says_so() {
    let catalog = demo_catalog();
    let mut knowledge = knowledge();
    let tested = Signed {
        predicate_type: Some("https://in-toto.io/attestation/test-result/v0.1".to_string()),
        tests: Some(Tests::Passed),
        ..signed(SignedKind::Attestation, "ci")
    };
    let built = Signed {
        predicate_type: Some("https://slsa.dev/provenance/v1".to_string()),
        source_repository: Some("https://git.example/app".to_string()),
        ..signed(SignedKind::Attestation, "ci")
    };
    let failed = Signed {
        tests: Some(Tests::Failed),
        ..tested.clone()
    };
    // app:1: tested and built, attested by ci; alpine:3: tested, attested by an untrusted
    // key; scratch:1: its tests failed; ghost:1: a berth record only.
    knowledge.set_signatures(&digest(3), vec![tested.clone(), built]);
    knowledge.set_signatures(
        &digest(4),
        vec![Signed {
            key: "other".to_string(),
            ..tested.clone()
        }],
    );
    knowledge.set_signatures(&digest(7), vec![failed]);
    knowledge.add_provenance(&digest(5), record(Some(Tests::Passed)));
    let both = keyed_policy(
        "signatures: {mode: warn, keys: [{name: ci, pem: x}]}\nprovenance: {require: [tested, source], from: [berth, attestation]}\n",
    );
    let now = at("2026-08-01");
    let provenance_of = |policy: &Policy, image: &str| -> Vec<String> {
        render(&evaluate_image(image, policy, &catalog, &knowledge, now))
            .into_iter()
            .filter(|line| !line.contains("signatures"))
            .collect()
    };
    assert_eq!(
        provenance_of(&both, "registry.example.com/app:1"),
        ["allowed"]
    );
    assert_eq!(
        provenance_of(&both, "registry.example.com/ghost:1"),
        ["allowed"]
    );
    let untrusted = provenance_of(&both, "registry.example.com/alpine:3");
    assert!(
        untrusted[0]
            .contains("has no provenance record and no attestation signed by a trusted key")
            && untrusted[0].contains("cosign attest --key KEY"),
        "{untrusted:#?}"
    );
    let failing = provenance_of(&both, "registry.example.com/scratch:1");
    assert!(
        failing[0].contains("its signed test-result attestation does not say PASSED")
            && failing[0].contains("no signed provenance names its source repository"),
        "{failing:#?}"
    );
    // Attestations alone: berth's records do not count.
    let attested_only = keyed_policy(
        "signatures: {mode: warn, keys: [{name: ci, pem: x}]}\nprovenance: {from: [attestation]}\n",
    );
    assert_eq!(
        provenance_of(&attested_only, "registry.example.com/app:1"),
        ["allowed"]
    );
    assert!(
        provenance_of(&attested_only, "registry.example.com/ghost:1")[0]
            .contains("has no attestation signed by a trusted key")
    );
}

#[test]
fn signatures_rule_mistakes_are_named() {
    let text = "signatures:\n  keys:\n    - {name: ci}\n    - {name: ci, pem: x, file: y}\n    - {pem: x, namespace: [a]}\n    - {name: z, file: z.pub, images: [registry.example.com]}\n";
    let loaded = load("policy.yaml", text);
    assert!(loaded.policy.is_none());
    let text: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    let text = text.join("\n");
    for expected in [
        "policy.yaml:3:7: error: signatures.keys[0]: missing field: `file` (a PEM public key, relative to this file) or `pem`",
        "policy.yaml:4:7: error: signatures.keys[1]: a key has `pem` or `file`, not both",
        "signatures.keys[2].namespace: unknown field `namespace`; did you mean `namespaces`?",
        "signatures.keys[2].name: missing field",
        "signatures.keys[3].images[0]: \"registry.example.com\" names no repository",
    ] {
        assert!(text.contains(expected), "{expected}\n in\n{text}");
    }
    let empty = load("policy.yaml", "signatures: {keys: []}\n");
    let text: Vec<String> = empty.diagnostics.iter().map(ToString::to_string).collect();
    assert!(
        text.join("\n").contains("an empty list would trust nobody"),
        "{text:?}"
    );
    let twice = load(
        "policy.yaml",
        "signatures: {keys: [{name: a, pem: x}, {name: a, pem: y}]}\n",
    );
    let text: Vec<String> = twice.diagnostics.iter().map(ToString::to_string).collect();
    assert!(
        text.join("\n").contains("a second key named \"a\""),
        "{text:?}"
    );
}
