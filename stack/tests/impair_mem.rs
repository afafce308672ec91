//! The impaired sandbox's bulk echo (apps/tests/impair.rs) in memory, no
//! root: an echo application on the engine with buffers that grow, clients
//! each pushing data through it and reading it back, over a path with
//! random loss, delay with jitter, reordering and duplication each way,
//! many seeds, half the clients with timestamps (RFC 7323). Every connection must finish, byte-exact, and none may go
//! without progress for long.

use nic::mem::Faults;
use smoltcp::iface::SocketHandle;
use stack::engine::{BufConfig, Engine};
use stack::reuseport::{BindAddr, BindOptions};
use stack::socket::{ConnError, ConnId};
use stack::testing::{engine_net_faults, with_app};
use stack::worker::App;
use testkit::MemClient;

const SERVER: std::net::Ipv4Addr = testkit::SERVER_IP4;
const KIB: usize = 1 << 10;

/// The echo of `services/echo`, as it reads and writes: only connections
/// reported ready are looked at; what it read is queued for sending before
/// it reads more.
struct Echo {
    listener: stack::engine::ListenerId,
    conns: std::collections::HashMap<ConnId, Vec<u8>>,
    buf: Vec<u8>,
    ids: Vec<ConnId>,
}

impl App<nic::mem::MemRings> for Echo {
    fn poll(
        &mut self,
        engine: &mut Engine<nic::mem::MemRings>,
        _: std::time::Instant,
    ) -> Option<std::time::Instant> {
        let mut ids = std::mem::take(&mut self.ids);
        ids.clear();
        while let Some(id) = engine.accept(self.listener) {
            self.conns.insert(id, Vec::new());
            ids.push(id);
        }
        engine.take_ready(&mut ids);
        for &id in &ids {
            let Some(pending) = self.conns.get_mut(&id) else {
                continue;
            };
            let mut eof = false;
            loop {
                while !pending.is_empty() {
                    match engine.send(id, pending) {
                        Ok(0) => break,
                        Ok(n) => {
                            pending.drain(..n);
                        }
                        Err(_) => {
                            pending.clear();
                            eof = true;
                        }
                    }
                }
                if !pending.is_empty() || eof {
                    break;
                }
                match engine.recv(id, &mut self.buf) {
                    Ok(0) => break,
                    Ok(n) => pending.extend_from_slice(&self.buf[..n]),
                    Err(ConnError::Closed) | Err(ConnError::NotFound) => {
                        eof = true;
                        break;
                    }
                }
            }
            if eof && pending.is_empty() {
                engine.close(id);
                self.conns.remove(&id);
            }
        }
        self.ids = ids;
        None
    }
}

/// The client's buffers each way (`IMPAIR_CLIENT_BUF`, default 256 KiB).
fn client_buf() -> usize {
    std::env::var("IMPAIR_CLIENT_BUF")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256 * KIB)
}

fn byte(conn: usize, i: usize) -> u8 {
    ((i % 251) as u8) ^ (conn as u8).wrapping_mul(37)
}

/// `conns` clients each push `each` bytes through the echo and read them
/// back over the impaired path seeded with `seed`. Returns the longest
/// time (ms) any connection went without reading anything back.
fn bulk_echo(seed: u64, conns: usize, each: usize) -> u64 {
    let path = |s: u64| Faults {
        delay_us: 20_000,
        jitter_us: 5_000,
        loss_ppm: 10_000,
        reorder_ppm: 5_000,
        dup_ppm: 1_000,
        seed: s,
        ..Faults::default()
    };
    let net = engine_net_faults(path(seed * 2 + 1), path(seed * 2 + 2), |c| {
        c.buffers = BufConfig::for_memory(4 << 30);
    });
    let mut net = with_app(net, |e| Echo {
        listener: e
            .tcp_listen(BindAddr::Any4, 7, BindOptions::new(0).with_backlog(1024))
            .unwrap(),
        conns: Default::default(),
        buf: vec![0; 64 * KIB],
        ids: Vec::new(),
    });
    net.server.set_ready_tracking(true);
    net.client.ack_each = true;
    let hs: Vec<SocketHandle> = (0..conns)
        .map(|i| {
            let mut s = MemClient::tcp_socket(client_buf());
            // Every other client with timestamps (the engine offers them):
            // PAWS and RTT samples from echoes under loss, reordering and
            // duplication.
            if i % 2 == 1 {
                s.set_timestamps(Some((seed as u32).wrapping_mul(0x9e37_79b9) ^ i as u32));
            }
            net.client.connect_with(s, 40000 + i as u16, (SERVER, 7))
        })
        .collect();
    let data: Vec<Vec<u8>> = (0..conns)
        .map(|c| (0..each).map(|i| byte(c, i)).collect())
        .collect();
    let mut sent = vec![0usize; conns];
    let mut got = vec![0usize; conns];
    let mut last = vec![0u64; conns];
    let mut worst = 0u64;
    let mut buf = vec![0u8; 64 * KIB];
    let mut ms = 0u64;
    while got.iter().any(|&g| g < each) {
        for (i, &h) in hs.iter().enumerate() {
            let s = net.client.tcp(h);
            if sent[i] < each && s.can_send() {
                sent[i] += s.send_slice(&data[i][sent[i]..]).unwrap();
            }
            while s.can_recv() {
                let k = s.recv_slice(&mut buf).unwrap();
                assert_eq!(&buf[..k], &data[i][got[i]..got[i] + k], "conn {i}");
                got[i] += k;
                last[i] = ms;
            }
            if got[i] < each {
                worst = worst.max(ms - last[i]);
            }
        }
        assert!(
            worst < 20_000,
            "seed {seed}: a connection made no progress for {worst} ms (got {got:?})"
        );
        net.run(1);
        ms += 1;
    }
    for (i, &h) in hs.iter().enumerate() {
        assert_eq!(
            net.client.tcp(h).timestamp_enabled(),
            i % 2 == 1,
            "conn {i}"
        );
    }
    worst
}

#[test]
fn bulk_echo_crosses_a_lossy_jittery_reordering_path_without_stalling() {
    let seeds: u64 = std::env::var("IMPAIR_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let each = std::env::var("IMPAIR_EACH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256 * KIB);
    for seed in 0..seeds {
        let conns = std::env::var("IMPAIR_CONNS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(8);
        let worst = bulk_echo(seed, conns, each);
        eprintln!("seed {seed}: longest gap {worst} ms");
    }
}
