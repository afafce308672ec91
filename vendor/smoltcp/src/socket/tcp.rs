// Heads up! Before working on this file you should read, at least, RFC 793 and
// the parts of RFC 1122 that discuss TCP, as well as RFC 7323 for some of the TCP options.
// Consult RFC 7414 when implementing a new feature.

use core::fmt::Display;
#[cfg(feature = "async")]
use core::task::Waker;
use core::{fmt, mem};

use crate::config::ASSEMBLER_MAX_SEGMENT_COUNT;
use crate::phy::PacketMeta;
#[cfg(feature = "async")]
use crate::socket::WakerRegistration;
use crate::socket::{Context, PollAt};
use crate::storage::{Assembler, RingBuffer};
use crate::time::{Duration, Instant};
use crate::wire::{
    IpAddress, IpEcn, IpEndpoint, IpListenEndpoint, IpProtocol, IpRepr, TCP_HEADER_LEN, TcpControl,
    TcpRepr, TcpSeqNumber, TcpTimestampGenerator, TcpTimestampRepr,
};

mod congestion;
mod sack;

pub use sack::RecoveryStats;
use sack::{Phase, Recovery};

macro_rules! tcp_trace {
    ($($arg:expr),*) => (net_log!(trace, $($arg),*));
}

/// xdpstack patch 18 (path MTU): what [`Socket::on_packet_too_big`] did
/// with an ICMP "fragmentation needed" (RFC 1191) or ICMPv6 "packet too
/// big" (RFC 8201) quoting one of this connection's segments.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PathMtu {
    /// The send MSS was lowered to this; unacknowledged data goes again
    /// in segments of that size.
    Lowered(usize),
    /// The quoted sequence number is not in SND.UNA..=SND.MAX (or there is
    /// no connection): not a segment of ours in flight, ignored (RFC 5927
    /// §4.1, Linux's `tcp_v4_err`).
    OutOfWindow,
    /// The MTU would not lower the send MSS: ignored (a path MTU only
    /// grows by probing, RFC 1191 §6.3).
    NotLower,
}

/// Error returned by [`Socket::listen`]
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ListenError {
    InvalidState,
    Unaddressable,
}

impl Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            ListenError::InvalidState => write!(f, "invalid state"),
            ListenError::Unaddressable => write!(f, "unaddressable destination"),
        }
    }
}

impl core::error::Error for ListenError {}

/// Error returned by [`Socket::connect`]
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConnectError {
    InvalidState,
    Unaddressable,
}

impl Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            ConnectError::InvalidState => write!(f, "invalid state"),
            ConnectError::Unaddressable => write!(f, "unaddressable destination"),
        }
    }
}

impl core::error::Error for ConnectError {}

/// Error returned by [`Socket::send`]
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SendError {
    InvalidState,
}

impl Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            SendError::InvalidState => write!(f, "invalid state"),
        }
    }
}

impl core::error::Error for SendError {}

/// Error returned by [`Socket::recv`]
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RecvError {
    InvalidState,
    Finished,
}

impl Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            RecvError::InvalidState => write!(f, "invalid state"),
            RecvError::Finished => write!(f, "operation finished"),
        }
    }
}

impl core::error::Error for RecvError {}

/// A TCP socket ring buffer.
pub type SocketBuffer<'a> = RingBuffer<'a, u8>;

/// The state of a TCP socket, according to [RFC 793].
///
/// [RFC 793]: https://tools.ietf.org/html/rfc793
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum State {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            State::Closed => write!(f, "CLOSED"),
            State::Listen => write!(f, "LISTEN"),
            State::SynSent => write!(f, "SYN-SENT"),
            State::SynReceived => write!(f, "SYN-RECEIVED"),
            State::Established => write!(f, "ESTABLISHED"),
            State::FinWait1 => write!(f, "FIN-WAIT-1"),
            State::FinWait2 => write!(f, "FIN-WAIT-2"),
            State::CloseWait => write!(f, "CLOSE-WAIT"),
            State::Closing => write!(f, "CLOSING"),
            State::LastAck => write!(f, "LAST-ACK"),
            State::TimeWait => write!(f, "TIME-WAIT"),
        }
    }
}

/// xdpstack patch 19 (TIME-WAIT): a socket's sequence state, from
/// [`Socket::seq_state`].
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct SeqState {
    /// The sequence number an ACK of ours carries now (SND.NXT).
    pub snd_nxt: TcpSeqNumber,
    /// The next sequence number expected from the peer (RCV.NXT; past its
    /// FIN once that is in).
    pub rcv_nxt: TcpSeqNumber,
    /// The window field an ACK of ours carries now (already scaled).
    pub window: u16,
    /// The peer's last TSval, when timestamps are in use (TS.Recent).
    pub ts_recent: Option<u32>,
}

/// RFC 6298: (2.1) Until a round-trip time (RTT) measurement has been made for a
/// segment sent between the sender and receiver, the sender SHOULD
/// set RTO <- 1 second,
const RTTE_INITIAL_RTO: u32 = 1000;

// Minimum "safety margin" for the RTO that kicks in when the
// variance gets very low.
const RTTE_MIN_MARGIN: u32 = 5;

/// K, according to RFC 6298
const RTTE_K: u32 = 4;

// RFC 6298 (2.4): Whenever RTO is computed, if it is less than 1 second, then the
// RTO SHOULD be rounded up to 1 second.
// xdpstack patch: 200 ms, Linux's TCP_RTO_MIN. With a 1 s floor a connection
// on a lossy path stalls a whole second per timeout where Linux's recovers
// in a fifth of it.
const RTTE_MIN_RTO: u32 = 200;

// RFC 6298 (2.5) A maximum value MAY be placed on RTO provided it is at least 60
// seconds
const RTTE_MAX_RTO: u32 = 60_000;

#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct RttEstimator {
    /// true if we have made at least one rtt measurement.
    have_measurement: bool,
    // Using u32 instead of Duration to save space (Duration is i64)
    /// xdpstack patch 29: the smoothed RTT and its variance, in
    /// microseconds. Upstream computed them in whole milliseconds with the
    /// average rounded up, so SRTT fell only on a sample 8 ms below it: at a
    /// 2.5 ms RTT one 6 ms sample held it at 6 ms for good, the tail loss
    /// probe waited 2·6 ms instead of 10 and the RTO grew with it.
    srtt_us: u32,
    rttvar_us: u32,
    /// Retransmission Time-Out
    rto: u32,
    timestamp: Option<(Instant, TcpSeqNumber)>,
    max_seq_sent: Option<TcpSeqNumber>,
    rto_count: u8,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self {
            have_measurement: false,
            srtt_us: 0,   // ignored, will be overwritten on first measurement.
            rttvar_us: 0, // ignored, will be overwritten on first measurement.
            rto: RTTE_INITIAL_RTO,
            timestamp: None,
            max_seq_sent: None,
            rto_count: 0,
        }
    }
}

impl RttEstimator {
    fn retransmission_timeout(&self) -> Duration {
        Duration::from_millis(self.rto as _)
    }

    /// xdpstack patch 12: the smoothed RTT in milliseconds, once measured.
    #[cfg(test)]
    fn srtt_ms(&self) -> Option<u32> {
        self.have_measurement
            .then_some(self.srtt_us.saturating_add(500) / 1000)
    }

    /// xdpstack patch 29: the smoothed RTT in microseconds, once measured.
    fn srtt_us(&self) -> Option<u32> {
        self.have_measurement.then_some(self.srtt_us)
    }

    fn sample(&mut self, new_rtt: u32) {
        self.sample_us(new_rtt.saturating_mul(1000));
    }

    /// An RTT sample in microseconds (xdpstack patch 29: the average and
    /// variance are kept in microseconds, RFC 6298 §2 unchanged otherwise).
    fn sample_us(&mut self, new_rtt: u32) {
        if self.have_measurement {
            // RFC 6298 (2.3) When a subsequent RTT measurement R' is made, a host MUST set (...)
            let diff = (i64::from(self.srtt_us) - i64::from(new_rtt)).unsigned_abs();
            self.rttvar_us = ((u64::from(self.rttvar_us) * 3 + diff) / 4) as u32;
            self.srtt_us = ((u64::from(self.srtt_us) * 7 + u64::from(new_rtt)) / 8) as u32;
        } else {
            // RFC 6298 (2.2) When the first RTT measurement R is made, the host MUST set (...)
            self.have_measurement = true;
            self.srtt_us = new_rtt;
            self.rttvar_us = new_rtt / 2;
        }

        // RFC 6298 (2.2), (2.3)
        let margin = (RTTE_MIN_MARGIN * 1000).max(self.rttvar_us.saturating_mul(RTTE_K));
        self.rto = self
            .srtt_us
            .saturating_add(margin)
            .div_ceil(1000)
            .clamp(RTTE_MIN_RTO, RTTE_MAX_RTO);

        self.rto_count = 0;

        tcp_trace!(
            "rtte: sample={:?} srtt={:?} rttvar={:?} rto={:?}",
            new_rtt,
            self.srtt_us,
            self.rttvar_us,
            self.rto
        );
    }

    fn on_send(&mut self, timestamp: Instant, seq: TcpSeqNumber) {
        if self
            .max_seq_sent
            .map(|max_seq_sent| seq > max_seq_sent)
            .unwrap_or(true)
        {
            self.max_seq_sent = Some(seq);
            if self.timestamp.is_none() {
                self.timestamp = Some((timestamp, seq));
                tcp_trace!("rtte: sampling at seq={:?}", seq);
            }
        }
    }

    fn on_ack(&mut self, timestamp: Instant, seq: TcpSeqNumber) {
        if let Some((sent_timestamp, sent_seq)) = self.timestamp
            && seq >= sent_seq
        {
            self.sample_us((timestamp - sent_timestamp).total_micros() as u32);
            self.timestamp = None;
        }
    }

    /// xdpstack patch 20 (timestamps): a sample from a timestamp echo (RTTM);
    /// the segment timed for Karn's algorithm is not needed.
    fn on_ts_sample(&mut self, rtt: u32) {
        self.sample(rtt);
        self.timestamp = None;
    }

    fn on_rto(&mut self) {
        // RFC 6298 (5.5) The host MUST set RTO <- RTO * 2 ("back off the timer").  The
        // maximum value discussed in (2.5) above may be used to provide
        // an upper bound to this doubling operation.
        self.rto = (self.rto * 2).min(RTTE_MAX_RTO);
        tcp_trace!("rtte: doubling rto to {:?}", self.rto);

        // RFC 6298: a TCP implementation MAY clear SRTT and RTTVAR after
        // backing off the timer multiple times as it is likely that the current
        // SRTT and RTTVAR are bogus in this situation.  Once SRTT and RTTVAR
        // are cleared, they should be initialized with the next RTT sample
        // taken per (2.2) rather than using (2.3).
        self.rto_count += 1;
        if self.rto_count >= 3 {
            self.rto_count = 0;
            self.have_measurement = false;
            tcp_trace!("rtte: too many retransmissions, clearing srtt, rttvar.");
        }
    }

    fn on_retransmit(&mut self) {
        if self.timestamp.is_some() {
            tcp_trace!("rtte: abort sampling due to retransmit");
        }
        self.timestamp = None;
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Timer {
    Idle {
        keep_alive_at: Option<Instant>,
    },
    Retransmit {
        expires_at: Instant,
    },
    FastRetransmit,
    ZeroWindowProbe {
        expires_at: Instant,
        delay: Duration,
    },
    Close {
        expires_at: Instant,
    },
}

const ACK_DELAY_DEFAULT: Duration = Duration::from_millis(10);
const CLOSE_DELAY: Duration = Duration::from_millis(10_000);

impl Timer {
    fn new() -> Timer {
        Timer::Idle {
            keep_alive_at: None,
        }
    }

    fn should_keep_alive(&self, timestamp: Instant) -> bool {
        match *self {
            Timer::Idle {
                keep_alive_at: Some(keep_alive_at),
            } if timestamp >= keep_alive_at => true,
            _ => false,
        }
    }

    fn should_retransmit(&self, timestamp: Instant) -> bool {
        match *self {
            Timer::Retransmit { expires_at } if timestamp >= expires_at => true,
            Timer::FastRetransmit => true,
            _ => false,
        }
    }

    fn should_close(&self, timestamp: Instant) -> bool {
        match *self {
            Timer::Close { expires_at } if timestamp >= expires_at => true,
            _ => false,
        }
    }

    fn should_zero_window_probe(&self, timestamp: Instant) -> bool {
        match *self {
            Timer::ZeroWindowProbe { expires_at, .. } if timestamp >= expires_at => true,
            _ => false,
        }
    }

    fn poll_at(&self) -> PollAt {
        match *self {
            Timer::Idle {
                keep_alive_at: Some(keep_alive_at),
            } => PollAt::Time(keep_alive_at),
            Timer::Idle {
                keep_alive_at: None,
            } => PollAt::Ingress,
            Timer::ZeroWindowProbe { expires_at, .. } => PollAt::Time(expires_at),
            Timer::Retransmit { expires_at, .. } => PollAt::Time(expires_at),
            Timer::FastRetransmit => PollAt::Now,
            Timer::Close { expires_at } => PollAt::Time(expires_at),
        }
    }

    fn set_for_idle(&mut self, timestamp: Instant, interval: Option<Duration>) {
        *self = Timer::Idle {
            keep_alive_at: interval.map(|interval| timestamp + interval),
        }
    }

    fn set_keep_alive(&mut self) {
        if let Timer::Idle { keep_alive_at } = self
            && keep_alive_at.is_none()
        {
            *keep_alive_at = Some(Instant::from_millis(0))
        }
    }

    fn rewind_keep_alive(&mut self, timestamp: Instant, interval: Option<Duration>) {
        if let Timer::Idle { keep_alive_at } = self {
            *keep_alive_at = interval.map(|interval| timestamp + interval)
        }
    }

    fn set_for_retransmit(&mut self, timestamp: Instant, delay: Duration) {
        match *self {
            Timer::Idle { .. }
            | Timer::FastRetransmit
            | Timer::Retransmit { .. }
            | Timer::ZeroWindowProbe { .. } => {
                *self = Timer::Retransmit {
                    expires_at: timestamp + delay,
                }
            }
            Timer::Close { .. } => (),
        }
    }

    fn set_for_fast_retransmit(&mut self) {
        *self = Timer::FastRetransmit
    }

    fn set_for_close(&mut self, timestamp: Instant) {
        *self = Timer::Close {
            expires_at: timestamp + CLOSE_DELAY,
        }
    }

    fn set_for_zero_window_probe(&mut self, timestamp: Instant, delay: Duration) {
        *self = Timer::ZeroWindowProbe {
            expires_at: timestamp + delay,
            delay,
        }
    }

    fn rewind_zero_window_probe(&mut self, timestamp: Instant) {
        if let Timer::ZeroWindowProbe { mut delay, .. } = *self {
            delay = (delay * 2).min(Duration::from_millis(RTTE_MAX_RTO as _));
            *self = Timer::ZeroWindowProbe {
                expires_at: timestamp + delay,
                delay,
            }
        }
    }

    fn is_idle(&self) -> bool {
        matches!(self, Timer::Idle { .. })
    }

    fn is_zero_window_probe(&self) -> bool {
        matches!(self, Timer::ZeroWindowProbe { .. })
    }

    fn is_retransmit(&self) -> bool {
        matches!(self, Timer::Retransmit { .. } | Timer::FastRetransmit)
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum AckDelayTimer {
    Idle,
    Waiting(Instant),
    Immediate,
}

/// xdpstack patch 12: the kind of data segment `dispatch` sends.
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
enum Sent {
    /// New data at SND.NXT.
    New,
    /// A lost range, from the scoreboard.
    Retransmit,
    /// A tail loss probe resending the last segment.
    Probe,
    /// A tail loss probe with new data.
    ProbeNew,
}

/// xdpstack patch 17 (ECN): Explicit Congestion Notification (RFC 3168) for a
/// connection a peer opened asking for it.
#[derive(Debug, Copy, Clone, Default, Eq, PartialEq)]
struct EcnState {
    /// Accept ECN when a SYN asks for it (Linux's `tcp_ecn = 2`); kept
    /// across `reset`.
    enabled: bool,
    /// Negotiated: the SYN had ECE and CWR, the SYN-ACK has ECE.
    ok: bool,
    /// Receiver: a CE-marked segment arrived; every ACK carries ECE until
    /// a segment with CWR arrives (§6.1.3).
    ece: bool,
    /// Sender: the window was reduced; the next new data segment carries
    /// CWR (§6.1.2).
    cwr_pending: bool,
    /// Sender: the sequence number of the last segment that carried CWR.
    /// An ECE reduces the window again only from an ACK past it, sent by a
    /// receiver that had seen the CWR (once per window of data).
    cwr_seq: Option<TcpSeqNumber>,
}

#[derive(Debug, Copy, Clone, Eq, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Tuple {
    local: IpEndpoint,
    remote: IpEndpoint,
}

impl Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.local, self.remote)
    }
}

/// A congestion control algorithm.
#[derive(Debug, Copy, Clone, Eq, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CongestionControl {
    None,

    #[cfg(feature = "socket-tcp-reno")]
    Reno,

    #[cfg(feature = "socket-tcp-cubic")]
    Cubic,

    /// xdpstack patch 13: BBR (v1, Linux's `bbr`), a model of the path's
    /// bandwidth and RTT with pacing; its rate samples need a peer that
    /// negotiated SACK.
    Bbr,
}

/// A Transmission Control Protocol socket.
///
/// A TCP socket may passively listen for connections or actively connect to another endpoint.
/// Note that, for listening sockets, there is no "backlog"; to be able to simultaneously
/// accept several connections, as many sockets must be allocated, or any new connection
/// attempts will be reset.
#[derive(Debug)]
pub struct Socket<'a> {
    state: State,
    timer: Timer,
    rtte: RttEstimator,
    assembler: Assembler,
    rx_buffer: SocketBuffer<'a>,
    rx_fin_received: bool,
    tx_buffer: SocketBuffer<'a>,
    /// Interval after which, if no inbound packets are received, the connection is aborted.
    timeout: Option<Duration>,
    /// Interval at which keep-alive packets will be sent.
    keep_alive: Option<Duration>,
    /// The time-to-live (IPv4) or hop limit (IPv6) value used in outgoing packets.
    hop_limit: Option<u8>,
    /// Address passed to listen(). Listen address is set when listen() is called and
    /// used every time the socket is reset back to the LISTEN state.
    listen_endpoint: IpListenEndpoint,
    /// Current 4-tuple (local and remote endpoints).
    tuple: Option<Tuple>,
    /// The sequence number corresponding to the beginning of the transmit buffer.
    /// I.e. an ACK(local_seq_no+n) packet removes n bytes from the transmit buffer.
    local_seq_no: TcpSeqNumber,
    /// The sequence number corresponding to the beginning of the receive buffer.
    /// I.e. userspace reading n bytes adds n to remote_seq_no.
    remote_seq_no: TcpSeqNumber,
    /// The last sequence number sent.
    /// I.e. in an idle socket, local_seq_no+tx_buffer.len().
    remote_last_seq: TcpSeqNumber,
    /// The last acknowledgement number sent.
    /// I.e. in an idle socket, remote_seq_no+rx_buffer.len().
    remote_last_ack: Option<TcpSeqNumber>,
    /// The last window length sent.
    remote_last_win: u16,
    /// The sending window scaling factor advertised to remotes which support RFC 1323.
    /// It is zero if the window <= 64KiB and/or the remote does not support it.
    remote_win_shift: u8,
    /// The remote window size, relative to local_seq_no
    /// I.e. we're allowed to send octets until local_seq_no+remote_win_len
    remote_win_len: usize,
    /// The receive window scaling factor for remotes which support RFC 1323, None if unsupported.
    remote_win_scale: Option<u8>,
    /// Whether or not the remote supports selective ACK as described in RFC 2018.
    remote_has_sack: bool,
    /// xdpstack patch 29: the application's last burst of writes (those
    /// before a transmission) ended with the send buffer full: it had more
    /// than fit, and waits for room; `tx_last_filled`: the last write
    /// filled it.
    tx_filled: bool,
    tx_last_filled: bool,
    /// The maximum number of data octets that the remote side may receive.
    remote_mss: usize,
    /// The timestamp of the last packet received.
    remote_last_ts: Option<Instant>,
    /// The sequence number of the last packet received, used for sACK
    local_rx_last_seq: Option<TcpSeqNumber>,
    /// xdpstack patch (issue 19, RFC 2018 4): the left edges of the SACK
    /// blocks reported last, most recent first; the next ACK repeats them
    /// after the block holding the segment received last.
    rx_sack_recent: [Option<TcpSeqNumber>; 3],
    /// The ACK number of the last packet received.
    local_rx_last_ack: Option<TcpSeqNumber>,
    /// The number of packets received directly after
    /// each other which have the same ACK number.
    local_rx_dup_acks: u8,
    /// If a fast retransmit needs to occur
    pending_fast_retransmit: bool,
    /// xdpstack patch: NewReno (RFC 6582) recovery point, the highest
    /// sequence number sent when fast retransmit began. Until an ACK covers
    /// it, an ACK of new data that does not (a partial ACK) means the next
    /// segment was lost too: it is retransmitted at once instead of after an
    /// RTO, and duplicate ACKs start no new fast retransmit.
    recover: Option<TcpSeqNumber>,
    /// xdpstack patch: the highest sequence number sent (SND.MAX). After an
    /// RTO `remote_last_seq` (SND.NXT) goes back to SND.UNA; an ACK-only
    /// segment must still carry SND.MAX, as Linux's do: the peer may hold
    /// data up to there, and Linux drops (ACK field and all) a zero-length
    /// segment whose sequence number is below what it already received.
    snd_max: Option<TcpSeqNumber>,
    /// xdpstack patch 12: SACK-based loss recovery (`sack.rs`), created at
    /// the first data sent to a peer that negotiated SACK, dropped by
    /// `reset`.
    rec: Option<alloc::boxed::Box<Recovery>>,
    /// xdpstack patch 17 (ECN): RFC 3168 state.
    ecn: EcnState,

    /// Duration for Delayed ACK. If None no ACKs will be delayed.
    ack_delay: Option<Duration>,
    /// Delayed ack timer. If set, packets containing exclusively
    /// ACK or window updates (ie, no data) won't be sent until expiry.
    ack_delay_timer: AckDelayTimer,

    /// Used for rate-limiting: No more challenge ACKs will be sent until this instant.
    challenge_ack_timer: Instant,

    /// Nagle's Algorithm enabled.
    nagle: bool,

    /// The congestion control algorithm.
    congestion_controller: congestion::AnyController,

    /// tsval generator - if some, tcp timestamp is enabled
    tsval_generator: Option<TcpTimestampGenerator>,

    /// 0 if not seen or timestamp not enabled
    /// xdpstack patch 20 (timestamps): TS.Recent of RFC 7323, updated only by
    /// a segment at or below Last.ACK.sent (§4.3) that passed PAWS (§5).
    last_remote_tsval: u32,
    /// xdpstack patch 20 (timestamps): when TS.Recent was last updated, in
    /// seconds of the interface clock, if it was (`ts_recent_set`); PAWS
    /// ignores a TS.Recent older than 24 days (RFC 7323 §5.5). Plain
    /// fields, not `Option`s, keep the socket within its ten cache lines.
    ts_recent_at: u32,
    ts_recent_set: bool,
    /// xdpstack patch 20 (timestamps): with `ts_clock`, the TSval clock is the
    /// interface clock in milliseconds plus this per-connection offset (as
    /// Linux: a TSval does not tell the host's uptime). Without it, no
    /// clock (upstream's `tsval_generator`, if any, makes TSvals). Cleared,
    /// like the generator, when the peer does not offer timestamps.
    ts_offset: u32,
    ts_clock: bool,

    #[cfg(feature = "async")]
    rx_waker: WakerRegistration,
    #[cfg(feature = "async")]
    tx_waker: WakerRegistration,

    /// If this is set, we will not send a SYN|ACK until this is unset.
    #[cfg(feature = "socket-tcp-pause-synack")]
    synack_paused: bool,

    /// xdpstack patch: the initial sequence number the next SYN taken in
    /// LISTEN uses instead of a random one (SYN cookies).
    next_isn: Option<TcpSeqNumber>,
    /// xdpstack patch 19 (TIME-WAIT): `next_isn`'s SYN-ACK has not gone out
    /// yet (a new incarnation of a 4-tuple in TIME-WAIT): it is sent as
    /// usual, where a cookie's went out already.
    next_isn_unanswered: bool,

    /// xdpstack patch (buffers that grow): the receive buffer size the
    /// advertised window is computed from, apart from the storage that holds
    /// the data, which the owner grows before a segment needs it
    /// (`recv_storage_needed`) and takes back when it is empty. 0: the
    /// storage's capacity, as upstream (window = free storage).
    rx_limit: u32,
    /// xdpstack patch: the largest `rx_limit` the connection may reach; the
    /// window scale offered in its SYN or SYN-ACK is chosen to express it.
    /// 0: the storage's capacity, as upstream.
    rx_window_max: u32,
    /// xdpstack patch: the right edge of the receive window last advertised
    /// (ACK + window); with `rx_limit` set the window never moves it back
    /// (RFC 9293 3.8.6.2.2, Linux's `tcp_select_window`).
    rx_edge: Option<TcpSeqNumber>,
    /// xdpstack patch: segments whose data was cut short because the
    /// storage could not hold it (grown too late, or refused by a memory
    /// budget); the peer sends it again.
    rx_storage_cut: u32,
}

const DEFAULT_MSS: usize = 536;

/// xdpstack patch 20 (timestamps): after this long without an update,
/// TS.Recent is no longer valid for PAWS (RFC 7323 §5.5, Linux's
/// `TCP_PAWS_24DAYS`).
const PAWS_IDLE_SECS: u32 = 24 * 24 * 3600;

/// xdpstack patch 13: the most sending time a paced connection banks.
const PACE_BURST: Duration = Duration::from_millis(1);

/// Minimum MSS we accept from the remote, same value as Linux's `TCP_MIN_SND_MSS`.
/// Without it, a peer advertising a tiny MSS could force segments to carry little
/// or no payload once the TCP options length is subtracted from the effective MSS,
/// stalling the connection in an endless stream of empty segments.
///
/// Must exceed the maximum possible length of the TCP options (currently 12, for
/// timestamps) so that every segment carries some payload.
const MIN_REMOTE_MSS: usize = 48;

impl<'a> Socket<'a> {
    #[allow(unused_comparisons)] // small usize platforms always pass rx_capacity check
    /// Create a socket using the given buffers.
    pub fn new<T>(rx_buffer: T, tx_buffer: T) -> Socket<'a>
    where
        T: Into<SocketBuffer<'a>>,
    {
        let (rx_buffer, tx_buffer) = (rx_buffer.into(), tx_buffer.into());
        let rx_capacity = rx_buffer.capacity();

        // From RFC 1323:
        // [...] the above constraints imply that 2 * the max window size must be less
        // than 2**31 [...] Thus, the shift count must be limited to 14 (which allows
        // windows of 2**30 = 1 Gbyte).
        #[cfg(not(target_pointer_width = "16"))] // Prevent overflow
        if rx_capacity > (1 << 30) {
            panic!("receiving buffer too large, cannot exceed 1 GiB")
        }
        let rx_cap_log2 = mem::size_of::<usize>() * 8 - rx_capacity.leading_zeros() as usize;

        Socket {
            state: State::Closed,
            timer: Timer::new(),
            rtte: RttEstimator::default(),
            assembler: Assembler::new(),
            tx_buffer,
            rx_buffer,
            rx_fin_received: false,
            timeout: None,
            keep_alive: None,
            hop_limit: None,
            listen_endpoint: IpListenEndpoint::default(),
            tuple: None,
            local_seq_no: TcpSeqNumber::default(),
            remote_seq_no: TcpSeqNumber::default(),
            remote_last_seq: TcpSeqNumber::default(),
            remote_last_ack: None,
            remote_last_win: 0,
            remote_win_len: 0,
            remote_win_shift: rx_cap_log2.saturating_sub(16) as u8,
            remote_win_scale: None,
            remote_has_sack: false,
            tx_filled: false,
            tx_last_filled: false,
            remote_mss: DEFAULT_MSS,
            remote_last_ts: None,
            local_rx_last_ack: None,
            local_rx_last_seq: None,
            rx_sack_recent: [None; 3],
            local_rx_dup_acks: 0,
            pending_fast_retransmit: false,
            recover: None,
            snd_max: None,
            rec: None,
            ecn: EcnState {
                enabled: true,
                ..EcnState::default()
            },
            ack_delay: Some(ACK_DELAY_DEFAULT),
            ack_delay_timer: AckDelayTimer::Idle,
            challenge_ack_timer: Instant::from_secs(0),
            nagle: true,
            tsval_generator: None,
            last_remote_tsval: 0,
            ts_recent_at: 0,
            ts_recent_set: false,
            ts_offset: 0,
            ts_clock: false,
            congestion_controller: congestion::AnyController::new(),
            next_isn: None,
            next_isn_unanswered: false,
            rx_limit: 0,
            rx_window_max: 0,
            rx_edge: None,
            rx_storage_cut: 0,

            #[cfg(feature = "async")]
            rx_waker: WakerRegistration::new(),
            #[cfg(feature = "async")]
            tx_waker: WakerRegistration::new(),

            #[cfg(feature = "socket-tcp-pause-synack")]
            synack_paused: false,
        }
    }

    /// Enable or disable TCP Timestamp.
    pub fn set_tsval_generator(&mut self, generator: Option<TcpTimestampGenerator>) {
        self.tsval_generator = generator;
    }

    /// Return whether TCP Timestamp is enabled.
    pub fn timestamp_enabled(&self) -> bool {
        self.tsval_generator.is_some() || self.ts_clock
    }

    /// xdpstack patch (timestamps, RFC 7323): offer timestamps in the next
    /// SYN or SYN-ACK, with TSvals from the interface clock in milliseconds
    /// plus `offset` (per connection and unpredictable, as Linux's
    /// `secure_tcp_ts_off`), or not (`None`). When both ends offer them,
    /// every segment carries them (an abort's RST too, as §3.2 recommends;
    /// not the stateless RSTs of `rst_reply`), PAWS (§5) drops old
    /// duplicates, and every ACK that advances SND.UNA gives an RTT sample
    /// from its echo (RTTM, §4), retransmissions included. A peer that does
    /// not offer them sees none. Set before `listen` or `connect`.
    pub fn set_timestamps(&mut self, offset: Option<u32>) {
        self.ts_offset = offset.unwrap_or(0);
        self.ts_clock = offset.is_some();
    }

    /// xdpstack patch 20 (timestamps): TS.Recent, the timestamp the peer sent
    /// last in order (what our TSecr echoes); `None` without timestamps.
    pub fn ts_recent(&self) -> Option<u32> {
        (self.timestamp_enabled() && self.ts_recent_set).then_some(self.last_remote_tsval)
    }

    /// xdpstack patch 20 (timestamps): the TSval this socket would send at
    /// `now`, if it sends timestamps (with the clock of
    /// [`set_timestamps`](Self::set_timestamps)).
    fn tsval_at(&self, now: Instant) -> Option<u32> {
        self.ts_clock
            .then(|| (now.total_millis() as u32).wrapping_add(self.ts_offset))
    }

    /// xdpstack patch 20 (timestamps): the TSval of a segment sent now, and
    /// its option echoing TS.Recent; `None` without timestamps.
    fn ts_option(&self, now: Instant) -> Option<TcpTimestampRepr> {
        let tsval = match (self.tsval_generator, self.tsval_at(now)) {
            (Some(generator), _) => generator(),
            (None, Some(tsval)) => tsval,
            (None, None) => return None,
        };
        Some(TcpTimestampRepr::new(tsval, self.last_remote_tsval))
    }

    /// xdpstack patch 20 (timestamps): no timestamps on this connection (the
    /// peer did not offer them).
    fn ts_off(&mut self) {
        self.tsval_generator = None;
        self.ts_clock = false;
    }

    /// xdpstack patch 20 (timestamps): the RTT an echo measures (RTTM, RFC 7323
    /// §4), in ms: the TSecr of an ACK that advances SND.UNA, not after now
    /// (as Linux's `tcp_rtt_tsopt_us`), from a socket that sent a SYN or
    /// data itself: one rebuilt from a SYN cookie did not send the SYN-ACK
    /// the final ACK echoes (whose TSval's low bits are options).
    fn ts_rtt(&self, now: Instant, repr: &TcpRepr) -> Option<u32> {
        let now_ts = self.tsval_at(now)?;
        self.snd_max?;
        let rtt = now_ts.wrapping_sub(repr.timestamp?.tsecr);
        ((rtt as i32) >= 0).then_some(rtt)
    }

    /// xdpstack patch 20 (timestamps): an ACK advancing SND.UNA to `ack` is an
    /// RTT sample: from its echo when timestamps are on (every such ACK,
    /// after retransmissions too: the echo dates the segment that filled
    /// the hole, RFC 7323 §4.3), else from upstream's one timed segment a
    /// round trip (Karn's algorithm).
    fn rtt_on_ack(&mut self, now: Instant, ack: TcpSeqNumber, repr: &TcpRepr) {
        match self.ts_rtt(now, repr) {
            Some(rtt) if ack > self.local_seq_no => self.rtte.on_ts_sample(rtt),
            _ => self.rtte.on_ack(now, ack),
        }
    }

    /// xdpstack patch 20 (timestamps): PAWS (RFC 7323 §5.3 R1): a segment
    /// whose TSval is older than TS.Recent is an old duplicate, unless
    /// TS.Recent is more than 24 days old (§5.5) or zero (as Linux: some
    /// stacks send 0 in their SYN).
    fn paws_reject(&self, now: Instant, repr: &TcpRepr) -> bool {
        let Some(ts) = repr.timestamp else {
            return false;
        };
        self.timestamp_enabled()
            && repr.control != TcpControl::Rst
            && self.last_remote_tsval != 0
            && (ts.tsval.wrapping_sub(self.last_remote_tsval) as i32) < 0
            && self.ts_recent_valid(now)
    }

    /// xdpstack patch 20 (timestamps): TS.Recent is set and less than 24 days
    /// old.
    fn ts_recent_valid(&self, now: Instant) -> bool {
        let now_s = now.secs() as u32;
        self.ts_recent_set && now_s.wrapping_sub(self.ts_recent_at) < PAWS_IDLE_SECS
    }

    /// xdpstack patch 20 (timestamps): TS.Recent from an acceptable segment
    /// (RFC 7323 §4.3 (2)): only one at or below Last.ACK.sent, so that the
    /// echo of a delayed ACK is the earliest unacknowledged TSval and
    /// out-of-order data does not move it.
    fn ts_recent_update(&mut self, now: Instant, repr: &TcpRepr) {
        let Some(ts) = repr.timestamp else {
            return;
        };
        if !self.timestamp_enabled() {
            return;
        }
        let below = self
            .remote_last_ack
            .is_none_or(|last_ack| repr.seq_number <= last_ack);
        // (A TS.Recent of 0 is replaced by any TSval, as Linux's
        // `tcp_paws_check`: some stacks send 0 in their SYN.)
        let newer = (ts.tsval.wrapping_sub(self.last_remote_tsval) as i32) >= 0
            || self.last_remote_tsval == 0
            || !self.ts_recent_valid(now);
        if below && newer {
            self.last_remote_tsval = ts.tsval;
            self.ts_recent_at = now.secs() as u32;
            self.ts_recent_set = true;
        }
    }

    /// Set an algorithm for congestion control.
    ///
    /// `CongestionControl::None` indicates that no congestion control is applied.
    /// Options `CongestionControl::Cubic` and `CongestionControl::Reno` are also available.
    /// To use Reno and Cubic, please enable the `socket-tcp-reno` and `socket-tcp-cubic` features
    /// in the `smoltcp` crate, respectively.
    ///
    /// `CongestionControl::Reno` is a classic congestion control algorithm valued for its simplicity.
    /// Despite having a lower algorithmic complexity than `Cubic`,
    /// it is less efficient in terms of bandwidth usage.
    ///
    /// `CongestionControl::Cubic` represents a modern congestion control algorithm designed to
    /// be more efficient and fair compared to `CongestionControl::Reno`.
    /// It is the default choice for Linux, Windows, and macOS.
    /// `CongestionControl::Cubic` relies on double precision (`f64`) floating point operations, which may cause issues in some contexts:
    /// * Small embedded processors (such as Cortex-M0, Cortex-M1, and Cortex-M3) do not have an FPU, and floating point operations consume significant amounts of CPU time and Flash space.
    /// * Interrupt handlers should almost always avoid floating-point operations.
    /// * Kernel-mode code on desktop processors usually avoids FPU operations to reduce the penalty of saving and restoring FPU registers.
    ///
    /// In all these cases, `CongestionControl::Reno` is a better choice of congestion control algorithm.
    pub fn set_congestion_control(&mut self, congestion_control: CongestionControl) {
        use congestion::*;

        self.congestion_controller = match congestion_control {
            CongestionControl::None => AnyController::None(no_control::NoControl),

            #[cfg(feature = "socket-tcp-reno")]
            CongestionControl::Reno => AnyController::Reno(reno::Reno::new()),

            #[cfg(feature = "socket-tcp-cubic")]
            CongestionControl::Cubic => AnyController::Cubic(cubic::Cubic::new()),

            CongestionControl::Bbr => AnyController::Bbr(alloc::boxed::Box::new(bbr::Bbr::new())),
        }
    }

    /// Return the current congestion control algorithm.
    pub fn congestion_control(&self) -> CongestionControl {
        use congestion::*;

        match self.congestion_controller {
            AnyController::None(_) => CongestionControl::None,

            #[cfg(feature = "socket-tcp-reno")]
            AnyController::Reno(_) => CongestionControl::Reno,

            #[cfg(feature = "socket-tcp-cubic")]
            AnyController::Cubic(_) => CongestionControl::Cubic,

            AnyController::Bbr(_) => CongestionControl::Bbr,
        }
    }

    /// Register a waker for receive operations.
    ///
    /// The waker is woken on state changes that might affect the return value
    /// of `recv` method calls, such as receiving data, or the socket closing.
    ///
    /// Notes:
    ///
    /// - Only one waker can be registered at a time. If another waker was previously registered,
    ///   it is overwritten and will no longer be woken.
    /// - The Waker is woken only once. Once woken, you must register it again to receive more wakes.
    /// - "Spurious wakes" are allowed: a wake doesn't guarantee the result of `recv` has
    ///   necessarily changed.
    #[cfg(feature = "async")]
    pub fn register_recv_waker(&mut self, waker: &Waker) {
        self.rx_waker.register(waker)
    }

    /// Register a waker for send operations.
    ///
    /// The waker is woken on state changes that might affect the return value
    /// of `send` method calls, such as space becoming available in the transmit
    /// buffer, or the socket closing.
    ///
    /// Notes:
    ///
    /// - Only one waker can be registered at a time. If another waker was previously registered,
    ///   it is overwritten and will no longer be woken.
    /// - The Waker is woken only once. Once woken, you must register it again to receive more wakes.
    /// - "Spurious wakes" are allowed: a wake doesn't guarantee the result of `send` has
    ///   necessarily changed.
    #[cfg(feature = "async")]
    pub fn register_send_waker(&mut self, waker: &Waker) {
        self.tx_waker.register(waker)
    }

    /// Return the timeout duration.
    ///
    /// See also the [set_timeout](#method.set_timeout) method.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Return the ACK delay duration.
    ///
    /// See also the [set_ack_delay](#method.set_ack_delay) method.
    pub fn ack_delay(&self) -> Option<Duration> {
        self.ack_delay
    }

    /// Return whether Nagle's Algorithm is enabled.
    ///
    /// See also the [set_nagle_enabled](#method.set_nagle_enabled) method.
    pub fn nagle_enabled(&self) -> bool {
        self.nagle
    }

    /// Pause sending of SYN|ACK packets.
    ///
    /// When this flag is set, the socket will get stuck in `SynReceived` state without sending
    /// any SYN|ACK packets back, until this flag is unset. This is useful for certain niche TCP
    /// proxy usecases.
    #[cfg(feature = "socket-tcp-pause-synack")]
    pub fn pause_synack(&mut self, pause: bool) {
        self.synack_paused = pause;
    }

    /// Return the current window field value, including scaling according to RFC 1323.
    ///
    /// Used in internal calculations as well as packet generation.
    #[inline]
    fn scaled_window(&self) -> u16 {
        u16::try_from(self.rx_window() >> self.remote_win_shift).unwrap_or(u16::MAX)
    }

    /// xdpstack patch: the receive window in bytes: the free storage
    /// (upstream), or with `rx_limit` set what the limit leaves beside the
    /// data held, never less than what was already advertised (rounded up
    /// to the window scale, as Linux's `tcp_select_window`).
    fn rx_window(&self) -> usize {
        if self.rx_limit == 0 {
            return self.rx_buffer.window();
        }
        let open = (self.rx_limit as usize).saturating_sub(self.rx_buffer.len());
        let next = self.remote_seq_no + self.rx_buffer.len();
        let promised = match self.rx_edge {
            Some(edge) if edge > next => {
                let unit = (1usize << self.remote_win_shift) - 1;
                ((edge - next) + unit) & !unit
            }
            _ => 0,
        };
        open.max(promised)
    }

    /// xdpstack patch: what the window scale is computed from.
    fn rx_scale_basis(&self) -> usize {
        match self.rx_window_max {
            0 => self.rx_buffer.capacity(),
            max => max as usize,
        }
    }

    /// xdpstack patch (buffers that grow): compute the advertised receive
    /// window from `limit` bytes (the autotuned receive buffer) instead of
    /// the storage's free space; `None` goes back to the storage. Clamped
    /// to [`set_recv_window_max`](Self::set_recv_window_max). Lowering it
    /// never moves an advertised right edge back.
    pub fn set_recv_limit(&mut self, limit: Option<usize>) {
        self.rx_limit = match limit {
            None => 0,
            Some(l) => {
                let max = match self.rx_window_max {
                    0 => 1 << 30,
                    m => m as usize,
                };
                l.clamp(1, max) as u32
            }
        };
    }

    /// xdpstack patch: the limit the receive window is computed from.
    pub fn recv_limit(&self) -> Option<usize> {
        match self.rx_limit {
            0 => None,
            l => Some(l as usize),
        }
    }

    /// xdpstack patch: the largest receive limit the connection may reach.
    /// The window scale of the next SYN or SYN-ACK is chosen from it, so set
    /// it before `listen` or `connect`. `None`: the storage's capacity.
    ///
    /// # Panics
    ///
    /// Panics when `max` is more than 1 GiB (RFC 7323: a shift of 14 at
    /// most), as `new` does for a buffer that large.
    pub fn set_recv_window_max(&mut self, max: Option<usize>) {
        let max = max.unwrap_or(0);
        if max > (1 << 30) {
            panic!("receive window too large, cannot exceed 1 GiB")
        }
        self.rx_window_max = max as u32;
        if self.rx_limit as usize > max && max > 0 {
            self.rx_limit = max as u32;
        }
        if self.state == State::Closed || self.state == State::Listen {
            let log2 = mem::size_of::<usize>() * 8 - self.rx_scale_basis().leading_zeros() as usize;
            self.remote_win_shift = log2.saturating_sub(16) as u8;
        }
    }

    /// xdpstack patch: the receive window scale (shift) in use.
    pub fn recv_window_shift(&self) -> u8 {
        self.remote_win_shift
    }

    /// xdpstack patch: the receive storage a segment of `len` bytes at
    /// `seq` needs, counted from the first unread byte, when that is more
    /// than the storage holds now (`None`: it fits, or brings no data this
    /// socket would keep). Only the part inside the advertised window
    /// counts. The owner grows the storage before handing the segment over;
    /// data that still does not fit is cut and counted
    /// ([`recv_storage_cut`](Self::recv_storage_cut)).
    pub fn recv_storage_needed(&self, seq: TcpSeqNumber, len: usize) -> Option<usize> {
        if len == 0
            || !matches!(
                self.state,
                State::SynReceived | State::Established | State::FinWait1 | State::FinWait2
            )
        {
            return None;
        }
        let start = self.remote_seq_no;
        let end = seq + len;
        if end <= start {
            return None;
        }
        let need = (end - start).min(self.rx_buffer.len() + self.rx_window());
        (need > self.rx_buffer.capacity()).then_some(need)
    }

    /// xdpstack patch: receive storage in use: data not read yet and,
    /// beyond it, out-of-order data.
    pub fn recv_storage_used(&self) -> usize {
        self.rx_buffer.len() + self.assembler.data_end()
    }

    /// xdpstack patch: segments whose data was cut because the receive
    /// storage could not hold it.
    pub fn recv_storage_cut(&self) -> u32 {
        self.rx_storage_cut
    }

    /// xdpstack patch: move the receive buffer into `storage` (data and
    /// out-of-order data kept) and return the old storage; `Err(storage)`
    /// when it cannot hold [`recv_storage_used`](Self::recv_storage_used).
    /// Empty storage is allowed when nothing is held: the window stays what
    /// the limit says, and the owner must grow the storage before a segment
    /// brings data (see [`recv_storage_needed`](Self::recv_storage_needed)).
    pub fn replace_recv_storage<S>(
        &mut self,
        storage: S,
    ) -> Result<managed::ManagedSlice<'a, u8>, managed::ManagedSlice<'a, u8>>
    where
        S: Into<managed::ManagedSlice<'a, u8>>,
    {
        let keep = self.recv_storage_used();
        self.rx_buffer.replace_storage(storage, keep)
    }

    /// xdpstack patch: move the send buffer (data not acknowledged yet) into
    /// `storage` and return the old storage; `Err(storage)` when it is too
    /// small. With empty storage nothing can be queued (`can_send` is false).
    pub fn replace_send_storage<S>(
        &mut self,
        storage: S,
    ) -> Result<managed::ManagedSlice<'a, u8>, managed::ManagedSlice<'a, u8>>
    where
        S: Into<managed::ManagedSlice<'a, u8>>,
    {
        let keep = self.tx_buffer.len();
        self.tx_buffer.replace_storage(storage, keep)
    }

    /// xdpstack patch: take both buffers' storage out (receive, send),
    /// discarding what they hold and any out-of-order data, and leave the
    /// socket with none. For a socket being released: until storage is put
    /// back it can only send segments without data (an RST, an ACK).
    pub fn take_storage(
        &mut self,
    ) -> (managed::ManagedSlice<'a, u8>, managed::ManagedSlice<'a, u8>) {
        self.rx_buffer.clear();
        self.tx_buffer.clear();
        self.assembler.clear();
        let none = || managed::ManagedSlice::Borrowed(&mut [][..]);
        let rx = self
            .rx_buffer
            .replace_storage(none(), 0)
            .unwrap_or_else(|s| s);
        let tx = self
            .tx_buffer
            .replace_storage(none(), 0)
            .unwrap_or_else(|s| s);
        (rx, tx)
    }

    /// xdpstack patch: the congestion window in bytes (`usize::MAX`
    /// without congestion control).
    pub fn congestion_window(&self) -> usize {
        self.congestion_controller.inner().window()
    }

    /// xdpstack patch: the peer's receive window (bytes, scaled).
    pub fn send_window(&self) -> usize {
        self.remote_win_len
    }

    /// xdpstack patch: the peer's MSS.
    pub fn remote_mss(&self) -> usize {
        self.remote_mss
    }

    /// xdpstack patch: the smoothed round-trip time, once measured.
    pub fn smoothed_rtt(&self) -> Option<Duration> {
        self.rtte
            .have_measurement
            .then(|| Duration::from_micros(u64::from(self.rtte.srtt_us)))
    }

    /// xdpstack patch 26 (RFC 9040 §4, temporal sharing): the retransmission
    /// timeout to use until this connection measures an RTT of its own, taken
    /// from an earlier connection with the same peer. Clamped to
    /// [200 ms, 1 s]: never longer than RFC 6298's initial RTO. It times the
    /// SYN-ACK (or SYN): a lost one is resent after about one RTO of the path
    /// instead of a second. No effect once a sample was taken. Set after
    /// `listen` or `connect`.
    pub fn set_initial_rto(&mut self, rto: Duration) {
        if !self.rtte.have_measurement {
            let ms = rto.total_millis().min(u64::from(RTTE_INITIAL_RTO)) as u32;
            self.rtte.rto = ms.max(RTTE_MIN_RTO);
        }
    }

    /// xdpstack patch 26: the retransmission timeout this connection measured
    /// (SRTT + 4 RTTVAR, at least 200 ms), not backed off: what a later
    /// connection to the same peer may start with
    /// ([`set_initial_rto`](Self::set_initial_rto)). `None` before a sample or
    /// while the timer is backed off.
    pub fn measured_rto(&self) -> Option<Duration> {
        (self.rtte.have_measurement && self.rtte.rto_count == 0)
            .then(|| Duration::from_millis(u64::from(self.rtte.rto)))
    }

    /// Return the last window field value, including scaling according to RFC 1323.
    ///
    /// Used in internal calculations as well as packet generation.
    ///
    /// Unlike `remote_last_win`, we take into account new packets received (but not acknowledged)
    /// since the last window update and adjust the window length accordingly. This ensures a fair
    /// comparison between the last window length and the new window length we're going to
    /// advertise.
    #[inline]
    fn last_scaled_window(&self) -> Option<u16> {
        let last_ack = self.remote_last_ack?;
        let next_ack = self.remote_seq_no + self.rx_buffer.len();

        let last_win = (self.remote_last_win as usize) << self.remote_win_shift;
        let last_win_adjusted = last_ack + last_win - next_ack;

        Some(u16::try_from(last_win_adjusted >> self.remote_win_shift).unwrap_or(u16::MAX))
    }

    /// Set the timeout duration.
    ///
    /// A socket with a timeout duration set will abort the connection if either of the following
    /// occurs:
    ///
    ///   * After a [connect](#method.connect) call, the remote endpoint does not respond within
    ///     the specified duration;
    ///   * After establishing a connection, there is data in the transmit buffer and the remote
    ///     endpoint exceeds the specified duration between any two packets it sends;
    ///   * After enabling [keep-alive](#method.set_keep_alive), the remote endpoint exceeds
    ///     the specified duration between any two packets it sends.
    pub fn set_timeout(&mut self, duration: Option<Duration>) {
        self.timeout = duration
    }

    /// Set the ACK delay duration.
    ///
    /// By default, the ACK delay is set to 10ms.
    pub fn set_ack_delay(&mut self, duration: Option<Duration>) {
        self.ack_delay = duration
    }

    /// Enable or disable Nagle's Algorithm.
    ///
    /// Also known as "tinygram prevention". By default, it is enabled.
    /// Disabling it is equivalent to Linux's TCP_NODELAY flag.
    ///
    /// When enabled, Nagle's Algorithm prevents sending segments smaller than MSS if
    /// there is data in flight (sent but not acknowledged). In other words, it ensures
    /// at most only one segment smaller than MSS is in flight at a time.
    ///
    /// It ensures better network utilization by preventing sending many very small packets,
    /// at the cost of increased latency in some situations, particularly when the remote peer
    /// has ACK delay enabled.
    pub fn set_nagle_enabled(&mut self, enabled: bool) {
        self.nagle = enabled
    }

    /// Return the keep-alive interval.
    ///
    /// See also the [set_keep_alive](#method.set_keep_alive) method.
    pub fn keep_alive(&self) -> Option<Duration> {
        self.keep_alive
    }

    /// Set the keep-alive interval.
    ///
    /// An idle socket with a keep-alive interval set will transmit a "keep-alive ACK" packet
    /// every time it receives no communication during that interval. As a result, three things
    /// may happen:
    ///
    ///   * The remote endpoint is fine and answers with an ACK packet.
    ///   * The remote endpoint has rebooted and answers with an RST packet.
    ///   * The remote endpoint has crashed and does not answer.
    ///
    /// The keep-alive functionality together with the timeout functionality allows to react
    /// to these error conditions.
    pub fn set_keep_alive(&mut self, interval: Option<Duration>) {
        self.keep_alive = interval;
        if self.keep_alive.is_some() {
            // If the connection is idle and we've just set the option, it would not take effect
            // until the next packet, unless we wind up the timer explicitly.
            self.timer.set_keep_alive();
        }
    }

    /// Return the time-to-live (IPv4) or hop limit (IPv6) value used in outgoing packets.
    ///
    /// See also the [set_hop_limit](#method.set_hop_limit) method
    pub fn hop_limit(&self) -> Option<u8> {
        self.hop_limit
    }

    /// Set the time-to-live (IPv4) or hop limit (IPv6) value used in outgoing packets.
    ///
    /// A socket without an explicitly set hop limit value uses the default [IANA recommended]
    /// value (64).
    ///
    /// # Panics
    ///
    /// This function panics if a hop limit value of 0 is given. See [RFC 1122 § 3.2.1.7].
    ///
    /// [IANA recommended]: https://www.iana.org/assignments/ip-parameters/ip-parameters.xhtml
    /// [RFC 1122 § 3.2.1.7]: https://tools.ietf.org/html/rfc1122#section-3.2.1.7
    pub fn set_hop_limit(&mut self, hop_limit: Option<u8>) {
        // A host MUST NOT send a datagram with a hop limit value of 0
        if let Some(0) = hop_limit {
            panic!("the time-to-live value of a packet must not be zero")
        }

        self.hop_limit = hop_limit
    }

    /// Return the listen endpoint
    #[inline]
    pub fn listen_endpoint(&self) -> IpListenEndpoint {
        self.listen_endpoint
    }

    /// Return the local endpoint, or None if not connected.
    #[inline]
    pub fn local_endpoint(&self) -> Option<IpEndpoint> {
        Some(self.tuple?.local)
    }

    /// Return the remote endpoint, or None if not connected.
    #[inline]
    pub fn remote_endpoint(&self) -> Option<IpEndpoint> {
        Some(self.tuple?.remote)
    }

    /// xdpstack patch: use `isn` as the initial sequence number of the next
    /// SYN this socket takes in LISTEN (set it after `listen`), instead of a
    /// random one. This is what a SYN cookie needs: the connection rebuilt
    /// from the final ACK continues the sequence space the cookie began.
    pub fn set_next_isn(&mut self, isn: Option<TcpSeqNumber>) {
        self.next_isn = isn;
        self.next_isn_unanswered = false;
    }

    /// xdpstack patch 19 (TIME-WAIT): use `isn` as the initial sequence
    /// number of the next SYN this socket takes in LISTEN (set it after
    /// `listen`), answered with a SYN-ACK as usual. A SYN that reopens a
    /// 4-tuple held in TIME-WAIT needs it: the new connection's sequence
    /// space must start above the old one's (RFC 1122 4.2.2.13), where a
    /// random ISN would be below it half of the time.
    pub fn set_next_isn_unanswered(&mut self, isn: TcpSeqNumber) {
        self.next_isn = Some(isn);
        self.next_isn_unanswered = true;
    }

    /// xdpstack patch 19 (TIME-WAIT): the sequence state a compact
    /// TIME-WAIT record keeps once the socket itself is released: what an
    /// ACK of ours would carry now (SND.NXT as `ack_only_seq` picks it,
    /// RCV.NXT, the window field as sent, already scaled) and the peer's
    /// last timestamp value when timestamps are in use.
    pub fn seq_state(&self) -> SeqState {
        SeqState {
            snd_nxt: self.ack_only_seq(),
            rcv_nxt: self.remote_seq_no + self.rx_buffer.len(),
            window: self.scaled_window(),
            ts_recent: self.tsval_generator.map(|_| self.last_remote_tsval),
        }
    }

    /// Return the connection state, in terms of the TCP state machine.
    #[inline]
    pub fn state(&self) -> State {
        self.state
    }

    fn reset(&mut self) {
        // xdpstack patch: the window scale expresses the largest window the
        // connection may advertise, not the storage it starts with.
        let rx_cap_log2 =
            mem::size_of::<usize>() * 8 - self.rx_scale_basis().leading_zeros() as usize;

        self.state = State::Closed;
        self.timer = Timer::new();
        self.rtte = RttEstimator::default();
        self.assembler = Assembler::new();
        // xdpstack patch (issue 19): no SACK memory across connections.
        self.local_rx_last_seq = None;
        self.rx_sack_recent = [None; 3];
        self.tx_buffer.clear();
        self.rx_buffer.clear();
        self.rx_fin_received = false;
        self.listen_endpoint = IpListenEndpoint::default();
        self.tuple = None;
        self.local_seq_no = TcpSeqNumber::default();
        self.remote_seq_no = TcpSeqNumber::default();
        self.remote_last_seq = TcpSeqNumber::default();
        self.remote_last_ack = None;
        self.remote_last_win = 0;
        self.remote_win_len = 0;
        self.remote_win_scale = None;
        self.remote_win_shift = rx_cap_log2.saturating_sub(16) as u8;
        self.remote_mss = DEFAULT_MSS;
        self.remote_last_ts = None;
        self.ack_delay_timer = AckDelayTimer::Idle;
        self.challenge_ack_timer = Instant::from_secs(0);
        // xdpstack patch: loss-recovery state does not outlive a connection
        // (the engine reuses sockets).
        self.recover = None;
        self.snd_max = None;
        // xdpstack patch 12: and the SACK recovery goes with it: its
        // sequence numbers belong to the old connection (reset to zero, they
        // sat "above" half the ISNs a new one can take, and its first ACK
        // entered fast recovery). Only its counters stay, until the owner
        // takes them (`take_recovery_stats`).
        self.rec = self
            .rec
            .take()
            .filter(|r| r.stats != RecoveryStats::default())
            .map(|r| alloc::boxed::Box::new(Recovery::counters_only(r.stats)));
        self.pending_fast_retransmit = false;
        self.tx_filled = false;
        self.tx_last_filled = false;
        // xdpstack patch 17 (ECN): negotiated anew by each connection.
        self.ecn = EcnState {
            enabled: self.ecn.enabled,
            ..EcnState::default()
        };
        self.local_rx_dup_acks = 0;
        self.local_rx_last_ack = None;
        self.rx_edge = None;
        self.rx_storage_cut = 0;
        // xdpstack patch 19 (TIME-WAIT): a chosen ISN a SYN never took does not carry
        // over to the next connection of a reused socket.
        self.next_isn = None;
        self.next_isn_unanswered = false;
        // xdpstack patch 20 (timestamps): TS.Recent belongs to the connection
        // (upstream kept it, and a reused socket echoed the old peer's).
        self.last_remote_tsval = 0;
        self.ts_recent_set = false;

        #[cfg(feature = "async")]
        {
            self.rx_waker.wake();
            self.tx_waker.wake();
        }
    }

    /// Start listening on the given endpoint.
    ///
    /// This function returns `Err(Error::InvalidState)` if the socket was already open
    /// (see [is_open](#method.is_open)), and `Err(Error::Unaddressable)`
    /// if the port in the given endpoint is zero.
    pub fn listen<T>(&mut self, local_endpoint: T) -> Result<(), ListenError>
    where
        T: Into<IpListenEndpoint>,
    {
        let local_endpoint = local_endpoint.into();
        if local_endpoint.port == 0 {
            return Err(ListenError::Unaddressable);
        }

        if self.is_open() {
            // If we were already listening to same endpoint there is nothing to do; exit early.
            //
            // In the past listening on an socket that was already listening was an error,
            // however this makes writing an acceptor loop with multiple sockets impossible.
            // Without this early exit, if you tried to listen on a socket that's already listening you'll
            // immediately get an error. The only way around this is to abort the socket first
            // before listening again, but this means that incoming connections can actually
            // get aborted between the abort() and the next listen().
            if matches!(self.state, State::Listen) && self.listen_endpoint == local_endpoint {
                return Ok(());
            } else {
                return Err(ListenError::InvalidState);
            }
        }

        self.reset();
        self.listen_endpoint = local_endpoint;
        self.tuple = None;
        self.set_state(State::Listen);
        Ok(())
    }

    /// Connect to a given endpoint.
    ///
    /// The local port must be provided explicitly. Assuming `fn get_ephemeral_port() -> u16`
    /// allocates a port between 49152 and 65535, a connection may be established as follows:
    ///
    /// ```no_run
    /// # #[cfg(all(
    /// #     feature = "medium-ethernet",
    /// #     feature = "proto-ipv4",
    /// # ))]
    /// # {
    /// # use smoltcp::socket::tcp::{Socket, SocketBuffer};
    /// # use smoltcp::iface::Interface;
    /// # use smoltcp::wire::IpAddress;
    /// #
    /// # fn get_ephemeral_port() -> u16 {
    /// #     49152
    /// # }
    /// #
    /// # let mut socket = Socket::new(
    /// #     SocketBuffer::new(vec![0; 1200]),
    /// #     SocketBuffer::new(vec![0; 1200])
    /// # );
    /// #
    /// # let mut iface: Interface = todo!();
    /// #
    /// socket.connect(
    ///     iface.context(),
    ///     (IpAddress::v4(10, 0, 0, 1), 80),
    ///     get_ephemeral_port()
    /// ).unwrap();
    /// # }
    /// ```
    ///
    /// The local address may optionally be provided.
    ///
    /// This function returns an error if the socket was open; see [is_open](#method.is_open).
    /// It also returns an error if the local or remote port is zero, or if the remote address
    /// is unspecified.
    pub fn connect<T, U>(
        &mut self,
        cx: &mut Context,
        remote_endpoint: T,
        local_endpoint: U,
    ) -> Result<(), ConnectError>
    where
        T: Into<IpEndpoint>,
        U: Into<IpListenEndpoint>,
    {
        let remote_endpoint: IpEndpoint = remote_endpoint.into();
        let local_endpoint: IpListenEndpoint = local_endpoint.into();

        if self.is_open() {
            return Err(ConnectError::InvalidState);
        }
        if remote_endpoint.port == 0 || remote_endpoint.addr.is_unspecified() {
            return Err(ConnectError::Unaddressable);
        }
        if local_endpoint.port == 0 {
            return Err(ConnectError::Unaddressable);
        }

        // If local address is not provided, choose it automatically.
        let local_endpoint = IpEndpoint {
            addr: match local_endpoint.addr {
                Some(addr) => {
                    if addr.is_unspecified() {
                        return Err(ConnectError::Unaddressable);
                    }
                    addr
                }
                None => cx
                    .get_source_address(&remote_endpoint.addr)
                    .ok_or(ConnectError::Unaddressable)?,
            },
            port: local_endpoint.port,
        };

        if local_endpoint.addr.version() != remote_endpoint.addr.version() {
            return Err(ConnectError::Unaddressable);
        }

        self.reset();
        self.tuple = Some(Tuple {
            local: local_endpoint,
            remote: remote_endpoint,
        });
        self.set_state(State::SynSent);

        let seq = Self::random_seq_no(cx);
        self.local_seq_no = seq;
        self.remote_last_seq = seq;
        Ok(())
    }

    #[cfg(test)]
    fn random_seq_no(_cx: &mut Context) -> TcpSeqNumber {
        TcpSeqNumber(10000)
    }

    #[cfg(not(test))]
    fn random_seq_no(cx: &mut Context) -> TcpSeqNumber {
        TcpSeqNumber(cx.rand().rand_u32() as i32)
    }

    /// Close the transmit half of the full-duplex connection.
    ///
    /// Note that there is no corresponding function for the receive half of the full-duplex
    /// connection; only the remote end can close it. If you no longer wish to receive any
    /// data and would like to reuse the socket right away, use [abort](#method.abort).
    pub fn close(&mut self) {
        match self.state {
            // In the LISTEN state there is no established connection.
            State::Listen => self.set_state(State::Closed),
            // In the SYN-SENT state the remote endpoint is not yet synchronized and, upon
            // receiving an RST, will abort the connection.
            State::SynSent => self.set_state(State::Closed),
            // In the SYN-RECEIVED, ESTABLISHED and CLOSE-WAIT states the transmit half
            // of the connection is open, and needs to be explicitly closed with a FIN.
            State::SynReceived | State::Established => self.set_state(State::FinWait1),
            State::CloseWait => self.set_state(State::LastAck),
            // In the FIN-WAIT-1, FIN-WAIT-2, CLOSING, LAST-ACK, TIME-WAIT and CLOSED states,
            // the transmit half of the connection is already closed, and no further
            // action is needed.
            State::FinWait1
            | State::FinWait2
            | State::Closing
            | State::TimeWait
            | State::LastAck
            | State::Closed => (),
        }
    }

    /// Aborts the connection, if any.
    ///
    /// This function instantly closes the socket. One reset packet will be sent to the remote
    /// endpoint.
    ///
    /// In terms of the TCP state machine, the socket may be in any state and is moved to
    /// the `CLOSED` state.
    pub fn abort(&mut self) {
        self.set_state(State::Closed);
    }

    /// Return whether the socket is passively listening for incoming connections.
    ///
    /// In terms of the TCP state machine, the socket must be in the `LISTEN` state.
    #[inline]
    pub fn is_listening(&self) -> bool {
        match self.state {
            State::Listen => true,
            _ => false,
        }
    }

    /// Return whether the socket is open.
    ///
    /// This function returns true if the socket will process incoming or dispatch outgoing
    /// packets. Note that this does not mean that it is possible to send or receive data through
    /// the socket; for that, use [can_send](#method.can_send) or [can_recv](#method.can_recv).
    ///
    /// In terms of the TCP state machine, the socket must not be in the `CLOSED`
    /// or `TIME-WAIT` states.
    #[inline]
    pub fn is_open(&self) -> bool {
        match self.state {
            State::Closed => false,
            State::TimeWait => false,
            _ => true,
        }
    }

    /// Return whether a connection is active.
    ///
    /// This function returns true if the socket is actively exchanging packets with
    /// a remote endpoint. Note that this does not mean that it is possible to send or receive
    /// data through the socket; for that, use [can_send](#method.can_send) or
    /// [can_recv](#method.can_recv).
    ///
    /// If a connection is established, [abort](#method.close) will send a reset to
    /// the remote endpoint.
    ///
    /// In terms of the TCP state machine, the socket must not be in the `CLOSED`, `TIME-WAIT`,
    /// or `LISTEN` state.
    #[inline]
    pub fn is_active(&self) -> bool {
        match self.state {
            State::Closed => false,
            State::TimeWait => false,
            State::Listen => false,
            _ => true,
        }
    }

    /// Return whether the transmit half of the full-duplex connection is open.
    ///
    /// This function returns true if it's possible to send data and have it arrive
    /// to the remote endpoint. However, it does not make any guarantees about the state
    /// of the transmit buffer, and even if it returns true, [send](#method.send) may
    /// not be able to enqueue any octets.
    ///
    /// In terms of the TCP state machine, the socket must be in the `ESTABLISHED` or
    /// `CLOSE-WAIT` state.
    #[inline]
    pub fn may_send(&self) -> bool {
        match self.state {
            State::Established => true,
            // In CLOSE-WAIT, the remote endpoint has closed our receive half of the connection
            // but we still can transmit indefinitely.
            State::CloseWait => true,
            _ => false,
        }
    }

    /// Return whether the receive half of the full-duplex connection is open.
    ///
    /// This function returns true if it's possible to receive data from the remote endpoint.
    /// It will return true while there is data in the receive buffer, and if there isn't,
    /// as long as the remote endpoint has not closed the connection.
    ///
    /// In terms of the TCP state machine, the socket must be in the `ESTABLISHED`,
    /// `FIN-WAIT-1`, or `FIN-WAIT-2` state, or have data in the receive buffer instead.
    #[inline]
    pub fn may_recv(&self) -> bool {
        match self.state {
            State::Established => true,
            // In FIN-WAIT-1/2, we have closed our transmit half of the connection but
            // we still can receive indefinitely.
            State::FinWait1 | State::FinWait2 => true,
            // If we have something in the receive buffer, we can receive that.
            _ if self.can_recv() => true,
            _ => false,
        }
    }

    /// Check whether the transmit half of the full-duplex connection is open
    /// (see [may_send](#method.may_send)), and the transmit buffer is not full.
    #[inline]
    pub fn can_send(&self) -> bool {
        if !self.may_send() {
            return false;
        }

        !self.tx_buffer.is_full()
    }

    /// Return the maximum number of bytes inside the recv buffer.
    #[inline]
    pub fn recv_capacity(&self) -> usize {
        self.rx_buffer.capacity()
    }

    /// Return the maximum number of bytes inside the transmit buffer.
    #[inline]
    pub fn send_capacity(&self) -> usize {
        self.tx_buffer.capacity()
    }

    /// Check whether the receive buffer is not empty.
    #[inline]
    pub fn can_recv(&self) -> bool {
        !self.rx_buffer.is_empty()
    }

    fn send_impl<'b, F, R>(&'b mut self, f: F) -> Result<R, SendError>
    where
        F: FnOnce(&'b mut SocketBuffer<'a>) -> (usize, R),
    {
        if !self.may_send() {
            return Err(SendError::InvalidState);
        }

        let old_length = self.tx_buffer.len();
        // xdpstack patch 28: is this write the start of an
        // application-limited period (less than a segment left unsent, room
        // in the window)? As Linux's `tcp_rate_check_app_limited`.
        let in_flight = self.flight_size();
        let app_limited = old_length.saturating_sub(in_flight) < self.remote_mss
            && in_flight < self.congestion_controller.inner().window();
        let room = self.tx_buffer.window();
        let (size, result) = f(&mut self.tx_buffer);
        let filled = size >= room;
        if size > 0 {
            // xdpstack patch 29: after a burst of writes that filled the
            // buffer, the next is not the application's bubble: it was
            // waiting for room (limited by the buffer, Linux's
            // TCP_CHRONO_SNDBUF_LIMITED). (Per burst: a writer of 64 KiB
            // chunks ends one chunk with a few hundred bytes and writes the
            // next at once.)
            // Marked application-limited, a 4 MiB buffer all in flight on a
            // 200 ms path gave only such samples, and BBR's Startup never
            // saw the bandwidth stop growing: it kept 4 MiB in flight over
            // a 3.75 MB pipe and queue, losing 2% for good.
            if app_limited
                && !self.tx_filled
                && let Some(rec) = self.rec.as_deref_mut()
                && rec.started
            {
                rec.check_app_limited(in_flight);
            }
            // The connection might have been idle for a long time, and so remote_last_ts
            // would be far in the past. Unless we clear it here, we'll abort the connection
            // down over in dispatch() by erroneously detecting it as timed out.
            if old_length == 0 {
                self.remote_last_ts = None
            }

            // if remote win is zero and we go from having no data to some data pending to
            // send, start the zero window probe timer.
            if self.remote_win_len == 0 && self.timer.is_idle() {
                let delay = self.rtte.retransmission_timeout();
                tcp_trace!("starting zero-window-probe timer for t+{}", delay);

                // We don't have access to the current time here, so use Instant::ZERO instead.
                // this will cause the first ZWP to be sent immediately, but that's okay.
                self.timer.set_for_zero_window_probe(Instant::ZERO, delay);
            }

            #[cfg(any(test, feature = "verbose"))]
            tcp_trace!(
                "tx buffer: enqueueing {} octets (now {})",
                size,
                old_length + size
            );
        }
        self.tx_last_filled = filled;
        self.tx_filled |= filled;
        Ok(result)
    }

    /// Call `f` with the largest contiguous slice of octets in the transmit buffer,
    /// and enqueue the amount of elements returned by `f`.
    ///
    /// This function returns `Err(Error::Illegal)` if the transmit half of
    /// the connection is not open; see [may_send](#method.may_send).
    pub fn send<'b, F, R>(&'b mut self, f: F) -> Result<R, SendError>
    where
        F: FnOnce(&'b mut [u8]) -> (usize, R),
    {
        self.send_impl(|tx_buffer| tx_buffer.enqueue_many_with(f))
    }

    /// Enqueue a sequence of octets to be sent, and fill it from a slice.
    ///
    /// This function returns the amount of octets actually enqueued, which is limited
    /// by the amount of free space in the transmit buffer; down to zero.
    ///
    /// See also [send](#method.send).
    pub fn send_slice(&mut self, data: &[u8]) -> Result<usize, SendError> {
        self.send_impl(|tx_buffer| {
            let size = tx_buffer.enqueue_slice(data);
            (size, size)
        })
    }

    fn recv_error_check(&mut self) -> Result<(), RecvError> {
        // We may have received some data inside the initial SYN, but until the connection
        // is fully open we must not dequeue any data, as it may be overwritten by e.g.
        // another (stale) SYN. (We do not support TCP Fast Open.)
        if !self.may_recv() {
            if self.rx_fin_received {
                return Err(RecvError::Finished);
            }
            return Err(RecvError::InvalidState);
        }

        Ok(())
    }

    fn recv_impl<'b, F, R>(&'b mut self, f: F) -> Result<R, RecvError>
    where
        F: FnOnce(&'b mut SocketBuffer<'a>) -> (usize, R),
    {
        self.recv_error_check()?;

        let _old_length = self.rx_buffer.len();
        let (size, result) = f(&mut self.rx_buffer);
        self.remote_seq_no += size;
        if size > 0 {
            #[cfg(any(test, feature = "verbose"))]
            tcp_trace!(
                "rx buffer: dequeueing {} octets (now {})",
                size,
                _old_length - size
            );
        }
        Ok(result)
    }

    /// Call `f` with the largest contiguous slice of octets in the receive buffer,
    /// and dequeue the amount of elements returned by `f`.
    ///
    /// This function errors if the receive half of the connection is not open.
    ///
    /// If the receive half has been gracefully closed (with a FIN packet), `Err(Error::Finished)`
    /// is returned. In this case, the previously received data is guaranteed to be complete.
    ///
    /// In all other cases, `Err(Error::Illegal)` is returned and previously received data (if any)
    /// may be incomplete (truncated).
    pub fn recv<'b, F, R>(&'b mut self, f: F) -> Result<R, RecvError>
    where
        F: FnOnce(&'b mut [u8]) -> (usize, R),
    {
        self.recv_impl(|rx_buffer| rx_buffer.dequeue_many_with(f))
    }

    /// Dequeue a sequence of received octets, and fill a slice from it.
    ///
    /// This function returns the amount of octets actually dequeued, which is limited
    /// by the amount of occupied space in the receive buffer; down to zero.
    ///
    /// See also [recv](#method.recv).
    pub fn recv_slice(&mut self, data: &mut [u8]) -> Result<usize, RecvError> {
        self.recv_impl(|rx_buffer| {
            let size = rx_buffer.dequeue_slice(data);
            (size, size)
        })
    }

    /// Peek at a sequence of received octets without removing them from
    /// the receive buffer, and return a pointer to it.
    ///
    /// This function otherwise behaves identically to [recv](#method.recv).
    pub fn peek(&mut self, size: usize) -> Result<&[u8], RecvError> {
        self.recv_error_check()?;

        let buffer = self.rx_buffer.get_allocated(0, size);
        if !buffer.is_empty() {
            #[cfg(any(test, feature = "verbose"))]
            tcp_trace!("rx buffer: peeking at {} octets", buffer.len());
        }
        Ok(buffer)
    }

    /// Peek at a sequence of received octets without removing them from
    /// the receive buffer, and fill a slice from it.
    ///
    /// This function otherwise behaves identically to [recv_slice](#method.recv_slice).
    pub fn peek_slice(&mut self, data: &mut [u8]) -> Result<usize, RecvError> {
        Ok(self.rx_buffer.read_allocated(0, data))
    }

    /// Return the amount of octets queued in the transmit buffer.
    ///
    /// Note that the Berkeley sockets interface does not have an equivalent of this API.
    pub fn send_queue(&self) -> usize {
        self.tx_buffer.len()
    }

    /// Number of octets transmitted but not yet ACKed.
    fn flight_size(&self) -> usize {
        self.remote_last_seq - self.local_seq_no
    }

    fn cwnd_remaining(&self) -> usize {
        self.congestion_controller
            .inner()
            .window()
            .saturating_sub(self.flight_size())
    }

    /// xdpstack patch 12: whether the SACK-based recovery (`sack.rs`) runs
    /// this connection's sender: the peer negotiated SACK and the connection
    /// is synchronized (SYN retransmissions keep the upstream path).
    fn sack_active(&self) -> bool {
        self.remote_has_sack
            && matches!(
                self.state,
                State::Established
                    | State::FinWait1
                    | State::FinWait2
                    | State::Closing
                    | State::CloseWait
                    | State::LastAck
                    | State::TimeWait
            )
    }

    /// SND.MAX: the highest sequence number sent.
    fn snd_max_seq(&self) -> TcpSeqNumber {
        self.snd_max
            .map_or(self.remote_last_seq, |m| m.max(self.remote_last_seq))
    }

    /// xdpstack patch 12: an ACK for a SACK peer. Feeds the scoreboard and
    /// the send times, counts delivered data, enters and leaves fast
    /// recovery (RFC 6675 with PRR, RFC 6937) and the loss state, and
    /// tells the congestion controller what it needs.
    fn sack_on_ack(
        &mut self,
        now: Instant,
        ack: TcpSeqNumber,
        ack_len: usize,
        repr: &TcpRepr,
        is_window_update: bool,
    ) {
        let old_una = self.local_seq_no;
        let una = ack.max(old_una);
        // xdpstack patch 12: the upstream check accepts an ACK of data queued
        // but never sent (it bounds the ACK by the send buffer, not SND.MAX);
        // SND.MAX moves up to it, as `process` moves SND.NXT after this (else
        // `snd_max - una` below panicked).
        let snd_max = self.snd_max_seq().max(una);
        let mss = self.remote_mss.max(1);
        let now_us = now.total_micros() as u32;
        let srtt_us = self.rtte.srtt_us().unwrap_or(0);
        let rtt_floor = srtt_us / 2;
        let ts_rtt = self.ts_rtt(now, repr);
        // xdpstack patch 17 (ECN): an ECN-Echo the window may be reduced for.
        let ece = repr.ecn.ece && self.ecn_may_reduce(una);
        let ecn_ok = self.ecn.ok;
        let mut cwr = false;
        self.start_recovery_state(old_una);
        let Some(rec) = self.rec.as_deref_mut() else {
            return;
        };
        let delivered = rec.on_ack(una, ack_len, snd_max, &repr.sack_ranges, now_us, rtt_floor);

        // A duplicate ACK (RFC 6675 §2): it SACKs new data, or (RFC 5681)
        // it is an empty segment that moves nothing and (xdpstack patch 12)
        // carries no SACK block: one whose blocks SACK nothing new (a D-SACK
        // for a duplicate segment) says nothing is missing.
        let dup = ack_len == 0
            && self.local_rx_last_ack == Some(ack)
            && ack < snd_max
            && (delivered > 0
                || (repr.payload.is_empty()
                    && !is_window_update
                    && repr.sack_ranges.iter().all(Option::is_none)));
        if dup {
            rec.dup_acks = rec.dup_acks.saturating_add(1);
        } else if ack_len > 0 {
            rec.dup_acks = 0;
        }
        self.local_rx_last_ack = Some(ack);
        if ack > old_una {
            // (The ACK of a SYN carries no data but is an RTT sample.)
            // xdpstack patch 20 (timestamps): from the echo when there is one.
            match ts_rtt {
                Some(rtt) => self.rtte.on_ts_sample(rtt),
                None => self.rtte.on_ack(now, ack),
            }
        }
        let new_flight = snd_max - una;
        // F-RTO step 2.b needs to know whether new data can go.
        let new_data =
            old_una + self.tx_buffer.len() > snd_max && old_una + self.remote_win_len > snd_max;
        // RFC 8985 §6.2 step 4: the reordering window after this ACK.
        rec.update_reo_wnd(una, snd_max);
        let reo_wnd = rec.reo_wnd(srtt_us, mss);
        let cc = self.congestion_controller.inner_mut();
        if let Some(rs) = rec.rate_sample() {
            let pipe = rec.pipe(una, snd_max);
            cc.on_rate_sample(now, rs, rec.delivered(), pipe);
        }
        // xdpstack patch 14: HyStart++ (RFC 9406) in the initial slow start,
        // from 16 segments of window on (as Linux's `hystart_low_window`);
        // in Conservative Slow Start whatever the window.
        if rec.phase == Phase::Open
            && cc.in_slow_start()
            && cc.ssthresh() == usize::MAX
            && (cc.window() >= 16 * mss || rec.in_css())
        {
            match rec.hystart() {
                sack::HyStart::Keep => {}
                sack::HyStart::EnterCss => {
                    net_debug!(
                        "hystart: the RTT grew at {}, conservative slow start",
                        cc.window()
                    );
                    cc.set_conservative(true);
                }
                sack::HyStart::ResumeSlowStart => {
                    net_debug!("hystart: the RTT fell back, slow start resumes");
                    cc.set_conservative(false);
                }
                sack::HyStart::EndSlowStart => {
                    net_debug!("hystart: slow start ends at {}", cc.window());
                    cc.end_slow_start();
                    rec.stats.hystart_exits = rec.stats.hystart_exits.wrapping_add(1);
                }
            }
        }
        match rec.phase {
            Phase::Open => {
                // xdpstack patch 15 (undo): D-SACKs that come after the episode
                // ended (the original arrived first, then the
                // retransmission) undo it too (Linux's `tcp_try_undo_dsack`
                // in the open state).
                if rec.may_undo() {
                    net_debug!("sack: every retransmission D-SACKed, undo");
                    Self::undo_reduction(cc, rec, una);
                }
                let lost = rec.detect(una, mss, reo_wnd, now_us);
                if lost || rec.dup_acks as usize >= sack::DUP_THRESH {
                    if !lost {
                        // DupThresh duplicate ACKs without SACK blocks: the
                        // first segment is lost (RFC 5681 fast retransmit).
                        rec.lost_end = una + mss.min(snd_max - una);
                    }
                    net_debug!("sack: loss detected below {}, fast recovery", rec.lost_end);
                    let flight = snd_max - old_una;
                    Self::begin_fast_recovery(cc, rec, now, una, snd_max, flight, delivered, mss);
                    cwr = ecn_ok;
                } else if ece && cc.reduces_on_loss() {
                    // xdpstack patch (ECN, RFC 3168 §6.1.2): congestion
                    // without loss: the window is reduced as for a loss, by
                    // PRR, resending nothing.
                    net_debug!("ecn: ECE, window reduction");
                    cc.on_loss(now, snd_max - old_una);
                    let ssthresh = cc.ssthresh();
                    rec.enter_cwr(una, snd_max, ssthresh, delivered, mss);
                    cwr = true;
                } else {
                    // (xdpstack patch 17 (ECN): BBR keeps its model, as Linux's
                    // BBR v1 does, but still tells the receiver with CWR.)
                    cwr = ece;
                    cc.on_ack(now, ack_len, new_flight, &self.rtte);
                }
            }
            Phase::Cwr => {
                let lost = rec.detect(una, mss, reo_wnd, now_us);
                if lost || rec.dup_acks as usize >= sack::DUP_THRESH {
                    if !lost {
                        rec.lost_end = una + mss.min(snd_max - una);
                    }
                    net_debug!("sack: loss below {} while reducing for ECE", rec.lost_end);
                    Self::cwr_to_fast_recovery(rec, una, snd_max, delivered, mss);
                } else if rec.leave_if_done(una) {
                    cc.on_recovery_exit();
                    cc.on_ack(now, ack_len, new_flight, &self.rtte);
                } else {
                    rec.prr(una, snd_max, delivered, mss);
                }
            }
            Phase::Recovery => {
                if rec.leave_if_done(una) {
                    if rec.may_undo() {
                        // Linux's `tcp_try_undo_recovery`: every
                        // retransmission was D-SACKed by the end.
                        net_debug!("sack: recovery was spurious, undo");
                        Self::undo_reduction(cc, rec, una);
                    } else {
                        // The controller deflates to ssthresh on this ACK.
                        cc.on_recovery_exit();
                        cc.on_ack(now, ack_len, new_flight, &self.rtte);
                    }
                } else if rec.may_undo() {
                    // RFC 3708 / Linux's `tcp_try_undo_dsack`: D-SACKs
                    // reported every retransmission of this recovery as a
                    // duplicate: the loss was reordering.
                    net_debug!("sack: every retransmission D-SACKed, undo");
                    Self::undo_reduction(cc, rec, una);
                } else if !cc.reduces_on_loss() {
                    rec.detect(una, mss, reo_wnd, now_us);
                    let pipe = rec.pipe(una, snd_max);
                    cc.on_ack(now, ack_len, pipe, &self.rtte);
                } else {
                    rec.detect(una, mss, reo_wnd, now_us);
                    rec.prr(una, snd_max, delivered, mss);
                }
            }
            Phase::Loss => {
                // xdpstack patch 15 (undo): Linux's `tcp_process_loss`.
                rec.frto_ack();
                let advanced = ack_len > 0;
                if (advanced && rec.may_undo()) || (rec.frto && rec.orig_acked()) {
                    // Every retransmission D-SACKed, or (F-RTO step 3.b)
                    // data sent before the timeout and never resent was
                    // delivered: the timeout was spurious (Linux's
                    // `tcp_try_undo_loss`).
                    net_debug!("sack: spurious timeout, undo");
                    Self::undo_reduction(cc, rec, una);
                    cc.on_ack(now, ack_len, new_flight, &self.rtte);
                } else {
                    if rec.frto {
                        if snd_max > rec.point {
                            // Step 3.a: new data sent after the timeout
                            // was SACKed ahead of what the timeout resent,
                            // or a duplicate ACK: the loss was real.
                            if rec.sacked_now > 0 || dup {
                                rec.frto = false;
                            }
                        } else if advanced && una < rec.point {
                            // Step 2.b: the first ACK after the timeout
                            // advanced SND.UNA: send new data rather than
                            // more retransmissions, if there is some the
                            // peer's window takes; else the conventional
                            // recovery goes on.
                            if new_data {
                                rec.frto_send_new();
                            } else {
                                rec.frto = false;
                            }
                        }
                    }
                    cc.on_ack(now, ack_len, new_flight, &self.rtte);
                    if rec.leave_if_done(una) {
                        if rec.may_undo() {
                            Self::undo_reduction(cc, rec, una);
                        } else {
                            cc.on_recovery_exit();
                        }
                    } else {
                        rec.detect(una, mss, reo_wnd, now_us);
                    }
                }
            }
        }
        if ack_len > 0 || una >= snd_max {
            rec.tlp_at = None;
        }
        // xdpstack patch 29: RACK's reordering timer for what this ACK did
        // not find lost yet.
        rec.arm_reo(una, reo_wnd, now_us);
        if cwr {
            self.ecn.cwr_pending = true;
        }
    }

    /// xdpstack patch 29: when RACK's reordering timer fires, if armed.
    fn reo_deadline(&self, now: Instant) -> Option<Instant> {
        if !self.sack_active() {
            return None;
        }
        let at = self.rec.as_deref()?.reo_at?;
        let d = at.wrapping_sub(now.total_micros() as u32) as i32;
        Some(now + Duration::from_micros(d.max(0) as u64))
    }

    /// xdpstack patch 29: RACK's reordering timer fired (RFC 8985 §6.3,
    /// Linux's `tcp_rack_reo_timeout`): detect losses again at this time;
    /// any found start a fast recovery as an ACK finding them would, and
    /// go out now. Before, a segment sent in one burst with data delivered
    /// after it was found lost only by the next ACK, a tail loss probe or
    /// the RTO: a 10 KiB response with its 6th segment lost and the last
    /// two SACKed waited 200 ms for the RTO at a 2 ms RTT.
    fn rack_reo_timeout(&mut self, now: Instant) {
        let una = self.local_seq_no;
        let snd_max = self.snd_max_seq();
        let mss = self.remote_mss.max(1);
        let now_us = now.total_micros() as u32;
        let srtt_us = self.rtte.srtt_us().unwrap_or(0);
        let ecn_ok = self.ecn.ok;
        let cc = self.congestion_controller.inner_mut();
        let Some(rec) = self.rec.as_deref_mut() else {
            return;
        };
        rec.reo_at = None;
        let reo_wnd = rec.reo_wnd(srtt_us, mss);
        let lost = rec.detect(una, mss, reo_wnd, now_us);
        if lost {
            match rec.phase {
                Phase::Open => {
                    net_debug!("rack: reordering timer, loss below {}", rec.lost_end);
                    Self::begin_fast_recovery(cc, rec, now, una, snd_max, snd_max - una, 0, mss);
                    rec.tlp_at = None;
                    if ecn_ok {
                        self.ecn.cwr_pending = true;
                    }
                }
                Phase::Cwr => Self::cwr_to_fast_recovery(rec, una, snd_max, 0, mss),
                Phase::Recovery => {
                    // What was found lost left the pipe: PRR lets it out
                    // now (Linux's `tcp_xmit_retransmit_queue` here).
                    rec.prr(una, snd_max, 0, mss);
                }
                Phase::Loss => {}
            }
        }
        rec.arm_reo(una, reo_wnd, now_us);
    }

    /// xdpstack patch 12: loss found in the open state: fast recovery
    /// begins (an ACK's detection or, patch 29, RACK's reordering timer):
    /// the undo point and the controller's state are kept, the window is cut
    /// for `flight` bytes, and PRR starts with what this event `delivered`.
    #[allow(clippy::too_many_arguments)]
    fn begin_fast_recovery(
        cc: &mut dyn congestion::Controller,
        rec: &mut Recovery,
        now: Instant,
        una: TcpSeqNumber,
        snd_max: TcpSeqNumber,
        flight: usize,
        delivered: usize,
        mss: usize,
    ) {
        if rec.start_undo(una) {
            rec.prior = Some(cc.prior());
        }
        cc.on_loss(now, flight);
        let ssthresh = cc.ssthresh();
        rec.enter_recovery(una, snd_max, ssthresh, delivered, mss);
    }

    /// xdpstack patch 17 (ECN): loss found while reducing for ECE: the same
    /// reduction goes on as a fast recovery, the first retransmission
    /// allowed whatever PRR says.
    fn cwr_to_fast_recovery(
        rec: &mut Recovery,
        una: TcpSeqNumber,
        snd_max: TcpSeqNumber,
        delivered: usize,
        mss: usize,
    ) {
        rec.cwr_to_recovery(una, snd_max, mss);
        rec.prr(una, snd_max, delivered, mss);
        if rec.allow < mss {
            rec.allow = mss;
        }
    }

    /// xdpstack patch 15 (undo): the loss episode was spurious: the controller
    /// gets back what it had before the cut, and the recovery state leaves
    /// recovery or the loss state.
    fn undo_reduction(cc: &mut dyn congestion::Controller, rec: &mut Recovery, una: TcpSeqNumber) {
        if let Some(prior) = rec.prior {
            cc.undo(&prior);
        }
        rec.undone(una);
    }

    /// xdpstack patch 12: how much new data or retransmission the
    /// congestion state lets out now: PRR's count in fast recovery, the
    /// window less `pipe` in the loss state, else the window less the
    /// flight.
    fn send_allowance(&self) -> usize {
        let cc = self.congestion_controller.inner();
        match self.rec.as_deref() {
            Some(r)
                if matches!(r.phase, Phase::Recovery | Phase::Cwr)
                    && self.sack_active()
                    && cc.reduces_on_loss() =>
            {
                r.allow
            }
            Some(r) if r.phase != Phase::Open && self.sack_active() => {
                let pipe = r.pipe(self.local_seq_no, self.snd_max_seq());
                self.congestion_controller
                    .inner()
                    .window()
                    .saturating_sub(pipe)
            }
            _ => self.cwnd_remaining(),
        }
    }

    /// xdpstack patch 12: the next lost range to retransmit, if the
    /// congestion state lets one out.
    fn sack_next_rtx(&self) -> Option<(TcpSeqNumber, TcpSeqNumber)> {
        if !self.sack_active() {
            return None;
        }
        let r = self.rec.as_deref()?;
        let hole = r.next_lost(self.local_seq_no, self.snd_max_seq())?;
        (self.send_allowance() > 0).then_some(hole)
    }

    /// xdpstack patch 12: whether the tail loss probe timer has fired.
    fn tlp_due(&self, now: Instant) -> bool {
        self.tlp_deadline().is_some_and(|t| now >= t)
    }

    /// xdpstack patch 12: when the armed tail loss probe fires, if one is.
    fn tlp_deadline(&self) -> Option<Instant> {
        if !self.sack_active() {
            return None;
        }
        let r = self.rec.as_deref()?;
        if matches!(r.phase, Phase::Open | Phase::Cwr) && !r.tlp_sent {
            r.tlp_at
        } else {
            None
        }
    }

    /// xdpstack patch 12: arm the tail loss probe (RFC 8985 §7.2) after a
    /// send or an ACK: PTO = 2·SRTT, at least 10 ms (Linux's floor), plus
    /// 200 ms when one segment is in flight (a delayed ACK), and no later
    /// than the retransmission timer.
    fn arm_tlp(&mut self, now: Instant) {
        if !self.sack_active() {
            return;
        }
        let una = self.local_seq_no;
        let snd_max = self.snd_max_seq();
        let mss = self.remote_mss.max(1);
        let Some(srtt) = self.rtte.srtt_us() else {
            return;
        };
        let rto_at = match self.timer {
            Timer::Retransmit { expires_at } => Some(expires_at),
            _ => None,
        };
        let Some(rec) = self.rec.as_deref_mut() else {
            return;
        };
        if !matches!(rec.phase, Phase::Open | Phase::Cwr) || rec.tlp_sent || snd_max <= una {
            rec.tlp_at = None;
            return;
        }
        let mut pto = Duration::from_micros(u64::from(srtt.saturating_mul(2).max(10_000)));
        if snd_max - una <= mss {
            pto += Duration::from_millis(200);
        }
        let at = now + pto;
        // xdpstack patch 12 (RFC 8985 §7.2): when the RTO would fire first,
        // the probe goes at its time, in its place (`dispatch`).
        rec.tlp_at = Some(match rto_at {
            Some(rto) if rto < at => rto,
            _ => at,
        });
    }

    /// xdpstack patch 12: a data segment `[seq, seq + len)` went out.
    fn sack_on_send(&mut self, now: Instant, seq: TcpSeqNumber, len: usize, sent: Sent) {
        let una = self.local_seq_no;
        let now_us = now.total_micros() as u32;
        self.start_recovery_state(una);
        let Some(rec) = self.rec.as_deref_mut() else {
            return;
        };
        let end = seq + len;
        match sent {
            Sent::New | Sent::ProbeNew => {
                let idle = seq <= una;
                // (xdpstack patch 29: not when the buffer is full and the
                // application waits for room.)
                let app_limited = end >= una + self.tx_buffer.len() && !self.tx_filled;
                rec.on_send_new(end, now_us, idle, app_limited)
            }
            Sent::Retransmit | Sent::Probe => {
                if end > rec.high_rxt && sent == Sent::Retransmit {
                    rec.high_rxt = end;
                }
                if sent == Sent::Retransmit && end > rec.ever_rtx {
                    rec.ever_rtx = end;
                }
                rec.on_send_rtx(seq, end, now_us);
            }
        }
        if matches!(sent, Sent::Probe | Sent::ProbeNew) {
            rec.tlp_sent = true;
            rec.tlp_at = None;
            rec.stats.probes = rec.stats.probes.wrapping_add(1);
            // xdpstack patch 12 (RFC 8985 §7.3): the RTO runs again from the
            // probe, the last resort if it fails. (It ran from the first
            // segment in flight: with a PTO of 2·SRTT it could fire before
            // the probe's ACK came back, a spurious timeout after every
            // probe.)
            let rto = self.rtte.retransmission_timeout();
            self.timer.set_for_retransmit(now, rto);
        }
        if matches!(rec.phase, Phase::Recovery | Phase::Cwr) {
            rec.on_recovery_send(len);
        }
        if matches!(sent, Sent::Retransmit | Sent::Probe) {
            // Karn: no RTT sample from a retransmitted range.
            self.rtte.on_retransmit();
        }
    }

    /// Counters of the SACK-based loss recovery (xdpstack patch 12) since
    /// they were last taken; zero for peers without SACK, whose losses the
    /// upstream NewReno path handles. They outlive `reset`, so an owner that
    /// reuses sockets takes them when a connection ends.
    pub fn recovery_stats(&self) -> RecoveryStats {
        self.rec.as_deref().map(|r| r.stats).unwrap_or_default()
    }

    /// xdpstack patch 12: the recovery state for this connection, created
    /// at its first use (carrying the counters a reset kept).
    fn start_recovery_state(&mut self, una: TcpSeqNumber) {
        if self.rec.as_deref().is_some_and(|r| r.started) {
            return;
        }
        let stats = self.rec.as_deref().map(|r| r.stats).unwrap_or_default();
        let mut rec = Recovery::new(una);
        rec.stats = stats;
        self.rec = Some(alloc::boxed::Box::new(rec));
    }

    /// xdpstack patch 17 (ECN): the counters, created (counters only) if the
    /// connection has no recovery state yet.
    fn stats_mut(&mut self) -> &mut RecoveryStats {
        let rec = self.rec.get_or_insert_with(|| {
            alloc::boxed::Box::new(Recovery::counters_only(RecoveryStats::default()))
        });
        &mut rec.stats
    }

    /// xdpstack patch 17 (ECN): accept Explicit Congestion Notification (RFC
    /// 3168) when a connecting peer's SYN asks for it (ECE and CWR set), as
    /// Linux's `net.ipv4.tcp_ecn = 2`; on by default. The socket never asks
    /// for it in a SYN of its own. Takes effect at the next SYN.
    pub fn set_ecn_enabled(&mut self, enabled: bool) {
        self.ecn.enabled = enabled;
    }

    /// xdpstack patch 17 (ECN): whether ECN is accepted when asked.
    pub fn ecn_enabled(&self) -> bool {
        self.ecn.enabled
    }

    /// xdpstack patch 17 (ECN): whether this connection negotiated ECN.
    pub fn ecn_negotiated(&self) -> bool {
        self.ecn.ok
    }

    /// xdpstack patch 17 (ECN): whether an ECN-Echo may reduce the window now:
    /// ECN negotiated, and no CWR waiting to go out or unacknowledged (the
    /// receiver echoes the congestion of one window until it sees CWR).
    fn ecn_may_reduce(&self, una: TcpSeqNumber) -> bool {
        self.ecn.ok && !self.ecn.cwr_pending && self.ecn.cwr_seq.is_none_or(|s| una > s)
    }

    /// As [`recovery_stats`](Self::recovery_stats), and zero them.
    pub fn take_recovery_stats(&mut self) -> RecoveryStats {
        self.rec
            .as_deref_mut()
            .map(|r| core::mem::take(&mut r.stats))
            .unwrap_or_default()
    }

    /// xdpstack patch 18 (path MTU): an ICMP "fragmentation needed"
    /// (RFC 1191) or ICMPv6 "packet too big" (RFC 8201) quoting a segment of
    /// this connection with sequence number `seq` says the path carries IP
    /// packets of at most `mtu` bytes. The caller has checked the message
    /// (its addresses and ports are this connection's, `mtu` is clamped to
    /// the family's floor); this checks `seq` against SND.UNA..=SND.MAX
    /// (RFC 5927 §4.1) and lowers the send MSS to `mtu` less the IP and TCP
    /// headers (timestamps are taken off when segments are built). What is
    /// in flight was too big and is resent at once at the new size, as
    /// Linux's `tcp_simple_retransmit` does: a SACK peer's loss state resends
    /// every unSACKed byte, a peer without SACK has SND.NXT rewound to
    /// SND.UNA. The congestion window is left alone: the path did not
    /// signal congestion (it counts bytes here, so it holds more of the
    /// smaller segments, where Linux's counts segments).
    pub fn on_packet_too_big(&mut self, seq: TcpSeqNumber, mtu: usize) -> PathMtu {
        let Some(tuple) = self.tuple else {
            return PathMtu::OutOfWindow;
        };
        let (una, snd_max) = (self.local_seq_no, self.snd_max_seq());
        if seq < una || seq > snd_max {
            return PathMtu::OutOfWindow;
        }
        let ip_header_len = match tuple.local.addr {
            #[cfg(feature = "proto-ipv4")]
            IpAddress::Ipv4(_) => crate::wire::IPV4_HEADER_LEN,
            #[cfg(feature = "proto-ipv6")]
            IpAddress::Ipv6(_) => crate::wire::IPV6_HEADER_LEN,
        };
        let mss = mtu
            .saturating_sub(ip_header_len + TCP_HEADER_LEN)
            .max(MIN_REMOTE_MSS);
        if mss >= self.remote_mss {
            return PathMtu::NotLower;
        }
        net_debug!("path mtu {}: mss {} -> {}", mtu, self.remote_mss, mss);
        self.remote_mss = mss;
        self.congestion_controller.inner_mut().set_mss(mss);
        let synchronized = matches!(
            self.state,
            State::Established
                | State::FinWait1
                | State::Closing
                | State::CloseWait
                | State::LastAck
        );
        if synchronized && snd_max > una {
            if self.sack_active() {
                self.start_recovery_state(una);
                if let Some(rec) = self.rec.as_deref_mut() {
                    rec.enter_loss_mtu(una, snd_max);
                }
            } else {
                // Go back to SND.UNA, as after a timeout, with no window
                // reduction and no timer backoff.
                self.remote_last_seq = una;
                self.recover = None;
                self.pending_fast_retransmit = false;
            }
            // Karn: no RTT sample from what is resent.
            self.rtte.on_retransmit();
        }
        PathMtu::Lowered(mss)
    }

    /// Return the amount of octets queued in the receive buffer. This value can be larger than
    /// the slice read by the next `recv` or `peek` call because it includes all queued octets,
    /// and not only the octets that may be returned as a contiguous slice.
    ///
    /// Note that the Berkeley sockets interface does not have an equivalent of this API.
    pub fn recv_queue(&self) -> usize {
        self.rx_buffer.len()
    }

    fn set_state(&mut self, state: State) {
        if self.state != state {
            tcp_trace!("state={}=>{}", self.state, state);
        }

        self.state = state;

        #[cfg(feature = "async")]
        {
            // Wake all tasks waiting. Even if we haven't received/sent data, this
            // is needed because return values of functions may change depending on the state.
            // For example, a pending read has to fail with an error if the socket is closed.
            self.rx_waker.wake();
            self.tx_waker.wake();
        }
    }

    pub(crate) fn reply(ip_repr: &IpRepr, repr: &TcpRepr) -> (IpRepr, TcpRepr<'static>) {
        let reply_repr = TcpRepr {
            src_port: repr.dst_port,
            dst_port: repr.src_port,
            control: TcpControl::None,
            seq_number: TcpSeqNumber(0),
            ack_number: None,
            window_len: 0,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None, None, None],
            timestamp: None,
            ecn: Default::default(),
            payload: &[],
        };
        let ip_reply_repr = IpRepr::new(
            ip_repr.dst_addr(),
            ip_repr.src_addr(),
            IpProtocol::Tcp,
            reply_repr.buffer_len(),
            64,
        );
        (ip_reply_repr, reply_repr)
    }

    pub(crate) fn rst_reply(ip_repr: &IpRepr, repr: &TcpRepr) -> (IpRepr, TcpRepr<'static>) {
        debug_assert!(repr.control != TcpControl::Rst);

        let (ip_reply_repr, mut reply_repr) = Self::reply(ip_repr, repr);

        // See https://www.snellman.net/blog/archive/2016-02-01-tcp-rst/ for explanation
        // of why we sometimes send an RST and sometimes an RST|ACK
        reply_repr.control = TcpControl::Rst;
        reply_repr.seq_number = repr.ack_number.unwrap_or_default();
        if repr.control == TcpControl::Syn && repr.ack_number.is_none() {
            reply_repr.ack_number = Some(repr.seq_number + repr.segment_len());
        }

        (ip_reply_repr, reply_repr)
    }

    fn ack_reply(
        &mut self,
        cx: &Context,
        ip_repr: &IpRepr,
        repr: &TcpRepr,
    ) -> (IpRepr, TcpRepr<'static>) {
        self.ack_reply_dsack(cx, ip_repr, repr, None)
    }

    /// xdpstack patch (issue 19): [`ack_reply`](Self::ack_reply) whose SACK
    /// option begins with a D-SACK block (RFC 2883) reporting `dsack`, the
    /// duplicate data `repr` brought.
    fn ack_reply_dsack(
        &mut self,
        cx: &Context,
        ip_repr: &IpRepr,
        repr: &TcpRepr,
        dsack: Option<(TcpSeqNumber, TcpSeqNumber)>,
    ) -> (IpRepr, TcpRepr<'static>) {
        let (mut ip_reply_repr, mut reply_repr) = Self::reply(ip_repr, repr);
        // xdpstack patch 20 (timestamps): once negotiated, on every segment,
        // echoing TS.Recent (RFC 7323 §4.3: for out-of-order or old data,
        // not the TSval it carried); upstream echoed the segment's own
        // TSval and sent none in reply to a segment without one.
        reply_repr.timestamp = self.ts_option(cx.now());

        // From RFC 793:
        // [...] an empty acknowledgment segment containing the current send-sequence number
        // and an acknowledgment indicating the next sequence number expected
        // to be received.
        reply_repr.seq_number = self.ack_only_seq();
        reply_repr.ack_number = Some(self.remote_seq_no + self.rx_buffer.len());
        self.remote_last_ack = reply_repr.ack_number;
        // xdpstack patch 17 (ECN): the echo of congestion, until CWR.
        reply_repr.ecn.ece = self.ecn.ok && self.ecn.ece;

        // From RFC 1323:
        // The window field [...] of every outgoing segment, with the exception of SYN
        // segments, is right-shifted by [advertised scale value] bits[...]
        reply_repr.window_len = self.scaled_window();
        self.remote_last_win = reply_repr.window_len;
        // xdpstack patch (issue 19): an immediate ACK advertises a right
        // edge too; recorded, or a later window (a lower limit, rounding to
        // the window scale) moves it back and segments the peer sent inside
        // it are dropped as out of the window.
        if let Some(ack) = reply_repr.ack_number {
            let edge = ack + ((reply_repr.window_len as usize) << self.remote_win_shift);
            if self.rx_edge.is_none_or(|e| edge > e) {
                self.rx_edge = Some(edge);
            }
        }

        // If the remote supports selective acknowledgement, add the option to the outgoing
        // segment.
        // xdpstack patch (issue 19): up to three blocks, the D-SACK one first
        // (see `sack_ranges`); upstream sent one block, and none for
        // duplicates.
        if let Some(ack) = reply_repr.ack_number {
            reply_repr.sack_ranges = self.sack_ranges(ack, dsack);
        }

        // Since the sACK option may have changed the length of the payload, update that.
        ip_reply_repr.set_payload_len(reply_repr.buffer_len());
        (ip_reply_repr, reply_repr)
    }

    /// xdpstack patch (issue 19): the SACK blocks (RFC 2018) of an ACK
    /// acknowledging `ack` (RCV.NXT), none unless the peer offered SACK.
    /// With `dsack`, a D-SACK block (RFC 2883) reporting duplicate data comes
    /// first. Then, as RFC 2018 section 4 asks, the block holding the
    /// segment received last (unless that segment advanced RCV.NXT), then
    /// the blocks reported most recently, then any other, lowest first: three
    /// blocks at most (they fit beside the timestamp option), never one at
    /// or below RCV.NXT but the D-SACK one. The order is remembered
    /// (`rx_sack_recent`) for the next ACK. Upstream sent one block, only on
    /// the immediate ACKs of `ack_reply`.
    fn sack_ranges(
        &mut self,
        ack: TcpSeqNumber,
        dsack: Option<(TcpSeqNumber, TcpSeqNumber)>,
    ) -> [Option<(u32, u32)>; 3] {
        let mut ranges = [None; 3];
        if !self.remote_has_sack {
            return ranges;
        }
        let mut n = 0;
        if let Some((left, right)) = dsack {
            ranges[0] = Some((left.0 as u32, right.0 as u32));
            n = 1;
        }
        let mut recent: [Option<(TcpSeqNumber, TcpSeqNumber)>; 3] = [None; 3];
        if !self.assembler.is_empty() {
            let assembler = &self.assembler;
            // The assembler's offsets count from RCV.NXT: all its blocks
            // are above it.
            let blocks = || assembler.iter_data().map(|(l, r)| (ack + l, ack + r));
            let holding = |seq: TcpSeqNumber| blocks().find(|&(l, r)| l <= seq && seq < r);
            let wanted = core::iter::once(self.local_rx_last_seq)
                .chain(self.rx_sack_recent)
                .flatten()
                .filter_map(holding)
                .chain(blocks());
            let mut m = 0;
            for block in wanted {
                if m == recent.len() {
                    break;
                }
                if !recent[..m].contains(&Some(block)) {
                    recent[m] = Some(block);
                    m += 1;
                }
            }
        }
        for (slot, block) in ranges[n..].iter_mut().zip(recent.iter().flatten()) {
            *slot = Some((block.0.0 as u32, block.1.0 as u32));
        }
        self.rx_sack_recent = recent.map(|b| b.map(|(left, _)| left));
        ranges
    }

    fn challenge_ack_reply(
        &mut self,
        cx: &mut Context,
        ip_repr: &IpRepr,
        repr: &TcpRepr,
    ) -> Option<(IpRepr, TcpRepr<'static>)> {
        if cx.now() < self.challenge_ack_timer {
            return None;
        }

        // Rate-limit to 1 per second max.
        self.challenge_ack_timer = cx.now() + Duration::from_secs(1);

        Some(self.ack_reply(cx, ip_repr, repr))
    }

    pub(crate) fn accepts(&self, _cx: &mut Context, ip_repr: &IpRepr, repr: &TcpRepr) -> bool {
        if self.state == State::Closed {
            return false;
        }

        // If we're still listening for SYNs and the packet has an ACK or a RST,
        // it cannot be destined to this socket, but another one may well listen
        // on the same local endpoint.
        if self.state == State::Listen
            && (repr.ack_number.is_some() || repr.control == TcpControl::Rst)
        {
            return false;
        }

        if let Some(tuple) = &self.tuple {
            // Reject packets not matching the 4-tuple
            ip_repr.dst_addr() == tuple.local.addr
                && repr.dst_port == tuple.local.port
                && ip_repr.src_addr() == tuple.remote.addr
                && repr.src_port == tuple.remote.port
        } else {
            // We're listening, reject packets not matching the listen endpoint.
            let addr_ok = match self.listen_endpoint.addr {
                Some(addr) => ip_repr.dst_addr() == addr,
                None => true,
            };
            addr_ok && repr.dst_port != 0 && repr.dst_port == self.listen_endpoint.port
        }
    }

    pub(crate) fn process(
        &mut self,
        cx: &mut Context,
        ip_repr: &IpRepr,
        repr: &TcpRepr,
    ) -> Option<(IpRepr, TcpRepr<'static>)> {
        debug_assert!(self.accepts(cx, ip_repr, repr));

        // Consider how much the sequence number space differs from the transmit buffer space.
        let (sent_syn, sent_fin) = match self.state {
            // In SYN-SENT or SYN-RECEIVED, we've just sent a SYN.
            State::SynSent | State::SynReceived => (true, false),
            // In FIN-WAIT-1, LAST-ACK, or CLOSING, we've just sent a FIN.
            State::FinWait1 | State::LastAck | State::Closing => (false, true),
            // In all other states we've already got acknowledgements for
            // all of the control flags we sent.
            _ => (false, false),
        };
        let control_len = (sent_syn as usize) + (sent_fin as usize);

        // xdpstack patch (RFC 5961 4.2): a SYN in a synchronized state, in
        // the window or not, with or without ACK, changes nothing and is
        // answered with a challenge ACK (rate-limited). Unpatched smoltcp
        // drops an in-window SYN silently.
        if repr.control == TcpControl::Syn
            && matches!(
                self.state,
                State::Established
                    | State::FinWait1
                    | State::FinWait2
                    | State::CloseWait
                    | State::Closing
                    | State::LastAck
            )
        {
            net_debug!("SYN in a synchronized state, will send challenge ACK");
            return self.challenge_ack_reply(cx, ip_repr, repr);
        }

        // xdpstack patch 20 (timestamps): PAWS (RFC 7323 §5.3 R1), before the
        // sequence number checks: a non-RST segment whose TSval is older
        // than TS.Recent is an old duplicate from an earlier wrap of the
        // sequence space (or a blind forgery) and is dropped with an ACK;
        // the ACK of a segment without data is rate-limited like a
        // challenge ACK (as Linux's `tcp_oow_rate_limited`), against ACK
        // loops.
        if !matches!(self.state, State::Listen | State::SynSent | State::Closed)
            && self.paws_reject(cx.now(), repr)
        {
            net_debug!("PAWS: TSval older than TS.Recent, dropping with an ACK");
            let stats = self.stats_mut();
            stats.paws_rejected = stats.paws_rejected.wrapping_add(1);
            if repr.payload.is_empty() && repr.control != TcpControl::Fin {
                return self.challenge_ack_reply(cx, ip_repr, repr);
            }
            return Some(self.ack_reply(cx, ip_repr, repr));
        }

        // Reject unacceptable acknowledgements.
        match (self.state, repr.control, repr.ack_number) {
            // An RST received in response to initial SYN is acceptable if it acknowledges
            // the initial SYN.
            (State::SynSent, TcpControl::Rst, None) => {
                net_debug!("unacceptable RST (expecting RST|ACK) in response to initial SYN");
                return None;
            }
            (State::SynSent, TcpControl::Rst, Some(ack_number)) => {
                if ack_number != self.local_seq_no + 1 {
                    net_debug!("unacceptable RST|ACK in response to initial SYN");
                    return None;
                }
            }
            // Any other RST need only have a valid sequence number.
            (_, TcpControl::Rst, _) => (),
            // The initial SYN cannot contain an acknowledgement.
            (State::Listen, _, None) => (),
            // This case is handled in `accepts()`.
            (State::Listen, _, Some(_)) => unreachable!(),
            // SYN|ACK in the SYN-SENT state must have the exact ACK number.
            (State::SynSent, TcpControl::Syn, Some(ack_number)) => {
                if ack_number != self.local_seq_no + 1 {
                    net_debug!("unacceptable SYN|ACK in response to initial SYN");
                    return Some(Self::rst_reply(ip_repr, repr));
                }
            }
            // TCP simultaneous open.
            // This is required by RFC 9293, which states "A TCP implementation MUST support
            // simultaneous open attempts (MUST-10)."
            (State::SynSent, TcpControl::Syn, None) => (),
            // ACKs in the SYN-SENT state are invalid.
            (State::SynSent, TcpControl::None, Some(ack_number)) => {
                // If the sequence number matches, ignore it instead of RSTing.
                // I'm not sure why, I think it may be a workaround for broken TCP
                // servers, or a defense against reordering. Either way, if Linux
                // does it, we do too.
                if ack_number == self.local_seq_no + 1 {
                    net_debug!(
                        "expecting a SYN|ACK, received an ACK with the right ack_number, ignoring."
                    );
                    return None;
                }

                net_debug!(
                    "expecting a SYN|ACK, received an ACK with the wrong ack_number, sending RST."
                );
                return Some(Self::rst_reply(ip_repr, repr));
            }
            // Anything else in the SYN-SENT state is invalid.
            (State::SynSent, _, _) => {
                net_debug!("expecting a SYN|ACK");
                return None;
            }
            // Every packet after the initial SYN must be an acknowledgement.
            (_, _, None) => {
                net_debug!("expecting an ACK");
                return None;
            }
            // ACK in the SYN-RECEIVED state must have the exact ACK number, or we RST it.
            (State::SynReceived, _, Some(ack_number)) => {
                if ack_number != self.local_seq_no + 1 {
                    net_debug!("unacceptable ACK in response to SYN|ACK");
                    return Some(Self::rst_reply(ip_repr, repr));
                }
            }
            // Every acknowledgement must be for transmitted but unacknowledged data.
            (_, _, Some(ack_number)) => {
                let unacknowledged = self.tx_buffer.len() + control_len;

                // Acceptable ACK range (both inclusive)
                let mut ack_min = self.local_seq_no;
                let ack_max = self.local_seq_no + unacknowledged;

                // If we have sent a SYN, it MUST be acknowledged.
                if sent_syn {
                    ack_min += 1;
                }

                if ack_number < ack_min {
                    net_debug!(
                        "duplicate ACK ({} not in {}...{})",
                        ack_number,
                        ack_min,
                        ack_max
                    );
                    return None;
                }

                if ack_number > ack_max {
                    net_debug!(
                        "unacceptable ACK ({} not in {}...{})",
                        ack_number,
                        ack_min,
                        ack_max
                    );
                    return self.challenge_ack_reply(cx, ip_repr, repr);
                }
            }
        }

        let window_start = self.remote_seq_no + self.rx_buffer.len();
        let window_end = if let Some(last_ack) = self.remote_last_ack {
            last_ack + ((self.remote_last_win as usize) << self.remote_win_shift)
        } else {
            window_start
        };
        let segment_start = repr.seq_number;
        let segment_end = repr.seq_number + repr.payload.len();

        let (payload, payload_offset) = match self.state {
            // In LISTEN and SYN-SENT states, we have not yet synchronized with the remote end.
            State::Listen | State::SynSent => (&[][..], 0),
            _ => {
                // https://www.rfc-editor.org/rfc/rfc9293.html#name-segment-acceptability-tests
                let segment_in_window = match (
                    segment_start == segment_end,
                    window_start == window_end,
                ) {
                    (true, _) if segment_end == window_start - 1 => {
                        net_debug!(
                            "received a keep-alive or window probe packet, will send an ACK"
                        );
                        false
                    }
                    (true, true) => {
                        if window_start == segment_start {
                            true
                        } else {
                            net_debug!(
                                "zero-length segment not inside zero-length window, will send an ACK."
                            );
                            false
                        }
                    }
                    (true, false) => {
                        // xdpstack patch: `<=` at the right edge, as Linux
                        // (tcp_sequence): a peer that filled our window sends
                        // its ACKs there, and dropping them drops their ACK
                        // field too (a deadlock once both ends wait for it).
                        if window_start <= segment_start && segment_start <= window_end {
                            true
                        } else {
                            net_debug!("zero-length segment not inside window, will send an ACK.");
                            false
                        }
                    }
                    (false, true) => {
                        net_debug!(
                            "non-zero-length segment with zero receive window, will only send an ACK"
                        );
                        false
                    }
                    (false, false) => {
                        if (window_start <= segment_start && segment_start < window_end)
                            || (window_start < segment_end && segment_end <= window_end)
                        {
                            true
                        } else {
                            net_debug!(
                                "segment not in receive window ({}..{} not intersecting {}..{}), will send challenge ACK",
                                segment_start,
                                segment_end,
                                window_start,
                                window_end
                            );
                            false
                        }
                    }
                };

                if segment_in_window {
                    let overlap_start = window_start.max(segment_start);
                    let overlap_end = window_end.min(segment_end);

                    // the checks done above imply this.
                    debug_assert!(overlap_start <= overlap_end);

                    self.local_rx_last_seq = Some(repr.seq_number);

                    (
                        &repr.payload[overlap_start - segment_start..overlap_end - segment_start],
                        overlap_start - window_start,
                    )
                } else {
                    // Out-of-window RSTs are silently dropped, per RFC 9293
                    // (3.10.7.4) and RFC 5961 (3.2): no reply is sent, and the
                    // TIME-WAIT timer below is not refreshed. RST senders don't
                    // need a reply to make progress.
                    if repr.control == TcpControl::Rst {
                        net_debug!("dropping out-of-window RST");
                        return None;
                    }

                    // If we're in the TIME-WAIT state, restart the TIME-WAIT timeout, since
                    // the remote end may not have realized we've closed the connection.
                    if self.state == State::TimeWait {
                        self.timer.set_for_close(cx.now());
                    }

                    // Segments carrying data are exempt from challenge ACK rate
                    // limiting: an out-of-window data segment is a retransmission
                    // whose ACK was lost, or a window probe, and per RFC 9293
                    // (3.10.7.4, 3.8.6.1) it should elicit an ACK so the remote
                    // can make progress. Withholding these ACKs strands the
                    // remote in retransmission backoff or persist state. The
                    // rate limit exists to break ACK loops between desynced
                    // peers, and exempting data segments cannot sustain such a
                    // loop: the remote paces them with its retransmission and
                    // persist timers, and the data it may send in response to a
                    // duplicate ACK of ours (fast recovery) is bounded by its
                    // send window, which never advances during a desync.
                    //
                    // The exemption covers FIN (a retransmitted final segment is
                    // the same lost-ACK situation) but not SYN: a SYN in a
                    // synchronized state is a challenge ACK situation (RFC 5961
                    // 4.2), and challenge ACKs should be throttled (RFC 5961 7).
                    // One per second is ample for a restarted peer to complete
                    // the challenge exchange, since it retransmits its SYN on
                    // its own timer.
                    if !repr.payload.is_empty()
                        && matches!(
                            repr.control,
                            TcpControl::None | TcpControl::Psh | TcpControl::Fin
                        )
                    {
                        // xdpstack patch (issue 19, RFC 2883): data all
                        // below RCV.NXT is a duplicate, reported to the peer
                        // in a D-SACK block (its sender detects spurious
                        // retransmissions with it).
                        let dsack =
                            (segment_end <= window_start).then_some((segment_start, segment_end));
                        return Some(self.ack_reply_dsack(cx, ip_repr, repr, dsack));
                    }

                    return self.challenge_ack_reply(cx, ip_repr, repr);
                }
            }
        };

        // Compute the amount of acknowledged octets, removing the SYN and FIN bits
        // from the sequence space.
        let mut ack_len = 0;
        let mut ack_of_fin = false;
        let mut ack_all = false;
        if repr.control != TcpControl::Rst
            && let Some(ack_number) = repr.ack_number
        {
            // Sequence number corresponding to the first byte in `tx_buffer`.
            // This normally equals `local_seq_no`, but is 1 higher if we have sent a SYN,
            // as the SYN occupies 1 sequence number "before" the data.
            let tx_buffer_start_seq = self.local_seq_no + (sent_syn as usize);

            if ack_number >= tx_buffer_start_seq {
                ack_len = ack_number - tx_buffer_start_seq;

                // We could've sent data before the FIN, so only remove FIN from the sequence
                // space if all of that data is acknowledged.
                if sent_fin && self.tx_buffer.len() + 1 == ack_len {
                    ack_len -= 1;
                    tcp_trace!("received ACK of FIN");
                    ack_of_fin = true;
                }

                ack_all = self.remote_last_seq <= ack_number;
            }
        }

        // Disregard control flags we don't care about or shouldn't act on yet.
        let mut control = repr.control;
        control = control.quash_psh();

        // If a FIN is received at the end of the current segment, but
        // we have a hole in the assembler before the current segment, disregard this FIN.
        if control == TcpControl::Fin && window_start < segment_start {
            tcp_trace!(
                "ignoring FIN because we don't have full data yet. window_start={} segment_start={}",
                window_start,
                segment_start
            );
            control = TcpControl::None;
        }

        // Validate and update the state.
        match (self.state, control) {
            // RSTs are not accepted in the LISTEN state.
            (State::Listen, TcpControl::Rst) => return None,

            // xdpstack patch (RFC 5961 3.2): only an RST at exactly RCV.NXT
            // resets; one elsewhere in the window gets a challenge ACK
            // (rate-limited) and changes nothing, so a blind attacker must
            // guess the exact sequence number, not just land in the window.
            // Unpatched smoltcp resets on any in-window RST.
            (state, TcpControl::Rst)
                if state != State::SynSent && segment_start != window_start =>
            {
                net_debug!("RST in window but not at RCV.NXT, will send challenge ACK");
                return self.challenge_ack_reply(cx, ip_repr, repr);
            }

            // RSTs in SYN-RECEIVED flip the socket back to the LISTEN state.
            // Here we need to additionally check `listen_endpoint`, because we want to make sure
            // that SYN-RECEIVED was actually converted from the LISTEN state (another possible
            // reason is TCP simultaneous open).
            (State::SynReceived, TcpControl::Rst) if self.listen_endpoint.port != 0 => {
                tcp_trace!("received RST");
                self.tuple = None;
                self.set_state(State::Listen);
                return None;
            }

            // RSTs in any other state close the socket.
            (_, TcpControl::Rst) => {
                tcp_trace!("received RST");
                self.set_state(State::Closed);
                self.tuple = None;
                return None;
            }

            // SYN packets in the LISTEN state change it to SYN-RECEIVED.
            (State::Listen, TcpControl::Syn) => {
                tcp_trace!("received SYN");
                if let Some(max_seg_size) = repr.max_seg_size {
                    // Treat a zero MSS as if the option were absent, like Linux does.
                    if max_seg_size != 0 {
                        self.remote_mss = (max_seg_size as usize).max(MIN_REMOTE_MSS);
                        self.congestion_controller
                            .inner_mut()
                            .set_mss(self.remote_mss);
                    }
                }

                self.tuple = Some(Tuple {
                    local: IpEndpoint::new(ip_repr.dst_addr(), repr.dst_port),
                    remote: IpEndpoint::new(ip_repr.src_addr(), repr.src_port),
                });
                let cookie = self.next_isn.take();
                let answered = cookie.is_some() && !self.next_isn_unanswered;
                self.next_isn_unanswered = false;
                self.local_seq_no = match cookie {
                    Some(isn) => isn,
                    None => Self::random_seq_no(cx),
                };
                self.remote_seq_no = repr.seq_number + 1;
                self.remote_last_seq = self.local_seq_no;
                self.remote_has_sack = repr.sack_permitted;
                // xdpstack patch 17 (ECN): an ECN-setup SYN (ECE and CWR, RFC
                // 3168 §6.1.1) is answered with ECE when ECN is enabled.
                self.ecn.ok = self.ecn.enabled && repr.ecn.ece && repr.ecn.cwr;
                if self.ecn.ok {
                    let stats = self.stats_mut();
                    stats.ecn_negotiated = stats.ecn_negotiated.wrapping_add(1);
                }
                self.remote_win_scale = repr.window_scale;
                // Remote doesn't support window scaling, don't do it.
                if self.remote_win_scale.is_none() {
                    self.remote_win_shift = 0;
                }
                // Remote doesn't support timestamping, don't do it.
                if repr.timestamp.is_none() {
                    self.ts_off();
                }
                self.set_state(State::SynReceived);
                self.timer.set_for_idle(cx.now(), self.keep_alive);
                if answered {
                    // xdpstack patch: the SYN-ACK went out already, as the
                    // cookie; record it as sent (what `dispatch` records).
                    self.remote_last_seq = self.local_seq_no + 1;
                    self.remote_last_ack = Some(self.remote_seq_no);
                    self.remote_last_win = self.scaled_window();
                }
            }

            // ACK packets in the SYN-RECEIVED state change it to ESTABLISHED.
            (State::SynReceived, TcpControl::None) => {
                self.set_state(State::Established);
            }

            // FIN packets in the SYN-RECEIVED state change it to CLOSE-WAIT.
            // It's not obvious from RFC 793 that this is permitted, but
            // 7th and 8th steps in the "SEGMENT ARRIVES" event describe this behavior.
            (State::SynReceived, TcpControl::Fin) => {
                self.remote_seq_no += 1;
                self.rx_fin_received = true;
                self.set_state(State::CloseWait);
            }

            // SYN|ACK packets in the SYN-SENT state change it to ESTABLISHED.
            // SYN packets in the SYN-SENT state change it to SYN-RECEIVED.
            (State::SynSent, TcpControl::Syn) => {
                if repr.ack_number.is_some() {
                    tcp_trace!("received SYN|ACK");
                } else {
                    tcp_trace!("received SYN");
                }
                if let Some(max_seg_size) = repr.max_seg_size {
                    // Treat a zero MSS as if the option were absent, like Linux does.
                    if max_seg_size != 0 {
                        self.remote_mss = (max_seg_size as usize).max(MIN_REMOTE_MSS);
                        self.congestion_controller
                            .inner_mut()
                            .set_mss(self.remote_mss);
                    }
                }

                self.remote_seq_no = repr.seq_number + 1;
                self.remote_last_seq = self.local_seq_no + 1;
                self.remote_last_ack = Some(repr.seq_number);
                self.remote_has_sack = repr.sack_permitted;
                self.remote_win_scale = repr.window_scale;
                // Remote doesn't support window scaling, don't do it.
                if self.remote_win_scale.is_none() {
                    self.remote_win_shift = 0;
                }
                // Remote doesn't support timestamping, don't do it.
                if repr.timestamp.is_none() {
                    self.ts_off();
                }

                if repr.ack_number.is_some() {
                    self.set_state(State::Established);
                } else {
                    self.set_state(State::SynReceived);
                }
            }

            (State::Established, TcpControl::None) => {}

            // FIN packets in ESTABLISHED state indicate the remote side has closed.
            (State::Established, TcpControl::Fin) => {
                self.remote_seq_no += 1;
                self.rx_fin_received = true;
                self.set_state(State::CloseWait);
            }

            // ACK packets in FIN-WAIT-1 state change it to FIN-WAIT-2, if we've already
            // sent everything in the transmit buffer. If not, they reset the retransmit timer.
            (State::FinWait1, TcpControl::None) => {
                if ack_of_fin {
                    self.set_state(State::FinWait2);
                }
            }

            // FIN packets in FIN-WAIT-1 state change it to CLOSING, or to TIME-WAIT
            // if they also acknowledge our FIN.
            (State::FinWait1, TcpControl::Fin) => {
                self.remote_seq_no += 1;
                self.rx_fin_received = true;
                if ack_of_fin {
                    self.set_state(State::TimeWait);
                    self.timer.set_for_close(cx.now());
                } else {
                    self.set_state(State::Closing);
                }
            }

            (State::FinWait2, TcpControl::None) => {}

            // FIN packets in FIN-WAIT-2 state change it to TIME-WAIT.
            (State::FinWait2, TcpControl::Fin) => {
                self.remote_seq_no += 1;
                self.rx_fin_received = true;
                self.set_state(State::TimeWait);
                self.timer.set_for_close(cx.now());
            }

            // ACK packets in CLOSING state change it to TIME-WAIT.
            (State::Closing, TcpControl::None) => {
                if ack_of_fin {
                    self.set_state(State::TimeWait);
                    self.timer.set_for_close(cx.now());
                }
            }

            (State::CloseWait, TcpControl::None) => {}

            // ACK packets in LAST-ACK state change it to CLOSED.
            (State::LastAck, TcpControl::None) => {
                if ack_of_fin {
                    // Clear the remote endpoint, or we'll send an RST there.
                    self.set_state(State::Closed);
                    self.tuple = None;
                } else if ack_len == 0 {
                    // Duplicate ACK; our FIN has not been acknowledged.
                    // Per RFC 9293 (3.10.7.4), send a challenge ACK.
                    return self.challenge_ack_reply(cx, ip_repr, repr);
                }
                // Partial ACK: fall through to advance SND.UNA normally.
            }

            _ => {
                net_debug!("unexpected packet {}", repr);
                return None;
            }
        }

        // Update remote state.
        self.remote_last_ts = Some(cx.now());

        // xdpstack patch (ECN, RFC 3168 §6.1.3): a segment with CWR ends the
        // echo; a CE-marked one starts it again (also when it carries CWR),
        // and is ACKed at once (below) as Linux's quick ACK.
        let ecn_ce = self.ecn.ok && repr.control != TcpControl::Syn && repr.ecn.ip == IpEcn::Ce;
        if self.ecn.ok && repr.control != TcpControl::Syn {
            if repr.ecn.cwr {
                self.ecn.ece = false;
            }
            if ecn_ce {
                self.ecn.ece = true;
                let stats = self.stats_mut();
                stats.ecn_ce_received = stats.ecn_ce_received.wrapping_add(1);
            }
        }

        // RFC 1323: The window field (SEG.WND) in the header of every incoming segment, with the
        // exception of SYN segments, is left-shifted by Snd.Wind.Scale bits before updating SND.WND.
        let scale = match repr.control {
            TcpControl::Syn => 0,
            _ => self.remote_win_scale.unwrap_or(0),
        };
        let new_remote_win_len = (repr.window_len as usize) << (scale as usize);
        let is_window_update = new_remote_win_len != self.remote_win_len;
        self.remote_win_len = new_remote_win_len;

        self.congestion_controller
            .inner_mut()
            .set_remote_window(new_remote_win_len);

        if ack_len > 0 {
            // Dequeue acknowledged octets.
            debug_assert!(self.tx_buffer.len() >= ack_len);
            tcp_trace!(
                "tx buffer: dequeueing {} octets (now {})",
                ack_len,
                self.tx_buffer.len() - ack_len
            );
            self.tx_buffer.dequeue_allocated(ack_len);

            // There's new room available in tx_buffer, wake the waiting task if any.
            #[cfg(feature = "async")]
            self.tx_waker.wake();
        }

        if let Some(ack_number) = repr.ack_number {
            // TODO: When flow control is implemented,
            // refractor the following block within that implementation

            if self.sack_active() {
                self.sack_on_ack(cx.now(), ack_number, ack_len, repr, is_window_update);
            } else {
                match self.local_rx_last_ack {
                    // Duplicate ACK if payload empty and ACK doesn't move send window ->
                    // Increment duplicate ACK count, notify congestion controller and
                    // set for retransmit if we just received the third duplicate ACK
                    Some(last_rx_ack)
                        if repr.payload.is_empty()
                            && last_rx_ack == ack_number
                            && ack_number < self.remote_last_seq
                            && !is_window_update =>
                    {
                        // Increment duplicate ACK count
                        self.local_rx_dup_acks = self.local_rx_dup_acks.saturating_add(1);

                        net_debug!(
                            "received duplicate ACK for seq {} (duplicate nr {}{})",
                            ack_number,
                            self.local_rx_dup_acks,
                            if self.local_rx_dup_acks == u8::MAX {
                                "+"
                            } else {
                                ""
                            }
                        );

                        // xdpstack patch: not again within one recovery (RFC 6582).
                        if self.local_rx_dup_acks == 3 && self.recover.is_none() {
                            self.recover = Some(self.remote_last_seq);
                            self.timer.set_for_fast_retransmit();
                            net_debug!("started fast retransmit");
                        }

                        // Notify of duplicate ACK
                        let in_flight = self.flight_size();
                        self.congestion_controller.inner_mut().on_dup_ack(
                            cx.now(),
                            self.remote_mss,
                            in_flight,
                        );
                    }

                    // No duplicate ACK means we reset the duplicate ACK count
                    // and notify the congestion controller of the fresh ACK
                    _ => {
                        if self.local_rx_dup_acks > 0 {
                            self.local_rx_dup_acks = 0;
                            net_debug!("reset duplicate ACK count");
                        }
                        self.local_rx_last_ack = Some(ack_number);

                        // xdpstack patch: NewReno partial ACK (RFC 6582 3.2 (5)).
                        if let Some(recover) = self.recover {
                            if ack_number >= recover {
                                self.recover = None;
                            } else if ack_len > 0 && !self.tx_buffer.is_empty() {
                                net_debug!("partial ACK: retransmitting the next hole");
                                self.pending_fast_retransmit = true;
                            }
                        }

                        // Notify of fresh ACK
                        // xdpstack patch 20 (timestamps): or the echo's sample.
                        self.rtt_on_ack(cx.now(), ack_number, repr);
                        let new_flight_size = self.flight_size().saturating_sub(ack_len);
                        self.congestion_controller.inner_mut().on_ack(
                            cx.now(),
                            ack_len,
                            new_flight_size,
                            &self.rtte,
                        );
                    }
                };
                // xdpstack patch (ECN, RFC 3168 §6.1.2): for a peer without
                // SACK, an ECN-Echo outside a recovery halves the window at
                // once (no PRR without the scoreboard's pipe).
                if repr.ecn.ece
                    && self.recover.is_none()
                    && self.ecn_may_reduce(ack_number.max(self.local_seq_no))
                {
                    let in_flight = self.flight_size();
                    let cc = self.congestion_controller.inner_mut();
                    if cc.reduces_on_loss() {
                        cc.on_loss(cx.now(), in_flight);
                        cc.on_recovery_exit();
                        let stats = self.stats_mut();
                        stats.ecn_reductions = stats.ecn_reductions.wrapping_add(1);
                    }
                    self.ecn.cwr_pending = true;
                }
            }

            // We've processed everything in the incoming segment, so advance the local
            // sequence number past it.
            self.local_seq_no = ack_number;

            // During retransmission, if an earlier segment got lost but later was
            // successfully received, self.local_seq_no can move past self.remote_last_seq.
            // Do not attempt to retransmit the latter segments; not only this is pointless
            // in theory but also impossible in practice, since they have been already
            // deallocated from the buffer.
            if self.remote_last_seq < self.local_seq_no {
                self.remote_last_seq = self.local_seq_no
            }
        }

        // xdpstack patch 20 (timestamps): TS.Recent, by RFC 7323 §4.3's rule
        // (upstream took every segment's TSval, out-of-order ones too).
        self.ts_recent_update(cx.now(), repr);

        // update timers.
        match self.timer {
            Timer::Retransmit { .. } | Timer::FastRetransmit => {
                if ack_all {
                    // RFC 6298: (5.2) ACK of all outstanding data turn off the retransmit timer.
                    self.timer.set_for_idle(cx.now(), self.keep_alive);
                } else if ack_len > 0 {
                    // (5.3) ACK of new data in ESTABLISHED state restart the retransmit timer.
                    let rto = self.rtte.retransmission_timeout();
                    self.timer.set_for_retransmit(cx.now(), rto);
                }
            }
            Timer::Idle { .. } => {
                // any packet on idle refresh the keepalive timer.
                self.timer.set_for_idle(cx.now(), self.keep_alive);
            }
            _ => {}
        }

        // xdpstack patch 12: the probe timer follows the retransmission
        // timer.
        if ack_len > 0 && self.sack_active() {
            self.arm_tlp(cx.now());
        }

        // start/stop the Zero Window Probe timer.
        if self.remote_win_len == 0
            && !self.tx_buffer.is_empty()
            && (self.timer.is_idle() || ack_len > 0)
        {
            let delay = self.rtte.retransmission_timeout();
            tcp_trace!("starting zero-window-probe timer for t+{}", delay);
            self.timer.set_for_zero_window_probe(cx.now(), delay);
        }
        if self.remote_win_len != 0 && self.timer.is_zero_window_probe() {
            tcp_trace!("stopping zero-window-probe timer");
            self.timer.set_for_idle(cx.now(), self.keep_alive);
        }

        // xdpstack patch (issue 19, RFC 2883): data all inside a block
        // received out of order already is a duplicate; the immediate ACK it
        // gets (there are holes) reports it in a D-SACK block, followed by
        // the block holding it.
        let dsack = (!payload.is_empty()
            && payload.len() == repr.payload.len()
            && self.assembler.contains(payload_offset, payload.len()))
        .then_some((segment_start, segment_end));

        // xdpstack patch (buffers that grow): with the window computed from
        // a limit, the storage may be smaller than the window; keep what it
        // holds and ACK at once, so the peer sends the rest again (never the
        // case upstream, where the window is the free storage).
        let room = self.rx_buffer.window().saturating_sub(payload_offset);
        let cut = payload.len() > room;
        let payload = if cut {
            self.rx_storage_cut = self.rx_storage_cut.wrapping_add(1);
            net_debug!(
                "receive storage: {} of {} octets at offset {} fit",
                room,
                payload.len(),
                payload_offset
            );
            &payload[..room]
        } else {
            payload
        };

        let payload_len = payload.len();
        if payload_len == 0 {
            if cut {
                return Some(self.ack_reply(cx, ip_repr, repr));
            }
            return None;
        }

        let assembler_was_empty = self.assembler.is_empty();

        // Try adding payload octets to the assembler.
        // xdpstack patch (issue 19): the out-of-order queue is bounded by
        // the window (data beyond it was cut above) and its number of holes
        // by `ooo_range_limit`; a segment that would open one more is
        // dropped but ACKed at once, with SACK blocks, as any out-of-order
        // segment (upstream dropped it silently, at 4 holes).
        let window_len = if window_end > window_start {
            window_end - window_start
        } else {
            0
        };
        let Ok(contig_len) = self.assembler.add_bounded_then_remove_front(
            payload_offset,
            payload_len,
            Self::ooo_range_limit(window_len),
        ) else {
            net_debug!(
                "assembler: too many holes to add {} octets at offset {}",
                payload_len,
                payload_offset
            );
            return Some(self.ack_reply(cx, ip_repr, repr));
        };

        // Place payload octets into the buffer.
        tcp_trace!(
            "rx buffer: receiving {} octets at offset {}",
            payload_len,
            payload_offset
        );
        let len_written = self.rx_buffer.write_unallocated(payload_offset, payload);
        debug_assert!(len_written == payload_len);

        if contig_len != 0 {
            // Enqueue the contiguous data octets in front of the buffer.
            tcp_trace!(
                "rx buffer: enqueueing {} octets (now {})",
                contig_len,
                self.rx_buffer.len() + contig_len
            );
            self.rx_buffer.enqueue_unallocated(contig_len);

            // There's new data in rx_buffer, notify waiting task if any.
            #[cfg(feature = "async")]
            self.rx_waker.wake();
        }

        if !self.assembler.is_empty() {
            // Print the ranges recorded in the assembler.
            tcp_trace!("assembler: {}", self.assembler);
        }

        // Handle delayed acks
        if let Some(ack_delay) = self.ack_delay
            && self.ack_to_transmit()
        {
            self.ack_delay_timer = match self.ack_delay_timer {
                AckDelayTimer::Idle => {
                    tcp_trace!("starting delayed ack timer");
                    AckDelayTimer::Waiting(cx.now() + ack_delay)
                }
                AckDelayTimer::Waiting(_) if self.immediate_ack_to_transmit() => {
                    tcp_trace!("delayed ack timer already started, forcing expiry");
                    AckDelayTimer::Immediate
                }
                timer @ AckDelayTimer::Waiting(_) => {
                    tcp_trace!("waiting until delayed ack timer expires");
                    timer
                }
                AckDelayTimer::Immediate => {
                    tcp_trace!("delayed ack timer already force-expired");
                    AckDelayTimer::Immediate
                }
            };
        }

        // Per RFC 5681, we should send an immediate ACK when either:
        //  1) an out-of-order segment is received, or
        //  2) a segment arrives that fills in all or part of a gap in sequence space.
        // xdpstack patch: likewise when data was cut for lack of storage.
        // xdpstack patch 17 (ECN): and when the segment was CE-marked, so the
        // echo reaches the sender without a delayed ACK's wait.
        if !self.assembler.is_empty() || !assembler_was_empty || cut || ecn_ce {
            // Note that we change the transmitter state here.
            // This is fine because smoltcp assumes that it can always transmit zero or one
            // packets for every packet it receives.
            tcp_trace!("ACKing incoming segment");
            Some(self.ack_reply_dsack(cx, ip_repr, repr, dsack))
        } else {
            None
        }
    }

    /// xdpstack patch (issue 19): the most out-of-order blocks (each after a
    /// hole) the assembler may hold with a receive window of `window` bytes.
    /// The data is bounded by the window already (what lies beyond is cut
    /// before the assembler), but not the list describing it: 16 bytes per
    /// hole, which 1-byte segments with 1-byte gaps would make 8 times the
    /// window, and every segment walks the list. One hole per 536 bytes
    /// (RFC 9293's default MSS: a sender of segments that size opens at most
    /// one hole per two segments) keeps the list within 3% of the window.
    /// The floor is upstream's fixed count (ASSEMBLER_MAX_SEGMENT_COUNT): a
    /// small window takes what it always took. The ceiling, 512 (8 KiB of
    /// list, a walk of 512 per segment), is reached at a 268 KiB window; a
    /// 6 MiB window (the engine's and Linux's largest receive buffer) of
    /// 1448-byte segments would have to lose more than one segment in nine,
    /// none adjacent, to need more. Linux bounds its out-of-order queue by
    /// memory (`tcp_prune_ofo_queue`), counting each segment's buffer
    /// overhead, which amounts to the same.
    fn ooo_range_limit(window: usize) -> usize {
        const BYTES_PER_HOLE: usize = 536;
        const MAX_HOLES: usize = 512;
        (window / BYTES_PER_HOLE).clamp(ASSEMBLER_MAX_SEGMENT_COUNT.min(MAX_HOLES), MAX_HOLES)
    }

    /// xdpstack patch: the sequence number of an ACK-only segment: SND.MAX
    /// when it is ahead of SND.NXT (after an RTO rewound it) and still
    /// within this connection's unacknowledged data, else SND.NXT.
    ///
    /// xdpstack patch (issue 19): never past the right edge of the peer's
    /// window, as Linux's `tcp_acceptable_seq`. A peer whose window shrank
    /// (its application stopped reading, so the window closed while our
    /// segments beyond it were lost) drops an ACK-only segment beyond its
    /// window, ACK field and all; both ends then wait for each other's ACK,
    /// each backing its timer off to 60 s (found by the simulated `lossy`
    /// echo in the tests below: most runs stalled past 120 s).
    fn ack_only_seq(&self) -> TcpSeqNumber {
        let seq = match self.snd_max {
            Some(max)
                if max > self.remote_last_seq
                    && max <= self.local_seq_no + self.tx_buffer.len() + 1 =>
            {
                max
            }
            _ => self.remote_last_seq,
        };
        // Linux lets SND.NXT stand when it is less than one window-scale
        // unit past the edge; a smoltcp peer checks against the window it
        // advertised (rounded down), so the edge it is, always.
        let wnd_end = self.local_seq_no + self.remote_win_len;
        if seq > wnd_end { wnd_end } else { seq }
    }

    fn timed_out(&self, timestamp: Instant) -> bool {
        match (self.remote_last_ts, self.timeout) {
            (Some(remote_last_ts), Some(timeout)) => timestamp >= remote_last_ts + timeout,
            (_, _) => false,
        }
    }

    /// xdpstack patch 13: when pacing holds data back, the time it may go.
    fn paced_until(&self, now: Instant) -> Option<Instant> {
        if !self.sack_active() {
            return None;
        }
        self.congestion_controller.inner().pacing_rate()?;
        match self.rec.as_deref()?.pace_at {
            Some(t) if t > now => Some(t),
            _ => None,
        }
    }

    /// xdpstack patch 13: a data segment of `len` bytes went out: the next
    /// may go `len / rate` later; up to `PACE_BURST` of unused time is kept
    /// as credit, so a sender woken by the 1 ms timer wheel sends about a
    /// millisecond's worth at once (Linux sends about that much per TSO
    /// burst when it paces).
    fn pace(&mut self, now: Instant, len: usize) {
        let Some(rate) = self.congestion_controller.inner().pacing_rate() else {
            return;
        };
        let Some(rec) = self.rec.as_deref_mut() else {
            return;
        };
        let floor = now - PACE_BURST;
        let base = match rec.pace_at {
            Some(t) if t > floor => t,
            _ => floor,
        };
        let us = (len as u64).saturating_mul(1_000_000) / rate.max(1);
        rec.pace_at = Some(base + Duration::from_micros(us));
    }

    fn seq_to_transmit(&self, cx: &mut Context) -> bool {
        // xdpstack patch 27: a tail loss probe due is not held by pacing (it
        // stands in for the retransmission timer, which Linux runs unpaced):
        // held, it kept the timer from firing until the pacing clock let
        // the probe go.
        (self.paced_until(cx.now()).is_none() || self.tlp_due(cx.now()))
            && self.seq_to_transmit_unpaced(cx)
    }

    fn seq_to_transmit_unpaced(&self, cx: &mut Context) -> bool {
        // Fast retransmits should always send, even if later congestion checks would disallow
        if self.pending_fast_retransmit && !self.tx_buffer.is_empty() {
            return true;
        }
        // xdpstack patch 12: a lost range the congestion state lets out, or
        // a tail loss probe.
        if self.sack_next_rtx().is_some() || self.tlp_due(cx.now()) {
            return true;
        }

        let ip_header_len = match self.tuple.unwrap().local.addr {
            #[cfg(feature = "proto-ipv4")]
            IpAddress::Ipv4(_) => crate::wire::IPV4_HEADER_LEN,
            #[cfg(feature = "proto-ipv6")]
            IpAddress::Ipv6(_) => crate::wire::IPV6_HEADER_LEN,
        };

        // The effective max segment size, taking into account the options and the local and remote limits.
        let options_len = if self.timestamp_enabled() { 12 } else { 0 };

        let local_mss = cx.ip_mtu() - ip_header_len - TCP_HEADER_LEN;
        let effective_mss = local_mss.min(self.remote_mss).saturating_sub(options_len);

        // Have we sent data that hasn't been ACKed yet?
        let data_in_flight = self.remote_last_seq != self.local_seq_no;

        // If we want to send a SYN and we haven't done so, do it!
        if matches!(self.state, State::SynSent | State::SynReceived) && !data_in_flight {
            return true;
        }

        // max sequence number we can send.
        let max_send_seq =
            self.local_seq_no + core::cmp::min(self.remote_win_len, self.tx_buffer.len());

        // Max amount of octets we can send.
        let capped_send_seq = if max_send_seq >= self.remote_last_seq {
            max_send_seq - self.remote_last_seq
        } else {
            0
        };

        // compare max bytes allowed by cwnd with max bytes allowed by remote
        let max_send = capped_send_seq.min(self.send_allowance());

        // Can we send at least 1 octet?
        let mut can_send = max_send != 0;
        // Can we send at least 1 full segment?
        let can_send_full = max_send >= effective_mss;

        // Do we have to send a FIN?
        let want_fin = match self.state {
            State::FinWait1 => true,
            State::Closing => true,
            State::LastAck => true,
            _ => false,
        };

        // If we're applying the Nagle algorithm we don't want to send more
        // until one of:
        // * There's no data in flight
        // * We can send a full packet
        // * We have all the data we'll ever send (we're closing send)
        if self.nagle && data_in_flight && !can_send_full && !want_fin {
            can_send = false;
        }
        // xdpstack: no runts while data is in flight (sender SWS avoidance,
        // RFC 1122 4.2.3.4, and Linux, whose windows count whole segments):
        // a window or congestion allowance smaller than a segment, with more
        // data queued than it lets out, waits for the ACK that is coming.
        let end = self.local_seq_no + self.tx_buffer.len();
        let unsent = if end > self.remote_last_seq {
            end - self.remote_last_seq
        } else {
            0
        };
        if data_in_flight && !can_send_full && unsent > max_send {
            can_send = false;
        }

        // Can we actually send the FIN? We can send it if:
        // 1. We have unsent data that fits in the remote window.
        // 2. We have no unsent data.
        // This condition matches only if #2, because #1 is already covered by can_data and we're ORing them.
        let can_fin = want_fin && self.remote_last_seq == self.local_seq_no + self.tx_buffer.len();

        can_send || can_fin
    }

    fn delayed_ack_expired(&self, timestamp: Instant) -> bool {
        match self.ack_delay_timer {
            AckDelayTimer::Idle => true,
            AckDelayTimer::Waiting(t) => t <= timestamp,
            AckDelayTimer::Immediate => true,
        }
    }

    fn ack_to_transmit(&self) -> bool {
        if let Some(remote_last_ack) = self.remote_last_ack {
            remote_last_ack < self.remote_seq_no + self.rx_buffer.len()
        } else {
            false
        }
    }

    /// Return whether to send ACK immediately due to the amount of unacknowledged data.
    ///
    /// RFC 9293 states "An ACK SHOULD be generated for at least every second full-sized segment or
    /// 2*RMSS bytes of new data (where RMSS is the MSS specified by the TCP endpoint receiving the
    /// segments to be acknowledged, or the default value if not specified) (SHLD-19)."
    ///
    /// Note that the RFC above only says "at least 2*RMSS bytes", which is not a hard requirement.
    /// In practice, we follow the Linux kernel's empirical value of sending an ACK for every RMSS
    /// byte of new data. For details, see
    /// <https://elixir.bootlin.com/linux/v6.11.4/source/net/ipv4/tcp_input.c#L5747>.
    fn immediate_ack_to_transmit(&self) -> bool {
        if let Some(remote_last_ack) = self.remote_last_ack {
            remote_last_ack + self.remote_mss < self.remote_seq_no + self.rx_buffer.len()
        } else {
            false
        }
    }

    /// Return whether we should send ACK immediately due to significant window updates.
    ///
    /// ACKs with significant window updates should be sent immediately to let the sender know that
    /// more data can be sent. According to the Linux kernel implementation, "significant" means
    /// doubling the receive window. The Linux kernel implementation can be found at
    /// <https://elixir.bootlin.com/linux/v6.9.9/source/net/ipv4/tcp.c#L1472>.
    fn window_to_update(&self) -> bool {
        match self.state {
            State::SynSent
            | State::SynReceived
            | State::Established
            | State::FinWait1
            | State::FinWait2 => {
                let new_win = self.scaled_window();
                if let Some(last_win) = self.last_scaled_window() {
                    new_win > 0 && new_win / 2 >= last_win
                } else {
                    false
                }
            }
            _ => false,
        }
    }

    pub(crate) fn dispatch<F, E>(&mut self, cx: &mut Context, emit: F) -> Result<(), E>
    where
        F: FnOnce(&mut Context, PacketMeta, (IpRepr, TcpRepr)) -> Result<(), E>,
    {
        if self.tuple.is_none() {
            return Ok(());
        }

        // NOTE(unwrap): we check tuple is not None above.
        let tuple = self.tuple.unwrap();

        // Check if the interface still has our source IP address.
        // If not (e.g. the interface's IP changed), reset the socket.
        // We use reset() instead of set_state(Closed) to avoid sending
        // an RST packet with the now-invalid source IP.
        if !cx.has_ip_addr(tuple.local.addr) {
            net_debug!("source IP address no longer available, closing socket");
            self.reset();
            return Ok(());
        }

        if self.remote_last_ts.is_none() {
            // We get here in exactly two cases:
            //  1) This socket just transitioned into SYN-SENT.
            //  2) This socket had an empty transmit buffer and some data was added there.
            // Both are similar in that the socket has been quiet for an indefinite
            // period of time, it isn't anymore, and the local endpoint is talking.
            // So, we start counting the timeout not from the last received packet
            // but from the first transmitted one.
            self.remote_last_ts = Some(cx.now());
        }

        self.congestion_controller
            .inner_mut()
            .pre_transmit(cx.now());
        // xdpstack patch 29: the application's burst of writes is over.
        self.tx_filled = self.tx_last_filled;

        // xdpstack patch 29: RACK's reordering timer.
        // (A retransmission timeout due as well goes first, alone.)
        if self.reo_deadline(cx.now()).is_some_and(|t| cx.now() >= t)
            && !self.timer.should_retransmit(cx.now())
        {
            self.rack_reo_timeout(cx.now());
        }

        // Check if any state needs to be changed because of a timer.
        if self.timed_out(cx.now()) {
            // If a timeout expires, we should abort the connection.
            net_debug!("timeout exceeded");
            self.set_state(State::Closed);
        } else if self.timer.should_retransmit(cx.now()) && !self.tlp_due(cx.now()) {
            // (xdpstack patch 12: a tail loss probe due goes in the RTO's
            // place, RFC 8985 §7.2; sending it restarts the RTO.)
            if let (Timer::Retransmit { .. }, true) = (self.timer, self.sack_active()) {
                // xdpstack patch 12: every unSACKed byte sent is lost; the
                // loss state resends them in slow start from the scoreboard
                // (SACKed data is not sent again) without rewinding SND.NXT,
                // and starts no fast recovery until SND.MAX at this point is
                // acknowledged (RFC 6675 §5.1, RFC 6582 §3.2 (4)).
                net_debug!("retransmission timeout: loss state");
                // xdpstack patch 12: an RTO that interrupts fast recovery
                // takes ssthresh from the flight the recovery began with, as
                // Linux reduces it once per window: the flight has grown
                // since by what PRR sent, and ssthresh rose above the
                // recovery's.
                let in_flight = match self.rec.as_deref() {
                    Some(r) if matches!(r.phase, Phase::Recovery | Phase::Cwr) => {
                        self.flight_size().min(r.recover_fs())
                    }
                    _ => self.flight_size(),
                };
                let (una, snd_max) = (self.local_seq_no, self.snd_max_seq());
                self.start_recovery_state(una);
                if let Some(rec) = self.rec.as_deref_mut() {
                    // xdpstack patch 15 (undo): a new loss episode remembers
                    // the window the timeout cuts.
                    if rec.start_undo(una) {
                        rec.prior = Some(self.congestion_controller.inner().prior());
                    }
                }
                self.congestion_controller
                    .inner_mut()
                    .on_rto(cx.now(), in_flight);
                if let Some(rec) = self.rec.as_deref_mut() {
                    rec.enter_loss(una, snd_max);
                    // xdpstack patch 27: the timeout's retransmission goes
                    // now, not when the pacing clock of the last flight
                    // says (Linux retransmits from its timer unpaced). A
                    // flow whose rate samples shrank in a loss episode paced
                    // its next segment hundreds of milliseconds out, and the
                    // retransmission waited for that on top of the timeout.
                    rec.pace_at = None;
                }
                // xdpstack patch 17 (ECN): a reduction, told with CWR.
                self.ecn.cwr_pending |= self.ecn.ok;
                self.rtte.on_rto();
            } else if let Timer::Retransmit { .. } = self.timer {
                // If a retransmit timer expired, we should resend data starting at the last ACK.
                net_debug!("retransmitting after rto");

                // Inform the congestion controller that we're retransmitting and should enter the slow start state
                let in_flight = self.flight_size();
                self.congestion_controller
                    .inner_mut()
                    .on_rto(cx.now(), in_flight);

                // Rewind "last sequence number sent", as if we never
                // had sent them. This will cause all data in the queue
                // to be sent again.
                self.remote_last_seq = self.local_seq_no;
                // xdpstack patch: the go-back-N resend replaces any recovery.
                self.recover = None;
                self.pending_fast_retransmit = false;
                // xdpstack patch 17 (ECN): a reduction, told with CWR.
                self.ecn.cwr_pending |= self.ecn.ok;

                // Inform RTTE, so that it can can handle RTO backoff
                self.rtte.on_rto();
            } else {
                // If a fast rentrasmit timer expired, we should resend only the earliest unAcked segment
                net_debug!("retransmitting for fast-retransmit");

                // Inform the congestion controller that we're doing a fast retransmit and should enter the fast recovery state
                let in_flight = self.flight_size();
                self.congestion_controller
                    .inner_mut()
                    .on_loss(cx.now(), in_flight);
                // xdpstack patch 17 (ECN): a reduction, told with CWR.
                self.ecn.cwr_pending |= self.ecn.ok;

                self.pending_fast_retransmit = true;
            }

            // Clear the `should_retransmit` state. If we can't retransmit right
            // now for whatever reason (like zero window), this avoids an
            // infinite polling loop where `poll_at` returns `Now` but `dispatch`
            // can't actually do anything.
            // xdpstack: with data outstanding the timer runs again at once,
            // backed off (RFC 6298 5.1 and 5.6): left idle, a socket that
            // sent nothing here (the window or the loss state let nothing
            // out) had no timer at all and waited for an ACK that might
            // never come.
            // A closed window gets the zero-window probe timer instead: the
            // retransmission could not go, a probe can.
            let rto = self.rtte.retransmission_timeout();
            if self.snd_max_seq() <= self.local_seq_no {
                self.timer.set_for_idle(cx.now(), self.keep_alive);
            } else if self.remote_win_len == 0 {
                self.timer.set_for_zero_window_probe(cx.now(), rto);
            } else {
                self.timer.set_for_retransmit(cx.now(), rto);
            }

            // Inform RTTE, so that it can avoid bogus measurements.
            self.rtte.on_retransmit();
        }

        #[cfg(feature = "socket-tcp-pause-synack")]
        if matches!(self.state, State::SynReceived) && self.synack_paused {
            return Ok(());
        }

        // Decide whether we're sending a packet.
        if self.seq_to_transmit(cx) {
            // If we have data to transmit and it fits into partner's window, do it.
            tcp_trace!("outgoing segment will send data or flags");
        } else if self.ack_to_transmit() && self.delayed_ack_expired(cx.now()) {
            // If we have data to acknowledge, do it.
            tcp_trace!("outgoing segment will acknowledge");
        } else if self.window_to_update() {
            // If we have window length increase to advertise, do it.
            tcp_trace!("outgoing segment will update window");
        } else if self.state == State::Closed {
            // If we need to abort the connection, do it.
            tcp_trace!("outgoing segment will abort connection");
        } else if self.timer.should_keep_alive(cx.now()) {
            // If we need to transmit a keep-alive packet, do it.
            tcp_trace!("keep-alive timer expired");
        } else if self.timer.should_zero_window_probe(cx.now()) {
            tcp_trace!("sending zero-window probe");
        } else if self.timer.should_close(cx.now()) {
            // If we have spent enough time in the TIME-WAIT state, close the socket.
            tcp_trace!("TIME-WAIT timer expired");
            self.reset();
            return Ok(());
        } else {
            return Ok(());
        }

        // Construct the lowered IP representation.
        // We might need this to calculate the MSS, so do it early.
        let mut ip_repr = IpRepr::new(
            tuple.local.addr,
            tuple.remote.addr,
            IpProtocol::Tcp,
            0,
            self.hop_limit.unwrap_or(64),
        );

        // Construct the basic TCP representation, an empty ACK packet.
        // We'll adjust this to be more specific as needed.
        let mut repr = TcpRepr {
            src_port: tuple.local.port,
            dst_port: tuple.remote.port,
            control: TcpControl::None,
            seq_number: self.remote_last_seq,
            ack_number: Some(self.remote_seq_no + self.rx_buffer.len()),
            window_len: self.scaled_window(),
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None, None, None],
            timestamp: self.ts_option(cx.now()),
            ecn: Default::default(),
            payload: &[],
        };

        // xdpstack patch (issue 19, RFC 2018 4): every segment that carries
        // an ACK carries SACK blocks while there are holes (delayed ACKs,
        // window updates, data: its payload shrinks to make room, the MSS
        // being computed from `header_len` below); upstream sent them only
        // on the immediate ACKs of `ack_reply`. Not on a SYN (its SACK
        // option is the permission) nor on an RST.
        if let Some(ack) = repr.ack_number
            && !matches!(
                self.state,
                State::Closed | State::Listen | State::SynSent | State::SynReceived
            )
        {
            repr.sack_ranges = self.sack_ranges(ack, None);
        }

        let mut is_zero_window_probe = false;
        // xdpstack patch 12: what kind of data segment this is.
        let mut sent = Sent::New;

        #[cfg_attr(
            not(feature = "segmentation-offload"),
            expect(
                unused_mut,
                reason = "The default is not mutated if the segmentation offload feature is not enabled."
            )
        )]
        let mut packet_meta = PacketMeta::default();

        match self.state {
            // We transmit an RST in the CLOSED state. If we ended up in the CLOSED state
            // with a specified endpoint, it means that the socket was aborted.
            State::Closed => {
                repr.control = TcpControl::Rst;
            }

            // We never transmit anything in the LISTEN state.
            State::Listen => return Ok(()),

            // We transmit a SYN in the SYN-SENT state.
            // We transmit a SYN|ACK in the SYN-RECEIVED state.
            State::SynSent | State::SynReceived => {
                repr.control = TcpControl::Syn;
                repr.seq_number = self.local_seq_no;
                // window len must NOT be scaled in SYNs.
                repr.window_len = u16::try_from(self.rx_window()).unwrap_or(u16::MAX);
                if self.state == State::SynSent {
                    repr.ack_number = None;
                    repr.window_scale = Some(self.remote_win_shift);
                    repr.sack_permitted = true;
                } else {
                    repr.sack_permitted = self.remote_has_sack;
                    repr.window_scale = self.remote_win_scale.map(|_| self.remote_win_shift);
                    // xdpstack patch 17 (ECN): an ECN-setup SYN-ACK (ECE, not
                    // CWR, not ECT: RFC 3168 §6.1.1).
                    repr.ecn.ece = self.ecn.ok;
                }
            }

            // We transmit data in all states where we may have data in the buffer,
            // or the transmit half of the connection is still open.
            State::Established
            | State::FinWait1
            | State::Closing
            | State::CloseWait
            | State::LastAck => {
                // Extract as much data as the remote side can receive in this packet
                // from the transmit buffer.

                // Maximum size we're allowed to send. This can be limited by 4 factors:
                // 1. remote window
                // 2. MSS the remote is willing to accept, probably determined by their MTU
                // 3. MSS we can send, determined by our MTU.
                // 4. Our congestion window
                let options_len = repr.header_len() - TCP_HEADER_LEN;
                let local_mss = cx.ip_mtu() - ip_repr.header_len() - TCP_HEADER_LEN;
                let effective_mss = local_mss.min(self.remote_mss).saturating_sub(options_len);

                // xdpstack patch 12: a lost range first, then new data, and
                // when the probe timer fired with nothing new to send, the
                // last segment again.
                // xdpstack patch 13: nothing but an ACK while pacing holds
                // data back.
                let paced = self.paced_until(cx.now()).is_some();
                let rtx = if paced { None } else { self.sack_next_rtx() };
                // xdpstack patch 27: the probe goes even while pacing holds
                // data back (one segment, in the timer's place).
                let probe = rtx.is_none() && self.tlp_due(cx.now());
                let probe_new = probe
                    && self.remote_last_seq < self.local_seq_no + self.tx_buffer.len()
                    && self.remote_last_seq < self.local_seq_no + self.remote_win_len;
                let offset = if self.pending_fast_retransmit {
                    let size = effective_mss.min(self.tx_buffer.len());
                    repr.seq_number = self.local_seq_no;
                    repr.payload = self.tx_buffer.get_allocated(0, size);

                    self.pending_fast_retransmit = false;

                    0
                } else if let Some((from, to)) = rtx {
                    let offset = from - self.local_seq_no;
                    let size = (to - from)
                        .min(effective_mss)
                        .min(self.tx_buffer.len().saturating_sub(offset));
                    repr.seq_number = from;
                    repr.payload = self.tx_buffer.get_allocated(offset, size);
                    sent = Sent::Retransmit;
                    offset
                } else if probe && !probe_new {
                    // RFC 8985 §7.3: the highest-sequence segment again.
                    let data_end = self.local_seq_no + self.tx_buffer.len();
                    let snd_max = self.snd_max_seq();
                    let end = snd_max.min(data_end);
                    let len = (end - self.local_seq_no).min(effective_mss);
                    let offset = (end - self.local_seq_no) - len;
                    repr.seq_number = self.local_seq_no + offset;
                    repr.payload = self.tx_buffer.get_allocated(offset, len);
                    sent = Sent::Probe;
                    offset
                } else {
                    // Right edge of window, ie the max sequence number we're allowed to send.
                    let win_right_edge = self.local_seq_no + self.remote_win_len;

                    // Max amount of octets we're allowed to send according to the remote window.
                    let mut win_limit = if win_right_edge >= self.remote_last_seq {
                        win_right_edge - self.remote_last_seq
                    } else {
                        // This can happen if we've sent some data and later the remote side
                        // has shrunk its window so that data is no longer inside the window.
                        // This should be very rare and is strongly discouraged by the RFCs,
                        // but it does happen in practice.
                        // http://www.tcpipguide.com/free/t_TCPWindowManagementIssues.htm
                        0
                    };

                    // To send a zero-window-probe, force the window limit to at least 1 byte.
                    if win_limit == 0 && self.timer.should_zero_window_probe(cx.now()) {
                        win_limit = 1;
                        is_zero_window_probe = true;
                    }

                    // Maximum size we're allowed to send. This can be limited by 4 factors:
                    // 1. remote window
                    // 2. congestion window
                    // 3. MSS the remote is willing to accept, probably determined by their MTU
                    // 4. MSS we can send, determined by our MTU.
                    //
                    // If the device supports its offload, segmentation that is needed
                    // to comply with the latter two will be handled by the device based on the
                    // metadata we provide.

                    #[cfg(not(feature = "segmentation-offload"))]
                    let device_limit = effective_mss;

                    #[cfg(feature = "segmentation-offload")]
                    let device_limit = {
                        let segmentation_caps = cx.segmentation_caps();
                        match ip_repr.version() {
                            #[cfg(feature = "proto-ipv4")]
                            crate::wire::IpVersion::Ipv4 => segmentation_caps.tcpv4,
                            #[cfg(feature = "proto-ipv6")]
                            crate::wire::IpVersion::Ipv6 => segmentation_caps.tcpv6,
                        }
                        .map(|buf_size| {
                            let pre_ip_header_len = cx.max_transmission_unit() - cx.ip_mtu();
                            buf_size.get()
                                - pre_ip_header_len
                                - ip_repr.header_len()
                                - TCP_HEADER_LEN
                                - options_len
                        })
                        .unwrap_or(effective_mss)
                    };

                    let size = if paced {
                        0
                    } else if is_zero_window_probe {
                        // Zero-window probes are exempt from the congestion window: they
                        // are sent precisely when normal transmission is impossible, and
                        // an empty segment elicits no reply, so capping the probe to a
                        // zero length would stall the connection if a window update from
                        // the remote got lost.
                        win_limit.min(device_limit)
                    } else {
                        win_limit.min(device_limit).min(self.send_allowance())
                    };
                    // A probe with new data is one segment, whatever the
                    // congestion window says (RFC 8985 §7.3).
                    let size = if probe_new {
                        sent = Sent::ProbeNew;
                        win_limit.min(effective_mss)
                    } else {
                        size
                    };

                    let offset = self.flight_size();
                    // xdpstack: no runt while data is in flight and more is
                    // queued than the allowance lets out (see
                    // `seq_to_transmit_unpaced`).
                    let size = if offset > 0
                        && !is_zero_window_probe
                        && !probe_new
                        && size < effective_mss
                        && size < self.tx_buffer.len().saturating_sub(offset)
                    {
                        0
                    } else {
                        size
                    };
                    repr.payload = self.tx_buffer.get_allocated(offset, size);

                    #[cfg(feature = "segmentation-offload")]
                    if repr.payload.len() > effective_mss {
                        packet_meta.segmentation_offload_size =
                            core::num::NonZeroU16::try_from(u16::try_from(effective_mss).unwrap())
                                .unwrap()
                                .into();
                    }

                    offset
                };

                // If we've sent everything we had in the buffer, follow it with the PSH or FIN
                // flags, depending on whether the transmit half of the connection is open.
                if offset + repr.payload.len() == self.tx_buffer.len() {
                    match self.state {
                        State::FinWait1 | State::LastAck | State::Closing => {
                            repr.control = TcpControl::Fin
                        }
                        State::Established | State::CloseWait if !repr.payload.is_empty() => {
                            repr.control = TcpControl::Psh
                        }
                        _ => (),
                    }
                }
            }

            // In FIN-WAIT-2 and TIME-WAIT states we may only transmit ACKs for incoming data or FIN
            State::FinWait2 | State::TimeWait => {}
        }

        // There might be more than one reason to send a packet. E.g. the keep-alive timer
        // has expired, and we also have data in transmit buffer. Since any packet that occupies
        // sequence space will elicit an ACK, we only need to send an explicit packet if we
        // couldn't fill the sequence space with anything.
        // xdpstack patch: an ACK-only segment carries SND.MAX (see `snd_max`).
        if repr.control == TcpControl::None && repr.payload.is_empty() {
            repr.seq_number = self.ack_only_seq();
        }
        let is_keep_alive;
        if self.timer.should_keep_alive(cx.now()) && repr.is_empty() {
            repr.seq_number = repr.seq_number - 1;
            repr.payload = b"\x00"; // RFC 1122 says we should do this
            is_keep_alive = true;
        } else {
            is_keep_alive = false;
        }

        // xdpstack patch (ECN, RFC 3168 §6.1): ECE on every ACK while the
        // receiver echoes congestion; ECT(0) on new data only (not on pure
        // ACKs, retransmissions, probes resending data, keep-alives or window
        // probes: §6.1.5, §6.1.6), and CWR on the first new data after a
        // reduction.
        let mut sent_cwr = false;
        if self.ecn.ok
            && repr.ack_number.is_some()
            && !matches!(repr.control, TcpControl::Syn | TcpControl::Rst)
        {
            repr.ecn.ece = self.ecn.ece;
            if !repr.payload.is_empty()
                && !is_keep_alive
                && !is_zero_window_probe
                && matches!(sent, Sent::New | Sent::ProbeNew)
                && repr.seq_number >= self.snd_max_seq()
            {
                repr.ecn.ip = IpEcn::Ect0;
                repr.ecn.cwr = self.ecn.cwr_pending;
                sent_cwr = self.ecn.cwr_pending;
            }
        }

        // Trace a summary of what will be sent.
        if is_keep_alive {
            tcp_trace!("sending a keep-alive");
        } else if !repr.payload.is_empty() {
            tcp_trace!(
                "tx buffer: sending {} octets at offset {}",
                repr.payload.len(),
                self.flight_size()
            );
        }
        if repr.control != TcpControl::None || repr.payload.is_empty() {
            let flags = match (repr.control, repr.ack_number) {
                (TcpControl::Syn, None) => "SYN",
                (TcpControl::Syn, Some(_)) => "SYN|ACK",
                (TcpControl::Fin, Some(_)) => "FIN|ACK",
                (TcpControl::Rst, Some(_)) => "RST|ACK",
                (TcpControl::Psh, Some(_)) => "PSH|ACK",
                (TcpControl::None, Some(_)) => "ACK",
                _ => "<unreachable>",
            };
            tcp_trace!("sending {}", flags);
        }

        if repr.control == TcpControl::Syn {
            // Fill the MSS option. See RFC 6691 for an explanation of this calculation.
            let max_segment_size = cx.ip_mtu() - ip_repr.header_len() - TCP_HEADER_LEN;
            repr.max_seg_size = Some(max_segment_size as u16);
        }

        // Actually send the packet. If this succeeds, it means the packet is in
        // the device buffer, and its transmission is imminent. If not, we might have
        // a number of problems, e.g. we need neighbor discovery.
        //
        // Bailing out if the packet isn't placed in the device buffer allows us
        // to not waste time waiting for the retransmit timer on packets that we know
        // for sure will not be successfully transmitted.
        ip_repr.set_payload_len(repr.buffer_len());
        emit(cx, packet_meta, (ip_repr, repr))?;
        if sent_cwr {
            self.ecn.cwr_pending = false;
            self.ecn.cwr_seq = Some(repr.seq_number);
        }

        // We've sent something, whether useful data or a keep-alive packet, so rewind
        // the keep-alive timer.
        self.timer.rewind_keep_alive(cx.now(), self.keep_alive);

        // Reset delayed-ack timer
        match self.ack_delay_timer {
            AckDelayTimer::Idle => {}
            AckDelayTimer::Waiting(_) => {
                tcp_trace!("stop delayed ack timer")
            }
            AckDelayTimer::Immediate => {
                tcp_trace!("stop delayed ack timer (was force-expired)")
            }
        }
        self.ack_delay_timer = AckDelayTimer::Idle;

        // Leave the rest of the state intact if sending a zero-window probe.
        if is_zero_window_probe {
            self.timer.rewind_zero_window_probe(cx.now());
            return Ok(());
        }

        // Leave the rest of the state intact if sending a keep-alive packet, since those
        // carry a fake segment.
        if is_keep_alive {
            return Ok(());
        }

        // We've sent a packet successfully, so we can update the internal state now.
        // Use max() so a fast-retransmit segment (whose seq_number is local_seq_no, well
        // behind the current frontier) doesn't rewind the tracked "highest sent" sequence.
        self.remote_last_seq = self
            .remote_last_seq
            .max(repr.seq_number + repr.segment_len());
        if repr.segment_len() > 0 {
            let sent = repr.seq_number + repr.segment_len();
            self.snd_max = Some(self.snd_max.map_or(sent, |m| m.max(sent)));
        }
        self.remote_last_ack = repr.ack_number;
        self.remote_last_win = repr.window_len;
        // xdpstack patch: the right edge just advertised (a SYN's window is
        // not scaled).
        if let Some(ack) = repr.ack_number {
            let shift = if repr.control == TcpControl::Syn {
                0
            } else {
                self.remote_win_shift
            };
            let edge = ack + ((repr.window_len as usize) << shift);
            if self.rx_edge.is_none_or(|e| edge > e) {
                self.rx_edge = Some(edge);
            }
        }

        if repr.segment_len() > 0 {
            self.rtte
                .on_send(cx.now(), repr.seq_number + repr.segment_len());
            self.congestion_controller
                .inner_mut()
                .post_transmit(cx.now(), repr.segment_len());
        }

        let (seg_seq, seg_len) = (repr.seq_number, repr.segment_len());
        if seg_len > 0 && !self.timer.is_retransmit() {
            // RFC 6298 (5.1) Every time a packet containing data is sent (including a
            // retransmission), if the timer is not running, start it running
            // so that it will expire after RTO seconds.
            let rto = self.rtte.retransmission_timeout();
            self.timer.set_for_retransmit(cx.now(), rto);
        } else if seg_len > 0 && sent == Sent::Retransmit && seg_seq == self.local_seq_no {
            // xdpstack: resending SND.UNA's segment restarts the timer, as
            // Linux's `tcp_xmit_retransmit_queue` rearms it for the head of
            // its retransmission queue. Else the timer started by the last
            // ACK that moved SND.UNA kept running through fast recovery: a
            // loss found late (SACKs queued behind a full bottleneck) was
            // resent a few ms before it fired, and the timeout came before
            // the retransmission's ACK could (a spurious timeout, the window
            // down to one segment: wan's 100 parallel flows saw it).
            let rto = self.rtte.retransmission_timeout();
            self.timer.set_for_retransmit(cx.now(), rto);
        }
        if seg_len > 0 && self.sack_active() {
            self.sack_on_send(cx.now(), seg_seq, seg_len, sent);
            self.pace(cx.now(), seg_len);
            self.arm_tlp(cx.now());
        }

        if self.state == State::Closed {
            // When aborting a connection, forget about it after sending a single RST packet.
            self.tuple = None;
            #[cfg(feature = "async")]
            {
                // Wake tx now so that async users can wait for the RST to be sent
                self.tx_waker.wake();
            }
        }

        Ok(())
    }

    #[allow(clippy::if_same_then_else)]
    pub(crate) fn poll_at(&self, cx: &mut Context) -> PollAt {
        // The logic here mirrors the beginning of dispatch() closely.
        if self.tuple.is_none() {
            // No one to talk to, nothing to transmit.
            PollAt::Ingress
        } else if self.remote_last_ts.is_none() {
            // Socket stopped being quiet recently, we need to acquire a timestamp.
            PollAt::Now
        } else if self.state == State::Closed {
            // Socket was aborted, we have an RST packet to transmit.
            PollAt::Now
        } else if self.seq_to_transmit(cx) {
            // We have a data or flag packet to transmit.
            PollAt::Now
        } else if self.window_to_update() {
            // The receive window has been raised significantly.
            PollAt::Now
        } else {
            let want_ack = self.ack_to_transmit();

            let delayed_ack_poll_at = match (want_ack, self.ack_delay_timer) {
                (false, _) => PollAt::Ingress,
                (true, AckDelayTimer::Idle) => PollAt::Now,
                (true, AckDelayTimer::Waiting(t)) => PollAt::Time(t),
                (true, AckDelayTimer::Immediate) => PollAt::Now,
            };

            let timeout_poll_at = match (self.remote_last_ts, self.timeout) {
                // If we're transmitting or retransmitting data, we need to poll at the moment
                // when the timeout would expire.
                (Some(remote_last_ts), Some(timeout)) => PollAt::Time(remote_last_ts + timeout),
                // Otherwise we have no timeout.
                (_, _) => PollAt::Ingress,
            };

            // xdpstack patch 13: pacing.
            let pace_poll_at = match self.paced_until(cx.now()) {
                Some(t) if self.seq_to_transmit_unpaced(cx) => PollAt::Time(t),
                _ => PollAt::Ingress,
            };
            // xdpstack patch 12: the tail loss probe.
            let tlp_poll_at = self.tlp_deadline().map_or(PollAt::Ingress, PollAt::Time);
            // xdpstack patch 29: RACK's reordering timer.
            let reo_poll_at = self
                .reo_deadline(cx.now())
                .map_or(PollAt::Ingress, PollAt::Time);

            // We wait for the earliest of our timers to fire.
            *[
                self.timer.poll_at(),
                timeout_poll_at,
                delayed_ack_poll_at,
                tlp_poll_at,
                reo_poll_at,
                pace_poll_at,
            ]
            .iter()
            .min()
            .unwrap_or(&PollAt::Ingress)
        }
    }
}

impl<'a> fmt::Write for Socket<'a> {
    fn write_str(&mut self, slice: &str) -> fmt::Result {
        let slice = slice.as_bytes();
        if self.send_slice(slice) == Ok(slice.len()) {
            Ok(())
        } else {
            Err(fmt::Error)
        }
    }
}

// TODO: TCP should work for all features. For now, we only test with the IP feature. We could do
// it for other features as well with rstest, however, this means we have to modify a lot of the
// tests in here, which I didn't had the time for at the moment.
#[cfg(all(test, feature = "medium-ip"))]
mod test {
    use super::*;
    use crate::config::IFACE_MAX_ADDR_COUNT;
    use crate::wire::{IpCidr, IpRepr};
    use std::ops::{Deref, DerefMut};
    use std::vec::Vec;

    // =========================================================================================//
    // Constants
    // =========================================================================================//

    const LOCAL_PORT: u16 = 80;
    const REMOTE_PORT: u16 = 49500;
    const LISTEN_END: IpListenEndpoint = IpListenEndpoint {
        addr: None,
        port: LOCAL_PORT,
    };
    const TUPLE: Tuple = Tuple {
        local: LOCAL_END,
        remote: REMOTE_END,
    };
    const LOCAL_SEQ: TcpSeqNumber = TcpSeqNumber(10000);
    const REMOTE_SEQ: TcpSeqNumber = TcpSeqNumber(-10001);

    cfg_if::cfg_if! {
        if #[cfg(feature = "proto-ipv4")] {
            use crate::wire::Ipv4Address as IpvXAddress;
            use crate::wire::Ipv4Repr as IpvXRepr;
            use IpRepr::Ipv4 as IpReprIpvX;

            const LOCAL_ADDR: IpvXAddress = IpvXAddress::new(192, 168, 1, 1);
            const REMOTE_ADDR: IpvXAddress = IpvXAddress::new(192, 168, 1, 2);
            const OTHER_ADDR: IpvXAddress = IpvXAddress::new(192, 168, 1, 3);

            const BASE_MSS: u16 = 1460;

            const LOCAL_END: IpEndpoint = IpEndpoint {
                addr: IpAddress::Ipv4(LOCAL_ADDR),
                port: LOCAL_PORT,
            };
            const REMOTE_END: IpEndpoint = IpEndpoint {
                addr: IpAddress::Ipv4(REMOTE_ADDR),
                port: REMOTE_PORT,
            };
        } else {
            use crate::wire::Ipv6Address as IpvXAddress;
            use crate::wire::Ipv6Repr as IpvXRepr;
            use IpRepr::Ipv6 as IpReprIpvX;

            const LOCAL_ADDR: IpvXAddress = IpvXAddress::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
            const REMOTE_ADDR: IpvXAddress = IpvXAddress::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
            const OTHER_ADDR: IpvXAddress = IpvXAddress::new(0xfe80, 0, 0, 0, 0, 0, 0, 3);

            const BASE_MSS: u16 = 1440;

            const LOCAL_END: IpEndpoint = IpEndpoint {
                addr: IpAddress::Ipv6(LOCAL_ADDR),
                port: LOCAL_PORT,
            };
            const REMOTE_END: IpEndpoint = IpEndpoint {
                addr: IpAddress::Ipv6(REMOTE_ADDR),
                port: REMOTE_PORT,
            };
        }
    }

    const SEND_IP_TEMPL: IpRepr = IpReprIpvX(IpvXRepr {
        src_addr: LOCAL_ADDR,
        dst_addr: REMOTE_ADDR,
        next_header: IpProtocol::Tcp,
        payload_len: 20,
        hop_limit: 64,
    });
    const SEND_TEMPL: TcpRepr<'static> = TcpRepr {
        src_port: REMOTE_PORT,
        dst_port: LOCAL_PORT,
        control: TcpControl::None,
        seq_number: TcpSeqNumber(0),
        ack_number: Some(TcpSeqNumber(0)),
        window_len: 256,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        ecn: crate::wire::TcpEcn::NONE,
        payload: &[],
    };
    const _RECV_IP_TEMPL: IpRepr = IpReprIpvX(IpvXRepr {
        src_addr: LOCAL_ADDR,
        dst_addr: REMOTE_ADDR,
        next_header: IpProtocol::Tcp,
        payload_len: 20,
        hop_limit: 64,
    });
    const RECV_TEMPL: TcpRepr<'static> = TcpRepr {
        src_port: LOCAL_PORT,
        dst_port: REMOTE_PORT,
        control: TcpControl::None,
        seq_number: TcpSeqNumber(0),
        ack_number: Some(TcpSeqNumber(0)),
        window_len: 64,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        ecn: crate::wire::TcpEcn::NONE,
        payload: &[],
    };

    // =========================================================================================//
    // Helper functions
    // =========================================================================================//

    struct TestSocket {
        socket: Socket<'static>,
        cx: Context,
    }

    impl Deref for TestSocket {
        type Target = Socket<'static>;
        fn deref(&self) -> &Self::Target {
            &self.socket
        }
    }

    impl DerefMut for TestSocket {
        fn deref_mut(&mut self) -> &mut Self::Target {
            &mut self.socket
        }
    }

    #[track_caller]
    fn send(
        socket: &mut TestSocket,
        timestamp: Instant,
        repr: &TcpRepr,
    ) -> Option<TcpRepr<'static>> {
        socket.cx.set_now(timestamp);

        let ip_repr = IpReprIpvX(IpvXRepr {
            src_addr: REMOTE_ADDR,
            dst_addr: LOCAL_ADDR,
            next_header: IpProtocol::Tcp,
            payload_len: repr.buffer_len(),
            hop_limit: 64,
        });
        net_trace!("send: {}", repr);

        assert!(socket.socket.accepts(&mut socket.cx, &ip_repr, repr));

        match socket.socket.process(&mut socket.cx, &ip_repr, repr) {
            Some((_ip_repr, repr)) => {
                net_trace!("recv: {}", repr);
                Some(repr)
            }
            None => None,
        }
    }

    #[track_caller]
    fn recv<F>(socket: &mut TestSocket, timestamp: Instant, mut f: F)
    where
        F: FnMut(Result<TcpRepr, ()>),
    {
        socket.cx.set_now(timestamp);

        let mut sent = 0;
        let result = socket
            .socket
            .dispatch(&mut socket.cx, |_, _, (ip_repr, tcp_repr)| {
                assert_eq!(ip_repr.next_header(), IpProtocol::Tcp);
                assert_eq!(ip_repr.src_addr(), LOCAL_ADDR.into());
                assert_eq!(ip_repr.dst_addr(), REMOTE_ADDR.into());
                assert_eq!(ip_repr.payload_len(), tcp_repr.buffer_len());

                net_trace!("recv: {}", tcp_repr);
                sent += 1;
                Ok(f(Ok(tcp_repr)))
            });
        match result {
            Ok(()) => assert_eq!(sent, 1, "Exactly one packet should be sent"),
            Err(e) => f(Err(e)),
        }
    }

    #[track_caller]
    fn recv_nothing(socket: &mut TestSocket, timestamp: Instant) {
        socket.cx.set_now(timestamp);

        let mut fail = false;
        let result: Result<(), ()> = socket.socket.dispatch(&mut socket.cx, |_, _, _| {
            fail = true;
            Ok(())
        });
        if fail {
            panic!("Should not send a packet")
        }

        assert_eq!(result, Ok(()))
    }

    #[collapse_debuginfo(yes)]
    macro_rules! send {
        ($socket:ident, $repr:expr) =>
            (send!($socket, time 0, $repr));
        ($socket:ident, $repr:expr, $result:expr) =>
            (send!($socket, time 0, $repr, $result));
        ($socket:ident, time $time:expr, $repr:expr) =>
            (send!($socket, time $time, $repr, None));
        ($socket:ident, time $time:expr, $repr:expr, $result:expr) =>
            (assert_eq!(send(&mut $socket, Instant::from_millis($time), &$repr), $result));
    }

    #[collapse_debuginfo(yes)]
    macro_rules! recv {
        ($socket:ident, [$( $repr:expr ),*]) => ({
            $( recv!($socket, Ok($repr)); )*
            recv_nothing!($socket)
        });
        ($socket:ident, time $time:expr, [$( $repr:expr ),*]) => ({
            $( recv!($socket, time $time, Ok($repr)); )*
            recv_nothing!($socket, time $time)
        });
        ($socket:ident, $result:expr) =>
            (recv!($socket, time 0, $result));
        ($socket:ident, time $time:expr, $result:expr) =>
            (recv(&mut $socket, Instant::from_millis($time), |result| {
                // Most of the time we don't care about the PSH flag.
                let result = result.map(|mut repr| {
                    repr.control = repr.control.quash_psh();
                    repr
                });
                assert_eq!(result, $result)
            }));
        ($socket:ident, time $time:expr, $result:expr, exact) =>
            (recv(&mut $socket, Instant::from_millis($time), |repr| assert_eq!(repr, $result)));
    }

    #[collapse_debuginfo(yes)]
    macro_rules! recv_nothing {
        ($socket:ident) => (recv_nothing!($socket, time 0));
        ($socket:ident, time $time:expr) => (recv_nothing(&mut $socket, Instant::from_millis($time)));
    }

    #[collapse_debuginfo(yes)]
    macro_rules! sanity {
        ($socket1:expr, $socket2:expr) => {{
            let (s1, s2) = ($socket1, $socket2);
            assert_eq!(s1.state, s2.state, "state");
            assert_eq!(s1.tuple, s2.tuple, "tuple");
            assert_eq!(s1.local_seq_no, s2.local_seq_no, "local_seq_no");
            assert_eq!(s1.remote_seq_no, s2.remote_seq_no, "remote_seq_no");
            assert_eq!(s1.remote_last_seq, s2.remote_last_seq, "remote_last_seq");
            assert_eq!(s1.remote_last_ack, s2.remote_last_ack, "remote_last_ack");
            assert_eq!(s1.remote_last_win, s2.remote_last_win, "remote_last_win");
            assert_eq!(s1.remote_win_len, s2.remote_win_len, "remote_win_len");
            assert_eq!(s1.timer, s2.timer, "timer");
        }};
    }

    fn socket() -> TestSocket {
        socket_with_buffer_sizes(64, 64)
    }

    fn socket_with_buffer_sizes(tx_len: usize, rx_len: usize) -> TestSocket {
        let (iface, _, _) = crate::tests::setup(crate::phy::Medium::Ip);

        let rx_buffer = SocketBuffer::new(vec![0; rx_len]);
        let tx_buffer = SocketBuffer::new(vec![0; tx_len]);
        let mut socket = Socket::new(rx_buffer, tx_buffer);
        socket.set_ack_delay(None);
        TestSocket {
            socket,
            cx: iface.inner,
        }
    }

    fn socket_syn_received_with_buffer_sizes(tx_len: usize, rx_len: usize) -> TestSocket {
        let mut s = socket_with_buffer_sizes(tx_len, rx_len);
        s.state = State::SynReceived;
        s.tuple = Some(TUPLE);
        s.local_seq_no = LOCAL_SEQ;
        s.remote_seq_no = REMOTE_SEQ + 1;
        s.remote_last_seq = LOCAL_SEQ;
        s.remote_win_len = 256;
        s
    }

    fn socket_syn_received() -> TestSocket {
        socket_syn_received_with_buffer_sizes(64, 64)
    }

    fn socket_syn_sent_with_buffer_sizes(tx_len: usize, rx_len: usize) -> TestSocket {
        let mut s = socket_with_buffer_sizes(tx_len, rx_len);
        s.state = State::SynSent;
        s.tuple = Some(TUPLE);
        s.local_seq_no = LOCAL_SEQ;
        s.remote_last_seq = LOCAL_SEQ;
        s
    }

    fn socket_syn_sent() -> TestSocket {
        socket_syn_sent_with_buffer_sizes(64, 64)
    }

    fn socket_established_with_buffer_sizes(tx_len: usize, rx_len: usize) -> TestSocket {
        let mut s = socket_syn_received_with_buffer_sizes(tx_len, rx_len);
        s.state = State::Established;
        s.local_seq_no = LOCAL_SEQ + 1;
        s.remote_last_seq = LOCAL_SEQ + 1;
        s.remote_last_ack = Some(REMOTE_SEQ + 1);
        s.remote_last_win = s.scaled_window();
        s
    }

    fn socket_established() -> TestSocket {
        socket_established_with_buffer_sizes(64, 64)
    }

    fn socket_fin_wait_1() -> TestSocket {
        let mut s = socket_established();
        s.state = State::FinWait1;
        s
    }

    fn socket_fin_wait_2() -> TestSocket {
        let mut s = socket_fin_wait_1();
        s.state = State::FinWait2;
        s.local_seq_no = LOCAL_SEQ + 1 + 1;
        s.remote_last_seq = LOCAL_SEQ + 1 + 1;
        s
    }

    fn socket_closing() -> TestSocket {
        let mut s = socket_fin_wait_1();
        s.state = State::Closing;
        s.remote_last_seq = LOCAL_SEQ + 1 + 1;
        s.remote_seq_no = REMOTE_SEQ + 1 + 1;
        s.timer = Timer::Retransmit {
            expires_at: Instant::from_millis_const(1000),
        };
        s
    }

    fn socket_time_wait(from_closing: bool) -> TestSocket {
        let mut s = socket_fin_wait_2();
        s.state = State::TimeWait;
        s.remote_seq_no = REMOTE_SEQ + 1 + 1;
        if from_closing {
            s.remote_last_ack = Some(REMOTE_SEQ + 1 + 1);
        }
        s.timer = Timer::Close {
            expires_at: Instant::from_secs(1) + CLOSE_DELAY,
        };
        s
    }

    fn socket_close_wait() -> TestSocket {
        let mut s = socket_established();
        s.state = State::CloseWait;
        s.remote_seq_no = REMOTE_SEQ + 1 + 1;
        s.remote_last_ack = Some(REMOTE_SEQ + 1 + 1);
        s
    }

    fn socket_last_ack() -> TestSocket {
        let mut s = socket_close_wait();
        s.state = State::LastAck;
        s
    }

    fn socket_recved() -> TestSocket {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 58,
                ..RECV_TEMPL
            }]
        );
        s
    }

    // =========================================================================================//
    // Tests for the CLOSED state.
    // =========================================================================================//
    #[test]
    fn test_closed_reject() {
        let mut s = socket();
        assert_eq!(s.state, State::Closed);

        let tcp_repr = TcpRepr {
            control: TcpControl::Syn,
            ..SEND_TEMPL
        };
        assert!(!s.socket.accepts(&mut s.cx, &SEND_IP_TEMPL, &tcp_repr));
    }

    #[test]
    fn test_closed_reject_after_listen() {
        let mut s = socket();
        s.listen(LOCAL_END).unwrap();
        s.close();

        let tcp_repr = TcpRepr {
            control: TcpControl::Syn,
            ..SEND_TEMPL
        };
        assert!(!s.socket.accepts(&mut s.cx, &SEND_IP_TEMPL, &tcp_repr));
    }

    #[test]
    fn test_closed_close() {
        let mut s = socket();
        s.close();
        assert_eq!(s.state, State::Closed);
    }

    // =========================================================================================//
    // Tests for the LISTEN state.
    // =========================================================================================//
    fn socket_listen() -> TestSocket {
        let mut s = socket();
        s.state = State::Listen;
        s.listen_endpoint = LISTEN_END;
        s
    }

    #[test]
    fn test_listen_sack_option() {
        let mut s = socket_listen();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                sack_permitted: false,
                ..SEND_TEMPL
            }
        );
        assert!(!s.remote_has_sack);
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                ..RECV_TEMPL
            }]
        );

        let mut s = socket_listen();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                sack_permitted: true,
                ..SEND_TEMPL
            }
        );
        assert!(s.remote_has_sack);
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                sack_permitted: true,
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_listen_syn_win_scale_buffers() {
        for (buffer_size, shift_amt) in &[
            (64, 0),
            (128, 0),
            (1024, 0),
            (65535, 0),
            (65536, 1),
            (65537, 1),
            (131071, 1),
            (131072, 2),
            (524287, 3),
            (524288, 4),
            (655350, 4),
            (1048576, 5),
        ] {
            let mut s = socket_with_buffer_sizes(64, *buffer_size);
            s.state = State::Listen;
            s.listen_endpoint = LISTEN_END;
            assert_eq!(s.remote_win_shift, *shift_amt);
            send!(
                s,
                TcpRepr {
                    control: TcpControl::Syn,
                    seq_number: REMOTE_SEQ,
                    ack_number: None,
                    window_scale: Some(0),
                    ..SEND_TEMPL
                }
            );
            assert_eq!(s.remote_win_shift, *shift_amt);
            recv!(
                s,
                [TcpRepr {
                    control: TcpControl::Syn,
                    seq_number: LOCAL_SEQ,
                    ack_number: Some(REMOTE_SEQ + 1),
                    max_seg_size: Some(BASE_MSS),
                    window_scale: Some(*shift_amt),
                    window_len: u16::try_from(*buffer_size).unwrap_or(u16::MAX),
                    ..RECV_TEMPL
                }]
            );
        }
    }

    #[test]
    fn test_listen_syn_tiny_mss_is_clamped() {
        let mut s = socket_listen();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                max_seg_size: Some(10),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::SynReceived);
        assert_eq!(s.remote_mss, MIN_REMOTE_MSS);
    }

    #[test]
    fn test_listen_syn_zero_mss_is_ignored() {
        let mut s = socket_listen();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                max_seg_size: Some(0),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::SynReceived);
        assert_eq!(s.remote_mss, DEFAULT_MSS);
    }

    #[test]
    fn test_listen_sanity() {
        let mut s = socket();
        s.listen(LOCAL_PORT).unwrap();
        sanity!(s, socket_listen());
    }

    #[test]
    fn test_listen_validation() {
        let mut s = socket();
        assert_eq!(s.listen(0), Err(ListenError::Unaddressable));
    }

    #[test]
    fn test_listen_twice() {
        let mut s = socket();
        assert_eq!(s.listen(80), Ok(()));
        // multiple calls to listen are okay if its the same local endpoint and the state is still in listening
        assert_eq!(s.listen(80), Ok(()));
        s.set_state(State::SynReceived); // state change, simulate incoming connection
        assert_eq!(s.listen(80), Err(ListenError::InvalidState));
    }

    #[test]
    fn test_listen_syn() {
        let mut s = socket_listen();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                ..SEND_TEMPL
            }
        );
        sanity!(s, socket_syn_received());
    }

    /// xdpstack patch 19 (TIME-WAIT): a chosen ISN that is not a cookie's is answered
    /// with a SYN-ACK as usual, starting the sequence space there.
    #[test]
    fn test_xdp_next_isn_unanswered_sends_its_syn_ack() {
        let mut s = socket_listen();
        let isn = LOCAL_SEQ + 70_000;
        s.set_next_isn_unanswered(isn);
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::SynReceived);
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: isn,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(isn + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Established);
    }

    /// xdpstack patch 19 (TIME-WAIT): a cookie's ISN (`set_next_isn`) counts its
    /// SYN-ACK as sent; a chosen ISN no SYN took does not outlive `listen`
    /// (a reused socket starts from a random one).
    #[test]
    fn test_xdp_next_isn_is_answered_for_cookies_and_cleared_by_listen() {
        let syn = TcpRepr {
            control: TcpControl::Syn,
            seq_number: REMOTE_SEQ,
            ack_number: None,
            ..SEND_TEMPL
        };
        let mut s = socket_listen();
        s.set_next_isn(Some(LOCAL_SEQ + 5));
        send!(s, syn);
        assert_eq!(s.state, State::SynReceived);
        recv_nothing!(s);

        let mut s = socket();
        s.set_next_isn_unanswered(LOCAL_SEQ + 5);
        s.listen(LISTEN_END).unwrap();
        send!(s, syn);
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                ..RECV_TEMPL
            }]
        );
    }

    /// xdpstack patch 19 (TIME-WAIT): in TIME-WAIT, `seq_state` is what the ACK of a
    /// retransmitted FIN carries: SND.NXT past our FIN, RCV.NXT past the
    /// peer's, the window field.
    #[test]
    fn test_xdp_seq_state_is_what_time_wait_acks() {
        let mut s = socket_time_wait(false);
        let st = s.seq_state();
        assert_eq!(st.snd_nxt, LOCAL_SEQ + 1 + 1);
        assert_eq!(st.rcv_nxt, REMOTE_SEQ + 1 + 1);
        assert_eq!(st.ts_recent, None);
        send!(
            s,
            time 1_000,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 1),
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: st.snd_nxt,
                ack_number: Some(st.rcv_nxt),
                window_len: st.window,
                ..RECV_TEMPL
            })
        );
    }

    #[test]
    fn test_listen_syn_reject_ack() {
        let mut s = socket_listen();

        let tcp_repr = TcpRepr {
            control: TcpControl::Syn,
            seq_number: REMOTE_SEQ,
            ack_number: Some(LOCAL_SEQ),
            ..SEND_TEMPL
        };
        assert!(!s.socket.accepts(&mut s.cx, &SEND_IP_TEMPL, &tcp_repr));

        assert_eq!(s.state, State::Listen);
    }

    #[test]
    fn test_listen_rst() {
        let mut s = socket_listen();
        let tcp_repr = TcpRepr {
            control: TcpControl::Rst,
            seq_number: REMOTE_SEQ,
            ack_number: None,
            ..SEND_TEMPL
        };
        assert!(!s.socket.accepts(&mut s.cx, &SEND_IP_TEMPL, &tcp_repr));
        assert_eq!(s.state, State::Listen);
    }

    #[test]
    fn test_listen_close() {
        let mut s = socket_listen();
        s.close();
        assert_eq!(s.state, State::Closed);
    }

    // =========================================================================================//
    // Tests for the SYN-RECEIVED state.
    // =========================================================================================//

    #[test]
    fn test_syn_received_ack() {
        let mut s = socket_syn_received();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Established);
        sanity!(s, socket_established());
    }

    #[cfg(feature = "socket-tcp-pause-synack")]
    #[test]
    fn test_syn_paused_ack() {
        let mut s = socket_syn_received();

        s.pause_synack(true);
        recv_nothing!(s);
        assert_eq!(s.state, State::SynReceived);

        s.pause_synack(false);
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Established);
    }

    #[test]
    fn test_syn_received_ack_too_low() {
        let mut s = socket_syn_received();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ), // wrong
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                control: TcpControl::Rst,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                window_len: 0,
                ..RECV_TEMPL
            })
        );
        assert_eq!(s.state, State::SynReceived);
    }

    #[test]
    fn test_syn_received_ack_too_high() {
        let mut s = socket_syn_received();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 2), // wrong
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                control: TcpControl::Rst,
                seq_number: LOCAL_SEQ + 2,
                ack_number: None,
                window_len: 0,
                ..RECV_TEMPL
            })
        );
        assert_eq!(s.state, State::SynReceived);
    }

    #[test]
    fn test_syn_received_fin() {
        let mut s = socket_syn_received();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6 + 1),
                window_len: 58,
                ..RECV_TEMPL
            }]
        );
        assert_eq!(s.state, State::CloseWait);

        let mut s2 = socket_close_wait();
        s2.remote_last_ack = Some(REMOTE_SEQ + 1 + 6 + 1);
        s2.remote_last_win = 58;
        sanity!(s, s2);
    }

    #[test]
    fn test_syn_received_rst() {
        let mut s = socket_syn_received();
        s.listen_endpoint = LISTEN_END;
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Listen);
        assert_eq!(s.listen_endpoint, LISTEN_END);
        assert_eq!(s.tuple, None);
    }

    #[test]
    fn test_syn_received_no_window_scaling() {
        let mut s = socket_listen();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state(), State::SynReceived);
        assert_eq!(s.tuple, Some(TUPLE));
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                window_scale: None,
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_scale: None,
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.remote_win_shift, 0);
        assert_eq!(s.remote_win_scale, None);
    }

    #[test]
    fn test_syn_received_window_scaling() {
        for scale in 0..14 {
            let mut s = socket_listen();
            send!(
                s,
                TcpRepr {
                    control: TcpControl::Syn,
                    seq_number: REMOTE_SEQ,
                    ack_number: None,
                    window_scale: Some(scale),
                    ..SEND_TEMPL
                }
            );
            assert_eq!(s.state(), State::SynReceived);
            assert_eq!(s.tuple, Some(TUPLE));
            recv!(
                s,
                [TcpRepr {
                    control: TcpControl::Syn,
                    seq_number: LOCAL_SEQ,
                    ack_number: Some(REMOTE_SEQ + 1),
                    max_seg_size: Some(BASE_MSS),
                    window_scale: Some(0),
                    ..RECV_TEMPL
                }]
            );
            send!(
                s,
                TcpRepr {
                    seq_number: REMOTE_SEQ + 1,
                    ack_number: Some(LOCAL_SEQ + 1),
                    window_scale: None,
                    ..SEND_TEMPL
                }
            );
            assert_eq!(s.remote_win_scale, Some(scale));
        }
    }

    #[test]
    fn test_syn_received_close() {
        let mut s = socket_syn_received();
        s.close();
        assert_eq!(s.state, State::FinWait1);
    }

    // =========================================================================================//
    // Tests for the SYN-SENT state.
    // =========================================================================================//

    #[test]
    fn test_connect_validation() {
        let mut s = socket();
        assert_eq!(
            s.socket
                .connect(&mut s.cx, REMOTE_END, (IpvXAddress::UNSPECIFIED, 0)),
            Err(ConnectError::Unaddressable)
        );
        assert_eq!(
            s.socket
                .connect(&mut s.cx, REMOTE_END, (IpvXAddress::UNSPECIFIED, 1024)),
            Err(ConnectError::Unaddressable)
        );
        assert_eq!(
            s.socket
                .connect(&mut s.cx, (IpvXAddress::UNSPECIFIED, 0), LOCAL_END),
            Err(ConnectError::Unaddressable)
        );
        s.socket
            .connect(&mut s.cx, REMOTE_END, LOCAL_END)
            .expect("Connect failed with valid parameters");
        assert_eq!(s.tuple, Some(TUPLE));
    }

    #[test]
    fn test_connect() {
        let mut s = socket();
        s.local_seq_no = LOCAL_SEQ;
        s.socket
            .connect(&mut s.cx, REMOTE_END, LOCAL_END.port)
            .unwrap();
        assert_eq!(s.tuple, Some(TUPLE));
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                sack_permitted: true,
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ + 1),
                max_seg_size: Some(BASE_MSS - 80),
                window_scale: Some(0),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.tuple, Some(TUPLE));
    }

    #[test]
    fn test_connect_synack_tiny_mss_is_clamped() {
        let mut s = socket();
        s.local_seq_no = LOCAL_SEQ;
        s.socket
            .connect(&mut s.cx, REMOTE_END, LOCAL_END.port)
            .unwrap();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                sack_permitted: true,
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ + 1),
                max_seg_size: Some(10),
                window_scale: Some(0),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Established);
        assert_eq!(s.remote_mss, MIN_REMOTE_MSS);
    }

    #[test]
    fn test_connect_synack_zero_mss_is_ignored() {
        let mut s = socket();
        s.local_seq_no = LOCAL_SEQ;
        s.socket
            .connect(&mut s.cx, REMOTE_END, LOCAL_END.port)
            .unwrap();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                sack_permitted: true,
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ + 1),
                max_seg_size: Some(0),
                window_scale: Some(0),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Established);
        assert_eq!(s.remote_mss, DEFAULT_MSS);
    }

    #[test]
    fn test_connect_unspecified_local() {
        let mut s = socket();
        assert_eq!(s.socket.connect(&mut s.cx, REMOTE_END, 80), Ok(()));
    }

    #[test]
    fn test_connect_specified_local() {
        let mut s = socket();
        assert_eq!(
            s.socket.connect(&mut s.cx, REMOTE_END, (REMOTE_ADDR, 80)),
            Ok(())
        );
    }

    #[test]
    fn test_connect_twice() {
        let mut s = socket();
        assert_eq!(s.socket.connect(&mut s.cx, REMOTE_END, 80), Ok(()));
        assert_eq!(
            s.socket.connect(&mut s.cx, REMOTE_END, 80),
            Err(ConnectError::InvalidState)
        );
    }

    #[test]
    fn test_syn_sent_sanity() {
        let mut s = socket();
        s.local_seq_no = LOCAL_SEQ;
        s.socket.connect(&mut s.cx, REMOTE_END, LOCAL_END).unwrap();
        sanity!(s, socket_syn_sent());
    }

    #[test]
    fn test_syn_sent_syn_ack() {
        let mut s = socket_syn_sent();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                sack_permitted: true,
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ + 1),
                max_seg_size: Some(BASE_MSS - 80),
                window_scale: Some(0),
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                ..RECV_TEMPL
            }]
        );
        recv_nothing!(s, time 1000);
        assert_eq!(s.state, State::Established);
        sanity!(s, socket_established());
    }

    #[test]
    fn test_syn_sent_syn_received_ack() {
        let mut s = socket_syn_sent();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                sack_permitted: true,
                ..RECV_TEMPL
            }]
        );

        // A SYN packet changes the SYN-SENT state to SYN-RECEIVED.
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS - 80),
                window_scale: Some(0),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::SynReceived);

        // The socket will then send a SYN|ACK packet.
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                ..RECV_TEMPL
            }]
        );
        recv_nothing!(s);

        // The socket may retransmit the SYN|ACK packet.
        recv!(
            s,
            time 1001,
            Ok(TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                ..RECV_TEMPL
            })
        );

        // An ACK packet changes the SYN-RECEIVED state to ESTABLISHED.
        send!(
            s,
            TcpRepr {
                control: TcpControl::None,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Established);
        sanity!(s, socket_established());
    }

    #[test]
    fn test_syn_sent_syn_ack_not_incremented() {
        let mut s = socket_syn_sent();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                sack_permitted: true,
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ), // WRONG
                max_seg_size: Some(BASE_MSS - 80),
                window_scale: Some(0),
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                control: TcpControl::Rst,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                window_len: 0,
                ..RECV_TEMPL
            })
        );
        assert_eq!(s.state, State::SynSent);
    }

    #[test]
    fn test_syn_sent_syn_received_rst() {
        let mut s = socket_syn_sent();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                sack_permitted: true,
                ..RECV_TEMPL
            }]
        );

        // A SYN packet changes the SYN-SENT state to SYN-RECEIVED.
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS - 80),
                window_scale: Some(0),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::SynReceived);

        // A RST packet changes the SYN-RECEIVED state to CLOSED.
        send!(
            s,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Closed);
    }

    #[test]
    fn test_syn_sent_rst() {
        let mut s = socket_syn_sent();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Closed);
    }

    #[test]
    fn test_syn_sent_rst_no_ack() {
        let mut s = socket_syn_sent();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::SynSent);
    }

    #[test]
    fn test_syn_sent_rst_bad_ack() {
        let mut s = socket_syn_sent();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ,
                ack_number: Some(TcpSeqNumber(1234)),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::SynSent);
    }

    #[test]
    fn test_syn_sent_bad_ack() {
        let mut s = socket_syn_sent();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                sack_permitted: true,
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::None, // Unexpected
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ + 1), // Correct
                ..SEND_TEMPL
            }
        );

        // It should trigger no response and change no state
        recv!(s, []);
        assert_eq!(s.state, State::SynSent);
    }

    #[test]
    fn test_syn_sent_bad_ack_seq_1() {
        let mut s = socket_syn_sent();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                sack_permitted: true,
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::None,
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ), // WRONG
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                control: TcpControl::Rst,
                seq_number: LOCAL_SEQ, // matching the ack_number of the unexpected ack
                ack_number: None,
                window_len: 0,
                ..RECV_TEMPL
            })
        );

        // It should trigger a RST, and change no state
        assert_eq!(s.state, State::SynSent);
    }

    #[test]
    fn test_syn_sent_bad_ack_seq_2() {
        let mut s = socket_syn_sent();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                sack_permitted: true,
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::None,
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ + 123456), // WRONG
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                control: TcpControl::Rst,
                seq_number: LOCAL_SEQ + 123456, // matching the ack_number of the unexpected ack
                ack_number: None,
                window_len: 0,
                ..RECV_TEMPL
            })
        );

        // It should trigger a RST, and change no state
        assert_eq!(s.state, State::SynSent);
    }

    #[test]
    fn test_syn_sent_close() {
        let mut s = socket();
        s.close();
        assert_eq!(s.state, State::Closed);
    }

    #[test]
    fn test_syn_sent_sack_option() {
        let mut s = socket_syn_sent();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                sack_permitted: true,
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ + 1),
                max_seg_size: Some(BASE_MSS - 80),
                window_scale: Some(0),
                sack_permitted: true,
                ..SEND_TEMPL
            }
        );
        assert!(s.remote_has_sack);

        let mut s = socket_syn_sent();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                sack_permitted: true,
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ + 1),
                max_seg_size: Some(BASE_MSS - 80),
                window_scale: Some(0),
                sack_permitted: false,
                ..SEND_TEMPL
            }
        );
        assert!(!s.remote_has_sack);
    }

    #[test]
    fn test_syn_sent_win_scale_buffers() {
        for (buffer_size, shift_amt) in &[
            (64, 0),
            (128, 0),
            (1024, 0),
            (65535, 0),
            (65536, 1),
            (65537, 1),
            (131071, 1),
            (131072, 2),
            (524287, 3),
            (524288, 4),
            (655350, 4),
            (1048576, 5),
        ] {
            let mut s = socket_with_buffer_sizes(64, *buffer_size);
            s.local_seq_no = LOCAL_SEQ;
            assert_eq!(s.remote_win_shift, *shift_amt);
            s.socket.connect(&mut s.cx, REMOTE_END, LOCAL_END).unwrap();
            recv!(
                s,
                [TcpRepr {
                    control: TcpControl::Syn,
                    seq_number: LOCAL_SEQ,
                    ack_number: None,
                    max_seg_size: Some(BASE_MSS),
                    window_scale: Some(*shift_amt),
                    window_len: u16::try_from(*buffer_size).unwrap_or(u16::MAX),
                    sack_permitted: true,
                    ..RECV_TEMPL
                }]
            );
        }
    }

    #[test]
    fn test_syn_sent_syn_ack_no_window_scaling() {
        let mut s = socket_syn_sent_with_buffer_sizes(1048576, 1048576);
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                // scaling does NOT apply to the window value in SYN packets
                window_len: 65535,
                window_scale: Some(5),
                sack_permitted: true,
                ..RECV_TEMPL
            }]
        );
        assert_eq!(s.remote_win_shift, 5);
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ + 1),
                max_seg_size: Some(BASE_MSS - 80),
                window_scale: None,
                window_len: 42,
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Established);
        assert_eq!(s.remote_win_shift, 0);
        assert_eq!(s.remote_win_scale, None);
        assert_eq!(s.remote_win_len, 42);
    }

    #[test]
    fn test_syn_sent_syn_ack_window_scaling() {
        let mut s = socket_syn_sent();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                sack_permitted: true,
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ + 1),
                max_seg_size: Some(BASE_MSS - 80),
                window_scale: Some(7),
                window_len: 42,
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Established);
        assert_eq!(s.remote_win_scale, Some(7));
        // scaling does NOT apply to the window value in SYN packets
        assert_eq!(s.remote_win_len, 42);
    }

    // =========================================================================================//
    // Tests for the ESTABLISHED state.
    // =========================================================================================//

    #[test]
    fn test_established_recv() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 58,
                ..RECV_TEMPL
            }]
        );
        assert_eq!(s.rx_buffer.dequeue_many(6), &b"abcdef"[..]);
    }

    #[test]
    fn test_peek_slice() {
        const BUF_SIZE: usize = 10;

        let send_buf = b"0123456";

        let mut s = socket_established_with_buffer_sizes(BUF_SIZE, BUF_SIZE);

        // Populate the recv buffer
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &send_buf[..],
                ..SEND_TEMPL
            }
        );

        // Peek into the recv buffer
        let mut peeked_buf = [0u8; BUF_SIZE];
        let actually_peeked = s.peek_slice(&mut peeked_buf[..]).unwrap();
        let mut recv_buf = [0u8; BUF_SIZE];
        let actually_recvd = s.recv_slice(&mut recv_buf[..]).unwrap();
        assert_eq!(
            &mut peeked_buf[..actually_peeked],
            &mut recv_buf[..actually_recvd]
        );
    }

    #[test]
    fn test_peek_slice_buffer_wrap() {
        const BUF_SIZE: usize = 10;

        let send_buf = b"0123456789";

        let mut s = socket_established_with_buffer_sizes(BUF_SIZE, BUF_SIZE);

        let _ = s.rx_buffer.enqueue_slice(&send_buf[..8]);
        let _ = s.rx_buffer.dequeue_many(6);
        let _ = s.rx_buffer.enqueue_slice(&send_buf[..5]);

        let mut peeked_buf = [0u8; BUF_SIZE];
        let actually_peeked = s.peek_slice(&mut peeked_buf[..]).unwrap();
        let mut recv_buf = [0u8; BUF_SIZE];
        let actually_recvd = s.recv_slice(&mut recv_buf[..]).unwrap();
        assert_eq!(
            &mut peeked_buf[..actually_peeked],
            &mut recv_buf[..actually_recvd]
        );
    }

    fn setup_rfc2018_cases() -> (TestSocket, Vec<u8>) {
        // This is a utility function used by the tests for RFC 2018 cases. It configures a socket
        // in a particular way suitable for those cases.
        //
        // RFC 2018: Assume the left window edge is 5000 and that the data transmitter sends [...]
        // segments, each containing 500 data bytes.
        let mut s = socket_established_with_buffer_sizes(4000, 4000);
        s.remote_has_sack = true;

        // create a segment that is 500 bytes long
        let mut segment: Vec<u8> = Vec::with_capacity(500);

        // move the last ack to 5000 by sending ten of them
        for _ in 0..50 {
            segment.extend_from_slice(b"abcdefghij")
        }
        for offset in (0..5000).step_by(500) {
            send!(
                s,
                TcpRepr {
                    seq_number: REMOTE_SEQ + 1 + offset,
                    ack_number: Some(LOCAL_SEQ + 1),
                    payload: &segment,
                    ..SEND_TEMPL
                }
            );
            recv!(
                s,
                [TcpRepr {
                    seq_number: LOCAL_SEQ + 1,
                    ack_number: Some(REMOTE_SEQ + 1 + offset + 500),
                    window_len: 3500,
                    ..RECV_TEMPL
                }]
            );
            s.recv(|data| {
                assert_eq!(data.len(), 500);
                assert_eq!(data, segment.as_slice());
                (500, ())
            })
            .unwrap();
        }
        assert_eq!(s.remote_last_win, 3500);
        (s, segment)
    }

    #[test]
    fn test_established_rfc2018_cases() {
        // This test case verifies the exact scenarios described on pages 8-9 of RFC 2018. Please
        // ensure its behavior does not deviate from those scenarios.

        let (mut s, segment) = setup_rfc2018_cases();
        // RFC 2018:
        //
        // Case 2: The first segment is dropped but the remaining 7 are received.
        //
        // Upon receiving each of the last seven packets, the data receiver will return a TCP ACK
        // segment that acknowledges sequence number 5000 and contains a SACK option specifying one
        // block of queued data:
        //
        //   Triggering   ACK      Left Edge  Right Edge
        //   Segment
        //
        //   5000         (lost)
        //   5500         5000     5500       6000
        //   6000         5000     5500       6500
        //   6500         5000     5500       7000
        //   7000         5000     5500       7500
        //   7500         5000     5500       8000
        //   8000         5000     5500       8500
        //   8500         5000     5500       9000
        //
        for offset in (500..3500).step_by(500) {
            send!(
                s,
                TcpRepr {
                    seq_number: REMOTE_SEQ + 1 + offset + 5000,
                    ack_number: Some(LOCAL_SEQ + 1),
                    payload: &segment,
                    ..SEND_TEMPL
                },
                Some(TcpRepr {
                    seq_number: LOCAL_SEQ + 1,
                    ack_number: Some(REMOTE_SEQ + 1 + 5000),
                    window_len: 4000,
                    sack_ranges: [
                        Some((
                            REMOTE_SEQ.0 as u32 + 1 + 5500,
                            REMOTE_SEQ.0 as u32 + 1 + 5500 + offset as u32
                        )),
                        None,
                        None
                    ],
                    ..RECV_TEMPL
                })
            );
        }
    }

    #[test]
    fn test_established_sack_no_overflow_on_near_max_seqnumber() {
        let mut s = socket_established();
        s.remote_has_sack = true;
        s.remote_seq_no = TcpSeqNumber(-4);
        s.remote_last_ack = Some(TcpSeqNumber(-4));

        // Send an out-of-order segment 10 bytes past the expected sequence,
        // creating a 10-byte hole at the front of the assembler.
        send!(
            s,
            TcpRepr {
                seq_number: TcpSeqNumber(-4 + 10),
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"AAAAAAAAAA"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(TcpSeqNumber(-4)),
                window_len: 64,
                sack_ranges: [
                    Some(((-4_i32 + 10) as u32, (-4_i32 + 20) as u32,)),
                    None,
                    None,
                ],
                ..RECV_TEMPL
            })
        );
    }

    // =========================================================================================//
    // xdpstack patch (issue 19): receiver-side SACK (RFC 2018 4), D-SACK
    // (RFC 2883), the out-of-order queue bounded by the window.
    // =========================================================================================//

    /// The peer's data: byte `off` of its stream is at `REMOTE_SEQ + 1 + off`.
    const XDP_DATA: &[u8] = &[0x5a; 4096];

    /// The absolute sequence number of byte `off` of the peer's stream, as a SACK block has it.
    fn xdp_rseq(off: usize) -> u32 {
        (REMOTE_SEQ + 1 + off).0 as u32
    }

    /// A SACK block covering bytes `left..right` of the peer's stream.
    fn xdp_block(left: usize, right: usize) -> Option<(u32, u32)> {
        Some((xdp_rseq(left), xdp_rseq(right)))
    }

    /// A segment of the peer carrying bytes `off..off + len` of its stream
    /// (its window: 4000 bytes).
    fn xdp_data(off: usize, len: usize) -> TcpRepr<'static> {
        TcpRepr {
            seq_number: REMOTE_SEQ + 1 + off,
            ack_number: Some(LOCAL_SEQ + 1),
            window_len: 4000,
            payload: &XDP_DATA[..len],
            ..SEND_TEMPL
        }
    }

    /// An established socket whose peer offered SACK, with `rx_len` bytes
    /// of receive buffer (less than 64 KiB: no window scaling).
    fn xdp_sack_socket(rx_len: usize) -> TestSocket {
        assert!(rx_len < 65536);
        let mut s = socket_established_with_buffer_sizes(4000, rx_len);
        s.remote_has_sack = true;
        s
    }

    /// Send bytes `off..off + len`; the socket must answer at once with an
    /// ACK of `acked` bytes carrying exactly `sack` (window: the buffer
    /// less what was acknowledged, nothing being read).
    #[track_caller]
    fn xdp_send_sacked(
        s: &mut TestSocket,
        off: usize,
        len: usize,
        acked: usize,
        sack: [Option<(u32, u32)>; 3],
    ) {
        let window_len = (s.rx_buffer.capacity() - acked) as u16;
        assert_eq!(
            send(s, Instant::from_millis(0), &xdp_data(off, len)),
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + acked),
                window_len,
                sack_ranges: sack,
                ..RECV_TEMPL
            })
        );
    }

    #[test]
    fn test_xdp_sack_holes_most_recent_first() {
        let mut s = xdp_sack_socket(4000);
        // 1, 2, 3, 5 holes: the block of the segment just received first,
        // then the blocks reported most recently.
        xdp_send_sacked(&mut s, 100, 100, 0, [xdp_block(100, 200), None, None]);
        xdp_send_sacked(
            &mut s,
            300,
            100,
            0,
            [xdp_block(300, 400), xdp_block(100, 200), None],
        );
        xdp_send_sacked(
            &mut s,
            500,
            100,
            0,
            [
                xdp_block(500, 600),
                xdp_block(300, 400),
                xdp_block(100, 200),
            ],
        );
        xdp_send_sacked(
            &mut s,
            700,
            100,
            0,
            [
                xdp_block(700, 800),
                xdp_block(500, 600),
                xdp_block(300, 400),
            ],
        );
        xdp_send_sacked(
            &mut s,
            900,
            100,
            0,
            [
                xdp_block(900, 1000),
                xdp_block(700, 800),
                xdp_block(500, 600),
            ],
        );
        assert_eq!(s.assembler.range_count(), 5);
        // A segment extending an old block brings it to the front.
        xdp_send_sacked(
            &mut s,
            400,
            50,
            0,
            [
                xdp_block(300, 450),
                xdp_block(900, 1000),
                xdp_block(700, 800),
            ],
        );
        // One filling a hole between two blocks reports the merged block.
        xdp_send_sacked(
            &mut s,
            200,
            100,
            0,
            [
                xdp_block(100, 450),
                xdp_block(900, 1000),
                xdp_block(700, 800),
            ],
        );
        // Received out of order, in reverse: the lowest block is the newest.
        xdp_send_sacked(
            &mut s,
            1100,
            100,
            0,
            [
                xdp_block(1100, 1200),
                xdp_block(100, 450),
                xdp_block(900, 1000),
            ],
        );
        // The first hole filled: RCV.NXT advances past the block holding that
        // segment, which is not reported (nor anything at or below RCV.NXT);
        // the most recent ones follow, then the lowest.
        xdp_send_sacked(
            &mut s,
            0,
            100,
            450,
            [
                xdp_block(1100, 1200),
                xdp_block(900, 1000),
                xdp_block(500, 600),
            ],
        );
        // The remaining holes, lowest first.
        xdp_send_sacked(
            &mut s,
            450,
            50,
            600,
            [
                xdp_block(1100, 1200),
                xdp_block(900, 1000),
                xdp_block(700, 800),
            ],
        );
        xdp_send_sacked(
            &mut s,
            600,
            100,
            800,
            [xdp_block(1100, 1200), xdp_block(900, 1000), None],
        );
        xdp_send_sacked(&mut s, 800, 100, 1000, [xdp_block(1100, 1200), None, None]);
        // The last hole closed: an immediate ACK (it filled a hole), no SACK.
        xdp_send_sacked(&mut s, 1000, 100, 1200, [None, None, None]);
        assert!(s.assembler.is_empty());
        assert_eq!(s.assembler.heap_size(), 0);
        assert_eq!(s.rx_sack_recent, [None; 3]);
        // In-order data again: delayed ACK machinery (here: none), no SACK.
        send!(s, xdp_data(1200, 100));
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1300),
                window_len: 4000 - 1300,
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_xdp_sack_without_permission_sends_none() {
        let mut s = xdp_sack_socket(4000);
        s.remote_has_sack = false;
        xdp_send_sacked(&mut s, 100, 100, 0, [None, None, None]);
        xdp_send_sacked(&mut s, 300, 100, 0, [None, None, None]);
        // Nor a D-SACK.
        xdp_send_sacked(&mut s, 100, 100, 0, [None, None, None]);
    }

    #[test]
    fn test_xdp_sack_100_holes() {
        // 60000 bytes of window: up to 111 holes (one per 536 bytes).
        let mut s = xdp_sack_socket(60000);
        assert_eq!(Socket::ooo_range_limit(60000), 111);
        for k in 0..100 {
            let off = 20 * k + 10;
            let mut sack = [None; 3];
            for (i, slot) in sack.iter_mut().enumerate() {
                if i <= k {
                    let o = 20 * (k - i) + 10;
                    *slot = xdp_block(o, o + 10);
                }
            }
            xdp_send_sacked(&mut s, off, 10, 0, sack);
        }
        assert_eq!(s.assembler.range_count(), 100);
        // A segment joining blocks 49 and 50, deep in the list.
        xdp_send_sacked(
            &mut s,
            1000,
            10,
            0,
            [
                xdp_block(990, 1020),
                xdp_block(1990, 2000),
                xdp_block(1970, 1980),
            ],
        );
        assert_eq!(s.assembler.range_count(), 99);
        // Every hole filled, from the back: the data is handed over at the end.
        for k in (1..100).rev() {
            let off = 20 * k;
            if k == 50 {
                continue;
            }
            assert_eq!(
                send(&mut s, Instant::from_millis(0), &xdp_data(off, 10))
                    .unwrap()
                    .sack_ranges[0],
                xdp_block(if k == 51 { 990 } else { off - 10 }, 2000)
            );
        }
        assert_eq!(s.assembler.range_count(), 1);
        xdp_send_sacked(&mut s, 0, 10, 2000, [None, None, None]);
        assert_eq!(s.assembler.heap_size(), 0);
    }

    #[test]
    fn test_xdp_sack_on_window_updates_and_data_segments() {
        let mut s = xdp_sack_socket(4000);
        s.remote_mss = 1000;
        s.remote_win_len = 4000;
        // 3000 bytes in order, then a hole: the window advertised is 1000.
        for off in (0..3000).step_by(1000) {
            send!(s, xdp_data(off, 1000));
        }
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 3000),
                window_len: 1000,
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            xdp_data(3100, 100),
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 3000),
                window_len: 1000,
                sack_ranges: [xdp_block(3100, 3200), None, None],
                ..RECV_TEMPL
            })
        );
        recv_nothing!(s);
        // The application reads: the window update `dispatch` sends (as a
        // delayed ACK would be) carries the block.
        let mut buf = [0; 3000];
        assert_eq!(s.recv_slice(&mut buf), Ok(3000));
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 3000),
                window_len: 4000,
                sack_ranges: [xdp_block(3100, 3200), None, None],
                ..RECV_TEMPL
            }]
        );
        // Two more holes, then the application sends: a full segment carries
        // the three blocks, and its payload shrinks by their option
        // (28 bytes: 2 + 3 * 8, padded).
        assert!(send(&mut s, Instant::from_millis(0), &xdp_data(3300, 100)).is_some());
        assert!(send(&mut s, Instant::from_millis(0), &xdp_data(3500, 100)).is_some());
        s.send_slice(&XDP_DATA[..2000]).unwrap();
        recv!(
            s,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 3000),
                window_len: 4000,
                sack_ranges: [
                    xdp_block(3500, 3600),
                    xdp_block(3300, 3400),
                    xdp_block(3100, 3200)
                ],
                payload: &XDP_DATA[..1000 - 28],
                ..RECV_TEMPL
            })
        );
        // The holes close: no more blocks, full segments again.
        send!(
            s,
            TcpRepr {
                ack_number: Some(LOCAL_SEQ + 1 + 972),
                ..xdp_data(3000, 600)
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 972,
                ack_number: Some(REMOTE_SEQ + 1 + 3600),
                window_len: 4000 - 600,
                ..RECV_TEMPL
            })
        );
        recv!(
            s,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 972,
                ack_number: Some(REMOTE_SEQ + 1 + 3600),
                window_len: 4000 - 600,
                payload: &XDP_DATA[..1000],
                ..RECV_TEMPL
            })
        );
    }

    #[test]
    fn test_xdp_sack_on_keep_alives() {
        // Every segment received while there are holes is ACKed at once
        // (RFC 5681), so no delayed ACK is pending then; `dispatch`'s other
        // ACKs (window updates and data above, keep-alives here) carry the
        // blocks.
        let mut s = xdp_sack_socket(4000);
        xdp_send_sacked(&mut s, 100, 100, 0, [xdp_block(100, 200), None, None]);
        s.set_keep_alive(Some(Duration::from_millis(100)));
        recv!(
            s,
            time 0,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                window_len: 4000,
                sack_ranges: [xdp_block(100, 200), None, None],
                payload: &[0],
                ..RECV_TEMPL
            })
        );
        xdp_send_sacked(&mut s, 0, 100, 200, [None, None, None]);
        recv!(
            s,
            time 100,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1 + 200),
                window_len: 3800,
                payload: &[0],
                ..RECV_TEMPL
            })
        );
    }

    #[test]
    fn test_xdp_dsack_below_rcv_nxt() {
        let mut s = xdp_sack_socket(4000);
        send!(s, xdp_data(0, 100));
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 100),
                window_len: 3900,
                ..RECV_TEMPL
            }]
        );
        // A retransmission of data received already: D-SACK.
        xdp_send_sacked(&mut s, 0, 100, 100, [xdp_block(0, 100), None, None]);
        // Part of it, too.
        xdp_send_sacked(&mut s, 20, 30, 100, [xdp_block(20, 50), None, None]);
        // With holes: the D-SACK block, then the normal ones.
        xdp_send_sacked(&mut s, 200, 100, 100, [xdp_block(200, 300), None, None]);
        xdp_send_sacked(
            &mut s,
            400,
            100,
            100,
            [xdp_block(400, 500), xdp_block(200, 300), None],
        );
        xdp_send_sacked(
            &mut s,
            0,
            100,
            100,
            [xdp_block(0, 100), xdp_block(400, 500), xdp_block(200, 300)],
        );
        // A segment partly below RCV.NXT brings new data: no D-SACK (only
        // data all duplicate is reported), and it filled part of a hole.
        xdp_send_sacked(
            &mut s,
            50,
            100,
            150,
            [xdp_block(400, 500), xdp_block(200, 300), None],
        );
        // Sent again, it is all duplicate now.
        xdp_send_sacked(
            &mut s,
            50,
            100,
            150,
            [xdp_block(50, 150), xdp_block(400, 500), xdp_block(200, 300)],
        );
    }

    #[test]
    fn test_xdp_dsack_inside_out_of_order_block() {
        let mut s = xdp_sack_socket(4000);
        xdp_send_sacked(&mut s, 200, 200, 0, [xdp_block(200, 400), None, None]);
        xdp_send_sacked(
            &mut s,
            500,
            100,
            0,
            [xdp_block(500, 600), xdp_block(200, 400), None],
        );
        // A duplicate of part of the first block: D-SACK, then the block
        // holding it (RFC 2883 4), then the other.
        xdp_send_sacked(
            &mut s,
            250,
            50,
            0,
            [
                xdp_block(250, 300),
                xdp_block(200, 400),
                xdp_block(500, 600),
            ],
        );
        // All of a block.
        xdp_send_sacked(
            &mut s,
            500,
            100,
            0,
            [
                xdp_block(500, 600),
                xdp_block(500, 600),
                xdp_block(200, 400),
            ],
        );
        // Overlapping a block and a hole: new data, no D-SACK.
        xdp_send_sacked(
            &mut s,
            350,
            100,
            0,
            [xdp_block(200, 450), xdp_block(500, 600), None],
        );
        assert_eq!(s.assembler.range_count(), 2);
    }

    #[test]
    fn test_xdp_sack_flood_of_1_byte_segments_is_bounded_and_acked() {
        // 60000 bytes of window: 111 holes at most.
        let mut s = xdp_sack_socket(60000);
        let cap = Socket::ooo_range_limit(60000);
        assert_eq!(cap, 111);
        for k in 1..=3000 {
            let off = 2 * k;
            let last = off.min(2 * cap);
            // Every segment is ACKed at once; past the cap it is dropped, and
            // the ACK repeats the blocks reported last.
            let mut sack = [None; 3];
            for (i, slot) in sack.iter_mut().enumerate() {
                if last >= 2 + 2 * i {
                    *slot = xdp_block(last - 2 * i, last - 2 * i + 1);
                }
            }
            xdp_send_sacked(&mut s, off, 1, 0, sack);
            assert!(s.assembler.range_count() <= cap);
        }
        assert_eq!(s.assembler.range_count(), cap);
        // 111 contigs of 16 bytes, in an allocation that at most doubled.
        assert!(s.assembler.heap_size() <= 2 * cap * 16);
        assert_eq!(s.recv_storage_used(), 2 * cap + 1);
        // Data that merges with what is held is still taken, and the
        // next expected segment always.
        xdp_send_sacked(
            &mut s,
            2 * cap + 1,
            1,
            0,
            [
                xdp_block(2 * cap, 2 * cap + 2),
                xdp_block(2 * cap - 2, 2 * cap - 1),
                xdp_block(2 * cap - 4, 2 * cap - 3),
            ],
        );
        xdp_send_sacked(
            &mut s,
            0,
            2,
            3,
            [
                xdp_block(2 * cap, 2 * cap + 2),
                xdp_block(2 * cap - 2, 2 * cap - 1),
                xdp_block(2 * cap - 4, 2 * cap - 3),
            ],
        );
        assert_eq!(s.assembler.range_count(), cap - 1);
        // The window closes, holes and all: the allocation is released.
        xdp_send_sacked(&mut s, 3, 2 * cap - 1, 2 * cap + 2, [None, None, None]);
        assert!(s.assembler.is_empty());
        assert_eq!(s.assembler.heap_size(), 0);
    }

    #[test]
    fn test_xdp_sack_hole_limit() {
        // Upstream's count for small windows, one per 536 bytes, 512 at most.
        assert_eq!(Socket::ooo_range_limit(0), ASSEMBLER_MAX_SEGMENT_COUNT);
        assert_eq!(Socket::ooo_range_limit(64), ASSEMBLER_MAX_SEGMENT_COUNT);
        assert_eq!(Socket::ooo_range_limit(64 << 10), 122);
        assert_eq!(Socket::ooo_range_limit(6 << 20), 512);
        assert_eq!(Socket::ooo_range_limit(1 << 30), 512);
        // A small window holds 4 holes (upstream dropped a fifth segment
        // silently: now it gets an ACK).
        let mut s = xdp_sack_socket(64);
        for k in 1..=4 {
            assert!(send(&mut s, Instant::from_millis(0), &xdp_data(4 * k, 2)).is_some());
        }
        xdp_send_sacked(
            &mut s,
            1,
            1,
            0,
            [xdp_block(16, 18), xdp_block(12, 14), xdp_block(8, 10)],
        );
        assert_eq!(s.assembler.range_count(), 4);
    }

    #[test]
    fn test_established_sliding_window_recv() {
        let mut s = socket_established();
        // Update our scaling parameters for a TCP with a scaled buffer.
        assert_eq!(s.rx_buffer.len(), 0);
        s.rx_buffer = SocketBuffer::new(vec![0; 262143]);
        s.assembler = Assembler::new();
        s.remote_win_scale = Some(0);
        s.remote_last_win = 65535;
        s.remote_win_shift = 2;

        // Create a TCP segment that will mostly fill an IP frame.
        let mut segment: Vec<u8> = Vec::with_capacity(1400);
        for _ in 0..100 {
            segment.extend_from_slice(b"abcdefghijklmn")
        }
        assert_eq!(segment.len(), 1400);

        // Send the frame
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &segment,
                ..SEND_TEMPL
            }
        );

        // Ensure that the received window size is shifted right by 2.
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1400),
                window_len: 65185,
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_established_send() {
        let mut s = socket_established();
        // First roundtrip after establishing.
        s.send_slice(b"abcdef").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abcdef"[..],
                ..RECV_TEMPL
            }]
        );
        assert_eq!(s.tx_buffer.len(), 6);
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 6),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.tx_buffer.len(), 0);
        // Second roundtrip.
        s.send_slice(b"foobar").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 6,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"foobar"[..],
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 6 + 6),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.tx_buffer.len(), 0);
    }

    #[test]
    fn test_established_send_no_ack_send() {
        let mut s = socket_established();
        s.set_nagle_enabled(false);
        s.send_slice(b"abcdef").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abcdef"[..],
                ..RECV_TEMPL
            }]
        );
        s.send_slice(b"foobar").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 6,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"foobar"[..],
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_established_send_buf_gt_win() {
        let mut data = [0; 32];
        for (i, elem) in data.iter_mut().enumerate() {
            *elem = i as u8
        }

        let mut s = socket_established();
        s.remote_win_len = 16;
        s.send_slice(&data[..]).unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &data[0..16],
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_established_send_window_shrink() {
        let mut s = socket_established();

        // 6 octets fit on the remote side's window, so we send them.
        s.send_slice(b"abcdef").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abcdef"[..],
                ..RECV_TEMPL
            }]
        );
        assert_eq!(s.tx_buffer.len(), 6);

        println!(
            "local_seq_no={} remote_win_len={} remote_last_seq={}",
            s.local_seq_no, s.remote_win_len, s.remote_last_seq
        );

        // - Peer doesn't ack them yet
        // - Sends data so we need to reply with an ACK
        // - ...AND and sends a window announcement that SHRINKS the window, so data we've
        //   previously sent is now outside the window. Yes, this is allowed by TCP.
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_len: 3,
                payload: &b"xyzxyz"[..],
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.tx_buffer.len(), 6);

        println!(
            "local_seq_no={} remote_win_len={} remote_last_seq={}",
            s.local_seq_no, s.remote_win_len, s.remote_last_seq
        );

        // More data should not get sent since it doesn't fit in the window.
        // xdpstack patch: the ACK carries the window's right edge, not
        // SND.NXT past it (Linux's tcp_acceptable_seq).
        s.send_slice(b"foobar").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 3,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 64 - 6,
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_established_receive_partially_outside_window() {
        let mut s = socket_established();

        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abc"[..],
                ..SEND_TEMPL
            }
        );

        s.recv(|data| {
            assert_eq!(data, b"abc");
            (3, ())
        })
        .unwrap();

        // Peer decides to retransmit (perhaps because the ACK was lost)
        // and also pushed data.
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            }
        );

        s.recv(|data| {
            assert_eq!(data, b"def");
            (3, ())
        })
        .unwrap();
    }

    #[test]
    fn test_established_receive_partially_outside_window_fin() {
        let mut s = socket_established();

        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abc"[..],
                ..SEND_TEMPL
            }
        );

        s.recv(|data| {
            assert_eq!(data, b"abc");
            (3, ())
        })
        .unwrap();

        // Peer decides to retransmit (perhaps because the ACK was lost)
        // and also pushed data, and sent a FIN.
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                control: TcpControl::Fin,
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            }
        );

        s.recv(|data| {
            assert_eq!(data, b"def");
            (3, ())
        })
        .unwrap();

        // We should accept the FIN, because even though the last packet was partially
        // outside the receive window, there is no hole after adding its data to the assembler.
        assert_eq!(s.state, State::CloseWait);
    }

    #[test]
    fn test_established_send_wrap() {
        let mut s = socket_established();
        let local_seq_start = TcpSeqNumber(i32::MAX - 1);
        s.local_seq_no = local_seq_start + 1;
        s.remote_last_seq = local_seq_start + 1;
        s.send_slice(b"abc").unwrap();
        recv!(s, time 1000, Ok(TcpRepr {
            seq_number: local_seq_start + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abc"[..],
            ..RECV_TEMPL
        }));
    }

    #[test]
    fn test_established_no_ack() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: None,
                ..SEND_TEMPL
            }
        );
    }

    #[test]
    fn test_established_bad_ack() {
        let mut s = socket_established();
        // Already acknowledged data.
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(TcpSeqNumber(LOCAL_SEQ.0 - 1)),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.local_seq_no, LOCAL_SEQ + 1);
        // Data not yet transmitted.
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 10),
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                ..RECV_TEMPL
            })
        );
        assert_eq!(s.local_seq_no, LOCAL_SEQ + 1);
    }

    #[test]
    fn test_established_bad_seq() {
        let mut s = socket_established();
        // Data outside of receive window.
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 256,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                ..RECV_TEMPL
            })
        );
        assert_eq!(s.remote_seq_no, REMOTE_SEQ + 1);

        // Challenge ACKs are rate-limited, we don't get a second one immediately.
        send!(
            s,
            time 100,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 256,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );

        // If we wait a bit, we do get a new one.
        send!(
            s,
            time 2000,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 256,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                ..RECV_TEMPL
            })
        );
        assert_eq!(s.remote_seq_no, REMOTE_SEQ + 1);
    }

    #[test]
    fn test_old_data_ack_not_rate_limited() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 58,
                ..RECV_TEMPL
            }]
        );
        s.recv(|data| {
            assert_eq!(data, b"abcdef");
            (6, ())
        })
        .unwrap();
        // The remote retransmits data we already acknowledged, e.g. because
        // the ACK above was lost. Each retransmission must elicit a duplicate
        // ACK, even within the challenge ACK rate limit window: withholding it
        // strands the remote in retransmission backoff.
        send!(
            s,
            time 100,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                ..RECV_TEMPL
            })
        );
        send!(
            s,
            time 200,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                ..RECV_TEMPL
            })
        );
    }

    #[test]
    fn test_bad_seq_rst_dropped_silently() {
        let mut s = socket_established();
        // Out-of-window RSTs are silently dropped, per RFC 9293 (3.10.7.4)
        // and RFC 5961 (3.2): no challenge ACK, no state change.
        send!(
            s,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ + 1 + 256,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Established);

        // A payload doesn't make it eligible for the data segment exemption
        // from challenge ACK rate limiting either: still no reply.
        send!(
            s,
            time 100,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ + 1 + 256,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Established);
    }

    #[test]
    fn test_bad_seq_syn_with_data_rate_limited() {
        let mut s = socket_established();
        // An out-of-window SYN carrying data must not be exempt from challenge
        // ACK rate limiting: RFC 5961 (4.2) says challenge ACKs sent in
        // response to SYNs should be throttled.
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ + 1 + 256,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                ..RECV_TEMPL
            })
        );

        // The second one within the rate limit window gets no reply.
        send!(
            s,
            time 100,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ + 1 + 256,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Established);
    }

    #[test]
    fn test_established_options_reduce_payload_when_local_mss_limited() {
        const EFFECTIVE_MSS: usize = 64;

        // construct socket where remote MSS is less than local MSS
        let mut s = socket_established();
        s.set_tsval_generator(Some(|| 1));
        s.remote_mss = EFFECTIVE_MSS;

        // Payload should contain 12 bytes less due to timestamp
        s.send_slice(&[0; EFFECTIVE_MSS]).unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &[0; EFFECTIVE_MSS - 12],
                timestamp: Some(TcpTimestampRepr::new(1, 0)),
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_established_options_reduce_payload_when_remote_mss_limited() {
        const EFFECTIVE_MSS: usize = BASE_MSS as usize;

        // construct socket where remote MSS is more than local MSS
        let mut s = socket_established_with_buffer_sizes(EFFECTIVE_MSS, 64);
        s.set_tsval_generator(Some(|| 1));
        s.remote_mss = 9999;
        s.remote_win_len = 9999;

        // Payload should contain 12 bytes less due to timestamp
        s.send_slice(&[0; EFFECTIVE_MSS]).unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &[0; EFFECTIVE_MSS - 12],
                timestamp: Some(TcpTimestampRepr::new(1, 0)),
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_established_tiny_mss_with_options_makes_progress() {
        // Connect with timestamps enabled to a remote advertising an absurdly
        // small MSS. Without the MIN_SND_MSS clamp, an MSS smaller than the
        // options length would result in an effective MSS of zero, sending
        // empty segments in a loop without ever making progress.
        let mut s = socket();
        s.set_tsval_generator(Some(|| 1));
        s.local_seq_no = LOCAL_SEQ;
        s.socket
            .connect(&mut s.cx, REMOTE_END, LOCAL_END.port)
            .unwrap();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                sack_permitted: true,
                timestamp: Some(TcpTimestampRepr::new(1, 0)),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ + 1),
                max_seg_size: Some(10),
                window_scale: Some(0),
                timestamp: Some(TcpTimestampRepr::new(500, 1)),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Established);
        assert_eq!(s.remote_mss, MIN_REMOTE_MSS);

        s.send_slice(&[0; 64]).unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &[0; MIN_REMOTE_MSS - 12],
                timestamp: Some(TcpTimestampRepr::new(1, 500)),
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_established_fin() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            }]
        );
        assert_eq!(s.state, State::CloseWait);
        sanity!(s, socket_close_wait());
    }

    #[test]
    fn test_established_fin_after_missing() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1 + 6,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"123456"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                ..RECV_TEMPL
            })
        );
        assert_eq!(s.state, State::Established);
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6 + 6),
                window_len: 52,
                ..RECV_TEMPL
            })
        );
        assert_eq!(s.state, State::Established);
    }

    #[test]
    fn test_established_send_fin() {
        let mut s = socket_established();
        s.send_slice(b"abcdef").unwrap();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::CloseWait);
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                payload: &b"abcdef"[..],
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_established_rst() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Closed);
    }

    #[test]
    fn test_established_rst_no_ack() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ + 1,
                ack_number: None,
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Closed);
    }

    #[test]
    fn test_established_close() {
        let mut s = socket_established();
        s.close();
        assert_eq!(s.state, State::FinWait1);
        sanity!(s, socket_fin_wait_1());
    }

    #[test]
    fn test_established_abort() {
        let mut s = socket_established();
        s.abort();
        assert_eq!(s.state, State::Closed);
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Rst,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_established_rst_bad_seq() {
        let mut s = socket_established();
        // Out-of-window RSTs are dropped silently, per RFC 9293 (3.10.7.4)
        // and RFC 5961 (3.2).
        send!(
            s,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ, // Wrong seq
                ack_number: None,
                ..SEND_TEMPL
            }
        );

        assert_eq!(s.state, State::Established);

        // An in-window RST still resets the connection.
        send!(
            s,
            time 2000,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ + 1, // Correct seq
                ack_number: None,
                ..SEND_TEMPL
            }
        );

        assert_eq!(s.state, State::Closed);
    }

    #[test]
    fn test_established_bad_seq_challenge_ack_updated() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ, // Wrong seq
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                ..RECV_TEMPL
            })
        );

        assert_eq!(s.state, State::Established);

        // Send something to advance seq by 1
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1, // correct seq
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"a"[..],
                ..SEND_TEMPL
            }
        );

        // Send the wrong seq again, check that the challenge ack is correctly updated
        // The ack number must be updated even if we don't call dispatch on the socket
        // See https://github.com/smoltcp-rs/smoltcp/issues/338
        send!(
            s,
            time 2000,
            TcpRepr {
                seq_number: REMOTE_SEQ, // Wrong seq
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 2), // this has changed
                window_len: 63,
                ..RECV_TEMPL
            })
        );
    }

    // =========================================================================================//
    // Tests for the FIN-WAIT-1 state.
    // =========================================================================================//

    #[test]
    fn test_fin_wait_1_fin_ack() {
        let mut s = socket_fin_wait_1();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::FinWait2);
        sanity!(s, socket_fin_wait_2());
    }

    #[test]
    fn test_fin_wait_1_fin_fin() {
        let mut s = socket_fin_wait_1();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Closing);
        sanity!(s, socket_closing());
    }

    #[test]
    fn test_fin_wait_1_fin_with_data_queued() {
        let mut s = socket_established();
        s.remote_win_len = 6;
        s.send_slice(b"abcdef123456").unwrap();
        s.close();
        recv!(
            s,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abcdef"[..],
                ..RECV_TEMPL
            })
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 6),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::FinWait1);
    }

    #[test]
    fn test_fin_wait_1_recv() {
        let mut s = socket_fin_wait_1();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abc"[..],
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::FinWait1);
        s.recv(|data| {
            assert_eq!(data, b"abc");
            (3, ())
        })
        .unwrap();
    }

    #[test]
    fn test_fin_wait_1_close() {
        let mut s = socket_fin_wait_1();
        s.close();
        assert_eq!(s.state, State::FinWait1);
    }

    // =========================================================================================//
    // Tests for the FIN-WAIT-2 state.
    // =========================================================================================//

    #[test]
    fn test_fin_wait_2_fin() {
        let mut s = socket_fin_wait_2();
        send!(s, time 1_000, TcpRepr {
            control: TcpControl::Fin,
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1 + 1),
            ..SEND_TEMPL
        });
        assert_eq!(s.state, State::TimeWait);
        sanity!(s, socket_time_wait(false));
    }

    #[test]
    fn test_fin_wait_2_recv() {
        let mut s = socket_fin_wait_2();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 1),
                payload: &b"abc"[..],
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::FinWait2);
        s.recv(|data| {
            assert_eq!(data, b"abc");
            (3, ())
        })
        .unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 3),
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_fin_wait_2_close() {
        let mut s = socket_fin_wait_2();
        s.close();
        assert_eq!(s.state, State::FinWait2);
    }

    // =========================================================================================//
    // Tests for the CLOSING state.
    // =========================================================================================//

    #[test]
    fn test_closing_ack_fin() {
        let mut s = socket_closing();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            }]
        );
        send!(s, time 1_000, TcpRepr {
            seq_number: REMOTE_SEQ + 1 + 1,
            ack_number: Some(LOCAL_SEQ + 1 + 1),
            ..SEND_TEMPL
        });
        assert_eq!(s.state, State::TimeWait);
        sanity!(s, socket_time_wait(true));
    }

    #[test]
    fn test_closing_close() {
        let mut s = socket_closing();
        s.close();
        assert_eq!(s.state, State::Closing);
    }

    // =========================================================================================//
    // Tests for the TIME-WAIT state.
    // =========================================================================================//

    #[test]
    fn test_time_wait_from_fin_wait_2_ack() {
        let mut s = socket_time_wait(false);
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_time_wait_from_closing_no_ack() {
        let mut s = socket_time_wait(true);
        recv!(s, []);
    }

    #[test]
    fn test_time_wait_close() {
        let mut s = socket_time_wait(false);
        s.close();
        assert_eq!(s.state, State::TimeWait);
    }

    #[test]
    fn test_time_wait_retransmit() {
        let mut s = socket_time_wait(false);
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            }]
        );
        send!(s, time 5_000, TcpRepr {
            control: TcpControl::Fin,
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1 + 1),
            ..SEND_TEMPL
        }, Some(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 1,
            ack_number: Some(REMOTE_SEQ + 1 + 1),
            ..RECV_TEMPL
        }));
        assert_eq!(
            s.timer,
            Timer::Close {
                expires_at: Instant::from_secs(5) + CLOSE_DELAY
            }
        );
    }

    #[test]
    fn test_time_wait_timeout() {
        let mut s = socket_time_wait(false);
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            }]
        );
        assert_eq!(s.state, State::TimeWait);
        recv_nothing!(s, time 60_000);
        assert_eq!(s.state, State::Closed);
    }

    // =========================================================================================//
    // Tests for the CLOSE-WAIT state.
    // =========================================================================================//

    #[test]
    fn test_close_wait_ack() {
        let mut s = socket_close_wait();
        s.send_slice(b"abcdef").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                payload: &b"abcdef"[..],
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 6),
                ..SEND_TEMPL
            }
        );
    }

    #[test]
    fn test_close_wait_close() {
        let mut s = socket_close_wait();
        s.close();
        assert_eq!(s.state, State::LastAck);
        sanity!(s, socket_last_ack());
    }

    // =========================================================================================//
    // Tests for the LAST-ACK state.
    // =========================================================================================//
    #[test]
    fn test_last_ack_fin_ack() {
        let mut s = socket_last_ack();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            }]
        );
        assert_eq!(s.state, State::LastAck);
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Closed);
    }

    #[test]
    fn test_last_ack_ack_not_of_fin() {
        let mut s = socket_last_ack();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            }]
        );
        assert_eq!(s.state, State::LastAck);

        // A duplicate ACK (ack_number == SND.UNA, not the FIN ACK) must elicit a
        // challenge ACK per RFC 9293 §3.10.7.4 and must keep the state in LAST-ACK.
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            })
        );
        assert_eq!(s.state, State::LastAck);

        // ACK received of fin: socket should change to Closed.
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Closed);
    }

    // RFC 9293 §3.10.7.4: duplicate ACK in LAST-ACK must elicit a challenge ACK,
    // not be silently dropped.
    #[test]
    fn test_last_ack_duplicate_ack_challenge_ack() {
        let mut s = socket_last_ack();
        // Trigger dispatch so our FIN is sent and remote_last_seq advances.
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            }]
        );
        assert_eq!(s.state, State::LastAck);

        // Remote re-sends an ACK for SND.UNA (not the FIN).  RFC 9293 requires a
        // challenge ACK in response so the remote can learn the current state.
        let challenge = send(
            &mut s,
            Instant::from_millis(0),
            &TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            },
        );
        assert_eq!(
            challenge,
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            }),
            "expected challenge ACK in response to duplicate ACK in LAST-ACK"
        );
        // State must remain LAST-ACK: we have not received the FIN ACK.
        assert_eq!(s.state, State::LastAck);

        // A second duplicate in the same second is rate-limited; the FIN ACK
        // must still be correctly accepted regardless.
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Closed);
    }

    // A partial ACK in LAST-ACK (ack_len > 0 but not FIN ACK) advances SND.UNA
    // without a challenge ACK; the FIN will be retransmitted by the timer.
    #[test]
    fn test_last_ack_partial_ack_no_challenge_ack() {
        // Build a LAST-ACK socket that has one byte of data still unacknowledged
        // before the FIN.  We manually wire the state so we can send a partial ACK.
        let mut s = socket_last_ack();
        // Push one byte into the tx buffer to simulate data that preceded the FIN.
        let _ = s.tx_buffer.enqueue_slice(b"x");
        // Mark it as already sent (remote_last_seq is past the data byte and the FIN).
        s.remote_last_seq = LOCAL_SEQ + 1 + 1 + 1; // data(1) + FIN(1)

        // Remote ACKs just the data byte, not the FIN (partial ACK).
        // ack_number = local_seq_no + 1  =>  ack_len = 1, ack_of_fin = false.
        // Per RFC 9293, a valid partial ACK should advance SND.UNA normally;
        // no challenge ACK should be emitted.
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 1), // acks the data byte, not FIN
                ..SEND_TEMPL
            }
        );
        // State remains LAST-ACK; FIN retransmission is handled by the timer.
        assert_eq!(s.state, State::LastAck);
        // SND.UNA has advanced to the partial ACK number.
        assert_eq!(s.local_seq_no, LOCAL_SEQ + 1 + 1);
    }

    #[test]
    fn test_last_ack_close() {
        let mut s = socket_last_ack();
        s.close();
        assert_eq!(s.state, State::LastAck);
    }

    // =========================================================================================//
    // Tests for transitioning through multiple states.
    // =========================================================================================//

    #[test]
    fn test_listen() {
        let mut s = socket();
        s.listen(LISTEN_END).unwrap();
        assert_eq!(s.state, State::Listen);
    }

    #[test]
    fn test_three_way_handshake() {
        let mut s = socket_listen();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state(), State::SynReceived);
        assert_eq!(s.tuple, Some(TUPLE));
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state(), State::Established);
        assert_eq!(s.local_seq_no, LOCAL_SEQ + 1);
        assert_eq!(s.remote_seq_no, REMOTE_SEQ + 1);
    }

    #[test]
    fn test_remote_close() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::CloseWait);
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            }]
        );
        s.close();
        assert_eq!(s.state, State::LastAck);
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Closed);
    }

    #[test]
    fn test_local_close() {
        let mut s = socket_established();
        s.close();
        assert_eq!(s.state, State::FinWait1);
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::FinWait2);
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::TimeWait);
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_simultaneous_close() {
        let mut s = socket_established();
        s.close();
        assert_eq!(s.state, State::FinWait1);
        recv!(
            s,
            [TcpRepr {
                // due to reordering, this is logically located...
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Closing);
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            }]
        );
        // ... at this point
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::TimeWait);
        recv!(s, []);
    }

    #[test]
    fn test_simultaneous_close_combined_fin_ack() {
        let mut s = socket_established();
        s.close();
        assert_eq!(s.state, State::FinWait1);
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::TimeWait);
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_simultaneous_close_raced() {
        let mut s = socket_established();
        s.close();
        assert_eq!(s.state, State::FinWait1);

        // Socket receives FIN before it has a chance to send its own FIN
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Closing);

        // FIN + ack-of-FIN
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            }]
        );
        assert_eq!(s.state, State::Closing);

        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::TimeWait);
        recv!(s, []);
    }

    #[test]
    fn test_simultaneous_close_raced_with_data() {
        let mut s = socket_established();
        s.send_slice(b"abcdef").unwrap();
        s.close();
        assert_eq!(s.state, State::FinWait1);

        // Socket receives FIN before it has a chance to send its own data+FIN
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Closing);

        // data + FIN + ack-of-FIN
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                payload: &b"abcdef"[..],
                ..RECV_TEMPL
            }]
        );
        assert_eq!(s.state, State::Closing);

        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 6 + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::TimeWait);
        recv!(s, []);
    }

    #[test]
    fn test_fin_with_data() {
        let mut s = socket_established();
        s.send_slice(b"abcdef").unwrap();
        s.close();
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abcdef"[..],
                ..RECV_TEMPL
            }]
        )
    }

    #[test]
    fn test_mutual_close_with_data_1() {
        let mut s = socket_established();
        s.send_slice(b"abcdef").unwrap();
        s.close();
        assert_eq!(s.state, State::FinWait1);
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abcdef"[..],
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 6 + 1),
                ..SEND_TEMPL
            }
        );
    }

    #[test]
    fn test_mutual_close_with_data_2() {
        let mut s = socket_established();
        s.send_slice(b"abcdef").unwrap();
        s.close();
        assert_eq!(s.state, State::FinWait1);
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abcdef"[..],
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 6 + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::FinWait2);
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 6 + 1),
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 6 + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                ..RECV_TEMPL
            }]
        );
        assert_eq!(s.state, State::TimeWait);
    }

    // =========================================================================================//
    // Tests for retransmission on packet loss.
    // =========================================================================================//

    #[test]
    fn test_duplicate_seq_ack() {
        let mut s = socket_recved();
        // remote retransmission
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 58,
                ..RECV_TEMPL
            })
        );
    }

    #[test]
    fn test_data_retransmit() {
        let mut s = socket_established();
        s.send_slice(b"abcdef").unwrap();
        recv!(s, time 1000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }));
        recv_nothing!(s, time 1050);
        recv!(s, time 2000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }));
    }

    #[test]
    #[cfg(feature = "socket-tcp-reno")]
    fn test_congestion_window_limits_data_in_flight() {
        let mut s = socket_established_with_buffer_sizes(8192, 64);
        s.set_congestion_control(CongestionControl::Reno);
        s.remote_win_len = 65535;
        s.remote_mss = 1024;

        let data = [b'x'; 8192];
        s.send_slice(&data[..]).unwrap();

        // Reno's initial congestion window is 2048 bytes: only two
        // 1024-byte segments may be in flight, the rest must wait for ACKs.
        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload: &data[..1024],
            ..RECV_TEMPL
        }));
        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 1024,
            ack_number: Some(REMOTE_SEQ + 1),
            payload: &data[..1024],
            ..RECV_TEMPL
        }));
        recv_nothing!(s, time 0);

        // ACKing one segment frees congestion window space and grows
        // cwnd (slow start), allowing further segments out.
        send!(s, time 10, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1 + 1024),
            window_len: 65535,
            ..SEND_TEMPL
        });
        recv!(s, time 10, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 2048,
            ack_number: Some(REMOTE_SEQ + 1),
            payload: &data[..1024],
            ..RECV_TEMPL
        }));
    }

    #[test]
    #[cfg(feature = "socket-tcp-reno")]
    fn test_congestion_window_doesnt_limit_fast_retransmit() {
        let mut s = socket_established_with_buffer_sizes(8192, 64);
        s.set_congestion_control(CongestionControl::Reno);
        s.remote_win_len = 65535;
        s.remote_mss = 1024;

        // Normal ACK of previously received segment
        send!(s, time 0, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            window_len: 65535,
            ..SEND_TEMPL
        });

        let data = [b'x'; 8192];
        s.send_slice(&data[..]).unwrap();

        // Reno's initial congestion window is 2048 bytes, allowing 2 segments
        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload: &data[..1024],
            ..RECV_TEMPL
        }));

        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 1024,
            ack_number: Some(REMOTE_SEQ + 1),
            payload: &data[..1024],
            ..RECV_TEMPL
        }));
        recv_nothing!(s, time 0);

        // Send three duplicate ACKS, treating the first segment as lost
        send!(s, time 10, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            window_len: 65535,
            ..SEND_TEMPL
        });
        send!(s, time 10, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            window_len: 65535,
            ..SEND_TEMPL
        });
        send!(s, time 10, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            window_len: 65535,
            ..SEND_TEMPL
        });

        // A fast retrnasmit should be sent and not be blocked by congestion control
        recv!(s, time 20, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload: &data[..1024],
            ..RECV_TEMPL
        }));
    }

    #[test]
    fn test_data_retransmit_bursts() {
        let mut s = socket_established();
        s.remote_mss = 6;
        s.send_slice(b"abcdef012345").unwrap();

        recv!(s, time 0, Ok(TcpRepr {
            control:    TcpControl::None,
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }), exact);
        recv!(s, time 0, Ok(TcpRepr {
            control:    TcpControl::Psh,
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"012345"[..],
            ..RECV_TEMPL
        }), exact);
        recv_nothing!(s, time 0);

        recv_nothing!(s, time 50);

        recv!(s, time 1000, Ok(TcpRepr {
            control:    TcpControl::None,
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }), exact);
        recv!(s, time 1500, Ok(TcpRepr {
            control:    TcpControl::Psh,
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"012345"[..],
            ..RECV_TEMPL
        }), exact);
        recv_nothing!(s, time 1550);
    }

    #[test]
    fn test_data_retransmit_bursts_half_ack() {
        let mut s = socket_established();
        s.remote_mss = 6;
        s.send_slice(b"abcdef012345").unwrap();

        recv!(s, time 0, Ok(TcpRepr {
            control:    TcpControl::None,
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }), exact);
        recv!(s, time 0, Ok(TcpRepr {
            control:    TcpControl::Psh,
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"012345"[..],
            ..RECV_TEMPL
        }), exact);
        // Acknowledge the first packet
        send!(s, time 5, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1 + 6),
            window_len: 6,
            ..SEND_TEMPL
        });
        // The second packet should be re-sent.
        recv!(s, time 1500, Ok(TcpRepr {
            control:    TcpControl::Psh,
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"012345"[..],
            ..RECV_TEMPL
        }), exact);

        recv_nothing!(s, time 1550);
    }

    #[test]
    fn test_retransmit_timer_restart_on_partial_ack() {
        let mut s = socket_established();
        s.remote_mss = 6;
        s.send_slice(b"abcdef012345").unwrap();

        recv!(s, time 0, Ok(TcpRepr {
            control:    TcpControl::None,
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }), exact);
        recv!(s, time 0, Ok(TcpRepr {
            control:    TcpControl::Psh,
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"012345"[..],
            ..RECV_TEMPL
        }), exact);
        // Acknowledge the first packet
        send!(s, time 600, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1 + 6),
            window_len: 6,
            ..SEND_TEMPL
        });
        // The ACK of the first packet should restart the retransmit timer and delay a retransmission.
        recv_nothing!(s, time 2399);
        // The second packet should be re-sent.
        recv!(s, time 2400, Ok(TcpRepr {
            control:    TcpControl::Psh,
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"012345"[..],
            ..RECV_TEMPL
        }), exact);
    }

    #[test]
    fn test_data_retransmit_bursts_half_ack_close() {
        let mut s = socket_established();
        s.remote_mss = 6;
        s.send_slice(b"abcdef012345").unwrap();
        s.close();

        recv!(s, time 0, Ok(TcpRepr {
            control:    TcpControl::None,
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }), exact);
        recv!(s, time 0, Ok(TcpRepr {
            control:    TcpControl::Fin,
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"012345"[..],
            ..RECV_TEMPL
        }), exact);
        // Acknowledge the first packet
        send!(s, time 5, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1 + 6),
            window_len: 6,
            ..SEND_TEMPL
        });
        // The second packet should be re-sent.
        recv!(s, time 1500, Ok(TcpRepr {
            control:    TcpControl::Fin,
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"012345"[..],
            ..RECV_TEMPL
        }), exact);

        recv_nothing!(s, time 1550);
    }

    #[test]
    fn test_initial_rto_from_an_earlier_connection_times_the_syn_ack() {
        // xdpstack patch 26: an RTO seeded from the peer's earlier connection
        // (300 ms) resends a lost SYN-ACK after it, not after a second.
        let mut s = socket_syn_received();
        s.set_initial_rto(Duration::from_millis(300));
        let syn_ack = TcpRepr {
            control: TcpControl::Syn,
            seq_number: LOCAL_SEQ,
            ack_number: Some(REMOTE_SEQ + 1),
            max_seg_size: Some(BASE_MSS),
            ..RECV_TEMPL
        };
        recv!(s, time 50, Ok(syn_ack));
        recv_nothing!(s, time 349);
        recv!(s, time 350, Ok(syn_ack)); // resent
        // Karn: the resent SYN-ACK gives no sample; the timer backed off.
        assert_eq!(s.measured_rto(), None);
        recv_nothing!(s, time 949);
        recv!(s, time 950, Ok(syn_ack)); // 600 ms later

        // Clamped: never above RFC 6298's 1 s, never below 200 ms.
        let mut s = socket_listen();
        s.set_initial_rto(Duration::from_millis(5000));
        assert_eq!(s.rtte.retransmission_timeout(), Duration::from_millis(1000));
        s.set_initial_rto(Duration::from_millis(10));
        assert_eq!(s.rtte.retransmission_timeout(), Duration::from_millis(200));
    }

    #[test]
    fn test_measured_rto_is_the_estimate_not_backed_off() {
        let mut s = socket_established();
        assert_eq!(s.measured_rto(), None, "no sample yet");
        s.rtte.sample(50);
        // SRTT 50, RTTVAR 25: 50 + 4 x 25 = 150, floored at 200 ms.
        assert_eq!(s.measured_rto(), Some(Duration::from_millis(200)));
        s.rtte.sample(150);
        let rto = s.rtte.retransmission_timeout();
        assert_eq!(s.measured_rto(), Some(rto));
        s.rtte.on_rto();
        assert_eq!(s.measured_rto(), None, "backed off");
        // A measurement already made is not replaced by a seed.
        let before = s.rtte.retransmission_timeout();
        s.set_initial_rto(Duration::from_millis(300));
        assert_eq!(s.rtte.retransmission_timeout(), before);
    }

    #[test]
    fn test_send_data_after_syn_ack_retransmit() {
        let mut s = socket_syn_received();
        recv!(s, time 50, Ok(TcpRepr {
            control:    TcpControl::Syn,
            seq_number: LOCAL_SEQ,
            ack_number: Some(REMOTE_SEQ + 1),
            max_seg_size: Some(BASE_MSS),
            ..RECV_TEMPL
        }));
        recv!(s, time 1050, Ok(TcpRepr { // retransmit
            control:    TcpControl::Syn,
            seq_number: LOCAL_SEQ,
            ack_number: Some(REMOTE_SEQ + 1),
            max_seg_size: Some(BASE_MSS),
            ..RECV_TEMPL
        }));
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state(), State::Established);
        s.send_slice(b"abcdef").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abcdef"[..],
                ..RECV_TEMPL
            }]
        )
    }

    #[test]
    fn test_established_retransmit_for_dup_ack() {
        let mut s = socket_established();
        // Duplicate ACKs do not replace the retransmission timer
        s.send_slice(b"abc").unwrap();
        recv!(s, time 1000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abc"[..],
            ..RECV_TEMPL
        }));
        // Retransmit timer is on because all data was sent
        assert_eq!(s.tx_buffer.len(), 3);
        // ACK nothing new
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        // Retransmit
        recv!(s, time 4000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abc"[..],
            ..RECV_TEMPL
        }));
    }

    #[test]
    fn test_established_retransmit_reset_after_ack() {
        let mut s = socket_established();
        s.remote_win_len = 6;
        s.send_slice(b"abcdef").unwrap();
        s.send_slice(b"123456").unwrap();
        s.send_slice(b"ABCDEF").unwrap();
        recv!(s, time 1000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }));
        send!(s, time 1005, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1 + 6),
            window_len: 6,
            ..SEND_TEMPL
        });
        recv!(s, time 1010, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"123456"[..],
            ..RECV_TEMPL
        }));
        send!(s, time 1015, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1 + 6 + 6),
            window_len: 6,
            ..SEND_TEMPL
        });
        recv!(s, time 1020, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 6 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"ABCDEF"[..],
            ..RECV_TEMPL
        }));
    }

    #[test]
    fn test_established_queue_during_retransmission() {
        let mut s = socket_established();
        s.remote_mss = 6;
        s.send_slice(b"abcdef123456ABCDEF").unwrap();
        recv!(s, time 1000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        })); // this one is dropped
        recv!(s, time 1005, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"123456"[..],
            ..RECV_TEMPL
        })); // this one is received
        recv!(s, time 1010, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 6 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"ABCDEF"[..],
            ..RECV_TEMPL
        })); // also dropped
        recv!(s, time 3000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        })); // retransmission
        send!(s, time 3005, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1 + 6 + 6),
            ..SEND_TEMPL
        }); // acknowledgement of both segments
        recv!(s, time 3010, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 6 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"ABCDEF"[..],
            ..RECV_TEMPL
        })); // retransmission of only unacknowledged data
    }

    #[test]
    fn test_close_wait_retransmit_reset_after_ack() {
        let mut s = socket_close_wait();
        s.remote_win_len = 6;
        s.send_slice(b"abcdef").unwrap();
        s.send_slice(b"123456").unwrap();
        s.send_slice(b"ABCDEF").unwrap();
        recv!(s, time 1000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1 + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }));
        send!(s, time 1005, TcpRepr {
            seq_number: REMOTE_SEQ + 1 + 1,
            ack_number: Some(LOCAL_SEQ + 1 + 6),
            window_len: 6,
            ..SEND_TEMPL
        });
        recv!(s, time 1010, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1 + 1),
            payload:    &b"123456"[..],
            ..RECV_TEMPL
        }));
        send!(s, time 1015, TcpRepr {
            seq_number: REMOTE_SEQ + 1 + 1,
            ack_number: Some(LOCAL_SEQ + 1 + 6 + 6),
            window_len: 6,
            ..SEND_TEMPL
        });
        recv!(s, time 1020, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 6 + 6,
            ack_number: Some(REMOTE_SEQ + 1 + 1),
            payload:    &b"ABCDEF"[..],
            ..RECV_TEMPL
        }));
    }

    #[test]
    fn test_fin_wait_1_retransmit_reset_after_ack() {
        let mut s = socket_established();
        s.remote_win_len = 6;
        s.send_slice(b"abcdef").unwrap();
        s.send_slice(b"123456").unwrap();
        s.send_slice(b"ABCDEF").unwrap();
        s.close();
        recv!(s, time 1000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }));
        send!(s, time 1005, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1 + 6),
            window_len: 6,
            ..SEND_TEMPL
        });
        recv!(s, time 1010, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"123456"[..],
            ..RECV_TEMPL
        }));
        send!(s, time 1015, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1 + 6 + 6),
            window_len: 6,
            ..SEND_TEMPL
        });
        recv!(s, time 1020, Ok(TcpRepr {
            control:    TcpControl::Fin,
            seq_number: LOCAL_SEQ + 1 + 6 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"ABCDEF"[..],
            ..RECV_TEMPL
        }));
    }

    #[test]
    fn test_fast_retransmit_after_triple_duplicate_ack() {
        let mut s = socket_established();
        s.remote_mss = 3;

        // Normal ACK of previously received segment
        send!(s, time 0, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });

        // Send a long string of text divided into several packets
        // because of previously received "window_len"
        s.send_slice(b"aaaBBBcccDDDeeeFFF").unwrap();

        // This packet is lost
        recv!(s, time 1000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"aaa"[..],
            ..RECV_TEMPL
        }));

        // These packets arrive
        recv!(s, time 1005, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 3,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"BBB"[..],
            ..RECV_TEMPL
        }));
        recv!(s, time 1010, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + (3 * 2),
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"ccc"[..],
            ..RECV_TEMPL
        }));
        recv!(s, time 1015, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + (3 * 3),
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"DDD"[..],
            ..RECV_TEMPL
        }));

        // Duplicate ACKs trigger fast rentramsit after 3rd successive one
        send!(s, time 1050, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });
        send!(s, time 1055, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });
        send!(s, time 1060, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });

        // Fast retransmit should have triggered
        recv!(s, time 1100, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"aaa"[..],
            ..RECV_TEMPL
        }));

        // Transmission should continue as normal after re-transitting the first segment
        recv!(s, time 1105, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + (3 * 4),
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"eee"[..],
            ..RECV_TEMPL
        }));
        recv!(s, time 1110, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + (3 * 5),
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"FFF"[..],
            ..RECV_TEMPL
        }));

        // ACK all received segments
        send!(s, time 1120, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1 + (3 * 5)),
            ..SEND_TEMPL
        });
    }

    #[test]
    fn test_fast_retransmit_duplicate_detection_with_data() {
        let mut s = socket_established();

        s.send_slice(b"abc").unwrap(); // This is lost
        recv!(s, time 1000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abc"[..],
            ..RECV_TEMPL
        }));

        // Normal ACK of previously received segment
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        // First duplicate
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        // Second duplicate
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );

        assert_eq!(s.local_rx_dup_acks, 2, "duplicate ACK counter is not set");

        // This packet has content, hence should not be detected
        // as a duplicate ACK and should reset the duplicate ACK count
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"xxxxxx"[..],
                ..SEND_TEMPL
            }
        );

        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 3,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 58,
                ..RECV_TEMPL
            }]
        );

        assert_eq!(
            s.local_rx_dup_acks, 0,
            "duplicate ACK counter is not reset when receiving data"
        );
    }

    #[test]
    fn test_fast_retransmit_duplicate_detection_with_window_update() {
        let mut s = socket_established();

        s.send_slice(b"abc").unwrap(); // This is lost
        recv!(s, time 1000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abc"[..],
            ..RECV_TEMPL
        }));

        // Normal ACK of previously received segment
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        // First duplicate
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        // Second duplicate
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );

        assert_eq!(s.local_rx_dup_acks, 2, "duplicate ACK counter is not set");

        // This packet has a window update, hence should not be detected
        // as a duplicate ACK and should reset the duplicate ACK count
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_len: 400,
                ..SEND_TEMPL
            }
        );

        assert_eq!(
            s.local_rx_dup_acks, 0,
            "duplicate ACK counter is not reset when receiving a window update"
        );
    }

    #[test]
    fn test_fast_retransmit_duplicate_detection() {
        let mut s = socket_established();
        s.remote_mss = 6;

        // Normal ACK of previously received segment
        send!(s, time 0, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });

        // First duplicate, should not be counted as there is nothing to resend
        send!(s, time 0, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });

        assert_eq!(
            s.local_rx_dup_acks, 0,
            "duplicate ACK counter is set but wound not transmit data"
        );

        // Send a long string of text divided into several packets
        // because of small remote_mss
        s.send_slice(b"xxxxxxyyyyyywwwwwwzzzzzz").unwrap();

        // This packet is reordered in network
        recv!(s, time 1000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"xxxxxx"[..],
            ..RECV_TEMPL
        }));
        recv!(s, time 1005, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"yyyyyy"[..],
            ..RECV_TEMPL
        }));
        recv!(s, time 1010, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + (6 * 2),
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"wwwwww"[..],
            ..RECV_TEMPL
        }));
        recv!(s, time 1015, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + (6 * 3),
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"zzzzzz"[..],
            ..RECV_TEMPL
        }));

        // First duplicate ACK
        send!(s, time 1050, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });
        // Second duplicate ACK
        send!(s, time 1055, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });
        // Reordered packet arrives which should reset duplicate ACK count
        send!(s, time 1060, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1 + (6 * 3)),
            ..SEND_TEMPL
        });

        assert_eq!(
            s.local_rx_dup_acks, 0,
            "duplicate ACK counter is not reset when receiving ACK which updates send window"
        );

        // ACK all received segments
        send!(s, time 1120, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1 + (6 * 4)),
            ..SEND_TEMPL
        });
    }

    #[test]
    fn test_fast_retransmit_dup_acks_counter() {
        let mut s = socket_established();

        s.send_slice(b"abc").unwrap(); // This is lost
        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abc"[..],
            ..RECV_TEMPL
        }));

        send!(s, time 0, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });

        // A lot of retransmits happen here
        s.local_rx_dup_acks = u8::MAX - 1;

        // Send 3 more ACKs, which could overflow local_rx_dup_acks,
        // but intended behaviour is that we saturate the bounds
        // of local_rx_dup_acks
        send!(s, time 0, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });
        send!(s, time 0, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });
        send!(s, time 0, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });
        assert_eq!(
            s.local_rx_dup_acks,
            u8::MAX,
            "duplicate ACK count should not overflow but saturate"
        );
    }

    #[test]
    fn test_fast_retransmit_zero_window() {
        let mut s = socket_established();

        send!(s, time 1000, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });

        s.send_slice(b"abc").unwrap();

        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abc"[..],
            ..RECV_TEMPL
        }));

        // 3 dup acks
        send!(s, time 1050, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });
        send!(s, time 1050, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });
        send!(s, time 1050, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            window_len: 0, // boom
            ..SEND_TEMPL
        });

        // even though we're in "fast retransmit", we shouldn't
        // force-send anything because the remote's window is full.
        recv_nothing!(s);
    }

    #[test]
    fn test_retransmit_exponential_backoff() {
        let mut s = socket_established();
        s.send_slice(b"abcdef").unwrap();
        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }));

        let expected_retransmission_instant = s.rtte.retransmission_timeout().total_millis() as i64;
        recv_nothing!(s, time expected_retransmission_instant - 1);
        recv!(s, time expected_retransmission_instant, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }));

        // "current time" is expected_retransmission_instant, and we want to wait 2 * retransmission timeout
        let expected_retransmission_instant = 3 * expected_retransmission_instant;

        recv_nothing!(s, time expected_retransmission_instant - 1);
        recv!(s, time expected_retransmission_instant, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }));
    }

    #[test]
    fn test_data_retransmit_ack_more_than_expected() {
        let mut s = socket_established();
        s.remote_mss = 6;
        s.send_slice(b"aaaaaabbbbbbcccccc").unwrap();

        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"aaaaaa"[..],
            ..RECV_TEMPL
        }));
        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"bbbbbb"[..],
            ..RECV_TEMPL
        }));
        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 12,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"cccccc"[..],
            ..RECV_TEMPL
        }));
        recv_nothing!(s, time 0);

        recv_nothing!(s, time 50);

        // retransmit timer expires, we want to retransmit all 3 packets
        // but we only manage to retransmit 2 (due to e.g. lack of device buffer space)
        assert!(s.timer.is_retransmit());
        recv!(s, time 1000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"aaaaaa"[..],
            ..RECV_TEMPL
        }));
        recv!(s, time 1000, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"bbbbbb"[..],
            ..RECV_TEMPL
        }));

        // ack first packet.
        send!(
            s,
            time 3000,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 6),
                ..SEND_TEMPL
            }
        );

        // this should keep retransmit timer on, because there's
        // still unacked data.
        assert!(s.timer.is_retransmit());

        // ack all three packets.
        // This might confuse the TCP stack because after the retransmit
        // it "thinks" the 3rd packet hasn't been transmitted yet, but it is getting acked.
        send!(
            s,
            time 3000,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 18),
                ..SEND_TEMPL
            }
        );

        // this should exit retransmit mode.
        assert!(!s.timer.is_retransmit());
        // and consider all data ACKed.
        assert!(s.tx_buffer.is_empty());
        recv_nothing!(s, time 5000);
    }

    #[test]
    fn test_retransmit_fin() {
        let mut s = socket_established();
        s.close();
        recv!(s, time 0, Ok(TcpRepr {
            control: TcpControl::Fin,
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            ..RECV_TEMPL
        }));

        recv_nothing!(s, time 999);
        recv!(s, time 1000, Ok(TcpRepr {
            control: TcpControl::Fin,
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            ..RECV_TEMPL
        }));
    }

    #[test]
    fn test_retransmit_fin_wait() {
        let mut s = socket_fin_wait_1();
        // we send FIN
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                ..RECV_TEMPL
            }]
        );
        // remote also sends FIN, does NOT ack ours.
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        // we ack it
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::None,
                seq_number: LOCAL_SEQ + 2,
                ack_number: Some(REMOTE_SEQ + 2),
                ..RECV_TEMPL
            }]
        );

        // we haven't got an ACK for our FIN, we should retransmit.
        recv_nothing!(s, time 999);
        recv!(
            s,
            time 1000,
            [TcpRepr {
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 2),
                ..RECV_TEMPL
            }]
        );
        recv_nothing!(s, time 2999);
        recv!(
            s,
            time 3000,
            [TcpRepr {
                control: TcpControl::Fin,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 2),
                ..RECV_TEMPL
            }]
        );
    }

    // =========================================================================================//
    // Tests for window management.
    // =========================================================================================//

    #[test]
    fn test_maximum_segment_size() {
        let mut s = socket_listen();
        s.tx_buffer = SocketBuffer::new(vec![0; 32767]);
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                max_seg_size: Some(1000),
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_len: 32767,
                ..SEND_TEMPL
            }
        );
        s.send_slice(&[0; 1200][..]).unwrap();
        recv!(
            s,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &[0; 1000][..],
                ..RECV_TEMPL
            })
        );
    }

    #[cfg(feature = "segmentation-offload")]
    #[test]
    fn test_segmentation_offload() {
        use crate::tests::segmentation_offload::MAX_SEGMENTABLE_SIZE;
        use crate::wire;

        let (interface, _, _) =
            crate::tests::segmentation_offload::setup_segmenting(crate::phy::Medium::Ip);
        let mut s = TestSocket {
            cx: interface.inner,
            ..socket_listen()
        };
        s.tx_buffer = SocketBuffer::new(vec![0; 2 * MAX_SEGMENTABLE_SIZE]);

        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                window_scale: Some(2),
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_len: u16::MAX,
                ..SEND_TEMPL
            }
        );

        s.send_slice(&[0; 2 * MAX_SEGMENTABLE_SIZE][..]).unwrap();

        // We want to ensure that the size of the unsegmented packets exceed the
        // maximum allowed by the length field in the IP headers to check if the
        // relevant code incorrectly assumes that the length fits into the
        // field.
        let ip_header_len = match s.local_endpoint().unwrap().addr {
            #[cfg(feature = "proto-ipv4")]
            IpAddress::Ipv4(_) => {
                assert!(MAX_SEGMENTABLE_SIZE > usize::from(u16::MAX));
                wire::IPV4_HEADER_LEN
            }
            #[cfg(feature = "proto-ipv6")]
            IpAddress::Ipv6(_) => {
                assert!(MAX_SEGMENTABLE_SIZE - wire::IPV6_HEADER_LEN > usize::from(u16::MAX));
                wire::IPV6_HEADER_LEN
            }
        };
        let payload = vec![0; MAX_SEGMENTABLE_SIZE - ip_header_len - TCP_HEADER_LEN];
        assert!(
            payload.len() > usize::from(BASE_MSS),
            "the payload is not large enough to require segmentation!"
        );

        recv!(
            s,
            [
                TcpRepr {
                    seq_number: LOCAL_SEQ + 1,
                    ack_number: Some(REMOTE_SEQ + 1),
                    payload: payload.as_slice(),
                    ..RECV_TEMPL
                },
                TcpRepr {
                    seq_number: LOCAL_SEQ + payload.len() + 1,
                    ack_number: Some(REMOTE_SEQ + 1),
                    payload: payload.as_slice(),
                    ..RECV_TEMPL
                }
            ]
        );
    }

    #[test]
    fn test_recv_out_of_recv_win() {
        let mut s = socket_established();
        s.set_ack_delay(Some(ACK_DELAY_DEFAULT));
        s.remote_mss = 32;

        // No ACKs are sent due to the ACK delay.
        send!(
            s,
            TcpRepr {
                control: TcpControl::Psh,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &[0; 32],
                ..SEND_TEMPL
            }
        );
        recv_nothing!(s);

        // RMSS+1 bytes of data has been received, so ACK is sent without delay.
        send!(
            s,
            TcpRepr {
                control: TcpControl::Psh,
                seq_number: REMOTE_SEQ + 33,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &[0; 1],
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 34),
                window_len: 31,
                ..RECV_TEMPL
            })
        );

        // This frees up a byte in the receive buffer. However, the remote shouldn't be aware of
        // this since no ACKs are sent.
        s.recv_slice(&mut [0; 1]).unwrap();
        recv_nothing!(s);

        // Now, if the remote wants to send one byte outside of the receive window that we
        // previously advertised, it should not succeed.
        send!(
            s,
            TcpRepr {
                control: TcpControl::Psh,
                seq_number: REMOTE_SEQ + 34,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &[0; 32],
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 65),
                window_len: 1, // The last byte isn't accepted.
                ..RECV_TEMPL
            })
        );
    }

    #[test]
    fn test_close_wait_no_window_update() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &[1, 2, 3, 4],
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::CloseWait);

        // we ack the FIN, with the reduced window size.
        recv!(
            s,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 6),
                window_len: 60,
                ..RECV_TEMPL
            })
        );

        let rx_buf = &mut [0; 32];
        assert_eq!(s.recv_slice(rx_buf), Ok(4));

        // check that we do NOT send a window update even if it has changed.
        recv_nothing!(s);
    }

    #[test]
    fn test_time_wait_no_window_update() {
        let mut s = socket_fin_wait_2();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 2),
                payload: &[1, 2, 3, 4],
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::TimeWait);

        // we ack the FIN, with the reduced window size.
        recv!(
            s,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ + 2,
                ack_number: Some(REMOTE_SEQ + 6),
                window_len: 60,
                ..RECV_TEMPL
            })
        );

        let rx_buf = &mut [0; 32];
        assert_eq!(s.recv_slice(rx_buf), Ok(4));

        // check that we do NOT send a window update even if it has changed.
        recv_nothing!(s);
    }

    // =========================================================================================//
    // Tests for flow control.
    // =========================================================================================//

    #[test]
    fn test_psh_transmit() {
        let mut s = socket_established();
        s.remote_mss = 6;
        s.send_slice(b"abcdef").unwrap();
        s.send_slice(b"123456").unwrap();
        recv!(s, time 0, Ok(TcpRepr {
            control:    TcpControl::None,
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }), exact);
        recv!(s, time 0, Ok(TcpRepr {
            control:    TcpControl::Psh,
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"123456"[..],
            ..RECV_TEMPL
        }), exact);
    }

    #[test]
    fn test_psh_receive() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Psh,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 58,
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_zero_window_ack() {
        let mut s = socket_established();
        s.rx_buffer = SocketBuffer::new(vec![0; 6]);
        s.assembler = Assembler::new();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 0,
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 6,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"123456"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 0,
                ..RECV_TEMPL
            })
        );
    }

    #[test]
    fn test_zero_window_ack_not_rate_limited() {
        let mut s = socket_established();
        s.rx_buffer = SocketBuffer::new(vec![0; 6]);
        s.assembler = Assembler::new();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 0,
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 6,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"123456"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 0,
                ..RECV_TEMPL
            })
        );
        // The remote retransmits into the zero window again within a second,
        // e.g. because the ACK above was lost. The ACK must not be withheld by
        // challenge ACK rate limiting: it is the remote's only way to learn
        // the window state, and a data segment cannot cause an ACK loop.
        send!(
            s,
            time 100,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 6,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"123456"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 0,
                ..RECV_TEMPL
            })
        );
    }

    #[test]
    fn test_zero_window_fin() {
        let mut s = socket_established();
        s.rx_buffer = SocketBuffer::new(vec![0; 6]);
        s.assembler = Assembler::new();
        s.ack_delay = None;

        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 0,
                ..RECV_TEMPL
            }]
        );

        // Even though the sequence space for the FIN itself is outside the window,
        // it is not data, so FIN must be accepted when window full.
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 6,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &[],
                control: TcpControl::Fin,
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::CloseWait);

        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 7),
                window_len: 0,
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_zero_window_ack_on_window_growth() {
        let mut s = socket_established();
        s.rx_buffer = SocketBuffer::new(vec![0; 6]);
        s.assembler = Assembler::new();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 0,
                ..RECV_TEMPL
            }]
        );
        recv_nothing!(s, time 0);
        s.recv(|buffer| {
            assert_eq!(&buffer[..3], b"abc");
            (3, ())
        })
        .unwrap();
        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1 + 6),
            window_len: 3,
            ..RECV_TEMPL
        }));
        recv_nothing!(s, time 0);
        s.recv(|buffer| {
            assert_eq!(buffer, b"def");
            (buffer.len(), ())
        })
        .unwrap();
        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1 + 6),
            window_len: 6,
            ..RECV_TEMPL
        }));
    }

    #[test]
    fn test_window_update_with_delay_ack() {
        let mut s = socket_established_with_buffer_sizes(6, 6);
        s.ack_delay = Some(Duration::from_millis(10));

        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            }
        );

        recv_nothing!(s, time 5);

        s.recv(|buffer| {
            assert_eq!(&buffer[..2], b"ab");
            (2, ())
        })
        .unwrap();
        recv!(
            s,
            time 5,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 2,
                ..RECV_TEMPL
            })
        );

        s.recv(|buffer| {
            assert_eq!(&buffer[..1], b"c");
            (1, ())
        })
        .unwrap();
        recv_nothing!(s, time 5);

        s.recv(|buffer| {
            assert_eq!(&buffer[..1], b"d");
            (1, ())
        })
        .unwrap();
        recv!(
            s,
            time 5,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 4,
                ..RECV_TEMPL
            })
        );
    }

    #[test]
    fn test_fill_peer_window() {
        let mut s = socket_established();
        s.remote_mss = 6;
        s.send_slice(b"abcdef123456!@#$%^").unwrap();
        recv!(
            s,
            [
                TcpRepr {
                    seq_number: LOCAL_SEQ + 1,
                    ack_number: Some(REMOTE_SEQ + 1),
                    payload: &b"abcdef"[..],
                    ..RECV_TEMPL
                },
                TcpRepr {
                    seq_number: LOCAL_SEQ + 1 + 6,
                    ack_number: Some(REMOTE_SEQ + 1),
                    payload: &b"123456"[..],
                    ..RECV_TEMPL
                },
                TcpRepr {
                    seq_number: LOCAL_SEQ + 1 + 6 + 6,
                    ack_number: Some(REMOTE_SEQ + 1),
                    payload: &b"!@#$%^"[..],
                    ..RECV_TEMPL
                }
            ]
        );
    }

    #[test]
    fn test_announce_window_after_read() {
        let mut s = socket_established();
        s.rx_buffer = SocketBuffer::new(vec![0; 6]);
        s.assembler = Assembler::new();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abc"[..],
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 3),
                window_len: 3,
                ..RECV_TEMPL
            }]
        );
        // Test that `dispatch` updates `remote_last_win`
        assert_eq!(s.remote_last_win, s.rx_buffer.window() as u16);
        s.recv(|buffer| (buffer.len(), ())).unwrap();
        assert!(s.window_to_update());
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 3),
                window_len: 6,
                ..RECV_TEMPL
            }]
        );
        assert_eq!(s.remote_last_win, s.rx_buffer.window() as u16);
        // Provoke immediate ACK to test that `process` updates `remote_last_win`
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 6,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"def"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 3),
                window_len: 6,
                ..RECV_TEMPL
            })
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 3,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abc"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 9),
                window_len: 0,
                ..RECV_TEMPL
            })
        );
        assert_eq!(s.remote_last_win, s.rx_buffer.window() as u16);
        s.recv(|buffer| (buffer.len(), ())).unwrap();
        assert!(s.window_to_update());
    }

    // =========================================================================================//
    // Tests for zero-window probes.
    // =========================================================================================//

    #[test]
    fn test_zero_window_probe_enter_on_win_update() {
        let mut s = socket_established();

        assert!(!s.timer.is_zero_window_probe());

        s.send_slice(b"abcdef123456!@#$%^").unwrap();

        assert!(!s.timer.is_zero_window_probe());

        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_len: 0,
                ..SEND_TEMPL
            }
        );

        assert!(s.timer.is_zero_window_probe());
    }

    #[test]
    fn test_xdp_rto_with_a_closed_window_leaves_a_timer_running() {
        // Data in flight, then the peer closes its window without
        // acknowledging it. The RTO can resend nothing; upstream then left
        // the timer idle and the socket waited for a window update that may
        // be lost. Now the zero-window probe timer runs and a probe goes.
        let mut s = socket_established();
        s.send_slice(b"abcdef").unwrap();
        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }));
        send!(s, time 10, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            window_len: 0,
            ..SEND_TEMPL
        });
        // The RTO fires (nothing can go through a closed window).
        let mut t = 0;
        while t < 2_000 && !s.timer.is_zero_window_probe() {
            t += 10;
            s.socket
                .dispatch(&mut s.cx, |_, _, _| Ok::<(), ()>(()))
                .unwrap();
            s.cx.set_now(Instant::from_millis(t));
        }
        assert!(s.timer.is_zero_window_probe(), "no timer after the RTO");
        // And the probe goes within the backed-off timeout.
        let mut probed = false;
        while t < 10_000 && !probed {
            t += 10;
            s.cx.set_now(Instant::from_millis(t));
            s.socket
                .dispatch(&mut s.cx, |_, _, (_, tcp)| {
                    probed |= !tcp.payload.is_empty();
                    Ok::<(), ()>(())
                })
                .unwrap();
        }
        assert!(probed, "no zero-window probe by {t} ms");
    }

    #[test]
    fn test_zero_window_probe_enter_on_send() {
        let mut s = socket_established();

        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_len: 0,
                ..SEND_TEMPL
            }
        );

        assert!(!s.timer.is_zero_window_probe());

        s.send_slice(b"abcdef123456!@#$%^").unwrap();

        assert!(s.timer.is_zero_window_probe());
    }

    #[test]
    fn test_zero_window_probe_exit() {
        let mut s = socket_established();

        s.send_slice(b"abcdef123456!@#$%^").unwrap();

        assert!(!s.timer.is_zero_window_probe());

        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_len: 0,
                ..SEND_TEMPL
            }
        );

        assert!(s.timer.is_zero_window_probe());

        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_len: 6,
                ..SEND_TEMPL
            }
        );

        assert!(!s.timer.is_zero_window_probe());
    }

    #[test]
    fn test_zero_window_probe_exit_ack() {
        let mut s = socket_established();

        s.send_slice(b"abcdef123456!@#$%^").unwrap();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_len: 0,
                ..SEND_TEMPL
            }
        );

        recv!(
            s,
            time 1000,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"a"[..],
                ..RECV_TEMPL
            }]
        );

        send!(
            s,
            time 1010,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 2),
                window_len: 6,
                ..SEND_TEMPL
            }
        );

        recv!(
            s,
            time 1010,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 2,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"bcdef1"[..],
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    #[cfg(feature = "socket-tcp-reno")]
    fn test_zero_window_probe_not_capped_by_cwnd() {
        let mut s = socket_established_with_buffer_sizes(8192, 64);
        s.set_congestion_control(CongestionControl::Reno);
        s.remote_win_len = 65535;
        s.remote_mss = 1024;

        let data = [b'x'; 4096];
        s.send_slice(&data[..]).unwrap();

        // Reno's initial cwnd is 2048: two segments fill the congestion window
        // exactly, leaving cwnd_remaining() == 0.
        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload: &data[..1024],
            ..RECV_TEMPL
        }));
        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 1024,
            ack_number: Some(REMOTE_SEQ + 1),
            payload: &data[..1024],
            ..RECV_TEMPL
        }));
        recv_nothing!(s, time 0);

        // The remote closes its window without acknowledging anything new, so
        // no congestion window space is freed either.
        send!(s, time 10, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            window_len: 0,
            ..SEND_TEMPL
        });

        // Arm the probe timer. (Set directly because the ACK above carries no
        // new data; in real traffic this state is reached e.g. when the
        // controller shrinks cwnd below the flight size while probing.)
        s.timer
            .set_for_zero_window_probe(Instant::from_millis(10), Duration::from_millis(100));

        // The probe must carry 1 byte of data past the window edge even though
        // the congestion window is exhausted: an empty probe occupies no
        // sequence space and elicits no reply, so the connection would stall
        // if the remote's window update got lost.
        recv!(s, time 110, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 2048,
            ack_number: Some(REMOTE_SEQ + 1),
            payload: &data[..1],
            ..RECV_TEMPL
        }));
    }

    #[test]
    fn test_zero_window_probe_backoff_nack_reply() {
        let mut s = socket_established();
        s.send_slice(b"abcdef123456!@#$%^").unwrap();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_len: 0,
                ..SEND_TEMPL
            }
        );

        recv_nothing!(s, time 999);
        recv!(
            s,
            time 1000,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"a"[..],
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            time 1100,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_len: 0,
                ..SEND_TEMPL
            }
        );

        recv_nothing!(s, time 2999);
        recv!(
            s,
            time 3000,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"a"[..],
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            time 3100,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_len: 0,
                ..SEND_TEMPL
            }
        );

        recv_nothing!(s, time 6999);
        recv!(
            s,
            time 7000,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"a"[..],
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_zero_window_probe_backoff_no_reply() {
        let mut s = socket_established();
        s.send_slice(b"abcdef123456!@#$%^").unwrap();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_len: 0,
                ..SEND_TEMPL
            }
        );

        recv_nothing!(s, time 999);
        recv!(
            s,
            time 1000,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"a"[..],
                ..RECV_TEMPL
            }]
        );

        recv_nothing!(s, time 2999);
        recv!(
            s,
            time 3000,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"a"[..],
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_zero_window_probe_shift() {
        let mut s = socket_established();

        s.send_slice(b"abcdef123456!@#$%^").unwrap();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_len: 0,
                ..SEND_TEMPL
            }
        );

        recv_nothing!(s, time 999);
        recv!(
            s,
            time 1000,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"a"[..],
                ..RECV_TEMPL
            }]
        );

        recv_nothing!(s, time 2999);
        recv!(
            s,
            time 3000,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"a"[..],
                ..RECV_TEMPL
            }]
        );

        // ack the ZWP byte, but still advertise zero window.
        // this should restart the ZWP timer.
        send!(
            s,
            time 3100,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 2),
                window_len: 0,
                ..SEND_TEMPL
            }
        );

        // ZWP should be sent at 3100+1000 = 4100
        recv_nothing!(s, time 4099);
        recv!(
            s,
            time 4100,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 2,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"b"[..],
                ..RECV_TEMPL
            }]
        );
    }

    // =========================================================================================//
    // Tests for timeouts.
    // =========================================================================================//

    #[test]
    fn test_listen_timeout() {
        let mut s = socket_listen();
        s.set_timeout(Some(Duration::from_millis(100)));
        assert_eq!(s.socket.poll_at(&mut s.cx), PollAt::Ingress);
    }

    #[test]
    fn test_connect_timeout() {
        let mut s = socket();
        s.local_seq_no = LOCAL_SEQ;
        s.socket
            .connect(&mut s.cx, REMOTE_END, LOCAL_END.port)
            .unwrap();
        s.set_timeout(Some(Duration::from_millis(100)));
        recv!(s, time 150, Ok(TcpRepr {
            control:    TcpControl::Syn,
            seq_number: LOCAL_SEQ,
            ack_number: None,
            max_seg_size: Some(BASE_MSS),
            window_scale: Some(0),
            sack_permitted: true,
            ..RECV_TEMPL
        }));
        assert_eq!(s.state, State::SynSent);
        assert_eq!(
            s.socket.poll_at(&mut s.cx),
            PollAt::Time(Instant::from_millis(250))
        );
        recv!(s, time 250, Ok(TcpRepr {
            control:    TcpControl::Rst,
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(TcpSeqNumber(0)),
            window_scale: None,
            ..RECV_TEMPL
        }));
        assert_eq!(s.state, State::Closed);
    }

    #[test]
    fn test_established_timeout() {
        let mut s = socket_established();
        s.set_timeout(Some(Duration::from_millis(2000)));
        recv_nothing!(s, time 250);
        assert_eq!(
            s.socket.poll_at(&mut s.cx),
            PollAt::Time(Instant::from_millis(2250))
        );
        s.send_slice(b"abcdef").unwrap();
        assert_eq!(s.socket.poll_at(&mut s.cx), PollAt::Now);
        recv!(s, time 255, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }));
        assert_eq!(
            s.socket.poll_at(&mut s.cx),
            PollAt::Time(Instant::from_millis(1255))
        );
        recv!(s, time 1255, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }));
        assert_eq!(
            s.socket.poll_at(&mut s.cx),
            PollAt::Time(Instant::from_millis(2255))
        );
        recv!(s, time 2255, Ok(TcpRepr {
            control:    TcpControl::Rst,
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            ..RECV_TEMPL
        }));
        assert_eq!(s.state, State::Closed);
    }

    #[test]
    fn test_established_keep_alive_timeout() {
        let mut s = socket_established();
        s.set_keep_alive(Some(Duration::from_millis(50)));
        s.set_timeout(Some(Duration::from_millis(100)));
        recv!(s, time 100, Ok(TcpRepr {
            seq_number: LOCAL_SEQ,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &[0],
            ..RECV_TEMPL
        }));
        recv_nothing!(s, time 100);
        assert_eq!(
            s.socket.poll_at(&mut s.cx),
            PollAt::Time(Instant::from_millis(150))
        );
        send!(s, time 105, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });
        assert_eq!(
            s.socket.poll_at(&mut s.cx),
            PollAt::Time(Instant::from_millis(155))
        );
        recv!(s, time 155, Ok(TcpRepr {
            seq_number: LOCAL_SEQ,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &[0],
            ..RECV_TEMPL
        }));
        recv_nothing!(s, time 155);
        assert_eq!(
            s.socket.poll_at(&mut s.cx),
            PollAt::Time(Instant::from_millis(205))
        );
        recv_nothing!(s, time 200);
        recv!(s, time 205, Ok(TcpRepr {
            control:    TcpControl::Rst,
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            ..RECV_TEMPL
        }));
        recv_nothing!(s, time 205);
        assert_eq!(s.state, State::Closed);
    }

    #[test]
    fn test_fin_wait_1_timeout() {
        let mut s = socket_fin_wait_1();
        s.set_timeout(Some(Duration::from_millis(1000)));
        recv!(s, time 100, Ok(TcpRepr {
            control:    TcpControl::Fin,
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            ..RECV_TEMPL
        }));
        recv!(s, time 1100, Ok(TcpRepr {
            control:    TcpControl::Rst,
            seq_number: LOCAL_SEQ + 1 + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            ..RECV_TEMPL
        }));
        assert_eq!(s.state, State::Closed);
    }

    #[test]
    fn test_last_ack_timeout() {
        let mut s = socket_last_ack();
        s.set_timeout(Some(Duration::from_millis(1000)));
        recv!(s, time 100, Ok(TcpRepr {
            control:    TcpControl::Fin,
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1 + 1),
            ..RECV_TEMPL
        }));
        recv!(s, time 1100, Ok(TcpRepr {
            control:    TcpControl::Rst,
            seq_number: LOCAL_SEQ + 1 + 1,
            ack_number: Some(REMOTE_SEQ + 1 + 1),
            ..RECV_TEMPL
        }));
        assert_eq!(s.state, State::Closed);
    }

    #[test]
    fn test_closed_timeout() {
        let mut s = socket_established();
        s.set_timeout(Some(Duration::from_millis(200)));
        s.remote_last_ts = Some(Instant::from_millis(100));
        s.abort();
        assert_eq!(s.socket.poll_at(&mut s.cx), PollAt::Now);
        recv!(s, time 100, Ok(TcpRepr {
            control:    TcpControl::Rst,
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            ..RECV_TEMPL
        }));
        assert_eq!(s.socket.poll_at(&mut s.cx), PollAt::Ingress);
    }

    // =========================================================================================//
    // Tests for keep-alive.
    // =========================================================================================//

    #[test]
    fn test_responds_to_keep_alive() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                ..RECV_TEMPL
            })
        );
    }

    #[test]
    fn test_sends_keep_alive() {
        let mut s = socket_established();
        s.set_keep_alive(Some(Duration::from_millis(100)));

        // drain the forced keep-alive packet
        assert_eq!(s.socket.poll_at(&mut s.cx), PollAt::Now);
        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &[0],
            ..RECV_TEMPL
        }));

        assert_eq!(
            s.socket.poll_at(&mut s.cx),
            PollAt::Time(Instant::from_millis(100))
        );
        recv_nothing!(s, time 95);
        recv!(s, time 100, Ok(TcpRepr {
            seq_number: LOCAL_SEQ,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &[0],
            ..RECV_TEMPL
        }));

        assert_eq!(
            s.socket.poll_at(&mut s.cx),
            PollAt::Time(Instant::from_millis(200))
        );
        recv_nothing!(s, time 195);
        recv!(s, time 200, Ok(TcpRepr {
            seq_number: LOCAL_SEQ,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &[0],
            ..RECV_TEMPL
        }));

        send!(s, time 250, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            ..SEND_TEMPL
        });
        assert_eq!(
            s.socket.poll_at(&mut s.cx),
            PollAt::Time(Instant::from_millis(350))
        );
        recv_nothing!(s, time 345);
        recv!(s, time 350, Ok(TcpRepr {
            seq_number: LOCAL_SEQ,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"\x00"[..],
            ..RECV_TEMPL
        }));
    }

    // =========================================================================================//
    // Tests for time-to-live configuration.
    // =========================================================================================//

    #[test]
    fn test_set_hop_limit() {
        let mut s = socket_syn_received();

        s.set_hop_limit(Some(0x2a));
        assert_eq!(
            s.socket.dispatch(&mut s.cx, |_, _, (ip_repr, _)| {
                assert_eq!(ip_repr.hop_limit(), 0x2a);
                Ok::<_, ()>(())
            }),
            Ok(())
        );

        // assert that user-configurable settings are kept,
        // see https://github.com/smoltcp-rs/smoltcp/issues/601.
        s.reset();
        assert_eq!(s.hop_limit(), Some(0x2a));
    }

    #[test]
    #[should_panic(expected = "the time-to-live value of a packet must not be zero")]
    fn test_set_hop_limit_zero() {
        let mut s = socket_syn_received();
        s.set_hop_limit(Some(0));
    }

    // =========================================================================================//
    // Tests for reassembly.
    // =========================================================================================//

    #[test]
    fn test_out_of_order() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 3,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"def"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                ..RECV_TEMPL
            })
        );
        s.recv(|buffer| {
            assert_eq!(buffer, b"");
            (buffer.len(), ())
        })
        .unwrap();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 58,
                ..RECV_TEMPL
            })
        );
        s.recv(|buffer| {
            assert_eq!(buffer, b"abcdef");
            (buffer.len(), ())
        })
        .unwrap();
    }

    #[test]
    fn test_buffer_wraparound_rx() {
        let mut s = socket_established();
        s.rx_buffer = SocketBuffer::new(vec![0; 6]);
        s.assembler = Assembler::new();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abc"[..],
                ..SEND_TEMPL
            }
        );
        s.recv(|buffer| {
            assert_eq!(buffer, b"abc");
            (buffer.len(), ())
        })
        .unwrap();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 3,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"defghi"[..],
                ..SEND_TEMPL
            }
        );
        let mut data = [0; 6];
        assert_eq!(s.recv_slice(&mut data[..]), Ok(6));
        assert_eq!(data, &b"defghi"[..]);
    }

    #[test]
    fn test_buffer_wraparound_tx() {
        let mut s = socket_established();
        s.set_nagle_enabled(false);

        s.tx_buffer = SocketBuffer::new(vec![b'.'; 9]);
        assert_eq!(s.send_slice(b"xxxyyy"), Ok(6));
        assert_eq!(s.tx_buffer.dequeue_many(3), &b"xxx"[..]);
        assert_eq!(s.tx_buffer.len(), 3);

        // "abcdef" not contiguous in tx buffer
        assert_eq!(s.send_slice(b"abcdef"), Ok(6));
        recv!(
            s,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"yyyabc"[..],
                ..RECV_TEMPL
            })
        );
        recv!(
            s,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 6,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"def"[..],
                ..RECV_TEMPL
            })
        );
    }

    // =========================================================================================//
    // Tests for graceful vs ungraceful rx close
    // =========================================================================================//

    #[test]
    fn test_rx_close_fin() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abc"[..],
                ..SEND_TEMPL
            }
        );
        s.recv(|data| {
            assert_eq!(data, b"abc");
            (3, ())
        })
        .unwrap();
        assert_eq!(s.recv(|_| (0, ())), Err(RecvError::Finished));
    }

    #[test]
    fn test_rx_close_fin_in_fin_wait_1() {
        let mut s = socket_fin_wait_1();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abc"[..],
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Closing);
        s.recv(|data| {
            assert_eq!(data, b"abc");
            (3, ())
        })
        .unwrap();
        assert_eq!(s.recv(|_| (0, ())), Err(RecvError::Finished));
    }

    #[test]
    fn test_rx_close_fin_in_fin_wait_2() {
        let mut s = socket_fin_wait_2();
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 1),
                payload: &b"abc"[..],
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::TimeWait);
        s.recv(|data| {
            assert_eq!(data, b"abc");
            (3, ())
        })
        .unwrap();
        assert_eq!(s.recv(|_| (0, ())), Err(RecvError::Finished));
    }

    #[test]
    fn test_rx_close_fin_with_hole() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abc"[..],
                ..SEND_TEMPL
            }
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Fin,
                seq_number: REMOTE_SEQ + 1 + 6,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"ghi"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 3),
                window_len: 61,
                ..RECV_TEMPL
            })
        );
        s.recv(|data| {
            assert_eq!(data, b"abc");
            (3, ())
        })
        .unwrap();
        s.recv(|data| {
            assert_eq!(data, b"");
            (0, ())
        })
        .unwrap();
        // xdpstack patch (RFC 5961 3.2): an RST inside the window but not
        // at RCV.NXT gets a challenge ACK; only the exact one resets.
        send!(
            s,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ + 1 + 9,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 3),
                window_len: 64,
                ..RECV_TEMPL
            })
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ + 1 + 3,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        // Error must be `Illegal` even if we've received a FIN,
        // because we are missing data.
        assert_eq!(s.recv(|_| (0, ())), Err(RecvError::InvalidState));
    }

    #[test]
    fn test_rx_close_rst() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abc"[..],
                ..SEND_TEMPL
            }
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ + 1 + 3,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        s.recv(|data| {
            assert_eq!(data, b"abc");
            (3, ())
        })
        .unwrap();
        assert_eq!(s.recv(|_| (0, ())), Err(RecvError::InvalidState));
    }

    #[test]
    fn test_rx_close_rst_with_hole() {
        let mut s = socket_established();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abc"[..],
                ..SEND_TEMPL
            }
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 6,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"ghi"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 3),
                window_len: 61,
                ..RECV_TEMPL
            })
        );
        // xdpstack patch (RFC 5961 3.2): an RST inside the window but not
        // at RCV.NXT gets a challenge ACK; only the exact one resets.
        send!(
            s,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ + 1 + 9,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 3),
                window_len: 61,
                ..RECV_TEMPL
            })
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ + 1 + 3,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        s.recv(|data| {
            assert_eq!(data, b"abc");
            (3, ())
        })
        .unwrap();
        assert_eq!(s.recv(|_| (0, ())), Err(RecvError::InvalidState));
    }

    // =========================================================================================//
    // Tests for delayed ACK
    // =========================================================================================//

    #[test]
    fn test_delayed_ack() {
        let mut s = socket_established();
        s.set_ack_delay(Some(ACK_DELAY_DEFAULT));
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abc"[..],
                ..SEND_TEMPL
            }
        );

        // No ACK is immediately sent.
        recv_nothing!(s);

        // After 10ms, it is sent.
        recv!(s, time 11, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1 + 3),
            window_len: 61,
            ..RECV_TEMPL
        }));
    }

    #[test]
    fn test_delayed_ack_win() {
        let mut s = socket_established();
        s.set_ack_delay(Some(ACK_DELAY_DEFAULT));
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abc"[..],
                ..SEND_TEMPL
            }
        );

        // Reading the data off the buffer should cause a window update.
        s.recv(|data| {
            assert_eq!(data, b"abc");
            (3, ())
        })
        .unwrap();

        // However, no ACK or window update is immediately sent.
        recv_nothing!(s);

        // After 10ms, it is sent.
        recv!(s, time 11, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1 + 3),
            ..RECV_TEMPL
        }));
    }

    #[test]
    fn test_delayed_ack_reply() {
        let mut s = socket_established();
        s.set_ack_delay(Some(ACK_DELAY_DEFAULT));
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abc"[..],
                ..SEND_TEMPL
            }
        );

        s.recv(|data| {
            assert_eq!(data, b"abc");
            (3, ())
        })
        .unwrap();

        s.send_slice(&b"xyz"[..]).unwrap();

        // Writing data to the socket causes ACK to not be delayed,
        // because it is immediately sent with the data.
        recv!(
            s,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 3),
                payload: &b"xyz"[..],
                ..RECV_TEMPL
            })
        );
    }

    #[test]
    fn test_delayed_ack_every_rmss() {
        let mut s = socket_established_with_buffer_sizes(DEFAULT_MSS * 2, DEFAULT_MSS * 2);
        s.set_ack_delay(Some(ACK_DELAY_DEFAULT));
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &[0; DEFAULT_MSS - 1],
                ..SEND_TEMPL
            }
        );

        // No ACK is immediately sent.
        recv_nothing!(s);

        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + (DEFAULT_MSS - 1),
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"a"[..],
                ..SEND_TEMPL
            }
        );

        // No ACK is immediately sent.
        recv_nothing!(s);

        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + DEFAULT_MSS,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"a"[..],
                ..SEND_TEMPL
            }
        );

        // RMSS+1 bytes of data has been received, so ACK is sent without delay.
        recv!(
            s,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + (DEFAULT_MSS + 1)),
                window_len: (DEFAULT_MSS - 1) as u16,
                ..RECV_TEMPL
            })
        );
    }

    #[test]
    fn test_delayed_ack_every_rmss_or_more() {
        let mut s = socket_established_with_buffer_sizes(DEFAULT_MSS * 2, DEFAULT_MSS * 2);
        s.set_ack_delay(Some(ACK_DELAY_DEFAULT));
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &[0; DEFAULT_MSS],
                ..SEND_TEMPL
            }
        );

        // No ACK is immediately sent.
        recv_nothing!(s);

        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + DEFAULT_MSS,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"a"[..],
                ..SEND_TEMPL
            }
        );

        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + (DEFAULT_MSS + 1),
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"b"[..],
                ..SEND_TEMPL
            }
        );

        // RMSS+2 bytes of data has been received, so ACK is sent without delay.
        recv!(
            s,
            Ok(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + (DEFAULT_MSS + 2)),
                window_len: (DEFAULT_MSS - 2) as u16,
                ..RECV_TEMPL
            })
        );
    }

    // =========================================================================================//
    // Tests for Nagle's Algorithm
    // =========================================================================================//

    #[test]
    fn test_nagle() {
        let mut s = socket_established();
        s.remote_mss = 6;

        s.send_slice(b"abcdef").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abcdef"[..],
                ..RECV_TEMPL
            }]
        );

        // If there's data in flight, full segments get sent.
        s.send_slice(b"foobar").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 6,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"foobar"[..],
                ..RECV_TEMPL
            }]
        );

        s.send_slice(b"aaabbbccc").unwrap();
        // If there's data in flight, not-full segments don't get sent.
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 6 + 6,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"aaabbb"[..],
                ..RECV_TEMPL
            }]
        );

        // Data gets ACKd, so there's no longer data in flight
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 6 + 6 + 6),
                ..SEND_TEMPL
            }
        );

        // Now non-full segment gets sent.
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 6 + 6 + 6,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"ccc"[..],
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_nagle_works_with_reduced_payload_from_options() {
        const EFFECTIVE_MSS: usize = 64;

        let mut s = socket_established_with_buffer_sizes(256, 64);
        s.set_nagle_enabled(true);
        s.set_tsval_generator(Some(|| 1));
        s.remote_mss = EFFECTIVE_MSS;

        // Send small segment to "arm" Nagle's
        s.send_slice(b"abcdef").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abcdef"[..],
                timestamp: Some(TcpTimestampRepr::new(1, 0)),
                ..RECV_TEMPL
            }]
        );

        // A full segment (once options are accounted for) should not be delayed and contain 12 bytes less due to timestamp
        s.send_slice(&[0; EFFECTIVE_MSS - 12]).unwrap();
        recv!(
            s,
            time 0,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 6,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &[0; EFFECTIVE_MSS - 12],
                timestamp: Some(TcpTimestampRepr::new(1, 0)),
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_final_packet_in_stream_doesnt_wait_for_nagle() {
        let mut s = socket_established();
        s.remote_mss = 6;
        s.send_slice(b"abcdef0").unwrap();
        s.socket.close();

        recv!(s, time 0, Ok(TcpRepr {
            control:    TcpControl::None,
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }), exact);
        recv!(s, time 0, Ok(TcpRepr {
            control:    TcpControl::Fin,
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"0"[..],
            ..RECV_TEMPL
        }), exact);
    }

    #[test]
    fn test_xdp_no_runt_while_data_in_flight() {
        // The peer's window lets out a segment and a half: the full segment
        // goes, the half waits for the ACK (no runt while data is in flight
        // and more is queued), then whole segments again.
        let mut s = socket_established();
        s.set_nagle_enabled(false);
        s.remote_mss = 6;
        s.remote_win_len = 9;
        s.send_slice(b"abcdefghijklmnopqr").unwrap();
        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }), exact);
        recv_nothing!(s, time 0);
        send!(s, time 10, TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1 + 6),
            window_len: 12,
            ..SEND_TEMPL
        });
        recv!(s, time 10, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"ghijkl"[..],
            ..RECV_TEMPL
        }), exact);
        recv!(s, time 10, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 12,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"mnopqr"[..],
            control:    TcpControl::Psh,
            ..RECV_TEMPL
        }), exact);
    }

    #[test]
    fn test_xdp_short_tail_goes_within_the_window() {
        // What is left fits the allowance: the short tail is not a runt and
        // goes at once.
        let mut s = socket_established();
        s.set_nagle_enabled(false);
        s.remote_mss = 6;
        s.remote_win_len = 9;
        s.send_slice(b"abcdefgh").unwrap();
        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"abcdef"[..],
            ..RECV_TEMPL
        }), exact);
        recv!(s, time 0, Ok(TcpRepr {
            seq_number: LOCAL_SEQ + 1 + 6,
            ack_number: Some(REMOTE_SEQ + 1),
            payload:    &b"gh"[..],
            control:    TcpControl::Psh,
            ..RECV_TEMPL
        }), exact);
    }

    // =========================================================================================//
    // Tests for packet filtering.
    // =========================================================================================//

    #[test]
    fn test_doesnt_accept_wrong_port() {
        let mut s = socket_established();
        s.rx_buffer = SocketBuffer::new(vec![0; 6]);
        s.assembler = Assembler::new();

        let tcp_repr = TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            dst_port: LOCAL_PORT + 1,
            ..SEND_TEMPL
        };
        assert!(!s.socket.accepts(&mut s.cx, &SEND_IP_TEMPL, &tcp_repr));

        let tcp_repr = TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            src_port: REMOTE_PORT + 1,
            ..SEND_TEMPL
        };
        assert!(!s.socket.accepts(&mut s.cx, &SEND_IP_TEMPL, &tcp_repr));
    }

    #[test]
    fn test_doesnt_accept_wrong_ip() {
        let mut s = socket_established();

        let tcp_repr = TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            payload: &b"abcdef"[..],
            ..SEND_TEMPL
        };

        let ip_repr = IpReprIpvX(IpvXRepr {
            src_addr: REMOTE_ADDR,
            dst_addr: LOCAL_ADDR,
            next_header: IpProtocol::Tcp,
            payload_len: tcp_repr.buffer_len(),
            hop_limit: 64,
        });
        assert!(s.socket.accepts(&mut s.cx, &ip_repr, &tcp_repr));

        let ip_repr_wrong_src = IpReprIpvX(IpvXRepr {
            src_addr: OTHER_ADDR,
            dst_addr: LOCAL_ADDR,
            next_header: IpProtocol::Tcp,
            payload_len: tcp_repr.buffer_len(),
            hop_limit: 64,
        });
        assert!(!s.socket.accepts(&mut s.cx, &ip_repr_wrong_src, &tcp_repr));

        let ip_repr_wrong_dst = IpReprIpvX(IpvXRepr {
            src_addr: REMOTE_ADDR,
            dst_addr: OTHER_ADDR,
            next_header: IpProtocol::Tcp,
            payload_len: tcp_repr.buffer_len(),
            hop_limit: 64,
        });
        assert!(!s.socket.accepts(&mut s.cx, &ip_repr_wrong_dst, &tcp_repr));
    }

    // =========================================================================================//
    // Timer tests
    // =========================================================================================//

    #[test]
    fn test_timer_retransmit() {
        const RTO: Duration = Duration::from_millis(100);
        let mut r = Timer::new();
        assert!(!r.should_retransmit(Instant::from_secs(1)));
        r.set_for_retransmit(Instant::from_millis(1000), RTO);
        assert!(!r.should_retransmit(Instant::from_millis(1000)));
        assert!(!r.should_retransmit(Instant::from_millis(1050)));
        assert!(r.should_retransmit(Instant::from_millis(1101)));
        r.set_for_retransmit(Instant::from_millis(1101), RTO);
        assert!(!r.should_retransmit(Instant::from_millis(1101)));
        assert!(!r.should_retransmit(Instant::from_millis(1150)));
        assert!(!r.should_retransmit(Instant::from_millis(1200)));
        assert!(r.should_retransmit(Instant::from_millis(1301)));
        r.set_for_idle(Instant::from_millis(1301), None);
        assert!(!r.should_retransmit(Instant::from_millis(1350)));
    }

    #[test]
    fn test_rtt_estimator() {
        let mut r = RttEstimator::default();

        let rtos = &[
            // (xdpstack patch 29: from SRTT and RTTVAR in microseconds;
            // upstream's whole milliseconds gave 4252, 3692, ... 2012.)
            6000, 5000, 4250, 3688, 3266, 2950, 2712, 2534, 2401, 2301, 2226, 2169, 2127, 2096,
            2072, 2054, 2041, 2031, 2023, 2017, 2013, 2010, 2008, 2006,
        ];

        for &rto in rtos {
            r.sample(2000);
            assert_eq!(r.retransmission_timeout(), Duration::from_millis(rto));
        }
    }

    #[test]
    fn test_xdp_srtt_falls_back_after_a_spike() {
        // xdpstack patch 29: at a 2.5 ms RTT (samples of 2 and 3 ms from a
        // millisecond timestamp clock) one 6 ms sample is forgotten within
        // a few round trips. Upstream's whole-millisecond average, rounded
        // up, fell only on a sample 8 ms below it and stayed at 6 ms.
        let mut r = RttEstimator::default();
        r.sample(3);
        r.sample(6);
        for i in 0..40 {
            r.sample(if i % 2 == 0 { 2 } else { 3 });
        }
        let srtt = r.srtt_us().unwrap();
        assert!((2300..=2800).contains(&srtt), "{srtt}");
        assert_eq!(r.srtt_ms(), Some(3));
        assert_eq!(r.retransmission_timeout(), Duration::from_millis(200));
    }

    #[test]
    fn test_set_get_congestion_control() {
        let mut s = socket_established();

        #[cfg(feature = "socket-tcp-reno")]
        {
            s.set_congestion_control(CongestionControl::Reno);
            assert_eq!(s.congestion_control(), CongestionControl::Reno);
        }

        #[cfg(feature = "socket-tcp-cubic")]
        {
            s.set_congestion_control(CongestionControl::Cubic);
            assert_eq!(s.congestion_control(), CongestionControl::Cubic);
        }

        s.set_congestion_control(CongestionControl::None);
        assert_eq!(s.congestion_control(), CongestionControl::None);
    }

    // =========================================================================================//
    // Timestamp tests
    // =========================================================================================//

    #[test]
    fn test_tsval_established_connection() {
        let mut s = socket_established();
        s.set_tsval_generator(Some(|| 1));

        assert!(s.timestamp_enabled());

        // First roundtrip after establishing.
        s.send_slice(b"abcdef").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abcdef"[..],
                timestamp: Some(TcpTimestampRepr::new(1, 0)),
                ..RECV_TEMPL
            }]
        );
        assert_eq!(s.tx_buffer.len(), 6);
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 6),
                timestamp: Some(TcpTimestampRepr::new(500, 1)),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.tx_buffer.len(), 0);
        // Second roundtrip.
        s.send_slice(b"foobar").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1 + 6,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"foobar"[..],
                timestamp: Some(TcpTimestampRepr::new(1, 500)),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 6 + 6),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.tx_buffer.len(), 0);
    }

    #[test]
    fn test_tsval_disabled_in_remote_client() {
        let mut s = socket_listen();
        s.set_tsval_generator(Some(|| 1));
        assert!(s.timestamp_enabled());
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state(), State::SynReceived);
        assert_eq!(s.tuple, Some(TUPLE));
        assert!(!s.timestamp_enabled());
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state(), State::Established);
        assert_eq!(s.local_seq_no, LOCAL_SEQ + 1);
        assert_eq!(s.remote_seq_no, REMOTE_SEQ + 1);
    }

    // =========================================================================================//
    // xdpstack patch 20 (timestamps): RFC 7323 with the clock of `set_timestamps`.
    // =========================================================================================//

    const TS_OFF: u32 = 0xfff0_0000;

    fn ts(tsval: u32, tsecr: u32) -> Option<TcpTimestampRepr> {
        Some(TcpTimestampRepr::new(tsval, tsecr))
    }

    /// A passive open with timestamps (peer TSvals 100, then 101) and SACK
    /// as `sack`: the SYN at 0 ms, the final ACK at `ack_at` ms.
    fn ts_established(sack: bool, ack_at: i64) -> TestSocket {
        let mut s = socket_listen();
        s.set_timestamps(Some(TS_OFF));
        send!(
            s,
            time 0,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                sack_permitted: sack,
                timestamp: ts(100, 0),
                ..SEND_TEMPL
            }
        );
        recv(&mut s, Instant::from_millis(0), |r| {
            let r = r.unwrap();
            assert_eq!(r.control, TcpControl::Syn);
            assert_eq!(
                r.timestamp,
                ts(TS_OFF, 100),
                "SYN-ACK: our clock, the SYN's TSval"
            );
        });
        send!(
            s,
            time ack_at,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                timestamp: ts(101, TS_OFF),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Established);
        assert_eq!(s.ts_recent(), Some(101));
        s
    }

    #[test]
    fn test_xdp_ts_negotiated_passive() {
        let mut s = ts_established(false, 7);
        assert!(s.timestamp_enabled());
        // RTTM: the final ACK echoes the SYN-ACK's TSval, 7 ms old.
        assert_eq!(s.rtte.srtt_ms(), Some(7));
        s.send_slice(b"abc").unwrap();
        recv!(
            s,
            time 20,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abc"[..],
                timestamp: ts(TS_OFF.wrapping_add(20), 101),
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_xdp_ts_not_offered_by_the_peer_passive() {
        let mut s = socket_listen();
        s.set_timestamps(Some(TS_OFF));
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                ..SEND_TEMPL
            }
        );
        assert!(!s.timestamp_enabled());
        recv(&mut s, Instant::from_millis(0), |r| {
            assert_eq!(r.unwrap().timestamp, None, "no timestamps in the SYN-ACK");
        });
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        s.send_slice(b"abc").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abc"[..],
                ..RECV_TEMPL
            }]
        );
        // A stray timestamp later changes nothing: none is echoed.
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"xy"[..],
                timestamp: ts(5, 6),
                ..SEND_TEMPL
            }
        );
        recv(&mut s, Instant::from_millis(0), |r| {
            assert_eq!(r.unwrap().timestamp, None);
        });
        assert_eq!(s.ts_recent(), None);
    }

    #[test]
    fn test_xdp_ts_negotiated_active() {
        for offered in [true, false] {
            let mut s = socket_syn_sent();
            s.set_timestamps(Some(TS_OFF));
            recv(&mut s, Instant::from_millis(0), |r| {
                let r = r.unwrap();
                assert_eq!(r.control, TcpControl::Syn);
                assert_eq!(r.timestamp, ts(TS_OFF, 0), "SYN: TSecr 0");
            });
            send!(
                s,
                time 25,
                TcpRepr {
                    control: TcpControl::Syn,
                    seq_number: REMOTE_SEQ,
                    ack_number: Some(LOCAL_SEQ + 1),
                    max_seg_size: Some(BASE_MSS - 80),
                    timestamp: if offered { ts(77, TS_OFF) } else { None },
                    ..SEND_TEMPL
                }
            );
            assert_eq!(s.state, State::Established);
            assert_eq!(s.timestamp_enabled(), offered);
            recv(&mut s, Instant::from_millis(25), |r| {
                let r = r.unwrap();
                assert_eq!(r.ack_number, Some(REMOTE_SEQ + 1));
                let want = if offered { ts(TS_OFF + 25, 77) } else { None };
                assert_eq!(r.timestamp, want, "offered: {offered}");
            });
            assert_eq!(s.rtte.srtt_ms(), Some(25), "RTTM or Karn, 25 ms");
        }
    }

    #[test]
    fn test_xdp_ts_paws_drops_old_segments_with_an_ack() {
        let mut s = ts_established(false, 0);
        // In order, newer TSval: taken.
        send!(
            s,
            time 10,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abc"[..],
                timestamp: ts(105, TS_OFF),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.ts_recent(), Some(105));
        recv!(
            s,
            time 10,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 3),
                window_len: 61,
                timestamp: ts(TS_OFF + 10, 105),
                ..RECV_TEMPL
            }]
        );
        // The next data, but with an older TSval (an old duplicate from an
        // earlier wrap): dropped, and ACKed with TS.Recent.
        send!(
            s,
            time 20,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 3,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"def"[..],
                timestamp: ts(104, TS_OFF),
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 3),
                window_len: 61,
                timestamp: ts(TS_OFF + 20, 105),
                ..RECV_TEMPL
            })
        );
        assert_eq!(s.rx_buffer.len(), 3, "the old segment's data was not taken");
        assert_eq!(s.ts_recent(), Some(105));
        assert_eq!(s.recovery_stats().paws_rejected, 1, "counted");
        // A pure ACK with an old TSval: an ACK too, rate-limited (one a
        // second) like a challenge ACK.
        let old_ack = TcpRepr {
            seq_number: REMOTE_SEQ + 1 + 3,
            ack_number: Some(LOCAL_SEQ + 1),
            timestamp: ts(90, TS_OFF),
            ..SEND_TEMPL
        };
        let reply = send(&mut s, Instant::from_millis(30), &old_ack).expect("an ACK");
        assert_eq!(reply.ack_number, Some(REMOTE_SEQ + 1 + 3));
        assert_eq!(reply.timestamp, ts(TS_OFF + 30, 105));
        assert_eq!(
            send(&mut s, Instant::from_millis(40), &old_ack),
            None,
            "rate-limited"
        );
        // The same data with a current TSval is taken.
        send!(
            s,
            time 50,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 3,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"def"[..],
                timestamp: ts(106, TS_OFF),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.rx_buffer.len(), 6);
        assert_eq!(s.ts_recent(), Some(106));
        recv(&mut s, Instant::from_millis(50), |r| {
            assert_eq!(r.unwrap().ack_number, Some(REMOTE_SEQ + 1 + 6));
        });
        // TSvals wrap: 2^31 - 1 ahead is newer.
        send!(
            s,
            time 60,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 6,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"g"[..],
                timestamp: ts(106u32.wrapping_add(0x7fff_ffff), TS_OFF),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.rx_buffer.len(), 7);
        assert_eq!(s.ts_recent(), Some(106u32.wrapping_add(0x7fff_ffff)));
        // An RST is not subject to PAWS.
        send!(
            s,
            time 70,
            TcpRepr {
                control: TcpControl::Rst,
                seq_number: REMOTE_SEQ + 1 + 7,
                ack_number: None,
                timestamp: ts(1, TS_OFF),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Closed);
    }

    #[test]
    fn test_xdp_ts_zero_in_the_syn_does_not_stick() {
        // A peer whose SYN carries TSval 0, then its real clock, more than
        // 2^31 "ahead": TS.Recent follows it, and PAWS judges from there.
        let mut s = socket_listen();
        s.set_timestamps(Some(TS_OFF));
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                timestamp: ts(0, 0),
                ..SEND_TEMPL
            }
        );
        recv(&mut s, Instant::from_millis(0), |r| assert!(r.is_ok()));
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                timestamp: ts(0x9000_0000, TS_OFF),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.ts_recent(), Some(0x9000_0000));
        let old = TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            payload: &b"x"[..],
            timestamp: ts(0x8fff_ffff, TS_OFF),
            ..SEND_TEMPL
        };
        assert!(send(&mut s, Instant::from_millis(1), &old).is_some());
        assert_eq!(s.rx_buffer.len(), 0, "older than TS.Recent: dropped");
    }

    #[test]
    fn test_xdp_ts_paws_forgets_ts_recent_after_24_days_idle() {
        let mut s = ts_established(false, 0);
        let day_ms = 24 * 3600 * 1000;
        let old = TcpRepr {
            seq_number: REMOTE_SEQ + 1,
            ack_number: Some(LOCAL_SEQ + 1),
            payload: &b"abc"[..],
            timestamp: ts(50, TS_OFF),
            ..SEND_TEMPL
        };
        // 23 days idle: still valid, the segment is dropped.
        assert!(send(&mut s, Instant::from_millis(23 * day_ms), &old).is_some());
        assert_eq!(s.rx_buffer.len(), 0);
        // 24 days: TS.Recent is too old to judge by, the segment is taken
        // and its TSval becomes TS.Recent.
        send(&mut s, Instant::from_millis(24 * day_ms + 1000), &old);
        assert_eq!(s.rx_buffer.len(), 3);
        assert_eq!(s.ts_recent(), Some(50));
    }

    #[test]
    fn test_xdp_ts_recent_only_from_segments_at_or_below_last_ack_sent() {
        let mut s = ts_established(true, 0);
        s.set_ack_delay(None);
        let seg = |off: usize, data: &'static [u8], tsval: u32| TcpRepr {
            seq_number: REMOTE_SEQ + 1 + off,
            ack_number: Some(LOCAL_SEQ + 1),
            payload: data,
            timestamp: ts(tsval, TS_OFF),
            ..SEND_TEMPL
        };
        // In order, ACKed.
        send!(s, time 0, seg(0, b"aa", 200));
        recv(&mut s, Instant::from_millis(0), |r| {
            assert_eq!(r.unwrap().timestamp, ts(TS_OFF, 200));
        });
        // Out of order (a hole at 2..4): the immediate ACK echoes
        // TS.Recent, 200, not the segment's 202.
        let reply = send(&mut s, Instant::from_millis(1), &seg(4, b"cc", 202)).expect("ACK");
        assert_eq!(reply.ack_number, Some(REMOTE_SEQ + 1 + 2));
        assert_eq!(reply.timestamp, ts(TS_OFF + 1, 200));
        assert_eq!(s.ts_recent(), Some(200));
        // The hole filled (its SEQ is Last.ACK.sent): TS.Recent is its TSval.
        let reply = send(&mut s, Instant::from_millis(2), &seg(2, b"bb", 201)).expect("ACK");
        assert_eq!(reply.ack_number, Some(REMOTE_SEQ + 1 + 6));
        assert_eq!(reply.timestamp, ts(TS_OFF + 2, 201));
        assert_eq!(s.ts_recent(), Some(201));
        // Two in-order segments before one ACK (a delayed ACK): the echo
        // is the earlier's TSval (§4.3 (2)): the later is above
        // Last.ACK.sent.
        send!(s, time 3, seg(6, b"dd", 300));
        send!(s, time 3, seg(8, b"ee", 301));
        assert_eq!(s.ts_recent(), Some(300));
        recv(&mut s, Instant::from_millis(3), |r| {
            let r = r.unwrap();
            assert_eq!(r.ack_number, Some(REMOTE_SEQ + 1 + 10));
            assert_eq!(r.timestamp, ts(TS_OFF + 3, 300));
        });
        // And the next in-order segment, now at Last.ACK.sent, moves it.
        send!(s, time 4, seg(10, b"f", 302));
        assert_eq!(s.ts_recent(), Some(302));
    }

    #[test]
    fn test_xdp_ts_rtt_sample_from_a_retransmission() {
        // SACK peers (the RFC 6675 sender) and others (upstream's), with
        // and without timestamps.
        for sack in [false, true] {
            for with_ts in [true, false] {
                let mut s = if with_ts {
                    ts_established(sack, 0)
                } else {
                    let mut s = socket_established();
                    s.remote_has_sack = sack;
                    s.rtte.sample(0);
                    s
                };
                let t = |v: u32| if with_ts { ts(v, 101) } else { None };
                assert_eq!(s.rtte.srtt_ms(), Some(0));
                s.send_slice(b"abcdef").unwrap();
                recv(&mut s, Instant::from_millis(10), |r| {
                    let r = r.unwrap();
                    assert_eq!(r.payload, b"abcdef");
                    assert_eq!(r.timestamp, t(TS_OFF + 10));
                });
                // Lost; the RTO (200 ms) resends it.
                recv(&mut s, Instant::from_millis(1000), |r| {
                    let r = r.unwrap();
                    assert_eq!(r.seq_number, LOCAL_SEQ + 1, "a retransmission");
                    assert_eq!(r.payload, b"abcdef");
                    assert_eq!(r.timestamp, t(TS_OFF + 1000));
                });
                // Its ACK 30 ms later echoes the retransmission's TSval.
                send!(
                    s,
                    time 1030,
                    TcpRepr {
                        seq_number: REMOTE_SEQ + 1,
                        ack_number: Some(LOCAL_SEQ + 1 + 6),
                        timestamp: if with_ts {
                            ts(102, TS_OFF + 1000)
                        } else {
                            None
                        },
                        ..SEND_TEMPL
                    }
                );
                // RTTM samples it (srtt 0 -> (0 * 7 + 30) / 8, rounded
                // up); Karn's algorithm cannot (a retransmission).
                let want = if with_ts { 4 } else { 0 };
                assert_eq!(s.rtte.srtt_ms(), Some(want), "sack {sack} ts {with_ts}");
            }
        }
    }

    #[test]
    fn test_xdp_ts_echo_of_a_tsval_never_sent_is_no_sample() {
        // A TSecr from the future.
        let mut c = ts_established(false, 0);
        c.send_slice(b"abc").unwrap();
        recv(&mut c, Instant::from_millis(10), |r| assert!(r.is_ok()));
        send!(
            c,
            time 20,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 3),
                timestamp: ts(102, TS_OFF + 500),
                ..SEND_TEMPL
            }
        );
        // Karn's timed segment gives the sample instead: 10 ms (srtt 0 ->
        // (0 * 7 + 10) / 8 = 1.25 ms), not 2^32 - 480 ms.
        assert_eq!(c.rtte.srtt_us(), Some(1250));

        // A socket rebuilt from a SYN cookie (the engine's `set_next_isn`):
        // the final ACK echoes a SYN-ACK it never sent, whose TSval's low
        // bits are options, not time.
        let mut s = socket_listen();
        s.set_timestamps(Some(TS_OFF));
        s.set_next_isn(Some(LOCAL_SEQ));
        send!(
            s,
            time 100,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                timestamp: ts(100, 0),
                ..SEND_TEMPL
            }
        );
        send!(
            s,
            time 100,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                timestamp: ts(100, TS_OFF + 100 - 63),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state, State::Established);
        assert_eq!(s.rtte.srtt_ms(), None, "no sample from the cookie's echo");
        assert_eq!(s.ts_recent(), Some(100));
        // Its own segments are samples.
        s.send_slice(b"abc").unwrap();
        recv(&mut s, Instant::from_millis(110), |r| {
            assert_eq!(r.unwrap().timestamp, ts(TS_OFF + 110, 100));
        });
        send!(
            s,
            time 135,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 3),
                timestamp: ts(101, TS_OFF + 110),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.rtte.srtt_ms(), Some(25));
    }

    #[test]
    fn test_xdp_ts_full_segment_fits_the_mss() {
        let mut s = socket_listen();
        s.tx_buffer = SocketBuffer::new(vec![0; 6000]);
        s.set_timestamps(Some(TS_OFF));
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                max_seg_size: Some(1460),
                timestamp: ts(100, 0),
                ..SEND_TEMPL
            }
        );
        recv(&mut s, Instant::from_millis(0), |r| assert!(r.is_ok()));
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_len: 60000,
                timestamp: ts(101, TS_OFF),
                ..SEND_TEMPL
            }
        );
        s.send_slice(&[7; 6000]).unwrap();
        let ip_header_len = SEND_IP_TEMPL.header_len();
        let mtu = s.cx.ip_mtu();
        let mss = (mtu - ip_header_len - TCP_HEADER_LEN).min(1460);
        let mut sent = 0;
        while sent < 3 * (mss - 12) {
            recv(&mut s, Instant::from_millis(0), |r| {
                let r = r.unwrap();
                assert!(r.timestamp.is_some());
                assert_eq!(r.header_len(), TCP_HEADER_LEN + 12);
                // RFC 6691: data and options together within the MSS, and
                // the packet within the MTU.
                assert_eq!(r.payload.len(), mss - 12, "a full-size segment");
                assert!(ip_header_len + r.buffer_len() <= mtu);
                sent += r.payload.len();
            });
        }
    }

    #[test]
    fn test_xdp_ts_on_an_abort_rst() {
        // RFC 7323 §3.2: a MUST on every non-RST segment, a SHOULD on an
        // RST (as Linux's active resets).
        let mut s = ts_established(false, 0);
        s.abort();
        recv(&mut s, Instant::from_millis(5), |r| {
            let r = r.unwrap();
            assert_eq!(r.control, TcpControl::Rst);
            assert_eq!(r.timestamp, ts(TS_OFF + 5, 101));
        });
    }

    #[test]
    fn test_xdp_ts_reset_forgets_ts_recent() {
        let mut s = ts_established(false, 0);
        assert_eq!(s.ts_recent(), Some(101));
        s.abort();
        recv(&mut s, Instant::from_millis(5), |r| assert!(r.is_ok()));
        s.listen(LISTEN_END).unwrap();
        s.set_timestamps(Some(TS_OFF));
        assert_eq!(s.ts_recent(), None);
        // A new peer whose TSvals are far "behind" the old one's is taken.
        send!(
            s,
            time 10,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                timestamp: ts(3, 0),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.ts_recent(), Some(3));
    }

    #[test]
    fn test_tsval_disabled_in_local_server() {
        let mut s = socket_listen();
        // s.set_timestamp(false); // commented to alert if the default state changes
        assert!(!s.timestamp_enabled());
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                timestamp: Some(TcpTimestampRepr::new(500, 0)),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state(), State::SynReceived);
        assert_eq!(s.tuple, Some(TUPLE));
        assert!(!s.timestamp_enabled());
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.state(), State::Established);
        assert_eq!(s.local_seq_no, LOCAL_SEQ + 1);
        assert_eq!(s.remote_seq_no, REMOTE_SEQ + 1);
    }

    #[test]
    fn test_tsval_disabled_in_remote_server() {
        let mut s = socket();
        s.set_tsval_generator(Some(|| 1));
        assert!(s.timestamp_enabled());
        s.local_seq_no = LOCAL_SEQ;
        s.socket
            .connect(&mut s.cx, REMOTE_END, LOCAL_END.port)
            .unwrap();
        assert_eq!(s.tuple, Some(TUPLE));
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                sack_permitted: true,
                timestamp: Some(TcpTimestampRepr::new(1, 0)),
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ + 1),
                max_seg_size: Some(BASE_MSS - 80),
                window_scale: Some(0),
                timestamp: None,
                ..SEND_TEMPL
            }
        );
        assert!(!s.timestamp_enabled());
        s.send_slice(b"abcdef").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abcdef"[..],
                timestamp: None,
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_tsval_disabled_in_local_client() {
        let mut s = socket();
        // s.set_timestamp(false); // commented to alert if the default state changes
        assert!(!s.timestamp_enabled());
        s.local_seq_no = LOCAL_SEQ;
        s.socket
            .connect(&mut s.cx, REMOTE_END, LOCAL_END.port)
            .unwrap();
        assert_eq!(s.tuple, Some(TUPLE));
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: None,
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(0),
                sack_permitted: true,
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: Some(LOCAL_SEQ + 1),
                max_seg_size: Some(BASE_MSS - 80),
                window_scale: Some(0),
                timestamp: Some(TcpTimestampRepr::new(500, 0)),
                ..SEND_TEMPL
            }
        );
        assert!(!s.timestamp_enabled());
        s.send_slice(b"abcdef").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abcdef"[..],
                timestamp: None,
                ..RECV_TEMPL
            }]
        );
    }

    // =========================================================================================//
    // Tests for source IP address change.
    // =========================================================================================//

    #[test]
    fn test_established_close_on_src_ip_change() {
        let mut s = socket_established();

        // Verify socket is working normally
        s.send_slice(b"abc").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abc"[..],
                ..RECV_TEMPL
            }]
        );

        // Simulate interface IP change - remove the socket's source IP
        // and add a different one.
        let mut new_addrs = heapless::Vec::<IpCidr, IFACE_MAX_ADDR_COUNT>::new();
        new_addrs.push(IpCidr::new(OTHER_ADDR.into(), 24)).unwrap();
        s.cx.set_ip_addrs(new_addrs);

        // The socket's source IP is no longer on the interface.
        // When dispatch() runs, it should detect this and reset the socket
        // silently (no RST sent, since that would use the invalid source IP).
        s.send_slice(b"def").unwrap();
        recv_nothing!(s);
        assert_eq!(s.state, State::Closed);
    }

    // =========================================================================================//
    // xdpstack patch: buffers that grow (receive limit apart from storage)
    // =========================================================================================//

    #[test]
    fn test_xdp_window_from_limit_storage_grown_before_data() {
        let mut s = socket_established_with_buffer_sizes(64, 0);
        s.set_recv_limit(Some(1000));
        // As if the last ACK had advertised the window the limit gives.
        s.remote_last_win = s.scaled_window();
        // The segment needs storage the socket does not have.
        assert_eq!(s.recv_storage_needed(REMOTE_SEQ + 1, 6), Some(6));
        // Not grown: the data is cut, counted, and an ACK asks for it again,
        // advertising the window the limit gives.
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                window_len: 1000,
                ..RECV_TEMPL
            })
        );
        assert_eq!(s.recv_storage_cut(), 1);
        // Grown first: taken as usual.
        let old = s.replace_recv_storage(vec![0u8; 8]).unwrap();
        assert_eq!(old.len(), 0);
        assert_eq!(s.recv_storage_needed(REMOTE_SEQ + 1, 6), None);
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"abcdef"[..],
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 6),
                window_len: 994,
                ..RECV_TEMPL
            }]
        );
        let mut buf = [0u8; 16];
        assert_eq!(s.recv_slice(&mut buf), Ok(6));
        assert_eq!(&buf[..6], b"abcdef");
        // Empty: the storage goes back, the window stays what the limit says.
        assert_eq!(s.recv_storage_used(), 0);
        assert_eq!(s.replace_recv_storage(vec![]).unwrap().len(), 8);
        assert_eq!(s.rx_window(), 1000);
    }

    #[test]
    fn test_xdp_growing_keeps_out_of_order_data() {
        let mut s = socket_established_with_buffer_sizes(64, 16);
        s.set_recv_limit(Some(1000));
        s.remote_last_win = s.scaled_window();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 10,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"xyz"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                window_len: 1000,
                sack_ranges: [None, None, None],
                ..RECV_TEMPL
            })
        );
        assert_eq!(s.recv_storage_used(), 13);
        // Too small for what is held: refused, nothing changes.
        assert_eq!(s.replace_recv_storage(vec![0u8; 8]).unwrap_err().len(), 8);
        assert_eq!(s.replace_recv_storage(vec![0u8; 64]).unwrap().len(), 16);
        assert_eq!(s.recv_storage_needed(REMOTE_SEQ + 1, 40), None);
        assert_eq!(s.recv_storage_needed(REMOTE_SEQ + 1, 100), Some(100));
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"0123456789"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 13),
                window_len: 987,
                ..RECV_TEMPL
            })
        );
        let mut buf = [0u8; 32];
        assert_eq!(s.recv_slice(&mut buf), Ok(13));
        assert_eq!(&buf[..13], b"0123456789xyz");
    }

    #[test]
    fn test_xdp_window_scale_from_window_max() {
        let mut s = socket_listen();
        s.set_recv_window_max(Some(6 << 20));
        s.set_recv_limit(Some(64 << 10));
        assert_eq!(s.recv_window_shift(), 7);
        send!(
            s,
            TcpRepr {
                control: TcpControl::Syn,
                seq_number: REMOTE_SEQ,
                ack_number: None,
                window_scale: Some(0),
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Syn,
                seq_number: LOCAL_SEQ,
                ack_number: Some(REMOTE_SEQ + 1),
                max_seg_size: Some(BASE_MSS),
                window_scale: Some(7),
                window_len: 65535,
                ..RECV_TEMPL
            }]
        );
        // The limit can grow to the maximum and no further.
        s.set_recv_limit(Some(100 << 20));
        assert_eq!(s.recv_limit(), Some(6 << 20));
    }

    #[test]
    fn test_xdp_immediate_ack_edge_is_never_retracted() {
        // An immediate ACK (out-of-order data) advertises a right edge; the
        // next ACK must not move it back, though the limit dropped meanwhile.
        let mut s = socket_established_with_buffer_sizes(64, 4096);
        s.set_recv_window_max(Some(4096));
        s.set_recv_limit(Some(4000));
        let data = [7u8; 1000];
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 1000,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &data[..100],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                window_len: 4000,
                sack_ranges: [None, None, None],
                ..RECV_TEMPL
            })
        );
        s.set_recv_limit(Some(1500));
        // The hole filled: ACK of 1100 at once; the edge stays at +4000.
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &data[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1100),
                window_len: 2900,
                sack_ranges: [None, None, None],
                ..RECV_TEMPL
            })
        );
    }

    #[test]
    fn test_xdp_lower_limit_never_retracts_the_window() {
        let mut s = socket_established_with_buffer_sizes(64, 4096);
        s.set_recv_window_max(Some(4096));
        s.set_recv_limit(Some(4000));
        let data = [7u8; 1000];
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &data[..],
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1000),
                window_len: 3000,
                ..RECV_TEMPL
            }]
        );
        // Memory pressure: the limit drops below what was advertised.
        s.set_recv_limit(Some(1500));
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 1000,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &data[..100],
                ..SEND_TEMPL
            }
        );
        // 1500 - 1100 would be 400: the right edge stays at +4000.
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1100),
                window_len: 2900,
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_xdp_take_storage_discards_and_leaves_none() {
        let mut s = socket_established_with_buffer_sizes(64, 64);
        s.send_slice(b"queued").unwrap();
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1 + 4,
                ack_number: Some(LOCAL_SEQ + 1),
                payload: &b"ooo"[..],
                ..SEND_TEMPL
            },
            Some(TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                window_len: 64,
                ..RECV_TEMPL
            })
        );
        s.abort();
        let (rx, tx) = s.take_storage();
        assert_eq!((rx.len(), tx.len()), (64, 64));
        assert_eq!((s.recv_capacity(), s.send_capacity()), (0, 0));
        assert_eq!(s.recv_storage_used(), 0);
        // The RST still goes out.
        recv!(
            s,
            [TcpRepr {
                control: TcpControl::Rst,
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                window_len: 0,
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_xdp_ack_only_segment_stays_inside_a_shrunk_window() {
        // Linux's tcp_acceptable_seq: an ACK-only segment never carries a
        // sequence number past the peer's window, which drops it otherwise.
        let mut s = socket_established();
        s.send_slice(b"abcdef").unwrap();
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abcdef"[..],
                ..RECV_TEMPL
            }]
        );
        // The peer's application stopped reading: its window closed, our
        // segment was lost on the way. Its data still comes.
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1),
                window_len: 0,
                payload: &b"x"[..],
                ..SEND_TEMPL
            }
        );
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1 + 1),
                window_len: 63,
                ..RECV_TEMPL
            }]
        );
    }

    #[test]
    fn test_xdp_lossy_echo_never_stalls() {
        // The `lossy` echo over a simulated path (1% loss each way, 50 ms):
        // before the fix above most runs stalled, both ends backing off to
        // 60 s while each dropped the other's ACKs.
        for buf in [64usize << 10, 256 << 10] {
            for seed in 0..6u64 {
                let t = xdp_path::run_echo(buf, 1 << 20, 50, 100, seed, 60);
                assert!(t.is_finite(), "buffers {buf}, seed {seed}: stalled");
            }
        }
    }

    #[test]
    fn test_xdp_send_storage_grows_and_empties() {
        let mut s = socket_established_with_buffer_sizes(0, 64);
        assert!(!s.can_send());
        assert_eq!(s.send_slice(b"abc"), Ok(0));
        assert!(s.replace_send_storage(vec![0u8; 4]).is_ok());
        assert_eq!(s.send_slice(b"abcdef"), Ok(4));
        // Too small for what is queued: refused.
        assert!(s.replace_send_storage(vec![0u8; 2]).is_err());
        assert!(s.replace_send_storage(vec![0u8; 8]).is_ok());
        assert_eq!(s.send_slice(b"ef"), Ok(2));
        recv!(
            s,
            [TcpRepr {
                seq_number: LOCAL_SEQ + 1,
                ack_number: Some(REMOTE_SEQ + 1),
                payload: &b"abcdef"[..],
                ..RECV_TEMPL
            }]
        );
        send!(
            s,
            TcpRepr {
                seq_number: REMOTE_SEQ + 1,
                ack_number: Some(LOCAL_SEQ + 1 + 6),
                ..SEND_TEMPL
            }
        );
        assert_eq!(s.send_queue(), 0);
        assert_eq!(s.replace_send_storage(vec![]).unwrap().len(), 8);
    }

    /// xdpstack patch 12: the sender's SACK-based loss recovery (`sack.rs`),
    /// scripted segment by segment in virtual time against a SACK peer with
    /// an MSS of 1000 bytes. Offsets count from the first data byte; the
    /// scripted peer answers one RTT (100 ms) after a segment is sent.
    mod xdp_sack_tx {
        use super::*;

        const MSS: usize = 1000;
        const WIN: u16 = 60000;

        struct Conn {
            s: TestSocket,
            data: Vec<u8>,
            /// The sequence number of the first data byte.
            base: TcpSeqNumber,
        }

        /// An established connection to a SACK peer: MSS 1000, window
        /// 60000, an RTT sample of 100 ms (SRTT 100 ms, RTO 300 ms),
        /// controller `cc` (initial window 10 segments), Nagle off as the
        /// stack runs it, and `len` bytes queued.
        fn sender(cc: CongestionControl, len: usize) -> Conn {
            sender_at(cc, len, LOCAL_SEQ + 1)
        }

        /// As `sender`, the first data byte at `base`.
        fn sender_at(cc: CongestionControl, len: usize, base: TcpSeqNumber) -> Conn {
            let s = socket_established_with_buffer_sizes(len.max(1), 64);
            establish(s, cc, len, base)
        }

        /// Make `s` (new, or reset) an established connection as `sender`
        /// describes.
        fn establish(
            mut s: TestSocket,
            cc: CongestionControl,
            len: usize,
            base: TcpSeqNumber,
        ) -> Conn {
            s.state = State::Established;
            s.tuple = Some(TUPLE);
            s.local_seq_no = base;
            s.remote_last_seq = base;
            s.remote_seq_no = REMOTE_SEQ + 1;
            s.remote_last_ack = Some(REMOTE_SEQ + 1);
            s.remote_last_win = s.scaled_window();
            s.remote_has_sack = true;
            s.remote_mss = MSS;
            s.set_congestion_control(cc);
            s.congestion_controller.inner_mut().set_mss(MSS);
            s.remote_win_len = WIN as usize;
            s.set_nagle_enabled(false);
            s.rtte.sample(100);
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            assert_eq!(s.send_slice(&data), Ok(len));
            Conn { s, data, base }
        }

        /// Segments `i..j` (of MSS bytes) as `out` reports them.
        fn segs(i: usize, j: usize) -> Vec<(usize, usize)> {
            (i..j).map(|k| (k * MSS, MSS)).collect()
        }

        /// Segment `i` as `out` reports it.
        fn seg(i: usize) -> (usize, usize) {
            (i * MSS, MSS)
        }

        fn stats(retransmits: u32, recoveries: u32, timeouts: u32, probes: u32) -> RecoveryStats {
            RecoveryStats {
                retransmits,
                recoveries,
                timeouts,
                probes,
                ..RecoveryStats::default()
            }
        }

        impl Conn {
            fn seq(&self, off: usize) -> TcpSeqNumber {
                self.base + off
            }

            /// Everything the socket sends at `ms`: (offset, length, FIN),
            /// each payload checked against the data queued.
            fn out_fin(&mut self, ms: i64) -> Vec<(usize, usize, bool)> {
                let mut sent = Vec::new();
                self.s.cx.set_now(Instant::from_millis(ms));
                for _ in 0..1000 {
                    let mut got = None;
                    let TestSocket { socket, cx } = &mut self.s;
                    socket
                        .dispatch(cx, |_, _, (_, tcp)| {
                            got = Some((tcp.seq_number, tcp.payload.to_vec(), tcp.control));
                            Ok::<(), ()>(())
                        })
                        .unwrap();
                    let Some((seq_number, payload, control)) = got else {
                        break;
                    };
                    let off = seq_number - self.base;
                    assert_eq!(&payload[..], &self.data[off..off + payload.len()]);
                    sent.push((off, payload.len(), control == TcpControl::Fin));
                }
                sent
            }

            /// As `out_fin`, without the FIN flag.
            fn out(&mut self, ms: i64) -> Vec<(usize, usize)> {
                self.out_fin(ms)
                    .into_iter()
                    .map(|(off, len, _)| (off, len))
                    .collect()
            }

            /// The peer's ACK at `ms`: cumulative point `ack` and SACK
            /// blocks, as offsets.
            fn ack(
                &mut self,
                ms: i64,
                ack: usize,
                sack: &[(usize, usize)],
            ) -> Option<TcpRepr<'static>> {
                let mut ranges = [None; 3];
                for (r, &(l, h)) in ranges.iter_mut().zip(sack) {
                    *r = Some((self.seq(l).0 as u32, self.seq(h).0 as u32));
                }
                self.ack_raw(ms, self.seq(ack), ranges)
            }

            fn ack_raw(
                &mut self,
                ms: i64,
                ack: TcpSeqNumber,
                sack_ranges: [Option<(u32, u32)>; 3],
            ) -> Option<TcpRepr<'static>> {
                send(
                    &mut self.s,
                    Instant::from_millis(ms),
                    &TcpRepr {
                        seq_number: REMOTE_SEQ + 1,
                        ack_number: Some(ack),
                        window_len: WIN,
                        sack_ranges,
                        ..SEND_TEMPL
                    },
                )
            }

            fn phase(&self) -> Phase {
                self.s.rec.as_deref().map_or(Phase::Open, |r| r.phase)
            }

            fn cwnd(&self) -> usize {
                self.s.congestion_window()
            }

            fn ssthresh(&self) -> usize {
                self.s.congestion_controller.inner().ssthresh()
            }

            /// SND.NXT and SND.MAX as offsets.
            fn nxt_max(&self) -> (usize, usize) {
                (
                    self.s.remote_last_seq - self.base,
                    self.s.snd_max_seq() - self.base,
                )
            }

            /// When the retransmission timer fires, in ms.
            fn rto_at(&self) -> Option<i64> {
                match self.s.timer {
                    Timer::Retransmit { expires_at } => Some(expires_at.total_millis()),
                    _ => None,
                }
            }
        }

        /// Segment 0 of a 10-segment flight lost, at any sequence numbers.
        fn first_segment_lost(base: TcpSeqNumber) {
            let mut c = sender_at(CongestionControl::Cubic, 20 * MSS, base);
            assert_eq!(c.out(0), segs(0, 10));
            // Segments 1, 2 SACKed: one or two ranges of at most 2·MSS above
            // the hole is no loss yet (RFC 6675 IsLost).
            c.ack(100, 0, &[(MSS, 2 * MSS)]);
            assert_eq!(c.out(100), []);
            c.ack(101, 0, &[(MSS, 3 * MSS)]);
            assert_eq!(c.out(101), []);
            assert_eq!(c.phase(), Phase::Open);
            // The third: more than 2·MSS SACKed above it, segment 0 is lost
            // and goes again at once (no RTO wait: the RTO is at 300).
            c.ack(102, 0, &[(MSS, 4 * MSS)]);
            assert_eq!(c.phase(), Phase::Recovery);
            assert_eq!(c.out(102), [seg(0)]);
            // Resending SND.UNA's segment restarted the timer (RTO 300).
            assert_eq!(c.rto_at(), Some(402));
            // Cubic: ssthresh = 0.7 · 10 segments in flight.
            assert_eq!(c.ssthresh(), 7 * MSS);
            // PRR (RFC 6937): pipe = 10 - 4 SACKed - 1 lost + 1 resent = 6
            // segments, below ssthresh = 7: the slow-start reduction bound
            // lets one segment out per segment delivered (min(ssthresh -
            // pipe, max(prr_delivered - prr_out, DeliveredData) + MSS)), and
            // pipe stays at ssthresh.
            for (i, t) in (5..=10).zip(103..) {
                c.ack(t, 0, &[(MSS, i * MSS)]);
                assert_eq!(c.out(t), [seg(i + 5)], "at {t}");
            }
            assert_eq!(c.nxt_max(), (16 * MSS, 16 * MSS));
            // No probe in recovery, no RTO before the retransmission's ACK.
            assert_eq!(c.out(200), []);
            // Its ACK covers the recovery point (SND.MAX at 102): recovery
            // ends, cwnd = ssthresh, 6 segments in flight: one more goes.
            c.ack(202, 10 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.cwnd(), 7 * MSS);
            assert_eq!(c.out(202), [seg(16)]);
            assert_eq!(c.s.recovery_stats(), stats(1, 1, 0, 0));
        }

        #[test]
        fn test_xdp_sack_late_fast_retransmit_restarts_the_rto() {
            // Segment 0 of 10 lost, the SACKs that show it come late (queued
            // behind a bottleneck), a few ms before the RTO (300 after the
            // tail loss probe at 200, SRTT 100): the fast retransmission at
            // 482 restarts the timer (Linux rearms it when it resends the
            // head), so its ACK, one RTT later, comes before any timeout.
            // Before the fix the timer fired at 500, 18 ms after the
            // retransmission: a spurious timeout, cwnd down to one segment.
            let mut c = sender(CongestionControl::Cubic, 20 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            assert_eq!(c.out(200), [seg(10)]);
            assert_eq!(c.rto_at(), Some(500));
            // (What segments 1 and 2 SACKed let out is new data.)
            c.ack(480, 0, &[(MSS, 2 * MSS)]);
            c.ack(481, 0, &[(MSS, 3 * MSS)]);
            assert!(c.out(481).iter().all(|&(off, _)| off >= 10 * MSS));
            assert_eq!(c.rto_at(), Some(500));
            c.ack(482, 0, &[(MSS, 4 * MSS)]);
            assert_eq!(c.phase(), Phase::Recovery);
            assert_eq!(c.out(482)[0], seg(0));
            assert_eq!(c.rto_at(), Some(782));
            assert_eq!(c.out(500), []);
            assert_eq!(c.out(581), []);
            let (_, max) = c.nxt_max();
            c.ack(582, max, &[]);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.s.recovery_stats().timeouts, 0);
            assert_eq!(c.s.recovery_stats().recoveries, 1);
        }

        #[test]
        fn test_xdp_sack_partial_ack_of_a_burst_of_retransmissions() {
            // Segments 0, 1 and 4 of 10 lost; the SACKs show all three at
            // once and they go again in one burst (one send time). The
            // peer's ACK of the first retransmission comes first: the other
            // two, sent at the same time with higher sequence numbers, went
            // after it (RFC 8985 RACK_sent_after) and are on their way, not
            // lost. Before the fix that partial ACK had both resent at once
            // (the `wan` bench's 100 parallel flows: 6 of 7 at a time).
            let mut c = sender(CongestionControl::Cubic, 20 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            c.ack(100, 0, &[(5 * MSS, 10 * MSS), (2 * MSS, 4 * MSS)]);
            assert_eq!(c.phase(), Phase::Recovery);
            let o = c.out(100);
            assert_eq!(&o[..3], &[seg(0), seg(1), seg(4)]);
            // The retransmission of 0 arrives first.
            c.ack(200, MSS, &[(5 * MSS, 10 * MSS), (2 * MSS, 4 * MSS)]);
            let o = c.out(200);
            assert!(!o.contains(&seg(1)) && !o.contains(&seg(4)), "{o:?}");
            // Then those of 1 and 4.
            c.ack(201, 4 * MSS, &[(5 * MSS, 10 * MSS)]);
            let o = c.out(201);
            assert!(!o.contains(&seg(4)), "{o:?}");
            c.ack(202, 10 * MSS, &[]);
            assert_eq!(c.s.recovery_stats().retransmits, 3);
        }

        #[test]
        fn test_xdp_sack_first_segment_lost_fast_retransmit_prr() {
            first_segment_lost(LOCAL_SEQ + 1);
        }

        #[test]
        fn test_xdp_sack_sequence_numbers_wrap() {
            // Across 2^31 (the sign of the i32 inside) and across 2^32.
            first_segment_lost(TcpSeqNumber(i32::MAX - 3500));
            first_segment_lost(TcpSeqNumber(-3500));
        }

        #[test]
        fn test_xdp_sack_prr_proportional_reno() {
            // RFC 6937's case: 20 segments in flight, one lost, Reno halves
            // (ssthresh 10 segments). While pipe > ssthresh, PRR sends
            // CEIL(prr_delivered · ssthresh / RecoverFS) - prr_out: one
            // segment per two delivered, in whole segments (before the fix
            // half a segment per ACK went out, in 500-byte segments); once
            // pipe reached ssthresh, one per segment delivered.
            let mut c = sender(CongestionControl::Reno, 60 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            for i in 1..=10 {
                c.ack(100, i * MSS, &[]);
            }
            // Slow start: 20 segments out, 10..30.
            assert_eq!(c.out(100), segs(10, 30));
            assert_eq!(c.cwnd(), 20 * MSS);
            // Segment 10 lost; 11.. SACKed one by one from 200.
            let mut sent = Vec::new();
            for (i, t) in (12..=30).zip(200..) {
                c.ack(t, 10 * MSS, &[(11 * MSS, i * MSS)]);
                let o = c.out(t);
                assert!(o.iter().all(|&(_, len)| len == MSS), "at {t}: {o:?}");
                sent.push((t, o));
            }
            assert_eq!(c.ssthresh(), 10 * MSS);
            let expect: Vec<(i64, Vec<(usize, usize)>)> = vec![
                (200, vec![]),
                (201, vec![]),
                // Third SACK: the fast retransmit.
                (202, vec![seg(10)]),
                (203, vec![]),
                (204, vec![seg(30)]),
                (205, vec![]),
                (206, vec![seg(31)]),
                (207, vec![]),
                (208, vec![seg(32)]),
                (209, vec![]),
                (210, vec![seg(33)]),
                (211, vec![]),
                (212, vec![seg(34)]),
                (213, vec![]),
                // pipe = ssthresh: the slow-start reduction bound.
                (214, vec![]),
                (215, vec![seg(35)]),
                (216, vec![seg(36)]),
                (217, vec![seg(37)]),
                (218, vec![seg(38)]),
            ];
            assert_eq!(sent, expect);
            c.ack(300, 30 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.cwnd(), 10 * MSS);
            assert_eq!(c.out(300), [seg(39)]);
        }

        #[test]
        fn test_xdp_sack_prr_whole_segments_cubic() {
            // The same with cubic (ssthresh 0.7 · 20 = 14 segments): two
            // segments per three delivered, never a partial one (before the
            // fix: 400, 700, 700, ... bytes).
            let mut c = sender(CongestionControl::Cubic, 60 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            for i in 1..=10 {
                c.ack(100, i * MSS, &[]);
            }
            assert_eq!(c.out(100), segs(10, 30));
            let mut new = 30;
            for (i, t) in (12..=30).zip(200..) {
                c.ack(t, 10 * MSS, &[(11 * MSS, i * MSS)]);
                for (off, len) in c.out(t) {
                    assert_eq!(len, MSS, "at {t}");
                    if off != 10 * MSS {
                        assert_eq!(off, new * MSS, "at {t}");
                        new += 1;
                    }
                }
                if t == 208 {
                    // d = 7 segments delivered, 0.7 · 7 = 4.9: 5 sent (the
                    // retransmission and 4 new).
                    assert_eq!(new, 34);
                }
            }
            assert_eq!(c.ssthresh(), 14 * MSS);
            c.ack(300, 30 * MSS, &[]);
            assert_eq!(c.cwnd(), 14 * MSS);
        }

        #[test]
        fn test_xdp_sack_three_holes_one_recovery() {
            // Segments 1, 4, 6 of 10 lost: all three go again within one
            // RTT of the loss, in one recovery, no RTO; SACKed segments
            // never go again.
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            c.ack(100, MSS, &[]);
            assert_eq!(c.out(100), segs(10, 12));
            c.ack(102, MSS, &[(2 * MSS, 3 * MSS)]);
            assert_eq!(c.out(102), []);
            c.ack(103, MSS, &[(2 * MSS, 4 * MSS)]);
            assert_eq!(c.out(103), []);
            // 3 segments SACKed above segment 1 (> 2·MSS): lost. Segment
            // 4 too, by time: no reordering seen and DupThresh segments
            // SACKed, RACK's reordering window is 0 (RFC 8985 §6.2 step 4),
            // and segment 5, SACKed, went after it (before, with a window
            // of at least 1 ms, only its third SACK above found it).
            c.ack(105, MSS, &[(5 * MSS, 6 * MSS), (2 * MSS, 4 * MSS)]);
            assert_eq!(c.phase(), Phase::Recovery);
            assert_eq!(c.out(105), [seg(1), seg(4)]);
            // Likewise segment 6 once 7 is SACKed.
            c.ack(
                107,
                MSS,
                &[(7 * MSS, 8 * MSS), (5 * MSS, 6 * MSS), (2 * MSS, 4 * MSS)],
            );
            assert_eq!(c.out(107), [seg(6), seg(12)]);
            c.ack(
                108,
                MSS,
                &[(7 * MSS, 9 * MSS), (5 * MSS, 6 * MSS), (2 * MSS, 4 * MSS)],
            );
            assert_eq!(c.out(108), [seg(13)]);
            c.ack(
                109,
                MSS,
                &[(7 * MSS, 10 * MSS), (5 * MSS, 6 * MSS), (2 * MSS, 4 * MSS)],
            );
            assert_eq!(c.out(109), [seg(14)]);
            assert_eq!(c.s.recovery_stats(), stats(3, 1, 0, 0));
            // The new segments arrive (SACKed above the holes, nothing new
            // lost), then the retransmissions.
            for (i, t) in (11..=12).zip(200..) {
                c.ack(
                    t,
                    MSS,
                    &[(7 * MSS, i * MSS), (5 * MSS, 6 * MSS), (2 * MSS, 4 * MSS)],
                );
                assert_eq!(c.out(t), [seg(i + 4)]);
            }
            c.ack(205, 4 * MSS, &[(7 * MSS, 12 * MSS), (5 * MSS, 6 * MSS)]);
            c.ack(208, 6 * MSS, &[(7 * MSS, 13 * MSS)]);
            c.ack(209, 15 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.s.recovery_stats(), stats(3, 1, 0, 0));
            let o = c.out(209);
            assert!(o.iter().all(|&(off, _)| off >= 15 * MSS), "{o:?}");
        }

        #[test]
        fn test_xdp_sack_tlp_last_segment_in_place_of_the_rto() {
            // The last segment of 10 lost, the others ACKed one by one: one
            // segment in flight, PTO = 2·SRTT + 200 ms (a delayed ACK) comes
            // after the RTO, so the probe goes at the RTO's time in its place
            // (RFC 8985 §7.2; before the fix no probe was armed and the RTO
            // cut cwnd to one segment). No cwnd reduction: the probe
            // repaired the loss.
            let mut c = sender(CongestionControl::Cubic, 10 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            for i in 1..=9 {
                c.ack(99 + i as i64, i * MSS, &[]);
            }
            assert_eq!(c.out(108), []);
            // SRTT 100, RTTVAR 37.5: RTO 250 from the last ACK.
            assert_eq!(c.rto_at(), Some(358));
            assert_eq!(c.out(357), []);
            assert_eq!(c.out(358), [seg(9)]);
            // The RTO runs again from the probe (RFC 8985 §7.3).
            assert_eq!(c.rto_at(), Some(358 + 250));
            let cwnd = c.cwnd();
            c.ack(460, 10 * MSS, &[]);
            assert_eq!(c.out(460), []);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.cwnd(), cwnd + MSS);
            assert_eq!(c.ssthresh(), usize::MAX);
            assert_eq!(c.s.recovery_stats(), stats(1, 0, 0, 1));
            assert!(c.s.timer.is_idle());
        }

        #[test]
        fn test_xdp_sack_tlp_at_two_srtt_rearms_the_rto() {
            // The last segment lost and the ACK of the one before delayed:
            // two in flight, the probe goes at 2·SRTT after the last ACK,
            // before the RTO; the RTO runs again from the probe, so the
            // probe's ACK (one RTT later) comes first (before the fix the RTO
            // fired 52 ms after the probe: a spurious timeout).
            let mut c = sender(CongestionControl::Cubic, 10 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            for i in 1..=8 {
                c.ack(99 + i as i64, i * MSS, &[]);
            }
            assert_eq!(c.rto_at(), Some(107 + 250));
            assert_eq!(c.out(306), []);
            assert_eq!(c.out(307), [seg(9)]);
            assert_eq!(c.rto_at(), Some(307 + 250));
            assert_eq!(c.out(357), []);
            assert_eq!(c.out(358), []);
            c.ack(407, 10 * MSS, &[]);
            assert_eq!(c.out(407), []);
            assert_eq!(c.s.recovery_stats(), stats(1, 0, 0, 1));
            assert_eq!(c.ssthresh(), usize::MAX);
        }

        #[test]
        fn test_xdp_sack_tlp_new_data_and_one_probe_per_episode() {
            // With data not sent yet (the peer's window allowing it), the
            // probe is a new segment (RFC 8985 §7.3); one probe until new
            // data is ACKed.
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            // cwnd holds segment 10 back; the whole flight is lost. The
            // probe goes at 2·SRTT after the burst.
            assert_eq!(c.out(199), []);
            assert_eq!(c.out(200), [seg(10)]);
            assert_eq!(c.rto_at(), Some(500));
            assert_eq!(c.out(400), []);
            // No second probe: the RTO at 500.
            assert_eq!(c.out(499), []);
            assert_eq!(c.out(500), [seg(0)]);
            assert_eq!(c.phase(), Phase::Loss);
            assert_eq!(c.s.recovery_stats(), stats(1, 0, 1, 1));
        }

        #[test]
        fn test_xdp_sack_tlp_pto_floor() {
            // SRTT 1 ms: PTO = max(2·SRTT, 10 ms), the RTO at its 200 ms
            // floor.
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            c.s.rtte = RttEstimator::default();
            c.s.rtte.sample(1);
            assert_eq!(c.out(0), segs(0, 10));
            assert_eq!(c.rto_at(), Some(200));
            assert_eq!(c.out(9), []);
            assert_eq!(c.out(10), [seg(10)]);
            assert_eq!(c.rto_at(), Some(210));
        }

        #[test]
        fn test_xdp_an_app_limited_response_gives_app_limited_samples() {
            // xdpstack patch 28. A keep-alive connection: a response, idle
            // until the next request, then the next response of 7 segments.
            // Every rate sample of that response is application-limited,
            // the first ACK's (2 of its segments) included: before the
            // patch only the segment that emptied the buffer was, and the
            // first ACKs' samples (two segments a round trip) counted as
            // the path's rate.
            // (The buffer holds more than a response: patch 29 counts a
            // write that fills it as limited by the buffer.)
            let s = socket_established_with_buffer_sizes(20 * MSS, 64);
            let mut c = establish(s, CongestionControl::Bbr, 7 * MSS, LOCAL_SEQ + 1);
            assert_eq!(c.out(0).len(), 7);
            c.ack(50, 7 * MSS, &[]);
            let more: Vec<u8> = (7 * MSS..14 * MSS).map(|i| (i % 251) as u8).collect();
            c.data.extend_from_slice(&more);
            assert_eq!(c.s.send_slice(&more), Ok(7 * MSS));
            let sent = c.out(200);
            assert!(!sent.is_empty() && sent[0] == seg(7), "{sent:?}");
            c.ack(250, (7 + sent.len().min(2)) * MSS, &[]);
            let rec = c.s.rec.as_deref().unwrap();
            let rs = rec.rate_sample().copied().expect("a rate sample");
            assert!(rs.app_limited, "{rs:?}");
            // Once what was in flight at the write is delivered, the period
            // is over.
            assert_eq!(rec.app_limited_until, 0);
        }

        #[test]
        fn test_xdp_a_sender_limited_by_its_buffer_is_not_app_limited() {
            // xdpstack patch 29: the same, but each write fills the send
            // buffer (the application had more): limited by the buffer, not
            // by the application, so its samples count.
            let mut c = sender(CongestionControl::Bbr, 7 * MSS);
            assert_eq!(c.out(0).len(), 7);
            c.ack(50, 7 * MSS, &[]);
            // In two writes, as a writer of chunks ends one and starts the
            // next: the burst's first write is no bubble, nor its second.
            let more: Vec<u8> = (7 * MSS..14 * MSS).map(|i| (i % 251) as u8).collect();
            c.data.extend_from_slice(&more);
            assert_eq!(c.s.send_slice(&more[..300]), Ok(300));
            assert_eq!(c.s.send_slice(&more[300..]), Ok(7 * MSS - 300));
            let rec = c.s.rec.as_deref().unwrap();
            assert_eq!(rec.app_limited_until, 0);
            let sent = c.out(200);
            assert!(!sent.is_empty() && sent[0] == seg(7), "{sent:?}");
            c.ack(250, (7 + sent.len().min(2)) * MSS, &[]);
            let rec = c.s.rec.as_deref().unwrap();
            let rs = rec.rate_sample().copied().expect("a rate sample");
            assert!(!rs.app_limited, "{rs:?}");
        }

        #[test]
        fn test_xdp_a_bulk_sender_is_not_app_limited() {
            // xdpstack patch 28: data written while a segment or more is
            // still unsent does not start an application-limited period.
            let mut c = sender(CongestionControl::Bbr, 40 * MSS);
            let first = c.out(0);
            assert!(!first.is_empty() && first.len() < 40, "{first:?}");
            c.ack(50, 2 * MSS, &[]);
            let more: Vec<u8> = (40 * MSS..42 * MSS).map(|i| (i % 251) as u8).collect();
            c.data.extend_from_slice(&more);
            assert_eq!(c.s.send_slice(&more), Ok(2 * MSS));
            let rec = c.s.rec.as_deref().unwrap();
            assert_eq!(rec.app_limited_until, 0);
            let rs = rec.rate_sample().copied().expect("a rate sample");
            assert!(!rs.app_limited, "{rs:?}");
        }

        #[test]
        fn test_xdp_pacing_holds_neither_the_probe_nor_the_timeout() {
            // xdpstack patch 27. A paced sender (BBR) whose pacing clock
            // stands far out (rate samples shrunk by a loss episode): the
            // tail loss probe goes at its time and the retransmission
            // timeout's segment at the timer's, not when the pacing clock
            // says. Before the patch both waited for 5 s here.
            let mut c = sender(CongestionControl::Bbr, 30 * MSS);
            let first = c.out(0);
            assert!(!first.is_empty());
            assert_eq!(first[0], seg(0));
            // An ACK gives BBR its first rate sample: from here it paces.
            c.ack(100, 2 * MSS, &[]);
            assert!(c.s.congestion_controller.inner().pacing_rate().is_some());
            c.out(100);
            let far = Instant::from_millis(5000);
            c.s.rec.as_deref_mut().unwrap().pace_at = Some(far);
            let pto = (c.s.tlp_deadline().unwrap().total_micros() + 999) / 1000;
            assert!(pto < 1000, "{pto}");
            assert_eq!(c.out(pto - 1), []);
            let probe = c.out(pto);
            assert_eq!(probe.len(), 1, "{probe:?}");
            assert_eq!(c.s.recovery_stats().probes, 1);
            // Pacing still holds new data back after the probe.
            assert_eq!(c.out(pto + 1), []);
            let rto = c.rto_at().unwrap();
            assert!(rto < 2000, "{rto}");
            assert_eq!(c.out(rto - 1), []);
            assert_eq!(c.out(rto), [seg(2)]);
            assert_eq!(c.phase(), Phase::Loss);
            assert_eq!(c.s.recovery_stats().timeouts, 1);
        }

        #[test]
        fn test_xdp_sack_tail_of_three_lost() {
            // Segments 7, 8, 9 of 10 lost: the probe (segment 9 again) is
            // SACKed, RACK marks 7 and 8 lost (sent a reordering window
            // before it), fast recovery sends both at once. No RTO.
            let mut c = sender(CongestionControl::Cubic, 10 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            for i in 1..=7 {
                c.ack(99 + i as i64, i * MSS, &[]);
            }
            assert_eq!(c.rto_at(), Some(106 + 250));
            assert_eq!(c.out(305), []);
            assert_eq!(c.out(306), [seg(9)]);
            assert_eq!(c.out(358), []);
            c.ack(406, 7 * MSS, &[(9 * MSS, 10 * MSS)]);
            assert_eq!(c.phase(), Phase::Recovery);
            assert_eq!(c.out(406), [seg(7), seg(8)]);
            // ssthresh = 0.7 · 3 segments in flight (at least 2 segments).
            assert_eq!(c.ssthresh(), 2100);
            c.ack(506, 10 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.cwnd(), 2100);
            assert_eq!(c.s.recovery_stats(), stats(3, 1, 0, 1));
        }

        #[test]
        fn test_xdp_sack_lost_retransmission_rto_resends_holes_only() {
            // Segment 0 lost, and its fast retransmission too: the RTO
            // resends only what is not SACKed, from SND.UNA in slow start,
            // without rewinding SND.NXT, and keeps the recovery's ssthresh.
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            for (i, t) in (2..=10).zip(100..) {
                c.ack(t, 0, &[(MSS, i * MSS)]);
                c.out(t);
            }
            // 0 at 102, then 10..15 at 103..108.
            assert_eq!(c.nxt_max(), (16 * MSS, 16 * MSS));
            // 10..12 arrive (16..18 go); 13..18 are lost. Segment 10 went
            // after the retransmission of 0 and arrived first: with no
            // reordering seen, RACK's window is 0 in recovery (RFC 8985
            // §6.2 step 4) and 0 goes a third time (the peer loses it too).
            for (i, t) in (11..=13).zip(203..) {
                c.ack(t, 0, &[(MSS, i * MSS)]);
                if i == 11 {
                    assert_eq!(c.out(t), [seg(0), seg(16)]);
                } else {
                    assert_eq!(c.out(t), [seg(i + 5)]);
                }
            }
            // The third transmission of SND.UNA's segment (at 203) restarted
            // the timer (RTO 300).
            assert_eq!(c.out(502), []);
            assert_eq!(c.out(503), [seg(0)]);
            assert_eq!(c.phase(), Phase::Loss);
            assert_eq!(c.cwnd(), MSS);
            // Before the fix: 0.7 · 19 segments, above the recovery's 7.
            assert_eq!(c.ssthresh(), 7 * MSS);
            assert_eq!(c.nxt_max(), (19 * MSS, 19 * MSS));
            assert_eq!(c.out(504), []);
            // Slow start: 1 + 2 segments, from the first hole on (1..12
            // SACKed or ACKed never go again).
            c.ack(603, 13 * MSS, &[]);
            assert_eq!(c.out(603), segs(13, 16));
            assert_eq!(c.nxt_max(), (19 * MSS, 19 * MSS));
            c.ack(703, 16 * MSS, &[]);
            assert_eq!(c.out(703), [seg(16), seg(17), seg(18), seg(19), seg(20)]);
            c.ack(803, 21 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Open);
            // 0 three times, 13..18 once each.
            assert_eq!(c.s.recovery_stats(), stats(9, 1, 1, 0));
        }

        #[test]
        fn test_xdp_sack_rack_marks_holes_lost_during_recovery() {
            // During a recovery, segments sent well before one the peer
            // SACKs (more than the reordering window, SRTT/4) are lost by
            // time (RACK) and repaired in the same recovery. The path is
            // known to reorder, so RACK's window stays at min_RTT/4 (25 ms)
            // in recovery (RFC 8985 §6.2 step 4).
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            c.s.rec.as_deref_mut().unwrap().set_reordering_seen();
            for (i, t) in (2..=10).zip(100..) {
                c.ack(t, 0, &[(MSS, i * MSS)]);
                c.out(t);
            }
            // 0 at 102 (arrives), 10..15 at 103..108: 13..15 lost.
            for (i, t) in (11..=13).zip(203..) {
                c.ack(t, 0, &[(MSS, i * MSS)]);
                assert_eq!(c.out(t), [seg(i + 5)]);
            }
            // 16 (sent at 203) SACKed at 253: 13..15, sent at 106..108,
            // are lost; so is the retransmission of 0 (sent at 102, and the
            // ACK still at 0 though data sent 100 ms after it arrived: RACK
            // for retransmissions), which goes again first. pipe is below
            // ssthresh (7): PRR's slow-start reduction bound lets out what
            // was delivered plus a segment, 2 per ACK.
            c.ack(253, 0, &[(16 * MSS, 17 * MSS), (MSS, 13 * MSS)]);
            assert_eq!(c.phase(), Phase::Recovery);
            assert_eq!(c.out(253), [seg(0), seg(13)]);
            c.ack(254, 0, &[(16 * MSS, 18 * MSS), (MSS, 13 * MSS)]);
            assert_eq!(c.out(254), [seg(14), seg(15)]);
            c.ack(255, 0, &[(16 * MSS, 19 * MSS), (MSS, 13 * MSS)]);
            assert_eq!(c.out(255), [seg(19), seg(20)]);
            // The second retransmission of 0 arrived; the next ACK covers up
            // to the holes.
            // Recovery ends at the recovery point (10 segments, SND.MAX at
            // 102), before the retransmissions of 13..15 are ACKed.
            c.ack(303, 13 * MSS, &[(16 * MSS, 19 * MSS)]);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.cwnd(), 7 * MSS);
            // (cwnd 7 < SND.MAX - SND.UNA = 9 segments.)
            assert_eq!(c.out(303), []);
            // 19..21 arrive before the retransmissions: 13..15 still look
            // lost, but were sent again already (before the fix a second
            // recovery resent them and cut cwnd again).
            c.ack(304, 13 * MSS, &[(16 * MSS, 20 * MSS)]);
            assert_eq!(c.out(304), []);
            c.ack(305, 13 * MSS, &[(16 * MSS, 21 * MSS)]);
            assert_eq!(c.out(305), []);
            assert_eq!(c.phase(), Phase::Open);
            c.ack(353, 22 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.s.recovery_stats(), stats(5, 1, 0, 0));
        }

        #[test]
        fn test_xdp_rack_reordering_timer_resends_a_burst_hole() {
            // xdpstack patch 29: a 10 KiB response, 8 segments in one
            // burst; 5 is lost, 6 and 7 SACKed (fewer than DupThresh).
            // Sent with the SACKed data, 5 is not lost when the ACK comes;
            // RACK's reordering timer finds it lost a reordering window (a
            // quarter of the minimum RTT, 25 ms) past RACK.rtt (101 ms)
            // after it went, and fast recovery resends it then. (Before,
            // the tail loss probe resent 7, already SACKed, at 2·SRTT, and
            // the RTO repaired 5; the `wan` bench's 1,000 sequential 10 KiB
            // at 2 ms and 3% loss took 2.4 times the kernel's time.)
            let mut c = sender(CongestionControl::Cubic, 8 * MSS);
            assert_eq!(c.out(0), segs(0, 8));
            c.ack(100, 5 * MSS, &[]);
            c.ack(101, 5 * MSS, &[(6 * MSS, 8 * MSS)]);
            assert_eq!(c.out(101), []);
            assert_eq!(c.out(125), []);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.out(126), [seg(5)]);
            assert_eq!(c.phase(), Phase::Recovery);
            c.ack(227, 8 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.s.recovery_stats(), stats(1, 1, 0, 0));
        }

        #[test]
        fn test_xdp_rack_reordering_timer_spares_a_late_segment() {
            // The same, but 5 was only late (reordered): delivered before
            // the timer fires, it is not resent and no recovery starts.
            let mut c = sender(CongestionControl::Cubic, 8 * MSS);
            assert_eq!(c.out(0), segs(0, 8));
            c.ack(100, 5 * MSS, &[]);
            c.ack(101, 5 * MSS, &[(6 * MSS, 8 * MSS)]);
            assert_eq!(c.out(110), []);
            c.ack(111, 8 * MSS, &[]);
            for t in 111..400 {
                assert_eq!(c.out(t), [], "{t}");
            }
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.s.recovery_stats(), stats(0, 0, 0, 0));
        }

        #[test]
        fn test_xdp_sack_rto_skips_sacked_ranges() {
            // Segments 1 and 4 SACKed (two ranges, 2 segments: no loss by
            // DupThresh). RACK's reordering timer (patch 29) finds 0, 2 and
            // 3 lost a reordering window (a quarter of the 101 ms minimum
            // RTT) past RACK.rtt (104 ms) after they went, and fast recovery
            // resends 0 (PRR: one segment). That is lost too: the RTO
            // resends the holes in slow start, skipping what is SACKed,
            // SND.NXT where it was. (All data the window let out is sent:
            // F-RTO has no new data to try, RFC 5682 §3.1 step 2.b, and the
            // conventional recovery goes on.)
            let mut c = sender(CongestionControl::Cubic, 11 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            c.ack(101, 0, &[(MSS, 2 * MSS)]);
            c.ack(104, 0, &[(4 * MSS, 5 * MSS), (MSS, 2 * MSS)]);
            assert_eq!(c.out(104), []);
            assert_eq!(c.out(129), []);
            assert_eq!(c.out(130), [seg(0)]);
            assert_eq!(c.phase(), Phase::Recovery);
            // 0.7 · 10 segments in flight.
            assert_eq!(c.ssthresh(), 7000);
            assert_eq!(c.out(429), []);
            assert_eq!(c.out(430), [seg(0)]);
            assert_eq!(c.phase(), Phase::Loss);
            assert_eq!(c.cwnd(), MSS);
            // The RTO keeps the recovery's ssthresh (one reduction).
            assert_eq!(c.ssthresh(), 7000);
            assert_eq!(c.nxt_max(), (10 * MSS, 10 * MSS));
            c.ack(530, 2 * MSS, &[(4 * MSS, 5 * MSS)]);
            assert_eq!(c.cwnd(), 3 * MSS);
            assert_eq!(c.out(530), [seg(2), seg(3), seg(5)]);
            c.ack(630, 6 * MSS, &[]);
            assert_eq!(c.out(630), segs(6, 11));
            assert_eq!(c.nxt_max(), (11 * MSS, 11 * MSS));
            c.ack(730, 11 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.cwnd(), 7 * MSS);
            assert_eq!(c.out(730), []);
            assert_eq!(c.s.recovery_stats(), stats(9, 1, 1, 0));
        }

        #[test]
        fn test_xdp_sack_reneging_receiver_does_not_stall() {
            // The receiver SACKs 1..9, then drops its out-of-order queue
            // (Linux's `tcp_prune_ofo_queue` under memory pressure): the
            // retransmission of 0 is ACKed alone. Before the fix the sender
            // kept 1..9 as SACKed and never sent them again, RTO after RTO.
            // Now the scoreboard is forgotten, the SACKs of what follows show
            // 1..9 as holes, and the same recovery resends them, once.
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            for (i, t) in (2..=10).zip(100..) {
                c.ack(t, 0, &[(MSS, i * MSS)]);
                c.out(t);
            }
            // 0 at 102, 10..15 at 103..108.
            assert_eq!(c.nxt_max(), (16 * MSS, 16 * MSS));
            c.ack(202, MSS, &[]);
            assert!(c.s.rec.as_deref().unwrap().board.is_empty());
            assert_eq!(c.out(202), []);
            // From here a receiver holding 0, getting 10..15 at 203..208
            // and everything sent after 202 100 ms later, one ACK per
            // arrival (SACK blocks lowest first).
            let mut held = [false; 30];
            held[0] = true;
            let mut wire: Vec<(i64, usize)> = (10..16).map(|i| (193 + i as i64, i)).collect();
            let mut resent = Vec::new();
            for t in 203..3000 {
                let arriving: Vec<usize> = wire.iter().filter(|w| w.0 == t).map(|w| w.1).collect();
                for i in arriving {
                    held[i] = true;
                    let cum = held.iter().position(|h| !h).unwrap_or(30);
                    let mut blocks = Vec::new();
                    let mut k = cum;
                    while k < 30 && blocks.len() < 3 {
                        if held[k] {
                            let e = (k..30).find(|&j| !held[j]).unwrap_or(30);
                            blocks.push((k * MSS, e * MSS));
                            k = e;
                        } else {
                            k += 1;
                        }
                    }
                    c.ack(t, cum * MSS, &blocks);
                }
                for (off, len) in c.out(t) {
                    if off < 10 * MSS {
                        resent.push(off / MSS);
                    }
                    if len == MSS {
                        wire.push((t + 100, off / MSS));
                    }
                }
                if held[..16].iter().all(|&h| h) {
                    break;
                }
            }
            assert!(held[..16].iter().all(|&h| h));
            assert_eq!(resent, (1..10).collect::<Vec<_>>());
            assert_eq!(c.s.recovery_stats().timeouts, 0);
            assert_eq!(c.s.recovery_stats().recoveries, 1);
        }

        #[test]
        fn test_xdp_sack_reordering() {
            // Segment 1 delayed past 2 later segments: 2 SACKed (not more
            // than 2·MSS) is no loss; its ACK then arrives.
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            c.ack(100, MSS, &[]);
            assert_eq!(c.out(100), segs(10, 12));
            c.ack(101, MSS, &[(2 * MSS, 3 * MSS)]);
            c.ack(102, MSS, &[(2 * MSS, 4 * MSS)]);
            assert_eq!(c.out(102), []);
            c.ack(103, 4 * MSS, &[]);
            assert_eq!(c.out(103), segs(12, 17));
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.ssthresh(), usize::MAX);
            assert_eq!(c.s.recovery_stats(), stats(0, 0, 0, 0));

            // Past 3: RFC 6675's DupThresh calls it lost; a spurious
            // retransmission and a window reduction, which the D-SACK that
            // follows undoes (xdpstack patch: undo, RFC 3708).
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            c.ack(100, MSS, &[]);
            assert_eq!(c.out(100), segs(10, 12));
            c.ack(101, MSS, &[(2 * MSS, 3 * MSS)]);
            c.ack(102, MSS, &[(2 * MSS, 4 * MSS)]);
            c.ack(103, MSS, &[(2 * MSS, 5 * MSS)]);
            assert_eq!(c.out(103), [seg(1)]);
            c.ack(104, 5 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Recovery);
            assert_eq!(c.ssthresh(), 7699);
            c.ack(203, 5 * MSS, &[(MSS, 2 * MSS)]);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.ssthresh(), usize::MAX);
            assert_eq!(c.cwnd(), 11 * MSS);
            assert_eq!(c.s.recovery_stats().undos, 1);
        }

        /// Segments 1 and 2 of 10 late or lost: the SACKs of 3..5 start a
        /// fast recovery (cubic: ssthresh 0.7 · 11 segments in flight) that
        /// resends both.
        fn two_holes(c: &mut Conn) {
            assert_eq!(c.out(0), segs(0, 10));
            c.ack(100, MSS, &[]);
            assert_eq!(c.out(100), segs(10, 12));
            assert_eq!(c.cwnd(), 11 * MSS);
            c.ack(101, MSS, &[(3 * MSS, 4 * MSS)]);
            c.ack(102, MSS, &[(3 * MSS, 5 * MSS)]);
            assert_eq!(c.out(102), []);
            c.ack(103, MSS, &[(3 * MSS, 6 * MSS)]);
            assert_eq!(c.phase(), Phase::Recovery);
            assert_eq!(c.out(103), [seg(1), seg(2)]);
            assert_eq!(c.ssthresh(), 7699);
        }

        #[test]
        fn test_xdp_sack_dsack_of_every_retransmission_undoes() {
            // Segments 1 and 2 were only late: their originals arrive, then
            // the retransmissions, each reported by a D-SACK (RFC 2883).
            // Once every retransmission of the recovery is reported as a
            // duplicate, the reduction is undone (RFC 3708, Linux's
            // `tcp_try_undo_dsack`): cwnd and ssthresh as before it, and
            // the recovery is over.
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            two_holes(&mut c);
            c.ack(104, 6 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Recovery);
            c.ack(203, 6 * MSS, &[(MSS, 2 * MSS)]);
            assert_eq!(c.phase(), Phase::Recovery);
            assert_eq!(c.ssthresh(), 7699);
            assert_eq!(c.s.recovery_stats().undos, 0);
            c.ack(204, 6 * MSS, &[(2 * MSS, 3 * MSS)]);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.cwnd(), 11 * MSS);
            assert_eq!(c.ssthresh(), usize::MAX);
            assert_eq!(c.s.recovery_stats().undos, 1);
            assert_eq!(c.s.recovery_stats().recoveries, 1);
        }

        #[test]
        fn test_xdp_sack_partial_dsack_does_not_undo() {
            // Segment 1 was late, 2 lost: only 1's retransmission is
            // D-SACKed; the reduction stands and the recovery ends as
            // usual, cwnd deflated to ssthresh.
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            two_holes(&mut c);
            c.ack(104, 2 * MSS, &[(3 * MSS, 6 * MSS)]);
            c.ack(203, 2 * MSS, &[(MSS, 2 * MSS), (3 * MSS, 6 * MSS)]);
            assert_eq!(c.phase(), Phase::Recovery);
            c.ack(204, 6 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Recovery);
            c.ack(205, 12 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.cwnd(), 7699);
            assert_eq!(c.ssthresh(), 7699);
            assert_eq!(c.s.recovery_stats().undos, 0);
        }

        #[test]
        fn test_xdp_sack_dsack_after_the_recovery_undoes() {
            // The usual order: the late originals fill the holes and the
            // recovery ends (cwnd = ssthresh) before the retransmissions
            // arrive; their D-SACKs still undo it (Linux undoes on D-SACKs
            // in the open state too).
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            two_holes(&mut c);
            c.ack(104, 12 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.cwnd(), 7699);
            c.ack(203, 12 * MSS, &[(MSS, 2 * MSS)]);
            assert_eq!(c.cwnd(), 7699);
            c.ack(204, 12 * MSS, &[(2 * MSS, 3 * MSS)]);
            assert_eq!(c.cwnd(), 11 * MSS);
            assert_eq!(c.ssthresh(), usize::MAX);
            assert_eq!(c.s.recovery_stats().undos, 1);
            // Undone once: more D-SACKs change nothing.
            c.ack(205, 12 * MSS, &[(2 * MSS, 3 * MSS)]);
            assert_eq!(c.s.recovery_stats().undos, 1);
        }

        /// A flight of 10 segments whose ACKs do not come: the probe (new
        /// segment 10) at 200, the RTO at 500 resends segment 0, cwnd one
        /// segment, ssthresh 0.7 · 11 segments.
        fn timeout(c: &mut Conn) {
            assert_eq!(c.out(0), segs(0, 10));
            assert_eq!(c.out(200), [seg(10)]);
            assert_eq!(c.out(500), [seg(0)]);
            assert_eq!(c.phase(), Phase::Loss);
            assert_eq!(c.cwnd(), MSS);
            assert_eq!(c.ssthresh(), 7699);
        }

        #[test]
        fn test_xdp_sack_frto_spurious_timeout_undone() {
            // The path only stalled: the original ACKs arrive after the
            // retransmission. F-RTO (RFC 5682 §3.1, SACK-enhanced): the
            // first ACK advances SND.UNA (it covers the resent segment 0),
            // so new data goes instead of more retransmissions (step 2.b);
            // the next ACK covers segment 1, sent before the timeout and
            // never resent: the timeout was spurious (step 3.b). The
            // reduction is undone (cwnd 10 segments again, then grown by
            // this ACK in slow start; ssthresh as before) and nothing
            // below SND.MAX goes again.
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            timeout(&mut c);
            c.ack(510, MSS, &[]);
            assert_eq!(c.phase(), Phase::Loss);
            assert_eq!(c.out(510), [seg(11), seg(12)]);
            c.ack(511, 2 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.ssthresh(), usize::MAX);
            assert_eq!(c.cwnd(), 11 * MSS);
            let o = c.out(511);
            assert!(o.iter().all(|&(off, _)| off >= 13 * MSS), "{o:?}");
            for i in 3..=13 {
                c.ack(511 + i as i64, i * MSS, &[]);
                let o = c.out(511 + i as i64);
                assert!(o.iter().all(|&(off, _)| off >= 13 * MSS), "{o:?}");
            }
            assert_eq!(
                c.s.recovery_stats(),
                RecoveryStats {
                    retransmits: 1,
                    timeouts: 1,
                    probes: 1,
                    undos: 1,
                    ..RecoveryStats::default()
                }
            );
        }

        #[test]
        fn test_xdp_sack_frto_real_timeout_not_undone() {
            // Segments 1..10 were lost: the resent segment 0 is ACKed, F-RTO
            // sends new data (step 2.b); the peer SACKs it and still lacks
            // 1: the loss was real (step 3.a). The conventional recovery
            // resends the holes in slow start and the reduction stands.
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            timeout(&mut c);
            c.ack(600, MSS, &[]);
            assert_eq!(c.out(600), [seg(11), seg(12)]);
            // (cwnd 2 segments, segment 12 still in flight: one goes.)
            c.ack(700, MSS, &[(11 * MSS, 12 * MSS)]);
            assert_eq!(c.phase(), Phase::Loss);
            assert_eq!(c.out(700), [seg(1)]);
            c.ack(701, MSS, &[(11 * MSS, 13 * MSS)]);
            assert_eq!(c.out(701), [seg(2)]);
            assert_eq!(c.ssthresh(), 7699);
            assert_eq!(c.s.recovery_stats().undos, 0);
            // The holes are repaired; the loss state ends without undo.
            c.ack(800, 4 * MSS, &[(11 * MSS, 13 * MSS)]);
            c.out(800);
            c.ack(900, 13 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Open);
            assert!(c.cwnd() <= 7699, "{}", c.cwnd());
            assert_eq!(c.ssthresh(), 7699);
            assert_eq!(c.s.recovery_stats().undos, 0);
        }

        #[test]
        fn test_xdp_sack_frto_no_new_data_conventional() {
            // Nothing new to send after the timeout (RFC 5682 step 2.b):
            // the conventional recovery goes on at once, and the original
            // ACKs that come later cannot undo it by F-RTO.
            let mut c = sender(CongestionControl::Cubic, 11 * MSS);
            timeout(&mut c);
            c.ack(600, MSS, &[]);
            assert_eq!(c.out(600), [seg(1), seg(2)]);
            assert!(!c.s.rec.as_deref().unwrap().frto);
            c.ack(601, 5 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Loss);
            assert_eq!(c.s.recovery_stats().undos, 0);
        }

        #[test]
        fn test_xdp_sack_hystart_plus_plus() {
            // HyStart++ (RFC 9406) in cubic's initial slow start, segment by
            // segment: every ACK of a round comes `rtt` after the round was
            // sent. (The peer's window scaled by 16: 960,000 bytes.)
            let mut c = sender(CongestionControl::Cubic, 4000 * MSS);
            c.s.remote_win_scale = Some(4);
            let mut flight = c.out(0);
            let mut t = 0;
            // Per ACK: in CSS, cwnd after it, bytes it acknowledged.
            let mut round = |c: &mut Conn, rtt: i64| -> Vec<(bool, usize, usize)> {
                t += rtt;
                let mut next = Vec::new();
                let mut seen = Vec::new();
                for &(off, len) in &flight {
                    c.ack(t, off + len, &[]);
                    seen.push((c.s.rec.as_deref().unwrap().in_css(), c.cwnd(), len));
                    next.extend(c.out(t));
                }
                flight = next;
                seen
            };
            let css = |v: &[(bool, usize, usize)]| v.iter().position(|x| x.0);
            // Growth from ACK `i` to the last: what slow start adds for the
            // ACKs after `i` (min(N, 2·SMSS)), divided by `div`.
            let grew = |v: &[(bool, usize, usize)], i: usize, div: usize| {
                let n = v.len();
                (
                    v[n - 1].1 - v[i].1,
                    v[i + 1..].iter().map(|x| x.2 / div).sum::<usize>(),
                )
            };
            // Rounds at 100 ms: slow start, cwnd doubling.
            for n in [10, 20, 40] {
                let v = round(&mut c, 100);
                assert_eq!(v.len(), n);
                assert_eq!(css(&v), None);
                assert_eq!(c.cwnd(), 2 * n * MSS);
            }
            // 113 ms: 13 ms more than the last round's minimum, past
            // max(4 ms, min(100/8, 16 ms)) = 12.5 ms: Conservative Slow Start
            // from the 8th sample of the round on (N_RTT_SAMPLE), growing
            // by a quarter (CSS_GROWTH_DIVISOR), that ACK's growth included.
            let v = round(&mut c, 113);
            assert_eq!(v.len(), 80);
            assert_eq!(css(&v), Some(7));
            assert_eq!(v[6].1, 87 * MSS);
            assert_eq!(v[7].1, 87 * MSS + MSS / 4);
            assert_eq!(v[79].1, 87 * MSS + 73 * MSS / 4);
            assert_eq!(c.ssthresh(), usize::MAX);
            // A round whose minimum falls below the 113 ms that started CSS:
            // the exit was spurious, back to slow start at its 8th sample.
            // (CSS's quarter segments went out as short segments: their
            // ACKs count what they acknowledge.)
            let v = round(&mut c, 105);
            assert!(v[..7].iter().all(|x| x.0));
            assert!(v[7..].iter().all(|x| !x.0));
            let (a, b) = grew(&v, 6, 1);
            assert_eq!(a, b);
            // The delay test again, against 105 ms (threshold 13.1 ms):
            // CSS at 119 ms; it lasts 5 rounds, this one counted.
            let v = round(&mut c, 119);
            assert_eq!(css(&v), Some(7));
            for _ in 0..4 {
                let v = round(&mut c, 119);
                assert!(v.iter().all(|x| x.0));
                let (a, b) = grew(&v, 0, 4);
                assert_eq!(a, b);
                assert_eq!(c.ssthresh(), usize::MAX);
            }
            // The first ACK of the sixth round: congestion avoidance,
            // ssthresh = cwnd (then cubic grows it).
            let cwnd = c.cwnd();
            let v = round(&mut c, 119);
            assert!(v.iter().all(|x| !x.0));
            assert_eq!(c.ssthresh(), cwnd);
            assert!(v[0].1 - cwnd < MSS / 4);
            assert_eq!(c.s.recovery_stats().hystart_exits, 1);
        }

        #[test]
        fn test_xdp_sack_hystart_css_ends_when_the_queue_keeps_growing() {
            // Patch 24: CSS begins at 113 ms (past 100 + 12.5); the next
            // rounds' minimum is 128 ms, the threshold again above 113
            // (113/8 = 14.1 ms): after one whole round of CSS growth, slow
            // start ends at the 8th sample of the round after it, not 5
            // rounds later. Rounds at 126 ms (below it) keep CSS.
            for (rtt, ends) in [(128, true), (126, false)] {
                let mut c = sender(CongestionControl::Cubic, 4000 * MSS);
                c.s.remote_win_scale = Some(4);
                let mut flight = c.out(0);
                let mut t = 0;
                let mut round = |c: &mut Conn, rtt: i64| -> Vec<(bool, usize)> {
                    t += rtt;
                    let mut next = Vec::new();
                    let mut seen = Vec::new();
                    for &(off, len) in &flight {
                        c.ack(t, off + len, &[]);
                        seen.push((c.s.rec.as_deref().unwrap().in_css(), c.ssthresh()));
                        next.extend(c.out(t));
                    }
                    flight = next;
                    seen
                };
                for _ in 0..3 {
                    round(&mut c, 100);
                }
                let v = round(&mut c, 113);
                assert!(v[7].0 && v[79].0, "CSS from the 8th sample");
                // The first whole CSS round grows whatever the RTT does.
                let v = round(&mut c, rtt);
                assert!(v.iter().all(|x| x.0 && x.1 == usize::MAX));
                let v = round(&mut c, rtt);
                if ends {
                    assert!(v[..7].iter().all(|x| x.0 && x.1 == usize::MAX));
                    assert!(!v[7].0);
                    assert_ne!(v[7].1, usize::MAX, "ssthresh set: congestion avoidance");
                    assert_eq!(c.s.recovery_stats().hystart_exits, 1);
                } else {
                    assert!(v.iter().all(|x| x.0 && x.1 == usize::MAX));
                    assert_eq!(c.s.recovery_stats().hystart_exits, 0);
                }
            }
        }

        #[test]
        fn test_xdp_sack_duplicate_acks_and_dsack() {
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            c.ack(100, MSS, &[]);
            assert_eq!(c.out(100), segs(10, 12));
            let cwnd = c.cwnd();
            // D-SACKs (a segment the peer got twice) below SND.UNA: nothing
            // is missing (before the fix the third entered fast recovery).
            for t in 101..=104 {
                c.ack(t, MSS, &[(0, MSS)]);
                assert_eq!(c.out(t), []);
            }
            // Duplicates of a pure ACK, twice.
            c.ack(108, MSS, &[]);
            c.ack(109, MSS, &[]);
            assert_eq!(c.out(109), []);
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.cwnd(), cwnd);
            assert_eq!(c.s.recovery_stats(), stats(0, 0, 0, 0));
            // A third without SACK blocks: the fallback for a SACK peer that
            // sends none (RFC 5681 fast retransmit of SND.UNA's segment).
            c.ack(110, MSS, &[]);
            assert_eq!(c.out(110), [seg(1)]);
            assert_eq!(c.s.recovery_stats(), stats(1, 1, 0, 0));

            // An ACK that SACKs new data counts (RFC 6675 §2); copies of it
            // (the network duplicated it) SACK nothing new and do not, nor
            // does a D-SACK block within it (RFC 2883 §4).
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            c.ack(100, MSS, &[]);
            assert_eq!(c.out(100), segs(10, 12));
            c.ack(101, MSS, &[(3 * MSS, 4 * MSS)]);
            for t in 102..=106 {
                c.ack(t, MSS, &[(3 * MSS, 4 * MSS)]);
            }
            c.ack(107, MSS, &[(3 * MSS, 4 * MSS), (3 * MSS, 4 * MSS)]);
            assert_eq!(c.out(107), []);
            assert_eq!(c.s.rec.as_deref().unwrap().dup_acks, 1);
            assert_eq!(c.s.recovery_stats(), stats(0, 0, 0, 0));
        }

        #[test]
        fn test_xdp_sack_ack_loss_grows_by_bytes_acked() {
            // Cumulative ACKs skip ahead (ACKs lost): no retransmission,
            // slow start grows by the bytes ACKed, at most 2 MSS per ACK
            // (RFC 3465, L = 2).
            let mut c = sender(CongestionControl::Cubic, 40 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            c.ack(100, 2 * MSS, &[]);
            assert_eq!(c.cwnd(), 12 * MSS);
            assert_eq!(c.out(100), segs(10, 14));
            c.ack(104, 6 * MSS, &[]);
            assert_eq!(c.cwnd(), 14 * MSS);
            assert_eq!(c.out(104), segs(14, 20));
            c.ack(109, 10 * MSS, &[]);
            assert_eq!(c.cwnd(), 16 * MSS);
            assert_eq!(c.out(109), segs(20, 26));
            assert_eq!(c.s.recovery_stats(), stats(0, 0, 0, 0));
        }

        #[test]
        fn test_xdp_sack_fin_in_the_tail() {
            // The last segment and the FIN lost: the probe sends both again.
            let mut c = sender(CongestionControl::Cubic, 10 * MSS);
            c.s.close();
            let o = c.out_fin(0);
            assert_eq!(o.len(), 10);
            assert_eq!(o[9], (9 * MSS, MSS, true));
            for i in 1..=9 {
                c.ack(99 + i as i64, i * MSS, &[]);
            }
            // 1001 in flight: PTO 200 ms.
            assert_eq!(c.out_fin(307), []);
            assert_eq!(c.out_fin(308), [(9 * MSS, MSS, true)]);
            c.ack(408, 10 * MSS + 1, &[]);
            assert_eq!(c.s.state, State::FinWait2);
            assert_eq!(c.s.recovery_stats(), stats(1, 0, 0, 1));
        }

        #[test]
        fn test_xdp_sack_fin_hole_after_rto() {
            // The FIN alone lost, the probe too: the RTO resends the FIN.
            let mut c = sender(CongestionControl::Cubic, 2 * MSS);
            c.s.close();
            assert_eq!(c.out_fin(0), [(0, MSS, false), (MSS, MSS, true)]);
            c.ack(100, 2 * MSS, &[]);
            // Only the FIN out: PTO 200 + 200 ms, past the RTO (350); the
            // probe is the FIN alone (the data is ACKed).
            assert_eq!(c.out_fin(349), []);
            assert_eq!(c.out_fin(350), [(2 * MSS, 0, true)]);
            assert_eq!(c.out_fin(599), []);
            assert_eq!(c.out_fin(600), [(2 * MSS, 0, true)]);
            assert_eq!(c.phase(), Phase::Loss);
            c.ack(704, 2 * MSS + 1, &[]);
            assert_eq!(c.s.state, State::FinWait2);
        }

        #[test]
        fn test_xdp_no_sack_peer_newreno_fast_retransmit_once() {
            // A peer without SACK keeps the upstream NewReno path: the third
            // duplicate ACK resends SND.UNA's segment once, further
            // duplicates do not again; the SACK recovery is never created.
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            c.s.remote_has_sack = false;
            assert_eq!(c.out(0), segs(0, 10));
            c.ack(100, MSS, &[]);
            assert_eq!(c.out(100), segs(10, 12));
            c.ack(101, MSS, &[]);
            c.ack(102, MSS, &[]);
            assert_eq!(c.out(102), []);
            c.ack(103, MSS, &[]);
            assert_eq!(c.out(103), [seg(1)]);
            for t in 104..=110 {
                c.ack(t, MSS, &[]);
                assert!(!c.out(t).contains(&seg(1)), "at {t}");
            }
            assert!(c.s.rec.is_none());
            assert_eq!(c.s.recovery_stats(), RecoveryStats::default());
            // The partial ACK resends the next hole (patch 4).
            c.ack(203, 2 * MSS, &[]);
            assert!(c.out(203).contains(&seg(2)));
        }

        #[test]
        fn test_xdp_sack_hostile_blocks() {
            let mut c = sender(CongestionControl::Cubic, 30 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            let una = c.seq(0).0 as u32;
            let max = c.seq(10 * MSS).0 as u32;
            let bad: &[(u32, u32)] = &[
                // Beyond SND.MAX.
                (max, max + 1000),
                (una + 5000, max + 1),
                // Reversed, empty.
                (una + 5000, una + 3000),
                (una + 3000, una + 3000),
                // Across 2^31 from SND.UNA, either way.
                (una.wrapping_add(1 << 31), una.wrapping_add(3000)),
                (una.wrapping_add(3000), una.wrapping_add(1 << 31)),
                (una.wrapping_sub(1 << 31), una.wrapping_sub(1)),
                (0, u32::MAX),
                (u32::MAX, 0),
                (i32::MAX as u32, i32::MIN as u32),
            ];
            for (k, &b) in bad.iter().enumerate() {
                for _ in 0..3 {
                    c.ack_raw(100 + k as i64, c.seq(0), [Some(b), Some(b), None]);
                }
                assert_eq!(c.out(100 + k as i64), [], "{b:x?}");
                assert_eq!(c.phase(), Phase::Open, "{b:x?}");
            }
            assert!(c.s.rec.as_deref().unwrap().board.is_empty());
            // Covering SND.UNA: taken from SND.UNA on (and dropped as a
            // renege by the next ACK); no retransmission of SND.UNA's
            // segment (it is not below anything SACKed).
            c.ack_raw(
                120,
                c.seq(0),
                [Some((una.wrapping_sub(100), una + 3000)), None, None],
            );
            assert_eq!(c.out(120), []);
            c.ack(121, 0, &[]);
            assert_eq!(c.out(121), []);
            assert!(c.s.rec.as_deref().unwrap().board.is_empty());
            assert_eq!(c.s.recovery_stats(), stats(0, 0, 0, 0));
            // At exactly SND.MAX: valid.
            c.ack(122, 0, &[(9 * MSS, 10 * MSS)]);
            assert_eq!(c.s.rec.as_deref().unwrap().board.sacked(), MSS);
        }

        #[test]
        fn test_xdp_sack_ack_of_unsent_data_does_not_panic() {
            // The upstream check bounds an ACK by the send buffer, not by
            // SND.MAX: an ACK of data queued but never sent passed it, and
            // the SACK path's `snd_max - una` panicked.
            let mut c = sender(CongestionControl::Cubic, 20 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            c.ack(100, 15 * MSS, &[(16 * MSS, 17 * MSS)]);
            assert_eq!(c.s.local_seq_no, c.seq(15 * MSS));
            let o = c.out(100);
            assert_eq!(o.first(), Some(&seg(15)));
        }

        #[test]
        fn test_xdp_sack_random_blocks_never_panic() {
            // Random ACKs (within what the socket accepts) and SACK blocks
            // (near the flight or anywhere) over a long transfer: nothing
            // panics, what is sent is the data at its sequence numbers
            // (`out` checks), SND.NXT stays within SND.UNA..SND.MAX.
            let mut c = sender(CongestionControl::Cubic, 400 * MSS);
            let mut rng = 0x2545_f491_4f6c_dd1du64;
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut una = 0usize;
            for t in 0..4000i64 {
                c.out(t);
                let (_, max) = c.nxt_max();
                if next() % 4 == 0 && una < max {
                    una += (next() as usize % (max - una + 1)).min(3 * MSS);
                }
                let mut ranges = [None; 3];
                for r in ranges.iter_mut() {
                    let v = next();
                    *r = match v % 5 {
                        0 => None,
                        1 => Some((next() as u32, next() as u32)),
                        _ => {
                            let l = una + (v >> 8) as usize % (max - una + 2 * MSS + 1);
                            let len = (v >> 40) as usize % (4 * MSS);
                            Some((c.seq(l).0 as u32, c.seq(l + len).0 as u32))
                        }
                    };
                }
                let ack = c.seq(una);
                c.ack_raw(t, ack, ranges);
                let s = &c.s;
                assert!(s.local_seq_no <= s.remote_last_seq);
                assert!(s.remote_last_seq <= s.snd_max_seq());
            }
        }

        #[test]
        fn test_xdp_sack_reused_socket_starts_afresh() {
            // The engine reuses sockets: `reset` kept the recovery state with
            // its sequence numbers at zero, which lie above half the ISNs a
            // new connection can take; its first ACK then entered fast
            // recovery and resent data the peer had.
            let mut c = sender(CongestionControl::Cubic, 20 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            c.ack(100, 3 * MSS, &[(4 * MSS, 5 * MSS)]);
            assert!(c.s.rec.is_some());
            c.s.reset();
            assert!(c.s.rec.is_none());
            let Conn { s, .. } = c;
            let mut c = establish(
                s,
                CongestionControl::Cubic,
                20 * MSS,
                TcpSeqNumber(-100_000),
            );
            assert_eq!(c.out(0), segs(0, 10));
            c.ack(100, MSS, &[]);
            assert_eq!(c.out(100), segs(10, 12));
            assert_eq!(c.phase(), Phase::Open);
            assert_eq!(c.s.recovery_stats(), stats(0, 0, 0, 0));
        }

        /// xdpstack patch 17 (ECN): RFC 3168 for connections a peer opens
        /// asking for it, scripted segment by segment.
        mod ecn {
            use super::*;
            use crate::wire::{IpEcn, TcpEcn};

            /// An ECN-setup SYN's flags (RFC 3168 §6.1.1).
            const SETUP: TcpEcn = TcpEcn {
                ece: true,
                cwr: true,
                ip: IpEcn::NotEct,
            };
            const ECT0: TcpEcn = TcpEcn {
                ece: false,
                cwr: false,
                ip: IpEcn::Ect0,
            };
            const ECT0_CWR: TcpEcn = TcpEcn {
                ece: false,
                cwr: true,
                ip: IpEcn::Ect0,
            };

            /// A listening socket (ECN `enabled` or not) takes a SYN with
            /// `syn`; returns it and its SYN-ACK's ECN bits.
            fn syn_ack(enabled: bool, syn: TcpEcn) -> (TestSocket, TcpEcn) {
                let mut s = socket_listen();
                s.set_ecn_enabled(enabled);
                send!(
                    s,
                    TcpRepr {
                        control: TcpControl::Syn,
                        seq_number: REMOTE_SEQ,
                        ack_number: None,
                        sack_permitted: true,
                        ecn: syn,
                        ..SEND_TEMPL
                    }
                );
                let mut got = None;
                recv(&mut s, Instant::from_millis(0), |r| {
                    let r = r.unwrap();
                    assert_eq!(r.control, TcpControl::Syn);
                    got = Some(r.ecn);
                });
                (s, got.unwrap())
            }

            #[test]
            fn test_xdp_ecn_negotiation() {
                // On by default, as Linux's tcp_ecn = 2.
                assert!(socket().ecn_enabled());
                // ECE and CWR in the SYN: ECE, not CWR, in the SYN-ACK,
                // which is not ECN-capable itself.
                let (mut s, e) = syn_ack(true, SETUP);
                assert_eq!(
                    e,
                    TcpEcn {
                        ece: true,
                        cwr: false,
                        ip: IpEcn::NotEct
                    }
                );
                assert!(s.ecn_negotiated());
                assert_eq!(s.recovery_stats().ecn_negotiated, 1);
                // Negotiated per connection; the setting and the counter
                // outlive a reset (the engine reuses sockets).
                s.reset();
                assert!(!s.ecn_negotiated());
                assert!(s.ecn_enabled());
                assert_eq!(s.take_recovery_stats().ecn_negotiated, 1);
                assert_eq!(s.recovery_stats().ecn_negotiated, 0);
                // Not asked; ECE or CWR alone (not an ECN-setup SYN); or
                // asked while disabled: no ECE in the SYN-ACK, no ECN.
                let ece_only = TcpEcn {
                    cwr: false,
                    ..SETUP
                };
                let cwr_only = TcpEcn {
                    ece: false,
                    ..SETUP
                };
                for (enabled, syn) in [
                    (true, TcpEcn::NONE),
                    (true, ece_only),
                    (true, cwr_only),
                    (false, SETUP),
                ] {
                    let (s, e) = syn_ack(enabled, syn);
                    assert_eq!(e, TcpEcn::NONE, "{enabled} {syn:?}");
                    assert!(!s.ecn_negotiated());
                    assert_eq!(s.recovery_stats(), RecoveryStats::default());
                }
            }

            /// As `sender`, with ECN negotiated (or not).
            fn ecn_sender(cc: CongestionControl, len: usize, ecn: bool) -> Conn {
                let mut c = sender(cc, len);
                c.s.ecn.ok = ecn;
                c
            }

            impl Conn {
                /// Everything the socket sends at `ms`: (offset, length,
                /// ECN bits).
                fn out_ecn(&mut self, ms: i64) -> Vec<(usize, usize, TcpEcn)> {
                    let mut sent = Vec::new();
                    self.s.cx.set_now(Instant::from_millis(ms));
                    for _ in 0..1000 {
                        let mut got = None;
                        let TestSocket { socket, cx } = &mut self.s;
                        socket
                            .dispatch(cx, |_, _, (_, tcp)| {
                                got = Some((tcp.seq_number, tcp.payload.len(), tcp.ecn));
                                Ok::<(), ()>(())
                            })
                            .unwrap();
                        let Some((seq, len, ecn)) = got else {
                            break;
                        };
                        sent.push((seq - self.base, len, ecn));
                    }
                    sent
                }

                /// The peer's ACK of `ack` (an offset) at `ms`, with ECE
                /// or not.
                fn ack_ece(&mut self, ms: i64, ack: usize, ece: bool) {
                    let ack = self.seq(ack);
                    send(
                        &mut self.s,
                        Instant::from_millis(ms),
                        &TcpRepr {
                            seq_number: REMOTE_SEQ + 1,
                            ack_number: Some(ack),
                            window_len: WIN,
                            ecn: TcpEcn {
                                ece,
                                ..TcpEcn::NONE
                            },
                            ..SEND_TEMPL
                        },
                    );
                }
            }

            /// Segments `i..j`, each with the ECN bits `ecn`.
            fn segs_ecn(i: usize, j: usize, ecn: TcpEcn) -> Vec<(usize, usize, TcpEcn)> {
                (i..j).map(|k| (k * MSS, MSS, ecn)).collect()
            }

            #[test]
            fn test_xdp_ecn_ect0_on_new_data_only() {
                let mut c = ecn_sender(CongestionControl::Cubic, 20 * MSS, true);
                // New data: ECT(0).
                assert_eq!(c.out_ecn(0), segs_ecn(0, 10, ECT0));
                // Segment 0 lost: its retransmission is Not-ECT (RFC 3168
                // §6.1.5); new data sent during the recovery is ECT(0).
                c.ack(100, 0, &[(MSS, 2 * MSS)]);
                c.ack(101, 0, &[(MSS, 3 * MSS)]);
                c.ack(102, 0, &[(MSS, 4 * MSS)]);
                assert_eq!(c.phase(), Phase::Recovery);
                assert_eq!(c.out_ecn(102), [(0, MSS, TcpEcn::NONE)]);
                // (The recovery reduced the window: the first new data
                // after it carries CWR, as Linux's `tcp_init_cwnd_reduction`
                // queues it for any reduction.)
                c.ack(103, 0, &[(MSS, 5 * MSS)]);
                assert_eq!(c.out_ecn(103), segs_ecn(10, 11, ECT0_CWR));
                // All of it acknowledged, the rest sent; the tail loss probe
                // resends the last segment: Not-ECT.
                c.ack(200, 11 * MSS, &[]);
                assert_eq!(c.phase(), Phase::Open);
                let out = c.out_ecn(200);
                assert!(!out.is_empty());
                assert!(out.iter().all(|&(_, _, e)| e == ECT0), "{out:?}");
                let nxt = c.nxt_max().0;
                c.ack(210, nxt, &[]);
                let out = c.out_ecn(210);
                assert_eq!(out.last().map(|o| o.0), Some(19 * MSS));
                assert!(out.iter().all(|&(_, _, e)| e == ECT0), "{out:?}");
                let pto = (c.s.tlp_deadline().unwrap().total_micros() + 999) / 1000;
                assert!(pto < c.rto_at().unwrap());
                let probe = c.out_ecn(pto);
                assert_eq!(probe, [(19 * MSS, MSS, TcpEcn::NONE)]);
                // An RTO's retransmissions are Not-ECT too.
                let rto = c.rto_at().unwrap();
                let again = c.out_ecn(rto);
                assert!(!again.is_empty());
                assert!(
                    again.iter().all(|&(_, _, e)| e == TcpEcn::NONE),
                    "{again:?}"
                );
                // A pure ACK (of the peer's data) is Not-ECT.
                let all = c.seq(20 * MSS);
                send(
                    &mut c.s,
                    Instant::from_millis(rto + 1),
                    &TcpRepr {
                        seq_number: REMOTE_SEQ + 1,
                        ack_number: Some(all),
                        window_len: WIN,
                        payload: &b"x"[..],
                        ..SEND_TEMPL
                    },
                );
                assert_eq!(c.out_ecn(rto + 20), [(20 * MSS, 0, TcpEcn::NONE)]);
            }

            #[test]
            fn test_xdp_ecn_nothing_without_negotiation() {
                let mut c = ecn_sender(CongestionControl::Reno, 40 * MSS, false);
                let mut twin = ecn_sender(CongestionControl::Reno, 40 * MSS, false);
                assert_eq!(c.out_ecn(0), segs_ecn(0, 10, TcpEcn::NONE));
                assert_eq!(twin.out_ecn(0), segs_ecn(0, 10, TcpEcn::NONE));
                // ECE from a peer that did not negotiate ECN means nothing:
                // the window grows as without it, no CWR.
                for i in 1..=10 {
                    c.ack_ece(100 + i as i64, i * MSS, true);
                    twin.ack_ece(100 + i as i64, i * MSS, false);
                    assert_eq!(c.phase(), Phase::Open);
                    assert_eq!(c.cwnd(), twin.cwnd());
                    let out = c.out_ecn(100 + i as i64);
                    assert_eq!(out, twin.out_ecn(100 + i as i64));
                    assert!(out.iter().all(|&(_, _, e)| e == TcpEcn::NONE));
                }
                assert_eq!(c.s.recovery_stats(), stats(0, 0, 0, 0));
            }

            #[test]
            fn test_xdp_ecn_ece_reduces_once_per_window_and_sends_cwr() {
                let mut c = ecn_sender(CongestionControl::Reno, 60 * MSS, true);
                assert_eq!(c.out_ecn(0), segs_ecn(0, 10, ECT0));
                // The first ECE: the window is reduced as for a loss (Reno:
                // ssthresh = 10 segments in flight / 2), by PRR, nothing
                // resent; the next new segment carries CWR.
                c.ack_ece(100, MSS, true);
                assert_eq!(c.phase(), Phase::Cwr);
                assert_eq!(c.ssthresh(), 5 * MSS);
                assert_eq!(c.s.recovery_stats().ecn_reductions, 1);
                // PRR: ceil(1000 · 5000 / 10000) = 500 bytes, one segment.
                assert_eq!(c.out_ecn(100), segs_ecn(10, 11, ECT0_CWR));
                // More ECEs from the same window (the receiver has not seen
                // the CWR): no second reduction; PRR sends one segment per
                // two delivered, without CWR.
                let mut sent = 1;
                for i in 2..=10 {
                    c.ack_ece(100 + i as i64, i * MSS, true);
                    for (off, len, e) in c.out_ecn(100 + i as i64) {
                        assert_eq!((off, len, e), (off, MSS, ECT0), "at {i}");
                        sent += 1;
                    }
                }
                assert_eq!(c.s.recovery_stats().ecn_reductions, 1);
                // The reduction point (SND.MAX at the first ECE) is
                // acknowledged: CWR state over, cwnd = ssthresh, and PRR
                // sent half of what was delivered.
                assert_eq!(c.phase(), Phase::Open);
                assert_eq!(c.cwnd(), 5 * MSS);
                assert_eq!(sent, 5);
                // An ACK past the CWR segment with ECE: the receiver saw
                // CWR and saw congestion again; a second reduction, and CWR
                // on the next new data again.
                c.ack_ece(200, 11 * MSS, true);
                assert_eq!(c.phase(), Phase::Cwr);
                assert_eq!(c.s.recovery_stats().ecn_reductions, 2);
                let out = c.out_ecn(200);
                assert_eq!(out.first().map(|o| o.2), Some(ECT0_CWR), "{out:?}");
                assert!(out[1..].iter().all(|o| o.2 == ECT0));
                // Never a retransmission nor a fast recovery.
                assert_eq!(c.s.recovery_stats().retransmits, 0);
                assert_eq!(c.s.recovery_stats().recoveries, 0);
            }

            #[test]
            fn test_xdp_ecn_loss_during_cwr_is_one_reduction() {
                let mut c = ecn_sender(CongestionControl::Reno, 60 * MSS, true);
                assert_eq!(c.out_ecn(0), segs_ecn(0, 10, ECT0));
                c.ack_ece(100, MSS, true);
                assert_eq!(c.phase(), Phase::Cwr);
                assert_eq!(c.out_ecn(100), segs_ecn(10, 11, ECT0_CWR));
                // Segment 1 lost: three SACKed above it. Fast recovery,
                // the retransmission goes (Not-ECT), ssthresh unchanged.
                c.ack(101, MSS, &[(2 * MSS, 3 * MSS)]);
                c.ack(102, MSS, &[(2 * MSS, 4 * MSS)]);
                assert_eq!(c.phase(), Phase::Cwr);
                c.ack(103, MSS, &[(2 * MSS, 5 * MSS)]);
                assert_eq!(c.phase(), Phase::Recovery);
                assert_eq!(c.ssthresh(), 5 * MSS);
                let out = c.out_ecn(103);
                assert_eq!(out.first(), Some(&(MSS, MSS, TcpEcn::NONE)), "{out:?}");
                let st = c.s.recovery_stats();
                assert_eq!(
                    (st.ecn_reductions, st.recoveries, st.retransmits),
                    (1, 1, 1)
                );
            }

            #[test]
            fn test_xdp_ecn_bbr_keeps_its_window_but_sends_cwr() {
                let mut c = ecn_sender(CongestionControl::Bbr, 40 * MSS, true);
                let mut twin = ecn_sender(CongestionControl::Bbr, 40 * MSS, true);
                assert_eq!(c.out_ecn(0), segs_ecn(0, 10, ECT0));
                twin.out_ecn(0);
                c.ack_ece(100, MSS, true);
                twin.ack_ece(100, MSS, false);
                // BBR v1 (as Linux's) ignores ECE for its model: no CWR state,
                // the window as without ECE; the receiver is still told.
                assert_eq!(c.phase(), Phase::Open);
                assert_eq!(c.cwnd(), twin.cwnd());
                assert_eq!(c.s.recovery_stats().ecn_reductions, 0);
                let out = c.out_ecn(100);
                assert_eq!(out.len(), twin.out_ecn(100).len());
                assert_eq!(out.first().map(|o| o.2), Some(ECT0_CWR), "{out:?}");
                assert!(out[1..].iter().all(|o| o.2 == ECT0));
            }

            #[test]
            fn test_xdp_ecn_without_sack_reduces_and_sends_cwr() {
                let mut c = ecn_sender(CongestionControl::Reno, 40 * MSS, true);
                c.s.remote_has_sack = false;
                assert_eq!(c.out_ecn(0), segs_ecn(0, 10, ECT0));
                c.ack_ece(100, MSS, true);
                assert_eq!(c.ssthresh(), 5 * MSS);
                assert_eq!(c.s.recovery_stats().ecn_reductions, 1);
                // Reno deflates to ssthresh at the next ACK of new data.
                c.ack_ece(101, 2 * MSS, true);
                assert_eq!(c.cwnd(), 5 * MSS);
                assert_eq!(c.s.recovery_stats().ecn_reductions, 1);
                // 8 segments in flight, above the window: nothing yet.
                assert_eq!(c.out_ecn(101), []);
                for i in 3..=6 {
                    c.ack_ece(100 + i as i64, i * MSS, true);
                }
                // 4 in flight below 5: the first new segment carries CWR.
                let out = c.out_ecn(106);
                assert_eq!(out.first().map(|o| o.2), Some(ECT0_CWR), "{out:?}");
                assert_eq!(c.s.recovery_stats().ecn_reductions, 1);
            }

            /// A data segment from the peer at offset `off` of its stream.
            fn data(
                s: &mut TestSocket,
                ms: i64,
                off: usize,
                ecn: TcpEcn,
            ) -> Option<TcpRepr<'static>> {
                send(
                    s,
                    Instant::from_millis(ms),
                    &TcpRepr {
                        seq_number: REMOTE_SEQ + 1 + off,
                        ack_number: Some(LOCAL_SEQ + 1),
                        payload: &b"abc"[..],
                        ecn,
                        ..SEND_TEMPL
                    },
                )
            }

            /// The ACK the socket sends at `ms`: (ACK offset, ECE).
            fn ack_out(s: &mut TestSocket, ms: i64) -> (usize, bool) {
                let mut got = None;
                recv(s, Instant::from_millis(ms), |r| {
                    let r = r.unwrap();
                    assert_eq!(r.ecn.ip, IpEcn::NotEct);
                    assert!(!r.ecn.cwr);
                    got = Some((r.ack_number.unwrap() - (REMOTE_SEQ + 1), r.ecn.ece));
                });
                got.unwrap()
            }

            #[test]
            fn test_xdp_ecn_ce_echoed_until_cwr() {
                const CE: TcpEcn = TcpEcn {
                    ece: false,
                    cwr: false,
                    ip: IpEcn::Ce,
                };
                let mut s = socket_established();
                s.ecn.ok = true;
                s.set_ack_delay(Some(ACK_DELAY_DEFAULT));
                // An ECT(0) segment: a delayed ACK without ECE.
                assert_eq!(data(&mut s, 0, 0, ECT0), None);
                recv_nothing!(s);
                assert_eq!(ack_out(&mut s, 11), (3, false));
                // A CE-marked one: ACKed at once, with ECE.
                let ack = data(&mut s, 20, 3, CE).unwrap();
                assert!(ack.ecn.ece);
                assert_eq!(ack.ack_number, Some(REMOTE_SEQ + 1 + 6));
                // ECE on every ACK after it until a segment with CWR.
                assert_eq!(data(&mut s, 30, 6, ECT0), None);
                assert_eq!(ack_out(&mut s, 41), (9, true));
                assert_eq!(data(&mut s, 50, 9, ECT0), None);
                assert_eq!(ack_out(&mut s, 61), (12, true));
                assert_eq!(data(&mut s, 70, 12, ECT0_CWR), None);
                assert_eq!(ack_out(&mut s, 81), (15, false));
                // CWR and CE together: the echo starts again.
                let both = TcpEcn { cwr: true, ..CE };
                assert!(data(&mut s, 90, 15, both).unwrap().ecn.ece);
                assert_eq!(s.recovery_stats().ecn_ce_received, 2);

                // Not negotiated: CE changes nothing (a delayed ACK, no ECE).
                let mut s = socket_established();
                s.set_ack_delay(Some(ACK_DELAY_DEFAULT));
                assert_eq!(data(&mut s, 0, 0, CE), None);
                recv_nothing!(s);
                assert_eq!(ack_out(&mut s, 11), (3, false));
                assert_eq!(s.recovery_stats(), RecoveryStats::default());
            }
        }
        // xdpstack patch 18 (path MTU): an ICMP "fragmentation needed" /
        // "packet too big" for the flight.

        /// The IP MTU whose send MSS is `mss` on `TUPLE`'s family.
        fn mtu_for(mss: usize) -> usize {
            let ip = match TUPLE.local.addr {
                #[cfg(feature = "proto-ipv4")]
                IpAddress::Ipv4(_) => crate::wire::IPV4_HEADER_LEN,
                #[cfg(feature = "proto-ipv6")]
                IpAddress::Ipv6(_) => crate::wire::IPV6_HEADER_LEN,
            };
            mss + ip + TCP_HEADER_LEN
        }

        impl Conn {
            /// The ICMP message quoting the segment at offset `off`.
            fn too_big(&mut self, off: usize, mtu: usize) -> PathMtu {
                let seq = self.seq(off);
                self.s.on_packet_too_big(seq, mtu)
            }
        }

        /// Segments of `len` bytes covering `from..end`, the last cut at `end`.
        fn sized(from: usize, end: usize, len: usize) -> Vec<(usize, usize)> {
            (from..end)
                .step_by(len)
                .map(|o| (o, len.min(end - o)))
                .collect()
        }

        #[test]
        fn test_xdp_pmtu_sack_resends_the_flight_at_the_new_size() {
            let mut c = sender(CongestionControl::Cubic, 40 * MSS);
            assert_eq!(c.out(0), segs(0, 10));
            let (cwnd, ssthresh) = (c.cwnd(), c.ssthresh());
            // Segment 1 got through before the path changed (SACKed).
            c.ack(100, 0, &[(MSS, 2 * MSS)]);
            assert_eq!(c.out(100), []);
            // A quote outside SND.UNA..=SND.MAX changes nothing.
            for seq in [c.seq(0) - 1, c.seq(10 * MSS) + 1] {
                assert_eq!(
                    c.s.on_packet_too_big(seq, mtu_for(600)),
                    PathMtu::OutOfWindow
                );
            }
            // Nor an MTU that would not lower the MSS.
            assert_eq!(c.too_big(0, mtu_for(MSS)), PathMtu::NotLower);
            assert_eq!((c.s.remote_mss(), c.phase()), (MSS, Phase::Open));
            // The router quotes segment 0: MSS 600 from now on.
            assert_eq!(c.too_big(0, mtu_for(600)), PathMtu::Lowered(600));
            assert_eq!(c.s.remote_mss(), 600);
            assert_eq!(c.phase(), Phase::Loss);
            // At once: every unSACKed byte in flight again, in segments of
            // 600 (the SACKed segment 1 skipped), as much as the window
            // allows (nothing counts in flight any more): 9 of the 10
            // segments, 9000 bytes; the window of 10,000 then lets 1000
            // bytes of new data out (the SACKed segment left the network):
            // one segment of 600, the other 400 wait (patch 16: no runt
            // while data is in flight and more is queued).
            let mut want = sized(0, MSS, 600);
            want.extend(sized(2 * MSS, 10 * MSS, 600));
            let resent = want.len() as u32;
            want.extend(sized(10 * MSS, 10 * MSS + 600, 600));
            assert_eq!(c.out(100), want);
            // No congestion signal: window, threshold, counters.
            assert_eq!((c.cwnd(), c.ssthresh()), (cwnd, ssthresh));
            assert_eq!(c.s.recovery_stats(), stats(resent, 0, 0, 0));
            // The peer gets it all: the loss state ends, new data goes in
            // segments of 600.
            c.ack(200, 10 * MSS, &[]);
            assert_eq!(c.phase(), Phase::Open);
            let out = c.out(200);
            assert!(!out.is_empty());
            assert!(out.iter().all(|&(_, len)| len == 600), "{out:?}");
            assert_eq!(out[0].0, 10 * MSS + 600);
            // A second message for the same MTU, or for data now
            // acknowledged, changes nothing.
            assert_eq!(c.too_big(10 * MSS, mtu_for(600)), PathMtu::NotLower);
            assert_eq!(c.too_big(0, mtu_for(500)), PathMtu::OutOfWindow);
        }

        #[test]
        fn test_xdp_pmtu_no_sack_peer_goes_back_to_snd_una() {
            let mut c = sender(CongestionControl::Reno, 40 * MSS);
            c.s.remote_has_sack = false;
            assert_eq!(c.out(0), segs(0, 10));
            // Slow start: a window of 12 segments.
            c.ack(100, 2 * MSS, &[]);
            assert_eq!(c.out(100), segs(10, 14));
            let cwnd = c.cwnd();
            assert_eq!(cwnd, 12 * MSS);
            assert_eq!(c.too_big(5 * MSS, mtu_for(536)), PathMtu::Lowered(536));
            // SND.NXT back at SND.UNA, SND.MAX where it was; what the window
            // allows goes again at once, in segments of 536 (whole ones:
            // patch 16 holds the last 208 bytes of the window back).
            assert_eq!(c.nxt_max(), (2 * MSS, 14 * MSS));
            let out = c.out(100);
            assert_eq!(out, sized(2 * MSS, 2 * MSS + cwnd / 536 * 536, 536));
            assert_eq!(c.cwnd(), cwnd);
            assert!(c.s.rec.is_none());
        }

        #[test]
        fn test_xdp_pmtu_floor_and_closed_socket() {
            let mut c = sender(CongestionControl::Cubic, 4 * MSS);
            assert_eq!(c.out(0), segs(0, 4));
            // An absurd MTU lowers the MSS to the floor, never to zero.
            assert_eq!(c.too_big(0, 0), PathMtu::Lowered(MIN_REMOTE_MSS));
            let out = c.out(1);
            assert!(!out.is_empty());
            assert!(out.iter().all(|&(_, len)| len <= MIN_REMOTE_MSS));
            c.s.reset();
            assert_eq!(c.too_big(0, mtu_for(500)), PathMtu::OutOfWindow);
        }
    }

    /// A connection over a simulated path (virtual time): `rtt` split evenly
    /// between the two directions, a bottleneck of `rate` bits/s with an
    /// unbounded queue, no loss. The far end stands for a Linux peer with
    /// autotuned buffers (6 MiB receive, 4 MiB send). Returns the virtual
    /// time until `total` bytes arrived intact, and the largest storage the
    /// near end (the stack) used for the direction measured.
    mod xdp_path {
        use super::*;
        use std::collections::VecDeque;

        pub struct Policy {
            /// Fixed storage (today's `--tcp-buf`), or autotuning.
            pub fixed: Option<usize>,
        }

        std::thread_local! {
            /// The congestion control both ends use (cubic unless a test
            /// sets another).
            pub static CC: core::cell::Cell<CongestionControl> =
                const { core::cell::Cell::new(CongestionControl::Cubic) };
        }

        const INIT: usize = 64 << 10;
        const WMEM_MAX: usize = 4 << 20;
        const RMEM_MAX: usize = 6 << 20;

        /// The stack's size classes: powers of two from 4 KiB, the top one
        /// the maximum itself.
        fn class(n: usize, max: usize) -> usize {
            n.max(4096).next_power_of_two().min(max)
        }

        struct Pkt {
            at: Instant,
            ip: IpRepr,
            tcp: TcpRepr<'static>,
            payload: Vec<u8>,
        }

        struct Link {
            q: VecDeque<Pkt>,
            free_at: Instant,
            delay: Duration,
            bits_per_s: u64,
            /// Drop one frame in `loss_1_in` (0: none), from a seeded
            /// xorshift so every run loses the same frames.
            loss_1_in: u64,
            rng: u64,
        }

        impl Link {
            fn send(&mut self, now: Instant, ip: IpRepr, tcp: &TcpRepr) {
                if self.loss_1_in > 0 {
                    self.rng ^= self.rng << 13;
                    self.rng ^= self.rng >> 7;
                    self.rng ^= self.rng << 17;
                    if self.rng % self.loss_1_in == 0 {
                        return;
                    }
                }
                let bytes = (tcp.buffer_len() + 40) as u64;
                let start = now.max(self.free_at);
                let done = start + Duration::from_micros(bytes * 8 * 1_000_000 / self.bits_per_s);
                self.free_at = done;
                self.q.push_back(Pkt {
                    at: done + self.delay,
                    ip,
                    tcp: detach(tcp),
                    payload: tcp.payload.to_vec(),
                });
            }
        }

        fn detach(t: &TcpRepr) -> TcpRepr<'static> {
            TcpRepr {
                src_port: t.src_port,
                dst_port: t.dst_port,
                control: t.control,
                seq_number: t.seq_number,
                ack_number: t.ack_number,
                window_len: t.window_len,
                window_scale: t.window_scale,
                max_seg_size: t.max_seg_size,
                sack_permitted: t.sack_permitted,
                sack_ranges: t.sack_ranges,
                timestamp: t.timestamp,
                ecn: Default::default(),
                payload: &[],
            }
        }

        fn endpoint(addr: IpvXAddress, rx: usize, tx: usize) -> TestSocket {
            let (mut iface, _, _) = crate::tests::setup(crate::phy::Medium::Ip);
            iface.update_ip_addrs(|a| {
                a.clear();
                a.push(IpCidr::new(addr.into(), 24)).unwrap();
            });
            let mut socket = Socket::new(
                SocketBuffer::new(vec![0u8; rx]),
                SocketBuffer::new(vec![0u8; tx]),
            );
            socket.set_congestion_control(CC.with(|c| c.get()));
            socket.set_nagle_enabled(false);
            TestSocket {
                socket,
                cx: iface.inner,
            }
        }

        fn deliver(to: &mut TestSocket, back: &mut Link, p: &Pkt, now: Instant) {
            let mut tcp = p.tcp;
            tcp.payload = &p.payload;
            to.cx.set_now(now);
            if !to.socket.accepts(&mut to.cx, &p.ip, &tcp) {
                return;
            }
            if let Some((ip, reply)) = to.socket.process(&mut to.cx, &p.ip, &tcp) {
                back.send(now, ip, &reply);
            }
        }

        fn drain(s: &mut TestSocket, link: &mut Link, now: Instant) {
            s.cx.set_now(now);
            for _ in 0..100_000 {
                let mut out = None;
                let TestSocket { socket, cx } = s;
                let _ = socket.dispatch(cx, |_, _, (ip, tcp)| {
                    out = Some((ip, detach(&tcp), tcp.payload.to_vec()));
                    Ok::<(), ()>(())
                });
                match out {
                    Some((ip, mut tcp, payload)) => {
                        tcp.payload = &payload;
                        link.send(now, ip, &tcp);
                    }
                    None => break,
                }
            }
        }

        fn poll_at(s: &mut TestSocket) -> Option<Instant> {
            let TestSocket { socket, cx } = s;
            match socket.poll_at(cx) {
                PollAt::Now => Some(Instant::ZERO),
                PollAt::Time(t) => Some(t),
                PollAt::Ingress => None,
            }
        }

        /// Linux's receive-buffer autotuning (`tcp_rcv_space_adjust`) as
        /// the stack would run it when the application reads.
        struct Drs {
            space: usize,
            read: usize,
            mark_read: usize,
            mark_at: Instant,
        }

        impl Drs {
            fn on_read(&mut self, s: &mut Socket, n: usize, now: Instant) {
                self.read += n;
                let Some(rtt) = s.smoothed_rtt() else { return };
                if now - self.mark_at < rtt {
                    return;
                }
                let copied = self.read - self.mark_read;
                if copied > self.space {
                    let mss = s.remote_mss();
                    let mut win = 2 * copied + 16 * mss;
                    if copied >= self.space + self.space / 4 {
                        if copied >= self.space + self.space / 2 {
                            win *= 2;
                        } else {
                            win += win / 2;
                        }
                    }
                    if win > s.recv_limit().unwrap_or(0) {
                        s.set_recv_limit(Some(win.min(RMEM_MAX)));
                    }
                    self.space = copied;
                }
                self.mark_read = self.read;
                self.mark_at = now;
            }
        }

        /// An echo (`bench bulk`, the `lossy` scenario): the far end sends
        /// `total` bytes, the stack (fixed buffers of `buf` bytes) sends back
        /// what it reads. Returns the virtual time until everything came back
        /// intact, or `f64::INFINITY` past `limit_s` virtual seconds.
        pub fn run_echo(
            buf: usize,
            total: usize,
            rtt_ms: u64,
            loss_1_in: u64,
            seed: u64,
            limit_s: i64,
        ) -> f64 {
            let mut srv = endpoint(LOCAL_ADDR, buf, buf);
            let mut cli = endpoint(REMOTE_ADDR, RMEM_MAX, WMEM_MAX);
            srv.listen(LISTEN_END).unwrap();
            {
                let TestSocket { socket, cx } = &mut cli;
                socket.connect(cx, LOCAL_END, REMOTE_PORT).unwrap();
            }
            let half = Duration::from_micros(rtt_ms * 500);
            let link = |rng| Link {
                q: VecDeque::new(),
                free_at: Instant::ZERO,
                delay: half,
                bits_per_s: 1_000_000_000,
                loss_1_in,
                rng,
            };
            let mut up = link(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x100_0000_01b3));
            let mut down = link(0x2545_f491_4f6c_dd1d ^ seed.wrapping_mul(0xcbf2_9ce4_8422_2325));
            let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
            let (mut sent, mut got) = (0usize, 0usize);
            let mut pending: Vec<u8> = Vec::new();
            let mut log: Vec<std::string::String> = Vec::new();
            let mut tmp = vec![0u8; 64 << 10];
            let mut now = Instant::ZERO;
            for _ in 0..100_000_000u64 {
                while up.q.front().is_some_and(|p| p.at <= now) {
                    let p = up.q.pop_front().unwrap();
                    if log.len() > 40 {
                        log.remove(0);
                    }
                    log.push(std::format!(
                        "{now} cli->srv seq {} ack {:?} win {} len {} {:?}",
                        p.tcp.seq_number,
                        p.tcp.ack_number,
                        p.tcp.window_len,
                        p.payload.len(),
                        p.tcp.control
                    ));
                    deliver(&mut srv, &mut down, &p, now);
                }
                while down.q.front().is_some_and(|p| p.at <= now) {
                    let p = down.q.pop_front().unwrap();
                    if log.len() > 40 {
                        log.remove(0);
                    }
                    log.push(std::format!(
                        "{now} srv->cli seq {} ack {:?} win {} len {} {:?}",
                        p.tcp.seq_number,
                        p.tcp.ack_number,
                        p.tcp.window_len,
                        p.payload.len(),
                        p.tcp.control
                    ));
                    deliver(&mut cli, &mut up, &p, now);
                }
                if sent < total && cli.may_send() {
                    sent += cli.send_slice(&data[sent..]).unwrap();
                }
                // The echo server: write back what it holds, then read more
                // only while it can write it back (back-pressure).
                loop {
                    if !pending.is_empty() && srv.may_send() {
                        let n = srv.send_slice(&pending).unwrap();
                        pending.drain(..n);
                    }
                    if !pending.is_empty() || !srv.can_recv() {
                        break;
                    }
                    let n = srv.recv_slice(&mut tmp).unwrap();
                    pending.extend_from_slice(&tmp[..n]);
                }
                while cli.can_recv() {
                    let n = cli.recv_slice(&mut tmp).unwrap();
                    assert_eq!(&tmp[..n], &data[got..got + n], "bytes differ at {got}");
                    got += n;
                }
                if got == total {
                    return now.total_micros() as f64 / 1e6;
                }
                if now.total_millis() > limit_s * 1000 {
                    if std::env::var("XDP_ECHO_DEBUG").is_ok() {
                        for (name, e) in [("srv", &srv), ("cli", &cli)] {
                            std::println!(
                                "{name}: state {} snd.una {} snd.nxt {} snd.max {:?} tx {} peer win {} cwnd {} timer {:?} rto {} | rcv {} rx {} win {} asm {} | dup {} recover {:?} pending {}",
                                e.state,
                                e.local_seq_no,
                                e.remote_last_seq,
                                e.snd_max,
                                e.tx_buffer.len(),
                                e.remote_win_len,
                                e.congestion_window(),
                                e.timer,
                                e.rtte.rto,
                                e.remote_seq_no + e.rx_buffer.len(),
                                e.rx_buffer.len(),
                                e.rx_window(),
                                e.assembler,
                                e.local_rx_dup_acks,
                                e.recover,
                                pending.len(),
                            );
                        }
                        std::println!("sent {sent} got {got} now {now}");
                        for l in &log {
                            std::println!("  {l}");
                        }
                    }
                    return f64::INFINITY;
                }
                drain(&mut srv, &mut down, now);
                drain(&mut cli, &mut up, now);
                let next = [
                    up.q.front().map(|p| p.at),
                    down.q.front().map(|p| p.at),
                    poll_at(&mut srv),
                    poll_at(&mut cli),
                ]
                .into_iter()
                .flatten()
                .min()
                .expect("nothing left to happen");
                now = now.max(next).max(now + Duration::from_micros(1));
            }
            panic!("no progress");
        }

        /// `upload`: the far end sends to the stack; else the stack sends.
        pub fn run(
            policy: Policy,
            upload: bool,
            total: usize,
            rtt_ms: u64,
            rate: u64,
        ) -> (f64, usize) {
            run_lossy(policy, upload, total, rtt_ms, rate, 0, 600)
        }

        /// As `run`, losing one frame in `loss_1_in` each way; gives up
        /// (returns `f64::INFINITY`) after `limit_s` virtual seconds.
        pub fn run_lossy(
            policy: Policy,
            upload: bool,
            total: usize,
            rtt_ms: u64,
            rate: u64,
            loss_1_in: u64,
            limit_s: i64,
        ) -> (f64, usize) {
            let (srv_rx, srv_tx) = match policy.fixed {
                Some(b) => (b, b),
                None => (0, 0),
            };
            let mut srv = endpoint(LOCAL_ADDR, srv_rx, srv_tx);
            let mut cli = endpoint(REMOTE_ADDR, RMEM_MAX, WMEM_MAX);
            if policy.fixed.is_none() {
                srv.set_recv_window_max(Some(RMEM_MAX));
                srv.set_recv_limit(Some(INIT));
            }
            srv.listen(LISTEN_END).unwrap();
            {
                let TestSocket { socket, cx } = &mut cli;
                socket.connect(cx, LOCAL_END, REMOTE_PORT).unwrap();
            }
            let half = Duration::from_micros(rtt_ms * 500);
            let mut up = Link {
                q: VecDeque::new(),
                free_at: Instant::ZERO,
                delay: half,
                bits_per_s: rate,
                loss_1_in,
                rng: 0x9e37_79b9_7f4a_7c15,
            };
            let mut down = Link {
                q: VecDeque::new(),
                free_at: Instant::ZERO,
                delay: half,
                bits_per_s: rate,
                loss_1_in,
                rng: 0x2545_f491_4f6c_dd1d,
            };
            let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
            let (mut sent, mut got) = (0usize, 0usize);
            let mut peak = 0usize;
            let mut drs = Drs {
                space: INIT.min(10 * 1460),
                read: 0,
                mark_read: 0,
                mark_at: Instant::ZERO,
            };
            let mut buf = vec![0u8; 256 << 10];
            let mut now = Instant::ZERO;
            for _ in 0..100_000_000u64 {
                while up.q.front().is_some_and(|p| p.at <= now) {
                    let p = up.q.pop_front().unwrap();
                    if policy.fixed.is_none() {
                        let mut t = p.tcp;
                        t.payload = &p.payload;
                        if let Some(need) = srv.recv_storage_needed(t.seq_number, t.payload.len()) {
                            let cap = class(need.max(2 * srv.recv_capacity()), RMEM_MAX);
                            srv.replace_recv_storage(vec![0u8; cap]).unwrap();
                        }
                    }
                    deliver(&mut srv, &mut down, &p, now);
                }
                while down.q.front().is_some_and(|p| p.at <= now) {
                    let p = down.q.pop_front().unwrap();
                    deliver(&mut cli, &mut up, &p, now);
                }
                let (tx, rx) = if upload {
                    (&mut cli, &mut srv)
                } else {
                    (&mut srv, &mut cli)
                };
                // The sender's application writes what fits.
                if sent < total && tx.may_send() {
                    let want = total - sent;
                    if !upload && policy.fixed.is_none() {
                        let target = (2 * tx.congestion_window().min(tx.send_window()))
                            .clamp(INIT, WMEM_MAX);
                        let queued = tx.send_queue();
                        if queued + want > tx.send_capacity() && tx.send_capacity() < target {
                            let cap = class((queued + want).min(target), WMEM_MAX);
                            if cap > tx.send_capacity() {
                                tx.replace_send_storage(vec![0u8; cap]).unwrap();
                            }
                        }
                    }
                    sent += tx.send_slice(&data[sent..]).unwrap();
                }
                // The receiver's application reads everything.
                while rx.can_recv() {
                    let n = rx.recv_slice(&mut buf).unwrap();
                    assert_eq!(&buf[..n], &data[got..got + n], "bytes differ at {got}");
                    got += n;
                    if upload && policy.fixed.is_none() {
                        drs.on_read(&mut rx.socket, n, now);
                    }
                }
                if now.total_millis() > limit_s * 1000 {
                    return (f64::INFINITY, peak);
                }
                let used = if upload {
                    srv.recv_capacity()
                } else {
                    srv.send_capacity()
                };
                peak = peak.max(used);
                if got == total {
                    return (now.total_micros() as f64 / 1e6, peak);
                }
                drain(&mut srv, &mut down, now);
                drain(&mut cli, &mut up, now);
                let next = [
                    up.q.front().map(|p| p.at),
                    down.q.front().map(|p| p.at),
                    poll_at(&mut srv),
                    poll_at(&mut cli),
                ]
                .into_iter()
                .flatten()
                .min()
                .expect("nothing left to happen");
                now = now.max(next).max(now + Duration::from_micros(1));
            }
            panic!("no progress");
        }
    }

    #[test]
    fn test_xdp_path_autotuned_buffers_fill_a_long_path() {
        // 16 MiB over 50 ms RTT, 1 Gbit/s: with 64 KiB buffers a round trip
        // carries 64 KiB (about 12.8 s); grown buffers fill the path.
        const MIB: usize = 1 << 20;
        let fixed_down = xdp_path::run(
            xdp_path::Policy {
                fixed: Some(64 << 10),
            },
            false,
            16 * MIB,
            50,
            1_000_000_000,
        );
        let auto_down = xdp_path::run(
            xdp_path::Policy { fixed: None },
            false,
            16 * MIB,
            50,
            1_000_000_000,
        );
        let fixed_up = xdp_path::run(
            xdp_path::Policy {
                fixed: Some(64 << 10),
            },
            true,
            16 * MIB,
            50,
            1_000_000_000,
        );
        let auto_up = xdp_path::run(
            xdp_path::Policy { fixed: None },
            true,
            16 * MIB,
            50,
            1_000_000_000,
        );
        std::println!(
            "16 MiB, 50 ms RTT, 1 Gbit/s: download fixed 64 KiB {:.2} s, autotuned {:.2} s (send storage peak {} KiB); upload fixed {:.2} s, autotuned {:.2} s (receive storage peak {} KiB)",
            fixed_down.0,
            auto_down.0,
            auto_down.1 >> 10,
            fixed_up.0,
            auto_up.0,
            auto_up.1 >> 10
        );
        assert!(auto_down.0 * 8.0 < fixed_down.0);
        assert!(auto_up.0 * 8.0 < fixed_up.0);
        assert!(auto_down.1 <= 4 * MIB && auto_up.1 <= 8 * MIB);
    }

    /// Not a regression test: `XDP_PATH_REPORT=1 cargo test --lib --features
    /// socket-tcp-cubic,socket-tcp-reno xdp_path_report -- --nocapture`
    /// prints the transfer times the design quotes (sizes from
    /// `XDP_PATH_MIB`, default 100).
    /// Not a regression test: `XDP_ECHO_REPORT=1 cargo test --lib --features
    /// socket-tcp-cubic,socket-tcp-reno xdp_echo_report -- --nocapture`:
    /// the `lossy` echo (1% loss each way, 50 ms RTT) over 20 seeds, for
    /// fixed buffers of 64 KiB and 256 KiB (ARCHITECTURE.md's undiagnosed
    /// stalls with `--tcp-buf 262144`).
    #[test]
    fn test_xdp_echo_report() {
        if std::env::var("XDP_ECHO_REPORT").is_err() {
            return;
        }
        for buf in [64usize << 10, 256 << 10] {
            let mut times = Vec::new();
            for seed in 0..20u64 {
                times.push(xdp_path::run_echo(buf, 2 << 20, 50, 100, seed, 120));
            }
            std::println!(
                "echo 2 MiB, 1% loss, 50 ms, buffers {} KiB: {:?}",
                buf >> 10,
                times
                    .iter()
                    .map(|t| (t * 10.0).round() / 10.0)
                    .collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn test_xdp_path_report() {
        if std::env::var("XDP_PATH_REPORT").is_err() {
            return;
        }
        const MIB: usize = 1 << 20;
        let mib: usize = std::env::var("XDP_PATH_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        let ccs: &[CongestionControl] = if std::env::var("XDP_PATH_BBR").is_ok() {
            &[CongestionControl::Cubic, CongestionControl::Bbr]
        } else {
            &[CongestionControl::Cubic]
        };
        for &cc in ccs {
            xdp_path::CC.with(|c| c.set(cc));
            for (name, fixed) in [
                ("fixed 64 KiB", Some(64 << 10)),
                ("fixed 4 MiB", Some(4 << 20)),
                ("autotuned", None),
            ] {
                for &(loss, lmib) in &[(0u64, mib), (100u64, 20)] {
                    let (t, peak) = xdp_path::run_lossy(
                        xdp_path::Policy { fixed },
                        false,
                        lmib * MIB,
                        50,
                        1_000_000_000,
                        loss,
                        600,
                    );
                    std::println!(
                        "download {lmib} MiB, 50 ms RTT, loss 1/{loss}, {cc:?}: {name}: {t:.2} s (peak send storage {} KiB)",
                        peak >> 10
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod xdp_size {
    /// xdpstack patch: the engine prefetches a whole socket per segment
    /// (docs/ARCHITECTURE.md); it must stay within ten cache lines.
    #[test]
    fn socket_fits_ten_cache_lines() {
        let size = core::mem::size_of::<super::Socket<'static>>();
        std::println!("size_of tcp::Socket = {size}");
        assert!(size <= 640, "tcp::Socket is {size} bytes");
    }
}
