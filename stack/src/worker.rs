//! The per-core loop: run to completion under load (rx batch -> stack ->
//! application -> tx batch), sleep in poll() on the XSK when idle.
//!
//! Stopping is in two phases. When the stop flag is set the loop enters a
//! graceful phase: it calls [`App::stopping`] (stop taking new work, finish
//! what is in flight) and keeps running ingress, [`App::poll`] and egress
//! while the application says it is still busy, at most
//! [`LoopConfig::grace`]. A core whose application is done keeps reading
//! its queue until every core of the process is done (or its grace ends):
//! the clients' packets for another core's connections (a reset, the ACK
//! of a FIN) may arrive on any queue, and only a running core hands them
//! over. Then [`App::shutdown`] releases what is left and a last egress
//! sends it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nic::Rings;

use crate::engine::Engine;

/// An application running on a worker's core, next to its engine.
pub trait App<R: Rings> {
    /// Called after every ingress batch and after every sleep. Accept, read
    /// and write here. Returns the next instant the application needs to be
    /// called at even without traffic (its own timers), if any.
    fn poll(&mut self, engine: &mut Engine<R>, now: Instant) -> Option<Instant>;

    /// The graceful phase of a stop. Called on the first turn after the stop
    /// flag is set and then on every turn (after `poll`, before egress):
    /// stop taking new work (drain or close listeners) and finish what is in
    /// flight. Return `true` while something is left to finish; the loop
    /// goes on (ingress, `poll`, egress, sleeping when idle) until this
    /// returns `false` or [`LoopConfig::grace`] has passed.
    ///
    /// The default has nothing to finish: the stop goes straight to
    /// [`App::shutdown`].
    fn stopping(&mut self, engine: &mut Engine<R>, now: Instant) -> bool {
        let _ = (engine, now);
        false
    }

    /// Called once when the worker stops, after the graceful phase and
    /// before the last egress: release everything still open. The default
    /// resets every connection and closes every listener and UDP socket.
    fn shutdown(&mut self, engine: &mut Engine<R>) {
        engine.abort_all();
    }

    /// The loop is about to sleep in poll() on the XSK and the core's
    /// doorbell. An application fed from elsewhere (shared-memory rings of
    /// attached processes) announces here that it sleeps, so its producers
    /// ring the doorbell, and returns `false` if work already waits (the
    /// loop then polls it instead of sleeping). The default sleeps.
    fn prepare_sleep(&mut self) -> bool {
        true
    }

    /// The sleep announced by [`App::prepare_sleep`] is over.
    fn woke(&mut self) {}

    /// Called after every egress pass, once this turn's frames are sent:
    /// wake whoever waits on what [`App::poll`] produced. An application
    /// fed from another process on the same core rings its doorbell here
    /// rather than in `poll`: a process woken there takes the core before
    /// the egress, and the replies it sent in the previous turn wait
    /// unsent while it runs. The default does nothing.
    fn flush(&mut self) {}
}

/// How the loop waits.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    /// Busy-poll this long after the last frame before sleeping.
    pub spin: Duration,
    /// Never sleep longer than this (the stop flag is checked after each
    /// sleep).
    pub max_sleep: Duration,
    /// Longest graceful phase of a stop (see [`App::stopping`]).
    pub grace: Duration,
    /// When the rx ring holds a backlog (a quarter of the ring or more),
    /// take up to this many more batches in the same turn, each followed by
    /// an egress pass, before the application runs (0: one batch a turn).
    pub drain_batches: usize,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            spin: Duration::from_micros(50),
            max_sleep: Duration::from_millis(100),
            grace: Duration::from_secs(5),
            drain_batches: 16,
        }
    }
}

/// What a worker loop did.
#[derive(Clone, Debug, Default)]
pub struct LoopStats {
    /// Loop iterations.
    pub iterations: u64,
    /// Sleeps in poll().
    pub sleeps: u64,
    /// Extra receive batches taken in a turn because the ring had a
    /// backlog (see [`LoopConfig::drain_batches`]).
    pub drain_batches: u64,
    /// How long the graceful phase of the stop lasted.
    pub grace_used: Duration,
    /// Whether the graceful phase ended because [`LoopConfig::grace`]
    /// passed with the application still busy.
    pub grace_expired: bool,
    /// When the grace expired: the engine's connections by phase
    /// (half-open, queued, accepted, closing), for diagnosis.
    pub left_at_grace: [usize; 4],
}

/// Run `app` on `engine` until `stop` is set, then stop it gracefully (see
/// the module documentation).
pub fn run<R: Rings, A: App<R>>(
    engine: &mut Engine<R>,
    app: &mut A,
    stop: &AtomicBool,
    cfg: &LoopConfig,
) -> LoopStats {
    let mut stats = LoopStats::default();
    let mut last_work = Instant::now();
    let mut app_deadline: Option<Instant> = None;
    // Set once the stop flag is seen: (when, end of the grace).
    let mut stopping: Option<(Instant, Instant)> = None;
    // Set once this core's own graceful stop is done: it then only serves
    // its queue for the other cores until they are done too.
    let mut finished = false;
    let shared = engine.shared().clone();
    loop {
        if stopping.is_none() && stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            stopping = Some((now, now + cfg.grace));
        }
        // One clock read per turn: the engine's time is derived from it.
        let now = Instant::now();
        if let Some((_, end)) = stopping {
            if now >= end {
                if finished {
                    break;
                }
                stats.grace_expired = true;
                stats.left_at_grace = engine.phases();
                for line in engine.closing_report() {
                    log::warn!("core {} at the end of the grace: {line}", engine.core());
                }
                break;
            }
        }
        stats.iterations += 1;
        let t = engine.shared().time_at(now);
        let mut n = engine.ingress(t);
        // A backlog in the ring: take more of it now, with an egress pass
        // after each batch so that SYN-ACKs (and what else connections being
        // set up or closed owe) go out as the segments come in; connections
        // the application holds wait for the pass after it runs. Left in the
        // ring, a backlog of one request per connection outlasts the
        // clients' retransmission timeout at 100,000 connections and every
        // request is sent twice; taken in with no egress between, thousands
        // of SYNs fill the SYN queue before one SYN-ACK leaves
        // (docs/BENCH-HISTORY.md, "The worker loop").
        let mut extra = 0;
        while extra < cfg.drain_batches && engine.rx_backlog_deep() {
            engine.egress_setup(t);
            n += engine.ingress(t);
            extra += 1;
        }
        stats.drain_batches += extra as u64;
        let due = app_deadline.is_some_and(|d| d <= now);
        if n > 0 || engine.dirty() || due {
            app_deadline = app.poll(engine, now);
        }
        let busy = stopping.is_none() || (!finished && app.stopping(engine, now));
        engine.egress(t);
        app.flush();
        if !busy {
            if !finished {
                finished = true;
                shared.mesh.finish();
            }
            if shared.mesh.all_finished() {
                break;
            }
        }
        if n > 0 {
            last_work = now;
            continue;
        }
        if now.duration_since(last_work) < cfg.spin {
            // Busy-polling: let whatever else is runnable on this core (a
            // process attached through the daemon, pinned beside its
            // worker) have it first. With nothing else runnable this
            // returns at once; without it, the spin takes the core from
            // the very process whose replies it waits for.
            std::thread::yield_now();
            continue;
        }
        let mut timeout = cfg.max_sleep;
        if let Some(d) = engine.poll_delay(t) {
            timeout = timeout.min(d);
        }
        if let Some(d) = app_deadline {
            timeout = timeout.min(d.saturating_duration_since(now));
        }
        if let Some((_, end)) = stopping {
            timeout = timeout.min(end.saturating_duration_since(now));
        }
        if engine.tx_in_flight() {
            // Copy-mode XSKs send a bounded number of frames per kick: come
            // back soon to kick again rather than sleep on the rx side.
            timeout = timeout.min(Duration::from_millis(1));
        }
        if timeout.is_zero() {
            continue;
        }
        if !app.prepare_sleep() {
            app_deadline = Some(now);
            continue;
        }
        stats.sleeps += 1;
        engine.wait(timeout);
        app.woke();
        // After a sleep, timers (retransmissions, the app's) may be due.
        let now = Instant::now();
        app_deadline = app.poll(engine, now);
        last_work = now;
    }
    if let Some((since, _)) = stopping {
        stats.grace_used = since.elapsed();
    }
    app.shutdown(engine);
    engine.egress(engine.clock());
    app.flush();
    stats
}

/// Pin the calling thread to core `index % cores`; returns the core id used.
pub fn pin_to_core(index: usize) -> Option<usize> {
    let cores = core_affinity::get_core_ids()?;
    if cores.is_empty() {
        return None;
    }
    let core = cores[index % cores.len()];
    if core_affinity::set_for_current(core) {
        Some(core.id)
    } else {
        None
    }
}
