//! `no-plaintext-private-key`: every file of the tree is read (links too, without following
//! directory links, which could loop) and none may hold a PEM private key or its base64
//! outside SOPS ciphertext; a file that cannot be read fails the gate. Certificates and
//! bundles are readable by design (a phase Secret encrypts only its private keys), so only
//! "PRIVATE KEY" counts. A phase Secret whose private-key entry is not ciphertext fails it too
//! (see [`super::read`]), whatever that entry holds.

use super::Report;
use super::files::TreeFiles;
use crate::gates::Code;
use crate::verify::Finding;

/// Adds one finding: no file of the tree (`.git` aside) holds a private key as PEM or base64
/// PEM, and every file could be read.
pub fn scan(tree: &TreeFiles, r: &mut Report) {
    // "PRIVATE KEY" in PEM and at the three offsets of base64; certificates and bundles are
    // readable now (only private keys are ciphertext), so "-----BEGIN" alone says nothing.
    const NEEDLES: [&str; 4] = [
        "PRIVATE KEY-----",
        "UFJJVkFURSBLRVk",
        "BSSVZBVEUgS0VZ",
        "QUklWQVRFIEtFW",
    ];
    let mut offenders: Vec<String> = tree
        .files
        .iter()
        .filter(|f| {
            let text = String::from_utf8_lossy(&f.bytes);
            NEEDLES.iter().any(|n| text.contains(n))
        })
        .map(|f| f.rel.clone())
        .chain(
            tree.unreadable
                .iter()
                .map(|(rel, why)| format!("{rel} ({why})")),
        )
        .collect();
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
