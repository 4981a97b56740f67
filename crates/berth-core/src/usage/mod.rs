//! Image references in a source tree: what a Dockerfile builds on, what Kubernetes manifests
//! run, what compose files and CI pipelines (GitHub Actions, GitLab CI, Azure Pipelines) pull.
//! The "which pipelines use which image" question, answered from a repository's files.
//!
//! Pure: the caller walks the tree (berth-files' `source_tree`) and hands each file's relative
//! path and text to [`scan`]. Which reader applies is decided by the path ([`recognize`]); a
//! `*.yaml` / `*.yml` file no other reader claims is read as Kubernetes manifests, whose
//! non-workload documents are skipped silently. Every YAML file goes through the one reader,
//! [`crate::catalog::yaml`], and every workload through [`crate::workload`].
//!
//! A reference that is filled in later (`${{ matrix.image }}`, `$CI_REGISTRY_IMAGE`, an ARG
//! without a literal default) is a finding marked [`Resolution::Unresolved`], never dropped and
//! never an error: the inventory still learns that this place uses *some* image.

pub mod cluster;
mod dockerfile;
mod kubernetes;
mod pipelines;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::Serialize;

use crate::Digest;
use crate::catalog::yaml::{Node, Position, SyntaxError};
use crate::reference::{ImageRef, RefError};

/// The kind of file a finding comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    Dockerfile,
    Kubernetes,
    Compose,
    GithubActions,
    GitlabCi,
    AzurePipelines,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Dockerfile => "dockerfile",
            SourceKind::Kubernetes => "kubernetes",
            SourceKind::Compose => "compose",
            SourceKind::GithubActions => "github-actions",
            SourceKind::GitlabCi => "gitlab-ci",
            SourceKind::AzurePipelines => "azure-pipelines",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a reference as written comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// A literal reference (after a Dockerfile's ARG defaults), parsed and normalized.
    Image(ImageRef),
    /// Literal, but not a valid image reference.
    Invalid(RefError),
    /// Filled in later (a pipeline variable, a template, an ARG without a literal default): the
    /// reason names what is missing.
    Unresolved { reason: String },
}

impl Resolution {
    /// Resolves `text` (already expanded, for Dockerfiles): templated text is unresolved, the
    /// rest is parsed.
    fn of(text: &str) -> Resolution {
        if let Some(reason) = templated(text) {
            return Resolution::Unresolved { reason };
        }
        match ImageRef::parse(text) {
            Ok(reference) => Resolution::Image(reference),
            Err(error) => Resolution::Invalid(error),
        }
    }

    /// The reference when there is one.
    pub fn reference(&self) -> Option<&ImageRef> {
        match self {
            Resolution::Image(reference) => Some(reference),
            _ => None,
        }
    }

    /// Whether the text was literal (an invalid literal reference is resolved, just wrong).
    pub fn is_resolved(&self) -> bool {
        !matches!(self, Resolution::Unresolved { .. })
    }
}

/// Why `text` is a template rather than a reference: it holds a variable or an expression.
/// (No valid reference holds `$` or `{`.)
fn templated(text: &str) -> Option<String> {
    if text.contains("${{") {
        Some("an expression filled in when the pipeline runs".to_string())
    } else if text.contains("{{") {
        Some("a template expression filled in before the file is used".to_string())
    } else if text.contains("$(") {
        Some("a pipeline variable `$(...)` filled in when the pipeline runs".to_string())
    } else if text.contains('$') {
        Some("a variable filled in when the pipeline runs".to_string())
    } else {
        None
    }
}

/// One image reference found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: SourceKind,
    /// Where in the file's own terms: `stage build`, `job test service postgres`,
    /// `Deployment/web container app`.
    pub context: String,
    /// The reference as written (`${BASE}:${TAG}`, `${{ matrix.image }}`).
    pub image: String,
    pub resolution: Resolution,
    /// Where the reference is written (1-based line and column, in characters).
    pub position: Position,
}

impl Finding {
    fn new(kind: SourceKind, context: String, node: &Node<'_>, image: &str) -> Finding {
        Finding {
            kind,
            context,
            image: image.to_string(),
            resolution: Resolution::of(image),
            position: node.position,
        }
    }
}

/// A part of a file that could not be read (a YAML syntax error, an unreadable workload): the
/// scan goes on, and says what it could not see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub position: Position,
    pub message: String,
}

impl From<SyntaxError> for Problem {
    fn from(error: SyntaxError) -> Problem {
        Problem {
            position: error.position,
            message: format!("invalid YAML: {}", error.message),
        }
    }
}

/// What one file references, in file order, and what of it could not be read (in file order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    pub findings: Vec<Finding>,
    pub problems: Vec<Problem>,
}

/// Which reader a path gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Dockerfile,
    Compose,
    GithubActions,
    GitlabCi,
    AzurePipelines,
    /// Any other YAML file: read as Kubernetes manifests; documents that are not Kubernetes
    /// objects are skipped silently.
    Yaml,
}

/// The reader for `path` (relative, `/`-separated), decided by name alone; `None` for a file no
/// reader looks at (a walker need not even open it).
pub fn recognize(path: &str) -> Option<Reader> {
    let (directory, name) = match path.rsplit_once('/') {
        Some((directory, name)) => (directory, name),
        None => ("", path),
    };
    let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
    let stem = name
        .strip_suffix(".yaml")
        .or_else(|| name.strip_suffix(".yml"))
        .unwrap_or(name);
    if is_dockerfile(name) {
        return Some(Reader::Dockerfile);
    }
    if !yaml {
        return None;
    }
    let in_workflows =
        directory == ".github/workflows" || directory.ends_with("/.github/workflows");
    Some(if in_workflows {
        Reader::GithubActions
    } else if stem == ".gitlab-ci" || stem.ends_with(".gitlab-ci") {
        Reader::GitlabCi
    } else if stem.starts_with("azure-pipelines") {
        Reader::AzurePipelines
    } else if stem == "compose"
        || stem.starts_with("compose.")
        || stem.starts_with("docker-compose")
    {
        Reader::Compose
    } else {
        Reader::Yaml
    })
}

/// `Dockerfile`, `Containerfile`, `Dockerfile.*`, `Containerfile.*`, `*.Dockerfile`,
/// `*.Containerfile` (and lowercase `dockerfile`, `*.dockerfile`), but not
/// `Dockerfile.dockerignore`.
fn is_dockerfile(name: &str) -> bool {
    if name.ends_with(".dockerignore") {
        return false;
    }
    let named = |base: &str| {
        name == base
            || name
                .strip_suffix(base)
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.'))
    };
    let prefixed = |base: &str| {
        name.strip_prefix(base)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('.'))
    };
    ["Dockerfile", "dockerfile", "Containerfile", "containerfile"]
        .into_iter()
        .any(named)
        || ["Dockerfile", "Containerfile"].into_iter().any(prefixed)
}

/// Every image reference in the file at `path` (relative, `/`-separated) with this `text`.
/// A file [`recognize`] does not know yields nothing.
pub fn scan(path: &str, text: &str) -> Scan {
    let mut scan = match recognize(path) {
        None => Scan::default(),
        Some(Reader::Dockerfile) => dockerfile::scan(text),
        Some(Reader::Yaml) => kubernetes::scan(text),
        Some(Reader::Compose) => pipelines::yaml(text, &[], pipelines::compose),
        Some(Reader::GithubActions) => pipelines::yaml(text, &[], pipelines::github_actions),
        Some(Reader::GitlabCi) => pipelines::yaml(text, &["!reference"], pipelines::gitlab_ci),
        Some(Reader::AzurePipelines) => pipelines::yaml(text, &[], pipelines::azure_pipelines),
    };
    // In file order, whichever order the reader found them in (stable: one place, one order).
    scan.findings.sort_by_key(|finding| finding.position);
    scan.problems.sort_by_key(|problem| problem.position);
    scan
}

/// One place that uses an image, as a report gives it (its source and scope are the report's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Use {
    /// The Kubernetes namespace; a ci report's branch; empty when there is none.
    pub namespace: String,
    /// The workload kind (`Deployment`), the file kind (`dockerfile`), or `check` for ci.
    pub kind: String,
    /// The workload's name, the file's path, or what the pipeline checked.
    pub name: String,
    /// The container's name, or where in the file (`stage build`).
    pub container: String,
    /// As written: kept even when it does not parse, since that is what is used.
    pub image: String,
    /// Normalized, when the text is a reference.
    pub reference: Option<ImageRef>,
    /// What runs, when known (the reference's digest, its tag's, or a Pod's `imageID`).
    pub digest: Option<Digest>,
}
