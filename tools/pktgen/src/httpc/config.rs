//! The client's configuration and counters, and the HTTP bytes it sends
//! and reads.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::gen::{AddrRange, Live, PortRange};

/// Counters of one client thread.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct HttpCounters {
    /// Frames received.
    pub received: u64,
    /// Connections opened (first SYNs).
    pub connects: u64,
    /// Handshakes completed.
    pub established: u64,
    /// SYNs sent again.
    pub syn_retransmits: u64,
    /// Requests sent (first sends).
    pub requests: u64,
    /// Requests sent again.
    pub request_retransmits: u64,
    /// Complete responses.
    pub responses: u64,
    /// ... with a 2xx status.
    pub status_2xx: u64,
    /// ... with another status.
    pub status_other: u64,
    /// Responses that could not be read (no status line or Content-Length
    /// in the first segment, more bytes than announced, closed early).
    pub bad_responses: u64,
    /// Connections closed by FIN exchange after their response (`--close`).
    pub closed: u64,
    /// Keep-alive connections the server closed.
    pub server_closed: u64,
    /// RSTs received on a live connection.
    pub rst_received: u64,
    /// Connections given up after [`MAX_TRIES`].
    pub timeouts: u64,
    /// RSTs sent (timeouts, stale segments, the reset at the end).
    pub rst_sent: u64,
    /// In-window segments out of order (answered with an ACK, dropped).
    pub out_of_order: u64,
    /// Segments with something in them (data, SYN, FIN) for a connection
    /// a slot no longer has: answered with RST.
    pub stale: u64,
    /// Bare ACKs or RSTs for a connection a slot no longer has (the ACK of
    /// our FIN, usually).
    pub late_acks: u64,
    /// Open loop: request slots due when no connection was idle.
    pub rate_missed: u64,
    /// No transmit frame free (the segment is sent later, or by the timer).
    pub tx_blocked: u64,
    /// Frames the stack's parser refused (bad checksum, lengths).
    pub rx_invalid: u64,
    /// Not IP, or not to our MAC.
    pub rx_not_ip: u64,
    /// IP, but not from the server's address and port to one of ours.
    pub rx_other: u64,
    /// ARP/NDP requests for our source addresses answered.
    pub neighbor_answered: u64,
}

/// Everything a client thread needs.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Our MAC.
    pub our_mac: [u8; 6],
    /// The server's MAC.
    pub dst_mac: [u8; 6],
    /// The server.
    pub dst: IpAddr,
    /// Its port.
    pub dst_port: u16,
    /// Source addresses.
    pub src_ips: AddrRange,
    /// Source ports.
    pub src_ports: PortRange,
    /// Connections at once.
    pub conns: u32,
    /// One request per connection.
    pub close: bool,
    /// Keep-alive: requests/s (0: closed loop); close: connections/s (0:
    /// as fast as they complete).
    pub rate: u64,
    /// Keep-alive: SYNs/s while opening (0: no limit).
    pub connect_rate: u64,
    /// Keep-alive, closed loop: requests outstanding at most (0: one per
    /// connection). Fewer than the connections: each completed request
    /// sends the next on the connection idle longest, so every connection
    /// takes its turn while the server sees this many at once.
    pub inflight: u32,
    /// What the requests and responses are.
    pub proto: Proto,
    /// The request's bytes.
    pub request: Vec<u8>,
    /// Time zero.
    pub epoch: Instant,
    /// Send nothing new from then on.
    pub send_until: Instant,
    /// Then wait this long for what is outstanding.
    pub drain: Duration,
    /// Segments sent per step at most, per kind.
    pub batch: usize,
    /// Counters for the once-a-second report (sent: requests, received:
    /// frames, answered: responses).
    pub live: Arc<Live>,
}

impl HttpConfig {
    /// Flows in the source space (address x port), at most 2^32 - 1.
    fn flows(&self) -> u64 {
        self.src_ips
            .len
            .max(1)
            .saturating_mul(self.src_ports.len())
            .min(u64::from(u32::MAX))
    }

    /// `--close`: connections per slot before a flow comes back.
    pub(super) fn rounds(&self) -> u32 {
        if self.close {
            (self.flows() / u64::from(self.conns.max(1))).max(1) as u32
        } else {
            1
        }
    }

    /// Source address and port of `flow`.
    pub(super) fn endpoint(&self, flow: u32) -> (IpAddr, u16) {
        let ips = self.src_ips.len.max(1);
        let f = u64::from(flow);
        (self.src_ips.nth(f % ips), self.src_ports.nth(f / ips))
    }

    /// The flow of our address `to` and port `port`, if ours.
    pub(super) fn flow_of(&self, to: IpAddr, port: u16) -> Option<u32> {
        let r = &self.src_ips;
        let ip = match (r.first, to) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                u128::from(u32::from(b)).checked_sub(u128::from(u32::from(a)))?
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(b).checked_sub(u128::from(a))?,
            _ => return None,
        };
        if ip >= u128::from(r.len.max(1)) || !self.src_ports.contains(port) {
            return None;
        }
        let f = u64::from(port - self.src_ports.first)
            .checked_mul(r.len.max(1))?
            .checked_add(ip as u64)?;
        u32::try_from(f).ok()
    }
}

/// What a connection carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 GETs; with `close`, the server closes after its response.
    Http,
    /// Length-prefixed DNS queries (RFC 7766); with `close`, one query per
    /// connection and the client closes first once it is answered (the
    /// server waits for that, RFC 7766 6.2.3).
    Dns,
}

impl Proto {
    /// A response's status and total length (framing included), read from
    /// its first segment.
    pub fn head(self, seg: &[u8]) -> Option<(u16, usize)> {
        match self {
            Proto::Http => response_head(seg),
            Proto::Dns => dns_response_head(seg),
        }
    }
}

/// A query for `name` (A, IN, RD) with its two-byte length before it.
pub fn dns_request_bytes(name: &str) -> Result<Vec<u8>, crate::template::TemplateError> {
    let q = crate::template::dns_query(name)?;
    let mut out = Vec::with_capacity(2 + q.len());
    out.extend_from_slice(&(q.len() as u16).to_be_bytes());
    out.extend_from_slice(&q);
    Ok(out)
}

/// A length-prefixed DNS response's head, read from its first segment: 200
/// for NOERROR, 500 + RCODE for any other, 0 if the first segment ends
/// before the header's flags; and the bytes of prefix and message together.
/// A message that is not a response (QR clear) is refused.
pub fn dns_response_head(seg: &[u8]) -> Option<(u16, usize)> {
    let len = usize::from(u16::from_be_bytes([*seg.first()?, *seg.get(1)?]));
    let status = match seg.get(4..6) {
        Some(f) if f[0] & 0x80 == 0 => return None,
        Some(f) if f[1] & 0x0f == 0 => 200,
        Some(f) => 500 + u16::from(f[1] & 0x0f),
        None => 0,
    };
    Some((status, 2 + len))
}

/// The HTTP/1.1 GET for `path` on `host`.
pub fn request_bytes(host: &str, path: &str, close: bool) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes()
}

/// A response's head, read from its first segment: the status and the
/// bytes of head and body together.
pub fn response_head(seg: &[u8]) -> Option<(u16, usize)> {
    let end = seg.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&seg[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let mut length = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = Some(v.trim().parse::<usize>().ok()?);
            } else if k.trim().eq_ignore_ascii_case("transfer-encoding") {
                // Chunked bodies are not followed.
                return None;
            }
        }
    }
    // A length no response can have (the sum overflowing) is refused.
    Some((status, end.checked_add(length?)?))
}
