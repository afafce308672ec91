//! The HTTP client end to end in memory (no root): against the stack's own
//! engine serving a canned response, with lost frames, in keep-alive (closed
//! and open loop) and `--close` mode, and as a DNS-over-TCP client; and its
//! parsers.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nic::mem::{Faults, MemConfig, MemRings};
use nic::{Port, PortConfig};
use stack::engine::{Engine, EngineConfig, ListenerId};
use stack::reuseport::{BindAddr, BindOptions, FlowHasher};
use stack::shared::Shared;
use stack::socket::ConnId;

use super::gen::{AddrRange, Live, PortRange};
use super::httpc::{
    dns_request_bytes, dns_response_head, request_bytes, response_head, HttpClient, HttpConfig,
    HttpReport, Proto, Step,
};

const CLIENT_MAC: [u8; 6] = [2, 0x78, 0x73, 0, 0, 2];
const SERVER_MAC: [u8; 6] = [2, 0x78, 0x73, 0, 0, 1];
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\nContent-Type: text/plain\r\n\r\nhello from xdpstack\n";

/// The server: an engine with a listener on 80 answering every request
/// with [`RESPONSE`] (and closing after it when the request says so).
struct Server {
    engine: Engine<MemRings>,
    listener: ListenerId,
    open: Vec<ConnId>,
    start: Instant,
    served: u64,
    /// DNS over TCP: answer each length-prefixed query with [`DNS_RESPONSE`]
    /// and close when the client has (RFC 7766: the server waits for it).
    dns: bool,
}

/// A length-prefixed DNS response: id 0, QR and RA set, NOERROR, no records.
const DNS_RESPONSE: &[u8] = &[0, 12, 0, 0, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0];

impl Server {
    fn new(rings: MemRings) -> Server {
        let shared = Shared::new(1, FlowHasher::with_key(1, 2)).unwrap();
        let cfg = EngineConfig::new(SERVER_MAC, Some((SERVER, 24)), None);
        let mut engine = Engine::new(rings, cfg, shared, 0, 0);
        let listener = engine
            .tcp_listen(
                BindAddr::Any4,
                80,
                BindOptions::new(0).with_reuseport(true).with_backlog(1024),
            )
            .unwrap();
        Server {
            engine,
            listener,
            open: Vec::new(),
            start: Instant::now(),
            served: 0,
            dns: false,
        }
    }

    fn step(&mut self) {
        let now = smoltcp::time::Instant::from_micros(self.start.elapsed().as_micros() as i64);
        self.engine.ingress(now);
        while let Some(c) = self.engine.accept(self.listener) {
            self.open.push(c);
        }
        let mut buf = [0u8; 2048];
        let (engine, served, dns) = (&mut self.engine, &mut self.served, self.dns);
        self.open.retain(|&c| match engine.recv(c, &mut buf) {
            Ok(0) => true,
            Ok(n) if dns => {
                let q = &buf[..n];
                let len = usize::from(u16::from_be_bytes([q[0], q[1]]));
                assert_eq!(n, 2 + len, "one whole query per read");
                assert_eq!(q[4] & 0x80, 0, "a query");
                assert_eq!(engine.send(c, DNS_RESPONSE).unwrap(), DNS_RESPONSE.len());
                *served += 1;
                true
            }
            Ok(n) => {
                let req = &buf[..n];
                assert!(req.starts_with(b"GET / HTTP/1.1\r\n"), "{req:?}");
                assert!(req.ends_with(b"\r\n\r\n"), "one whole request per read");
                assert_eq!(engine.send(c, RESPONSE).unwrap(), RESPONSE.len());
                *served += 1;
                if req.windows(17).any(|w| w == b"Connection: close") {
                    engine.close(c);
                    return false;
                }
                true
            }
            Err(_) => {
                engine.close(c);
                false
            }
        });
        self.engine.egress(now);
    }
}

fn pair(faults: Option<Faults>) -> (Port<MemRings>, MemRings) {
    pair_faults(faults, None)
}

/// [`pair`] with faults on what the client sends as well.
fn pair_faults(faults: Option<Faults>, client: Option<Faults>) -> (Port<MemRings>, MemRings) {
    let mem = MemConfig {
        frames: 4096,
        frame_size: 2048,
        headroom: 256,
        ring: 1024,
    };
    let (mut a, mut b) = MemRings::pair(mem);
    if let Some(f) = faults {
        b.set_faults(f);
    }
    if let Some(f) = client {
        a.set_faults(f);
    }
    let cfg = PortConfig {
        tx_reserve: 256,
        tx_backlog: 1024,
        ..PortConfig::default()
    };
    (Port::new(a, cfg), b)
}

fn config(conns: u32, close: bool, rate: u64, secs: f64) -> HttpConfig {
    let epoch = Instant::now();
    HttpConfig {
        our_mac: CLIENT_MAC,
        dst_mac: SERVER_MAC,
        dst: IpAddr::V4(SERVER),
        dst_port: 80,
        src_ips: AddrRange {
            first: "198.18.0.10".parse().unwrap(),
            len: 3,
        },
        src_ports: PortRange {
            first: 20000,
            last: 20999,
        },
        conns,
        close,
        rate,
        connect_rate: 0,
        inflight: 0,
        proto: Proto::Http,
        request: request_bytes("198.18.0.1", "/", close),
        epoch,
        send_until: epoch + Duration::from_secs_f64(secs),
        drain: Duration::from_millis(2000),
        batch: 64,
        live: Arc::new(Live::default()),
    }
}

/// Step client and server in turn until the client is done (at most 30 s),
/// then the server a while longer (it sees the final resets).
fn drive(mut c: HttpClient<MemRings>, s: &mut Server) -> HttpReport {
    let limit = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < limit, "the client did not finish");
        match c.step(Instant::now()) {
            Step::Done => break,
            Step::Idle(d) => std::thread::sleep(d.min(Duration::from_micros(200))),
            Step::Busy => {}
        }
        s.step();
    }
    for _ in 0..50 {
        s.step();
        std::thread::sleep(Duration::from_millis(1));
    }
    c.finish()
}

#[test]
fn keep_alive_closed_loop_serves_every_connection_and_resets_them_at_the_end() {
    let (p, b) = pair(None);
    let mut s = Server::new(b);
    let c = HttpClient::new(p, config(40, false, 0, 1.0));
    let r = drive(c, &mut s);
    r.frames.as_ref().expect("frame accounting");
    let k = &r.counters;
    assert_eq!((k.connects, k.established), (40, 40), "{k:?}");
    assert!(k.responses > 400, "{k:?}");
    assert_eq!(k.responses, k.status_2xx);
    assert_eq!(k.requests, k.responses, "drained: every request answered");
    assert_eq!(s.served, k.responses);
    assert_eq!(
        (k.timeouts, k.bad_responses, k.rst_received, k.rx_invalid),
        (0, 0, 0, 0),
        "{k:?}"
    );
    assert_eq!(r.peak_open, 40);
    assert_eq!(k.rst_sent, 40, "every open connection reset at the end");
    assert_eq!(s.engine.connections(), 0, "the server kept nothing");
}

#[test]
fn close_mode_opens_a_connection_per_request_from_fresh_ports() {
    let (p, b) = pair(None);
    let mut s = Server::new(b);
    let c = HttpClient::new(p, config(10, true, 0, 1.0));
    let r = drive(c, &mut s);
    r.frames.as_ref().expect("frame accounting");
    let k = &r.counters;
    assert!(k.responses > 100, "{k:?}");
    assert_eq!(k.connects, k.requests, "{k:?}");
    assert_eq!(k.responses, k.requests, "{k:?}");
    assert_eq!(
        k.closed, k.responses,
        "every connection closed by FIN: {k:?}"
    );
    assert_eq!((k.timeouts, k.bad_responses, k.stale), (0, 0, 0), "{k:?}");
    assert_eq!(s.served, k.responses);
    assert_eq!(s.engine.connections(), 0, "{k:?}");
}

#[test]
fn dns_close_mode_asks_once_per_connection_and_closes_first() {
    let (p, b) = pair(None);
    let mut s = Server::new(b);
    s.dns = true;
    let mut cfg = config(10, true, 0, 1.0);
    cfg.proto = Proto::Dns;
    cfg.request = dns_request_bytes("www.bench.test").unwrap();
    let c = HttpClient::new(p, cfg);
    let r = drive(c, &mut s);
    r.frames.as_ref().expect("frame accounting");
    let k = &r.counters;
    assert!(k.responses > 100, "{k:?}");
    assert_eq!(k.connects, k.requests, "{k:?}");
    assert_eq!(k.responses, k.requests, "{k:?}");
    assert_eq!(k.responses, k.status_2xx, "{k:?}");
    // Every connection closed by our FIN, then the server's (no reset).
    assert_eq!(k.closed, k.responses, "{k:?}");
    assert_eq!(
        (k.timeouts, k.bad_responses, k.stale, k.rst_sent),
        (0, 0, 0, 0),
        "{k:?}"
    );
    assert_eq!(s.served, k.responses);
    assert_eq!(s.engine.connections(), 0, "{k:?}");
}

#[test]
fn dns_response_heads_are_read_or_refused() {
    assert_eq!(dns_response_head(DNS_RESPONSE), Some((200, 14)));
    // NXDOMAIN (RCODE 3) and REFUSED (5).
    assert_eq!(
        dns_response_head(&[0, 12, 0, 0, 0x81, 0x83]),
        Some((503, 14))
    );
    assert_eq!(
        dns_response_head(&[0, 40, 0, 0, 0x85, 0x05]),
        Some((505, 42))
    );
    // The first segment ends in the header: length known, status not.
    assert_eq!(dns_response_head(&[0, 12, 0]), Some((0, 14)));
    // A query (QR clear), or no length at all.
    assert_eq!(dns_response_head(&[0, 12, 0, 0, 0x01, 0x00]), None);
    assert_eq!(dns_response_head(&[7]), None);
    let q = dns_request_bytes("www.bench.test").unwrap();
    assert_eq!(usize::from(u16::from_be_bytes([q[0], q[1]])), q.len() - 2);
    assert!(dns_request_bytes("a..b").is_err());
}

#[test]
fn a_bounded_inflight_takes_every_connection_in_turn() {
    let (p, b) = pair(None);
    let mut s = Server::new(b);
    let mut cfg = config(200, false, 0, 1.0);
    cfg.inflight = 8;
    let c = HttpClient::new(p, cfg);
    let r = drive(c, &mut s);
    r.frames.as_ref().expect("frame accounting");
    let k = &r.counters;
    assert_eq!((k.connects, k.established), (200, 200), "{k:?}");
    // Every connection had several turns: the longest idle goes next.
    assert!(k.responses > 200 * 3, "{k:?}");
    assert_eq!(k.responses, k.requests, "{k:?}");
    assert_eq!(s.served, k.responses);
    assert_eq!(r.peak_open, 200);
    assert_eq!(
        (k.timeouts, k.bad_responses, k.out_of_order),
        (0, 0, 0),
        "{k:?}"
    );
}

#[test]
fn open_loop_keeps_to_the_request_rate() {
    let (p, b) = pair(None);
    let mut s = Server::new(b);
    let c = HttpClient::new(p, config(50, false, 2000, 1.0));
    let r = drive(c, &mut s);
    let k = &r.counters;
    // 2000/s for 1 s: due ones that found no connection up yet (while the
    // server resolves our addresses) are counted as missed.
    assert!(
        (1900..=2100).contains(&(k.requests + k.rate_missed)),
        "{k:?}"
    );
    assert!(k.requests >= 1000, "{k:?}");
    assert_eq!(k.responses, k.requests, "{k:?}");
    assert_eq!(r.peak_open, 50);
}

#[test]
fn lost_frames_are_sent_again_and_every_request_is_answered() {
    // Every 7th frame each way is lost: SYNs, requests, ACKs, FINs from the
    // client (which must send them again: the server resends its own
    // losses, SYN-ACKs within 200 ms once it has measured the client),
    // SYN-ACKs, responses, FINs from the server.
    let every_7th = Faults {
        drop_every: 7,
        corrupt_every: 0,
        delay_us: 0,
        ..Faults::default()
    };
    let (p, b) = pair_faults(Some(every_7th.clone()), Some(every_7th));
    let mut s = Server::new(b);
    let c = HttpClient::new(p, config(20, true, 0, 1.0));
    let r = drive(c, &mut s);
    r.frames.as_ref().expect("frame accounting");
    let k = &r.counters;
    assert!(k.responses > 20, "{k:?}");
    assert!(
        k.syn_retransmits + k.request_retransmits > 0,
        "losses recovered by retransmission: {k:?}"
    );
    assert_eq!(k.bad_responses, 0, "{k:?}");
    // At most one request per connection is still unanswered at the end
    // (its retransmission due after the drain); no other is lost.
    assert!(k.responses + k.timeouts + 20 >= k.requests, "{k:?}");
}

#[test]
fn response_heads_are_read_or_refused() {
    assert_eq!(response_head(RESPONSE), Some((200, RESPONSE.len())));
    assert_eq!(
        response_head(b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nabc"),
        Some((404, 48))
    );
    // Head split over segments, no length, chunked, not HTTP.
    assert_eq!(response_head(b"HTTP/1.1 200 OK\r\nContent-Le"), None);
    assert_eq!(response_head(b"HTTP/1.1 200 OK\r\n\r\n"), None);
    assert_eq!(
        response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        None
    );
    assert_eq!(response_head(b"SSH-2.0\r\n\r\n"), None);
    // Lengths no response can have: the sum overflows.
    assert_eq!(
        response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n"),
        None
    );
    assert_eq!(
        response_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
        None
    );
    let r = request_bytes("h", "/a", true);
    assert_eq!(
        r,
        b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".to_vec()
    );
}

/// The payload of a received segment is found from the lengths `parse_ip`
/// checked: what the sender wrote, without the Ethernet padding of a short
/// frame (the IPv4 ones here of 0 and 2 bytes), over IPv4 and IPv6.
#[test]
fn segment_payloads_come_from_the_checked_lengths() {
    use smoltcp::wire::{TcpControl, TcpRepr, TcpSeqNumber, ETHERNET_HEADER_LEN};

    use super::httpc::{frame_len, tcp_payload, write_segment};

    let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
    let pairs = [
        (
            IpAddr::V4(SERVER),
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10)),
        ),
        (v6("2001:db8::1"), v6("2001:db8::10")),
    ];
    for (src, dst) in pairs {
        for data in [&b""[..], b"ok", RESPONSE] {
            let tcp = TcpRepr {
                src_port: 80,
                dst_port: 40_000,
                control: TcpControl::None,
                seq_number: TcpSeqNumber(1000),
                ack_number: Some(TcpSeqNumber(2000)),
                window_len: 65_535,
                window_scale: None,
                max_seg_size: None,
                sack_permitted: false,
                sack_ranges: [None; 3],
                timestamp: None,
                ecn: Default::default(),
                payload: data,
            };
            let mut frame = vec![0xee; frame_len(src, &tcp)];
            write_segment(&mut frame, SERVER_MAC, CLIENT_MAC, src, dst, &tcp);
            let ip = &frame[ETHERNET_HEADER_LEN..];
            let p = stack::parse::parse_ip(ip).expect("a valid segment");
            assert_eq!(tcp_payload(ip, &p), Some(data), "{src} {data:?}");
        }
    }
}
