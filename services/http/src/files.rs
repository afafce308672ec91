//! The response for a file of the tree, as nginx's static module answers:
//! the representation chosen by `Accept-Encoding` among the file and its
//! precompressed variants, then the preconditions (RFC 9110 13.2.2: 412 or
//! 304), then a `Range` (GET only: 206, `multipart/byteranges` for several,
//! or 416), else 200. Every response carries the representation's `ETag`
//! and `Last-Modified`, and `Vary: Accept-Encoding` when the file has a
//! variant; 200 and 206 say `Accept-Ranges: bytes`.

use std::sync::Arc;

use crate::conditional::{self, Outcome, Validators};
use crate::encoding::{self, Coding};
use crate::head::{self, ConnHeader};
use crate::parse::{Hdr, Method, Request};
use crate::range::{self, RangeSet};
use crate::site::{Repr, Site, Tree};
use crate::{Conn, Service};

const VARY: &[u8] = b"Vary: Accept-Encoding\r\n";
const ACCEPT_RANGES: &[u8] = b"Accept-Ranges: bytes\r\n";

impl Service {
    /// Answers a GET or HEAD for file `idx` (a representation of `t`, the
    /// tree of `site`).
    pub(crate) fn file(
        &mut self,
        c: &mut Conn,
        site: &Arc<Site>,
        t: &Tree,
        idx: u32,
        req: &Request,
        conn: ConnHeader,
    ) {
        let head_only = req.method == Method::Head;
        let Some(own) = t.repr(idx) else {
            return self.simple(c, 404, &[], head_only, conn);
        };
        let f = &req.fields;
        let (r, vary): (&Repr, &[u8]) = if own.has_variants() {
            let v = match encoding::choose(f, own.br.is_some(), own.gzip.is_some()) {
                Coding::Br => own.br,
                Coding::Gzip => own.gzip,
                Coding::Identity => None,
            };
            (v.and_then(|v| t.repr(v)).unwrap_or(own), VARY)
        } else {
            (own, b"")
        };
        let mut range_ok = true;
        if f.any(&conditional::FIELDS) {
            let v = Validators {
                etag: r.etag(),
                mtime: r.mtime,
            };
            // Only GET and HEAD reach a file.
            match conditional::evaluate(f, true, &v) {
                Outcome::NotModified => {
                    // RFC 9110 15.4.5: the validators and Vary, no content.
                    head::write_head(
                        &mut c.out.buf,
                        304,
                        &self.date,
                        &[],
                        &[&r.validators, vary],
                        conn,
                    );
                    self.resp_bytes = 0;
                    return self.count(304);
                }
                Outcome::Failed => return self.simple(c, 412, &[vary], head_only, conn),
                Outcome::Proceed { range } => range_ok = range,
            }
        }
        // RFC 9110 14.2: Range is defined for GET only (a HEAD gets the
        // whole representation's head).
        if range_ok && req.method == Method::Get {
            if let Some(v) = f.one(Hdr::Range) {
                match range::parse(v, r.len) {
                    RangeSet::Ignore => {}
                    RangeSet::Unsatisfiable => {
                        let mut line = std::mem::take(&mut self.line);
                        line.clear();
                        line.extend_from_slice(b"Content-Range: bytes */");
                        line.extend_from_slice(itoa::Buffer::new().format(r.len).as_bytes());
                        line.extend_from_slice(b"\r\n");
                        self.simple(c, 416, &[&line, &r.validators, vary], false, conn);
                        self.line = line;
                        return;
                    }
                    RangeSet::Ranges(rs) => {
                        self.count_coding(r.coding);
                        return match rs.as_slice() {
                            &[one] => self.single_range(c, site, r, one, vary, conn),
                            many => self.multipart(c, site, r, many, vary, conn),
                        };
                    }
                }
            }
        }
        head::write_head(
            &mut c.out.buf,
            200,
            &self.date,
            &r.header,
            &[r.coding.header(), &r.validators, ACCEPT_RANGES, vary],
            conn,
        );
        self.resp_bytes = if head_only { 0 } else { r.len };
        if !head_only {
            c.out.queue(site, r.blob, 0, r.len);
        }
        self.count_coding(r.coding);
        self.count(200);
    }

    fn count_coding(&mut self, coding: Coding) {
        match coding {
            Coding::Identity => {}
            Coding::Br => self.counters.encoded_br += 1,
            Coding::Gzip => self.counters.encoded_gzip += 1,
        }
    }

    /// 206 with one `Content-Range`.
    fn single_range(
        &mut self,
        c: &mut Conn,
        site: &Arc<Site>,
        r: &Repr,
        (first, last): (u64, u64),
        vary: &[u8],
        conn: ConnHeader,
    ) {
        let n = last - first + 1;
        self.tmp.clear();
        self.tmp.extend_from_slice(&r.type_line);
        self.tmp.extend_from_slice(b"Content-Length: ");
        self.tmp
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        self.tmp.extend_from_slice(b"\r\n");
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        content_range(&mut line, first, last, r.len);
        head::write_head(
            &mut c.out.buf,
            206,
            &self.date,
            &self.tmp,
            &[r.coding.header(), &line, &r.validators, ACCEPT_RANGES, vary],
            conn,
        );
        self.line = line;
        c.out.queue(site, r.blob, first, last + 1);
        self.resp_bytes = n;
        self.count(206);
    }

    /// 206 `multipart/byteranges` (RFC 9110 14.6): each part with its
    /// `Content-Type` and `Content-Range`, in the order asked.
    fn multipart(
        &mut self,
        c: &mut Conn,
        site: &Arc<Site>,
        r: &Repr,
        ranges: &[(u64, u64)],
        vary: &[u8],
        conn: ConnHeader,
    ) {
        self.boundary = self.boundary.wrapping_add(1);
        let mut boundary = *b"xdpstack-0000000000000000";
        let hex = b"0123456789abcdef";
        for (i, d) in boundary[9..].iter_mut().enumerate() {
            *d = hex[(self.boundary >> (60 - 4 * i) & 15) as usize];
        }
        // The parts' heads, written once to count them, and again into
        // the output (no allocation: `line` is reused).
        let mut line = std::mem::take(&mut self.line);
        let mut total: u64 = 0;
        for &(first, last) in ranges {
            line.clear();
            part_head(&mut line, &boundary, r, first, last);
            total += line.len() as u64 + (last - first + 1);
        }
        total += 4 + boundary.len() as u64 + 4;
        self.tmp.clear();
        self.tmp
            .extend_from_slice(b"Content-Type: multipart/byteranges; boundary=");
        self.tmp.extend_from_slice(&boundary);
        self.tmp.extend_from_slice(b"\r\nContent-Length: ");
        self.tmp
            .extend_from_slice(itoa::Buffer::new().format(total).as_bytes());
        self.tmp.extend_from_slice(b"\r\n");
        head::write_head(
            &mut c.out.buf,
            206,
            &self.date,
            &self.tmp,
            &[r.coding.header(), &r.validators, ACCEPT_RANGES, vary],
            conn,
        );
        for &(first, last) in ranges {
            line.clear();
            part_head(&mut line, &boundary, r, first, last);
            c.out.buf.extend_from_slice(&line);
            c.out.queue(site, r.blob, first, last + 1);
        }
        c.out.buf.extend_from_slice(b"\r\n--");
        c.out.buf.extend_from_slice(&boundary);
        c.out.buf.extend_from_slice(b"--\r\n");
        self.line = line;
        self.counters.multipart += 1;
        self.resp_bytes = total;
        self.count(206);
    }
}

/// `Content-Range: bytes first-last/len\r\n`.
fn content_range(out: &mut Vec<u8>, first: u64, last: u64, len: u64) {
    out.extend_from_slice(b"Content-Range: bytes ");
    out.extend_from_slice(itoa::Buffer::new().format(first).as_bytes());
    out.push(b'-');
    out.extend_from_slice(itoa::Buffer::new().format(last).as_bytes());
    out.push(b'/');
    out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// What precedes a part's bytes: `CRLF--boundary CRLF`, its
/// `Content-Type` and `Content-Range`, and the empty line.
fn part_head(out: &mut Vec<u8>, boundary: &[u8], r: &Repr, first: u64, last: u64) {
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(boundary);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&r.type_line);
    content_range(out, first, last, r.len);
    out.extend_from_slice(b"\r\n");
}
