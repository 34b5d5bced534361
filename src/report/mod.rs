//! `picket report`: the analyst's page. `tally` gathers the run summary the
//! final `stats` event carries; `eve` reads EVE files back (bad lines counted
//! and reported with file and line); `html` renders one self-contained HTML
//! page with `plotters` charts (inline SVG) and a table under each.

pub mod eve;
pub mod html;
pub mod tally;

use crate::ports::PortTable;
use std::io::BufReader;
use std::path::PathBuf;

/// Reads every EVE file (`-` is stdin) and renders the page. A file that
/// cannot be opened is an error; what is wrong inside one is in `Eve`.
pub fn build(files: &[PathBuf], ports: &PortTable) -> std::io::Result<(String, eve::Eve)> {
    let mut e = eve::Eve::default();
    let mut names = Vec::new();
    for f in files {
        let name = f.display().to_string();
        if name == "-" {
            e.read("<stdin>", &mut std::io::stdin().lock())?;
            names.push("<stdin>".to_string());
        } else {
            let file =
                std::fs::File::open(f).map_err(|err| std::io::Error::new(err.kind(), format!("{name}: {err}")))?;
            e.read(&name, &mut BufReader::with_capacity(1 << 16, file))
                .map_err(|err| std::io::Error::new(err.kind(), format!("{name}: {err}")))?;
            names.push(name);
        }
    }
    Ok((html::render(&e, ports, &names), e))
}
