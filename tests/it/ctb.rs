//! Root publication (issue 15, item 1; istio-2026 §1): `root-configmap` reads where each istiod
//! Deployment publishes its roots. With `ENABLE_CLUSTER_TRUST_BUNDLE_API=true` that is the
//! cluster-scoped ClusterTrustBundle `istio.io:istiod-ca:root-cert` (v1beta1, or v1alpha1 where
//! only that is served), compared as a set of certificates; otherwise the ConfigMap named by
//! `PILOT_CA_CERT_CONFIGMAP` (default `istio-ca-root-cert`). Through the in-test API server and
//! real Envoy, and through `--from-dump`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::common::*;
use crate::envoy::EnvoyPair;
use crate::live::{
    Cluster, envoy_dump, finding, healthy, phase_secret, render_now, serve, verify_api,
    verify_dump, write_dump,
};

const CTB: &str = "istio.io:istiod-ca:root-cert";

/// The phase's root bundle (`root-cert.pem` bytes).
fn bundle(out: &Path, phase: u8) -> Vec<u8> {
    secret_data(&phase_secret(out, "demo", phase))["root-cert.pem"].clone()
}

/// The roots of `pem_bytes` as istiod writes them into the ClusterTrustBundle: its own PEM
/// encoding, one block per distinct root, not the Secret's bytes (here also in reverse order).
fn istiod_pem(pem_bytes: &[u8]) -> String {
    let mut seen = Vec::new();
    for p in pem::parse_many(pem_bytes).unwrap() {
        if !seen.contains(&p.contents().to_vec()) {
            seen.push(p.contents().to_vec());
        }
    }
    seen.iter()
        .rev()
        .map(|der| rootroll::pki::der_to_pem(der))
        .collect()
}

/// sha256 of each root of a bundle.
fn root_shas(pem_bytes: &[u8]) -> Vec<String> {
    pem::parse_many(pem_bytes)
        .unwrap()
        .iter()
        .map(|p| rootroll::pki::sha256_hex(p.contents()))
        .collect()
}

/// The ClusterTrustBundle object as the API server serves it.
fn ctb(api_version: &str, trust_bundle: &str) -> Value {
    json!({
        "apiVersion": api_version, "kind": "ClusterTrustBundle",
        "metadata": {
            "name": CTB,
            "uid": "3b0f6a2e-8c1d-4f5e-9a7b-2d4c6e8f0a1b",
            "resourceVersion": "482113",
            "creationTimestamp": "2026-11-20T09:14:03Z",
            "managedFields": [{"manager": "pilot-discovery", "operation": "Apply", "apiVersion": api_version,
                "time": "2026-11-28T10:02:41Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:signerName": {}, "f:trustBundle": {}}}}]
        },
        "spec": {"signerName": "istio.io/istiod-ca", "trustBundle": trust_bundle}
    })
}

/// Sets env `name` on istiod's `discovery` container (deployment `i`).
fn set_env(c: &mut Cluster, i: usize, var: Value) {
    let env = c.objects.get_mut("deployments.json").unwrap()["items"][i]["spec"]["template"]
        ["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap();
    env.push(var);
}

/// A healthy phase-`phase` cluster whose istiod runs with the ClusterTrustBundle API: the CTB
/// (of `api_version`) holds `trust_bundle`, and the per-namespace ConfigMaps left from before
/// hold another phase's bytes (istiod no longer writes them, so they must not be judged).
fn ctb_cluster(out: &Path, phase: u8, api_version: &str, trust_bundle: Option<&str>) -> Cluster {
    let mut c = healthy(out, "demo", phase, 1);
    set_env(
        &mut c,
        0,
        json!({"name": "ENABLE_CLUSTER_TRUST_BUNDLE_API", "value": "true"}),
    );
    let other = String::from_utf8(bundle(out, if phase == 1 { 4 } else { 1 })).unwrap();
    for cm in c.objects.get_mut("configmaps.json").unwrap()["items"]
        .as_array_mut()
        .unwrap()
    {
        if cm["metadata"]["name"] == "istio-ca-root-cert" {
            cm["data"]["root-cert.pem"] = Value::String(other.clone());
        }
    }
    let items: Vec<Value> = trust_bundle
        .map(|t| ctb(api_version, t))
        .into_iter()
        .collect();
    // `kubectl get clustertrustbundles.certificates.k8s.io -o json` prints a v1 List.
    c.objects.insert(
        "clustertrustbundles.json",
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}),
    );
    c
}

fn dumps_for(c: &Cluster, dump: &Value) -> BTreeMap<String, Value> {
    c.sidecars
        .iter()
        .map(|(_, p)| (p.clone(), dump.clone()))
        .collect()
}

/// `verify live --from-dump` on `c`; returns (exit code, failed codes, root-configmap finding).
fn from_dump(
    out: &Path,
    c: &Cluster,
    envoy: &Value,
    phase: u8,
) -> (Option<i32>, Vec<String>, Value) {
    let d = tempfile::tempdir().unwrap();
    write_dump(d.path(), c, &dumps_for(c, envoy));
    let (code, failed, v) = verify_dump(out, d.path(), phase);
    (code, failed, finding(&v, "root-configmap").clone())
}

#[test]
fn from_dump_with_the_ctb_api_passes_when_the_ctb_holds_the_roots_and_fails_naming_it() {
    let r = render_now("plans/demo.yaml");
    let mut envoy = EnvoyPair::start();
    let p2 = envoy_dump(&mut envoy, &r.out, "demo", 2);
    let roots = bundle(&r.out, 2);
    let shas = root_shas(&roots);
    assert_eq!(shas.len(), 2, "phase 2 trusts A and B");

    // The CTB holds A and B (istiod's own PEM, another order): pass, though the leftover
    // ConfigMaps hold phase 1's bytes.
    let c = ctb_cluster(
        &r.out,
        2,
        "certificates.k8s.io/v1beta1",
        Some(&istiod_pem(&roots)),
    );
    let (code, failed, f) = from_dump(&r.out, &c, &p2, 2);
    assert_eq!(failed, Vec::<String>::new(), "{f:#}");
    assert_eq!(code, Some(0));
    assert_eq!(
        f["message"],
        format!(
            "clustertrustbundle/{CTB} (certificates.k8s.io/v1beta1) holds exactly the phase's 2 root(s)"
        )
    );

    // The CTB lacks root B (the first root in istiod's reversed order is B): fail, naming it.
    let only_a = istiod_pem(&pem::encode(&pem::parse_many(&roots).unwrap()[0]).into_bytes());
    let c = ctb_cluster(&r.out, 2, "certificates.k8s.io/v1beta1", Some(&only_a));
    let (code, failed, f) = from_dump(&r.out, &c, &p2, 2);
    assert_eq!(code, Some(1));
    assert_eq!(failed, ["root-configmap"]);
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "clustertrustbundle/{CTB} lacks 1 of the phase's 2 root(s)"
        )),
        "{msg}"
    );
    assert_eq!(
        f["details"],
        json!([format!("missing root sha256:{}", shas[1])])
    );

    // A damaged block (as istiod ≥ 1.28 drops it) is a missing root, not a pass.
    let good = istiod_pem(&roots);
    let damaged = good.replacen("MII", "MI!", 1);
    assert_ne!(good, damaged);
    let c = ctb_cluster(&r.out, 2, "certificates.k8s.io/v1beta1", Some(&damaged));
    let (_, failed, f) = from_dump(&r.out, &c, &p2, 2);
    assert_eq!(failed, ["root-configmap"]);
    let details = f["details"].as_array().unwrap();
    assert_eq!(details.len(), 2, "{f:#}");
    assert!(
        details[0]
            .as_str()
            .unwrap()
            .starts_with("missing root sha256:")
    );
    assert_eq!(
        details[1],
        "1 PEM block(s) of spec.trustBundle do not parse as certificates (istiod drops them)"
    );

    // A root the phase does not have (phase 4 is B only; the CTB still holds A and B).
    let c = ctb_cluster(
        &r.out,
        4,
        "certificates.k8s.io/v1beta1",
        Some(&istiod_pem(&roots)),
    );
    let p4 = envoy_dump(&mut envoy, &r.out, "demo", 4);
    let (_, failed, f) = from_dump(&r.out, &c, &p4, 4);
    assert_eq!(failed, ["root-configmap"]);
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("holds 1 root(s) the phase does not"),
        "{f:#}"
    );

    // The dump's list has no istiod CTB: it does not exist.
    let c = ctb_cluster(&r.out, 2, "certificates.k8s.io/v1beta1", None);
    let (_, failed, f) = from_dump(&r.out, &c, &p2, 2);
    assert_eq!(failed, ["root-configmap"]);
    assert_eq!(
        f["message"],
        format!(
            "clustertrustbundle/{CTB} does not exist, though istiod runs with ENABLE_CLUSTER_TRUST_BUNDLE_API=true"
        )
    );

    // No clustertrustbundles.json at all: fail closed, naming the file and how to collect it.
    let mut c = ctb_cluster(&r.out, 2, "certificates.k8s.io/v1beta1", Some(&good));
    c.objects.remove("clustertrustbundles.json");
    let d = tempfile::tempdir().unwrap();
    write_dump(d.path(), &c, &dumps_for(&c, &p2));
    let (code, failed, v) = verify_dump(&r.out, d.path(), 2);
    assert_eq!(code, Some(1));
    assert_eq!(failed, ["root-configmap"]);
    let f = finding(&v, "root-configmap");
    let file = d.path().join("clustertrustbundles.json");
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "clustertrustbundle/{CTB} could not be read: {}",
            file.display()
        )),
        "{msg}"
    );
    assert_eq!(
        f["hint"],
        format!(
            "collect {0}: kubectl get clustertrustbundles.certificates.k8s.io -o json > {0}",
            file.display()
        )
    );
}

/// Serves `c` from a fresh in-test API server with one real Envoy behind every sidecar, and
/// runs `verify live` against it; `prepare` adjusts the server first.
fn live(
    out: &Path,
    c: &Cluster,
    envoy: &EnvoyPair,
    phase: u8,
    prepare: impl FnOnce(&crate::apiserver::FakeApi),
) -> (Option<i32>, Vec<String>, Value) {
    let api = crate::apiserver::FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path(), "test");
    let admins: BTreeMap<String, std::net::SocketAddr> = c
        .sidecars
        .iter()
        .map(|(_, p)| (p.clone(), envoy.server_admin()))
        .collect();
    prepare(&api);
    serve(&api, c, &admins);
    let (code, failed, v, err) = verify_api(out, &kubeconfig, phase, &[]);
    assert!(!v.is_null(), "{err}");
    let f = finding(&v, "root-configmap").clone();
    (code, failed, f)
}

#[test]
fn live_ctb_is_read_from_v1beta1_or_a_v1alpha1_only_server_and_fails_when_absent_or_short() {
    let r = render_now("plans/demo.yaml");
    let mut envoy = EnvoyPair::start();
    let _ = envoy_dump(&mut envoy, &r.out, "demo", 2);
    let roots = bundle(&r.out, 2);
    let good = istiod_pem(&roots);

    let c = ctb_cluster(&r.out, 2, "certificates.k8s.io/v1beta1", Some(&good));
    let (code, failed, f) = live(&r.out, &c, &envoy, 2, |_| {});
    assert_eq!(failed, Vec::<String>::new(), "{f:#}");
    assert_eq!(code, Some(0));
    assert_eq!(
        f["message"],
        format!(
            "clustertrustbundle/{CTB} (certificates.k8s.io/v1beta1) holds exactly the phase's 2 root(s)"
        )
    );

    // A server that serves ClusterTrustBundles only at v1alpha1 (Kubernetes < 1.33, Istio 1.26).
    let c = ctb_cluster(&r.out, 2, "certificates.k8s.io/v1alpha1", Some(&good));
    let (code, failed, f) = live(&r.out, &c, &envoy, 2, |_| {});
    assert_eq!(failed, Vec::<String>::new(), "{f:#}");
    assert_eq!(code, Some(0));
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("(certificates.k8s.io/v1alpha1) holds exactly"),
        "{f:#}"
    );

    // v1beta1 is served but istiod wrote no CTB.
    let c = ctb_cluster(&r.out, 2, "certificates.k8s.io/v1beta1", None);
    let (code, failed, f) = live(&r.out, &c, &envoy, 2, |api| {
        api.serve_kind("certificates.k8s.io/v1beta1", "ClusterTrustBundle", false);
    });
    assert_eq!(code, Some(1));
    assert_eq!(failed, ["root-configmap"]);
    assert_eq!(
        f["message"],
        format!(
            "clustertrustbundle/{CTB} does not exist, though istiod runs with ENABLE_CLUSTER_TRUST_BUNDLE_API=true"
        )
    );

    // The CTB lacks root B.
    let only_a = istiod_pem(&pem::encode(&pem::parse_many(&roots).unwrap()[0]).into_bytes());
    let c = ctb_cluster(&r.out, 2, "certificates.k8s.io/v1beta1", Some(&only_a));
    let (_, failed, f) = live(&r.out, &c, &envoy, 2, |_| {});
    assert_eq!(failed, ["root-configmap"]);
    assert_eq!(
        f["details"],
        json!([format!("missing root sha256:{}", root_shas(&roots)[1])])
    );

    // The API is not served at all (no version): the CTB cannot be read, which fails closed.
    let c = ctb_cluster(&r.out, 2, "certificates.k8s.io/v1beta1", None);
    let (_, failed, f) = live(&r.out, &c, &envoy, 2, |_| {});
    assert_eq!(failed, ["root-configmap"]);
    assert_eq!(
        f["message"],
        format!(
            "clustertrustbundle/{CTB} could not be read: the API server serves clustertrustbundles in neither certificates.k8s.io/v1beta1 nor certificates.k8s.io/v1alpha1"
        )
    );

    // RBAC without access to ClusterTrustBundles: a failure naming the grant, never a pass.
    let c = ctb_cluster(&r.out, 2, "certificates.k8s.io/v1beta1", Some(&good));
    let (_, failed, f) = live(&r.out, &c, &envoy, 2, |api| {
        api.fail("/apis/certificates.k8s.io/v1beta1/clustertrustbundles", 403);
    });
    assert_eq!(failed, ["root-configmap"]);
    assert!(
        f["message"].as_str().unwrap().starts_with(&format!(
            "clustertrustbundle/{CTB} could not be read: 403 Forbidden"
        )),
        "{f:#}"
    );
    assert!(
        f["hint"].as_str().unwrap().contains("clustertrustbundles"),
        "{f:#}"
    );
}

/// A healthy phase-2 cluster whose istiod sets `PILOT_CA_CERT_CONFIGMAP` with `var`, and
/// whose root ConfigMaps are named `names`.
fn renamed(out: &Path, var: Value, names: &str) -> Cluster {
    let mut c = healthy(out, "demo", 2, 1);
    set_env(&mut c, 0, var);
    for cm in c.objects.get_mut("configmaps.json").unwrap()["items"]
        .as_array_mut()
        .unwrap()
    {
        if cm["metadata"]["name"] == "istio-ca-root-cert" {
            cm["metadata"]["name"] = json!(names);
        }
    }
    c
}

#[test]
fn a_renamed_root_configmap_is_read_by_the_name_istiod_is_given() {
    let r = render_now("plans/demo.yaml");
    let mut envoy = EnvoyPair::start();
    let p2 = envoy_dump(&mut envoy, &r.out, "demo", 2);
    let literal = json!({"name": "PILOT_CA_CERT_CONFIGMAP", "value": "my-roots"});

    // istiod writes my-roots and it holds the phase's bytes: pass, live and from a dump.
    let c = renamed(&r.out, literal.clone(), "my-roots");
    let (code, failed, f) = live(&r.out, &c, &envoy, 2, |_| {});
    assert_eq!(failed, Vec::<String>::new(), "{f:#}");
    assert_eq!(code, Some(0));
    assert_eq!(
        f["message"],
        "my-roots holds the phase's exact bundle in all 4 namespaces"
    );
    let (code, _, f) = from_dump(&r.out, &c, &p2, 2);
    assert_eq!(code, Some(0), "{f:#}");
    assert_eq!(
        f["message"],
        "my-roots holds the phase's exact bundle in all 4 namespaces"
    );

    // Only istio-ca-root-cert exists (with the right bytes): my-roots is missing, a failure.
    let c = renamed(&r.out, literal.clone(), "istio-ca-root-cert");
    let (code, failed, f) = live(&r.out, &c, &envoy, 2, |_| {});
    assert_eq!(code, Some(1));
    assert_eq!(failed, ["root-configmap"]);
    assert_eq!(f["message"], "no my-roots ConfigMap found in any namespace");
    let (_, failed, f) = from_dump(&r.out, &c, &p2, 2);
    assert_eq!(failed, ["root-configmap"]);
    assert_eq!(f["message"], "no my-roots ConfigMap found in any namespace");

    // The name from a ConfigMap of the Istio namespace (configMapKeyRef) is resolved.
    let mut c = renamed(
        &r.out,
        json!({"name": "PILOT_CA_CERT_CONFIGMAP", "valueFrom": {"configMapKeyRef": {"name": "istiod-settings", "key": "trustBundleName"}}}),
        "my-roots",
    );
    c.objects.get_mut("configmaps.json").unwrap()["items"]
        .as_array_mut()
        .unwrap()
        .push(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "istiod-settings", "namespace": "istio-system"},
            "data": {"trustBundleName": "my-roots"}}));
    let (code, _, f) = live(&r.out, &c, &envoy, 2, |_| {});
    assert_eq!(code, Some(0), "{f:#}");
    assert_eq!(
        f["message"],
        "my-roots holds the phase's exact bundle in all 4 namespaces"
    );

    // The name from a Secret cannot be read: the gate fails with the reason, never assumes.
    let c = renamed(
        &r.out,
        json!({"name": "PILOT_CA_CERT_CONFIGMAP", "valueFrom": {"secretKeyRef": {"name": "istiod-settings", "key": "trustBundleName"}}}),
        "my-roots",
    );
    let (code, failed, f) = from_dump(&r.out, &c, &p2, 2);
    assert_eq!(code, Some(1));
    assert_eq!(failed, ["root-configmap"]);
    assert_eq!(
        f["message"],
        "where istiod publishes its roots is unknown: istiod: PILOT_CA_CERT_CONFIGMAP comes from a Secret (secretKeyRef), which rootroll does not resolve"
    );
}

#[test]
fn istiod_revisions_that_disagree_get_every_target_checked() {
    let r = render_now("plans/demo.yaml");
    let mut envoy = EnvoyPair::start();
    let p2 = envoy_dump(&mut envoy, &r.out, "demo", 2);
    let roots = bundle(&r.out, 2);
    // istiod (default revision) writes the CTB; istiod-canary writes ConfigMaps my-roots.
    let mut c = ctb_cluster(
        &r.out,
        2,
        "certificates.k8s.io/v1beta1",
        Some(&istiod_pem(&roots)),
    );
    let deployments = c.objects.get_mut("deployments.json").unwrap()["items"]
        .as_array_mut()
        .unwrap();
    let mut canary = deployments[0].clone();
    canary["metadata"]["name"] = json!("istiod-canary");
    canary["spec"]["template"]["spec"]["containers"][0]["env"] = json!([
        {"name": "ISTIO_MULTIROOT_MESH", "value": "true"},
        {"name": "PILOT_CA_CERT_CONFIGMAP", "value": "my-roots"}
    ]);
    deployments.push(canary);
    let good = String::from_utf8(roots.clone()).unwrap();
    let cms = c.objects.get_mut("configmaps.json").unwrap()["items"]
        .as_array_mut()
        .unwrap();
    for ns in ["istio-system", "shop"] {
        cms.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "my-roots", "namespace": ns}, "data": {"root-cert.pem": good}}));
    }
    let (code, failed, f) = from_dump(&r.out, &c, &p2, 2);
    assert_eq!(failed, Vec::<String>::new(), "{f:#}");
    assert_eq!(code, Some(0));
    assert_eq!(
        f["message"],
        format!(
            "istiod revisions publish their roots differently (istiod: ClusterTrustBundle; istiod-canary: ConfigMap my-roots), each is checked: clustertrustbundle/{CTB} (certificates.k8s.io/v1beta1) holds exactly the phase's 2 root(s); my-roots holds the phase's exact bundle in all 2 namespaces"
        )
    );
    let (code, _, live_f) = live(&r.out, &c, &envoy, 2, |_| {});
    assert_eq!(code, Some(0), "{live_f:#}");
    assert_eq!(live_f["message"], f["message"]);

    // One of canary's ConfigMaps is stale: the union fails, naming it.
    let stale = String::from_utf8(bundle(&r.out, 1)).unwrap();
    let cms = c.objects.get_mut("configmaps.json").unwrap()["items"]
        .as_array_mut()
        .unwrap();
    let last = cms.len() - 1;
    cms[last]["data"]["root-cert.pem"] = json!(stale);
    let (_, failed, f) = from_dump(&r.out, &c, &p2, 2);
    assert_eq!(failed, ["root-configmap"]);
    assert_eq!(f["details"], json!(["shop/my-roots"]));
}

/// With the Secret not read (`--no-secret-read`, or a dump without secret.json) and
/// ENABLE_CLUSTER_TRUST_BUNDLE_API on, there are no root ConfigMaps to date the phase by:
/// soak-time dates it by the ClusterTrustBundle istiod wrote after reloading.
#[test]
fn without_the_secret_the_soak_is_dated_by_the_cluster_trust_bundle() {
    let r = render_now("plans/demo.yaml");
    let mut envoy = EnvoyPair::start();
    let p2 = envoy_dump(&mut envoy, &r.out, "demo", 2);
    let roots = bundle(&r.out, 2);
    let c = ctb_cluster(
        &r.out,
        2,
        "certificates.k8s.io/v1beta1",
        Some(&istiod_pem(&roots)),
    );
    let d = tempfile::tempdir().unwrap();
    write_dump(d.path(), &c, &dumps_for(&c, &p2));
    std::fs::remove_file(d.path().join("secret.json")).unwrap();
    let (_, _, v) = verify_dump(&r.out, d.path(), 2);
    let soak = finding(&v, "soak-time");
    assert_eq!(soak["passed"], true, "{soak:#}");
    // The CTB's managedFields time, 2026-11-28T10:02:41Z, is what the soak counts from.
    let since = time::OffsetDateTime::now_utc() - time::macros::datetime!(2026-11-28 10:02:41 UTC);
    assert!(
        soak["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}d", since.whole_days())),
        "{soak:#}"
    );
    // Without its managedFields and creation time the phase cannot be dated: fail, not pass.
    let mut c = c;
    let ctbs = c.objects.get_mut("clustertrustbundles.json").unwrap();
    let item = &mut ctbs["items"][0]["metadata"];
    item.as_object_mut().unwrap().remove("managedFields");
    item.as_object_mut().unwrap().remove("creationTimestamp");
    let d = tempfile::tempdir().unwrap();
    write_dump(d.path(), &c, &dumps_for(&c, &p2));
    std::fs::remove_file(d.path().join("secret.json")).unwrap();
    let (_, _, v) = verify_dump(&r.out, d.path(), 2);
    let soak = finding(&v, "soak-time");
    assert_eq!(soak["passed"], false, "{soak:#}");
}
