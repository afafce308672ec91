//! The HTTP/1.1 service: keep-alive, pipelining, HEAD; a fixed body for now.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stack::engine::Engine;
use stack::socket::{ConnError, ConnId, ListenerId};
use stack::worker::App;

use nic::Rings;

/// Largest request head accepted (status 431 past it).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 64;

/// `xdpstack http` options.
#[derive(clap::Args, Clone, Debug)]
pub struct HttpArgs {
    /// TCP port.
    #[arg(long, default_value_t = 80)]
    pub port: u16,
    /// Accept queue per worker.
    #[arg(long, default_value_t = 1024)]
    pub backlog: usize,
    /// Body of every 200 response.
    #[arg(long, default_value = "hello from xdpstack\n")]
    pub body: String,
    /// Close connections idle this many seconds.
    #[arg(long, default_value_t = 30)]
    pub idle_timeout: u64,
}

struct Conn {
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_off: usize,
    close_after: bool,
    last: Instant,
}

/// Counters of one worker's HTTP service.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HttpCounters {
    /// Requests answered.
    pub requests: u64,
    /// Connections accepted.
    pub connections: u64,
    /// Responses by status code class.
    pub status_2xx: u64,
    /// 4xx responses.
    pub status_4xx: u64,
    /// 5xx responses.
    pub status_5xx: u64,
    /// Connections closed for idleness.
    pub idle_closed: u64,
}

/// One worker's HTTP service.
pub struct HttpApp {
    listener: ListenerId,
    conns: HashMap<ConnId, Conn>,
    body: Vec<u8>,
    idle: Duration,
    counters: HttpCounters,
    buf: Vec<u8>,
}

impl HttpApp {
    /// Listen on `args.port` on this worker's engine.
    pub fn new<R: Rings>(engine: &mut Engine<R>, args: &HttpArgs) -> Result<Self, String> {
        let listener = engine
            .tcp_listen(args.port, args.backlog)
            .map_err(|e| e.to_string())?;
        Ok(HttpApp {
            listener,
            conns: HashMap::new(),
            body: args.body.as_bytes().to_vec(),
            idle: Duration::from_secs(args.idle_timeout),
            counters: HttpCounters::default(),
            buf: vec![0; 16 * 1024],
        })
    }

    /// Counters as JSON.
    pub fn json(&self) -> Value {
        json!(self.counters)
    }

    fn respond(&mut self, c: &mut Conn) {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            let (status, body_head, head_len, keep) = match req.parse(&c.inbuf) {
                Ok(httparse::Status::Partial) => {
                    if c.inbuf.len() > MAX_HEAD {
                        (431, false, c.inbuf.len(), false)
                    } else {
                        return;
                    }
                }
                Err(httparse::Error::TooManyHeaders) => (431, false, c.inbuf.len(), false),
                Err(_) => (400, false, c.inbuf.len(), false),
                Ok(httparse::Status::Complete(n)) => {
                    let v11 = req.version == Some(1);
                    let mut keep = v11;
                    let mut has_body = false;
                    for h in req.headers.iter() {
                        if h.name.eq_ignore_ascii_case("connection") {
                            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                            if v.contains("close") {
                                keep = false;
                            } else if v.contains("keep-alive") {
                                keep = true;
                            }
                        }
                        if h.name.eq_ignore_ascii_case("content-length")
                            || h.name.eq_ignore_ascii_case("transfer-encoding")
                        {
                            has_body = h.value != b"0";
                        }
                    }
                    let method = req.method.unwrap_or("");
                    let head = method == "HEAD";
                    let status = if has_body {
                        // Request bodies are not supported by the fixed-body
                        // server: refuse and close rather than mis-frame.
                        keep = false;
                        413
                    } else if method == "GET" || head {
                        200
                    } else {
                        405
                    };
                    (status, head, n, keep)
                }
            };
            self.write_response(c, status, body_head, keep);
            c.inbuf.drain(..head_len.min(c.inbuf.len()));
            if !keep {
                c.close_after = true;
                c.inbuf.clear();
                return;
            }
            if c.inbuf.is_empty() {
                return;
            }
        }
    }

    fn write_response(&mut self, c: &mut Conn, status: u16, head_only: bool, keep: bool) {
        let (reason, body): (&str, &[u8]) = match status {
            200 => ("OK", &self.body),
            400 => ("Bad Request", b"bad request\n"),
            405 => ("Method Not Allowed", b"method not allowed\n"),
            413 => ("Content Too Large", b"request bodies are not accepted\n"),
            431 => (
                "Request Header Fields Too Large",
                b"request head too large\n",
            ),
            _ => ("Internal Server Error", b"error\n"),
        };
        use std::io::Write;
        let _ = write!(
            c.out,
            "HTTP/1.1 {status} {reason}\r\nServer: xdpstack\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}{}\r\n",
            body.len(),
            if keep { "" } else { "Connection: close\r\n" },
            if status == 405 { "Allow: GET, HEAD\r\n" } else { "" },
        );
        if !head_only {
            c.out.extend_from_slice(body);
        }
        self.counters.requests += 1;
        match status {
            200..=299 => self.counters.status_2xx += 1,
            400..=499 => self.counters.status_4xx += 1,
            _ => self.counters.status_5xx += 1,
        }
    }
}

impl<R: Rings> App<R> for HttpApp {
    fn poll(&mut self, engine: &mut Engine<R>, now: Instant) -> Option<Instant> {
        while let Some(id) = engine.accept(self.listener) {
            self.counters.connections += 1;
            self.conns.insert(
                id,
                Conn {
                    inbuf: Vec::new(),
                    out: Vec::new(),
                    out_off: 0,
                    close_after: false,
                    last: now,
                },
            );
        }
        let mut done = Vec::new();
        let mut next: Option<Instant> = None;
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(mut c) = self.conns.remove(&id) else {
                continue;
            };
            let mut peer_closed = false;
            if !c.close_after {
                loop {
                    match engine.recv(id, &mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            c.inbuf.extend_from_slice(&self.buf[..n]);
                            c.last = now;
                            if c.inbuf.len() > MAX_HEAD + self.buf.len() {
                                break;
                            }
                        }
                        Err(ConnError::Closed) => {
                            peer_closed = true;
                            break;
                        }
                        Err(ConnError::NotFound) => {
                            peer_closed = true;
                            c.close_after = true;
                            break;
                        }
                    }
                }
                if !c.inbuf.is_empty() {
                    self.respond(&mut c);
                }
            }
            while c.out_off < c.out.len() {
                match engine.send(id, &c.out[c.out_off..]) {
                    Ok(0) => break,
                    Ok(n) => {
                        c.out_off += n;
                        c.last = now;
                    }
                    Err(_) => {
                        c.out.clear();
                        c.out_off = 0;
                        c.close_after = true;
                        break;
                    }
                }
            }
            if c.out_off == c.out.len() {
                c.out.clear();
                c.out_off = 0;
            }
            let idle = now.duration_since(c.last) >= self.idle;
            if idle {
                self.counters.idle_closed += 1;
            }
            if (c.close_after || peer_closed) && c.out.is_empty() || idle {
                engine.close(id);
                done.push(id);
                continue;
            }
            let deadline = c.last + self.idle;
            next = Some(next.map_or(deadline, |n| n.min(deadline)));
            self.conns.insert(id, c);
        }
        drop(done);
        next
    }
}
