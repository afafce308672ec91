use crate::time::Instant;

use super::RttEstimator;
use super::sack::RateSample;

pub(super) mod no_control;

#[cfg(feature = "socket-tcp-cubic")]
pub(super) mod cubic;

#[cfg(feature = "socket-tcp-reno")]
pub(super) mod reno;

pub(super) mod bbr;

#[allow(unused_variables)]
pub(super) trait Controller {
    /// Returns the number of bytes that can be sent.
    fn window(&self) -> usize;

    /// Set the remote window size.
    fn set_remote_window(&mut self, remote_window: usize) {}

    fn on_ack(&mut self, now: Instant, len: usize, in_flight: usize, rtt: &RttEstimator) {}

    /// Fired on each duplicate ack received, after `on_loss` has been called.
    fn on_dup_ack(&mut self, now: Instant, len: usize, in_flight: usize) {}

    /// Fired on a retransmission timeout.
    fn on_rto(&mut self, now: Instant, in_flight: usize) {}

    /// Fired after an inferred loss via three duplicate acks.
    fn on_loss(&mut self, now: Instant, in_flight: usize) {}

    fn pre_transmit(&mut self, now: Instant) {}

    fn post_transmit(&mut self, now: Instant, len: usize) {}

    /// Set the maximum segment size.
    fn set_mss(&mut self, mss: usize) {}

    /// xdpstack patch 12: the slow-start threshold (PRR's target during
    /// fast recovery).
    fn ssthresh(&self) -> usize {
        usize::MAX
    }

    /// xdpstack patch 13: a delivery-rate sample (`delivered`: bytes
    /// delivered so far; `in_flight`: what is in flight after the ACK).
    fn on_rate_sample(&mut self, now: Instant, rs: &RateSample, delivered: u64, in_flight: usize) {}

    /// xdpstack patch 13: a fast recovery or a loss state ended (SND.UNA
    /// reached its recovery point).
    fn on_recovery_exit(&mut self) {}

    /// xdpstack patch 13: the rate to pace at, bytes per second; `None`:
    /// send what the window allows at once.
    fn pacing_rate(&self) -> Option<u64> {
        None
    }

    /// xdpstack patch 13: whether a fast recovery reduces the window by
    /// Proportional Rate Reduction (loss-based controllers), or the
    /// controller keeps its own window through it (BBR).
    fn reduces_on_loss(&self) -> bool {
        true
    }

    /// xdpstack patch 14: whether the controller is in slow start (HyStart
    /// applies).
    fn in_slow_start(&self) -> bool {
        false
    }

    /// xdpstack patch 14: HyStart saw the queue grow: end slow start here
    /// (ssthresh = cwnd).
    fn end_slow_start(&mut self) {}

    /// xdpstack patch 15 (undo): HyStart++ Conservative Slow Start (RFC 9406
    /// §4.2): while on, slow start grows by a quarter (CSS_GROWTH_DIVISOR).
    /// A loss or `end_slow_start` turns it off.
    fn set_conservative(&mut self, on: bool) {}

    /// xdpstack patch 15 (undo): a loss episode begins: the state before the
    /// reduction that follows, for `undo`.
    fn prior(&self) -> Prior {
        Prior {
            cwnd: self.window(),
            ssthresh: self.ssthresh(),
            ..Prior::default()
        }
    }

    /// xdpstack patch 15 (undo): the episode's reduction was spurious (RFC
    /// 3708 D-SACK, RFC 5682 F-RTO): restore the window and ssthresh of
    /// `prior`, as Linux's `tcp_undo_cwnd_reduction` (each the larger of
    /// now and then), and leave recovery.
    fn undo(&mut self, prior: &Prior) {}
}

/// xdpstack patch 15 (undo): a controller's state before a loss episode cut
/// it, kept in the (boxed) recovery state until the episode is undone or
/// the next begins.
#[derive(Debug, Default, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(super) struct Prior {
    pub cwnd: usize,
    pub ssthresh: usize,
    /// Cubic's epoch: W_max, K, W_est, cwnd_prior and the epoch's start.
    pub w_max: usize,
    pub k: f64,
    pub w_est: f64,
    pub cwnd_prior: usize,
    pub epoch: Option<Instant>,
}

#[derive(Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(super) enum AnyController {
    None(no_control::NoControl),

    #[cfg(feature = "socket-tcp-reno")]
    Reno(reno::Reno),

    #[cfg(feature = "socket-tcp-cubic")]
    Cubic(cubic::Cubic),

    /// xdpstack patch 13 (boxed: sockets that do not use it stay small).
    Bbr(alloc::boxed::Box<bbr::Bbr>),
}

impl AnyController {
    /// Create a new congestion controller.
    /// `AnyController::new()` selects the best congestion controller based on the features.
    ///
    /// - If `socket-tcp-cubic` feature is enabled, it will use `Cubic`.
    /// - If `socket-tcp-reno` feature is enabled, it will use `Reno`.
    /// - If both `socket-tcp-cubic` and `socket-tcp-reno` features are enabled, it will use `Cubic`.
    ///    - `Cubic` is more efficient regarding throughput.
    ///    - `Reno` is more conservative and is suitable for low-power devices.
    /// - If no congestion controller is available, it will use `NoControl`.
    ///
    /// Users can also select a congestion controller manually by [`super::Socket::set_congestion_control()`]
    /// method at run-time.
    #[allow(unreachable_code)]
    #[inline]
    pub fn new() -> Self {
        #[cfg(feature = "socket-tcp-cubic")]
        {
            return AnyController::Cubic(cubic::Cubic::new());
        }

        #[cfg(feature = "socket-tcp-reno")]
        {
            return AnyController::Reno(reno::Reno::new());
        }

        AnyController::None(no_control::NoControl)
    }

    #[inline]
    pub fn inner_mut(&mut self) -> &mut dyn Controller {
        match self {
            AnyController::None(n) => n,

            #[cfg(feature = "socket-tcp-reno")]
            AnyController::Reno(r) => r,

            #[cfg(feature = "socket-tcp-cubic")]
            AnyController::Cubic(c) => c,

            AnyController::Bbr(b) => &mut **b,
        }
    }

    #[inline]
    pub fn inner(&self) -> &dyn Controller {
        match self {
            AnyController::None(n) => n,

            #[cfg(feature = "socket-tcp-reno")]
            AnyController::Reno(r) => r,

            #[cfg(feature = "socket-tcp-cubic")]
            AnyController::Cubic(c) => c,

            AnyController::Bbr(b) => &**b,
        }
    }
}
