//! What all cores of one process share: the reuseport registry, the handoff
//! mesh, the flow directory, the neighbour table, the SYN-cookie secret, the
//! retired listeners and the clock.

use std::sync::Arc;

use crate::handoff::{HandoffSnapshot, Mesh, MeshError};
use crate::l2::SharedNeighbors;
use crate::reuseport::{FlowHasher, ListenerSnapshot, Member, Registry};

/// Shared by every engine of a process.
pub struct Shared {
    /// Listeners and their groups.
    pub registry: Registry,
    /// Queues between cores.
    pub mesh: Mesh,
    /// Neighbours learned by any core.
    pub neighbors: Arc<SharedNeighbors>,
    /// The common clock origin: sockets migrate between cores with their
    /// timers, so every core must count time from the same instant.
    pub epoch: std::time::Instant,
    /// Listeners that were closed, with their final counters: the last
    /// [`MAX_RETIRED`] (every SIGHUP retires every listener).
    pub retired: std::sync::Mutex<Retired>,
    /// Which core owns each TCP flow (consulted on a core's own miss).
    pub directory: crate::flow::FlowDirectory,
    /// The secret of SYN cookies (any core may check a cookie another made).
    pub cookies: crate::cookie::CookieJar,
    /// TCP buffer memory of all cores (Linux's `tcp_mem`): each core's pool
    /// charges it in 1 MiB steps; the engines set its levels.
    pub(crate) budget: Arc<crate::tcp::buffers::Budget>,
}

impl Shared {
    /// State for `cores` engines, hashing flows with `hasher`.
    pub fn new(cores: usize, hasher: FlowHasher) -> Result<Arc<Shared>, MeshError> {
        Ok(Arc::new(Shared {
            registry: Registry::new(hasher),
            mesh: Mesh::new(cores, 4096)?,
            neighbors: Arc::new(SharedNeighbors::new()),
            epoch: std::time::Instant::now(),
            retired: std::sync::Mutex::new(Retired::default()),
            directory: crate::flow::FlowDirectory::for_cores(cores),
            cookies: crate::cookie::CookieJar::random(),
            budget: crate::tcp::buffers::Budget::new([usize::MAX; 3]),
        }))
    }

    /// The engine clock now: time since `epoch`.
    pub fn now(&self) -> smoltcp::time::Instant {
        self.time_at(std::time::Instant::now())
    }

    /// The engine clock at `t`.
    pub fn time_at(&self, t: std::time::Instant) -> smoltcp::time::Instant {
        smoltcp::time::Instant::from_micros(
            t.saturating_duration_since(self.epoch).as_micros() as i64
        )
    }

    /// Keep a closed listener's final report.
    pub fn push_retired(&self, rep: ListenerReport) {
        if let Ok(mut r) = self.retired.lock() {
            r.push(rep);
        }
    }

    /// Every listener with its counters, and every core's handoff counters.
    pub fn report(&self) -> StackReport {
        let mut listeners: Vec<ListenerReport> = self
            .registry
            .members()
            .iter()
            .map(ListenerReport::of)
            .collect();
        let mut retired_dropped = 0;
        if let Ok(r) = self.retired.lock() {
            listeners.extend(r.iter().cloned());
            retired_dropped = r.dropped();
        }
        listeners.sort_by_key(|l| l.id);
        let cores = (0..self.mesh.cores())
            .filter_map(|c| self.mesh.counters(c))
            .collect();
        StackReport {
            listeners,
            retired_dropped,
            cores,
            neighbors: self.neighbors.stats(),
        }
    }
}

/// Closed listeners kept in the report.
pub const MAX_RETIRED: usize = 1024;

/// The reports of the last [`MAX_RETIRED`] closed listeners, oldest first,
/// and how many older ones were dropped.
#[derive(Debug, Default)]
pub struct Retired {
    list: std::collections::VecDeque<ListenerReport>,
    dropped: u64,
}

impl Retired {
    /// Keep `r`, dropping the oldest report if [`MAX_RETIRED`] are held.
    pub fn push(&mut self, r: ListenerReport) {
        if self.list.len() >= MAX_RETIRED {
            self.list.pop_front();
            self.dropped += 1;
        }
        self.list.push_back(r);
    }

    /// The reports held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &ListenerReport> {
        self.list.iter()
    }

    /// Reports held.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// None held.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Reports dropped to stay within [`MAX_RETIRED`].
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// One listener in a [`StackReport`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct ListenerReport {
    /// Member id.
    pub id: u64,
    /// "tcp" or "udp".
    pub proto: String,
    /// Bound address.
    pub addr: String,
    /// Port.
    pub port: u16,
    /// Core it lives on.
    pub core: usize,
    /// Queue of that core.
    pub queue: u32,
    /// Owner uid.
    pub uid: u32,
    /// "active" or "draining".
    pub state: String,
    /// Counters.
    pub counters: ListenerSnapshot,
}

impl ListenerReport {
    /// The report of a bound member.
    pub fn of(m: &Member) -> Self {
        ListenerReport {
            id: m.id.0,
            proto: format!("{:?}", m.proto).to_lowercase(),
            addr: format!("{:?}", m.addr),
            port: m.port,
            core: m.core,
            queue: m.queue,
            uid: m.opts.uid,
            state: format!("{:?}", m.state).to_lowercase(),
            counters: m.counters.snapshot(),
        }
    }
}

/// Listeners and handoff counters, for `/stats` and `--stats-file`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StackReport {
    /// Bound listeners, then the last [`MAX_RETIRED`] closed ones.
    pub listeners: Vec<ListenerReport>,
    /// Closed listeners no longer listed (beyond [`MAX_RETIRED`]).
    pub retired_dropped: u64,
    /// Handoff counters by core.
    pub cores: Vec<HandoffSnapshot>,
    /// The shared neighbour table: entries, confirmed ones, evictions, MAC changes.
    pub neighbors: crate::neigh::NeighborStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(id: u64) -> ListenerReport {
        ListenerReport {
            id,
            proto: "tcp".into(),
            addr: "Any6".into(),
            port: 80,
            core: 0,
            queue: 0,
            uid: 0,
            state: "closed".into(),
            counters: ListenerSnapshot::default(),
        }
    }

    #[test]
    fn retired_history_is_bounded_and_counted() {
        let shared = Shared::new(1, FlowHasher::with_key(1, 2)).unwrap();
        let n = MAX_RETIRED as u64 + 500;
        for id in 0..n {
            // As the engine does it.
            if let Ok(mut r) = shared.retired.lock() {
                r.push(rep(id));
            }
        }
        let r = shared.report();
        assert_eq!(r.listeners.len(), MAX_RETIRED);
        assert_eq!(r.retired_dropped, 500);
        // The newest are kept.
        assert_eq!(r.listeners.first().map(|l| l.id), Some(500));
        assert_eq!(r.listeners.last().map(|l| l.id), Some(n - 1));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["retired_dropped"], 500);
        assert_eq!(v["neighbors"]["entries"], 0);
    }
}
