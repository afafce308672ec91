//! TIME-WAIT kept as records (`stack/src/tcp/time_wait.rs`): a raw client
//! closes after us and scripts what a peer whose last ACK was lost, or that
//! reuses its port, sends; the engine answers from the record, not with
//! RST, for 60 s.

use super::*;
use smoltcp::time::Duration as SDuration;
use smoltcp::wire::TcpControl;
use stack::engine::TIME_WAIT_LEN;

/// One segment the engine sent: (seq, ack, control, payload length).
pub(super) type Seg = (u32, Option<u32>, TcpControl, usize);

pub(super) fn seg(
    port: u16,
    control: TcpControl,
    seq: u32,
    ack: Option<u32>,
    payload: &[u8],
) -> Vec<u8> {
    testkit::frames::segment_to_server(CLIENT, port, 80, control, seq, ack, payload)
}

/// What the engine sent to `port`, read off the client's port.
pub(super) fn sent(net: &mut EngineNet, port: u16) -> Vec<Seg> {
    use smoltcp::wire::{EthernetFrame, Ipv4Packet, TcpPacket};
    let mut frames = Vec::new();
    net.client.port.recv(&mut frames);
    let mut out = Vec::new();
    for f in frames {
        let s = net.client.port.read(f, |b| {
            let eth = EthernetFrame::new_checked(b).ok()?;
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let t = TcpPacket::new_checked(ip.payload()).ok()?;
            if t.dst_port() != port {
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
        out.extend(s.flatten());
    }
    out
}

/// Inject `frame` after `after_ms`, run one turn, return what was sent to
/// `port`.
pub(super) fn xchg(net: &mut EngineNet, port: u16, after_ms: u64, frame: &[u8]) -> Vec<Seg> {
    net.clock += SDuration::from_millis(after_ms);
    assert!(net
        .client
        .port
        .send_frame(frame.len(), |b| b.copy_from_slice(frame)));
    net.client.port.flush(|_, len| Some(len));
    net.server.ingress(net.clock);
    net.server.egress(net.clock);
    sent(net, port)
}

/// An engine (config adjusted by `f`) listening on port 80 that has
/// served one real connection (kept open, idle): it learned the client's
/// MAC from its ARP request, so the raw segments below get answers.
pub(super) fn listening(f: impl FnOnce(&mut EngineConfig)) -> (EngineNet, ListenerId) {
    let mut net = engine_net(f);
    let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let h = net.client.connect(46999, (SERVER, 80));
    net.run_until(2000, "established", |n| established(n, &[h]));
    accept_all(&mut net, l, 1);
    (net, l)
}

/// A connection from `port` (ISN `isn`) served and closed by the engine
/// first (as `Connection: close`), then by the peer: the engine ends in
/// TIME-WAIT. Returns (the engine's SND.NXT, its RCV.NXT) at the end.
fn to_time_wait(net: &mut EngineNet, l: ListenerId, port: u16, isn: u32) -> (u32, u32) {
    let before = net.server.connections();
    let out = xchg(net, port, 10, &seg(port, TcpControl::Syn, isn, None, &[]));
    let [(server_isn, Some(_), TcpControl::Syn, 0)] = out[..] else {
        panic!("no SYN-ACK: {out:?}");
    };
    let snd = server_isn.wrapping_add(1);
    let req = seg(port, TcpControl::Psh, isn + 1, Some(snd), b"GET");
    xchg(net, port, 10, &req);
    let c = net.server.accept(l).expect("established");
    let mut buf = [0u8; 8];
    assert_eq!(net.server.recv(c, &mut buf).unwrap(), 3);
    net.server.send(c, b"answer").unwrap();
    net.server.close(c);
    net.server.egress(net.clock);
    let out = sent(net, port);
    let fin = out
        .iter()
        .find(|s| s.2 == TcpControl::Fin)
        .unwrap_or_else(|| panic!("no FIN: {out:?}"));
    let snd_nxt = fin.0.wrapping_add(fin.3 as u32).wrapping_add(1);
    assert_eq!(snd_nxt, snd + 6 + 1);
    // The peer takes the answer and the FIN and sends its own FIN.
    let rcv_nxt = isn + 1 + 3 + 1;
    let out = xchg(
        net,
        port,
        10,
        &seg(port, TcpControl::Fin, isn + 4, Some(snd_nxt), &[]),
    );
    assert_eq!(
        out,
        vec![(snd_nxt, Some(rcv_nxt), TcpControl::None, 0)],
        "our last ACK"
    );
    assert_eq!(net.server.connections(), before, "the slot is free at once");
    (snd_nxt, rcv_nxt)
}

/// Our last ACK is lost: the peer retransmits its FIN and gets the ACK
/// again (not RST, which would fail its close), for 60 s after the last
/// retransmission; then the 4-tuple is forgotten and a late FIN meets RST.
#[test]
fn a_retransmitted_fin_in_time_wait_is_acked_until_the_record_expires() {
    let (mut net, l) = listening(|_| {});
    let (snd, rcv) = to_time_wait(&mut net, l, 6001, 1000);
    let st = net.server.stats();
    assert_eq!((st.engine.time_wait, st.engine.time_wait_reaped), (1, 0));
    assert_eq!((st.time_wait, st.flows, st.pooled), (1, 1, 1), "one real");
    let fin = seg(6001, TcpControl::Fin, rcv - 1, Some(snd), &[]);
    let ack = vec![(snd, Some(rcv), TcpControl::None, 0)];
    // Retransmitted after 1 s, then 50 s later: ACKed each time.
    assert_eq!(xchg(&mut net, 6001, 1000, &fin), ack);
    assert_eq!(xchg(&mut net, 6001, 50_000, &fin), ack);
    assert_eq!(net.server.stats().engine.time_wait_fin_acked, 2);
    // 59 s after the last one: still held (the wait restarted).
    assert_eq!(xchg(&mut net, 6001, 59_000, &fin), ack);
    // Nothing comes for 60 s: the record expires in an egress pass (the
    // worker is woken for it), and the next FIN meets no connection.
    net.clock += SDuration::from_micros(TIME_WAIT_LEN.as_micros() as u64);
    net.server.egress(net.clock);
    let st = net.server.stats();
    assert_eq!((st.time_wait, st.engine.time_wait_expired), (0, 1));
    let out = xchg(&mut net, 6001, 1, &fin);
    assert_eq!(
        out,
        vec![(snd, None, TcpControl::Rst, 0)],
        "RST after expiry"
    );
    net.server.check_frames().unwrap();
}

/// The engine wakes for the oldest record's expiry.
#[test]
fn the_worker_is_woken_when_the_oldest_record_is_due() {
    let (mut net, l) = listening(|_| {});
    // The real connection's storage goes back after 1 s idle; then nothing
    // is due.
    net.run(3000);
    let idle = net.server.poll_delay(net.clock);
    to_time_wait(&mut net, l, 6002, 1000);
    let delay = net.server.poll_delay(net.clock).expect("a wake-up");
    assert_eq!(idle, None);
    assert!(delay <= TIME_WAIT_LEN, "{delay:?}");
    assert!(
        delay > TIME_WAIT_LEN - std::time::Duration::from_secs(1),
        "{delay:?}"
    );
}

/// A SYN on the 4-tuple above the old RCV.NXT is a new connection (RFC 1122
/// 4.2.2.13), whose ISN starts above the old SND.NXT; one at or below
/// RCV.NXT is an old duplicate and gets an ACK (RST would kill a live
/// peer's retransmission; a client that really starts over answers the
/// ACK with RST, which ends the record, and sends its SYN again).
#[test]
fn a_syn_above_rcv_nxt_reopens_the_tuple_an_old_one_gets_an_ack() {
    let (mut net, l) = listening(|_| {});
    let (snd, rcv) = to_time_wait(&mut net, l, 6003, 1000);
    // An old SYN (the first connection's own).
    let out = xchg(
        &mut net,
        6003,
        1000,
        &seg(6003, TcpControl::Syn, 1000, None, &[]),
    );
    assert_eq!(out, vec![(snd, Some(rcv), TcpControl::None, 0)]);
    assert_eq!(net.server.connections(), 1, "the real one");
    // A new SYN above RCV.NXT.
    let isn = rcv + 100_000;
    let out = xchg(
        &mut net,
        6003,
        1000,
        &seg(6003, TcpControl::Syn, isn, None, &[]),
    );
    let want_isn = snd.wrapping_add(65_537);
    assert_eq!(out, vec![(want_isn, Some(isn + 1), TcpControl::Syn, 0)]);
    let st = net.server.stats();
    // The record is gone; its ring slot was the oldest: popped at once.
    assert_eq!((st.engine.time_wait_syn_reuse, st.time_wait), (1, 0));
    let out = xchg(
        &mut net,
        6003,
        10,
        &seg(6003, TcpControl::Psh, isn + 1, Some(want_isn + 1), b"GET"),
    );
    assert!(out.iter().all(|s| s.2 != TcpControl::Rst), "{out:?}");
    let c = net.server.accept(l).expect("the new connection");
    let mut buf = [0u8; 8];
    assert_eq!(net.server.recv(c, &mut buf).unwrap(), 3);
    // The new connection closes into TIME-WAIT again: one live record.
    net.server.close(c);
    net.server.egress(net.clock);
    let out = sent(&mut net, 6003);
    let fin = out.iter().find(|s| s.2 == TcpControl::Fin).expect("FIN");
    let snd2 = fin.0 + 1;
    let out = xchg(
        &mut net,
        6003,
        10,
        &seg(6003, TcpControl::Fin, isn + 4, Some(snd2), &[]),
    );
    assert_eq!(out, vec![(snd2, Some(isn + 5), TcpControl::None, 0)]);
    let out = xchg(
        &mut net,
        6003,
        1000,
        &seg(6003, TcpControl::Fin, isn + 4, Some(snd2), &[]),
    );
    assert_eq!(out, vec![(snd2, Some(isn + 5), TcpControl::None, 0)]);
    assert_eq!(net.server.stats().engine.time_wait, 2);
    net.server.check_frames().unwrap();
}

/// An RST at exactly RCV.NXT ends the record (Linux's default; RFC 1337's
/// alternative would leave a client that answered our ACK of its new SYN
/// with RST waiting out the 60 s); one elsewhere changes nothing; data gets
/// an ACK, never RST.
#[test]
fn an_exact_rst_ends_the_record_others_do_not_and_data_is_acked() {
    let (mut net, l) = listening(|_| {});
    let (snd, rcv) = to_time_wait(&mut net, l, 6004, 1000);
    let ack = vec![(snd, Some(rcv), TcpControl::None, 0)];
    let data = seg(6004, TcpControl::Psh, rcv, Some(snd), b"late");
    assert_eq!(xchg(&mut net, 6004, 1000, &data), ack);
    for bad in [rcv + 1, rcv - 1, rcv + 70_000] {
        let out = xchg(
            &mut net,
            6004,
            1000,
            &seg(6004, TcpControl::Rst, bad, None, &[]),
        );
        assert!(out.is_empty(), "{bad}: {out:?}");
    }
    let fin = seg(6004, TcpControl::Fin, rcv - 1, Some(snd), &[]);
    assert_eq!(xchg(&mut net, 6004, 1000, &fin), ack, "still there");
    let out = xchg(
        &mut net,
        6004,
        1000,
        &seg(6004, TcpControl::Rst, rcv, None, &[]),
    );
    assert!(out.is_empty(), "{out:?}");
    let st = net.server.stats().engine;
    assert_eq!((st.time_wait_rst, st.time_wait_acked), (1, 1));
    let out = xchg(&mut net, 6004, 1000, &fin);
    assert_eq!(out, vec![(snd, None, TcpControl::Rst, 0)], "gone");
}

/// The table holds `time_wait_max` records: beyond it the oldest is
/// dropped (counted), as Linux's `tcp_max_tw_buckets`.
#[test]
fn the_time_wait_table_is_bounded_and_drops_its_oldest() {
    let (mut net, l) = listening(|c| c.time_wait_max = 4);
    let ports: Vec<u16> = (6100..6107).collect();
    let ends: Vec<(u32, u32)> = ports
        .iter()
        .map(|&p| to_time_wait(&mut net, l, p, 1000 + u32::from(p)))
        .collect();
    let st = net.server.stats();
    assert_eq!(st.time_wait, 4);
    assert_eq!((st.engine.time_wait, st.engine.time_wait_dropped), (7, 3));
    assert_eq!(st.time_wait_bytes, 4 * 64 + 8 * 8, "preallocated, no more");
    for (i, (&p, &(snd, rcv))) in ports.iter().zip(&ends).enumerate() {
        let out = xchg(
            &mut net,
            p,
            10,
            &seg(p, TcpControl::Fin, rcv - 1, Some(snd), &[]),
        );
        let want = if i < 3 {
            vec![(snd, None, TcpControl::Rst, 0)]
        } else {
            vec![(snd, Some(rcv), TcpControl::None, 0)]
        };
        assert_eq!(out, want, "port {p}");
    }
}

/// `time_wait_max` 0: as before the table, the slot goes and a late FIN
/// meets RST.
#[test]
fn without_a_table_time_wait_is_cut_short() {
    let (mut net, l) = listening(|c| c.time_wait_max = 0);
    let (snd, rcv) = to_time_wait(&mut net, l, 6005, 1000);
    let st = net.server.stats();
    assert_eq!((st.engine.time_wait_reaped, st.engine.time_wait), (1, 0));
    let out = xchg(
        &mut net,
        6005,
        10,
        &seg(6005, TcpControl::Fin, rcv - 1, Some(snd), &[]),
    );
    assert_eq!(out, vec![(snd, None, TcpControl::Rst, 0)]);
}

/// A real peer (smoltcp) closing after us: the engine's records do not get
/// in the way of the close, and its ACKs of the peer's retransmitted FIN
/// finish the peer's LAST-ACK when our first ACK was lost.
#[test]
fn a_peer_whose_last_ack_was_lost_still_closes() {
    let mut net = engine_net(|_| {});
    let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let h = net.client.connect(46000, (SERVER, 80));
    net.run_until(2000, "established", |n| established(n, &[h]));
    let c = accept_all(&mut net, l, 1)[0];
    net.server.close(c);
    net.run_until(100, "client saw our FIN", |n| {
        n.client.tcp(h).state() == tcp::State::CloseWait
    });
    net.client.tcp(h).close();
    // The client sends its FIN; the engine's ACK of it is lost.
    net.client.step(net.clock);
    net.server.ingress(net.clock);
    net.server.egress(net.clock);
    let lost = sent(&mut net, 46000);
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(net.server.connections(), 0);
    assert_eq!(net.client.tcp(h).state(), tcp::State::LastAck);
    // It retransmits the FIN; the record answers it and the client closes.
    net.run_until(5000, "client closed", |n| {
        n.client.tcp(h).state() == tcp::State::Closed
    });
    let st = net.server.stats().engine;
    assert_eq!((st.time_wait, st.time_wait_fin_acked), (1, 1));
}
