//! The stack's own XDP program (bpf/steer.bpf.c): steer only the stack's
//! traffic to its AF_XDP sockets, pass everything else to the kernel.
//!
//! Built with clang by libbpf-cargo (nic/build.rs), loaded with libbpf-rs,
//! attached as a bpf_link owned by this process: when the process exits, is
//! killed or crashes, the kernel closes the link's descriptor and the program
//! is detached. Nothing is pinned in bpffs. At attach time the interface is
//! inspected first: a stale program of ours (netlink-attached, from an older
//! run, or libxdp's default AF_XDP program that older versions left behind)
//! is replaced; a program attached through a live link (another running
//! xdpstack) or anyone else's program is refused with its id and name.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use libbpf_rs::query::{LinkInfoIter, LinkTypeInfo, ProgInfoIter};
use libbpf_rs::{libbpf_sys, MapCore, MapFlags, MapHandle, Object, ObjectBuilder};

use crate::error::NicError;
use crate::xsk::{ifindex, AttachMode, XdpMode};

/// The compiled program (clang -target bpf, through libbpf-cargo).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/steer.bpf.o"));

/// The program's name as the kernel reports it (`bpftool prog`, `ip link`).
pub const PROG_NAME: &str = "xdpstack_steer";
/// libxdp's default AF_XDP program, which older xdpstack versions attached
/// through netlink and could leave behind after a crash.
pub const LIBXDP_DEFAULT_PROG: &str = "xsk_def_prog";

/// The name shown for a program whose name could not be read.
pub const UNREADABLE_NAME: &str = "? (reading it needs CAP_SYS_ADMIN)";

/// Counter names, in the order of `enum counter` in steer.bpf.c.
pub const COUNTERS: [&str; 11] = [
    "steered_ip",
    "steered_arp",
    "steered_ndp",
    "steered_all",
    "passed_not_ours",
    "passed_port",
    "passed_other",
    "passed_vlan",
    "passed_no_xsk",
    "passed_truncated",
    "dropped_vlan_pop",
];

/// What the program sends to the sockets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SteerMode {
    /// Every frame (the interface belongs to the process: pktgen, reflect).
    All,
    /// IP to the stack's addresses, ARP/NDP for them; the rest passes.
    #[default]
    Addr,
    /// Only TCP/UDP to the stack's addresses on its listening ports; ARP,
    /// NDP, ICMP and other ports pass (the kernel holds the same address).
    Ports,
}

impl SteerMode {
    fn code(self) -> u32 {
        match self {
            SteerMode::All => 0,
            SteerMode::Addr => 1,
            SteerMode::Ports => 2,
        }
    }

    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SteerMode::All => "all",
            SteerMode::Addr => "addr",
            SteerMode::Ports => "ports",
        }
    }
}

/// Transport of a steered port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L4 {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl L4 {
    fn proto(self) -> u8 {
        match self {
            L4::Tcp => libc::IPPROTO_TCP as u8,
            L4::Udp => libc::IPPROTO_UDP as u8,
        }
    }
}

/// What to steer and how to attach.
#[derive(Clone, Debug, Default)]
pub struct SteerConfig {
    /// Steering mode.
    pub mode: SteerMode,
    /// The stack's IPv4 addresses.
    pub addrs4: Vec<Ipv4Addr>,
    /// The stack's IPv6 addresses.
    pub addrs6: Vec<Ipv6Addr>,
    /// 802.1Q VLAN id of the stack's traffic (None: untagged).
    pub vlan: Option<u16>,
    /// Attach mode.
    pub xdp_mode: XdpMode,
    /// Ports mode: TCP to a port of this range (inclusive) is steered as a
    /// listening port is: the local ports of the stack's outgoing
    /// connections, whose answers would otherwise go to the kernel (which
    /// resets them). Keep it out of the kernel's `ip_local_port_range`.
    pub tcp_ports: Option<(u16, u16)>,
}

/// What was attached.
#[derive(Clone, Debug)]
pub struct SteerInfo {
    /// Interface.
    pub ifname: String,
    /// Its index.
    pub ifindex: u32,
    /// Program id.
    pub prog_id: u32,
    /// bpf_link id.
    pub link_id: u32,
    /// Attach mode the kernel reports.
    pub mode: AttachMode,
    /// A stale program that was replaced: (id, name).
    pub replaced: Option<(u32, String)>,
}

/// Per-CPU counters of an attached program, summed. Cheap to share between
/// threads (one map descriptor).
#[derive(Debug)]
pub struct SteerCounters {
    map: MapHandle,
}

impl SteerCounters {
    /// Open the counters of the program with id `prog_id` (for `status`).
    pub fn of_program(prog_id: u32) -> Result<SteerCounters, NicError> {
        let info = ProgInfoIter::with_query_opts(
            libbpf_rs::query::ProgInfoQueryOptions::default().include_map_ids(true),
        )
        .find(|p| p.id == prog_id)
        .ok_or_else(|| bpf_err("program info", format!("no program with id {prog_id}")))?;
        for id in info.map_ids {
            let Ok(m) = MapHandle::from_map_id(id) else {
                continue;
            };
            if m.name() == "counters" {
                return Ok(SteerCounters { map: m });
            }
        }
        Err(bpf_err(
            "program info",
            format!("program {prog_id} has no counters map"),
        ))
    }

    /// Every counter, summed over the CPUs, in [`COUNTERS`] order.
    pub fn read(&self) -> Result<Vec<(&'static str, u64)>, NicError> {
        let mut out = Vec::with_capacity(COUNTERS.len());
        for (i, name) in COUNTERS.iter().enumerate() {
            let v = self
                .map
                .lookup_percpu(&(i as u32).to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| bpf_err("reading counters", e))?
                .unwrap_or_default();
            let sum = v
                .iter()
                .filter_map(|b| b.get(..8).and_then(|s| s.try_into().ok()))
                .map(u64::from_ne_bytes)
                .sum();
            out.push((*name, sum));
        }
        Ok(out)
    }
}

/// The loaded and attached program. Dropping it detaches the program (the
/// link's descriptor closes), as does the end of the process.
pub struct Steer {
    _obj: Object,
    link: OwnedFd,
    xsks: MapHandle,
    ports: MapHandle,
    counters: std::sync::Arc<SteerCounters>,
    info: SteerInfo,
    _run_stats: Option<OwnedFd>,
}

fn bpf_err(what: &str, e: impl std::fmt::Display) -> NicError {
    NicError::Bpf(format!("{what}: {e}"))
}

/// The XDP program currently attached to an interface.
#[derive(Clone, Debug)]
pub struct Attached {
    /// Program id.
    pub prog_id: u32,
    /// Program name.
    pub name: String,
    /// Attach mode.
    pub mode: AttachMode,
    /// The bpf_link holding it, if attached through one.
    pub link_id: Option<u32>,
}

/// What is attached to `ifname` now (None: nothing).
pub fn attached(ifname: &str) -> Result<Option<Attached>, NicError> {
    let ifindex = ifindex(ifname)?;
    let mode = crate::xsk::attach_mode(ifindex);
    let prog_id = attached_prog_id(ifindex);
    if prog_id == 0 {
        return Ok(None);
    }
    // Reading another program's name and the links needs CAP_SYS_ADMIN
    // (BPF_PROG_GET_NEXT_ID); without it the program stays unnamed, and an
    // unnamed program is never replaced.
    let name = ProgInfoIter::default()
        .find(|p| p.id == prog_id)
        .map(|p| p.name.to_string_lossy().into_owned())
        .unwrap_or_else(|| UNREADABLE_NAME.to_string());
    let link_id = LinkInfoIter::default()
        .find(|l| {
            l.prog_id == prog_id && matches!(&l.info, LinkTypeInfo::Xdp(x) if x.ifindex == ifindex)
        })
        .map(|l| l.id);
    Ok(Some(Attached {
        prog_id,
        name,
        mode,
        link_id,
    }))
}

fn attached_prog_id(ifindex: u32) -> u32 {
    // SAFETY: all-zero is a valid `bpf_xdp_query_opts`; `sz` says its size.
    let mut opts: libbpf_sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libbpf_sys::bpf_xdp_query_opts>() as libbpf_sys::size_t;
    // SAFETY: `opts` is valid for writes for the whole call.
    let rc = unsafe { libbpf_sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
    if rc != 0 {
        return 0;
    }
    [
        opts.prog_id,
        opts.drv_prog_id,
        opts.skb_prog_id,
        opts.hw_prog_id,
    ]
    .into_iter()
    .find(|&id| id != 0)
    .unwrap_or(0)
}

/// Detach a netlink-attached program `prog_id` in `mode` from `ifindex`,
/// only if it is still the one attached.
fn detach_stale(ifindex: u32, prog_id: u32, mode: AttachMode) -> Result<(), NicError> {
    let fd = libbpf_rs::Program::fd_from_id(prog_id).map_err(|e| bpf_err("stale program", e))?;
    let flags = match mode {
        AttachMode::Generic => libbpf_sys::XDP_FLAGS_SKB_MODE,
        AttachMode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
        AttachMode::Offload => libbpf_sys::XDP_FLAGS_HW_MODE,
        _ => 0,
    };
    // SAFETY: all-zero is a valid `bpf_xdp_attach_opts`; `sz` says its size.
    let mut opts: libbpf_sys::bpf_xdp_attach_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libbpf_sys::bpf_xdp_attach_opts>() as libbpf_sys::size_t;
    opts.old_prog_fd = fd.as_raw_fd();
    // SAFETY: `opts` is a valid, sized options struct and `fd` is open for
    // the whole call; XDP_FLAGS_REPLACE makes the kernel detach only if
    // `old_prog_fd` is still the attached program.
    let rc = unsafe {
        libbpf_sys::bpf_xdp_detach(ifindex as i32, flags | libbpf_sys::XDP_FLAGS_REPLACE, &opts)
    };
    if rc != 0 {
        return Err(bpf_err(
            "detaching the stale program",
            std::io::Error::from_raw_os_error(-rc),
        ));
    }
    Ok(())
}

impl Steer {
    /// Load the program, fill its maps from `cfg` and attach it to `ifname`
    /// as a bpf_link.
    pub fn attach(ifname: &str, cfg: &SteerConfig) -> Result<Steer, NicError> {
        let ifindex = ifindex(ifname)?;
        crate::xsk::quiet_libbpf();
        let mut replaced = None;
        if let Some(a) = attached(ifname)? {
            let ours = a.name == PROG_NAME || a.name == LIBXDP_DEFAULT_PROG;
            match a.link_id {
                Some(link_id) if a.name == PROG_NAME => {
                    return Err(NicError::XdpInUse {
                        ifname: ifname.into(),
                        prog_id: a.prog_id,
                        link_id,
                    })
                }
                None if ours => {
                    detach_stale(ifindex, a.prog_id, a.mode)?;
                    log::warn!(
                        "{ifname}: replaced a stale XDP program (id {}, {})",
                        a.prog_id,
                        a.name
                    );
                    replaced = Some((a.prog_id, a.name));
                }
                _ => {
                    return Err(NicError::ForeignXdp {
                        ifname: ifname.into(),
                        prog_id: a.prog_id,
                        name: a.name,
                    })
                }
            }
        }
        let Loaded {
            obj,
            xsks,
            ports,
            counters,
        } = load(cfg).map_err(|e| match e {
            NicError::NotPermitted { .. } => NicError::NotPermitted {
                ifname: ifname.into(),
            },
            other => other,
        })?;
        let prog = obj
            .progs()
            .find(|p| p.name() == PROG_NAME)
            .ok_or_else(|| bpf_err("XDP program", "no program xdpstack_steer"))?;
        let flags = match cfg.xdp_mode {
            XdpMode::Auto => 0,
            XdpMode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => libbpf_sys::XDP_FLAGS_SKB_MODE,
        };
        // SAFETY: all-zero is a valid `bpf_link_create_opts`; `sz` says its
        // size.
        let mut opts: libbpf_sys::bpf_link_create_opts = unsafe { std::mem::zeroed() };
        opts.sz = std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as libbpf_sys::size_t;
        opts.flags = flags;
        // SAFETY: the program's descriptor is open (owned by `obj`, alive for
        // the call) and `opts` is a valid, sized options struct; on success
        // the kernel returns a new descriptor that only we own.
        let rc = unsafe {
            libbpf_sys::bpf_link_create(
                prog.as_fd().as_raw_fd(),
                ifindex as i32,
                libbpf_sys::BPF_XDP,
                &opts,
            )
        };
        if rc < 0 {
            let errno = -rc;
            return Err(match errno {
                libc::EPERM | libc::EACCES => NicError::NotPermitted {
                    ifname: ifname.into(),
                },
                libc::EBUSY | libc::EEXIST => NicError::XdpBusy {
                    ifname: ifname.into(),
                },
                _ => bpf_err(
                    "attaching the XDP program",
                    std::io::Error::from_raw_os_error(errno),
                ),
            });
        }
        // SAFETY: `rc` is a fresh descriptor returned by bpf_link_create,
        // owned by nobody else.
        let link = unsafe { OwnedFd::from_raw_fd(rc) };
        let prog_id = libbpf_rs::Program::id_from_fd(prog.as_fd()).unwrap_or(0);
        let link_id = link_id(link.as_fd());
        let info = SteerInfo {
            ifname: ifname.into(),
            ifindex,
            prog_id,
            link_id,
            mode: crate::xsk::attach_mode(ifindex),
            replaced,
        };
        Ok(Steer {
            _obj: obj,
            link,
            xsks,
            ports,
            counters: std::sync::Arc::new(SteerCounters { map: counters }),
            info,
            _run_stats: None,
        })
    }

    /// What was attached.
    pub fn info(&self) -> &SteerInfo {
        &self.info
    }

    /// The link's descriptor (closing it detaches the program).
    pub fn link_fd(&self) -> BorrowedFd<'_> {
        self.link.as_fd()
    }

    /// Send queue `queue`'s steered frames to the XSK `fd`.
    pub fn add_socket(&self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), NicError> {
        self.xsks
            .update(
                &queue.to_ne_bytes(),
                &(fd.as_raw_fd() as u32).to_ne_bytes(),
                MapFlags::ANY,
            )
            .map_err(|e| bpf_err(&format!("adding the socket of queue {queue}"), e))
    }

    /// Make `want` the steered ports (ports mode): adds the new ones,
    /// removes the others.
    pub fn set_ports(&self, want: &[(L4, u16)]) -> Result<(), NicError> {
        set_ports(&self.ports, want)
    }

    /// Let the kernel time every run of BPF programs (`BPF_ENABLE_STATS`,
    /// run time): on while this value lives, off when it is dropped (the
    /// kernel counts holders). Costs two clock reads per packet; for
    /// measuring the filter, not for production. Needs CAP_SYS_ADMIN.
    pub fn enable_run_stats(&mut self) -> Result<(), NicError> {
        // SAFETY: plain syscall wrapper; on success it returns a new
        // descriptor that only we own.
        let fd = unsafe { libbpf_sys::bpf_enable_stats(libbpf_sys::BPF_STATS_RUN_TIME) };
        if fd < 0 {
            return Err(bpf_err(
                "enabling BPF run-time statistics",
                std::io::Error::from_raw_os_error(-fd),
            ));
        }
        // SAFETY: `fd` is a fresh descriptor owned by nobody else.
        self._run_stats = Some(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(())
    }

    /// (nanoseconds spent in the program, runs) since it was loaded, as the
    /// kernel counts them while run-time statistics are on.
    pub fn run_stats(&self) -> Option<(u64, u64)> {
        let id = self.info.prog_id;
        ProgInfoIter::default()
            .find(|p| p.id == id)
            .map(|p| (p.run_time_ns, p.run_cnt))
    }

    /// The program's counters (shareable).
    pub fn counters(&self) -> std::sync::Arc<SteerCounters> {
        self.counters.clone()
    }
}

/// The program loaded (not attached) with its maps filled from `cfg`.
struct Loaded {
    obj: Object,
    xsks: MapHandle,
    ports: MapHandle,
    counters: MapHandle,
}

fn load(cfg: &SteerConfig) -> Result<Loaded, NicError> {
    let open = ObjectBuilder::default()
        .open_memory(OBJECT)
        .map_err(|e| bpf_err("opening the XDP program", e))?;
    let obj = open.load().map_err(|e| {
        if is_perm(&e) {
            NicError::NotPermitted {
                ifname: String::new(),
            }
        } else {
            bpf_err("loading the XDP program", e)
        }
    })?;
    let handle = |name: &str| -> Result<MapHandle, NicError> {
        let m = obj
            .maps()
            .find(|m| m.name() == name)
            .ok_or_else(|| bpf_err("XDP program", format!("no map {name}")))?;
        MapHandle::try_from(&m).map_err(|e| bpf_err("XDP program map", e))
    };
    let cfg_map = handle("cfg")?;
    let addrs4 = handle("addrs4")?;
    let addrs6 = handle("addrs6")?;
    let xsks = handle("xsks")?;
    let ports = handle("ports")?;
    let counters = handle("counters")?;
    // struct config: mode, vlan, pad, tcp_lo, tcp_hi.
    let mut c = [0u8; 12];
    c[..4].copy_from_slice(&cfg.mode.code().to_ne_bytes());
    c[4..6].copy_from_slice(&cfg.vlan.unwrap_or(0).to_ne_bytes());
    let (lo, hi) = cfg.tcp_ports.unwrap_or((0, 0));
    c[8..10].copy_from_slice(&lo.to_ne_bytes());
    c[10..12].copy_from_slice(&hi.to_ne_bytes());
    cfg_map
        .update(&0u32.to_ne_bytes(), &c, MapFlags::ANY)
        .map_err(|e| bpf_err("configuring the XDP program", e))?;
    for a in &cfg.addrs4 {
        addrs4
            .update(&a.octets(), &[1], MapFlags::ANY)
            .map_err(|e| bpf_err("adding an IPv4 address", e))?;
    }
    for a in &cfg.addrs6 {
        addrs6
            .update(&a.octets(), &[1], MapFlags::ANY)
            .map_err(|e| bpf_err("adding an IPv6 address", e))?;
    }
    Ok(Loaded {
        obj,
        xsks,
        ports,
        counters,
    })
}

/// The program loaded but attached nowhere, to run it on frames with
/// `BPF_PROG_TEST_RUN` (tests of its decisions; needs CAP_BPF).
pub struct SteerTest {
    loaded: Loaded,
}

impl SteerTest {
    /// Load with `cfg`.
    pub fn new(cfg: &SteerConfig) -> Result<SteerTest, NicError> {
        crate::xsk::quiet_libbpf();
        Ok(SteerTest { loaded: load(cfg)? })
    }

    /// Set the steered ports (ports mode).
    pub fn set_ports(&self, want: &[(L4, u16)]) -> Result<(), NicError> {
        set_ports(&self.loaded.ports, want)
    }

    /// Run the program once on `frame`: its verdict (XDP_PASS = 2,
    /// XDP_DROP = 1, XDP_REDIRECT = 4) and the counters that moved. No
    /// socket is in the XSKMAP here, so a frame the program would steer
    /// shows as `passed_no_xsk` after its lookups.
    pub fn run(&mut self, frame: &[u8]) -> Result<(u32, Vec<&'static str>), NicError> {
        let c = SteerCounters {
            map: MapHandle::try_from(&self.loaded.counters).map_err(|e| bpf_err("counters", e))?,
        };
        let before = c.read()?;
        let prog = self
            .loaded
            .obj
            .progs_mut()
            .find(|p| p.name() == PROG_NAME)
            .ok_or_else(|| bpf_err("XDP program", "no program xdpstack_steer"))?;
        let mut out = vec![0u8; frame.len() + 64];
        let input = libbpf_rs::ProgramInput {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..Default::default()
        };
        let r = prog.test_run(input).map_err(|e| bpf_err("test run", e))?;
        let after = c.read()?;
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| a.1 > b.1)
            .map(|(b, _)| b.0)
            .collect();
        Ok((r.return_value, moved))
    }
}

fn set_ports(ports: &MapHandle, want: &[(L4, u16)]) -> Result<(), NicError> {
    let key = |l4: L4, port: u16| {
        let mut k = [0u8; 4];
        k[0] = l4.proto();
        k[2..4].copy_from_slice(&port.to_be_bytes());
        k
    };
    let want: Vec<[u8; 4]> = want.iter().map(|&(l, p)| key(l, p)).collect();
    let have: Vec<Vec<u8>> = ports.keys().collect();
    for k in &have {
        if !want.iter().any(|w| w[..] == k[..]) {
            let _ = ports.delete(k);
        }
    }
    for w in &want {
        if !have.iter().any(|k| k[..] == w[..]) {
            ports
                .update(w, &[1], MapFlags::ANY)
                .map_err(|e| bpf_err("adding a steered port", e))?;
        }
    }
    Ok(())
}

fn link_id(fd: BorrowedFd<'_>) -> u32 {
    // SAFETY: all-zero is a valid `bpf_link_info`.
    let mut info: libbpf_sys::bpf_link_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libbpf_sys::bpf_link_info>() as u32;
    // SAFETY: `info` is valid for writes of `len` bytes and `fd` is an open
    // link descriptor for the whole call.
    let rc = unsafe { libbpf_sys::bpf_link_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    if rc == 0 {
        info.id
    } else {
        0
    }
}

fn is_perm(e: &libbpf_rs::Error) -> bool {
    matches!(e.kind(), libbpf_rs::ErrorKind::PermissionDenied)
}
