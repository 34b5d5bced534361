//! Firewall records as packets (issue 4, "Detect from logs"): turns one
//! [`FwRecord`] into the [`PacketSummary`] the behaviour detectors read, so
//! `picket fwlog` runs the same `syn_retry`, `periodic_probe` and
//! `source_port_sequence` code on a log as `replay` runs on a capture.
//!
//! A log is weaker evidence than the wire, and the summary says how:
//! - only denials are fed (deny, drop, reject, alert, log). An accepted
//!   connection may well have been answered, and the log cannot say;
//! - a TCP record without flags (ASA 106023, PortSentry) is taken as a
//!   SYN: a stateful firewall logs a denied connection at its first packet;
//! - without a sequence number, a repeat from the same source port counts as
//!   a retransmission and a new source port as a new attempt;
//! - a missing TTL is 0 and a missing IP ID is 0 (no TTL-based evidence);
//! - no answers: a log holds no SYN-ACK, RST or ICMP error.
//!
//! [`Evidence`] remembers, per source, which of those fields its records
//! lacked, so the output thread can say so in each event's summary.

use super::record::{Action, FwRecord, Unfed};
use crate::decode::summary::{IcmpInfo, IpInfo, L4, PacketSummary, TcpInfo, TcpOpts, UdpInfo, tcpflag};
use crate::stats::Stats;
use dashmap::DashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

/// Fields a record lacked (bits of [`Fed::missing`]).
pub mod missing {
    pub const TCP_FLAGS: u8 = 1 << 0;
    pub const SEQ: u8 = 1 << 1;
    pub const IP_ID: u8 = 1 << 2;
    pub const TTL: u8 = 1 << 3;
}

/// A record made into a packet.
#[derive(Clone, Copy, Debug)]
pub struct Fed {
    pub pkt: PacketSummary,
    /// `missing::*` bits for the fields the record lacked.
    pub missing: u8,
}

/// The packet a record stands for, or why there is none.
pub fn to_summary(r: &FwRecord) -> Result<Fed, Unfed> {
    if r.action == Action::Accept {
        return Err(Unfed::Accepted);
    }
    let (Some(ts), Some(proto), Some(src), Some(dst)) = (r.ts_us, r.proto, r.src, r.dst) else {
        return Err(Unfed::NoFlow);
    };
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(Unfed::NoFlow);
    }
    let mut m = 0u8;
    let ttl = r.ttl.unwrap_or_else(|| {
        m |= missing::TTL;
        0
    });
    let ip_id = r.ip_id.unwrap_or_else(|| {
        m |= missing::IP_ID;
        0
    });
    let v6 = src.is_ipv6();
    let header = if v6 { 40 } else { 20 };
    let total_len = r.len.unwrap_or(header);
    let mut p = PacketSummary::new(ts, total_len, total_len);
    p.ether_type = if v6 { 0x86DD } else { 0x0800 };
    p.ip = Some(IpInfo { src, dst, ttl, ip_id, df: false, mf: false, frag_offset: 0, options: 0, proto, total_len });
    let ports = r.sport.zip(r.dport);
    match proto {
        6 => {
            let (sport, dport) = ports.ok_or(Unfed::NoPorts)?;
            let flags = r.tcp_flags.map(u16::from).unwrap_or_else(|| {
                m |= missing::TCP_FLAGS;
                tcpflag::SYN
            });
            let seq = r.seq.unwrap_or_else(|| {
                m |= missing::SEQ;
                0
            });
            p.l4 = L4::Tcp(TcpInfo { sport, dport, flags, seq, ack: 0, window: 0, opts: TcpOpts::default() });
            // A SYN's payload is rare and the log's length counts options too.
            p.payload_len = 0;
        }
        17 => {
            let (sport, dport) = ports.ok_or(Unfed::NoPorts)?;
            p.l4 = L4::Udp(UdpInfo { sport, dport });
            p.payload_len = total_len.saturating_sub(header + 8);
        }
        1 | 58 => {
            let (icmp_type, code) = r.icmp.ok_or(Unfed::NoFlow)?;
            p.l4 = L4::Icmp(IcmpInfo { v6: proto == 58, icmp_type, code, echo: None, quoted: None });
        }
        _ => p.l4 = L4::Other,
    }
    Ok(Fed { pkt: p, missing: m })
}

/// Sources remembered with their missing-field bits; beyond, events about
/// new sources get the general caveat.
const MAX_SOURCES: usize = 1 << 20;

/// What the log lacked, per source (see the module doc). Written by the
/// reader, read by the output thread.
#[derive(Debug, Default)]
pub struct Evidence {
    by_src: DashMap<IpAddr, u8>,
}

impl Evidence {
    /// Converts `r`, counts the outcome in `stats` and remembers its gaps.
    pub fn feed(&self, r: &FwRecord, stats: &Stats) -> Option<PacketSummary> {
        match to_summary(r) {
            Ok(f) => {
                stats.fw_fed.fetch_add(1, Relaxed);
                let src = f.pkt.ip.map(|i| i.src)?;
                match self.by_src.get_mut(&src) {
                    Some(mut bits) => *bits |= f.missing,
                    None if self.by_src.len() < MAX_SOURCES => {
                        self.by_src.insert(src, f.missing);
                    }
                    None => {
                        stats.fw_sources_untracked.fetch_add(1, Relaxed);
                    }
                }
                Some(f.pkt)
            }
            Err(why) => {
                if let Some(n) = Unfed::ALL.iter().position(|u| *u == why).and_then(|i| stats.fw_not_fed.get(i)) {
                    n.fetch_add(1, Relaxed);
                }
                None
            }
        }
    }

    /// The sentence an event's summary gains, for events about `src`.
    pub fn caveat(&self, src: Option<IpAddr>) -> String {
        let bits = match src.and_then(|s| self.by_src.get(&s).map(|b| *b)) {
            Some(b) => b,
            // Unknown source: say every gap may apply.
            None => missing::TCP_FLAGS | missing::SEQ | missing::IP_ID | missing::TTL,
        };
        let mut gaps = Vec::new();
        if bits & missing::TCP_FLAGS != 0 {
            gaps.push("no TCP flags (each denied TCP record is taken as a SYN)");
        }
        if bits & missing::SEQ != 0 {
            gaps.push("no sequence numbers (a repeat from the same source port counts as a retransmission)");
        }
        match (bits & missing::TTL != 0, bits & missing::IP_ID != 0) {
            (true, true) => gaps.push("no TTLs or IP IDs"),
            (true, false) => gaps.push("no TTLs"),
            (false, true) => gaps.push("no IP IDs"),
            (false, false) => {}
        }
        let mut s = String::from(
            " [From firewall log records, not packets: weaker evidence. A log holds no answers (SYN-ACK, RST, ICMP)",
        );
        if !gaps.is_empty() {
            s.push_str("; these records had ");
            s.push_str(&gaps.join(", "));
        }
        s.push_str(".]");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fwlog::Format;

    fn rec(action: Action, proto: u8) -> FwRecord {
        let mut r = FwRecord::new(Format::Asa, action);
        r.ts_us = Some(1_000_000);
        r.proto = Some(proto);
        r.src = Some("203.0.113.5".parse().unwrap());
        r.dst = Some("192.0.2.10".parse().unwrap());
        r.sport = Some(1024);
        r.dport = Some(158);
        r
    }

    #[test]
    fn a_flagless_tcp_denial_is_a_syn_and_says_what_it_lacked() {
        let f = to_summary(&rec(Action::Deny, 6)).unwrap();
        let t = f.pkt.tcp().unwrap();
        assert!(t.is_connection_attempt());
        assert_eq!((t.sport, t.dport), (1024, 158));
        assert_eq!(f.missing, missing::TCP_FLAGS | missing::SEQ | missing::IP_ID | missing::TTL);
        let ev = Evidence::default();
        assert!(ev.feed(&rec(Action::Deny, 6), &Stats::default()).is_some());
        let c = ev.caveat(Some("203.0.113.5".parse().unwrap()));
        assert!(c.contains("no TCP flags") && c.contains("no sequence numbers"), "{c}");
    }

    #[test]
    fn netfilter_fields_carry_over() {
        let mut r = rec(Action::Drop, 6);
        r.tcp_flags = Some(crate::fwlog::flags::SYN);
        r.ttl = Some(63);
        r.ip_id = Some(4242);
        r.seq = Some(77);
        let f = to_summary(&r).unwrap();
        assert_eq!(f.missing, 0);
        assert_eq!(f.pkt.ip.unwrap().ttl, 63);
        assert_eq!(f.pkt.tcp().unwrap().seq, 77);
        let ev = Evidence::default();
        ev.feed(&r, &Stats::default());
        let c = ev.caveat(Some("203.0.113.5".parse().unwrap()));
        assert!(!c.contains("no TCP flags") && c.contains("no answers"), "{c}");
    }

    #[test]
    fn accepted_portless_and_timeless_records_are_not_fed() {
        assert_eq!(to_summary(&rec(Action::Accept, 6)).unwrap_err(), Unfed::Accepted);
        let mut r = rec(Action::Alert, 6);
        r.sport = None;
        assert_eq!(to_summary(&r).unwrap_err(), Unfed::NoPorts);
        let mut r = rec(Action::Deny, 17);
        r.ts_us = None;
        assert_eq!(to_summary(&r).unwrap_err(), Unfed::NoFlow);
        let stats = Stats::default();
        assert!(Evidence::default().feed(&r, &stats).is_none());
        assert_eq!(stats.fw_not_fed[1].load(Relaxed), 1);
    }
}
