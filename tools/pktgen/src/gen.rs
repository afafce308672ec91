//! One generator per queue: sends patched template frames from the port's
//! transmit pool at the paced rate, classifies everything that comes back,
//! answers SYN-ACKs with RSTs, records round trips, and publishes its
//! counters for the once-a-second report. Generic over the ring backend, so
//! the whole loop runs in memory in tests.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nic::{Frame, LedgerError, Port, PortStats, Rings};

use super::echo::EchoHeader;
use super::neigh;
use super::pacer::Pacer;
use super::reply::{classify, rst_for_synack, syn_isn, syn_rtt_ns, Reply};
use super::template::{Fields, Kind, Template};

/// Receive batches per step at most: replies may come back as fast as
/// frames go out, so a step takes more than one batch when there is more.
const RX_BATCHES: usize = 4;

/// Highest round trip the histograms hold (ns); longer ones are clamped.
pub const MAX_RTT_NS: u64 = 60_000_000_000;

/// A latency histogram in ns.
pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts (1 <= low, high >= 2 * low, 3 digits).
    Histogram::new_with_bounds(1, MAX_RTT_NS, 3).unwrap_or_else(|_| Histogram::new(3).unwrap())
}

/// A contiguous range of source addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrRange {
    /// First address.
    pub first: IpAddr,
    /// Number of addresses (at least 1).
    pub len: u64,
}

impl AddrRange {
    /// Whether `a` is one of the range's addresses.
    pub fn contains(&self, a: IpAddr) -> bool {
        let off = match (self.first, a) {
            (IpAddr::V4(f), IpAddr::V4(a)) => u128::from(u32::from(a).wrapping_sub(u32::from(f))),
            (IpAddr::V6(f), IpAddr::V6(a)) => u128::from(a).wrapping_sub(u128::from(f)),
            _ => return false,
        };
        off < u128::from(self.len.max(1))
    }

    /// The `i`-th address (`i` taken modulo the length).
    pub fn nth(&self, i: u64) -> IpAddr {
        let i = i % self.len.max(1);
        match self.first {
            IpAddr::V4(a) => IpAddr::V4(u32::from(a).wrapping_add(i as u32).into()),
            IpAddr::V6(a) => IpAddr::V6(u128::from(a).wrapping_add(u128::from(i)).into()),
        }
    }
}

/// A range of source ports, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (>= first).
    pub last: u16,
}

impl PortRange {
    /// Ports in the range.
    pub fn len(&self) -> u64 {
        u64::from(self.last.saturating_sub(self.first)) + 1
    }

    /// Never empty; for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `i`-th port (modulo the length).
    pub fn nth(&self, i: u64) -> u16 {
        self.first.wrapping_add((i % self.len()) as u16)
    }

    /// Whether `p` is in the range.
    pub fn contains(&self, p: u16) -> bool {
        (self.first..=self.last).contains(&p)
    }
}

/// Send times of outstanding DNS queries by id, shared by all threads (a
/// reply may come back on any queue). Each thread owns a slice of the ids.
pub struct DnsTable {
    slots: Box<[AtomicU64]>,
}

impl Default for DnsTable {
    fn default() -> Self {
        DnsTable {
            slots: (0..65536).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl DnsTable {
    /// Query `id` was sent at `ts_ns`.
    pub fn put(&self, id: u16, ts_ns: u64) {
        self.slots[usize::from(id)].store(ts_ns.saturating_add(1), Ordering::Relaxed);
    }

    /// The send time of query `id`, once: a duplicate or unknown reply gets `None`.
    pub fn take(&self, id: u16) -> Option<u64> {
        match self.slots[usize::from(id)].swap(0, Ordering::Relaxed) {
            0 => None,
            v => Some(v - 1),
        }
    }
}

/// Most flows the SYN table tracks (32 MiB of slots).
pub const MAX_SYN_FLOWS: u64 = 1 << 22;

/// The acknowledgment number expected for each flow's outstanding SYN,
/// shared by all threads: a SYN-ACK counts once (a retransmitted one, or
/// one for a SYN the flow has since replaced, is unmatched).
pub struct SynTable {
    slots: Box<[AtomicU64]>,
}

impl SynTable {
    /// A table for `flows` flows (at most [`MAX_SYN_FLOWS`]).
    pub fn new(flows: u64) -> SynTable {
        SynTable {
            slots: (0..flows.min(MAX_SYN_FLOWS))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// Flow `flow` sent a SYN whose SYN-ACK will acknowledge `ack`.
    pub fn put(&self, flow: u64, ack: u32) {
        if let Some(s) = self.slots.get(flow as usize) {
            s.store(u64::from(ack) | 1 << 32, Ordering::Relaxed);
        }
    }

    /// A SYN-ACK for `flow` acknowledging `ack`: true the first time it
    /// matches the flow's outstanding SYN.
    pub fn take(&self, flow: u64, ack: u32) -> bool {
        let want = u64::from(ack) | 1 << 32;
        self.slots.get(flow as usize).is_some_and(|s| {
            s.compare_exchange(want, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        })
    }
}

/// Counters a thread publishes while it runs.
#[derive(Debug, Default)]
pub struct Live {
    /// Frames sent.
    pub sent: AtomicU64,
    /// Frames received.
    pub received: AtomicU64,
    /// Replies matched.
    pub answered: AtomicU64,
    /// Connections established now (http).
    pub open: AtomicU64,
}

/// How frames are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TxMode {
    /// Template written once into transmit-pool frames, patched per packet.
    Pool,
    /// Template copied into a free frame per packet, then patched.
    Copy,
}

/// One generator's settings.
#[derive(Clone)]
pub struct GenConfig {
    /// Thread index (= queue index).
    pub thread: u32,
    /// Threads in the run.
    pub threads: u32,
    /// The packet template.
    pub template: Arc<Template>,
    /// Our MAC (replies must be sent to it).
    pub our_mac: [u8; 6],
    /// Target address.
    pub dst: IpAddr,
    /// Target port.
    pub dst_port: u16,
    /// Source addresses.
    pub src_ips: AddrRange,
    /// Source ports.
    pub src_ports: PortRange,
    /// Flows in the run (address x port combinations used), shared out
    /// round-robin among the threads.
    pub flows: u64,
    /// This thread's rate in packets per second (0: as fast as possible).
    pub rate: u64,
    /// This thread's packet budget (`None`: until the deadline).
    pub count: Option<u64>,
    /// Frames per send batch.
    pub batch: usize,
    /// Time base of timestamps (the run's start).
    pub epoch: Instant,
    /// Stop sending at this instant.
    pub send_until: Instant,
    /// Wait this long for late replies after sending stops.
    pub drain: Duration,
    /// Run id (echo payloads).
    pub run: u32,
    /// Answer SYN-ACKs with RST.
    pub reset_synacks: bool,
    /// How frames are written.
    pub tx_mode: TxMode,
    /// Transmit-pool frames (pool mode).
    pub pool: usize,
    /// Shared DNS send times.
    pub dns: Arc<DnsTable>,
    /// Shared outstanding SYNs.
    pub syns: Arc<SynTable>,
    /// Published counters.
    pub live: Arc<Live>,
}

/// What a generator counted.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GenCounters {
    /// Frames sent.
    pub sent: u64,
    /// Frames received (all of them).
    pub received: u64,
    /// Replies that matched something we sent.
    pub answered: u64,
    /// Times a send found no transmit frame (back-pressure).
    pub tx_blocked: u64,
    /// Received IP packets the stack's parser refused (bad checksums...).
    pub rx_invalid: u64,
    /// Received frames that are not IP or not for our MAC (ARP, ...).
    pub rx_not_ip: u64,
    /// ARP requests and neighbour solicitations for one of our source
    /// addresses, answered (also counted in `rx_not_ip`).
    pub neighbor_answered: u64,
    /// Valid IP packets from elsewhere, to other ports, or of another kind.
    pub rx_other: u64,
    /// Replies of the right shape that match nothing we sent (another run's
    /// echo, a duplicate or unknown DNS id).
    pub rx_unmatched: u64,
    /// RSTs from the target (syn: port closed).
    pub rst_received: u64,
    /// SYN-ACKs answered with a RST.
    pub rst_sent: u64,
    /// DNS replies with a nonzero RCODE (still answered).
    pub dns_rcode_errors: u64,
}

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Work was done or is waiting: call again now.
    Busy,
    /// Nothing to do for this long (sleep in the port's wait).
    Idle(Duration),
    /// Sending and draining are over.
    Done,
}

/// What a generator thread runs: steps until done. `run`'s loop is the
/// same for every generator: when `stop` is set, stop sending (and go on
/// stepping: what is outstanding is awaited); when idle, sleep in `wait`
/// for whole milliseconds (1 to 100), or go round again if the next thing
/// is due within 50 µs (poll()'s millisecond would overshoot it
/// twentyfold). Bounded by the steps' own deadlines: sending ends at the
/// run's duration and draining its drain time later.
pub trait Generator {
    /// Stop sending anything new now; what is outstanding is awaited.
    fn stop_sending(&mut self);
    /// One round at `now`.
    fn step(&mut self, now: Instant) -> Step;
    /// Sleep until frames may have arrived or `ms` passed.
    fn wait(&mut self, ms: i32);

    /// Run until done or `stop` is set (then stop sending and drain).
    fn run(&mut self, stop: &AtomicBool) {
        loop {
            if stop.load(Ordering::Relaxed) {
                self.stop_sending();
            }
            match self.step(Instant::now()) {
                Step::Busy => {}
                Step::Idle(d) if d < Duration::from_micros(50) => {}
                Step::Idle(d) => self.wait(d.as_micros().div_ceil(1000).clamp(1, 100) as i32),
                Step::Done => break,
            }
        }
    }
}

/// Seconds from `epoch` until sending stopped (0 if it never did).
pub fn send_secs(epoch: Instant, sent_until: Option<Instant>) -> f64 {
    sent_until.map_or(0.0, |t| t.saturating_duration_since(epoch).as_secs_f64())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Sending,
    Draining(Instant),
    Done,
}

/// Receive-side state, apart from the port so that both can be borrowed.
struct Rx {
    cfg: GenConfig,
    c: GenCounters,
    hist: Histogram<u64>,
}

enum Action {
    Release,
    Reset,
    /// An ARP request / NS for one of our source addresses: answer it.
    Neighbor,
}

impl Rx {
    fn rtt(&mut self, ns: u64) {
        self.hist.saturating_record(ns.clamp(1, MAX_RTT_NS));
    }

    /// The flow index of our address `to` and port `port` (the inverse of
    /// [`packet_fields`]'s mapping), if they are ours.
    fn flow_of(&self, to: IpAddr, port: u16) -> Option<u64> {
        let r = &self.cfg.src_ips;
        let ip = match (r.first, to) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                u128::from(u32::from(b)).checked_sub(u128::from(u32::from(a)))?
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(b).checked_sub(u128::from(a))?,
            _ => return None,
        };
        if ip >= u128::from(r.len.max(1)) || !self.cfg.src_ports.contains(port) {
            return None;
        }
        let port_idx = u64::from(port - self.cfg.src_ports.first);
        Some(port_idx * r.len.max(1) + ip as u64)
    }

    fn handle(&mut self, frame: &[u8], now_ns: u64) -> Action {
        self.c.received += 1;
        let kind = self.cfg.template.kind();
        if let (Kind::Ns, IpAddr::V6(target)) = (kind, self.cfg.dst) {
            // The target's advertisement answers a solicitation (sent to
            // whichever of our sources asked: all of them are ours).
            if neigh::ndp_advert_for(frame, target).is_some() {
                self.c.answered += 1;
                return Action::Release;
            }
        }
        match classify(frame, self.cfg.our_mac, self.cfg.dst, self.cfg.dst_port) {
            Reply::Udp { dport, .. } if !self.cfg.src_ports.contains(dport) => self.c.rx_other += 1,
            Reply::Udp { payload, .. } => match kind {
                Kind::Echo => match EchoHeader::decode(payload) {
                    Some(h) if h.run == self.cfg.run && h.ts_ns <= now_ns => {
                        self.c.answered += 1;
                        self.rtt(now_ns - h.ts_ns);
                    }
                    _ => self.c.rx_unmatched += 1,
                },
                Kind::Dns => match payload.get(..4) {
                    Some(h) if h[2] & 0x80 != 0 => {
                        let id = u16::from_be_bytes([h[0], h[1]]);
                        match self.cfg.dns.take(id) {
                            Some(sent) => {
                                self.c.answered += 1;
                                self.rtt(now_ns.saturating_sub(sent));
                                if h[3] & 0x0f != 0 {
                                    self.c.dns_rcode_errors += 1;
                                }
                            }
                            None => self.c.rx_unmatched += 1,
                        }
                    }
                    _ => self.c.rx_unmatched += 1,
                },
                Kind::Udp => self.c.answered += 1,
                Kind::Syn | Kind::Ns | Kind::Http | Kind::Dnstcp => self.c.rx_other += 1,
            },
            Reply::Tcp { dport, .. } if !self.cfg.src_ports.contains(dport) => self.c.rx_other += 1,
            Reply::Tcp {
                to,
                dport,
                syn: true,
                ack: true,
                rst: false,
                ack_number,
            } if kind == Kind::Syn => {
                let matched = self
                    .flow_of(to, dport)
                    .is_some_and(|f| self.cfg.syns.take(f, ack_number));
                if matched {
                    self.c.answered += 1;
                    if let Some(ns) = syn_rtt_ns(ack_number, now_ns) {
                        self.rtt(ns);
                    }
                } else {
                    self.c.rx_unmatched += 1;
                }
                // Refuse it either way, as the kernel would: the server
                // frees the half-open connection.
                if self.cfg.reset_synacks {
                    return Action::Reset;
                }
            }
            Reply::Tcp { rst: true, .. } => self.c.rst_received += 1,
            Reply::Tcp { .. } | Reply::OtherIp => self.c.rx_other += 1,
            Reply::NotIp => {
                self.c.rx_not_ip += 1;
                let ours = self.cfg.src_ips;
                if neigh::is_request_for(frame, |a| ours.contains(a)) {
                    return Action::Neighbor;
                }
            }
            Reply::Invalid(_) => self.c.rx_invalid += 1,
        }
        Action::Release
    }
}

impl<R: Rings> Generator for Gen<R> {
    fn stop_sending(&mut self) {
        Gen::stop_sending(self);
    }
    fn step(&mut self, now: Instant) -> Step {
        Gen::step(self, now)
    }
    fn wait(&mut self, ms: i32) {
        let _ = self.port.wait(ms);
    }
}

/// Fields of a thread's `k`-th packet, sent at `ts_ns`: flows are dealt
/// round-robin over the threads (thread t takes flows t, t+T, ...), DNS ids
/// come from the thread's own slice of the id space.
pub(crate) fn packet_fields(cfg: &GenConfig, k: u64, ts_ns: u64) -> Fields {
    let threads = u64::from(cfg.threads.max(1));
    let flow = k.wrapping_mul(threads).wrapping_add(u64::from(cfg.thread)) % cfg.flows.max(1);
    let ips = cfg.src_ips.len.max(1);
    let span = 65536 / threads;
    let kind = cfg.template.kind();
    Fields {
        src: cfg.src_ips.nth(flow % ips),
        src_port: cfg.src_ports.nth(flow / ips),
        seq: if kind == Kind::Syn {
            u64::from(syn_isn(ts_ns))
        } else {
            k
        },
        ts_ns,
        thread: cfg.thread,
        dns_id: (u64::from(cfg.thread) * span + k % span) as u16,
        flow,
    }
}

/// One queue's generator.
pub struct Gen<R: Rings> {
    port: Port<R>,
    rx: Rx,
    pacer: Pacer,
    frames: Vec<Frame>,
    phase: Phase,
    sent_until: Option<Instant>,
    pool: usize,
}

/// What a generator did, at the end.
pub struct GenReport {
    /// Thread (= queue) index.
    pub thread: u32,
    /// Counters.
    pub counters: GenCounters,
    /// Round trips (ns).
    pub hist: Histogram<u64>,
    /// Seconds from the epoch until sending stopped.
    pub send_secs: f64,
    /// Transmit-pool frames.
    pub pool: usize,
    /// Port counters and frame places.
    pub port: PortStats,
    /// The frame accounting check.
    pub frames: Result<(), LedgerError>,
}

impl<R: Rings> Gen<R> {
    /// A generator on `port`; writes the template into the transmit pool.
    pub fn new(mut port: Port<R>, cfg: GenConfig) -> Gen<R> {
        let pool = match cfg.tx_mode {
            TxMode::Pool => {
                let t = cfg.template.clone();
                port.make_tx_pool(cfg.pool, |f| t.write(f).is_some())
            }
            TxMode::Copy => 0,
        };
        // Burst: a batch, or 10 ms worth of packets at high rates: the
        // thread sleeps in whole milliseconds and may be descheduled for a
        // few; credit beyond the burst would be lost and the rate missed.
        let burst = (cfg.batch as u64).max(cfg.rate / 100);
        Gen {
            port,
            pacer: Pacer::new(cfg.rate, burst, cfg.epoch),
            frames: Vec::with_capacity(cfg.batch),
            phase: Phase::Sending,
            sent_until: None,
            pool,
            rx: Rx {
                cfg,
                c: GenCounters::default(),
                hist: new_histogram(),
            },
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> &GenCounters {
        &self.rx.c
    }

    /// Stop sending now (SIGINT); late replies are still awaited.
    pub fn stop_sending(&mut self) {
        let now = Instant::now();
        if self.rx.cfg.send_until > now {
            self.rx.cfg.send_until = now;
        }
    }

    fn ns_since_epoch(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.rx.cfg.epoch).as_nanos() as u64
    }

    fn budget_left(&self) -> u64 {
        self.rx
            .cfg
            .count
            .map_or(u64::MAX, |c| c.saturating_sub(self.rx.c.sent))
    }

    /// Receive up to [`RX_BATCHES`] batches (fewer when the ring runs dry).
    fn receive(&mut self, now: Instant) -> usize {
        let mut total = 0;
        for _ in 0..RX_BATCHES {
            let n = self.receive_batch(now);
            total += n;
            if n < self.port.config().batch {
                break;
            }
        }
        total
    }

    fn receive_batch(&mut self, now: Instant) -> usize {
        let now_ns = self.ns_since_epoch(now);
        let n = self.port.recv(&mut self.frames);
        for i in 0..n {
            let f = self.frames[i];
            let rx = &mut self.rx;
            let action = self
                .port
                .read(f, |b| rx.handle(b, now_ns))
                .unwrap_or(Action::Release);
            match action {
                Action::Release => self.port.release(f),
                Action::Neighbor => {
                    let (mac, ours) = (self.rx.cfg.our_mac, self.rx.cfg.src_ips);
                    if neigh::reflect_answer(&mut self.port, f, mac, ours) {
                        self.rx.c.neighbor_answered += 1;
                    }
                }
                Action::Reset => {
                    let len = f.len as usize;
                    let mut ok = false;
                    self.port.reflect(f, |b| {
                        let r = rst_for_synack(b, len);
                        ok = r.is_some();
                        r
                    });
                    if ok {
                        self.rx.c.rst_sent += 1;
                    }
                }
            }
        }
        n
    }

    fn send(&mut self, now: Instant) -> u64 {
        let want = self
            .pacer
            .allowed(now)
            .min(self.rx.cfg.batch as u64)
            .min(self.budget_left());
        if want == 0 {
            return 0;
        }
        let ts_ns = self.ns_since_epoch(Instant::now());
        let cfg = &self.rx.cfg;
        let t = &cfg.template;
        let mut n = 0;
        while n < want {
            let k = self.rx.c.sent + n;
            let f = packet_fields(cfg, k, ts_ns);
            let ok = match cfg.tx_mode {
                TxMode::Pool => self.port.send_pooled(|b| t.patch(b, &f)),
                TxMode::Copy => self.port.send_frame(t.len(), |b| {
                    let _ = t.write(b).and_then(|_| t.patch(b, &f));
                }),
            };
            if !ok {
                self.rx.c.tx_blocked += 1;
                break;
            }
            match t.kind() {
                Kind::Dns => cfg.dns.put(f.dns_id, ts_ns),
                Kind::Syn => cfg.syns.put(f.flow, (f.seq as u32).wrapping_add(1)),
                Kind::Udp | Kind::Echo | Kind::Ns | Kind::Http | Kind::Dnstcp => {}
            }
            n += 1;
        }
        self.pacer.consume(n);
        self.rx.c.sent += n;
        n
    }

    fn publish(&self) {
        let l = &self.rx.cfg.live;
        l.sent.store(self.rx.c.sent, Ordering::Relaxed);
        l.received.store(self.rx.c.received, Ordering::Relaxed);
        l.answered.store(self.rx.c.answered, Ordering::Relaxed);
    }

    /// Whether every packet sent was answered (a template that expects
    /// answers can stop draining early then).
    fn all_answered(&self) -> bool {
        self.rx.cfg.template.kind() != Kind::Udp && self.rx.c.answered >= self.rx.c.sent
    }

    /// One round: receive a batch, send a batch (while sending), kick.
    pub fn step(&mut self, now: Instant) -> Step {
        let got = self.receive(now) as u64;
        let mut sent = 0;
        if self.phase == Phase::Sending {
            if now >= self.rx.cfg.send_until || self.budget_left() == 0 {
                self.sent_until = Some(now);
                self.phase = Phase::Draining(now + self.rx.cfg.drain);
            } else {
                sent = self.send(now);
            }
        }
        self.port.flush(|_, len| Some(len));
        self.publish();
        match self.phase {
            Phase::Sending => {
                if got + sent > 0 {
                    Step::Busy
                } else {
                    let to_deadline = self.rx.cfg.send_until.saturating_duration_since(now);
                    match self.pacer.wait_time(now) {
                        d if d.is_zero() => Step::Busy,
                        d => Step::Idle(d.min(to_deadline)),
                    }
                }
            }
            Phase::Draining(until) => {
                if now >= until || self.all_answered() {
                    self.phase = Phase::Done;
                    Step::Done
                } else if got > 0 || self.port.pending_tx() > 0 {
                    Step::Busy
                } else if self.port.in_flight() > 0 {
                    // Frames may still wait on the tx ring: come back soon
                    // to kick again.
                    Step::Idle((until - now).min(Duration::from_millis(1)))
                } else {
                    Step::Idle(until - now)
                }
            }
            Phase::Done => Step::Done,
        }
    }

    /// Finish: check the frame accounting and hand back the report.
    pub fn finish(self) -> GenReport {
        let send_secs = send_secs(self.rx.cfg.epoch, self.sent_until);
        GenReport {
            thread: self.rx.cfg.thread,
            frames: self.port.check(),
            port: self.port.stats(),
            pool: self.pool,
            send_secs,
            hist: self.rx.hist,
            counters: self.rx.c,
        }
    }
}
