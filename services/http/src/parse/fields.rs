//! The header fields a service reads after the framing: where each one is
//! in the head, noted while the head is checked (no second pass over the
//! head in the usual case of one line per field).

/// The fields noted (RFC 9110 names; matched case-insensitively).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hdr {
    /// `Range` (14.2).
    Range,
    /// `If-Range` (13.1.5).
    IfRange,
    /// `If-Match` (13.1.1).
    IfMatch,
    /// `If-None-Match` (13.1.2).
    IfNoneMatch,
    /// `If-Modified-Since` (13.1.3).
    IfModifiedSince,
    /// `If-Unmodified-Since` (13.1.4).
    IfUnmodifiedSince,
    /// `Accept-Encoding` (12.5.3).
    AcceptEncoding,
    /// `Referer` (10.1.3), for the access log.
    Referer,
    /// `User-Agent` (10.1.5), for the access log.
    UserAgent,
}

const COUNT: usize = 9;

impl Hdr {
    /// Every field noted, in index order.
    pub const ALL: [Hdr; COUNT] = [
        Hdr::Range,
        Hdr::IfRange,
        Hdr::IfMatch,
        Hdr::IfNoneMatch,
        Hdr::IfModifiedSince,
        Hdr::IfUnmodifiedSince,
        Hdr::AcceptEncoding,
        Hdr::Referer,
        Hdr::UserAgent,
    ];

    /// The field's name, lower case.
    pub fn name(self) -> &'static [u8] {
        match self {
            Hdr::Range => b"range",
            Hdr::IfRange => b"if-range",
            Hdr::IfMatch => b"if-match",
            Hdr::IfNoneMatch => b"if-none-match",
            Hdr::IfModifiedSince => b"if-modified-since",
            Hdr::IfUnmodifiedSince => b"if-unmodified-since",
            Hdr::AcceptEncoding => b"accept-encoding",
            Hdr::Referer => b"referer",
            Hdr::UserAgent => b"user-agent",
        }
    }

    /// The field a name (a valid token) is, if it is one of these. By
    /// length first: most names are rejected without a comparison.
    pub(super) fn from_name(name: &[u8]) -> Option<Hdr> {
        let h = match name.len() {
            5 => Hdr::Range,
            7 => Hdr::Referer,
            8 if name[3].eq_ignore_ascii_case(&b'r') => Hdr::IfRange,
            8 => Hdr::IfMatch,
            10 => Hdr::UserAgent,
            13 => Hdr::IfNoneMatch,
            15 => Hdr::AcceptEncoding,
            17 => Hdr::IfModifiedSince,
            19 => Hdr::IfUnmodifiedSince,
            _ => return None,
        };
        name.eq_ignore_ascii_case(h.name()).then_some(h)
    }
}

/// Where each field's value is (the first line of it) and on how many
/// lines it came.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Spans {
    at: [(u32, u32); COUNT],
    lines: [u8; COUNT],
}

impl Spans {
    pub(super) fn note(&mut self, h: Hdr, start: usize, end: usize) {
        let i = h as usize;
        if self.lines[i] == 0 {
            self.at[i] = (start as u32, end as u32);
        }
        self.lines[i] = self.lines[i].saturating_add(1);
    }
}

/// The noted fields of one request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fields<'a> {
    head: &'a [u8],
    spans: Spans,
}

impl<'a> Fields<'a> {
    pub(super) fn new(head: &'a [u8], spans: Spans) -> Self {
        Fields { head, spans }
    }

    /// No field of `h`.
    pub fn absent(&self, h: Hdr) -> bool {
        self.spans.lines[h as usize] == 0
    }

    /// Any of `hs` present.
    pub fn any(&self, hs: &[Hdr]) -> bool {
        hs.iter().any(|&h| !self.absent(h))
    }

    /// The value of a field that takes one value: `None` when absent or
    /// sent on more than one line (a singleton field sent twice is invalid:
    /// RFC 9110 13.1.3 and 14.2 say to ignore it).
    pub fn one(&self, h: Hdr) -> Option<&'a [u8]> {
        let i = h as usize;
        (self.spans.lines[i] == 1).then(|| self.slice(self.spans.at[i]))
    }

    /// The value of the first line of `h` (for the log).
    pub fn first(&self, h: Hdr) -> Option<&'a [u8]> {
        let i = h as usize;
        (self.spans.lines[i] > 0).then(|| self.slice(self.spans.at[i]))
    }

    /// Calls `f` with each line's value of a list field, in order (several
    /// lines of a list field are one list, RFC 9110 5.3). One line: no scan;
    /// several: the head is scanned for them.
    pub fn each(&self, h: Hdr, mut f: impl FnMut(&'a [u8])) {
        let i = h as usize;
        match self.spans.lines[i] {
            0 => {}
            1 => f(self.slice(self.spans.at[i])),
            _ => {
                // The head was checked: CRLF lines, `name:value` fields.
                for line in self.head.split(|&b| b == b'\n').skip(1) {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let Some(colon) = line.iter().position(|&b| b == b':') else {
                        continue;
                    };
                    if line[..colon].eq_ignore_ascii_case(h.name()) {
                        let v = &line[colon + 1..];
                        let lead = v.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
                        let mut v = &v[lead..];
                        while let [rest @ .., b' ' | b'\t'] = v {
                            v = rest;
                        }
                        f(v);
                    }
                }
            }
        }
    }

    fn slice(&self, (a, b): (u32, u32)) -> &'a [u8] {
        self.head.get(a as usize..b as usize).unwrap_or(&[])
    }
}
