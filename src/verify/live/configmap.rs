//! `root-configmap`: istiod copied the phase's exact `root-cert.pem` bytes into the
//! `istio-ca-root-cert` ConfigMap of every namespace, i.e. it reloaded the phase. This also
//! covers phase 1 ("no istiod fell back to a self-signed CA"): a fall-back writes other bytes.

use super::super::common::some_names;
use super::{Blocked, Expectation, Snapshot};
use crate::gates::Code;
use crate::pki;
use crate::verify::Finding;

pub(super) fn root_configmap(s: &Snapshot, e: &Expectation, blocked: &Blocked) -> Finding {
    let c = e.cluster.as_str();
    let cms = match &s.root_configmaps {
        Ok(cms) => cms,
        Err(why) => {
            return Finding::new(
                Code::RootConfigmap,
                false,
                c,
                format!("istio-ca-root-cert ConfigMaps could not be read: {why}"),
            )
            .hint("grant list on configmaps in every namespace");
        }
    };
    if let Some(why) = &blocked.secret {
        return Finding::not_checked(Code::RootConfigmap, c, why);
    }
    if cms.is_empty() {
        return Finding::new(
            Code::RootConfigmap,
            false,
            c,
            "no istio-ca-root-cert ConfigMap found in any namespace",
        );
    }
    let stale: Vec<String> = cms
        .iter()
        .filter(|m| {
            let bytes = m.data.as_ref().and_then(|d| d.get("root-cert.pem"));
            bytes.map(|b| pki::sha256_hex(b.as_bytes())) != Some(e.bundle_sha256.clone())
        })
        .map(|m| m.metadata.namespace.clone().unwrap_or_default())
        .collect();
    let n = cms.len();
    let message = if stale.is_empty() {
        format!("istio-ca-root-cert holds the phase's exact bundle in all {n} namespaces")
    } else {
        format!(
            "{} of {n} namespaces hold another bundle in istio-ca-root-cert: {}",
            stale.len(),
            some_names(&stale)
        )
    };
    Finding::new(Code::RootConfigmap, stale.is_empty(), c, message).details(stale)
}
