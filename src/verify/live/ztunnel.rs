//! ztunnel in an ambient mesh: `ztunnel-readable`, `ztunnel-trusts-new-root` (every identity's
//! rootCerts holds the phase's roots; only them in phase 4) and, from phase 3,
//! `ztunnel-leaf-new-issuer`. ztunnel has no PCDS: it learns roots only when a certificate
//! renews (istio-2026 §2), so the hints name the restart that makes it renew now.

use super::super::common::{sha_set, some_names};
use super::admin::{issued_by, ztunnel_certs};
use super::{Blocked, Expectation, Held, Snapshot, not_checked_all};
use crate::gates::Code;
use crate::verify::Finding;

pub(super) fn identities(s: &Snapshot, e: &Expectation, blocked: &Blocked) -> Vec<Finding> {
    let c = e.cluster.as_str();
    let mut judged = vec![Code::ZtunnelTrustsNewRoot];
    if e.phase >= 3 {
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
    for z in &zs {
        match z
            .dump
            .as_ref()
            .map_err(Clone::clone)
            .and_then(ztunnel_certs)
        {
            Ok(certs) => read.extend(certs.into_iter().map(|(identity, roots, chain)| Held {
                id: format!("{}/{} {identity}", z.namespace, z.pod),
                roots,
                chain,
            })),
            Err(why) => unread.push((format!("{}/{}", z.namespace, z.pod), why)),
        }
    }
    let mut out = vec![readable(c, zs.len(), read.len(), &unread)];
    let skip = match (&blocked.secret, zs.len(), read.len(), unread.len()) {
        (Some(why), ..) => Some(why.clone()),
        (None, 0, ..) => Some("because no ztunnel runs (ztunnel-readable)".to_string()),
        (None, _, 0, 0) => Some("because the ztunnels hold no workload identity".to_string()),
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
    if e.phase >= 3 {
        out.push(leaves(c, e, &read).hint(&format!(
            "restart ztunnel ({restart}) or wait half the workload cert TTL before phase 4"
        )));
    }
    out
}

fn readable(c: &str, n: usize, identities: usize, unread: &[(String, String)]) -> Finding {
    let names: Vec<String> = unread.iter().map(|(id, _)| id.clone()).collect();
    let message = match (n, unread.len()) {
        (0, _) => "no ztunnel pod found in an ambient mesh".to_string(),
        (n, 0) => format!("read {identities} identities from {n} ztunnel(s)"),
        (n, u) => format!(
            "{u} of {n} ztunnels could not be read: {}",
            some_names(&names)
        ),
    };
    let details = unread.iter().map(|(id, why)| format!("{id}: {why}"));
    Finding::new(
        Code::ZtunnelReadable,
        n > 0 && unread.is_empty(),
        c,
        message,
    )
    .details(details.collect())
}

fn trusts(c: &str, e: &Expectation, read: &[Held]) -> Finding {
    let lag: Vec<String> = read
        .iter()
        .filter(|i| {
            let held = sha_set(&i.roots);
            !e.roots.is_subset(&held) || e.phase == 4 && held != e.roots
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
