//! Checks on the certificates the operator issues.

/// Whether the PEM certificate `leaf_pem` names `ca_pem`'s subject as its issuer and carries a
/// signature that `ca_pem`'s key verifies.
pub fn signed_by(leaf_pem: &[u8], ca_pem: &[u8]) -> bool {
    let parse = |pem: &[u8]| x509_parser::pem::parse_x509_pem(pem).ok().map(|(_, p)| p);
    let (Some(leaf), Some(ca)) = (parse(leaf_pem), parse(ca_pem)) else {
        return false;
    };
    let (Ok(leaf), Ok(ca)) = (leaf.parse_x509(), ca.parse_x509()) else {
        return false;
    };
    leaf.issuer() == ca.subject() && leaf.verify_signature(Some(ca.public_key())).is_ok()
}
