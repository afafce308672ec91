//! What all cores of one process share: the reuseport registry, the handoff
//! mesh, the neighbour table and the clock.

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
    /// Listeners that were closed, with their final counters.
    pub retired: std::sync::Mutex<Vec<ListenerReport>>,
    /// Which core owns each TCP flow (consulted on a core's own miss).
    pub directory: crate::flow::FlowDirectory,
    /// The secret of SYN cookies (any core may check a cookie another made).
    pub cookies: crate::cookie::CookieJar,
}

impl Shared {
    /// State for `cores` engines, hashing flows with `hasher`.
    pub fn new(cores: usize, hasher: FlowHasher) -> Result<Arc<Shared>, MeshError> {
        Ok(Arc::new(Shared {
            registry: Registry::new(hasher),
            mesh: Mesh::new(cores, 4096)?,
            neighbors: Arc::new(SharedNeighbors::new()),
            epoch: std::time::Instant::now(),
            retired: std::sync::Mutex::new(Vec::new()),
            directory: crate::flow::FlowDirectory::for_cores(cores),
            cookies: crate::cookie::CookieJar::random(),
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
        if let Ok(r) = self.retired.lock() {
            listeners.extend(r.iter().cloned());
        }
        listeners.sort_by_key(|l| l.id);
        let cores = (0..self.mesh.cores())
            .filter_map(|c| self.mesh.counters(c))
            .collect();
        StackReport { listeners, cores }
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
    /// Bound listeners.
    pub listeners: Vec<ListenerReport>,
    /// Handoff counters by core.
    pub cores: Vec<HandoffSnapshot>,
}
