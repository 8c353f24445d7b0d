use super::*;

/// A directory for one test's files, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("switchboard-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a new self-signed pair; returns its fingerprint.
fn write_pair(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<String> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    std::fs::write(cert, certified.cert.pem())?;
    std::fs::write(key, certified.signing_key.serialize_pem())?;
    Ok(fingerprint(certified.cert.der()))
}

fn args(c: &std::path::Path, k: &std::path::Path) -> anyhow::Result<Config> {
    Config::load_from([
        "switchboard".to_owned(),
        "--tls-cert".to_owned(),
        c.display().to_string(),
        "--tls-key".to_owned(),
        k.display().to_string(),
    ])
}

#[test]
fn self_signed_certificate_and_fingerprint() -> anyhow::Result<()> {
    let tls = load(&Config::load_from(["switchboard", "--tls-self-signed"])?)?
        .ok_or_else(|| anyhow::anyhow!("no TLS"))?;
    let fp = tls.store.fingerprint();
    assert_eq!(fp.len(), 32 * 3 - 1);
    assert!(fp.bytes().all(|b| b == b':' || b.is_ascii_hexdigit()));
    // Nothing to reload: the old certificate stays.
    assert!(tls.store.reload().is_err());
    assert_eq!(tls.store.fingerprint(), fp);
    assert!(tls.store.files().is_none());
    Ok(())
}

#[test]
fn loads_pem_files_and_refuses_garbage() -> anyhow::Result<()> {
    let dir = TempDir::new("tls-load")?;
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    let fp = write_pair(&cert, &key)?;
    let tls = load(&args(&cert, &key)?)?.ok_or_else(|| anyhow::anyhow!("no TLS"))?;
    assert_eq!(tls.store.fingerprint(), fp);
    // A key file holding a certificate is refused with an error, not a panic.
    assert!(load(&args(&cert, &cert)?).is_err());
    assert!(load(&args(&dir.0.join("missing.pem"), &key)?).is_err());
    assert!(load(&Config::default())?.is_none());
    // A key that belongs to another certificate is refused.
    let other = dir.0.join("other-key.pem");
    write_pair(&dir.0.join("other-cert.pem"), &other)?;
    assert!(load(&args(&cert, &other)?).is_err());
    Ok(())
}

#[test]
fn reload_swaps_the_certificate_and_keeps_it_on_bad_files() -> anyhow::Result<()> {
    let dir = TempDir::new("tls-reload")?;
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    let first = write_pair(&cert, &key)?;
    let tls = load(&args(&cert, &key)?)?.ok_or_else(|| anyhow::anyhow!("no TLS"))?;
    let second = write_pair(&cert, &key)?;
    assert_ne!(first, second);
    assert_eq!(tls.store.reload()?, second);
    assert_eq!(tls.store.fingerprint(), second);
    // Half-written: the certificate is new, the key still the old one.
    let key_before = std::fs::read(&key)?;
    write_pair(&cert, &key)?;
    std::fs::write(&key, key_before)?;
    assert!(tls.store.reload().is_err());
    assert_eq!(tls.store.fingerprint(), second);
    std::fs::write(&cert, "not a certificate")?;
    assert!(tls.store.reload().is_err());
    assert_eq!(tls.store.fingerprint(), second);
    Ok(())
}

#[test]
fn certificate_expiry_is_read() -> anyhow::Result<()> {
    let tls = load(&Config::load_from(["switchboard", "--tls-self-signed"])?)?
        .ok_or_else(|| anyhow::anyhow!("no TLS"))?;
    let not_after = tls.store.not_after_unix().unwrap_or(0);
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    )?;
    // rcgen's default validity runs to 4096; in any case well after now.
    assert!(not_after > now + 86_400, "{not_after} vs {now}");
    Ok(())
}
