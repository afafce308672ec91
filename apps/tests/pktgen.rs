//! Privileged tests of `xdpstack pktgen` and `xdpstack bench reflect` on real AF_XDP sockets:
//! pktgen runs on `peer0` in a sandbox's client namespace (an XSK on the client's veth end),
//! against the reflector or the stack on `xdp0` in the server namespace. Runs are short
//! (2 s) at moderate fixed rates; the checks are functional (answered >= 95 %, valid
//! checksums, latency present, frame accounting), never timings.
//!
//! `cargo test -p xdpstack --test pktgen -- --nocapture`

mod common;
#[path = "support/xdp.rs"]
mod xdp;

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use lab::sandbox::{Sandbox, Side};
use serde_json::Value;
use xdp::link;

/// An `xdpstack bench reflect` in the server namespace; killed on drop.
struct Reflector {
    proc: Spawned,
    stats: PathBuf,
}

impl Reflector {
    /// Starts the reflector on xdp0 (`queues` queues, answering ARP/NDP for both stack
    /// addresses) and waits for its start line (at most 15 s).
    fn start(sb: &Sandbox, queues: u32) -> Reflector {
        let tag = format!("{}-refl", sb.info().name);
        let stats = temp_path(&tag, "json");
        let mut cmd = sb.command(Side::Server, BIN);
        cmd.args(["bench", "reflect", "--iface", "xdp0"])
            .args(["--queues", &queues.to_string()])
            .args(["--addr", SERVER_IP4, "--addr", SERVER_IP6])
            // A bound in case the test dies without stopping it.
            .args(["--duration", "120"])
            .arg("--report")
            .arg(&stats)
            .stdout(Stdio::null());
        let mut proc = Spawned::spawn(&mut cmd, &tag, "the reflector", &[&stats]);
        proc.wait_started(|err| err.contains("xdpstack bench reflect:"));
        Reflector { proc, stats }
    }

    /// SIGINT, a clean exit within 10 s, and the stats JSON.
    fn stop(self) -> Value {
        self.proc
            .stop_with_stats(&self.stats, Duration::from_secs(10))
    }
}

/// Starts `xdpstack pktgen --iface peer0 ARGS` (ARGS split on whitespace) in the client
/// namespace, bounded by `timeout`.
fn pktgen_spawn(sb: &Sandbox, args: &str) -> Child {
    let mut cmd = client(sb, 60, BIN, ["pktgen", "--iface", "peer0"]);
    cmd.args(args.split_whitespace())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("spawn pktgen")
}

/// Waits for a pktgen started by [`pktgen_spawn`]; asserts success and returns the JSON
/// summary it printed.
fn pktgen_wait(child: Child, args: &str) -> Value {
    let out = child.wait_with_output().expect("wait for pktgen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("pktgen {args}:\n{stderr}");
    assert!(
        out.status.success(),
        "pktgen {args} failed ({}): {stderr}",
        out.status
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("pktgen printed no JSON summary ({e}):\n{stdout}"))
}

/// Runs `xdpstack pktgen --iface peer0 ARGS` to the end; see [`pktgen_wait`].
fn pktgen(sb: &Sandbox, args: &str) -> Value {
    pktgen_wait(pktgen_spawn(sb, args), args)
}

fn f64_at(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {pointer} in {v:#}"))
}

/// The functional checks every echo-style run must pass: exactly `count` sent (runs are
/// bounded by `--count`, with a `--duration` far longer than the count needs at the rate, so
/// that a shared machine that stalls pktgen changes how long a run takes, not what it
/// sends; likewise `--drain-ms 3000` waits for late replies, and ends as soon as all are
/// in), at least 95 % answered, no reply
/// with a bad checksum, latency percentiles present and ordered, per-second series and
/// per-thread entries present, frame accounting ok on every thread.
fn assert_answered(s: &Value, count: u64) {
    let sent = num(s, "/totals/sent");
    let answered = num(s, "/totals/answered");
    assert_eq!(sent, count, "sent {sent}, not --count {count}: {s:#}");
    assert!(
        answered * 100 >= sent * 95,
        "answered {answered} of {sent} (< 95 %): {s:#}"
    );
    assert!(answered <= sent, "more answers than packets: {s:#}");
    assert_eq!(
        num(s, "/totals/counters/rx_invalid"),
        0,
        "replies with bad checksums: {s:#}"
    );
    assert_eq!(s["frame_accounting"], "ok", "{s:#}");
    let lat = &s["latency_us"];
    assert_eq!(
        num(lat, "/count"),
        answered,
        "one round trip per answer: {lat}"
    );
    let p: Vec<f64> = ["min", "p50", "p90", "p99", "p999", "max"]
        .iter()
        .map(|k| f64_at(lat, &format!("/{k}")))
        .collect();
    assert!(p[0] > 0.0, "{lat}");
    assert!(
        p.windows(2).all(|w| w[0] <= w[1]),
        "percentiles out of order: {lat}"
    );
    let series = s["per_second"].as_array().expect("per_second");
    assert!(!series.is_empty(), "{s:#}");
    let series_sent: u64 = series.iter().map(|x| num(x, "/sent")).sum();
    assert_eq!(series_sent, sent, "the series adds up to the total: {s:#}");
    for t in s["threads"].as_array().expect("threads") {
        assert_eq!(t["frame_accounting"], "ok", "{t:#}");
        assert!(num(t, "/counters/sent") > 0, "{t:#}");
        assert!(t["core"].is_u64(), "thread not pinned: {t:#}");
    }
}

/// Whether `ip -d link show` output shows an XDP program.
/// Also an attach mode named alone (`xdpgeneric` ...).
fn xdp_attached(link: &str) -> bool {
    xdp::xdp_attached(link)
        || link.split_whitespace().any(|t| {
            matches!(
                t,
                "xdp" | "xdpgeneric" | "xdpdrv" | "xdpoffload" | "xdpmulti"
            )
        })
}

fn assert_no_xdp(sb: &Sandbox) {
    let info = sb.info();
    for (ns, dev) in [(&info.client_ns, "peer0"), (&info.server_ns, "xdp0")] {
        let l = link(ns, dev);
        assert!(!xdp_attached(&l), "XDP program left on {dev}:\n{l}");
    }
}

fn assert_reflector_ok(stats: &Value, queues: usize) {
    let qs = stats["queues"].as_array().expect("queues");
    assert_eq!(qs.len(), queues, "{stats:#}");
    for q in qs {
        assert_eq!(q["frame_accounting"], "ok", "{q:#}");
        assert!(q["core"].is_u64(), "queue thread not pinned: {q:#}");
    }
}

// ---------------------------------------------------------------------------------------------

/// pktgen echo against the reflector, IPv4 (ARP) then IPv6 (NDP): every frame comes back with
/// addresses and ports swapped and checksums still valid; nothing is left attached.
#[test]
fn echo_through_the_reflector() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("pgrefl", 1);
    let refl = Reflector::start(&sb, 1);
    let link_during = link(&sb.info().server_ns, "xdp0");
    assert!(
        xdp_attached(&link_during),
        "no XDP on xdp0 while reflecting"
    );

    let args =
        format!("--template echo --dst {SERVER_IP4} --rate 20000 --count 40000 --duration 30 --drain-ms 3000");
    let child = pktgen_spawn(&sb, &args);
    // While it runs, peer0 carries pktgen's XDP program (its XSK's redirect).
    let started = Instant::now();
    let mut seen = false;
    while !seen && started.elapsed() < Duration::from_millis(1800) {
        seen = xdp_attached(&link(&sb.info().client_ns, "peer0"));
        thread::sleep(Duration::from_millis(50));
    }
    let v4 = pktgen_wait(child, &args);
    assert!(seen, "no XDP program on peer0 while pktgen ran");
    assert_answered(&v4, 40_000);
    assert_eq!(v4["dst_mac"], sb.info().server_mac, "resolved by ARP");
    assert_eq!(v4["dst_mac_from"], "ARP");

    let v6 = pktgen(
        &sb,
        &format!(
            "--template echo --dst {SERVER_IP6} --rate 10000 --count 20000 --duration 30 --drain-ms 3000 \
             --payload 200 \
             --src-port 20000-20007"
        ),
    );
    assert_answered(&v6, 20_000);
    assert_eq!(v6["dst_mac_from"], "NDP");
    assert_eq!(num(&v6, "/flows"), 8);

    let stats = refl.stop();
    assert_reflector_ok(&stats, 1);
    let q = &stats["queues"][0]["counters"];
    let answered = num(&v4, "/totals/answered") + num(&v6, "/totals/answered");
    assert!(num(q, "/reflected") >= answered, "{stats:#}");
    assert!(num(q, "/arp_answered") >= 1, "{stats:#}");
    assert!(num(q, "/ndp_answered") >= 1, "{stats:#}");
    assert_no_xdp(&sb);
}

/// Two queues each way: a pktgen thread per queue, a reflector thread per queue, and traffic
/// on both.
#[test]
fn echo_through_the_reflector_two_queues() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("pgrefl2", 2);
    let refl = Reflector::start(&sb, 2);
    let s = pktgen(
        &sb,
        &format!(
            "--template echo --dst {SERVER_IP4} --rate 20000 --count 40000 --duration 30 --drain-ms 3000 \
             --queues 2 \
             --src-port 30000-30063"
        ),
    );
    assert_answered(&s, 40_000);
    let threads = s["threads"].as_array().expect("threads");
    assert_eq!(threads.len(), 2);
    for t in threads {
        let sent = num(t, "/counters/sent");
        assert_eq!(sent, 20_000, "each thread sends its half: {t:#}");
    }
    let stats = refl.stop();
    assert_reflector_ok(&stats, 2);
    for q in stats["queues"].as_array().expect("queues") {
        assert!(num(q, "/counters/reflected") >= 10_000, "{q:#}");
    }
    assert_no_xdp(&sb);
}

/// pktgen echo against the stack's UDP echo server (port 7).
#[test]
fn echo_against_the_stack() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("pgecho", 1);
    let server = Server::start(&sb, Service::Echo, &[]);
    let s = pktgen(
        &sb,
        &format!(
            "--template echo --dst {SERVER_IP4} --rate 10000 --count 20000 --duration 30 --drain-ms 3000 \
             --src-port 40000-40099"
        ),
    );
    assert_answered(&s, 20_000);
    assert_eq!(s["dst_mac_from"], "ARP");
    let stats = server.stop();
    assert_frames_ok(&stats);
    assert!(
        total(&stats, "/app/datagrams") >= num(&s, "/totals/answered"),
        "{stats:#}"
    );
    assert_no_xdp(&sb);
}

/// SYNs against the stack's HTTP server: every SYN-ACK is an answer, and pktgen's RST frees
/// the half-open connection (no SYN ever finds the backlog full). Afterwards the client's
/// kernel talks to the server again (pktgen's XDP program is gone from peer0).
#[test]
fn syn_against_the_stack_http() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("pgsyn", 1);
    // More SYNs (5000) than the backlog (1024, the default): only the RSTs keep it from
    // filling. (A smaller backlog would also fill when the shared machine stalls the
    // server's core for a while and a burst of SYNs arrives at once.)
    let server = Server::start(&sb, Service::Http, &[]);
    let s = pktgen(
        &sb,
        &format!("--template syn --dst {SERVER_IP4} --rate 2500 --count 5000 --duration 30 --drain-ms 3000"),
    );
    let sent = num(&s, "/totals/sent");
    let answered = num(&s, "/totals/answered");
    let stats = server.stop();
    assert_frames_ok(&stats);
    let w = &workers(&stats)[0];
    eprintln!("server engine: {}", w["engine"]);
    assert_eq!(num(w, "/engine/syn_backlog_full"), 0, "{stats:#}");
    assert_eq!(sent, 5_000, "{s:#}");
    assert!(
        answered * 100 >= sent * 95,
        "SYN-ACKs for {answered} of {sent} SYNs: {s:#}"
    );
    // Every SYN-ACK was refused with a RST.
    assert!(num(&s, "/totals/counters/rst_sent") >= answered, "{s:#}");
    assert_eq!(num(&s, "/totals/counters/rx_invalid"), 0, "{s:#}");
    assert!(
        !s["latency_us"].is_null(),
        "round trips from the ISNs: {s:#}"
    );
    assert_eq!(s["frame_accounting"], "ok");
    assert_no_xdp(&sb);
    // The kernel client works again.
    let server = Server::start(&sb, Service::Http, &[]);
    curl_ok(&sb, &format!("http://{SERVER_IP4}/"));
    assert_frames_ok(&server.stop());
}

/// Runs `xdpstack ARGS` (split on whitespace) in `side`'s namespace; asserts a non-zero exit
/// within 15 s with exactly one non-empty stderr line containing `needle`, and no summary.
fn bad_start(sb: &Sandbox, side: Side, args: &str, needle: &str) {
    let started = Instant::now();
    let mut cmd = sb.command(side, "timeout");
    cmd.args(["-k", "2", "15", BIN])
        .args(args.split_whitespace())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    let out = output(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "xdpstack {args}: {} in {:.2?}: {}",
        out.status,
        started.elapsed(),
        stderr.trim_end()
    );
    assert!(!out.status.success(), "xdpstack {args} succeeded");
    assert_ne!(out.status.code(), Some(124), "xdpstack {args} timed out");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 1 && !lines[0].trim().is_empty() && stderr.ends_with('\n'),
        "xdpstack {args}: stderr is not exactly one line: {stderr:?}"
    );
    assert!(lines[0].contains(needle), "{needle:?} not in {stderr:?}");
    assert!(out.stdout.is_empty(), "no summary on a bad start");
}

#[test]
fn bad_starts_one_line_errors() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("pgbad", 1);
    let echo = |dst: &str, extra: &str| {
        format!("pktgen --template echo --dst {dst} --rate 1000 --duration 1 {extra}")
    };
    let c = Side::Client;
    bad_start(&sb, c, &echo(SERVER_IP4, "--iface nope0"), "does not exist");
    bad_start(
        &sb,
        c,
        &echo(SERVER_IP4, "--iface peer0 --queues 3"),
        "queue 2 is out of range",
    );
    // Nothing answers ARP/NDP on the server side: no server, and the kernel there has no
    // address (and IPv6 off).
    let timeout = "--iface peer0 --resolve-timeout 0.5";
    bad_start(
        &sb,
        c,
        &echo(SERVER_IP4, timeout),
        "no ARP reply for 198.18.0.1",
    );
    bad_start(&sb, c, &echo(SERVER_IP6, timeout), "no NDP reply");
    bad_start(
        &sb,
        c,
        &echo(SERVER_IP4, "--iface peer0 --payload 8"),
        "at least 28",
    );
    let s = Side::Server;
    bad_start(&sb, s, "bench reflect --iface nope0", "does not exist");
    bad_start(&sb, s, "bench reflect --iface xdp0 --queues 2", "rx queue");
    // The refused starts left nothing attached.
    assert_no_xdp(&sb);
}
