//! Opening a phase Secret: the file exists, decrypts with an identity and its SOPS MAC
//! verifies (`sops-mac`), and it parses as YAML. Each failure is the phase's root cause.

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
    /// The decrypted Secret document, wiped on drop.
    pub doc: Wiped,
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
                repo::phase_path(cluster, n)
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
    let plain = if sops::is_encrypted(&text) || rel.ends_with(".sops.yaml") {
        if ctx.opts.identities.is_empty() {
            r.push(
                Finding::new(
                    Code::SopsMac,
                    false,
                    subject,
                    "not checked: no age identity to decrypt with",
                )
                .in_file(file),
            );
            return Err(format!("{phase} was not decrypted (no age identity)"));
        }
        match sops::decrypt_yaml(&rel, &text, ctx.opts.identities) {
            Ok(p) => {
                r.push(
                    Finding::new(Code::SopsMac, true, subject, "decrypted, MAC verified")
                        .in_file(file),
                );
                p
            }
            Err(e) => {
                r.push(Finding::new(Code::SopsMac, false, subject, e.to_string()).in_file(file));
                return Err(format!("{phase} did not decrypt"));
            }
        }
    } else {
        zeroize::Zeroizing::new(text)
    };
    match serde_saphyr::from_str::<serde_json::Value>(&plain) {
        Ok(doc) => Ok(Opened {
            rel,
            doc: Wiped(doc),
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
