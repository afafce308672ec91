//! The zone, pre-answered: at load time every (name, qtype) the zone can be
//! asked about gets its response body (answer, authority and additional
//! sections) encoded once, with name compression, so that answering a query
//! is a hash lookup and a copy.
//!
//! A body is written as if it followed a question at offset 12. Compression
//! pointers can target
//! - `At::Abs`: a fixed offset (inside the question name when the body
//!   serves exactly one name, or the question name itself at 12),
//! - `At::FromEnd`: a suffix of the question name counted from its end (for
//!   bodies that serve many names: NXDOMAIN, wildcards, referrals, where the
//!   question's length is only known per query),
//! - `At::Local`: an earlier name inside the body itself.
//!
//! Pointers that cannot be resolved at load time are recorded as fixups and
//! patched when the body is copied into a response.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::wire::{rcode, rtype, HEADER_LEN, MAX_NAME};
use super::zone::{Rr, ZoneError, ZoneFile};

/// Longest CNAME chain followed inside the zone.
pub const MAX_CHAIN: usize = 12;
/// Room a response needs besides its body: header, the longest question,
/// the OPT record.
const OVERHEAD: usize = HEADER_LEN + MAX_NAME + 4 + 11;
/// Pointers are 14 bits.
const MAX_PTR: usize = 0x3FFF;

/// Where a compression pointer points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// An absolute offset in the message.
    Abs(u16),
    /// The suffix of the question name that is this many bytes long
    /// (the root label included).
    FromEnd(u16),
    /// This offset in the body.
    Local(u16),
}

/// A pointer to patch when the body is copied.
#[derive(Clone, Copy, Debug)]
pub struct Fixup {
    /// Offset of the pointer in the body.
    pub pos: u16,
    /// What it points at.
    pub at: At,
}

/// A pre-encoded response body and its header fields.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Response code.
    pub rcode: u8,
    /// Authoritative answer flag.
    pub aa: bool,
    /// Answer, authority, additional counts.
    pub counts: [u16; 3],
    /// The three sections.
    pub bytes: Box<[u8]>,
    /// Length of the body without the additional section.
    pub cut: usize,
    /// The additional section may be left out when the body does not fit
    /// (it is not glue a referral needs).
    pub additional_optional: bool,
    /// Pointers to patch.
    pub fixups: Box<[Fixup]>,
}

impl Answer {
    /// Resolve a pointer target for a question name of `qlen` bytes, body at
    /// `base`.
    pub fn target(at: At, qlen: usize, base: usize) -> usize {
        match at {
            At::Abs(a) => a as usize,
            At::FromEnd(k) => HEADER_LEN + qlen - (k as usize).min(qlen),
            At::Local(k) => base + k as usize,
        }
    }
}

/// A name's answers.
#[derive(Debug)]
pub struct Node {
    /// Answers for the types present (and reachable through a CNAME chain).
    types: Box<[(u16, Answer)]>,
    /// Answer for any other type (NODATA, or the CNAME chain's end).
    other: Answer,
    /// QTYPE ANY over TCP: every RRset.
    any: Answer,
    /// QTYPE ANY over UDP: one RRset (RFC 8482).
    any_udp: Answer,
    /// The name is a zone cut: the referral.
    referral: Option<Answer>,
}

/// What the index says about a question.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// Not in the zone.
    Refused,
    /// The response body.
    Answer(&'a Answer),
}

/// Load-time statistics.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct IndexStats {
    /// Records loaded.
    pub records: usize,
    /// Names (empty non-terminals included).
    pub names: usize,
    /// Pre-encoded answers.
    pub answers: usize,
    /// Bytes of pre-encoded answers.
    pub answer_bytes: usize,
    /// Zone cuts (delegations).
    pub cuts: usize,
    /// Wildcard names.
    pub wildcards: usize,
}

/// The pre-answered zone.
pub struct Index {
    apex: Box<[u8]>,
    apex_name: Name,
    nodes: HashMap<Box<[u8]>, Node, foldhash::fast::RandomState>,
    nxdomain: Answer,
    has_cuts: bool,
    has_wildcards: bool,
    stats: IndexStats,
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("apex", &self.apex_name)
            .field("stats", &self.stats)
            .finish()
    }
}

// ---- the zone model used while building ----

#[derive(Debug)]
struct RrSet {
    rtype: u16,
    ttl: u32,
    /// Uncompressed wire-format record data, deduplicated, in file order.
    rdatas: Vec<Vec<u8>>,
}

#[derive(Debug, Default)]
struct NodeData {
    /// Owner in wire form, original case.
    wire: Vec<u8>,
    /// RRsets by type.
    sets: Vec<RrSet>,
    /// Owner of a CNAME: its target (lowercase wire) and original wire.
    cname: Option<(Vec<u8>, Vec<u8>)>,
}

impl NodeData {
    fn get(&self, t: u16) -> Option<&RrSet> {
        self.sets.iter().find(|s| s.rtype == t)
    }
}

struct Model {
    apex: Vec<u8>,
    apex_wire: Vec<u8>,
    soa: (u32, Vec<u8>),
    nodes: HashMap<Vec<u8>, NodeData>,
    /// Lowercase wire names of zone cuts (NS below the apex).
    cuts: BTreeSet<Vec<u8>>,
}

/// Wire form of a name, original case.
fn name_wire(n: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(n.len() + 2);
    for l in n.iter() {
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
    out
}

fn lower(w: &[u8]) -> Vec<u8> {
    w.to_ascii_lowercase()
}

/// Offsets of the labels of a wire name (root excluded). The name is
/// trusted (built here), but every access is checked anyway.
fn label_offsets(w: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&l) = w.get(i) {
        if l == 0 {
            break;
        }
        out.push(i);
        i += 1 + l as usize;
    }
    out
}

/// Whether `name` is `apex` or below it (both lowercase wire).
fn is_under(name: &[u8], apex: &[u8]) -> bool {
    if name.len() < apex.len() || !name.ends_with(apex) {
        return false;
    }
    let off = name.len() - apex.len();
    off == 0 || label_offsets(name).contains(&off)
}

/// Length of the uncompressed name at `pos` in `w`.
fn name_len_at(w: &[u8], pos: usize) -> Option<usize> {
    let mut i = pos;
    loop {
        let l = *w.get(i)? as usize;
        if l == 0 {
            return Some(i + 1 - pos);
        }
        if l > 63 {
            return None;
        }
        i += 1 + l;
    }
}

fn rdata_wire(rdata: &RData) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_name_encoding(NameEncoding::Uncompressed);
    rdata.emit(&mut enc).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// An error of the zone as a whole (no one line): named by its first file.
fn zone_error(zone: &ZoneFile, msg: String) -> ZoneError {
    ZoneError {
        file: zone
            .records
            .first()
            .map(|r| r.file.clone())
            .unwrap_or_default(),
        line: 0,
        msg,
    }
}

impl Model {
    fn build(zone: &ZoneFile) -> Result<Model, ZoneError> {
        let err = |r: &Rr, msg: String| ZoneError {
            file: r.file.clone(),
            line: r.line,
            msg,
        };
        let soas: Vec<&Rr> = zone
            .records
            .iter()
            .filter(|r| r.rtype == RecordType::SOA)
            .collect();
        let soa_rr = match soas.as_slice() {
            [one] => *one,
            [] => return Err(zone_error(zone, "the zone has no SOA record".into())),
            [_, second, ..] => {
                return Err(err(
                    second,
                    "a second SOA record (a zone has exactly one)".into(),
                ))
            }
        };
        let apex_wire = name_wire(&soa_rr.owner);
        let apex = lower(&apex_wire);
        let RData::SOA(soa) = &soa_rr.rdata else {
            return Err(err(soa_rr, "SOA record without SOA data".into()));
        };
        let neg_ttl = soa_rr.ttl.min(soa.minimum);
        let soa_wire = rdata_wire(&soa_rr.rdata).map_err(|e| err(soa_rr, e))?;
        let mut m = Model {
            apex: apex.clone(),
            apex_wire: apex_wire.clone(),
            soa: (neg_ttl, soa_wire),
            nodes: HashMap::new(),
            cuts: BTreeSet::new(),
        };
        for r in &zone.records {
            let w = name_wire(&r.owner);
            let key = lower(&w);
            if !is_under(&key, &apex) {
                return Err(err(
                    r,
                    format!("{} is outside the zone {}", r.owner, soa_rr.owner),
                ));
            }
            let t: u16 = r.rtype.into();
            let data = rdata_wire(&r.rdata).map_err(|e| err(r, e))?;
            if data.len() > 65535 {
                return Err(err(r, "record data longer than 65535 bytes".into()));
            }
            let node = m.nodes.entry(key.clone()).or_default();
            if node.wire.is_empty() {
                node.wire = w;
            }
            if t == rtype::CNAME {
                if key == apex {
                    return Err(err(r, "a CNAME at the zone apex".into()));
                }
                if node.cname.is_some() {
                    return Err(err(r, format!("a second CNAME at {}", r.owner)));
                }
                let target = match &r.rdata {
                    RData::CNAME(c) => name_wire(&c.0),
                    _ => return Err(err(r, "CNAME without a name".into())),
                };
                node.cname = Some((lower(&target), target));
            }
            let has_cname = node.cname.is_some();
            let others = node.sets.iter().any(|s| s.rtype != rtype::CNAME);
            if has_cname && (others || t != rtype::CNAME) {
                return Err(err(r, format!("{} has a CNAME and other data", r.owner)));
            }
            match node.sets.iter_mut().find(|s| s.rtype == t) {
                Some(set) => {
                    if set.ttl != r.ttl {
                        log::warn!(
                            "{}:{}: TTL {} differs from {} of the {} {} RRset; using the lower",
                            r.file,
                            r.line,
                            r.ttl,
                            set.ttl,
                            r.owner,
                            r.rtype
                        );
                        set.ttl = set.ttl.min(r.ttl);
                    }
                    if !set.rdatas.contains(&data) {
                        set.rdatas.push(data);
                    }
                }
                None => node.sets.push(RrSet {
                    rtype: t,
                    ttl: r.ttl,
                    rdatas: vec![data],
                }),
            }
            if t == rtype::NS && key != apex {
                m.cuts.insert(key.clone());
            }
        }
        for n in m.nodes.values_mut() {
            n.sets.sort_by_key(|s| s.rtype);
        }
        // Empty non-terminals: every name between a name and the apex exists.
        let keys: Vec<Vec<u8>> = m.nodes.keys().cloned().collect();
        for k in keys {
            let wire = m.nodes[&k].wire.clone();
            for off in label_offsets(&k).into_iter().skip(1) {
                if k.len() - off < apex.len() {
                    break;
                }
                m.nodes
                    .entry(k[off..].to_vec())
                    .or_insert_with(|| NodeData {
                        wire: wire[off..].to_vec(),
                        ..NodeData::default()
                    });
            }
        }
        Ok(m)
    }

    /// The cut at or above `name` (strictly below the apex), if any.
    fn cut_of(&self, name: &[u8]) -> Option<Vec<u8>> {
        if self.cuts.is_empty() {
            return None;
        }
        let offs = label_offsets(name);
        // Closest to the apex first.
        for &off in offs.iter().rev() {
            let s = &name[off..];
            if s.len() <= self.apex.len() {
                continue;
            }
            if self.cuts.contains(s) {
                return Some(s.to_vec());
            }
        }
        None
    }

    /// The node answering for `name`: the name itself, or the wildcard at
    /// its closest encloser. `(key of the node, is_wildcard)`.
    fn find(&self, name: &[u8]) -> Option<(Vec<u8>, bool)> {
        if self.nodes.contains_key(name) {
            return Some((name.to_vec(), false));
        }
        for off in label_offsets(name).into_iter().skip(1) {
            let enc = &name[off..];
            if self.nodes.contains_key(enc) {
                let mut wild = vec![1, b'*'];
                wild.extend_from_slice(enc);
                return self.nodes.contains_key(&wild).then_some((wild, true));
            }
        }
        None
    }
}

// ---- composing a response from the model ----

#[derive(Clone, Debug)]
enum Owner {
    /// The question name (a pointer to offset 12).
    Qname,
    /// This name (original-case wire form).
    Name(Vec<u8>),
}

#[derive(Clone, Debug)]
struct Rec {
    owner: Owner,
    rtype: u16,
    ttl: u32,
    rdata: Vec<u8>,
}

#[derive(Debug)]
struct Comp {
    rcode: u8,
    aa: bool,
    answer: Vec<Rec>,
    authority: Vec<Rec>,
    additional: Vec<Rec>,
    additional_optional: bool,
}

impl Comp {
    fn new() -> Self {
        Comp {
            rcode: rcode::NOERROR,
            aa: true,
            answer: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
            additional_optional: true,
        }
    }
}

fn push_set(out: &mut Vec<Rec>, owner: &Owner, set: &RrSet) {
    for d in &set.rdatas {
        out.push(Rec {
            owner: owner.clone(),
            rtype: set.rtype,
            ttl: set.ttl,
            rdata: d.clone(),
        });
    }
}

/// The target name inside NS / MX / SRV record data.
fn target_of(rtype: u16, rdata: &[u8]) -> Option<&[u8]> {
    let start = match rtype {
        rtype::NS => 0,
        rtype::MX => 2,
        rtype::SRV => 6,
        _ => return None,
    };
    let len = name_len_at(rdata, start)?;
    rdata.get(start..start + len)
}

impl Model {
    fn soa_rec(&self) -> Rec {
        Rec {
            owner: Owner::Name(self.apex_wire.clone()),
            rtype: rtype::SOA,
            ttl: self.soa.0,
            rdata: self.soa.1.clone(),
        }
    }

    /// A and AAAA of the in-zone targets of `set` (NS, MX, SRV), not already
    /// in the response.
    fn additional_for(&self, set: &RrSet, comp: &mut Comp) {
        for d in &set.rdatas {
            let Some(t) = target_of(set.rtype, d) else {
                continue;
            };
            let key = lower(t);
            let Some(node) = self.nodes.get(&key) else {
                continue;
            };
            let already = comp.additional.iter().any(|r| match &r.owner {
                Owner::Name(w) => lower(w) == key,
                Owner::Qname => false,
            });
            if already {
                continue;
            }
            for ty in [rtype::A, rtype::AAAA] {
                if let Some(s) = node.get(ty) {
                    push_set(&mut comp.additional, &Owner::Name(node.wire.clone()), s);
                }
            }
        }
    }

    /// The response for `qtype` at node `key` (the question name, or the
    /// wildcard that answers for it), following CNAMEs inside the zone.
    /// `any`: `Some(all)` for QTYPE ANY (every RRset, or one).
    fn compose(&self, key: &[u8], qtype: u16, any: Option<bool>) -> Comp {
        let mut comp = Comp::new();
        let mut owner = Owner::Qname;
        let mut cur = key.to_vec();
        let mut seen = vec![cur.clone()];
        for _ in 0..MAX_CHAIN {
            let Some(node) = self.nodes.get(&cur) else {
                break;
            };
            if let Some(all) = any {
                if node.sets.is_empty() {
                    comp.authority.push(self.soa_rec());
                }
                for s in &node.sets {
                    push_set(&mut comp.answer, &owner, s);
                    if !all {
                        break;
                    }
                }
                return comp;
            }
            if let Some(set) = node.get(qtype) {
                push_set(&mut comp.answer, &owner, set);
                self.additional_for(set, &mut comp);
                return comp;
            }
            let Some((target, target_wire)) = &node.cname else {
                // NODATA.
                comp.authority.push(self.soa_rec());
                return comp;
            };
            if let Some(set) = node.get(rtype::CNAME) {
                push_set(&mut comp.answer, &owner, set);
            }
            if !is_under(target, &self.apex) || self.cut_of(target).is_some() {
                // Out of the zone, or delegated: the resolver goes on.
                return comp;
            }
            if seen.contains(target) {
                break;
            }
            seen.push(target.clone());
            match self.find(target) {
                Some((k, _)) => {
                    cur = k;
                    owner = Owner::Name(target_wire.clone());
                }
                None => {
                    comp.rcode = rcode::NXDOMAIN;
                    comp.authority.push(self.soa_rec());
                    return comp;
                }
            }
        }
        // A CNAME loop or a chain too long: the zone is broken here.
        let mut c = Comp::new();
        c.rcode = rcode::SERVFAIL;
        c.aa = false;
        c
    }

    /// The referral for the cut at `key`: its NS RRset in the authority
    /// section, glue in the additional section.
    fn referral(&self, key: &[u8]) -> Comp {
        let mut comp = Comp::new();
        comp.aa = false;
        comp.additional_optional = false;
        if let Some(node) = self.nodes.get(key) {
            if let Some(ns) = node.get(rtype::NS) {
                push_set(&mut comp.authority, &Owner::Name(node.wire.clone()), ns);
                self.additional_for(ns, &mut comp);
            }
        }
        comp
    }
}

// ---- encoding ----

/// What the question name is known to be while encoding.
enum Ctx<'a> {
    /// Exactly this name (lowercase wire).
    Fixed(&'a [u8]),
    /// Any name ending in this suffix (lowercase wire).
    Suffix(&'a [u8]),
}

struct Enc {
    buf: Vec<u8>,
    table: Vec<(Vec<u8>, At)>,
    fixups: Vec<Fixup>,
    /// Where the body starts, when the question name is fixed.
    base: Option<usize>,
}

impl Enc {
    fn new(ctx: &Ctx) -> Enc {
        let mut table = Vec::new();
        let base = match ctx {
            Ctx::Fixed(q) => {
                for off in label_offsets(q) {
                    table.push((q[off..].to_vec(), At::Abs((HEADER_LEN + off) as u16)));
                }
                Some(HEADER_LEN + q.len() + 4)
            }
            Ctx::Suffix(s) => {
                for off in label_offsets(s) {
                    table.push((s[off..].to_vec(), At::FromEnd((s.len() - off) as u16)));
                }
                None
            }
        };
        Enc {
            buf: Vec::new(),
            table,
            fixups: Vec::new(),
            base,
        }
    }

    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn ptr(&mut self, at: At) {
        let resolved = match (at, self.base) {
            (At::Abs(a), _) => Some(a as usize),
            (At::Local(k), Some(b)) => Some(b + k as usize),
            _ => None,
        };
        match resolved {
            Some(v) => self.u16(0xC000 | v as u16),
            None => {
                self.fixups.push(Fixup {
                    pos: self.buf.len() as u16,
                    at,
                });
                self.u16(0xC000);
            }
        }
    }

    /// Write a name, compressed against earlier names when `compress`.
    fn name(&mut self, wire: &[u8], compress: bool) {
        let low = lower(wire);
        let mut i = 0;
        while let Some(&l) = wire.get(i) {
            if l == 0 {
                break;
            }
            if compress {
                if let Some((_, at)) = self.table.iter().find(|(s, _)| s[..] == low[i..]) {
                    let at = *at;
                    self.ptr(at);
                    return;
                }
                // Any question name puts the body at most this far in.
                let worst = self.base.unwrap_or(HEADER_LEN + MAX_NAME + 4);
                if worst + self.buf.len() <= MAX_PTR {
                    self.table
                        .push((low[i..].to_vec(), At::Local(self.buf.len() as u16)));
                }
            }
            let end = (i + 1 + l as usize).min(wire.len());
            self.buf.extend_from_slice(&wire[i..end]);
            i = end;
        }
        self.buf.push(0);
    }

    fn record(&mut self, r: &Rec) {
        match &r.owner {
            Owner::Qname => self.ptr(At::Abs(HEADER_LEN as u16)),
            Owner::Name(w) => self.name(w, true),
        }
        self.u16(r.rtype);
        self.u16(1);
        self.buf.extend_from_slice(&r.ttl.to_be_bytes());
        let len_pos = self.buf.len();
        self.u16(0);
        let start = self.buf.len();
        let d = &r.rdata;
        // RFC 3597: only the RFC 1035 types may carry compressed names.
        let names_at: Option<(usize, usize)> = match r.rtype {
            rtype::NS | rtype::CNAME | rtype::PTR => Some((0, 1)),
            rtype::MX => Some((2, 1)),
            rtype::SOA => Some((0, 2)),
            _ => None,
        };
        let mut done = false;
        if let Some((prefix, count)) = names_at {
            if let Some(p) = d.get(..prefix) {
                let mut pos = prefix;
                let mut names = Vec::new();
                for _ in 0..count {
                    match name_len_at(d, pos) {
                        Some(n) => {
                            names.push(pos..pos + n);
                            pos += n;
                        }
                        None => break,
                    }
                }
                if names.len() == count {
                    self.buf.extend_from_slice(p);
                    for n in names {
                        self.name(&d[n], true);
                    }
                    self.buf.extend_from_slice(&d[pos..]);
                    done = true;
                }
            }
        }
        if !done {
            self.buf.extend_from_slice(d);
        }
        let len = (self.buf.len() - start) as u16;
        self.buf[len_pos..len_pos + 2].copy_from_slice(&len.to_be_bytes());
    }

    fn finish(mut self, comp: &Comp) -> Answer {
        for r in &comp.answer {
            self.record(r);
        }
        for r in &comp.authority {
            self.record(r);
        }
        let cut = self.buf.len();
        for r in &comp.additional {
            self.record(r);
        }
        Answer {
            rcode: comp.rcode,
            aa: comp.aa,
            counts: [
                comp.answer.len() as u16,
                comp.authority.len() as u16,
                comp.additional.len() as u16,
            ],
            bytes: self.buf.into_boxed_slice(),
            cut,
            additional_optional: comp.additional_optional,
            fixups: self.fixups.into_boxed_slice(),
        }
    }
}

fn encode(ctx: Ctx, comp: &Comp) -> Answer {
    Enc::new(&ctx).finish(comp)
}

fn show(wire: &[u8]) -> String {
    let mut s = String::new();
    for off in label_offsets(wire) {
        let l = wire[off] as usize;
        for &b in wire.get(off + 1..off + 1 + l).unwrap_or_default() {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                s.push(b as char);
            } else {
                s.push_str(&format!("\\{b:03}"));
            }
        }
        s.push('.');
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

impl Index {
    /// Build the index of a parsed zone. Errors name the record's file:line.
    pub fn build(zone: &ZoneFile) -> Result<Index, ZoneError> {
        let m = Model::build(zone)?;
        let mut nodes = HashMap::with_capacity_and_hasher(
            m.nodes.len(),
            foldhash::fast::RandomState::default(),
        );
        let mut stats = IndexStats {
            records: zone.records.len(),
            names: m.nodes.len(),
            cuts: m.cuts.len(),
            ..IndexStats::default()
        };
        let too_big = |what: String, a: &Answer| -> Result<(), ZoneError> {
            if a.bytes.len() + OVERHEAD > 65535 {
                return Err(zone_error(
                    zone,
                    format!(
                        "the answer for {what} is {} bytes: more than a DNS message can hold",
                        a.bytes.len()
                    ),
                ));
            }
            Ok(())
        };
        for (key, nd) in &m.nodes {
            let wildcard = key.starts_with(&[1, b'*']);
            if wildcard {
                stats.wildcards += 1;
            }
            let parent = &key[if wildcard { 2 } else { 0 }..];
            let ctx = || {
                if wildcard {
                    Ctx::Suffix(parent)
                } else {
                    Ctx::Fixed(key)
                }
            };
            // Types that can be answered: the node's, and along a CNAME chain.
            let mut types: BTreeSet<u16> = nd.sets.iter().map(|s| s.rtype).collect();
            let mut cur = nd.cname.as_ref().map(|c| c.0.clone());
            for _ in 0..MAX_CHAIN {
                let Some(t) = cur.take() else { break };
                if let Some((k, _)) = m.find(&t) {
                    if let Some(n) = m.nodes.get(&k) {
                        types.extend(n.sets.iter().map(|s| s.rtype));
                        cur = n.cname.as_ref().map(|c| c.0.clone());
                    }
                }
            }
            let mut answers = Vec::new();
            for t in types {
                let a = encode(ctx(), &m.compose(key, t, None));
                too_big(format!("{} {}", show(key), RecordType::from(t)), &a)?;
                answers.push((t, a));
            }
            let other = encode(ctx(), &m.compose(key, 0, None));
            too_big(format!("{} (other types)", show(key)), &other)?;
            let any = encode(ctx(), &m.compose(key, rtype::ANY, Some(true)));
            too_big(format!("{} ANY", show(key)), &any)?;
            let any_udp = encode(ctx(), &m.compose(key, rtype::ANY, Some(false)));
            let referral = if m.cuts.contains(key) {
                let a = encode(Ctx::Suffix(key), &m.referral(key));
                too_big(format!("the referral at {}", show(key)), &a)?;
                Some(a)
            } else {
                None
            };
            for a in answers
                .iter()
                .map(|(_, a)| a)
                .chain([&other, &any, &any_udp])
                .chain(referral.as_ref())
            {
                stats.answers += 1;
                stats.answer_bytes += a.bytes.len();
            }
            nodes.insert(
                key.clone().into_boxed_slice(),
                Node {
                    types: answers.into_boxed_slice(),
                    other,
                    any,
                    any_udp,
                    referral,
                },
            );
        }
        let mut nx = Comp::new();
        nx.rcode = rcode::NXDOMAIN;
        nx.authority.push(m.soa_rec());
        let nxdomain = encode(Ctx::Suffix(&m.apex), &nx);
        let apex_name = zone
            .records
            .iter()
            .find(|r| r.rtype == RecordType::SOA)
            .map(|r| r.owner.clone())
            .unwrap_or_else(Name::root);
        Ok(Index {
            apex: m.apex.clone().into_boxed_slice(),
            apex_name,
            has_cuts: !m.cuts.is_empty(),
            has_wildcards: stats.wildcards > 0,
            nodes,
            nxdomain,
            stats,
        })
    }

    /// The zone's apex.
    pub fn apex(&self) -> &Name {
        &self.apex_name
    }

    /// Load statistics.
    pub fn stats(&self) -> &IndexStats {
        &self.stats
    }

    /// The answer for `qname` (lowercase wire, `labels` its label offsets)
    /// and `qtype`. `udp` picks the short answer to ANY.
    pub fn lookup(&self, qname: &[u8], labels: &[u8], qtype: u16, udp: bool) -> Lookup<'_> {
        let apex = &self.apex[..];
        if qname.len() < apex.len() || !qname.ends_with(apex) {
            return Lookup::Refused;
        }
        let off = qname.len() - apex.len();
        if off != 0 && !labels.iter().any(|&l| l as usize == off) {
            // Ends with the apex's bytes but not on a label boundary.
            return Lookup::Refused;
        }
        if self.has_cuts {
            // The cut closest to the apex wins: below it nothing is ours.
            for &l in labels.iter().rev() {
                let l = l as usize;
                if l >= off {
                    continue;
                }
                if let Some(n) = self.nodes.get(&qname[l..]) {
                    if let Some(r) = &n.referral {
                        // DS is answered from the parent side of the cut.
                        if !(l == 0 && qtype == rtype::DS) {
                            return Lookup::Answer(r);
                        }
                    }
                }
            }
        }
        if let Some(n) = self.nodes.get(qname) {
            return Lookup::Answer(Self::pick(n, qtype, udp));
        }
        if self.has_wildcards {
            // The closest encloser exists (the apex does, at least).
            for &l in labels.iter().skip(1) {
                let enc = &qname[l as usize..];
                if enc.len() < apex.len() {
                    break;
                }
                if self.nodes.contains_key(enc) {
                    let mut wild = [0u8; MAX_NAME + 2];
                    wild[0] = 1;
                    wild[1] = b'*';
                    let w = wild.get_mut(2..2 + enc.len());
                    if let Some(w) = w {
                        w.copy_from_slice(enc);
                        if let Some(n) = self.nodes.get(&wild[..2 + enc.len()]) {
                            return Lookup::Answer(Self::pick(n, qtype, udp));
                        }
                    }
                    break;
                }
            }
        }
        Lookup::Answer(&self.nxdomain)
    }

    fn pick(n: &Node, qtype: u16, udp: bool) -> &Answer {
        if qtype == rtype::ANY {
            return if udp { &n.any_udp } else { &n.any };
        }
        n.types
            .iter()
            .find(|(t, _)| *t == qtype)
            .map_or(&n.other, |(_, a)| a)
    }
}
