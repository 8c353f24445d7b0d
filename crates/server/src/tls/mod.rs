//! TLS for HTTPS/WSS and TURN over TLS (RFC 8656 §3.1; ALPN `stun.turn`,
//! RFC 7443 §3.1).
//!
//! One certificate serves both: `--tls-cert`/`--tls-key` load a PEM chain
//! and key, `--tls-self-signed` generates one at start (rcgen) for LAN use
//! and prints its SHA-256 fingerprint so users can check the browser's
//! warning. Every handshake asks the [`CertStore`] for the current
//! certificate, so a reload ([`reload`]) reaches new connections at once
//! and leaves established ones alone.
//!
//! The protocol of a connection is chosen from the client's ALPN offer:
//! `http/1.1` is HTTP, `stun.turn` is TURN, and a client that offers
//! neither (Chromium's TURN client offers nothing) gets no ALPN and is told
//! apart by its first bytes ([`demux`]).

pub mod demux;
pub mod reload;

use std::fmt;
use std::io;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{Acceptor, ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::Config;

/// ALPN protocol id of HTTP/1.1 (the signaling WebSocket needs its upgrade).
const ALPN_HTTP: &[u8] = b"http/1.1";
/// ALPN protocol id of STUN/TURN over TLS (RFC 7443).
const ALPN_TURN: &[u8] = b"stun.turn";

/// Where the certificate comes from, and so whether it can be reloaded.
#[derive(Debug, Clone)]
enum Source {
    Files {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
    },
    SelfSigned,
}

/// The certificate every handshake uses; swapped whole on reload.
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
    source: Source,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().clone())
    }
}

impl CertStore {
    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// SHA-256 fingerprint of the certificate now served.
    pub fn fingerprint(&self) -> String {
        self.current()
            .cert
            .first()
            .map(fingerprint)
            .unwrap_or_default()
    }

    /// When the certificate now served expires, in seconds since the Unix
    /// epoch (for the metrics: alert before it does).
    pub fn not_after_unix(&self) -> Option<i64> {
        let current = self.current();
        let der = current.cert.first()?;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        Some(cert.validity().not_after.timestamp())
    }

    /// The certificate and key files, when the certificate comes from files.
    pub fn files(&self) -> Option<[&std::path::Path; 2]> {
        match &self.source {
            Source::Files { cert, key } => Some([cert.as_path(), key.as_path()]),
            Source::SelfSigned => None,
        }
    }

    /// Reads the files again and serves the new certificate from the next
    /// handshake on. On any error the old one stays.
    pub fn reload(&self) -> anyhow::Result<String> {
        let Source::Files { cert, key } = &self.source else {
            anyhow::bail!(
                "the certificate is self-signed and generated at start; nothing to reload"
            );
        };
        let loaded = certified(read_files(cert, key)?, &self.provider)?;
        let fp = loaded.cert.first().map(fingerprint).unwrap_or_default();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        Ok(fp)
    }
}

/// The loaded certificate and the server configurations built on it.
pub struct Tls {
    /// The certificate store every configuration resolves through.
    pub store: Arc<CertStore>,
    http: Arc<rustls::ServerConfig>,
    turn: Arc<rustls::ServerConfig>,
    unnamed: Arc<rustls::ServerConfig>,
}

/// What the client's ALPN offer says about the protocol it will speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// `http/1.1` was offered and chosen.
    Http,
    /// `stun.turn` was offered and chosen.
    Turn,
    /// Neither was offered; the first bytes decide.
    None,
}

impl Tls {
    /// Completes a TLS handshake on `io`, choosing ALPN from the client's
    /// offer. With `allow_http` false (the TURN-only port) `http/1.1` is
    /// not chosen. The caller bounds the time this takes.
    pub async fn accept<IO>(&self, io: IO, allow_http: bool) -> io::Result<(TlsStream<IO>, Alpn)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let start = LazyConfigAcceptor::new(Acceptor::default(), io).await?;
        let offers = |id: &[u8]| {
            start
                .client_hello()
                .alpn()
                .is_some_and(|mut list| list.any(|p| p == id))
        };
        let (config, alpn) = if offers(ALPN_TURN) {
            (&self.turn, Alpn::Turn)
        } else if allow_http && offers(ALPN_HTTP) {
            (&self.http, Alpn::Http)
        } else {
            // Offering something else is not refused: the bytes decide.
            (&self.unnamed, Alpn::None)
        };
        let stream = start.into_stream(config.clone()).await?;
        Ok((stream, alpn))
    }
}

/// Loads or generates the certificate, if the configuration asks for TLS.
pub fn load(config: &Config) -> anyhow::Result<Option<Tls>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (source, parts) = match (&config.tls_cert, &config.tls_key, config.tls_self_signed) {
        (Some(cert), Some(key), _) => {
            let parts = read_files(cert, key)?;
            let source = Source::Files {
                cert: cert.clone(),
                key: key.clone(),
            };
            (source, parts)
        }
        (None, None, true) => (Source::SelfSigned, self_signed(config)?),
        (None, None, false) => return Ok(None),
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    };
    let key = certified(parts, &provider)?;
    let fp = key.cert.first().map(fingerprint).unwrap_or_default();
    match source {
        Source::Files { .. } => println!("TLS certificate SHA-256 fingerprint: {fp}"),
        Source::SelfSigned => println!(
            "TLS: self-signed certificate; browsers will warn once. Check its SHA-256 fingerprint:\n  {fp}"
        ),
    }
    let store = Arc::new(CertStore {
        current: RwLock::new(Arc::new(key)),
        source,
        provider: provider.clone(),
    });
    let server_config = |alpn: &[&[u8]]| -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut c = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(store.clone());
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(c))
    };
    Ok(Some(Tls {
        http: server_config(&[ALPN_HTTP])?,
        turn: server_config(&[ALPN_TURN])?,
        unnamed: server_config(&[])?,
        store,
    }))
}

type Parts = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn read_files(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<Parts> {
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading --tls-cert {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing --tls-cert {}", cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "--tls-cert {}: no certificate",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading --tls-key {}", key.display()))?;
    Ok((certs, key))
}

/// The chain and key as rustls serves them, refused if they do not belong
/// together.
fn certified((certs, key): Parts, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let signing = provider
        .key_provider
        .load_private_key(key)
        .context("TLS key is unsupported")?;
    let certified = CertifiedKey::new(certs, signing);
    certified
        .keys_match()
        .context("TLS certificate and key do not match")?;
    Ok(certified)
}

/// A self-signed certificate for `localhost`, loopback, the listen address
/// and `--public-host`.
fn self_signed(config: &Config) -> anyhow::Result<Parts> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let ip = config.http_listen.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        names.push(ip.to_string());
    }
    if let Some(host) = &config.public_host {
        names.push(host.clone());
    }
    let certified = rcgen::generate_simple_self_signed(names).context("generating certificate")?;
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("generated key: {e}"))?;
    Ok((vec![cert], key))
}

/// `AB:CD:…` SHA-256 of a DER certificate, as browsers show it.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests;
