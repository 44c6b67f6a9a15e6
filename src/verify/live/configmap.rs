//! `root-configmap` (root publication): istiod published the phase's roots where its proxies
//! read them, i.e. it reloaded the phase. Where that is comes from each istiod Deployment's env
//! ([`super::prereq::publication`], istio-2026 §1):
//!
//! - `ENABLE_CLUSTER_TRUST_BUNDLE_API=true`: the cluster-scoped ClusterTrustBundle
//!   `istio.io:istiod-ca:root-cert` holds exactly the phase's roots, compared as a set of
//!   certificates the way istiod reads PEM (a block that does not parse is dropped, so a
//!   damaged root shows as missing; istiod writes its own PEM, so bytes are not compared);
//! - otherwise: the ConfigMap named by `PILOT_CA_CERT_CONFIGMAP` (default `istio-ca-root-cert`)
//!   in every namespace holds the phase's exact `root-cert.pem` bytes (facts §4.5).
//!
//! This also covers phase 1 ("no istiod fell back to a self-signed CA"): a fall-back
//! publishes other roots. The PEM reading is written here because `pem::parse_many` rejects a
//! whole bundle for one bad block, where istiod (≥ 1.28) drops only that block.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ConfigMap;

use super::super::common::{sha_set, some_names};
use super::prereq::{Publication, publication};
use super::{Blocked, Ders, Expectation, Snapshot};
use crate::gates::Code;
use crate::pki;
use crate::verify::Finding;

/// The ClusterTrustBundle istiod writes with `ENABLE_CLUSTER_TRUST_BUNDLE_API=true`, signer
/// `istio.io/istiod-ca` (istio-2026 §1, `pilot/pkg/config/kube/clustertrustbundle/controller.go`).
pub const TRUST_BUNDLE_NAME: &str = "istio.io:istiod-ca:root-cert";

/// The API versions that serve ClusterTrustBundles, preferred first (istio-2026 §1: v1beta1
/// from Kubernetes 1.33 and Istio 1.27; v1alpha1, experimental, in Istio 1.26).
pub const TRUST_BUNDLE_VERSIONS: [&str; 2] = [
    "certificates.k8s.io/v1beta1",
    "certificates.k8s.io/v1alpha1",
];

const ISTIOD_WRITES_CTB: &str = "istiod with ENABLE_CLUSTER_TRUST_BUNDLE_API=true writes the ClusterTrustBundle once it reloaded cacerts: check istiod's logs (clustertrustbundle controller)";

/// How the ClusterTrustBundle is named in messages.
fn ctb_id() -> String {
    format!("clustertrustbundle/{TRUST_BUNDLE_NAME}")
}

/// A ClusterTrustBundle as read from the API (either served version) or a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustBundle {
    /// `certificates.k8s.io/v1beta1` or `…/v1alpha1`.
    pub api_version: String,
    /// `metadata.name`.
    pub name: String,
    /// `spec.signerName`, if any.
    pub signer_name: Option<String>,
    /// `spec.trustBundle`: PEM certificates.
    pub trust_bundle: String,
    /// When it was last written (the newest managedFields time, else its creation), in
    /// seconds since the epoch: istiod writes it right after reloading the roots.
    pub written: Option<i64>,
}

impl TrustBundle {
    /// Reads a ClusterTrustBundle object (JSON as the API serves it).
    pub fn from_json(v: &serde_json::Value) -> Result<Self, String> {
        let api_version = v["apiVersion"].as_str().unwrap_or_default();
        if !TRUST_BUNDLE_VERSIONS.contains(&api_version) || v["kind"] != "ClusterTrustBundle" {
            return Err(format!(
                "not a ClusterTrustBundle of {} (apiVersion {api_version:?}, kind {})",
                TRUST_BUNDLE_VERSIONS.join(" or "),
                v["kind"]
            ));
        }
        let name = v["metadata"]["name"]
            .as_str()
            .ok_or("a ClusterTrustBundle without metadata.name")?;
        let trust_bundle = v["spec"]["trustBundle"]
            .as_str()
            .ok_or_else(|| format!("clustertrustbundle/{name} has no spec.trustBundle"))?;
        Ok(Self {
            api_version: api_version.to_string(),
            name: name.to_string(),
            signer_name: v["spec"]["signerName"].as_str().map(str::to_string),
            trust_bundle: trust_bundle.to_string(),
            written: serde_json::from_value::<
                k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
            >(v["metadata"].clone())
            .ok()
            .and_then(|m| super::soak::latest_managed(&m)),
        })
    }
}

/// The certificates of a PEM text as istiod (≥ 1.28) reads a root bundle: every `CERTIFICATE`
/// block that parses is kept, any other block is dropped (istio-2026 §1, "invalid certificates
/// are dropped from the root bundle"). Returns the DERs and how many blocks were dropped.
pub(crate) fn istiod_certificates(text: &str) -> (Ders, usize) {
    const BEGIN: &str = "-----BEGIN ";
    const END: &str = "-----END ";
    let mut ders = Vec::new();
    let mut dropped = 0;
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let from = &rest[start..];
        let Some(end) = from.find(END) else {
            dropped += 1;
            break;
        };
        // The END line runs to its closing dashes.
        let after = &from[end + END.len()..];
        let Some(close) = after.find("-----") else {
            dropped += 1;
            break;
        };
        let len = end + END.len() + close + "-----".len();
        let block = &from[..len];
        match pem::parse(block) {
            Ok(p) if p.tag() == "CERTIFICATE" && pki::inspect_der(p.contents()).is_ok() => {
                ders.push(p.into_contents());
            }
            _ => dropped += 1,
        }
        rest = &from[len..];
    }
    (ders, dropped)
}

/// One target's verdict.
struct Part {
    ok: bool,
    message: String,
    details: Vec<String>,
    /// `true` when the target could not be read.
    unread: bool,
    /// How to fix it, if not the catalogue's hint.
    hint: Option<&'static str>,
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The ClusterTrustBundle holds exactly the phase's roots (as a set).
fn trust_bundle(s: &Snapshot, e: &Expectation) -> Part {
    let id = ctb_id();
    let tb = match &s.trust_bundle {
        None => Err("it was not collected".to_string()),
        Some(r) => r.clone(),
    };
    let tb = match tb {
        Ok(tb) => tb,
        Err(why) => {
            return Part {
                ok: false,
                message: format!("{id} could not be read: {why}"),
                details: Vec::new(),
                unread: true,
                hint: Some(
                    "grant get/list on clustertrustbundles (certificates.k8s.io) to the verify ClusterRole (clusters/<cluster>/verify/rbac.yaml); the API server must serve certificates.k8s.io/v1beta1 (Kubernetes ≥ 1.33) or v1alpha1",
                ),
            };
        }
    };
    let Some(tb) = tb else {
        return Part {
            ok: false,
            message: format!(
                "{id} does not exist, though istiod runs with ENABLE_CLUSTER_TRUST_BUNDLE_API=true"
            ),
            details: Vec::new(),
            unread: false,
            hint: Some(ISTIOD_WRITES_CTB),
        };
    };
    let (ders, dropped) = istiod_certificates(&tb.trust_bundle);
    let held: BTreeSet<String> = sha_set(&ders);
    let missing: Vec<&String> = e.roots.difference(&held).collect();
    let other: Vec<&String> = held.difference(&e.roots).collect();
    let mut details: Vec<String> = missing
        .iter()
        .map(|r| format!("missing root sha256:{r}"))
        .chain(other.iter().map(|r| format!("other root sha256:{r}")))
        .collect();
    if dropped > 0 {
        details.push(format!(
            "{dropped} PEM block(s) of spec.trustBundle do not parse as certificates (istiod drops them)"
        ));
    }
    let n = e.roots.len();
    let ok = missing.is_empty() && other.is_empty();
    let message = if ok {
        format!(
            "{id} ({}) holds exactly the phase's {n} root(s)",
            tb.api_version
        )
    } else {
        let mut what = Vec::new();
        if !missing.is_empty() {
            let names: Vec<String> = missing.iter().map(|r| short(r).to_string()).collect();
            what.push(format!(
                "lacks {} of the phase's {n} root(s) (sha256 {})",
                missing.len(),
                some_names(&names)
            ));
        }
        if !other.is_empty() {
            let names: Vec<String> = other.iter().map(|r| short(r).to_string()).collect();
            what.push(format!(
                "holds {} root(s) the phase does not (sha256 {})",
                other.len(),
                some_names(&names)
            ));
        }
        if dropped > 0 {
            what.push(format!("{dropped} block(s) do not parse"));
        }
        format!("{id} {}", what.join(", "))
    };
    Part {
        ok,
        message,
        details,
        unread: false,
        hint: (!ok).then_some(ISTIOD_WRITES_CTB),
    }
}

/// The ConfigMap `name` holds the phase's exact bytes in every namespace it is in.
fn configmaps(cms: &[ConfigMap], name: &str, e: &Expectation, qualify: bool) -> Part {
    let ours: Vec<&ConfigMap> = cms
        .iter()
        .filter(|m| m.metadata.name.as_deref() == Some(name))
        .collect();
    if ours.is_empty() {
        return Part {
            ok: false,
            message: format!("no {name} ConfigMap found in any namespace"),
            details: Vec::new(),
            unread: false,
            hint: None,
        };
    }
    let stale: Vec<String> = ours
        .iter()
        .filter(|m| {
            let bytes = m.data.as_ref().and_then(|d| d.get("root-cert.pem"));
            bytes.map(|b| pki::sha256_hex(b.as_bytes())) != Some(e.bundle_sha256.clone())
        })
        .map(|m| {
            let ns = m.metadata.namespace.clone().unwrap_or_default();
            if qualify { format!("{ns}/{name}") } else { ns }
        })
        .collect();
    let n = ours.len();
    let message = if stale.is_empty() {
        format!("{name} holds the phase's exact bundle in all {n} namespaces")
    } else {
        format!(
            "{} of {n} namespaces hold another bundle in {name}: {}",
            stale.len(),
            some_names(&stale)
        )
    };
    Part {
        ok: stale.is_empty(),
        message,
        details: stale,
        unread: false,
        hint: None,
    }
}

/// Which revision publishes where, for a message when they disagree.
fn targets(p: &Publication) -> String {
    let mut t: Vec<String> = Vec::new();
    if !p.trust_bundle.is_empty() {
        t.push(format!("{}: ClusterTrustBundle", p.trust_bundle.join(", ")));
    }
    for (name, by) in &p.configmaps {
        t.push(format!("{}: ConfigMap {name}", by.join(", ")));
    }
    t.join("; ")
}

pub(super) fn root_configmap(s: &Snapshot, e: &Expectation, blocked: &Blocked) -> Finding {
    let c = e.cluster.as_str();
    let p = match publication(&s.deployments, &s.istio_configmaps, &s.istio_namespace) {
        Ok(p) => p,
        Err(why) => return Finding::not_checked(Code::RootConfigmap, c, why),
    };
    // Never assumed: a setting rootroll cannot read leaves the target unknown (istio-2026 §1).
    if !p.unresolved.is_empty() {
        return Finding::new(
            Code::RootConfigmap,
            false,
            c,
            format!(
                "where istiod publishes its roots is unknown: {}",
                p.unresolved.join("; ")
            ),
        )
        .details(p.unresolved.clone())
        .hint("set ENABLE_CLUSTER_TRUST_BUNDLE_API and PILOT_CA_CERT_CONFIGMAP on istiod as literal values (values.pilot.env, values.global.trustBundleName) or from a ConfigMap in the Istio namespace");
    }
    let mut parts = Vec::new();
    if !p.trust_bundle.is_empty() {
        parts.push(trust_bundle(s, e));
    }
    if !p.configmaps.is_empty() {
        match &s.root_configmaps {
            Ok(cms) => {
                let qualify = p.mixed();
                for name in p.configmaps.keys() {
                    parts.push(configmaps(cms, name, e, qualify));
                }
            }
            Err(why) => {
                let names: Vec<&str> = p.configmaps.keys().map(String::as_str).collect();
                parts.push(Part {
                    ok: false,
                    message: format!("{} ConfigMaps could not be read: {why}", names.join(", ")),
                    details: Vec::new(),
                    unread: true,
                    hint: Some("grant list on configmaps in every namespace"),
                });
            }
        }
    }
    let prefix = if p.mixed() {
        format!(
            "istiod revisions publish their roots differently ({}), each is checked: ",
            targets(&p)
        )
    } else {
        String::new()
    };
    let unread: Vec<&Part> = parts.iter().filter(|x| x.unread).collect();
    if !unread.is_empty() {
        let message: Vec<&str> = unread.iter().map(|x| x.message.as_str()).collect();
        let hint: Vec<&str> = unread.iter().filter_map(|x| x.hint).collect();
        return Finding::new(
            Code::RootConfigmap,
            false,
            c,
            format!("{prefix}{}", message.join("; ")),
        )
        .hint(&hint.join("; "));
    }
    if let Some(why) = &blocked.secret {
        return Finding::not_checked(Code::RootConfigmap, c, why);
    }
    let ok = parts.iter().all(|x| x.ok);
    let message: Vec<&str> = parts.iter().map(|x| x.message.as_str()).collect();
    let details: Vec<String> = parts.iter().flat_map(|x| x.details.clone()).collect();
    let f = Finding::new(
        Code::RootConfigmap,
        ok,
        c,
        format!("{prefix}{}", message.join("; ")),
    )
    .details(details);
    match parts.iter().find_map(|x| x.hint) {
        Some(hint) => f.hint(hint),
        None => f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_that_does_not_parse_is_dropped_and_the_rest_kept() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let good = cert.pem();
        let text = format!(
            "{good}-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n{good}"
        );
        let (ders, dropped) = istiod_certificates(&text);
        assert_eq!(ders, vec![cert.der().to_vec(), cert.der().to_vec()]);
        assert_eq!(dropped, 2);
        let (ders, dropped) =
            istiod_certificates(&format!("{good}-----BEGIN CERTIFICATE-----\nAAAA"));
        assert_eq!((ders.len(), dropped), (1, 1));
        assert_eq!(istiod_certificates(""), (Vec::new(), 0));
    }
}
