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
        ecn: Default::default(),
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

/// One real connection of the client's smoltcp (the engine learns the
/// client's MAC from its ARP request), for tests of raw flows.
pub(super) fn data_path_connect(
    net: &mut EngineNet,
    l: ListenerId,
) -> (SocketHandle, stack::socket::ConnId) {
    connect_all(net, l, 1, 41900)[0]
}
