//! What a pod runs: which Istio proxy (if any), its `istio-proxy` container and literal env.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

/// The kind of an Istio proxy pod, or None when the pod runs no proxy.
pub fn proxy_kind(p: &Pod) -> Option<&'static str> {
    let labels = p.metadata.labels.clone().unwrap_or_default();
    p.spec.as_ref()?;
    if labels.get("app").is_some_and(|v| v == "ztunnel") {
        return Some("ztunnel");
    }
    if is_agentgateway(p) {
        return Some("agentgateway");
    }
    istio_proxy(p)?;
    if labels
        .get("gateway.istio.io/managed")
        .is_some_and(|v| v == "istio.io-mesh-controller")
    {
        return Some("waypoint");
    }
    if labels.get("istio").is_some_and(|v| v.contains("gateway"))
        || labels.contains_key("gateway.networking.k8s.io/gateway-name")
    {
        return Some("gateway");
    }
    Some("sidecar")
}

/// The GatewayClasses whose proxies are agentgateway, not Envoy (istio-2026 §1, istio/istio
/// `pkg/config/constants/constants.go`, 1.31).
pub const AGENTGATEWAY_CLASSES: [&str; 2] = ["istio-agentgateway", "istio-agentgateway-waypoint"];

/// A pod of an agentgateway GatewayClass: by the `gateway.networking.k8s.io/gateway-class-name`
/// label Istio's gateway controller puts on the pods it deploys, or by an `agentgateway`
/// container image (istio-2026 §1; the label is read from the deployment controller, not seen
/// on a 1.31 cluster).
pub(super) fn is_agentgateway(p: &Pod) -> bool {
    let class = p
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("gateway.networking.k8s.io/gateway-class-name"));
    let by_class = class.is_some_and(|c| AGENTGATEWAY_CLASSES.contains(&c.as_str()));
    let by_image = p.spec.as_ref().is_some_and(|s| {
        s.containers.iter().any(|c| {
            c.image.as_deref().is_some_and(|i| {
                let path = i.split('@').next().unwrap_or(i);
                let last = path.rsplit('/').next().unwrap_or(path);
                last.split(':')
                    .next()
                    .unwrap_or(last)
                    .contains("agentgateway")
            })
        })
    });
    by_class || by_image
}

/// The `istio-proxy` container (a sidecar may also be a native-sidecar init container).
pub(super) fn istio_proxy(p: &Pod) -> Option<&Container> {
    let spec = p.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == "istio-proxy")
}

/// `namespace/name`.
pub(super) fn pod_id(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or_default(),
        p.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `name=value` env of a container, literal values only.
fn env_of(c: &Container) -> BTreeMap<&str, &str> {
    c.env
        .iter()
        .flatten()
        .filter_map(|e| e.value.as_deref().map(|v| (e.name.as_str(), v)))
        .collect()
}

/// `true` when the container sets `name` to `true` (any case) as a literal value.
pub(super) fn env_true(c: Option<&Container>, name: &str) -> bool {
    c.map(env_of)
        .and_then(|env| env.get(name).map(|v| v.eq_ignore_ascii_case("true")))
        == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: serde_json::Value, image: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n", "labels": labels},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .unwrap()
    }

    #[test]
    fn agentgateway_pods_are_found_by_class_label_or_image() {
        let class =
            |c: &str| serde_json::json!({"gateway.networking.k8s.io/gateway-class-name": c});
        for (labels, image) in [
            (class("istio-agentgateway"), "example.com/whatever:1"),
            (
                class("istio-agentgateway-waypoint"),
                "example.com/whatever:1",
            ),
            (
                serde_json::json!({}),
                "cr.agentgateway.dev/agentgateway:0.9.0",
            ),
            (
                serde_json::json!({}),
                "registry:5000/mesh/agentgateway@sha256:abc",
            ),
        ] {
            let p = pod(labels, image);
            assert_eq!(proxy_kind(&p), Some("agentgateway"), "{image}");
        }
        for (labels, image) in [
            (class("istio"), "docker.io/istio/proxyv2:1.26.2"),
            (
                serde_json::json!({}),
                "agentgateway.example:5000/istio/proxyv2:1.26.2",
            ),
        ] {
            assert!(!is_agentgateway(&pod(labels, image)), "{image}");
        }
    }
}
