//! Sealing: every output file holding private material is SOPS-encrypted to the plan's age
//! recipients, unless the file already on disk is an encryption of the same content.
//!
//! "The same content" is decided without any private key: the public projection of both
//! documents (everything except `data` and the `sops` block) must be equal, including the
//! `rootroll.dev/public-sha256` annotation that covers the public data; and the existing
//! file must be encrypted to exactly the plan's recipients. Private keys are bound to their
//! certificates, so equal public content means equal private content. Re-rendering an
//! unchanged plan therefore rewrites no ciphertext and needs no identity.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use crate::render::Outputs;
use crate::sops::{self, SopsError};

/// Errors while sealing.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Sops(#[from] SopsError),
    #[error(
        "{path} must be re-encrypted but the key state is encrypted and no age identity could open it; \
         give --identity FILE or set SOPS_AGE_KEY_FILE"
    )]
    Locked { path: String },
}

/// What sealing did.
#[derive(Debug, Default)]
pub struct SealReport {
    pub encrypted: Vec<String>,
    pub kept: Vec<String>,
}

fn projection(yaml: &str) -> Option<serde_json::Value> {
    let mut v: serde_json::Value = serde_saphyr::from_str(yaml).ok()?;
    let obj = v.as_object_mut()?;
    obj.remove("data");
    obj.remove("stringData");
    obj.remove("sops");
    Some(v)
}

fn recipients_of(yaml: &str) -> BTreeSet<String> {
    let v: serde_json::Value = match serde_saphyr::from_str(yaml) {
        Ok(v) => v,
        Err(_) => return BTreeSet::new(),
    };
    v["sops"]["age"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["recipient"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Can `old` (bytes on disk) stand for `new` (fresh plaintext)?
pub fn is_unchanged(old: &[u8], new_plaintext: &str, recipients: &BTreeSet<String>) -> bool {
    let Ok(old) = std::str::from_utf8(old) else {
        return false;
    };
    sops::is_encrypted(old)
        && recipients_of(old) == *recipients
        && projection(old).is_some()
        && projection(old) == projection(new_plaintext)
}

/// Encrypts the private files of `outputs` in place. `existing` holds the files of the
/// previous render; `locked` the paths whose plaintext lacks a private key. With `dry_run`
/// nothing is encrypted (files that would be are left as they are).
pub fn seal(
    outputs: &mut Outputs,
    existing: &BTreeMap<String, Vec<u8>>,
    recipients: &[String],
    locked: &BTreeSet<String>,
    now: OffsetDateTime,
    dry_run: bool,
) -> Result<SealReport, SealError> {
    let parsed: Vec<age::x25519::Recipient> = recipients
        .iter()
        .map(|r| sops::parse_recipient(r))
        .collect::<Result<_, _>>()?;
    let wanted: BTreeSet<String> = recipients.iter().cloned().collect();
    let mut report = SealReport::default();
    for (path, file) in outputs.files.iter_mut().filter(|(_, f)| f.private) {
        use zeroize::Zeroize as _;
        let plaintext = zeroize::Zeroizing::new(String::from_utf8_lossy(&file.bytes).into_owned());
        if let Some(old) = existing.get(path)
            && is_unchanged(old, &plaintext, &wanted)
        {
            file.bytes.zeroize();
            file.bytes.clone_from(old);
            report.kept.push(path.clone());
            continue;
        }
        if dry_run {
            // `--check`: the file would be re-encrypted; its plaintext never equals the old bytes.
            report.encrypted.push(path.clone());
            continue;
        }
        if locked.contains(path) {
            return Err(SealError::Locked { path: path.clone() });
        }
        let sealed = sops::encrypt_yaml(path, &plaintext, &parsed, now)?;
        file.bytes.zeroize();
        file.bytes = sealed.into_bytes();
        report.encrypted.push(path.clone());
    }
    Ok(report)
}
