//! docker-compose files and CI pipelines: GitHub Actions workflows, GitLab CI and Azure
//! Pipelines, each read from the one YAML tree at the fields where that format names images.
//! A field whose value is not text (or a mapping with the image field) is no image and is left
//! alone: these readers find references, they do not validate pipelines.

use super::{Finding, Scan, SourceKind};
use crate::catalog::yaml::{self, Node, Value};

/// Parses the stream `text` (accepting the format's `local_tags`) and reads every document.
pub(super) fn yaml(text: &str, local_tags: &[&str], read: fn(&Node<'_>, &mut Scan)) -> Scan {
    let mut scan = Scan::default();
    match yaml::parse_documents_accepting(text, local_tags) {
        Ok(documents) => {
            for document in &documents {
                read(document, &mut scan);
            }
        }
        Err(error) => scan.problems.push(error.into()),
    }
    scan
}

/// The image a field gives: its text, or the text under `field` when it is a mapping
/// (`container: {image: x}`, `image: {name: x}`).
fn image<'n, 'a>(node: &'n Node<'a>, field: &str) -> Option<(&'n Node<'a>, &'n str)> {
    match &node.value {
        Value::Mapping(_) => {
            let inner = node.get(field)?;
            Some((inner, inner.as_text()?))
        }
        _ => Some((node, node.as_text()?)),
    }
}

fn sequence<'n, 'a>(node: Option<&'n Node<'a>>) -> &'n [Node<'a>] {
    match node.map(|node| &node.value) {
        Some(Value::Sequence(items)) => items,
        _ => &[],
    }
}

/// Records a found image; an empty one is none (GitHub skips a service whose image is `''`).
fn push(scan: &mut Scan, kind: SourceKind, context: String, found: Option<(&Node<'_>, &str)>) {
    if let Some((node, text)) = found.filter(|(_, text)| !text.is_empty()) {
        scan.findings.push(Finding::new(kind, context, node, text));
    }
}

/// `services.NAME.image`; a service that also has `build:` names the image it builds.
pub(super) fn compose(document: &Node<'_>, scan: &mut Scan) {
    let Some(services) = document.get("services") else {
        return;
    };
    for (name, service) in services.entries() {
        let Some(field) = service.get("image") else {
            continue;
        };
        let context = match service.get("build") {
            Some(_) => format!("service {name} (built here)"),
            None => format!("service {name}"),
        };
        push(scan, SourceKind::Compose, context, image(field, "image"));
    }
}

/// `jobs.ID.container`, `jobs.ID.services.NAME` (text or `{image:}`), and steps that run
/// `uses: docker://IMAGE`.
pub(super) fn github_actions(document: &Node<'_>, scan: &mut Scan) {
    let kind = SourceKind::GithubActions;
    let Some(jobs) = document.get("jobs") else {
        return;
    };
    for (job_name, job) in jobs.entries() {
        if let Some(container) = job.get("container") {
            let context = format!("job {job_name} container");
            push(scan, kind, context, image(container, "image"));
        }
        if let Some(services) = job.get("services") {
            for (service_name, service) in services.entries() {
                let context = format!("job {job_name} service {service_name}");
                push(scan, kind, context, image(service, "image"));
            }
        }
        for (index, step) in sequence(job.get("steps")).iter().enumerate() {
            let Some(uses) = step.get("uses") else {
                continue;
            };
            if let Some(reference) = uses
                .as_text()
                .and_then(|text| text.strip_prefix("docker://"))
            {
                let context = format!("job {job_name} step {}", index + 1);
                push(scan, kind, context, Some((uses, reference)));
            }
        }
    }
}

/// GitLab's top-level keys that are not jobs.
const GITLAB_KEYWORDS: &[&str] = &[
    "default",
    "include",
    "stages",
    "variables",
    "workflow",
    "image",
    "services",
    "before_script",
    "after_script",
    "cache",
    "spec",
];

/// `image:` (text or `{name:}`) and `services:` (a list of text or `{name:, alias:}`) at the
/// top level, in `default:` and in every job (hidden `.template` jobs included: jobs extend
/// them).
pub(super) fn gitlab_ci(document: &Node<'_>, scan: &mut Scan) {
    gitlab_images(document, "global", scan);
    if let Some(default) = document.get("default") {
        gitlab_images(default, "default", scan);
    }
    for (name, job) in document.entries() {
        if GITLAB_KEYWORDS.contains(&name) || !matches!(job.value, Value::Mapping(_)) {
            continue;
        }
        gitlab_images(job, &format!("job {name}"), scan);
    }
}

fn gitlab_images(node: &Node<'_>, owner: &str, scan: &mut Scan) {
    let kind = SourceKind::GitlabCi;
    if let Some(field) = node.get("image") {
        push(scan, kind, format!("{owner} image"), image(field, "name"));
    }
    for (index, service) in sequence(node.get("services")).iter().enumerate() {
        let alias = service.get("alias").and_then(Node::as_text);
        let context = match alias {
            Some(alias) => format!("{owner} service {alias}"),
            None => format!("{owner} service {}", index + 1),
        };
        push(scan, kind, context, image(service, "name"));
    }
}

/// `resources.containers[].image`, and `container:` (text or `{image:}`) on the pipeline and
/// on each job, at the top level or under `stages:`. A `container:` naming a declared resource
/// alias is that resource, already counted.
pub(super) fn azure_pipelines(document: &Node<'_>, scan: &mut Scan) {
    let kind = SourceKind::AzurePipelines;
    let resources = sequence(document.get("resources").and_then(|r| r.get("containers")));
    let mut aliases = Vec::new();
    for resource in resources {
        let alias = resource.get("container").and_then(Node::as_text);
        aliases.extend(alias);
        let context = format!("resource container {}", alias.unwrap_or("?"));
        push(
            scan,
            kind,
            context,
            resource.get("image").and_then(|f| image(f, "image")),
        );
    }
    let container = |node: &Node<'_>, context: String, scan: &mut Scan| {
        let Some(field) = node.get("container") else {
            return;
        };
        let found = image(field, "image");
        let is_alias = matches!(&field.value, Value::Scalar(_))
            && found.is_some_and(|(_, text)| aliases.contains(&text));
        if !is_alias {
            push(scan, kind, context, found);
        }
    };
    container(document, "pipeline container".to_string(), scan);
    let jobs = |owner: &str, node: &Node<'_>, scan: &mut Scan| {
        for job in sequence(node.get("jobs")) {
            let name = ["job", "deployment"]
                .iter()
                .find_map(|key| job.get(key).and_then(Node::as_text))
                .unwrap_or("?");
            container(job, format!("{owner}job {name} container"), scan);
        }
    };
    jobs("", document, scan);
    for stage in sequence(document.get("stages")) {
        let name = stage.get("stage").and_then(Node::as_text).unwrap_or("?");
        jobs(&format!("stage {name} "), stage, scan);
    }
}
