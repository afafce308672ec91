//! UDP: datagrams do not go through smoltcp. The demux checked them; each
//! member has a bounded datagram queue (a full queue drops and counts), and
//! `send_to` builds the IP and UDP headers itself.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use nic::Rings;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpProtocol, UdpPacket, UdpRepr};

use super::{Engine, Pkt};
use crate::emit::{emit_ip, ip_header_len};
use crate::l2::ETH_HDR;
use crate::parse::{ParsedIp, Proto};
use crate::reuseport::{BindAddr, BindError, BindOptions, ListenerCounters, MemberId};
use crate::socket::{UdpError, UdpId};

/// A received datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Sender.
    pub from: SocketAddr,
    /// Our address it was sent to.
    pub to: IpAddr,
    /// Payload.
    pub data: Vec<u8>,
}

pub(super) struct UdpMember {
    cap: usize,
    addr: BindAddr,
    port: u16,
    queue: VecDeque<Datagram>,
    counters: Arc<ListenerCounters>,
}

impl<R: Rings> Engine<R> {
    pub(super) fn deliver_udp(&mut self, m: MemberId, pkt: Pkt, parsed: &ParsedIp) {
        let key = parsed.key;
        let Some(u) = self.udp.get_mut(&m) else {
            return self.release_pkt(pkt);
        };
        if u.queue.len() >= u.cap {
            u.counters.dropped.fetch_add(1, Ordering::Relaxed);
            self.counters.udp_queue_full += 1;
            return self.release_pkt(pkt);
        }
        let mut data = self.buffer();
        let plen = parsed.payload_len;
        // The payload starts after the IP and UDP headers (parse_ip allows no
        // IPv6 extension headers); the UDP length, not the IP length, says
        // where it ends.
        let copy = |ip: &[u8], out: &mut Vec<u8>| {
            let ip_hdr = match ip.first().map(|b| b >> 4) {
                Some(4) => usize::from(ip[0] & 0x0f) * 4,
                _ => 40,
            };
            let start = ip_hdr + 8;
            if let Some(p) = ip.get(start..start + plen) {
                out.extend_from_slice(p);
            }
        };
        match &pkt {
            Pkt::Frame(f, len) => {
                let len = *len;
                self.port.read(*f, |b| {
                    if let Some(ip) = b.get(ETH_HDR..ETH_HDR + len) {
                        copy(ip, &mut data);
                    }
                });
            }
            Pkt::Bytes(b) => copy(b, &mut data),
        }
        let Some(u) = self.udp.get_mut(&m) else {
            return;
        };
        u.counters
            .bytes_in
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        u.queue.push_back(Datagram {
            from: SocketAddr::new(key.src, key.sport),
            to: key.dst,
            data,
        });
        self.counters.udp_rx += 1;
        if let Pkt::Bytes(b) = pkt {
            self.recycle(b);
        }
    }

    /// Bind a UDP socket on `addr:port`, joining the port's reuseport group
    /// when the bind rules allow it. Datagrams of one 4-tuple reach the same
    /// member while the group is stable.
    pub fn udp_bind(
        &mut self,
        addr: BindAddr,
        port: u16,
        opts: BindOptions,
    ) -> Result<UdpId, BindError> {
        let cap = opts.backlog;
        let (id, counters) = self.bind_member(Proto::Udp, addr, port, opts)?;
        self.udp.insert(
            id,
            UdpMember {
                cap,
                addr,
                port,
                queue: VecDeque::new(),
                counters,
            },
        );
        Ok(UdpId(id))
    }

    /// Close a UDP socket; queued datagrams are dropped.
    pub fn udp_close(&mut self, id: UdpId) -> Result<(), BindError> {
        let u = self.udp.remove(&id.0).ok_or(BindError::NoSuchMember)?;
        for d in u.queue {
            self.recycle(d.data);
        }
        self.retire(id.0)
    }

    /// Receive one datagram into `buf`: its length (truncated to `buf`), the
    /// sender and our address it was sent to.
    pub fn recv_from(
        &mut self,
        id: UdpId,
        buf: &mut [u8],
    ) -> Result<Option<(usize, SocketAddr, IpAddr)>, UdpError> {
        let u = self.udp.get_mut(&id.0).ok_or(UdpError::NotFound)?;
        let Some(d) = u.queue.pop_front() else {
            return Ok(None);
        };
        let n = d.data.len().min(buf.len());
        buf[..n].copy_from_slice(&d.data[..n]);
        let r = (n, d.from, d.to);
        self.recycle(d.data);
        Ok(Some(r))
    }

    /// Datagrams waiting on a UDP socket.
    pub fn udp_pending(&self, id: UdpId) -> usize {
        self.udp.get(&id.0).map_or(0, |u| u.queue.len())
    }

    /// Send one datagram to `to`, from `from` (default: the bound address,
    /// or our address of `to`'s family).
    pub fn send_to(
        &mut self,
        id: UdpId,
        data: &[u8],
        to: SocketAddr,
        from: Option<IpAddr>,
    ) -> Result<(), UdpError> {
        let u = self.udp.get(&id.0).ok_or(UdpError::NotFound)?;
        let src = from
            .or(match u.addr {
                BindAddr::V4(a) => Some(IpAddr::V4(a)),
                BindAddr::V6(a) => Some(IpAddr::V6(a)),
                _ => None,
            })
            .or(match to {
                SocketAddr::V4(_) => self.cfg.ipv4.map(|(a, _)| IpAddr::V4(a)),
                SocketAddr::V6(_) => self.cfg.ipv6.map(|(a, _)| IpAddr::V6(a)),
            })
            .ok_or(UdpError::TooLarge)?;
        let sport = u.port;
        let counters = u.counters.clone();
        let udp_len = 8 + data.len();
        let caps = ChecksumCapabilities::default();
        let udp_repr = UdpRepr {
            src_port: sport,
            dst_port: to.port(),
        };
        let dst = to.ip();
        let ip_len = ip_header_len(src, dst).ok_or(UdpError::TooLarge)? + udp_len;
        if ip_len > self.port.config().mtu {
            return Err(UdpError::TooLarge);
        }
        let ok = self.port.send_ip(ip_len, |buf| {
            let Some((s, d, off)) = emit_ip(buf, src, dst, IpProtocol::Udp, udp_len) else {
                return;
            };
            let mut udp = UdpPacket::new_unchecked(&mut buf[off..]);
            udp_repr.emit(
                &mut udp,
                &s,
                &d,
                data.len(),
                |p| p.copy_from_slice(data),
                &caps,
            );
        });
        if ok {
            counters
                .bytes_out
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            self.counters.udp_tx += 1;
            Ok(())
        } else {
            self.counters.udp_tx_dropped += 1;
            Err(UdpError::BufferFull)
        }
    }
}
