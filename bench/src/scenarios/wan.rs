//! Scenario `wan`: download time over a path that looks like the internet (issue 19): RTT
//! {2, 20, 50, 200 ms} x loss {0, 0.1%, 1%, 3%} x {one 100 MiB file; 100 parallel 1 MiB; 1,000
//! sequential 10 KiB on one keep-alive connection}, through the impairing forwarder with a
//! bottleneck (100 Mbit/s each way, a 100 ms tail-drop queue), `xdpstack http --root DIR` with
//! its default settings beside nginx serving the same files on the same path, nginx measured
//! with the kernel's cubic and with its BBR. The forwarder's own ceiling (kernel to kernel
//! through it, no impairment) is measured first and written beside every case.
//!
//! Clients are curl in the client namespace (one connection for the file and for the
//! sequential case, `--parallel` for the parallel one); every file is compared byte for byte
//! with the one served (a download the time limit cut, on what arrived: cubic at 1% loss moves
//! a few Mbit/s, and a cell where the kernel's cubic is cut too is compared on the bytes each
//! got within the limit). While a download runs, `ss -ti` in the client namespace is sampled
//! every 200 ms: the longest a connection went without receiving anything (`lastrcv`) over the
//! client's RTO for it (`rto`) is reported (issue 19: at most two RTOs), while it has not
//! received all its file yet (curl keeps finished connections open and silent in its pool).
//!
//! Selecting a subset (environment): `XDPSTACK_BENCH_WAN_RTTS=2,20,50,200` (ms),
//! `XDPSTACK_BENCH_WAN_LOSS=0,0.1,1,3` (%), `XDPSTACK_BENCH_WAN_LOADS=file,parallel,seq`,
//! `XDPSTACK_BENCH_WAN_CC=cubic,bbr`, `XDPSTACK_BENCH_WAN_RATE=100mbit`,
//! `XDPSTACK_BENCH_WAN_QUEUE=100ms` (or a size, `150KB`), `XDPSTACK_BENCH_WAN_LIMIT=300s`
//! (each download's time limit). `--quick`: RTT 50 ms x loss {0, 1%} x {file, parallel}, one
//! run, a 120 s limit. `XDPSTACK_BENCH_WAN_RTTS=none` skips the matrix.
//! `XDPSTACK_BENCH_WAN_MERGE=1` keeps the cases of the earlier results file that this run does
//! not measure (the full matrix with 3 runs takes about 5 hours: it can be taken a row at a
//! time); every case says when, at what commit and with how many runs it was measured.
//!
//! Each server (nginx per kernel cc, the stack with its defaults, the stack with `--cc bbr`)
//! is started once per cell and serves all the runs of it.
//!
//! Two more cases follow the matrix (`XDPSTACK_BENCH_WAN_EXTRA=share,p99`, both by default, in
//! `wan_extra.rs`): a stack flow alone and beside a kernel cubic flow on a one-BDP bottleneck,
//! and the p50/p99 completion time of 10 KiB responses on new connections at 1% loss.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lab::impair::{self, ImpairSpec, QueueLimit, SplitMix64};
use lab::sandbox::{self, Sandbox, SandboxSpec, Side};

use crate::common::{self, Ctx};
use crate::env;
use crate::model::{Case, Metrics, ScenarioResult, Subject, Target};
use crate::procs::{self, err, Proc, Result};

pub(super) const STACK_IP: &str = "10.112.0.1";
pub(super) const KERNEL_IP: &str = "10.112.0.3";
pub(super) const STACK: &str = "xdpstack (defaults, cc cubic)";
const STACK_BBR: &str = "xdpstack --cc bbr";
const CEILING: &str = "forwarder ceiling";

/// The targets `add_targets` computes over the matrix's cells (a merge computes them again).
const T_CUBIC: &str = "download time vs nginx with the kernel's cubic, worst cell";
const T_BBR: &str = "download time, xdpstack --cc bbr vs nginx with the kernel's BBR, worst cell";
const T_EXACT: &str = "xdpstack downloads complete and byte-exact in every cell and run (where \
                       the limit cut the kernel's cubic too, every byte that arrived right)";
const T_GAP: &str = "longest time without progress over the RTO, xdpstack, worst run";

/// One of the three downloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// One 100 MiB file.
    File,
    /// 100 files of 1 MiB in parallel (100 connections).
    Parallel,
    /// 1,000 files of 10 KiB one after the other on one keep-alive connection.
    Seq,
}

impl Load {
    fn parse(s: &str) -> Option<Load> {
        match s.trim() {
            "file" => Some(Load::File),
            "parallel" => Some(Load::Parallel),
            "seq" => Some(Load::Seq),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Load::File => "one 100 MiB file",
            Load::Parallel => "100 parallel 1 MiB",
            Load::Seq => "1,000 sequential 10 KiB, one connection",
        }
    }

    /// (URL path, size) of every file of this load.
    pub(super) fn files(self) -> Vec<(String, usize)> {
        match self {
            Load::File => vec![("big/f100m".into(), 100 << 20)],
            Load::Parallel => (0..100)
                .map(|i| (format!("par/p{i:03}"), 1 << 20))
                .collect(),
            Load::Seq => (0..1000)
                .map(|i| (format!("seq/s{i:04}"), 10 << 10))
                .collect(),
        }
    }
}

/// The matrix to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// Round-trip times (split evenly over the two directions).
    pub rtts: Vec<Duration>,
    /// Loss each way, as a fraction.
    pub losses: Vec<f64>,
    /// Downloads.
    pub loads: Vec<Load>,
    /// Kernel congestion controls nginx is measured with.
    pub ccs: Vec<String>,
    /// Bottleneck rate, bit/s.
    pub rate_bps: u64,
    /// Bottleneck queue.
    pub queue: QueueLimit,
    /// Time limit of one download.
    pub limit: Duration,
}

/// The matrix from the environment (see the module's doc), full or quick.
pub fn matrix(quick: bool, get: impl Fn(&str) -> Option<String>) -> Result<Matrix> {
    let pick = |var: &str, full: &str, q: &str| {
        get(var).unwrap_or_else(|| if quick { q } else { full }.to_string())
    };
    let rtts = pick("XDPSTACK_BENCH_WAN_RTTS", "2,20,50,200", "50");
    let losses = pick("XDPSTACK_BENCH_WAN_LOSS", "0,0.1,1,3", "0,1");
    let loads = pick(
        "XDPSTACK_BENCH_WAN_LOADS",
        "file,parallel,seq",
        "file,parallel",
    );
    let ccs = pick("XDPSTACK_BENCH_WAN_CC", "cubic,bbr", "cubic,bbr");
    let rate = pick("XDPSTACK_BENCH_WAN_RATE", "100mbit", "100mbit");
    let queue = pick("XDPSTACK_BENCH_WAN_QUEUE", "100ms", "100ms");
    let limit = pick("XDPSTACK_BENCH_WAN_LIMIT", "300s", "120s");
    let bad = |what: &str, v: &str| procs::BenchError::Msg(format!("wan: bad {what} `{v}`"));
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty() && *x != "none")
            .map(String::from)
            .collect()
    };
    let m = Matrix {
        rtts: split(&rtts)
            .iter()
            .map(|s| {
                s.parse::<f64>()
                    .ok()
                    .filter(|v| (0.0..=20_000.0).contains(v))
                    .map(|ms| Duration::from_secs_f64(ms / 1000.0))
                    .ok_or_else(|| bad("RTT (ms)", s))
            })
            .collect::<Result<_>>()?,
        losses: split(&losses)
            .iter()
            .map(|s| {
                s.parse::<f64>()
                    .ok()
                    .filter(|v| (0.0..=100.0).contains(v))
                    .map(|p| p / 100.0)
                    .ok_or_else(|| bad("loss (%)", s))
            })
            .collect::<Result<_>>()?,
        loads: split(&loads)
            .iter()
            .map(|s| Load::parse(s).ok_or_else(|| bad("load (file, parallel, seq)", s)))
            .collect::<Result<_>>()?,
        ccs: split(&ccs)
            .into_iter()
            .map(|s| {
                if s == "cubic" || s == "bbr" || s == "reno" {
                    Ok(s)
                } else {
                    Err(bad("congestion control", &s))
                }
            })
            .collect::<Result<_>>()?,
        rate_bps: impair::parse_bitrate(&rate).map_err(|e| bad("rate", &e.to_string()))?,
        queue: impair::parse_queue(&queue).map_err(|e| bad("queue", &e.to_string()))?,
        limit: runtime::duration::parse_within(
            &limit,
            Duration::from_secs(1),
            Duration::from_secs(7200),
        )
        .map_err(|_| bad("limit", &limit))?,
    };
    // `XDPSTACK_BENCH_WAN_RTTS=none` skips the matrix (the extra cases still run).
    if m.losses.is_empty() || m.loads.is_empty() || m.ccs.is_empty() {
        return err("wan: an empty matrix (LOSS, LOADS and CC each need a value)");
    }
    Ok(m)
}

/// Deterministic contents of a served file.
fn contents(path: &str, len: usize) -> Vec<u8> {
    let seed = path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = SplitMix64::new(seed);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Writes the files of `loads` under `root`.
fn write_root(root: &Path, loads: &[Load]) -> Result<()> {
    for l in loads {
        for (p, len) in l.files() {
            let path = root.join(&p);
            if let Some(d) = path.parent() {
                std::fs::create_dir_all(d)?;
            }
            std::fs::write(path, contents(&p, len))?;
        }
    }
    Ok(())
}

/// A started server, or `None` with the error noted on subject `si` of every case (the
/// cell goes on without it); Ctrl-C ends the scenario.
fn started_or_noted(started: Result<Proc>, cases: &mut [Case], si: usize) -> Result<Option<Proc>> {
    match started {
        Ok(p) => Ok(Some(p)),
        Err(procs::BenchError::Interrupted) => Err(procs::BenchError::Interrupted),
        Err(e) => {
            for c in cases {
                c.subjects[si].errors.push(format!("every run: {e}"));
            }
            Ok(None)
        }
    }
}

/// nginx serving `root` on KERNEL_IP:80 (sendfile, keep-alive without a request limit).
pub(super) fn start_nginx(
    sb: &Sandbox,
    cpu: &str,
    root: &Path,
    dir: &Path,
    tag: &str,
) -> Result<Proc> {
    let d = dir.join(format!("nginx-{tag}"));
    std::fs::create_dir_all(&d)?;
    let ds = d.display().to_string();
    let conf = format!(
        r#"daemon off;
master_process on;
worker_processes 1;
pid {ds}/nginx.pid;
error_log {ds}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    {temp}
    server {{
        listen {KERNEL_IP}:80 reuseport;
        root {root};
    }}
}}
"#,
        root = root.display(),
        temp = common::nginx_temp_paths(&d),
    );
    let path = d.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let mut p = Proc::spawn(
        "nginx",
        &sb.info().server_ns,
        cpu,
        "nginx",
        &common::strings(&["-p", &ds, "-c", &path.display().to_string()]),
        dir,
    )?;
    if !env::wait_tcp(sb, KERNEL_IP, 80, Duration::from_secs(10))? || !p.running() {
        let log = std::fs::read_to_string(d.join("error.log")).unwrap_or_default();
        return err(format!(
            "nginx did not come up: {} {}",
            p.stderr_tail(),
            procs::tail(&log, 3)
        ));
    }
    Ok(p)
}

/// `xdpstack http --root DIR` with default settings (only the interface, address and report).
pub(super) fn start_stack(
    ctx: &Ctx,
    sb: &Sandbox,
    root: &Path,
    dir: &Path,
    stats: &Path,
    extra: &[&str],
) -> Result<Proc> {
    let mut args = common::strings(&[
        "http",
        "--iface",
        "xdp0",
        "--addr",
        "10.112.0.1/24",
        "--root",
        &root.display().to_string(),
        "--report",
        &stats.display().to_string(),
    ]);
    args.extend(common::strings(extra));
    let p = Proc::spawn_env(
        "xdpstack http",
        &sb.info().server_ns,
        &ctx.server_cpu(),
        &ctx.bins.xdpstack,
        &args,
        dir,
        &[("RUST_LOG", "warn")],
    )?;
    if !env::wait_tcp(sb, STACK_IP, 80, Duration::from_secs(30))? {
        return err(format!(
            "xdpstack http did not come up: {}",
            p.stderr_tail()
        ));
    }
    Ok(p)
}

/// Longest time without receiving over the RTO, per `ss -tinH` line: (lastrcv ms, rto ms).
/// One connection of `ss -ti`: ms since it last received, its RTO (ms), bytes received.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SsConn {
    pub lastrcv: f64,
    pub rto: f64,
    pub bytes_received: f64,
}

pub fn parse_ss(text: &str) -> Vec<SsConn> {
    let field = |line: &str, key: &str| -> Option<f64> {
        line.split_whitespace()
            .find_map(|t| t.strip_prefix(key))
            .and_then(|v| v.parse::<f64>().ok())
    };
    // Each connection is an address line followed by an indented info line.
    text.lines()
        .filter_map(|l| {
            Some(SsConn {
                lastrcv: field(l, "lastrcv:")?,
                rto: field(l, "rto:")?,
                bytes_received: field(l, "bytes_received:").unwrap_or(0.0),
            })
        })
        .collect()
}

/// Samples `ss -ti` in the client namespace while a download runs. A connection that has
/// received `done_at` bytes has its file: curl keeps it open, silent, in its pool until it
/// exits (`--parallel`: until the last of the 100 transfers ends), which is no stall; before
/// that, every silence counts.
struct StallWatch {
    stop: Arc<AtomicBool>,
    worst: Arc<Mutex<(f64, f64)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StallWatch {
    fn start(ns: &str, dst: &str, done_at: f64) -> StallWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let worst = Arc::new(Mutex::new((0.0f64, 0.0f64)));
        let (s, w, ns, filter) = (
            stop.clone(),
            worst.clone(),
            ns.to_string(),
            format!("dst {dst}"),
        );
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let out = std::process::Command::new("timeout")
                    .args(["2", "ip", "netns", "exec", &ns, "ss", "-tinH"])
                    .args(["state", "established", &filter])
                    .output();
                if let Ok(o) = out {
                    let conns = parse_ss(&String::from_utf8_lossy(&o.stdout));
                    for c in conns.iter().filter(|c| c.bytes_received < done_at) {
                        if let Ok(mut g) = w.lock() {
                            g.0 = g.0.max(c.lastrcv);
                            if c.rto > 0.0 {
                                g.1 = g.1.max(c.lastrcv / c.rto);
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        StallWatch {
            stop,
            worst,
            thread: Some(thread),
        }
    }

    /// Stops sampling: (longest gap ms, longest gap over the RTO).
    fn finish(mut self) -> (f64, f64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.worst.lock().map(|g| *g).unwrap_or_default()
    }
}

impl Drop for StallWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The TCP counters of `ns`'s kernel (/proc/net/snmp's `Tcp:` and /proc/net/netstat's
/// `TcpExt:` lines), by name; empty if they cannot be read.
fn kernel_tcp_counters(ns: &str) -> std::collections::BTreeMap<String, u64> {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "cat",
            "/proc/net/snmp",
            "/proc/net/netstat",
        ])
        .output();
    out.map(|o| parse_proc_counters(&String::from_utf8_lossy(&o.stdout), &["Tcp:", "TcpExt:"]))
        .unwrap_or_default()
}

/// /proc/net/snmp-style text: for each `prefix`, a line of names then a line of values.
pub fn parse_proc_counters(
    text: &str,
    prefixes: &[&str],
) -> std::collections::BTreeMap<String, u64> {
    let mut m = std::collections::BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for w in lines.windows(2) {
        let (names, values) = (w[0], w[1]);
        let Some(p) = prefixes.iter().find(|p| names.starts_with(**p)) else {
            continue;
        };
        if !values.starts_with(*p)
            || names
                .split_whitespace()
                .nth(1)
                .is_some_and(|n| n.parse::<i64>().is_ok())
        {
            continue;
        }
        for (n, v) in names
            .split_whitespace()
            .zip(values.split_whitespace())
            .skip(1)
        {
            if let Ok(v) = v.parse::<u64>() {
                m.insert(n.to_string(), v);
            }
        }
    }
    m
}

/// How a received file compares with the served one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Got {
    /// Byte-exact, whole.
    Whole,
    /// Shorter, but every byte that arrived is right (a download cut by the time limit).
    Prefix,
    /// A wrong byte, a longer file, or none at all where the served one is not empty.
    Wrong,
}

/// Compares `got` (a missing file counts as empty) with the served file `want`.
fn compare(got: &Path, want: &Path) -> Got {
    let Ok(b) = std::fs::read(want) else {
        return Got::Wrong;
    };
    let a = std::fs::read(got).unwrap_or_default();
    if a == b {
        Got::Whole
    } else if a.len() < b.len() && b.starts_with(&a) && !a.is_empty() {
        Got::Prefix
    } else {
        Got::Wrong
    }
}

/// One download of `load` from `addr` with curl; metrics of it.
fn download(
    ctx: &Ctx,
    sb: &Sandbox,
    m: &Matrix,
    addr: &str,
    load: Load,
    root: &Path,
    dir: &Path,
) -> Result<Metrics> {
    let out_guard = OutDir::new(dir)?;
    let out_dir = &out_guard.0;
    let files = load.files();
    let mut cfg = String::new();
    for (i, (p, _)) in files.iter().enumerate() {
        cfg.push_str(&format!(
            "url = \"http://{addr}/{p}\"\noutput = \"{}/{i}\"\n",
            out_dir.display()
        ));
    }
    let cfg_path = dir.join("curl.cfg");
    std::fs::write(&cfg_path, cfg)?;
    let limit = m.limit.as_secs().max(1);
    let mut cmd = sb.command(Side::Client, "timeout");
    cmd.args(["-k", "5", &(limit + 10).to_string(), "taskset", "-c"])
        .arg(ctx.client_cpu())
        .args(["curl", "-sS", "--http1.1", "--max-time", &limit.to_string()])
        .args(["-w", "%{http_code} %{num_connects}\\n", "-K"])
        .arg(&cfg_path);
    if load == Load::Parallel {
        cmd.args([
            "--parallel",
            "--parallel-immediate",
            "--parallel-max",
            "100",
        ]);
    }
    // What one connection receives in all (one connection per file with `--parallel`, one
    // for all of them otherwise); the response headers on top make it count as done at most
    // their size early.
    let per_conn: usize = if load == Load::Parallel {
        files.iter().map(|f| f.1).min().unwrap_or(0)
    } else {
        files.iter().map(|f| f.1).sum()
    };
    let done_at = per_conn as f64;
    let watch = StallWatch::start(&sb.info().client_ns, addr, done_at);
    let t = Instant::now();
    let out = cmd.output()?;
    let elapsed = t.elapsed().as_secs_f64();
    let (gap_ms, gap_rto) = watch.finish();
    if procs::interrupted() {
        return Err(procs::BenchError::Interrupted);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let connects: f64 = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .sum();
    let ok_codes = stdout.lines().filter(|l| l.starts_with("200 ")).count();
    let mut bytes = 0u64;
    let (mut bad, mut partial) = (0usize, 0usize);
    for (i, (p, _)) in files.iter().enumerate() {
        let got = out_dir.join(i.to_string());
        bytes += std::fs::metadata(&got).map_or(0, |md| md.len());
        match compare(&got, &root.join(p)) {
            Got::Whole => {}
            // A file the limit cut (or never started) is not wrong, only short.
            Got::Prefix => partial += 1,
            Got::Wrong
                if elapsed >= limit as f64
                    && std::fs::metadata(&got).map_or(true, |md| md.len() == 0) =>
            {
                partial += 1
            }
            Got::Wrong => bad += 1,
        }
    }
    drop(out_guard);
    let complete = out.status.success() && bad == 0 && partial == 0 && ok_codes == files.len();
    let mut x = Metrics::new();
    x.insert("goodput_mbit_s".into(), bytes as f64 * 8.0 / elapsed / 1e6);
    x.insert("mib".into(), bytes as f64 / f64::from(1 << 20));
    x.insert("bad_files".into(), bad as f64);
    x.insert("exact".into(), if complete { 1.0 } else { 0.0 });
    // Cut by the time limit with every byte that arrived right: the path's limit, not a
    // fault, where the kernel's cubic is cut in the same run as well.
    x.insert(
        "cut_clean".into(),
        if !complete && bad == 0 { 1.0 } else { 0.0 },
    );
    x.insert("connections".into(), connects);
    x.insert("max_gap_ms".into(), gap_ms);
    x.insert("max_gap_rto".into(), gap_rto);
    if complete {
        x.insert("download_s".into(), elapsed);
    } else {
        x.insert("wall_s".into(), elapsed);
        eprintln!(
            "   {addr} {}: incomplete after {elapsed:.1} s ({}; {bad} of {} files wrong; {})",
            load.label(),
            out.status,
            files.len(),
            procs::tail(&String::from_utf8_lossy(&out.stderr), 2)
        );
    }
    Ok(x)
}

/// Where curl writes what it downloads: a tmpfs (/dev/shm) where there is one, so that
/// 1,000 files written per sequential run do not put the disk's writeback on the path (on
/// the disk-backed /tmp they slowed and spread nginx's and the stack's 3.5 s sequential
/// runs alike, by up to 0.6 s). Removed when dropped, Ctrl-C included.
struct OutDir(std::path::PathBuf);

impl OutDir {
    fn new(scratch: &Path) -> Result<OutDir> {
        let shm = Path::new("/dev/shm");
        let d = if shm.is_dir() {
            shm.join(format!("xdpstack-bench-{}-wan-out", std::process::id()))
        } else {
            scratch.join("out")
        };
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d)?;
        Ok(OutDir(d))
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ms(d: Duration) -> String {
    format!("{}", d.as_secs_f64() * 1000.0)
}

/// Runs the scenario.
pub fn run(ctx: &Ctx) -> Result<ScenarioResult> {
    let started = Instant::now();
    let m = matrix(ctx.quick, |k| std::env::var(k).ok())?;
    let mut res = ctx.result(
        "wan",
        "Downloads over a long, lossy bottlenecked path: xdpstack http (defaults) vs nginx with \
         the kernel's cubic and BBR",
    );
    env::ensure_tools(&[("nginx", "nginx-light"), ("curl", "curl")])?;
    let dir = env::scratch("wan")?;
    let root = dir.join("root");
    let (share, p99) = super::wan_extra::selected(|k| std::env::var(k).ok())?;
    let mut files = m.loads.clone();
    for (on, l) in [(share, Load::File), (p99, Load::Seq)] {
        if on && !files.contains(&l) {
            files.push(l);
        }
    }
    write_root(&root, &files)?;
    let _allow = env::AllowCc::new(&m.ccs)?;
    let server_cpu = ctx.server_cpu();
    res.cores = format!(
        "servers (xdpstack http, one worker, default flags; nginx, one worker) on core \
         {server_cpu}; curl on core {}; the forwarder (one thread) unpinned in the middle \
         namespace.",
        ctx.client_cpu()
    );
    let nginx_name = |cc: &str| format!("nginx, kernel {cc}");
    let mut names: Vec<String> = m.ccs.iter().map(|c| nginx_name(c)).collect();
    names.push(STACK.to_string());
    let with_bbr = m.ccs.iter().any(|c| c == "bbr");
    if with_bbr {
        names.push(STACK_BBR.to_string());
    }

    // The forwarder's own ceiling: kernel to kernel through it, nothing impaired.
    let ceiling_load = if m.loads.contains(&Load::File) {
        Load::File
    } else {
        m.loads[0]
    };
    let mut ceiling = Case {
        name: CEILING.into(),
        load: format!(
            "{} from nginx (kernel {}) through the forwarder, no impairment, no bottleneck",
            ceiling_load.label(),
            m.ccs[0]
        ),
        subjects: vec![Subject::new("kernel to kernel")],
        ratios: Vec::new(),
    };
    {
        let sb = Sandbox::up_impaired(
            &SandboxSpec {
                name: env::sandbox_name("wc"),
                queues: 1,
            },
            &ImpairSpec::default(),
            Path::new(&ctx.bins.xdpstack),
        )?;
        sb.share_with_kernel()?;
        env::set_cc(&sb, &m.ccs[0])?;
        let ng = start_nginx(&sb, &server_cpu, &root, &dir, "ceiling")?;
        for run in 0..ctx.runs {
            let r = download(ctx, &sb, &m, KERNEL_IP, ceiling_load, &root, &dir);
            ceiling.subjects[0].record(run, r.map(|x| (x, String::new())))?;
        }
        let _ = ng.stop_with(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
    }
    ceiling.subjects[0].finish();
    let ceil = ceiling.subjects[0].median.get("goodput_mbit_s").copied();
    let ceil_text = ceil.map_or("not measured".to_string(), |c| format!("{c:.0} Mbit/s"));
    res.notes.push(format!(
        "The forwarder's own ceiling (kernel to kernel through it, no impairment): {ceil_text}; \
         the bottleneck is {} Mbit/s.",
        m.rate_bps as f64 / 1e6
    ));
    if ceil.is_some_and(|c| c < m.rate_bps as f64 / 1e6) {
        res.notes.push(
            "WARNING: the forwarder's ceiling is below the bottleneck's rate: the figures \
             measure the forwarder, not the path."
                .into(),
        );
    }
    res.cases.push(ceiling);

    let mut seed = 19u64;
    for &rtt in &m.rtts {
        for &loss in &m.losses {
            seed += 1;
            let spec = ImpairSpec {
                loss,
                delay: rtt / 2,
                rate_bps: m.rate_bps,
                queue: m.queue,
                seed,
                ..ImpairSpec::default()
            };
            let cell = format!("RTT {} ms, loss {}%", ms(rtt), loss * 100.0);
            eprintln!("-- {cell}");
            let mut cases: Vec<Case> = m
                .loads
                .iter()
                .map(|l| Case {
                    name: format!("{cell}, {}", l.label()),
                    load: format!(
                        "curl{} through {spec} (each way); forwarder ceiling {ceil_text}",
                        if *l == Load::Parallel {
                            " --parallel"
                        } else {
                            ""
                        }
                    ),
                    subjects: names.iter().map(|n| Subject::new(n)).collect(),
                    ratios: Vec::new(),
                })
                .collect();
            let sb = Sandbox::up_impaired(
                &SandboxSpec {
                    name: env::sandbox_name("wn"),
                    queues: 1,
                },
                &spec,
                Path::new(&ctx.bins.xdpstack),
            )?;
            sb.share_with_kernel()?;
            // Each server is started once per cell and serves every run of it: what a user
            // gets is one process that stays up, not a fresh one per download.
            for (si, cc) in m.ccs.iter().enumerate() {
                env::set_cc(&sb, cc)?;
                let started = start_nginx(&sb, &server_cpu, &root, &dir, cc);
                let Some(ng) = started_or_noted(started, &mut cases, si)? else {
                    continue;
                };
                let before = kernel_tcp_counters(&sb.info().server_ns);
                for run in 0..ctx.runs {
                    for (li, &l) in m.loads.iter().enumerate() {
                        let r = download(ctx, &sb, &m, KERNEL_IP, l, &root, &dir);
                        cases[li].subjects[si].record(run, r.map(|x| (x, String::new())))?;
                    }
                }
                let _ = ng.stop_with(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
                let after = kernel_tcp_counters(&sb.info().server_ns);
                let get = |m: &std::collections::BTreeMap<String, u64>, k: &str| {
                    m.get(k).copied().unwrap_or(0)
                };
                let d = |k: &str| get(&after, k).saturating_sub(get(&before, k));
                for c in &mut cases {
                    c.subjects[si].detail.push(format!(
                        "{}: the server namespace's kernel counters (all runs, all loads): \
                         retransmits {} (RetransSegs), fast recoveries {} \
                         (TCPSackRecovery + TCPRenoRecovery), RTOs {} (TCPTimeouts), \
                         loss probes {} (TCPLossProbes)",
                        nginx_name(cc),
                        d("RetransSegs"),
                        d("TCPSackRecovery") + d("TCPRenoRecovery"),
                        d("TCPTimeouts"),
                        d("TCPLossProbes")
                    ));
                }
            }
            // The stack with its defaults (its own cubic), then with --cc bbr. The client's
            // kernel runs the cc of the nginx the stack is compared with (cubic, BBR). It
            // used to stay on the last one set (BBR) for both: the stack's cubic then read
            // 1.076x the kernel's cubic in the sequential cell at 2 ms, 0% loss, and 0.997x
            // with the client on cubic as for nginx (3 runs each): the client's cc moves
            // the time of 1,000 request/response round trips by that much.
            let stacks: &[(&str, &[&str], &str)] = if with_bbr {
                &[(STACK, &[], "cubic"), (STACK_BBR, &["--cc", "bbr"], "bbr")]
            } else {
                &[(STACK, &[], "cubic")]
            };
            for (k, (name, extra, client_cc)) in stacks.iter().enumerate() {
                let si = m.ccs.len() + k;
                let cc = if m.ccs.iter().any(|c| c == client_cc) {
                    client_cc
                } else {
                    m.ccs[0].as_str()
                };
                env::set_cc(&sb, cc)?;
                let stats = dir.join(format!("stack-{seed}-{k}.json"));
                let started = start_stack(ctx, &sb, &root, &dir, &stats, extra);
                let Some(p) = started_or_noted(started, &mut cases, si)? else {
                    continue;
                };
                for run in 0..ctx.runs {
                    for (li, &l) in m.loads.iter().enumerate() {
                        let r = download(ctx, &sb, &m, STACK_IP, l, &root, &dir);
                        cases[li].subjects[si].record(run, r.map(|x| (x, String::new())))?;
                    }
                }
                let s = common::stop_stack(p, &stats);
                if let Some(w) = s.ok().and_then(|s| s.workers.into_iter().next()) {
                    let e = &w.engine;
                    for c in &mut cases {
                        c.subjects[si].detail.push(format!(
                            "{name}: counters at exit (all runs, all loads): app {}; \
                             retransmits {}, fast recoveries {}, RTOs {}, loss probes {}",
                            w.app,
                            e["tcp_retransmits"],
                            e["tcp_recoveries"],
                            e["tcp_rto_timeouts"],
                            e["tcp_loss_probes"]
                        ));
                    }
                }
            }
            if let Some(f) = sandbox::forwarder_stats(&sb.info().name) {
                res.notes.push(format!(
                    "{cell}: forwarder counters at the end: {}",
                    serde_json::to_string(&f).unwrap_or_default()
                ));
            }
            drop(sb);
            for mut c in cases {
                for s in &mut c.subjects {
                    s.finish();
                }
                for cc in &m.ccs {
                    c.add_ratio("download_s", STACK, &nginx_name(cc));
                    c.add_ratio("goodput_mbit_s", STACK, &nginx_name(cc));
                }
                if with_bbr {
                    c.add_ratio("download_s", STACK_BBR, &nginx_name("bbr"));
                    c.add_ratio("goodput_mbit_s", STACK_BBR, &nginx_name("bbr"));
                }
                res.cases.push(c);
            }
        }
    }
    if share {
        super::wan_extra::share(ctx, &mut res, &root, &dir, &ceil_text)?;
    }
    if p99 {
        super::wan_extra::p99(ctx, &mut res, &root, &dir, &ceil_text)?;
    }
    res.notes.push(format!(
        "Each case: the time to download every file (curl in the client namespace; all \
         files compared byte for byte; one the limit cut, on what arrived), `goodput_mbit_s` the \
         bytes received over that time (also for a download cut at the {} s limit; where the \
         kernel's cubic is cut too, the time ratio of the targets is the inverse of the \
         goodput ratio). Loss and delay are each way (delay = RTT \
         / 2); the bottleneck ({} Mbit/s, queue {}) is each way too. `max_gap_rto`: the longest \
         a connection went without receiving (ss `lastrcv`, sampled every 200 ms) over the \
         client's RTO for it (ss `rto`), counted while the connection had not yet received \
         its whole file (curl keeps finished ones open and silent in its pool). xdpstack runs `http --root` with no tuning flags and \
         its default cubic, then (when BBR is in the matrix) with `--cc bbr`; nginx is measured with the kernel's cubic (allowed in the root \
         namespace for the run, restored after) and with BBR, each set in both namespaces \
         before nginx starts.",
        m.limit.as_secs(),
        m.rate_bps as f64 / 1e6,
        m.queue
    ));
    let measured = format!(
        "measured {} at {}, {} run(s) on one server process each, a {} s limit, load average \
         before {}",
        res.meta.date,
        res.meta.git,
        res.meta.runs,
        m.limit.as_secs(),
        res.meta.loadavg_before
    );
    for c in res.cases.iter_mut().filter(|c| c.name != CEILING) {
        c.load.push_str(&format!("; {measured}"));
    }
    if std::env::var_os("XDPSTACK_BENCH_WAN_MERGE").is_some_and(|v| v != "0") {
        let path = env::results_dir().join("wan.json");
        match std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<ScenarioResult>(&t).ok())
        {
            Some(earlier) => merge_earlier(&mut res, earlier),
            None => res.notes.push(format!(
                "XDPSTACK_BENCH_WAN_MERGE was set but {} could not be read: nothing merged.",
                path.display()
            )),
        }
    }
    add_targets(&mut res, &m, &nginx_name);
    res.wall_seconds = started.elapsed().as_secs_f64();
    Ok(res)
}

/// `XDPSTACK_BENCH_WAN_MERGE=1`: the full matrix with medians of 3 runs takes about 5 hours,
/// so it can be measured a few rows at a time. Every case of `earlier` (the results file
/// this run replaces) that this run did not measure is kept, with the notes of its cell and
/// the targets this run does not compute; each case's load says when and at what commit it
/// was measured. The forwarder's ceiling is always this run's.
pub fn merge_earlier(res: &mut ScenarioResult, earlier: ScenarioResult) {
    let now: std::collections::BTreeSet<String> =
        res.cases.iter().map(|c| c.name.clone()).collect();
    let provenance = format!(
        "measured {} at {}, {} run(s), load average before {}",
        earlier.meta.date, earlier.meta.git, earlier.meta.runs, earlier.meta.loadavg_before
    );
    let mut kept = 0;
    let mut cells = std::collections::BTreeSet::new();
    for mut c in earlier.cases {
        if c.name == CEILING || now.contains(&c.name) {
            continue;
        }
        if !c.load.contains("; measured ") {
            c.load.push_str(&format!("; {provenance}"));
        }
        if let Some(k) = cell_key(&c.name) {
            cells.insert(k.2);
        }
        res.cases.push(c);
        kept += 1;
    }
    let measured_cells: std::collections::BTreeSet<String> = now
        .iter()
        .filter_map(|n| cell_key(n).map(|k| k.2))
        .collect();
    for n in earlier.notes {
        if cells
            .iter()
            .any(|c| !measured_cells.contains(c) && n.starts_with(&format!("{c}:")))
        {
            res.notes.push(n);
        }
    }
    res.cases.sort_by(|a, b| {
        let rank = |c: &Case| match (c.name == CEILING, cell_key(&c.name)) {
            (true, _) => (0, 0.0, 0.0, 0),
            (false, Some((rtt, loss, _, load))) => (1, rtt, loss, load),
            (false, None) => (2, 0.0, 0.0, 0),
        };
        let (x, y) = (rank(a), rank(b));
        x.0.cmp(&y.0)
            .then(x.1.total_cmp(&y.1))
            .then(x.2.total_cmp(&y.2))
            .then(x.3.cmp(&y.3))
    });
    // Matrix targets are computed after the merge; the extra cases' targets are kept from
    // the earlier run where this one did not measure them.
    for t in earlier.targets {
        let mine = res.targets.iter().any(|x| x.name == t.name);
        if !mine && ![T_CUBIC, T_BBR, T_EXACT, T_GAP].contains(&t.name.as_str()) {
            res.targets.push(t);
        }
    }
    res.notes.push(format!(
        "Merged (XDPSTACK_BENCH_WAN_MERGE): {kept} case(s) kept from the earlier results \
         file, which this run did not measure; each case's load says when, at what commit \
         and with how many runs it was measured."
    ));
}

/// A matrix case's cell: (RTT ms, loss %, "RTT X ms, loss Y%", load index), from its name.
fn cell_key(name: &str) -> Option<(f64, f64, String, usize)> {
    let mut parts = name.splitn(3, ", ");
    let rtt = parts.next()?.strip_prefix("RTT ")?.strip_suffix(" ms")?;
    let loss = parts.next()?.strip_prefix("loss ")?.strip_suffix('%')?;
    let label = parts.next()?;
    let load = [Load::File, Load::Parallel, Load::Seq]
        .iter()
        .position(|l| l.label() == label)?;
    Some((
        rtt.parse().ok()?,
        loss.parse().ok()?,
        format!("RTT {rtt} ms, loss {loss}%"),
        load,
    ))
}

/// Issue 19's targets over every case measured: the worst cell counts.
fn add_targets(res: &mut ScenarioResult, m: &Matrix, nginx_name: &dyn Fn(&str) -> String) {
    let cells: Vec<&Case> = res
        .cases
        .iter()
        .filter(|c| c.name.starts_with("RTT"))
        .collect();
    // A cell whose downloads the time limit cut (cubic at 1% loss moves a few Mbit/s: Mathis'
    // 1.22·MSS/(RTT·√p)) has no download time; there the bytes each side got within the same
    // limit stand in for it: time ratio = the inverse of the goodput ratio.
    let worst_of = |stack: &str, cc: &str| -> Option<f64> {
        cells
            .iter()
            .filter_map(|c| {
                let k = nginx_name(cc);
                c.ratio("download_s", stack, &k)
                    .or_else(|| c.ratio("goodput_mbit_s", stack, &k).map(|g| 1.0 / g))
            })
            .reduce(f64::max)
    };
    let worst = |cc: &str| worst_of(STACK, cc);
    let exact = cells
        .iter()
        .all(|c| stack_complete(c, &nginx_name("cubic")));
    let worst_gap = |name: &str| {
        cells
            .iter()
            .filter_map(|c| c.subject(name))
            .flat_map(|s| s.runs.iter().filter_map(|r| r.get("max_gap_rto").copied()))
            .reduce(f64::max)
    };
    let gap = worst_gap(STACK);
    // The kernel's own in the same cells and runs: the reference the target is read against.
    let gap_reference = m
        .ccs
        .iter()
        .filter_map(|cc| {
            let worst = worst_gap(&nginx_name(cc))?;
            // The stack's defaults are the target's own figure; `--cc bbr` is the other
            // stack subject (a kernel-only cc such as reno has none).
            let stack = if cc == "bbr" {
                worst_gap(STACK_BBR)
                    .map_or(String::new(), |g| format!(", xdpstack --cc {cc} {g:.2}"))
            } else {
                String::new()
            };
            Some(format!("nginx with the kernel's {cc} {worst:.2}{stack}"))
        })
        .collect::<Vec<_>>()
        .join("; ");
    if m.ccs.iter().any(|c| c == "cubic") {
        res.targets.push(Target::threshold(
            T_CUBIC,
            "<= 1.0x in every cell",
            worst("cubic"),
            1.0,
            true,
        ));
    }
    if m.ccs.iter().any(|c| c == "bbr") {
        res.targets.push(Target::threshold(
            T_BBR,
            "<= 1.1x in every cell",
            worst_of(STACK_BBR, "bbr"),
            1.1,
            true,
        ));
    }
    res.targets.push(Target::threshold(
        T_EXACT,
        "100%",
        Some(if exact { 1.0 } else { 0.0 }),
        1.0,
        false,
    ));
    res.targets
        .push(Target::threshold(T_GAP, "<= 2 RTOs", gap, 2.0, true).why(
            &if gap_reference.is_empty() {
                String::new()
            } else {
                format!("worst runs in the same cells: {gap_reference}")
            },
        ));
}

/// Whether the stack's (defaults) downloads of cell `c` were all complete and byte-exact, or,
/// in a run where the limit cut `kernel`'s download as well, cut with every byte right.
fn stack_complete(c: &Case, kernel: &str) -> bool {
    let Some(s) = c.subject(STACK) else {
        return false;
    };
    let k = c.subject(kernel);
    !s.runs.is_empty()
        && s.runs.iter().enumerate().all(|(i, r)| {
            r.get("exact") == Some(&1.0)
                || (r.get("cut_clean") == Some(&1.0)
                    && k.and_then(|k| k.runs.get(i))
                        .is_some_and(|kr| kr.get("exact") != Some(&1.0)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_download_is_short_not_wrong() {
        let dir = std::env::temp_dir().join(format!("wan-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let want = dir.join("want");
        std::fs::write(&want, b"0123456789").unwrap();
        let got = dir.join("got");
        let case = |bytes: &[u8]| {
            std::fs::write(&got, bytes).unwrap();
            compare(&got, &want)
        };
        assert_eq!(case(b"0123456789"), Got::Whole);
        assert_eq!(case(b"01234"), Got::Prefix);
        assert_eq!(case(b"01x34"), Got::Wrong);
        assert_eq!(case(b"0123456789!"), Got::Wrong);
        assert_eq!(case(b""), Got::Wrong);
        std::fs::remove_file(&got).unwrap();
        assert_eq!(compare(&got, &want), Got::Wrong);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cut_counts_as_complete_only_where_the_kernel_was_cut_too() {
        let run = |exact: f64, cut: f64| {
            let mut m = Metrics::new();
            m.insert("exact".into(), exact);
            m.insert("cut_clean".into(), cut);
            m
        };
        let cell = |stack: Vec<Metrics>, kernel: Vec<Metrics>| Case {
            subjects: vec![
                Subject {
                    name: STACK.into(),
                    runs: stack,
                    ..Subject::default()
                },
                Subject {
                    name: "k".into(),
                    runs: kernel,
                    ..Subject::default()
                },
            ],
            ..Case::default()
        };
        let whole = run(1.0, 0.0);
        let cut = run(0.0, 1.0);
        let wrong = run(0.0, 0.0);
        assert!(stack_complete(
            &cell(vec![whole.clone()], vec![whole.clone()]),
            "k"
        ));
        assert!(stack_complete(
            &cell(vec![cut.clone()], vec![cut.clone()]),
            "k"
        ));
        // The kernel finished in that run: the stack's cut is a miss.
        assert!(!stack_complete(
            &cell(vec![cut.clone()], vec![whole.clone()]),
            "k"
        ));
        // A wrong byte is a miss whatever the kernel did.
        assert!(!stack_complete(&cell(vec![wrong], vec![cut.clone()]), "k"));
        // Runs are paired by index.
        assert!(!stack_complete(
            &cell(vec![whole.clone(), cut.clone()], vec![cut, whole]),
            "k"
        ));
        assert!(!stack_complete(&cell(vec![], vec![]), "k"));
    }

    #[test]
    fn a_merge_keeps_what_this_run_did_not_measure_in_matrix_order() {
        let case = |name: &str, load: &str| Case {
            name: name.into(),
            load: load.into(),
            ..Case::default()
        };
        let file = Load::File.label();
        let seq = Load::Seq.label();
        let target = |name: &str| Target {
            name: name.into(),
            ..Target::default()
        };
        let mut earlier = ScenarioResult::default();
        earlier.meta.date = "D0".into();
        earlier.meta.git = "g0".into();
        earlier.cases = vec![
            case(CEILING, "old ceiling"),
            case(&format!("RTT 200 ms, loss 1%, {file}"), "a"),
            case(
                &format!("RTT 2 ms, loss 0%, {seq}"),
                "b; measured D-1 at g-1",
            ),
            case(&format!("RTT 2 ms, loss 0%, {file}"), "replaced"),
            case("p99: x", "c"),
        ];
        earlier.notes = vec![
            "RTT 200 ms, loss 1%: forwarder counters".into(),
            "RTT 2 ms, loss 0%: forwarder counters (old)".into(),
            "a general note".into(),
        ];
        earlier.targets = vec![
            target("p99 completion of 10 KiB responses"),
            target(T_CUBIC),
        ];
        let mut res = ScenarioResult {
            cases: vec![
                case(CEILING, "new ceiling"),
                case(&format!("RTT 2 ms, loss 0%, {file}"), "new"),
            ],
            notes: vec!["RTT 2 ms, loss 0%: forwarder counters (new)".into()],
            ..ScenarioResult::default()
        };
        merge_earlier(&mut res, earlier);
        let names: Vec<(&str, &str)> = res
            .cases
            .iter()
            .map(|c| (c.name.as_str(), c.load.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                (CEILING, "new ceiling"),
                (format!("RTT 2 ms, loss 0%, {file}").as_str(), "new"),
                (
                    format!("RTT 2 ms, loss 0%, {seq}").as_str(),
                    "b; measured D-1 at g-1"
                ),
                (
                    format!("RTT 200 ms, loss 1%, {file}").as_str(),
                    "a; measured D0 at g0, 0 run(s), load average before "
                ),
                (
                    "p99: x",
                    "c; measured D0 at g0, 0 run(s), load average before "
                ),
            ]
        );
        // The measured cell's old counters go; the kept cell's stay; general notes are this
        // run's own.
        assert!(res
            .notes
            .iter()
            .any(|n| n == "RTT 200 ms, loss 1%: forwarder counters"));
        assert!(!res.notes.iter().any(|n| n.ends_with("(old)")));
        assert!(!res.notes.iter().any(|n| n == "a general note"));
        // The extra case's target is kept; the matrix's are computed again after a merge.
        let t: Vec<&str> = res.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(t, vec!["p99 completion of 10 KiB responses"]);
        assert_eq!(
            cell_key(&format!("RTT 0.5 ms, loss 0.1%, {seq}")),
            Some((0.5, 0.1, "RTT 0.5 ms, loss 0.1%".into(), 2))
        );
        assert_eq!(cell_key("sharing: RTT 50 ms"), None);
    }

    #[test]
    fn the_matrix_defaults_quick_and_overrides() {
        let full = matrix(false, |_| None).expect("full");
        assert_eq!(full.rtts.len(), 4);
        assert_eq!(full.losses, vec![0.0, 0.001, 0.01, 0.03]);
        assert_eq!(full.loads, vec![Load::File, Load::Parallel, Load::Seq]);
        assert_eq!(full.ccs, vec!["cubic", "bbr"]);
        assert_eq!(full.rate_bps, 100_000_000);
        assert_eq!(full.queue, QueueLimit::Time(Duration::from_millis(100)));
        let q = matrix(true, |_| None).expect("quick");
        assert_eq!(q.rtts, vec![Duration::from_millis(50)]);
        assert_eq!(q.losses, vec![0.0, 0.01]);
        assert_eq!(q.loads, vec![Load::File, Load::Parallel]);
        let o = matrix(false, |k| match k {
            "XDPSTACK_BENCH_WAN_RTTS" => Some("200".into()),
            "XDPSTACK_BENCH_WAN_LOADS" => Some("seq".into()),
            "XDPSTACK_BENCH_WAN_QUEUE" => Some("150KB".into()),
            _ => None,
        })
        .expect("override");
        assert_eq!(o.rtts, vec![Duration::from_millis(200)]);
        assert_eq!(o.loads, vec![Load::Seq]);
        assert_eq!(o.queue, QueueLimit::Bytes(150_000));
        assert!(matrix(false, |k| (k == "XDPSTACK_BENCH_WAN_CC")
            .then(|| "vegas".into()))
        .is_err());
        assert!(matrix(false, |k| (k == "XDPSTACK_BENCH_WAN_LOSS")
            .then(|| "x".into()))
        .is_err());
    }

    #[test]
    fn files_are_deterministic_and_distinct() {
        assert_eq!(contents("par/p001", 1000), contents("par/p001", 1000));
        assert_ne!(contents("par/p001", 1000), contents("par/p002", 1000));
        assert_eq!(contents("seq/s0001", 10 << 10).len(), 10 << 10);
        assert_eq!(Load::Parallel.files().len(), 100);
        assert_eq!(
            Load::Seq.files().iter().map(|f| f.1).sum::<usize>(),
            1000 * 10240
        );
    }

    #[test]
    fn proc_counters_pair_names_with_values() {
        let text = "Tcp: RtoAlgorithm RtoMin RetransSegs InErrs\nTcp: 1 200 17 0\n\
                    Udp: InDatagrams\nUdp: 5\n\
                    TcpExt: SyncookiesSent TCPTimeouts TCPLossProbes\nTcpExt: 0 3 9\n";
        let m = parse_proc_counters(text, &["Tcp:", "TcpExt:"]);
        assert_eq!(m.get("RetransSegs"), Some(&17));
        assert_eq!(m.get("TCPTimeouts"), Some(&3));
        assert_eq!(m.get("TCPLossProbes"), Some(&9));
        assert_eq!(m.get("InDatagrams"), None);
    }

    #[test]
    fn ss_lines_give_the_gap_and_the_rto() {
        let text = "0 0 10.112.0.2:40000 10.112.0.1:80\n\t cubic wscale:7,7 rto:252 \
                    rtt:51.2/0.4 mss:1448 bytes_received:1048832 lastsnd:1200 lastrcv:480 lastack:480\n\
                    0 0 10.112.0.2:40002 10.112.0.1:80\n\t bbr rto:204 lastrcv:12\n";
        let got: Vec<(f64, f64, f64)> = parse_ss(text)
            .iter()
            .map(|c| (c.lastrcv, c.rto, c.bytes_received))
            .collect();
        assert_eq!(got, vec![(480.0, 252.0, 1048832.0), (12.0, 204.0, 0.0)]);
        assert!(parse_ss("").is_empty());
    }
}
