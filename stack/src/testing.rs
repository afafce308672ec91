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
        self.app.flush();
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

/// The load generator's address: on-link, but not the client's, whose
/// smoltcp drops (never resets) what the engine sends there, as a real
/// generator (kxdpgun -T) that forgot its flows would.
pub const GUN: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 18, 0, 50);

/// The generator's source ports: one connection each, 8 in all.
const GUN_PORTS: std::ops::Range<u16> = 7000..7008;

/// The generator's initial sequence number on `port` in round 0.
fn gun_isn(port: u16) -> u32 {
    1_000_000 * u32::from(port - (GUN_PORTS.start - 1))
}

/// A segment of the generator's to `dport` of the server.
fn gun_segment(
    sport: u16,
    dport: u16,
    control: smoltcp::wire::TcpControl,
    seq: u32,
    ack: Option<u32>,
) -> Vec<u8> {
    testkit::frames::segment_to_server(GUN, sport, dport, control, seq, ack, &[])
}

/// Puts raw `frames` on the wire towards the engine, from the client's end.
pub fn inject<A>(net: &mut EngineNet<A>, frames: &[Vec<u8>]) {
    for f in frames {
        assert!(net
            .client
            .port
            .send_frame(f.len(), |b| b.copy_from_slice(f)));
    }
    net.client.port.flush(|_, len| Some(len));
}

/// `frames` injected, then the engine's side alone for one millisecond;
/// the SYN-ACKs it sent to [`GUN`] as (port, server ISN), the rest of what
/// it sent consumed.
fn gun_turn<A: App<MemRings>>(net: &mut EngineNet<A>, frames: &[Vec<u8>]) -> Vec<(u16, u32)> {
    use smoltcp::wire::{EthernetFrame, Ipv4Packet, TcpPacket};
    inject(net, frames);
    net.clock += smoltcp::time::Duration::from_millis(1);
    net.server.step(net.clock);
    let (mut frames, mut out) = (Vec::new(), Vec::new());
    net.client.port.recv(&mut frames);
    for f in frames {
        let synack = net.client.port.read(f, |b| {
            let eth = EthernetFrame::new_checked(b).ok()?;
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let t = TcpPacket::new_checked(ip.payload()).ok()?;
            (ip.dst_addr() == GUN && t.syn() && t.ack())
                .then(|| (t.dst_port(), t.seq_number().0 as u32))
        });
        out.extend(synack.flatten());
        net.client.port.release(f);
    }
    out
}

/// Issue 20's overload burst, as an open-loop load generator leaves a
/// server: 8 connections from [`GUN`] fill the application's table and send
/// nothing; 2 are then reset at RCV.NXT (the engine ends them), 2 get an
/// RST past a request the server never saw (refused: a challenge ACK, as
/// RFC 5961 wants), the rest go silent; and the generator goes round its
/// ports, a new SYN on each of the 6 not reset every 600 ms (each answered
/// by a challenge ACK on the connection still there). No state may outlive
/// its connection: the next clients must be served at once.
pub struct Burst {
    dport: u16,
    round: u32,
    next_round: smoltcp::time::Instant,
}

impl Burst {
    /// The burst on `dport`; the refused RSTs sit `lost` bytes (the
    /// request the server never got) past RCV.NXT.
    pub fn start<A: App<MemRings>>(net: &mut EngineNet<A>, dport: u16, lost: u32) -> Burst {
        use smoltcp::wire::TcpControl;
        net.server.engine.set_learn_neighbors_from_ip(true);
        let syns: Vec<_> = GUN_PORTS
            .map(|p| gun_segment(p, dport, TcpControl::Syn, gun_isn(p), None))
            .collect();
        let synacks = gun_turn(net, &syns);
        assert_eq!(synacks.len(), GUN_PORTS.len(), "every handshake answered");
        let acks: Vec<_> = synacks
            .iter()
            .map(|&(p, s)| {
                gun_segment(
                    p,
                    dport,
                    TcpControl::None,
                    gun_isn(p) + 1,
                    Some(s.wrapping_add(1)),
                )
            })
            .collect();
        gun_turn(net, &acks);
        let mut rsts: Vec<_> = synacks[..2]
            .iter()
            .map(|&(p, _)| gun_segment(p, dport, TcpControl::Rst, gun_isn(p) + 1, None))
            .collect();
        rsts.extend(synacks[4..6].iter().map(|&(p, _)| {
            gun_segment(
                p,
                dport,
                TcpControl::Rst,
                gun_isn(p) + 1 + lost.max(1),
                None,
            )
        }));
        gun_turn(net, &rsts);
        Burst {
            dport,
            round: 0,
            next_round: net.clock,
        }
    }

    /// The generator's next round of SYNs when it is due.
    pub fn tick<A>(&mut self, net: &mut EngineNet<A>) {
        use smoltcp::wire::TcpControl;
        if net.clock < self.next_round {
            return;
        }
        self.round += 1;
        self.next_round = net.clock + smoltcp::time::Duration::from_millis(600);
        let syns: Vec<_> = (GUN_PORTS.start + 2..GUN_PORTS.end)
            .map(|p| {
                let isn = gun_isn(p) + 7_777 * self.round;
                gun_segment(p, self.dport, TcpControl::Syn, isn, None)
            })
            .collect();
        inject(net, &syns);
    }

    /// After 2 s of the generator's rounds, `clients` new clients each
    /// connect to the burst's port, send `request` and must get at least
    /// `reply` bytes back within 2 s, none reset; `show` describes the
    /// application in a failure.
    pub fn then_serve<A: App<MemRings>>(
        &mut self,
        net: &mut EngineNet<A>,
        clients: u16,
        request: &[u8],
        reply: usize,
        show: impl Fn(&A) -> String,
    ) {
        use smoltcp::socket::tcp;
        let two_s = smoltcp::time::Duration::from_secs(2);
        let start = net.clock;
        net.run_until(3000, "2 s of port rounds", |n| {
            self.tick(n);
            n.clock - start >= two_s
        });
        let to = (testkit::SERVER_IP4, self.dport);
        let hs: Vec<_> = (0..clients)
            .map(|i| net.client.connect(40100 + i, to))
            .collect();
        let mut sent = vec![false; hs.len()];
        let start = net.clock;
        net.run_until(3000, "the next clients served", |n| {
            self.tick(n);
            let app = &n.server.app;
            assert!(n.clock - start < two_s, "not served at once: {}", show(app));
            let mut done = 0;
            for (i, &h) in hs.iter().enumerate() {
                let s = n.client.tcp(h);
                assert_ne!(
                    s.state(),
                    tcp::State::Closed,
                    "client {i} reset: {}",
                    show(app)
                );
                if s.may_send() && !sent[i] {
                    s.send_slice(request).unwrap();
                    sent[i] = true;
                }
                done += usize::from(s.recv_queue() >= reply);
            }
            done == hs.len()
        });
    }
}
