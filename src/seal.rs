//! Sealing: every output file holding private material is SOPS-encrypted to its recipients
//! (a cluster's files to the operators and that cluster's keys, the key state to the
//! operators: [`crate::plan::Gitops::recipients_for`]), unless the file already on disk is an
//! encryption of the same content to exactly those recipients. A recipient change is a
//! change: the file is encrypted afresh.
//!
//! "The same content" is decided in two steps. Without any private key, the public
//! projection of both documents (everything except `data` and the `sops` block) must be
//! equal, including the `rootroll.dev/public-sha256` annotation, and the existing file must
//! be encrypted to exactly the plan's recipients. That alone cannot see a value changed with
//! `sops edit` (which leaves the annotation stale) nor corrupted ciphertext, so when an
//! identity is available the existing file is also decrypted (its MAC verified) and its whole
//! content compared with the fresh plaintext. Without one, the file is kept and reported as
//! not compared ([`SealReport::not_compared`]), never silently.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use crate::parallel;
use crate::repo::{OutFile, Outputs};
use crate::sops::{self, SopsError};

/// Errors while sealing.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Encryption or decryption through SOPS failed.
    #[error(transparent)]
    Sops(#[from] SopsError),
    #[error(
        "{path} must be re-encrypted but the key state is encrypted and no age identity could open it; \
         give --identity FILE or set SOPS_AGE_KEY_FILE"
    )]
    /// A file needs encrypting but the key state cannot be opened to compare or reuse it.
    Locked {
        /// The output file that needs encrypting.
        path: String,
    },
}

/// What sealing did.
#[derive(Debug, Default)]
pub struct SealReport {
    /// Files encrypted afresh (new, or their content changed).
    pub encrypted: Vec<String>,
    /// Files whose encryption on disk already holds the same content, kept byte for byte.
    pub kept: Vec<String>,
    /// Kept files whose encrypted content could not be compared (no identity opens them, or
    /// the key state is locked): only their public part is known to be up to date.
    pub not_compared: Vec<String>,
}

/// How an existing encrypted file compares with fresh plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Public part, recipients and decrypted content are equal.
    Same,
    /// The public part is equal; the encrypted content could not be compared.
    NotCompared,
    /// Something differs, or the file does not decrypt (MAC, corrupted ciphertext).
    Differs,
}

/// Compares `old` (bytes on disk) with `new_plaintext`: the public part first, then, with an
/// identity and unless `locked` (the plaintext lacks its key), the decrypted content.
fn compare(
    path: &str,
    old: &[u8],
    new_plaintext: &str,
    recipients: &BTreeSet<String>,
    identities: &[age::x25519::Identity],
    locked: bool,
) -> Verdict {
    if !is_unchanged(old, new_plaintext, recipients) {
        return Verdict::Differs;
    }
    let Ok(old) = std::str::from_utf8(old) else {
        return Verdict::Differs;
    };
    if identities.is_empty() || locked {
        return Verdict::NotCompared;
    }
    match sops::decrypt_yaml(path, old, identities) {
        Ok(plain) if same_content(&plain, new_plaintext) => Verdict::Same,
        Ok(_) => Verdict::Differs,
        Err(SopsError::NoMatchingIdentity { .. }) => Verdict::NotCompared,
        Err(_) => Verdict::Differs,
    }
}

/// Equal YAML content (formatting aside), every string wiped afterwards.
fn same_content(a: &str, b: &str) -> bool {
    use crate::verify::offline::Wiped;
    let parse = |t: &str| {
        serde_saphyr::from_str::<serde_json::Value>(t)
            .ok()
            .map(Wiped)
    };
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a.0 == b.0,
        _ => false,
    }
}

/// What decides whether an encrypted file still stands for fresh plaintext: the document
/// without `data`, `stringData` and `sops`, and the age recipients the `sops` block lists.
/// `data` and the rest of `sops` are read past, not built.
#[derive(Debug, Clone, PartialEq)]
struct Projection {
    rest: serde_json::Map<String, serde_json::Value>,
    recipients: BTreeSet<String>,
}

impl Projection {
    /// Parses a YAML document (a mapping) into its projection.
    fn parse(yaml: &str) -> Result<Self, serde_saphyr::Error> {
        serde_saphyr::from_str(yaml)
    }
}

impl<'de> serde::Deserialize<'de> for Projection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ProjectionVisitor)
    }
}

struct ProjectionVisitor;

impl<'de> serde::de::Visitor<'de> for ProjectionVisitor {
    type Value = Projection;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a YAML mapping")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Projection, A::Error> {
        let mut p = Projection {
            rest: serde_json::Map::new(),
            recipients: BTreeSet::new(),
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "data" | "stringData" => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                "sops" => {
                    let sops: Option<SopsRecipients> = map.next_value()?;
                    p.recipients = sops
                        .into_iter()
                        .flat_map(|s| s.age)
                        .filter_map(|e| e.recipient)
                        .collect();
                }
                _ => {
                    let value = map.next_value()?;
                    p.rest.insert(key, value);
                }
            }
        }
        Ok(p)
    }
}

/// The part of a `sops` block that names age recipients; everything else is skipped.
#[derive(serde::Deserialize)]
struct SopsRecipients {
    #[serde(default)]
    age: Vec<AgeStanza>,
}

#[derive(serde::Deserialize)]
struct AgeStanza {
    recipient: Option<String>,
}

/// Can `old` (bytes on disk) stand for `new_plaintext`?
///
/// Both documents are read with the SOPS module's YAML reader, which is several times faster
/// than a general one; when it refuses either, both are read with serde-saphyr instead.
pub fn is_unchanged(old: &[u8], new_plaintext: &str, recipients: &BTreeSet<String>) -> bool {
    let Ok(old) = std::str::from_utf8(old) else {
        return false;
    };
    if let (Some(old), Some(new)) = (sops::public_part(old), sops::public_part(new_plaintext)) {
        return old.encrypted && old.recipients == *recipients && old.value == new.value;
    }
    if !sops::is_encrypted(old) {
        return false;
    }
    match (Projection::parse(old), Projection::parse(new_plaintext)) {
        (Ok(old), Ok(new)) => old.recipients == *recipients && old.rest == new.rest,
        _ => false,
    }
}

/// What [`seal`] needs besides the tree.
pub struct SealOptions<'a> {
    /// The files of the previous render.
    pub existing: &'a BTreeMap<String, Vec<u8>>,
    /// The plan's recipients by role: each file's come from its path ([`crate::repo::audience`]).
    pub gitops: &'a crate::plan::Gitops,
    /// The paths whose plaintext lacks a private key.
    pub locked: &'a BTreeSet<String>,
    /// Identities to open the existing files with, to compare their content.
    pub identities: &'a [age::x25519::Identity],
    /// The SOPS `lastmodified` time.
    pub now: OffsetDateTime,
    /// Encrypt nothing (files that would be are left as they are).
    pub dry_run: bool,
}

/// Encrypts the private files of `outputs` in place, on every core. The report lists paths
/// in order.
pub fn seal(outputs: &mut Outputs, o: &SealOptions<'_>) -> Result<SealReport, SealError> {
    let SealOptions {
        existing,
        gitops,
        locked,
        identities,
        now,
        dry_run,
    } = *o;
    let private: Vec<(&String, &mut OutFile)> = outputs
        .files
        .iter_mut()
        .filter(|(_, f)| f.private)
        .collect();
    // Each audience's recipients, parsed once (keyed by cluster; `None`: the operators).
    let mut audiences: BTreeMap<Option<String>, Audience> = BTreeMap::new();
    for (path, _) in &private {
        let key = audience_key(path);
        if audiences.contains_key(&key) {
            continue;
        }
        let audience = key.as_deref().map_or(
            crate::plan::Audience::Operators,
            crate::plan::Audience::Cluster,
        );
        let keys: Vec<String> = gitops
            .recipients_for(audience)
            .into_iter()
            .map(|r| r.key)
            .collect();
        let parsed = keys
            .iter()
            .map(|r| sops::parse_recipient(r))
            .collect::<Result<_, _>>()?;
        audiences.insert(
            key,
            Audience {
                parsed,
                wanted: keys.into_iter().collect(),
            },
        );
    }
    let decisions = parallel::map(
        &private,
        |(path, file)| -> Result<Sealed, SealError> {
            let plaintext =
                zeroize::Zeroizing::new(String::from_utf8_lossy(&file.bytes).into_owned());
            let is_locked = locked.contains(*path);
            let Audience { parsed, wanted } = &audiences[&audience_key(path)];
            if let Some(old) = existing.get(*path) {
                match compare(path, old, &plaintext, wanted, identities, is_locked) {
                    Verdict::Same => return Ok(Sealed::Kept(old.clone(), true)),
                    Verdict::NotCompared => return Ok(Sealed::Kept(old.clone(), false)),
                    Verdict::Differs => {}
                }
            }
            if dry_run {
                // `--check`: the file would be re-encrypted; its plaintext never equals the old bytes.
                return Ok(Sealed::WouldEncrypt);
            }
            if is_locked {
                return Err(SealError::Locked {
                    path: (*path).clone(),
                });
            }
            Ok(Sealed::Encrypted(
                sops::encrypt_yaml(path, &plaintext, parsed, now)?.into_bytes(),
            ))
        },
        |_, _| {},
    );
    let mut report = SealReport::default();
    for ((path, file), decision) in private.into_iter().zip(decisions) {
        use zeroize::Zeroize as _;
        match decision? {
            Sealed::Kept(old, compared) => {
                file.bytes.zeroize();
                file.bytes = old;
                report.kept.push(path.clone());
                if !compared {
                    report.not_compared.push(path.clone());
                }
            }
            Sealed::WouldEncrypt => report.encrypted.push(path.clone()),
            Sealed::Encrypted(sealed) => {
                file.bytes.zeroize();
                file.bytes = sealed;
                report.encrypted.push(path.clone());
            }
        }
    }
    Ok(report)
}

/// The cluster a file is for (`None`: the operators only).
fn audience_key(path: &str) -> Option<String> {
    match crate::repo::audience(path) {
        crate::plan::Audience::Operators => None,
        crate::plan::Audience::Cluster(c) => Some(c.to_string()),
    }
}

/// The recipients of one audience: parsed to encrypt to, and as written to compare with.
struct Audience {
    parsed: Vec<age::x25519::Recipient>,
    wanted: BTreeSet<String>,
}

/// What sealing decided for one private file.
enum Sealed {
    /// The file on disk stands for it: keep those bytes (`true` when its decrypted content
    /// was compared, `false` when only its public part could be).
    Kept(Vec<u8>, bool),
    /// `--check` only: it would be encrypted anew.
    WouldEncrypt,
    /// Its new ciphertext.
    Encrypted(Vec<u8>),
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: \"cacerts\"\n  labels:\n    rootroll.dev/phase: \"1\"\n  annotations:\n    rootroll.dev/public-sha256: \"abc\"\ntype: Opaque\ndata:\n  ca-key.pem: \"c2VjcmV0\"\n";

    fn sealed(plain: &str, to: &[age::x25519::Recipient]) -> Vec<u8> {
        let now = time::macros::datetime!(2027-01-01 00:00 UTC);
        sops::encrypt_yaml("x", plain, to, now)
            .unwrap()
            .into_bytes()
    }

    #[test]
    fn an_encryption_of_the_same_public_content_stands_for_it_and_nothing_else() {
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let wanted: BTreeSet<String> = [id.to_public().to_string()].into();
        let old = sealed(SECRET, &[id.to_public()]);
        // The sops writer re-quotes and re-indents; the public content is what counts.
        assert!(is_unchanged(&old, SECRET, &wanted));
        // Other data with the same public part: still the same (the key is bound to the cert).
        assert!(is_unchanged(
            &old,
            &SECRET.replace("c2VjcmV0", "b3RoZXI="),
            &wanted
        ));
        // A changed label, annotation, type or an added field is not.
        for changed in [
            SECRET.replace("phase: \"1\"", "phase: \"2\""),
            SECRET.replace("abc", "abd"),
            SECRET.replace("phase: \"1\"", "phase: 1"),
            SECRET.replace("type: Opaque", "type: kubernetes.io/tls"),
            SECRET.replace("type: Opaque\n", "type: Opaque\nimmutable: true\n"),
        ] {
            assert!(!is_unchanged(&old, &changed, &wanted), "{changed}");
        }
        // Other recipients, or a plaintext file, never stand for it.
        let both: BTreeSet<String> =
            [id.to_public().to_string(), other.to_public().to_string()].into();
        assert!(!is_unchanged(&old, SECRET, &both));
        assert!(!is_unchanged(SECRET.as_bytes(), SECRET, &wanted));
        // What the fast reader refuses (an anchor) is compared by serde-saphyr: same verdicts.
        let anchored = SECRET.replace("name: \"cacerts\"", "name: &n \"cacerts\"");
        assert!(sops::public_part(&anchored).is_none());
        assert!(Projection::parse(&anchored).is_ok());
        assert!(!is_unchanged(
            &old,
            &anchored.replace("abc", "abd"),
            &wanted
        ));
    }
}
