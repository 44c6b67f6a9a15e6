//! Least privilege (issue 13): a phase Secret encrypts only its private key, so certificates
//! and bundles are readable in Git, and `verify offline` with no CA key at all runs every gate
//! that needs none, deciding the handshake matrix from the public probe leaves render wrote.
//! Everything here runs the real binary, the real `sops` and `git`, with no identity anywhere
//! in the environment unless a test gives one.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;

use crate::common::*;
use crate::verify::failures;

const DEMO_KEY: &str = "plans/demo.agekey";

fn render(plan: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = rootroll(&[
        "render",
        plan,
        "--out",
        out.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    (dir, out)
}

/// `verify offline` at `now` with no identity reachable: no key file, no SOPS_AGE_KEY, and a
/// home directory without `~/.config/sops/age/keys.txt`.
fn verify_keyless_at(now: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rootroll"));
    cmd.current_dir(root())
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .args(["--now", now, "verify", "offline"])
        .arg(out)
        .args(extra);
    let o = run(&mut cmd);
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    o
}

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("JSON report: {}{}", stdout(o), stderr(o)))
}

fn keyless(out: &Path) -> (Option<i32>, serde_json::Value) {
    let o = verify_keyless_at(NOW, out, &["--format", "json"]);
    (o.status.code(), json(&o))
}

/// The codes of findings that were not checked, and of those that failed.
fn not_checked(v: &serde_json::Value) -> std::collections::BTreeSet<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !f["not_checked"].is_null())
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

fn failed_codes(v: &serde_json::Value) -> std::collections::BTreeSet<String> {
    failures(v).into_iter().map(|(c, _)| c).collect()
}

fn failed(v: &serde_json::Value, code: &str) -> Vec<String> {
    failures(v)
        .into_iter()
        .filter(|(c, _)| c == code)
        .map(|(_, s)| s)
        .collect()
}

fn phase_file(out: &Path, phase: &str) -> PathBuf {
    out.join(format!(
        "clusters/demo/istio-ca/phases/{phase}/cacerts.sops.yaml"
    ))
}

/// `sops set` with the operator's key, as an operator edits a Secret before pushing.
fn sops_set(file: &Path, key: &str, bytes: &[u8]) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    must(
        Command::new("sops")
            .current_dir(root())
            .env("SOPS_AGE_KEY_FILE", DEMO_KEY)
            .args(["--disable-version-check", "set"])
            .arg(file)
            .arg(format!("[\"data\"][\"{key}\"]"))
            .arg(serde_json::Value::from(b64).to_string()),
    );
}

/// A data value read straight from the file, with no key: certificates are plaintext now.
fn plain_data(file: &Path, key: &str) -> Vec<u8> {
    let doc: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let v = doc["data"][key].as_str().unwrap();
    assert!(!v.starts_with("ENC["), "{key} is ciphertext");
    base64::engine::general_purpose::STANDARD.decode(v).unwrap()
}

#[test]
fn a_fresh_fleet_render_passes_without_any_identity_and_decides_the_matrix_from_probes() {
    let (_d, out) = render("plans/fleet.yaml");
    let o = verify_keyless_at(NOW, &out, &[]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{text}{}", stderr(&o));
    assert!(
        text.contains(
            "matrix: decided from probe certificates (no identity): trust decisions only, no proof of possession"
        ),
        "{text}"
    );
    assert!(text.contains("matrix 288 of 288 cells ok"), "{text}");

    let (code, v) = keyless(&out);
    assert_eq!(code, Some(0));
    assert_eq!(v["matrix_mode"], "probes");
    // The gates that need a key are not run, never counted as passed, and nothing else is.
    let skipped = not_checked(&v);
    assert_eq!(
        skipped.iter().map(String::as_str).collect::<Vec<_>>(),
        ["key-matches-cert", "sops-mac"]
    );
    for f in v["findings"].as_array().unwrap() {
        if skipped.contains(f["code"].as_str().unwrap()) {
            assert_eq!(f["passed"], false, "{f}");
            assert!(
                f["message"].as_str().unwrap().contains("no identity"),
                "{f}"
            );
        }
    }
    // Every probe stands for its Secret, every cell was judged.
    let probes = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "probe-chain" && f["passed"] == true)
        .count();
    assert_eq!(probes, 12);
    let cells = v["matrix"].as_array().unwrap();
    assert!(cells.iter().all(|c| c["status"] == "ok"), "{cells:?}");

    // --require-keys: the same run fails, naming exactly the gates that needed a key.
    let o = verify_keyless_at(NOW, &out, &["--require-keys", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(
        failed_codes(&v).into_iter().collect::<Vec<_>>(),
        ["key-matches-cert", "sops-mac"]
    );
    assert!(
        failures(&v).len() == 24,
        "one failure per phase and gate: {:?}",
        failures(&v)
    );
    let o = verify_keyless_at(NOW, &out, &["--require-keys"]);
    assert!(
        stdout(&o).contains("not run: no identity, and --require-keys needs"),
        "{}",
        stdout(&o)
    );

    // With the operator's key: full handshakes, every gate checked.
    let o = rootroll(&[
        "verify",
        "offline",
        out.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
        "--require-keys",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["matrix_mode"], "handshakes");
    assert!(not_checked(&v).is_empty(), "{:?}", not_checked(&v));
}

#[test]
fn the_key_free_gates_fail_on_unsafe_edits() {
    // Phase 4 still trusts root A (an operator's `sops set`, seen by a key-free CI run).
    let (_d, out) = render("plans/demo.yaml");
    let ab = plain_data(&phase_file(&out, "2-trust-both"), "root-cert.pem");
    sops_set(&phase_file(&out, "4-finalize"), "root-cert.pem", &ab);
    let (code, v) = keyless(&out);
    assert_eq!(code, Some(1));
    assert_eq!(failed(&v, "bundle-roots"), ["demo/4-finalize"]);
    // The probe was issued for the planned bundle: it no longer stands for this Secret, and
    // the cells that need it are not judged on it.
    assert_eq!(failed(&v, "probe-chain"), ["demo/4-finalize"]);

    // A kustomization applying another phase.
    let (_d, out) = render("plans/demo.yaml");
    let k = out.join("clusters/demo/istio-ca/phases/3-switch-issuer/kustomization.yaml");
    let text = std::fs::read_to_string(&k).unwrap();
    assert!(text.contains("  - \"cacerts.sops.yaml\""), "{text}");
    std::fs::write(
        &k,
        text.replace("  - \"cacerts.sops.yaml\"", "  - ../2-trust-both"),
    )
    .unwrap();
    let (code, v) = keyless(&out);
    assert_eq!(code, Some(1));
    assert_eq!(
        failed(&v, "kustomize-applies-phase"),
        ["demo/3-switch-issuer"]
    );

    // The new intermediate expires two days after the earliest end of the rollout.
    let (_d, out) = render("plans/demo.yaml");
    let rollout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(".rootroll/rollout.json")).unwrap())
            .unwrap();
    let rfc = time::format_description::well_known::Rfc3339;
    let expiry = time::OffsetDateTime::parse(
        rollout["clusters"][0]["newIntermediate"]["notAfter"]
            .as_str()
            .unwrap(),
        &rfc,
    )
    .unwrap();
    let now = (expiry - time::Duration::days(2) - time::Duration::minutes(53))
        .format(&rfc)
        .unwrap();
    let o = verify_keyless_at(&now, &out, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        failed(&json(&o), "validity-floor"),
        ["demo/3-switch-issuer", "demo/4-finalize"]
    );

    // The key rule edited after encryption: sops would refuse the file; seen without a key.
    let (_d, out) = render("plans/demo.yaml");
    let f = phase_file(&out, "1-initial");
    let text = std::fs::read_to_string(&f).unwrap();
    let rule = "encrypted_regex: ^(ca-key\\.pem|tls\\.key)$";
    assert!(text.contains(rule), "{text}");
    std::fs::write(&f, text.replace(rule, "encrypted_regex: ^nothing$")).unwrap();
    let (code, v) = keyless(&out);
    assert_eq!(code, Some(1));
    assert_eq!(failed(&v, "sops-mac"), ["demo/1-initial"]);

    // A private key left readable (decrypted into the file).
    let (_d, out) = render("plans/demo.yaml");
    let f = phase_file(&out, "1-initial");
    let key = must(
        Command::new("sops")
            .current_dir(root())
            .env("SOPS_AGE_KEY_FILE", DEMO_KEY)
            .args(["--disable-version-check", "decrypt", "--extract"])
            .arg("[\"data\"][\"ca-key.pem\"]")
            .arg(&f),
    );
    let key = String::from_utf8(key).unwrap();
    let text = std::fs::read_to_string(&f).unwrap();
    let at = text.find("    ca-key.pem: ").unwrap();
    let end = at + text[at..].find('\n').unwrap();
    let leaked = format!(
        "{}    ca-key.pem: {}{}",
        &text[..at],
        key.trim(),
        &text[end..]
    );
    std::fs::write(&f, leaked).unwrap();
    let (code, v) = keyless(&out);
    assert_eq!(code, Some(1));
    // The scan finds the key; the file is no longer what sops can read.
    assert_eq!(failed(&v, "no-plaintext-private-key"), ["fleet"]);
    assert_eq!(failed(&v, "sops-mac"), ["demo/1-initial"]);
    let msg = crate::verify::message(&v, "sops-mac");
    assert!(
        msg.contains("`data:ca-key.pem`") && msg.contains("should be encrypted"),
        "{msg}"
    );
    assert!(!msg.contains(key.trim()), "the key is never quoted");
}

#[test]
fn a_probe_that_does_not_stand_for_its_secret_fails_and_its_cells_are_not_checked() {
    let (_d, out) = render("plans/demo.yaml");
    let probe = |p: &str| out.join(format!("clusters/demo/istio-ca/phases/{p}/probe.pem"));
    // Phase 3's probe replaced by phase 2's: signed by A's intermediate, with A's chain.
    std::fs::copy(probe("2-trust-both"), probe("3-switch-issuer")).unwrap();
    let (code, v) = keyless(&out);
    assert_eq!(code, Some(1));
    assert_eq!(failed(&v, "probe-chain"), ["demo/3-switch-issuer"]);
    let cells = v["matrix"].as_array().unwrap();
    let uses_3 = |c: &serde_json::Value| c["clientLeafPhase"] == 3 || c["serverLeafPhase"] == 3;
    assert!(
        cells
            .iter()
            .filter(|c| uses_3(c))
            .all(|c| c["status"] == "not-checked")
    );
    assert!(
        cells
            .iter()
            .filter(|c| !uses_3(c))
            .all(|c| c["status"] == "ok")
    );

    // A missing probe fails the same gate; a re-render with the key writes it again.
    std::fs::remove_file(probe("3-switch-issuer")).unwrap();
    let (code, v) = keyless(&out);
    assert_eq!(code, Some(1));
    let msg = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "probe-chain" && f["passed"] == false)
        .map(|f| f["message"].as_str().unwrap().to_string())
        .unwrap();
    assert!(msg.contains("it is missing"), "{msg}");
    let o = rootroll(&[
        "render",
        "plans/demo.yaml",
        "--out",
        out.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(keyless(&out).0, Some(0));
    // Probes are public: no private key in them, and a re-render keeps them byte for byte.
    let before = std::fs::read(probe("4-finalize")).unwrap();
    assert!(!String::from_utf8_lossy(&before).contains("PRIVATE KEY"));
    let o = rootroll(&[
        "render",
        "plans/demo.yaml",
        "--out",
        out.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
    ]);
    assert!(stdout(&o).contains("is up to date"), "{}", stdout(&o));
    assert_eq!(std::fs::read(probe("4-finalize")).unwrap(), before);
    // Probes are applied by no kustomization: kustomize builds only the Secret.
    let built = must(
        Command::new("kubectl")
            .args(["kustomize"])
            .arg(out.join("clusters/demo/istio-ca/phases/3-switch-issuer")),
    );
    assert!(!String::from_utf8_lossy(&built).contains("BEGIN CERTIFICATE"));
}

#[test]
fn a_pull_request_diff_of_a_phase_change_shows_certificates_and_no_private_material() {
    let work = tempfile::tempdir().unwrap();
    let plan = work.path().join("demo.yaml");
    let text = std::fs::read_to_string(root().join("plans/demo.yaml")).unwrap();
    std::fs::write(&plan, &text).unwrap();
    let out = work.path().join("out");
    let render = || {
        let o = rootroll(&[
            "render",
            plan.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--identity",
            DEMO_KEY,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    render();
    let git = |args: &[&str]| {
        must(
            Command::new("git")
                .current_dir(&out)
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "-c",
                    "commit.gpgsign=false",
                ])
                .args(args),
        )
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "render"]);
    // The new intermediate is re-issued (shorter validity): phases 3 and 4 change.
    let changed = text.replacen(
        "        new:\n          generate: {algorithm: ecdsa-p256, validity: 1825d}",
        "        new:\n          generate: {algorithm: ecdsa-p256, validity: 1500d}",
        1,
    );
    assert_ne!(changed, text);
    std::fs::write(&plan, changed).unwrap();
    render();
    let diff = String::from_utf8(git(&["diff", "--no-color", "-U0"])).unwrap();
    assert!(
        diff.contains("phases/3-switch-issuer/cacerts.sops.yaml"),
        "{diff}"
    );
    // A reviewer sees the certificate values change...
    let cert_b64 = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"; // "-----BEGIN CERTIFICATE-----"
    for sign in ["-", "+"] {
        assert!(
            diff.lines()
                .any(|l| l.starts_with(&format!("{sign}    ca-cert.pem: {cert_b64}"))),
            "{diff}"
        );
    }
    // ... and no private material: keys only as sops ciphertext.
    assert!(!diff.contains("PRIVATE KEY"), "{diff}");
    for needle in ["UFJJVkFURSBLRVk", "BSSVZBVEUgS0VZ", "QUklWQVRFIEtFW"] {
        assert!(!diff.contains(needle), "base64 of a private key in {diff}");
    }
    for l in diff.lines().filter(|l| l.contains("ca-key.pem:")) {
        assert!(l.contains("ca-key.pem: ENC[AES256_GCM,data:"), "{l}");
    }
}

#[test]
fn real_sops_reads_the_mixed_file_and_we_read_what_sops_writes() {
    let (_d, out) = render("plans/demo.yaml");
    let f = phase_file(&out, "3-switch-issuer");
    // sops decrypts our file (MAC over every value, plaintext certificates included).
    let plain = must(
        Command::new("sops")
            .env("SOPS_AGE_KEY_FILE", root().join(DEMO_KEY))
            .args(["--disable-version-check", "decrypt"])
            .arg(&f),
    );
    let doc: serde_json::Value = serde_saphyr::from_slice(&plain).unwrap();
    let key = base64::engine::general_purpose::STANDARD
        .decode(doc["data"]["ca-key.pem"].as_str().unwrap())
        .unwrap();
    assert!(String::from_utf8(key).unwrap().contains("PRIVATE KEY"));
    assert_eq!(
        doc["data"]["ca-cert.pem"],
        serde_saphyr::from_str::<serde_json::Value>(&std::fs::read_to_string(&f).unwrap()).unwrap()
            ["data"]["ca-cert.pem"]
    );

    // `sops edit` re-encrypts with the file's rule: the key stays ciphertext, and we read it.
    let editor = out.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/phase-name: switch-issuer/phase-name: edited/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    must(
        Command::new("sops")
            .env("SOPS_AGE_KEY_FILE", root().join(DEMO_KEY))
            .env("EDITOR", &editor)
            .args(["--disable-version-check", "edit"])
            .arg(&f),
    );
    let edited = std::fs::read_to_string(&f).unwrap();
    assert!(edited.contains("phase-name: edited"), "{edited}");
    assert!(
        edited.contains("    ca-key.pem: ENC[AES256_GCM,"),
        "{edited}"
    );
    assert!(edited.contains("    ca-cert.pem: LS0t"), "{edited}");
    let ids = rootroll::sops::load_identities(&[root().join(DEMO_KEY)], &|_| None).unwrap();
    let ours = rootroll::sops::decrypt_yaml("f", &edited, &ids).unwrap();
    assert!(
        ours.contains("phase-name: edited"),
        "sops' MAC verified by us"
    );

    // sops encrypts a Secret with the same rule; we decrypt it and read its public part.
    let id: age::x25519::Identity = std::fs::read_to_string(root().join(DEMO_KEY))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .parse()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("s.yaml");
    std::fs::write(
        &src,
        "apiVersion: v1\nkind: Secret\nmetadata:\n    name: x\ndata:\n    ca-cert.pem: Y2VydA==\n    ca-key.pem: a2V5\n",
    )
    .unwrap();
    let enc = must(
        Command::new("sops")
            .args(["--disable-version-check", "encrypt", "--encrypted-regex"])
            .arg(rootroll::sops::PRIVATE_KEYS_REGEX)
            .args(["--age", &id.to_public().to_string()])
            .arg(&src),
    );
    let enc = String::from_utf8(enc).unwrap();
    assert!(enc.contains("ca-cert.pem: Y2VydA=="), "{enc}");
    let ours = rootroll::sops::decrypt_yaml("s.yaml", &enc, std::slice::from_ref(&id)).unwrap();
    assert!(ours.contains("ca-key.pem: a2V5"), "{}", ours.as_str());
    let public = rootroll::sops::public_document("s.yaml", &enc).unwrap();
    assert_eq!(public.withheld, ["data:ca-key.pem"]);
    assert!(public.yaml.contains("ca-cert.pem: Y2VydA=="));
    // A tampered certificate breaks sops' MAC for us too.
    let tampered = enc.replace("Y2VydA==", "b3RoZXI=");
    assert!(rootroll::sops::decrypt_yaml("s.yaml", &tampered, &[id]).is_err());
}
