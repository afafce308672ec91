//! Neighbour state, learned as Linux learns it (net/core/neighbour.c,
//! net/ipv4/arp.c, net/ipv6/ndisc.c):
//!
//! - only ARP and NDP create or change an entry: an ARP request or a
//!   neighbour solicitation (with a source link-layer address) addressed to
//!   us creates one, so the stack can answer the asker; an ARP reply or a
//!   neighbour advertisement only fills an entry we asked for (pending) or
//!   updates one we have, never creates one (Linux `arp_accept=0`, RFC 4861
//!   §7.2.5);
//! - an IP packet never teaches a MAC: one whose source MAC is the entry's
//!   confirms the entry (Linux's upper-layer confirmation), one from another
//!   MAC is counted and ignored, so a spoofed source cannot redirect replies;
//! - a different MAC replaces a live entry only after the lock time
//!   ([`NEIGHBOR_LOCKTIME_MS`], Linux `locktime`, 1 s) since the entry was
//!   last set or confirmed, and an advertisement without the override flag
//!   never replaces it (RFC 4861 §7.2.5); refusals are counted;
//! - the table is bounded and evicts in O(1): [`SHARDS`] shards, each with a
//!   fixed number of slots in two lists: probation (entries nobody confirmed:
//!   created by a solicitation, or pending) in FIFO order, and protected
//!   (confirmed by traffic or by the answer to our own request) in LRU order,
//!   at most three quarters of the shard. A new entry takes a free slot or
//!   the oldest probationary one, so a flood of solicitations from new
//!   sources (an IPv6 /64 has 2^64) churns the probation list and leaves
//!   confirmed peers alone. Nothing ever scans a shard.
//!
//! Time is passed in (`now`, milliseconds); nothing here reads a clock.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

/// How long an entry is used after it was last set or confirmed.
pub const NEIGHBOR_TTL_MS: u64 = 60_000;
/// A live entry keeps its MAC at least this long after it was last set or
/// confirmed (Linux `locktime`).
pub const NEIGHBOR_LOCKTIME_MS: u64 = 1_000;
/// An address we sent a request for accepts a reply this long (three
/// retransmissions of one second, Linux `mcast_solicit` x `retrans_time`).
pub const PENDING_MS: u64 = 3_000;
/// Entries of the shared table, all shards together.
pub const MAX_NEIGHBORS: usize = 16_384;
/// Shards of the shared table (each with its own lock).
pub const SHARDS: usize = 64;
/// Slots per shard.
pub const SHARD_SLOTS: usize = MAX_NEIGHBORS / SHARDS;
/// Most protected entries per shard: the rest is always left to new peers.
pub const SHARD_PROTECTED: usize = SHARD_SLOTS * 3 / 4;
/// Entries of each worker's local cache.
pub const LOCAL_NEIGHBORS: usize = 1_024;

/// What a neighbour message says, for [`SharedNeighbors::update`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hint {
    /// An ARP request or a neighbour solicitation from the neighbour.
    /// `create`: it is addressed to us (creates the entry; otherwise only an
    /// existing entry is updated).
    Request {
        /// May create an entry.
        create: bool,
    },
    /// An ARP reply or a neighbour advertisement for the neighbour's
    /// address. `override_`: it may replace a different MAC (ARP: always,
    /// after the lock time; NA: the O flag).
    Reply {
        /// May replace a different MAC.
        override_: bool,
    },
    /// A valid IP packet from the neighbour's address carried this MAC as
    /// its source: confirms a matching entry, nothing else.
    Confirm,
}

/// What [`SharedNeighbors::update`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// A new entry, or a pending one got its MAC.
    Created,
    /// The MAC of an entry was replaced.
    Changed,
    /// Same MAC: the entry lives on.
    Refreshed,
    /// Refused: a different MAC within the lock time.
    Locked,
    /// Refused: an advertisement without the override flag for a different
    /// MAC.
    NoOverride,
    /// Refused: a reply for an address we neither know nor asked for.
    Unsolicited,
    /// Ignored: an IP packet from the address of an entry with another MAC.
    Mismatch,
    /// Nothing to do: no entry, and this hint does not create one.
    Unknown,
}

impl Update {
    /// The entry now holds the message's MAC.
    pub fn learned(self) -> bool {
        matches!(self, Update::Created | Update::Changed | Update::Refreshed)
    }
}

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Slot {
    ip: IpAddr,
    /// `None` while only pending (we asked, no answer yet).
    mac: Option<[u8; 6]>,
    /// The MAC is used until then.
    expires_ms: u64,
    /// Replies are solicited until then.
    pending_until: u64,
    /// Last set or confirmed: the lock time counts from here.
    updated_ms: u64,
    protected: bool,
    prev: u32,
    next: u32,
}

impl Slot {
    /// A fresh entry `ip -> mac`, valid for [`NEIGHBOR_TTL_MS`] from `now_ms`,
    /// on no list yet.
    fn resolved(ip: IpAddr, mac: [u8; 6], now_ms: u64, protected: bool) -> Slot {
        Slot {
            ip,
            mac: Some(mac),
            expires_ms: now_ms.saturating_add(NEIGHBOR_TTL_MS),
            pending_until: 0,
            updated_ms: now_ms,
            protected,
            prev: NIL,
            next: NIL,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct List {
    head: u32,
    tail: u32,
    len: usize,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        len: 0,
    };
}

/// One shard: a map to fixed slots, and the two eviction lists threaded
/// through the slots (indices, no allocation after the slots are made).
#[derive(Debug)]
struct Shard {
    map: HashMap<IpAddr, u32>,
    slots: Vec<Slot>,
    probation: List,
    protected: List,
}

impl Shard {
    fn new() -> Self {
        Shard {
            map: HashMap::new(),
            slots: Vec::new(),
            probation: List::EMPTY,
            protected: List::EMPTY,
        }
    }

    fn list(&mut self, protected: bool) -> &mut List {
        if protected {
            &mut self.protected
        } else {
            &mut self.probation
        }
    }

    fn unlink(&mut self, i: u32) {
        let s = self.slots[i as usize];
        if s.prev == NIL {
            self.list(s.protected).head = s.next;
        } else {
            self.slots[s.prev as usize].next = s.next;
        }
        if s.next == NIL {
            self.list(s.protected).tail = s.prev;
        } else {
            self.slots[s.next as usize].prev = s.prev;
        }
        self.list(s.protected).len -= 1;
    }

    /// Append slot `i` as the newest of a list.
    fn push_back(&mut self, i: u32, protected: bool) {
        let tail = self.list(protected).tail;
        {
            let s = &mut self.slots[i as usize];
            s.protected = protected;
            s.prev = tail;
            s.next = NIL;
        }
        if tail == NIL {
            self.list(protected).head = i;
        } else {
            self.slots[tail as usize].next = i;
        }
        let l = self.list(protected);
        l.tail = i;
        l.len += 1;
    }

    /// Make slot `i` the most recently confirmed protected entry. A full
    /// protected list hands its least recently confirmed entry back to
    /// probation (a second chance, not an eviction).
    fn promote(&mut self, i: u32) {
        let was = self.slots[i as usize].protected;
        self.unlink(i);
        if !was && self.protected.len >= SHARD_PROTECTED {
            let old = self.protected.head;
            self.unlink(old);
            self.push_back(old, false);
        }
        self.push_back(i, true);
    }

    /// A slot for a new entry: an unused one, or the oldest probationary
    /// one (there is always one when the shard is full: protected entries
    /// take at most three quarters). Returns whether an entry was evicted.
    fn alloc(&mut self, slot: Slot) -> (u32, bool) {
        if self.slots.len() < SHARD_SLOTS {
            self.slots.push(slot);
            return ((self.slots.len() - 1) as u32, false);
        }
        let victim = if self.probation.head != NIL {
            self.probation.head
        } else {
            self.protected.head
        };
        self.unlink(victim);
        let old_ip = self.slots[victim as usize].ip;
        self.map.remove(&old_ip);
        self.slots[victim as usize] = slot;
        (victim, true)
    }

    /// Insert a new entry at the tail of probation (or protected).
    fn insert(&mut self, slot: Slot, protected: bool) -> bool {
        let ip = slot.ip;
        let (i, evicted) = self.alloc(slot);
        self.map.insert(ip, i);
        self.push_back(i, false);
        if protected {
            self.promote(i);
        }
        evicted
    }
}

/// Counters of the shared table.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NeighborStats {
    /// Entries held (pending ones included).
    pub entries: usize,
    /// Confirmed entries.
    pub protected: usize,
    /// Entries evicted to make room for a new one.
    pub evicted: u64,
    /// MAC changes (every core's cache re-reads what it uses after one).
    pub changed: u64,
}

/// Neighbour table shared by all workers (behind an `Arc`). Lookups take a
/// shard's read lock (on a worker's local miss); updates its write lock.
#[derive(Debug)]
pub struct SharedNeighbors {
    shards: Box<[RwLock<Shard>]>,
    /// Keyed: an attacker cannot aim every address at one shard.
    hasher: RandomState,
    /// Bumped whenever an entry changes its MAC; a local cache entry older
    /// than the current generation is checked again before use.
    generation: AtomicU64,
    evicted: AtomicU64,
}

impl Default for SharedNeighbors {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedNeighbors {
    /// An empty table.
    pub fn new() -> Self {
        SharedNeighbors {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::new())).collect(),
            hasher: RandomState::new(),
            generation: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    fn shard(&self, ip: &IpAddr) -> &RwLock<Shard> {
        &self.shards[self.hasher.hash_one(ip) as usize % SHARDS]
    }

    /// Apply what a neighbour message (or an IP packet) says about
    /// `ip -> mac` at `now_ms`. See the module documentation for the rules.
    pub fn update(&self, ip: IpAddr, mac: [u8; 6], hint: Hint, now_ms: u64) -> Update {
        let lock = self.shard(&ip);
        if hint == Hint::Confirm {
            // The common case (and a spoofed flood's) under the read lock.
            let shard = lock.read().unwrap_or_else(PoisonError::into_inner);
            match shard.map.get(&ip).map(|&i| shard.slots[i as usize].mac) {
                None | Some(None) => return Update::Unknown,
                Some(Some(m)) if m != mac => return Update::Mismatch,
                Some(Some(_)) => {}
            }
        }
        // A panic elsewhere while holding the lock cannot break the lists
        // (no code that can panic runs between their updates): poisoning
        // is ignored.
        let mut shard = lock.write().unwrap_or_else(PoisonError::into_inner);
        let Some(&i) = shard.map.get(&ip) else {
            return match hint {
                Hint::Request { create: true } => {
                    let slot = Slot::resolved(ip, mac, now_ms, false);
                    if shard.insert(slot, false) {
                        self.evicted.fetch_add(1, Ordering::Relaxed);
                    }
                    Update::Created
                }
                Hint::Request { create: false } | Hint::Confirm => Update::Unknown,
                Hint::Reply { .. } => Update::Unsolicited,
            };
        };
        let s = shard.slots[i as usize];
        let pending = s.pending_until > now_ms;
        let set = |shard: &mut Shard| {
            let e = &mut shard.slots[i as usize];
            e.mac = Some(mac);
            e.expires_ms = now_ms.saturating_add(NEIGHBOR_TTL_MS);
            e.updated_ms = now_ms;
            if matches!(hint, Hint::Reply { .. }) {
                e.pending_until = 0;
            }
        };
        // An answer to our own request confirms the neighbour, as does
        // traffic from its MAC.
        let confirms = hint == Hint::Confirm || (pending && matches!(hint, Hint::Reply { .. }));
        match s.mac {
            None => {
                if hint == Hint::Confirm {
                    return Update::Unknown;
                }
                set(&mut shard);
                if confirms {
                    shard.promote(i);
                }
                Update::Created
            }
            Some(old) if old == mac => {
                set(&mut shard);
                if confirms {
                    shard.promote(i);
                }
                Update::Refreshed
            }
            Some(_) => {
                match hint {
                    Hint::Confirm => return Update::Mismatch,
                    Hint::Reply { override_: false } => return Update::NoOverride,
                    _ => {}
                }
                if now_ms < s.updated_ms.saturating_add(NEIGHBOR_LOCKTIME_MS) {
                    return Update::Locked;
                }
                set(&mut shard);
                self.generation.fetch_add(1, Ordering::Release);
                if confirms {
                    shard.promote(i);
                }
                Update::Changed
            }
        }
    }

    /// We sent a request for `ip`: a reply is accepted until
    /// `now_ms + PENDING_MS` (an entry without a MAC is made if there is
    /// none). Returns whether an entry was evicted for it.
    pub fn pending(&self, ip: IpAddr, now_ms: u64) -> bool {
        let mut shard = self
            .shard(&ip)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let until = now_ms.saturating_add(PENDING_MS);
        if let Some(&i) = shard.map.get(&ip) {
            shard.slots[i as usize].pending_until = until;
            return false;
        }
        let slot = Slot {
            ip,
            mac: None,
            expires_ms: 0,
            pending_until: until,
            updated_ms: now_ms,
            protected: false,
            prev: NIL,
            next: NIL,
        };
        let evicted = shard.insert(slot, false);
        if evicted {
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        evicted
    }

    /// Set `ip -> mac` unconditionally, as a confirmed entry (static
    /// configuration and tests).
    pub fn insert(&self, ip: IpAddr, mac: [u8; 6], now_ms: u64) {
        let mut shard = self
            .shard(&ip)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let slot = Slot::resolved(ip, mac, now_ms, true);
        if let Some(&i) = shard.map.get(&ip) {
            if shard.slots[i as usize].mac.is_some_and(|m| m != mac) {
                self.generation.fetch_add(1, Ordering::Release);
            }
            let (prev, next, protected) = {
                let s = &shard.slots[i as usize];
                (s.prev, s.next, s.protected)
            };
            shard.slots[i as usize] = Slot {
                prev,
                next,
                protected,
                ..slot
            };
            shard.promote(i);
            return;
        }
        if shard.insert(slot, true) {
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The MAC of `ip`, if known and not expired.
    pub fn lookup(&self, ip: &IpAddr, now_ms: u64) -> Option<[u8; 6]> {
        self.entry(ip, now_ms).map(|(mac, _)| mac)
    }

    /// The MAC of `ip` and until when it is valid.
    pub fn entry(&self, ip: &IpAddr, now_ms: u64) -> Option<([u8; 6], u64)> {
        let shard = self
            .shard(ip)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let s = shard.slots[*shard.map.get(ip)? as usize];
        s.mac
            .filter(|_| s.expires_ms > now_ms)
            .map(|m| (m, s.expires_ms))
    }

    /// Whether `ip` has an entry (with a MAC, live or not) or a pending
    /// request.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.shard(ip)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .contains_key(ip)
    }

    /// Number of entries (pending and expired ones included until their
    /// slots are reused).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).map.len())
            .sum()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters and sizes.
    pub fn stats(&self) -> NeighborStats {
        let (mut entries, mut protected) = (0, 0);
        for s in self.shards.iter() {
            let s = s.read().unwrap_or_else(PoisonError::into_inner);
            entries += s.map.len();
            protected += s.protected.len;
        }
        NeighborStats {
            entries,
            protected,
            evicted: self.evicted.load(Ordering::Relaxed),
            changed: self.generation.load(Ordering::Relaxed),
        }
    }

    /// The current MAC-change generation.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// One entry of a worker's local cache: a copy of a shared entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalEntry {
    /// The MAC.
    pub mac: [u8; 6],
    /// Valid until then (the shared entry's expiry when copied or refreshed).
    pub expires_ms: u64,
    /// The shared generation it was copied at: a newer one means some MAC
    /// changed somewhere, so this entry is read again before use.
    pub generation: u64,
    /// When this worker last told the shared table that traffic confirmed
    /// it (at most every second per entry).
    pub confirmed_ms: u64,
}

/// A worker's bounded cache of the shared table, evicting in insertion
/// order (O(1)); it is never wiped.
#[derive(Debug)]
pub struct LocalCache {
    map: HashMap<IpAddr, LocalEntry>,
    order: VecDeque<IpAddr>,
    cap: usize,
    evicted: u64,
}

impl LocalCache {
    /// A cache of at most `cap` entries (at least one).
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        LocalCache {
            map: HashMap::with_capacity(cap.min(256)),
            order: VecDeque::with_capacity(cap.min(256)),
            cap,
            evicted: 0,
        }
    }

    /// The entry of `ip`, expired or not.
    pub fn get_mut(&mut self, ip: &IpAddr) -> Option<&mut LocalEntry> {
        self.map.get_mut(ip)
    }

    /// Insert or replace; a new entry in a full cache evicts the oldest.
    pub fn insert(&mut self, ip: IpAddr, e: LocalEntry) {
        if let Some(old) = self.map.get_mut(&ip) {
            *old = e;
            return;
        }
        if self.map.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
                self.evicted += 1;
            }
        }
        self.map.insert(ip, e);
        self.order.push_back(ip);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Entries evicted to make room.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
    const T0: u64 = 1_000_000;
    const REQ: Hint = Hint::Request { create: true };

    fn v4(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i))
    }

    #[test]
    fn only_requests_create_and_replies_need_a_request() {
        let t = SharedNeighbors::new();
        assert_eq!(t.update(v4(1), A, Hint::Confirm, T0), Update::Unknown);
        assert_eq!(
            t.update(v4(1), A, Hint::Request { create: false }, T0),
            Update::Unknown
        );
        assert_eq!(
            t.update(v4(1), A, Hint::Reply { override_: true }, T0),
            Update::Unsolicited
        );
        assert!(t.is_empty());
        assert_eq!(t.update(v4(1), A, REQ, T0), Update::Created);
        assert_eq!(t.lookup(&v4(1), T0), Some(A));
        // We ask for another address: its reply is taken, and confirms it.
        assert!(!t.pending(v4(2), T0));
        assert_eq!(t.lookup(&v4(2), T0), None);
        assert_eq!(
            t.update(v4(2), B, Hint::Reply { override_: false }, T0 + 1),
            Update::Created
        );
        assert_eq!(t.lookup(&v4(2), T0 + 1), Some(B));
        assert_eq!(t.stats().protected, 1);
        // Entries expire.
        assert_eq!(t.lookup(&v4(1), T0 + NEIGHBOR_TTL_MS), None);
    }

    #[test]
    fn lock_time_and_override() {
        let t = SharedNeighbors::new();
        t.update(v4(1), A, REQ, T0);
        // Within the lock time a different MAC is refused, however it comes.
        for h in [REQ, Hint::Reply { override_: true }] {
            assert_eq!(t.update(v4(1), B, h, T0 + 999), Update::Locked);
        }
        // An IP packet never changes it.
        assert_eq!(
            t.update(v4(1), B, Hint::Confirm, T0 + 5000),
            Update::Mismatch
        );
        // Traffic from A confirms it and re-arms the lock.
        assert_eq!(
            t.update(v4(1), A, Hint::Confirm, T0 + 5000),
            Update::Refreshed
        );
        assert_eq!(t.update(v4(1), B, REQ, T0 + 5500), Update::Locked);
        // No override flag: never.
        assert_eq!(
            t.update(v4(1), B, Hint::Reply { override_: false }, T0 + 60_000),
            Update::NoOverride
        );
        assert_eq!(t.lookup(&v4(1), T0 + 6000), Some(A));
        let g = t.generation();
        // After the lock time, an override replaces it.
        assert_eq!(
            t.update(v4(1), B, Hint::Reply { override_: true }, T0 + 6000),
            Update::Changed
        );
        assert_eq!(t.lookup(&v4(1), T0 + 6000), Some(B));
        assert_eq!(t.generation(), g + 1);
    }

    #[test]
    fn shard_evicts_probation_first_in_constant_time() {
        let t = SharedNeighbors::new();
        // 3/4 of the table confirmed.
        let real: Vec<IpAddr> = (0..1000).map(v4).collect();
        for ip in &real {
            t.update(*ip, A, REQ, T0);
            assert_eq!(t.update(*ip, A, Hint::Confirm, T0), Update::Refreshed);
        }
        // 300,000 unconfirmed sources (l2.rs floods a million through ingress).
        let n = 300_000u128;
        for i in 0..n {
            let ip = IpAddr::V6(Ipv6Addr::from(0xfd00_u128 << 112 | i));
            assert_eq!(t.update(ip, B, REQ, T0 + 1), Update::Created);
        }
        let s = t.stats();
        assert!(s.entries <= MAX_NEIGHBORS);
        assert_eq!(s.evicted, 1000 + n as u64 - s.entries as u64);
        for ip in &real {
            assert_eq!(t.lookup(ip, T0 + 2), Some(A), "{ip}");
        }
    }

    #[test]
    fn protected_share_is_bounded_and_lru() {
        let t = SharedNeighbors::new();
        // Far more confirmed entries than fit: the table stays bounded and
        // the most recently confirmed survive.
        let n = MAX_NEIGHBORS as u32 * 2;
        for i in 0..n {
            t.update(v4(i), A, REQ, T0 + u64::from(i));
            t.update(v4(i), A, Hint::Confirm, T0 + u64::from(i));
        }
        let s = t.stats();
        assert_eq!(s.entries, MAX_NEIGHBORS);
        assert!(s.protected <= SHARDS * SHARD_PROTECTED);
        let last = n - 1;
        assert_eq!(t.lookup(&v4(last), T0 + u64::from(n)), Some(A));
        // New entries are still taken.
        assert_eq!(t.update(v4(n), B, REQ, T0 + u64::from(n)), Update::Created);
    }

    #[test]
    fn local_cache_is_bounded_fifo() {
        let mut c = LocalCache::new(3);
        let e = LocalEntry {
            mac: A,
            expires_ms: 1,
            generation: 0,
            confirmed_ms: 0,
        };
        for i in 0..5 {
            c.insert(v4(i), e);
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.evicted(), 2);
        assert!(c.get_mut(&v4(0)).is_none());
        assert!(c.get_mut(&v4(4)).is_some());
        // Replacing does not evict.
        c.insert(v4(4), LocalEntry { mac: B, ..e });
        assert_eq!(c.len(), 3);
        assert_eq!(c.get_mut(&v4(4)).unwrap().mac, B);
    }
}
