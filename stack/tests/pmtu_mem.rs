//! Path MTU discovery end to end in memory (no root): the engine sends a
//! download to a plain smoltcp client through a router in the test that
//! drops every IP packet larger than its MTU towards the client (DF is set
//! on everything the stack sends; IPv6 routers never fragment) and answers
//! with an ICMP "fragmentation needed" (RFC 1191) or ICMPv6 "packet too
//! big" (RFC 8201) from its own address, quoting the dropped packet's IP
//! header and 8 bytes of TCP as the minimum RFC 792 allows. The engine
//! must lower the connection's MSS, resend what was in flight at the new
//! size and finish the transfer; messages that fail the checks of RFC 5927
//! (another flow, a sequence number outside the flight, an MTU that lowers
//! nothing, a cut quote) must change nothing and be counted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nic::mem::{MemConfig, MemRings};
use nic::{Frame, Port, PortConfig};
use smoltcp::iface::SocketHandle;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, Icmpv4Packet, Icmpv6Packet, IpAddress, IpCidr, IpEndpoint,
    IpProtocol,
};
use stack::engine::{Engine, EngineConfig, EngineCounters, ListenerId};
use stack::reuseport::{BindAddr, BindOptions, FlowHasher};
use stack::shared::Shared;
use stack::socket::ConnId;
use testkit::{ClientConfig, MemClient, Rng, CLIENT_MAC, SERVER_MAC};

const SERVER4: Ipv4Addr = testkit::SERVER_IP4;
const SERVER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
/// The router's own addresses: the ICMP messages come from them.
const ROUTER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
const ROUTER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0xfe);
const PORT: u16 = 80;

/// The engine, a router, the client.
struct Path {
    engine: Engine<MemRings>,
    listener: ListenerId,
    client: MemClient,
    /// The router's end towards the engine and its end towards the client.
    to_server: Port<MemRings>,
    to_client: Port<MemRings>,
    /// The largest IP packet the router forwards towards the client.
    mtu: usize,
    /// Answer a packet too big with an ICMP error (else drop it silently:
    /// a black hole).
    answer: bool,
    /// ICMP errors the router sent.
    errors: usize,
    /// The largest IP packet it forwarded towards the client, since it was
    /// last zeroed.
    biggest: usize,
    /// The IP header and first 8 TCP bytes of the last data segment
    /// forwarded towards the client.
    last_data: Vec<u8>,
    clock: Instant,
    frames: Vec<Frame>,
}

fn router_port(rings: MemRings) -> Port<MemRings> {
    Port::new(
        rings,
        PortConfig {
            l2_headroom: 0,
            verify_rx_checksums: false,
            ..PortConfig::default()
        },
    )
}

impl Path {
    fn new(mtu: usize) -> Path {
        let mem = MemConfig {
            frames: 1024,
            ring: 512,
            ..MemConfig::default()
        };
        let (server_end, r1) = MemRings::pair(mem);
        let (r2, client_end) = MemRings::pair(mem);
        let shared = Shared::new(1, FlowHasher::with_key(1, 2)).expect("one core");
        let cfg = EngineConfig::new(SERVER_MAC, Some((SERVER4, 24)), Some((SERVER6, 64)));
        let mut engine = Engine::new(server_end, cfg, shared, 0, 0);
        let listener = engine
            .tcp_listen(
                BindAddr::DUAL_STACK,
                PORT,
                BindOptions::new(0).with_backlog(16),
            )
            .unwrap();
        let mut ccfg = ClientConfig::engine_peer();
        ccfg.addrs.push(IpCidr::new(IpAddress::Ipv6(CLIENT6), 64));
        Path {
            engine,
            listener,
            client: MemClient::new(client_end, &ccfg),
            to_server: router_port(r1),
            to_client: router_port(r2),
            mtu,
            answer: true,
            errors: 0,
            biggest: 0,
            last_data: Vec::new(),
            clock: Instant::from_millis(0),
            frames: Vec::new(),
        }
    }

    fn counters(&self) -> EngineCounters {
        self.engine.stats().engine
    }

    /// One millisecond: the client, the router, the engine, the router.
    fn step(&mut self) {
        self.client.step(self.clock);
        self.route();
        self.engine.ingress(self.clock);
        self.engine.egress(self.clock);
        self.route();
        self.clock += Duration::from_millis(1);
    }

    /// Move frames both ways; towards the client, drop what is too big.
    fn route(&mut self) {
        self.to_client.recv(&mut self.frames);
        for f in std::mem::take(&mut self.frames) {
            let bytes = self.to_client.read(f, |b| b.to_vec()).unwrap();
            self.to_client.release(f);
            inject(&mut self.to_server, &bytes);
        }
        self.to_server.recv(&mut self.frames);
        for f in std::mem::take(&mut self.frames) {
            let bytes = self.to_server.read(f, |b| b.to_vec()).unwrap();
            self.to_server.release(f);
            let ethertype = EthernetFrame::new_checked(&bytes[..]).unwrap().ethertype();
            let ip = &bytes[14..];
            // (IP length, DF, IP header length, TCP data offset) of an IP packet.
            let (len, df, ihl, tcp) = match ethertype {
                EthernetProtocol::Ipv4 => {
                    let ihl = usize::from(ip[0] & 0xf) * 4;
                    let len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                    (len, ip[6] & 0x40 != 0, ihl, (ip[9] == 6).then_some(ihl))
                }
                EthernetProtocol::Ipv6 => {
                    let len = 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
                    (len, true, 40, (ip[6] == 6).then_some(40))
                }
                _ => (0, false, 0, None),
            };
            if len > self.mtu && df {
                if self.answer {
                    // The minimum quote: the IP header and 8 bytes.
                    let e = too_big(&ip[..ihl + 8], self.mtu as u32);
                    inject(&mut self.to_server, &e);
                    self.errors += 1;
                }
                continue;
            }
            self.biggest = self.biggest.max(len);
            if let Some(t) = tcp.filter(|&t| ip.len() >= t + 20) {
                if len > t + usize::from(ip[t + 12] >> 4) * 4 {
                    self.last_data = ip[..ihl + 8].to_vec();
                }
            }
            inject(&mut self.to_client, &bytes);
        }
    }

    /// Connect from `sport` to the engine over `v6` or IPv4 and accept.
    fn connect(&mut self, sport: u16, v6: bool) -> (ConnId, SocketHandle) {
        let remote: IpEndpoint = if v6 {
            (IpAddress::Ipv6(SERVER6), PORT).into()
        } else {
            (IpAddress::Ipv4(SERVER4), PORT).into()
        };
        let s = MemClient::tcp_socket(64 * 1024);
        let h = self.client.connect_with(s, sport, remote);
        for _ in 0..500 {
            self.step();
            if let Some(c) = self.engine.accept(self.listener) {
                return (c, h);
            }
        }
        panic!("not accepted");
    }

    /// One step of a download of `data` on `c`: the engine is given what
    /// it takes of the rest (`sent` so far), the client reads into `got`.
    fn pump(
        &mut self,
        (c, h): (ConnId, SocketHandle),
        data: &[u8],
        sent: &mut usize,
        got: &mut Vec<u8>,
    ) {
        if *sent < data.len() {
            *sent += self.engine.send(c, &data[*sent..]).unwrap();
        }
        self.step();
        let mut buf = [0u8; 16384];
        let sock = self.client.tcp(h);
        while let Ok(n) = sock.recv_slice(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    }

    /// Download `data` on `c` for at most `ms` milliseconds; what the
    /// client read.
    fn download(&mut self, conn: (ConnId, SocketHandle), data: &[u8], ms: usize) -> Vec<u8> {
        let (mut sent, mut got) = (0, Vec::new());
        for _ in 0..ms {
            self.pump(conn, data, &mut sent, &mut got);
            if got.len() == data.len() {
                break;
            }
        }
        got
    }
}

fn inject(port: &mut Port<MemRings>, frame: &[u8]) {
    assert!(port.send_frame(frame.len(), |b| b.copy_from_slice(frame)));
    port.flush(|_, len| Some(len));
}

/// The ICMP error a router sends for the quoted packet (`quote`: its first
/// bytes) and `mtu`, as an Ethernet frame to the engine.
fn too_big(quote: &[u8], mtu: u32) -> Vec<u8> {
    if quote[0] >> 4 == 4 {
        let mut icmp = vec![3, 4, 0, 0, 0, 0];
        icmp.extend_from_slice(&(mtu as u16).to_be_bytes());
        icmp.extend_from_slice(quote);
        icmp4_frame(icmp)
    } else {
        let mut icmp = vec![2, 0, 0, 0];
        icmp.extend_from_slice(&mtu.to_be_bytes());
        icmp.extend_from_slice(quote);
        icmp6_frame(icmp)
    }
}

fn icmp4_frame(mut icmp: Vec<u8>) -> Vec<u8> {
    Icmpv4Packet::new_unchecked(&mut icmp[..]).fill_checksum();
    let ip = testkit::frames::ip(ROUTER4.into(), SERVER4.into(), IpProtocol::Icmp, &icmp);
    testkit::frames::eth(SERVER_MAC, CLIENT_MAC, EthernetProtocol::Ipv4, &ip)
}

fn icmp6_frame(mut icmp: Vec<u8>) -> Vec<u8> {
    Icmpv6Packet::new_unchecked(&mut icmp[..]).fill_checksum(&ROUTER6, &SERVER6);
    let ip = testkit::frames::ip(ROUTER6.into(), SERVER6.into(), IpProtocol::Icmpv6, &icmp);
    testkit::frames::eth(SERVER_MAC, CLIENT_MAC, EthernetProtocol::Ipv6, &ip)
}

fn payload(len: usize) -> Vec<u8> {
    let mut rng = Rng::new(0x5eed);
    rng.bytes(len)
}

/// The PMTUD counters: accepted, no connection, out of window, bad MTU,
/// malformed.
fn pmtu(c: &EngineCounters) -> [u64; 5] {
    [
        c.icmp_frag_needed,
        c.icmp_frag_needed_no_conn,
        c.icmp_frag_needed_out_of_window,
        c.icmp_frag_needed_bad_mtu,
        c.icmp_frag_needed_malformed,
    ]
}

/// A download of 512 KiB through a path of MTU 1280 finishes, byte-exact,
/// in segments that fit; without the router's message it stalls.
fn download_through_small_mtu(v6: bool) {
    let data = payload(512 * 1024);
    let mut p = Path::new(1280);
    let conn = p.connect(40000, v6);
    let (mut sent, mut got) = (0, Vec::new());
    while p.errors == 0 {
        p.pump(conn, &data, &mut sent, &mut got);
    }
    // The whole initial window was too big: nothing arrived. The resend
    // goes at once, not after a retransmission timeout (200 ms at least).
    assert!(got.is_empty());
    for _ in 0..3 {
        p.pump(conn, &data, &mut sent, &mut got);
    }
    assert!(got.len() >= 10 * 1200, "{} bytes after 3 ms", got.len());
    for _ in 0..20_000 {
        if got.len() == data.len() {
            break;
        }
        p.pump(conn, &data, &mut sent, &mut got);
    }
    assert_eq!(got.len(), data.len(), "download stalled");
    assert!(got == data, "bytes differ");
    let st = p.counters();
    assert!(p.errors >= 1);
    // The first message lowered the MSS; the rest of that flight's
    // messages report the MTU already in use.
    assert_eq!(
        pmtu(&st),
        [1, 0, 0, p.errors as u64 - 1, 0],
        "every message counted once"
    );
    assert!(p.biggest <= 1280 && p.biggest > 1200, "{}", p.biggest);

    // The control: a router that drops silently (a black hole) stalls the
    // same download; the test above depends on the message.
    let mut p = Path::new(1280);
    p.answer = false;
    let conn = p.connect(40001, v6);
    let got = p.download(conn, &data, 3_000);
    assert!(got.len() < data.len(), "the black hole let data through");
    assert_eq!(pmtu(&p.counters()), [0; 5]);
}

#[test]
fn ipv4_frag_needed_lowers_the_mss_and_the_download_finishes() {
    download_through_small_mtu(false);
}

#[test]
fn ipv6_packet_too_big_lowers_the_mss_and_the_download_finishes() {
    download_through_small_mtu(true);
}

/// The quote of a data segment with its sequence number moved by `delta`,
/// its source port (ours) by `port_delta`.
fn quote_with(quote: &[u8], delta: i64, port_delta: u16) -> Vec<u8> {
    let mut q = quote.to_vec();
    let t = q.len() - 8;
    let sport = u16::from_be_bytes([q[t], q[t + 1]]).wrapping_add(port_delta);
    q[t..t + 2].copy_from_slice(&sport.to_be_bytes());
    let seq = u32::from_be_bytes([q[t + 4], q[t + 5], q[t + 6], q[t + 7]]);
    let seq = (i64::from(seq) + delta) as u32;
    q[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
    q
}

fn invalid_messages_change_nothing(v6: bool) {
    let floor = if v6 { 1280 } else { 552 };
    let data = payload(4 * 1024 * 1024);
    let mut p = Path::new(1500);
    let conn = p.connect(40000, v6);
    let (mut sent, mut got) = (0, Vec::new());
    // A flight under way: quote the last segment sent.
    while got.len() < 256 * 1024 {
        p.pump(conn, &data, &mut sent, &mut got);
    }
    let last = p.last_data.clone();
    assert!(!last.is_empty());
    let msgs = [
        // A sequence number far outside the flight (a blind attack).
        too_big(&quote_with(&last, -1_000_000, 0), 1280),
        too_big(&quote_with(&last, 1_000_000, 0), 1280),
        // Another flow.
        too_big(&quote_with(&last, 0, 1), 1280),
        // MTUs that lower nothing: the one in use, an increase.
        too_big(&last, 1500),
        too_big(&last, 9000),
        // The quote cut inside the TCP header's first 8 bytes.
        too_big(&last[..last.len() - 4], 1280),
    ];
    for m in &msgs {
        inject(&mut p.to_server, m);
    }
    p.pump(conn, &data, &mut sent, &mut got);
    assert_eq!(pmtu(&p.counters()), [0, 1, 2, 2, 1]);
    // A quote that is not TCP (a UDP answer of ours).
    let mut udp = last.clone();
    udp[if v6 { 6 } else { 9 }] = 17;
    inject(&mut p.to_server, &too_big(&udp, 1280));
    p.pump(conn, &data, &mut sent, &mut got);
    assert_eq!(pmtu(&p.counters()), [0, 1, 2, 2, 2]);
    // The transfer goes on in full-size segments.
    p.biggest = 0;
    let mark = got.len();
    while got.len() < mark + 256 * 1024 {
        p.pump(conn, &data, &mut sent, &mut got);
    }
    assert_eq!(p.biggest, 1500, "the MSS stayed");
    // A valid message now, with an MTU below the floor: the MSS falls to
    // the floor's.
    let last = p.last_data.clone();
    inject(&mut p.to_server, &too_big(&last, 300));
    p.pump(conn, &data, &mut sent, &mut got);
    assert_eq!(pmtu(&p.counters()), [1, 1, 2, 2, 2]);
    p.biggest = 0;
    let mark = got.len();
    while got.len() < mark + 128 * 1024 {
        p.pump(conn, &data, &mut sent, &mut got);
    }
    assert!(
        p.biggest <= floor && p.biggest > floor - 60,
        "{}",
        p.biggest
    );
    // A later increase is ignored.
    let last = p.last_data.clone();
    inject(&mut p.to_server, &too_big(&last, 1400));
    p.pump(conn, &data, &mut sent, &mut got);
    assert_eq!(pmtu(&p.counters()), [1, 1, 2, 3, 2]);
    for _ in 0..20_000 {
        if got.len() == data.len() {
            break;
        }
        p.pump(conn, &data, &mut sent, &mut got);
    }
    assert!(p.biggest <= floor);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes differ");
}

#[test]
fn ipv4_invalid_messages_change_nothing_and_are_counted() {
    invalid_messages_change_nothing(false);
}

#[test]
fn ipv6_invalid_messages_change_nothing_and_are_counted() {
    invalid_messages_change_nothing(true);
}

#[test]
fn cut_and_scrambled_messages_never_panic() {
    for v6 in [false, true] {
        let data = payload(512 * 1024);
        let mut p = Path::new(1500);
        let conn = p.connect(40000, v6);
        let (mut sent, mut got) = (0, Vec::new());
        p.pump(conn, &data, &mut sent, &mut got);
        let last = p.last_data.clone();
        assert!(!last.is_empty());
        let icmp_at = 14 + if v6 { 40 } else { 20 };
        let body = too_big(&last, 1400)[icmp_at..].to_vec();
        let frame = |icmp: Vec<u8>| {
            if v6 {
                icmp6_frame(icmp)
            } else {
                icmp4_frame(icmp)
            }
        };
        // Every cut of the ICMP message (its checksum made right again: it
        // reaches the quote's parser).
        let mut n = 0u64;
        for len in 4..body.len() {
            inject(&mut p.to_server, &frame(body[..len].to_vec()));
            n += 1;
        }
        p.pump(conn, &data, &mut sent, &mut got);
        let st = p.counters();
        // Cuts shorter than the ICMP header may be dropped by the parser
        // before; the rest are malformed.
        assert!(
            st.icmp_frag_needed_malformed >= n - 4,
            "{:?} of {n}",
            pmtu(&st)
        );
        assert_eq!(pmtu(&st)[..4], [0; 4], "a cut message was taken");
        // Random bytes in the quote.
        let mut rng = Rng::new(7);
        for i in 0..2000 {
            let mut b = body.clone();
            for _ in 0..=rng.below(6) {
                let at = 8 + rng.below(b.len() - 8);
                b[at] = rng.next_u64() as u8;
            }
            inject(&mut p.to_server, &frame(b));
            if i % 50 == 0 {
                p.pump(conn, &data, &mut sent, &mut got);
            }
        }
        // The connection still works.
        for _ in 0..20_000 {
            if got.len() == data.len() {
                break;
            }
            p.pump(conn, &data, &mut sent, &mut got);
        }
        assert_eq!(got.len(), data.len());
        assert!(got == data, "bytes differ");
        p.engine.check_frames().unwrap();
    }
}

#[test]
fn helpers_build_what_the_parser_takes() {
    let mut q = vec![0u8; 28];
    q[0] = 0x45;
    let f = too_big(&q, 1280);
    let eth = EthernetFrame::new_checked(&f[..]).unwrap();
    assert_eq!(eth.ethertype(), EthernetProtocol::Ipv4);
    let p = stack::parse::parse_ip(eth.payload()).unwrap();
    assert_eq!(p.key.src, IpAddr::V4(ROUTER4));
    assert_eq!(p.l4, stack::parse::L4::TooBig);
}

/// The IP packets a raw port received (Ethernet stripped), consumed.
fn received(port: &mut Port<MemRings>) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    port.recv(&mut frames);
    frames
        .into_iter()
        .map(|f| {
            let b = port.read(f, |b| b[14..].to_vec()).unwrap();
            port.release(f);
            b
        })
        .collect()
}

/// Two cores, one NIC queue each: the ICMP message comes from a router, so
/// RSS hashes the router's address and it may reach a core that does not
/// own the quoted flow. That core finds the owner in the flow directory and
/// hands the message over; the owner acts on it.
#[test]
fn a_message_on_another_core_reaches_the_owner() {
    use smoltcp::wire::TcpControl;
    use testkit::frames::segment_to_server;
    let shared = Shared::new(2, FlowHasher::with_key(3, 4)).unwrap();
    let cfg = EngineConfig::new(SERVER_MAC, Some((SERVER4, 24)), None);
    let (mut engines, mut clients) = (Vec::new(), Vec::new());
    for core in 0..2 {
        let (a, b) = MemRings::pair(MemConfig::default());
        let mut e = Engine::new(a, cfg.clone(), shared.clone(), core, core as u32);
        // No ARP exchange in this test: the client's MAC from its frames.
        e.set_learn_neighbors_from_ip(true);
        engines.push(e);
        clients.push(router_port(b));
    }
    let l = engines[0]
        .tcp_listen(BindAddr::Any4, PORT, BindOptions::new(0))
        .unwrap();
    let mut now = Instant::from_millis(0);
    let mut turn = |engines: &mut Vec<Engine<MemRings>>| {
        for e in engines.iter_mut() {
            e.ingress(now);
            e.egress(now);
        }
        now += Duration::from_millis(1);
    };
    // The handshake on core 0's queue.
    let client = testkit::CLIENT_IP4;
    let syn = segment_to_server(client, 40000, PORT, TcpControl::Syn, 1000, None, &[]);
    inject(&mut clients[0], &syn);
    turn(&mut engines);
    let synack = received(&mut clients[0]);
    let synack = synack.iter().find(|p| p[9] == 6).expect("SYN-ACK");
    let isn = u32::from_be_bytes([synack[24], synack[25], synack[26], synack[27]]);
    let ack = segment_to_server(
        client,
        40000,
        PORT,
        TcpControl::None,
        1001,
        Some(isn + 1),
        &[],
    );
    inject(&mut clients[0], &ack);
    turn(&mut engines);
    let c = engines[0].accept(l).expect("accepted on core 0");
    // A flight of full-size segments; the router quotes the first.
    assert_eq!(engines[0].send(c, &payload(64 * 1024)).unwrap(), 64 * 1024);
    turn(&mut engines);
    let flight = received(&mut clients[0]);
    let first = flight.iter().find(|p| p.len() == 1500).expect("full size");
    assert!(flight.iter().all(|p| p.len() <= 1500));
    // It reaches core 1.
    inject(&mut clients[1], &too_big(&first[..28], 1280));
    // Core 1 hands it over in this turn, core 0 takes it in the next
    // (core 0 goes first in a turn).
    turn(&mut engines);
    turn(&mut engines);
    let (s0, s1) = (engines[0].stats().engine, engines[1].stats().engine);
    assert_eq!(s1.handed_off, 1);
    assert_eq!(pmtu(&s1), [0; 5]);
    assert_eq!(pmtu(&s0), [1, 0, 0, 0, 0]);
    // The owner resent the flight at the new size at once.
    let resent = received(&mut clients[0]);
    assert!(!resent.is_empty());
    assert!(
        resent.iter().all(|p| p.len() <= 1280),
        "{:?}",
        resent.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(resent.iter().any(|p| p.len() > 1200));
    // A message for a flow no core has is counted where it lands.
    inject(
        &mut clients[1],
        &too_big(&quote_with(&first[..28], 0, 7), 1280),
    );
    turn(&mut engines);
    assert_eq!(pmtu(&engines[1].stats().engine), [0, 1, 0, 0, 0]);
}
