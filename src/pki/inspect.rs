//! One-line facts about a certificate, for `inspect`, `plan`, ROLLOUT.md and snapshots.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::{PkiError, hex, sha256_hex};

/// Key type and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// An RSA key.
    Rsa {
        /// Modulus size in bits.
        bits: usize,
    },
    /// An elliptic-curve key.
    Ec {
        /// The curve's name (`P-256`).
        curve: String,
    },
    /// Any other key type.
    Other {
        /// The key algorithm's OID or name.
        algorithm: String,
    },
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rsa { bits } => write!(f, "RSA {bits}"),
            Self::Ec { curve } => write!(f, "EC {curve}"),
            Self::Other { algorithm } => write!(f, "{algorithm}"),
        }
    }
}

/// What a person checks about a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertSummary {
    /// Subject distinguished name, as x509-parser prints it (`CN=…, O=…`).
    pub subject: String,
    /// Issuer distinguished name: equal to `subject` for a root.
    pub issuer: String,
    /// Serial number as colon-separated hex.
    pub serial: String,
    /// Start of the validity window.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of the validity window.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Key type and size.
    pub key: KeyKind,
    /// `CA:true` in basic constraints.
    pub is_ca: bool,
    /// The basic-constraints path length, when set.
    pub path_len: Option<u32>,
    /// The key usage includes `keyCertSign` (may sign certificates).
    pub key_cert_sign: bool,
    /// Extended key usages, empty when the extension is absent.
    pub ext_key_usage: Vec<String>,
    /// DNS, URI and IP subject alternative names.
    pub subject_alt_names: Vec<String>,
    /// Subject key identifier, hex.
    pub subject_key_id: Option<String>,
    /// Authority key identifier, hex: must match the issuer's SKID.
    pub authority_key_id: Option<String>,
    /// Issued by itself, as a root is.
    pub self_signed: bool,
    /// SHA-256 fingerprint of the DER, lowercase hex.
    pub sha256: String,
}

impl CertSummary {
    /// `true` when the certificate is inside its validity window at `at`.
    pub fn valid_at(&self, at: OffsetDateTime) -> bool {
        self.not_before <= at && at <= self.not_after
    }

    /// The `inspect` text block.
    pub fn to_text(&self) -> String {
        let fmt = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<13} {v}\n"));
        line("subject", self.subject.clone());
        line("issuer", self.issuer.clone());
        line("serial", self.serial.clone());
        line(
            "valid",
            format!("{} → {}", fmt(self.not_before), fmt(self.not_after)),
        );
        line("key", self.key.to_string());
        let ca = match (self.is_ca, self.path_len) {
            (true, Some(n)) => format!("CA (pathlen {n})"),
            (true, None) => "CA".to_string(),
            (false, _) => "not a CA".to_string(),
        };
        line("basic", ca);
        if !self.ext_key_usage.is_empty() {
            line("ext key use", self.ext_key_usage.join(", "));
        }
        if !self.subject_alt_names.is_empty() {
            line("SANs", self.subject_alt_names.join(", "));
        }
        line(
            "SKID",
            self.subject_key_id.clone().unwrap_or_else(|| "-".into()),
        );
        line(
            "AKID",
            self.authority_key_id.clone().unwrap_or_else(|| "-".into()),
        );
        line("sha256", self.sha256.clone());
        out
    }
}

/// The name of an elliptic curve, from its OID (dotted).
pub(super) fn curve_name(oid: &str) -> String {
    match oid {
        "1.2.840.10045.3.1.7" => "P-256".into(),
        "1.3.132.0.34" => "P-384".into(),
        "1.3.132.0.35" => "P-521".into(),
        "1.3.132.0.10" => "secp256k1".into(),
        "" => "unnamed curve".into(),
        other => format!("curve {other}"),
    }
}

pub(super) fn rsa_bits(modulus: &[u8]) -> usize {
    let trimmed: &[u8] = match modulus.iter().position(|b| *b != 0) {
        Some(i) => &modulus[i..],
        None => return 0,
    };
    trimmed.len() * 8 - trimmed[0].leading_zeros() as usize
}

/// Summarises one DER certificate.
pub fn inspect_der(der: &[u8]) -> Result<CertSummary, PkiError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| PkiError::CertParse {
        index: 1,
        reason: e.to_string(),
    })?;
    let key = match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => KeyKind::Rsa {
            bits: rsa_bits(rsa.modulus),
        },
        Ok(PublicKey::EC(_)) => {
            // Named by the curve's OID: the key size alone cannot tell secp256k1 from P-256.
            let oid = cert
                .public_key()
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            KeyKind::Ec {
                curve: curve_name(&oid),
            }
        }
        _ => KeyKind::Other {
            algorithm: cert.public_key().algorithm.algorithm.to_id_string(),
        },
    };
    let (is_ca, path_len) = match cert.basic_constraints() {
        Ok(Some(bc)) => (bc.value.ca, bc.value.path_len_constraint),
        _ => (false, None),
    };
    let key_cert_sign = matches!(cert.key_usage(), Ok(Some(ku)) if ku.value.key_cert_sign());
    let mut ext_key_usage = Vec::new();
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        let e = eku.value;
        for (on, name) in [
            (e.any, "any"),
            (e.server_auth, "serverAuth"),
            (e.client_auth, "clientAuth"),
            (e.code_signing, "codeSigning"),
            (e.email_protection, "emailProtection"),
            (e.time_stamping, "timeStamping"),
            (e.ocsp_signing, "ocspSigning"),
        ] {
            if on {
                ext_key_usage.push(name.to_string());
            }
        }
        ext_key_usage.extend(e.other.iter().map(|o| o.to_id_string()));
    }
    let mut subject_alt_names = Vec::new();
    let mut subject_key_id = None;
    let mut authority_key_id = None;
    for ext in cert.iter_extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                subject_alt_names.extend(san.general_names.iter().map(|n| n.to_string()));
            }
            ParsedExtension::SubjectKeyIdentifier(id) => subject_key_id = Some(hex(id.0)),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key_id = aki.key_identifier.as_ref().map(|id| hex(id.0));
            }
            _ => {}
        }
    }
    let self_signed = cert.subject() == cert.issuer() && cert.verify_signature(None).is_ok();
    Ok(CertSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string(),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        key,
        is_ca,
        path_len,
        key_cert_sign,
        ext_key_usage,
        subject_alt_names,
        subject_key_id,
        authority_key_id,
        self_signed,
        sha256: sha256_hex(der),
    })
}

/// Every certificate of a PEM file, and a note for each block that is not one.
pub fn inspect_pem(bytes: &[u8]) -> Result<(Vec<CertSummary>, Vec<String>), PkiError> {
    let blocks = pem::parse_many(bytes).map_err(|e| PkiError::Pem {
        reason: e.to_string(),
    })?;
    let mut summaries = Vec::new();
    let mut skipped = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        if b.tag() == "CERTIFICATE" {
            summaries.push(inspect_der(b.contents()).map_err(|e| PkiError::CertParse {
                index: i + 1,
                reason: e.to_string(),
            })?);
        } else {
            skipped.push(format!("block {} ({}) not shown", i + 1, b.tag()));
        }
    }
    if summaries.is_empty() {
        return Err(PkiError::NoCertificate);
    }
    Ok((summaries, skipped))
}

#[cfg(test)]
mod tests {
    use super::rsa_bits;

    #[test]
    fn rsa_bits_ignores_leading_zero_byte() {
        let mut m = vec![0u8];
        m.push(0xc0);
        m.extend([0u8; 511]);
        assert_eq!(rsa_bits(&m), 4096);
    }
}
