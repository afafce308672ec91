//! xdpstack patch 11 (issue 19): SACK-based loss recovery for the sender.
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

/// Most SACKed ranges remembered. A peer reports at most 3-4 per ACK, so
/// this only binds against a receiver that scatters its blocks on purpose;
/// the highest range is forgotten first, which at worst resends data the
/// peer holds.
const MAX_BLOCKS: usize = 128;

/// Most entries in the send-time log; past it, consecutive sends merge
/// whatever their times (coarser loss detection by time, never wrong
/// retransmissions: merged entries carry the later time).
const MAX_SENDS: usize = 4096;

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
        let left = if left < una { una } else { left };
        // First block whose end reaches `left` (it may merge).
        let start = self.blocks.partition_point(|b| b.1 < left);
        // Blocks from `start` that begin at or before `right` merge.
        let mut end = start;
        let mut merged = (left, right);
        let mut held = 0;
        while end < self.blocks.len() && self.blocks[end].0 <= right {
            let b = self.blocks[end];
            held += b.1 - b.0;
            if b.0 < merged.0 {
                merged.0 = b.0;
            }
            if b.1 > merged.1 {
                merged.1 = b.1;
            }
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
        if self.blocks.len() > MAX_BLOCKS
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
        for b in &self.blocks {
            if b.0 >= to {
                break;
            }
            let l = if b.0 > from { b.0 } else { from };
            let r = if b.1 < to { b.1 } else { to };
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
        for b in &self.blocks {
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
            return Some((s, if b.0 < limit { b.0 } else { limit }));
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
    /// Original transmissions: (end sequence number, send time), in order.
    sends: VecDeque<(TcpSeqNumber, Micros)>,
    /// The last retransmission of the tail probe or of a hole: its range
    /// and send time, to date its delivery.
    rtx: Option<(TcpSeqNumber, TcpSeqNumber, Micros)>,
    /// When the tail loss probe fires, if armed.
    pub(super) tlp_at: Option<crate::time::Instant>,
    /// A probe went out and nothing new was acknowledged since.
    pub(super) tlp_sent: bool,
    /// RACK.xmit_ts: the send time of the newest data delivered.
    rack_ts: Option<Micros>,
    /// Retransmissions, fast recoveries, timeouts and probes (counters for
    /// the owner).
    pub(super) stats: RecoveryStats,
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
            rtx: None,
            tlp_at: None,
            tlp_sent: false,
            rack_ts: None,
            stats: RecoveryStats::default(),
        }
    }

    /// Record an original transmission ending at `end`, sent at `now`.
    pub(super) fn on_send_new(&mut self, end: TcpSeqNumber, now: Micros) {
        let full = self.sends.len() >= MAX_SENDS;
        if let Some(last) = self.sends.back_mut()
            && (last.1 == now || full)
        {
            last.0 = end;
            last.1 = now;
            return;
        }
        self.sends.push_back((end, now));
    }

    /// Record a retransmission of `[from, to)` at `now`.
    pub(super) fn on_send_rtx(&mut self, from: TcpSeqNumber, to: TcpSeqNumber, now: Micros) {
        self.rtx = Some((from, to, now));
        self.stats.retransmits = self.stats.retransmits.wrapping_add(1);
    }

    /// SND.UNA moved to `una`: forget send times it covers.
    fn drop_sends(&mut self, una: TcpSeqNumber) {
        while let Some(&(end, _)) = self.sends.front() {
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
        let i = self.sends.partition_point(|s| s.0 <= seq);
        self.sends.get(i).map(|s| s.1)
    }

    /// The end of the original transmissions sent at or before `t`.
    fn sent_by(&self, t: Micros) -> Option<TcpSeqNumber> {
        // Send times are monotonic in the log: find the last at or before t.
        let i = self
            .sends
            .partition_point(|s| (t.wrapping_sub(s.1) as i32) >= 0);
        if i == 0 {
            None
        } else {
            Some(self.sends[i - 1].0)
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
        let covered = self.board.advance(una);
        // xdpstack patch 11: the cumulative point stopped at (or inside)
        // data the receiver had SACKed: it dropped what it held out of order
        // (reneging, RFC 2018 §8; Linux's `tcp_check_sack_reneging`). The
        // scoreboard is forgotten, or neither recovery nor the loss state
        // would ever resend that data and the connection would stall.
        if self.board.is_sacked(una) {
            self.board.clear();
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
        if acked > 0 {
            self.tlp_sent = false;
        }
        if let Some(top) = top {
            let last = top - 1;
            let at = match self.rtx {
                Some((from, to, t)) if from <= last && last < to => {
                    if now.wrapping_sub(t) >= rtt_floor {
                        Some(t)
                    } else {
                        None
                    }
                }
                _ => self.sent_at(last),
            };
            if let Some(t) = at
                && self.rack_ts.is_none_or(|r| (t.wrapping_sub(r) as i32) > 0)
            {
                self.rack_ts = Some(t);
            }
        }
        self.drop_sends(una);
        if let Some((_, to, _)) = self.rtx
            && to <= una
        {
            self.rtx = None;
        }
        if self.high_rxt < una {
            self.high_rxt = una;
        }
        if self.lost_end < una {
            self.lost_end = una;
        }
        (acked - acked.min(covered)) + newly
    }

    /// Move `lost_end` up to what the scoreboard (DupThresh) and the send
    /// times (RACK: sent a reordering window before the newest delivered
    /// data, and below SACKed data) say is lost. Returns whether some byte
    /// at or above SND.UNA (`una`) is lost and was not retransmitted yet.
    pub(super) fn detect(&mut self, una: TcpSeqNumber, mss: usize, reo_wnd: Micros) -> bool {
        if let Some(l) = self.board.lost_below(mss)
            && l > self.lost_end
        {
            self.lost_end = l;
        }
        if let (Some(t), Some(high)) = (self.rack_ts, self.board.highest())
            && let Some(end) = self.sent_by(t.wrapping_sub(reo_wnd))
        {
            let end = if end > high { high } else { end };
            if end > self.lost_end {
                self.lost_end = end;
            }
        }
        // xdpstack patch 11: not what a recovery resent already (HighRxt
        // outlives it when it repaired holes beyond its recovery point; the
        // next ACK that still showed them started another recovery, which
        // resent them again and cut the window a second time).
        let from = if self.high_rxt > una {
            self.high_rxt
        } else {
            una
        };
        self.board.next_hole(from, self.lost_end).is_some()
    }

    /// Bytes in flight (RFC 6675 `pipe`): unSACKed bytes sent, less those
    /// lost and not yet retransmitted.
    pub(super) fn pipe(&self, una: TcpSeqNumber, snd_max: TcpSeqNumber) -> usize {
        let out = self.board.unsacked(una, snd_max);
        let from = if self.high_rxt > una {
            self.high_rxt
        } else {
            una
        };
        let lost = if self.lost_end > from {
            self.board.unsacked(from, self.lost_end.min_seq(snd_max))
        } else {
            0
        };
        out - lost.min(out)
    }

    /// RFC 6675 `NextSeg` rule 1: the first lost, unSACKed range not yet
    /// retransmitted.
    pub(super) fn next_lost(
        &self,
        una: TcpSeqNumber,
        snd_max: TcpSeqNumber,
    ) -> Option<(TcpSeqNumber, TcpSeqNumber)> {
        if self.phase == Phase::Open {
            return None;
        }
        let from = if self.high_rxt > una {
            self.high_rxt
        } else {
            una
        };
        self.board.next_hole(from, self.lost_end.min_seq(snd_max))
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
        // HighRxt stays where a recovery before left it, if above SND.UNA:
        // what it resent is in flight (xdpstack patch 11).
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
        // xdpstack patch 11: whole segments, as Linux counts PRR in
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
    pub(super) fn enter_loss(&mut self, una: TcpSeqNumber, snd_max: TcpSeqNumber) {
        self.phase = Phase::Loss;
        self.point = snd_max;
        self.high_rxt = una;
        self.lost_end = snd_max;
        self.dup_acks = 0;
        self.tlp_at = None;
        self.rtx = None;
        self.stats.timeouts = self.stats.timeouts.wrapping_add(1);
    }

    /// The phase ends once `una` reaches the recovery point.
    pub(super) fn leave_if_done(&mut self, una: TcpSeqNumber) -> bool {
        if self.phase != Phase::Open && una >= self.point {
            self.phase = Phase::Open;
            self.lost_end = una;
            // HighRxt stays: holes beyond the recovery point may have been
            // resent, and their retransmissions are in flight (`detect`).
            self.allow = 0;
            true
        } else {
            false
        }
    }
}

trait MinSeq {
    fn min_seq(self, other: Self) -> Self;
}

impl MinSeq for TcpSeqNumber {
    fn min_seq(self, other: Self) -> Self {
        if self < other { self } else { other }
    }
}
