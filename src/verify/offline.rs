//! `verify offline`: static gates over a rendered repository, per cluster and phase.
//!
//! Everything is read from the directory itself (the Secrets, the pointers and
//! `.rootroll/rollout.json`), so the gates check what Flux or Argo CD will apply, not what
//! rootroll meant to write. What cannot be read is a failed gate, never a pass.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use time::OffsetDateTime;

use super::{Finding, Report, Severity};
use crate::gates::Code;
use crate::model::{byte_reload_ok, phase_dir, set_reload_ok};
use crate::pki::{self, PrivateKeyPem};
use crate::repo::{Repo, RepoError};
use crate::sops;

/// Errors that stop verification altogether (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The rendered repository cannot be read.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// The readable content of one phase Secret.
#[derive(Clone)]
pub struct PhaseSecret {
    pub cluster: String,
    pub phase: u8,
    pub file: String,
    pub secret_type: String,
    /// Signing cert (first certificate of `ca-cert.pem` / `tls.crt`), DER.
    pub signer: Vec<u8>,
    pub signer_pem: String,
    pub key: PrivateKeyPem,
    /// `root-cert.pem` / `ca.crt`, exact bytes.
    pub bundle: Vec<u8>,
    /// What istiod serves after the leaf: `cert-chain.pem`, or `tls.crt` + `ca.crt`.
    pub chain: Vec<u8>,
}

/// Options for a run.
pub struct Options<'a> {
    pub identities: &'a [age::x25519::Identity],
    /// The planned time the checks are made at.
    pub now: OffsetDateTime,
}

fn finding(
    code: Code,
    severity: Severity,
    passed: bool,
    subject: &str,
    file: Option<&str>,
    message: impl Into<String>,
    hint: &str,
) -> Finding {
    Finding {
        code,
        severity,
        passed,
        subject: subject.to_string(),
        file: file.map(str::to_string),
        message: message.into(),
        hint: hint.to_string(),
        details: Vec::new(),
        not_checked: None,
    }
}

fn b64(v: &serde_json::Value) -> Option<Vec<u8>> {
    super::common::b64(v.as_str()?)
}

/// Runs every static gate. Returns the report and the readable phase Secrets (for the matrix).
pub fn run(repo: &Repo, opts: &Options<'_>) -> Result<(Report, Vec<PhaseSecret>), VerifyError> {
    let ctx = &repo.rollout;
    let dir = repo.dir();
    let mut r = Report::default();
    let clusters = repo.clusters.clone();
    let rollout_end = opts.now
        + (ctx.min_total + ctx.timing.workload_cert_ttl + ctx.timing.safety_margin).to_time();
    let mut secrets: Vec<PhaseSecret> = Vec::new();
    let mut bundles: BTreeMap<u8, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let mut active: BTreeMap<String, u8> = BTreeMap::new();

    // A cluster missing from the tree is never checked, so it fails here.
    let missing: Vec<&str> = ctx
        .clusters
        .iter()
        .map(|c| c.name.as_str())
        .filter(|c| !clusters.iter().any(|have| have == c))
        .collect();
    r.push(finding(
        Code::ClustersPresent,
        Severity::Error,
        !clusters.is_empty() && missing.is_empty(),
        "fleet",
        None,
        if clusters.is_empty() {
            "no cluster directory (clusters/<name>/istio-ca) found: nothing could be checked"
                .to_string()
        } else if missing.is_empty() {
            format!("{} cluster(s): {}", clusters.len(), clusters.join(", "))
        } else {
            format!(
                "the rollout names cluster(s) missing from the tree: {}",
                missing.join(", ")
            )
        },
        "re-render: every cluster of the plan needs clusters/<name>/istio-ca",
    ));

    // Clusters are independent: check them on every core, then merge in order.
    let checked = crate::parallel::map(
        &clusters,
        |c| check_cluster(repo, c, opts, rollout_end),
        |_, _| {},
    );
    for (c, checked) in clusters.iter().zip(checked) {
        r.findings.extend(checked.report.findings);
        if let Some(n) = checked.active {
            active.insert(c.clone(), n);
        }
        for (n, s) in checked.secrets {
            bundles
                .entry(n)
                .or_default()
                .insert(c.clone(), s.bundle.clone());
            secrets.push(s);
        }
    }

    // Fleet-wide gates.
    for (n, per) in &bundles {
        let distinct: BTreeSet<&Vec<u8>> = per.values().collect();
        r.push(finding(
            Code::BundleShared,
            Severity::Error,
            distinct.len() <= 1,
            &format!("fleet/{}", phase_dir(*n)),
            None,
            format!(
                "{} cluster(s) carry {} distinct root bundle(s)",
                per.len(),
                distinct.len()
            ),
            "every cluster must carry the same root bundle in a phase (shared root, lockstep)",
        ));
    }
    if let Some(p2) = bundles.get(&2).and_then(|m| m.values().next())
        && let Ok(ders) = pki::split_certificates(p2)
    {
        let subjects: Vec<String> = ders
            .iter()
            .filter_map(|d| pki::inspect_der(d).ok())
            .map(|s| s.subject)
            .collect();
        let unique: BTreeSet<&String> = subjects.iter().collect();
        r.push(finding(
            Code::RootSubjectsDistinct,
            Severity::Warning,
            unique.len() == subjects.len(),
            "fleet/2-trust-both",
            None,
            format!("root subjects: {}", subjects.join(" | ")),
            "give the new root a distinct subject: Envoy and OpenSSL look issuers up by name",
        ));
    }
    lockstep(&active, &mut r);
    plaintext_scan(dir, &mut r);
    Ok((r, secrets))
}

/// What one cluster's gates found.
struct ClusterCheck {
    report: Report,
    active: Option<u8>,
    secrets: BTreeMap<u8, PhaseSecret>,
}

/// The per-cluster gates: pointer, each phase Secret, type stability, and the reload rule,
/// phase-3 bytes and signer sequence between consecutive phases.
fn check_cluster(
    repo: &Repo,
    c: &str,
    opts: &Options<'_>,
    rollout_end: OffsetDateTime,
) -> ClusterCheck {
    let mut out = ClusterCheck {
        report: Report::default(),
        active: None,
        secrets: BTreeMap::new(),
    };
    let ctx = &repo.rollout;
    let r = &mut out.report;
    match repo.active(c) {
        Ok(n) => {
            r.push(finding(Code::PointerValid, Severity::Error, true, c, None, format!("active phase {}", phase_dir(n)), ""));
            out.active = Some(n);
        }
        Err(why) => r.push(finding(
            Code::PointerValid,
            Severity::Error,
            false,
            c,
            None,
            why,
            "the pointer kustomization must list exactly one `phases/<n>-<name>` resource; use rootroll promote",
        )),
    }
    let mut types = BTreeSet::new();
    let mut cluster_secrets: BTreeMap<u8, PhaseSecret> = BTreeMap::new();
    for n in 1..=4u8 {
        let subject = format!("{c}/{}", phase_dir(n));
        if let Some(s) = check_phase(repo, c, n, &subject, opts, rollout_end, r) {
            types.insert(s.secret_type.clone());
            cluster_secrets.insert(n, s);
        }
    }
    r.push(finding(
        Code::SecretTypeStable,
        Severity::Error,
        types.len() <= 1,
        c,
        None,
        format!(
            "Secret type in every phase: {}",
            types.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
        "a Secret's type is immutable: every phase must use the live Secret's type",
    ));
    // Reload rule between consecutive phases.
    for n in 1..4u8 {
        let subject = format!("{c}/{}→{}", phase_dir(n), phase_dir(n + 1));
        let (Some(a), Some(b)) = (cluster_secrets.get(&n), cluster_secrets.get(&(n + 1))) else {
            r.push(finding(
                Code::ReloadRule,
                Severity::Error,
                false,
                &subject,
                None,
                "a phase could not be read",
                "fix the phase Secrets first",
            ));
            continue;
        };
        // Only the rule the oldest istiod applies is checked.
        let (ok, rule) = if ctx.mesh.min_istio_version.has_set_reload_rule() {
            (set_reload_ok(&a.bundle, &b.bundle), "1.30+ set rule")
        } else {
            (
                byte_reload_ok(&a.bundle, &b.bundle),
                "1.20–1.29 byte containment",
            )
        };
        r.push(finding(
            Code::ReloadRule,
            Severity::Error,
            ok,
            &subject,
            None,
            format!(
                "istiod {rule}: {}",
                if ok {
                    "new root-cert.pem accepted"
                } else {
                    "new root-cert.pem would be rejected (\"Updating new ROOT-CA not supported\")"
                }
            ),
            "keep the previous bundle's exact bytes as a prefix (or a subset) of the next",
        ));
        if n == 2 {
            r.push(finding(
                Code::Phase3BytesDiffer,
                Severity::Error,
                a.bundle != b.bundle,
                &subject,
                None,
                "phase 3 root-cert.pem bytes differ from phase 2 (proxies re-sign at once)",
                "phase 3 must be A+B+B: identical bytes mean no bundle push and no immediate re-sign",
            ));
        }
        let same_signer = a.signer == b.signer;
        let want_same = n != 2;
        r.push(finding(
            Code::SignerSequence,
            Severity::Error,
            same_signer == want_same,
            &subject,
            None,
            if want_same {
                "same signing intermediate"
            } else {
                "signing intermediate switches to B's"
            },
            "phases 1–2 sign with A's intermediate and 3–4 with B's",
        ));
    }
    out.secrets = cluster_secrets;
    out
}

/// No cluster may enter phase 3 before all are at 2, nor 4 before all are at 3.
pub fn lockstep_problem(active: &BTreeMap<String, u8>) -> Option<String> {
    let min = active.values().min().copied()?;
    let max = active.values().max().copied()?;
    if max > min + 1 {
        return Some(format!("clusters span phases {min} to {max}"));
    }
    if max >= 3 && min < max {
        let behind: Vec<&str> = active
            .iter()
            .filter(|(_, p)| **p < max)
            .map(|(c, _)| c.as_str())
            .collect();
        if max == 3 && min == 2 || max == 4 && min == 3 {
            return Some(format!(
                "{} still at phase {min} while others are at {max}",
                behind.join(", ")
            ));
        }
    }
    None
}

fn lockstep(active: &BTreeMap<String, u8>, r: &mut Report) {
    let problem = lockstep_problem(active);
    let summary: Vec<String> = active.iter().map(|(c, p)| format!("{c}={p}")).collect();
    r.push(finding(
        Code::Lockstep,
        Severity::Error,
        problem.is_none(),
        "fleet",
        None,
        problem.unwrap_or_else(|| format!("active phases {}", summary.join(", "))),
        "promote every cluster to a phase before any cluster enters the next (3 only after all are at 2, 4 only after all are at 3)",
    ));
}

fn plaintext_scan(dir: &Path, r: &mut Report) {
    const NEEDLES: [&str; 5] = [
        "PRIVATE KEY-----",
        "LS0tLS1CRUdJTi",
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
    r.push(finding(
        Code::NoPlaintextPrivateKey,
        Severity::Error,
        offenders.is_empty(),
        "fleet",
        None,
        if offenders.is_empty() {
            "no PEM or base64 PEM outside SOPS ciphertext".to_string()
        } else {
            format!(
                "plaintext key material (or an unreadable file) in {}",
                offenders.join(", ")
            )
        },
        "render without --insecure-plaintext so every private key is SOPS-encrypted",
    ));
}

#[allow(clippy::too_many_arguments)]
fn check_phase(
    repo: &Repo,
    cluster: &str,
    n: u8,
    subject: &str,
    opts: &Options<'_>,
    rollout_end: OffsetDateTime,
    r: &mut Report,
) -> Option<PhaseSecret> {
    let ctx = &repo.rollout;
    let found = match repo.phase_secret(cluster, n) {
        Ok(Some(found)) => found,
        Ok(None) => {
            r.push(finding(
                Code::SecretShape,
                Severity::Error,
                false,
                subject,
                None,
                format!(
                    "no {} in {}",
                    crate::repo::SECRET_FILES.join(" or "),
                    crate::repo::phase_path(cluster, n)
                ),
                "every phase must be a complete cacerts Secret: re-render",
            ));
            return None;
        }
        Err(unreadable) => {
            r.push(finding(
                Code::SecretShape,
                Severity::Error,
                false,
                subject,
                None,
                format!("cannot read the phase Secret: {unreadable}"),
                "every phase must be a complete cacerts Secret: re-render",
            ));
            return None;
        }
    };
    let (rel, text) = found;
    let file = Some(rel.as_str());
    // A `.sops.yaml` file is always opened as SOPS, so a stripped `sops` block or MAC is
    // reported as such instead of being read as plaintext.
    let plain = if sops::is_encrypted(&text) || rel.ends_with(".sops.yaml") {
        if opts.identities.is_empty() {
            r.push(finding(Code::SopsMac, Severity::Error, false, subject, file, "not checked: no age identity to decrypt with", "give --identity FILE (or SOPS_AGE_KEY_FILE) with a key listed in ageRecipients; a CI key is fine"));
            return None;
        }
        match sops::decrypt_yaml(&rel, &text, opts.identities) {
            Ok(p) => {
                r.push(finding(
                    Code::SopsMac,
                    Severity::Error,
                    true,
                    subject,
                    file,
                    "decrypted, MAC verified",
                    "",
                ));
                p
            }
            Err(e) => {
                r.push(finding(
                    Code::SopsMac,
                    Severity::Error,
                    false,
                    subject,
                    file,
                    e.to_string(),
                    "re-render the file; never edit encrypted files except with `sops edit`",
                ));
                return None;
            }
        }
    } else {
        zeroize::Zeroizing::new(text)
    };
    let doc: serde_json::Value = match serde_saphyr::from_str(&plain) {
        Ok(v) => v,
        Err(e) => {
            r.push(finding(
                Code::SecretShape,
                Severity::Error,
                false,
                subject,
                file,
                format!("not YAML: {}", e.without_snippet()),
                "re-render",
            ));
            return None;
        }
    };
    // Shape.
    let format = ctx.mesh.secret_format;
    let want_keys = format.keys();
    let doc = Wiped(doc);
    let doc = &doc.0;
    let no_data = serde_json::Map::new();
    let data = doc["data"].as_object().unwrap_or(&no_data);
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    let mut problems = Vec::new();
    if doc["kind"] != "Secret" || doc["apiVersion"] != "v1" {
        problems.push("not a v1 Secret".to_string());
    }
    if doc["metadata"]["name"] != ctx.mesh.secret_name.as_str()
        || doc["metadata"]["namespace"] != ctx.mesh.istio_namespace.as_str()
    {
        problems.push(format!(
            "not {}/{}",
            ctx.mesh.istio_namespace, ctx.mesh.secret_name
        ));
    }
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    if sorted != want_keys {
        problems.push(format!("keys {keys:?}, want {want_keys:?}"));
    }
    if data.contains_key("istio-generated") {
        problems.push(
            "has `istio-generated` (istiod would treat cacerts as its self-signed CA)".into(),
        );
    }
    if doc["immutable"] == true {
        problems.push("immutable: true (the next phase could not update it in place)".into());
    }
    let want_type = if ctx.tls_format() {
        "kubernetes.io/tls"
    } else {
        "Opaque"
    };
    let secret_type = doc["type"].as_str().unwrap_or("Opaque").to_string();
    if secret_type != want_type {
        problems.push(format!("type {secret_type}, want {want_type}"));
    }
    if doc["metadata"]["labels"]["rootroll.dev/phase"] != n.to_string().as_str() {
        problems.push("label rootroll.dev/phase does not match the directory".into());
    }
    let decoded: BTreeMap<String, zeroize::Zeroizing<Vec<u8>>> = data
        .iter()
        .filter_map(|(k, v)| b64(v).map(|b| (k.clone(), zeroize::Zeroizing::new(b))))
        .collect();
    if decoded.len() != data.len() || decoded.values().any(|v| v.is_empty()) {
        problems.push("a data value is empty or not base64".into());
    }
    r.push(finding(
        Code::SecretShape,
        Severity::Error,
        problems.is_empty(),
        subject,
        file,
        if problems.is_empty() {
            format!(
                "{want_type} {}/{} with {}",
                ctx.mesh.istio_namespace,
                ctx.mesh.secret_name,
                want_keys.join(", ")
            )
        } else {
            problems.join("; ")
        },
        "every phase must be a complete cacerts Secret of the live type, updated in place",
    ));
    if !problems.is_empty() {
        return None;
    }
    let (cert_k, key_k, bundle_k) = (format.cert_key(), format.private_key(), format.bundle_key());
    let bundle = decoded[bundle_k].to_vec();
    let chain = if ctx.tls_format() {
        let mut c = decoded["tls.crt"].to_vec();
        c.extend_from_slice(&decoded["ca.crt"]);
        c
    } else {
        decoded["cert-chain.pem"].to_vec()
    };
    // The signing certificate cannot be read: the phase is not checked further.
    let unreadable = |r: &mut Report, e: &dyn std::fmt::Display| {
        r.push(finding(
            Code::SignerIsCa,
            Severity::Error,
            false,
            subject,
            file,
            format!("{cert_k}: {e}"),
            "re-render",
        ));
    };
    let cert_ders = match pki::split_certificates(&decoded[cert_k]) {
        Ok(d) => d,
        Err(e) => {
            unreadable(r, &e);
            return None;
        }
    };
    let signer = cert_ders[0].clone();
    let key = PrivateKeyPem::new(String::from_utf8_lossy(&decoded[key_k]).into_owned());
    let matches = pki::key_matches_cert(&key, &signer).unwrap_or(false);
    r.push(finding(
        Code::KeyMatchesCert,
        Severity::Error,
        matches,
        subject,
        file,
        format!(
            "{key_k} {} {cert_k}",
            if matches {
                "belongs to"
            } else {
                "does NOT belong to"
            }
        ),
        "istiod refuses a key that does not match its certificate and keeps the old CA",
    ));

    let s = match pki::inspect_der(&signer) {
        Ok(s) => s,
        Err(e) => {
            unreadable(r, &e);
            return None;
        }
    };
    let eku_ok = s.ext_key_usage.is_empty()
        || s.ext_key_usage
            .iter()
            .any(|e| e == "serverAuth" || e == "any");
    let ca_ok = s.is_ca && s.key_cert_sign && eku_ok;
    r.push(finding(
        Code::SignerIsCa,
        Severity::Error,
        ca_ok,
        subject,
        file,
        format!("{}: CA {}, keyCertSign {}, EKU [{}]", s.subject, s.is_ca, s.key_cert_sign, s.ext_key_usage.join(", ")),
        "the signing certificate needs basicConstraints CA:TRUE, keyCertSign and no EKU (or one with serverAuth)",
    ));

    let roots = pki::split_certificates(&bundle).unwrap_or_default();
    let chain_ders = pki::split_certificates(&chain).unwrap_or_default();
    // Chain to a root of this phase's bundle, through the served chain's certificates.
    let chained = chains_to_bundle(&signer, &chain_ders, &roots);
    r.push(finding(
        Code::ChainToBundle,
        Severity::Error,
        chained.is_ok(),
        subject,
        file,
        match &chained {
            Ok(path) => format!("{} chains to a root of {bundle_k} ({path})", s.subject),
            Err(why) => why.clone(),
        },
        "istiod verifies the signing certificate against root-cert.pem at load and keeps the old CA on failure",
    ));
    if !ctx.tls_format() {
        let order_ok = chain_ders.first() == Some(&signer)
            && chain_ders
                .windows(2)
                .all(|w| pki::is_signed_by(&w[0], &w[1]))
            && chain_ders.last().is_some_and(|l| roots.contains(l));
        r.push(finding(Code::ChainOrder, Severity::Error, order_ok, subject, file, if order_ok { "cert-chain.pem = ca-cert.pem, then issuers up to a bundle root" } else { "cert-chain.pem is not ca-cert.pem followed by its issuers up to a bundle root" }, "istiod serves cert-chain.pem verbatim after each leaf: signing cert first, then each issuer"));
    }
    // Validity through the rollout.
    let mut short = Vec::new();
    for der in std::iter::once(&signer).chain(roots.iter()) {
        if let Ok(c) = pki::inspect_der(der)
            && !(c.not_before <= opts.now && rollout_end <= c.not_after)
        {
            short.push(format!(
                "{} ({} → {})",
                c.subject,
                c.not_before.date(),
                c.not_after.date()
            ));
        }
    }
    r.push(finding(
        Code::ValidityWindow,
        Severity::Error,
        short.is_empty(),
        subject,
        file,
        if short.is_empty() {
            format!(
                "signer and roots valid from now through {}",
                rollout_end.date()
            )
        } else {
            format!("not valid for the whole rollout: {}", short.join(", "))
        },
        "use CAs valid from the planned apply time until well after the rollout ends",
    ));
    Some(PhaseSecret {
        cluster: cluster.to_string(),
        phase: n,
        file: rel,
        secret_type,
        signer_pem: pki::der_to_pem(&signer),
        signer,
        key,
        bundle,
        chain,
    })
}

/// A decrypted Secret read as JSON: its strings (base64 private keys among them) are wiped
/// when it is dropped.
struct Wiped(serde_json::Value);

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

/// Walks from `cert` through the `chain` certificates to a root of `roots`.
fn chains_to_bundle(cert: &[u8], chain: &[Vec<u8>], roots: &[Vec<u8>]) -> Result<String, String> {
    if roots.iter().any(|r| r.as_slice() == cert) && pki::is_signed_by(cert, cert) {
        return Ok("0 hop(s)".to_string());
    }
    pki::chain_hops(cert, chain, roots, 8)
        .map(|hops| format!("{hops} hop(s)"))
        .map_err(|last| {
            let issuer = pki::inspect_der(last).map(|s| s.issuer).unwrap_or_default();
            format!("no root in the bundle signed `{issuer}`")
        })
}

/// `verify offline`: every static gate, then the transition handshake matrix over the phase
/// Secrets that could be read. `progress` is called as matrix cells are decided (done, total).
pub fn execute(
    repo: &Repo,
    opts: &Options<'_>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Report, VerifyError> {
    let (mut report, secrets) = run(repo, opts)?;
    super::matrix::run(
        &mut report,
        &secrets,
        &repo.rollout.mesh.trust_domain,
        opts.now,
        &|_, _| true,
        progress,
    );
    Ok(report)
}
