//! `verify live`: a consistent phase passes, each injected fault fails the right gate, and
//! `--from-dump` gives the same verdicts as a live cluster. Envoy's `config_dump` comes from a
//! real Envoy loaded (through SDS) with a leaf issued from the phase's intermediate, the way
//! istiod would; Kubernetes objects are real-format JSON built from the rendered phase.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::*;
use crate::envoy::{EnvoyPair, Side};

pub(crate) const DEMO_KEY: &str = "plans/demo.agekey";

fn identity() -> age::x25519::Identity {
    let text = std::fs::read_to_string(root().join(DEMO_KEY)).unwrap();
    text.lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .parse()
        .unwrap()
}

/// A rendered plan at the real clock (Envoy checks validity against it).
pub(crate) struct Rendered {
    _dir: tempfile::TempDir,
    pub out: PathBuf,
}

pub(crate) fn render_now(plan: &str) -> Rendered {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let o = rootroll_at(&at, &["render", plan, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    Rendered { _dir: dir, out }
}

/// The decrypted phase Secret of a cluster, as JSON.
pub(crate) fn phase_secret(out: &Path, cluster: &str, phase: u8) -> Value {
    // The phase's directory as the rendered rollout names it (either strategy).
    let strategy = rootroll::repo::read_rollout(out).unwrap().strategy;
    let f = out.join(format!(
        "clusters/{cluster}/istio-ca/phases/{}/cacerts.sops.yaml",
        rootroll::model::phase_dir(strategy, phase)
    ));
    let plain =
        rootroll::sops::decrypt_yaml("t", &std::fs::read_to_string(f).unwrap(), &[identity()])
            .unwrap();
    serde_saphyr::from_str(&plain).unwrap()
}

/// Loads the server Envoy with a workload of `phase` (leaf from its intermediate, ROOTCA its
/// bundle) and returns Envoy's real admin secrets dump.
pub(crate) fn envoy_dump(envoy: &mut EnvoyPair, out: &Path, cluster: &str, phase: u8) -> Value {
    let (w, bundle) = workload(out, cluster, phase, "web");
    let side = Side {
        chain_pem: w.chain_pem.into_bytes(),
        key_pem: w.key_pem.into_bytes(),
        trust_pem: bundle,
    };
    assert!(envoy.handshake_ok(&side, &side), "{}", envoy.last_detail());
    serde_json::from_str(&envoy.server_admin_get("/config_dump?mask=dynamic_active_secrets"))
        .unwrap()
}

/// (signer cert, signer key, cert-chain as istiod serves it, root bundle) of a phase, for
/// both Secret formats.
fn phase_material(out: &Path, cluster: &str, phase: u8) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let d = secret_data(&phase_secret(out, cluster, phase));
    if d.contains_key("tls.crt") {
        let mut chain = d["tls.crt"].clone();
        chain.extend_from_slice(&d["ca.crt"]);
        (
            d["tls.crt"].clone(),
            d["tls.key"].clone(),
            chain,
            d["ca.crt"].clone(),
        )
    } else {
        (
            d["ca-cert.pem"].clone(),
            d["ca-key.pem"].clone(),
            d["cert-chain.pem"].clone(),
            d["root-cert.pem"].clone(),
        )
    }
}

/// A workload leaf issued from a phase's intermediate, as istiod would, and the phase bundle.
fn workload(
    out: &Path,
    cluster: &str,
    phase: u8,
    sa: &str,
) -> (rootroll::handshake::Workload, Vec<u8>) {
    let (cert, key, chain, bundle) = phase_material(out, cluster, phase);
    let w = rootroll::handshake::issue_workload(
        &rootroll::handshake::LeafSpec {
            trust_domain: "cluster.local".into(),
            namespace: "shop".into(),
            service_account: sa.into(),
        },
        std::str::from_utf8(&cert).unwrap(),
        std::str::from_utf8(&key).unwrap(),
        &chain,
        &bundle,
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    (w, bundle)
}

/// A ztunnel `config_dump` (facts §7.3) holding one identity issued in `leaf_phase` and the
/// roots of `trust_phase`.
pub(crate) fn ztunnel_dump(out: &Path, cluster: &str, leaf_phase: u8, trust_phase: u8) -> Value {
    let (w, _) = workload(out, cluster, leaf_phase, "web");
    let (.., roots) = phase_material(out, cluster, trust_phase);
    let b64 = base64::engine::general_purpose::STANDARD;
    let dump = |pem_bytes: &[u8]| -> Vec<Value> {
        pem::parse_many(pem_bytes)
            .unwrap()
            .into_iter()
            .map(|p| {
                let der = p.contents().to_vec();
                let s = rootroll::pki::inspect_der(&der).unwrap();
                json!({
                    "pem": b64.encode(rootroll::pki::der_to_pem(&der)),
                    "serialNumber": s.serial,
                    "validFrom": s.not_before.format(&Rfc3339).unwrap(),
                    "expirationTime": s.not_after.format(&Rfc3339).unwrap(),
                })
            })
            .collect()
    };
    let chain = dump(w.chain_pem.as_bytes());
    json!({"certificates": [{
        "identity": "spiffe://cluster.local/ns/shop/sa/web",
        "state": "Available",
        "certChain": chain[..2],
        "rootCerts": dump(&roots),
    }]})
}

/// A pod Istio's gateway controller deploys for a Gateway of the `istio-agentgateway` class
/// (istio-2026 §1): labelled with its class, running agentgateway, no `istio-proxy`.
pub(crate) fn agentgateway_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "ai-gw-agentgateway-5c7d9-x2x8q", "namespace": "shop", "labels": {
            "gateway.networking.k8s.io/gateway-name": "ai-gw",
            "gateway.networking.k8s.io/gateway-class-name": "istio-agentgateway",
            "gateway.istio.io/managed": "istio.io-gateway-controller"}},
        "spec": {"containers": [{"name": "agentgateway", "image": "cr.agentgateway.dev/agentgateway:0.9.0",
            "ports": [{"containerPort": 15000, "name": "admin"}]}]},
        "status": {"phase": "Running", "startTime": ago(86_400)}
    })
}

fn ago(secs: i64) -> String {
    (OffsetDateTime::now_utc() - time::Duration::seconds(secs))
        .format(&Rfc3339)
        .unwrap()
}

fn list(kind: &str, api: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api, "kind": format!("{kind}List"), "metadata": {"resourceVersion": "1"}, "items": items})
}

/// A healthy cluster in `phase`: Kubernetes objects (by file name) as `kubectl get -o json` prints them.
pub(crate) struct Cluster {
    pub objects: BTreeMap<&'static str, Value>,
    pub secret: Value,
    /// (namespace, pod) of each sidecar.
    pub sidecars: Vec<(String, String)>,
}

pub(crate) fn healthy(out: &Path, cluster: &str, phase: u8, sidecars: usize) -> Cluster {
    let sec = phase_secret(out, cluster, phase);
    let data = secret_data(&sec);
    let bundle = String::from_utf8(phase_material(out, cluster, phase).3).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let long_ago = ago(7 * 86_400);
    let managed =
        json!([{"manager": "kustomize-controller", "operation": "Apply", "time": long_ago}]);
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "cacerts", "namespace": "istio-system", "labels": sec["metadata"]["labels"], "annotations": sec["metadata"]["annotations"], "managedFields": managed, "creationTimestamp": long_ago},
        "type": sec["type"],
        "data": data.iter().map(|(k, v)| (k.clone(), Value::String(b64.encode(v)))).collect::<serde_json::Map<_, _>>(),
    });
    let istiod = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "istiod", "namespace": "istio-system", "labels": {"app": "istiod"}},
        "spec": {"selector": {"matchLabels": {"app": "istiod"}}, "template": {"metadata": {"labels": {"app": "istiod"}}, "spec": {"containers": [{
            "name": "discovery", "image": "docker.io/istio/pilot:1.26.2",
            "env": [{"name": "ISTIO_MULTIROOT_MESH", "value": "true"}, {"name": "PILOT_TRACE_SAMPLING", "value": "1"}]}]}}}
    });
    let mesh = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "istio", "namespace": "istio-system"},
        "data": {"mesh": "defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n  proxyMetadata:\n    PROXY_CONFIG_XDS_AGENT: \"true\"\n"}
    });
    let mut cms = vec![mesh];
    for ns in ["istio-system", "kube-system", "shop", "default"] {
        cms.push(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "istio-ca-root-cert", "namespace": ns, "labels": {"istio.io/config": "true"}, "managedFields": [{"manager": "pilot-discovery", "operation": "Update", "time": ago(3 * 86_400)}]},
            "data": {"root-cert.pem": bundle}
        }));
    }
    let mut pods = vec![json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "istiod-7d9f8-abcde", "namespace": "istio-system", "labels": {"app": "istiod"}},
        "spec": {"containers": [{"name": "discovery", "image": "docker.io/istio/pilot:1.26.2"}]},
        "status": {"phase": "Running"}
    })];
    let mut names = Vec::new();
    for i in 0..sidecars {
        let name = format!("web-{i:04}");
        names.push(("shop".to_string(), name.clone()));
        pods.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web", "security.istio.io/tlsMode": "istio"}},
            "spec": {"containers": [
                {"name": "web", "image": "nginx:1.27"},
                {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.26.2", "env": [{"name": "PROXY_CONFIG_XDS_AGENT", "value": "true"}, {"name": "ISTIO_META_MESH_ID", "value": "mesh1"}]}
            ]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "istio-proxy", "ready": true, "restartCount": 0, "image": "docker.io/istio/proxyv2:1.26.2", "imageID": "", "state": {"running": {"startedAt": ago(10 * 86_400)}}}
            ]}
        }));
    }
    let bundle_b64 = b64.encode(bundle.as_bytes());
    let webhook = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "istio-sidecar-injector"},
        "webhooks": [{"name": "namespace.sidecar-injector.istio.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "clientConfig": {"caBundle": bundle_b64, "service": {"name": "istiod", "namespace": "istio-system", "path": "/inject"}}}]
    });
    let vwebhook = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "istio-validator-istio-system"},
        "webhooks": [{"name": "rev.validation.istio.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "clientConfig": {"caBundle": bundle_b64, "service": {"name": "istiod", "namespace": "istio-system", "path": "/validate"}}}]
    });
    let mut objects = BTreeMap::new();
    objects.insert("pods.json", list("Pod", "v1", pods));
    objects.insert(
        "deployments.json",
        list("Deployment", "apps/v1", vec![istiod]),
    );
    objects.insert("configmaps.json", list("ConfigMap", "v1", cms));
    objects.insert(
        "mutatingwebhookconfigurations.json",
        list(
            "MutatingWebhookConfiguration",
            "admissionregistration.k8s.io/v1",
            vec![webhook],
        ),
    );
    objects.insert(
        "validatingwebhookconfigurations.json",
        list(
            "ValidatingWebhookConfiguration",
            "admissionregistration.k8s.io/v1",
            vec![vwebhook],
        ),
    );
    Cluster {
        objects,
        secret,
        sidecars: names,
    }
}

/// Writes a `--from-dump` directory.
pub(crate) fn write_dump(dir: &Path, c: &Cluster, proxy_dumps: &BTreeMap<String, Value>) {
    write_dump_with(dir, c, proxy_dumps, &BTreeMap::new());
}

pub(crate) fn write_dump_with(
    dir: &Path,
    c: &Cluster,
    proxy_dumps: &BTreeMap<String, Value>,
    ztunnels: &BTreeMap<String, Value>,
) {
    let zdir = dir.join("ztunnel-config");
    std::fs::create_dir_all(&zdir).unwrap();
    for (pod, v) in ztunnels {
        std::fs::write(
            zdir.join(format!("{pod}.json")),
            serde_json::to_vec_pretty(v).unwrap(),
        )
        .unwrap();
    }
    for (f, v) in &c.objects {
        std::fs::write(dir.join(f), serde_json::to_vec_pretty(v).unwrap()).unwrap();
    }
    std::fs::write(
        dir.join("secret.json"),
        serde_json::to_vec_pretty(&c.secret).unwrap(),
    )
    .unwrap();
    for (ns, pod) in &c.sidecars {
        let d = dir.join("proxy-config").join(ns);
        std::fs::create_dir_all(&d).unwrap();
        if let Some(v) = proxy_dumps.get(pod) {
            std::fs::write(
                d.join(format!("{pod}.json")),
                serde_json::to_vec_pretty(v).unwrap(),
            )
            .unwrap();
        }
    }
}

/// Runs `verify live --from-dump` and returns (exit code, failed gate codes, report).
pub(crate) fn verify_dump(out: &Path, dump: &Path, phase: u8) -> (Option<i32>, Vec<String>, Value) {
    verify_dump_cluster(out, dump, "demo", phase)
}

pub(crate) fn verify_dump_cluster(
    out: &Path,
    dump: &Path,
    cluster: &str,
    phase: u8,
) -> (Option<i32>, Vec<String>, Value) {
    let at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let o = rootroll_at(
        &at,
        &[
            "verify",
            "live",
            out.to_str().unwrap(),
            "--cluster",
            cluster,
            "--phase",
            &phase.to_string(),
            "--from-dump",
            dump.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}{}", stdout(&o), stderr(&o)));
    (o.status.code(), failed_codes(&v), v)
}

pub(crate) fn failed_codes(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["passed"] == false && f["severity"] == "error" && f["not_checked"].is_null())
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn from_dump_passes_a_consistent_phase_and_fails_each_fault() {
    let r = render_now("plans/demo.yaml");
    let mut envoy = EnvoyPair::start();
    let p3 = envoy_dump(&mut envoy, &r.out, "demo", 3);
    let p2 = envoy_dump(&mut envoy, &r.out, "demo", 2);
    let healthy3 = healthy(&r.out, "demo", 3, 3);
    let all3: BTreeMap<String, Value> = healthy3
        .sidecars
        .iter()
        .map(|(_, p)| (p.clone(), p3.clone()))
        .collect();

    let d = tempfile::tempdir().unwrap();
    write_dump(d.path(), &healthy3, &all3);
    let (code, failed, v) = verify_dump(&r.out, d.path(), 3);
    assert_eq!(failed, Vec::<String>::new(), "{v:#}");
    assert_eq!(code, Some(0));

    // One proxy still presents a leaf from intermediate A (Envoy loaded with phase 2).
    let d = tempfile::tempdir().unwrap();
    let mut lag = all3.clone();
    lag.insert("web-0001".into(), p2.clone());
    write_dump(d.path(), &healthy3, &lag);
    let (code, failed, v) = verify_dump(&r.out, d.path(), 3);
    assert_eq!(code, Some(1));
    // Its ROOTCA is right (phases 2 and 3 trust the same roots A and B); only the leaf lags.
    assert_eq!(failed, ["proxy-leaf-new-issuer"]);
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "proxy-leaf-new-issuer")
        .unwrap();
    assert_eq!(
        f["message"],
        "1 of 3 proxies still present leaves from intermediate A: shop/web-0001 (sidecar)"
    );
    assert_eq!(f["details"], json!(["shop/web-0001 (sidecar)"]));

    // One namespace's istio-ca-root-cert is stale (phase 2 bundle).
    let d = tempfile::tempdir().unwrap();
    let mut stale = healthy(&r.out, "demo", 3, 3);
    let old =
        String::from_utf8(secret_data(&phase_secret(&r.out, "demo", 2))["root-cert.pem"].clone())
            .unwrap();
    stale.objects.get_mut("configmaps.json").unwrap()["items"][3]["data"]["root-cert.pem"] =
        Value::String(old);
    write_dump(d.path(), &stale, &all3);
    let (_, failed, v) = verify_dump(&r.out, d.path(), 3);
    assert_eq!(failed, ["root-configmap"]);
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "root-configmap")
        .unwrap();
    assert_eq!(f["details"], json!(["shop"]));

    // The flag is missing on istiod and on one pod; a proxy dump is missing (unreachable proxy).
    let d = tempfile::tempdir().unwrap();
    let mut noflag = healthy(&r.out, "demo", 3, 3);
    noflag.objects.get_mut("deployments.json").unwrap()["items"][0]["spec"]["template"]["spec"]["containers"]
        [0]["env"] = json!([]);
    noflag.objects.get_mut("pods.json").unwrap()["items"][2]["spec"]["containers"][1]["env"] =
        json!([]);
    let mut missing = all3.clone();
    missing.remove("web-0002");
    write_dump(d.path(), &noflag, &missing);
    let (code, failed, _) = verify_dump(&r.out, d.path(), 3);
    assert_eq!(code, Some(1));
    assert_eq!(
        failed,
        [
            "prereq-multiroot",
            "prereq-xds-agent-pods",
            "proxy-readable"
        ]
    );

    // The live Secret is still phase 2; the soak time has not elapsed.
    let d = tempfile::tempdir().unwrap();
    let mut early = healthy(&r.out, "demo", 3, 3);
    early.secret = healthy(&r.out, "demo", 2, 0).secret;
    early.secret["metadata"]["managedFields"][0]["time"] = Value::String(ago(60));
    write_dump(d.path(), &early, &all3);
    let (_, failed, _) = verify_dump(&r.out, d.path(), 3);
    assert_eq!(failed, ["live-secret-phase", "soak-time"]);

    // A known-bad istiod version.
    let d = tempfile::tempdir().unwrap();
    let mut bad = healthy(&r.out, "demo", 3, 3);
    bad.objects.get_mut("deployments.json").unwrap()["items"][0]["spec"]["template"]["spec"]["containers"]
        [0]["image"] = json!("docker.io/istio/pilot:1.25.1");
    write_dump(d.path(), &bad, &all3);
    let (_, failed, v) = verify_dump(&r.out, d.path(), 3);
    assert_eq!(failed, ["prereq-versions"], "{v:#}");
}

#[test]
fn from_dump_accepts_istioctl_camel_case_output() {
    let r = render_now("plans/demo.yaml");
    let mut envoy = EnvoyPair::start();
    let raw = envoy_dump(&mut envoy, &r.out, "demo", 2);
    // istioctl proxy-config secret -o json prints the SecretsConfigDump with jsonpb camelCase.
    fn camel(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let mut out = String::new();
                        let mut up = false;
                        for ch in k.chars() {
                            if ch == '_' {
                                up = true;
                            } else if up {
                                out.push(ch.to_ascii_uppercase());
                                up = false;
                            } else {
                                out.push(ch);
                            }
                        }
                        (out, camel(v))
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(camel).collect()),
            other => other.clone(),
        }
    }
    let istioctl = camel(&raw["configs"][0]);
    assert!(
        istioctl.get("dynamicActiveSecrets").is_some(),
        "{istioctl:#}"
    );
    let c = healthy(&r.out, "demo", 2, 1);
    let dumps: BTreeMap<String, Value> = c
        .sidecars
        .iter()
        .map(|(_, p)| (p.clone(), istioctl.clone()))
        .collect();
    let d = tempfile::tempdir().unwrap();
    write_dump(d.path(), &c, &dumps);
    let (code, failed, _) = verify_dump(&r.out, d.path(), 2);
    assert_eq!(failed, Vec::<String>::new());
    assert_eq!(code, Some(0));
}

#[test]
fn rendered_verify_rbac_is_least_privilege() {
    let r = render_now("plans/fleet.yaml");
    for c in ["eu-central", "us-east", "us-west"] {
        let text =
            std::fs::read_to_string(r.out.join(format!("clusters/{c}/verify/rbac.yaml"))).unwrap();
        let docs: Vec<Value> = text
            .split("\n---\n")
            .map(|d| serde_saphyr::from_str(d).unwrap())
            .collect();
        let role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
        let rules = role["rules"].as_array().unwrap();
        let all: Vec<(&str, &str)> = rules
            .iter()
            .flat_map(|r| {
                let verbs: Vec<&str> = r["verbs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                r["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(move |res| {
                        verbs
                            .clone()
                            .into_iter()
                            .map(move |v| (res.as_str().unwrap(), v))
                    })
            })
            .collect();
        assert!(all.contains(&("pods/portforward", "create")));
        // Root publication with ENABLE_CLUSTER_TRUST_BUNDLE_API (istio-2026 §1): exactly get and
        // list on the cluster-scoped clustertrustbundles, and nothing else of certificates.k8s.io.
        let certificates: Vec<&Value> = rules
            .iter()
            .filter(|r| r["apiGroups"] == json!(["certificates.k8s.io"]))
            .collect();
        assert_eq!(
            certificates,
            [
                &json!({"apiGroups": ["certificates.k8s.io"], "resources": ["clustertrustbundles"], "verbs": ["get", "list"]})
            ]
        );
        assert!(
            rules
                .iter()
                .all(|r| r["apiGroups"] == json!(["certificates.k8s.io"])
                    || !r["apiGroups"]
                        .as_array()
                        .unwrap()
                        .contains(&json!("certificates.k8s.io"))),
            "{rules:?}"
        );
        assert!(
            !all.iter().any(|(res, _)| res.contains("secret")),
            "no Secret access: {all:?}"
        );
        for (_, verb) in &all {
            assert!(
                ["get", "list", "create"].contains(verb),
                "read-only apart from port-forward: {verb}"
            );
        }
        assert!(
            !all.iter()
                .any(|(res, v)| *v == "create" && *res != "pods/portforward")
        );
        let secret = std::fs::read_to_string(
            r.out
                .join(format!("clusters/{c}/verify/rbac-secret-read.yaml")),
        )
        .unwrap();
        let docs: Vec<Value> = secret
            .split("\n---\n")
            .map(|d| serde_saphyr::from_str(d).unwrap())
            .collect();
        let role = docs.iter().find(|d| d["kind"] == "Role").unwrap();
        assert_eq!(role["rules"][0]["resourceNames"], json!(["cacerts"]));
        assert_eq!(role["rules"][0]["verbs"], json!(["get"]));
    }
}

#[test]
fn ambient_ztunnel_identities_must_follow_each_phase() {
    let r = render_now("plans/ambient.yaml");
    let mut envoy = EnvoyPair::start();
    let waypoint3 = envoy_dump(&mut envoy, &r.out, "ambient", 3);
    let mut c = healthy(&r.out, "ambient", 3, 1);
    // Add two ztunnel pods of the DaemonSet.
    let pods = c.objects.get_mut("pods.json").unwrap()["items"]
        .as_array_mut()
        .unwrap();
    for i in 0..2 {
        pods.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("ztunnel-{i}"), "namespace": "istio-system", "labels": {"app": "ztunnel"}},
            "spec": {"containers": [{"name": "istio-proxy", "image": "docker.io/istio/ztunnel:1.28.0"}]},
            "status": {"phase": "Running", "startTime": ago(86_400), "containerStatuses": [
                {"name": "istio-proxy", "ready": true, "restartCount": 0, "image": "docker.io/istio/ztunnel:1.28.0", "imageID": "", "state": {"running": {"startedAt": ago(86_400)}}}
            ]}
        }));
    }
    let proxies: BTreeMap<String, Value> = c
        .sidecars
        .iter()
        .map(|(_, p)| (p.clone(), waypoint3.clone()))
        .collect();
    let fresh = ztunnel_dump(&r.out, "ambient", 3, 3);
    let z: BTreeMap<String, Value> = [
        ("ztunnel-0".to_string(), fresh.clone()),
        ("ztunnel-1".to_string(), fresh.clone()),
    ]
    .into();
    let d = tempfile::tempdir().unwrap();
    write_dump_with(d.path(), &c, &proxies, &z);
    let (code, failed, v) = verify_dump_cluster(&r.out, d.path(), "ambient", 3);
    assert_eq!(failed, Vec::<String>::new(), "{v:#}");
    assert_eq!(code, Some(0));

    // ztunnel-1 still holds its phase-1 identity: old roots and a leaf from intermediate A.
    let stale: BTreeMap<String, Value> = [
        ("ztunnel-0".to_string(), fresh),
        (
            "ztunnel-1".to_string(),
            ztunnel_dump(&r.out, "ambient", 1, 1),
        ),
    ]
    .into();
    let d = tempfile::tempdir().unwrap();
    write_dump_with(d.path(), &c, &proxies, &stale);
    let (code, failed, v) = verify_dump_cluster(&r.out, d.path(), "ambient", 3);
    assert_eq!(code, Some(1));
    assert_eq!(
        failed,
        ["ztunnel-trusts-new-root", "ztunnel-leaf-new-issuer"]
    );
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "ztunnel-leaf-new-issuer")
        .unwrap();
    assert!(
        f["hint"]
            .as_str()
            .unwrap()
            .contains("kubectl rollout restart daemonset/ztunnel -n istio-system"),
        "{f}"
    );
    assert_eq!(
        f["details"],
        json!(["istio-system/ztunnel-1 spiffe://cluster.local/ns/shop/sa/web"])
    );
}

/// Serves a cluster's objects from the in-test API server; each sidecar's port 15000 is
/// forwarded to the admin port of the Envoy given for it (a real Envoy's config_dump).
pub(crate) fn serve(
    api: &crate::apiserver::FakeApi,
    c: &Cluster,
    admins: &BTreeMap<String, std::net::SocketAddr>,
) {
    for list in c.objects.values() {
        for item in list["items"].as_array().unwrap() {
            let mut obj = item.clone();
            if obj.get("kind").is_none() {
                let kind = list["kind"]
                    .as_str()
                    .unwrap()
                    .trim_end_matches("List")
                    .to_string();
                obj["kind"] = Value::String(kind);
                obj["apiVersion"] = list["apiVersion"].clone();
            }
            api.put(obj);
        }
    }
    api.put(c.secret.clone());
    for (ns, pod) in &c.sidecars {
        if let Some(addr) = admins.get(pod) {
            api.forward(ns, pod, 15000, *addr);
        }
    }
}

pub(crate) fn verify_api(
    out: &Path,
    kubeconfig: &Path,
    phase: u8,
    extra: &[&str],
) -> (Option<i32>, Vec<String>, Value, String) {
    let at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let mut args = vec![
        "verify",
        "live",
        out.to_str().unwrap(),
        "--cluster",
        "demo",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--context",
        "test",
        "--format",
        "json",
    ];
    let p = phase.to_string();
    args.extend_from_slice(&["--phase", &p]);
    args.extend_from_slice(extra);
    let o = rootroll_at(&at, &args);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let failed = if v.is_null() {
        Vec::new()
    } else {
        failed_codes(&v)
    };
    (o.status.code(), failed, v, stderr(&o))
}

/// (code, passed, message) of every finding: what a user reads. The soak message holds the
/// elapsed time, which moves between two runs, so only its verdict is compared.
fn verdicts(v: &Value) -> Vec<(String, bool, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            if f["code"] == "soak-time" {
                return (
                    "soak-time".to_string(),
                    f["passed"].as_bool().unwrap(),
                    String::new(),
                );
            }
            (
                f["code"].as_str().unwrap().to_string(),
                f["passed"].as_bool().unwrap(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn live_cluster_through_the_api_and_port_forward_matches_from_dump() {
    let r = render_now("plans/demo.yaml");
    let mut e3 = EnvoyPair::start();
    let mut e2 = EnvoyPair::start();
    let p3 = envoy_dump(&mut e3, &r.out, "demo", 3);
    let p2 = envoy_dump(&mut e2, &r.out, "demo", 2);
    let mut c = healthy(&r.out, "demo", 3, 3);
    // Many more pods than one page holds (the client must follow `continue`).
    let pods = c.objects.get_mut("pods.json").unwrap()["items"]
        .as_array_mut()
        .unwrap();
    for i in 0..1_100 {
        pods.push(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("batch-{i:05}"), "namespace": "jobs"},
            "spec": {"containers": [{"name": "job", "image": "busybox:1.36"}]}, "status": {"phase": "Running"}}));
    }
    let api = crate::apiserver::FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path(), "test");
    let mut admins: BTreeMap<String, std::net::SocketAddr> = c
        .sidecars
        .iter()
        .map(|(_, p)| (p.clone(), e3.server_admin()))
        .collect();
    serve(&api, &c, &admins);

    let (code, failed, live, err) = verify_api(&r.out, &kubeconfig, 3, &[]);
    assert_eq!(failed, Vec::<String>::new(), "{err}{live:#}");
    assert_eq!(code, Some(0));
    assert!(api.hits("/api/v1/pods") >= 3, "pods listed in pages of 500");
    // The same objects and Envoy dumps as files: the same verdicts.
    let dumps: BTreeMap<String, Value> = c
        .sidecars
        .iter()
        .map(|(_, p)| (p.clone(), p3.clone()))
        .collect();
    let d = tempfile::tempdir().unwrap();
    write_dump(d.path(), &c, &dumps);
    let (_, _, from_dump) = verify_dump(&r.out, d.path(), 3);
    assert_eq!(verdicts(&live), verdicts(&from_dump));

    // One proxy lags: its port-forward reaches an Envoy still on phase 2.
    admins.insert("web-0001".into(), e2.server_admin());
    api.forward("shop", "web-0001", 15000, e2.server_admin());
    let (code, failed, live, _) = verify_api(&r.out, &kubeconfig, 3, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(failed, ["proxy-leaf-new-issuer"]);
    let mut dumps = dumps.clone();
    dumps.insert("web-0001".into(), p2.clone());
    let d = tempfile::tempdir().unwrap();
    write_dump(d.path(), &c, &dumps);
    let (_, _, from_dump) = verify_dump(&r.out, d.path(), 3);
    assert_eq!(verdicts(&live), verdicts(&from_dump));

    // A proxy that cannot be reached fails closed.
    api.put(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-9999", "namespace": "shop"},
        "spec": {"containers": [{"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.26.2", "env": [{"name": "PROXY_CONFIG_XDS_AGENT", "value": "true"}]}]},
        "status": {"phase": "Running"}}));
    let (code, failed, live, _) = verify_api(&r.out, &kubeconfig, 3, &[]);
    assert_eq!(code, Some(1));
    assert!(failed.contains(&"proxy-readable".to_string()), "{failed:?}");
    let f = live["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "proxy-readable")
        .unwrap();
    assert!(
        f["details"][0]
            .as_str()
            .unwrap()
            .starts_with("shop/web-9999"),
        "{f}"
    );
}

/// `--wait` checks again every 10 s until the gates pass: a proxy still on a phase-2 leaf
/// catches up while verify waits, and the run ends green after saying what it waited for.
#[test]
fn wait_checks_again_until_a_lagging_proxy_catches_up() {
    use std::io::{BufRead, BufReader, Read};
    let r = render_now("plans/demo.yaml");
    let mut e3 = EnvoyPair::start();
    let mut e2 = EnvoyPair::start();
    let _ = envoy_dump(&mut e3, &r.out, "demo", 3);
    let _ = envoy_dump(&mut e2, &r.out, "demo", 2);
    let c = healthy(&r.out, "demo", 3, 3);
    let api = crate::apiserver::FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path(), "test");
    let mut admins: BTreeMap<String, std::net::SocketAddr> = c
        .sidecars
        .iter()
        .map(|(_, p)| (p.clone(), e3.server_admin()))
        .collect();
    admins.insert("web-0001".into(), e2.server_admin());
    serve(&api, &c, &admins);

    let at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rootroll"))
        .current_dir(root())
        .args(["--now", &at, "verify", "live", r.out.to_str().unwrap()])
        .args(["--cluster", "demo", "--phase", "3", "--format", "json"])
        .args([
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--context",
            "test",
        ])
        .args(["--wait", "1m"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        out.read_to_end(&mut bytes).map(|_| bytes)
    });
    // Wait for the first failed check, then let the proxy catch up.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert_eq!(
        first.trim_end(),
        "waiting: 1 gate(s) failing (proxy-leaf-new-issuer); retrying in 10s"
    );
    api.forward("shop", "web-0001", 15000, e3.server_admin());
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    let stdout = stdout.join().unwrap().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{first}{rest}");
    assert!(!rest.contains("waiting:"), "one retry was enough: {rest}");
    let v: Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(failed_codes(&v), Vec::<String>::new());
}

#[test]
fn live_api_errors_fail_closed_and_an_unreachable_cluster_exits_2() {
    let r = render_now("plans/demo.yaml");
    let mut e3 = EnvoyPair::start();
    let _ = envoy_dump(&mut e3, &r.out, "demo", 3);
    let c = healthy(&r.out, "demo", 3, 2);
    let api = crate::apiserver::FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path(), "test");
    let admins: BTreeMap<String, std::net::SocketAddr> = c
        .sidecars
        .iter()
        .map(|(_, p)| (p.clone(), e3.server_admin()))
        .collect();
    serve(&api, &c, &admins);

    // RBAC denies the Secret: the gate fails with the reason; --no-secret-read skips it.
    api.fail("/api/v1/namespaces/istio-system/secrets", 403);
    let (code, failed, live, _) = verify_api(&r.out, &kubeconfig, 3, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(failed, ["live-secret-phase"]);
    let f = live["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "live-secret-phase")
        .unwrap();
    assert!(f["message"].as_str().unwrap().contains("403"), "{f}");
    let (code, failed, _, _) = verify_api(&r.out, &kubeconfig, 3, &["--no-secret-read"]);
    assert_eq!(failed, Vec::<String>::new());
    assert_eq!(code, Some(0));
    api.fail("/api/v1/namespaces/istio-system/secrets", 0);

    // A 500 on ConfigMaps: the gates that need them fail, naming the error.
    api.fail("/api/v1/configmaps", 500);
    let (code, failed, _, _) = verify_api(&r.out, &kubeconfig, 3, &[]);
    assert_eq!(code, Some(1));
    assert!(failed.contains(&"root-configmap".to_string()), "{failed:?}");
    api.fail("/api/v1/configmaps", 0);

    // Nothing listens: exit 2.
    let dead = dir.path().join("dead.kubeconfig");
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    let port = text
        .split("127.0.0.1:")
        .nth(1)
        .unwrap()
        .split(|ch: char| !ch.is_ascii_digit())
        .next()
        .unwrap()
        .to_string();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &dead,
        text.replace(&format!("127.0.0.1:{port}"), &format!("127.0.0.1:{closed}")),
    )
    .unwrap();
    let (code, _, _, err) = verify_api(&r.out, &dead, 3, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot reach the cluster"), "{err}");
}

/// Benchmark, not a test of speed: `cargo test --release -- --ignored live_bench --nocapture`
/// prints pods per second and peak memory of `verify live` over 2,000 sidecars whose Envoy
/// admin dumps come through the in-test API server's port-forward (4 real Envoys behind them),
/// median of ROOTROLL_BENCH_REPS runs (5 by default).
#[test]
#[ignore = "benchmark: run by scripts/bench.sh"]
fn live_bench() {
    let pods: usize = std::env::var("ROOTROLL_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let r = render_now("plans/demo.yaml");
    let mut envoys: Vec<EnvoyPair> = (0..4).map(|_| EnvoyPair::start()).collect();
    for e in &mut envoys {
        let _ = envoy_dump(e, &r.out, "demo", 3);
    }
    let c = healthy(&r.out, "demo", 3, pods);
    let api = crate::apiserver::FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path(), "test");
    let admins: BTreeMap<String, std::net::SocketAddr> = c
        .sidecars
        .iter()
        .enumerate()
        .map(|(i, (_, p))| (p.clone(), envoys[i % envoys.len()].server_admin()))
        .collect();
    serve(&api, &c, &admins);
    let reps: usize = std::env::var("ROOTROLL_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut runs: Vec<(f64, f64)> = Vec::new();
    for _ in 0..reps.max(1) {
        let at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
        let start = std::time::Instant::now();
        let o = std::process::Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .arg(env!("CARGO_BIN_EXE_rootroll"))
            .current_dir(root())
            .args([
                "--now",
                &at,
                "verify",
                "live",
                r.out.to_str().unwrap(),
                "--cluster",
                "demo",
                "--phase",
                "3",
            ])
            .args([
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "--context",
                "test",
                "--format",
                "json",
                "--concurrency",
                "32",
            ])
            .output()
            .expect("GNU time runs");
        let secs = start.elapsed().as_secs_f64();
        let err = String::from_utf8_lossy(&o.stderr);
        let rss_kb: u64 = err
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(failed_codes(&v), Vec::<String>::new(), "{err}");
        assert!(rss_kb > 0, "GNU time reported no peak RSS: {err}");
        println!(
            "  run: {pods} proxies in {secs:.2} s, peak RSS {:.1} MB",
            rss_kb as f64 / 1024.0
        );
        runs.push((secs, rss_kb as f64 / 1024.0));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[(v.len() - 1) / 2]
    };
    let secs: Vec<f64> = runs.iter().map(|r| r.0).collect();
    let rss: Vec<f64> = runs.iter().map(|r| r.1).collect();
    let (lo, hi) = (
        secs.iter().copied().fold(f64::INFINITY, f64::min),
        secs.iter().copied().fold(0.0, f64::max),
    );
    let secs = median(secs);
    println!(
        "verify live: {pods} proxies, median of {} runs {secs:.2} s ({lo:.2}–{hi:.2} s) = {:.0} pods/s, peak RSS {:.1} MB (highest of the runs)",
        runs.len(),
        pods as f64 / secs,
        rss.iter().copied().fold(0.0, f64::max)
    );
}

/// A `prod-east` API server whose `istio-system/cacerts` Secret holds `keys` of the files in
/// `src`, and `init --from-cluster prod-east --cluster east` against it, writing `plan.yaml`
/// and `gitops/` under `dir` (encrypted to the demo key) with `extra` arguments.
struct FromCluster {
    _api: crate::apiserver::FakeApi,
    kubeconfig: PathBuf,
    plan: PathBuf,
    out: PathBuf,
}

impl FromCluster {
    fn start(dir: &Path, src: &Path, keys: &[&str]) -> Self {
        let api = crate::apiserver::FakeApi::start();
        let kubeconfig = api.kubeconfig(dir, "prod-east");
        let b64 = base64::engine::general_purpose::STANDARD;
        let data: serde_json::Map<String, Value> = keys
            .iter()
            .map(|k| {
                let bytes = std::fs::read(src.join(k)).unwrap();
                (k.to_string(), Value::String(b64.encode(bytes)))
            })
            .collect();
        api.put(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cacerts", "namespace": "istio-system", "uid": "5d0c1f2e-1c55-4f0e-9a51-2b8d8f1f0c11", "resourceVersion": "48213", "creationTimestamp": "2026-06-01T09:12:44Z"}, "type": "Opaque", "data": data}));
        Self {
            _api: api,
            kubeconfig,
            plan: dir.join("plan.yaml"),
            out: dir.join("gitops"),
        }
    }

    fn init(&self, extra: &[&str]) -> std::process::Output {
        let pubkey = age_public_key(&root().join(DEMO_KEY));
        let mut args = vec![
            "init",
            "--from-cluster",
            "prod-east",
            "--kubeconfig",
            self.kubeconfig.to_str().unwrap(),
            "--cluster",
            "east",
            "--out",
            self.out.to_str().unwrap(),
            "-o",
            self.plan.to_str().unwrap(),
            "--age-recipient",
            &pubkey,
        ];
        args.extend_from_slice(extra);
        rootroll(&args)
    }
}

const MAKEFILE_FILES: [&str; 4] = [
    "ca-cert.pem",
    "ca-key.pem",
    "cert-chain.pem",
    "root-cert.pem",
];

/// istio-2026 §1: a `ca-crl.pem` in the live Secret (istiod 1.27+ distributes it, ztunnel
/// 1.30+ enforces it) is refused with the consequence and the manual step; nothing is written.
#[test]
fn init_from_cluster_refuses_a_secret_with_a_crl_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = root().join("tests/fixtures/bad/with-crl");
    let keys: Vec<&str> = MAKEFILE_FILES.into_iter().chain(["ca-crl.pem"]).collect();
    let c = FromCluster::start(dir.path(), &src, &keys);
    let o = c.init(&[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`ca-crl.pem` is a certificate revocation list"),
        "{err}"
    );
    assert!(err.contains("ztunnel 1.30+ enforces it"), "{err}");
    assert!(
        err.contains("remove ca-crl.pem from the live cacerts Secret"),
        "{err}"
    );
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    assert!(!c.plan.exists(), "a plan was written");
    assert!(!c.out.exists(), "an output directory was written");
}

#[test]
fn init_from_cluster_keeps_bytes_and_never_writes_the_key_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = root().join("tests/fixtures/makefile/cluster1");
    let c = FromCluster::start(dir.path(), &fixtures, &MAKEFILE_FILES);
    let (plan, out) = (c.plan.clone(), c.out.clone());
    let init = |extra: &[&str]| c.init(extra);
    let o = init(&["--name", "prod"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Public files byte for byte; no private key in plaintext anywhere.
    for k in ["ca-cert.pem", "cert-chain.pem", "root-cert.pem"] {
        assert_eq!(
            std::fs::read(dir.path().join("east-current").join(k)).unwrap(),
            std::fs::read(fixtures.join(k)).unwrap(),
            "{k}"
        );
    }
    assert!(!dir.path().join("east-current/ca-key.pem").exists());
    for (path, bytes) in tree(dir.path()) {
        if path.ends_with(".kubeconfig") {
            continue;
        }
        assert!(
            !String::from_utf8_lossy(&bytes).contains("PRIVATE KEY"),
            "{path} holds a plaintext key"
        );
    }
    // The plan validates and renders with the identity; phase 1 equals the live Secret exactly.
    let o = rootroll(&[
        "render",
        plan.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p1 = secret_data(&{
        let f = out.join("clusters/east/istio-ca/phases/1-initial/cacerts.sops.yaml");
        let plain =
            rootroll::sops::decrypt_yaml("t", &std::fs::read_to_string(f).unwrap(), &[identity()])
                .unwrap();
        serde_saphyr::from_str::<Value>(&plain).unwrap()
    });
    for k in [
        "ca-cert.pem",
        "ca-key.pem",
        "cert-chain.pem",
        "root-cert.pem",
    ] {
        assert_eq!(
            p1[k],
            std::fs::read(fixtures.join(k)).unwrap(),
            "phase 1 {k} must equal the live Secret"
        );
    }
    let o = rootroll(&[
        "verify",
        "offline",
        out.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(failed_codes(&v), Vec::<String>::new());
    // A second run refuses to overwrite the output directory.
    let o = init(&["--force"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is not empty"), "{}", stderr(&o));
}

/// (code, reason) of every finding that was not checked.
fn not_checked(v: &Value) -> Vec<(String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !f["not_checked"].is_null())
        .map(|f| {
            assert_eq!(f["passed"], false, "a not-checked gate never passes: {f}");
            let reason = f["not_checked"].as_str().unwrap().to_string();
            (f["code"].as_str().unwrap().to_string(), reason)
        })
        .collect()
}

/// What `plan` advertises for a phase (phase 0's prerequisites are checked in every live
/// run) is exactly what `verify live` emits for it, and the catalogue's phases and planes of
/// every live gate say the same.
#[test]
fn every_live_gate_a_phase_advertises_is_emitted_and_nothing_else() {
    use rootroll::gates::{Planes, Scope};
    use std::collections::BTreeSet;
    let mut advertised_in: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut sidecar_codes = BTreeSet::new();
    for (plan, cluster) in [
        ("plans/demo.yaml", "demo"),
        ("plans/ambient.yaml", "ambient"),
    ] {
        let r = render_now(plan);
        let o = rootroll(&["plan", plan, "--format", "json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let rollout: Value = serde_json::from_slice(&o.stdout).unwrap();
        let codes = |n: usize| -> BTreeSet<String> {
            let gates = rollout["phases"][n]["gatesBeforeNext"].as_array().unwrap();
            gates
                .iter()
                .map(|g| g["code"].as_str().unwrap().to_string())
                .collect()
        };
        for n in 0..=4 {
            for code in codes(n) {
                if plan.contains("demo") {
                    sidecar_codes.insert(code.clone());
                }
                advertised_in.entry(code).or_default().insert(n as u64);
            }
        }
        for phase in 1..=4u8 {
            let d = tempfile::tempdir().unwrap();
            write_dump(
                d.path(),
                &healthy(&r.out, cluster, phase, 0),
                &BTreeMap::new(),
            );
            let (_, _, v) = verify_dump_cluster(&r.out, d.path(), cluster, phase);
            let emitted: BTreeSet<String> = v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["code"].as_str().unwrap().to_string())
                .collect();
            let advertised: BTreeSet<String> =
                codes(0).union(&codes(phase.into())).cloned().collect();
            assert_eq!(emitted, advertised, "{plan} phase {phase}");
        }
    }
    for g in rootroll::gates::all().filter(|g| g.scope == Scope::Live) {
        let code = g.code.as_str();
        let phases: BTreeSet<u64> = g.phases.iter().map(|p| u64::from(*p)).collect();
        assert_eq!(
            advertised_in.get(code),
            Some(&phases),
            "{code}: catalogue phases"
        );
        assert_eq!(
            g.planes == Planes::Ambient,
            !sidecar_codes.contains(code),
            "{code}: catalogue planes"
        );
    }
}

/// The cluster still runs phase 2 while phase 3 is verified: one root cause (the Secret), a
/// soak that has not started, and the gates that judge what istiod and the proxies made of
/// phase 3 are not checked — before, three lagging proxies failed and the soak passed.
#[test]
fn a_live_secret_of_another_phase_is_one_failure_and_its_dependents_are_not_checked() {
    let r = render_now("plans/demo.yaml");
    let mut envoy = EnvoyPair::start();
    let p2 = envoy_dump(&mut envoy, &r.out, "demo", 2);
    let c = healthy(&r.out, "demo", 2, 3);
    let dumps: BTreeMap<String, Value> = c
        .sidecars
        .iter()
        .map(|(_, p)| (p.clone(), p2.clone()))
        .collect();
    let d = tempfile::tempdir().unwrap();
    write_dump(d.path(), &c, &dumps);

    // Verified as phase 2, the same cluster passes: the dumps are consistent.
    let (code, failed, v) = verify_dump(&r.out, d.path(), 2);
    assert_eq!((code, failed), (Some(0), vec![]), "{v:#}");

    let (code, failed, v) = verify_dump(&r.out, d.path(), 3);
    assert_eq!(code, Some(1));
    assert_eq!(failed, ["live-secret-phase", "soak-time"], "{v:#}");
    let message = |code: &str| {
        let f = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == code)
            .unwrap();
        f["message"].as_str().unwrap().to_string()
    };
    assert_eq!(
        message("live-secret-phase"),
        "istio-system/cacerts is not phase 3-switch-issuer: its rootroll.dev/phase label is \"2\", not 3; its public-content annotation differs from the rendered phase's; its certificates differ from the rendered phase's"
    );
    assert_eq!(
        message("soak-time"),
        "phase 3-switch-issuer is not applied yet (live-secret-phase): its soak has not started"
    );
    let because = "because the live Secret is not phase 3-switch-issuer (live-secret-phase)";
    let skipped = not_checked(&v);
    let codes: Vec<&str> = skipped.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        codes,
        [
            "root-configmap",
            "webhook-ca-bundle",
            "proxy-trusts-roots",
            "proxy-leaf-new-issuer",
            "no-restart"
        ]
    );
    assert!(skipped.iter().all(|(_, why)| why == because), "{skipped:?}");
    // The proxies themselves were read: that is not a dependent gate.
    assert_eq!(
        message("proxy-readable"),
        "read the secrets of all 3 Envoy proxies"
    );
}

/// Pods cannot be listed: one failure names the cause, and no proxy gate passes over zero
/// proxies (before, proxy-readable and proxy-trusts-roots passed with "all 0").
#[test]
fn pods_that_cannot_be_listed_fail_once_and_proxy_gates_are_not_checked() {
    let r = render_now("plans/demo.yaml");
    let d = tempfile::tempdir().unwrap();
    write_dump(d.path(), &healthy(&r.out, "demo", 3, 2), &BTreeMap::new());
    std::fs::remove_file(d.path().join("pods.json")).unwrap();
    let (code, failed, v) = verify_dump(&r.out, d.path(), 3);
    assert_eq!(code, Some(1));
    assert_eq!(failed, ["prereq-xds-agent-pods"], "{v:#}");
    let f = &v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "prereq-xds-agent-pods")
        .unwrap();
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .starts_with("pods could not be listed: "),
        "{f}"
    );
    assert!(f["message"].as_str().unwrap().contains("pods.json"), "{f}");
    let skipped = not_checked(&v);
    let codes: Vec<&str> = skipped.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        codes,
        [
            "prereq-versions",
            "proxy-readable",
            "proxy-trusts-roots",
            "proxy-leaf-new-issuer",
            "no-restart",
            "proxies-verified"
        ]
    );
    for (_, why) in &skipped {
        assert_eq!(
            why,
            "because pods could not be listed (prereq-xds-agent-pods)"
        );
    }
    let passed: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["passed"] == true)
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(
        !passed.iter().any(|c| c.starts_with("proxy-")),
        "{passed:?}"
    );
}

/// The text a person reads names the proxies that could not be read: up to five, then a
/// count (#18); the full list with each reason stays in the JSON details.
#[test]
fn text_output_names_unreadable_proxies_up_to_five_and_counts_the_rest() {
    let r = render_now("plans/demo.yaml");
    let d = tempfile::tempdir().unwrap();
    write_dump(d.path(), &healthy(&r.out, "demo", 2, 7), &BTreeMap::new());
    let at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let args = |format: &'static str| {
        let mut a = vec![
            "verify",
            "live",
            r.out.to_str().unwrap(),
            "--cluster",
            "demo",
        ];
        a.extend([
            "--phase",
            "2",
            "--from-dump",
            d.path().to_str().unwrap(),
            "--format",
            format,
        ]);
        a
    };
    let o = rootroll_at(&at, &args("text"));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    let names: Vec<String> = (0..5)
        .map(|i| format!("shop/web-{i:04} (sidecar)"))
        .collect();
    let line = format!(
        "7 of 7 proxies could not be read: {} and 2 more",
        names.join(", ")
    );
    assert!(text.lines().any(|l| l.ends_with(&line)), "{text}");
    assert!(!text.contains("web-0005"), "only five are named: {text}");

    let o = rootroll_at(&at, &args("json"));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "proxy-readable")
        .unwrap();
    let details = f["details"].as_array().unwrap();
    assert_eq!(details.len(), 7);
    assert!(
        details[6]
            .as_str()
            .unwrap()
            .starts_with("shop/web-0006 (sidecar): "),
        "{f}"
    );
    // With no proxy read, the trust gate is not checked rather than passed over none.
    assert_eq!(
        not_checked(&v),
        [(
            "proxy-trusts-roots".to_string(),
            "because no Envoy's dump could be read (proxy-readable)".to_string()
        )]
    );
}

/// istiod's webhooks are found by the Service they call, not by name (istio-2026 §1): one
/// named without "istio" whose caBundle lacks B fails, one named `istio-…` that calls another
/// Service is not judged. A stale `tls.crt` next to the istiod files (istiod would prefer it)
/// fails the Secret gate by name, without blocking the gates that depend on the phase.
#[test]
fn istiod_webhooks_are_found_by_service_and_a_stale_tls_crt_fails_the_secret() {
    let r = render_now("plans/demo.yaml");
    let mut c = healthy(&r.out, "demo", 2, 0);
    let b64 = base64::engine::general_purpose::STANDARD;
    let phase1 = secret_data(&phase_secret(&r.out, "demo", 1))["root-cert.pem"].clone();
    let hooks = c
        .objects
        .get_mut("mutatingwebhookconfigurations.json")
        .unwrap();
    hooks["items"][0]["metadata"]["name"] = json!("sidecar-injector-custom");
    hooks["items"][0]["webhooks"][0]["clientConfig"]["caBundle"] = json!(b64.encode(&phase1));
    let validating = c
        .objects
        .get_mut("validatingwebhookconfigurations.json")
        .unwrap();
    let mut other = validating["items"][0].clone();
    other["metadata"]["name"] = json!("istio-lookalike");
    other["webhooks"][0]["clientConfig"] = json!({"caBundle": b64.encode(b"not a bundle"),
        "service": {"name": "policy", "namespace": "tools", "path": "/validate"}});
    validating["items"].as_array_mut().unwrap().push(other);
    c.secret["data"]["tls.crt"] = json!(b64.encode(&phase1));
    let d = tempfile::tempdir().unwrap();
    write_dump(d.path(), &c, &BTreeMap::new());
    let (code, failed, v) = verify_dump(&r.out, d.path(), 2);
    assert_eq!(code, Some(1));
    assert_eq!(failed, ["live-secret-phase", "webhook-ca-bundle"], "{v:#}");
    let find = |code: &str| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == code)
            .unwrap()
            .clone()
    };
    assert_eq!(
        find("live-secret-phase")["message"],
        "istio-system/cacerts is phase 2-trust-both but also holds `tls.crt`"
    );
    let w = find("webhook-ca-bundle");
    assert_eq!(
        w["message"],
        "1 of 2 istiod webhook caBundles lack a root of the phase: sidecar-injector-custom/namespace.sidecar-injector.istio.io"
    );
    assert_eq!(
        w["details"],
        json!(["sidecar-injector-custom/namespace.sidecar-injector.istio.io"])
    );
}

pub(crate) fn finding<'a>(v: &'a Value, code: &str) -> &'a Value {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
        .unwrap_or_else(|| panic!("no {code} finding: {v:#}"))
}

/// Issue 18: pod and namespace names come from the dump's data and never become paths. A
/// proxy whose names would lead outside the dump, to a planted passing Envoy dump, is a proxy
/// that could not be read, named with the reason: never a pass.
#[test]
fn from_dump_never_reads_outside_the_dump_for_names_from_the_data() {
    let r = render_now("plans/demo.yaml");
    let mut envoy = EnvoyPair::start();
    let p3 = envoy_dump(&mut envoy, &r.out, "demo", 3);
    let healthy3 = healthy(&r.out, "demo", 3, 3);
    let all3: BTreeMap<String, Value> = healthy3
        .sidecars
        .iter()
        .map(|(_, p)| (p.clone(), p3.clone()))
        .collect();
    let top = tempfile::tempdir().unwrap();
    let planted_dir = top.path().join("elsewhere");
    std::fs::create_dir(&planted_dir).unwrap();
    // What a path from the hostile names below resolves to, outside the dump: a passing dump.
    let planted = serde_json::to_vec(&p3).unwrap();
    std::fs::write(top.path().join("planted.json"), &planted).unwrap();
    std::fs::write(planted_dir.join("web.json"), &planted).unwrap();
    let dump = top.path().join("dump");
    for (namespace, pod) in [
        // dump/proxy-config/shop/../../../planted.json is top/planted.json.
        ("shop", "../../../planted"),
        // An absolute namespace replaces the dump directory in a join.
        (planted_dir.to_str().unwrap(), "web"),
    ] {
        let _ = std::fs::remove_dir_all(&dump);
        std::fs::create_dir(&dump).unwrap();
        let mut c = healthy(&r.out, "demo", 3, 3);
        // items[0] is istiod; items[1] is the first sidecar.
        let meta = &mut c.objects.get_mut("pods.json").unwrap()["items"][1]["metadata"];
        meta["name"] = json!(pod);
        meta["namespace"] = json!(namespace);
        write_dump(&dump, &c, &all3);
        let (code, failed, v) = verify_dump(&r.out, &dump, 3);
        assert_eq!(code, Some(1), "{pod}: {v:#}");
        assert_eq!(failed, ["proxy-readable"], "{pod}: {v:#}");
        let f = finding(&v, "proxy-readable");
        assert!(
            f["message"]
                .as_str()
                .unwrap()
                .starts_with("1 of 3 proxies could not be read: "),
            "{pod}: {}",
            f["message"]
        );
        let detail = f["details"][0].as_str().unwrap();
        assert!(
            detail.starts_with(&format!("{namespace}/{pod} (sidecar): its "))
                && detail.contains("is not a Kubernetes name, so it is not used as a path"),
            "{detail}"
        );
    }
}

/// Issue 18: with `--from-dump`, a source that cannot be read gets a hint naming the file to
/// collect and the command that collects it, not the RBAC a live cluster would need.
#[test]
fn from_dump_hints_name_the_missing_file_and_its_collect_command() {
    let r = render_now("plans/demo.yaml");
    let mut envoy = EnvoyPair::start();
    let p3 = envoy_dump(&mut envoy, &r.out, "demo", 3);
    let healthy3 = healthy(&r.out, "demo", 3, 3);
    let mut some: BTreeMap<String, Value> = healthy3
        .sidecars
        .iter()
        .map(|(_, p)| (p.clone(), p3.clone()))
        .collect();
    some.remove("web-0002");
    let d = tempfile::tempdir().unwrap();
    write_dump(d.path(), &healthy3, &some);
    std::fs::remove_file(d.path().join("deployments.json")).unwrap();
    std::fs::remove_file(d.path().join("mutatingwebhookconfigurations.json")).unwrap();
    std::fs::write(d.path().join("secret.json"), "{not json").unwrap();
    let (code, failed, v) = verify_dump(&r.out, d.path(), 3);
    assert_eq!(code, Some(1));
    let dir = d.path().display();
    for (code, want) in [
        (
            "prereq-multiroot",
            format!(
                "collect {dir}/deployments.json: kubectl get deployments -n istio-system -o json > {dir}/deployments.json"
            ),
        ),
        (
            "webhook-ca-bundle",
            format!(
                "kubectl get mutatingwebhookconfigurations -o json > {dir}/mutatingwebhookconfigurations.json"
            ),
        ),
        (
            "live-secret-phase",
            format!("kubectl get secret cacerts -n istio-system -o json > {dir}/secret.json"),
        ),
        (
            "proxy-readable",
            format!(
                "istioctl proxy-config secret POD.NAMESPACE -o json > {dir}/proxy-config/NAMESPACE/POD.json"
            ),
        ),
    ] {
        assert!(failed.contains(&code.to_string()), "{code}: {failed:?}");
        let f = finding(&v, code);
        let hint = f["hint"].as_str().unwrap();
        assert!(hint.contains(&want), "{code}: {hint}");
        assert!(
            !hint.contains("grant"),
            "{code}: a live-cluster hint: {hint}"
        );
    }
    assert_eq!(
        finding(&v, "proxy-readable")["details"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// An ambient cluster in `phase` with a waypoint (a real Envoy's dump) and two ztunnels
/// (`ztunnel:{version}`, started `started_secs` ago; the phase was applied a week ago).
fn ambient_case(
    r: &Rendered,
    envoy: &mut EnvoyPair,
    phase: u8,
    version: &str,
    started_secs: i64,
) -> (Cluster, BTreeMap<String, Value>, BTreeMap<String, Value>) {
    let waypoint = envoy_dump(envoy, &r.out, "ambient", phase);
    let mut c = healthy(&r.out, "ambient", phase, 1);
    let pods = c.objects.get_mut("pods.json").unwrap()["items"]
        .as_array_mut()
        .unwrap();
    let image = format!("docker.io/istio/ztunnel:{version}");
    for i in 0..2 {
        pods.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("ztunnel-{i}"), "namespace": "istio-system", "labels": {"app": "ztunnel"}},
            "spec": {"containers": [{"name": "istio-proxy", "image": image}]},
            "status": {"phase": "Running", "startTime": ago(started_secs), "containerStatuses": [
                {"name": "istio-proxy", "ready": true, "restartCount": 0, "image": image, "imageID": "", "state": {"running": {"startedAt": ago(started_secs)}}}
            ]}
        }));
    }
    let proxies = c
        .sidecars
        .iter()
        .map(|(_, p)| (p.clone(), waypoint.clone()))
        .collect();
    let z = ztunnel_dump(&r.out, "ambient", phase, phase);
    let ztunnels = [
        ("ztunnel-0".to_string(), z.clone()),
        ("ztunnel-1".to_string(), z),
    ]
    .into();
    (c, proxies, ztunnels)
}

fn run_ambient(
    r: &Rendered,
    c: &Cluster,
    proxies: &BTreeMap<String, Value>,
    ztunnels: &BTreeMap<String, Value>,
    phase: u8,
) -> (Option<i32>, Vec<String>, Value) {
    let d = tempfile::tempdir().unwrap();
    write_dump_with(d.path(), c, proxies, ztunnels);
    verify_dump_cluster(&r.out, d.path(), "ambient", phase)
}

/// A ztunnel whose CA client lost istiod (ztunnel #1679) shows its certificate `Unavailable`:
/// ztunnel-readable fails and names the pod and the identity; `Available` passes.
#[test]
fn ztunnel_unavailable_certificates_fail_naming_pod_and_identity() {
    let r = render_now("plans/ambient.yaml");
    let mut envoy = EnvoyPair::start();
    let (c, proxies, mut z) = ambient_case(&r, &mut envoy, 3, "1.30.1", 86_400);
    let (code, failed, v) = run_ambient(&r, &c, &proxies, &z, 3);
    assert_eq!((code, failed), (Some(0), vec![]), "{v:#}");

    let mut stuck = z["ztunnel-1"].clone();
    stuck["certificates"][0]["state"] =
        json!("Unavailable: the identity is no longer needed, but got cancelled");
    stuck["certificates"][0]["certChain"] = json!([]);
    z.insert("ztunnel-1".into(), stuck);
    let (code, failed, v) = run_ambient(&r, &c, &proxies, &z, 3);
    assert_eq!(code, Some(1));
    assert_eq!(failed, ["ztunnel-readable"], "{v:#}");
    let f = finding(&v, "ztunnel-readable");
    let id = "istio-system/ztunnel-1 spiffe://cluster.local/ns/shop/sa/web";
    assert!(f["message"].as_str().unwrap().contains(id), "{f}");
    assert!(
        f["message"].as_str().unwrap().contains("Unavailable"),
        "{f}"
    );
    assert_eq!(
        f["details"],
        json!([format!(
            "{id}: Unavailable: the identity is no longer needed, but got cancelled"
        )])
    );
    assert!(
        f["hint"]
            .as_str()
            .unwrap()
            .contains("restart the ztunnel DaemonSet"),
        "{f}"
    );
    // Every certificate Unavailable: nothing left to judge, so the trust gates are not
    // checked (never "all 0 identities trust").
    let stuck = z["ztunnel-1"].clone();
    z.insert("ztunnel-0".into(), stuck);
    let (_, failed, v) = run_ambient(&r, &c, &proxies, &z, 3);
    assert_eq!(failed, ["ztunnel-readable"], "{v:#}");
    let skipped: Vec<String> = not_checked(&v).into_iter().map(|(c, _)| c).collect();
    assert_eq!(
        skipped,
        ["ztunnel-trusts-new-root", "ztunnel-leaf-new-issuer"]
    );
}

/// istio-2026 §2: ztunnel below 1.24.6 / 1.25.3 / 1.26.0 trusts one root (prereq-versions);
/// below 1.28.6 / 1.29.2 / 1.30.0 it must have started after phase 3 was applied
/// (ztunnel-restarted), judged from the pods' start times.
#[test]
fn ztunnel_version_thresholds_fail_prereq_versions_and_require_a_restart_after_phase_3() {
    let r = render_now("plans/ambient.yaml");
    let mut envoy = EnvoyPair::start();
    let week = 7 * 86_400;
    for (version, single_root) in [
        ("1.23.9", true),
        ("1.24.5", true),
        ("1.24.6", false),
        ("1.25.2", true),
        ("1.25.3", false),
        ("1.26.0", false),
    ] {
        let (c, proxies, z) = ambient_case(&r, &mut envoy, 1, version, 86_400);
        let (_, failed, v) = run_ambient(&r, &c, &proxies, &z, 1);
        assert_eq!(
            failed.contains(&"prereq-versions".to_string()),
            single_root,
            "ztunnel {version}: {v:#}"
        );
        if single_root {
            let f = v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["code"] == "prereq-versions" && f["passed"] == false)
                .unwrap();
            assert!(
                f["details"][0]
                    .as_str()
                    .unwrap()
                    .starts_with("istio-system/ztunnel-0: ztunnel"),
                "{f}"
            );
        }
    }
    // Started a day before phase 3 was applied (8 days ago): only reloading ztunnels pass.
    for (version, reloads) in [
        ("1.27.9", false),
        ("1.28.5", false),
        ("1.28.6", true),
        ("1.29.1", false),
        ("1.29.2", true),
        ("1.30.0", true),
        ("latest", false),
    ] {
        let (c, proxies, z) = ambient_case(&r, &mut envoy, 3, version, week + 86_400);
        let (code, failed, v) = run_ambient(&r, &c, &proxies, &z, 3);
        let f = finding(&v, "ztunnel-restarted");
        assert_eq!(f["passed"], reloads, "ztunnel {version}: {f}");
        if reloads {
            assert_eq!(code, Some(0), "{v:#}");
        } else {
            assert_eq!(failed, ["ztunnel-restarted"], "ztunnel {version}: {v:#}");
            assert_eq!(f["details"].as_array().unwrap().len(), 2, "{f}");
            assert!(
                f["details"][0]
                    .as_str()
                    .unwrap()
                    .starts_with("istio-system/ztunnel-0: ztunnel"),
                "{f}"
            );
            assert!(
                f["hint"]
                    .as_str()
                    .unwrap()
                    .contains("rollout restart daemonset/ztunnel")
            );
        }
    }
    // 1.28.0 restarted a day ago, after the phase: passes, from the container or the pod.
    let (mut c, proxies, z) = ambient_case(&r, &mut envoy, 3, "1.28.0", 86_400);
    let (_, failed, v) = run_ambient(&r, &c, &proxies, &z, 3);
    assert_eq!(failed, Vec::<String>::new(), "{v:#}");
    let items = c.objects.get_mut("pods.json").unwrap()["items"]
        .as_array_mut()
        .unwrap();
    let n = items.len();
    items[n - 1]["status"]
        .as_object_mut()
        .unwrap()
        .remove("containerStatuses");
    let (_, failed, v) = run_ambient(&r, &c, &proxies, &z, 3);
    assert_eq!(failed, Vec::<String>::new(), "pod startTime only: {v:#}");
    // No start time at all: unknown is not a pass.
    items_of(&mut c)[n - 1]["status"]
        .as_object_mut()
        .unwrap()
        .remove("startTime");
    let (_, failed, v) = run_ambient(&r, &c, &proxies, &z, 3);
    assert_eq!(failed, ["ztunnel-restarted"], "{v:#}");
    assert!(
        finding(&v, "ztunnel-restarted")["details"][0]
            .as_str()
            .unwrap()
            .contains("start time is unknown")
    );
}

/// istio-2026 §2: in ambient, phase 3 → 4 is allowed early only when every ztunnel identity
/// is issued by B's intermediate; otherwise soak-time asks for the whole workload TTL plus the
/// margin (1d17m for plans/ambient.yaml), counted from when the phase was applied.
#[test]
fn ambient_phase_3_ends_early_only_on_every_ztunnel_being_b_issued() {
    let r = render_now("plans/ambient.yaml");
    let mut envoy = EnvoyPair::start();
    let (mut c, proxies, mut z) = ambient_case(&r, &mut envoy, 3, "1.30.1", 86_400);
    let applied = |c: &mut Cluster, secs: i64| {
        let t = ago(secs);
        c.secret["metadata"]["managedFields"][0]["time"] = json!(t);
        c.secret["metadata"]["creationTimestamp"] = json!(t);
    };
    // Applied an hour ago (more than 17m, less than 1d17m), every ztunnel on B: passes.
    applied(&mut c, 3_600);
    let (code, failed, v) = run_ambient(&r, &c, &proxies, &z, 3);
    assert_eq!((code, failed), (Some(0), vec![]), "{v:#}");
    let soak = finding(&v, "soak-time");
    let text = soak["message"].as_str().unwrap();
    assert!(text.contains("minimum soak 17m"), "{soak}");
    assert!(
        text.contains("every ztunnel identity is issued by the new intermediate"),
        "{soak}"
    );

    // One ztunnel still holds a leaf from A's intermediate: the leaf gate fails and the soak
    // is the whole TTL, which an hour has not reached.
    z.insert("ztunnel-1".into(), ztunnel_dump(&r.out, "ambient", 2, 3));
    let (code, failed, v) = run_ambient(&r, &c, &proxies, &z, 3);
    assert_eq!(code, Some(1));
    assert_eq!(failed, ["ztunnel-leaf-new-issuer", "soak-time"], "{v:#}");
    let soak = finding(&v, "soak-time");
    let text = soak["message"].as_str().unwrap();
    assert!(text.contains("minimum soak 1d17m"), "{soak}");
    assert!(
        text.contains("not every ztunnel identity is proven"),
        "{soak}"
    );

    // A ztunnel that cannot be read proves nothing either.
    let mut z2 = z.clone();
    z2.insert("ztunnel-1".into(), json!({"not": "a ztunnel dump"}));
    let (_, failed, v) = run_ambient(&r, &c, &proxies, &z2, 3);
    assert!(failed.contains(&"soak-time".to_string()), "{v:#}");
    assert!(failed.contains(&"ztunnel-readable".to_string()), "{v:#}");

    // After the whole TTL plus the margin the soak holds without the proof, but the A leaf
    // still fails its own gate: phase 4 stays closed until that ztunnel re-signs.
    applied(&mut c, 86_400 + 17 * 60 + 60);
    let (_, failed, v) = run_ambient(&r, &c, &proxies, &z, 3);
    assert_eq!(failed, ["ztunnel-leaf-new-issuer"], "{v:#}");
}

fn items_of(c: &mut Cluster) -> &mut Vec<Value> {
    c.objects.get_mut("pods.json").unwrap()["items"]
        .as_array_mut()
        .unwrap()
}

/// `plan` and ROLLOUT.md explain the ztunnel versions and timing, quoting the thresholds.
#[test]
fn plan_and_rollout_md_quote_the_ztunnel_thresholds() {
    let o = rootroll(&["plan", "plans/ambient.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = render_now("plans/ambient.yaml");
    let md = std::fs::read_to_string(r.out.join("ROLLOUT.md")).unwrap();
    for text in [stdout(&o), md] {
        assert!(
            text.contains("ztunnel ≥ 1.24.6 / 1.25.3 / 1.26.0"),
            "{text}"
        );
        assert!(
            text.contains("ztunnel below 1.28.6 / 1.29.2 / 1.30.0 must restart after this phase"),
            "{text}"
        );
        assert!(text.contains("ztunnel-restarted"), "{text}");
    }
    let o = rootroll(&["plan", "plans/demo.yaml"]);
    assert!(!stdout(&o).contains("1.28.6"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("ztunnel-restarted"), "{}", stdout(&o));
}

/// Runs `verify live --from-dump` with `--strict`.
fn verify_dump_strict(out: &Path, dump: &Path, phase: u8) -> (Option<i32>, Value) {
    let at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let o = rootroll_at(
        &at,
        &[
            "verify",
            "live",
            out.to_str().unwrap(),
            "--cluster",
            "demo",
            "--phase",
            &phase.to_string(),
            "--from-dump",
            dump.to_str().unwrap(),
            "--format",
            "json",
            "--strict",
        ],
    );
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{}{}", stdout(&o), stderr(&o)));
    (o.status.code(), v)
}

/// istio-2026 §1: agentgateway pods, and a proxy whose admin dump is not Envoy's, are listed
/// as not verified with the reason: a warning (exit 0), an error with --strict, never a pass.
#[test]
fn agentgateway_and_non_envoy_proxies_are_not_verified_a_warning_or_an_error_with_strict() {
    let r = render_now("plans/demo.yaml");
    let mut envoy = EnvoyPair::start();
    let dump3 = envoy_dump(&mut envoy, &r.out, "demo", 3);
    let mut c = healthy(&r.out, "demo", 3, 2);
    let mut proxies: BTreeMap<String, Value> = c
        .sidecars
        .iter()
        .map(|(_, p)| (p.clone(), dump3.clone()))
        .collect();
    let d = tempfile::tempdir().unwrap();
    write_dump(d.path(), &c, &proxies);
    assert_eq!(verify_dump_strict(&r.out, d.path(), 3).0, Some(0));
    assert_eq!(
        finding(&verify_dump(&r.out, d.path(), 3).2, "proxies-verified")["passed"],
        true
    );

    items_of(&mut c).push(agentgateway_pod());
    // web-0001's admin port answers, but not as Envoy (agentgateway's own dump shape).
    proxies.insert(
        "web-0001".into(),
        json!({"binds": [], "workloads": [], "services": [], "policies": []}),
    );
    let d = tempfile::tempdir().unwrap();
    write_dump(d.path(), &c, &proxies);
    let (code, failed, v) = verify_dump(&r.out, d.path(), 3);
    assert_eq!((code, failed), (Some(0), vec![]), "a warning: {v:#}");
    let f = finding(&v, "proxies-verified");
    assert_eq!(
        (f["passed"].clone(), f["severity"].clone()),
        (json!(false), json!("warning"))
    );
    assert_eq!(
        f["details"],
        json!([
            "shop/web-0001 (sidecar): not verified, its admin dump is not an Envoy config_dump (no envoy.admin configs, no dynamic active secrets)",
            "shop/ai-gw-agentgateway-5c7d9-x2x8q (agentgateway): not verified, a pod of an agentgateway GatewayClass: agentgateway is not Envoy and has no Envoy config_dump",
        ]),
        "{f}"
    );
    // The other gates judge the one Envoy left and say nothing of the unread ones.
    assert_eq!(finding(&v, "proxy-readable")["passed"], true);
    assert!(
        finding(&v, "proxy-trusts-roots")["message"]
            .as_str()
            .unwrap()
            .starts_with("all 1 ")
    );
    let (code, v) = verify_dump_strict(&r.out, d.path(), 3);
    assert_eq!(code, Some(1), "--strict: {v:#}");
}

/// istio/istio#61719: an ambient plan of several clusters notes the shared-root requirement
/// in validation and in ROLLOUT.md; one cluster, or a sidecar mesh, does not.
#[test]
fn ambient_multicluster_plans_state_the_shared_root_requirement() {
    let d = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("plans/ambient.yaml")).unwrap();
    let two = format!(
        "{text}    - name: east\n      intermediates:\n        current: {{generate: {{algorithm: rsa-2048}}}}\n        new: {{generate: {{algorithm: ecdsa-p256}}}}\n"
    );
    let plan = d.path().join("ambient-2.yaml");
    std::fs::write(&plan, two).unwrap();
    let o = rootroll(&["plan", plan.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("ambient-multicluster-shared-root"), "{all}");
    assert!(all.contains("istio/istio#61719"), "{all}");
    let single = rootroll(&["plan", "plans/ambient.yaml"]);
    let single = format!("{}{}", stdout(&single), stderr(&single));
    assert!(
        !single.contains("ambient-multicluster-shared-root"),
        "{single}"
    );

    let r = render_now(plan.to_str().unwrap());
    let md = std::fs::read_to_string(r.out.join("ROLLOUT.md")).unwrap();
    assert!(
        md.contains("**Ambient multicluster: shared roots.**"),
        "{md}"
    );
    assert!(md.contains("`bundle-shared`"), "{md}");
    let r = render_now("plans/ambient.yaml");
    let md = std::fs::read_to_string(r.out.join("ROLLOUT.md")).unwrap();
    assert!(!md.contains("Ambient multicluster"), "{md}");
    let o = rootroll(&["explain", "bundle-shared"]);
    assert!(
        stdout(&o).contains("shared-root requirement"),
        "{}",
        stdout(&o)
    );
}
