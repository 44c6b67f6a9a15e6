//! Small helpers that offline and live gates share: base64 values, PEM certificate blocks,
//! fingerprint sets, and naming a few of the objects behind an aggregated finding.

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

/// How many objects a message names before it gives a count for the rest.
pub const NAMED: usize = 5;

/// Up to [`NAMED`] names, then "and N more": what a one-line message says about the objects
/// behind an aggregated finding (the full list goes in its details).
pub fn some_names(names: &[String]) -> String {
    let shown = names[..names.len().min(NAMED)].join(", ");
    match names.len().saturating_sub(NAMED) {
        0 => shown,
        rest => format!("{shown} and {rest} more"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn some_names_counts_the_rest() {
        let n = |k: usize| (0..k).map(|i| format!("p{i}")).collect::<Vec<_>>();
        assert_eq!(some_names(&n(0)), "");
        assert_eq!(some_names(&n(2)), "p0, p1");
        assert_eq!(some_names(&n(5)), "p0, p1, p2, p3, p4");
        assert_eq!(some_names(&n(8)), "p0, p1, p2, p3, p4 and 3 more");
    }
}
