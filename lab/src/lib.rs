//! The lab: what the tests, the benchmarks and the demo build to run the
//! stack against real kernel peers.
//!
//! - [`sandbox`]: two network namespaces joined by a veth pair (and a middle
//!   namespace with an impairing forwarder when asked), removed on drop.
//! - [`impair`]: the impairing forwarder (loss, delay, jitter, reordering,
//!   duplication), pure logic plus its AF_PACKET loop.
//! - [`bulk`]: a kernel TCP client that checks every byte it gets back, and a
//!   kernel echo server to compare with.
//! - [`demo`]: the kernel-bypass HTTP demo, end to end.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod bulk;
pub mod demo;
pub mod impair;
pub mod sandbox;
