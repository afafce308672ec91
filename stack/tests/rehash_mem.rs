//! A client moves a flow to another queue (Linux rehashes a flow's tx queue
//! after a SYN timeout): the retransmitted SYN reaches a core that never saw
//! the flow, after the group changed. The flow directory sends it to the
//! core that owns the flow instead of admitting it a second time.

use std::net::Ipv4Addr;

use nic::mem::{MemConfig, MemRings};
use nic::{Port, PortConfig};
use smoltcp::wire::{TcpControl, TcpRepr, TcpSeqNumber};
use stack::engine::{Engine, EngineConfig};
use stack::parse::{FlowKey, Proto};
use stack::reuseport::{reciprocal_scale, BindAddr, BindOptions, FlowHasher};
use stack::shared::Shared;
use testkit::frames::tcp_to_server;
use testkit::{Capture, SERVER_IP4 as SERVER, SERVER_MAC as SMAC};

const CLIENT: Ipv4Addr = testkit::CLIENT_IP4;

fn syn_frame(sport: u16) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: sport,
        dst_port: 80,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(1000),
        ack_number: None,
        window_len: 64000,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        ecn: Default::default(),
        payload: &[],
    };
    tcp_to_server(CLIENT, &tcp)
}

fn send(port: &mut Port<MemRings>, frame: &[u8]) {
    assert!(port.send_frame(frame.len(), |b| b.copy_from_slice(frame)));
    port.flush(|_, len| Some(len));
}

#[test]
fn a_rehashed_syn_goes_to_the_core_that_owns_the_flow() {
    let hasher = FlowHasher::with_key(11, 22);
    let shared = Shared::new(2, hasher).unwrap();
    let cfg = EngineConfig::new(SMAC, Some((SERVER, 24)), None);
    let mut engines = Vec::new();
    let mut clients = Vec::new();
    // Every core's two directions, written if the test fails.
    let mut pcap = Capture::new();
    for core in 0..2 {
        let sides = (format!("core{core}-server"), format!("core{core}-client"));
        let (a, b) = pcap.pair(MemConfig::default(), &sides.0, &sides.1);
        engines.push(Engine::new(
            a,
            cfg.clone(),
            shared.clone(),
            core,
            core as u32,
        ));
        clients.push(Port::new(
            b,
            PortConfig {
                l2_headroom: 0,
                ..PortConfig::default()
            },
        ));
    }
    let opts = BindOptions::new(0).with_reuseport(true);
    let l0 = engines[0]
        .tcp_listen(BindAddr::Any4, 80, opts.clone())
        .unwrap();
    // A source port whose flow the two-member group would give to core 1.
    let sport = (40000..41000)
        .find(|&p| {
            let key = FlowKey {
                proto: Proto::Tcp,
                src: CLIENT.into(),
                sport: p,
                dst: SERVER.into(),
                dport: 80,
            };
            reciprocal_scale(hasher.hash(&key), 2) == 1
        })
        .unwrap();
    let syn = syn_frame(sport);
    // The SYN arrives on core 0's queue while l0 is the only member.
    send(&mut clients[0], &syn);
    for _ in 0..3 {
        for e in engines.iter_mut() {
            let now = e.clock();
            e.ingress(now);
            e.egress(now);
        }
    }
    assert_eq!(engines[0].pending(l0), 1);
    // Core 1 joins the group; the client's retransmitted SYN comes in on
    // core 1's queue (rehashed).
    let l1 = engines[1].tcp_listen(BindAddr::Any4, 80, opts).unwrap();
    send(&mut clients[1], &syn);
    for _ in 0..3 {
        for e in engines.iter_mut() {
            let now = e.clock();
            e.ingress(now);
            e.egress(now);
        }
    }
    assert_eq!(
        engines[1].pending(l1),
        0,
        "admitted a second time on core 1"
    );
    assert_eq!(engines[0].pending(l0), 1);
    assert_eq!(engines[1].stats().engine.rehashed, 1);
    assert_eq!(engines[1].stats().engine.handed_off, 1);
    assert_eq!(
        shared.directory.owner(&FlowKey {
            proto: Proto::Tcp,
            src: CLIENT.into(),
            sport,
            dst: SERVER.into(),
            dport: 80,
        }),
        Some(0)
    );
}

/// What `port` (a client's end) received for `sport`: (seq, ack, flags
/// S/F/R/-, payload length).
fn segments(port: &mut Port<MemRings>, sport: u16) -> Vec<(u32, Option<u32>, char, usize)> {
    use smoltcp::wire::{EthernetFrame, Ipv4Packet, TcpPacket};
    let mut frames = Vec::new();
    port.recv(&mut frames);
    let mut out = Vec::new();
    for f in frames {
        let s = port.read(f, |b| {
            let eth = EthernetFrame::new_checked(b).ok()?;
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let t = TcpPacket::new_checked(ip.payload()).ok()?;
            if t.dst_port() != sport {
                return None;
            }
            let flag = match (t.syn(), t.fin(), t.rst()) {
                (true, _, _) => 'S',
                (_, true, _) => 'F',
                (_, _, true) => 'R',
                _ => '-',
            };
            let ack = t.ack().then(|| t.ack_number().0 as u32);
            Some((t.seq_number().0 as u32, ack, flag, t.payload().len()))
        });
        port.release(f);
        out.extend(s.flatten());
    }
    out
}

/// A flow received on core 0's queue and owned by core 1 (the group's
/// selection) ends in TIME-WAIT on core 1: its record keeps core 1 the
/// owner in the flow directory, so the peer's retransmitted FIN, arriving
/// on core 0's queue after core 0 forgot the flow, still reaches the record
/// and gets its ACK (with SYN cookies off, so no listener path could send
/// it there). Once the record expires, the 4-tuple is nobody's: RST.
#[test]
fn a_time_wait_record_on_another_core_still_answers_the_peers_fin() {
    use smoltcp::time::Duration as SDuration;
    use smoltcp::wire::ArpOperation;
    let hasher = FlowHasher::with_key(11, 22);
    let shared = Shared::new(2, hasher).unwrap();
    let mut cfg = EngineConfig::new(SMAC, Some((SERVER, 24)), None);
    cfg.syncookies = false;
    let mut engines = Vec::new();
    let mut clients = Vec::new();
    let mut pcap = Capture::new();
    for core in 0..2 {
        let sides = (format!("core{core}-server"), format!("core{core}-client"));
        let (a, b) = pcap.pair(MemConfig::default(), &sides.0, &sides.1);
        engines.push(Engine::new(
            a,
            cfg.clone(),
            shared.clone(),
            core,
            core as u32,
        ));
        clients.push(Port::new(
            b,
            PortConfig {
                l2_headroom: 0,
                ..PortConfig::default()
            },
        ));
    }
    let opts = BindOptions::new(0).with_reuseport(true);
    let l0 = engines[0]
        .tcp_listen(BindAddr::Any4, 80, opts.clone())
        .unwrap();
    let l1 = engines[1].tcp_listen(BindAddr::Any4, 80, opts).unwrap();
    let key = |p| FlowKey {
        proto: Proto::Tcp,
        src: CLIENT.into(),
        sport: p,
        dst: SERVER.into(),
        dport: 80,
    };
    let sport = (40000..41000)
        .find(|&p| reciprocal_scale(hasher.hash(&key(p)), 2) == 1)
        .unwrap();
    let mut now = engines[0].clock();
    let mut turn = |engines: &mut Vec<Engine<MemRings>>, ms: u64| {
        now += SDuration::from_millis(ms);
        for _ in 0..3 {
            for e in engines.iter_mut() {
                e.ingress(now);
                e.egress(now);
            }
        }
    };
    // The client's ARP request: the engines learn its MAC.
    let arp = testkit::frames::arp(ArpOperation::Request, testkit::CLIENT_MAC, CLIENT, SERVER);
    let arp = testkit::frames::eth(
        [0xff; 6],
        testkit::CLIENT_MAC,
        smoltcp::wire::EthernetProtocol::Arp,
        &arp,
    );
    send(&mut clients[0], &arp);
    turn(&mut engines, 1);
    segments(&mut clients[0], sport);
    let seg = |control, seq, ack: Option<u32>, payload: &[u8]| {
        testkit::frames::segment_to_server(CLIENT, sport, 80, control, seq, ack, payload)
    };
    // Everything the client sends arrives on core 0's queue.
    send(&mut clients[0], &seg(TcpControl::Syn, 1000, None, &[]));
    turn(&mut engines, 1);
    let out = segments(&mut clients[1], sport);
    let [(server_isn, Some(1001), 'S', 0)] = out[..] else {
        panic!("no SYN-ACK from core 1: {out:?}");
    };
    let snd = server_isn.wrapping_add(1);
    send(
        &mut clients[0],
        &seg(TcpControl::Psh, 1001, Some(snd), b"GET"),
    );
    turn(&mut engines, 1);
    assert_eq!(engines[0].pending(l0), 0);
    let c = engines[1].accept(l1).expect("core 1 owns the flow");
    engines[1].close(c);
    turn(&mut engines, 1);
    let out = segments(&mut clients[1], sport);
    assert!(out.iter().any(|s| s.2 == 'F' && s.0 == snd), "{out:?}");
    // The client's FIN (with the ACK of ours): core 1 enters TIME-WAIT and
    // tells core 0 the flow is closed.
    let fin = seg(TcpControl::Fin, 1004, Some(snd + 1), &[]);
    send(&mut clients[0], &fin);
    turn(&mut engines, 1);
    assert_eq!(
        segments(&mut clients[1], sport),
        vec![(snd + 1, Some(1005), '-', 0)]
    );
    assert_eq!(engines[1].stats().engine.time_wait, 1);
    assert_eq!(
        shared.directory.owner(&key(sport)),
        Some(1),
        "the record holds it"
    );
    // Our ACK was lost: the FIN again, on core 0's queue.
    send(&mut clients[0], &fin);
    turn(&mut engines, 1000);
    assert_eq!(
        segments(&mut clients[0], sport),
        vec![],
        "no RST from core 0"
    );
    assert_eq!(
        segments(&mut clients[1], sport),
        vec![(snd + 1, Some(1005), '-', 0)]
    );
    assert_eq!(engines[1].stats().engine.time_wait_fin_acked, 1);
    // 60 s later the record is gone and so is the directory's entry.
    turn(
        &mut engines,
        stack::engine::TIME_WAIT_LEN.as_millis() as u64,
    );
    assert_eq!(engines[1].stats().engine.time_wait_expired, 1);
    assert_eq!(shared.directory.owner(&key(sport)), None);
    send(&mut clients[0], &fin);
    turn(&mut engines, 1);
    let rsts: Vec<_> = [0, 1]
        .iter()
        .flat_map(|&i| segments(&mut clients[i], sport))
        .collect();
    assert_eq!(rsts, vec![(snd + 1, None, 'R', 0)]);
}
