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
//! Not httparse: it is lenient where strictness is the point here (bare LF
//! line ends, raw non-ASCII targets, no way to tell a malformed version
//! from an unsupported one, no chunked decoder but a lenient size-line
//! parser), so every rule would have been a second pass over its output.
//! One pass of table lookups per line is about 1.5 to 2 times faster than
//! the two httparse passes it replaces (a wrk GET: 136-182 ns against
//! 266-311 ns, release build, same run).

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

/// Where the chunked decoder is (RFC 9112 7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ck {
    /// In `chunk-size`; `digits` seen yet.
    Size {
        digits: bool,
    },
    /// `BWS` after the size or an extension: only `;` may follow.
    Ws,
    /// After `;`, before the extension's name.
    ExtName0,
    /// In an extension name.
    ExtName,
    /// `BWS` after an extension name: `=` or `;` may follow.
    ExtNameWs,
    /// After `=`, before the value.
    ExtVal0,
    /// In a token value.
    ExtToken,
    /// In a quoted-string value.
    ExtQuoted,
    /// After a backslash in a quoted string.
    ExtQuotedPair,
    /// After the closing quote.
    ExtAfter,
    /// CR of the size line seen: LF next.
    SizeLf,
    /// Bytes of chunk data left.
    Data(u64),
    /// CRLF after chunk data.
    DataCr,
    DataLf,
    /// At the start of a trailer field line (or of the final CRLF).
    Trailer,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// CR of the final empty line seen: LF next.
    EndLf,
    /// The body is complete: `End` is next.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Chunk {
    ck: Ck,
    /// The size being read.
    size: u64,
    /// Decoded bytes so far (against `max_body`).
    total: u64,
    /// Extension bytes so far (against `max_header`).
    ext: usize,
    /// Trailer bytes so far (against `max_header`).
    trailer: usize,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            ck: Ck::Size { digits: false },
            size: 0,
            total: 0,
            ext: 0,
            trailer: 0,
        }
    }
}

/// The request line, once checked: offsets into the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Line {
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
                let out = self.chunked(&mut c, data);
                if self.state != State::Head {
                    self.state = State::Chunked(c);
                }
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
            self.field(content)?;
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

    /// One header field line (without its CRLF): RFC 9112 5, RFC 9110 5.5.
    fn field(&mut self, line: &[u8]) -> Result<(), u16> {
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

    /// Decodes chunked framing from `data` until a piece of data, the end
    /// of the body, a refusal or the end of `data` (RFC 9112 7.1).
    fn chunked<'a>(&mut self, c: &mut Chunk, data: &'a [u8]) -> (usize, Event<'a>) {
        let max_header = self.limits.max_header;
        let mut i = 0;
        loop {
            match c.ck {
                Ck::Data(left) => {
                    let n = ((data.len() - i) as u64).min(left);
                    if n == 0 {
                        return (i, Event::Partial);
                    }
                    c.ck = if n == left {
                        Ck::DataCr
                    } else {
                        Ck::Data(left - n)
                    };
                    let n = n as usize;
                    return (i + n, Event::Body(&data[i..i + n]));
                }
                Ck::Done => {
                    self.state = State::Head;
                    return (i, Event::End);
                }
                _ => {}
            }
            let Some(&b) = data.get(i) else {
                return (i, Event::Partial);
            };
            i += 1;
            self.work += 1;
            let ws = b == b' ' || b == b'\t';
            let t = TCHAR[b as usize];
            c.ck = match c.ck {
                Ck::Size { digits } => match hex(b) {
                    Some(d) => {
                        // RFC 9112 7.1: large numerals must not overflow.
                        let Some(s) = c.size.checked_mul(16).and_then(|s| s.checked_add(d)) else {
                            return (i, Event::Reject(400));
                        };
                        c.size = s;
                        Ck::Size { digits: true }
                    }
                    None if !digits => return (i, Event::Reject(400)),
                    None if ws => Ck::Ws,
                    None if b == b';' => Ck::ExtName0,
                    None if b == b'\r' => Ck::SizeLf,
                    None => return (i, Event::Reject(400)),
                },
                // chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ):
                // whitespace only before a `;`, a `=` or a value.
                Ck::Ws if ws => Ck::Ws,
                Ck::Ws if b == b';' => Ck::ExtName0,
                Ck::ExtName0 if ws => Ck::ExtName0,
                Ck::ExtName0 if t => Ck::ExtName,
                Ck::ExtName if t => Ck::ExtName,
                Ck::ExtName if ws => Ck::ExtNameWs,
                Ck::ExtName | Ck::ExtNameWs if b == b'=' => Ck::ExtVal0,
                Ck::ExtNameWs if ws => Ck::ExtNameWs,
                Ck::ExtVal0 if ws => Ck::ExtVal0,
                Ck::ExtVal0 if t => Ck::ExtToken,
                Ck::ExtVal0 if b == b'"' => Ck::ExtQuoted,
                Ck::ExtToken if t => Ck::ExtToken,
                Ck::ExtQuoted if b == b'"' => Ck::ExtAfter,
                Ck::ExtQuoted if b == b'\\' => Ck::ExtQuotedPair,
                Ck::ExtQuoted if VALUE[b as usize] => Ck::ExtQuoted,
                Ck::ExtQuotedPair if VALUE[b as usize] => Ck::ExtQuoted,
                Ck::ExtName | Ck::ExtNameWs | Ck::ExtToken | Ck::ExtAfter if b == b';' => {
                    Ck::ExtName0
                }
                Ck::ExtToken | Ck::ExtAfter if ws => Ck::Ws,
                Ck::ExtName | Ck::ExtToken | Ck::ExtAfter if b == b'\r' => Ck::SizeLf,
                Ck::SizeLf if b == b'\n' => {
                    let size = std::mem::take(&mut c.size);
                    if size == 0 {
                        Ck::Trailer
                    } else {
                        c.total = c.total.saturating_add(size);
                        if c.total > self.limits.max_body {
                            return (i, Event::Reject(413));
                        }
                        Ck::Data(size)
                    }
                }
                Ck::DataCr if b == b'\r' => Ck::DataLf,
                Ck::DataLf if b == b'\n' => Ck::Size { digits: false },
                // Trailer fields: checked like header fields, then dropped
                // (RFC 9110 6.5.1 lets a recipient discard them).
                Ck::Trailer if b == b'\r' => Ck::EndLf,
                Ck::Trailer | Ck::TrailerName if t => Ck::TrailerName,
                Ck::TrailerName if b == b':' => Ck::TrailerValue,
                Ck::TrailerValue if VALUE[b as usize] => Ck::TrailerValue,
                Ck::TrailerValue if b == b'\r' => Ck::TrailerLf,
                Ck::TrailerLf if b == b'\n' => Ck::Trailer,
                Ck::EndLf if b == b'\n' => Ck::Done,
                _ => return (i, Event::Reject(400)),
            };
            match c.ck {
                Ck::Ws
                | Ck::ExtName0
                | Ck::ExtName
                | Ck::ExtNameWs
                | Ck::ExtVal0
                | Ck::ExtToken
                | Ck::ExtQuoted
                | Ck::ExtQuotedPair
                | Ck::ExtAfter => {
                    // RFC 9112 7.1.1: limit extensions like the head.
                    c.ext += 1;
                    if c.ext > max_header {
                        return (i, Event::Reject(400));
                    }
                }
                Ck::Trailer
                | Ck::TrailerName
                | Ck::TrailerValue
                | Ck::TrailerLf
                | Ck::EndLf
                | Ck::Done => {
                    c.trailer += 1;
                    if c.trailer > max_header {
                        return (i, Event::Reject(431));
                    }
                }
                _ => {}
            }
        }
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
        method,
        target: (start, start + target.len()),
        form,
        // RFC 9110 2.5: a higher minor version of a major version we speak
        // is processed as the highest we speak.
        minor: (v[7] - b'0').min(1),
    })
}

/// The form of a request target, if valid for `method` (RFC 9112 3.2):
/// only URI characters (RFC 3986: no space, controls, non-ASCII bytes, `#`,
/// `"<>\^`{|}`), `%` followed by two hex digits.
fn target_form(method: Method, t: &[u8]) -> Option<Form> {
    if t == b"*" {
        return (method == Method::Options).then_some(Form::Asterisk);
    }
    if method == Method::Connect {
        return valid_host(t, true).then_some(Form::Authority);
    }
    if t.first() == Some(&b'/') {
        return valid_path_query(t).then_some(Form::Origin);
    }
    let rest = strip_prefix_ci(t, b"http://").or_else(|| strip_prefix_ci(t, b"https://"))?;
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    // RFC 9110 4.2.1 (no empty host), 4.2.4 (no userinfo).
    (valid_host(&rest[..end], false) && valid_path_query(&rest[end..])).then_some(Form::Absolute)
}

fn strip_prefix_ci<'a>(t: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = t.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &t[prefix.len()..])
}

/// Path and query characters, with valid percent-encoding.
fn valid_path_query(s: &[u8]) -> bool {
    s.iter().all(|&b| URI[b as usize]) && valid_escapes(s)
}

fn valid_escapes(s: &[u8]) -> bool {
    let mut i = 0;
    while let Some(p) = s[i..].iter().position(|&b| b == b'%') {
        let at = i + p;
        if s.len() < at + 3 || hex(s[at + 1]).is_none() || hex(s[at + 2]).is_none() {
            return false;
        }
        i = at + 3;
    }
    true
}

/// `uri-host [ ":" port ]` (RFC 9110 7.2, RFC 3986 3.2.2): an IP literal in
/// brackets, or a non-empty reg-name / IPv4 address; the port digits only
/// (`need_port`: present, as CONNECT's authority form needs). No userinfo,
/// path or whitespace; no comma either, which is what two Host values
/// combined into one look like (`a, b`) and no DNS name holds.
fn valid_host(v: &[u8], need_port: bool) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(close) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &v[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.' || REG_NAME[b as usize])
        {
            return false;
        }
        match &v[close + 1..] {
            [] => (&v[..close + 1], None),
            [b':', port @ ..] => (&v[..close + 1], Some(port)),
            _ => return false,
        }
    } else {
        match v.iter().position(|&b| b == b':') {
            Some(c) => (&v[..c], Some(&v[c + 1..])),
            None => (v, None),
        }
    };
    if host.is_empty() {
        return false;
    }
    if host[0] != b'[' && !(host.iter().all(|&b| REG_NAME[b as usize]) && valid_escapes(host)) {
        return false;
    }
    match port {
        Some(p) => p.iter().all(u8::is_ascii_digit) && !(need_port && p.is_empty()),
        None => !need_port,
    }
}

/// A Content-Length value: `1*DIGIT` (RFC 9110 8.6), a list of equal values
/// allowed; `None` if invalid or too large. Leading zeros are refused: no
/// client sends them, and a peer reading them as octal is a smuggling
/// vector.
fn content_length(value: &[u8]) -> Option<u64> {
    let mut out: Option<u64> = None;
    for part in value.split(|&b| b == b',') {
        let part = trim_ows(part);
        if part.is_empty()
            || part.len() > 19
            || (part.len() > 1 && part[0] == b'0')
            || !part.iter().all(u8::is_ascii_digit)
        {
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

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn hex(c: u8) -> Option<u64> {
    match c {
        b'0'..=b'9' => Some(u64::from(c - b'0')),
        b'a'..=b'f' => Some(u64::from(c - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(c - b'A' + 10)),
        _ => None,
    }
}

/// `tchar` (RFC 9110 5.6.2): method names, field names, codings.
const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
};

/// Field value bytes (RFC 9110 5.5): VCHAR, obs-text, SP, HTAB.
const VALUE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i == 0x09 || (i >= 0x20 && i != 0x7f);
        i += 1;
    }
    t
};

/// unreserved / sub-delims (RFC 3986 2.2, 2.3) and `%`, less `,`.
const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b';'
                    | b'='
            );
        i += 1;
    }
    t
};

/// Path and query bytes: pchar, `/` and `?` (RFC 3986 3.3, 3.4).
const URI: [bool; 256] = {
    let mut t = REG_NAME;
    t[b',' as usize] = true;
    t[b':' as usize] = true;
    t[b'@' as usize] = true;
    t[b'/' as usize] = true;
    t[b'?' as usize] = true;
    t
};

#[cfg(test)]
mod tests {
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
        let mut data =
            b"PUT /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
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
}
