//! Reading catalog files: the marked YAML tree walked into entries, every problem recorded with
//! its file, line, column and field. Both formats (berth's and Toolforge's `images-v1.yaml`) go
//! through the same [`Walker`]; cross-entry rules come afterwards, in `validate`.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use super::diagnostic::{Diagnostics, Location};
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

/// An entry as read, with where each of its cross-referenced parts was written.
#[derive(Debug, Clone)]
pub struct Draft {
    pub entry: CatalogEntry,
    pub at: Positions,
}

/// Where an entry's parts are, for the cross-entry rules to point at.
#[derive(Debug, Clone)]
pub struct Positions {
    pub file: String,
    /// The field path prefix of this entry (`images.python3.11`, or `python3.11` for Toolforge).
    pub path: String,
    pub name: Position,
    /// Each alias's position and field path (`images.a.aliases[2]`), in the entry's order.
    pub aliases: Vec<(Position, String)>,
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
    let root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            walker.error(
                Position { line: 1, column: 1 },
                "",
                "the file holds no catalog (it is empty)",
            );
            return Vec::new();
        }
        Err(error) => {
            walker.error(
                error.position,
                "",
                format!("invalid YAML: {}", error.message),
            );
            return Vec::new();
        }
    };
    match format {
        Format::Berth => {
            let Some(fields) = walker.fields(&root, "", FILE_FIELDS) else {
                return Vec::new();
            };
            let Some(images) = fields.get("images") else {
                walker.error(
                    root.position,
                    "images",
                    "missing field: the catalog's entries go under `images`",
                );
                return Vec::new();
            };
            walker.entries(images.value, "images.", Walker::berth_entry)
        }
        Format::Toolforge => walker.entries(&root, "", Walker::toolforge_entry),
    }
}

/// A field found in a mapping: its key's node and its value.
#[derive(Debug, Clone, Copy)]
pub struct Field<'n> {
    pub key: &'n Node,
    pub value: &'n Node,
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

    pub fn error(&mut self, position: Position, field: &str, message: impl Into<String>) {
        let at = self.location(position);
        self.diagnostics.error(&at, field, message);
    }

    /// The pairs of a mapping, or an error naming what was found instead.
    pub fn mapping<'n>(&mut self, node: &'n Node, field: &str) -> Option<&'n [(Node, Node)]> {
        match &node.value {
            Value::Mapping(pairs) => Some(pairs),
            other => {
                self.error(
                    node.position,
                    field,
                    format!("expected a mapping, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// The text of a mapping key; keys are names, so they must be plain text.
    pub fn key_text<'n>(&mut self, key: &'n Node, field: &str) -> Option<&'n str> {
        match &key.value {
            Value::Scalar(scalar) => Some(&scalar.text),
            other => {
                self.error(
                    key.position,
                    field,
                    format!("expected a text key, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// The fields of a mapping with known names: unknown fields and repeated fields are
    /// reported (a repeat is ignored after the report, the first one counts).
    pub fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[&'static str],
    ) -> Option<HashMap<&'static str, Field<'n>>> {
        let pairs = self.mapping(node, path)?;
        let mut fields: HashMap<&'static str, Field<'n>> = HashMap::new();
        for (key, value) in pairs {
            let Some(text) = self.key_text(key, path) else {
                continue;
            };
            let field_path = join(path, text);
            let Some(name) = known.iter().find(|name| **name == text) else {
                let mut message = format!("unknown field `{text}`");
                match closest(text, known.iter().copied()).first() {
                    Some(suggestion) => {
                        message.push_str(&format!("; did you mean `{suggestion}`?"))
                    }
                    None => message.push_str(&format!("; expected one of: {}", known.join(", "))),
                }
                self.error(key.position, &field_path, message);
                continue;
            };
            if let Some(first) = fields.get(name) {
                let first = first.key.position;
                self.error(
                    key.position,
                    &field_path,
                    format!(
                        "field given twice (first at line {}, column {})",
                        first.line, first.column
                    ),
                );
                continue;
            }
            fields.insert(name, Field { key, value });
        }
        Some(fields)
    }

    /// A text value; `None` for null (an absent optional field) or a report for a collection.
    pub fn text(&mut self, node: &Node, field: &str) -> Option<String> {
        match &node.value {
            Value::Scalar(scalar) if scalar.is_null() => None,
            Value::Scalar(scalar) => Some(scalar.text.clone()),
            other => {
                self.error(
                    node.position,
                    field,
                    format!("expected text, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A required text value.
    pub fn required_text(&mut self, node: &Node, field: &str) -> Option<String> {
        if let Value::Scalar(scalar) = &node.value
            && scalar.is_null()
        {
            self.error(node.position, field, "expected text, found nothing");
            return None;
        }
        self.text(node, field)
    }

    /// A name (entry, alias or variant): letters, digits, `.`, `_`, `-`, starting with a letter
    /// or digit, so that it can travel in a URL path and a shell word unquoted.
    pub fn name(&mut self, node: &Node, field: &str) -> Option<String> {
        let text = self.required_text(node, field)?;
        match name_problem(&text) {
            None => Some(text),
            Some(problem) => {
                self.error(
                    node.position,
                    field,
                    format!("invalid name {text:?}: {problem}"),
                );
                None
            }
        }
    }

    /// A sequence's items, or an error.
    pub fn sequence<'n>(&mut self, node: &'n Node, field: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Sequence(items) => Some(items),
            Value::Scalar(scalar) if scalar.is_null() => Some(&[]),
            other => {
                self.error(
                    node.position,
                    field,
                    format!("expected a list, found {}", describe(other)),
                );
                None
            }
        }
    }

    pub fn image(&mut self, node: &Node, field: &str) -> Option<ImageName> {
        let text = self.required_text(node, field)?;
        match ImageName::parse(&text) {
            Ok(image) => Some(image),
            Err(error) => {
                self.error(node.position, field, error.to_string());
                None
            }
        }
    }

    pub fn date(&mut self, node: &Node, field: &str) -> Option<NaiveDate> {
        let text = self.text(node, field)?;
        match NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
            Ok(date) if text.len() == 10 => Some(date),
            _ => {
                self.error(
                    node.position,
                    field,
                    format!("{text:?} is not a date (YYYY-MM-DD)"),
                );
                None
            }
        }
    }

    pub fn state(&mut self, node: &Node, field: &str) -> Option<State> {
        let text = self.required_text(node, field)?;
        let state = State::parse(&text);
        if state.is_none() {
            self.error(
                node.position,
                field,
                format!("unknown state {text:?}; expected stable, deprecated or eol"),
            );
        }
        state
    }

    /// Aliases: names, each listed once.
    pub fn aliases(&mut self, node: &Node, field: &str) -> (Vec<String>, Vec<(Position, String)>) {
        let mut aliases = Vec::new();
        let mut positions = Vec::new();
        for (index, item) in self
            .sequence(node, field)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let item_field = format!("{field}[{index}]");
            let Some(alias) = self.name(item, &item_field) else {
                continue;
            };
            if aliases.contains(&alias) {
                self.error(
                    item.position,
                    &item_field,
                    format!("alias {alias:?} listed twice"),
                );
                continue;
            }
            aliases.push(alias);
            positions.push((item.position, item_field));
        }
        (aliases, positions)
    }

    /// `variants:` consumer name → `{image, extra}`.
    pub fn variants(
        &mut self,
        node: &Node,
        path: &str,
        images: &mut Vec<(Option<String>, Position)>,
    ) -> BTreeMap<String, Variant> {
        let mut variants = BTreeMap::new();
        let Some(pairs) = self.mapping(node, path) else {
            return variants;
        };
        let mut seen: HashMap<String, Position> = HashMap::new();
        for (key, value) in pairs {
            let variant_path = match self.key_text(key, path) {
                Some(text) => join(path, text),
                None => continue,
            };
            let Some(name) = self.name(key, &variant_path) else {
                continue;
            };
            if let Some(first) = seen.get(&name) {
                self.error(
                    key.position,
                    &variant_path,
                    format!(
                        "variant given twice (first at line {}, column {})",
                        first.line, first.column
                    ),
                );
                continue;
            }
            seen.insert(name.clone(), key.position);
            let Some(fields) = self.fields(value, &variant_path, VARIANT_FIELDS) else {
                continue;
            };
            let image_path = join(&variant_path, "image");
            let image = match fields.get("image") {
                Some(field) => {
                    images.push((Some(name.clone()), field.value.position));
                    self.image(field.value, &image_path)
                }
                None => {
                    self.error(
                        value.position,
                        &image_path,
                        "missing field: a variant needs an image",
                    );
                    None
                }
            };
            let extra = match fields.get("extra") {
                Some(field) => self.extra(field.value, &join(&variant_path, "extra")),
                None => Extra::new(),
            };
            if let Some(image) = image {
                variants.insert(name, Variant { image, extra });
            }
        }
        variants
    }

    /// An opaque `extra` map, converted to JSON values for the consumer.
    fn extra(&mut self, node: &Node, path: &str) -> Extra {
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

    fn json(&mut self, node: &Node, path: &str) -> Option<serde_json::Value> {
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
                    .filter_map(|(index, item)| self.json(item, &format!("{path}[{index}]")))
                    .collect();
                Some(serde_json::Value::Array(values))
            }
            Value::Mapping(pairs) => {
                let mut map = serde_json::Map::new();
                for (key, value) in pairs {
                    let Some(text) = self.key_text(key, path) else {
                        continue;
                    };
                    let field = join(path, text);
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

    fn owners(&mut self, node: &Node, path: &str) -> Vec<Owner> {
        let mut owners = Vec::new();
        for (index, item) in self
            .sequence(node, path)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let item_path = format!("{path}[{index}]");
            let owner = match &item.value {
                Value::Scalar(_) => self.required_text(item, &item_path).map(|name| Owner {
                    name,
                    contact: None,
                }),
                Value::Mapping(_) => {
                    let Some(fields) = self.fields(item, &item_path, OWNER_FIELDS) else {
                        continue;
                    };
                    let name = match fields.get("name") {
                        Some(field) => self.required_text(field.value, &join(&item_path, "name")),
                        None => {
                            self.error(
                                item.position,
                                &join(&item_path, "name"),
                                "missing field: an owner needs a name",
                            );
                            None
                        }
                    };
                    let contact = fields
                        .get("contact")
                        .and_then(|field| self.text(field.value, &join(&item_path, "contact")));
                    name.map(|name| Owner { name, contact })
                }
                Value::Sequence(_) => {
                    self.error(
                        item.position,
                        &item_path,
                        "expected a name or a mapping with `name` and `contact`",
                    );
                    None
                }
            };
            owners.extend(owner);
        }
        owners
    }

    fn channels(&mut self, node: &Node, path: &str) -> Vec<Tag> {
        let mut channels: Vec<Tag> = Vec::new();
        let items = self.sequence(node, path).unwrap_or_default();
        if items.is_empty() {
            self.error(
                node.position,
                path,
                "an image needs at least one channel (leave the field out for [latest])",
            );
        }
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            let Some(text) = self.required_text(item, &item_path) else {
                continue;
            };
            match Tag::parse(&text) {
                Ok(tag) if channels.contains(&tag) => {
                    self.error(
                        item.position,
                        &item_path,
                        format!("channel {text:?} listed twice"),
                    );
                }
                Ok(tag) => channels.push(tag),
                Err(error) => self.error(item.position, &item_path, error.to_string()),
            }
        }
        channels
    }

    /// Every entry of a mapping of canonical name → entry, with duplicate names reported.
    fn entries(
        &mut self,
        node: &Node,
        path: &str,
        read_entry: fn(&mut Self, String, &Node, &Node, &str) -> Option<Draft>,
    ) -> Vec<Draft> {
        let Some(pairs) = self.mapping(node, path.trim_end_matches('.')) else {
            return Vec::new();
        };
        let mut drafts: Vec<Draft> = Vec::new();
        let mut seen: HashMap<String, Position> = HashMap::new();
        for (key, value) in pairs {
            let Some(text) = self.key_text(key, path.trim_end_matches('.')) else {
                continue;
            };
            let entry_path = format!("{path}{text}");
            let Some(name) = self.name(key, &entry_path) else {
                continue;
            };
            if let Some(first) = seen.get(&name) {
                self.error(
                    key.position,
                    &entry_path,
                    format!(
                        "duplicate canonical name {name:?} (first at {}:{}:{})",
                        self.file, first.line, first.column
                    ),
                );
                continue;
            }
            seen.insert(name.clone(), key.position);
            drafts.extend(read_entry(self, name, key, value, &entry_path));
        }
        drafts
    }

    fn new_positions(&self, path: &str, key: &Node) -> Positions {
        Positions {
            file: self.file.to_string(),
            path: path.to_string(),
            name: key.position,
            aliases: Vec::new(),
            replacement: None,
            base: None,
            eol_on: None,
            images: Vec::new(),
        }
    }

    fn berth_entry(&mut self, name: String, key: &Node, value: &Node, path: &str) -> Option<Draft> {
        let fields = self.fields(value, path, ENTRY_FIELDS)?;
        let mut at = self.new_positions(path, key);
        let field_path = |field: &str| join(path, field);
        let mut entry = CatalogEntry {
            name,
            description: None,
            aliases: Vec::new(),
            lifecycle: Lifecycle::default(),
            image: None,
            variants: BTreeMap::new(),
            base: None,
            owners: Vec::new(),
            channels: default_channels(),
        };
        for (field, Field { value, .. }) in &fields {
            let value = *value;
            let here = field_path(field);
            match *field {
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
                "image" => {
                    at.images.push((None, value.position));
                    entry.image = self.image(value, &here);
                }
                "variants" => entry.variants = self.variants(value, &here, &mut at.images),
                other => unreachable!("field {other} is in ENTRY_FIELDS but not read"),
            }
        }
        if !fields.contains_key("image") && !fields.contains_key("variants") {
            self.error(
                key.position,
                path,
                "an entry needs an `image` or `variants`",
            );
        }
        if let (Some(deprecated), Some(eol), Some(eol_position)) = (
            entry.lifecycle.deprecated_on,
            entry.lifecycle.eol_on,
            at.eol_on,
        ) && eol < deprecated
        {
            self.error(
                eol_position,
                &field_path("eol_on"),
                format!("eol_on {eol} is before deprecated_on {deprecated}"),
            );
        }
        Some(Draft { entry, at })
    }

    fn toolforge_entry(
        &mut self,
        name: String,
        key: &Node,
        value: &Node,
        path: &str,
    ) -> Option<Draft> {
        let fields = self.fields(value, path, TOOLFORGE_ENTRY_FIELDS)?;
        let mut at = self.new_positions(path, key);
        let mut entry = CatalogEntry {
            name,
            description: None,
            aliases: Vec::new(),
            lifecycle: Lifecycle::default(),
            image: None,
            variants: BTreeMap::new(),
            base: None,
            owners: Vec::new(),
            channels: default_channels(),
        };
        if let Some(field) = fields.get("aliases") {
            (entry.aliases, at.aliases) = self.aliases(field.value, &join(path, "aliases"));
        }
        match fields.get("state") {
            Some(field) => {
                entry.lifecycle.state = self
                    .state(field.value, &join(path, "state"))
                    .unwrap_or_default()
            }
            None => self.error(
                key.position,
                &join(path, "state"),
                "missing field: Toolforge consumers read `state`",
            ),
        }
        match fields.get("variants") {
            Some(field) => {
                entry.variants = self.variants(field.value, &join(path, "variants"), &mut at.images)
            }
            None => self.error(
                key.position,
                &join(path, "variants"),
                "missing field: Toolforge consumers read `variants`",
            ),
        }
        Some(Draft { entry, at })
    }
}

/// `a.b`, or `b` alone when `a` is empty.
pub fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
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
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Some("only letters, digits, '.', '_' and '-' are allowed");
    }
    None
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Scalar(scalar) if scalar.is_null() => "nothing",
        Value::Scalar(_) => "text",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
    }
}
