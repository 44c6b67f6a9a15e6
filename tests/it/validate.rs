//! Plan diagnostics: one broken plan per code under tests/invalid/, each rendered message
//! pinned by a snapshot.

use rootroll::plan::{self, CODES};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::{NOW, root};

fn now() -> OffsetDateTime {
    OffsetDateTime::parse(NOW, &Rfc3339).unwrap()
}

fn diagnostics(rel: &str) -> Vec<plan::Diagnostic> {
    let path = std::path::Path::new(rel);
    let bytes = std::fs::read(root().join(path)).unwrap();
    match plan::validate(path, &bytes, now()) {
        Ok(p) => p.warnings,
        Err(d) => d,
    }
}

#[test]
fn every_code_has_a_catalog_plan() {
    for (code, _) in CODES {
        if *code == "plan-too-large" {
            continue; // made at test time below: a 5 MB file does not belong in the repo
        }
        let f = root().join("tests/invalid").join(format!("{code}.yaml"));
        assert!(
            f.exists(),
            "no test plan for diagnostic `{code}` ({})",
            f.display()
        );
    }
}

#[test]
fn catalog_snapshots() {
    insta::glob!("../invalid", "*.yaml", |path| {
        let rel = path
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let diags = diagnostics(&rel);
        assert!(!diags.is_empty(), "{rel} produced no diagnostic");
        let stem = path.file_stem().unwrap().to_str().unwrap();
        if CODES.iter().any(|(c, _)| *c == stem) {
            assert!(
                diags.iter().any(|d| d.code == stem),
                "{rel} should produce `{stem}`, got {:?}",
                diags.iter().map(|d| d.code).collect::<Vec<_>>()
            );
        }
        for d in &diags {
            assert!(
                CODES.iter().any(|(c, _)| *c == d.code),
                "undocumented code {}",
                d.code
            );
            assert!(!d.hint.is_empty(), "{} has no hint", d.code);
        }
        let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
        insta::assert_snapshot!(text.join("\n"));
    });
}

#[test]
fn many_problems_are_reported_at_once() {
    let diags = diagnostics("tests/invalid/many-problems.yaml");
    let codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
    for want in [
        "name-unsafe",
        "istio-version-unsupported",
        "duration-invalid",
        "rsa-too-small",
        "cluster-duplicate",
    ] {
        assert!(codes.contains(&want), "missing {want} in {codes:?}");
    }
    // Sorted by place.
    let lines: Vec<u64> = diags.iter().map(|d| d.line).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
}

#[test]
fn oversized_plan_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.yaml");
    let mut text = String::from("apiVersion: rootroll.dev/v1alpha1\n# ");
    text.push_str(&"x".repeat(5 * 1024 * 1024));
    std::fs::write(&p, text).unwrap();
    match plan::load(&p, now()) {
        Err(plan::PlanError::Invalid { diagnostics, .. }) => {
            assert_eq!(diagnostics[0].code, "plan-too-large");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a 5 MB plan was accepted"),
    }
}

#[test]
fn cli_exits_2_and_prints_file_line_code_and_hint() {
    let o = crate::common::rootroll(&["plan", "tests/invalid/cluster-duplicate.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    let err = crate::common::stderr(&o);
    assert!(
        err.contains("tests/invalid/cluster-duplicate.yaml:35:13: error[cluster-duplicate]"),
        "{err}"
    );
    assert!(
        err.contains("= help: give every cluster a unique name"),
        "{err}"
    );
}

/// Issue 18: a CA must stay valid through the rollout (the shortest rotation, one workload TTL
/// and the margin, as `verify offline`'s validity-window gate asks), not only today.
#[test]
fn imported_cas_expiring_during_the_rollout_are_refused() {
    let path = std::path::Path::new("plans/import.yaml");
    let bytes = std::fs::read(root().join(path)).unwrap();
    // The fixtures expire 2036-11-19 ~13:58Z; the rollout needs 1d1h8m.
    let at = |t: &str| OffsetDateTime::parse(t, &Rfc3339).unwrap();
    assert!(plan::validate(path, &bytes, at("2036-11-18T12:00:00Z")).is_ok());
    let Err(diags) = plan::validate(path, &bytes, at("2036-11-18T14:00:00Z")) else {
        panic!("a root expiring before the rollout ends was accepted");
    };
    let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
    let text = text.join("\n");
    for what in [
        "roots.current",
        "cluster cluster1: intermediates.current",
        "cluster cluster2: intermediates.current",
    ] {
        assert!(
            text.contains(&format!("error[import-expired]: {what}: `")),
            "{what}:\n{text}"
        );
    }
    assert!(
        text.contains("expires 2036-11-19, before the rollout ends: it must stay valid for 1d1h8m (the shortest rotation 53m + workloadCertTTL 1d + safetyMargin 15m)"),
        "{text}"
    );
}

/// Issue 16: recipients are checked by the age crate's parser (a 62-character `age1…` string
/// with a bad checksum is refused), post-quantum ones are refused saying why, and a secret
/// key given as a recipient is never echoed.
#[test]
fn age_recipients_are_parsed_by_the_age_crate_and_secrets_never_echoed() {
    let diags = diagnostics("tests/invalid/recipient-invalid.yaml");
    let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
    let text = text.join("\n");
    assert_eq!(
        diags
            .iter()
            .filter(|d| d.code == "recipient-invalid")
            .count(),
        6,
        "{text}"
    );
    assert!(
        text.contains("age18wfpqaqejnsfp8ykhwxhhhgdruwrk2d8rlwfmp5tuf587npuaatsgu66eu` is not an age X25519 recipient (invalid Bech32 encoding)"),
        "{text}"
    );
    assert!(text.contains("cannot encrypt to it yet"), "{text}");
    assert!(!text.contains("AGE-SECRET-KEY-1QQQQ"), "{text}");
    // The last, valid recipient is accepted: only the six bad ones are reported.
    assert!(!text.contains("66et"), "{text}");
}

/// Issue 16.4: every unknown and repeated key is reported in one run, each at its own line
/// with the plan's line and a caret under the key.
#[test]
fn every_unknown_and_repeated_key_is_reported_at_once_with_a_snippet() {
    let diags = diagnostics("tests/invalid/yaml-many-keys.yaml");
    let places: Vec<(u64, u64)> = diags.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(
        places,
        [
            (5, 12),
            (8, 5),
            (10, 5),
            (13, 5),
            (18, 9),
            (22, 19),
            (25, 7)
        ]
    );
    assert!(diags.iter().all(|d| d.code == "yaml-invalid"));
    let first = diags[1].to_string();
    assert_eq!(
        first,
        "tests/invalid/yaml-many-keys.yaml:8:5: error[yaml-invalid]: spec.mesh: unknown field `trustDomian`, expected one of trustDomain, istioNamespace, secretName, secretFormat, dataPlane, minIstioVersion
  |
8 |     trustDomian: cluster.local
  |     ^^^^^^^^^^^
  |
  = help: fix the YAML at this place; `rootroll init` writes a commented example plan"
    );
}

/// istio-2026 §2: an ambient plan must say which ztunnel runs, since ztunnel below 1.24.6 /
/// 1.25.3 / 1.26.0 trusts only the first root of a bundle; the error points at `dataPlane`.
#[test]
fn an_ambient_plan_without_a_version_is_refused_at_data_plane() {
    let text = std::fs::read_to_string(root().join("plans/ambient.yaml")).unwrap();
    let without = text.replace("    minIstioVersion: \"1.28\"\n", "");
    assert_ne!(
        without, text,
        "plans/ambient.yaml no longer pins minIstioVersion"
    );
    let path = root().join("plans/ambient-unversioned.yaml");
    let Err(diags) = plan::validate(&path, without.as_bytes(), now()) else {
        panic!("an ambient plan without minIstioVersion was accepted");
    };
    let d = diags
        .iter()
        .find(|d| d.code == "istio-version-unsupported")
        .unwrap_or_else(|| panic!("{diags:?}"));
    assert!(d.message.contains("without mesh.minIstioVersion"), "{d}");
    let line = without
        .lines()
        .position(|l| l.contains("dataPlane: ambient"))
        .unwrap()
        + 1;
    assert_eq!(d.line as usize, line, "{d}");
    // With a fixed ztunnel it is accepted again (1.24.6 is the oldest with multi-root trust).
    let fixed = text.replace("\"1.28\"", "\"1.24.6\"");
    assert!(
        plan::validate(&path, fixed.as_bytes(), now()).is_ok(),
        "1.24.6 is refused"
    );
}
