//! Small decoding helpers that offline and live gates share: base64 values, PEM certificate
//! blocks and fingerprint sets.

use std::collections::BTreeSet;

use base64::Engine as _;

use crate::pki;

/// Standard base64 (Secret data, Envoy `inlineBytes`), surrounding white space ignored.
pub fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

/// The DER of every `CERTIFICATE` block of a PEM text; other blocks are skipped and
/// unreadable PEM gives none.
pub fn pem_certificates(bytes: &[u8]) -> Vec<Vec<u8>> {
    pem::parse_many(bytes)
        .map(|v| {
            v.into_iter()
                .filter(|p| p.tag() == "CERTIFICATE")
                .map(|p| p.into_contents())
                .collect()
        })
        .unwrap_or_default()
}

/// sha256 fingerprints of DER certificates.
pub fn sha_set(ders: &[Vec<u8>]) -> BTreeSet<String> {
    ders.iter().map(|d| pki::sha256_hex(d)).collect()
}
