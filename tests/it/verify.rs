//! `verify offline`: the rendered example plans pass every gate; each deliberately broken
//! tree (edited the way a bad hand-edit or a bug would, re-encrypted so only the intended
//! gate is at fault) fails with the right code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::common::*;

const DEMO_KEY: &str = "plans/demo.agekey";

pub(crate) fn identity() -> age::x25519::Identity {
    let text = std::fs::read_to_string(root().join(DEMO_KEY)).unwrap();
    text.lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .parse()
        .unwrap()
}

fn render(plan: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = rootroll(&["render", plan, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    (dir, out)
}

fn verify(out: &Path, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
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
    let o = rootroll(&args);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("JSON report: {}{}", stdout(&o), stderr(&o)));
    (o.status.code(), v, stderr(&o))
}

/// Codes of failed error-severity findings, with their subjects (not-checked ones are no
/// failures: their root cause is).
pub(crate) fn failures(v: &serde_json::Value) -> Vec<(String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["passed"] == false && f["severity"] == "error" && f["not_checked"].is_null())
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The message of the first failed finding with `code`.
pub(crate) fn message(v: &serde_json::Value, code: &str) -> String {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code && f["passed"] == false)
        .unwrap_or_else(|| panic!("no failed {code}: {v}"))["message"]
        .as_str()
        .unwrap()
        .to_string()
}

pub(crate) fn phase_file(out: &Path, cluster: &str, phase: &str) -> PathBuf {
    out.join(format!(
        "clusters/{cluster}/istio-ca/phases/{phase}/cacerts.sops.yaml"
    ))
}

/// The decoded data of a phase Secret.
fn read_phase(out: &Path, cluster: &str, phase: &str) -> BTreeMap<String, Vec<u8>> {
    let text = std::fs::read_to_string(phase_file(out, cluster, phase)).unwrap();
    let plain = rootroll::sops::decrypt_yaml("t", &text, &[identity()]).unwrap();
    secret_data(&serde_saphyr::from_str(&plain).unwrap())
}

/// Decrypts a phase Secret, lets `edit` change its decoded data, re-encrypts it (valid MAC).
pub(crate) fn edit(file: &Path, edit: impl FnOnce(&mut BTreeMap<String, Vec<u8>>)) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = std::fs::read_to_string(file).unwrap();
    let plain = rootroll::sops::decrypt_yaml("t", &text, &[identity()]).unwrap();
    let doc: serde_json::Value = serde_saphyr::from_str(&plain).unwrap();
    let mut data = secret_data(&doc);
    edit(&mut data);
    let mut y = String::new();
    for line in plain.lines() {
        if line.starts_with("data:") {
            break;
        }
        y.push_str(line);
        y.push('\n');
    }
    y.push_str("data:\n");
    for (k, v) in &data {
        y.push_str(&format!("    {k}: {}\n", b64.encode(v)));
    }
    let recipient: age::x25519::Recipient = identity().to_public();
    let sealed =
        rootroll::sops::encrypt_yaml("t", &y, &[recipient], time::OffsetDateTime::now_utc())
            .unwrap();
    std::fs::write(file, sealed).unwrap();
}

pub(crate) fn set_pointer(out: &Path, cluster: &str, phase: &str) {
    let p = out.join(format!("clusters/{cluster}/istio-ca/kustomization.yaml"));
    let text = std::fs::read_to_string(&p).unwrap();
    let start = text.find("phases/").unwrap();
    let end = start + text[start..].find(['"', '\n']).unwrap();
    std::fs::write(
        &p,
        format!("{}phases/{phase}{}", &text[..start], &text[end..]),
    )
    .unwrap();
}

#[test]
fn example_plans_pass_every_gate() {
    for plan in example_plans() {
        let (_d, out) = render(&plan);
        let (code, v, err) = verify(&out, &[]);
        assert_eq!(
            failures(&v),
            Vec::<(String, String)>::new(),
            "{plan}: {err}"
        );
        assert_eq!(code, Some(0), "{plan}");
        let codes: std::collections::BTreeSet<&str> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap())
            .collect();
        for want in [
            "secret-shape",
            "key-matches-cert",
            "signer-is-ca",
            "chain-to-bundle",
            "reload-rule",
            "phase3-bytes-differ",
            "validity-window",
            "bundle-shared",
            "lockstep",
            "no-plaintext-private-key",
            "sops-mac",
            "signer-sequence",
            "bundle-roots",
            "bundle-bytes",
            "annotations-match",
            "kustomize-applies-phase",
            "validity-floor",
            "validity-margin",
            "root-subjects-distinct",
            "pointer-valid",
            "clusters-present",
        ] {
            assert!(codes.contains(want), "{plan}: gate {want} did not run");
        }
    }
}

#[test]
fn dropping_root_a_from_phase_2_fails_reload_and_chain() {
    let (_d, out) = render("plans/demo.yaml");
    edit(&phase_file(&out, "demo", "2-trust-both"), |d| {
        let bundle = d["root-cert.pem"].clone();
        let text = String::from_utf8(bundle).unwrap();
        let second = text.match_indices("-----BEGIN").nth(1).unwrap().0;
        d.insert("root-cert.pem".into(), text.as_bytes()[second..].to_vec());
    });
    let (code, v, _) = verify(&out, &[]);
    assert_eq!(code, Some(1));
    let f = failures(&v);
    assert!(
        f.contains(&("reload-rule".into(), "demo/1-initial→2-trust-both".into())),
        "{f:?}"
    );
    assert!(
        f.contains(&("chain-to-bundle".into(), "demo/2-trust-both".into())),
        "{f:?}"
    );
    // Workloads still holding A's leaves meet peers that trust only B.
    assert!(
        f.contains(&(
            "handshake-matrix".into(),
            "demo/1-initial→2-trust-both".into()
        )),
        "{f:?}"
    );
    let matrix = v["matrix"].as_array().unwrap();
    let failing: Vec<&serde_json::Value> = matrix.iter().filter(|c| c["ok"] == false).collect();
    assert!(!failing.is_empty());
    for c in &failing {
        let reason = c["reason"].as_str().unwrap();
        assert!(reason.contains("rejected"), "{reason}");
    }
}

#[test]
fn reordered_bundle_breaks_the_byte_rule_but_not_the_set_rule() {
    let (_d, out) = render("plans/demo.yaml");
    edit(&phase_file(&out, "demo", "2-trust-both"), |d| {
        let text = String::from_utf8(d["root-cert.pem"].clone()).unwrap();
        let second = text.match_indices("-----BEGIN").nth(1).unwrap().0;
        let reordered = format!("{}{}", &text[second..], &text[..second]);
        d.insert("root-cert.pem".into(), reordered.into_bytes());
    });
    let (code, v, _) = verify(&out, &[]);
    assert_eq!(code, Some(1));
    assert!(
        failures(&v).contains(&(
            "reload-rule".into(),
            "demo/2-trust-both→3-switch-issuer".into()
        )),
        "{:?}",
        failures(&v)
    );
    // Istio 1.30+ compares DER sets, where order does not matter.
    let rj = out.join(".rootroll/rollout.json");
    let text = std::fs::read_to_string(&rj).unwrap().replace(
        "\"minIstioVersion\": \"1.24\"",
        "\"minIstioVersion\": \"1.30\"",
    );
    std::fs::write(&rj, text).unwrap();
    let (_, v, _) = verify(&out, &[]);
    assert!(
        !failures(&v).iter().any(|(c, _)| c == "reload-rule"),
        "{:?}",
        failures(&v)
    );
}

#[test]
fn phase_3_bytes_equal_to_phase_2_fail() {
    let (_d, out) = render("plans/demo.yaml");
    let bundle = read_phase(&out, "demo", "2-trust-both")["root-cert.pem"].clone();
    edit(&phase_file(&out, "demo", "3-switch-issuer"), |d| {
        d.insert("root-cert.pem".into(), bundle);
    });
    let (code, v, _) = verify(&out, &[]);
    assert_eq!(code, Some(1));
    // Phase 3 then holds A+B instead of the planned A+B+B, its annotations are stale and its
    // probe (issued with the planned bundle) no longer stands for it.
    assert_eq!(
        failures(&v),
        vec![
            (
                "probe-chain".to_string(),
                "demo/3-switch-issuer".to_string()
            ),
            (
                "bundle-roots".to_string(),
                "demo/3-switch-issuer".to_string()
            ),
            (
                "bundle-bytes".to_string(),
                "demo/3-switch-issuer".to_string()
            ),
            (
                "annotations-match".to_string(),
                "demo/3-switch-issuer".to_string()
            ),
            (
                "phase3-bytes-differ".to_string(),
                "demo/2-trust-both→3-switch-issuer".to_string()
            )
        ]
    );
    let msg = message(&v, "phase3-bytes-differ");
    assert!(
        msg.contains("phase 3 root-cert.pem is byte-identical to phase 2"),
        "{msg}"
    );
}

#[test]
fn swapped_key_fails_key_matches_cert() {
    let (_d, out) = render("plans/fleet.yaml");
    let key = read_phase(&out, "us-west", "2-trust-both")["ca-key.pem"].clone();
    edit(&phase_file(&out, "us-east", "2-trust-both"), |d| {
        d.insert("ca-key.pem".into(), key);
    });
    let (code, v, _) = verify(&out, &[]);
    assert_eq!(code, Some(1));
    let f = failures(&v);
    assert_eq!(
        f[0],
        (
            "key-matches-cert".to_string(),
            "us-east/2-trust-both".to_string()
        )
    );
    assert_eq!(f.len(), 1, "one root cause: {f:?}");
    // No leaf can be issued from phase 2 of us-east: the matrix does not judge the two
    // transitions touching it, inside us-east and for eu-central (whose ring peer is us-east),
    // and says so; never a pass. Nor does the fleet's all-pairs finding, which rests on them.
    let mut matrix: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["code"] == "handshake-matrix" && !x["not_checked"].is_null())
        .map(|x| x["subject"].as_str().unwrap())
        .collect();
    matrix.sort_unstable();
    assert_eq!(
        matrix,
        [
            "eu-central/1-initial→2-trust-both",
            "eu-central/2-trust-both→3-switch-issuer",
            "fleet",
            "us-east/1-initial→2-trust-both",
            "us-east/2-trust-both→3-switch-issuer",
        ]
    );
}

#[test]
fn intermediates_expiring_during_the_rollout_fail_validity() {
    let (_d, out) = render("plans/fleet.yaml");
    // fleet's new intermediates live 1095 days: three years later they have expired.
    let (code, v, _) = verify(&out, &[]);
    assert_eq!(code, Some(0), "{:?}", failures(&v));
    let o = crate::common::rootroll_at(
        "2029-12-30T00:00:00Z",
        &[
            "verify",
            "offline",
            out.to_str().unwrap(),
            "--identity",
            DEMO_KEY,
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = failures(&v);
    assert!(
        f.contains(&("validity-window".into(), "us-east/3-switch-issuer".into())),
        "{f:?}"
    );
    assert!(
        !f.contains(&("validity-window".into(), "us-east/1-initial".into())),
        "phase 1's 1825-day intermediate is still valid: {f:?}"
    );
}

#[test]
fn breaking_the_skew_rule_fails() {
    let (_d, out) = render("plans/fleet.yaml");
    // A canary at phase 3 while the others are at 2 is allowed (issue 14) ...
    set_pointer(&out, "us-east", "3-switch-issuer");
    set_pointer(&out, "us-west", "2-trust-both");
    set_pointer(&out, "eu-central", "2-trust-both");
    let (code, v, _) = verify(&out, &[]);
    assert_eq!(code, Some(0), "{:?}", failures(&v));
    // ... at phase 4 while the others are at 2 is not.
    set_pointer(&out, "us-east", "4-finalize");
    let (code, v, _) = verify(&out, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(
        failures(&v),
        vec![("lockstep".to_string(), "fleet".to_string())]
    );
    set_pointer(&out, "us-west", "3-switch-issuer");
    set_pointer(&out, "eu-central", "3-switch-issuer");
    let (code, _, _) = verify(&out, &[]);
    assert_eq!(code, Some(0));
}

#[test]
fn plaintext_render_fails_the_secret_scan() {
    let dir = render_plain("plans/demo.yaml");
    let (code, v, _) = verify(&dir.path().join("out"), &[]);
    assert_eq!(code, Some(1));
    assert_eq!(
        failures(&v),
        vec![("no-plaintext-private-key".to_string(), "fleet".to_string())]
    );
}

/// Without an identity the MAC cannot be checked (it needs the data key): the gate is not
/// checked, never counted as passed, and fails only under `--require-keys`.
#[test]
fn without_an_identity_the_mac_gate_is_not_checked_and_fails_under_require_keys() {
    let (d, out) = render("plans/demo.yaml");
    let keyless = |extra: &[&str]| {
        run(std::process::Command::new(env!("CARGO_BIN_EXE_rootroll"))
            .current_dir(root())
            .env_remove("SOPS_AGE_KEY_FILE")
            .env_remove("SOPS_AGE_KEY")
            .env("HOME", d.path())
            .env("XDG_CONFIG_HOME", d.path())
            .args(["--now", NOW, "verify", "offline", out.to_str().unwrap()])
            .args(extra))
    };
    let o = keyless(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("SKIP sops-mac                 0 of 4 passed, 4 not checked"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("no identity: the MAC over every value needs the key"),
        "{}",
        stdout(&o)
    );
    let o = keyless(&["--require-keys"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("FAIL sops-mac"), "{}", stdout(&o));
}

#[test]
fn tampered_ciphertext_fails_the_mac_gate() {
    let (_d, out) = render("plans/demo.yaml");
    let f = phase_file(&out, "demo", "4-finalize");
    let text = std::fs::read_to_string(&f).unwrap().replace(
        "rootroll.dev/phase-name: finalize",
        "rootroll.dev/phase-name: finalise",
    );
    std::fs::write(&f, text).unwrap();
    let (code, v, _) = verify(&out, &[]);
    assert_eq!(code, Some(1));
    assert!(
        failures(&v).contains(&("sops-mac".into(), "demo/4-finalize".into())),
        "{:?}",
        failures(&v)
    );
}

#[test]
fn junit_output_is_a_test_report() {
    let (_d, out) = render("plans/demo.yaml");
    set_pointer(&out, "demo", "3-switch-issuer");
    let o = rootroll(&[
        "verify",
        "offline",
        out.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
        "--format",
        "junit",
    ]);
    let text = stdout(&o);
    assert!(text.starts_with("<?xml"));
    assert!(text.contains("<testsuite name=\"rootroll verify offline\""));
    assert!(text.contains("name=\"secret-shape\""));
    assert_eq!(
        o.status.code(),
        Some(0),
        "one cluster at phase 3 is in lockstep with itself"
    );
    assert!(!text.contains("<failure"));
}

#[test]
fn istio_generated_key_fails_the_secret_shape() {
    let (_d, out) = render("plans/demo.yaml");
    edit(&phase_file(&out, "demo", "3-switch-issuer"), |d| {
        d.insert("istio-generated".into(), b"true".to_vec());
    });
    let (code, v, _) = verify(&out, &[]);
    assert_eq!(code, Some(1));
    let f = failures(&v);
    assert!(
        f.contains(&("secret-shape".into(), "demo/3-switch-issuer".into())),
        "{f:?}"
    );
    let msg = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["code"] == "secret-shape" && x["passed"] == false)
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("istio-generated"), "{msg}");
}

#[test]
fn reversed_cert_chain_fails_chain_order() {
    let (_d, out) = render("plans/demo.yaml");
    edit(&phase_file(&out, "demo", "1-initial"), |d| {
        let text = String::from_utf8(d["cert-chain.pem"].clone()).unwrap();
        let second = text.match_indices("-----BEGIN").nth(1).unwrap().0;
        d.insert(
            "cert-chain.pem".into(),
            format!("{}{}", &text[second..], &text[..second]).into_bytes(),
        );
    });
    let (code, v, _) = verify(&out, &[]);
    assert_eq!(code, Some(1));
    let f = failures(&v);
    assert!(
        f.contains(&("chain-order".into(), "demo/1-initial".into())),
        "{f:?}"
    );
}

#[test]
fn a_cluster_with_its_own_bundle_breaks_the_shared_root() {
    let (_d, out) = render("plans/fleet.yaml");
    let extra = read_phase(&out, "us-west", "4-finalize")["root-cert.pem"].clone();
    // us-east's phase 4 bundle gains a duplicate B: still valid for istiod, but no longer shared.
    edit(&phase_file(&out, "us-east", "4-finalize"), |d| {
        let mut b = d["root-cert.pem"].clone();
        b.extend_from_slice(&extra);
        d.insert("root-cert.pem".into(), b);
    });
    let (code, v, _) = verify(&out, &[]);
    assert_eq!(code, Some(1));
    let f = failures(&v);
    assert!(
        f.contains(&("bundle-shared".into(), "fleet/4-finalize".into())),
        "{f:?}"
    );
}

/// Long work shows a progress line on a terminal and nothing on a pipe: render's key
/// generation and verify offline's handshake matrix, run under a pseudo-terminal by
/// util-linux `script` (which copies what the terminal showed to its stdout).
#[test]
fn progress_lines_on_a_terminal_and_none_on_a_pipe() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let bin = env!("CARGO_BIN_EXE_rootroll");
    let key = root().join("plans/demo.agekey");
    let in_terminal = |cmd: String| {
        run(std::process::Command::new("script")
            .current_dir(root())
            .args(["-q", "-e", "-c", &cmd, "/dev/null"]))
    };
    // The last "<label> done/total" the terminal showed, as (done, total).
    let last = |text: &str, label: &str| -> Option<(usize, usize)> {
        let at = text.rfind(label)? + label.len();
        let rest = &text[at..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '/')
            .unwrap_or(rest.len());
        let (done, total) = rest[..end].split_once('/')?;
        Some((done.parse().ok()?, total.parse().ok()?))
    };

    let o = in_terminal(format!(
        "{bin} render plans/fleet.yaml --out {} >/dev/null",
        out.display()
    ));
    assert!(o.status.success(), "{}", stdout(&o));
    let (done, total) = last(&stdout(&o), "generating CA ").expect("keygen progress shown");
    assert!(total > 0 && done == total, "{}", stdout(&o));

    let o = in_terminal(format!(
        "{bin} verify offline {} --identity {} >/dev/null",
        out.display(),
        key.display()
    ));
    assert!(o.status.success(), "{}", stdout(&o));
    let (done, total) = last(&stdout(&o), "handshake matrix ").expect("matrix progress shown");
    assert_eq!((done, total), (288, 288), "{}", stdout(&o));

    // On a pipe: the report on stdout, and no progress line anywhere.
    let piped = rootroll(&[
        "verify",
        "offline",
        out.to_str().unwrap(),
        "--identity",
        key.to_str().unwrap(),
    ]);
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert!(
        stdout(&piped).contains("; matrix 288 of 288 cells ok\n"),
        "{}",
        stdout(&piped)
    );
    assert!(!stderr(&piped).contains("handshake matrix") && !stdout(&piped).contains('\r'));
}
