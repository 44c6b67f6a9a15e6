//! Unsafe trees an operator can make (issue 11): each is built from a fresh render the way a
//! person would, with the real `sops` (`sops set`, which re-encrypts and re-computes the MAC)
//! or a text editor on a kustomization, and `verify offline` must exit 1 naming the gate.
//! `render --check` must see the same tampering, and a re-render must replace it.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;

use crate::common::*;
use crate::verify::{failures, message};

const DEMO_KEY: &str = "plans/demo.agekey";

fn render(plan: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = rootroll(&["render", plan, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    (dir, out)
}

/// `verify offline --format json` at `now` with the demo identity and `extra` arguments.
fn verify_at(now: &str, out: &Path, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut args = vec![
        "verify",
        "offline",
        out.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let o = rootroll_at(now, &args);
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("JSON report: {}{}", stdout(&o), stderr(&o)));
    (o.status.code(), v)
}

fn verify(out: &Path) -> (Option<i32>, serde_json::Value) {
    verify_at(NOW, out, &[])
}

fn phase_file(out: &Path, phase: &str) -> PathBuf {
    out.join(format!(
        "clusters/demo/istio-ca/phases/{phase}/cacerts.sops.yaml"
    ))
}

/// `sops set FILE PATH VALUE` with the real sops and the demo key, as an operator would.
fn sops_set(file: &Path, path: &str, value: &serde_json::Value) {
    must(
        Command::new("sops")
            .current_dir(root())
            .env("SOPS_AGE_KEY_FILE", DEMO_KEY)
            .args(["--disable-version-check", "set"])
            .arg(file)
            .arg(path)
            .arg(value.to_string()),
    );
}

/// Sets a Secret data value (raw bytes) with `sops set`.
fn set_data(file: &Path, key: &str, bytes: &[u8]) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    sops_set(file, &format!("[\"data\"][\"{key}\"]"), &b64.into());
}

/// A data value of a phase Secret, decrypted with the real sops.
fn get_data(file: &Path, key: &str) -> Vec<u8> {
    let out = must(
        Command::new("sops")
            .current_dir(root())
            .env("SOPS_AGE_KEY_FILE", DEMO_KEY)
            .args(["--disable-version-check", "decrypt", "--extract"])
            .arg(format!("[\"data\"][\"{key}\"]"))
            .arg(file),
    );
    base64::engine::general_purpose::STANDARD
        .decode(String::from_utf8(out).unwrap().trim())
        .unwrap()
}

/// The error-severity findings with `code` that ran and failed, by subject.
fn failed(v: &serde_json::Value, code: &str) -> Vec<String> {
    failures(v)
        .into_iter()
        .filter(|(c, _)| c == code)
        .map(|(_, s)| s)
        .collect()
}

#[test]
fn a_phase_4_that_still_trusts_root_a_fails_bundle_roots() {
    let (_d, out) = render("plans/demo.yaml");
    let ab = get_data(&phase_file(&out, "2-trust-both"), "root-cert.pem");
    set_data(&phase_file(&out, "4-finalize"), "root-cert.pem", &ab);
    let (code, v) = verify(&out);
    assert_eq!(code, Some(1));
    assert_eq!(failed(&v, "bundle-roots"), ["demo/4-finalize"]);
    let msg = message(&v, "bundle-roots");
    assert!(
        msg.contains("phase 4 root-cert.pem holds A, B; the rollout plans B"),
        "{msg}"
    );
    // The reload rule and the chain accept A+B after A+B+B: only the planned roots catch it.
    assert!(failed(&v, "reload-rule").is_empty(), "{:?}", failures(&v));
    assert!(
        failed(&v, "chain-to-bundle").is_empty(),
        "{:?}",
        failures(&v)
    );
}

#[test]
fn a_reordered_or_extended_bundle_fails_bundle_roots_under_the_set_rule_too() {
    let (_d, out) = render("plans/demo.yaml");
    let rj = out.join(".rootroll/rollout.json");
    let text = std::fs::read_to_string(&rj).unwrap().replace(
        "\"minIstioVersion\": \"1.24\"",
        "\"minIstioVersion\": \"1.30\"",
    );
    std::fs::write(&rj, text).unwrap();
    let f = phase_file(&out, "2-trust-both");
    let text = String::from_utf8(get_data(&f, "root-cert.pem")).unwrap();
    let second = text.match_indices("-----BEGIN").nth(1).unwrap().0;
    let ba = format!("{}{}", &text[second..], &text[..second]);
    set_data(&f, "root-cert.pem", ba.as_bytes());
    let (code, v) = verify(&out);
    assert_eq!(code, Some(1));
    assert_eq!(failed(&v, "bundle-roots"), ["demo/2-trust-both"]);
    assert!(
        message(&v, "bundle-roots").contains("holds B, A; the rollout plans A+B"),
        "{}",
        message(&v, "bundle-roots")
    );
    // Under the set rule only phase 1's bytes must be identical.
    assert!(failed(&v, "bundle-bytes").is_empty(), "{:?}", failures(&v));
}

/// The phase-3 kustomization, hand-edited to apply phase 2's directory.
fn point_phase_3_at_phase_2(out: &Path) -> PathBuf {
    let k = out.join("clusters/demo/istio-ca/phases/3-switch-issuer/kustomization.yaml");
    let text = std::fs::read_to_string(&k).unwrap();
    assert!(text.contains("  - \"cacerts.sops.yaml\""), "{text}");
    std::fs::write(
        &k,
        text.replace("  - \"cacerts.sops.yaml\"", "  - ../2-trust-both"),
    )
    .unwrap();
    k
}

#[test]
fn a_phase_kustomization_applying_another_phase_fails_kustomize_applies_phase() {
    let (_d, out) = render("plans/demo.yaml");
    point_phase_3_at_phase_2(&out);
    // What the engine builds is phase 2's Secret.
    let built = kustomize(&out.join("clusters/demo/istio-ca/phases/3-switch-issuer"));
    assert_eq!(built.len(), 1);
    assert_eq!(built[0]["metadata"]["labels"]["rootroll.dev/phase"], "2");
    let (code, v) = verify(&out);
    assert_eq!(code, Some(1));
    assert_eq!(
        failures(&v),
        [(
            "kustomize-applies-phase".to_string(),
            "demo/3-switch-issuer".to_string()
        )]
    );
    let msg = message(&v, "kustomize-applies-phase");
    assert!(
        msg.contains("applies clusters/demo/istio-ca/phases/2-trust-both/cacerts.sops.yaml, not this phase's Secret"),
        "{msg}"
    );
}

#[test]
fn kustomizations_that_leave_the_repo_or_rewrite_resources_are_refused() {
    let (d, out) = render("plans/demo.yaml");
    let k = out.join("clusters/demo/istio-ca/phases/1-initial/kustomization.yaml");
    let text = std::fs::read_to_string(&k).unwrap();
    std::fs::write(
        d.path().join("outside.yaml"),
        "apiVersion: v1\nkind: Secret\n",
    )
    .unwrap();
    for (edit, want) in [
        (
            text.replace("\"cacerts.sops.yaml\"", "../../../../../../outside.yaml"),
            "leaves the repository",
        ),
        (
            format!("{text}namePrefix: x-\n"),
            "uses `namePrefix`, which changes what is applied",
        ),
        (
            text.replace("\"cacerts.sops.yaml\"", "https://example.com/base"),
            "is remote",
        ),
        (
            format!("{text}  - ../2-trust-both/cacerts.sops.yaml\n"),
            "applies 2 documents",
        ),
    ] {
        std::fs::write(&k, &edit).unwrap();
        let (code, v) = verify(&out);
        assert_eq!(code, Some(1), "{edit}");
        assert_eq!(failed(&v, "kustomize-applies-phase"), ["demo/1-initial"]);
        let msg = message(&v, "kustomize-applies-phase");
        assert!(msg.contains(want), "{edit}: {msg}");
    }
}

/// The Rust build of every phase and pointer directory outputs what `kubectl kustomize`
/// outputs: the same documents, from the same files. (Argo CD trees need the KSOPS plugin,
/// which kubectl cannot run here; their generators are followed by the same code.)
#[test]
fn the_kustomize_build_agrees_with_kubectl_kustomize() {
    let check = |out: &Path, dir: &str| {
        let ours = rootroll::verify::offline::kustomize::build(out, dir).unwrap();
        let theirs = kustomize(&out.join(dir));
        assert_eq!(ours.len(), theirs.len(), "{dir}");
        for (a, b) in ours.iter().zip(&theirs) {
            let a: serde_json::Value = serde_saphyr::from_str(&a.document).unwrap();
            for field in [
                &["metadata", "name"][..],
                &["metadata", "labels"],
                &["data"],
                &["kind"],
            ] {
                let pick =
                    |v: &serde_json::Value| field.iter().fold(v.clone(), |v, k| v[*k].clone());
                assert_eq!(pick(&a), pick(b), "{dir}: {field:?}");
            }
        }
    };
    for plan in example_plans() {
        let text = std::fs::read_to_string(root().join(&plan)).unwrap();
        if text.contains("engine: argocd") {
            continue;
        }
        let (_d, out) = render(&plan);
        let rollout: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(".rootroll/rollout.json")).unwrap())
                .unwrap();
        for c in rollout["clusters"].as_array().unwrap() {
            let c = c["name"].as_str().unwrap();
            check(&out, &format!("clusters/{c}/istio-ca"));
            for p in ["1-initial", "2-trust-both", "3-switch-issuer", "4-finalize"] {
                check(&out, &format!("clusters/{c}/istio-ca/phases/{p}"));
            }
        }
    }
    let (_d, out) = render("plans/demo.yaml");
    point_phase_3_at_phase_2(&out);
    check(&out, "clusters/demo/istio-ca/phases/3-switch-issuer");
}

#[test]
fn phase_1_must_be_byte_identical_to_the_imported_root_cert() {
    // The import plan's golden tree, re-rendered in a copy (keys reused: fast).
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("import");
    must(
        Command::new("cp")
            .arg("-a")
            .arg(root().join("tests/fixtures/golden/import"))
            .arg(&out),
    );
    let o = rootroll(&[
        "render",
        "plans/import.yaml",
        "--out",
        out.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The digest the rollout records for phase 1 covers the imported file's exact bytes.
    let imported = std::fs::read(root().join("tests/fixtures/makefile/root-cert.pem")).unwrap();
    let rollout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(".rootroll/rollout.json")).unwrap())
            .unwrap();
    assert_eq!(
        rollout["phases"][1]["bundleSha256"],
        rootroll::pki::sha256_hex(&imported)
    );
    let (code, v) = verify(&out);
    assert_eq!(code, Some(0), "{:?}", failures(&v));
    // The same certificate, re-encoded with CRLF line ends: equal DER, other bytes.
    let f = out.join("clusters/cluster1/istio-ca/phases/1-initial/cacerts.sops.yaml");
    let crlf = String::from_utf8(imported.clone())
        .unwrap()
        .replace('\n', "\r\n");
    set_data(&f, "root-cert.pem", crlf.as_bytes());
    let (code, v) = verify(&out);
    assert_eq!(code, Some(1));
    assert_eq!(failed(&v, "bundle-bytes"), ["cluster1/1-initial"]);
    assert!(
        failed(&v, "bundle-roots").is_empty(),
        "same DER: {:?}",
        failures(&v)
    );
    let msg = message(&v, "bundle-bytes");
    assert!(
        msg.contains("phase 1 root-cert.pem bytes")
            && msg.contains("are not today's root-cert.pem"),
        "{msg}"
    );
}

/// The demo's new intermediate's NotAfter, from the rollout file.
pub(crate) fn new_intermediate_expiry(out: &Path) -> time::OffsetDateTime {
    let rollout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(".rootroll/rollout.json")).unwrap())
            .unwrap();
    let at = rollout["clusters"][0]["newIntermediate"]["notAfter"]
        .as_str()
        .unwrap();
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap()
}

#[test]
fn new_material_expiring_soon_after_the_rollout_fails_or_warns() {
    use time::format_description::well_known::Rfc3339;
    let (_d, out) = render("plans/demo.yaml");
    let expiry = new_intermediate_expiry(&out);
    // The demo's shortest rotation is 53 minutes: verify when the new intermediate expires
    // two days after it could end.
    let rollout = time::Duration::minutes(53);
    let now = (expiry - time::Duration::days(2) - rollout)
        .format(&Rfc3339)
        .unwrap();
    let (code, v) = verify_at(&now, &out, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(
        failed(&v, "validity-floor"),
        ["demo/3-switch-issuer", "demo/4-finalize"]
    );
    assert!(
        failed(&v, "validity-window").is_empty(),
        "{:?}",
        failures(&v)
    );
    let msg = message(&v, "validity-floor");
    let minute = expiry
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap();
    assert!(msg.contains(&format!("expires {minute}")), "{msg}");
    assert!(
        msg.contains("less than 30d after the earliest end"),
        "{msg}"
    );

    // Sixty days: a warning, which blocks only with --strict.
    let now = (expiry - time::Duration::days(60) - rollout)
        .format(&Rfc3339)
        .unwrap();
    let (code, v) = verify_at(&now, &out, &[]);
    assert_eq!(code, Some(0), "{:?}", failures(&v));
    let warned: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "validity-margin" && f["passed"] == false)
        .map(|f| f["severity"].as_str().unwrap())
        .collect();
    assert_eq!(warned, ["warning", "warning"]);
    let (code, _) = verify_at(&now, &out, &["--strict"]);
    assert_eq!(code, Some(1));
}

#[test]
fn a_second_root_with_root_a_subject_is_an_error() {
    let (d, out) = render("plans/demo.yaml");
    // A look-alike root with A's subject, made with openssl.
    let cert = d.path().join("lookalike.pem");
    must(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes",
                "-days",
                "3650",
                "-subj",
                "/O=Istio/CN=Root CA",
                "-keyout",
            ])
            .arg(d.path().join("lookalike.key"))
            .arg("-out")
            .arg(&cert),
    );
    let f = phase_file(&out, "2-trust-both");
    let mut bundle = std::fs::read(&cert).unwrap();
    bundle.extend_from_slice(&get_data(&f, "root-cert.pem"));
    set_data(&f, "root-cert.pem", &bundle);
    let (code, v) = verify(&out);
    assert_eq!(code, Some(1));
    assert_eq!(failed(&v, "root-subjects-distinct"), ["fleet/2-trust-both"]);
    let msg = message(&v, "root-subjects-distinct");
    assert!(
        msg.contains("phase 2 trusts different roots under one subject: O=Istio, CN=Root CA"),
        "{msg}"
    );
}

#[test]
fn a_stale_fingerprint_annotation_fails_annotations_match() {
    let (_d, out) = render("plans/demo.yaml");
    for key in ["public-sha256", "signer-sha256", "bundle-sha256"] {
        let (_d2, out2) = render("plans/demo.yaml");
        let f = phase_file(&out2, "2-trust-both");
        sops_set(
            &f,
            &format!("[\"metadata\"][\"annotations\"][\"rootroll.dev/{key}\"]"),
            &"0".repeat(64).into(),
        );
        let (code, v) = verify(&out2);
        assert_eq!(code, Some(1), "{key}");
        assert_eq!(
            failures(&v),
            [(
                "annotations-match".to_string(),
                "demo/2-trust-both".to_string()
            )],
            "{key}"
        );
        let msg = message(&v, "annotations-match");
        assert!(
            msg.contains(&format!("rootroll.dev/{key} does not match the content")),
            "{msg}"
        );
    }
    // A data edit leaves the annotations stale: public-sha256 and bundle-sha256 are caught.
    let ab = get_data(&phase_file(&out, "2-trust-both"), "root-cert.pem");
    set_data(&phase_file(&out, "4-finalize"), "root-cert.pem", &ab);
    let (_, v) = verify(&out);
    let msg = message(&v, "annotations-match");
    assert!(
        msg.contains("public-sha256 does not match")
            && msg.contains("bundle-sha256 does not match"),
        "{msg}"
    );
}

/// `render --check` of the demo into `out`, with the demo identity or none at all.
fn check(out: &Path, identity: bool) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rootroll"));
    cmd.current_dir(root())
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env("HOME", out)
        .env("XDG_CONFIG_HOME", out)
        .args(["--now", NOW, "render", "plans/demo.yaml", "--out"])
        .arg(out)
        .arg("--check");
    if identity {
        cmd.args(["--identity", DEMO_KEY]);
    }
    run(&mut cmd)
}

#[test]
fn render_check_sees_sops_edits_and_corrupted_ciphertext_and_a_re_render_replaces_them() {
    let (_d, out) = render("plans/demo.yaml");
    let o = check(&out, true);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(!stdout(&o).contains("not compared"), "{}", stdout(&o));
    let p4 = phase_file(&out, "4-finalize");
    let ab = get_data(&phase_file(&out, "2-trust-both"), "root-cert.pem");
    set_data(&p4, "root-cert.pem", &ab);
    // Corrupted ciphertext in phase 1: one base64 character of a value changed.
    let p1 = phase_file(&out, "1-initial");
    let text = std::fs::read_to_string(&p1).unwrap();
    let at = text.find("ca-key.pem: ENC[AES256_GCM,data:").unwrap() + 40;
    let c = if &text[at..=at] == "A" { "B" } else { "A" };
    std::fs::write(&p1, format!("{}{c}{}", &text[..at], &text[at + 1..])).unwrap();

    let o = check(&out, true);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    for f in [
        "phases/1-initial/cacerts.sops.yaml",
        "phases/4-finalize/cacerts.sops.yaml",
    ] {
        assert!(
            stdout(&o).contains(&format!("changed   clusters/demo/istio-ca/{f}")),
            "{}",
            stdout(&o)
        );
    }
    assert!(stdout(&o).contains("2 file(s)"), "{}", stdout(&o));

    // Without an identity the bundle edit is still seen (certificates are readable); the
    // corrupted key ciphertext cannot be, and is not claimed to be.
    let o = check(&out, false);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("changed   clusters/demo/istio-ca/phases/4-finalize/cacerts.sops.yaml"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("1-initial"), "{}", stdout(&o));

    // A re-render with the identity replaces both tampered files; the tree then passes.
    let o = rootroll(&[
        "render",
        "plans/demo.yaml",
        "--out",
        out.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("2 changed"), "{}", stdout(&o));
    assert_ne!(get_data(&p4, "root-cert.pem"), ab, "phase 4 holds B again");
    let (code, v) = verify(&out);
    assert_eq!(code, Some(0), "{:?}", failures(&v));
    assert_eq!(check(&out, true).status.code(), Some(0));
    // Without an identity, what could not be compared is said plainly, file by file.
    let o = check(&out, false);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o)
            .contains("not compared clusters/demo/istio-ca/phases/4-finalize/cacerts.sops.yaml"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("5 encrypted file(s) could not be compared"),
        "{}",
        stdout(&o)
    );
}
