use super::*;
use stack::worker::{run, App, LoopConfig};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant as StdInstant};

#[derive(Default)]
struct Probe {
    busy_for: usize,
    stopping_calls: usize,
    shutdowns: usize,
    stopping_after_shutdown: bool,
}

impl App<MemRings> for Probe {
    fn poll(&mut self, _e: &mut Engine<MemRings>, _now: StdInstant) -> Option<StdInstant> {
        None
    }
    fn stopping(&mut self, _e: &mut Engine<MemRings>, _now: StdInstant) -> bool {
        if self.shutdowns > 0 {
            self.stopping_after_shutdown = true;
        }
        self.stopping_calls += 1;
        self.stopping_calls <= self.busy_for
    }
    fn shutdown(&mut self, e: &mut Engine<MemRings>) {
        self.shutdowns += 1;
        e.abort_all();
    }
}

fn cfg(grace: Duration) -> LoopConfig {
    LoopConfig {
        spin: Duration::from_micros(10),
        max_sleep: Duration::from_millis(5),
        grace,
        ..LoopConfig::default()
    }
}

#[test]
fn the_loop_runs_while_the_app_is_busy_then_shuts_down() {
    let mut net = engine_net(|_| {});
    let stop = AtomicBool::new(true);
    let mut app = Probe {
        busy_for: 3,
        ..Probe::default()
    };
    let stats = run(
        &mut net.server,
        &mut app,
        &stop,
        &cfg(Duration::from_secs(5)),
    );
    assert_eq!(app.stopping_calls, 4, "called until it said done");
    assert_eq!(app.shutdowns, 1);
    assert!(!app.stopping_after_shutdown);
    assert!(!stats.grace_expired);
    assert!(stats.grace_used < Duration::from_secs(5));
}

#[test]
fn the_grace_bounds_a_busy_app() {
    let mut net = engine_net(|_| {});
    let stop = AtomicBool::new(true);
    let mut app = Probe {
        busy_for: usize::MAX,
        ..Probe::default()
    };
    let t = StdInstant::now();
    let stats = run(
        &mut net.server,
        &mut app,
        &stop,
        &cfg(Duration::from_millis(150)),
    );
    assert!(stats.grace_expired);
    assert!(t.elapsed() >= Duration::from_millis(150));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(app.stopping_calls > 1);
    assert_eq!(app.shutdowns, 1);
}

/// An app that only has `poll` keeps today's stop: abort everything at once.
struct PollOnly;
impl App<MemRings> for PollOnly {
    fn poll(&mut self, _e: &mut Engine<MemRings>, _now: StdInstant) -> Option<StdInstant> {
        None
    }
}

/// An engine of a process with two cores, for the loop alone.
fn two_core_engine() -> (Engine<MemRings>, MemRings, Arc<Shared>) {
    let (a, b) = MemRings::pair(MemConfig {
        frames: 64,
        ring: 32,
        ..MemConfig::default()
    });
    let shared = Shared::new(2, FlowHasher::with_key(KEY.0, KEY.1)).unwrap();
    let ecfg = EngineConfig::new(testkit::SERVER_MAC, Some((SERVER, 24)), None);
    (Engine::new(a, ecfg, shared.clone(), 0, 0), b, shared)
}

/// A core whose application is done keeps serving its queue while the other core still
/// works (the clients' resets for that core's connections may arrive on this queue), and
/// leaves as soon as the other is done.
#[test]
fn a_done_core_serves_its_queue_until_the_others_are_done() {
    let (mut engine, _peer, shared) = two_core_engine();
    let stop = AtomicBool::new(true);
    let mut app = Probe::default();
    let other = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        shared.mesh.finish();
    });
    let t = StdInstant::now();
    let stats = run(&mut engine, &mut app, &stop, &cfg(Duration::from_secs(5)));
    let took = t.elapsed();
    other.join().unwrap();
    assert!(took >= Duration::from_millis(300), "left after {took:?}");
    assert!(took < Duration::from_secs(2), "left after {took:?}");
    assert!(!stats.grace_expired, "this core's own work was done");
    assert_eq!(app.stopping_calls, 1, "asked once; done is done");
    assert_eq!(app.shutdowns, 1);
}

/// A core that never finishes does not hold the others past their grace.
#[test]
fn a_done_core_leaves_at_the_end_of_its_grace() {
    let (mut engine, _peer, _shared) = two_core_engine();
    let stop = AtomicBool::new(true);
    let mut app = Probe::default();
    let t = StdInstant::now();
    let stats = run(
        &mut engine,
        &mut app,
        &stop,
        &cfg(Duration::from_millis(200)),
    );
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(200), "left after {took:?}");
    assert!(took < Duration::from_secs(3), "left after {took:?}");
    assert!(!stats.grace_expired);
    assert_eq!(app.shutdowns, 1);
}

#[test]
fn the_default_stop_aborts_at_once() {
    let mut net = engine_net(|_| {});
    let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let h = net.client.connect(46300, (SERVER, 80));
    net.run_until(2000, "connection established", |n| established(n, &[h]));
    let _c = accept_all(&mut net, l, 1)[0];
    let stop = AtomicBool::new(true);
    let stats = run(
        &mut net.server,
        &mut PollOnly,
        &stop,
        &cfg(Duration::from_secs(5)),
    );
    assert!(!stats.grace_expired);
    assert!(stats.grace_used < Duration::from_secs(1));
    net.run_until(2000, "the client sees the reset", |n| {
        n.client.tcp(h).state() == tcp::State::Closed
    });
    assert_eq!(net.server.shared.report().listeners[0].state, "closed");
}
