//! Text quoted from outside (a registry's error message, a key read from a file, a field of an
//! admitted object) made safe to print: control characters cannot clear a terminal or forge a
//! `berth:` line, and an excerpt never carries more than a few words of a file berth could not
//! read.
//!
//! One escaping rule everywhere: C0 controls (LF, CR, TAB, ESC, ...), DEL, C1 controls and the
//! Unicode bidirectional overrides are written as Rust writes them in `{:?}` (`\n`, `\r`, `\t`,
//! `\u{1b}`); a backslash stays a backslash; everything else is kept.

use std::borrow::Cow;

/// How many characters of a file's content a diagnostic quotes at most.
pub const EXCERPT_CHARS_MAX: usize = 32;

/// `text` with every control character escaped; borrowed when there is none.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        push_escaped(&mut escaped, character);
    }
    Cow::Owned(escaped)
}

/// At most [`EXCERPT_CHARS_MAX`] characters of `text`, escaped, with `…` when cut.
pub fn excerpt(text: &str) -> String {
    let mut quoted = String::new();
    let mut characters = text.chars();
    for character in characters.by_ref().take(EXCERPT_CHARS_MAX) {
        push_escaped(&mut quoted, character);
    }
    if characters.next().is_some() {
        quoted.push('…');
    }
    quoted
}

fn needs_escape(character: char) -> bool {
    character.is_control() || is_bidi_control(character)
}

/// The embeddings, overrides and isolates that reorder what a terminal shows ("Trojan Source").
fn is_bidi_control(character: char) -> bool {
    matches!(character, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_escaped(out: &mut String, character: char) {
    match character {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        other if needs_escape(other) => out.push_str(&format!("\\u{{{:x}}}", other as u32)),
        other => out.push(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// issue 15, item 8: a registry's message with ESC, CR and LF cleared the screen and forged
    /// a `berth:` line.
    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        let cases = [
            ("manifest unknown", "manifest unknown"),
            (
                "\u{1b}[2J\u{1b}[Hok\r\nberth: all good",
                "\\u{1b}[2J\\u{1b}[Hok\\r\\nberth: all good",
            ),
            (
                "tab\there, bell\u{7}, del\u{7f}",
                "tab\\there, bell\\u{7}, del\\u{7f}",
            ),
            ("c1 \u{9b}31m", "c1 \\u{9b}31m"),
            ("bidi \u{202e}txt.exe", "bidi \\u{202e}txt.exe"),
            ("naïve café ✓ \\n", "naïve café ✓ \\n"),
        ];
        for (text, expect) in cases {
            assert_eq!(escape(text), expect, "{text:?}");
        }
        assert!(matches!(escape("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn excerpts_are_short_and_escaped() {
        assert_eq!(excerpt("imgae"), "imgae");
        let line =
            "root:$6$abcdefghijklmnop$0123456789abcdefghijklmnopqrstuvwxyz:19000:0:99999:7::";
        assert_eq!(excerpt(line), "root:$6$abcdefghijklmnop$0123456…");
        assert_eq!(excerpt(&"é".repeat(40)), format!("{}…", "é".repeat(32)));
        assert_eq!(excerpt("a\u{1b}b"), "a\\u{1b}b");
    }
}
