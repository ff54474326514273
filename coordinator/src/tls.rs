//! `sweep-coordinator tls init`: a private CA and a server certificate signed by it, for
//! users who have none. The CA certificate is public (fleet bootstraps pin it); its key
//! and the server key are written 0600 and never leave the coordinator's host.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// The files `init` writes.
pub struct Written {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Whether an existing CA in the directory was reused.
    pub reused_ca: bool,
}

fn write(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    let mode = if secret { 0o600 } else { 0o644 };
    sweep_client::files::write_atomic(path, text.as_bytes(), mode).with_context(|| format!("write {}", path.display()))
}

/// Writes `ca.pem`/`ca.key` (kept when already there) and `server.pem`/`server.key` for
/// `names` (DNS names or IP addresses) into `dir`.
pub fn init(dir: &Path, names: &[String], days: u32) -> anyhow::Result<Written> {
    anyhow::ensure!(
        !names.is_empty(),
        "--name: give at least one DNS name or IP address the coordinator is reached at"
    );
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let (ca_cert, ca_key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(DnType::CommonName, "Sweep private CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let reused_ca = ca_key_path.exists() && ca_cert.exists();
    let ca_key = if reused_ca {
        let pem = std::fs::read_to_string(&ca_key_path).with_context(|| format!("read {}", ca_key_path.display()))?;
        KeyPair::from_pem(&pem).with_context(|| format!("{}: not a PEM private key", ca_key_path.display()))?
    } else {
        let key = KeyPair::generate()?;
        ca.not_after = rcgen::date_time_ymd(2036, 1, 1);
        write(&ca_cert, &ca.self_signed(&key)?.pem(), false)?;
        write(&ca_key_path, &key.serialize_pem(), true)?;
        key
    };
    let issuer = Issuer::from_params(&ca, &ca_key);
    let mut server = CertificateParams::new(names.to_vec()).context("--name: not a DNS name or IP address")?;
    server.distinguished_name.push(DnType::CommonName, names[0].as_str());
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    server.not_before = ymd(chrono::Utc::now() - chrono::Duration::days(1));
    server.not_after = ymd(chrono::Utc::now() + chrono::Duration::days(days.into()));
    let key = KeyPair::generate()?;
    let cert = server.signed_by(&key, &issuer)?;
    let (server_cert, server_key) = (dir.join("server.pem"), dir.join("server.key"));
    write(&server_cert, &cert.pem(), false)?;
    write(&server_key, &key.serialize_pem(), true)?;
    Ok(Written { ca_cert, server_cert, server_key, reused_ca })
}

fn ymd(t: chrono::DateTime<chrono::Utc>) -> time::OffsetDateTime {
    use chrono::Datelike;
    rcgen::date_time_ymd(t.year(), t.month() as u8, t.day() as u8)
}
