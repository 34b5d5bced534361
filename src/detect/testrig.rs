//! Test harness shared by the detectors' unit tests: drives one detector as
//! a worker does (per-source table first, then the detector), on packet
//! time, and reads its events back as JSON values.
//!
//! Test-only: compiled under #[cfg(test)] (see `detect/mod.rs`), so its
//! unwrap/expect calls fail a test, never a run.

use super::sources::Sources;
use super::{Ctx, Detector, EndReason, Shared};
use crate::decode::summary::PacketSummary;
use crate::detect::Rules;
use crate::homenet::HomeNet;
use crate::output::event::EventLine;
use crate::stats::Stats;
use crossbeam_channel::{Receiver, Sender, unbounded};
use serde_json::Value;
use std::sync::Arc;

/// The lab's home net (pcaps/README.md).
pub const HOME: &str = "192.0.2.0/24,2001:db8:d::/48";

/// Seconds to packet-time microseconds.
pub fn s(t: f64) -> i64 {
    (t * 1e6) as i64
}

/// What a worker shares with its detectors, for `workers` workers, from
/// `rules` and the home net `home`.
pub fn shared(rules: &Rules, home: &str, workers: usize) -> Shared {
    Shared {
        general: rules.general.clone(),
        ports: rules.ports.clone(),
        home: HomeNet::parse(home).expect("test home net"),
        community_id_seed: 0,
        sensors: vec!["test".into()],
        stats: Arc::new(Stats::default()),
        workers,
        from_log: false,
        lethality: rules.lethality.clone(),
        assets: rules.assets.clone(),
        inventory: crate::detect::inventory::Inventory::new(
            &rules.service_inventory,
            HomeNet::parse(home).expect("test home net"),
            workers,
            false,
        ),
        inventory_every_s: None,
    }
}

/// One detector with its worker surroundings.
pub struct Rig<D> {
    pub det: D,
    pub src: Sources,
    pub shared: Shared,
    tx: Sender<EventLine>,
    rx: Receiver<EventLine>,
    pub now: i64,
    /// Packets fed so far (the rig's stand-in for `Ctx::inbound`).
    pub inbound: u64,
    /// Home addresses seen sending (the dispatcher's `dst_spoke` rule).
    spoke: std::collections::HashSet<std::net::IpAddr>,
}

impl<D: Detector> Rig<D> {
    /// Built-in rules changed by `tweak`, home net `HOME`, one worker.
    pub fn with(tweak: impl FnOnce(&mut Rules), build: impl FnOnce(&Shared, &Rules) -> D) -> Rig<D> {
        Rig::with_home(HOME, tweak, build)
    }

    /// As `with`, with the home net `home`.
    pub fn with_home(home: &str, tweak: impl FnOnce(&mut Rules), build: impl FnOnce(&Shared, &Rules) -> D) -> Rig<D> {
        let mut rules = Rules::builtin();
        tweak(&mut rules);
        let shared = shared(&rules, home, 1);
        let (tx, rx) = unbounded();
        let det = build(&shared, &rules);
        Rig { det, src: Sources::new(1000, 600.0), shared, tx, rx, now: 0, inbound: 0, spoke: Default::default() }
    }

    pub fn feed(&mut self, p: PacketSummary) {
        self.now = self.now.max(p.ts_us);
        self.inbound += 1;
        self.src.observe(&p, &self.shared.stats);
        let cx =
            Ctx { shared: &self.shared, out: &self.tx, now: self.now, inbound: self.inbound, known_through: i64::MAX };
        self.det.on_packet(&p, 0, &self.src, &cx);
    }

    /// Feeds `p` marked with its owner and `dst_spoke` as the dispatcher
    /// marks them (`pipeline::dispatch::shard_addr`).
    pub fn feed_owned(&mut self, mut p: PacketSummary) {
        let owner = crate::pipeline::dispatch::shard_addr(&p, &self.shared.home);
        (p.owner_is_src, p.owner_is_dst) = crate::pipeline::dispatch::owner_sides(&p, owner);
        // One worker: every flood role of the packet lives here.
        p.victim = crate::detect::flood::victim_roles(&p);
        if let Some(ip) = p.ip.as_ref() {
            let home = &self.shared.home;
            if home.contains(ip.src) {
                self.spoke.insert(ip.src);
            } else if home.contains(ip.dst) {
                p.dst_spoke = self.spoke.contains(&ip.dst);
                p.home_spoke = !self.spoke.is_empty();
            }
        }
        self.feed(p);
    }

    /// A tick at `t` seconds of packet time.
    pub fn tick(&mut self, t: f64) {
        self.now = s(t);
        let cx =
            Ctx { shared: &self.shared, out: &self.tx, now: self.now, inbound: self.inbound, known_through: i64::MAX };
        self.det.on_tick(&self.src, &cx);
    }

    /// Ends the input; returns every event not read yet.
    pub fn end(&mut self) -> Vec<Value> {
        let cx =
            Ctx { shared: &self.shared, out: &self.tx, now: self.now, inbound: self.inbound, known_through: i64::MAX };
        self.det.flush(EndReason::EndOfInput, &self.src, &cx);
        self.events()
    }

    /// Events written since the last call.
    pub fn events(&self) -> Vec<Value> {
        self.rx.try_iter().map(|e| serde_json::from_str(&e.line).expect("event is JSON")).collect()
    }
}
