//! Gates between consecutive phases of a cluster: `reload-rule` (istiod accepts the next
//! bundle, facts §1.5), `phase3-bytes-differ` (phase 3 changes the bytes so proxies re-sign,
//! facts §2) and `signer-sequence` (the issuer switches exactly at phase 3).

use std::collections::BTreeMap;

use super::{Ctx, PhaseSecret, Report, not_checked};
use crate::gates::Code;
use crate::model::{byte_reload_ok, phase_dir, set_reload_ok};
use crate::verify::Finding;

/// The transition gates of a cluster; a transition touching an unread phase is not checked.
pub fn transitions(
    ctx: &Ctx<'_>,
    c: &str,
    secrets: &BTreeMap<u8, PhaseSecret>,
    unread: &BTreeMap<u8, String>,
    r: &mut Report,
) {
    let rollout = &ctx.repo.rollout;
    let strategy = rollout.strategy;
    // The transition where the signing intermediate changes: there the bundle bytes must
    // change too, or no proxy re-signs until natural rotation (facts §2).
    let switch = |n: u8| strategy.issuer(n) != strategy.issuer(n + 1);
    for n in 1..strategy.last() {
        let subject = format!(
            "{c}/{}→{}",
            phase_dir(strategy, n),
            phase_dir(strategy, n + 1)
        );
        let codes: &[Code] = if switch(n) {
            &[
                Code::ReloadRule,
                Code::Phase3BytesDiffer,
                Code::SignerSequence,
            ]
        } else {
            &[Code::ReloadRule, Code::SignerSequence]
        };
        match (secrets.get(&n), secrets.get(&(n + 1))) {
            (Some(a), Some(b)) => {
                reload_rule(ctx, &subject, a, b, r);
                if switch(n) {
                    phase3_bytes(&subject, a, b, r);
                }
                signer_sequence(&subject, a, b, switch(n), r);
            }
            _ => {
                let why = unread.get(&n).or_else(|| unread.get(&(n + 1)));
                let why = why.map_or("a phase could not be read", String::as_str);
                not_checked(r, codes, &subject, why);
            }
        }
    }
}

/// `reload-rule`, by the rule the oldest istiod of the mesh applies.
fn reload_rule(ctx: &Ctx<'_>, subject: &str, a: &PhaseSecret, b: &PhaseSecret, r: &mut Report) {
    let (ok, rule) = if ctx
        .repo
        .rollout
        .mesh
        .min_istio_version
        .has_set_reload_rule()
    {
        (set_reload_ok(&a.bundle, &b.bundle), "1.30+ set rule")
    } else {
        (
            byte_reload_ok(&a.bundle, &b.bundle),
            "1.20–1.29 byte containment",
        )
    };
    let msg = if ok {
        format!(
            "istiod {rule}: phase {} root-cert.pem is accepted after phase {}",
            b.phase, a.phase
        )
    } else {
        format!(
            "istiod {rule}: phase {} root-cert.pem would be rejected after phase {} (\"Updating new ROOT-CA not supported\")",
            b.phase, a.phase
        )
    };
    r.push(Finding::new(Code::ReloadRule, ok, subject, msg));
}

/// `phase3-bytes-differ`, at the transition where the signer switches (2→3 of a root
/// rotation, 1→2 of an intermediate-only one).
fn phase3_bytes(subject: &str, a: &PhaseSecret, b: &PhaseSecret, r: &mut Report) {
    let differ = a.bundle != b.bundle;
    let (pa, pb) = (a.phase, b.phase);
    let msg = if differ {
        format!("phase {pb} root-cert.pem bytes differ from phase {pa} (proxies re-sign at once)")
    } else {
        format!(
            "phase {pb} root-cert.pem is byte-identical to phase {pa}: no bundle push, no immediate re-sign"
        )
    };
    r.push(Finding::new(Code::Phase3BytesDiffer, differ, subject, msg));
}

/// `signer-sequence`: the same intermediate between phases that the rollout signs with the
/// same one (1–2 and 3–4 of a root rotation, 2–3 of an intermediate-only one), a new one
/// where it switches (`switch`).
fn signer_sequence(subject: &str, a: &PhaseSecret, b: &PhaseSecret, switch: bool, r: &mut Report) {
    let same = a.signer == b.signer;
    let want_same = !switch;
    let msg = match (want_same, same) {
        (true, true) => format!(
            "phases {} and {} sign with the same intermediate",
            a.phase, b.phase
        ),
        (true, false) => format!(
            "phase {} signs with another intermediate than phase {}",
            b.phase, a.phase
        ),
        (false, false) => format!(
            "the signing intermediate switches to the new one at phase {}",
            b.phase
        ),
        (false, true) => format!(
            "phase {} still signs with phase {}'s intermediate",
            b.phase, a.phase
        ),
    };
    r.push(Finding::new(
        Code::SignerSequence,
        same == want_same,
        subject,
        msg,
    ));
}
