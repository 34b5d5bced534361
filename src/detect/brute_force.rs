//! `brute_force`: one source logging in over and over to an authentication
//! service (password guessing), the way Zeek's `SSH::password_guesses_limit`
//! and FTP bruteforcing scripts and psad see it: many short connections,
//! each a completed handshake from a new source port carrying a few hundred
//! bytes, to one service on one host (vertical) or across hosts (a
//! horizontal guessing campaign).
//!
//! - Connections to the rules' `ports` are followed from their SYN (a
//!   retransmission, same source port and ISN, is not a new one) to their
//!   first FIN or RST, or until `max_session_s`. A *short* session completed
//!   its handshake, ended within `max_session_s` and the client sent at most
//!   `max_client_bytes`.
//! - Where the server answers in clear text, the first bytes of its replies
//!   say how each login went: FTP `530`/`230`, SMTP submission `535`/`235`,
//!   POP3 `-ERR`, IMAP `tag NO`, MySQL error 1045 / the OK after the
//!   handshake, PostgreSQL `FATAL`. When replies are visible and not one
//!   login failed, the repeats are a client that logs in (a poller), never a
//!   brute force. SSH, RDP, VNC and TLS hide the outcome: the event says so.
//! - Confirmed by `min_connections` short sessions of one (source, port)
//!   within `window_s` (across hosts only when the source came back to them:
//!   at least two sessions per host on average, or failed logins; one
//!   connection per host is a banner sweep, `port_scan`'s), or by
//!   `min_failed_logins` failed logins.
//! - The brute force is the explanation of its packets: from its third short
//!   session a (source, port) is *claimed* (`Claims`), and `periodic_probe`,
//!   `source_port_sequence`, `verdict` and `syn_retry` do not start a
//!   detection on a claimed (source, port): a guessing tool's connections
//!   come on a rhythm from consecutive ports, and a server that stops
//!   answering some of them is not a dead service.
//!
//! State is keyed by the client, which owns its connections' packets in the
//! dispatcher whenever it is outside the home net, or without a home net
//! (an inside client's session data goes with the outside server's address:
//! those sessions never end here and do not count). Open connections wait
//! in a FIFO (`Fifo`, oldest out); a (source, port) seen once waits in a
//! `Probation`, and from its second connection in a `Tier` that keeps the
//! sources with more sessions and never evicts a confirmed one.

use super::fair::{Fifo, Probation, Tier, Weighted};
use super::sources::Sources;
use crate::config::{ConfigError, schema::Spans};
use crate::decode::summary::{L4, PacketSummary, tcpflag};
use crate::detect::core::{Ctx, Detector, EndReason, class};
use crate::detect::keys::{Distinct256, addr_key, hash_pair, mix, sweep_every};
use crate::detect::severity::Fact;
use crate::output::event::{EventBuilder, EventLine, Flow, detection_id, incident_id, ip_bytes, secs};
use crate::output::timefmt::rfc3339_us;
use crate::stats::Table;
use serde_json::json;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

crate::rules_section! {
    /// SIGNATURES.md sections 2 and 7: a new source port each time to one service is a
    /// program retrying, unless the connections complete: then many short sessions to a
    /// login service are password guessing (Zeek's SSH::password_guesses_limit, psad).
    pub struct BruteForceRules["brute_force"] check(check_brute_force) {
        /// SIGNATURES.md section 2: name password guessing instead of calling it a beacon or a retrying client
        enabled: bool = true;
        /// SIGNATURES.md section 7 (what attackers want at a port): login services: ftp, ssh, telnet, pop3, imap, smtp submission, mysql, rdp, postgresql, vnc. Not 25 (mail relays), 445 (Windows opens many SMB sessions), 389/1433 (applications bind per request) or the TLS-only mail ports: add them where that does not hold
        ports: Vec<u16> = vec![21, 22, 23, 110, 143, 587, 3306, 3389, 5432, 5900], ints(1, 65_535);
        /// SIGNATURES.md section 2 (a program, not a person): Zeek's sshguess trace: 11 sessions in 70 s; a person logs in a few times
        min_connections: u32 = 10, ints(3, 100_000);
        /// SIGNATURES.md section 2 (as syn_retry's window): the sessions must fall within this long (counted in windows that restart when they pass)
        window_s: f64 = 600.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 7: failed logins the server spelled out (FTP 530...) that confirm on their own
        min_failed_logins: u32 = 10, ints(1, 100_000);
        /// SIGNATURES.md section 2: a guess is a short session (a few seconds: one to six passwords); a longer one is a login that worked or someone typing
        max_session_s: f64 = 60.0, above(0.0, 3600.0);
        /// SIGNATURES.md section 2: a guess carries a few KB at most (an SSH key exchange and a few passwords); a session that uploads more is work
        max_client_bytes: u32 = 16384, ints(1, 1 << 30);
        /// SIGNATURES.md section 2: a source probing more ports is a scanner (nmap -sV/-A scripts connect to a service several times)
        max_dest_ports_per_source: u32 = 8, ints(1, 65_536);
        /// SIGNATURES.md section 2: a brute force with no new session for this long has ended
        idle_s: f64 = 600.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 2: (source, port) entries with two or more sessions, across all workers
        max_tracked: usize = 16384, entries();
        /// SIGNATURES.md section 2: (source, port) entries with one session, and open connections, each across all workers
        max_probation: usize = 65536, entries();
    }
}

fn check_brute_force(r: &BruteForceRules, s: &Spans) -> Result<(), ConfigError> {
    if r.max_session_s > r.window_s {
        return Err(s.out_of_order(
            "max_session_s",
            "window_s",
            format!("max_session_s ({}) must not exceed window_s ({})", r.max_session_s, r.window_s),
        ));
    }
    Ok(())
}

const KIND: &str = "brute_force";
/// Short sessions from which a (source, port) is claimed.
const SUSPECT: u64 = 3;
/// Claims kept per worker (oldest out) and how long.
const CLAIMS_KEPT: usize = 4096;
const CLAIM_HOLD_US: i64 = 7_200_000_000;

/// (source, port) pairs `brute_force` explains, shared with the detectors of
/// one worker that would otherwise read the same connections as a client
/// retrying or a beacon (`periodic`, `syn_retry`).
pub struct Claims {
    held: AtomicUsize,
    map: Mutex<Fifo<AKey, i64>>,
}

impl Default for Claims {
    fn default() -> Claims {
        Claims { held: AtomicUsize::new(0), map: Mutex::new(Fifo::new(CLAIMS_KEPT)) }
    }
}

impl Claims {
    /// Whether `brute_force` claims connections from `client` to `port`.
    /// One atomic load while nothing is claimed (almost always).
    pub fn held(&self, client: IpAddr, port: u16) -> bool {
        if self.held.load(Relaxed) == 0 {
            return false;
        }
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&AKey { client, port }).is_some()
    }

    /// Claims (client, port) until `now` plus the hold; returns the older
    /// claims pushed out to make room (the caller counts them).
    pub(crate) fn claim(&self, client: IpAddr, port: u16, now: i64) -> u64 {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let k = AKey { client, port };
        let mut evicted = 0;
        if let Some(t) = m.get_mut(&k) {
            *t = (*t).max(now);
        } else {
            evicted = m.insert(k, now);
        }
        self.held.store(m.len(), Relaxed);
        evicted
    }

    fn expire(&self, now: i64) {
        if self.held.load(Relaxed) == 0 {
            return;
        }
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, t| now.saturating_sub(*t) <= CLAIM_HOLD_US);
        self.held.store(m.len(), Relaxed);
    }
}

/// A (client, service port) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AKey {
    client: IpAddr,
    port: u16,
}

impl std::hash::Hash for AKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        hash_pair(&self.client, &self.client, u32::from(self.port), h);
    }
}

/// One connection: client, server, client port, service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ConnKey {
    client: IpAddr,
    server: IpAddr,
    sport: u16,
    port: u16,
}

impl std::hash::Hash for ConnKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        hash_pair(&self.client, &self.server, (u32::from(self.sport) << 16) | u32::from(self.port), h);
    }
}

#[derive(Clone, Copy, Debug)]
struct Conn {
    start_us: i64,
    last_us: i64,
    isn: u32,
    sensor: u16,
    established: bool,
    client_bytes: u32,
    server_bytes: u32,
    replies: u16,
    failed: u16,
    success: u16,
}

/// The services whose replies are read, by port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Speaks {
    Opaque,
    Ftp,
    Smtp,
    Pop3,
    Imap,
    Mysql,
    Postgres,
}

fn speaks(port: u16) -> Speaks {
    match port {
        21 => Speaks::Ftp,
        25 | 587 => Speaks::Smtp,
        110 => Speaks::Pop3,
        143 => Speaks::Imap,
        3306 => Speaks::Mysql,
        5432 => Speaks::Postgres,
        _ => Speaks::Opaque,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    Other,
    Failed,
    Success,
}

/// What a server's segment says about a login, from its first bytes.
fn reply(s: Speaks, h: &[u8; 8], len: u32) -> Option<Reply> {
    let code = |fail: &[u8; 3], ok: &[u8; 3]| {
        if !(h[..3].iter().all(u8::is_ascii_digit) && (h[3] == b' ' || h[3] == b'-')) {
            return None;
        }
        Some(if &h[..3] == fail {
            Reply::Failed
        } else if &h[..3] == ok {
            Reply::Success
        } else {
            Reply::Other
        })
    };
    match s {
        Speaks::Opaque => None,
        Speaks::Ftp => code(b"530", b"230"),
        Speaks::Smtp => code(b"535", b"235"),
        Speaks::Pop3 if h.starts_with(b"-ERR") => Some(Reply::Failed),
        Speaks::Pop3 if h.starts_with(b"+OK") => Some(Reply::Other),
        Speaks::Pop3 => None,
        Speaks::Imap => {
            // "* OK ..." greeting, "a001 NO ..." a failed command (LOGIN).
            let sp = h.iter().position(|b| *b == b' ').filter(|i| (1..=4).contains(i))?;
            match &h[sp + 1..(sp + 3).min(8)] {
                b"NO" => Some(Reply::Failed),
                b"OK" => Some(Reply::Other),
                _ => None,
            }
        }
        // [length 3][sequence][0xff error][code 1045 = access denied, LE]
        Speaks::Mysql if len >= 7 && h[4] == 0xff => {
            Some(if h[5] == 0x15 && h[6] == 0x04 { Reply::Failed } else { Reply::Other })
        }
        // The OK packet answering the login (sequence 2).
        Speaks::Mysql if len >= 7 && h[3] == 2 && h[4] == 0 => Some(Reply::Success),
        // The greeting: protocol version 10.
        Speaks::Mysql if h[3] == 0 && h[4] == 0x0a => Some(Reply::Other),
        Speaks::Mysql => None,
        Speaks::Postgres if h[0] == b'E' && &h[5..8] == b"SFA" => Some(Reply::Failed),
        Speaks::Postgres if h[0] == b'R' || (len == 1 && (h[0] == b'S' || h[0] == b'N')) => Some(Reply::Other),
        Speaks::Postgres => None,
    }
}

#[derive(Clone, Debug)]
struct Attack {
    sensor: u16,
    first_us: i64,
    last_us: i64,
    first_sport: u16,
    target: IpAddr,
    targets: Distinct256,
    target_count: u64,
    /// Connections seen (a SYN from a new source port).
    connections: u64,
    /// Handshakes completed.
    completed: u64,
    short: u64,
    long: u64,
    unanswered: u64,
    replies: u64,
    failed: u64,
    success: u64,
    first_success_us: Option<i64>,
    short_us: i64,
    client_bytes: u64,
    server_bytes: u64,
    win_start_us: i64,
    win_short: u64,
    confirmed: bool,
    last_emit_us: i64,
}

impl Weighted for Attack {
    fn credit(&self) -> u8 {
        (64 - self.short.leading_zeros()).min(15) as u8
    }
    fn pinned(&self) -> bool {
        self.confirmed
    }
}

impl Attack {
    fn new(k: &ConnKey, c: &Conn) -> Attack {
        Attack {
            sensor: c.sensor,
            first_us: c.start_us,
            last_us: c.start_us,
            first_sport: k.sport,
            target: k.server,
            targets: Distinct256::default(),
            target_count: 0,
            connections: 0,
            completed: 0,
            short: 0,
            long: 0,
            unanswered: 0,
            replies: 0,
            failed: 0,
            success: 0,
            first_success_us: None,
            short_us: 0,
            client_bytes: 0,
            server_bytes: 0,
            win_start_us: c.start_us,
            win_short: 0,
            confirmed: false,
            last_emit_us: c.start_us,
        }
    }

    /// Adds one ended connection.
    /// `closed`: its FIN or RST was seen (else it timed out or the input ended).
    fn add(&mut self, k: &ConnKey, c: &Conn, closed: bool, lim: &Limits) {
        self.sensor = c.sensor;
        self.last_us = self.last_us.max(c.last_us);
        self.connections += 1;
        if !c.established {
            self.unanswered += 1;
            return;
        }
        self.completed += 1;
        self.target_count += u64::from(self.targets.insert(mix(addr_key(k.server))));
        self.replies += u64::from(c.replies);
        self.failed += u64::from(c.failed);
        self.success += u64::from(c.success);
        if c.success > 0 && self.first_success_us.is_none() {
            self.first_success_us = Some(c.last_us);
        }
        self.client_bytes += u64::from(c.client_bytes);
        self.server_bytes += u64::from(c.server_bytes);
        let dur = c.last_us.saturating_sub(c.start_us);
        if dur > lim.max_session_us || c.client_bytes > lim.max_client_bytes {
            self.long += 1;
            return;
        }
        if !closed {
            // No end seen: an inside client's session data goes with the
            // outside server (the dispatcher), so its length is unknown.
            return;
        }
        self.short += 1;
        self.short_us += dur;
        if c.start_us.saturating_sub(self.win_start_us) > lim.window_us && !self.confirmed {
            self.win_start_us = c.start_us;
            self.win_short = 0;
        }
        self.win_short += 1;
    }

    /// Replies are readable here and not one login failed: a client that
    /// logs in, not a guesser.
    fn logins_work(&self, port: u16) -> bool {
        speaks(port) != Speaks::Opaque && self.replies > 0 && self.failed == 0
    }

    fn holds(&self, port: u16, lim: &Limits) -> bool {
        if self.logins_work(port) {
            return false;
        }
        // Across hosts only when it came back to them, or logins failed:
        // one connection per host is a banner sweep.
        let repeats = self.target_count <= 1 || self.short >= 2 * self.target_count || self.failed * 2 >= self.short;
        (self.win_short >= lim.min_connections && repeats) || self.failed >= lim.min_failed
    }
}

#[derive(Clone, Copy)]
struct Limits {
    window_us: i64,
    max_session_us: i64,
    max_client_bytes: u32,
    min_connections: u64,
    min_failed: u64,
    max_ports: u32,
    idle_us: i64,
    update_us: i64,
}

/// The detector's per-worker state.
pub struct BruteForce {
    enabled: bool,
    /// The service ports, one bit each.
    ports: Box<[u64; 1024]>,
    lim: Limits,
    conns: Fifo<ConnKey, Conn>,
    probation: Probation<AKey, Attack>,
    tier: Tier<AKey, Attack>,
    claims: Arc<Claims>,
    last_sweep_us: i64,
}

impl BruteForce {
    pub fn new(
        rules: &BruteForceRules,
        cap: usize,
        probation_cap: usize,
        update_interval_s: f64,
        claims: Arc<Claims>,
    ) -> BruteForce {
        let mut ports = Box::new([0u64; 1024]);
        for p in &rules.ports {
            ports[usize::from(*p) / 64] |= 1 << (p % 64);
        }
        BruteForce {
            enabled: rules.enabled,
            ports,
            lim: Limits {
                window_us: (rules.window_s * 1e6) as i64,
                max_session_us: (rules.max_session_s * 1e6) as i64,
                max_client_bytes: rules.max_client_bytes,
                min_connections: u64::from(rules.min_connections),
                min_failed: u64::from(rules.min_failed_logins),
                max_ports: rules.max_dest_ports_per_source,
                idle_us: (rules.idle_s * 1e6) as i64,
                update_us: (update_interval_s * 1e6) as i64,
            },
            conns: Fifo::new(probation_cap),
            probation: Probation::new(probation_cap),
            tier: Tier::new(cap),
            claims,
            last_sweep_us: i64::MIN,
        }
    }

    #[inline]
    fn is_port(&self, p: u16) -> bool {
        self.ports[usize::from(p) / 64] & (1 << (p % 64)) != 0
    }

    fn packet(&mut self, p: &PacketSummary, sensor: u16, src: &Sources, cx: &Ctx) {
        let (Some(ip), L4::Tcp(t)) = (&p.ip, &p.l4) else { return };
        let to_svc = self.is_port(t.dport);
        if !to_svc && !self.is_port(t.sport) {
            return;
        }
        let now = p.ts_us;
        if to_svc && t.is_connection_attempt() {
            let key = ConnKey { client: ip.src, server: ip.dst, sport: t.sport, port: t.dport };
            if let Some(c) = self.conns.get(&key) {
                if c.isn == t.seq {
                    return; // a retransmission
                }
                // The port reused for a new connection: the old one is over.
                if let Some(old) = self.conns.remove(&key) {
                    self.ended(&key, &old, false, src, cx, now);
                }
            }
            let c = Conn {
                start_us: now,
                last_us: now,
                isn: t.seq,
                sensor,
                established: false,
                client_bytes: 0,
                server_bytes: 0,
                replies: 0,
                failed: 0,
                success: 0,
            };
            if let Some((k, old)) = self.conns.insert_evicting(key, c) {
                cx.shared.stats.table(Table::BruteForce).evicted.fetch_add(1, Relaxed);
                self.ended(&k, &old, false, src, cx, now);
            }
            return;
        }
        let (key, from_server) = if to_svc {
            (ConnKey { client: ip.src, server: ip.dst, sport: t.sport, port: t.dport }, false)
        } else {
            (ConnKey { client: ip.dst, server: ip.src, sport: t.dport, port: t.sport }, true)
        };
        let Some(c) = self.conns.get_mut(&key) else { return };
        c.last_us = c.last_us.max(now);
        if from_server && t.is_syn_ack() {
            c.established = c.established || t.ack == c.isn.wrapping_add(1);
            return;
        }
        if from_server {
            c.server_bytes = c.server_bytes.saturating_add(p.payload_len);
            if p.payload_len > 0 {
                match reply(speaks(key.port), &p.payload_head, p.payload_len) {
                    Some(Reply::Failed) => c.failed = c.failed.saturating_add(1),
                    Some(Reply::Success) => c.success = c.success.saturating_add(1),
                    Some(Reply::Other) | None => {}
                }
                c.replies = c.replies.saturating_add(1);
            }
        } else {
            c.client_bytes = c.client_bytes.saturating_add(p.payload_len);
        }
        if t.has(tcpflag::FIN) || t.has(tcpflag::RST) {
            if let Some(c) = self.conns.remove(&key) {
                self.ended(&key, &c, true, src, cx, now);
            }
        }
    }

    /// Accounts an ended connection to its (client, port).
    fn ended(&mut self, k: &ConnKey, c: &Conn, closed: bool, src: &Sources, cx: &Ctx, now: i64) {
        let akey = AKey { client: k.client, port: k.port };
        let lim = self.lim;
        if let Some(a) = self.tier.get_mut(&akey) {
            a.add(k, c, closed, &lim);
        } else if let Some(a) = self.probation.get_mut(&akey) {
            a.add(k, c, closed, &lim);
            if a.completed < 2 {
                return;
            }
            let Some(a) = self.probation.remove(&akey) else { return };
            let st = cx.shared.stats.table(Table::BruteForce);
            if !self.tier.insert(akey, a).count(st, |old| old.short >= 2) {
                return;
            }
        } else {
            if !c.established {
                return; // unanswered SYNs make no entry (a spoofed flood)
            }
            let mut a = Attack::new(k, c);
            a.add(k, c, closed, &lim);
            let n = self.probation.insert(akey, a);
            if n > 0 {
                cx.shared.stats.table(Table::BruteForce).evicted.fetch_add(n, Relaxed);
            }
            return;
        }
        self.judge(&akey, src, cx, now, None);
    }

    fn judge(&mut self, akey: &AKey, src: &Sources, cx: &Ctx, now: i64, end: Option<EndReason>) {
        let lim = self.lim;
        let Some(a) = self.tier.get_mut(akey) else { return };
        if a.short >= SUSPECT && !a.logins_work(akey.port) {
            // A claim pushed out lets syn_retry and periodic speak about
            // that brute force again: counted with the table's evictions.
            let lost = self.claims.claim(akey.client, akey.port, now);
            cx.shared.stats.table(Table::BruteForce).evicted.fetch_add(lost, Relaxed);
        }
        if !a.confirmed {
            if !a.holds(akey.port, &lim) || src.distinct_ports(akey.client) > u64::from(lim.max_ports) {
                return;
            }
            a.confirmed = true;
            a.last_emit_us = now;
            let status = if end.is_some() { "final" } else { "new" };
            cx.emit(render(akey, a, status, end, cx, now));
        } else if end.is_none() && now.saturating_sub(a.last_emit_us) >= lim.update_us {
            a.last_emit_us = now;
            cx.emit(render(akey, a, "update", None, cx, now));
        }
    }

    fn tick(&mut self, src: &Sources, cx: &Ctx) {
        let now = cx.now;
        let max = self.lim.max_session_us;
        while let Some((k, c)) = self.conns.pop_due(|c| now.saturating_sub(c.start_us) > max) {
            self.ended(&k, &c, false, src, cx, now);
        }
        let idle = self.lim.idle_us;
        if now.saturating_sub(self.last_sweep_us) < sweep_every(idle) {
            return;
        }
        self.last_sweep_us = now;
        self.claims.expire(now);
        let gone = self.probation.retain(|_, a| now.saturating_sub(a.last_us) <= idle);
        let dropped = self.tier.retain(|k, a| {
            if now.saturating_sub(a.last_us) <= idle {
                return true;
            }
            if a.confirmed {
                cx.emit(render(k, a, "final", Some(EndReason::Expired), cx, now));
            }
            false
        });
        cx.shared.stats.table(Table::BruteForce).expired.fetch_add(gone + dropped, Relaxed);
    }

    fn end(&mut self, reason: EndReason, src: &Sources, cx: &Ctx) {
        let now = cx.now;
        // Connections still open end with the input.
        while let Some((k, c)) = self.conns.pop_due(|_| true) {
            self.ended(&k, &c, false, src, cx, now);
        }
        let keys: Vec<AKey> = self.tier.iter_mut().map(|(k, _)| *k).collect();
        for k in keys {
            let was = self.tier.get(&k).is_some_and(|a| a.confirmed);
            self.judge(&k, src, cx, now, Some(reason));
            if was && let Some(a) = self.tier.get(&k) {
                cx.emit(render(&k, a, "final", Some(reason), cx, now));
            }
        }
        self.tier.clear();
        self.probation.clear();
    }
}

fn human_s(us: i64) -> String {
    let x = us as f64 / 1e6;
    if x >= 120.0 { format!("{:.1} min", x / 60.0) } else { format!("{x:.1} s") }
}

fn render(k: &AKey, a: &Attack, status: &str, end: Option<EndReason>, cx: &Ctx, now: i64) -> EventLine {
    let service = cx.service(6, k.port).map(String::from);
    let svc = service.clone().unwrap_or_else(|| format!("port {}", k.port));
    let span = a.last_us.saturating_sub(a.first_us);
    let rate = (span >= 1_000_000).then(|| ((a.completed as f64 * 60e6 / span as f64) * 10.0).round() / 10.0);
    let mean_s = (a.short > 0).then(|| secs(a.short_us / a.short as i64));
    let mean_cb = a.client_bytes.checked_div(a.completed).unwrap_or(0);
    let mean_sb = a.server_bytes.checked_div(a.completed).unwrap_or(0);
    let visible = speaks(k.port) != Speaks::Opaque && a.replies > 0;
    let outcome = match (visible, a.success > 0) {
        (true, true) => "succeeded",
        (true, false) => "failed",
        (false, _) => "not_visible",
    };
    let single = a.target_count <= 1;
    let details = json!({
        "id": detection_id(KIND, &[&ip_bytes(&k.client), &k.port.to_be_bytes(), &a.first_us.to_be_bytes()]),
        "incident": single.then(|| incident_id(&k.client, &a.target, 6, k.port)),
        "status": status,
        "end_reason": end.map(EndReason::name),
        "service": service,
        "port": k.port,
        "target": single.then(|| a.target.to_string()),
        "targets": a.target_count.max(1),
        "first_target": a.target.to_string(),
        "connections": a.connections,
        "completed": a.completed,
        "short_sessions": a.short,
        "long_sessions": a.long,
        "unanswered": a.unanswered,
        "failed_logins": visible.then_some(a.failed),
        "successful_logins": visible.then_some(a.success),
        "login_outcome": outcome,
        "first_success": a.first_success_us.map(rfc3339_us),
        "rate_per_min": rate,
        "mean_duration_s": mean_s,
        "mean_client_bytes": mean_cb,
        "mean_server_bytes": mean_sb,
        "direction": cx.direction(k.client, a.target),
        "first_seen": rfc3339_us(a.first_us),
        "last_seen": rfc3339_us(a.last_us),
        "duration_s": secs(span),
    });
    let on =
        if single { format!("on {}", a.target) } else { format!("on {} hosts (first {})", a.target_count, a.target) };
    let rate_note = rate.map(|r| format!(" ({r}/min)")).unwrap_or_default();
    let each = match mean_s {
        Some(m) => format!(", each ~{m} s and ~{mean_cb} bytes from the client"),
        None => String::new(),
    };
    let meaning = match outcome {
        "succeeded" => format!(
            "; the server refused {} logins and accepted {} (first at {}): password guessing, and a login succeeded",
            a.failed,
            a.success,
            a.first_success_us.map(rfc3339_us).unwrap_or_default()
        ),
        "failed" => format!("; the server refused {} logins and accepted none: password guessing", a.failed),
        _ => {
            let long = if a.long > 0 {
                format!("; {} longer session(s) may be a login that worked", a.long)
            } else {
                String::new()
            };
            let hidden = match speaks(k.port) {
                Speaks::Opaque => format!("{svc} does not show the replies in clear text"),
                _ => "no reply of the server was seen (encrypted or not captured)".to_string(),
            };
            format!(
                ": password guessing (or a script logging in over and over); {hidden}, so whether any login succeeded is not visible{long}"
            )
        }
    };
    let summary = format!(
        "{} made {} connections to {svc} {on} in {}{rate_note}{each}{meaning}",
        k.client,
        a.completed,
        human_s(span),
    );
    let fact = if a.success > 0 { Fact::BruteForceSuccess } else { Fact::BruteForce };
    let flow = Flow { src: k.client, dst: a.target, proto: 6, ports: Some((a.first_sport, k.port)) };
    EventBuilder::new(KIND, now, cx.sensor(a.sensor))
        .flow(&flow, cx.shared.community_id_seed)
        .judged(cx.judge(cx.asset_of(k.client, a.target), Some((6, k.port)), fact))
        .summary(summary)
        .details(KIND, details)
}

impl Detector for BruteForce {
    fn table(&self) -> Table {
        Table::BruteForce
    }
    fn interest(&self) -> u16 {
        if self.enabled { class::TCP } else { 0 }
    }
    fn len(&self) -> usize {
        self.conns.len() + self.probation.len() + self.tier.len()
    }
    fn on_packet(&mut self, p: &PacketSummary, sensor: u16, sources: &Sources, cx: &Ctx) {
        self.packet(p, sensor, sources, cx);
    }
    fn on_tick(&mut self, sources: &Sources, cx: &Ctx) {
        self.tick(sources, cx);
    }
    fn flush(&mut self, reason: EndReason, sources: &Sources, cx: &Ctx) {
        self.end(reason, sources, cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::summary::{tcpflag::*, testutil};
    use crate::detect::testrig::{Rig, s};

    const GUESSER: &str = "198.51.100.7";
    const SERVER: &str = "192.0.2.10";

    #[test]
    fn claims_are_bounded_and_say_what_they_pushed_out() {
        let c = Claims::default();
        let mut evicted = 0;
        for i in 0..=CLAIMS_KEPT as u32 {
            evicted += c.claim(std::net::IpAddr::V4(i.into()), 22, 0);
        }
        assert_eq!(evicted, 1, "the oldest claim goes, and the caller hears of it");
        assert!(!c.held(std::net::IpAddr::V4(0u32.into()), 22));
        assert!(c.held(std::net::IpAddr::V4((CLAIMS_KEPT as u32).into()), 22));
        assert_eq!(c.claim(std::net::IpAddr::V4(7u32.into()), 22, 5), 0, "a renewed claim pushes nothing out");
    }

    fn rig() -> Rig<BruteForce> {
        Rig::with(
            |_| {},
            |sh, r| {
                BruteForce::new(
                    &r.brute_force,
                    sh.per_worker(r.brute_force.max_tracked),
                    sh.per_worker(r.brute_force.max_probation),
                    60.0,
                    Arc::new(Claims::default()),
                )
            },
        )
    }

    /// One session: handshake, `sent` bytes from the client, the server's
    /// `reply` (its first bytes), then the client's FIN after `dur` seconds.
    #[allow(clippy::too_many_arguments)]
    fn session(
        r: &mut Rig<BruteForce>,
        t: f64,
        client: &str,
        server: &str,
        sport: u16,
        port: u16,
        sent: u32,
        reply: &[u8],
        dur: f64,
    ) {
        let isn = u32::from(sport) * 1000;
        let pkt = |at: f64, from_client: bool, flags: u16, len: u32, head: &[u8]| {
            let mut p = if from_client {
                testutil::tcp(s(at), client, server, (sport, port), flags, isn, 0)
            } else {
                testutil::tcp(s(at), server, client, (port, sport), flags, 7, isn.wrapping_add(1))
            };
            p.payload_len = len;
            let n = head.len().min(8);
            p.payload_head[..n].copy_from_slice(&head[..n]);
            p
        };
        r.feed_owned(pkt(t, true, SYN, 0, b""));
        r.feed_owned(pkt(t + 0.001, false, SYN | ACK, 0, b""));
        r.feed_owned(pkt(t + 0.002, true, ACK | PSH, sent, b"PASS x\r\n"));
        if !reply.is_empty() {
            r.feed_owned(pkt(t + dur / 2.0, false, ACK | PSH, 22, reply));
        }
        r.feed_owned(pkt(t + dur, true, FIN | ACK, 0, b""));
    }

    fn d(e: &serde_json::Value) -> &serde_json::Value {
        &e["brute_force"]
    }

    #[test]
    fn ftp_guesses_refused_then_one_accepted_fire_once_and_say_so() {
        let mut r = rig();
        for i in 0..9u16 {
            session(&mut r, f64::from(i) * 2.0, GUESSER, SERVER, 40000 + i, 21, 20, b"530 Login incorrect.", 1.5);
        }
        assert!(r.events().is_empty(), "9 sessions, 9 failed logins: below both thresholds");
        session(&mut r, 18.0, GUESSER, SERVER, 40009, 21, 20, b"530 Login incorrect.", 1.5);
        let ev = r.events();
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(d(&ev[0])["status"], "new");
        assert_eq!(d(&ev[0])["failed_logins"], 10);
        session(&mut r, 20.0, GUESSER, SERVER, 40010, 21, 20, b"230 User logged in.", 1.5);
        let ev = r.end();
        assert_eq!(ev.len(), 1, "one final, no update within the interval");
        let x = d(&ev[0]);
        assert_eq!(x["status"], "final");
        assert_eq!((x["completed"].as_u64(), x["short_sessions"].as_u64()), (Some(11), Some(11)));
        assert_eq!((x["failed_logins"].as_u64(), x["successful_logins"].as_u64()), (Some(10), Some(1)));
        assert_eq!(x["login_outcome"], "succeeded");
        assert_eq!(x["target"], SERVER);
        assert_eq!(x["service"], "ftp");
        assert_eq!(x["direction"], "inbound");
        let sum = ev[0]["summary"].as_str().unwrap();
        assert!(sum.contains("refused 10 logins and accepted 1") && sum.contains("a login succeeded"), "{sum}");
    }

    #[test]
    fn ssh_sessions_fire_and_say_the_outcome_is_not_visible() {
        let mut r = rig();
        for i in 0..12u16 {
            session(&mut r, f64::from(i) * 6.0, GUESSER, SERVER, 50000 + i, 22, 2600, b"\x00\x00\x00\x3c\x0a", 5.0);
        }
        let ev = r.end();
        let fin = ev.iter().find(|e| d(e)["status"] == "final").expect("a final");
        let x = d(fin);
        assert_eq!(x["completed"], 12);
        assert_eq!(x["login_outcome"], "not_visible");
        assert!(x["failed_logins"].is_null() && x["successful_logins"].is_null());
        assert_eq!(x["rate_per_min"], 10.1, "12 sessions from 0 s to the last FIN at 71 s");
        assert!(fin["summary"].as_str().unwrap().contains("whether any login succeeded is not visible"));
        assert!(r.det.claims.held(GUESSER.parse().unwrap(), 22), "the (source, port) is claimed");
        assert!(!r.det.claims.held(GUESSER.parse().unwrap(), 21));
    }

    #[test]
    fn a_user_logging_in_a_few_times_a_poller_whose_logins_work_and_long_sessions_are_silent() {
        let mut r = rig();
        // Three ssh logins.
        for i in 0..3u16 {
            session(&mut r, f64::from(i) * 20.0, "203.0.113.5", SERVER, 41000 + i, 22, 3000, b"", 2.0);
        }
        // A script fetching from FTP every 20 s: every login accepted.
        for i in 0..30u16 {
            session(
                &mut r,
                f64::from(i) * 20.0,
                "203.0.113.6",
                SERVER,
                42000 + i,
                21,
                40,
                b"230 Login successful.",
                1.0,
            );
        }
        // Interactive sessions: each longer than max_session_s.
        for i in 0..12u16 {
            session(&mut r, f64::from(i) * 100.0, "203.0.113.7", SERVER, 43000 + i, 22, 9000, b"", 90.0);
        }
        // Bulk uploads: short but far more than a login sends.
        for i in 0..12u16 {
            session(&mut r, f64::from(i) * 5.0, "203.0.113.8", SERVER, 44000 + i, 22, 500_000, b"", 3.0);
        }
        assert!(r.end().is_empty());
        assert!(!r.det.claims.held("203.0.113.6".parse().unwrap(), 21), "working logins are not claimed");
    }

    #[test]
    fn across_hosts_only_when_the_source_comes_back_to_them() {
        let mut r = rig();
        // A banner sweep: one session per host.
        for h in 1..=40u8 {
            session(
                &mut r,
                f64::from(h),
                "203.0.113.9",
                &format!("192.0.2.{h}"),
                45000 + u16::from(h),
                22,
                30,
                b"",
                0.2,
            );
        }
        assert!(r.events().is_empty(), "one connection per host is a sweep");
        // A guessing campaign: two sessions on each of 6 hosts.
        for round in 0..2u16 {
            for h in 1..=6u8 {
                let t = 100.0 + f64::from(round) * 10.0 + f64::from(h);
                session(
                    &mut r,
                    t,
                    GUESSER,
                    &format!("192.0.2.{h}"),
                    46000 + round * 10 + u16::from(h),
                    22,
                    2000,
                    b"",
                    3.0,
                );
            }
        }
        let ev = r.end();
        let fin = ev.iter().find(|e| d(e)["status"] == "final").expect("a campaign");
        assert_eq!(fin["src_ip"], GUESSER);
        assert_eq!(d(fin)["targets"], 6);
        assert!(d(fin)["target"].is_null());
        assert!(fin["summary"].as_str().unwrap().contains("on 6 hosts"), "{}", fin["summary"]);
    }

    #[test]
    fn unanswered_syns_and_retransmissions_make_no_entry() {
        let mut r = rig();
        for i in 0..500u16 {
            let p = testutil::tcp(
                s(f64::from(i) * 0.01),
                &format!("198.51.100.{}", i % 200),
                SERVER,
                (1024 + i, 22),
                SYN,
                9,
                0,
            );
            r.feed_owned(p);
            r.feed_owned(p);
        }
        r.tick(100.0);
        assert_eq!(r.det.len(), 0, "timed out, no session: nothing kept");
        assert!(r.end().is_empty());
    }

    #[test]
    fn cleartext_replies_are_read_from_their_first_bytes() {
        let h = |b: &[u8]| {
            let mut x = [0u8; 8];
            x[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
            x
        };
        assert_eq!(reply(Speaks::Ftp, &h(b"530 Login"), 20), Some(Reply::Failed));
        assert_eq!(reply(Speaks::Ftp, &h(b"230-Welcome"), 20), Some(Reply::Success));
        assert_eq!(reply(Speaks::Ftp, &h(b"220 ready"), 20), Some(Reply::Other));
        assert_eq!(reply(Speaks::Ftp, &h(b"hello"), 20), None);
        assert_eq!(reply(Speaks::Smtp, &h(b"535 5.7.8"), 20), Some(Reply::Failed));
        assert_eq!(reply(Speaks::Pop3, &h(b"-ERR [AUTH]"), 20), Some(Reply::Failed));
        assert_eq!(reply(Speaks::Imap, &h(b"a001 NO [AUTH"), 20), Some(Reply::Failed));
        assert_eq!(reply(Speaks::Imap, &h(b"* OK IMAP"), 20), Some(Reply::Other));
        assert_eq!(reply(Speaks::Mysql, &[0x48, 0, 0, 2, 0xff, 0x15, 0x04, b'#'], 76), Some(Reply::Failed));
        assert_eq!(reply(Speaks::Mysql, &[7, 0, 0, 2, 0, 0, 0, 2], 11), Some(Reply::Success));
        assert_eq!(reply(Speaks::Mysql, &[0x4a, 0, 0, 0, 0x0a, b'8', b'.', b'0'], 78), Some(Reply::Other));
        assert_eq!(reply(Speaks::Postgres, &h(b"E\x00\x00\x00\x60SFATAL"), 97), Some(Reply::Failed));
        assert_eq!(reply(Speaks::Opaque, &h(b"530 Login"), 20), None);
    }
}

#[cfg(test)]
mod rules_tests {
    use super::BruteForceRules;
    use crate::config::schema::Section;

    #[test]
    fn rules_section_checks_ranges_and_order() {
        let r = BruteForceRules::parse("x", "[brute_force]\nports = [22, 2222]\nmin_connections = 20\n").unwrap();
        assert_eq!((r.ports.clone(), r.min_connections), (vec![22, 2222], 20));
        let e = BruteForceRules::parse("rules/picket.toml", "[brute_force]\nmin_connections = 2\n").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.to_string().contains("min_connections"), "{e}");
        let e = BruteForceRules::parse("x", "[brute_force]\nports = [0]\n").unwrap_err();
        assert!(e.to_string().contains("ports"), "{e}");
        let e = BruteForceRules::parse("x", "[brute_force]\nwindow_s = 30.0\n").unwrap_err();
        assert!(e.to_string().contains("max_session_s"), "{e}");
    }
}
