//! Workloads: every container image a Kubernetes object would run, found in every pod template
//! and every container list, each with the JSON pointer of its `image` field (for patches).
//!
//! Objects arrive as `serde_json::Value` (an AdmissionReview's `object`, a manifest file). Kinds
//! that carry no pod template are an error, so a caller never mistakes "not understood" for "no
//! images". Inside the pod spec berth reads as Kubernetes does: a field Kubernetes does not know
//! there (`contianers:`, `imgae:`), a container without an image, or a pod spec without
//! containers is [`Unreadable`], which the policy denies, so that a typo never hides a container
//! from the judgement. Everywhere else unknown fields are ignored.

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

/// The fields of a `core/v1` PodSpec, from Kubernetes' `core/v1/types.go` as of July 2026 (a
/// field added later is unknown until this list learns it).
pub const POD_SPEC_FIELDS: &[&str] = &[
    "volumes",
    "initContainers",
    "containers",
    "ephemeralContainers",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "dnsPolicy",
    "nodeSelector",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "nodeName",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "shareProcessNamespace",
    "securityContext",
    "imagePullSecrets",
    "hostname",
    "subdomain",
    "affinity",
    "schedulerName",
    "tolerations",
    "hostAliases",
    "priorityClassName",
    "priority",
    "dnsConfig",
    "readinessGates",
    "runtimeClassName",
    "enableServiceLinks",
    "preemptionPolicy",
    "overhead",
    "topologySpreadConstraints",
    "setHostnameAsFQDN",
    "os",
    "hostUsers",
    "schedulingGates",
    "resourceClaims",
    "resources",
    "hostnameOverride",
    "schedulingGroup",
    "evictionResponders",
];

/// The fields of a `core/v1` Container (and of an EphemeralContainer, which adds
/// `targetContainerName`), from the same source as [`POD_SPEC_FIELDS`].
pub const CONTAINER_FIELDS: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "ports",
    "envFrom",
    "env",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "restartPolicyRules",
    "volumeMounts",
    "volumeDevices",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
];

/// The most containers (all lists together) berth reads in one pod spec. Real pods have a
/// handful; an object with more is unreadable, so one hostile object cannot make the decision
/// (and the answer) grow without bound.
pub const CONTAINERS_MAX: usize = 500;

/// A part of a pod spec that berth cannot read as Kubernetes would: what it holds would escape
/// the policy, so the policy denies it (rule `spec`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// JSON pointer of the field at fault (of the container, for one without an image).
    pub pointer: String,
    /// What is wrong, for a person.
    pub message: String,
    /// The container it is in, when it is in one.
    pub list: Option<ContainerList>,
    /// That container's name (empty when it has none, or for the pod spec itself).
    pub container: String,
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
    /// What in the pod spec berth could not read as Kubernetes would, in document order.
    pub unreadable: Vec<Unreadable>,
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

/// Finds every container image in `object`. Wrong types are [`WorkloadError::Malformed`];
/// unknown fields in the pod spec and its containers, a container without an image, and a pod
/// spec without containers (or none at all) are [`Unreadable`]; `initContainers` and
/// `ephemeralContainers` may be absent or null.
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
    let mut unreadable = Vec::new();
    match object.pointer(spec_pointer) {
        None | Some(Value::Null) => unreadable.push(Unreadable {
            pointer: spec_pointer.to_string(),
            message: format!(
                "{spec_pointer}: a {kind} needs a pod spec here (Kubernetes requires one, with \
                 at least one container)"
            ),
            list: None,
            container: String::new(),
        }),
        Some(Value::Object(spec)) => {
            unknown_fields(
                spec,
                spec_pointer,
                POD_SPEC_FIELDS,
                "the pod spec",
                |pointer, message| {
                    unreadable.push(Unreadable {
                        pointer,
                        message,
                        list: None,
                        container: String::new(),
                    });
                },
            );
            let total: usize = ContainerList::ALL
                .iter()
                .filter_map(|list| spec.get(list.field()).and_then(Value::as_array))
                .map(Vec::len)
                .sum();
            if total > CONTAINERS_MAX {
                unreadable.push(Unreadable {
                    pointer: spec_pointer.to_string(),
                    message: format!(
                        "{spec_pointer}: {total} containers; berth reads at most \
                         {CONTAINERS_MAX} in one pod spec (only the first {CONTAINERS_MAX} were \
                         checked)"
                    ),
                    list: None,
                    container: String::new(),
                });
            }
            let mut budget = CONTAINERS_MAX;
            for list in ContainerList::ALL {
                let list_pointer = format!("{spec_pointer}/{}", list.field());
                let items = match spec.get(list.field()) {
                    None | Some(Value::Null) => &Vec::new(),
                    Some(Value::Array(items)) => items,
                    Some(_) => return Err(malformed(&list_pointer, "expected a list")),
                };
                if list == ContainerList::Regular && items.is_empty() {
                    unreadable.push(Unreadable {
                        message: format!(
                            "{list_pointer}: the pod spec has no containers (Kubernetes requires \
                             at least one)"
                        ),
                        pointer: list_pointer.clone(),
                        list: None,
                        container: String::new(),
                    });
                }
                let read = items.len().min(budget);
                budget -= read;
                for (index, item) in items[..read].iter().enumerate() {
                    let item_pointer = format!("{list_pointer}/{index}");
                    let read = container(item, list, &item_pointer)?;
                    containers.extend(read.image);
                    unreadable.extend(read.unreadable);
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
        unreadable,
        controlled: has_controller(object),
    })
}

/// How many unknown fields of one mapping are reported one by one; the rest are counted.
const UNKNOWN_FIELDS_SHOWN: usize = 5;

/// Calls `found(pointer, message)` for each field of `fields` not in `known` (the first
/// [`UNKNOWN_FIELDS_SHOWN`], then once for the rest), with the closest known name as a
/// suggestion. `what` names the object in the message (`the pod spec`).
fn unknown_fields(
    fields: &serde_json::Map<String, Value>,
    pointer: &str,
    known: &[&'static str],
    what: &str,
    mut found: impl FnMut(String, String),
) {
    let unknown: Vec<&String> = fields
        .keys()
        .filter(|name| !known.contains(&name.as_str()))
        .collect();
    for name in unknown.iter().take(UNKNOWN_FIELDS_SHOWN) {
        let field_pointer = format!("{pointer}/{}", escape_pointer(name));
        let quoted = crate::quote::excerpt(name);
        let mut message = format!(
            "{}: unknown field `{quoted}` in {what}",
            crate::quote::escape(&field_pointer)
        );
        if let Some(suggestion) =
            crate::catalog::suggest::closest(name, known.iter().copied(), 1).first()
        {
            message.push_str(&format!("; did you mean `{suggestion}`?"));
        }
        found(field_pointer, message);
    }
    if let Some(more) = unknown.len().checked_sub(UNKNOWN_FIELDS_SHOWN)
        && more > 0
    {
        let message = format!("{pointer}: and {more} more unknown fields in {what}");
        found(pointer.to_string(), message);
    }
}

/// A mapping key as a JSON pointer segment (RFC 6901: `~` is `~0`, `/` is `~1`).
fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
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

/// What one container entry gives: its image, and what in it could not be read.
struct ReadContainer {
    image: Option<ContainerImage>,
    unreadable: Vec<Unreadable>,
}

/// One container entry. A container without an image is [`Unreadable`]: the API server rejects
/// such a pod, and berth cannot judge what it would run.
fn container(
    item: &Value,
    list: ContainerList,
    pointer: &str,
) -> Result<ReadContainer, WorkloadError> {
    let Some(fields) = item.as_object() else {
        return Err(malformed(pointer, "expected a container object"));
    };
    let name = match fields.get("name") {
        Some(Value::String(name)) => name.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err(malformed(&format!("{pointer}/name"), "expected text")),
    };
    let mut unreadable = Vec::new();
    let mut problem = |pointer: String, message: String| {
        unreadable.push(Unreadable {
            pointer,
            message,
            list: Some(list),
            container: name.clone(),
        });
    };
    let ephemeral_fields: Vec<&'static str>;
    let known = if list == ContainerList::Ephemeral {
        ephemeral_fields = [CONTAINER_FIELDS, &["targetContainerName"]].concat();
        &ephemeral_fields[..]
    } else {
        CONTAINER_FIELDS
    };
    unknown_fields(fields, pointer, known, "a container", &mut problem);
    let image = match fields.get("image") {
        None | Some(Value::Null) => {
            problem(
                pointer.to_string(),
                format!("{pointer}: the container has no `image` (Kubernetes requires one)"),
            );
            None
        }
        Some(Value::String(image)) => Some(ContainerImage {
            container: name.clone(),
            list,
            image: image.clone(),
            pointer: format!("{pointer}/image"),
        }),
        Some(_) => return Err(malformed(&format!("{pointer}/image"), "expected text")),
    };
    Ok(ReadContainer { image, unreadable })
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
            "restartPolicy": "Always"
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
        // Unknown fields outside the pod spec are Kubernetes' business, not berth's.
        json!({"kind": kind, "apiVersion": "v1", "metadata": {"name": "w", "namespace": "ns"},
               "spec": spec, "status": {"anything": true}})
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
            assert_eq!(found.unreadable, [], "{kind}");
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

    /// `pointer: message` for each unreadable part, the shape the cases below compare.
    fn unreadable(object: &Value) -> Vec<String> {
        let found = workload(object).unwrap();
        found
            .unreadable
            .iter()
            .map(|u| {
                let list = u.list.map(|list| list.to_string()).unwrap_or_default();
                format!("{list}:{} {}", u.container, u.message)
            })
            .collect()
    }

    #[test]
    fn absent_optional_lists_yield_nothing() {
        let cases = [
            json!({"kind": "Pod", "spec": {"containers": [{"name": "a", "image": "x"}]}}),
            json!({"kind": "Pod", "spec": {"containers": [{"name": "a", "image": "x"}],
                   "initContainers": null, "ephemeralContainers": []}}),
        ];
        for case in cases {
            assert_eq!(lines(&workload(&case).unwrap()).len(), 1, "{case}");
            assert_eq!(unreadable(&case), Vec::<String>::new(), "{case}");
        }
    }

    /// issue 15, item 11: `contianers:` dropped every container from the judgement and
    /// `imgae:` one container, and the check passed. Kubernetes would refuse (or not run) what
    /// berth skipped, so each is unreadable, with the pointer of the field at fault.
    #[test]
    fn typos_in_a_pod_spec_are_unreadable_not_skipped() {
        let cases = [
            (
                json!({"kind": "Deployment", "spec": {"template": {"spec": {
                    "contianers": [{"name": "app", "image": "evil.io/x"}]}}}}),
                vec![
                    ": /spec/template/spec/contianers: unknown field `contianers` in the pod \
                     spec; did you mean `containers`?",
                    ": /spec/template/spec/containers: the pod spec has no containers \
                     (Kubernetes requires at least one)",
                ],
            ),
            (
                json!({"kind": "Pod", "spec": {"containers": [
                    {"name": "ok", "image": "x"},
                    {"name": "app", "imgae": "evil.io/x", "a/b": 1}]}}),
                vec![
                    "containers:app /spec/containers/1/a~1b: unknown field `a/b` in a container",
                    "containers:app /spec/containers/1/imgae: unknown field `imgae` in a \
                     container; did you mean `image`?",
                    "containers:app /spec/containers/1: the container has no `image` \
                     (Kubernetes requires one)",
                ],
            ),
            (
                json!({"kind": "Pod", "spec": {"containers": [{"name": "a", "image": "x"}],
                    "ephemeralContainers": [{"name": "debug", "image": "busybox",
                        "targetContainerName": "a", "tagretContainerName": "a"}]}}),
                vec![
                    "ephemeralContainers:debug /spec/ephemeralContainers/0/tagretContainerName: \
                     unknown field `tagretContainerName` in a container; did you mean \
                     `targetContainerName`?",
                ],
            ),
            (
                json!({"kind": "Deployment", "spec": {"tempalte": {}}}),
                vec![
                    ": /spec/template/spec: a Deployment needs a pod spec here (Kubernetes \
                     requires one, with at least one container)",
                ],
            ),
            (
                json!({"kind": "Pod", "spec": {"containers": []}}),
                vec![
                    ": /spec/containers: the pod spec has no containers (Kubernetes requires at \
                     least one)",
                ],
            ),
        ];
        for (object, expect) in cases {
            assert_eq!(unreadable(&object), expect, "{object}");
        }
        // The containers that were read are still judged.
        let object = json!({"kind": "Pod", "spec": {"containers": [
            {"name": "ok", "image": "x"}, {"name": "app", "imgae": "evil.io/x"}]}});
        assert_eq!(lines(&workload(&object).unwrap()).len(), 1);
    }

    /// issue 15, item 3: one object of 135,000 containers made the webhook build a verdict (and
    /// an answer) of hundreds of megabytes.
    #[test]
    fn containers_past_the_bound_are_unreadable_and_not_read() {
        let container = |index: usize| json!({"name": format!("c{index}"), "image": "x"});
        let init: Vec<Value> = (0..CONTAINERS_MAX - 1).map(container).collect();
        let regular: Vec<Value> = (0..3).map(container).collect();
        let object =
            json!({"kind": "Pod", "spec": {"initContainers": init, "containers": regular}});
        let found = workload(&object).unwrap();
        assert_eq!(found.containers.len(), CONTAINERS_MAX);
        assert_eq!(
            found.containers.last().map(|c| c.pointer.as_str()),
            Some("/spec/containers/0/image")
        );
        assert_eq!(
            unreadable(&object),
            [
                ": /spec: 502 containers; berth reads at most 500 in one pod spec (only the first \
              500 were checked)"
            ]
        );
        let mut fields = serde_json::Map::new();
        fields.insert("image".to_string(), json!("x"));
        for index in 0..1000 {
            fields.insert(format!("f{index:04}"), json!(1));
        }
        let noisy = json!({"kind": "Pod", "spec": {"containers": [fields]}});
        let reported = unreadable(&noisy);
        assert_eq!(reported.len(), UNKNOWN_FIELDS_SHOWN + 1);
        assert_eq!(
            reported.last().map(String::as_str),
            Some("containers: /spec/containers/0: and 995 more unknown fields in a container")
        );
        let at_the_bound = json!({"kind": "Pod", "spec": {
            "containers": (0..CONTAINERS_MAX).map(container).collect::<Vec<_>>()}});
        assert_eq!(unreadable(&at_the_bound), Vec::<String>::new());
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
