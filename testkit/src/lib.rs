//! The one test kit of the workspace: what the tests of every crate (`nic`,
//! `stack`, the services, the daemon, the tools, the lab and `apps`) share,
//! so that none of them writes it again.
//!
//! - [`MemClient`]: a plain smoltcp stack over one end of a `MemRings` pipe
//!   (the kernel-less peer of every in-memory test).
//! - [`Capture`]: taps on both ends of a pipe, written as pcap files when the
//!   test fails (or always with `XDPSTACK_TEST_PCAP=DIR`), path printed.
//! - [`Rng`]: one seeded, dependency-free random generator.
//! - [`privileged`]: one root check; `XDPSTACK_REQUIRE_PRIV` (or `CI`) turns
//!   a missing privilege into a failure instead of a skip.
//! - [`Net`]: the one in-memory harness, a side under test ([`Endpoint`])
//!   and a `MemClient` on one virtual clock (`stack::testing` puts the
//!   engine in it).
//! - [`frames`]: raw Ethernet/IPv4/TCP frames for tests that inject segments.
//!
//! Dependency direction: the kit depends on `nic` and smoltcp only. `stack`
//! and `apps` take it as a dev-dependency; `nic` does too, for its
//! integration tests only (`tests/`): they link the same `nic` library as the
//! kit. `nic`'s unit tests must not use it with `nic` types (they would be a
//! second copy of the crate).
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod client;
pub mod frames;
mod net;
mod pcap;
mod privilege;
mod rng;

pub use client::{ClientConfig, MemClient};
pub use net::{Endpoint, Net};
pub use pcap::Capture;
pub use privilege::privileged;
pub use rng::Rng;

use std::net::Ipv4Addr;

/// The server's (the engine's) address in the in-memory tests.
pub const SERVER_IP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The server's MAC in the in-memory tests.
pub const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
/// The [`MemClient`]'s address in the in-memory tests.
pub const CLIENT_IP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The [`MemClient`]'s MAC in the in-memory tests.
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
