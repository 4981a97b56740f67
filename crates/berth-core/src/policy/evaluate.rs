//! The decision: a request (workload, namespace, operation, the old object for an UPDATE)
//! against a policy, the catalog and registry knowledge at `now`, giving a [`Verdict`] whose
//! denials and warnings name the container, the image, the rule and what to do.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    BaseName, BaseRule, DigestAction, DigestRule, Exception, KeySpec, Knowledge, Mode, PinOn,
    Policy, ProvenanceFrom, ProvenanceRule, Requirement, RuleKind, SignaturesRule, Unknown,
    pattern::glob_match,
};
use crate::catalog::{Catalog, State};
use crate::lineage::{BaseCheck, UnknownBase};
use crate::provenance::{Signed, SignedKind, Tests};
use crate::reference::{Digest, ImageRef};
use crate::workload::{ContainerImage, ContainerList, Workload, WorkloadKind};

/// The admission operation; `berth check` asks as a CREATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// Kubernetes' spelling (`CREATE`).
    pub fn parse(text: &str) -> Option<Operation> {
        match text {
            "CREATE" => Some(Operation::Create),
            "UPDATE" => Some(Operation::Update),
            "DELETE" => Some(Operation::Delete),
            "CONNECT" => Some(Operation::Connect),
            _ => None,
        }
    }
}

/// What is asked: a workload entering (or changing in) a namespace.
#[derive(Debug, Clone)]
pub struct Request {
    pub operation: Operation,
    /// The namespace the object goes to (an admission request says; a manifest may).
    pub namespace: Option<String>,
    /// The namespace's labels, when the caller knows them (exceptions may select by label).
    pub namespace_labels: BTreeMap<String, String>,
    pub object: Workload,
    /// The object before an UPDATE: a container that keeps its image is not "new".
    pub old_object: Option<Workload>,
}

impl Request {
    /// A CREATE of `object` in its own namespace, as `berth check` asks.
    pub fn create(object: Workload) -> Request {
        Request {
            operation: Operation::Create,
            namespace: object.namespace.clone(),
            namespace_labels: BTreeMap::new(),
            object,
            old_object: None,
        }
    }
}

/// One problem with one container's image (or, for rule `spec`, with the pod spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub container: String,
    /// The container's list; absent for a `spec` finding about the pod spec itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<ContainerList>,
    /// The image as written; empty for a `spec` finding (a container without an image).
    pub image: String,
    pub rule: RuleKind,
    /// What is wrong and what to do, for a person.
    pub message: String,
    /// JSON pointer of the container's `image` field in the object (empty for a bare image); for
    /// a `spec` finding, of the field at fault.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pointer: String,
}

impl fmt::Display for Finding {
    /// `container "app" (image): rule: message`; without an image `container "app": rule:
    /// message`; about no container at all `rule: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.container.is_empty(), self.image.is_empty()) {
            (true, true) => {}
            (false, true) => write!(f, "container {:?}: ", self.container)?,
            _ => write!(f, "container {:?} ({}): ", self.container, self.image)?,
        }
        write!(f, "{}: {}", self.rule, self.message)
    }
}

/// A finding an exception waived, kept so an audit shows what was let through and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exempted {
    pub finding: Finding,
    pub reason: String,
    /// Where the exception is written (`policy.yaml:30:5`).
    pub exception: String,
}

/// A JSONPatch operation (RFC 6902): only `replace` of an image is ever produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Patch {
    pub op: &'static str,
    pub path: String,
    pub value: String,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Verdict {
    pub allowed: bool,
    pub denials: Vec<Finding>,
    pub warnings: Vec<Finding>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exempted: Vec<Exempted>,
    /// Rewrites a mutating webhook applies (pins); `berth check` reports them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,
}

/// Decides `request` under `policy`. Pure: the same inputs give the same verdict.
pub fn evaluate(
    request: &Request,
    policy: &Policy,
    catalog: &Catalog,
    knowledge: &Knowledge,
    now: DateTime<Utc>,
) -> Verdict {
    let mut run = Run {
        policy,
        catalog,
        knowledge,
        now,
        exceptions: active_exceptions(request, policy, now),
        verdict: Verdict::default(),
    };
    if matches!(request.operation, Operation::Create | Operation::Update) {
        let old_images = request
            .old_object
            .as_ref()
            .map(Workload::images_by_container)
            .unwrap_or_default();
        // What berth could not read is denied first and cannot be waived: an exception for a
        // namespace must not let a typo hide a container from every rule.
        for unreadable in &request.object.unreadable {
            run.verdict.denials.push(Finding {
                container: unreadable.container.clone(),
                list: unreadable.list,
                image: String::new(),
                rule: RuleKind::Spec,
                message: unreadable.message.clone(),
                pointer: unreadable.pointer.clone(),
            });
        }
        for container in &request.object.containers {
            let old = old_images
                .get(&(container.list, container.container.as_str()))
                .copied();
            run.container(request, container, old);
        }
    }
    run.verdict.allowed = run.verdict.denials.is_empty();
    run.verdict
}

/// Decides one image reference as if a new Pod ran it (`berth check --image`).
pub fn evaluate_image(
    image: &str,
    policy: &Policy,
    catalog: &Catalog,
    knowledge: &Knowledge,
    now: DateTime<Utc>,
) -> Verdict {
    let object = Workload {
        kind: WorkloadKind::Pod,
        name: None,
        namespace: None,
        containers: vec![ContainerImage {
            container: String::new(),
            list: ContainerList::Regular,
            image: image.to_string(),
            pointer: String::new(),
        }],
        unreadable: Vec::new(),
        controlled: false,
    };
    evaluate(&Request::create(object), policy, catalog, knowledge, now)
}

/// Every reference whose registry knowledge [`evaluate`] may read when deciding `images`: the
/// images themselves (those that parse) and, with a base rule, the approved bases (an image
/// named in the rule, or every repository of a catalog entry at each of its channels). A
/// store answers a point lookup for these (berth-store's `Store::knowledge_for`) instead of
/// loading everything. Sorted, without repeats.
pub fn references_read<'i>(
    images: impl IntoIterator<Item = &'i str>,
    policy: &Policy,
    catalog: &Catalog,
) -> Vec<ImageRef> {
    let mut references: Vec<ImageRef> = images
        .into_iter()
        .filter_map(|text| ImageRef::parse(text).ok())
        .collect();
    if let Some(rule) = &policy.base {
        references.extend(approved_references(rule, catalog));
    }
    references.sort_by_key(ImageRef::canonical);
    references.dedup_by_key(|image| image.canonical());
    references
}

/// The references that name the rule's approved bases.
fn approved_references(rule: &BaseRule, catalog: &Catalog) -> Vec<ImageRef> {
    let mut references = Vec::new();
    for name in &rule.approved {
        match name {
            BaseName::Image(image) => references.push(image.clone()),
            BaseName::Catalog(name) => {
                if let Some(entry) = catalog.get(name) {
                    for (_, repository) in entry.images() {
                        for channel in &entry.channels {
                            references.push(repository.at(channel));
                        }
                    }
                }
            }
        }
    }
    references
}

/// The tag references among `images` worth resolving at a registry before [`evaluate`]: those
/// the pin rule (`digest: {action: pin}`) or the base rule would look up, that carry no digest
/// and that `knowledge` does not know. Only images from registries the platform configured are
/// named: with a `registries` rule, the images it allows (a denied image is never looked up);
/// without one, images whose registry is in `configured`. Sorted, without repeats.
pub fn tags_to_resolve<'i>(
    images: impl IntoIterator<Item = &'i str>,
    policy: &Policy,
    knowledge: &Knowledge,
    configured: &BTreeSet<String>,
) -> Vec<ImageRef> {
    let pins = policy
        .digest
        .is_some_and(|rule| rule.action == DigestAction::Pin);
    if !pins && policy.base.is_none() {
        return Vec::new();
    }
    let mut wanted: Vec<ImageRef> = images
        .into_iter()
        .filter_map(|text| ImageRef::parse(text).ok())
        .filter(|image| image.digest().is_none() && image.tag().is_some())
        .filter(|image| knowledge.tag_digest(image).is_none())
        .filter(|image| match &policy.registries {
            Some(rule) => rule.allow.iter().any(|pattern| pattern.matches(image)),
            None => configured.contains(image.registry()),
        })
        .collect();
    wanted.sort_by_key(ImageRef::canonical);
    wanted.dedup_by_key(|image| image.canonical());
    wanted
}

/// For each rule, the first exception that waives it for this request, if any.
fn active_exceptions<'p>(
    request: &Request,
    policy: &'p Policy,
    now: DateTime<Utc>,
) -> BTreeMap<RuleKind, &'p Exception> {
    let today = now.date_naive();
    let mut active = BTreeMap::new();
    for exception in &policy.exceptions {
        let expired = exception.expires.is_some_and(|day| day <= today);
        let namespace = request.namespace.as_deref();
        let namespace_ok = exception.namespaces.is_empty()
            || namespace.is_some_and(|namespace| {
                exception
                    .namespaces
                    .iter()
                    .any(|glob| glob_match(glob, namespace))
            });
        let labels_ok = exception
            .labels
            .iter()
            .all(|(key, value)| request.namespace_labels.get(key) == Some(value));
        if expired || !namespace_ok || !labels_ok {
            continue;
        }
        let rules: &[RuleKind] = if exception.rules.is_empty() {
            &RuleKind::CONFIGURABLE
        } else {
            &exception.rules
        };
        for rule in rules {
            active.entry(*rule).or_insert(exception);
        }
    }
    active
}

struct Run<'a> {
    policy: &'a Policy,
    catalog: &'a Catalog,
    knowledge: &'a Knowledge,
    now: DateTime<Utc>,
    exceptions: BTreeMap<RuleKind, &'a Exception>,
    verdict: Verdict,
}

/// Whether a finding denies or warns, before exceptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Severity {
    Deny,
    Warn,
}

impl From<Mode> for Severity {
    fn from(mode: Mode) -> Severity {
        match mode {
            Mode::Enforce => Severity::Deny,
            Mode::Warn => Severity::Warn,
        }
    }
}

impl Run<'_> {
    fn report(
        &mut self,
        container: &ContainerImage,
        rule: RuleKind,
        severity: Severity,
        message: String,
    ) {
        let finding = Finding {
            container: container.container.clone(),
            list: Some(container.list),
            image: container.image.clone(),
            rule,
            message,
            pointer: container.pointer.clone(),
        };
        if let Some(exception) = self.exceptions.get(&rule) {
            self.verdict.exempted.push(Exempted {
                finding,
                reason: exception.reason.clone(),
                exception: exception.at.to_string(),
            });
            return;
        }
        match severity {
            Severity::Deny => self.verdict.denials.push(finding),
            Severity::Warn => self.verdict.warnings.push(finding),
        }
    }

    /// A rule's finding at the rule's mode.
    fn finding(&mut self, container: &ContainerImage, rule: RuleKind, message: String) {
        let severity = self.policy.mode(rule).unwrap_or_default().into();
        self.report(container, rule, severity, message);
    }

    /// A finding under an `unknown:` setting: deny (at the rule's mode), warn, or nothing.
    fn unknown(
        &mut self,
        container: &ContainerImage,
        rule: RuleKind,
        handling: Unknown,
        message: String,
    ) {
        match handling {
            Unknown::Deny => self.finding(container, rule, message),
            Unknown::Warn => self.report(container, rule, Severity::Warn, message),
            Unknown::Allow => {}
        }
    }

    fn container(&mut self, request: &Request, container: &ContainerImage, old: Option<&str>) {
        let image = match ImageRef::parse(&container.image) {
            Ok(image) => image,
            Err(error) => {
                let message = format!("not a valid image reference: {error}");
                self.report(container, RuleKind::Reference, Severity::Deny, message);
                return;
            }
        };
        // New when created, or when an UPDATE gives the container another image. A Pod made by
        // a controller (a ReplicaSet scaling up, a Job retrying) runs what its admitted owner
        // says, so the eol rule does not break scaling or rescheduling.
        let unchanged = old.and_then(|old| ImageRef::parse(old).ok()).as_ref() == Some(&image);
        let controlled_pod = request.object.kind == WorkloadKind::Pod && request.object.controlled;
        let is_new = match request.operation {
            Operation::Create => !controlled_pod,
            Operation::Update => !unchanged,
            Operation::Delete | Operation::Connect => false,
        };
        if let Some(rule) = &self.policy.registries
            && !rule.allow.iter().any(|pattern| pattern.matches(&image))
        {
            let allowed: Vec<&str> = rule.allow.iter().map(|p| p.as_str()).collect();
            let message = format!(
                "{} is not in an allowed repository; use an image from {}",
                image.name(),
                allowed.join(", ")
            );
            self.finding(container, RuleKind::Registries, message);
        }
        let owner = self.catalog.owner_of(&image);
        if self.policy.catalog.is_some() && owner.is_none() {
            let message = format!(
                "{} is not in the platform's catalog; use a catalog image (`berth catalog list`)",
                image.name()
            );
            self.finding(container, RuleKind::Catalog, message);
        }
        if self.policy.lifecycle.is_some()
            && let Some((entry, _)) = owner
        {
            self.lifecycle(container, entry, is_new);
        }
        if let Some(rule) = &self.policy.base {
            self.base(container, &image, rule);
        }
        let namespace = request.namespace.as_deref();
        if let Some(rule) = &self.policy.provenance {
            self.provenance(container, &image, rule, namespace);
        }
        if let Some(rule) = &self.policy.signatures {
            self.signatures(container, &image, rule, namespace);
        }
        if let Some(rule) = self.policy.digest {
            // `on: pods` leaves controllers as written: their Pods are pinned when admitted.
            let skipped = rule.action == DigestAction::Pin
                && rule.on == PinOn::Pods
                && request.object.kind != WorkloadKind::Pod;
            if !skipped {
                self.digest(container, &image, rule);
            }
        }
    }

    fn lifecycle(
        &mut self,
        container: &ContainerImage,
        entry: &crate::catalog::CatalogEntry,
        is_new: bool,
    ) {
        let effective = entry.lifecycle.at(self.now);
        let name = &entry.name;
        let replacement = entry.lifecycle.replacement.as_deref();
        match effective.state {
            State::Stable => {}
            State::Deprecated => {
                let mut message = format!("{name} is deprecated");
                if let Some(since) = effective.since {
                    message.push_str(&format!(" since {since}"));
                }
                if let Some(next) = effective.next {
                    message.push_str(&format!(" and reaches end of life on {}", next.on));
                }
                match replacement {
                    Some(replacement) => message.push_str(&format!("; use {replacement}")),
                    None => message.push_str("; plan a move to a supported image"),
                }
                self.report(container, RuleKind::Lifecycle, Severity::Warn, message);
            }
            State::Eol => {
                let mut status = format!("{name} is end of life");
                if let Some(since) = effective.since {
                    status.push_str(&format!(" since {since}"));
                }
                let message = match replacement {
                    Some(replacement) => format!("use {replacement} ({status})"),
                    None => format!("{status}; choose a supported image (`berth catalog list`)"),
                };
                if is_new {
                    self.finding(container, RuleKind::Lifecycle, message);
                } else {
                    // Running things are never broken by a date passing: warn only.
                    let message = format!("{message}; allowed because the image is unchanged");
                    self.report(container, RuleKind::Lifecycle, Severity::Warn, message);
                }
            }
        }
    }

    /// The digests of the approved bases' image manifests that berth knows.
    fn approved_digests(&self, rule: &BaseRule) -> Vec<Digest> {
        let references = approved_references(rule, self.catalog);
        let mut digests: Vec<Digest> = references
            .iter()
            .filter_map(|reference| self.knowledge.digest_of(reference))
            .flat_map(|digest| self.knowledge.platform_images(&digest))
            .collect();
        digests.sort_unstable();
        digests.dedup();
        digests
    }

    fn base(&mut self, container: &ContainerImage, image: &ImageRef, rule: &BaseRule) {
        let approved_names: Vec<String> = rule.approved.iter().map(ToString::to_string).collect();
        let approved_text = approved_names.join(", ");
        let Some(digest) = self.knowledge.digest_of(image) else {
            let message = format!(
                "berth does not know {} yet, so cannot tell whether it is built on an approved \
                 base ({approved_text})",
                image.familiar()
            );
            self.unknown(container, RuleKind::Base, rule.unknown, message);
            return;
        };
        let approved = self.approved_digests(rule);
        if approved.is_empty() {
            let message = format!(
                "berth knows none of the approved bases ({approved_text}), so cannot check {}",
                image.familiar()
            );
            self.unknown(container, RuleKind::Base, rule.unknown, message);
            return;
        }
        let lineage = self.knowledge.lineage();
        for platform_image in self.knowledge.platform_images(&digest) {
            if approved.contains(&platform_image) {
                continue;
            }
            // For an index, name the platform image at fault.
            let subject = if platform_image == digest {
                image.familiar()
            } else {
                format!("{} (platform image {platform_image})", image.familiar())
            };
            match lineage.check_declared(&platform_image, &approved) {
                BaseCheck::Match { .. } => {}
                BaseCheck::Mismatch { actual, .. } => {
                    let base = self
                        .knowledge
                        .name_of(&actual)
                        .unwrap_or_else(|| actual.to_string());
                    let message = format!(
                        "{subject} is built on {base}, which is not an approved base; rebuild it \
                         FROM one of: {approved_text}"
                    );
                    self.finding(container, RuleKind::Base, message);
                    return;
                }
                BaseCheck::Unknown {
                    reason: UnknownBase::NoBaseFound,
                } => {
                    let message = format!(
                        "{subject} is not built on any image berth knows; rebuild it FROM one \
                         of: {approved_text}"
                    );
                    self.finding(container, RuleKind::Base, message);
                    return;
                }
                BaseCheck::Unknown { .. } => {
                    let message = format!(
                        "berth has not read the layers of {} ({platform_image}), so cannot tell \
                         whether it is built on an approved base ({approved_text})",
                        image.familiar()
                    );
                    self.unknown(container, RuleKind::Base, rule.unknown, message);
                    return;
                }
            }
        }
    }

    /// The digest that runs must carry evidence meeting the rule: a pipeline's record of the
    /// digest itself (`from: [berth]`), or in-toto statements about it signed by a key the
    /// signatures rule trusts for this image and namespace (`from: [attestation]`).
    fn provenance(
        &mut self,
        container: &ContainerImage,
        image: &ImageRef,
        rule: &ProvenanceRule,
        namespace: Option<&str>,
    ) {
        let Some(digest) = self.knowledge.digest_of(image) else {
            let message = format!(
                "berth does not know which digest {} is, so cannot check that it was tested; \
                 deploy it by digest (@sha256:…)",
                image.familiar()
            );
            self.unknown(container, RuleKind::Provenance, rule.unknown, message);
            return;
        };
        let from_berth = rule.from.contains(&ProvenanceFrom::Berth);
        let from_attestation = rule.from.contains(&ProvenanceFrom::Attestation);
        let mut how = Vec::new();
        if from_berth {
            how.push(format!(
                "the pipeline that built it records one with `berth provenance record {digest} \
                 --source URL --commit SHA --tests passed` (or POST /api/v1/provenance)"
            ));
        }
        if from_attestation {
            how.push(format!(
                "attach an in-toto attestation signed by a trusted key (`cosign attest --key KEY \
                 --type slsaprovenance|https://in-toto.io/attestation/test-result/v0.1 {}@{digest}`)",
                image.name()
            ));
        }
        let how = how.join("; or ");
        let record = if from_berth {
            self.knowledge.provenance(&digest)
        } else {
            None
        };
        let attested: Vec<&Signed> = match (&self.policy.signatures, from_attestation) {
            (Some(signatures), true) => {
                let keys: Vec<&str> = signatures
                    .keys_for(image, namespace)
                    .filter_map(|key| key.fingerprint.as_deref())
                    .collect();
                self.knowledge
                    .signatures(&digest)
                    .iter()
                    .filter(|signed| {
                        signed.kind == SignedKind::Attestation
                            && keys.contains(&signed.key.as_str())
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        if record.is_none() && attested.is_empty() {
            let wanted: Vec<&str> = rule.require.iter().map(|need| need.as_str()).collect();
            let evidence = match (from_berth, from_attestation) {
                (true, false) => "no provenance record",
                (false, true) => "no attestation signed by a trusted key",
                _ => "no provenance record and no attestation signed by a trusted key",
            };
            let message = format!(
                "{} ({digest}) has {evidence} (the policy requires: {}); {how}",
                image.familiar(),
                wanted.join(", ")
            );
            self.finding(container, RuleKind::Provenance, message);
            return;
        }
        let mut missing = Vec::new();
        for need in &rule.require {
            match need {
                Requirement::Tested => {
                    let attested_pass = attested
                        .iter()
                        .any(|signed| signed.tests == Some(Tests::Passed));
                    match record.and_then(|record| record.tests) {
                        Some(Tests::Passed) => {}
                        _ if attested_pass => {}
                        Some(Tests::Failed) => {
                            let record = record.expect("a record has the failed tests");
                            let url = record
                                .tests_url
                                .as_ref()
                                .map(|url| format!(", {url}"))
                                .unwrap_or_default();
                            missing.push(format!(
                                "its tests failed (recorded by {} at {}{url}); deploy a digest \
                                 whose tests passed",
                                record.recorded_by,
                                record.recorded_at.format("%Y-%m-%d %H:%M UTC")
                            ));
                        }
                        None if attested
                            .iter()
                            .any(|signed| signed.tests == Some(Tests::Failed)) =>
                        {
                            missing.push(
                                "its signed test-result attestation does not say PASSED; deploy \
                                 a digest whose tests passed"
                                    .to_string(),
                            );
                        }
                        None if record.is_some() => {
                            missing.push("its record has no test result".to_string())
                        }
                        None => missing.push("no signed test result".to_string()),
                    }
                }
                Requirement::Source => {
                    let recorded = record.is_some_and(|record| record.source.is_some());
                    let attested_source = attested
                        .iter()
                        .any(|signed| signed.source_repository.is_some());
                    if !recorded && !attested_source {
                        missing.push(if record.is_some() {
                            "its record names no source repository".to_string()
                        } else {
                            "no signed provenance names its source repository".to_string()
                        });
                    }
                }
            }
        }
        if !missing.is_empty() {
            let message = format!(
                "{} ({digest}): {}; {how}",
                image.familiar(),
                missing.join("; ")
            );
            self.finding(container, RuleKind::Provenance, message);
        }
    }

    /// The digest that runs must carry a cosign signature (verified when berth synced it) by
    /// one of the keys the rule trusts for this image and namespace.
    fn signatures(
        &mut self,
        container: &ContainerImage,
        image: &ImageRef,
        rule: &SignaturesRule,
        namespace: Option<&str>,
    ) {
        let Some(digest) = self.knowledge.digest_of(image) else {
            let message = format!(
                "berth does not know which digest {} is, so cannot check its signature; deploy \
                 it by digest (@sha256:…) or sync its repository",
                image.familiar()
            );
            self.unknown(container, RuleKind::Signatures, rule.unknown, message);
            return;
        };
        let keys: Vec<&KeySpec> = rule.keys_for(image, namespace).collect();
        let signatures: Vec<&Signed> = self
            .knowledge
            .signatures(&digest)
            .iter()
            .filter(|signed| signed.kind == SignedKind::Signature)
            .collect();
        let trusted = signatures.iter().any(|signed| {
            keys.iter()
                .any(|key| key.fingerprint.as_deref() == Some(signed.key.as_str()))
        });
        if trusted {
            return;
        }
        let where_ = match namespace {
            Some(namespace) => format!(" in namespace {namespace}"),
            None => String::new(),
        };
        let message = if keys.is_empty() {
            format!(
                "{} ({digest}): none of the trusted keys may vouch for it{where_} (each key is \
                 limited by its `namespaces` and `images`)",
                image.familiar()
            )
        } else {
            let names: Vec<&str> = keys.iter().map(|key| key.name.as_str()).collect();
            let others: Vec<&str> = signatures
                .iter()
                .map(|signed| signed.key_name.as_str())
                .collect();
            let other = if others.is_empty() {
                String::new()
            } else {
                format!(
                    " (it is signed by {}, which may not vouch for it{where_})",
                    others.join(", ")
                )
            };
            format!(
                "{} ({digest}) carries no signature by a trusted key ({}){other}; sign the digest \
                 with `cosign sign --key KEY {}@{digest}`: berth reads signatures when it syncs \
                 the repository",
                image.familiar(),
                names.join(", "),
                image.name()
            )
        };
        self.finding(container, RuleKind::Signatures, message);
    }

    fn digest(&mut self, container: &ContainerImage, image: &ImageRef, rule: DigestRule) {
        if image.digest().is_some() {
            return;
        }
        let known = self.knowledge.tag_digest(image);
        match (rule.action, known) {
            (DigestAction::Pin, Some(digest)) => {
                if container.pointer.is_empty() || rule.mode == Mode::Warn {
                    // Nothing to patch (a bare image reference): say what the pin would be.
                    let message = format!("would be pinned to {}@{digest}", container.image);
                    self.report(container, RuleKind::Digest, Severity::Warn, message);
                } else {
                    self.verdict.patches.push(Patch {
                        op: "replace",
                        path: container.pointer.clone(),
                        value: format!("{}@{digest}", container.image),
                    });
                }
            }
            (DigestAction::Pin, None) => {
                let message = format!(
                    "berth does not know the digest of {}, so cannot pin it; give the \
                     reference with @sha256:…",
                    image.familiar()
                );
                self.unknown(container, RuleKind::Digest, rule.unknown, message);
            }
            (DigestAction::Require, Some(digest)) => {
                let message = format!("the image has no digest; use {}@{digest}", container.image);
                self.finding(container, RuleKind::Digest, message);
            }
            (DigestAction::Require, None) => {
                let message = format!(
                    "the image has no digest; pin it as {}@sha256:…",
                    container.image
                );
                self.finding(container, RuleKind::Digest, message);
            }
        }
    }
}
