//! Privileged tests of the deployment where the stack shares its interface
//! with the kernel (issue 9): the kernel holds 10.112.0.3 / fd00:112::3 on
//! `xdp0` (2 queues) next to the stack's 10.112.0.1 / fd00:112::1, and both
//! keep answering; `kill -9` leaves no program; a restart serves; a clean
//! stop leaves nothing; a foreign XDP program is refused; a stale program of
//! ours is replaced; `status` and `/metrics` report the program.
//!
//! Run as root: `cargo test -p xdpstack --test deploy`.

mod common;
#[path = "support/tree.rs"]
mod tree;
#[path = "support/xdp.rs"]
mod xdp;

use std::fs;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use lab::sandbox::{Sandbox, Side};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tree::TempTree;
use xdp::xdp_attached;

const STACK4: &str = "10.112.0.1";
const STACK6: &str = "fd00:112::1";
const KERNEL4: &str = "10.112.0.3";
const KERNEL6: &str = "fd00:112::3";

/// A kernel TCP service on :2222 in the server namespace (python's
/// http.server on `::`, dual stack), bounded by `timeout`.
fn kernel_service(sb: &Sandbox) -> Child {
    sb.command(Side::Server, "timeout")
        .args(["120", PY, "-m", "http.server", "--bind", "::", "2222"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the kernel's service")
}

/// `xdpstack http` with the shared addresses, stderr to `err`.
fn stack(sb: &Sandbox, err: &std::path::Path, extra: &[&str]) -> Child {
    let addrs = ["--addr", "10.112.0.1/24", "--addr6", "fd00:112::1/64"];
    spawn_http(
        &mut sb.command(Side::Server, BIN),
        &[&addrs, extra].concat(),
        err,
    )
}

/// `cmd` (the binary, or what runs it) started as `http` on xdp0 with two
/// unpinned workers and `args`, stderr to `err`.
fn spawn_http(cmd: &mut Command, args: &[&str], err: &std::path::Path) -> Child {
    cmd.args(["http", "--iface", "xdp0", "--workers", "2", "--no-pin"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(err).expect("stderr file"))
        .spawn()
        .expect("start xdpstack")
}

fn http_code(sb: &Sandbox, url: &str) -> String {
    let out = output(&mut client(
        sb,
        8,
        "curl",
        [
            "-s",
            "-g",
            "-o",
            "/dev/null",
            "-m",
            "3",
            "-w",
            "%{http_code}",
            url,
        ],
    ));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Retry `url` until it answers 200 (at most 15 s).
fn wait_200(sb: &Sandbox, url: &str, child: &mut Child, err: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "exited early ({st}): {}",
                fs::read_to_string(err).unwrap_or_default()
            );
        }
        if http_code(sb, url) == "200" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not answer within 15 s; stderr: {}",
            fs::read_to_string(err).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

fn ping(sb: &Sandbox, addr: &str) -> bool {
    client(sb, 8, "ping", ["-c", "1", "-W", "3", addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `ip -d link show dev xdp0` in the server namespace.
fn link(sb: &Sandbox) -> String {
    xdp::link(&sb.info().server_ns, "xdp0")
}

/// No XDP program on xdp0.
fn assert_detached(sb: &Sandbox) {
    let l = link(sb);
    assert!(!xdp_attached(&l), "program left:\n{l}");
}

/// `xdpstack <args>` in the server namespace, which must fail; its stderr.
fn refused(sb: &Sandbox, args: &[&str]) -> String {
    let out = output(sb.command(Side::Server, BIN).args(args));
    let msg = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "started: {msg}");
    msg
}

fn status(sb: &Sandbox) -> serde_json::Value {
    let out = run_ok(
        sb.command(Side::Server, BIN)
            .args(["status", "--iface", "xdp0", "--json"]),
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status JSON ({e}): {out}"))
}

/// Everything the kernel and the stack must answer while both share xdp0.
fn assert_both_serve(sb: &Sandbox) {
    assert_eq!(http_code(sb, &format!("http://{STACK4}/")), "200");
    assert_eq!(http_code(sb, &format!("http://[{STACK6}]/")), "200");
    assert_eq!(http_code(sb, &format!("http://{KERNEL4}:2222/")), "200");
    assert_eq!(http_code(sb, &format!("http://[{KERNEL6}]:2222/")), "200");
    for a in [STACK4, STACK6, KERNEL4, KERNEL6] {
        assert!(ping(sb, a), "no ping reply from {a}");
    }
}

fn assert_kernel_serves(sb: &Sandbox) {
    assert_eq!(http_code(sb, &format!("http://{KERNEL4}:2222/")), "200");
    assert_eq!(http_code(sb, &format!("http://[{KERNEL6}]:2222/")), "200");
    assert!(ping(sb, KERNEL4));
    assert!(ping(sb, KERNEL6));
}

fn wait_exit(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("did not exit within {secs} s");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Compile a tiny XDP_PASS program named `name` with clang (the test's own
/// foreign program) and attach it to xdp0 through netlink with `ip`.
fn attach_other_program(sb: &Sandbox, name: &str) -> std::path::PathBuf {
    let src = temp_path(name, "c");
    let obj = temp_path(name, "o");
    fs::write(
        &src,
        format!(
            "#include <linux/bpf.h>\n\
             __attribute__((section(\"xdp\"), used)) int {name}(struct xdp_md *ctx) {{ return XDP_PASS; }}\n\
             char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n"
        ),
    )
    .unwrap();
    let arch = if cfg!(target_arch = "aarch64") {
        "aarch64-linux-gnu"
    } else {
        "x86_64-linux-gnu"
    };
    run_ok(Command::new("clang").args([
        "-O2",
        "-g",
        "-target",
        "bpf",
        &format!("-I/usr/include/{arch}"),
        "-c",
        src.to_str().unwrap(),
        "-o",
        obj.to_str().unwrap(),
    ]));
    let _ = fs::remove_file(&src);
    run_ok(Command::new("ip").args([
        "-n",
        &sb.info().server_ns,
        "link",
        "set",
        "dev",
        "xdp0",
        "xdpgeneric",
        "obj",
        obj.to_str().unwrap(),
        "sec",
        "xdp",
    ]));
    obj
}

#[test]
fn kernel_and_stack_share_the_interface() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("share", 2);
    sb.share_with_kernel().expect("kernel addresses");
    let mut svc = kernel_service(&sb);
    // The kernel serves alone first.
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_code(&sb, &format!("http://{KERNEL4}:2222/")) != "200" {
        assert!(Instant::now() < deadline, "kernel service not up");
        thread::sleep(Duration::from_millis(100));
    }
    assert_kernel_serves(&sb);

    // 1. The stack beside it: both answer, v4 and v6, TCP and ping.
    let err = temp_path("share", "err");
    let mut s = stack(&sb, &err, &[]);
    wait_200(&sb, &format!("http://{STACK4}/"), &mut s, &err);
    assert_both_serve(&sb);
    let st = status(&sb);
    let p = &st["program"];
    assert_eq!(p["name"], "xdpstack_steer", "{st:#}");
    assert!(
        p["link_id"].as_u64().is_some(),
        "not held by a link: {st:#}"
    );
    assert!(
        p["counters"]["steered_ip"].as_u64().unwrap_or(0) > 0,
        "{st:#}"
    );
    assert!(
        p["counters"]["passed_not_ours"].as_u64().unwrap_or(0) > 0,
        "the kernel's traffic was not passed: {st:#}"
    );
    // /metrics and /stats show the program's counters.
    let metrics = curl_ok(&sb, &format!("http://{STACK4}/metrics"));
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("xdpstack_xdp_packets_total{verdict=\"steered\",reason=\"ip\"}")),
        "{metrics}"
    );
    assert!(
        metrics.contains("xdpstack_listener_accepted_total{"),
        "{metrics}"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&curl_ok(&sb, &format!("http://{STACK4}/stats"))).unwrap();
    assert!(stats["xdp"]["steered_arp"].as_u64().is_some(), "{stats:#}");
    assert!(stats["listeners"].as_array().is_some_and(|l| l.len() == 2));

    // 2. kill -9: the link dies with the process, the program with it.
    kill(Pid::from_raw(s.id() as i32), Signal::SIGKILL).unwrap();
    let _ = s.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while xdp_attached(&link(&sb)) {
        assert!(
            Instant::now() < deadline,
            "XDP program left after kill -9:\n{}",
            link(&sb)
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert!(status(&sb)["program"].is_null());
    assert_kernel_serves(&sb);

    // 3. A restart serves; a clean stop leaves nothing.
    let mut s = stack(&sb, &err, &[]);
    wait_200(&sb, &format!("http://{STACK4}/"), &mut s, &err);
    assert_both_serve(&sb);
    // A second instance on the same interface is refused (live link).
    let msg = refused(
        &sb,
        &[
            "echo",
            "--iface",
            "xdp0",
            "--addr",
            "10.112.0.9/24",
            "--workers",
            "2",
        ],
    );
    assert!(msg.contains("in use by a running xdpstack"), "{msg}");
    kill(Pid::from_raw(s.id() as i32), Signal::SIGINT).unwrap();
    assert!(
        wait_exit(&mut s, 15).success(),
        "{}",
        fs::read_to_string(&err).unwrap_or_default()
    );
    assert!(
        !xdp_attached(&link(&sb)),
        "program left after a clean stop:\n{}",
        link(&sb)
    );
    assert_kernel_serves(&sb);
    // Nothing of ours in bpffs either.
    let pins = run_ok(Command::new("sh").args([
        "-c",
        "ls -A /sys/fs/bpf 2>/dev/null | grep -i -e xdpstack -e xsk || true",
    ]));
    assert!(pins.trim().is_empty(), "bpffs: {pins}");

    let _ = fs::remove_file(&err);
    let _ = svc.kill();
    let _ = svc.wait();
}

#[test]
fn foreign_program_refused_stale_program_replaced() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("foreign", 2);
    sb.share_with_kernel().expect("kernel addresses");

    // Someone else's program: refused with its id and name, and left alone.
    let obj = attach_other_program(&sb, "someone_elses");
    let st = status(&sb);
    let id = st["program"]["id"]
        .as_u64()
        .expect("foreign program attached");
    let msg = refused(
        &sb,
        &[
            "http",
            "--iface",
            "xdp0",
            "--addr",
            "10.112.0.1/24",
            "--workers",
            "2",
        ],
    );
    assert_eq!(msg.trim().lines().count(), 1, "{msg}");
    assert!(msg.contains("foreign XDP program"), "{msg}");
    assert!(msg.contains(&format!("id {id}")), "{msg}");
    assert!(msg.contains("someone_elses"), "{msg}");
    assert_eq!(
        status(&sb)["program"]["id"].as_u64(),
        Some(id),
        "foreign program touched"
    );
    run_ok(Command::new("ip").args([
        "-n",
        &sb.info().server_ns,
        "link",
        "set",
        "dev",
        "xdp0",
        "xdpgeneric",
        "off",
    ]));
    let _ = fs::remove_file(&obj);

    // A stale program of ours (netlink-attached, no link: what a crashed
    // older version leaves): replaced at start, and gone after the stop.
    let obj = attach_other_program(&sb, "xdpstack_steer");
    let st = status(&sb);
    assert_eq!(st["program"]["stale"], true, "{st:#}");
    let err = temp_path("stale", "err");
    let mut s = stack(&sb, &err, &[]);
    wait_200(&sb, &format!("http://{STACK4}/"), &mut s, &err);
    let st = status(&sb);
    assert!(st["program"]["link_id"].as_u64().is_some(), "{st:#}");
    kill(Pid::from_raw(s.id() as i32), Signal::SIGINT).unwrap();
    assert!(wait_exit(&mut s, 15).success());
    let text = fs::read_to_string(&err).unwrap_or_default();
    assert!(text.contains("replaced a stale XDP program"), "{text}");
    assert_detached(&sb);
    let _ = fs::remove_file(&err);
    let _ = fs::remove_file(&obj);
}

#[test]
fn ports_mode_and_queue_map_and_pcap() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("ports", 2);
    sb.share_with_kernel().expect("kernel addresses");
    // The kernel also holds the stack's address (ports mode is the Knot
    // deployment): ARP, ping and other ports are the kernel's.
    run_ok(Command::new("ip").args([
        "-n",
        &sb.info().server_ns,
        "addr",
        "add",
        "10.112.0.1/32",
        "dev",
        "xdp0",
    ]));
    let mut svc = kernel_service(&sb);
    let pcap = temp_path("ports", "pcap");
    let err = temp_path("ports", "err");
    let mut s = stack(
        &sb,
        &err,
        &[
            "--steer",
            "ports",
            "--map",
            "1:0,0:1",
            "--pcap",
            pcap.to_str().unwrap(),
            "--pcap-limit",
            "64K",
            "--busy-poll",
            "20",
            "--rx-ring",
            "1024",
        ],
    );
    // Port 80 on 10.112.0.1 is the stack's, port 2222 the kernel's.
    wait_200(&sb, &format!("http://{STACK4}/"), &mut s, &err);
    assert_eq!(http_code(&sb, &format!("http://{STACK4}:2222/")), "200");
    assert!(
        ping(&sb, STACK4),
        "the kernel answers ping for the shared address"
    );
    let st = status(&sb);
    assert!(
        st["program"]["counters"]["passed_port"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{st:#}"
    );
    // Load past the pcap limit; the file stays within it.
    for _ in 0..40 {
        let _ = http_code(&sb, &format!("http://{STACK4}/"));
    }
    kill(Pid::from_raw(s.id() as i32), Signal::SIGINT).unwrap();
    assert!(
        wait_exit(&mut s, 15).success(),
        "{}",
        fs::read_to_string(&err).unwrap_or_default()
    );
    let len = fs::metadata(&pcap).map(|m| m.len()).unwrap_or(0);
    assert!(len > 24, "pcap has no frames");
    assert!(len <= 64 * 1024, "pcap past its limit: {len}");
    let bytes = fs::read(&pcap).unwrap();
    assert_eq!(&bytes[..4], &0xa1b2_c3d4u32.to_le_bytes());
    let text = fs::read_to_string(&err).unwrap_or_default();
    assert!(text.contains("queues [1, 0]"), "{text}");
    let _ = fs::remove_file(&pcap);
    let _ = fs::remove_file(&err);
    let _ = svc.kill();
    let _ = svc.wait();
}

#[test]
fn unserved_queue_refused() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("unsrv", 2);
    let http = ["http", "--iface", "xdp0", "--addr", "198.18.0.1/24"];
    let msg = refused(&sb, &[&http[..], &["--queues", "1"]].concat());
    assert!(msg.contains("rx queue(s) [0]"), "{msg}");
    assert_detached(&sb);
    // veth has no zero-copy: `--zero-copy on` refuses, and detaches what
    // it attached.
    let zero_copy = ["--workers", "2", "--zero-copy", "on"];
    let msg = refused(&sb, &[&http[..], &zero_copy].concat());
    assert!(msg.contains("zero-copy is not supported"), "{msg}");
    assert_detached(&sb);
}

#[test]
fn a_worker_that_panics_takes_the_process_down() {
    // A panicking worker must not leave its listeners in their groups and
    // its flows black-holed while the others serve: the process exits
    // non-zero with the panic on stderr, and the XDP program goes with it.
    let Some(_lock) = begin() else { return };
    let sb = sandbox("panic", 2);
    let err = temp_path("panic", "err");
    let mut s = spawn_http(
        sb.command(Side::Server, BIN)
            .env("XDPSTACK_FAULT_PANIC_WORKER", "1"),
        &["--addr", "198.18.0.1/24"],
        &err,
    );
    let st = wait_exit(&mut s, 20);
    let msg = fs::read_to_string(&err).unwrap_or_default();
    assert!(!st.success(), "{st:?}: {msg}");
    assert!(msg.contains("injected panic in worker 1"), "{msg}");
    assert!(msg.contains("worker 1 panicked: exiting"), "{msg}");
    assert_detached(&sb);
}

#[test]
fn runs_with_only_the_unit_capabilities() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("caps", 2);
    sb.share_with_kernel().expect("kernel addresses");
    // The binary where user nobody can run it.
    let copy = temp_path("caps", "bin");
    fs::copy(BIN, &copy).expect("copy the binary");
    fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let err = temp_path("caps", "err");
    // UMEMs within the memlock limit this machine allows (8 MiB here; a
    // systemd unit sets LimitMEMLOCK instead): 2 x 1024 x 2 KiB.
    let mut setpriv = sb.command(Side::Server, "setpriv");
    setpriv
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["--inh-caps=-all,+net_admin,+net_raw,+bpf"])
        .args(["--ambient-caps=+net_admin,+net_raw,+bpf"])
        .args(["--bounding-set=-all,+net_admin,+net_raw,+bpf"])
        .arg(&copy);
    let mut s = spawn_http(
        &mut setpriv,
        &[
            "--addr",
            "10.112.0.1/24",
            "--addr6",
            "fd00:112::1/64",
            "--frames",
            "1024",
        ],
        &err,
    );
    wait_200(&sb, &format!("http://{STACK4}/"), &mut s, &err);
    assert_eq!(http_code(&sb, &format!("http://[{STACK6}]/")), "200");
    kill(Pid::from_raw(s.id() as i32), Signal::SIGKILL).unwrap();
    let _ = s.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while xdp_attached(&link(&sb)) {
        assert!(Instant::now() < deadline, "program left:\n{}", link(&sb));
        thread::sleep(Duration::from_millis(50));
    }
    let _ = fs::remove_file(&copy);
    let _ = fs::remove_file(&err);
}

/// argv: server_mac. Sends an ICMP echo request tagged with VLAN 42 from
/// peer0 to the stack (10.113.0.1) and prints what came back.
const VLAN_PING: &str = r#"
import json, sys
from scapy.all import Ether, Dot1Q, ARP, IP, ICMP, AsyncSniffer, sendp, get_if_hwaddr
srv = sys.argv[1]
me = get_if_hwaddr("peer0")
sn = AsyncSniffer(iface="peer0", store=True,
    lfilter=lambda p: p.haslayer(ICMP) and p[ICMP].type == 0 and p[IP].src == "10.113.0.1")
sn.start()
import time; time.sleep(0.5)
# As a host on VLAN 42 would, ask for the stack's address first: the stack
# learns neighbours from ARP/NDP only (not from IP packets).
sendp(Ether(dst="ff:ff:ff:ff:ff:ff", src=me)/Dot1Q(vlan=42)/
      ARP(op=1, hwsrc=me, psrc="10.113.0.2", pdst="10.113.0.1"), iface="peer0", verbose=0)
time.sleep(0.2)
for i in range(3):
    sendp(Ether(dst=srv, src=me)/Dot1Q(vlan=42)/IP(src="10.113.0.2", dst="10.113.0.1")/ICMP(id=7, seq=i),
          iface="peer0", verbose=0)
    time.sleep(0.3)
time.sleep(1)
got = sn.stop()
print(json.dumps({"replies": len(got),
                  "tagged": sum(1 for p in got if p.haslayer(Dot1Q) and p[Dot1Q].vlan == 42)}))
"#;

#[test]
fn vlan_tagged_traffic_to_the_stack_untagged_to_the_kernel() {
    let Some(_lock) = begin() else { return };
    ensure_scapy();
    let sb = sandbox("vlan", 2);
    sb.share_with_kernel().expect("kernel addresses");
    let mut svc = kernel_service(&sb);
    let err = temp_path("vlan", "err");
    let mut s = spawn_http(
        &mut sb.command(Side::Server, BIN),
        &["--addr", "10.113.0.1/24", "--vlan", "42"],
        &err,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(&err)
        .unwrap_or_default()
        .contains(" worker(s) on ")
    {
        assert!(Instant::now() < deadline, "no start line");
        thread::sleep(Duration::from_millis(50));
    }
    // Tagged (VLAN 42): the stack answers, tagged.
    let r = python_json(&sb, 30, VLAN_PING, &[&sb.info().server_mac]);
    assert!(r["replies"].as_u64().unwrap_or(0) >= 1, "{r}");
    assert_eq!(r["tagged"], r["replies"], "replies without the tag: {r}");
    // Untagged: the kernel's.
    assert_eq!(http_code(&sb, &format!("http://{KERNEL4}:2222/")), "200");
    assert!(ping(&sb, KERNEL4));
    let st = status(&sb);
    let c = &st["program"]["counters"];
    assert!(c["steered_ip"].as_u64().unwrap_or(0) >= 1, "{st:#}");
    assert!(c["passed_vlan"].as_u64().unwrap_or(0) > 0, "{st:#}");
    kill(Pid::from_raw(s.id() as i32), Signal::SIGINT).unwrap();
    assert!(
        wait_exit(&mut s, 15).success(),
        "{}",
        fs::read_to_string(&err).unwrap_or_default()
    );
    let _ = fs::remove_file(&err);
    let _ = svc.kill();
    let _ = svc.wait();
}

// ---------------------------------------------------------------------------------------------
// Refused HTTP starts (bad --root).

#[test]
fn bad_roots_are_refused_in_one_line() {
    let Some(_lock) = begin() else { return };
    let root = TempTree::new("badroot");
    root.file("a.bin", &testkit::Rng::new(7).bytes(5000));
    let sb = sandbox("badroot", 1);
    let info = sb.info().clone();
    let run = |extra: &[&str]| {
        let out = output(
            Command::new("timeout")
                .args([
                    "-k",
                    "2",
                    "20",
                    "ip",
                    "netns",
                    "exec",
                    &info.server_ns,
                    BIN,
                    "http",
                ])
                .args(["--iface", "xdp0", "--addr", &info.server_ip4])
                .args(extra)
                .env_remove("RUST_LOG")
                .stdin(Stdio::null()),
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{extra:?} started");
        assert_eq!(err.lines().count(), 1, "{extra:?}: not one line: {err:?}");
        err
    };
    // An access log that cannot be opened (its directory is missing).
    let log = root.path().join("no-such-dir/access.log");
    let err = run(&[
        "--root",
        &root.arg(),
        "--access-log",
        &log.to_string_lossy(),
    ]);
    assert!(err.contains("--access-log"), "{err}");
    let missing = root.path().join("missing").to_string_lossy().into_owned();
    let err = run(&["--root", &missing]);
    assert!(err.contains("missing"), "{err}");
    let file = root.path().join("a.bin").to_string_lossy().into_owned();
    let err = run(&["--root", &file]);
    assert!(err.contains("not a directory"), "{err}");
    // Nothing was attached by the refused starts.
    assert_detached(&sb);
}
