//! Validity: `validity-window` (the CAs in use are valid from now until the rollout's last
//! leaves expire) and the floor after the rollout for new CA material: B's intermediate
//! and root B expiring within `validityFloor.fail` (30 days) of the earliest end of the
//! rollout fail (`validity-floor`), within `validityFloor.warn` (90 days) warn
//! (`validity-margin`). Times are shown to the minute.

use time::OffsetDateTime;
use time::macros::format_description;

use super::{Ctx, PhaseSecret, Report};
use crate::gates::Code;
use crate::model::CertView;
use crate::pki::{self, CertSummary};
use crate::verify::Finding;

/// `2027-01-01 00:00 UTC`.
pub fn minute(t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    utc.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_else(|_| utc.to_string())
}

/// The validity gates of one phase.
pub fn gates(ctx: &Ctx<'_>, subject: &str, n: u8, s: &PhaseSecret, r: &mut Report) {
    let roots: Vec<CertSummary> = pki::split_certificates(&s.bundle)
        .unwrap_or_default()
        .iter()
        .filter_map(|d| pki::inspect_der(d).ok())
        .collect();
    let Ok(signer) = pki::inspect_der(&s.signer) else {
        return;
    };
    window(ctx, subject, n, &signer, &roots, s, r);
    if Code::ValidityFloor.gate().phases.contains(&n) {
        let new_root = match &ctx.repo.rollout.new_root {
            CertView::Known(b) => Some(b.sha256.as_str()),
            CertView::Planned { .. } => None,
        };
        let mut new: Vec<&CertSummary> = vec![&signer];
        new.extend(roots.iter().filter(|c| Some(c.sha256.as_str()) == new_root));
        floor(ctx, subject, n, &new, s, r);
    }
}

/// `validity-window`: the signer and every root are valid from now through the rollout end.
fn window(
    ctx: &Ctx<'_>,
    subject: &str,
    n: u8,
    signer: &CertSummary,
    roots: &[CertSummary],
    s: &PhaseSecret,
    r: &mut Report,
) {
    let (now, end) = (ctx.opts.now, ctx.rollout_end);
    let short: Vec<String> = std::iter::once(signer)
        .chain(roots)
        .filter(|c| !(c.not_before <= now && end <= c.not_after))
        .map(|c| {
            format!(
                "{} (valid {} → {})",
                c.subject,
                minute(c.not_before),
                minute(c.not_after)
            )
        })
        .collect();
    let msg = if short.is_empty() {
        format!(
            "signer and roots valid from {} through {}",
            minute(now),
            minute(end)
        )
    } else {
        format!(
            "phase {n} uses CAs not valid from {} through {}: {}",
            minute(now),
            minute(end),
            short.join(", ")
        )
    };
    r.push(
        Finding::new(Code::ValidityWindow, short.is_empty(), subject, msg).in_file(Some(&s.file)),
    );
}

/// `validity-floor` and, when it passes, `validity-margin` for the new CA material.
fn floor(
    ctx: &Ctx<'_>,
    subject: &str,
    n: u8,
    new: &[&CertSummary],
    s: &PhaseSecret,
    r: &mut Report,
) {
    let thresholds = ctx.repo.rollout.validity_floor;
    let end = ctx.earliest_end;
    let below = |span: crate::duration::Span| -> Vec<String> {
        let deadline = end + span.to_time();
        new.iter()
            .filter(|c| c.not_after < deadline)
            .map(|c| format!("{} expires {}", c.subject, minute(c.not_after)))
            .collect()
    };
    let short = below(thresholds.fail);
    let file = Some(s.file.as_str());
    let earliest = minute(end);
    if !short.is_empty() {
        let msg = format!(
            "phase {n} new CA material expires less than {} after the earliest end of the rollout ({earliest}): {}",
            thresholds.fail,
            short.join(", ")
        );
        r.push(Finding::new(Code::ValidityFloor, false, subject, msg).in_file(file));
        return;
    }
    let msg = format!(
        "new CA material outlives the earliest end ({earliest}) by {} or more",
        thresholds.fail
    );
    r.push(Finding::new(Code::ValidityFloor, true, subject, msg).in_file(file));
    let short = below(thresholds.warn);
    let msg = if short.is_empty() {
        format!(
            "new CA material outlives the earliest end ({earliest}) by {} or more",
            thresholds.warn
        )
    } else {
        format!(
            "phase {n} new CA material expires less than {} after the earliest end of the rollout ({earliest}): {}",
            thresholds.warn,
            short.join(", ")
        )
    };
    r.push(Finding::new(Code::ValidityMargin, short.is_empty(), subject, msg).in_file(file));
}
