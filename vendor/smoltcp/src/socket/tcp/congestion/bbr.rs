//! xdpstack patch 13 (issue 19): BBR congestion control, after Linux's
//! `net/ipv4/tcp_bbr.c` (BBR v1, the kernel's `bbr`).
//!
//! A model of the path instead of a reaction to loss: the bottleneck
//! bandwidth (the highest delivery rate over the last 10 round trips) and
//! the minimum RTT (over 10 s) give the bandwidth-delay product; the sender
//! paces at `pacing_gain · bw` and keeps at most `cwnd_gain · BDP` in
//! flight. Startup doubles the rate each round until the bandwidth stops
//! growing by 25% for three rounds, Drain empties the queue Startup built,
//! ProbeBW cycles the gain through 1.25, 0.75 and six rounds of 1, and
//! ProbeRTT drops to 4 segments for 200 ms when the minimum RTT is 10 s old.
//! Random loss does not shrink the model, which is why BBR keeps its rate
//! on lossy paths where loss-based controllers back off.
//!
//! Delivery-rate samples come from the socket's send log (`sack.rs`, peers
//! that negotiated SACK); the socket paces from `pacing_rate`.

use crate::time::{Duration, Instant};

use super::super::RttEstimator;
use super::super::sack::RateSample;
use super::Controller;

/// 2/ln(2): Startup's gain, doubling the delivery rate each round.
const HIGH_GAIN: u64 = 2885;
/// Drain's gain, the inverse of Startup's.
const DRAIN_GAIN: u64 = 1000 * 1000 / 2885;
/// ProbeBW's congestion window gain.
const CWND_GAIN: u64 = 2000;
/// ProbeBW's pacing gains, a cycle of 8 phases of about one min RTT each.
const CYCLE: [u64; 8] = [1250, 750, 1000, 1000, 1000, 1000, 1000, 1000];
/// Rounds the bandwidth filter covers.
const BW_ROUNDS: usize = 10;
/// How long a minimum RTT stays valid before ProbeRTT.
const MIN_RTT_WIN: Duration = Duration::from_secs(10);
/// How long ProbeRTT holds the window at 4 segments.
const PROBE_RTT_TIME: Duration = Duration::from_millis(200);
/// Rounds without 25% more bandwidth that end Startup.
const FULL_BW_ROUNDS: u8 = 3;
/// Pacing a little below the estimate keeps the queue from building.
const PACING_MARGIN: u64 = 99;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Mode {
    Startup,
    Drain,
    ProbeBw,
    ProbeRtt,
}

#[derive(Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Bbr {
    mss: usize,
    cwnd: usize,
    rwnd: usize,
    mode: Mode,
    /// The highest delivery rate (bytes/s) taken in each of the last
    /// rounds that gave one, with its round; `bw_last`, the round of the
    /// newest taken. As tcp_bbr.c's minmax filter, it ages only when it
    /// takes a sample (xdpstack patch 29: it forgot a round at each round
    /// start, so ten rounds of application-limited samples, which it does
    /// not take below the maximum, emptied it, and the pacing rate fell to
    /// what one such sample showed).
    bw: [(u64, u64); BW_ROUNDS],
    bw_last: u64,
    round: u64,
    next_round_delivered: u64,
    round_start: bool,
    min_rtt_us: u32,
    min_rtt_at: Option<Instant>,
    full_bw: u64,
    full_bw_rounds: u8,
    full_bw_reached: bool,
    cycle: usize,
    cycle_at: Instant,
    probe_rtt_done: Option<Instant>,
    probe_rtt_round_done: bool,
    /// The window before a loss episode or ProbeRTT, restored after.
    prior_cwnd: usize,
    /// Packet conservation for the first round of a recovery.
    conservation_until: Option<u64>,
    in_recovery: bool,
    pacing_rate: u64,
    srtt_us: u32,
    inflight: usize,
    /// xdpstack patch 30: the flight drained while the sender had nothing
    /// to send; the next data starts from idle (tcp_bbr.c's
    /// `idle_restart`): its first sample refreshes an expired minimum RTT
    /// without ProbeRTT.
    idle_restart: bool,
}

impl Bbr {
    pub fn new() -> Bbr {
        Bbr {
            mss: 1460,
            cwnd: 10 * 1460,
            rwnd: 64 * 1024,
            mode: Mode::Startup,
            bw: [(0, 0); BW_ROUNDS],
            bw_last: 0,
            round: 0,
            next_round_delivered: 0,
            round_start: false,
            min_rtt_us: u32::MAX,
            min_rtt_at: None,
            full_bw: 0,
            full_bw_rounds: 0,
            full_bw_reached: false,
            cycle: 0,
            cycle_at: Instant::ZERO,
            probe_rtt_done: None,
            probe_rtt_round_done: false,
            prior_cwnd: 0,
            conservation_until: None,
            in_recovery: false,
            pacing_rate: 0,
            srtt_us: 0,
            inflight: 0,
            idle_restart: false,
        }
    }

    fn max_bw(&self) -> u64 {
        self.bw
            .iter()
            .filter(|&&(round, _)| round + BW_ROUNDS as u64 > self.bw_last)
            .map(|&(_, bw)| bw)
            .max()
            .unwrap_or(0)
    }

    /// Take a delivery-rate sample into the filter, in this round.
    fn take_bw(&mut self, bw: u64) {
        let slot = &mut self.bw[(self.round as usize) % BW_ROUNDS];
        if slot.0 != self.round {
            *slot = (self.round, 0);
        }
        slot.1 = slot.1.max(bw);
        self.bw_last = self.round;
    }

    /// tcp_bbr.c `bbr_save_cwnd`: the window to come back to after a loss
    /// episode or ProbeRTT; entered from one of them, the larger of the two
    /// (xdpstack patch 29: a recovery's end forgot it, so ProbeRTT during a
    /// recovery ended at 4 segments).
    fn save_cwnd(&mut self) {
        if !self.in_recovery && self.mode != Mode::ProbeRtt {
            self.prior_cwnd = self.cwnd;
        } else {
            self.prior_cwnd = self.prior_cwnd.max(self.cwnd);
        }
    }

    fn pacing_gain(&self) -> u64 {
        match self.mode {
            Mode::Startup => HIGH_GAIN,
            Mode::Drain => DRAIN_GAIN,
            Mode::ProbeBw => CYCLE[self.cycle],
            Mode::ProbeRtt => 1000,
        }
    }

    fn cwnd_gain(&self) -> u64 {
        match self.mode {
            Mode::Startup | Mode::Drain => HIGH_GAIN,
            _ => CWND_GAIN,
        }
    }

    /// `gain`/1000 times the bandwidth-delay product, in bytes.
    fn bdp(&self, gain: u64) -> usize {
        let bw = self.max_bw();
        if bw == 0 || self.min_rtt_us == u32::MAX {
            // No model yet: the initial window, as tcp_bbr.c.
            return 10 * self.mss;
        }
        let bdp = bw * u64::from(self.min_rtt_us) / 1_000_000;
        (bdp * gain / 1000) as usize
    }

    /// The window to aim for: the BDP times the gain, plus room for
    /// delayed and stretched ACKs (tcp_bbr.c's quantization budget).
    fn target_cwnd(&self, gain: u64) -> usize {
        self.bdp(gain) + 3 * self.mss
    }

    fn update_pacing(&mut self) {
        let bw = self.max_bw();
        let rate = if bw == 0 {
            // Before a sample: the initial window per smoothed RTT (1 ms
            // when none is known), at Startup's gain.
            let rtt = u64::from(self.srtt_us.max(1000));
            (self.cwnd as u64) * 1_000_000 / rtt * HIGH_GAIN / 1000
        } else {
            bw * self.pacing_gain() / 1000 * PACING_MARGIN / 100
        };
        // Startup never slows the pace down.
        if self.full_bw_reached || rate > self.pacing_rate {
            self.pacing_rate = rate.max(1);
        }
    }

    fn enter_probe_bw(&mut self, now: Instant) {
        self.mode = Mode::ProbeBw;
        // Any phase but the draining one (tcp_bbr.c picks one at random).
        self.cycle = 2 + (self.round as usize % 6);
        self.cycle_at = now;
    }

    fn on_sample(&mut self, now: Instant, rs: &RateSample, delivered: u64) {
        // Round trips: one ends when data sent after its start is
        // delivered.
        self.round_start = false;
        if rs.prior_delivered >= self.next_round_delivered {
            self.next_round_delivered = delivered;
            self.round += 1;
            self.round_start = true;
            if self.conservation_until.is_some_and(|r| self.round > r) {
                self.conservation_until = None;
            }
        }
        let bw = rs.rate();
        if !rs.app_limited || bw >= self.max_bw() {
            self.take_bw(bw);
        }

        // ProbeBW's gain cycle: a phase lasts a min RTT; the probing phase
        // also waits until it put 1.25 BDP in flight, the draining one ends
        // early once the flight is down to a BDP.
        if self.mode == Mode::ProbeBw {
            let elapsed = now - self.cycle_at;
            let full_phase = elapsed.total_micros() > u64::from(self.min_rtt_us);
            let gain = CYCLE[self.cycle];
            let next = match gain {
                1250 => full_phase && self.inflight >= self.bdp(gain),
                750 => full_phase || self.inflight <= self.bdp(1000),
                _ => full_phase,
            };
            if next {
                self.cycle = (self.cycle + 1) % CYCLE.len();
                self.cycle_at = now;
            }
        }

        // Startup ends when the bandwidth stopped growing.
        if self.round_start && !self.full_bw_reached && !rs.app_limited {
            let max = self.max_bw();
            if max >= self.full_bw * 5 / 4 {
                self.full_bw = max;
                self.full_bw_rounds = 0;
            } else {
                self.full_bw_rounds += 1;
                if self.full_bw_rounds >= FULL_BW_ROUNDS {
                    self.full_bw_reached = true;
                }
            }
        }
        if self.mode == Mode::Startup && self.full_bw_reached {
            self.mode = Mode::Drain;
        }
        if self.mode == Mode::Drain && self.inflight <= self.bdp(1000) {
            self.enter_probe_bw(now);
        }

        // The minimum RTT, and ProbeRTT when it is too old.
        let expired = self.min_rtt_at.is_some_and(|t| now > t + MIN_RTT_WIN);
        if rs.rtt_us > 0 && (rs.rtt_us <= self.min_rtt_us || expired || self.min_rtt_at.is_none()) {
            self.min_rtt_us = rs.rtt_us;
            self.min_rtt_at = Some(now);
        }
        // (xdpstack patch 30: not on the first sample after an idle
        // restart, as tcp_bbr.c: a request-response connection refreshes
        // its minimum RTT that way every 10 s instead of holding 4 segments
        // for 200 ms, whose cwnd-limited samples then emptied the bandwidth
        // filter and ended Startup at a fraction of the rate: 73 ms a
        // 10 KiB response at 50 ms instead of 62.)
        if expired && self.mode != Mode::ProbeRtt && !self.idle_restart {
            self.save_cwnd();
            self.mode = Mode::ProbeRtt;
            self.probe_rtt_done = None;
        }
        if self.mode == Mode::ProbeRtt {
            if self.probe_rtt_done.is_none() && self.inflight <= 4 * self.mss {
                self.probe_rtt_done = Some(now + PROBE_RTT_TIME);
                self.probe_rtt_round_done = false;
                self.next_round_delivered = delivered;
            } else if let Some(done) = self.probe_rtt_done {
                if self.round_start {
                    self.probe_rtt_round_done = true;
                }
                if self.probe_rtt_round_done && now >= done {
                    self.min_rtt_at = Some(now);
                    self.cwnd = self.cwnd.max(self.prior_cwnd);
                    if self.full_bw_reached {
                        self.enter_probe_bw(now);
                    } else {
                        self.mode = Mode::Startup;
                    }
                }
            }
        }
        if rs.delivered > 0 {
            self.idle_restart = false;
        }
        self.update_pacing();
    }
}

impl Controller for Bbr {
    fn window(&self) -> usize {
        self.cwnd
    }

    fn set_remote_window(&mut self, remote_window: usize) {
        if self.rwnd < remote_window {
            self.rwnd = remote_window;
        }
    }

    fn on_ack(&mut self, _now: Instant, len: usize, in_flight: usize, rtt: &RttEstimator) {
        self.inflight = in_flight;
        if let Some(us) = rtt.srtt_us() {
            self.srtt_us = us;
        }
        if len == 0 {
            // xdpstack patch 30: the handshake's ACK (no data) gives the
            // first RTT: the initial pace, 2.89 initial windows per SRTT
            // (tcp_bbr.c's `bbr_init_pacing_rate_from_rtt`). Before, the
            // first data sample (one segment a round trip) set it, and
            // Startup's pace, which never falls, started from that.
            if self.pacing_rate == 0 && self.max_bw() == 0 && self.srtt_us > 0 {
                self.update_pacing();
            }
            return;
        }
        // tcp_bbr.c `bbr_set_cwnd`: during the first round of a recovery,
        // packet conservation (what was delivered goes out again); else grow
        // by what was acknowledged, up to the target once the pipe is known
        // to be full.
        let target = self.target_cwnd(self.cwnd_gain());
        if self.conservation_until.is_some() {
            self.cwnd = self.cwnd.max(in_flight + len);
        } else if self.full_bw_reached {
            self.cwnd = (self.cwnd + len).min(target);
        } else if self.cwnd < target || self.max_bw() == 0 {
            self.cwnd += len;
        }
        if self.mode == Mode::ProbeRtt {
            self.cwnd = self.cwnd.min(4 * self.mss);
        }
        self.cwnd = self.cwnd.max(4 * self.mss);
        self.update_pacing();
    }

    fn on_rate_sample(&mut self, now: Instant, rs: &RateSample, delivered: u64, in_flight: usize) {
        self.inflight = in_flight;
        self.on_sample(now, rs, delivered);
        if in_flight == 0 && rs.app_limited {
            self.idle_restart = true;
        }
    }

    fn on_rto(&mut self, _now: Instant, _in_flight: usize) {
        // tcp_enter_loss: one segment, the model kept; the window before is
        // restored when the loss is repaired.
        self.save_cwnd();
        self.in_recovery = true;
        self.conservation_until = None;
        self.cwnd = self.mss;
    }

    fn on_loss(&mut self, _now: Instant, in_flight: usize) {
        // Fast recovery: no cut from the loss itself, only packet
        // conservation for one round (tcp_bbr.c).
        self.save_cwnd();
        self.in_recovery = true;
        self.conservation_until = Some(self.round + 1);
        self.cwnd = in_flight.max(4 * self.mss);
    }

    fn undo(&mut self, _prior: &super::Prior) {
        // xdpstack patch 15 (undo): the model was never cut; the window kept
        // before the loss comes back, as at the end of a recovery.
        self.on_recovery_exit();
    }

    fn on_recovery_exit(&mut self) {
        self.in_recovery = false;
        self.conservation_until = None;
        self.cwnd = self.cwnd.max(self.prior_cwnd);
    }

    fn set_mss(&mut self, mss: usize) {
        if self.max_bw() == 0 && self.cwnd == 10 * self.mss {
            self.cwnd = 10 * mss;
        }
        self.mss = mss;
    }

    fn pacing_rate(&self) -> Option<u64> {
        (self.pacing_rate > 0).then_some(self.pacing_rate)
    }

    fn reduces_on_loss(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn sample(delivered: u64, interval_us: u32, prior: u64, rtt_us: u32) -> RateSample {
        RateSample {
            delivered,
            interval_us,
            prior_delivered: prior,
            rtt_us,
            app_limited: false,
        }
    }

    /// A path of `bw` bytes/s and `rtt_us`: each round the sender delivers
    /// what its window allows, capped by the path.
    fn run_rounds(b: &mut Bbr, rounds: u32, bw: u64, rtt_us: u32) -> Instant {
        let mut now = Instant::ZERO;
        let mut delivered = 0u64;
        let rtte = RttEstimator::default();
        for _ in 0..rounds {
            let cap = bw * u64::from(rtt_us) / 1_000_000;
            let sent = (b.window() as u64).min(cap.max(1));
            let prior = delivered;
            delivered += sent;
            now += Duration::from_micros(u64::from(rtt_us));
            let rs = sample(sent, rtt_us, prior, rtt_us);
            b.on_rate_sample(now, &rs, delivered, 0);
            b.on_ack(now, sent as usize, 0, &rtte);
        }
        now
    }

    #[test]
    fn startup_finds_the_bandwidth_and_leaves() {
        let mut b = Bbr::new();
        b.set_mss(1460);
        // 100 Mbit/s, 50 ms: a BDP of 625,000 bytes.
        run_rounds(&mut b, 40, 12_500_000, 50_000);
        assert!(b.full_bw_reached, "startup never ended");
        assert_eq!(b.mode, Mode::ProbeBw);
        let bw = b.max_bw();
        assert!(bw >= 12_000_000 && bw <= 12_500_000, "bw {bw}");
        // The window is about two BDPs, the pace about the bandwidth.
        assert!(
            b.window() >= 1_000_000 && b.window() <= 1_400_000,
            "cwnd {}",
            b.window()
        );
        let rate = b.pacing_rate().unwrap();
        assert!(rate >= 9_000_000 && rate <= 16_000_000, "pacing {rate}");
    }

    #[test]
    fn loss_keeps_the_model() {
        let mut b = Bbr::new();
        b.set_mss(1460);
        run_rounds(&mut b, 40, 12_500_000, 50_000);
        let (bw, cwnd) = (b.max_bw(), b.window());
        b.on_loss(Instant::from_secs(3), cwnd - 1460);
        assert!(b.window() >= cwnd - 1460);
        b.on_recovery_exit();
        assert_eq!(b.max_bw(), bw);
        assert!(b.window() >= cwnd);
        b.on_rto(Instant::from_secs(4), cwnd);
        assert_eq!(b.window(), 1460);
        b.on_recovery_exit();
        assert!(b.window() >= cwnd);
    }

    #[test]
    fn probe_rtt_after_ten_seconds() {
        let mut b = Bbr::new();
        b.set_mss(1460);
        let now = run_rounds(&mut b, 40, 12_500_000, 50_000);
        let later = now + Duration::from_secs(11);
        // A sample with a higher RTT after the minimum expired.
        let rs = sample(600_000, 60_000, b.next_round_delivered, 60_000);
        b.on_rate_sample(later, &rs, b.next_round_delivered + 600_000, 600_000);
        assert_eq!(b.mode, Mode::ProbeRtt);
        b.on_ack(later, 1460, 600_000, &RttEstimator::default());
        assert_eq!(b.window(), 4 * 1460);
    }

    #[test]
    fn application_limited_rounds_keep_the_bandwidth() {
        // xdpstack patch 29: twenty rounds of application-limited samples
        // below the estimate (a sender whose whole buffer is in flight, or
        // a quiet one) do not age the filter; a sample it takes does.
        let mut b = Bbr::new();
        b.set_mss(1460);
        let mut now = run_rounds(&mut b, 40, 12_500_000, 50_000);
        let bw = b.max_bw();
        let mut delivered = b.next_round_delivered;
        for _ in 0..20 {
            now += Duration::from_millis(50);
            let mut rs = sample(10_000, 50_000, delivered, 50_000);
            rs.app_limited = true;
            delivered += 10_000;
            b.on_rate_sample(now, &rs, delivered, 10_000);
        }
        assert_eq!(b.max_bw(), bw);
        assert!(b.pacing_rate().unwrap() >= bw * 3 / 4);
        // Ten rounds of samples it takes (not application-limited) replace
        // it.
        for _ in 0..10 {
            now += Duration::from_millis(50);
            let rs = sample(100_000, 50_000, delivered, 50_000);
            delivered += 100_000;
            b.on_rate_sample(now, &rs, delivered, 100_000);
        }
        assert_eq!(b.max_bw(), 2_000_000);
    }

    #[test]
    fn probe_rtt_during_a_recovery_restores_the_window() {
        // xdpstack patch 29: ProbeRTT began in a fast recovery; the
        // recovery's end, then ProbeRTT's, give back the window from before
        // both (a recovery's end forgot it: the flow went on from 4
        // segments).
        let mut b = Bbr::new();
        b.set_mss(1460);
        let now = run_rounds(&mut b, 40, 12_500_000, 50_000);
        let cwnd = b.window();
        b.on_loss(now, cwnd - 1460);
        let later = now + Duration::from_secs(11);
        let rs = sample(600_000, 60_000, b.next_round_delivered, 60_000);
        b.on_rate_sample(later, &rs, b.next_round_delivered + 600_000, 600_000);
        assert_eq!(b.mode, Mode::ProbeRtt);
        b.on_recovery_exit();
        b.on_ack(later, 1460, 4 * 1460, &RttEstimator::default());
        assert_eq!(b.window(), 4 * 1460);
        // The flight drains to 4 segments, then 200 ms and a round pass.
        let d = b.next_round_delivered;
        let rs = sample(1460, 50_000, d, 50_000);
        b.on_rate_sample(later, &rs, d + 1460, 4 * 1460);
        let end = later + Duration::from_millis(250);
        let rs = sample(1460, 50_000, b.next_round_delivered, 50_000);
        b.on_rate_sample(end, &rs, b.next_round_delivered + 1460, 4 * 1460);
        assert_eq!(b.mode, Mode::ProbeBw);
        assert!(b.window() >= cwnd, "{} < {cwnd}", b.window());
    }

    #[test]
    fn the_handshake_rtt_sets_the_first_pace() {
        // xdpstack patch 30: the ACK of the handshake (no data) with a 20 ms
        // RTT: 2.885 initial windows per 20 ms; a first sample of one
        // segment a round trip does not lower it in Startup.
        let mut b = Bbr::new();
        b.set_mss(1460);
        let mut rtte = RttEstimator::default();
        rtte.sample(20);
        b.on_ack(Instant::ZERO, 0, 0, &rtte);
        let want = 14_600 * 1_000_000 / 20_000 * HIGH_GAIN / 1000;
        assert_eq!(b.pacing_rate(), Some(want));
        let rs = sample(1460, 20_000, 0, 20_000);
        b.on_rate_sample(Instant::from_millis(40), &rs, 1460, 0);
        assert_eq!(b.pacing_rate(), Some(want));
    }

    #[test]
    fn an_idle_restart_refreshes_the_minimum_rtt_without_probe_rtt() {
        // xdpstack patch 30: a keep-alive connection whose responses drain
        // the flight: the first sample after the minimum RTT expired, on a
        // restart from idle, takes a new minimum RTT; no ProbeRTT, then or
        // on the next sample.
        let mut b = Bbr::new();
        b.set_mss(1460);
        let now = run_rounds(&mut b, 40, 12_500_000, 50_000);
        let mode = b.mode;
        let d = b.next_round_delivered;
        let mut rs = sample(10_000, 50_000, d, 50_000);
        rs.app_limited = true;
        b.on_rate_sample(now, &rs, d + 10_000, 0);
        assert!(b.idle_restart);
        let later = now + Duration::from_secs(11);
        let rs = sample(10_000, 52_000, d + 10_000, 52_000);
        b.on_rate_sample(later, &rs, d + 20_000, 5_000);
        assert_eq!(b.mode, mode);
        assert_eq!(b.min_rtt_us, 52_000);
        assert!(!b.idle_restart);
        let rs = sample(10_000, 52_000, d + 20_000, 52_000);
        b.on_rate_sample(later + Duration::from_millis(50), &rs, d + 30_000, 5_000);
        assert_eq!(b.mode, mode);
    }
}
