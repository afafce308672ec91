//! xdpstack patch 12 (issue 19): SACK-based loss recovery for the sender.
//!
//! Pure state, no `Context`: the socket feeds it every ACK (cumulative
//! point and SACK blocks) and every segment it sends, and asks it what to
//! retransmit and how much it may send. What it implements:
//!
//! - a SACK scoreboard (RFC 6675 §3-4): the SACKed ranges above SND.UNA,
//!   `IsLost` with DupThresh = 3, `pipe`, `NextSeg` rule 1 (the first lost
//!   hole above HighRxt);
//! - loss detection by time for original transmissions (RACK, RFC 8985
//!   §6.2, in the form it takes when the sequence order is the send order):
//!   a hole is lost once data sent a reordering window after it was
//!   delivered, which also detects a lost tail once a probe gets through;
//! - Proportional Rate Reduction (RFC 6937) during fast recovery;
//! - the loss state after a retransmission timeout (RFC 6675 §5.1, Linux's
//!   `TCP_CA_Loss`): every unSACKed byte below the recovery point is lost and
//!   is resent in slow start, SACKed data is not resent, and no fast
//!   recovery starts until the recovery point is acknowledged;
//! - a tail loss probe (RFC 8985 §7) timer: `PTO = 2·SRTT` (plus 200 ms when
//!   one segment is in flight), at most one probe per episode.
//!
//! It is boxed in the socket and created at the first data a SACK peer is
//! sent, so sockets of peers without SACK, and the idle pool, do not carry it.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::wire::TcpSeqNumber;

/// RFC 6675 DupThresh: SACKed segments above a hole before it is lost.
pub(super) const DUP_THRESH: usize = 3;

/// Fewest SACKed ranges remembered: the bound is this or one range per
/// `BLOCK_BYTES` in flight, whichever is more, at most `MAX_BLOCKS_CAP`.
/// A receiver reports ranges of whole segments, so a window where every
/// other segment was lost holds one range per two segments; the bound only
/// binds against a receiver that scatters its blocks on purpose. The
/// highest range is forgotten first, which at worst resends data the peer
/// holds. (xdpstack patch 29: it was a fixed 128. A 200 ms path's 4 MiB in
/// flight overflowing a bottleneck's queue left more holes than that; the
/// forgotten range, SACKed again by the next ACK, counted as delivered
/// again on every ACK, and BBR took a sample of 222 MB in 300 ms, 1.7 GB/s,
/// for the path's bandwidth: no pacing, no end to Startup.)
const MAX_BLOCKS: usize = 128;
const BLOCK_BYTES: usize = 1024;
const MAX_BLOCKS_CAP: usize = 8192;

/// Most entries in the send-time log; past it, consecutive sends merge
/// whatever their times (coarser loss detection by time, never wrong
/// retransmissions: merged entries carry the later time).
const MAX_SENDS: usize = 4096;

/// RTT samples of a round HyStart needs before it judges the round
/// (RFC 9406 N_RTT_SAMPLE).
const HYSTART_SAMPLES: u8 = 8;

/// HyStart++ (RFC 9406 §4.3): rounds of Conservative Slow Start before
/// congestion avoidance (CSS_ROUNDS).
const CSS_ROUNDS: u8 = 5;

/// Most retransmitted ranges one loss episode remembers for undo; past it
/// the episode cannot be undone.
const MAX_UNDO: usize = 256;

/// RFC 8985 §6.2 step 4: loss recoveries a reordering window grown by a
/// D-SACK lasts.
const REO_WND_PERSIST: u8 = 16;

/// What HyStart++ (RFC 9406) decided on an ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HyStart {
    /// Nothing changes.
    Keep,
    /// The round trip grew: Conservative Slow Start begins.
    EnterCss,
    /// During CSS the round trip fell below the baseline: the exit was
    /// spurious, slow start resumes.
    ResumeSlowStart,
    /// CSS_ROUNDS rounds of CSS are over: congestion avoidance.
    EndSlowStart,
}

/// Send times are kept as wrapping microseconds.
pub(super) type Micros = u32;

/// What the sender is doing about losses (Linux's `tcp_ca_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(super) enum Phase {
    /// No loss being repaired.
    Open,
    /// Fast recovery (RFC 6675 §5) with PRR, until `point` is acknowledged.
    Recovery,
    /// After a retransmission timeout, until `point` is acknowledged.
    Loss,
    /// xdpstack patch 17 (ECN): the window is being reduced because an ACK
    /// echoed congestion (RFC 3168 §6.1.2, Linux's `TCP_CA_CWR`): PRR as in
    /// fast recovery, nothing retransmitted, until `point` is acknowledged.
    Cwr,
}

/// The SACKed ranges above SND.UNA: sorted, disjoint, never touching.
#[derive(Debug, Default, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(super) struct Scoreboard {
    blocks: Vec<(TcpSeqNumber, TcpSeqNumber)>,
    sacked: usize,
}

impl Scoreboard {
    /// Bytes SACKed above SND.UNA.
    pub(super) fn sacked(&self) -> usize {
        self.sacked
    }

    /// Whether nothing above SND.UNA is SACKed.
    pub(super) fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The SACKed ranges, lowest first.
    #[cfg(test)]
    pub(super) fn blocks(&self) -> &[(TcpSeqNumber, TcpSeqNumber)] {
        &self.blocks
    }

    /// Forget everything (the peer reneged, or the connection ended).
    pub(super) fn clear(&mut self) {
        self.blocks.clear();
        self.sacked = 0;
        if self.blocks.capacity() > 8 {
            self.blocks = Vec::new();
        }
    }

    /// SND.UNA moved to `una`: drop what it covers. Returns the SACKed bytes
    /// it covered (delivered before, now only acknowledged cumulatively).
    pub(super) fn advance(&mut self, una: TcpSeqNumber) -> usize {
        let mut covered = 0;
        let mut drop = 0;
        for b in self.blocks.iter_mut() {
            if b.1 <= una {
                covered += b.1 - b.0;
                drop += 1;
            } else {
                if b.0 < una {
                    covered += una - b.0;
                    b.0 = una;
                }
                break;
            }
        }
        self.blocks.drain(..drop);
        self.sacked -= covered;
        covered
    }

    /// Record a SACK block `[left, right)` from an ACK whose cumulative
    /// point is `una`, with `snd_max` the highest sequence number sent.
    /// Returns the bytes newly SACKed. A block at or below `una` (a D-SACK,
    /// RFC 2883) or reaching past `snd_max` (invalid) changes nothing.
    pub(super) fn add(
        &mut self,
        una: TcpSeqNumber,
        snd_max: TcpSeqNumber,
        left: TcpSeqNumber,
        right: TcpSeqNumber,
    ) -> usize {
        if right <= left || right <= una || right > snd_max {
            return 0;
        }
        let left = left.max(una);
        // First block whose end reaches `left` (it may merge).
        let start = self.blocks.partition_point(|b| b.1 < left);
        // Blocks from `start` that begin at or before `right` merge.
        let mut end = start;
        let mut merged = (left, right);
        let mut held = 0;
        while end < self.blocks.len() && self.blocks[end].0 <= right {
            let b = self.blocks[end];
            held += b.1 - b.0;
            merged = (merged.0.min(b.0), merged.1.max(b.1));
            end += 1;
        }
        let new = (merged.1 - merged.0) - held;
        if new == 0 {
            return 0;
        }
        self.blocks
            .splice(start..end, core::iter::once(merged))
            .for_each(drop);
        self.sacked += new;
        let cap = ((snd_max - una) / BLOCK_BYTES).clamp(MAX_BLOCKS, MAX_BLOCKS_CAP);
        if self.blocks.len() > cap
            && let Some(b) = self.blocks.pop()
        {
            self.sacked -= b.1 - b.0;
        }
        new
    }

    /// RFC 6675 `IsLost`, for every hole at once: each unSACKed byte below
    /// the returned point has DupThresh SACKed ranges, or more than
    /// (DupThresh - 1) · MSS SACKed bytes, above it.
    pub(super) fn lost_below(&self, mss: usize) -> Option<TcpSeqNumber> {
        let mut bytes = 0;
        for (i, b) in self.blocks.iter().enumerate().rev() {
            bytes += b.1 - b.0;
            if self.blocks.len() - i >= DUP_THRESH || bytes > (DUP_THRESH - 1) * mss {
                return Some(b.0);
            }
        }
        None
    }

    /// The highest SACKed sequence number, if any.
    pub(super) fn highest(&self) -> Option<TcpSeqNumber> {
        self.blocks.last().map(|b| b.1)
    }

    /// Bytes in `[from, to)` that are not SACKed.
    pub(super) fn unsacked(&self, from: TcpSeqNumber, to: TcpSeqNumber) -> usize {
        if to <= from {
            return 0;
        }
        let mut n = to - from;
        let first = self.blocks.partition_point(|b| b.1 <= from);
        for b in &self.blocks[first..] {
            if b.0 >= to {
                break;
            }
            let (l, r) = (b.0.max(from), b.1.min(to));
            if r > l {
                n -= r - l;
            }
        }
        n
    }

    /// The first unSACKed range at or above `from` that begins below
    /// `limit`, cut at `limit`.
    pub(super) fn next_hole(
        &self,
        from: TcpSeqNumber,
        limit: TcpSeqNumber,
    ) -> Option<(TcpSeqNumber, TcpSeqNumber)> {
        let mut s = from;
        let first = self.blocks.partition_point(|b| b.1 <= from);
        for b in &self.blocks[first..] {
            if b.1 <= s {
                continue;
            }
            if b.0 <= s {
                s = b.1;
                continue;
            }
            if s >= limit {
                return None;
            }
            return Some((s, b.0.min(limit)));
        }
        if s < limit { Some((s, limit)) } else { None }
    }

    /// Whether `seq` lies in a SACKed range.
    pub(super) fn is_sacked(&self, seq: TcpSeqNumber) -> bool {
        let i = self.blocks.partition_point(|b| b.1 <= seq);
        self.blocks.get(i).is_some_and(|b| b.0 <= seq)
    }
}

/// The sender's loss-recovery state.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(super) struct Recovery {
    /// The SACKed ranges.
    pub(super) board: Scoreboard,
    /// Open, fast recovery or loss.
    pub(super) phase: Phase,
    /// RecoveryPoint: SND.MAX when the phase began.
    pub(super) point: TcpSeqNumber,
    /// HighRxt: everything below it that is lost was retransmitted.
    pub(super) high_rxt: TcpSeqNumber,
    /// Every unSACKed byte below it counts as lost (kept current by
    /// `detect`; the recovery point in `Loss`).
    pub(super) lost_end: TcpSeqNumber,
    /// Duplicate ACKs in a row (for peers that SACK nothing).
    pub(super) dup_acks: u8,
    /// PRR (RFC 6937): bytes delivered and sent since recovery began, the
    /// flight then, and ssthresh.
    prr_delivered: usize,
    prr_out: usize,
    recover_fs: usize,
    ssthresh: usize,
    /// Bytes PRR lets the sender send now.
    pub(super) allow: usize,
    /// Original transmissions, in order.
    sends: VecDeque<SendRec>,
    /// Delivery-rate estimation (Linux's `tcp_rate.c`): bytes delivered
    /// (acknowledged or SACKed) so far, when that count last grew, and the
    /// send time of the newest data delivered.
    delivered: u64,
    delivered_at: Micros,
    first_tx: Micros,
    /// xdpstack patch 28: while nonzero, the sender is application-limited
    /// until `delivered` passes this count (Linux's `tp->app_limited`):
    /// every original transmission meanwhile is marked so, and its rate
    /// samples say so.
    pub(super) app_limited_until: u64,
    /// Retransmissions (ranges and send times) still unacknowledged, in
    /// send order: RACK dates their delivery, and finds them lost when data
    /// sent a reordering window after them was delivered first.
    rtx: VecDeque<(TcpSeqNumber, TcpSeqNumber, Micros)>,
    /// Retransmissions found lost, to send again before any other hole.
    relost: VecDeque<(TcpSeqNumber, TcpSeqNumber)>,
    /// When the tail loss probe fires, if armed.
    pub(super) tlp_at: Option<crate::time::Instant>,
    /// A probe went out and nothing new was acknowledged since.
    pub(super) tlp_sent: bool,
    /// Pacing (patch 13): when the next data segment may go out.
    pub(super) pace_at: Option<crate::time::Instant>,
    /// RACK.xmit_ts: the send time of the newest data delivered.
    rack_ts: Option<Micros>,
    /// RACK.end_seq: the end of that data (of two sent at the same time, the
    /// one with the higher sequence number went after, RFC 8985 §6.2).
    rack_end: TcpSeqNumber,
    /// xdpstack patch 29: RACK.rtt, the round-trip time of that data (RFC
    /// 8985 §6.2 step 2), and the reordering timer (§6.3): when the oldest
    /// data sent before it, neither delivered nor found lost, is lost
    /// unless delivered first.
    rack_rtt: Micros,
    pub(super) reo_at: Option<Micros>,
    /// HyStart (patch 14): the delivered count that ends this round, the
    /// minimum RTT of the last round and of this one so far, and how many
    /// samples this one has.
    hs_round_end: u64,
    hs_last_min: u32,
    hs_cur_min: u32,
    hs_samples: u8,
    /// The delivery-rate sample of the last ACK.
    rate: Option<RateSample>,
    /// HyStart++ (RFC 9406): rounds in Conservative Slow Start so far, the
    /// current one included (0: not in CSS), and cssBaselineMinRtt.
    css: u8,
    css_base: u32,
    /// Undo (RFC 3708, Linux's `undo_marker`/`undo_retrans`): SND.UNA when
    /// the loss episode began (`None`: nothing to undo), the ranges it
    /// retransmitted that no D-SACK reported as duplicates yet, and whether
    /// it retransmitted anything.
    undo_marker: Option<TcpSeqNumber>,
    /// The controller's state before the episode's reduction.
    pub(super) prior: Option<super::congestion::Prior>,
    undo_rtx: Vec<(TcpSeqNumber, TcpSeqNumber)>,
    undo_sent: bool,
    /// F-RTO (RFC 5682, SACK-enhanced, as Linux's `tp->frto`): the timeout
    /// of this loss state may be spurious; `frto_new`: step 2b, new data
    /// goes out instead of retransmissions until the next ACK.
    pub(super) frto: bool,
    frto_new: bool,
    /// The end of the highest retransmission of this loss episode: data
    /// above it was never retransmitted.
    pub(super) ever_rtx: TcpSeqNumber,
    /// The last ACK delivered data sent before the timeout and never
    /// retransmitted (Linux's `FLAG_ORIG_SACK_ACKED`; only in `Loss`).
    orig_acked: bool,
    /// The last ACK carried a D-SACK block (RFC 2883).
    pub(super) dsack: bool,
    /// Bytes the last ACK SACKed newly.
    pub(super) sacked_now: usize,
    /// RACK (RFC 8985 §6.2): the minimum RTT seen, whether reordering was
    /// seen, the reordering window's multiplier, the recoveries it persists
    /// for, and SND.MAX when a D-SACK last grew it.
    min_rtt: u32,
    reo_seen: bool,
    reo_incr: u8,
    reo_persist: u8,
    dsack_round: Option<TcpSeqNumber>,
    /// Retransmissions, fast recoveries, timeouts and probes (counters for
    /// the owner).
    pub(super) stats: RecoveryStats,
    /// False for the counters a reset kept: the rest belongs to no
    /// connection and is rebuilt at the first use.
    pub(super) started: bool,
}

/// One original transmission (coalesced with those sent in the same
/// microsecond), with the delivery state when it was sent.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct SendRec {
    end: TcpSeqNumber,
    at: Micros,
    delivered: u64,
    delivered_at: Micros,
    first_tx: Micros,
    app_limited: bool,
}

/// A delivery-rate sample (Linux's `struct rate_sample`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RateSample {
    /// Bytes delivered over the interval.
    pub delivered: u64,
    /// The interval, in microseconds.
    pub interval_us: u32,
    /// Bytes delivered when the sampled data was sent (round counting).
    pub prior_delivered: u64,
    /// The round-trip time of the sampled data, in microseconds.
    pub rtt_us: u32,
    /// The sender had nothing more to send when the data went out: the rate
    /// may be below what the path carries.
    pub app_limited: bool,
}

impl RateSample {
    /// Bytes per second.
    pub fn rate(&self) -> u64 {
        self.delivered * 1_000_000 / u64::from(self.interval_us.max(1))
    }
}

/// Counters of what the loss recovery did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RecoveryStats {
    /// Segments retransmitted (fast recovery, loss state and probes).
    pub retransmits: u32,
    /// Fast recoveries entered.
    pub recoveries: u32,
    /// Retransmission timeouts.
    pub timeouts: u32,
    /// Tail loss probes sent.
    pub probes: u32,
    /// Slow starts HyStart ended (patch 14; HyStart++: after Conservative
    /// Slow Start).
    pub hystart_exits: u32,
    /// Window reductions undone because the loss was spurious: every
    /// retransmission of the episode D-SACKed, or F-RTO found the timeout
    /// spurious.
    pub undos: u32,
    /// xdpstack patch 17 (ECN): connections that negotiated ECN (RFC 3168).
    pub ecn_negotiated: u32,
    /// xdpstack patch 17 (ECN): segments received with the CE codepoint.
    pub ecn_ce_received: u32,
    /// xdpstack patch 17 (ECN): window reductions for an ECN-Echo (at most one
    /// a round trip).
    pub ecn_reductions: u32,
    /// xdpstack patch 20 (timestamps): segments PAWS dropped, their TSval
    /// older than TS.Recent (Linux's `PAWSEstabRejected`).
    pub paws_rejected: u32,
}

impl Recovery {
    pub(super) fn new(una: TcpSeqNumber) -> Self {
        Recovery {
            board: Scoreboard::default(),
            phase: Phase::Open,
            point: una,
            high_rxt: una,
            lost_end: una,
            dup_acks: 0,
            prr_delivered: 0,
            prr_out: 0,
            recover_fs: 0,
            ssthresh: usize::MAX,
            allow: 0,
            sends: VecDeque::new(),
            delivered: 0,
            delivered_at: 0,
            first_tx: 0,
            app_limited_until: 0,
            rtx: VecDeque::new(),
            relost: VecDeque::new(),
            tlp_at: None,
            tlp_sent: false,
            pace_at: None,
            rack_ts: None,
            rack_end: una,
            rack_rtt: 0,
            reo_at: None,
            hs_round_end: 0,
            hs_last_min: u32::MAX,
            hs_cur_min: u32::MAX,
            hs_samples: 0,
            rate: None,
            css: 0,
            css_base: u32::MAX,
            undo_marker: None,
            prior: None,
            undo_rtx: Vec::new(),
            undo_sent: false,
            frto: false,
            frto_new: false,
            ever_rtx: una,
            orig_acked: false,
            dsack: false,
            sacked_now: 0,
            min_rtt: u32::MAX,
            reo_seen: false,
            reo_incr: 1,
            reo_persist: 0,
            dsack_round: None,
            stats: RecoveryStats::default(),
            started: true,
        }
    }

    /// Only the counters, for a socket between connections.
    pub(super) fn counters_only(stats: RecoveryStats) -> Self {
        let mut r = Recovery::new(TcpSeqNumber::default());
        r.stats = stats;
        r.started = false;
        r
    }

    /// xdpstack patch 28: the application gave data to a sender that had
    /// less than a segment left to send and room in its window (Linux's
    /// `tcp_rate_check_app_limited`, run at every write): what goes out
    /// until everything now in flight (`in_flight` bytes) is delivered is
    /// application-limited. Marked only at the send that emptied the
    /// buffer, the ACKs of a response's first segments gave BBR samples of
    /// one response per round trip that counted as the path's rate: Startup
    /// ended on them and each 10 KiB response was then paced over a whole
    /// round trip (`wan`, 1,000 sequential 10 KiB: twice the kernel's BBR's
    /// time at every RTT).
    pub(super) fn check_app_limited(&mut self, in_flight: usize) {
        self.app_limited_until = (self.delivered + in_flight as u64).max(1);
    }

    /// Record an original transmission ending at `end`, sent at `now`;
    /// `idle`: nothing was in flight before it; `app_limited`: the sender
    /// had nothing more to send after it (or is in an application-limited
    /// period, patch 28).
    pub(super) fn on_send_new(
        &mut self,
        end: TcpSeqNumber,
        now: Micros,
        idle: bool,
        app_limited: bool,
    ) {
        let app_limited = app_limited || self.app_limited_until != 0;
        if idle {
            // tcp_rate.c: a flight starting from nothing dates from now.
            self.first_tx = now;
            self.delivered_at = now;
        }
        let full = self.sends.len() >= MAX_SENDS;
        if let Some(last) = self.sends.back_mut()
            && (last.at == now || full)
        {
            last.end = end;
            last.at = now;
            last.app_limited |= app_limited;
            return;
        }
        self.sends.push_back(SendRec {
            end,
            at: now,
            delivered: self.delivered,
            delivered_at: self.delivered_at,
            first_tx: self.first_tx,
            app_limited,
        });
    }

    /// Record a retransmission of `[from, to)` at `now`.
    pub(super) fn on_send_rtx(&mut self, from: TcpSeqNumber, to: TcpSeqNumber, now: Micros) {
        // What this resends of a retransmission found lost is no longer
        // waiting.
        for r in self.relost.iter_mut() {
            if r.0 >= from && r.0 < to {
                r.0 = to;
            }
        }
        self.relost.retain(|r| r.1 > r.0);
        if self.rtx.len() >= MAX_SENDS {
            self.rtx.pop_front();
        }
        self.rtx.push_back((from, to, now));
        self.stats.retransmits = self.stats.retransmits.wrapping_add(1);
        // Undo: the episode's retransmissions (not a probe's in the open
        // state, which belongs to no episode).
        if self.phase != Phase::Open && self.undo_marker.is_some() {
            self.undo_sent = true;
            if self.undo_rtx.len() >= MAX_UNDO {
                self.undo_marker = None;
                self.undo_rtx = Vec::new();
            } else {
                self.undo_rtx.push((from, to));
            }
        }
    }

    /// Whether `[from, to)` overlaps a retransmission still unacknowledged.
    fn retransmitted(&self, from: TcpSeqNumber, to: TcpSeqNumber) -> bool {
        self.rtx.iter().any(|&(l, r, _)| l < to && from < r)
    }

    /// SND.UNA moved to `una`: forget send times it covers.
    fn drop_sends(&mut self, una: TcpSeqNumber) {
        while let Some(&SendRec { end, .. }) = self.sends.front() {
            if end <= una {
                self.sends.pop_front();
            } else {
                break;
            }
        }
        if self.sends.is_empty() && self.sends.capacity() > 64 {
            self.sends = VecDeque::new();
        }
    }

    /// The send time of the original transmission holding `seq`.
    fn sent_at(&self, seq: TcpSeqNumber) -> Option<Micros> {
        self.send_rec(seq).map(|s| s.at)
    }

    /// The record of the original transmission holding `seq`.
    fn send_rec(&self, seq: TcpSeqNumber) -> Option<&SendRec> {
        let i = self.sends.partition_point(|s| s.end <= seq);
        self.sends.get(i)
    }

    /// The end of the original transmissions sent at or before `t`.
    fn sent_by(&self, t: Micros) -> Option<TcpSeqNumber> {
        // Send times are monotonic in the log: find the last at or before t.
        let i = self
            .sends
            .partition_point(|s| (t.wrapping_sub(s.at) as i32) >= 0);
        if i == 0 {
            None
        } else {
            Some(self.sends[i - 1].end)
        }
    }

    /// Feed an ACK: cumulative point `una` (after the ACK), the bytes it
    /// newly acknowledged cumulatively, and its SACK blocks. `rtt_floor`
    /// tells a retransmission's delivery from its original's: a retransmission
    /// acknowledged sooner than that after it was sent was not what arrived
    /// (RFC 8985 §6.2 step 2). Returns the bytes this ACK delivered (RFC 6937
    /// DeliveredData).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_ack(
        &mut self,
        una: TcpSeqNumber,
        acked: usize,
        snd_max: TcpSeqNumber,
        blocks: &[Option<(u32, u32)>],
        now: Micros,
        rtt_floor: Micros,
    ) -> usize {
        let old_una = una - acked;
        let fack = self.board.highest();
        self.dsack = false;
        self.orig_acked = false;
        // RFC 2883 §4: the first block is a D-SACK when it lies below the
        // cumulative point or inside the second block.
        if let Some((l, r)) = blocks.first().copied().flatten() {
            let (l, r) = (TcpSeqNumber(l as i32), TcpSeqNumber(r as i32));
            let inside = blocks.get(1).copied().flatten().is_some_and(|(l2, r2)| {
                let (l2, r2) = (TcpSeqNumber(l2 as i32), TcpSeqNumber(r2 as i32));
                l2 <= l && r <= r2
            });
            if r > l && r <= snd_max && (r <= una || inside) {
                self.on_dsack(l, r);
            }
        }
        // F-RTO (RFC 5682 §3.1 step 3.b, SACK-enhanced as Linux): whether
        // this ACK delivers data sent before the timeout that was never
        // retransmitted.
        if self.phase == Phase::Loss {
            let from = self.ever_rtx.max(self.high_rxt);
            let cum = (from.max(old_una), una.min(self.point));
            let mut orig = cum.1 > cum.0 && self.board.unsacked(cum.0, cum.1) > 0;
            for &(l, r) in blocks.iter().flatten() {
                let (l, r) = (TcpSeqNumber(l as i32), TcpSeqNumber(r as i32));
                if r > snd_max || r <= una {
                    continue;
                }
                let (l, r) = (l.max(from).max(una), r.min(self.point));
                orig |= r > l && self.board.unsacked(l, r) > 0;
            }
            self.orig_acked = orig;
        }
        // RFC 8985 §6.2 step 3: original data delivered below the highest
        // SACKed sequence number arrived out of order.
        if let Some(f) = fack {
            let cum = (old_una, una.min(f));
            if cum.1 > cum.0
                && self.board.unsacked(cum.0, cum.1) > 0
                && !self.retransmitted(cum.0, cum.1)
            {
                self.reo_seen = true;
            }
            for &(l, r) in blocks.iter().flatten() {
                let (l, r) = (TcpSeqNumber(l as i32), TcpSeqNumber(r as i32));
                let (l, r) = (l.max(una), r.min(f));
                if r > l && self.board.unsacked(l, r) > 0 && !self.retransmitted(l, r) {
                    self.reo_seen = true;
                }
            }
        }
        let covered = self.board.advance(una);
        // xdpstack patch 12: the cumulative point stopped at (or inside)
        // data the receiver had SACKed: it dropped what it held out of order
        // (reneging, RFC 2018 §8; Linux's `tcp_check_sack_reneging`). The
        // scoreboard is forgotten, or neither recovery nor the loss state
        // would ever resend that data and the connection would stall.
        // (xdpstack patch, undo: what the forgotten scoreboard marked lost
        // is not known lost either; the next SACKs tell again.)
        if self.board.is_sacked(una) {
            self.board.clear();
            self.lost_end = una;
        }
        let mut newly = 0;
        // The highest sequence number this ACK delivered, to date it.
        let mut top = if acked > 0 { Some(una) } else { None };
        for &(l, r) in blocks.iter().flatten() {
            let (l, r) = (TcpSeqNumber(l as i32), TcpSeqNumber(r as i32));
            let n = self.board.add(una, snd_max, l, r);
            if n > 0 {
                newly += n;
                if top.is_none_or(|t| r > t) {
                    top = Some(r);
                }
            }
        }
        self.sacked_now = newly;
        if acked > 0 {
            self.tlp_sent = false;
        }
        if let Some(top) = top {
            let last = top - 1;
            let resent = self
                .rtx
                .iter()
                .rev()
                .find(|&&(from, to, _)| from <= last && last < to);
            let at = match resent {
                Some(&(_, _, t)) => {
                    // xdpstack patch 29: the minimum RTT once known (RFC
                    // 8985 §6.2 step 2, Linux's `tcp_rack_advance`): half
                    // the SRTT credited a late original to its
                    // retransmission, and RACK.rtt came out short.
                    let floor = if self.min_rtt == u32::MAX {
                        rtt_floor
                    } else {
                        self.min_rtt
                    };
                    if now.wrapping_sub(t) >= floor {
                        Some(t)
                    } else {
                        None
                    }
                }
                None => self.sent_at(last),
            };
            // RFC 8985 §6.2 step 2, RACK_sent_after: a later send time, or
            // the same one and a higher sequence number.
            if let Some(t) = at
                && self.rack_ts.is_none_or(|r| {
                    let d = t.wrapping_sub(r) as i32;
                    d > 0 || (d == 0 && top > self.rack_end)
                })
            {
                self.rack_ts = Some(t);
                self.rack_end = top;
                self.rack_rtt = now.wrapping_sub(t);
            }
        }
        // A delivery-rate sample from the newest original transmission
        // this ACK delivered (tcp_rate.c: the longer of its send and ACK
        // intervals).
        let delivered = (acked - acked.min(covered)) + newly;
        self.rate = None;
        if delivered > 0 {
            self.delivered += delivered as u64;
            // Patch 28: the application-limited period ends once what was
            // in flight at its start is delivered.
            if self.app_limited_until != 0 && self.delivered > self.app_limited_until {
                self.app_limited_until = 0;
            }
            if let Some(rec) = top.and_then(|t| self.send_rec(t - 1)).copied() {
                let send_us = rec.at.wrapping_sub(rec.first_tx);
                let ack_us = now.wrapping_sub(rec.delivered_at);
                let interval = send_us.max(ack_us);
                self.first_tx = rec.at;
                if interval > 0 && (interval as i32) > 0 {
                    self.rate = Some(RateSample {
                        delivered: self.delivered - rec.delivered,
                        interval_us: interval,
                        prior_delivered: rec.delivered,
                        rtt_us: now.wrapping_sub(rec.at),
                        app_limited: rec.app_limited,
                    });
                }
            }
            self.delivered_at = now;
        }
        if let Some(rs) = self.rate
            && rs.rtt_us > 0
        {
            self.min_rtt = self.min_rtt.min(rs.rtt_us);
        }
        self.drop_sends(una);
        self.rtx.retain(|r| r.1 > una);
        let board = &self.board;
        self.relost.retain(|r| {
            let from = r.0.max(una);
            r.1 > from && board.unsacked(from, r.1) > 0
        });
        if self.high_rxt < una {
            self.high_rxt = una;
        }
        if self.lost_end < una {
            self.lost_end = una;
        }
        delivered
    }

    /// xdpstack patch 14: HyStart++ (RFC 9406) on this ACK's rate sample,
    /// during the initial slow start. The delay test (RFC 9406 §4.2,
    /// Linux's `HYSTART_DELAY`): the round trip grew by more than an eighth
    /// of the last round's minimum (clamped to 4-16 ms) over at least 8
    /// samples of this round, which means the bottleneck's queue is
    /// filling. Slow start does not end there but goes on at a quarter of
    /// its growth (Conservative Slow Start) for 5 rounds, the round the
    /// test fired in counted; a CSS round whose minimum falls below the
    /// minimum that started CSS (over 8 samples) says the growth was
    /// spurious and slow start resumes; one whose minimum rose by the
    /// threshold again above it ends slow start at once (patch 24). The
    /// round that began CSS is judged as a whole, at its end (patch 25).
    pub(super) fn hystart(&mut self) -> HyStart {
        let Some(rs) = self.rate else {
            return HyStart::Keep;
        };
        if rs.prior_delivered >= self.hs_round_end {
            self.hs_round_end = self.delivered;
            let finished_min = self.hs_cur_min;
            if self.hs_samples >= HYSTART_SAMPLES {
                self.hs_last_min = finished_min;
            }
            self.hs_cur_min = u32::MAX;
            self.hs_samples = 0;
            if self.css > 0 {
                if self.css >= CSS_ROUNDS {
                    self.css = 0;
                    self.css_base = u32::MAX;
                    return HyStart::EndSlowStart;
                }
                if self.css == 1 {
                    // Patch 25: the baseline is the whole round's minimum.
                    self.css_base = self.css_base.min(finished_min);
                }
                self.css += 1;
            }
        }
        if rs.rtt_us == 0 {
            return HyStart::Keep;
        }
        self.hs_cur_min = self.hs_cur_min.min(rs.rtt_us);
        self.hs_samples = self.hs_samples.saturating_add(1);
        if self.hs_samples < HYSTART_SAMPLES {
            return HyStart::Keep;
        }
        if self.css > 0 {
            // xdpstack patch 25: the round that began CSS is not judged again
            // sample by sample. Its minimum at the 8th sample is the
            // baseline, but later samples of the same round may well be
            // lower (ACKs of a burst's head that met a shorter queue), and
            // RFC 9406's test on every ACK then flapped between CSS and slow
            // start (a capture at 50 ms, 100 Mbit/s: five times in a row,
            // one segment apart, then slow start doubling on past the queue:
            // 2,151 segments resent where a clean exit resent 9). The whole
            // round's minimum becomes the baseline at its end, and the
            // rounds after it are judged against it.
            if self.css == 1 {
                return HyStart::Keep;
            }
            if self.hs_cur_min < self.css_base {
                self.css = 0;
                self.css_base = u32::MAX;
                return HyStart::ResumeSlowStart;
            }
            // xdpstack patch 24: the queue kept growing through CSS, by the
            // delay test's threshold again above the round trip that began
            // it: the rise was no noise but a full path, and five rounds of
            // 25% growth on it (3x the window) overran a queue of twice the
            // BDP (744 segments lost at 50 ms, 100 Mbit/s, where Linux's
            // HyStart, which ends slow start at the first rise, lost none).
            // Slow start ends now, once CSS has had one whole round of its
            // growth (from the third CSS round): a queue of bursts at a
            // window below the BDP also raises the round trip, and ending
            // there left the window at 60% of the path (9.5-9.6 s instead of
            // 9.1 s for 100 MiB at 50 ms, 100 Mbit/s, in 3 of 6 downloads).
            let eta = (self.css_base / 8).clamp(4_000, 16_000);
            if self.css >= 3 && self.hs_cur_min >= self.css_base.saturating_add(eta) {
                self.css = 0;
                self.css_base = u32::MAX;
                return HyStart::EndSlowStart;
            }
            return HyStart::Keep;
        }
        if self.hs_last_min == u32::MAX {
            return HyStart::Keep;
        }
        let eta = (self.hs_last_min / 8).clamp(4_000, 16_000);
        if self.hs_cur_min >= self.hs_last_min.saturating_add(eta) {
            net_debug!(
                "hystart: round min {} us over the last round's {} us (+{} us), {} samples, delivered {}",
                self.hs_cur_min,
                self.hs_last_min,
                eta,
                self.hs_samples,
                self.delivered
            );
            self.css = 1;
            self.css_base = self.hs_cur_min;
            return HyStart::EnterCss;
        }
        HyStart::Keep
    }

    /// Tests: the path is known to reorder.
    #[cfg(test)]
    pub(super) fn set_reordering_seen(&mut self) {
        self.reo_seen = true;
    }

    /// Whether HyStart++ has the sender in Conservative Slow Start.
    pub(super) fn in_css(&self) -> bool {
        self.css > 0
    }

    /// A D-SACK reported `[l, r)` as received twice: one retransmission of
    /// each range it covers was not needed (RFC 3708), and the path
    /// reorders or delays (RFC 8985 §6.2).
    fn on_dsack(&mut self, l: TcpSeqNumber, r: TcpSeqNumber) {
        self.dsack = true;
        self.reo_seen = true;
        let Some(marker) = self.undo_marker else {
            return;
        };
        if r <= marker {
            return;
        }
        let mut i = 0;
        let mut seen: Vec<(TcpSeqNumber, TcpSeqNumber)> = Vec::new();
        while i < self.undo_rtx.len() {
            let e = self.undo_rtx[i];
            if e.0 >= l && e.1 <= r && !seen.contains(&e) {
                seen.push(e);
                self.undo_rtx.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Linux's `tcp_may_undo` without timestamps: the episode retransmitted
    /// something and D-SACKs reported every retransmission as a duplicate.
    pub(super) fn may_undo(&self) -> bool {
        self.undo_marker.is_some() && self.undo_sent && self.undo_rtx.is_empty()
    }

    /// Whether the last ACK delivered original data sent before the
    /// timeout (F-RTO step 3.b).
    pub(super) fn orig_acked(&self) -> bool {
        self.orig_acked
    }

    /// A loss episode (fast recovery or timeout) begins at SND.UNA `una`.
    /// Returns whether it is a new one (the socket then has the controller
    /// remember its window before reducing it): a timeout during fast
    /// recovery or after another timeout continues the episode.
    pub(super) fn start_undo(&mut self, una: TcpSeqNumber) -> bool {
        if self.phase != Phase::Open && self.undo_marker.is_some() {
            return false;
        }
        self.undo_marker = Some(una);
        self.undo_rtx.clear();
        self.undo_sent = false;
        true
    }

    /// The window reduction was undone: leave recovery or the loss state,
    /// with no byte counted lost (Linux's `tcp_undo_cwnd_reduction`).
    pub(super) fn undone(&mut self, una: TcpSeqNumber) {
        self.phase = Phase::Open;
        self.lost_end = una;
        if self.high_rxt < una {
            self.high_rxt = una;
        }
        self.relost.clear();
        self.allow = 0;
        self.frto = false;
        self.frto_new = false;
        self.undo_marker = None;
        self.prior = None;
        self.undo_rtx = Vec::new();
        self.undo_sent = false;
        self.stats.undos = self.stats.undos.wrapping_add(1);
    }

    /// F-RTO step 2.b: new data goes out instead of retransmissions until
    /// the next ACK.
    pub(super) fn frto_send_new(&mut self) {
        self.frto_new = true;
    }

    /// F-RTO: the next ACK decides again (Linux's `REXMIT_NEW` holds for
    /// one ACK).
    pub(super) fn frto_ack(&mut self) {
        self.frto_new = false;
    }

    /// RFC 8985 §6.2 step 4, on every ACK: a D-SACK grows the reordering
    /// window by one step, at most once a round trip, and makes it persist
    /// for 16 recoveries.
    pub(super) fn update_reo_wnd(&mut self, una: TcpSeqNumber, snd_max: TcpSeqNumber) {
        if self.dsack_round.is_some_and(|r| una >= r) {
            self.dsack_round = None;
        }
        if self.dsack_round.is_none() && self.dsack {
            self.dsack_round = Some(snd_max);
            self.reo_incr = self.reo_incr.saturating_add(1);
            self.reo_persist = REO_WND_PERSIST;
        }
    }

    /// RFC 8985 §6.2 step 4: a fast recovery or loss state ended; a grown
    /// window shrinks back after 16 of them.
    fn reo_wnd_recovery_end(&mut self) {
        self.reo_persist = self.reo_persist.saturating_sub(1);
        if self.reo_persist == 0 {
            self.reo_incr = 1;
        }
    }

    /// RACK's reordering window (RFC 8985 §6.2 step 4), `srtt_us` the
    /// smoothed RTT: none while no reordering was seen and the sender is
    /// recovering (not merely reducing for ECN) or DupThresh segments are SACKed; else a quarter of the
    /// minimum RTT per step, at most SRTT, and (xdpstack) at least 1 ms,
    /// as segments sent in one burst share a send time.
    pub(super) fn reo_wnd(&self, srtt_us: u32, mss: usize) -> Micros {
        // (Linux: recovering is CA_Recovery or CA_Loss; a reduction for
        // ECN-Echo, CA_CWR, is not.)
        let recovering = !matches!(self.phase, Phase::Open | Phase::Cwr);
        if !self.reo_seen && (recovering || self.board.sacked() >= DUP_THRESH * mss) {
            return 0;
        }
        let min_rtt = if self.min_rtt == u32::MAX {
            srtt_us
        } else {
            self.min_rtt
        };
        (min_rtt / 4)
            .saturating_mul(u32::from(self.reo_incr))
            .min(srtt_us)
            .max(1000)
    }

    /// The delivery-rate sample of the last ACK, if it gave one.
    pub(super) fn rate_sample(&self) -> Option<&RateSample> {
        self.rate.as_ref()
    }

    /// Bytes delivered (acknowledged or SACKed) so far.
    pub(super) fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Move `lost_end` up to what the scoreboard (DupThresh) and the send
    /// times (RACK: sent a reordering window before the newest delivered
    /// data, and below SACKed data) say is lost, at `now`. Returns whether
    /// some byte at or above SND.UNA (`una`) is lost and was not
    /// retransmitted yet.
    pub(super) fn detect(
        &mut self,
        una: TcpSeqNumber,
        mss: usize,
        reo_wnd: Micros,
        now: Micros,
    ) -> bool {
        if let Some(l) = self.board.lost_below(mss)
            && l > self.lost_end
        {
            self.lost_end = l;
        }
        let limit = self.rack_ts.map(|t| self.rack_limit(t, reo_wnd, now));
        if let (Some(limit), Some(high)) = (limit, self.board.highest())
            && let Some(end) = self.sent_by(limit)
        {
            let end = end.min(high);
            if end > self.lost_end {
                self.lost_end = end;
            }
        }
        // RACK for retransmissions: one sent a reordering window before the
        // newest delivered data and still not delivered is lost again
        // (before, only the RTO repaired it). Sent at the same time as that
        // data (a window of 0, retransmissions of one burst), only one below
        // it went before it (RACK_sent_after): a partial ACK for the first
        // retransmission of a burst had every other one resent at once,
        // while they were on their way (the `wan` bench's 100 parallel
        // flows: 6 spurious retransmissions on one ACK).
        if let (Some(t), Some(limit)) = (self.rack_ts, limit) {
            while let Some(&(from, to, at)) = self.rtx.front() {
                let d = limit.wrapping_sub(at) as i32;
                if d < 0 || (limit == t && self.sent_after_rack(at, to)) {
                    break;
                }
                self.rtx.pop_front();
                let from = from.max(una);
                if to > from && self.board.unsacked(from, to) > 0 {
                    self.relost.push_back((from, to));
                }
            }
        }
        if !self.relost.is_empty() {
            return true;
        }
        // xdpstack patch 12: not what a recovery resent already (HighRxt
        // outlives it when it repaired holes beyond its recovery point; the
        // next ACK that still showed them started another recovery, which
        // resent them again and cut the window a second time).
        let from = self.high_rxt.max(una);
        self.board.next_hole(from, self.lost_end).is_some()
    }

    /// xdpstack patch 29: RACK's loss limit (RFC 8985 §6.2 step 5): data
    /// sent at or before it, and before the newest delivered data (sent at
    /// `t`), is lost. Sent a reordering window before that data, it is lost
    /// when an ACK delivers it; else once `now` is a reordering window past
    /// its send time plus RACK.rtt (the reordering timer's test: before,
    /// only an ACK ran it, and a segment of one burst, sent with the data
    /// delivered after it, waited for a probe or the RTO).
    fn rack_limit(&self, t: Micros, reo_wnd: Micros, now: Micros) -> Micros {
        let by_ack = t.wrapping_sub(reo_wnd);
        let by_time = now.wrapping_sub(self.rack_rtt).wrapping_sub(reo_wnd);
        let l = if (by_time.wrapping_sub(by_ack) as i32) > 0 {
            by_time
        } else {
            by_ack
        };
        if (l.wrapping_sub(t) as i32) > 0 { t } else { l }
    }

    /// A retransmission `[.., to)` sent at `at`, the microsecond of the
    /// newest delivered data and not below it, went after it (RFC 8985
    /// RACK_sent_after, by sequence): RACK never finds it lost.
    fn sent_after_rack(&self, at: Micros, to: TcpSeqNumber) -> bool {
        self.rack_ts == Some(at) && self.rack_end <= to
    }

    /// xdpstack patch 29: arm RACK's reordering timer (RFC 8985 §6.3)
    /// after loss detection: at the time the oldest data sent before the
    /// newest delivered data, below the highest SACK and neither delivered
    /// nor found lost, would be lost (its send time plus RACK.rtt plus the
    /// reordering window); none if there is no such data.
    pub(super) fn arm_reo(&mut self, una: TcpSeqNumber, reo_wnd: Micros, now: Micros) {
        // (A deadline already past found nothing `detect` would mark: not
        // armed, or the timer would fire again at once, for good.)
        self.reo_at = self
            .reo_deadline(una, reo_wnd)
            .filter(|&d| (d.wrapping_sub(now) as i32) > 0);
    }

    fn reo_deadline(&self, una: TcpSeqNumber, reo_wnd: Micros) -> Option<Micros> {
        let t = self.rack_ts?;
        let due = |at: Micros| {
            ((t.wrapping_sub(at) as i32) >= 0)
                .then(|| at.wrapping_add(self.rack_rtt).wrapping_add(reo_wnd))
        };
        let mut first = None;
        if let Some(high) = self.board.highest()
            && let Some((s, _)) = self.board.next_hole(self.lost_end.max(una), high)
            && let Some(at) = self.sent_at(s)
        {
            first = due(at);
        }
        if let Some(&(from, to, at)) = self.rtx.front()
            && !self.sent_after_rack(at, to)
            && to > from.max(una)
            && self.board.unsacked(from.max(una), to) > 0
            && let Some(d) = due(at)
            && first.is_none_or(|f| (f.wrapping_sub(d) as i32) > 0)
        {
            first = Some(d);
        }
        first
    }

    /// Bytes in flight (RFC 6675 `pipe`): unSACKed bytes sent, less those
    /// lost and not yet retransmitted.
    pub(super) fn pipe(&self, una: TcpSeqNumber, snd_max: TcpSeqNumber) -> usize {
        let out = self.board.unsacked(una, snd_max);
        let from = self.high_rxt.max(una);
        let lost = self.board.unsacked(from, self.lost_end.min(snd_max));
        // Retransmissions found lost are out of the network too.
        let again: usize = self
            .relost
            .iter()
            .map(|r| {
                let from = r.0.max(una);
                self.board.unsacked(from, r.1.min(snd_max))
            })
            .sum();
        out.saturating_sub(lost).saturating_sub(again)
    }

    /// RFC 6675 `NextSeg` rule 1: the first lost, unSACKed range not yet
    /// retransmitted.
    pub(super) fn next_lost(
        &self,
        una: TcpSeqNumber,
        snd_max: TcpSeqNumber,
    ) -> Option<(TcpSeqNumber, TcpSeqNumber)> {
        // (xdpstack patch 17 (ECN): a reduction for ECN-Echo resends nothing.)
        if matches!(self.phase, Phase::Open | Phase::Cwr) || self.frto_new {
            return None;
        }
        for r in &self.relost {
            let from = r.0.max(una);
            if let Some(hole) = self.board.next_hole(from, r.1.min(snd_max)) {
                return Some(hole);
            }
        }
        let from = self.high_rxt.max(una);
        self.board.next_hole(from, self.lost_end.min(snd_max))
    }

    /// Enter fast recovery: `flight` is SND.MAX - SND.UNA, `ssthresh` what
    /// the congestion controller chose, `delivered` what the ACK that showed
    /// the loss delivered.
    pub(super) fn enter_recovery(
        &mut self,
        una: TcpSeqNumber,
        snd_max: TcpSeqNumber,
        ssthresh: usize,
        delivered: usize,
        mss: usize,
    ) {
        self.phase = Phase::Recovery;
        self.point = snd_max;
        self.css = 0;
        self.css_base = u32::MAX;
        // HighRxt stays where a recovery before left it, if above SND.UNA:
        // what it resent is in flight (xdpstack patch 12).
        if self.high_rxt < una {
            self.high_rxt = una;
        }
        self.prr_delivered = 0;
        self.prr_out = 0;
        self.recover_fs = snd_max - una;
        self.ssthresh = ssthresh;
        self.stats.recoveries = self.stats.recoveries.wrapping_add(1);
        self.prr(una, snd_max, delivered, mss);
        // RFC 6937: the fast retransmit itself is always sent.
        if self.allow < mss {
            self.allow = mss;
        }
    }

    /// xdpstack patch 17 (ECN): an ACK echoed congestion (ECE) in the open
    /// state: reduce the window to `ssthresh` by PRR over the flight
    /// `snd_max - una`, as fast recovery does but resending nothing
    /// (Linux's `tcp_enter_cwr`). `delivered`: what that ACK delivered.
    pub(super) fn enter_cwr(
        &mut self,
        una: TcpSeqNumber,
        snd_max: TcpSeqNumber,
        ssthresh: usize,
        delivered: usize,
        mss: usize,
    ) {
        self.phase = Phase::Cwr;
        self.point = snd_max;
        self.prr_delivered = 0;
        self.prr_out = 0;
        self.recover_fs = snd_max - una;
        self.ssthresh = ssthresh;
        self.stats.ecn_reductions = self.stats.ecn_reductions.wrapping_add(1);
        self.prr(una, snd_max, delivered, mss);
    }

    /// xdpstack patch 17 (ECN): a loss found while reducing for ECN-Echo: fast
    /// recovery from here to SND.MAX, continuing the reduction under way
    /// (the window is reduced once, as Linux's `tcp_enter_recovery` in
    /// `TCP_CA_CWR`).
    pub(super) fn cwr_to_recovery(&mut self, una: TcpSeqNumber, snd_max: TcpSeqNumber, mss: usize) {
        self.phase = Phase::Recovery;
        self.point = snd_max;
        if self.high_rxt < una {
            self.high_rxt = una;
        }
        self.stats.recoveries = self.stats.recoveries.wrapping_add(1);
        // RFC 6937: the fast retransmit itself is always sent.
        if self.allow < mss {
            self.allow = mss;
        }
    }

    /// RFC 6937 with the slow-start reduction bound: how much may be sent
    /// now that `delivered` more bytes arrived.
    pub(super) fn prr(
        &mut self,
        una: TcpSeqNumber,
        snd_max: TcpSeqNumber,
        delivered: usize,
        mss: usize,
    ) {
        self.prr_delivered += delivered;
        let pipe = self.pipe(una, snd_max);
        let sndcnt = if pipe > self.ssthresh {
            let target = (self.prr_delivered as u64 * self.ssthresh as u64)
                .div_ceil(self.recover_fs.max(1) as u64);
            (target as usize).saturating_sub(self.prr_out)
        } else {
            let limit = self
                .prr_delivered
                .saturating_sub(self.prr_out)
                .max(delivered)
                + mss;
            (self.ssthresh - pipe).min(limit)
        };
        // xdpstack patch 12: whole segments, as Linux counts PRR in
        // packets. Sent as it comes, the byte count split new data into
        // sub-MSS segments (half a segment per ACK at a reduction to half);
        // rounded up, the sender stays within a segment of RFC 6937's count,
        // which `prr_out` then makes up.
        self.allow = sndcnt.div_ceil(mss) * mss;
    }

    /// The flight when fast recovery began (RFC 6937 RecoverFS).
    pub(super) fn recover_fs(&self) -> usize {
        self.recover_fs
    }

    /// `len` bytes went out during fast recovery.
    pub(super) fn on_recovery_send(&mut self, len: usize) {
        self.prr_out += len;
        self.allow = self.allow.saturating_sub(len);
    }

    /// A retransmission timeout: everything unSACKed up to SND.MAX is lost.
    /// F-RTO watches the loss state unless the timeout interrupted a fast
    /// recovery (Linux: a new loss episode, or a timeout again).
    pub(super) fn enter_loss(&mut self, una: TcpSeqNumber, snd_max: TcpSeqNumber) {
        self.frto = self.phase != Phase::Recovery;
        self.frto_new = false;
        let before = if self.phase == Phase::Open {
            una
        } else {
            self.ever_rtx
        };
        self.ever_rtx = before.max(self.high_rxt).max(una);
        self.css = 0;
        self.css_base = u32::MAX;
        self.phase = Phase::Loss;
        self.point = snd_max;
        self.high_rxt = una;
        self.lost_end = snd_max;
        self.dup_acks = 0;
        self.tlp_at = None;
        self.rtx.clear();
        self.relost.clear();
        self.stats.timeouts = self.stats.timeouts.wrapping_add(1);
    }

    /// xdpstack patch 18 (path MTU): the path MTU fell under the segments
    /// sent (RFC 1191, RFC 8201): every unSACKed byte up to SND.MAX is lost
    /// (the segments were too big; Linux's `tcp_simple_retransmit` marks
    /// those larger than the new MSS, and only SND.MAX's send times, not the
    /// segment sizes, are kept here) and goes again at the new size. The
    /// loss state resends it from the scoreboard; unlike a timeout this is
    /// no congestion signal: no timeout is counted and the caller leaves the
    /// window alone. An episode in progress keeps its recovery point.
    pub(super) fn enter_loss_mtu(&mut self, una: TcpSeqNumber, snd_max: TcpSeqNumber) {
        if self.phase != Phase::Loss {
            self.phase = Phase::Loss;
            self.point = snd_max;
        }
        self.high_rxt = una;
        self.lost_end = snd_max;
        self.dup_acks = 0;
        self.tlp_at = None;
        self.rtx.clear();
        self.relost.clear();
    }

    /// The phase ends once `una` reaches the recovery point.
    pub(super) fn leave_if_done(&mut self, una: TcpSeqNumber) -> bool {
        if self.phase != Phase::Open && una >= self.point {
            self.phase = Phase::Open;
            self.lost_end = una;
            self.frto = false;
            self.frto_new = false;
            self.reo_wnd_recovery_end();
            // xdpstack patch 12: HighRxt stays: holes beyond the recovery
            // point may have been resent, and their retransmissions are in
            // flight (`detect`).
            self.allow = 0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::vec;

    const MSS: usize = 1000;
    /// SND.UNA of these tests: near the wrap of the sequence space.
    const UNA: TcpSeqNumber = TcpSeqNumber(-5000);

    fn s(off: usize) -> TcpSeqNumber {
        UNA + off
    }

    /// The blocks as offsets from `UNA`.
    fn offs(b: &Scoreboard) -> Vec<(usize, usize)> {
        b.blocks()
            .iter()
            .map(|&(l, r)| (l - UNA, r - UNA))
            .collect()
    }

    fn board(blocks: &[(usize, usize)]) -> Scoreboard {
        let mut b = Scoreboard::default();
        for &(l, r) in blocks {
            b.add(UNA, s(100_000), s(l), s(r));
        }
        b
    }

    #[test]
    fn add_merges_and_counts_new_bytes() {
        let mut b = Scoreboard::default();
        let max = s(10 * MSS);
        assert_eq!(b.add(UNA, max, s(2000), s(3000)), 1000);
        assert_eq!(b.add(UNA, max, s(5000), s(6000)), 1000);
        // Touching on either side merges (the ranges never touch).
        assert_eq!(b.add(UNA, max, s(3000), s(3500)), 500);
        assert_eq!(b.add(UNA, max, s(4500), s(5000)), 500);
        assert_eq!(offs(&b), [(2000, 3500), (4500, 6000)]);
        // Covering both and the gap: only the gap and the ends are new.
        assert_eq!(b.add(UNA, max, s(1000), s(7000)), 1000 + 1000 + 1000);
        assert_eq!(offs(&b), [(1000, 7000)]);
        assert_eq!(b.sacked(), 6000);
        // Inside: nothing new.
        assert_eq!(b.add(UNA, max, s(2000), s(3000)), 0);
        assert_eq!(b.sacked(), 6000);
    }

    #[test]
    fn add_ignores_dsack_invalid_and_clamps_at_una() {
        let mut b = Scoreboard::default();
        let max = s(10 * MSS);
        // D-SACK at or below SND.UNA, beyond SND.MAX, reversed, empty.
        assert_eq!(b.add(UNA, max, s(0) - 1000, s(0)), 0);
        assert_eq!(b.add(UNA, max, s(9000), s(10_001)), 0);
        assert_eq!(b.add(UNA, max, s(3000), s(2000)), 0);
        assert_eq!(b.add(UNA, max, s(3000), s(3000)), 0);
        // 2^31 apart: reversed, or beyond SND.MAX, never a panic.
        let far = TcpSeqNumber(s(3000).0.wrapping_add(i32::MIN));
        assert_eq!(b.add(UNA, max, far, s(3000)), 0);
        assert_eq!(b.add(UNA, max, s(3000), far), 0);
        // 2^30 below SND.UNA: from SND.UNA.
        let below = TcpSeqNumber(UNA.0.wrapping_sub(1 << 30));
        assert_eq!(b.add(UNA, max, below, s(3000)), 3000);
        assert_eq!(offs(&b), [(0, 3000)]);
        b.clear();
        // Across SND.UNA: from SND.UNA on.
        assert_eq!(b.add(UNA, max, s(0) - 500, s(1000)), 1000);
        assert_eq!(offs(&b), [(0, 1000)]);
        // Up to SND.MAX exactly.
        assert_eq!(b.add(UNA, max, s(9000), max), 1000);
    }

    #[test]
    fn advance_drops_and_trims() {
        let mut b = board(&[(1000, 2000), (3000, 5000), (7000, 8000)]);
        assert_eq!(b.advance(s(500)), 0);
        assert_eq!(b.advance(s(2000)), 1000);
        assert_eq!(offs(&b), [(3000, 5000), (7000, 8000)]);
        assert_eq!(b.advance(s(4000)), 1000);
        assert_eq!(offs(&b), [(4000, 5000), (7000, 8000)]);
        assert_eq!(b.sacked(), 2000);
        assert_eq!(b.advance(s(9000)), 2000);
        assert!(b.is_empty());
        assert_eq!(b.sacked(), 0);
    }

    #[test]
    fn lost_below_is_rfc_6675_islost() {
        // One or two segments SACKed above a hole: not lost.
        assert_eq!(board(&[(1000, 2000)]).lost_below(MSS), None);
        assert_eq!(board(&[(1000, 3000)]).lost_below(MSS), None);
        assert_eq!(board(&[(1000, 2000), (3000, 4000)]).lost_below(MSS), None);
        // More than (DupThresh - 1) · MSS bytes above.
        assert_eq!(board(&[(1000, 3001)]).lost_below(MSS), Some(s(1000)));
        assert_eq!(board(&[(1000, 4000)]).lost_below(MSS), Some(s(1000)));
        // DupThresh ranges above, whatever their size.
        assert_eq!(
            board(&[(1000, 1001), (2000, 2001), (3000, 3001)]).lost_below(MSS),
            Some(s(1000))
        );
        // Only the holes below enough SACKed data: the lowest range above
        // which the rule holds.
        assert_eq!(
            board(&[(1000, 2000), (3000, 4000), (5000, 6000), (7000, 8000)]).lost_below(MSS),
            Some(s(3000))
        );
        assert_eq!(
            board(&[(1000, 2000), (6000, 9000)]).lost_below(MSS),
            Some(s(6000))
        );
    }

    #[test]
    fn unsacked_next_hole_is_sacked() {
        let b = board(&[(1000, 2000), (3000, 5000)]);
        assert_eq!(b.unsacked(s(0), s(6000)), 3000);
        assert_eq!(b.unsacked(s(1500), s(3500)), 1000);
        assert_eq!(b.unsacked(s(3000), s(5000)), 0);
        assert_eq!(b.unsacked(s(5000), s(4000)), 0);
        assert_eq!(b.next_hole(s(0), s(6000)), Some((s(0), s(1000))));
        assert_eq!(b.next_hole(s(1000), s(6000)), Some((s(2000), s(3000))));
        assert_eq!(b.next_hole(s(2500), s(6000)), Some((s(2500), s(3000))));
        assert_eq!(b.next_hole(s(3000), s(6000)), Some((s(5000), s(6000))));
        assert_eq!(b.next_hole(s(2000), s(2500)), Some((s(2000), s(2500))));
        assert_eq!(b.next_hole(s(3000), s(5000)), None);
        assert_eq!(b.next_hole(s(6000), s(6000)), None);
        assert!(!b.is_sacked(s(999)));
        assert!(b.is_sacked(s(1000)));
        assert!(b.is_sacked(s(1999)));
        assert!(!b.is_sacked(s(2000)));
        assert!(b.is_sacked(s(4999)));
        assert_eq!(b.highest(), Some(s(5000)));
    }

    #[test]
    fn scoreboard_matches_a_bitmap() {
        // Random blocks and advances against a model, one bit per byte.
        const N: usize = 300;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as usize
        };
        for _ in 0..200 {
            let mut b = Scoreboard::default();
            let mut model = [false; N];
            let mut una = 0;
            let max = N - 20;
            for _ in 0..60 {
                if next() % 6 == 0 {
                    let u = (una + next() % 40).min(max);
                    let covered = (una..u).filter(|&i| model[i]).count();
                    model[una..u].iter_mut().for_each(|m| *m = false);
                    una = u;
                    assert_eq!(b.advance(s(una)), covered);
                } else {
                    let l = next() % N;
                    let r = next() % N;
                    let new = if r <= l || r <= una || r > max {
                        0
                    } else {
                        let from = l.max(una);
                        let n = (from..r).filter(|&i| !model[i]).count();
                        model[from..r].iter_mut().for_each(|m| *m = true);
                        n
                    };
                    assert_eq!(b.add(s(una), s(max), s(l), s(r)), new);
                }
                // The ranges: sorted, disjoint, not touching, as the model.
                let mut ranges = Vec::new();
                let mut i = una;
                while i < N {
                    if model[i] {
                        let j = (i..N).find(|&j| !model[j]).unwrap_or(N);
                        ranges.push((i, j));
                        i = j;
                    } else {
                        i += 1;
                    }
                }
                assert_eq!(offs(&b), ranges);
                assert_eq!(b.sacked(), model.iter().filter(|&&m| m).count());
                let (x, y) = (una + next() % (N - una), una + next() % (N - una));
                let (x, y) = (x.min(y), x.max(y));
                assert_eq!(
                    b.unsacked(s(x), s(y)),
                    (x..y).filter(|&i| !model[i]).count()
                );
                let hole = (x..y).find(|&i| !model[i]).map(|h| {
                    let e = (h..y).find(|&i| model[i]).unwrap_or(y);
                    (s(h), s(e))
                });
                assert_eq!(b.next_hole(s(x), s(y)), hole);
                assert_eq!(b.is_sacked(s(x)), model[x]);
            }
        }
    }

    #[test]
    fn scoreboard_holds_a_range_per_two_segments_of_a_large_flight() {
        // xdpstack patch 29: 4 MiB in flight, every other segment lost:
        // 1,448 ranges, all remembered, and each counted once however often
        // the peer reports it again.
        let mut b = Scoreboard::default();
        let max = s(4 << 20);
        let n = (4 << 20) / (2 * MSS);
        let mut total = 0;
        for i in 0..n {
            total += b.add(UNA, max, s((2 * i + 1) * MSS), s((2 * i + 2) * MSS));
        }
        assert_eq!(b.blocks().len(), n);
        assert_eq!(total, n * MSS);
        for i in (0..n).rev() {
            assert_eq!(b.add(UNA, max, s((2 * i + 1) * MSS), s((2 * i + 2) * MSS)), 0);
        }
        assert_eq!(b.sacked(), n * MSS);
    }

    #[test]
    fn reordering_timer_skips_a_retransmission_sent_after_the_newest_delivered() {
        // xdpstack patch 29: [2000, 3000) and [1000, 2000) resent in the same
        // microsecond, high first; the ACK SACKs [1000, 2000). The other
        // went after it (RACK_sent_after, by sequence): `detect` never finds
        // it lost, so no timer for it (one was armed, found nothing, armed
        // itself again at the same past time: a busy loop until the RTO).
        let mut r = Recovery::new(UNA);
        r.on_send_new(s(3000), 0, false, false);
        r.board.add(UNA, s(3000), s(1000), s(2000));
        r.lost_end = s(1000);
        r.high_rxt = s(1000);
        r.rtx.push_back((s(2000), s(3000), 100_000));
        r.rack_ts = Some(100_000);
        r.rack_end = s(2000);
        r.rack_rtt = 50_000;
        assert_eq!(r.reo_deadline(UNA, 1000), None);
        // Sent a microsecond before it: due a window past RACK.rtt.
        r.rtx[0].2 = 99_999;
        assert_eq!(r.reo_deadline(UNA, 1000), Some(99_999 + 50_000 + 1000));
        // A deadline already past is not armed (nothing `detect` missed).
        r.arm_reo(UNA, 1000, 200_000);
        assert_eq!(r.reo_at, None);
        r.arm_reo(UNA, 1000, 140_000);
        assert_eq!(r.reo_at, Some(150_999));
    }

    #[test]
    fn scoreboard_bounded() {
        // 128 KiB in flight: the floor of 128 ranges binds.
        let mut b = Scoreboard::default();
        let max = s(MAX_BLOCKS * BLOCK_BYTES);
        for i in 0..(MAX_BLOCKS + 10) {
            b.add(UNA, max, s(2 * i + 1), s(2 * i + 2));
        }
        assert_eq!(b.blocks().len(), MAX_BLOCKS);
        assert_eq!(b.sacked(), MAX_BLOCKS);
        // The highest went first.
        assert_eq!(b.highest(), Some(s(2 * MAX_BLOCKS)));
    }

    /// A recovery with segments 0..n sent at t = 0.
    fn sent(n: usize) -> Recovery {
        let mut r = Recovery::new(UNA);
        r.on_send_new(s(n * MSS), 0, false, false);
        r
    }

    /// Rounds of 10 ACKs for HyStart++; each round's samples were sent
    /// after the previous round's data was delivered.
    fn hystart_round(r: &mut Recovery, rtt_us: u32) -> Vec<HyStart> {
        hystart_samples(r, &[rtt_us; 10])
    }

    /// One round, a sample per ACK with these round trips.
    fn hystart_samples(r: &mut Recovery, rtts: &[u32]) -> Vec<HyStart> {
        let prior = r.delivered;
        rtts.iter()
            .map(|&rtt_us| {
                r.delivered += 1000;
                r.rate = Some(RateSample {
                    delivered: 1000,
                    interval_us: 1000,
                    prior_delivered: prior,
                    rtt_us,
                    app_limited: false,
                });
                r.hystart()
            })
            .collect()
    }

    fn keep(v: &[HyStart]) -> bool {
        v.iter().all(|&x| x == HyStart::Keep)
    }

    #[test]
    fn hystart_enters_css_when_the_round_trip_grows() {
        let mut r = Recovery::new(UNA);
        // No previous round: nothing to compare with.
        assert!(keep(&hystart_round(&mut r, 50_000)));
        // 2 ms more: within the threshold (50/8 = 6.25 ms).
        assert!(keep(&hystart_round(&mut r, 52_000)));
        assert!(!r.in_css());
        // The last round's minimum is 52 ms: 59 ms is 7 ms more, past
        // 6.5 ms, from the 8th sample on (N_RTT_SAMPLE): Conservative Slow
        // Start, not the end of slow start (RFC 9406 §4.2).
        let v = hystart_round(&mut r, 59_000);
        assert_eq!(v.iter().position(|&x| x != HyStart::Keep), Some(7));
        assert_eq!(v[7], HyStart::EnterCss);
        assert!(keep(&v[8..]));
        assert!(r.in_css());
        // The threshold is at least 4 ms (MIN_RTT_THRESH): on a 10 ms path
        // 3 ms more is not a queue.
        let mut r = Recovery::new(UNA);
        hystart_round(&mut r, 10_000);
        assert!(keep(&hystart_round(&mut r, 13_000)));
        assert!(hystart_round(&mut r, 17_500).contains(&HyStart::EnterCss));
        // And at most 16 ms (MAX_RTT_THRESH): on a 200 ms path, 17 ms more
        // is (200/8 would be 25 ms).
        let mut r = Recovery::new(UNA);
        hystart_round(&mut r, 200_000);
        assert!(keep(&hystart_round(&mut r, 215_000)));
        let mut r = Recovery::new(UNA);
        hystart_round(&mut r, 200_000);
        assert!(hystart_round(&mut r, 217_000).contains(&HyStart::EnterCss));
    }

    #[test]
    fn hystart_css_lasts_five_rounds_then_congestion_avoidance() {
        let mut r = Recovery::new(UNA);
        hystart_round(&mut r, 50_000);
        hystart_round(&mut r, 52_000);
        // CSS begins in round 3, which counts as the first of CSS_ROUNDS.
        assert!(hystart_round(&mut r, 59_000).contains(&HyStart::EnterCss));
        // Rounds 4..7: the RTT stays at or above the baseline (59 ms).
        for _ in 4..=7 {
            assert!(keep(&hystart_round(&mut r, 60_000)));
            assert!(r.in_css());
        }
        // Round 8 begins: 5 rounds of CSS are over, congestion avoidance.
        let v = hystart_round(&mut r, 60_000);
        assert_eq!(v[0], HyStart::EndSlowStart);
        assert!(keep(&v[1..]));
        assert!(!r.in_css());
    }

    #[test]
    fn hystart_css_back_to_slow_start_when_the_round_trip_falls() {
        let mut r = Recovery::new(UNA);
        hystart_round(&mut r, 50_000);
        hystart_round(&mut r, 52_000);
        assert!(hystart_round(&mut r, 59_000).contains(&HyStart::EnterCss));
        // A CSS round whose minimum (over 8 samples) falls below the
        // baseline of 59 ms: the exit was spurious, slow start resumes.
        let v = hystart_round(&mut r, 58_000);
        assert_eq!(v.iter().position(|&x| x != HyStart::Keep), Some(7));
        assert_eq!(v[7], HyStart::ResumeSlowStart);
        assert!(!r.in_css());
        // HyStart++ goes on: the delay test against 58 ms (threshold 7.25
        // ms) fires again at 66 ms.
        assert!(hystart_round(&mut r, 66_000).contains(&HyStart::EnterCss));
    }

    #[test]
    fn hystart_css_does_not_flap_within_the_round_that_began_it() {
        // Patch 25: the round that enters CSS at its 8th sample (59 ms)
        // then sees lower samples (54 ms, still above 52 + 6.5): it stays
        // in CSS, and its whole minimum (54 ms) is the baseline after it.
        let mut r = Recovery::new(UNA);
        hystart_round(&mut r, 50_000);
        hystart_round(&mut r, 52_000);
        let rtts: Vec<u32> = (0..16)
            .map(|i| if i < 8 { 59_000 } else { 54_000 })
            .collect();
        let v = hystart_samples(&mut r, &rtts);
        assert_eq!(v[7], HyStart::EnterCss);
        assert!(v[8..].iter().all(|&x| x == HyStart::Keep), "{v:?}");
        assert!(r.in_css());
        // The next round at 55 ms: above the 54 ms baseline, CSS goes on (it
        // was 59 ms before the round ended: this would have resumed).
        let v = hystart_round(&mut r, 55_000);
        assert!(v.iter().all(|&x| x == HyStart::Keep), "{v:?}");
        assert!(r.in_css());
        // At 53 ms, below it: slow start resumes.
        assert!(hystart_round(&mut r, 53_000).contains(&HyStart::ResumeSlowStart));
    }

    #[test]
    fn a_lost_retransmission_is_found_by_time() {
        // Segments 0..10 at 0 ms, 1..4 SACKed: 0 lost, resent at 100 ms.
        let mut r = sent(10);
        let max0 = s(10 * MSS);
        let sack = [Some((s(MSS).0 as u32, s(4 * MSS).0 as u32)), None, None];
        r.on_ack(UNA, 0, max0, &sack, 100_000, 50_000);
        assert!(r.detect(UNA, MSS, 25_000, 100_000));
        r.phase = Phase::Recovery;
        assert_eq!(r.next_lost(UNA, max0), Some((UNA, s(MSS))));
        r.on_send_rtx(UNA, s(MSS), 100_000);
        r.high_rxt = s(MSS);
        assert_eq!(r.next_lost(UNA, max0), None);
        // New data 10..12 at 130 ms; 11 SACKed at 230 ms, ACK still at 0:
        // the retransmission (sent more than a reordering window before 11)
        // was lost, and goes again before anything else; out of the pipe.
        r.on_send_new(s(12 * MSS), 130_000, false, false);
        let max = s(12 * MSS);
        let pipe_before = r.pipe(UNA, max);
        let sack = [
            Some((s(11 * MSS).0 as u32, s(12 * MSS).0 as u32)),
            Some((s(MSS).0 as u32, s(4 * MSS).0 as u32)),
            None,
        ];
        r.on_ack(UNA, 0, max, &sack, 210_000, 50_000);
        assert!(r.detect(UNA, MSS, 25_000, 210_000));
        assert_eq!(r.next_lost(UNA, max), Some((UNA, s(MSS))));
        assert!(r.pipe(UNA, max) < pipe_before);
        // Sent again: no longer waiting.
        r.on_send_rtx(UNA, s(MSS), 210_000);
        assert_ne!(r.next_lost(UNA, max), Some((UNA, s(MSS))));
        // A retransmission that data sent later overtook by less than the
        // reordering window is not lost.
        let sack = [
            Some((s(11 * MSS).0 as u32, s(12 * MSS).0 as u32)),
            Some((s(MSS).0 as u32, s(4 * MSS).0 as u32)),
            None,
        ];
        r.on_ack(UNA, 0, max, &sack, 220_000, 50_000);
        r.detect(UNA, MSS, 25_000, 220_000);
        assert_ne!(r.next_lost(UNA, max), Some((UNA, s(MSS))));
    }

    #[test]
    fn pipe_counts_unsacked_not_lost_or_resent() {
        let mut r = sent(10);
        let max = s(10 * MSS);
        r.board = board(&[(1000, 4000)]);
        // Nothing lost yet: everything not SACKed.
        assert_eq!(r.pipe(UNA, max), 7000);
        assert!(r.detect(UNA, MSS, 1000, 0));
        assert_eq!(r.lost_end, s(1000));
        // Segment 0 lost, not resent: out of the pipe.
        assert_eq!(r.pipe(UNA, max), 6000);
        // Resent: back in it.
        r.high_rxt = s(1000);
        assert_eq!(r.pipe(UNA, max), 7000);
        // More lost beyond: out until resent.
        r.board.add(UNA, max, s(5000), s(9000));
        assert!(r.detect(UNA, MSS, 1000, 0));
        assert_eq!(r.lost_end, s(5000));
        assert_eq!(r.pipe(UNA, max), 2000 - 1000 + 1000);
    }

    #[test]
    fn prr_rfc_6937_proportional_then_slow_start_bound() {
        // RFC 6937's example: 20 segments in flight, one lost, ssthresh 10
        // (Reno); each ACK SACKs one more of the 19, what PRR allows goes
        // out as new data.
        let mut max = s(20 * MSS);
        let mut r = sent(20);
        let mut allowed = Vec::new();
        for k in 1..=19 {
            r.board.add(UNA, max, s(MSS), s((k + 1) * MSS));
            if r.phase == Phase::Open {
                if r.detect(UNA, MSS, 1000, 0) {
                    r.enter_recovery(UNA, max, 10 * MSS, MSS, MSS);
                    allowed.push(r.allow / MSS);
                    // The fast retransmit.
                    r.high_rxt = s(MSS);
                    r.on_recovery_send(MSS);
                } else {
                    allowed.push(0);
                }
                continue;
            }
            r.prr(UNA, max, MSS, MSS);
            let a = r.allow;
            allowed.push(a / MSS);
            max += a;
            r.on_recovery_send(a);
        }
        // The 3rd SACK: the retransmission; then one segment per two
        // delivered while pipe is above ssthresh (17 down to 10 segments),
        // then one per segment delivered (the slow-start reduction bound
        // keeps pipe at ssthresh).
        assert_eq!(
            allowed,
            [0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1, 1, 1]
        );
        assert_eq!(r.pipe(UNA, max), 10 * MSS);
    }

    #[test]
    fn prr_whole_segments_and_fast_retransmit_always() {
        let max = s(10 * MSS);
        let mut r = sent(10);
        r.board.add(UNA, max, s(MSS), s(4 * MSS));
        assert!(r.detect(UNA, MSS, 1000, 0));
        // pipe 6 segments, ssthresh 5: proportional, 1 delivered · 5/10
        // rounds to nothing, but the fast retransmit goes.
        r.enter_recovery(UNA, max, 5 * MSS, MSS, MSS);
        assert_eq!(r.allow, MSS);
        r.on_recovery_send(MSS);
        r.high_rxt = s(MSS);
        // 2 delivered · 5/10 = 1 segment, sent: nothing.
        r.board.add(UNA, max, s(4 * MSS), s(5 * MSS));
        r.prr(UNA, max, MSS, MSS);
        assert_eq!(r.allow, 0);
        // 300 bytes more: CEIL(2300 · 0.5) - 1000 = 150 bytes: a segment.
        r.board.add(UNA, max, s(5 * MSS), s(5 * MSS + 300));
        r.prr(UNA, max, 300, MSS);
        assert_eq!(r.allow, MSS);
    }

    #[test]
    fn rack_dates_deliveries_and_marks_by_send_time() {
        let reo = 25_000;
        let mut r = Recovery::new(UNA);
        // Segments 0..3 at 0 ms, 3..6 at 30 ms, 6..9 at 60 ms.
        for k in 0..9 {
            r.on_send_new(s((k + 1) * MSS), (k as u32 / 3) * 30_000, false, false);
        }
        let max = s(9 * MSS);
        // Segment 4 (sent at 30 ms) SACKed: the segments sent at 0 ms are
        // more than 25 ms older: lost below it.
        let sack = [Some((s(4000).0 as u32, s(5000).0 as u32)), None, None];
        assert_eq!(r.on_ack(UNA, 0, max, &sack, 130_000, 50_000), MSS);
        assert!(r.detect(UNA, MSS, reo, 130_000));
        assert_eq!(r.lost_end, s(3000));
        // Segment 3 (same burst as 4) is not lost by time.
        assert_eq!(r.board.next_hole(UNA, r.lost_end), Some((UNA, s(3000))));
        // A retransmission of 0 at 140 ms, ACKed 10 ms later: too soon to
        // be it (RTT floor 50 ms), the original arrived: no new date.
        r.on_send_rtx(UNA, s(1000), 140_000);
        r.on_ack(s(1000), 1000, max, &[None; 3], 150_000, 50_000);
        assert_eq!(r.rack_ts, Some(30_000));
        // Segment 8 (sent at 60 ms) SACKed: 3 and 5, sent at 0 and 30 ms,
        // are lost (below the SACKed data).
        let sack = [Some((s(8000).0 as u32, s(9000).0 as u32)), None, None];
        r.on_ack(s(1000), 0, max, &sack, 160_000, 50_000);
        r.detect(s(1000), MSS, reo, 160_000);
        assert_eq!(r.lost_end, s(6000));
    }

    #[test]
    fn send_log_merges_and_is_bounded() {
        let mut r = Recovery::new(UNA);
        r.on_send_new(s(1000), 5, false, false);
        r.on_send_new(s(2000), 5, false, false);
        assert_eq!(r.sends.len(), 1);
        for k in 0..(MAX_SENDS + 10) {
            r.on_send_new(s(3000 + k), 10 + k as u32, false, false);
        }
        assert_eq!(r.sends.len(), MAX_SENDS);
        // The merged entries carry the later time.
        assert_eq!(r.sent_at(s(0)), Some(5));
        assert_eq!(
            r.sends.back().map(|b| (b.end, b.at)),
            Some((s(3000 + MAX_SENDS + 9), 10 + MAX_SENDS as u32 + 9))
        );
        r.on_ack(s(3000 + MAX_SENDS + 9), 0, s(1 << 20), &[None; 3], 0, 0);
        assert!(r.sends.is_empty());
    }

    #[test]
    fn loss_state_and_leaving() {
        let max = s(10 * MSS);
        let mut r = sent(10);
        r.board.add(UNA, max, s(4 * MSS), s(5 * MSS));
        r.enter_loss(UNA, max);
        assert_eq!(r.phase, Phase::Loss);
        // Everything not SACKed is lost, nothing in flight.
        assert_eq!(r.pipe(UNA, max), 0);
        assert_eq!(r.next_lost(UNA, max), Some((UNA, s(4 * MSS))));
        r.high_rxt = s(4 * MSS);
        assert_eq!(r.next_lost(UNA, max), Some((s(5 * MSS), max)));
        assert_eq!(r.pipe(UNA, max), 4 * MSS);
        assert!(!r.leave_if_done(s(9 * MSS)));
        assert!(r.leave_if_done(max));
        assert_eq!(r.phase, Phase::Open);
        assert_eq!(r.next_lost(max, max), None);
        assert_eq!(r.stats.timeouts, 1);
    }

    fn blk(l: usize, r: usize) -> [Option<(u32, u32)>; 3] {
        [Some((s(l).0 as u32, s(r).0 as u32)), None, None]
    }

    #[test]
    fn reo_wnd_grows_on_dsack_and_resets_after_16_recoveries() {
        let max = s(20 * MSS);
        let srtt = 50_000;
        let mut r = sent(20);
        // An RTT sample of 40 ms: min_RTT.
        r.on_ack(s(MSS), MSS, max, &[None; 3], 40_000, 0);
        assert_eq!(r.min_rtt, 40_000);
        // No reordering seen: min_RTT/4 while open with fewer than
        // DupThresh segments SACKed, 0 in recovery or with DupThresh
        // SACKed (RFC 8985 §6.2 step 4).
        assert_eq!(r.reo_wnd(srtt, MSS), 10_000);
        r.phase = Phase::Recovery;
        assert_eq!(r.reo_wnd(srtt, MSS), 0);
        r.phase = Phase::Open;
        r.board.add(s(MSS), max, s(3 * MSS), s(6 * MSS));
        assert_eq!(r.reo_wnd(srtt, MSS), 0);
        r.board.clear();
        // A D-SACK (below the cumulative point): reordering seen, one step
        // more; in recovery too.
        r.on_ack(s(MSS), 0, max, &blk(0, MSS), 41_000, 0);
        assert!(r.dsack);
        r.update_reo_wnd(s(MSS), max);
        assert_eq!(r.reo_wnd(srtt, MSS), 20_000);
        r.phase = Phase::Recovery;
        assert_eq!(r.reo_wnd(srtt, MSS), 20_000);
        r.phase = Phase::Open;
        // Another in the same round trip (SND.UNA below SND.MAX of the
        // step): no step.
        r.on_ack(s(2 * MSS), MSS, max, &blk(0, MSS), 42_000, 0);
        r.update_reo_wnd(s(2 * MSS), max);
        assert_eq!(r.reo_wnd(srtt, MSS), 20_000);
        // An ACK without one does not grow it either.
        r.on_ack(s(3 * MSS), MSS, max, &[None; 3], 43_000, 0);
        r.update_reo_wnd(s(3 * MSS), max);
        assert_eq!(r.reo_wnd(srtt, MSS), 20_000);
        // Once SND.UNA passed that point, the next D-SACK steps again;
        // the window is at most SRTT.
        let max2 = s(30 * MSS);
        r.on_send_new(max2, 44_000, false, false);
        r.on_ack(max, 17 * MSS, max2, &blk(0, MSS), 90_000, 0);
        r.update_reo_wnd(max, max2);
        assert_eq!(r.reo_wnd(srtt, MSS), 30_000);
        r.on_ack(max2, 10 * MSS, max2, &blk(0, MSS), 140_000, 0);
        r.update_reo_wnd(max2, max2);
        assert_eq!(r.reo_wnd(srtt, MSS), 40_000);
        r.on_ack(max2, 0, max2, &blk(0, MSS), 141_000, 0);
        r.update_reo_wnd(max2, max2);
        assert_eq!(r.reo_wnd(srtt, MSS), 50_000);
        // 16 recoveries end without a D-SACK: back to one step (and no
        // more 0 in recovery: reordering was seen).
        for i in 0..16 {
            assert_eq!(r.reo_wnd(srtt, MSS), 50_000, "{i}");
            r.phase = Phase::Recovery;
            r.point = max2;
            assert!(r.leave_if_done(max2));
        }
        assert_eq!(r.reo_wnd(srtt, MSS), 10_000);
        r.phase = Phase::Recovery;
        assert_eq!(r.reo_wnd(srtt, MSS), 10_000);
    }

    #[test]
    fn reordering_seen_from_original_data_below_the_highest_sack() {
        let max = s(10 * MSS);
        let mut r = sent(10);
        r.on_ack(UNA, 0, max, &blk(3 * MSS, 4 * MSS), 100_000, 0);
        assert!(!r.reo_seen);
        // Segment 1, never retransmitted, SACKed below 3: reordering.
        r.on_ack(UNA, 0, max, &blk(MSS, 2 * MSS), 101_000, 0);
        assert!(r.reo_seen);
        // A retransmission of 0 ACKed below the SACKed data is not.
        let mut r = sent(10);
        r.on_ack(UNA, 0, max, &blk(3 * MSS, 4 * MSS), 100_000, 0);
        r.on_send_rtx(UNA, s(MSS), 100_000);
        r.on_ack(s(MSS), MSS, max, &[None; 3], 200_000, 0);
        assert!(!r.reo_seen);
        // The original of 1, cumulatively: it is.
        r.on_ack(s(2 * MSS), MSS, max, &[None; 3], 201_000, 0);
        assert!(r.reo_seen);
    }

    #[test]
    fn undo_needs_every_retransmission_dsacked() {
        let max = s(10 * MSS);
        let mut r = sent(10);
        assert!(r.start_undo(UNA));
        r.enter_recovery(UNA, max, 7 * MSS, 0, MSS);
        r.on_send_rtx(UNA, s(MSS), 1_000);
        r.on_send_rtx(s(MSS), s(2 * MSS), 1_000);
        // A timeout during the recovery continues its episode.
        assert!(!r.start_undo(UNA));
        assert!(!r.may_undo());
        // The originals arrive, then the retransmissions: one D-SACK...
        r.on_ack(s(2 * MSS), 2 * MSS, max, &blk(0, MSS), 100_000, 0);
        assert!(r.dsack);
        assert!(!r.may_undo());
        // ... a block that is no D-SACK (above the cumulative point, in no
        // other block) changes nothing ...
        r.on_ack(s(2 * MSS), 0, max, &blk(4 * MSS, 5 * MSS), 100_000, 0);
        assert!(!r.dsack);
        assert!(!r.may_undo());
        // ... the other, inside the second block (RFC 2883 §4): undo.
        let b = [
            Some((s(MSS).0 as u32, s(2 * MSS).0 as u32)),
            Some((s(0).0 as u32, s(2 * MSS).0 as u32)),
            None,
        ];
        r.on_ack(s(2 * MSS), 0, max, &b, 100_000, 0);
        assert!(r.dsack);
        assert!(r.may_undo());
        r.undone(s(2 * MSS));
        assert_eq!(r.phase, Phase::Open);
        assert!(!r.may_undo());
        assert_eq!(r.stats.undos, 1);
        // The same range resent twice needs two D-SACKs.
        let mut r = sent(10);
        r.start_undo(UNA);
        r.enter_recovery(UNA, max, 7 * MSS, 0, MSS);
        r.on_send_rtx(UNA, s(MSS), 1_000);
        r.on_send_rtx(UNA, s(MSS), 2_000);
        r.on_ack(s(MSS), MSS, max, &blk(0, MSS), 100_000, 0);
        assert!(!r.may_undo());
        r.on_ack(s(MSS), 0, max, &blk(0, MSS), 100_000, 0);
        assert!(r.may_undo());
        // Nothing retransmitted: nothing to undo.
        let mut r = sent(10);
        r.start_undo(UNA);
        r.enter_recovery(UNA, max, 7 * MSS, 0, MSS);
        assert!(!r.may_undo());
    }
}
