//! Reading a policy file: the catalog's position-keeping YAML tree and [`Walker`], so a policy
//! reports every problem at once as `file:line:column: error: field: message`, like a catalog.

use std::collections::BTreeMap;

use super::{
    BaseName, BaseRule, CatalogRule, DigestAction, DigestRule, Exception, KeySource, KeySpec,
    LifecycleRule, Mode, PinOn, Policy, ProvenanceFrom, ProvenanceRule, RegistriesRule,
    RepositoryPattern, Requirement, RuleKind, SignaturesRule, Unknown,
};
use crate::catalog::Catalog;
use crate::catalog::diagnostic::{Diagnostic, Diagnostics};
use crate::catalog::read::{Path, Walker};
use crate::catalog::yaml::{Node, Value};
use crate::reference::ImageRef;

/// Top-level fields of a policy file.
pub const FILE_FIELDS: &[&str] = &[
    "registries",
    "catalog",
    "lifecycle",
    "base",
    "digest",
    "provenance",
    "signatures",
    "exceptions",
];
pub const REGISTRIES_FIELDS: &[&str] = &["mode", "allow"];
pub const MODE_ONLY_FIELDS: &[&str] = &["mode"];
pub const BASE_FIELDS: &[&str] = &["mode", "approved", "unknown"];
pub const DIGEST_FIELDS: &[&str] = &["mode", "action", "unknown", "on"];
pub const PROVENANCE_FIELDS: &[&str] = &["mode", "require", "from", "unknown"];
pub const SIGNATURES_FIELDS: &[&str] = &["mode", "keys", "unknown"];
pub const KEY_FIELDS: &[&str] = &["name", "pem", "file", "namespaces", "images"];
pub const EXCEPTION_FIELDS: &[&str] = &["namespaces", "labels", "rules", "reason", "expires"];

/// The outcome of [`load`]: a policy when there was no error, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    pub policy: Option<Policy>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads one policy file and checks it against `catalog` (approved bases it does not name):
/// what `berth check` and `berth serve` (at start and on every reload of either file) both do.
/// The policy is `None` when any diagnostic is an error.
pub fn load_checked(file: &str, text: &str, catalog: &Catalog) -> Loaded {
    let mut loaded = load(file, text);
    if let Some(policy) = &loaded.policy {
        loaded.diagnostics.extend(check_catalog(policy, catalog));
    }
    if loaded.diagnostics.iter().any(Diagnostic::is_error) {
        loaded.policy = None;
    }
    loaded
}

/// Reads one policy file. `file` is the name messages use (usually the path).
pub fn load(file: &str, text: &str) -> Loaded {
    let mut diagnostics = Diagnostics::default();
    let policy = {
        let mut walker = Walker {
            file,
            diagnostics: &mut diagnostics,
        };
        read_policy(&mut walker, text)
    };
    let policy = policy.filter(|_| !diagnostics.has_errors());
    Loaded {
        policy,
        diagnostics: diagnostics.into_sorted(),
    }
}

/// Problems that need the catalog: an approved base naming no catalog entry.
pub fn check_catalog(policy: &Policy, catalog: &Catalog) -> Vec<Diagnostic> {
    let mut diagnostics = Diagnostics::default();
    if let Some(rule) = &policy.base {
        for (index, (name, at)) in rule.approved.iter().zip(&rule.approved_at).enumerate() {
            if let BaseName::Catalog(name) = name
                && catalog.get(name).is_none()
            {
                let mut message = format!("{name:?} names no catalog entry");
                let suggestions = catalog.suggestions(name);
                if !suggestions.is_empty() {
                    message.push_str(&format!("; did you mean {}?", suggestions.join(", ")));
                }
                diagnostics.error(at, &format!("base.approved[{index}]"), message);
            }
        }
    }
    diagnostics.into_sorted()
}

fn read_policy(walker: &mut Walker<'_>, text: &str) -> Option<Policy> {
    let root = walker.document(text)?;
    let path = Path::Root;
    let fields = walker.fields(&root, &path, FILE_FIELDS)?;
    let mut policy = Policy::default();
    for (name, field) in fields.iter() {
        let here = path.field(name);
        let value = field.value;
        match name {
            "registries" => policy.registries = registries(walker, value, &here),
            "catalog" => {
                policy.catalog = mode_only(walker, value, &here).map(|mode| CatalogRule { mode });
            }
            "lifecycle" => {
                policy.lifecycle =
                    mode_only(walker, value, &here).map(|mode| LifecycleRule { mode });
            }
            "base" => policy.base = base(walker, value, &here),
            "digest" => policy.digest = digest(walker, value, &here),
            "provenance" => policy.provenance = provenance(walker, value, &here),
            "signatures" => policy.signatures = signatures(walker, value, &here),
            "exceptions" => policy.exceptions = exceptions(walker, value, &here),
            other => unreachable!("field {other} is in FILE_FIELDS but not read"),
        }
    }
    if let (Some(rule), None) = (&policy.provenance, &policy.signatures)
        && rule.from.contains(&ProvenanceFrom::Attestation)
        && let Some(field) = fields.get("provenance")
    {
        walker.error(
            field.value.position,
            &path.field("provenance").field("from"),
            "attestations count only when signed by a trusted key: add a `signatures` rule \
             with `keys`",
        );
    }
    if RuleKind::CONFIGURABLE
        .into_iter()
        .all(|kind| policy.mode(kind).is_none())
        && !walker.diagnostics.has_errors()
    {
        walker.error(
            root.position,
            &path,
            format!(
                "the policy has no rule; expected at least one of {}",
                rule_names()
            ),
        );
    }
    Some(policy)
}

/// A rule section's fields; an empty section (`lifecycle:` or `lifecycle: {}`) is a rule with
/// its defaults.
fn section<'n, 'a>(
    walker: &mut Walker<'_>,
    node: &'n Node<'a>,
    path: &Path<'_>,
    known: &'static [&'static str],
) -> Option<crate::catalog::read::Fields<'n, 'a>> {
    if let Value::Scalar(scalar) = &node.value
        && scalar.is_null()
    {
        return walker.fields(&EMPTY_MAPPING, path, known);
    }
    walker.fields(node, path, known)
}

static EMPTY_MAPPING: Node<'static> = Node {
    position: crate::catalog::yaml::Position { line: 0, column: 0 },
    value: Value::Mapping(Vec::new()),
};

fn mode(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<Mode> {
    let text = walker.required_text(node, path)?;
    match text.as_str() {
        "enforce" => Some(Mode::Enforce),
        "warn" => Some(Mode::Warn),
        _ => {
            let message = format!("unknown mode {text:?}; expected enforce or warn");
            walker.error(node.position, path, message);
            None
        }
    }
}

fn unknown(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<Unknown> {
    let text = walker.required_text(node, path)?;
    match text.as_str() {
        "deny" => Some(Unknown::Deny),
        "warn" => Some(Unknown::Warn),
        "allow" => Some(Unknown::Allow),
        _ => {
            let message = format!("unknown handling {text:?}; expected deny, warn or allow");
            walker.error(node.position, path, message);
            None
        }
    }
}

/// The section's `mode`, defaulting to enforce.
fn section_mode(
    walker: &mut Walker<'_>,
    fields: &crate::catalog::read::Fields<'_, '_>,
    path: &Path<'_>,
) -> Mode {
    fields
        .get("mode")
        .and_then(|field| mode(walker, field.value, &path.field("mode")))
        .unwrap_or_default()
}

fn mode_only(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<Mode> {
    let fields = section(walker, node, path, MODE_ONLY_FIELDS)?;
    Some(section_mode(walker, &fields, path))
}

fn registries(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<RegistriesRule> {
    let fields = section(walker, node, path, REGISTRIES_FIELDS)?;
    let mode = section_mode(walker, &fields, path);
    let allow_path = path.field("allow");
    let Some(allow_field) = fields.get("allow") else {
        walker.error(
            node.position,
            &allow_path,
            "missing field: the repositories images may come from (registry.example.com/**)",
        );
        return None;
    };
    let mut allow = Vec::new();
    let items = walker
        .sequence(allow_field.value, &allow_path)
        .unwrap_or_default();
    for (index, item) in items.iter().enumerate() {
        let item_path = allow_path.index(index);
        let Some(text) = walker.required_text(item, &item_path) else {
            continue;
        };
        match RepositoryPattern::parse(&text) {
            Ok(pattern) => allow.push(pattern),
            Err(message) => walker.error(item.position, &item_path, message),
        }
    }
    if items.is_empty() {
        walker.error(
            allow_field.value.position,
            &allow_path,
            "an empty list would deny every image; list the allowed repositories",
        );
    }
    Some(RegistriesRule { mode, allow })
}

fn base(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<BaseRule> {
    let fields = section(walker, node, path, BASE_FIELDS)?;
    let mode = section_mode(walker, &fields, path);
    let unknown_handling = fields
        .get("unknown")
        .and_then(|field| unknown(walker, field.value, &path.field("unknown")))
        .unwrap_or_default();
    let approved_path = path.field("approved");
    let Some(approved_field) = fields.get("approved") else {
        walker.error(
            node.position,
            &approved_path,
            "missing field: the approved bases (catalog names or image references)",
        );
        return None;
    };
    let mut approved = Vec::new();
    let mut approved_at = Vec::new();
    let items = walker
        .sequence(approved_field.value, &approved_path)
        .unwrap_or_default();
    if items.is_empty() {
        walker.error(
            approved_field.value.position,
            &approved_path,
            "an empty list would deny every image; name the approved bases",
        );
    }
    for (index, item) in items.iter().enumerate() {
        let item_path = approved_path.index(index);
        let Some(text) = walker.required_text(item, &item_path) else {
            continue;
        };
        // A catalog name has no `/`, `:` or `@`; anything else is an image reference.
        let name = if text.contains(['/', ':', '@']) {
            match ImageRef::parse(&text) {
                Ok(image) => BaseName::Image(image),
                Err(error) => {
                    walker.error(item.position, &item_path, error.to_string());
                    continue;
                }
            }
        } else {
            BaseName::Catalog(text)
        };
        approved.push(name);
        approved_at.push(walker.location(item.position));
    }
    Some(BaseRule {
        mode,
        approved,
        approved_at,
        unknown: unknown_handling,
    })
}

fn digest(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<DigestRule> {
    let fields = section(walker, node, path, DIGEST_FIELDS)?;
    let mode = section_mode(walker, &fields, path);
    let unknown_handling = fields
        .get("unknown")
        .and_then(|field| unknown(walker, field.value, &path.field("unknown")))
        .unwrap_or_default();
    let action_path = path.field("action");
    let action = match fields.get("action") {
        None => DigestAction::Require,
        Some(field) => {
            let text = walker.required_text(field.value, &action_path)?;
            match text.as_str() {
                "require" => DigestAction::Require,
                "pin" => DigestAction::Pin,
                _ => {
                    let message = format!("unknown action {text:?}; expected require or pin");
                    walker.error(field.value.position, &action_path, message);
                    return None;
                }
            }
        }
    };
    if action == DigestAction::Require
        && let Some(field) = fields.get("unknown")
    {
        walker.error(
            field.key.position,
            &path.field("unknown"),
            "`unknown` applies to `action: pin` only (require needs no knowledge)",
        );
    }
    let on_path = path.field("on");
    let on = match fields.get("on") {
        None => PinOn::All,
        Some(field) => {
            if action == DigestAction::Require {
                walker.error(
                    field.key.position,
                    &on_path,
                    "`on` applies to `action: pin` only (require judges every kind)",
                );
            }
            let text = walker.required_text(field.value, &on_path)?;
            match text.as_str() {
                "all" => PinOn::All,
                "pods" => PinOn::Pods,
                _ => {
                    let message = format!("unknown value {text:?}; expected all or pods");
                    walker.error(field.value.position, &on_path, message);
                    return None;
                }
            }
        }
    };
    Some(DigestRule {
        mode,
        action,
        on,
        unknown: unknown_handling,
    })
}

/// The rules a policy file can name, for messages.
fn rule_names() -> String {
    let names: Vec<&str> = RuleKind::CONFIGURABLE
        .iter()
        .map(|kind| kind.as_str())
        .collect();
    names.join(", ")
}

fn provenance(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<ProvenanceRule> {
    let fields = section(walker, node, path, PROVENANCE_FIELDS)?;
    let mode = section_mode(walker, &fields, path);
    let unknown_handling = fields
        .get("unknown")
        .and_then(|field| unknown(walker, field.value, &path.field("unknown")))
        .unwrap_or_default();
    let mut require = Vec::new();
    match fields.get("require") {
        None => require.push(Requirement::Tested),
        Some(field) => {
            let require_path = path.field("require");
            let items = walker
                .sequence(field.value, &require_path)
                .unwrap_or_default();
            if items.is_empty() {
                walker.error(
                    field.value.position,
                    &require_path,
                    "an empty list requires nothing; name tested, source or both",
                );
            }
            for (index, item) in items.iter().enumerate() {
                let item_path = require_path.index(index);
                let Some(text) = walker.required_text(item, &item_path) else {
                    continue;
                };
                match text.as_str() {
                    "tested" => require.push(Requirement::Tested),
                    "source" => require.push(Requirement::Source),
                    _ => walker.error(
                        item.position,
                        &item_path,
                        format!("unknown requirement {text:?}; expected tested or source"),
                    ),
                }
            }
        }
    }
    require.sort_unstable();
    require.dedup();
    let mut from = Vec::new();
    match fields.get("from") {
        None => from.push(ProvenanceFrom::Berth),
        Some(field) => {
            let from_path = path.field("from");
            let items = walker.sequence(field.value, &from_path).unwrap_or_default();
            if items.is_empty() {
                walker.error(
                    field.value.position,
                    &from_path,
                    "an empty list accepts no evidence; name berth, attestation or both",
                );
            }
            for (index, item) in items.iter().enumerate() {
                let item_path = from_path.index(index);
                let Some(text) = walker.required_text(item, &item_path) else {
                    continue;
                };
                match text.as_str() {
                    "berth" => from.push(ProvenanceFrom::Berth),
                    "attestation" => from.push(ProvenanceFrom::Attestation),
                    _ => walker.error(
                        item.position,
                        &item_path,
                        format!("unknown source {text:?}; expected berth or attestation"),
                    ),
                }
            }
        }
    }
    from.sort_unstable();
    from.dedup();
    Some(ProvenanceRule {
        mode,
        require,
        unknown: unknown_handling,
        from,
    })
}

fn signatures(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<SignaturesRule> {
    let fields = section(walker, node, path, SIGNATURES_FIELDS)?;
    let mode = section_mode(walker, &fields, path);
    let unknown_handling = fields
        .get("unknown")
        .and_then(|field| unknown(walker, field.value, &path.field("unknown")))
        .unwrap_or_default();
    let keys_path = path.field("keys");
    let Some(keys_field) = fields.get("keys") else {
        walker.error(
            node.position,
            &keys_path,
            "missing field: the public keys whose signatures count ({name: ci, file: ci.pub})",
        );
        return None;
    };
    let items = walker
        .sequence(keys_field.value, &keys_path)
        .unwrap_or_default();
    if items.is_empty() {
        walker.error(
            keys_field.value.position,
            &keys_path,
            "an empty list would trust nobody; list the keys whose signatures count",
        );
    }
    let mut keys: Vec<KeySpec> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let item_path = keys_path.index(index);
        let Some(key) = key_spec(walker, item, &item_path) else {
            continue;
        };
        if keys.iter().any(|other| other.name == key.name) {
            walker.error(
                item.position,
                &item_path.field("name"),
                format!("a second key named {:?}; key names are unique", key.name),
            );
            continue;
        }
        keys.push(key);
    }
    Some(SignaturesRule {
        mode,
        unknown: unknown_handling,
        keys,
    })
}

fn key_spec(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<KeySpec> {
    let fields = walker.fields(node, path, KEY_FIELDS)?;
    let name = match fields.get("name") {
        Some(field) => walker.name(field.value, &path.field("name")),
        None => {
            walker.error(
                node.position,
                &path.field("name"),
                "missing field: the key's name, shown in findings and `berth provenance`",
            );
            None
        }
    };
    let pem = fields
        .get("pem")
        .and_then(|field| walker.required_text(field.value, &path.field("pem")));
    let file = fields
        .get("file")
        .and_then(|field| walker.required_text(field.value, &path.field("file")));
    let source = match (pem, file) {
        (Some(pem), None) => Some(KeySource::Pem(pem)),
        (None, Some(file)) => Some(KeySource::File(file)),
        (Some(_), Some(_)) => {
            walker.error(node.position, path, "a key has `pem` or `file`, not both");
            None
        }
        (None, None) => {
            if !fields.contains("pem") && !fields.contains("file") {
                walker.error(
                    node.position,
                    path,
                    "missing field: `file` (a PEM public key, relative to this file) or `pem`",
                );
            }
            None
        }
    };
    let mut namespaces = Vec::new();
    if let Some(field) = fields.get("namespaces") {
        let here = path.field("namespaces");
        for (index, item) in walker
            .sequence(field.value, &here)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if let Some(text) = walker.required_text(item, &here.index(index)) {
                namespaces.push(text);
            }
        }
    }
    let mut images = Vec::new();
    if let Some(field) = fields.get("images") {
        let here = path.field("images");
        for (index, item) in walker
            .sequence(field.value, &here)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let item_path = here.index(index);
            let Some(text) = walker.required_text(item, &item_path) else {
                continue;
            };
            match RepositoryPattern::parse(&text) {
                Ok(pattern) => images.push(pattern),
                Err(message) => walker.error(item.position, &item_path, message),
            }
        }
    }
    Some(KeySpec {
        name: name?,
        source: source?,
        namespaces,
        images,
        fingerprint: None,
        at: walker.location(node.position),
    })
}

fn exceptions(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Vec<Exception> {
    let mut exceptions = Vec::new();
    let items = walker.sequence(node, path).unwrap_or_default();
    for (index, item) in items.iter().enumerate() {
        let item_path = path.index(index);
        if let Some(exception) = exception(walker, item, &item_path) {
            exceptions.push(exception);
        }
    }
    exceptions
}

fn exception(walker: &mut Walker<'_>, node: &Node<'_>, path: &Path<'_>) -> Option<Exception> {
    let fields = walker.fields(node, path, EXCEPTION_FIELDS)?;
    let mut exception = Exception {
        namespaces: Vec::new(),
        labels: BTreeMap::new(),
        rules: Vec::new(),
        reason: String::new(),
        expires: None,
        at: walker.location(node.position),
    };
    for (name, field) in fields.iter() {
        let here = path.field(name);
        let value = field.value;
        match name {
            "namespaces" => {
                let items = walker.sequence(value, &here).unwrap_or_default();
                for (index, item) in items.iter().enumerate() {
                    if let Some(text) = walker.required_text(item, &here.index(index)) {
                        exception.namespaces.push(text);
                    }
                }
            }
            "labels" => {
                let pairs = walker.mapping(value, &here).unwrap_or_default();
                for (key, value) in pairs {
                    let Some(key_text) = walker.key_text(key, &here) else {
                        continue;
                    };
                    let value_path = here.field(key_text);
                    if let Some(text) = walker.required_text(value, &value_path) {
                        exception.labels.insert(key_text.to_string(), text);
                    }
                }
            }
            "rules" => {
                let items = walker.sequence(value, &here).unwrap_or_default();
                for (index, item) in items.iter().enumerate() {
                    let item_path = here.index(index);
                    let Some(text) = walker.required_text(item, &item_path) else {
                        continue;
                    };
                    match RuleKind::parse(&text) {
                        Some(kind) => exception.rules.push(kind),
                        None => walker.error(
                            item.position,
                            &item_path,
                            format!("unknown rule {text:?}; expected one of {}", rule_names()),
                        ),
                    }
                }
            }
            "reason" => exception.reason = walker.required_text(value, &here).unwrap_or_default(),
            "expires" => exception.expires = walker.date(value, &here),
            other => unreachable!("field {other} is in EXCEPTION_FIELDS but not read"),
        }
    }
    if !fields.contains("reason") {
        walker.error(
            node.position,
            &path.field("reason"),
            "missing field: say why the exception exists (it is shown with every waived finding)",
        );
    }
    if exception.namespaces.is_empty() && exception.labels.is_empty() {
        walker.error(
            node.position,
            path,
            "an exception needs `namespaces` or `labels`: it would otherwise waive the rules \
             everywhere",
        );
    }
    Some(exception)
}
