//! Writing the catalog back out: berth's format, Toolforge's `images-v1.yaml` (effective states
//! at `now`, for consumers that know no dates), and a Kubernetes ConfigMap holding the latter.
//!
//! The YAML is emitted by hand (see docs/decisions/0003-yaml.md): the shapes are small and
//! known, and one quoting rule keeps every string a string for YAML 1.1 and 1.2 readers alike
//! (Toolforge's consumers use PyYAML, a YAML 1.1 reader).

use chrono::{DateTime, Utc};

use super::Catalog;
use super::model::{CatalogEntry, Extra, ImageName, default_channels};

/// The ConfigMap key Toolforge's consumers read.
pub const TOOLFORGE_CONFIGMAP_KEY: &str = "images-v1.yaml";

/// Why the catalog cannot be written in a format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("Toolforge consumers pick images by variant, and these entries have none: {}", entries.join(", "))]
    NoVariants { entries: Vec<String> },
    #[error("invalid ConfigMap {field} {value:?}: {reason}")]
    InvalidName {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// A YAML value to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    /// Text, quoted when it would otherwise read as something else.
    Text(String),
    /// Written as is: numbers, booleans, null, dates.
    Plain(String),
    /// A literal block (`|`), for embedded documents.
    Block(String),
    Sequence(Vec<Yaml>),
    Mapping(Vec<(String, Yaml)>),
}

impl Yaml {
    fn text(text: impl Into<String>) -> Yaml {
        Yaml::Text(text.into())
    }

    /// Converts an `extra` value (JSON) to YAML.
    fn from_json(value: &serde_json::Value) -> Yaml {
        use serde_json::Value as Json;
        match value {
            Json::Null => Yaml::Plain("null".to_string()),
            Json::Bool(value) => Yaml::Plain(value.to_string()),
            Json::Number(number) => Yaml::Plain(number.to_string()),
            Json::String(text) => Yaml::Text(text.clone()),
            Json::Array(items) => Yaml::Sequence(items.iter().map(Yaml::from_json).collect()),
            Json::Object(map) => Yaml::from_extra(map),
        }
    }

    fn from_extra(extra: &Extra) -> Yaml {
        Yaml::Mapping(
            extra
                .iter()
                .map(|(key, value)| (key.clone(), Yaml::from_json(value)))
                .collect(),
        )
    }

    /// The document text, ending with a newline.
    pub fn to_document(&self) -> String {
        let mut out = String::new();
        match self {
            Yaml::Mapping(pairs) if !pairs.is_empty() => write_mapping(pairs, 0, &mut out),
            Yaml::Sequence(items) if !items.is_empty() => write_sequence(items, 0, &mut out),
            scalar => {
                write_inline(scalar, 0, &mut out);
                out.push('\n');
            }
        }
        out
    }
}

fn pad(indent: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Writes a value that follows `key:` or `- ` on the same line (a scalar, or an empty
/// collection); collections with content go on the following lines.
fn write_inline(value: &Yaml, indent: usize, out: &mut String) {
    match value {
        Yaml::Text(text) => out.push_str(&quote(text)),
        Yaml::Plain(text) => out.push_str(text),
        // A literal block cannot start with spaces or an empty line without an indentation
        // indicator; such text is quoted instead.
        Yaml::Block(text) if text.starts_with([' ', '\n']) || text.ends_with("\n\n") => {
            out.push_str(&quote(text));
        }
        Yaml::Block(text) => {
            out.push('|');
            if !text.ends_with('\n') {
                out.push('-');
            }
            for line in text.lines() {
                out.push('\n');
                if !line.is_empty() {
                    pad(indent + 2, out);
                    out.push_str(line);
                }
            }
        }
        Yaml::Sequence(items) if items.is_empty() => out.push_str("[]"),
        Yaml::Mapping(pairs) if pairs.is_empty() => out.push_str("{}"),
        Yaml::Sequence(_) | Yaml::Mapping(_) => {
            unreachable!("non-empty collections are written as blocks")
        }
    }
}

fn write_mapping(pairs: &[(String, Yaml)], indent: usize, out: &mut String) {
    for (index, (key, value)) in pairs.iter().enumerate() {
        // The first pair of a mapping inside a sequence item follows its `- `.
        if index > 0 || !out.ends_with("- ") {
            pad(indent, out);
        }
        out.push_str(&quote(key));
        out.push(':');
        match value {
            Yaml::Mapping(inner) if !inner.is_empty() => {
                out.push('\n');
                write_mapping(inner, indent + 2, out);
            }
            Yaml::Sequence(items) if !items.is_empty() => {
                out.push('\n');
                write_sequence(items, indent + 2, out);
            }
            scalar => {
                out.push(' ');
                write_inline(scalar, indent, out);
                out.push('\n');
            }
        }
    }
}

fn write_sequence(items: &[Yaml], indent: usize, out: &mut String) {
    for item in items {
        pad(indent, out);
        out.push_str("- ");
        match item {
            Yaml::Mapping(pairs) if !pairs.is_empty() => write_mapping(pairs, indent + 2, out),
            Yaml::Sequence(inner) if !inner.is_empty() => {
                out.push('\n');
                write_sequence(inner, indent + 2, out);
            }
            scalar => {
                write_inline(scalar, indent, out);
                out.push('\n');
            }
        }
    }
}

/// `text` as a YAML scalar that reads back as this exact string under YAML 1.1 and 1.2: plain
/// when it is unmistakably text, else double-quoted (a JSON string is a valid YAML one).
pub fn quote(text: &str) -> String {
    if is_plain_safe(text) {
        text.to_string()
    } else {
        serde_json::Value::String(text.to_string()).to_string()
    }
}

fn is_plain_safe(text: &str) -> bool {
    const RESERVED: &[&str] = &[
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
    ];
    let Some(first) = text.chars().next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == '_' || first == '/') {
        return false;
    }
    if RESERVED.iter().any(|word| text.eq_ignore_ascii_case(word)) {
        return false;
    }
    if text.ends_with([' ', ':']) || text.contains(": ") {
        return false;
    }
    text.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                ' ' | '_' | '.' | '/' | '-' | '+' | '@' | ':' | '(' | ')' | ','
            )
    })
}

impl Catalog {
    /// The catalog in berth's format (canonical: entries by name, fields in a fixed order;
    /// comments and spellings of the source are not kept).
    pub fn to_berth_yaml(&self) -> String {
        let entries = self
            .entries()
            .iter()
            .map(|entry| (entry.name.clone(), berth_entry(entry)))
            .collect();
        Yaml::Mapping(vec![("images".to_string(), Yaml::Mapping(entries))]).to_document()
    }

    /// The catalog as Toolforge's `images-v1.yaml`: each entry's effective state at `now` (no
    /// dates), aliases and variants. Descriptions, owners, bases, channels and default images
    /// have no place there and are left out; an entry without variants cannot be written.
    pub fn to_toolforge_yaml(&self, now: DateTime<Utc>) -> Result<String, ExportError> {
        let without_variants: Vec<String> = self
            .entries()
            .iter()
            .filter(|entry| entry.variants.is_empty())
            .map(|entry| entry.name.clone())
            .collect();
        if !without_variants.is_empty() {
            return Err(ExportError::NoVariants {
                entries: without_variants,
            });
        }
        let entries = self
            .entries()
            .iter()
            .map(|entry| {
                let mut fields = Vec::new();
                if !entry.aliases.is_empty() {
                    fields.push(("aliases".to_string(), names(&entry.aliases)));
                }
                let state = entry.lifecycle.at(now).state;
                fields.push(("state".to_string(), Yaml::text(state.as_str())));
                fields.push(("variants".to_string(), variants(entry)));
                (entry.name.clone(), Yaml::Mapping(fields))
            })
            .collect();
        Ok(Yaml::Mapping(entries).to_document())
    }

    /// A `v1` ConfigMap whose `images-v1.yaml` key holds [`Catalog::to_toolforge_yaml`], ready
    /// for `kubectl apply`.
    pub fn to_configmap_yaml(
        &self,
        now: DateTime<Utc>,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<String, ExportError> {
        check_kubernetes_name("name", name)?;
        if let Some(namespace) = namespace {
            check_kubernetes_name("namespace", namespace)?;
        }
        let images = self.to_toolforge_yaml(now)?;
        let mut metadata = vec![("name".to_string(), Yaml::text(name))];
        if let Some(namespace) = namespace {
            metadata.push(("namespace".to_string(), Yaml::text(namespace)));
        }
        metadata.push((
            "labels".to_string(),
            Yaml::Mapping(vec![(
                "app.kubernetes.io/managed-by".to_string(),
                Yaml::text("berth"),
            )]),
        ));
        let manifest = Yaml::Mapping(vec![
            ("apiVersion".to_string(), Yaml::text("v1")),
            ("kind".to_string(), Yaml::text("ConfigMap")),
            ("metadata".to_string(), Yaml::Mapping(metadata)),
            (
                "data".to_string(),
                Yaml::Mapping(vec![(
                    TOOLFORGE_CONFIGMAP_KEY.to_string(),
                    Yaml::Block(images),
                )]),
            ),
        ]);
        Ok(manifest.to_document())
    }
}

/// An RFC 1123 DNS label or subdomain, as Kubernetes wants object names.
fn check_kubernetes_name(field: &'static str, value: &str) -> Result<(), ExportError> {
    let invalid = |reason| ExportError::InvalidName {
        field,
        value: value.to_string(),
        reason,
    };
    if value.is_empty() || value.len() > 253 {
        return Err(invalid("must be 1 to 253 characters"));
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if !value.split('.').all(valid_label) {
        return Err(invalid("lowercase letters, digits, '-' and '.' only"));
    }
    Ok(())
}

fn names(names: &[String]) -> Yaml {
    Yaml::Sequence(names.iter().map(|name| Yaml::text(name.as_str())).collect())
}

fn image(image: &ImageName) -> Yaml {
    Yaml::Text(image.familiar())
}

fn variants(entry: &CatalogEntry) -> Yaml {
    Yaml::Mapping(
        entry
            .variants
            .iter()
            .map(|(name, variant)| {
                let mut fields = vec![("image".to_string(), image(&variant.image))];
                if !variant.extra.is_empty() {
                    fields.push(("extra".to_string(), Yaml::from_extra(&variant.extra)));
                }
                (name.clone(), Yaml::Mapping(fields))
            })
            .collect(),
    )
}

fn berth_entry(entry: &CatalogEntry) -> Yaml {
    let mut fields: Vec<(String, Yaml)> = Vec::new();
    let mut push = |key: &str, value: Yaml| fields.push((key.to_string(), value));
    if let Some(description) = &entry.description {
        push("description", Yaml::text(description.as_str()));
    }
    if !entry.owners.is_empty() {
        let owners = entry
            .owners
            .iter()
            .map(|owner| match &owner.contact {
                None => Yaml::text(owner.name.as_str()),
                Some(contact) => Yaml::Mapping(vec![
                    ("name".to_string(), Yaml::text(owner.name.as_str())),
                    ("contact".to_string(), Yaml::text(contact.as_str())),
                ]),
            })
            .collect();
        push("owners", Yaml::Sequence(owners));
    }
    if !entry.aliases.is_empty() {
        push("aliases", names(&entry.aliases));
    }
    let lifecycle = &entry.lifecycle;
    push("state", Yaml::text(lifecycle.state.as_str()));
    if let Some(date) = lifecycle.deprecated_on {
        push("deprecated_on", Yaml::Plain(date.to_string()));
    }
    if let Some(date) = lifecycle.eol_on {
        push("eol_on", Yaml::Plain(date.to_string()));
    }
    if let Some(replacement) = &lifecycle.replacement {
        push("replacement", Yaml::text(replacement.as_str()));
    }
    if let Some(base) = &entry.base {
        push("base", Yaml::text(base.as_str()));
    }
    if entry.channels != default_channels() {
        push(
            "channels",
            Yaml::Sequence(
                entry
                    .channels
                    .iter()
                    .map(|tag| Yaml::text(tag.as_str()))
                    .collect(),
            ),
        );
    }
    if let Some(default) = &entry.image {
        push("image", image(default));
    }
    if !entry.variants.is_empty() {
        push("variants", variants(entry));
    }
    Yaml::Mapping(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::yaml;

    #[test]
    fn quoting_keeps_strings_strings() {
        let cases = [
            ("python3.11", "python3.11"),
            (
                "docker-registry.tools.wmflabs.org/toolforge-python311-sssd-base",
                "docker-registry.tools.wmflabs.org/toolforge-python311-sssd-base",
            ),
            ("127.0.0.1:5050/berth/base", "\"127.0.0.1:5050/berth/base\""),
            ("yes", "\"yes\""),
            ("No", "\"No\""),
            ("null", "\"null\""),
            ("3.11", "\"3.11\""),
            ("2027-01-01", "\"2027-01-01\""),
            ("", "\"\""),
            ("a: b", "\"a: b\""),
            ("trailing:", "\"trailing:\""),
            ("has # hash", "\"has # hash\""),
            ("Python 3.11 (uwsgi)", "Python 3.11 (uwsgi)"),
            ("line\nbreak", "\"line\\nbreak\""),
            ("tab\there", "\"tab\\there\""),
            ("-dash", "\"-dash\""),
            ("ünïcode", "\"ünïcode\""),
        ];
        for (text, expect) in cases {
            assert_eq!(quote(text), expect, "{text:?}");
            let document = format!("k: {}\n", quote(text));
            let node = yaml::parse(&document).unwrap().unwrap();
            let yaml::Value::Mapping(pairs) = node.value else {
                panic!("mapping")
            };
            let yaml::Value::Scalar(scalar) = &pairs[0].1.value else {
                panic!("scalar")
            };
            assert_eq!(
                scalar.to_json().unwrap(),
                serde_json::Value::String(text.to_string()),
                "{document}"
            );
        }
    }

    #[test]
    fn writes_nested_shapes() {
        let document = Yaml::Mapping(vec![
            (
                "a".into(),
                Yaml::Sequence(vec![
                    Yaml::text("x"),
                    Yaml::Mapping(vec![
                        ("name".into(), Yaml::text("me")),
                        ("contact".into(), Yaml::text("c")),
                    ]),
                ]),
            ),
            (
                "b".into(),
                Yaml::Mapping(vec![
                    ("c".into(), Yaml::Plain("1".into())),
                    ("d".into(), Yaml::Mapping(vec![])),
                ]),
            ),
            ("e".into(), Yaml::Block("x: 1\n\ny: 2\n".into())),
            ("f".into(), Yaml::Sequence(vec![])),
        ])
        .to_document();
        assert_eq!(
            document,
            "a:\n  - x\n  - name: me\n    contact: c\nb:\n  c: 1\n  d: {}\ne: |\n  x: 1\n\n  y: 2\nf: []\n"
        );
        assert!(yaml::parse(&document).is_ok());
    }
}
