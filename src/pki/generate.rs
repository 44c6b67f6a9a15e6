//! Generating CA certificates with rcgen.
//!
//! Follows Istio's `tools/certs` conventions (facts §5) with the corrections of facts §9:
//! every field is set explicitly (rcgen's defaults are 1975→4096 and a key-derived serial),
//! random serials, SKID on every CA and AKID on intermediates, `CA:true, pathlen:0` and the
//! istiod DNS SAN on intermediates, no EKU on any CA, and NotBefore backdated five minutes
//! against clock skew.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, RsaKeySize,
    SanType,
};
use time::OffsetDateTime;

use super::{Algorithm, CaMaterial, PkiError, PrivateKeyPem, random_serial};
use crate::duration::Span;

/// How far NotBefore is moved into the past.
pub const BACKDATE: Span = Span::from_mins(5);

/// Everything needed to generate one CA.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GenerateSpec {
    /// Key algorithm of the new CA.
    pub algorithm: Algorithm,
    /// How long after (un-backdated) NotBefore the CA stays valid.
    pub validity: Span,
    /// The CA's distinguished name.
    pub subject: Subject,
}

/// A distinguished name, in the order it is written: O, OU, CN, L.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Subject {
    /// `O` (organisation).
    pub organization: Option<String>,
    /// `OU` (organisational unit).
    pub organizational_unit: Option<String>,
    /// `CN`: the CA's name, such as `Intermediate CA`.
    pub common_name: Option<String>,
    /// `L`: the cluster name, for generated intermediates.
    pub locality: Option<String>,
}

impl Subject {
    fn to_dn(&self) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        if let Some(v) = &self.organization {
            dn.push(DnType::OrganizationName, v.as_str());
        }
        if let Some(v) = &self.organizational_unit {
            dn.push(DnType::OrganizationalUnitName, v.as_str());
        }
        if let Some(v) = &self.common_name {
            dn.push(DnType::CommonName, v.as_str());
        }
        if let Some(v) = &self.locality {
            dn.push(DnType::LocalityName, v.as_str());
        }
        dn
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = [
            ("O", &self.organization),
            ("OU", &self.organizational_unit),
            ("CN", &self.common_name),
            ("L", &self.locality),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
        f.write_str(&parts.join(", "))
    }
}

/// Generates a key pair for `algorithm`. This is the slow step (hundreds of milliseconds for
/// RSA-4096, microseconds for ECDSA) and needs nothing else, so callers run it in parallel.
pub fn generate_key(algorithm: Algorithm) -> Result<KeyPair, PkiError> {
    let generated = match algorithm {
        Algorithm::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
        Algorithm::Rsa3072 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072),
        Algorithm::Rsa4096 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096),
        Algorithm::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
        Algorithm::EcdsaP384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384),
    };
    generated.map_err(|e| PkiError::Generate {
        reason: e.to_string(),
    })
}

/// An issuing CA parsed once (certificate and private key), to sign many intermediates.
pub struct CaIssuer {
    issuer: Issuer<'static, KeyPair>,
}

impl CaIssuer {
    /// Parses `ca`'s certificate and key. Fails when `ca` has no private key.
    pub fn new(ca: &CaMaterial) -> Result<Self, PkiError> {
        let key = ca
            .key
            .as_ref()
            .ok_or_else(|| PkiError::KeyParse {
                reason: "the issuing CA has no private key".into(),
            })?
            .key_pair()?;
        Self::with_key(ca, key)
    }

    /// Uses `key` (the key pair of `ca`, already at hand) instead of parsing `ca`'s PEM key.
    pub fn with_key(ca: &CaMaterial, key: KeyPair) -> Result<Self, PkiError> {
        let issuer = Issuer::from_ca_cert_der(&ca.der.clone().into(), key).map_err(generate_err)?;
        Ok(Self { issuer })
    }
}

fn generate_err(e: rcgen::Error) -> PkiError {
    PkiError::Generate {
        reason: e.to_string(),
    }
}

fn ca_params(spec: &GenerateSpec, now: OffsetDateTime) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = spec.subject.to_dn();
    params.not_before = now
        .checked_sub(BACKDATE.to_time())
        .ok_or_else(|| PkiError::Generate {
            reason: format!("{} is too early for a certificate's NotBefore", now.date()),
        })?;
    // Plan validation keeps validities inside X.509's dates; a date past them is an error
    // here too, never an overflow.
    params.not_after = spec.validity.after(now).ok_or_else(|| PkiError::Generate {
        reason: format!(
            "a validity of {} from {} ends after 9999-12-31, the last date X.509 can express",
            spec.validity,
            now.date()
        ),
    })?;
    params.serial_number = Some(random_serial()?);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.extended_key_usages = Vec::new();
    Ok(params)
}

fn material(cert: &rcgen::Certificate, key: &KeyPair) -> Result<CaMaterial, PkiError> {
    let key_pem = PrivateKeyPem::new(key.serialize_pem());
    CaMaterial::from_pem(cert.pem().replace("\r\n", "\n"), Some(key_pem))
}

/// Self-signs a root CA certificate for `key` (made by [`generate_key`] for `spec.algorithm`).
pub fn sign_root(
    spec: &GenerateSpec,
    key: &KeyPair,
    now: OffsetDateTime,
) -> Result<CaMaterial, PkiError> {
    let mut params = ca_params(spec, now)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(key).map_err(generate_err)?;
    material(&cert, key)
}

/// Signs an intermediate CA certificate for `key` (made by [`generate_key`] for
/// `spec.algorithm`) with `issuer`, carrying the SAN `istiod.<istio_namespace>.svc`.
pub fn sign_intermediate(
    spec: &GenerateSpec,
    key: &KeyPair,
    issuer: &CaIssuer,
    istio_namespace: &str,
    now: OffsetDateTime,
) -> Result<CaMaterial, PkiError> {
    let mut params = ca_params(spec, now)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.use_authority_key_identifier_extension = true;
    let san = format!("istiod.{istio_namespace}.svc");
    params.subject_alt_names = vec![SanType::DnsName(san.try_into().map_err(generate_err)?)];
    let cert = params
        .signed_by(key, &issuer.issuer)
        .map_err(generate_err)?;
    material(&cert, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plan validation refuses such validities; generation refuses them too, never panics.
    #[test]
    fn a_validity_past_the_end_of_x509_time_is_an_error() {
        let spec = GenerateSpec {
            algorithm: Algorithm::EcdsaP256,
            validity: Span::from_days(4_000_000),
            subject: Subject::default(),
        };
        let key = generate_key(spec.algorithm).unwrap();
        let now = time::macros::datetime!(2027-01-01 0:00 UTC);
        let Err(e) = sign_root(&spec, &key, now) else {
            panic!("a root valid past 9999-12-31 was signed");
        };
        assert!(e.to_string().contains("ends after 9999-12-31"), "{e}");
        let early = time::macros::datetime!(-9999-01-01 0:00 UTC);
        assert!(
            sign_root(
                &GenerateSpec {
                    validity: Span::from_days(1),
                    ..spec
                },
                &key,
                early
            )
            .is_err()
        );
    }
}
