//! One stack per core: the demux (L2 + header parse), a smoltcp interface in
//! `Medium::Ip`, the listeners and their backlog, and the socket API that
//! applications running on the same core use.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use nic::{Frame, Port, PortConfig, PortStats, Rings, RxPacket};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::{Duration as SDuration, Instant as SInstant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint};

use crate::counters::L2Counters;
use crate::l2::{Egress, Ingress, L2Config, SharedNeighbors, ETH_HDR, L2};
use crate::parse::{Proto, L4};
use crate::socket::{BindError, ConnError, ConnId, ListenerId, UdpError, UdpId};

/// Addresses and sizes of one engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Our MAC.
    pub mac: [u8; 6],
    /// IPv4 address and prefix.
    pub ipv4: Option<(Ipv4Addr, u8)>,
    /// IPv6 address and prefix.
    pub ipv6: Option<(Ipv6Addr, u8)>,
    /// IPv4 gateway for off-link peers.
    pub gateway4: Option<Ipv4Addr>,
    /// IPv6 gateway for off-link peers.
    pub gateway6: Option<Ipv6Addr>,
    /// TCP receive buffer per connection.
    pub tcp_rx_buf: usize,
    /// TCP send buffer per connection.
    pub tcp_tx_buf: usize,
    /// UDP buffer (bytes) per socket, each way.
    pub udp_buf: usize,
    /// UDP datagrams queued per socket, each way.
    pub udp_slots: usize,
    /// Seed for TCP initial sequence numbers and ephemeral ports.
    pub seed: u64,
}

impl EngineConfig {
    /// Defaults for the given MAC and addresses.
    pub fn new(mac: [u8; 6], ipv4: Option<(Ipv4Addr, u8)>, ipv6: Option<(Ipv6Addr, u8)>) -> Self {
        EngineConfig {
            mac,
            ipv4,
            ipv6,
            gateway4: None,
            gateway6: None,
            tcp_rx_buf: 64 * 1024,
            tcp_tx_buf: 64 * 1024,
            udp_buf: 64 * 1024,
            udp_slots: 64,
            seed: random_seed(),
        }
    }
}

/// A seed from the standard library's per-process random keys.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}

/// Engine counters, beyond L2's and the port's.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EngineCounters {
    /// IP packets handed to smoltcp.
    pub ip_packets: u64,
    /// TCP connections accepted by applications.
    pub accepted: u64,
    /// SYNs dropped because a listener's accept queue was full.
    pub syn_backlog_full: u64,
    /// Connections reset or closed before the application accepted them.
    pub pending_lost: u64,
    /// Connections whose TIME_WAIT was cut short to keep the socket set small.
    pub time_wait_reaped: u64,
    /// Connections released after closing.
    pub closed: u64,
    /// UDP datagrams received by applications.
    pub udp_rx: u64,
    /// UDP datagrams sent by applications.
    pub udp_tx: u64,
    /// UDP datagrams refused because the send buffer was full.
    pub udp_tx_full: u64,
}

/// Everything an engine counts, for reports.
#[derive(Clone, Debug)]
pub struct EngineStats {
    /// Engine counters.
    pub engine: EngineCounters,
    /// Demux counters.
    pub l2: L2Counters,
    /// Port counters and frame places.
    pub port: PortStats,
    /// Sockets in the set now.
    pub sockets: usize,
}

struct Listener {
    port: u16,
    backlog: usize,
    listening: Option<SocketHandle>,
    pending: VecDeque<SocketHandle>,
    accepted: u64,
    syn_dropped: u64,
}

struct Conn {
    handle: SocketHandle,
    closing: bool,
}

/// One core's stack over one port.
pub struct Engine<R: Rings> {
    port: Port<R>,
    iface: Interface,
    sockets: SocketSet<'static>,
    l2: L2,
    cfg: EngineConfig,
    listeners: Vec<Listener>,
    conns: Vec<Conn>,
    udp: Vec<(u16, SocketHandle)>,
    counters: EngineCounters,
    frames: Vec<Frame>,
    reply: [u8; 256],
    epoch: std::time::Instant,
    dirty: bool,
}

impl<R: Rings> Engine<R> {
    /// An engine over `rings`, sharing `neighbors` with the other cores.
    pub fn new(rings: R, cfg: EngineConfig, neighbors: Arc<SharedNeighbors>) -> Self {
        let port_cfg = PortConfig {
            l2_headroom: ETH_HDR,
            verify_rx_checksums: false,
            tx_reserve: rings_reserve(&rings),
            ..PortConfig::default()
        };
        let mut port = Port::new(rings, port_cfg);
        let epoch = std::time::Instant::now();
        let mut icfg = Config::new(HardwareAddress::Ip);
        icfg.random_seed = cfg.seed;
        let mut iface = Interface::new(icfg, &mut port.device(None), SInstant::from_millis(0));
        iface.update_ip_addrs(|addrs| {
            if let Some((a, p)) = cfg.ipv4 {
                let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(a), p));
            }
            if let Some((a, p)) = cfg.ipv6 {
                let _ = addrs.push(IpCidr::new(IpAddress::Ipv6(a), p));
            }
        });
        // smoltcp needs a route for off-link peers; in Medium::Ip the next hop
        // it picks is not used: L2 resolves the gateway's MAC itself.
        if let Some(gw) = cfg.gateway4 {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        if let Some(gw) = cfg.gateway6 {
            let _ = iface.routes_mut().add_default_ipv6_route(gw);
        }
        let l2 = L2::new(
            L2Config {
                mac: cfg.mac,
                ipv4: cfg.ipv4,
                ipv6: cfg.ipv6,
                gateway4: cfg.gateway4,
                gateway6: cfg.gateway6,
            },
            neighbors,
        );
        Engine {
            port,
            iface,
            sockets: SocketSet::new(Vec::new()),
            l2,
            cfg,
            listeners: Vec::new(),
            conns: Vec::new(),
            udp: Vec::new(),
            counters: EngineCounters::default(),
            frames: Vec::with_capacity(64),
            reply: [0; 256],
            epoch,
            dirty: true,
        }
    }

    fn now(&self) -> SInstant {
        SInstant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    /// The port (for its backend's info).
    pub fn port(&self) -> &Port<R> {
        &self.port
    }

    /// Receive one batch and run it through the stack. Returns the number of
    /// frames received.
    pub fn ingress(&mut self) -> usize {
        let now = self.now();
        let now_ms = now.total_millis() as u64;
        let n = self.port.recv(&mut self.frames);
        let frames = std::mem::take(&mut self.frames);
        for &f in &frames {
            let l2 = &mut self.l2;
            let reply = &mut self.reply;
            let verdict = self
                .port
                .read(f, |b| l2.ingress(b, reply, now_ms))
                .unwrap_or(Ingress::Consumed);
            match verdict {
                Ingress::Ip { len, parsed } => {
                    let mut admit = true;
                    if parsed.key.proto == Proto::Tcp {
                        if let L4::Tcp {
                            flags_syn: true,
                            flags_ack: false,
                            ..
                        } = parsed.l4
                        {
                            admit = self.admit_syn(parsed.key.dport);
                        }
                    }
                    if admit {
                        self.counters.ip_packets += 1;
                        let rx = RxPacket {
                            frame: f,
                            offset: ETH_HDR,
                            len,
                        };
                        self.iface.poll_ingress_single(
                            now,
                            &mut self.port.device(Some(rx)),
                            &mut self.sockets,
                        );
                        self.dirty = true;
                    }
                }
                Ingress::Reply { len } => {
                    let reply = &self.reply[..len];
                    self.port.send_frame(len, |b| b.copy_from_slice(reply));
                }
                Ingress::Consumed | Ingress::Drop(_) => {}
            }
            self.port.release(f);
        }
        self.frames = frames;
        if n > 0 {
            self.update_listeners();
        }
        n
    }

    /// A SYN for `port`: make sure a listening socket waits for it, unless the
    /// accept queue is full (then the SYN is dropped and counted, as Linux
    /// does; the client retries).
    fn admit_syn(&mut self, port: u16) -> bool {
        let Some(l) = self.listeners.iter_mut().find(|l| l.port == port) else {
            return true; // no listener: smoltcp answers with RST
        };
        // The listening socket may have taken a SYN earlier in this batch.
        refresh_listener(l, &mut self.sockets, &self.cfg);
        if l.listening.is_some() {
            return true;
        }
        l.syn_dropped += 1;
        self.counters.syn_backlog_full += 1;
        false
    }

    /// Listening sockets that took a SYN join the accept queue; a fresh one
    /// takes their place while the queue has room.
    fn update_listeners(&mut self) {
        for l in &mut self.listeners {
            let before = l.pending.len();
            // Drop queued connections the peer reset before accept.
            let sockets = &mut self.sockets;
            l.pending.retain(|&h| {
                let keep = sockets.get::<tcp::Socket>(h).state() != tcp::State::Closed;
                if !keep {
                    sockets.remove(h);
                }
                keep
            });
            self.counters.pending_lost += (before - l.pending.len()) as u64;
            refresh_listener(l, &mut self.sockets, &self.cfg);
        }
    }

    /// Send what the sockets have queued and finish the frames (link-layer
    /// headers, tx ring, kick).
    pub fn egress(&mut self) {
        let now = self.now();
        let now_ms = now.total_millis() as u64;
        for _ in 0..64 {
            let r = self
                .iface
                .poll_egress(now, &mut self.port.device(None), &mut self.sockets);
            if r == smoltcp::iface::PollResult::None {
                break;
            }
        }
        let l2 = &mut self.l2;
        self.port
            .flush(|frame, ip_len| match l2.egress(frame, ip_len, now_ms) {
                Egress::Send => Some(ETH_HDR + ip_len),
                Egress::Resolve { len } => Some(len),
                Egress::Invalid => None,
            });
        self.reap();
        self.dirty = false;
    }

    /// Release sockets of closed connections. TIME_WAIT is cut short: smoltcp
    /// keeps it 10 s in the set, which a busy `Connection: close` server cannot
    /// afford (every packet scans the set).
    fn reap(&mut self) {
        let sockets = &mut self.sockets;
        let counters = &mut self.counters;
        self.conns.retain(|c| {
            if !c.closing {
                return true;
            }
            let state = sockets.get::<tcp::Socket>(c.handle).state();
            match state {
                tcp::State::Closed => {
                    sockets.remove(c.handle);
                    counters.closed += 1;
                    false
                }
                tcp::State::TimeWait => {
                    sockets.remove(c.handle);
                    counters.closed += 1;
                    counters.time_wait_reaped += 1;
                    false
                }
                _ => true,
            }
        });
    }

    /// How long the engine may sleep before smoltcp has timers to run.
    pub fn poll_delay(&mut self) -> Option<std::time::Duration> {
        let now = self.now();
        self.iface
            .poll_delay(now, &self.sockets)
            .map(|d: SDuration| std::time::Duration::from_micros(d.total_micros()))
    }

    /// Sleep in poll() on the XSK for at most `timeout`.
    pub fn wait(&mut self, timeout: std::time::Duration) {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let _ = self.port.wait(ms);
    }

    /// Whether state changed since the last egress (sockets want a pass).
    pub fn dirty(&self) -> bool {
        self.dirty
    }

    // ---- socket API ----

    /// Listen on TCP `port` with an accept queue of `backlog` connections.
    pub fn tcp_listen(&mut self, port: u16, backlog: usize) -> Result<ListenerId, BindError> {
        if port == 0 {
            return Err(BindError::PortZero);
        }
        if backlog == 0 {
            return Err(BindError::ZeroBacklog);
        }
        if self.listeners.iter().any(|l| l.port == port) {
            return Err(BindError::AddrInUse { proto: "tcp", port });
        }
        let h = new_listen_socket(&mut self.sockets, &self.cfg, port);
        self.listeners.push(Listener {
            port,
            backlog,
            listening: Some(h),
            pending: VecDeque::new(),
            accepted: 0,
            syn_dropped: 0,
        });
        Ok(ListenerId(self.listeners.len() - 1))
    }

    /// Take an established connection off the listener's accept queue.
    pub fn accept(&mut self, id: ListenerId) -> Option<ConnId> {
        let l = self.listeners.get_mut(id.0)?;
        let sockets = &self.sockets;
        let pos = l.pending.iter().position(|&h| {
            let s = sockets.get::<tcp::Socket>(h);
            !matches!(
                s.state(),
                tcp::State::Listen | tcp::State::SynReceived | tcp::State::SynSent
            )
        })?;
        let h = l.pending.remove(pos)?;
        l.accepted += 1;
        self.counters.accepted += 1;
        self.conns.push(Conn {
            handle: h,
            closing: false,
        });
        refresh_listener(l, &mut self.sockets, &self.cfg);
        Some(ConnId(h))
    }

    /// Connections accepted and SYNs dropped on a listener.
    pub fn listener_counts(&self, id: ListenerId) -> Option<(u64, u64, usize)> {
        self.listeners
            .get(id.0)
            .map(|l| (l.accepted, l.syn_dropped, l.pending.len()))
    }

    fn conn(&mut self, c: ConnId) -> Result<&mut tcp::Socket<'static>, ConnError> {
        if !self.conns.iter().any(|x| x.handle == c.0) {
            return Err(ConnError::NotFound);
        }
        Ok(self.sockets.get_mut::<tcp::Socket>(c.0))
    }

    /// Read into `buf`. `Ok(0)` means nothing to read now; `Err(Closed)` means
    /// the peer finished sending and everything was read.
    pub fn recv(&mut self, c: ConnId, buf: &mut [u8]) -> Result<usize, ConnError> {
        let s = self.conn(c)?;
        if s.can_recv() {
            let n = s.recv_slice(buf).map_err(|_| ConnError::Closed)?;
            self.dirty = true;
            return Ok(n);
        }
        if s.may_recv() {
            Ok(0)
        } else {
            Err(ConnError::Closed)
        }
    }

    /// Queue `data`; returns how much fit in the send buffer.
    pub fn send(&mut self, c: ConnId, data: &[u8]) -> Result<usize, ConnError> {
        let s = self.conn(c)?;
        if !s.may_send() {
            return Err(ConnError::Closed);
        }
        let n = s.send_slice(data).map_err(|_| ConnError::Closed)?;
        self.dirty = true;
        Ok(n)
    }

    /// Bytes queued and not yet acknowledged.
    pub fn send_queue(&mut self, c: ConnId) -> Result<usize, ConnError> {
        Ok(self.conn(c)?.send_queue())
    }

    /// Whether the peer may still send (not FIN'd).
    pub fn may_recv(&mut self, c: ConnId) -> Result<bool, ConnError> {
        Ok(self.conn(c)?.may_recv())
    }

    /// The peer's address.
    pub fn peer(&mut self, c: ConnId) -> Result<Option<IpEndpoint>, ConnError> {
        Ok(self.conn(c)?.remote_endpoint())
    }

    /// Send FIN after queued data; the socket is released once closed.
    pub fn close(&mut self, c: ConnId) {
        if let Some(x) = self.conns.iter_mut().find(|x| x.handle == c.0) {
            x.closing = true;
            self.sockets.get_mut::<tcp::Socket>(c.0).close();
            self.dirty = true;
        }
    }

    /// Reset the connection and release it.
    pub fn abort(&mut self, c: ConnId) {
        if let Some(x) = self.conns.iter_mut().find(|x| x.handle == c.0) {
            x.closing = true;
            self.sockets.get_mut::<tcp::Socket>(c.0).abort();
            self.dirty = true;
        }
    }

    /// Bind UDP `port`.
    pub fn udp_bind(&mut self, port: u16) -> Result<UdpId, BindError> {
        if port == 0 {
            return Err(BindError::PortZero);
        }
        if self.udp.iter().any(|(p, _)| *p == port) {
            return Err(BindError::AddrInUse { proto: "udp", port });
        }
        let mk = |n| {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; self.cfg.udp_slots],
                vec![0u8; n],
            )
        };
        let mut s = udp::Socket::new(mk(self.cfg.udp_buf), mk(self.cfg.udp_buf));
        s.bind(IpListenEndpoint { addr: None, port })
            .map_err(|_| BindError::AddrInUse { proto: "udp", port })?;
        let h = self.sockets.add(s);
        self.udp.push((port, h));
        Ok(UdpId(h))
    }

    /// Receive one datagram: its length and sender.
    pub fn udp_recv(
        &mut self,
        id: UdpId,
        buf: &mut [u8],
    ) -> Result<Option<(usize, IpEndpoint)>, UdpError> {
        if !self.udp.iter().any(|(_, h)| *h == id.0) {
            return Err(UdpError::NotFound);
        }
        let s = self.sockets.get_mut::<udp::Socket>(id.0);
        match s.recv_slice(buf) {
            Ok((n, meta)) => {
                self.counters.udp_rx += 1;
                Ok(Some((n, meta.endpoint)))
            }
            Err(udp::RecvError::Exhausted) => Ok(None),
            Err(udp::RecvError::Truncated) => Err(UdpError::TooLarge),
        }
    }

    /// Send one datagram to `to`.
    pub fn udp_send(&mut self, id: UdpId, data: &[u8], to: IpEndpoint) -> Result<(), UdpError> {
        if !self.udp.iter().any(|(_, h)| *h == id.0) {
            return Err(UdpError::NotFound);
        }
        let s = self.sockets.get_mut::<udp::Socket>(id.0);
        match s.send_slice(data, to) {
            Ok(()) => {
                self.counters.udp_tx += 1;
                self.dirty = true;
                Ok(())
            }
            Err(udp::SendError::BufferFull) => {
                self.counters.udp_tx_full += 1;
                Err(UdpError::BufferFull)
            }
            Err(_) => Err(UdpError::TooLarge),
        }
    }

    /// Everything counted so far.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            engine: self.counters.clone(),
            l2: self.l2.counters().clone(),
            port: self.port.stats(),
            sockets: self.sockets.iter().count(),
        }
    }

    /// Prove the frame accounting of the port.
    pub fn check_frames(&self) -> Result<(), nic::LedgerError> {
        self.port.check()
    }

    /// Abort every connection (shutdown).
    pub fn abort_all(&mut self) {
        let handles: Vec<SocketHandle> = self.conns.iter().map(|c| c.handle).collect();
        for h in handles {
            self.abort(ConnId(h));
        }
    }
}

/// A listening socket that took a SYN joins the accept queue; a fresh one
/// takes its place while the queue has room.
fn refresh_listener(l: &mut Listener, sockets: &mut SocketSet<'static>, cfg: &EngineConfig) {
    if let Some(h) = l.listening {
        if sockets.get::<tcp::Socket>(h).state() != tcp::State::Listen {
            l.pending.push_back(h);
            l.listening = None;
        }
    }
    if l.listening.is_none() && l.pending.len() < l.backlog {
        l.listening = Some(new_listen_socket(sockets, cfg, l.port));
    }
}

fn rings_reserve<R: Rings>(rings: &R) -> u32 {
    use nic::FrameMem;
    // Keep a quarter of the frames for transmission.
    rings.mem().frame_count() / 4
}

fn new_listen_socket(
    sockets: &mut SocketSet<'static>,
    cfg: &EngineConfig,
    port: u16,
) -> SocketHandle {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; cfg.tcp_rx_buf]),
        tcp::SocketBuffer::new(vec![0u8; cfg.tcp_tx_buf]),
    );
    s.set_nagle_enabled(false);
    // Port-only listen endpoint: accepts any of our addresses, v4 and v6.
    let _ = s.listen(IpListenEndpoint { addr: None, port });
    sockets.add(s)
}

/// `IpAddress` to std.
pub fn to_std(a: IpAddress) -> IpAddr {
    match a {
        IpAddress::Ipv4(v) => IpAddr::V4(v),
        IpAddress::Ipv6(v) => IpAddr::V6(v),
    }
}
