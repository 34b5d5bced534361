//! The plumbing every aggregator thread shares (`detect/decoy/`,
//! `detect/worm/`): the message a worker's tap sends, its end of the
//! channel ([`Link`]), the per-worker watermarks ([`Watermarks`]) and the
//! loop that reads the channel until every worker is done ([`Aggregate`]).
//!
//! A tap sends its data (`Msg::Data`) tagged with a tick's packet time,
//! then `Msg::Watermark` for that tick: it has handled every packet before
//! it. At the end it sends `Msg::Done`. The aggregator buffers the data and
//! handles it only up to the lowest watermark of all workers, so its
//! results do not depend on how many workers there are or how the threads
//! are scheduled. Live capture sends with `try_send` and counts what a full
//! channel refuses in the detector's own `drops` counter of the stats.

use crate::detect::core::Shared;
use crate::output::event::EventLine;
use crate::stats::Stats;
use crossbeam_channel::{Receiver, Sender, bounded};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

/// What a worker tells an aggregator. Data crosses by value (fixed-size
/// `Copy` records), so the hand-off never allocates.
#[derive(Clone, Copy, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Msg<D> {
    Data(D),
    /// The worker has handled every packet before this tick.
    Watermark {
        worker: u16,
        ts: i64,
    },
    /// The worker has sent its last data.
    Done {
        worker: u16,
    },
}

/// The stats counter a link's dropped messages go to.
pub type DropCounter = fn(&Stats) -> &AtomicU64;

/// A worker's end of an aggregator channel.
#[derive(Clone, Debug)]
pub struct Link<D> {
    pub worker: u16,
    pub tx: Sender<Msg<D>>,
    /// Live capture: never block; count drops.
    pub lossy: bool,
    drops: DropCounter,
}

impl<D> Link<D> {
    pub fn new(worker: u16, tx: Sender<Msg<D>>, lossy: bool, drops: DropCounter) -> Link<D> {
        Link { worker, tx, lossy, drops }
    }
}

/// Sends `msg` on `link`: a lossy link counts what a full channel refuses.
pub fn send<D>(link: &Link<D>, msg: Msg<D>, stats: &Stats) {
    if link.lossy {
        if link.tx.try_send(msg).is_err() {
            (link.drops)(stats).fetch_add(1, Relaxed);
        }
    } else {
        // An aggregator that hung up has already failed; the run goes on.
        let _ = link.tx.send(msg);
    }
}

/// The channel from `workers` workers to one aggregator, `queue` messages deep.
pub fn channel<D>(workers: usize, queue: usize, lossy: bool, drops: DropCounter) -> (Vec<Link<D>>, Receiver<Msg<D>>) {
    let (tx, rx) = bounded(queue);
    let links = (0..workers.max(1)).map(|w| Link::new(w as u16, tx.clone(), lossy, drops)).collect();
    (links, rx)
}

/// Each worker's watermark: `i64::MIN` until its first tick, `i64::MAX`
/// once it is done.
#[derive(Clone, Debug)]
pub struct Watermarks(Vec<i64>);

impl Watermarks {
    pub fn new(workers: usize) -> Watermarks {
        Watermarks(vec![i64::MIN; workers.max(1)])
    }

    /// `worker` has handled every packet before `ts` (marks never go back).
    pub fn mark(&mut self, worker: u16, ts: i64) {
        if let Some(m) = self.0.get_mut(usize::from(worker)) {
            *m = (*m).max(ts);
        }
    }

    /// `worker` has sent everything.
    pub fn done(&mut self, worker: u16) {
        self.mark(worker, i64::MAX);
    }

    /// Every worker is done (or gone): everything may be handled.
    pub fn finish(&mut self) {
        self.0.fill(i64::MAX);
    }

    pub fn all_done(&self) -> bool {
        self.0.iter().all(|m| *m == i64::MAX)
    }

    /// The lowest watermark: data tagged up to it is complete.
    pub fn low(&self) -> i64 {
        self.0.iter().copied().min().unwrap_or(i64::MIN)
    }
}

/// An aggregator thread's side of the protocol: it buffers data and
/// advances to the lowest watermark.
pub trait Aggregate {
    type Data;

    fn marks(&mut self) -> &mut Watermarks;

    /// Buffers one message's data until the watermarks pass it.
    fn take(&mut self, data: Self::Data, shared: &Shared);

    /// Handles what is buffered up to `marks().low()`.
    fn advance(&mut self, shared: &Shared, out: &Sender<EventLine>);

    /// Takes one message from a worker.
    fn handle(&mut self, msg: Msg<Self::Data>, shared: &Shared, out: &Sender<EventLine>) {
        match msg {
            Msg::Data(d) => self.take(d, shared),
            Msg::Watermark { worker, ts } => {
                self.marks().mark(worker, ts);
                self.advance(shared, out);
            }
            Msg::Done { worker } => {
                self.marks().done(worker);
                self.advance(shared, out);
            }
        }
    }

    /// Reads `rx` until every worker is done (or gone), then handles the rest.
    fn drain(&mut self, rx: Receiver<Msg<Self::Data>>, shared: &Shared, out: &Sender<EventLine>) {
        for msg in rx.iter() {
            self.handle(msg, shared, out);
            if self.marks().all_done() {
                break;
            }
        }
        self.marks().finish();
        self.advance(shared, out);
    }
}

/// The unit tests' rig for an aggregator: links that never drop into one
/// unbounded channel (the test holds every message), and the run of an
/// aggregator on a given list of messages.
#[cfg(test)]
pub mod testing {
    use super::{Link, Msg};
    use crate::detect::core::Shared;
    use crate::detect::{Rules, testrig};
    use crate::output::event::EventLine;
    use crossbeam_channel::{Receiver, Sender, unbounded};
    use serde_json::Value;

    fn no_counter(s: &crate::stats::Stats) -> &std::sync::atomic::AtomicU64 {
        &s.channel_drops
    }

    /// `workers` lossless links and the channel's receiving end.
    pub fn links<D>(workers: usize) -> (Vec<Link<D>>, Receiver<Msg<D>>) {
        let (tx, rx) = unbounded();
        let links = (0..workers).map(|w| Link::new(w as u16, tx.clone(), false, no_counter)).collect();
        (links, rx)
    }

    /// A detector's test bench: the built-in rules changed by `tweak`, the
    /// shared state of `workers` workers on the test home net, one tap per
    /// worker (made by `tap`) and the channel they all send to.
    pub struct Bench<T, D> {
        pub shared: Shared,
        pub rules: Rules,
        pub taps: Vec<T>,
        pub rx: Receiver<Msg<D>>,
    }

    pub fn bench<T, D>(
        workers: usize,
        tweak: impl FnOnce(&mut Rules),
        tap: impl Fn(&Rules, &Shared, Link<D>) -> T,
    ) -> Bench<T, D> {
        let mut rules = Rules::builtin();
        tweak(&mut rules);
        let shared = testrig::shared(&rules, testrig::HOME, workers);
        let (links, rx) = links(workers);
        let taps = links.into_iter().map(|l| tap(&rules, &shared, l)).collect();
        Bench { shared, rules, taps, rx }
    }

    /// Runs an aggregator (`run`, given a closed channel holding `msgs` and
    /// an output) and returns its events as JSON.
    pub fn events<D>(msgs: Vec<Msg<D>>, run: impl FnOnce(Receiver<Msg<D>>, Sender<EventLine>)) -> Vec<Value> {
        let (otx, orx) = unbounded::<EventLine>();
        let (tx, rx) = unbounded();
        for m in msgs {
            tx.send(m).expect("an unbounded channel");
        }
        drop(tx);
        run(rx, otx);
        orx.try_iter().map(|e| serde_json::from_str(&e.line).expect("JSON")).collect()
    }
}
