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
    pub key: PrivateKeyPem,
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
    data: BTreeMap<String, RawEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    spec: String,
    cert: String,
    key: String,
}

impl KeyState {
    /// Parses the plaintext YAML form.
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
        let entries = raw
            .data
            .into_iter()
            .map(|(id, e)| {
                (
                    id,
                    Entry {
                        spec: e.spec,
                        cert: e.cert,
                        key: PrivateKeyPem::new(e.key),
                    },
                )
            })
            .collect();
        Ok(Self { entries })
    }

    /// The plaintext YAML form; deterministic (ids sorted). Contains private keys.
    pub fn to_yaml(&self, plan: &str) -> zeroize::Zeroizing<String> {
        let mut out = zeroize::Zeroizing::new(String::new());
        out.push_str(&format!(
            "apiVersion: {}\nkind: KeyState\nmetadata:\n  plan: {plan}\n  note: generated CA keys of this plan; never commit this file unencrypted\ndata:\n",
            crate::plan::API_VERSION
        ));
        for (id, e) in &self.entries {
            out.push_str(&format!("  {id}:\n    spec: {}\n", e.spec));
            block(&mut out, "cert", &e.cert);
            block(&mut out, "key", e.key.expose());
        }
        out
    }
}

fn block(out: &mut String, key: &str, text: &str) {
    let indicator = if text.ends_with('\n') { "|" } else { "|-" };
    out.push_str(&format!("    {key}: {indicator}\n"));
    for line in text.lines() {
        out.push_str("      ");
        out.push_str(line);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut s = KeyState::default();
        s.entries.insert(
            "root-new".into(),
            Entry {
                spec: "abc".into(),
                cert: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
                key: PrivateKeyPem::new(
                    "-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n".into(),
                ),
            },
        );
        let text = s.to_yaml("demo");
        let back = KeyState::parse("x", &text).unwrap();
        let e = &back.entries["root-new"];
        assert_eq!(e.spec, "abc");
        assert_eq!(e.cert, s.entries["root-new"].cert);
        assert_eq!(e.key.expose(), s.entries["root-new"].key.expose());
    }
}
