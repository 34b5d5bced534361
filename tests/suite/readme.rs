//! Every shell example in README.md is run, so none can go wrong again
//! (issue 18). The ```sh blocks are split into commands (a command goes on
//! past a trailing `\` and through an open single quote); each runs in
//! bash with `pipefail`, in one scratch directory per block holding
//! `pcaps/` and `rules/` of this checkout, with `picket` on PATH the binary
//! under test. Each must exit 0 and print something (or, with `-o FILE`,
//! fill FILE); an example whose comment promises "one line per ..." must
//! print no line twice. Commands marked `needs root`, `needs a live ...`
//! or `not run by tests/suite/readme.rs` are skipped, each named on stderr.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A command of a block: its text and the comment lines just before it.
struct Example {
    text: String,
    comment: String,
}

/// The ```sh blocks of the README, each as its commands.
fn examples(readme: &str) -> Vec<Vec<Example>> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(l) = lines.next() {
        if l.trim_start() != "```sh" {
            continue;
        }
        let mut block = Vec::new();
        let (mut cur, mut comment) = (Vec::<&str>::new(), String::new());
        for l in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            let t = l.trim();
            if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
                if t.is_empty() {
                    comment.clear();
                } else {
                    comment.push_str(t);
                    comment.push('\n');
                }
                continue;
            }
            cur.push(l);
            let joined = cur.join("\n");
            if t.ends_with('\\') || joined.matches('\'').count() % 2 == 1 {
                continue;
            }
            block.push(Example { text: joined, comment: std::mem::take(&mut comment) });
            cur.clear();
        }
        blocks.push(block);
    }
    blocks
}

/// Why an example is not run, if it is marked so.
fn skip_reason(e: &Example) -> Option<&'static str> {
    let t = &e.text;
    if t.contains("needs root") {
        Some("needs root")
    } else if t.contains("needs a live") {
        Some("needs a live interface or sensor")
    } else if t.contains("not run by tests/suite/readme.rs") {
        Some("marked not run by tests/suite/readme.rs")
    } else {
        None
    }
}

/// A scratch directory with the checkout's pcaps/ and rules/.
fn scratch(n: usize) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = std::env::temp_dir().join(format!("picket-readme-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for sub in ["pcaps", "rules"] {
        std::os::unix::fs::symlink(root.join(sub), d.join(sub)).unwrap();
    }
    d
}

/// `-o FILE` in a command: FILE.
fn output_file(cmd: &str) -> Option<&str> {
    let mut words = cmd.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-o" || w == "--output" {
            return words.next();
        }
    }
    None
}

#[test]
fn every_readme_shell_example_runs_against_the_demo_captures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_picket")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let blocks = examples(&readme);
    assert!(blocks.len() >= 10, "the README's ```sh blocks were not found ({})", blocks.len());
    let (mut ran, mut skipped, mut failures) = (0, 0, Vec::new());
    for (i, block) in blocks.iter().enumerate() {
        let dir = scratch(i);
        for e in block {
            if let Some(why) = skip_reason(e) {
                eprintln!("readme: skipped ({why}): {}", e.text.lines().next().unwrap_or(""));
                skipped += 1;
                continue;
            }
            ran += 1;
            // `timeout`: an example that waits for input (a live one left
            // unmarked) fails instead of hanging the suite.
            let out = Command::new("timeout")
                .args(["300", "bash", "-o", "pipefail", "-c", &e.text])
                .current_dir(&dir)
                .env("PATH", &path)
                .env_remove("CI")
                .output()
                .expect("run bash");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let mut problems = Vec::new();
            if !out.status.success() {
                problems.push(format!("exit {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr)));
            }
            match output_file(&e.text) {
                Some(f) if std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0) == 0 => {
                    problems.push(format!("{f} is empty"));
                }
                None if stdout.trim().is_empty() => problems.push("printed nothing".into()),
                _ => {}
            }
            if stdout.lines().any(|l| l.starts_with('{')) && !e.text.contains("jq") {
                // A bare run on a pipe writes JSON lines: each must parse.
                for l in stdout.lines() {
                    if serde_json::from_str::<serde_json::Value>(l).is_err() {
                        problems.push(format!("not a JSON line: {l}"));
                        break;
                    }
                }
            }
            if e.comment.contains("one line per") {
                let mut seen = HashSet::new();
                let dups: Vec<&str> = stdout.lines().filter(|l| !seen.insert(*l)).collect();
                if !dups.is_empty() {
                    problems.push(format!("promises one line each, printed {} twice: {}", dups.len(), dups[0]));
                }
            }
            if !problems.is_empty() {
                failures.push(format!("{}\n  {}", e.text, problems.join("\n  ")));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    eprintln!("readme: {ran} examples run, {skipped} skipped");
    assert!(ran >= 15, "only {ran} examples ran");
    assert!(failures.is_empty(), "README examples that fail:\n{}", failures.join("\n\n"));
}

#[test]
fn the_parser_splits_continued_lines_and_quotes_into_one_command() {
    let md = "```sh\n# one line per x\na | \\\n  jq 'x\n  y'\nb # needs root\n```\n";
    let b = examples(md);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].len(), 2);
    assert_eq!(b[0][0].text, "a | \\\n  jq 'x\n  y'");
    assert!(b[0][0].comment.contains("one line per"));
    assert_eq!(skip_reason(&b[0][1]), Some("needs root"));
}
