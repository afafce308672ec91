//! The engine in the one in-memory harness (feature `testing`, for tests
//! only): [`engine_net`] puts an [`Engine`] over one end of a `MemRings`
//! pipe and a plain smoltcp client (`testkit::MemClient`) on the other,
//! both on one virtual clock (`testkit::Net`); [`with_app`] adds the
//! application a worker would run (the DNS server, the daemon's proxy),
//! polled between the engine's ingress and egress as in [`crate::worker`].

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use nic::mem::{Faults, MemConfig, MemRings};
use nic::Rings;
use testkit::{Capture, ClientConfig, Endpoint, MemClient, Net};

use crate::engine::{Engine, EngineConfig};
use crate::reuseport::FlowHasher;
use crate::shared::Shared;
use crate::worker::App;

/// The flow hasher's key of [`engine_net`] (tests compute where a flow lands).
pub const KEY: (u64, u64) = (0x0123_4567_89ab_cdef, 0x0fed_cba9_8765_4321);

/// The engine in memory with its application; derefs to the engine.
pub struct Server<A = Idle> {
    /// The engine under test (core 0 of one).
    pub engine: Engine<MemRings>,
    /// The application polled every round.
    pub app: A,
    /// The state the engine shares with other cores.
    pub shared: Arc<Shared>,
    /// The application's clock at the engine's time zero.
    t0: std::time::Instant,
}

/// No application: the test calls the engine's socket API itself.
pub struct Idle;

impl<R: Rings> App<R> for Idle {
    fn poll(&mut self, _: &mut Engine<R>, _: std::time::Instant) -> Option<std::time::Instant> {
        None
    }
}

impl<A: App<MemRings>> Endpoint for Server<A> {
    /// Ingress, the application, egress: a worker's turn.
    fn step(&mut self, now: smoltcp::time::Instant) {
        self.engine.ingress(now);
        let at = self.t0 + std::time::Duration::from_micros(now.total_micros() as u64);
        self.app.poll(&mut self.engine, at);
        self.engine.egress(now);
    }
}

impl<A> Deref for Server<A> {
    type Target = Engine<MemRings>;
    fn deref(&self) -> &Engine<MemRings> {
        &self.engine
    }
}

impl<A> DerefMut for Server<A> {
    fn deref_mut(&mut self) -> &mut Engine<MemRings> {
        &mut self.engine
    }
}

/// The engine and its client in memory.
pub type EngineNet<A = Idle> = Net<Server<A>>;

/// An engine at `testkit::SERVER_IP4/24` (`SERVER_MAC`), its config first
/// adjusted by `f`, flows hashed with [`KEY`], and a `MemClient` peer
/// (`ClientConfig::engine_peer`); 1024 frames and rings of 512 each side.
pub fn engine_net(f: impl FnOnce(&mut EngineConfig)) -> EngineNet {
    engine_net_faults(Faults::default(), Faults::default(), f)
}

/// [`engine_net`] with faults on the wire: `server` on what the engine
/// sends, `client` on what the client sends (a one-way delay on both makes
/// a long path: `Faults::delay_us`).
pub fn engine_net_faults(
    server: Faults,
    client: Faults,
    f: impl FnOnce(&mut EngineConfig),
) -> EngineNet {
    let mut pcap = Capture::new();
    let mem = MemConfig {
        frames: 1024,
        ring: 512,
        ..MemConfig::default()
    };
    let (mut a, mut b) = pcap.pair(mem, "server", "client");
    a.set_faults(server);
    b.set_faults(client);
    let shared = Shared::new(1, FlowHasher::with_key(KEY.0, KEY.1)).expect("one core");
    let mut cfg = EngineConfig::new(testkit::SERVER_MAC, Some((testkit::SERVER_IP4, 24)), None);
    f(&mut cfg);
    let server = Server {
        engine: Engine::new(a, cfg, shared.clone(), 0, 0),
        app: Idle,
        shared,
        t0: std::time::Instant::now(),
    };
    Net::new(
        server,
        MemClient::new(b, &ClientConfig::engine_peer()),
        pcap,
    )
}

/// `net` with the application `make` builds on its engine.
pub fn with_app<A: App<MemRings>>(
    net: EngineNet,
    make: impl FnOnce(&mut Engine<MemRings>) -> A,
) -> EngineNet<A> {
    net.map_server(|s| {
        let Server {
            mut engine,
            shared,
            t0,
            ..
        } = s;
        let app = make(&mut engine);
        Server {
            engine,
            app,
            shared,
            t0,
        }
    })
}
