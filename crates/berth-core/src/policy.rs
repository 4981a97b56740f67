//! Policy: which images a platform runs, decided the same way for the admission webhook and
//! for `berth check` in CI. A policy file (YAML, read with positions like the catalog) holds up
//! to one rule of each [`RuleKind`] and namespace [`Exception`]s; [`evaluate`] turns a request
//! (a workload, its namespace, the operation) into a [`Verdict`].
//!
//! Pure: the caller reads the files, builds the [`Knowledge`], and passes `now`.
//!
//! - [`load`] reads a policy file, every problem reported at once with file:line:column.
//! - [`pattern`]: repository patterns matched by exact host and whole path segments.
//! - [`knowledge`]: tag → digest, index → images, and lineage, as a value.
//! - [`evaluate`]: the decision.

pub mod evaluate;
pub mod knowledge;
pub mod pattern;
pub mod read;

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::Serialize;

pub use evaluate::{
    Exempted, Finding, Operation, Patch, Request, Verdict, evaluate, evaluate_image,
    references_read, tags_to_resolve,
};
pub use knowledge::{Knowledge, KnowledgeBuilder, KnowledgeChanges};
pub use pattern::{PathPattern, RepositoryPattern};
pub use read::{Loaded, load, load_checked};

use crate::catalog::Location;

/// The JSON Schema of the policy file (published at `docs/policy.schema.json`).
pub const SCHEMA_JSON: &str = include_str!("../../../docs/policy.schema.json");
use crate::reference::ImageRef;

/// The kinds of rule a policy may hold, one of each at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// Not a rule in the file: an image reference that cannot be parsed is always denied.
    Reference,
    /// Not a rule in the file: a pod spec berth cannot read as Kubernetes would (an unknown
    /// field, a container without an image) is always denied, so nothing escapes the check.
    Spec,
    Registries,
    Catalog,
    Lifecycle,
    Base,
    Digest,
    Provenance,
    Signatures,
}

impl RuleKind {
    /// The rules a policy file can name, in file order.
    pub const CONFIGURABLE: [RuleKind; 7] = [
        RuleKind::Registries,
        RuleKind::Catalog,
        RuleKind::Lifecycle,
        RuleKind::Base,
        RuleKind::Digest,
        RuleKind::Provenance,
        RuleKind::Signatures,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Reference => "reference",
            RuleKind::Spec => "spec",
            RuleKind::Registries => "registries",
            RuleKind::Catalog => "catalog",
            RuleKind::Lifecycle => "lifecycle",
            RuleKind::Base => "base",
            RuleKind::Digest => "digest",
            RuleKind::Provenance => "provenance",
            RuleKind::Signatures => "signatures",
        }
    }

    pub fn parse(text: &str) -> Option<RuleKind> {
        RuleKind::CONFIGURABLE
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule does when it finds a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deny the request.
    #[default]
    Enforce,
    /// Allow it with a warning (audit), so a rule can be rolled out safely.
    Warn,
}

/// What to do when berth does not know enough to decide (an image it has never read, a tag it
/// cannot resolve): never a silent pass unless the file says `allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unknown {
    #[default]
    Deny,
    Warn,
    Allow,
}

/// `registries:` images must come from one of these repositories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistriesRule {
    pub mode: Mode,
    pub allow: Vec<RepositoryPattern>,
}

/// `catalog:` images must be in the catalog (any spelling, tag or digest of its repositories).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogRule {
    pub mode: Mode,
}

/// `lifecycle:` deprecated images warn; eol images are refused for new workloads and new images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleRule {
    pub mode: Mode,
}

/// A base named in the policy: a catalog entry (all its images at all its channels) or an
/// image reference (a tag berth resolves, or a digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseName {
    Catalog(String),
    Image(ImageRef),
}

impl fmt::Display for BaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaseName::Catalog(name) => f.write_str(name),
            BaseName::Image(image) => f.write_str(&image.familiar()),
        }
    }
}

/// `base:` images must be one of the approved bases or built on one (by layer lineage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseRule {
    pub mode: Mode,
    pub approved: Vec<BaseName>,
    /// Where each approved base is written, for the catalog cross-check.
    pub approved_at: Vec<Location>,
    /// For images berth has not read (or bases it cannot resolve).
    pub unknown: Unknown,
}

/// What the digest rule asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestAction {
    /// The reference must carry a digest.
    Require,
    /// The mutating webhook adds the digest the tag points to (`name:tag@sha256:…`).
    Pin,
}

/// Which objects `digest: {action: pin}` pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PinOn {
    /// Every kind with a pod template: the controller's template itself is patched.
    #[default]
    All,
    /// Pods only: controllers stay as Git has them (GitOps tools see no drift), and the Pods
    /// they create are pinned at their own admission.
    Pods,
}

/// `digest:` references must be pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestRule {
    pub mode: Mode,
    pub action: DigestAction,
    /// For `pin`, which objects are pinned (and judged by this rule).
    pub on: PinOn,
    /// For `pin`, when berth does not know the tag's digest.
    pub unknown: Unknown,
}

/// What the provenance rule requires of a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Requirement {
    /// A record whose tests passed.
    Tested,
    /// A record naming the source repository.
    Source,
}

impl Requirement {
    pub fn as_str(self) -> &'static str {
        match self {
            Requirement::Tested => "tested",
            Requirement::Source => "source",
        }
    }
}

/// `provenance:` the digest that runs must be the one a pipeline recorded (built from a
/// source, tested and passed): deployed digest = tested digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenanceRule {
    pub mode: Mode,
    /// Sorted, without repeats; never empty.
    pub require: Vec<Requirement>,
    /// For references whose digest berth does not know (an unsynced tag).
    pub unknown: Unknown,
    /// Where a record may come from: berth's own (`berth provenance record`), and attestations
    /// signed by one of the signatures rule's keys. Sorted, without repeats; never empty.
    pub from: Vec<ProvenanceFrom>,
}

/// Where the provenance rule takes its evidence from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvenanceFrom {
    /// Records made with `berth provenance record` / `POST /api/v1/provenance`.
    Berth,
    /// In-toto statements (SLSA provenance, test results) signed by a trusted key.
    Attestation,
}

/// `signatures:` the digest that runs must carry a cosign signature by a trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignaturesRule {
    pub mode: Mode,
    /// For references whose digest berth does not know (an unsynced tag).
    pub unknown: Unknown,
    /// The trusted keys; never empty in a loaded policy.
    pub keys: Vec<KeySpec>,
}

/// One trusted key of the signatures rule, as the policy file names it. The file's text is
/// read (and the key parsed) by whoever loads the policy from disk (berth-files), which sets
/// `fingerprint`; a key without one verifies nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    pub name: String,
    pub source: KeySource,
    /// Namespaces (names or globs) whose workloads this key may vouch for; empty: any.
    pub namespaces: Vec<String>,
    /// Repositories whose images this key may vouch for; empty: any.
    pub images: Vec<RepositoryPattern>,
    /// The SHA-256 of the key's SubjectPublicKeyInfo, hex, once the key is read.
    pub fingerprint: Option<String>,
    pub at: Location,
}

/// Where a key's PEM text is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// In the policy file itself.
    Pem(String),
    /// A file, relative to the policy file's directory.
    File(String),
}

impl SignaturesRule {
    /// The fingerprints of the keys that may vouch for `image` in `namespace`.
    pub fn keys_for<'r>(
        &'r self,
        image: &'r ImageRef,
        namespace: Option<&'r str>,
    ) -> impl Iterator<Item = &'r KeySpec> + 'r {
        self.keys.iter().filter(move |key| {
            key.fingerprint.is_some()
                && (key.namespaces.is_empty()
                    || namespace.is_some_and(|namespace| {
                        key.namespaces
                            .iter()
                            .any(|glob| pattern::glob_match(glob, namespace))
                    }))
                && (key.images.is_empty() || key.images.iter().any(|p| p.matches(image)))
        })
    }
}

/// A namespace that some rules do not apply to, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// Namespace names or globs (`tool-*`); empty: any namespace (then `labels` decide).
    pub namespaces: Vec<String>,
    /// Namespace labels that must all be present with these values.
    pub labels: BTreeMap<String, String>,
    /// The rules waived; empty: all of them.
    pub rules: Vec<RuleKind>,
    /// Shown with every waived finding, so an audit reads why.
    pub reason: String,
    /// From this day on (00:00 UTC) the exception no longer applies.
    pub expires: Option<NaiveDate>,
    /// Where the exception is written.
    pub at: Location,
}

/// A valid policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub registries: Option<RegistriesRule>,
    pub catalog: Option<CatalogRule>,
    pub lifecycle: Option<LifecycleRule>,
    pub base: Option<BaseRule>,
    pub digest: Option<DigestRule>,
    pub provenance: Option<ProvenanceRule>,
    pub signatures: Option<SignaturesRule>,
    pub exceptions: Vec<Exception>,
}

impl Policy {
    /// The mode of the rule of `kind`, when the policy has it.
    pub fn mode(&self, kind: RuleKind) -> Option<Mode> {
        match kind {
            RuleKind::Reference | RuleKind::Spec => Some(Mode::Enforce),
            RuleKind::Registries => self.registries.as_ref().map(|rule| rule.mode),
            RuleKind::Catalog => self.catalog.map(|rule| rule.mode),
            RuleKind::Lifecycle => self.lifecycle.map(|rule| rule.mode),
            RuleKind::Base => self.base.as_ref().map(|rule| rule.mode),
            RuleKind::Digest => self.digest.map(|rule| rule.mode),
            RuleKind::Provenance => self.provenance.as_ref().map(|rule| rule.mode),
            RuleKind::Signatures => self.signatures.as_ref().map(|rule| rule.mode),
        }
    }

    /// The trusted keys of the signatures rule (none without it).
    pub fn keys(&self) -> &[KeySpec] {
        self.signatures
            .as_ref()
            .map(|rule| rule.keys.as_slice())
            .unwrap_or_default()
    }

    /// The keys, mutable: how a loader sets each key's fingerprint.
    pub fn keys_mut(&mut self) -> &mut [KeySpec] {
        match &mut self.signatures {
            Some(rule) => &mut rule.keys,
            None => &mut [],
        }
    }
}

#[cfg(test)]
mod tests;
