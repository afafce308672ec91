//! Conditional requests (RFC 9110 13): `If-Match`, `If-Unmodified-Since`,
//! `If-None-Match`, `If-Modified-Since` evaluated in the order of 13.2.2,
//! and `If-Range` (13.1.5). No I/O: the representation's validators come in.

use crate::date::parse_http_date;
use crate::parse::{Fields, Hdr};

/// A representation's validators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validators<'a> {
    /// The entity tag with its quotes (`"66a1b2c3-1f4"`), a strong one.
    pub etag: &'a [u8],
    /// Last modification, seconds since the epoch (the `Last-Modified`).
    pub mtime: u64,
}

/// What the preconditions decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Serve it; `range` says whether a `Range` may be honoured (false when
    /// `If-Range` does not match: the whole representation).
    Proceed {
        /// Honour `Range`.
        range: bool,
    },
    /// 304 (GET or HEAD whose `If-None-Match` / `If-Modified-Since` is
    /// false).
    NotModified,
    /// 412 (`If-Match` / `If-Unmodified-Since` false, or `If-None-Match`
    /// false for another method).
    Failed,
}

/// The preconditions any of which makes [`evaluate`] do something.
pub const FIELDS: [Hdr; 5] = [
    Hdr::IfMatch,
    Hdr::IfUnmodifiedSince,
    Hdr::IfNoneMatch,
    Hdr::IfModifiedSince,
    Hdr::IfRange,
];

/// Evaluates the preconditions of a request for an existing representation
/// (`get_or_head`: the method is GET or HEAD).
pub fn evaluate(f: &Fields, get_or_head: bool, v: &Validators) -> Outcome {
    // 1. If-Match: false -> 412.
    if !f.absent(Hdr::IfMatch) {
        if !list_matches(f, Hdr::IfMatch, v.etag, true) {
            return Outcome::Failed;
        }
    } else if let Some(d) = f.one(Hdr::IfUnmodifiedSince).and_then(parse_http_date) {
        // 2. If-Unmodified-Since (only without If-Match; an invalid date is
        // ignored, 13.1.4): modified after it -> 412.
        if v.mtime > d {
            return Outcome::Failed;
        }
    }
    // 3. If-None-Match: false -> 304 for GET/HEAD, else 412.
    if !f.absent(Hdr::IfNoneMatch) {
        if list_matches(f, Hdr::IfNoneMatch, v.etag, false) {
            return if get_or_head {
                Outcome::NotModified
            } else {
                Outcome::Failed
            };
        }
    } else if get_or_head {
        // 4. If-Modified-Since (only without If-None-Match, GET/HEAD only,
        // ignored when not one valid date, 13.1.3): not modified since ->
        // 304.
        if let Some(d) = f.one(Hdr::IfModifiedSince).and_then(parse_http_date) {
            if v.mtime <= d {
                return Outcome::NotModified;
            }
        }
    }
    // 5. If-Range: only with a Range (the caller honours Range for GET
    // only).
    let range = f.absent(Hdr::Range) || f.absent(Hdr::IfRange) || if_range(f, v);
    Outcome::Proceed { range }
}

/// `If-Range`: an entity tag matching strongly, or a date equal to the
/// `Last-Modified` (13.1.5). Anything else (a weak tag, another date, no
/// valid value, the field twice) is false: the Range is ignored.
fn if_range(f: &Fields, v: &Validators) -> bool {
    let Some(val) = f.one(Hdr::IfRange) else {
        return false;
    };
    if val.first() == Some(&b'"') || val.starts_with(b"W/") {
        let mut tags = Tags::new(val);
        return match (tags.next(), tags.next()) {
            (
                Some(Tag::Etag {
                    weak: false,
                    opaque,
                }),
                None,
            ) => opaque == v.etag,
            _ => false,
        };
    }
    parse_http_date(val) == Some(v.mtime)
}

/// Whether the list field `h` (`*` or entity tags) matches `etag`: strong
/// comparison for If-Match (a weak tag never matches), weak for
/// If-None-Match (`W/` ignored). `*` matches any existing representation.
fn list_matches(f: &Fields, h: Hdr, etag: &[u8], strong: bool) -> bool {
    let mut hit = false;
    f.each(h, |value| {
        for t in Tags::new(value) {
            hit |= match t {
                Tag::Star => true,
                Tag::Etag { weak, opaque } => opaque == etag && !(strong && weak),
            };
        }
    });
    hit
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag<'a> {
    Star,
    /// `opaque` with its quotes.
    Etag {
        weak: bool,
        opaque: &'a [u8],
    },
}

/// The members of `If-Match = "*" / #entity-tag` (RFC 9110 8.8.3): commas
/// may sit inside a quoted tag, so members are read tag by tag. Stops at
/// the first member that is not valid syntax.
struct Tags<'a> {
    rest: &'a [u8],
}

impl<'a> Tags<'a> {
    fn new(v: &'a [u8]) -> Self {
        Tags { rest: v }
    }
}

impl<'a> Iterator for Tags<'a> {
    type Item = Tag<'a>;

    fn next(&mut self) -> Option<Tag<'a>> {
        let s = self.rest;
        let skip = s
            .iter()
            .take_while(|&&b| matches!(b, b' ' | b'\t' | b','))
            .count();
        let s = &s[skip..];
        if s.is_empty() {
            return None;
        }
        let (tag, used) = if s[0] == b'*' {
            (Tag::Star, 1)
        } else {
            let weak = s.starts_with(b"W/");
            let q = if weak { &s[2..] } else { s };
            if q.first() != Some(&b'"') {
                self.rest = &[];
                return None;
            }
            // etagc = %x21 / %x23-7E / obs-text
            let Some(close) = q[1..].iter().position(|&b| b == b'"') else {
                self.rest = &[];
                return None;
            };
            let opaque = &q[..close + 2];
            if !opaque[1..close + 1]
                .iter()
                .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
            {
                self.rest = &[];
                return None;
            }
            (
                Tag::Etag { weak, opaque },
                opaque.len() + if weak { 2 } else { 0 },
            )
        };
        let after = &s[used..];
        // A member ends at a comma (or the end), after optional whitespace.
        let ws = after
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if !(after.len() == ws || after[ws] == b',') {
            self.rest = &[];
            return None;
        }
        self.rest = after;
        Some(tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{Event, Framer, Limits};

    const ETAG: &[u8] = b"\"5f5e1000-2a\"";
    /// Sun, 06 Nov 1994 08:49:37 GMT
    const MTIME: u64 = 784_111_777;
    const AT: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const AFTER: &str = "Sunday, 06-Nov-94 08:49:38 GMT";

    /// Evaluates the preconditions of a GET (or `method`) with these fields.
    fn eval_m(method: &str, fields: &[(&str, &str)]) -> Outcome {
        let mut head = format!("{method} /f HTTP/1.1\r\nHost: t\r\n");
        for (n, v) in fields {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut framer = Framer::new(Limits::default());
        let (_, ev) = framer.advance(head.as_bytes());
        let Event::Request(req) = ev else {
            panic!("{ev:?}")
        };
        let v = Validators {
            etag: ETAG,
            mtime: MTIME,
        };
        evaluate(&req.fields, matches!(method, "GET" | "HEAD"), &v)
    }

    fn eval(fields: &[(&str, &str)]) -> Outcome {
        eval_m("GET", fields)
    }

    const GO: Outcome = Outcome::Proceed { range: true };
    const WHOLE: Outcome = Outcome::Proceed { range: false };

    #[test]
    fn if_none_match_is_weak_and_takes_lists() {
        assert_eq!(eval(&[]), GO);
        assert_eq!(
            eval(&[("If-None-Match", "\"5f5e1000-2a\"")]),
            Outcome::NotModified
        );
        assert_eq!(
            eval(&[("If-None-Match", "W/\"5f5e1000-2a\"")]),
            Outcome::NotModified
        );
        assert_eq!(eval(&[("If-None-Match", "*")]), Outcome::NotModified);
        assert_eq!(
            eval(&[("If-None-Match", "\"a\", \"b,c\" , \"5f5e1000-2a\"")]),
            Outcome::NotModified
        );
        assert_eq!(eval(&[("If-None-Match", "\"other\"")]), GO);
        assert_eq!(eval(&[("If-None-Match", "5f5e1000-2a")]), GO);
        assert_eq!(eval(&[("If-None-Match", "\"5F5E1000-2A\"")]), GO);
        // Several lines are one list.
        assert_eq!(
            eval(&[
                ("If-None-Match", "\"a\""),
                ("If-None-Match", "\"5f5e1000-2a\"")
            ]),
            Outcome::NotModified
        );
        // Other methods: 412 instead of 304.
        assert_eq!(
            eval_m("HEAD", &[("If-None-Match", "*")]),
            Outcome::NotModified
        );
        assert_eq!(eval_m("POST", &[("If-None-Match", "*")]), Outcome::Failed);
    }

    #[test]
    fn if_modified_since_only_without_if_none_match() {
        assert_eq!(eval(&[("If-Modified-Since", AT)]), Outcome::NotModified);
        assert_eq!(eval(&[("If-Modified-Since", AFTER)]), Outcome::NotModified);
        assert_eq!(eval(&[("If-Modified-Since", BEFORE)]), GO);
        assert_eq!(eval(&[("If-Modified-Since", "garbage")]), GO);
        // Two values: ignored.
        assert_eq!(
            eval(&[("If-Modified-Since", AT), ("If-Modified-Since", AT)]),
            GO
        );
        // If-None-Match decides alone when present (13.1.3).
        assert_eq!(
            eval(&[("If-None-Match", "\"other\""), ("If-Modified-Since", AT)]),
            GO
        );
        assert_eq!(
            eval(&[("If-None-Match", ETAG_STR), ("If-Modified-Since", BEFORE)]),
            Outcome::NotModified
        );
        // Not for other methods.
        assert_eq!(eval_m("POST", &[("If-Modified-Since", AT)]), GO);
    }

    const ETAG_STR: &str = "\"5f5e1000-2a\"";

    #[test]
    fn if_match_is_strong_and_first() {
        assert_eq!(eval(&[("If-Match", ETAG_STR)]), GO);
        assert_eq!(eval(&[("If-Match", "*")]), GO);
        assert_eq!(eval(&[("If-Match", "\"x\", \"5f5e1000-2a\"")]), GO);
        assert_eq!(eval(&[("If-Match", "W/\"5f5e1000-2a\"")]), Outcome::Failed);
        assert_eq!(eval(&[("If-Match", "\"x\"")]), Outcome::Failed);
        assert_eq!(eval(&[("If-Match", "")]), Outcome::Failed);
        // 412 wins over 304 (step 1 before step 3).
        assert_eq!(
            eval(&[("If-Match", "\"x\""), ("If-None-Match", ETAG_STR)]),
            Outcome::Failed
        );
        // If-Match true: If-Unmodified-Since is not looked at.
        assert_eq!(
            eval(&[("If-Match", ETAG_STR), ("If-Unmodified-Since", BEFORE)]),
            GO
        );
    }

    #[test]
    fn if_unmodified_since() {
        assert_eq!(eval(&[("If-Unmodified-Since", AT)]), GO);
        assert_eq!(eval(&[("If-Unmodified-Since", AFTER)]), GO);
        assert_eq!(eval(&[("If-Unmodified-Since", BEFORE)]), Outcome::Failed);
        assert_eq!(eval(&[("If-Unmodified-Since", "nonsense")]), GO);
        // Then If-None-Match still applies.
        assert_eq!(
            eval(&[("If-Unmodified-Since", AT), ("If-None-Match", "*")]),
            Outcome::NotModified
        );
    }

    #[test]
    fn if_range() {
        let rng = ("Range", "bytes=0-1");
        assert_eq!(eval(&[rng, ("If-Range", ETAG_STR)]), GO);
        assert_eq!(eval(&[rng, ("If-Range", AT)]), GO);
        assert_eq!(eval(&[rng, ("If-Range", BEFORE)]), WHOLE);
        assert_eq!(eval(&[rng, ("If-Range", AFTER)]), WHOLE);
        assert_eq!(eval(&[rng, ("If-Range", "W/\"5f5e1000-2a\"")]), WHOLE);
        assert_eq!(eval(&[rng, ("If-Range", "\"other\"")]), WHOLE);
        assert_eq!(eval(&[rng, ("If-Range", "\"5f5e1000-2a\", \"x\"")]), WHOLE);
        assert_eq!(eval(&[rng, ("If-Range", "junk")]), WHOLE);
        // Without a Range, If-Range means nothing.
        assert_eq!(eval(&[("If-Range", "\"other\"")]), GO);
    }

    #[test]
    fn tags() {
        fn all(v: &str) -> Vec<Tag<'_>> {
            Tags::new(v.as_bytes()).collect()
        }
        assert_eq!(
            all(" W/\"a\",\"b,c\" ,*"),
            vec![
                Tag::Etag {
                    weak: true,
                    opaque: b"\"a\""
                },
                Tag::Etag {
                    weak: false,
                    opaque: b"\"b,c\""
                },
                Tag::Star
            ]
        );
        assert_eq!(all("\"a\" x, \"b\"").len(), 0);
        assert_eq!(all("\"a\", x").len(), 1);
        assert_eq!(all("\"unterminated").len(), 0);
        assert_eq!(all("\"sp ace\"").len(), 0);
    }
}
