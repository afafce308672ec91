//! HTTPS: rustls on the worker's own event loop.
//!
//! Each TLS connection holds a rustls [`ServerConnection`] fed from the
//! engine's receive buffer and draining into its send buffer (in-memory
//! `read_tls`/`write_tls`, no thread, no blocking). [`Io`] wraps the
//! worker's socket API for one connection so that the HTTP service reads
//! and writes plaintext exactly as on a plain connection; [`Layer`] keeps
//! the per-connection TLS state of a worker, the connections that ran out
//! of their turn's budget, and those still sending their last records after
//! the service closed them.
//!
//! Bounded work per turn: one handshake flight, or [`READS_PER_TURN`] reads
//! of records, per connection and poll; a connection with more waiting is
//! visited again on the next poll, after everyone else.
//!
//! Parts: `config` (certificates, SNI, resumption, reload), `redirect`
//! (`--redirect-https`).

pub mod config;
pub mod redirect;
#[cfg(test)]
mod tests;

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::server::ServerConnection;
use rustls::{HandshakeKind, ProtocolVersion};
use stack::engine::ListenerId;
use stack::reuseport::{BindAddr, BindOptions, MemberId};
use stack::socket::{ConnError, ConnId, ConnSlab, TcpApi};

pub use config::{TlsError, TlsShared};

/// Record reads (of up to 4 KiB each, rustls's read size) per connection
/// and poll once the handshake is done.
pub const READS_PER_TURN: usize = 16;

/// Handshake flights per worker and poll: the connections past it wait for
/// the next poll (a burst of ClientHellos, each a signature and a key
/// agreement, about 0.1 ms with P-256, leaves room for the others).
pub const HANDSHAKES_PER_POLL: usize = 32;

/// Ciphertext rustls may hold for a connection beyond what the socket
/// took: the plaintext it accepts waits until this much has gone.
const TLS_BUFFER: usize = 32 * 1024;

/// `xdpstack http` HTTPS options.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsArgs {
    /// PEM certificate chain (leaf first) for HTTPS; repeat it with
    /// --tls-key for several certificates, chosen by the client's SNI (the
    /// first pair without SNI or for a name none has).
    #[arg(long = "tls-cert", value_name = "FILE")]
    pub certs: Vec<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the --tls-cert given at
    /// the same position.
    #[arg(long = "tls-key", value_name = "FILE")]
    pub keys: Vec<PathBuf>,
    /// HTTPS port (with --tls-cert).
    #[arg(long, default_value_t = 443)]
    pub tls_port: u16,
    /// TLS 1.2 sessions kept for resumption by session id, per process
    /// (TLS 1.3 resumes with tickets, encrypted with keys rotated every 6
    /// hours).
    #[arg(long, default_value_t = 20_000)]
    pub tls_session_cache: usize,
    /// Answer every request on the plain port with 301 to the same URL on
    /// https (needs --tls-cert).
    #[arg(long)]
    pub redirect_https: bool,
    /// Send `Strict-Transport-Security: max-age=SECONDS` with HTTPS
    /// responses (0: not sent). Browsers then use https only for the host
    /// for that long: set it once HTTPS works for good.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub hsts: u64,
    /// What was loaded from the files (set by [`load`], before any queue is
    /// opened).
    #[arg(skip)]
    pub shared: Option<Arc<TlsShared>>,
}

/// Reads the certificates named by `args` into `args.shared` (nothing when
/// no `--tls-cert` is given): a refused start's one-line error.
pub fn load(args: &mut TlsArgs) -> Result<(), TlsError> {
    if args.certs.is_empty() && args.keys.is_empty() {
        if args.redirect_https {
            return Err(TlsError::Config(
                "--redirect-https needs --tls-cert and --tls-key".into(),
            ));
        }
        return Ok(());
    }
    args.shared = Some(TlsShared::load(
        &args.certs,
        &args.keys,
        args.tls_session_cache,
    )?);
    Ok(())
}

/// What one worker's HTTPS counts.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TlsCounters {
    /// Connections accepted on the HTTPS port.
    pub connections: u64,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Of them, resumed (ticket or session id).
    pub resumed: u64,
    /// Of them, TLS 1.3.
    pub tls13: u64,
    /// Of them, TLS 1.2.
    pub tls12: u64,
    /// Connections that ended before their handshake completed (a TLS
    /// error, the peer closing, a timeout).
    pub handshakes_failed: u64,
    /// Fatal alerts sent (a TLS error on our side of the connection).
    pub alerts_sent: u64,
    /// Fatal alerts received from clients.
    pub alerts_received: u64,
    /// Polls at which a connection had more to read than its turn's budget
    /// (visited again at the next one).
    pub budget_exhausted: u64,
    /// Handshake flights left for the next poll ([`HANDSHAKES_PER_POLL`]
    /// were processed in this one).
    pub handshakes_deferred: u64,
    /// Connections whose last records were still being sent after the
    /// service closed them.
    pub lingered: u64,
}

/// One connection's TLS state.
pub struct TlsConn {
    conn: ServerConnection,
    /// The engine reported the end of the stream.
    eof: bool,
    /// A TLS error: no more application data either way.
    failed: bool,
    /// Closed by the service: the engine connection closes once the last
    /// records (close_notify) are out.
    closing: bool,
    /// Since when it lingers (set by [`Layer::after`]).
    linger_since: Option<Instant>,
    /// The engine connection is closed or reset: forget it.
    done: bool,
    /// The handshake was counted.
    counted: bool,
    /// Reads left this turn.
    budget: usize,
    /// Stopped with the budget spent: visit again.
    again: bool,
    /// A handshake flight was processed this turn.
    stepped: bool,
}

impl TlsConn {
    fn new(cfg: Arc<rustls::ServerConfig>) -> Result<Self, rustls::Error> {
        let mut conn = ServerConnection::new(cfg)?;
        conn.set_buffer_limit(Some(TLS_BUFFER));
        Ok(TlsConn {
            conn,
            eof: false,
            failed: false,
            closing: false,
            linger_since: None,
            done: false,
            counted: false,
            budget: 0,
            again: false,
            stepped: false,
        })
    }

    /// Whether the handshake is complete.
    pub fn established(&self) -> bool {
        !self.conn.is_handshaking()
    }

    /// The negotiated protocol version, once known.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.conn.protocol_version()
    }
}

/// The engine's receive side as a reader for `read_tls`: nothing there now
/// is `WouldBlock`, the end of the stream `Ok(0)`.
struct Rx<'a, S> {
    engine: &'a mut S,
    id: ConnId,
}

impl<S: TcpApi> Read for Rx<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.engine.recv(self.id, buf) {
            Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
            Ok(n) => Ok(n),
            Err(ConnError::Closed) => Ok(0),
            Err(ConnError::NotFound) => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// The engine's send side as a writer for `write_tls`: a full send buffer
/// is `WouldBlock`.
struct Tx<'a, S> {
    engine: &'a mut S,
    id: ConnId,
}

impl<S: TcpApi> Write for Tx<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.engine.send(self.id, buf) {
            Ok(0) if !buf.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
            Ok(n) => Ok(n),
            Err(_) => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The socket API with one connection's bytes going through TLS: `recv`
/// gives plaintext, `send` takes plaintext, `close` sends close_notify
/// first. Every other call goes to the engine as is.
pub struct Io<'a, S> {
    engine: &'a mut S,
    id: ConnId,
    tls: &'a mut TlsConn,
    counters: &'a mut TlsCounters,
}

impl<S: TcpApi> Io<'_, S> {
    /// Hands rustls's pending records to the engine. `Ok(true)`: nothing
    /// is left.
    fn flush_tls(&mut self) -> Result<bool, ConnError> {
        while self.tls.conn.wants_write() {
            let mut tx = Tx {
                engine: &mut *self.engine,
                id: self.id,
            };
            match self.tls.conn.write_tls(&mut tx) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(_) => return Err(ConnError::Closed),
            }
        }
        Ok(true)
    }

    /// A TLS error: the alert rustls queued goes out, nothing more is read
    /// or written.
    fn fail(&mut self, e: &rustls::Error) {
        self.tls.failed = true;
        if matches!(e, rustls::Error::AlertReceived(_)) {
            self.counters.alerts_received += 1;
        } else {
            self.counters.alerts_sent += 1;
        }
        log::debug!("TLS error on {:?}: {e}", self.id);
        let _ = self.flush_tls();
    }

    /// Reads one batch of records from the engine and processes them.
    /// `Ok(false)`: nothing was there.
    fn read_records(&mut self) -> Result<bool, ConnError> {
        let handshaking = self.tls.conn.is_handshaking();
        let mut rx = Rx {
            engine: &mut *self.engine,
            id: self.id,
        };
        match self.tls.conn.read_tls(&mut rx) {
            Ok(0) => self.tls.eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(_) => {
                self.tls.failed = true;
                return Err(ConnError::Closed);
            }
        }
        if let Err(e) = self.tls.conn.process_new_packets() {
            self.fail(&e);
            return Err(ConnError::Closed);
        }
        if handshaking {
            self.tls.stepped = true;
            if !self.tls.conn.is_handshaking() {
                self.count_handshake();
                // The requests that came with the client's Finished.
                self.tls.budget = READS_PER_TURN;
            } else {
                // One handshake flight per turn (the expensive one, the
                // ClientHello, signs and agrees a key).
                self.tls.budget = 0;
            }
        }
        // Handshake flights, tickets, key updates, alerts.
        self.flush_tls()?;
        Ok(true)
    }

    fn count_handshake(&mut self) {
        if self.tls.counted {
            return;
        }
        self.tls.counted = true;
        let c = &mut *self.counters;
        c.handshakes += 1;
        if self.tls.conn.handshake_kind() == Some(HandshakeKind::Resumed) {
            c.resumed += 1;
        }
        match self.tls.conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => c.tls13 += 1,
            Some(ProtocolVersion::TLSv1_2) => c.tls12 += 1,
            _ => {}
        }
    }
}

impl<S: TcpApi> TcpApi for Io<'_, S> {
    type Error = S::Error;

    fn tcp_listen(
        &mut self,
        addr: BindAddr,
        port: u16,
        opts: BindOptions,
    ) -> Result<ListenerId, Self::Error> {
        self.engine.tcp_listen(addr, port, opts)
    }

    fn set_selector(&mut self, id: MemberId, sel: Arc<dyn stack::reuseport::Selector>) {
        self.engine.set_selector(id, sel)
    }

    fn accept(&mut self, id: ListenerId) -> Option<ConnId> {
        self.engine.accept(id)
    }

    fn pending(&self, id: ListenerId) -> usize {
        self.engine.pending(id)
    }

    fn drain(&mut self, id: ListenerId) -> Result<(), Self::Error> {
        self.engine.drain(id)
    }

    fn close_listener(&mut self, id: ListenerId) -> Result<(), Self::Error> {
        self.engine.close_listener(id)
    }

    /// Plaintext: what rustls holds decrypted, else the next records from
    /// the engine, within the turn's budget. `Ok(0)` also when the budget
    /// is spent (the connection is visited again next poll).
    fn recv(&mut self, c: ConnId, buf: &mut [u8]) -> Result<usize, ConnError> {
        if c != self.id {
            return self.engine.recv(c, buf);
        }
        loop {
            if self.tls.failed {
                return Err(ConnError::Closed);
            }
            match self.tls.conn.reader().read(buf) {
                // close_notify: the clean end of the stream.
                Ok(0) if !buf.is_empty() => return Err(ConnError::Closed),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The stream ended without close_notify (as HTTP/1.1
                // clients may: every response is delimited).
                Err(_) => return Err(ConnError::Closed),
            }
            if self.tls.eof {
                return Err(ConnError::Closed);
            }
            if self.tls.budget == 0 {
                // More may wait in the engine (a flight split over reads,
                // records past the budget): visit again next poll.
                self.tls.again = true;
                if !self.tls.conn.is_handshaking() {
                    self.counters.budget_exhausted += 1;
                }
                return Ok(0);
            }
            self.tls.budget -= 1;
            if !self.read_records()? {
                return Ok(0);
            }
        }
    }

    /// Plaintext in: encrypted at once into records, handed to the engine
    /// as far as its send buffer takes them. `Ok(0)` while records wait.
    fn send(&mut self, c: ConnId, data: &[u8]) -> Result<usize, ConnError> {
        if c != self.id {
            return self.engine.send(c, data);
        }
        if self.tls.failed || self.tls.closing {
            return Err(ConnError::Closed);
        }
        if !self.flush_tls()? {
            return Ok(0);
        }
        let n = self
            .tls
            .conn
            .writer()
            .write(data)
            .map_err(|_| ConnError::Closed)?;
        self.flush_tls()?;
        Ok(n)
    }

    fn peer_addr(&mut self, c: ConnId) -> Option<std::net::SocketAddr> {
        self.engine.peer_addr(c)
    }

    fn shutdown(&mut self, c: ConnId) -> Result<(), ConnError> {
        if c == self.id {
            self.tls.conn.send_close_notify();
            self.flush_tls()?;
        }
        self.engine.shutdown(c)
    }

    /// close_notify, then the engine's close once every record is out
    /// (until then the layer keeps the connection: `lingering`).
    fn close(&mut self, c: ConnId) {
        if c != self.id {
            return self.engine.close(c);
        }
        if !self.tls.failed && !self.tls.closing {
            self.tls.conn.send_close_notify();
        }
        self.tls.closing = true;
        match self.flush_tls() {
            Ok(false) => {}
            _ => {
                self.engine.close(c);
                self.tls.done = true;
            }
        }
    }

    fn abort(&mut self, c: ConnId) {
        self.engine.abort(c);
        if c == self.id {
            self.tls.done = true;
        }
    }

    fn set_ready_tracking(&mut self, on: bool) {
        self.engine.set_ready_tracking(on)
    }

    fn take_ready(&mut self, out: &mut Vec<ConnId>) {
        self.engine.take_ready(out)
    }

    fn take_ended(&mut self, out: &mut Vec<(ConnId, stack::socket::ConnEnd)>) {
        self.engine.take_ended(out)
    }

    fn connections(&self) -> usize {
        self.engine.connections()
    }

    fn abort_all(&mut self) {
        self.engine.abort_all()
    }

    fn report(&self) -> Option<stack::shared::StackReport> {
        self.engine.report()
    }
}

/// One worker's TLS connections.
pub struct Layer {
    shared: Arc<TlsShared>,
    conns: ConnSlab<TlsConn>,
    /// Connections to visit again at the next poll (budget spent).
    again: Vec<ConnId>,
    /// Closed by the service, records still to send.
    lingering: Vec<ConnId>,
    /// Handshake flights processed since the last [`Layer::take_again`].
    flights: usize,
    /// What was counted.
    pub counters: TlsCounters,
}

impl Layer {
    /// A worker's layer over the shared certificates.
    pub fn new(shared: Arc<TlsShared>) -> Self {
        Layer {
            shared,
            conns: ConnSlab::default(),
            again: Vec::new(),
            lingering: Vec::new(),
            flights: 0,
            counters: TlsCounters::default(),
        }
    }

    /// The shared certificates (reloaded on SIGHUP).
    pub fn shared(&self) -> &Arc<TlsShared> {
        &self.shared
    }

    /// A connection accepted on the HTTPS port. `false`: rustls refused to
    /// start one (the caller resets it).
    pub fn accept(&mut self, id: ConnId) -> bool {
        self.counters.connections += 1;
        match TlsConn::new(self.shared.config()) {
            Ok(t) => {
                self.conns.insert(id, t);
                true
            }
            Err(e) => {
                log::warn!("TLS connection refused: {e}");
                self.counters.handshakes_failed += 1;
                false
            }
        }
    }

    /// Whether `id` speaks TLS.
    pub fn has(&self, id: ConnId) -> bool {
        self.conns.get(&id).is_some()
    }

    /// One connection's state (tests, reports).
    pub fn conn(&self, id: ConnId) -> Option<&TlsConn> {
        self.conns.get(&id)
    }

    /// The TLS half of a service turn on `id`: `Some(io)` for a TLS
    /// connection, with its budget for this turn set.
    pub fn io<'a, S: TcpApi>(&'a mut self, engine: &'a mut S, id: ConnId) -> Option<Io<'a, S>> {
        let tls = self.conns.get_mut(&id)?;
        tls.budget = if !tls.conn.is_handshaking() {
            READS_PER_TURN
        } else if self.flights < HANDSHAKES_PER_POLL {
            1
        } else {
            self.counters.handshakes_deferred += 1;
            0
        };
        tls.again = false;
        let mut io = Io {
            engine,
            id,
            tls,
            counters: &mut self.counters,
        };
        let _ = io.flush_tls();
        Some(io)
    }

    /// After the service's turn on `id` (`keep`: it still holds the
    /// connection): visited again next poll if its budget ran out; kept
    /// while its last records wait; else forgotten.
    pub fn after(&mut self, id: ConnId, keep: bool, now: Instant) {
        let Some(t) = self.conns.get_mut(&id) else {
            return;
        };
        if std::mem::take(&mut t.stepped) {
            self.flights += 1;
        }
        if keep {
            if t.again {
                self.again.push(id);
            }
            return;
        }
        if !t.done && t.closing {
            t.linger_since = Some(now);
            self.counters.lingered += 1;
            self.lingering.push(id);
            return;
        }
        self.forget(id);
    }

    /// The service let `id` go (closed, reset, timed out) without a turn
    /// through [`Layer::io`]: forget its TLS state unless it lingers.
    pub fn forget(&mut self, id: ConnId) {
        if let Some(t) = self.conns.get(&id) {
            if t.linger_since.is_some() && !t.done {
                return;
            }
        }
        if let Some(t) = self.conns.remove(&id) {
            if !t.counted {
                self.counters.handshakes_failed += 1;
            }
        }
    }

    /// The engine ended `id` (its id names nothing any more).
    pub fn ended(&mut self, id: ConnId) {
        if let Some(t) = self.conns.remove(&id) {
            if !t.counted {
                self.counters.handshakes_failed += 1;
            }
        }
        self.lingering.retain(|&l| l != id);
    }

    /// Takes the connections to visit again (appended to `out`).
    pub fn take_again(&mut self, out: &mut Vec<ConnId>) {
        out.append(&mut self.again);
    }

    /// Whether some closed connections still send.
    pub fn lingering(&self) -> bool {
        !self.lingering.is_empty()
    }

    /// The end of a poll: what closed connections still hold is sent (see
    /// [`Layer::flush_lingering`]), the handshake flights are counted from
    /// 0 again. When the next poll is needed: at once if connections wait
    /// for their turn, by `sweep` if some still linger.
    pub fn end_poll<S: TcpApi>(
        &mut self,
        engine: &mut S,
        now: Instant,
        limit: Duration,
        sweep: Instant,
    ) -> Option<Instant> {
        self.flights = 0;
        if self.lingering() {
            self.flush_lingering(engine, now, limit);
        }
        if !self.again.is_empty() {
            Some(now)
        } else {
            self.lingering().then_some(sweep)
        }
    }

    /// Sends what closed connections still hold; closes them once it is
    /// out, resets those not done `limit` after the close.
    pub fn flush_lingering<S: TcpApi>(&mut self, engine: &mut S, now: Instant, limit: Duration) {
        let mut i = 0;
        while i < self.lingering.len() {
            let id = self.lingering[i];
            let Some(t) = self.conns.get_mut(&id) else {
                self.lingering.swap_remove(i);
                continue;
            };
            let mut io = Io {
                engine: &mut *engine,
                id,
                tls: t,
                counters: &mut self.counters,
            };
            let finished = match io.flush_tls() {
                Ok(true) | Err(_) => {
                    io.engine.close(id);
                    true
                }
                Ok(false)
                    if io
                        .tls
                        .linger_since
                        .is_some_and(|s| now.duration_since(s) >= limit) =>
                {
                    io.engine.abort(id);
                    true
                }
                Ok(false) => false,
            };
            if finished {
                self.lingering.swap_remove(i);
                self.conns.remove(&id);
            } else {
                i += 1;
            }
        }
    }

    /// Forget everything (the end of a stop).
    pub fn clear(&mut self) {
        self.conns.clear();
        self.again.clear();
        self.lingering.clear();
    }
}

/// A worker's TLS counters as JSON, with the process's reloads.
pub fn json(layer: &Layer) -> serde_json::Value {
    let mut v = serde_json::json!(layer.counters);
    if let Some(obj) = v.as_object_mut() {
        let s = layer.shared();
        obj.insert(
            "reloads".into(),
            s.reloads.load(std::sync::atomic::Ordering::Relaxed).into(),
        );
        obj.insert(
            "reload_failures".into(),
            s.reload_failures
                .load(std::sync::atomic::Ordering::Relaxed)
                .into(),
        );
    }
    v
}
