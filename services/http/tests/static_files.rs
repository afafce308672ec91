//! Static files through the whole service, in memory (no root): a client on
//! the far end of the engine's wire sends requests and checks what
//! `HttpApp` answers byte for byte: ranges (one, several, none
//! satisfiable, If-Range), preconditions (304, 412), precompressed variants
//! by Accept-Encoding, a file served from disk in chunks, a tree reloaded
//! while a download from the old one is in flight, and the access log.

mod common;

use common::Client;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use httpd::{load_site, HttpApp, HttpArgs, Served};
use runtime::server::WorkerCtx;
use stack::testing::{engine_net, with_app, EngineNet};

fn args(root: &Path, log: Option<PathBuf>) -> HttpArgs {
    let mut a = common::small_args(Some(root.to_path_buf()), 8);
    // Files above 64 KiB are read from disk.
    a.max_file_in_memory = 64 << 10;
    a.access_log = log;
    a
}

fn net(args: &HttpArgs) -> (EngineNet<HttpApp>, Arc<Served>) {
    let ctx = WorkerCtx::hashed(0, Arc::new(AtomicU64::new(0)));
    let served = load_site(args).unwrap();
    let s = served.clone();
    let net = with_app(engine_net(|_| {}), |engine| {
        HttpApp::new(&ctx, engine, args, s).unwrap()
    });
    (net, served)
}

/// A temporary tree, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("xdpstack-static-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn file(&self, name: &str, data: &[u8]) {
        std::fs::write(self.0.join(name), data).unwrap();
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic bytes.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    testkit::Rng::new(seed).bytes(len)
}

/// A client with buffers large enough for the biggest file here.
fn connect(net: &mut EngineNet<HttpApp>, port: u16) -> Client {
    Client::connect_buf(net, port, 256 * 1024)
}

impl Client {
    /// Reads responses until `n` complete ones are there (`head[i]`: the
    /// i-th answers a HEAD); returns them and keeps what follows.
    fn responses(&mut self, net: &mut EngineNet<HttpApp>, head: &[bool]) -> Vec<Resp> {
        let n = head.len();
        for _ in 0..100_000 {
            self.pump(net);
            if let Some((r, used)) = parse(&self.got, head) {
                if r.len() == n {
                    self.got.drain(..used);
                    return r;
                }
            }
            net.run(1);
        }
        panic!(
            "no {n} responses: {:?}",
            String::from_utf8_lossy(&self.got[..self.got.len().min(2000)])
        );
    }

    fn one(&mut self, net: &mut EngineNet<HttpApp>, req: &str) -> Resp {
        self.send(net, req.as_bytes());
        let head = req.starts_with("HEAD ");
        self.responses(net, &[head]).remove(0)
    }
}

#[derive(Debug, Clone)]
struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Complete responses at the start of `data` (204 and 304 have no body, a
/// HEAD's none whatever its Content-Length), and the bytes they take.
fn parse(data: &[u8], head: &[bool]) -> Option<(Vec<Resp>, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while out.len() < head.len() {
        let end = data[at..].windows(4).position(|w| w == b"\r\n\r\n")?;
        let text = String::from_utf8_lossy(&data[at..at + end]).into_owned();
        let status: u16 = text[9..12].parse().unwrap();
        let mut r = Resp {
            status,
            head: text,
            body: Vec::new(),
        };
        let len: usize = match r.header("content-length") {
            _ if status == 304 || status == 204 || head[out.len()] => 0,
            Some(l) => l.parse().unwrap(),
            None => panic!("no Content-Length: {}", r.head),
        };
        let start = at + end + 4;
        if data.len() < start + len {
            return None;
        }
        r.body = data[start..start + len].to_vec();
        at = start + len;
        out.push(r);
    }
    Some((out, at))
}

fn get(path: &str, fields: &[(&str, &str)]) -> String {
    let mut s = format!("GET {path} HTTP/1.1\r\nHost: t\r\n");
    for (n, v) in fields {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s
}

#[test]
fn ranges_single_multiple_unsatisfiable_and_if_range() {
    let d = Dir::new("ranges");
    let data = bytes(1000, 1);
    d.file("a.bin", &data);
    let (mut net, _) = net(&args(&d.0, None));
    let mut c = connect(&mut net, 42000);

    let whole = c.one(&mut net, &get("/a.bin", &[]));
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, data);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let etag = whole.header("etag").unwrap().to_string();
    let lm = whole.header("last-modified").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with("-3e8\""), "{etag}");

    // One range.
    let r = c.one(&mut net, &get("/a.bin", &[("Range", "bytes=10-19")]));
    assert_eq!(r.status, 206, "{}", r.head);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(r.header("content-length"), Some("10"));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.body, &data[10..20]);
    let r = c.one(&mut net, &get("/a.bin", &[("Range", "bytes=-5")]));
    assert_eq!(
        (r.status, r.header("content-range"), r.body.as_slice()),
        (206, Some("bytes 995-999/1000"), &data[995..])
    );

    // Several: multipart/byteranges, parts in the order asked.
    let r = c.one(&mut net, &get("/a.bin", &[("Range", "bytes=900-,0-1")]));
    assert_eq!(r.status, 206, "{}", r.head);
    let ct = r.header("content-type").unwrap();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{ct}"));
    let mut want = Vec::new();
    for (a, b) in [(900, 999), (0, 1)] {
        want.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\
                 Content-Range: bytes {a}-{b}/1000\r\n\r\n"
            )
            .as_bytes(),
        );
        want.extend_from_slice(&data[a..=b]);
    }
    want.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert_eq!(r.body, want);
    assert!(r.header("content-range").is_none());

    // None satisfiable: 416 with the length.
    let r = c.one(&mut net, &get("/a.bin", &[("Range", "bytes=1000-")]));
    assert_eq!(r.status, 416, "{}", r.head);
    assert_eq!(r.header("content-range"), Some("bytes */1000"));

    // Ignored: bad syntax, another unit, HEAD.
    for v in ["bytes=5-1", "lines=1-2", "bytes=0-,0-"] {
        let r = c.one(&mut net, &get("/a.bin", &[("Range", v)]));
        assert_eq!((r.status, r.body.len()), (200, 1000), "{v}");
    }
    let r = c.one(
        &mut net,
        "HEAD /a.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1\r\n\r\n",
    );
    assert_eq!((r.status, r.header("content-length")), (200, Some("1000")));

    // If-Range: the current ETag or date honours the Range, anything else
    // gets the whole.
    for (ir, status) in [
        (etag.as_str(), 206),
        (lm.as_str(), 206),
        ("\"stale\"", 200),
        ("Thu, 01 Jan 2015 00:00:00 GMT", 200),
    ] {
        let r = c.one(
            &mut net,
            &get("/a.bin", &[("Range", "bytes=0-9"), ("If-Range", ir)]),
        );
        assert_eq!(r.status, status, "If-Range {ir}");
        let want: &[u8] = if status == 206 { &data[..10] } else { &data };
        assert_eq!(r.body, want, "If-Range {ir}");
    }
    let counters = net.server.app.json();
    assert_eq!(counters["partial"], 5, "{counters}");
    assert_eq!(counters["multipart"], 1, "{counters}");
    assert_eq!(counters["range_not_satisfiable"], 1, "{counters}");
}

#[test]
fn preconditions_304_and_412_keep_the_connection() {
    let d = Dir::new("cond");
    d.file("i.html", b"<p>cached</p>\n");
    let (mut net, _) = net(&args(&d.0, None));
    let mut c = connect(&mut net, 42001);
    let r = c.one(&mut net, &get("/i.html", &[]));
    let etag = r.header("etag").unwrap().to_string();
    let lm = r.header("last-modified").unwrap().to_string();
    // Pipelined: 304 by ETag (weak comparison), 304 by date, a changed
    // ETag (200), If-Match failing (412), If-Unmodified-Since failing
    // (412), and the connection is still usable.
    let weak = format!("W/{etag}");
    let reqs = [
        get("/i.html", &[("If-None-Match", &format!("\"x\", {etag}"))]),
        get("/i.html", &[("If-None-Match", &weak)]),
        get("/i.html", &[("If-Modified-Since", &lm)]),
        get(
            "/i.html",
            &[("If-None-Match", "\"x\""), ("If-Modified-Since", &lm)],
        ),
        get("/i.html", &[("If-Match", "\"x\"")]),
        get("/i.html", &[("If-Match", &weak)]),
        get(
            "/i.html",
            &[("If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")],
        ),
        get("/i.html", &[("If-Match", &etag), ("If-None-Match", &etag)]),
        get("/i.html", &[]),
    ];
    c.send(&mut net, reqs.concat().as_bytes());
    let r = c.responses(&mut net, &[false; 9]);
    let st: Vec<u16> = r.iter().map(|r| r.status).collect();
    assert_eq!(st, [304, 304, 304, 200, 412, 412, 412, 304, 200]);
    for nm in [&r[0], &r[1], &r[2], &r[7]] {
        // The validators, no content, no Content-Length.
        assert_eq!(nm.header("etag"), Some(etag.as_str()), "{}", nm.head);
        assert_eq!(nm.header("last-modified"), Some(lm.as_str()));
        assert!(nm.header("content-length").is_none(), "{}", nm.head);
        assert!(nm.header("content-type").is_none(), "{}", nm.head);
    }
    assert_eq!(r[8].body, b"<p>cached</p>\n");
    let counters = net.server.app.json();
    assert_eq!(counters["not_modified"], 4, "{counters}");
    assert_eq!(counters["precondition_failed"], 3, "{counters}");
}

#[test]
fn precompressed_variants_by_accept_encoding() {
    let d = Dir::new("enc");
    let js = b"console.log('identity');\n".to_vec();
    let gz = bytes(300, 2);
    let br = bytes(200, 3);
    d.file("app.js", &js);
    d.file("app.js.gz", &gz);
    d.file("app.js.br", &br);
    d.file("plain.txt", b"no variants\n");
    let (mut net, _) = net(&args(&d.0, None));
    let mut c = connect(&mut net, 42002);
    let mut etags = Vec::new();
    for (ae, want, ce) in [
        (None, &js, None),
        (Some("gzip"), &gz, Some("gzip")),
        (Some("gzip, deflate, br"), &br, Some("br")),
        (Some("br;q=0.5, gzip"), &gz, Some("gzip")),
        (Some("identity;q=0, br;q=0, gzip"), &gz, Some("gzip")),
        // Nothing acceptable: identity all the same (RFC 9110 12.5.3).
        (Some("identity;q=0, br;q=0"), &js, None),
        (Some("*;q=0, identity"), &js, None),
    ] {
        let fields: Vec<(&str, &str)> = ae.map(|v| ("Accept-Encoding", v)).into_iter().collect();
        let r = c.one(&mut net, &get("/app.js", &fields));
        assert_eq!(r.status, 200);
        assert_eq!(&r.body, want, "{ae:?}");
        assert_eq!(r.header("content-encoding"), ce, "{ae:?}");
        assert_eq!(
            r.header("content-type"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{ae:?}");
        etags.push(r.header("etag").unwrap().to_string());
    }
    // Each variant its own tag; a 304 for the variant's tag only when the
    // same variant is chosen.
    assert_ne!(etags[0], etags[1]);
    assert_ne!(etags[1], etags[2]);
    let r = c.one(
        &mut net,
        &get(
            "/app.js",
            &[("Accept-Encoding", "br"), ("If-None-Match", &etags[2])],
        ),
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r.header("content-encoding").is_none());
    let r = c.one(&mut net, &get("/app.js", &[("If-None-Match", &etags[2])]));
    assert_eq!((r.status, r.body.as_slice()), (200, js.as_slice()));
    // A range of the variant is a range of its bytes.
    let r = c.one(
        &mut net,
        &get(
            "/app.js",
            &[("Accept-Encoding", "gzip"), ("Range", "bytes=0-9")],
        ),
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-range"), Some("bytes 0-9/300"));
    assert_eq!(r.body, &gz[..10]);
    // The .gz as a file of its own; a file without variants has no Vary.
    let r = c.one(&mut net, &get("/app.js.gz", &[("Accept-Encoding", "gzip")]));
    assert_eq!(r.body, gz);
    assert_eq!(r.header("content-type"), Some("application/gzip"));
    assert!(r.header("content-encoding").is_none());
    assert!(r.header("vary").is_none());
    let r = c.one(&mut net, &get("/plain.txt", &[("Accept-Encoding", "gzip")]));
    assert!(r.header("vary").is_none());
    let counters = net.server.app.json();
    assert_eq!(counters["encoded_gzip"], 4, "{counters}");
    assert_eq!(counters["encoded_br"], 1, "{counters}");
}

#[test]
fn large_files_come_from_disk_in_chunks() {
    let d = Dir::new("disk");
    let big = bytes(1 << 20, 4);
    d.file("big.bin", &big);
    d.file("small.txt", b"small\n");
    let (mut net, served) = net(&args(&d.0, None));
    let httpd::site::Site::Tree(t) = &*served.site().0 else {
        panic!("not a tree")
    };
    assert_eq!(t.on_disk(), (1, 1 << 20));
    let mut c = connect(&mut net, 42003);
    let r = c.one(&mut net, "HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.header("content-length"), Some("1048576"));
    assert_eq!(net.server.app.json()["disk_bytes"], 0);
    let r = c.one(
        &mut net,
        &get("/big.bin", &[("Range", "bytes=700000-700099,5-6")]),
    );
    assert_eq!(r.status, 206);
    assert!(r.body.windows(100).any(|w| w == &big[700_000..700_100]));
    // A range reads that range only.
    assert_eq!(net.server.app.json()["disk_bytes"], 102);
    let r = c.one(&mut net, &get("/big.bin", &[]));
    assert_eq!(r.status, 200);
    assert!(r.body == big, "the file from disk differs");
    assert_eq!(net.server.app.json()["disk_bytes"], 102 + (1 << 20));
    // Keep-alive continues after it.
    let r = c.one(&mut net, &get("/small.txt", &[]));
    assert_eq!(r.body, b"small\n");
}

#[test]
fn reload_swaps_the_tree_and_a_failed_one_keeps_it() {
    let d = Dir::new("reload");
    let old = bytes(300_000, 5);
    d.file("big.bin", &old);
    d.file("v.txt", b"one\n");
    let (mut net, served) = net(&args(&d.0, None));
    let mut c = connect(&mut net, 42004);
    let mut dl = connect(&mut net, 42005);
    assert_eq!(c.one(&mut net, &get("/v.txt", &[])).body, b"one\n");
    // A download from the old tree is under way when the tree changes.
    dl.send(&mut net, get("/big.bin", &[]).as_bytes());
    net.run(3);
    std::fs::remove_file(d.0.join("big.bin")).unwrap();
    d.file("big.bin", b"replaced\n");
    d.file("v.txt", b"two\n");
    d.file("new.txt", b"new\n");
    served.reload().unwrap();
    let r = dl.responses(&mut net, &[false]).remove(0);
    assert!(r.body == old, "the download in flight changed");
    assert_eq!(c.one(&mut net, &get("/v.txt", &[])).body, b"two\n");
    assert_eq!(c.one(&mut net, &get("/new.txt", &[])).body, b"new\n");
    assert_eq!(c.one(&mut net, &get("/big.bin", &[])).body, b"replaced\n");
    assert_eq!(net.server.app.json()["site_reloads"], 1);
    // A root that cannot be read: refused, the tree stays.
    let moved = d.0.with_extension("moved");
    std::fs::rename(&d.0, &moved).unwrap();
    let e = served.reload().unwrap_err();
    std::fs::rename(&moved, &d.0).unwrap();
    assert!(e.to_string().contains("cannot read"), "{e}");
    assert_eq!(served.reload_failures(), 1);
    assert_eq!(c.one(&mut net, &get("/v.txt", &[])).body, b"two\n");
    assert_eq!(net.server.app.json()["site_reloads"], 1);
}

#[test]
fn access_log_lines_in_combined_format() {
    let d = Dir::new("log");
    d.file("a.txt", b"0123456789");
    let log = d.0.with_extension("log");
    let _ = std::fs::remove_file(&log);
    let (mut net, _) = net(&args(&d.0, Some(log.clone())));
    let mut c = connect(&mut net, 42006);
    c.one(
        &mut net,
        &get(
            "/a.txt?q=1",
            &[("Referer", "http://r/"), ("User-Agent", "t\"ua")],
        ),
    );
    c.one(&mut net, &get("/a.txt", &[("Range", "bytes=2-4")]));
    c.one(&mut net, &get("/missing", &[]));
    c.send(&mut net, b"GET /x HTTP/1.1\r\nHost: a b\r\n\r\n");
    c.responses(&mut net, &[false]);
    // Buffered: nothing yet, then within a second of the first line.
    assert_eq!(std::fs::read(&log).unwrap(), b"");
    net.run(1100);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let tail = |l: &str| l.split_once("] ").unwrap().1.to_string();
    assert!(lines[0].starts_with("198.18.0.2 - - ["), "{}", lines[0]);
    assert_eq!(
        tail(lines[0]),
        "\"GET /a.txt?q=1 HTTP/1.1\" 200 10 \"http://r/\" \"t\\x22ua\""
    );
    assert_eq!(tail(lines[1]), "\"GET /a.txt HTTP/1.1\" 206 3 \"-\" \"-\"");
    assert_eq!(
        tail(lines[2]),
        "\"GET /missing HTTP/1.1\" 404 10 \"-\" \"-\""
    );
    assert_eq!(tail(lines[3]), "\"-\" 400 12 \"-\" \"-\"");
    let counters = net.server.app.json();
    assert_eq!(counters["log_bytes"], text.len() as u64, "{counters}");
    let _ = std::fs::remove_file(&log);
}
