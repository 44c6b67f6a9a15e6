//! The rendered repository as a type: state ids that no cluster name can collide with, and a
//! typed, versioned rollout file whose errors name the file and the field.

use std::path::Path;

use crate::common::*;

/// plans/fleet.yaml with its clusters renamed.
fn fleet_named(dir: &Path, names: [&str; 3]) -> String {
    let mut text = std::fs::read_to_string(root().join("plans/fleet.yaml")).unwrap();
    for (old, new) in ["us-east", "us-west", "eu-central"].iter().zip(names) {
        text = text.replace(&format!("name: {old}"), &format!("name: {new}"));
    }
    let path = dir.join("plan.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

// See: issue 12 ("State ids can collide"): a cluster named `root` shared ids with the roots, so
// every render regenerated root B and `render --check` never settled.
#[test]
fn clusters_named_root_current_or_new_render_idempotently_and_keep_root_b() {
    let d = tempfile::tempdir().unwrap();
    let plan = fleet_named(d.path(), ["root", "current", "new"]);
    let out = d.path().join("out");
    let out_s = out.to_str().unwrap();
    let o = rootroll(&["render", &plan, "--out", out_s, "--insecure-plaintext"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // 2 roots + 3 clusters × 2 intermediates, each its own entry.
    assert!(stderr(&o).contains("generated 8 CA(s)"), "{}", stderr(&o));
    let before = tree(&out);
    let o = rootroll(&[
        "render",
        &plan,
        "--out",
        out_s,
        "--check",
        "--insecure-plaintext",
    ]);
    assert!(
        o.status.success(),
        "--check after a render: {}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(stdout(&o).contains("is up to date"), "{}", stdout(&o));
    let o = rootroll(&["render", &plan, "--out", out_s, "--insecure-plaintext"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("generated"),
        "a re-render generated: {}",
        stderr(&o)
    );
    assert_eq!(before, tree(&out), "a re-render changed bytes");
    // Root B is the same in every phase-4 Secret: no cluster's intermediate replaced it.
    let b = kustomize(&out.join("clusters/root/istio-ca/phases/4-finalize"));
    let bundle = secret_data(&b[0])["root-cert.pem"].clone();
    for c in ["current", "new"] {
        let s = kustomize(&out.join(format!("clusters/{c}/istio-ca/phases/4-finalize")));
        assert_eq!(secret_data(&s[0])["root-cert.pem"], bundle, "{c}");
    }
}

#[test]
fn cluster_names_that_differ_only_in_case_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let plan = fleet_named(d.path(), ["East", "east", "west"]);
    let o = rootroll(&["plan", &plan]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("error[name-unsafe]"), "{}", stderr(&o));
    assert!(stderr(&o).contains("East"), "{}", stderr(&o));
}

#[test]
fn rollout_file_of_another_version_or_with_a_bad_field_is_refused_by_name() {
    let d = render_plain("plans/demo.yaml");
    let out = d.path().join("out");
    let file = out.join(".rootroll/rollout.json");
    let good = std::fs::read_to_string(&file).unwrap();
    let cases = [
        (
            good.replacen("\"formatVersion\": 1", "\"formatVersion\": 7", 1),
            "formatVersion 7 is not the version this rootroll reads (1)",
        ),
        (
            good.replacen("\"formatVersion\": 1,", "", 1),
            "no formatVersion (rendered by an older rootroll)",
        ),
        (
            good.replacen(
                "\"trustDomain\": \"cluster.local\"",
                "\"trustDomain\": 5",
                1,
            ),
            "field `mesh.trustDomain`: invalid type: integer `5`",
        ),
        (
            good.replacen("\"minSoak\": \"17m\"", "\"minSoak\": \"soon\"", 1),
            "field `phases[1].minSoak`",
        ),
    ];
    for (text, want) in cases {
        assert_ne!(text, good, "the edit for {want:?} did not apply");
        std::fs::write(&file, &text).unwrap();
        for args in [
            vec!["verify", "offline", out.to_str().unwrap()],
            vec!["status", out.to_str().unwrap()],
        ] {
            let o = rootroll(&args);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
            let err = stderr(&o);
            assert!(err.contains(".rootroll/rollout.json is malformed"), "{err}");
            assert!(err.contains(want), "{args:?}: want {want:?} in {err}");
        }
    }
}
