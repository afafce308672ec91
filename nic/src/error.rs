//! Errors of opening and running a port.

/// Why a port could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum NicError {
    /// No such interface in this network namespace.
    #[error("interface {0} does not exist in this network namespace")]
    NoSuchInterface(String),
    /// Queue index past the interface's rx queues.
    #[error("queue {queue} is out of range: {ifname} has {queues} rx queue(s) (0..{queues})")]
    QueueOutOfRange {
        /// Interface.
        ifname: String,
        /// Queue asked for.
        queue: u32,
        /// Queues it has.
        queues: u32,
    },
    /// Not allowed to open AF_XDP sockets or load XDP programs.
    #[error("not permitted to open an AF_XDP socket on {ifname}: needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (run as root)")]
    NotPermitted {
        /// Interface.
        ifname: String,
    },
    /// Another XDP program is attached.
    #[error("{ifname} already has an XDP program attached by someone else; detach it first (`ip link set dev {ifname} xdp off`)")]
    XdpBusy {
        /// Interface.
        ifname: String,
    },
    /// The queue is already bound to another AF_XDP socket.
    #[error("{ifname} queue {queue} is already bound by another AF_XDP socket")]
    QueueBusy {
        /// Interface.
        ifname: String,
        /// Queue.
        queue: u32,
    },
    /// Zero-copy was required but is not available.
    #[error("zero-copy is not supported on {ifname} queue {queue}")]
    NoZeroCopy {
        /// Interface.
        ifname: String,
        /// Queue.
        queue: u32,
    },
    /// The UMEM could not be allocated or registered.
    #[error("could not allocate a UMEM of {frames} frames x {frame_size} bytes: {detail} (check `ulimit -l` / RLIMIT_MEMLOCK and free memory)")]
    Umem {
        /// Frames asked for.
        frames: u32,
        /// Frame size.
        frame_size: u32,
        /// What failed.
        detail: String,
    },
    /// Any other socket creation failure.
    #[error("could not open an AF_XDP socket on {ifname} queue {queue}: {detail}")]
    Socket {
        /// Interface.
        ifname: String,
        /// Queue.
        queue: u32,
        /// What failed.
        detail: String,
    },
    /// A configuration value is out of range.
    #[error("bad port configuration: {0}")]
    Config(String),
    /// Someone else's XDP program is attached: never replaced.
    #[error("{ifname} already has a foreign XDP program attached (id {prog_id}, name `{name}`); xdpstack will not replace it: detach it first (`ip link set dev {ifname} xdp off`) if it is not needed")]
    ForeignXdp {
        /// Interface.
        ifname: String,
        /// Its program id.
        prog_id: u32,
        /// Its program name.
        name: String,
    },
    /// Our program, held by a live bpf_link: another xdpstack runs there.
    #[error("{ifname} is already in use by a running xdpstack (XDP program id {prog_id} held by bpf_link {link_id}); stop it first")]
    XdpInUse {
        /// Interface.
        ifname: String,
        /// Program id.
        prog_id: u32,
        /// Link id.
        link_id: u32,
    },
    /// Loading, configuring or attaching the XDP program failed.
    #[error("XDP program: {0}")]
    Bpf(String),
}

impl NicError {
    pub(crate) fn from_socket_errno(
        ifname: &str,
        queue: u32,
        errno: Option<i32>,
        detail: String,
        zero_copy_required: bool,
    ) -> NicError {
        let ifname = ifname.to_string();
        match errno {
            Some(libc::EPERM) | Some(libc::EACCES) => NicError::NotPermitted { ifname },
            Some(libc::EEXIST) => NicError::XdpBusy { ifname },
            Some(libc::EBUSY) => NicError::QueueBusy { ifname, queue },
            Some(libc::EOPNOTSUPP) if zero_copy_required => NicError::NoZeroCopy { ifname, queue },
            Some(libc::EOPNOTSUPP) => NicError::Socket {
                ifname,
                queue,
                detail: "the device does not support AF_XDP (EOPNOTSUPP)".into(),
            },
            Some(e) => NicError::Socket {
                ifname,
                queue,
                detail: format!("{detail}: {}", std::io::Error::from_raw_os_error(e)),
            },
            None => NicError::Socket {
                ifname,
                queue,
                detail,
            },
        }
    }
}
