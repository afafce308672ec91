//! The DNS query path without I/O: parse, look up, copy, patch. Prints the time per query for a
//! mix of answers (positive, CNAME, wildcard, NXDOMAIN, referral, REFUSED), so changes to the
//! responder can be compared. `cargo run --release -p xdpstack-dns --example dns_respond [ZONE]`
#![deny(unsafe_code)]

use std::sync::Arc;
use std::time::Instant;

use dnsd::{zone, Index, Reply, Responder, Transport};

fn query(id: u16, name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
    m.extend_from_slice(&dnsd::wire::wire_name(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    if edns {
        m.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
    }
    m
}

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/example.test.zone").to_string()
    });
    let z = zone::parse_file(std::path::Path::new(&path), None).expect("zone");
    let index = Index::build(&z).expect("index");
    let mut r = Responder::new(Arc::new(index), 1232);
    let queries = [
        query(1, "www.example.test", 1, false),
        query(2, "WWW.Example.Test", 28, true),
        query(3, "alias.example.test", 1, true),
        query(4, "foo.wild.example.test", 1, false),
        query(5, "nope.example.test", 1, true),
        query(6, "host.sub.example.test", 1, false),
        query(7, "www.example.org", 1, false),
        query(8, "example.test", 15, true),
    ];
    let mut out = vec![0u8; 65536];
    let rounds = 2_000_000;
    let mut bytes = 0usize;
    let t0 = Instant::now();
    for i in 0..rounds {
        let q = &queries[i % queries.len()];
        if let Reply::Send(o) = r.respond(q, Transport::Udp, &mut out) {
            bytes += o.len;
        }
    }
    let dt = t0.elapsed();
    println!(
        "{rounds} queries in {dt:.2?}: {:.0} ns/query, {:.2} M queries/s on one core ({} response bytes)",
        dt.as_nanos() as f64 / rounds as f64,
        rounds as f64 / dt.as_secs_f64() / 1e6,
        bytes
    );
}
