//! The binary as a new user meets it: configuration mistakes end in one
//! line on stderr without a backtrace, `--turns-listen` on the HTTPS
//! address serves TURN over TLS and HTTPS on that one port (trap 3 of the
//! run-in-public issue), and `switchboard invite` prints a link.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn switchboard() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    // The environment CI runs in asks for backtraces; a config error must
    // not print one anyway.
    c.env("RUST_BACKTRACE", "1").env("RUST_LIB_BACKTRACE", "1");
    c
}

/// Runs to completion within 20 s.
fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not finish within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_port_in_use_is_one_line_without_backtrace() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run(switchboard().args([
        "--http-listen",
        &format!("127.0.0.1:{port}"),
        "--turn-listen",
        &format!("127.0.0.1:{}", free_port()),
        "--metrics-listen",
        "off",
    ]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Address already in use"), "{err}");
    assert!(err.contains("--http-listen"), "says what to do: {err}");
    assert!(
        !err.contains("backtrace") && !err.contains("Caused by") && !err.contains("panicked"),
        "{err}"
    );
    assert!(err.lines().count() <= 2, "{err}");
}

#[test]
fn a_bad_value_is_refused_clearly() {
    let out = run(switchboard().args(["--join-secret", "s", "invite", "not/a/room"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("switchboard: room ids are"), "{err}");
    assert!(!err.contains("backtrace"), "{err}");
}

#[test]
fn a_bad_redis_url_or_ca_stops_the_start_in_one_line() {
    let not_pem = std::env::temp_dir().join(format!("switchboard-not-pem-{}", std::process::id()));
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let not_pem = not_pem.to_str().unwrap().to_owned();
    let cases = [
        (vec!["--redis", "redis//127.0.0.1:1"], "--redis: "),
        (
            vec!["--redis", "redis://127.0.0.1:1", "--redis-ca", &not_pem],
            "must start with rediss://",
        ),
        (
            vec!["--redis", "rediss://127.0.0.1:1", "--redis-ca", &not_pem],
            "no PEM certificate",
        ),
        (
            vec![
                "--redis",
                "rediss://127.0.0.1:1",
                "--redis-ca",
                "/nonexistent/ca.pem",
            ],
            "--redis-ca /nonexistent/ca.pem: ",
        ),
        (
            vec![
                "--redis",
                "rediss://127.0.0.1:1",
                "--redis-cert",
                &not_pem,
                "--redis-key",
                &not_pem,
            ],
            "--redis-cert",
        ),
    ];
    for (args, says) in cases {
        let out = run(switchboard()
            .args(["--http-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--turn-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--metrics-listen", "off"])
            .args(&args));
        assert!(!out.status.success(), "{args:?} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("switchboard: ") && err.contains(says),
            "{args:?}: {err}"
        );
        assert!(
            err.lines().count() == 1 && !err.contains("backtrace"),
            "{err}"
        );
    }
    let _ = std::fs::remove_file(&not_pem);
}

#[test]
fn invite_prints_a_link_with_the_token_in_the_fragment() {
    let out = run(switchboard().args([
        "--join-secret",
        "0123456789abcdef",
        "--public-host",
        "meet.example.org",
        "--http-listen",
        "[::]:443",
        "--tls-self-signed",
        "invite",
        "standup",
        "--ttl",
        "2h",
        "--name",
        "Ann",
    ]));
    assert!(out.status.success(), "{out:?}");
    let link = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        link.starts_with("https://meet.example.org/r/standup#t=eyJ"),
        "{link}"
    );
    assert_eq!(link.lines().count(), 1);
}

/// Trap 3: `--turns-listen` set to the `--http-listen` address used to fail
/// with "Address already in use" and a backtrace. Now both are served there.
#[test]
fn turns_listen_on_the_https_address_serves_both() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = switchboard()
        .args([
            "--tls-self-signed",
            "--http-listen",
            &addr,
            "--turns-listen",
            &addr,
            "--turn-listen",
            &format!("127.0.0.1:{}", free_port()),
            "--metrics-listen",
            "off",
            "--log",
            "warn",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    // The banner names the shared port for TURN over TLS.
    let mut banner = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&banner).contains("web app:") {
        assert!(
            Instant::now() < deadline,
            "no banner: {}",
            String::from_utf8_lossy(&banner)
        );
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "exited: {}", String::from_utf8_lossy(&banner));
        banner.extend_from_slice(&buf[..n]);
    }
    let banner = String::from_utf8_lossy(&banner).into_owned();
    assert!(
        banner.contains(&format!(
            "turns:127.0.0.1:{port}?transport=tcp (shares the HTTPS port)"
        )),
        "{banner}"
    );
    // A TLS client offering ALPN stun.turn gets TURN on that port: a
    // Binding over TLS is answered.
    let config = rustls_client();
    let mut conn = rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
    let mut tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    let binding: [u8; 20] = [
        0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ];
    tls.write_all(&binding).unwrap();
    let mut head = [0u8; 20];
    tls.read_exact(&mut head).unwrap();
    assert_eq!(&head[..2], &[0x01, 0x01], "Binding success response");
    assert_eq!(&head[8..20], &binding[8..20], "same transaction");
}

/// A rustls client that accepts any certificate (the server's is
/// self-signed and made at start) and offers ALPN `stun.turn`.
fn rustls_client() -> std::sync::Arc<rustls::ClientConfig> {
    #[derive(Debug)]
    struct AnyCert(std::sync::Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"stun.turn".to_vec()];
    std::sync::Arc::new(config)
}
