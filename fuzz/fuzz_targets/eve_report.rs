//! EVE files of arbitrary bytes read the way `picket report` reads them
//! (`src/report/eve.rs`: lines capped, bad ones counted with file and line)
//! and rendered into the page (`src/report/html.rs`). Nothing may panic,
//! and no string from the input may reach the page unescaped: the page
//! never holds a `<script` of its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::ports::PortTable;
use picket::report::eve::Eve;
use picket::report::html::render;

fuzz_target!(|data: &[u8]| {
    let mut eve = Eve::default();
    let mut r = data;
    eve.read("fuzz.json", &mut r).expect("reading a slice cannot fail");
    assert!(eve.events.len() as u64 + eve.bad_lines + eve.unknown_types <= eve.lines);
    let html = render(&eve, &PortTable::default(), &["fuzz.json".to_string()]);
    assert!(!html.to_ascii_lowercase().contains("<script"), "unescaped input in the page");
    assert!(html.ends_with("</html>\n"));
});
