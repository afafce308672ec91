//! The process model end to end: `xdpstack daemon` owns the sandbox's
//! interface with 2 workers; `xdpstack http --attach` processes run as
//! uid 65534 with no capabilities (setpriv) and share port 8080; kernel
//! clients in the client namespace. Port sharing between processes, the
//! uid rule on kernel credentials, the privileged-port rule, `kill -9`
//! (listeners leave, connections reset, shared memory unmapped) and the
//! replacement of processes under load.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use lab::sandbox::{Sandbox, Side};
use nix::sys::signal::Signal;
use serde_json::Value;

/// `xdpstack daemon` in the server namespace, control socket open to all.
struct Daemon {
    proc: Spawned,
    sock: PathBuf,
    stats: PathBuf,
}

impl Daemon {
    fn start(sb: &Sandbox) -> Daemon {
        Self::start_with(sb, &[])
    }

    /// [`Daemon::start`] with more daemon options.
    fn start_with(sb: &Sandbox, extra: &[&str]) -> Daemon {
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
            .args(extra)
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

    fn pid(&self) -> u32 {
        self.proc.pid()
    }

    fn stderr_text(&self) -> String {
        self.proc.stderr_text()
    }

    /// Wait until the daemon logged that process `pid` detached.
    fn wait_detached(&self, pid: u32) {
        let needle = format!("process {pid} (client");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self
            .stderr_text()
            .lines()
            .any(|l| l.contains(&needle) && l.ends_with("detached"))
        {
            assert!(
                Instant::now() < deadline,
                "process {pid} not detached:\n{}",
                self.stderr_text()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Shared-memory mappings of the daemon made for process `pid`.
    fn mappings_of(&self, pid: u32) -> usize {
        let maps = fs::read_to_string(format!("/proc/{}/maps", self.pid())).unwrap_or_default();
        let name = format!("memfd:xdpstack-{pid}-");
        maps.lines().filter(|l| l.contains(&name)).count()
    }

    fn stop(self) -> Value {
        self.proc
            .stop_with_stats(&self.stats, Duration::from_secs(15))
    }
}

/// `setpriv` as `uid` with no capabilities, exec'ing `xdpstack http
/// --attach`: the child's pid is the server's.
fn attach_cmd(sock: &std::path::Path, uid: &str, port: &str, body: &str) -> Command {
    attach_service(sock, uid, &["http", "--port", port, "--body", body])
}

/// `setpriv` as `uid` with no capabilities, exec'ing `xdpstack SERVICE...
/// --attach SOCK`.
fn attach_service(sock: &std::path::Path, uid: &str, service: &[&str]) -> Command {
    attach_with_caps(sock, uid, &["--inh-caps=-all"], service)
}

/// [`attach_service`] with `setpriv`'s capability options `caps`.
fn attach_with_caps(sock: &std::path::Path, uid: &str, caps: &[&str], service: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", uid, "--regid", uid, "--clear-groups"])
        .args(caps)
        .arg(BIN)
        .args(service)
        .arg("--attach")
        .arg(sock)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    c
}

/// An attached HTTP server process.
struct Attached(Spawned);

impl Attached {
    fn start(d: &Daemon, uid: &str, body: &str) -> Attached {
        Self::start_with(d, uid, body, &[])
    }

    fn start_with(d: &Daemon, uid: &str, body: &str, extra: &[&str]) -> Attached {
        let cmd = attach_cmd(&d.sock, uid, "8080", &format!("{body}\n"));
        Self::spawn(cmd, body, extra)
    }

    fn spawn(mut cmd: Command, name: &str, extra: &[&str]) -> Attached {
        let tag = format!("att-{name}");
        let mut p = Spawned::spawn(cmd.args(extra), &tag, name, &[]);
        p.wait_started(|err| err.contains("attached to"));
        Attached(p)
    }

    fn pid(&self) -> u32 {
        self.0.pid()
    }

    fn stderr_text(&self) -> String {
        self.0.stderr_text()
    }

    /// (real uid, effective capabilities) from /proc.
    fn creds(&self) -> (u32, u64) {
        let s = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
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

    fn kill9(&mut self) -> u32 {
        self.0.kill()
    }

    /// SIGTERM (graceful stop) and the exit status, bounded.
    fn terminate(&mut self) -> ExitStatus {
        self.0
            .signal_and_wait(Signal::SIGTERM, Duration::from_secs(15))
    }
}

/// A process that must be refused at once: its output.
fn attach_refused(d: &Daemon, uid: &str, port: &str) -> Output {
    let cmd = attach_cmd(&d.sock, uid, port, "refused\n");
    // Bounded: `timeout` around the same command line.
    let mut c = Command::new("timeout");
    c.args(["-k", "2", "15"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null());
    output(&mut c)
}

fn bodies(sb: &Sandbox, n: u32) -> (Value, u64) {
    let r = python_json(sb, 120, COUNT_BODIES, &[SERVER_IP4, "8080", &n.to_string()]);
    let errors = r["errors"].as_array().map_or(0, |e| e.len()) as u64;
    (r["counts"].clone(), errors)
}

#[test]
fn unprivileged_processes_share_a_port_and_another_uid_is_refused() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("att-share", 2);
    let d = Daemon::start(&sb);
    let a = Attached::start(&d, NOBODY, "A");
    let b = Attached::start(&d, NOBODY, "B");
    for p in [&a, &b] {
        assert_eq!(p.creds(), (65534, 0), "uid 65534 with no capabilities");
    }
    let (counts, errors) = bodies(&sb, 200);
    eprintln!("200 new connections: {counts}");
    assert_eq!(errors, 0, "{counts}");
    assert_eq!(count(&counts, "A") + count(&counts, "B"), 200, "{counts}");
    for x in ["A", "B"] {
        assert!(count(&counts, x) >= 70, "{x} got less than 35%: {counts}");
    }

    // Another user: the daemon takes uid 4242 from the kernel and refuses.
    let out = attach_refused(&d, "4242", "8080");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "uid 4242 was let in: {err}");
    assert!(err.contains("refused port hijack"), "{err}");
    assert!(
        err.contains("uid 65534") && err.contains("uid 4242"),
        "{err}"
    );
    // A port below 1024 without CAP_NET_BIND_SERVICE.
    let out = attach_refused(&d, NOBODY, "80");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("CAP_NET_BIND_SERVICE"), "{err}");
    // The same user with CAP_NET_BIND_SERVICE (ambient, as a service
    // manager grants it): the daemon reads it through the pidfd it holds.
    let cmd = attach_with_caps(
        &d.sock,
        NOBODY,
        &[
            "--inh-caps=-all,+net_bind_service",
            "--ambient-caps=+net_bind_service",
        ],
        &["http", "--port", "80", "--body", "low\n"],
    );
    let low = Attached::spawn(cmd, "low", &[]);
    assert_eq!(
        low.creds(),
        (65534, 1 << 10),
        "uid 65534, CAP_NET_BIND_SERVICE"
    );
    let body = curl_ok(&sb, &format!("http://{SERVER_IP4}/"));
    assert_eq!(body.trim(), "low");
    drop(low);

    // The refused process got nothing: A and B still serve everything.
    let (counts, errors) = bodies(&sb, 40);
    assert_eq!(errors, 0);
    assert_eq!(count(&counts, "A") + count(&counts, "B"), 40, "{counts}");

    drop((a, b));
    let stats = d.stop();
    for w in workers(&stats) {
        assert_eq!(num(w, "/app/corrupt"), 0, "{w:#}");
    }
    // The group's members carried the kernel's uid of their processes.
    let members: Vec<&Value> = stats["stack"]["listeners"]
        .as_array()
        .expect("listeners")
        .iter()
        .filter(|l| l["port"] == 8080)
        .collect();
    assert_eq!(members.len(), 4, "2 processes x 2 cores: {members:#?}");
    assert!(members.iter().all(|l| l["uid"] == 65534), "{members:#?}");
    assert_frames_ok(&stats);
}

/// Keep-alive connections held across a `kill -9`: each line of stdin
/// ("go") after the first report makes every connection send one more
/// request; reports "ok", "reset" or "eof" per connection.
const HOLD: &str = r#"
import socket, sys, json
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def req(s):
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d: return "eof"
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    clen = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(rest) < clen:
        d = s.recv(65536)
        if not d: return "eof"
        rest += d
    return rest.decode().strip()
conns = [socket.create_connection((host, port), timeout=5) for _ in range(n)]
first = [req(s) for s in conns]
print(json.dumps(first), flush=True)
sys.stdin.readline()
after = []
for s in conns:
    try:
        after.append(req(s))
    except ConnectionResetError:
        after.append("reset")
    except Exception as e:
        after.append("error " + str(e))
print(json.dumps(after), flush=True)
"#;

#[test]
fn kill_9_of_a_member_resets_its_connections_and_the_other_serves_all() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("att-kill", 2);
    let d = Daemon::start(&sb);
    let mut a = Attached::start(&d, NOBODY, "A");
    let b = Attached::start(&d, NOBODY, "B");
    // 16 keep-alive connections, spread over A and B.
    let mut hold = client(&sb, 60, PY, ["-c", HOLD, SERVER_IP4, "8080", "16"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python");
    let mut lines = BufReader::new(hold.stdout.take().unwrap()).lines();
    let first: Vec<String> =
        serde_json::from_str(&lines.next().expect("first report").unwrap()).unwrap();
    assert!(first.iter().all(|b| b == "A" || b == "B"), "{first:?}");
    assert!(
        first.iter().any(|b| b == "A"),
        "no connection on A: {first:?}"
    );
    let a_pid = a.pid();
    assert!(d.mappings_of(a_pid) > 0, "A's channels are mapped");
    let killed = a.kill9();
    d.wait_detached(killed);
    // Its shared memory is unmapped on every core.
    let deadline = Instant::now() + Duration::from_secs(2);
    while d.mappings_of(a_pid) > 0 {
        assert!(Instant::now() < deadline, "A's channels still mapped");
        thread::sleep(Duration::from_millis(10));
    }
    {
        use std::io::Write;
        let mut stdin = hold.stdin.take().unwrap();
        writeln!(stdin, "go").unwrap();
    }
    let after: Vec<String> =
        serde_json::from_str(&lines.next().expect("second report").unwrap()).unwrap();
    wait_bounded(&mut hold, Duration::from_secs(10)).expect("the client exits");
    for (f, s) in first.iter().zip(&after) {
        match f.as_str() {
            // Established connections of the killed process are reset.
            "A" => assert!(s == "reset" || s == "eof", "{first:?} -> {after:?}"),
            _ => assert_eq!(s, "B", "{first:?} -> {after:?}"),
        }
    }
    // Every new connection goes to the survivor.
    let (counts, errors) = bodies(&sb, 100);
    eprintln!("after kill -9 of A: {counts}");
    assert_eq!(errors, 0, "{counts}");
    assert_eq!(count(&counts, "B"), 100, "{counts}");
    drop(b);
    let stats = d.stop();
    let reset: u64 = workers(&stats)
        .iter()
        .map(|w| num(w, "/app/reset_at_detach"))
        .sum();
    let on_a = first.iter().filter(|b| *b == "A").count() as u64;
    assert!(reset >= on_a, "reset {reset} of A's {on_a} connections");
    assert_frames_ok(&stats);
}

#[test]
fn replacing_members_under_load_fails_no_request() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("att-repl", 2);
    let d = Daemon::start(&sb);
    let mut a = Attached::start(&d, NOBODY, "A");
    let mut b = Attached::start(&d, NOBODY, "B");
    let load = {
        thread::scope(|s| {
            let h = s.spawn(|| {
                ab(
                    &sb,
                    &format!("http://{SERVER_IP4}:8080/"),
                    20_000,
                    16,
                    false,
                )
            });
            thread::sleep(Duration::from_millis(700));
            // Replace A by C, then B by D: the new member joins, the old
            // one stops gracefully (drains, finishes, exits).
            let c = Attached::start(&d, NOBODY, "C");
            let sa = a.terminate();
            thread::sleep(Duration::from_millis(300));
            let dd = Attached::start(&d, NOBODY, "D");
            let sb_ = b.terminate();
            let running = !h.is_finished();
            let r = h.join().unwrap();
            (r, sa, sb_, running, c, dd)
        })
    };
    let ((complete, failed, non2xx, text), sa, sb_, running, c, dd) = load;
    eprintln!("A: {}\nB: {}", a.stderr_text(), b.stderr_text());
    if failed > 0 || complete < 20_000 {
        drop((c, dd));
        let stats = d.stop();
        for w in workers(&stats) {
            eprintln!("daemon worker: {}", w["app"]);
        }
        panic!("ab: {complete} complete, {failed} failed:\n{text}");
    }
    assert!(
        sa.success() && sb_.success(),
        "old members exit 0: {sa} {sb_}"
    );
    assert!(
        running,
        "the load ended before the replacements did:\n{text}"
    );
    assert_eq!((complete, failed, non2xx), (20_000, 0, 0), "ab:\n{text}");
    // The new members took over.
    let (counts, errors) = bodies(&sb, 40);
    assert_eq!(errors, 0);
    assert_eq!(count(&counts, "C") + count(&counts, "D"), 40, "{counts}");
    drop((c, dd));
    let stats = d.stop();
    for w in workers(&stats) {
        eprintln!("daemon worker {}: {}", w["worker"], w["app"]);
        assert_eq!(
            num(w, "/app/reset_at_detach"),
            0,
            "graceful exits reset nothing"
        );
    }
    assert_frames_ok(&stats);
}

/// Parallel downloads of one file; each checked against a SHA-256.
const DOWNLOAD: &str = r#"
import socket, sys, json, hashlib, threading
host, port, path, want, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
res = []
def get():
    try:
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(b"GET " + path.encode() + b" HTTP/1.0\r\nHost: x\r\n\r\n")
        data = bytearray()
        while True:
            d = s.recv(1 << 20)
            if not d: break
            data += d
        body = bytes(data).partition(b"\r\n\r\n")[2]
        res.append("ok" if hashlib.sha256(body).hexdigest() == want else "bad %d bytes" % len(body))
    except Exception as e:
        res.append(str(e))
ts = [threading.Thread(target=get) for _ in range(n)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps(res))
"#;

#[test]
fn large_responses_cross_the_rings_intact() {
    let Some(_lock) = begin() else { return };
    // 3 MiB of pseudo-random bytes: each response wraps the 1 MiB rings
    // several times and runs into the send credit again and again.
    let dir = temp_path("att-root", "d");
    fs::create_dir(&dir).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(dir.join("big.bin"), &data).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(dir.join("big.bin"), fs::Permissions::from_mode(0o644)).unwrap();
    let want = run_ok(Command::new("sha256sum").arg(dir.join("big.bin")));
    let want = want.split_whitespace().next().unwrap().to_string();
    let sb = sandbox("att-big", 2);
    let d = Daemon::start(&sb);
    let a = Attached::start_with(&d, NOBODY, "A", &["--root", dir.to_str().unwrap()]);
    let r = python_json(
        &sb,
        120,
        DOWNLOAD,
        &[SERVER_IP4, "8080", "/big.bin", &want, "8"],
    );
    let _ = fs::remove_dir_all(&dir);
    let ok = r.as_array().unwrap().iter().filter(|v| *v == "ok").count();
    assert_eq!(ok, 8, "downloads: {r}");
    drop(a);
    let stats = d.stop();
    let sent: u64 = workers(&stats)
        .iter()
        .map(|w| num(w, "/app/bytes_from_apps"))
        .sum();
    assert!(sent >= 8 * (3 << 20), "bytes through the rings: {sent}");
    assert_frames_ok(&stats);
}

/// UDP: `n` sockets (so `n` source ports) each send one datagram and wait
/// for it back (one retry); TCP: 4 connections each echo 100 KB.
const ECHO: &str = r#"
import socket, sys, json, os
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
udp_ok = 0
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    msg = b"dgram-%d-" % i + os.urandom(16)
    for attempt in range(2):
        s.sendto(msg, (host, port))
        try:
            if s.recv(2048) == msg:
                udp_ok += 1
                break
        except socket.timeout:
            pass
    s.close()
tcp_ok = 0
for i in range(4):
    data = os.urandom(100_000)
    c = socket.create_connection((host, port), timeout=10)
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    back = b""
    while True:
        d = c.recv(65536)
        if not d: break
        back += d
    tcp_ok += back == data
print(json.dumps({"udp_ok": udp_ok, "tcp_ok": tcp_ok}))
"#;

/// The `datagrams` an attached echo process reported at its stop.
fn datagrams(stderr: &str) -> u64 {
    let line = stderr.lines().rfind(|l| l.starts_with('{')).unwrap_or("{}");
    let v: Value = serde_json::from_str(line).unwrap_or_default();
    v["cores"]
        .as_array()
        .map_or(0, |cs| cs.iter().map(|c| num(c, "/app/datagrams")).sum())
}

#[test]
fn attached_echo_processes_share_udp_and_tcp() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("att-echo", 2);
    let d = Daemon::start(&sb);
    let echo = |name: &str| {
        Attached::spawn(
            attach_service(&d.sock, NOBODY, &["echo", "--port", "7007"]),
            name,
            &[],
        )
    };
    let mut a = echo("echoA");
    let mut b = echo("echoB");
    let r = python_json(&sb, 120, ECHO, &[SERVER_IP4, "7007", "200"]);
    assert_eq!(num(&r, "/tcp_ok"), 4, "{r}");
    assert!(num(&r, "/udp_ok") >= 198, "{r}");
    // Another user is refused (at its first bind, TCP).
    let out = output(
        Command::new("timeout")
            .args(["-k", "2", "15"])
            .arg("setpriv")
            .args(["--reuid", "4242", "--regid", "4242", "--clear-groups"])
            .args(["--inh-caps=-all", BIN, "echo", "--port", "7007", "--attach"])
            .arg(&d.sock)
            .stdin(Stdio::null()),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused port hijack"), "{err}");
    assert!(a.terminate().success() && b.terminate().success());
    let (da, db) = (datagrams(&a.stderr_text()), datagrams(&b.stderr_text()));
    eprintln!("datagrams echoed: A {da}, B {db}");
    assert!(da + db >= 198, "{da} + {db}");
    assert!(da >= 40 && db >= 40, "the UDP group spreads: {da} {db}");
    let stats = d.stop();
    let udp: u64 = workers(&stats)
        .iter()
        .map(|w| num(w, "/app/datagrams_from_apps"))
        .sum();
    assert_eq!(udp, da + db);
    assert_frames_ok(&stats);
}

/// `xdpstack dns --attach`: two unprivileged processes serve one zone on
/// port 5353 over UDP and TCP (kdig from the client namespace); every
/// query is answered, by the two together.
#[test]
fn attached_dns_processes_answer_udp_and_tcp() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("att-dns", 2);
    let d = Daemon::start(&sb);
    let zone = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/example.test.zone");
    let dns = |name: &str| {
        Attached::spawn(
            attach_service(&d.sock, NOBODY, &["dns", "--port", "5353", "--zone", zone]),
            name,
            &[],
        )
    };
    let mut a = dns("dnsA");
    let mut b = dns("dnsB");
    // The zone is loaded and both are bound once a TCP query is answered.
    let ask = |tcp: bool| {
        let mut args = vec!["+short", "+retry=0", "+timeout=2", "-p", "5353"];
        if tcp {
            args.push("+tcp");
        }
        let at = format!("@{SERVER_IP4}");
        args.extend([at.as_str(), "www.example.test", "A"]);
        let out = output(&mut client(&sb, 10, "kdig", &args));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let start = std::time::Instant::now();
    while ask(true) != "192.0.2.1" {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no answer over TCP:\nA: {}\nB: {}",
            a.stderr_text(),
            b.stderr_text()
        );
        thread::sleep(Duration::from_millis(200));
    }
    let mut answered = 0;
    for i in 0..30 {
        if ask(i % 3 == 0) == "192.0.2.1" {
            answered += 1;
        }
    }
    assert_eq!(
        answered,
        30,
        "A: {}\nB: {}",
        a.stderr_text(),
        b.stderr_text()
    );
    assert!(a.terminate().success() && b.terminate().success());
    let queries = |stderr: &str| {
        let line = stderr.lines().rfind(|l| l.starts_with('{')).unwrap_or("{}");
        let v: Value = serde_json::from_str(line).unwrap_or_default();
        v["cores"].as_array().map_or(0, |cs| {
            cs.iter().map(|c| num(c, "/app/queries")).sum::<u64>()
        })
    };
    let (qa, qb) = (queries(&a.stderr_text()), queries(&b.stderr_text()));
    eprintln!("queries answered: A {qa}, B {qb}");
    assert!(qa + qb >= 31, "{qa} + {qb}");
    let stats = d.stop();
    assert_frames_ok(&stats);
}

/// `--max-clients`: past the bound a process is refused at its hello, with
/// the reason, and the ones attached keep serving.
#[test]
fn attach_past_max_clients_is_refused_with_the_reason() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("att-max", 2);
    let d = Daemon::start_with(&sb, &["--max-clients", "1"]);
    let mut a = Attached::start(&d, NOBODY, "A");
    let out = output(
        Command::new("timeout")
            .args(["-k", "2", "15"])
            .arg("setpriv")
            .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
            .args(["--inh-caps=-all", BIN, "http", "--port", "8080", "--attach"])
            .arg(&d.sock)
            .stdin(Stdio::null()),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at most 1 attached processes"), "{err}");
    let (counts, errors) = bodies(&sb, 10);
    assert_eq!((count(&counts, "A"), errors), (10, 0), "{counts}");
    assert!(a.terminate().success());
    // Its slot is free again: another process attaches.
    let mut b = Attached::start(&d, NOBODY, "B");
    let (counts, errors) = bodies(&sb, 10);
    assert_eq!((count(&counts, "B"), errors), (10, 0), "{counts}");
    assert!(b.terminate().success());
    let stats = d.stop();
    assert_frames_ok(&stats);
}
