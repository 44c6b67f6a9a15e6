//! The intermediate-only rotation (`strategy: intermediates`, issue 17 item 1) on
//! `plans/fleet-intermediates.yaml` (plans/fleet.yaml's mesh, two of its three clusters
//! selected): render, every offline gate, the matrix with real Envoy agreeing, promote through
//! each phase, status, the live expectations, and the failing cases.

use std::path::Path;

use rootroll::model::Strategy;
use time::OffsetDateTime;

use crate::common::*;
use crate::verify::{edit, failures, phase_file, set_pointer};

const PLAN: &str = "plans/fleet-intermediates.yaml";
const DEMO_KEY: &str = "plans/demo.agekey";
const PHASES: [&str; 3] = ["1-current", "2-new-intermediate", "3-settled"];
const ROTATED: [&str; 2] = ["us-east", "us-west"];

fn render(plan: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = rootroll(&["render", plan, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    (dir, out)
}

fn verify(out: &Path) -> (Option<i32>, serde_json::Value) {
    let o = rootroll(&[
        "verify",
        "offline",
        out.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("JSON report: {}{}", stdout(&o), stderr(&o)));
    (o.status.code(), v)
}

/// The decrypted, decoded data of a cluster's phase Secret (checking kustomize builds exactly
/// that one object, labelled with the phase's name).
fn phase_data(
    out: &Path,
    cluster: &str,
    phase: &str,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let base = out.join(format!("clusters/{cluster}/istio-ca/phases/{phase}"));
    let docs = kustomize(&base);
    assert_eq!(docs.len(), 1, "{cluster}/{phase}: exactly one object");
    assert_eq!(
        docs[0]["metadata"]["labels"]["rootroll.dev/phase-name"],
        phase.split_once('-').unwrap().1
    );
    let text = std::fs::read_to_string(phase_file(out, cluster, phase)).unwrap();
    let plain = rootroll::sops::decrypt_yaml("t", &text, &[crate::verify::identity()]).unwrap();
    secret_data(&serde_saphyr::from_str(&plain).unwrap())
}

fn passed_codes(v: &serde_json::Value) -> std::collections::BTreeSet<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["passed"] == true)
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_intermediate_only_rotation_renders_a_then_a_plus_a_then_a_and_passes_every_gate() {
    let (_d, out) = render(PLAN);
    // Only the selected clusters get a phase tree; eu-central keeps its cacerts untouched.
    let mut clusters: Vec<String> = std::fs::read_dir(out.join("clusters"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    clusters.sort();
    assert_eq!(clusters, ["us-east", "us-west"]);
    let mut phase_one_bundles = Vec::new();
    for c in ROTATED {
        let dirs: Vec<String> = {
            let mut v: Vec<String> =
                std::fs::read_dir(out.join(format!("clusters/{c}/istio-ca/phases")))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect();
            v.sort();
            v
        };
        assert_eq!(dirs, PHASES, "{c}: three phases with their own names");
        let [p1, p2, p3] = PHASES.map(|p| phase_data(&out, c, p));
        let a = p1["root-cert.pem"].clone();
        // A, A+A, A: the same root throughout, the bytes change twice.
        let mut aa = a.clone();
        aa.extend_from_slice(&a);
        assert_eq!(p2["root-cert.pem"], aa, "{c}: phase 2 is A+A");
        assert_eq!(p3["root-cert.pem"], a, "{c}: phase 3 is A again");
        // Today's intermediate signs phase 1, the new one phases 2 and 3, under root A.
        assert_ne!(
            p1["ca-cert.pem"], p2["ca-cert.pem"],
            "{c}: a new intermediate"
        );
        assert_eq!(
            p2["ca-cert.pem"], p3["ca-cert.pem"],
            "{c}: the same from phase 2"
        );
        for p in [&p1, &p2, &p3] {
            openssl_verify(&a, &p["ca-cert.pem"], None)
                .unwrap_or_else(|e| panic!("{c}: the intermediate chains to root A: {e}"));
        }
        phase_one_bundles.push(a);
    }
    assert_eq!(
        phase_one_bundles[0], phase_one_bundles[1],
        "one shared root"
    );

    let (code, v) = verify(&out);
    assert_eq!(failures(&v), Vec::<(String, String)>::new());
    assert_eq!(code, Some(0));
    let passed = passed_codes(&v);
    for gate in [
        "signer-sequence",
        "phase3-bytes-differ",
        "reload-rule",
        "bundle-roots",
        "bundle-bytes",
        "chain-to-bundle",
        "annotations-match",
        "handshake-matrix",
        "bundle-shared",
        "lockstep",
    ] {
        assert!(passed.contains(gate), "{gate} passed: {passed:?}");
    }
    // phase3-bytes-differ is judged where the signer switches: phase 1 → 2.
    let subjects: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "phase3-bytes-differ")
        .map(|f| f["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        [
            "us-east/1-current→2-new-intermediate",
            "us-west/1-current→2-new-intermediate"
        ]
    );
    // The rollout file names the strategy and the clusters left alone.
    let rollout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(".rootroll/rollout.json")).unwrap())
            .unwrap();
    assert_eq!(rollout["strategy"], "intermediates");
    assert_eq!(rollout["notRotated"], serde_json::json!(["eu-central"]));
    assert_eq!(rollout["phases"].as_array().unwrap().len(), 4);

    // `plan` and ROLLOUT.md explain the choice.
    let o = rootroll(&["plan", PLAN]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for want in [
        "strategy intermediates",
        "not rotated (keep their intermediate, get no phase tree): eu-central",
        "phase 2 new-intermediate: signs with the new intermediate; root-cert.pem = A+A",
        "phase 3 settled: signs with the new intermediate; root-cert.pem = A;",
        "[proxy-leaf-new-issuer]",
    ] {
        assert!(text.contains(want), "plan output lacks {want:?}:\n{text}");
    }
    let md = std::fs::read_to_string(out.join("ROLLOUT.md")).unwrap();
    assert!(md.starts_with("# Istio intermediate CA rotation"), "{md}");
    assert!(md.contains("root-cert.pem becomes **A+A**"), "{md}");
    assert!(
        md.contains("Not rotated (`spec.rotate`): eu-central"),
        "{md}"
    );
    assert!(!md.contains("| B |"), "no new root is listed: {md}");
}

#[test]
fn a_tampered_intermediate_rotation_fails_the_right_gate() {
    // Phase 2's bundle set back to A: no bundle push, so no immediate re-sign.
    let (_d, out) = render(PLAN);
    let a = phase_data(&out, "us-east", "1-current")["root-cert.pem"].clone();
    edit(&phase_file(&out, "us-east", "2-new-intermediate"), |d| {
        d.insert("root-cert.pem".into(), a.clone());
    });
    let (code, v) = verify(&out);
    assert_eq!(code, Some(1));
    let f = failures(&v);
    for want in [
        (
            "phase3-bytes-differ",
            "us-east/1-current→2-new-intermediate",
        ),
        ("bundle-roots", "us-east/2-new-intermediate"),
    ] {
        assert!(
            f.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} in {f:?}"
        );
    }

    // Phase 3 signed by the old intermediate again: the issuer switched back.
    let (_d, out) = render(PLAN);
    let old = phase_data(&out, "us-west", "1-current");
    edit(&phase_file(&out, "us-west", "3-settled"), |d| {
        for k in ["ca-cert.pem", "ca-key.pem", "cert-chain.pem"] {
            d.insert(k.into(), old[k].clone());
        }
    });
    let (code, v) = verify(&out);
    assert_eq!(code, Some(1));
    let f = failures(&v);
    assert!(
        f.contains(&(
            "signer-sequence".to_string(),
            "us-west/2-new-intermediate→3-settled".to_string()
        )),
        "{f:?}"
    );
    assert!(
        f.iter()
            .all(|(_, s)| s.starts_with("us-west/") || s == "fleet"),
        "only us-west is at fault: {f:?}"
    );

    // A pointer naming a root-rotation phase is no phase of this rollout.
    let (_d, out) = render(PLAN);
    set_pointer(&out, "us-east", "2-trust-both");
    let (code, v) = verify(&out);
    assert_eq!(code, Some(1));
    assert!(
        failures(&v).contains(&("pointer-valid".to_string(), "us-east".to_string())),
        "{v}"
    );
}

#[test]
fn a_new_intermediate_not_signed_by_the_current_root_is_refused_and_nothing_is_written() {
    let plan = "tests/invalid/intermediates-new-not-signed-by-root.yaml";
    let o = rootroll(&["plan", plan]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    for want in [
        "error[import-not-signed-by-root]",
        "cluster cluster1: intermediates.new",
        "not signed by any certificate of roots.current",
        "../fixtures/bad/other-root/other",
    ] {
        assert!(err.contains(want), "{want:?} in {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = rootroll(&["render", plan, "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!out.exists(), "nothing written");
}

#[test]
fn one_selected_cluster_renders_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("one.yaml");
    let text = std::fs::read_to_string(root().join(PLAN))
        .unwrap()
        .replace("clusters: [us-east, us-west]", "clusters: [eu-central]");
    assert!(text.contains("clusters: [eu-central]"));
    std::fs::write(&plan, text).unwrap();
    let out = dir.path().join("out");
    let o = rootroll(&[
        "render",
        plan.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let clusters: Vec<String> = std::fs::read_dir(out.join("clusters"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(clusters, ["eu-central"]);
    let (code, v) = verify(&out);
    assert_eq!(failures(&v), Vec::<(String, String)>::new());
    assert_eq!(code, Some(0));
}

#[test]
fn promote_walks_the_three_phases_and_status_and_live_expectations_follow() {
    let d = rendered_repo(PLAN);
    let out = d.path().join("gitops");
    let promote = |to: &str| {
        rootroll(&[
            "promote",
            out.to_str().unwrap(),
            "--identity",
            DEMO_KEY,
            "--all-clusters",
            "--to",
            to,
            "--commit",
        ])
    };
    // There is no phase 4 in this rollout.
    let o = promote("4");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("phases are 1 (current) to 3 (settled)"),
        "{}",
        stderr(&o)
    );
    for (to, name, from_name) in [
        ("2", "2-new-intermediate", "1-current"),
        ("3", "3-settled", "2-new-intermediate"),
    ] {
        let o = promote(to);
        assert!(o.status.success(), "to {to}: {}", stderr(&o));
        assert!(stdout(&o).contains(&format!("us-east: phase {from_name} → {name}")));
        let msg = git(d.path(), &["log", "-1", "--format=%B"]);
        assert!(
            msg.contains("intermediate CA rotation")
                && msg.contains(&format!("Rootroll-To-Phase: {name}")),
            "{msg}"
        );
        for c in ROTATED {
            let s = &kustomize(&out.join(format!("clusters/{c}/istio-ca")))[0];
            assert_eq!(s["metadata"]["labels"]["rootroll.dev/phase"], to);
        }
        // What verify live expects of the active phase.
        let repo = rootroll::repo::Repo::open(&out).unwrap();
        let e = rootroll::verify::live::Expectation::load(&repo, "us-east", None).unwrap();
        assert_eq!(e.dir, name);
        assert!(e.new_issuer, "{name}: every leaf from the new intermediate");
        assert!(!e.exact_roots && !e.ztunnel_restart, "no root is removed");
        assert_eq!(repo.rollout.strategy, Strategy::Intermediates);
    }
    let e = rootroll::verify::live::Expectation::load(
        &rootroll::repo::Repo::open(&out).unwrap(),
        "us-east",
        Some(1),
    )
    .unwrap();
    assert!(
        !e.new_issuer,
        "phase 1 still signs with today's intermediate"
    );
    // Every cluster is at the last phase: status says the rotation is over.
    let o = rootroll(&["status", out.to_str().unwrap(), "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for c in v.as_array().unwrap() {
        assert_eq!(c["activePhase"], 3);
        assert_eq!(c["activeName"], "3-settled");
        assert_eq!(c["next"]["finished"], true, "{c}");
    }
    // `init --from-render` continues root rotations only: refused, saying what to run instead.
    let next = d.path().join("next");
    let o = rootroll(&[
        "init",
        "--from-render",
        out.to_str().unwrap(),
        "--output",
        next.join("plan.yaml").to_str().unwrap(),
        "--out",
        next.join("gitops").to_str().unwrap(),
        "--identity",
        "plans/demo.agekey",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is an intermediate-only rotation")
            && stderr(&o).contains("rootroll init --from-cluster"),
        "{}",
        stderr(&o)
    );
    assert!(!next.exists(), "nothing written");
    // Rolling back one step works, and a skip is refused naming this rollout's phases.
    let o = promote("2");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = promote("1");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = promote("3");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("one phase at a time (to 2)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn envoy_agrees_with_every_intermediate_rotation_matrix_cell() {
    let now = OffsetDateTime::now_utc();
    let mut envoy = crate::envoy::EnvoyPair::start();
    let dir = tempfile::tempdir().unwrap();
    let cells = crate::matrix::cells(PLAN, &dir.path().join("out"), now, |_| {});
    assert!(!cells.is_empty());
    assert!(cells.iter().all(|c| c.cell.ok), "every cell passes");
    // Both transitions of both clusters are in the matrix.
    let transitions: std::collections::BTreeSet<(u8, u8)> = cells
        .iter()
        .map(|c| {
            let k = &c.cell;
            (
                k.client_leaf_phase.min(k.server_leaf_phase),
                k.client_leaf_phase.max(k.server_leaf_phase),
            )
        })
        .collect();
    assert!(
        transitions.contains(&(1, 2)) && transitions.contains(&(2, 3)),
        "{transitions:?}"
    );
    let (checked, failing) = crate::matrix::cross_check(&mut envoy, &cells);
    assert_eq!(failing, 0);
    assert!(checked > 0);
    eprintln!("Envoy agreed with rootroll on {checked} intermediate-rotation cells");
}

#[test]
fn plan_output_of_the_example_is_pinned_and_its_json_names_three_phases() {
    let o = rootroll(&["plan", PLAN]);
    assert!(o.status.success(), "{}", stderr(&o));
    insta::assert_snapshot!("plan-fleet-intermediates", stdout(&o));
    let o = rootroll(&["plan", PLAN, "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["strategy"], "intermediates");
    let phases = v["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["prerequisites", "current", "new-intermediate", "settled"]
    );
    let bundles: Vec<Vec<&str>> = phases[1..]
        .iter()
        .map(|p| {
            p["bundle"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["root"].as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(bundles, [vec!["A"], vec!["A", "A"], vec!["A"]]);
    let signers: Vec<&str> = phases[1..]
        .iter()
        .map(|p| p["signer"].as_str().unwrap())
        .collect();
    assert_eq!(signers, ["current", "new", "new"]);
}

/// `verify live` (from a dump holding real Envoy admin output) in phase 2: every proxy must
/// present a leaf of the new intermediate; one still on the old intermediate's leaf fails only
/// proxy-leaf-new-issuer (its roots are right: the root never changes).
#[test]
fn verify_live_in_phase_2_demands_leaves_from_the_new_intermediate() {
    use crate::live::{envoy_dump, healthy, render_now, verify_dump_cluster, write_dump_with};
    use std::collections::BTreeMap;
    let r = render_now(PLAN);
    let mut envoy = crate::envoy::EnvoyPair::start();
    let new = envoy_dump(&mut envoy, &r.out, "us-east", 2);
    let old = envoy_dump(&mut envoy, &r.out, "us-east", 1);
    let cluster = healthy(&r.out, "us-east", 2, 3);
    let all: BTreeMap<String, serde_json::Value> = cluster
        .sidecars
        .iter()
        .map(|(_, p)| (p.clone(), new.clone()))
        .collect();
    let d = tempfile::tempdir().unwrap();
    write_dump_with(d.path(), &cluster, &all, &BTreeMap::new());
    let (code, failed, v) = verify_dump_cluster(&r.out, d.path(), "us-east", 2);
    assert_eq!(failed, Vec::<String>::new(), "{v:#}");
    assert_eq!(code, Some(0));
    let judged: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(judged.contains(&"proxy-leaf-new-issuer"), "{judged:?}");

    let d = tempfile::tempdir().unwrap();
    let mut lag = all.clone();
    lag.insert("web-0001".into(), old);
    write_dump_with(d.path(), &cluster, &lag, &BTreeMap::new());
    let (code, failed, v) = verify_dump_cluster(&r.out, d.path(), "us-east", 2);
    assert_eq!(code, Some(1), "{v:#}");
    assert_eq!(failed, ["proxy-leaf-new-issuer"]);
}

/// plans/ambient.yaml turned into an intermediate-only rotation of every cluster (no
/// `spec.rotate`): ztunnel has no bundle push, so phase 2 soaks a whole workload TTL plus
/// propagation and margin unless every ztunnel proves it re-signed (istio-2026 §2), and says
/// to restart ztunnel; the kubernetes.io/tls Secrets and the Argo CD wiring render and pass
/// every gate.
#[test]
fn an_ambient_intermediate_rotation_of_every_cluster_soaks_a_whole_ttl_without_ztunnel_proof() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("ambient-intermediates.yaml");
    let new_root = "    new:\n      generate:\n        algorithm: ecdsa-p256\n        subject: {organization: Istio, commonName: Root CA 2026}\n";
    let text = std::fs::read_to_string(root().join("plans/ambient.yaml")).unwrap();
    assert!(text.contains(new_root));
    let text =
        text.replace(new_root, "")
            .replacen("spec:\n", "spec:\n  strategy: intermediates\n", 1);
    std::fs::write(&plan, text).unwrap();
    let plan = plan.to_str().unwrap();
    let o = rootroll(&["plan", plan, "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // 24h + 2m + 15m, or 17m with every ztunnel on the new intermediate.
    assert_eq!(v["phases"][2]["minSoakSecs"], 24 * 3600 + 17 * 60);
    assert!(v.get("notRotated").is_none(), "every cluster rotates");
    let notes = v["phases"][2]["notes"].to_string();
    assert!(notes.contains("restart the ztunnel DaemonSet"), "{notes}");
    let gates = v["phases"][2]["gatesBeforeNext"].to_string();
    assert!(gates.contains("ztunnel-leaf-new-issuer"), "{gates}");
    assert!(
        gates.contains(
            "or 17m once every ztunnel identity is proven issued by the new intermediate"
        ),
        "{gates}"
    );
    assert!(!gates.contains("ztunnel-restarted"), "no new root: {gates}");
    let (_d, out) = render(plan);
    assert!(
        out.join("clusters/ambient/istio-ca/phases/2-new-intermediate")
            .is_dir()
    );
    let (code, v) = verify(&out);
    assert_eq!(failures(&v), Vec::<(String, String)>::new());
    assert_eq!(code, Some(0));
}

#[test]
fn a_second_render_of_the_intermediate_rotation_changes_no_byte() {
    let (_d, out) = render(PLAN);
    let before = tree(&out);
    let args = |check: bool| {
        let mut a = vec![
            "render",
            PLAN,
            "--out",
            out.to_str().unwrap(),
            "--identity",
            DEMO_KEY,
        ];
        if check {
            a.push("--check");
        }
        rootroll(&a)
    };
    let o = args(false);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree(&out), before, "keys reused, the same bytes written");
    let o = args(true);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}
