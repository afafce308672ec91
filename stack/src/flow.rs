//! The per-core flow table: after a SYN picks a listener, every later
//! segment of that 4-tuple goes to the same owner, whatever happens to the
//! group. This is what makes group changes harmless to handshakes (Linux's
//! problem before 5.14, where the final ACK was hashed again).

use std::collections::HashMap;

use crate::id::ConnId;
use crate::parse::FlowKey;

/// The hasher of flow maps: keyed with a random per-process seed (an
/// attacker who cannot predict it cannot aim flows at one bucket), and far
/// cheaper than the standard library's SipHash.
pub type FlowHash = foldhash::fast::RandomState;

/// Who owns a flow, from this core's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A connection on this core.
    Local(ConnId),
    /// Another core owns it: forward packets there.
    Remote {
        /// The owner core.
        core: usize,
    },
}

/// One core's flows: its own connections, and entries for flows another
/// core owns whose packets arrive on this core's queue. Remote entries are
/// written when the owner says so (it admitted the flow) and removed when it
/// says the flow closed; they are bounded, and a refused one is counted (the
/// flow directory still finds the owner).
#[derive(Debug)]
pub struct FlowTable {
    map: HashMap<FlowKey, Owner, FlowHash>,
    remote: usize,
    max_remote: usize,
    /// Remote entries refused because `max_remote` were held.
    pub remote_refused: u64,
}

impl Default for FlowTable {
    fn default() -> Self {
        FlowTable::new(1 << 20)
    }
}

impl FlowTable {
    /// An empty table holding at most `max_remote` remote entries.
    pub fn new(max_remote: usize) -> Self {
        FlowTable {
            map: HashMap::with_hasher(FlowHash::default()),
            remote: 0,
            max_remote,
            remote_refused: 0,
        }
    }

    /// The owner of `key`.
    pub fn lookup(&self, key: &FlowKey) -> Option<Owner> {
        self.map.get(key).copied()
    }

    /// Record or replace the owner of `key`. Returns false when a remote
    /// entry was refused (bound reached; counted).
    pub fn insert(&mut self, key: FlowKey, owner: Owner) -> bool {
        let new_remote = matches!(owner, Owner::Remote { .. });
        let old_remote = matches!(self.map.get(&key), Some(Owner::Remote { .. }));
        if new_remote && !old_remote && self.remote >= self.max_remote {
            self.remote_refused += 1;
            return false;
        }
        if let Some(old) = self.map.insert(key, owner) {
            if matches!(old, Owner::Remote { .. }) {
                self.remote -= 1;
            }
        }
        if new_remote {
            self.remote += 1;
        }
        true
    }

    /// Forget `key`.
    pub fn remove(&mut self, key: &FlowKey) -> Option<Owner> {
        let old = self.map.remove(key);
        if matches!(old, Some(Owner::Remote { .. })) {
            self.remote -= 1;
        }
        old
    }

    /// Flows known.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Entries for flows other cores own.
    pub fn remote_len(&self) -> usize {
        self.remote
    }

    /// No flows.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sport: u16) -> FlowKey {
        FlowKey::test_tcp4(sport)
    }

    #[test]
    fn remote_entries_are_bounded_and_counted() {
        let mut t = FlowTable::new(2);
        assert!(t.insert(key(1), Owner::Remote { core: 1 }));
        assert!(t.insert(key(2), Owner::Remote { core: 1 }));
        assert!(!t.insert(key(3), Owner::Remote { core: 1 }), "bound");
        assert_eq!(t.remote_refused, 1);
        // Replacing an existing remote entry is not a new one.
        assert!(t.insert(key(2), Owner::Remote { core: 0 }));
        // Local entries are bounded by the connections, not here.
        assert!(t.insert(key(4), Owner::Local(ConnId::new(0, 0))));
        assert_eq!(t.remote_len(), 2);
        assert_eq!(t.remove(&key(1)), Some(Owner::Remote { core: 1 }));
        assert!(t.insert(key(3), Owner::Remote { core: 1 }));
        assert_eq!(t.lookup(&key(4)), Some(Owner::Local(ConnId::new(0, 0))));
        assert_eq!(t.len(), 3);
        // Local replacing remote frees a remote place.
        assert!(t.insert(key(3), Owner::Local(ConnId::new(1, 0))));
        assert_eq!(t.remote_len(), 1);
    }
}

/// Which core owns each TCP flow, for the whole process: written when a core
/// admits a flow (and when a flow migrates), consulted only when a core has
/// no entry of its own for a segment. That happens when a client moves a
/// flow to another queue: Linux rehashes a flow's tx queue after a timeout
/// (`TcpTimeoutRehash`), so a retransmitted SYN or a later segment can reach
/// a core that never saw the flow. Without the directory that core would
/// admit the SYN a second time or reset the segment.
#[derive(Debug)]
pub struct FlowDirectory {
    shards: Vec<std::sync::Mutex<HashMap<FlowKey, usize, FlowHash>>>,
    hasher: FlowHash,
    /// One core: every flow is its own, nothing to record.
    single: bool,
}

impl Default for FlowDirectory {
    fn default() -> Self {
        FlowDirectory::new()
    }
}

impl FlowDirectory {
    const SHARDS: usize = 256;

    /// An empty directory.
    pub fn new() -> Self {
        FlowDirectory {
            shards: (0..Self::SHARDS)
                .map(|_| std::sync::Mutex::new(HashMap::with_hasher(FlowHash::default())))
                .collect(),
            hasher: FlowHash::default(),
            single: false,
        }
    }

    /// A directory for `cores` cores (with one, it records nothing: every
    /// flow belongs to the only core).
    pub fn for_cores(cores: usize) -> Self {
        FlowDirectory {
            single: cores <= 1,
            ..FlowDirectory::new()
        }
    }

    fn shard(&self, key: &FlowKey) -> &std::sync::Mutex<HashMap<FlowKey, usize, FlowHash>> {
        use std::hash::BuildHasher;
        let h = self.hasher.hash_one(key);
        &self.shards[(h >> 56) as usize % Self::SHARDS]
    }

    fn with<T>(
        &self,
        key: &FlowKey,
        f: impl FnOnce(&mut HashMap<FlowKey, usize, FlowHash>) -> T,
    ) -> T {
        let mut g = match self.shard(key).lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g)
    }

    /// Record `core` as the owner unless another core already is; returns
    /// the owner.
    pub fn claim(&self, key: FlowKey, core: usize) -> usize {
        if self.single {
            return core;
        }
        self.with(&key, |m| *m.entry(key).or_insert(core))
    }

    /// The owner of `key`, if any core has it.
    pub fn owner(&self, key: &FlowKey) -> Option<usize> {
        if self.single {
            return None;
        }
        self.with(key, |m| m.get(key).copied())
    }

    /// `key` moved to `core` (migration).
    pub fn moved(&self, key: FlowKey, core: usize) {
        if self.single {
            return;
        }
        self.with(&key, |m| {
            m.insert(key, core);
        });
    }

    /// `core` released `key` (only the owner's release counts).
    pub fn release(&self, key: &FlowKey, core: usize) {
        if self.single {
            return;
        }
        self.with(key, |m| {
            if m.get(key) == Some(&core) {
                m.remove(key);
            }
        });
    }

    /// Flows known.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    /// No flows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod directory_tests {
    use super::*;

    fn key(sport: u16) -> FlowKey {
        FlowKey::test_tcp4(sport)
    }

    #[test]
    fn first_claim_wins_and_only_the_owner_releases() {
        let d = FlowDirectory::new();
        assert_eq!(d.claim(key(1), 0), 0);
        assert_eq!(d.claim(key(1), 1), 0, "a second core finds the owner");
        d.release(&key(1), 1);
        assert_eq!(d.owner(&key(1)), Some(0), "a non-owner cannot release");
        d.moved(key(1), 1);
        assert_eq!(d.owner(&key(1)), Some(1));
        d.release(&key(1), 1);
        assert_eq!(d.owner(&key(1)), None);
        assert!(d.is_empty());
    }
}
