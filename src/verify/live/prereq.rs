//! Phase-0 prerequisites, checked live: `ISTIO_MULTIROOT_MESH` on every istiod,
//! `PROXY_CONFIG_XDS_AGENT` in the mesh config and in every running proxy, and no istiod,
//! proxy or ztunnel of a version known to break multi-root rotation (facts §9.5). Also where
//! each istiod publishes its roots ([`publication`]), read from its env for `root-configmap`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod};

use super::super::common::some_names;
use super::pods::{env_true, istio_proxy, pod_id, proxy_kind};
use super::{Expectation, Fetched, Snapshot};
use crate::gates::Code;
use crate::plan::IstioVersion;
use crate::verify::Finding;

/// Version from an image reference like `docker.io/istio/proxyv2:1.24.3-distroless`.
pub fn image_version(image: &str) -> Option<IstioVersion> {
    let tag = image.rsplit_once(':')?.1;
    let tag = tag.split(['-', '@']).next()?;
    IstioVersion::parse(tag).filter(|v| v.patch.is_some())
}

/// Known-bad multi-root versions (facts §3.3, §9.5). `component` is `istiod`, `proxy` or `ztunnel`.
pub fn version_problem(component: &str, v: IstioVersion) -> Option<String> {
    let (maj, min, patch) = (v.major, v.minor, v.patch.unwrap_or(0));
    if (maj, min) < (1, 21) && component != "ztunnel" {
        return Some(format!(
            "{component} {} is older than 1.21 (no immediate re-sign on bundle change)",
            String::from(v)
        ));
    }
    if component == "istiod" && matches!((maj, min, patch), (1, 24, 4) | (1, 25, 1)) {
        return Some(format!(
            "istiod {} trusts only the last root of a bundle (istio/istio#55793)",
            String::from(v)
        ));
    }
    if component == "ztunnel" && !v.ztunnel_trusts_every_root() {
        return Some(format!(
            "ztunnel {} trusts only the first root of a bundle (multi-root trust needs 1.24.6 / 1.25.3 / 1.26.0+)",
            String::from(v)
        ));
    }
    None
}

fn is_istiod(d: &Deployment) -> bool {
    let labels = d.metadata.labels.clone().unwrap_or_default();
    labels.get("app").is_some_and(|v| v == "istiod")
        || d.metadata
            .name
            .as_deref()
            .is_some_and(|n| n == "istiod" || n.starts_with("istiod-"))
}

/// istiod's `discovery` container (or its first).
fn discovery(d: &Deployment) -> Option<&Container> {
    let containers = &d.spec.template.spec.as_ref()?.containers;
    containers
        .iter()
        .find(|c| c.name == "discovery")
        .or(containers.first())
}

fn version_of(component: &str, c: Option<&Container>) -> Option<String> {
    let v = image_version(c?.image.as_deref()?)?;
    version_problem(component, v)
}

/// The root ConfigMap's name when `PILOT_CA_CERT_CONFIGMAP` is not set (facts §4.5,
/// istio-2026 §1: `values.global.trustBundleName` sets it since 1.27).
pub const DEFAULT_ROOT_CONFIGMAP: &str = "istio-ca-root-cert";

/// Where the istiod Deployments publish their root bundle, each read from its own env
/// (istio-2026 §1, rows on ClusterTrustBundle and `trustBundleName`). Revisions may disagree:
/// then every target is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publication {
    /// Deployments with `ENABLE_CLUSTER_TRUST_BUNDLE_API=true`: they write the
    /// ClusterTrustBundle `istio.io:istiod-ca:root-cert` instead of ConfigMaps.
    pub trust_bundle: Vec<String>,
    /// Root ConfigMap name (`PILOT_CA_CERT_CONFIGMAP`, default `istio-ca-root-cert`) → the
    /// Deployments that write it into every namespace.
    pub configmaps: BTreeMap<String, Vec<String>>,
    /// `deployment: why` for each Deployment whose settings could not be resolved.
    pub unresolved: Vec<String>,
}

impl Publication {
    /// `true` when the Deployments publish to more than one target.
    pub fn mixed(&self) -> bool {
        usize::from(!self.trust_bundle.is_empty()) + self.configmaps.len() > 1
    }
}

/// Where istiod publishes its roots, from the istiod Deployments' env (`Err`: the reason the
/// root publication cannot be judged at all). `istio_configmaps` resolve `configMapKeyRef`
/// and `envFrom` ConfigMaps, which live in the Deployments' (Istio) namespace.
pub fn publication(
    deployments: &Fetched<Vec<Deployment>>,
    istio_configmaps: &Fetched<Vec<ConfigMap>>,
    istio_namespace: &str,
) -> Result<Publication, String> {
    let Ok(deployments) = deployments else {
        return Err(
            "because where istiod publishes its roots is read from the istiod Deployments, which could not be listed (prereq-multiroot)".into(),
        );
    };
    let istiods: Vec<&Deployment> = deployments.iter().filter(|d| is_istiod(d)).collect();
    if istiods.is_empty() {
        return Err(format!(
            "because no istiod Deployment found in {istio_namespace} (prereq-multiroot)"
        ));
    }
    let mut p = Publication::default();
    for d in istiods {
        let name = d.metadata.name.clone().unwrap_or_default();
        let Some(c) = discovery(d) else {
            p.unresolved.push(format!("{name}: no discovery container"));
            continue;
        };
        // istio-2026 §1: ENABLE_CLUSTER_TRUST_BUNDLE_API=true (1.26+) moves the roots from the
        // per-namespace ConfigMaps to the ClusterTrustBundle.
        let flag = match env_setting(c, "ENABLE_CLUSTER_TRUST_BUNDLE_API", istio_configmaps) {
            Ok(None) => false,
            Ok(Some(v)) => match go_bool(&v) {
                Some(b) => b,
                None => {
                    p.unresolved.push(format!(
                        "{name}: ENABLE_CLUSTER_TRUST_BUNDLE_API={v:?} is not a boolean"
                    ));
                    continue;
                }
            },
            Err(why) => {
                p.unresolved.push(format!("{name}: {why}"));
                continue;
            }
        };
        if flag {
            p.trust_bundle.push(name);
            continue;
        }
        // istio-2026 §1 / facts §4.5: the ConfigMap's name is PILOT_CA_CERT_CONFIGMAP
        // (values.global.trustBundleName, 1.27+), default istio-ca-root-cert.
        match env_setting(c, "PILOT_CA_CERT_CONFIGMAP", istio_configmaps) {
            Ok(None) => p
                .configmaps
                .entry(DEFAULT_ROOT_CONFIGMAP.to_string())
                .or_default()
                .push(name),
            Ok(Some(v)) if super::super::dump::is_dns_subdomain(&v) => {
                p.configmaps.entry(v).or_default().push(name);
            }
            Ok(Some(v)) => p.unresolved.push(format!(
                "{name}: PILOT_CA_CERT_CONFIGMAP={v:?} is not a ConfigMap name"
            )),
            Err(why) => p.unresolved.push(format!("{name}: {why}")),
        }
    }
    Ok(p)
}

/// Go's `strconv.ParseBool`, which istiod's boolean env settings go through.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The value the kubelet gives env `name` of container `c`: `Ok(None)` when unset, `Err` when
/// it comes from somewhere rootroll cannot read (a Secret, a field, a ConfigMap it could not
/// list). As Kubernetes does: the last `env` entry wins over `envFrom`, and among `envFrom`
/// sources the last one that has the key.
fn env_setting(
    c: &Container,
    name: &str,
    cms: &Fetched<Vec<ConfigMap>>,
) -> Result<Option<String>, String> {
    // The kubelet skips an optional configMapKeyRef whose key is missing, so an earlier entry
    // of the same name, or envFrom, then sets the variable.
    for e in c.env.iter().flatten().rev().filter(|e| e.name == name) {
        let Some(from) = &e.value_from else {
            return Ok(Some(e.value.clone().unwrap_or_default()));
        };
        if let Some(r) = &from.config_map_key_ref {
            let cm = configmap(cms, &r.name)
                .map_err(|why| format!("{name} comes from ConfigMap {}: {why}", r.name))?;
            match cm.and_then(|m| m.data.as_ref()?.get(&r.key)) {
                Some(v) => return Ok(Some(v.clone())),
                None if r.optional == Some(true) => continue,
                None => {
                    return Err(format!(
                        "{name} comes from key {} of ConfigMap {}, which does not exist (istiod cannot start)",
                        r.key, r.name
                    ));
                }
            }
        }
        let source = if from.secret_key_ref.is_some() {
            "a Secret (secretKeyRef)"
        } else if from.field_ref.is_some() {
            "a field of the pod (fieldRef)"
        } else if from.file_key_ref.is_some() {
            "a file (fileKeyRef)"
        } else {
            "a valueFrom source"
        };
        return Err(format!(
            "{name} comes from {source}, which rootroll does not resolve"
        ));
    }
    for src in c.env_from.iter().flatten().rev() {
        let Some(key) = name.strip_prefix(src.prefix.as_deref().unwrap_or_default()) else {
            continue;
        };
        if let Some(r) = &src.config_map_ref {
            let cm = configmap(cms, &r.name).map_err(|why| {
                format!("{name} may come from ConfigMap {} (envFrom): {why}", r.name)
            })?;
            match cm {
                Some(m) => {
                    if let Some(v) = m.data.as_ref().and_then(|d| d.get(key)) {
                        return Ok(Some(v.clone()));
                    }
                }
                None if r.optional == Some(true) => {}
                None => {
                    return Err(format!(
                        "{name} may come from ConfigMap {} (envFrom), which does not exist (istiod cannot start)",
                        r.name
                    ));
                }
            }
        }
        if let Some(r) = &src.secret_ref {
            return Err(format!(
                "{name} may come from Secret {} (envFrom), which rootroll does not read",
                r.name
            ));
        }
    }
    Ok(None)
}

/// ConfigMap `name` of the Istio namespace, `None` when it does not exist.
fn configmap<'a>(
    cms: &'a Fetched<Vec<ConfigMap>>,
    name: &str,
) -> Result<Option<&'a ConfigMap>, String> {
    let cms = cms
        .as_ref()
        .map_err(|why| format!("the Istio namespace's ConfigMaps could not be listed: {why}"))?;
    Ok(cms
        .iter()
        .find(|m| m.metadata.name.as_deref() == Some(name)))
}

/// `prereq-multiroot` and istiod's `prereq-versions`.
pub(super) fn istiod(s: &Snapshot, e: &Expectation) -> Vec<Finding> {
    let c = e.cluster.as_str();
    let subject = format!("{c}/istiod");
    let deployments = match &s.deployments {
        Ok(d) => d,
        Err(why) => {
            return vec![
                Finding::new(
                    Code::PrereqMultiroot,
                    false,
                    c,
                    format!("istiod Deployments could not be read: {why}"),
                )
                .hint("grant get/list on deployments in the Istio namespace"),
                Finding::not_checked(
                    Code::PrereqVersions,
                    &subject,
                    "because the istiod Deployments could not be read (prereq-multiroot)",
                ),
            ];
        }
    };
    let istiods: Vec<&Deployment> = deployments.iter().filter(|d| is_istiod(d)).collect();
    if istiods.is_empty() {
        let why = format!("no istiod Deployment found in {}", s.istio_namespace);
        return vec![
            Finding::new(Code::PrereqMultiroot, false, c, why.clone()),
            Finding::not_checked(Code::PrereqVersions, &subject, format!("because {why}")),
        ];
    }
    let name = |d: &Deployment| d.metadata.name.clone().unwrap_or_default();
    let missing: Vec<String> = istiods
        .iter()
        .filter(|d| !env_true(discovery(d), "ISTIO_MULTIROOT_MESH"))
        .map(|d| name(d))
        .collect();
    let bad: Vec<String> = istiods
        .iter()
        .filter_map(|d| version_of("istiod", discovery(d)).map(|p| format!("{}: {p}", name(d))))
        .collect();
    let n = istiods.len();
    let multiroot = if missing.is_empty() {
        format!("ISTIO_MULTIROOT_MESH=true on {n} istiod revision(s)")
    } else {
        format!(
            "{} of {n} istiod revision(s) lack ISTIO_MULTIROOT_MESH=true: {}",
            missing.len(),
            some_names(&missing)
        )
    };
    let versions = if bad.is_empty() {
        "istiod versions support multi-root rotation".to_string()
    } else {
        bad.join("; ")
    };
    vec![
        Finding::new(Code::PrereqMultiroot, missing.is_empty(), c, multiroot).details(missing),
        Finding::new(Code::PrereqVersions, bad.is_empty(), &subject, versions),
    ]
}

/// The mesh config ConfigMaps (`istio`, `istio-<rev>`) of the Istio namespace.
fn mesh_configs(cms: &[ConfigMap]) -> impl Iterator<Item = (&str, &str)> {
    cms.iter().filter_map(|m| {
        let name = m.metadata.name.as_deref()?;
        let mesh = m.data.as_ref()?.get("mesh")?;
        (name == "istio" || name.starts_with("istio-")).then_some((name, mesh.as_str()))
    })
}

/// `prereq-xds-agent`: PROXY_CONFIG_XDS_AGENT in meshConfig.defaultConfig.proxyMetadata.
pub(super) fn mesh_config(s: &Snapshot, e: &Expectation) -> Finding {
    let subject = format!("{}/meshconfig", e.cluster);
    let cms = match &s.istio_configmaps {
        Ok(cms) => cms,
        Err(why) => {
            return Finding::new(
                Code::PrereqXdsAgent,
                false,
                &subject,
                format!("the mesh config could not be read: {why}"),
            )
            .hint("grant get/list on configmaps in the Istio namespace");
        }
    };
    let meshes: Vec<(&str, &str)> = mesh_configs(cms).collect();
    let without: Vec<String> = meshes
        .iter()
        .filter(|(_, text)| {
            let mesh: serde_json::Value = serde_saphyr::from_str(text).unwrap_or_default();
            let v = &mesh["defaultConfig"]["proxyMetadata"]["PROXY_CONFIG_XDS_AGENT"];
            !(v == "true" || v == true)
        })
        .map(|(name, _)| name.to_string())
        .collect();
    let message = if meshes.is_empty() {
        format!("no mesh config ConfigMap in {}", s.istio_namespace)
    } else if without.is_empty() {
        "PROXY_CONFIG_XDS_AGENT=true in meshConfig.defaultConfig.proxyMetadata".into()
    } else {
        format!(
            "mesh config {} lacks PROXY_CONFIG_XDS_AGENT=true",
            without.join(", ")
        )
    };
    Finding::new(
        Code::PrereqXdsAgent,
        !meshes.is_empty() && without.is_empty(),
        &subject,
        message,
    )
    .details(without)
}

/// `prereq-xds-agent-pods` and the data plane's `prereq-versions`. When pods cannot be
/// listed, the first is the root-cause failure and every gate that needs pods is not checked.
pub(super) fn data_plane(s: &Snapshot, e: &Expectation) -> Vec<Finding> {
    let c = e.cluster.as_str();
    let subject = format!("{c}/data-plane");
    let pods = match &s.pods {
        Ok(p) => p,
        Err(why) => {
            return vec![
                Finding::new(
                    Code::PrereqXdsAgentPods,
                    false,
                    c,
                    format!("pods could not be listed: {why}"),
                )
                .hint("grant list on pods in every namespace"),
                Finding::not_checked(
                    Code::PrereqVersions,
                    &subject,
                    "because pods could not be listed (prereq-xds-agent-pods)",
                ),
            ];
        }
    };
    vec![xds_agent_pods(c, pods), versions(&subject, pods)]
}

fn xds_agent_pods(c: &str, pods: &[Pod]) -> Finding {
    let proxies: Vec<&Pod> = pods
        .iter()
        .filter(|p| matches!(proxy_kind(p), Some(k) if k != "ztunnel" && k != "agentgateway"))
        .collect();
    let lacking: Vec<String> = proxies
        .iter()
        .filter(|p| !env_true(istio_proxy(p), "PROXY_CONFIG_XDS_AGENT"))
        .map(|p| pod_id(p))
        .collect();
    let n = proxies.len();
    let message = if lacking.is_empty() {
        format!("all {n} proxies run with PROXY_CONFIG_XDS_AGENT=true")
    } else {
        format!(
            "{} of {n} proxies lack PROXY_CONFIG_XDS_AGENT=true (started before it was enabled): {}",
            lacking.len(),
            some_names(&lacking)
        )
    };
    Finding::new(Code::PrereqXdsAgentPods, lacking.is_empty(), c, message).details(lacking)
}

fn versions(subject: &str, pods: &[Pod]) -> Finding {
    let bad: Vec<(String, String)> = pods
        .iter()
        .filter_map(|p| {
            let problem = match proxy_kind(p)? {
                "ztunnel" => version_of("ztunnel", p.spec.as_ref()?.containers.first()),
                _ => version_of("proxy", istio_proxy(p)),
            }?;
            Some((pod_id(p), problem))
        })
        .collect();
    let ok = bad.is_empty();
    let message = if ok {
        "proxy and ztunnel versions support multi-root rotation".to_string()
    } else {
        let names: Vec<String> = bad.iter().map(|(pod, _)| pod.clone()).collect();
        format!(
            "{} pod(s) run a version that cannot rotate safely: {}",
            bad.len(),
            some_names(&names)
        )
    };
    let details = bad.into_iter().map(|(p, why)| format!("{p}: {why}"));
    Finding::new(Code::PrereqVersions, ok, subject, message).details(details.collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn istiod(name: &str, env: serde_json::Value, env_from: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "istio-system", "labels": {"app": "istiod"}},
            "spec": {"selector": {}, "template": {"spec": {"containers": [
                {"name": "discovery", "image": "docker.io/istio/pilot:1.27.1", "env": env, "envFrom": env_from}
            ]}}}
        }))
        .unwrap()
    }

    fn settings() -> Fetched<Vec<ConfigMap>> {
        Ok(vec![
            serde_json::from_value(json!({
                "metadata": {"name": "istiod-env", "namespace": "istio-system"},
                "data": {"PILOT_CA_CERT_CONFIGMAP": "from-envfrom", "CLUSTER_TRUST_BUNDLE_API": "True"}
            }))
            .unwrap(),
        ])
    }

    fn of(d: Vec<Deployment>) -> Publication {
        publication(&Ok(d), &settings(), "istio-system").unwrap()
    }

    #[test]
    fn the_publication_follows_each_istiod_env_as_the_kubelet_sets_it() {
        // Nothing set: the default ConfigMap.
        let p = of(vec![istiod("istiod", json!([]), json!([]))]);
        assert_eq!(
            p.configmaps.keys().collect::<Vec<_>>(),
            ["istio-ca-root-cert"]
        );
        // envFrom a ConfigMap, and an env entry that wins over it.
        let from = json!([{"configMapRef": {"name": "istiod-env"}}]);
        let p = of(vec![istiod("istiod", json!([]), from.clone())]);
        assert_eq!(p.configmaps.keys().collect::<Vec<_>>(), ["from-envfrom"]);
        let p = of(vec![istiod(
            "istiod",
            json!([{"name": "PILOT_CA_CERT_CONFIGMAP", "value": "literal"}]),
            from,
        )]);
        assert_eq!(p.configmaps.keys().collect::<Vec<_>>(), ["literal"]);
        // An optional configMapKeyRef whose key is missing is skipped by the kubelet: the
        // earlier entry, then envFrom, sets the variable (not the default).
        let optional_missing = json!({"name": "PILOT_CA_CERT_CONFIGMAP", "valueFrom": {"configMapKeyRef": {"name": "istiod-env", "key": "no-such-key", "optional": true}}});
        let p = of(vec![istiod(
            "istiod",
            json!([{"name": "PILOT_CA_CERT_CONFIGMAP", "value": "literal"}, optional_missing.clone()]),
            json!([{"configMapRef": {"name": "istiod-env"}}]),
        )]);
        assert_eq!(p.configmaps.keys().collect::<Vec<_>>(), ["literal"]);
        let p = of(vec![istiod(
            "istiod",
            json!([optional_missing]),
            json!([{"configMapRef": {"name": "istiod-env"}}]),
        )]);
        assert_eq!(p.configmaps.keys().collect::<Vec<_>>(), ["from-envfrom"]);
        // A prefixed envFrom turns the CTB flag on (Go's ParseBool accepts "True").
        let p = of(vec![istiod(
            "istiod",
            json!([]),
            json!([{"configMapRef": {"name": "istiod-env"}, "prefix": "ENABLE_"}]),
        )]);
        assert_eq!(p.trust_bundle, ["istiod"]);
        assert!(p.configmaps.is_empty());
        // Two revisions that disagree: both targets.
        let p = of(vec![
            istiod(
                "istiod",
                json!([{"name": "ENABLE_CLUSTER_TRUST_BUNDLE_API", "value": "1"}]),
                json!([]),
            ),
            istiod("istiod-canary", json!([]), json!([])),
        ]);
        assert!(p.mixed());
        assert_eq!(p.trust_bundle, ["istiod"]);
        assert_eq!(p.configmaps["istio-ca-root-cert"], ["istiod-canary"]);
    }

    #[test]
    fn a_setting_rootroll_cannot_read_is_unresolved_never_assumed() {
        for (env, env_from, why) in [
            (
                json!([{"name": "ENABLE_CLUSTER_TRUST_BUNDLE_API", "value": "yes"}]),
                json!([]),
                "istiod: ENABLE_CLUSTER_TRUST_BUNDLE_API=\"yes\" is not a boolean",
            ),
            (
                json!([{"name": "ENABLE_CLUSTER_TRUST_BUNDLE_API", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['ctb']"}}}]),
                json!([]),
                "istiod: ENABLE_CLUSTER_TRUST_BUNDLE_API comes from a field of the pod (fieldRef), which rootroll does not resolve",
            ),
            (
                json!([]),
                json!([{"secretRef": {"name": "istiod-secret-env"}}]),
                "istiod: ENABLE_CLUSTER_TRUST_BUNDLE_API may come from Secret istiod-secret-env (envFrom), which rootroll does not read",
            ),
            (
                json!([{"name": "PILOT_CA_CERT_CONFIGMAP", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]),
                json!([]),
                "istiod: PILOT_CA_CERT_CONFIGMAP comes from key k of ConfigMap gone, which does not exist (istiod cannot start)",
            ),
            (
                json!([{"name": "PILOT_CA_CERT_CONFIGMAP", "value": "a,metadata.name=b"}]),
                json!([]),
                "istiod: PILOT_CA_CERT_CONFIGMAP=\"a,metadata.name=b\" is not a ConfigMap name",
            ),
        ] {
            let p = of(vec![istiod("istiod", env, env_from)]);
            assert_eq!(p.unresolved, [why]);
            assert!(p.trust_bundle.is_empty() && p.configmaps.is_empty());
        }
        // A configMapKeyRef when the Istio namespace's ConfigMaps could not be listed.
        let d = istiod(
            "istiod",
            json!([{"name": "PILOT_CA_CERT_CONFIGMAP", "valueFrom": {"configMapKeyRef": {"name": "istiod-env", "key": "PILOT_CA_CERT_CONFIGMAP"}}}]),
            json!([]),
        );
        let p = publication(&Ok(vec![d]), &Err("403 Forbidden".into()), "istio-system").unwrap();
        assert_eq!(
            p.unresolved,
            [
                "istiod: PILOT_CA_CERT_CONFIGMAP comes from ConfigMap istiod-env: the Istio namespace's ConfigMaps could not be listed: 403 Forbidden"
            ]
        );
        // No Deployments, or no istiod among them: not judged at all.
        assert!(publication(&Err("x".into()), &settings(), "istio-system").is_err());
        assert!(publication(&Ok(vec![]), &settings(), "istio-system").is_err());
    }
}
