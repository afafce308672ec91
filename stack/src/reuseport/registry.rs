//! The registry of reuseport listeners shared by all cores: bind rules, groups, lookup.
//!
//! Writers (bind, unbind, drain, set_selector: rare, control path) serialize on a mutex, then
//! publish a new immutable [`Snapshot`] through `arc_swap`. Readers (the packet path of every
//! core) load the current snapshot without a lock and without allocating.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use serde::Serialize;

use super::select::{reciprocal_scale, FlowHasher, HashSelector, MemberView, SelectCtx, Selector};
use crate::parse::{FlowKey, Proto};

pub use crate::id::MemberId;

/// The bound address, as Linux distinguishes it.
///
/// Overlap ([`BindAddr::overlaps`]) decides bind conflicts; equality decides group membership
/// (members of one group share exactly the address, the family and, for `::`, the v6only flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BindAddr {
    /// `0.0.0.0`: every IPv4 destination.
    Any4,
    /// `::`. With `v6only: false` (the Linux default, `net.ipv6.bindv6only=0`) it is dual
    /// stack and also takes IPv4 destinations; with `v6only: true` (`IPV6_V6ONLY`) only IPv6.
    Any6 {
        /// `IPV6_V6ONLY` was set.
        v6only: bool,
    },
    /// One IPv4 address.
    V4(Ipv4Addr),
    /// One IPv6 address (never an IPv4-mapped one: those are normalized to [`BindAddr::V4`]).
    V6(Ipv6Addr),
}

impl BindAddr {
    /// The dual-stack wildcard `::` (what an IPv6 socket bound to `::` is by default on Linux).
    pub const DUAL_STACK: BindAddr = BindAddr::Any6 { v6only: false };

    /// Convert a `std` address, smoltcp's `IpListenEndpoint` convention: `None` means "any
    /// address", which is `::` (dual stack unless `v6only`).
    ///
    /// `Some(0.0.0.0)` is [`BindAddr::Any4`], `Some(::)` is [`BindAddr::Any6`] with `v6only`,
    /// and an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the IPv4 address `a.b.c.d` (as a
    /// Linux `AF_INET6` socket bound to it behaves like an IPv4 socket; `::ffff:0.0.0.0` is
    /// [`BindAddr::Any4`]). `v6only` only matters for `None`/`::`; Linux refuses a mapped address
    /// with `IPV6_V6ONLY` (EINVAL): [`BindAddr::try_from_std`] does too.
    pub fn from_std(addr: Option<IpAddr>, v6only: bool) -> Self {
        match addr {
            None => BindAddr::Any6 { v6only },
            Some(IpAddr::V4(a)) => Self::from_v4(a),
            Some(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                Some(v4) => Self::from_v4(v4),
                None if a.is_unspecified() => BindAddr::Any6 { v6only },
                None => BindAddr::V6(a),
            },
        }
    }

    /// Like [`BindAddr::from_std`], but an IPv4-mapped address with `v6only` is refused with
    /// [`BindError::FamilyMismatch`], as Linux's `bind` refuses it.
    pub fn try_from_std(addr: Option<IpAddr>, v6only: bool) -> Result<Self, BindError> {
        if let Some(IpAddr::V6(a)) = addr {
            if v6only && a.to_ipv4_mapped().is_some() {
                return Err(BindError::FamilyMismatch);
            }
        }
        Ok(Self::from_std(addr, v6only))
    }

    fn from_v4(a: Ipv4Addr) -> Self {
        if a.is_unspecified() {
            BindAddr::Any4
        } else {
            BindAddr::V4(a)
        }
    }

    /// Whether a packet to `dst` can reach a listener bound here. `Any6 { v6only: false }`
    /// matches IPv4 destinations too (dual stack).
    pub fn matches(&self, dst: &IpAddr) -> bool {
        self.specificity(dst).is_some()
    }

    /// `0.0.0.0` or `::`.
    pub fn is_wildcard(&self) -> bool {
        matches!(self, BindAddr::Any4 | BindAddr::Any6 { .. })
    }

    /// Whether two binds of the same proto and port would contend for some destination, as
    /// Linux's `inet_rcv_saddr_equal` decides it: equal addresses; `0.0.0.0` and every IPv4
    /// address; dual-stack `::` and everything; `::` (either flavour) and every IPv6 address
    /// and the other `::`. A v6only `::` does not overlap IPv4 binds. Symmetric.
    pub fn overlaps(&self, other: &BindAddr) -> bool {
        use BindAddr::*;
        match (self, other) {
            (Any6 { v6only: false }, _) | (_, Any6 { v6only: false }) => true,
            (Any6 { .. }, Any6 { .. } | V6(_)) | (V6(_), Any6 { .. }) => true,
            (Any4, Any4 | V4(_)) | (V4(_), Any4) => true,
            (V4(a), V4(b)) => a == b,
            (V6(a), V6(b)) => a == b,
            _ => false,
        }
    }

    /// How well this address matches `dst`, higher is better; `None` if it does not.
    /// IPv4 `dst`: `V4(dst)` 3, `Any4` 2, dual-stack `::` 1.
    /// IPv6 `dst`: `V6(dst)` 3, v6only `::` 2, dual-stack `::` 1.
    fn specificity(&self, dst: &IpAddr) -> Option<u8> {
        use BindAddr::*;
        match (self, dst) {
            (V4(a), IpAddr::V4(d)) if a == d => Some(3),
            (V6(a), IpAddr::V6(d)) if a == d => Some(3),
            (Any4, IpAddr::V4(_)) | (Any6 { v6only: true }, IpAddr::V6(_)) => Some(2),
            (Any6 { v6only: false }, _) => Some(1),
            _ => None,
        }
    }
}

impl fmt::Display for BindAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindAddr::Any4 => f.write_str("0.0.0.0"),
            BindAddr::Any6 { v6only: false } => f.write_str("::"),
            BindAddr::Any6 { v6only: true } => f.write_str(":: (v6only)"),
            BindAddr::V4(a) => write!(f, "{a}"),
            BindAddr::V6(a) => write!(f, "{a}"),
        }
    }
}

/// `addr:port` with IPv6 in brackets, for messages.
fn endpoint(addr: &BindAddr, port: &u16) -> String {
    match addr {
        BindAddr::Any4 | BindAddr::V4(_) => format!("{addr}:{port}"),
        BindAddr::Any6 { v6only: false } => format!("[::]:{port}"),
        BindAddr::Any6 { v6only: true } => format!("[::]:{port} (v6only)"),
        BindAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn proto_str(p: &Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
        Proto::Icmp => "icmp",
    }
}

/// The backlog [`BindOptions::default`] and [`BindOptions::new`] use.
pub const DEFAULT_BACKLOG: usize = 128;

/// Socket options that take part in the bind rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindOptions {
    /// `SO_REUSEPORT`: every member of a shared port must set it.
    pub reuseport: bool,
    /// The binding user: every member of a shared port must have the same (port hijack
    /// protection). The stack has no way to learn it: applications pass their effective uid.
    pub uid: u32,
    /// TCP: the accept queue length; UDP: the datagram queue length. Must be at least 1.
    pub backlog: usize,
}

impl Default for BindOptions {
    /// `reuseport: false`, `uid: 0`, `backlog:` [`DEFAULT_BACKLOG`].
    fn default() -> Self {
        Self::new(0)
    }
}

impl BindOptions {
    /// Options for user `uid` (pass the process's effective uid): no reuseport, the default
    /// backlog.
    pub fn new(uid: u32) -> Self {
        Self {
            reuseport: false,
            uid,
            backlog: DEFAULT_BACKLOG,
        }
    }

    /// Set or clear `SO_REUSEPORT`.
    pub fn with_reuseport(mut self, on: bool) -> Self {
        self.reuseport = on;
        self
    }

    /// Set the backlog.
    pub fn with_backlog(mut self, backlog: usize) -> Self {
        self.backlog = backlog;
        self
    }
}

/// Whether a member takes new flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum MemberState {
    /// Selected for new flows.
    Active,
    /// Bound, finishing its flows, never selected for new ones.
    Draining,
}

/// Per-listener counters, shared (atomics, `Relaxed`) so any core and the application can read
/// them. The registry bumps `flows`; the engine bumps the rest.
#[derive(Debug, Default)]
pub struct ListenerCounters {
    /// Connections taken off the accept queue (UDP: datagrams delivered).
    pub accepted: AtomicU64,
    /// Pending connections this listener took over from a closed member of its group.
    pub migrated_in: AtomicU64,
    /// Pending connections moved away from this listener when it closed.
    pub migrated_out: AtomicU64,
    /// SYNs/datagrams dropped because its queue was full.
    pub dropped: AtomicU64,
    /// Pending connections reset because no live member was left to migrate them to.
    pub reset: AtomicU64,
    /// Payload bytes received on its flows.
    pub bytes_in: AtomicU64,
    /// Payload bytes sent on its flows.
    pub bytes_out: AtomicU64,
    /// New flows selected to it.
    pub flows: AtomicU64,
}

impl ListenerCounters {
    /// A plain copy of the counters (each read `Relaxed`; not one atomic instant).
    pub fn snapshot(&self) -> ListenerSnapshot {
        ListenerSnapshot {
            accepted: self.accepted.load(Relaxed),
            migrated_in: self.migrated_in.load(Relaxed),
            migrated_out: self.migrated_out.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            reset: self.reset.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            flows: self.flows.load(Relaxed),
        }
    }
}

/// A copy of [`ListenerCounters`], for statistics output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ListenerSnapshot {
    /// Connections accepted (UDP: datagrams delivered); [`ListenerCounters::accepted`].
    pub accepted: u64,
    /// Pending connections taken over from a closed member of the group.
    pub migrated_in: u64,
    /// Pending connections moved to another member when this one closed.
    pub migrated_out: u64,
    /// SYNs/datagrams dropped on a full queue.
    pub dropped: u64,
    /// Pending connections reset for want of a live member to migrate to.
    pub reset: u64,
    /// Payload bytes received on its flows.
    pub bytes_in: u64,
    /// Payload bytes sent on its flows.
    pub bytes_out: u64,
    /// New flows [`Registry::select`] chose it for (by its selector or the hash fallback).
    pub flows: u64,
}

/// One bound listener (TCP) or socket (UDP).
#[derive(Clone, Debug)]
pub struct Member {
    /// Its identity, unique for the registry's life (bind order).
    pub id: MemberId,
    /// TCP or UDP.
    pub proto: Proto,
    /// The address it bound, exactly (the group's address).
    pub addr: BindAddr,
    /// The port it bound (never 0).
    pub port: u16,
    /// The core whose engine owns it.
    pub core: usize,
    /// The NIC queue that core serves.
    pub queue: u32,
    /// The options of its bind (reuseport, uid, backlog).
    pub opts: BindOptions,
    /// Whether it still takes new flows.
    pub state: MemberState,
    /// Its counters, shared with the engine that owns it and with the application.
    pub counters: Arc<ListenerCounters>,
}

impl Member {
    fn view(&self) -> MemberView {
        MemberView {
            id: self.id,
            core: self.core,
            queue: self.queue,
        }
    }
}

/// Who, in a refused bind, did not set `SO_REUSEPORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingReuseport {
    /// The new bind did not set it (the holder did).
    ThisBind,
    /// The existing holder did not set it (the new bind did).
    Holder,
    /// Neither did.
    Both,
}

impl fmt::Display for MissingReuseport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MissingReuseport::ThisBind => "this bind did not set reuseport",
            MissingReuseport::Holder => "the holder did not set reuseport",
            MissingReuseport::Both => "neither this bind nor the holder set reuseport",
        })
    }
}

/// Why a bind (or another registry operation) was refused; each message says which rule.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum BindError {
    /// Port 0 (an ephemeral port) cannot be a listener's port here.
    #[error("port 0 refused: a listener must bind an explicit port")]
    PortZero,
    /// The address is held (an overlapping bind on the same proto and port) by a member
    /// without `SO_REUSEPORT`, or this bind did not set it.
    #[error(
        "address in use: {} {} is held by member {holder} and {who} (every member must)",
        proto_str(.proto), endpoint(.addr, .port)
    )]
    AddrInUseNoReuseport {
        /// The protocol of the bind.
        proto: Proto,
        /// The holder's address (it may be a wildcard covering this bind's).
        addr: BindAddr,
        /// The contended port.
        port: u16,
        /// The member holding the address.
        holder: MemberId,
        /// Which side lacks `SO_REUSEPORT`.
        who: MissingReuseport,
    },
    /// Every party set `SO_REUSEPORT` but the holder belongs to another user: a port hijack.
    #[error(
        "address in use: refused port hijack: {} {} is held by uid {owner}, not uid {uid}",
        proto_str(.proto), endpoint(.addr, .port)
    )]
    PortHijack {
        /// The protocol of the bind.
        proto: Proto,
        /// The holder's address.
        addr: BindAddr,
        /// The contended port.
        port: u16,
        /// The member holding the address.
        holder: MemberId,
        /// The holder's uid.
        owner: u32,
        /// This bind's uid.
        uid: u32,
    },
    /// A backlog of 0 would refuse every connection.
    #[error("backlog 0 refused: a listener needs room for at least one pending connection")]
    ZeroBacklog,
    /// Only TCP and UDP have reuseport groups.
    #[error("{} cannot be bound: reuseport groups are for tcp and udp", proto_str(.0))]
    UnsupportedProto(Proto),
    /// The member id is not (or no longer) bound.
    #[error("no such member")]
    NoSuchMember,
    /// An IPv4-mapped address with `IPV6_V6ONLY` (Linux: EINVAL).
    #[error("address family mismatch: an IPv4-mapped address cannot be bound v6only")]
    FamilyMismatch,
}

/// The routing decision for a new flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selected {
    /// The member that gets the flow.
    pub member: MemberId,
    /// Its core.
    pub core: usize,
    /// Its position among the group's active members (bind order).
    pub index: usize,
    /// [`Registry::select`]: the selector answered out of range or `None` and the hash
    /// decided. [`Registry::migration_target`]: no live member on the preferred core, the
    /// hash decided.
    pub fell_back: bool,
}

/// A group as statistics and tests see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupInfo {
    /// TCP or UDP (serialized as `"tcp"`/`"udp"`).
    #[serde(serialize_with = "ser_proto")]
    pub proto: Proto,
    /// The address every member bound (serialized as text, e.g. `"::"`).
    #[serde(serialize_with = "ser_display")]
    pub addr: BindAddr,
    /// The port every member bound.
    pub port: u16,
    /// The selector's [`Selector::name`].
    pub selector: &'static str,
    /// Every member, bind order.
    pub members: Vec<MemberId>,
    /// The active members, bind order (the indices of [`Selected::index`]).
    pub active: Vec<MemberId>,
}

fn ser_proto<S: serde::Serializer>(p: &Proto, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(proto_str(p))
}

fn ser_display<S: serde::Serializer>(a: &BindAddr, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(a)
}

/// One reuseport group in a snapshot.
#[derive(Debug)]
struct Group {
    addr: BindAddr,
    selector: Arc<dyn Selector>,
    /// Every member, bind order.
    members: Vec<MemberId>,
    /// Active members, bind order: what selectors see.
    active: Vec<MemberView>,
    /// `active[i]`'s counters.
    active_counters: Vec<Arc<ListenerCounters>>,
}

impl Group {
    fn info(&self, proto: Proto, port: u16) -> GroupInfo {
        GroupInfo {
            proto,
            addr: self.addr,
            port,
            selector: self.selector.name(),
            members: self.members.clone(),
            active: self.active.iter().map(|m| m.id).collect(),
        }
    }
}

/// An immutable view of the registry, published on every change.
#[derive(Debug, Default)]
struct Snapshot {
    generation: u64,
    /// Groups by (proto, port); a port holds few groups (one per distinct bound address).
    ports: HashMap<(Proto, u16), Vec<Group>>,
    members: BTreeMap<MemberId, Member>,
}

impl Snapshot {
    fn group_of(&self, m: &Member) -> Option<&Group> {
        self.ports
            .get(&(m.proto, m.port))?
            .iter()
            .find(|g| g.addr == m.addr)
    }
}

/// The writers' state; the snapshot is rebuilt from it on every change.
#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    generation: u64,
    members: BTreeMap<MemberId, Member>,
    /// Selectors set with `set_selector`, by group; absent means [`HashSelector`].
    selectors: HashMap<(Proto, BindAddr, u16), Arc<dyn Selector>>,
}

/// Registry of listeners shared by all cores.
///
/// Writers (bind/unbind/drain/set_selector: rare) serialize on a mutex and publish a new
/// immutable snapshot; readers (the packet path: [`Registry::select`],
/// [`Registry::migration_target`]) load the current snapshot through `arc_swap` without taking
/// a lock or allocating.
pub struct Registry {
    hasher: FlowHasher,
    snap: ArcSwap<Snapshot>,
    writer: Mutex<Inner>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.snap.load();
        f.debug_struct("Registry")
            .field("generation", &snap.generation)
            .field("members", &snap.members.len())
            .finish_non_exhaustive()
    }
}

impl Default for Registry {
    /// A registry with a random hash key.
    fn default() -> Self {
        Self::new(FlowHasher::random())
    }
}

impl Registry {
    /// An empty registry whose selectors hash with `hasher`.
    pub fn new(hasher: FlowHasher) -> Self {
        Self {
            hasher,
            snap: ArcSwap::from_pointee(Snapshot::default()),
            writer: Mutex::new(Inner {
                next_id: 1,
                ..Inner::default()
            }),
        }
    }

    /// The flow hasher (and so the key) this registry selects with.
    pub fn hasher(&self) -> FlowHasher {
        self.hasher
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Writers leave `Inner` consistent between statements: a poisoned lock is still usable.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Rebuild and publish the snapshot after a change (`inner` locked).
    fn publish(&self, inner: &mut Inner) {
        inner.generation += 1;
        let mut ports: HashMap<(Proto, u16), Vec<Group>> = HashMap::new();
        for m in inner.members.values() {
            let groups = ports.entry((m.proto, m.port)).or_default();
            let i = match groups.iter().position(|g| g.addr == m.addr) {
                Some(i) => i,
                None => {
                    let selector = inner
                        .selectors
                        .get(&(m.proto, m.addr, m.port))
                        .cloned()
                        .unwrap_or_else(|| Arc::new(HashSelector));
                    groups.push(Group {
                        addr: m.addr,
                        selector,
                        members: Vec::new(),
                        active: Vec::new(),
                        active_counters: Vec::new(),
                    });
                    groups.len() - 1
                }
            };
            let g = &mut groups[i];
            g.members.push(m.id);
            if m.state == MemberState::Active {
                g.active.push(m.view());
                g.active_counters.push(Arc::clone(&m.counters));
            }
        }
        self.snap.store(Arc::new(Snapshot {
            generation: inner.generation,
            ports,
            members: inner.members.clone(),
        }));
    }

    /// Bind a member; returns its id.
    ///
    /// Rules (Linux parity):
    /// 1. Port 0, backlog 0 and protocols other than TCP/UDP are refused.
    /// 2. TCP and UDP are independent namespaces.
    /// 3. A new bind conflicts with every existing member (active or draining) of the same
    ///    proto and port whose address [overlaps](BindAddr::overlaps). A conflict is allowed
    ///    only if the new bind and every overlapping member set reuseport and all have the same
    ///    uid; otherwise [`BindError::AddrInUseNoReuseport`] (checked first, over all
    ///    overlapping members) or [`BindError::PortHijack`].
    /// 4. Allowed binds with exactly the same (proto, addr, port) join one group; overlapping
    ///    but different addresses form separate groups that coexist (lookup prefers the most
    ///    specific, see [`Registry::select`]).
    pub fn bind(
        &self,
        proto: Proto,
        addr: BindAddr,
        port: u16,
        core: usize,
        queue: u32,
        opts: BindOptions,
    ) -> Result<MemberId, BindError> {
        if !matches!(proto, Proto::Tcp | Proto::Udp) {
            return Err(BindError::UnsupportedProto(proto));
        }
        if port == 0 {
            return Err(BindError::PortZero);
        }
        if opts.backlog == 0 {
            return Err(BindError::ZeroBacklog);
        }
        let mut inner = self.lock();
        let overlapping = || {
            inner
                .members
                .values()
                .filter(|m| m.proto == proto && m.port == port && m.addr.overlaps(&addr))
        };
        for m in overlapping() {
            let who = match (opts.reuseport, m.opts.reuseport) {
                (true, true) => continue,
                (false, true) => MissingReuseport::ThisBind,
                (true, false) => MissingReuseport::Holder,
                (false, false) => MissingReuseport::Both,
            };
            return Err(BindError::AddrInUseNoReuseport {
                proto,
                addr: m.addr,
                port,
                holder: m.id,
                who,
            });
        }
        if let Some(m) = overlapping().find(|m| m.opts.uid != opts.uid) {
            return Err(BindError::PortHijack {
                proto,
                addr: m.addr,
                port,
                holder: m.id,
                owner: m.opts.uid,
                uid: opts.uid,
            });
        }
        let id = MemberId(inner.next_id);
        inner.next_id += 1;
        inner.members.insert(
            id,
            Member {
                id,
                proto,
                addr,
                port,
                core,
                queue,
                opts,
                state: MemberState::Active,
                counters: Arc::new(ListenerCounters::default()),
            },
        );
        self.publish(&mut inner);
        Ok(id)
    }

    /// Remove a member (its group shrinks; an empty group disappears, and with it the group's
    /// selector). Returns the member as it was.
    pub fn unbind(&self, id: MemberId) -> Result<Member, BindError> {
        let mut inner = self.lock();
        let m = inner.members.remove(&id).ok_or(BindError::NoSuchMember)?;
        let still_used = inner
            .members
            .values()
            .any(|o| o.proto == m.proto && o.port == m.port && o.addr == m.addr);
        if !still_used {
            inner.selectors.remove(&(m.proto, m.addr, m.port));
        }
        self.publish(&mut inner);
        Ok(m)
    }

    /// Stop selecting the member for new flows (graceful drain); it stays bound, so its flows
    /// finish and its address stays held. Draining twice is not an error.
    pub fn drain(&self, id: MemberId) -> Result<(), BindError> {
        let mut inner = self.lock();
        let m = inner.members.get_mut(&id).ok_or(BindError::NoSuchMember)?;
        if m.state != MemberState::Draining {
            m.state = MemberState::Draining;
            self.publish(&mut inner);
        }
        Ok(())
    }

    /// The member `id`, if bound.
    pub fn member(&self, id: MemberId) -> Option<Member> {
        self.snap.load().members.get(&id).cloned()
    }

    /// Every bound member, in bind order (for statistics).
    pub fn members(&self) -> Vec<Member> {
        self.snap.load().members.values().cloned().collect()
    }

    /// Whether a group bound on `port` (any of its members, draining or
    /// not) takes `proto` packets to `dst`: an outgoing connection does not
    /// take such a port as its local one.
    pub fn is_bound(&self, proto: Proto, dst: &IpAddr, port: u16) -> bool {
        let snap = self.snap.load();
        snap.ports
            .get(&(proto, port))
            .is_some_and(|gs| gs.iter().any(|g| g.addr.specificity(dst).is_some()))
    }

    /// The group `id` belongs to.
    pub fn group(&self, id: MemberId) -> Option<GroupInfo> {
        let snap = self.snap.load();
        let m = snap.members.get(&id)?;
        Some(snap.group_of(m)?.info(m.proto, m.port))
    }

    /// Every group, ordered by (proto, port, first member).
    pub fn groups(&self) -> Vec<GroupInfo> {
        let snap = self.snap.load();
        let mut v: Vec<GroupInfo> = snap
            .ports
            .iter()
            .flat_map(|(&(proto, port), gs)| gs.iter().map(move |g| g.info(proto, port)))
            .collect();
        v.sort_by_key(|g| (g.proto, g.port, g.members.first().copied()));
        v
    }

    /// Set the selector of the group `id` belongs to (it applies to the whole group, as a BPF
    /// program attached to one socket of a group does). It lasts while the group has members.
    pub fn set_selector(&self, id: MemberId, sel: Arc<dyn Selector>) -> Result<(), BindError> {
        let mut inner = self.lock();
        let m = inner.members.get(&id).ok_or(BindError::NoSuchMember)?;
        let key = (m.proto, m.addr, m.port);
        inner.selectors.insert(key, sel);
        self.publish(&mut inner);
        Ok(())
    }

    /// Packet path, lock-free and allocation-free: route a new flow.
    ///
    /// Finds the group for (proto, dst, dport) that has an active member, the most specific
    /// first: for an IPv4 `dst`, `V4(dst)`, then `Any4`, then dual-stack `::`; for an IPv6
    /// `dst`, `V6(dst)`, then v6only `::`, then dual-stack `::`. (A group whose members all
    /// drain is passed over, as a closed listener is unhashed in Linux.) The group's selector
    /// then picks among its active members, in bind order; an answer out of range or `None`
    /// falls back to `reciprocal_scale(hash, n)` with `fell_back = true`. Increments the
    /// chosen member's `flows` counter. `None` when no group with an active member matches.
    pub fn select(&self, key: &FlowKey, rx_queue: u32, rx_core: usize) -> Option<Selected> {
        let snap = self.snap.load();
        let groups = snap.ports.get(&(key.proto, key.dport))?;
        let mut best: Option<(u8, &Group)> = None;
        for g in groups.iter().filter(|g| !g.active.is_empty()) {
            if let Some(s) = g.addr.specificity(&key.dst) {
                match best {
                    Some((b, _)) if b >= s => {}
                    _ => best = Some((s, g)),
                }
            }
        }
        let (_, g) = best?;
        let hash = self.hasher.hash(key);
        let n = g.active.len();
        let ctx = SelectCtx {
            key,
            hash,
            rx_queue,
            rx_core,
            members: &g.active,
        };
        let (index, fell_back) = match g.selector.select(&ctx) {
            Some(i) if i < n => (i, false),
            _ => (reciprocal_scale(hash, n), true),
        };
        g.active_counters[index].flows.fetch_add(1, Relaxed);
        let m = g.active[index];
        Some(Selected {
            member: m.id,
            core: m.core,
            index,
            fell_back,
        })
    }

    /// Where the pending connections of member `id` go when it closes: another active member
    /// of the same group, on `prefer_core` if there is one (`reciprocal_scale` of the hash of
    /// `key` among those, `fell_back = false`), else the hash of `key` among all the other
    /// active members (`fell_back = true`). `None` if `id` is not bound or no other active
    /// member is left.
    ///
    /// Call it before [`Registry::unbind`] (draining first is fine), or use
    /// [`Registry::migration_target_for`] with the member `unbind` returned. Migration stays
    /// within the group, as Linux's `reuseport_migrate_sock` does. Counters are not touched:
    /// the engine counts `migrated_out`/`migrated_in` when it moves a connection.
    pub fn migration_target(
        &self,
        id: MemberId,
        key: &FlowKey,
        prefer_core: usize,
    ) -> Option<Selected> {
        let snap = self.snap.load();
        let m = snap.members.get(&id)?;
        self.migration_in(&snap, m, key, prefer_core)
    }

    /// [`Registry::migration_target`] for a member that may already be unbound: the group is
    /// found by the member's (proto, addr, port).
    pub fn migration_target_for(
        &self,
        gone: &Member,
        key: &FlowKey,
        prefer_core: usize,
    ) -> Option<Selected> {
        let snap = self.snap.load();
        self.migration_in(&snap, gone, key, prefer_core)
    }

    fn migration_in(
        &self,
        snap: &Snapshot,
        gone: &Member,
        key: &FlowKey,
        prefer_core: usize,
    ) -> Option<Selected> {
        let g = snap.group_of(gone)?;
        let others = || {
            g.active
                .iter()
                .enumerate()
                .filter(move |(_, v)| v.id != gone.id)
        };
        let hash = self.hasher.hash(key);
        let local = others().filter(|(_, v)| v.core == prefer_core).count();
        let (index, v, fell_back) = if local > 0 {
            let nth = reciprocal_scale(hash, local);
            let (i, v) = others().filter(|(_, v)| v.core == prefer_core).nth(nth)?;
            (i, v, false)
        } else {
            let count = others().count();
            if count == 0 {
                return None;
            }
            let (i, v) = others().nth(reciprocal_scale(hash, count))?;
            (i, v, true)
        };
        Some(Selected {
            member: v.id,
            core: v.core,
            index,
            fell_back,
        })
    }

    /// A number that changes on every change of the registry (bind, unbind, drain,
    /// set_selector), so cores can notice group changes cheaply.
    pub fn generation(&self) -> u64 {
        self.snap.load().generation
    }
}
