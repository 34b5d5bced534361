//! The command line as the user typed it (clap). Nothing here opens files or
//! devices: `main` turns these values into a `RunConfig`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// picket: tells you what the traffic hitting your firewall really is.
#[derive(Parser, Debug)]
#[command(name = "picket", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Capture live on an interface (a span port) until SIGINT/SIGTERM.
    Live(LiveArgs),
    /// Replay pcap/pcapng files, directories of them, or `-` for stdin.
    Replay(ReplayArgs),
    /// Analyse firewall logs alone (no capture): histograms of denials by port and source.
    Fwlog(FwlogArgs),
    /// Write the analyst's page: one self-contained HTML file built from EVE files.
    Report(ReportArgs),
    /// Work with rules directories.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Print a shell completion script (e.g. `picket completions bash >
    /// /etc/bash_completion.d/picket`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write the man pages (picket.1, picket-replay.1, ...), made from these
    /// same definitions, into DIR; the Debian package installs them.
    #[command(hide = true)]
    Man {
        /// The directory the pages are written to.
        dir: PathBuf,
    },
}

/// Writes the completion script for `shell` (from the definitions above).
pub fn completions(shell: Shell, out: &mut dyn std::io::Write) {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "picket", out);
}

/// Writes one man page per command into `dir` (picket.1, picket-live.1,
/// picket-rules-check.1, ...).
pub fn man_pages(dir: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory;
    clap_mangen::generate_to(Cli::command(), dir)
}

/// The shells `picket completions` writes for.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// How events are written (`--format`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (EVE).
    Json,
    /// One readable line per detection and a closing summary table.
    Text,
}

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Validate a rules directory without running.
    Check {
        /// The directory holding picket.toml and ports.toml.
        dir: PathBuf,
    },
    /// Print the effective detector settings as commented TOML: every key,
    /// its value, its SIGNATURES.md section and its valid range.
    Dump {
        /// Rules directory (default: the rules built into picket).
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
    },
}

/// Options every run shares.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Our side of the firewall: CIDR[,CIDR...] (e.g. 192.0.2.0/24,2001:db8::/32).
    #[arg(long, value_name = "CIDRS")]
    pub home_net: Option<String>,
    /// Rules directory (default: the rules built into picket).
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Where events go (repeatable: each gets every event): a FILE
    /// (appended, reopened on SIGHUP), `-` (stdout, the default),
    /// unix:PATH (a datagram socket), syslog: (local), syslog://HOST:PORT
    /// (RFC 5424 over UDP) or redis://HOST:PORT/KEY (RPUSH; ?publish to
    /// PUBLISH on KEY).
    #[arg(short = 'o', long, value_name = "TARGET", value_parser = crate::output::target::Target::parse)]
    pub output: Vec<crate::output::target::Target>,
    /// Analyzer threads (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
    /// Community ID seed.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub community_id_seed: u16,
    /// json (one EVE object per line) or text (one line per detection and
    /// a summary table). Default: text when writing to a terminal, json
    /// otherwise (a pipe, a file, `-o`).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
    /// No notes and no progress on stderr (warnings and errors stay).
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct LiveArgs {
    /// Interface to capture on.
    #[arg(short = 'i', long, value_name = "IFACE")]
    pub interface: String,
    /// Do not put the interface in promiscuous mode.
    #[arg(long)]
    pub no_promisc: bool,
    /// Bytes captured per packet.
    #[arg(long, default_value_t = 65535, value_parser = clap::value_parser!(i32).range(64..=262144))]
    pub snaplen: i32,
    /// BPF filter expression.
    #[arg(short = 'f', long, value_name = "BPF")]
    pub filter: Option<String>,
    /// Kernel capture buffer in MiB.
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub buffer_mb: Option<u32>,
    /// A firewall log to follow like `tail -F` (repeatable): read from its
    /// end, through rotation and truncation, and correlated with the capture.
    #[arg(long = "fw-log", value_name = "FILE")]
    pub fw_log: Vec<PathBuf>,
    /// Receive syslog (a Cisco ASA's or rsyslog's forwarding): over UDP
    /// (ADDR:PORT or udp://ADDR:PORT, e.g. 0.0.0.0:514), TCP
    /// (tcp://ADDR:PORT, RFC 6587) or TLS (tls://ADDR:PORT, RFC 5425).
    /// Repeatable: one UDP address, any number of TCP and TLS ones.
    #[arg(long, value_name = "[udp|tcp|tls://]ADDR:PORT")]
    pub syslog_listen: Vec<crate::input::syslog_tcp::Endpoint>,
    /// Accept syslog only from these senders (the firewall's address), e.g.
    /// 192.0.2.1/32; others are counted and dropped. Without it, any host
    /// that can reach the port can write firewall records.
    #[arg(long, value_name = "CIDR[,CIDR...]", requires = "syslog_listen")]
    pub syslog_allow: Option<String>,
    /// Receive buffer of the UDP syslog socket, bytes (past
    /// net.core.rmem_max, root's SO_RCVBUFFORCE is used). What the kernel
    /// still drops is counted in stats.fw_live.syslog_kernel_drops.
    #[arg(long, value_name = "BYTES", default_value_t = crate::input::syslog_udp::DEFAULT_RCVBUF as u32,
          value_parser = clap::value_parser!(u32).range(4096..=(1 << 30)))]
    pub syslog_rcvbuf: u32,
    /// The TLS listener's certificate chain (PEM).
    #[arg(long, value_name = "PEM", requires = "syslog_tls_key")]
    pub syslog_tls_cert: Option<PathBuf>,
    /// The TLS listener's private key (PEM), read before --user drops privileges.
    #[arg(long, value_name = "PEM", requires = "syslog_tls_cert")]
    pub syslog_tls_key: Option<PathBuf>,
    /// CA certificates (PEM): every TLS client must present a certificate
    /// signed by one of them, or the handshake fails (counted in
    /// stats.fw_live.syslog_tcp.handshake_failed).
    #[arg(long, value_name = "PEM", requires = "syslog_tls_cert")]
    pub syslog_tls_client_ca: Option<PathBuf>,
    /// Seconds of packet time between fw_correlation reports while live.
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u32).range(10..=86400))]
    pub fw_report_interval: u32,
    /// Seconds of packet time between service_inventory events while live
    /// (what home hosts answer on); one is also written at shutdown.
    #[arg(long, value_name = "SECS", default_value_t = 3600, value_parser = clap::value_parser!(u32).range(10..=604800))]
    pub inventory_interval: u32,
    /// Become USER (and GROUP; default USER's own, plus USER's supplementary
    /// groups) once the capture, the syslog socket and the output are open,
    /// with every capability cleared and no_new_privs set. Names or numbers.
    #[arg(long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    #[command(flatten)]
    pub fw: FwOptions,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Capture files or directories; `-` reads stdin (`tcpdump -w - | picket replay -`).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// BPF filter expression applied while reading.
    #[arg(short = 'f', long, value_name = "BPF")]
    pub filter: Option<String>,
    /// A firewall log to correlate with the capture (repeatable). The run
    /// ends with an `fw_correlation` event; without --fw-reference, syslog
    /// years are inferred from the capture's first packet.
    #[arg(long = "fw-log", value_name = "FILE")]
    pub fw_log: Vec<PathBuf>,
    #[command(flatten)]
    pub fw: FwOptions,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct FwlogArgs {
    /// Firewall log files; `-` reads stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub fw: FwOptions,
    /// How many sources `by_source` lists.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top_sources: u16,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// EVE files (picket's JSON lines, of one run or merged from many sensors); `-` reads stdin.
    #[arg(required = true, value_name = "EVE")]
    pub files: Vec<PathBuf>,
    /// Write the HTML here (default: stdout; `-` too).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Rules directory whose port table names the services (default: the built-in rules).
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
}

/// How firewall logs are read.
#[derive(Args, Debug, Clone)]
pub struct FwOptions {
    /// Log format: auto (detected per line), netfilter, asa, pf, portsentry, tcpwrappers, winfw, csv, norton or zonealarm.
    #[arg(long, value_name = "FORMAT", default_value = "auto")]
    pub fw_format: String,
    /// Zone of log times that carry none (syslog, pfirewall.log): UTC or a fixed offset such as
    /// +02:00 or -05:00 (no zone names, no daylight-saving rules).
    #[arg(long, value_name = "TZ", default_value = "UTC", allow_hyphen_values = true)]
    pub fw_tz: String,
    /// Reference date for syslog lines without a year (default: now): YYYY-MM-DD or
    /// YYYY-MM-DDTHH:MM:SSZ. A line dated after it (by more than a day) is from the year before.
    #[arg(long, value_name = "DATE")]
    pub fw_reference: Option<String>,
}
