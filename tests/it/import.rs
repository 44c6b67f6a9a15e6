//! Import of CA material made by the tests themselves with openssl, following Istio's
//! Makefile (tests/fixtures/make-istio-certs.sh), including two roots with the same subject.

use std::process::Command;

use crate::common::*;

fn make(dir: &std::path::Path, clusters: &[&str]) {
    let mut cmd = Command::new(root().join("tests/fixtures/make-istio-certs.sh"));
    cmd.env("KEYSZ", "2048").arg(dir).args(clusters);
    must(&mut cmd);
}

fn plan(current_root: &str, cluster_dir: &str, new_root: &str) -> String {
    format!(
        "apiVersion: rootroll.dev/v1alpha1
kind: RotationPlan
metadata: {{name: imported}}
spec:
  roots:
    current: {{import: {{dir: {current_root}}}}}
    new: {new_root}
  clusters:
    - name: east
      intermediates:
        current: {{import: {{dir: {cluster_dir}}}}}
        new: {{generate: {{algorithm: ecdsa-p256}}}}
"
    )
}

#[test]
fn makefile_output_imports_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    make(&dir.path().join("a"), &["east"]);
    let p = dir.path().join("plan.yaml");
    std::fs::write(
        &p,
        plan(
            "a",
            "a/east",
            "{generate: {subject: {commonName: Root CA B}}}",
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = rootroll(&[
        "render",
        p.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--insecure-plaintext",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let data = secret_data(&kustomize(&out.join("clusters/east/istio-ca/phases/1-initial"))[0]);
    assert_eq!(
        data["root-cert.pem"],
        std::fs::read(dir.path().join("a/root-cert.pem")).unwrap()
    );
    assert_eq!(
        data["ca-key.pem"],
        std::fs::read(dir.path().join("a/east/ca-key.pem")).unwrap()
    );
}

#[test]
fn two_makefile_roots_share_a_subject_and_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    make(&dir.path().join("a"), &["east"]);
    make(&dir.path().join("b"), &["east"]);
    // Root B imported with the same subject as A: refused.
    let p = dir.path().join("same.yaml");
    std::fs::write(&p, plan("a", "a/east", "{import: {dir: b}}")).unwrap();
    let o = rootroll(&["plan", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("error[root-subject-reused]"),
        "{}",
        stderr(&o)
    );
    // B's intermediate under A's root: same issuer name, wrong signature.
    let p = dir.path().join("wrong.yaml");
    std::fs::write(
        &p,
        plan(
            "a",
            "b/east",
            "{generate: {subject: {commonName: Root CA B}}}",
        ),
    )
    .unwrap();
    let o = rootroll(&["plan", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("error[import-not-signed-by-root]"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn tls_layout_imports() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("plan.yaml");
    let fixtures = root().join("tests/fixtures/tls/east");
    let text = plan(
        fixtures.to_str().unwrap(),
        fixtures.to_str().unwrap(),
        "{generate: {subject: {commonName: Root CA B}}}",
    )
    .replace(
        "spec:\n",
        "spec:\n  mesh: {secretFormat: kubernetes.io/tls}\n",
    );
    std::fs::write(&p, text).unwrap();
    let out = dir.path().join("out");
    let o = rootroll(&[
        "render",
        p.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--insecure-plaintext",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let data = secret_data(&kustomize(&out.join("clusters/east/istio-ca/phases/1-initial"))[0]);
    assert_eq!(
        data["tls.crt"],
        std::fs::read(fixtures.join("tls.crt")).unwrap()
    );
    assert_eq!(
        data["ca.crt"],
        std::fs::read(fixtures.join("ca.crt")).unwrap()
    );
}

#[test]
fn init_scaffolds_a_plan_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yaml");
    let src = root().join("tests/fixtures/makefile");
    let o = rootroll(&[
        "init",
        "--from-dir",
        src.to_str().unwrap(),
        "--output",
        plan.to_str().unwrap(),
        "--name",
        "prod",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2 cluster(s) (cluster1, cluster2)"),
        "{}",
        stderr(&o)
    );
    let o = rootroll(&["plan", plan.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("L=cluster2"));
    let out = dir.path().join("out");
    let o = rootroll(&[
        "render",
        plan.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--insecure-plaintext",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}
