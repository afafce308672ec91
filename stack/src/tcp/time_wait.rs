//! TIME-WAIT kept cheaply, as Linux's `inet_timewait_sock` but smaller: when
//! a connection we closed first reaches TIME-WAIT, its slot and socket are
//! released at once and a 64-byte record stays behind, for 2·MSL
//! ([`TIME_WAIT_LEN`], 60 s as Linux's `TCP_TIMEWAIT_LEN`): the 4-tuple,
//! RCV.NXT, SND.NXT, the window field, the peer's last TSval when
//! timestamps are in use, the expiry and the time of the last ACK sent.
//!
//! - The records sit in a ring preallocated to the bound (`enter` never
//!   allocates once the ring has grown to it), in the order they entered;
//!   all live as long, so the oldest is first to expire: expiring is
//!   popping the ring's head while it is due ([`TimeWait::expire`]), no
//!   timer entry, nothing per tick. A full ring drops its oldest record
//!   (Linux's `tcp_max_tw_buckets`), counted.
//! - An index by 4-tuple (open addressing, linear probing, at most half
//!   full, a 32-bit tag of the hash beside each position so that a miss
//!   rarely reads a record) finds a record. The engine looks in it only for
//!   packets no connection takes.
//! - A record whose 2·MSL restarts (a retransmitted FIN) has its expiry
//!   moved in place and is flagged; when it reaches the ring's head it goes
//!   to the tail instead of expiring. A lookup compares the expiry itself,
//!   so a record is never used past it, whatever its place in the ring.
//! - [`TimeWait::segment`] decides what a segment for a record gets, as
//!   RFC 9293 §3.10.7.4 and Linux's `tcp_timewait_state_process` say.
//!
//! Nothing here does I/O or reads a clock: times are milliseconds of the
//! engine's clock, passed in (wrapping `u32`: records live minutes).

use std::hash::BuildHasher;
use std::net::IpAddr;

use smoltcp::socket::tcp::SeqState;

use crate::flow::FlowHash;
use crate::parse::{FlowKey, Proto};

/// How long a record lives after its last (re)start: 2·MSL, Linux's
/// `TCP_TIMEWAIT_LEN`.
pub const TIME_WAIT_LEN_MS: u32 = 60_000;
/// [`TIME_WAIT_LEN_MS`] as a duration.
pub const TIME_WAIT_LEN: std::time::Duration =
    std::time::Duration::from_millis(TIME_WAIT_LEN_MS as u64);

/// ACKs answering pure ACKs or SYNs go out at most once per this long per
/// record (Linux's `tcp_invalid_ratelimit`, 500 ms): two confused ends
/// cannot keep an ACK loop going. Data and FINs are always answered.
const ACK_INTERVAL_MS: u32 = 500;

/// A 2·MSL restart moves a record's expiry only if it moved longer ago
/// than this: a peer cannot make a record churn by the packet.
const RESTART_GRAIN_MS: u32 = 1_000;

const LIVE: u8 = 1;
const TS: u8 = 2;
const RESTARTED: u8 = 4;

/// One connection in TIME-WAIT: 64 bytes.
#[derive(Clone, Copy, Debug)]
struct Record {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    rcv_nxt: u32,
    snd_nxt: u32,
    ts_recent: u32,
    expires: u32,
    last_ack: u32,
    window: u16,
    flags: u8,
}

const _: () = assert!(std::mem::size_of::<Record>() <= 64);

impl Record {
    fn key(&self) -> FlowKey {
        FlowKey {
            proto: Proto::Tcp,
            src: self.src,
            sport: self.sport,
            dst: self.dst,
            dport: self.dport,
        }
    }

    fn is(&self, key: &FlowKey) -> bool {
        self.sport == key.sport
            && self.dport == key.dport
            && self.src == key.src
            && self.dst == key.dst
    }
}

/// `a` is later than `b` (wrapping milliseconds).
#[inline]
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// What a segment for a record gets (from [`TimeWait::segment`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// An ACK (see [`TimeWait::ack`]): a retransmitted FIN, data, anything
    /// out of the window; never an RST.
    Ack,
    /// Nothing: a bare ACK at RCV.NXT (the peer's ACK of something we
    /// sent, or its keep-alive of the old connection), an RST that is not
    /// at RCV.NXT, or an ACK within the rate limit.
    Drop,
    /// An RST at exactly RCV.NXT ends the record (Linux's default,
    /// `tcp_rfc1337=0`).
    Kill,
    /// A SYN above RCV.NXT (or with a newer timestamp): a new connection;
    /// the record is gone, and the new connection's ISN should be `isn`,
    /// above the old SND.NXT (RFC 1122 4.2.2.13, Linux's choice).
    Reuse {
        /// The initial sequence number for our side.
        isn: u32,
    },
}

/// A segment's fields that decide its verdict.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Segment {
    pub syn: bool,
    pub ack: bool,
    pub rst: bool,
    pub fin: bool,
    pub seq: u32,
    pub payload_len: u32,
    /// Its TSval, if it carries a timestamp option (read only when the
    /// record has a TS.Recent).
    pub tsval: Option<u32>,
}

/// The ACK a record sends: its sequence numbers and window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ack {
    pub key: FlowKey,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    /// TS.Recent to echo, when the connection had timestamps.
    pub ts_recent: Option<u32>,
}

/// Counters of the table (the engine reports them).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TwCounters {
    /// Connections that entered TIME-WAIT and left a record.
    pub entered: u64,
    /// Retransmitted FINs answered with an ACK.
    pub fin_acked: u64,
    /// Other segments answered with an ACK (data, out of the window, an
    /// old SYN).
    pub acked: u64,
    /// ACKs not sent: within the rate limit.
    pub ack_limited: u64,
    /// SYNs that reopened the 4-tuple as a new connection.
    pub syn_reuse: u64,
    /// Records ended by an RST at RCV.NXT.
    pub rst_killed: u64,
    /// Records dropped before their time because the table was full.
    pub dropped: u64,
    /// Records that lived their 2·MSL.
    pub expired: u64,
}

/// One core's TIME-WAIT records.
pub(crate) struct TimeWait {
    /// The ring, up to `bound` long (grown once, then reused).
    ring: Vec<Record>,
    head: usize,
    len: usize,
    bound: usize,
    /// `(tag << 32) | position`, or `EMPTY`.
    index: Vec<u64>,
    hasher: FlowHash,
    pub(crate) counters: TwCounters,
}

const EMPTY: u64 = u64::MAX;

impl TimeWait {
    /// A table of at most `bound` records (0: TIME-WAIT is not kept).
    /// Nothing is allocated until the first record.
    pub(crate) fn new(bound: usize) -> Self {
        TimeWait {
            ring: Vec::new(),
            head: 0,
            len: 0,
            bound: bound.min(1 << 30),
            index: Vec::new(),
            hasher: FlowHash::default(),
            counters: TwCounters::default(),
        }
    }

    /// Whether records are kept at all.
    pub(crate) fn enabled(&self) -> bool {
        self.bound > 0
    }

    /// Records held now (live ones and the dead slots not yet popped).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes the table holds: the ring and the index.
    pub(crate) fn bytes(&self) -> usize {
        self.ring.capacity() * std::mem::size_of::<Record>() + self.index.capacity() * 8
    }

    /// A key's 32-bit hash: its low bits are its home slot in the index,
    /// all of it the tag beside its position there.
    fn hash(&self, key: &FlowKey) -> u32 {
        (self.hasher.hash_one(key) >> 32) as u32
    }

    /// The position of `key`'s record, live or past its expiry (the caller
    /// looks), if any.
    #[inline]
    pub(crate) fn find(&self, key: &FlowKey) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        self.find_slot(key, self.hash(key)).map(|(_, pos)| pos)
    }

    /// The index slot and ring position of `key`'s record.
    fn find_slot(&self, key: &FlowKey, h: u32) -> Option<(usize, u32)> {
        let mask = self.index.len().checked_sub(1)?;
        let tag = u64::from(h);
        let mut i = h as usize & mask;
        loop {
            let e = *self.index.get(i)?;
            if e == EMPTY {
                return None;
            }
            if e >> 32 == tag {
                let pos = e as u32;
                if self.ring.get(pos as usize).is_some_and(|r| r.is(key)) {
                    return Some((i, pos));
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Remove index slot `i` (backward-shift deletion: no tombstones).
    fn unindex_slot(&mut self, mut i: usize) {
        let mask = self.index.len() - 1;
        loop {
            self.index[i] = EMPTY;
            let mut j = i;
            loop {
                j = (j + 1) & mask;
                let e = self.index[j];
                if e == EMPTY {
                    return;
                }
                let home = (e >> 32) as usize & mask;
                // Move e back into i unless its home lies cyclically in (i, j].
                let stays = if i <= j {
                    i < home && home <= j
                } else {
                    i < home || home <= j
                };
                if !stays {
                    self.index[i] = e;
                    i = j;
                    break;
                }
            }
        }
    }

    fn unindex(&mut self, pos: u32) {
        let Some(r) = self.ring.get(pos as usize) else {
            return;
        };
        let key = r.key();
        let h = self.hash(&key);
        if let Some((i, p)) = self.find_slot(&key, h) {
            if p == pos {
                self.unindex_slot(i);
            }
        }
    }

    fn index_insert(&mut self, h: u32, pos: u32) {
        let mask = self.index.len() - 1;
        let mut i = h as usize & mask;
        while self.index[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.index[i] = (u64::from(h) << 32) | u64::from(pos);
    }

    /// Write `rec` at ring position `pos` (the ring grows by one when `pos`
    /// is its end, up to the bound it was reserved for).
    fn put(&mut self, pos: usize, rec: Record) {
        if pos == self.ring.len() {
            self.ring.push(rec);
        } else {
            self.ring[pos] = rec;
        }
    }

    /// A connection of `key` entered TIME-WAIT now (`now_ms`) with `seq`.
    /// Returns the 4-tuple of a live record dropped to make room (the
    /// table was full), whose flow the engine forgets.
    pub(crate) fn enter(&mut self, key: FlowKey, seq: SeqState, now_ms: u32) -> Option<FlowKey> {
        if self.bound == 0 {
            return None;
        }
        if self.index.is_empty() {
            // Once: at most half full, so probes stay short.
            let slots = (self.bound * 2).next_power_of_two();
            self.index = vec![EMPTY; slots];
            self.ring.reserve_exact(self.bound);
        }
        self.counters.entered += 1;
        let rec = Record {
            src: key.src,
            dst: key.dst,
            sport: key.sport,
            dport: key.dport,
            rcv_nxt: seq.rcv_nxt.0 as u32,
            snd_nxt: seq.snd_nxt.0 as u32,
            ts_recent: seq.ts_recent.unwrap_or(0),
            expires: now_ms.wrapping_add(TIME_WAIT_LEN_MS),
            last_ack: now_ms.wrapping_sub(ACK_INTERVAL_MS),
            window: seq.window,
            flags: LIVE | if seq.ts_recent.is_some() { TS } else { 0 },
        };
        let h = self.hash(&key);
        if let Some((_, pos)) = self.find_slot(&key, h) {
            // A record of an earlier incarnation (past its expiry, or one
            // the peer reopened with a SYN this core did not see): the new
            // one takes its place and goes round once more.
            let r = &mut self.ring[pos as usize];
            if !after(r.expires, now_ms) {
                self.counters.expired += 1;
            }
            *r = Record {
                flags: rec.flags | RESTARTED,
                ..rec
            };
            return None;
        }
        let mut dropped = None;
        if self.len == self.bound {
            dropped = self.pop_head(now_ms, true);
        }
        let pos = (self.head + self.len) % self.bound;
        self.put(pos, rec);
        self.len += 1;
        self.index_insert(h, pos as u32);
        dropped
    }

    /// Take the ring's head out. A live one is unindexed and counted as
    /// dropped (`full`) or expired; returns its 4-tuple if it was live.
    fn pop_head(&mut self, now_ms: u32, full: bool) -> Option<FlowKey> {
        if self.len == 0 {
            return None;
        }
        let pos = self.head;
        self.head = (self.head + 1) % self.bound;
        self.len -= 1;
        let r = self.ring[pos];
        if r.flags & LIVE == 0 {
            return None;
        }
        self.unindex(pos as u32);
        self.ring[pos].flags = 0;
        if full && after(r.expires, now_ms) {
            self.counters.dropped += 1;
        } else {
            self.counters.expired += 1;
        }
        Some(r.key())
    }

    /// Pop the records due at `now_ms`; `gone` gets the 4-tuple of each
    /// live one. A record restarted since it entered goes to the tail.
    pub(crate) fn expire(&mut self, now_ms: u32, mut gone: impl FnMut(FlowKey)) {
        while self.len > 0 {
            let r = self.ring[self.head];
            if r.flags & LIVE == 0 {
                self.pop_head(now_ms, false);
                continue;
            }
            if !after(r.expires, now_ms) {
                if let Some(k) = self.pop_head(now_ms, false) {
                    gone(k);
                }
                continue;
            }
            if r.flags & RESTARTED == 0 {
                return;
            }
            // Restarted: to the tail, unchanged but for the flag.
            let from = self.head as u32;
            self.unindex(from);
            self.ring[self.head].flags = 0;
            self.head = (self.head + 1) % self.bound;
            let to = (self.head + self.len - 1) % self.bound;
            self.put(
                to,
                Record {
                    flags: r.flags & !RESTARTED,
                    ..r
                },
            );
            let h = self.hash(&r.key());
            self.index_insert(h, to as u32);
        }
    }

    /// When the ring's head comes due (the engine wakes for it); `None`
    /// when the table is empty.
    pub(crate) fn next_due(&self, now_ms: u32) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let r = &self.ring[self.head];
        if r.flags & (LIVE | RESTARTED) != LIVE {
            return Some(now_ms);
        }
        Some(r.expires)
    }

    /// Whether the record at `pos` is live at `now_ms` (not past its
    /// expiry).
    pub(crate) fn is_live(&self, pos: u32, now_ms: u32) -> bool {
        self.ring
            .get(pos as usize)
            .is_some_and(|r| r.flags & LIVE != 0 && after(r.expires, now_ms))
    }

    /// Whether the record at `pos` keeps the peer's timestamps (a
    /// segment's TSval is then read for it).
    pub(crate) fn has_ts(&self, pos: u32) -> bool {
        self.ring
            .get(pos as usize)
            .is_some_and(|r| r.flags & TS != 0)
    }

    /// End the record at `pos` before its time (it expired unnoticed, an
    /// RST, a new connection): unindexed, its ring slot left dead until
    /// the head passes it. Returns its 4-tuple.
    pub(crate) fn remove(&mut self, pos: u32) -> Option<FlowKey> {
        let r = *self.ring.get(pos as usize)?;
        if r.flags & LIVE == 0 {
            return None;
        }
        self.unindex(pos);
        self.ring[pos as usize].flags = 0;
        Some(r.key())
    }

    /// Count a record that a lookup found past its expiry (the caller
    /// removes it).
    pub(crate) fn count_expired(&mut self) {
        self.counters.expired += 1;
    }

    /// What `seg` gets from the live record at `pos` at `now_ms`; restarts
    /// its 2·MSL and records the ACK's time as the verdict implies, and
    /// counts. A `Kill` or `Reuse` leaves the removal to the caller.
    pub(crate) fn segment(&mut self, pos: u32, seg: &Segment, now_ms: u32) -> Verdict {
        let Some(r) = self.ring.get_mut(pos as usize) else {
            return Verdict::Drop;
        };
        let has_ts = r.flags & TS != 0;
        let seg_len = seg
            .payload_len
            .wrapping_add(u32::from(seg.syn))
            .wrapping_add(u32::from(seg.fin));
        // PAWS (RFC 7323 §5): a TSval older than TS.Recent is an old
        // duplicate; an RST is not held to it.
        let paws_reject = has_ts
            && !seg.rst
            && seg
                .tsval
                .is_some_and(|v| (v.wrapping_sub(r.ts_recent) as i32) < 0);
        if !paws_reject && seg.seq == r.rcv_nxt && (seg_len == 0 || seg.rst) {
            if seg.rst {
                self.counters.rst_killed += 1;
                return Verdict::Kill;
            }
            // A bare ACK in the window: the peer is still there; nothing to
            // answer (an ACK of ours would only start an ACK loop).
            restart(r, now_ms);
            if let (true, Some(v)) = (has_ts, seg.tsval) {
                r.ts_recent = v;
            }
            return Verdict::Drop;
        }
        let newer_ts = has_ts
            && seg
                .tsval
                .is_some_and(|v| (r.ts_recent.wrapping_sub(v) as i32) < 0);
        if seg.syn
            && !seg.rst
            && !seg.ack
            && !paws_reject
            && ((seg.seq.wrapping_sub(r.rcv_nxt) as i32) > 0 || newer_ts)
        {
            self.counters.syn_reuse += 1;
            let isn = r.snd_nxt.wrapping_add(65535 + 2);
            return Verdict::Reuse {
                isn: if isn == 0 { 1 } else { isn },
            };
        }
        if seg.rst {
            return Verdict::Drop;
        }
        if paws_reject || seg.ack {
            restart(r, now_ms);
        }
        // Data or a FIN is never held back (a peer waiting for this ACK
        // retransmits with backoff); a pure ACK or a SYN is rate-limited.
        let limited = seg_len == 0 || seg.syn;
        if limited && !after(now_ms, r.last_ack.wrapping_add(ACK_INTERVAL_MS - 1)) {
            self.counters.ack_limited += 1;
            return Verdict::Drop;
        }
        r.last_ack = now_ms;
        if seg.fin {
            self.counters.fin_acked += 1;
        } else {
            self.counters.acked += 1;
        }
        Verdict::Ack
    }

    /// The ACK the record at `pos` sends.
    pub(crate) fn ack(&self, pos: u32) -> Option<Ack> {
        let r = self.ring.get(pos as usize)?;
        Some(Ack {
            key: r.key(),
            seq: r.snd_nxt,
            ack: r.rcv_nxt,
            window: r.window,
            ts_recent: (r.flags & TS != 0).then_some(r.ts_recent),
        })
    }
}

/// Restart `r`'s 2·MSL at `now_ms` (to the grain: see `RESTART_GRAIN_MS`).
fn restart(r: &mut Record, now_ms: u32) {
    let want = now_ms.wrapping_add(TIME_WAIT_LEN_MS);
    if after(want, r.expires.wrapping_add(RESTART_GRAIN_MS - 1)) {
        r.expires = want;
        r.flags |= RESTARTED;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::TcpSeqNumber;

    fn seq(rcv: u32, snd: u32, ts: Option<u32>) -> SeqState {
        SeqState {
            snd_nxt: TcpSeqNumber(snd as i32),
            rcv_nxt: TcpSeqNumber(rcv as i32),
            window: 512,
            ts_recent: ts,
        }
    }

    fn key(sport: u16) -> FlowKey {
        FlowKey::test_tcp4(sport)
    }

    fn fin(seq: u32) -> Segment {
        Segment {
            fin: true,
            ack: true,
            seq,
            ..Segment::default()
        }
    }

    fn syn(seq: u32, tsval: Option<u32>) -> Segment {
        Segment {
            syn: true,
            seq,
            tsval,
            ..Segment::default()
        }
    }

    #[test]
    fn a_retransmitted_fin_is_acked_and_restarts_the_wait() {
        let mut tw = TimeWait::new(8);
        assert_eq!(tw.enter(key(1), seq(1001, 5001, None), 0), None);
        let pos = tw.find(&key(1)).unwrap();
        assert_eq!(
            tw.ack(pos),
            Some(Ack {
                key: key(1),
                seq: 5001,
                ack: 1001,
                window: 512,
                ts_recent: None,
            })
        );
        // A connection with timestamps: its ACKs echo TS.Recent.
        let mut with_ts = TimeWait::new(8);
        assert_eq!(with_ts.enter(key(2), seq(1001, 5001, Some(77)), 0), None);
        let p2 = with_ts.find(&key(2)).unwrap();
        assert_eq!(with_ts.ack(p2).and_then(|a| a.ts_recent), Some(77));
        // At 50 s: answered, and the wait runs from here.
        assert_eq!(tw.segment(pos, &fin(1000), 50_000), Verdict::Ack);
        assert_eq!(tw.counters.fin_acked, 1);
        tw.expire(60_000, |_| panic!("restarted, not due"));
        let pos = tw.find(&key(1)).unwrap();
        assert!(tw.is_live(pos, 109_000));
        assert!(!tw.is_live(pos, 110_000));
        // Another retransmission at once is answered too (no rate limit on
        // FINs).
        assert_eq!(tw.segment(pos, &fin(1000), 50_001), Verdict::Ack);
        let mut gone = Vec::new();
        tw.expire(110_000, |k| gone.push(k));
        assert_eq!(gone, vec![key(1)]);
        assert_eq!(tw.find(&key(1)), None);
        assert_eq!((tw.len(), tw.counters.expired), (0, 1));
    }

    #[test]
    fn records_expire_in_order_after_two_msl() {
        let mut tw = TimeWait::new(8);
        tw.enter(key(1), seq(1, 1, None), 0);
        tw.enter(key(2), seq(1, 1, None), 10_000);
        assert_eq!(tw.next_due(0), Some(60_000));
        let mut gone = Vec::new();
        tw.expire(59_999, |k| gone.push(k));
        assert!(gone.is_empty());
        tw.expire(60_000, |k| gone.push(k));
        assert_eq!(gone, vec![key(1)]);
        assert!(tw.find(&key(2)).is_some());
        assert_eq!(tw.next_due(60_000), Some(70_000));
    }

    #[test]
    fn a_full_table_drops_its_oldest_record() {
        let mut tw = TimeWait::new(4);
        for p in 0..4 {
            assert_eq!(tw.enter(key(p), seq(1, 1, None), u32::from(p)), None);
        }
        assert_eq!(tw.enter(key(9), seq(1, 1, None), 10), Some(key(0)));
        assert_eq!(tw.enter(key(10), seq(1, 1, None), 11), Some(key(1)));
        assert_eq!(tw.len(), 4);
        assert_eq!(tw.counters.dropped, 2);
        assert_eq!(tw.find(&key(0)), None);
        for p in [2, 3, 9, 10] {
            assert!(tw.find(&key(p)).is_some(), "{p}");
        }
        // The ring never grew past its bound.
        assert_eq!(tw.ring.capacity(), 4);
    }

    #[test]
    fn an_rst_kills_only_at_rcv_nxt() {
        let mut tw = TimeWait::new(4);
        tw.enter(key(1), seq(1001, 5001, None), 0);
        let pos = tw.find(&key(1)).unwrap();
        let rst = |seq| Segment {
            rst: true,
            seq,
            ..Segment::default()
        };
        assert_eq!(tw.segment(pos, &rst(1002), 1), Verdict::Drop);
        assert_eq!(tw.segment(pos, &rst(900), 1), Verdict::Drop);
        assert_eq!(tw.segment(pos, &rst(1001), 1), Verdict::Kill);
        assert_eq!(tw.remove(pos), Some(key(1)));
        assert_eq!(tw.find(&key(1)), None);
        assert_eq!(tw.remove(pos), None, "once");
        // The dead slot is popped quietly.
        tw.expire(100_000, |_| panic!("nothing live"));
        assert_eq!(tw.len(), 0);
        assert_eq!(tw.counters.expired, 0);
    }

    #[test]
    fn a_syn_reopens_only_above_rcv_nxt_or_with_a_newer_timestamp() {
        let mut tw = TimeWait::new(4);
        tw.enter(key(1), seq(1001, 5001, None), 0);
        let pos = tw.find(&key(1)).unwrap();
        // At or below RCV.NXT: an old duplicate; answered with an ACK (rate
        // limited).
        assert_eq!(tw.segment(pos, &syn(1000, None), 1_000), Verdict::Ack);
        assert_eq!(tw.segment(pos, &syn(900, None), 1_100), Verdict::Drop);
        assert_eq!(tw.counters.ack_limited, 1);
        assert_eq!(
            tw.segment(pos, &syn(1002, None), 1_200),
            Verdict::Reuse { isn: 5001 + 65537 }
        );
        // With timestamps: a newer TSval reopens even below RCV.NXT; an
        // older one is an old duplicate.
        tw.enter(key(2), seq(1001, 5001, Some(700)), 0);
        let pos = tw.find(&key(2)).unwrap();
        assert_eq!(tw.segment(pos, &syn(10, Some(600)), 1_000), Verdict::Ack);
        assert_eq!(
            tw.segment(pos, &syn(10, Some(800)), 2_000),
            Verdict::Reuse { isn: 5001 + 65537 }
        );
        assert_eq!(tw.counters.syn_reuse, 2);
    }

    #[test]
    fn data_and_out_of_window_segments_get_acks_bare_acks_do_not() {
        let mut tw = TimeWait::new(4);
        tw.enter(key(1), seq(1001, 5001, None), 0);
        let pos = tw.find(&key(1)).unwrap();
        let data = Segment {
            ack: true,
            seq: 1001,
            payload_len: 10,
            ..Segment::default()
        };
        assert_eq!(tw.segment(pos, &data, 1), Verdict::Ack);
        assert_eq!(
            tw.segment(pos, &data, 2),
            Verdict::Ack,
            "data is not limited"
        );
        let bare = Segment {
            ack: true,
            seq: 1001,
            ..Segment::default()
        };
        assert_eq!(tw.segment(pos, &bare, 3), Verdict::Drop);
        let old_ack = Segment {
            ack: true,
            seq: 500,
            ..Segment::default()
        };
        assert_eq!(tw.segment(pos, &old_ack, 1_000), Verdict::Ack);
        assert_eq!(tw.segment(pos, &old_ack, 1_200), Verdict::Drop);
        assert_eq!(tw.counters.acked, 3);
    }

    #[test]
    fn paws_refuses_old_timestamps() {
        let mut tw = TimeWait::new(4);
        tw.enter(key(1), seq(1001, 5001, Some(700)), 0);
        let pos = tw.find(&key(1)).unwrap();
        let old_rst_free = Segment {
            ack: true,
            seq: 1001,
            tsval: Some(600),
            ..Segment::default()
        };
        // A bare ACK at RCV.NXT but with an old TSval is not in the window.
        assert_eq!(tw.segment(pos, &old_rst_free, 1_000), Verdict::Ack);
        let fresh = Segment {
            tsval: Some(900),
            ..old_rst_free
        };
        assert_eq!(tw.segment(pos, &fresh, 2_000), Verdict::Drop);
        // TS.Recent moved: 800 is old now.
        let older = Segment {
            tsval: Some(800),
            ..old_rst_free
        };
        assert_eq!(tw.segment(pos, &older, 3_000), Verdict::Ack);
    }

    #[test]
    fn a_reentered_tuple_reuses_its_record_and_the_index_survives_churn() {
        let mut tw = TimeWait::new(64);
        let mut now = 0;
        // Many rounds over more tuples than the bound: every present
        // record is found, every absent one is not.
        for round in 0..20u32 {
            for p in 0..100u16 {
                now += 7;
                tw.enter(key(p), seq(round, p.into(), None), now);
                if p % 3 == 0 {
                    if let Some(pos) = tw.find(&key(p)) {
                        tw.remove(pos);
                    }
                }
            }
            tw.expire(now.wrapping_sub(50_000), |_| {});
            let live = (0..100u16).filter(|&p| tw.find(&key(p)).is_some()).count();
            assert!(live <= 64, "round {round}: {live}");
            for p in 0..100u16 {
                if let Some(pos) = tw.find(&key(p)) {
                    assert_eq!(tw.ack(pos).unwrap().key, key(p));
                    assert_ne!(p % 3, 0);
                }
            }
        }
        // The last round's last records are all there.
        for p in 90..100u16 {
            assert_eq!(tw.find(&key(p)).is_some(), p % 3 != 0, "{p}");
        }
    }

    #[test]
    fn a_zero_bound_keeps_nothing() {
        let mut tw = TimeWait::new(0);
        assert!(!tw.enabled());
        assert_eq!(tw.enter(key(1), seq(1, 1, None), 0), None);
        assert_eq!(tw.find(&key(1)), None);
        assert_eq!(tw.bytes(), 0);
    }
}
