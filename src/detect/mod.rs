//! The detectors. Each one is a file (or a folder) that owns its rules
//! section (declared with `rules_section!`), its state, its events and its
//! unit tests; `Rules` below lists every section and `all()` builds every
//! detector of a worker. What detectors share: `core` (the `Detector`
//! trait, `Shared`, `Ctx`, the lifecycle), `keys` (sketches and table
//! keys), `sources` (the per-source table), `ttl`, `cadence` and `fair` (the fair bounded tables).
//! CONTRIBUTING.md says how to add one.

pub mod agg;
pub mod anomaly;
pub mod brute_force;
pub mod cadence;
pub mod core;
pub mod decoy;
pub mod fair;
pub mod flood;
pub mod general;
pub mod host_sweep;
pub mod inventory;
pub mod keys;
pub mod known_probe;
pub mod netbios;
pub mod periodic;
pub mod port_scan;
pub mod severity;
pub mod smurf;
pub mod sources;
pub mod syn_retry;
#[cfg(test)]
pub mod testrig;
pub mod traceroute;
pub mod ttl;
pub mod worm;

pub use core::{Ctx, Detector, EndReason, Shared, class};
pub use keys::{
    AddrKey, Distinct, Distinct256, Distinct1024, FastMap, PairKey, SWEEP_US, addr_key, hash_pair, sweep_every,
};

use crate::ports::PortTable;

/// Declares `Rules`, every section of `picket.toml` plus the port table:
/// one line per section, in the order of the file.
macro_rules! rules_sections {
    ($($(#[doc = $doc:literal])* $field:ident: $ty:ty,)*) => {
        /// Everything a rules directory configures: each detector's section
        /// of `picket.toml` (the detector declares it) and `ports.toml`.
        #[derive(Clone, Debug)]
        pub struct Rules {
            $( $(#[doc = $doc])* pub $field: $ty, )*
            pub ports: PortTable,
            /// Scanner fingerprints (`scanners.toml`).
            pub scanners: port_scan::tools::ToolTable,
            /// Severity's target terms (`assets.toml`).
            pub assets: crate::assets::AssetTable,
        }

        impl Rules {
            /// The section names, in the order of `picket.toml`.
            pub const SECTIONS: &'static [&'static str] =
                &[$(<$ty as crate::config::schema::Section>::NAME),*];

            /// Reads every section from the text of a `picket.toml`.
            pub fn parse_sections(file: &str, text: &str, ports: PortTable) -> Result<Rules, crate::config::ConfigError> {
                crate::config::check_tables(file, text, Rules::SECTIONS)?;
                Ok(Rules {
                    $( $field: crate::config::schema::Section::parse(file, text)?, )*
                    ports,
                    scanners: Default::default(),
                    assets: Default::default(),
                })
            }

            /// The code's defaults with `ports`.
            pub fn defaults(ports: PortTable) -> Rules {
                Rules { $( $field: <$ty>::default(), )* ports, scanners: Default::default(), assets: Default::default() }
            }

            /// Every section, for the dump and the summary.
            pub fn sections(&self) -> Vec<&dyn crate::config::schema::Described> {
                vec![$(&self.$field),*]
            }
        }
    };
}

rules_sections! {
    general: general::General,
    syn_retry: syn_retry::SynRetryRules,
    traceroute: traceroute::TracerouteRules,
    smurf: smurf::SmurfRules,
    netbios: netbios::NetbiosRules,
    periodic_probe: periodic::PeriodicProbeRules,
    source_port_sequence: periodic::SourcePortSequenceRules,
    decoy_scan: decoy::rules::DecoyScanRules,
    port_scan: port_scan::PortScanRules,
    known_probe: known_probe::KnownProbeRules,
    host_sweep: host_sweep::HostSweepRules,
    anomaly: anomaly::AnomalyRules,
    brute_force: brute_force::BruteForceRules,
    syn_flood: flood::SynFloodRules,
    reflection: flood::ReflectionRules,
    lethality: severity::LethalityRules,
    service_inventory: inventory::InventoryRules,
    worm_phase: worm::WormPhaseRules,
}

/// Every detector of one worker, built from the rules. A new detector is
/// one line here (and one in `rules_sections!` above).
/// `worker` is the worker's index; `inventory_every_s` the live
/// `--inventory-interval`.
pub fn all(shared: &Shared, r: &Rules, worker: usize, inventory_every_s: Option<u32>) -> Vec<Box<dyn Detector>> {
    let update_s = r.general.update_interval_s;
    let cap = |n| shared.per_worker(n);
    // brute_force first: the connections it explains are claimed before
    // syn_retry and periodic (which defer to it) look at them, at the end too.
    let claims = std::sync::Arc::new(brute_force::Claims::default());
    vec![
        Box::new(brute_force::BruteForce::new(
            &r.brute_force,
            cap(r.brute_force.max_tracked),
            cap(r.brute_force.max_probation),
            update_s,
            claims.clone(),
        )),
        Box::new(
            syn_retry::SynRetry::new(
                &r.syn_retry,
                cap(r.syn_retry.max_tracked),
                cap(r.syn_retry.max_probation),
                update_s,
            )
            .with_claims(claims.clone())
            .with_scan_tools(&r.scanners)
            .deferring_trojan_ports(r.known_probe.enabled)
            .flood_rate(r.syn_flood.min_pps),
        ),
        Box::new(traceroute::Traceroute::new(
            &r.traceroute,
            (cap(r.traceroute.max_tracked), cap(r.traceroute.max_probation)),
            update_s,
        )),
        Box::new(smurf::Smurf::new(
            &r.smurf,
            &shared.home,
            (cap(r.smurf.max_tracked), cap(r.smurf.max_probation)),
            update_s,
        )),
        Box::new(netbios::Netbios::new(
            &r.netbios,
            (cap(r.netbios.max_tracked), cap(r.netbios.max_probation)),
            update_s,
        )),
        Box::new(
            periodic::Periodic::new(
                &r.periodic_probe,
                &r.source_port_sequence,
                cap(r.periodic_probe.max_tracked),
                cap(r.periodic_probe.max_probation),
                update_s,
            )
            .with_claims(claims),
        ),
        Box::new(port_scan::PortScan::new(
            &r.port_scan,
            &r.scanners,
            (r.traceroute.udp_port_min, r.traceroute.udp_port_max),
            cap(r.port_scan.max_tracked),
            cap(r.port_scan.max_probation),
            update_s,
        )),
        Box::new(anomaly::Anomaly::new(&r.anomaly, cap(r.anomaly.max_tracked))),
        Box::new(host_sweep::HostSweep::new(
            &r.host_sweep,
            cap(r.host_sweep.max_tracked),
            cap(r.host_sweep.max_probation),
            update_s,
        )),
        Box::new(known_probe::KnownProbe::new(&r.known_probe, &shared.ports, cap(r.known_probe.max_tracked), update_s)),
        Box::new(flood::Flood::new(
            &r.syn_flood,
            &r.reflection,
            cap(r.syn_flood.max_tracked),
            cap(r.syn_flood.max_probation),
            update_s,
        )),
        Box::new(inventory::Learner::new(worker, inventory_every_s)),
    ]
}
