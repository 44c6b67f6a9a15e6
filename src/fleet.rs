//! The skew rule: which mixed phases a fleet may be in at once.
//!
//! Clusters share one root bundle per phase and trust each other's leaves through it, so a
//! fleet may be spread over two adjacent phases and no more (facts §9, DESIGN.md):
//! - phase 2 next to phase 1: every workload still trusts A, leaves still come from A;
//! - phase 3 next to phase 2: every workload already trusts A and B, so B-issued leaves of
//!   the canary cluster are accepted everywhere ("phase 3 anywhere only when every cluster is
//!   at ≥ 2");
//! - phase 4 next to phase 3: every leaf is B-issued, so dropping A somewhere breaks nobody
//!   ("phase 4 anywhere only when every cluster is at ≥ 3").
//!
//! Two phases apart always breaks one of these: 3 next to 1 (a B-issued leaf meets a peer that
//! trusts only A), 4 next to 2 (a peer trusting only B meets an A-issued leaf). A move forward
//! or back is allowed exactly when the fleet it leaves behind obeys the rule, so rollback
//! follows the mirrored rule. The transition handshake matrix checks every pair of adjacent
//! phases, which covers every state this rule allows.

use std::collections::BTreeMap;

/// The rule in one sentence, as `plan`, ROLLOUT.md, `promote` and the lockstep gate state it.
pub const RULE: &str = "clusters may be at most one phase apart: phase 3 anywhere only when every \
                        cluster is at 2 or later, phase 4 anywhere only when every cluster is at 3 \
                        or later";

/// Why a fleet state (cluster → active phase) breaks the skew rule, naming the clusters that
/// are too far behind; `None` when it is allowed.
pub fn skew_problem(active: &BTreeMap<String, u8>) -> Option<String> {
    let max = active.values().max().copied()?;
    let behind: Vec<String> = active
        .iter()
        .filter(|(_, p)| **p + 1 < max)
        .map(|(c, p)| format!("{c} at phase {p}"))
        .collect();
    if behind.is_empty() {
        return None;
    }
    let ahead: Vec<&str> = active
        .iter()
        .filter(|(_, p)| **p == max)
        .map(|(c, _)| c.as_str())
        .collect();
    Some(format!(
        "{} at phase {max} while {} (phase {max} anywhere needs every cluster at {} or later)",
        ahead.join(", "),
        behind.join(", "),
        max - 1
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every combination of phases for three clusters, against the facts the rule comes from.
    #[test]
    fn every_three_cluster_state_is_judged_by_the_facts() {
        for a in 1..=4u8 {
            for b in 1..=4u8 {
                for c in 1..=4u8 {
                    let phases = [a, b, c];
                    let state: BTreeMap<String, u8> = ["east", "west", "north"]
                        .iter()
                        .zip(phases)
                        .map(|(n, p)| (n.to_string(), p))
                        .collect();
                    let min = *phases.iter().min().unwrap();
                    let max = *phases.iter().max().unwrap();
                    // A B-issued leaf (phase ≥ 3) reaches a peer that trusts only A (phase 1),
                    // or a peer trusting only B (phase 4) meets an A-issued leaf (phase ≤ 2).
                    let breaks = (max >= 3 && min < 2) || (max == 4 && min < 3) || max > min + 1;
                    let problem = skew_problem(&state);
                    assert_eq!(problem.is_some(), breaks, "{phases:?}: {problem:?}");
                    if let Some(p) = problem {
                        for (name, phase) in &state {
                            if *phase + 1 < max {
                                assert!(p.contains(&format!("{name} at phase {phase}")), "{p}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_canary_may_switch_its_issuer_alone() {
        let state: BTreeMap<String, u8> = [("canary".to_string(), 3), ("rest".to_string(), 2)]
            .into_iter()
            .collect();
        assert_eq!(skew_problem(&state), None);
        let state: BTreeMap<String, u8> = [("canary".to_string(), 4), ("rest".to_string(), 2)]
            .into_iter()
            .collect();
        assert_eq!(
            skew_problem(&state).unwrap(),
            "canary at phase 4 while rest at phase 2 (phase 4 anywhere needs every cluster at 3 or later)"
        );
    }
}
