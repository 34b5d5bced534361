//! The rules loader: reads a rules directory (or the copies built into the
//! binary), refuses what is not a rules file, and checks the top level of
//! `picket.toml` against the sections the detectors declare. It knows no
//! detector: each one declares its own section with
//! [`rules_section!`](crate::rules_section) (`schema`), and
//! `crate::rules` puts the sections and the port table together.
//!
//! Rule files are hostile input: nothing here panics, files over
//! [`MAX_RULES_FILE_BYTES`] are refused, unknown keys and out-of-range values
//! are errors, and every error is one line naming the file, the line and the
//! key (`rules/picket.toml:14: [syn_retry] min_attempts: must be between 2
//! and 16, got 40`).

pub mod error;
pub mod schema;

pub use error::{ConfigError, line_of};
use serde::de::IgnoredAny;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use toml::Spanned;

/// Largest rules file accepted, in bytes.
pub const MAX_RULES_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The shipped detector settings (`rules/picket.toml`).
pub const BUILTIN_PICKET_TOML: &str = include_str!("../../rules/picket.toml");
/// The shipped port knowledge base (`rules/ports.toml`).
pub const BUILTIN_PORTS_TOML: &str = include_str!("../../rules/ports.toml");

/// The shipped scanner fingerprints (`rules/scanners.toml`).
pub const BUILTIN_SCANNERS_TOML: &str = include_str!("../../rules/scanners.toml");
/// Label used in errors for the built-in copy of `scanners.toml`.
pub const BUILTIN_SCANNERS_LABEL: &str = "<built-in>/scanners.toml";

/// The shipped asset data for severity (`rules/assets.toml`).
pub const BUILTIN_ASSETS_TOML: &str = include_str!("../../rules/assets.toml");
/// Label used in errors for the built-in copy of `assets.toml`.
pub const BUILTIN_ASSETS_LABEL: &str = "<built-in>/assets.toml";

/// Label used in errors for the built-in copy of `picket.toml`.
pub const BUILTIN_PICKET_LABEL: &str = "<built-in>/picket.toml";
/// Label used in errors for the built-in copy of `ports.toml`.
pub const BUILTIN_PORTS_LABEL: &str = "<built-in>/ports.toml";

/// Where a loaded piece of the rules came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Read from this file.
    File(String),
    /// The copy built into the binary.
    Builtin,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => f.write_str(p),
            Source::Builtin => f.write_str("built-in"),
        }
    }
}

/// One rules file's text, the label its errors carry, and its origin.
pub struct RulesText {
    pub label: String,
    pub text: String,
    pub source: Source,
}

impl RulesText {
    fn builtin(label: &str, text: &str) -> RulesText {
        RulesText { label: label.to_string(), text: text.to_string(), source: Source::Builtin }
    }
}

/// The files of a rules directory, with the built-in copies standing in for
/// the ones it lacks.
pub struct RulesFiles {
    pub picket: RulesText,
    pub ports: RulesText,
    pub scanners: RulesText,
    pub assets: RulesText,
}

impl RulesFiles {
    /// The copies built into the binary.
    pub fn builtin() -> RulesFiles {
        RulesFiles {
            picket: RulesText::builtin(BUILTIN_PICKET_LABEL, BUILTIN_PICKET_TOML),
            ports: RulesText::builtin(BUILTIN_PORTS_LABEL, BUILTIN_PORTS_TOML),
            scanners: RulesText::builtin(BUILTIN_SCANNERS_LABEL, BUILTIN_SCANNERS_TOML),
            assets: RulesText::builtin(BUILTIN_ASSETS_LABEL, BUILTIN_ASSETS_TOML),
        }
    }

    /// Reads every `*.toml` in `dir`.
    ///
    /// `picket.toml`, `ports.toml`, `scanners.toml` and `assets.toml` are the known names;
    /// any other `.toml` file is an error naming it, other files are
    /// ignored. A missing file falls back to the built-in copy. A
    /// missing or unreadable directory is an error naming it.
    pub fn read_dir(dir: &Path) -> Result<RulesFiles, ConfigError> {
        let dir_label = dir.display().to_string();
        let rd = std::fs::read_dir(dir)
            .map_err(|e| ConfigError::file(&dir_label, format!("cannot read rules directory: {e}")))?;
        let mut names = Vec::new();
        for entry in rd {
            let entry =
                entry.map_err(|e| ConfigError::file(&dir_label, format!("cannot list rules directory: {e}")))?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
                names.push(path);
            }
        }
        names.sort();
        let mut files = RulesFiles::builtin();
        for path in names {
            let slot = match path.file_name().and_then(|n| n.to_str()) {
                Some("picket.toml") => &mut files.picket,
                Some("ports.toml") => &mut files.ports,
                Some("scanners.toml") => &mut files.scanners,
                Some("assets.toml") => &mut files.assets,
                _ => {
                    return Err(ConfigError::file(
                        path.display().to_string(),
                        "unknown rules file (expected picket.toml, ports.toml, scanners.toml or assets.toml)",
                    ));
                }
            };
            let label = path.display().to_string();
            *slot = RulesText { text: read_rules_file(&path)?, source: Source::File(label.clone()), label };
        }
        Ok(files)
    }
}

/// The error for a rules text over [`MAX_RULES_FILE_BYTES`].
pub fn too_big(file: &str, len: u64) -> ConfigError {
    ConfigError::file(file, format!("file is {len} bytes; rules files are limited to {MAX_RULES_FILE_BYTES} bytes"))
}

/// Reads a rules file as UTF-8, refusing anything over [`MAX_RULES_FILE_BYTES`].
pub fn read_rules_file(path: &Path) -> Result<String, ConfigError> {
    let label = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| ConfigError::file(&label, format!("cannot open: {e}")))?;
    if let Ok(meta) = f.metadata() {
        if !meta.is_file() {
            return Err(ConfigError::file(&label, "not a regular file"));
        }
        if meta.len() > MAX_RULES_FILE_BYTES {
            return Err(too_big(&label, meta.len()));
        }
    }
    let mut buf = Vec::new();
    f.take(MAX_RULES_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ConfigError::file(&label, format!("cannot read: {e}")))?;
    if buf.len() as u64 > MAX_RULES_FILE_BYTES {
        return Err(too_big(&label, buf.len() as u64));
    }
    String::from_utf8(buf)
        .map_err(|e| ConfigError::file(&label, format!("not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to())))
}

/// Checks the top level of a `picket.toml`: the size limit, the syntax, and
/// that every top-level name is one of `sections` (each section's own keys
/// are checked by its [`schema::Section::parse`]).
pub fn check_tables(file: &str, text: &str, sections: &[&str]) -> Result<(), ConfigError> {
    if text.len() as u64 > MAX_RULES_FILE_BYTES {
        return Err(too_big(file, text.len() as u64));
    }
    let top: BTreeMap<Spanned<String>, IgnoredAny> =
        toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
    let expected = sections.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ");
    for name in top.keys() {
        if sections.contains(&name.get_ref().as_str()) {
            continue;
        }
        let at = name.span().start;
        let on_header = text[..at.min(text.len())].rsplit('\n').next().is_some_and(|l| l.trim_start().starts_with('['));
        let what = if on_header { "unknown table" } else { "unknown key" };
        let shown = error::printable(name.get_ref(), 80);
        let suffix = if on_header { "" } else { " at top level" };
        return Err(ConfigError::at(
            file,
            text,
            at,
            Some(name.get_ref().clone()),
            format!("{what} `{shown}`{suffix} (expected one of {expected})"),
        ));
    }
    Ok(())
}
