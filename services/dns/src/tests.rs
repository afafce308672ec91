//! Responder tests: queries built with hickory-proto, answered by the
//! responder, the responses parsed back with hickory-proto and checked
//! section by section.

use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::index::Index;
use super::respond::{Reply, Responder, Transport};
use super::wire::{self, rtype};
use super::zone;

pub(crate) const TEST_ZONE: &str = r#"
$ORIGIN example.com.
$TTL 3600
@       IN SOA ns1.example.com. hostmaster ( 2024010101 7200 3600 1209600 300 )
        IN NS   ns1
        IN NS   ns2.example.net.
        IN MX   10 mail
        IN TXT  "apex text"
ns1     IN A    192.0.2.53
mail    IN A    192.0.2.25
        IN AAAA 2001:db8::25
www     IN A    192.0.2.1
        IN A    192.0.2.2
        IN AAAA 2001:db8::1
alias   IN CNAME www
alias2  IN CNAME alias
dangling IN CNAME nothere
outside IN CNAME www.example.net.
loop1   IN CNAME loop2
loop2   IN CNAME loop1
_sip._tcp IN SRV 10 20 5060 www
ptr     IN PTR  www.example.com.
a.b.c   IN A    192.0.2.3          ; b.c and c are empty non-terminals
*.wild  IN A    192.0.2.99
*.wild  IN TXT  "wildcard"
*.wc    IN CNAME www
sub     IN NS   ns.sub
ns.sub  IN A    192.0.2.54
big     IN TXT  ( "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
                  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
                  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
                  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
                  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
                  "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" )
manymx  IN MX 10 many
many    IN A 192.0.2.100
        IN A 192.0.2.101
        IN A 192.0.2.102
        IN A 192.0.2.103
        IN A 192.0.2.104
        IN A 192.0.2.105
        IN A 192.0.2.106
        IN A 192.0.2.107
        IN A 192.0.2.108
        IN A 192.0.2.109
        IN A 192.0.2.110
        IN A 192.0.2.111
        IN A 192.0.2.112
        IN A 192.0.2.113
        IN A 192.0.2.114
        IN A 192.0.2.115
        IN A 192.0.2.116
        IN A 192.0.2.117
        IN A 192.0.2.118
        IN A 192.0.2.119
        IN A 192.0.2.120
        IN A 192.0.2.121
        IN A 192.0.2.122
        IN A 192.0.2.123
        IN A 192.0.2.124
        IN A 192.0.2.125
        IN A 192.0.2.126
        IN A 192.0.2.127
        IN A 192.0.2.128
        IN A 192.0.2.129
"#;

fn responder() -> Responder {
    let z = zone::parse_str(TEST_ZONE, "test.zone", None).unwrap();
    let index = Index::build(&z).unwrap();
    Responder::new(Arc::new(index), 1232)
}

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn query(qname: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 0x1234;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name(qname), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn ask_bytes(r: &mut Responder, q: &[u8], t: Transport) -> (Message, Vec<u8>) {
    let mut out = vec![0u8; 65536];
    let Reply::Send(o) = r.respond(q, t, &mut out) else {
        panic!("dropped")
    };
    let bytes = out[..o.len].to_vec();
    let m = Message::from_vec(&bytes)
        .unwrap_or_else(|e| panic!("response does not parse ({e}): {bytes:02x?}"));
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(o.truncated, m.metadata.truncation);
    assert_eq!(o.rcode, u16::from(m.metadata.response_code), "{m:?}");
    (m, bytes)
}

fn ask(r: &mut Responder, qname: &str, qtype: RecordType) -> Message {
    ask_bytes(r, &query(qname, qtype, Some(4096)), Transport::Udp).0
}

fn rdatas(recs: &[Record]) -> Vec<String> {
    recs.iter().map(|r| r.data.to_string()).collect()
}

fn assert_answer(m: &Message, rcode: ResponseCode, aa: bool) {
    assert_eq!(m.metadata.response_code, rcode, "{m:#?}");
    assert_eq!(m.metadata.authoritative, aa, "{m:#?}");
    assert_eq!(m.metadata.id, 0x1234);
    assert!(m.metadata.recursion_desired, "RD is copied");
    assert!(!m.metadata.recursion_available);
    assert_eq!(m.queries.len(), 1);
}

#[test]
fn every_record_type() {
    let mut r = responder();
    let cases: &[(&str, RecordType, &[&str])] = &[
        (
            "www.example.com.",
            RecordType::A,
            &["192.0.2.1", "192.0.2.2"],
        ),
        ("www.example.com.", RecordType::AAAA, &["2001:db8::1"]),
        (
            "alias.example.com.",
            RecordType::CNAME,
            &["www.example.com."],
        ),
        (
            "example.com.",
            RecordType::NS,
            &["ns1.example.com.", "ns2.example.net."],
        ),
        (
            "example.com.",
            RecordType::SOA,
            &["ns1.example.com. hostmaster.example.com. 2024010101 7200 3600 1209600 300"],
        ),
        ("example.com.", RecordType::MX, &["10 mail.example.com."]),
        ("example.com.", RecordType::TXT, &["apex text"]),
        (
            "_sip._tcp.example.com.",
            RecordType::SRV,
            &["10 20 5060 www.example.com."],
        ),
        ("ptr.example.com.", RecordType::PTR, &["www.example.com."]),
    ];
    for &(qname, qtype, want) in cases {
        for t in [Transport::Udp, Transport::Tcp] {
            let (m, _) = ask_bytes(&mut r, &query(qname, qtype, None), t);
            assert_answer(&m, ResponseCode::NoError, true);
            assert_eq!(rdatas(&m.answers), want, "{qname} {qtype}");
            for a in &m.answers {
                assert_eq!(a.name, name(qname));
                assert_eq!(a.record_type(), qtype);
                assert_eq!(a.dns_class, DNSClass::IN);
                assert_eq!(a.ttl, 3600);
            }
            assert!(m.authorities.is_empty(), "{m:?}");
            assert!(m.edns.is_none(), "no OPT without EDNS in the query");
        }
    }
}

#[test]
fn additional_addresses_for_mx_and_ns() {
    let mut r = responder();
    let m = ask(&mut r, "example.com.", RecordType::MX);
    let add: Vec<String> = m
        .additionals
        .iter()
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    assert_eq!(
        add,
        vec![
            "mail.example.com. 192.0.2.25",
            "mail.example.com. 2001:db8::25"
        ]
    );
    let m = ask(&mut r, "example.com.", RecordType::NS);
    let add: Vec<String> = m.additionals.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(add, vec!["192.0.2.53"]);
}

#[test]
fn question_case_is_echoed() {
    let mut r = responder();
    let (m, bytes) = ask_bytes(
        &mut r,
        &query("WwW.ExAmPlE.CoM.", RecordType::A, None),
        Transport::Udp,
    );
    assert_answer(&m, ResponseCode::NoError, true);
    assert!(m.queries[0].name().eq_case(&name("WwW.ExAmPlE.CoM.")));
    assert!(m.answers[0].name.eq_case(&name("WwW.ExAmPlE.CoM.")));
    // The answer's owner is a pointer to the question.
    let q_end = 12 + wire::wire_name("www.example.com").len() + 4;
    assert_eq!(&bytes[q_end..q_end + 2], &[0xC0, 12]);
}

#[test]
fn nxdomain_and_nodata_carry_the_soa() {
    let mut r = responder();
    for qname in [
        "nope.example.com.",
        "x.y.z.example.com.",
        "a.nope.example.com.",
    ] {
        let m = ask(&mut r, qname, RecordType::A);
        assert_answer(&m, ResponseCode::NXDomain, true);
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities.len(), 1);
        let soa = &m.authorities[0];
        assert_eq!(soa.name, name("example.com."));
        assert_eq!(soa.record_type(), RecordType::SOA);
        assert_eq!(soa.ttl, 300, "negative TTL: min(SOA TTL, minimum)");
    }
    // NODATA: the name exists, not the type.
    for (qname, qtype) in [
        ("www.example.com.", RecordType::MX),
        ("ns1.example.com.", RecordType::AAAA),
        ("b.c.example.com.", RecordType::A), // empty non-terminal
        ("c.example.com.", RecordType::TXT),
    ] {
        let m = ask(&mut r, qname, qtype);
        assert_answer(&m, ResponseCode::NoError, true);
        assert!(m.answers.is_empty(), "{qname}");
        assert_eq!(m.authorities.len(), 1);
        assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(m.authorities[0].name, name("example.com."));
    }
    let m = ask(&mut r, "a.b.c.example.com.", RecordType::A);
    assert_eq!(rdatas(&m.answers), ["192.0.2.3"]);
}

#[test]
fn cname_chasing() {
    let mut r = responder();
    let m = ask(&mut r, "alias2.example.com.", RecordType::A);
    assert_answer(&m, ResponseCode::NoError, true);
    let got: Vec<String> = m
        .answers
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect();
    assert_eq!(
        got,
        [
            "alias2.example.com. CNAME alias.example.com.",
            "alias.example.com. CNAME www.example.com.",
            "www.example.com. A 192.0.2.1",
            "www.example.com. A 192.0.2.2",
        ]
    );
    // The chain ends in NODATA: SOA in the authority section.
    let m = ask(&mut r, "alias.example.com.", RecordType::MX);
    assert_answer(&m, ResponseCode::NoError, true);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    // Dangling: NXDOMAIN for the target (RFC 6604), the CNAME is kept.
    let m = ask(&mut r, "dangling.example.com.", RecordType::A);
    assert_answer(&m, ResponseCode::NXDomain, true);
    assert_eq!(rdatas(&m.answers), ["nothere.example.com."]);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    // Out of the zone: just the CNAME, the resolver goes on.
    let m = ask(&mut r, "outside.example.com.", RecordType::A);
    assert_answer(&m, ResponseCode::NoError, true);
    assert_eq!(rdatas(&m.answers), ["www.example.net."]);
    assert!(m.authorities.is_empty());
    // A loop: SERVFAIL.
    let m = ask(&mut r, "loop1.example.com.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(m.answers.is_empty());
    // Asking for the CNAME itself does not chase.
    let m = ask(&mut r, "loop1.example.com.", RecordType::CNAME);
    assert_eq!(rdatas(&m.answers), ["loop2.example.com."]);
}

#[test]
fn outside_the_zone_is_refused() {
    let mut r = responder();
    for qname in [
        "www.example.net.",
        "com.",
        ".",
        "xexample.com.",
        "example.com.evil.",
    ] {
        let m = ask(&mut r, qname, RecordType::A);
        assert_answer(&m, ResponseCode::Refused, false);
        assert!(m.answers.is_empty() && m.authorities.is_empty());
        assert!(m.edns.is_some(), "OPT echoed");
    }
    // Other classes, zone transfers.
    let mut m = Message::query();
    m.metadata.id = 0x1234;
    m.metadata.recursion_desired = true;
    let mut q = Query::query(name("www.example.com."), RecordType::A);
    q.set_query_class(DNSClass::CH);
    m.add_query(q);
    let (m, _) = ask_bytes(&mut r, &m.to_vec().unwrap(), Transport::Udp);
    assert_answer(&m, ResponseCode::Refused, false);
    let m = ask(&mut r, "example.com.", RecordType::AXFR);
    assert_answer(&m, ResponseCode::Refused, false);
}

#[test]
fn wildcards() {
    let mut r = responder();
    for qname in ["foo.wild.example.com.", "A.b.WILD.example.com."] {
        let (m, _) = ask_bytes(&mut r, &query(qname, RecordType::A, None), Transport::Udp);
        assert_answer(&m, ResponseCode::NoError, true);
        assert_eq!(rdatas(&m.answers), ["192.0.2.99"]);
        assert!(
            m.answers[0].name.eq_case(&name(qname)),
            "owner is the qname"
        );
        let m = ask(&mut r, qname, RecordType::TXT);
        assert_eq!(rdatas(&m.answers), ["wildcard"]);
        let m = ask(&mut r, qname, RecordType::MX);
        assert_answer(&m, ResponseCode::NoError, true);
        assert!(m.answers.is_empty());
        assert_eq!(m.authorities[0].name, name("example.com."));
    }
    // The wildcard's parent is an empty non-terminal: NODATA.
    let m = ask(&mut r, "wild.example.com.", RecordType::A);
    assert_answer(&m, ResponseCode::NoError, true);
    assert!(m.answers.is_empty());
    // A wildcard CNAME is chased.
    let m = ask(&mut r, "anything.wc.example.com.", RecordType::AAAA);
    let got: Vec<String> = m
        .answers
        .iter()
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    assert_eq!(
        got,
        [
            "anything.wc.example.com. www.example.com.",
            "www.example.com. 2001:db8::1"
        ]
    );
}

#[test]
fn referrals_below_a_cut() {
    let mut r = responder();
    for qname in [
        "sub.example.com.",
        "x.sub.example.com.",
        "ns.sub.example.com.",
    ] {
        let m = ask(&mut r, qname, RecordType::A);
        assert_answer(&m, ResponseCode::NoError, false);
        assert!(m.answers.is_empty());
        let auth: Vec<String> = m
            .authorities
            .iter()
            .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
            .collect();
        assert_eq!(auth, ["sub.example.com. NS ns.sub.example.com."]);
        let glue: Vec<String> = m
            .additionals
            .iter()
            .map(|r| format!("{} {}", r.name, r.data))
            .collect();
        assert_eq!(glue, ["ns.sub.example.com. 192.0.2.54"]);
    }
    // DS is answered from the parent side: NODATA, authoritative.
    let m = ask(&mut r, "sub.example.com.", RecordType::DS);
    assert_answer(&m, ResponseCode::NoError, true);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
}

#[test]
fn any_is_short_over_udp() {
    let mut r = responder();
    let (m, _) = ask_bytes(
        &mut r,
        &query("example.com.", RecordType::ANY, Some(4096)),
        Transport::Udp,
    );
    let types: Vec<RecordType> = m.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(
        types,
        [RecordType::NS, RecordType::NS],
        "RFC 8482: one RRset"
    );
    let (m, _) = ask_bytes(
        &mut r,
        &query("example.com.", RecordType::ANY, None),
        Transport::Tcp,
    );
    let mut types: Vec<RecordType> = m.answers.iter().map(|r| r.record_type()).collect();
    types.dedup();
    assert_eq!(
        types,
        [
            RecordType::NS,
            RecordType::SOA,
            RecordType::MX,
            RecordType::TXT
        ]
    );
}

#[test]
fn edns_is_echoed_and_honoured() {
    let mut r = responder();
    // OPT echoed with our size; DO copied.
    let mut m = Message::query();
    m.metadata.id = 0x1234;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name("www.example.com."), RecordType::A));
    let mut e = Edns::new();
    e.set_max_payload(4096);
    e.set_dnssec_ok(true);
    m.set_edns(e);
    let (resp, _) = ask_bytes(&mut r, &m.to_vec().unwrap(), Transport::Udp);
    assert_answer(&resp, ResponseCode::NoError, true);
    let opt = resp.edns.as_ref().expect("OPT in the response");
    assert_eq!(opt.max_payload(), 1232);
    assert_eq!(opt.version(), 0);
    assert!(opt.flags().dnssec_ok);
    assert_eq!(resp.answers.len(), 2);

    // Version 1: BADVERS, no answer, OPT with version 0.
    let mut e = Edns::new();
    e.set_version(1);
    m.set_edns(e);
    let (resp, _) = ask_bytes(&mut r, &m.to_vec().unwrap(), Transport::Udp);
    // BADVERS shares code 16 with BADSIG (hickory names it so).
    assert_eq!(u16::from(resp.metadata.response_code), 16);
    assert!(resp.answers.is_empty());
    assert_eq!(resp.edns.as_ref().unwrap().version(), 0);
    assert_eq!(resp.queries.len(), 1);
}

#[test]
fn truncation_follows_the_payload_size() {
    let mut r = responder();
    // 600 bytes of TXT: over 512 without EDNS -> TC, no records.
    let (m, bytes) = ask_bytes(
        &mut r,
        &query("big.example.com.", RecordType::TXT, None),
        Transport::Udp,
    );
    assert!(m.metadata.truncation);
    assert!(bytes.len() <= 512);
    assert_answer(&m, ResponseCode::NoError, true);
    assert!(m.answers.is_empty());
    // EDNS 512 (and anything below it means 512): still TC.
    for size in [0, 100, 512] {
        let (m, _) = ask_bytes(
            &mut r,
            &query("big.example.com.", RecordType::TXT, Some(size)),
            Transport::Udp,
        );
        assert!(m.metadata.truncation, "size {size}");
        assert!(m.edns.is_some());
    }
    // EDNS 1232: fits.
    let (m, bytes) = ask_bytes(
        &mut r,
        &query("big.example.com.", RecordType::TXT, Some(1232)),
        Transport::Udp,
    );
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 1);
    assert!(bytes.len() > 512 && bytes.len() <= 1232);
    // TCP: never truncated.
    let (m, _) = ask_bytes(
        &mut r,
        &query("big.example.com.", RecordType::TXT, None),
        Transport::Tcp,
    );
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 1);

    // 30 A records = 30 * 16 + question: over 512.
    let (m, _) = ask_bytes(
        &mut r,
        &query("many.example.com.", RecordType::A, None),
        Transport::Udp,
    );
    assert!(m.metadata.truncation);
    let (m, _) = ask_bytes(
        &mut r,
        &query("many.example.com.", RecordType::A, Some(1232)),
        Transport::Udp,
    );
    assert_eq!(m.answers.len(), 30);
}

#[test]
fn additional_section_is_dropped_before_truncating() {
    let mut r = responder();
    // The MX answer is small; its 30 addresses in the additional section
    // are not: without EDNS they are left out, TC stays clear.
    let (m, _) = ask_bytes(
        &mut r,
        &query("manymx.example.com.", RecordType::MX, None),
        Transport::Udp,
    );
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 1);
    assert!(m.additionals.is_empty());
    let (m, _) = ask_bytes(
        &mut r,
        &query("manymx.example.com.", RecordType::MX, Some(1232)),
        Transport::Udp,
    );
    assert_eq!(m.additionals.len(), 30);
}

#[test]
fn our_udp_limit_caps_the_client_size() {
    let z = zone::parse_str(TEST_ZONE, "test.zone", None).unwrap();
    let mut r = Responder::new(Arc::new(Index::build(&z).unwrap()), 520);
    let (m, _) = ask_bytes(
        &mut r,
        &query("many.example.com.", RecordType::A, Some(4096)),
        Transport::Udp,
    );
    assert!(
        m.metadata.truncation,
        "30 A records (525 bytes) do not fit in 520"
    );
    let (m, _) = ask_bytes(
        &mut r,
        &query("www.example.com.", RecordType::A, Some(4096)),
        Transport::Udp,
    );
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 2);
}

fn raw_header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        m.extend_from_slice(&c.to_be_bytes());
    }
    m
}

#[test]
fn malformed_queries() {
    let mut r = responder();
    let mut out = vec![0u8; 65536];
    // Too short: dropped.
    assert_eq!(r.respond(&[1, 2, 3], Transport::Udp, &mut out), Reply::Drop);
    // A response: dropped (never answer answers).
    let resp = raw_header(1, 0x8000, [1, 0, 0, 0]);
    assert_eq!(r.respond(&resp, Transport::Udp, &mut out), Reply::Drop);
    // No question: FORMERR, header only.
    let (m, bytes) = ask_bytes(&mut r, &raw_header(7, 0x0100, [0; 4]), Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(m.metadata.id, 7);
    assert!(m.metadata.recursion_desired);
    assert_eq!(bytes.len(), 12);
    // Bad label length.
    let mut q = raw_header(8, 0, [1, 0, 0, 0]);
    q.extend_from_slice(&[0x50, b'a', 0, 0, 1, 0, 1]);
    let (m, _) = ask_bytes(&mut r, &q, Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert!(m.queries.is_empty());
    // Compression loop in the question.
    let mut q = raw_header(9, 0, [1, 0, 0, 0]);
    q.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    let (m, _) = ask_bytes(&mut r, &q, Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    // Truncated question.
    let full = query("www.example.com.", RecordType::A, None);
    let (m, _) = ask_bytes(&mut r, &full[..full.len() - 2], Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    // Two OPT records: FORMERR with the question echoed.
    let mut q = query("www.example.com.", RecordType::A, None);
    q[11] = 2;
    for _ in 0..2 {
        q.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
    }
    let (m, _) = ask_bytes(&mut r, &q, Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(m.queries.len(), 1);
    // Over TCP, a 64 KiB query claiming 65,535 additional records (every
    // owner a pointer to the question): FORMERR with the question echoed,
    // none of the records read.
    let mut q = query("www.example.com.", RecordType::A, None);
    q[10] = 0xff;
    q[11] = 0xff;
    while q.len() + 11 <= 65535 {
        q.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0]);
    }
    let (m, _) = ask_bytes(&mut r, &q, Transport::Tcp);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(m.queries.len(), 1);
}

#[test]
fn other_opcodes_are_not_implemented() {
    let mut r = responder();
    for op in [OpCode::Notify, OpCode::Update, OpCode::Status] {
        let mut m = Message::new(0x1234, MessageType::Query, op);
        m.add_query(Query::query(name("example.com."), RecordType::SOA));
        let (resp, bytes) = ask_bytes(&mut r, &m.to_vec().unwrap(), Transport::Udp);
        assert_eq!(resp.metadata.response_code, ResponseCode::NotImp);
        assert_eq!(resp.metadata.op_code, op);
        assert_eq!(bytes.len(), 12);
    }
}

#[test]
fn random_and_mutated_queries_get_parseable_answers_or_none() {
    let mut r = responder();
    let mut out = vec![0u8; 65536];
    let mut rng = testkit::Rng::new(0x0123_4567_89AB_CDEF);
    let seeds: Vec<Vec<u8>> = [
        ("www.example.com.", RecordType::A),
        ("alias2.example.com.", RecordType::A),
        ("x.sub.example.com.", RecordType::A),
        ("foo.wild.example.com.", RecordType::TXT),
        ("nope.example.com.", RecordType::MX),
        ("big.example.com.", RecordType::TXT),
    ]
    .iter()
    .flat_map(|&(n, t)| [query(n, t, None), query(n, t, Some(1232))])
    .collect();
    let mut sent = 0;
    for i in 0..100_000 {
        let msg: Vec<u8> = if i % 3 == 0 {
            let len = rng.below(80);
            (0..len).map(|_| rng.next_u64() as u8).collect()
        } else {
            let mut m = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(3) {
                let j = rng.below(m.len());
                m[j] = rng.next_u64() as u8;
            }
            if rng.below(4) == 0 {
                m.truncate(rng.below(m.len() + 1));
            }
            m
        };
        let t = if i % 2 == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        if let Reply::Send(o) = r.respond(&msg, t, &mut out) {
            sent += 1;
            assert!(o.len >= 12);
            if t == Transport::Udp {
                assert!(o.len <= 1232);
            }
            let parsed = Message::from_vec(&out[..o.len]);
            assert!(
                parsed.is_ok(),
                "query {msg:02x?} got an unparseable response {:02x?}: {:?}",
                &out[..o.len],
                parsed.err()
            );
            // The id always matches.
            assert_eq!(out[..2], msg[..2]);
        }
    }
    assert!(sent > 50_000, "{sent}");
}

#[test]
fn zone_consistency_errors_name_the_line() {
    let err = |text: &str| {
        let z = zone::parse_str(text, "c.zone", None).unwrap();
        Index::build(&z).unwrap_err().to_string()
    };
    let head = "$ORIGIN example.\n$TTL 60\n@ SOA ns h 1 2 3 4 5\n";
    let e = err(&format!("{head}www A 192.0.2.1\nwww CNAME x\n"));
    assert!(
        e.starts_with("c.zone:5: www.example. has a CNAME and other data"),
        "{e}"
    );
    let e = err(&format!("{head}www CNAME x\nwww A 192.0.2.1\n"));
    assert!(e.starts_with("c.zone:5:"), "{e}");
    let e = err(&format!("{head}www CNAME x\nwww CNAME y\n"));
    assert!(e.starts_with("c.zone:5: a second CNAME"), "{e}");
    let e = err(&format!("{head}@ CNAME x\n"));
    assert!(e.starts_with("c.zone:4: a CNAME at the zone apex"), "{e}");
    let e = err(&format!("{head}www.other. A 192.0.2.1\n"));
    assert!(
        e.starts_with("c.zone:4: www.other. is outside the zone"),
        "{e}"
    );
    let e = err(&format!("{head}x SOA ns h 1 2 3 4 5\n"));
    assert!(e.starts_with("c.zone:4: a second SOA"), "{e}");
    let e = err("$ORIGIN example.\n$TTL 60\nwww A 192.0.2.1\n");
    assert!(e.contains("no SOA"), "{e}");
}

#[test]
fn duplicate_records_are_merged_and_ttls_unified() {
    let z = zone::parse_str(
        "$ORIGIN example.\n@ 60 SOA ns h 1 2 3 4 5\nw 100 A 192.0.2.1\nw 50 A 192.0.2.1\nw 70 A 192.0.2.2\n",
        "d.zone",
        None,
    )
    .unwrap();
    let mut r = Responder::new(Arc::new(Index::build(&z).unwrap()), 1232);
    let m = ask(&mut r, "w.example.", RecordType::A);
    assert_eq!(rdatas(&m.answers), ["192.0.2.1", "192.0.2.2"]);
    assert!(m.answers.iter().all(|a| a.ttl == 50));
}

#[test]
fn uncompressible_rdata_stays_uncompressed() {
    // SRV targets must not be compressed (RFC 2782); the bytes of the
    // target must appear in full.
    let mut r = responder();
    let (_, bytes) = ask_bytes(
        &mut r,
        &query("_sip._tcp.example.com.", RecordType::SRV, None),
        Transport::Udp,
    );
    let target = wire::wire_name("www.example.com");
    assert!(bytes.windows(target.len()).any(|w| w == &target[..]));
    let _ = rtype::SRV;
    let _ = RData::A("192.0.2.1".parse().unwrap());
}
