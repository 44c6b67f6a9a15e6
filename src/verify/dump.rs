//! `verify live --from-dump DIR`: the live gates over files collected elsewhere, so teams
//! whose CI already has `kubectl` and `istioctl` can adopt the gates without giving rootroll
//! cluster access. Layout (every list is `kubectl get … -o json` output):
//!
//! ```text
//! DIR/pods.json                           kubectl get pods -A -o json
//! DIR/deployments.json                    kubectl get deployments -n istio-system -o json
//! DIR/configmaps.json                     kubectl get configmaps -A -o json
//! DIR/secret.json                         kubectl get secret cacerts -n istio-system -o json   (optional)
//! DIR/mutatingwebhookconfigurations.json  kubectl get mutatingwebhookconfigurations -o json
//! DIR/validatingwebhookconfigurations.json kubectl get validatingwebhookconfigurations -o json
//! DIR/proxy-config/<namespace>/<pod>.json istioctl proxy-config secret <pod>.<namespace> -o json
//! DIR/ztunnel-config/<pod>.json           istioctl ztunnel-config certificates <pod>.<namespace> -o json
//! ```
//! A missing file is a failed gate for what it would have shown, never a pass.

use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use serde::de::DeserializeOwned;

use super::live::{Fetched, ProxyDump, Snapshot, proxy_kind};

fn list<T: DeserializeOwned>(dir: &Path, file: &str) -> Fetched<Vec<T>> {
    let p = dir.join(file);
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", p.display()))?;
    let items = v
        .get("items")
        .cloned()
        .unwrap_or(serde_json::Value::Array(Vec::new()));
    serde_json::from_value(items).map_err(|e| format!("{}: {e}", p.display()))
}

/// Builds a snapshot from a dump directory.
pub fn snapshot(dir: &Path, istio_namespace: &str, secret_name: &str) -> Snapshot {
    let configmaps: Fetched<Vec<ConfigMap>> = list(dir, "configmaps.json");
    let istio_configmaps = configmaps.clone().map(|cms| {
        cms.into_iter()
            .filter(|m| m.metadata.namespace.as_deref() == Some(istio_namespace))
            .collect()
    });
    let root_configmaps = configmaps.map(|cms| {
        cms.into_iter()
            .filter(|m| m.metadata.name.as_deref() == Some("istio-ca-root-cert"))
            .collect()
    });
    let secret_path = dir.join("secret.json");
    let secret = secret_path.exists().then(|| {
        std::fs::read_to_string(&secret_path)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                serde_json::from_str(&t).map_err(|e| format!("{}: {e}", secret_path.display()))
            })
            .map(|s: k8s_openapi::api::core::v1::Secret| {
                (s.metadata.name.as_deref() == Some(secret_name)).then_some(s)
            })
    });
    let pods: Fetched<Vec<Pod>> = list(dir, "pods.json");
    let mut proxies = Vec::new();
    if let Ok(pods) = &pods {
        for p in pods {
            let Some(kind) = proxy_kind(p) else { continue };
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let name = p.metadata.name.clone().unwrap_or_default();
            let file = if kind == "ztunnel" {
                dir.join("ztunnel-config").join(format!("{name}.json"))
            } else {
                dir.join("proxy-config")
                    .join(&ns)
                    .join(format!("{name}.json"))
            };
            let dump = std::fs::read_to_string(&file)
                .map_err(|e| format!("{}: {e}", file.display()))
                .and_then(|t| {
                    serde_json::from_str(&t)
                        .map_err(|e| format!("{}: not JSON: {e}", file.display()))
                });
            proxies.push(ProxyDump {
                namespace: ns,
                pod: name,
                kind: kind.to_string(),
                dump,
            });
        }
    }
    Snapshot {
        istio_namespace: istio_namespace.to_string(),
        deployments: list(dir, "deployments.json"),
        istio_configmaps,
        pods,
        secret,
        root_configmaps,
        mutating_webhooks: list(dir, "mutatingwebhookconfigurations.json"),
        validating_webhooks: list(dir, "validatingwebhookconfigurations.json"),
        proxies,
    }
}
