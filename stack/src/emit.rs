//! The IP header of a packet the stack builds itself (a cookie SYN-ACK, a
//! UDP datagram): no options, hop limit 64, the IPv4 checksum filled.

use std::net::IpAddr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr};

/// Length of the IP header from `src` to `dst`; `None` for addresses of
/// two families.
#[inline]
pub(crate) fn ip_header_len(src: IpAddr, dst: IpAddr) -> Option<usize> {
    match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Some(20),
        (IpAddr::V6(_), IpAddr::V6(_)) => Some(40),
        _ => None,
    }
}

/// Write the IP header of a packet from `src` to `dst` carrying
/// `payload_len` bytes of `proto` into `buf`; returns the addresses for the
/// transport checksum and where the payload starts. Addresses of two
/// families, or a `buf` shorter than the header, write nothing: `None`.
#[inline]
pub(crate) fn emit_ip(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    proto: IpProtocol,
    payload_len: usize,
) -> Option<(IpAddress, IpAddress, usize)> {
    let header = ip_header_len(src, dst)?;
    let buf = buf.get_mut(..header.checked_add(payload_len)?)?;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let repr = Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                next_header: proto,
                payload_len,
                hop_limit: 64,
            };
            repr.emit(
                &mut Ipv4Packet::new_unchecked(buf),
                &ChecksumCapabilities::default(),
            );
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let repr = Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header: proto,
                payload_len,
                hop_limit: 64,
            };
            repr.emit(&mut Ipv6Packet::new_unchecked(buf));
        }
        _ => return None,
    }
    Some((src.into(), dst.into(), header))
}
