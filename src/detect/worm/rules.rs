//! `[worm_phase]`: the sentries (ports of interest, as data) and the phase
//! ladder's thresholds (SIGNATURES.md section 8).

use crate::config::ConfigError;
use crate::config::schema::Spans;

crate::rules_section! {
    /// SIGNATURES.md section 8: worm early warning. Sentries count, per host, the
    /// attempts that got no answer (SYN without SYN-ACK, UDP without reply) or
    /// that a firewall log denied, one sentry per port of interest plus one for any
    /// port; a host climbs phases I, II and III within a day of packet time.
    pub struct WormPhaseRules["worm_phase"] check(check_worm_phase) {
        /// SIGNATURES.md section 8: turn the detector on or off
        enabled: bool = true;
        /// SIGNATURES.md sections 7 and 8: TCP sentries: SMTP 25, HTTP 80, portmapper 111,
        /// MS RPC 135 (Blaster), NetBIOS 139, IMAP 143 (admw0rm), SMB 445 (Sasser), lpd 515,
        /// mountd 635, MS SQL 1433, NFS 2049, IRC 6667
        tcp_ports: Vec<u16> = vec![25, 80, 111, 135, 139, 143, 445, 515, 635, 1433, 2049, 6667], ints(1, 65_535);
        /// SIGNATURES.md sections 7 and 8: UDP sentries: portmapper 111, mountd 635,
        /// MS SQL monitor 1434 (SQL Slammer), NFS 2049
        udp_ports: Vec<u16> = vec![111, 635, 1434, 2049], ints(1, 65_535);
        /// SIGNATURES.md section 8: the port-independent sentry "any" (catches P2P and
        /// worms on ports without a sentry)
        any_sentry: bool = true;
        /// SIGNATURES.md section 8: phase I (early warning, false positives possible):
        /// unanswered attempts within a day
        phase1: u32 = 200, ints(1, 100_000_000);
        /// SIGNATURES.md section 8: phase II (it persists: look at the host)
        phase2: u32 = 1000, ints(1, 100_000_000);
        /// SIGNATURES.md section 8: phase III (aggressive: disconnect it)
        phase3: u32 = 5000, ints(1, 100_000_000);
        /// SIGNATURES.md section 8: more unanswered attempts than this within a minute go
        /// straight to phase III
        burst_per_minute: u32 = 1000, ints(1, 100_000_000);
        /// SIGNATURES.md section 8: Distinct targets a host must have tried before any phase: a worm tries many
        /// addresses, a client retrying one server all day does not (syn_retry's case)
        min_targets: u32 = 10, ints(1, 1_000_000);
        /// SIGNATURES.md section 8: Seconds an attempt waits for its SYN-ACK or UDP reply before it counts as
        /// unanswered (a firewall log's denial never gets one)
        answer_wait_s: f64 = 3.0, above(0.0, 60.0);
        /// SIGNATURES.md section 8: Seconds an unanswered (host, target, port) stays settled: packets to it meanwhile
        /// (retransmissions, a one-way stream) belong to the same attempt
        hold_s: f64 = 300.0, above(0.0, 86_400.0);
        /// SIGNATURES.md section 8: Troubled hosts listed in a worm_summary (the section's "top 20 violators")
        summary_hosts: usize = 20, ints(1, 1000);
        /// SIGNATURES.md section 8: Attempts waiting for an answer, across workers (the oldest is settled early when full)
        max_pending: usize = 8192, entries();
        /// SIGNATURES.md section 8: (host, sentry) counters in the aggregator, promoted after a second attempt
        max_tracked: usize = 4096, entries();
        /// SIGNATURES.md section 8: (host, sentry) keys seen once
        max_probation: usize = 8192, entries();
    }
}

/// The phases must climb.
fn check_worm_phase(r: &WormPhaseRules, s: &Spans) -> Result<(), ConfigError> {
    if r.phase1 >= r.phase2 {
        return Err(s.out_of_order(
            "phase1",
            "phase2",
            format!("phase1 ({}) must be less than phase2 ({})", r.phase1, r.phase2),
        ));
    }
    if r.phase2 >= r.phase3 {
        return Err(s.out_of_order(
            "phase2",
            "phase3",
            format!("phase2 ({}) must be less than phase3 ({})", r.phase2, r.phase3),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod rules_tests {
    use super::*;
    use crate::config::schema::Section;

    #[test]
    fn defaults_and_climbing_phases() {
        let r = <WormPhaseRules as Section>::parse("picket.toml", "[worm_phase]\nphase1 = 100\n").unwrap();
        assert_eq!((r.phase1, r.phase2, r.phase3), (100, 1000, 5000));
        assert!(r.tcp_ports.contains(&445) && r.udp_ports.contains(&1434));
        let e = <WormPhaseRules as Section>::parse("picket.toml", "[worm_phase]\nphase2 = 6000\n").unwrap_err();
        assert!(e.to_string().contains("phase2 (6000) must be less than phase3 (5000)"), "{e}");
        let e = <WormPhaseRules as Section>::parse("picket.toml", "[worm_phase]\ntcp_ports = [0]\n").unwrap_err();
        assert!(e.to_string().contains("tcp_ports"), "{e}");
    }
}
