//! Gates over the whole tree: `clusters-present`, each cluster's `pointer-valid`,
//! `bundle-shared` (one root bundle per phase across the fleet) and `lockstep`.

use std::collections::{BTreeMap, BTreeSet};

use super::{PhaseSecret, Report};
use crate::gates::Code;
use crate::model::{Strategy, phase_dir};
use crate::repo::Repo;
use crate::verify::Finding;

/// `clusters-present`: every cluster of the rollout has its directory.
pub fn clusters_present(repo: &Repo, r: &mut Report) {
    let have = &repo.clusters;
    let missing: Vec<&str> = repo
        .rollout
        .clusters
        .iter()
        .map(|c| c.name.as_str())
        .filter(|c| !have.iter().any(|h| h == c))
        .collect();
    // A cluster that left the plan keeps no directory: a render removes it (issue 14).
    let stale: Vec<&str> = have
        .iter()
        .map(String::as_str)
        .filter(|h| repo.rollout.cluster(h).is_none())
        .collect();
    let msg = if have.is_empty() {
        "no cluster directory (clusters/<name>/istio-ca) found: nothing could be checked"
            .to_string()
    } else if !missing.is_empty() {
        format!(
            "the rollout names cluster(s) missing from the tree: {}",
            missing.join(", ")
        )
    } else if !stale.is_empty() {
        format!(
            "the tree has cluster directories the rollout does not name (removed from the plan?): {}; re-render, or move the files you added there out of clusters/<name>/istio-ca",
            stale.join(", ")
        )
    } else {
        format!("{} cluster(s): {}", have.len(), have.join(", "))
    };
    r.push(Finding::new(
        Code::ClustersPresent,
        !have.is_empty() && missing.is_empty() && stale.is_empty(),
        "fleet",
        msg,
    ));
}

/// `pointer-valid`: the active phase, when the pointer names exactly one.
pub fn pointer(repo: &Repo, c: &str, r: &mut Report) -> Option<u8> {
    match repo
        .active(c)
        .and_then(|n| super::kustomize::pointer_resolves(repo, c, n).map(|()| n))
    {
        Ok(n) => {
            r.push(Finding::new(
                Code::PointerValid,
                true,
                c,
                format!("active phase {}", repo.rollout.phase_dir(n)),
            ));
            Some(n)
        }
        Err(why) => {
            r.push(Finding::new(Code::PointerValid, false, c, why));
            None
        }
    }
}

/// `bundle-shared`: in each phase, every cluster carries the same bundle bytes.
pub fn bundle_shared(strategy: Strategy, secrets: &[PhaseSecret], r: &mut Report) {
    for n in strategy.numbers() {
        let subject = format!("fleet/{}", phase_dir(strategy, n));
        let per: BTreeMap<&str, &[u8]> = secrets
            .iter()
            .filter(|s| s.phase == n)
            .map(|s| (s.cluster.as_str(), s.bundle.as_slice()))
            .collect();
        if per.is_empty() {
            let why = format!("because no cluster's phase {n} Secret could be read");
            r.push(Finding::not_checked(Code::BundleShared, &subject, why));
            continue;
        }
        let distinct: BTreeSet<&[u8]> = per.values().copied().collect();
        let msg = if distinct.len() == 1 {
            format!("{} cluster(s) carry one root bundle", per.len())
        } else {
            format!(
                "phase {n}: {} cluster(s) carry {} different root bundles",
                per.len(),
                distinct.len()
            )
        };
        r.push(Finding::new(
            Code::BundleShared,
            distinct.len() == 1,
            &subject,
            msg,
        ));
    }
}

/// `lockstep` over the clusters whose pointer could be read.
pub fn lockstep(active: &BTreeMap<String, u8>, r: &mut Report) {
    // The skew rule (crate::fleet), the same one promote enforces.
    let problem = crate::fleet::skew_problem(active);
    let summary: Vec<String> = active.iter().map(|(c, p)| format!("{c}={p}")).collect();
    let passed = problem.is_none();
    let msg = problem.unwrap_or_else(|| format!("active phases {}", summary.join(", ")));
    r.push(Finding::new(Code::Lockstep, passed, "fleet", msg));
}
