//! Every example plan: `rootroll plan` output is pinned by a snapshot, and its JSON form
//! carries the rollout a tool would read.

use crate::common::{example_plans, rootroll, stderr, stdout};

#[test]
fn plan_text_snapshots() {
    for plan in example_plans() {
        let o = rootroll(&["plan", &plan]);
        assert!(o.status.success(), "{plan}: {}", stderr(&o));
        let name = plan
            .trim_start_matches("plans/")
            .trim_end_matches(".yaml")
            .to_string();
        // Imported fixtures have fingerprints; regenerating them must not change snapshots.
        insta::with_settings!({filters => vec![(r"sha256:[0-9a-f]{16}", "sha256:[fingerprint]")]}, {
            insta::assert_snapshot!(format!("plan-{name}"), stdout(&o));
        });
    }
}

#[test]
fn plan_json_has_four_phases_and_gates() {
    for plan in example_plans() {
        let o = rootroll(&["plan", &plan, "--format", "json"]);
        assert!(o.status.success(), "{plan}: {}", stderr(&o));
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).expect("plan --format json prints JSON");
        let phases = v["phases"].as_array().unwrap();
        let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "prerequisites",
                "initial",
                "trust-both",
                "switch-issuer",
                "finalize"
            ]
        );
        let roots: Vec<Vec<&str>> = phases[1..]
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
        let a_count = roots[0].len();
        assert!(roots[0].iter().all(|r| *r == "A"));
        assert_eq!(roots[1][a_count..], ["B"]);
        assert_eq!(roots[2][a_count..], ["B", "B"]);
        assert_eq!(roots[3], ["B"]);
        assert_eq!(phases[1]["signer"], "current");
        assert_eq!(phases[3]["signer"], "new");
        for p in &phases[1..] {
            assert!(p["minSoak"].as_str().is_some());
            assert!(!p["gatesBeforeNext"].as_array().unwrap().is_empty());
        }
    }
}

#[test]
fn ambient_plans_carry_the_ztunnel_requirement() {
    let o = rootroll(&["plan", "plans/ambient.yaml", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for n in [2, 3] {
        let p = &v["phases"][n];
        let codes: Vec<&str> = p["gatesBeforeNext"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["code"].as_str().unwrap())
            .collect();
        assert!(
            codes.iter().any(|c| c.starts_with("ztunnel-")),
            "phase {n}: {codes:?}"
        );
        assert!(
            p["notes"]
                .to_string()
                .contains("rollout restart daemonset/ztunnel")
                || p["notes"]
                    .to_string()
                    .contains("restart the ztunnel DaemonSet")
        );
    }
    // Without a restart, ztunnel renews at half its TTL: the soak covers it.
    assert_eq!(v["phases"][2]["minSoak"], "12h31m24s");
}
