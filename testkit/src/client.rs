//! The in-memory peer of the stack's tests: a plain smoltcp stack over one
//! end of a `MemRings` pipe, driven by the test on its virtual clock.

use nic::mem::MemRings;
use nic::{Frame, Place, Port, PortConfig, RxPacket};
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint};

/// Receive batches one [`MemClient::step`] takes at most.
const MAX_RX_BATCHES: usize = 1024;
/// Passes of `poll_egress` per step at most (it emits little per pass).
const MAX_EGRESS_PASSES: usize = 256;

/// How the client is built.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `Some(mac)`: Ethernet frames (a peer of the engine, which does its
    /// own L2); `None`: bare IP packets (`Medium::Ip`, a peer of a port).
    pub mac: Option<[u8; 6]>,
    /// The client's addresses.
    pub addrs: Vec<IpCidr>,
    /// smoltcp's random seed (ephemeral ports, ISNs): fixed, so runs repeat.
    pub seed: u64,
    /// Verify checksums of received frames in the port.
    pub verify_rx_checksums: bool,
}

impl ClientConfig {
    /// The engine's peer in the in-memory tests: Ethernet, `CLIENT_MAC`,
    /// `CLIENT_IP4/24`.
    pub fn engine_peer() -> ClientConfig {
        ClientConfig::ethernet(
            crate::CLIENT_MAC,
            IpCidr::new(IpAddress::Ipv4(crate::CLIENT_IP4), 24),
        )
    }

    /// An Ethernet client with one address.
    pub fn ethernet(mac: [u8; 6], addr: IpCidr) -> ClientConfig {
        ClientConfig {
            mac: Some(mac),
            addrs: vec![addr],
            seed: 7,
            verify_rx_checksums: true,
        }
    }

    /// A `Medium::Ip` client with these addresses.
    pub fn ip(addrs: &[IpCidr]) -> ClientConfig {
        ClientConfig {
            mac: None,
            addrs: addrs.to_vec(),
            seed: 7,
            verify_rx_checksums: true,
        }
    }
}

/// A smoltcp interface and its sockets over a `Port<MemRings>`.
pub struct MemClient {
    /// Its end of the in-memory pipe (headroom 0: frames are what smoltcp wrote).
    pub port: Port<MemRings>,
    /// The smoltcp interface, with the configured addresses.
    pub iface: Interface,
    /// The sockets the test added; [`MemClient::step`] polls them all.
    pub sockets: SocketSet<'static>,
    /// Let the interface transmit after every received frame, not once a
    /// step: ACKs leave as a kernel's would (every other segment), not one
    /// per step for everything that arrived in it (with byte counting
    /// limited to 2 MSS per ACK, a sender's slow start would then grow by
    /// 2 MSS a step instead of doubling every round trip). Off by default.
    pub ack_each: bool,
    frames: Vec<Frame>,
}

impl MemClient {
    /// A client on `rings` as `cfg` says, with no sockets, its clock at 0 ms.
    pub fn new(rings: MemRings, cfg: &ClientConfig) -> MemClient {
        let pcfg = PortConfig {
            l2_headroom: 0,
            ethernet: cfg.mac.is_some(),
            verify_rx_checksums: cfg.verify_rx_checksums,
            ..PortConfig::default()
        };
        let mut port = Port::new(rings, pcfg);
        let hw = match cfg.mac {
            Some(mac) => HardwareAddress::Ethernet(EthernetAddress(mac)),
            None => HardwareAddress::Ip,
        };
        let mut c = Config::new(hw);
        c.random_seed = cfg.seed;
        let mut iface = Interface::new(c, &mut port.device(None), Instant::from_millis(0));
        iface.update_ip_addrs(|a| {
            for addr in &cfg.addrs {
                a.push(*addr).expect("few enough addresses");
            }
        });
        MemClient {
            port,
            iface,
            sockets: SocketSet::new(Vec::new()),
            ack_each: false,
            frames: Vec::new(),
        }
    }

    /// Feeds every received frame to the interface one at a time (the
    /// replies built meanwhile, ACKs, leave with each batch), then lets it
    /// transmit, then puts everything on the tx ring.
    pub fn step(&mut self, now: Instant) {
        for _ in 0..MAX_RX_BATCHES {
            if self.port.recv(&mut self.frames) == 0 {
                break;
            }
            for f in std::mem::take(&mut self.frames) {
                let rx = RxPacket {
                    frame: f,
                    offset: 0,
                    len: f.len as usize,
                };
                self.iface.poll_ingress_single(
                    now,
                    &mut self.port.device(Some(rx)),
                    &mut self.sockets,
                );
                self.port.release(f);
                if self.ack_each {
                    for _ in 0..4 {
                        let r = self.iface.poll_egress(
                            now,
                            &mut self.port.device(None),
                            &mut self.sockets,
                        );
                        if r == PollResult::None {
                            break;
                        }
                    }
                }
            }
            self.port.flush(|_, len| Some(len));
        }
        for _ in 0..MAX_EGRESS_PASSES {
            let r = self
                .iface
                .poll_egress(now, &mut self.port.device(None), &mut self.sockets);
            if r == PollResult::None {
                break;
            }
        }
        // Headroom 0: the frame is what smoltcp wrote.
        self.port.flush(|_, len| Some(len));
    }

    /// Accounting is exact, and between steps the port holds no frame.
    pub fn check(&self, name: &str) {
        if let Err(e) = self.port.check() {
            panic!("port {name}: {e}");
        }
        let f = self.port.stats().frames;
        assert_eq!(
            f[Place::Rx as usize] + f[Place::TxBuild as usize] + f[Place::Tx as usize],
            0,
            "port {name}: frames out between steps: {f:?}"
        );
    }

    /// A TCP socket with `buf` bytes each way.
    pub fn tcp_socket(buf: usize) -> tcp::Socket<'static> {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; buf]),
            tcp::SocketBuffer::new(vec![0; buf]),
        )
    }

    /// A UDP socket with `slots` datagrams of up to `buf` bytes in all, each way.
    pub fn udp_socket(slots: usize, buf: usize) -> udp::Socket<'static> {
        udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; slots], vec![0; buf]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; slots], vec![0; buf]),
        )
    }

    /// Opens a TCP connection (4 KiB buffers) from `local_port` to `remote`.
    pub fn connect(&mut self, local_port: u16, remote: impl Into<IpEndpoint>) -> SocketHandle {
        let mut s = MemClient::tcp_socket(4096);
        s.connect(self.iface.context(), remote.into(), local_port)
            .expect("connect");
        self.sockets.add(s)
    }

    /// Opens a TCP connection with socket `s` (its buffers as the test
    /// wants them) from `local_port` to `remote`.
    pub fn connect_with(
        &mut self,
        mut s: tcp::Socket<'static>,
        local_port: u16,
        remote: impl Into<IpEndpoint>,
    ) -> SocketHandle {
        s.connect(self.iface.context(), remote.into(), local_port)
            .expect("connect");
        self.sockets.add(s)
    }

    /// The TCP socket `h`; panics if `h` is not one (a test bug).
    pub fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    /// The UDP socket `h`; panics if `h` is not one (a test bug).
    pub fn udp(&mut self, h: SocketHandle) -> &mut udp::Socket<'static> {
        self.sockets.get_mut::<udp::Socket>(h)
    }
}
