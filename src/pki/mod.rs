//! Certificates and keys: generating CAs the way Istio's Makefiles do (with the corrections
//! the facts call for), importing existing ones, and summarising any certificate.
//!
//! Private keys only ever live in [`PrivateKeyPem`], which has no `Debug`, zeroizes on drop and
//! is never printed.

mod generate;
mod inspect;
mod key;

pub use generate::{
    BACKDATE, CaIssuer, GenerateSpec, Subject, generate_key, sign_intermediate, sign_root,
};
pub use inspect::{CertSummary, KeyKind, inspect_der, inspect_pem};
pub use key::{WANTED_KEY, key_problem};

use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

/// Key algorithms a plan may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Algorithm {
    /// RSA with a 2048-bit modulus.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    #[serde(rename = "rsa-4096")]
    Rsa4096,
    /// ECDSA on NIST P-256, signing with SHA-256.
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// ECDSA on NIST P-384, signing with SHA-384.
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
}

impl Algorithm {
    /// Every name a plan may write, for the help line of an unknown algorithm.
    pub const NAMES: &'static [&'static str] = &[
        "rsa-2048",
        "rsa-3072",
        "rsa-4096",
        "ecdsa-p256",
        "ecdsa-p384",
    ];

    /// Reads a plan's algorithm name; `None` for an unknown one.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "rsa-2048" => Self::Rsa2048,
            "rsa-3072" => Self::Rsa3072,
            "rsa-4096" => Self::Rsa4096,
            "ecdsa-p256" => Self::EcdsaP256,
            "ecdsa-p384" => Self::EcdsaP384,
            _ => return None,
        })
    }

    /// The name a plan writes for this algorithm (`ecdsa-p256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
        }
    }
}

/// A PEM-encoded private key. No `Debug`, no `Display`, wiped on drop.
#[derive(Clone)]
pub struct PrivateKeyPem(Zeroizing<String>);

impl PrivateKeyPem {
    /// Wraps PEM text of a private key so it is wiped on drop.
    pub fn new(pem: String) -> Self {
        Self(Zeroizing::new(pem))
    }
    /// The PEM text. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Parses the key for signing with rcgen.
    pub fn key_pair(&self) -> Result<rcgen::KeyPair, PkiError> {
        rcgen::KeyPair::from_pem(&self.0).map_err(|e| PkiError::KeyParse {
            reason: e.to_string(),
        })
    }
}

/// A CA certificate with (optionally) its key.
#[derive(Clone)]
pub struct CaMaterial {
    /// Exactly one `CERTIFICATE` PEM block, as it will be written.
    pub cert_pem: String,
    /// The same certificate as DER.
    pub der: Vec<u8>,
    /// The private key, when one was generated or supplied.
    pub key: Option<PrivateKeyPem>,
}

impl CaMaterial {
    /// Reads a single-certificate PEM; fails on zero or several certificates.
    pub fn from_pem(cert_pem: String, key: Option<PrivateKeyPem>) -> Result<Self, PkiError> {
        let ders = split_certificates(cert_pem.as_bytes())?;
        let [der] =
            <[Vec<u8>; 1]>::try_from(ders).map_err(|v| PkiError::NotSingle { count: v.len() })?;
        Ok(Self { cert_pem, der, key })
    }
    /// The inspected facts of the certificate.
    pub fn summary(&self) -> CertSummary {
        inspect_der(&self.der).expect("certificates in CaMaterial were parsed on creation")
    }
    /// SHA-256 of the certificate's DER, in lowercase hex.
    pub fn fingerprint(&self) -> String {
        sha256_hex(&self.der)
    }
}

/// Errors from certificate and key handling.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The text is not valid PEM.
    #[error("PEM is malformed: {reason}")]
    Pem {
        /// What the PEM parser reported.
        reason: String,
    },
    /// A PEM block is something other than a certificate (a key, a CSR).
    #[error("PEM block {index} is a `{label}`, expected `CERTIFICATE`")]
    NotCertificate {
        /// 1-based position of the block in the file.
        index: usize,
        /// The block's PEM label.
        label: String,
    },
    /// The bundle holds no complete certificate.
    #[error("no complete PEM certificate found (is the file empty or cut short?)")]
    NoCertificate,
    /// A single certificate was expected but the PEM holds another number.
    #[error("expected exactly one certificate, found {count}")]
    NotSingle {
        /// How many certificates were found.
        count: usize,
    },
    /// A certificate block is not valid X.509.
    #[error("certificate {index} cannot be parsed: {reason}")]
    CertParse {
        /// 1-based position of the certificate in the file.
        index: usize,
        /// What the X.509 parser reported.
        reason: String,
    },
    /// The private key cannot be parsed or does not fit its certificate.
    #[error("private key cannot be used: {reason}")]
    KeyParse {
        /// What the key parser reported.
        reason: String,
    },
    /// rcgen could not create or sign a certificate.
    #[error("cannot generate or sign a certificate: {reason}")]
    Generate {
        /// What rcgen reported.
        reason: String,
    },
    /// The operating system's random source failed (serials could not be drawn).
    #[error("system random number generator failed")]
    Random,
}

/// Splits a PEM bundle into DER certificates, refusing any block that is not a certificate.
pub fn split_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, PkiError> {
    let blocks = pem::parse_many(bytes).map_err(|e| PkiError::Pem {
        reason: e.to_string(),
    })?;
    if blocks.is_empty() {
        return Err(PkiError::NoCertificate);
    }
    let mut out = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.into_iter().enumerate() {
        if block.tag() != "CERTIFICATE" {
            return Err(PkiError::NotCertificate {
                index: i + 1,
                label: block.tag().to_string(),
            });
        }
        X509Certificate::from_der(block.contents()).map_err(|e| PkiError::CertParse {
            index: i + 1,
            reason: e.to_string(),
        })?;
        out.push(block.into_contents());
    }
    Ok(out)
}

/// Encodes one DER certificate as PEM with `\n` line endings.
pub fn der_to_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// SHA-256 of `bytes` in lowercase hex: the fingerprints in outputs and reports.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Does `key` belong to the certificate `cert_der`?
pub fn key_matches_cert(key: &PrivateKeyPem, cert_der: &[u8]) -> Result<bool, PkiError> {
    use rcgen::PublicKeyData;
    let pair = key.key_pair()?;
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(|e| PkiError::CertParse {
        index: 1,
        reason: e.to_string(),
    })?;
    Ok(pair.subject_public_key_info() == cert.public_key().raw)
}

/// Is `child_der` signed by the key of `issuer_der`?
pub fn is_signed_by(child_der: &[u8], issuer_der: &[u8]) -> bool {
    let (Ok((_, child)), Ok((_, issuer))) = (
        X509Certificate::from_der(child_der),
        X509Certificate::from_der(issuer_der),
    ) else {
        return false;
    };
    child.issuer() == issuer.subject() && child.verify_signature(Some(issuer.public_key())).is_ok()
}

/// Does `cert_der` chain to one of `roots`: signed by a root, or by a certificate of `via`
/// that itself chains to one (every link a verified signature, at most eight hops)?
pub fn chains_to(cert_der: &[u8], via: &[Vec<u8>], roots: &[Vec<u8>]) -> bool {
    chain_hops(cert_der, via, roots, 7).is_ok()
}

/// Walks from `cert_der` to a root: at each certificate, a root that signed it ends the walk
/// (`Ok(signatures followed)`), else the next is a different certificate of `via` that signed
/// it, at most `max_via` times. `Err` holds the certificate no root (and no `via`) signed.
pub fn chain_hops<'a>(
    cert_der: &'a [u8],
    via: &'a [Vec<u8>],
    roots: &[Vec<u8>],
    max_via: usize,
) -> Result<usize, &'a [u8]> {
    let mut cur = cert_der;
    for hops in 0..=max_via {
        if roots.iter().any(|r| is_signed_by(cur, r)) {
            return Ok(hops + 1);
        }
        if hops == max_via {
            break;
        }
        match via
            .iter()
            .find(|c| c.as_slice() != cur && is_signed_by(cur, c))
        {
            Some(next) => cur = next,
            None => break,
        }
    }
    Err(cur)
}

/// 16 random bytes with the top bit cleared (a positive DER INTEGER) and never all zero.
pub(crate) fn random_serial() -> Result<rcgen::SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| PkiError::Random)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(rcgen::SerialNumber::from_slice(&bytes))
}
