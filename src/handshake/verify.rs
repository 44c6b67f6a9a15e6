//! Certificate verifiers for both ends, verifying at an injected time.
//!
//! Chains are verified with `rustls-webpki` along the path Envoy's BoringSSL would build
//! ([`super::issuer`]): the intermediates it picks from what the peer sent (Envoy sends roots
//! too, duplicates included) and the one trust-bundle certificate it reaches, as the only
//! anchor. webpki alone would try every same-named candidate and accept paths BoringSSL never
//! takes. The client additionally requires the server leaf's URI SAN to be the expected SPIFFE
//! ID; the server takes any URI-only client leaf that chains.
//!
//! Verdicts leave here as rustls errors, so rustls sends the matching alert. Cases rustls has
//! no variant for travel as `CertificateError::Other` carrying a [`Rejection`], which
//! [`rejection_from`] recovers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{
    AlgorithmIdentifier, CertificateDer, FipsStatus, InvalidSignature, ServerName,
    SignatureVerificationAlgorithm, TrustAnchor, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::issuer::{self, Store};
use super::{HandshakeError, Input, Rejection, Side};

/// A trust bundle: every `CERTIFICATE` block as a webpki anchor (index for index), and the
/// trust store BoringSSL would build from the same blocks.
#[derive(Debug)]
pub(super) struct Trust {
    anchors: Vec<TrustAnchor<'static>>,
    store: Store,
}

/// The trust of a bundle's certificates, in bundle order.
pub(super) fn trust(
    certs: &[CertificateDer<'static>],
    input: Input,
) -> Result<Trust, HandshakeError> {
    let anchors = certs
        .iter()
        .enumerate()
        .map(|(index, der)| {
            webpki::anchor_from_trusted_cert(der)
                .map(|a| a.to_owned())
                .map_err(|e| HandshakeError::TrustAnchor {
                    input,
                    index,
                    reason: e.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(Trust {
        anchors,
        store: Store::new(certs),
    })
}

/// Chain verdicts shared by many handshakes.
///
/// Path validation is a pure function of the presented chain, the trust bundle (its bytes,
/// order included: BoringSSL's issuer choice depends on it), the time and the peer's role, so
/// when a matrix presents the same chain to the same bundle again the first verdict is reused;
/// and a signature check is a pure function of the algorithm, the public key, the signed bytes
/// and the signature, so the certificate signatures a new path shares with earlier ones (the
/// same leaf under the same intermediate) are checked once. Everything else in a real
/// handshake (key exchange, both CertificateVerify signatures over the transcript, Finished,
/// application data) still runs.
#[derive(Debug, Default)]
pub struct Verdicts {
    chains: Mutex<HashMap<[u8; 32], Result<(), rustls::Error>>>,
    signatures: Mutex<HashMap<[u8; 32], bool>>,
    /// What issuer choice reads from each certificate, parsed once.
    facts: issuer::FactsCache,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Verdicts {
    fn get(&self, key: &[u8; 32]) -> Option<Result<(), rustls::Error>> {
        locked(&self.chains).get(key).cloned()
    }

    fn put(&self, key: [u8; 32], verdict: Result<(), rustls::Error>) {
        locked(&self.chains).insert(key, verdict);
    }
}

/// A signature algorithm whose verdicts are kept in [`Verdicts`]: path building checks the
/// same certificate signature again for every bundle a chain meets.
#[derive(Debug)]
struct RememberedAlgorithm {
    inner: &'static dyn SignatureVerificationAlgorithm,
    verdicts: Arc<Verdicts>,
}

impl SignatureVerificationAlgorithm for RememberedAlgorithm {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key = digest([
            self.inner.public_key_alg_id().as_ref(),
            self.inner.signature_alg_id().as_ref(),
            public_key,
            message,
            signature,
        ]);
        let known = locked(&self.verdicts.signatures).get(&key).copied();
        let valid = known.unwrap_or_else(|| {
            let valid = self
                .inner
                .verify_signature(public_key, message, signature)
                .is_ok();
            locked(&self.verdicts.signatures).insert(key, valid);
            valid
        });
        if valid { Ok(()) } else { Err(InvalidSignature) }
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.public_key_alg_id()
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.signature_alg_id()
    }

    fn fips_status(&self) -> FipsStatus {
        self.inner.fips_status()
    }
}

/// SHA-256 over length-prefixed parts: the key of every memo here.
pub(super) fn digest<'p>(parts: impl IntoIterator<Item = &'p [u8]>) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// Where a [`Chain`] memoizes its verdicts: the shared table, and a digest naming the trust
/// anchors (the bundle they came from).
#[derive(Debug, Clone)]
pub(super) struct Memo {
    pub(super) verdicts: Arc<Verdicts>,
    pub(super) anchors_id: [u8; 32],
}

/// Shared chain check: `end_entity` along BoringSSL's path through `intermediates` to the
/// trust bundle, at `now`, for the TLS role `role` (the peer's role, whose EKU is required).
#[derive(Debug)]
struct Chain {
    trust: Trust,
    now: UnixTime,
    algs: WebPkiSupportedAlgorithms,
    /// `algs` with remembered verdicts, for path building.
    remembered: Vec<RememberedAlgorithm>,
    memo: Memo,
}

impl Chain {
    fn new(trust: Trust, now: UnixTime, algs: WebPkiSupportedAlgorithms, memo: Memo) -> Self {
        let remembered = algs
            .all
            .iter()
            .map(|inner| RememberedAlgorithm {
                inner: *inner,
                verdicts: memo.verdicts.clone(),
            })
            .collect();
        Self {
            trust,
            now,
            algs,
            remembered,
            memo,
        }
    }

    /// The chain check, then `identity` (a further check of the leaf alone, named by
    /// `identity_key`), remembered together.
    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        role: Side,
        identity_key: &[u8],
        identity: impl FnOnce() -> Result<(), rustls::Error>,
    ) -> Result<(), rustls::Error> {
        let memo = &self.memo;
        // The time is the cache's one `now`, so it is not part of the key.
        let role_byte = [u8::from(role == Side::Server)];
        let key = digest(
            [&memo.anchors_id[..], &role_byte[..], identity_key]
                .into_iter()
                .chain(
                    std::iter::once(end_entity)
                        .chain(intermediates)
                        .map(|d| d.as_ref()),
                ),
        );
        if let Some(verdict) = memo.verdicts.get(&key) {
            return verdict;
        }
        let verdict = self
            .check(end_entity, intermediates, role)
            .and_then(|()| identity());
        memo.verdicts.put(key, verdict.clone());
        verdict
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        role: Side,
    ) -> Result<(), rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(pki_error)?;
        let usage = match role {
            Side::Server => webpki::KeyUsage::server_auth(),
            Side::Client => webpki::KeyUsage::client_auth(),
        };
        let algs: Vec<&dyn SignatureVerificationAlgorithm> = self
            .remembered
            .iter()
            .map(|a| a as &dyn SignatureVerificationAlgorithm)
            .collect();
        // Only the path BoringSSL builds is offered: its intermediates, and as the one anchor
        // the bundle certificate it reached (none: no path, an unknown issuer).
        let path = issuer::choose(
            end_entity,
            intermediates,
            &self.trust.store,
            &self.memo.verdicts.facts,
        );
        let chosen: Vec<CertificateDer<'_>> = path
            .intermediates
            .iter()
            .map(|&i| CertificateDer::from(intermediates[i].as_ref()))
            .collect();
        let anchors = match path.anchor {
            Some(i) => std::slice::from_ref(&self.trust.anchors[i]),
            None => &[],
        };
        cert.verify_for_usage(&algs, anchors, &chosen, self.now, usage, None, None)
            .map(|_| ())
            .map_err(|e| match e {
                webpki::Error::RequiredEkuNotFoundContext(_) => {
                    rejected(Rejection::WrongPurpose { role })
                }
                #[allow(deprecated)]
                webpki::Error::RequiredEkuNotFound => rejected(Rejection::WrongPurpose { role }),
                other => pki_error(other),
            })
    }
}

/// The client's view of the server: chain to `client_trust`, then the SPIFFE ID.
#[derive(Debug)]
pub(super) struct SpiffeServerVerifier {
    chain: Chain,
    expected_id: String,
}

impl SpiffeServerVerifier {
    pub(super) fn new(
        trust: Trust,
        now: UnixTime,
        algs: WebPkiSupportedAlgorithms,
        expected_id: &str,
        memo: Memo,
    ) -> Self {
        Self {
            chain: Chain::new(trust, now, algs, memo),
            expected_id: expected_id.to_owned(),
        }
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.chain.verify(
            end_entity,
            intermediates,
            Side::Server,
            self.expected_id.as_bytes(),
            || {
                let presented = uri_sans(end_entity)?;
                if presented.contains(&self.expected_id) {
                    Ok(())
                } else {
                    Err(rejected(Rejection::SpiffeIdMismatch {
                        expected: self.expected_id.clone(),
                        presented,
                    }))
                }
            },
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.chain.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.chain.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.chain.algs.supported_schemes()
    }
}

/// The server's view of the client: a certificate is required and must chain to
/// `server_trust`. URI-only leaves are fine; the identity is not constrained.
#[derive(Debug)]
pub(super) struct MeshClientVerifier {
    chain: Chain,
}

impl MeshClientVerifier {
    pub(super) fn new(
        trust: Trust,
        now: UnixTime,
        algs: WebPkiSupportedAlgorithms,
        memo: Memo,
    ) -> Self {
        Self {
            chain: Chain::new(trust, now, algs, memo),
        }
    }
}

impl ClientCertVerifier for MeshClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Envoy sends no CA hints by default, and the client always offers its one cert.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Any identity is accepted: nothing beyond the chain.
        self.chain
            .verify(end_entity, intermediates, Side::Client, &[], || Ok(()))?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.chain.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.chain.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.chain.algs.supported_schemes()
    }
}

/// Every URI SAN of a leaf.
fn uri_sans(der: &CertificateDer<'_>) -> Result<Vec<String>, rustls::Error> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    Ok(san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some((*uri).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// A verdict with no exact rustls variant, carried through `CertificateError::Other`.
fn rejected(reason: Rejection) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(reason))))
}

/// webpki's error as the rustls error the stock verifiers would give (so rustls picks the
/// same alert), with webpki's extra cases carried as a [`Rejection`].
fn pki_error(e: webpki::Error) -> rustls::Error {
    use webpki::Error as E;
    let cert_err = match e {
        E::BadDer | E::BadDerTime | E::TrailingData(_) => CertificateError::BadEncoding,
        E::CertNotValidYet { time, not_before } => {
            CertificateError::NotValidYetContext { time, not_before }
        }
        E::CertExpired { time, not_after } => CertificateError::ExpiredContext { time, not_after },
        E::InvalidCertValidity => CertificateError::Expired,
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        #[allow(deprecated)]
        E::UnsupportedSignatureAlgorithm
        | E::UnsupportedSignatureAlgorithmForPublicKey
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            return rejected(Rejection::UnsupportedAlgorithm);
        }
        E::CaUsedAsEndEntity => return rejected(Rejection::CaAsLeaf),
        E::PathLenConstraintViolated => return rejected(Rejection::PathLength),
        other => return rejected(Rejection::Other(other.to_string())),
    };
    rustls::Error::InvalidCertificate(cert_err)
}

/// The [`Rejection`] a rustls certificate error stands for.
pub(super) fn rejection_from(e: &CertificateError) -> Rejection {
    match e {
        CertificateError::UnknownIssuer => Rejection::UnknownIssuer,
        CertificateError::ExpiredContext { time, not_after } => Rejection::Expired {
            not_after: datetime(*not_after),
            at: datetime(*time),
        },
        CertificateError::Expired => Rejection::Expired {
            not_after: None,
            at: None,
        },
        CertificateError::NotValidYetContext { time, not_before } => Rejection::NotYetValid {
            not_before: datetime(*not_before),
            at: datetime(*time),
        },
        CertificateError::NotValidYet => Rejection::NotYetValid {
            not_before: None,
            at: None,
        },
        CertificateError::BadSignature => Rejection::BadSignature,
        CertificateError::BadEncoding => Rejection::Malformed,
        CertificateError::Other(OtherError(inner)) => match inner.downcast_ref::<Rejection>() {
            Some(reason) => reason.clone(),
            None => Rejection::Other(inner.to_string()),
        },
        other => Rejection::Other(other.to_string()),
    }
}

/// The injected clock as rustls time. Instants before 1970 clamp to the epoch.
pub(super) fn unix_time(now: OffsetDateTime) -> UnixTime {
    let secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs))
}

fn datetime(t: UnixTime) -> Option<OffsetDateTime> {
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_survives_the_trip_through_rustls() {
        let cases = [
            Rejection::SpiffeIdMismatch {
                expected: "spiffe://a".into(),
                presented: vec!["spiffe://b".into()],
            },
            Rejection::CaAsLeaf,
            Rejection::WrongPurpose { role: Side::Client },
        ];
        for reason in cases {
            let rustls::Error::InvalidCertificate(e) = rejected(reason.clone()) else {
                panic!("not a certificate error");
            };
            assert_eq!(rejection_from(&e), reason);
        }
        let rustls::Error::InvalidCertificate(e) = pki_error(webpki::Error::CertExpired {
            time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(7200)),
            not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(3600)),
        }) else {
            panic!("not a certificate error");
        };
        assert_eq!(
            rejection_from(&e),
            Rejection::Expired {
                not_after: OffsetDateTime::from_unix_timestamp(3600).ok(),
                at: OffsetDateTime::from_unix_timestamp(7200).ok(),
            }
        );
        assert_eq!(
            rejection_from(&CertificateError::UnknownIssuer),
            Rejection::UnknownIssuer
        );
    }

    #[test]
    fn time_before_epoch_clamps() {
        let t = OffsetDateTime::from_unix_timestamp(-5).expect("valid timestamp");
        assert_eq!(unix_time(t).as_secs(), 0);
    }
}
