//! xdpstack's per-core engine: L2, demux, flow table, native reuseport
//! groups, cross-core handoff, smoltcp for TCP, native UDP, worker loop.
#![deny(unsafe_code)]
#![deny(missing_docs)]
pub mod cookie;
pub mod counters;
pub(crate) mod emit;
pub mod engine;
pub mod flow;
pub mod handoff;
pub mod id;
pub mod l2;
#[cfg(any(test, feature = "testing"))]
pub mod model;
pub mod neigh;
pub mod parse;
pub mod reuseport;
pub mod shared;
pub mod socket;
pub(crate) mod tcp;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timer;
pub mod worker;
