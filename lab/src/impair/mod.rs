//! A lossy, slow, reordering link: the forwarder of an impaired sandbox.
//!
//! This kernel has no netem, so an impaired sandbox puts a middle namespace between the client
//! and the server and runs `xdpstack sandbox impair` there: two AF_PACKET sockets, one on each
//! veth towards an end, and every frame from one side is handed to the other after it went
//! through an [`Impairer`] for its direction. The impairer is pure (time is passed in, the
//! random stream is seeded), so a run is reproducible given the same arrival order and the
//! logic is tested without root.
//!
//! Per frame and direction, in this order:
//! * **loss**: dropped with probability `loss`;
//! * **bottleneck** (with `rate`): the frame joins a FIFO drained at `rate` bits/s (a token
//!   bucket whose burst is one frame: each frame leaves when the link has finished sending the
//!   ones before it); a frame that would find more than `queue` (time or bytes) ahead of it is
//!   dropped (tail drop). The time it waits and serializes is added before the delay, so
//!   congestion is real: a sender that overruns the rate sees the queue grow, then loss.
//!   With `ecn_mark` (`--ecn-mark 5ms`), an ECN-capable IP packet (ECT(0) or ECT(1), RFC 3168)
//!   that finds more than that much sending time queued ahead of it is marked CE instead
//!   (a step marking, as a RED or CoDel queue's simplest form; the tail drop still applies
//!   when the queue is full);
//! * **delay**: released `delay ± jitter` (uniform) after it arrived, but never before the
//!   frame in front of it: jitter alone does not reorder (as a real path's queue would not);
//! * **duplicate**: with probability `duplicate`, a copy is released right after it;
//! * **reorder**: with probability `reorder`, it is held back when due and released right after
//!   the next frame of its direction (or [`REORDER_HOLD`] later if none comes): a one-frame swap.

pub mod forward;
pub mod mtu;

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use runtime::duration::DurationError;

/// Longest a reordered frame waits for a frame to overtake it.
pub const REORDER_HOLD: Duration = Duration::from_millis(10);
/// Frames held per direction at most; more are dropped (counted as `queue_full`).
pub const MAX_QUEUED: usize = 1 << 16;

/// Queue of the bottleneck used when a rate is given without `--queue`.
pub const DEFAULT_QUEUE: QueueLimit = QueueLimit::Time(Duration::from_millis(100));

/// How much the bottleneck's queue holds before it drops at the tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueLimit {
    /// At most this much sending time queued (at the rate) ahead of a new frame.
    Time(Duration),
    /// At most this many bytes queued, the new frame included.
    Bytes(u64),
}

impl fmt::Display for QueueLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueLimit::Time(d) => write!(f, "{}us", d.as_micros()),
            QueueLimit::Bytes(b) => write!(f, "{b}B"),
        }
    }
}

/// How a link is impaired (the same each way).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImpairSpec {
    /// Probability that a frame is dropped, 0..=1.
    pub loss: f64,
    /// Mean one-way delay.
    pub delay: Duration,
    /// Uniform jitter around `delay` (at most `delay`).
    pub jitter: Duration,
    /// Probability that a frame is overtaken by the next one, 0..=1.
    pub reorder: f64,
    /// Probability that a frame is sent twice, 0..=1.
    pub duplicate: f64,
    /// Seed of the random streams.
    pub seed: u64,
    /// Bottleneck rate in bits per second each way; 0: none.
    pub rate_bps: u64,
    /// The bottleneck's queue (used only with a rate).
    pub queue: QueueLimit,
    /// Mark ECN-capable packets CE when more than this much sending time is
    /// queued ahead of them (used only with a rate); `None`: never.
    pub ecn_mark: Option<Duration>,
    /// The largest IP packet forwarded towards the client; 0: no limit. A larger one is
    /// dropped and answered with an ICMP error (see [`mtu`]).
    pub mtu: u16,
}

impl Default for ImpairSpec {
    fn default() -> Self {
        ImpairSpec {
            loss: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: 0.0,
            duplicate: 0.0,
            seed: 1,
            rate_bps: 0,
            queue: DEFAULT_QUEUE,
            ecn_mark: None,
            mtu: 0,
        }
    }
}

impl ImpairSpec {
    /// The path of issue 11's target, each way: 1% loss, 20 ms ± 5 ms,
    /// 0.5% reordering, 0.1% duplication.
    pub fn lossy_wan(seed: u64) -> ImpairSpec {
        ImpairSpec {
            loss: 0.01,
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            reorder: 0.005,
            duplicate: 0.001,
            seed,
            ..ImpairSpec::default()
        }
    }

    /// Whether anything is impaired at all.
    pub fn is_active(&self) -> bool {
        self.loss > 0.0
            || self.reorder > 0.0
            || self.duplicate > 0.0
            || !self.delay.is_zero()
            || !self.jitter.is_zero()
            || self.rate_bps > 0
            || self.mtu > 0
    }

    /// Checks ranges: probabilities in 0..=1, jitter at most the delay, delay at most 10 s.
    pub fn validate(&self) -> Result<(), ImpairError> {
        for (name, p) in [
            ("loss", self.loss),
            ("reorder", self.reorder),
            ("duplicate", self.duplicate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(ImpairError::Rate { name, value: p });
            }
        }
        if self.jitter > self.delay {
            return Err(ImpairError::JitterPastDelay {
                jitter: self.jitter,
                delay: self.delay,
            });
        }
        if self.delay > Duration::from_secs(10) {
            return Err(ImpairError::DelayTooLong(self.delay));
        }
        if self.rate_bps > 0 && self.rate_bps < MIN_RATE_BPS {
            return Err(ImpairError::RateTooLow(self.rate_bps));
        }
        if self.mtu > 0 && self.mtu < mtu::MIN_MTU {
            return Err(ImpairError::MtuTooSmall(self.mtu));
        }
        if let QueueLimit::Time(d) = self.queue {
            if d > Duration::from_secs(10) {
                return Err(ImpairError::QueueTooLong(d));
            }
        }
        if let Some(d) = self.ecn_mark {
            if d > Duration::from_secs(10) {
                return Err(ImpairError::QueueTooLong(d));
            }
        }
        Ok(())
    }

    /// The command-line arguments that give this spec (`--loss 1% ...`).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--loss".into(),
            format!("{}%", self.loss * 100.0),
            "--delay".into(),
            format!("{}us", self.delay.as_micros()),
            "--jitter".into(),
            format!("{}us", self.jitter.as_micros()),
            "--reorder".into(),
            format!("{}%", self.reorder * 100.0),
            "--duplicate".into(),
            format!("{}%", self.duplicate * 100.0),
            "--seed".into(),
            self.seed.to_string(),
        ];
        if self.mtu > 0 {
            args.extend(["--mtu".into(), self.mtu.to_string()]);
        }
        if self.rate_bps > 0 {
            args.extend([
                "--rate".into(),
                format!("{}bit", self.rate_bps),
                "--queue".into(),
                self.queue.to_string(),
            ]);
            if let Some(d) = self.ecn_mark {
                args.extend(["--ecn-mark".into(), format!("{}us", d.as_micros())]);
            }
        }
        args
    }
}

impl fmt::Display for ImpairSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loss {}%, delay {:?} ± {:?}, reorder {}%, duplicate {}%, seed {}",
            self.loss * 100.0,
            self.delay,
            self.jitter,
            self.reorder * 100.0,
            self.duplicate * 100.0,
            self.seed
        )?;
        if self.rate_bps > 0 {
            write!(
                f,
                ", bottleneck {} Mbit/s with a queue of {}",
                self.rate_bps as f64 / 1e6,
                match self.queue {
                    QueueLimit::Time(d) => format!("{d:?}"),
                    QueueLimit::Bytes(b) => format!("{b} bytes"),
                }
            )?;
            if let Some(d) = self.ecn_mark {
                write!(f, ", ECN-capable packets marked CE past {d:?} queued")?;
            }
        }
        if self.mtu > 0 {
            write!(f, ", MTU {} towards the client", self.mtu)?;
        }
        Ok(())
    }
}

/// `--loss/--delay/--jitter/--reorder/--duplicate/--seed`, as `sandbox up` and the forwarder
/// take them.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ImpairArgs {
    /// Drop this share of the frames each way: `1%` or `0.01`.
    #[arg(long, value_parser = parse_rate)]
    pub loss: Option<f64>,
    /// One-way delay each way: `20ms`.
    #[arg(long, value_parser = parse_duration)]
    pub delay: Option<Duration>,
    /// Uniform jitter around the delay (does not reorder by itself): `5ms`.
    #[arg(long, value_parser = parse_duration)]
    pub jitter: Option<Duration>,
    /// Let this share of the frames be overtaken by the next one: `0.5%`.
    #[arg(long, value_parser = parse_rate)]
    pub reorder: Option<f64>,
    /// Send this share of the frames twice: `0.1%`.
    #[arg(long, value_parser = parse_rate)]
    pub duplicate: Option<f64>,
    /// Seed of the impairment's random streams (same seed and traffic, same run).
    #[arg(long)]
    pub seed: Option<u64>,
    /// A bottleneck each way at this rate: `100mbit`, `1gbit`, `500kbit`
    /// (bits per second; a bare number is bit/s).
    #[arg(long, value_parser = parse_bitrate)]
    pub rate: Option<u64>,
    /// The bottleneck's queue, tail drop past it: a time at the rate
    /// (`100ms`, the default) or a size (`150KB`, `64KiB`, `100000B`).
    #[arg(long, value_parser = parse_queue, requires = "rate")]
    pub queue: Option<QueueLimit>,
    /// Mark ECN-capable packets (ECT) Congestion Experienced instead of
    /// letting them queue past this much sending time (`5ms`); off by
    /// default. Tail drop still applies when the queue is full.
    #[arg(long, value_parser = parse_duration, requires = "rate")]
    pub ecn_mark: Option<Duration>,
    /// The largest IP packet forwarded towards the client (576 at least): a larger one (IPv4
    /// with DF, any IPv6) is dropped and answered with an ICMP "fragmentation needed" /
    /// ICMPv6 "packet too big" from the forwarder (path MTU discovery, RFC 1191 and 8201).
    #[arg(long, value_name = "BYTES")]
    pub mtu: Option<u16>,
}

impl ImpairArgs {
    /// The spec these arguments give (zero for what is not given).
    pub fn spec(&self) -> ImpairSpec {
        let d = ImpairSpec::default();
        ImpairSpec {
            loss: self.loss.unwrap_or(d.loss),
            delay: self.delay.unwrap_or(d.delay),
            jitter: self.jitter.unwrap_or(d.jitter),
            reorder: self.reorder.unwrap_or(d.reorder),
            duplicate: self.duplicate.unwrap_or(d.duplicate),
            seed: self.seed.unwrap_or(d.seed),
            rate_bps: self.rate.unwrap_or(d.rate_bps),
            queue: self.queue.unwrap_or(d.queue),
            ecn_mark: self.ecn_mark.or(d.ecn_mark),
            mtu: self.mtu.unwrap_or(d.mtu),
        }
    }
}

/// Why an impairment was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImpairError {
    /// A probability out of range.
    #[error("{name} {value} is not between 0% and 100%")]
    Rate {
        /// loss, reorder or duplicate.
        name: &'static str,
        /// The value.
        value: f64,
    },
    /// More jitter than delay.
    #[error("jitter {jitter:?} exceeds the delay {delay:?}")]
    JitterPastDelay {
        /// The jitter.
        jitter: Duration,
        /// The delay.
        delay: Duration,
    },
    /// A delay past 10 s.
    #[error("delay {0:?} exceeds 10 s")]
    DelayTooLong(Duration),
    /// Not a rate.
    #[error("`{0}` is not a rate (e.g. 1% or 0.01)")]
    NotRate(String),
    /// A rate out of range.
    #[error("`{0}` is not between 0% and 100%")]
    RateRange(String),
    /// Not a bit rate.
    #[error("`{0}` is not a bit rate (e.g. 100mbit, 1gbit, 500kbit)")]
    NotBitrate(String),
    /// A bottleneck slower than [`MIN_RATE_BPS`].
    #[error("bottleneck rate {0} bit/s is below 8 kbit/s")]
    RateTooLow(u64),
    /// Not a queue size.
    #[error("`{0}` is not a queue limit (e.g. 100ms, 150KB, 64KiB)")]
    NotQueue(String),
    /// A queue longer than 10 s.
    #[error("queue {0:?} exceeds 10 s")]
    QueueTooLong(Duration),
    /// An MTU below [`mtu::MIN_MTU`].
    #[error("MTU {0} is below 576")]
    MtuTooSmall(u16),
}

/// Slowest bottleneck accepted: 8 kbit/s (a full-size frame then takes 1.5 s).
pub const MIN_RATE_BPS: u64 = 8_000;

/// Splits `100mbit` into (100.0, "mbit").
fn number_unit(s: &str) -> Option<(f64, String)> {
    let s = s.trim();
    let at = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let v: f64 = s[..at].parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v, s[at..].trim().to_ascii_lowercase()))
}

/// Parses a bit rate: `100mbit`, `1gbit`, `500kbit`, `2.5mbit`, `100mbps`
/// (megabits too, as tc reads `mbit`), or a bare number of bit/s.
pub fn parse_bitrate(s: &str) -> Result<u64, ImpairError> {
    let bad = || ImpairError::NotBitrate(s.to_string());
    let (v, unit) = number_unit(s).ok_or_else(bad)?;
    let scale = match unit.as_str() {
        "" | "bit" | "bps" => 1.0,
        "k" | "kbit" | "kbps" => 1e3,
        "m" | "mbit" | "mbps" => 1e6,
        "g" | "gbit" | "gbps" => 1e9,
        _ => return Err(bad()),
    };
    let bps = v * scale;
    if !(1.0..=1e12).contains(&bps) {
        return Err(bad());
    }
    Ok(bps.round() as u64)
}

/// Parses a queue limit: a duration (`100ms`, `1s`, `500us`) or a size
/// (`150000B`, `150KB`, `64KiB`, `1MB`, `1MiB`).
pub fn parse_queue(s: &str) -> Result<QueueLimit, ImpairError> {
    let bad = || ImpairError::NotQueue(s.to_string());
    let (v, unit) = number_unit(s).ok_or_else(bad)?;
    let bytes = match unit.as_str() {
        "b" => Some(1.0),
        "kb" => Some(1e3),
        "kib" => Some(1024.0),
        "mb" => Some(1e6),
        "mib" => Some(1024.0 * 1024.0),
        _ => None,
    };
    if let Some(scale) = bytes {
        let b = v * scale;
        if !(1.0..=1e10).contains(&b) {
            return Err(bad());
        }
        return Ok(QueueLimit::Bytes(b.round() as u64));
    }
    let d = runtime::duration::parse_within(s, Duration::ZERO, Duration::from_secs(10))
        .map_err(|_| bad())?;
    Ok(QueueLimit::Time(d))
}

/// Parses a probability: `1%`, `0.5%` or a fraction `0.01`.
pub fn parse_rate(s: &str) -> Result<f64, ImpairError> {
    let s = s.trim();
    let (num, scale) = match s.strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (s, 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| ImpairError::NotRate(s.to_string()))?;
    let v = v / scale;
    if !(0.0..=1.0).contains(&v) {
        return Err(ImpairError::RateRange(s.to_string()));
    }
    Ok(v)
}

/// Parses a delay or jitter in the flags' one duration syntax (`20ms`,
/// `500us`, `1.5s`; a bare number is seconds), at most an hour.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    runtime::duration::parse_within(s, Duration::ZERO, Duration::from_secs(3600))
}

/// SplitMix64: a small seeded generator (deterministic, good enough for coin flips).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }
}

/// What happened to the frames of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ImpairCounters {
    /// Frames that arrived.
    pub received: u64,
    /// Frames handed on (duplicates included).
    pub forwarded: u64,
    /// Frames dropped on purpose (loss).
    pub dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Frames held back to be overtaken.
    pub reordered: u64,
    /// Frames dropped because [`MAX_QUEUED`] were held.
    pub queue_full: u64,
    /// Frames that waited in the bottleneck's queue behind others.
    pub queued: u64,
    /// Frames dropped at the tail of the bottleneck's full queue.
    pub queue_dropped: u64,
    /// Most bytes the bottleneck held at once (the frame being sent included).
    pub queue_max_bytes: u64,
    /// Longest a frame waited in the bottleneck's queue, microseconds.
    pub queue_max_us: u64,
    /// ECN-capable packets marked Congestion Experienced (`ecn_mark`).
    pub ce_marked: u64,
}

/// The bottleneck of one direction: a FIFO drained at a fixed rate, bounded.
#[derive(Debug)]
struct Bottleneck {
    rate_bps: u64,
    limit: QueueLimit,
    /// When the link has sent everything it holds.
    free_at: Option<Instant>,
    /// Frames in the bottleneck (waiting or being sent): when each has left, and its size.
    held: VecDeque<(Instant, u64)>,
    /// Bytes of `held`.
    bytes: u64,
}

impl Bottleneck {
    fn new(rate_bps: u64, limit: QueueLimit) -> Self {
        Bottleneck {
            rate_bps,
            limit,
            free_at: None,
            held: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Time to send `len` bytes at the rate.
    fn serialize(&self, len: u64) -> Duration {
        let nanos = u128::from(len) * 8 * 1_000_000_000 / u128::from(self.rate_bps.max(1));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// A frame of `len` bytes arrives at `now`: when it has left the bottleneck and how long
    /// it waits in the queue, or `None` if the queue is full (tail drop). Counts into `c`.
    fn admit(
        &mut self,
        now: Instant,
        len: u64,
        c: &mut ImpairCounters,
    ) -> Option<(Instant, Duration)> {
        while let Some(&(left, n)) = self.held.front() {
            if left > now {
                break;
            }
            self.held.pop_front();
            self.bytes -= n;
        }
        let start = self.free_at.map_or(now, |f| f.max(now));
        let wait = start - now;
        let full = match self.limit {
            QueueLimit::Time(limit) => wait > limit,
            QueueLimit::Bytes(limit) => self.bytes + len > limit,
        };
        if full {
            c.queue_dropped += 1;
            return None;
        }
        if !wait.is_zero() {
            c.queued += 1;
        }
        let left = start + self.serialize(len);
        self.free_at = Some(left);
        self.held.push_back((left, len));
        self.bytes += len;
        c.queue_max_bytes = c.queue_max_bytes.max(self.bytes);
        c.queue_max_us = c
            .queue_max_us
            .max(u64::try_from(wait.as_micros()).unwrap_or(u64::MAX));
        Some((left, wait))
    }
}

/// The IP header in an Ethernet `frame` (after at most two VLAN tags), and whether it is IPv6.
fn ip_header(frame: &mut [u8]) -> Option<(&mut [u8], bool)> {
    let mut at = 12;
    loop {
        let ty = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
        at += 2;
        match ty {
            0x8100 | 0x88a8 if at <= 18 => at += 2,
            0x0800 => return Some((frame.get_mut(at..)?, false)),
            0x86dd => return Some((frame.get_mut(at..)?, true)),
            _ => return None,
        }
    }
}

/// Marks the IP packet in an Ethernet `frame` Congestion Experienced if it is ECN-capable
/// (ECT(0) or ECT(1), RFC 3168 §5); IPv4's header checksum is updated. Returns whether it
/// marked. Anything else (not IP, Not-ECT, CE already, a short or malformed header) is left as
/// it is.
pub fn mark_ce(frame: &mut [u8]) -> bool {
    let Some((ip, v6)) = ip_header(frame) else {
        return false;
    };
    if v6 {
        // Version (4 bits), traffic class (8), flow label: ECN is bits 4-5 of byte 1.
        if ip.len() < 40 || ip[0] >> 4 != 6 {
            return false;
        }
        let ecn = (ip[1] >> 4) & 0b11;
        if ecn == 0b00 || ecn == 0b11 {
            return false;
        }
        ip[1] |= 0b11 << 4;
        return true;
    }
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return false;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ihl < 20 || ip.len() < ihl {
        return false;
    }
    let ecn = ip[1] & 0b11;
    if ecn == 0b00 || ecn == 0b11 {
        return false;
    }
    ip[1] |= 0b11;
    ip[10] = 0;
    ip[11] = 0;
    let csum = mtu::checksum(&[&ip[..ihl]]);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    true
}

struct Queued {
    at: Instant,
    frame: Vec<u8>,
    reorder: bool,
}

/// The impairment of one direction: frames in with their arrival time, frames out when due.
pub struct Impairer {
    spec: ImpairSpec,
    rng: SplitMix64,
    queue: VecDeque<Queued>,
    /// Release time of the last frame queued: later frames are never released before it.
    floor: Option<Instant>,
    /// A reordered frame waiting for the next one, and when it goes anyway.
    held: Option<(Instant, Vec<u8>)>,
    /// Frames ready to go out now, in order.
    out: VecDeque<Vec<u8>>,
    /// The rate and its queue, if the spec has a rate.
    bottleneck: Option<Bottleneck>,
    counters: ImpairCounters,
}

impl Impairer {
    /// The impairment of one direction; `stream` separates the random streams of the two
    /// directions that share a seed.
    pub fn new(spec: ImpairSpec, stream: u64) -> Self {
        Impairer {
            spec,
            rng: SplitMix64::new(spec.seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03)),
            queue: VecDeque::new(),
            floor: None,
            held: None,
            out: VecDeque::new(),
            bottleneck: (spec.rate_bps > 0).then(|| Bottleneck::new(spec.rate_bps, spec.queue)),
            counters: ImpairCounters::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> ImpairCounters {
        self.counters
    }

    /// Frames held (queued, held back or ready).
    pub fn len(&self) -> usize {
        self.queue.len() + self.out.len() + usize::from(self.held.is_some())
    }

    /// Whether no frame is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A frame arrived at `now`.
    pub fn push(&mut self, now: Instant, frame: &[u8]) {
        self.counters.received += 1;
        if self.rng.chance(self.spec.loss) {
            self.counters.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.spec.duplicate) {
            2
        } else {
            1
        };
        let reorder = self.rng.chance(self.spec.reorder);
        let jitter = self.spec.jitter.as_secs_f64();
        let offset = (self.rng.next_f64() * 2.0 - 1.0) * jitter;
        let delay = Duration::from_secs_f64((self.spec.delay.as_secs_f64() + offset).max(0.0));
        // Past the bottleneck (if any) first; the propagation delay counts from there.
        let (sent, wait) = match &mut self.bottleneck {
            Some(b) => match b.admit(now, frame.len() as u64, &mut self.counters) {
                Some(admitted) => admitted,
                None => return,
            },
            None => (now, Duration::ZERO),
        };
        let mut frame = std::borrow::Cow::Borrowed(frame);
        if self.bottleneck.is_some() && self.spec.ecn_mark.is_some_and(|m| wait > m) {
            let mut owned = frame.into_owned();
            if mark_ce(&mut owned) {
                self.counters.ce_marked += 1;
            }
            frame = std::borrow::Cow::Owned(owned);
        }
        let mut at = sent + delay;
        if let Some(floor) = self.floor {
            at = at.max(floor);
        }
        self.floor = Some(at);
        for copy in 0..copies {
            if self.len() >= MAX_QUEUED {
                self.counters.queue_full += 1;
                continue;
            }
            if copy == 1 {
                self.counters.duplicated += 1;
            }
            self.queue.push_back(Queued {
                at,
                frame: frame.to_vec(),
                reorder: reorder && copy == 0,
            });
        }
    }

    /// The next frame due at `now`, if any.
    pub fn pop(&mut self, now: Instant) -> Option<Vec<u8>> {
        loop {
            if let Some(frame) = self.out.pop_front() {
                self.counters.forwarded += 1;
                return Some(frame);
            }
            if let Some((deadline, _)) = &self.held {
                if *deadline <= now {
                    let (_, frame) = self.held.take()?;
                    self.out.push_back(frame);
                    continue;
                }
            }
            match self.queue.front() {
                Some(q) if q.at <= now => {}
                _ => return None,
            }
            let q = self.queue.pop_front()?;
            if q.reorder && self.held.is_none() {
                self.counters.reordered += 1;
                self.held = Some((q.at + REORDER_HOLD, q.frame));
                continue;
            }
            self.out.push_back(q.frame);
            if let Some((_, held)) = self.held.take() {
                self.out.push_back(held);
            }
        }
    }

    /// When the next frame is due (`None`: nothing held); `now` if one is ready.
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        if !self.out.is_empty() {
            return Some(now);
        }
        let queued = self.queue.front().map(|q| q.at);
        let held = self.held.as_ref().map(|(at, _)| *at);
        match (queued, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(i: u32) -> Vec<u8> {
        i.to_be_bytes().to_vec()
    }

    fn id(f: &[u8]) -> u32 {
        u32::from_be_bytes(f.try_into().expect("4 bytes"))
    }

    /// Pushes `n` frames 100 µs apart and drains everything; returns (release offset, id).
    fn run(spec: ImpairSpec, n: u32) -> (Vec<(Duration, u32)>, ImpairCounters) {
        let t0 = Instant::now();
        let mut imp = Impairer::new(spec, 0);
        let mut out = Vec::new();
        let step = Duration::from_micros(100);
        let mut now = t0;
        for i in 0..n {
            now = t0 + step * i;
            while let Some(f) = imp.pop(now) {
                out.push((now - t0, id(&f)));
            }
            imp.push(now, &frame(i));
        }
        let end = now + Duration::from_secs(11);
        while now < end {
            now += step;
            while let Some(f) = imp.pop(now) {
                out.push((now - t0, id(&f)));
            }
        }
        assert!(imp.is_empty());
        assert_eq!(imp.next_due(now), None);
        (out, imp.counters())
    }

    #[test]
    fn rates_and_durations_parse() {
        assert_eq!(parse_rate("1%"), Ok(0.01));
        assert_eq!(parse_rate("0.5%"), Ok(0.005));
        assert_eq!(parse_rate("0.25"), Ok(0.25));
        assert!(parse_rate("101%").is_err());
        assert!(parse_rate("-1%").is_err());
        assert!(parse_rate("x").is_err());
        assert_eq!(parse_duration("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("20 parsecs").is_err());
        let spec = ImpairSpec::lossy_wan(7);
        assert!(spec.validate().is_ok());
        // The arguments it prints parse back to the same spec.
        let args = spec.to_args();
        assert_eq!(parse_rate(&args[1]), Ok(0.01));
        assert_eq!(parse_duration(&args[3]), Ok(spec.delay));
        assert_eq!(parse_duration(&args[5]), Ok(spec.jitter));
        let bad = ImpairSpec {
            jitter: Duration::from_millis(30),
            ..spec
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_perfect_link_forwards_everything_in_order_at_once() {
        let (out, c) = run(ImpairSpec::default(), 1000);
        assert_eq!(out.len(), 1000);
        assert!(out.iter().enumerate().all(|(i, (_, f))| *f == i as u32));
        assert!(out.iter().all(|(t, f)| *t
            == Duration::from_micros(100) * *f + Duration::from_micros(100)
            || *t == Duration::from_micros(100) * *f));
        assert_eq!(c.forwarded, 1000);
        assert_eq!(c.dropped + c.duplicated + c.reordered + c.queue_full, 0);
    }

    #[test]
    fn delay_and_jitter_keep_the_order_and_the_bounds() {
        let spec = ImpairSpec {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            ..ImpairSpec::default()
        };
        let (out, c) = run(spec, 5000);
        assert_eq!(c.forwarded, 5000);
        let mut last = 0;
        for (t, f) in &out {
            assert!(*f >= last, "jitter alone reordered {f} after {last}");
            last = *f;
            let sent = Duration::from_micros(100) * *f;
            let d = *t - sent;
            // 15..25 ms, plus the 100 µs step of the test clock.
            assert!(
                d >= Duration::from_millis(15) && d <= Duration::from_micros(25_100),
                "frame {f} delayed {d:?}"
            );
        }
    }

    #[test]
    fn loss_duplication_and_reordering_happen_at_their_rates() {
        let spec = ImpairSpec::lossy_wan(42);
        let n = 200_000;
        let (out, c) = run(spec, n);
        assert_eq!(c.received, u64::from(n));
        assert_eq!(c.forwarded, out.len() as u64);
        assert_eq!(c.forwarded, c.received - c.dropped + c.duplicated);
        let near = |got: u64, p: f64| {
            let want = p * f64::from(n);
            (got as f64 - want).abs() < 5.0 * want.sqrt() + 5.0
        };
        assert!(near(c.dropped, 0.01), "{c:?}");
        assert!(near(c.duplicated, 0.001 * 0.99), "{c:?}");
        assert!(near(c.reordered, 0.005 * 0.99), "{c:?}");
        // Every reordered frame is overtaken by exactly the next one: the displacement is one.
        let ids: Vec<u32> = out.iter().map(|(_, f)| *f).collect();
        let inversions = ids.windows(2).filter(|w| w[1] < w[0]).count() as u64;
        assert!(inversions <= c.reordered, "{inversions} > {c:?}");
        assert!(inversions >= c.reordered * 9 / 10, "{inversions} vs {c:?}");
        for w in ids.windows(3) {
            assert!(w[2] + 1 >= w[0], "displaced by more than one: {w:?}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_run_and_another_seed_another() {
        let spec = ImpairSpec {
            loss: 0.05,
            delay: Duration::from_millis(2),
            jitter: Duration::from_millis(1),
            reorder: 0.05,
            duplicate: 0.05,
            seed: 9,
            ..ImpairSpec::default()
        };
        let a = run(spec, 20_000);
        let b = run(spec, 20_000);
        assert_eq!(a, b);
        let c = run(ImpairSpec { seed: 10, ..spec }, 20_000);
        assert_ne!(a.0, c.0);
        // The two directions of one link draw from different streams.
        let mut x = Impairer::new(spec, 0);
        let mut y = Impairer::new(spec, 1);
        let now = Instant::now();
        for i in 0..1000 {
            x.push(now, &frame(i));
            y.push(now, &frame(i));
        }
        assert_ne!(x.counters(), y.counters());
    }

    #[test]
    fn the_queue_is_bounded() {
        let spec = ImpairSpec {
            delay: Duration::from_secs(1),
            ..ImpairSpec::default()
        };
        let mut imp = Impairer::new(spec, 0);
        let now = Instant::now();
        for i in 0..(MAX_QUEUED as u32 + 10) {
            imp.push(now, &frame(i));
        }
        assert_eq!(imp.len(), MAX_QUEUED);
        assert_eq!(imp.counters().queue_full, 10);
        assert!(imp.pop(now).is_none());
        assert_eq!(imp.next_due(now), Some(now + Duration::from_secs(1)));
    }
}

#[cfg(test)]
mod bottleneck_tests {
    use super::*;

    const FRAME: usize = 1500;
    /// 12 Mbit/s: a 1500-byte frame takes exactly 1 ms.
    const RATE: u64 = 12_000_000;

    fn spec(queue: QueueLimit) -> ImpairSpec {
        ImpairSpec {
            rate_bps: RATE,
            queue,
            ..ImpairSpec::default()
        }
    }

    fn frame(i: u32) -> Vec<u8> {
        let mut f = vec![0u8; FRAME];
        f[..4].copy_from_slice(&i.to_be_bytes());
        f
    }

    fn id(f: &[u8]) -> u32 {
        u32::from_be_bytes(f[..4].try_into().expect("4 bytes"))
    }

    /// Drains `imp` in 10 µs steps from `from` for `span`; returns (release offset from
    /// `t0`, id).
    fn drain(
        imp: &mut Impairer,
        t0: Instant,
        from: Instant,
        span: Duration,
    ) -> Vec<(Duration, u32)> {
        let mut out = Vec::new();
        let mut now = from;
        while now <= from + span {
            while let Some(f) = imp.pop(now) {
                out.push((now - t0, id(&f)));
            }
            now += Duration::from_micros(10);
        }
        out
    }

    #[test]
    fn bit_rates_and_queue_limits_parse() {
        assert_eq!(parse_bitrate("100mbit"), Ok(100_000_000));
        assert_eq!(parse_bitrate("1gbit"), Ok(1_000_000_000));
        assert_eq!(parse_bitrate("2.5Mbit"), Ok(2_500_000));
        assert_eq!(parse_bitrate("500kbit"), Ok(500_000));
        assert_eq!(parse_bitrate("64000"), Ok(64_000));
        assert!(parse_bitrate("fast").is_err());
        assert!(parse_bitrate("10 furlongs").is_err());
        assert!(parse_bitrate("0").is_err());
        assert_eq!(
            parse_queue("100ms"),
            Ok(QueueLimit::Time(Duration::from_millis(100)))
        );
        assert_eq!(parse_queue("150KB"), Ok(QueueLimit::Bytes(150_000)));
        assert_eq!(parse_queue("64KiB"), Ok(QueueLimit::Bytes(65_536)));
        assert_eq!(parse_queue("1MiB"), Ok(QueueLimit::Bytes(1 << 20)));
        assert_eq!(parse_queue("9000B"), Ok(QueueLimit::Bytes(9000)));
        assert!(parse_queue("11s").is_err());
        assert!(parse_queue("lots").is_err());
        let low = ImpairSpec {
            rate_bps: 1000,
            ..ImpairSpec::default()
        };
        assert_eq!(low.validate(), Err(ImpairError::RateTooLow(1000)));
        assert!(spec(DEFAULT_QUEUE).is_active());
    }

    #[test]
    fn the_flags_round_trip_through_the_forwarders_arguments() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            impair: ImpairArgs,
        }
        use clap::Parser as _;
        for queue in [
            QueueLimit::Time(Duration::from_millis(100)),
            QueueLimit::Bytes(150_000),
        ] {
            let want = ImpairSpec {
                rate_bps: 100_000_000,
                queue,
                ecn_mark: Some(Duration::from_millis(5)),
                ..ImpairSpec::lossy_wan(5)
            };
            let mut argv = vec!["x".to_string()];
            argv.extend(want.to_args());
            let got = Cli::try_parse_from(argv).expect("parses").impair.spec();
            assert_eq!(got, want);
        }
        // Without a rate there are no bottleneck arguments; --queue alone is refused.
        assert!(!ImpairSpec::lossy_wan(5)
            .to_args()
            .contains(&"--rate".to_string()));
        assert!(Cli::try_parse_from(["x", "--queue", "100ms"]).is_err());
        assert!(Cli::try_parse_from(["x", "--ecn-mark", "5ms"]).is_err());
        let d = Cli::try_parse_from(["x", "--rate", "100mbit"]).expect("parses");
        assert_eq!(d.impair.spec().queue, DEFAULT_QUEUE);
    }

    #[test]
    fn frames_leave_at_the_rate_and_in_order() {
        // Offered at twice the rate (one frame every 0.5 ms), with room for all of them.
        let mut imp = Impairer::new(spec(QueueLimit::Bytes(1 << 30)), 0);
        let t0 = Instant::now();
        let n = 1000u32;
        let mut out = Vec::new();
        for i in 0..n {
            let now = t0 + Duration::from_micros(500) * i;
            while let Some(f) = imp.pop(now) {
                out.push((now - t0, id(&f)));
            }
            imp.push(now, &frame(i));
        }
        out.extend(drain(
            &mut imp,
            t0,
            t0 + Duration::from_millis(500),
            Duration::from_secs(1),
        ));
        assert_eq!(out.len(), n as usize);
        assert!(out.iter().enumerate().all(|(i, (_, f))| *f == i as u32));
        // Frame i leaves at (i + 1) ms exactly (the test clock steps 10 µs past it at most).
        for (t, f) in &out {
            let due = Duration::from_millis(u64::from(*f) + 1);
            assert!(
                *t >= due && *t <= due + Duration::from_micros(500),
                "{f} at {t:?}"
            );
        }
        let c = imp.counters();
        assert_eq!(c.queue_dropped, 0);
        assert_eq!(c.queued, u64::from(n) - 1);
        // Half the frames were still queued at the end: 500 ms of sending.
        assert!(
            c.queue_max_us >= 499_000 && c.queue_max_us <= 500_000,
            "{c:?}"
        );
    }

    #[test]
    fn a_time_limited_queue_drops_at_the_tail() {
        let mut imp = Impairer::new(spec(QueueLimit::Time(Duration::from_millis(10))), 0);
        let t0 = Instant::now();
        for i in 0..100 {
            imp.push(t0, &frame(i));
        }
        // Waits of 0, 1, ..., 10 ms are allowed: 11 frames.
        let c = imp.counters();
        assert_eq!(c.queue_dropped, 89);
        assert_eq!(c.queued, 10);
        assert_eq!(c.queue_max_us, 10_000);
        assert_eq!(c.queue_max_bytes, 11 * FRAME as u64);
        let out = drain(&mut imp, t0, t0, Duration::from_millis(20));
        let ids: Vec<u32> = out.iter().map(|(_, f)| *f).collect();
        assert_eq!(
            ids,
            (0..11).collect::<Vec<_>>(),
            "the first ones go, the tail is cut"
        );
        // Drained: a new burst is admitted again.
        let later = t0 + Duration::from_millis(30);
        imp.push(later, &frame(200));
        assert_eq!(imp.counters().queue_dropped, 89);
        assert_eq!(imp.next_due(later), Some(later + Duration::from_millis(1)));
    }

    #[test]
    fn a_byte_limited_queue_drops_at_the_tail_and_refills_as_it_drains() {
        let mut imp = Impairer::new(spec(QueueLimit::Bytes(3 * FRAME as u64)), 0);
        let t0 = Instant::now();
        for i in 0..10 {
            imp.push(t0, &frame(i));
        }
        assert_eq!(imp.counters().queue_dropped, 7);
        assert_eq!(imp.counters().queue_max_bytes, 3 * FRAME as u64);
        // After 1 ms the first frame has left: room for exactly one more.
        let t1 = t0 + Duration::from_millis(1);
        imp.push(t1, &frame(10));
        imp.push(t1, &frame(11));
        assert_eq!(imp.counters().queue_dropped, 8);
        let ids: Vec<u32> = drain(&mut imp, t0, t0, Duration::from_millis(10))
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(ids, vec![0, 1, 2, 10]);
    }

    #[test]
    fn the_delay_counts_from_the_end_of_the_bottleneck_and_loss_comes_first() {
        let s = ImpairSpec {
            delay: Duration::from_millis(20),
            ..spec(DEFAULT_QUEUE)
        };
        let mut imp = Impairer::new(s, 0);
        let t0 = Instant::now();
        imp.push(t0, &frame(0));
        imp.push(t0, &frame(1));
        assert_eq!(imp.next_due(t0), Some(t0 + Duration::from_millis(21)));
        let out = drain(&mut imp, t0, t0, Duration::from_millis(30));
        assert_eq!(
            out,
            vec![
                (Duration::from_millis(21), 0),
                (Duration::from_millis(22), 1)
            ]
        );
        // A lost frame takes no time at the bottleneck.
        let lossy = ImpairSpec {
            loss: 1.0,
            ..spec(DEFAULT_QUEUE)
        };
        let mut imp = Impairer::new(lossy, 0);
        for i in 0..100 {
            imp.push(t0, &frame(i));
        }
        let c = imp.counters();
        assert_eq!((c.dropped, c.queued, c.queue_dropped), (100, 0, 0));
    }

    /// An Ethernet frame holding an IPv4 packet (DSCP 46, valid header checksum) with ECN
    /// field `ecn`, `i` at the start of its payload.
    fn ip4_frame(i: u32, ecn: u8) -> Vec<u8> {
        let mut f = vec![0u8; FRAME];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[1] = 0xb8 | ecn;
        ip[2..4].copy_from_slice(&((FRAME - 14) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        ip[20..24].copy_from_slice(&i.to_be_bytes());
        let sum = ip4_sum(&ip[..20]);
        ip[10..12].copy_from_slice(&(!sum).to_be_bytes());
        f
    }

    /// The one's complement sum of a header (0xffff when its checksum is right).
    fn ip4_sum(h: &[u8]) -> u16 {
        !mtu::checksum(&[h])
    }

    #[test]
    fn mark_ce_marks_only_ecn_capable_ip_and_keeps_the_checksum() {
        for ecn in [0b01, 0b10] {
            let mut f = ip4_frame(1, ecn);
            assert!(mark_ce(&mut f));
            assert_eq!(f[15], 0xb8 | 0b11, "DSCP kept, CE set");
            assert_eq!(ip4_sum(&f[14..34]), 0xffff, "checksum");
        }
        for ecn in [0b00, 0b11] {
            let mut f = ip4_frame(1, ecn);
            let before = f.clone();
            assert!(!mark_ce(&mut f));
            assert_eq!(f, before);
        }
        // IPv6 (behind a VLAN tag): the traffic class's low bits.
        let mut f = vec![0u8; 18 + 40];
        f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        f[16..18].copy_from_slice(&0x86ddu16.to_be_bytes());
        // Version 6, traffic class 0xb9 (DSCP 46, ECT(1)), flow label 0xf0000.
        f[18] = 0x6b;
        f[19] = 0x9f;
        assert!(mark_ce(&mut f));
        assert_eq!((f[18], f[19]), (0x6b, 0xbf));
        assert!(!mark_ce(&mut f), "CE already");
        // Not IP, short, or bad headers: untouched, no panic.
        for mut bad in [
            vec![0u8; 10],
            ip4_frame(1, 0b10)[..30].to_vec(),
            {
                let mut f = ip4_frame(1, 0b10);
                f[12] = 0x08;
                f[13] = 0x06;
                f
            },
            {
                let mut f = ip4_frame(1, 0b10);
                // A 60-byte header in a 40-byte packet.
                f[14] = 0x4f;
                f.truncate(14 + 40);
                f
            },
        ] {
            let before = bad.clone();
            assert!(!mark_ce(&mut bad));
            assert_eq!(bad, before);
        }
    }

    #[test]
    fn ecn_capable_frames_are_marked_past_the_threshold_not_dropped() {
        // 12 Mbit/s (1 ms a frame), a 100 ms queue, marking past 5 ms: of a burst of 20 ECT
        // frames, the first 6 (waits 0-5 ms) pass unmarked and the other 14 are marked; a
        // Not-ECT frame behind them is never marked.
        let s = ImpairSpec {
            ecn_mark: Some(Duration::from_millis(5)),
            ..spec(DEFAULT_QUEUE)
        };
        let mut imp = Impairer::new(s, 0);
        let t0 = Instant::now();
        for i in 0..20 {
            imp.push(t0, &ip4_frame(i, 0b10));
        }
        imp.push(t0, &ip4_frame(20, 0b00));
        let c = imp.counters();
        assert_eq!((c.ce_marked, c.queue_dropped, c.dropped), (14, 0, 0));
        let mut marked = Vec::new();
        let mut now = t0;
        while now < t0 + Duration::from_millis(40) {
            while let Some(f) = imp.pop(now) {
                assert_eq!(ip4_sum(&f[14..34]), 0xffff);
                let id = u32::from_be_bytes(f[34..38].try_into().unwrap());
                marked.push((id, f[15] & 0b11));
            }
            now += Duration::from_micros(100);
        }
        let want: Vec<(u32, u8)> = (0..21)
            .map(|i| {
                let ecn = match i {
                    0..=5 => 0b10,
                    20 => 0b00,
                    _ => 0b11,
                };
                (i, ecn)
            })
            .collect();
        assert_eq!(marked, want);
        // Off by default: the same burst is never marked.
        let mut imp = Impairer::new(spec(DEFAULT_QUEUE), 0);
        for i in 0..20 {
            imp.push(t0, &ip4_frame(i, 0b10));
        }
        assert_eq!(imp.counters().ce_marked, 0);
    }
}
