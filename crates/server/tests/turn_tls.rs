//! TURN over TLS against the real binary over loopback: STUN on the
//! `--turns-listen` port and on the shared HTTPS port (by ALPN `stun.turn`
//! and by its first bytes), HTTP on the shared port still served, and the
//! certificate reloaded on file change and on SIGHUP while open
//! connections keep working. Full relaying over TLS with coturn's client is
//! in `coturn_interop.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use sha2::{Digest, Sha256};
use stun::{Class, Message, MessageBuilder, Method, TransactionId};
use support::Switchboard;

/// Accepts any certificate (checking its handshake signatures) and
/// remembers the one the server presented.
#[derive(Debug)]
struct Remember {
    seen: Mutex<Option<CertificateDer<'static>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Remember {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.clone().into_owned());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS client connection, with the fingerprint of the certificate it got
/// and the ALPN protocol negotiated.
struct Tls {
    stream: StreamOwned<ClientConnection, TcpStream>,
    fingerprint: String,
    alpn: Option<Vec<u8>>,
}

fn connect(port: u16, alpn: &[&[u8]]) -> Tls {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Remember {
        seen: Mutex::new(None),
        provider: provider.clone(),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("TLS handshake");
    }
    let cert = verifier
        .seen
        .lock()
        .unwrap()
        .clone()
        .expect("a certificate");
    Tls {
        fingerprint: hex_fingerprint(&cert),
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        stream: StreamOwned::new(conn, tcp),
    }
}

fn hex_fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Sends a Binding request on the stream; true if its success answer came.
fn binding(tls: &mut Tls, tid: u8) -> bool {
    let mut req = Vec::new();
    MessageBuilder::new(
        &mut req,
        Class::Request,
        Method::BINDING,
        TransactionId([tid; 12]),
    );
    if tls.stream.write_all(&req).is_err() || tls.stream.flush().is_err() {
        return false;
    }
    let mut head = [0u8; 20];
    if tls.stream.read_exact(&mut head).is_err() {
        return false;
    }
    let len = u16::from_be_bytes([head[2], head[3]]) as usize;
    let mut body = vec![0u8; len];
    if tls.stream.read_exact(&mut body).is_err() {
        return false;
    }
    let msg = [head.to_vec(), body].concat();
    let Ok(m) = Message::decode(&msg) else {
        return false;
    };
    m.class() == Class::Success && m.transaction_id() == TransactionId([tid; 12])
}

/// GET /healthz over the connection; the status line and body.
fn healthz(tls: &mut Tls) -> String {
    tls.stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = tls.stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

const TURN: &[u8] = b"stun.turn";
const HTTP: &[u8] = b"http/1.1";

#[test]
fn stun_on_both_tls_ports_and_http_on_the_shared_one() {
    let sb = Switchboard::start(&["--tls-self-signed", "--turns-listen", "127.0.0.1:0"]);
    let turns = sb.turns_port("").expect("turns: URL");
    let https = sb.http.port();
    assert_ne!(turns, https);
    assert_eq!(
        sb.turns_port("shares the HTTPS port"),
        Some(https),
        "{:?}",
        sb.banner
    );
    for port in [turns, https] {
        // Told apart by the first bytes (Chromium offers no ALPN)...
        let mut t = connect(port, &[]);
        assert_eq!(t.alpn, None);
        assert!(binding(&mut t, 1), "Binding over TLS on port {port}");
        assert!(binding(&mut t, 2), "second Binding on port {port}");
        // ...or by ALPN (RFC 7443).
        let mut t = connect(port, &[TURN]);
        assert_eq!(t.alpn.as_deref(), Some(TURN));
        assert!(
            binding(&mut t, 3),
            "Binding with ALPN stun.turn on port {port}"
        );
    }
    // The TURN-only port does not choose HTTP, but serves TURN to such a client.
    let mut t = connect(turns, &[b"h2", HTTP]);
    assert_eq!(t.alpn, None);
    assert!(binding(&mut t, 4));
    // The shared port still serves HTTP, with ALPN and without.
    let mut t = connect(https, &[b"h2", HTTP]);
    assert_eq!(t.alpn.as_deref(), Some(HTTP));
    let reply = healthz(&mut t);
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.ends_with("ok\n"),
        "{reply}"
    );
    let reply = healthz(&mut connect(https, &[]));
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    // Both ports present the one certificate.
    assert_eq!(
        connect(turns, &[]).fingerprint,
        connect(https, &[]).fingerprint
    );
}

#[test]
fn sharing_can_be_turned_off() {
    let sb = Switchboard::start(&[
        "--tls-self-signed",
        "--turns-listen",
        "off",
        "--turns-on-https-port",
        "false",
    ]);
    assert_eq!(sb.turns_port(""), None, "{:?}", sb.banner);
    // A STUN request on the HTTPS port goes to HTTP, which refuses it.
    let mut t = connect(sb.http.port(), &[]);
    assert!(!binding(&mut t, 1));
    let mut t = connect(sb.http.port(), &[HTTP]);
    assert!(healthz(&mut t).starts_with("HTTP/1.1 200"));
}

/// A directory for one test's certificate files, removed on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a fresh self-signed certificate and key; returns its fingerprint.
fn write_pair(dir: &Path) -> String {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    // Written beside, then renamed: what certbot and Kubernetes do.
    std::fs::write(dir.join("cert.pem.new"), certified.cert.pem()).unwrap();
    std::fs::write(
        dir.join("key.pem.new"),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();
    std::fs::rename(dir.join("key.pem.new"), dir.join("key.pem")).unwrap();
    std::fs::rename(dir.join("cert.pem.new"), dir.join("cert.pem")).unwrap();
    hex_fingerprint(certified.cert.der())
}

/// Starts a server on certificate files in a new directory.
fn server_with_files(name: &str, watch: &str) -> (Switchboard, Dir, String) {
    let dir = Dir(std::env::temp_dir().join(format!("sb-{name}-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let first = write_pair(&dir.0);
    let cert = dir.0.join("cert.pem").display().to_string();
    let key = dir.0.join("key.pem").display().to_string();
    let sb = Switchboard::start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--turns-listen",
        "127.0.0.1:0",
        "--tls-watch-interval",
        watch,
    ]);
    (sb, dir, first)
}

/// Waits up to 15 s for new connections to `port` to see `fingerprint`.
fn wait_for_certificate(port: u16, fingerprint: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if connect(port, &[]).fingerprint == fingerprint {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Open connections on both ports, a reload, then: new connections see the
/// new certificate and the open ones still answer.
fn reload_keeps_open_connections(sb: &Switchboard, dir: &Dir, first: &str, reload: impl Fn()) {
    let turns = sb.turns_port("").expect("turns: URL");
    let https = sb.http.port();
    let mut open: Vec<Tls> = [turns, https].map(|p| connect(p, &[])).into();
    for t in &mut open {
        assert_eq!(t.fingerprint, first);
        assert!(binding(t, 1));
    }
    let second = write_pair(&dir.0);
    reload();
    for port in [turns, https] {
        assert!(
            wait_for_certificate(port, &second),
            "port {port} still serves the old certificate"
        );
    }
    for t in &mut open {
        assert!(binding(t, 2), "an open connection was lost by the reload");
    }
}

#[test]
fn certificate_files_changing_are_reloaded() {
    let (sb, dir, first) = server_with_files("tls-watch", "1");
    reload_keeps_open_connections(&sb, &dir, &first, || {});
}

#[test]
fn sighup_reloads_the_certificate() {
    // Watching off: only the signal can reload.
    let (sb, dir, first) = server_with_files("tls-hup", "0");
    let pid = sb.pid().to_string();
    reload_keeps_open_connections(&sb, &dir, &first, || {
        // Before the signal, the old certificate is still served.
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(connect(sb.http.port(), &[]).fingerprint, first);
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    });
}
