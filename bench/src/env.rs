//! The runner's environment: the machine, the peer tools (installed with apt when missing), the
//! binaries, and the sandboxes every scenario runs in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lab::sandbox::{Sandbox, SandboxSpec, Side};

use crate::model::Meta;
use crate::procs::{self, err, BenchError, Result};

/// The repository root (the workspace this crate lives in).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where results are written.
pub fn results_dir() -> PathBuf {
    repo_root().join("bench").join("results")
}

fn sh(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).to_string();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.trim().to_string()
        })
        .unwrap_or_default()
}

/// The build profile of this binary ("release" or "debug"), from its path.
pub fn profile() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let parent = exe
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("unknown");
    parent.to_string()
}

/// Machine and build facts.
pub fn meta(quick: bool, runs: usize) -> Meta {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mut tools = BTreeMap::new();
    tools.insert("nginx".into(), sh("nginx", &["-v"]));
    tools.insert(
        "wrk".into(),
        sh("wrk", &["-v"]).lines().next().unwrap_or("").to_string(),
    );
    tools.insert(
        "ab".into(),
        sh("ab", &["-V"]).lines().next().unwrap_or("").to_string(),
    );
    tools.insert(
        "knotd".into(),
        sh("knotd", &["-V"])
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
    );
    Meta {
        date: sh("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]),
        kernel: sh("uname", &["-r"]),
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model,
        mem_total_kib: crate::parse::proc_kib(&meminfo, "MemTotal").unwrap_or(0),
        profile: profile(),
        git: sh(
            "git",
            &[
                "-C",
                &repo_root().display().to_string(),
                "describe",
                "--always",
                "--dirty",
            ],
        ),
        quick,
        runs,
        loadavg_before: loadavg(),
        tools,
    }
}

/// The 1, 5 and 15-minute load averages, as /proc/loadavg writes them ("0.12 0.30 0.25").
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits, at most `max`, for the 1-minute load average to fall below `below`; returns how
/// long it waited (`max` when it never did).
pub fn settle(max: Duration, below: f64) -> Result<Duration> {
    let t0 = Instant::now();
    while loadavg1() >= below && t0.elapsed() < max {
        procs::sleep(Duration::from_secs(2).min(max.saturating_sub(t0.elapsed())))?;
    }
    Ok(t0.elapsed())
}

/// The 1-minute load average (0 if unreadable).
pub fn loadavg1() -> f64 {
    loadavg()
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            let f = d.join(tool);
            f.is_file()
        })
    })
}

/// Makes sure the peer tools are there: installs the Debian packages of the missing ones
/// (services are not started: RUNLEVEL=1). `tools` are (program, package).
pub fn ensure_tools(tools: &[(&str, &str)]) -> Result<()> {
    lab::sandbox::ensure_tools()?;
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(prog, _)| !on_path(prog) && !Path::new("/usr/sbin").join(prog).is_file())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // Package setup lives in the scripts: scripts/deps.sh installs the
    // missing ones (services not started).
    let deps = repo_root().join("scripts/deps.sh");
    let st = Command::new("bash")
        .arg(&deps)
        .arg("install")
        .args(&missing)
        .status()?;
    if st.success() {
        Ok(())
    } else {
        err(format!(
            "{} install {} failed: {st}",
            deps.display(),
            missing.join(" ")
        ))
    }
}

/// Paths of the binaries the runner starts.
#[derive(Clone, Debug)]
pub struct Bins {
    /// `xdpstack` (the stack's command).
    pub xdpstack: String,
    /// This binary, for the helpers (kernel servers and load generators).
    pub bench: String,
}

/// Builds the `xdpstack` binary with the same profile as this one (cargo run builds only the
/// library for us) and returns both paths.
pub fn bins() -> Result<Bins> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| BenchError::Msg("no binary directory".into()))?;
    let prof = profile();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(repo_root())
        .args(["build", "-q", "-p", "xdpstack", "--bin", "xdpstack"]);
    if prof == "release" {
        cmd.arg("--release");
    }
    eprintln!("building the xdpstack binary ({prof})");
    let st = cmd.status();
    let xdp = dir.join("xdpstack");
    match st {
        Ok(s) if s.success() => {}
        other => {
            if !xdp.is_file() {
                return err(format!(
                    "cannot build xdpstack ({other:?}) and {} is missing",
                    xdp.display()
                ));
            }
            eprintln!(
                "warning: cargo build failed ({other:?}); using {}",
                xdp.display()
            );
        }
    }
    Ok(Bins {
        xdpstack: xdp.display().to_string(),
        bench: exe.display().to_string(),
    })
}

/// A sandbox name unique to this run: `b<pid><tag>`.
pub fn sandbox_name(tag: &str) -> String {
    format!("b{}{tag}", std::process::id())
}

/// How the server side of a sandbox is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerSide {
    /// The stack owns `xdp0`: the kernel has no address on it.
    Stack,
    /// A kernel server: `198.18.0.1/24` on `xdp0`, tx checksum offload off.
    Kernel,
}

/// Builds a sandbox with `queues` queues, set up for `side`. The client gets a permanent
/// neighbour entry for the server (the raw reflector answers no ARP) and, for the kernel
/// side, the server gets one for the client.
pub fn sandbox(tag: &str, queues: u16, side: ServerSide) -> Result<Sandbox> {
    let sb = Sandbox::up(&SandboxSpec {
        name: sandbox_name(tag),
        queues,
    })?;
    let info = sb.info().clone();
    let ip4 = |a: &str| a.split('/').next().unwrap_or(a).to_string();
    run_in(
        &sb,
        Side::Client,
        "ip",
        &[
            "neigh",
            "replace",
            &ip4(&info.server_ip4),
            "lladdr",
            &info.server_mac,
            "dev",
            &info.client_if,
            "nud",
            "permanent",
        ],
    )?;
    if side == ServerSide::Kernel {
        run_in(
            &sb,
            Side::Server,
            "ip",
            &["addr", "add", &info.server_ip4, "dev", &info.server_if],
        )?;
        run_in(
            &sb,
            Side::Server,
            "ethtool",
            &["-K", &info.server_if, "tx", "off"],
        )?;
        run_in(
            &sb,
            Side::Server,
            "ip",
            &[
                "neigh",
                "replace",
                &ip4(&info.client_ip4),
                "lladdr",
                &info.client_mac,
                "dev",
                &info.server_if,
                "nud",
                "permanent",
            ],
        )?;
    }
    // Short connections by the ten thousand: let the client use the whole port range and
    // reuse TIME_WAIT ports (per-namespace settings).
    run_in(
        &sb,
        Side::Client,
        "sysctl",
        &["-q", "-w", "net.ipv4.ip_local_port_range=1024 65535"],
    )?;
    run_in(
        &sb,
        Side::Client,
        "sysctl",
        &["-q", "-w", "net.ipv4.tcp_tw_reuse=1"],
    )?;
    Ok(sb)
}

/// Runs a command in one side of a sandbox and fails with its stderr if it fails.
pub fn run_in(sb: &Sandbox, side: Side, program: &str, args: &[&str]) -> Result<String> {
    let out = sb.command(side, program).args(args).output()?;
    if !out.status.success() {
        return err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// A fresh scratch directory for one scenario's configs and process output.
pub fn scratch(scenario: &str) -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("xdpstack-bench-{}-{scenario}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Waits until something listens on TCP `port` in the sandbox's client view: a connect from
/// the client namespace succeeds.
pub fn wait_tcp(sb: &Sandbox, addr: &str, port: u16, limit: Duration) -> Result<bool> {
    crate::procs::wait_until(limit, || {
        sb.command(Side::Client, "timeout")
            .args([
                "1",
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/{addr}/{port} && exec 3>&- 3<&-"),
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Whether the scenarios put each side's receive processing on its own cores with RPS
/// (`XDPSTACK_BENCH_RPS=on`; off by default: the kernel's default placement, in which the
/// targets were set).
///
/// On a veth the sender's transmit queues each packet on the backlog of the *sending* CPU
/// (`veth_xmit` -> `__netif_rx`), so without RPS the client's kernel TCP receive work for every
/// response runs on the server's core, and a kernel server's receive work for every request
/// runs on the load generator's core: each is charged the other's work. RPS on each end's
/// receive queues moves that work to the receiver's cores, as a NIC's interrupt affinity does
/// on two real machines. One asymmetry stays: a native XDP program on a veth runs in the
/// sender's NAPI context, so the stack's XDP redirect and copy into the UMEM run on the load
/// generator's core (a kernel server's whole receive path moves to its core).
pub fn rps_enabled() -> bool {
    std::env::var("XDPSTACK_BENCH_RPS").is_ok_and(|v| v == "on" || v == "1")
}

/// A CPU list ("0", "1,3", "0-2") as the hex mask sysfs takes.
pub fn cpu_mask(list: &str) -> Option<String> {
    let mut mask: u64 = 0;
    for part in list.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?),
            None => {
                let a = part.trim().parse::<u32>().ok()?;
                (a, a)
            }
        };
        if a > b || b >= 64 {
            return None;
        }
        for c in a..=b {
            mask |= 1 << c;
        }
    }
    (mask != 0).then(|| format!("{mask:x}"))
}

/// Where receive work runs, for the report (see [`rps_enabled`]).
pub fn rps_note(server_cpus: &str, client_cpus: &str) -> String {
    if rps_enabled() {
        format!(
            "RPS puts each end's receive processing on its own cores (server interface: \
             {server_cpus}, client interface: {client_cpus}; XDPSTACK_BENCH_RPS=on); a native \
             XDP program on a veth still runs in the sender's context, so the stack's XDP \
             redirect and UMEM copy run on the load core"
        )
    } else {
        format!(
            "No RPS (the kernel's default; XDPSTACK_BENCH_RPS=on moves receive work to the \
             receiver's cores): a veth runs each packet's receive processing on the sending \
             core, so the client's kernel TCP receive work for every reply runs on the server's \
             core {server_cpus}, and a kernel server's receive work for every request (and the \
             stack's XDP redirect and UMEM copy) on the load core {client_cpus}"
        )
    }
}

/// Steers the receive processing of each end of `sb` to its own cores with RPS (see
/// [`rps_enabled`]): the server's interface to `server_cpus`, the client's to `client_cpus`.
/// Returns [`rps_note`]'s sentence for the report.
pub fn receive_on_own_cores(sb: &Sandbox, server_cpus: &str, client_cpus: &str) -> Result<String> {
    if rps_enabled() {
        let info = sb.info().clone();
        for (side, iface, cpus) in [
            (Side::Server, &info.server_if, server_cpus),
            (Side::Client, &info.client_if, client_cpus),
        ] {
            let Some(mask) = cpu_mask(cpus) else {
                return err(format!("bad CPU list {cpus:?}"));
            };
            let script = format!(
                "for q in /sys/class/net/{iface}/queues/rx-*; do echo {mask} > $q/rps_cpus || exit 1; done"
            );
            run_in(sb, side, "sh", &["-c", &script])?;
        }
    }
    Ok(rps_note(server_cpus, client_cpus))
}

/// One single-queue [`sandbox`] for each `(tag, side)`, all of them up before each end of each
/// [`receive_on_own_cores`]; returns them in that order, with [`rps_note`]'s sentence.
pub fn sandboxes<const N: usize>(
    specs: [(&str, ServerSide); N],
    server_cpus: &str,
    client_cpus: &str,
) -> Result<([Sandbox; N], String)> {
    let mut sbs = Vec::with_capacity(N);
    for (tag, side) in specs {
        sbs.push(sandbox(tag, 1, side)?);
    }
    for sb in &sbs {
        receive_on_own_cores(sb, server_cpus, client_cpus)?;
    }
    let Ok(sbs) = <[Sandbox; N]>::try_from(sbs) else {
        unreachable!("one sandbox per spec")
    };
    Ok((sbs, rps_note(server_cpus, client_cpus)))
}

const ALLOWED_CC: &str = "/proc/sys/net/ipv4/tcp_allowed_congestion_control";

/// Allows cubic in the root namespace for the run (a namespace may only pick an allowed
/// one); the list is restored on drop (also on an error or Ctrl-C).
pub struct AllowCc {
    old: Option<String>,
}

impl AllowCc {
    /// Allows `ccs` (e.g. `cubic`) besides what is allowed now.
    pub fn new(ccs: &[String]) -> Result<AllowCc> {
        let old = std::fs::read_to_string(ALLOWED_CC)?.trim().to_string();
        let missing: Vec<&String> = ccs
            .iter()
            .filter(|c| !old.split_whitespace().any(|o| o == c.as_str()))
            .collect();
        if missing.is_empty() {
            return Ok(AllowCc { old: None });
        }
        let _ = std::process::Command::new("modprobe")
            .arg("tcp_cubic")
            .output();
        let new = format!(
            "{old} {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        std::fs::write(ALLOWED_CC, &new).map_err(|e| {
            crate::procs::BenchError::Msg(format!("cannot allow `{new}` in {ALLOWED_CC}: {e}"))
        })?;
        eprintln!(
            "   allowed congestion controls for the run: `{new}` (restored after; by hand: \
             sysctl -w net.ipv4.tcp_allowed_congestion_control=\"{old}\")"
        );
        Ok(AllowCc { old: Some(old) })
    }
}

impl Drop for AllowCc {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            if let Err(e) = std::fs::write(ALLOWED_CC, old) {
                eprintln!("warning: could not restore {ALLOWED_CC} to `{old}`: {e}");
            }
        }
    }
}

/// Sets the kernel's congestion control in both ends' namespaces.
pub fn set_cc(sb: &Sandbox, cc: &str) -> Result<()> {
    let kv = format!("net.ipv4.tcp_congestion_control={cc}");
    for side in [Side::Server, Side::Client] {
        run_in(sb, side, "sysctl", &["-q", "-w", &kv])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cpu_mask;

    #[test]
    fn cpu_lists_become_masks() {
        assert_eq!(cpu_mask("0").as_deref(), Some("1"));
        assert_eq!(cpu_mask("1").as_deref(), Some("2"));
        assert_eq!(cpu_mask("0-1").as_deref(), Some("3"));
        assert_eq!(cpu_mask("1,4-5").as_deref(), Some("32"));
        assert_eq!(cpu_mask(""), None);
        assert_eq!(cpu_mask("2-1"), None);
        assert_eq!(cpu_mask("x"), None);
        assert_eq!(cpu_mask("64"), None);
    }
}
