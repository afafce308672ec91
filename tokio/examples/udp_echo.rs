//! A UDP echo through the xdpstack daemon with `xdpstack_tokio::UdpSocket`:
//! every datagram goes back to its sender.
//!
//! ```text
//! udp_echo --attach /run/xdpstack.sock --port 7007
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "UDP echo on xdpstack")]
struct Args {
    /// The daemon's control socket.
    #[arg(long)]
    attach: PathBuf,
    /// Port.
    #[arg(long, default_value_t = 7007)]
    port: u16,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let addr = SocketAddr::from(([0, 0, 0, 0], args.port));
    let sock = async {
        let stack = xdpstack_tokio::Stack::connect(&args.attach).await?;
        stack.bind_udp(addr).await
    };
    let sock = match sock.await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("udp_echo: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("udp_echo: listening on {addr}");
    let mut buf = vec![0u8; 65536];
    let mut echoed = 0u64;
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                if let Err(e) = sock.send_to(&buf[..n], from).await {
                    eprintln!("udp_echo: send_to {from}: {e}");
                }
                echoed += 1;
                if echoed.is_power_of_two() {
                    eprintln!("udp_echo: {echoed} datagrams echoed");
                }
            }
            Err(e) => {
                eprintln!("udp_echo: {e}");
                std::process::exit(1);
            }
        }
    }
}
