//! The engine end to end in memory (no root): our `Engine` on one end of a
//! `MemRings` pair, a plain smoltcp Ethernet stack as the client on the
//! other. Covers the reuseport semantics that need real TCP handshakes:
//! uid-checked sharing, keyed distribution, backlog, migration, drain, UDP.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use nic::mem::{MemConfig, MemRings};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, IpEndpoint};
use stack::engine::{Engine, EngineConfig, ListenerId, UdpId};
use stack::parse::{FlowKey, Proto};
use stack::reuseport::{reciprocal_scale, BindAddr, BindError, BindOptions, FlowHasher};
use stack::shared::Shared;
use stack::testing::{engine_net, EngineNet, KEY};
use testkit::{MemClient, Rng};

const SERVER: Ipv4Addr = testkit::SERVER_IP4;
const CLIENT: Ipv4Addr = testkit::CLIENT_IP4;

fn opts(uid: u32) -> BindOptions {
    BindOptions::new(uid).with_reuseport(true).with_backlog(64)
}

fn key_for(sport: u16, dport: u16) -> FlowKey {
    FlowKey {
        proto: Proto::Tcp,
        src: IpAddr::V4(CLIENT),
        sport,
        dst: IpAddr::V4(SERVER),
        dport,
    }
}

fn established(net: &mut EngineNet, hs: &[SocketHandle]) -> bool {
    hs.iter()
        .all(|&h| net.client.tcp(h).state() == tcp::State::Established)
}

#[test]
fn hijack_is_refused_and_no_flow_reaches_it() {
    let mut net = engine_net(|_| {});
    let a = net
        .server
        .tcp_listen(BindAddr::Any4, 80, opts(1000))
        .unwrap();
    let err = net
        .server
        .tcp_listen(BindAddr::Any4, 80, opts(1001))
        .unwrap_err();
    assert!(matches!(err, BindError::PortHijack { .. }), "{err:?}");
    assert!(err.to_string().contains("refused port hijack"), "{err}");
    let err = net
        .server
        .tcp_listen(BindAddr::V4(SERVER), 80, BindOptions::new(1000))
        .unwrap_err();
    assert!(
        matches!(err, BindError::AddrInUseNoReuseport { .. }),
        "{err}"
    );
    let hs: Vec<_> = (0..20)
        .map(|i| net.client.connect(40000 + i, (SERVER, 80)))
        .collect();
    net.run_until(2000, "connections established", |n| established(n, &hs));
    let mut got = 0;
    net.run_until(200, "all accepted", |n| {
        while n.server.accept(a).is_some() {
            got += 1;
        }
        got == 20
    });
    let members = net.server.shared.registry.members();
    assert_eq!(members.len(), 1, "only the owner is bound");
    assert_eq!(members[0].counters.accepted.load(Ordering::Relaxed), 20);
    net.server.check_frames().unwrap();
}

#[test]
fn group_spreads_flows_by_the_keyed_hash() {
    let mut net = engine_net(|_| {});
    let ids: Vec<ListenerId> = (0..3)
        .map(|_| net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap())
        .collect();
    let hasher = FlowHasher::with_key(KEY.0, KEY.1);
    let mut expected: HashMap<ListenerId, usize> = HashMap::new();
    let ports: Vec<u16> = (0..60).map(|i| 41000 + i * 7).collect();
    for &p in &ports {
        let idx = reciprocal_scale(hasher.hash(&key_for(p, 80)), ids.len());
        *expected.entry(ids[idx]).or_default() += 1;
    }
    let hs: Vec<_> = ports
        .iter()
        .map(|&p| net.client.connect(p, (SERVER, 80)))
        .collect();
    net.run_until(3000, "connections established", |n| established(n, &hs));
    let mut got: HashMap<ListenerId, usize> = HashMap::new();
    net.run_until(200, "all accepted", |n| {
        for &id in &ids {
            while n.server.accept(id).is_some() {
                *got.entry(id).or_default() += 1;
            }
        }
        got.values().sum::<usize>() == ports.len()
    });
    assert_eq!(got, expected, "each flow lands where reciprocal_scale says");
    assert!(got.len() == 3, "every member got flows: {got:?}");
}

#[test]
fn closed_listener_queue_migrates_to_a_live_member() {
    let mut net = engine_net(|_| {});
    let a = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let b = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let hs: Vec<_> = (0..30)
        .map(|i| net.client.connect(42000 + i, (SERVER, 80)))
        .collect();
    net.run_until(3000, "connections established", |n| established(n, &hs));
    let on_a = net.server.pending(a);
    let on_b = net.server.pending(b);
    assert_eq!(on_a + on_b, 30);
    assert!(on_a > 0 && on_b > 0, "hash spread both ways: {on_a} {on_b}");
    net.server.close_listener(a).unwrap();
    assert_eq!(net.server.pending(b), 30);
    let mut conns = Vec::new();
    while let Some(c) = net.server.accept(b) {
        conns.push(c);
    }
    assert_eq!(conns.len(), 30);
    // Every migrated connection still carries data both ways.
    for &h in &hs {
        net.client.tcp(h).send_slice(b"ping").unwrap();
    }
    let mut echoed = 0;
    let mut buf = [0u8; 64];
    net.run_until(2000, "echo through migrated connections", |n| {
        for &c in &conns {
            if let Ok(k) = n.server.recv(c, &mut buf) {
                if k > 0 {
                    n.server.send(c, &buf[..k]).unwrap();
                }
            }
        }
        echoed = 0;
        for &h in &hs {
            if n.client.tcp(h).recv_queue() >= 4 {
                echoed += 1;
            }
        }
        echoed == 30
    });
    let rep = net.server.shared.report();
    let a_rep = rep.listeners.iter().find(|l| l.id == a.0 .0).unwrap();
    let b_rep = rep.listeners.iter().find(|l| l.id == b.0 .0).unwrap();
    assert_eq!(a_rep.state, "closed");
    assert_eq!(a_rep.counters.migrated_out as usize, on_a);
    assert_eq!(b_rep.counters.migrated_in as usize, on_a);
    assert_eq!(b_rep.counters.accepted, 30);
    net.server.check_frames().unwrap();
}

#[test]
fn requeued_connections_migrate_intact_and_the_last_member_resets_them() {
    let mut net = engine_net(|_| {});
    let a = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let b = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let hs: Vec<_> = (0..20)
        .map(|i| net.client.connect(45000 + i, (SERVER, 80)))
        .collect();
    net.run_until(3000, "connections established", |n| established(n, &hs));
    // The clients send before anyone reads: the bytes wait in the sockets.
    for &h in &hs {
        net.client.tcp(h).send_slice(b"hello").unwrap();
    }
    net.run(50);
    // `a`'s relay accepted its share, then its consumer went away without
    // taking them: they go back to the group, intact.
    let mut offered = Vec::new();
    while let Some(c) = net.server.accept(a) {
        offered.push(c);
    }
    assert!(!offered.is_empty());
    net.server.drain(a).unwrap();
    for &c in &offered {
        net.server.requeue(c).unwrap();
        assert!(net.server.requeue(c).is_err(), "only an accepted one");
    }
    let mut on_b = Vec::new();
    while let Some(c) = net.server.accept(b) {
        on_b.push(c);
    }
    assert_eq!(on_b.len(), 20, "b has its own and a's");
    let mut buf = [0u8; 16];
    for &c in &on_b {
        assert_eq!(net.server.recv(c, &mut buf), Ok(5), "no byte was read");
        assert_eq!(&buf[..5], b"hello");
    }
    // Given back with no member left: reset, as a closing last listener's
    // queue is.
    net.server.close_listener(a).unwrap();
    net.server.drain(b).unwrap();
    for &c in &on_b {
        net.server.requeue(c).unwrap();
    }
    net.run_until(2000, "clients see the reset", |n| {
        hs.iter()
            .all(|&h| n.client.tcp(h).state() == tcp::State::Closed)
    });
    net.server.check_frames().unwrap();
}

#[test]
fn last_listener_closing_resets_its_queue() {
    let mut net = engine_net(|_| {});
    let a = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let hs: Vec<_> = (0..5)
        .map(|i| net.client.connect(43000 + i, (SERVER, 80)))
        .collect();
    net.run_until(2000, "connections established", |n| established(n, &hs));
    net.server.close_listener(a).unwrap();
    net.run_until(2000, "clients see the reset", |n| {
        hs.iter()
            .all(|&h| n.client.tcp(h).state() == tcp::State::Closed)
    });
    let rep = net.server.shared.report();
    assert_eq!(rep.listeners[0].counters.reset, 5);
    // The port is free again and a new listener serves new clients.
    let b = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let h = net.client.connect(43100, (SERVER, 80));
    net.run_until(2000, "new connection", |n| established(n, &[h]));
    net.run_until(100, "accept", |n| n.server.accept(b).is_some());
}

#[test]
fn drained_listener_takes_no_new_flows_but_keeps_its_own() {
    let mut net = engine_net(|_| {});
    let a = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let b = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let first: Vec<_> = (0..20)
        .map(|i| net.client.connect(44000 + i, (SERVER, 80)))
        .collect();
    net.run_until(2000, "first batch", |n| established(n, &first));
    let a_before = net.server.pending(a);
    assert!(a_before > 0);
    net.server.drain(a).unwrap();
    let second: Vec<_> = (0..40)
        .map(|i| net.client.connect(45000 + i, (SERVER, 80)))
        .collect();
    net.run_until(3000, "second batch", |n| established(n, &second));
    assert_eq!(
        net.server.pending(a),
        a_before,
        "no new flow reached the drained listener"
    );
    let mut n_a = 0;
    while net.server.accept(a).is_some() {
        n_a += 1;
    }
    assert_eq!(n_a, a_before, "its own queue is still accepted");
    assert_eq!(net.server.pending(b), 60 - a_before);
}

#[test]
fn full_backlog_drops_syns_and_counts_them() {
    // Without SYN cookies a SYN beyond the backlog is dropped (with them it
    // is answered with a cookie: see `syn_cookies_*`).
    let mut net = engine_net(|c| c.syncookies = false);
    let a = net
        .server
        .tcp_listen(BindAddr::Any4, 80, BindOptions::new(0).with_backlog(2))
        .unwrap();
    let hs: Vec<_> = (0..5)
        .map(|i| net.client.connect(46000 + i, (SERVER, 80)))
        .collect();
    net.run(200);
    assert_eq!(net.server.pending(a), 2);
    let dropped = net.server.shared.report().listeners[0].counters.dropped;
    assert!(dropped >= 3, "dropped {dropped}");
    // Accepting makes room; the clients' SYN retransmissions get in.
    let mut accepted = 0;
    net.run_until(20_000, "all five accepted after retries", |n| {
        while n.server.accept(a).is_some() {
            accepted += 1;
        }
        accepted == 5
    });
    assert!(established(&mut net, &hs));
}

#[test]
fn udp_group_keeps_each_four_tuple_on_one_member() {
    let mut net = engine_net(|_| {});
    let ids: Vec<UdpId> = (0..2)
        .map(|_| net.server.udp_bind(BindAddr::Any4, 53, opts(0)).unwrap())
        .collect();
    let mut socks = Vec::new();
    for i in 0..16u16 {
        let mut s = MemClient::udp_socket(8, 4096);
        s.bind(47000 + i).unwrap();
        socks.push(net.client.sockets.add(s));
    }
    let server = IpEndpoint::new(IpAddress::Ipv4(SERVER), 53);
    let mut seen: HashMap<u16, UdpId> = HashMap::new();
    let mut buf = [0u8; 64];
    for round in 0..3 {
        for &h in &socks {
            let s = net.client.udp(h);
            s.send_slice(format!("q{round}").as_bytes(), server)
                .unwrap();
        }
        let mut got = 0;
        net.run_until(2000, "datagrams delivered", |n| {
            for &id in &ids {
                while let Ok(Some((k, from, to))) = n.server.recv_from(id, &mut buf) {
                    assert_eq!(&buf[..k], format!("q{round}").as_bytes());
                    assert_eq!(to, IpAddr::V4(SERVER));
                    let prev = seen.insert(from.port(), id);
                    assert!(prev.is_none() || prev == Some(id), "4-tuple moved");
                    // Answer, to check the native send path.
                    n.server.send_to(id, b"answer", from, None).unwrap();
                    got += 1;
                }
            }
            got == socks.len()
        });
    }
    let hasher = FlowHasher::with_key(KEY.0, KEY.1);
    for (&sport, &id) in &seen {
        let k = FlowKey {
            proto: Proto::Udp,
            ..key_for(sport, 53)
        };
        assert_eq!(ids[reciprocal_scale(hasher.hash(&k), 2)], id);
    }
    assert!(seen.values().any(|&m| m == ids[0]) && seen.values().any(|&m| m == ids[1]));
    // The answers arrived with valid checksums (the client verifies them).
    net.run(50);
    for &h in &socks {
        let s = net.client.udp(h);
        let mut n = 0;
        while let Ok((k, meta)) = s.recv_slice(&mut buf) {
            assert_eq!(&buf[..k], b"answer");
            assert_eq!(meta.endpoint, server);
            n += 1;
        }
        assert_eq!(n, 3);
    }
    let _ = SocketAddr::new(IpAddr::V4(CLIENT), 0);
    net.server.check_frames().unwrap();
}

// ---- readiness, connection counts, close timeout, the graceful stop ----

fn accept_all(net: &mut EngineNet, l: ListenerId, n: usize) -> Vec<stack::socket::ConnId> {
    let mut conns = Vec::new();
    net.run_until(500, "all accepted", |net| {
        while let Some(c) = net.server.accept(l) {
            conns.push(c);
        }
        conns.len() == n
    });
    conns
}

#[test]
fn take_ready_lists_only_connections_with_segments() {
    let mut net = engine_net(|_| {});
    let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    net.server.set_ready_tracking(true);
    let hs: Vec<_> = (0..3)
        .map(|i| net.client.connect(46000 + i, (SERVER, 80)))
        .collect();
    net.run_until(2000, "connections established", |n| established(n, &hs));
    let conns = accept_all(&mut net, l, 3);
    let peer_port = |net: &mut EngineNet, c| net.server.peer(c).unwrap().unwrap().port;
    let mut ready = Vec::new();
    net.run(5);
    net.server.take_ready(&mut ready);
    assert!(ready.is_empty(), "nothing arrived after accept: {ready:?}");

    // Data on the second connection only, in several segments.
    net.client.tcp(hs[1]).set_nagle_enabled(false);
    for _ in 0..3 {
        net.client.tcp(hs[1]).send_slice(b"data").unwrap();
        net.run(3);
    }
    net.server.take_ready(&mut ready);
    assert_eq!(
        ready.len(),
        1,
        "listed once however many segments: {ready:?}"
    );
    assert_eq!(peer_port(&mut net, ready[0]), 46001);
    let mut buf = [0u8; 64];
    assert_eq!(net.server.recv(ready[0], &mut buf), Ok(12));
    ready.clear();
    net.server.take_ready(&mut ready);
    assert!(ready.is_empty(), "taken means gone: {ready:?}");

    // A FIN is activity too.
    net.client.tcp(hs[2]).close();
    net.run(5);
    net.server.take_ready(&mut ready);
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert_eq!(peer_port(&mut net, ready[0]), 46002);
    assert_eq!(
        net.server.recv(ready[0], &mut buf),
        Err(stack::socket::ConnError::Closed)
    );

    // Tracking off: nothing is recorded.
    net.server.set_ready_tracking(false);
    net.client.tcp(hs[0]).send_slice(b"x").unwrap();
    net.run(5);
    ready.clear();
    net.server.take_ready(&mut ready);
    assert!(ready.is_empty(), "{ready:?}");
    assert!(conns.len() == 3);
}

#[test]
fn connections_counts_until_the_close_finishes() {
    let mut net = engine_net(|_| {});
    let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let hs: Vec<_> = (0..2)
        .map(|i| net.client.connect(46100 + i, (SERVER, 80)))
        .collect();
    net.run_until(2000, "connections established", |n| established(n, &hs));
    assert_eq!(net.server.connections(), 2, "pending ones count");
    let conns = accept_all(&mut net, l, 2);
    for &c in &conns {
        net.server.close(c);
    }
    net.run(5);
    assert_eq!(
        net.server.connections(),
        2,
        "FIN sent, the peers have not closed"
    );
    for &h in &hs {
        net.client.tcp(h).close();
    }
    net.run_until(2000, "both released", |n| n.server.connections() == 0);
    assert_eq!(net.server.stats().engine.close_timeouts, 0);
}

#[test]
fn close_timeout_resets_a_peer_that_never_closes() {
    let mut net = engine_net(|c| c.close_timeout = std::time::Duration::from_millis(300));
    let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let h = net.client.connect(46200, (SERVER, 80));
    net.run_until(2000, "connection established", |n| established(n, &[h]));
    let c = accept_all(&mut net, l, 1)[0];
    let closed_at = net.clock;
    net.server.close(c);
    // The client never closes its side: our socket sits in FIN_WAIT_2.
    net.run_until(2000, "peer saw our FIN", |n| {
        n.client.tcp(h).state() == tcp::State::CloseWait
    });
    assert_eq!(net.server.connections(), 1);
    net.run_until(5000, "reset after the close timeout", |n| {
        n.client.tcp(h).state() == tcp::State::Closed && n.server.connections() == 0
    });
    assert!(net.clock - closed_at >= smoltcp::time::Duration::from_millis(300));
    assert_eq!(net.server.stats().engine.close_timeouts, 1);
    net.server.check_frames().unwrap();
}

#[test]
fn a_handshake_reset_in_syn_received_is_dropped_not_reused() {
    // smoltcp turns a SYN-RECEIVED socket that gets a RST back into a
    // listening one; left in the queue it would take the next SYN in place
    // of the socket made for it, and that flow would have no entry of its own.
    let mut net = engine_net(|_| {});
    let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    net.server.set_ready_tracking(true);
    let gone = net.client.connect(47000, (SERVER, 80));
    // Until the SYN is admitted (SYN-RECEIVED) and the SYN-ACK sent, before
    // the client sees it.
    net.run_until(200, "SYN admitted", |n| n.server.pending(l) == 1);
    // The client forgets the connection: its stack answers the SYN-ACK with RST.
    net.client.sockets.remove(gone);
    net.step();
    assert_eq!(
        net.server.pending(l),
        0,
        "the reset handshake left the queue"
    );
    assert_eq!(net.server.connections(), 0);
    assert_eq!(net.server.stats().engine.pending_lost, 1);

    // The next client gets its own socket and flow entry: its data is seen.
    let h = net.client.connect(47001, (SERVER, 80));
    net.run_until(2000, "connection established", |n| established(n, &[h]));
    let c = accept_all(&mut net, l, 1)[0];
    assert_eq!(net.server.peer(c).unwrap().unwrap().port, 47001);
    net.client.tcp(h).send_slice(b"hello").unwrap();
    let mut ready = Vec::new();
    net.run_until(500, "data reported ready", |n| {
        n.server.take_ready(&mut ready);
        !ready.is_empty()
    });
    assert_eq!(ready, vec![c]);
    assert_eq!(net.server.stats().flows, 1);
}

mod graceful {
    use super::*;
    use stack::worker::{run, App, LoopConfig};
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant as StdInstant};

    #[derive(Default)]
    struct Probe {
        busy_for: usize,
        stopping_calls: usize,
        shutdowns: usize,
        stopping_after_shutdown: bool,
    }

    impl App<MemRings> for Probe {
        fn poll(&mut self, _e: &mut Engine<MemRings>, _now: StdInstant) -> Option<StdInstant> {
            None
        }
        fn stopping(&mut self, _e: &mut Engine<MemRings>, _now: StdInstant) -> bool {
            if self.shutdowns > 0 {
                self.stopping_after_shutdown = true;
            }
            self.stopping_calls += 1;
            self.stopping_calls <= self.busy_for
        }
        fn shutdown(&mut self, e: &mut Engine<MemRings>) {
            self.shutdowns += 1;
            e.abort_all();
        }
    }

    fn cfg(grace: Duration) -> LoopConfig {
        LoopConfig {
            spin: Duration::from_micros(10),
            max_sleep: Duration::from_millis(5),
            grace,
            ..LoopConfig::default()
        }
    }

    #[test]
    fn the_loop_runs_while_the_app_is_busy_then_shuts_down() {
        let mut net = engine_net(|_| {});
        let stop = AtomicBool::new(true);
        let mut app = Probe {
            busy_for: 3,
            ..Probe::default()
        };
        let stats = run(
            &mut net.server,
            &mut app,
            &stop,
            &cfg(Duration::from_secs(5)),
        );
        assert_eq!(app.stopping_calls, 4, "called until it said done");
        assert_eq!(app.shutdowns, 1);
        assert!(!app.stopping_after_shutdown);
        assert!(!stats.grace_expired);
        assert!(stats.grace_used < Duration::from_secs(5));
    }

    #[test]
    fn the_grace_bounds_a_busy_app() {
        let mut net = engine_net(|_| {});
        let stop = AtomicBool::new(true);
        let mut app = Probe {
            busy_for: usize::MAX,
            ..Probe::default()
        };
        let t = StdInstant::now();
        let stats = run(
            &mut net.server,
            &mut app,
            &stop,
            &cfg(Duration::from_millis(150)),
        );
        assert!(stats.grace_expired);
        assert!(t.elapsed() >= Duration::from_millis(150));
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(app.stopping_calls > 1);
        assert_eq!(app.shutdowns, 1);
    }

    /// An app that only has `poll` keeps today's stop: abort everything at once.
    struct PollOnly;
    impl App<MemRings> for PollOnly {
        fn poll(&mut self, _e: &mut Engine<MemRings>, _now: StdInstant) -> Option<StdInstant> {
            None
        }
    }

    /// An engine of a process with two cores, for the loop alone.
    fn two_core_engine() -> (Engine<MemRings>, MemRings, Arc<Shared>) {
        let (a, b) = MemRings::pair(MemConfig {
            frames: 64,
            ring: 32,
            ..MemConfig::default()
        });
        let shared = Shared::new(2, FlowHasher::with_key(KEY.0, KEY.1)).unwrap();
        let ecfg = EngineConfig::new(testkit::SERVER_MAC, Some((SERVER, 24)), None);
        (Engine::new(a, ecfg, shared.clone(), 0, 0), b, shared)
    }

    /// A core whose application is done keeps serving its queue while the other core still
    /// works (the clients' resets for that core's connections may arrive on this queue), and
    /// leaves as soon as the other is done.
    #[test]
    fn a_done_core_serves_its_queue_until_the_others_are_done() {
        let (mut engine, _peer, shared) = two_core_engine();
        let stop = AtomicBool::new(true);
        let mut app = Probe::default();
        let other = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            shared.mesh.finish();
        });
        let t = StdInstant::now();
        let stats = run(&mut engine, &mut app, &stop, &cfg(Duration::from_secs(5)));
        let took = t.elapsed();
        other.join().unwrap();
        assert!(took >= Duration::from_millis(300), "left after {took:?}");
        assert!(took < Duration::from_secs(2), "left after {took:?}");
        assert!(!stats.grace_expired, "this core's own work was done");
        assert_eq!(app.stopping_calls, 1, "asked once; done is done");
        assert_eq!(app.shutdowns, 1);
    }

    /// A core that never finishes does not hold the others past their grace.
    #[test]
    fn a_done_core_leaves_at_the_end_of_its_grace() {
        let (mut engine, _peer, _shared) = two_core_engine();
        let stop = AtomicBool::new(true);
        let mut app = Probe::default();
        let t = StdInstant::now();
        let stats = run(
            &mut engine,
            &mut app,
            &stop,
            &cfg(Duration::from_millis(200)),
        );
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(200), "left after {took:?}");
        assert!(took < Duration::from_secs(3), "left after {took:?}");
        assert!(!stats.grace_expired);
        assert_eq!(app.shutdowns, 1);
    }

    #[test]
    fn the_default_stop_aborts_at_once() {
        let mut net = engine_net(|_| {});
        let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
        let h = net.client.connect(46300, (SERVER, 80));
        net.run_until(2000, "connection established", |n| established(n, &[h]));
        let _c = accept_all(&mut net, l, 1)[0];
        let stop = AtomicBool::new(true);
        let stats = run(
            &mut net.server,
            &mut PollOnly,
            &stop,
            &cfg(Duration::from_secs(5)),
        );
        assert!(!stats.grace_expired);
        assert!(stats.grace_used < Duration::from_secs(1));
        net.run_until(2000, "the client sees the reset", |n| {
            n.client.tcp(h).state() == tcp::State::Closed
        });
        assert_eq!(net.server.shared.report().listeners[0].state, "closed");
    }
}

// ---- the data path at scale: work only where there is work, bounded
// state under a SYN flood, SYN cookies, recycled sockets ----

mod data_path {
    use super::*;
    use smoltcp::time::Duration as SDuration;
    use smoltcp::wire::{TcpControl, TcpRepr, TcpSeqNumber};

    /// A SYN from `src:sport` (a spoofed source: nobody answers our SYN-ACK).
    fn syn_frame(src: Ipv4Addr, sport: u16, seq: u32) -> Vec<u8> {
        let tcp = TcpRepr {
            src_port: sport,
            dst_port: 80,
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(seq as i32),
            ack_number: None,
            window_len: 64000,
            window_scale: Some(7),
            max_seg_size: Some(1460),
            sack_permitted: true,
            sack_ranges: [None, None, None],
            timestamp: None,
            payload: &[],
        };
        testkit::frames::tcp_to_server(src, &tcp)
    }

    fn inject(net: &mut EngineNet, frame: &[u8]) {
        assert!(net
            .client
            .port
            .send_frame(frame.len(), |b| b.copy_from_slice(frame)));
        net.client.port.flush(|_, len| Some(len));
    }

    fn connect_all(
        net: &mut EngineNet,
        l: ListenerId,
        n: u16,
        base: u16,
    ) -> Vec<(SocketHandle, stack::socket::ConnId)> {
        let hs: Vec<_> = (0..n)
            .map(|i| net.client.connect(base + i, (SERVER, 80)))
            .collect();
        net.run_until(5000, "connections established", |n| established(n, &hs));
        let cs = accept_all(net, l, n as usize);
        let mut pairs = Vec::new();
        for c in cs {
            let port = net.server.peer(c).unwrap().unwrap().port;
            pairs.push((hs[(port - base) as usize], c));
        }
        pairs
    }

    /// The worker takes extra batches in a turn only while the ring holds a
    /// real backlog: a full batch taken and a quarter of the ring (and two
    /// batches) still waiting.
    #[test]
    fn a_deep_rx_ring_is_reported_a_shallow_one_is_not() {
        let mut net = engine_net(|_| {});
        net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
        // 100 SYNs: one batch (64) taken, 36 left of a 512-entry ring.
        for i in 0..100u16 {
            inject(
                &mut net,
                &syn_frame(Ipv4Addr::new(198, 18, 0, 7), 20000 + i, 1),
            );
        }
        net.server.ingress(net.clock);
        assert!(
            !net.server.rx_backlog_deep(),
            "36 of 512 waiting is no backlog"
        );
        net.server.egress(net.clock);
        net.server.ingress(net.clock);
        assert!(
            !net.server.rx_backlog_deep(),
            "a short batch: nothing waits"
        );
        // 300 more: after one batch, 236 of 512 wait.
        for i in 0..300u16 {
            inject(
                &mut net,
                &syn_frame(Ipv4Addr::new(198, 18, 0, 8), 20000 + i, 1),
            );
        }
        net.server.egress(net.clock);
        net.server.ingress(net.clock);
        assert!(
            net.server.rx_backlog_deep(),
            "236 of 512 waiting is a backlog"
        );
        net.server.check_frames().unwrap();
    }

    #[test]
    fn egress_visits_only_connections_with_work() {
        let mut net = engine_net(|_| {});
        let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
        let pairs = connect_all(&mut net, l, 60, 44000);
        net.run(300); // delayed ACKs and the like settle
        let v0 = net.server.stats().engine.egress_visits;
        net.run(500);
        let idle = net.server.stats().engine.egress_visits - v0;
        assert_eq!(idle, 0, "idle connections were visited {idle} times");
        // One connection gets data: only it is visited.
        let (h, c) = pairs[7];
        net.client.tcp(h).send_slice(b"ping").unwrap();
        let v1 = net.server.stats().engine.egress_visits;
        let mut buf = [0u8; 16];
        net.run_until(100, "data read", |n| {
            n.server.recv(c, &mut buf).unwrap() == 4
        });
        net.server.send(c, b"pong").unwrap();
        net.run_until(100, "reply seen", |n| n.client.tcp(h).can_recv());
        let busy = net.server.stats().engine.egress_visits - v1;
        assert!(
            busy <= 8,
            "{busy} visits for one exchange among 60 connections"
        );
        assert_eq!(net.server.connections(), 60);
    }

    /// Each ACK pushes the retransmission deadline later, so the entry
    /// filed for the old one comes up early: it is filed again from the
    /// connection's mark (counted), and a segment that is really lost is
    /// still resent at its deadline.
    #[test]
    fn early_timers_are_filed_again_and_a_lost_segment_is_still_resent() {
        use smoltcp::wire::{EthernetFrame, Ipv4Packet, TcpPacket};
        let mut net = engine_net(|_| {});
        let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
        let (h, c) = connect_all(&mut net, l, 1, 47000)[0];
        let mut buf = [0u8; 64];
        for _ in 0..40 {
            net.server.send(c, b"data").unwrap();
            net.run(30);
            assert_eq!(net.client.tcp(h).recv_slice(&mut buf).unwrap(), 4);
        }
        let st = net.server.stats().engine;
        assert!(st.timer_early > 0, "no early entry in 1.2 s of exchanges");
        assert_eq!(st.timer_fires, 0, "a timer fired though every ACK came");
        // The client falls silent: the engine resends on its own.
        net.server.send(c, b"lost").unwrap();
        let mut copies = 0;
        for _ in 0..3000 {
            net.server.ingress(net.clock);
            net.server.egress(net.clock);
            let mut frames = Vec::new();
            net.client.port.recv(&mut frames);
            for f in frames {
                let data = net.client.port.read(f, |b| {
                    let eth = EthernetFrame::new_checked(b).ok()?;
                    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
                    let t = TcpPacket::new_checked(ip.payload()).ok()?;
                    Some(t.payload() == b"lost")
                });
                net.client.port.release(f);
                copies += usize::from(data == Some(Some(true)));
            }
            if copies >= 2 {
                break;
            }
            net.clock += SDuration::from_millis(1);
        }
        assert!(copies >= 2, "the lost segment was sent {copies} time(s)");
        assert!(net.server.stats().engine.timer_fires > 0);
    }

    /// The egress pass between the batches of a backlog drain sends what
    /// connections being set up owe (SYN-ACKs) and leaves connections the
    /// application holds dirty for the pass after it runs.
    #[test]
    fn a_setup_pass_answers_handshakes_and_leaves_held_connections_dirty() {
        let mut net = engine_net(|_| {});
        let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
        let pairs = connect_all(&mut net, l, 4, 46000);
        net.run(300);
        let (h, c) = pairs[2];
        net.client.tcp(h).send_slice(b"ping").unwrap();
        net.client.step(net.clock);
        inject(&mut net, &raw(TcpControl::Syn, 1, None, &[]));
        net.server.ingress(net.clock);
        let v0 = net.server.stats().engine.egress_visits;
        net.server.egress_setup(net.clock);
        assert_eq!(
            net.server.stats().engine.egress_visits - v0,
            1,
            "only the half-open connection is visited"
        );
        let syn_acks = engine_sent(&mut net)
            .iter()
            .filter(|&&(_, ack, control, _)| control == TcpControl::Syn && ack == Some(2))
            .count();
        assert_eq!(syn_acks, 1, "the SYN-ACK went out in the setup pass");
        assert!(net.server.dirty(), "the held connection is still dirty");
        let mut buf = [0u8; 16];
        assert_eq!(net.server.recv(c, &mut buf).unwrap(), 4);
        net.server.send(c, b"pong").unwrap();
        net.server.egress(net.clock);
        assert_eq!(net.server.stats().engine.egress_visits - v0, 2);
        net.run_until(100, "reply seen", |n| n.client.tcp(h).can_recv());
    }

    #[test]
    fn released_sockets_are_reused_with_their_buffers() {
        let mut net = engine_net(|_| {});
        let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
        for round in 0..3u16 {
            let pairs = connect_all(&mut net, l, 10, 45000 + round * 100);
            assert_eq!(net.server.stats().pooled, 0, "round {round}: pool used");
            for &(h, c) in &pairs {
                net.server.close(c);
                net.client.tcp(h).close();
            }
            net.run_until(3000, "all released", |n| n.server.connections() == 0);
            assert_eq!(net.server.stats().pooled, 10, "round {round}");
        }
        assert_eq!(net.server.stats().flows, 0);
        net.server.check_frames().unwrap();
    }

    #[test]
    fn the_peers_fin_is_acknowledged_before_the_connection_is_released() {
        let mut net = engine_net(|_| {});
        let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
        let (h, c) = connect_all(&mut net, l, 1, 41500)[0];
        net.server.send(c, b"bye").unwrap();
        net.server.close(c);
        net.run_until(100, "client saw our FIN", |n| {
            n.client.tcp(h).state() == tcp::State::CloseWait
        });
        net.client.tcp(h).close();
        // Well before any retransmission: our ACK of its FIN arrives.
        net.run_until(100, "client closed", |n| {
            n.client.tcp(h).state() == tcp::State::Closed
        });
        net.run_until(100, "released", |n| n.server.connections() == 0);
        assert_eq!(net.server.stats().engine.time_wait_reaped, 1);
    }

    #[test]
    fn closes_beyond_the_orphan_bound_reset() {
        let mut net = engine_net(|c| c.max_orphans = 2);
        let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
        let pairs = connect_all(&mut net, l, 4, 41700);
        // The clients never close: our closes stay in FIN_WAIT_2.
        for &(_, c) in &pairs {
            net.server.close(c);
        }
        net.run(20);
        let st = net.server.stats();
        assert_eq!(st.engine.orphans_reset, 2);
        assert_eq!(st.closing, 2, "two still closing, two reset and gone");
        assert_eq!(net.server.connections(), 2);
        let reset = pairs
            .iter()
            .filter(|&&(h, _)| net.client.tcp(h).state() == tcp::State::Closed)
            .count();
        assert_eq!(reset, 2, "the clients saw two resets");
        net.server.check_frames().unwrap();
    }

    #[test]
    fn syn_cookies_let_clients_in_when_the_syn_queue_is_full() {
        let mut net = engine_net(|c| c.syn_backlog = 2);
        let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
        // Six SYNs at once: two fit the SYN queue, the others get cookies.
        let hs: Vec<_> = (0..6)
            .map(|i| net.client.connect(43000 + i, (SERVER, 80)))
            .collect();
        net.run_until(3000, "clients established", |n| established(n, &hs));
        for &h in &hs {
            net.client.tcp(h).send_slice(b"hello").unwrap();
        }
        let cs = accept_all(&mut net, l, 6);
        let st = net.server.stats().engine;
        assert!(st.syncookies_sent >= 4, "{st:?}");
        assert!(st.syncookies_ok >= 4, "{st:?}");
        // Cookie connections carry data both ways.
        for &c in &cs {
            let mut buf = [0u8; 16];
            net.run_until(200, "request read", |n| {
                n.server.recv(c, &mut buf).unwrap() == 5
            });
            assert_eq!(&buf[..5], b"hello");
            net.server.send(c, b"world!").unwrap();
        }
        net.run_until(500, "replies seen", |n| {
            hs.iter().all(|&h| n.client.tcp(h).recv_queue() == 6)
        });
        net.server.check_frames().unwrap();
    }

    /// One segment the engine sent: (seq, ack, control, payload length).
    type Seg = (u32, Option<u32>, TcpControl, usize);

    /// What the engine sent to the raw flow below, read off the client's
    /// port behind the client's back.
    fn engine_sent(net: &mut EngineNet) -> Vec<Seg> {
        use smoltcp::wire::{EthernetFrame, Ipv4Packet, TcpPacket};
        let mut frames = Vec::new();
        net.client.port.recv(&mut frames);
        let mut out = Vec::new();
        for f in frames {
            let seg = net.client.port.read(f, |b| {
                let eth = EthernetFrame::new_checked(b).ok()?;
                let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
                let t = TcpPacket::new_checked(ip.payload()).ok()?;
                if t.dst_port() != 5555 {
                    return None;
                }
                let control = match (t.syn(), t.fin(), t.rst()) {
                    (true, _, _) => TcpControl::Syn,
                    (_, true, _) => TcpControl::Fin,
                    (_, _, true) => TcpControl::Rst,
                    _ => TcpControl::None,
                };
                let ack = t.ack().then(|| t.ack_number().0 as u32);
                Some((t.seq_number().0 as u32, ack, control, t.payload().len()))
            });
            net.client.port.release(f);
            out.extend(seg.flatten());
        }
        out
    }

    /// A segment of the raw flow CLIENT:5555 -> :80 (a port the client's
    /// smoltcp does not use).
    fn raw(control: TcpControl, seq: u32, ack: Option<u32>, payload: &[u8]) -> Vec<u8> {
        testkit::frames::segment_to_server(CLIENT, 5555, 80, control, seq, ack, payload)
    }

    /// Injects `frame`, lets the engine work, returns what it sent. The
    /// clock moves 1.1 s first: challenge ACKs are limited to one a second.
    fn exchange(net: &mut EngineNet, frame: &[u8]) -> Vec<Seg> {
        net.clock += SDuration::from_millis(1100);
        inject(net, frame);
        net.server.ingress(net.clock);
        net.server.egress(net.clock);
        engine_sent(net)
    }

    /// RFC 5961 on an established connection (our vendored smoltcp's patch,
    /// vendor/README.md): an RST or SYN with the connection's 4-tuple resets
    /// it only with the exact next sequence number; in the window it gets a
    /// challenge ACK, out of the window an RST is dropped silently.
    #[test]
    fn blind_resets_and_syns_need_the_exact_sequence_number() {
        let mut net = engine_net(|_| {});
        let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
        // A real connection first: the engine learns the client's MAC from
        // its ARP request (it answers nobody it has not heard ARP from).
        let real = connect_all(&mut net, l, 1, 41800);
        let isn = 1000u32;
        let out = exchange(&mut net, &raw(TcpControl::Syn, isn, None, &[]));
        let [(server_isn, Some(a), TcpControl::Syn, 0)] = out[..] else {
            panic!("no SYN-ACK: {out:?}");
        };
        assert_eq!(a, isn + 1);
        let nxt = isn + 1; // RCV.NXT of the server
        let snd = server_isn.wrapping_add(1);
        exchange(&mut net, &raw(TcpControl::Psh, nxt, Some(snd), b"hello"));
        let c = net.server.accept(l).expect("established");
        let nxt = nxt + 5;
        // Whatever the engine still had to say (a delayed ACK) is out.
        net.clock += SDuration::from_millis(1100);
        net.server.ingress(net.clock);
        net.server.egress(net.clock);
        engine_sent(&mut net);
        let challenge: Seg = (snd, Some(nxt), TcpControl::None, 0);
        let cases = [
            (
                "RST in the window, not exact",
                TcpControl::Rst,
                nxt + 100,
                None,
                vec![challenge],
            ),
            (
                "RST|ACK in the window",
                TcpControl::Rst,
                nxt + 1,
                Some(snd),
                vec![challenge],
            ),
            (
                "RST out of the window",
                TcpControl::Rst,
                nxt.wrapping_add(1 << 31),
                None,
                vec![],
            ),
            (
                "SYN in the window",
                TcpControl::Syn,
                nxt + 10,
                None,
                vec![challenge],
            ),
            (
                "SYN out of the window",
                TcpControl::Syn,
                nxt.wrapping_sub(5000),
                None,
                vec![challenge],
            ),
            (
                "SYN|ACK at RCV.NXT",
                TcpControl::Syn,
                nxt,
                Some(snd),
                vec![challenge],
            ),
        ];
        for (what, control, seq, ack, want) in cases {
            let out = exchange(&mut net, &raw(control, seq, ack, &[]));
            assert_eq!(out, want, "{what}: what the engine sent");
            assert_eq!(
                net.server.may_recv(c),
                Ok(true),
                "{what}: the connection is gone"
            );
        }
        // It still serves: data both ways.
        let mut buf = [0u8; 16];
        assert_eq!(net.server.recv(c, &mut buf).unwrap(), 5);
        net.server.send(c, b"world").unwrap();
        let out = exchange(&mut net, &raw(TcpControl::None, nxt, Some(snd), &[]));
        assert!(
            out.iter().any(|s| s.0 == snd && s.3 == 5),
            "no data after the attack: {out:?}"
        );
        // The exact sequence number resets it (as RFC 5961 wants).
        let out = exchange(&mut net, &raw(TcpControl::Rst, nxt, None, &[]));
        assert!(out.is_empty(), "{out:?}");
        assert_ne!(net.server.may_recv(c), Ok(true), "an exact RST resets");
        assert!(net.server.recv(c, &mut buf).is_err());
        assert!(
            net.server.recv(real[0].1, &mut buf).is_ok(),
            "the other one lives"
        );
        net.server.check_frames().unwrap();
    }

    /// A connection of the raw flow up to the application's close after the
    /// peer's FIN: the engine is in LAST-ACK, waiting for the ACK of its FIN.
    /// Returns (the connection, the server's next sequence number, ours).
    fn raw_to_last_ack(
        net: &mut EngineNet,
        l: ListenerId,
        isn: u32,
    ) -> (stack::socket::ConnId, u32, u32) {
        let before = net.server.connections();
        let out = exchange(net, &raw(TcpControl::Syn, isn, None, &[]));
        let [(server_isn, Some(_), TcpControl::Syn, 0)] = out[..] else {
            panic!("no SYN-ACK: {out:?}");
        };
        let snd = server_isn.wrapping_add(1);
        exchange(net, &raw(TcpControl::Psh, isn + 1, Some(snd), b"query"));
        let c = net.server.accept(l).expect("established");
        let mut buf = [0u8; 16];
        assert_eq!(net.server.recv(c, &mut buf).unwrap(), 5);
        net.server.send(c, b"answer").unwrap();
        let out = exchange(net, &raw(TcpControl::None, isn + 6, Some(snd), &[]));
        assert!(out.iter().any(|s| s.3 == 6), "no answer: {out:?}");
        let snd = snd + 6;
        exchange(net, &raw(TcpControl::Fin, isn + 6, Some(snd), &[]));
        assert!(
            net.server.recv(c, &mut buf).is_err(),
            "the peer's FIN is in"
        );
        net.server.close(c);
        net.server.ingress(net.clock);
        net.server.egress(net.clock);
        let out = engine_sent(net);
        assert!(
            out.iter().any(|s| s.2 == TcpControl::Fin && s.0 == snd),
            "no FIN: {out:?}"
        );
        assert_eq!(net.server.connections(), before + 1, "in LAST-ACK");
        (c, isn + 7, snd + 1)
    }

    /// A SYN for a 4-tuple whose connection the peer has forgotten (the ACK
    /// of our FIN lost, the client's port reused) starts a new connection
    /// at once, where a challenge ACK would lose it with clients that never
    /// resend a SYN, and block the 4-tuple until the close times out.
    #[test]
    fn a_syn_on_a_closing_connection_the_peer_finished_starts_a_new_one() {
        let mut net = engine_net(|_| {});
        let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
        connect_all(&mut net, l, 1, 41800);
        raw_to_last_ack(&mut net, l, 1000);
        // The peer reuses its port: a SYN with any sequence number (before or
        // after the old one; kxdpgun's are random).
        for (round, isn) in [(0, 500u32), (1, 90_000)] {
            let out = exchange(&mut net, &raw(TcpControl::Syn, isn, None, &[]));
            let [(server_isn, Some(a), TcpControl::Syn, 0)] = out[..] else {
                panic!("round {round}: no SYN-ACK for the new SYN: {out:?}");
            };
            assert_eq!(a, isn + 1);
            let st = net.server.stats().engine;
            assert_eq!(st.syn_restarts, round + 1);
            assert_eq!(st.syn_on_conn, 0);
            // The new connection serves; it closes the same way for the next round.
            exchange(
                &mut net,
                &raw(
                    TcpControl::None,
                    isn + 1,
                    Some(server_isn.wrapping_add(1)),
                    &[],
                ),
            );
            let c = net
                .server
                .accept(l)
                .expect("the new connection is accepted");
            assert_eq!(net.server.peer(c).unwrap().unwrap().port, 5555);
            assert_eq!(net.server.connections(), 2, "the old one is gone");
            if round == 0 {
                net.server.close(c);
                net.server.ingress(net.clock);
                net.server.egress(net.clock);
                engine_sent(&mut net);
                // FIN-WAIT: our FIN is not acknowledged, the peer's not in.
                // The peer's FIN, then our last ACK: gone (TIME-WAIT is not kept).
                let snd = server_isn.wrapping_add(2);
                exchange(&mut net, &raw(TcpControl::Fin, isn + 1, Some(snd), &[]));
                assert_eq!(net.server.connections(), 1);
                raw_to_last_ack(&mut net, l, isn.wrapping_add(7777));
            }
        }
        net.server.check_frames().unwrap();
    }

    /// The connections a peer may still be using keep RFC 5961's answer: a
    /// SYN on an established one gets a challenge ACK (tested above), and so
    /// does a retransmission of the SYN a half-open one answers (its
    /// SYN-ACK again); a half-open one whose peer started over with another
    /// sequence number is replaced.
    #[test]
    fn a_half_open_connection_is_replaced_only_by_a_new_attempt() {
        let mut net = engine_net(|_| {});
        let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
        connect_all(&mut net, l, 1, 41800);
        let out = exchange(&mut net, &raw(TcpControl::Syn, 1000, None, &[]));
        let [(first, Some(1001), TcpControl::Syn, 0)] = out[..] else {
            panic!("no SYN-ACK: {out:?}");
        };
        // The same SYN again: the same connection answers.
        let out = exchange(&mut net, &raw(TcpControl::Syn, 1000, None, &[]));
        assert!(
            out.iter().all(|s| s.0 == first && s.1 == Some(1001)),
            "{out:?}"
        );
        let st = net.server.stats().engine;
        assert_eq!((st.syn_restarts, st.syn_on_conn), (0, 1));
        assert_eq!(net.server.pending(l), 1);
        // Another attempt on the same port: a new half-open connection.
        let out = exchange(&mut net, &raw(TcpControl::Syn, 77_000, None, &[]));
        let [(second, Some(77_001), TcpControl::Syn, 0)] = out[..] else {
            panic!("no SYN-ACK for the new attempt: {out:?}");
        };
        let st = net.server.stats().engine;
        assert_eq!((st.syn_restarts, st.pending_lost), (1, 1));
        assert_eq!(net.server.pending(l), 1, "one half-open connection");
        assert_eq!(net.server.connections(), 2);
        // It completes with the new numbers.
        exchange(
            &mut net,
            &raw(TcpControl::None, 77_001, Some(second.wrapping_add(1)), &[]),
        );
        assert!(net.server.accept(l).is_some());
        assert_eq!(net.server.stats().flows, 2);
        net.server.check_frames().unwrap();
    }

    #[test]
    fn a_syn_flood_leaves_bounded_state_that_expires_and_clients_still_connect() {
        let mut net = engine_net(|c| {
            c.syn_backlog = 64;
            c.syn_timeout = std::time::Duration::from_secs(10);
        });
        let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
        let mut rng = Rng::new(0x9e37_79b9);
        let mut next = || rng.next_u32();
        let mut sent = 0;
        for round in 0..40 {
            for _ in 0..100 {
                let r = next();
                let src = Ipv4Addr::new(198, 18, 0, 3 + (r % 250) as u8);
                inject(
                    &mut net,
                    &syn_frame(src, 1024 + (r >> 16) as u16 % 60000, next()),
                );
                sent += 1;
            }
            net.run(2);
            assert!(net.server.connections() <= 64, "round {round}");
            assert!(net.server.stats().flows <= 64, "round {round}");
        }
        let st = net.server.stats().engine;
        assert!(st.syncookies_sent >= sent - 64 - 50, "{sent} SYNs: {st:?}");
        // A real client gets in during the flood (through a cookie).
        let pairs = connect_all(&mut net, l, 3, 42000);
        assert_eq!(pairs.len(), 3);
        // The half-open ones go away after the SYN timeout; nothing else
        // is left of the flood.
        net.clock += SDuration::from_secs(11);
        net.run(5);
        assert_eq!(net.server.connections(), 3);
        assert_eq!(net.server.stats().flows, 3);
        assert_eq!(net.server.stats().engine.syn_timeouts, 64);
        assert_eq!(net.server.pending(l), 0);
        net.server.check_frames().unwrap();
    }
}

#[test]
fn a_reset_in_last_ack_releases_the_connection() {
    // Our data and FIN after the peer's FIN, answered by a peer that forgot
    // the connection (RST): released at once, not after the close timeout.
    let mut net = engine_net(|_| {});
    let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let h = net.client.connect(41900, (SERVER, 80));
    net.run_until(2000, "established", |n| established(n, &[h]));
    let c = accept_all(&mut net, l, 1)[0];
    net.client.tcp(h).close();
    let mut buf = [0u8; 8];
    net.run_until(200, "peer FIN seen", |n| {
        n.server.recv(c, &mut buf).is_err()
    });
    net.server.send(c, b"late").unwrap();
    net.server.close(c);
    // The client forgets the connection: its stack answers what comes with RST.
    net.client.sockets.remove(h);
    net.run_until(300, "released", |n| n.server.connections() == 0);
}
