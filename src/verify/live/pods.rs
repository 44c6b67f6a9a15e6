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
