//! What a private-key file holds, in words: its PEM tag, key type and size, so that an
//! unusable key is refused naming what was found and what is wanted.
//!
//! The key itself is parsed by rcgen (aws-lc). Only when that fails is the DER walked here,
//! with x509-parser's DER reader, for the two or three fields that name the key: the
//! pkcs1/pkcs8/sec1 crates are not in the tree, and this needs no more of them than that.

use x509_parser::der_parser::ber::BerObject;
use x509_parser::der_parser::parse_der;
use zeroize::Zeroizing;

use super::inspect::{curve_name, rsa_bits};
use super::{KeyKind, PrivateKeyPem};

/// PEM tags of the plaintext private keys rcgen reads.
const KEY_TAGS: [(&str, &str); 3] = [
    ("PRIVATE KEY", "PKCS#8"),
    ("RSA PRIVATE KEY", "PKCS#1"),
    ("EC PRIVATE KEY", "SEC1"),
];

/// What a CA key must be (istiod and Envoy verify these; aws-lc signs with them).
pub const WANTED_KEY: &str = "an unencrypted PEM private key (PKCS#1, SEC1 or PKCS#8): RSA of 2048 to 8192 bits, or ECDSA P-256, P-384 or P-521";

/// Why `key` cannot be used as a CA key, naming what the file holds; `None` when it can.
pub fn key_problem(key: &PrivateKeyPem) -> Option<String> {
    let blocks = match pem::parse_many(key.expose()) {
        Ok(blocks) => blocks,
        Err(e) => return Some(format!("is not complete PEM ({e}): is it cut short?")),
    };
    // Every block's content is wiped when this function returns: the key is in one of them.
    let blocks: Vec<(String, bool, Zeroizing<Vec<u8>>)> = blocks
        .into_iter()
        .map(|b| {
            let encrypted = b
                .headers()
                .get("Proc-Type")
                .is_some_and(|v| v.contains("ENCRYPTED"));
            (
                b.tag().to_string(),
                encrypted,
                Zeroizing::new(b.into_contents()),
            )
        })
        .collect();
    let Some((tag, encrypted, der)) = blocks.first() else {
        return Some(
            if key.expose().contains("-----BEGIN ") {
                "holds no complete PEM block (a BEGIN line without its END line): is it cut short?"
            } else {
                "holds no PEM block (a key file starts with a BEGIN PRIVATE KEY line)"
            }
            .to_string(),
        );
    };
    if *encrypted || tag.contains("ENCRYPTED") {
        return Some(format!(
            "holds an encrypted private key (`{tag}`); istiod cannot use encrypted keys"
        ));
    }
    let Some((_, format)) = KEY_TAGS.iter().find(|(t, _)| t == tag) else {
        let later_key = blocks
            .iter()
            .find(|(t, _, _)| KEY_TAGS.iter().any(|(k, _)| k == t));
        return Some(match later_key {
            Some((key_tag, _, _)) => format!(
                "starts with a `{tag}` PEM block, not a private key (a `{key_tag}` block follows: keep only that block)"
            ),
            None => format!("holds a `{tag}` PEM block, not a private key"),
        });
    };
    if key.key_pair().is_ok() {
        return None;
    }
    Some(match key_kind(tag, der) {
        Some(kind) => format!(
            "holds {} private key (`{tag}`, {format}), which cannot be used",
            with_article(&kind)
        ),
        None => format!("holds a `{tag}` block that is not a readable {format} private key"),
    })
}

fn with_article(kind: &KeyKind) -> String {
    match kind {
        KeyKind::Rsa { bits } => format!("an RSA-{bits}"),
        KeyKind::Ec { curve } => format!("an ECDSA {curve}"),
        KeyKind::Other { algorithm } => format!("a {algorithm}"),
    }
}

/// The key type of a private key's DER, when it can be read.
fn key_kind(tag: &str, der: &[u8]) -> Option<KeyKind> {
    let (_, top) = parse_der(der).ok()?;
    let fields = top.as_sequence().ok()?;
    match tag {
        // RSAPrivateKey ::= SEQUENCE { version, modulus, … }
        "RSA PRIVATE KEY" => rsa_kind(fields),
        // ECPrivateKey ::= SEQUENCE { version, privateKey, [0] parameters OPTIONAL, … }
        "EC PRIVATE KEY" => Some(KeyKind::Ec {
            curve: curve_name(&explicit_oid(fields.get(2)?).unwrap_or_default()),
        }),
        // OneAsymmetricKey ::= SEQUENCE { version, AlgorithmIdentifier, privateKey OCTET STRING, … }
        _ => {
            let alg = fields.get(1)?.as_sequence().ok()?;
            let oid = alg.first()?.as_oid().ok()?.to_id_string();
            match oid.as_str() {
                "1.2.840.113549.1.1.1" => {
                    let inner = fields.get(2)?.as_slice().ok()?;
                    let (_, pkcs1) = parse_der(inner).ok()?;
                    rsa_kind(pkcs1.as_sequence().ok()?)
                }
                "1.2.840.10045.2.1" => Some(KeyKind::Ec {
                    curve: curve_name(
                        &alg.get(1)
                            .and_then(|p| p.as_oid().ok())
                            .map(|o| o.to_id_string())
                            .unwrap_or_default(),
                    ),
                }),
                other => Some(KeyKind::Other {
                    algorithm: match other {
                        "1.2.840.113549.1.1.10" => "RSASSA-PSS".to_string(),
                        "1.2.840.10040.4.1" => "DSA".to_string(),
                        "1.3.101.112" => "Ed25519".to_string(),
                        "1.3.101.113" => "Ed448".to_string(),
                        "1.3.101.110" => "X25519".to_string(),
                        "1.3.101.111" => "X448".to_string(),
                        _ => format!("algorithm {other}"),
                    },
                }),
            }
        }
    }
}

fn rsa_kind(fields: &[BerObject<'_>]) -> Option<KeyKind> {
    let modulus = fields.get(1)?.as_slice().ok()?;
    Some(KeyKind::Rsa {
        bits: rsa_bits(modulus),
    })
}

/// The OID inside an explicitly tagged field (`[0] OBJECT IDENTIFIER`).
fn explicit_oid(field: &BerObject<'_>) -> Option<String> {
    let inner = match field.as_tagged() {
        Ok((_, _, inner)) => inner.as_oid().ok()?.to_id_string(),
        Err(_) => {
            let (_, inner) = parse_der(field.as_slice().ok()?).ok()?;
            inner.as_oid().ok()?.to_id_string()
        }
    };
    Some(inner)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// A key made by the openssl CLI, as users make them.
    fn openssl_key(args: &[&str]) -> PrivateKeyPem {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "{args:?}");
        PrivateKeyPem::new(String::from_utf8(out.stdout).unwrap())
    }

    /// The same key in its algorithm's own format (PKCS#1 for RSA, SEC1 for EC).
    fn traditional(key: &PrivateKeyPem, alg: &str) -> PrivateKeyPem {
        use std::io::Write;
        let args: &[&str] = if alg == "rsa" {
            &["rsa", "-traditional"]
        } else {
            &["ec"]
        };
        let mut child = Command::new("openssl")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(key.expose().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        PrivateKeyPem::new(String::from_utf8(out.stdout).unwrap())
    }

    #[test]
    fn usable_keys_have_no_problem() {
        for args in [
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ][..],
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
            ][..],
        ] {
            let key = openssl_key(args);
            assert_eq!(key_problem(&key), None, "{args:?}");
        }
    }

    #[test]
    fn unusable_keys_are_named_by_tag_type_and_size() {
        let rsa1024 = openssl_key(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
        ]);
        assert_eq!(
            key_problem(&rsa1024).unwrap(),
            "holds an RSA-1024 private key (`PRIVATE KEY`, PKCS#8), which cannot be used"
        );
        assert_eq!(
            key_problem(&traditional(&rsa1024, "rsa")).unwrap(),
            "holds an RSA-1024 private key (`RSA PRIVATE KEY`, PKCS#1), which cannot be used"
        );
        let k1 = openssl_key(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:secp256k1",
        ]);
        assert_eq!(
            key_problem(&k1).unwrap(),
            "holds an ECDSA secp256k1 private key (`PRIVATE KEY`, PKCS#8), which cannot be used"
        );
        assert_eq!(
            key_problem(&traditional(&k1, "ec")).unwrap(),
            "holds an ECDSA secp256k1 private key (`EC PRIVATE KEY`, SEC1), which cannot be used"
        );
        let dsa_params = openssl_key(&["genpkey", "-genparam", "-algorithm", "DSA"]);
        assert_eq!(
            key_problem(&dsa_params).unwrap(),
            "holds a `DSA PARAMETERS` PEM block, not a private key"
        );
    }

    #[test]
    fn certificates_and_garbage_are_not_keys() {
        let cert = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/makefile/root-cert.pem"
        ))
        .unwrap();
        assert_eq!(
            key_problem(&PrivateKeyPem::new(cert)).unwrap(),
            "holds a `CERTIFICATE` PEM block, not a private key"
        );
        assert_eq!(
            key_problem(&PrivateKeyPem::new("hello\n".into())).unwrap(),
            "holds no PEM block (a key file starts with a BEGIN PRIVATE KEY line)"
        );
        // The header is assembled so this source holds no PEM key header (placeholders only).
        let begin = concat!("-----BEGIN PRIVATE", " KEY-----");
        let end = concat!("-----END PRIVATE", " KEY-----");
        assert_eq!(
            key_problem(&PrivateKeyPem::new(format!("{begin}\nAAAA\n"))).unwrap(),
            "holds no complete PEM block (a BEGIN line without its END line): is it cut short?"
        );
        let garbage = format!("{begin}\nAAAA\n{end}\n");
        assert_eq!(
            key_problem(&PrivateKeyPem::new(garbage)).unwrap(),
            "holds a `PRIVATE KEY` block that is not a readable PKCS#8 private key"
        );
    }
}
