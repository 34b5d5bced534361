//! The rules loader on each file it reads (`rules/`): the first byte picks
//! the file (0 `picket.toml`, 1 `ports.toml`, 2 `scanners.toml`, 3
//! `assets.toml`), the rest is its text. Nothing may panic; an error is one
//! line naming the file (and a line of it, when it gives one). A
//! `picket.toml` that loads must dump (`picket rules dump`) to a text that
//! loads again to the same dump.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::assets::AssetTable;
use picket::config::ConfigError;
use picket::detect::port_scan::tools::ToolTable;
use picket::ports::PortTable;
use picket::rules::Rules;

fn check_error(file: &str, text: &str, e: &ConfigError) {
    let line = e.to_string();
    assert!(!line.contains('\n'), "{line:?}");
    assert!(line.starts_with(file), "{line:?}");
    if let Some(n) = e.line {
        assert!(n >= 1 && n <= text.split('\n').count(), "line {n} of a {}-line file", text.split('\n').count());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    // The loader refuses non-UTF-8 files before parsing (config::read_rules_file).
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    match which % 4 {
        0 => match Rules::parse_sections("picket.toml", text, PortTable::default()) {
            Ok(rules) => {
                let dump = rules.dump();
                let again = Rules::parse_sections("dump", &dump, PortTable::default())
                    .unwrap_or_else(|e| panic!("the dump of loaded rules does not load: {e}\n{dump}"));
                assert_eq!(again.dump(), dump);
            }
            Err(e) => check_error("picket.toml", text, &e),
        },
        1 => {
            if let Err(e) = PortTable::parse("ports.toml", text) {
                check_error("ports.toml", text, &e);
            }
        }
        2 => {
            if let Err(e) = ToolTable::parse("scanners.toml", text) {
                check_error("scanners.toml", text, &e);
            }
        }
        _ => {
            if let Err(e) = AssetTable::parse("assets.toml", text) {
                check_error("assets.toml", text, &e);
            }
        }
    }
});
