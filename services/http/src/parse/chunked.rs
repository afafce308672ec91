//! The chunked transfer coding (RFC 9112 7.1), decoded a byte at a time:
//! the decoder's whole state is a few words, so a chunked body of any
//! size needs no buffer. Chunk data is handed out as slices of the
//! caller's bytes; extensions are checked and dropped (their total bounded
//! by `max_header`, 7.1.1); trailer fields are checked like header fields
//! and dropped (RFC 9110 6.5.1), their total bounded by `max_header` (431).
//! Only CRLF ends a line here: a bare LF or CR is a 400.

use super::syntax::{hex, TCHAR, VALUE};
use super::{Event, Limits};

/// Where the chunked decoder is (RFC 9112 7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ck {
    /// In `chunk-size`; `digits` seen yet.
    Size {
        digits: bool,
    },
    /// `BWS` after the size or an extension: only `;` may follow.
    Ws,
    /// After `;`, before the extension's name.
    ExtName0,
    /// In an extension name.
    ExtName,
    /// `BWS` after an extension name: `=` or `;` may follow.
    ExtNameWs,
    /// After `=`, before the value.
    ExtVal0,
    /// In a token value.
    ExtToken,
    /// In a quoted-string value.
    ExtQuoted,
    /// After a backslash in a quoted string.
    ExtQuotedPair,
    /// After the closing quote.
    ExtAfter,
    /// CR of the size line seen: LF next.
    SizeLf,
    /// Bytes of chunk data left.
    Data(u64),
    /// CRLF after chunk data.
    DataCr,
    DataLf,
    /// At the start of a trailer field line (or of the final CRLF).
    Trailer,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// CR of the final empty line seen: LF next.
    EndLf,
    /// The body is complete: `End` is next.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Chunk {
    ck: Ck,
    /// The size being read.
    size: u64,
    /// Decoded bytes so far (against `max_body`).
    total: u64,
    /// Extension bytes so far (against `max_header`).
    ext: usize,
    /// Trailer bytes so far (against `max_header`).
    trailer: usize,
}

impl Chunk {
    pub(super) fn new() -> Self {
        Chunk {
            ck: Ck::Size { digits: false },
            size: 0,
            total: 0,
            ext: 0,
            trailer: 0,
        }
    }

    /// Decodes chunked framing from `data` until a piece of data, the end
    /// of the body, a refusal or the end of `data` (RFC 9112 7.1).
    pub(super) fn decode<'a>(
        &mut self,
        data: &'a [u8],
        limits: &Limits,
        work: &mut u64,
    ) -> (usize, Event<'a>) {
        let c = self;
        let max_header = limits.max_header;
        let mut i = 0;
        loop {
            match c.ck {
                Ck::Data(left) => {
                    let n = ((data.len() - i) as u64).min(left);
                    if n == 0 {
                        return (i, Event::Partial);
                    }
                    c.ck = if n == left {
                        Ck::DataCr
                    } else {
                        Ck::Data(left - n)
                    };
                    let n = n as usize;
                    return (i + n, Event::Body(&data[i..i + n]));
                }
                Ck::Done => return (i, Event::End),
                _ => {}
            }
            let Some(&b) = data.get(i) else {
                return (i, Event::Partial);
            };
            i += 1;
            *work += 1;
            let ws = b == b' ' || b == b'\t';
            let t = TCHAR[b as usize];
            c.ck = match c.ck {
                Ck::Size { digits } => match hex(b) {
                    Some(d) => {
                        // RFC 9112 7.1: large numerals must not overflow.
                        let Some(s) = c.size.checked_mul(16).and_then(|s| s.checked_add(d)) else {
                            return (i, Event::Reject(400));
                        };
                        c.size = s;
                        Ck::Size { digits: true }
                    }
                    None if !digits => return (i, Event::Reject(400)),
                    None if ws => Ck::Ws,
                    None if b == b';' => Ck::ExtName0,
                    None if b == b'\r' => Ck::SizeLf,
                    None => return (i, Event::Reject(400)),
                },
                // chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ):
                // whitespace only before a `;`, a `=` or a value.
                Ck::Ws if ws => Ck::Ws,
                Ck::Ws if b == b';' => Ck::ExtName0,
                Ck::ExtName0 if ws => Ck::ExtName0,
                Ck::ExtName0 if t => Ck::ExtName,
                Ck::ExtName if t => Ck::ExtName,
                Ck::ExtName if ws => Ck::ExtNameWs,
                Ck::ExtName | Ck::ExtNameWs if b == b'=' => Ck::ExtVal0,
                Ck::ExtNameWs if ws => Ck::ExtNameWs,
                Ck::ExtVal0 if ws => Ck::ExtVal0,
                Ck::ExtVal0 if t => Ck::ExtToken,
                Ck::ExtVal0 if b == b'"' => Ck::ExtQuoted,
                Ck::ExtToken if t => Ck::ExtToken,
                Ck::ExtQuoted if b == b'"' => Ck::ExtAfter,
                Ck::ExtQuoted if b == b'\\' => Ck::ExtQuotedPair,
                Ck::ExtQuoted if VALUE[b as usize] => Ck::ExtQuoted,
                Ck::ExtQuotedPair if VALUE[b as usize] => Ck::ExtQuoted,
                Ck::ExtName | Ck::ExtNameWs | Ck::ExtToken | Ck::ExtAfter if b == b';' => {
                    Ck::ExtName0
                }
                Ck::ExtToken | Ck::ExtAfter if ws => Ck::Ws,
                Ck::ExtName | Ck::ExtToken | Ck::ExtAfter if b == b'\r' => Ck::SizeLf,
                Ck::SizeLf if b == b'\n' => {
                    let size = std::mem::take(&mut c.size);
                    if size == 0 {
                        Ck::Trailer
                    } else {
                        c.total = c.total.saturating_add(size);
                        if c.total > limits.max_body {
                            return (i, Event::Reject(413));
                        }
                        Ck::Data(size)
                    }
                }
                Ck::DataCr if b == b'\r' => Ck::DataLf,
                Ck::DataLf if b == b'\n' => Ck::Size { digits: false },
                // Trailer fields: checked like header fields, then dropped
                // (RFC 9110 6.5.1 lets a recipient discard them).
                Ck::Trailer if b == b'\r' => Ck::EndLf,
                Ck::Trailer | Ck::TrailerName if t => Ck::TrailerName,
                Ck::TrailerName if b == b':' => Ck::TrailerValue,
                Ck::TrailerValue if VALUE[b as usize] => Ck::TrailerValue,
                Ck::TrailerValue if b == b'\r' => Ck::TrailerLf,
                Ck::TrailerLf if b == b'\n' => Ck::Trailer,
                Ck::EndLf if b == b'\n' => Ck::Done,
                _ => return (i, Event::Reject(400)),
            };
            match c.ck {
                Ck::Ws
                | Ck::ExtName0
                | Ck::ExtName
                | Ck::ExtNameWs
                | Ck::ExtVal0
                | Ck::ExtToken
                | Ck::ExtQuoted
                | Ck::ExtQuotedPair
                | Ck::ExtAfter => {
                    // RFC 9112 7.1.1: limit extensions like the head.
                    c.ext += 1;
                    if c.ext > max_header {
                        return (i, Event::Reject(400));
                    }
                }
                Ck::Trailer
                | Ck::TrailerName
                | Ck::TrailerValue
                | Ck::TrailerLf
                | Ck::EndLf
                | Ck::Done => {
                    c.trailer += 1;
                    if c.trailer > max_header {
                        return (i, Event::Reject(431));
                    }
                }
                _ => {}
            }
        }
    }
}
