//! SIGNATURES.md section 9's severity: (criticality + lethality) -
//! (system countermeasures + network countermeasures), each term 1..5, so
//! -8..+8. The target terms are asset data (`rules/assets.toml`, `assets`);
//! lethality is looked up here from what the detection found (a `Fact`) in
//! the `[lethality]` table of `picket.toml`, then lowered by
//! `not_offered_discount` when the service inventory knows the target does
//! not offer the probed service.
//!
//! A detector scores an event with one call, `cx.judge(asset, service,
//! fact)`, and puts the result on its event with `EventBuilder::judged`:
//! `severity`, `severity_terms` (the four numbers, the asset's name and why
//! lethality has its value) and, for a home target and one port,
//! `target_service`. A new detector adds its facts to `Fact` and
//! `LethalityRules` (worm_phase's are already there).

use super::inventory::table::{Inventory, TargetService};
use crate::assets::AssetTable;
use crate::homenet::HomeNet;
use crate::output::event::Judged;
use serde_json::json;
use std::net::IpAddr;

crate::rules_section! {
    /// SIGNATURES.md section 9: lethality (1..5) of what a detection found; severity = (criticality + lethality) - (system + network countermeasures), target terms in assets.toml.
    pub struct LethalityRules["lethality"] {
        /// SIGNATURES.md section 5: one host's NetBIOS name looked up (a Windows box browsing)
        netbios_lookup: i64 = 1, ints(1, 5);
        /// SIGNATURES.md section 5: names looked up on several hosts
        netbios_several: i64 = 2, ints(1, 5);
        /// SIGNATURES.md section 5: a name lookup followed by SMB to the host
        netbios_lookup_then_smb: i64 = 3, ints(1, 5);
        /// SIGNATURES.md section 5: a NetBIOS name scan (nbtscan, a port scan of 137)
        netbios_scan: i64 = 3, ints(1, 5);
        /// SIGNATURES.md section 5: a NetBIOS scan followed by SMB: the worm's pattern
        netbios_scan_then_smb: i64 = 5, ints(1, 5);
        /// SIGNATURES.md section 1: a client retrying or polling one service (syn_retry, periodic_probe, source_port_sequence)
        retrying_client: i64 = 1, ints(1, 5);
        /// SIGNATURES.md section 1: a verdict of beacon_or_misconfigured_client
        beacon_or_misconfigured: i64 = 2, ints(1, 5);
        /// SIGNATURES.md section 1: a verdict of beacon (an implant calling home)
        beacon: i64 = 3, ints(1, 5);
        /// SIGNATURES.md section 3: a traceroute
        traceroute: i64 = 1, ints(1, 5);
        /// SIGNATURES.md section 2: a ping or port sweep over many hosts
        host_sweep: i64 = 1, ints(1, 5);
        /// SIGNATURES.md section 2: a port scan that found no open port
        port_scan: i64 = 2, ints(1, 5);
        /// SIGNATURES.md section 2: a port scan that found open ports (high)
        port_scan_open: i64 = 4, ints(1, 5);
        /// SIGNATURES.md section 6: a decoy scan (the real scanner hides among decoys)
        decoy_scan: i64 = 2, ints(1, 5);
        /// SIGNATURES.md section 7: a trojan or backdoor port probed, never answered
        trojan_probe: i64 = 2, ints(1, 5);
        /// SIGNATURES.md section 7: a trojan probe at a host that answers on that port (high)
        trojan_probe_answered: i64 = 4, ints(1, 5);
        /// SIGNATURES.md section 7: a proxy hunter or sscan's probes
        known_scanner_probe: i64 = 2, ints(1, 5);
        /// SIGNATURES.md section 2: password guessing without a success
        brute_force: i64 = 3, ints(1, 5);
        /// SIGNATURES.md section 2: password guessing with a likely success
        brute_force_success: i64 = 4, ints(1, 5);
        /// SIGNATURES.md section 4: a SYN flood or a reflection/amplification flood
        flood: i64 = 3, ints(1, 5);
        /// SIGNATURES.md section 4: smurf or fraggle
        smurf: i64 = 3, ints(1, 5);
        /// SIGNATURES.md section 7: an anomaly (bogon source, backscatter, low-to-low ports, fragments...)
        anomaly: i64 = 2, ints(1, 5);
        /// SIGNATURES.md section 7: source routing, ICMP redirect or router advertisement (traffic steering)
        anomaly_steering: i64 = 3, ints(1, 5);
        /// SIGNATURES.md section 7: port 0 (OS fingerprinting)
        port_zero: i64 = 1, ints(1, 5);
        /// SIGNATURES.md section 8: a worm sentry's phase I (200 attempts in a day)
        worm_phase_1: i64 = 3, ints(1, 5);
        /// SIGNATURES.md section 8: phase II (1,000 in a day)
        worm_phase_2: i64 = 4, ints(1, 5);
        /// SIGNATURES.md section 8: phase III (5,000 in a day, or 1,000 in a minute): high
        worm_phase_3: i64 = 5, ints(1, 5);
        /// SIGNATURES.md section 9: taken off (down to 1) when the target does not offer the probed service
        not_offered_discount: i64 = 1, ints(0, 4);
    }
}

/// What a detection found: the row of `[lethality]` that scores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fact {
    NetbiosLookup,
    NetbiosSeveral,
    NetbiosLookupThenSmb,
    NetbiosScan,
    NetbiosScanThenSmb,
    RetryingClient,
    BeaconOrMisconfigured,
    Beacon,
    Traceroute,
    HostSweep,
    PortScan,
    PortScanOpen,
    DecoyScan,
    TrojanProbe,
    TrojanProbeAnswered,
    KnownScannerProbe,
    BruteForce,
    BruteForceSuccess,
    Flood,
    Smurf,
    Anomaly,
    AnomalySteering,
    PortZero,
    WormPhase1,
    WormPhase2,
    WormPhase3,
}

impl Fact {
    /// Worm sentry phase 1, 2 or 3 (anything above 3 is 3).
    pub fn worm_phase(phase: u8) -> Fact {
        match phase {
            0 | 1 => Fact::WormPhase1,
            2 => Fact::WormPhase2,
            _ => Fact::WormPhase3,
        }
    }

    /// The key in `[lethality]` and what it means, for `severity_terms.why`.
    pub fn row(self) -> (&'static str, &'static str) {
        match self {
            Fact::NetbiosLookup => ("netbios_lookup", "one NetBIOS name lookup"),
            Fact::NetbiosSeveral => ("netbios_several", "NetBIOS lookups of several hosts"),
            Fact::NetbiosLookupThenSmb => ("netbios_lookup_then_smb", "a NetBIOS lookup followed by SMB"),
            Fact::NetbiosScan => ("netbios_scan", "a NetBIOS name scan"),
            Fact::NetbiosScanThenSmb => ("netbios_scan_then_smb", "a NetBIOS scan followed by SMB"),
            Fact::RetryingClient => ("retrying_client", "a client retrying or polling one service"),
            Fact::BeaconOrMisconfigured => ("beacon_or_misconfigured", "a beacon or a misconfigured client"),
            Fact::Beacon => ("beacon", "a beacon calling home"),
            Fact::Traceroute => ("traceroute", "a traceroute"),
            Fact::HostSweep => ("host_sweep", "a sweep over many hosts"),
            Fact::PortScan => ("port_scan", "a port scan that found no open port"),
            Fact::PortScanOpen => ("port_scan_open", "a port scan that found open ports"),
            Fact::DecoyScan => ("decoy_scan", "a decoy scan"),
            Fact::TrojanProbe => ("trojan_probe", "a trojan or backdoor port probed, never answered"),
            Fact::TrojanProbeAnswered => {
                ("trojan_probe_answered", "a trojan or backdoor port probed at a host that answers on it")
            }
            Fact::KnownScannerProbe => ("known_scanner_probe", "a known scanner's probes"),
            Fact::BruteForce => ("brute_force", "password guessing"),
            Fact::BruteForceSuccess => ("brute_force_success", "password guessing with a likely success"),
            Fact::Flood => ("flood", "a flood"),
            Fact::Smurf => ("smurf", "a smurf or fraggle flood"),
            Fact::Anomaly => ("anomaly", "an anomalous packet"),
            Fact::AnomalySteering => {
                ("anomaly_steering", "traffic steering (source route, redirect, router advertisement)")
            }
            Fact::PortZero => ("port_zero", "port 0 (OS fingerprinting)"),
            Fact::WormPhase1 => ("worm_phase_1", "worm sentry phase I"),
            Fact::WormPhase2 => ("worm_phase_2", "worm sentry phase II"),
            Fact::WormPhase3 => ("worm_phase_3", "worm sentry phase III"),
        }
    }

    /// The fact's lethality in the rules.
    pub fn lethality(self, r: &LethalityRules) -> i64 {
        match self {
            Fact::NetbiosLookup => r.netbios_lookup,
            Fact::NetbiosSeveral => r.netbios_several,
            Fact::NetbiosLookupThenSmb => r.netbios_lookup_then_smb,
            Fact::NetbiosScan => r.netbios_scan,
            Fact::NetbiosScanThenSmb => r.netbios_scan_then_smb,
            Fact::RetryingClient => r.retrying_client,
            Fact::BeaconOrMisconfigured => r.beacon_or_misconfigured,
            Fact::Beacon => r.beacon,
            Fact::Traceroute => r.traceroute,
            Fact::HostSweep => r.host_sweep,
            Fact::PortScan => r.port_scan,
            Fact::PortScanOpen => r.port_scan_open,
            Fact::DecoyScan => r.decoy_scan,
            Fact::TrojanProbe => r.trojan_probe,
            Fact::TrojanProbeAnswered => r.trojan_probe_answered,
            Fact::KnownScannerProbe => r.known_scanner_probe,
            Fact::BruteForce => r.brute_force,
            Fact::BruteForceSuccess => r.brute_force_success,
            Fact::Flood => r.flood,
            Fact::Smurf => r.smurf,
            Fact::Anomaly => r.anomaly,
            Fact::AnomalySteering => r.anomaly_steering,
            Fact::PortZero => r.port_zero,
            Fact::WormPhase1 => r.worm_phase_1,
            Fact::WormPhase2 => r.worm_phase_2,
            Fact::WormPhase3 => r.worm_phase_3,
        }
    }
}

/// Everything scoring needs, borrowed from `Shared`.
pub struct Scorer<'a> {
    pub lethality: &'a LethalityRules,
    pub assets: &'a AssetTable,
    pub home: &'a HomeNet,
    pub inventory: &'a Inventory,
}

impl Scorer<'_> {
    /// The address an event is scored on: its target when that is a home
    /// host (or there is no home net), else the source when that is one
    /// (an inside host misbehaving is the asset at stake), else the target.
    pub fn asset_of(&self, src: IpAddr, dst: IpAddr) -> IpAddr {
        if self.home.is_empty() || self.home.contains(dst) || !self.home.contains(src) { dst } else { src }
    }

    /// Scores one event. `service` (protocol, port) is the one service the
    /// detection is about, when there is one: for a home `asset` it is
    /// looked up in the service inventory as of packet time `known_through`.
    pub fn judge(&self, asset: IpAddr, service: Option<(u8, u16)>, fact: Fact, known_through: i64) -> Judged {
        let in_home = self.home.is_empty() || self.home.contains(asset);
        let (name, t) = self.assets.lookup(asset, in_home);
        let target_service = match service {
            Some((proto, port)) if in_home => Some(self.inventory.target_service(asset, proto, port, known_through)),
            _ => None,
        };
        // A trojan port probed at a host seen serving it: as if answered.
        let fact = match (fact, target_service) {
            (Fact::TrojanProbe, Some(TargetService::Offered)) => Fact::TrojanProbeAnswered,
            _ => fact,
        };
        let (key, what) = fact.row();
        let base = fact.lethality(self.lethality);
        let mut lethality = base;
        let mut why = format!("{what}: {key} = {base}");
        if let (Some(TargetService::NotOffered), Some((proto, port))) = (target_service, service) {
            let d = self.lethality.not_offered_discount;
            lethality = (base - d).max(1);
            if lethality < base {
                why.push_str(&format!(
                    ", minus {} as {asset} does not offer {}/{port}",
                    base - lethality,
                    if proto == 17 { "udp" } else { "tcp" }
                ));
            }
        }
        let severity = (t.criticality + lethality) - (t.system_countermeasures + t.network_countermeasures);
        Judged {
            severity,
            terms: json!({
                "criticality": t.criticality,
                "lethality": lethality,
                "system_countermeasures": t.system_countermeasures,
                "network_countermeasures": t.network_countermeasures,
                "asset": name,
                "why": why,
            }),
            target_service: target_service.map(TargetService::name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::inventory::table::InventoryRules;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const ASSETS: &str = "[home]\ncriticality = 2\nsystem_countermeasures = 2\nnetwork_countermeasures = 3\n\
        [outside]\ncriticality = 1\nsystem_countermeasures = 1\nnetwork_countermeasures = 1\n\
        [[asset]]\ncidr = \"192.0.2.0/24\"\nname = \"dmz\"\ncriticality = 4\nsystem_countermeasures = 2\nnetwork_countermeasures = 1\n\
        [[asset]]\ncidr = \"192.0.2.25\"\nname = \"mail\"\ncriticality = 5\nsystem_countermeasures = 1\nnetwork_countermeasures = 1\n";

    fn scorer_parts() -> (LethalityRules, AssetTable, HomeNet, Inventory) {
        let assets = AssetTable::parse("assets.toml", ASSETS).unwrap();
        let home = HomeNet::parse("192.0.2.0/24,10.0.0.0/8").unwrap();
        (LethalityRules::default(), assets, home.clone(), Inventory::new(&InventoryRules::default(), home, 1, false))
    }

    #[test]
    fn severity_is_criticality_plus_lethality_minus_countermeasures() {
        let (l, a, h, inv) = scorer_parts();
        let s = Scorer { lethality: &l, assets: &a, home: &h, inventory: &inv };
        // mail: (5 + 5) - (1 + 1) = 8, the top of the scale.
        let j = s.judge(ip("192.0.2.25"), None, Fact::WormPhase3, i64::MAX);
        assert_eq!(j.severity, 8);
        assert_eq!(j.terms["asset"], "mail");
        assert_eq!(j.terms["lethality"], 5);
        assert!(j.terms["why"].as_str().unwrap().contains("worm_phase_3 = 5"), "{}", j.terms);
        // dmz: (4 + 2) - (2 + 1) = 3.
        assert_eq!(s.judge(ip("192.0.2.7"), None, Fact::PortScan, i64::MAX).severity, 3);
        // The rest of the home net: (2 + 1) - (2 + 3) = -2.
        let j = s.judge(ip("10.1.2.3"), None, Fact::NetbiosLookup, i64::MAX);
        assert_eq!((j.severity, j.terms["asset"].as_str()), (-2, Some("home net")));
        // Outside: (1 + 4) - (1 + 1) = 3.
        assert_eq!(s.judge(ip("198.51.100.1"), None, Fact::PortScanOpen, i64::MAX).severity, 3);
        // The bottom of the scale needs 1 + 1 - (5 + 5).
        let low = AssetTable::parse(
            "x",
            "[home]\ncriticality = 1\nsystem_countermeasures = 5\nnetwork_countermeasures = 5\n",
        )
        .unwrap();
        let s = Scorer { lethality: &l, assets: &low, home: &h, inventory: &inv };
        assert_eq!(s.judge(ip("10.0.0.1"), None, Fact::Traceroute, i64::MAX).severity, -8);
    }

    #[test]
    fn the_asset_is_the_home_side() {
        let (l, a, h, inv) = scorer_parts();
        let s = Scorer { lethality: &l, assets: &a, home: &h, inventory: &inv };
        assert_eq!(s.asset_of(ip("198.51.100.1"), ip("192.0.2.25")), ip("192.0.2.25"), "inbound: the target");
        assert_eq!(s.asset_of(ip("192.0.2.25"), ip("198.51.100.1")), ip("192.0.2.25"), "outbound: the inside host");
        assert_eq!(s.asset_of(ip("198.51.100.1"), ip("203.0.113.1")), ip("203.0.113.1"));
    }

    #[test]
    fn a_service_the_host_does_not_offer_lowers_lethality() {
        let (l, a, h, inv) = scorer_parts();
        let s = Scorer { lethality: &l, assets: &a, home: &h, inventory: &inv };
        let (mail, client) = (ip("192.0.2.25"), ip("198.51.100.9"));
        // Never seen: unknown, no discount. dmz-wide mail: (5 + 2) - 2 = 5.
        let j = s.judge(mail, Some((6, 12345)), Fact::TrojanProbe, i64::MAX);
        assert_eq!((j.target_service, j.severity), (Some("unknown"), 5));
        // The host answers on 25 only: 12345 is not offered, lethality 2 - 1.
        inv.learn(mail, 6, 25, client, 1_000_000);
        let j = s.judge(mail, Some((6, 12345)), Fact::TrojanProbe, i64::MAX);
        assert_eq!((j.target_service, j.severity), (Some("not_offered"), 4));
        assert!(j.terms["why"].as_str().unwrap().contains("does not offer tcp/12345"), "{}", j.terms);
        // A probe of a port the host serves is as bad as one it answered.
        let j = s.judge(mail, Some((6, 25)), Fact::TrojanProbe, i64::MAX);
        assert_eq!((j.target_service, j.severity), (Some("offered"), 7));
        assert_eq!(j.terms["lethality"], 4);
        // The floor is 1: a lookup stays 1.
        let j = s.judge(mail, Some((17, 137)), Fact::NetbiosLookup, i64::MAX);
        assert_eq!((j.target_service, j.terms["lethality"].as_i64()), (Some("not_offered"), Some(1)));
        // Known only after the fact: at an earlier packet time it was unknown.
        assert_eq!(s.judge(mail, Some((6, 25)), Fact::TrojanProbe, 1_000_000).target_service, Some("unknown"));
        // No target_service outside the home net.
        assert_eq!(s.judge(client, Some((6, 25)), Fact::TrojanProbe, i64::MAX).target_service, None);
    }
}
