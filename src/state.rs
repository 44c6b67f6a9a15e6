//! The key state: generated CA certificates and their private keys, kept so a second render
//! reuses them instead of minting a new root.
//!
//! Each entry is keyed by a stable id (`root-current`, `root-new`, `<cluster>-current`,
//! `<cluster>-new`) and remembers a hash of the spec it was generated from, so changing the
//! spec (or the issuer) regenerates exactly the affected certificates.
//! The file is YAML with everything below `data:`, so the SOPS writer encrypts all of it.

use std::collections::BTreeMap;

use crate::pki::PrivateKeyPem;

/// Path of the plaintext state file inside the output directory.
pub const PLAIN_PATH: &str = ".rootroll/state.yaml";
/// Path of the SOPS-encrypted state file inside the output directory.
pub const SOPS_PATH: &str = ".rootroll/state.sops.yaml";

/// One generated CA. No `Debug`: it holds a private key.
#[derive(Clone)]
pub struct Entry {
    /// sha256 of the spec (and issuer) it was generated from.
    pub spec: String,
    pub cert: String,
    /// `None` when the state file is encrypted and no identity could open it.
    pub key: Option<PrivateKeyPem>,
}

/// All generated CAs of one plan.
#[derive(Clone, Default)]
pub struct KeyState {
    pub entries: BTreeMap<String, Entry>,
}

/// Errors reading a state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {path} is malformed: {reason}")]
    Malformed { path: String, reason: String },
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
        if raw.api_version != crate::plan::API_VERSION || raw.kind != "KeyState" {
            return Err(malformed(format!(
                "expected apiVersion {} and kind KeyState",
                crate::plan::API_VERSION
            )));
        }
        let mut data = raw.data;
        let entries = raw
            .certs
            .into_iter()
            .map(|(id, c)| {
                let key = data
                    .remove(&id)
                    .filter(|k| !k.starts_with("ENC["))
                    .map(PrivateKeyPem::new);
                (
                    id,
                    Entry {
                        spec: c.spec,
                        cert: c.cert,
                        key,
                    },
                )
            })
            .collect();
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
            crate::plan::API_VERSION
        ));
        for (id, e) in &self.entries {
            out.push_str(&format!("  {id}:\n    spec: {}\n", e.spec));
            block(&mut out, "    ", "cert", &e.cert);
        }
        out.push_str("data:\n");
        for (id, e) in &self.entries {
            match &e.key {
                Some(k) => block(&mut out, "  ", id, k.expose()),
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

/// Keys of imported intermediates kept in the key state (`import: {key: state}`, written by
/// `init --from-cluster`): attaches each to its signer and carries the entry into the new
/// state. A locked state leaves the key absent (re-encrypting then needs an identity).
/// Part of [`crate::materials::materialize`].
pub(crate) fn attach_imported_keys(
    plan: &crate::plan::Plan,
    materials: &mut crate::materials::Materials,
    old: &KeyState,
) -> Result<(), StateError> {
    for (c, m) in plan.clusters.iter().zip(materials.clusters.iter_mut()) {
        let crate::plan::IntermediateInput::Import(i) = &c.current else {
            continue;
        };
        if !i.key_from_state {
            continue;
        }
        let id = format!("{}-current", c.name);
        let malformed = |reason: String| StateError::Malformed {
            path: SOPS_PATH.to_string(),
            reason,
        };
        let entry = old.entries.get(&id).ok_or_else(|| {
            malformed(format!(
                "cluster {}: the plan says the current intermediate's key is in the key state, but there is no `{id}` entry; run `rootroll init --from-cluster` with this output directory",
                c.name
            ))
        })?;
        let same = crate::pki::split_certificates(entry.cert.as_bytes())
            .ok()
            .and_then(|d| d.into_iter().next())
            .is_some_and(|der| der == i.cert.der);
        if !same {
            return Err(malformed(format!(
                "cluster {}: the key state's `{id}` certificate is not the one imported from {}",
                c.name,
                i.dir.display()
            )));
        }
        if let Some(key) = &entry.key
            && !crate::pki::key_matches_cert(key, &i.cert.der).unwrap_or(false)
        {
            return Err(malformed(format!(
                "cluster {}: the key state's `{id}` key does not belong to its certificate",
                c.name
            )));
        }
        m.current.cert.key = entry.key.clone();
        materials.state.entries.insert(id, entry.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Split so the source holds no PEM key header (not key material: a placeholder).
    const PEM_LABEL: &str = concat!("PRIVATE", " KEY");

    #[test]
    fn round_trips() {
        let mut s = KeyState::default();
        s.entries.insert(
            "root-new".into(),
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
        let e = &back.entries["root-new"];
        assert_eq!(e.spec, "abc");
        assert_eq!(e.cert, s.entries["root-new"].cert);
        assert_eq!(
            e.key.as_ref().unwrap().expose(),
            s.entries["root-new"].key.as_ref().unwrap().expose()
        );
        // Encrypted keys read as absent; the public part stays readable.
        let locked = text.replace(
            &format!("-----BEGIN {PEM_LABEL}-----\n    BBBB\n    -----END {PEM_LABEL}-----\n"),
            "ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\n",
        );
        let back = KeyState::parse("x", &locked).unwrap();
        assert!(back.entries["root-new"].key.is_none());
        assert_eq!(back.public_sha256(), s.public_sha256());
    }
}
