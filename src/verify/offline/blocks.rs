//! `bundle-blocks`: every PEM block istiod reads from a phase Secret (the root bundle, and the
//! chain it serves) is a clean `CERTIFICATE` block of a CA certificate, with nothing but blank
//! lines between blocks. Since 1.28 istiod drops an unparseable certificate from the root bundle
//! instead of rejecting the bundle (istio-2026.md §1), so a damaged block loses a root at
//! runtime without an error; and text between blocks is where a damaged paste hides.
//!
//! Written here rather than with `pem::parse_many`, which skips text between blocks and so
//! cannot tell a clean bundle from one with a stray line.

use super::shape::Data;
use super::{Ctx, Report};
use crate::gates::Code;
use crate::verify::Finding;

/// What is wrong with the PEM text of `name`, one entry per problem (empty: clean).
pub fn problems(name: &str, bytes: &[u8]) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return vec![format!("{name} is not text")];
    };
    let mut out = Vec::new();
    let mut blocks = 0;
    let mut open: Option<(usize, &str, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let at = i + 1;
        match &mut open {
            None if line.trim().is_empty() => {}
            None => match line
                .strip_prefix("-----BEGIN ")
                .and_then(|l| l.strip_suffix("-----"))
            {
                Some(label) => open = Some((at, label, format!("{line}\n"))),
                None => out.push(format!("{name} line {at} is text outside a PEM block")),
            },
            Some((start, label, block)) => {
                block.push_str(line);
                block.push('\n');
                if line == format!("-----END {label}-----") {
                    blocks += 1;
                    if let Some(p) = block_problem(label, block) {
                        out.push(format!("{name} block {blocks} (line {start}) {p}"));
                    }
                    open = None;
                }
            }
        }
    }
    if let Some((start, label, _)) = open {
        out.push(format!(
            "{name} block at line {start} ({label}) has no END line"
        ));
    }
    if blocks == 0 && out.is_empty() {
        out.push(format!("{name} holds no certificate"));
    }
    out
}

/// Why one complete block is not a CA certificate istiod keeps.
fn block_problem(label: &str, block: &str) -> Option<String> {
    if label != "CERTIFICATE" {
        return Some(format!("is a {label} block, not a CERTIFICATE"));
    }
    let der = match pem::parse(block) {
        Ok(p) => p.into_contents(),
        Err(e) => return Some(format!("does not decode: {e}")),
    };
    match crate::pki::inspect_der(&der) {
        Err(e) => Some(format!("does not parse as a certificate: {e}")),
        Ok(s) if !s.is_ca => Some(format!("is not a CA certificate ({})", s.subject)),
        Ok(_) => None,
    }
}

/// `bundle-blocks` for one phase: its bundle and, in the cacerts format, `cert-chain.pem`.
pub fn check(ctx: &Ctx<'_>, subject: &str, data: &Data, r: &mut Report) {
    let format = &ctx.repo.rollout.mesh.secret_format;
    let mut keys = vec![format.bundle_key()];
    if data.contains_key("cert-chain.pem") {
        keys.push("cert-chain.pem");
    }
    let mut found = Vec::new();
    for k in &keys {
        if let Some(bytes) = data.get(*k) {
            found.extend(problems(k, bytes));
        }
    }
    let msg = if found.is_empty() {
        format!("{}: clean CA CERTIFICATE blocks only", keys.join(" and "))
    } else {
        found.join("; ")
    };
    r.push(Finding::new(
        Code::BundleBlocks,
        found.is_empty(),
        subject,
        msg,
    ));
}

#[cfg(test)]
mod tests {
    use super::problems;

    fn ca() -> String {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().pem()
    }

    fn leaf() -> String {
        let p = rcgen::CertificateParams::new(vec!["leaf.example".to_string()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn clean_bundles_pass_and_every_damage_is_named() {
        let (a, b) = (ca(), ca());
        assert_eq!(
            problems("root-cert.pem", format!("{a}{b}").as_bytes()),
            Vec::<String>::new()
        );
        assert_eq!(
            problems("root-cert.pem", format!("{a}\n\n{b}\n").as_bytes()),
            Vec::<String>::new()
        );

        let stray = format!("{a}# root B follows\n{b}");
        let lines = a.lines().count();
        assert_eq!(
            problems("root-cert.pem", stray.as_bytes()),
            [format!(
                "root-cert.pem line {} is text outside a PEM block",
                lines + 1
            )]
        );
        // A damaged base64 line in root B: istiod 1.28+ would drop B silently.
        let mut damaged: Vec<String> = b.lines().map(String::from).collect();
        damaged[3] = damaged[3].replacen(|c: char| c.is_ascii_alphanumeric(), "*", 1);
        let damaged = format!("{a}{}\n", damaged.join("\n"));
        let p = problems("root-cert.pem", damaged.as_bytes());
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(&format!(
                "root-cert.pem block 2 (line {}) does not decode",
                lines + 1
            )),
            "{p:?}"
        );

        let l = leaf();
        let p = problems("root-cert.pem", format!("{a}{l}").as_bytes());
        assert!(
            p[0].starts_with("root-cert.pem block 2 (line")
                && p[0].contains("is not a CA certificate"),
            "{p:?}"
        );

        let key = concat!(
            "-----BEGIN ",
            "EC PRIVATE KEY-----\nAAAA\n-----END ",
            "EC PRIVATE KEY-----\n"
        );
        let p = problems("root-cert.pem", format!("{a}{key}").as_bytes());
        assert!(
            p[0].ends_with("is a EC PRIVATE KEY block, not a CERTIFICATE"),
            "{p:?}"
        );

        let cut = &a[..a.len() - 30];
        assert_eq!(
            problems("root-cert.pem", cut.as_bytes()),
            ["root-cert.pem block at line 1 (CERTIFICATE) has no END line"]
        );
        assert_eq!(
            problems("root-cert.pem", b"\n"),
            ["root-cert.pem holds no certificate"]
        );
    }
}
