//! The framer's rules, one test per rule family, and its invariants (work
//! linear in the bytes, outcome independent of how they are split).

use super::syntax::content_length;
use super::*;

fn limits() -> Limits {
    Limits {
        max_header: 256,
        max_body: 100,
    }
}

fn framer() -> Framer {
    Framer::new(limits())
}

fn describe(r: &Request) -> String {
    format!(
        "{:?} {} 1.{} keep={} body={:?}",
        r.method, r.target, r.minor, r.keep_alive, r.body
    )
}

/// Feeds `data` in one piece; returns the events (consecutive body
/// pieces joined as `data:...`) and the bytes consumed.
fn run(f: &mut Framer, data: &[u8]) -> (Vec<String>, usize) {
    let mut used = 0;
    let mut out: Vec<String> = Vec::new();
    loop {
        let (n, ev) = f.advance(&data[used..]);
        used += n;
        match ev {
            Event::Partial => break,
            Event::Body(b) => {
                assert!(!b.is_empty());
                let b = String::from_utf8_lossy(b);
                match out.last_mut() {
                    Some(last) if last.starts_with("data:") => last.push_str(&b),
                    _ => out.push(format!("data:{b}")),
                }
            }
            Event::End => out.push("end".into()),
            Event::Request(r) => out.push(describe(&r)),
            Event::Reject(s) => {
                out.push(format!("reject {s}"));
                break;
            }
        }
    }
    (out, used)
}

/// The status a request alone gets: 0 when it is accepted.
fn status(req: &[u8]) -> u16 {
    let mut f = framer();
    let (ev, _) = run(&mut f, req);
    match ev.last() {
        Some(e) if e.starts_with("reject ") => e[7..].parse().unwrap(),
        _ => 0,
    }
}

fn check(cases: &[(&[u8], u16)]) {
    for (req, want) in cases {
        assert_eq!(status(req), *want, "{:?}", String::from_utf8_lossy(req));
    }
}

#[test]
fn simple_get_and_head() {
    let mut f = framer();
    let (ev, used) = run(&mut f, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(ev, ["Get /a 1.1 keep=true body=None"]);
    assert_eq!(used, 28);
    let (ev, _) = run(&mut f, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(ev, ["Head / 1.1 keep=true body=None"]);
}

#[test]
fn partial_heads_wait_for_more() {
    let req = b"GET /x HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n";
    for cut in 0..req.len() {
        let mut f = framer();
        let (ev, used) = run(&mut f, &req[..cut]);
        assert!(ev.is_empty(), "cut {cut}: {ev:?}");
        assert_eq!(used, 0, "cut {cut}");
        assert!(f.in_head());
        let (ev, used) = run(&mut f, req);
        assert_eq!(ev, ["Get /x 1.1 keep=true body=None"], "cut {cut}");
        assert_eq!(used, req.len());
    }
}

#[test]
fn pipelined_requests_in_order() {
    let mut f = framer();
    let data = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /4 HT";
    let (ev, used) = run(&mut f, data);
    assert_eq!(
        ev,
        [
            "Get /1 1.1 keep=true body=None",
            "Head /2 1.1 keep=true body=None",
            "Get /3 1.1 keep=false body=None"
        ]
    );
    assert_eq!(&data[used..], b"GET /4 HT");
}

#[test]
fn keep_alive_rules() {
    let cases: &[(&[u8], bool)] = &[
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
            false,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n",
            true,
        ),
    ];
    for (req, keep) in cases {
        let mut f = framer();
        match f.advance(req).1 {
            Event::Request(r) => {
                assert_eq!(r.keep_alive, *keep, "{}", String::from_utf8_lossy(req))
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn content_length_bodies_are_delivered_and_framing_holds() {
    let mut f = framer();
    let mut data =
        b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello=world".to_vec();
    data.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    let (ev, used) = run(&mut f, &data);
    assert_eq!(
        ev,
        [
            "Post /form 1.1 keep=true body=Length(11)",
            "data:hello=world",
            "end",
            "Get /next 1.1 keep=true body=None"
        ]
    );
    assert_eq!(used, data.len());
    // Content-Length: 0 is no body at all.
    let (ev, _) = run(
        &mut f,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(ev, ["Post / 1.1 keep=true body=None"]);
}

#[test]
fn body_split_over_reads() {
    let mut f = framer();
    let (ev, _) = run(
        &mut f,
        b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
    );
    assert_eq!(ev, ["Put / 1.1 keep=true body=Length(10)"]);
    assert!(f.in_body());
    let (ev, used) = run(&mut f, b"0123");
    assert_eq!((ev, used), (vec!["data:0123".to_string()], 4));
    let (ev, used) = run(&mut f, b"456789GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(ev, ["data:456789", "end", "Get / 1.1 keep=true body=None"]);
    assert_eq!(used, 6 + 27);
}

#[test]
fn chunked_bodies_are_decoded() {
    let te = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let cases: &[(&str, &str)] = &[
        ("5\r\nhello\r\n0\r\n\r\n", "hello"),
        ("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"),
        ("A\r\nhelloworld\r\n0\r\n\r\n", "helloworld"),
        ("a\r\nhelloworld\r\n000\r\n\r\n", "helloworld"),
        ("0005\r\nhello\r\n0\r\n\r\n", "hello"),
        // Extensions: token and quoted values, BWS around `;` and `=`.
        ("5;ext=value\r\nhello\r\n0\r\n\r\n", "hello"),
        ("5;a;b=c\r\nhello\r\n0;last\r\n\r\n", "hello"),
        ("5 ; a = \"q \\\" ;x\"\r\nhello\r\n0\r\n\r\n", "hello"),
        ("5;a=b ;c\r\nhello\r\n0\r\n\r\n", "hello"),
        // Trailer fields are checked and dropped.
        ("5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n", "hello"),
        (
            "5\r\nhello\r\n0\r\nA: 1\r\nContent-Length: 50\r\n\r\n",
            "hello",
        ),
    ];
    for (body, want) in cases {
        let mut f = framer();
        let data = format!("{te}{body}GET /n HTTP/1.1\r\nHost: x\r\n\r\n");
        let (ev, used) = run(&mut f, data.as_bytes());
        assert_eq!(
            ev,
            [
                "Post /c 1.1 keep=true body=Chunked".to_string(),
                format!("data:{want}"),
                "end".to_string(),
                "Get /n 1.1 keep=true body=None".to_string()
            ],
            "{body:?}"
        );
        assert_eq!(used, data.len());
    }
    // An empty chunked body: the request, then its end.
    let mut f = framer();
    let (ev, _) = run(&mut f, format!("{te}0\r\n\r\n").as_bytes());
    assert_eq!(ev, ["Post /c 1.1 keep=true body=Chunked", "end"]);
    // The coding name is case-insensitive; empty list elements are
    // ignored.
    let mut f = framer();
    let (ev, _) = run(
        &mut f,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: , Chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
    );
    assert_eq!(ev, ["Post / 1.1 keep=true body=Chunked", "data:z", "end"]);
}

#[test]
fn chunked_framing_errors() {
    let te = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let long_ext = format!("5;e={}\r\nhello\r\n0\r\n\r\n", "a".repeat(300));
    let long_trailer = format!("0\r\nX: {}\r\n\r\n", "a".repeat(300));
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"0x5\r\nhello\r\n0\r\n\r\n".to_vec(), 400),
        (b"+5\r\nhello\r\n0\r\n\r\n".to_vec(), 400),
        (b"-1\r\nhello\r\n0\r\n\r\n".to_vec(), 400),
        (b" 5\r\nhello\r\n0\r\n\r\n".to_vec(), 400),
        (b"5 \r\nhello\r\n0\r\n\r\n".to_vec(), 400),
        (b"1_0\r\nhello world!!!!!\r\n0\r\n\r\n".to_vec(), 400),
        (b"\r\nhello\r\n0\r\n\r\n".to_vec(), 400),
        (b"5;\r\nhello\r\n0\r\n\r\n".to_vec(), 400),
        (b"5;bad[=x\r\nhello\r\n0\r\n\r\n".to_vec(), 400),
        (b"5;a=\r\nhello\r\n0\r\n\r\n".to_vec(), 400),
        (b"5;a=\"x\r\nhello\r\n0\r\n\r\n".to_vec(), 400),
        (b"5;a\x01\r\nhello\r\n0\r\n\r\n".to_vec(), 400),
        (b"5;a\rb\r\nhello\r\n0\r\n\r\n".to_vec(), 400),
        // Bare LF or bare CR where CRLF belongs.
        (b"5\nhello\r\n0\r\n\r\n".to_vec(), 400),
        (b"5;\nhello\r\n0\r\n\r\n".to_vec(), 400),
        (b"5\r\nhello\n0\r\n\r\n".to_vec(), 400),
        (b"5\rhello\r\n0\r\n\r\n".to_vec(), 400),
        (b"5\r\nhello\r\n0\r\n\n".to_vec(), 400),
        // Data longer or shorter than its size.
        (b"5\r\nhello!!\r\n0\r\n\r\n".to_vec(), 400),
        (b"5\r\nhello0\r\n\r\n".to_vec(), 400),
        // Trailer lines are field lines: no obs-fold, no space before
        // the colon, no empty name.
        (b"0\r\nX: a\r\n b\r\n\r\n".to_vec(), 400),
        (b"0\r\nX : a\r\n\r\n".to_vec(), 400),
        (b"0\r\n: a\r\n\r\n".to_vec(), 400),
        (b"0\r\nX: a\x00\r\n\r\n".to_vec(), 400),
        // Overflow, and sizes past --max-body (100 here).
        (b"FFFFFFFFFFFFFFFF0\r\nhello\r\n0\r\n\r\n".to_vec(), 400),
        (b"65\r\n".to_vec(), 413),
        (
            b"32\r\n"
                .iter()
                .chain(&[b'a'; 50])
                .chain(b"\r\n33\r\n")
                .copied()
                .collect(),
            413,
        ),
        (long_ext.into_bytes(), 400),
        (long_trailer.into_bytes(), 431),
    ];
    for (body, want) in cases {
        let mut req = te.to_vec();
        req.extend_from_slice(&body);
        req.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut f = framer();
        let (ev, used) = run(&mut f, &req);
        assert_eq!(
            ev.last().map(String::as_str),
            Some(format!("reject {want}").as_str()),
            "{:?}: {ev:?}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(used, req.len());
        // Nothing after a rejection is parsed.
        assert!(run(&mut f, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .0
            .is_empty());
    }
    // A body that stops before its last chunk waits for more.
    let mut f = framer();
    let mut req = te.to_vec();
    req.extend_from_slice(b"5\r\nhello\r\n");
    let (ev, used) = run(&mut f, &req);
    assert_eq!(ev, ["Post / 1.1 keep=true body=Chunked", "data:hello"]);
    assert_eq!(used, req.len());
    assert!(f.in_body());
}

#[test]
fn request_line_rules() {
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(400));
    let long_method = format!("{} / HTTP/1.1\r\nHost: x\r\n\r\n", "A".repeat(100_000));
    let long_bad = format!(
        "GET /{}\x01{} HTTP/1.1\r\n",
        "a".repeat(10),
        "a".repeat(400)
    );
    let ok_method = format!("{} / HTTP/1.1\r\nHost: x\r\n\r\n", "A".repeat(200));
    check(&[
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0),
        // RFC 9112 2.2: empty lines before the request line are ignored.
        (b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 0),
        // 2.2: CRLF, not a bare LF or a bare CR.
        (b"GET / HTTP/1.1\nHost: x\r\n\r\n", 400),
        (b"\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\rHost: x\r\n\r\n", 400),
        (b"GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        // 3: one SP between the parts, three parts.
        (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400),
        (b" GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400), // HTTP/0.9
        (b"GET /pa th HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"\x00\x01\x02garbage\r\n\r\n", 400),
        (b"   \r\n\r\n", 400),
        // 2.3: HTTP-version is case-sensitive HTTP/DIGIT.DIGIT.
        (b"GET / http/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/01.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/01.01\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/3\r\n\r\n", 400),
        (b"GET / HTTP/ 1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / FOO/1.1\r\n\r\n", 400),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400), // `*` is OPTIONS only
        // A well-formed version we do not speak: 505.
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505),
        // RFC 9110 2.5: a higher 1.x is served as 1.1.
        (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 0),
        // 3.2: targets of URI characters only.
        (b"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /\x80 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /path#frag HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /a\\b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /<x> HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /\"x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        // What browsers send raw (WHATWG URL) is taken.
        (b"GET /a[0]|^?q[]={x}`| HTTP/1.1\r\nHost: x\r\n\r\n", 0),
        (b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /%4 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /%0d%0a?q=%00 HTTP/1.1\r\nHost: x\r\n\r\n", 0),
        (
            b"GET /a/b;c=d,e:f@g!$&'()*+~._-?x=/?y HTTP/1.1\r\nHost: x\r\n\r\n",
            0,
        ),
        // 3.2.2 absolute form: http(s) with a valid authority.
        (b"GET http://x/a?b HTTP/1.1\r\nHost: x\r\n\r\n", 0),
        (b"GET HTTPS://x:443 HTTP/1.1\r\nHost: x\r\n\r\n", 0),
        (b"GET http:///a HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET http://u@x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        // 3.2.3 authority form: CONNECT only, and CONNECT only that.
        (b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", 0),
        (b"CONNECT x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        // 3.2.4 asterisk form: OPTIONS only.
        (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 0),
        (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"POST * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        // Long lines (the limit is 256 here): a method longer than any
        // we implement is 501 (RFC 9112 3), a target longer than we
        // parse 414; bad syntax in what fits is still 400.
        (long_method.as_bytes(), 501),
        (long_target.as_bytes(), 414),
        (long_bad.as_bytes(), 400),
        (ok_method.as_bytes(), 0),
    ]);
}

#[test]
fn methods_are_case_sensitive_tokens() {
    for (m, want) in [
        ("GET", Method::Get),
        ("HEAD", Method::Head),
        ("POST", Method::Post),
        ("PUT", Method::Put),
        ("DELETE", Method::Delete),
        ("OPTIONS", Method::Options),
        ("TRACE", Method::Trace),
        ("PATCH", Method::Patch),
        ("get", Method::Unknown),
        ("FOOBAR", Method::Unknown),
        ("M-SEARCH", Method::Unknown),
    ] {
        let req = format!("{m} / HTTP/1.1\r\nHost: x\r\n\r\n");
        match framer().advance(req.as_bytes()).1 {
            Event::Request(r) => assert_eq!(r.method, want, "{m}"),
            other => panic!("{m}: {other:?}"),
        }
    }
}

#[test]
fn host_rules() {
    check(&[
        // RFC 9112 3.2: exactly one valid Host in 1.1 ...
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: \r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: user@host\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: host/path\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a:80:80\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: []\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 0),
        (b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", 0),
        (b"GET / HTTP/1.1\r\nHost: 198.18.0.1\r\n\r\n", 0),
        (b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", 0),
        (b"GET / HTTP/1.1\r\nhOsT:\t x-y_z~1 \r\n\r\n", 0),
        // ... the absolute form's authority wins, but Host is still
        // required (and checked).
        (b"GET http://a/ HTTP/1.1\r\n\r\n", 400),
        (b"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", 0),
        // ... in 1.0, none is fine; two or a bad one are not.
        (b"GET / HTTP/1.0\r\n\r\n", 0),
        (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nHost: a@b\r\n\r\n", 400),
    ]);
}

#[test]
fn field_syntax_rules() {
    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..MAX_HEADERS {
        many.push_str(&format!("X-{i}: y\r\n"));
    }
    many.push_str("\r\n");
    let long = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "a".repeat(300)
    );
    check(&[
        // RFC 9112 5.1: no whitespace between name and colon.
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Test : v\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Test\t: v\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        // 5.2: obs-fold is refused; so is whitespace before the first
        // field (2.2).
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n\tb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n \r\nHost: x\r\n\r\n", 400),
        // 5: a name is a token, followed by a colon.
        (b"GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad[Name: v\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nN\xc3\xa9: v\r\n\r\n", 400),
        // RFC 9110 5.5: no CR, LF, NUL or other controls in values.
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x7fb\r\n\r\n", 400),
        // 2.2: CRLF line ends; a bare CR ends nothing.
        (b"GET / HTTP/1.1\r\nHost: x\nX: v\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\r\n\r\n", 400),
        // Valid: obs-text and tabs in values, empty values, OWS.
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\xff\tb\r\nY:\r\nZ:  z  \r\n\r\n",
            0,
        ),
        // Size limits: 431.
        (many.as_bytes(), 431),
        (long.as_bytes(), 431),
        (&[b'A'; 300], 501),
    ]);
}

#[test]
fn content_length_and_transfer_encoding_rules() {
    let post = |fields: &str| format!("POST / HTTP/1.1\r\nHost: x\r\n{fields}\r\n");
    let cases: Vec<(String, u16)> = vec![
        // RFC 9110 8.6 / RFC 9112 6.3: invalid lengths are a 400.
        (post("Content-Length: abc\r\n"), 400),
        (post("Content-Length: +5\r\n"), 400),
        (post("Content-Length: -1\r\n"), 400),
        (post("Content-Length: -0\r\n"), 400),
        (post("Content-Length: 0x5\r\n"), 400),
        (post("Content-Length: 0o5\r\n"), 400),
        (post("Content-Length: 1_0\r\n"), 400),
        (post("Content-Length: 1 0\r\n"), 400),
        (post("Content-Length: 1.0\r\n"), 400),
        (post("Content-Length: \r\n"), 400),
        (post("Content-Length: 99999999999999999999\r\n"), 400),
        // Leading zeros: refused (a reader taking them as octal).
        (post("Content-Length: 005\r\n"), 400),
        (post("Content-Length: 00\r\n"), 400),
        // Several that differ, in one line or two.
        (post("Content-Length: 5, 10\r\n"), 400),
        (post("Content-Length: 5\r\nContent-Length: 10\r\n"), 400),
        // Equal values are one length (RFC 9110 8.6 allows it).
        (post("Content-Length: 5, 5\r\n"), 0),
        (post("Content-Length: 5\r\nContent-Length: 5\r\n"), 0),
        (post("Content-Length:\t5 \r\n"), 0),
        // Past --max-body (100 here): 413.
        (post("Content-Length: 101\r\n"), 413),
        (post("Content-Length: 999999999\r\n"), 413),
        // RFC 9112 6.1/6.3: both framings: 400 (and close).
        (
            post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
            400,
        ),
        (
            post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
            400,
        ),
        (
            post("Transfer-Encoding: Chunked\r\nContent-Length: 5\r\n"),
            400,
        ),
        // Chunked must be last, and once.
        (post("Transfer-Encoding: chunked, gzip\r\n"), 400),
        (post("Transfer-Encoding: chunked, chunked\r\n"), 400),
        (
            post("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"),
            400,
        ),
        (post("Transfer-Encoding: gzip\r\n"), 400),
        (post("Transfer-Encoding: xchunked\r\n"), 400),
        (post("Transfer-Encoding: \r\n"), 400),
        (post("Transfer-Encoding: ,\r\n"), 400),
        (post("Transfer-Encoding: \"chunked\"\r\n"), 400),
        (post("Transfer-Encoding: chunked;a=b\r\n"), 400),
        (post("Transfer-Encoding: chunked\x0b\r\n"), 400),
        (post("Transfer-Encoding: chunked\x0c\r\n"), 400),
        (post("Transfer-Encoding : chunked\r\n"), 400),
        (post("Transfer-Encoding:\r\n chunked\r\n"), 400),
        // A coding we do not know, with chunked last: 501.
        (post("Transfer-Encoding: gzip, chunked\r\n"), 501),
        (
            post("Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n"),
            501,
        ),
        // Valid chunked framings.
        (post("Transfer-Encoding: chunked\r\n"), 0),
        (post("Transfer-Encoding: chunked \r\n"), 0),
        (post("Transfer-Encoding:\tchunked\r\n"), 0),
        (post("Transfer-Encoding: chunked,\r\n"), 0),
        // Not a framing field at all.
        (post("Transfer_Encoding: chunked\r\n"), 0),
        (post("Content_Length: 5\r\n"), 0),
        // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
        (
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n".into(),
            400,
        ),
        (
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
            400,
        ),
    ];
    for (req, want) in cases {
        assert_eq!(status(req.as_bytes()), want, "{req:?}");
    }
}

#[test]
fn expectations() {
    let expect = |req: &[u8]| match framer().advance(req).1 {
        Event::Request(r) => Ok(r.expect_continue),
        Event::Reject(s) => Err(s),
        other => panic!("{other:?}"),
    };
    let cl = "Content-Length: 3\r\n";
    let te = "Transfer-Encoding: chunked\r\n";
    let req = |v: &str, fields: &str| {
        format!("POST / HTTP/1.{v}\r\nHost: x\r\n{fields}\r\n").into_bytes()
    };
    assert_eq!(
        expect(&req("1", &format!("Expect: 100-continue\r\n{cl}"))),
        Ok(true)
    );
    assert_eq!(
        expect(&req("1", &format!("Expect: 100-Continue\r\n{te}"))),
        Ok(true)
    );
    // No body: nothing to continue.
    assert_eq!(expect(&req("1", "Expect: 100-continue\r\n")), Ok(false));
    // RFC 9110 10.1.1: ignored in HTTP/1.0.
    assert_eq!(
        expect(&req("0", &format!("Expect: 100-continue\r\n{cl}"))),
        Ok(false)
    );
    assert_eq!(
        expect(&req("0", &format!("Expect: 200-ok\r\n{cl}"))),
        Ok(false)
    );
    // Any other expectation: 417.
    assert_eq!(expect(&req("1", "Expect: 200-ok\r\n")), Err(417));
    assert_eq!(
        expect(&req("1", &format!("Expect: 100-continue, x\r\n{cl}"))),
        Err(417)
    );
    assert_eq!(
        expect(&req(
            "1",
            &format!("Expect: 100-continue\r\nExpect: x\r\n{cl}")
        )),
        Err(417)
    );
}

#[test]
fn rejections_consume_everything_and_stop() {
    for req in [
        &b"GET / HTTP/2.0\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n",
    ] {
        let mut f = framer();
        let (ev, used) = run(&mut f, req);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert!(ev[0].starts_with("reject"), "{ev:?}");
        assert_eq!(used, req.len());
        assert!(run(&mut f, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .0
            .is_empty());
    }
}

#[test]
fn accepted_content_lengths() {
    assert_eq!(content_length(b"0"), Some(0));
    assert_eq!(content_length(b" 42 "), Some(42));
    assert_eq!(content_length(b"7, 7"), Some(7));
    assert_eq!(content_length(b"7, 8"), None);
    assert_eq!(content_length(b""), None);
    assert_eq!(content_length(b"+1"), None);
    assert_eq!(content_length(b"01"), None);
    assert_eq!(content_length(b"18446744073709551615"), None); // 20 digits
    assert_eq!(
        content_length(b"9999999999999999999"),
        Some(9_999_999_999_999_999_999)
    );
}

#[test]
fn leading_empty_lines_and_http10_without_host() {
    let mut f = framer();
    let (ev, _) = run(&mut f, b"\r\nGET / HTTP/1.0\r\n\r\n");
    assert_eq!(ev, ["Get / 1.0 keep=false body=None"]);
}

/// Feeds `data` the way the server does: a byte at a time appended to
/// the unconsumed bytes, which are offered again after each `Partial`.
/// Body pieces are joined (how they are split depends on the reads).
fn run_bytewise(f: &mut Framer, data: &[u8]) -> Vec<String> {
    let mut buf = Vec::new();
    let mut out: Vec<String> = Vec::new();
    for &b in data {
        buf.push(b);
        loop {
            let (n, ev) = f.advance(&buf);
            let ev = match ev {
                Event::Partial => None,
                Event::Body(b) => Some(format!("data:{}", String::from_utf8_lossy(b))),
                Event::End => Some("end".to_string()),
                Event::Request(r) => Some(describe(&r)),
                Event::Reject(s) => Some(format!("reject {s}")),
            };
            buf.drain(..n);
            match ev {
                None => break,
                Some(e) if e.starts_with("data:") => match out.last_mut() {
                    Some(last) if last.starts_with("data:") => last.push_str(&e[5..]),
                    _ => out.push(e),
                },
                Some(e) => out.push(e),
            }
        }
    }
    out
}

#[test]
fn one_byte_segments_cost_linear_work() {
    // A 16 KiB head of 60 long fields, one byte per read: every byte is
    // looked at a small constant number of times.
    let mut head = b"GET /x HTTP/1.1\r\nHost: x\r\n".to_vec();
    let limits = Limits::default();
    for i in 0..60 {
        let field = format!("X-F{i:02}: {}\r\n", "v".repeat(250));
        head.extend_from_slice(field.as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    assert!(head.len() > 15_000 && head.len() <= limits.max_header);
    let mut f = Framer::new(limits);
    assert_eq!(
        run_bytewise(&mut f, &head),
        ["Get /x 1.1 keep=true body=None"]
    );
    let bytewise = f.work();
    assert!(
        bytewise <= 4 * head.len() as u64,
        "{bytewise} for {}",
        head.len()
    );
    // The same as in one read.
    let mut g = Framer::new(limits);
    assert!(matches!(g.advance(&head).1, Event::Request(_)));
    assert_eq!(g.work(), bytewise);
    // A head that never ends: refused once past the limit, after
    // linear work, not at the header timeout after quadratic work.
    let mut f = Framer::new(limits);
    let endless = vec![b'a'; limits.max_header + 1];
    let mut data = b"GET / HTTP/1.1\r\nX: ".to_vec();
    data.extend_from_slice(&endless);
    assert_eq!(run_bytewise(&mut f, &data), ["reject 431"]);
    assert!(f.work() <= 2 * data.len() as u64);
}

#[test]
fn chunked_bodies_need_no_buffer() {
    // A chunked body far larger than any buffer, in reads of 1..17
    // bytes: every read is consumed whole (the caller keeps nothing),
    // and the work is linear.
    let limits = Limits {
        max_header: 1024,
        max_body: 1 << 30,
    };
    let mut data = b"PUT /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let head_len = data.len();
    let mut want = 0u64;
    for i in 0..2000u64 {
        let size = (i * 37) % 700 + 1;
        // Extensions count against max_header for the whole body
        // (RFC 9112 7.1.1: "the total length"): a few only.
        let ext = if i % 100 == 0 { ";i=x" } else { "" };
        data.extend_from_slice(format!("{size:x}{ext}\r\n").as_bytes());
        data.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, size as usize));
        data.extend_from_slice(b"\r\n");
        want += size;
    }
    data.extend_from_slice(b"0\r\nT: x\r\n\r\n");
    let mut f = Framer::new(limits);
    let (n, ev) = f.advance(&data[..head_len]);
    assert!(matches!(ev, Event::Request(_)) && n == head_len);
    let mut at = head_len;
    let (mut got, mut ended, mut step) = (0u64, false, 0usize);
    while at < data.len() {
        step = step % 17 + 1;
        let read = &data[at..(at + step).min(data.len())];
        let mut used = 0;
        loop {
            let (n, ev) = f.advance(&read[used..]);
            used += n;
            match ev {
                Event::Partial => break,
                Event::Body(b) => got += b.len() as u64,
                Event::End => ended = true,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(used, read.len(), "bytes left over at {at}");
        at += read.len();
    }
    assert!(ended);
    assert_eq!(got, want);
    assert!(f.in_head());
    assert!(f.work() < 2 * data.len() as u64);
}

#[test]
fn outcome_does_not_depend_on_how_bytes_arrive() {
    let mut long = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
    long.extend_from_slice(&[b'a'; 300]);
    long.extend_from_slice(b"\r\n\r\n");
    let mut bad_then_long = b"GET / HTTP/1.1\r\nBad Header\r\n".to_vec();
    bad_then_long.extend_from_slice(&[b'a'; 300]);
    let cases: Vec<Vec<u8>> = vec![
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"\r\n\r\nGET / HTTP/1.0\r\n\r\n".to_vec(),
        b"GET / HTTP/1.0\n\n".to_vec(),
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(),
        b"GE\x00T / HTTP/1.1\r\n".to_vec(),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\"b\"\r\nabc\r\n0\r\nT: v\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n".to_vec(),
        long,
        bad_then_long,
        vec![b'A'; 300],
        [b"GET /".as_slice(), &[b'a'; 300]].concat(),
    ];
    for data in cases {
        let mut f = framer();
        let (whole, _) = run(&mut f, &data);
        let mut f = framer();
        let bytewise = run_bytewise(&mut f, &data);
        assert_eq!(whole, bytewise, "{:?}", String::from_utf8_lossy(&data));
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic fuzz: random bytes, random split points.
    let mut rng = testkit::Rng::new(0x2545_f491_4f6c_dd1d);
    let mut rnd = move || rng.next_u64();
    let alphabet =
        b"GETHEADPOST /\r\n:HTTP/1.01Content-Length: 0123456789abc%\x00\xffTransfer-Encoding;chunked\"=";
    for _ in 0..4000 {
        let len = (rnd() % 400) as usize;
        let data: Vec<u8> = (0..len)
            .map(|_| alphabet[(rnd() % alphabet.len() as u64) as usize])
            .collect();
        let mut f = framer();
        let mut used = 0;
        for _ in 0..1000 {
            let (n, ev) = f.advance(&data[used..]);
            assert!(used + n <= data.len());
            used += n;
            if matches!(ev, Event::Partial | Event::Reject(_)) {
                break;
            }
        }
    }
}
