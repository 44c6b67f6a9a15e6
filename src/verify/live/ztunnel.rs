//! ztunnel in an ambient mesh: `ztunnel-readable`, `ztunnel-trusts-new-root` (every identity's
//! rootCerts holds the phase's roots; only them in phase 4) and, from phase 3,
//! `ztunnel-leaf-new-issuer`. ztunnel has no PCDS: it learns roots only when a certificate
//! renews (istio-2026 §2), so the hints name the restart that makes it renew now. A
//! certificate in state `Unavailable` (the CA client could not fetch it, ztunnel #1679) fails
//! `ztunnel-readable`, named by pod and identity. `ztunnel-restarted` (phase 3) requires every
//! ztunnel older than 1.28.6 / 1.29.2 / 1.30.0 to have started after the phase was applied.

use k8s_openapi::api::core::v1::Pod;
use time::OffsetDateTime;

use super::super::common::{sha_set, some_names};
use super::admin::{issued_by, ztunnel_certs};
use super::pods::{pod_id, proxy_kind};
use super::prereq::image_version;
use super::soak::applied_time;
use super::{Blocked, Expectation, Held, Snapshot, not_checked_all};
use crate::gates::Code;
use crate::verify::Finding;

pub(super) fn identities(s: &Snapshot, e: &Expectation, blocked: &Blocked) -> Vec<Finding> {
    let c = e.cluster.as_str();
    let mut judged = vec![Code::ZtunnelTrustsNewRoot];
    if e.new_issuer {
        judged.push(Code::ZtunnelLeafNewIssuer);
    }
    if let Some(why) = &blocked.pods {
        let all = std::iter::once(Code::ZtunnelReadable)
            .chain(judged)
            .collect();
        return not_checked_all(all, c, why);
    }
    let zs: Vec<_> = s.proxies.iter().filter(|p| p.kind == "ztunnel").collect();
    let mut read = Vec::new();
    let mut unread = Vec::new();
    // istio-2026 §2: before ztunnel 1.28.6 / 1.29.2 / 1.30.0 its CA client cannot reconnect
    // once istiod serves from B, and the certificates it holds go `Unavailable` (#1679).
    let mut unavailable = Vec::new();
    for z in &zs {
        match z
            .dump
            .as_ref()
            .map_err(Clone::clone)
            .and_then(ztunnel_certs)
        {
            Ok(certs) => {
                for cert in certs {
                    let id = format!("{}/{} {}", z.namespace, z.pod, cert.identity);
                    if cert.unavailable() {
                        unavailable.push((id, cert.state));
                    } else {
                        read.push(Held {
                            id,
                            roots: cert.roots,
                            chain: cert.chain,
                        });
                    }
                }
            }
            Err(why) => unread.push((format!("{}/{}", z.namespace, z.pod), why)),
        }
    }
    let mut out = vec![readable(c, zs.len(), read.len(), &unread, &unavailable)];
    let skip = match (&blocked.secret, zs.len(), read.len(), unread.len()) {
        (Some(why), ..) => Some(why.clone()),
        (None, 0, ..) => Some("because no ztunnel runs (ztunnel-readable)".to_string()),
        (None, _, 0, 0) if unavailable.is_empty() => {
            Some("because the ztunnels hold no workload identity".to_string())
        }
        (None, _, 0, _) => Some("because no ztunnel could be read (ztunnel-readable)".into()),
        _ => None,
    };
    if let Some(why) = skip {
        out.extend(not_checked_all(judged, c, &why));
        return out;
    }
    let restart = format!(
        "kubectl rollout restart daemonset/ztunnel -n {}",
        s.istio_namespace
    );
    out.push(trusts(c, e, &read).hint(&format!(
        "restart ztunnel ({restart}) or wait half the workload cert TTL"
    )));
    if e.new_issuer {
        out.push(leaves(c, e, &read).hint(&format!(
            "restart ztunnel ({restart}), or wait the whole workload cert TTL plus the margin, before the next phase (istio-2026 §2)"
        )));
    }
    out
}

fn readable(
    c: &str,
    n: usize,
    identities: usize,
    unread: &[(String, String)],
    unavailable: &[(String, String)],
) -> Finding {
    let names =
        |l: &[(String, String)]| -> Vec<String> { l.iter().map(|(id, _)| id.clone()).collect() };
    let mut message = match (n, unread.len()) {
        (0, _) => "no ztunnel pod found in an ambient mesh".to_string(),
        (n, 0) => format!("read {identities} identities from {n} ztunnel(s)"),
        (n, u) => format!(
            "{u} of {n} ztunnels could not be read: {}",
            some_names(&names(unread))
        ),
    };
    if !unavailable.is_empty() {
        message.push_str(&format!(
            "; {} certificate(s) are Unavailable (ztunnel could not fetch them from istiod): {}",
            unavailable.len(),
            some_names(&names(unavailable))
        ));
    }
    let details = unread
        .iter()
        .chain(unavailable)
        .map(|(id, why)| format!("{id}: {why}"));
    let mut f = Finding::new(
        Code::ZtunnelReadable,
        n > 0 && unread.is_empty() && unavailable.is_empty(),
        c,
        message,
    )
    .details(details.collect());
    if !unavailable.is_empty() {
        f = f.hint("an Unavailable certificate means ztunnel's CA client cannot reach istiod (before 1.28.6 / 1.29.2 / 1.30.0 it cannot reconnect once istiod serves from root B): restart the ztunnel DaemonSet");
    }
    f
}

fn trusts(c: &str, e: &Expectation, read: &[Held]) -> Finding {
    let lag: Vec<String> = read
        .iter()
        .filter(|i| {
            let held = sha_set(&i.roots);
            !e.roots.is_subset(&held) || e.exact_roots && held != e.roots
        })
        .map(|i| i.id.clone())
        .collect();
    let n = read.len();
    let message = if lag.is_empty() {
        format!("all {n} ztunnel identities trust the phase's roots")
    } else {
        format!(
            "{} of {n} ztunnel identities lag (ztunnel learns roots only when a certificate renews): {}",
            lag.len(),
            some_names(&lag)
        )
    };
    Finding::new(Code::ZtunnelTrustsNewRoot, lag.is_empty(), c, message).details(lag)
}

fn leaves(c: &str, e: &Expectation, read: &[Held]) -> Finding {
    let lag: Vec<String> = read
        .iter()
        .filter(|i| !issued_by(&i.chain, e.new_skid.as_deref()))
        .map(|i| i.id.clone())
        .collect();
    let n = read.len();
    let message = if lag.is_empty() {
        format!("all {n} ztunnel identities hold leaves from the new intermediate")
    } else {
        format!(
            "{} of {n} ztunnel identities still hold leaves from intermediate A: {}",
            lag.len(),
            some_names(&lag)
        )
    };
    Finding::new(Code::ZtunnelLeafNewIssuer, lag.is_empty(), c, message).details(lag)
}

/// `ztunnel-restarted` (phase 3): every ztunnel whose CA client cannot reload its root
/// (below 1.28.6 / 1.29.2 / 1.30.0, istio-2026 §2, ztunnel #1775) started after the phase was
/// applied. A ztunnel whose version or start time cannot be read counts as needing the restart
/// and as not restarted: unknown is never a pass.
pub(super) fn restarted(s: &Snapshot, e: &Expectation, blocked: &Blocked) -> Finding {
    let c = e.cluster.as_str();
    if let Some(why) = blocked.pods.as_ref().or(blocked.secret.as_ref()) {
        return Finding::not_checked(Code::ZtunnelRestarted, c, why);
    }
    let (Ok(pods), Some(at)) = (&s.pods, applied_time(s)) else {
        return Finding::not_checked(
            Code::ZtunnelRestarted,
            c,
            "because the time the phase was applied is unknown (soak-time)",
        );
    };
    let zs: Vec<&Pod> = pods
        .iter()
        .filter(|p| proxy_kind(p) == Some("ztunnel"))
        .collect();
    let old: Vec<(&Pod, String)> = zs
        .iter()
        .filter_map(|p| {
            let image = p.spec.as_ref()?.containers.first()?.image.clone();
            match image.as_deref().and_then(image_version) {
                Some(v) if v.ztunnel_reloads_ca_root() => None,
                Some(v) => Some((*p, format!("ztunnel {}", String::from(v)))),
                None => Some((*p, "ztunnel of unknown version".to_string())),
            }
        })
        .collect();
    let stale: Vec<(String, String)> = old
        .iter()
        .filter_map(|(p, version)| match started(p) {
            Some(t) if t > at => None,
            Some(t) => Some((
                pod_id(p),
                format!("{version} started {t}, before the phase was applied ({at})"),
            )),
            None => Some((pod_id(p), format!("{version}: its start time is unknown"))),
        })
        .collect();
    let n = zs.len();
    let message = match (old.len(), stale.len()) {
        (0, _) => format!(
            "all {n} ztunnel(s) run 1.28.6 / 1.29.2 / 1.30.0 or later and reload their CA root"
        ),
        (o, 0) => format!(
            "all {o} ztunnel(s) older than 1.28.6 / 1.29.2 / 1.30.0 started after the phase was applied"
        ),
        (o, k) => {
            let names: Vec<String> = stale.iter().map(|(id, _)| id.clone()).collect();
            format!(
                "{k} of {o} ztunnel(s) older than 1.28.6 / 1.29.2 / 1.30.0 started before the phase was applied (their CA client cannot reconnect to istiod serving from root B): {}",
                some_names(&names)
            )
        }
    };
    let details = stale.iter().map(|(id, why)| format!("{id}: {why}"));
    Finding::new(Code::ZtunnelRestarted, stale.is_empty(), c, message)
        .details(details.collect())
        .hint(&format!(
            "kubectl rollout restart daemonset/ztunnel -n {}, or upgrade ztunnel to 1.28.6 / 1.29.2 / 1.30.0+",
            s.istio_namespace
        ))
}

/// When a pod's ztunnel last started: its first container's `state.running.startedAt`, else
/// the pod's `status.startTime`.
fn started(p: &Pod) -> Option<OffsetDateTime> {
    let st = p.status.as_ref()?;
    let first = p.spec.as_ref()?.containers.first()?.name.as_str();
    let running = st
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == first)
        .and_then(|c| c.state.as_ref()?.running.as_ref()?.started_at.as_ref());
    let t = running.or(st.start_time.as_ref())?;
    OffsetDateTime::from_unix_timestamp(t.0.as_second()).ok()
}
