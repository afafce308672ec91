//! A real AF_XDP socket over xsk-rs: one XSK per (interface, queue) with its
//! own UMEM.

use std::error::Error as _;
use std::ffi::CString;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use crate::error::NicError;
use crate::ring::{Frame, FrameMem, KernelStats, Rings};

type LibbpfPrintFn = unsafe extern "C" fn(
    level: libc::c_int,
    fmt: *const libc::c_char,
    args: *mut libc::c_void,
) -> libc::c_int;

extern "C" {
    /// libbpf's `libbpf_set_print` (not in libxdp-sys's bindings, but linked
    /// in with the libbpf it builds). Only ever called with `None`.
    fn libbpf_set_print(f: Option<LibbpfPrintFn>) -> Option<LibbpfPrintFn>;
}

/// How to attach the XDP program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) mode if the driver supports it, else generic.
    #[default]
    Auto,
    /// Driver mode only.
    Native,
    /// Generic (SKB) mode only.
    Generic,
}

/// The attach mode the kernel reports once the program is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// XDP runs in the driver.
    Native,
    /// XDP runs on the SKB path.
    Generic,
    /// XDP is offloaded to the NIC.
    Offload,
    /// Several programs in different modes.
    Multi,
    /// No program attached (should not happen while a socket is open).
    None,
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
            AttachMode::Offload => "offload",
            AttachMode::Multi => "multi",
            AttachMode::None => "none",
        })
    }
}

/// Zero-copy on the command line: `auto` takes it when the driver has it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Let the kernel choose (zero-copy if the driver supports it).
    #[default]
    Auto,
    /// Refuse to start without zero-copy (`XDP_ZEROCOPY`).
    On,
    /// Copy mode always (`XDP_COPY`).
    Off,
}

/// Busy polling of the socket's NAPI context (`SO_PREFER_BUSY_POLL`,
/// `SO_BUSY_POLL`, `SO_BUSY_POLL_BUDGET`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusyPoll {
    /// Microseconds to busy-poll in a blocking call.
    pub usecs: u32,
    /// Packets per busy-poll round.
    pub budget: u32,
}

/// Sizes and flags of one XSK.
#[derive(Clone, Debug)]
pub struct XskConfig {
    /// Frames in the UMEM.
    pub frames: u32,
    /// Bytes per frame (2048 or 4096).
    pub frame_size: u32,
    /// Fill ring entries (power of two).
    pub fill_size: u32,
    /// Completion ring entries (power of two).
    pub comp_size: u32,
    /// Rx ring entries (power of two).
    pub rx_size: u32,
    /// Tx ring entries (power of two).
    pub tx_size: u32,
    /// Zero-copy policy.
    pub zero_copy: ZeroCopy,
    /// Bind with `XDP_USE_NEED_WAKEUP` (kick only when the ring asks).
    pub need_wakeup: bool,
    /// Busy polling (None: off).
    pub busy_poll: Option<BusyPoll>,
    /// 802.1Q tag pushed on every transmitted frame (the XDP program pops
    /// it on receive).
    pub vlan: Option<u16>,
    /// Copy every received and sent frame here (pcap).
    pub tap: Option<std::sync::Arc<crate::pcap::PcapTap>>,
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            frames: 4096,
            frame_size: 2048,
            fill_size: 2048,
            comp_size: 2048,
            rx_size: 2048,
            tx_size: 2048,
            zero_copy: ZeroCopy::Auto,
            need_wakeup: true,
            busy_poll: None,
            vlan: None,
            tap: None,
        }
    }
}

/// What the kernel gave us.
#[derive(Clone, Debug)]
pub struct XskInfo {
    /// Interface name.
    pub ifname: String,
    /// Interface index.
    pub ifindex: u32,
    /// Queue bound.
    pub queue: u32,
    /// Attach mode in use.
    pub mode: AttachMode,
    /// Zero-copy in use.
    pub zero_copy: bool,
}

/// The UMEM of one XSK as seen by the port.
pub struct XskMem {
    umem: Umem,
    canon: Vec<FrameDesc>,
    frame_size: u32,
    capacity: usize,
}

// SAFETY: every access goes through xsk-rs's `Umem::data`/`data_mut` with a
// copy of the canonical descriptor of frame `addr / frame_size`, whose data
// segment xsk-rs bounds to that frame; `len` is clamped to the frame's data
// capacity, so slices of different frames never alias.
unsafe impl FrameMem for XskMem {
    fn frame_count(&self) -> u32 {
        self.canon.len() as u32
    }
    fn frame_size(&self) -> u32 {
        self.frame_size
    }
    fn data_addr(&self, index: u32) -> u64 {
        self.canon
            .get(index as usize)
            .map_or(u64::MAX, |d| d.addr() as u64)
    }
    fn data_capacity(&self) -> usize {
        self.capacity
    }

    unsafe fn with_frame<T>(&self, addr: u64, len: usize, f: impl FnOnce(&[u8]) -> T) -> T {
        let index = (addr / u64::from(self.frame_size)) as usize;
        let Some(mut d) = self.canon.get(index).copied() else {
            return f(&[]);
        };
        let len = len.min(self.capacity);
        // SAFETY: the caller owns the frame (ledger place Rx or TxBuild), so
        // neither the kernel nor another slice touches it; `d` is this UMEM's
        // descriptor for that frame. The mutable view only sets the length.
        unsafe { self.umem.data_mut(&mut d) }.cursor().set_pos(len);
        // SAFETY: as above; the shared view lives only for the call.
        let data = unsafe { self.umem.data(&d) };
        f(data.contents())
    }

    unsafe fn with_frame_mut<T>(&self, addr: u64, len: usize, f: impl FnOnce(&mut [u8]) -> T) -> T {
        let index = (addr / u64::from(self.frame_size)) as usize;
        let Some(mut d) = self.canon.get(index).copied() else {
            return f(&mut []);
        };
        let len = len.min(self.capacity);
        // SAFETY: the caller owns the frame exclusively for the call (ledger
        // place Rx or TxBuild); `d` is this UMEM's descriptor for it.
        let mut data = unsafe { self.umem.data_mut(&mut d) };
        data.cursor().set_pos(len);
        f(data.contents_mut())
    }
}

/// The rings of one XSK.
pub struct XskRings {
    mem: XskMem,
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
    descs: Vec<FrameDesc>,
    fill_size: u32,
    rx_size: u32,
    info: XskInfo,
    vlan: Option<u16>,
    tap: Option<std::sync::Arc<crate::pcap::PcapTap>>,
}

/// Index of `ifname` in this network namespace.
pub fn ifindex(ifname: &str) -> Result<u32, NicError> {
    let path = format!("/sys/class/net/{ifname}/ifindex");
    std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| NicError::NoSuchInterface(ifname.to_string()))
}

/// Number of rx queues of an interface (from sysfs).
pub fn rx_queue_count(ifname: &str) -> Result<u32, NicError> {
    let dir = format!("/sys/class/net/{ifname}/queues");
    let entries =
        std::fs::read_dir(&dir).map_err(|_| NicError::NoSuchInterface(ifname.to_string()))?;
    Ok(entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count() as u32)
}

/// Silence libbpf's and libxdp's informational prints unless
/// `XDPSTACK_LIBXDP_DEBUG` is set.
pub fn quiet_libbpf() {
    if std::env::var_os("XDPSTACK_LIBXDP_DEBUG").is_none() {
        // SAFETY: passing no callback is documented to silence libxdp's
        // (and the libbpf it embeds) informational prints; no pointer is
        // kept.
        unsafe { libxdp_sys::libxdp_set_print(None) };
        // SAFETY: as above, for the libbpf linked into libxdp-sys.
        unsafe { libbpf_set_print(None) };
    }
}

fn pow2(what: &'static str, v: u32) -> Result<QueueSize, NicError> {
    QueueSize::new(v)
        .map_err(|_| NicError::Config(format!("{what} must be a power of two, got {v}")))
}

impl XskRings {
    /// Open an XSK on `ifname` queue `queue`.
    pub fn open(ifname: &str, queue: u32, cfg: &XskConfig) -> Result<XskRings, NicError> {
        let ifindex = ifindex(ifname)?;
        let queues = rx_queue_count(ifname)?;
        if queue >= queues {
            return Err(NicError::QueueOutOfRange {
                ifname: ifname.to_string(),
                queue,
                queues,
            });
        }
        quiet_libbpf();
        let frame_size = FrameSize::new(cfg.frame_size)
            .map_err(|_| NicError::Config(format!("bad frame size {}", cfg.frame_size)))?;
        let umem_cfg = UmemConfig::builder()
            .frame_size(frame_size)
            .fill_queue_size(pow2("fill ring size", cfg.fill_size)?)
            .comp_queue_size(pow2("completion ring size", cfg.comp_size)?)
            .build()
            .map_err(|e| NicError::Config(e.to_string()))?;
        let frames = NonZeroU32::new(cfg.frames)
            .ok_or_else(|| NicError::Config("UMEM needs at least one frame".into()))?;
        let (umem, canon) = Umem::new(umem_cfg, frames, false).map_err(|e| {
            let errno = e.source().and_then(|s| {
                s.downcast_ref::<io::Error>()
                    .and_then(io::Error::raw_os_error)
            });
            match errno {
                // Registering a UMEM opens an AF_XDP socket: the first thing
                // an unprivileged caller is refused.
                Some(libc::EPERM) | Some(libc::EACCES) => NicError::NotPermitted {
                    ifname: ifname.to_string(),
                },
                _ => NicError::Umem {
                    frames: cfg.frames,
                    frame_size: cfg.frame_size,
                    detail: format!(
                        "{e}: {}",
                        e.source().map(|s| s.to_string()).unwrap_or_default()
                    ),
                },
            }
        })?;
        let capacity = cfg.frame_size as usize
            - (canon.first().map_or(0, |d| d.addr()) % cfg.frame_size as usize);

        let mut bind = BindFlags::empty();
        if cfg.need_wakeup {
            bind |= BindFlags::XDP_USE_NEED_WAKEUP;
        }
        match cfg.zero_copy {
            ZeroCopy::Auto => {}
            ZeroCopy::On => bind |= BindFlags::XDP_ZEROCOPY,
            ZeroCopy::Off => bind |= BindFlags::XDP_COPY,
        }
        let require_zero_copy = cfg.zero_copy == ZeroCopy::On;
        // libxdp loads no program: the stack's own (crate::steer) is
        // attached by the caller, which puts this socket in its XSKMAP.
        let sock_cfg = SocketConfig::builder()
            .rx_queue_size(pow2("rx ring size", cfg.rx_size)?)
            .tx_queue_size(pow2("tx ring size", cfg.tx_size)?)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(bind)
            .build();
        let name = CString::new(ifname).map_err(|_| NicError::NoSuchInterface(ifname.into()))?;
        // SAFETY: the UMEM is not shared with another socket (and
        // INHIBIT_PROG_LOAD is set anyway).
        let created = unsafe { Socket::new(sock_cfg, &umem, &Interface::new(name), queue) };
        let (tx, rx, rings) = created.map_err(|e| {
            let errno = e.source().and_then(|s| {
                s.downcast_ref::<io::Error>()
                    .and_then(io::Error::raw_os_error)
            });
            NicError::from_socket_errno(ifname, queue, errno, e.to_string(), require_zero_copy)
        })?;
        let (fq, cq) = rings.ok_or_else(|| NicError::Socket {
            ifname: ifname.to_string(),
            queue,
            detail: "libxdp returned no fill/completion rings".into(),
        })?;

        let zero_copy = zero_copy(rx.fd().as_raw_fd());
        let mode = attach_mode(ifindex);
        let info = XskInfo {
            ifname: ifname.to_string(),
            ifindex,
            queue,
            mode,
            zero_copy,
        };
        let batch = cfg
            .rx_size
            .max(cfg.tx_size)
            .max(cfg.comp_size)
            .max(cfg.fill_size) as usize;
        Ok(XskRings {
            mem: XskMem {
                umem,
                canon,
                frame_size: cfg.frame_size,
                capacity,
            },
            tx,
            rx,
            fq,
            cq,
            descs: vec![FrameDesc::default(); batch],
            fill_size: cfg.fill_size,
            rx_size: cfg.rx_size,
            info,
            vlan: cfg.vlan,
            tap: cfg.tap.clone(),
        })
        .and_then(|r| {
            if let Some(bp) = cfg.busy_poll {
                r.set_busy_poll(bp).map_err(|e| {
                    NicError::Config(format!(
                        "cannot set busy polling ({} us, budget {}) on {ifname} queue {queue}: {e}",
                        bp.usecs, bp.budget
                    ))
                })?;
            }
            Ok(r)
        })
    }

    /// The socket's descriptor (for the XDP program's XSKMAP).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the descriptor is owned by `self.rx` and stays open for
        // as long as the borrow of `self` this result is tied to.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.rx.fd().as_raw_fd()) }
    }

    fn setsockopt_u32(&self, level: libc::c_int, name: libc::c_int, v: u32) -> io::Result<()> {
        let fd = self.rx.fd().as_raw_fd();
        // SAFETY: `fd` is this socket's open descriptor (owned by `self`);
        // `v` is valid for reads of `size_of::<u32>()` bytes for the whole
        // call and the kernel only reads it.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&v as *const u32).cast(),
                std::mem::size_of::<u32>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Busy-poll the queue's NAPI context from this socket.
    pub fn set_busy_poll(&self, bp: BusyPoll) -> io::Result<()> {
        // From asm-generic/socket.h (not all in the libc crate).
        const SO_PREFER_BUSY_POLL: libc::c_int = 69;
        const SO_BUSY_POLL_BUDGET: libc::c_int = 70;
        self.setsockopt_u32(libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, 1)?;
        self.setsockopt_u32(libc::SOL_SOCKET, libc::SO_BUSY_POLL, bp.usecs)?;
        self.setsockopt_u32(libc::SOL_SOCKET, SO_BUSY_POLL_BUDGET, bp.budget)
    }

    /// What the kernel gave us: attach mode, zero-copy.
    pub fn info(&self) -> &XskInfo {
        &self.info
    }

    /// Let the kernel send up to `frames` frames per kick in copy mode
    /// (`XDP_MAX_TX_SKB_BUDGET`, Linux 6.17+; the default is 32). It must
    /// be between 32 and half the tx ring. Fewer kicks per frame for
    /// senders that keep the tx ring full (packet generators, reflectors).
    pub fn set_tx_budget(&mut self, frames: u32) -> io::Result<()> {
        /// From linux/if_xdp.h (not in libxdp-sys's bindings yet).
        const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
        self.setsockopt_u32(libc::SOL_XDP, XDP_MAX_TX_SKB_BUDGET, frames)
    }
}

/// Insert an 802.1Q tag with VLAN id `vid` after the MAC addresses of the
/// `len`-byte frame at the start of `b` (which has room for 4 more bytes).
pub fn push_vlan(b: &mut [u8], len: usize, vid: u16) {
    if b.len() < len + 4 || len < 12 {
        return;
    }
    b.copy_within(12..len, 16);
    b[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
    b[14..16].copy_from_slice(&(vid & 0x0fff).to_be_bytes());
}

/// `getsockopt(XDP_OPTIONS)`: is the socket in zero-copy mode?
fn zero_copy(fd: RawFd) -> bool {
    let mut opts = libxdp_sys::xdp_options { flags: 0 };
    let mut len = std::mem::size_of::<libxdp_sys::xdp_options>() as libc::socklen_t;
    // SAFETY: `opts` and `len` are valid for writes and `len` is the size of
    // `opts`; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libxdp_sys::XDP_OPTIONS as libc::c_int,
            (&mut opts as *mut libxdp_sys::xdp_options).cast(),
            &mut len,
        )
    };
    rc == 0 && opts.flags & libxdp_sys::XDP_OPTIONS_ZEROCOPY != 0
}

/// Attach mode of the XDP program on `ifindex`, from the kernel.
pub fn attach_mode(ifindex: u32) -> AttachMode {
    // SAFETY: `bpf_xdp_query_opts` is a plain C struct for which all-zero is
    // a valid value.
    let mut opts: libxdp_sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libxdp_sys::bpf_xdp_query_opts>();
    // SAFETY: `opts` is valid for writes and its `sz` field says how large it is.
    let rc = unsafe { libxdp_sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
    if rc != 0 {
        return AttachMode::None;
    }
    // enum xdp_attach_mode values from linux/if_link.h (XDP_ATTACHED_*).
    match opts.attach_mode {
        1 => AttachMode::Native,
        2 => AttachMode::Generic,
        3 => AttachMode::Offload,
        4 => AttachMode::Multi,
        _ => AttachMode::None,
    }
}

/// Is any XDP program attached to `ifname`? (For leak checks.)
pub fn xdp_attached(ifname: &str) -> Result<bool, NicError> {
    Ok(attach_mode(ifindex(ifname)?) != AttachMode::None)
}

impl Rings for XskRings {
    type Mem = XskMem;

    fn mem(&self) -> &XskMem {
        &self.mem
    }

    fn fill(&mut self, addrs: &[u64]) -> usize {
        let n = addrs.len().min(self.descs.len());
        for (d, a) in self.descs.iter_mut().zip(addrs) {
            let index = (*a / u64::from(self.mem.frame_size)) as usize;
            if let Some(c) = self.mem.canon.get(index) {
                *d = *c;
            }
        }
        // SAFETY: the port moved these frames Free -> Fill in its ledger, so
        // nothing else uses them until they come back on the rx ring.
        unsafe { self.fq.produce(&self.descs[..n]) }
    }

    fn fill_space(&mut self) -> usize {
        self.fq.nb_free(self.fill_size) as usize
    }

    fn recv(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        let max = max.min(self.descs.len());
        // SAFETY: the descriptors are only read back as addresses and
        // lengths; the frames they name are owned by the port from now on.
        let n = unsafe { self.rx.consume(&mut self.descs[..max]) };
        if let Some(tap) = &self.tap {
            for d in &self.descs[..n] {
                // SAFETY: the frame came off the rx ring, so the port owns
                // it (ledger Rx) and nothing writes it during the copy.
                unsafe {
                    self.mem
                        .with_frame(d.addr() as u64, d.lengths().data(), |b| tap.record(b))
                };
            }
        }
        out.extend(self.descs[..n].iter().map(|d| Frame {
            addr: d.addr() as u64,
            len: d.lengths().data() as u32,
        }));
        n
    }

    fn send(&mut self, frames: &[Frame]) -> usize {
        let want = frames.len().min(self.descs.len()) as u32;
        let n = (self.tx.nb_free(want) as usize).min(frames.len());
        if n == 0 {
            return 0;
        }
        for (d, f) in self.descs.iter_mut().zip(&frames[..n]) {
            let index = (f.addr / u64::from(self.mem.frame_size)) as usize;
            if let Some(c) = self.mem.canon.get(index) {
                *d = *c;
            }
            let mut len = f.len as usize;
            if let Some(vid) = self.vlan {
                if len >= 14 && len + 4 <= self.mem.capacity {
                    // SAFETY: the port owns the frame (ledger TxBuild) until
                    // this call hands it to the kernel.
                    unsafe {
                        self.mem
                            .with_frame_mut(f.addr, len + 4, |b| push_vlan(b, len, vid))
                    };
                    len += 4;
                }
            }
            if let Some(tap) = &self.tap {
                // SAFETY: as above; read only.
                unsafe { self.mem.with_frame(f.addr, len, |b| tap.record(b)) };
            }
            // SAFETY: the port owns the frame (ledger TxBuild) until this call
            // hands it to the kernel; only the descriptor's length is set.
            unsafe { self.mem.umem.data_mut(d) }.cursor().set_pos(len);
        }
        // SAFETY: the frames were built by the port and are moved TxBuild ->
        // Tx in its ledger for exactly the count returned.
        unsafe { self.tx.produce(&self.descs[..n]) }
    }

    fn complete(&mut self, out: &mut Vec<u64>, max: usize) -> usize {
        let max = max.min(self.descs.len());
        // SAFETY: completed descriptors are only read back as addresses; the
        // port moves their frames Tx -> Free.
        let n = unsafe { self.cq.consume(&mut self.descs[..max]) };
        out.extend(self.descs[..n].iter().map(|d| d.addr() as u64));
        n
    }

    fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }

    fn wake_tx(&mut self) -> io::Result<()> {
        self.tx.wakeup()
    }

    fn fill_needs_wakeup(&self) -> bool {
        self.fq.needs_wakeup()
    }

    fn wake_fill(&mut self) -> io::Result<()> {
        self.fq.wakeup(self.rx.fd_mut(), 0)
    }

    fn wait(&mut self, timeout_ms: i32) -> io::Result<()> {
        self.rx.poll(timeout_ms).map(|_| ())
    }

    fn wait_with(&mut self, extra: std::os::fd::BorrowedFd<'_>, timeout_ms: i32) -> io::Result<()> {
        use std::os::fd::AsRawFd as _;
        let mut fds = [
            libc::pollfd {
                fd: self.rx.fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: extra.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd structs for the whole
        // call, and both descriptors are open: the XSK is owned by `self` and
        // `extra` is borrowed for the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.rx.fd().as_raw_fd())
    }

    fn rx_backlog(&mut self) -> Option<(usize, usize)> {
        Some((self.rx.nb_avail_exact() as usize, self.rx_size as usize))
    }

    fn kernel_stats(&self) -> Option<KernelStats> {
        let s = self.rx.fd().xdp_statistics().ok()?;
        Some(KernelStats {
            rx_dropped: s.rx_dropped(),
            rx_invalid_descs: s.rx_invalid_descs(),
            tx_invalid_descs: s.tx_invalid_descs(),
            rx_ring_full: s.rx_ring_full(),
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs(),
            tx_ring_empty: s.tx_ring_empty_descs(),
        })
    }
}
