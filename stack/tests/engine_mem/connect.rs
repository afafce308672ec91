//! Outgoing connections (active open, issue 22): the engine connects to the
//! in-memory smoltcp peer. What the engine puts on the wire is read off the
//! client's port before the client's stack sees it (and SYNs dropped there
//! when a test loses them).

use std::net::{IpAddr, SocketAddr};

use smoltcp::iface::SocketHandle;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpAddress, Ipv4Packet, TcpPacket, TcpRepr};
use stack::engine::{ConnectError, EngineConfig};
use stack::reuseport::BindAddr;
use stack::socket::{ConnEnd, ConnError, ConnId};
use stack::testing::{engine_net, inject, EngineNet};
use testkit::MemClient;

use super::{opts, CLIENT, SERVER};

/// A frame the engine sent, as the wire saw it.
#[derive(Clone, Debug)]
enum Seen {
    Arp,
    Tcp {
        at_ms: i64,
        syn: bool,
        ack: bool,
        rst: bool,
        dport: u16,
        mss: Option<u16>,
        wscale: Option<u8>,
        sack: bool,
        ts: bool,
        /// The IP packet.
        ip: Vec<u8>,
    },
}

impl Seen {
    fn is_syn(&self) -> bool {
        matches!(
            self,
            Seen::Tcp {
                syn: true,
                ack: false,
                ..
            }
        )
    }
}

fn parse(b: &[u8], at_ms: i64) -> Option<Seen> {
    let eth = EthernetFrame::new_checked(b).ok()?;
    if eth.ethertype() == EthernetProtocol::Arp {
        return Some(Seen::Arp);
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let t = TcpPacket::new_checked(ip.payload()).ok()?;
    let r = TcpRepr::parse(
        &t,
        &IpAddress::Ipv4(ip.src_addr()),
        &IpAddress::Ipv4(ip.dst_addr()),
        &ChecksumCapabilities::default(),
    )
    .ok()?;
    Some(Seen::Tcp {
        at_ms,
        syn: t.syn(),
        ack: t.ack(),
        rst: t.rst(),
        dport: t.dst_port(),
        mss: r.max_seg_size,
        wscale: r.window_scale,
        sack: r.sack_permitted,
        ts: r.timestamp.is_some(),
        ip: eth.payload().to_vec(),
    })
}

/// One round of the harness, with what the engine sent read first: every
/// frame is recorded in `seen`; a SYN for which `drop_syn` says so never
/// reaches the client.
fn round(net: &mut EngineNet, seen: &mut Vec<Seen>, drop_syn: &mut dyn FnMut(usize) -> bool) {
    let now = net.clock;
    let mut frames = Vec::new();
    while net.client.port.recv(&mut frames) > 0 {
        for f in std::mem::take(&mut frames) {
            let s = net
                .client
                .port
                .read(f, |b| parse(b, now.total_millis()))
                .flatten();
            let syns = seen.iter().filter(|s| s.is_syn()).count();
            let drop = s.as_ref().is_some_and(|s| s.is_syn()) && drop_syn(syns);
            seen.extend(s);
            if !drop {
                let rx = nic::RxPacket {
                    frame: f,
                    offset: 0,
                    len: f.len as usize,
                };
                let c = &mut net.client;
                c.iface
                    .poll_ingress_single(now, &mut c.port.device(Some(rx)), &mut c.sockets);
            }
            net.client.port.release(f);
        }
    }
    net.run(1);
}

/// A client socket listening on `port`.
fn listen(net: &mut EngineNet, port: u16) -> SocketHandle {
    let mut s = MemClient::tcp_socket(65536);
    s.listen(port).unwrap();
    net.client.sockets.add(s)
}

fn peer(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(CLIENT), port)
}

fn ended(net: &mut EngineNet) -> Vec<(ConnId, ConnEnd)> {
    let mut v = Vec::new();
    net.server.take_ended(&mut v);
    v
}

/// Rounds until `c` is no longer connecting (at most `max`).
fn until_settled(
    net: &mut EngineNet,
    c: ConnId,
    max: usize,
    seen: &mut Vec<Seen>,
    drop_syn: &mut dyn FnMut(usize) -> bool,
) {
    for _ in 0..max {
        if !net.server.is_connecting(c) {
            return;
        }
        round(net, seen, drop_syn);
    }
    panic!("still connecting after {max} rounds: {seen:?}");
}

#[test]
fn connect_resolves_the_neighbour_offers_the_passive_options_and_carries_data() {
    let mut net = engine_net(|_| {});
    net.server.set_ready_tracking(true);
    let h = listen(&mut net, 8080);
    let c = net.server.tcp_connect(peer(8080), None).unwrap();
    assert!(net.server.is_connecting(c));
    // Not the application's yet: no reads or writes while connecting.
    assert_eq!(net.server.send(c, b"x"), Err(ConnError::NotFound));
    let mut seen = Vec::new();
    until_settled(&mut net, c, 200, &mut seen, &mut |_| false);
    // The next hop was resolved first (ARP), then the SYN went out with
    // what a SYN-ACK of the passive side offers.
    assert!(matches!(seen[0], Seen::Arp), "{seen:?}");
    let syn = seen.iter().find(|s| s.is_syn()).expect("a SYN");
    let Seen::Tcp {
        dport,
        mss,
        wscale,
        sack,
        ts,
        ..
    } = syn.clone()
    else {
        unreachable!()
    };
    assert_eq!(dport, 8080);
    assert_eq!(mss, Some(1460));
    assert!(wscale.is_some_and(|w| w > 0), "{syn:?}");
    assert!(sack && ts, "{syn:?}");
    net.run_until(10, "the peer established", |n| {
        n.client.tcp(h).state() == tcp::State::Established
    });
    let mut ready = Vec::new();
    net.server.take_ready(&mut ready);
    assert_eq!(ready, vec![c], "established is reported ready");
    assert!(ended(&mut net).is_empty());

    // Addresses: ours with a port of the ephemeral range, the peer's.
    let local = net.server.local(c).unwrap().unwrap();
    let remote = net.server.peer(c).unwrap().unwrap();
    assert_eq!(local.addr, IpAddress::Ipv4(SERVER));
    assert!((32768..=60999).contains(&local.port), "{local}");
    assert_eq!(remote.addr, IpAddress::Ipv4(CLIENT));
    assert_eq!(remote.port, 8080);
    assert_eq!(
        net.client.tcp(h).remote_endpoint().map(|e| e.port),
        Some(local.port)
    );

    // Data both ways, as on an accepted connection.
    assert_eq!(net.server.send(c, b"GET / HTTP/1.0\r\n\r\n").unwrap(), 18);
    let mut buf = [0u8; 64];
    net.run_until(100, "request at the peer", |n| n.client.tcp(h).can_recv());
    let n = net.client.tcp(h).recv_slice(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"GET / HTTP/1.0\r\n\r\n");
    net.client
        .tcp(h)
        .send_slice(b"HTTP/1.0 200 OK\r\n\r\nhi")
        .unwrap();
    net.client.tcp(h).close();
    let mut got = Vec::new();
    net.run_until(100, "answer and FIN", |n| {
        match n.server.recv(c, &mut buf) {
            Ok(k) => {
                got.extend_from_slice(&buf[..k]);
                false
            }
            Err(_) => true,
        }
    });
    assert_eq!(got, b"HTTP/1.0 200 OK\r\n\r\nhi");
    net.server.close(c);
    net.run_until(200, "closed", |n| n.server.connections() == 0);
    let st = net.server.stats().engine;
    assert_eq!((st.connects, st.connects_established), (1, 1));
    assert_eq!(st.connects_refused + st.connects_timed_out, 0);
}

#[test]
fn lost_syns_are_sent_again_with_backoff() {
    let mut net = engine_net(|_| {});
    let h = listen(&mut net, 8080);
    let c = net.server.tcp_connect(peer(8080), None).unwrap();
    let mut seen = Vec::new();
    // The first three SYNs are lost.
    until_settled(&mut net, c, 20_000, &mut seen, &mut |before| before < 3);
    let at: Vec<i64> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Tcp {
                at_ms, syn: true, ..
            } => Some(*at_ms),
            _ => None,
        })
        .collect();
    assert_eq!(at.len(), 4, "{seen:?}");
    let gaps: Vec<i64> = at.windows(2).map(|w| w[1] - w[0]).collect();
    // A retransmission timeout of about a second, doubling each time.
    assert!((900..=1100).contains(&gaps[0]), "{gaps:?}");
    assert!(
        gaps[1] >= 2 * gaps[0] - 50 && gaps[2] >= 2 * gaps[1] - 50,
        "{gaps:?}"
    );
    assert!(!net.server.is_connecting(c));
    assert!(net.server.peer(c).unwrap().is_some());
    net.run_until(10, "the peer established", |n| {
        n.client.tcp(h).state() == tcp::State::Established
    });
}

#[test]
fn an_rst_to_the_syn_is_a_refusal() {
    let mut net = engine_net(|_| {});
    net.server.set_ready_tracking(true);
    // Nothing listens on 9: the client's stack answers the SYN with RST.
    let c = net.server.tcp_connect(peer(9), None).unwrap();
    let mut seen = Vec::new();
    until_settled(&mut net, c, 200, &mut seen, &mut |_| false);
    assert_eq!(ended(&mut net), vec![(c, ConnEnd::Refused)]);
    assert_eq!(net.server.connections(), 0);
    assert_eq!(net.server.stats().flows, 0);
    assert_eq!(net.server.recv(c, &mut [0; 8]), Err(ConnError::NotFound));
    assert_eq!(net.server.stats().engine.connects_refused, 1);
    // The port can be taken again at once.
    let h = listen(&mut net, 9);
    let c = net.server.tcp_connect(peer(9), None).unwrap();
    until_settled(&mut net, c, 200, &mut seen, &mut |_| false);
    assert!(net.server.peer(c).unwrap().is_some());
    net.run_until(10, "the peer established", |n| {
        n.client.tcp(h).state() == tcp::State::Established
    });
}

#[test]
fn a_peer_that_never_answers_times_out() {
    let mut net = engine_net(|c: &mut EngineConfig| {
        c.connect_timeout = std::time::Duration::from_secs(10);
    });
    net.server.set_ready_tracking(true);
    let _h = listen(&mut net, 8080);
    let c = net.server.tcp_connect(peer(8080), None).unwrap();
    let mut seen = Vec::new();
    until_settled(&mut net, c, 12_000, &mut seen, &mut |_| true);
    // Given up at the timeout (10 s after the connect), silently.
    assert!((10_000..=10_010).contains(&net.clock.total_millis()));
    assert_eq!(ended(&mut net), vec![(c, ConnEnd::TimedOut)]);
    let syns = seen.iter().filter(|s| s.is_syn()).count();
    // At 0, 1, 3 and 7 s.
    assert_eq!(syns, 4, "{seen:?}");
    assert_eq!(net.server.connections(), 0);
    assert_eq!(net.server.stats().engine.connects_timed_out, 1);
    for _ in 0..100 {
        round(&mut net, &mut seen, &mut |_| true);
    }
    assert_eq!(seen.iter().filter(|s| s.is_syn()).count(), 4, "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|s| matches!(s, Seen::Tcp { rst: true, .. })),
        "no RST for a connection the peer never saw: {seen:?}"
    );
    // A shutdown aborts connects still waiting.
    let c = net.server.tcp_connect(peer(8080), None).unwrap();
    round(&mut net, &mut seen, &mut |_| true);
    net.server.abort_all();
    net.run(2);
    assert!(!net.server.is_connecting(c));
    assert_eq!(net.server.connections(), 0);
}

#[test]
fn ports_are_taken_per_destination_and_skip_listeners() {
    let mut net = engine_net(|c: &mut EngineConfig| c.ephemeral_ports = (40000, 40002));
    // A listener on 40000: never an outgoing connection's port.
    net.server
        .tcp_listen(BindAddr::Any4, 40000, opts(0))
        .unwrap();
    // A smoltcp listening socket takes one connection: two on each port.
    for p in [8080, 8080, 8081, 8081] {
        listen(&mut net, p);
    }
    let port = |net: &mut EngineNet, c| net.server.local(c).ok().flatten().map(|e| e.port);
    let c1 = net.server.tcp_connect(peer(8080), None).unwrap();
    let c2 = net.server.tcp_connect(peer(8080), None).unwrap();
    assert_eq!(
        net.server.tcp_connect(peer(8080), None),
        Err(ConnectError::NoPort(peer(8080)))
    );
    // Another destination has the whole range again.
    let c3 = net.server.tcp_connect(peer(8081), None).unwrap();
    let c4 = net.server.tcp_connect(peer(8081), None).unwrap();
    let mut seen = Vec::new();
    for c in [c1, c2, c3, c4] {
        until_settled(&mut net, c, 200, &mut seen, &mut |_| false);
    }
    let mut p12 = [port(&mut net, c1), port(&mut net, c2)];
    let mut p34 = [port(&mut net, c3), port(&mut net, c4)];
    p12.sort();
    p34.sort();
    assert_eq!(p12, [Some(40001), Some(40002)]);
    assert_eq!(p34, [Some(40001), Some(40002)]);
    assert_eq!(net.server.stats().engine.connects_no_port, 1);
    // An explicit local port: in use towards 8080, free towards 8082.
    let me = |p| Some(SocketAddr::new(IpAddr::V4(SERVER), p));
    assert_eq!(
        net.server.tcp_connect(peer(8080), me(40001)),
        Err(ConnectError::InUse(me(40001).unwrap()))
    );
    assert!(net.server.tcp_connect(peer(8082), me(40001)).is_ok());
    // Not our address.
    let other = SocketAddr::new(IpAddr::V4(CLIENT), 0);
    assert_eq!(
        net.server.tcp_connect(peer(8080), Some(other)),
        Err(ConnectError::NotLocal(IpAddr::V4(CLIENT)))
    );
    assert!(matches!(
        net.server
            .tcp_connect("[2001:db8::1]:80".parse().unwrap(), None),
        Err(ConnectError::Unaddressable(_))
    ));
}

/// An ICMP destination unreachable (`code`) from the peer's address,
/// quoting the first 28 bytes of `ip` (its header and 8 bytes of TCP).
fn unreachable(code: u8, ip: &[u8]) -> Vec<u8> {
    let mut icmp = vec![3, code, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&ip[..28]);
    smoltcp::wire::Icmpv4Packet::new_unchecked(&mut icmp[..]).fill_checksum();
    let ip = testkit::frames::ip(
        CLIENT.into(),
        SERVER.into(),
        smoltcp::wire::IpProtocol::Icmp,
        &icmp,
    );
    testkit::frames::eth(
        testkit::SERVER_MAC,
        testkit::CLIENT_MAC,
        EthernetProtocol::Ipv4,
        &ip,
    )
}

#[test]
fn icmp_unreachable_quoting_the_syn_ends_the_connect() {
    // Port unreachable and administratively prohibited: refused; host
    // unreachable: unreachable.
    for (code, want) in [
        (3, ConnEnd::Refused),
        (13, ConnEnd::Refused),
        (1, ConnEnd::Unreachable),
    ] {
        let mut net = engine_net(|_| {});
        net.server.set_ready_tracking(true);
        let c = net.server.tcp_connect(peer(8080), None).unwrap();
        let mut seen = Vec::new();
        for _ in 0..50 {
            round(&mut net, &mut seen, &mut |_| true);
            if seen.iter().any(Seen::is_syn) {
                break;
            }
        }
        let Some(Seen::Tcp { ip, .. }) = seen.iter().find(|s| s.is_syn()).cloned() else {
            panic!("no SYN: {seen:?}")
        };
        // A quote of another sequence number (a blind attacker's guess):
        // ignored, the connect goes on.
        let mut guess = ip.clone();
        guess[24] ^= 0x80;
        inject(&mut net, &[unreachable(code, &guess)]);
        round(&mut net, &mut seen, &mut |_| true);
        assert!(net.server.is_connecting(c));
        assert_eq!(net.server.stats().engine.icmp_unreachable_ignored, 1);
        inject(&mut net, &[unreachable(code, &ip)]);
        round(&mut net, &mut seen, &mut |_| true);
        assert_eq!(ended(&mut net), vec![(c, want)], "code {code}");
        assert_eq!(net.server.connections(), 0);
        let st = net.server.stats().engine;
        assert_eq!(st.connects_refused + st.connects_unreachable, 1);
        // The answer to an established connection's segment changes
        // nothing (the peer's host or port may come back).
        let h = listen(&mut net, 8081);
        let c = net.server.tcp_connect(peer(8081), None).unwrap();
        until_settled(&mut net, c, 200, &mut seen, &mut |_| false);
        net.run_until(10, "established", |n| {
            n.client.tcp(h).state() == tcp::State::Established
        });
        let syn = seen
            .iter()
            .rev()
            .find_map(|s| match s {
                Seen::Tcp {
                    syn: true,
                    dport: 8081,
                    ip,
                    ..
                } => Some(ip.clone()),
                _ => None,
            })
            .unwrap();
        inject(&mut net, &[unreachable(code, &syn)]);
        round(&mut net, &mut seen, &mut |_| false);
        assert!(net.server.peer(c).unwrap().is_some(), "still open");
        assert_eq!(net.server.stats().engine.icmp_unreachable_ignored, 2);
    }
}
