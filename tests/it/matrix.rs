//! The transition handshake matrix, cross-checked with real Envoy: for every cell of the
//! example plans and of a broken variant, two Envoys (BoringSSL) fed the same leaf chains and
//! trust bundles through SDS reach the same verdict as rootroll's in-memory rustls handshake.

use std::collections::BTreeSet;
use std::path::Path;

use rootroll::verify::matrix::{self, CellInput};
use rootroll::verify::offline;
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
fn cells(plan: &str, out: &Path, now: OffsetDateTime, edit: impl FnOnce(&Path)) -> Vec<CellInput> {
    let at = now.format(&Rfc3339).unwrap();
    let o = rootroll_at(&at, &["render", plan, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    edit(out);
    let ids = [identity()];
    let repo = rootroll::repo::Repo::open(out).unwrap();
    let (_, secrets) = offline::run(
        &repo,
        &offline::Options {
            identities: &ids,
            now,
        },
    )
    .unwrap();
    matrix::build(
        &secrets,
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
fn cross_check(envoy: &mut EnvoyPair, cells: &[CellInput]) -> (usize, usize) {
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
        let envoy_ok = envoy.handshake_ok(
            &side(&c.client, &c.client_trust),
            &side(&c.server, &c.server_trust),
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
        chains.insert(c.cell.client_leaf_phase, c.client.chain_pem.clone());
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
