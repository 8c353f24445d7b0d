//! The Redis client of a node: the `--redis` URL asking for RESP3 (pub/sub
//! pushes on the command connection), no Nagle, and for `rediss://` the
//! CA and client certificate files, each checked at start.

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The files of a `rediss://` connection, each optional: the CA to trust
/// instead of the system's, and a client certificate with its key for a
/// Redis that asks for one.
#[derive(Debug, Clone, Default)]
pub struct RedisTls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Whether `url` with `tls` makes a Redis client: the start-up check.
pub fn check_url(url: &str, tls: &RedisTls) -> anyhow::Result<()> {
    client(url, tls).map(|_| ())
}

/// A client for `url` asking for RESP3, without Nagle (a publish must not
/// wait for the previous one's ACK), with the files of `tls`.
pub(super) fn client(url: &str, tls: &RedisTls) -> anyhow::Result<redis::Client> {
    let url = with_resp3(url);
    let info = redis::IntoConnectionInfo::into_connection_info(url.as_str())
        .map_err(|e| anyhow::anyhow!("--redis: {e}"))?
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
    let tls_files = tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some();
    if tls_files && !url.starts_with("rediss://") {
        anyhow::bail!(
            "--redis-ca, --redis-cert are for TLS: the --redis URL must start with rediss://"
        );
    }
    let client_tls = match (&tls.cert, &tls.key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read_certificates("--redis-cert", cert)?,
            client_key: read("--redis-key", key)?,
        }),
        _ => anyhow::bail!("--redis-cert and --redis-key go together"),
    };
    let root_cert = match &tls.ca {
        Some(ca) => Some(read_certificates("--redis-ca", ca)?),
        None => None,
    };
    if root_cert.is_none() && client_tls.is_none() {
        return redis::Client::open(info).map_err(|e| anyhow::anyhow!("--redis: {e}"));
    }
    let certs = redis::TlsCertificates {
        client_tls,
        root_cert,
    };
    redis::Client::build_with_tls(info, certs).map_err(|e| anyhow::anyhow!("--redis: {e}"))
}

fn read(flag: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))
}

/// A PEM file that must hold a certificate: the client would take one
/// without and then trust (or show) nothing, failing at every connection
/// attempt instead of at start.
fn read_certificates(flag: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem = read(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{flag} {}: no PEM certificate in it", path.display());
    }
    Ok(pem)
}

/// `url` asking for RESP3 (pub/sub pushes on the command connection).
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}
