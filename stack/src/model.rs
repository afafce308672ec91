//! A model check of two engines (two cores of one process, in memory) fed
//! TCP segments from several clients on both queues: SYNs, ACKs, data, FINs
//! and RSTs with any sequence numbers, clients that move between queues,
//! time that jumps. Used by the proptest model (`tests/engine_model.rs`)
//! and the `engine_segments` fuzz target: whatever arrives, nothing
//! panics, both frame ledgers balance, and no flow is owned by both cores.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use nic::mem::{MemConfig, MemRings};
use nic::{Port, PortConfig};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{TcpControl, TcpRepr, TcpSeqNumber};

use crate::engine::{Engine, EngineConfig};
use crate::reuseport::{BindAddr, BindOptions, FlowHasher};
use crate::shared::Shared;

/// The server's MAC and address in the model.
pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The server's address in the model.
pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// One segment of the model.
#[derive(Clone, Debug)]
pub struct Seg {
    /// The queue (core) it arrives on: 0 or 1.
    pub core: usize,
    /// The client: 3 addresses x 4 ports (taken modulo 12).
    pub client: u8,
    /// SYN, ACK, data, FIN, RST, SYN+ACK (taken modulo 6).
    pub kind: u8,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (when the kind carries one).
    pub ack: u32,
    /// Payload length (data and FIN).
    pub len: usize,
    /// Time to the next segment.
    pub wait_ms: u64,
}

/// The segment as an Ethernet frame to the server, with valid checksums.
pub fn frame(s: &Seg) -> Vec<u8> {
    let payload = vec![b'x'; s.len];
    let (control, ack) = match s.kind % 6 {
        0 => (TcpControl::Syn, None),
        1 => (TcpControl::None, Some(s.ack)),
        2 => (TcpControl::Psh, Some(s.ack)),
        3 => (TcpControl::Fin, Some(s.ack)),
        4 => (TcpControl::Rst, None),
        _ => (TcpControl::Syn, Some(s.ack)),
    };
    let client = s.client % 12;
    let src = Ipv4Addr::new(198, 18, 0, 2 + client % 3);
    let tcp = TcpRepr {
        src_port: 40000 + u16::from(client % 4),
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
        ecn: Default::default(),
        payload: if matches!(control, TcpControl::Syn | TcpControl::Rst) {
            &[]
        } else {
            &payload
        },
    };
    testkit::frames::tcp_frame(([0x02, 0, 0, 0, 0, 0x02], SERVER_MAC), src, SERVER, &tcp)
}

/// Runs `segs` through two engines on the given in-memory ring pairs (one
/// per core: the engine's end and the clients' end). The application
/// accepts, reads, and closes (even sequence number) or resets. Then time
/// runs past every timer. Returns what broke: a frame ledger that does not
/// balance, or a flow owned by both cores.
pub fn run_two_cores(segs: &[Seg], rings: [(MemRings, MemRings); 2]) -> Result<(), String> {
    let shared = Shared::new(2, FlowHasher::with_key(3, 4)).map_err(|e| e.to_string())?;
    let mut cfg = EngineConfig::new(SERVER_MAC, Some((SERVER, 24)), None);
    cfg.syn_backlog = 2;
    cfg.syn_timeout = std::time::Duration::from_secs(30);
    let opts = BindOptions::new(0).with_reuseport(true).with_backlog(4);
    let mut engines = Vec::new();
    let mut clients = Vec::new();
    let mut listeners = Vec::new();
    for (core, (a, b)) in rings.into_iter().enumerate() {
        let mut e = Engine::new(a, cfg.clone(), shared.clone(), core, core as u32);
        let l = e
            .tcp_listen(BindAddr::Any4, 80, opts.clone())
            .map_err(|e| e.to_string())?;
        listeners.push(l);
        engines.push(e);
        let port_cfg = PortConfig {
            l2_headroom: 0,
            ..PortConfig::default()
        };
        clients.push(Port::new(b, port_cfg));
    }
    let mut now = Instant::from_millis(1);
    let mut frames = Vec::new();
    for s in segs {
        let f = frame(s);
        let port = &mut clients[s.core % 2];
        if port.send_frame(f.len(), |b| b.copy_from_slice(&f)) {
            port.flush(|_, len| Some(len));
        }
        now += Duration::from_millis(s.wait_ms);
        for (e, &l) in engines.iter_mut().zip(&listeners) {
            e.ingress(now);
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
    for (core, e) in engines.iter().enumerate() {
        e.check_frames()
            .map_err(|err| format!("core {core}: frame ledger: {err:?}"))?;
        for k in e.local_flows() {
            if !seen.insert(k) {
                return Err(format!("flow {k:?} owned by two cores"));
            }
        }
    }
    Ok(())
}

/// Two fresh in-memory ring pairs.
pub fn rings() -> [(MemRings, MemRings); 2] {
    [
        MemRings::pair(MemConfig::default()),
        MemRings::pair(MemConfig::default()),
    ]
}
