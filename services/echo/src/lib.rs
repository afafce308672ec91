//! TCP and UDP echo on one port: the simplest service, used by the tests.
#![deny(unsafe_code)]
#![deny(missing_docs)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stack::engine::{Engine, ListenerId, UdpId};
use stack::socket::{ConnError, ConnId, TcpApi, UdpApi};
use stack::worker::App;

use runtime::conns::Reaper;
use runtime::server::WorkerCtx;

use nic::Rings;

/// `xdpstack echo` options.
#[derive(clap::Args, Clone, Debug)]
pub struct EchoArgs {
    /// TCP and UDP port.
    #[arg(long, default_value_t = 7)]
    pub port: u16,
    /// Open TCP connections per worker; more are accepted and reset at once
    /// (counted as `rejected_max_conns`).
    #[arg(long, default_value_t = 1024)]
    pub max_conns: usize,
    /// Close a TCP connection that sent nothing and had nothing sent for
    /// this long (`60s`, `2m`; a bare number is seconds; at least 1 s;
    /// counted as `idle_closed`).
    #[arg(long, default_value = "60s", value_parser = runtime::duration::parse)]
    pub idle_timeout: Duration,
    /// Attached mode (`--attach PATH`, `--pin`).
    #[command(flatten)]
    pub attached: runtime::attached::AttachArgs,
}

struct Conn {
    pending: Vec<u8>,
    /// Its last progress: accepted, bytes read or sent (segments that move
    /// nothing do not count).
    last: Instant,
}

/// Echo counters.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EchoCounters {
    /// TCP connections accepted.
    pub connections: u64,
    /// TCP bytes echoed.
    pub tcp_bytes: u64,
    /// UDP datagrams echoed.
    pub datagrams: u64,
    /// Connections reset at once because `--max-conns` were open and none
    /// had been idle `EVICT_AFTER`.
    pub rejected_max_conns: u64,
    /// Connections reset to make room for a new one when `--max-conns`
    /// were open: the one whose last progress is oldest, idle at least
    /// `EVICT_AFTER`.
    pub evicted: u64,
    /// Connections the engine ended while held (reset by the peer, timed
    /// out): forgotten at once.
    pub ended: u64,
    /// Connections closed after `--idle-timeout`.
    pub idle_closed: u64,
}

/// One worker's echo service.
pub struct EchoApp {
    listener: ListenerId,
    udp: UdpId,
    conns: stack::socket::ConnMap<Conn>,
    buf: Vec<u8>,
    counters: EchoCounters,
    max_conns: usize,
    idle: Duration,
    ids: Vec<ConnId>,
    /// Ended connections, eviction and the idle sweep.
    reaper: Reaper,
}

/// Why the echo service did not start on a worker.
pub type EchoError = runtime::server::PortError;

impl EchoApp {
    /// Bind TCP and UDP `args.port`.
    pub fn new<A: TcpApi + UdpApi>(
        ctx: &WorkerCtx,
        engine: &mut A,
        args: &EchoArgs,
    ) -> Result<Self, EchoError> {
        let (udp, listener) = ctx.bind_udp_tcp(engine, args.port, 1024, 128)?;
        // Only connections with segments are looked at (`take_ready`).
        engine.set_ready_tracking(true);
        Ok(EchoApp {
            listener,
            udp,
            conns: Default::default(),
            buf: vec![0; 64 * 1024],
            counters: EchoCounters::default(),
            max_conns: args.max_conns.max(1),
            idle: args.idle_timeout.max(Duration::from_secs(1)),
            ids: Vec::new(),
            reaper: Reaper::new(Instant::now()),
        })
    }

    /// Counters as JSON.
    pub fn json(&self) -> Value {
        json!(self.counters)
    }

    /// Counters.
    pub fn counters(&self) -> &EchoCounters {
        &self.counters
    }

    /// Reset the connection with the oldest progress if it made none for
    /// `EVICT_AFTER`; whether one went.
    fn evict_one<A: TcpApi>(&mut self, engine: &mut A, now: Instant) -> bool {
        let Some(id) = self.reaper.evict_from(now, &self.conns, |c| c.last) else {
            return false;
        };
        self.counters.evicted += 1;
        engine.abort(id);
        self.conns.remove(&id);
        true
    }
}

impl<R: Rings> App<R> for EchoApp {
    fn poll(&mut self, engine: &mut Engine<R>, now: Instant) -> Option<Instant> {
        self.poll_on(engine, now)
    }
}

impl attach::Service for EchoApp {
    fn poll(&mut self, core: &mut attach::Core, now: Instant) -> Option<Instant> {
        self.poll_on(core, now)
    }
}

impl EchoApp {
    /// One turn on any socket API (the engine, or an attached core).
    pub fn poll_on<A: TcpApi + UdpApi>(&mut self, engine: &mut A, now: Instant) -> Option<Instant> {
        while let Ok(Some((n, from, to))) = engine.recv_from(self.udp, &mut self.buf) {
            if engine
                .send_to(self.udp, &self.buf[..n], from, Some(to))
                .is_ok()
            {
                self.counters.datagrams += 1;
            }
        }
        // The connections the engine ended leave the table at once.
        for &(id, _) in self.reaper.take_ended(engine) {
            if self.conns.remove(&id).is_some() {
                self.counters.ended += 1;
            }
        }
        let mut ids = std::mem::take(&mut self.ids);
        ids.clear();
        while let Some(id) = engine.accept(self.listener) {
            self.counters.connections += 1;
            if self.conns.len() >= self.max_conns && !self.evict_one(engine, now) {
                self.counters.rejected_max_conns += 1;
                engine.abort(id);
                continue;
            }
            self.conns.insert(
                id,
                Conn {
                    pending: Vec::new(),
                    last: now,
                },
            );
            ids.push(id);
        }
        engine.take_ready(&mut ids);
        for &id in &ids {
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            let mut eof = false;
            loop {
                // Flush what is pending before reading more (back-pressure:
                // we only read as much as we can queue for sending).
                while !c.pending.is_empty() {
                    match engine.send(id, &c.pending) {
                        Ok(0) => break,
                        Ok(n) => {
                            self.counters.tcp_bytes += n as u64;
                            c.pending.drain(..n);
                            c.last = now;
                        }
                        Err(_) => {
                            c.pending.clear();
                            eof = true;
                        }
                    }
                }
                if !c.pending.is_empty() || eof {
                    break;
                }
                match engine.recv(id, &mut self.buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        c.pending.extend_from_slice(&self.buf[..n]);
                        c.last = now;
                    }
                    Err(ConnError::Closed) | Err(ConnError::NotFound) => {
                        eof = true;
                        break;
                    }
                }
            }
            if eof && c.pending.is_empty() {
                engine.close(id);
                self.conns.remove(&id);
            }
        }
        self.ids = ids;
        let listed = self.conns.iter().map(|(&id, c)| (c.last, id));
        for &id in self.reaper.idle(now, self.idle, listed) {
            self.counters.idle_closed += 1;
            engine.close(id);
            self.conns.remove(&id);
        }
        (!self.conns.is_empty()).then_some(self.reaper.next_sweep())
    }
}
