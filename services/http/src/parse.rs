//! Request framing for one connection: a state machine over the bytes the
//! peer sent, with no I/O. It finds each request head (httparse), decides
//! what the head means for the connection (keep-alive, the length of a body
//! to skip) and which heads cannot be answered normally (the status to send
//! before closing). Bodies are never handed to the application: this server
//! answers GET and HEAD only, so a body (of a refused POST, say) is skipped
//! so that the next pipelined request still parses.

/// Most header fields in one request (431 past it).
pub const MAX_HEADERS: usize = 64;

/// Limits on what a client may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line and header fields), in bytes.
    pub max_header: usize,
    /// Largest request body that is read (and skipped); a longer declared
    /// Content-Length gets 413 and the connection closes.
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header: 16 * 1024,
            max_body: 1024 * 1024,
        }
    }
}

/// Request methods this server tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// Anything else (answered with 405).
    Other,
}

/// A complete request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The request target as sent (origin-form, absolute-form or `*`).
    pub target: &'a str,
    /// HTTP/1.`minor`.
    pub minor: u8,
    /// Whether the client wants the connection kept open after the response
    /// (HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
    /// `Connection: keep-alive`).
    pub keep_alive: bool,
    /// Declared body length; the framer skips that many bytes after the head.
    pub body_len: u64,
    /// `Expect: 100-continue` was sent: the body may never come unless the
    /// server asks for it.
    pub expect_continue: bool,
}

/// What the next bytes were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Not enough bytes for anything: read more.
    Partial,
    /// Bytes of a request body were skipped.
    Skipped,
    /// A request head. Its body, if any, is skipped by the next calls.
    Request(Request<'a>),
    /// The bytes cannot be framed or the request cannot be served: send
    /// this status and close the connection. Everything after it is
    /// ignored.
    Reject(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    Body(u64),
    Failed,
}

/// How far the current (partial) head has been looked at, so that the next
/// call resumes there instead of parsing the whole head again: a head sent
/// one byte per segment costs linear work, not quadratic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Scan {
    /// Bytes of the head searched for a line end.
    pos: usize,
    /// Start of the line not finished yet.
    line_start: usize,
    /// The request line was seen (and checked); empty lines before it are
    /// skipped, as httparse does.
    request_line: bool,
    /// Header lines seen.
    fields: usize,
}

/// The framing state of one connection.
#[derive(Clone, Debug)]
pub struct Framer {
    state: State,
    limits: Limits,
    scan: Scan,
    /// Bytes looked at so far (line search and parsing), for tests.
    work: u64,
}

impl Framer {
    /// A connection that expects a request head.
    pub fn new(limits: Limits) -> Self {
        Framer {
            state: State::Head,
            limits,
            scan: Scan::default(),
            work: 0,
        }
    }

    /// Bytes looked at since the framer was made: every byte of a head is
    /// searched once for its line end, and parsed once for its line and
    /// once for the complete head, however it was split into reads.
    pub fn work(&self) -> u64 {
        self.work
    }

    /// Back to the start (a connection object reused for another client).
    pub fn reset(&mut self, limits: Limits) {
        self.state = State::Head;
        self.limits = limits;
        self.scan = Scan::default();
    }

    /// Waiting for (the rest of) a request head.
    pub fn in_head(&self) -> bool {
        self.state == State::Head
    }

    /// Skipping a request body.
    pub fn in_body(&self) -> bool {
        matches!(self.state, State::Body(_))
    }

    /// Looks at `data`, the bytes not consumed yet. Returns how many of them
    /// were consumed and what they were. Call again with the rest until it
    /// says [`Event::Partial`]; never panics, whatever the bytes.
    pub fn advance<'a>(&mut self, data: &'a [u8]) -> (usize, Event<'a>) {
        match self.state {
            State::Failed => (data.len(), Event::Partial),
            State::Body(left) => {
                let n = (data.len() as u64).min(left);
                if n == 0 {
                    return (0, Event::Partial);
                }
                let left = left - n;
                self.state = if left == 0 {
                    State::Head
                } else {
                    State::Body(left)
                };
                (n as usize, Event::Skipped)
            }
            State::Head => {
                let (n, ev) = self.head(data);
                if let Event::Reject(_) = ev {
                    self.state = State::Failed;
                    return (data.len(), ev);
                }
                (n, ev)
            }
        }
    }

    /// `data` starts at the head; bytes before `self.scan.pos` were looked
    /// at by an earlier call (the caller passes the same head again, with
    /// more bytes after it). Each line is checked once when its line end
    /// arrives (a malformed line is refused at once, as a full parse would
    /// find it), the head is parsed whole once when the empty line that ends
    /// it arrives. The outcome depends only on the bytes, never on how they
    /// were split into reads: a line ending past `max_header` (or more than
    /// `max_header` bytes without the head's end) is a 431, a malformed line
    /// before that a 400 (505 for another HTTP version).
    fn head<'a>(&mut self, data: &'a [u8]) -> (usize, Event<'a>) {
        let end = match self.find_head_end(data) {
            Ok(Some(end)) => end,
            Ok(None) => return (0, Event::Partial),
            Err(status) => return (0, Event::Reject(status)),
        };
        self.scan = Scan::default();
        let data = &data[..end];
        self.work += data.len() as u64;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let n = match req.parse(data) {
            Ok(httparse::Status::Complete(n)) => n,
            // The empty line ends the head for httparse too; a partial
            // result here would mean the two disagree: refuse it.
            Ok(httparse::Status::Partial) => return (0, Event::Reject(400)),
            Err(httparse::Error::TooManyHeaders) => return (0, Event::Reject(431)),
            Err(e) => return (0, Event::Reject(line_error_status(e, data))),
        };
        let minor = req.version.unwrap_or(1);
        let method = match req.method {
            Some("GET") => Method::Get,
            Some("HEAD") => Method::Head,
            _ => Method::Other,
        };
        let target = req.path.unwrap_or("");
        let (mut saw_close, mut saw_keep_alive) = (false, false);
        let mut body_len: Option<u64> = None;
        let mut hosts = 0;
        let mut expect_continue = false;
        for h in req.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        saw_close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        saw_keep_alive = true;
                    }
                }
            } else if name.eq_ignore_ascii_case("content-length") {
                let Some(len) = content_length(h.value) else {
                    return (0, Event::Reject(400));
                };
                if body_len.is_some_and(|l| l != len) {
                    return (0, Event::Reject(400));
                }
                body_len = Some(len);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                // Chunked (or any coded) request bodies are not read: the
                // end of the body cannot be found without decoding them.
                return (0, Event::Reject(501));
            } else if name.eq_ignore_ascii_case("host") {
                hosts += 1;
            } else if name.eq_ignore_ascii_case("expect") {
                expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
        }
        // RFC 9112 3.2: a 1.1 request without exactly one Host is a 400.
        if (minor >= 1 && hosts != 1) || hosts > 1 {
            return (0, Event::Reject(400));
        }
        let keep_alive = !saw_close && (minor >= 1 || saw_keep_alive);
        let body_len = body_len.unwrap_or(0);
        if body_len > self.limits.max_body {
            return (0, Event::Reject(413));
        }
        if body_len > 0 {
            self.state = State::Body(body_len);
        }
        (
            n,
            Event::Request(Request {
                method,
                target,
                minor,
                keep_alive,
                body_len,
                expect_continue,
            }),
        )
    }
}

impl Framer {
    /// Resume the search for the end of the head in `data`: `Ok(Some(end))`
    /// once the empty line ending it is there, `Ok(None)` for more bytes,
    /// `Err(status)` when it cannot be a head this server takes.
    fn find_head_end(&mut self, data: &[u8]) -> Result<Option<usize>, u16> {
        if self.scan.pos > data.len() {
            // Not the head this scan started on: start over.
            self.scan = Scan::default();
        }
        let max = self.limits.max_header;
        loop {
            let from = self.scan.pos;
            let Some(i) = data[from..].iter().position(|&b| b == b'\n') else {
                self.work += (data.len() - from) as u64;
                self.scan.pos = data.len();
                return if data.len() > max { Err(431) } else { Ok(None) };
            };
            self.work += i as u64 + 1;
            let line_end = from + i + 1;
            let line = &data[self.scan.line_start..line_end];
            self.scan.pos = line_end;
            self.scan.line_start = line_end;
            if line_end > max {
                return Err(431);
            }
            let empty = line == b"\n" || line == b"\r\n";
            if !self.scan.request_line {
                if empty {
                    continue;
                }
                self.scan.request_line = true;
                // The request line (after any empty lines) on its own: a
                // valid one leaves httparse waiting for the header fields.
                let head = &data[..line_end];
                self.work += head.len() as u64;
                let mut no_headers = [httparse::EMPTY_HEADER; 0];
                match httparse::Request::new(&mut no_headers).parse(head) {
                    Ok(_) => {}
                    Err(e) => return Err(line_error_status(e, head)),
                }
                continue;
            }
            if empty {
                return Ok(Some(line_end));
            }
            self.scan.fields += 1;
            if self.scan.fields > MAX_HEADERS {
                return Err(431);
            }
            self.work += line.len() as u64;
            let mut one = [httparse::EMPTY_HEADER; 1];
            match httparse::parse_headers(line, &mut one) {
                Ok(_) => {}
                Err(_) => return Err(400),
            }
        }
    }
}

/// The status for a head httparse refused (not for its size).
fn line_error_status(e: httparse::Error, head: &[u8]) -> u16 {
    match e {
        httparse::Error::Version if names_other_version(head) => 505,
        httparse::Error::TooManyHeaders => 431,
        _ => 400,
    }
}

/// A Content-Length value: digits only (a list of equal values is allowed,
/// RFC 9110 8.6); `None` if invalid or too large.
fn content_length(value: &[u8]) -> Option<u64> {
    let mut out: Option<u64> = None;
    for part in value.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v = part.iter().try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;
        if out.is_some_and(|o| o != v) {
            return None;
        }
        out = Some(v);
    }
    out
}

/// Whether a request line whose version httparse refused names an HTTP
/// version at all (`HTTP/2.0`, `HTTP/1.2`, `HTTP/3`): that is a 505; any
/// other garbage is a 400.
fn names_other_version(data: &[u8]) -> bool {
    let line = data
        .split(|&b| b == b'\n')
        .find(|l| !l.trim_ascii().is_empty())
        .unwrap_or(&[]);
    let line = line.trim_ascii();
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let (Some(_method), Some(_target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    version.len() > 5
        && version[..5].eq_ignore_ascii_case(b"HTTP/")
        && version[5].is_ascii_digit()
        && version[5..]
            .iter()
            .all(|&b| b.is_ascii_digit() || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framer() -> Framer {
        Framer::new(Limits {
            max_header: 256,
            max_body: 100,
        })
    }

    /// Feeds `data` in one piece; returns the events and the bytes consumed.
    fn run(f: &mut Framer, data: &[u8]) -> (Vec<String>, usize) {
        let mut used = 0;
        let mut out = Vec::new();
        loop {
            let (n, ev) = f.advance(&data[used..]);
            used += n;
            match ev {
                Event::Partial => break,
                Event::Skipped => out.push("skip".to_string()),
                Event::Request(r) => out.push(format!(
                    "{:?} {} 1.{} keep={} body={}",
                    r.method, r.target, r.minor, r.keep_alive, r.body_len
                )),
                Event::Reject(s) => {
                    out.push(format!("reject {s}"));
                    break;
                }
            }
        }
        (out, used)
    }

    #[test]
    fn simple_get_and_head() {
        let mut f = framer();
        let (ev, used) = run(&mut f, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(ev, ["Get /a 1.1 keep=true body=0"]);
        assert_eq!(used, 28);
        let (ev, _) = run(&mut f, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(ev, ["Head / 1.1 keep=true body=0"]);
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
            assert_eq!(ev, ["Get /x 1.1 keep=true body=0"], "cut {cut}");
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
                "Get /1 1.1 keep=true body=0",
                "Head /2 1.1 keep=true body=0",
                "Get /3 1.1 keep=false body=0"
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
    fn bodies_are_skipped_and_framing_holds() {
        let mut f = framer();
        let mut data =
            b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello=world".to_vec();
        data.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        let (ev, used) = run(&mut f, &data);
        assert_eq!(
            ev,
            [
                "Other /form 1.1 keep=true body=11",
                "skip",
                "Get /next 1.1 keep=true body=0"
            ]
        );
        assert_eq!(used, data.len());
    }

    #[test]
    fn body_split_over_reads() {
        let mut f = framer();
        let (ev, _) = run(
            &mut f,
            b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
        );
        assert_eq!(ev, ["Other / 1.1 keep=true body=10"]);
        assert!(f.in_body());
        let (ev, used) = run(&mut f, b"0123");
        assert_eq!((ev.len(), used), (1, 4));
        let (ev, used) = run(&mut f, b"456789GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(ev, ["skip", "Get / 1.1 keep=true body=0"]);
        assert_eq!(used, 6 + 27);
    }

    #[test]
    fn rejections() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(300));
        let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..MAX_HEADERS {
            many.push_str(&format!("X-{i}: y\r\n"));
        }
        many.push_str("\r\n");
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(), 505),
            (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n".to_vec(), 505),
            (b"GET / HTTP/3\r\n\r\n".to_vec(), 505),
            (b"GET / FOO/1.1\r\n\r\n".to_vec(), 400),
            (b"GET /\r\n\r\n".to_vec(), 400),
            (b"\x00\x01\x02garbage\r\n\r\n".to_vec(), 400),
            (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(), 400),
            (b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400), // no Host
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(),
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n".to_vec(),
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"
                    .to_vec(),
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
                    .to_vec(),
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n".to_vec(),
                413,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
                501,
            ),
            (long.into_bytes(), 431),
            (many.into_bytes(), 431),
            (vec![b'A'; 300], 431),
        ];
        for (req, status) in cases {
            let mut f = framer();
            let (ev, used) = run(&mut f, &req);
            assert_eq!(
                ev,
                [format!("reject {status}")],
                "{:?}",
                String::from_utf8_lossy(&req)
            );
            assert_eq!(used, req.len());
            // Nothing after a rejection is parsed.
            let (ev, _) = run(&mut f, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            assert!(ev.is_empty());
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
        assert_eq!(ev, ["Get / 1.0 keep=false body=0"]);
    }

    #[test]
    fn expect_continue_is_reported() {
        let mut f = framer();
        match f
            .advance(
                b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
            )
            .1
        {
            Event::Request(r) => assert!(r.expect_continue && r.body_len == 3),
            other => panic!("{other:?}"),
        }
    }

    /// Feeds `data` the way the server does: a byte at a time appended to
    /// the unconsumed bytes, which are offered again after each `Partial`.
    fn run_bytewise(f: &mut Framer, data: &[u8]) -> Vec<String> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for &b in data {
            buf.push(b);
            loop {
                let (n, ev) = f.advance(&buf);
                let ev = match ev {
                    Event::Partial => None,
                    Event::Skipped => Some(String::new()),
                    Event::Request(r) => Some(format!("{:?} {}", r.method, r.target)),
                    Event::Reject(s) => Some(format!("reject {s}")),
                };
                buf.drain(..n);
                match ev {
                    None => break,
                    Some(e) if e.is_empty() => {}
                    Some(e) => out.push(e),
                }
            }
        }
        out
    }

    #[test]
    fn one_byte_segments_cost_linear_work() {
        // A 16 KiB head of 60 long fields, one byte per read: every byte is
        // looked at a small constant number of times (it was re-parsed
        // from the start on every read: ~n^2/2 = 134 million bytes).
        let mut head = b"GET /x HTTP/1.1\r\nHost: x\r\n".to_vec();
        let limits = Limits::default();
        for i in 0..60 {
            let field = format!("X-F{i:02}: {}\r\n", "v".repeat(250));
            head.extend_from_slice(field.as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert!(head.len() > 15_000 && head.len() <= limits.max_header);
        let mut f = Framer::new(limits);
        assert_eq!(run_bytewise(&mut f, &head), ["Get /x"]);
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
    fn outcome_does_not_depend_on_how_bytes_arrive() {
        let mut long = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        long.extend_from_slice(&[b'a'; 300]);
        long.extend_from_slice(b"\r\n\r\n");
        let mut bad_then_long = b"GET / HTTP/1.1\r\nBad Header\r\n".to_vec();
        bad_then_long.extend_from_slice(&[b'a'; 300]);
        let cases: Vec<Vec<u8>> = vec![
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            b"\r\n\nGET / HTTP/1.0\n\n".to_vec(),
            b"GET / HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(),
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(),
            b"GE\x00T / HTTP/1.1\r\n".to_vec(),
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            long,
            bad_then_long,
            vec![b'A'; 300],
        ];
        for data in cases {
            let mut f = framer();
            let (mut whole, _) = run(&mut f, &data);
            whole.retain(|e| e != "skip");
            let whole: Vec<String> = whole
                .iter()
                .map(|e| e.split(" 1.").next().unwrap().to_string())
                .collect();
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
        let alphabet = b"GETHEADPOST /\r\n:HTTP/1.01Content-Length: 0123456789abc%\x00\xff";
        for _ in 0..2000 {
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
}
