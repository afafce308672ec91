//! DNS wire format on the query path: a hand-written, bounds-checked parser
//! of the header, the question and the OPT record of a query (no allocation,
//! no panic on any bytes), and the constants the responder writes.
//!
//! Every read goes through `get`, so a short or hostile message is an error,
//! never an out-of-bounds index.

/// Size of the fixed header.
pub const HEADER_LEN: usize = 12;
/// Longest name in wire format, the terminating root label included.
pub const MAX_NAME: usize = 255;
/// Longest label.
pub const MAX_LABEL: usize = 63;
/// Most labels a name of 255 bytes can hold (127 one-byte labels and the root).
pub const MAX_LABELS: usize = 128;
/// Most compression pointers followed while reading one name. Pointers
/// must also point backwards (so a chain ends), but a 64 KiB TCP message
/// could otherwise hold a chain of ~32,000 of them; a compressor writes
/// one per name (a suffix already in the message), so 16 is ample.
pub const MAX_POINTER_HOPS: usize = 16;
/// Most records a query's additional section may hold: the OPT record and
/// a transaction signature (TSIG or SIG(0)). A query with more gets
/// FORMERR before any of them is read (Unbound allows one), so a 64 KiB
/// message never costs more than three names read.
pub const MAX_ADDITIONAL: u16 = 2;

/// Header flag: response.
pub const QR: u16 = 0x8000;
/// Header flag: authoritative answer.
pub const AA: u16 = 0x0400;
/// Header flag: truncated.
pub const TC: u16 = 0x0200;
/// Header flag: recursion desired (copied).
pub const RD: u16 = 0x0100;
/// Header flag: checking disabled (copied).
pub const CD: u16 = 0x0010;

/// Response codes.
pub mod rcode {
    /// No error.
    pub const NOERROR: u8 = 0;
    /// Format error.
    pub const FORMERR: u8 = 1;
    /// Server failure.
    pub const SERVFAIL: u8 = 2;
    /// Name does not exist.
    pub const NXDOMAIN: u8 = 3;
    /// Not implemented.
    pub const NOTIMP: u8 = 4;
    /// Refused.
    pub const REFUSED: u8 = 5;
    /// Bad EDNS version (extended: 16, carried in the OPT record).
    pub const BADVERS: u16 = 16;
}

/// Record types the query path treats specially.
pub mod rtype {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// Name server.
    pub const NS: u16 = 2;
    /// Canonical name.
    pub const CNAME: u16 = 5;
    /// Start of authority.
    pub const SOA: u16 = 6;
    /// Domain name pointer.
    pub const PTR: u16 = 12;
    /// Mail exchange.
    pub const MX: u16 = 15;
    /// Text.
    pub const TXT: u16 = 16;
    /// IPv6 address.
    pub const AAAA: u16 = 28;
    /// Service.
    pub const SRV: u16 = 33;
    /// EDNS OPT pseudo-record.
    pub const OPT: u16 = 41;
    /// Delegation signer (answered from the parent side of a cut).
    pub const DS: u16 = 43;
    /// Transaction key.
    pub const TKEY: u16 = 249;
    /// Transaction signature.
    pub const TSIG: u16 = 250;
    /// Incremental zone transfer.
    pub const IXFR: u16 = 251;
    /// Zone transfer.
    pub const AXFR: u16 = 252;
    /// Mailbox records (obsolete).
    pub const MAILB: u16 = 253;
    /// Mail agent records (obsolete).
    pub const MAILA: u16 = 254;
    /// Any type.
    pub const ANY: u16 = 255;
}

/// Class IN.
pub const CLASS_IN: u16 = 1;
/// Class ANY (QCLASS only).
pub const CLASS_ANY: u16 = 255;

/// The fixed header of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Transaction id.
    pub id: u16,
    /// Flags, opcode and rcode.
    pub flags: u16,
    /// Question count.
    pub qdcount: u16,
    /// Answer count.
    pub ancount: u16,
    /// Authority count.
    pub nscount: u16,
    /// Additional count.
    pub arcount: u16,
}

impl Header {
    /// The header of `msg`, if it has 12 bytes.
    pub fn read(msg: &[u8]) -> Option<Header> {
        let h = msg.get(..HEADER_LEN)?;
        let w = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        Some(Header {
            id: w(0),
            flags: w(2),
            qdcount: w(4),
            ancount: w(6),
            nscount: w(8),
            arcount: w(10),
        })
    }

    /// The opcode (0 = QUERY).
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xF) as u8
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        self.flags & QR != 0
    }
}

/// Why a name could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The message ends inside the name.
    #[error("message ends inside a name")]
    Truncated,
    /// A label length byte with the reserved high bits 01 or 10.
    #[error("label type {0:#04x} is not supported")]
    BadLabelType(u8),
    /// The name is longer than 255 bytes.
    #[error("name longer than 255 bytes")]
    TooLong,
    /// A compression pointer that does not point strictly backwards (a loop
    /// or a forward reference).
    #[error("compression pointer to {0} does not point backwards")]
    BadPointer(u16),
    /// More than [`MAX_POINTER_HOPS`] compression pointers in one name.
    #[error("more than {MAX_POINTER_HOPS} compression pointers in a name")]
    TooManyPointers,
}

/// A name read from a message: the uncompressed wire form (original case)
/// and the offsets of its labels.
pub struct NameBuf {
    /// Uncompressed wire form; `len` bytes are valid.
    pub wire: [u8; MAX_NAME],
    /// Bytes of `wire` in use, the root label included.
    pub len: usize,
    /// Offset of each label in `wire`, the root label excluded.
    pub labels: [u8; MAX_LABELS],
    /// Labels in use.
    pub nlabels: usize,
}

impl Default for NameBuf {
    fn default() -> Self {
        NameBuf {
            wire: [0; MAX_NAME],
            len: 0,
            labels: [0; MAX_LABELS],
            nlabels: 0,
        }
    }
}

impl NameBuf {
    /// The wire form.
    pub fn as_wire(&self) -> &[u8] {
        &self.wire[..self.len]
    }

    /// Label offsets, leftmost first.
    pub fn label_offsets(&self) -> &[u8] {
        &self.labels[..self.nlabels]
    }

    /// Lowercase the name in place (length bytes are below 64 and so are
    /// never changed by ASCII lowercasing).
    pub fn make_lowercase(&mut self) {
        self.wire[..self.len].make_ascii_lowercase();
    }

    /// Read the name at `pos` in `msg`. Returns the offset just after the
    /// name in the message (after the first pointer, if any).
    ///
    /// Compression pointers must point strictly before the start of the
    /// label run they end, so a chain of them always moves backwards and
    /// cannot loop; at most [`MAX_POINTER_HOPS`] are followed. The work is
    /// bounded by the name, never by the message: at most 255 bytes copied
    /// and 16 hops.
    pub fn read(&mut self, msg: &[u8], pos: usize) -> Result<usize, NameError> {
        self.len = 0;
        self.nlabels = 0;
        let mut hops = 0;
        let mut p = pos;
        let mut run_start = pos;
        let mut end = None;
        loop {
            let b = *msg.get(p).ok_or(NameError::Truncated)?;
            match b & 0xC0 {
                0x00 => {
                    let l = b as usize;
                    if l == 0 {
                        if self.len + 1 > MAX_NAME {
                            return Err(NameError::TooLong);
                        }
                        self.wire[self.len] = 0;
                        self.len += 1;
                        return Ok(end.unwrap_or(p + 1));
                    }
                    // The label, and at least the root label after it.
                    if self.len + 1 + l + 1 > MAX_NAME {
                        return Err(NameError::TooLong);
                    }
                    let label = msg.get(p + 1..p + 1 + l).ok_or(NameError::Truncated)?;
                    if self.nlabels >= MAX_LABELS {
                        return Err(NameError::TooLong);
                    }
                    self.labels[self.nlabels] = self.len as u8;
                    self.nlabels += 1;
                    self.wire[self.len] = b;
                    self.wire[self.len + 1..self.len + 1 + l].copy_from_slice(label);
                    self.len += 1 + l;
                    p += 1 + l;
                }
                0xC0 => {
                    let b2 = *msg.get(p + 1).ok_or(NameError::Truncated)?;
                    let target = (u16::from(b & 0x3F) << 8) | u16::from(b2);
                    if end.is_none() {
                        end = Some(p + 2);
                    }
                    if target as usize >= run_start {
                        return Err(NameError::BadPointer(target));
                    }
                    hops += 1;
                    if hops > MAX_POINTER_HOPS {
                        return Err(NameError::TooManyPointers);
                    }
                    run_start = target as usize;
                    p = target as usize;
                }
                _ => return Err(NameError::BadLabelType(b)),
            }
        }
    }
}

/// EDNS(0) information of a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// Requester's UDP payload size (as sent; values below 512 mean 512).
    pub udp_size: u16,
    /// EDNS version.
    pub version: u8,
    /// DNSSEC OK bit.
    pub dnssec_ok: bool,
}

/// Why a query gets FORMERR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormErr {
    /// QDCOUNT is not 1.
    #[error("question count {0} (must be 1)")]
    QuestionCount(u16),
    /// A query carries answer or authority records.
    #[error("query carries answer or authority records")]
    Sections,
    /// The question name is malformed.
    #[error("question name: {0}")]
    Name(NameError),
    /// The message ends inside the question.
    #[error("message ends inside the question")]
    ShortQuestion,
    /// The question type cannot be asked (OPT).
    #[error("question type {0} cannot be asked")]
    MetaType(u16),
    /// The additional section is malformed.
    #[error("additional section: {0}")]
    Additional(&'static str),
}

/// A parsed query: the question (uncompressed, original case) and EDNS.
pub struct Query {
    /// Header.
    pub header: Header,
    /// Question name as received (uncompressed).
    pub qname: NameBuf,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// OPT record, if any.
    pub edns: Option<Edns>,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            header: Header {
                id: 0,
                flags: 0,
                qdcount: 0,
                ancount: 0,
                nscount: 0,
                arcount: 0,
            },
            qname: NameBuf::default(),
            qtype: 0,
            qclass: 0,
            edns: None,
        }
    }
}

/// How far parsing a query got when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseFail {
    /// No usable header (too short, or a response): drop silently.
    Drop,
    /// Not a QUERY: NOTIMP (header only).
    NotImp,
    /// Malformed; `question` tells whether the question was read (and can be
    /// echoed).
    FormErr {
        /// Why.
        why: FormErr,
        /// Whether `Query::qname/qtype/qclass` are valid.
        question: bool,
    },
}

/// Parse a query into `q` (reused between queries: no allocation).
pub fn parse_query(msg: &[u8], q: &mut Query) -> Result<(), ParseFail> {
    let header = Header::read(msg).ok_or(ParseFail::Drop)?;
    q.header = header;
    q.edns = None;
    if header.is_response() {
        return Err(ParseFail::Drop);
    }
    if header.opcode() != 0 {
        return Err(ParseFail::NotImp);
    }
    let form = |why| ParseFail::FormErr {
        why,
        question: false,
    };
    if header.qdcount != 1 {
        return Err(form(FormErr::QuestionCount(header.qdcount)));
    }
    let p = q
        .qname
        .read(msg, HEADER_LEN)
        .map_err(|e| form(FormErr::Name(e)))?;
    let tail = msg.get(p..p + 4).ok_or(form(FormErr::ShortQuestion))?;
    q.qtype = u16::from_be_bytes([tail[0], tail[1]]);
    q.qclass = u16::from_be_bytes([tail[2], tail[3]]);
    let mut p = p + 4;
    let formq = |why| ParseFail::FormErr {
        why,
        question: true,
    };
    if q.qtype == rtype::OPT {
        return Err(formq(FormErr::MetaType(q.qtype)));
    }
    if header.ancount != 0 || header.nscount != 0 {
        return Err(formq(FormErr::Sections));
    }
    // Only what the answer needs is read: the OPT record (and a signature
    // next to it). More records are refused unread.
    if header.arcount > MAX_ADDITIONAL {
        return Err(formq(FormErr::Additional("more than 2 additional records")));
    }
    let mut scratch = NameBuf::default();
    for _ in 0..header.arcount {
        let start = p;
        p = scratch
            .read(msg, p)
            .map_err(|_| formq(FormErr::Additional("bad record owner")))?;
        let fixed = msg
            .get(p..p + 10)
            .ok_or(formq(FormErr::Additional("truncated record")))?;
        let ty = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        let rdata = msg
            .get(p + 10..p + 10 + rdlen)
            .ok_or(formq(FormErr::Additional("truncated record data")))?;
        p += 10 + rdlen;
        if ty != rtype::OPT {
            // TSIG and the like: not supported, ignored.
            continue;
        }
        if q.edns.is_some() {
            return Err(formq(FormErr::Additional("more than one OPT record")));
        }
        if msg.get(start) != Some(&0) {
            return Err(formq(FormErr::Additional("OPT owner is not the root")));
        }
        // Options must be well-formed TLVs filling the record data.
        let mut o = 0;
        while o < rdata.len() {
            let hdr = rdata
                .get(o..o + 4)
                .ok_or(formq(FormErr::Additional("truncated EDNS option")))?;
            let olen = u16::from_be_bytes([hdr[2], hdr[3]]) as usize;
            if o + 4 + olen > rdata.len() {
                return Err(formq(FormErr::Additional("truncated EDNS option")));
            }
            o += 4 + olen;
        }
        q.edns = Some(Edns {
            udp_size: class,
            version: (ttl >> 16) as u8,
            dnssec_ok: ttl & 0x8000 != 0,
        });
    }
    Ok(())
}

/// Write a 16-bit value at `pos` (the caller checked the bounds).
pub fn put_u16(buf: &mut [u8], pos: usize, v: u16) {
    if let Some(b) = buf.get_mut(pos..pos + 2) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

/// Write a header into `buf[..12]` (no-op if `buf` is shorter).
pub fn put_header(buf: &mut [u8], h: &Header) {
    if buf.len() < HEADER_LEN {
        return;
    }
    put_u16(buf, 0, h.id);
    put_u16(buf, 2, h.flags);
    put_u16(buf, 4, h.qdcount);
    put_u16(buf, 6, h.ancount);
    put_u16(buf, 8, h.nscount);
    put_u16(buf, 10, h.arcount);
}

/// Wire form of a dotted name, for tests and tools: `"www.example."` (a
/// missing final dot is implied). No escapes.
pub fn wire_name(dotted: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in dotted.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_bytes(id: u16, flags: u16, qname: &[u8], qtype: u16) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&flags.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(qname);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m
    }

    fn add_opt(m: &mut Vec<u8>, size: u16, version: u8, do_bit: bool, rdata: &[u8]) {
        let ar = u16::from_be_bytes([m[10], m[11]]) + 1;
        m[10..12].copy_from_slice(&ar.to_be_bytes());
        m.push(0);
        m.extend_from_slice(&rtype::OPT.to_be_bytes());
        m.extend_from_slice(&size.to_be_bytes());
        m.push(0);
        m.push(version);
        m.extend_from_slice(&(if do_bit { 0x8000u16 } else { 0 }).to_be_bytes());
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    }

    #[test]
    fn header_and_question() {
        let m = query_bytes(0xBEEF, RD, &wire_name("WwW.Example.com"), rtype::A);
        let mut q = Query::default();
        parse_query(&m, &mut q).unwrap();
        assert_eq!(q.header.id, 0xBEEF);
        assert_eq!(q.qtype, rtype::A);
        assert_eq!(q.qclass, CLASS_IN);
        assert_eq!(q.qname.as_wire(), &wire_name("WwW.Example.com")[..]);
        assert_eq!(q.qname.label_offsets(), &[0, 4, 12]);
        assert!(q.edns.is_none());
        q.qname.make_lowercase();
        assert_eq!(q.qname.as_wire(), &wire_name("www.example.com")[..]);
    }

    #[test]
    fn truncated_header_is_dropped() {
        let m = query_bytes(1, 0, &wire_name("a.b"), rtype::A);
        let mut q = Query::default();
        for n in 0..HEADER_LEN {
            assert_eq!(
                parse_query(&m[..n], &mut q),
                Err(ParseFail::Drop),
                "len {n}"
            );
        }
    }

    #[test]
    fn responses_are_dropped_and_other_opcodes_notimp() {
        let mut q = Query::default();
        let m = query_bytes(1, QR, &wire_name("a.b"), rtype::A);
        assert_eq!(parse_query(&m, &mut q), Err(ParseFail::Drop));
        let m = query_bytes(1, 4 << 11, &wire_name("a.b"), rtype::SOA); // NOTIFY
        assert_eq!(parse_query(&m, &mut q), Err(ParseFail::NotImp));
        let m = query_bytes(1, 5 << 11, &wire_name("a.b"), rtype::SOA); // UPDATE
        assert_eq!(parse_query(&m, &mut q), Err(ParseFail::NotImp));
    }

    fn formerr(m: &[u8]) -> (FormErr, bool) {
        let mut q = Query::default();
        match parse_query(m, &mut q) {
            Err(ParseFail::FormErr { why, question }) => (why, question),
            other => panic!("expected FORMERR, got {other:?}"),
        }
    }

    #[test]
    fn question_count_must_be_one() {
        let mut m = query_bytes(1, 0, &wire_name("a.b"), rtype::A);
        m[5] = 0;
        assert_eq!(formerr(&m).0, FormErr::QuestionCount(0));
        m[5] = 2;
        assert_eq!(formerr(&m).0, FormErr::QuestionCount(2));
    }

    #[test]
    fn truncated_question() {
        let m = query_bytes(1, 0, &wire_name("abc.de"), rtype::A);
        for n in HEADER_LEN..m.len() {
            let (why, _) = formerr(&m[..n]);
            assert!(
                matches!(
                    why,
                    FormErr::Name(NameError::Truncated) | FormErr::ShortQuestion
                ),
                "len {n}: {why:?}"
            );
        }
    }

    #[test]
    fn bad_label_lengths() {
        // Length byte says 10, only 3 bytes follow before the end.
        let mut m = query_bytes(1, 0, &[10, b'a', b'b', b'c'], rtype::A);
        m.truncate(HEADER_LEN + 4);
        assert_eq!(formerr(&m).0, FormErr::Name(NameError::Truncated));
        // Label types 01 and 10 are not allowed.
        for b in [0x40u8, 0x7F, 0x80, 0xBF] {
            let m = query_bytes(1, 0, &[b, 0], rtype::A);
            assert_eq!(formerr(&m).0, FormErr::Name(NameError::BadLabelType(b)));
        }
    }

    #[test]
    fn label_longer_than_63_is_a_label_type_error() {
        // 64 = 0x40: the high bits are 01.
        let mut name = vec![64u8];
        name.extend_from_slice(&[b'x'; 64]);
        name.push(0);
        let m = query_bytes(1, 0, &name, rtype::A);
        assert_eq!(formerr(&m).0, FormErr::Name(NameError::BadLabelType(64)));
        // 63 is fine.
        let mut name = vec![63u8];
        name.extend_from_slice(&[b'x'; 63]);
        name.push(0);
        let m = query_bytes(1, 0, &name, rtype::A);
        let mut q = Query::default();
        parse_query(&m, &mut q).unwrap();
        assert_eq!(q.qname.len, 65);
    }

    #[test]
    fn name_longer_than_255() {
        // 4 labels of 63 = 256 bytes with length bytes, + root = 257.
        let mut name = Vec::new();
        for _ in 0..4 {
            name.push(63u8);
            name.extend_from_slice(&[b'y'; 63]);
        }
        name.push(0);
        let m = query_bytes(1, 0, &name, rtype::A);
        assert_eq!(formerr(&m).0, FormErr::Name(NameError::TooLong));
        // 3 x 63 + 61 = 253 + root: 254... exactly 255 is allowed.
        let mut name = Vec::new();
        for _ in 0..3 {
            name.push(63u8);
            name.extend_from_slice(&[b'y'; 63]);
        }
        name.push(61);
        name.extend_from_slice(&[b'z'; 61]);
        name.push(0);
        assert_eq!(name.len(), 255);
        let m = query_bytes(1, 0, &name, rtype::A);
        let mut q = Query::default();
        parse_query(&m, &mut q).unwrap();
        assert_eq!(q.qname.len, 255);
        // 127 one-byte labels + root = 255: the most labels there can be.
        let mut name = Vec::new();
        for _ in 0..127 {
            name.extend_from_slice(&[1, b'q']);
        }
        name.push(0);
        let m = query_bytes(1, 0, &name, rtype::A);
        parse_query(&m, &mut q).unwrap();
        assert_eq!(q.qname.nlabels, 127);
    }

    #[test]
    fn compression_pointers() {
        // A backward pointer from the additional section's owner to the
        // question is fine (OPT owner must be root though: use a TSIG-like
        // record of another type).
        let mut m = query_bytes(1, 0, &wire_name("example.com"), rtype::A);
        m[11] = 1;
        m.extend_from_slice(&[0xC0, 12]);
        m.extend_from_slice(&99u16.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let mut q = Query::default();
        parse_query(&m, &mut q).unwrap();

        // Read a name that uses a pointer into an earlier name.
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(&wire_name("example.com")); // at 12
        let second = msg.len();
        msg.extend_from_slice(&[3, b'w', b'w', b'w', 0xC0, 12]);
        let mut n = NameBuf::default();
        let end = n.read(&msg, second).unwrap();
        assert_eq!(end, msg.len());
        assert_eq!(n.as_wire(), &wire_name("www.example.com")[..]);
        assert_eq!(n.label_offsets(), &[0, 4, 12]);
    }

    #[test]
    fn pointer_loops_and_forward_pointers() {
        let mut n = NameBuf::default();
        // Pointer to itself.
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(&[0xC0, 12]);
        assert_eq!(n.read(&msg, 12), Err(NameError::BadPointer(12)));
        // Two pointers pointing at each other.
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(&[1, b'a', 0xC0, 16, 1, b'b', 0xC0, 12]);
        assert!(matches!(n.read(&msg, 12), Err(NameError::BadPointer(16))));
        // From 16: b, back to 12 (fine), a, then forward to 16: refused.
        assert!(matches!(n.read(&msg, 16), Err(NameError::BadPointer(16))));
        // A label pointing back into its own run.
        let mut msg = vec![0u8; 12];
        msg.extend_from_slice(&[1, b'a', 0xC0, 12]);
        assert_eq!(n.read(&msg, 12), Err(NameError::BadPointer(12)));
        // A pointer in the question may only point into the header; one
        // pointing forward is rejected.
        let m = query_bytes(1, 0, &[0xC0, 20, 0, 0], rtype::A);
        assert_eq!(formerr(&m).0, FormErr::Name(NameError::BadPointer(20)));
        // Truncated pointer.
        let m = [0u8; 12].iter().copied().chain([0xC0]).collect::<Vec<_>>();
        assert_eq!(n.read(&m, 12), Err(NameError::Truncated));
        // A backwards chain of pointers: every hop moves back, and at most
        // MAX_POINTER_HOPS are followed.
        let chain = |hops: u16| {
            let mut msg = vec![0u8];
            for i in 0..hops {
                let target = if i == 0 { 0 } else { 1 + (i - 1) * 2 };
                msg.extend_from_slice(&[0xC0 | (target >> 8) as u8, target as u8]);
            }
            msg
        };
        let msg = chain(MAX_POINTER_HOPS as u16);
        assert_eq!(n.read(&msg, msg.len() - 2).unwrap(), msg.len());
        assert_eq!(n.as_wire(), &[0]);
        let msg = chain(MAX_POINTER_HOPS as u16 + 1);
        assert_eq!(n.read(&msg, msg.len() - 2), Err(NameError::TooManyPointers));
        // 32,000 hops in a 64 KiB message: refused after 17.
        let msg = chain(32_000);
        assert_eq!(n.read(&msg, msg.len() - 2), Err(NameError::TooManyPointers));
        // Names with a label before each pointer: 17 hops refused, 2 fine.
        let mut m = vec![0u8; 12];
        m[5] = 1;
        m.push(0); // root at 12
        let mut prev = 12u16;
        for _ in 0..=MAX_POINTER_HOPS {
            let at = m.len() as u16;
            m.extend_from_slice(&[1, b'a', 0xC0 | (prev >> 8) as u8, prev as u8]);
            prev = at;
        }
        assert_eq!(n.read(&m, prev as usize), Err(NameError::TooManyPointers));
        assert_eq!(n.read(&m, 13 + 4), Ok(13 + 8));
        assert_eq!(n.as_wire(), &[1, b'a', 1, b'a', 0]);
    }

    #[test]
    fn additional_section_is_read_only_as_far_as_needed() {
        // OPT plus a signature: fine.
        let mut m = query_bytes(7, 0, &wire_name("a.example"), rtype::A);
        add_opt(&mut m, 4096, 0, false, &[]);
        m[11] = 2;
        m.extend_from_slice(&[0]);
        m.extend_from_slice(&rtype::TSIG.to_be_bytes());
        m.extend_from_slice(&[0, 255, 0, 0, 0, 0, 0, 0]);
        let mut q = Query::default();
        parse_query(&m, &mut q).unwrap();
        assert!(q.edns.is_some());
        // A third record: FORMERR, the question echoed.
        m[11] = 3;
        assert_eq!(
            formerr(&m),
            (FormErr::Additional("more than 2 additional records"), true)
        );
        // A 64 KiB TCP message claiming 65,535 additional records, each a
        // chain of pointers: refused before any of them is read (the same
        // answer whatever follows the question).
        let mut m = query_bytes(7, 0, &wire_name("a.example"), rtype::A);
        m[10] = 0xff;
        m[11] = 0xff;
        while m.len() + 13 <= 65535 {
            m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1]);
        }
        assert_eq!(
            formerr(&m),
            (FormErr::Additional("more than 2 additional records"), true)
        );
        let short = query_bytes(7, 0, &wire_name("a.example"), rtype::A);
        let mut short = short.clone();
        short[10] = 0xff;
        short[11] = 0xff;
        assert_eq!(formerr(&short), formerr(&m));
    }

    #[test]
    fn edns() {
        let mut m = query_bytes(7, 0, &wire_name("a.example"), rtype::TXT);
        add_opt(&mut m, 4096, 0, true, &[]);
        let mut q = Query::default();
        parse_query(&m, &mut q).unwrap();
        assert_eq!(
            q.edns,
            Some(Edns {
                udp_size: 4096,
                version: 0,
                dnssec_ok: true
            })
        );
        // Version 1 is parsed (the responder answers BADVERS).
        let mut m = query_bytes(7, 0, &wire_name("a.example"), rtype::TXT);
        add_opt(
            &mut m,
            1232,
            1,
            false,
            &[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8],
        );
        parse_query(&m, &mut q).unwrap();
        assert_eq!(q.edns.unwrap().version, 1);
        assert_eq!(q.edns.unwrap().udp_size, 1232);
    }

    #[test]
    fn edns_errors() {
        // Two OPT records.
        let mut m = query_bytes(7, 0, &wire_name("a.example"), rtype::A);
        add_opt(&mut m, 4096, 0, false, &[]);
        add_opt(&mut m, 4096, 0, false, &[]);
        assert_eq!(
            formerr(&m),
            (FormErr::Additional("more than one OPT record"), true)
        );
        // Truncated option.
        let mut m = query_bytes(7, 0, &wire_name("a.example"), rtype::A);
        add_opt(&mut m, 4096, 0, false, &[0, 10, 0, 9, 1, 2]);
        assert_eq!(
            formerr(&m),
            (FormErr::Additional("truncated EDNS option"), true)
        );
        // Record data longer than the message.
        let mut m = query_bytes(7, 0, &wire_name("a.example"), rtype::A);
        add_opt(&mut m, 4096, 0, false, &[]);
        let n = m.len();
        m[n - 1] = 50;
        assert_eq!(
            formerr(&m),
            (FormErr::Additional("truncated record data"), true)
        );
        // OPT owned by a non-root name.
        let mut m = query_bytes(7, 0, &wire_name("a.example"), rtype::A);
        m[11] = 1;
        m.extend_from_slice(&[1, b'x', 0]);
        m.extend_from_slice(&rtype::OPT.to_be_bytes());
        m.extend_from_slice(&[16, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            formerr(&m),
            (FormErr::Additional("OPT owner is not the root"), true)
        );
        // ARCOUNT says 1, nothing there.
        let mut m = query_bytes(7, 0, &wire_name("a.example"), rtype::A);
        m[11] = 1;
        assert_eq!(formerr(&m), (FormErr::Additional("bad record owner"), true));
        // QTYPE OPT.
        let m = query_bytes(7, 0, &wire_name("a.example"), rtype::OPT);
        assert_eq!(formerr(&m), (FormErr::MetaType(rtype::OPT), true));
        // Answer records in a query.
        let mut m = query_bytes(7, 0, &wire_name("a.example"), rtype::A);
        m[7] = 1;
        assert_eq!(formerr(&m), (FormErr::Sections, true));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = testkit::Rng::new(0x9E37_79B9_7F4A_7C15);
        let mut q = Query::default();
        let mut n = NameBuf::default();
        let (mut parsed, mut names) = (0, 0);
        let base = {
            let mut m = query_bytes(7, 0, &wire_name("www.example.com"), rtype::A);
            add_opt(&mut m, 1232, 0, false, &[0, 10, 0, 2, 1, 2]);
            m
        };
        for _ in 0..200_000 {
            let len = rng.below(96);
            let msg: Vec<u8> = if rng.below(2) == 0 {
                (0..len).map(|_| rng.next_u64() as u8).collect()
            } else {
                // Mutate a valid query: flip bytes, cut it, or lengthen it.
                let mut m = base.clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(m.len());
                    m[i] = rng.next_u64() as u8;
                }
                if rng.below(3) == 0 {
                    m.truncate(rng.below(m.len() + 1));
                }
                m
            };
            match parse_query(&msg, &mut q) {
                Ok(()) => {
                    parsed += 1;
                    assert_eq!(q.header.id, u16::from_be_bytes([msg[0], msg[1]]));
                    assert_eq!(q.header.qdcount, 1, "{msg:02x?}");
                    assert!(q.qname.len <= MAX_NAME && q.qname.nlabels <= MAX_LABELS);
                }
                Err(e) => {
                    if msg.len() < HEADER_LEN {
                        assert!(matches!(e, ParseFail::Drop), "{e:?}");
                    }
                }
            }
            let start = rng.below(msg.len() + 1);
            if let Ok(end) = n.read(&msg, start) {
                names += 1;
                // The name's bytes in the message end after its start, inside it.
                assert!(
                    start < end && end <= msg.len(),
                    "{start}..{end} of {}",
                    msg.len()
                );
                assert!(n.len <= MAX_NAME && n.nlabels <= MAX_LABELS);
            }
        }
        // The mutations reach a whole parse, and names are read.
        assert!(parsed > 1000, "{parsed} queries parsed");
        assert!(names > 1000, "{names} names read");
    }
}
