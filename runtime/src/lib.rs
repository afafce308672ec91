//! Running a service on the stack, for every command that opens NIC queues
//! or attaches to the daemon:
//!
//! - [`server`]: one XSK per worker (one worker per queue), each worker
//!   pinned to a core running an engine and the application, until
//!   SIGINT/SIGTERM; the final report.
//! - [`xsk_opts`]: the AF_XDP and steering options every command shares and
//!   the one way to open a set of queues.
//! - [`duration`]: the one duration syntax of every flag (`250ms`, `30s`,
//!   `2m`; a bare number is seconds).
//! - [`report`]: what a server reports on exit (`--report FILE`), typed.
//! - [`conns`]: what every TCP service keeps beside its connection table
//!   (ended connections, eviction of the stalest, the idle sweep).
//! - [`attached`]: the same service run as a process attached to
//!   `xdpstack daemon` over shared-memory rings.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod attached;
pub mod conns;
pub mod duration;
pub mod report;
pub mod server;
pub mod xsk_opts;
