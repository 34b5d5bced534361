//! picket's command-line entry point: parses arguments, builds the run
//! configuration, and turns errors into one stderr line and an exit status
//! (0 success, 1 runtime failure, 2 bad input or usage).
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use picket::app::{self, Input, RunConfig};
use picket::cli::{Cli, Command, CommonArgs, FwOptions, FwlogArgs, RulesCommand};
use picket::homenet::HomeNet;
use picket::input::capture::LiveOpts;
use picket::rules::{self, Rules};
use picket::signals::Flags;
use std::process::ExitCode;

/// An error that is the input's fault (exit 2), not picket's (exit 1).
#[derive(Debug)]
struct BadInput(String);
impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for BadInput {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            picket::note!("picket: error: {e:#}");
            if e.downcast_ref::<BadInput>().is_some() { ExitCode::from(2) } else { ExitCode::from(1) }
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Completions { shell } => {
            let mut text = Vec::new();
            picket::cli::completions(shell, &mut text);
            write_stdout(&String::from_utf8_lossy(&text))
        }
        Command::Man { dir } => {
            std::fs::create_dir_all(&dir)
                .and_then(|()| picket::cli::man_pages(&dir))
                .with_context(|| format!("writing man pages to {}", dir.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules { command: RulesCommand::Check { dir } } => {
            let summary = rules::check_dir(&dir).map_err(|e| BadInput(e.to_string()))?;
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules { command: RulesCommand::Dump { rules } } => {
            let r = match rules {
                Some(dir) => Rules::load_dir(&dir).map_err(|e| BadInput(e.to_string()))?,
                None => Rules::builtin(),
            };
            write_stdout(&r.dump())
        }
        Command::Live(a) => {
            // Looked up before anything is opened: an unknown user fails
            // here, never after picket has run as root.
            let user = match &a.user {
                Some(u) => Some(picket::privs::Target::resolve(u).map_err(|e| BadInput(e.to_string()))?),
                None => None,
            };
            let fw_live = if a.fw_log.is_empty() && a.syslog_listen.is_empty() {
                None
            } else {
                let (forced, tz_offset_s, reference) = fw_options(&a.fw)?;
                if reference.is_some() {
                    return Err(BadInput(
                        "--fw-reference is for replay and fwlog: live logs take their year from today".into(),
                    )
                    .into());
                }
                let syslog_allow = match &a.syslog_allow {
                    Some(s) => {
                        Some(picket::homenet::HomeNet::parse(s).map_err(|e| BadInput(format!("--syslog-allow: {e}")))?)
                    }
                    None => None,
                };
                use picket::input::syslog_tcp::Endpoint;
                for e in &a.syslog_listen {
                    if !e.addr().ip().is_loopback() && syslog_allow.is_none() {
                        picket::note!(
                            "picket: note: syslog on {}://{} is accepted from any sender; --syslog-allow limits it to the firewall",
                            e.channel(),
                            e.addr()
                        );
                    }
                }
                let mut udp = a.syslog_listen.iter().filter_map(|e| match e {
                    Endpoint::Udp(addr) => Some(*addr),
                    _ => None,
                });
                let syslog = udp.next();
                if udp.next().is_some() {
                    return Err(BadInput("--syslog-listen: one UDP address at most".into()).into());
                }
                let tls = picket::input::syslog_tls::TlsFiles {
                    cert: a.syslog_tls_cert,
                    key: a.syslog_tls_key,
                    client_ca: a.syslog_tls_client_ca,
                };
                let wants_tls = a.syslog_listen.iter().any(|e| matches!(e, Endpoint::Tls(_)));
                if (tls.cert.is_some() || tls.key.is_some() || tls.client_ca.is_some()) != wants_tls {
                    return Err(BadInput(
                        "--syslog-listen tls://ADDR:PORT goes with --syslog-tls-cert and --syslog-tls-key".into(),
                    )
                    .into());
                }
                Some(picket::fwlog::live::LiveConfig {
                    files: a.fw_log,
                    syslog,
                    syslog_streams: a
                        .syslog_listen
                        .iter()
                        .copied()
                        .filter(|e| !matches!(e, Endpoint::Udp(_)))
                        .collect(),
                    syslog_tls: tls,
                    syslog_rcvbuf: a.syslog_rcvbuf as usize,
                    syslog_allow,
                    forced,
                    tz_offset_s,
                    interval_us: i64::from(a.fw_report_interval) * 1_000_000,
                    top_sources: 10,
                })
            };
            let input = Input::Live(LiveOpts {
                iface: a.interface,
                promisc: !a.no_promisc,
                snaplen: a.snaplen,
                filter: a.filter,
                buffer_mb: a.buffer_mb,
            });
            run(input, a.common, None, fw_live, Some(a.inventory_interval), user)
        }
        Command::Replay(a) => {
            let fw = if a.fw_log.is_empty() {
                None
            } else {
                let (forced, tz_offset_s, reference_us) = fw_options(&a.fw)?;
                Some(app::FwLogs { files: a.fw_log, forced, tz_offset_s, reference_us })
            };
            run(Input::Files { paths: a.paths, filter: a.filter }, a.common, fw, None, None, None)
        }
        Command::Fwlog(a) => fwlog(a),
        Command::Report(a) => report(a),
    }
}

/// `picket report`: bad lines are noted with file and line and skipped.
fn report(a: picket::cli::ReportArgs) -> anyhow::Result<ExitCode> {
    let rules = match &a.rules {
        Some(dir) => Rules::load_dir(dir).map_err(|e| BadInput(e.to_string()))?,
        None => Rules::builtin(),
    };
    let (html, eve) = picket::report::build(&a.files, &rules.ports).map_err(|e| BadInput(format!("{e:#}")))?;
    for p in &eve.problems {
        picket::note!("picket: report: {p}");
    }
    if eve.problems_omitted > 0 {
        picket::note!("picket: report: {} more problems not listed", eve.problems_omitted);
    }
    if eve.bad_lines + eve.unknown_types > 0 {
        picket::note!(
            "picket: report: {} bad lines and {} events of unknown types skipped, of {} lines",
            eve.bad_lines,
            eve.unknown_types,
            eve.lines
        );
    }
    match a.output.as_deref() {
        None => write_stdout(&html),
        Some(p) if p.as_os_str() == "-" => write_stdout(&html),
        Some(p) => {
            std::fs::write(p, html).with_context(|| format!("writing {}", p.display()))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `--fw-format`, `--fw-tz` and `--fw-reference` (None when not given).
fn fw_options(o: &FwOptions) -> anyhow::Result<(Option<picket::fwlog::Format>, i32, Option<i64>)> {
    use picket::fwlog::{Format, time};
    let forced = match o.fw_format.as_str() {
        "auto" => None,
        f => Some(Format::from_name(f).ok_or_else(|| {
            BadInput(format!(
                "--fw-format: unknown format `{f}` (expected auto, netfilter, asa, pf, portsentry, tcpwrappers, winfw, csv, norton or zonealarm)"
            ))
        })?),
    };
    let tz_offset_s = time::parse_tz(&o.fw_tz).map_err(|e| BadInput(format!("--fw-tz: {e}")))?;
    let reference = match &o.fw_reference {
        Some(r) => Some(time::parse_reference(r).map_err(|e| BadInput(format!("--fw-reference: {e}")))?),
        None => None,
    };
    Ok((forced, tz_offset_s, reference))
}

/// `picket fwlog`: the options become a `FwRunConfig`; bad values are bad input.
fn fwlog(a: FwlogArgs) -> anyhow::Result<ExitCode> {
    use picket::fwlog::{LineCtx, time};
    let (forced, tz_offset_s, reference) = fw_options(&a.fw)?;
    let reference_us = reference.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
    });
    picket::note::set_quiet(a.common.quiet);
    let (rules, home) = rules_and_home(&a.common)?;
    let flags = Flags::install().context("installing signal handlers")?;
    let cfg = app::FwRunConfig {
        text: text_format(&a.common),
        files: a.files,
        ctx: LineCtx { time: time::TimeCtx { reference_us, tz_offset_s }, forced, file: 0 },
        rules,
        home,
        workers: a.common.workers.map(usize::from).unwrap_or_else(|| app::default_workers(false)),
        community_id_seed: a.common.community_id_seed,
        output: a.common.output,
        top_sources: usize::from(a.top_sources),
    };
    finish(app::run_fwlog(cfg, flags).map_err(|e| BadInput(e.to_string()))?)
}

/// Turns a finished run into an exit status.
fn finish(report: app::RunReport) -> anyhow::Result<ExitCode> {
    if let Some(e) = report.output_error {
        return Err(anyhow::Error::new(e).context("writing events"));
    }
    // A live capture that failed (its interface was deleted) is a runtime
    // failure, so a service manager restarts picket; it was reported on
    // stderr and the final stats were written.
    if report.file_errors.iter().any(|e| matches!(e, picket::input::capture::CaptureError::Interface { .. })) {
        return Ok(ExitCode::from(1));
    }
    if !report.file_errors.is_empty() {
        // Each was reported on stderr as it happened; the run went on.
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to stdout; a closed pipe (`| head`) is a clean exit.
fn write_stdout(text: &str) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}

/// `--format`: text when given, or by default when events go to a
/// terminal (no `-o`, stdout a terminal: ripgrep's convention).
fn text_format(common: &CommonArgs) -> bool {
    use std::io::IsTerminal;
    match common.format {
        Some(f) => f == picket::cli::Format::Text,
        None => {
            use picket::output::target::Target;
            common.output.iter().all(|t| matches!(t, Target::Stdout)) && std::io::stdout().is_terminal()
        }
    }
}

/// `--rules` and `--home-net` (with the note a run without a home net gets).
fn rules_and_home(common: &CommonArgs) -> anyhow::Result<(Rules, HomeNet)> {
    let rules = match &common.rules {
        Some(dir) => Rules::load_dir(dir).map_err(|e| BadInput(e.to_string()))?,
        None => Rules::builtin(),
    };
    let home = match &common.home_net {
        Some(s) => HomeNet::parse(s).map_err(|e| BadInput(format!("--home-net: {e}")))?,
        None => {
            picket::note!(
                "picket: note: no --home-net given: events carry no direction (inbound/outbound), \
                 and packets are sharded by port heuristics instead of by their outside address"
            );
            HomeNet::default()
        }
    };
    Ok((rules, home))
}

fn run(
    input: Input,
    common: CommonArgs,
    fw: Option<app::FwLogs>,
    fw_live: Option<picket::fwlog::live::LiveConfig>,
    inventory_interval_s: Option<u32>,
    user: Option<picket::privs::Target>,
) -> anyhow::Result<ExitCode> {
    picket::note::set_quiet(common.quiet);
    let (rules, home) = rules_and_home(&common)?;
    let flags = Flags::install().context("installing signal handlers")?;
    let live = matches!(input, Input::Live(_));
    let text = text_format(&common);
    let progress = !live && picket::progress::wanted(common.quiet);
    let workers = common.workers.map(usize::from).unwrap_or_else(|| app::default_workers(live));
    let cfg = RunConfig {
        input,
        rules,
        home,
        workers,
        output: common.output,
        community_id_seed: common.community_id_seed,
        fw,
        fw_live,
        inventory_interval_s,
        user,
        text,
        progress,
    };
    finish(app::run(cfg, flags).map_err(|e| BadInput(e.to_string()))?)
}
