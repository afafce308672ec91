//! Path MTU discovery (RFC 1191 for IPv4, RFC 8201 for IPv6): an ICMP
//! "fragmentation needed" or ICMPv6 "packet too big" quoting one of our TCP
//! segments lowers that connection's send MSS, and what it had in flight
//! goes again at the new size (the socket's `on_packet_too_big`, patch 18
//! in vendor/README.md). Every segment the stack sends has DF set (IPv6
//! routers never fragment), so without this a path with a smaller MTU than
//! ours black-holes every full-size segment and the connection stalls.
//!
//! The message is checked as Linux's `tcp_v4_err`/`tcp_v6_err` check it
//! (RFC 5927): it must quote a TCP flow that has a connection, the quoted
//! sequence number must lie in SND.UNA..=SND.MAX, and the MTU is raised to
//! a floor (IPv4 552 as Linux's `ip_rt_min_pmtu`, IPv6 1280, the minimum
//! link MTU of RFC 8200) and only ever lowers the MSS. An IPv4 message
//! from a router older than RFC 1191 reports no MTU (a value below 68, the
//! IPv4 minimum, in practice 0): the estimate is then the next plateau of
//! RFC 1191 §7 below the quoted packet's length, floored the same way.
//!
//! The ICMP message comes from a router, so its outer addresses say nothing
//! of the flow: RSS (and any queue steering) sends it to whatever core's
//! queue hashes the router's address. The core that receives it looks the
//! quoted flow up in its flow table, then in the process's flow directory,
//! and hands the message to the owning core like any packet of a flow
//! another core owns (`Msg::Packet`), where it is checked and acted on.

use nic::Rings;

use super::{Engine, Pkt};
use crate::flow::Owner;
use crate::l2::ETH_HDR;
use crate::parse::{parse_too_big, FlowKey, ParsedIp, TooBig, TooBigError};
use crate::socket::ConnId;
use smoltcp::socket::tcp::PathMtu;
use smoltcp::wire::TcpSeqNumber;

/// The lowest IPv4 path MTU taken (Linux's `ip_rt_min_pmtu`).
pub const MIN_PMTU_V4: u32 = 552;
/// The lowest IPv6 path MTU (RFC 8200 §5: the minimum link MTU).
pub const MIN_PMTU_V6: u32 = 1280;

/// RFC 1191 §7's plateau table, for routers that report no MTU.
const PLATEAUS: [u32; 10] = [32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];

/// The path MTU to use for a message reporting `mtu` for a quoted packet
/// of `quoted_len` bytes, on IPv6 or not.
pub fn effective_mtu(v6: bool, mtu: u32, quoted_len: u32) -> u32 {
    if v6 {
        return mtu.max(MIN_PMTU_V6);
    }
    let mtu = if mtu < 68 {
        // RFC 1191 §5: an old router; the largest plateau below what it
        // could not forward.
        PLATEAUS
            .iter()
            .copied()
            .find(|&p| p < quoted_len)
            .unwrap_or(68)
    } else {
        mtu
    };
    mtu.max(MIN_PMTU_V4)
}

impl<R: Rings> Engine<R> {
    /// An ICMP "fragmentation needed" / "packet too big" (`parsed.l4` is
    /// `L4::TooBig`): act on it here, hand it to the core that owns the
    /// quoted flow, or count why it is ignored.
    pub(super) fn too_big(&mut self, pkt: Pkt, parsed: ParsedIp, rx_core: usize, hops: u8) {
        let quote = match &pkt {
            Pkt::Bytes(b) => parse_too_big(b),
            Pkt::Frame(f, len) => self
                .port
                .read(*f, |b| b.get(ETH_HDR..ETH_HDR + len).map(parse_too_big))
                .flatten()
                .unwrap_or(Err(TooBigError::Malformed)),
        };
        let tb = match quote {
            Ok(tb) => tb,
            Err(_) => {
                self.counters.icmp_frag_needed_malformed += 1;
                return self.release_pkt(pkt);
            }
        };
        match self.quoted_owner(&tb.key) {
            Some(Owner::Local(c)) => {
                self.path_mtu(c, &tb);
                self.release_pkt(pkt);
            }
            Some(Owner::Remote { core }) => {
                self.forward(core, pkt, parsed, None, rx_core, hops);
            }
            None => {
                self.counters.icmp_frag_needed_no_conn += 1;
                self.release_pkt(pkt);
            }
        }
    }

    /// Who holds the flow an ICMP error quotes: a connection of this core,
    /// another core (its flow entry here, or the process's flow directory),
    /// or nobody.
    pub(super) fn quoted_owner(&self, key: &FlowKey) -> Option<Owner> {
        match self.flows.lookup(key) {
            Some(o) => Some(o),
            None => self
                .shared
                .directory
                .owner(key)
                .filter(|&o| o != self.core)
                .map(|core| Owner::Remote { core }),
        }
    }

    /// Apply a checked message to connection `c`.
    fn path_mtu(&mut self, c: ConnId, tb: &TooBig) {
        let mtu = effective_mtu(tb.key.src.is_ipv6(), tb.mtu, tb.quoted_len);
        let Some(socket) = self.conns.socket(c) else {
            self.counters.icmp_frag_needed_no_conn += 1;
            return;
        };
        match socket.on_packet_too_big(TcpSeqNumber(tb.seq as i32), mtu as usize) {
            PathMtu::Lowered(_) => {
                self.counters.icmp_frag_needed += 1;
                // The resend goes out with the next egress pass.
                self.conns.mark_dirty(c);
            }
            PathMtu::OutOfWindow => self.counters.icmp_frag_needed_out_of_window += 1,
            PathMtu::NotLower => self.counters.icmp_frag_needed_bad_mtu += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_mtu_floors_and_plateaus() {
        // IPv6: the reported MTU, never below 1280.
        assert_eq!(effective_mtu(true, 1400, 1500), 1400);
        assert_eq!(effective_mtu(true, 600, 1500), 1280);
        assert_eq!(effective_mtu(true, 0, 1500), 1280);
        // IPv4: the reported MTU, never below 552 (Linux's min_pmtu).
        assert_eq!(effective_mtu(false, 1280, 1500), 1280);
        assert_eq!(effective_mtu(false, 576, 1500), 576);
        assert_eq!(effective_mtu(false, 68, 1500), 552);
        // An old router (no MTU): the plateau below the quoted length, one
        // step per message.
        assert_eq!(effective_mtu(false, 0, 1500), 1492);
        assert_eq!(effective_mtu(false, 0, 1492), 1006);
        assert_eq!(effective_mtu(false, 0, 1006), 552);
        assert_eq!(effective_mtu(false, 0, 9000), 8166);
        assert_eq!(effective_mtu(false, 67, 40), 552);
    }
}
