//! End-to-end tests of `xdpstack http --tls-cert` on real AF_XDP sockets: the server on the
//! stack in the sandbox's server namespace, kernel clients (curl, `openssl s_client`, headless
//! Chromium) in the client namespace fetch pages over HTTPS, TLS 1.3 and 1.2, with SNI,
//! resumption, `--redirect-https`, `--hsts` and a certificate reload on SIGHUP. Certificates are made
//! per test with `openssl req`. They need root (see `privileged.rs`); one at a time.
//!
//! `cargo test -p xdpstack --test https -- --nocapture`

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::*;
use lab::sandbox::{Sandbox, Side};
use nix::sys::signal::{kill, Signal};

const PAGE: &str = "<!doctype html><title>tls page</title><h1 id=x>hello over tls</h1>\n";

/// A directory of the test's files (certificates, the site), removed on drop.
struct Files(PathBuf);

impl Files {
    fn new(tag: &str) -> Files {
        let p = temp_path(tag, "d");
        fs::create_dir_all(p.join("www")).unwrap();
        fs::write(p.join("www/index.html"), PAGE).unwrap();
        Files(p)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// A self-signed P-256 certificate `NAME.pem` / `NAME.key` for `dns` (and the server's
    /// address), made by `openssl req`.
    fn cert(&self, name: &str, dns: &str) {
        let san = format!("subjectAltName=DNS:{dns},IP:{SERVER_IP4}");
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={dns}"),
                "-addext",
                &san,
            ])
            .arg("-keyout")
            .arg(self.path(&format!("{name}.key")))
            .arg("-out")
            .arg(self.path(&format!("{name}.pem")))
            .output()
            .expect("openssl req");
        assert!(
            out.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `curl` over HTTPS with `ca` trusted, `extra` flags; asserts success, returns the body.
fn curl_tls(sb: &Sandbox, ca: &str, extra: &[&str], url: &str) -> String {
    let mut args = vec!["--cacert", ca];
    args.extend_from_slice(extra);
    let out = curl(sb, &args, url);
    assert!(
        out.status.success(),
        "curl {extra:?} {url} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl s_client` sending one request (`Connection: close`); returns its whole output.
fn s_client(sb: &Sandbox, ca: &str, sni: &str, extra: &[&str]) -> String {
    let mut cmd = client(sb, 15, "openssl", ["s_client"]);
    cmd.args(["-connect", &format!("{SERVER_IP4}:443")])
        .args(["-servername", sni, "-CAfile", ca, "-verify_return_error"])
        .args(["-ign_eof", "-alpn", "http/1.1"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn openssl s_client");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        write!(
            stdin,
            "GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
    }
    let out = child.wait_with_output().expect("s_client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "s_client {extra:?} failed: {text}");
    text
}

fn start(sb: &Sandbox, f: &Files, extra: &[&str]) -> Server {
    let mut args = vec![
        "--root".to_string(),
        f.s("www"),
        "--tls-cert".into(),
        f.s("a.pem"),
        "--tls-key".into(),
        f.s("a.key"),
        "--tls-cert".into(),
        f.s("b.pem"),
        "--tls-key".into(),
        f.s("b.key"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(sb, Service::Http, &args)
}

#[test]
fn curl_and_openssl_fetch_over_tls13_and_tls12() {
    let Some(_lock) = begin() else { return };
    let f = Files::new("tls-fetch");
    f.cert("a", "a.test");
    f.cert("b", "b.test");
    let sb = sandbox("tls", 1);
    let server = start(&sb, &f, &[]);
    let (ca, cb) = (f.s("a.pem"), f.s("b.pem"));
    let url = format!("https://{SERVER_IP4}/");
    let a = format!("a.test:443:{SERVER_IP4}");
    let b = format!("b.test:443:{SERVER_IP4}");

    // curl, both versions, by address (the first certificate) and by name (SNI).
    assert_eq!(curl_tls(&sb, &ca, &["--tlsv1.3"], &url), PAGE);
    assert_eq!(
        curl_tls(&sb, &ca, &["--tlsv1.2", "--tls-max", "1.2"], &url),
        PAGE
    );
    assert_eq!(
        curl_tls(&sb, &ca, &["--tlsv1.3", "--resolve", &a], "https://a.test/"),
        PAGE
    );
    assert_eq!(
        curl_tls(&sb, &cb, &["--tlsv1.3", "--resolve", &b], "https://b.test/"),
        PAGE
    );
    assert_eq!(
        curl_tls(
            &sb,
            &cb,
            &["--tlsv1.2", "--tls-max", "1.2", "--resolve", &b],
            "https://b.test/index.html"
        ),
        PAGE
    );
    // b's certificate is not a's.
    let out = curl(&sb, &["--cacert", &cb, "--resolve", &a], "https://a.test/");
    assert!(
        !out.status.success(),
        "a.test verified against b's certificate"
    );
    // What curl says it negotiated: HTTP/1.1 over ALPN, keep-alive of two requests.
    let out = curl(
        &sb,
        &[
            "--cacert",
            &ca,
            "-v",
            "--http2",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            &url,
        ],
        &format!("https://{SERVER_IP4}/index.html"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("ALPN: server accepted http/1.1"), "{err}");
    assert!(err.contains("Re-using existing connection"), "{err}");

    // openssl s_client, both versions, verified, the page in the output; then resumed.
    for (flag, proto) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let sess = f.s(&format!("sess{flag}"));
        let text = s_client(&sb, &ca, "a.test", &[flag, "-sess_out", &sess]);
        assert!(text.contains(PAGE.trim_end()), "{text}");
        assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
        assert!(text.contains(&format!("Protocol  : {proto}")), "{text}");
        assert!(text.contains("ALPN protocol: http/1.1"), "{text}");
        let text = s_client(&sb, &ca, "a.test", &[flag, "-sess_in", &sess]);
        assert!(text.contains(PAGE.trim_end()), "{text}");
        assert!(text.contains(&format!("Reused, {proto}")), "{text}");
    }
    // A client offering h2 only: refused with an alert.
    let mut cmd = client(&sb, 15, "openssl", ["s_client", "-alpn", "h2"]);
    cmd.args(["-connect", &format!("{SERVER_IP4}:443")])
        .stdin(Stdio::null());
    let out = output(&mut cmd);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("no application protocol"), "{text}");

    let stats = server.stop();
    assert_frames_ok(&stats);
    let hs = total(&stats, "/app/tls/handshakes");
    // 6 curl handshakes (one kept alive for two requests), 4 of s_client.
    assert!(hs >= 10, "{stats:#}");
    assert!(total(&stats, "/app/tls/tls13") >= 6, "{stats:#}");
    assert!(total(&stats, "/app/tls/tls12") >= 4, "{stats:#}");
    assert!(total(&stats, "/app/tls/resumed") >= 2, "{stats:#}");
    assert!(total(&stats, "/app/tls/alerts_sent") >= 1, "{stats:#}");
    assert!(
        total(&stats, "/app/tls/handshakes_failed") >= 2,
        "{stats:#}"
    );
}

#[test]
fn redirect_https_and_sighup_reload() {
    let Some(_lock) = begin() else { return };
    let f = Files::new("tls-redir");
    f.cert("a", "a.test");
    f.cert("b", "b.test");
    let sb = sandbox("tlsredir", 1);
    let server = start(
        &sb,
        &f,
        &["--redirect-https", "--tls-port", "8443", "--hsts", "600"],
    );
    let ca = f.s("a.pem");
    // HSTS on HTTPS responses, not on the redirect.
    let head = curl_tls(&sb, &ca, &["-sI"], &format!("https://{SERVER_IP4}:8443/"));
    assert!(
        head.contains("Strict-Transport-Security: max-age=600\r\n"),
        "{head}"
    );
    let out = curl(&sb, &["-sI"], &format!("http://{SERVER_IP4}/"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Strict-Transport"));
    // Plain HTTP: 301 to the same path on https, port 8443.
    let out = curl(
        &sb,
        &["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}"],
        &format!("http://{SERVER_IP4}/x/y?z=1"),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("301 https://{SERVER_IP4}:8443/x/y?z=1")
    );
    // Followed: the page over TLS.
    assert_eq!(
        curl_tls(&sb, &ca, &["-L"], &format!("http://{SERVER_IP4}/")),
        PAGE
    );
    // A new certificate for a.test, then SIGHUP: new handshakes get it.
    let old = fs::read(f.path("a.pem")).unwrap();
    f.cert("a", "a.test");
    assert_ne!(old, fs::read(f.path("a.pem")).unwrap());
    let url = format!("https://{SERVER_IP4}:8443/");
    let out = curl(&sb, &["--cacert", &ca], &url);
    assert!(!out.status.success(), "the new certificate before SIGHUP");
    kill(server.pid(), Signal::SIGHUP).expect("SIGHUP");
    let mut ok = false;
    for _ in 0..50 {
        thread::sleep(Duration::from_millis(100));
        if curl(&sb, &["--cacert", &ca], &url).status.success() {
            ok = true;
            break;
        }
    }
    assert!(ok, "the new certificate not served after SIGHUP");
    let stats = server.stop();
    // Two redirects, and the start's readiness probe.
    assert!(total(&stats, "/app/status_3xx") >= 2, "{stats:#}");
    assert!(num(&stats, "/workers/0/app/tls/reloads") >= 1, "{stats:#}");
}

#[test]
fn headless_chromium_renders_the_page() {
    let Some(_lock) = begin() else { return };
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromium is installed by scripts/deps.sh");
    let f = Files::new("tls-chrome");
    f.cert("a", "a.test");
    f.cert("b", "b.test");
    let sb = sandbox("tlschrome", 1);
    let server = start(&sb, &f, &[]);
    // The certificate is self-signed: trusted by its SPKI hash for this run only.
    let spki = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der \
             | openssl dgst -sha256 -binary | base64",
            f.s("a.pem")
        ))
        .output()
        .expect("spki hash");
    let spki = String::from_utf8_lossy(&spki.stdout).trim().to_string();
    let profile = f.path("profile");
    let mut cmd = sb.command(Side::Client, "timeout");
    cmd.args(["-k", "5", "60", chromium])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .args(["--disable-dev-shm-usage", "--disable-extensions"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--ignore-certificate-errors-spki-list={spki}"))
        .arg(format!("--host-resolver-rules=MAP a.test {SERVER_IP4}"))
        .args(["--dump-dom", "https://a.test/"])
        .env("HOME", &f.0)
        .stdin(Stdio::null());
    let out = output(&mut cmd);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<h1 id=\"x\">hello over tls</h1>"),
        "chromium did not render the page ({}): {dom}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = server.stop();
    assert!(total(&stats, "/app/tls/handshakes") >= 1, "{stats:#}");
    assert!(total(&stats, "/app/status_2xx") >= 2, "{stats:#}");
}

/// A refused start needs no privilege: the certificates are read before any interface is
/// touched. One line on stderr, a non-zero exit.
#[test]
fn refused_certificates_are_one_line_and_a_failure() {
    let f = Files::new("tls-refused");
    f.cert("a", "a.test");
    f.cert("b", "b.test");
    let run = |cert: &str, key: &str| {
        let out = Command::new(BIN)
            .args([
                "http",
                "--iface",
                "xdpstack-no-such-if",
                "--addr",
                "198.18.0.1/24",
            ])
            .args(["--tls-cert", cert, "--tls-key", key])
            .output()
            .expect("run xdpstack");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    };
    let err = run(&f.s("a.pem"), &f.s("b.key"));
    assert!(err.contains("does not match certificate"), "{err}");
    let err = run(&f.s("missing.pem"), &f.s("a.key"));
    assert!(err.contains("cannot read certificate"), "{err}");
    fs::write(f.path("bad.key"), "-----BEGIN PRIVATE KEY-----\nAAAA\n").unwrap();
    let err = run(&f.s("a.pem"), &f.s("bad.key"));
    assert!(err.contains("bad.key"), "{err}");
}
