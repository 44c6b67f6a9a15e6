//! The transition handshake matrix: for each cluster and each pair of phases that coexist
//! while a promotion propagates (N and N+1), every combination of "leaf issued by phase X's
//! intermediate" and "trusting phase Y's bundle" on the client and on the server must complete
//! real mutual TLS (rustls, in memory). Each cluster is also checked against the next cluster
//! of the fleet (a ring), since clusters share the root.
//!
//! Leaves are issued once per cluster and phase and reused across cells.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::offline::PhaseSecret;
use super::{Finding, MatrixCell, Report, Severity};
use crate::handshake::{self, LeafSpec, Workload};
use crate::model::phase_dir;

/// A cell with the exact material it was judged on (so other verifiers can judge the same).
pub struct CellInput {
    pub cell: MatrixCell,
    pub client: Workload,
    pub client_trust: Vec<u8>,
    pub server: Workload,
    pub server_trust: Vec<u8>,
    pub server_id: String,
}

fn spec(trust_domain: &str, sa: &str) -> LeafSpec {
    LeafSpec {
        trust_domain: trust_domain.to_string(),
        namespace: "default".to_string(),
        service_account: sa.to_string(),
    }
}

/// Builds and judges every cell. `secrets` are the readable phase Secrets of `verify offline`.
pub fn build(
    secrets: &[PhaseSecret],
    trust_domain: &str,
    now: OffsetDateTime,
) -> (Vec<CellInput>, Vec<Finding>) {
    let mut by: BTreeMap<(String, u8), &PhaseSecret> = BTreeMap::new();
    for s in secrets {
        by.insert((s.cluster.clone(), s.phase), s);
    }
    let clusters: Vec<String> = {
        let mut v: Vec<String> = by.keys().map(|(c, _)| c.clone()).collect();
        v.dedup();
        v
    };
    // Client and server leaves per (cluster, phase).
    let mut leaves: BTreeMap<(String, u8, &str), Result<Workload, String>> = BTreeMap::new();
    for ((c, n), s) in &by {
        for sa in ["client", "server"] {
            let w = handshake::issue_workload(
                &spec(trust_domain, sa),
                &s.signer_pem,
                s.key.expose(),
                &s.chain,
                &s.bundle,
                now,
            )
            .map_err(|e| e.to_string());
            leaves.insert((c.clone(), *n, sa), w);
        }
    }
    let server_id = spec(trust_domain, "server").spiffe_id();
    let mut cells = Vec::new();
    let mut findings = Vec::new();
    for (i, c) in clusters.iter().enumerate() {
        let peers: Vec<&String> = if clusters.len() > 1 {
            vec![c, &clusters[(i + 1) % clusters.len()]]
        } else {
            vec![c]
        };
        for n in 1..4u8 {
            let subject = format!("{c}/{}→{}", phase_dir(n), phase_dir(n + 1));
            let mut total = 0;
            let mut failed: Vec<String> = Vec::new();
            let mut missing = false;
            for peer in &peers {
                for (cl, ct, sl, st) in combos(n) {
                    let (Some(ctrust), Some(strust)) =
                        (by.get(&(c.clone(), ct)), by.get(&((*peer).clone(), st)))
                    else {
                        missing = true;
                        continue;
                    };
                    let (Some(Ok(client)), Some(Ok(server))) = (
                        leaves.get(&(c.clone(), cl, "client")),
                        leaves.get(&((*peer).clone(), sl, "server")),
                    ) else {
                        missing = true;
                        continue;
                    };
                    total += 1;
                    let result = handshake::mutual_tls(
                        client,
                        &ctrust.bundle,
                        server,
                        &strust.bundle,
                        &server_id,
                        now,
                    );
                    let cell = MatrixCell {
                        cluster: c.clone(),
                        transition: n,
                        client_leaf_phase: cl,
                        client_trust_phase: ct,
                        server_cluster: (*peer).clone(),
                        server_leaf_phase: sl,
                        server_trust_phase: st,
                        ok: result.is_ok(),
                        rejected_by: result
                            .as_ref()
                            .err()
                            .and_then(|e| e.rejected_by())
                            .map(|s| s.to_string()),
                        reason: result.err().map(|e| e.to_string()),
                    };
                    if !cell.ok {
                        failed.push(format!(
                            "client leaf {cl}/trust {ct} → {}server leaf {sl}/trust {st}: {}",
                            if **peer == *c {
                                String::new()
                            } else {
                                format!("{peer} ")
                            },
                            cell.reason.clone().unwrap_or_default()
                        ));
                    }
                    cells.push(CellInput {
                        cell,
                        client: client.clone(),
                        client_trust: ctrust.bundle.clone(),
                        server: server.clone(),
                        server_trust: strust.bundle.clone(),
                        server_id: server_id.clone(),
                    });
                }
            }
            let ok = failed.is_empty() && !missing;
            let message = if missing {
                "not checked: a phase Secret could not be read or a leaf could not be issued"
                    .to_string()
            } else if ok {
                format!("{total} handshake(s) between leaves and bundles of both phases succeed")
            } else {
                format!(
                    "{} of {total} handshake(s) fail; first: {}",
                    failed.len(),
                    failed[0]
                )
            };
            findings.push(Finding {
                code: "handshake-matrix",
                severity: Severity::Error,
                passed: ok,
                subject,
                file: None,
                message,
                details: Vec::new(),
                hint: "while a promotion propagates, old and new leaves and bundles meet: every root a live leaf chains to must stay in every bundle".to_string(),
            });
        }
    }
    (cells, findings)
}

/// Every (client leaf, client trust, server leaf, server trust) over phases {n, n+1}.
fn combos(n: u8) -> Vec<(u8, u8, u8, u8)> {
    let ph = [n, n + 1];
    let mut v = Vec::with_capacity(16);
    for cl in ph {
        for ct in ph {
            for sl in ph {
                for st in ph {
                    v.push((cl, ct, sl, st));
                }
            }
        }
    }
    v
}

/// Runs the matrix and adds it to `report`.
pub fn run(
    report: &mut Report,
    secrets: &[PhaseSecret],
    trust_domain: &str,
    now: OffsetDateTime,
) -> Vec<CellInput> {
    let (cells, findings) = build(secrets, trust_domain, now);
    report.findings.extend(findings);
    report.matrix = cells.iter().map(|c| c.cell.clone()).collect();
    cells
}
