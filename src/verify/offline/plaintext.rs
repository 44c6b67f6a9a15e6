//! `no-plaintext-private-key`: every file of the tree is read (links too, without following
//! directory links, which could loop) and none may hold a PEM private key or its base64
//! outside SOPS ciphertext; a file that cannot be read fails the gate. Certificates and
//! bundles are readable by design (a phase Secret encrypts only its private keys), so only
//! "PRIVATE KEY" counts. A phase Secret whose private-key entry is not ciphertext fails it too
//! (see [`super::read`]), whatever that entry holds.

use std::path::Path;

use super::Report;
use crate::gates::Code;
use crate::verify::Finding;

/// Adds one finding: no file under `dir` (`.git` aside) holds a private key as PEM or base64 PEM, and every file could be read.
pub fn scan(dir: &Path, r: &mut Report) {
    // "PRIVATE KEY" in PEM and at the three offsets of base64; certificates and bundles are
    // readable now (only private keys are ciphertext), so "-----BEGIN" alone says nothing.
    const NEEDLES: [&str; 4] = [
        "PRIVATE KEY-----",
        "UFJJVkFURSBLRVk",
        "BSSVZBVEUgS0VZ",
        "QUklWQVRFIEtFW",
    ];
    let mut offenders = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) => {
                offenders.push(format!("{} (cannot list: {e})", d.display()));
                continue;
            }
        };
        for e in entries {
            let e = match e {
                Ok(e) => e,
                Err(e) => {
                    offenders.push(format!("{} (cannot list: {e})", d.display()));
                    continue;
                }
            };
            let p = e.path();
            if e.file_name() == ".git" {
                continue;
            }
            let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
            // Directories are walked without following links (a link could loop); every file,
            // linked or not, is read, and one that cannot be read fails the gate.
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            if is_dir {
                stack.push(p);
                continue;
            }
            match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => continue,   // a link to a directory
                Ok(m) if !m.is_file() => continue, // a pipe or socket holds no file content
                Ok(_) => {}
                Err(e) => {
                    offenders.push(format!("{rel} (cannot read: {e})"));
                    continue;
                }
            }
            match std::fs::read(&p) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    if NEEDLES.iter().any(|n| text.contains(n)) {
                        offenders.push(rel);
                    }
                }
                Err(e) => offenders.push(format!("{rel} (cannot read: {e})")),
            }
        }
    }
    offenders.sort();
    let msg = if offenders.is_empty() {
        "no PEM or base64 PEM outside SOPS ciphertext".to_string()
    } else {
        format!(
            "plaintext key material (or an unreadable file) in {}",
            offenders.join(", ")
        )
    };
    r.push(Finding::new(
        Code::NoPlaintextPrivateKey,
        offenders.is_empty(),
        "fleet",
        msg,
    ));
}
