//! Workloads: every container image a Kubernetes object would run, found in every pod template
//! and every container list, each with the JSON pointer of its `image` field (for patches).
//!
//! Objects arrive as `serde_json::Value` (an AdmissionReview's `object`, a manifest file) and
//! unknown fields are ignored, as data from Kubernetes should be. Kinds that carry no pod
//! template are an error, so a caller never mistakes "not understood" for "no images".

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// The kinds whose pod templates berth knows, with where the pod spec sits in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum WorkloadKind {
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    ReplicationController,
    Job,
    CronJob,
    PodTemplate,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 9] = [
        WorkloadKind::Pod,
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::ReplicaSet,
        WorkloadKind::ReplicationController,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
        WorkloadKind::PodTemplate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "Pod",
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::ReplicationController => "ReplicationController",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::PodTemplate => "PodTemplate",
        }
    }

    pub fn parse(kind: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL
            .into_iter()
            .find(|known| known.as_str() == kind)
    }

    /// The JSON pointer of the pod spec inside an object of this kind.
    pub fn pod_spec_pointer(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "/spec",
            WorkloadKind::Deployment
            | WorkloadKind::StatefulSet
            | WorkloadKind::DaemonSet
            | WorkloadKind::ReplicaSet
            | WorkloadKind::ReplicationController
            | WorkloadKind::Job => "/spec/template/spec",
            WorkloadKind::CronJob => "/spec/jobTemplate/spec/template/spec",
            WorkloadKind::PodTemplate => "/template/spec",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pod spec's container lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ContainerList {
    #[serde(rename = "initContainers")]
    Init,
    #[serde(rename = "containers")]
    Regular,
    #[serde(rename = "ephemeralContainers")]
    Ephemeral,
}

impl ContainerList {
    /// In the order the kubelet starts them.
    pub const ALL: [ContainerList; 3] = [
        ContainerList::Init,
        ContainerList::Regular,
        ContainerList::Ephemeral,
    ];

    /// The field name in a pod spec.
    pub fn field(self) -> &'static str {
        match self {
            ContainerList::Init => "initContainers",
            ContainerList::Regular => "containers",
            ContainerList::Ephemeral => "ephemeralContainers",
        }
    }
}

impl fmt::Display for ContainerList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field())
    }
}

/// One container and the image it runs, as written (parsing is the policy's business, so that
/// an unparsable image becomes a denial naming its container rather than an error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerImage {
    pub container: String,
    pub list: ContainerList,
    pub image: String,
    /// JSON pointer to the `image` field (`/spec/template/spec/containers/0/image`): where a
    /// JSONPatch rewrites it.
    pub pointer: String,
}

/// An object's identity and its containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workload {
    pub kind: WorkloadKind,
    /// `metadata.name`; absent for objects named by `generateName` only.
    pub name: Option<String>,
    /// `metadata.namespace` as written (admission requests carry the namespace separately).
    pub namespace: Option<String>,
    /// Init, regular, then ephemeral containers, each list in its order.
    pub containers: Vec<ContainerImage>,
    /// An ownerReference says `controller: true`: a controller (a ReplicaSet, a Job) made this
    /// object from a template that was itself admitted.
    pub controlled: bool,
}

impl Workload {
    /// `Deployment/web`, or `Deployment` when the object has no name yet.
    pub fn display_name(&self) -> String {
        match &self.name {
            Some(name) => format!("{}/{name}", self.kind),
            None => self.kind.to_string(),
        }
    }

    /// The image of each container by (list, name): what an UPDATE compares with the old object.
    pub fn images_by_container(&self) -> BTreeMap<(ContainerList, &str), &str> {
        self.containers
            .iter()
            .map(|c| ((c.list, c.container.as_str()), c.image.as_str()))
            .collect()
    }
}

/// Why an object yields no workload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    #[error("not a Kubernetes object: expected a JSON object with `kind`")]
    NotAnObject,
    #[error(
        "kind {kind:?} has no pod template berth knows; expected one of Pod, Deployment, \
         StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob, PodTemplate"
    )]
    UnknownKind { kind: String },
    #[error("{pointer}: {message}")]
    Malformed { pointer: String, message: String },
}

/// Finds every container image in `object`. A pod spec that is absent, or container lists that
/// are absent or null, yield no containers; wrong types are [`WorkloadError::Malformed`].
pub fn workload(object: &Value) -> Result<Workload, WorkloadError> {
    let Some(fields) = object.as_object() else {
        return Err(WorkloadError::NotAnObject);
    };
    let Some(kind_text) = fields.get("kind").and_then(Value::as_str) else {
        return Err(WorkloadError::NotAnObject);
    };
    let kind = WorkloadKind::parse(kind_text).ok_or_else(|| WorkloadError::UnknownKind {
        kind: kind_text.to_string(),
    })?;
    let metadata_text = |field: &str| {
        object
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let spec_pointer = kind.pod_spec_pointer();
    let mut containers = Vec::new();
    match object.pointer(spec_pointer) {
        None | Some(Value::Null) => {}
        Some(Value::Object(spec)) => {
            for list in ContainerList::ALL {
                let list_pointer = format!("{spec_pointer}/{}", list.field());
                let items = match spec.get(list.field()) {
                    None | Some(Value::Null) => continue,
                    Some(Value::Array(items)) => items,
                    Some(_) => return Err(malformed(&list_pointer, "expected a list")),
                };
                for (index, item) in items.iter().enumerate() {
                    let item_pointer = format!("{list_pointer}/{index}");
                    containers.extend(container(item, list, &item_pointer)?);
                }
            }
        }
        Some(_) => return Err(malformed(spec_pointer, "expected a pod spec object")),
    }
    Ok(Workload {
        kind,
        name: metadata_text("name"),
        namespace: metadata_text("namespace"),
        containers,
        controlled: has_controller(object),
    })
}

fn has_controller(object: &Value) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|owners| {
            owners
                .iter()
                .any(|owner| owner.get("controller") == Some(&Value::Bool(true)))
        })
}

/// One container entry. A container without an image yields nothing: the API server rejects
/// such a pod, and a template may leave the image to a later tool.
fn container(
    item: &Value,
    list: ContainerList,
    pointer: &str,
) -> Result<Option<ContainerImage>, WorkloadError> {
    let Some(fields) = item.as_object() else {
        return Err(malformed(pointer, "expected a container object"));
    };
    let name = match fields.get("name") {
        Some(Value::String(name)) => name.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err(malformed(&format!("{pointer}/name"), "expected text")),
    };
    match fields.get("image") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(image)) => Ok(Some(ContainerImage {
            container: name,
            list,
            image: image.clone(),
            pointer: format!("{pointer}/image"),
        })),
        Some(_) => Err(malformed(&format!("{pointer}/image"), "expected text")),
    }
}

fn malformed(pointer: &str, message: &str) -> WorkloadError {
    WorkloadError::Malformed {
        pointer: pointer.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A pod spec with one container in each list.
    fn pod_spec() -> Value {
        json!({
            "initContainers": [{"name": "setup", "image": "registry.example.com/init:1"}],
            "containers": [
                {"name": "app", "image": "registry.example.com/app:1", "ports": [{"containerPort": 80}]},
                {"name": "sidecar", "image": "registry.example.com/proxy:2"}
            ],
            "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
            "unknownField": true
        })
    }

    /// `kind`'s object with the pod spec placed where that kind keeps it.
    fn object(kind: &str) -> Value {
        let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": pod_spec()});
        let spec = match kind {
            "Pod" => pod_spec(),
            "CronJob" => {
                json!({"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}})
            }
            "PodTemplate" => {
                return json!({"kind": kind, "metadata": {"name": "t"}, "template": template});
            }
            _ => json!({"template": template}),
        };
        json!({"kind": kind, "apiVersion": "v1", "metadata": {"name": "w", "namespace": "ns"}, "spec": spec})
    }

    /// `list name image pointer` lines, the shape every case below compares.
    fn lines(workload: &Workload) -> Vec<String> {
        workload
            .containers
            .iter()
            .map(|c| format!("{} {} {} {}", c.list, c.container, c.image, c.pointer))
            .collect()
    }

    #[test]
    fn every_kind_and_every_container_list() {
        for kind in WorkloadKind::ALL {
            let found = workload(&object(kind.as_str())).unwrap();
            assert_eq!(found.kind, kind);
            let spec = kind.pod_spec_pointer();
            let expect = vec![
                format!(
                    "initContainers setup registry.example.com/init:1 {spec}/initContainers/0/image"
                ),
                format!("containers app registry.example.com/app:1 {spec}/containers/0/image"),
                format!(
                    "containers sidecar registry.example.com/proxy:2 {spec}/containers/1/image"
                ),
                format!("ephemeralContainers debug busybox {spec}/ephemeralContainers/0/image"),
            ];
            assert_eq!(lines(&found), expect, "{kind}");
            // Each pointer really points at the image.
            let object = object(kind.as_str());
            for c in &found.containers {
                assert_eq!(object.pointer(&c.pointer), Some(&json!(c.image)), "{kind}");
            }
        }
    }

    #[test]
    fn identity_comes_from_metadata() {
        let found = workload(&object("Deployment")).unwrap();
        assert_eq!(found.display_name(), "Deployment/w");
        assert_eq!(found.namespace.as_deref(), Some("ns"));
        let unnamed =
            workload(&json!({"kind": "Pod", "metadata": {"generateName": "x-"}})).unwrap();
        assert_eq!(unnamed.display_name(), "Pod");
        assert!(unnamed.containers.is_empty());
        assert!(!found.controlled && !unnamed.controlled);
        let owned = json!({"kind": "Pod", "metadata": {"ownerReferences": [
            {"kind": "ReplicaSet", "name": "web-1", "controller": true}]}});
        assert!(workload(&owned).unwrap().controlled);
        let not_controller = json!({"kind": "Pod", "metadata": {"ownerReferences": [
            {"kind": "ConfigMap", "name": "x"}]}});
        assert!(!workload(&not_controller).unwrap().controlled);
    }

    #[test]
    fn absent_lists_and_images_yield_nothing() {
        let cases = [
            json!({"kind": "Pod"}),
            json!({"kind": "Pod", "spec": null}),
            json!({"kind": "Pod", "spec": {"containers": null}}),
            json!({"kind": "Deployment", "spec": {"replicas": 2}}),
            json!({"kind": "Pod", "spec": {"containers": [{"name": "a"}]}}),
        ];
        for case in cases {
            let found = workload(&case).unwrap();
            assert!(found.containers.is_empty(), "{case}");
        }
    }

    #[test]
    fn errors_name_the_place() {
        let cases = [
            (
                json!([1, 2]),
                "not a Kubernetes object: expected a JSON object with `kind`",
            ),
            (
                json!({"apiVersion": "v1"}),
                "not a Kubernetes object: expected a JSON object with `kind`",
            ),
            (
                json!({"kind": "ConfigMap"}),
                "kind \"ConfigMap\" has no pod template berth knows; expected one of Pod, \
                 Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, \
                 CronJob, PodTemplate",
            ),
            (
                json!({"kind": "Pod", "spec": []}),
                "/spec: expected a pod spec object",
            ),
            (
                json!({"kind": "Pod", "spec": {"containers": {"a": 1}}}),
                "/spec/containers: expected a list",
            ),
            (
                json!({"kind": "Job", "spec": {"template": {"spec": {"initContainers": ["x"]}}}}),
                "/spec/template/spec/initContainers/0: expected a container object",
            ),
            (
                json!({"kind": "Pod", "spec": {"containers": [{"name": "a", "image": 3}]}}),
                "/spec/containers/0/image: expected text",
            ),
        ];
        for (object, expect) in cases {
            let error = workload(&object).unwrap_err();
            assert_eq!(error.to_string(), expect, "{object}");
        }
    }
}
