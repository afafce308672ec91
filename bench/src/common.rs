//! Pieces every scenario uses: the run context, starting servers (the stack, nginx, the
//! kernel helpers), running load tools, CPU accounting around a measurement.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab::sandbox::{Sandbox, Side};
use nix::sys::resource::{getrusage, UsageWho};

use crate::env::{self, Bins};
use crate::model::{Case, Meta, Metrics, ScenarioResult};
use crate::parse::{self, WrkReport};
use crate::procs::{self, err, Placement, Proc, Result};

/// The server's address in every sandbox.
pub const SERVER_IP: &str = "198.18.0.1";
/// The server's address with prefix.
pub const SERVER_CIDR: &str = "198.18.0.1/24";

/// What a scenario run gets.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// Binaries.
    pub bins: Bins,
    /// Quick (smoke) mode.
    pub quick: bool,
    /// Runs per measurement.
    pub runs: usize,
    /// Number of CPUs.
    pub ncpu: usize,
}

impl Ctx {
    /// `full` in normal mode, `quick` in quick mode.
    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }

    /// The core the server uses when it gets one core: 0.
    pub fn server_cpu(&self) -> String {
        "0".into()
    }

    /// The core the load generator uses: the last one.
    pub fn client_cpu(&self) -> String {
        self.ncpu.saturating_sub(1).to_string()
    }

    /// All cores, "0-N".
    pub fn all_cpus(&self) -> String {
        format!("0-{}", self.ncpu.saturating_sub(1))
    }

    /// A new result with the metadata filled in.
    pub fn result(&self, scenario: &str, title: &str) -> ScenarioResult {
        ScenarioResult {
            scenario: scenario.into(),
            title: title.into(),
            meta: self.meta(),
            ..Default::default()
        }
    }

    fn meta(&self) -> Meta {
        env::meta(self.quick, self.runs)
    }
}

/// CPU time (user + system) of the runner's reaped children, seconds.
pub fn children_cpu_s() -> f64 {
    getrusage(UsageWho::RUSAGE_CHILDREN)
        .map(|u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or(0.0)
}

/// Starts `xdpstack SERVICE --iface xdp0 --addr 198.18.0.1/24 ARGS` in the server namespace,
/// pinned to `cpus`, with `--report` in `dir`. Returns the process and its stats path.
pub fn start_stack(
    ctx: &Ctx,
    sb: &Sandbox,
    cpus: &str,
    service: &[&str],
    args: &[String],
    dir: &Path,
    label: &str,
) -> Result<(Proc, PathBuf)> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stats = dir.join(format!("stack-stats-{n}.json"));
    let mut a: Vec<String> = service.iter().map(|s| s.to_string()).collect();
    a.extend(
        [
            "--iface",
            "xdp0",
            "--addr",
            SERVER_CIDR,
            "--report",
            &stats.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    a.extend(args.iter().cloned());
    let p = Proc::spawn_env(
        label,
        &sb.info().server_ns,
        cpus,
        &ctx.bins.xdpstack,
        &a,
        dir,
        &[("RUST_LOG", "warn")],
    )?;
    Ok((p, stats))
}

/// [`start_stack`] for `xdpstack http` with `args`, waiting (at most 15 s) until it accepts
/// connections on 198.18.0.1:80.
pub fn start_http_stack(
    ctx: &Ctx,
    sb: &Sandbox,
    cpus: &str,
    args: &[&str],
    dir: &Path,
) -> Result<(Proc, PathBuf)> {
    let (p, stats) = start_stack(
        ctx,
        sb,
        cpus,
        &["http"],
        &strings(args),
        dir,
        "xdpstack http",
    )?;
    if !env::wait_tcp(sb, SERVER_IP, 80, Duration::from_secs(15))? {
        return err(format!(
            "xdpstack http did not come up: {}",
            p.stderr_tail()
        ));
    }
    Ok((p, stats))
}

/// Binary CPU masks for nginx's `worker_cpu_affinity`, one per worker over `cpus`.
pub fn nginx_affinity(cpus: &[usize], workers: usize, ncpu: usize) -> String {
    (0..workers)
        .map(|i| {
            let c = cpus[i % cpus.len().max(1)];
            (0..ncpu.max(c + 1))
                .rev()
                .map(|b| if b == c { '1' } else { '0' })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Starts nginx (`listen 198.18.0.1:80 reuseport`, the same body as the stack) in the server
/// namespace: `workers` worker processes pinned one per core of `cpus` (worker_cpu_affinity),
/// the master pinned to the same cores with taskset.
pub fn start_nginx(
    ctx: &Ctx,
    sb: &Sandbox,
    cpus: &[usize],
    workers: usize,
    backlog: u32,
    dir: &Path,
) -> Result<Proc> {
    let d = dir.join(format!("nginx-{}", sb.info().name));
    std::fs::create_dir_all(&d)?;
    let ds = d.display().to_string();
    let conf = format!(
        r#"daemon off;
master_process on;
worker_processes {workers};
worker_cpu_affinity {aff};
worker_rlimit_nofile {nofile};
pid {ds}/nginx.pid;
error_log {ds}/error.log warn;
events {{ worker_connections 65536; multi_accept on; }}
http {{
    access_log off;
    server_tokens off;
    keepalive_timeout 65;
    keepalive_requests 1000000000;
    {temp}
    server {{
        listen {SERVER_IP}:80 reuseport backlog={backlog};
        location / {{
            default_type text/plain;
            return 200 "{body}";
        }}
    }}
}}
"#,
        aff = nginx_affinity(cpus, workers, ctx.ncpu),
        nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(s, _)| s),
        body = crate::kernel::BODY.replace('\n', "\\n"),
        temp = nginx_temp_paths(&d),
    );
    let path = d.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let cpu_list = cpus
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut p = Proc::spawn(
        "nginx",
        &sb.info().server_ns,
        &cpu_list,
        "nginx",
        &[
            "-p".into(),
            ds.clone(),
            "-c".into(),
            path.display().to_string(),
        ],
        dir,
    )?;
    if !env::wait_tcp(sb, SERVER_IP, 80, Duration::from_secs(10))? || !p.running() {
        let tail = p.stderr_tail();
        let log = std::fs::read_to_string(d.join("error.log")).unwrap_or_default();
        return err(format!(
            "nginx did not come up: {tail} {}",
            procs::tail(&log, 3)
        ));
    }
    Ok(p)
}

/// Raises the per-namespace limits a server needs for many connections.
pub fn tune_server_ns(sb: &Sandbox) -> Result<()> {
    for kv in [
        "net.core.somaxconn=65535",
        "net.ipv4.tcp_max_syn_backlog=65535",
    ] {
        env::run_in(sb, Side::Server, "sysctl", &["-q", "-w", kv])?;
    }
    Ok(())
}

/// Options of one wrk run.
#[derive(Clone, Debug)]
pub struct WrkOpts {
    /// Connections.
    pub conns: usize,
    /// Threads.
    pub threads: usize,
    /// Seconds.
    pub seconds: u64,
    /// Add `Connection: close`.
    pub close: bool,
    /// Socket timeout, seconds.
    pub timeout_s: u64,
    /// The server's port.
    pub port: u16,
}

/// What one measured load run gives back.
#[derive(Debug)]
pub struct Measured<R> {
    /// The tool's report.
    pub report: R,
    /// Server CPU seconds during the run.
    pub server_cpu_s: f64,
    /// Client CPU seconds (the tool process).
    pub client_cpu_s: f64,
    /// Placement samples taken in the middle of the run (server, then client).
    pub placement: Vec<Placement>,
    /// Largest server (RSS KiB, PSS KiB) seen while the load ran.
    pub server_mem_kib: (u64, u64),
    /// Host-wide kernel TCP memory (KiB) seen at the same moment (from sockstat).
    pub kernel_tcp_mem_kib: u64,
    /// Wall seconds.
    pub wall_s: f64,
    /// Per core during the run: (busy %, softirq %) of all processes on the machine.
    pub cores: Vec<(f64, f64)>,
    /// 1-minute load average just before the run started (how busy the machine was).
    pub loadavg1: f64,
    /// Server CPU seconds from the mark (see [`measure_many_marked`]) to the end, if asked.
    pub server_cpu_after_mark_s: Option<f64>,
}

impl<R> Measured<R> {
    /// The same measurement with the tool's report replaced by `f` of it.
    pub fn map<T>(self, f: impl FnOnce(R) -> T) -> Measured<T> {
        Measured {
            report: f(self.report),
            server_cpu_s: self.server_cpu_s,
            client_cpu_s: self.client_cpu_s,
            placement: self.placement,
            server_mem_kib: self.server_mem_kib,
            kernel_tcp_mem_kib: self.kernel_tcp_mem_kib,
            wall_s: self.wall_s,
            cores: self.cores,
            loadavg1: self.loadavg1,
            server_cpu_after_mark_s: self.server_cpu_after_mark_s,
        }
    }
}

/// Per-CPU jiffies now (busy, softirq, total), for [`core_usage`].
pub fn read_cpus() -> Vec<(u64, u64, u64)> {
    parse::proc_stat_cpus(&std::fs::read_to_string("/proc/stat").unwrap_or_default())
}

/// Per core between two [`read_cpus`] readings: (busy %, softirq %).
pub fn core_usage(a: &[(u64, u64, u64)], b: &[(u64, u64, u64)]) -> Vec<(f64, f64)> {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let total = y.2.saturating_sub(x.2).max(1) as f64;
            (
                100.0 * y.0.saturating_sub(x.0) as f64 / total,
                100.0 * y.1.saturating_sub(x.1) as f64 / total,
            )
        })
        .collect()
}

/// Inserts `coreN_busy_pct`, `coreN_softirq_pct` and `loadavg1_before`.
pub fn add_core_metrics<R>(x: &mut Metrics, m: &Measured<R>) {
    x.insert("loadavg1_before".into(), m.loadavg1);
    for (i, (busy, si)) in m.cores.iter().enumerate() {
        x.insert(format!("core{i}_busy_pct"), *busy);
        x.insert(format!("core{i}_softirq_pct"), *si);
    }
}

/// Kernel TCP memory from `/proc/net/sockstat` (pages -> KiB). Host-wide on current kernels.
pub fn kernel_tcp_mem_kib(sb: &Sandbox) -> u64 {
    let out = sb
        .command(Side::Server, "cat")
        .arg("/proc/net/sockstat")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let page_kib = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64
        / 1024;
    out.lines()
        .find(|l| l.starts_with("TCP:"))
        .and_then(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.iter()
                .position(|x| *x == "mem")
                .and_then(|i| w.get(i + 1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |p| p * page_kib)
}

/// Runs a load tool `program args` in the client namespace pinned to `cpu`, measuring the
/// server's CPU around it, sampling placement and memory while it runs; waits at most
/// `limit`. Returns the tool's stdout and the measurements.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    sb: &Sandbox,
    server: &Proc,
    cpu: &str,
    label: &str,
    program: &str,
    args: &[String],
    dir: &Path,
    limit: Duration,
) -> Result<Measured<String>> {
    let m = measure_many(
        sb,
        server,
        cpu,
        label,
        program,
        &[args.to_vec()],
        dir,
        limit,
    )?;
    Ok(m.map(|r| r.into_iter().next().unwrap_or_default()))
}

/// [`measure`] with several instances of the tool at once (one per argument list), all pinned
/// to `cpu`: the client side of a load too large for one process's file descriptors.
#[allow(clippy::too_many_arguments)]
pub fn measure_many(
    sb: &Sandbox,
    server: &Proc,
    cpu: &str,
    label: &str,
    program: &str,
    arg_lists: &[Vec<String>],
    dir: &Path,
    limit: Duration,
) -> Result<Measured<Vec<String>>> {
    measure_many_marked(sb, server, cpu, label, program, arg_lists, dir, limit, None)
}

/// [`measure_many`] that also reads the server's CPU at two points after the start (`marks`),
/// for the CPU of the part of the run between them (a steady phase after a connection phase,
/// ending where the load stops sending: not the client's drain and reset at its end).
#[allow(clippy::too_many_arguments)]
pub fn measure_many_marked(
    sb: &Sandbox,
    server: &Proc,
    cpu: &str,
    label: &str,
    program: &str,
    arg_lists: &[Vec<String>],
    dir: &Path,
    limit: Duration,
    marks: Option<(Duration, Duration)>,
) -> Result<Measured<Vec<String>>> {
    let loadavg1 = env::loadavg1();
    let t0 = Instant::now();
    let s0 = server.cpu_ticks();
    let c0 = children_cpu_s();
    let k0 = read_cpus();
    let mut tools = Vec::new();
    for args in arg_lists {
        tools.push(Proc::spawn(
            label,
            &sb.info().client_ns,
            cpu,
            program,
            args,
            dir,
        )?);
    }
    let mut placement = Vec::new();
    let mut mem = (0, 0);
    let mut ktcp = 0;
    let mut sampled = false;
    let mut mark_ticks = None;
    let mut end_ticks = None;
    let end = t0 + limit;
    while tools.iter_mut().any(|t| t.running()) && Instant::now() < end {
        // Short steps until each mark, so that it is read within ~20 ms of its time.
        let next_mark = match marks {
            Some((m, _)) if mark_ticks.is_none() => Some(m),
            Some((_, e)) if end_ticks.is_none() => Some(e),
            _ => None,
        };
        let step = next_mark.map_or(Duration::from_millis(250), |m| {
            m.saturating_sub(t0.elapsed())
                .clamp(Duration::from_millis(1), Duration::from_millis(250))
        });
        procs::sleep(step)?;
        if let Some((m, e)) = marks {
            if mark_ticks.is_none() && t0.elapsed() >= m {
                mark_ticks = Some(server.cpu_ticks());
            }
            if end_ticks.is_none() && t0.elapsed() >= e {
                end_ticks = Some(server.cpu_ticks());
            }
        }
        let m = server.memory_kib();
        if m.0 > mem.0 {
            mem = m;
            ktcp = kernel_tcp_mem_kib(sb);
        }
        if !sampled && t0.elapsed() > Duration::from_millis(600) && tools[0].running() {
            placement.push(server.placement());
            placement.push(tools[0].placement());
            sampled = true;
        }
    }
    let s1_before_exit = server.cpu_ticks();
    let k1 = read_cpus();
    let mut outs = Vec::new();
    for tool in tools {
        let (by_itself, out, errs) = tool.wait(Duration::from_secs(5))?;
        if !by_itself {
            log::warn!("{label} was stopped at its time limit");
        }
        if out.trim().is_empty() {
            return err(format!(
                "{label} printed nothing: {}",
                procs::tail(&errs, 3)
            ));
        }
        outs.push(out);
    }
    let c1 = children_cpu_s();
    Ok(Measured {
        report: outs,
        server_cpu_s: procs::ticks_to_s(s0, s1_before_exit),
        client_cpu_s: (c1 - c0).max(0.0),
        placement,
        server_mem_kib: mem,
        kernel_tcp_mem_kib: ktcp,
        wall_s: t0.elapsed().as_secs_f64(),
        cores: core_usage(&k0, &k1),
        loadavg1,
        server_cpu_after_mark_s: mark_ticks
            .map(|t| procs::ticks_to_s(t, end_ticks.unwrap_or(s1_before_exit))),
    })
}

/// Most connections one load-tool process is given: below the open-file limit.
pub fn conns_per_process() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(s, _)| s as usize);
    soft.saturating_sub(1000).max(500)
}

/// Options of one `pktgen --template http` run (an HTTP client with its own TCP on an AF_XDP
/// socket on the client's veth end: no client kernel on either core).
#[derive(Clone, Debug)]
pub struct HttpGenOpts {
    /// Connections.
    pub conns: usize,
    /// Requests outstanding at most (0: one per connection).
    pub inflight: usize,
    /// One request per connection.
    pub close: bool,
    /// Seconds.
    pub seconds: u64,
    /// Client source addresses (198.18.0.10 and up).
    pub addrs: usize,
    /// SYNs per second while connecting (0: no limit).
    pub connect_rate: u64,
    /// Read the server's CPU at these two points of the run too (a steady phase: from the
    /// first to the second).
    pub marks: Option<(Duration, Duration)>,
}

impl HttpGenOpts {
    /// The command line, for the reports.
    pub fn describe(&self) -> String {
        format!(
            "pktgen --template http --conns {} --rate 0 --duration {} {}",
            self.conns,
            self.seconds,
            self.load_args().join(" ")
        )
    }

    /// The options that shape the load (the rest of the command line is fixed).
    fn load_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.close {
            args.push("--close".into());
        }
        if self.inflight > 0 {
            args.extend(strings(&["--inflight", &self.inflight.to_string()]));
        }
        if self.connect_rate > 0 {
            args.extend(strings(&["--connect-rate", &self.connect_rate.to_string()]));
        }
        // Source addresses of its own (198.18.0.10 and up, announced to the server by ARP): a
        // 4-tuple that wrk or curl left in TIME-WAIT on a kernel server takes a new SYN only
        // with an ISN above the old connection's, which another client's ISN is not (half of
        // nginx's connections then waited for retransmissions).
        args.extend(strings(&[
            "--src",
            &format!("198.18.0.10-198.18.0.{}", 9 + self.addrs.max(1)),
        ]));
        args
    }
}

/// The fixed part of every `pktgen --template http` command line from the client namespace:
/// `rate` requests/s in all (0: closed loop, each connection's next request when its response
/// is in) for `seconds` over `conns` connections, on `cpu`.
pub fn httpgen_args(sb: &Sandbox, cpu: &str, rate: u64, seconds: u64, conns: usize) -> Vec<String> {
    strings(&[
        "pktgen",
        "--iface",
        &sb.info().client_if,
        "--template",
        "http",
        "--dst",
        SERVER_IP,
        "--rate",
        &rate.to_string(),
        "--duration",
        &seconds.to_string(),
        "--conns",
        &conns.to_string(),
        "--frames",
        "65536",
        "--cores",
        cpu,
        "--drain",
        "500ms",
        // Generic XDP on the client's end: a veth whose peer has a native XDP program takes
        // the peer's packets into a 256-entry ring, and nginx's bursts of responses at 10,000
        // connections overflowed it (tens of thousands of drops, each a retransmission for
        // nginx); generic mode takes them through the kernel's backlog like any packet.
        "--xdp-mode",
        "generic",
        "--quiet",
    ])
}

/// Runs `pktgen --template http` from the client namespace against `server`.
pub fn run_httpgen(
    ctx: &Ctx,
    sb: &Sandbox,
    server: &Proc,
    cpu: &str,
    o: &HttpGenOpts,
    dir: &Path,
) -> Result<Measured<parse::HttpGenReport>> {
    let mut args = httpgen_args(sb, cpu, 0, o.seconds, o.conns);
    args.extend(o.load_args());
    let limit = Duration::from_secs(o.seconds + 40);
    let m = measure_many_marked(
        sb,
        server,
        cpu,
        "pktgen http",
        &ctx.bins.xdpstack,
        &[args],
        dir,
        limit,
        o.marks,
    )?;
    let out = m.report.first().cloned().unwrap_or_default();
    let r = parse::parse_pktgen_http(&out)?;
    if r.frame_accounting != "ok" {
        return err(format!(
            "pktgen http frame accounting: {}",
            r.frame_accounting
        ));
    }
    Ok(m.map(|_| r))
}

/// The usual metrics of a `pktgen --template http` run (named as wrk's where they mean the
/// same).
pub fn httpgen_metrics(m: &Measured<parse::HttpGenReport>) -> Metrics {
    let mut x = httpgen_base_metrics(m);
    let r = &m.report;
    x.insert("socket_errors".into(), (r.errors + r.timeouts) as f64);
    x
}

/// What every `pktgen --template http` run reports: throughput, latency, retransmissions,
/// CPU on both sides and the cores' busy shares.
pub fn httpgen_base_metrics(m: &Measured<parse::HttpGenReport>) -> Metrics {
    let r = &m.report;
    let mut x = Metrics::new();
    x.insert("rps".into(), r.rps);
    x.insert("requests".into(), r.responses as f64);
    x.insert("p50_us".into(), r.p50_us);
    x.insert("p99_us".into(), r.p99_us);
    x.insert("retransmits".into(), r.retransmits as f64);
    x.insert("server_cpu_s".into(), m.server_cpu_s);
    x.insert("client_cpu_s".into(), m.client_cpu_s);
    if let Some(v) = crate::stats::cpu_per_1k(m.server_cpu_s, r.responses as f64) {
        x.insert("server_cpu_ms_per_1k".into(), v * 1000.0);
    }
    add_core_metrics(&mut x, m);
    x
}

/// Runs wrk against `http://198.18.0.1:PORT/` from the client namespace: one process, or several
/// on the same core when the connections exceed one process's open-file limit (requests and
/// req/s are summed; latency percentiles are the worst of the processes).
pub fn run_wrk(
    sb: &Sandbox,
    server: &Proc,
    cpu: &str,
    o: &WrkOpts,
    dir: &Path,
) -> Result<Measured<WrkReport>> {
    let per = conns_per_process();
    let nproc = o.conns.div_ceil(per).max(1);
    let mut lists = Vec::new();
    for i in 0..nproc {
        let c = o.conns / nproc + usize::from(i < o.conns % nproc);
        let mut args = vec![
            format!("-t{}", o.threads.min(c)),
            format!("-c{c}"),
            format!("-d{}s", o.seconds),
            format!("--timeout={}s", o.timeout_s),
            "--latency".into(),
        ];
        if o.close {
            args.push("-H".into());
            args.push("Connection: close".into());
        }
        args.push(format!("http://{SERVER_IP}:{}/", o.port));
        lists.push(args);
    }
    let limit = Duration::from_secs(o.seconds + o.timeout_s + 30);
    let m = measure_many(sb, server, cpu, "wrk", "wrk", &lists, dir, limit)?;
    let mut total = WrkReport::default();
    for out in &m.report {
        let r = parse::parse_wrk(out)?;
        total.requests += r.requests;
        total.rps += r.rps;
        total.seconds = total.seconds.max(r.seconds);
        total.err_connect += r.err_connect;
        total.err_read += r.err_read;
        total.err_write += r.err_write;
        total.err_timeout += r.err_timeout;
        total.non_2xx += r.non_2xx;
        for (k, v) in r.latency_us {
            let e = total.latency_us.entry(k).or_insert(0.0);
            *e = e.max(v);
        }
    }
    Ok(m.map(|_| total))
}

/// `ctx.runs` rounds of wrk, each against every server in turn: `servers[i]` (its sandbox,
/// its process, the load) is measured as `case.subjects[i]`, which gets each run's metrics
/// or its error. The first round's placement samples go to `placement` when given. Stops
/// at an interrupt.
pub fn wrk_rounds(
    ctx: &Ctx,
    case: &mut Case,
    servers: &[(&Sandbox, &Proc, WrkOpts)],
    client_cpu: &str,
    dir: &Path,
    mut placement: Option<&mut Vec<Placement>>,
) -> Result<()> {
    for run in 0..ctx.runs {
        for (i, (sb, server, o)) in servers.iter().enumerate() {
            match run_wrk(sb, server, client_cpu, o, dir) {
                Ok(m) => {
                    if run == 0 {
                        if let Some(p) = placement.as_deref_mut() {
                            p.extend(m.placement.iter().cloned());
                        }
                    }
                    case.subjects[i].runs.push(wrk_metrics(&m));
                }
                Err(procs::BenchError::Interrupted) => return Err(procs::BenchError::Interrupted),
                Err(e) => case.subjects[i].errors.push(format!("run {run}: {e}")),
            }
        }
    }
    Ok(())
}

/// The usual metrics of a wrk run.
pub fn wrk_metrics(m: &Measured<WrkReport>) -> Metrics {
    let r = &m.report;
    let mut x = Metrics::new();
    x.insert("rps".into(), r.rps);
    x.insert("requests".into(), r.requests as f64);
    for (k, v) in &r.latency_us {
        x.insert(format!("{k}_us"), *v);
    }
    x.insert(
        "socket_errors".into(),
        (r.err_connect + r.err_read + r.err_write + r.err_timeout) as f64,
    );
    x.insert("non_2xx".into(), r.non_2xx as f64);
    x.insert("server_cpu_s".into(), m.server_cpu_s);
    x.insert("client_cpu_s".into(), m.client_cpu_s);
    if let Some(v) = crate::stats::cpu_per_1k(m.server_cpu_s, r.requests as f64) {
        x.insert("server_cpu_ms_per_1k".into(), v * 1000.0);
    }
    add_core_metrics(&mut x, m);
    x
}

/// Stops a stack server with SIGINT and reads its stats file.
pub fn stop_stack(p: Proc, stats: &Path) -> Result<runtime::report::ServerReport> {
    let label = p.label.clone();
    let (_, errs) = p.stop_with(nix::sys::signal::Signal::SIGINT, Duration::from_secs(10));
    let text = std::fs::read_to_string(stats).map_err(|e| {
        procs::BenchError::Msg(format!(
            "{label}: no stats file {} ({e}): {}",
            stats.display(),
            procs::tail(&errs, 3)
        ))
    })?;
    Ok(serde_json::from_str(&text)?)
}

/// The kernel HTTP server (`helper khttp`, `workers` threads on `cpus`, `--mode mode` and
/// `extra` arguments) in `sb`'s server namespace, up and accepting on port 80.
#[allow(clippy::too_many_arguments)]
pub fn start_khttp(
    ctx: &Ctx,
    sb: &Sandbox,
    cpus: &str,
    label: &str,
    workers: usize,
    mode: &str,
    extra: &[&str],
    dir: &Path,
) -> Result<Proc> {
    let mut args = strings(&[
        "khttp",
        "--bind",
        &format!("{SERVER_IP}:80"),
        "--threads",
        &workers.to_string(),
        "--cpus",
        cpus,
        "--mode",
        mode,
    ]);
    args.extend(strings(extra));
    let p = helper(ctx, &sb.info().server_ns, cpus, label, &args, dir)?;
    if !env::wait_tcp(sb, SERVER_IP, 80, Duration::from_secs(10))? {
        return procs::err(format!("{label} did not come up: {}", p.stderr_tail()));
    }
    Ok(p)
}

/// Starts a helper of this binary (`xdpstack-bench helper ...`) in a namespace.
pub fn helper(
    ctx: &Ctx,
    netns: &str,
    cpus: &str,
    label: &str,
    args: &[String],
    dir: &Path,
) -> Result<Proc> {
    let mut a = vec!["helper".to_string()];
    a.extend(args.iter().cloned());
    Proc::spawn(label, netns, cpus, &ctx.bins.bench, &a, dir)
}

/// Convenience: `&[&str]` to `Vec<String>`.
pub fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Where the cores went in the median runs of `a` and `b`: a factual sentence for a missed
/// target (which core was saturated, how much was softirq).
pub fn explain(
    case: &crate::model::Case,
    a: &str,
    b: &str,
    server_core: usize,
    client_core: usize,
) -> String {
    let mut parts = Vec::new();
    for name in [a, b] {
        let Some(s) = case.subject(name) else {
            continue;
        };
        let g = |k: String| s.median.get(&k).copied();
        if let (Some(sb), Some(cb)) = (
            g(format!("core{server_core}_busy_pct")),
            g(format!("core{client_core}_busy_pct")),
        ) {
            let ssi = g(format!("core{server_core}_softirq_pct")).unwrap_or(0.0);
            let csi = g(format!("core{client_core}_softirq_pct")).unwrap_or(0.0);
            let mut t = format!(
                "{name}: core {server_core} (server) {sb:.0}% busy, {ssi:.0}% in softirq; core {client_core} (load) {cb:.0}% busy, {csi:.0}% in softirq"
            );
            if let Some(c) = g("server_cpu_ms_per_1k".into()) {
                t.push_str(&format!(", server CPU {c:.1} ms per 1k"));
            }
            if cb >= 90.0 && sb < 90.0 {
                t.push_str(" (the load generator's core was the busier one)");
            } else if sb >= 90.0 {
                t.push_str(" (the server core was fully busy)");
            }
            parts.push(t);
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(
            "busy shares count every process on the machine; {}",
            parts.join(" | ")
        )
    }
}

/// nginx's temporary folders, all under `dir` (the `http` block's lines): nothing of a
/// benchmark's nginx is written outside its scratch folder.
pub fn nginx_temp_paths(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    \
         fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    \
         scgi_temp_path {d}/scgi;"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_masks() {
        assert_eq!(nginx_affinity(&[0], 1, 2), "01");
        assert_eq!(nginx_affinity(&[0, 1], 2, 2), "01 10");
        assert_eq!(nginx_affinity(&[1], 2, 4), "0010 0010");
    }
}
