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

/// Directory names a YAML writer by string concatenation gets wrong: `: ` and `#` (a mapping,
/// a comment), quotes, YAML indicators and keywords, leading and trailing spaces, unicode.
const NAME_PARTS: &[&str] = &[
    "my certs: prod #1",
    "#start",
    "a#b",
    "key: value",
    "quote\"d",
    "single'q",
    "back\\slash",
    " leading",
    "trailing ",
    "ünïcödé",
    "日本語",
    "rocket 🚀",
    "- dash",
    "? question",
    "[list]",
    "{map}",
    "*alias",
    "&anchor",
    "!tag",
    "%percent",
    "@at",
    "`tick`",
    "yes",
    "null",
    "~",
    "1.22",
    "0x1F",
    "{{ jinja }}",
    "<html>&amp;",
    "|",
    ">",
    "---",
];

/// Issue 16.5, as a property: for generated directory names (each part alone, then seeded
/// random joins of two or three), `init --from-dir` writes a plan whose import paths are the
/// exact directory name, and `plan` accepts it.
#[test]
fn init_round_trips_any_directory_name_through_plan() {
    let src = root().join("tests/fixtures/makefile/cluster1");
    let mut names: Vec<String> = NAME_PARTS.iter().map(|s| s.to_string()).collect();
    let mut seed: u64 = 0x5eed_1234_abcd_ef01;
    let mut next = |n: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize % n
    };
    for _ in 0..24 {
        let parts = 2 + next(2);
        let seps = [" ", ": ", " #", "", "'", "\""];
        let mut name = String::new();
        for i in 0..parts {
            if i > 0 {
                name.push_str(seps[next(seps.len())]);
            }
            name.push_str(NAME_PARTS[next(NAME_PARTS.len())]);
        }
        names.push(name);
    }
    for name in names {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join(&name);
        std::fs::create_dir(&certs).unwrap_or_else(|e| panic!("{name:?}: {e}"));
        for f in [
            "ca-cert.pem",
            "ca-key.pem",
            "cert-chain.pem",
            "root-cert.pem",
        ] {
            std::fs::copy(src.join(f), certs.join(f)).unwrap();
        }
        let plan = dir.path().join("plan.yaml");
        let o = rootroll(&[
            "init",
            "--from-dir",
            certs.to_str().unwrap(),
            "--output",
            plan.to_str().unwrap(),
            "--name",
            "rt",
        ]);
        assert!(o.status.success(), "{name:?}: {}", stderr(&o));
        let text = std::fs::read_to_string(&plan).unwrap();
        let v: serde_json::Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("{name:?}: the plan is not YAML: {e}\n{text}"));
        assert_eq!(
            v["spec"]["roots"]["current"]["import"]["dir"], name,
            "{name:?}:\n{text}"
        );
        assert_eq!(
            v["spec"]["clusters"][0]["intermediates"]["current"]["import"]["dir"], name,
            "{name:?}:\n{text}"
        );
        let o = rootroll(&["plan", plan.to_str().unwrap()]);
        assert!(o.status.success(), "{name:?}: {}\n{text}", stderr(&o));
    }
}

/// A directory name with a line break (or another control character) cannot be written into
/// a plan exactly: refused, naming it, and nothing is written.
#[test]
fn init_refuses_a_directory_name_with_a_line_break() {
    let src = root().join("tests/fixtures/makefile/cluster1");
    for name in ["two\nlines", "carriage\rreturn", "tab\there", "bell\u{7}"] {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join(name);
        std::fs::create_dir(&certs).unwrap();
        for f in [
            "ca-cert.pem",
            "ca-key.pem",
            "cert-chain.pem",
            "root-cert.pem",
        ] {
            std::fs::copy(src.join(f), certs.join(f)).unwrap();
        }
        let plan = dir.path().join("plan.yaml");
        let o = rootroll(&[
            "init",
            "--from-dir",
            certs.to_str().unwrap(),
            "--output",
            plan.to_str().unwrap(),
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name:?}: {err}");
        assert!(
            err.contains("holds a line break or another control character")
                && err.contains(&name.escape_debug().to_string()),
            "{name:?}: {err}"
        );
        assert!(!plan.exists(), "{name:?}: a plan was written");
    }
}

/// Issue 18: `init --from-dir` validates what it imports with `plan`'s own checks and codes,
/// and writes nothing when they fail.
#[test]
fn init_refuses_garbage_with_the_codes_plan_reports_and_writes_nothing() {
    let src = root().join("tests/fixtures/makefile/cluster1");
    type Break = fn(&std::path::Path);
    let cases: [(&str, Break, &str); 5] = [
        (
            "garbage root",
            |d| std::fs::write(d.join("root-cert.pem"), "garbage\n").unwrap(),
            "error[import-unreadable]: roots.current:",
        ),
        (
            "key is a certificate",
            |d| {
                std::fs::copy(d.join("ca-cert.pem"), d.join("ca-key.pem"))
                    .map(drop)
                    .unwrap()
            },
            "ca-key.pem holds a `CERTIFICATE` PEM block, not a private key",
        ),
        (
            "key of another CA",
            |d| {
                let other = root().join("tests/fixtures/makefile/cluster2/ca-key.pem");
                std::fs::copy(other, d.join("ca-key.pem"))
                    .map(drop)
                    .unwrap()
            },
            "error[import-key-mismatch]",
        ),
        (
            "intermediate of another root",
            |d| {
                // Same subject (O=Istio, CN=Root CA), another key.
                let other = root().join("tests/fixtures/bad/other-root/root-cert.pem");
                std::fs::copy(other, d.join("root-cert.pem"))
                    .map(drop)
                    .unwrap()
            },
            "error[import-not-signed-by-root]",
        ),
        (
            "a CRL in cacerts (istiod 1.27+ serves it, ztunnel 1.30+ enforces it)",
            |d| {
                let crl = root().join("tests/fixtures/bad/with-crl/ca-crl.pem");
                std::fs::copy(crl, d.join("ca-crl.pem")).map(drop).unwrap()
            },
            "ca-crl.pem is a certificate revocation list",
        ),
    ];
    for (what, break_it, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        for f in [
            "ca-cert.pem",
            "ca-key.pem",
            "cert-chain.pem",
            "root-cert.pem",
        ] {
            std::fs::copy(src.join(f), certs.join(f)).unwrap();
        }
        break_it(&certs);
        let plan = dir.path().join("plan.yaml");
        let o = rootroll(&[
            "init",
            "--from-dir",
            certs.to_str().unwrap(),
            "--output",
            plan.to_str().unwrap(),
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(want), "{what}: {err}");
        assert!(
            err.contains(&format!(
                "error: {} has 1 problem(s); nothing was written",
                certs.display()
            )),
            "{what}: {err}"
        );
        assert!(
            !err.contains("PRIVATE KEY-----"),
            "{what}: a key reached stderr"
        );
        assert!(!plan.exists(), "{what}: a plan was written");
        // `plan` reports the same problem, with the same code, for the same files.
        std::fs::write(
            &plan,
            "apiVersion: rootroll.dev/v1alpha1\nkind: RotationPlan\nmetadata: {name: x}\nspec:\n  roots:\n    current: {import: {dir: certs}}\n    new: {generate: {subject: {commonName: Root CA B}}}\n  clusters:\n    - name: east\n      intermediates:\n        current: {import: {dir: certs}}\n        new: {generate: {}}\n",
        )
        .unwrap();
        let o = rootroll(&["plan", plan.to_str().unwrap()]);
        assert!(
            stderr(&o).contains(want),
            "{what}: plan says {}",
            stderr(&o)
        );
    }
}
