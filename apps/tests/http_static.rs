//! End-to-end tests of `xdpstack http --root` as a static file server, on real AF_XDP sockets,
//! against curl in the client namespace: ranges (one, several, none satisfiable, If-Range),
//! preconditions (304, 412), precompressed variants, a file larger than the memory limit read
//! from disk, SIGHUP reloading the tree and SIGUSR1 reopening the access log. Every response
//! is checked byte for byte. They need root (see `privileged.rs`: skipped without root, an
//! error under CI). One at a time.
//!
//! `cargo test -p xdpstack --test http_static -- --nocapture`

mod common;
#[path = "support/tree.rs"]
mod tree;

use std::collections::HashMap;
use std::fs;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use lab::sandbox::Sandbox;
use nix::sys::signal::{kill, Signal};
use tree::TempTree;

/// Deterministic pseudo-random bytes, so a failure is reproducible.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    testkit::Rng::new(seed).bytes(len)
}

/// What curl got: status, headers (lower-case names; the last of each), body.
struct Got {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Got {
    fn h(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// `curl -sS -m 20 -g -D HEADERS -o BODY EXTRA... http://SERVER_IP4PATH` in the client
/// namespace.
fn fetch(sb: &Sandbox, extra: &[&str], path: &str) -> Got {
    let body_file = temp_path("curl", "body");
    let head_file = temp_path("curl", "head");
    let url = format!("http://{SERVER_IP4}{path}");
    let mut cmd = client(sb, 30, "curl", ["-sS", "-m", "20", "-g", "-D"]);
    cmd.arg(&head_file)
        .arg("-o")
        .arg(&body_file)
        .args(extra)
        .arg(&url);
    run_ok(&mut cmd);
    let body = fs::read(&body_file).unwrap_or_default();
    let head = fs::read_to_string(&head_file).unwrap_or_default();
    let _ = fs::remove_file(&body_file);
    let _ = fs::remove_file(&head_file);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("curl {url}: no status in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Got {
        status,
        headers,
        body,
    }
}

/// `gzip -9 -n` of `data` (the Debian tool: what a deployment would run).
fn gzip(data: &[u8]) -> Vec<u8> {
    let path = temp_path("gz", "in");
    fs::write(&path, data).unwrap();
    let out = output(Command::new("gzip").args(["-9", "-n", "-c"]).arg(&path));
    let _ = fs::remove_file(&path);
    assert!(out.status.success(), "gzip: {out:?}");
    out.stdout
}

// ---------------------------------------------------------------------------------------------
// 1. Ranges, preconditions and variants, byte for byte.

#[test]
fn ranges_preconditions_and_variants_with_curl() {
    let Some(_lock) = begin() else { return };
    let root = TempTree::new("rng");
    let data = bytes(100_000, 11);
    let js = b"function hello() { return 'xdpstack'; }\n".repeat(50);
    let js_gz = gzip(&js);
    let js_br = bytes(333, 12); // raw bytes: compared as sent, never decoded
    let css = b"body { margin: 0 }\n".repeat(40);
    let css_gz = gzip(&css);
    root.file("data.bin", &data);
    root.file("app.js", &js);
    root.file("app.js.gz", &js_gz);
    root.file("app.js.br", &js_br);
    root.file("style.css", &css);
    root.file("style.css.gz", &css_gz);
    let sb = sandbox("rng", 1);
    let server = Server::start(&sb, Service::Http, &["--root", &root.arg()]);

    // The whole: validators and Accept-Ranges.
    let g = fetch(&sb, &[], "/data.bin");
    assert_eq!(g.status, 200);
    assert!(g.body == data, "GET /data.bin: wrong bytes");
    assert_eq!(g.h("accept-ranges"), Some("bytes"));
    let etag = g.h("etag").expect("ETag").to_string();
    let lm = g.h("last-modified").expect("Last-Modified").to_string();
    assert!(etag.ends_with("-186a0\""), "{etag}");

    // One range (curl -r), a suffix, an open end.
    for (r, a, b) in [
        ("0-99", 0, 99),
        ("99990-", 99_990, 99_999),
        ("-7", 99_993, 99_999),
        ("5000-5000", 5000, 5000),
    ] {
        let g = fetch(&sb, &["-r", r], "/data.bin");
        assert_eq!(g.status, 206, "-r {r}");
        assert_eq!(
            g.h("content-range"),
            Some(format!("bytes {a}-{b}/100000").as_str()),
            "-r {r}"
        );
        assert!(g.body == data[a..=b], "-r {r}: wrong bytes");
        assert_eq!(g.h("etag"), Some(etag.as_str()));
    }

    // Several ranges: multipart/byteranges, checked byte for byte.
    let g = fetch(&sb, &["-r", "10-19,40000-40099,-5"], "/data.bin");
    assert_eq!(g.status, 206);
    let ct = g.h("content-type").expect("Content-Type").to_string();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{ct}"));
    let mut want = Vec::new();
    for (a, b) in [(10, 19), (40_000, 40_099), (99_995, 99_999)] {
        want.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\
                 Content-Range: bytes {a}-{b}/100000\r\n\r\n"
            )
            .as_bytes(),
        );
        want.extend_from_slice(&data[a..=b]);
    }
    want.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert!(
        g.body == want,
        "multipart body differs:\n{}",
        String::from_utf8_lossy(&g.body[..g.body.len().min(400)])
    );
    assert_eq!(g.h("content-length"), Some(want.len().to_string().as_str()));

    // Nothing satisfiable: 416 with the length.
    let g = fetch(&sb, &["-r", "100000-"], "/data.bin");
    assert_eq!(g.status, 416);
    assert_eq!(g.h("content-range"), Some("bytes */100000"));

    // If-Range: the current ETag or date gets the range, a stale one the whole.
    for (ir, partial) in [
        (etag.as_str(), true),
        (lm.as_str(), true),
        ("\"0-0\"", false),
        ("Thu, 01 Jan 2015 00:00:00 GMT", false),
    ] {
        let h = format!("If-Range: {ir}");
        let g = fetch(&sb, &["-r", "0-9", "-H", &h], "/data.bin");
        if partial {
            assert_eq!((g.status, g.body.as_slice()), (206, &data[..10]), "{h}");
        } else {
            assert_eq!(g.status, 200, "{h}");
            assert!(g.body == data, "{h}: wrong bytes");
        }
    }

    // Preconditions: 304 (ETag, weak comparison; date with curl -z), 412.
    let inm = format!("If-None-Match: W/{etag}");
    for extra in [
        vec!["-H", &inm],
        vec!["-H", "If-None-Match: *"],
        vec!["-z", &lm],
    ] {
        let g = fetch(&sb, &extra, "/data.bin");
        assert_eq!(g.status, 304, "{extra:?}");
        assert!(g.body.is_empty(), "{extra:?}: a 304 with a body");
        assert_eq!(g.h("etag"), Some(etag.as_str()));
        assert_eq!(g.h("last-modified"), Some(lm.as_str()));
        assert_eq!(g.h("content-length"), None);
    }
    // curl -z with an older date: modified since, the whole.
    let g = fetch(&sb, &["-z", "Thu, 01 Jan 2015 00:00:00 GMT"], "/data.bin");
    assert_eq!(g.status, 200);
    for h in [
        "If-Match: \"0-0\"".to_string(),
        format!("If-Match: W/{etag}"),
        "If-Unmodified-Since: Thu, 01 Jan 2015 00:00:00 GMT".to_string(),
    ] {
        let g = fetch(&sb, &["-H", &h], "/data.bin");
        assert_eq!(g.status, 412, "{h}");
    }
    let g = fetch(&sb, &["-H", &format!("If-Match: {etag}")], "/data.bin");
    assert_eq!(g.status, 200);

    // Precompressed variants: curl --compressed decodes the gzip variant into the file.
    let g = fetch(&sb, &["--compressed"], "/style.css");
    assert_eq!(g.status, 200);
    assert_eq!(g.h("content-encoding"), Some("gzip"));
    assert_eq!(g.h("vary"), Some("Accept-Encoding"));
    assert!(g.body == css, "--compressed: decoded body differs");
    let g = fetch(&sb, &["-H", "Accept-Encoding: gzip"], "/style.css");
    assert!(g.body == css_gz, "the .gz bytes differ");
    assert_eq!(
        g.h("content-length"),
        Some(css_gz.len().to_string().as_str())
    );
    // By preference, and identity when nothing is asked for.
    for (ae, want, ce) in [
        ("br", &js_br, Some("br")),
        ("gzip, br", &js_br, Some("br")),
        ("br;q=0.1, gzip;q=0.9", &js_gz, Some("gzip")),
        ("identity", &js, None),
        ("", &js, None),
    ] {
        let h = format!("Accept-Encoding: {ae}");
        let extra: Vec<&str> = if ae.is_empty() {
            vec![]
        } else {
            vec!["-H", &h]
        };
        let g = fetch(&sb, &extra, "/app.js");
        assert_eq!(g.status, 200, "{h}");
        assert!(g.body == *want, "{h}: wrong bytes");
        assert_eq!(g.h("content-encoding"), ce, "{h}");
        assert_eq!(g.h("vary"), Some("Accept-Encoding"), "{h}");
        assert_eq!(
            g.h("content-type"),
            Some("text/javascript; charset=utf-8"),
            "{h}"
        );
    }
    // The variant's own ETag: a 304 for it, not for the file.
    let g = fetch(&sb, &["-H", "Accept-Encoding: br"], "/app.js");
    let br_etag = g.h("etag").unwrap().to_string();
    let g = fetch(&sb, &[], "/app.js");
    assert_ne!(g.h("etag"), Some(br_etag.as_str()));
    let h = format!("If-None-Match: {br_etag}");
    let g = fetch(&sb, &["-H", "Accept-Encoding: br", "-H", &h], "/app.js");
    assert_eq!(g.status, 304);
    assert_eq!(g.h("vary"), Some("Accept-Encoding"));
    let g = fetch(&sb, &["-H", &h], "/app.js");
    assert_eq!(g.status, 200);
    // A range of a variant is a range of its bytes.
    let g = fetch(
        &sb,
        &["-H", "Accept-Encoding: gzip", "-r", "0-9"],
        "/app.js",
    );
    assert_eq!((g.status, g.body.as_slice()), (206, &js_gz[..10]));
    assert_eq!(g.h("content-encoding"), Some("gzip"));

    let stats = server.stop();
    assert_frames_ok(&stats);
    assert_eq!(total(&stats, "/app/partial"), 8, "{stats:#}");
    assert_eq!(total(&stats, "/app/multipart"), 1, "{stats:#}");
    assert_eq!(total(&stats, "/app/range_not_satisfiable"), 1, "{stats:#}");
    assert_eq!(total(&stats, "/app/not_modified"), 4, "{stats:#}");
    assert_eq!(total(&stats, "/app/precondition_failed"), 3, "{stats:#}");
    assert_eq!(total(&stats, "/app/encoded_gzip"), 4, "{stats:#}");
    assert_eq!(total(&stats, "/app/encoded_br"), 3, "{stats:#}");
}

// ---------------------------------------------------------------------------------------------
// 2. A file above the memory limit, served from disk.

#[test]
fn a_large_file_is_read_from_disk() {
    let Some(_lock) = begin() else { return };
    let root = TempTree::new("disk");
    let big = bytes(24 << 20, 13);
    root.file("big.bin", &big);
    root.file("small.txt", b"small\n");
    let sb = sandbox("disk", 1);
    // 1 MiB of memory for files: the 24 MiB file is never read whole.
    let server = Server::start(
        &sb,
        Service::Http,
        &[
            "--root",
            &root.arg(),
            "--max-root-bytes",
            "1048576",
            "--max-file-in-memory",
            "1048576",
        ],
    );
    assert!(
        server
            .stderr_text()
            .contains("1 files (25165824 bytes) from disk"),
        "{}",
        server.stderr_text()
    );
    let g = fetch(&sb, &["-I"], "/big.bin");
    assert_eq!(g.status, 200);
    assert_eq!(g.h("content-length"), Some("25165824"));
    let g = fetch(&sb, &["-r", "20000000-20000999"], "/big.bin");
    assert_eq!(g.status, 206);
    assert!(
        g.body == big[20_000_000..20_001_000],
        "range from disk: wrong bytes"
    );
    let g = fetch(&sb, &[], "/big.bin");
    assert_eq!(g.status, 200);
    assert!(
        g.body == big,
        "GET from disk: wrong bytes ({} bytes)",
        g.body.len()
    );
    let stats = server.stop();
    assert_frames_ok(&stats);
    // The HEAD read nothing, the range 1000 bytes, the GET the file once.
    assert_eq!(
        total(&stats, "/app/disk_bytes"),
        1000 + (24 << 20),
        "{stats:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. SIGHUP reloads the tree; the access log, reopened on SIGUSR1.

#[test]
fn sighup_reloads_the_tree_and_sigusr1_reopens_the_log() {
    let Some(_lock) = begin() else { return };
    let root = TempTree::new("hupl");
    root.file("v.txt", b"one\n");
    let log = temp_path("hupl", "log");
    let rotated = log.with_extension("log.1");
    let sb = sandbox("hupl", 2);
    let server = Server::start(
        &sb,
        Service::Http,
        &[
            "--root",
            &root.arg(),
            "--workers",
            "2",
            "--access-log",
            &log.to_string_lossy(),
        ],
    );
    let probes = server.probes;
    let pid = server.pid();
    assert_eq!(fetch(&sb, &[], "/v.txt").body, b"one\n");
    assert_eq!(fetch(&sb, &[], "/new.txt").status, 404);

    root.file("v.txt", b"two\n");
    root.file("new.txt", b"new\n");
    kill(pid, Signal::SIGHUP).expect("SIGHUP");
    let t = Instant::now();
    while !server.stderr_text().contains("xdpstack http: reloaded") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no reload reported:\n{}",
            server.stderr_text()
        );
        thread::sleep(Duration::from_millis(50));
    }
    // Workers take the new tree on their next turn: a few tries at most.
    for _ in 0..4 {
        assert_eq!(fetch(&sb, &[], "/v.txt").body, b"two\n");
        assert_eq!(fetch(&sb, &[], "/new.txt").body, b"new\n");
    }

    // A reload that fails keeps the tree and says so.
    let moved = root.path().with_extension("moved");
    fs::rename(root.path(), &moved).unwrap();
    kill(pid, Signal::SIGHUP).expect("SIGHUP");
    let t = Instant::now();
    while !server.stderr_text().contains("reload refused") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{}",
            server.stderr_text()
        );
        thread::sleep(Duration::from_millis(50));
    }
    fs::rename(&moved, root.path()).unwrap();
    assert_eq!(fetch(&sb, &[], "/v.txt").body, b"two\n");

    // logrotate's way: rename, SIGUSR1, and the next lines go to a new file.
    thread::sleep(Duration::from_millis(1500));
    fs::rename(&log, &rotated).expect("rotate");
    kill(pid, Signal::SIGUSR1).expect("SIGUSR1");
    thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        assert_eq!(
            fetch(&sb, &["-A", "rotated/1", "-e", "http://ref/"], "/v.txt").status,
            200
        );
    }
    assert_eq!(fetch(&sb, &["-r", "0-1"], "/v.txt").body, b"tw");
    let stats = server.stop();
    assert_frames_ok(&stats);

    let old = fs::read_to_string(&rotated).expect("rotated log");
    let new = fs::read_to_string(&log).expect("new log");
    let _ = fs::remove_file(&rotated);
    let _ = fs::remove_file(&log);
    // Before the rotation: the probes, 2 + 8 + 1 requests; after: 4.
    assert_eq!(
        old.lines().count() as u64,
        probes + 11,
        "rotated log:\n{old}"
    );
    assert_eq!(new.lines().count(), 4, "new log:\n{new}");
    for l in old.lines().chain(new.lines()) {
        assert!(l.starts_with("198.18.0.2 - - ["), "{l}");
        assert!(l.contains(" +0000] \"GET /"), "{l}");
    }
    // Two workers append whole buffers: lines of one worker stay in order, not across them.
    let tagged = new
        .lines()
        .filter(|l| l.ends_with("\"GET /v.txt HTTP/1.1\" 200 4 \"http://ref/\" \"rotated/1\""))
        .count();
    assert_eq!(tagged, 3, "new log:\n{new}");
    let ranged = new
        .lines()
        .filter(|l| l.contains("\"GET /v.txt HTTP/1.1\" 206 2 \"-\" \"curl/"))
        .count();
    assert_eq!(ranged, 1, "new log:\n{new}");
    assert_eq!(total(&stats, "/app/site_reloads"), 2, "{stats:#}");
    assert_eq!(total(&stats, "/app/log_errors"), 0, "{stats:#}");
    assert_eq!(
        total(&stats, "/app/log_bytes"),
        (old.len() + new.len()) as u64,
        "{stats:#}"
    );
}
