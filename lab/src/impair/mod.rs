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
//! * **delay**: released `delay ± jitter` (uniform) after it arrived, but never before the
//!   frame in front of it: jitter alone does not reorder (as a real path's queue would not);
//! * **duplicate**: with probability `duplicate`, a copy is released right after it;
//! * **reorder**: with probability `reorder`, it is held back when due and released right after
//!   the next frame of its direction (or [`REORDER_HOLD`] later if none comes): a one-frame swap.

pub mod forward;

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use runtime::duration::DurationError;

/// Longest a reordered frame waits for a frame to overtake it.
pub const REORDER_HOLD: Duration = Duration::from_millis(10);
/// Frames held per direction at most; more are dropped (counted as `queue_full`).
pub const MAX_QUEUED: usize = 1 << 16;

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
        }
    }

    /// Whether anything is impaired at all.
    pub fn is_active(&self) -> bool {
        self.loss > 0.0
            || self.reorder > 0.0
            || self.duplicate > 0.0
            || !self.delay.is_zero()
            || !self.jitter.is_zero()
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
        Ok(())
    }

    /// The command-line arguments that give this spec (`--loss 1% ...`).
    pub fn to_args(&self) -> Vec<String> {
        vec![
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
        ]
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
        )
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
        let mut at = now + delay;
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
