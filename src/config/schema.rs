//! The rules schema: how a detector declares its `[section]` of
//! `picket.toml` once, with [`rules_section!`](crate::rules_section), and
//! what the loader and `picket rules dump` do with that declaration.
//!
//! One declaration gives, for every key: the field of the detector's rules
//! struct, its default, its allowed range, and its documentation (the
//! field's doc comment, shown by rustdoc and as the key's comment in
//! `picket rules dump`). serde reads the section with
//! `deny_unknown_fields`, each value with its span, so a bad value is
//! reported as `FILE:LINE: [section] key: must be between LO and HI, got X`.
//! Checks that involve two keys (thresholds in order) are the detector's own
//! function, named in the declaration.

use super::error::ConfigError;
use serde::de::DeserializeOwned;
use std::ops::Range;
use toml::Spanned;

/// Most entries any table may be configured to hold (`max_tracked` keys).
pub const MAX_TABLE_ENTRIES: i64 = 16 * 1024 * 1024;

/// Where a value sits: the file, its text and the key (`[syn_retry] min_attempts`).
pub struct At<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub key: String,
}

impl At<'_> {
    /// `FILE:LINE: KEY: MESSAGE`, at the value's span.
    pub fn err(&self, span: Range<usize>, message: impl std::fmt::Display) -> ConfigError {
        ConfigError::value(self.file, self.text, span, &self.key, message)
    }
}

/// A type a rules key can hold: what TOML gives for it (`Raw`, read by
/// serde), how it is checked against its bounds, and how it is written back.
pub trait RuleValue: Sized {
    type Raw: DeserializeOwned;
    /// The allowed values; `()` when any value of the type is fine.
    type Bounds;
    /// The checked value, or an error naming the key and the allowed range.
    fn from_raw(raw: &Spanned<Self::Raw>, bounds: &Self::Bounds, at: &At) -> Result<Self, ConfigError>;
    /// The value as TOML (`3`, `0.5`, `true`, `[7, 19]`).
    fn to_toml(&self) -> String;
    /// The allowed range for the key's comment (`2..16`), or "".
    fn describe(bounds: &Self::Bounds) -> String;
}

/// An inclusive integer range.
#[derive(Clone, Copy, Debug)]
pub struct Ints {
    pub lo: i64,
    pub hi: i64,
}

/// Integers from `lo` to `hi`, both included.
pub const fn ints(lo: i64, hi: i64) -> Ints {
    Ints { lo, hi }
}

/// A table cap: 1 to [`MAX_TABLE_ENTRIES`].
pub const fn entries() -> Ints {
    ints(1, MAX_TABLE_ENTRIES)
}

impl Ints {
    fn check(&self, v: &Spanned<i64>, at: &At) -> Result<i64, ConfigError> {
        let x = *v.get_ref();
        if x < self.lo || x > self.hi {
            return Err(at.err(v.span(), format!("must be between {} and {}, got {x}", self.lo, self.hi)));
        }
        Ok(x)
    }

    fn describe(&self) -> String {
        format!("{}..{}", self.lo, self.hi)
    }
}

macro_rules! int_rule_value {
    ($($t:ty),*) => {$(
        impl RuleValue for $t {
            type Raw = i64;
            type Bounds = Ints;
            fn from_raw(raw: &Spanned<i64>, b: &Ints, at: &At) -> Result<$t, ConfigError> {
                let x = b.check(raw, at)?;
                <$t>::try_from(x).map_err(|_| at.err(raw.span(), format!("{x} does not fit")))
            }
            fn to_toml(&self) -> String {
                self.to_string()
            }
            fn describe(b: &Ints) -> String {
                b.describe()
            }
        }
    )*};
}
int_rule_value!(u8, u16, u32, u64, usize, i64);

/// A range of finite numbers; the low end is excluded when `lo_open`.
#[derive(Clone, Copy, Debug)]
pub struct Floats {
    pub lo: f64,
    pub lo_open: bool,
    pub hi: f64,
}

/// Numbers from `lo` to `hi`, both included.
pub const fn floats(lo: f64, hi: f64) -> Floats {
    Floats { lo, lo_open: false, hi }
}

/// Numbers greater than `lo`, up to `hi` included.
pub const fn above(lo: f64, hi: f64) -> Floats {
    Floats { lo, lo_open: true, hi }
}

impl RuleValue for f64 {
    type Raw = f64;
    type Bounds = Floats;
    fn from_raw(raw: &Spanned<f64>, b: &Floats, at: &At) -> Result<f64, ConfigError> {
        let x = *raw.get_ref();
        let low_ok = if b.lo_open { x > b.lo } else { x >= b.lo };
        if !x.is_finite() || !low_ok || x > b.hi {
            let range = if b.lo_open {
                format!("must be greater than {} and at most {}", b.lo, b.hi)
            } else {
                format!("must be between {} and {}", b.lo, b.hi)
            };
            return Err(at.err(raw.span(), format!("{range}, got {x}")));
        }
        Ok(x)
    }
    fn to_toml(&self) -> String {
        // Whole numbers keep a ".0" so the dump shows the key takes a number.
        if self.fract() == 0.0 && self.abs() < 1e15 { format!("{self:.1}") } else { self.to_string() }
    }
    fn describe(b: &Floats) -> String {
        if b.lo_open { format!("> {}, <= {}", b.lo, b.hi) } else { format!("{}..{}", b.lo, b.hi) }
    }
}

impl RuleValue for bool {
    type Raw = bool;
    type Bounds = ();
    fn from_raw(raw: &Spanned<bool>, _: &(), _: &At) -> Result<bool, ConfigError> {
        Ok(*raw.get_ref())
    }
    fn to_toml(&self) -> String {
        self.to_string()
    }
    fn describe(_: &()) -> String {
        String::new()
    }
}

/// Most entries in a list-valued key.
pub const MAX_RULE_LIST: usize = 256;

/// A list of at most [`MAX_RULE_LIST`] distinct integers, each in `Ints`
/// (duplicates are dropped, the first kept).
impl RuleValue for Vec<u16> {
    type Raw = Vec<Spanned<i64>>;
    type Bounds = Ints;
    fn from_raw(raw: &Spanned<Self::Raw>, b: &Ints, at: &At) -> Result<Vec<u16>, ConfigError> {
        if raw.get_ref().len() > MAX_RULE_LIST {
            return Err(at.err(raw.span(), format!("at most {MAX_RULE_LIST} entries")));
        }
        let mut out = Vec::new();
        for item in raw.get_ref() {
            let x = b.check(item, at)?;
            let v = u16::try_from(x).map_err(|_| at.err(item.span(), format!("{x} does not fit")))?;
            if !out.contains(&v) {
                out.push(v);
            }
        }
        Ok(out)
    }
    fn to_toml(&self) -> String {
        format!("[{}]", self.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "))
    }
    fn describe(b: &Ints) -> String {
        format!("at most {MAX_RULE_LIST}, each {}", b.describe())
    }
}

/// A TOML string, quoted.
pub fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The spans of the keys a section set, for checks across keys.
pub struct Spans<'a> {
    file: &'a str,
    text: &'a str,
    section: &'static str,
    set: Vec<(&'static str, Range<usize>)>,
}

impl<'a> Spans<'a> {
    pub fn new(file: &'a str, text: &'a str, section: &'static str) -> Spans<'a> {
        Spans { file, text, section, set: Vec::new() }
    }

    pub fn set(&mut self, key: &'static str, span: Range<usize>) {
        self.set.push((key, span));
    }

    fn span(&self, key: &str) -> Option<Range<usize>> {
        self.set.iter().find(|(k, _)| *k == key).map(|(_, s)| s.clone())
    }

    /// Two keys whose values are in the wrong order: the error points at
    /// `first` if the file sets it, else at `second`.
    pub fn out_of_order(&self, first: &str, second: &str, message: String) -> ConfigError {
        let (span, key) = match (self.span(first), self.span(second)) {
            (Some(s), _) => (s, first),
            (None, Some(s)) => (s, second),
            (None, None) => (0..0, first),
        };
        ConfigError::value(self.file, self.text, span, &format!("[{}] {key}", self.section), message)
    }
}

/// One key as `picket rules dump` shows it.
pub struct KeyDoc {
    pub name: &'static str,
    /// The field's doc comment, one entry per line.
    pub doc: &'static [&'static str],
    pub value: String,
    /// Allowed range, or "".
    pub range: String,
}

/// A `[section]` of `picket.toml`, as the loader and the dump see it.
pub trait Section: Default + Clone {
    /// The table name (`syn_retry`).
    const NAME: &'static str;
    /// Reads the section from the text of a whole `picket.toml` (other
    /// tables are not looked at); a missing section or key takes the default.
    fn parse(file: &str, text: &str) -> Result<Self, ConfigError>;
}

/// The object-safe half of [`Section`]: what the dump and the summary need.
pub trait Described {
    fn name(&self) -> &'static str;
    /// The section's doc comment, one entry per line.
    fn doc(&self) -> &'static [&'static str];
    /// Every key, in declaration order, with its current value.
    fn keys(&self) -> Vec<KeyDoc>;
    /// The `enabled` key, for sections that have one.
    fn enabled(&self) -> Option<bool> {
        self.keys().iter().find(|k| k.name == "enabled").map(|k| k.value == "true")
    }
}

/// Declares a `[section]` of `picket.toml`: the rules struct (with `Clone,
/// Debug, PartialEq` and a `Default` made of the declared defaults), its
/// [`Section`] and [`Described`] impls.
///
/// ```text
/// picket::rules_section! {
///     /// `[example]`: what the detector finds (SIGNATURES.md section N).
///     pub struct ExampleRules["example"] check(check_example) {
///         /// Turn the detector off.
///         enabled: bool = true;
///         /// SIGNATURES.md section N: why 3.
///         min_hits: u32 = 3, ints(2, 16);
///     }
/// }
/// ```
/// The optional `check(path)` names `fn(&ExampleRules, &Spans) ->
/// Result<(), ConfigError>`, run once every key has passed its own range.
#[macro_export]
macro_rules! rules_section {
    (
        $(#[doc = $sdoc:literal])*
        $vis:vis struct $name:ident [$section:literal] $(check($check:path))? {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty = $default:expr $(, $bounds:expr)? ;
            )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug, PartialEq)]
        $vis struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> $name {
                $name { $( $field: $default, )* }
            }
        }

        const _: () = {
            use $crate::config::schema::{At, Described, KeyDoc, RuleValue, Section, Spans};
            #[allow(unused_imports)]
            use $crate::config::schema::*;
            use $crate::config::error::ConfigError;

            #[derive(::serde::Deserialize)]
            #[serde(deny_unknown_fields, expecting = "a table of keys")]
            struct File {
                $( $field: Option<::toml::Spanned<<$ty as RuleValue>::Raw>>, )*
            }

            #[derive(::serde::Deserialize)]
            struct Doc {
                #[serde(rename = $section)]
                section: Option<File>,
            }

            impl Section for $name {
                const NAME: &'static str = $section;

                fn parse(file: &str, text: &str) -> Result<$name, ConfigError> {
                    let doc: Doc = ::toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;
                    let mut rules = $name::default();
                    let Some(s) = doc.section else {
                        return Ok(rules);
                    };
                    #[allow(unused_mut)]
                    let mut spans = Spans::new(file, text, $section);
                    $(
                        if let Some(v) = &s.$field {
                            let at = At { file, text, key: concat!("[", $section, "] ", stringify!($field)).to_string() };
                            rules.$field = <$ty as RuleValue>::from_raw(v, &$crate::rules_bounds!($($bounds)?), &at)?;
                            spans.set(stringify!($field), v.span());
                        }
                    )*
                    $( $check(&rules, &spans)?; )?
                    Ok(rules)
                }
            }

            impl Described for $name {
                fn name(&self) -> &'static str {
                    $section
                }
                fn doc(&self) -> &'static [&'static str] {
                    &[$($sdoc),*]
                }
                fn keys(&self) -> Vec<KeyDoc> {
                    vec![$(
                        KeyDoc {
                            name: stringify!($field),
                            doc: &[$($doc),*],
                            value: RuleValue::to_toml(&self.$field),
                            range: <$ty as RuleValue>::describe(&$crate::rules_bounds!($($bounds)?)),
                        },
                    )*]
                }
            }
        };
    };
}

/// The bounds of a key declared without any (`()`, for `bool`).
#[doc(hidden)]
#[macro_export]
macro_rules! rules_bounds {
    () => {
        ()
    };
    ($b:expr) => {
        $b
    };
}

/// Writes sections as commented TOML: the text of `picket rules dump` and
/// of the shipped `rules/picket.toml`.
pub fn dump(header: &[&str], sections: &[&dyn Described]) -> String {
    let mut out = String::new();
    for line in header {
        push_comment(&mut out, line);
    }
    for s in sections {
        out.push('\n');
        out.push_str(&format!("[{}]\n", s.name()));
        for line in s.doc() {
            push_comment(&mut out, line);
        }
        for k in s.keys() {
            let assign = format!("{} = {}", k.name, k.value);
            let doc = k.doc.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
            let range = if k.range.is_empty() { String::new() } else { format!(" ({})", k.range) };
            out.push_str(&format!("{assign:<31} # {doc}{range}\n").replace(" # \n", "\n"));
        }
    }
    out
}

fn push_comment(out: &mut String, line: &str) {
    let line = line.strip_prefix(' ').unwrap_or(line);
    if line.is_empty() {
        out.push_str("#\n");
    } else {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
}
