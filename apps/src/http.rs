//! The HTTP/1.1 service: keep-alive, pipelining, HEAD; a fixed body for now.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stack::engine::{Engine, ListenerId};
use stack::reuseport::BindAddr;
use stack::socket::{ConnError, ConnId};
use stack::worker::App;

use crate::server::WorkerCtx;

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
    /// Reuseport listeners per worker (all on the same port).
    #[arg(long, default_value_t = 1)]
    pub listeners: usize,
}

/// A draining listener is closed after this long even if handshakes are
/// still pending (they migrate to a live member).
pub const DRAIN_LIMIT: Duration = Duration::from_secs(2);

struct Slot {
    id: ListenerId,
    draining_since: Option<Instant>,
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
    /// Listeners replaced (SIGHUP).
    pub listeners_replaced: u64,
}

/// One worker's HTTP service.
pub struct HttpApp {
    slots: Vec<Slot>,
    ctx: WorkerCtx,
    port: u16,
    backlog: usize,
    reload_seen: u64,
    conns: HashMap<ConnId, Conn>,
    body: Vec<u8>,
    idle: Duration,
    counters: HttpCounters,
    buf: Vec<u8>,
}

impl HttpApp {
    /// Open `args.listeners` reuseport listeners on `args.port` on this
    /// worker's engine.
    pub fn new<R: Rings>(
        ctx: &WorkerCtx,
        engine: &mut Engine<R>,
        args: &HttpArgs,
    ) -> Result<Self, String> {
        let mut app = HttpApp {
            slots: Vec::new(),
            ctx: ctx.clone(),
            port: args.port,
            backlog: args.backlog,
            reload_seen: ctx.reload.load(std::sync::atomic::Ordering::Relaxed),
            conns: HashMap::new(),
            body: args.body.as_bytes().to_vec(),
            idle: Duration::from_secs(args.idle_timeout),
            counters: HttpCounters::default(),
            buf: vec![0; 16 * 1024],
        };
        for _ in 0..args.listeners.max(1) {
            let id = app.listen(engine)?;
            app.slots.push(Slot {
                id,
                draining_since: None,
            });
        }
        Ok(app)
    }

    fn listen<R: Rings>(&self, engine: &mut Engine<R>) -> Result<ListenerId, String> {
        let opts = self.ctx.bind.clone().with_backlog(self.backlog);
        let id = engine
            .tcp_listen(BindAddr::Any6 { v6only: false }, self.port, opts)
            .map_err(|e| e.to_string())?;
        let _ = engine
            .shared()
            .registry
            .set_selector(id, self.ctx.selector.clone());
        Ok(id)
    }

    /// SIGHUP: replace every listener one by one: the new one joins the
    /// group, the old one drains (takes no new flows, its queue is still
    /// accepted) and closes once empty.
    fn replace_listeners<R: Rings>(&mut self, engine: &mut Engine<R>, now: Instant) {
        let live: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].draining_since.is_none())
            .collect();
        for i in live {
            match self.listen(engine) {
                Ok(id) => {
                    let old = self.slots[i].id;
                    let _ = engine.drain(old);
                    self.slots[i].draining_since = Some(now);
                    self.slots.push(Slot {
                        id,
                        draining_since: None,
                    });
                    self.counters.listeners_replaced += 1;
                }
                Err(e) => log::warn!("listener replacement refused: {e}"),
            }
        }
    }

    /// Counters as JSON.
    pub fn json(&self) -> Value {
        json!(self.counters)
    }

    fn respond<R: Rings>(&mut self, engine: &Engine<R>, c: &mut Conn) {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            let (status, body_head, head_len, keep, stats) = match req.parse(&c.inbuf) {
                Ok(httparse::Status::Partial) => {
                    if c.inbuf.len() > MAX_HEAD {
                        (431, false, c.inbuf.len(), false, false)
                    } else {
                        return;
                    }
                }
                Err(httparse::Error::TooManyHeaders) => (431, false, c.inbuf.len(), false, false),
                Err(_) => (400, false, c.inbuf.len(), false, false),
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
                    let stats = req.path == Some("/stats");
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
                    (status, head, n, keep, stats)
                }
            };
            if status == 200 && stats {
                let body = serde_json::to_vec_pretty(&engine.shared().report()).unwrap_or_default();
                self.write_raw(c, 200, "application/json", &body, body_head, keep);
            } else {
                self.write_response(c, status, body_head, keep);
            }
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
        let body: Vec<u8> = match status {
            200 => std::mem::take(&mut self.body),
            400 => b"bad request\n".to_vec(),
            405 => b"method not allowed\n".to_vec(),
            413 => b"request bodies are not accepted\n".to_vec(),
            431 => b"request head too large\n".to_vec(),
            _ => b"error\n".to_vec(),
        };
        self.write_raw(c, status, "text/plain", &body, head_only, keep);
        if status == 200 {
            self.body = body;
        }
    }

    fn write_raw(
        &mut self,
        c: &mut Conn,
        status: u16,
        ctype: &str,
        body: &[u8],
        head_only: bool,
        keep: bool,
    ) {
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            405 => "Method Not Allowed",
            413 => "Content Too Large",
            431 => "Request Header Fields Too Large",
            _ => "Internal Server Error",
        };
        use std::io::Write;
        let _ = write!(
            c.out,
            "HTTP/1.1 {status} {reason}\r\nServer: xdpstack\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{}{}\r\n",
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
        let gen = self.ctx.reload.load(std::sync::atomic::Ordering::Relaxed);
        if gen != self.reload_seen {
            self.reload_seen = gen;
            self.replace_listeners(engine, now);
        }
        let mut accepted = Vec::new();
        for slot in &self.slots {
            while let Some(id) = engine.accept(slot.id) {
                accepted.push(id);
            }
        }
        // Drained listeners close once their queue is empty (or after the
        // drain limit: what is left migrates to a live member).
        let mut draining_left = false;
        self.slots.retain(|s| match s.draining_since {
            Some(t) if engine.pending(s.id) == 0 || now.duration_since(t) >= DRAIN_LIMIT => {
                let _ = engine.close_listener(s.id);
                false
            }
            Some(_) => {
                draining_left = true;
                true
            }
            None => true,
        });
        for id in accepted {
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
                    self.respond(engine, &mut c);
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
        if draining_left {
            let soon = now + Duration::from_millis(10);
            next = Some(next.map_or(soon, |n| n.min(soon)));
        }
        next
    }
}
