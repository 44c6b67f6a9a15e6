//! `promote` and `status` on a real temporary Git repository.

use std::path::Path;

use crate::common::*;

const DEMO_KEY: &str = "plans/demo.agekey";

/// A Git repo with `plans/fleet.yaml` rendered (encrypted) under `gitops/` and committed.
fn repo() -> tempfile::TempDir {
    rendered_repo("plans/fleet.yaml")
}

fn promote(d: &Path, args: &[&str]) -> std::process::Output {
    let out = d.join("gitops");
    let mut all = vec!["promote", out.to_str().unwrap(), "--identity", DEMO_KEY];
    all.extend_from_slice(args);
    rootroll(&all)
}

fn untouched(d: &Path, head: &str) {
    assert_eq!(git(d, &["rev-parse", "HEAD"]), head, "no commit made");
    assert_eq!(
        git(d, &["status", "--porcelain"]),
        "",
        "working tree untouched"
    );
}

#[test]
fn promote_commits_with_trailers_and_status_reports_it() {
    let d = repo();
    let o = promote(d.path(), &["--all-clusters", "--to", "2", "--commit"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let trailers = git(d.path(), &["log", "-1", "--format=%(trailers:only,unfold)"]);
    assert!(trailers.contains("Rootroll-Plan: fleet"), "{trailers}");
    for c in ["eu-central", "us-east", "us-west"] {
        assert!(
            trailers.contains(&format!("Rootroll-Cluster: {c}")),
            "{trailers}"
        );
    }
    assert!(
        trailers.contains("Rootroll-From-Phase: 1-initial")
            && trailers.contains("Rootroll-To-Phase: 2-trust-both")
    );
    assert_eq!(git(d.path(), &["status", "--porcelain"]), "");
    let changed = git(d.path(), &["show", "--name-only", "--format="]);
    assert_eq!(
        changed.lines().count(),
        3,
        "only the three pointers: {changed}"
    );
    let s = &kustomize(&d.path().join("gitops/clusters/us-east/istio-ca"))[0];
    assert_eq!(s["metadata"]["labels"]["rootroll.dev/phase"], "2");

    let o = rootroll(&[
        "status",
        d.path().join("gitops").to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for c in v.as_array().unwrap() {
        assert_eq!(c["activePhase"], 2);
        assert!(
            c["promotedAt"].as_str().is_some(),
            "promotion time read from Git"
        );
        assert!(
            c["nextGates"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g == "proxy-trusts-roots")
        );
        assert!(c["soakLeft"].as_str().is_some());
    }
}

#[test]
fn rollback_one_step_is_allowed() {
    let d = repo();
    assert!(
        promote(d.path(), &["--all-clusters", "--to", "2", "--commit"])
            .status
            .success()
    );
    let o = promote(d.path(), &["--all-clusters", "--to", "1", "--commit"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(git(d.path(), &["log", "-1", "--format=%s"]).contains("roll back"));
}

#[test]
fn refusals_leave_the_repo_untouched() {
    let d = repo();
    let head = git(d.path(), &["rev-parse", "HEAD"]);
    // Skipping a phase.
    let o = promote(d.path(), &["--cluster", "us-east", "--to", "3", "--commit"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("one phase at a time"), "{}", stderr(&o));
    untouched(d.path(), &head);
    // Unknown cluster.
    let o = promote(d.path(), &["--cluster", "mars", "--to", "2", "--commit"]);
    assert!(
        stderr(&o).contains("cluster `mars` is not in"),
        "{}",
        stderr(&o)
    );
    untouched(d.path(), &head);
    // Skew rule (issue 14): a canary cluster may switch its issuer alone once every cluster is
    // at 2; it may not drop A (phase 4) while the others are still at 2.
    assert!(
        promote(d.path(), &["--all-clusters", "--to", "2", "--commit"])
            .status
            .success()
    );
    let o = promote(d.path(), &["--cluster", "us-east", "--to", "3", "--commit"]);
    assert!(o.status.success(), "the canary to 3: {}", stderr(&o));
    let head = git(d.path(), &["rev-parse", "HEAD"]);
    let o = promote(d.path(), &["--cluster", "us-east", "--to", "4", "--commit"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "refused: us-east at phase 4 while eu-central at phase 2, us-west at phase 2 (phase 4 anywhere needs every cluster at 3 or later)"
        ),
        "{}",
        stderr(&o)
    );
    untouched(d.path(), &head);
    // A failing gate for the target phase: phase 3 of us-west tampered.
    let f = d
        .path()
        .join("gitops/clusters/us-west/istio-ca/phases/3-switch-issuer/cacerts.sops.yaml");
    let text = std::fs::read_to_string(&f)
        .unwrap()
        .replace("phase-name: switch-issuer", "phase-name: tampered");
    std::fs::write(&f, text).unwrap();
    git(d.path(), &["commit", "-qam", "tamper"]);
    let head = git(d.path(), &["rev-parse", "HEAD"]);
    let o = promote(d.path(), &["--all-clusters", "--to", "3", "--commit"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("sops-mac us-west/3-switch-issuer"),
        "{}",
        stderr(&o)
    );
    untouched(d.path(), &head);
}

#[test]
fn a_failing_commit_hook_restores_the_pointer() {
    let d = repo();
    let head = git(d.path(), &["rev-parse", "HEAD"]);
    let hook = d.path().join(".git/hooks/pre-commit");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'policy: no promotions on Fridays' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = promote(d.path(), &["--all-clusters", "--to", "2", "--commit"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no promotions on Fridays"),
        "{}",
        stderr(&o)
    );
    untouched(d.path(), &head);
}

/// A Git repo with the demo plan rendered under `gitops/`, committed at `at`.
fn demo_repo_committed_at(at: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    git(d.path(), &["init", "-q"]);
    git(d.path(), &["config", "user.email", "ci@example.com"]);
    git(d.path(), &["config", "user.name", "CI"]);
    git(d.path(), &["config", "commit.gpgsign", "false"]);
    let out = d.path().join("gitops");
    let o = rootroll(&["render", "plans/demo.yaml", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    git(d.path(), &["add", "-A"]);
    let ok = std::process::Command::new("git")
        .arg("-C")
        .arg(d.path())
        .args(["commit", "-qm", "render"])
        .env("GIT_COMMITTER_DATE", at)
        .env("GIT_AUTHOR_DATE", at)
        .status()
        .unwrap();
    assert!(ok.success());
    d
}

// See: issue 14 ("Nothing enforces the soak time").
#[test]
fn promote_refuses_to_leave_a_phase_before_its_soak_and_force_records_the_override() {
    let d = demo_repo_committed_at("2027-01-01T00:00:00Z");
    let out = d.path().join("gitops");
    let head = git(d.path(), &["rev-parse", "HEAD"]);
    // Phase 1's minimum soak is 17m (propagation 2m + margin 15m); 5 minutes have passed.
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "promote",
            out.to_str().unwrap(),
            "--cluster",
            "demo",
            "--to",
            "2",
            "--commit",
            "--identity",
            DEMO_KEY,
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_string).collect::<Vec<String>>()
    };
    let run = |at: &str, extra: &[&'static str]| {
        let a = args(extra);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        rootroll_at(at, &refs)
    };
    let o = run("2027-01-01T00:05:00Z", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains(
            "refused: demo entered phase 1 2027-01-01T00:00:00Z; its minimum soak is 17m: 12m left"
        ),
        "{}",
        stderr(&o)
    );
    untouched(d.path(), &head);
    // Once the soak is over, the same promotion goes through and says nothing was forced.
    let o = run("2027-01-01T00:17:00Z", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let msg = git(d.path(), &["log", "-1", "--format=%B"]);
    assert!(!msg.contains("Rootroll-Forced"), "{msg}");
    assert!(msg.contains("Gates were checked"), "{msg}");
    // Early, with --force: the commit records what was overridden.
    git(d.path(), &["reset", "-q", "--hard", head.trim()]);
    let o = run("2027-01-01T00:05:00Z", &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let trailers = git(d.path(), &["log", "-1", "--format=%(trailers:only,unfold)"]);
    assert!(trailers.contains("Rootroll-Forced: soak"), "{trailers}");
    assert!(trailers.contains("Rootroll-Forced: gates"), "{trailers}");
    assert!(!trailers.contains("Rootroll-Forced: skew"), "{trailers}");
}

#[test]
fn promote_of_an_uncommitted_tree_says_the_soak_cannot_be_proven() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let o = rootroll(&["render", "plans/demo.yaml", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = tree(&out);
    let o = rootroll(&[
        "promote",
        out.to_str().unwrap(),
        "--cluster",
        "demo",
        "--to",
        "2",
        "--identity",
        DEMO_KEY,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "demo's pointer is not in Git history, so its phase-1 soak (17m) cannot be proven"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(tree(&out), before);
    let o = rootroll(&[
        "promote",
        out.to_str().unwrap(),
        "--cluster",
        "demo",
        "--to",
        "2",
        "--force",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}
