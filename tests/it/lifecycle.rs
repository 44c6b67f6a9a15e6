//! Between rotations: expiry warnings (`rotation-start-by`, `rotation-start-soon`, the
//! start-by date in `status`) and resuming a rotation from `status` alone.
//!
//! The expiring CAs are generated at test time: a plan whose current root and intermediate
//! are valid 200 days is rendered at [`NOW`], and verify runs at a `--now` chosen from the
//! NotAfter that `status` reports, so nothing checked in can rot.

use std::path::Path;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::*;

const DEMO_KEY: &str = "plans/demo.agekey";

/// A one-cluster plan whose current root and intermediate expire 200 days after [`NOW`];
/// `rollout` is appended under `spec` as is.
fn short_lived_plan(rollout: &str) -> String {
    format!(
        r#"apiVersion: rootroll.dev/v1alpha1
kind: RotationPlan
metadata:
  name: short
spec:
  timing: {{workloadCertTTL: 24h, propagationDelay: 2m, safetyMargin: 15m}}
  gitops:
    ageRecipients: [age18wfpqaqejnsfp8ykhwxhhhgdruwrk2d8rlwfmp5tuf587npuaatsgu66et]
  roots:
    current:
      generate: {{algorithm: ecdsa-p256, validity: 200d, subject: {{organization: Istio, commonName: Root CA}}}}
    new:
      generate: {{algorithm: ecdsa-p256, validity: 3650d, subject: {{organization: Istio, commonName: Root CA 2027}}}}
  clusters:
    - name: one
      intermediates:
        current: {{generate: {{algorithm: ecdsa-p256, validity: 200d}}}}
        new: {{generate: {{algorithm: ecdsa-p256, validity: 1825d}}}}
{rollout}"#
    )
}

/// Renders the short-lived plan (encrypted) into a temp dir; returns it, the output directory
/// and the earliest NotAfter of phase 1's CAs as `status --format json` reports it.
fn render_short(rollout: &str) -> (tempfile::TempDir, String, OffsetDateTime) {
    let d = tempfile::tempdir().unwrap();
    let plan = d.path().join("plan.yaml");
    std::fs::write(&plan, short_lived_plan(rollout)).unwrap();
    let out = d.path().join("gitops");
    let o = rootroll(&[
        "render",
        plan.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = rootroll(&["status", out.to_str().unwrap(), "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let e = &v[0]["expiry"];
    assert_eq!(e["phase"], 1);
    let root = &e["cas"][0];
    assert_eq!(root["role"], "root");
    assert_eq!(root["subject"], "O=Istio, CN=Root CA");
    let not_after = OffsetDateTime::parse(root["notAfter"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(
        e["notAfter"], root["notAfter"],
        "the root expires first (with its intermediate): {e}"
    );
    assert!(
        e["setBy"].as_str().unwrap().starts_with("root A"),
        "a root that expires with its intermediate is named: {e}"
    );
    let dir = out.to_str().unwrap().to_string();
    (d, dir, not_after)
}

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

/// `verify offline` at `now`, JSON report and exit code.
fn verify_at(now: &str, dir: &str, extra: &[&str]) -> (serde_json::Value, Option<i32>, String) {
    let mut args = vec![
        "verify",
        "offline",
        dir,
        "--identity",
        DEMO_KEY,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let o = rootroll_at(now, &args);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (v, o.status.code(), stderr(&o))
}

/// The codes of findings that ran and did not pass.
fn not_passed(report: &serde_json::Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["passed"] == false && f.get("not_checked").is_none())
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_root_expiring_in_45_days_warns_and_in_10_days_fails() {
    let (_d, dir, not_after) = render_short("");
    let day = time::Duration::days(1);

    let (report, code, err) = verify_at(&at(not_after - 45 * day), &dir, &[]);
    assert_eq!(code, Some(0), "a warning does not fail: {err}");
    assert_eq!(
        not_passed(&report),
        [("rotation-start-soon".to_string(), "warning".to_string())],
        "only the expiry warning"
    );
    let e = &report["expiry"][0];
    assert_eq!(e["level"], "warn");
    // 45 days to NotAfter, minus the shortest rotation + TTL + margin (about a day).
    assert_eq!(e["daysLeft"], 43, "{e}");
    let start_by = OffsetDateTime::parse(e["startBy"].as_str().unwrap(), &Rfc3339).unwrap();
    let lead = not_after - start_by;
    assert!(
        lead > day && lead < 2 * day,
        "start-by = NotAfter - (shortest rotation + workload TTL 24h + margin): {lead}"
    );
    // The text report shows the warning and the date.
    let o = rootroll_at(
        &at(not_after - 45 * day),
        &["verify", "offline", &dir, "--identity", DEMO_KEY],
    );
    let text = stdout(&o);
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("the next rotation must start by"), "{text}");
    assert!(text.contains("1 warnings"), "{text}");

    let (report, code, _) = verify_at(&at(not_after - 10 * day), &dir, &[]);
    assert_eq!(code, Some(1), "10 days before expiry fails");
    assert_eq!(
        not_passed(&report),
        [("rotation-start-by".to_string(), "error".to_string())],
        "only the start-by gate fails"
    );
    assert_eq!(report["expiry"][0]["level"], "fail");

    // Far from expiry: both pass.
    let (report, code, _) = verify_at(&at(not_after - 200 * day), &dir, &[]);
    assert_eq!(code, Some(0));
    assert!(not_passed(&report).is_empty());
    assert_eq!(report["expiry"][0]["level"], "ok");
}

#[test]
fn thresholds_come_from_the_plan_and_the_flags_override_them() {
    let (_d, dir, not_after) = render_short("  rollout:\n    expiry: {warn: 20d, fail: 5d}\n");
    let rollout = std::fs::read_to_string(Path::new(&dir).join(".rootroll/rollout.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&rollout).unwrap();
    assert_eq!(
        v["expiry"],
        serde_json::json!({"warn": "20d", "fail": "5d"}),
        "recorded in the rollout file, so verify needs no plan"
    );
    let day = time::Duration::days(1);
    // 45 days: outside the plan's 20d warning.
    let (report, code, _) = verify_at(&at(not_after - 45 * day), &dir, &[]);
    assert_eq!(code, Some(0));
    assert!(not_passed(&report).is_empty(), "{:?}", not_passed(&report));
    // 10 days: inside 20d, outside 5d: a warning only.
    let (report, code, _) = verify_at(&at(not_after - 10 * day), &dir, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(report["expiry"][0]["level"], "warn");
    // The flags override the rollout file: 45 days is within --expiry-fail 60d.
    let (report, code, err) = verify_at(
        &at(not_after - 45 * day),
        &dir,
        &["--expiry-warn", "90d", "--expiry-fail", "60d"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(report["expiry"][0]["level"], "fail");
    assert_eq!(
        report["expiry"][0]["thresholds"],
        serde_json::json!({"warn": "90d", "fail": "60d"})
    );
}

#[test]
fn inverted_thresholds_are_refused_naming_the_flag_or_the_field() {
    let (_d, dir, _) = render_short("");
    // Both flags inverted.
    let (_, code, err) = verify_at(NOW, &dir, &["--expiry-warn", "10d", "--expiry-fail", "20d"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--expiry-fail 20d is longer than --expiry-warn 10d"),
        "{err}"
    );
    // One flag against the rollout file's default warn (90d).
    let (_, code, err) = verify_at(NOW, &dir, &["--expiry-fail", "100d"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--expiry-fail 100d is longer than expiry.warn 90d"),
        "{err}"
    );

    // In the plan: refused at the field, nothing written.
    let d = tempfile::tempdir().unwrap();
    let plan = d.path().join("plan.yaml");
    std::fs::write(
        &plan,
        short_lived_plan("  rollout:\n    expiry: {warn: 10d, fail: 20d}\n"),
    )
    .unwrap();
    let out = d.path().join("gitops");
    let o = rootroll(&[
        "render",
        plan.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("expiry-inverted"), "{err}");
    assert!(
        err.contains(
            "spec.rollout.expiry.fail (20d) is longer than spec.rollout.expiry.warn (10d)"
        ),
        "{err}"
    );
    assert!(err.contains("plan.yaml:"), "points into the plan: {err}");
    assert!(!out.exists(), "nothing written");
}

#[test]
fn expiry_without_a_key_and_a_secret_the_rollout_file_does_not_know_fails() {
    let (_d, dir, not_after) = render_short("");
    // No identity: the certificates come from the rollout file, named by the Secret's
    // plaintext annotations, so a scheduled job without a CA key still gets the date.
    let o = rootroll_at(
        &at(not_after - time::Duration::days(10)),
        &["verify", "offline", &dir, "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["expiry"][0]["level"], "fail", "{}", stderr(&o));
    // A signer annotation that names no certificate of the rollout file: fail closed.
    let secret = Path::new(&dir).join("clusters/one/istio-ca/phases/1-initial/cacerts.sops.yaml");
    let text = std::fs::read_to_string(&secret).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("rootroll.dev/signer-sha256:"))
        .unwrap();
    let forged = text.replace(
        line,
        &format!("        rootroll.dev/signer-sha256: {}", "a".repeat(64)),
    );
    std::fs::write(&secret, forged).unwrap();
    let (report, code, _) = verify_at(NOW, &dir, &[]);
    assert_eq!(code, Some(1));
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "rotation-start-by")
        .unwrap();
    assert_eq!(f["passed"], false);
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("rootroll.dev/signer-sha256 is not one's current intermediate"),
        "{f}"
    );
    let o = rootroll(&["status", &dir]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "status names the problem and exits 2"
    );
    assert!(
        stderr(&o).contains("the expiry cannot be known"),
        "{}",
        stderr(&o)
    );
}

fn status_json(now: &str, dir: &Path) -> serde_json::Value {
    let o = rootroll_at(now, &["status", dir.to_str().unwrap(), "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn cluster<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v.as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"] == name)
        .unwrap()
}

fn promote(d: &Path, args: &[&str]) {
    let out = d.join("gitops");
    let mut all = vec!["promote", out.to_str().unwrap(), "--identity", DEMO_KEY];
    all.extend_from_slice(args);
    let o = rootroll(&all);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Runs a command `status` printed (`rootroll promote …`), word by word, the way a user pastes
/// it, with the operator's identity where sops looks for it (SOPS_AGE_KEY_FILE).
fn run_printed(cmd: &str) -> std::process::Output {
    let words: Vec<&str> = cmd.split(' ').collect();
    assert_eq!(words[0], "rootroll", "{cmd}");
    run(std::process::Command::new(env!("CARGO_BIN_EXE_rootroll"))
        .current_dir(root())
        .env("SOPS_AGE_KEY_FILE", root().join(DEMO_KEY))
        .args(["--now", NOW])
        .args(&words[1..]))
}

#[test]
fn status_names_the_next_command_and_what_it_waits_for_through_a_whole_rotation() {
    let d = rendered_repo("plans/fleet.yaml");
    let gitops = d.path().join("gitops");
    let g = gitops.to_str().unwrap();

    // At phase 1: verify live, then promote to 2; the soak is over (rendered long ago).
    let v = status_json(NOW, &gitops);
    for c in v.as_array().unwrap() {
        let name = c["cluster"].as_str().unwrap();
        let next = &c["next"];
        assert_eq!(
            next["commands"],
            serde_json::json!([
                format!("rootroll verify live {g} --cluster {name}"),
                format!("rootroll promote {g} --cluster {name} --to 2 --commit"),
            ])
        );
        let waits: Vec<&str> = next["waitsFor"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        assert_eq!(waits.len(), 1, "only the live gates: {waits:?}");
        assert!(waits[0].contains("proxy-trusts-roots"), "{waits:?}");
        // Expiry: every CA of phase 1 with its NotAfter, the start-by date and who sets it.
        let e = &c["expiry"];
        assert_eq!(
            e["cas"].as_array().unwrap().len(),
            2,
            "root A and the signer"
        );
        for field in ["notAfter", "startBy", "setBy", "leadTime"] {
            assert!(e[field].is_string(), "{field}: {e}");
        }
        assert!(e["daysLeft"].as_i64().unwrap() > 1000);
        assert_eq!(e["level"], "ok");
    }
    let o = rootroll(&["status", g]);
    let text = stdout(&o);
    let e = &cluster(&v, "us-east")["expiry"];
    let not_after = OffsetDateTime::parse(e["notAfter"].as_str().unwrap(), &Rfc3339).unwrap();
    let shown = format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        not_after.year(),
        u8::from(not_after.month()),
        not_after.day(),
        not_after.hour(),
        not_after.minute()
    );
    assert!(text.contains(&shown), "NotAfter with date and time: {text}");
    assert!(text.contains("start the next rotation by"), "{text}");
    assert!(
        text.contains(&format!("next: rootroll verify live {g} --cluster us-east")),
        "{text}"
    );

    // Run exactly what status printed, for every cluster: the fleet reaches phase 2.
    for c in v.as_array().unwrap() {
        let cmd = c["next"]["commands"][1].as_str().unwrap();
        if c["cluster"] == "us-east" {
            let o = run_printed(cmd);
            assert!(o.status.success(), "{cmd}: {}", stderr(&o));
        }
    }
    promote(
        d.path(),
        &[
            "--cluster",
            "us-west",
            "--cluster",
            "eu-central",
            "--to",
            "2",
            "--commit",
        ],
    );

    // Just after the promotion, the phase-2 soak is what it waits for.
    let committed = git(d.path(), &["log", "-1", "--format=%cI"]);
    let committed = OffsetDateTime::parse(committed.trim(), &Rfc3339).unwrap();
    let soon = at(committed + time::Duration::minutes(1));
    let v = status_json(&soon, &gitops);
    let east = cluster(&v, "us-east");
    let waits = east["next"]["waitsFor"].to_string();
    assert!(
        waits.contains("soak: ") && waits.contains(" left"),
        "{waits}"
    );
    assert_eq!(
        east["next"]["commands"][1],
        format!("rootroll promote {g} --cluster us-east --to 3 --commit")
    );

    // The canary goes to 3: it waits for the skew rule before 4; the others may follow to 3.
    promote(d.path(), &["--cluster", "us-east", "--to", "3", "--commit"]);
    let v = status_json(NOW, &gitops);
    let east = cluster(&v, "us-east");
    assert_eq!(
        east["next"]["commands"][1],
        format!("rootroll promote {g} --cluster us-east --to 4 --commit")
    );
    let waits = east["next"]["waitsFor"].to_string();
    assert!(
        waits.contains("skew: ") && waits.contains("us-west at phase 2"),
        "{waits}"
    );
    let west = cluster(&v, "us-west");
    assert!(
        !west["next"]["waitsFor"].to_string().contains("skew"),
        "{}",
        west["next"]
    );
    // In phase 3 the signer is B's intermediate, the bundle holds A and B.
    let cas = east["expiry"]["cas"].as_array().unwrap();
    let names: Vec<&str> = cas.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["A", "B", "new"], "A+B+B lists B once");

    // Finish: everyone to 3, then 4; status says the rotation is over and how to go on.
    promote(
        d.path(),
        &[
            "--cluster",
            "us-west",
            "--cluster",
            "eu-central",
            "--to",
            "3",
            "--commit",
        ],
    );
    let v = status_json(NOW, &gitops);
    let half = cluster(&v, "us-east");
    assert!(half["next"]["waitsFor"].to_string().contains("live gates"));
    // The canary finishes first: it has nothing to run, and says who it waits for.
    promote(d.path(), &["--cluster", "us-east", "--to", "4", "--commit"]);
    let v = status_json(NOW, &gitops);
    let east = &cluster(&v, "us-east")["next"];
    assert_eq!(east["commands"], serde_json::json!([]), "{east}");
    assert_eq!(east["finished"], false);
    let waits = east["waitsFor"].to_string();
    assert!(
        waits.contains("eu-central at phase 3") && waits.contains("us-west at phase 3"),
        "{waits}"
    );
    promote(d.path(), &["--all-clusters", "--to", "4", "--commit"]);
    let v = status_json(NOW, &gitops);
    for c in v.as_array().unwrap() {
        assert_eq!(c["next"]["finished"], true, "{c}");
        assert_eq!(
            c["next"]["commands"],
            serde_json::json!([format!(
                "rootroll init --from-render {g} --output {g}-next.yaml --out {g}-next"
            )])
        );
        assert_eq!(
            c["expiry"]["cas"].as_array().unwrap().len(),
            2,
            "root B and B's intermediate"
        );
    }
    let text = stdout(&rootroll(&["status", g]));
    assert!(
        text.contains("rotation finished: the next one starts from a plan"),
        "{text}"
    );
}

/// The decrypted `data` of a SOPS-encrypted Secret, read by the real sops binary.
fn sops_data(file: &Path) -> serde_json::Value {
    let out = must(
        std::process::Command::new("sops")
            .arg("--disable-version-check")
            .env("SOPS_AGE_KEY_FILE", root().join(DEMO_KEY))
            .args(["--decrypt", "--output-type", "json"])
            .arg(file),
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    v["data"].clone()
}

/// When the next rotation is scaffolded, rendered and verified.
const NEXT_NOW: &str = "2027-06-01T00:00:00Z";

/// Renders the next rotation's plan `p` into `out` at [`NEXT_NOW`].
fn render_next(p: &Path, out: &Path) {
    let o = rootroll_at(
        NEXT_NOW,
        &[
            "render",
            p.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--identity",
            DEMO_KEY,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `init --from-render` with no identity reachable but `ids` (no env keys, an empty HOME).
fn from_render(dir: &Path, next: &Path, ids: &[&Path]) -> std::process::Output {
    from_render_with(dir, next, ids, &[])
}

/// [`from_render`] with `extra` arguments.
fn from_render_with(
    dir: &Path,
    next: &Path,
    ids: &[&Path],
    extra: &[&str],
) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_rootroll"));
    c.current_dir(root())
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", home.path())
        .args(["--now", NEXT_NOW, "init", "--from-render"])
        .arg(dir)
        .arg("--output")
        .arg(next.join("plan.yaml"))
        .arg("--out")
        .arg(next.join("gitops"))
        .args(["--name", "fleet-next"]);
    for id in ids {
        c.arg("--identity").arg(id);
    }
    c.args(extra);
    run(&mut c)
}

#[test]
fn init_from_render_starts_the_next_rotation_whose_phase_1_is_the_old_phase_4() {
    let d = rendered_repo("plans/fleet.yaml");
    let gitops = d.path().join("gitops");
    let next = d.path().join("next");
    let key = root().join(DEMO_KEY);

    // Mid-rotation: refused, naming the cluster and its pointer; nothing written.
    let o = from_render(&gitops, &next, &[&key]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("eu-central is at phase 1 (clusters/eu-central/istio-ca/kustomization.yaml): the rotation is not finished"),
        "{err}"
    );
    assert!(!next.exists(), "nothing written");

    for n in ["2", "3", "4"] {
        promote(d.path(), &["--all-clusters", "--to", n, "--commit"]);
    }
    // Finished, but no identity: refused.
    let o = from_render(&gitops, &next, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("needs an age identity"),
        "{}",
        stderr(&o)
    );
    assert!(!next.exists());
    // An identity the phase-4 Secrets are not encrypted to: refused, naming the file.
    let other = d.path().join("other.agekey");
    must(
        std::process::Command::new("age-keygen")
            .arg("-o")
            .arg(&other),
    );
    let o = from_render(&gitops, &next, &[&other]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("clusters/eu-central/istio-ca/phases/4-finalize/cacerts.sops.yaml: the identity cannot open it"),
        "{err}"
    );
    assert!(!next.exists());

    // The next plan: root B is today's root, B's intermediates are the current ones.
    let o = from_render(&gitops, &next, &[&key]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = std::fs::read_to_string(next.join("plan.yaml")).unwrap();
    assert!(plan.contains("key: state"), "{plan}");
    assert!(
        plan.contains("repoPath: \"infrastructure/istio-ca\"")
            && plan.contains("safetyMargin: \"30m\""),
        "mesh, timing and gitops carry over: {plan}"
    );
    assert!(
        !plan.contains("PRIVATE KEY") && !tree(&next).keys().any(|f| f.ends_with("ca-key.pem")),
        "the keys are only in the encrypted state"
    );
    let p = next.join("plan.yaml");
    let out = next.join("gitops");
    render_next(&p, &out);
    for c in ["eu-central", "us-east", "us-west"] {
        let old = sops_data(&gitops.join(format!(
            "clusters/{c}/istio-ca/phases/4-finalize/cacerts.sops.yaml"
        )));
        let new = sops_data(&out.join(format!(
            "clusters/{c}/istio-ca/phases/1-initial/cacerts.sops.yaml"
        )));
        assert_eq!(
            old, new,
            "{c}: the next rotation's phase 1 holds the old phase 4's bytes"
        );
        assert_eq!(old.as_object().unwrap().len(), 4, "all four files compared");
    }
    // The next rotation passes every offline gate.
    let o = rootroll_at(
        "2027-06-01T00:00:00Z",
        &[
            "verify",
            "offline",
            out.to_str().unwrap(),
            "--identity",
            DEMO_KEY,
        ],
    );
    assert!(o.status.success(), "{}", stdout(&o));
}

/// The public key of a new age identity written to `file`.
fn new_age_key(file: &Path) -> String {
    must(std::process::Command::new("age-keygen").arg("-o").arg(file));
    age_public_key(file)
}

/// The next rotation keeps what the finished one's plan decided beyond mesh and timing: the
/// recipients by role (least privilege: each cluster's key reads only its own Secrets), the
/// expiry thresholds and the waves.
#[test]
fn init_from_render_carries_the_roles_the_expiry_and_the_waves() {
    let keys = tempfile::tempdir().unwrap();
    let demo = "age18wfpqaqejnsfp8ykhwxhhhgdruwrk2d8rlwfmp5tuf587npuaatsgu66et";
    let clusters = ["us-east", "us-west", "eu-central"];
    let flux: Vec<String> = clusters
        .iter()
        .map(|c| new_age_key(&keys.path().join(format!("{c}.agekey"))))
        .collect();
    let mut text = std::fs::read_to_string(root().join("plans/fleet.yaml")).unwrap();
    let mut roles = format!("    recipients:\n      ops: \"{demo}\"\n");
    for (c, k) in clusters.iter().zip(&flux) {
        roles.push_str(&format!("      flux-{c}: \"{k}\"\n"));
        text = text.replace(
            &format!("    - name: {c}\n"),
            &format!("    - name: {c}\n      recipients: [flux-{c}]\n"),
        );
    }
    roles.push_str("    operators: [ops]\n");
    text = text.replace(&format!("    ageRecipients:\n      - {demo}\n"), &roles);
    text = text.replace(
        "    repoPath: infrastructure/istio-ca\n",
        "    repoPath: infrastructure/istio-ca\n  rollout:\n    expiry: {warn: 120d, fail: 45d}\n    waves:\n      - [eu-central]\n      - [us-east, us-west]\n",
    );
    assert!(
        text.contains("operators: [ops]") && text.contains("waves:"),
        "{text}"
    );
    let plan = keys.path().join("fleet-roles.yaml");
    std::fs::write(&plan, &text).unwrap();
    let d = rendered_repo(plan.to_str().unwrap());
    for n in ["2", "3", "4"] {
        promote(d.path(), &["--wave", "1", "--to", n, "--commit"]);
        promote(d.path(), &["--wave", "2", "--to", n, "--commit"]);
    }
    let next = d.path().join("next");
    let demo_key = root().join(DEMO_KEY);
    // --age-recipient would flatten the roles: refused, nothing written.
    let o = from_render_with(
        &d.path().join("gitops"),
        &next,
        &[&demo_key],
        &["--age-recipient", demo],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("drop --age-recipient to carry the roles"),
        "{}",
        stderr(&o)
    );
    assert!(!next.exists(), "nothing written");
    let o = from_render(&d.path().join("gitops"), &next, &[&demo_key]);
    assert!(o.status.success(), "{}", stderr(&o));
    let new_plan = std::fs::read_to_string(next.join("plan.yaml")).unwrap();
    for want in [
        format!("      \"ops\": \"{demo}\"\n"),
        "    operators:\n      - \"ops\"\n".to_string(),
        "      recipients:\n        - \"flux-eu-central\"\n".to_string(),
        "    expiry:\n      warn: \"120d\"\n      fail: \"45d\"\n".to_string(),
        "    waves:\n      - [\"eu-central\"]\n      - [\"us-east\", \"us-west\"]\n".to_string(),
    ] {
        assert!(new_plan.contains(&want), "missing {want:?} in:\n{new_plan}");
    }
    assert!(!new_plan.contains("ageRecipients"), "{new_plan}");
    // It renders and passes every offline gate, sops-recipients included: each cluster's
    // Secrets are readable by the operator and that cluster's key only.
    let out = next.join("gitops");
    let p = next.join("plan.yaml");
    render_next(&p, &out);
    let (v, code, err) = verify_at(NEXT_NOW, out.to_str().unwrap(), &[]);
    assert_eq!(code, Some(0), "{:?} {err}", not_passed(&v));
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "sops-recipients" && f["passed"] == true),
        "{v:#}"
    );
}
