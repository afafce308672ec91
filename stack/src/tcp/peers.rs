//! What a core remembers of a peer between connections: the retransmission
//! timeout its last connection measured (RFC 9040 §4, "temporal sharing";
//! Linux keeps the same per destination in `tcp_metrics`). A new
//! connection from that peer times its SYN-ACK by it instead of RFC 6298's
//! 1 s, so a lost SYN-ACK costs about one RTO of the path: on a 50 ms path
//! with 1% loss, the 1% of connections whose SYN-ACK is lost finish in
//! about 350 ms instead of 1.1 s.
//!
//! A direct-mapped table of [`SLOTS`] entries under a keyed hash: bounded
//! whatever the peers do (a colliding peer only replaces another's entry,
//! which then falls back to 1 s), no allocation after creation. An entry
//! older than [`TTL`] is not used (Linux: one hour as well).

use std::hash::BuildHasher;
use std::net::IpAddr;

use smoltcp::time::{Duration, Instant};

/// Entries per core.
pub(crate) const SLOTS: usize = 4096;
/// How long a measurement is used.
pub(crate) const TTL: Duration = Duration::from_secs(3600);

#[derive(Clone, Copy, Debug)]
struct Entry {
    addr: IpAddr,
    rto_ms: u32,
    at: Instant,
}

/// The peers' measured RTOs (see the module's doc).
pub(crate) struct PeerRtos {
    slots: Box<[Option<Entry>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl PeerRtos {
    pub(crate) fn new() -> Self {
        PeerRtos {
            slots: vec![None; SLOTS].into_boxed_slice(),
            hasher: Default::default(),
        }
    }

    fn slot(&self, addr: &IpAddr) -> usize {
        (self.hasher.hash_one(addr) as usize) % self.slots.len()
    }

    /// The RTO `addr`'s last connection measured, if it is known and
    /// recent.
    pub(crate) fn get(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let e = self.slots[self.slot(&addr)]?;
        (e.addr == addr && now >= e.at && now - e.at < TTL)
            .then(|| Duration::from_millis(u64::from(e.rto_ms)))
    }

    /// Remember `rto`, measured with `addr` at `now`.
    pub(crate) fn put(&mut self, addr: IpAddr, rto: Duration, now: Instant) {
        let i = self.slot(&addr);
        self.slots[i] = Some(Entry {
            addr,
            rto_ms: rto.total_millis().min(u64::from(u32::MAX)) as u32,
            at: now,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn a_peer_measured_is_known_until_the_ttl() {
        let mut p = PeerRtos::new();
        let t0 = Instant::from_secs(10);
        assert_eq!(p.get(ip(1), t0), None);
        p.put(ip(1), Duration::from_millis(250), t0);
        assert_eq!(p.get(ip(1), t0), Some(Duration::from_millis(250)));
        assert_eq!(p.get(ip(2), t0), None, "another peer");
        let late = t0 + TTL;
        assert_eq!(
            p.get(ip(1), late - Duration::from_millis(1)),
            Some(Duration::from_millis(250))
        );
        assert_eq!(p.get(ip(1), late), None, "too old");
        p.put(ip(1), Duration::from_millis(300), late);
        assert_eq!(
            p.get(ip(1), late),
            Some(Duration::from_millis(300)),
            "replaced"
        );
    }

    #[test]
    fn many_peers_stay_within_the_slots() {
        let mut p = PeerRtos::new();
        let now = Instant::from_secs(1);
        let n = 4 * SLOTS as u32;
        let rto = |i: u32| Duration::from_millis(200 + u64::from(i % 100));
        for i in 0..n {
            p.put(ip(i), rto(i), now);
            assert_eq!(p.get(ip(i), now), Some(rto(i)), "the last put is known");
        }
        assert_eq!(p.slots.len(), SLOTS);
        let mut known = 0;
        for i in 0..n {
            if let Some(r) = p.get(ip(i), now) {
                assert_eq!(r, rto(i), "a peer never gets another's RTO");
                known += 1;
            }
        }
        assert!(known <= SLOTS && known > SLOTS / 2, "{known}");
    }
}
