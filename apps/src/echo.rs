//! TCP and UDP echo on one port: the simplest service, used by the tests.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{json, Value};
use stack::engine::{Engine, ListenerId, UdpId};
use stack::reuseport::BindAddr;
use stack::socket::{ConnError, ConnId};
use stack::worker::App;

use crate::server::WorkerCtx;

use nic::Rings;

/// `xdpstack echo` options.
#[derive(clap::Args, Clone, Debug)]
pub struct EchoArgs {
    /// TCP and UDP port.
    #[arg(long, default_value_t = 7)]
    pub port: u16,
}

#[derive(Default)]
struct Conn {
    pending: Vec<u8>,
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
}

/// One worker's echo service.
pub struct EchoApp {
    listener: ListenerId,
    udp: UdpId,
    conns: HashMap<ConnId, Conn>,
    buf: Vec<u8>,
    counters: EchoCounters,
}

impl EchoApp {
    /// Bind TCP and UDP `args.port`.
    pub fn new<R: Rings>(
        ctx: &WorkerCtx,
        engine: &mut Engine<R>,
        args: &EchoArgs,
    ) -> Result<Self, String> {
        let any = BindAddr::Any6 { v6only: false };
        let listener = engine
            .tcp_listen(any, args.port, ctx.bind.clone().with_backlog(128))
            .map_err(|e| e.to_string())?;
        let udp = engine
            .udp_bind(any, args.port, ctx.bind.clone().with_backlog(1024))
            .map_err(|e| e.to_string())?;
        let _ = engine
            .shared()
            .registry
            .set_selector(listener.member(), ctx.selector.clone());
        let _ = engine
            .shared()
            .registry
            .set_selector(udp.member(), ctx.selector.clone());
        Ok(EchoApp {
            listener,
            udp,
            conns: HashMap::new(),
            buf: vec![0; 64 * 1024],
            counters: EchoCounters::default(),
        })
    }

    /// Counters as JSON.
    pub fn json(&self) -> Value {
        json!(self.counters)
    }
}

impl<R: Rings> App<R> for EchoApp {
    fn poll(&mut self, engine: &mut Engine<R>, _now: Instant) -> Option<Instant> {
        while let Ok(Some((n, from, to))) = engine.recv_from(self.udp, &mut self.buf) {
            if engine
                .send_to(self.udp, &self.buf[..n], from, Some(to))
                .is_ok()
            {
                self.counters.datagrams += 1;
            }
        }
        while let Some(id) = engine.accept(self.listener) {
            self.counters.connections += 1;
            self.conns.insert(id, Conn::default());
        }
        let mut closed = Vec::new();
        for (&id, c) in self.conns.iter_mut() {
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
                    Ok(n) => c.pending.extend_from_slice(&self.buf[..n]),
                    Err(ConnError::Closed) | Err(ConnError::NotFound) => {
                        eof = true;
                        break;
                    }
                }
            }
            if eof && c.pending.is_empty() {
                closed.push(id);
            }
        }
        for id in closed {
            engine.close(id);
            self.conns.remove(&id);
        }
        None
    }
}
