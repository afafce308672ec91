//! What the daemon and an attached process say to each other.
//!
//! **Control** (the Unix stream socket): one JSON object per line, a
//! request and then its reply. The reply to `hello` carries, with
//! `SCM_RIGHTS`, three descriptors per daemon core: the channel's memfd
//! ([`nic::shm::Channel`]), the process's doorbell (an eventfd the daemon
//! writes when the process sleeps) and the core's doorbell (the process
//! writes it when the core sleeps).
//!
//! **Data** (the channel of one core): records, batched, published once per
//! turn. Daemon to process: [`ACCEPTED`], [`DATA`], [`EOF`], [`GONE`],
//! [`SENT`], [`PENDING`], [`CONNECTED`], [`CONNECT_FAILED`]. Process to
//! daemon: [`SEND`], [`SHUTDOWN`], [`CLOSE`], [`ABORT`], [`TAKEN`],
//! [`CLOSE_LISTENER`], [`READ`], [`CONNECT`], [`CANCEL_CONNECT`]. A
//! record's id is the connection (`ConnId` as `index << 32 | generation`)
//! or, for [`PENDING`] and [`CLOSE_LISTENER`], the listener; for
//! [`CONNECT`], [`CANCEL_CONNECT`] and [`CONNECT_FAILED`], a token the
//! process chose for its connect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};
use stack::reuseport::BindAddr;
use stack::socket::ConnId;

/// Daemon → process: a connection was accepted on a listener. Payload:
/// listener id (u64 LE), the peer ([`encode_peer`]), then our address (the
/// one the peer reached, [`encode_peer`]; absent from older daemons).
pub const ACCEPTED: u8 = 1;
/// Daemon → process: bytes received on the connection.
pub const DATA: u8 = 2;
/// Daemon → process: the peer finished sending (after all its data).
pub const EOF: u8 = 3;
/// Daemon → process: the connection is gone (reset, or released).
pub const GONE: u8 = 4;
/// Daemon → process: send credit returned (u32 LE bytes): that much of
/// what the process sent is in the connection's send buffer.
pub const SENT: u8 = 5;
/// Daemon → process: connections waiting in the daemon on a listener
/// (handshaking or not yet handed over), u32 LE; sent when it changes.
pub const PENDING: u8 = 6;

/// Daemon → process: a datagram for the UDP socket whose id is the
/// record's. Payload: sender ([`encode_peer`]), our address
/// ([`encode_ip`]), the data.
pub const DGRAM: u8 = 7;

/// Daemon → process: an outgoing connection ([`CONNECT`]) is established;
/// the record's id is the connection. Payload: the process's token (u64
/// LE), the peer ([`encode_peer`]), our address ([`encode_peer`]). From
/// here on it is a connection like an accepted one: the daemon reads it
/// once the process sends [`TAKEN`] (with its receive window); a process
/// that gave the connect up answers with [`ABORT`].
pub const CONNECTED: u8 = 8;
/// Daemon → process: an outgoing connection failed; the record's id is the
/// process's token. Payload: the reason ([`ConnectFailure::code`], u8),
/// then a message (UTF-8) for people.
pub const CONNECT_FAILED: u8 = 9;

/// Process → daemon: bytes to send (at most the credit left).
pub const SEND: u8 = 1;
/// Process → daemon: FIN after the data sent.
pub const SHUTDOWN: u8 = 2;
/// Process → daemon: close (FIN after the data sent), forget the connection.
pub const CLOSE: u8 = 3;
/// Process → daemon: reset the connection.
pub const ABORT: u8 = 4;
/// Process → daemon: the application accepted the connection. Until then
/// the daemon reads nothing from it, so that a connection offered to a
/// process that closes its listener or dies first can be given back to the
/// group intact (migrated to another member). Optional payload: the
/// receive window (u32 LE), the most bytes the daemon may have delivered
/// and not had back as [`READ`]; without it (older processes) the daemon
/// delivers as long as the ring has room.
pub const TAKEN: u8 = 5;
/// Process → daemon: close the listener whose id is the record's id.
/// Ordered with the other records: every [`ACCEPTED`] the daemon wrote
/// for it and the process has not taken migrates to a remaining member.
pub const CLOSE_LISTENER: u8 = 6;
/// Process → daemon: a datagram to send from the UDP socket whose id is the
/// record's. Payload: destination ([`encode_peer`]), source ([`encode_ip`],
/// family 0 for the default), the data.
pub const SENDTO: u8 = 7;
/// Process → daemon: close the UDP socket whose id is the record's.
pub const UDP_CLOSE: u8 = 8;
/// Process → daemon: the application read this many (u32 LE) of the bytes
/// delivered on the connection (receive window returned; see [`TAKEN`]).
pub const READ: u8 = 9;

/// Process → daemon: open a TCP connection on this core; the record's id
/// is a token of the process's choosing, which the answer ([`CONNECTED`]
/// or [`CONNECT_FAILED`]) carries. Payload: the destination
/// ([`encode_peer`]), then our address ([`encode_peer`]; family 0 or an
/// unspecified address: the daemon's address of the destination's family;
/// port 0: an ephemeral port). Local ports below 1024 are refused (see
/// [`PRIVILEGED_PORTS`]).
pub const CONNECT: u8 = 10;

/// Process → daemon: give up the [`CONNECT`] of token `id` before its
/// answer came. The daemon aborts the connection if it is still opening
/// and answers nothing more; an answer already on its way is the process's
/// to drop (a [`CONNECTED`] one by [`ABORT`]). No payload.
pub const CANCEL_CONNECT: u8 = 11;

/// Local ports an attached process may not ask for in [`CONNECT`]
/// (below 1024, whatever its capabilities: the daemon checks
/// `CAP_NET_BIND_SERVICE` for listeners at bind time over the control
/// socket, and a ring record carries no credentials). Port 0 (ephemeral)
/// is not one of them.
pub const PRIVILEGED_PORTS: std::ops::Range<u16> = 1..1024;

/// Why an outgoing connection failed ([`CONNECT_FAILED`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectFailure {
    /// An RST answered the SYN (nothing listens there).
    Refused,
    /// No answer within the daemon's connect timeout.
    TimedOut,
    /// ICMP host or network unreachable.
    Unreachable,
    /// No free local port towards the destination, or the one asked for
    /// is in use.
    AddrInUse,
    /// The request itself was refused: an address the daemon does not
    /// have, a privileged local port, the connection limit, a malformed
    /// record.
    Invalid,
}

impl ConnectFailure {
    /// The byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            ConnectFailure::Refused => 1,
            ConnectFailure::TimedOut => 2,
            ConnectFailure::Unreachable => 3,
            ConnectFailure::AddrInUse => 4,
            ConnectFailure::Invalid => 5,
        }
    }

    /// From the byte on the wire (an unknown one is `Invalid`).
    pub fn from_code(b: u8) -> ConnectFailure {
        match b {
            1 => ConnectFailure::Refused,
            2 => ConnectFailure::TimedOut,
            3 => ConnectFailure::Unreachable,
            4 => ConnectFailure::AddrInUse,
            _ => ConnectFailure::Invalid,
        }
    }
}

/// Bytes a process may have sent on a connection and not yet had back as
/// [`SENT`] credit.
pub const SEND_CREDIT: usize = 64 * 1024;

/// The receive window a process announces in [`TAKEN`]: at most this many
/// bytes of a connection delivered and not yet read by the application, so
/// that an application that stops reading stops the daemon reading the
/// socket (the peer's window closes) instead of growing the process.
pub const RECV_WINDOW: usize = 256 * 1024;

/// A process returns the window ([`READ`]) once the application has read
/// this much since the last return.
pub const READ_REPORT: usize = RECV_WINDOW / 4;

/// A control request (closing a listener is a ring record,
/// [`CLOSE_LISTENER`], ordered with the connections offered on it).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Attach: the reply brings the channels.
    Hello,
    /// Open a TCP listener on one core (a member of the port's group).
    Listen(Bind),
    /// Bind a UDP socket on one core (a member of the port's group).
    UdpBind(Bind),
    /// Stop new flows to a listener.
    Drain {
        /// Core.
        core: usize,
        /// Listener.
        listener: u64,
    },
}

/// What [`Request::Listen`] and [`Request::UdpBind`] say; its fields sit
/// beside `op` in the request's object.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Bind {
    /// The daemon core.
    pub core: usize,
    /// `0.0.0.0`, `::` (dual-stack), `::/v6only`, or an address.
    pub addr: String,
    /// Port.
    pub port: u16,
    /// Accept queue (TCP) or datagram queue (UDP).
    pub backlog: usize,
    /// `SO_REUSEPORT`.
    pub reuseport: bool,
}

/// A control reply.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reply {
    /// Whether the request was done.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `hello`: the daemon's cores (one channel each, in order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<usize>,
    /// `listen`: the listener's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<u64>,
}

impl Reply {
    /// A refusal.
    pub fn err(e: impl std::fmt::Display) -> Reply {
        Reply {
            ok: false,
            error: Some(e.to_string()),
            ..Reply::default()
        }
    }
}

/// A bind address as text (see [`Bind::addr`]).
pub fn addr_to_str(a: &BindAddr) -> String {
    match a {
        BindAddr::Any4 => "0.0.0.0".into(),
        BindAddr::Any6 { v6only: false } => "::".into(),
        BindAddr::Any6 { v6only: true } => "::/v6only".into(),
        BindAddr::V4(a) => a.to_string(),
        BindAddr::V6(a) => a.to_string(),
    }
}

/// Text to a bind address.
pub fn addr_from_str(s: &str) -> Option<BindAddr> {
    match s {
        "::/v6only" => Some(BindAddr::Any6 { v6only: true }),
        _ => s
            .parse::<IpAddr>()
            .ok()
            .and_then(|ip| BindAddr::try_from_std(Some(ip), false).ok()),
    }
}

/// A connection id on the wire.
pub fn conn_to_wire(c: ConnId) -> u64 {
    (c.index() as u64) << 32 | c.generation() as u64
}

/// A connection id from the wire.
pub fn conn_from_wire(v: u64) -> ConnId {
    ConnId::new((v >> 32) as u32, v as u32)
}

/// Bytes of an encoded peer.
pub const PEER_LEN: usize = 19;

/// family (4 or 6), port (u16 LE), address (16 bytes, IPv4 in the first 4).
pub fn encode_peer(p: Option<SocketAddr>) -> [u8; PEER_LEN] {
    let mut b = [0u8; PEER_LEN];
    match p {
        Some(SocketAddr::V4(a)) => {
            b[0] = 4;
            b[1..3].copy_from_slice(&a.port().to_le_bytes());
            b[3..7].copy_from_slice(&a.ip().octets());
        }
        Some(SocketAddr::V6(a)) => {
            b[0] = 6;
            b[1..3].copy_from_slice(&a.port().to_le_bytes());
            b[3..19].copy_from_slice(&a.ip().octets());
        }
        None => {}
    }
    b
}

/// The peer from [`encode_peer`]'s bytes (None for anything else).
pub fn decode_peer(b: &[u8]) -> Option<SocketAddr> {
    let b: &[u8; PEER_LEN] = b.get(..PEER_LEN)?.try_into().ok()?;
    let port = u16::from_le_bytes([b[1], b[2]]);
    match b[0] {
        4 => Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(b[3], b[4], b[5], b[6])),
            port,
        )),
        6 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[3..19]);
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port))
        }
        _ => None,
    }
}

/// The head of an [`ACCEPTED`] or [`CONNECTED`] payload: a u64 (the
/// listener, the token), the peer, our address (each `None` if absent).
pub fn decode_opened(b: &[u8]) -> (u64, Option<SocketAddr>, Option<SocketAddr>) {
    let head = b
        .get(..8)
        .map_or(0, |h| u64::from_le_bytes(h.try_into().unwrap_or([0; 8])));
    let peer = b.get(8..).and_then(decode_peer);
    let local = b.get(8 + PEER_LEN..).and_then(decode_peer);
    (head, peer, local)
}

/// Bytes of an encoded address.
pub const IP_LEN: usize = 17;

/// family (0 none, 4 or 6), address (16 bytes, IPv4 in the first 4).
pub fn encode_ip(a: Option<IpAddr>) -> [u8; IP_LEN] {
    let mut b = [0u8; IP_LEN];
    match a {
        Some(IpAddr::V4(a)) => {
            b[0] = 4;
            b[1..5].copy_from_slice(&a.octets());
        }
        Some(IpAddr::V6(a)) => {
            b[0] = 6;
            b[1..17].copy_from_slice(&a.octets());
        }
        None => {}
    }
    b
}

/// The address from [`encode_ip`]'s bytes.
pub fn decode_ip(b: &[u8]) -> Option<IpAddr> {
    let b: &[u8; IP_LEN] = b.get(..IP_LEN)?.try_into().ok()?;
    match b[0] {
        4 => Some(IpAddr::V4(Ipv4Addr::new(b[1], b[2], b[3], b[4]))),
        6 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[1..17]);
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in ["0.0.0.0", "::", "::/v6only", "192.0.2.1", "2001:db8::1"] {
            assert_eq!(addr_to_str(&addr_from_str(s).unwrap()), s);
        }
        assert!(addr_from_str("nonsense").is_none());
        let c = ConnId::new(7, 0xdead_beef);
        assert_eq!(conn_from_wire(conn_to_wire(c)), c);
        for p in ["198.18.0.2:4000", "[2001:db8::2]:80"] {
            let p: SocketAddr = p.parse().unwrap();
            assert_eq!(decode_peer(&encode_peer(Some(p))), Some(p));
        }
        assert_eq!(decode_peer(&encode_peer(None)), None);
        for a in ["198.18.0.1", "2001:db8::1"] {
            let a: IpAddr = a.parse().unwrap();
            assert_eq!(decode_ip(&encode_ip(Some(a))), Some(a));
        }
        assert_eq!(decode_ip(&encode_ip(None)), None);
        for f in [
            ConnectFailure::Refused,
            ConnectFailure::TimedOut,
            ConnectFailure::Unreachable,
            ConnectFailure::AddrInUse,
            ConnectFailure::Invalid,
        ] {
            assert_eq!(ConnectFailure::from_code(f.code()), f);
        }
        assert_eq!(ConnectFailure::from_code(0), ConnectFailure::Invalid);
    }

    /// The control requests' JSON is what it was before `Bind` was factored
    /// out (a process built against the older definition still attaches).
    #[test]
    fn requests_keep_their_wire_format() {
        let bind = Bind {
            core: 1,
            addr: "::".into(),
            port: 80,
            backlog: 5,
            reuseport: true,
        };
        let cases = [
            (
                Request::Listen(bind.clone()),
                r#"{"op":"listen","core":1,"addr":"::","port":80,"backlog":5,"reuseport":true}"#,
            ),
            (
                Request::UdpBind(Bind {
                    core: 0,
                    addr: "198.18.0.1".into(),
                    port: 53,
                    backlog: 1024,
                    reuseport: false,
                }),
                r#"{"op":"udp_bind","core":0,"addr":"198.18.0.1","port":53,"backlog":1024,"reuseport":false}"#,
            ),
            (Request::Hello, r#"{"op":"hello"}"#),
            (
                Request::Drain {
                    core: 1,
                    listener: 7,
                },
                r#"{"op":"drain","core":1,"listener":7}"#,
            ),
        ];
        for (req, json) in cases {
            assert_eq!(serde_json::to_string(&req).unwrap(), json);
            assert_eq!(serde_json::from_str::<Request>(json).unwrap(), req);
        }
        // Field order is free, as with the struct variants before.
        let r: Request = serde_json::from_str(
            r#"{"reuseport":true,"backlog":5,"port":80,"addr":"::","core":1,"op":"listen"}"#,
        )
        .unwrap();
        assert_eq!(r, Request::Listen(bind));
        // A missing field is still an error.
        assert!(serde_json::from_str::<Request>(
            r#"{"op":"udp_bind","core":0,"addr":"::","port":53,"backlog":1}"#
        )
        .is_err());
    }
}
