//! Loading [`Rules`]: a rules directory (or the built-in copies) read by
//! `config`, `picket.toml`'s sections parsed by the detectors' own
//! declarations, `ports.toml` by `ports`; plus the one-paragraph summary of
//! `picket rules check` and the commented TOML of `picket rules dump`.
//!
//! The shipped `rules/picket.toml` is exactly `picket rules dump` of the
//! code's defaults; a test keeps the two equal, so the file, the code and
//! the key documentation cannot drift apart.

use crate::assets::AssetTable;
#[cfg(test)]
use crate::config::BUILTIN_PICKET_TOML;
use crate::config::{ConfigError, RulesFiles, Source, schema};
pub use crate::detect::Rules;
use crate::detect::port_scan::tools::ToolTable;
use crate::ports::PortTable;
use std::fmt;
use std::path::Path;

/// The comment that opens `picket.toml` (and every dump).
const HEADER: &[&str] = &[
    "picket detector settings. Every key names the section of SIGNATURES.md",
    "(the project's field-knowledge brief) it comes from, and its valid range.",
    "A key left out takes the built-in default. This file is the output of",
    "`picket rules dump` for the defaults; each detector declares its keys in",
    "its own source file (src/detect/), which is where to change them.",
];

/// What [`Rules::load_dir_with_summary`] loaded, for `picket rules check`.
#[derive(Clone, Debug)]
pub struct Summary {
    pub dir: String,
    pub picket: Source,
    pub ports: Source,
    pub port_entries: usize,
    pub port_numbers: usize,
    pub detectors_enabled: Vec<&'static str>,
    pub detectors_disabled: Vec<&'static str>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[&str]| {
            if v.is_empty() { "none".to_string() } else { v.join(", ") }
        };
        write!(
            f,
            "rules directory {}: detector settings from {} (picket.toml), port knowledge base \
             from {} (ports.toml) with {} entries covering {} protocol/port pairs; \
             detectors enabled: {}; disabled: {}.",
            self.dir,
            self.picket,
            self.ports,
            self.port_entries,
            self.port_numbers,
            list(&self.detectors_enabled),
            list(&self.detectors_disabled),
        )
    }
}

impl Rules {
    /// The rules shipped in `rules/`, compiled into the binary.
    ///
    /// A unit test proves the shipped files parse; should they ever not, the
    /// code's defaults (and an empty port table) are used instead.
    pub fn builtin() -> Rules {
        static BUILTIN: std::sync::OnceLock<Rules> = std::sync::OnceLock::new();
        BUILTIN.get_or_init(|| Rules::try_builtin().unwrap_or_else(|_| Rules::defaults(PortTable::default()))).clone()
    }

    /// The built-in rules, or the error that keeps them from parsing.
    pub fn try_builtin() -> Result<Rules, ConfigError> {
        Rules::from_files(&RulesFiles::builtin())
    }

    /// Parses a `picket.toml` text with the built-in port table.
    pub fn parse_picket(file: &str, text: &str) -> Result<Rules, ConfigError> {
        let builtin = Rules::try_builtin().ok();
        let ports = builtin.as_ref().map(|r| r.ports.clone()).unwrap_or_default();
        let mut rules = Rules::parse_sections(file, text, ports)?;
        rules.assets = builtin.as_ref().map(|r| r.assets.clone()).unwrap_or_default();
        rules.scanners = builtin.map(|r| r.scanners).unwrap_or_default();
        Ok(rules)
    }

    fn from_files(files: &RulesFiles) -> Result<Rules, ConfigError> {
        let ports = PortTable::parse(&files.ports.label, &files.ports.text)?;
        let mut rules = Rules::parse_sections(&files.picket.label, &files.picket.text, ports)?;
        rules.scanners = ToolTable::parse(&files.scanners.label, &files.scanners.text)?;
        rules.assets = AssetTable::parse(&files.assets.label, &files.assets.text)?;
        Ok(rules)
    }

    /// Loads a rules directory (see [`RulesFiles::read_dir`]).
    pub fn load_dir(dir: &Path) -> Result<Rules, ConfigError> {
        Rules::load_dir_with_summary(dir).map(|(r, _)| r)
    }

    /// [`Rules::load_dir`] plus a description of what was loaded.
    pub fn load_dir_with_summary(dir: &Path) -> Result<(Rules, Summary), ConfigError> {
        let files = RulesFiles::read_dir(dir)?;
        let rules = Rules::from_files(&files)?;
        let summary = rules.summary(dir.display().to_string(), files.picket.source, files.ports.source);
        Ok((rules, summary))
    }

    fn summary(&self, dir: String, picket: Source, ports: Source) -> Summary {
        let (mut enabled, mut disabled) = (Vec::new(), Vec::new());
        for s in self.sections() {
            match s.enabled() {
                Some(true) => enabled.push(s.name()),
                Some(false) => disabled.push(s.name()),
                None => {}
            }
        }
        Summary {
            dir,
            picket,
            ports,
            port_entries: self.ports.entries().len(),
            port_numbers: self.ports.len(),
            detectors_enabled: enabled,
            detectors_disabled: disabled,
        }
    }

    /// The effective `picket.toml` as commented TOML (`picket rules dump`).
    pub fn dump(&self) -> String {
        schema::dump(HEADER, &self.sections())
    }
}

/// Loads `dir` as [`Rules::load_dir`] does and describes what was loaded, in
/// one paragraph (for `picket rules check DIR`).
pub fn check_dir(dir: &Path) -> Result<String, ConfigError> {
    Rules::load_dir_with_summary(dir).map(|(_, s)| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BUILTIN_PORTS_TOML, MAX_RULES_FILE_BYTES, line_of};
    use crate::detect::general::General;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh, empty directory under the system temp dir; removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("picket-rules-test-{}-{}-{}", std::process::id(), tag, n));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn parse(text: &str) -> Result<Rules, ConfigError> {
        Rules::parse_picket("rules/picket.toml", text)
    }

    fn picket_err(text: &str) -> ConfigError {
        parse(text).unwrap_err()
    }

    /// The drift test: the shipped file is the dump of the code's defaults,
    /// byte for byte (keys, values, documentation and ranges).
    #[test]
    fn shipped_picket_toml_is_the_dump_of_the_code_defaults() {
        let defaults = Rules::defaults(PortTable::default());
        let dump = defaults.dump();
        if dump != BUILTIN_PICKET_TOML {
            let diff = dump
                .lines()
                .zip(BUILTIN_PICKET_TOML.lines())
                .enumerate()
                .find(|(_, (a, b))| a != b)
                .map(|(i, (a, b))| format!("line {}: code says\n  {a}\nfile says\n  {b}", i + 1))
                .unwrap_or_else(|| "the files differ in length".into());
            panic!("rules/picket.toml drifted from the code; regenerate it with `picket rules dump`:\n{diff}");
        }
        // And the file parses back to exactly the defaults.
        let r = Rules::try_builtin().unwrap();
        let secs = |r: &Rules| r.sections().iter().map(|s| (s.name(), keys(*s))).collect::<Vec<_>>();
        assert_eq!(secs(&r), secs(&defaults));
        assert_eq!(Rules::SECTIONS.len(), defaults.sections().len());
    }

    fn keys(s: &dyn schema::Described) -> Vec<(&'static str, String)> {
        s.keys().into_iter().map(|k| (k.name, k.value)).collect()
    }

    #[test]
    fn every_key_is_documented_with_its_signatures_section() {
        for s in Rules::builtin().sections() {
            assert!(!s.doc().is_empty(), "[{}] has no section comment", s.name());
            for k in s.keys() {
                let doc = k.doc.join(" ");
                assert!(doc.contains("SIGNATURES.md section"), "[{}] {}: {doc}", s.name(), k.name);
                let line = BUILTIN_PICKET_TOML
                    .lines()
                    .find(|l| l.starts_with(&format!("{} = ", k.name)))
                    .unwrap_or_else(|| panic!("{} missing from rules/picket.toml", k.name));
                assert!(line.contains("SIGNATURES.md section"), "{line}");
            }
        }
    }

    #[test]
    fn dump_shows_the_effective_rules_and_parses_back() {
        let d = TempDir::new("dump");
        d.write(
            "picket.toml",
            "[syn_retry]\nmin_attempts = 5\n[smurf]\nbroadcast_subnets = [\"192.0.2.128/26\"]\nfraggle_ports = [7]\n\
             [decoy_scan]\nmin_confidence = \"high\"\n[general]\nupdate_interval_s = 2.5\n",
        );
        let r = Rules::load_dir(&d.0).unwrap();
        let dump = r.dump();
        let section = |name: &str| dump.split(&format!("[{name}]\n")).nth(1).unwrap().split("\n[").next().unwrap();
        assert!(section("syn_retry").contains("\nmin_attempts = 5 "), "{dump}");
        assert!(section("source_port_sequence").contains("\nmin_attempts = 5 "), "its own default");
        assert!(section("traceroute").contains("\nmin_probes = 4 "), "untouched sections keep defaults");
        assert!(dump.contains("\nbroadcast_subnets = [\"192.0.2.128/26\"]"), "{dump}");
        assert!(dump.contains("\nfraggle_ports = [7] "), "{dump}");
        assert!(dump.contains("\nmin_confidence = \"high\" "), "{dump}");
        assert!(dump.contains("\nupdate_interval_s = 2.5 "), "{dump}");
        // The dump is itself a valid rules file that gives the same rules.
        let again = parse(&dump).unwrap();
        let secs = |r: &Rules| r.sections().iter().map(|s| (s.name(), keys(*s))).collect::<Vec<_>>();
        assert_eq!(secs(&again), secs(&r));
    }

    #[test]
    fn builtin_files_parse() {
        let r = Rules::try_builtin().unwrap();
        assert_eq!(r.general, General::default());
        assert!(r.ports.len() > 200, "{}", r.ports.len());
        let b = Rules::builtin();
        assert_eq!(b.ports.len(), r.ports.len());
    }

    #[test]
    fn missing_keys_take_defaults() {
        let r = parse("").unwrap();
        assert_eq!(r.general, General::default());
        assert_eq!(r.syn_retry, Rules::defaults(PortTable::default()).syn_retry);
        let r = parse("[syn_retry]\nmin_attempts = 5\n").unwrap();
        assert_eq!(r.general, General::default());
        assert_eq!(r.syn_retry.min_attempts, 5);
        assert_eq!(r.syn_retry.window_s, 600.0);
    }

    #[test]
    fn unknown_key_names_file_line_key() {
        let e = picket_err("[general]\nmax_sources = 10\n\n[syn_retry]\nenabled = true\nmin_atempts = 3\n");
        assert_eq!(e.line, Some(6));
        let s = e.to_string();
        assert!(s.starts_with("rules/picket.toml:6: unknown key `min_atempts` in [syn_retry]"), "{s}");
        assert!(!s.contains('\n'));
    }

    #[test]
    fn unknown_table_or_top_level_key_is_an_error() {
        let e = picket_err("[syn_retyr]\nenabled = true\n");
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.to_string().contains("unknown table `syn_retyr`"), "{e}");
        assert!(e.to_string().contains("`decoy_scan`"), "names the known tables: {e}");
        let e = picket_err("# c\nfoo = 1\n");
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.to_string().contains("unknown key `foo` at top level"), "{e}");
        let e = picket_err("syn_retry = 3\n");
        assert!(e.to_string().starts_with("rules/picket.toml:1: "), "{e}");
    }

    #[test]
    fn bad_value_type() {
        let e = picket_err("[syn_retry]\n\nmin_attempts = \"three\"\n");
        let s = e.to_string();
        assert!(s.starts_with("rules/picket.toml:3: "), "{s}");
        assert!(s.contains("min_attempts"), "{s}");
        assert!(!s.contains('\n'));
        let e = picket_err("[syn_retry]\nenabled = 1\n");
        assert!(e.to_string().starts_with("rules/picket.toml:2: "), "{e}");
        assert!(e.to_string().contains("enabled"), "{e}");
    }

    #[test]
    fn out_of_range_value() {
        let e = picket_err("# c\n[syn_retry]\nmin_attempts = 40\n");
        assert_eq!(e.to_string(), "rules/picket.toml:3: [syn_retry] min_attempts: must be between 2 and 16, got 40");
        assert_eq!(e.key.as_deref(), Some("[syn_retry] min_attempts"));
        for bad in [
            "[general]\nmax_sources = 0",
            "[general]\nupdate_interval_s = -1",
            "[general]\nupdate_interval_s = inf",
            "[general]\nsource_idle_s = 0",
        ] {
            let e = picket_err(bad);
            assert_eq!(e.line, Some(2), "{bad}: {e}");
            assert!(e.to_string().starts_with("rules/picket.toml:2: [general] "), "{e}");
        }
    }

    #[test]
    fn floats_accept_integers_and_fractions() {
        let r = parse("[general]\nupdate_interval_s = 2.5\n[syn_retry]\nwindow_s = 30\nsettle_s = 0.5\n").unwrap();
        assert_eq!(r.general.update_interval_s, 2.5);
        assert_eq!(r.syn_retry.window_s, 30.0);
        assert_eq!(r.syn_retry.settle_s, 0.5);
    }

    #[test]
    fn syntax_error_has_line() {
        let e = picket_err("[syn_retry]\nmin_attempts = = 3\n");
        assert_eq!(e.line, Some(2), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn valid_override() {
        let d = TempDir::new("override");
        d.write("picket.toml", "[syn_retry]\nenabled = false\nmin_attempts = 4\nwindow_s = 1200\n");
        let r = Rules::load_dir(&d.0).unwrap();
        assert!(!r.syn_retry.enabled);
        assert_eq!(r.syn_retry.min_attempts, 4);
        assert_eq!(r.syn_retry.window_s, 1200.0);
        assert_eq!(r.syn_retry.settle_s, 3.0);
        assert_eq!(r.general, General::default());
        // ports.toml missing: built-in port table.
        assert_eq!(r.ports.lookup(6, 158).unwrap().name, "pcmail-srv");
        assert!(check_dir(&d.0).unwrap().contains("disabled: syn_retry"));

        let d2 = TempDir::new("override-ports");
        d2.write("ports.toml", "[[port]]\nport = 4242\nproto = \"udp\"\nname = \"x\"\ncategory = \"service\"\n");
        d2.write("README.txt", "ignored");
        let r = Rules::load_dir(&d2.0).unwrap();
        assert_eq!(r.ports.len(), 1);
        assert_eq!(r.ports.lookup(17, 4242).unwrap().name, "x");
        assert!(r.ports.lookup(6, 158).is_none());
        assert!(r.syn_retry.enabled);
        let summary = check_dir(&d2.0).unwrap();
        assert!(summary.contains("built-in (picket.toml)"), "{summary}");
        assert!(summary.contains("1 entries"), "{summary}");
        assert!(summary.contains("detectors enabled: syn_retry"), "{summary}");
    }

    #[test]
    fn every_section_can_be_disabled_from_a_directory() {
        for name in Rules::SECTIONS.iter().filter(|n| !matches!(**n, "general" | "lethality")) {
            let d = TempDir::new("disable");
            d.write("picket.toml", &format!("[{name}]\nenabled = false\n"));
            let (r, summary) = Rules::load_dir_with_summary(&d.0).unwrap();
            let s = r.sections().into_iter().find(|s| s.name() == *name).unwrap();
            assert_eq!(s.enabled(), Some(false), "{name}");
            assert!(summary.detectors_disabled == vec![*name], "{name}: {summary}");
        }
    }

    #[test]
    fn empty_dir_is_builtin() {
        let d = TempDir::new("empty");
        let r = Rules::load_dir(&d.0).unwrap();
        assert_eq!(r.ports.len(), Rules::builtin().ports.len());
        let s = check_dir(&d.0).unwrap();
        assert!(!s.contains('\n'), "{s}");
    }

    #[test]
    fn error_in_dir_file_names_path() {
        let d = TempDir::new("bad-in-dir");
        let p = d.write("picket.toml", "[syn_retry]\nmax_tracked = 0\n");
        let e = Rules::load_dir(&d.0).unwrap_err();
        assert_eq!(e.file, p.display().to_string());
        assert_eq!(e.line, Some(2));
        assert!(e.to_string().contains("[syn_retry] max_tracked"), "{e}");
        let p = d.write("picket.toml", "[decoy_scan]\nmin_sources = 0\n");
        let e = Rules::load_dir(&d.0).unwrap_err();
        assert_eq!(e.file, p.display().to_string());
        assert!(e.to_string().contains("[decoy_scan] min_sources"), "{e}");
    }

    #[test]
    fn unknown_file_name() {
        let d = TempDir::new("unknown-file");
        d.write("picket.toml", "");
        let p = d.write("extra.toml", "");
        let e = Rules::load_dir(&d.0).unwrap_err();
        assert_eq!(e.file, p.display().to_string());
        assert!(e.to_string().contains("extra.toml"), "{e}");
        assert!(e.to_string().contains("unknown rules file"), "{e}");
    }

    #[test]
    fn missing_dir() {
        let p = std::env::temp_dir().join(format!("picket-no-such-dir-{}", std::process::id()));
        let e = Rules::load_dir(&p).unwrap_err();
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        assert!(check_dir(&p).is_err());
    }

    #[test]
    fn huge_file_rejected() {
        let d = TempDir::new("huge");
        let mut text = String::from("# padding\n");
        while (text.len() as u64) <= MAX_RULES_FILE_BYTES {
            text.push_str(&"#".repeat(1023));
            text.push('\n');
        }
        d.write("ports.toml", &text);
        let e = Rules::load_dir(&d.0).unwrap_err();
        assert!(e.to_string().contains("limited to"), "{e}");
        assert!(parse(&text).is_err());
    }

    #[test]
    fn non_utf8_rejected() {
        let d = TempDir::new("utf8");
        std::fs::write(d.0.join("picket.toml"), b"[general]\n\xff\xfe = 1\n").unwrap();
        let e = Rules::load_dir(&d.0).unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        for text in [
            "[",
            "[[",
            "\u{0}",
            "[general]\nupdate_interval_s = 1e400",
            "[general]\nmax_sources = 9223372036854775807",
            "[general]\nmax_sources = 1.5",
            "general = 3",
            "[syn_retry]\nenabled = [true]",
            "[syn_retry.sub]\nx = 1",
            "[[syn_retry]]\nenabled = true",
            "a = \"\u{202e}\"",
            "[general]\n[general]\n",
            "[smurf]\nbroadcast_subnets = [[1]]",
            "[smurf]\nfraggle_ports = [\"7\"]",
        ] {
            assert!(parse(text).is_err(), "{text:?} must be refused");
            let _ = PortTable::parse("x", text).map(|_| ()).map_err(|e| e.to_string());
        }
    }

    #[test]
    fn display_is_one_short_printable_line() {
        let long = "A".repeat(100_000);
        let e = picket_err(&format!("[syn_retry]\nmin_attempts = \"{long}\x1b[31m\"\n"));
        let s = e.to_string();
        assert!(s.len() < 600, "{}", s.len());
        assert!(s.starts_with("rules/picket.toml:2: [syn_retry] min_attempts: "), "{s}");
        let e = ConfigError::file("a\nb.toml", "x\n\ty\u{1b}z");
        assert_eq!(e.to_string(), "a b.toml: x y?z");
        let e = picket_err(&format!("[{long}\x1b]\nx = 1\n"));
        assert!(e.to_string().len() < 1200, "{}", e.to_string().len());
        assert!(!e.to_string().contains('\x1b'));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let n = 200_000;
        let t = format!("[syn_retry]\nenabled = {}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(&t).is_err());
        let t = format!("[[port]]\nport = {}1{}", "{a=".repeat(n), "}".repeat(n));
        assert!(PortTable::parse("x", &t).is_err());
        assert!(PortTable::parse("x", BUILTIN_PORTS_TOML).is_ok());
    }

    #[test]
    fn line_of_counts_newlines() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
        assert_eq!(line_of("a\nb\nc", 999), 3);
    }
}
