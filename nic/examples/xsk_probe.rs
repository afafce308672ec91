//! Open an XSK, print what the kernel gave, count frames for a few seconds.
//! `xsk_probe IFACE QUEUE SECONDS`
use nic::xsk::{XskConfig, XskRings};
use nic::{Port, PortConfig};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ifname = args.get(1).map_or("xdp0", |s| s.as_str());
    let queue: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let rings = match XskRings::open(ifname, queue, &XskConfig::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    println!("{:?}", rings.info());
    let mut port = Port::new(rings, PortConfig::default());
    let mut frames = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u64;
    while Instant::now() < end {
        port.recv(&mut frames);
        for f in frames.drain(..) {
            n += 1;
            port.release(f);
        }
        port.flush(|_, _| None);
        let _ = port.wait(100);
    }
    println!("frames={n} stats={:?}", port.stats());
    port.check().expect("accounting");
}
