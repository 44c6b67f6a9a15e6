//! Envoy proxies (sidecars, gateways, waypoints): `proxy-readable`, `proxy-trusts-roots` (the
//! ROOTCA holds exactly the phase's roots) and, from phase 3, `proxy-leaf-new-issuer`. The
//! trust and leaf gates judge the proxies that could be read; they are not checked when pods
//! could not be listed, when none could be read, or when the live Secret is another phase.
//! `proxies-verified` lists the proxies rootroll cannot read at all (agentgateway pods, admin
//! dumps that are not Envoy's): a warning, an error with `--strict`, never a pass.

use std::collections::BTreeSet;

use super::super::common::{sha_set, some_names};
use super::admin::{envoy_secrets, is_envoy_dump, issued_by};
use super::{Blocked, Expectation, Held, ProxyDump, Snapshot, not_checked_all};
use crate::gates::Code;
use crate::verify::Finding;

pub(super) fn envoys(s: &Snapshot, e: &Expectation, blocked: &Blocked) -> Vec<Finding> {
    let c = e.cluster.as_str();
    let mut judged = vec![Code::ProxyTrustsRoots];
    if e.new_issuer {
        judged.push(Code::ProxyLeafNewIssuer);
    }
    if let Some(why) = &blocked.pods {
        let all = std::iter::once(Code::ProxyReadable).chain(judged).collect();
        return not_checked_all(all, c, why);
    }
    let envoys: Vec<_> = s
        .proxies
        .iter()
        .filter(|p| p.kind != "ztunnel" && not_envoy(p).is_none())
        .collect();
    let mut read = Vec::new();
    let mut unread = Vec::new();
    for p in &envoys {
        let id = format!("{}/{} ({})", p.namespace, p.pod, p.kind);
        match p
            .dump
            .as_ref()
            .map_err(Clone::clone)
            .and_then(envoy_secrets)
        {
            Ok((roots, chain)) => read.push(Held { id, roots, chain }),
            Err(why) => unread.push((id, why)),
        }
    }
    let n = envoys.len();
    let mut out = vec![readable(c, n, &unread)];
    let skip = match (&blocked.secret, n, read.len()) {
        (Some(why), ..) => Some(why.clone()),
        (None, 0, _) => Some("because no Envoy proxy runs in the cluster".to_string()),
        (None, _, 0) => Some("because no Envoy's dump could be read (proxy-readable)".into()),
        _ => None,
    };
    if let Some(why) = skip {
        out.extend(not_checked_all(judged, c, &why));
        return out;
    }
    let rest = match unread.len() {
        0 => String::new(),
        u => format!("; {u} more could not be read (proxy-readable)"),
    };
    out.push(trusts(c, &e.roots, &read));
    if e.new_issuer {
        out.push(leaves(c, e.new_skid.as_deref(), &read));
    }
    for f in &mut out[1..] {
        f.message.push_str(&rest);
    }
    out
}

/// Why rootroll cannot read this proxy as an Envoy, if it cannot (istio-2026 §1).
fn not_envoy(p: &ProxyDump) -> Option<String> {
    if p.kind == "agentgateway" {
        return Some(
            "a pod of an agentgateway GatewayClass: agentgateway is not Envoy and has no Envoy config_dump"
                .to_string(),
        );
    }
    match &p.dump {
        Ok(d) if p.kind != "ztunnel" && !is_envoy_dump(d) => Some(
            "its admin dump is not an Envoy config_dump (no envoy.admin configs, no dynamic active secrets)"
                .to_string(),
        ),
        _ => None,
    }
}

/// `proxies-verified`: every proxy rootroll cannot read, with the reason.
pub(super) fn unverified(s: &Snapshot, e: &Expectation, blocked: &Blocked) -> Finding {
    let c = e.cluster.as_str();
    if let Some(why) = &blocked.pods {
        return Finding::not_checked(Code::ProxiesVerified, c, why);
    }
    let not: Vec<(String, String)> = s
        .proxies
        .iter()
        .filter_map(|p| {
            not_envoy(p).map(|why| (format!("{}/{} ({})", p.namespace, p.pod, p.kind), why))
        })
        .collect();
    let names: Vec<String> = not.iter().map(|(id, _)| id.clone()).collect();
    let message = if not.is_empty() {
        format!(
            "all {} proxies are Envoy or ztunnel, which rootroll reads",
            s.proxies.len()
        )
    } else {
        format!(
            "{} prox(ies) not verified: rootroll cannot read them: {}",
            not.len(),
            some_names(&names)
        )
    };
    let details = not
        .iter()
        .map(|(id, why)| format!("{id}: not verified, {why}"));
    Finding::new(Code::ProxiesVerified, not.is_empty(), c, message).details(details.collect())
}

fn readable(c: &str, n: usize, unread: &[(String, String)]) -> Finding {
    let names: Vec<String> = unread.iter().map(|(id, _)| id.clone()).collect();
    let message = match (n, unread.len()) {
        (0, _) => "no Envoy proxy (sidecar, gateway, waypoint) runs in the cluster".to_string(),
        (n, 0) => format!("read the secrets of all {n} Envoy proxies"),
        (n, u) => format!(
            "{u} of {n} proxies could not be read: {}",
            some_names(&names)
        ),
    };
    let details = unread.iter().map(|(id, why)| format!("{id}: {why}"));
    Finding::new(Code::ProxyReadable, unread.is_empty(), c, message).details(details.collect())
}

fn trusts(c: &str, roots: &BTreeSet<String>, read: &[Held]) -> Finding {
    let of = read.len();
    let lag: Vec<(String, String)> = read
        .iter()
        .filter_map(|p| {
            let held = sha_set(&p.roots);
            let missing = roots.difference(&held).count();
            let extra = held.difference(roots).count();
            (missing + extra > 0).then(|| {
                let why = format!("lacks {missing} root(s) of the phase, holds {extra} other(s)");
                (p.id.clone(), why)
            })
        })
        .collect();
    let names: Vec<String> = lag.iter().map(|(id, _)| id.clone()).collect();
    let message = if lag.is_empty() {
        format!("all {of} Envoy ROOTCA hold exactly the phase's roots")
    } else {
        format!(
            "{} of {of} proxies do not trust exactly the phase's roots: {}",
            lag.len(),
            some_names(&names)
        )
    };
    let details = lag.iter().map(|(id, why)| format!("{id}: {why}"));
    Finding::new(Code::ProxyTrustsRoots, lag.is_empty(), c, message).details(details.collect())
}

fn leaves(c: &str, new_skid: Option<&str>, read: &[Held]) -> Finding {
    let of = read.len();
    let lag: Vec<String> = read
        .iter()
        .filter(|p| !issued_by(&p.chain, new_skid))
        .map(|p| p.id.clone())
        .collect();
    let message = if lag.is_empty() {
        format!("all {of} proxies present leaves from the new intermediate")
    } else {
        format!(
            "{} of {of} proxies still present leaves from intermediate A: {}",
            lag.len(),
            some_names(&lag)
        )
    };
    Finding::new(Code::ProxyLeafNewIssuer, lag.is_empty(), c, message).details(lag)
}
