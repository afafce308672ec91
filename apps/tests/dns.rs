//! End-to-end tests of `xdpstack dns` on real AF_XDP sockets: the server runs on the stack in a
//! sandbox's server namespace with `tests/data/example.test.zone`; kernel clients (kdig from
//! knot-dnsutils, python3 sockets, dnsperf when installed) query it from the client namespace.
//! Root needed (skipped otherwise, an error under CI); they run one at a time.
//!
//! `cargo test -p xdpstack --test dns -- --nocapture`

mod common;

use std::process::Command;
use std::time::Instant;

use common::*;
use lab::sandbox::Sandbox;
use serde_json::Value;

const ZONE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/example.test.zone");

fn start(sb: &Sandbox, extra: &[&str]) -> Server {
    let mut args = vec!["--zone", ZONE];
    args.extend_from_slice(extra);
    Server::start(sb, Service::Dns, &args)
}

/// `kdig +json +retry=0 +timeout=2 @SERVER ARGS...` in the client namespace; the parsed JSON.
fn kdig(sb: &Sandbox, server: &str, args: &[&str]) -> Value {
    let at = format!("@{server}");
    let mut cmd = client(sb, 15, "kdig", ["+json", "+retry=0", "+timeout=2", &at]);
    cmd.args(args);
    let out = run_ok(&mut cmd);
    // With a TCP fallback kdig prints a warning line first on stderr only; stdout is JSON.
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kdig {args:?}: not JSON ({e}):\n{out}"))
}

/// `"TYPE rdata"` of every record in a section (`answerRRs`, `authorityRRs`, ...).
fn section(v: &Value, name: &str) -> Vec<String> {
    v[name]
        .as_array()
        .map(|rrs| {
            rrs.iter()
                .map(|r| {
                    let data = r
                        .as_object()
                        .and_then(|o| {
                            o.iter()
                                .find(|(k, _)| k.starts_with("rdata"))
                                .map(|(_, v)| v.as_str().unwrap_or_default().to_string())
                        })
                        .unwrap_or_default();
                    format!(
                        "{} {} {}",
                        r["NAME"].as_str().unwrap_or("?"),
                        r["TYPEname"].as_str().unwrap_or("?"),
                        data
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn n(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {v:#}"))
}

/// Expected counters, tallied as the test sends queries.
#[derive(Default, Debug)]
struct Tally {
    noerror: u64,
    nxdomain: u64,
    refused: u64,
    badvers: u64,
    tcp: u64,
    udp: u64,
}

impl Tally {
    fn count(&mut self, tcp: bool, rcode: u64) {
        if tcp {
            self.tcp += 1;
        } else {
            self.udp += 1;
        }
        match rcode {
            0 => self.noerror += 1,
            3 => self.nxdomain += 1,
            5 => self.refused += 1,
            16 => self.badvers += 1,
            other => panic!("unexpected rcode {other}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Every record type, NXDOMAIN, NODATA, REFUSED, referral, EDNS, over UDP and TCP, v4 and v6.

#[test]
fn answers_over_udp_and_tcp_v4_and_v6() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("dnsall", 1);
    let server = start(&sb, &[]);
    let mut tally = Tally::default();
    let positive: &[(&str, &str, &[&str])] = &[
        ("www.example.test", "A", &["www.example.test. A 192.0.2.1"]),
        ("www.example.test", "AAAA", &["www.example.test. AAAA 2001:db8::1"]),
        (
            "alias.example.test",
            "CNAME",
            &["alias.example.test. CNAME www.example.test."],
        ),
        (
            "alias.example.test",
            "A",
            &["alias.example.test. CNAME www.example.test.", "www.example.test. A 192.0.2.1"],
        ),
        (
            "example.test",
            "NS",
            &["example.test. NS ns1.example.test.", "example.test. NS ns2.example.net."],
        ),
        (
            "example.test",
            "SOA",
            &["example.test. SOA ns1.example.test. hostmaster.example.test. 2024010101 7200 3600 1209600 300"],
        ),
        ("example.test", "MX", &["example.test. MX 10 mail.example.test."]),
        ("example.test", "TXT", &["example.test. TXT \"v=spf1 -all\""]),
        (
            "text.example.test",
            "TXT",
            &["text.example.test. TXT \"hello world\" \"second string\""],
        ),
        (
            "_dns._udp.example.test",
            "SRV",
            &["_dns._udp.example.test. SRV 0 5 53 ns1.example.test."],
        ),
        ("foo.wild.example.test", "A", &["foo.wild.example.test. A 192.0.2.99"]),
    ];
    for host in [SERVER_IP4, SERVER_IP6] {
        for tcp in [false, true] {
            let proto = if tcp { "+tcp" } else { "+notcp" };
            for &(qname, qtype, want) in positive {
                let r = kdig(&sb, host, &[proto, qname, qtype]);
                tally.count(tcp, n(&r, "RCODE"));
                assert_eq!(n(&r, "RCODE"), 0, "{qname} {qtype}: {r:#}");
                assert_eq!(n(&r, "AA"), 1, "{qname} {qtype}: {r:#}");
                assert_eq!(n(&r, "QR"), 1);
                assert_eq!(n(&r, "TC"), 0);
                assert_eq!(
                    section(&r, "answerRRs"),
                    want,
                    "{host} {proto} {qname} {qtype}"
                );
            }
            // NXDOMAIN, with the SOA (TTL = SOA minimum) in the authority section.
            let r = kdig(&sb, host, &[proto, "nope.example.test", "A"]);
            tally.count(tcp, n(&r, "RCODE"));
            assert_eq!(
                (n(&r, "RCODE"), n(&r, "AA"), n(&r, "ANCOUNT")),
                (3, 1, 0),
                "{r:#}"
            );
            assert_eq!(
                section(&r, "authorityRRs"),
                ["example.test. SOA ns1.example.test. hostmaster.example.test. 2024010101 7200 3600 1209600 300"]
            );
            assert_eq!(r["authorityRRs"][0]["TTL"], 300);
            // NODATA: the name exists, the type does not.
            let r = kdig(&sb, host, &[proto, "www.example.test", "MX"]);
            tally.count(tcp, n(&r, "RCODE"));
            assert_eq!(
                (n(&r, "RCODE"), n(&r, "AA"), n(&r, "ANCOUNT")),
                (0, 1, 0),
                "{r:#}"
            );
            assert_eq!(r["authorityRRs"][0]["TYPEname"], "SOA", "{r:#}");
            // Outside the zone: REFUSED, not authoritative.
            let r = kdig(&sb, host, &[proto, "www.example.org", "A"]);
            tally.count(tcp, n(&r, "RCODE"));
            assert_eq!(
                (n(&r, "RCODE"), n(&r, "AA"), n(&r, "ANCOUNT")),
                (5, 0, 0),
                "{r:#}"
            );
            // Below a delegation: a referral with glue.
            let r = kdig(&sb, host, &[proto, "host.sub.example.test", "A"]);
            tally.count(tcp, n(&r, "RCODE"));
            assert_eq!(
                (n(&r, "RCODE"), n(&r, "AA"), n(&r, "ANCOUNT")),
                (0, 0, 0),
                "{r:#}"
            );
            assert_eq!(
                section(&r, "authorityRRs"),
                ["sub.example.test. NS ns.sub.example.test."]
            );
            assert_eq!(
                section(&r, "additionalRRs"),
                ["ns.sub.example.test. A 192.0.2.54"]
            );
        }
    }
    // EDNS: no OPT without EDNS; an OPT with our size when asked; BADVERS for version 1.
    let r = kdig(&sb, SERVER_IP4, &["+noedns", "www.example.test", "A"]);
    tally.count(false, 0);
    assert_eq!(n(&r, "ARCOUNT"), 0, "{r:#}");
    let r = kdig(&sb, SERVER_IP4, &["+bufsize=4096", "www.example.test", "A"]);
    tally.count(false, 0);
    assert_eq!(n(&r, "ARCOUNT"), 1, "{r:#}");
    assert_eq!(r["additionalRRs"][0]["TYPEname"], "OPT");
    assert_eq!(r["additionalRRs"][0]["CLASS"], 1232, "our UDP size: {r:#}");
    assert_eq!(section(&r, "answerRRs"), ["www.example.test. A 192.0.2.1"]);
    let r = kdig(&sb, SERVER_IP4, &["+edns=1", "www.example.test", "A"]);
    tally.count(false, 16);
    assert_eq!((n(&r, "RCODE"), n(&r, "ANCOUNT")), (0, 0), "{r:#}");
    let ttl = n(&r["additionalRRs"][0], "TTL");
    assert_eq!(ttl >> 24, 1, "extended rcode 1 (BADVERS = 16): {r:#}");
    assert_eq!((ttl >> 16) & 0xFF, 0, "our EDNS version is 0");

    let probes = server.probes;
    let stats = server.stop();
    assert_frames_ok(&stats);
    eprintln!("expected {tally:?}");
    assert_eq!(total(&stats, "/app/noerror"), tally.noerror, "{stats:#}");
    assert_eq!(total(&stats, "/app/nxdomain"), tally.nxdomain);
    assert_eq!(
        total(&stats, "/app/refused"),
        tally.refused + probes,
        "{stats:#}"
    );
    assert_eq!(
        total(&stats, "/app/udp_queries"),
        tally.udp + probes,
        "{stats:#}"
    );
    assert_eq!(total(&stats, "/app/badvers"), tally.badvers);
    assert_eq!(total(&stats, "/app/tcp_queries"), tally.tcp);
    assert_eq!(
        total(&stats, "/app/formerr") + total(&stats, "/app/malformed_dropped"),
        0
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Truncation over UDP, the full answer over TCP.

#[test]
fn large_answers_truncate_over_udp_and_come_whole_over_tcp() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("dnstc", 1);
    let server = start(&sb, &[]);
    let zone = std::fs::read_to_string(ZONE).expect("zone file");
    let big_first = zone
        .lines()
        .find(|l| l.trim_start().starts_with("\"0"))
        .expect("the first bigtxt string")
        .trim()
        .trim_matches('"')
        .to_string();
    let mut truncated = 0;
    for host in [SERVER_IP4, SERVER_IP6] {
        for (qname, qtype, count) in [
            ("bigtxt.example.test", "TXT", 1),
            ("many.example.test", "A", 100),
        ] {
            // Without EDNS (512), and with a large EDNS size (capped at our 1232).
            for edns in ["+noedns", "+bufsize=4096"] {
                let r = kdig(&sb, host, &["+notcp", "+ignore", edns, qname, qtype]);
                truncated += 1;
                assert_eq!(
                    (n(&r, "TC"), n(&r, "AA"), n(&r, "ANCOUNT")),
                    (1, 1, 0),
                    "{r:#}"
                );
                assert!(n(&r, "msgLength") <= 512, "{r:#}");
            }
            // kdig (UDP first, no `+notcp`, which would also forbid the fallback) retries over
            // TCP on TC by itself...
            let r = kdig(&sb, host, &[qname, qtype]);
            truncated += 1;
            assert_eq!((n(&r, "TC"), n(&r, "ANCOUNT")), (0, count), "{r:#}");
            // ...and over TCP directly.
            let r = kdig(&sb, host, &["+tcp", qname, qtype]);
            assert_eq!((n(&r, "TC"), n(&r, "ANCOUNT")), (0, count), "{r:#}");
            let answers = section(&r, "answerRRs");
            if qtype == "TXT" {
                assert!(n(&r, "msgLength") > 1900, "{r:#}");
                assert!(answers[0].contains(&big_first), "{answers:?}");
            } else {
                let mut got: Vec<String> = answers
                    .iter()
                    .map(|a| a.rsplit(' ').next().unwrap().to_string())
                    .collect();
                got.sort();
                let mut want: Vec<String> = (1..=100).map(|i| format!("198.51.100.{i}")).collect();
                want.sort();
                assert_eq!(got, want);
            }
        }
    }
    let stats = server.stop();
    assert_frames_ok(&stats);
    assert_eq!(total(&stats, "/app/truncated"), truncated, "{stats:#}");
    // 2 families x 2 names x (1 kdig fallback + 1 direct) over TCP.
    assert_eq!(total(&stats, "/app/tcp_queries"), 8, "{stats:#}");
}

// ---------------------------------------------------------------------------------------------
// 3. Several queries on one TCP connection, pipelined, split, and the idle timeout.

/// argv: host. One connection: 30 length-prefixed queries in one write (answers must come back
/// in order with matching ids, large ones among them), then one query split over several
/// writes; a second connection sends 600 queries whose answers (1 MB) it reads only after a
/// pause (the server must hold back, not drop); a third stays idle until the server closes it.
const TCP_PIPELINE: &str = r#"
import json, socket, struct, sys, time
host = sys.argv[1]
family = socket.AF_INET6 if ":" in host else socket.AF_INET

def q(qid, name, qtype):
    m = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        if label:
            m += bytes([len(label)]) + label.encode()
    return m + b"\0" + struct.pack(">HH", qtype, 1)

def framed(m):
    return struct.pack(">H", len(m)) + m

def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b

def answer(s):
    (n,) = struct.unpack(">H", recv_exact(s, 2))
    m = recv_exact(s, n)
    qid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", m[:12])
    return {"id": qid, "rcode": flags & 0xF, "tc": bool(flags & 0x200), "an": an, "ns": ns, "len": n}

s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(5)
s.connect((host, 53))
names = [("www.example.test", 1), ("nope.example.test", 1), ("www.example.org", 1),
         ("example.test", 15), ("alias.example.test", 1), ("many.example.test", 1)]
batch = b""
sent = []
for i in range(30):
    name, qtype = names[i % len(names)]
    batch += framed(q(1000 + i, name, qtype))
    sent.append(1000 + i)
s.sendall(batch)
got = [answer(s) for _ in sent]
ids_in_order = [a["id"] for a in got] == sent
rcodes = [a["rcode"] for a in got]
# One query split over several writes.
m = framed(q(4242, "www.example.test", 28))
for i in range(0, len(m), 3):
    s.sendall(m[i:i + 3])
    time.sleep(0.01)
split = answer(s)
big = [a["an"] for a in got if a["id"] in sent[5::6]]
s.close()
# Back-pressure: 600 queries with 1.6 KB answers each (about 1 MB), not read for a while.
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(10)
s.connect((host, 53))
s.sendall(b"".join(framed(q(i, "many.example.test", 1)) for i in range(600)))
time.sleep(0.5)
slow = [answer(s) for _ in range(600)]
slow_ok = [a["id"] for a in slow] == list(range(600)) and all(a["an"] == 100 for a in slow)
s.close()
# An idle connection is closed by the server.
t0 = time.monotonic()
idle = socket.socket(family, socket.SOCK_STREAM)
idle.settimeout(10)
idle.connect((host, 53))
closed = idle.recv(1) == b""
idle_s = time.monotonic() - t0
print(json.dumps({"ids_in_order": ids_in_order, "rcodes": rcodes, "split": split, "slow_reader_ok": slow_ok,
                  "many_answers": big, "idle_closed": closed, "idle_seconds": idle_s}))
"#;

#[test]
fn tcp_pipelining_and_idle_timeout() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("dnstcp", 1);
    let server = start(&sb, &["--tcp-idle", "1"]);
    for host in [SERVER_IP4, SERVER_IP6] {
        let r = python_json(&sb, 30, TCP_PIPELINE, &[host]);
        eprintln!("tcp pipeline {host}: {r}");
        assert_eq!(r["ids_in_order"], true, "{r}");
        let want: Vec<u64> = (0..30).map(|i| [0, 3, 5, 0, 0, 0][i % 6]).collect();
        let got: Vec<u64> = r["rcodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(got, want);
        assert_eq!(r["split"]["id"], 4242);
        assert_eq!(r["split"]["an"], 1);
        assert_eq!(
            r["many_answers"],
            serde_json::json!([100, 100, 100, 100, 100])
        );
        assert_eq!(
            r["slow_reader_ok"], true,
            "600 answers in order to a slow reader: {r}"
        );
        assert_eq!(r["idle_closed"], true);
        let idle = r["idle_seconds"].as_f64().unwrap();
        assert!((0.9..5.0).contains(&idle), "idle close after {idle} s");
    }
    let stats = server.stop();
    assert_frames_ok(&stats);
    assert_eq!(
        total(&stats, "/app/tcp_queries"),
        2 * (31 + 600),
        "{stats:#}"
    );
    assert_eq!(total(&stats, "/app/tcp_connections"), 6, "{stats:#}");
    assert_eq!(total(&stats, "/app/tcp_idle_closed"), 2, "{stats:#}");
}

// ---------------------------------------------------------------------------------------------
// 4. Malformed queries: FORMERR when the header is readable, dropped and counted otherwise;
//    the server keeps answering.

/// argv: host seed count. Sends hand-made bad queries and `count` seeded random datagrams; for
/// each, waits up to 0.3 s for a reply. Reports which were answered with which rcode and how many
/// the server should have dropped (shorter than a header, or QR set), then checks a valid query
/// is still answered. Last, a TCP message of 5 bytes: the server must close that connection.
const MALFORMED: &str = r#"
import json, random, socket, struct, sys
host, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
rng = random.Random(seed)
s = socket.socket(family, socket.SOCK_DGRAM)
s.connect((host, 53))

def ask(m, wait=0.3):
    s.send(m)
    s.settimeout(wait)
    try:
        while True:
            r = s.recv(4096)
            if r[:2] == m[:2]:
                return r
    except socket.timeout:
        return None

def hdr(qid, flags=0, qd=1, an=0, ns=0, ar=0):
    return struct.pack(">HHHHHH", qid, flags, qd, an, ns, ar)

www = b"\x03www\x07example\x04test\x00"
cases = {
    "short_header": (b"\x12\x34\x01\x00\x00", None),
    "response_bit": (hdr(0x1111, 0x8000) + www + b"\0\1\0\1", None),
    "bad_label_type": (hdr(0x2222) + b"\x50abc\x00\0\1\0\1", 1),
    "label_past_end": (hdr(0x3333) + b"\x3fabc", 1),
    "compression_loop": (hdr(0x4444) + b"\xc0\x0c\0\1\0\1", 1),
    "forward_pointer": (hdr(0x5555) + b"\xc0\x20\0\1\0\1", 1),
    "no_question": (hdr(0x6666, qd=0), 1),
    "two_questions": (hdr(0x7777, qd=2) + www + b"\0\1\0\1", 1),
    "truncated_type": (hdr(0x8888) + www + b"\0", 1),
    "name_too_long": (hdr(0x9999) + (b"\x3f" + b"a" * 63) * 4 + b"\0\0\1\0\1", 1),
    "notify_opcode": (hdr(0xaaaa, 4 << 11) + www + b"\0\6\0\1", 4),
}
results = {}
dropped = 0
for name, (m, want) in cases.items():
    r = ask(m)
    if want is None:
        results[name] = r is None
        dropped += 1
    else:
        results[name] = r is not None and (r[3] & 0xF) == want and (r[2] & 0x80) != 0
# Random datagrams in one burst (ids 0xc000 + i), then collect replies for a second.
should_drop = 0
ids = set()
for i in range(count):
    n = rng.randint(0, 60)
    m = bytes(rng.getrandbits(8) for _ in range(n))
    if n >= 2:
        m = struct.pack(">H", 0xc000 + i) + m[2:]
    if len(m) < 12 or m[2] & 0x80:
        should_drop += 1
    elif n >= 2:
        ids.add(0xc000 + i)
    s.send(m)
answered = bad = 0
s.settimeout(1)
try:
    while True:
        r = s.recv(4096)
        qid = struct.unpack(">H", r[:2])[0]
        if qid in ids:
            ids.discard(qid)
            answered += 1
            if len(r) < 12 or not (r[2] & 0x80):
                bad += 1
except socket.timeout:
    pass
silent = count - answered
ok = ask(hdr(0xbbbb, 0x0100) + www + b"\0\1\0\1", 2)
still_answers = ok is not None and (ok[3] & 0xF) == 0 and struct.unpack(">H", ok[6:8])[0] == 1
t = socket.socket(family, socket.SOCK_STREAM)
t.settimeout(5)
t.connect((host, 53))
t.sendall(b"\x00\x05" + b"\x01\x02\x03\x04\x05")
tcp_closed = t.recv(10) == b""
print(json.dumps({"cases": results, "dropped": dropped, "answered": answered, "silent": silent,
                  "should_drop": should_drop, "bad_replies": bad, "still_answers": still_answers,
                  "tcp_closed": tcp_closed}))
"#;

#[test]
fn malformed_queries_get_formerr_or_are_dropped() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("dnsbad", 1);
    let server = start(&sb, &[]);
    let mut dropped = 0;
    let mut answered = 0;
    for (host, seed) in [(SERVER_IP4, "4"), (SERVER_IP6, "6")] {
        let r = python_json(&sb, 120, MALFORMED, &[host, seed, "300"]);
        eprintln!("malformed {host}: {r}");
        for (case, ok) in r["cases"].as_object().unwrap() {
            assert_eq!(ok, true, "{host}: case {case}: {r}");
        }
        assert_eq!(r["bad_replies"], 0, "{r}");
        assert_eq!(
            r["silent"], r["should_drop"],
            "every unanswerable datagram dropped, every other answered: {r}"
        );
        assert_eq!(r["still_answers"], true, "{r}");
        assert_eq!(r["tcp_closed"], true, "{r}");
        dropped += num(&r, "/dropped") + num(&r, "/should_drop") + 1;
        answered += num(&r, "/answered");
    }
    let stats = server.stop();
    assert_frames_ok(&stats);
    assert_eq!(
        total(&stats, "/app/malformed_dropped"),
        dropped,
        "{stats:#}"
    );
    assert_eq!(total(&stats, "/app/tcp_malformed_closed"), 2, "{stats:#}");
    // Per family 8 hand-made FORMERR cases and 1 NOTIMP; the random datagrams that were
    // answered got one of the two (a readable header with a random opcode gets NOTIMP, with
    // opcode QUERY almost always FORMERR).
    let errors = total(&stats, "/app/formerr") + total(&stats, "/app/notimp");
    assert_eq!(errors, 18 + answered, "{stats:#}");
    assert!(total(&stats, "/app/notimp") >= 2, "{stats:#}");
    assert!(total(&stats, "/app/formerr") >= 16, "{stats:#}");
    // The valid queries after the garbage (and the readiness probes) were answered.
    assert_eq!(total(&stats, "/app/noerror"), 2, "{stats:#}");
}

// ---------------------------------------------------------------------------------------------
// 5. Two workers: queries from many source ports are spread over both.

/// argv: host count. Each query from a fresh socket (a fresh source port); all must be answered.
const MANY_PORTS: &str = r#"
import json, socket, struct, sys
host, count = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
www = b"\x03www\x07example\x04test\x00"
ok = 0
for i in range(count):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(2)
    m = struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + www + b"\0\1\0\1"
    for attempt in range(2):
        s.sendto(m, (host, 53))
        try:
            r = s.recv(512)
        except socket.timeout:
            continue
        if r[:2] == m[:2] and r[3] & 0xF == 0:
            ok += 1
            break
    s.close()
print(json.dumps({"ok": ok}))
"#;

#[test]
fn two_workers_share_the_port() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("dns2w", 2);
    let server = start(&sb, &["--workers", "2"]);
    for host in [SERVER_IP4, SERVER_IP6] {
        let r = python_json(&sb, 60, MANY_PORTS, &[host, "200"]);
        assert_eq!(num(&r, "/ok"), 200, "{host}: {r}");
    }
    let probes = server.probes;
    let stats = server.stop();
    assert_frames_ok(&stats);
    let ws = workers(&stats);
    assert_eq!(ws.len(), 2);
    let per: Vec<u64> = ws.iter().map(|w| num(w, "/app/udp_queries")).collect();
    eprintln!("udp queries per worker: {per:?}");
    assert!(per.iter().all(|&q| q >= 40), "both workers answer: {per:?}");
    assert_eq!(per.iter().sum::<u64>(), 400 + probes, "{stats:#}");
    assert_eq!(total(&stats, "/app/noerror"), 400, "{stats:#}");
}

// ---------------------------------------------------------------------------------------------
// 6. A bounded load: a few thousand queries, none lost.

#[test]
fn bounded_load_loses_nothing() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("dnsload", 2);
    let server = start(&sb, &["--workers", "2"]);
    let have_dnsperf = Command::new("sh")
        .args(["-c", "command -v dnsperf"])
        .output()
        .is_ok_and(|o| o.status.success());
    let sent;
    if have_dnsperf {
        let qfile = temp_path("dnsperf", "txt");
        std::fs::write(
            &qfile,
            "www.example.test A\nmail.example.test AAAA\nnope.example.test A\nexample.test MX\n\
             alias.example.test A\nfoo.wild.example.test A\n",
        )
        .unwrap();
        let t0 = Instant::now();
        let out = run_ok(&mut client(
            &sb,
            60,
            "dnsperf",
            [
                "-s",
                SERVER_IP4,
                "-d",
                qfile.to_str().unwrap(),
                "-n",
                "5000",
                "-l",
                "30",
                "-c",
                "4",
                "-q",
                "64",
                "-t",
                "2",
            ],
        ));
        let _ = std::fs::remove_file(&qfile);
        eprintln!("dnsperf in {:.1?}:\n{out}", t0.elapsed());
        let field = |name: &str| -> u64 {
            out.lines()
                .find(|l| l.trim_start().starts_with(name))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no `{name}` in dnsperf output:\n{out}"))
        };
        sent = field("Queries sent");
        assert_eq!(sent, 30_000, "{out}");
        assert_eq!(field("Queries completed"), sent, "{out}");
        assert_eq!(field("Queries lost"), 0, "{out}");
    } else {
        eprintln!("dnsperf not installed: python load");
        let r = python_json(&sb, 120, MANY_PORTS, &[SERVER_IP4, "3000"]);
        sent = num(&r, "/ok");
        assert_eq!(sent, 3000, "{r}");
    }
    let probes = server.probes;
    let stats = server.stop();
    assert_frames_ok(&stats);
    assert_eq!(total(&stats, "/app/refused"), probes, "{stats:#}");
    assert_eq!(
        total(&stats, "/app/udp_queries"),
        sent + probes,
        "{stats:#}"
    );
    assert_eq!(total(&stats, "/app/udp_send_failed"), 0, "{stats:#}");
    assert_eq!(total(&stats, "/engine/udp_queue_full"), 0, "{stats:#}");
}
