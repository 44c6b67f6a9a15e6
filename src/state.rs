//! The key state: generated CA certificates and their private keys, kept so a second render
//! reuses them instead of minting a new root.
//!
//! Each entry is keyed by a [`StateId`] (which root, or which cluster's intermediate, and
//! whether current or new) and remembers a hash of the spec it was generated from, so changing
//! the spec (or the issuer) regenerates exactly the affected certificates.
//! The file is YAML with everything below `data:`, so the SOPS writer encrypts all of it.

use std::collections::BTreeMap;

use crate::pki::PrivateKeyPem;

/// The current CA (A) or the new one (B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Generation {
    /// Today's CA.
    Current,
    /// The CA the rotation moves to.
    New,
}

impl Generation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::New => "new",
        }
    }
}

/// Whose CA an entry is: root versus cluster is part of the identity, so no plan can make two
/// ids equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// The mesh's root.
    Root,
    /// A cluster's intermediate.
    Cluster(String),
}

/// The id of a key-state entry.
///
/// Written as `root-current`, `root-new`, `<cluster>-current` and `<cluster>-new`, except that
/// a cluster named `root` is written `cluster.root-…`: a cluster name never holds a `.`, so the
/// written form is unique too, and every other plan keeps the ids it always had. Entries are
/// ordered by their written form, which keeps state files byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StateId {
    /// Root or cluster.
    pub owner: Owner,
    /// Current or new.
    pub generation: Generation,
}

impl StateId {
    /// A root's id.
    pub fn root(generation: Generation) -> Self {
        Self {
            owner: Owner::Root,
            generation,
        }
    }
    /// A cluster intermediate's id.
    pub fn cluster(name: &str, generation: Generation) -> Self {
        Self {
            owner: Owner::Cluster(name.to_string()),
            generation,
        }
    }
    /// Reads a written id.
    pub fn parse(text: &str) -> Option<Self> {
        let (owner, generation) = text.rsplit_once('-')?;
        let generation = match generation {
            "current" => Generation::Current,
            "new" => Generation::New,
            _ => return None,
        };
        let owner = match owner {
            "root" => Owner::Root,
            "cluster.root" => Owner::Cluster("root".into()),
            name if !name.is_empty() && !name.contains('.') => Owner::Cluster(name.into()),
            _ => return None,
        };
        Some(Self { owner, generation })
    }
}

impl std::fmt::Display for StateId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.generation.as_str();
        match &self.owner {
            Owner::Root => write!(f, "root-{g}"),
            Owner::Cluster(name) if name == "root" => write!(f, "cluster.root-{g}"),
            Owner::Cluster(name) => write!(f, "{name}-{g}"),
        }
    }
}

impl Ord for StateId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.to_string().cmp(&other.to_string())
    }
}

impl PartialOrd for StateId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One generated CA. No `Debug`: it holds a private key.
#[derive(Clone)]
pub struct Entry {
    /// sha256 of the spec (and issuer) it was generated from.
    pub spec: String,
    /// The certificate (PEM).
    pub cert: String,
    /// `None` when the state file is encrypted and no identity could open it.
    pub key: Option<PrivateKeyPem>,
}

/// All generated CAs of one plan.
#[derive(Clone, Default)]
pub struct KeyState {
    /// The entries, by id.
    pub entries: BTreeMap<StateId, Entry>,
}

/// Errors reading a state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file does not read as a key state.
    #[error("state file {path} is malformed: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key state does not fit the plan.
    #[error("the key state does not fit the plan: {reason}")]
    Mismatch {
        /// What does not fit.
        reason: String,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawState {
    api_version: String,
    kind: String,
    #[serde(default)]
    #[allow(dead_code)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    certs: BTreeMap<String, RawCert>,
    /// Private keys by id; `ENC[…]` strings when read without decrypting.
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default)]
    #[allow(dead_code)]
    sops: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCert {
    spec: String,
    cert: String,
}

impl KeyState {
    /// Parses the YAML form. Keys still encrypted (`ENC[…]`) are read as absent.
    pub fn parse(path: &str, text: &str) -> Result<Self, StateError> {
        let malformed = |reason: String| StateError::Malformed {
            path: path.to_string(),
            reason,
        };
        let raw: RawState =
            serde_saphyr::from_str(text).map_err(|e| malformed(e.without_snippet().to_string()))?;
        if raw.api_version != crate::API_VERSION || raw.kind != "KeyState" {
            return Err(malformed(format!(
                "expected apiVersion {} and kind KeyState",
                crate::API_VERSION
            )));
        }
        let mut data = raw.data;
        let mut entries = BTreeMap::new();
        for (text, c) in raw.certs {
            let id = StateId::parse(&text)
                .ok_or_else(|| malformed(format!("`certs.{text}` is not a key-state id")))?;
            let key = data
                .remove(&text)
                .filter(|k| !k.starts_with("ENC["))
                .map(PrivateKeyPem::new);
            entries.insert(
                id,
                Entry {
                    spec: c.spec,
                    cert: c.cert,
                    key,
                },
            );
        }
        Ok(Self { entries })
    }

    /// `true` when every entry's private key is present.
    pub fn is_unlocked(&self) -> bool {
        self.entries.values().all(|e| e.key.is_some())
    }

    /// sha256 over the public part (ids, specs, certificates): equal fingerprints mean equal
    /// keys too, since every key belongs to its certificate.
    pub fn public_sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (id, e) in &self.entries {
            let id = id.to_string();
            for part in [id.as_str(), e.spec.as_str(), e.cert.as_str()] {
                h.update(format!("{}\n", part.len()).as_bytes());
                h.update(part.as_bytes());
            }
        }
        crate::pki::hex(&h.finalize())
    }

    /// The plaintext YAML form; deterministic (ids sorted). Contains private keys, all below
    /// `data:` so SOPS encrypts exactly them. A locked key is written empty.
    pub fn to_yaml(&self, plan: &str) -> zeroize::Zeroizing<String> {
        let mut out = zeroize::Zeroizing::new(String::new());
        out.push_str(&format!(
            "apiVersion: {}\nkind: KeyState\nmetadata:\n  plan: {plan}\n  note: generated CA keys of this plan, reused by re-renders\ncerts:\n",
            crate::API_VERSION
        ));
        for (id, e) in &self.entries {
            out.push_str(&format!("  {id}:\n    spec: {}\n", e.spec));
            block(&mut out, "    ", "cert", &e.cert);
        }
        out.push_str("data:\n");
        for (id, e) in &self.entries {
            match &e.key {
                Some(k) => block(&mut out, "  ", &id.to_string(), k.expose()),
                None => out.push_str(&format!("  {id}: \"\"\n")),
            }
        }
        out
    }
}

fn block(out: &mut String, indent: &str, key: &str, text: &str) {
    let indicator = if text.ends_with('\n') { "|" } else { "|-" };
    out.push_str(&format!("{indent}{key}: {indicator}\n"));
    for line in text.lines() {
        out.push_str(indent);
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_roots_and_clusters_never_collide() {
        let mut written = std::collections::BTreeSet::new();
        for owner in ["root", "current", "new", "cluster", "east", "root-current"] {
            for g in [Generation::Current, Generation::New] {
                let c = StateId::cluster(owner, g);
                let text = c.to_string();
                assert_eq!(StateId::parse(&text), Some(c), "{text}");
                assert!(written.insert(text.clone()), "{text} twice");
            }
        }
        for g in [Generation::Current, Generation::New] {
            let r = StateId::root(g);
            assert_eq!(StateId::parse(&r.to_string()), Some(r.clone()));
            assert!(
                written.insert(r.to_string()),
                "{r} collides with a cluster id"
            );
        }
        // The ids plans have always had are unchanged.
        assert_eq!(
            StateId::root(Generation::Current).to_string(),
            "root-current"
        );
        assert_eq!(
            StateId::cluster("east", Generation::New).to_string(),
            "east-new"
        );
        assert_eq!(
            StateId::cluster("root", Generation::New).to_string(),
            "cluster.root-new"
        );
    }

    /// Split so the source holds no PEM key header (not key material: a placeholder).
    const PEM_LABEL: &str = concat!("PRIVATE", " KEY");

    #[test]
    fn round_trips() {
        let mut s = KeyState::default();
        s.entries.insert(
            StateId::root(Generation::New),
            Entry {
                spec: "abc".into(),
                cert: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
                key: Some(PrivateKeyPem::new(format!(
                    "-----BEGIN {PEM_LABEL}-----\nBBBB\n-----END {PEM_LABEL}-----\n"
                ))),
            },
        );
        let text = s.to_yaml("demo");
        let back = KeyState::parse("x", &text).unwrap();
        let e = &back.entries[&StateId::root(Generation::New)];
        assert_eq!(e.spec, "abc");
        assert_eq!(e.cert, s.entries[&StateId::root(Generation::New)].cert);
        assert_eq!(
            e.key.as_ref().unwrap().expose(),
            s.entries[&StateId::root(Generation::New)]
                .key
                .as_ref()
                .unwrap()
                .expose()
        );
        // Encrypted keys read as absent; the public part stays readable.
        let locked = text.replace(
            &format!("-----BEGIN {PEM_LABEL}-----\n    BBBB\n    -----END {PEM_LABEL}-----\n"),
            "ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\n",
        );
        let back = KeyState::parse("x", &locked).unwrap();
        assert!(back.entries[&StateId::root(Generation::New)].key.is_none());
        assert_eq!(back.public_sha256(), s.public_sha256());
    }
}
