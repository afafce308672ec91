//! SYN cookies that keep window scaling and SACK in the timestamp (as
//! Linux's `cookie_init_timestamp`): scripted segments from a raw client
//! (CLIENT:5555, a port the client's smoltcp does not use), read off the
//! client's port behind its back.

use super::*;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::time::Duration as SDuration;
use smoltcp::wire::{TcpControl, TcpPacket, TcpRepr, TcpSeqNumber, TcpTimestampRepr};

const RAW_PORT: u16 = 5555;

/// One segment the engine sent to the raw client, its options included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Out {
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    rst: bool,
    window: u16,
    wscale: Option<u8>,
    mss: Option<u16>,
    sack: bool,
    ts: Option<(u32, u32)>,
    len: usize,
}

fn sent(net: &mut EngineNet) -> Vec<Out> {
    use smoltcp::wire::{EthernetFrame, IpAddress, Ipv4Packet};
    let mut frames = Vec::new();
    net.client.port.recv(&mut frames);
    let mut out = Vec::new();
    for f in frames {
        let seg = net.client.port.read(f, |b| {
            let eth = EthernetFrame::new_checked(b).ok()?;
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let t = TcpPacket::new_checked(ip.payload()).ok()?;
            let caps = ChecksumCapabilities::default();
            let (src, dst) = (
                IpAddress::Ipv4(ip.src_addr()),
                IpAddress::Ipv4(ip.dst_addr()),
            );
            let r = TcpRepr::parse(&t, &src, &dst, &caps).expect("a valid segment");
            (r.dst_port == RAW_PORT).then(|| Out {
                seq: r.seq_number.0 as u32,
                ack: r.ack_number.map(|a| a.0 as u32),
                syn: r.control == TcpControl::Syn,
                rst: r.control == TcpControl::Rst,
                window: r.window_len,
                wscale: r.window_scale,
                mss: r.max_seg_size,
                sack: r.sack_permitted,
                ts: r.timestamp.map(|t| (t.tsval, t.tsecr)),
                len: r.payload.len(),
            })
        });
        net.client.port.release(f);
        out.extend(seg.flatten());
    }
    out
}

/// A segment of the raw client with every field the test chooses.
#[allow(clippy::too_many_arguments)]
fn seg(
    control: TcpControl,
    seq: u32,
    ack: Option<u32>,
    window: u16,
    wscale: Option<u8>,
    sack: bool,
    ts: Option<(u32, u32)>,
    sack_blocks: [Option<(u32, u32)>; 3],
) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: RAW_PORT,
        dst_port: 80,
        control,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: window,
        window_scale: wscale,
        max_seg_size: (control == TcpControl::Syn).then_some(1460),
        sack_permitted: sack,
        sack_ranges: sack_blocks,
        timestamp: ts.map(|(v, e)| TcpTimestampRepr::new(v, e)),
        ecn: Default::default(),
        payload: &[],
    };
    testkit::frames::tcp_to_server(CLIENT, &tcp)
}

/// Let `ms` pass, deliver `frame` (if any), let the engine work; what it
/// sent the raw client.
fn step(net: &mut EngineNet, ms: u64, frame: Option<&[u8]>) -> Vec<Out> {
    net.clock += SDuration::from_millis(ms);
    if let Some(f) = frame {
        assert!(net
            .client
            .port
            .send_frame(f.len(), |b| b.copy_from_slice(f)));
        net.client.port.flush(|_, len| Some(len));
    }
    net.server.ingress(net.clock);
    net.server.egress(net.clock);
    sent(net)
}

/// A listener whose SYN queue (one entry) is held by a spoofed half-open
/// connection, after a real connection taught the engine the client's MAC.
fn full_syn_queue() -> (EngineNet, ListenerId) {
    let mut net = engine_net(|c| c.syn_backlog = 1);
    let l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let h = net.client.connect(41900, (SERVER, 80));
    net.run_until(2000, "established", |n| established(n, &[h]));
    assert!(net.server.accept(l).is_some());
    let spoofed = TcpRepr {
        src_port: 7000,
        dst_port: 80,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(1),
        ack_number: None,
        window_len: 1000,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        ecn: Default::default(),
        payload: &[],
    };
    let f = testkit::frames::tcp_to_server(Ipv4Addr::new(198, 18, 0, 99), &spoofed);
    step(&mut net, 1, Some(&f));
    assert_eq!(net.server.pending(l), 1, "the SYN queue is full");
    (net, l)
}

/// A client offering window scale 7, SACK and timestamps gets a cookie
/// SYN-ACK offering our window scale, SACK and a timestamp whose low bits
/// keep the client's options; the connection rebuilt from the final ACK
/// scales the client's window, sends timestamps and honours SACK blocks.
#[test]
fn syn_cookies_keep_window_scale_and_sack_with_timestamps() {
    let (mut net, l) = full_syn_queue();
    let isn = 50_000u32;
    let syn = seg(
        TcpControl::Syn,
        isn,
        None,
        65535,
        Some(7),
        true,
        Some((1000, 0)),
        [None; 3],
    );
    let out = step(&mut net, 1, Some(&syn));
    let [sa] = out[..] else {
        panic!("one SYN-ACK: {out:?}");
    };
    assert!(sa.syn);
    assert_eq!(sa.ack, Some(isn + 1));
    assert_eq!(net.server.stats().engine.syncookies_sent, 1, "a cookie");
    assert_eq!(net.server.pending(l), 1, "nothing kept for it");
    // Our window scale: 6 MiB of receive window at most is scale 7.
    assert_eq!(sa.wscale, Some(7));
    assert!(sa.sack, "SACK-permitted");
    assert_eq!(sa.mss, Some(1460));
    let (tsval, tsecr) = sa.ts.expect("a timestamp");
    assert_eq!(tsecr, 1000, "echoes the SYN's TSval");
    assert_eq!(tsval & 0x3f, 7 | 0x10, "wscale 7 and SACK in the low bits");
    let server_isn = sa.seq;
    let snd = server_isn.wrapping_add(1);
    let rcv = isn + 1;

    // The final ACK: a window of 100 << 7 = 12,800 bytes.
    let ack = seg(
        TcpControl::None,
        rcv,
        Some(snd),
        100,
        None,
        false,
        Some((1001, tsval)),
        [None; 3],
    );
    step(&mut net, 5, Some(&ack));
    let c = net.server.accept(l).expect("the cookie connection");
    assert_eq!(net.server.stats().engine.syncookies_ok, 1);

    // The scaled window: the whole segments of 12,800 bytes go out at once
    // (less than the initial congestion window; no runt while data is in
    // flight, patch 16), not the none of 100 bytes.
    let data = vec![7u8; 40_000];
    assert!(net.server.send(c, &data).unwrap() >= 20_000);
    let out = step(&mut net, 1, None);
    let total: usize = out.iter().map(|o| o.len).sum();
    assert_eq!(total, (100 << 7) / 1448 * 1448, "{out:?}");
    let mut seq = snd;
    for o in &out {
        assert_eq!(o.seq, seq, "in order");
        seq = seq.wrapping_add(o.len as u32);
        assert!(o.len <= 1460 - 12, "data and timestamp within the MSS");
        let (v, e) = o.ts.expect("timestamps on every segment");
        assert_eq!(e, 1001, "TS.Recent from the final ACK");
        assert!(v.wrapping_sub(tsval) < 100, "the clock the cookie began");
    }
    let mss = out[0].len as u32;
    assert_eq!(mss, 1448);

    // The first segment lost, the next three SACKed: the sender repairs
    // the hole at once (RFC 6675: more than 2 segments SACKed above it)
    // and resends nothing SACKed.
    let sacked = (snd + mss, snd + 4 * mss);
    let dup = seg(
        TcpControl::None,
        rcv,
        Some(snd),
        100,
        None,
        false,
        Some((1002, out[3].ts.unwrap().0)),
        [Some(sacked), None, None],
    );
    let out = step(&mut net, 30, Some(&dup));
    assert!(
        out.iter().any(|o| o.seq == snd && o.len == mss as usize),
        "the hole resent: {out:?}"
    );
    assert!(
        out.iter()
            .all(|o| o.len == 0 || o.seq == snd || o.seq >= sacked.1),
        "nothing SACKed resent: {out:?}"
    );
    net.server.check_frames().unwrap();
}

/// A client without timestamps gets the old cookie: no window scaling, no
/// SACK, no timestamps, and its window is taken unscaled.
#[test]
fn syn_cookies_without_timestamps_offer_no_window_scale_or_sack() {
    let (mut net, l) = full_syn_queue();
    let isn = 60_000u32;
    let syn = seg(
        TcpControl::Syn,
        isn,
        None,
        65535,
        Some(7),
        true,
        None,
        [None; 3],
    );
    let out = step(&mut net, 1, Some(&syn));
    let [sa] = out[..] else {
        panic!("one SYN-ACK: {out:?}");
    };
    assert!(sa.syn);
    assert_eq!(net.server.stats().engine.syncookies_sent, 1, "a cookie");
    assert_eq!((sa.wscale, sa.sack, sa.ts), (None, false, None));
    let snd = sa.seq.wrapping_add(1);
    let ack = seg(
        TcpControl::None,
        isn + 1,
        Some(snd),
        3000,
        None,
        false,
        None,
        [None; 3],
    );
    step(&mut net, 5, Some(&ack));
    let c = net.server.accept(l).expect("the cookie connection");
    assert!(net.server.send(c, &[1u8; 20_000]).unwrap() > 3000);
    let out = step(&mut net, 1, None);
    let total: usize = out.iter().map(|o| o.len).sum();
    assert_eq!(total, 3000 / 1460 * 1460, "the window unscaled: {out:?}");
    assert!(out.iter().all(|o| o.ts.is_none()), "no timestamps: {out:?}");
    net.server.check_frames().unwrap();
}

/// Connections from the SYN queue negotiate timestamps too (and a client
/// without them sees none: the testkit client offers none).
#[test]
fn syn_queue_connections_offer_timestamps() {
    let mut net = engine_net(|_| {});
    let _l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let h = net.client.connect(41901, (SERVER, 80));
    net.run_until(2000, "established", |n| established(n, &[h]));
    assert!(!net.client.tcp(h).timestamp_enabled(), "none offered to it");
    let syn = seg(
        TcpControl::Syn,
        70_000,
        None,
        65535,
        Some(7),
        true,
        Some((5, 0)),
        [None; 3],
    );
    let out = step(&mut net, 1, Some(&syn));
    let [sa] = out[..] else {
        panic!("one SYN-ACK: {out:?}");
    };
    assert_eq!(sa.wscale, Some(7));
    assert!(sa.sack);
    let (_, tsecr) = sa.ts.expect("a timestamp");
    assert_eq!(tsecr, 5);
    // Off: none offered.
    let mut net = engine_net(|c| c.timestamps = false);
    let _l = net.server.tcp_listen(BindAddr::Any4, 80, opts(0)).unwrap();
    let h = net.client.connect(41902, (SERVER, 80));
    net.run_until(2000, "established", |n| established(n, &[h]));
    let out = step(&mut net, 1, Some(&syn));
    let [sa] = out[..] else {
        panic!("one SYN-ACK: {out:?}");
    };
    assert_eq!(sa.ts, None);
}
