//! Issue 20: after an overload burst that leaves connections half-done or
//! reset, the next TCP clients of `EchoApp` are served at once. The engine
//! and the app in memory (no root), a plain smoltcp client for the next
//! clients and raw segments of a load generator on a second address for
//! the burst.

use std::net::Ipv4Addr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use echod::{EchoApp, EchoArgs};
use nic::mem::{MemConfig, MemRings};
use runtime::server::WorkerCtx;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetFrame, IpAddress, Ipv4Packet, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};
use stack::engine::{Engine, EngineConfig};
use stack::reuseport::{BindOptions, FlowHasher, HashSelector};
use stack::shared::Shared;
use stack::worker::App;
use testkit::{Capture, ClientConfig, MemClient};

const SERVER: Ipv4Addr = testkit::SERVER_IP4;

/// Both ends and the app on one virtual clock.
struct Net {
    engine: Engine<MemRings>,
    app: EchoApp,
    client: MemClient,
    clock: Instant,
    t0: std::time::Instant,
    _pcap: Capture,
}

impl Net {
    fn new() -> Net {
        let mut pcap = Capture::new();
        let mem = MemConfig {
            frames: 1024,
            ring: 512,
            ..MemConfig::default()
        };
        let (a, b) = pcap.pair(mem, "server", "client");
        let shared = Shared::new(1, FlowHasher::with_key(1, 2)).unwrap();
        let cfg = EngineConfig::new(testkit::SERVER_MAC, Some((SERVER, 24)), None);
        let mut engine = Engine::new(a, cfg, shared, 0, 0);
        let ctx = WorkerCtx {
            worker: 0,
            selector: Arc::new(HashSelector),
            bind: BindOptions::new(0).with_reuseport(true),
            reload: Arc::new(AtomicU64::new(0)),
        };
        let args = EchoArgs {
            port: 7,
            max_conns: 8,
            idle_timeout: 60,
            attached: Default::default(),
        };
        let app = EchoApp::new(&ctx, &mut engine, &args).unwrap();
        Net {
            engine,
            app,
            client: MemClient::new(b, &ClientConfig::engine_peer()),
            clock: Instant::from_millis(1),
            t0: std::time::Instant::now(),
            _pcap: pcap,
        }
    }

    fn run_until(&mut self, what: &str, mut done: impl FnMut(&mut Net) -> bool) {
        for _ in 0..5000 {
            if done(self) {
                return;
            }
            self.clock += smoltcp::time::Duration::from_millis(1);
            let now = self.clock;
            self.client.step(now);
            self.engine.ingress(now);
            let app_now = self.t0 + std::time::Duration::from_micros(now.total_micros() as u64);
            self.app.poll(&mut self.engine, app_now);
            self.engine.egress(now);
        }
        panic!("not done: {what}");
    }
}

/// The load generator's raw flows come from a second on-link address that
/// the client's smoltcp does not own: it drops (never resets) what the
/// engine sends there.
const GUN: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 50);

fn gun(sport: u16, control: TcpControl, seq: u32, ack: Option<u32>) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: sport,
        dst_port: 7,
        control,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: 64000,
        window_scale: None,
        max_seg_size: (control == TcpControl::Syn).then_some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    testkit::frames::tcp_to_server(GUN, &tcp)
}

impl Net {
    fn inject(&mut self, frames: &[Vec<u8>]) {
        for f in frames {
            assert!(self
                .client
                .port
                .send_frame(f.len(), |b| b.copy_from_slice(f)));
        }
        self.client.port.flush(|_, len| Some(len));
    }

    /// The server side only, one ms; the SYN-ACKs sent to GUN as (port,
    /// server ISN).
    fn gun_turn(&mut self, frames: &[Vec<u8>]) -> Vec<(u16, u32)> {
        self.inject(frames);
        self.clock += smoltcp::time::Duration::from_millis(1);
        let now = self.clock;
        self.engine.ingress(now);
        let app_now = self.t0 + std::time::Duration::from_micros(now.total_micros() as u64);
        self.app.poll(&mut self.engine, app_now);
        self.engine.egress(now);
        let (mut frames, mut out) = (Vec::new(), Vec::new());
        self.client.port.recv(&mut frames);
        for f in frames {
            out.extend(
                self.client
                    .port
                    .read(f, |b| {
                        let eth = EthernetFrame::new_checked(b).ok()?;
                        let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
                        let t = TcpPacket::new_checked(ip.payload()).ok()?;
                        (ip.dst_addr() == GUN && t.syn() && t.ack())
                            .then(|| (t.dst_port(), t.seq_number().0 as u32))
                    })
                    .flatten(),
            );
            self.client.port.release(f);
        }
        out
    }
}

fn counter(net: &Net, name: &str) -> u64 {
    net.app.json()[name].as_u64().unwrap_or(0)
}

#[test]
fn a_burst_left_half_done_does_not_lock_the_next_clients_out() {
    let mut net = Net::new(); // max_conns 8, idle_timeout 60 s
    net.engine.set_learn_neighbors_from_ip(true);
    let isn = |p: u16| 1_000_000 * u32::from(p - 6999);
    // The burst: 8 handshakes fill the table; nothing is sent on them.
    let syns: Vec<_> = (7000..7008)
        .map(|p| gun(p, TcpControl::Syn, isn(p), None))
        .collect();
    let synacks = net.gun_turn(&syns);
    assert_eq!(synacks.len(), 8);
    let acks: Vec<_> = synacks
        .iter()
        .map(|&(p, s)| gun(p, TcpControl::None, isn(p) + 1, Some(s.wrapping_add(1))))
        .collect();
    net.gun_turn(&acks);
    // Two are reset (at RCV.NXT: accepted), two get an RST the engine
    // refuses (a challenge ACK); the rest go silent.
    let mut rsts: Vec<_> = synacks[..2]
        .iter()
        .map(|&(p, _)| gun(p, TcpControl::Rst, isn(p) + 1, None))
        .collect();
    rsts.extend(
        synacks[4..6]
            .iter()
            .map(|&(p, _)| gun(p, TcpControl::Rst, isn(p) + 100, None)),
    );
    net.gun_turn(&rsts);
    // The generator goes round its ports: a new SYN on each every 600 ms.
    let mut round = 0u32;
    let mut next_round = net.clock;
    let mut tick = |n: &mut Net| {
        if n.clock >= next_round {
            round += 1;
            next_round = n.clock + smoltcp::time::Duration::from_millis(600);
            let syns: Vec<_> = (7002..7008)
                .map(|p| gun(p, TcpControl::Syn, isn(p) + 7_777 * round, None))
                .collect();
            n.inject(&syns);
        }
    };
    let start = net.clock;
    net.run_until("2 s of port rounds", |n| {
        tick(n);
        n.clock - start >= smoltcp::time::Duration::from_secs(2)
    });
    // The next clients: eight, each echoed at once (within 2 s).
    let hs: Vec<_> = (0..8)
        .map(|i| net.client.connect(40100 + i, (IpAddress::Ipv4(SERVER), 7)))
        .collect();
    let mut sent = [false; 8];
    let start = net.clock;
    net.run_until("the next clients echoed", |n| {
        tick(n);
        assert!(
            n.clock - start < smoltcp::time::Duration::from_secs(2),
            "not served at once: {}",
            n.app.json()
        );
        let mut done = 0;
        for (i, &h) in hs.iter().enumerate() {
            let s = n.client.tcp(h);
            assert_ne!(
                s.state(),
                tcp::State::Closed,
                "client {i} reset: {}",
                n.app.json()
            );
            if s.may_send() && !sent[i] {
                s.send_slice(b"ping").unwrap();
                sent[i] = true;
            }
            if s.recv_queue() >= 4 {
                done += 1;
            }
        }
        done == hs.len()
    });
    assert_eq!(counter(&net, "rejected_max_conns"), 0);
    assert_eq!(counter(&net, "ended"), 2);
    assert_eq!(counter(&net, "evicted"), 6);
}
