//! Request framing for one connection: a state machine over the bytes the
//! peer sent, with no I/O. It finds each request head, checks it against
//! RFC 9112 (request line, field syntax, `Host`, `Content-Length` and
//! `Transfer-Encoding`), decides what the head means for the connection
//! (keep-alive, how the body is framed) and hands the body over decoded, in
//! the pieces it arrived in: a `Content-Length` body or a chunked one (chunk
//! extensions checked and dropped, trailer fields checked and dropped).
//!
//! Memory is constant per connection: body bytes are slices of the caller's
//! buffer, chunk framing is decoded one byte at a time by a small state
//! machine, and only an incomplete head is ever kept by the caller (bounded
//! by `max_header`). Work is linear however the bytes are split into reads.
//!
//! Every refusal is an [`Event::Reject`] with the status RFC 9112 names;
//! after it the framer takes nothing more (the caller answers and closes).
//! The rules, with their sections, are the table in docs/HTTP.md.
//!
//! Here the head and the framer; `chunked` the chunked decoder; `syntax`
//! the grammar pieces (character tables, targets, `Host`,
//! `Content-Length`); `tests` a test per rule family.
//!
//! Not httparse: it is lenient where strictness is the point here (bare LF
//! line ends, raw non-ASCII targets, no way to tell a malformed version
//! from an unsupported one, no chunked decoder but a lenient size-line
//! parser), so every rule would have been a second pass over its output.
//! One pass of table lookups per line is about 1.5 to 2 times faster than
//! the two httparse passes it replaces (a wrk GET: 136-182 ns against
//! 266-311 ns, release build, same run).

mod chunked;
mod fields;
mod syntax;
#[cfg(test)]
mod tests;

pub use fields::{Fields, Hdr};

use chunked::Chunk;
use syntax::{content_length, target_form, trim_ows, valid_host, TCHAR, URI, VALUE};

/// Most header fields in one request (431 past it).
pub const MAX_HEADERS: usize = 64;

/// Limits on what a client may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line and header fields), in bytes; also
    /// the bound on a chunked body's extensions and on its trailer section.
    pub max_header: usize,
    /// Largest request body: a longer `Content-Length` is refused (413) before
    /// any of it is read, a chunked body as soon as a chunk size passes it.
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

/// Request methods this server tells apart (RFC 9110 9.3, and PATCH).
/// Method names are case-sensitive: `get` is an unknown method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
    /// CONNECT (its target is the authority form).
    Connect,
    /// OPTIONS (the only method that may use the `*` target).
    Options,
    /// TRACE.
    Trace,
    /// PATCH (RFC 5789).
    Patch,
    /// A syntactically valid method this server does not know (501).
    Unknown,
}

impl Method {
    fn from_token(t: &[u8]) -> Method {
        match t {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"CONNECT" => Method::Connect,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            _ => Method::Unknown,
        }
    }
}

/// Which of the four forms of RFC 9112 3.2 the request target has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `/path?query`.
    Origin,
    /// `http://host/path?query` (or https).
    Absolute,
    /// `host:port`, for CONNECT only.
    Authority,
    /// `*`, for OPTIONS only.
    Asterisk,
}

/// How the request's body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// No body (no framing header, or `Content-Length: 0`).
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
}

/// A complete, valid request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The request target as sent (checked: ASCII, URI characters only).
    pub target: &'a str,
    /// The target's form.
    pub form: Form,
    /// HTTP/1.`minor` (a higher 1.x is taken as 1.1, RFC 9110 2.5).
    pub minor: u8,
    /// Whether the client wants the connection kept open after the response
    /// (HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
    /// `Connection: keep-alive`).
    pub keep_alive: bool,
    /// The body's framing; when not `None`, [`Event::Body`] pieces and one
    /// [`Event::End`] follow.
    pub body: Body,
    /// `Expect: 100-continue` in an HTTP/1.1 request with a body: the client
    /// may wait for `100 Continue` before sending the body (RFC 9110
    /// 10.1.1; ignored in HTTP/1.0, and without a body).
    pub expect_continue: bool,
    /// The request line as sent (without its CRLF; ASCII), for the access
    /// log.
    pub line: &'a str,
    /// The header fields the services read (ranges, preconditions,
    /// `Accept-Encoding`, what the access log records), found while the
    /// head was checked.
    pub fields: Fields<'a>,
}

/// What the next bytes were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Not enough bytes for anything: read more (the bytes reported used,
    /// chunk framing, are consumed all the same).
    Partial,
    /// A request head.
    Request(Request<'a>),
    /// A piece of the current request's body, decoded (never empty).
    Body(&'a [u8]),
    /// The current request's body is complete (after its trailer section).
    End,
    /// The bytes cannot be framed or the request cannot be served: send
    /// this status and close the connection. Everything after it is
    /// ignored.
    Reject(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    /// Bytes of a `Content-Length` body left.
    Length(u64),
    /// The `Content-Length` body is complete: `End` is next.
    LengthEnd,
    Chunked(Chunk),
    Failed,
}

/// The request line, once checked: offsets into the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Line {
    /// The whole line (offsets into the head, without CRLF).
    span: (usize, usize),
    method: Method,
    target: (usize, usize),
    form: Form,
    minor: u8,
}

/// `Transfer-Encoding` seen so far (all its field lines, in order, are one
/// list).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Te {
    seen: bool,
    chunked: bool,
    /// A coding after `chunked` (chunked not last, or applied twice).
    after_chunked: bool,
    /// A coding other than chunked (not understood: 501).
    other: bool,
    /// An element that is not a token (400).
    bad: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Expect {
    #[default]
    None,
    Continue,
    Other,
}

/// How far the current (partial) head has been looked at, and what its
/// lines said, so that the next call resumes there instead of parsing the
/// whole head again: a head sent one byte per segment costs linear work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Scan {
    /// Bytes of the head searched for a line end.
    pos: usize,
    /// Start of the line not finished yet.
    line_start: usize,
    /// The request line, once seen (empty lines before it are skipped).
    line: Option<Line>,
    /// Header lines seen.
    fields: usize,
    hosts: u8,
    close: bool,
    keep_alive: bool,
    length: Option<u64>,
    te: Te,
    expect: Expect,
    /// Where the fields of [`Hdr`] are.
    spans: fields::Spans,
}

/// The framing state of one connection.
#[derive(Clone, Debug)]
pub struct Framer {
    state: State,
    limits: Limits,
    scan: Scan,
    /// Bytes looked at so far (line search and checks), for tests.
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
    /// searched once for its line end and checked once, however it was
    /// split into reads.
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

    /// Reading a request body.
    pub fn in_body(&self) -> bool {
        matches!(
            self.state,
            State::Length(_) | State::LengthEnd | State::Chunked(_)
        )
    }

    /// Looks at `data`, the bytes not consumed yet. Returns how many of them
    /// were consumed and what they were. Call again with the rest until it
    /// says [`Event::Partial`]; never panics, whatever the bytes.
    pub fn advance<'a>(&mut self, data: &'a [u8]) -> (usize, Event<'a>) {
        let (n, ev) = match self.state {
            State::Failed => return (data.len(), Event::Partial),
            State::Length(left) => {
                let n = (data.len() as u64).min(left);
                if n == 0 {
                    return (0, Event::Partial);
                }
                self.state = if left == n {
                    State::LengthEnd
                } else {
                    State::Length(left - n)
                };
                (n as usize, Event::Body(&data[..n as usize]))
            }
            State::LengthEnd => {
                self.state = State::Head;
                (0, Event::End)
            }
            State::Chunked(mut c) => {
                let out = c.decode(data, &self.limits, &mut self.work);
                self.state = match out.1 {
                    Event::End => State::Head,
                    _ => State::Chunked(c),
                };
                out
            }
            State::Head => self.head(data),
        };
        if let Event::Reject(_) = ev {
            self.state = State::Failed;
            return (data.len(), ev);
        }
        (n, ev)
    }

    /// `data` starts at the head; bytes before `self.scan.pos` were looked
    /// at by an earlier call (the caller passes the same head again, with
    /// more bytes after it). Each line is checked once when its line end
    /// arrives (a malformed line is refused at once); what the head means is
    /// decided when the empty line that ends it arrives. The outcome depends
    /// only on the bytes, never on how they were split into reads.
    fn head<'a>(&mut self, data: &'a [u8]) -> (usize, Event<'a>) {
        let end = match self.find_head_end(data) {
            Ok(Some(end)) => end,
            Ok(None) => return (0, Event::Partial),
            Err(status) => return (0, Event::Reject(status)),
        };
        let scan = std::mem::take(&mut self.scan);
        let Some(line) = scan.line else {
            return (0, Event::Reject(400));
        };
        let body = match self.framing(&scan, &line) {
            Ok(b) => b,
            Err(status) => return (0, Event::Reject(status)),
        };
        // Checked to be ASCII by `request_line`.
        let target = std::str::from_utf8(&data[line.target.0..line.target.1]).unwrap_or("");
        let keep_alive = !scan.close && (line.minor >= 1 || scan.keep_alive);
        let request_line = std::str::from_utf8(&data[line.span.0..line.span.1]).unwrap_or("");
        self.state = match body {
            Body::None => State::Head,
            Body::Length(n) => State::Length(n),
            Body::Chunked => State::Chunked(Chunk::new()),
        };
        (
            end,
            Event::Request(Request {
                method: line.method,
                target,
                form: line.form,
                minor: line.minor,
                keep_alive,
                body,
                expect_continue: scan.expect == Expect::Continue
                    && line.minor >= 1
                    && body != Body::None,
                line: request_line,
                fields: Fields::new(&data[..end], scan.spans),
            }),
        )
    }

    /// What the complete head's fields say about its body, or the status
    /// refusing it.
    fn framing(&self, scan: &Scan, line: &Line) -> Result<Body, u16> {
        // RFC 9112 3.2: a 1.1 request without Host is a 400 (more than one
        // was refused at the second).
        if line.minor >= 1 && scan.hosts == 0 {
            return Err(400);
        }
        let te = scan.te;
        let body = if te.seen {
            // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty
            // framing; with Content-Length too, it may be an attempt at
            // smuggling (refused, and the connection closes); 6.3: chunked
            // not last (or applied twice) leaves the length unknown: 400.
            if line.minor == 0 || scan.length.is_some() {
                return Err(400);
            }
            if te.bad || !te.chunked || te.after_chunked {
                return Err(400);
            }
            // 6.1: a transfer coding the server does not understand.
            if te.other {
                return Err(501);
            }
            Body::Chunked
        } else {
            match scan.length.unwrap_or(0) {
                0 => Body::None,
                n if n > self.limits.max_body => return Err(413),
                n => Body::Length(n),
            }
        };
        // RFC 9110 10.1.1: an expectation other than 100-continue MAY be
        // refused with 417 (a 1.0 request's expectations are ignored).
        if line.minor >= 1 && scan.expect == Expect::Other {
            return Err(417);
        }
        Ok(body)
    }

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
            let line_start = self.scan.line_start;
            let Some(i) = data[from..].iter().position(|&b| b == b'\n') else {
                self.work += (data.len() - from) as u64;
                self.scan.pos = data.len();
                return if data.len() > max {
                    Err(self.too_long(&data[line_start.min(max)..max]))
                } else {
                    Ok(None)
                };
            };
            self.work += i as u64 + 1;
            let line_end = from + i + 1;
            self.scan.pos = line_end;
            self.scan.line_start = line_end;
            if line_end > max {
                return Err(self.too_long(&data[line_start.min(max)..max]));
            }
            // RFC 9112 2.2: lines end with CRLF. A bare LF is only a MAY, and
            // a recipient reading LF where another reads CRLF is how requests
            // are smuggled past a proxy: refused. A bare CR elsewhere is
            // refused by the checks of each part.
            let Some(content) = data[line_start..line_end].strip_suffix(b"\r\n") else {
                return Err(400);
            };
            self.work += content.len() as u64;
            if self.scan.line.is_none() {
                // RFC 9112 2.2: empty lines before the request line are
                // ignored.
                if !content.is_empty() {
                    self.scan.line = Some(request_line(content, line_start)?);
                }
                continue;
            }
            if content.is_empty() {
                return Ok(Some(line_end));
            }
            self.scan.fields += 1;
            if self.scan.fields > MAX_HEADERS {
                return Err(431);
            }
            self.field(content, line_start)?;
        }
    }

    /// The status for a line that runs past `max_header`; `seen` is what
    /// fits of it. A request line: a method longer than any this server
    /// implements is a 501 (RFC 9112 3), a target longer than it parses a
    /// 414; bad syntax in what was seen is a 400. A field line: 431.
    fn too_long(&self, seen: &[u8]) -> u16 {
        if self.scan.line.is_some() {
            return 431;
        }
        let Some(sp) = seen.iter().position(|&b| b == b' ') else {
            return if seen.iter().all(|&b| TCHAR[b as usize]) {
                501
            } else {
                400
            };
        };
        if sp == 0 || !seen[..sp].iter().all(|&b| TCHAR[b as usize]) {
            return 400;
        }
        let target = &seen[sp + 1..];
        match target.iter().position(|&b| b == b' ') {
            None if target.iter().all(|&b| URI[b as usize]) => 414,
            _ => 400,
        }
    }

    /// One header field line (without its CRLF) starting at `at` in the
    /// head: RFC 9112 5, RFC 9110 5.5.
    fn field(&mut self, line: &[u8], at: usize) -> Result<(), u16> {
        // field-name ":" OWS field-value OWS. A line starting with
        // whitespace (obs-fold, or whitespace before the first field) has
        // an empty name; whitespace between name and colon is refused
        // (RFC 9112 5.1: MUST reject with 400).
        let colon = line
            .iter()
            .position(|&b| !TCHAR[b as usize])
            .unwrap_or(line.len());
        if colon == 0 || line.get(colon) != Some(&b':') {
            return Err(400);
        }
        let name = &line[..colon];
        let value = trim_ows(&line[colon + 1..]);
        // field-vchar, SP and HTAB only: no CR, LF, NUL or other controls
        // (RFC 9110 5.5: MUST reject or replace CR, LF, NUL).
        if !value.iter().all(|&b| VALUE[b as usize]) {
            return Err(400);
        }
        let s = &mut self.scan;
        if let Some(h) = Hdr::from_name(name) {
            // Where the value sits in the head: after the colon and the
            // whitespace `trim_ows` dropped.
            let raw = &line[colon + 1..];
            let lead = raw.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
            let start = at + colon + 1 + lead;
            s.spans.note(h, start, start + value.len());
            return Ok(());
        }
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                // RFC 9112 3.2: more than one Host, or an invalid one: 400.
                s.hosts = s.hosts.saturating_add(1);
                if s.hosts > 1 || !valid_host(value, false) {
                    return Err(400);
                }
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                s.expect =
                    if value.eq_ignore_ascii_case(b"100-continue") && s.expect != Expect::Other {
                        Expect::Continue
                    } else {
                        Expect::Other
                    };
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in value.split(|&b| b == b',') {
                    let token = trim_ows(token);
                    if token.eq_ignore_ascii_case(b"close") {
                        s.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        s.keep_alive = true;
                    }
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                // RFC 9112 6.3: an invalid Content-Length, or several that
                // differ, is unrecoverable: 400 and close.
                let len = content_length(value).ok_or(400u16)?;
                if s.length.is_some_and(|l| l != len) {
                    return Err(400);
                }
                s.length = Some(len);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                s.te.seen = true;
                for coding in value.split(|&b| b == b',') {
                    let coding = trim_ows(coding);
                    if coding.is_empty() {
                        // Empty list elements are ignored (RFC 9110 5.6.1).
                        continue;
                    }
                    if s.te.chunked {
                        s.te.after_chunked = true;
                    }
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        s.te.chunked = true;
                    } else if coding.iter().all(|&b| TCHAR[b as usize]) {
                        s.te.other = true;
                    } else {
                        // Parameters, quotes, stray bytes: not a coding
                        // this server can name, and no safe reading.
                        s.te.bad = true;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// `method SP request-target SP HTTP-version` (RFC 9112 3), without its
/// CRLF; `at` is where the line starts in the head. Exactly one SP between
/// the parts; the version is `HTTP/` DIGIT `.` DIGIT, case-sensitive
/// (2.3): anything else is a 400, a well-formed version other than 1.x a
/// 505.
fn request_line(line: &[u8], at: usize) -> Result<Line, u16> {
    let sp1 = line.iter().position(|&b| b == b' ').ok_or(400u16)?;
    let method = &line[..sp1];
    if method.is_empty() || !method.iter().all(|&b| TCHAR[b as usize]) {
        return Err(400);
    }
    let rest = &line[sp1 + 1..];
    let sp2 = rest.iter().position(|&b| b == b' ').ok_or(400u16)?;
    let target = &rest[..sp2];
    let v = &rest[sp2 + 1..];
    if v.len() != 8 || &v[..5] != b"HTTP/" || !v[5].is_ascii_digit() || v[6] != b'.' {
        return Err(400);
    }
    if !v[7].is_ascii_digit() {
        return Err(400);
    }
    let method = Method::from_token(method);
    let form = target_form(method, target).ok_or(400u16)?;
    if v[5] != b'1' {
        return Err(505);
    }
    let start = at + sp1 + 1;
    Ok(Line {
        span: (at, at + line.len()),
        method,
        target: (start, start + target.len()),
        form,
        // RFC 9110 2.5: a higher minor version of a major version we speak
        // is processed as the highest we speak.
        minor: (v[7] - b'0').min(1),
    })
}
