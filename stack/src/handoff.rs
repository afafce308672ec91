//! Software re-steering between cores: a bounded crossbeam queue into every
//! core, and an eventfd doorbell to wake a core sleeping in poll().
//!
//! A core that receives a packet of a flow owned by another core (a new flow
//! the selector gave to a listener there, or a later segment of such a flow)
//! copies the IP packet into a message and pushes it to the owner's queue.
//! A full queue is counted (`overflow`), never hidden: the packet is dropped
//! and TCP retransmits.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;
use nix::sys::eventfd::{EfdFlags, EventFd};
use smoltcp::socket::tcp;

use crate::parse::{FlowKey, ParsedIp};
use crate::reuseport::MemberId;

/// What one core sends another.
pub enum Msg {
    /// An IP packet (no link-layer header) for a flow the destination owns.
    Packet {
        /// The packet.
        data: Vec<u8>,
        /// Its parsed headers (so the owner does not parse again).
        parsed: ParsedIp,
        /// For a new flow: the member the selector chose.
        member: Option<MemberId>,
        /// Core that received it from the NIC.
        rx_core: usize,
        /// Times it was forwarded already (a bound against loops).
        hops: u8,
    },
    /// A not-yet-accepted connection migrating from a closed listener.
    Migrate {
        /// The connection's socket, as it was.
        socket: Box<tcp::Socket<'static>>,
        /// Its flow key.
        key: FlowKey,
        /// The member that takes it.
        to: MemberId,
        /// Core that receives the flow's packets from the NIC.
        rx_core: usize,
    },
    /// The owner released a flow: the receiving core may forget its entry.
    FlowClosed {
        /// The flow.
        key: FlowKey,
    },
    /// A core admitted (or took in) a flow whose packets arrive on the
    /// receiving core's queue: forward them to `core`.
    FlowOwned {
        /// The flow.
        key: FlowKey,
        /// Its owner.
        core: usize,
    },
}

/// Per-core handoff counters (atomics: readable from any core).
#[derive(Debug, Default)]
pub struct HandoffCounters {
    /// Messages this core sent to others.
    pub sent: AtomicU64,
    /// Messages this core received.
    pub received: AtomicU64,
    /// Messages this core could not send because the destination's queue
    /// was full (dropped, counted).
    pub overflow: AtomicU64,
    /// Doorbells rung to wake a sleeping core.
    pub wakeups: AtomicU64,
}

/// Plain snapshot of [`HandoffCounters`].
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct HandoffSnapshot {
    /// Messages sent to other cores.
    pub sent: u64,
    /// Messages received from other cores.
    pub received: u64,
    /// Messages dropped because the destination queue was full.
    pub overflow: u64,
    /// Doorbells rung.
    pub wakeups: u64,
}

impl HandoffCounters {
    /// Current values.
    pub fn snapshot(&self) -> HandoffSnapshot {
        HandoffSnapshot {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            overflow: self.overflow.load(Ordering::Relaxed),
            wakeups: self.wakeups.load(Ordering::Relaxed),
        }
    }
}

struct Inbox {
    queue: ArrayQueue<Msg>,
    bell: EventFd,
    sleeping: AtomicBool,
    counters: HandoffCounters,
}

/// The queues between all cores of one process.
pub struct Mesh {
    inboxes: Vec<Inbox>,
    /// Packet buffers a core freed beyond its own pool, for any core to
    /// take (bounded; past that they are dropped).
    spare: ArrayQueue<Vec<u8>>,
    /// Cores whose graceful stop has finished (see [`Mesh::finish`]).
    finished: AtomicUsize,
}

/// Why a mesh could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot create an eventfd for core handoff: {0}")]
pub struct MeshError(nix::Error);

impl Mesh {
    /// A mesh for `cores` cores, each inbox holding `capacity` messages.
    pub fn new(cores: usize, capacity: usize) -> Result<Mesh, MeshError> {
        let mut inboxes = Vec::with_capacity(cores);
        for _ in 0..cores {
            inboxes.push(Inbox {
                queue: ArrayQueue::new(capacity.max(1)),
                bell: EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
                    .map_err(MeshError)?,
                sleeping: AtomicBool::new(false),
                counters: HandoffCounters::default(),
            });
        }
        Ok(Mesh {
            inboxes,
            spare: ArrayQueue::new(1024),
            finished: AtomicUsize::new(0),
        })
    }

    /// One core's graceful stop has finished: it has nothing of its own
    /// left, but it must keep reading its queue while any other core still
    /// works, because the client's packets for the others' connections (a
    /// reset, the ACK of a FIN) may arrive there. Wakes every core so the
    /// last one to finish lets the others go at once. Call once per core.
    pub fn finish(&self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
        for inbox in &self.inboxes {
            let _ = inbox.bell.write(1);
        }
    }

    /// Whether every core's graceful stop has finished.
    pub fn all_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst) >= self.inboxes.len()
    }

    /// A packet buffer another core gave back.
    pub fn spare(&self) -> Option<Vec<u8>> {
        self.spare.pop()
    }

    /// Offer a freed packet buffer to the other cores.
    pub fn give_spare(&self, buf: Vec<u8>) {
        let _ = self.spare.push(buf);
    }

    /// Number of cores.
    pub fn cores(&self) -> usize {
        self.inboxes.len()
    }

    /// Send `msg` from core `from` to core `to`; wakes `to` if it sleeps.
    /// Gives the message back (counted as overflow) when the queue is full
    /// or `to` does not exist.
    pub fn send(&self, from: usize, to: usize, msg: Msg) -> Result<(), Msg> {
        let Some(inbox) = self.inboxes.get(to) else {
            return Err(msg);
        };
        let counters = &self.inboxes.get(from).unwrap_or(inbox).counters;
        match inbox.queue.push(msg) {
            Ok(()) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
                // Pairs with the SeqCst store in `prepare_sleep`: either the
                // sleeper sees the message, or we see it sleeping and ring.
                if inbox.sleeping.load(Ordering::SeqCst) {
                    counters.wakeups.fetch_add(1, Ordering::Relaxed);
                    let _ = inbox.bell.write(1);
                }
                Ok(())
            }
            Err(msg) => {
                counters.overflow.fetch_add(1, Ordering::Relaxed);
                Err(msg)
            }
        }
    }

    /// Take one message for core `core`.
    pub fn recv(&self, core: usize) -> Option<Msg> {
        let inbox = self.inboxes.get(core)?;
        let m = inbox.queue.pop()?;
        inbox.counters.received.fetch_add(1, Ordering::Relaxed);
        Some(m)
    }

    /// Whether core `core` has messages waiting.
    pub fn pending(&self, core: usize) -> bool {
        self.inboxes.get(core).is_some_and(|i| !i.queue.is_empty())
    }

    /// Mark `core` as about to sleep. Returns false (and stays awake) if a
    /// message is already waiting.
    pub fn prepare_sleep(&self, core: usize) -> bool {
        let Some(inbox) = self.inboxes.get(core) else {
            return true;
        };
        inbox.sleeping.store(true, Ordering::SeqCst);
        if !inbox.queue.is_empty() {
            inbox.sleeping.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Mark `core` awake and clear its doorbell.
    pub fn woke(&self, core: usize) {
        if let Some(inbox) = self.inboxes.get(core) {
            inbox.sleeping.store(false, Ordering::SeqCst);
            let _ = inbox.bell.read();
        }
    }

    /// Ring `core`'s doorbell (wakes it if it sleeps in poll()).
    pub fn wake(&self, core: usize) {
        if let Some(inbox) = self.inboxes.get(core) {
            let _ = inbox.bell.write(1);
        }
    }

    /// The doorbell of `core`, to poll() on next to its XSK.
    pub fn bell(&self, core: usize) -> Option<BorrowedFd<'_>> {
        self.inboxes.get(core).map(|i| i.bell.as_fd())
    }

    /// Counters of `core`.
    pub fn counters(&self, core: usize) -> Option<HandoffSnapshot> {
        self.inboxes.get(core).map(|i| i.counters.snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{Proto, L4};
    use std::net::{IpAddr, Ipv4Addr};

    fn pkt() -> Msg {
        let ip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
        Msg::Packet {
            data: vec![1, 2, 3],
            parsed: ParsedIp {
                key: FlowKey {
                    proto: Proto::Udp,
                    src: ip,
                    sport: 1,
                    dst: ip,
                    dport: 2,
                },
                l4: L4::Udp,
                payload_len: 0,
                tcp: Default::default(),
            },
            member: None,
            rx_core: 0,
            hops: 0,
        }
    }

    #[test]
    fn send_recv_and_overflow_counted() {
        let m = Mesh::new(2, 2).unwrap();
        assert!(m.send(0, 1, pkt()).is_ok());
        assert!(m.send(0, 1, pkt()).is_ok());
        assert!(m.send(0, 1, pkt()).is_err());
        assert_eq!(m.counters(0).unwrap().sent, 2);
        assert_eq!(m.counters(0).unwrap().overflow, 1);
        assert!(m.pending(1));
        assert!(m.recv(1).is_some());
        assert!(m.recv(1).is_some());
        assert!(m.recv(1).is_none());
        assert_eq!(m.counters(1).unwrap().received, 2);
        assert!(m.send(0, 7, pkt()).is_err());
    }

    #[test]
    fn sleeper_is_woken_and_waiting_messages_prevent_sleep() {
        let m = Mesh::new(2, 4).unwrap();
        assert!(m.prepare_sleep(1));
        m.send(0, 1, pkt()).ok();
        assert_eq!(m.counters(0).unwrap().wakeups, 1);
        // The doorbell is readable.
        let mut fds = [nix::poll::PollFd::new(
            m.bell(1).unwrap(),
            nix::poll::PollFlags::POLLIN,
        )];
        assert_eq!(
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap(),
            1
        );
        m.woke(1);
        assert!(
            !m.prepare_sleep(1),
            "a waiting message must keep the core awake"
        );
    }
}
