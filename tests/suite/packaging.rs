//! Installed like a system service (issue 18): the bash completion script
//! sources and completes a subcommand, the man pages hold every option and
//! render with `man -l`, the systemd unit passes `systemd-analyze verify`
//! with no warning and keeps its hardening, and the Debian package's
//! assets and the license files are where Cargo.toml says.

use clap::CommandFactory;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_picket")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("picket-pkg-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn have(cmd: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {cmd}")]).output().is_ok_and(|o| o.status.success())
}

/// What bash completes after `picket WORDS...` (the last word partial).
fn complete(script: &Path, words: &str) -> String {
    let n = words.split_whitespace().count();
    let cword = if words.ends_with(' ') { n } else { n - 1 };
    let sh = format!(
        "source {}; COMP_WORDS=({words}); [[ '{words}' == *' ' ]] && COMP_WORDS+=(''); COMP_CWORD={cword}; \
         COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; _picket picket \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = Command::new("bash").args(["--norc", "-c", &sh]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_bash_completion_sources_and_completes_subcommands_and_flags() {
    let d = scratch("bash");
    let out = Command::new(bin()).args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = d.join("picket.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let subs = complete(&script, "picket r");
    let subs: Vec<&str> = subs.lines().collect();
    assert!(subs.contains(&"replay") && subs.contains(&"rules"), "{subs:?}");
    assert!(!subs.contains(&"live"), "{subs:?}");
    let flags = complete(&script, "picket replay --home");
    assert_eq!(flags.trim(), "--home-net");
    for shell in ["zsh", "fish"] {
        let out = Command::new(bin()).args(["completions", shell]).output().unwrap();
        assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("home-net"), "{shell}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_man_pages_name_every_option_and_render() {
    let d = scratch("man");
    let man1 = d.join("man1");
    let st = Command::new(bin()).arg("man").arg(&man1).status().unwrap();
    assert!(st.success());
    let mut pages = String::new();
    for e in std::fs::read_dir(&man1).unwrap() {
        pages.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    // roff escapes '-' as "\-".
    let pages = pages.replace("\\-", "-");
    fn walk(cmd: &clap::Command, pages: &str, missing: &mut Vec<String>) {
        for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(l) = a.get_long()
                && !pages.contains(&format!("--{l}"))
            {
                missing.push(format!("{} --{l}", cmd.get_name()));
            }
        }
        for s in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(s, pages, missing);
        }
    }
    let mut missing = Vec::new();
    walk(&picket::cli::Cli::command(), &pages, &mut missing);
    assert!(missing.is_empty(), "options missing from the man pages: {missing:?}");
    for p in ["picket.1", "picket-live.1", "picket-replay.1", "picket-fwlog.1", "picket-completions.1"] {
        assert!(man1.join(p).is_file(), "{p}");
    }
    if have("man") {
        let out = Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(man1.join("picket-replay.1"))
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("--home-net") && text.contains("--format"), "{text}");
    } else {
        eprintln!("packaging: skipped man -l: man-db is not installed (scripts/lib/deps.sh installs it)");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// The unit's keys that make it what the README promises.
const HARDENING: [&str; 12] = [
    "User=picket",
    "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN",
    "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ReadWritePaths=/var/log/picket",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "RestrictAddressFamilies=AF_PACKET AF_NETLINK AF_UNIX AF_INET AF_INET6",
    "SystemCallFilter=@system-service",
    "Restart=on-failure",
    "-i %i --rules /etc/picket -o /var/log/picket/eve.json --user picket",
];

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(root().join("packaging/picket@.service")).unwrap();
    for k in HARDENING {
        assert!(unit.lines().any(|l| l.contains(k)), "the unit lacks {k}");
    }
    let rotate = std::fs::read_to_string(root().join("packaging/picket.logrotate")).unwrap();
    assert!(rotate.contains("/var/log/picket/eve.json") && rotate.contains("--signal=HUP"), "{rotate}");
    if !have("systemd-analyze") {
        eprintln!("packaging: skipped systemd-analyze verify: not installed (scripts/lib/deps.sh installs systemd)");
        return;
    }
    // The instance for `lo`, its ExecStart the binary under test, and the
    // man pages its Documentation= names on MANPATH.
    let d = scratch("unit");
    std::fs::write(d.join("picket@lo.service"), unit.replace("/usr/bin/picket", bin())).unwrap();
    let man = d.join("man");
    assert!(Command::new(bin()).arg("man").arg(man.join("man1")).status().unwrap().success());
    let out = Command::new("systemd-analyze")
        .args(["verify", "./picket@lo.service"])
        .current_dir(&d)
        .env("MANPATH", &man)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "systemd-analyze verify: {:?}\n{err}", out.status);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_package_assets_and_licenses_are_in_place() {
    let toml: toml::Table = std::fs::read_to_string(root().join("Cargo.toml")).unwrap().parse().unwrap();
    assert_eq!(toml["package"]["license"].as_str(), Some("MIT OR Apache-2.0"));
    let mit = std::fs::read_to_string(root().join("LICENSE-MIT")).unwrap();
    assert!(mit.contains("Permission is hereby granted"));
    let apache = std::fs::read_to_string(root().join("LICENSE-APACHE")).unwrap();
    assert!(apache.contains("Apache License") && apache.contains("Version 2.0"));
    let assets = toml["package"]["metadata"]["deb"]["assets"].as_array().unwrap();
    let mut dests = Vec::new();
    for a in assets {
        let src = a[0].as_str().unwrap();
        dests.push(a[1].as_str().unwrap().to_string());
        // target/ holds what scripts/package writes before packing.
        if !src.starts_with("target/") {
            let dir = Path::new(src).parent().unwrap();
            let pat = Path::new(src).file_name().unwrap().to_string_lossy().into_owned();
            let found = std::fs::read_dir(root().join(dir)).unwrap().any(|e| {
                let n = e.unwrap().file_name().to_string_lossy().into_owned();
                match pat.split_once('*') {
                    Some((a, b)) => n.starts_with(a) && n.ends_with(b),
                    None => n == pat,
                }
            });
            assert!(found, "asset {src} is missing");
        }
    }
    for want in [
        "usr/bin/",
        "etc/picket/",
        "usr/share/man/man1/",
        "lib/systemd/system/picket@.service",
        "etc/logrotate.d/picket",
    ] {
        assert!(dests.iter().any(|d| d == want), "no asset goes to {want}");
    }
    let script = std::fs::read_to_string(root().join("scripts/package")).unwrap();
    for step in ["cargo install cargo-deb --locked", "man target/assets/man", "completions bash", "cargo deb"] {
        assert!(script.contains(step), "scripts/package lacks {step}");
    }
}

/// Field `name` of the package's control file.
fn deb_field(deb: &Path, name: &str) -> String {
    let out = Command::new("dpkg-deb").arg("--field").arg(deb).arg(name).output().unwrap();
    assert!(out.status.success(), "dpkg-deb --field {name}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The .deb that `scripts/package --no-build` packs with cargo-deb from the
/// binary under test (scripts/test installs cargo-deb): its control fields, every file
/// Cargo.toml promises, the rules marked as conffiles, and the packaged
/// binary, unpacked, replaying a lab capture with the packaged rules.
/// It is unpacked, not installed: a test does not add a user and a
/// service to the machine it runs on.
#[test]
fn the_debian_package_builds_and_holds_a_working_picket() {
    if !have("cargo-deb") {
        if std::env::var_os("PICKET_SKIP_PACKAGE").is_some() {
            eprintln!("packaging: skipped the .deb build: PICKET_SKIP_PACKAGE is set and cargo-deb is not installed");
            return;
        }
        panic!("cargo-deb is not installed (scripts/test installs it; PICKET_SKIP_PACKAGE=1 skips this test)");
    }
    // The binary under test, packed as built: target/PROFILE/picket.
    let dir = Path::new(bin()).parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
    let profile = if dir == "debug" { "dev".to_string() } else { dir };
    let out = Command::new(root().join("scripts/package"))
        .args(["--profile", &profile, "--no-build"])
        .current_dir(root())
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "scripts/package --profile {profile} --no-build failed:\n{log}");
    let version = env!("CARGO_PKG_VERSION");
    let debs: Vec<PathBuf> = std::fs::read_dir(root().join("target/debian"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(&format!("picket_{version}")) && n.ends_with(".deb")
        })
        .collect();
    assert_eq!(debs.len(), 1, "one picket_{version}_*.deb in target/debian: {debs:?}\n{log}");
    let deb = &debs[0];
    assert_eq!(deb_field(deb, "Package"), "picket");
    assert!(deb_field(deb, "Version").starts_with(version), "the package version is the crate's");
    let depends = deb_field(deb, "Depends");
    for d in ["libpcap0.8", "adduser"] {
        assert!(depends.contains(d), "Depends lacks {d}: {depends}");
    }
    let list = Command::new("dpkg-deb").arg("--contents").arg(deb).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for f in [
        "./usr/bin/picket",
        "./etc/picket/picket.toml",
        "./etc/picket/ports.toml",
        "./etc/picket/assets.toml",
        "./usr/share/man/man1/picket.1",
        "./usr/share/man/man1/picket-replay.1",
        "./usr/share/bash-completion/completions/picket",
        "./usr/share/zsh/vendor-completions/_picket",
        "./usr/share/fish/vendor_completions.d/picket.fish",
        "./lib/systemd/system/picket@.service",
        "./etc/logrotate.d/picket",
        "./etc/default/picket",
        "./usr/share/doc/picket/LICENSE-MIT",
    ] {
        assert!(list.lines().any(|l| l.ends_with(f) || l.contains(&format!("{f}.gz"))), "the .deb lacks {f}:\n{list}");
    }
    let d = scratch("deb");
    let (ctl, tree) = (d.join("DEBIAN"), d.join("root"));
    assert!(Command::new("dpkg-deb").arg("--control").arg(deb).arg(&ctl).status().unwrap().success());
    let conffiles = std::fs::read_to_string(ctl.join("conffiles")).unwrap_or_default();
    assert!(conffiles.lines().any(|l| l == "/etc/picket/picket.toml"), "rules are not conffiles: {conffiles}");
    let postinst = std::fs::read_to_string(ctl.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system") && postinst.contains("/var/log/picket"), "{postinst}");
    assert!(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tree).status().unwrap().success());
    let packaged = tree.join("usr/bin/picket");
    let v = Command::new(&packaged).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).contains(version), "{v:?}");
    let run = Command::new(&packaged)
        .args(["replay", "--home-net", "192.0.2.0/24", "--format", "json", "--rules"])
        .arg(tree.join("etc/picket"))
        .arg(root().join("pcaps/syn_retry_hping_drop.pcap"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let events = String::from_utf8_lossy(&run.stdout);
    assert!(
        events.lines().any(|l| l.contains("\"event_type\":\"syn_retry\"")),
        "the packaged picket with the packaged rules finds the retry loop:\n{events}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
