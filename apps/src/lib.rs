//! The `xdpstack` command's pieces: the sandbox, the server runner, the
//! services (HTTP, echo) and the demo. `main.rs` is the CLI over them.
#![deny(unsafe_code)]

pub mod attached;
pub mod bulk;
pub mod daemon;
pub mod demo;
pub mod dns;
pub mod echo;
pub mod fuzz;
pub mod http;
pub mod impair;
pub mod pktgen;
pub mod reflect;
pub mod sandbox;
pub mod server;
pub mod status;
pub mod xsk_opts;
