//! What each phase's `root-cert.pem` must hold: exactly the roots the rollout planned, in its
//! order (`bundle-roots`), the very bytes it computed where bytes matter (`bundle-bytes`:
//! phase 1 always, as it must equal today's live bytes; every phase under istiod's 1.20–1.29
//! byte reload rule), and no two different roots under one subject name
//! (`root-subjects-distinct`, the rule `plan` applies as root-subject-reused).

use std::collections::{BTreeMap, BTreeSet};

use super::{Ctx, PhaseSecret, Report};
use crate::gates::Code;
use crate::model::{CertView, RootName, Strategy, phase_dir};
use crate::pki;
use crate::verify::Finding;

/// Whether phase `n`'s bundle bytes must equal the planned bytes exactly.
pub fn bytes_matter(ctx: &Ctx<'_>, n: u8) -> bool {
    n == 1
        || !ctx
            .repo
            .rollout
            .mesh
            .min_istio_version
            .has_set_reload_rule()
}

/// `A`, `B` or an unplanned root, for a certificate's sha256.
fn name_of(ctx: &Ctx<'_>, sha: &str, der: &[u8]) -> String {
    let r = &ctx.repo.rollout;
    let known = |v: &CertView| matches!(v, CertView::Known(s) if s.sha256 == sha);
    if r.current_roots.iter().any(known) {
        return RootName::A.as_str().to_string();
    }
    if known(&r.new_root) {
        return RootName::B.as_str().to_string();
    }
    let subject = pki::inspect_der(der).map(|s| s.subject).unwrap_or_default();
    format!("an unplanned root `{subject}` (sha256:{})", &sha[..16])
}

/// `bundle-roots` and `bundle-bytes` for one phase.
pub fn planned(ctx: &Ctx<'_>, subject: &str, n: u8, s: &PhaseSecret, r: &mut Report) {
    let bundle_k = ctx.repo.rollout.mesh.secret_format.bundle_key();
    let Some(phase) = ctx.repo.rollout.phase(n) else {
        let msg = format!("the rollout file has no phase {n}: re-render");
        r.push(Finding::new(Code::BundleRoots, false, subject, msg));
        return;
    };
    let want: Option<Vec<(RootName, &str)>> = phase
        .bundle
        .iter()
        .map(|e| match &e.cert {
            CertView::Known(c) => Some((e.root, c.sha256.as_str())),
            CertView::Planned { .. } => None,
        })
        .collect();
    let planned_names = phase
        .bundle
        .iter()
        .map(|e| e.root.as_str())
        .collect::<Vec<_>>()
        .join("+");
    let finding = match (want, pki::split_certificates(&s.bundle)) {
        (None, _) => Finding::new(
            Code::BundleRoots,
            false,
            subject,
            format!("the rollout file records no fingerprint for a root of phase {n}: re-render"),
        ),
        (_, Err(e)) => Finding::new(
            Code::BundleRoots,
            false,
            subject,
            format!("phase {n} {bundle_k} is not a clean list of certificates: {e}"),
        ),
        (Some(want), Ok(ders)) => {
            let have: Vec<String> = ders.iter().map(|d| pki::sha256_hex(d)).collect();
            let ok = have.len() == want.len() && have.iter().zip(&want).all(|(h, (_, w))| h == w);
            let names: Vec<String> = have
                .iter()
                .zip(&ders)
                .map(|(h, d)| name_of(ctx, h, d))
                .collect();
            let msg = if ok {
                format!("{bundle_k} holds {planned_names}, as planned")
            } else {
                format!(
                    "phase {n} {bundle_k} holds {}; the rollout plans {planned_names}",
                    names.join(", ")
                )
            };
            Finding::new(Code::BundleRoots, ok, subject, msg)
        }
    };
    r.push(finding.in_file(Some(&s.file)));
    if bytes_matter(ctx, n) {
        bundle_bytes(ctx, subject, n, s, phase.bundle_sha256.as_deref(), r);
    }
}

/// `bundle-bytes`: the sha256 of the exact bundle bytes is the one the rollout recorded.
fn bundle_bytes(
    ctx: &Ctx<'_>,
    subject: &str,
    n: u8,
    s: &PhaseSecret,
    want: Option<&str>,
    r: &mut Report,
) {
    let bundle_k = ctx.repo.rollout.mesh.secret_format.bundle_key();
    let have = pki::sha256_hex(&s.bundle);
    let what = if n == 1 {
        "today's root-cert.pem (the imported or current bundle)".to_string()
    } else {
        format!("the bytes the rollout computed for phase {n}")
    };
    let (ok, msg) = match want {
        None => (
            false,
            format!("the rollout file records no bundle digest for phase {n}: re-render"),
        ),
        Some(w) if w == have => (
            true,
            format!(
                "{bundle_k} is byte for byte {what} (sha256:{})",
                &have[..16]
            ),
        ),
        Some(w) => (
            false,
            format!(
                "phase {n} {bundle_k} bytes (sha256:{}) are not {what} (sha256:{})",
                &have[..16],
                &w[..w.len().min(16)]
            ),
        ),
    };
    r.push(Finding::new(Code::BundleBytes, ok, subject, msg).in_file(Some(&s.file)));
}

/// `root-subjects-distinct`, per phase over every cluster's bundle: two different roots with
/// one subject make BoringSSL and OpenSSL pick the wrong issuer.
pub fn root_subjects_distinct(strategy: Strategy, secrets: &[PhaseSecret], r: &mut Report) {
    for n in strategy.numbers() {
        let subject = format!("fleet/{}", phase_dir(strategy, n));
        let bundles: BTreeSet<&[u8]> = secrets
            .iter()
            .filter(|s| s.phase == n)
            .map(|s| s.bundle.as_slice())
            .collect();
        if bundles.is_empty() {
            let why = format!("because no cluster's phase {n} Secret could be read");
            r.push(Finding::not_checked(
                Code::RootSubjectsDistinct,
                &subject,
                why,
            ));
            continue;
        }
        let mut by_subject: BTreeMap<String, BTreeSet<Vec<u8>>> = BTreeMap::new();
        for b in bundles {
            for der in pki::split_certificates(b).unwrap_or_default() {
                if let Ok(c) = pki::inspect_der(&der) {
                    by_subject.entry(c.subject).or_default().insert(der);
                }
            }
        }
        let shared: Vec<&str> = by_subject
            .iter()
            .filter(|(_, ders)| ders.len() > 1)
            .map(|(s, _)| s.as_str())
            .collect();
        let msg = if shared.is_empty() {
            let all: Vec<&str> = by_subject.keys().map(String::as_str).collect();
            format!("root subjects: {}", all.join(" | "))
        } else {
            format!(
                "phase {n} trusts different roots under one subject: {}",
                shared.join(" | ")
            )
        };
        r.push(Finding::new(
            Code::RootSubjectsDistinct,
            shared.is_empty(),
            &subject,
            msg,
        ));
    }
}
