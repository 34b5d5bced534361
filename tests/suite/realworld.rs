//! Replays every public capture in ../shared/realworld/pcaps (98 files from
//! 11 repositories, recorded by others; that folder's README and MANIFEST.tsv
//! give the sources and each file's home net) and checks that every final
//! detection, by file, type and source, is one listed in
//! `tests/suite/realworld_expected.tsv`, each reviewed as an analyst would read it
//! (issue 13). A detection not listed fails, and so does a listed one that
//! is missing: the benign captures (browsing, DNS, SMB, mail, an AD lab)
//! are in the list by having no line. Skips cleanly when the folder is
//! absent. Test-only file: its unwraps fail a test, never a run.

use crate::common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// (file, event type, source) -> final detections.
type Table = BTreeMap<(String, String, String), u64>;

fn realworld() -> Option<PathBuf> {
    shared("realworld/MANIFEST.tsv")?;
    shared("realworld")
}

/// Each capture with its home net (`-`: none fits).
fn manifest(dir: &std::path::Path) -> Vec<(PathBuf, Option<String>)> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let home = (f.get(6)? != &"-").then(|| f[6].to_string());
            Some((dir.join(f.first()?), home))
        })
        .collect()
}

fn expected() -> Table {
    let mut t = Table::new();
    for l in include_str!("realworld_expected.tsv").lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f.len(), 4, "realworld_expected.tsv: bad line {l:?}");
        t.insert((f[0].into(), f[1].into(), f[2].into()), f[3].parse().unwrap());
    }
    t
}

/// Final detections of one replay, and whether picket read the file.
fn detections(path: &std::path::Path, home: Option<&str>, into: &mut Table) -> Option<i32> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    // Pinned: a bogon flood's `anomaly` is grouped per worker, so the
    // count of those events follows `--workers` (CI's default is 2).
    let mut args = vec!["replay", "--workers", "2"];
    if let Some(h) = home {
        args.extend(["--home-net", h]);
    }
    let p = path.to_string_lossy().into_owned();
    args.push(&p);
    let r = picket_raw(&args);
    for l in r.stdout.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: bad line {l:?}: {e}"));
        let ty = v["event_type"].as_str().unwrap_or_default().to_string();
        // stats and service_inventory describe the run, not a detection:
        // one of each per file, whatever picket found (the inventory's
        // contents are checked by tests/suite/severity.rs on lab captures).
        if ty == "stats" || ty == "service_inventory" || v[&ty]["status"] != "final" {
            continue;
        }
        assert!(v["summary"].as_str().is_some_and(|s| s.len() > 20), "{name}: {l}");
        let src = v["src_ip"].as_str().unwrap_or("-").to_string();
        *into.entry((name.clone(), ty, src)).or_default() += 1;
    }
    r.code
}

fn render(t: &Table) -> String {
    t.iter().map(|((f, ty, s), n)| format!("{f}\t{ty}\t{s}\t{n}\n")).collect()
}

#[test]
fn every_realworld_detection_is_one_an_analyst_agreed_with() {
    let Some(dir) = realworld() else {
        println!("skipping: ../shared/realworld is absent");
        return;
    };
    let files = manifest(&dir);
    assert!(files.len() >= 90, "MANIFEST.tsv lists {} files", files.len());
    let mut got = Table::new();
    for (path, home) in &files {
        let code = detections(path, home.as_deref(), &mut got);
        let damaged = path.file_name().is_some_and(|n| n.to_string_lossy().ends_with("_remote.pcapng"))
            || path.ends_with("hk_nmap_sS_f.pcapng");
        if damaged {
            assert_ne!(code, Some(0), "{}: a file without a valid header must fail", path.display());
        } else {
            assert_eq!(code, Some(0), "{}", path.display());
        }
    }
    let want = expected();
    let unexpected: Table = got.iter().filter(|(k, n)| want.get(*k) != Some(n)).map(|(k, n)| (k.clone(), *n)).collect();
    let missing: Table = want.iter().filter(|(k, n)| got.get(*k) != Some(n)).map(|(k, n)| (k.clone(), *n)).collect();
    assert!(
        unexpected.is_empty() && missing.is_empty(),
        "detections differ from tests/suite/realworld_expected.tsv\n-- not expected (or another count):\n{}-- expected, not found:\n{}-- the whole run:\n{}",
        render(&unexpected),
        render(&missing),
        render(&got)
    );
}
