//! The rules loader's error type: one line naming the file, the line and
//! the key, whatever a hostile file holds, and the helpers that find a line
//! and a key from a byte offset in the file's text.

use std::fmt;

/// A rules file that could not be used.
///
/// `Display` is one line: `FILE:LINE: MESSAGE`, or `FILE: MESSAGE` when no line
/// applies (unreadable file, unknown file name, missing directory).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or directory) the error is about, as given to the loader.
    pub file: String,
    /// 1-based line in `file`, when the error points into the document.
    pub line: Option<usize>,
    /// The offending key, e.g. `[syn_retry] min_attempts`, when known.
    pub key: Option<String>,
    /// What is wrong; already mentions `key` when there is one.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep it one line whatever the parser put in the message.
        let msg = printable(&self.message, MAX_MESSAGE_CHARS);
        let file = printable(&self.file, MAX_MESSAGE_CHARS);
        match self.line {
            Some(line) => write!(f, "{file}:{line}: {msg}"),
            None => write!(f, "{file}: {msg}"),
        }
    }
}

/// Longest file name or message shown by [`ConfigError`]'s `Display`.
const MAX_MESSAGE_CHARS: usize = 400;

/// One printable line: whitespace runs become one space, other control
/// characters become `?`, and the text is cut to `max` characters.
pub fn printable(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in one_line(s).chars().enumerate() {
        if n == max {
            out.push_str("...");
            break;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

/// Collapses whitespace runs (including newlines) into single spaces.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl ConfigError {
    /// An error about a whole file or directory (no line).
    pub fn file(file: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { file: file.into(), line: None, key: None, message: message.into() }
    }

    /// An error at byte offset `at` of `text`, about `key`.
    pub fn at(file: &str, text: &str, at: usize, key: Option<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { file: file.to_string(), line: Some(line_of(text, at)), key, message: message.into() }
    }

    /// A value error for `key` whose value sits at `span` in `text`:
    /// `FILE:LINE: KEY: MESSAGE`.
    pub fn value(
        file: &str,
        text: &str,
        span: std::ops::Range<usize>,
        key: &str,
        message: impl fmt::Display,
    ) -> ConfigError {
        ConfigError::at(file, text, span.start, Some(key.to_string()), format!("{key}: {message}"))
    }

    /// Converts a TOML syntax or type error into a one-line error.
    pub fn from_toml(file: &str, text: &str, err: &toml::de::Error) -> ConfigError {
        let raw = friendly_types(&one_line(err.message()));
        let start = err.span().map(|s| s.start);
        let table = start.map(|s| table_at(text, s)).unwrap_or_default();
        let on_header = start.is_some_and(|s| line_text(text, s).trim_start().starts_with('['));
        // serde's deny_unknown_fields message: "unknown field `x`, expected ...".
        let (key, message) = if let Some(name) =
            raw.strip_prefix("unknown field `").and_then(|r| r.split_once('`')).map(|(n, _)| n.to_string())
        {
            let expected = raw.split_once(", expected ").map(|(_, e)| format!(" (expected {e})")).unwrap_or_default();
            let what = if on_header {
                format!("unknown table `{name}`")
            } else if table.is_empty() {
                format!("unknown key `{name}` at top level")
            } else {
                format!("unknown key `{name}` in {table}")
            };
            (Some(name.clone()), format!("{what}{expected}"))
        } else if let Some(name) =
            raw.strip_prefix("missing field `").and_then(|r| r.split_once('`')).map(|(n, _)| n.to_string())
        {
            let where_ = if table.is_empty() { "at top level".to_string() } else { format!("in {table}") };
            (Some(name.clone()), format!("missing key `{name}` {where_}"))
        } else if let Some(name) =
            raw.strip_prefix("unknown variant `").and_then(|r| r.split_once('`')).map(|(n, _)| n.to_string())
        {
            (None, format!("unknown table `{name}`: {raw}"))
        } else {
            // Type errors point at the value; name the key on that line.
            let key = start.and_then(|s| key_on_line(text, s));
            let message = match (&key, table.is_empty()) {
                (Some(k), false) => format!("{table} {k}: {raw}"),
                (Some(k), true) => format!("{k}: {raw}"),
                (None, false) if on_header => format!("{table}: {raw}"),
                (None, _) => raw,
            };
            (key, message)
        };
        ConfigError { file: file.to_string(), line: start.map(|s| line_of(text, s)), key, message }
    }
}

/// Rewrites serde's Rust type names into words an operator knows.
fn friendly_types(msg: &str) -> String {
    let mut m = msg.to_string();
    for (from, to) in [
        (" as i128", ""),
        ("expected i64", "expected an integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected f64", "expected a number"),
    ] {
        m = m.replace(from, to);
    }
    if m.starts_with("invalid type: integer") && m.ends_with("expected an integer") {
        m = m.replace("invalid type: integer", "integer out of range:");
        m = m.replace(", expected an integer", "");
    }
    m
}

/// The text of the line holding byte offset `at`.
fn line_text(text: &str, at: usize) -> &str {
    let at = floor_char_boundary(text, at);
    let start = text[..at].rfind('\n').map_or(0, |p| p + 1);
    text[start..].split('\n').next().unwrap_or("")
}

/// Largest char boundary <= `at` (clamped to the text).
fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// 1-based line number of byte offset `at` in `text` (clamped to the text).
pub fn line_of(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The `[table]` / `[[array]]` header in force at byte offset `at`, or "".
fn table_at(text: &str, at: usize) -> String {
    let at = at.min(text.len());
    let mut header = String::new();
    let mut pos = 0usize;
    for line in text.split_inclusive('\n') {
        if pos > at {
            break;
        }
        let t = line.trim();
        if t.starts_with('[') {
            let close = if t.starts_with("[[") { "]]" } else { "]" };
            header = match t.find(close) {
                Some(end) => t[..end + close.len()].to_string(),
                None => t.to_string(),
            };
        }
        pos += line.len();
    }
    header
}

/// The bare key at the start of the line holding byte offset `at`, if any.
fn key_on_line(text: &str, at: usize) -> Option<String> {
    let line = line_text(text, at);
    let (k, _) = line.split_once('=')?;
    let k = k.trim();
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.') {
        Some(k.to_string())
    } else {
        None
    }
}
