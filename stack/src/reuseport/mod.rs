//! SO_REUSEPORT in userspace: bind rules, reuseport groups, and the selection of a listener
//! for every new flow.
//!
//! Pure logic, no I/O: one [`Registry`] is shared (in an `Arc`) by every core's engine and by
//! the socket API.
//!
//! - **Bind** ([`Registry::bind`]): a (proto, address, port) that overlaps an existing bind is
//!   allowed only if every party set `SO_REUSEPORT` and all have the same uid (Linux's rules,
//!   including wildcard/specific and dual-stack overlap); otherwise a [`BindError`] that names
//!   the rule. Binds of exactly the same (proto, address, port) form one group.
//! - **Lookup and selection** ([`Registry::select`], on the packet path, lock-free): the most
//!   specific group for the destination, then the group's [`Selector`] over its active members
//!   — by default `reciprocal_scale(hash, n)` with a keyed SipHash-1-3 of the 4-tuple
//!   ([`FlowHasher`], random key per process); [`QueueSelector`] keeps flows on the receiving
//!   core; an out-of-range answer falls back to the hash.
//! - **Beyond the kernel**: [`Registry::drain`] stops new flows to a member while its own
//!   finish; [`Registry::migration_target`] names the live member a closing listener's pending
//!   connections move to; [`ListenerCounters`] show the distribution.
//!
//! # Example
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::sync::Arc;
//! use stack::parse::{FlowKey, Proto};
//! use stack::reuseport::{BindAddr, BindError, BindOptions, FlowHasher, QueueSelector, Registry};
//!
//! let reg = Registry::new(FlowHasher::random());
//! let opts = BindOptions::new(1000).with_reuseport(true);
//! // One HTTP listener per core, all on 0.0.0.0:80.
//! let a = reg.bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, opts.clone())?;
//! let b = reg.bind(Proto::Tcp, BindAddr::Any4, 80, 1, 1, opts.clone())?;
//! assert_eq!(reg.group(a).unwrap().members, vec![a, b]);
//!
//! // Another user cannot join the group.
//! let err = reg
//!     .bind(Proto::Tcp, BindAddr::Any4, 80, 0, 0, BindOptions::new(0).with_reuseport(true))
//!     .unwrap_err();
//! assert!(err.to_string().contains("refused port hijack"));
//!
//! // A new flow: the same 4-tuple always goes to the same listener.
//! let key = FlowKey {
//!     proto: Proto::Tcp,
//!     src: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)),
//!     sport: 43210,
//!     dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
//!     dport: 80,
//! };
//! let sel = reg.select(&key, 0, 0).unwrap();
//! assert_eq!(reg.select(&key, 1, 1).unwrap().member, sel.member);
//!
//! // Keep flows on the core whose queue received them.
//! reg.set_selector(a, Arc::new(QueueSelector))?;
//! assert_eq!(reg.select(&key, 1, 1).unwrap().member, b);
//!
//! // Drain `a`: new flows only go to `b`, and `a`'s pending connections would move to `b`.
//! reg.drain(a)?;
//! assert_eq!(reg.select(&key, 0, 0).unwrap().member, b);
//! assert_eq!(reg.migration_target(a, &key, 0).unwrap().member, b);
//! # Ok::<(), BindError>(())
//! ```

mod registry;
mod select;
#[cfg(test)]
mod tests;

pub use registry::{
    BindAddr, BindError, BindOptions, GroupInfo, ListenerCounters, ListenerSnapshot, Member,
    MemberId, MemberState, MissingReuseport, Registry, Selected, DEFAULT_BACKLOG,
};
pub use select::{
    reciprocal_scale, selector_by_name, FlowHasher, HashSelector, MemberView, QueueSelector,
    SelectCtx, Selector,
};
