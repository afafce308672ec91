//! The one in-memory harness: a side under test and a [`MemClient`] on the
//! two ends of a `MemRings` pipe, driven in rounds on one virtual clock
//! (quinn-style: time is passed in, nothing sleeps).
//!
//! The side under test is anything that takes a step at a time
//! ([`Endpoint`]): another `MemClient` (nic's device tests), or the engine
//! with its application (`stack::testing`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use smoltcp::time::{Duration, Instant};

use crate::{Capture, MemClient};

/// One end of the pipe, stepped by [`Net`] once a round.
pub trait Endpoint {
    /// Take in what arrived and send what is due at `now`.
    fn step(&mut self, now: Instant);
}

impl Endpoint for MemClient {
    fn step(&mut self, now: Instant) {
        MemClient::step(self, now);
    }
}

/// The side under test (`server`) and its peer (`client`) on one virtual
/// clock: each round both step (the client first), then a millisecond passes.
pub struct Net<S> {
    /// The side under test.
    pub server: S,
    /// Its peer on the wire.
    pub client: MemClient,
    /// The time of the next step.
    pub clock: Instant,
    /// Rounds run so far.
    pub rounds: u64,
    /// Check both ports' frame accounting after every round
    /// ([`MemClient::check`]), when the server is a `MemClient` too.
    check: Option<fn(&S)>,
    /// Both directions, written if the test fails ([`Capture`]).
    pub pcap: Capture,
    /// The pipe's clock, moved with this one (frame delays count against
    /// it: `nic::mem::Faults::delay_us`).
    wire_clock: Arc<AtomicU64>,
}

impl<S: Endpoint> Net<S> {
    /// `server` and `client` on the two ends of the pipe tapped by `pcap`;
    /// the clock starts at 1 ms.
    pub fn new(server: S, client: MemClient, pcap: Capture) -> Net<S> {
        let wire_clock = client.port.rings().clock();
        Net {
            wire_clock,
            server,
            client,
            clock: Instant::from_millis(1),
            rounds: 0,
            check: None,
            pcap,
        }
    }

    /// One exchange at the current time, the clock not moving.
    pub fn step(&mut self) {
        self.wire_clock
            .store(self.clock.total_micros() as u64, Ordering::Relaxed);
        self.client.step(self.clock);
        self.server.step(self.clock);
    }

    /// Run `rounds` rounds: a step, then a millisecond.
    pub fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.step();
            if let Some(check) = self.check {
                self.client.check("client");
                check(&self.server);
            }
            self.clock += Duration::from_millis(1);
            self.rounds += 1;
        }
    }

    /// Run until `done` (asked before every round) or `max` rounds; then
    /// fail naming `what`.
    pub fn run_until(&mut self, max: usize, what: &str, mut done: impl FnMut(&mut Self) -> bool) {
        for _ in 0..max {
            if done(self) {
                return;
            }
            self.run(1);
        }
        panic!("not done after {max} rounds: {what}");
    }
}

impl<S> Net<S> {
    /// The same net with its server replaced by what `f` makes of it.
    pub fn map_server<T>(self, f: impl FnOnce(S) -> T) -> Net<T> {
        Net {
            server: f(self.server),
            client: self.client,
            clock: self.clock,
            rounds: self.rounds,
            check: None,
            pcap: self.pcap,
            wire_clock: self.wire_clock,
        }
    }
}

impl Net<MemClient> {
    /// Both ports' accounting checked after every round.
    pub fn checked(mut self) -> Self {
        self.check = Some(|s: &MemClient| s.check("server"));
        self
    }
}
