//! Zone files in the standard master-file format (RFC 1035 §5): `$ORIGIN`,
//! `$TTL`, `$INCLUDE`, relative names, `@`, comments, parentheses across
//! lines, quoted strings, owner / TTL / class inheritance.
//!
//! The entry structure (lines, parentheses, directives, owner, TTL, class,
//! type) is parsed here so that every error says `file:line`; the record
//! data of each type is parsed by hickory-proto (`RData::try_from_str`), and
//! names in it that are relative are completed with the current origin.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_proto::rr::rdata::{CNAME, NS, PTR};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::txt::parse_ttl;

/// A zone file error, with where it happened.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {msg}")]
pub struct ZoneError {
    /// File (the zone file or an included one).
    pub file: String,
    /// Line (1-based) where the entry starts.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

/// One resource record of the zone, as written.
#[derive(Clone, Debug)]
pub struct Rr {
    /// Owner (absolute).
    pub owner: Name,
    /// Type.
    pub rtype: RecordType,
    /// TTL in seconds.
    pub ttl: u32,
    /// Record data (names absolute).
    pub rdata: RData,
    /// File it came from.
    pub file: String,
    /// Line its entry starts on.
    pub line: usize,
}

/// A parsed zone file: its records in file order.
#[derive(Clone, Debug)]
pub struct ZoneFile {
    /// Records, `$INCLUDE`d ones in place.
    pub records: Vec<Rr>,
}

/// How deep `$INCLUDE` may nest.
const MAX_INCLUDE_DEPTH: usize = 8;

#[derive(Debug)]
struct Token {
    /// Raw text: quoted strings keep their quotes, escapes are kept as
    /// written (the name and record data parsers resolve them).
    text: String,
    quoted: bool,
}

struct Entry {
    line: usize,
    /// The entry started with white space: the owner is the previous one.
    blank_owner: bool,
    tokens: Vec<Token>,
}

/// Split master-file text into entries (logical lines).
fn entries(text: &str, file: &str) -> Result<Vec<Entry>, ZoneError> {
    let err = |line: usize, msg: &str| ZoneError {
        file: file.to_string(),
        line,
        msg: msg.to_string(),
    };
    let mut out = Vec::new();
    let mut line = 1;
    let mut depth = 0usize;
    let mut cur: Option<Entry> = None;
    let mut tok: Option<Token> = None;
    let mut at_line_start = true;
    let mut chars = text.chars().peekable();
    let finish_tok = |tok: &mut Option<Token>, cur: &mut Option<Entry>, line: usize| {
        if let Some(t) = tok.take() {
            cur.get_or_insert(Entry {
                line,
                blank_owner: false,
                tokens: Vec::new(),
            })
            .tokens
            .push(t);
        }
    };
    while let Some(c) = chars.next() {
        let start_of_line = at_line_start;
        at_line_start = false;
        match c {
            '\n' => {
                finish_tok(&mut tok, &mut cur, line);
                if depth == 0 {
                    if let Some(e) = cur.take() {
                        if !e.tokens.is_empty() {
                            out.push(e);
                        }
                    }
                    at_line_start = true;
                }
                line += 1;
            }
            ';' => {
                finish_tok(&mut tok, &mut cur, line);
                while let Some(&n) = chars.peek() {
                    if n == '\n' {
                        break;
                    }
                    chars.next();
                }
            }
            '(' => {
                finish_tok(&mut tok, &mut cur, line);
                cur.get_or_insert(Entry {
                    line,
                    blank_owner: start_of_line,
                    tokens: Vec::new(),
                });
                depth += 1;
            }
            ')' => {
                finish_tok(&mut tok, &mut cur, line);
                if depth == 0 {
                    return Err(err(line, "`)` without `(`"));
                }
                depth -= 1;
            }
            '"' => {
                finish_tok(&mut tok, &mut cur, line);
                let start = line;
                let mut s = String::from('"');
                let mut closed = false;
                while let Some(n) = chars.next() {
                    match n {
                        '\\' => {
                            s.push('\\');
                            if let Some(e) = chars.next() {
                                if e == '\n' {
                                    line += 1;
                                }
                                s.push(e);
                            }
                        }
                        '"' => {
                            s.push('"');
                            closed = true;
                            break;
                        }
                        '\n' => {
                            line += 1;
                            s.push('\n');
                        }
                        _ => s.push(n),
                    }
                }
                if !closed {
                    return Err(err(start, "unterminated quoted string"));
                }
                cur.get_or_insert(Entry {
                    line: start,
                    blank_owner: start_of_line,
                    tokens: Vec::new(),
                })
                .tokens
                .push(Token {
                    text: s,
                    quoted: true,
                });
            }
            c if c == ' ' || c == '\t' || c == '\r' => {
                finish_tok(&mut tok, &mut cur, line);
                if start_of_line && depth == 0 && c != '\r' {
                    cur.get_or_insert(Entry {
                        line,
                        blank_owner: true,
                        tokens: Vec::new(),
                    });
                }
            }
            c => {
                let t = tok.get_or_insert(Token {
                    text: String::new(),
                    quoted: false,
                });
                t.text.push(c);
                if c == '\\' {
                    if let Some(e) = chars.next() {
                        if e == '\n' {
                            return Err(err(line, "escaped line break outside quotes"));
                        }
                        t.text.push(e);
                    }
                }
            }
        }
    }
    finish_tok(&mut tok, &mut cur, line);
    if depth > 0 {
        let l = cur.as_ref().map_or(line, |e| e.line);
        return Err(err(l, "unbalanced `(`: missing `)`"));
    }
    if let Some(e) = cur.take() {
        if !e.tokens.is_empty() {
            out.push(e);
        }
    }
    Ok(out)
}

struct Ctx {
    origin: Option<Name>,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    last_owner: Option<Name>,
}

/// Parse the zone file at `path`. `origin` is the initial origin (relative
/// names before any `$ORIGIN` need one).
pub fn parse_file(path: &Path, origin: Option<Name>) -> Result<ZoneFile, ZoneError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ZoneError {
        file: file.clone(),
        line: 0,
        msg: format!("cannot read: {e}"),
    })?;
    parse_text(&text, &file, Some(path), origin)
}

/// Parse zone text (no `$INCLUDE` of relative paths without a file).
pub fn parse_str(text: &str, file: &str, origin: Option<Name>) -> Result<ZoneFile, ZoneError> {
    parse_text(text, file, None, origin)
}

/// Parse `text` (read from `path` when there is one, for `$INCLUDE`s) from a fresh context.
fn parse_text(
    text: &str,
    file: &str,
    path: Option<&Path>,
    origin: Option<Name>,
) -> Result<ZoneFile, ZoneError> {
    let mut ctx = Ctx {
        origin: origin.map(fqdn),
        default_ttl: None,
        last_ttl: None,
        last_owner: None,
    };
    let mut records = Vec::new();
    parse_into(text, file, path, &mut ctx, &mut records, 0)?;
    Ok(ZoneFile { records })
}

fn fqdn(mut n: Name) -> Name {
    n.set_fqdn(true);
    n
}

fn is_class(s: &str) -> bool {
    matches!(
        s.to_ascii_uppercase().as_str(),
        "IN" | "CH" | "CS" | "HS" | "NONE" | "ANY"
    ) || s.to_ascii_uppercase().starts_with("CLASS")
}

fn parse_into(
    text: &str,
    file: &str,
    path: Option<&Path>,
    ctx: &mut Ctx,
    records: &mut Vec<Rr>,
    depth: usize,
) -> Result<(), ZoneError> {
    for e in entries(text, file)? {
        let err = |msg: String| ZoneError {
            file: file.to_string(),
            line: e.line,
            msg,
        };
        let first = &e.tokens[0];
        if !e.blank_owner && !first.quoted && first.text.starts_with('$') {
            let dir = first.text.to_ascii_uppercase();
            let arg = e.tokens.get(1).map(|t| t.text.as_str());
            match dir.as_str() {
                "$ORIGIN" => {
                    let a = arg.ok_or_else(|| err("$ORIGIN needs a name".into()))?;
                    let n = Name::parse(a, ctx.origin.as_ref())
                        .map_err(|x| err(format!("bad $ORIGIN `{a}`: {x}")))?;
                    if !n.is_fqdn() {
                        return Err(err(format!(
                            "$ORIGIN `{a}` is relative and no origin is known"
                        )));
                    }
                    ctx.origin = Some(n);
                }
                "$TTL" => {
                    let a = arg.ok_or_else(|| err("$TTL needs a value".into()))?;
                    let t = parse_ttl(a).map_err(|x| err(format!("bad $TTL `{a}`: {x}")))?;
                    ctx.default_ttl = Some(t);
                }
                "$INCLUDE" => {
                    if depth >= MAX_INCLUDE_DEPTH {
                        return Err(err("$INCLUDE nested too deep".into()));
                    }
                    let a = arg.ok_or_else(|| err("$INCLUDE needs a file name".into()))?;
                    let inc = PathBuf::from(a.trim_matches('"'));
                    let inc = if inc.is_absolute() {
                        inc
                    } else {
                        match path.and_then(Path::parent) {
                            Some(dir) => dir.join(inc),
                            None => {
                                return Err(err(format!(
                                    "relative $INCLUDE `{a}` without a zone file path"
                                )))
                            }
                        }
                    };
                    let saved = ctx.origin.clone();
                    if let Some(o) = e.tokens.get(2) {
                        let n = Name::parse(&o.text, ctx.origin.as_ref())
                            .map_err(|x| err(format!("bad $INCLUDE origin `{}`: {x}", o.text)))?;
                        ctx.origin = Some(fqdn(n));
                    }
                    let inc_file = inc.display().to_string();
                    let inc_text = std::fs::read_to_string(&inc)
                        .map_err(|x| err(format!("cannot read $INCLUDE `{inc_file}`: {x}")))?;
                    parse_into(&inc_text, &inc_file, Some(&inc), ctx, records, depth + 1)?;
                    // An included file never changes the includer's origin.
                    ctx.origin = saved;
                }
                other => return Err(err(format!("unsupported directive `{other}`"))),
            }
            continue;
        }
        records.push(parse_rr(&e, ctx).map_err(|x| err(x.to_string()))?);
        let r = records.last().map(|r| (r.owner.clone(), r.ttl));
        if let Some((owner, _)) = r {
            ctx.last_owner = Some(owner);
        }
        if let Some(r) = records.last_mut() {
            r.file = file.to_string();
            r.line = e.line;
        }
    }
    Ok(())
}

/// What is wrong with one entry of a zone file (the message of a
/// [`ZoneError`], which adds where).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum EntryError {
    #[error("a record without an owner and no previous owner")]
    NoOwner,
    #[error("empty entry")]
    Empty,
    #[error("missing record type")]
    NoType,
    #[error("expected a TTL, class or type, found {0}")]
    Unexpected(String),
    #[error("second TTL `{0}`")]
    SecondTtl(String),
    #[error("bad TTL `{0}`: {1}")]
    Ttl(String, String),
    #[error("class {0} is not served (only IN)")]
    Class(String),
    #[error("unknown record type `{0}`")]
    UnknownType(String),
    #[error("type {0} cannot appear in a zone")]
    NotInZone(RecordType),
    #[error("`@` used and no origin is known")]
    AtWithoutOrigin,
    #[error("`@` and no origin is known")]
    OwnerAtWithoutOrigin,
    #[error("{0} record without data")]
    NoData(RecordType),
    #[error("bad {rtype} data `{text}`: {why}")]
    Data {
        rtype: RecordType,
        text: String,
        why: String,
    },
    #[error("no TTL given and no $TTL or earlier TTL to use")]
    NoTtl,
    #[error("bad name `{0}`: {1}")]
    Name(String, String),
    #[error("relative name `{0}` and no origin is known")]
    Relative(String),
    #[error("name `{0}` + origin: {1}")]
    Append(String, String),
}

fn parse_rr(e: &Entry, ctx: &mut Ctx) -> Result<Rr, EntryError> {
    let mut toks = e.tokens.iter().peekable();
    let owner = if e.blank_owner {
        ctx.last_owner.clone().ok_or(EntryError::NoOwner)?
    } else {
        let t = toks.next().ok_or(EntryError::Empty)?;
        parse_name(&t.text, ctx.origin.as_ref())?
    };
    let mut ttl = None;
    let mut class_seen = false;
    let rtype = loop {
        let t = toks.next().ok_or(EntryError::NoType)?;
        if t.quoted {
            return Err(EntryError::Unexpected(t.text.clone()));
        }
        let s = t.text.as_str();
        if s.starts_with(|c: char| c.is_ascii_digit()) {
            if ttl.is_some() {
                return Err(EntryError::SecondTtl(s.to_string()));
            }
            ttl = Some(parse_ttl(s).map_err(|x| EntryError::Ttl(s.to_string(), x.to_string()))?);
            continue;
        }
        if is_class(s) && !class_seen {
            if !s.eq_ignore_ascii_case("IN") {
                return Err(EntryError::Class(s.to_string()));
            }
            class_seen = true;
            continue;
        }
        let up = s.to_ascii_uppercase();
        let rt = RecordType::from_str(&up).map_err(|_| EntryError::UnknownType(s.to_string()))?;
        break rt;
    };
    match rtype {
        RecordType::OPT
        | RecordType::ANY
        | RecordType::AXFR
        | RecordType::IXFR
        | RecordType::NULL
        | RecordType::TSIG => return Err(EntryError::NotInZone(rtype)),
        _ => {}
    }
    let origin_text = ctx.origin.as_ref().map(|o| o.to_ascii());
    let mut parts = Vec::new();
    for t in toks {
        if !t.quoted && t.text == "@" {
            parts.push(origin_text.clone().ok_or(EntryError::AtWithoutOrigin)?);
        } else {
            parts.push(t.text.clone());
        }
    }
    if parts.is_empty() {
        return Err(EntryError::NoData(rtype));
    }
    let text = parts.join(" ");
    let rdata = RData::try_from_str(rtype, &text).map_err(|x| EntryError::Data {
        rtype,
        text: text.clone(),
        why: x.to_string(),
    })?;
    let rdata = absolutize(rdata, ctx.origin.as_ref())?;
    let ttl = match ttl {
        Some(t) => {
            ctx.last_ttl = Some(t);
            t
        }
        None => match (ctx.default_ttl, ctx.last_ttl) {
            (Some(t), _) => t,
            (None, Some(t)) => t,
            (None, None) => match &rdata {
                // RFC 1035: with no $TTL, the SOA's minimum is the default.
                RData::SOA(soa) => {
                    ctx.last_ttl = Some(soa.minimum);
                    soa.minimum
                }
                _ => return Err(EntryError::NoTtl),
            },
        },
    };
    Ok(Rr {
        owner,
        rtype,
        ttl,
        rdata,
        file: String::new(),
        line: e.line,
    })
}

fn parse_name(s: &str, origin: Option<&Name>) -> Result<Name, EntryError> {
    if s == "@" {
        return origin.cloned().ok_or(EntryError::OwnerAtWithoutOrigin);
    }
    let n = Name::parse(s, origin).map_err(|x| EntryError::Name(s.to_string(), x.to_string()))?;
    if !n.is_fqdn() {
        return Err(EntryError::Relative(s.to_string()));
    }
    Ok(n)
}

fn complete(n: &Name, origin: Option<&Name>) -> Result<Name, EntryError> {
    if n.is_fqdn() {
        return Ok(n.clone());
    }
    let o = origin.ok_or_else(|| EntryError::Relative(n.to_string()))?;
    n.clone()
        .append_domain(o)
        .map_err(|x| EntryError::Append(n.to_string(), x.to_string()))
}

/// Complete the relative names in record data with the origin.
fn absolutize(mut rdata: RData, origin: Option<&Name>) -> Result<RData, EntryError> {
    match &mut rdata {
        RData::CNAME(CNAME(n)) | RData::NS(NS(n)) | RData::PTR(PTR(n)) => {
            *n = complete(n, origin)?;
        }
        RData::MX(mx) => mx.exchange = complete(&mx.exchange, origin)?,
        RData::SRV(s) => s.target = complete(&s.target, origin)?,
        RData::SOA(s) => {
            s.mname = complete(&s.mname, origin)?;
            s.rname = complete(&s.rname, origin)?;
        }
        _ => {}
    }
    Ok(rdata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{MX, SRV};

    fn n(s: &str) -> Name {
        Name::from_str(s).unwrap()
    }

    const ZONE: &str = r#"
$ORIGIN example.com.
$TTL 1h ; default TTL
@   IN  SOA ns1 hostmaster.example.com. (
        2024010101 ; serial
        7200       ; refresh
        3600       ; retry
        1209600    ; expire
        300 )      ; minimum
    IN  NS  ns1
    IN  NS  ns2.example.net.
    IN  MX  10 mail
    IN  MX  20 @
    IN  TXT "v=spf1 -all"
ns1     A       192.0.2.53
www 300 IN A    192.0.2.1
        IN 600 AAAA 2001:db8::1
alias   CNAME   www
txt     TXT     "a b" "c;d" plain
srv._tcp SRV 1 2 443 www
ptr     PTR     www.example.com.
sub.deep A 192.0.2.9
$ORIGIN other.example.com.
x       A 192.0.2.10
"#;

    #[test]
    fn every_record_type_and_directive() {
        let z = parse_str(ZONE, "t.zone", None).unwrap();
        let r = &z.records;
        assert_eq!(r.len(), 15, "{r:#?}");
        // SOA across parentheses, with comments inside.
        assert_eq!(r[0].owner, n("example.com."));
        assert_eq!(r[0].rtype, RecordType::SOA);
        assert_eq!(r[0].ttl, 3600);
        assert_eq!(r[0].line, 4);
        let RData::SOA(soa) = &r[0].rdata else {
            panic!()
        };
        assert_eq!(soa.mname, n("ns1.example.com."));
        assert_eq!(soa.rname, n("hostmaster.example.com."));
        assert_eq!(soa.serial, 2024010101);
        assert_eq!(soa.minimum, 300);
        // Blank owner inherits; relative names complete with the origin.
        assert_eq!(r[1].owner, n("example.com."));
        assert_eq!(r[1].rdata, RData::NS(NS(n("ns1.example.com."))));
        assert_eq!(r[2].rdata, RData::NS(NS(n("ns2.example.net."))));
        assert_eq!(r[3].rdata, RData::MX(MX::new(10, n("mail.example.com."))));
        assert_eq!(r[4].rdata, RData::MX(MX::new(20, n("example.com."))));
        assert_eq!(r[5].rtype, RecordType::TXT);
        assert_eq!(r[6].owner, n("ns1.example.com."));
        // TTL and class in either order.
        assert_eq!((r[7].ttl, r[7].line), (300, 16));
        assert_eq!(r[8].owner, n("www.example.com."));
        assert_eq!(r[8].ttl, 600);
        assert_eq!(r[8].rdata.to_string(), "2001:db8::1");
        assert_eq!(r[9].rdata, RData::CNAME(CNAME(n("www.example.com."))));
        let RData::TXT(txt) = &r[10].rdata else {
            panic!()
        };
        let strings: Vec<&[u8]> = txt.txt_data.iter().map(|s| &s[..]).collect();
        assert_eq!(strings, vec![&b"a b"[..], b"c;d", b"plain"]);
        assert_eq!(r[11].owner, n("srv._tcp.example.com."));
        assert_eq!(
            r[11].rdata,
            RData::SRV(SRV::new(1, 2, 443, n("www.example.com.")))
        );
        assert_eq!(r[12].rdata, RData::PTR(PTR(n("www.example.com."))));
        assert_eq!(r[13].owner, n("sub.deep.example.com."));
        // $ORIGIN changes later relative names.
        assert_eq!(r[14].owner, n("x.other.example.com."));
        // Every record keeps the default TTL unless it says otherwise.
        assert_eq!(r[6].ttl, 3600);
    }

    #[test]
    fn ttl_without_dollar_ttl_is_inherited() {
        let z = parse_str(
            "a.example. 100 IN A 192.0.2.1\nb.example. IN A 192.0.2.2\n",
            "t",
            None,
        )
        .unwrap();
        assert_eq!(z.records[1].ttl, 100);
        let e = parse_str("a.example. IN A 192.0.2.1\n", "t", None).unwrap_err();
        assert!(e.to_string().contains("no TTL"), "{e}");
    }

    fn err(text: &str) -> String {
        parse_str(text, "z.zone", None).unwrap_err().to_string()
    }

    #[test]
    fn errors_say_file_and_line() {
        let e = err("$ORIGIN example.\n$TTL 60\n\nwww A 192.0.2.300\n");
        assert!(e.starts_with("z.zone:4: bad A data"), "{e}");
        let e = err("$ORIGIN example.\n$TTL 60\nwww BOGUS 1\n");
        assert!(
            e.starts_with("z.zone:3: unknown record type `BOGUS`"),
            "{e}"
        );
        let e = err("www A 192.0.2.1\n");
        assert!(e.starts_with("z.zone:1: relative name `www`"), "{e}");
        let e = err("$ORIGIN example.\n$TTL 60\n@ SOA ns h ( 1 2 3 4\n 5\n");
        assert!(e.starts_with("z.zone:3: unbalanced `(`"), "{e}");
        let e = err("$ORIGIN example.\n$TTL 60\n\n\nx TXT \"open\n");
        assert!(e.starts_with("z.zone:5: unterminated quoted string"), "{e}");
        let e = err("$ORIGIN example.\n$TTL 60\nx A 192.0.2.1 )\n");
        assert!(e.starts_with("z.zone:3: `)` without `(`"), "{e}");
        let e = err("$ORIGIN example.\n$TTL 60\nx CH A 192.0.2.1\n");
        assert!(e.starts_with("z.zone:3: class CH is not served"), "{e}");
        let e = err("$TTL 1x\n");
        assert!(e.starts_with("z.zone:1: bad $TTL"), "{e}");
        let e = err("$GENERATE 1-10 x A 1.2.3.$\n");
        assert!(e.starts_with("z.zone:1: unsupported directive"), "{e}");
        let e = err("$ORIGIN example.\n$TTL 60\n  A 192.0.2.1\n");
        assert!(e.starts_with("z.zone:3: a record without an owner"), "{e}");
        let e = err("$ORIGIN example.\n$TTL 60\nx MX 10\n");
        assert!(e.starts_with("z.zone:3: bad MX data"), "{e}");
        let e = err("$ORIGIN example.\n$TTL 60\nx 60\n");
        assert!(e.starts_with("z.zone:3: missing record type"), "{e}");
        let e = err("$ORIGIN example.\n$TTL 60\nx AAAA 192.0.2.1\n");
        assert!(e.starts_with("z.zone:3: bad AAAA data"), "{e}");
        let e = err("$ORIGIN example.\n$TTL 60\nx A\n");
        assert!(e.starts_with("z.zone:3: A record without data"), "{e}");
    }

    #[test]
    fn include_and_file_errors() {
        let dir = std::env::temp_dir().join(format!("xdpstack-zone-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("inc.zone"), "host A 192.0.2.7\nbad A x\n").unwrap();
        std::fs::write(
            dir.join("main.zone"),
            "$ORIGIN example.\n$TTL 60\n$INCLUDE inc.zone sub.example.\nafter A 192.0.2.8\n",
        )
        .unwrap();
        let e = parse_file(&dir.join("main.zone"), None).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.file.ends_with("inc.zone"), "{e}");
        std::fs::write(dir.join("inc.zone"), "host A 192.0.2.7\n").unwrap();
        let z = parse_file(&dir.join("main.zone"), None).unwrap();
        assert_eq!(z.records[0].owner, n("host.sub.example."));
        assert!(z.records[0].file.ends_with("inc.zone"));
        // The includer's origin is restored after the include.
        assert_eq!(z.records[1].owner, n("after.example."));
        assert_eq!(z.records[1].line, 4);
        let e = parse_file(&dir.join("missing.zone"), None).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn escapes_and_origin_argument() {
        let z = parse_str(
            "@ 60 SOA ns h 1 2 3 4 5\nw\\.x 60 TXT \"say \\\"hi\\\"\" \\065\n",
            "t",
            Some(n("example.org")),
        )
        .unwrap();
        assert_eq!(z.records[0].owner, n("example.org."));
        assert_eq!(z.records[1].owner.num_labels(), 3);
        assert_eq!(z.records[1].owner.iter().next(), Some(&b"w.x"[..]));
        let RData::TXT(txt) = &z.records[1].rdata else {
            panic!()
        };
        assert_eq!(&txt.txt_data[0][..], b"say \"hi\"");
    }
}
