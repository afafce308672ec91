//! A model check of two engines (two cores of one process) fed random TCP
//! segment sequences from several clients on both queues: SYNs, ACKs, data,
//! FINs and RSTs with random sequence numbers, clients that move between
//! queues, time that jumps. Whatever arrives, nothing panics, the frame
//! ledgers balance, and no flow is owned by both cores.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use nic::mem::MemConfig;
use nic::{Port, PortConfig};
use proptest::prelude::*;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{TcpControl, TcpRepr, TcpSeqNumber};
use stack::engine::{Engine, EngineConfig};
use stack::reuseport::{BindAddr, BindOptions, FlowHasher};
use stack::shared::Shared;
use testkit::frames::tcp_to_server;
use testkit::{Capture, SERVER_IP4 as SERVER, SERVER_MAC as SMAC};

#[derive(Clone, Debug)]
struct Seg {
    core: usize,
    client: u8,
    kind: u8,
    seq: u32,
    ack: u32,
    len: usize,
    wait_ms: u64,
}

fn frame(s: &Seg) -> Vec<u8> {
    let payload = vec![b'x'; s.len];
    let (control, ack) = match s.kind % 6 {
        0 => (TcpControl::Syn, None),
        1 => (TcpControl::None, Some(s.ack)),
        2 => (TcpControl::Psh, Some(s.ack)),
        3 => (TcpControl::Fin, Some(s.ack)),
        4 => (TcpControl::Rst, None),
        _ => (TcpControl::Syn, Some(s.ack)),
    };
    let src = Ipv4Addr::new(198, 18, 0, 2 + s.client % 3);
    let tcp = TcpRepr {
        src_port: 40000 + u16::from(s.client % 4),
        dst_port: 80,
        control,
        seq_number: TcpSeqNumber(s.seq as i32),
        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: 8192,
        window_scale: None,
        max_seg_size: (control == TcpControl::Syn).then_some(1460),
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload: if matches!(control, TcpControl::Syn | TcpControl::Rst) {
            &[]
        } else {
            &payload
        },
    };
    tcp_to_server(src, &tcp)
}

fn seg() -> impl Strategy<Value = Seg> {
    (
        0usize..2,
        0u8..12,
        0u8..6,
        any::<u32>(),
        any::<u32>(),
        0usize..40,
        prop_oneof![Just(0u64), Just(1), Just(200), Just(70_000)],
    )
        .prop_map(|(core, client, kind, seq, ack, len, wait_ms)| Seg {
            core,
            client,
            kind,
            seq,
            ack,
            len,
            wait_ms,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_segments_on_two_cores(segs in prop::collection::vec(seg(), 1..80)) {
        let shared = Shared::new(2, FlowHasher::with_key(3, 4)).unwrap();
        let mut cfg = EngineConfig::new(SMAC, Some((SERVER, 24)), None);
        cfg.syn_backlog = 2;
        cfg.syn_timeout = std::time::Duration::from_secs(30);
        let mut engines = Vec::new();
        let mut clients = Vec::new();
        // Every core's two directions, written if a case fails.
        let mut pcap = Capture::new();
        for core in 0..2 {
            let sides = (format!("core{core}-server"), format!("core{core}-client"));
            let (a, b) = pcap.pair(MemConfig::default(), &sides.0, &sides.1);
            engines.push(Engine::new(a, cfg.clone(), shared.clone(), core, core as u32));
            clients.push(Port::new(b, PortConfig { l2_headroom: 0, ..PortConfig::default() }));
        }
        let opts = BindOptions::new(0).with_reuseport(true).with_backlog(4);
        let mut ls = Vec::new();
        for e in engines.iter_mut() {
            ls.push(e.tcp_listen(BindAddr::Any4, 80, opts.clone()).unwrap());
        }
        let mut now = Instant::from_millis(1);
        let mut frames = Vec::new();
        for s in &segs {
            let f = frame(s);
            let port = &mut clients[s.core];
            if port.send_frame(f.len(), |b| b.copy_from_slice(&f)) {
                port.flush(|_, len| Some(len));
            }
            now += Duration::from_millis(s.wait_ms);
            for (e, &l) in engines.iter_mut().zip(&ls) {
                e.ingress(now);
                // The application's part: accept, read, close or reset.
                while let Some(c) = e.accept(l) {
                    let mut b = [0u8; 64];
                    let _ = e.recv(c, &mut b);
                    if s.seq % 2 == 0 {
                        e.close(c);
                    } else {
                        e.abort(c);
                    }
                }
                e.egress(now);
            }
            for c in clients.iter_mut() {
                c.recv(&mut frames);
                for f in frames.drain(..) {
                    c.release(f);
                }
            }
        }
        for _ in 0..3 {
            now += Duration::from_secs(70);
            for e in engines.iter_mut() {
                e.ingress(now);
                e.egress(now);
            }
        }
        let mut seen = HashSet::new();
        for e in &engines {
            prop_assert!(e.check_frames().is_ok());
            for k in e.local_flows() {
                prop_assert!(seen.insert(k), "flow {:?} owned by two cores", k);
            }
        }
    }
}
