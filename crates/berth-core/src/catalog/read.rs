//! Reading catalog files: the marked YAML tree walked into entries, every problem recorded with
//! its file, line, column and field. Both formats (berth's and Toolforge's `images-v1.yaml`) go
//! through the same [`Walker`]; cross-entry rules come afterwards, in `validate`.
//!
//! Field paths are built on the stack ([`Path`]) and turned into text only for a message, so a
//! valid catalog costs no path strings.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt as _};
use std::fmt;

use chrono::NaiveDate;

use super::diagnostic::{Diagnostic, Diagnostics, Location};
use super::model::{
    CatalogEntry, Extra, ImageName, Lifecycle, Owner, State, Variant, default_channels,
};
use super::suggest::closest;
use super::yaml::{self, Node, Position, Value};
use crate::reference::Tag;

/// Top-level fields of a berth catalog file.
pub const FILE_FIELDS: &[&str] = &["images"];
/// Fields of an entry in a berth catalog.
pub const ENTRY_FIELDS: &[&str] = &[
    "description",
    "owners",
    "aliases",
    "state",
    "deprecated_on",
    "eol_on",
    "replacement",
    "base",
    "channels",
    "max_age",
    "build",
    "image",
    "variants",
];
/// Fields of a variant (both formats).
pub const VARIANT_FIELDS: &[&str] = &["image", "extra"];
/// Fields of an owner given as a mapping.
pub const OWNER_FIELDS: &[&str] = &["name", "contact"];
/// Fields of an entry in Toolforge's `images-v1.yaml`.
pub const TOOLFORGE_ENTRY_FIELDS: &[&str] = &["aliases", "state", "variants"];
/// The longest name (entry, alias, variant) accepted.
const NAME_LENGTH_MAX: usize = 128;

/// A catalog source format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// berth's catalog: `images:` → entries with lifecycle dates, variants, base, owners.
    Berth,
    /// Toolforge's `images-v1.yaml`: canonical name → `aliases`, `state`, `variants`.
    Toolforge,
}

impl Format {
    /// Where entries sit in a file of this format, as a field path prefix.
    fn entries_field(self) -> Option<&'static str> {
        match self {
            Format::Berth => Some("images"),
            Format::Toolforge => None,
        }
    }
}

/// A field path (`images.python3.11.variants.jobs.image`, `images.a.aliases[2]`), built on the
/// stack while walking and formatted only when a message needs it.
#[derive(Debug, Clone, Copy)]
pub enum Path<'p> {
    Root,
    Field(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl<'p> Path<'p> {
    pub fn field(&'p self, name: &'p str) -> Path<'p> {
        Path::Field(self, name)
    }

    pub fn index(&'p self, index: usize) -> Path<'p> {
        Path::Index(self, index)
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Field(parent, name) => {
                parent.fmt(f)?;
                if !matches!(parent, Path::Root) {
                    f.write_str(".")?;
                }
                f.write_str(&crate::quote::escape(name))
            }
            Path::Index(parent, index) => {
                parent.fmt(f)?;
                write!(f, "[{index}]")
            }
        }
    }
}

/// An entry as read, with where each of its cross-referenced parts was written.
#[derive(Debug, Clone)]
pub struct Draft {
    pub entry: CatalogEntry,
    pub at: Positions,
}

impl Draft {
    /// The entry's field path (`images.python3.11`), for messages.
    pub fn path(&self) -> String {
        match self.at.format.entries_field() {
            Some(prefix) => format!("{prefix}.{}", self.entry.name),
            None => self.entry.name.clone(),
        }
    }

    /// The path of one of the entry's fields (`images.python3.11.base`).
    pub fn field(&self, field: &str) -> String {
        format!("{}.{field}", self.path())
    }
}

/// Where an entry's parts are, for the cross-entry rules to point at.
#[derive(Debug, Clone)]
pub struct Positions {
    pub file: String,
    pub format: Format,
    pub name: Position,
    /// Each alias's position and its index in the file's list, in the entry's order.
    pub aliases: Vec<(Position, usize)>,
    pub replacement: Option<Position>,
    pub base: Option<Position>,
    pub eol_on: Option<Position>,
    /// Each image's position: variant `None` is the default image.
    pub images: Vec<(Option<String>, Position)>,
}

impl Positions {
    pub fn location(&self, position: Position) -> Location {
        Location {
            file: self.file.clone(),
            line: position.line,
            column: position.column,
        }
    }
}

/// Reads one source into drafts, recording its problems.
pub fn read_source(
    file: &str,
    text: &str,
    format: Format,
    diagnostics: &mut Diagnostics,
) -> Vec<Draft> {
    let mut walker = Walker { file, diagnostics };
    let Some(root) = walker.document(text) else {
        return Vec::new();
    };
    let root_path = Path::Root;
    match format.entries_field() {
        Some(field) => {
            let Some(fields) = walker.fields(&root, &root_path, FILE_FIELDS) else {
                return Vec::new();
            };
            let Some(images) = fields.get(field) else {
                walker.error(
                    root.position,
                    &root_path.field(field),
                    "missing field: the catalog's entries go under `images`",
                );
                return Vec::new();
            };
            walker.entries(images.value, &root_path.field(field), format)
        }
        None => walker.entries(&root, &root_path, format),
    }
}

/// A field found in a mapping: its key's node and its value.
#[derive(Debug, Clone, Copy)]
pub struct Field<'n, 'a> {
    pub key: &'n Node<'a>,
    pub value: &'n Node<'a>,
}

/// The known fields of a mapping that were present, in the order of the known list.
#[derive(Debug)]
pub struct Fields<'n, 'a> {
    known: &'static [&'static str],
    found: Vec<Option<Field<'n, 'a>>>,
}

impl<'n, 'a> Fields<'n, 'a> {
    pub fn get(&self, name: &str) -> Option<Field<'n, 'a>> {
        let index = self.known.iter().position(|known| *known == name)?;
        self.found[index]
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Present fields with their names, in the order of the known list.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, Field<'n, 'a>)> + '_ {
        self.known
            .iter()
            .zip(&self.found)
            .filter_map(|(name, field)| field.map(|field| (*name, field)))
    }
}

/// The text of a file read as bytes. Invalid UTF-8 makes the file a bad one, named by the
/// line and column (in characters) of the first byte that is not UTF-8.
pub fn utf8_text(file: &str, bytes: Vec<u8>) -> Result<String, Diagnostic> {
    String::from_utf8(bytes).map_err(|error| {
        let bytes = error.as_bytes();
        let valid = error.utf8_error().valid_up_to();
        let before = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit('\n')
            .next()
            .unwrap_or_default()
            .chars()
            .count()
            + 1;
        Diagnostic {
            file: file.to_string(),
            line,
            column,
            field: String::new(),
            message: format!(
                "not UTF-8 text (byte 0x{:02x}); save the file as UTF-8",
                bytes[valid]
            ),
            severity: super::Severity::Error,
        }
    })
}

/// Walks the tree of one file, recording problems with this file's name.
pub struct Walker<'a> {
    pub file: &'a str,
    pub diagnostics: &'a mut Diagnostics,
}

impl Walker<'_> {
    pub fn location(&self, position: Position) -> Location {
        Location {
            file: self.file.to_string(),
            line: position.line,
            column: position.column,
        }
    }

    pub fn error(&mut self, position: Position, path: &Path<'_>, message: impl Into<String>) {
        let at = self.location(position);
        self.diagnostics.error(&at, &path.to_string(), message);
    }

    /// The file's one YAML document; an empty file or invalid YAML is reported.
    pub fn document<'t>(&mut self, text: &'t str) -> Option<Node<'t>> {
        match yaml::parse(text) {
            Ok(Some(root)) => Some(root),
            Ok(None) => {
                let start = Position { line: 1, column: 1 };
                self.error(start, &Path::Root, "the file is empty");
                None
            }
            Err(error) => {
                let message = format!("invalid YAML: {}", error.message);
                self.error(error.position, &Path::Root, message);
                None
            }
        }
    }

    /// The pairs of a mapping, or an error naming what was found instead.
    pub fn mapping<'n, 'a>(
        &mut self,
        node: &'n Node<'a>,
        path: &Path<'_>,
    ) -> Option<&'n [(Node<'a>, Node<'a>)]> {
        match &node.value {
            Value::Mapping(pairs) => Some(pairs),
            other => {
                let message = format!("expected a mapping, found {}", describe(other));
                self.error(node.position, path, message);
                None
            }
        }
    }

    /// The text of a mapping key; keys are names, so they must be plain text.
    pub fn key_text<'n>(&mut self, key: &'n Node<'_>, path: &Path<'_>) -> Option<&'n str> {
        match &key.value {
            Value::Scalar(scalar) => Some(&scalar.text),
            other => {
                let message = format!("expected a text key, found {}", describe(other));
                self.error(key.position, path, message);
                None
            }
        }
    }

    /// The fields of a mapping with known names: unknown fields and repeated fields are
    /// reported (a repeat is ignored after the report, the first one counts).
    pub fn fields<'n, 'a>(
        &mut self,
        node: &'n Node<'a>,
        path: &Path<'_>,
        known: &'static [&'static str],
    ) -> Option<Fields<'n, 'a>> {
        let pairs = self.mapping(node, path)?;
        let mut fields = Fields {
            known,
            found: vec![None; known.len()],
        };
        for (key, value) in pairs {
            let Some(text) = self.key_text(key, path) else {
                continue;
            };
            let Some(index) = known.iter().position(|name| *name == text) else {
                // Only an excerpt: the "file" may be anything a symlink reached (issue 15, 6).
                let quoted = crate::quote::excerpt(text);
                let mut message = format!("unknown field `{quoted}`");
                match closest(text, known.iter().copied(), 1).first() {
                    Some(suggestion) => {
                        message.push_str(&format!("; did you mean `{suggestion}`?"));
                    }
                    None => message.push_str(&format!("; expected one of: {}", known.join(", "))),
                }
                self.error(key.position, &path.field(&quoted), message);
                continue;
            };
            if let Some(first) = fields.found[index] {
                let first = first.key.position;
                let message = format!(
                    "field given twice (first at line {}, column {})",
                    first.line, first.column
                );
                self.error(key.position, &path.field(text), message);
                continue;
            }
            fields.found[index] = Some(Field { key, value });
        }
        Some(fields)
    }

    /// A text value; `None` for null (an absent optional field) or a report for a collection.
    pub fn text(&mut self, node: &Node<'_>, path: &Path<'_>) -> Option<String> {
        match &node.value {
            Value::Scalar(scalar) if scalar.is_null() => None,
            Value::Scalar(scalar) => Some(scalar.text.to_string()),
            other => {
                let message = format!("expected text, found {}", describe(other));
                self.error(node.position, path, message);
                None
            }
        }
    }

    /// A required text value.
    pub fn required_text(&mut self, node: &Node<'_>, path: &Path<'_>) -> Option<String> {
        if let Value::Scalar(scalar) = &node.value
            && scalar.is_null()
        {
            self.error(node.position, path, "expected text, found nothing");
            return None;
        }
        self.text(node, path)
    }

    /// A name (entry, alias or variant): letters, digits, `.`, `_`, `-`, starting with a letter
    /// or digit, so that it can travel in a URL path and a shell word unquoted.
    pub fn name(&mut self, node: &Node<'_>, path: &Path<'_>) -> Option<String> {
        let text = self.required_text(node, path)?;
        match name_problem(&text) {
            None => Some(text),
            Some(problem) => {
                self.error(
                    node.position,
                    path,
                    format!("invalid name {text:?}: {problem}"),
                );
                None
            }
        }
    }

    /// A sequence's items (none for null), or an error.
    pub fn sequence<'n, 'a>(
        &mut self,
        node: &'n Node<'a>,
        path: &Path<'_>,
    ) -> Option<&'n [Node<'a>]> {
        match &node.value {
            Value::Sequence(items) => Some(items),
            Value::Scalar(scalar) if scalar.is_null() => Some(&[]),
            other => {
                let message = format!("expected a list, found {}", describe(other));
                self.error(node.position, path, message);
                None
            }
        }
    }

    pub fn image(&mut self, node: &Node<'_>, path: &Path<'_>) -> Option<ImageName> {
        let text = self.required_text(node, path)?;
        match ImageName::parse(&text) {
            Ok(image) => Some(image),
            Err(error) => {
                self.error(node.position, path, error.to_string());
                None
            }
        }
    }

    pub fn date(&mut self, node: &Node<'_>, path: &Path<'_>) -> Option<NaiveDate> {
        let text = self.text(node, path)?;
        match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
            Ok(date) if text.len() == 10 => Some(date),
            _ => {
                let message = format!("{text:?} is not a date (YYYY-MM-DD)");
                self.error(node.position, path, message);
                None
            }
        }
    }

    pub fn duration(&mut self, node: &Node<'_>, path: &Path<'_>) -> Option<std::time::Duration> {
        let text = self.text(node, path)?;
        match crate::duration::parse(&text) {
            Ok(duration) => Some(duration),
            Err(message) => {
                self.error(node.position, path, message);
                None
            }
        }
    }

    pub fn state(&mut self, node: &Node<'_>, path: &Path<'_>) -> Option<State> {
        let text = self.required_text(node, path)?;
        let state = State::parse(&text);
        if state.is_none() {
            let message = format!("unknown state {text:?}; expected stable, deprecated or eol");
            self.error(node.position, path, message);
        }
        state
    }

    /// Aliases: names, each listed once; with each one's position and index in the list.
    pub fn aliases(
        &mut self,
        node: &Node<'_>,
        path: &Path<'_>,
    ) -> (Vec<String>, Vec<(Position, usize)>) {
        let mut aliases = Vec::new();
        let mut positions = Vec::new();
        let items = self.sequence(node, path).unwrap_or_default();
        for (index, item) in items.iter().enumerate() {
            let item_path = path.index(index);
            let Some(alias) = self.name(item, &item_path) else {
                continue;
            };
            if aliases.contains(&alias) {
                self.error(
                    item.position,
                    &item_path,
                    format!("alias {alias:?} listed twice"),
                );
                continue;
            }
            aliases.push(alias);
            positions.push((item.position, index));
        }
        (aliases, positions)
    }

    /// `variants:` consumer name → `{image, extra}`; records where each image is written.
    pub fn variants(
        &mut self,
        node: &Node<'_>,
        path: &Path<'_>,
        images: &mut Vec<(Option<String>, Position)>,
    ) -> BTreeMap<String, Variant> {
        let mut variants = BTreeMap::new();
        let Some(pairs) = self.mapping(node, path) else {
            return variants;
        };
        let mut seen: HashMap<&str, Position> = HashMap::new();
        for (key, value) in pairs {
            let Some(text) = self.key_text(key, path) else {
                continue;
            };
            let variant_path = path.field(text);
            let Some(name) = self.name(key, &variant_path) else {
                continue;
            };
            if let Some(first) = seen.get(text) {
                let message = format!(
                    "variant given twice (first at line {}, column {})",
                    first.line, first.column
                );
                self.error(key.position, &variant_path, message);
                continue;
            }
            seen.insert(text, key.position);
            let Some(fields) = self.fields(value, &variant_path, VARIANT_FIELDS) else {
                continue;
            };
            let image_path = variant_path.field("image");
            let image = match fields.get("image") {
                Some(field) => {
                    images.push((Some(name.clone()), field.value.position));
                    self.image(field.value, &image_path)
                }
                None => {
                    let message = "missing field: a variant needs an image";
                    self.error(value.position, &image_path, message);
                    None
                }
            };
            let extra = match fields.get("extra") {
                Some(field) => self.extra(field.value, &variant_path.field("extra")),
                None => Extra::new(),
            };
            if let Some(image) = image {
                variants.insert(name, Variant { image, extra });
            }
        }
        variants
    }

    /// An opaque `extra` map, converted to JSON values for the consumer.
    fn extra(&mut self, node: &Node<'_>, path: &Path<'_>) -> Extra {
        if let Value::Scalar(scalar) = &node.value
            && scalar.is_null()
        {
            return Extra::new();
        }
        match self.json(node, path) {
            Some(serde_json::Value::Object(map)) => map,
            Some(_) => {
                self.error(node.position, path, "expected a mapping");
                Extra::new()
            }
            None => Extra::new(),
        }
    }

    fn json(&mut self, node: &Node<'_>, path: &Path<'_>) -> Option<serde_json::Value> {
        match &node.value {
            Value::Scalar(scalar) => match scalar.to_json() {
                Ok(value) => Some(value),
                Err(message) => {
                    self.error(node.position, path, message);
                    None
                }
            },
            Value::Sequence(items) => {
                let values: Vec<_> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(index, item)| self.json(item, &path.index(index)))
                    .collect();
                Some(serde_json::Value::Array(values))
            }
            Value::Mapping(pairs) => {
                let mut map = serde_json::Map::new();
                for (key, value) in pairs {
                    let Some(text) = self.key_text(key, path) else {
                        continue;
                    };
                    let field = path.field(text);
                    if map.contains_key(text) {
                        self.error(key.position, &field, "key given twice");
                        continue;
                    }
                    if let Some(value) = self.json(value, &field) {
                        map.insert(text.to_string(), value);
                    }
                }
                Some(serde_json::Value::Object(map))
            }
        }
    }

    fn owners(&mut self, node: &Node<'_>, path: &Path<'_>) -> Vec<Owner> {
        let mut owners = Vec::new();
        let items = self.sequence(node, path).unwrap_or_default();
        for (index, item) in items.iter().enumerate() {
            let item_path = path.index(index);
            let owner = match &item.value {
                Value::Scalar(_) => self.required_text(item, &item_path).map(|name| Owner {
                    name,
                    contact: None,
                }),
                Value::Mapping(_) => {
                    let Some(fields) = self.fields(item, &item_path, OWNER_FIELDS) else {
                        continue;
                    };
                    let name_path = item_path.field("name");
                    let name = match fields.get("name") {
                        Some(field) => self.required_text(field.value, &name_path),
                        None => {
                            let message = "missing field: an owner needs a name";
                            self.error(item.position, &name_path, message);
                            None
                        }
                    };
                    let contact = fields
                        .get("contact")
                        .and_then(|field| self.text(field.value, &item_path.field("contact")));
                    name.map(|name| Owner { name, contact })
                }
                Value::Sequence(_) => {
                    let message = "expected a name or a mapping with `name` and `contact`";
                    self.error(item.position, &item_path, message);
                    None
                }
            };
            owners.extend(owner);
        }
        owners
    }

    fn channels(&mut self, node: &Node<'_>, path: &Path<'_>) -> Vec<Tag> {
        let mut channels: Vec<Tag> = Vec::new();
        let items = self.sequence(node, path).unwrap_or_default();
        if items.is_empty() {
            let message = "an image needs at least one channel (leave the field out for [latest])";
            self.error(node.position, path, message);
        }
        for (index, item) in items.iter().enumerate() {
            let item_path = path.index(index);
            let Some(text) = self.required_text(item, &item_path) else {
                continue;
            };
            match Tag::parse(&text) {
                Ok(tag) if channels.contains(&tag) => {
                    let message = format!("channel {text:?} listed twice");
                    self.error(item.position, &item_path, message);
                }
                Ok(tag) => channels.push(tag),
                Err(error) => self.error(item.position, &item_path, error.to_string()),
            }
        }
        channels
    }

    /// Every entry of a mapping of canonical name → entry, with duplicate names reported.
    fn entries(&mut self, node: &Node<'_>, path: &Path<'_>, format: Format) -> Vec<Draft> {
        let Some(pairs) = self.mapping(node, path) else {
            return Vec::new();
        };
        let mut drafts: Vec<Draft> = Vec::with_capacity(pairs.len());
        let mut seen: HashMap<&str, Position> = HashMap::with_capacity(pairs.len());
        for (key, value) in pairs {
            let Some(text) = self.key_text(key, path) else {
                continue;
            };
            let entry_path = path.field(text);
            let Some(name) = self.name(key, &entry_path) else {
                continue;
            };
            if let Some(first) = seen.get(text) {
                let message = format!(
                    "duplicate canonical name {name:?} (first at {}:{}:{})",
                    self.file, first.line, first.column
                );
                self.error(key.position, &entry_path, message);
                continue;
            }
            seen.insert(text, key.position);
            let positions = Positions {
                file: self.file.to_string(),
                format,
                name: key.position,
                aliases: Vec::new(),
                replacement: None,
                base: None,
                eol_on: None,
                images: Vec::new(),
            };
            let draft = match format {
                Format::Berth => self.berth_entry(name, positions, key, value, &entry_path),
                Format::Toolforge => self.toolforge_entry(name, positions, key, value, &entry_path),
            };
            drafts.extend(draft);
        }
        drafts
    }

    fn berth_entry(
        &mut self,
        name: String,
        mut at: Positions,
        key: &Node<'_>,
        value: &Node<'_>,
        path: &Path<'_>,
    ) -> Option<Draft> {
        let fields = self.fields(value, path, ENTRY_FIELDS)?;
        let mut entry = empty_entry(name);
        for (field, Field { value, .. }) in fields.iter() {
            let here = path.field(field);
            match field {
                "description" => entry.description = self.text(value, &here),
                "owners" => entry.owners = self.owners(value, &here),
                "aliases" => (entry.aliases, at.aliases) = self.aliases(value, &here),
                "state" => entry.lifecycle.state = self.state(value, &here).unwrap_or_default(),
                "deprecated_on" => entry.lifecycle.deprecated_on = self.date(value, &here),
                "eol_on" => {
                    entry.lifecycle.eol_on = self.date(value, &here);
                    at.eol_on = Some(value.position);
                }
                "replacement" => {
                    entry.lifecycle.replacement = self.text(value, &here);
                    at.replacement = Some(value.position);
                }
                "base" => {
                    entry.base = self.text(value, &here);
                    at.base = Some(value.position);
                }
                "channels" => entry.channels = self.channels(value, &here),
                "max_age" => entry.max_age = self.duration(value, &here),
                "build" => entry.build = self.name(value, &here),
                "image" => {
                    at.images.push((None, value.position));
                    entry.image = self.image(value, &here);
                }
                "variants" => entry.variants = self.variants(value, &here, &mut at.images),
                other => unreachable!("field {other} is in ENTRY_FIELDS but not read"),
            }
        }
        if !fields.contains("image") && !fields.contains("variants") {
            let message = "an entry needs an `image` or `variants`";
            self.error(key.position, path, message);
        }
        let lifecycle = &entry.lifecycle;
        if let (Some(deprecated), Some(eol), Some(eol_position)) =
            (lifecycle.deprecated_on, lifecycle.eol_on, at.eol_on)
            && eol < deprecated
        {
            let message = format!("eol_on {eol} is before deprecated_on {deprecated}");
            self.error(eol_position, &path.field("eol_on"), message);
        }
        Some(Draft { entry, at })
    }

    fn toolforge_entry(
        &mut self,
        name: String,
        mut at: Positions,
        key: &Node<'_>,
        value: &Node<'_>,
        path: &Path<'_>,
    ) -> Option<Draft> {
        let fields = self.fields(value, path, TOOLFORGE_ENTRY_FIELDS)?;
        let mut entry = empty_entry(name);
        if let Some(field) = fields.get("aliases") {
            (entry.aliases, at.aliases) = self.aliases(field.value, &path.field("aliases"));
        }
        let state_path = path.field("state");
        match fields.get("state") {
            Some(field) => {
                entry.lifecycle.state = self.state(field.value, &state_path).unwrap_or_default();
            }
            None => {
                let message = "missing field: Toolforge consumers read `state`";
                self.error(key.position, &state_path, message);
            }
        }
        let variants_path = path.field("variants");
        match fields.get("variants") {
            Some(field) => {
                entry.variants = self.variants(field.value, &variants_path, &mut at.images);
            }
            None => {
                let message = "missing field: Toolforge consumers read `variants`";
                self.error(key.position, &variants_path, message);
            }
        }
        Some(Draft { entry, at })
    }
}

fn empty_entry(name: String) -> CatalogEntry {
    CatalogEntry {
        name,
        description: None,
        aliases: Vec::new(),
        lifecycle: Lifecycle::default(),
        image: None,
        variants: BTreeMap::new(),
        base: None,
        owners: Vec::new(),
        channels: default_channels(),
        max_age: None,
        build: None,
    }
}

/// Why `text` is not a valid name, if it is not.
pub fn name_problem(text: &str) -> Option<&'static str> {
    let Some(first) = text.bytes().next() else {
        return Some("empty");
    };
    if !first.is_ascii_alphanumeric() {
        return Some("must start with a letter or digit");
    }
    if text.len() > NAME_LENGTH_MAX {
        return Some("longer than 128 characters");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if !text.bytes().all(allowed) {
        return Some("only letters, digits, '.', '_' and '-' are allowed");
    }
    None
}

fn describe(value: &Value<'_>) -> &'static str {
    match value {
        Value::Scalar(scalar) if scalar.is_null() => "nothing",
        Value::Scalar(_) => "text",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
    }
}

/// One config section read from `text` (a `berth.yaml` holding only that section) with its
/// reader: the section, or every diagnostic as `file:line:column: message`, sorted. The one
/// helper the section tests (rebuild, retention, notifications) share.
#[cfg(test)]
pub(crate) fn section_for<T>(
    text: &str,
    read: impl FnOnce(&mut Walker<'_>, &Node<'_>, &Path<'_>) -> Option<T>,
) -> Result<T, Vec<String>> {
    let mut diagnostics = Diagnostics::default();
    let mut walker = Walker {
        file: "berth.yaml",
        diagnostics: &mut diagnostics,
    };
    let root = walker.document(text).expect("a document");
    let section = read(&mut walker, &root, &Path::Root);
    let errors: Vec<String> = diagnostics
        .into_sorted()
        .iter()
        .map(ToString::to_string)
        .collect();
    match section {
        Some(section) if errors.is_empty() => Ok(section),
        _ => Err(errors),
    }
}
