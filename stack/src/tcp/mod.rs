//! TCP's state on one core, apart from the engine that drives it: the
//! connection table and the listeners. Neither does I/O or reads a clock:
//! the engine (`engine/tcp/`) passes in the time, smoltcp's interface and
//! the port where a step needs them, and acts on what they decide.
//!
//! - `table.rs`: the connection table: slots, each with its own one-socket
//!   smoltcp set, the socket pool, the dirty and ready lists.
//! - `phase.rs`: how a connection moves between phases (handshake, accept
//!   queue, application, closing), as its socket state says ([`Settled`]).
//! - `timers.rs`: each connection's next deadline in a timing wheel, and
//!   which of them are due ([`Fired`]).
//! - `listener.rs`: the listeners: SYN and accept queues, the cookie
//!   window, and admission as a decision ([`Admission`]).
//! - `time_wait.rs`: connections in TIME-WAIT as compact records once their
//!   slot is released, bounded, expiring in order ([`TimeWait`]).
//! - `peers.rs`: what a core remembers of a peer between connections (the
//!   RTO its last connection measured, for the next one's SYN-ACK).
//! - `segment.rs`: the segments the stack builds itself (SYN cookies, the
//!   ACKs of TIME-WAIT records).
//! - `buffers.rs`: buffers that grow, the policy (size classes, the per-core
//!   pool, the process's memory budget, receive and send autotuning);
//!   `storage.rs` applies it to the table's sockets.

pub(crate) mod buffers;
mod listener;
mod peers;
mod phase;
mod segment;
mod storage;
mod table;
mod time_wait;
mod timers;

pub(crate) use listener::{Admission, CookieListener, Listener, Listeners};
pub(crate) use peers::PeerRtos;
pub(crate) use phase::Settled;
pub(crate) use segment::{bare_ack, cookie_syn, cookie_syn_ack, emit_ip_tcp, ip_tcp_len, SynOpts};
pub(crate) use table::{Conns, Phase, SocketParams, Visit};
pub use time_wait::TIME_WAIT_LEN;
pub(crate) use time_wait::{Segment as TwSegment, TimeWait, Verdict as TwVerdict};
pub(crate) use timers::Fired;
