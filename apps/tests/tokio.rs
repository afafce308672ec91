//! `xdpstack-tokio` end to end: the `axum_hello` example (axum over hyper
//! 1.x through hyper-util's `TokioIo`) attached to `xdpstack daemon` in the
//! sandbox's server namespace, as uid 65534 with no capabilities; kernel
//! clients (curl, python) in the client namespace. Port sharing between
//! processes and the uid rule, large bodies byte-exact both ways,
//! half-close, and the daemon killed under a pending accept and read.
//!
//! The example is built by `cargo test --workspace` (as every example of
//! the workspace); run alone, build it first:
//! `cargo build -p xdpstack-tokio --example axum_hello`.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use lab::sandbox::{Sandbox, Side};
use serde_json::Value;

/// The example binary, beside the test's own directory.
fn axum_hello() -> PathBuf {
    example("axum_hello")
}

/// Example `name` of xdpstack-tokio, built beside the test's own directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let p = dir.join("examples").join(name);
    assert!(
        p.exists(),
        "{} missing: cargo build -p xdpstack-tokio --example {name} (cargo test --workspace builds it)",
        p.display()
    );
    p
}

/// `xdpstack daemon` in the server namespace, control socket open to all.
struct Daemon {
    proc: Spawned,
    sock: PathBuf,
    stats: PathBuf,
}

impl Daemon {
    fn start(sb: &Sandbox) -> Daemon {
        let info = sb.info();
        let tag = format!("{}-daemon", info.name);
        let sock = temp_path(&tag, "sock");
        let stats = temp_path(&tag, "json");
        let mut cmd = sb.command(Side::Server, BIN);
        cmd.arg("daemon")
            .args(["--iface", &info.server_if])
            .args(["--addr", &info.server_ip4])
            .args(["--addr6", &info.server_ip6])
            .args(["--workers", "2", "--control-mode", "666"])
            .arg("--control")
            .arg(&sock)
            .arg("--report")
            .arg(&stats)
            .stdout(Stdio::null());
        let mut proc = Spawned::spawn(&mut cmd, &tag, "the daemon", &[&sock, &stats]);
        let ready = sock.clone();
        proc.wait_started(|err| ready.exists() && err.contains(" worker(s) on "));
        Daemon { proc, sock, stats }
    }

    fn stop(self) -> Value {
        self.proc
            .stop_with_stats(&self.stats, Duration::from_secs(15))
    }
}

/// `axum_hello --attach` as `uid` with no capabilities (setpriv).
fn attach_cmd(d: &Daemon, uid: &str, body: &str, extra: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid",
        uid,
        "--regid",
        uid,
        "--clear-groups",
        "--inh-caps=-all",
    ])
    .arg(axum_hello())
    .arg("--attach")
    .arg(&d.sock)
    .args(["--port", "8080", "--body", &format!("{body}\n")])
    .args(extra)
    .stdout(Stdio::null());
    c
}

/// A running `axum_hello` process.
struct App(Spawned);

impl App {
    fn start(d: &Daemon, uid: &str, body: &str, extra: &[&str]) -> App {
        let mut cmd = attach_cmd(d, uid, body, extra);
        let mut p = Spawned::spawn(&mut cmd, &format!("axum-{body}"), body, &[]);
        p.wait_started(|err| err.contains("listening on"));
        App(p)
    }

    fn creds(&self) -> (u32, u64) {
        let s = fs::read_to_string(format!("/proc/{}/status", self.0.pid())).unwrap();
        let field = |name: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_default()
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        };
        (
            field("Uid:").parse().unwrap(),
            u64::from_str_radix(&field("CapEff:"), 16).unwrap(),
        )
    }
}

#[test]
fn axum_through_the_daemon_shares_a_port_between_processes_of_one_uid() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("tok-share", 2);
    let d = Daemon::start(&sb);
    let a = App::start(&d, NOBODY, "A", &[]);
    // B on a multi-threaded runtime: the stack is shared by its threads.
    let b = App::start(&d, NOBODY, "B", &["--threads", "2"]);
    for p in [&a, &b] {
        assert_eq!(p.creds(), (65534, 0), "uid 65534 with no capabilities");
    }
    let body = curl_ok(&sb, &format!("http://{SERVER_IP4}:8080/"));
    assert!(body == "A\n" || body == "B\n", "{body:?}");
    let r = python_json(&sb, 120, COUNT_BODIES, &[SERVER_IP4, "8080", "200"]);
    eprintln!("200 new connections: {r}");
    let counts = &r["counts"];
    assert_eq!(r["errors"].as_array().map_or(0, |e| e.len()), 0, "{r}");
    assert_eq!(count(counts, "A") + count(counts, "B"), 200, "{r}");
    for x in ["A", "B"] {
        assert!(count(counts, x) >= 70, "{x} got less than 35%: {r}");
    }
    // Keep-alive: many requests on few connections (ab -k).
    let (complete, failed, non2xx, text) =
        ab(&sb, &format!("http://{SERVER_IP4}:8080/"), 5_000, 8, true);
    assert_eq!((complete, failed, non2xx), (5_000, 0, 0), "ab:\n{text}");

    // Another uid: refused by the daemon, with its reason.
    let c = attach_cmd(&d, "4242", "C", &[]);
    let out = output(
        Command::new("timeout")
            .args(["-k", "2", "15"])
            .arg(c.get_program())
            .args(c.get_args())
            .stdin(Stdio::null()),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "uid 4242 was let in: {err}");
    assert!(err.contains("refused port hijack"), "{err}");
    // A and B still serve everything.
    let r = python_json(&sb, 120, COUNT_BODIES, &[SERVER_IP4, "8080", "40"]);
    assert_eq!(
        count(&r["counts"], "A") + count(&r["counts"], "B"),
        40,
        "{r}"
    );
    // B killed: the daemon detaches it as any attached process (its
    // members leave the group, its shared memory is unmapped) and A takes
    // every new connection.
    let mut b = b;
    let pid = b.0.kill();
    let needle = format!("process {pid} (client");
    let t = Instant::now();
    while !d
        .proc
        .stderr_text()
        .lines()
        .any(|l| l.contains(&needle) && l.ends_with("detached"))
    {
        assert!(t.elapsed() < Duration::from_secs(5), "{pid} not detached");
        thread::sleep(Duration::from_millis(10));
    }
    let maps = || {
        fs::read_to_string(format!("/proc/{}/maps", d.proc.pid()))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("memfd:xdpstack-{pid}-")))
            .count()
    };
    while maps() > 0 {
        assert!(t.elapsed() < Duration::from_secs(5), "{pid} still mapped");
        thread::sleep(Duration::from_millis(10));
    }
    let r = python_json(&sb, 120, COUNT_BODIES, &[SERVER_IP4, "8080", "40"]);
    assert_eq!(count(&r["counts"], "A"), 40, "{r}");
    drop((a, b));
    let stats = d.stop();
    for w in workers(&stats) {
        assert_eq!(num(w, "/app/corrupt"), 0, "{w:#}");
    }
    assert_frames_ok(&stats);
}

/// `n` bytes of the example's `/bytes/N` stream (xorshift64).
fn pattern(n: u64) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Bytes of the large-body test: 64 MiB unless `XDPSTACK_TOKIO_BIG` says.
fn big_len() -> u64 {
    std::env::var("XDPSTACK_TOKIO_BIG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64 << 20)
}

#[test]
fn large_bodies_cross_byte_exact_both_ways() {
    let Some(_lock) = begin() else { return };
    let n = big_len();
    let file = temp_path("tok-big", "bin");
    {
        let mut f = fs::File::create(&file).unwrap();
        // In pieces: 1 GiB needs no 1 GiB buffer.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut left = n;
        let mut buf = vec![0u8; 1 << 20];
        while left > 0 {
            let k = left.min(buf.len() as u64) as usize;
            for b in &mut buf[..k] {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            f.write_all(&buf[..k]).unwrap();
            left -= k as u64;
        }
    }
    assert_eq!(
        pattern(4096)[..],
        fs::read(&file).unwrap()[..4096.min(n as usize)]
    );
    let want = run_ok(Command::new("sha256sum").arg(&file));
    let want = want.split_whitespace().next().unwrap().to_string();
    let sb = sandbox("tok-big", 2);
    let d = Daemon::start(&sb);
    let a = App::start(&d, NOBODY, "A", &[]);
    let secs = 60 + n / (1 << 20);
    let url = format!("http://{SERVER_IP4}:8080");

    // Download: the stream hashed as it arrives.
    let t = Instant::now();
    let got = run_ok(&mut client(
        &sb,
        secs,
        "sh",
        [
            "-c",
            &format!("curl -sS -m {secs} {url}/bytes/{n} | sha256sum"),
        ],
    ));
    let down = t.elapsed();
    assert_eq!(
        got.split_whitespace().next(),
        Some(want.as_str()),
        "download"
    );

    // Upload: streamed from the file, hashed by the handler as it comes.
    let t = Instant::now();
    let out = run_ok(&mut client(
        &sb,
        secs,
        "curl",
        [
            "-sS",
            "-m",
            &secs.to_string(),
            "-X",
            "POST",
            "-T",
            file.to_str().unwrap(),
            &format!("{url}/sha256"),
        ],
    ));
    let up = t.elapsed();
    let _ = fs::remove_file(&file);
    assert_eq!(out.trim(), format!("{n} {want}"), "upload");
    let mib = n as f64 / (1 << 20) as f64;
    eprintln!(
        "{mib:.0} MiB: download {:.2} s ({:.1} MiB/s), upload {:.2} s ({:.1} MiB/s)",
        down.as_secs_f64(),
        mib / down.as_secs_f64(),
        up.as_secs_f64(),
        mib / up.as_secs_f64()
    );
    drop(a);
    let stats = d.stop();
    assert_frames_ok(&stats);
}

/// The client half-closes after its request; the answer still comes, then
/// the server's FIN.
const HALF_CLOSE: &str = r#"
import socket, sys, json
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=5)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    d = s.recv(65536)
    if not d: break
    data += d
head, _, body = data.partition(b"\r\n\r\n")
print(json.dumps({"status": head.split(b"\r\n")[0].decode(), "body": body.decode()}))
"#;

#[test]
fn half_close_and_a_killed_daemon() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("tok-half", 2);
    let mut d = Daemon::start(&sb);
    let mut a = App::start(&d, NOBODY, "A", &[]);
    for _ in 0..4 {
        let r = python_json(&sb, 30, HALF_CLOSE, &[SERVER_IP4, "8080"]);
        assert_eq!(r["status"], "HTTP/1.1 200 OK", "{r}");
        assert_eq!(r["body"], "A\n", "{r}");
    }

    // A connection whose request is not complete: hyper waits in a read.
    let mut partial = client(
        &sb,
        30,
        PY,
        [
            "-c",
            "import socket,sys,time\ns=socket.create_connection((sys.argv[1],8080),timeout=20)\ns.sendall(b'GET / HTTP/1.1\\r\\n')\nprint('sent',flush=True)\ntime.sleep(15)",
            SERVER_IP4,
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("python");
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(partial.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "sent");
    }
    // Let the daemon hand it over and hyper read the first line.
    thread::sleep(Duration::from_millis(300));
    d.proc.kill();
    // The accept and the read fail with the reason, and the process exits.
    let t = Instant::now();
    let status = loop {
        if let Some(s) = a.0.try_wait() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the process did not notice the daemon's end:\n{}",
            a.0.stderr_text()
        );
        thread::sleep(Duration::from_millis(20));
    };
    let err = a.0.stderr_text();
    eprintln!("after kill -9 of the daemon ({:?}):\n{err}", t.elapsed());
    assert!(!status.success());
    assert!(
        err.contains("accept: the xdpstack daemon is gone"),
        "accept: {err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("connection from") && l.contains("the xdpstack daemon is gone")),
        "the pending read: {err}"
    );
    let _ = partial.kill();
    let _ = partial.wait();
}

/// `n` sockets (so `n` source ports) each send one datagram and wait for it
/// back (one retry).
const UDP_ECHO: &str = r#"
import socket, sys, json, os
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ok = 0
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    msg = b"dgram-%d-" % i + os.urandom(16 + i * 7)
    for attempt in range(2):
        s.sendto(msg, (host, port))
        try:
            if s.recv(65536) == msg:
                ok += 1
                break
        except socket.timeout:
            pass
    s.close()
print(json.dumps({"ok": ok}))
"#;

#[test]
fn udp_echo_through_the_daemon() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("tok-udp", 2);
    let d = Daemon::start(&sb);
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid",
        NOBODY,
        "--regid",
        NOBODY,
        "--clear-groups",
        "--inh-caps=-all",
    ])
    .arg(example("udp_echo"))
    .arg("--attach")
    .arg(&d.sock)
    .stdout(Stdio::null());
    let mut p = Spawned::spawn(&mut cmd, "udp-echo", "udp_echo", &[]);
    p.wait_started(|err| err.contains("listening on"));
    let r = python_json(&sb, 120, UDP_ECHO, &[SERVER_IP4, "7007", "100"]);
    assert!(num(&r, "/ok") >= 99, "{r}\n{}", p.stderr_text());
    drop(p);
    let stats = d.stop();
    let udp: u64 = workers(&stats)
        .iter()
        .map(|w| num(w, "/app/datagrams_from_apps"))
        .sum();
    assert!(udp >= 99, "datagrams sent for the process: {udp}");
    assert_frames_ok(&stats);
}

/// HTTP/2 with prior knowledge (h2c) through the daemon: h2load keeps 100
/// streams open at once on each of its 2 connections, every one answered in
/// full; one body byte-exact.
#[test]
fn http2_streams_through_the_daemon() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("tok-h2", 2);
    let d = Daemon::start(&sb);
    let a = App::start(&d, NOBODY, "A", &[]);
    let url = format!("http://{SERVER_IP4}:8080");
    let out = run_ok(&mut client(
        &sb,
        90,
        "h2load",
        [
            "-n",
            "2000",
            "-c",
            "2",
            "-m",
            "100",
            "-T",
            "30",
            &format!("{url}/bytes/20000"),
        ],
    ));
    let line = out
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or_else(|| panic!("h2load said:\n{out}"));
    eprintln!("h2load: {line}");
    assert!(
        line.contains("2000 succeeded, 0 failed, 0 errored, 0 timeout"),
        "{out}"
    );
    assert!(out.contains("Application protocol: h2c"), "{out}");
    let traffic = out
        .lines()
        .find(|l| l.starts_with("traffic:"))
        .unwrap_or_default();
    // "..., 38.15MB (40000000) data": every body whole.
    let data: u64 = traffic
        .split(", ")
        .find(|p| p.ends_with(" data"))
        .and_then(|p| p.split_once('(')?.1.split_once(')'))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(data, 2000 * 20000, "{traffic}");

    // 200 streams at once on one connection (hyper's limit here is 256).
    let out = run_ok(&mut client(
        &sb,
        90,
        "h2load",
        [
            "-n",
            "4000",
            "-c",
            "1",
            "-m",
            "200",
            "-T",
            "30",
            &format!("{url}/bytes/4000"),
        ],
    ));
    let line = out
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or_else(|| panic!("h2load said:\n{out}"));
    eprintln!("h2load, 1 connection, 200 streams: {line}");
    assert!(
        line.contains("4000 succeeded, 0 failed, 0 errored, 0 timeout"),
        "{out}"
    );

    // One larger body, hashed.
    let file = temp_path("tok-h2", "bin");
    fs::write(&file, pattern(3 << 20)).unwrap();
    let want = run_ok(Command::new("sha256sum").arg(&file));
    let _ = fs::remove_file(&file);
    let got = run_ok(&mut client(
        &sb,
        60,
        "sh",
        [
            "-c",
            &format!(
                "curl -sS -m 50 --http2-prior-knowledge {url}/bytes/{} | sha256sum",
                3 << 20
            ),
        ],
    ));
    assert_eq!(
        got.split_whitespace().next(),
        want.split_whitespace().next()
    );
    drop(a);
    let stats = d.stop();
    assert_frames_ok(&stats);
}

/// HTTPS: tokio-rustls over the daemon's streams (a self-signed certificate,
/// ALPN h2 and http/1.1): an 8 MiB body byte-exact over each, and h2load's
/// streams over TLS.
#[test]
fn https_through_the_daemon() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("tok-tls", 2);
    let d = Daemon::start(&sb);
    let a = App::start(&d, NOBODY, "A", &["--tls"]);
    let url = format!("https://{SERVER_IP4}:8080");
    let body = run_ok(&mut client(
        &sb,
        20,
        "curl",
        ["-sS", "-k", "-m", "10", &url],
    ));
    assert_eq!(body, "A\n");
    let n = 8u64 << 20;
    let file = temp_path("tok-tls", "bin");
    fs::write(&file, pattern(n)).unwrap();
    let want = run_ok(Command::new("sha256sum").arg(&file));
    let want = want.split_whitespace().next().unwrap().to_string();
    for version in ["--http1.1", "--http2"] {
        let got = run_ok(&mut client(
            &sb,
            60,
            "sh",
            [
                "-c",
                &format!("curl -sS -k -m 50 {version} {url}/bytes/{n} | sha256sum"),
            ],
        ));
        assert_eq!(
            got.split_whitespace().next(),
            Some(want.as_str()),
            "{version}"
        );
        let out = run_ok(&mut client(
            &sb,
            60,
            "curl",
            [
                "-sS",
                "-k",
                "-m",
                "50",
                version,
                "-X",
                "POST",
                "-T",
                file.to_str().unwrap(),
                &format!("{url}/sha256"),
            ],
        ));
        assert_eq!(out.trim(), format!("{n} {want}"), "upload {version}");
    }
    let _ = fs::remove_file(&file);
    let out = run_ok(&mut client(
        &sb,
        90,
        "h2load",
        [
            "-n",
            "1000",
            "-c",
            "2",
            "-m",
            "50",
            &format!("{url}/bytes/4000"),
        ],
    ));
    assert!(
        out.contains("1000 succeeded, 0 failed, 0 errored, 0 timeout"),
        "{out}"
    );
    assert!(out.contains("Application protocol: h2"), "{out}");
    drop(a);
    let stats = d.stop();
    assert_frames_ok(&stats);
}

/// gRPC (tonic's server machinery over hyper's HTTP/2) through the daemon,
/// loaded by a tonic client from the client namespace: 2,000 unary calls,
/// 50 in flight, every answer right.
#[test]
fn grpc_through_the_daemon() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("tok-grpc", 2);
    let d = Daemon::start(&sb);
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid",
        NOBODY,
        "--regid",
        NOBODY,
        "--clear-groups",
        "--inh-caps=-all",
    ])
    .arg(example("grpc_hello"))
    .arg("--attach")
    .arg(&d.sock)
    .args(["--port", "8080"])
    .stdout(Stdio::null());
    let mut p = Spawned::spawn(&mut cmd, "grpc", "grpc_hello", &[]);
    p.wait_started(|err| err.contains("listening on"));
    let bin = example("grpc_hello");
    let out = run_ok(&mut client(
        &sb,
        90,
        bin.to_str().unwrap(),
        [
            "--client",
            &format!("http://{SERVER_IP4}:8080"),
            "--requests",
            "2000",
            "--concurrency",
            "50",
        ],
    ));
    let r: Value = serde_json::from_str(out.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {out}"));
    eprintln!("gRPC through the daemon: {r}");
    assert_eq!((num(&r, "/ok"), num(&r, "/failed")), (2000, 0), "{r}");
    drop(p);
    let stats = d.stop();
    assert_frames_ok(&stats);
}

/// The raw port of `axum_hello`: `HALF x` answered with `bye x` and our
/// shutdown; the peer sees the end, then sends 1 MiB and its own end.
const RAW_HALF: &str = r#"
import socket, sys, json, os, hashlib
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=10)
s.sendall(b"HALF x\n")
got = b""
while True:
    d = s.recv(65536)
    if not d: break
    got += d
data = os.urandom(1 << 20)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
print(json.dumps({"reply": got.decode(), "local": "%s:%d" % s.getsockname(),
                  "n": len(data), "sha": hashlib.sha256(data).hexdigest()}))
s.close()
"#;

/// The raw port as the server of hyper's client: `CLIENT`, then the
/// request read and a 2 MiB answer written.
const RAW_CLIENT: &str = r#"
import socket, sys, json, os, hashlib, time
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=10)
s.sendall(b"CLIENT\n")
req = b""
while b"\r\n\r\n" not in req:
    d = s.recv(65536)
    if not d: break
    req += d
body = os.urandom(2 << 20)
s.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
time.sleep(0.5)
s.close()
print(json.dumps({"request": req.split(b"\r\n")[0].decode(), "n": len(body),
                  "sha": hashlib.sha256(body).hexdigest()}))
"#;

/// Wait (10 s at most) for a line of `app`'s stderr holding `needle`.
fn stderr_line(app: &App, needle: &str) -> String {
    let t = Instant::now();
    loop {
        let err = app.0.stderr_text();
        if let Some(l) = err.lines().find(|l| l.contains(needle)) {
            return l.to_string();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no {needle:?} in:\n{err}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// tokio's half-close from the application's side: the stream's write half
/// shut down, the peer sees the end of stream, and what the peer sends
/// after it still arrives whole. hyper 1.x's *client* (through `TokioIo`)
/// on an accepted stream (the daemon makes no outgoing connections, see
/// docs/TOKIO.md). `local_addr` of a connection on a wildcard listener is
/// the address the peer reached.
#[test]
fn raw_streams_half_close_and_hyper_client_through_the_daemon() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("tok-raw", 2);
    let d = Daemon::start(&sb);
    let a = App::start(&d, NOBODY, "A", &["--raw-port", "9090"]);
    for round in 0..3 {
        let r = python_json(&sb, 30, RAW_HALF, &[SERVER_IP4, "9090"]);
        assert_eq!(r["reply"], "bye x\n", "{r}");
        let sha = r["sha"].as_str().unwrap();
        let line = stderr_line(&a, &format!("sha256 {sha}"));
        assert!(
            line.contains("raw: 1048576 bytes after our shutdown"),
            "round {round}: {line}"
        );
        // Our address as the peer reached it, not the wildcard bound.
        let from = r["local"].as_str().unwrap();
        let seen = stderr_line(&a, &format!("from Some({from})"));
        assert!(
            seen.contains(&format!("to Some({SERVER_IP4}:9090)")),
            "{seen}"
        );
    }
    let r = python_json(&sb, 30, RAW_CLIENT, &[SERVER_IP4, "9090"]);
    assert_eq!(r["request"], "GET /reverse HTTP/1.1", "{r}");
    let line = stderr_line(&a, "raw: client got");
    assert_eq!(
        line,
        format!(
            "raw: client got 200, {} bytes, sha256 {}",
            r["n"],
            r["sha"].as_str().unwrap()
        ),
        "{r}"
    );
    drop(a);
    let stats = d.stop();
    assert_frames_ok(&stats);
}

/// Resident memory of process `pid` (kB), 0 once it is gone.
fn rss_kb(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Back-pressure both ways: an application that leaves a 512 MiB upload
/// unread for 6 s, and a client that leaves a 1 GiB download unread for
/// 4 s, grow neither the application nor the daemon (the receive window
/// and the send credit stop the bytes, the peers' TCP windows close); the
/// upload is still whole once read.
#[test]
fn an_application_that_does_not_read_grows_nothing() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("tok-bp", 2);
    let d = Daemon::start(&sb);
    let a = App::start(&d, NOBODY, "A", &[]);
    let (app, daemon) = (a.0.pid(), d.proc.pid());
    // Warm up (buffers, the allocator), then the baseline.
    let _ = curl_ok(&sb, &format!("http://{SERVER_IP4}:8080/bytes/1000000"));
    let (app0, daemon0) = (rss_kb(app), rss_kb(daemon));
    let sample = |secs: f64| {
        let (mut a_max, mut d_max) = (0, 0);
        let t = Instant::now();
        while t.elapsed().as_secs_f64() < secs {
            a_max = a_max.max(rss_kb(app));
            d_max = d_max.max(rss_kb(daemon));
            thread::sleep(Duration::from_millis(100));
        }
        (a_max, d_max)
    };

    let n: u64 = 512 << 20;
    let mut up = client(
        &sb,
        120,
        "sh",
        [
            "-c",
            &format!(
                "head -c {n} /dev/zero | curl -sS -m 100 -X POST -T - http://{SERVER_IP4}:8080/hold/6000"
            ),
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("curl");
    let (a_up, d_up) = sample(5.0);
    let out = wait_bounded(&mut up, Duration::from_secs(120)).expect("curl ended");
    assert!(out.success());
    let mut text = String::new();
    std::io::Read::read_to_string(&mut up.stdout.take().unwrap(), &mut text).unwrap();
    let zeros =
        run_ok(Command::new("sh").args(["-c", &format!("head -c {n} /dev/zero | sha256sum")]));
    assert_eq!(
        text.trim(),
        format!("{n} {}", zeros.split_whitespace().next().unwrap()),
        "the held upload"
    );

    let mut down = client(
        &sb,
        30,
        PY,
        [
            "-c",
            "import socket,sys,time\ns=socket.create_connection((sys.argv[1],8080),timeout=20)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,65536)\ns.sendall(b'GET /bytes/1073741824 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\ntime.sleep(5)",
            SERVER_IP4,
        ],
    )
    .spawn()
    .expect("python");
    thread::sleep(Duration::from_millis(500));
    let (a_down, d_down) = sample(4.0);
    let _ = down.kill();
    let _ = down.wait();
    let mib = |kb: u64, base: u64| kb.saturating_sub(base) as f64 / 1024.0;
    eprintln!(
        "RSS growth, upload held: app {:.1} MiB, daemon {:.1} MiB; download unread: app {:.1} MiB, daemon {:.1} MiB (from {} and {} kB)",
        mib(a_up, app0),
        mib(d_up, daemon0),
        mib(a_down, app0),
        mib(d_down, daemon0),
        app0,
        daemon0
    );
    for (what, g) in [
        ("app, upload held", mib(a_up, app0)),
        ("daemon, upload held", mib(d_up, daemon0)),
        ("app, download unread", mib(a_down, app0)),
        ("daemon, download unread", mib(d_down, daemon0)),
    ] {
        assert!(g < 48.0, "{what}: RSS grew {g:.1} MiB");
    }
    drop(a);
    let stats = d.stop();
    let full: u64 = workers(&stats)
        .iter()
        .map(|w| num(w, "/app/window_full"))
        .sum();
    assert!(full > 0, "the receive window never filled");
    assert_frames_ok(&stats);
}

/// The client namespace's kernel peer of the outgoing connections: an HTTP
/// server on `argv[2]` serving directory `argv[1]` (each request logged on
/// stderr), and on `argv[3]` a server that accepts and never answers
/// (`accepted` on stderr).
const PEER_SERVERS: &str = r#"
import functools, http.server, socket, sys, threading
d, port, silent = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", silent))
ls.listen(8)
held = []
def hold():
    while True:
        c, _ = ls.accept()
        held.append(c)
        print("accepted", file=sys.stderr, flush=True)
threading.Thread(target=hold, daemon=True).start()
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=d)
s = http.server.ThreadingHTTPServer(("0.0.0.0", port), h)
print("serving", file=sys.stderr, flush=True)
s.serve_forever()
"#;

/// `http_get --attach` (hyper's client on `xdpstack_tokio` outgoing
/// connections) as uid 65534 with no capabilities, bounded.
fn http_get(d: &Daemon, url: &str, count: usize) -> Command {
    let mut c = Command::new("timeout");
    c.args(["-k", "2", "60", "setpriv"])
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .arg("--inh-caps=-all")
        .arg(example("http_get"))
        .arg("--attach")
        .arg(&d.sock)
        .args(["--url", url, "--count", &count.to_string()])
        .stdin(Stdio::null());
    c
}

/// Issue 22: hyper 1.x's client on outgoing connections through the daemon
/// (2 workers) fetches a file from a kernel HTTP server in the client
/// namespace byte-exact, on connections spread over both daemon cores from
/// ports of the ephemeral range; a port nothing listens on is refused
/// (`ConnectionRefused`); a request waiting on a silent server fails with
/// "the xdpstack daemon is gone" when the daemon is killed.
#[test]
fn outgoing_connections_hyper_client_through_the_daemon() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("tok-conn", 2);
    let client_ip = sb.info().client_ip4.split('/').next().unwrap().to_string();
    let mut d = Daemon::start(&sb);
    // The file, and the SHA-256 the fetches must match.
    let dir = temp_path("tok-conn", "d");
    fs::create_dir_all(&dir).unwrap();
    let blob = dir.join("blob");
    fs::write(&blob, testkit::Rng::new(22).bytes(3 << 20 | 77)).unwrap();
    let sum = run_ok(Command::new("sha256sum").arg(&blob));
    let want = sum.split_whitespace().next().unwrap().to_string();
    let mut peer = Spawned::spawn(
        client(&sb, 120, PY, ["-c", PEER_SERVERS])
            .arg(&dir)
            .args(["8000", "8001"]),
        "tok-conn-peer",
        "the peer's servers",
        &[&blob],
    );
    peer.wait_started(|err| err.contains("serving"));

    let out = output(&mut http_get(
        &d,
        &format!("http://{client_ip}:8000/blob"),
        6,
    ));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "http_get: {stderr}\n{stdout}");
    let got: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), 6, "{stdout}");
    let mut ports = Vec::new();
    for r in &got {
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["len"], (3 << 20 | 77) as u64, "{r}");
        assert_eq!(r["sha256"], want.as_str(), "{r}");
        assert_eq!(r["peer"], format!("{client_ip}:8000"), "{r}");
        let local: std::net::SocketAddr = r["local"].as_str().unwrap().parse().unwrap();
        assert_eq!(local.ip().to_string(), SERVER_IP4, "{r}");
        assert!((32768..=60999).contains(&local.port()), "{r}");
        ports.push(local.port());
    }
    eprintln!("6 fetches byte-exact from local ports {ports:?}");

    // Nothing listens on 9: the peer's RST refuses the connection.
    let out = output(&mut http_get(&d, &format!("http://{client_ip}:9/"), 1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "connected to port 9?");
    assert!(stderr.contains("ConnectionRefused"), "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");

    // A request waiting on a silent server: the daemon killed under it.
    let mut waiting = Spawned::spawn(
        &mut http_get(&d, &format!("http://{client_ip}:8001/"), 1),
        "tok-conn-get",
        "http_get on the silent server",
        &[],
    );
    let t = Instant::now();
    while !peer.stderr_text().contains("accepted") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no connection reached the silent server: {}",
            waiting.stderr_text()
        );
        thread::sleep(Duration::from_millis(10));
    }
    // Let hyper send its request and wait in a read.
    thread::sleep(Duration::from_millis(300));
    d.proc.kill();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = waiting.try_wait() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "http_get did not notice the daemon's end: {}",
            waiting.stderr_text()
        );
        thread::sleep(Duration::from_millis(20));
    };
    let err = waiting.stderr_text();
    eprintln!("after kill -9 of the daemon ({:?}): {err}", t.elapsed());
    assert!(!status.success());
    assert!(err.contains("the xdpstack daemon is gone"), "{err}");
    drop(peer);
    let _ = fs::remove_dir_all(&dir);
}
