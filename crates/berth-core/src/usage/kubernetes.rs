//! Kubernetes manifests: every image of every workload in every document of a YAML stream
//! (and in the `items` of a `kind: List`), read by [`crate::workload`] and placed back on the
//! line and column of its `image` field.
//!
//! A document that is not a Kubernetes object (no `apiVersion` and `kind`), or whose kind has
//! no pod template (a Service, a ConfigMap), is skipped silently: most YAML in a repository is
//! something else. A workload that cannot be read as Kubernetes would is reported, with the
//! images that could be read still found.

use super::{Finding, Problem, Scan, SourceKind};
use crate::catalog::yaml::{self, Node, Value};
use crate::workload::{self, ContainerList, WorkloadError};

/// Every workload image in the YAML stream `text`. A file that is not YAML is reported only
/// when it looks like manifests (an `apiVersion:` and a `kind:`): a Helm template is worth a
/// word, any other file with `{{` in it is not.
pub fn scan(text: &str) -> Scan {
    let mut scan = Scan::default();
    match yaml::parse_documents(text) {
        Ok(documents) => {
            for document in &documents {
                object(document, &mut scan);
            }
        }
        Err(error) if text.contains("apiVersion:") && text.contains("kind:") => {
            scan.problems.push(error.into());
        }
        Err(_) => {}
    }
    scan
}

/// The images of one object (or of each item of a List).
fn object(node: &Node<'_>, scan: &mut Scan) {
    let kind = node.get("kind").and_then(Node::as_text);
    let is_object = node.get("apiVersion").and_then(Node::as_text).is_some();
    let Some(kind) = kind.filter(|_| is_object) else {
        return;
    };
    if kind == "List" {
        if let Some(Value::Sequence(items)) = node.get("items").map(|items| &items.value) {
            for item in items {
                object(item, scan);
            }
        }
        return;
    }
    let value = match node.to_json() {
        Ok(value) => value,
        Err(error) => {
            scan.problems.push(Problem {
                position: error.position,
                message: format!("{kind}: {}", error.message),
            });
            return;
        }
    };
    let at = |pointer: &str| node.pointer(pointer).unwrap_or(node).position;
    let found = match workload::workload(&value) {
        Ok(found) => found,
        Err(WorkloadError::NotAnObject | WorkloadError::UnknownKind { .. }) => return,
        Err(WorkloadError::Malformed { pointer, message }) => {
            scan.problems.push(Problem {
                position: at(&pointer),
                message: format!("{kind}: {pointer}: {message}"),
            });
            return;
        }
    };
    let name = found.display_name();
    for container in &found.containers {
        let role = match container.list {
            ContainerList::Init => "initContainer",
            ContainerList::Regular => "container",
            ContainerList::Ephemeral => "ephemeralContainer",
        };
        let place = node.pointer(&container.pointer).unwrap_or(node);
        scan.findings.push(Finding::new(
            SourceKind::Kubernetes,
            format!("{name} {role} {}", container.container),
            place,
            &container.image,
        ));
    }
    for unreadable in &found.unreadable {
        scan.problems.push(Problem {
            position: at(&unreadable.pointer),
            message: format!("{name}: {}", unreadable.message),
        });
    }
}
