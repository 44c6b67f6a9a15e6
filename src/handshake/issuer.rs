//! The certification path Envoy's BoringSSL builds, so that the verifier judges that path and
//! no other.
//!
//! rustls-webpki tries every certificate whose subject names the issuer and backtracks when a
//! signature fails; BoringSSL does not. `X509_verify_cert` (crypto/x509/x509_vfy.cc) walks up
//! from the leaf and, for each certificate, takes the **first** candidate that
//! `X509_check_issued` (v3_purp.cc) accepts: its subject equals the certificate's issuer name
//! (`X509_NAME_cmp`, over the canonical form: strings as UTF-8, ASCII lower-cased, runs of
//! whitespace collapsed), the certificate's authority key identifier, where present, matches
//! it (key id against its subject key id, serial, issuer name), and its key usage, if any,
//! allows certificate signing. The trust store is asked first (`X509_STORE_CTX_get1_issuer`,
//! x509_lu.cc: the bundle's certificates in bundle order, exact duplicates dropped), then the
//! certificates the peer sent, in the order sent. Envoy sets `X509_V_FLAG_PARTIAL_CHAIN`, so the
//! path ends at the first trust-store certificate it reaches. Signatures are checked only after
//! the path is fixed: a same-named look-alike root listed before the real one breaks every path
//! through an intermediate without an authority key identifier (`error 7 … certificate
//! signature failure`).
//!
//! No crate models BoringSSL's issuer choice, so it is written here over x509-parser. It only
//! *chooses*: the chosen path is then handed to rustls-webpki, which decides trust.
//! Not modelled: a leaf that is itself in the trust bundle, and trust-bundle certificates above
//! the first one reached (bundles here hold roots).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// A name in BoringSSL's canonical form: per RDN, its (attribute type, value) pairs, sorted.
type Name = Vec<Vec<(Vec<u8>, Vec<u8>)>>;

/// What issuer choice reads from one certificate.
#[derive(Debug)]
struct Facts {
    subject: Name,
    issuer: Name,
    skid: Option<Vec<u8>>,
    akid: Option<Akid>,
    /// Serial number without leading zero bytes.
    serial: Vec<u8>,
    /// No key usage extension, or one with keyCertSign.
    may_sign_certs: bool,
}

#[derive(Debug)]
struct Akid {
    key_id: Option<Vec<u8>>,
    serial: Option<Vec<u8>>,
    /// The first directory name of authorityCertIssuer.
    issuer: Option<Name>,
}

impl Facts {
    /// `None` when the certificate or one of the extensions read here does not parse; BoringSSL
    /// then refuses it as an issuer (`X509_V_ERR_UNSPECIFIED`) and the whole chain.
    fn parse(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let (mut skid, mut akid) = (None, None);
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => skid = Some(id.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    let dir_name = a.authority_cert_issuer.as_ref().and_then(|names| {
                        names.iter().find_map(|n| match n {
                            GeneralName::DirectoryName(dn) => Some(dn),
                            _ => None,
                        })
                    });
                    akid = Some(Akid {
                        key_id: a.key_identifier.as_ref().map(|k| k.0.to_vec()),
                        serial: a.authority_cert_serial.map(unsigned),
                        issuer: match dir_name {
                            Some(dn) => Some(canonical(dn)?),
                            None => None,
                        },
                    });
                }
                ParsedExtension::UnsupportedExtension { .. } => {}
                ParsedExtension::ParseError { .. } => return None,
                _ => {}
            }
        }
        let may_sign_certs = match cert.key_usage().ok()? {
            Some(ku) => ku.value.key_cert_sign(),
            None => true,
        };
        Some(Self {
            subject: canonical(cert.subject())?,
            issuer: canonical(cert.issuer())?,
            skid,
            akid,
            serial: unsigned(cert.raw_serial()),
            may_sign_certs,
        })
    }

    /// `X509_check_issued(issuer, self)`.
    fn issued_by(&self, issuer: &Facts) -> bool {
        if self.issuer != issuer.subject {
            return false;
        }
        if let Some(akid) = &self.akid {
            if let (Some(want), Some(have)) = (&akid.key_id, &issuer.skid)
                && want != have
            {
                return false;
            }
            if akid.serial.as_ref().is_some_and(|s| *s != issuer.serial) {
                return false;
            }
            if akid.issuer.as_ref().is_some_and(|n| *n != issuer.issuer) {
                return false;
            }
        }
        issuer.may_sign_certs
    }

    /// BoringSSL's `EXFLAG_SS`: subject equals issuer, its own authority key identifier (if
    /// any) matches itself, and key usage allows certificate signing. No signature is checked.
    fn self_signed(&self) -> bool {
        self.issued_by(self)
    }
}

/// [`Facts`] of certificates by their DER, shared by every path choice of a matrix: the same
/// few certificates are presented in thousands of chains.
#[derive(Debug, Default)]
pub(super) struct FactsCache(Mutex<HashMap<Vec<u8>, Option<Arc<Facts>>>>);

impl FactsCache {
    fn get(&self, der: &[u8]) -> Option<Arc<Facts>> {
        let lock = || {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(facts) = lock().get(der) {
            return facts.clone();
        }
        let facts = Facts::parse(der).map(Arc::new);
        lock().insert(der.to_vec(), facts.clone());
        facts
    }
}

/// The trust store of one bundle: its certificates in bundle order, exact duplicates dropped
/// (`X509_STORE_add_cert` ignores a certificate already present).
#[derive(Debug)]
pub(super) struct Store {
    /// (index in the bundle, facts); `None` facts never issue anything.
    certs: Vec<(usize, Option<Facts>)>,
}

impl Store {
    pub(super) fn new(bundle: &[CertificateDer<'_>]) -> Self {
        let mut certs = Vec::with_capacity(bundle.len());
        for (i, der) in bundle.iter().enumerate() {
            if bundle[..i].iter().all(|earlier| earlier != der) {
                certs.push((i, Facts::parse(der)));
            }
        }
        Self { certs }
    }

    /// The bundle index of the first certificate that issued `cert`.
    fn issuer_of(&self, cert: &Facts) -> Option<usize> {
        self.certs.iter().find_map(|(i, facts)| {
            facts
                .as_ref()
                .is_some_and(|f| cert.issued_by(f))
                .then_some(*i)
        })
    }
}

/// The path BoringSSL would verify: the presented intermediates it uses, in path order, and
/// the bundle index of the trust-store certificate it ends at (`None`: no path to the bundle,
/// which BoringSSL reports as an unknown issuer).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Path {
    pub(super) intermediates: Vec<usize>,
    pub(super) anchor: Option<usize>,
}

/// BoringSSL's choice for `end_entity` presented with `intermediates` (indices in the result
/// refer to them), against `store`.
pub(super) fn choose(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    store: &Store,
    cache: &FactsCache,
) -> Path {
    let mut path = Path {
        intermediates: Vec::new(),
        anchor: None,
    };
    let Some(leaf) = cache.get(end_entity) else {
        return path;
    };
    let mut offered: Vec<(usize, Arc<Facts>)> = intermediates
        .iter()
        .enumerate()
        .filter_map(|(i, der)| cache.get(der).map(|f| (i, f)))
        .collect();
    let mut current = leaf;
    loop {
        // A self-signed certificate ends the walk; one the peer sent is not trusted.
        if current.self_signed() {
            return path;
        }
        if let Some(anchor) = store.issuer_of(&current) {
            path.anchor = Some(anchor);
            return path;
        }
        let Some(pos) = offered.iter().position(|(_, f)| current.issued_by(f)) else {
            return path;
        };
        let (index, facts) = offered.remove(pos);
        path.intermediates.push(index);
        current = facts;
    }
}

/// Magnitude bytes of a DER INTEGER's content, as `ASN1_INTEGER_cmp` compares them.
fn unsigned(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

/// `X509_NAME`'s canonical encoding (x_name.cc `asn1_marshal_string_canon`): the string types
/// decoded, leading and trailing whitespace dropped, inner runs collapsed to one space, ASCII
/// lower-cased; other value types kept as they are. `None` when a string does not decode.
fn canonical(name: &X509Name<'_>) -> Option<Name> {
    name.iter_rdn()
        .map(|rdn| {
            let mut entries = rdn
                .iter()
                .map(|atv| {
                    let value = atv.attr_value();
                    let text = match value.tag().0 {
                        12 => Some(std::str::from_utf8(value.data).ok()?.to_owned()),
                        // PrintableString, T61String, IA5String, VisibleString: read as Latin-1.
                        19 | 20 | 22 | 26 => {
                            Some(value.data.iter().map(|b| char::from(*b)).collect())
                        }
                        30 => Some(utf16(value.data)?),
                        28 => Some(utf32(value.data)?),
                        _ => None,
                    };
                    let canon = match text {
                        Some(t) => {
                            let mut out = vec![12u8];
                            out.extend_from_slice(fold(&t).as_bytes());
                            out
                        }
                        None => {
                            let mut out = value.tag().0.to_be_bytes().to_vec();
                            out.extend_from_slice(value.data);
                            out
                        }
                    };
                    Some((atv.attr_type().as_bytes().to_vec(), canon))
                })
                .collect::<Option<Vec<_>>>()?;
            entries.sort();
            Some(entries)
        })
        .collect()
}

/// Whitespace trimmed and collapsed, ASCII lower-cased (`OPENSSL_isspace`: space, \t–\r).
fn fold(text: &str) -> String {
    text.split(|c: char| c == ' ' || ('\t'..='\r').contains(&c))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

fn utf16(bytes: &[u8]) -> Option<String> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    // BoringSSL reads BMPString as UCS-2: no surrogates.
    if units.iter().any(|u| (0xd800..0xe000).contains(u)) {
        return None;
    }
    String::from_utf16(&units).ok()
}

fn utf32(bytes: &[u8]) -> Option<String> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    bytes
        .chunks_exact(4)
        .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    };

    struct Ca {
        der: CertificateDer<'static>,
        issuer: Issuer<'static, KeyPair>,
    }

    fn params(cn: &str, akid: bool) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::OrganizationName, "Istio");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        p.use_authority_key_identifier_extension = akid;
        p
    }

    fn root(cn: &str) -> Ca {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("keygen");
        let p = params(cn, false);
        let cert = p.self_signed(&key).expect("self-sign");
        Ca {
            der: cert.der().clone(),
            issuer: Issuer::new(p, key),
        }
    }

    fn intermediate(parent: &Ca, akid: bool) -> Ca {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("keygen");
        let p = params("Intermediate CA", akid);
        let cert = p.signed_by(&key, &parent.issuer).expect("sign");
        Ca {
            der: cert.der().clone(),
            issuer: Issuer::new(p, key),
        }
    }

    fn leaf(parent: &Ca) -> CertificateDer<'static> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("keygen");
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.is_ca = IsCa::ExplicitNoCa;
        p.use_authority_key_identifier_extension = true;
        p.signed_by(&key, &parent.issuer)
            .expect("sign")
            .der()
            .clone()
    }

    #[test]
    fn first_same_named_root_wins_unless_the_akid_tells_them_apart() {
        let a = root("Root CA");
        let look_alike = root("Root CA");
        for (akid, want) in [(false, Some(0)), (true, Some(1))] {
            let int = intermediate(&a, akid);
            let leaf = leaf(&int);
            let store = Store::new(&[look_alike.der.clone(), a.der.clone()]);
            let path = choose(
                &leaf,
                &[int.der.clone(), a.der.clone()],
                &store,
                &FactsCache::default(),
            );
            assert_eq!(path.intermediates, vec![0], "akid {akid}");
            assert_eq!(path.anchor, want, "akid {akid}");
            // The real root first: chosen whatever the AKID says.
            let store = Store::new(&[a.der.clone(), look_alike.der.clone()]);
            let path = choose(
                &leaf,
                std::slice::from_ref(&int.der),
                &store,
                &FactsCache::default(),
            );
            assert_eq!(path.anchor, Some(0), "akid {akid}");
        }
    }

    #[test]
    fn a_root_the_peer_sends_is_not_trusted_and_duplicates_count_once() {
        let a = root("Root CA A");
        let b = root("Root CA B");
        let int = intermediate(&a, true);
        let leaf = leaf(&int);
        let path = choose(
            &leaf,
            &[int.der.clone(), a.der.clone()],
            &Store::new(std::slice::from_ref(&b.der)),
            &FactsCache::default(),
        );
        assert_eq!(
            path,
            Path {
                intermediates: vec![0, 1],
                anchor: None
            }
        );
        let store = Store::new(&[b.der.clone(), b.der.clone(), a.der.clone()]);
        assert_eq!(store.certs.len(), 2);
        assert_eq!(
            choose(
                &leaf,
                std::slice::from_ref(&int.der),
                &store,
                &FactsCache::default()
            )
            .anchor,
            Some(2)
        );
    }

    #[test]
    fn names_compare_in_canonical_form() {
        assert_eq!(fold("  Root \t  CA\n"), "root ca");
        assert_eq!(fold("ÉCOLE Root"), "École root");
        assert_eq!(utf16(&[0, b'A', 0xd8, 0]), None);
        assert_eq!(utf16(&[0, b'A', 0, b'b']).as_deref(), Some("Ab"));
        assert_eq!(utf32(&[0, 0, 0, b'x']).as_deref(), Some("x"));
        assert_eq!(unsigned(&[0, 0x80, 1]), vec![0x80, 1]);
    }
}
