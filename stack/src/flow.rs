//! The per-core flow table: after a SYN picks a listener, every later
//! segment of that 4-tuple goes to the same owner, whatever happens to the
//! group. This is what makes group changes harmless to handshakes (Linux's
//! problem before 5.14, where the final ACK was hashed again).

use std::collections::HashMap;

use smoltcp::iface::SocketHandle;

use crate::parse::FlowKey;
use crate::reuseport::MemberId;

/// Who owns a flow, from this core's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A socket on this core, admitted by `member`.
    Local {
        /// The listener that admitted it (changes on migration).
        member: MemberId,
        /// The socket.
        handle: SocketHandle,
        /// The core whose queue receives the flow's packets.
        rx_core: usize,
    },
    /// Another core owns it: forward packets there.
    Remote {
        /// The owner core.
        core: usize,
    },
}

/// One core's flows.
#[derive(Debug, Default)]
pub struct FlowTable {
    map: HashMap<FlowKey, (Owner, u64)>,
}

impl FlowTable {
    /// An empty table.
    pub fn new() -> Self {
        FlowTable::default()
    }

    /// The owner of `key`, refreshing its last-seen time.
    pub fn lookup(&mut self, key: &FlowKey, now_ms: u64) -> Option<Owner> {
        self.map.get_mut(key).map(|e| {
            e.1 = now_ms;
            e.0
        })
    }

    /// Record or replace the owner of `key`.
    pub fn insert(&mut self, key: FlowKey, owner: Owner, now_ms: u64) {
        self.map.insert(key, (owner, now_ms));
    }

    /// Forget `key`.
    pub fn remove(&mut self, key: &FlowKey) -> Option<Owner> {
        self.map.remove(key).map(|e| e.0)
    }

    /// Flows known.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No flows.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Forget remote entries not seen since `before_ms` (a backstop for a
    /// lost close notice; local entries go away with their sockets).
    pub fn expire_remote(&mut self, before_ms: u64) -> usize {
        let n = self.map.len();
        self.map
            .retain(|_, (o, seen)| matches!(o, Owner::Local { .. }) || *seen >= before_ms);
        n - self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Proto;
    use std::net::{IpAddr, Ipv4Addr};

    fn key(sport: u16) -> FlowKey {
        FlowKey {
            proto: Proto::Tcp,
            src: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            sport,
            dst: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            dport: 80,
        }
    }

    #[test]
    fn remote_entries_expire_local_ones_stay() {
        let mut t = FlowTable::new();
        t.insert(key(1), Owner::Remote { core: 1 }, 0);
        let mut set = smoltcp::iface::SocketSet::new(Vec::new());
        let h = set.add(smoltcp::socket::udp::Socket::new(
            smoltcp::socket::udp::PacketBuffer::new(vec![], vec![]),
            smoltcp::socket::udp::PacketBuffer::new(vec![], vec![]),
        ));
        t.insert(
            key(2),
            Owner::Local {
                member: MemberId(1),
                handle: h,
                rx_core: 0,
            },
            0,
        );
        t.insert(key(3), Owner::Remote { core: 1 }, 50);
        assert_eq!(t.expire_remote(10), 1);
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(&key(3), 60), Some(Owner::Remote { core: 1 }));
        assert!(t.lookup(&key(1), 60).is_none());
        assert!(t.remove(&key(2)).is_some());
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
    shards: Vec<std::sync::Mutex<HashMap<FlowKey, usize>>>,
}

impl Default for FlowDirectory {
    fn default() -> Self {
        FlowDirectory::new()
    }
}

impl FlowDirectory {
    const SHARDS: usize = 64;

    /// An empty directory.
    pub fn new() -> Self {
        FlowDirectory {
            shards: (0..Self::SHARDS)
                .map(|_| std::sync::Mutex::new(HashMap::new()))
                .collect(),
        }
    }

    fn shard(&self, key: &FlowKey) -> &std::sync::Mutex<HashMap<FlowKey, usize>> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % Self::SHARDS]
    }

    fn with<T>(&self, key: &FlowKey, f: impl FnOnce(&mut HashMap<FlowKey, usize>) -> T) -> T {
        let mut g = match self.shard(key).lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g)
    }

    /// Record `core` as the owner unless another core already is; returns
    /// the owner.
    pub fn claim(&self, key: FlowKey, core: usize) -> usize {
        self.with(&key, |m| *m.entry(key).or_insert(core))
    }

    /// The owner of `key`, if any core has it.
    pub fn owner(&self, key: &FlowKey) -> Option<usize> {
        self.with(key, |m| m.get(key).copied())
    }

    /// `key` moved to `core` (migration).
    pub fn moved(&self, key: FlowKey, core: usize) {
        self.with(&key, |m| {
            m.insert(key, core);
        });
    }

    /// `core` released `key` (only the owner's release counts).
    pub fn release(&self, key: &FlowKey, core: usize) {
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
    use crate::parse::Proto;
    use std::net::{IpAddr, Ipv4Addr};

    fn key(sport: u16) -> FlowKey {
        FlowKey {
            proto: Proto::Tcp,
            src: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            sport,
            dst: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            dport: 80,
        }
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
