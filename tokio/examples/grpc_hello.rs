//! A gRPC service (tonic's server machinery over hyper's HTTP/2) through the
//! xdpstack daemon (`--attach SOCK`) or on kernel sockets (`--kernel ADDR`),
//! and a tonic client to load it (`--client URL`).
//!
//! ```text
//! grpc_hello --attach /run/xdpstack.sock --port 8080
//! grpc_hello --client http://198.18.0.1:8080 --requests 10000 --concurrency 50
//! ```
//!
//! The service is `hello.Greeter/SayHello` (a `HelloRequest { name }` answered
//! with `HelloReply { message: "hello " + name }`), written the way tonic's
//! generated code is, without a build step: prost messages and tonic's
//! `Grpc` handling the unary call.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use clap::Parser;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tonic::codegen::http;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

const PATH: &str = "/hello.Greeter/SayHello";

#[derive(Parser, Debug)]
#[command(about = "gRPC on xdpstack (or on kernel sockets), and its client")]
struct Args {
    /// Serve through the daemon whose control socket this is.
    #[arg(long)]
    attach: Option<PathBuf>,
    /// Serve on kernel sockets at this address.
    #[arg(long)]
    kernel: Option<IpAddr>,
    /// Port to serve.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Load a server: its URL (`http://HOST:PORT`).
    #[arg(long)]
    client: Option<String>,
    /// Client: calls in all.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Client: calls in flight at once (over one HTTP/2 connection).
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
}

/// The unary method.
struct SayHello;

impl tonic::server::UnaryService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type Future = std::future::Ready<Result<Response<HelloReply>, Status>>;

    fn call(&mut self, req: Request<HelloRequest>) -> Self::Future {
        std::future::ready(Ok(Response::new(HelloReply {
            message: format!("hello {}", req.into_inner().name),
        })))
    }
}

/// The service: routes by path, as tonic's generated server does.
#[derive(Clone)]
struct Greeter;

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<B> tower_service::Service<http::Request<B>> for Greeter
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFut<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == PATH {
            Box::pin(async move {
                let mut grpc =
                    tonic::server::Grpc::new(ProstCodec::<HelloReply, HelloRequest>::default());
                Ok(grpc.unary(SayHello, req).await)
            })
        } else {
            Box::pin(
                async move { Ok(Status::unimplemented(req.uri().path().to_string()).into_http()) },
            )
        }
    }
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(async {
        match &args.client {
            Some(url) => client(url.clone(), args.requests, args.concurrency).await,
            None => serve(&args).await,
        }
    });
    std::process::exit(code);
}

async fn serve(args: &Args) -> i32 {
    let addr = SocketAddr::new(args.kernel.unwrap_or([0, 0, 0, 0].into()), args.port);
    // The listener: the only part that differs.
    let listener = match &args.attach {
        Some(sock) => {
            let l = async { xdpstack_tokio::Stack::connect(sock).await?.bind(addr).await };
            match l.await {
                Ok(l) => Ok(l),
                Err(e) => {
                    eprintln!("grpc_hello: {e}");
                    return 1;
                }
            }
        }
        None => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Err(l),
            Err(e) => {
                eprintln!("grpc_hello: {e}");
                return 1;
            }
        },
    };
    eprintln!("grpc_hello: listening on {addr}");
    loop {
        let r = match &listener {
            Ok(l) => l.accept().await.map(|(s, _)| spawn_conn(s)),
            Err(l) => l.accept().await.map(|(s, _)| spawn_conn(s)),
        };
        if let Err(e) = r {
            eprintln!("grpc_hello: accept: {e}");
            return 1;
        }
    }
}

fn spawn_conn<S>(s: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let r = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(s), TowerToHyperService::new(Greeter))
            .await;
        if let Err(e) = r {
            eprintln!("grpc_hello: connection: {e}");
        }
    });
}

/// `requests` unary calls, `concurrency` at a time over one connection;
/// prints one JSON line.
async fn client(url: String, requests: usize, concurrency: usize) -> i32 {
    let channel = match tonic::transport::Endpoint::from_shared(url.clone()) {
        Ok(e) => match e.connect().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("grpc_hello: connect {url}: {e}");
                return 1;
            }
        },
        Err(e) => {
            eprintln!("grpc_hello: {url}: {e}");
            return 1;
        }
    };
    let start = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (channel, next) = (channel.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut grpc = tonic::client::Grpc::new(channel);
            let (mut ok, mut failed) = (0usize, 0usize);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let name = format!("n{i}");
                let r = async {
                    grpc.ready()
                        .await
                        .map_err(|e| Status::unavailable(e.to_string()))?;
                    grpc.unary(
                        Request::new(HelloRequest { name: name.clone() }),
                        http::uri::PathAndQuery::from_static(PATH),
                        ProstCodec::<HelloRequest, HelloReply>::default(),
                    )
                    .await
                }
                .await;
                match r {
                    Ok(resp) if resp.get_ref().message == format!("hello {name}") => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        let (o, f) = t.await.unwrap_or((0, 0));
        ok += o;
        failed += f;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"ok\": {ok}, \"failed\": {failed}, \"seconds\": {secs:.3}, \"rate\": {:.0}}}",
        ok as f64 / secs
    );
    i32::from(failed > 0 || ok != requests)
}
