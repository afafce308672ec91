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
