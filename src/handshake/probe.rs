//! Probe leaves: at render time, while the CA keys are at hand, one SPIFFE leaf per signing
//! intermediate and phase is issued exactly as [`super::issue_leaf`] issues a workload's (same
//! extensions, SAN and key), its private key is dropped, and its chain as istio-agent would
//! present it (leaf, the phase's `cert-chain.pem`, its `root-cert.pem`) is written to the
//! repository. `verify offline` without any identity then decides the handshake matrix's trust
//! decisions on these chains ([`super::HandshakeCache::judge_trust`]).
//!
//! A probe lives exactly as long as its signer: it stands for every leaf the signer can issue,
//! so it can be judged at any time of the rollout, and whether the chain above it is valid is
//! what the verifiers decide. ECDSA signatures are randomized, so a probe cannot be reproduced
//! byte for byte: a render keeps the previous probe while [`check_probe`] accepts it.

use time::OffsetDateTime;

use super::issue::{ChainTail, Lifetime, issue_with};
use super::{HandshakeError, Input, LeafSpec, cert_pem, parse_certs};

/// The identity of every probe leaf: `spiffe://<td>/ns/rootroll-probe/sa/probe`, a namespace
/// no workload of the mesh is expected to use.
pub fn probe_spec(trust_domain: &str) -> LeafSpec {
    LeafSpec {
        trust_domain: trust_domain.to_string(),
        namespace: "rootroll-probe".to_string(),
        service_account: "probe".to_string(),
    }
}

/// Issues a probe leaf from the signing intermediate and returns its presented chain (PEM):
/// the leaf, every cert of `cert_chain_pem`, then every cert of `root_bundle_pem`. The leaf's
/// private key is discarded.
pub fn issue_probe(
    trust_domain: &str,
    signer_cert_pem: &str,
    signer_key_pem: &str,
    cert_chain_pem: &[u8],
    root_bundle_pem: &[u8],
) -> Result<String, HandshakeError> {
    let tail = ChainTail::new(cert_chain_pem, root_bundle_pem)?;
    // The time only sets a workload's lifetime; a probe takes its signer's.
    let now = OffsetDateTime::UNIX_EPOCH;
    let mut leaves = issue_with(
        &[probe_spec(trust_domain)],
        signer_cert_pem,
        signer_key_pem,
        now,
        Lifetime::Signer,
    )?;
    let leaf = leaves.pop().ok_or(HandshakeError::Issue {
        reason: "no probe leaf was issued".into(),
    })?;
    Ok(leaf.present_with(&tail).chain_pem)
}

/// Whether `probe_pem` is a probe for this phase: its first certificate is a probe leaf as
/// [`issue_probe`] issues it (not a CA, the probe SPIFFE ID as its only SAN, serverAuth and
/// clientAuth, its signer's validity) signed by `signer_der`, followed by exactly the certs of
/// `cert_chain_pem` and then `root_bundle_pem`. Returns the leaf (DER), or what is wrong.
pub fn check_probe(
    probe_pem: &[u8],
    trust_domain: &str,
    signer_der: &[u8],
    cert_chain_pem: &[u8],
    root_bundle_pem: &[u8],
) -> Result<Vec<u8>, String> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::{FromDer, X509Certificate};

    let certs = parse_certs(probe_pem, Input::ClientChain).map_err(|e| match e {
        HandshakeError::NoCertificate { .. } => "it holds no certificate".to_string(),
        e => format!("it cannot be read ({e})"),
    })?;
    let tail = ChainTail::new(cert_chain_pem, root_bundle_pem).map_err(|e| e.to_string())?;
    let got: String = certs[1..].iter().map(|d| cert_pem(d)).collect();
    if got != tail.pem() {
        return Err(
            "the certificates after its leaf are not this phase's chain and bundle \
                    (the Secret changed after the probe was issued: re-render)"
                .to_string(),
        );
    }
    let leaf = certs[0].to_vec();
    let (_, cert) = X509Certificate::from_der(&leaf).map_err(|e| format!("its leaf: {e}"))?;
    let (_, signer) =
        X509Certificate::from_der(signer_der).map_err(|e| format!("the signer: {e}"))?;
    if cert.is_ca() {
        return Err("its leaf is a CA certificate".to_string());
    }
    let want = probe_spec(trust_domain).spiffe_id();
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .map(|n| match n {
                    GeneralName::URI(u) => (*u).to_string(),
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .unwrap_or_default();
    if sans != [want.clone()] {
        return Err(format!("its leaf's SAN is {sans:?}, not [{want}]"));
    }
    let eku = cert.extended_key_usage().ok().flatten().map(|e| e.value);
    if !eku.is_some_and(|e| e.server_auth && e.client_auth) {
        return Err("its leaf lacks serverAuth and clientAuth".to_string());
    }
    if cert.issuer().as_raw() != signer.subject().as_raw() || !signed_by(&leaf, signer_der) {
        return Err("its leaf is not signed by this phase's signing certificate".to_string());
    }
    if cert.validity().not_before != signer.validity().not_before
        || cert.validity().not_after != signer.validity().not_after
    {
        return Err("its leaf's validity is not its signer's".to_string());
    }
    Ok(leaf)
}

/// `leaf` verifies up to `signer` as its one trust anchor, with rustls-webpki and aws-lc-rs
/// (the code and algorithms the matrix verifies with; x509-parser cannot check P-521), at the
/// leaf's own NotBefore so that only the signature and the extensions are judged.
fn signed_by(leaf: &[u8], signer: &[u8]) -> bool {
    use rustls::pki_types::{CertificateDer, UnixTime};
    use x509_parser::prelude::{FromDer, X509Certificate};
    let Ok((_, parsed)) = X509Certificate::from_der(leaf) else {
        return false;
    };
    let Ok(at) = u64::try_from(parsed.validity().not_before.timestamp()) else {
        return false;
    };
    let signer = CertificateDer::from(signer);
    let leaf = CertificateDer::from(leaf);
    let (Ok(anchor), Ok(ee)) = (
        webpki::anchor_from_trusted_cert(&signer),
        webpki::EndEntityCert::try_from(&leaf),
    ) else {
        return false;
    };
    let algs = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
    ee.verify_for_usage(
        algs.all,
        &[anchor],
        &[],
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(at)),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        PKCS_ECDSA_P256_SHA256,
    };

    fn ca(cn: &str, parent: Option<(&str, &KeyPair)>) -> (String, KeyPair) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("keygen");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.not_before = time::macros::datetime!(2026-01-01 00:00 UTC);
        params.not_after = time::macros::datetime!(2030-01-01 00:00 UTC);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = match parent {
            None => params.self_signed(&key).expect("self-sign"),
            Some((pem, pk)) => {
                let issuer = Issuer::from_ca_cert_pem(pem, pk).expect("issuer");
                params.signed_by(&key, &issuer).expect("sign")
            }
        };
        (cert.pem(), key)
    }

    #[test]
    fn a_probe_chains_to_its_signer_and_to_nothing_else() {
        let (root, root_key) = ca("root", None);
        let (int, int_key) = ca("int", Some((&root, &root_key)));
        let (other, other_key) = ca("other", Some((&root, &root_key)));
        let chain = format!("{int}{root}");
        let probe = issue_probe(
            "cluster.local",
            &int,
            &int_key.serialize_pem(),
            chain.as_bytes(),
            root.as_bytes(),
        )
        .expect("issues");
        assert!(!probe.contains("PRIVATE KEY"), "{probe}");
        let der = |pem: &str| crate::pki::split_certificates(pem.as_bytes()).unwrap()[0].clone();
        let check = |p: &str, signer: &str, c: &str, b: &str| {
            check_probe(
                p.as_bytes(),
                "cluster.local",
                &der(signer),
                c.as_bytes(),
                b.as_bytes(),
            )
        };
        assert!(check(&probe, &int, &chain, &root).is_ok());
        // Another signer, another chain, another bundle, another trust domain.
        assert!(check(&probe, &other, &chain, &root).is_err());
        assert!(check(&probe, &int, &int, &root).is_err());
        assert!(check(&probe, &int, &chain, &format!("{root}{other}")).is_err());
        assert!(
            check_probe(
                probe.as_bytes(),
                "other.local",
                &der(&int),
                chain.as_bytes(),
                root.as_bytes()
            )
            .is_err()
        );
        // A probe issued by the other intermediate, presented with this phase's chain.
        let forged = issue_probe(
            "cluster.local",
            &other,
            &other_key.serialize_pem(),
            chain.as_bytes(),
            root.as_bytes(),
        )
        .expect("issues");
        let e = check(&forged, &int, &chain, &root).expect_err("wrong signer");
        assert!(e.contains("not signed by"), "{e}");
        assert!(check("", &int, &chain, &root).is_err());
    }
}
