//! Flow hashing and the pluggable member selectors of a reuseport group.
//!
//! [`FlowHasher`] is the keyed 4-tuple hash every selector is handed; [`reciprocal_scale`] maps
//! it onto `n` members the way the kernel does; [`Selector`] is the analog of
//! `SO_ATTACH_REUSEPORT_CBPF/EBPF`, with [`HashSelector`] (the default) and [`QueueSelector`]
//! (the analog of `SO_INCOMING_CPU`).

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use siphasher::sip::SipHasher13;

use crate::id::MemberId;
use crate::parse::FlowKey;

/// Keyed 4-tuple hash: SipHash-1-3 with a 128-bit key.
///
/// The key is random per process by default ([`FlowHasher::random`]): a known, unkeyed hash
/// would let an attacker choose source ports that all land on one worker. Tests set the key
/// with [`FlowHasher::with_key`] to get reproducible choices.
///
/// `Debug` does not print the key, so it never ends up in a log.
#[derive(Clone, Copy)]
pub struct FlowHasher {
    k0: u64,
    k1: u64,
}

impl fmt::Debug for FlowHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowHasher").finish_non_exhaustive()
    }
}

impl FlowHasher {
    /// A hasher with a fresh 128-bit key from the operating system's random source.
    ///
    /// Should the OS source fail (it does not on Linux ≥ 3.17), the key is derived from the
    /// standard library's per-process random `RandomState` instead, never a constant.
    pub fn random() -> Self {
        let mut buf = [0u8; 16];
        if getrandom::fill(&mut buf).is_ok() {
            let (a, b) = buf.split_at(8);
            Self {
                k0: u64::from_le_bytes(a.try_into().unwrap_or_default()),
                k1: u64::from_le_bytes(b.try_into().unwrap_or_default()),
            }
        } else {
            let s = std::collections::hash_map::RandomState::new();
            Self {
                k0: s.hash_one(0x5eed_0001_u64),
                k1: s.hash_one(0x5eed_0002_u64),
            }
        }
    }

    /// A hasher with a fixed key, for reproducible tests and benchmarks.
    pub fn with_key(k0: u64, k1: u64) -> Self {
        Self { k0, k1 }
    }

    /// Hash `(saddr, sport, daddr, dport)` of a flow into 32 bits.
    ///
    /// Addresses are hashed as their raw bytes (4 for IPv4, 16 for IPv6), ports big-endian as
    /// on the wire, all in one SipHash-1-3 message; the 64-bit result is folded to 32 bits
    /// (high half XOR low half). The protocol is not included, like the kernel's
    /// `inet_ehashfn`/`udp_ehashfn`: TCP and UDP groups are separate anyway.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u32 {
        let h = self.tuple_state(key).finish();
        ((h >> 32) ^ h) as u32
    }

    /// The SipHash-1-3 state with this key that has taken in the 4-tuple as [`Self::hash`]
    /// does: for hashes that cover more than the tuple (the SYN cookie's MAC).
    #[inline]
    pub(crate) fn tuple_state(&self, key: &FlowKey) -> SipHasher13 {
        let mut buf = [0u8; 36];
        let mut n = 0;
        n += put_addr(&mut buf[n..], &key.src);
        buf[n..n + 2].copy_from_slice(&key.sport.to_be_bytes());
        n += 2;
        n += put_addr(&mut buf[n..], &key.dst);
        buf[n..n + 2].copy_from_slice(&key.dport.to_be_bytes());
        n += 2;
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(&buf[..n]);
        h
    }
}

/// Write the address bytes at the start of `out` (which has room for 16) and return how many.
fn put_addr(out: &mut [u8], addr: &IpAddr) -> usize {
    match addr {
        IpAddr::V4(a) => {
            out[..4].copy_from_slice(&a.octets());
            4
        }
        IpAddr::V6(a) => {
            out[..16].copy_from_slice(&a.octets());
            16
        }
    }
}

/// The kernel's `reciprocal_scale`: map a 32-bit hash onto `0..n` with a multiply and a shift,
/// `((hash as u64 * n as u64) >> 32) as usize`.
///
/// The result is always below `n` when `n > 0` (with `n == 0` it is 0, not a valid index).
/// The product is computed in 128 bits, so `n` above `u32::MAX` (which the kernel's `u32`
/// argument cannot express) cannot overflow; for every `n` up to `u32::MAX` the result is
/// exactly the kernel's.
pub fn reciprocal_scale(hash: u32, n: usize) -> usize {
    ((u128::from(hash) * n as u128) >> 32) as usize
}

/// A member of a group as a selector sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberView {
    /// The member's id in the registry.
    pub id: MemberId,
    /// The core whose engine owns the member's listener.
    pub core: usize,
    /// The NIC queue that core serves.
    pub queue: u32,
}

/// What a selector sees for one new flow.
#[derive(Clone, Copy, Debug)]
pub struct SelectCtx<'a> {
    /// The flow (from the receiver's point of view: `src` is the peer).
    pub key: &'a FlowKey,
    /// `FlowHasher::hash(key)` with the registry's key.
    pub hash: u32,
    /// The NIC queue the packet arrived on.
    pub rx_queue: u32,
    /// The core that received the packet.
    pub rx_core: usize,
    /// The group's active members, in bind order; the answer is an index into this slice.
    pub members: &'a [MemberView],
}

/// Our analog of `SO_ATTACH_REUSEPORT_CBPF/EBPF`: picks a member index for a new flow.
///
/// The answer is an index into [`SelectCtx::members`]. An answer out of range, or `None`,
/// falls back to the hash (`reciprocal_scale(ctx.hash, n)`), as the kernel does when a
/// reuseport BPF program returns an index past the group.
///
/// `select` runs on the packet path of every core: it must not block and should not allocate.
pub trait Selector: Send + Sync + fmt::Debug {
    /// A short name for logs and statistics.
    fn name(&self) -> &'static str;
    /// The index of the member that gets this new flow.
    fn select(&self, ctx: &SelectCtx<'_>) -> Option<usize>;
}

/// The default selector: `reciprocal_scale(ctx.hash, n)`, the kernel's behaviour without BPF.
#[derive(Debug, Default, Clone, Copy)]
pub struct HashSelector;

impl Selector for HashSelector {
    fn name(&self) -> &'static str {
        "hash"
    }

    fn select(&self, ctx: &SelectCtx<'_>) -> Option<usize> {
        if ctx.members.is_empty() {
            return None;
        }
        Some(reciprocal_scale(ctx.hash, ctx.members.len()))
    }
}

/// Core-affine selector, the analog of `SO_INCOMING_CPU`: among the members on the core that
/// received the packet (`core == ctx.rx_core`), pick `reciprocal_scale(hash, count)`-th, so the
/// flow never crosses cores. With no member on that core it answers `None` and the registry
/// falls back to the hash over all members.
#[derive(Debug, Default, Clone, Copy)]
pub struct QueueSelector;

impl Selector for QueueSelector {
    fn name(&self) -> &'static str {
        "queue"
    }

    fn select(&self, ctx: &SelectCtx<'_>) -> Option<usize> {
        let local = |m: &&MemberView| m.core == ctx.rx_core;
        let count = ctx.members.iter().filter(local).count();
        if count == 0 {
            return None;
        }
        let nth = reciprocal_scale(ctx.hash, count);
        ctx.members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.core == ctx.rx_core)
            .nth(nth)
            .map(|(i, _)| i)
    }
}

/// The built-in selectors by name: `"hash"` ([`HashSelector`]) or `"queue"`
/// ([`QueueSelector`]); anything else is `None`.
pub fn selector_by_name(name: &str) -> Option<Arc<dyn Selector>> {
    match name {
        "hash" => Some(Arc::new(HashSelector)),
        "queue" => Some(Arc::new(QueueSelector)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Proto;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn key4(sport: u16) -> FlowKey {
        FlowKey {
            proto: Proto::Tcp,
            src: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
            sport,
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            dport: 80,
        }
    }

    #[test]
    fn reciprocal_scale_edges() {
        assert_eq!(reciprocal_scale(0, 1), 0);
        assert_eq!(reciprocal_scale(u32::MAX, 1), 0);
        assert_eq!(reciprocal_scale(0, 4), 0);
        assert_eq!(reciprocal_scale(u32::MAX, 4), 3);
        assert_eq!(reciprocal_scale(u32::MAX, 7), 6);
        assert_eq!(reciprocal_scale(1 << 31, 2), 1);
        assert_eq!(reciprocal_scale((1 << 31) - 1, 2), 0);
        assert_eq!(
            reciprocal_scale(u32::MAX, u32::MAX as usize),
            u32::MAX as usize - 1
        );
        for n in 1..50usize {
            for h in [0u32, 1, 12345, u32::MAX / 2, u32::MAX - 1, u32::MAX] {
                assert!(reciprocal_scale(h, n) < n);
            }
        }
    }

    #[test]
    fn hash_is_keyed_and_deterministic() {
        let a = FlowHasher::with_key(1, 2);
        let b = FlowHasher::with_key(1, 2);
        let c = FlowHasher::with_key(2, 1);
        let k = key4(40000);
        assert_eq!(a.hash(&k), b.hash(&k));
        assert_ne!(a.hash(&k), c.hash(&k));
        // Protocol is not hashed.
        let u = FlowKey {
            proto: Proto::Udp,
            ..k
        };
        assert_eq!(a.hash(&k), a.hash(&u));
        // Every element of the 4-tuple is.
        assert_ne!(a.hash(&k), a.hash(&key4(40001)));
        let d = FlowKey { dport: 81, ..k };
        assert_ne!(a.hash(&k), a.hash(&d));
    }

    #[test]
    fn hash_matches_independent_siphash13() {
        // Recompute the documented construction by hand.
        let k = FlowKey {
            proto: Proto::Udp,
            src: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
            sport: 5353,
            dst: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            dport: 53,
        };
        let mut msg = Vec::new();
        if let IpAddr::V6(a) = k.src {
            msg.extend_from_slice(&a.octets());
        }
        msg.extend_from_slice(&5353u16.to_be_bytes());
        if let IpAddr::V6(a) = k.dst {
            msg.extend_from_slice(&a.octets());
        }
        msg.extend_from_slice(&53u16.to_be_bytes());
        let mut h = SipHasher13::new_with_keys(7, 9);
        h.write(&msg);
        let h = h.finish();
        assert_eq!(FlowHasher::with_key(7, 9).hash(&k), ((h >> 32) ^ h) as u32);
    }

    #[test]
    fn random_keys_differ_and_debug_hides_key() {
        let a = FlowHasher::random();
        let b = FlowHasher::random();
        assert!((a.k0, a.k1) != (b.k0, b.k1));
        let s = format!("{:?}", FlowHasher::with_key(0xdead_beef, 0xfeed));
        assert!(!s.contains("3735928559") && !s.contains("deadbeef"), "{s}");
    }

    #[test]
    fn by_name() {
        assert_eq!(selector_by_name("hash").map(|s| s.name()), Some("hash"));
        assert_eq!(selector_by_name("queue").map(|s| s.name()), Some("queue"));
        assert!(selector_by_name("bpf").is_none());
    }

    #[test]
    fn queue_selector_picks_local_members_only() {
        let members: Vec<MemberView> = (0..6)
            .map(|i| MemberView {
                id: MemberId(i),
                core: (i % 3) as usize,
                queue: (i % 3) as u32,
            })
            .collect();
        let k = key4(1);
        for hash in [0u32, 1 << 31, u32::MAX] {
            for core in 0..3usize {
                let ctx = SelectCtx {
                    key: &k,
                    hash,
                    rx_queue: core as u32,
                    rx_core: core,
                    members: &members,
                };
                let i = QueueSelector.select(&ctx).unwrap();
                assert_eq!(members[i].core, core);
                // Members on core c are c and c + 3: the hash picks between them.
                let expect = if reciprocal_scale(hash, 2) == 0 {
                    core
                } else {
                    core + 3
                };
                assert_eq!(i, expect);
            }
            let ctx = SelectCtx {
                key: &k,
                hash,
                rx_queue: 9,
                rx_core: 9,
                members: &members,
            };
            assert_eq!(QueueSelector.select(&ctx), None);
        }
        let ctx = SelectCtx {
            key: &k,
            hash: 5,
            rx_queue: 0,
            rx_core: 0,
            members: &[],
        };
        assert_eq!(HashSelector.select(&ctx), None);
        assert_eq!(QueueSelector.select(&ctx), None);
    }
}
