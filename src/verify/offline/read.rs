//! Opening a phase Secret: the file exists, decrypts with an identity and its SOPS MAC
//! verifies (`sops-mac`), and it parses as YAML. Each failure is the phase's root cause.
//!
//! Without an identity the Secret is read as anyone can read it: only its private key is
//! ciphertext, so its certificates and bundle are there and every gate that needs no key runs;
//! `sops-mac` (and, later, `key-matches-cert`) is then *not checked: no identity*, or failed
//! under `--require-keys`. Either way the private-key entry must be ciphertext in the file
//! (`no-plaintext-private-key`).

use std::collections::BTreeSet;

use super::{Ctx, Report};
use crate::gates::Code;
use crate::repo;
use crate::sops;
use crate::verify::Finding;

/// A decrypted Secret read as JSON: its strings (base64 private keys among them) are wiped
/// when it is dropped.
pub struct Wiped(pub serde_json::Value);

impl Drop for Wiped {
    fn drop(&mut self) {
        fn wipe(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::String(s) => zeroize::Zeroize::zeroize(s),
                serde_json::Value::Array(a) => a.iter_mut().for_each(wipe),
                serde_json::Value::Object(o) => o.values_mut().for_each(wipe),
                _ => {}
            }
        }
        wipe(&mut self.0);
    }
}

/// A phase Secret that opened: its path in the repository and its plaintext document.
pub struct Opened {
    /// Path of the Secret relative to the repository root.
    pub rel: String,
    /// The decrypted Secret document, wiped on drop; without an identity, its public part.
    pub doc: Wiped,
    /// The `data` entries left out of `doc` because they are ciphertext and no identity could
    /// open them (empty when the Secret was decrypted).
    pub withheld: BTreeSet<String>,
}

/// The finding for a gate that needs a key when there is no identity: not checked, or failed
/// under `--require-keys`.
pub fn needs_key(ctx: &Ctx<'_>, code: Code, subject: &str, what: &str) -> Finding {
    if ctx.opts.require_keys {
        Finding::new(
            code,
            false,
            subject,
            format!("not run: no identity, and --require-keys needs {what}"),
        )
        .hint("give --identity FILE (or SOPS_AGE_KEY_FILE) with a key that opens the Secrets")
    } else {
        Finding::not_checked(code, subject, format!("no identity: {what} needs the key"))
    }
}

/// Reads, decrypts and parses the phase Secret `file` (as [`crate::repo::Repo::phase_secret`]
/// found it). Pushes the one failure that stops the phase, and returns its cause.
pub fn open(
    ctx: &Ctx<'_>,
    subject: &str,
    cluster: &str,
    n: u8,
    file: Result<Option<(String, String)>, String>,
    r: &mut Report,
) -> Result<Opened, String> {
    let phase = format!("phase {n}");
    let (rel, text) = match file {
        Ok(Some(found)) => found,
        Ok(None) => {
            let msg = format!(
                "no {} in {}",
                repo::SECRET_FILES.join(" or "),
                repo::phase_path(ctx.repo.rollout.strategy, cluster, n)
            );
            r.push(Finding::new(Code::SecretShape, false, subject, &msg));
            return Err(format!("{phase} has no Secret ({msg})"));
        }
        Err(unreadable) => {
            let msg = format!("cannot read the phase Secret: {unreadable}");
            r.push(Finding::new(Code::SecretShape, false, subject, &msg));
            return Err(format!("{phase} Secret cannot be read"));
        }
    };
    let file = Some(rel.as_str());
    // A `.sops.yaml` file is always opened as SOPS, so a stripped `sops` block or MAC is
    // reported as such instead of being read as plaintext.
    let mut withheld = BTreeSet::new();
    let plain = if sops::is_encrypted(&text) || rel.ends_with(".sops.yaml") {
        // What anyone can read, checked before any key is used.
        let public = match sops::public_document(&rel, &text) {
            Ok(p) => p,
            Err(e) => {
                r.push(Finding::new(Code::SopsMac, false, subject, e.to_string()).in_file(file));
                return Err(format!("{phase} cannot be read as SOPS"));
            }
        };
        private_key_sealed(ctx, subject, &rel, &public, r);
        if ctx.opts.identities.is_empty() {
            let (yaml, hidden) = without_identity(ctx, subject, &phase, &rel, public, r)?;
            withheld = hidden;
            yaml
        } else {
            decrypted(ctx, subject, &phase, &rel, &text, r)?
        }
    } else {
        zeroize::Zeroizing::new(text)
    };
    match serde_saphyr::from_str::<serde_json::Value>(&plain) {
        Ok(doc) => Ok(Opened {
            rel,
            doc: Wiped(doc),
            withheld,
        }),
        Err(e) => {
            let msg = format!("not YAML: {}", e.without_snippet());
            r.push(
                Finding::new(Code::SecretShape, false, subject, msg)
                    .in_file(file)
                    .hint("re-render"),
            );
            Err(format!("{phase} Secret is not YAML"))
        }
    }
}

/// A SOPS Secret read without an identity: its public part (only private keys are
/// ciphertext), with `sops-mac` not checked — or failed, when ciphertext sits where the key
/// rule selects none — and the data keys whose values are withheld.
fn without_identity(
    ctx: &Ctx<'_>,
    subject: &str,
    phase: &str,
    rel: &str,
    public: sops::PublicDocument,
    r: &mut Report,
) -> Result<(zeroize::Zeroizing<String>, BTreeSet<String>), String> {
    let file = Some(rel);
    r.push(match public.unselected_ciphertext.first() {
        // Seen without a key: sops hashes that ciphertext as text, so the MAC fails.
        Some(p) => Finding::new(
            Code::SopsMac,
            false,
            subject,
            format!(
                "the value at `{p}` is sops ciphertext that the file's key rule does not \
                 select (the rule was changed after encryption): sops will refuse the file"
            ),
        )
        .in_file(file),
        None => needs_key(ctx, Code::SopsMac, subject, "the MAC over every value").in_file(file),
    });
    if public.withheld.iter().any(|p| p == "data") {
        let msg = "every data value is ciphertext (rendered before rootroll encrypted \
                   only private keys): nothing can be checked without an identity";
        r.push(
            Finding::new(Code::SecretShape, false, subject, msg)
                .in_file(file)
                .hint("re-render with an identity, or run verify with --identity"),
        );
        return Err(format!("{phase} is all ciphertext (no identity)"));
    }
    let withheld = public
        .withheld
        .iter()
        .filter_map(|p| p.strip_prefix("data:"))
        .map(str::to_string)
        .collect();
    Ok((zeroize::Zeroizing::new(public.yaml), withheld))
}

/// `no-plaintext-private-key` for one SOPS Secret: its private-key entry is ciphertext (a
/// ciphertext the file's rule does not select breaks the MAC, which `sops-mac` reports).
fn private_key_sealed(
    ctx: &Ctx<'_>,
    subject: &str,
    rel: &str,
    public: &sops::PublicDocument,
    r: &mut Report,
) {
    let key = ctx.repo.rollout.mesh.secret_format.private_key();
    let withheld = public
        .withheld
        .iter()
        .any(|p| p.strip_prefix("data:") == Some(key) || p == "data");
    let sealed = withheld
        || serde_saphyr::from_str::<serde_json::Value>(&public.yaml)
            .map(Wiped)
            .is_ok_and(|doc| doc.0["data"][key].as_str().is_some_and(sops::is_ciphertext));
    let msg = if sealed {
        format!("{key} is sops ciphertext")
    } else {
        format!("{key} is not sops ciphertext: the file's encrypted_regex leaves it readable")
    };
    r.push(
        Finding::new(Code::NoPlaintextPrivateKey, sealed, subject, msg)
            .in_file(Some(rel))
            .hint("re-render: rootroll encrypts the private key of every phase Secret"),
    );
}

/// The Secret decrypted with the run's identities, its MAC verified (`sops-mac`).
fn decrypted(
    ctx: &Ctx<'_>,
    subject: &str,
    phase: &str,
    rel: &str,
    text: &str,
    r: &mut Report,
) -> Result<zeroize::Zeroizing<String>, String> {
    let file = Some(rel);
    match sops::decrypt_yaml(rel, text, ctx.opts.identities) {
        Ok(p) => {
            r.push(
                Finding::new(Code::SopsMac, true, subject, "decrypted, MAC verified").in_file(file),
            );
            Ok(p)
        }
        Err(e) => {
            r.push(Finding::new(Code::SopsMac, false, subject, e.to_string()).in_file(file));
            Err(format!("{phase} did not decrypt"))
        }
    }
}
