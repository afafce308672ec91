//! The proxy on one engine in memory (no root): a `MemClient` on the wire,
//! the attached process played by the test on the app side of a channel.
//! What is checked: the count of connections with staged bytes, which
//! decides whether a turn is busy, against the connections themselves; and
//! the control inbox (an empty one takes no lock, a busy one loses nothing).

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use nic::mem::MemRings;
use nic::shm::{Channel, RingRx, RingTx, Side};
use nix::sys::eventfd::{EfdFlags, EventFd};
use smoltcp::iface::SocketHandle;
use stack::engine::Engine;
use stack::reuseport::{BindAddr, BindOptions, HashSelector};
use stack::testing::{engine_net, with_app, EngineNet};
use stack::worker::App;

use super::{Ctl, ProxyApp};
use crate::Hub;
use attach::proto;

/// The engine's socket takes this much: a larger send stays staged.
const TX_BUF: usize = 8192;
const CLIENT: u64 = 1;

/// The proxy as the worker's app, its last `poll` kept: when it ran, when
/// it asked to run again; and where the process's doorbell was found rung:
/// right after `poll` or right after `flush` (the egress runs between).
struct Recorded {
    proxy: ProxyApp,
    polled: (Instant, Option<Instant>),
    bell: Option<Arc<EventFd>>,
    rung_in_poll: u32,
    rung_in_flush: u32,
}

impl Recorded {
    /// Whether the doorbell was rung since last looked (and clear it).
    fn rung(&self) -> bool {
        self.bell.as_ref().is_some_and(|b| b.read().is_ok())
    }
}

impl App<MemRings> for Recorded {
    fn poll(&mut self, engine: &mut Engine<MemRings>, now: Instant) -> Option<Instant> {
        self.polled = (now, self.proxy.poll(engine, now));
        if self.rung() {
            self.rung_in_poll += 1;
        }
        self.polled.1
    }

    fn flush(&mut self) {
        App::<MemRings>::flush(&mut self.proxy);
        if self.rung() {
            self.rung_in_flush += 1;
        }
    }
}

/// The engine with its proxy and the wire client (`stack::testing`), and
/// the attached process's ends of its channel.
struct Rig {
    net: EngineNet<Recorded>,
    hub: Arc<Hub>,
    tx: RingTx,
    rx: RingRx,
    chan: Channel,
}

impl Rig {
    fn new() -> Rig {
        let hub = Arc::new(Hub::new(1, Arc::new(HashSelector), 8));
        let mut net = with_app(
            engine_net(|c| {
                c.buffers = stack::engine::BufConfig::fixed(64 * 1024, TX_BUF, c.buffers.mem)
            }),
            |engine| {
                let proxy = ProxyApp::new(0, hub.clone(), engine);
                Recorded {
                    proxy,
                    polled: (Instant::now(), None),
                    bell: None,
                    rung_in_poll: 0,
                    rung_in_flush: 0,
                }
            },
        );
        let chan = Channel::create("proxy-test", 1 << 20).unwrap();
        let bell = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC).unwrap();
        let bell = Arc::new(bell);
        net.server.app.bell = Some(bell.clone());
        hub.post(
            0,
            Ctl::Attach {
                client: CLIENT,
                chan: chan.clone(),
                bell,
            },
        );
        let (tx, rx) = chan.split(Side::App);
        Rig {
            net,
            hub,
            tx,
            rx,
            chan,
        }
    }

    /// One worker turn (wire, ingress, the proxy, egress), then a
    /// millisecond passes.
    fn turn(&mut self) {
        self.net.run(1);
    }

    fn proxy(&self) -> &ProxyApp {
        &self.net.server.app.proxy
    }

    /// Whether the last turn asked to run again at once (a busy turn: the
    /// proxy's 1 ms; an idle one waits for a packet or a command).
    fn busy(&self) -> bool {
        let (at, next) = self.net.server.app.polled;
        next == Some(at + Duration::from_millis(1))
    }

    /// Listen on port 80 for the process; its listener id.
    fn listen(&mut self) -> u64 {
        let (reply, answer) = mpsc::sync_channel(1);
        self.hub.post(
            0,
            Ctl::Bind {
                client: CLIENT,
                udp: false,
                addr: BindAddr::Any4,
                port: 80,
                opts: BindOptions::new(1000).with_backlog(8),
                reply,
            },
        );
        self.turn();
        answer.try_recv().unwrap().unwrap()
    }

    /// The process's next record from the proxy.
    fn record(&mut self) -> Option<(u8, u64, Vec<u8>)> {
        let mut out = Vec::new();
        let r = self.rx.pop(&mut out).unwrap()?;
        self.rx.release();
        Some((r.kind, r.id, out))
    }

    /// A wire connection, offered to the process and taken by it.
    fn connection(&mut self, sport: u16) -> (SocketHandle, u64) {
        let h = self.net.client.connect(sport, (testkit::SERVER_IP4, 80));
        for _ in 0..200 {
            self.turn();
            while let Some((kind, id, _)) = self.record() {
                if kind == proto::ACCEPTED {
                    self.command(proto::TAKEN, id, &[]);
                    return (h, id);
                }
            }
        }
        panic!("no connection offered");
    }

    /// A command of the process, published at once.
    fn command(&mut self, kind: u8, id: u64, bytes: &[u8]) {
        assert!(self.tx.push(kind, id, &[bytes]));
        self.tx.publish();
    }

    /// The proxy's count against the connections it holds.
    fn staging(&self) -> (usize, usize) {
        let held = self
            .proxy()
            .conns
            .values()
            .filter(|p| !p.staged.is_empty())
            .count();
        (self.proxy().staging, held)
    }

    /// Read what the wire client received on `h`.
    fn drain_wire(&mut self, h: SocketHandle) -> usize {
        let s = self.net.client.tcp(h);
        let mut n = 0;
        while s.can_recv() {
            n += s.recv(|b| (b.len(), b.len())).unwrap();
        }
        n
    }
}

#[test]
fn staged_bytes_are_counted_until_the_socket_takes_them() {
    let mut rig = Rig::new();
    rig.listen();
    let (h, id) = rig.connection(40000);
    let (h2, id2) = rig.connection(40001);
    rig.turn();
    assert_eq!(rig.staging(), (0, 0));

    // More than the socket holds: the rest waits in the proxy, and every
    // turn is busy until the peer has read it all.
    let body = vec![7u8; 3 * TX_BUF];
    rig.command(proto::SEND, id, &body);
    rig.command(proto::SEND, id2, &body[..TX_BUF / 2]);
    rig.turn();
    assert_eq!(rig.staging(), (1, 1));
    assert!(rig.busy());

    let mut got = 0;
    for _ in 0..2000 {
        got += rig.drain_wire(h);
        rig.drain_wire(h2);
        rig.turn();
        let (count, held) = rig.staging();
        assert_eq!(count, held);
        if count == 0 && got == body.len() {
            break;
        }
        assert!(rig.busy() || count == 0);
    }
    assert_eq!(got, body.len());
    assert_eq!(rig.staging(), (0, 0));
    // Nothing staged, owed or blocked: the proxy waits for work.
    rig.turn();
    rig.turn();
    assert!(!rig.busy(), "{:?}", rig.net.server.app.polled);
    assert!(rig.net.client.tcp(h).is_active());
}

#[test]
fn the_count_follows_aborts_over_credit_and_detach() {
    let mut rig = Rig::new();
    rig.listen();
    let (_, a) = rig.connection(40000);
    let (_, b) = rig.connection(40001);
    let (_, c) = rig.connection(40002);
    let fill = vec![1u8; TX_BUF];

    // Staged, then aborted in the same batch: forgotten, not counted.
    rig.command(proto::SEND, a, &fill);
    rig.command(proto::SEND, a, &fill);
    rig.command(proto::ABORT, a, &[]);
    // Staged past the credit: reset, its bytes dropped.
    rig.command(proto::SEND, b, &fill);
    rig.command(proto::SEND, b, &fill);
    rig.command(proto::SEND, b, &vec![2u8; proto::SEND_CREDIT]);
    // Staged and closed: finishes as an orphan once the process is gone.
    rig.command(proto::SEND, c, &fill);
    rig.command(proto::SEND, c, &fill);
    rig.command(proto::CLOSE, c, &[]);
    rig.turn();
    assert_eq!(rig.proxy().counters.over_credit, 1);
    assert_eq!(rig.staging(), (1, 1));

    rig.hub.post(0, Ctl::Detach { client: CLIENT });
    rig.turn();
    assert_eq!(rig.proxy().counters.detached, 1);
    assert_eq!(rig.staging(), (1, 1), "the orphan still has bytes to send");

    // The wire client never reads: stop with bytes staged.
    let server = &mut rig.net.server;
    App::<MemRings>::shutdown(&mut server.app.proxy, &mut server.engine);
    assert_eq!(rig.staging(), (0, 0));
}

/// An empty inbox is looked at without its lock: a pop while another
/// thread holds the lock returns at once.
#[test]
fn an_empty_inbox_costs_no_lock() {
    let inbox = super::Inbox::default();
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        let held = inbox.queue.lock().unwrap();
        let inbox = &inbox;
        s.spawn(move || tx.send(inbox.pop().is_none()).unwrap());
        let got = rx.recv_timeout(Duration::from_secs(10));
        drop(held);
        assert_eq!(got, Ok(true), "the empty pop waited for the lock");
    });
    inbox.push(Ctl::Detach { client: 3 });
    assert!(inbox.waiting());
    assert!(matches!(inbox.pop(), Some(Ctl::Detach { client: 3 })));
    assert!(!inbox.waiting());
    assert!(inbox.pop().is_none());
}

/// A consumer popping while a producer pushes gets every message, in
/// order, and the flag is down once the queue is empty.
#[test]
fn an_inbox_loses_nothing_between_threads() {
    const N: u64 = 20_000;
    let inbox = super::Inbox::default();
    let mut got = Vec::new();
    let mut take = |m: Option<Ctl>| match m {
        Some(Ctl::Detach { client }) => {
            got.push(client);
            true
        }
        Some(_) => panic!("not the message pushed"),
        None => false,
    };
    std::thread::scope(|s| {
        let producer = s.spawn(|| {
            for client in 0..N {
                inbox.push(Ctl::Detach { client });
            }
        });
        while !producer.is_finished() {
            take(inbox.pop());
        }
    });
    while take(inbox.pop()) {}
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    assert!(!inbox.waiting());
}

/// Issue 20: a peer's reset of a taken connection reaches the process as
/// GONE in the turn the engine took it (not an end of stream the process
/// has to close), and the proxy holds nothing more for it.
#[test]
fn a_peer_reset_reaches_the_process_as_gone_at_once() {
    let mut rig = Rig::new();
    rig.listen();
    let (h, id) = rig.connection(40000);
    let (_h2, _id2) = rig.connection(40001);
    rig.turn();
    while rig.record().is_some() {}
    rig.net.client.tcp(h).abort();
    let mut got = None;
    for _ in 0..5 {
        rig.turn();
        if let Some((kind, rid, _)) = rig.record() {
            got = Some((kind, rid));
            break;
        }
    }
    assert_eq!(
        got,
        Some((proto::GONE, id)),
        "GONE, not EOF ({})",
        proto::EOF
    );
    assert_eq!(rig.proxy().conns.len(), 1, "the other one stays");
    assert_eq!(rig.proxy().json()["ended"], 1);
}

/// Issue 20: an orphan (its process closed it with bytes staged, then went
/// away) whose peer never reads is reset after its deadline; the turns stop
/// being busy.
#[test]
fn an_orphan_with_a_silent_peer_is_reset_after_its_deadline() {
    let mut rig = Rig::new();
    rig.listen();
    let (h, id) = rig.connection(40000);
    let fill = vec![3u8; TX_BUF];
    for _ in 0..8 {
        rig.command(proto::SEND, id, &fill);
    }
    rig.command(proto::CLOSE, id, &[]);
    for _ in 0..20 {
        rig.turn();
    }
    rig.hub.post(0, Ctl::Detach { client: CLIENT });
    rig.turn();
    assert_eq!(rig.staging(), (1, 1), "an orphan with bytes to send");
    assert!(rig.busy());
    // The peer reads nothing for a long time.
    rig.net.clock += smoltcp::time::Duration::from_secs(61);
    rig.turn();
    rig.turn();
    assert_eq!(rig.staging(), (0, 0));
    assert!(rig.proxy().conns.is_empty());
    assert!(!rig.busy(), "{:?}", rig.net.server.app.polled);
    assert_eq!(rig.proxy().json()["orphans_reset"], 1);
    for _ in 0..5 {
        rig.turn();
    }
    assert!(!rig.net.client.tcp(h).is_open(), "the peer was reset");
}

mod attached;

/// A CANCEL_CONNECT of a connect still opening aborts it, and the process
/// gets no answer for it; a cancel of another token changes nothing.
#[test]
fn a_cancelled_connect_is_aborted_and_answered_no_more() {
    use std::net::SocketAddr;
    let mut rig = Rig::new();
    rig.turn();
    let before = rig.net.server.connections();
    // An address of the link that nobody answers for: the SYN waits for
    // ARP, the connect stays open (up to the connect timeout).
    let nobody = proto::encode_peer(Some(SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 77)),
        8080,
    )));
    rig.command(
        proto::CONNECT,
        21,
        &[nobody, proto::encode_peer(None)].concat(),
    );
    for _ in 0..5 {
        rig.turn();
    }
    assert_eq!(rig.net.server.connections(), before + 1, "opening");
    assert!(rig.proxy().conns.values().any(|p| p.connecting == Some(21)));
    // A cancel of another token changes nothing.
    rig.command(proto::CANCEL_CONNECT, 22, &[]);
    rig.turn();
    assert_eq!(rig.net.server.connections(), before + 1);
    assert_eq!(rig.proxy().counters.connects_cancelled, 0);
    rig.command(proto::CANCEL_CONNECT, 21, &[]);
    for _ in 0..5 {
        rig.turn();
    }
    assert_eq!(rig.net.server.connections(), before, "aborted");
    assert_eq!(rig.proxy().counters.connects_cancelled, 1);
    assert!(rig.proxy().conns.values().all(|p| p.connecting != Some(21)));
    for _ in 0..20 {
        rig.turn();
        if let Some((k, id, _)) = rig.record() {
            panic!("answered after the cancel: kind {k}, id {id}");
        }
    }
    assert_eq!(rig.proxy().counters.connect_failed, 0);
}

/// Issue 22: a process's CONNECT goes out through the engine; the answer
/// carries its token (CONNECTED with both addresses, then the connection
/// works as an accepted one once TAKEN), or why it failed
/// (CONNECT_FAILED: the peer's RST, a privileged local port).
#[test]
fn connect_records_open_connections_and_failures_carry_their_reason() {
    use std::net::SocketAddr;
    let mut rig = Rig::new();
    let mut s = smoltcp::socket::tcp::Socket::new(
        smoltcp::socket::tcp::SocketBuffer::new(vec![0; 4096]),
        smoltcp::socket::tcp::SocketBuffer::new(vec![0; 4096]),
    );
    s.listen(8080).unwrap();
    let h = rig.net.client.sockets.add(s);
    let to = |port| {
        proto::encode_peer(Some(SocketAddr::new(
            std::net::IpAddr::V4(testkit::CLIENT_IP4),
            port,
        )))
    };
    let none = proto::encode_peer(None);
    // Token 11: to the listening port; 12: nothing listens; 13: from a
    // privileged local port.
    rig.turn();
    assert!(rig.tx.push(proto::CONNECT, 11, &[&to(8080), &none]));
    assert!(rig.tx.push(proto::CONNECT, 12, &[&to(9), &none]));
    let low = proto::encode_peer(Some("198.18.0.1:80".parse().unwrap()));
    assert!(rig.tx.push(proto::CONNECT, 13, &[&to(8080), &low]));
    rig.tx.publish();
    let mut answers = Vec::new();
    for _ in 0..200 {
        rig.turn();
        while let Some(r) = rig.record() {
            answers.push(r);
        }
        if answers.len() == 3 {
            break;
        }
    }
    let failed = |token: u64| {
        answers
            .iter()
            .find(|(k, id, _)| *k == proto::CONNECT_FAILED && *id == token)
            .map(|(_, _, p)| (proto::ConnectFailure::from_code(p[0]), p[1..].to_vec()))
    };
    assert_eq!(
        failed(12).map(|f| f.0),
        Some(proto::ConnectFailure::Refused),
        "{answers:?}"
    );
    let (why, msg) = failed(13).expect("privileged port refused");
    assert_eq!(why, proto::ConnectFailure::Invalid);
    assert!(String::from_utf8_lossy(&msg).contains("below 1024"));
    let (_, id, p) = answers
        .iter()
        .find(|(k, ..)| *k == proto::CONNECTED)
        .cloned()
        .expect("CONNECTED");
    assert_eq!(u64::from_le_bytes(p[..8].try_into().unwrap()), 11);
    let peer = proto::decode_peer(&p[8..]).unwrap();
    let local = proto::decode_peer(&p[8 + proto::PEER_LEN..]).unwrap();
    assert_eq!(peer.port(), 8080);
    assert_eq!(local.ip(), std::net::IpAddr::V4(testkit::SERVER_IP4));
    assert_eq!(
        rig.net.client.tcp(h).remote_endpoint().map(|e| e.port),
        Some(local.port())
    );
    // Taken: bytes both ways.
    for _ in 0..10 {
        if rig.net.client.tcp(h).may_send() {
            break;
        }
        rig.turn();
    }
    rig.command(proto::TAKEN, id, &(1u32 << 18).to_le_bytes());
    rig.command(proto::SEND, id, b"ping");
    rig.net.client.tcp(h).send_slice(b"pong").unwrap();
    let mut data = Vec::new();
    for _ in 0..50 {
        rig.turn();
        while let Some((k, rid, b)) = rig.record() {
            if k == proto::DATA && rid == id {
                data.extend(b);
            }
        }
        if data == b"pong" && rig.net.client.tcp(h).recv_queue() == 4 {
            break;
        }
    }
    assert_eq!(data, b"pong");
    assert_eq!(rig.net.client.tcp(h).recv_queue(), 4);
    let c = rig.proxy().json();
    assert_eq!(
        (
            c["connects"].as_u64(),
            c["connected"].as_u64(),
            c["connect_failed"].as_u64()
        ),
        (Some(3), Some(1), Some(2))
    );
}

/// A process that sleeps is woken after the worker's egress, not during
/// the proxy's turn: woken there, on the worker's core it would run before
/// the replies it sent last turn leave.
#[test]
fn a_sleeping_process_is_rung_after_the_egress() {
    let mut rig = Rig::new();
    rig.listen();
    let (h, id) = rig.connection(40000);
    rig.turn();
    while rig.record().is_some() {}
    let before = (
        rig.net.server.app.rung_in_poll,
        rig.net.server.app.rung_in_flush,
    );
    // The process announces its sleep; the peer sends bytes.
    assert!(rig.chan.prepare_sleep(Side::App, &rig.rx));
    rig.net.client.tcp(h).send_slice(b"hello").unwrap();
    let mut got = None;
    for _ in 0..5 {
        rig.turn();
        if let Some((kind, rid, bytes)) = rig.record() {
            got = Some((kind, rid, bytes));
            break;
        }
    }
    assert_eq!(got, Some((proto::DATA, id, b"hello".to_vec())));
    let app = &rig.net.server.app;
    assert_eq!(app.rung_in_poll, before.0, "rung inside the proxy's turn");
    assert_eq!(app.rung_in_flush, before.1 + 1, "not rung after the egress");
    assert!(rig.proxy().counters.doorbells >= 1);
}
