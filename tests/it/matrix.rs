//! The transition handshake matrix, cross-checked with real Envoy: for every cell of the
//! example plans and of a broken variant, two Envoys (BoringSSL) fed the same leaf chains and
//! trust bundles through SDS reach the same verdict as rootroll's in-memory rustls handshake.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use rootroll::verify::matrix::{self, CellInput};
use rootroll::verify::{CellStatus, MatrixCell, offline};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::*;
use crate::envoy::{EnvoyPair, Side};

fn identity() -> age::x25519::Identity {
    let text = std::fs::read_to_string(root().join("plans/demo.agekey")).unwrap();
    text.lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .parse()
        .unwrap()
}

/// Renders at the real clock (Envoy checks validity against it) and builds the matrix.
pub(crate) fn cells(
    plan: &str,
    out: &Path,
    now: OffsetDateTime,
    edit: impl FnOnce(&Path),
) -> Vec<CellInput> {
    let at = now.format(&Rfc3339).unwrap();
    let o = rootroll_at(&at, &["render", plan, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    edit(out);
    let ids = [identity()];
    let repo = rootroll::repo::Repo::open(out).unwrap();
    let (report, secrets) = offline::run(
        &repo,
        &offline::Options {
            identities: &ids,
            require_keys: true,
            now,
        },
    )
    .unwrap();
    matrix::build(
        &matrix::Phases::from_report(&report, &repo.clusters, &secrets),
        &repo.rollout.mesh.trust_domain,
        now,
        &|_, _| true,
        &mut |_, _| {},
    )
    .0
}

fn side(w: &rootroll::handshake::Workload, trust: &[u8]) -> Side {
    Side {
        chain_pem: w.chain_pem.clone().into_bytes(),
        key_pem: w.key_pem.clone().into_bytes(),
        trust_pem: trust.to_vec(),
    }
}

/// Judges every distinct cell with Envoy; returns (cells checked, failing cells seen).
pub(crate) fn cross_check(envoy: &mut EnvoyPair, cells: &[CellInput]) -> (usize, usize) {
    let mut seen = BTreeSet::new();
    let (mut checked, mut failing) = (0, 0);
    for c in cells {
        let k = &c.cell;
        let key = (
            k.cluster.clone(),
            k.server_cluster.clone(),
            k.client_leaf_phase,
            k.client_trust_phase,
            k.server_leaf_phase,
            k.server_trust_phase,
        );
        if !seen.insert(key) {
            continue;
        }
        let m = c.material.as_ref().expect("every cell was checked");
        let envoy_ok = envoy.handshake_ok(
            &side(&m.client, &m.client_trust),
            &side(&m.server, &m.server_trust),
        );
        assert_eq!(
            envoy_ok,
            k.ok,
            "Envoy and rootroll disagree on {} client {}/{} → {} server {}/{} (rootroll: {:?}; envoy: {})",
            k.cluster,
            k.client_leaf_phase,
            k.client_trust_phase,
            k.server_cluster,
            k.server_leaf_phase,
            k.server_trust_phase,
            k.reason,
            envoy.last_detail()
        );
        if !k.ok {
            failing += 1;
            let f = envoy.last_failure().expect("Envoy saw the TLS failure");
            match k.rejected_by.as_deref() {
                Some("client") => assert!(
                    f.client_rejected_server,
                    "rootroll: client rejected; envoy: {}",
                    envoy.last_detail()
                ),
                Some("server") => assert!(
                    f.server_rejected_client,
                    "rootroll: server rejected; envoy: {}",
                    envoy.last_detail()
                ),
                other => panic!("rootroll did not say who rejected: {other:?}"),
            }
        }
        checked += 1;
    }
    (checked, failing)
}

#[test]
fn envoy_agrees_with_every_matrix_cell() {
    let now = OffsetDateTime::now_utc();
    let mut envoy = EnvoyPair::start();
    let mut total = 0;
    for plan in [
        "plans/demo.yaml",
        "plans/fleet.yaml",
        "plans/ambient.yaml",
        "plans/import.yaml",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cells = cells(plan, &dir.path().join("out"), now, |_| {});
        assert!(cells.iter().all(|c| c.cell.ok), "{plan}: every cell passes");
        let (checked, failing) = cross_check(&mut envoy, &cells);
        assert_eq!(failing, 0);
        total += checked;
    }
    // A broken phase 2 (root A dropped): workloads still on A's leaves meet peers trusting only B.
    let dir = tempfile::tempdir().unwrap();
    let cells = cells("plans/demo.yaml", &dir.path().join("out"), now, |out| {
        crate::verify::edit(
            &out.join("clusters/demo/istio-ca/phases/2-trust-both/cacerts.sops.yaml"),
            |d| {
                let text = String::from_utf8(d["root-cert.pem"].clone()).unwrap();
                let second = text.match_indices("-----BEGIN").nth(1).unwrap().0;
                d.insert("root-cert.pem".into(), text.as_bytes()[second..].to_vec());
            },
        );
    });
    let (checked, failing) = cross_check(&mut envoy, &cells);
    assert!(failing > 0, "the broken variant has failing cells");
    total += checked;
    eprintln!("Envoy agreed with rootroll on {total} distinct matrix cells");
}

/// Leaves are issued once per intermediate: phases signed by the same intermediate present the
/// same leaf (with their own cert-chain.pem and bundle), and a new intermediate a new leaf.
#[test]
fn matrix_issues_one_leaf_per_intermediate_and_presents_each_phase_chain() {
    let now = OffsetDateTime::now_utc();
    let dir = tempfile::tempdir().unwrap();
    let cells = cells("plans/demo.yaml", &dir.path().join("out"), now, |_| {});
    let mut chains: std::collections::BTreeMap<u8, String> = Default::default();
    for c in &cells {
        let m = c.material.as_ref().expect("every cell was checked");
        chains.insert(c.cell.client_leaf_phase, m.client.chain_pem.clone());
    }
    let leaf = |n: u8| {
        let pem = &chains[&n];
        pem[..pem.find("-----END CERTIFICATE-----").unwrap()].to_string()
    };
    assert_eq!(chains.len(), 4, "client leaves of phases 1–4");
    assert_eq!(
        leaf(1),
        leaf(2),
        "phases 1 and 2 share intermediate A's leaf"
    );
    assert_eq!(
        leaf(3),
        leaf(4),
        "phases 3 and 4 share intermediate B's leaf"
    );
    assert_ne!(leaf(2), leaf(3), "intermediate B issues its own leaf");
    assert_ne!(
        chains[&1], chains[&2],
        "phase 2 presents its A+B bundle, phase 1 only A"
    );
    assert_ne!(
        chains[&3], chains[&4],
        "phase 3 presents A+B+B, phase 4 only B"
    );
}

/// Istio's Makefile output as OpenSSL 1.1.1 wrote it (no authority key identifier in the
/// intermediate; OpenSSL 3 needs `authorityKeyIdentifier = none` for that), ECDSA P-256 for
/// speed: `dir/root-cert.pem`, `dir/cluster1/{ca-cert,ca-key,cert-chain,root-cert}.pem`; and
/// a look-alike root with the same subject and another key. Returns the look-alike's PEM.
fn makefile_ca_without_akid(dir: &Path) -> Vec<u8> {
    let int_dir = dir.join("cluster1");
    std::fs::create_dir_all(&int_dir).unwrap();
    let root_conf = dir.join("root.conf");
    std::fs::write(
        &root_conf,
        "[ req ]\nprompt = no\ndistinguished_name = dn\nx509_extensions = ext\n\
         [ ext ]\nsubjectKeyIdentifier = hash\nbasicConstraints = critical, CA:true\n\
         keyUsage = critical, digitalSignature, nonRepudiation, keyEncipherment, keyCertSign\n\
         [ dn ]\nO = Istio\nCN = Root CA\n",
    )
    .unwrap();
    let int_conf = dir.join("int.conf");
    std::fs::write(
        &int_conf,
        "[ ext ]\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = none\n\
         basicConstraints = critical, CA:true, pathlen:0\n\
         keyUsage = critical, digitalSignature, nonRepudiation, keyEncipherment, keyCertSign\n\
         subjectAltName = DNS:istiod.istio-system.svc\n",
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        must(Command::new("openssl").current_dir(dir).args(args));
    };
    for key in ["root-key.pem", "lookalike-key.pem", "cluster1/ca-key.pem"] {
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            key,
        ]);
    }
    for (key, out) in [
        ("root-key.pem", "root-cert.pem"),
        ("lookalike-key.pem", "lookalike.pem"),
    ] {
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            key,
            "-config",
            "root.conf",
            "-days",
            "3650",
            "-out",
            out,
        ]);
    }
    openssl(&[
        "req",
        "-new",
        "-key",
        "cluster1/ca-key.pem",
        "-subj",
        "/O=Istio/CN=Intermediate CA/L=cluster1",
        "-out",
        "cluster1/ca.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "cluster1/ca.csr",
        "-CA",
        "root-cert.pem",
        "-CAkey",
        "root-key.pem",
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        "int.conf",
        "-extensions",
        "ext",
        "-out",
        "cluster1/ca-cert.pem",
    ]);
    let root = std::fs::read(dir.join("root-cert.pem")).unwrap();
    let int = std::fs::read(int_dir.join("ca-cert.pem")).unwrap();
    std::fs::write(
        int_dir.join("cert-chain.pem"),
        [int.as_slice(), &root].concat(),
    )
    .unwrap();
    std::fs::write(int_dir.join("root-cert.pem"), &root).unwrap();
    // Only what an import reads stays: the root key is not needed, and would be refused
    // next to an imported intermediate that is not generated.
    for f in [
        "root-key.pem",
        "root-cert.srl",
        "cluster1/ca.csr",
        "root.conf",
        "int.conf",
    ] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let text = String::from_utf8(must(
        Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(int_dir.join("ca-cert.pem")),
    ))
    .unwrap();
    assert!(!text.contains("Authority Key Identifier"), "{text}");
    std::fs::read(dir.join("lookalike.pem")).unwrap()
}

/// A plan importing the CA of [`makefile_ca_without_akid`] and rotating to a generated root
/// with its own subject.
fn import_plan(ca: &Path, dir: &Path) -> PathBuf {
    let plan = dir.join("lookalike.yaml");
    std::fs::write(
        &plan,
        format!(
            "apiVersion: rootroll.dev/v1alpha1\nkind: RotationPlan\nmetadata:\n  name: lookalike\n\
             spec:\n  mesh:\n    trustDomain: cluster.local\n    secretFormat: istiod\n    minIstioVersion: \"1.24\"\n\
             \x20 gitops:\n    ageRecipients:\n      - age18wfpqaqejnsfp8ykhwxhhhgdruwrk2d8rlwfmp5tuf587npuaatsgu66et\n    engine: flux\n\
             \x20 roots:\n    current:\n      import:\n        dir: {root:?}\n\
             \x20   new:\n      generate:\n        algorithm: ecdsa-p256\n        validity: 3650d\n        subject: {{organization: Istio, commonName: Root CA 2027}}\n\
             \x20 clusters:\n    - name: cluster1\n      intermediates:\n        current:\n          import: {{dir: {int:?}}}\n\
             \x20       new:\n          generate: {{algorithm: ecdsa-p256, validity: 1825d}}\n",
            root = ca.display().to_string(),
            int = ca.join("cluster1").display().to_string(),
        ),
    )
    .unwrap();
    plan
}

/// Puts `pem` before (or after) every certificate of `root-cert.pem` in phases 2 and 3.
fn add_to_bundles(out: &Path, pem: &[u8], first: bool) {
    for phase in ["2-trust-both", "3-switch-issuer"] {
        crate::verify::edit(
            &out.join(format!(
                "clusters/cluster1/istio-ca/phases/{phase}/cacerts.sops.yaml"
            )),
            |d| {
                let bundle = d["root-cert.pem"].clone();
                let edited = if first {
                    [pem, bundle.as_slice()].concat()
                } else {
                    [bundle.as_slice(), pem].concat()
                };
                d.insert("root-cert.pem".into(), edited);
            },
        );
    }
}

// See: issue 11 ("Root subjects"). An imported intermediate without authority key identifier
// and a root with its root's subject listed first in the bundle: Envoy's BoringSSL takes the
// first same-named root, the signature fails, and every path through that intermediate is
// refused by a peer trusting such a bundle. The matrix must refuse exactly the same cells, and
// pass the same ones, as two real Envoys.
#[test]
fn envoy_agrees_on_a_same_named_root_listed_first() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca");
    let look_alike = makefile_ca_without_akid(&ca);
    let plan = import_plan(&ca, tmp.path());
    // The imported CA is valid from the second openssl wrote it: judge after that.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let now = OffsetDateTime::now_utc();
    let mut envoy = EnvoyPair::start();

    let first = cells(
        plan.to_str().unwrap(),
        &tmp.path().join("first"),
        now,
        |out| add_to_bundles(out, &look_alike, true),
    );
    let failing: Vec<&MatrixCell> = first
        .iter()
        .map(|c| &c.cell)
        .filter(|c| c.status == CellStatus::Failed)
        .collect();
    assert!(!failing.is_empty(), "the look-alike breaks cells");
    for c in &failing {
        let reason = c.reason.as_deref().unwrap_or_default();
        assert!(reason.contains("bad signature"), "{reason}");
        // Only a leaf of the imported intermediate (phases 1–2), judged against phase 2 or 3.
        let (leaf, trust) = match c.rejected_by.as_deref() {
            Some("client") => (c.server_leaf_phase, c.client_trust_phase),
            Some("server") => (c.client_leaf_phase, c.server_trust_phase),
            other => panic!("no side named: {other:?}"),
        };
        assert!(leaf <= 2 && (2..=3).contains(&trust), "{c:?}");
    }
    assert!(first.iter().any(|c| c.cell.ok), "B's leaves still pass");
    let (checked, failing_seen) = cross_check(&mut envoy, &first);
    let distinct: BTreeSet<_> = failing
        .iter()
        .map(|c| {
            (
                c.client_leaf_phase,
                c.client_trust_phase,
                c.server_leaf_phase,
                c.server_trust_phase,
            )
        })
        .collect();
    assert_eq!(
        failing_seen,
        distinct.len(),
        "Envoy judged every failing cell"
    );

    // The same look-alike listed after the real root breaks nothing, for either verifier.
    let last = cells(
        plan.to_str().unwrap(),
        &tmp.path().join("last"),
        now,
        |out| add_to_bundles(out, &look_alike, false),
    );
    assert!(last.iter().all(|c| c.cell.ok));
    let (checked_last, failing_last) = cross_check(&mut envoy, &last);
    assert_eq!(failing_last, 0);
    eprintln!(
        "Envoy agreed with rootroll on {} cells ({failing_seen} failing)",
        checked + checked_last
    );
}

// See: issue 11 ("A phase that cannot be read gives one root-cause failure"). The cells that
// need a corrupted phase are not checked, say why, and are never counted as ok.
#[test]
fn an_unreadable_phase_leaves_its_cells_not_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = rootroll(&["render", "plans/demo.yaml", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let file = out.join("clusters/demo/istio-ca/phases/3-switch-issuer/cacerts.sops.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    // One character of the key's ciphertext changed: the MAC no longer verifies.
    let at = text.find("ca-key.pem: ENC[AES256_GCM,data:").unwrap() + 40;
    let flipped = if &text[at..=at] == "A" { "B" } else { "A" };
    std::fs::write(
        &file,
        format!("{}{flipped}{}", &text[..at], &text[at + 1..]),
    )
    .unwrap();

    let args = [
        "verify",
        "offline",
        out.to_str().unwrap(),
        "--identity",
        "plans/demo.agekey",
    ];
    let o = rootroll(&args);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let text = stdout(&o);
    let summary = text.lines().last().unwrap();
    // Phase 3 is in transitions 2→3 and 3→4: of their 32 cells, all but the 2/2/2/2 and
    // 4/4/4/4 corners use it somewhere.
    let v: serde_json::Value = {
        let mut json = args.to_vec();
        json.extend(["--format", "json"]);
        serde_json::from_slice(&rootroll(&json).stdout).unwrap()
    };
    let matrix = v["matrix"].as_array().unwrap();
    let not_checked: Vec<&serde_json::Value> = matrix
        .iter()
        .filter(|c| c["status"] == "not-checked")
        .collect();
    let uses_phase_3 = |c: &serde_json::Value| {
        [
            "clientLeafPhase",
            "clientTrustPhase",
            "serverLeafPhase",
            "serverTrustPhase",
        ]
        .iter()
        .any(|k| c[*k] == 3)
    };
    assert_eq!(
        not_checked.len(),
        matrix.iter().filter(|c| uses_phase_3(c)).count(),
        "exactly the cells that need phase 3"
    );
    assert_eq!(not_checked.len(), 30);
    for c in &not_checked {
        assert_eq!(c["ok"], false);
        let reason = c["reason"].as_str().unwrap();
        assert!(
            reason.starts_with(
                "not checked, because demo/3-switch-issuer could not be read (sops-mac: "
            ),
            "{reason}"
        );
    }
    let ok = matrix.iter().filter(|c| c["status"] == "ok").count();
    assert_eq!(ok + not_checked.len(), matrix.len(), "nothing else failed");
    assert!(
        summary.ends_with(&format!(
            "; matrix {ok} of {} cells ok, 30 not checked",
            matrix.len()
        )),
        "{summary}"
    );
    // One root cause; the two transitions touching phase 3 say they were not checked.
    let failed: Vec<(&str, &str, &str)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["passed"] == false && f["code"] != "reload-rule")
        .map(|f| {
            (
                f["code"].as_str().unwrap(),
                f["subject"].as_str().unwrap(),
                f["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failed
            .iter()
            .filter(|(code, ..)| *code == "sops-mac")
            .count(),
        1,
        "{failed:#?}"
    );
    let matrix_failed: Vec<(&str, &str)> = failed
        .iter()
        .filter(|(code, ..)| *code == "handshake-matrix")
        .map(|(_, subject, message)| (*subject, *message))
        .collect();
    assert_eq!(matrix_failed.len(), 2, "{matrix_failed:#?}");
    for (subject, message) in matrix_failed {
        assert!(subject.contains("3-switch-issuer"), "{subject}");
        assert!(
            message.contains("not checked, because demo/3-switch-issuer"),
            "{message}"
        );
    }
}
