//! Issuing a workload leaf the way istiod does, and assembling the chain the way istio-agent
//! hands it to Envoy (facts §4.1, §4.4).

use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::{HandshakeError, Input, LeafSpec, Workload, cert_pem, parse_certs};

/// Leaf lifetime. istio-agent's default SECRET_TTL is 24 h; an hour is plenty for a check and
/// makes "expired" easy to reach in a matrix.
const LEAF_TTL: Duration = Duration::hours(1);

/// istiod's `ClockSkewGracePeriod`: NotBefore = now − 2 min.
const CLOCK_SKEW: Duration = Duration::minutes(2);

/// A workload leaf and its key, before a chain is attached: one per intermediate serves
/// every phase that intermediate signs in (see [`Leaf::present`]).
pub struct Leaf {
    pub(super) der: Vec<u8>,
    key_pem: String,
}

impl Leaf {
    /// The workload presenting this leaf + every cert of `cert_chain_pem` + every cert of
    /// `root_bundle_pem`, as istio-agent hands it to Envoy.
    pub fn present(
        &self,
        cert_chain_pem: &[u8],
        root_bundle_pem: &[u8],
    ) -> Result<Workload, HandshakeError> {
        Ok(self.present_with(&ChainTail::new(cert_chain_pem, root_bundle_pem)?))
    }

    /// The workload presenting this leaf followed by `tail`.
    pub fn present_with(&self, tail: &ChainTail) -> Workload {
        let mut chain_pem = cert_pem(&self.der);
        chain_pem.push_str(&tail.pem);
        Workload {
            chain_pem,
            key_pem: self.key_pem.clone(),
        }
    }
}

/// What istio-agent puts after the leaf in Envoy's `default` chain: every cert of
/// `cert-chain.pem`, then every cert of `root-cert.pem` (facts §4.4). Checked and encoded once
/// for all the leaves presented with it.
pub struct ChainTail {
    pem: String,
}

impl ChainTail {
    /// The certificates after the leaf, PEM.
    pub(super) fn pem(&self) -> &str {
        &self.pem
    }

    /// Parses a phase's cert-chain.pem and root-cert.pem once, for every leaf issued under it.
    pub fn new(cert_chain_pem: &[u8], root_bundle_pem: &[u8]) -> Result<Self, HandshakeError> {
        let chain = parse_certs(cert_chain_pem, Input::CertChain)?;
        let roots = parse_certs(root_bundle_pem, Input::RootBundle)?;
        Ok(Self {
            pem: chain.iter().chain(&roots).map(|d| cert_pem(d)).collect(),
        })
    }
}

/// Issues a short-lived (1 h, NotBefore `now` − 2 min) ECDSA P-256 leaf with URI SAN
/// `spiffe://<td>/ns/<ns>/sa/<sa>`, EKU serverAuth+clientAuth and key usage
/// digitalSignature+keyEncipherment, signed by the intermediate `signer_cert_pem` /
/// `signer_key_pem` (RSA or ECDSA; PKCS#8, PKCS#1 or SEC1). Returns the workload presenting
/// leaf + every cert of `cert_chain_pem` + every cert of `root_bundle_pem`.
///
/// The signer key is checked against the signer certificate; the chain and bundle are not
/// checked against each other, so a deliberately wrong phase can still be simulated.
pub fn issue_workload(
    spec: &LeafSpec,
    signer_cert_pem: &str,
    signer_key_pem: &str,
    cert_chain_pem: &[u8],
    root_bundle_pem: &[u8],
    now: OffsetDateTime,
) -> Result<Workload, HandshakeError> {
    // Inputs are named in this order when several are bad.
    parse_certs(signer_cert_pem.as_bytes(), Input::SignerCert)?;
    let tail = ChainTail::new(cert_chain_pem, root_bundle_pem)?;
    let leaf = issue_leaf(spec, signer_cert_pem, signer_key_pem, now)?;
    Ok(leaf.present_with(&tail))
}

/// The leaf of [`issue_workload`] alone, to be presented with a chain by [`Leaf::present`].
pub fn issue_leaf(
    spec: &LeafSpec,
    signer_cert_pem: &str,
    signer_key_pem: &str,
    now: OffsetDateTime,
) -> Result<Leaf, HandshakeError> {
    let mut leaves = issue_leaves(
        std::slice::from_ref(spec),
        signer_cert_pem,
        signer_key_pem,
        now,
    )?;
    leaves.pop().ok_or(HandshakeError::Issue {
        reason: "no leaf was issued".into(),
    })
}

/// One leaf of [`issue_leaf`] per spec, in order, from one signer read once.
pub fn issue_leaves(
    specs: &[LeafSpec],
    signer_cert_pem: &str,
    signer_key_pem: &str,
    now: OffsetDateTime,
) -> Result<Vec<Leaf>, HandshakeError> {
    issue_with(
        specs,
        signer_cert_pem,
        signer_key_pem,
        now,
        Lifetime::Workload,
    )
}

/// [`issue_leaves`] with the given lifetime.
pub(super) fn issue_with(
    specs: &[LeafSpec],
    signer_cert_pem: &str,
    signer_key_pem: &str,
    now: OffsetDateTime,
    lifetime: Lifetime,
) -> Result<Vec<Leaf>, HandshakeError> {
    let signer_der = parse_certs(signer_cert_pem.as_bytes(), Input::SignerCert)?
        .into_iter()
        .next()
        .ok_or(HandshakeError::NoCertificate {
            input: Input::SignerCert,
        })?;

    let signer_key = KeyPair::from_pem(signer_key_pem).map_err(|e| HandshakeError::Key {
        input: Input::SignerKey,
        reason: e.to_string(),
    })?;
    let (_, signer) = x509_parser::parse_x509_certificate(&signer_der).map_err(|e| {
        HandshakeError::Certificate {
            input: Input::SignerCert,
            index: 0,
            reason: e.to_string(),
        }
    })?;
    if *signer.public_key().subject_public_key.data != *signer_key.public_key_raw() {
        return Err(HandshakeError::KeyMismatch {
            input: Input::SignerKey,
        });
    }
    let issuer = Issuer::from_ca_cert_der(&signer_der, signer_key).map_err(issue_err)?;
    let validity = match lifetime {
        Lifetime::Workload => (now - CLOCK_SKEW, now + LEAF_TTL),
        Lifetime::Signer => {
            let v = signer.validity();
            (v.not_before.to_datetime(), v.not_after.to_datetime())
        }
    };
    specs
        .iter()
        .map(|spec| sign_leaf(spec, &issuer, signer.subject().as_raw(), validity))
        .collect()
}

/// How long an issued leaf lives.
#[derive(Clone, Copy)]
pub(super) enum Lifetime {
    /// A workload's: NotBefore `now` − 2 min, one hour.
    Workload,
    /// Exactly its signer's validity (a probe leaf stands for every leaf the signer issues).
    Signer,
}

/// A leaf for `spec` signed by `issuer`, whose subject DER is `issuer_name`.
fn sign_leaf(
    spec: &LeafSpec,
    issuer: &Issuer<'_, KeyPair>,
    issuer_name: &[u8],
    (not_before, not_after): (OffsetDateTime, OffsetDateTime),
) -> Result<Leaf, HandshakeError> {
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(issue_err)?;
    let mut params = CertificateParams::default();
    // istiod leaves have an empty subject; rcgen then marks the SAN critical (RFC 5280).
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(
        spec.spiffe_id().try_into().map_err(issue_err)?,
    )];
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let leaf = params.signed_by(&leaf_key, issuer).map_err(issue_err)?;
    // rcgen re-encodes the issuer DN and collapses repeated attribute types; path building
    // compares names byte for byte, so such a leaf would look like an unknown issuer.
    let (_, issued) =
        x509_parser::parse_x509_certificate(leaf.der()).map_err(|e| HandshakeError::Issue {
            reason: e.to_string(),
        })?;
    if issued.issuer().as_raw() != issuer_name {
        return Err(HandshakeError::Issue {
            reason: "the signer's subject cannot be reproduced byte for byte as the leaf's \
                     issuer (repeated attribute types are not supported)"
                .into(),
        });
    }

    Ok(Leaf {
        der: leaf.der().to_vec(),
        key_pem: leaf_key.serialize_pem().replace("\r\n", "\n"),
    })
}

fn issue_err(e: rcgen::Error) -> HandshakeError {
    HandshakeError::Issue {
        reason: e.to_string(),
    }
}

/// 16 random bytes, positive and without a leading zero byte (minimal DER INTEGER).
fn random_serial() -> Result<SerialNumber, HandshakeError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| HandshakeError::Issue {
        reason: format!("no randomness for the serial number: {e}"),
    })?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, DnType};
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

    struct Ca {
        cert_pem: String,
        key_pem: String,
    }

    fn ca(cn: &str, parent: Option<&Ca>, now: OffsetDateTime) -> Ca {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("keygen");
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(365);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = match parent {
            None => {
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.self_signed(&key).expect("self-sign")
            }
            Some(parent) => {
                params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
                params.use_authority_key_identifier_extension = true;
                let parent_key = KeyPair::from_pem(&parent.key_pem).expect("parent key");
                let issuer =
                    Issuer::from_ca_cert_pem(&parent.cert_pem, parent_key).expect("issuer");
                params.signed_by(&key, &issuer).expect("sign")
            }
        };
        Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    fn spec() -> LeafSpec {
        LeafSpec {
            trust_domain: "cluster.local".into(),
            namespace: "shop".into(),
            service_account: "cart".into(),
        }
    }

    #[test]
    fn leaf_looks_like_istiods_and_chain_is_leaf_chain_roots() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid timestamp");
        let root = ca("Root A", None, now);
        let int = ca("Intermediate A", Some(&root), now);
        let chain = format!("{}{}", int.cert_pem, root.cert_pem);
        let bundle = format!("{}{}", root.cert_pem, root.cert_pem);
        let w = issue_workload(
            &spec(),
            &int.cert_pem,
            &int.key_pem,
            chain.as_bytes(),
            bundle.as_bytes(),
            now,
        )
        .expect("issue");

        let blocks = pem::parse_many(&w.chain_pem).expect("chain pem");
        assert_eq!(
            blocks.len(),
            5,
            "leaf + intermediate + root + two bundle roots"
        );
        assert!(!w.chain_pem.contains('\r'));
        let int_der = pem::parse(&int.cert_pem).expect("int").into_contents();
        let root_der = pem::parse(&root.cert_pem).expect("root").into_contents();
        assert_eq!(blocks[1].contents(), int_der.as_slice());
        for block in &blocks[2..] {
            assert_eq!(block.contents(), root_der.as_slice());
        }

        let (_, leaf) = X509Certificate::from_der(blocks[0].contents()).expect("leaf");
        let (_, int_cert) = X509Certificate::from_der(&int_der).expect("int");
        assert_eq!(leaf.issuer(), int_cert.subject());
        assert!(leaf.subject().iter().next().is_none(), "empty subject");
        assert_eq!(
            leaf.validity().not_before.timestamp(),
            (now - Duration::minutes(2)).unix_timestamp()
        );
        assert_eq!(
            leaf.validity().not_after.timestamp(),
            (now + Duration::hours(1)).unix_timestamp()
        );
        let san = leaf
            .subject_alternative_name()
            .expect("san parses")
            .expect("san present");
        assert!(san.critical);
        assert_eq!(
            san.value.general_names,
            vec![GeneralName::URI("spiffe://cluster.local/ns/shop/sa/cart")]
        );
        let eku = leaf
            .extended_key_usage()
            .expect("eku")
            .expect("eku present");
        assert!(eku.value.server_auth && eku.value.client_auth);
        let ku = leaf.key_usage().expect("ku").expect("ku present");
        assert!(ku.value.digital_signature() && ku.value.key_encipherment());
        assert!(!ku.value.key_cert_sign());
        let bc = leaf.basic_constraints().expect("bc").expect("bc present");
        assert!(!bc.value.ca);
        assert!(leaf.public_key().parsed().is_ok());
        assert!(leaf.verify_signature(Some(int_cert.public_key())).is_ok());
        assert!(
            w.key_pem
                .starts_with(concat!("-----BEGIN PRIVATE", " KEY-----"))
        );
    }

    #[test]
    fn signer_key_must_match_signer_cert() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid timestamp");
        let root = ca("Root A", None, now);
        let int = ca("Intermediate A", Some(&root), now);
        let other = ca("Intermediate X", Some(&root), now);
        let err = issue_workload(
            &spec(),
            &int.cert_pem,
            &other.key_pem,
            int.cert_pem.as_bytes(),
            root.cert_pem.as_bytes(),
            now,
        )
        .err()
        .expect("mismatched key must fail");
        assert_eq!(err.to_string(), "signer key does not match its certificate");

        let err = issue_workload(
            &spec(),
            &int.cert_pem,
            "not a key",
            int.cert_pem.as_bytes(),
            root.cert_pem.as_bytes(),
            now,
        )
        .err()
        .expect("garbage key must fail");
        assert!(
            err.to_string().starts_with("cannot use signer key"),
            "{err}"
        );

        let err = issue_workload(
            &spec(),
            &int.cert_pem,
            &int.key_pem,
            int.cert_pem.as_bytes(),
            b"",
            now,
        )
        .err()
        .expect("empty bundle must fail");
        assert_eq!(err.to_string(), "root-cert.pem bundle holds no certificate");
    }
}
