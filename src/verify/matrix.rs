//! The transition handshake matrix: for each cluster and each pair of phases that coexist
//! while a promotion propagates (N and N+1), every combination of "leaf issued by phase X's
//! intermediate" and "trusting phase Y's bundle" on the client and on the server must complete
//! real mutual TLS (rustls, in memory). Each cluster is also checked against the next cluster
//! of the fleet (a ring), since clusters share the root.
//!
//! Leaves are issued once per intermediate and reused across cells; the handshakes run on
//! every core.

use std::collections::BTreeMap;
use std::sync::Arc;

use time::OffsetDateTime;

use super::offline::PhaseSecret;
use super::{Code, Finding, MatrixCell, Report, Severity};
use crate::handshake::{self, HandshakeCache, LeafSpec, Workload};
use crate::model::phase_dir;
use crate::parallel;

/// A cell with the exact material it was judged on (so other verifiers can judge the same).
/// Leaves and bundles are shared between the cells that use them.
pub struct CellInput {
    pub cell: MatrixCell,
    pub client: Arc<Workload>,
    pub client_trust: Arc<[u8]>,
    pub server: Arc<Workload>,
    pub server_trust: Arc<[u8]>,
    pub server_id: String,
}

fn spec(trust_domain: &str, sa: &str) -> LeafSpec {
    LeafSpec {
        trust_domain: trust_domain.to_string(),
        namespace: "default".to_string(),
        service_account: sa.to_string(),
    }
}

/// An intermediate of a cluster: (cluster, certificate PEM, key PEM).
type Signer<'a> = (&'a str, &'a str, &'a str);

fn signer<'a>(cluster: &'a str, s: &'a PhaseSecret) -> Signer<'a> {
    (cluster, s.signer_pem.as_str(), s.key.expose())
}

/// One handshake to run: a client leaf and bundle meeting a server leaf and bundle.
struct Planned<'a> {
    /// Index of the (cluster, transition) finding it counts towards.
    group: usize,
    cluster: &'a str,
    peer: &'a str,
    transition: u8,
    combo: (u8, u8, u8, u8),
    client: &'a Arc<Workload>,
    client_trust: &'a Arc<[u8]>,
    server: &'a Arc<Workload>,
    server_trust: &'a Arc<[u8]>,
}

/// Builds and judges every cell. `secrets` are the readable phase Secrets of `verify offline`.
///
/// Leaves are issued once per intermediate, and the handshakes run on every core
/// through one [`HandshakeCache`]; cells and findings come out in the same order whatever
/// the thread timing. Only the transitions `wanted(cluster, n)` (n → n+1) are checked.
/// `progress(done, total)` is called on the calling thread as handshakes finish.
pub fn build(
    secrets: &[PhaseSecret],
    trust_domain: &str,
    now: OffsetDateTime,
    wanted: &dyn Fn(&str, u8) -> bool,
    progress: &mut dyn FnMut(usize, usize),
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
    // One client and one server leaf per intermediate (phases signed by the same certificate
    // and key share them), each presented with its phase's cert-chain.pem and bundle.
    let mut signers: BTreeMap<Signer<'_>, &PhaseSecret> = BTreeMap::new();
    for ((c, _), s) in &by {
        signers.entry(signer(c, s)).or_insert(s);
    }
    let jobs: Vec<(Signer<'_>, &PhaseSecret, &str)> = signers
        .iter()
        .flat_map(|(k, s)| ["client", "server"].map(|sa| (*k, *s, sa)))
        .collect();
    let issued = parallel::map(
        &jobs,
        |(_, s, sa)| {
            handshake::issue_leaf(&spec(trust_domain, sa), &s.signer_pem, s.key.expose(), now)
                .map_err(|e| e.to_string())
        },
        |_, _| {},
    );
    let by_signer: BTreeMap<(Signer<'_>, &str), Result<handshake::Leaf, String>> = jobs
        .iter()
        .zip(issued)
        .map(|((k, _, sa), leaf)| ((*k, *sa), leaf))
        .collect();
    let leaves: BTreeMap<(&str, u8, &str), Result<Arc<Workload>, String>> = by
        .iter()
        .flat_map(|((c, n), s)| ["client", "server"].map(|sa| (c.as_str(), *n, *s, sa)))
        .map(|(c, n, s, sa)| {
            let workload = match &by_signer[&(signer(c, s), sa)] {
                Ok(leaf) => leaf
                    .present(&s.chain, &s.bundle)
                    .map(Arc::new)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            };
            ((c, n, sa), workload)
        })
        .collect();
    let bundles: BTreeMap<(&str, u8), Arc<[u8]>> = by
        .iter()
        .map(|((c, n), s)| ((c.as_str(), *n), Arc::from(s.bundle.as_slice())))
        .collect();

    // Every cell, in report order, grouped by (cluster, transition).
    let mut groups: Vec<(String, bool)> = Vec::new();
    let mut planned: Vec<Planned<'_>> = Vec::new();
    for (i, c) in clusters.iter().enumerate() {
        let peers: Vec<&String> = if clusters.len() > 1 {
            vec![c, &clusters[(i + 1) % clusters.len()]]
        } else {
            vec![c]
        };
        for n in (1..4u8).filter(|&n| wanted(c, n)) {
            let group = groups.len();
            let mut missing = false;
            for peer in &peers {
                for combo in combos(n) {
                    let (cl, ct, sl, st) = combo;
                    let (Some(client_trust), Some(server_trust)) = (
                        bundles.get(&(c.as_str(), ct)),
                        bundles.get(&(peer.as_str(), st)),
                    ) else {
                        missing = true;
                        continue;
                    };
                    let (Some(Ok(client)), Some(Ok(server))) = (
                        leaves.get(&(c.as_str(), cl, "client")),
                        leaves.get(&(peer.as_str(), sl, "server")),
                    ) else {
                        missing = true;
                        continue;
                    };
                    planned.push(Planned {
                        group,
                        cluster: c,
                        peer,
                        transition: n,
                        combo,
                        client,
                        client_trust,
                        server,
                        server_trust,
                    });
                }
            }
            groups.push((
                format!("{c}/{}→{}", phase_dir(n), phase_dir(n + 1)),
                missing,
            ));
        }
    }

    let server_id = spec(trust_domain, "server").spiffe_id();
    let cache = HandshakeCache::new(&server_id, now);
    let total = planned.len();
    let mut done = 0;
    let results = parallel::map(
        &planned,
        |p| cache.mutual_tls(p.client, p.client_trust, p.server, p.server_trust),
        |_, _| {
            done += 1;
            progress(done, total);
        },
    );

    let mut cells = Vec::with_capacity(planned.len());
    let mut totals = vec![0usize; groups.len()];
    let mut failed: Vec<Vec<String>> = vec![Vec::new(); groups.len()];
    for (p, result) in planned.iter().zip(results) {
        let (cl, ct, sl, st) = p.combo;
        totals[p.group] += 1;
        let cell = MatrixCell {
            cluster: p.cluster.to_string(),
            transition: p.transition,
            client_leaf_phase: cl,
            client_trust_phase: ct,
            server_cluster: p.peer.to_string(),
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
            failed[p.group].push(format!(
                "client leaf {cl}/trust {ct} → {}server leaf {sl}/trust {st}: {}",
                if p.peer == p.cluster {
                    String::new()
                } else {
                    format!("{} ", p.peer)
                },
                cell.reason.clone().unwrap_or_default()
            ));
        }
        cells.push(CellInput {
            cell,
            client: p.client.clone(),
            client_trust: p.client_trust.clone(),
            server: p.server.clone(),
            server_trust: p.server_trust.clone(),
            server_id: server_id.clone(),
        });
    }
    let findings = groups
        .into_iter()
        .zip(totals.into_iter().zip(failed))
        .map(|((subject, missing), (total, failed))| {
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
            Finding {
                code: Code::HandshakeMatrix,
                severity: Severity::Error,
                passed: ok,
                subject,
                file: None,
                message,
                details: Vec::new(),
                not_checked: None,
                hint: "while a promotion propagates, old and new leaves and bundles meet: every root a live leaf chains to must stay in every bundle".to_string(),
            }
        })
        .collect();
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

/// Runs the matrix for the `wanted` transitions and adds it to `report`; `progress(done,
/// total)` as handshakes finish.
pub fn run(
    report: &mut Report,
    secrets: &[PhaseSecret],
    trust_domain: &str,
    now: OffsetDateTime,
    wanted: &dyn Fn(&str, u8) -> bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<CellInput> {
    let (cells, findings) = build(secrets, trust_domain, now, wanted, progress);
    report.findings.extend(findings);
    report.matrix = cells.iter().map(|c| c.cell.clone()).collect();
    cells
}
