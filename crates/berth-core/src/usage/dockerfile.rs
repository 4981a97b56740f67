//! Dockerfiles and Containerfiles: the image of each `FROM` (and of `COPY --from=IMAGE`), with
//! `ARG` defaults substituted as BuildKit would without `--build-arg`.
//!
//! Read as BuildKit reads them: the `# escape=` parser directive, instructions joined across
//! continuation lines (comment and empty lines inside them dropped), here-documents skipped,
//! keywords in any case. Only ARGs declared before the first `FROM` reach `FROM` lines (an ARG
//! inside a stage belongs to that stage); the builder's platform ARGs (`TARGETARCH`, ...) are
//! known to exist but have no value here. A `FROM` naming an earlier stage, and `scratch`, are
//! no image.

use std::collections::HashMap;

use super::{Finding, Problem, Resolution, Scan, SourceKind};
use crate::catalog::yaml::Position;

/// The ARGs BuildKit defines itself in the global scope, one value per target platform.
const PLATFORM_ARGS: &[&str] = &[
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
];

/// One instruction, its continuation lines joined, with where each joined piece starts.
#[derive(Debug)]
struct Instruction {
    text: String,
    /// (byte offset in `text`, position in the file) of each piece, in order.
    pieces: Vec<(usize, Position)>,
}

impl Instruction {
    /// The position in the file of the byte at `offset` of the joined text.
    fn position(&self, offset: usize) -> Position {
        let (start, position) = self
            .pieces
            .iter()
            .rev()
            .find(|(start, _)| *start <= offset)
            .copied()
            .unwrap_or_default();
        Position {
            line: position.line,
            column: position.column + self.text[start..offset].chars().count(),
        }
    }
}

/// A parser directive line (`# escape=\``): its key and value.
fn directive(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.strip_prefix('#')?.split_once('=')?;
    let key = key.trim();
    let valid = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && key.chars().all(|c| c.is_ascii_alphanumeric());
    valid.then(|| (key, value.trim()))
}

/// A line that is nothing to an instruction: empty, or a comment.
fn is_blank(line: &str) -> bool {
    let line = line.trim_start();
    line.is_empty() || line.starts_with('#')
}

/// The file's instructions, in order.
fn instructions(text: &str) -> Vec<Instruction> {
    let lines: Vec<&str> = text.lines().collect();
    let mut escape = '\\';
    let mut index = 0;
    while let Some((key, value)) = lines.get(index).and_then(|line| directive(line)) {
        if key.eq_ignore_ascii_case("escape") && matches!(value, "`" | "\\") {
            escape = if value == "`" { '`' } else { '\\' };
        }
        index += 1;
    }
    let mut instructions = Vec::new();
    while index < lines.len() {
        let line = lines[index];
        index += 1;
        if is_blank(line) {
            continue;
        }
        let content = line.trim_start();
        let mut piece = content;
        let mut position = Position {
            line: index,
            column: line[..line.len() - content.len()].chars().count() + 1,
        };
        let mut instruction = Instruction {
            text: String::new(),
            pieces: Vec::new(),
        };
        loop {
            let trimmed = piece.trim_end();
            let continued = trimmed.strip_suffix(escape);
            instruction.pieces.push((instruction.text.len(), position));
            instruction.text.push_str(continued.unwrap_or(piece));
            if continued.is_none() {
                break;
            }
            while lines.get(index).is_some_and(|line| is_blank(line)) {
                index += 1;
            }
            let Some(next) = lines.get(index) else {
                break;
            };
            index += 1;
            piece = next;
            position = Position {
                line: index,
                column: 1,
            };
        }
        for (terminator, strip_tabs) in heredocs(&instruction.text) {
            while let Some(line) = lines.get(index) {
                index += 1;
                let line = if strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    line
                };
                if line == terminator {
                    break;
                }
            }
        }
        instructions.push(instruction);
    }
    instructions
}

/// The here-documents a RUN, COPY or ADD opens (`<<EOF`, `<<-"EOF"`): each terminator, and
/// whether leading tabs are stripped before comparing.
fn heredocs(text: &str) -> Vec<(String, bool)> {
    let keyword = text.split_whitespace().next().unwrap_or_default();
    if !["RUN", "COPY", "ADD"]
        .iter()
        .any(|known| keyword.eq_ignore_ascii_case(known))
    {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut searched = 0;
    while let Some(at) = text[searched..].find("<<") {
        let before = &text[..searched + at];
        let rest = &text[searched + at + 2..];
        searched += at + 2;
        if rest.starts_with('<') {
            // `<<<` is a here-string.
            searched += rest.len() - rest.trim_start_matches('<').len();
            continue;
        }
        // Inside quotes (`echo "a<<b"`) it is text, not a here-document.
        if before.matches('"').count() % 2 == 1 || before.matches('\'').count() % 2 == 1 {
            continue;
        }
        let strip_tabs = rest.starts_with('-');
        let word = rest.strip_prefix('-').unwrap_or(rest);
        let word = word.trim_start_matches(['"', '\'']);
        // A delimiter is a word (`EOF`, `_end`), so `$((1<<3))` shifts and opens nothing.
        if !word.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            continue;
        }
        let end = word
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(word.len());
        found.push((word[..end].to_string(), strip_tabs));
    }
    found
}

/// The words of `text` split at whitespace, each with its byte offset.
fn words(text: &str) -> Vec<(usize, &str)> {
    let mut words = Vec::new();
    let mut start = None;
    for (offset, character) in text.char_indices() {
        match (character.is_whitespace(), start) {
            (true, Some(begin)) => {
                words.push((begin, &text[begin..offset]));
                start = None;
            }
            (false, None) => start = Some(offset),
            _ => {}
        }
    }
    if let Some(begin) = start {
        words.push((begin, &text[begin..]));
    }
    words
}

/// An ARG's value in a scope.
#[derive(Debug, Clone)]
enum Arg {
    Value(String),
    /// Declared without a default: empty unless the build passes it.
    NoDefault,
    /// Its default needs something unknown.
    Unresolved(String),
}

/// The ARGs visible at one point.
#[derive(Debug, Clone)]
struct Scope {
    args: HashMap<String, Arg>,
    /// What an undeclared name is, said for this scope.
    undeclared: &'static str,
}

impl Scope {
    /// The ARGs before the first FROM, the only ones FROM lines see.
    fn global() -> Scope {
        Scope {
            args: HashMap::new(),
            undeclared: "is not declared by an ARG before the first FROM",
        }
    }

    /// A stage's ARGs (a global one is visible only once the stage declares it again).
    fn stage() -> Scope {
        Scope {
            args: HashMap::new(),
            undeclared: "is not declared by an ARG in this stage",
        }
    }

    /// `${name}` and `$name`, with the `:-`, `-`, `:+` and `+` forms; the reason when an
    /// unknown value is needed.
    fn expand(&self, text: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut characters = text.char_indices().peekable();
        while let Some((offset, character)) = characters.next() {
            if character == '\\' && characters.peek().is_some_and(|(_, next)| *next == '$') {
                // An escaped `$` stays, and keeps the text from being a reference.
                out.push('$');
                characters.next();
                continue;
            }
            if character != '$' {
                out.push(character);
                continue;
            }
            let rest = &text[offset + 1..];
            if let Some(braced) = rest.strip_prefix('{') {
                let Some(end) = closing_brace(braced) else {
                    return Err(format!("`{text}` has an unclosed `${{`"));
                };
                out.push_str(&self.substitute(&braced[..end])?);
                let skip = braced[..=end].chars().count() + 1;
                for _ in 0..skip {
                    characters.next();
                }
            } else {
                let length = name_length(rest);
                if length == 0 {
                    out.push('$');
                    continue;
                }
                out.push_str(&self.value(&rest[..length])?);
                for _ in 0..length {
                    characters.next();
                }
            }
        }
        Ok(out)
    }

    /// The inside of one `${...}`.
    fn substitute(&self, inner: &str) -> Result<String, String> {
        let length = name_length(inner);
        let (name, modifier) = inner.split_at(length);
        if name.is_empty() {
            return Err(format!("`${{{inner}}}` is not a variable berth can read"));
        }
        let set = || match self.args.get(name) {
            Some(Arg::Value(value)) => Ok(Some(value.clone())),
            Some(Arg::NoDefault) => Ok(None),
            Some(Arg::Unresolved(reason)) => Err(reason.clone()),
            None => Err(self.unknown(name)),
        };
        let (operator, word) = match modifier.find(|c: char| c != ':') {
            _ if modifier.is_empty() => return self.value(name),
            Some(at) => modifier.split_at(at + 1),
            None => return Err(format!("`${{{inner}}}` is not a substitution berth reads")),
        };
        match operator {
            ":-" | "-" => {
                let value = match set() {
                    Ok(value) => value,
                    // Undeclared means empty, which the default replaces.
                    Err(_) if !self.args.contains_key(name) && !is_platform(name) => None,
                    Err(reason) => return Err(reason),
                };
                match value {
                    Some(value) if !(operator == ":-" && value.is_empty()) => Ok(value),
                    _ => self.expand(word),
                }
            }
            ":+" | "+" => {
                let value = match set() {
                    Ok(value) => value,
                    Err(_) if !self.args.contains_key(name) && !is_platform(name) => None,
                    Err(reason) => return Err(reason),
                };
                match value {
                    Some(value) if !(operator == ":+" && value.is_empty()) => self.expand(word),
                    _ => Ok(String::new()),
                }
            }
            _ => Err(format!(
                "`${{{inner}}}` uses a substitution berth does not evaluate"
            )),
        }
    }

    fn value(&self, name: &str) -> Result<String, String> {
        match self.args.get(name) {
            Some(Arg::Value(value)) => Ok(value.clone()),
            Some(Arg::NoDefault) => Err(format!(
                "ARG {name} has no default (the build passes it with --build-arg)"
            )),
            Some(Arg::Unresolved(reason)) => Err(reason.clone()),
            None => Err(self.unknown(name)),
        }
    }

    fn unknown(&self, name: &str) -> String {
        if is_platform(name) {
            format!("{name} is set by the builder for each target platform")
        } else {
            format!("{name} {}", self.undeclared)
        }
    }

    /// Declares `ARG name[=default]`; the default may use the ARGs declared before it.
    /// `inherited` is what the name holds in the enclosing (global) scope.
    fn declare(&mut self, name: &str, default: Option<&str>, inherited: Option<&Arg>) {
        let arg = match default {
            Some(default) => match self.expand(default) {
                Ok(value) => Arg::Value(value),
                Err(reason) => Arg::Unresolved(reason),
            },
            None => inherited.cloned().unwrap_or(Arg::NoDefault),
        };
        self.args.insert(name.to_string(), arg);
    }
}

fn is_platform(name: &str) -> bool {
    PLATFORM_ARGS.contains(&name)
}

/// The length of the variable name `text` starts with (`[A-Za-z_][A-Za-z0-9_]*`), in bytes.
fn name_length(text: &str) -> usize {
    let mut length = 0;
    for (index, character) in text.char_indices() {
        let allowed = character == '_'
            || character.is_ascii_alphabetic()
            || (index > 0 && character.is_ascii_digit());
        if !allowed {
            break;
        }
        length = index + 1;
    }
    length
}

/// The byte offset of the `}` closing a `${` whose inside `text` starts, nested ones counted.
fn closing_brace(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = text.as_bytes();
    for (index, byte) in bytes.iter().enumerate() {
        match byte {
            b'{' if index > 0 && bytes[index - 1] == b'$' => depth += 1,
            b'}' if depth == 0 => return Some(index),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// An ARG instruction's declarations: `NAME`, `NAME=value`, `NAME="quoted value"`.
fn declarations(text: &str) -> Vec<(String, Option<String>)> {
    let mut words: Vec<String> = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        match (quote, character) {
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, '"' | '\'') => {
                quote = Some(character);
                word.get_or_insert_default();
            }
            (Some(open), c) if c == open => quote = None,
            (Some('\''), c) => word.get_or_insert_default().push(c),
            (_, '\\') => {
                let next = characters.next().unwrap_or('\\');
                word.get_or_insert_default().push(next);
            }
            (_, c) => word.get_or_insert_default().push(c),
        }
    }
    words.extend(word);
    words
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (word, None),
        })
        .collect()
}

/// Every image the Dockerfile `text` builds on or copies from.
pub fn scan(text: &str) -> Scan {
    let mut scan = Scan::default();
    let mut global = Scope::global();
    let mut stage = Scope::stage();
    // Stage names (lowercase, as BuildKit compares them); `None` for an unnamed stage.
    let mut stages: Vec<Option<String>> = Vec::new();
    for instruction in instructions(text) {
        let words = words(&instruction.text);
        let Some((_, keyword)) = words.first() else {
            continue;
        };
        let keyword = keyword.to_ascii_uppercase();
        let rest = &words[1..];
        let context = |stages: &[Option<String>]| match stages.last() {
            Some(Some(name)) => format!("stage {name}"),
            _ => format!("stage {}", stages.len().saturating_sub(1)),
        };
        match keyword.as_str() {
            "ARG" => {
                let (offset, keyword) = words[0];
                let arguments = &instruction.text[offset + keyword.len()..];
                for (name, default) in declarations(arguments) {
                    if stages.is_empty() {
                        global.declare(&name, default.as_deref(), None);
                    } else {
                        let inherited = global.args.get(&name).cloned();
                        stage.declare(&name, default.as_deref(), inherited.as_ref());
                    }
                }
            }
            "FROM" => {
                let mut operands = rest.iter().filter(|(_, word)| !word.starts_with("--"));
                let Some(&(offset, image)) = operands.next() else {
                    scan.problems.push(Problem {
                        position: instruction.position(0),
                        message: "FROM without an image".to_string(),
                    });
                    continue;
                };
                let name = match (operands.next(), operands.next()) {
                    (Some((_, as_word)), Some((_, name))) if as_word.eq_ignore_ascii_case("as") => {
                        stage_name(name)
                    }
                    _ => None,
                };
                let expanded = global.expand(image);
                stages.push(name);
                stage = Scope::stage();
                let resolution = match expanded {
                    Ok(text) if text.eq_ignore_ascii_case("scratch") => continue,
                    Ok(text) if is_stage(&stages[..stages.len() - 1], &text) => continue,
                    Ok(text) => Resolution::of(&text),
                    Err(reason) => Resolution::Unresolved { reason },
                };
                scan.findings.push(Finding {
                    kind: SourceKind::Dockerfile,
                    context: context(&stages),
                    image: image.to_string(),
                    resolution,
                    position: instruction.position(offset),
                });
            }
            "COPY" | "ADD" => {
                let flags = rest.iter().take_while(|(_, word)| word.starts_with("--"));
                for &(offset, flag) in flags {
                    let Some(source) = flag.strip_prefix("--from=") else {
                        continue;
                    };
                    let resolution = match stage.expand(source) {
                        Ok(text) if text.bytes().all(|b| b.is_ascii_digit()) => continue,
                        Ok(text) if is_stage(&stages, &text) => continue,
                        Ok(text) => Resolution::of(&text),
                        Err(reason) => Resolution::Unresolved { reason },
                    };
                    scan.findings.push(Finding {
                        kind: SourceKind::Dockerfile,
                        context: format!("{} {} --from", context(&stages), keyword),
                        image: source.to_string(),
                        resolution,
                        position: instruction.position(offset + "--from=".len()),
                    });
                }
            }
            _ => {}
        }
    }
    scan
}

/// A stage name as BuildKit accepts it (`[a-z][a-z0-9._-]*`, compared in lowercase): the valid
/// start of `word`, so that text glued to it (a template's `{{if`) does not hide the stage.
fn stage_name(word: &str) -> Option<String> {
    let word = word.to_ascii_lowercase();
    let end = word
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or(word.len());
    let name = &word[..end];
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        .then(|| name.to_string())
}

/// Whether `text` names one of `stages` (BuildKit compares stage names without case).
fn is_stage(stages: &[Option<String>], text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    stages.iter().flatten().any(|name| *name == text)
}
