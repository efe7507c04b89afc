//! Certificates the operator issues. Two kinds of authority:
//!
//! * [`issue`]: a throw-away CA that signs one leaf and is forgotten, for TLS between pods of one
//!   workload, where the Secret holding the leaf is the only thing anyone needs to keep;
//! * [`Authority`]: a CA whose key the process holds (the operator's topology CA, mounted from the
//!   chart's Secret: docs/security.md), which signs leaves on demand; and the CA of each cluster,
//!   derived from it ([`Authority::derive`]), so that renewed leaves chain to the CA pods trust.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

use hmac::{Hmac, Mac};
use p256::pkcs8::EncodePrivateKey;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, SerialNumber, date_time_ymd,
};
use sha2::{Digest, Sha256};

/// Why a certificate could not be made.
pub type Error = rcgen::Error;

/// PEM-encoded CA certificate, leaf certificate and leaf private key.
#[derive(Clone, Debug)]
pub struct IssuedTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl IssuedTls {
    /// As a `kubernetes.io/tls` Secret with `ca.crt`, `tls.crt` and `tls.key`: cert-manager's
    /// layout, which every consumer of the operator's certificates reads.
    pub fn secret(
        &self,
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> k8s_openapi::api::core::v1::Secret {
        let pem = |text: &str| k8s_openapi::ByteString(text.as_bytes().to_vec());
        k8s_openapi::api::core::v1::Secret {
            metadata,
            type_: Some("kubernetes.io/tls".into()),
            data: Some(std::collections::BTreeMap::from([
                ("ca.crt".to_string(), pem(&self.ca_pem)),
                ("tls.crt".to_string(), pem(&self.cert_pem)),
                ("tls.key".to_string(), pem(&self.key_pem)),
            ])),
            ..Default::default()
        }
    }
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
    let issuer = Issuer::new(ca, ca_key);
    let (cert_pem, key_pem) = sign_leaf(&issuer, common_name, sans, (from, to))?;
    Ok(IssuedTls {
        ca_pem: ca_cert.pem(),
        cert_pem,
        key_pem,
    })
}

/// A new CA named `name`: its certificate and PKCS#8 key, PEM (for a CA kept outside this
/// process: test harnesses, the demo).
pub fn generate_ca(name: &str) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = validity();
    Ok((ca.self_signed(&key)?.pem(), key.serialize_pem()))
}

/// A leaf signed by `issuer`, valid as TLS server and client for `sans`, from and to the given times.
fn sign_leaf(
    issuer: &Issuer<'_, KeyPair>,
    common_name: &str,
    sans: &[String],
    (from, to): (OffsetDateTime, OffsetDateTime),
) -> Result<(String, String), rcgen::Error> {
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
    let cert = leaf.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Why a CA could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the CA key is neither PKCS#8 nor a PKCS#1 RSA key (for an EC key, store it as PKCS#8; \
         cert-manager: privateKey.encoding: PKCS8)"
    )]
    KeyFormat,
    #[error("the CA: {0}")]
    Certificate(#[from] rcgen::Error),
}

/// A CA whose key this process holds: signs leaves on demand.
pub struct Authority {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
    /// The CA key (PKCS#8 DER), what [`Authority::derive`] derives from.
    key_der: Vec<u8>,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

impl Authority {
    /// The CA of a `kubernetes.io/tls` Secret mounted at `dir` (`tls.crt`, `tls.key`), as Helm's
    /// `genCA` or cert-manager write it.
    pub fn load(dir: &Path) -> Result<Self, AuthorityError> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path).map_err(|source| AuthorityError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        Self::from_pem(&read("tls.crt")?, &read("tls.key")?)
    }

    /// From the CA certificate (the first one of `cert_pem`) and its key (PKCS#8, or PKCS#1 RSA).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, AuthorityError> {
        let key = parse_key(key_pem)?;
        let first = pem::parse_many(cert_pem)
            .map_err(|_| rcgen::Error::CouldNotParseCertificate)?
            .into_iter()
            .find(|p| p.tag() == "CERTIFICATE")
            .ok_or(rcgen::Error::CouldNotParseCertificate)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(first.contents())
            .map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
        let not_after = parsed.validity().not_after.to_datetime();
        let key_der = key.serialize_der();
        let issuer = Issuer::from_ca_cert_der(&first.contents().to_vec().into(), key)?;
        Ok(Self {
            ca_pem: pem::encode(&first),
            issuer,
            key_der,
            not_after,
        })
    }

    /// The CA of `scope` (`cluster/<uid>`, `pgbackrest/<uid>`), named `name`: its ECDSA P-256 key derived from this
    /// CA's key and the scope (HMAC-SHA256), valid until this CA expires. Every process holding
    /// this CA derives the same key, so a renewed leaf chains to the CA the pods already trust
    /// without a Secret being read back; and each scope has its own, so one cluster's (or
    /// shard's) certificates are not trusted by another's components (docs/security.md, "Renewal").
    pub fn derive(&self, scope: &str, name: &str) -> Result<Authority, rcgen::Error> {
        let key = derived_key(&self.key_der, scope)?;
        let key_der = key.serialize_der();
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // Fixed, so that every derivation is the same certificate but for its signature.
        let digest = Sha256::digest(key.public_key_raw());
        let mut serial = digest[..16].to_vec();
        serial[0] &= 0x7f;
        ca.serial_number = Some(SerialNumber::from_slice(&serial));
        (ca.not_before, ca.not_after) = (date_time_ymd(2020, 1, 1), self.not_after);
        let cert = ca.self_signed(&key)?;
        Ok(Authority {
            ca_pem: cert.pem(),
            issuer: Issuer::new(ca, key),
            key_der,
            not_after: self.not_after,
        })
    }

    /// The CA certificate, what verifiers trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A leaf for `common_name`, valid as TLS server and client for `sans`, for [`VALID_YEARS`].
    pub fn sign(&self, common_name: &str, sans: &[String]) -> Result<IssuedTls, rcgen::Error> {
        self.sign_for(common_name, sans, validity())
    }

    /// [`Self::sign`] for a leaf valid until `not_after` (Unix seconds), from an hour ago (clock
    /// skew between nodes): a renewable certificate (docs/security.md, "Renewal").
    pub fn sign_until(
        &self,
        common_name: &str,
        sans: &[String],
        not_after: i64,
    ) -> Result<IssuedTls, rcgen::Error> {
        let at = |secs| OffsetDateTime::from_unix_timestamp(secs).map_err(|_| rcgen::Error::Time);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.sign_for(common_name, sans, (at(now - 3600)?, at(not_after)?))
    }

    fn sign_for(
        &self,
        common_name: &str,
        sans: &[String],
        validity: (OffsetDateTime, OffsetDateTime),
    ) -> Result<IssuedTls, rcgen::Error> {
        let (cert_pem, key_pem) = sign_leaf(&self.issuer, common_name, sans, validity)?;
        Ok(IssuedTls {
            ca_pem: self.ca_pem.clone(),
            cert_pem,
            key_pem,
        })
    }
}

/// The P-256 key of [`Authority::derive`]: the first HMAC-SHA256(secret, label, scope, counter)
/// that is a valid scalar (all but a 2^-32 chance at the first counter).
fn derived_key(secret: &[u8], scope: &str) -> Result<KeyPair, rcgen::Error> {
    for counter in 0u8..=u8::MAX {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| rcgen::Error::Time)?;
        mac.update(b"multigres derived CA v1\0");
        mac.update(scope.as_bytes());
        mac.update(&[counter]);
        let bytes = mac.finalize().into_bytes();
        let Ok(scalar) = p256::SecretKey::from_bytes(&bytes) else {
            continue;
        };
        let der = scalar
            .to_pkcs8_der()
            .map_err(|_| rcgen::Error::CouldNotParseKeyPair)?;
        return KeyPair::from_pkcs8_der_and_sign_algo(
            &der.as_bytes().to_vec().into(),
            &PKCS_ECDSA_P256_SHA256,
        );
    }
    Err(rcgen::Error::CouldNotParseKeyPair)
}

/// A PKCS#8 key as it is, a PKCS#1 RSA key (Helm's `genCA`, cert-manager's default encoding)
/// wrapped into PKCS#8, which is what the signing backend reads.
fn parse_key(key_pem: &str) -> Result<KeyPair, AuthorityError> {
    let block = pem::parse(key_pem).map_err(|_| AuthorityError::KeyFormat)?;
    match block.tag() {
        "PRIVATE KEY" => KeyPair::from_pem(key_pem).map_err(|_| AuthorityError::KeyFormat),
        "RSA PRIVATE KEY" => {
            let pkcs8 = rsa_pkcs1_to_pkcs8(block.contents());
            KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.into(), &PKCS_RSA_SHA256)
                .map_err(|_| AuthorityError::KeyFormat)
        }
        _ => Err(AuthorityError::KeyFormat),
    }
}

/// `PrivateKeyInfo { version 0, rsaEncryption, OCTET STRING pkcs1 }` (RFC 5208).
fn rsa_pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    const VERSION: [u8; 3] = [0x02, 0x01, 0x00];
    const RSA_ENCRYPTION: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut body = Vec::with_capacity(pkcs1.len() + 32);
    body.extend_from_slice(&VERSION);
    body.extend_from_slice(&RSA_ENCRYPTION);
    der_tlv(&mut body, 0x04, pkcs1);
    let mut out = Vec::with_capacity(body.len() + 4);
    der_tlv(&mut out, 0x30, &body);
    out
}

fn der_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
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

    /// The leaf's issuer is the CA's subject and its signature verifies with the CA's key.
    fn assert_signed_by(leaf_pem: &str, ca_pem: &str) {
        let leaf = ::pem::parse(leaf_pem).unwrap();
        let ca = ::pem::parse(ca_pem).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(leaf.contents()).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(ca.contents()).unwrap();
        assert_eq!(leaf.issuer(), ca.subject());
        leaf.verify_signature(Some(ca.public_key())).unwrap();
    }

    #[test]
    fn an_authority_signs_with_a_pkcs8_key() {
        let throwaway = issue("x", "y", &[]).unwrap();
        // A CA made here, loaded back the way a mounted Secret is.
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "topology CA");
        let ca = params.self_signed(&key).unwrap();
        let authority = Authority::from_pem(&ca.pem(), &key.serialize_pem()).unwrap();
        let leaf = authority
            .sign("etcd", &["etcd.ns.svc".to_string()])
            .unwrap();
        assert_eq!(leaf.ca_pem, authority.ca_pem());
        assert_signed_by(&leaf.cert_pem, &ca.pem());
        assert!(
            std::panic::catch_unwind(|| assert_signed_by(&leaf.cert_pem, &throwaway.ca_pem))
                .is_err(),
            "a leaf must not verify against another CA"
        );
    }

    #[test]
    fn a_renewable_leaf_expires_when_asked_and_old_and_new_chain_to_the_same_ca() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pkcs1-ca");
        let authority = Authority::load(&dir).unwrap();
        let not_after = OffsetDateTime::now_utc().unix_timestamp() + 90;
        let renewed = authority.sign_until("etcd", &[], not_after).unwrap();
        let leaf = ::pem::parse(&renewed.cert_pem).unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(leaf.contents()).unwrap();
        assert_eq!(leaf.validity().not_after.timestamp(), not_after);
        assert!(leaf.validity().is_valid());
        let old = authority.sign("etcd", &[]).unwrap();
        assert_signed_by(&renewed.cert_pem, authority.ca_pem());
        assert_signed_by(&old.cert_pem, authority.ca_pem());
    }

    #[test]
    fn a_derived_ca_is_the_same_in_every_process_and_different_for_every_scope() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pkcs1-ca");
        let root = Authority::load(&dir).unwrap();
        let again = Authority::load(&dir).unwrap();
        let prod = root.derive("uid-1", "Multigres prod CA").unwrap();
        // Another process (another controller replica, a restart) derives the same key: what it
        // signs verifies against the CA certificate this one gave out.
        let renewed = again.derive("uid-1", "Multigres prod CA").unwrap();
        let leaf = renewed
            .sign_until("multigres-internal", &[], now() + 600)
            .unwrap();
        assert_signed_by(&leaf.cert_pem, prod.ca_pem());
        let first = prod.sign("multigres-internal", &[]).unwrap();
        assert_signed_by(&first.cert_pem, renewed.ca_pem());
        // Another cluster's CA does not verify it.
        let other = root.derive("uid-2", "Multigres prod CA").unwrap();
        let other_ca = other.ca_pem().to_string();
        assert!(
            std::panic::catch_unwind(|| assert_signed_by(&leaf.cert_pem, &other_ca)).is_err(),
            "a leaf of one scope must not verify against another scope's CA"
        );
        // The derived CA is not the root's: it cannot stand in for the topology CA.
        let root_ca = root.ca_pem().to_string();
        assert!(std::panic::catch_unwind(|| assert_signed_by(&leaf.cert_pem, &root_ca)).is_err());
        let ca = ::pem::parse(prod.ca_pem()).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(ca.contents()).unwrap();
        let root_pem = ::pem::parse(root.ca_pem()).unwrap();
        let (_, root_cert) = x509_parser::parse_x509_certificate(root_pem.contents()).unwrap();
        assert_eq!(ca.validity().not_after, root_cert.validity().not_after);
        assert!(ca.is_ca());
        ca.verify_signature(None).unwrap();
    }

    fn now() -> i64 {
        OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn an_authority_signs_with_a_pkcs1_rsa_key_as_helm_gen_ca_writes_it() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/pkcs1-ca");
        let authority = Authority::load(&dir).unwrap();
        let leaf = authority.sign("multigres-operator", &[]).unwrap();
        let ca_pem = std::fs::read_to_string(dir.join("tls.crt")).unwrap();
        assert_signed_by(&leaf.cert_pem, &ca_pem);
    }

    #[test]
    fn an_ec_key_outside_pkcs8_is_refused_with_a_hint() {
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA==\n-----END EC PRIVATE KEY-----\n";
        let ca = issue("x", "y", &[]).unwrap();
        let err = Authority::from_pem(&ca.ca_pem, sec1).unwrap_err();
        assert!(err.to_string().contains("PKCS8"), "{err}");
    }

    #[test]
    fn a_missing_folder_names_the_file() {
        let err = Authority::load(Path::new("/nonexistent-ca")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-ca/tls.crt"), "{err}");
    }
}
