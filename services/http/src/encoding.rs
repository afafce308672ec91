//! `Accept-Encoding` (RFC 9110 12.5.3): which precompressed variant of a
//! file to send (`file.br`, `file.gz` beside it), if any. No I/O.

use crate::parse::{Fields, Hdr};

/// A content coding the tree can serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// No coding: the file itself.
    Identity,
    /// `file.gz`, `Content-Encoding: gzip`.
    Gzip,
    /// `file.br`, `Content-Encoding: br`.
    Br,
}

impl Coding {
    /// The `Content-Encoding` line (empty for identity).
    pub fn header(self) -> &'static [u8] {
        match self {
            Coding::Identity => b"",
            Coding::Gzip => b"Content-Encoding: gzip\r\n",
            Coding::Br => b"Content-Encoding: br\r\n",
        }
    }

    /// The suffix of the variant file (and of its entity tag).
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Identity => "",
            Coding::Gzip => "gz",
            Coding::Br => "br",
        }
    }
}

/// Chooses the coding for a file that has a `br` variant (`br`) and/or a
/// `gzip` one (`gzip`). The highest q-value wins; on a tie br, then gzip,
/// then identity (the smaller body). A coding not named takes `*`'s
/// q-value; identity not named (nor `*`) stays acceptable but least
/// preferred (12.5.3); `x-gzip` is gzip (8.4.1.3). Without the field, or
/// when nothing acceptable is available (`identity;q=0` and no variant
/// the client takes), identity: 12.5.3 says to send the content without a
/// coding rather than 406.
pub fn choose(f: &Fields, br: bool, gzip: bool) -> Coding {
    if !br && !gzip || f.absent(Hdr::AcceptEncoding) {
        return Coding::Identity;
    }
    // q-values in thousandths; None: not named.
    let (mut q_br, mut q_gz, mut q_id, mut q_star) = (None, None, None, None);
    f.each(Hdr::AcceptEncoding, |value| {
        for member in value.split(|&b| b == b',') {
            let mut parts = member.split(|&b| b == b';');
            let coding = trim(parts.next().unwrap_or_default());
            if coding.is_empty() {
                continue;
            }
            let mut q = Some(1000);
            for p in parts {
                let p = trim(p);
                if p.len() >= 2 && p[..2].eq_ignore_ascii_case(b"q=") {
                    q = qvalue(&p[2..]);
                }
            }
            // A member with a bad q-value is ignored.
            let Some(q) = q else { continue };
            let slot = if coding.eq_ignore_ascii_case(b"br") {
                &mut q_br
            } else if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip")
            {
                &mut q_gz
            } else if coding.eq_ignore_ascii_case(b"identity") {
                &mut q_id
            } else if coding == b"*" {
                &mut q_star
            } else {
                continue;
            };
            // Named twice: the higher one.
            *slot = Some(slot.map_or(q, |old: u16| old.max(q)));
        }
    });
    let q_br = if br { q_br.or(q_star).unwrap_or(0) } else { 0 };
    let q_gz = if gzip {
        q_gz.or(q_star).unwrap_or(0)
    } else {
        0
    };
    // Identity not named: acceptable, below any named coding.
    let q_id = q_id.or(q_star).unwrap_or(1);
    let best = q_br.max(q_gz);
    if best == 0 || best < q_id {
        return Coding::Identity;
    }
    if q_br == best {
        Coding::Br
    } else {
        Coding::Gzip
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` in
/// thousandths (12.4.2).
fn qvalue(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(d) => (&v[..d], &v[d + 1..]),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, &d) in frac.iter().enumerate() {
        thousandths += u16::from(d - b'0') * [100, 10, 1][i];
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{Event, Framer, Limits};

    fn pick_lines(lines: &[&str], br: bool, gzip: bool) -> Coding {
        let mut head = String::from("GET /f HTTP/1.1\r\nHost: t\r\n");
        for l in lines {
            head.push_str(&format!("Accept-Encoding: {l}\r\n"));
        }
        head.push_str("\r\n");
        let mut framer = Framer::new(Limits::default());
        let (_, ev) = framer.advance(head.as_bytes());
        let Event::Request(req) = ev else {
            panic!("{ev:?}")
        };
        choose(&req.fields, br, gzip)
    }

    fn pick(ae: &str) -> Coding {
        pick_lines(&[ae], true, true)
    }

    use Coding::*;

    #[test]
    fn preference_and_ties() {
        assert_eq!(pick_lines(&[], true, true), Identity);
        assert_eq!(pick(""), Identity);
        assert_eq!(pick("gzip"), Gzip);
        assert_eq!(pick("x-gzip"), Gzip);
        assert_eq!(pick("GZIP"), Gzip);
        assert_eq!(pick("br"), Br);
        assert_eq!(pick("gzip, deflate, br"), Br);
        assert_eq!(pick("gzip;q=1.0, br;q=0.5"), Gzip);
        assert_eq!(pick("gzip;q=0.5, br;q=0.8"), Br);
        assert_eq!(pick("gzip ; q=0.9 , br ; Q=0.9"), Br);
        assert_eq!(pick("deflate"), Identity);
        assert_eq!(pick("*"), Br);
        assert_eq!(pick("*;q=0.5, br;q=0.1"), Gzip);
        // Only the variants that exist.
        assert_eq!(pick_lines(&["br, gzip"], false, true), Gzip);
        assert_eq!(pick_lines(&["br"], false, true), Identity);
        assert_eq!(pick_lines(&["gzip"], true, false), Identity);
        // Several lines are one list.
        assert_eq!(pick_lines(&["deflate", "br"], true, true), Br);
    }

    #[test]
    fn identity_and_zero() {
        assert_eq!(pick("gzip;q=0"), Identity);
        assert_eq!(pick("br;q=0, gzip;q=0.001"), Gzip);
        assert_eq!(pick("identity;q=1, gzip;q=0.5"), Identity);
        assert_eq!(pick("identity;q=0.5, gzip;q=0.5"), Gzip);
        assert_eq!(pick("identity;q=0, gzip"), Gzip);
        assert_eq!(pick("*;q=0"), Identity);
        assert_eq!(pick("*;q=0, gzip"), Gzip);
        // Nothing acceptable: identity all the same (12.5.3).
        assert_eq!(pick("identity;q=0, deflate"), Identity);
        assert_eq!(pick("*;q=0, identity;q=0"), Identity);
    }

    #[test]
    fn bad_qvalues_drop_the_member() {
        assert_eq!(pick("br;q=2, gzip"), Gzip);
        assert_eq!(pick("br;q=0.5x, gzip;q=0.1"), Gzip);
        assert_eq!(pick("br;q=1.5"), Identity);
        assert_eq!(pick("br;q=0.1234"), Identity);
        assert_eq!(pick("br;q=, gzip"), Gzip);
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue(b"0"), Some(0));
        assert_eq!(qvalue(b"0."), Some(0));
        assert_eq!(qvalue(b"0.5"), Some(500));
        assert_eq!(qvalue(b"0.05"), Some(50));
        assert_eq!(qvalue(b"0.123"), Some(123));
        assert_eq!(qvalue(b"1"), Some(1000));
        assert_eq!(qvalue(b"1.000"), Some(1000));
        assert_eq!(qvalue(b"1.001"), None);
        assert_eq!(qvalue(b".5"), None);
        assert_eq!(qvalue(b"-0"), None);
    }
}
