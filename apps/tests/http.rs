//! End-to-end tests of `xdpstack http` on real AF_XDP sockets: each test builds its own sandbox,
//! runs the server on the stack in the server namespace and drives it with kernel clients
//! (curl, python3 raw sockets, ab) from the client namespace. They need root (see
//! `privileged.rs` for the rules: skipped without root, an error under CI). One at a time.
//!
//! `cargo test -p xdpstack --test http -- --nocapture`

mod common;
#[path = "support/tree.rs"]
mod tree;
#[path = "support/xdp.rs"]
mod xdp;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use lab::sandbox::Sandbox;
use nix::sys::signal::{kill, Signal};
use serde_json::Value;
use tree::TempTree;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Deterministic pseudo-random bytes, so a failure is reproducible.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    testkit::Rng::new(seed).bytes(len)
}

/// argv: host port request_hex read_timeout [shut]. Sends the request in one write, reads
/// until EOF, reset or the timeout; prints the bytes (latin1), how the read ended and the time
/// from connect to that end. With `shut`, the write side is shut down after sending.
const RAW: &str = r#"
import json, socket, sys, time
host, port, req, rt = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3]), float(sys.argv[4])
shut = len(sys.argv) > 5 and sys.argv[5] == "shut"
t0 = time.monotonic()
s = socket.create_connection((host, port), timeout=5)
if req:
    s.sendall(req)
if shut:
    s.shutdown(socket.SHUT_WR)
buf = b""
end = "timeout"
deadline = t0 + rt
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        break
    s.settimeout(left)
    try:
        b = s.recv(1 << 20)
    except socket.timeout:
        break
    except ConnectionResetError:
        end = "reset"
        break
    if not b:
        end = "eof"
        break
    buf += b
print(json.dumps({"data": buf.decode("latin1"), "end": end,
                  "seconds": time.monotonic() - t0}))
"#;

struct Raw {
    data: Vec<u8>,
    end: String,
    seconds: f64,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Sends `req` on a fresh connection to the server (IPv4, port 80) and reads until EOF,
/// reset or `read_timeout` seconds.
fn raw(sb: &Sandbox, req: &[u8], read_timeout: f64) -> Raw {
    raw_opts(sb, req, read_timeout, false)
}

fn raw_opts(sb: &Sandbox, req: &[u8], read_timeout: f64, shut: bool) -> Raw {
    let rt = read_timeout.to_string();
    let h = hex(req);
    let mut args = vec![SERVER_IP4, "80", &h, &rt];
    if shut {
        args.push("shut");
    }
    let v = python_json(sb, read_timeout as u64 + 15, RAW, &args);
    Raw {
        data: v["data"]
            .as_str()
            .expect("data")
            .chars()
            .map(|c| c as u32 as u8)
            .collect(),
        end: v["end"].as_str().expect("end").to_string(),
        seconds: v["seconds"].as_f64().expect("seconds"),
    }
}

/// One parsed response.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits `data` into responses by Content-Length; `head[i]` says whether response i answers
/// a HEAD (no body whatever the length says). Panics on anything malformed or left over.
fn responses(data: &[u8], head: &[bool]) -> Vec<Resp> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("incomplete head: {:?}", String::from_utf8_lossy(rest)));
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line:?}");
        let status: u16 = status_line[9..12].parse().expect("status code");
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header {l:?}"));
                (n.trim().to_string(), v.trim().to_string())
            })
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().expect("content-length"))
            .unwrap_or_else(|| panic!("no Content-Length in {text:?}"));
        let body_len = if head.get(i).copied().unwrap_or(false) {
            0
        } else {
            len
        };
        let start = end + 4;
        assert!(
            rest.len() >= start + body_len,
            "short body in response {i}: {:?}",
            String::from_utf8_lossy(rest)
        );
        out.push(Resp {
            status,
            headers,
            body: rest[start..start + body_len].to_vec(),
        });
        rest = &rest[start + body_len..];
        i += 1;
    }
    out
}

/// `curl -sS -m 10 -g -o FILE -w '%{http_code} %{content_type}' EXTRA URL`: (status, type, body).
fn curl_get(sb: &Sandbox, extra: &[&str], path: &str) -> (u16, String, Vec<u8>) {
    let out_file = temp_path("curl", "body");
    let url = format!("http://{SERVER_IP4}{path}");
    let mut cmd = client(sb, 20, "curl", ["-sS", "-m", "10", "-g", "-o"]);
    cmd.arg(&out_file)
        .args(["-w", "%{http_code} %{content_type}"])
        .args(extra)
        .arg(&url);
    let w = run_ok(&mut cmd);
    let body = fs::read(&out_file).unwrap_or_default();
    let _ = fs::remove_file(&out_file);
    let (code, ct) = w.split_once(' ').unwrap_or((&w, ""));
    (
        code.parse()
            .unwrap_or_else(|_| panic!("curl {url}: no status in {w:?}")),
        ct.to_string(),
        body,
    )
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

/// Whether `ip -d link show` output shows an XDP program attached.
fn xdp_attached(sb: &Sandbox) -> bool {
    xdp::xdp_attached(&xdp::link(&sb.info().server_ns, "xdp0"))
}

/// Waits (at most `limit`) for the server to exit on its own; returns how long it took.
fn wait_exit(server: &mut Server, limit: Duration) -> Duration {
    let t = Instant::now();
    loop {
        if let Some(status) = server.try_wait() {
            assert!(
                status.success(),
                "the server exited with {status}; stderr:\n{}",
                server.stderr_text()
            );
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "the server did not exit within {limit:?}; stderr:\n{}",
            server.stderr_text()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Files from --root: bytes, types, HEAD, directories.

#[test]
fn root_files_types_head_and_directories() {
    let Some(_lock) = begin() else { return };
    let root = TempTree::new("root");
    let png = bytes(30_000, 1);
    let js = b"console.log('xdpstack');\n".to_vec();
    root.file("index.html", b"<h1>root index</h1>\n");
    root.file("style.css", b"body { color: red }\n");
    root.file("app.js", &js);
    root.file("data.json", b"{\"ok\": true}\n");
    root.file("img/pic.png", &png);
    root.file("docs/index.html", b"<p>docs</p>\n");
    root.file("docs/a b.txt", b"spaced name\n");
    root.file("blob", &bytes(100, 2));
    let sb = sandbox("root", 1);
    let server = Server::start(&sb, Service::Http, &["--root", &root.arg()]);

    let cases: &[(&str, &str, &[u8])] = &[
        ("/", "text/html; charset=utf-8", b"<h1>root index</h1>\n"),
        (
            "/index.html",
            "text/html; charset=utf-8",
            b"<h1>root index</h1>\n",
        ),
        (
            "/style.css",
            "text/css; charset=utf-8",
            b"body { color: red }\n",
        ),
        ("/app.js", "text/javascript; charset=utf-8", &js),
        ("/data.json", "application/json", b"{\"ok\": true}\n"),
        ("/img/pic.png", "image/png", &png),
        ("/docs/", "text/html; charset=utf-8", b"<p>docs</p>\n"),
        (
            "/docs/a%20b.txt",
            "text/plain; charset=utf-8",
            b"spaced name\n",
        ),
        (
            "/img/../style.css",
            "text/css; charset=utf-8",
            b"body { color: red }\n",
        ),
        ("/data.json?x=1", "application/json", b"{\"ok\": true}\n"),
    ];
    for (path, ct, body) in cases {
        let (code, got_ct, got) = curl_get(&sb, &[], path);
        assert_eq!(code, 200, "GET {path}");
        assert_eq!(&got_ct, ct, "GET {path}");
        assert!(
            got == *body,
            "GET {path}: {} bytes, wrong content",
            got.len()
        );
    }
    // IPv6 too.
    let out = curl(&sb, &[], &format!("http://[{SERVER_IP6}]/img/pic.png"));
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout == png, "GET over IPv6: wrong content");
    let (code, ct, blob) = curl_get(&sb, &[], "/blob");
    assert_eq!((code, ct.as_str()), (200, "application/octet-stream"));
    assert_eq!(blob, bytes(100, 2));

    // A directory without its slash: 301 to the slash; curl -L follows it.
    let r = responses(&raw(&sb, &get("/docs?q=1"), 5.0).data, &[false]);
    assert_eq!(r[0].status, 301, "{r:?}");
    assert_eq!(r[0].header("location"), Some("/docs/?q=1"), "{r:?}");
    let (code, _, body) = curl_get(&sb, &["-L"], "/docs");
    assert_eq!((code, body.as_slice()), (200, &b"<p>docs</p>\n"[..]));

    // 404s: missing names, a file named as a directory, a directory without index.html.
    for path in ["/missing", "/img/missing.png", "/style.css/", "/img/"] {
        let (code, ..) = curl_get(&sb, &[], path);
        assert_eq!(code, 404, "GET {path}");
    }

    // HEAD: the GET's headers, no body at all (checked on a raw socket: curl -I would not
    // notice stray bytes).
    let req = b"HEAD /img/pic.png HTTP/1.1\r\nHost: t\r\n\r\nGET /style.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let got = raw(&sb, req, 5.0);
    assert_eq!(got.end, "eof");
    let r = responses(&got.data, &[true, false]);
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].header("content-length"), Some("30000"));
    assert_eq!(r[0].header("content-type"), Some("image/png"));
    assert_eq!(
        r[1].body, b"body { color: red }\n",
        "the HEAD carried a body"
    );
    let out = curl(&sb, &["-I"], &format!("http://{SERVER_IP4}/app.js"));
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains(&format!("content-length: {}", js.len())));

    // /stats is still the stack's report.
    let (code, ct, body) = curl_get(&sb, &[], "/stats");
    assert_eq!((code, ct.as_str()), (200, "application/json"));
    let v: Value = serde_json::from_slice(&body).expect("stats JSON");
    assert!(v["listeners"].is_array(), "{v}");

    let stats = server.stop();
    assert_frames_ok(&stats);
    assert!(total(&stats, "/app/status_3xx") >= 2, "{stats:#}");
    assert!(total(&stats, "/app/status_4xx") >= 4, "{stats:#}");
}

// ---------------------------------------------------------------------------------------------
// 2. Keep-alive and pipelining.

#[test]
fn keep_alive_and_pipelining() {
    let Some(_lock) = begin() else { return };
    let root = TempTree::new("ka");
    root.file("one.txt", b"first file\n");
    root.file("two.txt", b"second, a little longer\n");
    let big = bytes(200_000, 3);
    root.file("three.bin", &big);
    let sb = sandbox("ka", 1);
    let server = Server::start(&sb, Service::Http, &["--root", &root.arg()]);
    let probes = server.probes;

    // curl fetching two URLs in one command reuses the connection.
    let mut cmd = client(
        &sb,
        20,
        "curl",
        [
            "-sS",
            "-v",
            "-m",
            "10",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
        ],
    );
    cmd.arg(format!("http://{SERVER_IP4}/one.txt"))
        .arg(format!("http://{SERVER_IP4}/two.txt"));
    let out = output(&mut cmd);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Re-using existing connection") || err.contains("Reusing existing"),
        "curl did not reuse the connection:\n{err}"
    );

    // Three requests in one write (one of them a 200 kB body), three responses in order.
    let mut req = get("/two.txt");
    req.extend(get("/three.bin"));
    req.extend(b"GET /one.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let got = raw(&sb, &req, 10.0);
    assert_eq!(got.end, "eof", "closed after `Connection: close`");
    let r = responses(&got.data, &[]);
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(r[0].body, b"second, a little longer\n");
    assert!(r[1].body == big, "the 200 kB body differs");
    assert_eq!(r[2].body, b"first file\n");
    assert_eq!(r[2].header("connection"), Some("close"));
    assert_eq!(r[0].header("connection"), None);

    // HTTP/1.0: closed unless it asks for keep-alive, and then told so.
    let got = raw(&sb, b"GET /one.txt HTTP/1.0\r\n\r\n", 5.0);
    assert_eq!(got.end, "eof");
    let r = responses(&got.data, &[]);
    assert_eq!(r[0].header("connection"), Some("close"));
    let got = raw(
        &sb,
        b"GET /one.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /two.txt HTTP/1.0\r\n\r\n",
        5.0,
    );
    assert_eq!(got.end, "eof");
    let r = responses(&got.data, &[]);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].header("connection"), Some("keep-alive"));
    assert_eq!(r[1].header("connection"), Some("close"));

    // A half-closed client still gets every answer.
    let mut req = get("/one.txt");
    req.extend(get("/two.txt"));
    let got = raw_opts(&sb, &req, 5.0, true);
    assert_eq!(got.end, "eof");
    assert_eq!(responses(&got.data, &[]).len(), 2);

    let stats = server.stop();
    assert_frames_ok(&stats);
    // 2 (curl) + 3 + 1 + 2 + 2 requests, 5 connections, plus the probes.
    assert_eq!(total(&stats, "/app/requests"), 10 + probes, "{stats:#}");
    assert_eq!(total(&stats, "/app/connections"), 5 + probes, "{stats:#}");
}

// ---------------------------------------------------------------------------------------------
// 3. No path leaves the root.

#[test]
fn paths_never_escape_the_root() {
    let Some(_lock) = begin() else { return };
    let base = TempTree::new("esc");
    base.file("www/index.html", b"inside\n");
    base.file("www/sub/page.txt", b"page\n");
    let secret = format!("SECRET-{}-outside-the-root", std::process::id());
    base.file("secret.txt", secret.as_bytes());
    // A link that points out of the root is not served either.
    std::os::unix::fs::symlink(base.path().join("secret.txt"), base.path().join("www/link"))
        .expect("symlink");
    let www = base.path().join("www").to_string_lossy().into_owned();
    let sb = sandbox("esc", 1);
    let server = Server::start(&sb, Service::Http, &["--root", &www]);

    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let leaked = |body: &[u8]| {
        let b = String::from_utf8_lossy(body);
        b.contains(&secret) || b.contains("root:x:0:0") || (!passwd.is_empty() && b == passwd)
    };
    let paths = [
        "/../../etc/passwd",
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..%2f..%2f..%2fetc%2fpasswd",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/..%5c..%5csecret.txt",
        "//etc/passwd",
        "/etc/passwd",
        "/%00../secret.txt",
        "/secret.txt%00.html",
        "/link",
        "/sub/..%2F..%2Fsecret.txt",
    ];
    for p in paths {
        let (code, _, body) = curl_get(&sb, &["--path-as-is"], p);
        assert!(code == 400 || code == 404, "{p}: status {code}");
        assert!(!leaked(&body), "{p} leaked a file outside the root");
    }
    // Raw targets curl would not send as is: absolute-form, no leading slash, backslashes.
    for target in [
        "http://x/../../etc/passwd",
        "http://x/%2e%2e/secret.txt",
        "../secret.txt",
        "..%2fsecret.txt",
        "*",
    ] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let got = raw(&sb, req.as_bytes(), 5.0);
        let r = responses(&got.data, &[]);
        assert!(
            r[0].status == 400 || r[0].status == 404,
            "{target}: {}",
            r[0].status
        );
        assert!(!leaked(&r[0].body), "{target} leaked");
    }
    // What is inside still works, including a `..` that stays inside (curl resolves it).
    let (code, _, body) = curl_get(&sb, &[], "/sub/../index.html");
    assert_eq!((code, body.as_slice()), (200, &b"inside\n"[..]));
    let stats = server.stop();
    assert_frames_ok(&stats);
}

// ---------------------------------------------------------------------------------------------
// 4. Error statuses, and framing that survives a refused request with a body.

#[test]
fn error_statuses_and_framing() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("err", 1);
    let server = Server::start(
        &sb,
        Service::Http,
        &[
            "--body",
            "fixed body\n",
            "--max-body",
            "4096",
            "--max-header",
            "2048",
        ],
    );

    // 405 with Allow for PUT and DELETE (POST is the fixed body's: see `request_bodies`); the
    // body is read and dropped and the next pipelined request on the same connection is
    // answered.
    for method in ["PUT", "DELETE", "PATCH"] {
        let body = bytes(3000, 4);
        let mut req = format!(
            "{method} /form HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend(&body);
        req.extend(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let got = raw(&sb, &req, 5.0);
        assert_eq!(got.end, "eof", "{method}");
        let r = responses(&got.data, &[]);
        assert_eq!(r.len(), 2, "{method}: {r:?}");
        assert_eq!(r[0].status, 405, "{method}");
        assert_eq!(
            r[0].header("allow"),
            Some("GET, HEAD, POST, OPTIONS"),
            "{method}"
        );
        assert_eq!(r[1].status, 200, "{method}");
        assert_eq!(r[1].body, b"fixed body\n");
    }
    // curl -X PUT with data: 405, and curl is fine with it.
    let (code, ..) = curl_get(&sb, &["-X", "PUT", "--data-binary", "abc"], "/");
    assert_eq!(code, 405);

    // Statuses that close the connection: each reply is the only one, then EOF, even with a
    // valid request behind it.
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(3000)
    );
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n".to_vec(),
            413,
        ),
        (big_header.into_bytes(), 431),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n".to_vec(), 505),
        (b"GET / HTTP/01.1\r\nHost: t\r\n\r\n".to_vec(), 400),
        (b"GET / http/1.1\r\nHost: t\r\n\r\n".to_vec(), 400),
        (b"GET * HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 400),
        (b"GET /\xff HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: user@t\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n".to_vec(), 400),
        (b"GARBAGE\x01\x02 / HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec(),
            501,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec(),
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            400,
        ),
    ];
    for (mut req, status) in cases {
        req.extend(get("/"));
        let got = raw(&sb, &req, 5.0);
        assert_eq!(
            got.end,
            "eof",
            "{status}: {:?}",
            String::from_utf8_lossy(&got.data)
        );
        let r = responses(&got.data, &[]);
        assert_eq!(r.len(), 1, "{status}: {r:?}");
        assert_eq!(r[0].status, status, "{:?}", String::from_utf8_lossy(&req));
        assert_eq!(r[0].header("connection"), Some("close"), "{status}");
    }
    // 413 through curl too (declared length above --max-body).
    let (code, ..) = curl_get(&sb, &["--data-binary", &"z".repeat(5000)], "/");
    assert_eq!(code, 413);

    let stats = server.stop();
    assert_frames_ok(&stats);
    // 405 x 4, 413 x 2, 431, 400 x 11; 505, 501.
    assert_eq!(total(&stats, "/app/status_4xx"), 18, "{stats:#}");
    assert_eq!(total(&stats, "/app/status_5xx"), 2, "{stats:#}");
}

// ---------------------------------------------------------------------------------------------
// 4b. Request bodies from curl: Content-Length, chunked, Expect: 100-continue.

#[test]
fn request_bodies() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("body", 1);
    let server = Server::start(
        &sb,
        Service::Http,
        &["--body", "OK\n", "--max-body", "300000"],
    );
    let data = bytes(200_000, 7);
    let file = temp_path("body", "bin");
    fs::write(&file, &data).expect("write the body");
    let file_arg = format!("@{}", file.display());
    let cases: &[(&str, &[&str])] = &[
        // Content-Length, no Expect (curl sends it past 1 MiB only; disabled here).
        ("content-length", &["-H", "Expect:"]),
        // Chunked, its size unknown to the server.
        (
            "chunked",
            &["-H", "Transfer-Encoding: chunked", "-H", "Expect:"],
        ),
        // Expect: 100-continue: curl waits for the 100 (up to 1 s) before the body.
        ("expect", &["-H", "Expect: 100-continue"]),
        (
            "expect+chunked",
            &[
                "-H",
                "Expect: 100-continue",
                "-H",
                "Transfer-Encoding: chunked",
            ],
        ),
    ];
    for (name, extra) in cases {
        let mut args: Vec<&str> = vec!["-v", "--data-binary", &file_arg];
        args.extend_from_slice(extra);
        let t = Instant::now();
        let out_file = temp_path("curl", "body");
        let mut cmd = client(&sb, 20, "curl", ["-sS", "-m", "10", "-o"]);
        cmd.arg(&out_file)
            .args(["-w", "%{http_code}"])
            .args(&args)
            .arg(format!("http://{SERVER_IP4}/upload"));
        let out = output(&mut cmd);
        let body = fs::read(&out_file).unwrap_or_default();
        let _ = fs::remove_file(&out_file);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{name}: {err}");
        assert_eq!(body, b"OK\n", "{name}");
        if name.starts_with("expect") {
            assert!(
                err.contains("100 Continue"),
                "{name}: no 100 Continue:\n{err}"
            );
            // Answered at once, not after curl's 1 s wait for the 100.
            assert!(
                t.elapsed() < Duration::from_millis(900),
                "{name}: {:?}",
                t.elapsed()
            );
        }
    }
    // A declared body past --max-body: 413 at once, without a 100 (so curl sends nothing of
    // it). A chunked one past it is refused while read: the in-memory tests show that.
    let big = temp_path("body", "big");
    fs::write(&big, bytes(400_000, 8)).expect("write the big body");
    let big_arg = format!("@{}", big.display());
    let args = [
        "--data-binary",
        big_arg.as_str(),
        "-H",
        "Expect: 100-continue",
    ];
    let (code, ..) = curl_get(&sb, &args, "/upload");
    assert_eq!(code, 413);
    let _ = fs::remove_file(&file);
    let _ = fs::remove_file(&big);
    // OPTIONS: 204 with Allow.
    let out = curl(
        &sb,
        &["-i", "-X", "OPTIONS"],
        &format!("http://{SERVER_IP4}/"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 204"), "{text}");
    assert!(
        text.contains("Allow: GET, HEAD, POST, OPTIONS\r\n"),
        "{text}"
    );

    let probes = server.probes;
    let stats = server.stop();
    assert_frames_ok(&stats);
    assert_eq!(total(&stats, "/app/continues"), 2, "{stats:#}");
    assert!(total(&stats, "/app/body_bytes") >= 4 * 200_000, "{stats:#}");
    // 4 uploads and OPTIONS, plus the readiness probes.
    assert_eq!(total(&stats, "/app/status_2xx"), 5 + probes, "{stats:#}");
}

// ---------------------------------------------------------------------------------------------
// 5. Slow and idle clients do not hold a worker.

#[test]
fn idle_and_header_timeouts() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("slow", 1);
    let server = Server::start(
        &sb,
        Service::Http,
        &["--idle-timeout", "1", "--header-timeout", "1.5"],
    );
    // Connects and sends nothing: closed after about a second.
    let got = raw(&sb, b"", 10.0);
    assert_eq!(got.end, "eof", "{}", got.seconds);
    assert!(got.data.is_empty());
    assert!(
        (0.9..3.0).contains(&got.seconds),
        "idle connection closed after {:.2} s",
        got.seconds
    );
    // Idle after a response: closed after about a second too.
    let got = raw(&sb, &get("/"), 10.0);
    assert_eq!(got.end, "eof");
    assert_eq!(responses(&got.data, &[])[0].status, 200);
    assert!((0.9..3.0).contains(&got.seconds), "{:.2} s", got.seconds);
    // Half a head, then nothing: 408 and closed after the header timeout, not the idle one.
    let got = raw(&sb, b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow:", 10.0);
    assert_eq!(got.end, "eof");
    let r = responses(&got.data, &[]);
    assert_eq!(r[0].status, 408, "{r:?}");
    assert!((1.4..3.5).contains(&got.seconds), "{:.2} s", got.seconds);
    // A body that stops arriving is cut too.
    let got = raw(
        &sb,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nonly a little",
        10.0,
    );
    assert_ne!(got.end, "timeout", "{:.2} s", got.seconds);
    assert!(got.seconds < 4.0, "{:.2} s", got.seconds);
    let stats = server.stop();
    assert_frames_ok(&stats);
    assert!(total(&stats, "/app/idle_closed") >= 2, "{stats:#}");
    assert_eq!(total(&stats, "/app/header_timeouts"), 1, "{stats:#}");
    assert_eq!(total(&stats, "/app/body_timeouts"), 1, "{stats:#}");
}

/// argv: host n_first n_more ask. Opens `n_first` keep-alive connections and makes a
/// request on each (`ask` 1; with 0 it sends nothing on them), then opens `n_more` more and
/// tries a request on each; then closes one of the first and tries once more. Prints what
/// each attempt got.
const MAX_CONNS: &str = r#"
import json, socket, sys, time
host, first, more, ask = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
REQ = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
def attempt(s):
    try:
        s.sendall(REQ)
        b = s.recv(4096)
        return "ok" if b.startswith(b"HTTP/1.1 200 ") else ("eof" if not b else "other")
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    except socket.timeout:
        return "timeout"
keep = []
res = {"first": [], "more": [], "after": None}
for i in range(first):
    s = socket.create_connection((host, 80), timeout=5)
    res["first"].append(attempt(s) if ask else "open")
    keep.append(s)
for i in range(more):
    try:
        # The reset may come so fast that connect() itself reports it.
        s = socket.create_connection((host, 80), timeout=5)
    except ConnectionResetError:
        res["more"].append("reset")
        continue
    time.sleep(0.2)
    res["more"].append(attempt(s))
    s.close()
keep.pop().close()
time.sleep(0.5)
s = socket.create_connection((host, 80), timeout=5)
res["after"] = attempt(s)
print(json.dumps(res))
"#;

#[test]
fn max_conns_excess_is_refused_and_counted() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("maxc", 1);
    let server = Server::start(&sb, Service::Http, &["--max-conns", "3"]);
    // Three connections that have sent nothing yet (not idle for a second: none may be
    // evicted): the excess is reset.
    let r = python_json(&sb, 30, MAX_CONNS, &[SERVER_IP4, "3", "2", "0"]);
    eprintln!("max-conns, silent: {r}");
    for v in r["more"].as_array().expect("more") {
        assert!(v == "reset" || v == "eof", "{r}");
    }
    assert_eq!(r["after"], "ok", "{r}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Three keep-alive connections idle after a request: each newcomer closes the one
    // that went idle first (as nginx reuses idle keep-alive connections) and is served.
    let r = python_json(&sb, 30, MAX_CONNS, &[SERVER_IP4, "3", "2", "1"]);
    eprintln!("max-conns, idle keep-alive: {r}");
    assert_eq!(r["first"], serde_json::json!(["ok", "ok", "ok"]), "{r}");
    assert_eq!(r["more"], serde_json::json!(["ok", "ok"]), "{r}");
    assert_eq!(r["after"], "ok", "{r}");
    let stats = server.stop();
    assert_frames_ok(&stats);
    assert_eq!(total(&stats, "/app/rejected_max_conns"), 2, "{stats:#}");
    // One at least: the first newcomer found the table full; the second too unless the
    // first one's close (the script closes each newcomer after its request) was handled
    // before it came.
    assert!(
        (1..=2).contains(&total(&stats, "/app/closed_quiet")),
        "{stats:#}"
    );
    assert!(total(&stats, "/app/max_open") <= 3, "{stats:#}");
}

/// `--stats PATH` and `--stats-allow`: a client the list does not name sees an ordinary
/// path (the fixed body), counted; one it names gets the report at the new path only.
#[test]
fn stats_path_and_allow_list() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("stats", 1);
    let report = ["--stats", "/_report"];
    // The sandbox's client (198.18.0.2, 2001:db8:18::2) is not in these prefixes.
    let args = [
        &report[..],
        &["--stats-allow", "192.0.2.0/24,2001:db8:ffff::/48"],
    ]
    .concat();
    let server = Server::start(&sb, Service::Http, &args);
    for path in ["/_report", "/stats"] {
        let (code, ct, _) = curl_get(&sb, &[], path);
        assert_eq!((code, ct.as_str()), (200, "text/plain"), "GET {path}");
    }
    let stats = server.stop();
    assert_eq!(total(&stats, "/app/stats_refused"), 1, "{stats:#}");
    // `local` (the default) covers the client's subnet; `off` serves no report at all.
    let server = Server::start(&sb, Service::Http, &report);
    let (code, ct, body) = curl_get(&sb, &[], "/_report");
    assert_eq!((code, ct.as_str()), (200, "application/json"));
    let v: Value = serde_json::from_slice(&body).expect("stats JSON");
    assert!(
        v["listeners"].is_array() && v["retired_dropped"] == 0,
        "{v}"
    );
    let (_, ct, _) = curl_get(&sb, &[], "/stats");
    assert_eq!(ct, "text/plain");
    server.stop();
    let server = Server::start(
        &sb,
        Service::Http,
        &["--stats", "off", "--stats-allow", "any"],
    );
    let (_, ct, _) = curl_get(&sb, &[], "/stats");
    assert_eq!(ct, "text/plain");
    let stats = server.stop();
    assert_eq!(total(&stats, "/app/stats_refused"), 0, "{stats:#}");
}

// ---------------------------------------------------------------------------------------------
// 6. Load: ab, short connections and keep-alive.

/// Runs `ab ARGS URL` in the client namespace (bounded); returns (complete, failed, non-2xx,
/// keep-alive requests).
fn ab(sb: &Sandbox, args: &[&str]) -> (u64, u64, u64, u64) {
    let mut cmd = client(sb, 180, "ab", ["-q", "-s", "10"]);
    cmd.args(args).arg(format!("http://{SERVER_IP4}/"));
    let out = run_ok(&mut cmd);
    let field = |name: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let rps = out
        .lines()
        .find(|l| l.starts_with("Requests per second"))
        .unwrap_or("");
    eprintln!("ab {}: {rps}", args.join(" "));
    (
        field("Complete requests:"),
        field("Failed requests:"),
        field("Non-2xx responses:"),
        field("Keep-Alive requests:"),
    )
}

#[test]
fn ab_short_and_keep_alive_runs_without_failures() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("ab", 2);
    let server = Server::start(&sb, Service::Http, &["--workers", "2"]);
    let probes = server.probes;
    let (done, failed, non2xx, _) = ab(&sb, &["-n", "5000", "-c", "20"]);
    assert_eq!((done, failed, non2xx), (5000, 0, 0));
    let (done, failed, non2xx, ka) = ab(&sb, &["-k", "-n", "20000", "-c", "50"]);
    assert_eq!((done, failed, non2xx), (20000, 0, 0));
    assert_eq!(ka, 20000, "every request was on a kept-alive connection");
    let stats = server.stop();
    assert_frames_ok(&stats);
    assert_eq!(total(&stats, "/app/requests"), 25000 + probes, "{stats:#}");
    assert_eq!(
        total(&stats, "/app/status_2xx"),
        25000 + probes,
        "{stats:#}"
    );
    assert_eq!(total(&stats, "/app/rejected_max_conns"), 0, "{stats:#}");
    // ab's HTTP/1.0 requests are closed by the server first: each such
    // connection leaves a TIME-WAIT record (and its slot at once), none of
    // which got in the way of the next.
    assert!(total(&stats, "/engine/time_wait") >= 5000, "{stats:#}");
    assert_eq!(total(&stats, "/engine/time_wait_reaped"), 0, "{stats:#}");
}

/// wrk stops mid-request: the clients' kernels reset what is left, and those resets may come
/// in on the other queue (Linux hashes a reset for a socket it no longer has on its own). The
/// stop must still be prompt: no connection left retransmitting until the grace runs out.
#[test]
fn stop_after_wrk_is_prompt_on_two_queues() {
    let Some(_lock) = begin() else { return };
    let sb = sandbox("wrkstop", 2);
    for round in 0..3 {
        let mut server = Server::start(&sb, Service::Http, &["--workers", "2"]);
        let mut cmd = client(&sb, 30, "wrk", ["-t2", "-c50", "-d2s", "--timeout", "2s"]);
        cmd.arg(format!("http://{SERVER_IP4}/"));
        let out = run_ok(&mut cmd);
        let rps = out
            .lines()
            .find(|l| l.starts_with("Requests/sec"))
            .unwrap_or("");
        kill(server.pid(), Signal::SIGINT).expect("SIGINT");
        let took = wait_exit(&mut server, Duration::from_secs(10));
        eprintln!("round {round}: wrk {rps}; the server stopped in {took:.2?}");
        let log = server.stderr_text();
        let stats = server.stop();
        assert_frames_ok(&stats);
        for w in workers(&stats) {
            assert_eq!(w["loop"]["grace_expired"], false, "{stats:#}\n{log}");
        }
        assert!(took < Duration::from_secs(3), "stop took {took:?}\n{log}");
    }
}

// ---------------------------------------------------------------------------------------------
// 7. SIGHUP: listeners replaced under load, no request lost.

#[test]
fn sighup_replaces_listeners_without_failures() {
    let Some(_lock) = begin() else { return };
    // One queue: replacement is what is tested here. With two queues on this shared 2-core
    // machine, a stalled worker makes clients retransmit SYNs, the kernel may then move the flow
    // to the other tx queue (it rethinks the tx hash on a timeout: TcpTimeoutRehash), and a flow
    // that changes queues mid-handshake is not followed by the per-core flow tables (HTTP.md).
    let sb = sandbox("hup", 1);
    let server = Server::start(&sb, Service::Http, &["--listeners", "2"]);
    let pid = server.pid();
    let mut cmd = client(&sb, 120, "ab", ["-q", "-s", "10", "-n", "4000", "-c", "10"]);
    cmd.arg(format!("http://{SERVER_IP4}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let ab_child = cmd.spawn().expect("spawn ab");
    for _ in 0..20 {
        thread::sleep(Duration::from_millis(100));
        kill(pid, Signal::SIGHUP).expect("SIGHUP");
    }
    let out = ab_child.wait_with_output().expect("ab");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ab failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Complete requests:      4000"), "{text}");
    assert!(text.contains("Failed requests:        0"), "{text}");
    let stats = server.stop();
    assert_frames_ok(&stats);
    assert!(total(&stats, "/app/listeners_replaced") >= 4, "{stats:#}");
    assert_eq!(total(&stats, "/engine/migration_resets"), 0, "{stats:#}");
}

// ---------------------------------------------------------------------------------------------
// 8. SIGTERM: stop accepting, finish in-flight responses, exit 0, detach.

/// Starts curl fetching `path` at `rate` into a file in the background (client namespace).
fn background_download(sb: &Sandbox, path: &str, rate: &str, out: &Path) -> std::process::Child {
    let mut cmd = client(
        sb,
        60,
        "curl",
        ["-sS", "-m", "50", "--limit-rate", rate, "-o"],
    );
    cmd.arg(out)
        .args(["-w", "%{http_code} %{size_download}"])
        .arg(format!("http://{SERVER_IP4}{path}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("spawn curl")
}

fn wait_for_bytes(path: &Path, n: u64, limit: Duration) {
    let t = Instant::now();
    while fs::metadata(path).map_or(0, |m| m.len()) < n {
        assert!(t.elapsed() < limit, "fewer than {n} bytes after {limit:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_finishes_the_download_in_flight() {
    let Some(_lock) = begin() else { return };
    let root = TempTree::new("term");
    let big = bytes(20 << 20, 5);
    root.file("big.bin", &big);
    let sb = sandbox("term", 1);
    let mut server = Server::start(
        &sb,
        Service::Http,
        &["--root", &root.arg(), "--grace", "15"],
    );
    assert!(xdp_attached(&sb));
    let dl = temp_path("term", "bin");
    let curl_child = background_download(&sb, "/big.bin", "5M", &dl);
    wait_for_bytes(&dl, 2 << 20, Duration::from_secs(20));
    kill(server.pid(), Signal::SIGTERM).expect("SIGTERM");
    let termed = Instant::now();
    // New connections are refused from now on (the listeners drain at once).
    thread::sleep(Duration::from_millis(300));
    let refused = curl(&sb, &["-m", "2"], &format!("http://{SERVER_IP4}/"));
    assert!(
        !refused.status.success(),
        "a new connection was served after SIGTERM: {refused:?}"
    );
    let out = curl_child.wait_with_output().expect("curl");
    let curl_done = termed.elapsed();
    let w = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the download in flight failed: {w} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(w, format!("200 {}", big.len()));
    let got = fs::read(&dl).expect("download");
    let _ = fs::remove_file(&dl);
    assert!(
        got == big,
        "the download is not byte-exact ({} bytes)",
        got.len()
    );
    let exited = wait_exit(&mut server, Duration::from_secs(20));
    eprintln!(
        "curl finished {curl_done:.2?} after SIGTERM, the server exited {exited:.2?} after SIGTERM"
    );
    let stats = server.stop();
    assert_frames_ok(&stats);
    let w0 = &workers(&stats)[0];
    assert_eq!(w0["loop"]["grace_expired"], false, "{stats:#}");
    assert_eq!(num(w0, "/app/reset_at_exit"), 0, "{stats:#}");
    assert!(!xdp_attached(&sb), "XDP program left on xdp0");
}

#[test]
fn sigterm_grace_bounds_a_stalled_download() {
    let Some(_lock) = begin() else { return };
    let root = TempTree::new("grace");
    root.file("big.bin", &bytes(20 << 20, 6));
    let sb = sandbox("grace", 1);
    let mut server = Server::start(&sb, Service::Http, &["--root", &root.arg(), "--grace", "1"]);
    let dl = temp_path("grace", "bin");
    let curl_child = background_download(&sb, "/big.bin", "200K", &dl);
    wait_for_bytes(&dl, 100 << 10, Duration::from_secs(20));
    kill(server.pid(), Signal::SIGTERM).expect("SIGTERM");
    let exited = wait_exit(&mut server, Duration::from_secs(8));
    eprintln!("the server exited {exited:.2?} after SIGTERM with a download in flight");
    assert!(exited >= Duration::from_millis(900), "{exited:?}");
    let out = curl_child.wait_with_output().expect("curl");
    let _ = fs::remove_file(&dl);
    assert!(
        !out.status.success(),
        "the cut download cannot have completed"
    );
    let stats = server.stop();
    assert_frames_ok(&stats);
    let w0 = &workers(&stats)[0];
    assert_eq!(w0["loop"]["grace_expired"], true, "{stats:#}");
    assert_eq!(num(w0, "/app/reset_at_exit"), 1, "{stats:#}");
    assert!(!xdp_attached(&sb), "XDP program left on xdp0");
}
