//! One query in, one response out, into a caller's buffer: parse (wire.rs),
//! look up (index.rs), copy the pre-encoded body, patch its pointers, add
//! the OPT record, decide truncation. Nothing here allocates.

use std::sync::Arc;

use super::index::{Answer, Index, Lookup};
use super::wire::{
    parse_query, put_header, put_u16, rcode, rtype, Edns, Header, ParseFail, Query, AA, CD,
    CLASS_ANY, CLASS_IN, HEADER_LEN, QR, RD, TC,
};

/// UDP payload size without EDNS (RFC 1035).
pub const CLASSIC_UDP: usize = 512;
/// Default largest UDP response (DNS flag day 2020: fits any path's MTU).
pub const DEFAULT_MAX_UDP: u16 = 1232;
/// Largest response over TCP (the length prefix is 16 bits).
pub const MAX_TCP: usize = 65535;
/// Length of the OPT record we add.
const OPT_LEN: usize = 11;

/// How the query arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: responses are limited by the requester's payload size.
    Udp,
    /// TCP: up to 65535 bytes.
    Tcp,
}

/// What was sent back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Response length in the output buffer.
    pub len: usize,
    /// Response code (extended: BADVERS is 16).
    pub rcode: u16,
    /// The TC flag was set.
    pub truncated: bool,
}

/// The result of one query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send `out[..len]`.
    Send(Outcome),
    /// Nothing can be answered (no header, or not a query): drop.
    Drop,
}

/// Answers queries from an index. One per worker (it holds the reusable
/// parse state); the index is shared.
pub struct Responder {
    index: Arc<Index>,
    max_udp: u16,
    q: Query,
    lower: [u8; 255],
}

impl Responder {
    /// A responder over `index` whose UDP responses never exceed `max_udp`
    /// (clamped to 512..=65535), whatever the client allows.
    pub fn new(index: Arc<Index>, max_udp: u16) -> Responder {
        Responder {
            index,
            max_udp: max_udp.max(CLASSIC_UDP as u16),
            q: Query::default(),
            lower: [0; 255],
        }
    }

    /// The index.
    pub fn index(&self) -> &Arc<Index> {
        &self.index
    }

    /// Answer `msg` into `out` (at least 65535 bytes for TCP, at least the
    /// largest UDP size otherwise; a shorter buffer limits the response).
    pub fn respond(&mut self, msg: &[u8], transport: Transport, out: &mut [u8]) -> Reply {
        match parse_query(msg, &mut self.q) {
            Ok(()) => {}
            Err(ParseFail::Drop) => return Reply::Drop,
            Err(ParseFail::NotImp) => {
                return Reply::Send(self.error(out, rcode::NOTIMP, false, None));
            }
            Err(ParseFail::FormErr { question, .. }) => {
                return Reply::Send(self.error(out, rcode::FORMERR, question, None));
            }
        }
        let edns = self.q.edns;
        let limit = match (transport, edns) {
            (Transport::Tcp, _) => MAX_TCP,
            (Transport::Udp, None) => CLASSIC_UDP,
            (Transport::Udp, Some(e)) => (e.udp_size.max(CLASSIC_UDP as u16))
                .min(self.max_udp)
                .into(),
        }
        .min(out.len());
        if let Some(e) = edns {
            if e.version > 0 {
                return Reply::Send(self.error(out, rcode::BADVERS as u8, true, Some(e)));
            }
        }
        if self.q.qclass != CLASS_IN && self.q.qclass != CLASS_ANY {
            return Reply::Send(self.error(out, rcode::REFUSED, true, edns));
        }
        match self.q.qtype {
            rtype::AXFR | rtype::IXFR => {
                return Reply::Send(self.error(out, rcode::REFUSED, true, edns));
            }
            rtype::MAILA | rtype::MAILB | rtype::TKEY | rtype::TSIG => {
                return Reply::Send(self.error(out, rcode::NOTIMP, true, edns));
            }
            _ => {}
        }
        let qlen = self.q.qname.len;
        let lower = &mut self.lower[..qlen];
        lower.copy_from_slice(self.q.qname.as_wire());
        lower.make_ascii_lowercase();
        let udp = transport == Transport::Udp;
        let found = self
            .index
            .lookup(lower, self.q.qname.label_offsets(), self.q.qtype, udp);
        match found {
            Lookup::Refused => Reply::Send(self.error(out, rcode::REFUSED, true, edns)),
            Lookup::Answer(a) => {
                Reply::Send(write_answer(&self.q, a, edns, limit, self.max_udp, out))
            }
        }
    }

    /// A response with no records: the header, the question if it was read,
    /// the OPT record if the query had one.
    fn error(&self, out: &mut [u8], code: u8, question: bool, edns: Option<Edns>) -> Outcome {
        let q = &self.q;
        let ext = if code as u16 == rcode::BADVERS { 1 } else { 0 };
        let mut pos = HEADER_LEN;
        let mut qd = 0;
        if question {
            if let Some(n) = write_question(q, out) {
                pos = n;
                qd = 1;
            }
        }
        let mut ar = 0;
        if let Some(e) = edns {
            if let Some(n) = write_opt(out, pos, e, ext, self.max_udp) {
                pos = n;
                ar = 1;
            }
        }
        let h = Header {
            id: q.header.id,
            flags: QR | (q.header.flags & (0x7800 | RD | CD)) | (code as u16 & 0xF),
            qdcount: qd,
            ancount: 0,
            nscount: 0,
            arcount: ar,
        };
        put_header(out, &h);
        Outcome {
            len: pos.min(out.len()),
            rcode: if ext == 1 {
                rcode::BADVERS
            } else {
                code.into()
            },
            truncated: false,
        }
    }
}

/// The question (as received, uncompressed) after the header. Returns the
/// offset after it.
fn write_question(q: &Query, out: &mut [u8]) -> Option<usize> {
    let n = q.qname.len;
    let dst = out.get_mut(HEADER_LEN..HEADER_LEN + n + 4)?;
    dst[..n].copy_from_slice(q.qname.as_wire());
    dst[n..n + 2].copy_from_slice(&q.qtype.to_be_bytes());
    dst[n + 2..n + 4].copy_from_slice(&q.qclass.to_be_bytes());
    Some(HEADER_LEN + n + 4)
}

/// Our OPT record at `pos`: our UDP size, version 0, the DO bit copied.
fn write_opt(out: &mut [u8], pos: usize, e: Edns, ext_rcode: u8, size: u16) -> Option<usize> {
    let dst = out.get_mut(pos..pos + OPT_LEN)?;
    dst[0] = 0;
    dst[1..3].copy_from_slice(&rtype::OPT.to_be_bytes());
    dst[3..5].copy_from_slice(&size.to_be_bytes());
    dst[5] = ext_rcode;
    dst[6] = 0;
    dst[7..9].copy_from_slice(&(if e.dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
    dst[9..11].copy_from_slice(&0u16.to_be_bytes());
    Some(pos + OPT_LEN)
}

fn write_answer(
    q: &Query,
    a: &Answer,
    edns: Option<Edns>,
    limit: usize,
    max_udp: u16,
    out: &mut [u8],
) -> Outcome {
    let qlen = q.qname.len;
    let opt = if edns.is_some() { OPT_LEN } else { 0 };
    let Some(base) = write_question(q, out) else {
        return Outcome {
            len: 0,
            rcode: rcode::SERVFAIL.into(),
            truncated: false,
        };
    };
    let [mut an, mut ns, mut ar] = a.counts;
    let mut truncated = false;
    let body = if base + a.bytes.len() + opt <= limit {
        a.bytes.len()
    } else if a.additional_optional && base + a.cut + opt <= limit {
        ar = 0;
        a.cut
    } else {
        truncated = true;
        an = 0;
        ns = 0;
        ar = 0;
        0
    };
    let mut pos = base;
    if body > 0 {
        if let Some(dst) = out.get_mut(base..base + body) {
            dst.copy_from_slice(&a.bytes[..body]);
            for f in a.fixups.iter() {
                let p = f.pos as usize;
                if p + 2 <= body {
                    let t = Answer::target(f.at, qlen, base);
                    put_u16(out, base + p, 0xC000 | (t as u16 & 0x3FFF));
                }
            }
            pos = base + body;
        }
    }
    if let Some(e) = edns {
        if let Some(n) = write_opt(out, pos, e, 0, max_udp) {
            pos = n;
            ar += 1;
        }
    }
    let h = Header {
        id: q.header.id,
        flags: QR
            | (q.header.flags & (RD | CD))
            | if a.aa { AA } else { 0 }
            | if truncated { TC } else { 0 }
            | u16::from(a.rcode),
        qdcount: 1,
        ancount: an,
        nscount: ns,
        arcount: ar,
    };
    put_header(out, &h);
    Outcome {
        len: pos,
        rcode: a.rcode.into(),
        truncated,
    }
}
