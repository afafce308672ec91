//! The TCP listeners of one core: each one's accept queue (established,
//! not yet accepted) and SYN queue count (half-open), bounded apart, and
//! when it last answered with a SYN cookie. Admission is a decision
//! ([`Admission`]) the engine acts on in one place, as the demux's `Route`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use smoltcp::time::{Duration as SDuration, Instant};

use crate::reuseport::{ListenerCounters, MemberId};
use crate::socket::ConnId;

/// How long after the last cookie sent ACKs are checked for one.
const COOKIE_WINDOW: SDuration = SDuration::from_secs(128);

/// A TCP listener on this core.
pub(crate) struct Listener {
    port: u16,
    backlog: usize,
    syn_backlog: usize,
    accept_q: VecDeque<ConnId>,
    half_open: usize,
    counters: Arc<ListenerCounters>,
    draining: bool,
    /// When this listener last answered a SYN with a cookie: cookies are
    /// only checked for a while after (as Linux does), so a random ACK to
    /// a listener that never overflowed is not even looked at.
    cookies_sent_at: Option<Instant>,
}

impl Listener {
    /// A listener on `port` whose accept queue holds `backlog` connections
    /// and SYN queue `syn_backlog`.
    pub(crate) fn new(
        port: u16,
        backlog: usize,
        syn_backlog: usize,
        counters: Arc<ListenerCounters>,
    ) -> Self {
        Listener {
            port,
            backlog,
            syn_backlog,
            accept_q: VecDeque::new(),
            half_open: 0,
            counters,
            draining: false,
            cookies_sent_at: None,
        }
    }
}

/// What to do with a SYN for a listener (from [`Listeners::admission`]).
#[derive(Clone, Debug)]
pub(crate) enum Admission {
    /// No such listener here (closed meanwhile): dropped.
    NoListener,
    /// The accept queue is full: dropped (the client retries).
    AcceptQueueFull,
    /// The SYN queue is full: answered with a SYN cookie, nothing kept.
    Cookie,
    /// The SYN queue is full and cookies are off: dropped.
    SynQueueFull,
    /// The engine holds its most connections already: dropped.
    ConnLimit,
    /// A new half-open connection listening on `port`.
    Admit {
        /// The listener's port.
        port: u16,
        /// The listener's counters, for the connection.
        counters: Arc<ListenerCounters>,
    },
}

/// A listener that may take an ACK carrying a cookie (from
/// [`Listeners::cookie_listener`]).
pub(crate) struct CookieListener {
    pub port: u16,
    pub counters: Arc<ListenerCounters>,
    /// Its accept queue is full.
    pub full: bool,
}

/// The TCP listeners of one core, by member id.
#[derive(Default)]
pub(crate) struct Listeners {
    map: HashMap<MemberId, Listener, foldhash::fast::RandomState>,
}

impl Listeners {
    pub(crate) fn insert(&mut self, id: MemberId, l: Listener) {
        self.map.insert(id, l);
    }

    pub(crate) fn remove(&mut self, id: MemberId) {
        self.map.remove(&id);
    }

    pub(crate) fn contains(&self, id: MemberId) -> bool {
        self.map.contains_key(&id)
    }

    /// The ids of every listener.
    pub(crate) fn ids(&self) -> Vec<MemberId> {
        self.map.keys().copied().collect()
    }

    /// Whether `id` is here and takes new flows (not draining).
    #[inline]
    pub(crate) fn is_live(&self, id: MemberId) -> bool {
        self.map.get(&id).is_some_and(|l| !l.draining)
    }

    /// Stop choosing `id` for new flows here.
    pub(crate) fn drain(&mut self, id: MemberId) {
        if let Some(l) = self.map.get_mut(&id) {
            l.draining = true;
        }
    }

    // ---- admission ----

    /// What to do with a SYN for listener `m`, with `live` connections held
    /// of `max_conns` at most: the accept queue full, dropped; the SYN
    /// queue full, a SYN cookie (`syncookies`) or dropped; else admitted.
    #[inline]
    pub(crate) fn admission(
        &self,
        m: MemberId,
        live: usize,
        max_conns: usize,
        syncookies: bool,
    ) -> Admission {
        let Some(l) = self.map.get(&m) else {
            return Admission::NoListener;
        };
        if l.accept_q.len() >= l.backlog {
            Admission::AcceptQueueFull
        } else if l.half_open >= l.syn_backlog {
            if syncookies {
                Admission::Cookie
            } else {
                Admission::SynQueueFull
            }
        } else if live >= max_conns {
            Admission::ConnLimit
        } else {
            Admission::Admit {
                port: l.port,
                counters: l.counters.clone(),
            }
        }
    }

    /// A SYN for `m` was dropped: count it on the listener.
    pub(crate) fn dropped(&self, m: MemberId) {
        if let Some(l) = self.map.get(&m) {
            l.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `m` answered a SYN with a cookie at `now`.
    pub(crate) fn cookie_sent(&mut self, m: MemberId, now: Instant) {
        if let Some(l) = self.map.get_mut(&m) {
            l.cookies_sent_at = Some(now);
        }
    }

    /// Listener `m`, if it sent a cookie recently enough at `now` that an
    /// ACK may carry one.
    pub(crate) fn cookie_listener(&self, m: MemberId, now: Instant) -> Option<CookieListener> {
        let l = self.map.get(&m)?;
        l.cookies_sent_at
            .filter(|&t| now - t <= COOKIE_WINDOW || t > now)
            .map(|_| CookieListener {
                port: l.port,
                counters: l.counters.clone(),
                full: l.accept_q.len() >= l.backlog,
            })
    }

    // ---- the queues ----

    /// A connection of `m` entered SYN-RECEIVED.
    #[inline]
    pub(crate) fn syn_added(&mut self, m: MemberId) {
        if let Some(l) = self.map.get_mut(&m) {
            l.half_open += 1;
        }
    }

    /// A half-open connection of `m` left the SYN queue (released or
    /// closing).
    #[inline]
    pub(crate) fn syn_done(&mut self, m: MemberId) {
        if let Some(l) = self.map.get_mut(&m) {
            l.half_open = l.half_open.saturating_sub(1);
        }
    }

    /// A half-open connection `c` of `m` finished its handshake: from the
    /// SYN queue to the accept queue.
    #[inline]
    pub(crate) fn established(&mut self, m: MemberId, c: ConnId) {
        if let Some(l) = self.map.get_mut(&m) {
            l.half_open = l.half_open.saturating_sub(1);
            l.accept_q.push_back(c);
        }
    }

    /// A connection `c` migrating to `to` (half-open: on its SYN queue;
    /// else on its accept queue), counted there. `to`'s counters, or `None`
    /// when `to` is not here (closed meanwhile).
    pub(crate) fn migrated_in(
        &mut self,
        to: MemberId,
        c: ConnId,
        half_open: bool,
    ) -> Option<Arc<ListenerCounters>> {
        let l = self.map.get_mut(&to)?;
        l.counters.migrated_in.fetch_add(1, Ordering::Relaxed);
        if half_open {
            l.half_open += 1;
        } else {
            l.accept_q.push_back(c);
        }
        Some(l.counters.clone())
    }

    /// The next entry of `id`'s accept queue, with the listener's counters
    /// (the entry may be stale: reset or migrated since).
    #[inline]
    pub(crate) fn pop_accept(&mut self, id: MemberId) -> Option<(ConnId, Arc<ListenerCounters>)> {
        let l = self.map.get_mut(&id)?;
        let c = l.accept_q.pop_front()?;
        Some((c, l.counters.clone()))
    }

    /// Connections waiting on `id`: half-open, plus the accept queue's
    /// entries that `queued` says are still there.
    pub(crate) fn pending(&self, id: MemberId, queued: impl Fn(ConnId) -> bool) -> usize {
        self.map.get(&id).map_or(0, |l| {
            l.accept_q.iter().filter(|&&c| queued(c)).count() + l.half_open
        })
    }

    /// Empty both of `id`'s queues (its connections migrate).
    pub(crate) fn clear_queues(&mut self, id: MemberId) {
        if let Some(l) = self.map.get_mut(&id) {
            l.accept_q.clear();
            l.half_open = 0;
        }
    }
}
