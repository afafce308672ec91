//! `DnsApp` on a real engine in memory (no root): the engine over one end of a `MemRings`
//! pair, a plain smoltcp stack as the client on the other, queries and answers parsed with
//! hickory-proto. Covers the application glue the unit tests of the responder do not: the
//! reuseport UDP socket, length-prefixed pipelined TCP, closing on an unanswerable message.

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use dnsd::{zone, DnsApp, DnsArgs, Index};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use runtime::server::WorkerCtx;
use smoltcp::iface::SocketHandle;
use smoltcp::wire::IpAddress;
use stack::testing::{engine_net, with_app, EngineNet};
use testkit::MemClient;

const SERVER: Ipv4Addr = testkit::SERVER_IP4;

const ZONE: &str = "$ORIGIN example.test.\n$TTL 60\n@ SOA ns1 host 1 2 3 4 5\n@ NS ns1\n\
                    ns1 A 198.18.0.1\nwww A 192.0.2.1\n";

/// The engine with `DnsApp`, and its client, on one virtual clock.
type Net = EngineNet<DnsApp>;

fn net() -> Net {
    let args = DnsArgs {
        zone: "unused".into(),
        origin: None,
        port: 53,
        max_udp: 1232,
        tcp_idle: 10,
        tcp_max_conns: 8,
        udp_queue: 64,
        attached: Default::default(),
    };
    let z = zone::parse_str(ZONE, "mem.zone", None).unwrap();
    let index = Arc::new(Index::build(&z).unwrap());
    with_app(engine_net(|_| {}), |engine| {
        let ctx = WorkerCtx::hashed(0, Arc::new(AtomicU64::new(0)));
        let mtu = engine.port().config().mtu;
        DnsApp::new(&ctx, engine, &args, index, mtu).unwrap()
    })
}

fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

#[test]
fn udp_queries_are_answered_and_garbage_is_dropped() {
    let mut net = net();
    let mut s = MemClient::udp_socket(8, 8192);
    s.bind(5353).unwrap();
    let h = net.client.sockets.add(s);
    let to = (IpAddress::Ipv4(SERVER), 53);
    {
        let s = net.client.udp(h);
        s.send_slice(&[1, 2, 3], to).unwrap(); // no header: dropped
        s.send_slice(&query(7, "www.example.test.", RecordType::A), to)
            .unwrap();
        s.send_slice(&query(8, "nope.example.test.", RecordType::A), to)
            .unwrap();
    }
    let mut answers = Vec::new();
    net.run_until(3000, "two UDP answers", |n| {
        let s = n.client.udp(h);
        while let Ok((data, _)) = s.recv() {
            answers.push(Message::from_vec(data).unwrap());
        }
        answers.len() == 2
    });
    assert_eq!(answers[0].metadata.id, 7);
    assert_eq!(answers[0].answers[0].data.to_string(), "192.0.2.1");
    assert!(answers[0].metadata.authoritative);
    assert_eq!(answers[1].metadata.id, 8);
    assert_eq!(u16::from(answers[1].metadata.response_code), 3);
    let c = net.server.app.counters();
    assert_eq!(
        (c.udp_queries, c.noerror, c.nxdomain, c.malformed_dropped),
        (3, 1, 1, 1)
    );
}

fn tcp_socket(net: &mut Net, local: u16) -> SocketHandle {
    let mut s = MemClient::tcp_socket(16384);
    s.connect(
        net.client.iface.context(),
        (IpAddress::Ipv4(SERVER), 53),
        local,
    )
    .unwrap();
    net.client.sockets.add(s)
}

fn framed(m: &[u8]) -> Vec<u8> {
    let mut v = (m.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(m);
    v
}

#[test]
fn tcp_pipelined_queries_and_a_bad_message_closes() {
    let mut net = net();
    let h = tcp_socket(&mut net, 40000);
    net.run_until(3000, "connected", |n| n.client.tcp(h).may_send());
    // Three queries in one write, the third split from its length prefix by the next write.
    let mut batch = framed(&query(1, "www.example.test.", RecordType::A));
    batch.extend(framed(&query(2, "example.test.", RecordType::NS)));
    let third = framed(&query(3, "www.example.org.", RecordType::A));
    batch.extend_from_slice(&third[..5]);
    net.client.tcp(h).send_slice(&batch).unwrap();
    net.run_until(3000, "first two answers", |n| {
        n.client.tcp(h).recv_queue() > 0 && n.server.app.counters().tcp_queries == 2
    });
    net.client.tcp(h).send_slice(&third[5..]).unwrap();
    let mut buf = Vec::new();
    let mut got = Vec::new();
    net.run_until(3000, "three answers", |n| {
        let s = n.client.tcp(h);
        let mut chunk = [0u8; 4096];
        while let Ok(k) = s.recv_slice(&mut chunk) {
            if k == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..k]);
        }
        while buf.len() >= 2 {
            let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
            if buf.len() < 2 + len {
                break;
            }
            got.push(Message::from_vec(&buf[2..2 + len]).unwrap());
            buf.drain(..2 + len);
        }
        got.len() == 3
    });
    let ids: Vec<u16> = got.iter().map(|m| m.metadata.id).collect();
    assert_eq!(ids, [1, 2, 3], "answers in order");
    assert_eq!(got[1].answers.len(), 1);
    assert_eq!(got[1].additionals.len(), 1, "glue for ns1");
    assert_eq!(u16::from(got[2].metadata.response_code), 5, "REFUSED");
    // A message too short for a header cannot be answered: the server closes.
    net.client.tcp(h).send_slice(&[0, 3, 1, 2, 3]).unwrap();
    net.run_until(3000, "closed by the server", |n| {
        !n.client.tcp(h).may_recv()
    });
    let c = net.server.app.counters();
    assert_eq!(
        (c.tcp_connections, c.tcp_queries, c.tcp_malformed_closed),
        (1, 4, 1)
    );
    assert_eq!((c.noerror, c.refused, c.malformed_dropped), (2, 1, 1));
}

/// Issue 20: after an overload burst that leaves connections half-done or
/// reset (`stack::testing::Burst`, as kxdpgun -T leaves a server), the next
/// TCP clients are answered at once: no state outlives its connection.
#[test]
fn a_burst_left_half_done_does_not_lock_the_next_clients_out() {
    let mut net = net(); // tcp_max_conns 8, tcp_idle 10 s
    let q = framed(&query(1, "www.example.test.", RecordType::A));
    let mut burst = stack::testing::Burst::start(&mut net, 53, q.len() as u32);
    burst.then_serve(&mut net, 8, &q, 2, |app| format!("{:?}", app.counters()));
    let c = net.server.app.counters();
    let json = net.server.app.json();
    assert_eq!((c.tcp_refused, c.tcp_idle_closed), (0, 0), "{c:?}");
    assert_eq!(json["tcp_ended"], 2, "{c:?}");
    assert_eq!(json["tcp_evicted"], 6, "{c:?}");
}
