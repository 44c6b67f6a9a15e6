//! `sops-recipients`: every SOPS file of the tree is encrypted to exactly the age recipients
//! its path calls for, as `rollout.json` records them ([`crate::plan::Gitops::recipients_for`]:
//! a cluster's files to the operators and that cluster's keys, the key state to the operators
//! only). "No more" matters most: one extra key can read a CA key it should not. Only the
//! public `sops` block is read (its `age[].recipient` list and any other key group), so the
//! gate needs no identity.

use std::collections::BTreeSet;

use super::Report;
use super::files::TreeFiles;
use crate::gates::Code;
use crate::plan::Gitops;
use crate::verify::Finding;

/// Adds one finding per SOPS file of the tree (`.git` aside): its recipients against the plan's.
pub fn check(tree: &TreeFiles, gitops: &Gitops, r: &mut Report) {
    for (rel, why) in &tree.unreadable {
        r.push(Finding::new(
            Code::SopsRecipients,
            false,
            rel,
            format!("{why}, so its recipients are unknown"),
        ));
    }
    let mut files: Vec<(&str, String)> = tree
        .files
        .iter()
        .filter(|f| f.rel.ends_with(".yaml") || f.rel.ends_with(".yml"))
        .map(|f| {
            (
                f.rel.as_str(),
                String::from_utf8_lossy(&f.bytes).into_owned(),
            )
        })
        .collect();
    // `.sops.yaml` (anywhere) is sops' configuration, not a SOPS file, unless it claims to be.
    files.retain(|(rel, text)| {
        let config = rel.rsplit('/').next() == Some(crate::repo::SOPS_CONFIG);
        (rel.ends_with(".sops.yaml") && !config) || crate::sops::claims_sops(text)
    });
    let seen = files.len();
    // Files are independent: judge them on every core, report them in path order.
    let judged = crate::parallel::map(
        &files,
        |(rel, text)| {
            judge(
                rel,
                text,
                &gitops.recipients_for(crate::repo::audience(rel)),
                gitops,
            )
        },
        |_, _| {},
    );
    for f in judged {
        r.push(f);
    }
    if seen == 0 {
        r.push(Finding::not_checked(
            Code::SopsRecipients,
            "fleet",
            "the tree holds no SOPS file (a plaintext render?)",
        ));
    }
}

/// The finding for one SOPS file.
fn judge(rel: &str, text: &str, want: &[crate::plan::Recipient], gitops: &Gitops) -> Finding {
    let fail = |msg: String| Finding::new(Code::SopsRecipients, false, rel, msg);
    let has = match readers(text) {
        Ok(has) => has,
        Err(why) => return fail(why),
    };
    let wanted: BTreeSet<&str> = want.iter().map(|r| r.key.as_str()).collect();
    let named = |key: &str| match gitops.name_of(key) {
        Some(name) => format!("{name} ({key})"),
        None => format!("{key} (not in the plan)"),
    };
    let extra: Vec<String> = has
        .iter()
        .filter(|k| !wanted.contains(k.as_str()))
        .map(|k| named(k))
        .collect();
    let missing: Vec<String> = want
        .iter()
        .filter(|r| !has.contains(&r.key))
        .map(|r| format!("{} ({})", r.name, r.key))
        .collect();
    if extra.is_empty() && missing.is_empty() {
        let names: Vec<&str> = want.iter().map(|r| r.name.as_str()).collect();
        return Finding::new(
            Code::SopsRecipients,
            true,
            rel,
            format!("encrypted to exactly {}", names.join(", ")),
        );
    }
    let mut parts = Vec::new();
    if !extra.is_empty() {
        parts.push(format!(
            "also readable by {}, which the plan does not give this file",
            extra.join(", ")
        ));
    }
    if !missing.is_empty() {
        parts.push(format!("not readable by {}", missing.join(", ")));
    }
    fail(parts.join("; "))
}

/// The `age` recipients of a SOPS document, and any other key group (PGP, KMS, Vault, key
/// groups) spelled as an extra reader `<kind>:<n>`.
fn readers(text: &str) -> Result<BTreeSet<String>, String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        sops: Option<serde_json::Value>,
    }
    let doc: Doc = serde_saphyr::from_str(text)
        .map_err(|e| format!("its sops block cannot be read: {}", e.without_snippet()))?;
    let Some(serde_json::Value::Object(meta)) = doc.sops else {
        return Err("it has no sops block: it is not encrypted".into());
    };
    let mut has = BTreeSet::new();
    for (kind, value) in &meta {
        match (kind.as_str(), value) {
            ("age", serde_json::Value::Array(stanzas)) => {
                for s in stanzas {
                    match s.get("recipient").and_then(serde_json::Value::as_str) {
                        Some(k) => {
                            has.insert(k.trim().to_string());
                        }
                        None => {
                            return Err("an age entry of its sops block names no recipient".into());
                        }
                    }
                }
            }
            ("age", serde_json::Value::Null) => {}
            ("age", _) => return Err("`sops.age` is not a list".into()),
            ("kms" | "gcp_kms" | "azure_kv" | "hc_vault" | "pgp" | "key_groups" | "hckms", v) => {
                let n = match v {
                    serde_json::Value::Null => 0,
                    serde_json::Value::Array(a) => a.len(),
                    serde_json::Value::String(s) if s.is_empty() => 0,
                    _ => 1,
                };
                for i in 0..n {
                    has.insert(format!("{kind}:{i}"));
                }
            }
            _ => {}
        }
    }
    Ok(has)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_are_every_age_recipient_and_every_other_key_group() {
        let text = "data:\n  a: ENC[x]\nsops:\n  age:\n    - recipient: age1a\n      enc: x\n    - recipient: age1b\n      enc: y\n  pgp:\n    - fp: ABC\n  mac: m\n";
        let has = readers(text).unwrap();
        assert_eq!(
            has,
            ["age1a", "age1b", "pgp:0"]
                .map(String::from)
                .into_iter()
                .collect()
        );
        assert!(readers("data: {}\n").is_err());
        assert!(readers("sops:\n  age:\n    - enc: x\n").is_err());
        assert!(readers(": : :\n").is_err());
    }
}
