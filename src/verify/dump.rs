//! `verify live --from-dump DIR`: the live gates over files collected elsewhere, so teams
//! whose CI already has `kubectl` and `istioctl` can adopt the gates without giving rootroll
//! cluster access. Layout (every list is `kubectl get … -o json` output):
//!
//! ```text
//! DIR/pods.json                           kubectl get pods -A -o json
//! DIR/deployments.json                    kubectl get deployments -n istio-system -o json
//! DIR/configmaps.json                     kubectl get configmaps -A -o json
//! DIR/clustertrustbundles.json            kubectl get clustertrustbundles.certificates.k8s.io -o json
//!                                         (needed when istiod runs with ENABLE_CLUSTER_TRUST_BUNDLE_API=true)
//! DIR/secret.json                         kubectl get secret cacerts -n istio-system -o json   (optional)
//! DIR/mutatingwebhookconfigurations.json  kubectl get mutatingwebhookconfigurations -o json
//! DIR/validatingwebhookconfigurations.json kubectl get validatingwebhookconfigurations -o json
//! DIR/proxy-config/<namespace>/<pod>.json istioctl proxy-config secret <pod>.<namespace> -o json
//! DIR/ztunnel-config/<pod>.json           istioctl ztunnel-config certificates <pod>.<namespace> -o json
//! ```
//! Pods of an agentgateway GatewayClass have no Envoy dump: nothing is read for them, and
//! `proxies-verified` lists them as not verified.
//!
//! A missing file is a failed gate for what it would have shown, never a pass, and its hint
//! names the file and the command that collects it (not the RBAC a live run needs).
//!
//! Pod and namespace names come from the data (`pods.json`): they become file names only
//! when they are Kubernetes names (DNS-1123), so a pod named `../../../planted` or `/etc/x`
//! is a proxy that could not be read, with the reason, and nothing outside the dump is read.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use serde::de::DeserializeOwned;

use super::live::{
    Fetched, ProxyDump, Snapshot, TRUST_BUNDLE_NAME, TrustBundle, proxy_kind, publication,
};

/// The dump file of ClusterTrustBundles, and the command that collects it.
pub const TRUST_BUNDLES_FILE: &str = "clustertrustbundles.json";
const TRUST_BUNDLES_COMMAND: &str = "kubectl get clustertrustbundles.certificates.k8s.io -o json";

/// The ClusterTrustBundle `istio.io:istiod-ca:root-cert` from `DIR/clustertrustbundles.json`
/// (a list, or the one object); a missing or unreadable file is a failure, never an absent CTB.
fn trust_bundle(dir: &Path) -> Fetched<Option<TrustBundle>> {
    let p = dir.join(TRUST_BUNDLES_FILE);
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", p.display()))?;
    let items = match v.get("items") {
        Some(serde_json::Value::Array(items)) => items.clone(),
        Some(_) => return Err(format!("{}: items is not a list", p.display())),
        None if v["kind"] == "ClusterTrustBundle" => vec![v],
        None => {
            return Err(format!(
                "{}: neither a list nor a ClusterTrustBundle",
                p.display()
            ));
        }
    };
    items
        .iter()
        .find(|i| i["metadata"]["name"] == TRUST_BUNDLE_NAME)
        .map(|i| TrustBundle::from_json(i).map_err(|e| format!("{}: {e}", p.display())))
        .transpose()
}

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

/// A DNS-1123 label: what Kubernetes allows as a namespace name (and a safe path segment).
fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: what Kubernetes allows as a pod name. Its dots never make `.` or
/// `..`, since every label is non-empty and alphanumeric at both ends.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Why a pod's dump cannot be looked up by its names, if it cannot.
fn unsafe_names(namespace: &str, pod: &str) -> Option<String> {
    let bad = |what: &str, name: &str| {
        format!(
            "its {what} `{}` is not a Kubernetes name, so it is not used as a path in the dump (is pods.json edited?)",
            name.escape_debug()
        )
    };
    if !is_dns_label(namespace) {
        Some(bad("namespace", namespace))
    } else if !is_dns_subdomain(pod) {
        Some(bad("pod name", pod))
    } else {
        None
    }
}

/// How to collect what a gate could not read from the dump, by gate code.
fn collect_hints(
    dir: &Path,
    istio_namespace: &str,
    secret_name: &str,
) -> BTreeMap<&'static str, String> {
    let d = dir.display();
    let kubectl = |file: &str, what: &str| {
        format!("collect {d}/{file}: kubectl get {what} -o json > {d}/{file}")
    };
    let mut hints = BTreeMap::new();
    hints.insert(
        "prereq-multiroot",
        kubectl(
            "deployments.json",
            &format!("deployments -n {istio_namespace}"),
        ),
    );
    hints.insert(
        "prereq-xds-agent",
        kubectl("configmaps.json", "configmaps -A"),
    );
    hints.insert(
        "root-configmap",
        kubectl("configmaps.json", "configmaps -A"),
    );
    hints.insert("prereq-xds-agent-pods", kubectl("pods.json", "pods -A"));
    hints.insert(
        "live-secret-phase",
        format!(
            "{}, or remove it to skip the Secret",
            kubectl(
                "secret.json",
                &format!("secret {secret_name} -n {istio_namespace}")
            )
        ),
    );
    hints.insert(
        "webhook-ca-bundle",
        format!(
            "{}; {}",
            kubectl(
                "mutatingwebhookconfigurations.json",
                "mutatingwebhookconfigurations"
            ),
            kubectl(
                "validatingwebhookconfigurations.json",
                "validatingwebhookconfigurations"
            )
        ),
    );
    hints.insert(
        "proxy-readable",
        format!(
            "collect {d}/proxy-config/NAMESPACE/POD.json for each proxy listed: istioctl proxy-config secret POD.NAMESPACE -o json > {d}/proxy-config/NAMESPACE/POD.json"
        ),
    );
    hints.insert(
        "ztunnel-readable",
        format!(
            "collect {d}/ztunnel-config/POD.json for each ztunnel listed: istioctl ztunnel-config certificates POD.{istio_namespace} -o json > {d}/ztunnel-config/POD.json"
        ),
    );
    hints
}

/// Builds a snapshot from a dump directory.
pub fn snapshot(dir: &Path, istio_namespace: &str, secret_name: &str) -> Snapshot {
    let mut unread_hints = collect_hints(dir, istio_namespace, secret_name);
    let deployments = list(dir, "deployments.json");
    let configmaps: Fetched<Vec<ConfigMap>> = list(dir, "configmaps.json");
    let istio_configmaps = configmaps.clone().map(|cms| {
        cms.into_iter()
            .filter(|m| m.metadata.namespace.as_deref() == Some(istio_namespace))
            .collect()
    });
    // What root-configmap reads depends on the istiod Deployments' env (istio-2026 §1).
    let (root_configmaps, trust_bundle) = match publication(
        &deployments,
        &istio_configmaps,
        istio_namespace,
    ) {
        Ok(p) => {
            let cms = configmaps.map(|cms| {
                cms.into_iter()
                    .filter(|m| {
                        m.metadata
                            .name
                            .as_ref()
                            .is_some_and(|n| p.configmaps.contains_key(n))
                    })
                    .collect()
            });
            let tb = (!p.trust_bundle.is_empty()).then(|| trust_bundle(dir));
            let d = dir.display();
            let mut hints = Vec::new();
            if tb.as_ref().is_some_and(Result::is_err) {
                hints.push(format!(
                        "collect {d}/{TRUST_BUNDLES_FILE}: {TRUST_BUNDLES_COMMAND} > {d}/{TRUST_BUNDLES_FILE}"
                    ));
            }
            if !p.configmaps.is_empty() && cms.is_err() {
                hints.push(format!(
                        "collect {d}/configmaps.json: kubectl get configmaps -A -o json > {d}/configmaps.json"
                    ));
            }
            if !hints.is_empty() {
                unread_hints.insert("root-configmap", hints.join("; "));
            }
            (cms, tb)
        }
        Err(why) => (Err(why), None),
    };
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
            if let Some(why) = unsafe_names(&ns, &name) {
                proxies.push(ProxyDump {
                    namespace: ns,
                    pod: name,
                    kind: kind.to_string(),
                    dump: Err(why),
                });
                continue;
            }
            if kind == "agentgateway" {
                // Not Envoy: nothing to read (proxies-verified lists it, istio-2026 §1).
                proxies.push(ProxyDump {
                    namespace: ns,
                    pod: name,
                    kind: kind.to_string(),
                    dump: Err("agentgateway has no Envoy config_dump".to_string()),
                });
                continue;
            }
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
        deployments,
        istio_configmaps,
        pods,
        secret,
        root_configmaps,
        trust_bundle,
        mutating_webhooks: list(dir, "mutatingwebhookconfigurations.json"),
        validating_webhooks: list(dir, "validatingwebhookconfigurations.json"),
        proxies,
        unread_hints,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kubernetes_names_become_paths() {
        for (ns, pod) in [
            ("shop", "web-0001"),
            ("istio-system", "ztunnel-abcde"),
            ("a", "pod.with.dots"),
        ] {
            assert_eq!(unsafe_names(ns, pod), None, "{ns}/{pod}");
        }
        for (ns, pod) in [
            ("shop", "../../../planted"),
            ("shop", ".."),
            ("shop", "."),
            ("shop", "a/b"),
            ("shop", "/etc/passwd"),
            ("shop", ""),
            ("shop", "Web"),
            ("shop", "a..b"),
            ("shop", "-web"),
            ("..", "web"),
            ("/tmp", "web"),
            ("sh.op", "web"),
            ("", "web"),
            ("shop", "web\u{0}"),
        ] {
            assert!(
                unsafe_names(ns, pod).is_some(),
                "{ns:?}/{pod:?} was accepted"
            );
        }
        assert!(unsafe_names("shop", &"a".repeat(254)).is_some());
    }
}
