//! What a cluster runs, from `kubectl get pods,deployments,statefulsets,daemonsets,jobs,cronjobs
//! -A -o json` (a `List`): one [`Use`] per workload and container, each workload counted once
//! under the object people manage (a Deployment, not its ReplicaSet or Pods).
//!
//! A Pod made by a controller adds what only it knows: the digest it runs
//! (`status.containerStatuses[].imageID`). It is counted under its controller (a ReplicaSet's
//! Deployment by the `pod-template-hash` label, a Job's CronJob when the Job is in the list);
//! a Pod still running an image its controller no longer names (a rollout in progress) is
//! counted on its own, as `Pod/<name>`, since that image is in use too. Controlled objects
//! other than Pods (a CronJob's Jobs, a Deployment's ReplicaSets) are their controller's
//! template again and are not counted twice. Objects of other kinds are skipped silently;
//! a workload berth cannot read is a [`Problem`] naming its item, and the report is then not
//! complete (the caller must not mark uses gone on its account).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::Use;
use crate::Digest;
use crate::reference::ImageRef;
use crate::workload::{ContainerImage, WorkloadError, WorkloadKind, workload};

/// What one list gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterRead {
    /// By namespace, kind, name and container.
    pub uses: Vec<Use>,
    /// Items that are workloads berth could not read; their uses are unknown.
    pub problems: Vec<Problem>,
    /// Items read (workloads and not).
    pub items: usize,
}

/// An item that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `items[3]`, with the object's `Kind/namespace/name` when it has them.
    pub item: String,
    pub message: String,
}

/// Why the document is not a list of objects at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a Kubernetes List (`kubectl get ... -o json`) or one object with `kind`")]
pub struct NotAList;

type Key = (String, String, String, String);

/// Reads a `List` (or a single object) into uses.
pub fn read(document: &Value) -> Result<ClusterRead, NotAList> {
    let items: Vec<&Value> = match document.get("items").and_then(Value::as_array) {
        Some(items) if document.get("kind").and_then(Value::as_str) != Some("Pod") => {
            items.iter().collect()
        }
        _ if document.get("kind").and_then(Value::as_str).is_some() => vec![document],
        _ => return Err(NotAList),
    };
    let mut read = ClusterRead {
        items: items.len(),
        ..ClusterRead::default()
    };
    // A Job's controller (its CronJob), for Pods that a CronJob's Job made.
    let job_owners: HashMap<(String, String), String> = items
        .iter()
        .filter(|item| item.get("kind").and_then(Value::as_str) == Some("Job"))
        .filter_map(|item| {
            let (kind, name) = controller(item)?;
            let job = name_of(item)?;
            (kind == "CronJob").then(|| ((namespace_of(item), job), name))
        })
        .collect();
    let mut uses: BTreeMap<Key, Use> = BTreeMap::new();
    let mut pods = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let found = match workload(item) {
            Ok(found) => found,
            Err(WorkloadError::UnknownKind { .. }) => continue,
            Err(error) => {
                read.problems.push(Problem {
                    item: describe(index, item),
                    message: error.to_string(),
                });
                continue;
            }
        };
        if let Some(unreadable) = found.unreadable.first() {
            read.problems.push(Problem {
                item: describe(index, item),
                message: format!("{}: {}", unreadable.pointer, unreadable.message),
            });
            continue;
        }
        if found.controlled {
            if found.kind == WorkloadKind::Pod {
                pods.push((*item, found));
            }
            continue;
        }
        let namespace = namespace_of(item);
        let kind = found.kind.to_string();
        let name = found.name.clone().unwrap_or_default();
        let statuses = statuses(item);
        for container in &found.containers {
            let digest = running_digest(&statuses, container);
            let usage = make_use(&namespace, &kind, &name, container, digest);
            uses.insert(key_of(&usage), usage);
        }
    }
    for (pod, found) in pods {
        let namespace = namespace_of(pod);
        let pod_name = name_of(pod).unwrap_or_default();
        let (kind, name) = owner_workload(pod, &namespace, &job_owners)
            .unwrap_or_else(|| ("Pod".to_string(), pod_name.clone()));
        let statuses = statuses(pod);
        for container in &found.containers {
            let digest = running_digest(&statuses, container);
            let usage = make_use(&namespace, &kind, &name, container, digest);
            match uses.get_mut(&key_of(&usage)) {
                Some(known) if known.image == container.image => {
                    if known.digest.is_none() {
                        known.digest = usage.digest;
                    }
                }
                Some(_) => {
                    // The controller names another image now: this Pod's is still running.
                    let usage = Use {
                        kind: "Pod".to_string(),
                        name: pod_name.clone(),
                        ..usage
                    };
                    uses.insert(key_of(&usage), usage);
                }
                None => {
                    uses.insert(key_of(&usage), usage);
                }
            }
        }
    }
    read.uses = uses.into_values().collect();
    Ok(read)
}

fn key_of(usage: &Use) -> Key {
    (
        usage.namespace.clone(),
        usage.kind.clone(),
        usage.name.clone(),
        usage.container.clone(),
    )
}

/// The digest a Pod's status says `container` runs, when the status is of the same image.
fn running_digest(
    statuses: &HashMap<&str, (&str, Option<Digest>)>,
    container: &ContainerImage,
) -> Option<Digest> {
    let (image, digest) = statuses.get(container.container.as_str())?;
    (*image == container.image).then(|| digest.clone())?
}

fn make_use(
    namespace: &str,
    kind: &str,
    name: &str,
    container: &ContainerImage,
    status_digest: Option<Digest>,
) -> Use {
    let reference = ImageRef::parse(&container.image).ok();
    let digest = reference
        .as_ref()
        .and_then(|reference| reference.digest().cloned())
        .or(status_digest);
    Use {
        namespace: namespace.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        container: container.container.clone(),
        image: container.image.clone(),
        reference,
        digest,
    }
}

fn namespace_of(item: &Value) -> String {
    item.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string()
}

fn name_of(item: &Value) -> Option<String> {
    item.pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn describe(index: usize, item: &Value) -> String {
    let kind = item.get("kind").and_then(Value::as_str);
    match (kind, name_of(item)) {
        (Some(kind), Some(name)) => {
            format!("items[{index}] ({kind}/{}/{name})", namespace_of(item))
        }
        (Some(kind), None) => format!("items[{index}] ({kind})"),
        _ => format!("items[{index}]"),
    }
}

/// The ownerReference with `controller: true`: its kind and name.
fn controller(item: &Value) -> Option<(String, String)> {
    item.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|owner| owner.get("controller") == Some(&Value::Bool(true)))
        .and_then(|owner| {
            Some((
                owner.get("kind")?.as_str()?.to_string(),
                owner.get("name")?.as_str()?.to_string(),
            ))
        })
}

/// The object people manage for a controlled Pod: a ReplicaSet's Deployment (the ReplicaSet is
/// named `<deployment>-<pod-template-hash>`), a Job's CronJob, else the controller itself.
fn owner_workload(
    pod: &Value,
    namespace: &str,
    job_owners: &HashMap<(String, String), String>,
) -> Option<(String, String)> {
    let (kind, name) = controller(pod)?;
    match kind.as_str() {
        "ReplicaSet" => {
            let hash = pod
                .pointer("/metadata/labels/pod-template-hash")
                .and_then(Value::as_str);
            match hash.and_then(|hash| name.strip_suffix(hash)?.strip_suffix('-')) {
                Some(deployment) => Some(("Deployment".into(), deployment.to_string())),
                None => Some((kind, name)),
            }
        }
        "Job" => match job_owners.get(&(namespace.to_string(), name.clone())) {
            Some(cronjob) => Some(("CronJob".into(), cronjob.clone())),
            None => Some((kind, name)),
        },
        _ => Some((kind, name)),
    }
}

/// Each container's (image, digest it runs) from a Pod's status, by container name. The digest
/// comes from `imageID` (`docker-pullable://repo@sha256:…`, `repo@sha256:…` or `sha256:…`).
fn statuses(item: &Value) -> HashMap<&str, (&str, Option<Digest>)> {
    let mut statuses = HashMap::new();
    for list in [
        "initContainerStatuses",
        "containerStatuses",
        "ephemeralContainerStatuses",
    ] {
        let Some(entries) = item
            .pointer(&format!("/status/{list}"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for entry in entries {
            let (Some(name), Some(image)) = (
                entry.get("name").and_then(Value::as_str),
                entry.get("image").and_then(Value::as_str),
            ) else {
                continue;
            };
            let digest = entry.get("imageID").and_then(Value::as_str).and_then(|id| {
                let tail = id.rsplit_once('@').map_or(id, |(_, digest)| digest);
                Digest::parse(tail).ok()
            });
            statuses.insert(name, (image, digest));
        }
    }
    statuses
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn deployment(name: &str, image: &str) -> Value {
        json!({"kind": "Deployment", "metadata": {"name": name, "namespace": "shop"},
               "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
    }

    fn pod(name: &str, owner: Option<(&str, &str)>, hash: &str, image: &str, id: &str) -> Value {
        let owners: Vec<Value> = owner
            .into_iter()
            .map(|(kind, name)| json!({"kind": kind, "name": name, "controller": true}))
            .collect();
        json!({"kind": "Pod",
               "metadata": {"name": name, "namespace": "shop", "ownerReferences": owners,
                            "labels": {"pod-template-hash": hash}},
               "spec": {"containers": [{"name": "app", "image": image}]},
               "status": {"containerStatuses": [{"name": "app", "image": image, "imageID": id}]}})
    }

    fn places(read: &ClusterRead) -> Vec<(String, String, Option<String>)> {
        read.uses
            .iter()
            .map(|usage| {
                (
                    format!("{}/{}/{}", usage.kind, usage.name, usage.container),
                    usage.image.clone(),
                    usage.digest.as_ref().map(|digest| digest.to_string()),
                )
            })
            .collect()
    }

    #[test]
    fn a_controlled_pod_gives_its_deployment_the_digest_it_runs() {
        let list = json!({"kind": "List", "items": [
            deployment("web", "registry.example/app:2"),
            {"kind": "ReplicaSet", "metadata": {"name": "web-7d9f", "namespace": "shop",
                "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": true}]},
             "spec": {"template": {"spec": {"containers": [
                 {"name": "app", "image": "registry.example/app:2"}]}}}},
            pod("web-7d9f-abcde", Some(("ReplicaSet", "web-7d9f")), "7d9f",
                "registry.example/app:2", &format!("docker-pullable://registry.example/app@{D2}")),
            // Mid-rollout: an old Pod still runs the previous image.
            pod("web-5c4b-xyz", Some(("ReplicaSet", "web-5c4b")), "5c4b",
                "registry.example/app:1", &format!("registry.example/app@{D1}")),
            {"kind": "Service", "metadata": {"name": "web"}},
        ]});
        let read = read(&list).unwrap();
        assert_eq!(read.problems, []);
        assert_eq!(read.items, 5);
        assert_eq!(
            places(&read),
            [
                (
                    "Deployment/web/app".to_string(),
                    "registry.example/app:2".to_string(),
                    Some(D2.to_string())
                ),
                (
                    "Pod/web-5c4b-xyz/app".to_string(),
                    "registry.example/app:1".to_string(),
                    Some(D1.to_string())
                ),
            ]
        );
    }

    #[test]
    fn pods_alone_count_under_their_controller_and_cronjob_jobs_under_the_cronjob() {
        let list = json!({"kind": "List", "items": [
            {"kind": "Job", "metadata": {"name": "report-2901", "namespace": "shop",
                "ownerReferences": [{"kind": "CronJob", "name": "report", "controller": true}]},
             "spec": {"template": {"spec": {"containers": [
                 {"name": "app", "image": "registry.example/tool:3"}]}}}},
            pod("report-2901-q", Some(("Job", "report-2901")), "", "registry.example/tool:3",
                D1),
            pod("api-6f-1", Some(("ReplicaSet", "api-6f")), "6f", "registry.example/api:1", D2),
            pod("api-6f-2", Some(("ReplicaSet", "api-6f")), "6f", "registry.example/api:1", D2),
            pod("debug", None, "", "busybox", ""),
        ]});
        let read = read(&list).unwrap();
        assert_eq!(
            places(&read),
            [
                (
                    "CronJob/report/app".to_string(),
                    "registry.example/tool:3".to_string(),
                    Some(D1.to_string())
                ),
                (
                    "Deployment/api/app".to_string(),
                    "registry.example/api:1".to_string(),
                    Some(D2.to_string())
                ),
                ("Pod/debug/app".to_string(), "busybox".to_string(), None),
            ]
        );
    }

    #[test]
    fn an_unreadable_workload_is_a_problem_naming_its_item() {
        let list = json!({"kind": "List", "items": [
            deployment("web", "registry.example/app:2"),
            {"kind": "Deployment", "metadata": {"name": "odd", "namespace": "shop"},
             "spec": {"template": {"spec": {"containers": "not a list"}}}},
        ]});
        let read = read(&list).unwrap();
        assert_eq!(read.uses.len(), 1);
        assert_eq!(read.problems.len(), 1);
        assert!(
            read.problems[0]
                .item
                .starts_with("items[1] (Deployment/shop/odd)"),
            "{:?}",
            read.problems
        );
        assert_eq!(super::read(&json!([1, 2])), Err(NotAList));
    }
}
