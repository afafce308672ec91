//! The smoltcp `Device` adapter over a `Port`, in memory: two endpoints, each
//! a port over one end of a `MemRings` pipe and a smoltcp interface, driven in
//! rounds with simulated time (1 ms per round), quinn-style. No root needed.

use nic::mem::{Faults, MemConfig, MemRings, TapLink};
use nic::{LedgerError, Place, PortStats, RxPacket};
use smoltcp::iface::PollIngressSingleResult;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::wire::{
    Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpAddress, IpCidr, IpEndpoint, Ipv4Address,
    Ipv6Address,
};
use testkit::{Capture, ClientConfig, MemClient, Rng};

const A4: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const B4: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
const A6: Ipv6Address = Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const B6: Ipv6Address = Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

/// Bytes the TCP tests send one way (and get echoed back).
const TOTAL: usize = 1 << 20;

/// Two endpoints, A (the client, which connects) and B (the server, which
/// listens), each a `MemClient` (`Medium::Ip`), in the in-memory harness
/// with both ports' accounting checked every round.
type Net = testkit::Net<MemClient>;

fn side(rings: MemRings, verify: bool, v4: Ipv4Address, v6: Ipv6Address, seed: u64) -> MemClient {
    let addrs = [
        IpCidr::new(IpAddress::Ipv4(v4), 24),
        IpCidr::new(IpAddress::Ipv6(v6), 64),
    ];
    let cfg = ClientConfig {
        seed,
        verify_rx_checksums: verify,
        ..ClientConfig::ip(&addrs)
    };
    MemClient::new(rings, &cfg)
}

struct NetConfig {
    faults_a: Faults,
    faults_b: Faults,
    verify: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            faults_a: Faults::default(),
            faults_b: Faults::default(),
            verify: true,
        }
    }
}

fn net(cfg: NetConfig) -> Net {
    let (mut ra, mut rb) = MemRings::pair(MemConfig::default());
    ra.set_faults(cfg.faults_a);
    rb.set_faults(cfg.faults_b);
    let mut pcap = Capture::new();
    pcap.tap_link(&mut ra, "A", TapLink::RawIp);
    pcap.tap_link(&mut rb, "B", TapLink::RawIp);
    let a = side(ra, cfg.verify, A4, A6, 0x5eed_000a);
    let b = side(rb, cfg.verify, B4, B6, 0x5eed_000b);
    Net::new(b, a, pcap).checked()
}

/// A few idle rounds, then both ports must have every frame back.
fn finish(net: &mut Net) {
    net.run(5);
    for (name, s) in [("A", &net.client), ("B", &net.server)] {
        s.check(name);
        let f = s.port.stats().frames;
        assert_eq!(
            f[Place::Free as usize] + f[Place::Fill as usize],
            MemConfig::default().frames,
            "port {name}: {f:?}"
        );
    }
}

/// A deterministic byte stream.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    Rng::new(seed).bytes(len)
}

/// How a TCP echo run ended.
#[derive(Debug)]
struct TcpOutcome {
    rounds: i64,
    /// Offset of the first echoed byte that differed, when one did.
    mismatch: Option<usize>,
    a: PortStats,
    b: PortStats,
}

impl TcpOutcome {
    fn report(&self, what: &str) {
        let (a, b) = (&self.a.counters, &self.b.counters);
        println!(
            "{what}: {} rounds ({} ms simulated), A sent {} frames / {} bytes, B sent {} frames / {} bytes",
            self.rounds, self.rounds, a.tx_frames, a.tx_bytes, b.tx_frames, b.tx_bytes
        );
    }

    /// Both directions carried the data at least once, and neither port ever
    /// ran out of frames or dropped anything itself.
    fn assert_clean_ports(&self) {
        for s in [&self.a, &self.b] {
            assert!(s.counters.tx_bytes >= TOTAL as u64, "{s:?}");
            assert_eq!(s.counters.tx_no_frame, 0, "{s:?}");
            assert_eq!(s.counters.tx_dropped, 0, "{s:?}");
            assert_eq!(s.counters.rx_bad_desc, 0, "{s:?}");
            assert_eq!(s.kernel.unwrap().rx_dropped, 0, "{s:?}");
        }
    }
}

/// A connects to B, sends `TOTAL` bytes, B echoes them; A checks every byte.
/// With `stop_on_mismatch` a wrong byte ends the run instead of failing it.
fn tcp_echo(cfg: NetConfig, v6: bool, max_rounds: usize, stop_on_mismatch: bool) -> TcpOutcome {
    let mut net = net(cfg);
    let (a_addr, b_addr) = if v6 {
        (IpAddress::Ipv6(A6), IpAddress::Ipv6(B6))
    } else {
        (IpAddress::Ipv4(A4), IpAddress::Ipv4(B4))
    };
    let data = pattern(TOTAL, 0x1234_5678);

    let mut listener = MemClient::tcp_socket(64 * 1024);
    listener.listen(7).unwrap();
    let lh = net.server.sockets.add(listener);
    let mut client = MemClient::tcp_socket(64 * 1024);
    client
        .connect(net.client.iface.context(), (b_addr, 7), 49152)
        .unwrap();
    let ch = net.client.sockets.add(client);

    let mut sent = 0usize;
    let mut received = 0usize;
    let mut mismatch = None;
    let mut echo_pending: Vec<u8> = Vec::new();
    let mut rbuf = vec![0u8; 16 * 1024];
    let mut b_closed = false;

    net.run_until(max_rounds, "tcp echo", |net| {
        // A: send, read back and compare.
        let c = net.client.sockets.get_mut::<tcp::Socket>(ch);
        if c.is_active() && c.state() == tcp::State::Established {
            assert_eq!(c.remote_endpoint(), Some(IpEndpoint::new(b_addr, 7)));
            assert_eq!(c.local_endpoint().map(|e| e.addr), Some(a_addr));
        }
        while sent < TOTAL && c.can_send() {
            let n = c.send_slice(&data[sent..]).unwrap();
            if n == 0 {
                break;
            }
            sent += n;
        }
        while c.can_recv() && mismatch.is_none() {
            let n = c.recv_slice(&mut rbuf).unwrap();
            if n == 0 {
                break;
            }
            assert!(received + n <= TOTAL, "more bytes echoed than sent");
            if let Some(i) = (0..n).find(|&i| rbuf[i] != data[received + i]) {
                if !stop_on_mismatch {
                    panic!("echoed byte {} differs", received + i);
                }
                mismatch = Some(received + i);
            }
            received += n;
        }
        if received == TOTAL && c.state() == tcp::State::Established {
            c.close();
        }

        // B: echo everything back, close after A's FIN.
        let s = net.server.sockets.get_mut::<tcp::Socket>(lh);
        loop {
            if !echo_pending.is_empty() {
                let n = s.send_slice(&echo_pending).unwrap_or(0);
                echo_pending.drain(..n);
                if !echo_pending.is_empty() {
                    break;
                }
            }
            if !s.can_recv() {
                break;
            }
            let n = s.recv_slice(&mut rbuf).unwrap();
            echo_pending.extend_from_slice(&rbuf[..n]);
        }
        if !b_closed && echo_pending.is_empty() && s.state() == tcp::State::CloseWait {
            s.close();
            b_closed = true;
        }
        let a_state = net.client.sockets.get::<tcp::Socket>(ch).state();
        let b_state = net.server.sockets.get::<tcp::Socket>(lh).state();
        mismatch.is_some()
            || (received == TOTAL
                && b_state == tcp::State::Closed
                && a_state == tcp::State::TimeWait)
    });
    if mismatch.is_none() {
        assert_eq!(sent, TOTAL);
        assert_eq!(received, TOTAL);
        finish(&mut net);
    }
    TcpOutcome {
        rounds: net.rounds as i64,
        mismatch,
        a: net.client.port.stats(),
        b: net.server.port.stats(),
    }
}

#[test]
fn tcp_echo_1mib_ipv4() {
    let out = tcp_echo(NetConfig::default(), false, 20_000, false);
    out.report("tcp v4");
    out.assert_clean_ports();
    // Nothing lost: every frame sent arrived.
    assert_eq!(out.a.counters.tx_frames, out.b.counters.rx_frames);
    assert_eq!(out.b.counters.tx_frames, out.a.counters.rx_frames);
}

#[test]
fn tcp_echo_1mib_ipv6() {
    let out = tcp_echo(NetConfig::default(), true, 20_000, false);
    out.report("tcp v6");
    out.assert_clean_ports();
    assert_eq!(out.a.counters.tx_frames, out.b.counters.rx_frames);
    assert_eq!(out.b.counters.tx_frames, out.a.counters.rx_frames);
}

/// Every 13th frame from A is lost: TCP retransmits and the echo is intact.
#[test]
fn tcp_echo_survives_drops() {
    for v6 in [false, true] {
        let cfg = NetConfig {
            faults_a: Faults {
                drop_every: 13,
                corrupt_every: 0,
                delay_us: 0,
                ..Faults::default()
            },
            ..NetConfig::default()
        };
        let out = tcp_echo(cfg, v6, 200_000, false);
        out.report(&format!("tcp drops v6={v6}"));
        out.assert_clean_ports();
        // The wire really lost every 13th frame from A, and only those.
        let sent = out.a.counters.tx_frames;
        assert!(sent / 13 > 50, "too few drops to mean anything: {sent}");
        assert_eq!(out.b.counters.rx_frames, sent - sent / 13);
        assert_eq!(out.a.counters.rx_frames, out.b.counters.tx_frames);
    }
}

fn corrupting() -> NetConfig {
    NetConfig {
        faults_a: Faults {
            drop_every: 0,
            corrupt_every: 17,
            delay_us: 0,
            ..Faults::default()
        },
        faults_b: Faults {
            drop_every: 0,
            corrupt_every: 23,
            delay_us: 0,
            ..Faults::default()
        },
        verify: true,
    }
}

/// Every 17th frame from A and 23rd from B has a byte flipped: smoltcp's
/// checksum verification rejects them, TCP retransmits, the echo is intact.
#[test]
fn tcp_echo_rejects_corruption() {
    for v6 in [false, true] {
        let out = tcp_echo(corrupting(), v6, 200_000, false);
        out.report(&format!("tcp corruption v6={v6}"));
        out.assert_clean_ports();
        // Corrupted frames arrive (the port does not look inside them);
        // smoltcp throws them away.
        let sent = out.a.counters.tx_frames;
        assert!(
            sent / 17 > 50,
            "too few corruptions to mean anything: {sent}"
        );
        assert_eq!(out.b.counters.rx_frames, sent);
        assert_eq!(out.a.counters.rx_frames, out.b.counters.tx_frames);
    }
}

/// The control for the test above: without checksum verification the same
/// corruption reaches the application, so the test above is meaningful.
#[test]
fn corruption_gets_through_without_checksum_verification() {
    let cfg = NetConfig {
        verify: false,
        ..corrupting()
    };
    let out = tcp_echo(cfg, false, 200_000, true);
    out.report("tcp corruption, no verification");
    assert!(
        out.mismatch.is_some(),
        "no corrupted byte arrived without verification: {out:?}"
    );
}

fn udp_socket() -> udp::Socket<'static> {
    udp::Socket::new(
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; 128 * 1024]),
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; 128 * 1024]),
    )
}

fn udp_round_trip(v6: bool) {
    let mut net = net(NetConfig::default());
    let (a_addr, b_addr, max) = if v6 {
        (IpAddress::Ipv6(A6), IpAddress::Ipv6(B6), 1452)
    } else {
        (IpAddress::Ipv4(A4), IpAddress::Ipv4(B4), 1472)
    };
    let mut a = udp_socket();
    a.bind(IpEndpoint::new(a_addr, 5353)).unwrap();
    let ah = net.client.sockets.add(a);
    let mut b = udp_socket();
    b.bind(7).unwrap();
    let bh = net.server.sockets.add(b);

    let sizes: Vec<usize> = [0, 1, 2, 63, 64, 500, 1000, max - 1, max]
        .into_iter()
        .chain((0..31).map(|i| 1 + (i * 211) % max))
        .collect();
    let payloads: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| pattern(n, 100 + i as u64))
        .collect();
    let mut next_send = 0;
    let mut got = 0;
    let mut buf = vec![0u8; 2048];
    net.run_until(1_000, "udp round trip", |net| {
        let a = net.client.sockets.get_mut::<udp::Socket>(ah);
        // A few datagrams in flight at a time.
        while next_send < payloads.len() && next_send < got + 8 && a.can_send() {
            a.send_slice(&payloads[next_send], IpEndpoint::new(b_addr, 7))
                .unwrap();
            next_send += 1;
        }
        while a.can_recv() {
            let (n, meta) = a.recv_slice(&mut buf).unwrap();
            assert_eq!(meta.endpoint, IpEndpoint::new(b_addr, 7));
            assert_eq!(meta.local_address, Some(a_addr));
            assert_eq!(
                &buf[..n],
                &payloads[got][..],
                "datagram {got} ({} bytes) came back different",
                payloads[got].len()
            );
            got += 1;
        }
        let b = net.server.sockets.get_mut::<udp::Socket>(bh);
        while b.can_recv() {
            let (n, meta) = b.recv_slice(&mut buf).unwrap();
            assert_eq!(meta.endpoint, IpEndpoint::new(a_addr, 5353));
            b.send_slice(&buf[..n], meta.endpoint).unwrap();
        }
        got == payloads.len()
    });
    finish(&mut net);
}

#[test]
fn udp_round_trip_ipv4() {
    udp_round_trip(false);
}

#[test]
fn udp_round_trip_ipv6() {
    udp_round_trip(true);
}

fn icmp_socket() -> icmp::Socket<'static> {
    icmp::Socket::new(
        icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 16], vec![0; 8192]),
        icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 16], vec![0; 8192]),
    )
}

/// A pings B with an ICMP socket; B's interface answers by itself.
fn ping(v6: bool) {
    const IDENT: u16 = 0x22b;
    const COUNT: u16 = 10;
    let mut net = net(NetConfig::default());
    let mut s = icmp_socket();
    s.bind(icmp::Endpoint::Ident(IDENT)).unwrap();
    let h = net.client.sockets.add(s);
    let caps = ChecksumCapabilities::default();
    let b_addr = if v6 {
        IpAddress::Ipv6(B6)
    } else {
        IpAddress::Ipv4(B4)
    };
    let mut seq = 0u16;
    let mut replies = 0u16;
    net.run_until(1_000, "ping", |net| {
        let src6 = net.client.iface.get_source_address_ipv6(&B6);
        let s = net.client.sockets.get_mut::<icmp::Socket>(h);
        if seq < COUNT && seq == replies && s.can_send() {
            let data = pattern(56, u64::from(seq) + 1);
            if v6 {
                let repr = Icmpv6Repr::EchoRequest {
                    ident: IDENT,
                    seq_no: seq,
                    data: &data,
                };
                let buf = s.send(repr.buffer_len(), b_addr).unwrap();
                repr.emit(&src6, &B6, &mut Icmpv6Packet::new_unchecked(buf), &caps);
            } else {
                let repr = Icmpv4Repr::EchoRequest {
                    ident: IDENT,
                    seq_no: seq,
                    data: &data,
                };
                let buf = s.send(repr.buffer_len(), b_addr).unwrap();
                repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
            }
            seq += 1;
        }
        while s.can_recv() {
            let (bytes, from) = s.recv().unwrap();
            assert_eq!(from, b_addr);
            let want = pattern(56, u64::from(replies) + 1);
            if v6 {
                let p = Icmpv6Packet::new_checked(bytes).unwrap();
                let repr = Icmpv6Repr::parse(&B6, &src6, &p, &caps).unwrap();
                assert_eq!(
                    repr,
                    Icmpv6Repr::EchoReply {
                        ident: IDENT,
                        seq_no: replies,
                        data: &want
                    }
                );
            } else {
                let p = Icmpv4Packet::new_checked(bytes).unwrap();
                let repr = Icmpv4Repr::parse(&p, &caps).unwrap();
                assert_eq!(
                    repr,
                    Icmpv4Repr::EchoReply {
                        ident: IDENT,
                        seq_no: replies,
                        data: &want
                    }
                );
            }
            replies += 1;
        }
        replies == COUNT
    });
    // B answered from its interface alone: it has no sockets at all.
    assert_eq!(net.server.sockets.iter().count(), 0);
    let (sa, sb) = (net.client.port.stats(), net.server.port.stats());
    assert_eq!(sa.counters.tx_frames, u64::from(COUNT));
    assert_eq!(sb.counters.tx_frames, u64::from(COUNT));
    finish(&mut net);
}

#[test]
fn icmp_echo_ipv4() {
    ping(false);
}

#[test]
fn icmp_echo_ipv6() {
    ping(true);
}

/// A packet whose frame the caller does not hold (here: already released) is
/// not read by the device, and `check()` reports the caller bug.
#[test]
fn device_refuses_packet_in_frame_not_held() {
    let mut net = net(NetConfig::default());
    let mut s = icmp_socket();
    s.bind(icmp::Endpoint::Ident(1)).unwrap();
    let h = net.client.sockets.add(s);
    let repr = Icmpv4Repr::EchoRequest {
        ident: 1,
        seq_no: 0,
        data: b"hello",
    };
    let caps = ChecksumCapabilities::default();
    let buf = net
        .client
        .sockets
        .get_mut::<icmp::Socket>(h)
        .send(repr.buffer_len(), IpAddress::Ipv4(B4))
        .unwrap();
    repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
    let now = net.clock;
    net.client.step(now);

    let b = &mut net.server;
    let mut frames = Vec::new();
    assert_eq!(b.port.recv(&mut frames), 1);
    let f = frames[0];
    b.port.release(f);
    let rx = RxPacket {
        frame: f,
        offset: 0,
        len: f.len as usize,
    };
    let r = b
        .iface
        .poll_ingress_single(now, &mut b.port.device(Some(rx)), &mut b.sockets);
    assert_eq!(r, PollIngressSingleResult::None);
    assert_eq!(b.port.pending_tx(), 0, "no reply to a packet never read");
    match b.port.check() {
        Err(LedgerError::WrongPlace {
            from: Place::Rx,
            actual: Place::Free,
            ..
        }) => {}
        other => panic!("check() after a stale rx packet: {other:?}"),
    }
}

/// Out-of-range offsets and lengths inside a held frame read what fits and
/// never panic.
#[test]
fn device_clamps_packet_bounds() {
    let mut net = net(NetConfig::default());
    assert!(net.client.port.send_frame(40, |b| b.fill(0xee)));
    net.client.port.flush(|_, len| Some(len));
    let now = net.clock;
    let b = &mut net.server;
    let mut frames = Vec::new();
    assert_eq!(b.port.recv(&mut frames), 1);
    let f = frames[0];
    for (offset, len) in [(0, 4000), (30, 100), (4000, 10), (usize::MAX, usize::MAX)] {
        let rx = RxPacket {
            frame: f,
            offset,
            len,
        };
        // Garbage to smoltcp: dropped, no reply.
        b.iface
            .poll_ingress_single(now, &mut b.port.device(Some(rx)), &mut b.sockets);
    }
    b.port.release(f);
    b.check("B");
    assert_eq!(b.port.pending_tx(), 0);
}
