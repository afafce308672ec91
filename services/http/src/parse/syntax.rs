//! The grammar pieces of a request head (RFC 9110, 9112, 3986): character
//! classes as tables, request targets, `Host`, `Content-Length`.

use super::{Form, Method};

/// The form of a request target, if valid for `method` (RFC 9112 3.2):
/// only URI characters ([`URI`]), `%` followed by two hex digits.
pub(super) fn target_form(method: Method, t: &[u8]) -> Option<Form> {
    if t == b"*" {
        return (method == Method::Options).then_some(Form::Asterisk);
    }
    if method == Method::Connect {
        return valid_host(t, true).then_some(Form::Authority);
    }
    if t.first() == Some(&b'/') {
        return valid_path_query(t).then_some(Form::Origin);
    }
    let rest = strip_prefix_ci(t, b"http://").or_else(|| strip_prefix_ci(t, b"https://"))?;
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    // RFC 9110 4.2.1 (no empty host), 4.2.4 (no userinfo).
    (valid_host(&rest[..end], false) && valid_path_query(&rest[end..])).then_some(Form::Absolute)
}

pub(super) fn strip_prefix_ci<'a>(t: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = t.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &t[prefix.len()..])
}

/// Path and query characters, with valid percent-encoding.
pub(super) fn valid_path_query(s: &[u8]) -> bool {
    s.iter().all(|&b| URI[b as usize]) && valid_escapes(s)
}

pub(super) fn valid_escapes(s: &[u8]) -> bool {
    let mut i = 0;
    while let Some(p) = s[i..].iter().position(|&b| b == b'%') {
        let at = i + p;
        if s.len() < at + 3 || hex(s[at + 1]).is_none() || hex(s[at + 2]).is_none() {
            return false;
        }
        i = at + 3;
    }
    true
}

/// `uri-host [ ":" port ]` (RFC 9110 7.2, RFC 3986 3.2.2): an IP literal in
/// brackets, or a non-empty reg-name / IPv4 address; the port digits only
/// (`need_port`: present, as CONNECT's authority form needs). No userinfo,
/// path or whitespace; no comma either, which is what two Host values
/// combined into one look like (`a, b`) and no DNS name holds.
pub(super) fn valid_host(v: &[u8], need_port: bool) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(close) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let inner = &v[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.' || REG_NAME[b as usize])
        {
            return false;
        }
        match &v[close + 1..] {
            [] => (&v[..close + 1], None),
            [b':', port @ ..] => (&v[..close + 1], Some(port)),
            _ => return false,
        }
    } else {
        match v.iter().position(|&b| b == b':') {
            Some(c) => (&v[..c], Some(&v[c + 1..])),
            None => (v, None),
        }
    };
    if host.is_empty() {
        return false;
    }
    if host[0] != b'[' && !(host.iter().all(|&b| REG_NAME[b as usize]) && valid_escapes(host)) {
        return false;
    }
    match port {
        Some(p) => p.iter().all(u8::is_ascii_digit) && !(need_port && p.is_empty()),
        None => !need_port,
    }
}

/// A Content-Length value: `1*DIGIT` (RFC 9110 8.6), a list of equal values
/// allowed; `None` if invalid or too large. Leading zeros are refused: no
/// client sends them, and a peer reading them as octal is a smuggling
/// vector.
pub(super) fn content_length(value: &[u8]) -> Option<u64> {
    let mut out: Option<u64> = None;
    for part in value.split(|&b| b == b',') {
        let part = trim_ows(part);
        if part.is_empty()
            || part.len() > 19
            || (part.len() > 1 && part[0] == b'0')
            || !part.iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        let v = part.iter().try_fold(0u64, |acc, &d| {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })?;
        if out.is_some_and(|o| o != v) {
            return None;
        }
        out = Some(v);
    }
    out
}

pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

pub(super) fn hex(c: u8) -> Option<u64> {
    match c {
        b'0'..=b'9' => Some(u64::from(c - b'0')),
        b'a'..=b'f' => Some(u64::from(c - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(c - b'A' + 10)),
        _ => None,
    }
}

/// `tchar` (RFC 9110 5.6.2): method names, field names, codings.
pub(super) const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
};

/// Field value bytes (RFC 9110 5.5): VCHAR, obs-text, SP, HTAB.
pub(super) const VALUE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i == 0x09 || (i >= 0x20 && i != 0x7f);
        i += 1;
    }
    t
};

/// unreserved / sub-delims (RFC 3986 2.2, 2.3) and `%`, less `,`.
pub(super) const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b';'
                    | b'='
            );
        i += 1;
    }
    t
};

/// Path and query bytes: pchar, `/` and `?` (RFC 3986 3.3, 3.4), and the
/// few that RFC 3986 excludes but browsers send unencoded (the WHATWG URL
/// standard leaves `[`, `]`, `|` and `^` raw in paths, and `{`, `}` and the
/// backquote too in queries): refusing `?a[]=1` or `?q=a|b` would break
/// real clients, and none of them can change how a request is framed.
/// Still refused: space, controls, non-ASCII, `"`, `<`, `>`, the backslash
/// and `#` (a fragment is never sent).
pub(super) const URI: [bool; 256] = {
    let mut t = REG_NAME;
    let extra = b",:@/?[]|^{}`";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};
