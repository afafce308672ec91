//! Shared helpers of the privileged integration tests: the root check, the global lock,
//! sandboxes with unique names, a guard around an `xdpstack http|echo` server running in a
//! sandbox, a guard around any other background process ([`Spawned`]), and bounded client
//! commands run in the client namespace.
//!
//! Every client is bounded twice: by its own timeout (`curl -m`, python socket timeouts) and by
//! `timeout(1)` around it, so a hung client can never hang the test run.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use lab::sandbox::{self, Sandbox, SandboxSpec, Side};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_xdpstack");
/// Debian's python (scapy is installed for it); a pyenv python3 comes first on PATH.
pub const PY: &str = "/usr/bin/python3";
/// The stack's addresses in every sandbox, without prefix.
pub const SERVER_IP4: &str = "198.18.0.1";
pub const SERVER_IP6: &str = "2001:db8:18::1";

/// How long a server may take to answer after it is started.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a server may take to exit after SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// True if the test may run privileged steps: the one check of the test kit (skip without
/// root; under `XDPSTACK_REQUIRE_PRIV` or `CI` a failure, never a silent skip).
pub use testkit::privileged;

/// Taken by every privileged test: the machines have 2 cores, so run one at a time.
static LOCK: Mutex<()> = Mutex::new(());

/// Starts a privileged test: `None` (skip) if not root, else the global lock, held until the
/// returned guard drops. Declare the guard first so that it is released last.
pub fn begin() -> Option<MutexGuard<'static, ()>> {
    if !privileged() {
        return None;
    }
    // A test that panicked while holding the lock poisons it; the lock protects no data.
    let guard = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    sandbox::ensure_tools().expect("ip and ethtool available");
    Some(guard)
}

/// A fresh sandbox named `t<pid>-<tag>` (unique per test process and test), torn down on
/// drop. The whole pid is used: concurrent runs on one machine never share a name.
pub fn sandbox(tag: &str, queues: u16) -> Sandbox {
    let name = format!("t{}-{}", std::process::id(), tag);
    assert!(name.len() <= 24, "sandbox name {name:?} too long");
    Sandbox::up(&SandboxSpec { name, queues }).expect("sandbox up")
}

/// A unique path in the temp directory.
pub fn temp_path(tag: &str, ext: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "xdpstack-test-{}-{}-{}.{ext}",
        std::process::id(),
        tag,
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A process a test runs in the background (a daemon, an attached server, the reflector),
/// its stderr in a temp file. Dropping it kills the process if it still runs and removes its
/// files.
pub struct Spawned {
    child: Option<Child>,
    what: String,
    stderr: PathBuf,
    /// The process's other files (stats, sockets), removed on drop.
    files: Vec<PathBuf>,
}

impl Spawned {
    /// Spawns `cmd` with stdin from /dev/null and stderr to a new temp file tagged `tag`;
    /// `what` names it in failures; `files` are removed on drop with the stderr file.
    pub fn spawn(cmd: &mut Command, tag: &str, what: &str, files: &[&Path]) -> Spawned {
        let stderr = temp_path(tag, "err");
        let child = cmd
            .stdin(Stdio::null())
            .stderr(fs::File::create(&stderr).expect("create stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Spawned {
            child: Some(child),
            what: what.to_string(),
            stderr,
            files: files.iter().map(|f| f.to_path_buf()).collect(),
        }
    }

    /// Waits (at most 15 s) until `ready` holds for what the process wrote to stderr;
    /// panics with that text if it exits first.
    pub fn wait_started(&mut self, ready: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let err = self.stderr_text();
            if ready(&err) {
                return;
            }
            if let Some(s) = self.try_wait() {
                panic!("{} exited early ({s}):\n{err}", self.what);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start:\n{err}",
                self.what
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `Some(status)` if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().expect("try_wait"))
    }

    /// What the process wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends `sig` unless it has exited already, and waits for the exit (at most `limit`:
    /// then SIGKILL and a panic with its stderr).
    pub fn signal_and_wait(&mut self, sig: Signal, limit: Duration) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        if c.try_wait().expect("try_wait").is_none() {
            kill(Pid::from_raw(c.id() as i32), sig).unwrap_or_else(|e| panic!("{sig}: {e}"));
        }
        wait_bounded(&mut c, limit).unwrap_or_else(|| {
            panic!(
                "{} did not exit within {limit:?} of {sig}; stderr:\n{}",
                self.what,
                self.stderr_text()
            )
        })
    }

    /// SIGKILL, reaped; returns its pid.
    pub fn kill(&mut self) -> u32 {
        let mut c = self.child.take().expect("running");
        let pid = c.id();
        let _ = c.kill();
        let _ = c.wait();
        pid
    }

    /// SIGINT (unless it has exited already), a clean exit within `limit`, and the JSON of
    /// its stats file `stats`. Echoes its stderr.
    pub fn stop_with_stats(mut self, stats: &Path, limit: Duration) -> Value {
        let status = self.signal_and_wait(Signal::SIGINT, limit);
        let err = self.stderr_text();
        assert!(
            status.success(),
            "{} exited with {status} after SIGINT; stderr:\n{err}",
            self.what
        );
        eprint!("{err}");
        let text = fs::read_to_string(stats)
            .unwrap_or_else(|e| panic!("no stats file {}: {e}; stderr:\n{err}", stats.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("stats file is not JSON ({e}):\n{text}"))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = fs::remove_file(&self.stderr);
        for f in &self.files {
            let _ = fs::remove_file(f);
        }
    }
}

/// Waits for `child` to exit, at most `limit`: past it, kills it and returns `None`.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// `program args...` in the client namespace, under `timeout -k 2 SECS`.
pub fn client<I, S>(sb: &Sandbox, secs: u64, program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = sb.command(Side::Client, "timeout");
    cmd.args(["-k", "2", &secs.to_string(), program])
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to completion (it must be bounded, e.g. built by [`client`]).
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `cmd` and asserts success; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A python script (`/usr/bin/python3 -c SCRIPT ARGS...`) in the client namespace, bounded by
/// `secs`; asserts success and parses the last line of stdout as JSON.
pub fn python_json(sb: &Sandbox, secs: u64, script: &str, args: &[&str]) -> Value {
    let mut cmd = client(sb, secs, PY, ["-c", script]);
    cmd.args(args);
    let stdout = run_ok(&mut cmd);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("python printed no JSON last line ({e}):\n{stdout}"))
}

/// `curl -sS -m 5 -g EXTRA... URL` in the client namespace.
pub fn curl(sb: &Sandbox, extra: &[&str], url: &str) -> Output {
    let mut cmd = client(sb, 10, "curl", ["-sS", "-m", "5", "-g"]);
    cmd.args(extra).arg(url);
    output(&mut cmd)
}

/// `curl` that must succeed; returns the body.
pub fn curl_ok(sb: &Sandbox, url: &str) -> String {
    let out = curl(sb, &[], url);
    assert!(
        out.status.success(),
        "curl {url} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Checks once per process that Debian's python has scapy (scripts/deps.sh
/// installs it: package setup lives in the scripts, never in a test).
pub fn ensure_scapy() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let have = Command::new(PY)
            .args(["-c", "import scapy.all"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            have,
            "python3-scapy is missing: install it with scripts/deps.sh (the test command does)"
        );
    });
}

/// Which service a [`Server`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// `xdpstack http` (port 80 unless `--port` is given).
    Http,
    /// `xdpstack echo` (port 7 unless `--port` is given).
    Echo,
    /// `xdpstack dns` (port 53 unless `--port` is given; `--zone` in the extra arguments).
    Dns,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Http => "http",
            Service::Echo => "echo",
            Service::Dns => "dns",
        }
    }
}

/// An `xdpstack http|echo` process in a sandbox's server namespace, with both addresses and a
/// per-test stats file. Dropping it kills the process if it still runs and removes its files.
pub struct Server {
    proc: Spawned,
    service: Service,
    stats: PathBuf,
    /// Successful readiness probes (HTTP: each one is a request the server answered).
    pub probes: u64,
}

impl Server {
    /// Starts `xdpstack SERVICE --iface xdp0 --addr .. --addr6 .. --report .. EXTRA...`
    /// and waits (at most 15 s) until it answers: HTTP `curl` / echo TCP connect from the
    /// client namespace. Panics with the server's stderr if it exits early.
    pub fn start(sb: &Sandbox, service: Service, extra: &[&str]) -> Server {
        let info = sb.info();
        let tag = format!("{}-{}", info.name, service.name());
        let stats = temp_path(&tag, "json");
        let stdout = temp_path(&tag, "out");
        let mut cmd = sb.command(Side::Server, BIN);
        cmd.arg(service.name())
            .args(["--iface", &info.server_if])
            .args(["--addr", &info.server_ip4])
            .args(["--addr6", &info.server_ip6])
            .arg("--report")
            .arg(&stats)
            .args(extra)
            .stdout(fs::File::create(&stdout).expect("create stdout file"));
        let what = format!("the {} server", service.name());
        let proc = Spawned::spawn(&mut cmd, &tag, &what, &[&stats, &stdout]);
        let mut server = Server {
            proc,
            service,
            stats,
            probes: 0,
        };
        let port = extra
            .iter()
            .position(|a| *a == "--port")
            .and_then(|i| extra.get(i + 1))
            .map(|p| p.to_string())
            .unwrap_or_else(|| match service {
                Service::Http => "80".to_string(),
                Service::Echo => "7".to_string(),
                Service::Dns => "53".to_string(),
            });
        server.wait_ready(sb, &port);
        server
    }

    fn wait_ready(&mut self, sb: &Sandbox, port: &str) {
        let started = Instant::now();
        let deadline = started + READY_TIMEOUT;
        let mut attempt = 0;
        loop {
            if let Some(status) = self.try_wait() {
                panic!(
                    "the {} server exited early ({status}) after {attempt} probe(s); stderr:\n{}",
                    self.service.name(),
                    self.stderr_text()
                );
            }
            // The server prints one line once its sockets are open; probing earlier only
            // makes the client's ARP/NDP resolution time out. Probe anyway after 3 s.
            if !self.stderr_text().contains(" worker(s) on ")
                && started.elapsed() < Duration::from_secs(3)
            {
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            attempt += 1;
            let ok = match self.service {
                Service::Http => {
                    let url = format!("http://{SERVER_IP4}:{port}/");
                    client(sb, 5, "curl", ["-s", "-o", "/dev/null", "-m", "1", &url])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                }
                Service::Echo => client(sb, 5, PY, ["-c", CONNECT_PROBE, SERVER_IP4, port])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
                Service::Dns => client(sb, 5, PY, ["-c", DNS_PROBE, SERVER_IP4, port])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
            };
            if ok {
                self.probes += 1;
                eprintln!(
                    "{} server ready after {:.2?} ({} probe(s))",
                    self.service.name(),
                    started.elapsed(),
                    attempt
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the {} server did not answer within {READY_TIMEOUT:?}; stderr:\n{}",
                self.service.name(),
                self.stderr_text()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server's pid (the `ip netns exec` process execs the server).
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.proc.pid() as i32)
    }

    /// `Some(status)` if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.proc.try_wait()
    }

    /// What the server wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.proc.stderr_text()
    }

    /// Sends SIGINT, waits (at most 10 s) for a clean exit and returns the stats JSON.
    pub fn stop(self) -> Value {
        self.proc.stop_with_stats(&self.stats, STOP_TIMEOUT)
    }
}

/// Exits 0 if a TCP connection to argv[1]:argv[2] succeeds within 1 s.
const CONNECT_PROBE: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
s.close()
"#;

/// Exits 0 if a UDP DNS query (`. SOA`, id 0x5EED) to argv[1]:argv[2] gets a response with the
/// same id within 1 s (any rcode: a server answers REFUSED for a name outside its zone).
const DNS_PROBE: &str = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.sendto(bytes.fromhex("5eed00000001000000000000") + b"\x00\x00\x06\x00\x01", (host, port))
data = s.recv(4096)
sys.exit(0 if data[:2] == bytes.fromhex("5eed") and data[2] & 0x80 else 1)
"#;

/// The `workers` array of a stats report.
pub fn workers(stats: &Value) -> &Vec<Value> {
    stats["workers"]
        .as_array()
        .unwrap_or_else(|| panic!("no workers in stats: {stats:#}"))
}

/// A `u64` at `pointer` (JSON pointer, e.g. `/app/requests`) in `v`.
pub fn num(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no number at {pointer} in {v:#}"))
}

/// The sum of `pointer` over all workers.
pub fn total(stats: &Value, pointer: &str) -> u64 {
    workers(stats).iter().map(|w| num(w, pointer)).sum()
}

/// Asserts that every worker's frame accounting is `"ok"`.
pub fn assert_frames_ok(stats: &Value) {
    let ws = workers(stats);
    assert!(!ws.is_empty(), "no workers in stats: {stats:#}");
    for w in ws {
        assert_eq!(
            w["frame_accounting"], "ok",
            "worker {} frame accounting: {}",
            w["worker"], w["frame_accounting"]
        );
    }
}

/// Names of existing network namespaces (`ip netns list`).
pub fn netns_list() -> Vec<String> {
    let out = run_ok(Command::new("ip").args(["netns", "list"]));
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `ab -q -s 10 -n N -c C [-k] URL` in the client namespace (bounded to
/// 240 s): (complete, failed, non-2xx, stdout and stderr).
pub fn ab(sb: &Sandbox, url: &str, n: u32, c: u32, keepalive: bool) -> (u64, u64, u64, String) {
    let (n, c) = (n.to_string(), c.to_string());
    let mut args = vec!["-q", "-s", "10", "-n", &n, "-c", &c];
    if keepalive {
        args.push("-k");
    }
    args.push(url);
    let out = output(&mut client(sb, 240, "ab", &args));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        field("Complete requests"),
        field("Failed requests"),
        field("Non-2xx responses"),
        text,
    )
}

/// The uid of unprivileged attached processes (nobody).
pub const NOBODY: &str = "65534";

/// `n` new connections (HTTP/1.0, one request each); the bodies counted.
pub const COUNT_BODIES: &str = r#"
import socket, sys, json
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
counts = {}; errors = []
for i in range(n):
    try:
        s = socket.create_connection((host, port), timeout=3)
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d: break
            data += d
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.0 200") and not head.startswith(b"HTTP/1.1 200"):
            raise Exception("bad response %r" % head[:40])
        b = body.decode().strip()
        counts[b] = counts.get(b, 0) + 1
    except Exception as e:
        errors.append(str(e))
print(json.dumps({"counts": counts, "errors": errors}))
"#;

/// How many answers `counts` (COUNT_BODIES' `counts`) has with `body`.
pub fn count(v: &serde_json::Value, body: &str) -> u64 {
    v[body].as_u64().unwrap_or(0)
}
