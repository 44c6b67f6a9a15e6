//! Expiry: when each CA a cluster runs on expires, and the latest date the next rotation
//! must start: the earliest expiry minus the shortest rotation (the rollout's `minTotal`, the
//! sum of the phase soaks `plan` prints), one workload TTL and the safety margin — the same
//! span `validity-window` and plan validation hold every CA to. `rotation-start-by` fails
//! within `expiry.fail` (30 days) of that date, `rotation-start-soon` warns within
//! `expiry.warn` (90 days); `status` shows the same numbers.
//!
//! No key is needed (a scheduled CI job has none): the active phase Secret's plaintext
//! fingerprint annotations (`signer-sha256`, `bundle-sha256`) name its signer and bundle, and
//! the rollout file holds their inspected certificates. `annotations-match` ties those
//! annotations to the Secret's content whenever an identity is given; a fingerprint the
//! rollout file does not know fails, it is never guessed.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use super::validity::minute;
use super::{Report, phase_subject};
use crate::duration::Span;
use crate::gates::Code;
use crate::model::{CertView, ExpiryThresholds, Issuer};
use crate::repo::{Repo, keys};
use crate::verify::Finding;

/// What a CA is in the active phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A root of the phase's bundle.
    Root,
    /// The intermediate that signs workloads in the phase.
    Intermediate,
}

/// One CA of a cluster's active phase.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaExpiry {
    /// Root or signing intermediate.
    pub role: Role,
    /// `A` or `B` for a root; `current` or `new` for the intermediate.
    pub name: String,
    /// Its subject.
    pub subject: String,
    /// SHA-256 of its DER.
    pub sha256: String,
    /// Its NotAfter (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Seconds from now to NotAfter (negative once expired).
    pub seconds_left: i64,
    /// Whole days from now to NotAfter (rounded down; negative once expired).
    pub days_left: i64,
}

impl CaExpiry {
    /// `root A O=Istio, CN=Root CA`, `intermediate (new) O=Istio, CN=…`.
    pub fn label(&self) -> String {
        match self.role {
            Role::Root => format!("root {} {}", self.name, self.subject),
            Role::Intermediate => format!("intermediate ({}) {}", self.name, self.subject),
        }
    }
}

/// How close the start-by date is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// More than `expiry.warn` left.
    Ok,
    /// Within `expiry.warn`: plan the next rotation.
    Warn,
    /// Within `expiry.fail`, or past: start the next rotation now.
    Fail,
}

/// When one cluster's CAs expire and when its next rotation must start.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExpiry {
    /// The cluster.
    pub cluster: String,
    /// Its active phase.
    pub phase: u8,
    /// Every CA of the active phase: the bundle's roots (each once), then the signer.
    pub cas: Vec<CaExpiry>,
    /// The CA that expires first, and so sets [`Self::start_by`].
    pub set_by: String,
    /// Its NotAfter (the earliest of [`Self::cas`]).
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The shortest rotation plus one workload TTL plus the safety margin.
    pub lead_time: Span,
    /// The latest date the next rotation must start: `not_after - lead_time`.
    #[serde(with = "time::serde::rfc3339")]
    pub start_by: OffsetDateTime,
    /// Whole days from now to [`Self::start_by`] (rounded down; negative once past).
    pub days_left: i64,
    /// Against [`Self::thresholds`].
    pub level: Level,
    /// The warn and fail thresholds judged with.
    pub thresholds: ExpiryThresholds,
}

fn days(secs: i64) -> i64 {
    secs.div_euclid(86_400)
}

/// How long until `t`, for a person: `44d23h`, `5h12m`, or `3d2h ago` once past (whole
/// hours beyond two days, whole minutes beyond an hour).
pub fn left(now: OffsetDateTime, t: OffsetDateTime) -> String {
    let secs = (t - now).whole_seconds();
    let abs = secs.unsigned_abs();
    let unit = match abs {
        0..3_600 => 1,
        3_600..172_800 => 60,
        _ => 3_600,
    };
    let span = Span::from_secs(abs - abs % unit);
    if secs >= 0 {
        span.to_string()
    } else {
        format!("{span} ago")
    }
}

/// The expiry of `cluster` in its active phase `n`, judged at `now`; `Err` says why it
/// cannot be known (and what to do).
pub fn cluster(
    repo: &Repo,
    cluster: &str,
    n: u8,
    now: OffsetDateTime,
    thresholds: ExpiryThresholds,
) -> Result<ClusterExpiry, String> {
    let rollout = &repo.rollout;
    let (phase, name, signer) = active_signer(repo, cluster, n)?;
    let ca = |role: Role, name: &str, s: &crate::pki::CertSummary| {
        let secs = (s.not_after - now).whole_seconds();
        CaExpiry {
            role,
            name: name.to_string(),
            subject: s.subject.clone(),
            sha256: s.sha256.clone(),
            not_after: s.not_after,
            seconds_left: secs,
            days_left: days(secs),
        }
    };
    let mut cas: Vec<CaExpiry> = Vec::new();
    for e in &phase.bundle {
        let s = known(&e.cert, &format!("root {}", e.root.as_str()))?;
        if !cas.iter().any(|c| c.sha256 == s.sha256) {
            cas.push(ca(Role::Root, e.root.as_str(), &s));
        }
    }
    cas.push(ca(Role::Intermediate, name, &signer));
    // The first of the earliest: a root before the intermediate that expires with it.
    let first = cas
        .iter()
        .min_by_key(|c| c.not_after)
        .expect("the signer is always there");
    let lead_time =
        rollout.min_total + rollout.timing.workload_cert_ttl + rollout.timing.safety_margin;
    let start_by = first.not_after - lead_time.to_time();
    let secs = (start_by - now).whole_seconds();
    let within = |s: Span| secs <= i64::try_from(s.as_secs()).unwrap_or(i64::MAX);
    let level = if within(thresholds.fail) {
        Level::Fail
    } else if within(thresholds.warn) {
        Level::Warn
    } else {
        Level::Ok
    };
    Ok(ClusterExpiry {
        cluster: cluster.to_string(),
        phase: n,
        set_by: first.label(),
        not_after: first.not_after,
        lead_time,
        start_by,
        days_left: days(secs),
        level,
        thresholds,
        cas,
    })
}

/// Phase `n` of `cluster` as its Secret's plaintext fingerprint annotations name it: the
/// rollout's phase, which intermediate signs (`current` or `new`) and its certificate. Fails
/// when an annotation is missing or names material the rollout file does not know.
fn active_signer<'r>(
    repo: &'r Repo,
    cluster: &str,
    n: u8,
) -> Result<
    (
        &'r crate::model::Phase,
        &'static str,
        crate::pki::CertSummary,
    ),
    String,
> {
    let rollout = &repo.rollout;
    let (rel, text) = match repo.phase_secret(cluster, n) {
        Ok(Some(found)) => found,
        Ok(None) => return Err(format!("phase {n} has no Secret")),
        Err(e) => return Err(format!("the phase {n} Secret cannot be read: {e}")),
    };
    let doc: serde_json::Value = serde_saphyr::from_str(&text)
        .map_err(|e| format!("{rel} is not YAML: {}", e.without_snippet()))?;
    let annotation = |key: &str| {
        doc["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{rel} has no {key} annotation: re-render"))
    };
    let (signer_sha, bundle_sha) = (
        annotation(keys::SIGNER_SHA256)?,
        annotation(keys::BUNDLE_SHA256)?,
    );
    let phase = rollout
        .phase(n)
        .ok_or_else(|| format!("the rollout file has no phase {n}"))?;
    if phase.bundle_sha256.as_deref() != Some(bundle_sha.as_str()) {
        return Err(format!(
            "{rel}: {} is not phase {n}'s bundle in .rootroll/rollout.json: re-render",
            keys::BUNDLE_SHA256
        ));
    }
    let view = rollout
        .cluster(cluster)
        .ok_or_else(|| format!("cluster {cluster} is not in .rootroll/rollout.json"))?;
    let (name, signer) = match phase.signer {
        Some(Issuer::New) => ("new", &view.new_intermediate),
        _ => ("current", &view.current_intermediate),
    };
    let signer = known(signer, &format!("{cluster}'s {name} intermediate"))?;
    if signer.sha256 != signer_sha {
        return Err(format!(
            "{rel}: {} is not {cluster}'s {name} intermediate in .rootroll/rollout.json: re-render",
            keys::SIGNER_SHA256
        ));
    }
    Ok((phase, name, signer))
}

/// A certificate the rollout file records, or why it cannot be known.
fn known(c: &CertView, what: &str) -> Result<crate::pki::CertSummary, String> {
    match c {
        CertView::Known(s) => Ok(s.as_ref().clone()),
        CertView::Planned { .. } => Err(format!(
            "{what} has no certificate in .rootroll/rollout.json: re-render"
        )),
    }
}

/// `rotation-start-by` and `rotation-start-soon` for every cluster whose pointer reads
/// (`active`); returns what was computed, for the report's JSON.
pub fn gates(
    repo: &Repo,
    active: &BTreeMap<String, u8>,
    now: OffsetDateTime,
    r: &mut Report,
) -> Vec<ClusterExpiry> {
    let thresholds = repo.rollout.expiry;
    let mut out = Vec::new();
    for c in &repo.clusters {
        let Some(&n) = active.get(c) else {
            super::not_checked(
                r,
                &[Code::RotationStartBy, Code::RotationStartSoon],
                c,
                "its active-phase pointer cannot be read (pointer-valid)",
            );
            continue;
        };
        let subject = phase_subject(repo.rollout.strategy, c, n);
        let file = repo.phase_secret(c, n).ok().flatten().map(|(rel, _)| rel);
        let e = match cluster(repo, c, n, now, thresholds) {
            Ok(e) => e,
            Err(why) => {
                let msg = format!("the expiry of phase {n}'s CAs cannot be known: {why}");
                r.push(
                    Finding::new(Code::RotationStartBy, false, &subject, msg)
                        .in_file(file.as_deref())
                        .hint("re-render, so the phase Secret and .rootroll/rollout.json agree"),
                );
                super::not_checked(
                    r,
                    &[Code::RotationStartSoon],
                    &subject,
                    "the expiry cannot be known (rotation-start-by)",
                );
                continue;
            }
        };
        let when = format!(
            "the next rotation must start by {} ({} left; set by {}, which expires {}, minus {} for the shortest rotation, a workload TTL and the margin)",
            minute(e.start_by),
            left(now, e.start_by),
            e.set_by,
            minute(e.not_after),
            e.lead_time
        );
        let passed = e.level != Level::Fail;
        let msg = if passed {
            format!("{when}: more than {}", thresholds.fail)
        } else {
            format!("{when}: less than {} (expiry.fail)", thresholds.fail)
        };
        r.push(Finding::new(Code::RotationStartBy, passed, &subject, msg).in_file(file.as_deref()));
        if passed {
            let ok = e.level == Level::Ok;
            let msg = if ok {
                format!("{when}: more than {}", thresholds.warn)
            } else {
                format!("{when}: less than {} (expiry.warn)", thresholds.warn)
            };
            r.push(
                Finding::new(Code::RotationStartSoon, ok, &subject, msg).in_file(file.as_deref()),
            );
        }
        out.push(e);
    }
    out
}
