//! `annotations-match`: every fingerprint annotation on a phase Secret is recomputed from its
//! content. `verify live --no-secret-read` and `status` trust these annotations to tell
//! which phase a cluster runs, so a stale one (after a `sops edit`) would mislead them.

use super::read::Opened;
use super::shape::Data;
use super::{Ctx, PhaseSecret, Report};
use crate::gates::Code;
use crate::pki;
use crate::repo::keys;
use crate::verify::Finding;

/// Recomputes `public-sha256` (see [`crate::render::public_fingerprint`]), `signer-sha256`
/// and `bundle-sha256` and compares each with the annotation.
pub fn check(
    ctx: &Ctx<'_>,
    subject: &str,
    opened: &Opened,
    data: &Data,
    s: &PhaseSecret,
    r: &mut Report,
) {
    let private = ctx.repo.rollout.mesh.secret_format.private_key();
    let public = crate::render::public_fingerprint(
        data.iter()
            .filter(|(k, _)| k.as_str() != private)
            .map(|(k, v)| (k.as_str(), v.as_slice())),
    );
    let want = [
        (keys::PUBLIC_SHA256, public),
        (keys::SIGNER_SHA256, pki::sha256_hex(&s.signer)),
        (keys::BUNDLE_SHA256, pki::sha256_hex(&s.bundle)),
    ];
    let annotations = &opened.doc.0["metadata"]["annotations"];
    let wrong: Vec<String> = want
        .iter()
        .filter_map(|(key, value)| match annotations[*key].as_str() {
            Some(a) if a == value => None,
            Some(_) => Some(format!("{key} does not match the content")),
            None => Some(format!("{key} is missing")),
        })
        .collect();
    let msg = if wrong.is_empty() {
        "public-sha256, signer-sha256 and bundle-sha256 match the content".to_string()
    } else {
        format!("phase {} annotation {}", s.phase, wrong.join("; "))
    };
    r.push(
        Finding::new(Code::AnnotationsMatch, wrong.is_empty(), subject, msg)
            .in_file(Some(&opened.rel)),
    );
}
