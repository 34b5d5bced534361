//! TTL zen (SIGNATURES.md section 6) and the sensor's long memory of
//! addresses: for every address a worker owns that has held a real two-way
//! conversation, when it was first seen and the TTL of its conversations
//! (its *baseline*).
//!
//! - An observed TTL (IPv6: hop limit) is an initial TTL minus the hops
//!   travelled. The initial TTL is the next of 32, 64, 128 and 255 at or
//!   above the observed one; the class hints at the operating system.
//! - The baseline is learned only from packets that prove the address is
//!   really there: the initiator's FIN with ACK after the other side has
//!   answered it (SYN-ACK, UDP reply, echo reply; the per-source table
//!   `detect::sources` keeps that flag and the first contact). Probes (SYN,
//!   FIN, NULL, Xmas, bare ACK, UDP) never set it, so a forged source cannot
//!   give itself a baseline by sending packets alone, and a spoofed flood
//!   never enters the memory: it holds only addresses that conversed.
//!   Addresses that only probed are known from the per-source table, for
//!   as long as it keeps them.
//!
//! Bounded by `[decoy_scan] history_max_tracked` (split between workers),
//! as a fair tier (`detect::fair::Tier`; no probation: an address enters
//! only once answered, which a spoofed flood cannot do). When full, a
//! weighted clock picks the victim in O(1) amortised: an address that
//! keeps conversing (more packets, touched since the hand passed) outlives
//! one that conversed once; `evicted` in `state.ttl_history`, a refusal
//! `cap_hits`, and a lost baseline (two packets or more) `lost_detections`.
//! Entries without a conversation for `history_idle_s` expire.

use super::sources::Contact;
use crate::detect::fair::{Tier, Weighted, credit_of};
use crate::detect::keys::AddrKey;
use crate::detect::keys::SWEEP_US;
use crate::stats::{Stats, Table};
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

/// The initial TTL classes of SIGNATURES.md section 6.
pub const CLASSES: [u8; 4] = [32, 64, 128, 255];

/// The likely initial TTL of an observed TTL: the next class at or above it.
pub fn initial_ttl(observed: u8) -> u8 {
    CLASSES.iter().copied().find(|c| *c >= observed).unwrap_or(255)
}

/// Hops between the sender and the sensor, assuming `initial_ttl`.
pub fn hops(observed: u8) -> u8 {
    initial_ttl(observed) - observed
}

/// A likely operating-system family for an initial TTL class.
pub fn os_family(initial: u8) -> &'static str {
    match initial {
        32 => "old Windows or an old stack",
        64 => "Linux, BSD, macOS or another UNIX",
        128 => "Windows",
        _ => "network equipment or Solaris",
    }
}

/// What the sensor remembers about one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    /// First packet the address sent (any kind): its first contact.
    pub first_us: i64,
    pub last_us: i64,
    /// The other side has sent it an answer (SYN-ACK, UDP).
    pub answered: bool,
    /// First conversation packet (see the module doc), if any.
    pub conv_first_us: Option<i64>,
    /// TTL range of its conversation packets: the baseline.
    pub conv_ttl_min: u8,
    pub conv_ttl_max: u8,
    pub conv_packets: u32,
}

impl Weighted for Memory {
    fn credit(&self) -> u8 {
        credit_of(u64::from(self.conv_packets))
    }
    fn pinned(&self) -> bool {
        false
    }
    fn evidence(&self) -> bool {
        self.conv_packets >= 2
    }
}

impl Memory {
    pub fn new(ts: i64) -> Memory {
        Memory {
            first_us: ts,
            last_us: ts,
            answered: false,
            conv_first_us: None,
            conv_ttl_min: u8::MAX,
            conv_ttl_max: 0,
            conv_packets: 0,
        }
    }

    /// The baseline TTL range, when the address has held a conversation.
    pub fn baseline(&self) -> Option<(u8, u8)> {
        (self.conv_packets > 0).then_some((self.conv_ttl_min, self.conv_ttl_max))
    }
}

/// The per-worker long memory.
pub struct TtlHistory {
    map: Tier<AddrKey, Memory>,
    idle_us: i64,
    last_sweep_us: i64,
}

impl TtlHistory {
    pub fn new(cap: usize, idle_s: f64) -> TtlHistory {
        TtlHistory { map: Tier::new(cap.max(1)), idle_us: (idle_s * 1e6) as i64, last_sweep_us: i64::MIN }
    }

    /// A conversation packet `addr` sent (see the module doc). `contact` is
    /// what the per-source table knows of it: an address enters the memory
    /// here, once answered, with the first contact the table saw.
    #[inline]
    pub fn conversation(&mut self, addr: IpAddr, ts: i64, ttl: u8, contact: Option<Contact>, stats: &Stats) {
        let m = match self.map.get_mut(&AddrKey(addr)) {
            Some(m) => m,
            None => {
                let Some(c) = contact.filter(|c| c.answered) else { return };
                let mut m = Memory::new(c.first_us.min(ts));
                m.answered = true;
                if !self.map.insert(AddrKey(addr), m).count(stats.table(Table::TtlHistory), Memory::evidence) {
                    return;
                }
                let Some(m) = self.map.get_mut(&AddrKey(addr)) else { return };
                m
            }
        };
        m.last_us = m.last_us.max(ts);
        m.conv_first_us = Some(m.conv_first_us.map_or(ts, |t| t.min(ts)));
        m.conv_ttl_min = m.conv_ttl_min.min(ttl);
        m.conv_ttl_max = m.conv_ttl_max.max(ttl);
        m.conv_packets = m.conv_packets.saturating_add(1);
    }

    pub fn get(&self, addr: IpAddr) -> Option<&Memory> {
        self.map.get(&AddrKey(addr))
    }

    /// Forgets addresses idle for longer than the idle time (one sweep per
    /// `SWEEP_US` or per hundredth of the idle time, whichever is longer:
    /// the memory is large and its idle time long).
    pub fn expire(&mut self, now: i64, stats: &Stats) {
        if now.saturating_sub(self.last_sweep_us) < SWEEP_US.max(self.idle_us / 100) {
            return;
        }
        self.last_sweep_us = now;
        let idle = self.idle_us;
        let gone = self.map.retain(|_, m| now.saturating_sub(m.last_us) <= idle);
        stats.table(Table::TtlHistory).expired.fetch_add(gone, Relaxed);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_ttl_classes_and_hops() {
        for (seen, init, h) in [(126, 128, 2), (63, 64, 1), (49, 64, 15), (64, 64, 0), (250, 255, 5), (30, 32, 2)] {
            assert_eq!(initial_ttl(seen), init, "{seen}");
            assert_eq!(hops(seen), h, "{seen}");
        }
        assert_eq!(initial_ttl(129), 255);
        assert_eq!(hops(0), 32);
        assert_eq!(os_family(128), "Windows");
    }

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn answered(first_us: i64) -> Option<Contact> {
        Some(Contact { first_us, last_us: first_us, answered: true })
    }

    #[test]
    fn only_an_answered_conversation_enters_the_memory_and_sets_the_baseline() {
        let st = Stats::default();
        let mut h = TtlHistory::new(10, 3600.0);
        let x = a("203.0.113.10");
        // Data before any answer (a forged source?): nothing is remembered.
        let unanswered = Some(Contact { first_us: 0, last_us: 0, answered: false });
        h.conversation(x, 1, 126, unanswered, &st);
        h.conversation(x, 1, 126, None, &st);
        assert!(h.get(x).is_none());
        h.conversation(x, 3, 126, answered(0), &st);
        h.conversation(x, 4, 125, None, &st); // known now: the table need not know it any more
        let m = h.get(x).unwrap();
        assert_eq!(m.baseline(), Some((125, 126)));
        assert_eq!((m.first_us, m.conv_first_us, m.conv_packets), (0, Some(3), 2), "first contact from the table");
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn a_full_memory_keeps_busy_addresses_and_counts() {
        let st = Stats::default();
        let mut h = TtlHistory::new(16, 3600.0);
        let busy = a("192.0.2.10");
        for i in 0..16u32 {
            let x = IpAddr::V4((0x0a00_0000 + i).into());
            h.conversation(x, i64::from(i), 64, answered(0), &st);
        }
        // Addresses that converse once each keep coming; one keeps talking.
        for k in 0..1_000u32 {
            h.conversation(busy, 100 + i64::from(k), 64, answered(0), &st);
            h.conversation(IpAddr::V4((0x0b00_0000 + k).into()), 100 + i64::from(k), 64, answered(0), &st);
        }
        assert!(h.get(busy).is_some_and(|m| m.conv_packets > 900), "the busy address kept its baseline");
        assert_eq!(h.len(), 16);
        let t = st.table(Table::TtlHistory);
        assert!(t.evicted.load(Relaxed) > 900, "{}", t.evicted.load(Relaxed));
        assert_eq!(t.lost_detections.load(Relaxed), 0, "one-packet addresses hold no baseline worth counting");
        h.expire(i64::MAX / 2, &st);
        assert!(h.is_empty());
        assert!(t.expired.load(Relaxed) > 0);
    }
}
