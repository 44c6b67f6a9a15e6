//! Real mutual-TLS handshakes between simulated Istio workloads, in memory.
//!
//! The rotation's safety argument is "every pair of workloads that can meet during a phase
//! still completes a handshake". This module checks it with real crypto rather than by
//! reasoning about bundles: [`issue_workload`] issues a leaf the way istiod does and builds the
//! chain the way istio-agent hands it to Envoy, and [`mutual_tls`] runs a TLS 1.3 handshake
//! between two such workloads through in-memory buffers (no sockets). For a matrix of many
//! cells, [`HandshakeCache::judge`] reaches the same verdicts with the same verifiers and far
//! fewer connections.
//!
//! Facts the design follows (`istio-ca-facts.md` §4.1, §4.4, §9.6):
//! - Leaves are ECDSA P-256, empty subject, one URI SAN `spiffe://<td>/ns/<ns>/sa/<sa>`,
//!   EKU serverAuth+clientAuth, NotBefore backdated two minutes.
//! - Envoy's `default` chain is leaf, then every cert of `cert-chain.pem`, then every cert of
//!   `root-cert.pem`, duplicates included, and Envoy sends all of it.
//! - The peer's Envoy builds one path through what was sent, choosing each issuer the way
//!   BoringSSL does (trust bundle first, first match by name and key identifier, no
//!   backtracking); the verifiers judge that path and no other (`issuer`).
//! - Peers check the SPIFFE URI SAN, not a DNS name, which rustls' stock `WebPkiServerVerifier`
//!   cannot do; both sides therefore use verifiers written here on top of `rustls-webpki`,
//!   verifying at the injected `now` so a matrix can be rendered for any clock.
//!
//! Every rustls config is built with an explicit aws-lc-rs provider and a fixed-clock time
//! provider, never the process defaults.

mod issue;
mod issuer;
mod probe;
mod session;
mod verify;

pub use issue::{ChainTail, Leaf, issue_leaf, issue_leaves, issue_workload};
pub use probe::{check_probe, issue_probe, probe_spec};
pub use session::{HandshakeCache, mutual_tls};

use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

/// A workload identity as istiod would issue it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSpec {
    /// The mesh's trust domain (`cluster.local`).
    pub trust_domain: String,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's service account.
    pub service_account: String,
}

impl LeafSpec {
    /// The SPIFFE ID istiod writes into the leaf's URI SAN.
    pub fn spiffe_id(&self) -> String {
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

/// A workload's presented material.
///
/// `key_pem` is the leaf's private key (PEM, PKCS#8). `chain_pem` is the certificate chain
/// exactly as istio-agent builds Envoy's `default` secret: the leaf, then every cert of the
/// phase's `cert-chain.pem`, then every cert of `root-cert.pem` (facts §4.4).
///
/// Deliberately has no `Debug`: it holds a private key.
#[derive(Clone)]
pub struct Workload {
    /// The leaf, then the phase's cert-chain.pem, then its root-cert.pem.
    pub chain_pem: String,
    /// The leaf's private key (PKCS#8 PEM).
    pub key_pem: String,
}

/// Which end of a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The side that opens the connection.
    Client,
    /// The side that accepts it.
    Server,
}

impl Side {
    /// The other end.
    pub fn peer(self) -> Self {
        match self {
            Self::Client => Self::Server,
            Self::Server => Self::Client,
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Client => "client",
            Self::Server => "server",
        })
    }
}

/// The inputs a caller hands in, named so an error can say which one was bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `issue_workload`'s `signer_cert_pem` (the intermediate, `ca-cert.pem`).
    SignerCert,
    /// `issue_workload`'s `signer_key_pem` (`ca-key.pem`).
    SignerKey,
    /// `issue_workload`'s `cert_chain_pem`.
    CertChain,
    /// `issue_workload`'s `root_bundle_pem`.
    RootBundle,
    /// The client workload's `chain_pem`.
    ClientChain,
    /// The client workload's `key_pem`.
    ClientKey,
    /// The server workload's `chain_pem`.
    ServerChain,
    /// The server workload's `key_pem`.
    ServerKey,
    /// `mutual_tls`'s `client_trust_pem`.
    ClientTrust,
    /// `mutual_tls`'s `server_trust_pem`.
    ServerTrust,
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::SignerCert => "signer certificate",
            Self::SignerKey => "signer key",
            Self::CertChain => "cert-chain.pem",
            Self::RootBundle => "root-cert.pem bundle",
            Self::ClientChain => "client workload chain",
            Self::ClientKey => "client workload key",
            Self::ServerChain => "server workload chain",
            Self::ServerKey => "server workload key",
            Self::ClientTrust => "client trust bundle",
            Self::ServerTrust => "server trust bundle",
        })
    }
}

/// Why one side refused the other's certificate. The `Display` text is short enough for a
/// matrix cell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No path from the presented chain to any trusted root.
    #[error("unknown issuer (peer chain does not lead to a trusted root)")]
    UnknownIssuer,
    /// A certificate on the path had expired at verification time.
    #[error("certificate expired{}", window("not after", .not_after, .at))]
    Expired {
        /// The certificate's NotAfter, when known.
        not_after: Option<OffsetDateTime>,
        /// The time it was verified at.
        at: Option<OffsetDateTime>,
    },
    /// A certificate on the path was not yet valid at verification time.
    #[error("certificate not yet valid{}", window("not before", .not_before, .at))]
    NotYetValid {
        /// The certificate's NotBefore, when known.
        not_before: Option<OffsetDateTime>,
        /// The time it was verified at.
        at: Option<OffsetDateTime>,
    },
    /// The issuer chosen for a certificate did not sign it. With roots sharing one subject DN
    /// (Istio's Makefile default `O=Istio, CN=Root CA`) and an intermediate without authority
    /// key identifier, this is BoringSSL taking the first same-named root of the bundle
    /// (OpenSSL's `error 7 … certificate signature failure`).
    #[error("bad signature (the certificate's named issuer did not sign it)")]
    BadSignature,
    /// The chain verified, but the leaf's URI SAN is not the expected SPIFFE ID.
    #[error("spiffe id mismatch (expected {expected}, presented {})", list(.presented))]
    SpiffeIdMismatch {
        /// The SPIFFE ID the verifier wanted.
        expected: String,
        /// The URI SANs the leaf carries.
        presented: Vec<String>,
    },
    /// The leaf's extended key usage does not allow this TLS role.
    #[error("certificate not valid for tls {role} auth (extended key usage)")]
    WrongPurpose {
        /// The TLS role (client or server).
        role: Side,
    },
    /// A CA certificate sat in the leaf position.
    #[error("ca certificate presented as the leaf")]
    CaAsLeaf,
    /// An intermediate's path length constraint was exceeded.
    #[error("path length constraint violated")]
    PathLength,
    /// The peer sent no certificate.
    #[error("no certificate presented")]
    NoCertificate,
    /// A certificate could not be parsed.
    #[error("malformed certificate")]
    Malformed,
    /// A signature algorithm the verifier does not accept.
    #[error("unsupported signature algorithm")]
    UnsupportedAlgorithm,
    /// Anything else the verifier reported.
    #[error("invalid certificate: {0}")]
    Other(String),
}

/// Errors from issuing workloads and running handshakes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandshakeError {
    /// An input is not PEM.
    #[error("cannot read {input}: {reason}")]
    Pem {
        /// Which input.
        input: Input,
        /// What is wrong.
        reason: String,
    },
    /// An input holds no `CERTIFICATE` block.
    #[error("{input} holds no certificate")]
    NoCertificate {
        /// Which input.
        input: Input,
    },
    /// A `CERTIFICATE` block is not X.509.
    #[error("{input}: certificate #{index} is not valid x.509: {reason}")]
    Certificate {
        /// Which input.
        input: Input,
        /// Its position in the input.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A trust bundle certificate cannot be used as a trust anchor.
    #[error("{input}: certificate #{index} cannot be a trust anchor: {reason}")]
    TrustAnchor {
        /// Which input.
        input: Input,
        /// Its position in the input.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A private key input cannot be parsed or used.
    #[error("cannot use {input}: {reason}")]
    Key {
        /// Which input.
        input: Input,
        /// What is wrong.
        reason: String,
    },
    /// A private key does not belong to the certificate it is paired with.
    #[error("{input} does not match its certificate")]
    KeyMismatch {
        /// Which input.
        input: Input,
    },
    /// rcgen refused to build or sign the leaf.
    #[error("cannot issue the workload leaf: {reason}")]
    Issue {
        /// What is wrong.
        reason: String,
    },
    /// A TLS configuration could not be built.
    #[error("cannot configure the {side}: {reason}")]
    Config {
        /// Which end.
        side: Side,
        /// What is wrong.
        reason: String,
    },
    /// One side refused the other's certificate. Reads "client rejected server: …".
    #[error("{by} rejected {}: {reason}", .by.peer())]
    Rejected {
        /// The side that refused or aborted.
        by: Side,
        /// What is wrong.
        reason: Rejection,
    },
    /// One side aborted for a reason that is not about certificates.
    #[error("{by} aborted the handshake: {reason}")]
    Aborted {
        /// The side that refused or aborted.
        by: Side,
        /// What is wrong.
        reason: String,
    },
    /// The handshake stopped making progress without an error.
    #[error("handshake did not complete")]
    Incomplete,
}

impl HandshakeError {
    /// The side that refused the peer's certificate, if this is a certificate rejection.
    pub fn rejected_by(&self) -> Option<Side> {
        match self {
            Self::Rejected { by, .. } => Some(*by),
            _ => None,
        }
    }

    /// Why the peer's certificate was refused, if this is a certificate rejection.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Self::Rejected { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// ` (not after T, checked at N)`, or nothing when neither time is known.
fn window(label: &str, edge: &Option<OffsetDateTime>, at: &Option<OffsetDateTime>) -> String {
    match (edge, at) {
        (Some(edge), Some(at)) => format!(" ({label} {}, checked at {})", utc(*edge), utc(*at)),
        (Some(edge), None) => format!(" ({label} {})", utc(*edge)),
        (None, Some(at)) => format!(" (checked at {})", utc(*at)),
        (None, None) => String::new(),
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// RFC 3339 UTC, second precision, without needing `time`'s formatting feature.
fn utc(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Every `CERTIFICATE` block of `bytes`, checked to be X.509. Other block types are skipped,
/// as Go's `AppendCertsFromPEM` does; no certificate at all is an error.
fn parse_certs(bytes: &[u8], input: Input) -> Result<Vec<CertificateDer<'static>>, HandshakeError> {
    let blocks = pem::parse_many(bytes).map_err(|e| HandshakeError::Pem {
        input,
        reason: e.to_string(),
    })?;
    let certs: Vec<CertificateDer<'static>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| CertificateDer::from(b.into_contents()))
        .collect();
    if certs.is_empty() {
        return Err(HandshakeError::NoCertificate { input });
    }
    for (index, der) in certs.iter().enumerate() {
        x509_parser::parse_x509_certificate(der).map_err(|e| HandshakeError::Certificate {
            input,
            index,
            reason: e.to_string(),
        })?;
    }
    Ok(certs)
}

/// PEM text of one certificate, LF line endings.
fn cert_pem(der: &[u8]) -> String {
    let block = pem::Pem::new("CERTIFICATE", der.to_vec());
    pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_id_has_istio_shape() {
        let spec = LeafSpec {
            trust_domain: "cluster.local".into(),
            namespace: "shop".into(),
            service_account: "cart".into(),
        };
        assert_eq!(spec.spiffe_id(), "spiffe://cluster.local/ns/shop/sa/cart");
    }

    #[test]
    fn rejection_messages_read_as_matrix_cells() {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid timestamp");
        let not_after = at - time::Duration::hours(1);
        let err = HandshakeError::Rejected {
            by: Side::Client,
            reason: Rejection::UnknownIssuer,
        };
        assert_eq!(
            err.to_string(),
            "client rejected server: unknown issuer (peer chain does not lead to a trusted root)"
        );
        let err = HandshakeError::Rejected {
            by: Side::Server,
            reason: Rejection::Expired {
                not_after: Some(not_after),
                at: Some(at),
            },
        };
        assert_eq!(
            err.to_string(),
            "server rejected client: certificate expired \
             (not after 2027-01-15T07:00:00Z, checked at 2027-01-15T08:00:00Z)"
        );
        let reason = Rejection::SpiffeIdMismatch {
            expected: "spiffe://td/ns/a/sa/b".into(),
            presented: vec![],
        };
        assert_eq!(
            reason.to_string(),
            "spiffe id mismatch (expected spiffe://td/ns/a/sa/b, presented none)"
        );
        assert_eq!(
            Rejection::Expired {
                not_after: None,
                at: None
            }
            .to_string(),
            "certificate expired"
        );
    }

    #[test]
    fn pem_errors_name_the_input() {
        let err = parse_certs(b"no pem here", Input::ClientTrust).unwrap_err();
        assert_eq!(err.to_string(), "client trust bundle holds no certificate");
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = parse_certs(garbage, Input::RootBundle).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("root-cert.pem bundle: certificate #0 is not valid x.509"),
            "{err}"
        );
        let err = parse_certs(
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            Input::CertChain,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("cannot read cert-chain.pem"),
            "{err}"
        );
    }
}
