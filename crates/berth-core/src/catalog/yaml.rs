//! A YAML tree that remembers where every node is and keeps every mapping key, duplicates
//! included, so that files operators type can be checked with all problems reported at once.
//!
//! Built from `saphyr-parser` events: saphyr's own tree stops at the first duplicate key (or,
//! when told to allow them, silently keeps the last), and berth must name each duplicate with its
//! line. Scalars are kept as text with their style; [`Scalar::to_json`] resolves them with the
//! YAML 1.2 core schema when a typed value is wanted (the opaque `extra` maps).

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span};

/// How deeply collections may nest, in every YAML file berth reads. Kubernetes objects and
/// berth's own files stay far below it; past it, the recursive walks over the tree (and dropping
/// it) would risk the stack. serde_json, which reads the JSON manifests, stops at the same depth.
pub const MAX_DEPTH: usize = 128;
/// How many nodes anchors and aliases may copy in one file ("billion laughs" guard).
const ALIAS_NODE_BUDGET: usize = 100_000;
/// How many bytes of text (keys and scalars) anchors and aliases may copy in one file: one
/// large scalar referenced many times is small in nodes and huge in memory.
const ALIAS_BYTE_BUDGET: usize = 16 * 1024 * 1024;
/// The handle saphyr gives the `!!` core schema tags.
const CORE_TAG_HANDLE: &str = "tag:yaml.org,2002:";

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    fn from_span(span: Span) -> Position {
        Position {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// A node and where it starts; scalars borrow from the source text where they can.
#[derive(Debug, Clone, PartialEq)]
pub struct Node<'a> {
    pub position: Position,
    pub value: Value<'a>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Scalar(Scalar<'a>),
    Sequence(Vec<Node<'a>>),
    /// Key-value pairs in document order; a repeated key appears twice.
    Mapping(Vec<(Node<'a>, Node<'a>)>),
}

/// A scalar as written: its text, and whether quoting or a tag made it a string.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar<'a> {
    pub text: Cow<'a, str>,
    /// Quoted or block scalars are strings whatever they contain.
    pub style: ScalarStyle,
    /// A core schema tag (`!!str`, `!!int`, ...) given explicitly: its suffix.
    pub core_tag: Option<String>,
}

impl Scalar<'_> {
    /// A plain scalar that the core schema reads as null (`~`, `null`, or nothing at all).
    pub fn is_null(&self) -> bool {
        match &self.core_tag {
            Some(tag) => tag == "null",
            None => {
                self.style == ScalarStyle::Plain
                    && matches!(&*self.text, "" | "~" | "null" | "Null" | "NULL")
            }
        }
    }

    /// The value under the YAML 1.2 core schema, as JSON (which cannot hold `.inf` or `.nan`).
    pub fn to_json(&self) -> Result<serde_json::Value, String> {
        use serde_json::Value as Json;
        let text: &str = &self.text;
        let plain = self.style == ScalarStyle::Plain;
        let kind = match self.core_tag.as_deref() {
            Some(tag) => tag,
            None if !plain => "str",
            None if self.is_null() => "null",
            None if matches!(text, "true" | "True" | "TRUE" | "false" | "False" | "FALSE") => {
                "bool"
            }
            None if is_core_integer(text) => "int",
            None if is_core_float(text) => "float",
            None => "str",
        };
        match kind {
            "str" => Ok(Json::String(self.text.to_string())),
            "null" => Ok(Json::Null),
            "bool" => match text.to_ascii_lowercase().as_str() {
                "true" => Ok(Json::Bool(true)),
                "false" => Ok(Json::Bool(false)),
                _ => Err(format!("{text:?} is not a boolean")),
            },
            "int" => parse_integer(text)
                .map(Json::from)
                .ok_or_else(|| format!("{text:?} is not an integer that fits in 64 bits")),
            "float" => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Json::Number)
                .ok_or_else(|| format!("{text:?} is not a finite number")),
            other => Err(format!("the tag !!{other} is not supported here")),
        }
    }
}

/// Decimal, `0o` octal or `0x` hexadecimal, as the core schema writes integers.
fn parse_integer(text: &str) -> Option<i64> {
    if let Some(octal) = text.strip_prefix("0o") {
        return i64::from_str_radix(octal, 8).ok();
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `[-+]?[0-9]+`, `0o[0-7]+` or `0x[0-9a-fA-F]+`: the core schema's integers, whatever their size.
fn is_core_integer(text: &str) -> bool {
    let all = |s: &str, f: fn(&u8) -> bool| !s.is_empty() && s.as_bytes().iter().all(f);
    if let Some(octal) = text.strip_prefix("0o") {
        return all(octal, |b| (b'0'..=b'7').contains(b));
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return all(hex, u8::is_ascii_hexdigit);
    }
    all(
        text.strip_prefix(['-', '+']).unwrap_or(text),
        u8::is_ascii_digit,
    )
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, plus `.inf` and `.nan` spellings.
fn is_core_float(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if matches!(
        unsigned,
        ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN"
    ) {
        return true;
    }
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match fraction {
        None => !whole.is_empty() && digits(whole),
        Some(fraction) => {
            digits(whole) && digits(fraction) && (!whole.is_empty() || !fraction.is_empty())
        }
    };
    let exponent_ok = exponent.is_none_or(|exponent| {
        let exponent = exponent.strip_prefix(['-', '+']).unwrap_or(exponent);
        !exponent.is_empty() && digits(exponent)
    });
    mantissa_ok && exponent_ok
}

/// A file that is not YAML, or not one this tree accepts; stops the parse of that file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub position: Position,
    pub message: String,
}

impl From<ScanError> for SyntaxError {
    fn from(error: ScanError) -> SyntaxError {
        SyntaxError {
            position: Position {
                line: error.marker().line(),
                column: error.marker().col() + 1,
            },
            message: error.info().to_string(),
        }
    }
}

/// Parses one YAML document. `Ok(None)` for a file with no document (empty, or comments only).
pub fn parse(text: &str) -> Result<Option<Node<'_>>, SyntaxError> {
    let mut documents = parse_documents(text)?.into_iter();
    let first = documents.next();
    if let Some(second) = documents.next() {
        return Err(SyntaxError {
            position: second.position,
            message: "expected a single YAML document in this file".to_string(),
        });
    }
    Ok(first)
}

/// Parses every document of a stream (`---`-separated), as Kubernetes manifests come.
pub fn parse_documents(text: &str) -> Result<Vec<Node<'_>>, SyntaxError> {
    parse_documents_accepting(text, &[])
}

/// [`parse_documents`] for a format that defines local tags of its own (GitLab CI's
/// `!reference`): a node carrying one of `local_tags` (written with its `!`) is kept as if
/// untagged; any other tag is still refused.
pub fn parse_documents_accepting<'a>(
    text: &'a str,
    local_tags: &[&str],
) -> Result<Vec<Node<'a>>, SyntaxError> {
    let mut builder = Builder {
        local_tags: local_tags.iter().map(|tag| tag.to_string()).collect(),
        ..Builder::default()
    };
    // Events are read one by one: saphyr's `Parser::load` recurses once per level of nesting, so
    // a deeply nested block file would overflow the stack before the depth limit could apply.
    for event in Parser::new_from_str(text) {
        let (event, span) = event?;
        builder.on_event(event, span);
        if let Some(error) = builder.error.take() {
            return Err(error);
        }
    }
    Ok(builder.documents)
}

impl<'a> Node<'a> {
    /// A mapping's value under the text key `key` (the first, if repeated); `None` for a
    /// missing key or a node that is not a mapping. A key the mapping lacks is looked up in the
    /// mappings its `<<` merge key names (`<<: *defaults`, `<<: [*a, *b]`), as compose and
    /// GitLab CI read YAML; [`Node::to_json`] keeps `<<` as a plain key.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.get_within(key, MAX_DEPTH)
    }

    fn get_within(&self, key: &str, depth: usize) -> Option<&Node<'a>> {
        if let Some((_, value)) = self.entries().find(|(name, _)| *name == key) {
            return Some(value);
        }
        let merged = self.entries().find(|(name, _)| *name == "<<")?.1;
        let sources = match &merged.value {
            Value::Sequence(items) => &items[..],
            _ => std::slice::from_ref(merged),
        };
        let depth = depth.checked_sub(1)?;
        sources
            .iter()
            .find_map(|source| source.get_within(key, depth))
    }

    /// A mapping's pairs whose keys are text, in document order; nothing for other nodes.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Node<'a>)> {
        let pairs = match &self.value {
            Value::Mapping(pairs) => &pairs[..],
            _ => &[],
        };
        pairs.iter().filter_map(|(key, value)| match &key.value {
            Value::Scalar(scalar) => Some((&*scalar.text, value)),
            _ => None,
        })
    }

    /// A scalar's text, unless the scalar is null; `None` for collections.
    pub fn as_text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(scalar) if !scalar.is_null() => Some(&scalar.text),
            _ => None,
        }
    }

    /// The node a JSON pointer (RFC 6901, as [`Node::to_json`] would be addressed) names.
    pub fn pointer(&self, pointer: &str) -> Option<&Node<'a>> {
        if pointer.is_empty() {
            return Some(self);
        }
        let mut node = self;
        for segment in pointer.strip_prefix('/')?.split('/') {
            let segment = segment.replace("~1", "/").replace("~0", "~");
            node = match &node.value {
                Value::Sequence(items) => items.get(segment.parse::<usize>().ok()?)?,
                Value::Mapping(_) => node.get(&segment)?,
                Value::Scalar(_) => return None,
            };
        }
        Some(node)
    }
}

impl Node<'_> {
    /// The node as JSON: scalars under the core schema, mappings with text keys. A repeated
    /// key is an error (which one would win differs between readers, so a checker must not
    /// guess).
    pub fn to_json(&self) -> Result<serde_json::Value, SyntaxError> {
        let error = |position: Position, message: String| SyntaxError { position, message };
        match &self.value {
            Value::Scalar(scalar) => scalar
                .to_json()
                .map_err(|message| error(self.position, message)),
            Value::Sequence(items) => items
                .iter()
                .map(Node::to_json)
                .collect::<Result<Vec<_>, _>>()
                .map(serde_json::Value::Array),
            Value::Mapping(pairs) => {
                let mut object = serde_json::Map::new();
                for (key, value) in pairs {
                    let Value::Scalar(scalar) = &key.value else {
                        return Err(error(key.position, "expected a text key".to_string()));
                    };
                    let name = scalar.text.to_string();
                    if object.contains_key(&name) {
                        return Err(error(key.position, format!("key {name:?} given twice")));
                    }
                    object.insert(name, value.to_json()?);
                }
                Ok(serde_json::Value::Object(object))
            }
        }
    }
}

/// A collection being built, with the anchor it will be registered under.
#[derive(Debug)]
enum Frame<'a> {
    Sequence {
        position: Position,
        anchor: usize,
        items: Vec<Node<'a>>,
    },
    Mapping {
        position: Position,
        anchor: usize,
        pairs: Vec<(Node<'a>, Node<'a>)>,
        key: Option<Node<'a>>,
    },
}

#[derive(Debug, Default)]
struct Builder<'a> {
    /// The collections open at this point; its length is the current depth.
    stack: Vec<Frame<'a>>,
    documents: Vec<Node<'a>>,
    anchors: HashMap<usize, Node<'a>>,
    /// What anchors and aliases have copied so far in this file (all its documents).
    copied_nodes: usize,
    copied_bytes: usize,
    error: Option<SyntaxError>,
    /// Local tags the file's format defines, accepted and dropped.
    local_tags: Vec<String>,
}

impl<'a> Builder<'a> {
    fn fail(&mut self, position: Position, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(SyntaxError {
                position,
                message: message.into(),
            });
        }
    }

    fn complete(&mut self, node: Node<'a>, anchor: usize) {
        // An anchor keeps a copy of its node, so nested anchors copy too: counted like aliases.
        if anchor != 0 && self.charge(Size::of(&node), node.position) {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Sequence { items, .. }) => items.push(node),
            Some(Frame::Mapping { pairs, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(key) => pairs.push((key, node)),
            },
        }
    }

    /// Accepts the core schema tags (returning the suffix) and refuses any other.
    fn core_tag(&mut self, tag: Option<&saphyr_parser::Tag>, position: Position) -> Option<String> {
        let tag = tag?;
        if tag.handle == CORE_TAG_HANDLE
            && matches!(
                tag.suffix.as_str(),
                "str" | "int" | "float" | "bool" | "null" | "map" | "seq"
            )
        {
            return Some(tag.suffix.clone());
        }
        if self
            .local_tags
            .iter()
            .any(|local| *local == tag.to_string())
        {
            return None;
        }
        self.fail(position, format!("the YAML tag {tag} is not supported"));
        None
    }
}

/// What copying a node costs: its nodes, the bytes of its text, and how many levels of
/// collections it holds (0 for a scalar).
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: usize,
    bytes: usize,
    depth: usize,
}

impl Size {
    /// Walks the node; its recursion is bounded because every tree the builder holds is.
    fn of(node: &Node<'_>) -> Size {
        let children = |size: &mut Size, child: &Node<'_>| {
            let child = Size::of(child);
            size.nodes += child.nodes;
            size.bytes += child.bytes;
            size.depth = size.depth.max(child.depth + 1);
        };
        let mut size = Size {
            nodes: 1,
            ..Size::default()
        };
        match &node.value {
            Value::Scalar(scalar) => size.bytes = scalar.text.len(),
            Value::Sequence(items) => {
                size.depth = 1;
                for item in items {
                    children(&mut size, item);
                }
            }
            Value::Mapping(pairs) => {
                size.depth = 1;
                for (key, value) in pairs {
                    children(&mut size, key);
                    children(&mut size, value);
                }
            }
        }
        size
    }
}

impl<'input> Builder<'input> {
    /// Opens a collection, unless that would nest deeper than [`MAX_DEPTH`].
    fn open(&mut self, frame: Frame<'input>, position: Position) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(
                position,
                format!("collections nest deeper than {MAX_DEPTH} levels"),
            );
            return;
        }
        self.stack.push(frame);
    }

    /// Counts a copy of a node against the budgets; `false` (and the error recorded) past them.
    fn charge(&mut self, size: Size, position: Position) -> bool {
        self.copied_nodes += size.nodes;
        self.copied_bytes += size.bytes;
        if self.copied_nodes > ALIAS_NODE_BUDGET {
            self.fail(
                position,
                format!("aliases expand to more than {ALIAS_NODE_BUDGET} nodes"),
            );
            return false;
        }
        if self.copied_bytes > ALIAS_BYTE_BUDGET {
            let mebibytes = ALIAS_BYTE_BUDGET / (1024 * 1024);
            self.fail(
                position,
                format!("aliases expand to more than {mebibytes} MiB of text"),
            );
            return false;
        }
        true
    }

    /// Copies an anchored node where an alias names it, within the depth limit and the budgets.
    fn expand(&mut self, anchor: usize, position: Position) {
        let Some(size) = self.anchors.get(&anchor).map(Size::of) else {
            self.fail(position, "alias to an unknown anchor");
            return;
        };
        if self.stack.len() + size.depth > MAX_DEPTH {
            self.fail(
                position,
                format!("this alias makes collections nest deeper than {MAX_DEPTH} levels"),
            );
            return;
        }
        if !self.charge(size, position) {
            return;
        }
        let Some(mut node) = self.anchors.get(&anchor).cloned() else {
            return;
        };
        node.position = position;
        self.complete(node, 0);
    }

    fn on_event(&mut self, event: Event<'input>, span: Span) {
        if self.error.is_some() {
            return;
        }
        let position = Position::from_span(span);
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(_) => self.anchors.clear(),
            Event::Scalar(text, style, anchor, tag) => {
                let core_tag = self.core_tag(tag.as_deref(), position);
                let node = Node {
                    position,
                    value: Value::Scalar(Scalar {
                        text,
                        style,
                        core_tag,
                    }),
                };
                self.complete(node, anchor);
            }
            Event::SequenceStart(anchor, tag) => {
                self.core_tag(tag.as_deref(), position);
                let frame = Frame::Sequence {
                    position,
                    anchor,
                    items: Vec::new(),
                };
                self.open(frame, position);
            }
            Event::MappingStart(anchor, tag) => {
                self.core_tag(tag.as_deref(), position);
                let frame = Frame::Mapping {
                    position,
                    anchor,
                    pairs: Vec::new(),
                    key: None,
                };
                self.open(frame, position);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Sequence {
                        position,
                        anchor,
                        items,
                    }) => (
                        Node {
                            position,
                            value: Value::Sequence(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Mapping {
                        position,
                        anchor,
                        pairs,
                        ..
                    }) => (
                        Node {
                            position,
                            value: Value::Mapping(pairs),
                        },
                        anchor,
                    ),
                    None => {
                        self.fail(position, "unbalanced collection end");
                        return;
                    }
                };
                self.complete(node, anchor);
            }
            Event::Alias(anchor) => self.expand(anchor, position),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_json(text: &str) -> String {
        let document = format!("v: {text}");
        let Some(node) = parse(&document).expect("valid yaml") else {
            panic!("no document");
        };
        let Value::Mapping(pairs) = node.value else {
            panic!("not a mapping");
        };
        let Value::Scalar(scalar) = &pairs[0].1.value else {
            panic!("not a scalar");
        };
        match scalar.to_json() {
            Ok(value) => value.to_string(),
            Err(error) => format!("error: {error}"),
        }
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let cases = [
            ("~", "null"),
            ("", "null"),
            ("true", "true"),
            ("False", "false"),
            ("yes", "\"yes\""),
            ("12", "12"),
            ("-3", "-3"),
            ("0x1f", "31"),
            ("0o17", "15"),
            ("1.5", "1.5"),
            ("1e3", "1000.0"),
            (".5", "0.5"),
            ("3.11", "3.11"),
            ("'3.11'", "\"3.11\""),
            ("\"true\"", "\"true\""),
            ("!!str 12", "\"12\""),
            ("2027-01-01", "\"2027-01-01\""),
            ("uwsgi", "\"uwsgi\""),
            (".inf", "error: \".inf\" is not a finite number"),
            (
                "99999999999999999999",
                "error: \"99999999999999999999\" is not an integer that fits in 64 bits",
            ),
        ];
        for (text, expect) in cases {
            assert_eq!(scalar_json(text), expect, "{text}");
        }
    }

    #[test]
    fn keeps_duplicate_keys_and_positions() {
        let node = parse("a: 1\nb:\n  - x\na: 2\n").unwrap().unwrap();
        let Value::Mapping(pairs) = node.value else {
            panic!("not a mapping");
        };
        let keys: Vec<_> = pairs
            .iter()
            .map(|(key, _)| (key.position.line, key.position.column))
            .collect();
        assert_eq!(keys, [(1, 1), (2, 1), (4, 1)]);
        assert_eq!(pairs[1].1.position, Position { line: 3, column: 3 });
    }

    #[test]
    fn rejects_what_it_cannot_represent() {
        let cases = [
            (
                "a: [1\n",
                2,
                "while parsing a flow sequence, expected ',' or ']'",
            ),
            (
                "a: 1\n---\nb: 2\n",
                3,
                "expected a single YAML document in this file",
            ),
            ("a: !custom x\n", 1, "the YAML tag !custom is not supported"),
        ];
        for (text, line, message) in cases {
            let error = parse(text).unwrap_err();
            assert_eq!(
                (error.position.line, error.message.as_str()),
                (line, message),
                "{text}"
            );
        }
    }

    #[test]
    fn expands_aliases_within_a_budget() {
        let node = parse("base: &b {x: 1}\ncopy: *b\n").unwrap().unwrap();
        let Value::Mapping(pairs) = node.value else {
            panic!("not a mapping");
        };
        assert_eq!(pairs[0].1.value, pairs[1].1.value);
        assert_eq!(pairs[1].1.position.line, 2);
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (i, previous) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
            let name = ["b", "c", "d", "e", "f", "g"][i];
            bomb.push_str(&format!(
                "{name}: &{name} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"
            ));
        }
        let error = parse(&bomb).unwrap_err();
        assert!(error.message.contains("aliases expand"), "{error:?}");
    }

    /// issue 15, item 1: block style has no nesting limit in saphyr, whose `load` recursed once
    /// per level and overflowed the stack (exit 134) on 20,000 levels of `- - - x`.
    #[test]
    fn block_nesting_past_the_depth_limit_is_an_error_not_a_stack_overflow() {
        let sequences = format!("{}x\n", "- ".repeat(20_000));
        let error = parse(&sequences).unwrap_err();
        assert_eq!(
            (error.position, error.message.as_str()),
            (
                Position {
                    line: 1,
                    column: 2 * MAX_DEPTH + 1
                },
                "collections nest deeper than 128 levels"
            )
        );
        let mut mappings = String::new();
        for level in 0..MAX_DEPTH + 1 {
            mappings.push_str(&format!("{}a:\n", "  ".repeat(level)));
        }
        let error = parse_documents(&mappings).unwrap_err();
        assert_eq!(error.position.line, MAX_DEPTH + 1, "{error:?}");
        // Exactly at the limit is fine, in both styles.
        let deepest = format!("{}x\n", "- ".repeat(MAX_DEPTH));
        assert!(parse(&deepest).is_ok());
        let flow = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&flow).is_ok());
    }

    #[test]
    fn an_alias_cannot_nest_past_the_depth_limit() {
        let half = MAX_DEPTH / 2 + 1;
        let text = format!(
            "a: &deep {}x{}\nb: {}*deep{}\n",
            "[".repeat(half),
            "]".repeat(half),
            "[".repeat(half),
            "]".repeat(half)
        );
        let error = parse(&text).unwrap_err();
        assert_eq!(
            (error.position.line, error.message.as_str()),
            (
                2,
                "this alias makes collections nest deeper than 128 levels"
            )
        );
    }

    /// issue 15, item 2: one 1 MiB scalar referenced 3,000 times is 3,000 nodes (under the node
    /// budget) but 3 GiB of copies.
    #[test]
    fn a_large_scalar_referenced_many_times_is_refused_by_its_bytes() {
        let text = format!(
            "big: &a \"{}\"\nrefs: [{}]\n",
            "x".repeat(1024 * 1024),
            vec!["*a"; 3_000].join(", ")
        );
        let error = parse(&text).unwrap_err();
        assert_eq!(
            (error.position.line, error.message.as_str()),
            (2, "aliases expand to more than 16 MiB of text")
        );
        // A few references stay well within the budget.
        let few = format!("big: &a \"{}\"\nrefs: [*a, *a]\n", "x".repeat(1024 * 1024));
        assert!(parse(&few).is_ok());
    }

    #[test]
    fn streams_of_documents_become_json() {
        let text = "a: 1\nb: [x, '2']\n---\n# nothing\n---\nkind: Pod\nspec: {containers: null}\n";
        let documents: Vec<String> = parse_documents(text)
            .unwrap()
            .iter()
            .map(|node| node.to_json().unwrap().to_string())
            .collect();
        assert_eq!(
            documents,
            [
                r#"{"a":1,"b":["x","2"]}"#,
                "null",
                r#"{"kind":"Pod","spec":{"containers":null}}"#
            ]
        );
        let error = parse_documents("image: a\nimage: b\n").unwrap()[0]
            .to_json()
            .unwrap_err();
        assert_eq!(
            (error.position.line, error.message.as_str()),
            (2, "key \"image\" given twice")
        );
    }

    #[test]
    fn nodes_are_found_by_key_and_by_pointer() {
        let text = "a:\n  b: [x, {c: y}]\n  'd/e': ~\n  f~g: z\n";
        let node = parse(text).unwrap().unwrap();
        let found = |pointer: &str| {
            node.pointer(pointer)
                .map(|found| (found.position.line, found.position.column, found.as_text()))
        };
        assert_eq!(found("/a/b/0"), Some((2, 7, Some("x"))));
        assert_eq!(found("/a/b/1/c"), Some((2, 14, Some("y"))));
        assert_eq!(found("/a/d~1e"), Some((3, 10, None)));
        assert_eq!(found("/a/f~0g"), Some((4, 8, Some("z"))));
        assert_eq!(found(""), Some((1, 1, None)));
        for missing in ["/a/b/2", "/a/b/x", "/a/b/0/c", "/z", "a"] {
            assert_eq!(found(missing), None, "{missing}");
        }
        let keys: Vec<&str> = node
            .get("a")
            .unwrap()
            .entries()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(keys, ["b", "d/e", "f~g"]);
    }

    #[test]
    fn merge_keys_supply_what_a_mapping_lacks() {
        let text = "base: &b {image: x, tag: 1}\nmore: &m {extra: y}\n\
                    one: {<<: *b, tag: 2}\nmany: {<<: [*m, *b]}\n";
        let node = parse(text).unwrap().unwrap();
        let text_at = |pointer: &str, key: &str| {
            node.pointer(pointer)
                .and_then(|found| found.get(key))
                .and_then(Node::as_text)
        };
        assert_eq!(text_at("/one", "image"), Some("x"));
        assert_eq!(text_at("/one", "tag"), Some("2"));
        assert_eq!(text_at("/many", "extra"), Some("y"));
        assert_eq!(text_at("/many", "image"), Some("x"));
        assert_eq!(text_at("/many", "absent"), None);
        // The merged node keeps where it is written: at the anchor.
        let image = node.pointer("/one").unwrap().get("image").unwrap();
        assert_eq!(
            image.position,
            Position {
                line: 1,
                column: 18
            }
        );
    }

    #[test]
    fn a_format_may_accept_its_own_local_tags() {
        let text = "job:\n  script:\n    - !reference [.setup, script]\n  other: !custom x\n";
        let error = parse_documents_accepting(text, &["!reference"]).unwrap_err();
        assert_eq!(
            (error.position.line, error.message.as_str()),
            (4, "the YAML tag !custom is not supported")
        );
        let accepted = parse_documents_accepting(text, &["!reference", "!custom"]).unwrap();
        let other = accepted[0].pointer("/job/other").unwrap();
        assert_eq!(other.as_text(), Some("x"));
        assert!(parse_documents(text).is_err());
    }

    #[test]
    fn empty_files_have_no_document() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
    }
}
