//! The stages every kind of run shares: opening the output, starting the
//! output thread, building the analyzers' shared state, starting the
//! analyzer workers and the decoy aggregator, and draining and joining them
//! in the order that writes every event before the final stats line.

use crate::detect::decoy::{self, Aggregator};
use crate::detect::inventory::{self, Inventory};
use crate::detect::worm;
use crate::detect::{EndReason, Rules, Shared};
use crate::homenet::HomeNet;
use crate::input::capture::CaptureError;
use crate::output::event::EventLine;
use crate::output::target::Target;
use crate::output::writer::{self, Enrich, Outputs, StatsSource};
use crate::pipeline::dispatch::Dispatcher;
use crate::pipeline::worker::Worker;
use crate::signals::Flags;
use crate::stats::Stats;
use crossbeam_channel::{Receiver, Sender, bounded};
use std::sync::Arc;
use std::thread::JoinHandle;

/// How a run ended.
pub struct RunReport {
    /// Per-file errors that did not stop the run (damaged captures).
    pub file_errors: Vec<CaptureError>,
    pub output_error: Option<std::io::Error>,
}

/// Events queued between the analyzers and the output thread.
const OUTPUT_QUEUE: usize = 4096;

pub(super) fn spawn_err(e: std::io::Error) -> CaptureError {
    CaptureError::Path { path: "thread".into(), msg: e.to_string() }
}

/// The `sensor` of run-wide events: the one input's name, or "N files".
pub(super) fn sensor_label(sensors: &[String]) -> String {
    crate::output::event::run_label(sensors)
}

/// Opens every `-o` target (or stdout) before any thread starts; live
/// (`patient`), no output stops the capture; `text`: `--format text` for
/// the files and stdout.
pub(super) fn open_outputs(
    targets: &[Target],
    patient: bool,
    text: bool,
    stats: &Stats,
) -> Result<Outputs, CaptureError> {
    Outputs::open(targets, patient, text, stats)
        .map_err(|(t, e)| CaptureError::Path { path: t.to_string(), msg: format!("cannot open output: {e}") })
}

/// The output thread: it writes events until every sender is gone, then the
/// final stats line.
pub(super) struct Output(JoinHandle<std::io::Result<()>>);

impl Output {
    /// Starts the thread; events go into the returned sender.
    pub(super) fn start(
        outputs: Outputs,
        flags: &Flags,
        src: StatsSource,
        enrich: Enrich,
    ) -> Result<(Output, Sender<EventLine>), CaptureError> {
        let (tx, rx) = Output::queue();
        Ok((Output::start_on(outputs, rx, flags, src, enrich)?, tx))
    }

    /// The queue events go through, made before the thread starts (live
    /// opens its firewall feed, and drops privileges, before any thread).
    pub(super) fn queue() -> (Sender<EventLine>, Receiver<EventLine>) {
        bounded::<EventLine>(OUTPUT_QUEUE)
    }

    /// Starts the thread on a queue from `queue`.
    pub(super) fn start_on(
        outputs: Outputs,
        rx: Receiver<EventLine>,
        flags: &Flags,
        src: StatsSource,
        enrich: Enrich,
    ) -> Result<Output, CaptureError> {
        let flags = flags.clone();
        let h = std::thread::Builder::new()
            .name("picket-output".into())
            .spawn(move || writer::run(outputs, rx, flags, src, enrich))
            .map_err(spawn_err)?;
        Ok(Output(h))
    }

    /// Waits for the last line; its first write error, if any.
    pub(super) fn join(self) -> Option<std::io::Error> {
        match self.0.join() {
            Ok(r) => r.err(),
            Err(_) => Some(std::io::Error::other("output thread panicked")),
        }
    }
}

/// What the analyzers share, read-only: settings, home net, sensor names,
/// the stats.
pub(super) struct SharedInput<'a> {
    pub rules: &'a Rules,
    pub home: &'a HomeNet,
    pub community_id_seed: u16,
    pub sensors: Vec<String>,
    pub stats: &'a Arc<Stats>,
    pub workers: usize,
    /// `picket fwlog`: the "packets" are firewall records.
    pub from_log: bool,
    /// A replay: service inventory lookups wait for every worker
    /// (`detect::inventory::table`), so results do not depend on timing.
    pub replay: bool,
    /// Live `--inventory-interval` in seconds.
    pub inventory_every_s: Option<u32>,
}

pub(super) fn shared(i: SharedInput<'_>) -> Arc<Shared> {
    Arc::new(Shared {
        general: i.rules.general.clone(),
        ports: i.rules.ports.clone(),
        home: i.home.clone(),
        community_id_seed: i.community_id_seed,
        sensors: i.sensors,
        stats: Arc::clone(i.stats),
        workers: i.workers.max(1),
        from_log: i.from_log,
        lethality: i.rules.lethality.clone(),
        assets: i.rules.assets.clone(),
        inventory: Inventory::new(&i.rules.service_inventory, i.home.clone(), i.workers.max(1), i.replay)
            .with_stats(Arc::clone(i.stats)),
        inventory_every_s: i.inventory_every_s,
    })
}

/// The analysis side of a run: the dispatcher the reader pushes summaries
/// into, the analyzer workers and the decoy aggregator.
pub(super) struct Analysis {
    pub dispatcher: Dispatcher,
    workers: Vec<JoinHandle<()>>,
    aggregator: Option<JoinHandle<()>>,
    /// For the `service_inventory` event written once the workers are done.
    shared: Arc<Shared>,
    out: Sender<EventLine>,
    worm: Option<JoinHandle<()>>,
    /// The worm aggregator's link for the live firewall-log thread
    /// (`start` with `log_feeds_worm`), until that thread takes it.
    pub worm_log: Option<worm::Link>,
}

impl Analysis {
    /// Starts `shared.workers` analyzer threads (and the aggregator), each
    /// sending its events to `out`. With `log_feeds_worm` (live
    /// `--fw-log`), the worm aggregator also waits for a firewall-log
    /// thread's link (`worm_log`).
    pub(super) fn start(
        shared: &Arc<Shared>,
        rules: &Arc<Rules>,
        home: HomeNet,
        (lossy, log_feeds_worm): (bool, bool),
        end: EndReason,
        out: &Sender<EventLine>,
    ) -> Result<Analysis, CaptureError> {
        let (dispatcher, ports) = Dispatcher::new(shared.workers, home, lossy, Arc::clone(&shared.stats));
        // The decoy aggregator: one thread, fed by every worker (detect/decoy);
        // it also judges port_scan's distributed pattern.
        let mut links = Vec::new();
        let mut aggregator = None;
        if rules.decoy_scan.enabled || rules.port_scan.enabled {
            let (l, rx) = decoy::channel(ports.len(), lossy);
            links = l;
            let sh = Arc::clone(shared);
            let tx = out.clone();
            let agg =
                Aggregator::new(&rules.decoy_scan, &rules.port_scan, ports.len(), rules.general.update_interval_s);
            let h = std::thread::Builder::new()
                .name("picket-decoy".into())
                .spawn(move || agg.run(rx, &sh, tx, end))
                .map_err(spawn_err)?;
            aggregator = Some(h);
        }
        // The worm aggregator: one thread counting each host's unanswered
        // attempts, wherever the dispatcher sent them (detect/worm).
        let mut worm_links = Vec::new();
        let mut worm_agg = None;
        let mut worm_log = None;
        if rules.worm_phase.enabled {
            let log = usize::from(log_feeds_worm);
            let (mut l, rx) = worm::channel(ports.len() + log, lossy);
            if log_feeds_worm {
                // The log thread's link is the last; it may wait for room
                // (it is not the capture path).
                worm_log = l.pop().map(|mut k| {
                    k.lossy = false;
                    k
                });
            }
            worm_links = l;
            let sh = Arc::clone(shared);
            let tx = out.clone();
            let mut agg = worm::Aggregator::new(&rules.worm_phase, ports.len() + log);
            if log_feeds_worm {
                agg = agg.fed_by_log(rules.worm_phase.max_pending.saturating_mul(4));
            }
            let h = std::thread::Builder::new()
                .name("picket-worm".into())
                .spawn(move || agg.run(rx, &sh, tx, end))
                .map_err(spawn_err)?;
            worm_agg = Some(h);
        }
        let mut links = links.into_iter();
        let mut worm_links = worm_links.into_iter();
        let mut workers = Vec::new();
        for (i, port) in ports.into_iter().enumerate() {
            let sh = Arc::clone(shared);
            let rules = Arc::clone(rules);
            let tx = out.clone();
            let link = links.next();
            let worm_link = worm_links.next();
            let h = std::thread::Builder::new()
                .name(format!("picket-worker-{i}"))
                .spawn(move || Worker::new(&sh, &rules, link, worm_link, i).run(port, &sh, tx, end))
                .map_err(spawn_err)?;
            workers.push(h);
        }
        Ok(Analysis {
            dispatcher,
            workers,
            aggregator,
            shared: Arc::clone(shared),
            out: out.clone(),
            worm: worm_agg,
            worm_log,
        })
    }

    /// Closes the channels and waits until every detection is flushed.
    pub(super) fn finish(self) {
        self.dispatcher.finish();
        for h in self.workers {
            let _ = h.join();
        }
        // Every worker has sent `Done` (or dropped its link): the aggregator ends.
        if let Some(h) = self.aggregator {
            let _ = h.join();
        }
        if let Some(h) = self.worm {
            let _ = h.join();
        }
        // What the home net offered, after every detection (packet input only).
        let sh = &self.shared;
        if sh.inventory.enabled && !sh.from_log {
            let now = sh.stats.clock_us.load(std::sync::atomic::Ordering::Relaxed).max(0);
            let cx = crate::detect::Ctx { shared: sh, out: &self.out, now, inbound: 0, known_through: i64::MAX };
            let reason = if sh.stats.interrupted.load(std::sync::atomic::Ordering::Relaxed) {
                "shutdown"
            } else {
                "end_of_input"
            };
            cx.emit(inventory::render(&sh.inventory, now, &sensor_label(&sh.sensors), reason, &cx));
        }
    }
}
