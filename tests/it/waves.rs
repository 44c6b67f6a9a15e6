//! Fleet rollouts as operators run them (issue 14): waves, a canary cluster ahead of the
//! rest, enforced soak times, clusters joining and leaving mid-rotation, and Argo CD wiring
//! that works as rendered. Everything runs on a real temporary Git repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

const DEMO_KEY: &str = "plans/demo.agekey";
const CLUSTERS: [&str; 3] = ["us-east", "us-west", "eu-central"];

/// `plans/fleet.yaml` with three waves (a canary, then one cluster, then the last), plus
/// `extra` clusters appended to spec.clusters and to the last wave.
fn fleet_plan_with_waves(keep: &[&str], extra: &[&str]) -> String {
    let text = std::fs::read_to_string(root().join("plans/fleet.yaml")).unwrap();
    let (head, clusters) = text.split_once("  clusters:\n").unwrap();
    let mut out = format!("{head}  clusters:\n");
    // Each cluster entry is four lines starting at `    - name: …`.
    let lines: Vec<&str> = clusters.lines().collect();
    for entry in lines.chunks(4) {
        let name = entry[0].trim().trim_start_matches("- name: ");
        if keep.contains(&name) {
            for l in entry {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    for name in extra {
        out.push_str(&format!(
            "    - name: {name}\n      intermediates:\n        current: {{generate: {{algorithm: ecdsa-p256}}}}\n        new: {{generate: {{algorithm: ecdsa-p384, validity: 1095d}}}}\n"
        ));
    }
    let mut waves: Vec<Vec<&str>> = vec![vec!["us-east"], vec!["us-west"], vec!["eu-central"]];
    for w in &mut waves {
        w.retain(|c| keep.contains(c));
    }
    waves.retain(|w| !w.is_empty());
    waves.last_mut().unwrap().extend_from_slice(extra);
    out.push_str("  rollout:\n    waves:\n");
    for w in waves {
        out.push_str(&format!("      - [{}]\n", w.join(", ")));
    }
    out
}

/// A Git repository holding `plans/fleet.yaml` (with three waves) and its render under
/// `gitops/`, committed at 2027-01-01T00:00:00Z.
fn waves_repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    git(d.path(), &["init", "-q"]);
    git(d.path(), &["config", "user.email", "ci@example.com"]);
    git(d.path(), &["config", "user.name", "CI"]);
    git(d.path(), &["config", "commit.gpgsign", "false"]);
    std::fs::create_dir_all(d.path().join("plans")).unwrap();
    std::fs::write(plan(d.path()), fleet_plan_with_waves(&CLUSTERS, &[])).unwrap();
    render(d.path());
    commit_at(d.path(), "2027-01-01T00:00:00Z", "render");
    d
}

fn plan(d: &Path) -> PathBuf {
    d.join("plans/fleet.yaml")
}

fn gitops(d: &Path) -> PathBuf {
    d.join("gitops")
}

fn render(d: &Path) {
    let o = rootroll(&[
        "render",
        plan(d).to_str().unwrap(),
        "--out",
        gitops(d).to_str().unwrap(),
        "--identity",
        DEMO_KEY,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn commit_at(d: &Path, at: &str, msg: &str) {
    git(d, &["add", "-A"]);
    let ok = Command::new("git")
        .arg("-C")
        .arg(d)
        .args(["commit", "-qm", msg])
        .env("GIT_COMMITTER_DATE", at)
        .env("GIT_AUTHOR_DATE", at)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// `rootroll --now AT promote gitops ARGS --commit`, the commit dated AT.
fn promote_at(d: &Path, at: &str, args: &[&str]) -> std::process::Output {
    let out = gitops(d);
    run(Command::new(env!("CARGO_BIN_EXE_rootroll"))
        .current_dir(root())
        .env("GIT_COMMITTER_DATE", at)
        .env("GIT_AUTHOR_DATE", at)
        .args(["--now", at, "promote", out.to_str().unwrap()])
        .args(args)
        .args(["--commit", "--identity", DEMO_KEY]))
}

fn untouched(d: &Path, head: &str) {
    assert_eq!(git(d, &["rev-parse", "HEAD"]), head, "no commit made");
    assert_eq!(git(d, &["status", "--porcelain"]), "", "tree untouched");
}

fn verify_offline(d: &Path, at: &str) -> (std::process::Output, serde_json::Value) {
    let o = rootroll_at(
        at,
        &[
            "verify",
            "offline",
            gitops(d).to_str().unwrap(),
            "--identity",
            DEMO_KEY,
            "--format",
            "json",
        ],
    );
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (o, v)
}

fn finding<'a>(report: &'a serde_json::Value, code: &str) -> &'a serde_json::Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
        .unwrap_or_else(|| panic!("no {code} finding"))
}

/// sha256 of every file of `cluster`'s tree and of its Flux Kustomization.
fn fingerprints(d: &Path, cluster: &str) -> BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    let out = gitops(d);
    let mut v: BTreeMap<String, String> = tree(&out.join("clusters").join(cluster))
        .into_iter()
        .map(|(p, b)| (format!("clusters/{cluster}/{p}"), hex(&Sha256::digest(&b))))
        .collect();
    let flux = format!("flux/{cluster}-istio-ca.yaml");
    v.insert(
        flux.clone(),
        hex(&Sha256::digest(std::fs::read(out.join(&flux)).unwrap())),
    );
    assert!(v.len() > 10, "{cluster}: {v:?}");
    v
}

/// A phase Secret's data, decrypted by the real `sops`.
fn decrypted(d: &Path, cluster: &str, phase: &str) -> BTreeMap<String, Vec<u8>> {
    let file = gitops(d).join(format!(
        "clusters/{cluster}/istio-ca/phases/{phase}/cacerts.sops.yaml"
    ));
    let json = must(
        Command::new("sops")
            .args(["--disable-version-check", "-d", "--output-type", "json"])
            .arg(&file)
            .env("SOPS_AGE_KEY_FILE", root().join(DEMO_KEY)),
    );
    secret_data(&serde_json::from_slice(&json).unwrap())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn active(d: &Path, cluster: &str) -> String {
    let p = gitops(d).join(format!("clusters/{cluster}/istio-ca/kustomization.yaml"));
    let text = std::fs::read_to_string(p).unwrap();
    text.lines()
        .find_map(|l| {
            let l = l.trim().strip_prefix("- ")?.trim_matches('"');
            l.strip_prefix("phases/").map(str::to_string)
        })
        .unwrap()
}

/// The "done means" of issue 14, in order, on one repository.
#[test]
fn a_canary_wave_leads_the_fleet_and_a_fourth_cluster_joins_at_phase_3() {
    let d = waves_repo();
    let p = d.path();
    // Every wave to phase 2, one commit per wave.
    for w in ["1", "2", "3"] {
        let o = promote_at(p, "2027-01-01T01:00:00Z", &["--wave", w, "--to", "2"]);
        assert!(o.status.success(), "wave {w}: {}", stderr(&o));
    }
    let subjects = git(p, &["log", "-3", "--format=%s"]);
    assert_eq!(
        subjects,
        "istio-ca: promote eu-central to phase 2-trust-both\n\
         istio-ca: promote us-west to phase 2-trust-both\n\
         istio-ca: promote us-east to phase 2-trust-both\n"
    );

    // The canary too early: refused with the time left, nothing changes.
    let head = git(p, &["rev-parse", "HEAD"]);
    let o = promote_at(p, "2027-01-01T01:10:00Z", &["--wave", "1", "--to", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "refused: us-east entered phase 2 2027-01-01T01:00:00Z; its minimum soak is 35m: 25m left"
        ),
        "{}",
        stderr(&o)
    );
    untouched(p, &head);
    // --force records the override.
    let o = promote_at(
        p,
        "2027-01-01T01:10:00Z",
        &["--wave", "1", "--to", "3", "--force"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let trailers = git(p, &["log", "-1", "--format=%(trailers:only,unfold)"]);
    assert!(trailers.contains("Rootroll-Forced: soak"), "{trailers}");
    assert!(trailers.contains("Rootroll-Cluster: us-east"), "{trailers}");
    assert!(
        !trailers.contains("Rootroll-Cluster: us-west"),
        "{trailers}"
    );
    assert_eq!(active(p, "us-east"), "3-switch-issuer");
    assert_eq!(active(p, "us-west"), "2-trust-both");

    // The mixed state (canary at 3, the rest at 2) passes every offline gate, the matrix too.
    let (o, report) = verify_offline(p, "2027-01-01T02:00:00Z");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let lockstep = finding(&report, "lockstep");
    assert_eq!(lockstep["passed"], true, "{lockstep}");
    assert!(
        lockstep["message"].as_str().unwrap().contains("us-east=3"),
        "{lockstep}"
    );

    // Phase 4 for the canary while the others are at 2: refused, naming who is behind.
    let head = git(p, &["rev-parse", "HEAD"]);
    let o = promote_at(p, "2027-01-01T03:00:00Z", &["--wave", "1", "--to", "4"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "refused: us-east at phase 4 while eu-central at phase 2, us-west at phase 2 (phase 4 anywhere needs every cluster at 3 or later)"
        ),
        "{}",
        stderr(&o)
    );
    untouched(p, &head);
    // --wave with --cluster, and a wave that does not exist: clear errors, nothing changes.
    let o = promote_at(
        p,
        "2027-01-01T03:00:00Z",
        &["--wave", "2", "--cluster", "us-west", "--to", "3"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("--wave <N>") && err.contains("--cluster"),
        "{err}"
    );
    untouched(p, &head);
    let o = promote_at(p, "2027-01-01T03:00:00Z", &["--wave", "4", "--to", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "--wave 4: the rollout has 3 wave(s) (1: us-east; 2: us-west; 3: eu-central); give --wave 1 to 3"
        ),
        "{}",
        stderr(&o)
    );
    untouched(p, &head);

    // The rest of the fleet follows the canary to phase 3.
    for w in ["2", "3"] {
        let o = promote_at(p, "2027-01-01T03:00:00Z", &["--wave", w, "--to", "3"]);
        assert!(o.status.success(), "wave {w}: {}", stderr(&o));
    }

    // status shows the fleet by wave.
    let o = rootroll_at(
        "2027-01-01T03:10:00Z",
        &["status", gitops(p).to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    // The table comes first, one line per wave and cluster; each cluster's details follow.
    let order: Vec<&str> = text
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        order,
        ["wave", "us-east", "wave", "us-west", "wave", "eu-central"],
        "{text}"
    );
    assert!(text.contains("wave 2\nus-west "), "{text}");
    let o = rootroll_at(
        "2027-01-01T03:10:00Z",
        &["status", gitops(p).to_str().unwrap(), "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let waves: Vec<(String, u64)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cluster"].as_str().unwrap().to_string(),
                c["wave"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        waves,
        [
            ("us-east".to_string(), 1),
            ("us-west".to_string(), 2),
            ("eu-central".to_string(), 3)
        ]
    );
    // `plan` lists the waves too.
    let o = rootroll(&["plan", plan(p).to_str().unwrap()]);
    assert!(
        stdout(&o).contains(
            "waves (promoted in this order)\n  1  us-east\n  2  us-west\n  3  eu-central\n"
        ),
        "{}",
        stdout(&o)
    );

    // A fourth cluster joins at phase 3: no byte of the other three changes.
    let before: Vec<_> = CLUSTERS.iter().map(|c| fingerprints(p, c)).collect();
    std::fs::write(plan(p), fleet_plan_with_waves(&CLUSTERS, &["ap-south"])).unwrap();
    render(p);
    let after: Vec<_> = CLUSTERS.iter().map(|c| fingerprints(p, c)).collect();
    assert_eq!(before, after, "the other clusters' files changed");
    assert_eq!(active(p, "ap-south"), "3-switch-issuer");
    // It signs with its own B intermediate from the start, under the fleet's phase-3 bundle
    // (decrypted by the real sops).
    let joined = decrypted(p, "ap-south", "3-switch-issuer");
    let east = decrypted(p, "us-east", "3-switch-issuer");
    assert_eq!(joined["root-cert.pem"], east["root-cert.pem"]);
    assert_ne!(joined["ca-cert.pem"], east["ca-cert.pem"]);
    let b_only = decrypted(p, "us-east", "4-finalize");
    openssl_verify(&b_only["root-cert.pem"], &joined["ca-cert.pem"], None)
        .expect("the joined cluster's signer is B's intermediate");
    let (o, report) = verify_offline(p, "2027-01-01T04:00:00Z");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(finding(&report, "lockstep")["passed"], true);
    assert!(
        finding(&report, "clusters-present")["message"]
            .as_str()
            .unwrap()
            .contains("4 cluster(s)")
    );

    // ROLLOUT.md draws the waves: in sequence within each phase, each with its soak.
    let md = std::fs::read_to_string(gitops(p).join("ROLLOUT.md")).unwrap();
    for line in [
        "    section 3 switch-issuer",
        "    wave 1 (us-east) : p3w1, after p2w3, 1980s",
        "    wave 2 (us-west) : p3w2, after p3w1, 1980s",
        "    wave 3 (eu-central, ap-south) : p3w3, after p3w2, 1980s",
        "    wave 1 (us-east) : p1w1, 0, 1980s",
    ] {
        assert!(md.contains(line), "no `{line}` in ROLLOUT.md:\n{md}");
    }
    assert!(md.contains("Clusters are promoted in 3 waves"), "{md}");
}

/// A cluster that leaves the plan loses its tree, one that joins a fleet at phase 2 starts
/// there; the others keep every byte either way.
#[test]
fn a_cluster_leaving_removes_its_tree_and_one_joining_at_phase_2_starts_there() {
    let d = waves_repo();
    let p = d.path();
    for w in ["1", "2", "3"] {
        let o = promote_at(p, "2027-01-01T01:00:00Z", &["--wave", w, "--to", "2"]);
        assert!(o.status.success(), "wave {w}: {}", stderr(&o));
    }
    let before: Vec<_> = ["us-east", "us-west"]
        .iter()
        .map(|c| fingerprints(p, c))
        .collect();
    std::fs::write(plan(p), fleet_plan_with_waves(&["us-east", "us-west"], &[])).unwrap();
    render(p);
    let after: Vec<_> = ["us-east", "us-west"]
        .iter()
        .map(|c| fingerprints(p, c))
        .collect();
    assert_eq!(before, after, "the remaining clusters' files changed");
    assert!(!gitops(p).join("clusters/eu-central").exists());
    assert!(!gitops(p).join("flux/eu-central-istio-ca.yaml").exists());
    let (o, report) = verify_offline(p, "2027-01-01T02:00:00Z");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(finding(&report, "clusters-present")["passed"], true);

    // A directory left behind by hand (not re-rendered) fails clusters-present, by name.
    let stale = gitops(p).join("clusters/eu-central/istio-ca");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("kustomization.yaml"), "resources: []\n").unwrap();
    let (o, report) = verify_offline(p, "2027-01-01T02:00:00Z");
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let f = finding(&report, "clusters-present");
    assert_eq!(f["passed"], false);
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("does not name (removed from the plan?): eu-central"),
        "{f}"
    );
    std::fs::remove_dir_all(gitops(p).join("clusters/eu-central")).unwrap();

    // A cluster joining at phase 2 starts there, on A's intermediate like the rest.
    let before: Vec<_> = ["us-east", "us-west"]
        .iter()
        .map(|c| fingerprints(p, c))
        .collect();
    std::fs::write(
        plan(p),
        fleet_plan_with_waves(&["us-east", "us-west"], &["ap-south"]),
    )
    .unwrap();
    render(p);
    let after: Vec<_> = ["us-east", "us-west"]
        .iter()
        .map(|c| fingerprints(p, c))
        .collect();
    assert_eq!(before, after, "the other clusters' files changed");
    assert_eq!(active(p, "ap-south"), "2-trust-both");
    let joined = decrypted(p, "ap-south", "2-trust-both");
    let east = decrypted(p, "us-east", "2-trust-both");
    assert_eq!(joined["root-cert.pem"], east["root-cert.pem"]);
    let a_only = decrypted(p, "us-east", "1-initial");
    openssl_verify(&a_only["root-cert.pem"], &joined["ca-cert.pem"], None)
        .expect("the joined cluster's phase-2 signer is its A intermediate");
    let (o, _) = verify_offline(p, "2027-01-01T02:00:00Z");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn the_argocd_example_renders_its_repo_url_and_a_placeholder_fails_the_gate() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let o = rootroll(&[
        "render",
        "plans/ambient.yaml",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let app: serde_json::Value =
        serde_saphyr::from_slice(&std::fs::read(out.join("argocd/ambient-istio-ca.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        app["spec"]["source"]["repoURL"],
        "https://git.example.com/platform/mesh-gitops.git"
    );
    assert_eq!(app["spec"]["source"]["targetRevision"], "main");
    let verify = || {
        let o = rootroll(&[
            "verify",
            "offline",
            out.to_str().unwrap(),
            "--identity",
            DEMO_KEY,
            "--format",
            "json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (o, v)
    };
    let (o, report) = verify();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(finding(&report, "no-placeholder")["passed"], true);

    // A file keeping a placeholder fails the gate, naming the file and the line.
    let f = out.join("argocd/ambient-istio-ca.yaml");
    let text = std::fs::read_to_string(&f).unwrap();
    let line = text.lines().position(|l| l.contains("repoURL:")).unwrap() + 1;
    std::fs::write(
        &f,
        text.replace(
            "https://git.example.com/platform/mesh-gitops.git",
            "REPLACE-WITH-YOUR-REPO-URL",
        ),
    )
    .unwrap();
    let (o, report) = verify();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let g = finding(&report, "no-placeholder");
    assert_eq!(g["passed"], false);
    assert!(
        g["message"].as_str().unwrap().contains(&format!(
            "argocd/ambient-istio-ca.yaml:{line}: REPLACE-WITH-YOUR-REPO-URL"
        )),
        "{g}"
    );
}

#[test]
fn a_placeholder_repo_url_in_the_plan_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("plans/ambient.yaml"))
        .unwrap()
        .replace(
            "https://git.example.com/platform/mesh-gitops.git",
            "REPLACE-WITH-YOUR-REPO-URL",
        );
    let plan = d.path().join("ambient.yaml");
    std::fs::write(&plan, text).unwrap();
    let o = rootroll(&["plan", plan.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "error[value-invalid]: repoURL `REPLACE-WITH-YOUR-REPO-URL` is still a placeholder"
        ),
        "{}",
        stderr(&o)
    );
}

fn demo_identity() -> age::x25519::Identity {
    let text = std::fs::read_to_string(root().join(DEMO_KEY)).unwrap();
    text.lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .parse()
        .unwrap()
}

/// The matrix cells of `out` run over `clusters` only (whose ring, for two clusters, is both
/// ordered pairs).
fn cells_of(out: &Path, clusters: &[String]) -> Vec<rootroll::verify::MatrixCell> {
    use rootroll::verify::{matrix, offline};
    let now =
        time::OffsetDateTime::parse(NOW, &time::format_description::well_known::Rfc3339).unwrap();
    let ids = [demo_identity()];
    let repo = rootroll::repo::Repo::open(out).unwrap();
    let opts = offline::Options {
        identities: &ids,
        require_keys: true,
        now,
    };
    let (report, secrets) = offline::run(&repo, &opts).unwrap();
    let phases = matrix::Phases::from_report(&report, clusters, &secrets);
    let (built, _) = matrix::build(
        &phases,
        &repo.rollout.mesh.trust_domain,
        now,
        &|_, _| true,
        &mut |_, _| {},
    );
    built.into_iter().map(|c| c.cell).collect()
}

/// Every cross-cluster cell of `out`, handshaken directly: the matrix run on each two-cluster
/// subset.
fn every_cross_cell(out: &Path) -> Vec<rootroll::verify::MatrixCell> {
    let clusters = rootroll::repo::list_clusters(out).unwrap();
    let mut cells = Vec::new();
    for (i, x) in clusters.iter().enumerate() {
        for y in &clusters[i + 1..] {
            cells.extend(
                cells_of(out, &[x.clone(), y.clone()])
                    .into_iter()
                    .filter(|c| c.cluster != c.server_cluster),
            );
        }
    }
    cells
}

/// Issue 14, "all pairs, stated honestly": the fleet finding claims every ordered pair from
/// bundle-shared and each cluster's own cells; handshaking every pair directly agrees, and
/// with two different bundles in the fleet the claim is withdrawn.
#[test]
fn every_pair_of_clusters_is_covered_and_the_claim_needs_one_bundle() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let o = rootroll(&["render", "plans/fleet.yaml", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let verify = || {
        let o = rootroll(&[
            "verify",
            "offline",
            out.to_str().unwrap(),
            "--identity",
            DEMO_KEY,
            "--format",
            "json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let fleet = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "handshake-matrix" && f["subject"] == "fleet")
            .cloned()
            .expect("the fleet's pairs finding");
        (o, fleet, v)
    };
    let (o, fleet, _) = verify();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(fleet["passed"], true, "{fleet}");
    assert!(
        fleet["message"]
            .as_str()
            .unwrap()
            .starts_with("all 6 (3×2) cross-cluster pairs covered by bundle-shared"),
        "{fleet}"
    );
    // Every one of the 6 ordered pairs, 3 transitions × 16 combinations each, handshaken.
    let cells = every_cross_cell(&out);
    assert_eq!(cells.len(), 6 * 3 * 16);
    let failed: Vec<_> = cells.iter().filter(|c| !c.ok).collect();
    assert!(failed.is_empty(), "{failed:?}");

    // A cluster with its own consistent hierarchy (the demo plan's roots) joins the tree: its
    // own cells pass, its cells with the others fail, and bundle-shared fails, so the fleet
    // finding withdraws the claim instead of passing.
    let demo = d.path().join("demo");
    let o = rootroll(&["render", "plans/demo.yaml", "--out", demo.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    must(
        Command::new("cp")
            .arg("-a")
            .arg(demo.join("clusters/demo"))
            .arg(out.join("clusters/demo")),
    );
    let own = cells_of(&out, &["demo".to_string()]);
    assert_eq!(own.len(), 3 * 16);
    assert!(
        own.iter().all(|c| c.ok),
        "the demo cluster's own cells pass"
    );
    let cross = every_cross_cell(&out);
    assert!(
        cross
            .iter()
            .any(|c| !c.ok && (c.cluster == "demo" || c.server_cluster == "demo")),
        "cells between different roots fail"
    );
    let (o, fleet, report) = verify();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    for t in [
        "1-initial→2-trust-both",
        "2-trust-both→3-switch-issuer",
        "3-switch-issuer→4-finalize",
    ] {
        let own = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "handshake-matrix" && f["subject"] == format!("demo/{t}"))
            .unwrap();
        // Its ring cells (demo → eu-central, the next cluster) fail; its same-cluster cells
        // pass (above), which is why the fleet finding does not rely on them alone.
        assert_eq!(own["passed"], false, "{own}");
        assert!(
            own["message"].as_str().unwrap().contains("eu-central"),
            "{own}"
        );
    }
    assert_eq!(fleet["passed"], false, "{fleet}");
    assert!(
        fleet["message"].as_str().unwrap().contains(
            "all 12 (4×3) cross-cluster pairs NOT covered: bundle-shared fleet/1-initial"
        ),
        "{fleet}"
    );
}

/// `init` writes the Argo CD lines as comments: switching the engine alone is refused with
/// repo-url-missing, and uncommenting them is all it takes.
#[test]
fn init_writes_repo_url_lines_that_argocd_needs() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yaml");
    let src = root().join("tests/fixtures/makefile");
    let o = rootroll(&[
        "init",
        "--from-dir",
        src.to_str().unwrap(),
        "--output",
        plan.to_str().unwrap(),
        "--name",
        "prod",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&plan).unwrap();
    assert!(
        text.contains("    # repoURL: https://github.com/ORG/REPO.git\n"),
        "{text}"
    );
    assert!(text.contains("    # targetRevision: HEAD\n"), "{text}");
    let argo = text.replace("engine: flux ", "engine: argocd");
    std::fs::write(&plan, &argo).unwrap();
    let o = rootroll(&["plan", plan.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("error[repo-url-missing]"),
        "{}",
        stderr(&o)
    );
    let set = argo
        .replace(
            "# repoURL: https://github.com/ORG/REPO.git",
            "repoURL: git@github.com:platform/mesh.git",
        )
        .replace("# targetRevision: HEAD", "targetRevision: release");
    std::fs::write(&plan, set).unwrap();
    let o = rootroll(&["plan", plan.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("out");
    let o = rootroll(&[
        "render",
        plan.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--insecure-plaintext",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let app = std::fs::read_to_string(out.join("argocd/cluster1-istio-ca.yaml")).unwrap();
    assert!(
        app.contains(
            "    repoURL: \"git@github.com:platform/mesh.git\"\n    targetRevision: \"release\"\n"
        ),
        "{app}"
    );
}
