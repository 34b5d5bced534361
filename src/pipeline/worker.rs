//! An analyzer thread: owns the detector state for its shard of addresses,
//! runs every detector on each summary it receives, and advances its clock
//! on packet time only (batches and ticks from the reader). Its `decoy_scan`
//! tap also hands candidate records and tick watermarks to the decoy
//! aggregator (`detect::decoy`), and its `worm_phase` tap settles
//! unanswered attempts for the worm aggregator (`detect::worm`).

use crate::decode::summary::PacketSummary;
use crate::detect::decoy::{Link, Tap};
use crate::detect::sources::Sources;
use crate::detect::worm;
use crate::detect::{self, Ctx, Detector, EndReason, Rules, Shared, class};
use crate::output::event::EventLine;
use crate::pipeline::dispatch::{Msg, WorkerPort, shard_addr};
use crate::report::tally::{self, Tally};
use crate::stats::Table;
use crossbeam_channel::Sender;
use std::sync::atomic::Ordering::Relaxed;

/// How far behind its last tick a worker asks the service inventory.
const INVENTORY_LAG_US: i64 = 2_000_000;

/// One worker's detectors.
pub struct Worker {
    sources: Sources,
    detectors: Vec<Box<dyn Detector>>,
    /// For each packet class (`class_slot`), the indices of the detectors
    /// interested in it, in `detectors` order: a packet walks its own short
    /// list instead of asking every detector's interest.
    by_class: Vec<Vec<u8>>,
    /// `decoy_scan`'s per-worker side, when the detector is enabled.
    decoy: Option<Tap>,
    /// `worm_phase`'s per-worker side, when the detector is enabled.
    worm: Option<worm::Tap>,
    now: i64,
    /// `Msg::Tick`'s inbound packet count, as of the last tick.
    inbound: u64,
    /// Table sizes last added to the shared stats (so updates are deltas).
    published: [u64; Table::ALL.len()],
    /// This worker's index (its slot in the service inventory's progress).
    index: usize,
    /// The last tick taken: every worker's packets before it count in the
    /// service inventory's answers (`Ctx::known_through`).
    ticked: i64,
    /// `stats.summary`'s tallies for this shard (`report::tally`).
    tally: Tally,
}

/// `class::of`'s value as an index into `Worker::by_class`: the low byte
/// holds every class bit but `VICTIM_COPY`, which comes alone.
#[inline]
fn class_slot(c: u16) -> usize {
    if c == class::VICTIM_COPY { 256 } else { usize::from(c & 0xff) }
}

/// The detectors interested in each class slot, in order.
fn by_class(detectors: &[Box<dyn Detector>]) -> Vec<Vec<u8>> {
    (0..=256usize)
        .map(|slot| {
            let c = if slot == 256 { class::VICTIM_COPY } else { slot as u16 };
            (0..detectors.len().min(256))
                .filter(|&i| detectors.get(i).is_some_and(|d| d.interest() & c != 0))
                .map(|i| i as u8)
                .collect()
        })
        .collect()
}

impl Worker {
    /// `decoy` and `worm` are this worker's ends of the aggregator channels.
    pub fn new(shared: &Shared, rules: &Rules, decoy: Option<Link>, worm: Option<worm::Link>, index: usize) -> Worker {
        let g = &shared.general;
        let detectors = detect::all(shared, rules, index, shared.inventory_every_s);
        Worker {
            sources: Sources::new(shared.per_worker(g.max_sources), g.source_idle_s),
            by_class: by_class(&detectors),
            detectors,
            decoy: decoy.map(|l| Tap::new(&rules.decoy_scan, shared, l)),
            worm: worm.map(|l| worm::Tap::new(&rules.worm_phase, shared, l)),
            now: i64::MIN,
            inbound: 0,
            published: [0; Table::ALL.len()],
            index,
            ticked: i64::MIN,
            tally: Tally::new(shared.per_worker(tally::MAX_SOURCES)),
        }
    }

    /// Runs until the reader closes the channel, then ends every detection.
    pub fn run(mut self, port: WorkerPort, shared: &Shared, out: Sender<EventLine>, end: EndReason) {
        for msg in port.rx.iter() {
            match msg {
                Msg::Batch(mut b) => {
                    for p in &b.pkts {
                        self.packet(p, b.sensor, shared, &out);
                    }
                    b.pkts.clear();
                    let _ = port.recycle.try_send(b.pkts);
                }
                Msg::Tick(ts, inbound) => {
                    self.inbound = inbound;
                    self.tick(ts, shared, &out);
                }
                Msg::Report => self.publish(shared),
            }
        }
        // Publish first: the final stats show the tables as the input left them.
        self.publish(shared);
        shared.stats.merge_summary(&self.tally);
        let end = end.unless_interrupted(shared.stats.interrupted.load(Relaxed));
        // Input over: every answer this worker saw counts for the others.
        shared.inventory.progress(self.index, i64::MAX);
        let cx = Ctx { shared, out: &out, now: self.now.max(0), inbound: self.inbound, known_through: i64::MAX };
        for d in &mut self.detectors {
            d.flush(end, &self.sources, &cx);
        }
        if let Some(t) = &mut self.decoy {
            t.finish(&self.sources, shared);
        }
        if let Some(t) = &mut self.worm {
            t.finish(&shared.stats);
        }
    }

    #[inline]
    fn packet(&mut self, p: &PacketSummary, sensor: u16, shared: &Shared, out: &Sender<EventLine>) {
        self.now = self.now.max(p.ts_us);
        if p.owner_is_src {
            self.sources.observe(p, &shared.stats);
        }
        let cx = Ctx { shared, out, now: self.now, inbound: self.inbound, known_through: self.known_through() };
        let c = class::of(p);
        if let Some(list) = self.by_class.get(class_slot(c)) {
            for &i in list {
                if let Some(d) = self.detectors.get_mut(usize::from(i)) {
                    d.on_packet(p, sensor, &self.sources, &cx);
                }
            }
        }
        if c == class::VICTIM_COPY {
            return;
        }
        self.tally.packet(p);
        if c & (class::TCP_ATTEMPT | class::TCP_SYN_ACK | class::UDP) != 0
            && let Some(t) = &mut self.worm
        {
            t.packet(p, sensor, &shared.stats);
        }
        if let Some(t) = &mut self.decoy {
            // The dispatcher's verdict, recomputed only for the rare packets
            // owned by neither side (ICMP errors, by their quote).
            let owner = match &p.ip {
                Some(ip) if p.owner_is_src => Some(ip.src),
                Some(ip) if p.owner_is_dst => Some(ip.dst),
                _ => shard_addr(p, &shared.home),
            };
            t.packet(p, sensor, owner, &mut self.sources, shared);
        }
    }

    fn tick(&mut self, ts: i64, shared: &Shared, out: &Sender<EventLine>) {
        self.now = self.now.max(ts);
        // The reader sent every packet before `ts` ahead of this tick.
        self.ticked = self.ticked.max(ts);
        shared.inventory.progress(self.index, self.ticked);
        let cx = Ctx { shared, out, now: self.now, inbound: self.inbound, known_through: self.known_through() };
        for d in &mut self.detectors {
            d.on_tick(&self.sources, &cx);
        }
        if let Some(t) = &mut self.decoy {
            t.tick(ts, &self.sources, shared);
        }
        if let Some(t) = &mut self.worm {
            t.tick(ts, &shared.stats);
        }
        self.sources.expire(self.now, &shared.stats);
        self.publish(shared);
    }

    /// What the service inventory is asked as of: `INVENTORY_LAG_US` before
    /// the last tick, so the other workers have almost always passed it
    /// and a replay's lookups rarely wait (`detect::inventory::table`).
    fn known_through(&self) -> i64 {
        self.ticked.saturating_sub(INVENTORY_LAG_US)
    }

    /// Adds the change in this worker's table sizes to the shared stats.
    fn publish(&mut self, shared: &Shared) {
        let mut sizes = [0u64; Table::ALL.len()];
        sizes[Table::Sources as usize] = self.sources.len() as u64;
        for d in &self.detectors {
            sizes[d.table() as usize] += d.len() as u64;
        }
        if let Some(t) = &self.decoy {
            let (history, probes) = t.sizes();
            sizes[Table::TtlHistory as usize] = history as u64;
            sizes[Table::DecoyProbes as usize] = probes as u64;
        }
        if let Some(t) = &self.worm {
            sizes[Table::WormWaiting as usize] = t.len() as u64;
        }
        sizes[Table::Summary as usize] = self.tally.len() as u64;
        let (evicted, refused) = self.tally.take_room();
        let t = shared.stats.table(Table::Summary);
        for (c, n) in [(&t.evicted, evicted), (&t.cap_hits, refused)] {
            if n > 0 {
                c.fetch_add(n, Relaxed);
            }
        }
        for (t, (now, before)) in Table::ALL.iter().zip(sizes.iter().zip(self.published.iter_mut())) {
            let c = &shared.stats.table(*t).entries;
            if *now >= *before {
                c.fetch_add(*now - *before, Relaxed);
            } else {
                c.fetch_sub(*before - *now, Relaxed);
            }
            *before = *now;
        }
    }
}
