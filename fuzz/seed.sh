#!/usr/bin/env bash
# Rebuilds the checked-in seed corpus fuzz/corpus/<target>/ from the repository's own inputs:
# the example and invalid plans, the certificate fixtures (no private keys), rendered SOPS
# files and the hostile SOPS catalog, and packed `--from-dump` directories (fuzz/src/lib.rs,
# `unpack`) built from the makefile fixtures. Small on purpose: fuzzing grows its own queue
# under the campaign's output directory, never here.
set -euo pipefail
cd "$(dirname "$0")/.."
c=fuzz/corpus
rm -rf "$c"
mkdir -p "$c"/{plan_validate,pem_bundle,inspect,sops_decrypt,dump_snapshot}

# Plans: every example but the 100-cluster fleet (18 KB of repetition), every invalid plan,
# the small hostile ones.
for f in plans/*.yaml tests/invalid/*.yaml; do
  [[ $f == plans/fleet-100-ecdsa.yaml ]] && continue
  cp "$f" "$c/plan_validate/$(basename "$(dirname "$f")")-$(basename "$f")"
done
find tests/hostile/plans -name '*.yaml' -size -16k -exec cp {} "$c/plan_validate/" \;

# Certificates: one of each kind of fixture (root, intermediate, chain; RSA, ECDSA, P-521,
# secp256k1, expired, not-yet-valid, CSR, truncated), never a key file.
for d in makefile makefile/cluster1 bad/expired bad/not-ca bad/rsa-1024 hostile/csr-not-cert \
  hostile/curve-p521 hostile/curve-secp256k1 hostile/not-yet-valid hostile/truncated-cert \
  hostile/via-stranger; do
  for f in tests/fixtures/$d/*.pem; do
    [[ $f == *key* ]] && continue
    name=$(echo "${f#tests/fixtures/}" | tr / -)
    cp "$f" "$c/pem_bundle/$name"
    cp "$f" "$c/inspect/$name"
  done
done
cp tests/fixtures/tls/east/ca.crt "$c/inspect/tls-east-ca.crt"

# SOPS: the hostile catalog (real rendered files, each changed one way) and rendered phases
# of the demo, ambient and import plans, the state file and the rendered .sops.yaml rules.
cp tests/hostile/sops/*.sops.yaml "$c/sops_decrypt/"
for p in demo ambient import; do
  cp "tests/fixtures/golden/$p/clusters/$(ls "tests/fixtures/golden/$p/clusters" | head -1)/istio-ca/phases/2-trust-both/cacerts.sops.yaml" \
    "$c/sops_decrypt/golden-$p-phase2.sops.yaml"
done
cp tests/fixtures/golden/demo/.rootroll/state.sops.yaml "$c/sops_decrypt/golden-demo-state.sops.yaml"

# Dumps: a healthy sidecar + ztunnel cluster (camelCase, as kubectl and Envoy's admin API
# print it), the same in istioctl's snake_case and array forms, and an empty cluster.
python3 - "$c/dump_snapshot" <<'PY'
import base64, json, pathlib, sys

out = pathlib.Path(sys.argv[1])
fx = pathlib.Path("tests/fixtures/makefile")
root = (fx / "root-cert.pem").read_text()
chain = (fx / "cluster1/cert-chain.pem").read_text()
ca = (fx / "cluster1/ca-cert.pem").read_text()
b64 = lambda s: base64.b64encode(s.encode()).decode()
when = "2026-12-01T00:00:00Z"

def lst(kind, api, items):
    return {"apiVersion": api, "kind": kind + "List", "metadata": {"resourceVersion": "1"}, "items": items}

def pod(ns, name, labels, containers, ready=True):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": containers},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": c["name"], "ready": ready, "restartCount": 0, "image": c["image"], "imageID": "",
                 "state": {"running": {"startedAt": when}}} for c in containers]}}

def cluster(snake):
    istiod = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "istiod", "namespace": "istio-system", "labels": {"app": "istiod"}},
              "spec": {"selector": {"matchLabels": {"app": "istiod"}}, "template": {
                  "metadata": {"labels": {"app": "istiod"}}, "spec": {"containers": [{
                      "name": "discovery", "image": "docker.io/istio/pilot:1.26.2",
                      "env": [{"name": "ISTIO_MULTIROOT_MESH", "value": "true"}]}]}}}}
    mesh = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"},
            "data": {"mesh": "defaultConfig:\n  proxyMetadata:\n    PROXY_CONFIG_XDS_AGENT: \"true\"\n"}}
    cms = [mesh] + [{"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "istio-ca-root-cert", "namespace": ns, "labels": {"istio.io/config": "true"},
                                  "managedFields": [{"manager": "pilot-discovery", "operation": "Update", "time": when}]},
                     "data": {"root-cert.pem": root}} for ns in ["istio-system", "shop"]]
    proxy = {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.26.2",
             "env": [{"name": "PROXY_CONFIG_XDS_AGENT", "value": "true"}]}
    pods = [pod("istio-system", "istiod-7d9f8-abcde", {"app": "istiod"},
                [{"name": "discovery", "image": "docker.io/istio/pilot:1.26.2"}]),
            pod("shop", "web-0000", {"app": "web", "security.istio.io/tlsMode": "istio"},
                [{"name": "web", "image": "nginx:1.27"}, proxy]),
            pod("istio-system", "ztunnel-x1", {"app": "ztunnel"},
                [{"name": "istio-proxy", "image": "docker.io/istio/ztunnel:1.26.2"}])]
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": "cacerts", "namespace": "istio-system",
                           "labels": {"rootroll.io/phase": "2"},
                           "managedFields": [{"manager": "kustomize-controller", "operation": "Apply", "time": when}]},
              "data": {"ca-cert.pem": b64(ca), "cert-chain.pem": b64(chain), "root-cert.pem": b64(root)}}
    hook = lambda kind, name: {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                               "metadata": {"name": name}, "webhooks": [{
                                   "name": name + ".istio.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                                   "clientConfig": {"caBundle": b64(root), "service": {"name": "istiod", "namespace": "istio-system"}}}]}
    k = (lambda camel, snake_name: snake_name) if snake else (lambda camel, snake_name: camel)
    envoy = {"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
                          k("dynamicActiveSecrets", "dynamic_active_secrets"): [
        {"name": "default", "secret": {"name": "default", k("tlsCertificate", "tls_certificate"): {
            k("certificateChain", "certificate_chain"): {k("inlineBytes", "inline_bytes"): b64(chain)},
            k("privateKey", "private_key"): {k("inlineString", "inline_string"): "[redacted]"}}}},
        {"name": "ROOTCA", "secret": {"name": "ROOTCA", k("validationContext", "validation_context"): {
            k("trustedCa", "trusted_ca"): {k("inlineBytes", "inline_bytes"): b64(root)}}}}]}]}
    end = "-----END CERTIFICATE-----\n"
    pem_list = lambda text: [{"pem": b64(b + end), "serialNumber": "1", "validFrom": when, "expirationTime": when}
                             for b in text.split(end) if b.strip()]
    zcert = {"identity": "spiffe://cluster.local/ns/shop/sa/web", "state": "Available",
             k("certChain", "cert_chain"): pem_list(chain), k("rootCerts", "root_certs"): pem_list(root)}
    ztunnel = [zcert] if snake else {"certificates": [zcert]}
    return [
        ("pods.json", lst("Pod", "v1", pods)),
        ("deployments.json", lst("Deployment", "apps/v1", [istiod])),
        ("configmaps.json", lst("ConfigMap", "v1", cms)),
        ("secret.json", secret),
        ("mutatingwebhookconfigurations.json", lst("MutatingWebhookConfiguration", "admissionregistration.k8s.io/v1",
                                                   [hook("MutatingWebhookConfiguration", "istio-sidecar-injector")])),
        ("validatingwebhookconfigurations.json", lst("ValidatingWebhookConfiguration", "admissionregistration.k8s.io/v1",
                                                     [hook("ValidatingWebhookConfiguration", "istio-validator")])),
        ("proxy-config/shop/web-0000.json", envoy),
        ("ztunnel-config/ztunnel-x1.json", ztunnel),
    ]

def pack(name, files):
    text = "".join(f"==> {p} <==\n{json.dumps(v, separators=(',', ':'))}\n" for p, v in files)
    (out / name).write_text(text)

pack("healthy-camel.dump", cluster(False))
pack("healthy-snake.dump", cluster(True))
pack("empty.dump", [(f, lst("List", "v1", [])) for f in [
    "pods.json", "deployments.json", "configmaps.json",
    "mutatingwebhookconfigurations.json", "validatingwebhookconfigurations.json"]])
PY

for t in "$c"/*; do
  echo "seeded $(basename "$t"): $(ls "$t" | wc -l) files, $(du -sk "$t" | cut -f1) KiB"
done
