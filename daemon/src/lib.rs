//! `xdpstack daemon`: the privileged half of the process model. It owns the
//! interface, the XDP program, the queues and one engine per core (the same
//! workers and registry as `xdpstack http --iface`), and serves unprivileged
//! processes that attach over a Unix control socket (the `attach` crate).
//!
//! - **Who**: uid, gid and pid of a process come from `SO_PEERCRED` when it
//!   connects, never from what it says. Its listeners join reuseport groups
//!   with that uid, so the registry's rules hold between processes: every
//!   member sets reuseport and has the same uid ("refused port hijack"
//!   otherwise). A port below 1024 needs uid 0 or `CAP_NET_BIND_SERVICE` in
//!   the process's effective set (`/proc/PID/status`, read at the bind and
//!   tied to the process that connected by a pidfd, so a reused pid cannot
//!   answer for it: [`peer`]).
//! - **Access**: the socket file is created mode 0600 (root only) unless
//!   `--control-mode`/`--control-group` open it.
//! - **Data**: per (process, core) a sealed memfd channel with a ring each
//!   way and two eventfd doorbells ([`proxy`]).
//! - **Lifecycle**: the end of the control connection (exit, crash,
//!   `kill -9`) detaches the process on every core: its listeners leave
//!   their groups (their waiting connections migrate to the remaining
//!   members), its connections are reset, its channels are unmapped.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod peer;
pub mod proxy;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

/// Longest request line a process may send on the control socket.
const MAX_LINE: u64 = 64 << 10;

use attach::proto::{self, Reply, Request};
use nic::shm::{self, Channel};
use nix::sys::eventfd::{EfdFlags, EventFd};
use stack::reuseport::{BindOptions, Selector};
use stack::shared::Shared;

use peer::Peer;
use proxy::{Ctl, Inbox, ProxyApp};
use runtime::server::{self, ServerArgs};

/// `xdpstack daemon` options.
#[derive(clap::Args, Clone, Debug)]
pub struct DaemonArgs {
    /// Interface, addresses, workers: as for the servers.
    #[command(flatten)]
    pub server: ServerArgs,
    /// Path of the control socket processes attach to.
    #[arg(long)]
    pub control: PathBuf,
    /// Mode of the control socket file (octal): 600 lets only root attach,
    /// 660 a group (--control-group), 666 everyone.
    #[arg(long, default_value = "600", value_parser = parse_mode)]
    pub control_mode: u32,
    /// Group owning the control socket file.
    #[arg(long)]
    pub control_group: Option<String>,
    /// Bytes of each shared-memory ring (one each way per process and core;
    /// rounded up to a power of two, more than 256 KiB).
    #[arg(long, default_value_t = 1 << 20, value_parser = parse_ring_bytes)]
    pub ring_bytes: usize,
    /// Most processes attached at once (each costs a thread here and its
    /// rings on every core); more are refused at their hello, and counted.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_clients: u64,
}

/// Why a value of a daemon option was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// `--control-mode` not octal.
    #[error("`{0}` is not an octal mode")]
    NotOctal(String),
    /// `--control-mode` past 777.
    #[error("{0} is not a file mode")]
    NotMode(String),
    /// `--ring-bytes` not a number.
    #[error("`{0}` is not a number of bytes")]
    NotBytes(String),
    /// `--ring-bytes` too small for a datagram record.
    #[error("must be more than {} ({} KiB): a ring record must hold a whole datagram with its addresses ({record} bytes) and takes at most a quarter of its ring, so rings (rounded up to a power of two) need {need} bytes", need / 2, need >> 11)]
    RingTooSmall {
        /// Bytes a ring needs.
        need: usize,
        /// Bytes of a datagram record.
        record: usize,
    },
}

fn parse_mode(s: &str) -> Result<u32, FlagError> {
    let m = u32::from_str_radix(s, 8).map_err(|_| FlagError::NotOctal(s.to_string()))?;
    if m > 0o777 {
        return Err(FlagError::NotMode(s.to_string()));
    }
    Ok(m)
}

/// `--ring-bytes`: a ring whose records cannot carry a whole datagram
/// never delivers one, so such sizes are refused here.
fn parse_ring_bytes(s: &str) -> Result<usize, FlagError> {
    let n: usize = s.parse().map_err(|_| FlagError::NotBytes(s.to_string()))?;
    let need = shm::ring_size_for(proxy::DGRAM_RECORD);
    if shm::ring_size(n) < need {
        return Err(FlagError::RingTooSmall {
            need,
            record: proxy::DGRAM_RECORD,
        });
    }
    Ok(n)
}

/// What the control thread and the workers share.
pub struct Hub {
    inboxes: Vec<Inbox>,
    shared: OnceLock<Arc<Shared>>,
    registered: AtomicU64,
    selector: Arc<dyn Selector>,
    next_client: AtomicU64,
    /// Processes attached now, the bound, and hellos refused past it.
    attached: AtomicU64,
    max_clients: u64,
    refused: AtomicU64,
}

impl Hub {
    fn new(cores: usize, selector: Arc<dyn Selector>, max_clients: u64) -> Hub {
        Hub {
            inboxes: (0..cores).map(|_| Inbox::default()).collect(),
            shared: OnceLock::new(),
            registered: AtomicU64::new(0),
            selector,
            next_client: AtomicU64::new(1),
            attached: AtomicU64::new(0),
            max_clients,
            refused: AtomicU64::new(0),
        }
    }

    /// Take an attach slot; false (and counted) when `max_clients` are
    /// attached.
    fn take_slot(&self) -> bool {
        let ok = self
            .attached
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max_clients).then_some(n + 1)
            })
            .is_ok();
        if !ok {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    fn cores(&self) -> usize {
        self.inboxes.len()
    }

    /// Send `ctl` to core `core` and wake it.
    fn post(&self, core: usize, ctl: Ctl) {
        if let Some(i) = self.inboxes.get(core) {
            i.push(ctl);
            if let Some(s) = self.shared.get() {
                s.mesh.wake(core);
            }
        }
    }

    fn take(&self, core: usize) -> Option<Ctl> {
        self.inboxes.get(core)?.pop()
    }

    fn has_work(&self, core: usize) -> bool {
        self.inboxes.get(core).is_some_and(|i| i.waiting())
    }

    /// Every worker is up (its proxy registered).
    fn wait_ready(&self) -> Option<Arc<Shared>> {
        for _ in 0..1000 {
            if self.registered.load(Ordering::SeqCst) as usize >= self.cores() {
                return self.shared.get().cloned();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

/// Why the control socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Someone serves the path already.
    #[error("{0} is in use by a running daemon")]
    InUse(String),
    /// Creating or setting up the socket.
    #[error("control socket {0}: {1}")]
    Io(String, std::io::Error),
    /// No such group.
    #[error("no group named {0}")]
    NoGroup(String),
}

/// Why the daemon did not start, or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The interface, its queues, the workers.
    #[error(transparent)]
    Serve(#[from] server::ServeError),
    /// The control socket.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The control thread could not be started.
    #[error("cannot start the control thread: {0}")]
    Thread(std::io::Error),
}

/// Bind the control socket with its mode and group.
pub fn bind_control(
    path: &Path,
    mode: u32,
    group: Option<&str>,
) -> Result<UnixListener, ControlError> {
    let io = |e| ControlError::Io(path.display().to_string(), e);
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(ControlError::InUse(path.display().to_string()));
        }
        // A stale socket of a daemon that died.
        std::fs::remove_file(path).map_err(io)?;
    }
    // Created 0600 whatever the umask, then opened as asked: nobody can
    // connect in between.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let l = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let l = l.map_err(io)?;
    if let Some(g) = group {
        let gid = nix::unistd::Group::from_name(g)
            .ok()
            .flatten()
            .ok_or_else(|| ControlError::NoGroup(g.to_string()))?
            .gid;
        nix::unistd::chown(path, None, Some(gid))
            .map_err(|e| io(std::io::Error::from_raw_os_error(e as i32)))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    Ok(l)
}

/// One attached process's control connection, until it closes.
fn serve_client(stream: UnixStream, hub: Arc<Hub>, ring_bytes: usize) {
    let peer = match Peer::of(&stream) {
        Ok(p) => p,
        Err(e) => {
            log::warn!("control: no peer credentials: {e}");
            return;
        }
    };
    if !peer.held() {
        log::warn!(
            "control: process {} exited before it could be held: it may not bind ports below 1024",
            peer.pid
        );
    }
    let (uid, pid) = (peer.uid, peer.pid);
    let client = hub.next_client.fetch_add(1, Ordering::Relaxed);
    let Ok(read) = stream.try_clone() else {
        return;
    };
    let mut writer = stream;
    let mut attached = false;
    // Keep the channels until the process is gone (the proxies hold
    // theirs too; the memory is freed when the last mapping goes).
    let mut keep: Vec<(Channel, Arc<EventFd>)> = Vec::new();
    // One request a line, each at most MAX_LINE bytes: a process that sends
    // a longer one (or an endless one) is dropped, not buffered.
    let mut reader = BufReader::new(read);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            // The limit reached before a newline (a last line without one
            // at the end of the stream is still a request).
            Ok(n) if n as u64 == MAX_LINE && buf.last() != Some(&b'\n') => {
                let _ = send(
                    &mut writer,
                    &Reply::err(format!("bad request: longer than {MAX_LINE} bytes")),
                    &[],
                );
                break;
            }
            Ok(_) => {}
        }
        let req: Request = match serde_json::from_slice(&buf) {
            Ok(r) => r,
            Err(e) => {
                let _ = send(&mut writer, &Reply::err(format!("bad request: {e}")), &[]);
                break;
            }
        };
        let reply = match req {
            Request::Hello if attached => Reply::err("already attached"),
            Request::Hello if !hub.take_slot() => Reply::err(format!(
                "refused: the daemon serves at most {} attached processes (--max-clients)",
                hub.max_clients
            )),
            Request::Hello => match hello(&hub, client, pid, ring_bytes) {
                Ok(chans) => {
                    attached = true;
                    keep = chans;
                    let mut fds = Vec::new();
                    for (core, (ch, bell)) in keep.iter().enumerate() {
                        fds.push(ch.fd());
                        fds.push(bell.as_fd());
                        if let Some(b) = hub.shared.get().and_then(|s| s.mesh.bell(core)) {
                            fds.push(b);
                        }
                    }
                    let r = Reply {
                        ok: true,
                        cores: Some(hub.cores()),
                        ..Reply::default()
                    };
                    if send(&mut writer, &r, &fds).is_err() {
                        break;
                    }
                    eprintln!(
                        "xdpstack daemon: process {pid} (uid {uid}) attached as client {client}"
                    );
                    continue;
                }
                Err(e) => {
                    hub.attached.fetch_sub(1, Ordering::SeqCst);
                    Reply::err(e)
                }
            },
            _ if !attached => Reply::err("say hello first"),
            Request::Listen(b) => bind(&hub, client, &peer, &b, false),
            Request::UdpBind(b) => bind(&hub, client, &peer, &b, true),
            Request::Drain { core, listener } => drain(&hub, client, core, listener),
        };
        if send(&mut writer, &reply, &[]).is_err() {
            break;
        }
    }
    if attached {
        hub.attached.fetch_sub(1, Ordering::SeqCst);
        for core in 0..hub.cores() {
            hub.post(core, Ctl::Detach { client });
        }
        eprintln!("xdpstack daemon: process {pid} (client {client}) detached");
    }
    drop(keep);
}

fn send(w: &mut UnixStream, r: &Reply, fds: &[std::os::fd::BorrowedFd<'_>]) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    line.push(b'\n');
    if fds.is_empty() {
        w.write_all(&line)
    } else {
        nic::shm::send_with_fds(w.as_fd(), &line, fds)
    }
}

/// One channel and doorbell per core for a process saying hello.
fn hello(
    hub: &Hub,
    client: u64,
    pid: i32,
    ring_bytes: usize,
) -> Result<Vec<(Channel, Arc<EventFd>)>, String> {
    if hub.wait_ready().is_none() {
        return Err("the daemon's workers are not running".into());
    }
    attach_all(hub, client, |core| {
        let ch = Channel::create(&format!("xdpstack-{pid}-{core}"), ring_bytes)
            .map_err(|e| format!("shared memory: {e}"))?;
        let bell = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            .map_err(|e| format!("eventfd: {e}"))?;
        Ok((ch, Arc::new(bell)))
    })
}

/// Open every core's channel with `open`, then post them all: a failure
/// on any core leaves no core attached (the channels opened so far are
/// dropped here, never handed to a worker that no detach would reach).
fn attach_all(
    hub: &Hub,
    client: u64,
    open: impl FnMut(usize) -> Result<(Channel, Arc<EventFd>), String>,
) -> Result<Vec<(Channel, Arc<EventFd>)>, String> {
    let chans = (0..hub.cores())
        .map(open)
        .collect::<Result<Vec<_>, String>>()?;
    for (core, (chan, bell)) in chans.iter().enumerate() {
        hub.post(
            core,
            Ctl::Attach {
                client,
                chan: chan.clone(),
                bell: bell.clone(),
            },
        );
    }
    Ok(chans)
}

/// `listen` or `udp_bind`: the bind rules with the process's uid from the
/// kernel, and the privileged-port rule.
fn bind(hub: &Hub, client: u64, peer: &Peer, b: &proto::Bind, udp: bool) -> Reply {
    let (uid, pid) = (peer.uid, peer.pid);
    let (core, port) = (b.core, b.port);
    if core >= hub.cores() {
        return Reply::err(format!("no core {core}"));
    }
    let Some(addr) = proto::addr_from_str(&b.addr) else {
        return Reply::err(format!("bad address {}", b.addr));
    };
    if port < 1024 && !peer.may_bind_privileged() {
        return Reply::err(format!(
            "permission denied: port {port} needs root or CAP_NET_BIND_SERVICE (process {pid}, uid {uid})"
        ));
    }
    let opts = BindOptions::new(uid)
        .with_reuseport(b.reuseport)
        .with_backlog(b.backlog.clamp(1, 65_535));
    ask(hub, core, |reply| Ctl::Bind {
        client,
        udp,
        addr,
        port,
        opts,
        reply,
    })
}

fn drain(hub: &Hub, client: u64, core: usize, listener: u64) -> Reply {
    if core >= hub.cores() {
        return Reply::err(format!("no core {core}"));
    }
    ask(hub, core, |reply| Ctl::Drain {
        client,
        listener,
        reply,
    })
}

/// Post a request to a core and wait for its answer (a listener id).
fn ask(
    hub: &Hub,
    core: usize,
    make: impl FnOnce(mpsc::SyncSender<Result<u64, proxy::CoreRefusal>>) -> Ctl,
) -> Reply {
    let (tx, rx) = mpsc::sync_channel(1);
    hub.post(core, make(tx));
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(id)) => Reply {
            ok: true,
            listener: Some(id),
            ..Reply::default()
        },
        Ok(Err(e)) => Reply::err(e),
        Err(_) => Reply::err("the core did not answer"),
    }
}

/// Run the daemon until SIGINT/SIGTERM. Returns the workers' report.
pub fn run(args: &DaemonArgs) -> Result<DaemonReport, DaemonError> {
    let cores = server::worker_plan(&args.server)?.len();
    let selector = args.server.selector.selector();
    let hub = Arc::new(Hub::new(cores, selector, args.max_clients));
    let listener = bind_control(
        &args.control,
        args.control_mode,
        args.control_group.as_deref(),
    )?;
    let path = args.control.clone();
    {
        let hub = hub.clone();
        let ring = args.ring_bytes;
        std::thread::Builder::new()
            .name("xdpstack-control".into())
            .spawn(move || {
                for s in listener.incoming() {
                    let Ok(s) = s else { continue };
                    let hub = hub.clone();
                    let _ = std::thread::Builder::new()
                        .name("xdpstack-client".into())
                        .spawn(move || serve_client(s, hub, ring));
                }
            })
            .map_err(DaemonError::Thread)?;
    }
    eprintln!(
        "xdpstack daemon: control socket {} (mode {:o})",
        path.display(),
        args.control_mode
    );
    let h = hub.clone();
    let report = server::serve(
        &args.server,
        "daemon",
        move |ctx, engine| {
            let _ = h.shared.set(engine.shared().clone());
            let app = ProxyApp::new(ctx.worker, h.clone(), engine);
            h.registered.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::convert::Infallible>(app)
        },
        |app| app.json(),
    );
    let _ = std::fs::remove_file(&path);
    Ok(DaemonReport {
        server: report?,
        attach_limit: AttachLimit {
            max_clients: hub.max_clients,
            refused: hub.refused.load(Ordering::Relaxed),
        },
    })
}

/// What the daemon reports on exit: the server's report and its limit on
/// attached processes.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DaemonReport {
    /// The workers, the XDP program, the stack (as any server's).
    #[serde(flatten)]
    pub server: runtime::report::ServerReport,
    /// `--max-clients` and the hellos refused past it.
    pub attach_limit: AttachLimit,
}

/// `--max-clients` and the hellos refused past it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AttachLimit {
    /// Processes attached at once at most.
    pub max_clients: u64,
    /// Hellos refused past it.
    pub refused: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn control_socket_is_root_only_by_default_and_stale_ones_are_replaced() {
        let dir = std::env::temp_dir().join(format!("xs-ctl-{}", std::process::id()));
        let _ = std::fs::create_dir(&dir);
        let p = dir.join("c.sock");
        let l = bind_control(&p, 0o600, None).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            bind_control(&p, 0o600, None),
            Err(ControlError::InUse(_))
        ));
        drop(l);
        let l = bind_control(&p, 0o666, None).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
        drop(l);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn channel(core: usize) -> Result<(Channel, Arc<EventFd>), String> {
        let ch = Channel::create(&format!("hello-test-{core}"), 4096).map_err(|e| e.to_string())?;
        let bell = EventFd::from_flags(EfdFlags::EFD_CLOEXEC).map_err(|e| e.to_string())?;
        Ok((ch, Arc::new(bell)))
    }

    #[test]
    fn ring_bytes_too_small_for_a_datagram_are_refused() {
        let e = parse_ring_bytes("262144").unwrap_err().to_string();
        assert!(e.contains("more than 262144 (256 KiB)"), "{e}");
        assert!(e.contains("whole datagram"), "{e}");
        assert!(parse_ring_bytes("4096").is_err());
        assert!(parse_ring_bytes("0").is_err());
        assert!(parse_ring_bytes("lots").is_err());
        // Rounded up to 512 KiB, which holds one.
        assert_eq!(parse_ring_bytes("262145"), Ok(262_145));
        assert_eq!(parse_ring_bytes("1048576"), Ok(1 << 20));
        // The ring the proxy gets from the least size delivers a datagram.
        let ch = Channel::create("ring-bytes-test", 262_145).unwrap();
        let (mut tx, _) = ch.split(nic::shm::Side::Daemon);
        assert!(tx.room() >= proxy::DGRAM_RECORD);
        // Through clap, with the rest of the command line.
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            daemon: DaemonArgs,
        }
        let args = |ring: &str| {
            <Cli as clap::Parser>::try_parse_from([
                "daemon",
                "--iface",
                "xdp0",
                "--control",
                "/tmp/x.sock",
                "--ring-bytes",
                ring,
            ])
        };
        let e = args("65536").err().expect("refused").to_string();
        assert!(e.contains("--ring-bytes") && e.contains("256 KiB"), "{e}");
    }

    /// A hello that fails on one core leaves no core with a channel (no
    /// detach would ever reach it); one that succeeds attaches every core.
    #[test]
    fn a_hello_failing_on_one_core_attaches_none() {
        let hub = Hub::new(3, Arc::new(stack::reuseport::HashSelector), 8);
        let mut opened = 0;
        let failing = attach_all(&hub, 7, |core| {
            opened += 1;
            if core == 2 {
                return Err("shared memory: no room".into());
            }
            channel(core)
        });
        assert_eq!(failing.err().as_deref(), Some("shared memory: no room"));
        assert_eq!(opened, 3, "cores 0 and 1 were opened first");
        assert!((0..3).all(|c| !hub.has_work(c)), "nothing posted");

        let chans = attach_all(&hub, 8, channel).unwrap();
        assert_eq!(chans.len(), 3);
        for (core, (ours, _)) in chans.iter().enumerate() {
            match hub.take(core) {
                Some(Ctl::Attach { client, chan, .. }) => {
                    assert_eq!(client, 8);
                    assert_eq!(
                        chan.fd().as_raw_fd(),
                        ours.fd().as_raw_fd(),
                        "core {core} has its own channel"
                    );
                }
                _ => panic!("core {core} was not attached"),
            }
            assert!(hub.take(core).is_none());
        }
    }
}
