//! Every ordered pair of clusters, covered without handshaking each one: why `bundle-shared`
//! plus each cluster's own matrix cells decide every cross-cluster cell, and the one fleet
//! finding that says so (or says why it cannot).
//!
//! A matrix cell "client in X at leaf phase `cl`, trusting phase `ct` → server in Y at leaf
//! phase `sl`, trusting phase `st`" is judged by [`crate::handshake::HandshakeCache::judge`]
//! as two chain checks and a real handshake per end:
//! 1. the client's verifier built from X's bundle of phase `ct` accepts the chain Y's server
//!    presents (a leaf from Y's phase-`sl` signer, Y's cert-chain.pem and bundle of `sl`);
//! 2. the server's verifier built from Y's bundle of phase `st` accepts the chain X's client
//!    presents (the same, from X's phase `cl`);
//! 3. each leaf has completed a real TLS handshake on its side once.
//!
//! Nothing else enters: the SPIFFE ID the client expects is one for the whole fleet (one
//! trust domain), leaves are ECDSA P-256 whatever the intermediate, and the clock is the
//! run's. When `bundle-shared` passes, X's bundle of every phase is Y's byte for byte, so
//! check 1 is exactly the check of Y's own cell `(·, ct, sl, ·)` and check 2 that of X's own
//! cell `(cl, ·, ·, st)`; check 3 ran in those cells too. Each cluster's own cells cover all
//! 16 combinations of phases {n, n+1} for every transition, and the skew rule lets no two
//! clusters be further apart, so when every cluster's cells pass, every cell of every one of
//! the N×(N−1) ordered pairs passes. The ring cells of [`super::matrix`] (each cluster against
//! the next) run real cross-cluster handshakes besides, as a sample.
//!
//! When `bundle-shared` fails, a cluster's own cells say nothing of its peers (its bundle may
//! lack the root their leaves chain to), so the finding fails; when a cluster's cells were not
//! all checked, it is not checked either.

use super::{Code, Finding, Report, Severity};
use crate::model::{Strategy, phase_dir};

/// The fleet's `handshake-matrix` finding for every ordered pair of `clusters`, judged from
/// the `bundle-shared` findings and each cluster's own matrix findings already in `report`.
pub fn covered(report: &Report, strategy: Strategy, clusters: &[String]) -> Finding {
    let phase_dir = |n: u8| phase_dir(strategy, n);
    const SUBJECT: &str = "fleet";
    let n = clusters.len();
    let pairs = n * n.saturating_sub(1);
    if n < 2 {
        return Finding::new(
            Code::HandshakeMatrix,
            true,
            SUBJECT,
            format!("{n} cluster(s): no cross-cluster pair to cover"),
        );
    }
    let find = |code: Code, subject: &str| {
        report
            .findings
            .iter()
            .find(|f| f.code == code && f.subject == subject)
    };
    let mut failed = Vec::new();
    let mut unchecked = Vec::new();
    let mut judge = |what: String, f: Option<&Finding>| match f {
        Some(f) if f.not_checked.is_some() => unchecked.push(what),
        Some(f) if !f.passed && f.severity == Severity::Error => failed.push(what),
        Some(_) => {}
        None => unchecked.push(format!("{what} (no finding)")),
    };
    for p in strategy.numbers() {
        let subject = format!("fleet/{}", phase_dir(p));
        judge(
            format!("bundle-shared {subject}"),
            find(Code::BundleShared, &subject),
        );
    }
    for c in clusters {
        for t in 1..strategy.last() {
            let subject = format!("{c}/{}→{}", phase_dir(t), phase_dir(t + 1));
            judge(
                format!("handshake-matrix {subject}"),
                find(Code::HandshakeMatrix, &subject),
            );
        }
    }
    let head = format!("all {pairs} ({n}×{}) cross-cluster pairs", n - 1);
    if !failed.is_empty() {
        return Finding::new(
            Code::HandshakeMatrix,
            false,
            SUBJECT,
            format!(
                "{head} NOT covered: {} fail{}, so a cluster's own cells do not decide its peers'",
                failed.join(", "),
                if failed.len() == 1 { "s" } else { "" }
            ),
        )
        .hint("fix the failing bundle-shared or handshake-matrix findings first: every pair is covered only when each cluster carries the fleet's bundle and its own cells pass");
    }
    if !unchecked.is_empty() {
        return Finding::not_checked(
            Code::HandshakeMatrix,
            SUBJECT,
            format!("{head}: {} could not be checked", unchecked.join(", ")),
        );
    }
    Finding::new(
        Code::HandshakeMatrix,
        true,
        SUBJECT,
        format!(
            "{head} covered by bundle-shared (each phase's bundle is byte-identical in every cluster) and every cluster's own cells: a cross-cluster cell runs the same two chain checks as two same-cluster cells (`rootroll explain handshake-matrix`)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(bundle_ok: bool, matrix: &[(&str, bool)]) -> Report {
        let phase_dir = |n: u8| phase_dir(Strategy::Roots, n);
        let mut r = Report::default();
        for p in 1..=4u8 {
            let s = format!("fleet/{}", phase_dir(p));
            r.push(Finding::new(
                Code::BundleShared,
                bundle_ok || p != 2,
                &s,
                "x",
            ));
        }
        for (c, ok) in matrix {
            for t in 1..=3u8 {
                let s = format!("{c}/{}→{}", phase_dir(t), phase_dir(t + 1));
                r.push(Finding::new(Code::HandshakeMatrix, *ok, &s, "x"));
            }
        }
        r
    }

    fn covered_roots(r: &Report, clusters: &[String]) -> Finding {
        covered(r, Strategy::Roots, clusters)
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_pair_is_covered_only_with_one_bundle_and_every_cluster_s_cells() {
        let clusters = names(&["a", "b", "c"]);
        let ok = covered_roots(
            &report(true, &[("a", true), ("b", true), ("c", true)]),
            &clusters,
        );
        assert!(ok.passed, "{}", ok.message);
        assert!(
            ok.message
                .starts_with("all 6 (3×2) cross-cluster pairs covered by bundle-shared"),
            "{}",
            ok.message
        );
        let split = covered_roots(
            &report(false, &[("a", true), ("b", true), ("c", true)]),
            &clusters,
        );
        assert!(!split.passed && split.not_checked.is_none());
        assert!(
            split
                .message
                .contains("NOT covered: bundle-shared fleet/2-trust-both fails"),
            "{}",
            split.message
        );
        let one_bad = covered_roots(
            &report(true, &[("a", true), ("b", false), ("c", true)]),
            &clusters,
        );
        assert!(!one_bad.passed);
        assert!(
            one_bad
                .message
                .contains("handshake-matrix b/1-initial→2-trust-both")
        );
        // A cluster whose cells did not run: not checked, never a pass.
        let missing = covered_roots(&report(true, &[("a", true), ("b", true)]), &clusters);
        assert!(
            !missing.passed && missing.not_checked.is_some(),
            "{missing:?}"
        );
    }
}
