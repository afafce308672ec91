//! A token bucket for fixed-rate sending: tokens accrue at `rate` per second
//! up to `burst`; a sender takes what is there, sends that many packets in
//! one batch and sleeps until the next token is due. Time is passed in, so
//! the pacer is tested without sleeping.

use std::time::{Duration, Instant};

const NS: u128 = 1_000_000_000;

/// A token bucket (`rate` 0: unlimited).
#[derive(Clone, Debug)]
pub struct Pacer {
    rate: u64,
    burst: u64,
    /// Tokens in units of 1e-9 packet (ns x pps), so that integer arithmetic
    /// loses nothing between calls.
    credit: u128,
    last: Instant,
}

impl Pacer {
    /// A bucket of `rate` packets per second holding at most `burst` (at
    /// least 1), empty at `now`.
    pub fn new(rate: u64, burst: u64, now: Instant) -> Pacer {
        Pacer {
            rate,
            burst: burst.max(1),
            credit: 0,
            last: now,
        }
    }

    /// Unlimited rate.
    pub fn unlimited(&self) -> bool {
        self.rate == 0
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_nanos();
        self.last = self.last.max(now);
        let cap = u128::from(self.burst) * NS;
        self.credit = (self.credit + dt.min(cap) * u128::from(self.rate)).min(cap);
    }

    /// Packets that may be sent at `now` (`u64::MAX` when unlimited).
    pub fn allowed(&mut self, now: Instant) -> u64 {
        if self.unlimited() {
            return u64::MAX;
        }
        self.refill(now);
        (self.credit / NS) as u64
    }

    /// Take `n` tokens (after sending `n` packets).
    pub fn consume(&mut self, n: u64) {
        if !self.unlimited() {
            self.credit = self.credit.saturating_sub(u128::from(n) * NS);
        }
    }

    /// How long from `now` until one token is there (zero if it is, or when
    /// unlimited).
    pub fn wait_time(&mut self, now: Instant) -> Duration {
        if self.unlimited() {
            return Duration::ZERO;
        }
        self.refill(now);
        let missing = NS.saturating_sub(self.credit);
        let ns = missing.div_ceil(u128::from(self.rate));
        Duration::from_nanos(ns.min(u128::from(u64::MAX)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stepping time and sending whatever is allowed gives the rate.
    #[test]
    fn keeps_the_rate() {
        for (rate, step_us, burst) in [
            (1000u64, 1000u64, 16u64),
            (20_000, 50, 64),
            (20_000, 1700, 64),
            (333, 7, 1),
        ] {
            let t0 = Instant::now();
            let mut p = Pacer::new(rate, burst, t0);
            let mut sent = 0;
            let mut t = t0;
            let end = t0 + Duration::from_secs(2);
            while t < end {
                t += Duration::from_micros(step_us);
                let n = p.allowed(t);
                p.consume(n);
                sent += n;
            }
            // Tokens accrued over the time actually stepped through.
            let want = (t - t0).as_micros() as u64 * rate / 1_000_000;
            assert!(
                sent <= want && sent + burst + 1 >= want,
                "rate {rate} step {step_us} us: sent {sent}, want {want}"
            );
        }
    }

    #[test]
    fn burst_caps_idle_credit() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1000, 10, t0);
        assert_eq!(p.allowed(t0), 0, "starts empty");
        assert_eq!(p.allowed(t0 + Duration::from_secs(60)), 10);
        p.consume(10);
        assert_eq!(p.allowed(t0 + Duration::from_secs(60)), 0);
        // A clock that goes backwards adds nothing.
        assert_eq!(p.allowed(t0), 0);
    }

    #[test]
    fn wait_time_is_one_token() {
        let t0 = Instant::now();
        let mut p = Pacer::new(1000, 4, t0);
        assert_eq!(p.wait_time(t0), Duration::from_millis(1));
        let t1 = t0 + Duration::from_micros(400);
        assert_eq!(p.wait_time(t1), Duration::from_micros(600));
        assert_eq!(p.wait_time(t0 + Duration::from_millis(1)), Duration::ZERO);
        assert_eq!(p.allowed(t0 + Duration::from_millis(1)), 1);
    }

    #[test]
    fn unlimited() {
        let t0 = Instant::now();
        let mut p = Pacer::new(0, 1, t0);
        assert_eq!(p.allowed(t0), u64::MAX);
        p.consume(1 << 40);
        assert_eq!(p.allowed(t0), u64::MAX);
        assert_eq!(p.wait_time(t0), Duration::ZERO);
    }
}
