//! Phase-0 prerequisites, checked live: `ISTIO_MULTIROOT_MESH` on every istiod,
//! `PROXY_CONFIG_XDS_AGENT` in the mesh config and in every running proxy, and no istiod,
//! proxy or ztunnel of a version known to break multi-root rotation (facts §9.5).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod};

use super::super::common::some_names;
use super::pods::{env_true, istio_proxy, pod_id, proxy_kind};
use super::{Expectation, Snapshot};
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
