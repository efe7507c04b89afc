//! A throw-away certificate authority that signs one leaf and is forgotten: for TLS between pods of
//! one workload, where the Secret holding the leaf is the only thing anyone needs to keep.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};

/// PEM-encoded CA certificate, leaf certificate and leaf private key.
#[derive(Clone, Debug)]
pub struct IssuedTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Years a leaf stays valid; the CA's key is dropped once the leaf is signed, so renewal means a new
/// CA and leaf together.
pub const VALID_YEARS: i32 = 10;

/// A CA named `ca_name` and a leaf for `common_name` valid as TLS server and client for `sans`
/// (DNS names; `*.` wildcards allowed).
pub fn issue(ca_name: &str, common_name: &str, sans: &[String]) -> Result<IssuedTls, rcgen::Error> {
    let (from, to) = validity();
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = (from, to);
    let ca_cert = ca.self_signed(&ca_key)?;

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(sans.to_vec())?;
    leaf.distinguished_name
        .push(DnType::CommonName, common_name);
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    (leaf.not_before, leaf.not_after) = (from, to);
    let issuer = Issuer::new(ca, ca_key);
    let cert = leaf.signed_by(&key, &issuer)?;
    Ok(IssuedTls {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// From the start of last year (clock skew between nodes stays harmless) for `VALID_YEARS`.
fn validity() -> (OffsetDateTime, OffsetDateTime) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let year = 1970 + (secs / 31_556_952) as i32;
    (
        date_time_ymd(year - 1, 1, 1),
        date_time_ymd(year + VALID_YEARS, 1, 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_a_leaf_for_server_and_client_use() {
        let sans = vec!["*.pool.ns.svc".to_string(), "localhost".to_string()];
        let tls = issue("test CA", "pgbackrest", &sans).unwrap();
        assert!(tls.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(tls.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(tls.key_pem.contains("PRIVATE KEY"));
        assert_ne!(tls.ca_pem, tls.cert_pem);
        let (from, to) = validity();
        assert!(from < OffsetDateTime::now_utc() && to > OffsetDateTime::now_utc());
    }
}
