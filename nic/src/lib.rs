//! AF_XDP ports for xdpstack.
//!
//! A [`Port`] runs over a [`Rings`] backend: [`xsk::XskRings`] (a real AF_XDP
//! socket through xsk-rs) or `mem::MemRings` (an in-memory pipe for tests,
//! built with the `testing` feature or in nic's own tests).
//! It accounts for every UMEM frame ([`Ledger`]), batches rx and tx, kicks the
//! kernel only when a ring asks (XDP_USE_NEED_WAKEUP), and lends smoltcp a
//! [`PortDevice`] whose tokens read and write frames in place.
//!
//! All of xdpstack's unsafe code lives in this crate; every block names the
//! invariant it relies on, which is always the ledger's: one live owner per
//! frame.
#![deny(missing_docs)]

pub mod device;
pub mod error;
pub mod ethtool;
pub mod ledger;
#[cfg(any(test, feature = "testing"))]
pub mod mem;
pub mod packet;
pub mod pcap;
pub mod pidfd;
pub mod port;
pub mod prefetch;
pub mod ring;
pub mod shm;
pub mod state;
pub mod steer;
pub mod xsk;

pub use device::PortDevice;
pub use error::NicError;
pub use ledger::{Ledger, LedgerError, Place};
pub use port::{Port, PortConfig, PortCounters, PortStats, RxPacket};
pub use ring::{Frame, FrameMem, KernelStats, Rings};
