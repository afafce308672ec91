//! Request bodies through the whole service, in memory (no root): a client
//! on the far end of the engine's wire sends requests in pieces and reads
//! what `HttpApp` answers, when: `100 Continue` before the body, the fixed
//! body after it, OPTIONS, 405 and 501, and what closes the connection;
//! and how a full table (--max-conns) makes room for a newcomer.

mod common;

use common::Client;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use httpd::{load_site, HttpApp, HttpArgs};
use runtime::server::WorkerCtx;
use smoltcp::socket::tcp;
use stack::testing::{engine_net, with_app, EngineNet};

fn args(root: Option<std::path::PathBuf>) -> HttpArgs {
    common::small_args(root, 8)
}

fn net(args: &HttpArgs) -> EngineNet<HttpApp> {
    let ctx = WorkerCtx::hashed(0, Arc::new(AtomicU64::new(0)));
    let site = load_site(args).unwrap();
    with_app(engine_net(|_| {}), |engine| {
        HttpApp::new(&ctx, engine, args, site).unwrap()
    })
}

impl Client {
    /// Everything received so far, as text, and forgets it.
    fn take(&mut self, net: &mut EngineNet<HttpApp>) -> String {
        self.read(net, 50);
        String::from_utf8_lossy(&std::mem::take(&mut self.got)).into_owned()
    }

    /// The server closed its side.
    fn closed(&self, net: &mut EngineNet<HttpApp>) -> bool {
        !matches!(
            net.client.tcp(self.h).state(),
            tcp::State::Established | tcp::State::FinWait1 | tcp::State::FinWait2
        )
    }
}

/// The status lines in `text`, in order (every body here ends with LF).
fn statuses(text: &str) -> Vec<&str> {
    text.split('\n')
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .map(|l| &l[9..12])
        .collect()
}

#[test]
fn expect_continue_then_body_then_answer() {
    let mut net = net(&args(None));
    let mut c = Client::connect(&mut net, 41000);
    c.send(
        &mut net,
        b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
    );
    // The head alone: `100 Continue` and nothing more.
    assert_eq!(c.take(&mut net), "HTTP/1.1 100 Continue\r\n\r\n");
    c.send(&mut net, b"01234");
    assert_eq!(c.take(&mut net), "");
    // The rest of the body: the fixed body's answer, and the connection
    // stays open for the next request.
    c.send(&mut net, b"56789");
    let text = c.take(&mut net);
    assert_eq!(statuses(&text), ["200"], "{text}");
    assert!(text.ends_with("\r\n\r\nOK\n"), "{text}");
    c.send(&mut net, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(statuses(&c.take(&mut net)), ["200"]);
    assert!(!c.closed(&mut net));
    let counters = net.server.app.json();
    assert_eq!(counters["continues"], 1, "{counters}");
    assert_eq!(counters["body_bytes"], 10, "{counters}");
}

#[test]
fn chunked_body_in_pieces_with_trailers() {
    let mut net = net(&args(None));
    let mut c = Client::connect(&mut net, 41001);
    c.send(
        &mut net,
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhel",
    );
    assert_eq!(c.take(&mut net), "");
    c.send(&mut net, b"lo\r\n6\r\n world\r\n0\r\nX-Sum: ");
    assert_eq!(c.take(&mut net), "");
    c.send(&mut net, b"1\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n");
    let text = c.take(&mut net);
    assert_eq!(statuses(&text), ["200", "200"], "{text}");
    assert_eq!(net.server.app.json()["body_bytes"], 11);
    assert!(!c.closed(&mut net));
}

#[test]
fn methods_options_405_and_501() {
    let mut net = net(&args(None));
    let mut c = Client::connect(&mut net, 41002);
    // PUT with a body: 405 once its body is read (and dropped), the next
    // request answered; OPTIONS (server-wide and for a path); an unknown
    // method: 501.
    c.send(
        &mut net,
        b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc\
          OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n\
          OPTIONS /x HTTP/1.1\r\nHost: t\r\n\r\n\
          DELETE /x HTTP/1.1\r\nHost: t\r\n\r\n\
          FOOBAR /x HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /x HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let text = c.take(&mut net);
    assert_eq!(
        statuses(&text),
        ["405", "204", "204", "405", "501", "200"],
        "{text}"
    );
    assert_eq!(
        text.matches("Allow: GET, HEAD, POST, OPTIONS\r\n").count(),
        4,
        "{text}"
    );
    // No Content-Length in a 204.
    let options = &text[text.find("HTTP/1.1 204").unwrap()..];
    let options = &options[..options.find("\r\n\r\n").unwrap()];
    assert!(!options.contains("Content-Length"), "{options}");
    assert!(!c.closed(&mut net));
}

#[test]
fn tree_keeps_405_for_post_and_answers_options() {
    let dir = std::env::temp_dir().join(format!("xdpstack-bodies-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), b"<p>hi</p>\n").unwrap();
    let mut net = net(&args(Some(dir.clone())));
    let mut c = Client::connect(&mut net, 41003);
    c.send(
        &mut net,
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          OPTIONS / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let text = c.take(&mut net);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(statuses(&text), ["405", "204", "200"], "{text}");
    assert_eq!(
        text.matches("Allow: GET, HEAD, OPTIONS\r\n").count(),
        2,
        "{text}"
    );
    assert!(text.ends_with("<p>hi</p>\n"), "{text}");
}

#[test]
fn what_closes_the_connection() {
    let mut net = net(&args(None));
    // A chunked body past --max-body: 413, then close.
    let mut c = Client::connect(&mut net, 41004);
    c.send(
        &mut net,
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2711\r\n",
    );
    let text = c.take(&mut net);
    assert_eq!(statuses(&text), ["413"], "{text}");
    assert!(text.contains("Connection: close"), "{text}");
    assert!(c.closed(&mut net));
    // A framing error in the body of a request whose answer waits for it
    // (a 405): the 400 is the only response. A GET is answered at once from
    // its head; a framing error in its body then closes the connection
    // without a second response.
    for (port, method, status) in [(41005, "PUT", "400"), (41008, "GET", "200")] {
        let mut c = Client::connect(&mut net, port);
        let req = format!(
            "{method} / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd"
        );
        c.send(&mut net, req.as_bytes());
        let text = c.take(&mut net);
        assert_eq!(statuses(&text), [status], "{text}");
        assert!(c.closed(&mut net));
    }
    // Expect: 100-continue on a request answered without its body (405):
    // no 100, the answer, then close (the body may or may not come).
    let mut c = Client::connect(&mut net, 41006);
    c.send(
        &mut net,
        b"PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let text = c.take(&mut net);
    assert_eq!(statuses(&text), ["405"], "{text}");
    assert!(text.contains("Connection: close"), "{text}");
    assert!(c.closed(&mut net));
    // Both framings: 400 and close, the smuggled request never answered.
    let mut c = Client::connect(&mut net, 41007);
    c.send(
        &mut net,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 35\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let text = c.take(&mut net);
    assert_eq!(statuses(&text), ["400"], "{text}");
    assert!(c.closed(&mut net));
}

/// RFC 9112 6.3, 7.1 (issue 21, the compliance probe): a request the tree
/// refuses (405) or answers without using its body (OPTIONS, 501) is
/// answered once its body has been read, so that the answer is to the whole
/// message: a broken chunked body gets a 400 and nothing else, an incomplete
/// body no answer at all until it is complete.
#[test]
fn refusals_wait_for_the_body() {
    let dir = std::env::temp_dir().join(format!("xdpstack-held-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), b"OK\n").unwrap();
    let mut net = net(&args(Some(dir.clone())));
    // Chunk framing errors: 400 only (before, a 405 went out first).
    for (port, body) in [
        (41020, &b"5;\r\nhello\r\n0\r\n\r\n"[..]),
        (41021, b"0x5\r\nhello\r\n0\r\n\r\n"),
        (41022, b"5 \r\nhello\r\n0\r\n\r\n"),
        (41023, b"5\r\nhello!!\r\n0\r\n\r\n"),
        (41024, b"5\r\nhello\n0\r\n\r\n"),
        (41025, b"FFFFFFFFFFFFFFFF0\r\nhello\r\n0\r\n\r\n"),
    ] {
        let mut c = Client::connect(&mut net, port);
        let mut req = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(body);
        c.send(&mut net, &req);
        let text = c.take(&mut net);
        assert_eq!(
            statuses(&text),
            ["400"],
            "{}: {text}",
            String::from_utf8_lossy(body)
        );
        assert!(c.closed(&mut net));
    }
    // A Content-Length body sent in two parts: nothing until it is whole,
    // then the 405 (with Allow), and the connection serves the next one.
    let mut c = Client::connect(&mut net, 41026);
    c.send(
        &mut net,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello",
    );
    assert_eq!(c.take(&mut net), "");
    c.send(&mut net, b"world");
    let text = c.take(&mut net);
    assert_eq!(statuses(&text), ["405"], "{text}");
    assert!(text.contains("Allow: GET, HEAD, OPTIONS\r\n"), "{text}");
    // OPTIONS and an unknown method with bodies: answered after them.
    c.send(
        &mut net,
        b"OPTIONS / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nab",
    );
    assert_eq!(c.take(&mut net), "");
    c.send(
        &mut net,
        b"cFOOBAR / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n",
    );
    let text = c.take(&mut net);
    assert_eq!(statuses(&text), ["204"], "{text}");
    c.send(&mut net, b"0\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let text = c.take(&mut net);
    assert_eq!(statuses(&text), ["501", "200"], "{text}");
    assert!(!c.closed(&mut net));
    let _ = std::fs::remove_dir_all(&dir);
    let counters = net.server.app.json();
    assert_eq!(counters["status_4xx"], 7, "{counters}");
}

/// Issue 20: with --max-conns open, all idle after a request (clients that
/// keep their keep-alive connections, or died with them), a newcomer is
/// served at once: the connection that went idle first is closed
/// gracefully, whatever its age (nginx reuses its idle keep-alive
/// connections so); before, none was evictable for a second
/// (`EVICT_AFTER`) and the newcomer was reset.
#[test]
fn a_full_table_of_idle_keep_alive_connections_makes_room_at_once() {
    let mut net = net(&args(None)); // max_conns 8
    let mut cs = Vec::new();
    for i in 0..8u16 {
        let mut c = Client::connect(&mut net, 42000 + i);
        c.send(&mut net, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(statuses(&c.take(&mut net)), ["200"]);
        cs.push(c);
    }
    let start = net.rounds;
    let mut late = Client::connect(&mut net, 42100);
    late.send(&mut net, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(statuses(&late.take(&mut net)), ["200"]);
    assert!(
        net.rounds - start < 500,
        "served after {} ms",
        net.rounds - start
    );
    net.run(50);
    assert!(cs[0].closed(&mut net), "the first to go idle is closed");
    assert!(cs[1..].iter().all(|c| !c.closed(&mut net)));
    let counters = net.server.app.json();
    assert_eq!(counters["closed_quiet"], 1, "{counters}");
    assert_eq!(counters["rejected_max_conns"], 0, "{counters}");
    assert_eq!(counters["evicted_idle"], 0, "{counters}");
}
