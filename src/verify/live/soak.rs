//! Time since the phase was applied: `soak-time` (at least the phase's minimum soak) and
//! `no-restart` (no proxy container restarted since). The clock starts at the live Secret's
//! last managed-fields time, else at the newest istio-ca-root-cert write (istiod writes it
//! right after reloading).

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use time::OffsetDateTime;

use super::super::common::some_names;
use super::pods::{pod_id, proxy_kind};
use super::{Blocked, Expectation, Snapshot};
use crate::duration::Span;
use crate::gates::Code;
use crate::verify::Finding;

pub(super) fn since_applied(
    s: &Snapshot,
    e: &Expectation,
    now: OffsetDateTime,
    blocked: &Blocked,
    ztunnels_on_b: bool,
) -> Vec<Finding> {
    let applied = applied_time(s);
    let c = e.cluster.as_str();
    let unknown = "because the time the phase was applied is unknown (soak-time)";
    let restarts = match (
        &s.pods,
        blocked.pods.as_ref().or(blocked.secret.as_ref()),
        applied,
    ) {
        (Ok(pods), None, Some(at)) => no_restart(c, pods, at),
        (_, Some(why), _) => Finding::not_checked(Code::NoRestart, c, why),
        _ => Finding::not_checked(Code::NoRestart, c, unknown),
    };
    vec![
        restarts,
        soak_time(c, e, now, applied, blocked, ztunnels_on_b),
    ]
}

fn soak_time(
    c: &str,
    e: &Expectation,
    now: OffsetDateTime,
    applied: Option<OffsetDateTime>,
    blocked: &Blocked,
    ztunnels_on_b: bool,
) -> Finding {
    if blocked.secret.is_some() {
        let dir = &e.dir;
        return Finding::new(
            Code::SoakTime,
            false,
            c,
            format!("phase {dir} is not applied yet (live-secret-phase): its soak has not started"),
        )
        .hint("apply the phase and wait for it (flux reconcile / argocd app sync) before the soak can start");
    }
    let Some(at) = applied else {
        return Finding::new(
            Code::SoakTime,
            false,
            c,
            "cannot tell when the phase was applied (no managedFields time on the Secret or ConfigMaps)",
        )
        .hint("read access to the cacerts Secret, or to istiod's root ConfigMaps or ClusterTrustBundle, is needed");
    };
    let elapsed = Span::from_secs((now - at).whole_seconds().max(0) as u64);
    // istio-2026 §2: in ambient, the phase after the issuer switch may follow early only when
    // every ztunnel identity is already issued by the new intermediate; otherwise the whole
    // workload TTL plus the margin.
    let (min_soak, why) = match e.proven_soak {
        Some(proven) if ztunnels_on_b => (
            proven,
            " (every ztunnel identity is issued by the new intermediate, so the whole-TTL soak is not needed here; `promote` still counts it from Git and needs --force before then)".to_string(),
        ),
        Some(_) => (
            e.min_soak,
            " (the whole workload TTL plus the margin, since not every ztunnel identity is proven issued by the new intermediate: ztunnel-readable, ztunnel-leaf-new-issuer)".to_string(),
        ),
        None => (e.min_soak, String::new()),
    };
    let left = Span::from_secs(min_soak.as_secs().saturating_sub(elapsed.as_secs()));
    Finding::new(
        Code::SoakTime,
        elapsed >= min_soak,
        c,
        format!("{elapsed} since the phase was applied; minimum soak {min_soak}{why}"),
    )
    .hint(&format!("wait {left} more before promoting"))
}

fn no_restart(c: &str, pods: &[Pod], at: OffsetDateTime) -> Finding {
    let since = |p: &&Pod| {
        let statuses = p
            .status
            .as_ref()
            .and_then(|st| st.container_statuses.as_ref());
        statuses.is_some_and(|cs| {
            cs.iter().any(|c| {
                let started = c.state.as_ref().and_then(|s| s.running.as_ref());
                let started = started.and_then(|r| r.started_at.as_ref());
                c.restart_count > 0
                    && started.is_some_and(|t| t.0.as_second() > at.unix_timestamp())
            })
        })
    };
    let restarted: Vec<String> = pods
        .iter()
        .filter(|p| proxy_kind(p).is_some())
        .filter(since)
        .map(pod_id)
        .collect();
    let message = if restarted.is_empty() {
        "no proxy container restarted since the phase was applied".to_string()
    } else {
        format!(
            "{} proxy pod(s) restarted since the phase was applied: {}",
            restarted.len(),
            some_names(&restarted)
        )
    };
    Finding::new(Code::NoRestart, restarted.is_empty(), c, message).details(restarted)
}

pub(super) fn latest_managed(meta: &ObjectMeta) -> Option<i64> {
    let managed = meta
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.time.as_ref())
        .map(|t| t.0.as_second())
        .max();
    managed.or_else(|| meta.creation_timestamp.as_ref().map(|t| t.0.as_second()))
}

/// When the phase was applied: the Secret's last managed-fields time, else the newest write
/// of istiod's root publication (its root ConfigMaps or its ClusterTrustBundle).
pub(super) fn applied_time(s: &Snapshot) -> Option<OffsetDateTime> {
    let secs = match &s.secret {
        Some(Ok(Some(sec))) => latest_managed(&sec.metadata),
        _ => {
            let configmaps = s
                .root_configmaps
                .as_ref()
                .ok()
                .and_then(|cms| cms.iter().filter_map(|m| latest_managed(&m.metadata)).max());
            // With ENABLE_CLUSTER_TRUST_BUNDLE_API istiod writes its ClusterTrustBundle instead.
            let bundle = match &s.trust_bundle {
                Some(Ok(Some(b))) => b.written,
                _ => None,
            };
            configmaps.max(bundle)
        }
    }?;
    OffsetDateTime::from_unix_timestamp(secs).ok()
}
