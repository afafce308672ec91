//! Frame accounting over millions of frames: two ports over an in-memory
//! pipe, frames with checkable contents in both directions, wire faults and a
//! starved fill ring, and `Port::check` after every few rounds.

use std::time::Instant;

use nic::mem::{Faults, MemConfig, MemRings};
use nic::{Frame, LedgerError, Place, Port, PortConfig, Rings};

/// Frame kinds (byte 0).
const FROM_A: u8 = 0xa1;
const FROM_B: u8 = 0xb2;
/// A frame from A that B reflected back (content unchanged otherwise).
const ECHO: u8 = 0xe3;

/// Header: kind (1), stream (1), zero (6), sequence (8), length (4).
const HEADER: usize = 20;
const MIN_LEN: u64 = 60;
const MAX_LEN: u64 = 1514;

/// The same frames per end as `MemConfig::default()`, spelled out for the
/// assertions below.
const FRAMES: u32 = 256;
const RING: usize = 128;

fn mem_config() -> MemConfig {
    MemConfig {
        frames: FRAMES,
        frame_size: 2048,
        headroom: 256,
        ring: RING,
    }
}

/// Bytes every payload is cut from; a frame's payload starts at an offset
/// that depends on its stream and sequence.
fn pattern() -> Vec<u8> {
    (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ (i as u8))
        .collect()
}

fn frame_len(stream: u8, seq: u64) -> usize {
    let span = MAX_LEN - MIN_LEN + 1;
    (MIN_LEN + (seq.wrapping_mul(7919) + u64::from(stream) * 31) % span) as usize
}

fn payload_offset(stream: u8, seq: u64) -> usize {
    ((seq.wrapping_mul(13) + u64::from(stream)) % 2048) as usize
}

fn write_frame(pat: &[u8], buf: &mut [u8], kind: u8, seq: u64) {
    let len = buf.len();
    buf[0] = kind;
    buf[1] = kind;
    buf[2..8].fill(0);
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
    buf[16..20].copy_from_slice(&(len as u32).to_le_bytes());
    let off = payload_offset(kind, seq);
    buf[HEADER..].copy_from_slice(&pat[off..off + len - HEADER]);
}

/// Check a received frame completely; returns (kind, seq).
fn check_frame(pat: &[u8], buf: &[u8]) -> (u8, u64) {
    assert!(buf.len() >= HEADER, "runt frame of {} bytes", buf.len());
    let kind = buf[0];
    let stream = buf[1];
    let seq = u64::from_le_bytes(buf[8..16].try_into().unwrap());
    let len = u32::from_le_bytes(buf[16..20].try_into().unwrap()) as usize;
    let expected_stream = match kind {
        FROM_A | ECHO => FROM_A,
        FROM_B => FROM_B,
        k => panic!("frame seq {seq}: bad kind {k:#x}"),
    };
    assert_eq!(stream, expected_stream, "frame seq {seq}: stream byte");
    assert_eq!(buf[2..8], [0; 6], "frame seq {seq}: header padding");
    assert_eq!(len, buf.len(), "frame seq {seq}: length field vs frame");
    assert_eq!(len, frame_len(stream, seq), "frame seq {seq}: length");
    let off = payload_offset(stream, seq);
    assert!(
        buf[HEADER..] == pat[off..off + len - HEADER],
        "frame kind {kind:#x} seq {seq}: payload differs"
    );
    (kind, seq)
}

/// Send frame `seq` of stream `kind` from `port`; false when no frame was free.
fn send(port: &mut Port<MemRings>, pat: &[u8], kind: u8, seq: u64) -> bool {
    port.send_frame(frame_len(kind, seq), |buf| write_frame(pat, buf, kind, seq))
}

/// What `port` receives now (into `frames`), each frame with the kind and
/// sequence number its bytes carry, checked; empty when nothing came.
fn receive(
    port: &mut Port<MemRings>,
    frames: &mut Vec<Frame>,
    pat: &[u8],
) -> Vec<(Frame, u8, u64)> {
    port.recv(frames);
    frames
        .iter()
        .map(|&f| {
            let (kind, seq) = port
                .read(f, |bytes| check_frame(pat, bytes))
                .expect("a frame from recv is held");
            (f, kind, seq)
        })
        .collect()
}

/// Sequence numbers seen on one stream must rise; with `exact` they must rise
/// by one (nothing lost).
#[derive(Default)]
struct SeqTrack {
    last: Option<u64>,
    seen: u64,
}

impl SeqTrack {
    fn see(&mut self, what: &str, seq: u64, exact: bool) {
        match self.last {
            Some(last) if exact => assert_eq!(seq, last + 1, "{what}: frame lost or reordered"),
            Some(last) => assert!(seq > last, "{what}: seq {seq} after {last}"),
            None if exact => assert_eq!(seq, 0, "{what}: first frame"),
            None => {}
        }
        self.last = Some(seq);
        self.seen += 1;
    }
}

/// What B does with a frame from A, by sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Reflect,
    ReleaseAndSend,
    Release,
}

fn action(seq: u64) -> Action {
    match seq % 4 {
        0 | 1 => Action::Reflect,
        2 => Action::ReleaseAndSend,
        _ => Action::Release,
    }
}

struct Harness {
    a: Port<MemRings>,
    b: Port<MemRings>,
    pat: Vec<u8>,
    frames: Vec<Frame>,
    /// Every A frame reaches B and every B frame reaches A.
    exact: bool,
    /// B holds what it receives instead of answering (fill-ring starvation).
    hold: bool,
    held: Vec<Frame>,
    a_seq: u64,
    b_seq: u64,
    b_sees_a: SeqTrack,
    a_sees_echo: SeqTrack,
    a_sees_b: SeqTrack,
    b_reflected: u64,
    b_released: u64,
    a_no_frame: u64,
    b_no_frame: u64,
    rounds: u64,
}

impl Harness {
    fn new(faults_a: Faults, faults_b: Faults) -> Harness {
        let exact = faults_a.drop_every == 0 && faults_b.drop_every == 0;
        let (mut ra, mut rb) = MemRings::pair(mem_config());
        ra.set_faults(faults_a);
        rb.set_faults(faults_b);
        let cfg = PortConfig {
            batch: 64,
            ..PortConfig::default()
        };
        Harness {
            a: Port::new(ra, cfg.clone()),
            b: Port::new(rb, cfg),
            pat: pattern(),
            frames: Vec::with_capacity(64),
            exact,
            hold: false,
            held: Vec::new(),
            a_seq: 0,
            b_seq: 0,
            b_sees_a: SeqTrack::default(),
            a_sees_echo: SeqTrack::default(),
            a_sees_b: SeqTrack::default(),
            b_reflected: 0,
            b_released: 0,
            a_no_frame: 0,
            b_no_frame: 0,
            rounds: 0,
        }
    }

    /// One round: A sends `burst` new frames, B answers, A takes the answers.
    fn round(&mut self, burst: usize) {
        self.rounds += 1;
        for _ in 0..burst {
            if send(&mut self.a, &self.pat, FROM_A, self.a_seq) {
                self.a_seq += 1;
            } else {
                self.a_no_frame += 1;
                break;
            }
        }
        self.a.flush(|_, len| Some(len));

        self.b_side();
        self.b.flush(|_, len| Some(len));

        self.a_side();
        self.a.flush(|_, len| Some(len));
    }

    fn b_side(&mut self) {
        // Starvation drops frames at B: from then on the stream has gaps.
        let exact = self.exact && self.b_never_dropped();
        loop {
            let got = receive(&mut self.b, &mut self.frames, &self.pat);
            if got.is_empty() {
                break;
            }
            for (f, kind, seq) in got {
                assert_eq!(kind, FROM_A, "B got a frame it did not expect");
                self.b_sees_a.see("A->B", seq, exact);
                if self.hold {
                    self.held.push(f);
                    continue;
                }
                match action(seq) {
                    Action::Reflect => {
                        self.b.reflect(f, |buf| {
                            buf[0] = ECHO;
                            Some(frame_len(FROM_A, seq))
                        });
                        self.b_reflected += 1;
                    }
                    Action::ReleaseAndSend => {
                        self.b.release(f);
                        self.b_released += 1;
                        if send(&mut self.b, &self.pat, FROM_B, self.b_seq) {
                            self.b_seq += 1;
                        } else {
                            self.b_no_frame += 1;
                        }
                    }
                    Action::Release => {
                        self.b.release(f);
                        self.b_released += 1;
                    }
                }
            }
        }
    }

    /// True while no frame was ever dropped on arrival at B.
    fn b_never_dropped(&self) -> bool {
        !matches!(self.b.rings().kernel_stats(), Some(k) if k.rx_dropped > 0)
    }

    fn a_side(&mut self) {
        loop {
            let got = receive(&mut self.a, &mut self.frames, &self.pat);
            if got.is_empty() {
                break;
            }
            for (f, kind, seq) in got {
                match kind {
                    ECHO => {
                        assert_eq!(action(seq), Action::Reflect, "echo of seq {seq}");
                        self.a_sees_echo.see("echo B->A", seq, false);
                    }
                    FROM_B => self.a_sees_b.see("B->A", seq, self.exact),
                    k => panic!("A got kind {k:#x}"),
                }
                self.a.release(f);
            }
        }
    }

    /// Give back everything B holds.
    fn release_held(&mut self) {
        for f in std::mem::take(&mut self.held) {
            self.b.release(f);
            self.b_released += 1;
        }
    }

    fn check(&self) {
        if let Err(e) = self.a.check() {
            panic!("round {}: port A accounting: {e}", self.rounds);
        }
        if let Err(e) = self.b.check() {
            panic!("round {}: port B accounting: {e}", self.rounds);
        }
    }

    /// Run rounds without new frames until nothing is in flight, then prove
    /// every frame is back: free or on the fill ring.
    fn drain(&mut self) {
        for _ in 0..16 {
            self.round(0);
            if self.a.rings().inbound_len() == 0 && self.b.rings().inbound_len() == 0 {
                break;
            }
        }
        self.round(0);
        self.check();
        for (name, port) in [("A", &self.a), ("B", &self.b)] {
            let st = port.stats();
            let f = st.frames;
            assert_eq!(
                f[Place::Rx as usize] + f[Place::TxBuild as usize] + f[Place::Tx as usize],
                0,
                "port {name}: frames still out after draining: {f:?}"
            );
            assert_eq!(
                f[Place::Free as usize] + f[Place::Fill as usize],
                FRAMES,
                "port {name}: frames missing: {f:?}"
            );
            assert_eq!(port.pending_tx(), 0, "port {name}: tx still pending");
        }
        assert_eq!(self.a.rings().inbound_len(), 0, "wire towards A not empty");
        assert_eq!(self.b.rings().inbound_len(), 0, "wire towards B not empty");
    }

    /// Frames A sent and B sent (reflections plus new ones).
    fn sent(&self) -> (u64, u64) {
        (self.a_seq, self.b_reflected + self.b_seq)
    }

    fn report(&self, name: &str, started: Instant) {
        let (sa, sb) = self.sent();
        println!(
            "{name}: {} rounds, {} frames sent A->B, {} B->A ({} total), {} ledger moves, {:.2?}",
            self.rounds,
            sa,
            sb,
            sa + sb,
            self.a.moves() + self.b.moves(),
            started.elapsed()
        );
        println!("  A: {:?}", self.a.stats());
        println!("  B: {:?}", self.b.stats());
    }
}

const BURST: usize = 64;
const CHECK_EVERY: u64 = 1000;

/// Frames A sends in a round: 1 to 120, varying. At most the rx ring size, so
/// nothing is dropped unless a test makes it so; below A's 128 free frames.
fn burst(round: u64) -> usize {
    1 + (round.wrapping_mul(37) % 120) as usize
}

/// Rounds until at least `frames` frames went over the wire in total.
fn run_until(h: &mut Harness, frames: u64) {
    let mut until_check = CHECK_EVERY;
    while {
        let (a, b) = h.sent();
        a + b < frames
    } {
        h.round(burst(h.rounds));
        until_check -= 1;
        if until_check == 0 {
            h.check();
            until_check = CHECK_EVERY;
        }
    }
    h.check();
}

#[test]
fn millions_of_frames_all_accounted() {
    let started = Instant::now();
    let mut h = Harness::new(Faults::default(), Faults::default());
    run_until(&mut h, 2_000_000);
    h.drain();
    h.report("clean", started);

    let (sent_a, sent_b) = h.sent();
    assert!(sent_a + sent_b >= 2_000_000);
    assert_eq!(h.a_no_frame + h.b_no_frame, 0, "ran out of frames");
    // Every frame A sent reached B, every frame B sent reached A.
    assert_eq!(h.b_sees_a.seen, sent_a);
    assert_eq!(h.a_sees_echo.seen, h.b_reflected);
    assert_eq!(h.a_sees_b.seen, h.b_seq);
    assert_eq!(h.b_reflected + h.b_released, sent_a);

    let (sa, sb) = (h.a.stats(), h.b.stats());
    assert_eq!(sa.counters.tx_frames, sent_a);
    assert_eq!(sb.counters.rx_frames, sent_a);
    assert_eq!(sb.counters.tx_frames, sent_b);
    assert_eq!(sa.counters.rx_frames, sent_b);
    assert_eq!(sa.counters.tx_bytes, sb.counters.rx_bytes);
    assert_eq!(sb.counters.tx_bytes, sa.counters.rx_bytes);
    for s in [&sa, &sb] {
        assert_eq!(s.counters.rx_bad_desc, 0);
        assert_eq!(s.counters.tx_dropped, 0);
        assert_eq!(s.counters.tx_no_frame, 0);
        let k = s.kernel.expect("MemRings keeps kernel stats");
        assert_eq!(k.rx_dropped, 0, "{k:?}");
    }
}

#[test]
fn wire_drops_lose_no_frames() {
    let started = Instant::now();
    let mut h = Harness::new(
        Faults {
            drop_every: 7,
            ..Faults::default()
        },
        Faults {
            drop_every: 11,
            ..Faults::default()
        },
    );
    run_until(&mut h, 1_000_000);
    h.drain();
    h.report("drops", started);

    let (sent_a, sent_b) = h.sent();
    // The wire dropped every 7th frame from A and every 11th from B; the rest
    // arrived, and every frame of both ports came home.
    assert_eq!(h.b_sees_a.seen, sent_a - sent_a / 7);
    assert_eq!(h.a_sees_echo.seen + h.a_sees_b.seen, sent_b - sent_b / 11);
    let (sa, sb) = (h.a.stats(), h.b.stats());
    assert_eq!(sa.counters.tx_frames, sent_a);
    assert_eq!(sb.counters.rx_frames, sent_a - sent_a / 7);
    assert_eq!(sb.counters.tx_frames, sent_b);
    assert_eq!(sa.counters.rx_frames, sent_b - sent_b / 11);
    // A frame lost on the wire is invisible to the receiving "kernel".
    for s in [&sa, &sb] {
        let k = s.kernel.expect("MemRings keeps kernel stats");
        assert_eq!(k.rx_dropped, 0, "{k:?}");
    }
}

#[test]
fn starved_fill_ring_drops_on_arrival_and_loses_nothing() {
    let started = Instant::now();
    let mut h = Harness::new(Faults::default(), Faults::default());
    run_until(&mut h, 50_000);
    h.check();
    let before = h.b.stats().kernel.unwrap();
    assert_eq!(before.rx_dropped, 0);
    let b_rx_before = h.b_sees_a.seen;
    let a_sent_before = h.a_seq;

    // B stops giving frames back: once all its frames are held, A's frames
    // are dropped on arrival for lack of fill-ring frames.
    h.hold = true;
    for _ in 0..200 {
        h.round(BURST);
        h.check();
    }
    let st = h.b.stats();
    assert_eq!(
        st.frames[Place::Rx as usize],
        FRAMES,
        "B holds every frame: {:?}",
        st.frames
    );
    assert_eq!(h.held.len(), FRAMES as usize);
    let k = st.kernel.unwrap();
    let sent_while_held = h.a_seq - a_sent_before;
    let received_while_held = h.b_sees_a.seen - b_rx_before;
    assert_eq!(received_while_held, u64::from(FRAMES));
    assert_eq!(k.rx_dropped, sent_while_held - received_while_held);
    assert_eq!(k.rx_fill_ring_empty, k.rx_dropped);
    assert_eq!(k.rx_ring_full, 0);

    // B gives everything back and traffic resumes.
    h.hold = false;
    h.release_held();
    h.check();
    let resumed_at = h.b_sees_a.seen;
    let (sa, sb) = h.sent();
    run_until(&mut h, sa + sb + 50_000);
    assert!(h.b_sees_a.seen > resumed_at, "B receives again");
    h.drain();
    h.report("starved", started);

    let (sent_a, _) = h.sent();
    let k = h.b.stats().kernel.unwrap();
    assert_eq!(k.rx_dropped, sent_while_held - received_while_held);
    assert_eq!(h.b_sees_a.seen + k.rx_dropped, sent_a);
    assert_eq!(h.b.stats().counters.rx_frames, h.b_sees_a.seen);
    assert_eq!(h.a.stats().kernel.unwrap().rx_dropped, 0);
}

/// Releasing a frame twice is a caller bug the ledger refuses: debug builds
/// stop at once (`debug_assert` in the port), release builds keep the error
/// for `check()` and do not put the frame on the free list twice.
#[test]
#[cfg_attr(
    debug_assertions,
    should_panic(expected = "moved rx -> free but it is in free")
)]
fn double_release_is_detected() {
    let (ra, rb) = MemRings::pair(mem_config());
    let mut a = Port::new(ra, PortConfig::default());
    let mut b = Port::new(rb, PortConfig::default());
    assert!(a.send_frame(100, |buf| buf.fill(7)));
    a.flush(|_, len| Some(len));
    let mut frames = Vec::new();
    assert_eq!(b.recv(&mut frames), 1);
    let f = frames[0];
    b.release(f);
    b.check().expect("one release is fine");
    let before = b.stats().frames;
    b.release(f);
    // Only reached without debug assertions.
    match b.check() {
        Err(LedgerError::WrongPlace {
            from: Place::Rx,
            to: Place::Free,
            actual: Place::Free,
            ..
        }) => {}
        other => panic!("check() after a double release: {other:?}"),
    }
    assert_eq!(b.stats().frames, before, "the refused move changed nothing");
}

/// More frames than the tx ring holds in one flush: the rest wait in the port
/// (still accounted as TxBuild) and go out on later flushes.
#[test]
fn tx_ring_backpressure_keeps_frames() {
    let cfg = MemConfig {
        frames: 1024,
        ..mem_config()
    };
    let (ra, rb) = MemRings::pair(cfg);
    let mut a = Port::new(ra, PortConfig::default());
    let mut b = Port::new(rb, PortConfig::default());
    let pat = pattern();
    let total = 300u64;
    for seq in 0..total {
        assert!(a.send_frame(frame_len(FROM_A, seq), |buf| {
            write_frame(&pat, buf, FROM_A, seq)
        }));
    }
    a.check().unwrap();
    assert_eq!(a.stats().frames[Place::TxBuild as usize], 300);
    assert_eq!(a.pending_tx(), 300);

    let mut frames = Vec::new();
    let mut seen = SeqTrack::default();
    for flush in 0..10 {
        a.flush(|_, len| Some(len));
        a.check().unwrap();
        while b.recv(&mut frames) > 0 {
            for &f in &frames {
                let (_, seq) = b.read(f, |bytes| check_frame(&pat, bytes)).unwrap();
                seen.see("A->B", seq, true);
                b.release(f);
            }
        }
        b.check().unwrap();
        if seen.seen == total {
            assert!(
                flush >= 2,
                "300 frames need three flushes of a 128-slot ring"
            );
            break;
        }
    }
    assert_eq!(seen.seen, total);
    let st = a.stats();
    assert_eq!(st.counters.tx_frames, total);
    assert_eq!(st.counters.tx_ring_full, 2);
    assert_eq!(a.pending_tx(), 0);
    assert_eq!(
        st.frames[Place::Free as usize] + st.frames[Place::Fill as usize],
        1024
    );
    assert_eq!(b.stats().kernel.unwrap().rx_dropped, 0);
}
