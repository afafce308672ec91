//! The test/demo network sandbox.
//!
//! A sandbox is two network namespaces created by this project and joined by one veth pair:
//!
//! * the server namespace `xs-NAME-srv` holds `xdp0`, the interface the userspace stack drives.
//!   The kernel there has no address on `xdp0` and IPv6 disabled on it, so only the stack
//!   answers and the kernel sends no router solicitations or MLD reports;
//! * the client namespace `xs-NAME-cli` holds `peer0`, a kernel peer with `198.18.0.2/24` and
//!   `2001:db8:18::2/64` and tx checksum offload off (veth frames would otherwise carry
//!   `CHECKSUM_PARTIAL`, i.e. wrong checksums on the wire).
//!
//! Nothing is configured in the root namespace and no route leads out. The veth pair has the
//! same number of queues each way, so that the client's tx queue picks the server's rx queue.
//! Deleting the namespaces deletes the veth pair, and with it any XDP program attached to it.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpid, Pid};

use crate::impair::ImpairSpec;

/// Sandbox name used when none is given.
pub const DEFAULT_NAME: &str = "xdpstack";

/// Prefix of the namespaces this project creates.
const NS_PREFIX: &str = "xs-";
/// Longest accepted sandbox name.
const MAX_NAME_LEN: usize = 24;
/// Most queues accepted per direction.
const MAX_QUEUES: u16 = 64;

const SERVER_IF: &str = "xdp0";
/// Impaired sandbox: the middle namespace's interface towards the server.
const MID_SERVER_IF: &str = "m-srv";
/// Impaired sandbox: the middle namespace's interface towards the client.
const MID_CLIENT_IF: &str = "m-cli";
/// How long the forwarder may take to open its sockets.
const FORWARDER_READY: Duration = Duration::from_secs(10);
const CLIENT_IF: &str = "peer0";
const SERVER_MAC: &str = "02:78:73:00:00:01";
const CLIENT_MAC: &str = "02:78:73:00:00:02";
const SERVER_IP4: &str = "198.18.0.1/24";
const CLIENT_IP4: &str = "198.18.0.2/24";
const SERVER_IP6: &str = "2001:db8:18::1/64";
const CLIENT_IP6: &str = "2001:db8:18::2/64";

/// Shared interface: the server side's kernel address (`share_with_kernel`).
pub const SHARED_KERNEL_IP4: &str = "10.112.0.3/24";
/// Shared interface: the server side's kernel IPv6 address.
pub const SHARED_KERNEL_IP6: &str = "fd00:112::3/64";
/// Shared interface: the stack's IPv4 address.
pub const SHARED_STACK_IP4: &str = "10.112.0.1/24";
/// Shared interface: the stack's IPv6 address.
pub const SHARED_STACK_IP6: &str = "fd00:112::1/64";
/// Shared interface: the client's IPv4 address.
pub const SHARED_CLIENT_IP4: &str = "10.112.0.2/24";
/// Shared interface: the client's IPv6 address.
pub const SHARED_CLIENT_IP6: &str = "fd00:112::2/64";

/// How long processes left in a namespace get between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// What went wrong while building, inspecting or tearing down a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The sandbox name is not 1 to 24 characters of `[a-z0-9-]`.
    #[error("invalid sandbox name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The impairment's rates or durations are out of range.
    #[error("invalid impairment: {detail}")]
    InvalidImpairment {
        /// What is wrong.
        detail: crate::impair::ImpairError,
    },
    /// The impairing forwarder did not start.
    #[error("the impairing forwarder did not start: {detail}")]
    Forwarder {
        /// What it said, or why it could not run.
        detail: String,
    },
    /// The queue count is outside 1..=64.
    #[error("invalid queue count {0}: must be between 1 and {MAX_QUEUES}")]
    InvalidQueues(u16),
    /// One of the sandbox's namespaces already exists.
    #[error("sandbox {name} already exists; run `xdpstack sandbox down --name {name}`")]
    AlreadyExists {
        /// The sandbox name.
        name: String,
    },
    /// The sandbox (or one of its namespaces) does not exist.
    #[error("sandbox {name} does not exist (namespace {namespace} missing); run `xdpstack sandbox up --name {name}`")]
    NotFound {
        /// The sandbox name.
        name: String,
        /// The namespace that is missing.
        namespace: String,
    },
    /// A command could not be started at all.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The error from the operating system.
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status, as printed by the standard library.
        status: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// A command succeeded but printed something we could not understand.
    #[error("unexpected output from `{command}`: {detail}")]
    Output {
        /// The command line.
        command: String,
        /// What was wrong with the output.
        detail: String,
    },
    /// A required tool is missing and could not be installed.
    #[error("required tool `{tool}` not found on PATH: {detail}")]
    MissingTool {
        /// The missing program.
        tool: String,
        /// Why it could not be provided.
        detail: String,
    },
    /// A process left inside a namespace could not be signalled.
    #[error("could not send {signal} to pid {pid} in namespace {namespace}: {errno}")]
    Signal {
        /// The namespace the process lives in.
        namespace: String,
        /// The process.
        pid: i32,
        /// The signal.
        signal: Signal,
        /// The error from `kill(2)`.
        errno: Errno,
    },
}

/// Which end of the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The server namespace, holding `xdp0` (the stack's interface).
    Server,
    /// The client namespace, holding `peer0` (the kernel peer).
    Client,
}

/// What sandbox to build.
#[derive(Clone, Debug)]
pub struct SandboxSpec {
    /// Sandbox name: 1 to 24 characters of `[a-z0-9-]`.
    pub name: String,
    /// Queues per direction on each veth end: 1 to 64.
    pub queues: u16,
}

impl Default for SandboxSpec {
    fn default() -> Self {
        SandboxSpec {
            name: DEFAULT_NAME.to_string(),
            queues: 1,
        }
    }
}

/// Names, addresses and MACs of a sandbox.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SandboxInfo {
    /// Sandbox name.
    pub name: String,
    /// Server namespace, `xs-NAME-srv`.
    pub server_ns: String,
    /// Client namespace, `xs-NAME-cli`.
    pub client_ns: String,
    /// Server interface (`xdp0`), driven by the userspace stack.
    pub server_if: String,
    /// Client interface (`peer0`), owned by the kernel.
    pub client_if: String,
    /// MAC address of `xdp0`.
    pub server_mac: String,
    /// MAC address of `peer0`.
    pub client_mac: String,
    /// IPv4 address the stack should use, with prefix (`198.18.0.1/24`).
    pub server_ip4: String,
    /// IPv4 address of the kernel peer, with prefix.
    pub client_ip4: String,
    /// IPv6 address the stack should use, with prefix.
    pub server_ip6: String,
    /// IPv6 address of the kernel peer, with prefix.
    pub client_ip6: String,
    /// Queues per direction on each veth end.
    pub queues: u16,
}

/// A live sandbox. Dropping it tears it down unless [`Sandbox::keep`] was called.
#[derive(Debug)]
pub struct Sandbox {
    info: SandboxInfo,
    keep: bool,
}

impl Sandbox {
    /// Creates the two namespaces and the veth pair and configures both ends.
    ///
    /// Fails if either namespace already exists. On any failure, removes whatever it created
    /// before returning the error.
    pub fn up(spec: &SandboxSpec) -> Result<Sandbox, SandboxError> {
        validate_name(&spec.name)?;
        if spec.queues == 0 || spec.queues > MAX_QUEUES {
            return Err(SandboxError::InvalidQueues(spec.queues));
        }
        let (server_ns, client_ns) = ns_names(&spec.name);
        let present = netns_list()?;
        if present.contains(&server_ns) || present.contains(&client_ns) {
            return Err(SandboxError::AlreadyExists {
                name: spec.name.clone(),
            });
        }

        let mut created = Vec::with_capacity(2);
        match build(spec, &server_ns, &client_ns, &mut created).and_then(|()| read_info(&spec.name))
        {
            Ok(info) => Ok(Sandbox { info, keep: false }),
            Err(err) => {
                for ns in &created {
                    if let Err(cleanup) = remove_namespace(ns) {
                        log::warn!("sandbox {}: cleanup after failure: {cleanup}", spec.name);
                    }
                }
                Err(err)
            }
        }
    }

    /// Like [`Sandbox::up`], with a third namespace `xs-NAME-mid` between the two ends: the
    /// server's `xdp0` and the client's `peer0` are each paired with a veth there, and
    /// `forwarder` (the `xdpstack` binary) runs `sandbox impair` in it, bridging the two with
    /// `impair` applied each way. Frames cross unchanged (same MACs): the ends see one link.
    ///
    /// The forwarder exits on the teardown's SIGTERM, or by itself once either end's namespace
    /// is gone; its counters are in [`impair_stats_path`].
    pub fn up_impaired(
        spec: &SandboxSpec,
        impair: &ImpairSpec,
        forwarder: &Path,
    ) -> Result<Sandbox, SandboxError> {
        validate_name(&spec.name)?;
        if spec.queues == 0 || spec.queues > MAX_QUEUES {
            return Err(SandboxError::InvalidQueues(spec.queues));
        }
        impair
            .validate()
            .map_err(|detail| SandboxError::InvalidImpairment { detail })?;
        let (server_ns, client_ns) = ns_names(&spec.name);
        let mid_ns = middle_ns(&spec.name);
        let present = netns_list()?;
        if [&server_ns, &client_ns, &mid_ns]
            .iter()
            .any(|ns| present.contains(*ns))
        {
            return Err(SandboxError::AlreadyExists {
                name: spec.name.clone(),
            });
        }
        let mut created = Vec::with_capacity(3);
        let built = build_impaired(spec, &server_ns, &client_ns, &mid_ns, &mut created)
            .and_then(|()| start_forwarder(&spec.name, &mid_ns, impair, forwarder))
            .and_then(|()| read_info(&spec.name));
        match built {
            Ok(info) => Ok(Sandbox { info, keep: false }),
            Err(err) => {
                if let Err(cleanup) = teardown(&spec.name) {
                    log::warn!("sandbox {}: cleanup after failure: {cleanup}", spec.name);
                }
                Err(err)
            }
        }
    }

    /// Names, addresses and MACs of this sandbox.
    pub fn info(&self) -> &SandboxInfo {
        &self.info
    }

    /// A command that runs `program` inside one side's namespace (`ip netns exec NS program`).
    /// Add arguments with [`Command::arg`] / [`Command::args`].
    pub fn command(&self, side: Side, program: &str) -> Command {
        let ns = match side {
            Side::Server => &self.info.server_ns,
            Side::Client => &self.info.client_ns,
        };
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns.as_str(), program]);
        cmd
    }

    /// Let the server side's kernel hold addresses on `xdp0` next to the
    /// stack's (the deployment where the stack shares its interface):
    /// [`SHARED_KERNEL_IP4`] and [`SHARED_KERNEL_IP6`] on the server's kernel
    /// (IPv6 re-enabled there, no DAD), [`SHARED_CLIENT_IP4`] and
    /// [`SHARED_CLIENT_IP6`] on the client. The stack takes
    /// [`SHARED_STACK_IP4`] / [`SHARED_STACK_IP6`].
    pub fn share_with_kernel(&self) -> Result<(), SandboxError> {
        share_with_kernel(&self.info.server_ns, &self.info.client_ns)
    }

    /// Detaches the sandbox: it stays up after this value is gone. Returns its info.
    pub fn keep(mut self) -> SandboxInfo {
        self.keep = true;
        self.info.clone()
    }

    /// Tears the sandbox down now, reporting any failure.
    pub fn down(mut self) -> Result<(), SandboxError> {
        self.keep = true;
        teardown(&self.info.name).map(|_| ())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Err(err) = teardown(&self.info.name) {
            log::warn!("sandbox {}: teardown failed: {err}", self.info.name);
        }
    }
}

/// Removes the sandbox `name`: kills processes left in its namespaces and deletes both.
/// Returns `Ok(false)` if neither namespace existed.
pub fn down(name: &str) -> Result<bool, SandboxError> {
    validate_name(name)?;
    teardown(name)
}

/// Info of an existing sandbox, read back from its interfaces. Fails if it is missing.
pub fn attach(name: &str) -> Result<SandboxInfo, SandboxError> {
    validate_name(name)?;
    let (server_ns, client_ns) = ns_names(name);
    let present = netns_list()?;
    for ns in [&server_ns, &client_ns] {
        if !present.contains(ns) {
            return Err(SandboxError::NotFound {
                name: name.to_string(),
                namespace: ns.clone(),
            });
        }
    }
    read_info(name)
}

/// Names of the namespaces starting with `xs-` (ours) that currently exist.
pub fn leftovers() -> Result<Vec<String>, SandboxError> {
    Ok(netns_list()?
        .into_iter()
        .filter(|ns| ns.starts_with(NS_PREFIX))
        .collect())
}

/// Checks that `ip` and `ethtool` are on PATH. Installing them is the
/// scripts' job (`scripts/deps.sh`), never the binary's.
pub fn ensure_tools() -> Result<(), SandboxError> {
    const TOOLS: [&str; 2] = ["ip", "ethtool"];
    let missing: Vec<&str> = TOOLS.into_iter().filter(|t| !on_path(t)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(SandboxError::MissingTool {
        tool: missing.join(", "),
        detail: "install iproute2 and ethtool (as root: scripts/deps.sh, or apt-get install -y iproute2 ethtool)"
            .to_string(),
    })
}

/// A human-readable summary of a sandbox: names, addresses, MACs, queues and how to use it.
pub fn format_info(info: &SandboxInfo) -> String {
    let ip4 = strip_prefix_len(&info.server_ip4);
    let ip6 = strip_prefix_len(&info.server_ip6);
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        "sandbox {} ({} queues per direction)",
        info.name, info.queues
    );
    let _ = writeln!(
        s,
        "  server: netns {}  if {}  mac {}  (userspace stack: ip4 {}  ip6 {}; kernel has no address)",
        info.server_ns, info.server_if, info.server_mac, info.server_ip4, info.server_ip6
    );
    let _ = writeln!(
        s,
        "  client: netns {}  if {}  mac {}  (kernel: ip4 {}  ip6 {})",
        info.client_ns, info.client_if, info.client_mac, info.client_ip4, info.client_ip6
    );
    let _ = writeln!(
        s,
        "  run a client:  ip netns exec {} curl http://{ip4}/",
        info.client_ns
    );
    let _ = writeln!(
        s,
        "                 ip netns exec {} curl -g 'http://[{ip6}]/'",
        info.client_ns
    );
    let _ = writeln!(s, "  server shell:  ip netns exec {} bash", info.server_ns);
    let _ = write!(
        s,
        "  tear down:     xdpstack sandbox down --name {}",
        info.name
    );
    s
}

// ---------------------------------------------------------------------------------------------

/// Checks a sandbox name: 1 to 24 characters of `[a-z0-9-]`.
fn validate_name(name: &str) -> Result<(), SandboxError> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("must be at most 24 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("only a-z, 0-9 and '-' are allowed")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(SandboxError::InvalidName {
            name: name.to_string(),
            reason,
        }),
    }
}

/// The middle namespace of an impaired sandbox, `xs-NAME-mid`.
pub fn middle_ns(name: &str) -> String {
    format!("{NS_PREFIX}{name}-mid")
}

/// Where an impaired sandbox's forwarder writes its counters (JSON, every second).
pub fn impair_stats_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("xdpstack-impair-{name}.json"))
}

/// Where an impaired sandbox's forwarder writes its standard error.
fn impair_log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("xdpstack-impair-{name}.log"))
}

/// The counters of an impaired sandbox's forwarder as JSON (`None` if there
/// is none); [`forwarder_stats`] reads them typed.
pub fn impair_stats(name: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(impair_stats_path(name)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The counters of an impaired sandbox's forwarder (`None` if there is none).
pub fn forwarder_stats(name: &str) -> Option<crate::impair::forward::ForwardStats> {
    let text = std::fs::read_to_string(impair_stats_path(name)).ok()?;
    serde_json::from_str(&text).ok()
}

/// `(server namespace, client namespace)` of a sandbox.
fn ns_names(name: &str) -> (String, String) {
    (
        format!("{NS_PREFIX}{name}-srv"),
        format!("{NS_PREFIX}{name}-cli"),
    )
}

fn share_with_kernel(server_ns: &str, client_ns: &str) -> Result<(), SandboxError> {
    for (k, v) in [
        ("net.ipv6.conf.xdp0.disable_ipv6", "0"),
        ("net.ipv6.conf.xdp0.accept_dad", "0"),
        // The stack answers ARP for its own addresses; the kernel must not
        // answer for addresses it does not hold.
        ("net.ipv4.conf.xdp0.arp_ignore", "1"),
    ] {
        run(&mut exec_in(
            server_ns,
            "sysctl",
            ["-w", &format!("{k}={v}")],
        ))?;
    }
    add_addrs(server_ns, SERVER_IF, SHARED_KERNEL_IP4, SHARED_KERNEL_IP6)?;
    add_addrs(client_ns, CLIENT_IF, SHARED_CLIENT_IP4, SHARED_CLIENT_IP6)?;
    Ok(())
}

/// Creates and configures everything; pushes each namespace it creates onto `created`.
fn build(
    spec: &SandboxSpec,
    server_ns: &str,
    client_ns: &str,
    created: &mut Vec<String>,
) -> Result<(), SandboxError> {
    add_namespaces(&[server_ns, client_ns], created)?;
    add_veth(spec, (SERVER_IF, server_ns), (CLIENT_IF, client_ns))?;
    configure_ends(spec, server_ns, client_ns)
}

/// Configures `xdp0` in the server namespace and `peer0` in the client namespace.
fn configure_ends(
    spec: &SandboxSpec,
    server_ns: &str,
    client_ns: &str,
) -> Result<(), SandboxError> {
    // Server: no kernel address, no IPv6 (so no RS/MLD/DAD from the kernel), links up.
    run(&mut ip_in(
        server_ns,
        ["link", "set", "dev", SERVER_IF, "address", SERVER_MAC],
    ))?;
    run(&mut exec_in(
        server_ns,
        "sysctl",
        ["-w", "net.ipv6.conf.xdp0.disable_ipv6=1"],
    ))?;
    run(&mut ip_in(server_ns, ["link", "set", "dev", "lo", "up"]))?;
    run(&mut ip_in(
        server_ns,
        ["link", "set", "dev", SERVER_IF, "up"],
    ))?;

    // Client: kernel peer with both addresses, checksums computed in software.
    run(&mut ip_in(
        client_ns,
        ["link", "set", "dev", CLIENT_IF, "address", CLIENT_MAC],
    ))?;
    // No DAD on the link-local address either, so the peer is usable as soon as it is up.
    run(&mut exec_in(
        client_ns,
        "sysctl",
        ["-w", "net.ipv6.conf.peer0.accept_dad=0"],
    ))?;
    run(&mut exec_in(
        client_ns,
        "ethtool",
        ["-K", CLIENT_IF, "tx", "off"],
    ))?;
    offloads_off(spec, client_ns, CLIENT_IF, &["gro", "tso", "gso"]);
    add_addrs(client_ns, CLIENT_IF, CLIENT_IP4, CLIENT_IP6)?;
    run(&mut ip_in(client_ns, ["link", "set", "dev", "lo", "up"]))?;
    run(&mut ip_in(
        client_ns,
        ["link", "set", "dev", CLIENT_IF, "up"],
    ))?;
    Ok(())
}

/// Builds the three namespaces of an impaired sandbox; pushes each one it creates.
fn build_impaired(
    spec: &SandboxSpec,
    server_ns: &str,
    client_ns: &str,
    mid_ns: &str,
    created: &mut Vec<String>,
) -> Result<(), SandboxError> {
    add_namespaces(&[server_ns, client_ns, mid_ns], created)?;
    add_veth(spec, (SERVER_IF, server_ns), (MID_SERVER_IF, mid_ns))?;
    add_veth(spec, (CLIENT_IF, client_ns), (MID_CLIENT_IF, mid_ns))?;
    configure_ends(spec, server_ns, client_ns)?;
    // Frames leave the server's kernel (a kernel peer beside the stack) through a userspace
    // forwarder that copies bytes: they must carry real checksums and be at most one MTU.
    run(&mut exec_in(
        server_ns,
        "ethtool",
        ["-K", SERVER_IF, "tx", "off"],
    ))?;
    offloads_off(spec, server_ns, SERVER_IF, &["tso", "gso", "gro"]);
    // The middle: no addresses, no IPv6 (its kernel must send nothing), no offloads that
    // would merge frames before the forwarder reads them.
    for key in ["all", "default"] {
        run(&mut exec_in(
            mid_ns,
            "sysctl",
            ["-w", &format!("net.ipv6.conf.{key}.disable_ipv6=1")],
        ))?;
    }
    run(&mut ip_in(mid_ns, ["link", "set", "dev", "lo", "up"]))?;
    for dev in [MID_SERVER_IF, MID_CLIENT_IF] {
        offloads_off(spec, mid_ns, dev, &["gro", "lro", "tso", "gso"]);
        run(&mut ip_in(
            mid_ns,
            ["link", "set", "dev", dev, "promisc", "on", "up"],
        ))?;
    }
    Ok(())
}

/// Starts `forwarder sandbox impair` in the middle namespace and waits until its sockets are
/// open. Its output goes to a file, so that no caller's pipe is held open by it.
fn start_forwarder(
    name: &str,
    mid_ns: &str,
    impair: &ImpairSpec,
    forwarder: &Path,
) -> Result<(), SandboxError> {
    let stats = impair_stats_path(name);
    let log_path = impair_log_path(name);
    let _ = std::fs::remove_file(&stats);
    let log = std::fs::File::create(&log_path).map_err(|e| SandboxError::Forwarder {
        detail: format!("{}: {e}", log_path.display()),
    })?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", mid_ns])
        .arg(forwarder)
        .args(["sandbox", "impair", "--client-if", MID_CLIENT_IF])
        .args(["--server-if", MID_SERVER_IF, "--report"])
        .arg(&stats)
        .args(impair.to_args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    let mut child = cmd.spawn().map_err(|source| SandboxError::Spawn {
        command: render(&cmd),
        source,
    })?;
    let deadline = Instant::now() + FORWARDER_READY;
    loop {
        if forwarder_stats(name).is_some_and(|s| s.ready) {
            // Reaped by whoever tears the sandbox down (it is killed by namespace); a thread
            // waits for it so that it never lingers as a zombie of a long-lived caller.
            thread::spawn(move || child.wait());
            return Ok(());
        }
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SandboxError::Forwarder {
                detail: format!(
                    "{} ({}): {}",
                    render(&cmd),
                    exited.map_or("not ready in time".to_string(), |s| s.to_string()),
                    std::fs::read_to_string(&log_path)
                        .unwrap_or_default()
                        .trim()
                ),
            });
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads the info of the sandbox `name` back from its interfaces.
fn read_info(name: &str) -> Result<SandboxInfo, SandboxError> {
    let (server_ns, client_ns) = ns_names(name);
    let server = link_details(&server_ns, SERVER_IF)?;
    let client = link_details(&client_ns, CLIENT_IF)?;
    Ok(SandboxInfo {
        name: name.to_string(),
        server_ns,
        client_ns,
        server_if: SERVER_IF.to_string(),
        client_if: CLIENT_IF.to_string(),
        server_mac: server.mac,
        client_mac: client.mac,
        server_ip4: SERVER_IP4.to_string(),
        client_ip4: CLIENT_IP4.to_string(),
        server_ip6: SERVER_IP6.to_string(),
        client_ip6: CLIENT_IP6.to_string(),
        queues: server.rx_queues,
    })
}

/// What we read back from `ip -j -d link show`.
struct LinkDetails {
    mac: String,
    rx_queues: u16,
}

fn link_details(ns: &str, dev: &str) -> Result<LinkDetails, SandboxError> {
    let mut cmd = ip_in(ns, ["-j", "-d", "link", "show", "dev", dev]);
    let out = run(&mut cmd)?;
    let bad = |detail: String| SandboxError::Output {
        command: render(&cmd),
        detail,
    };
    let json: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| bad(format!("not JSON: {e}")))?;
    let link = json
        .get(0)
        .ok_or_else(|| bad("empty link list".to_string()))?;
    let mac = link
        .get("address")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| bad("no \"address\"".to_string()))?
        .to_string();
    let rx_queues = link
        .get("num_rx_queues")
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| bad("no valid \"num_rx_queues\"".to_string()))?;
    Ok(LinkDetails { mac, rx_queues })
}

/// Deletes both namespaces of `name` that exist. `Ok(false)` if none did.
/// Tries both even if the first fails; reports the first error.
fn teardown(name: &str) -> Result<bool, SandboxError> {
    let (server_ns, client_ns) = ns_names(name);
    let present = netns_list()?;
    let mut found = false;
    let mut first_err = None;
    // The middle first: its forwarder stops before the ends disappear under it.
    for ns in [middle_ns(name), server_ns, client_ns] {
        if !present.contains(&ns) {
            continue;
        }
        found = true;
        if let Err(err) = remove_namespace(&ns) {
            first_err.get_or_insert(err);
        }
    }
    for path in [impair_stats_path(name), impair_log_path(name)] {
        let _ = std::fs::remove_file(path);
    }
    match first_err {
        None => Ok(found),
        Some(err) => Err(err),
    }
}

/// Kills processes left in `ns` (SIGTERM, up to 2 s grace, then SIGKILL) and deletes it.
fn remove_namespace(ns: &str) -> Result<(), SandboxError> {
    let kill_result = kill_processes(ns);
    let del = run(Command::new("ip").args(["netns", "del", ns]));
    match del {
        Ok(_) => kill_result,
        // Someone else removed it meanwhile: that is what we wanted.
        Err(_) if !netns_list()?.contains(ns) => kill_result,
        Err(err) => Err(err),
    }
}

fn kill_processes(ns: &str) -> Result<(), SandboxError> {
    let pids = netns_pids(ns)?;
    if pids.is_empty() {
        return Ok(());
    }
    let mut first_err = None;
    signal_all(ns, &pids, Signal::SIGTERM, &mut first_err);
    let deadline = Instant::now() + TERM_GRACE;
    let mut left = pids;
    while !left.is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        left = netns_pids(ns)?;
    }
    if !left.is_empty() {
        signal_all(ns, &left, Signal::SIGKILL, &mut first_err);
        // Give the kernel a moment to reap them before the namespace is deleted.
        let deadline = Instant::now() + Duration::from_millis(500);
        while !left.is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
            left = netns_pids(ns)?;
        }
    }
    match first_err {
        None => Ok(()),
        Some(err) => Err(err),
    }
}

fn signal_all(ns: &str, pids: &[Pid], signal: Signal, first_err: &mut Option<SandboxError>) {
    let me = getpid();
    for &pid in pids {
        // Never signal ourselves or init, whatever `ip netns pids` says.
        if pid == me || pid.as_raw() <= 1 {
            continue;
        }
        match kill(pid, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(errno) => {
                first_err.get_or_insert(SandboxError::Signal {
                    namespace: ns.to_string(),
                    pid: pid.as_raw(),
                    signal,
                    errno,
                });
            }
        }
    }
}

/// Pids of the processes whose network namespace is `ns`.
fn netns_pids(ns: &str) -> Result<Vec<Pid>, SandboxError> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "pids", ns]);
    let out = run(&mut cmd)?;
    out.split_whitespace()
        .map(|tok| {
            tok.parse::<i32>()
                .map(Pid::from_raw)
                .map_err(|_| SandboxError::Output {
                    command: render(&cmd),
                    detail: format!("not a pid: {tok:?}"),
                })
        })
        .collect()
}

/// All named network namespaces (`ip netns list`, first token of each line).
fn netns_list() -> Result<BTreeSet<String>, SandboxError> {
    let out = run(Command::new("ip").args(["netns", "list"]))?;
    Ok(out
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// `ip netns add` for each of `names`; pushes each one it creates onto `created`.
fn add_namespaces(names: &[&str], created: &mut Vec<String>) -> Result<(), SandboxError> {
    for ns in names {
        run(Command::new("ip").args(["netns", "add", ns]))?;
        created.push(ns.to_string());
    }
    Ok(())
}

/// A veth pair with `spec.queues` queues each way: `end` `(name, namespace)` and its `peer`.
fn add_veth(spec: &SandboxSpec, end: (&str, &str), peer: (&str, &str)) -> Result<(), SandboxError> {
    let q = spec.queues.to_string();
    let q = q.as_str();
    #[rustfmt::skip]
    run(Command::new("ip").args([
        "link", "add", end.0, "numtxqueues", q, "numrxqueues", q, "netns", end.1,
        "type", "veth",
        "peer", "name", peer.0, "numtxqueues", q, "numrxqueues", q, "netns", peer.1,
    ]))?;
    Ok(())
}

/// Adds an IPv4 and an IPv6 address (without duplicate address detection) to `dev` in `ns`.
fn add_addrs(ns: &str, dev: &str, ip4: &str, ip6: &str) -> Result<(), SandboxError> {
    run(&mut ip_in(ns, ["addr", "add", ip4, "dev", dev]))?;
    run(&mut ip_in(ns, ["addr", "add", ip6, "dev", dev, "nodad"]))?;
    Ok(())
}

/// `ethtool -K DEV FEATURE off` in `ns` for each feature; a failure is logged and ignored
/// (not every driver has every offload).
fn offloads_off(spec: &SandboxSpec, ns: &str, dev: &str, features: &[&str]) {
    for feature in features {
        if let Err(err) = run(&mut exec_in(ns, "ethtool", ["-K", dev, feature, "off"])) {
            log::debug!("sandbox {}: {err} (ignored)", spec.name);
        }
    }
}

/// `ip -n NS ARGS...`
fn ip_in<const N: usize>(ns: &str, args: [&str; N]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["-n", ns]).args(args);
    cmd
}

/// `ip netns exec NS PROGRAM ARGS...`
fn exec_in<const N: usize>(ns: &str, program: &str, args: [&str; N]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]).args(args);
    cmd
}

/// Runs `cmd` to completion and returns its stdout; a failure names the command.
fn run(cmd: &mut Command) -> Result<String, SandboxError> {
    log::debug!("run: {}", render(cmd));
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().map_err(|source| SandboxError::Spawn {
        command: render(cmd),
        source,
    })?;
    if status.success() {
        Ok(String::from_utf8_lossy(&stdout).into_owned())
    } else {
        Err(SandboxError::Command {
            command: render(cmd),
            status: status.to_string(),
            stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
        })
    }
}

/// The command line of `cmd`, for messages.
fn render(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `program` is an executable file in one of the PATH directories.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        let file = dir.join(program);
        file.is_file()
            && file
                .metadata()
                .is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
    })
}

/// `198.18.0.1/24` -> `198.18.0.1`.
fn strip_prefix_len(addr: &str) -> &str {
    addr.split_once('/').map_or(addr, |(a, _)| a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn unique_name() -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        format!(
            "t{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        )
    }

    use testkit::privileged;

    fn sample_info() -> SandboxInfo {
        let (server_ns, client_ns) = ns_names("demo");
        SandboxInfo {
            name: "demo".to_string(),
            server_ns,
            client_ns,
            server_if: SERVER_IF.to_string(),
            client_if: CLIENT_IF.to_string(),
            server_mac: SERVER_MAC.to_string(),
            client_mac: CLIENT_MAC.to_string(),
            server_ip4: SERVER_IP4.to_string(),
            client_ip4: CLIENT_IP4.to_string(),
            server_ip6: SERVER_IP6.to_string(),
            client_ip6: CLIENT_IP6.to_string(),
            queues: 4,
        }
    }

    #[test]
    fn names_are_validated() {
        for ok in ["xdpstack", "a", "t123x0", "a-b-c", "0", &"z".repeat(24)] {
            assert!(validate_name(ok).is_ok(), "{ok:?} should be accepted");
        }
        for bad in ["", "Xdp", "a_b", "a b", "a/b", "é", "a.b", &"z".repeat(25)] {
            assert!(
                matches!(validate_name(bad), Err(SandboxError::InvalidName { .. })),
                "{bad:?} should be rejected"
            );
        }
        assert_eq!(
            ns_names("t1x2"),
            ("xs-t1x2-srv".to_string(), "xs-t1x2-cli".to_string())
        );
    }

    #[test]
    fn bad_specs_are_rejected_before_touching_the_system() {
        let spec = SandboxSpec {
            name: "Bad Name".to_string(),
            queues: 1,
        };
        assert!(matches!(
            Sandbox::up(&spec),
            Err(SandboxError::InvalidName { .. })
        ));
        for queues in [0, 65] {
            let spec = SandboxSpec {
                name: "ok".to_string(),
                queues,
            };
            assert!(matches!(
                Sandbox::up(&spec),
                Err(SandboxError::InvalidQueues(q)) if q == queues
            ));
        }
        assert!(matches!(
            down("no/slash"),
            Err(SandboxError::InvalidName { .. })
        ));
        assert!(matches!(attach(""), Err(SandboxError::InvalidName { .. })));
    }

    #[test]
    fn info_is_formatted() {
        let text = format_info(&sample_info());
        for needle in [
            "sandbox demo (4 queues",
            "xs-demo-srv",
            "xs-demo-cli",
            "xdp0",
            "peer0",
            "02:78:73:00:00:01",
            "02:78:73:00:00:02",
            "198.18.0.1/24",
            "198.18.0.2/24",
            "2001:db8:18::1/64",
            "2001:db8:18::2/64",
            "ip netns exec xs-demo-cli curl http://198.18.0.1/",
            "http://[2001:db8:18::1]/",
            "xdpstack sandbox down --name demo",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
        assert!(!text.ends_with('\n'));
    }

    #[test]
    fn errors_name_the_command() {
        let err = run(Command::new("sh").args(["-c", "echo oops >&2; exit 3"]))
            .expect_err("command fails");
        let msg = err.to_string();
        assert!(msg.contains("sh -c echo oops >&2; exit 3"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.ends_with(": oops"), "{msg}");
        let err = run(&mut Command::new("/nonexistent/xdpstack-tool")).expect_err("no such file");
        assert!(matches!(err, SandboxError::Spawn { .. }), "{err}");
        let msg = SandboxError::AlreadyExists {
            name: "n".to_string(),
        }
        .to_string();
        assert_eq!(
            msg,
            "sandbox n already exists; run `xdpstack sandbox down --name n`"
        );
    }

    #[test]
    fn sandbox_lifecycle() {
        if !privileged() {
            return;
        }
        ensure_tools().expect("ip and ethtool available");
        let spec = SandboxSpec {
            name: unique_name(),
            queues: 2,
        };
        let sandbox = Sandbox::up(&spec).expect("sandbox up");
        let info = sandbox.info().clone();
        assert_eq!(info.queues, 2);
        assert_eq!(info.server_mac, SERVER_MAC);
        assert_eq!(info.client_mac, CLIENT_MAC);

        let present = leftovers().expect("leftovers");
        assert!(present.contains(&info.server_ns), "{present:?}");
        assert!(present.contains(&info.client_ns), "{present:?}");

        // A second sandbox with the same name is refused, and the refusal removes nothing.
        match Sandbox::up(&spec) {
            Err(err @ SandboxError::AlreadyExists { .. }) => {
                assert!(err.to_string().contains("sandbox down --name"), "{err}");
            }
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        assert_eq!(attach(&spec.name).expect("attach"), info);

        let out = sandbox
            .command(Side::Server, "ls")
            .arg("/sys/class/net/xdp0/queues")
            .output()
            .expect("ls queues");
        assert!(out.status.success(), "{out:?}");
        let queues = String::from_utf8_lossy(&out.stdout);
        let rx: Vec<&str> = queues
            .split_whitespace()
            .filter(|q| q.starts_with("rx-"))
            .collect();
        assert_eq!(rx, ["rx-0", "rx-1"], "{queues}");

        let out = sandbox
            .command(Side::Client, "ethtool")
            .args(["-k", "peer0"])
            .output()
            .expect("ethtool -k");
        assert!(out.status.success(), "{out:?}");
        let features = String::from_utf8_lossy(&out.stdout);
        assert!(
            features.lines().any(|l| l.trim() == "tx-checksumming: off"),
            "{features}"
        );

        // A process left running inside is killed by the teardown.
        let mut sleeper = sandbox
            .command(Side::Client, "sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");

        drop(sandbox);
        let status = sleeper.wait().expect("wait sleep");
        assert!(!status.success(), "sleep was not killed: {status}");

        let present = leftovers().expect("leftovers");
        assert!(!present.contains(&info.server_ns), "{present:?}");
        assert!(!present.contains(&info.client_ns), "{present:?}");
        assert!(
            !down(&spec.name).expect("down again"),
            "teardown is idempotent"
        );
        assert!(matches!(
            attach(&spec.name),
            Err(SandboxError::NotFound { .. })
        ));
    }

    #[test]
    fn keep_then_down_by_name() {
        if !privileged() {
            return;
        }
        let spec = SandboxSpec {
            name: unique_name(),
            queues: 1,
        };
        let info = Sandbox::up(&spec).expect("sandbox up").keep();
        // Kept: still there after the Sandbox value is gone.
        let present = leftovers().expect("leftovers");
        assert!(present.contains(&info.server_ns), "{present:?}");
        assert!(down(&spec.name).expect("down"));
        let present = leftovers().expect("leftovers");
        assert!(!present.contains(&info.server_ns), "{present:?}");
        assert!(!present.contains(&info.client_ns), "{present:?}");
    }
}
