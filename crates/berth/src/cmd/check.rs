//! `berth check`: the admission policy without a cluster. Image references and Kubernetes
//! manifests (JSON or YAML, multi-document, `List`s; files or stdin) are decided by the very
//! engine the webhook runs (`berth_core::policy::evaluate`), against a policy, the catalog and,
//! with `--store`, what `berth sync` learned about the registries; with `--resolve`, tags that
//! knowledge lacks are resolved at their registry as the webhook's resolver does. Exit 0 when
//! everything is allowed, 1 when something is denied, 2 for the user's mistakes, 3 for faults.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use berth_core::ImageRef;
use berth_core::catalog::{self, Catalog};
use berth_core::policy::{self, Knowledge, Policy, Request, Verdict};
use berth_core::usage::Use;
use berth_core::workload::{self, WorkloadError};
use berth_files::catalog_source::CatalogSource;
use berth_store::UsageSource;
use berth_sync::resolve::TagResolver;
use chrono::Utc;
use serde::Serialize;

use crate::cmd::catalog::{SourceFormat, catalog_path, read_valid};
use crate::cmd::{open_store, open_store_read_only, print_json, print_text, runtime};
use crate::environment::Environment;
use crate::exit::{NEGATIVE, usage};
use crate::registry_args::RegistryArgs;
use crate::resolve_args::ResolveArgs;

/// The largest manifest or policy file read (a `helm template` of a big chart is a few MiB).
const INPUT_SIZE_MAX: u64 = 64 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy file (default: $BERTH_POLICY).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The catalog: a file, or a directory whose *.yaml files are merged
    /// (default: $BERTH_CATALOG, then ./catalog.yaml).
    #[arg(long, value_name = "PATH")]
    pub catalog: Option<PathBuf>,
    /// The catalog's format: berth's, or Toolforge's images-v1.yaml read as it is.
    #[arg(long, value_enum, default_value_t = SourceFormat::Berth)]
    pub catalog_format: SourceFormat,
    /// An image reference to check as a new Pod would run it; repeatable.
    #[arg(long = "image", value_name = "REF")]
    pub images: Vec<String>,
    /// Kubernetes manifests: JSON or YAML files, several documents each, `List`s included;
    /// `-` reads stdin. Objects without a pod template (Services, ConfigMaps) are skipped.
    #[arg(value_name = "FILE")]
    pub manifests: Vec<PathBuf>,
    /// The namespace of objects that name none (exceptions match on it).
    #[arg(long, value_name = "NAME")]
    pub namespace: Option<String>,
    /// A label of the objects' namespace, for exceptions that select by label; repeatable.
    #[arg(long = "namespace-label", value_name = "KEY=VALUE")]
    pub namespace_labels: Vec<String>,
    /// Registry knowledge (tag digests for pins, lineage for the base rule) from this store
    /// (default: $BERTH_STORE; without either, berth knows no digests and the rules' `unknown`
    /// setting applies).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// With --resolve: tags the store does not know are resolved at their registry, as the
    /// webhook with `berth serve --resolve` does.
    #[command(flatten)]
    pub resolve: ResolveArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Decide at this moment instead of now: RFC 3339 or a day (2027-01-01).
    #[arg(long, value_name = "MOMENT")]
    pub now: Option<String>,
    /// Print JSON: one result per object, each with the engine's verdict.
    #[arg(long, conflicts_with = "sarif")]
    pub json: bool,
    /// Record what was checked in the store's usage inventory (source `ci`): which images
    /// this pipeline uses, for `berth usage` and retention. Needs a store.
    #[arg(long)]
    pub report: bool,
    /// With --report: the pipeline's name (default: from the CI's variables, GitHub's
    /// `GITHUB_REPOSITORY`/`GITHUB_WORKFLOW`, GitLab's `CI_PROJECT_PATH`/`CI_JOB_NAME`, Azure's
    /// `BUILD_REPOSITORY_NAME`/`SYSTEM_DEFINITIONNAME`).
    #[arg(long, value_name = "NAME", requires = "report")]
    pub pipeline: Option<String>,
    /// With --report: the branch (default: `GITHUB_REF_NAME`, `CI_COMMIT_REF_NAME` or
    /// `BUILD_SOURCEBRANCHNAME`; none outside CI).
    #[arg(long, value_name = "NAME", requires = "report")]
    pub branch: Option<String>,
    /// Print SARIF 2.1.0 (for code-scanning UIs): one result per denial, warning or waived
    /// finding, at the line of the container's image when the manifest is YAML.
    #[arg(long)]
    pub sarif: bool,
}

/// One object (or `--image`) and its verdict.
#[derive(Debug, Serialize)]
struct Checked {
    /// `file:line` of the object (`-` is stdin), or `--image`.
    source: String,
    /// `Deployment/web`, or the image reference.
    object: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    verdict: Verdict,
    /// The file the object came from (none for `--image`), for SARIF.
    #[serde(skip)]
    file: Option<String>,
    /// Lines of the object's start and of its containers' images (YAML input), for SARIF.
    #[serde(skip)]
    lines: BTreeMap<String, usize>,
}

/// An object with no pod template, left out.
#[derive(Debug, Serialize)]
struct Skipped {
    source: String,
    kind: String,
}

#[derive(Debug, Serialize)]
struct Report {
    allowed: bool,
    results: Vec<Checked>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped: Vec<Skipped>,
}

/// A Kubernetes object read from a manifest, with where it starts.
struct Object {
    source: String,
    /// The file it came from (`-` for stdin).
    file: String,
    value: serde_json::Value,
    /// Where the object sits in its document, as a JSON pointer (`/items/1` in a List).
    base: String,
    /// The line of every node of a YAML document, by JSON pointer (none for JSON input).
    lines: Option<Arc<BTreeMap<String, usize>>>,
}

impl Object {
    /// The line of a field of this object, when the input was YAML.
    fn line(&self, pointer: &str) -> Option<usize> {
        let lines = self.lines.as_ref()?;
        lines.get(&format!("{}{pointer}", self.base)).copied()
    }
}

/// Where the objects of one document come from.
struct Origin {
    file: String,
    lines: Option<Arc<BTreeMap<String, usize>>>,
}

pub fn exec(args: Args, env: &Environment) -> anyhow::Result<ExitCode> {
    let now = match &args.now {
        Some(text) => {
            catalog::parse_moment(text).map_err(|error| usage(format!("--now: {error}")))?
        }
        None => Utc::now(),
    };
    if args.images.is_empty() && args.manifests.is_empty() {
        return Err(usage(
            "nothing to check: give manifest files (`-` for stdin) or --image REF",
        ));
    }
    let namespace_labels = labels(&args.namespace_labels)?;
    let policy_path = args
        .policy
        .clone()
        .or_else(|| env.get("BERTH_POLICY").map(PathBuf::from))
        .ok_or_else(|| usage("no policy: give --policy FILE (or set BERTH_POLICY)"))?;
    let source = CatalogSource {
        path: catalog_path(args.catalog.clone(), env),
        format: args.catalog_format.into(),
    };
    let catalog = read_valid(&source, now)?;
    let (policy, _keys) = read_policy(&policy_path, &catalog)?;
    let mut objects = Vec::new();
    for path in &args.manifests {
        objects.extend(read_manifests(path)?);
    }
    let store_url = args.store.clone().or_else(|| env.get("BERTH_STORE"));
    let reporting = if args.report {
        let Some(url) = store_url.clone() else {
            return Err(usage(
                "--report records into the store: give --store URL (or set BERTH_STORE)",
            ));
        };
        Some((url, pipeline_name(&args, env)?, branch_name(&args, env)))
    } else {
        None
    };
    let mut uses: Vec<Use> = Vec::new();
    let knowledge = match store_url {
        None => Knowledge::default(),
        Some(url) => runtime()?.block_on(async {
            let store = open_store_read_only(&url).await?;
            // Only what these checks read, by point lookups; with --resolve, a tag resolved at
            // the registry may name any stored image, so the whole store is loaded.
            let knowledge = if args.resolve.resolve {
                store
                    .knowledge()
                    .await
                    .map(|(knowledge, _generation)| knowledge)
            } else {
                let images = checked_images(&args.images, &objects);
                let references =
                    policy::references_read(images.iter().map(String::as_str), &policy, &catalog);
                store.knowledge_for(&references).await
            };
            store.close().await;
            knowledge.context("read registry knowledge from the store")
        })?,
    };
    let knowledge = Arc::new(knowledge);
    // With --resolve, each object's unknown tags are resolved first, as the webhook does.
    let resolver = args
        .resolve
        .settings(|| args.registry.client_config(env))?
        .map(|settings| anyhow::Ok((TagResolver::new(settings), runtime()?)))
        .transpose()?;
    let knowledge_for = |images: &[String]| -> Arc<Knowledge> {
        match &resolver {
            None => Arc::clone(&knowledge),
            Some((resolver, runtime)) => {
                runtime.block_on(resolver.knowledge_for(images, &policy, &knowledge))
            }
        }
    };
    let mut report = Report {
        allowed: true,
        results: Vec::new(),
        skipped: Vec::new(),
    };
    for image in &args.images {
        let knowledge = knowledge_for(std::slice::from_ref(image));
        let verdict = policy::evaluate_image(image, &policy, &catalog, &knowledge, now);
        if let Some((_, _, branch)) = &reporting {
            uses.push(checked_use(branch, "image", image, "", image, &knowledge));
        }
        report.results.push(Checked {
            source: "--image".to_string(),
            object: image.clone(),
            namespace: args.namespace.clone(),
            verdict,
            file: None,
            lines: BTreeMap::new(),
        });
    }
    for object in objects {
        let found = match workload::workload(&object.value) {
            Ok(found) => found,
            Err(WorkloadError::UnknownKind { kind }) => {
                report.skipped.push(Skipped {
                    source: object.source,
                    kind,
                });
                continue;
            }
            Err(error) => return Err(usage(format!("{}: {error}", object.source))),
        };
        let object_name = found.display_name();
        let mut lines = BTreeMap::new();
        let pointers = (found.containers.iter().map(|c| c.pointer.as_str()))
            .chain(found.unreadable.iter().map(|u| u.pointer.as_str()));
        for pointer in std::iter::once("").chain(pointers) {
            if let Some(line) = object.line(pointer) {
                lines.insert(pointer.to_string(), line);
            }
        }
        let mut request = Request::create(found);
        if request.namespace.is_none() {
            request.namespace = args.namespace.clone();
        }
        request.namespace_labels = namespace_labels.clone();
        let images: Vec<String> = request
            .object
            .containers
            .iter()
            .map(|container| container.image.clone())
            .collect();
        let knowledge = knowledge_for(&images);
        let verdict = policy::evaluate(&request, &policy, &catalog, &knowledge, now);
        if let Some((_, _, branch)) = &reporting {
            let kind = request.object.kind.to_string();
            let name = request
                .object
                .name
                .clone()
                .unwrap_or_else(|| object.source.clone());
            uses.extend(request.object.containers.iter().map(|container| {
                checked_use(
                    branch,
                    &kind,
                    &name,
                    &container.container,
                    &container.image,
                    &knowledge,
                )
            }));
        }
        report.results.push(Checked {
            source: object.source,
            object: object_name,
            namespace: request.namespace,
            verdict,
            file: Some(object.file),
            lines,
        });
    }
    report.allowed = report.results.iter().all(|checked| checked.verdict.allowed);
    if let Some((url, pipeline, _)) = &reporting {
        // Recorded whatever the verdict: a denied image is still one the pipeline uses.
        let recorded = runtime()?.block_on(async {
            let store = open_store(url).await?;
            let recorded = store
                .record_usage(UsageSource::Ci, pipeline, &uses, false, Utc::now())
                .await;
            store.close().await;
            anyhow::Ok(recorded?)
        })?;
        eprintln!(
            "recorded {} uses of pipeline {:?}",
            recorded.recorded,
            berth_core::quote::escape(pipeline)
        );
    }
    if args.json {
        print_json(&report)?;
    } else if args.sarif {
        print_json(&sarif(&report))?;
    } else {
        print_text(&report_text(&report));
    }
    Ok(if report.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NEGATIVE)
    })
}

/// One checked container as a ci use: under the branch, with the digest the check knew.
fn checked_use(
    branch: &str,
    kind: &str,
    name: &str,
    container: &str,
    image: &str,
    knowledge: &Knowledge,
) -> Use {
    let reference = ImageRef::parse(image).ok();
    Use {
        namespace: branch.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        container: container.to_string(),
        image: image.to_string(),
        digest: reference
            .as_ref()
            .and_then(|reference| knowledge.digest_of(reference)),
        reference,
    }
}

/// `--pipeline`, else the CI's own names for the repository and the pipeline.
fn pipeline_name(args: &Args, env: &Environment) -> anyhow::Result<String> {
    if let Some(name) = &args.pipeline {
        return Ok(name.clone());
    }
    let pairs = [
        ("GITHUB_REPOSITORY", "GITHUB_WORKFLOW"),
        ("CI_PROJECT_PATH", "CI_JOB_NAME"),
        ("BUILD_REPOSITORY_NAME", "SYSTEM_DEFINITIONNAME"),
    ];
    for (repository, pipeline) in pairs {
        if let Some(repository) = env.get(repository) {
            return Ok(match env.get(pipeline) {
                Some(pipeline) => format!("{repository}/{pipeline}"),
                None => repository,
            });
        }
    }
    Err(usage(
        "--report: name the pipeline with --pipeline NAME (no GitHub, GitLab or Azure \
         Pipelines variables are set)",
    ))
}

/// `--branch`, else the CI's branch variable, else none.
fn branch_name(args: &Args, env: &Environment) -> String {
    args.branch
        .clone()
        .or_else(|| env.get("GITHUB_REF_NAME"))
        .or_else(|| env.get("CI_COMMIT_REF_NAME"))
        .or_else(|| env.get("BUILD_SOURCEBRANCHNAME"))
        .unwrap_or_default()
}

/// Every image reference the checks will decide: `--image` values and the containers of the
/// manifests' workloads (objects that are no workload have none).
fn checked_images(images: &[String], objects: &[Object]) -> Vec<String> {
    let mut all = images.to_vec();
    for object in objects {
        if let Ok(found) = workload::workload(&object.value) {
            all.extend(
                found
                    .containers
                    .into_iter()
                    .map(|container| container.image),
            );
        }
    }
    all
}

fn labels(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => Err(usage(format!(
                "--namespace-label {pair:?}: expected KEY=VALUE"
            ))),
        })
        .collect()
}

/// Reads a file (or stdin for `-`) within [`INPUT_SIZE_MAX`]; a missing file is the user's
/// mistake, any other read error a fault.
fn read_input(path: &Path) -> anyhow::Result<String> {
    let mut text = Vec::new();
    let limit = INPUT_SIZE_MAX + 1;
    let read = if path == Path::new("-") {
        std::io::stdin().take(limit).read_to_end(&mut text)
    } else {
        match std::fs::File::open(path) {
            Ok(file) => file.take(limit).read_to_end(&mut text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(usage(format!("{}: no such file", path.display())));
            }
            Err(error) => Err(error),
        }
    };
    read.with_context(|| format!("cannot read {}", path.display()))?;
    if text.len() as u64 > INPUT_SIZE_MAX {
        return Err(usage(format!(
            "{} is larger than {INPUT_SIZE_MAX} bytes",
            path.display()
        )));
    }
    catalog::read::utf8_text(&path.display().to_string(), text)
        .map_err(|diagnostic| usage(diagnostic.to_string()))
}

/// Loads the policy and its trusted keys; its errors (approved bases the catalog does not
/// name, keys that cannot be read) are printed as `file:line:column` and make a usage error.
pub fn read_policy(
    path: &Path,
    catalog: &Catalog,
) -> anyhow::Result<(Policy, Vec<berth_trust::TrustedKey>)> {
    // Name the option: several files are in play ("nosuch.yaml: no such file" alone is not
    // enough to find the mistake).
    let text = read_input(path).map_err(|error| error.context("--policy"))?;
    let name = path.display().to_string();
    let mut loaded = policy::load_checked(&name, &text, catalog);
    let mut keys = Vec::new();
    if let Some(policy) = &mut loaded.policy {
        let (read, problems) = berth_files::policy_keys::read_keys(policy, path);
        keys = read;
        if !problems.is_empty() {
            loaded.diagnostics.extend(problems);
            loaded.policy = None;
        }
    }
    for diagnostic in &loaded.diagnostics {
        eprintln!("{diagnostic}");
    }
    let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
    match loaded.policy {
        Some(policy) => Ok((policy, keys)),
        None => Err(usage(format!(
            "the policy {name} has {errors} error{}",
            if errors == 1 { "" } else { "s" }
        ))),
    }
}

/// The trusted keys of the policy at `path` (its `signatures.keys`), for `berth sync`: the
/// file is read as `berth check` reads it, without the catalog's checks; errors print as
/// `file:line:column` and make a usage error.
pub fn read_policy_keys(path: &Path) -> anyhow::Result<Vec<berth_trust::TrustedKey>> {
    let text = read_input(path).map_err(|error| error.context("--policy"))?;
    let name = path.display().to_string();
    let loaded = policy::load(&name, &text);
    let mut diagnostics = loaded.diagnostics;
    let mut keys = Vec::new();
    if let Some(mut policy) = loaded.policy {
        let (read, problems) = berth_files::policy_keys::read_keys(&mut policy, path);
        keys = read;
        diagnostics.extend(problems);
    }
    for diagnostic in &diagnostics {
        eprintln!("{diagnostic}");
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        return Err(usage(format!(
            "the policy {name} has {errors} error{}",
            if errors == 1 { "" } else { "s" }
        )));
    }
    Ok(keys)
}

/// Every object in a manifest file: JSON (one value, or several in a row) or YAML (documents
/// separated by `---`); `List` objects and top-level arrays are opened up.
fn read_manifests(path: &Path) -> anyhow::Result<Vec<Object>> {
    let text = read_input(path)?;
    let name = if path == Path::new("-") {
        "-".to_string()
    } else {
        path.display().to_string()
    };
    let mut objects = Vec::new();
    if text.trim_start().starts_with(['{', '[']) {
        let stream = serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>();
        for (index, value) in stream.enumerate() {
            let value = value.map_err(|error| {
                usage(format!(
                    "{name}:{}:{}: invalid JSON: {error}",
                    error.line(),
                    error.column()
                ))
            })?;
            let source = if index == 0 {
                name.clone()
            } else {
                format!("{name}[{index}]")
            };
            let origin = Origin {
                file: name.clone(),
                lines: None,
            };
            flatten(&origin, source, String::new(), value, &mut objects);
        }
    } else {
        let documents = catalog::yaml::parse_documents(&text).map_err(|error| {
            usage(format!(
                "{name}:{}:{}: invalid YAML: {}",
                error.position.line, error.position.column, error.message
            ))
        })?;
        for document in documents {
            let source = format!("{name}:{}", document.position.line);
            let value = document.to_json().map_err(|error| {
                usage(format!(
                    "{name}:{}:{}: {}",
                    error.position.line, error.position.column, error.message
                ))
            })?;
            let mut lines = BTreeMap::new();
            node_lines(&document, String::new(), &mut lines);
            let origin = Origin {
                file: name.clone(),
                lines: Some(Arc::new(lines)),
            };
            flatten(&origin, source, String::new(), value, &mut objects);
        }
    }
    Ok(objects)
}

/// Records the line of every node of a YAML tree under its JSON pointer (mapping keys are
/// escaped as RFC 6901 says).
fn node_lines(
    node: &catalog::yaml::Node<'_>,
    pointer: String,
    lines: &mut BTreeMap<String, usize>,
) {
    use catalog::yaml::Value as Yaml;
    lines.insert(pointer.clone(), node.position.line);
    match &node.value {
        Yaml::Scalar(_) => {}
        Yaml::Sequence(items) => {
            for (index, item) in items.iter().enumerate() {
                node_lines(item, format!("{pointer}/{index}"), lines);
            }
        }
        Yaml::Mapping(pairs) => {
            for (key, value) in pairs {
                if let Yaml::Scalar(key) = &key.value {
                    let escaped = key.text.replace('~', "~0").replace('/', "~1");
                    node_lines(value, format!("{pointer}/{escaped}"), lines);
                }
            }
        }
    }
}

/// Adds `value` as objects: a `List`'s items and an array's elements one by one, an empty
/// document not at all. `base` is the value's JSON pointer in its document.
fn flatten(
    origin: &Origin,
    source: String,
    base: String,
    value: serde_json::Value,
    objects: &mut Vec<Object>,
) {
    match value {
        serde_json::Value::Null => {}
        serde_json::Value::Array(items) => {
            for (index, item) in items.into_iter().enumerate() {
                let item_base = format!("{base}/{index}");
                flatten(
                    origin,
                    format!("{source}[{index}]"),
                    item_base,
                    item,
                    objects,
                );
            }
        }
        serde_json::Value::Object(mut fields)
            if fields.get("kind").and_then(|kind| kind.as_str()) == Some("List") =>
        {
            let items = fields.remove("items").unwrap_or_default();
            let items_base = format!("{base}/items");
            flatten(
                origin,
                format!("{source} items"),
                items_base,
                items,
                objects,
            );
        }
        value => objects.push(Object {
            source,
            file: origin.file.clone(),
            value,
            base,
            lines: origin.lines.clone(),
        }),
    }
}

fn report_text(report: &Report) -> String {
    let mut text = String::new();
    let mut denied = 0;
    for checked in &report.results {
        let verdict = &checked.verdict;
        if !verdict.allowed {
            denied += 1;
        }
        let answer = if verdict.allowed { "allowed" } else { "denied" };
        text.push_str(&format!(
            "{}: {}: {answer}\n",
            checked.source, checked.object
        ));
        for finding in &verdict.denials {
            text.push_str(&format!("  deny    {}\n", finding_text(finding)));
        }
        for finding in &verdict.warnings {
            text.push_str(&format!("  warn    {}\n", finding_text(finding)));
        }
        for exempted in &verdict.exempted {
            text.push_str(&format!(
                "  exempt  {} (exception at {}: {})\n",
                finding_text(&exempted.finding),
                exempted.exception,
                exempted.reason
            ));
        }
        for patch in &verdict.patches {
            text.push_str(&format!("  pin     {} -> {}\n", patch.path, patch.value));
        }
    }
    for skipped in &report.skipped {
        text.push_str(&format!(
            "{}: {} has no pod template: skipped\n",
            skipped.source, skipped.kind
        ));
    }
    let checked = report.results.len();
    text.push_str(&format!(
        "{checked} checked, {denied} denied, {} skipped\n",
        report.skipped.len()
    ));
    text
}

/// `container "app" (image): rule: message`, or `rule: message` for a bare `--image`.
fn finding_text(finding: &policy::Finding) -> String {
    if finding.container.is_empty() {
        format!("{}: {}", finding.rule, finding.message)
    } else {
        finding.to_string()
    }
}

/// The report as SARIF 2.1.0: denials are errors, warnings warnings, waived findings notes with
/// an external suppression carrying the exception's reason.
fn sarif(report: &Report) -> serde_json::Value {
    use serde_json::json;
    let rules: Vec<serde_json::Value> = [
        ("reference", "The image reference must be valid."),
        (
            "spec",
            "The pod spec reads as Kubernetes reads it: no unknown fields, an image in every \
             container.",
        ),
        (
            "registries",
            "Images come from allowed repositories (exact host, whole segments).",
        ),
        ("catalog", "Images are in the platform's catalog."),
        (
            "lifecycle",
            "Deprecated images warn; end-of-life images are refused for new workloads.",
        ),
        (
            "base",
            "Images are built on an approved base (layer lineage).",
        ),
        ("digest", "Image references are pinned by digest."),
    ]
    .iter()
    .map(|(id, text)| json!({"id": id, "shortDescription": {"text": text}}))
    .collect();
    let mut results = Vec::new();
    for checked in &report.results {
        let location = |finding: &policy::Finding| -> Vec<serde_json::Value> {
            let Some(file) = &checked.file else {
                return Vec::new();
            };
            let mut physical = json!({"artifactLocation": {"uri": file}});
            let line = checked
                .lines
                .get(&finding.pointer)
                .or_else(|| checked.lines.get(""));
            if let Some(line) = line {
                physical["region"] = json!({"startLine": line});
            }
            vec![json!({"physicalLocation": physical})]
        };
        let result = |finding: &policy::Finding, level: &str| {
            json!({
                "ruleId": finding.rule.as_str(),
                "level": level,
                "message": {"text": format!("{}: {}", checked.object, finding_text(finding))},
                "locations": location(finding),
            })
        };
        for finding in &checked.verdict.denials {
            results.push(result(finding, "error"));
        }
        for finding in &checked.verdict.warnings {
            results.push(result(finding, "warning"));
        }
        for exempted in &checked.verdict.exempted {
            let mut waived = result(&exempted.finding, "note");
            waived["suppressions"] = json!([{
                "kind": "external",
                "justification": format!("{} (exception at {})", exempted.reason, exempted.exception),
            }]);
            results.push(waived);
        }
    }
    json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {"name": "berth", "version": env!("CARGO_PKG_VERSION"), "rules": rules}},
            "results": results,
        }],
    })
}
