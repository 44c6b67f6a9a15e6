//! The transition handshake matrix: for each cluster and each pair of phases that coexist
//! while a promotion propagates (N and N+1), every combination of "leaf issued by phase X's
//! intermediate" and "trusting phase Y's bundle" on the client and on the server must complete
//! mutual TLS (rustls, in memory, judging chains along the path Envoy's BoringSSL builds).
//! Each cluster is also checked against the next cluster of the fleet (a ring), since clusters
//! share the root; every ordered pair is covered by `bundle-shared` and these cells, as
//! [`super::pairs`] proves and reports.
//!
//! Leaves are issued once per intermediate and reused across cells. Every cell is judged by
//! [`HandshakeCache::judge`]: the two verifiers of that cell's configurations decide trust, and
//! a real handshake runs once per pair of presented workloads. A cell whose phase Secret could
//! not be read, or from which no leaf could be issued, is reported as not checked, with the
//! reason, and never counted as ok.
//!
//! Without the CA keys (no identity), no leaf can be issued: every cell is then decided from
//! the phases' public probe chains (written by `render`, checked by `probe-chain`) with
//! [`HandshakeCache::judge_trust`], the same verifiers minus proof of possession
//! ([`MatrixMode::Probes`]). A phase without an accepted probe leaves its cells not checked.

use std::collections::BTreeMap;
use std::sync::Arc;

use time::OffsetDateTime;

use super::offline::PhaseSecret;
use super::{CellStatus, Code, Finding, MatrixCell, MatrixMode, Report};
use crate::handshake::{self, HandshakeCache, LeafSpec, Workload};
use crate::model::{Strategy, phase_dir};
use crate::parallel;

/// A judged cell with the exact material it was judged on (so other verifiers can judge the
/// same). Leaves and bundles are shared between the cells that use them; a cell that was not
/// checked has none.
pub struct CellInput {
    /// The verdict.
    pub cell: MatrixCell,
    /// What it was judged on; `None` for a cell that was not checked, or one decided from
    /// probe chains (which carry no key).
    pub material: Option<Material>,
}

/// What one cell's client and server present and trust.
pub struct Material {
    /// The client's leaf, chain and key.
    pub client: Arc<Workload>,
    /// The bundle the client trusts (PEM).
    pub client_trust: Arc<[u8]>,
    /// The server's leaf, chain and key.
    pub server: Arc<Workload>,
    /// The bundle the server trusts (PEM).
    pub server_trust: Arc<[u8]>,
    /// The SPIFFE ID the client expects of the server.
    pub server_id: String,
}

/// What the matrix knows of each cluster's phases: the readable Secrets and, for a phase
/// whose Secret could not be read, the root cause the other gates reported.
pub struct Phases<'s> {
    strategy: Strategy,
    clusters: Vec<String>,
    secrets: BTreeMap<(String, u8), &'s PhaseSecret>,
    unreadable: BTreeMap<(String, u8), String>,
}

impl<'s> Phases<'s> {
    /// The phases of `secrets` (the readable Secrets of `verify offline`) and, for every other
    /// phase of the repository's `clusters`, why it is missing: the first failed error finding
    /// about that phase (`cluster/<n>-<name>`), which is the root cause.
    pub fn from_report(report: &Report, clusters: &[String], secrets: &'s [PhaseSecret]) -> Self {
        let mut clusters = clusters.to_vec();
        clusters.sort();
        clusters.dedup();
        // Every Secret of one repository belongs to one rollout. With none readable, no cell
        // can pass whatever the strategy.
        let strategy = secrets.first().map_or(Strategy::Roots, |s| s.strategy);
        let phase_dir = |n: u8| phase_dir(strategy, n);
        let secrets: BTreeMap<(String, u8), &PhaseSecret> = secrets
            .iter()
            .map(|s| ((s.cluster.clone(), s.phase), s))
            .collect();
        let mut unreadable = BTreeMap::new();
        for c in &clusters {
            for n in strategy.numbers() {
                let key = (c.clone(), n);
                if secrets.contains_key(&key) {
                    continue;
                }
                let subject = format!("{c}/{}", phase_dir(n));
                let cause = report
                    .findings
                    .iter()
                    .find(|f| {
                        f.is_failure()
                            && f.severity == super::Severity::Error
                            && f.subject == subject
                    })
                    .map_or_else(
                        || format!("{subject} could not be read"),
                        |f| format!("{subject} could not be read ({}: {})", f.code, f.message),
                    );
                unreadable.insert(key, cause);
            }
        }
        Self {
            strategy,
            clusters,
            secrets,
            unreadable,
        }
    }
}

impl Phases<'_> {
    /// Why `c`'s phase `n` is not there.
    fn missing(&self, c: &str, n: u8) -> String {
        self.unreadable
            .get(&(c.to_string(), n))
            .cloned()
            .unwrap_or_else(|| format!("{c}/{} could not be read", phase_dir(self.strategy, n)))
    }
}

/// The workload of `(cluster, phase, role)`, or why a cell using it is not checked.
fn lookup<'m, 'k>(
    leaves: &'m BTreeMap<(&'k str, u8, &'k str), Result<Arc<Workload>, String>>,
    key: (&'k str, u8, &'k str),
    phases: &Phases<'_>,
) -> Result<&'m Arc<Workload>, String> {
    match leaves.get(&key) {
        Some(Ok(w)) => Ok(w),
        Some(Err(e)) => Err(e.clone()),
        None => Err(phases.missing(key.0, key.1)),
    }
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
    let key = s.key.as_ref().map_or("", |k| k.expose());
    (cluster, s.signer_pem.as_str(), key)
}

/// How the cells are decided: full handshakes when every readable phase's key is at hand,
/// otherwise trust decisions on the probe chains.
pub fn mode(phases: &Phases<'_>) -> MatrixMode {
    if phases.secrets.values().all(|s| s.key.is_some()) {
        MatrixMode::Handshakes
    } else {
        MatrixMode::Probes
    }
}

/// Per (cluster, phase, role): the probe chain, presented as a workload without a key (only
/// its chain is ever judged, by `judge_trust`), or why a cell using it is not checked.
fn probe_workloads<'s>(
    by: &BTreeMap<(String, u8), &'s PhaseSecret>,
) -> BTreeMap<(&'s str, u8, &'static str), Result<Arc<Workload>, String>> {
    let mut leaves = BTreeMap::new();
    for s in by.values() {
        let w = s
            .probe
            .as_ref()
            .map(|chain| {
                Arc::new(Workload {
                    chain_pem: String::from_utf8_lossy(chain).into_owned(),
                    key_pem: String::new(),
                })
            })
            .map_err(|why| format!("there is no probe to judge ({why})"));
        for sa in ["client", "server"] {
            leaves.insert((s.cluster.as_str(), s.phase, sa), w.clone());
        }
    }
    leaves
}

/// One cell to judge: a client leaf and bundle meeting a server leaf and bundle.
struct Planned<'a> {
    /// Index of the (cluster, transition) finding it counts towards.
    group: usize,
    cluster: &'a str,
    peer: &'a str,
    transition: u8,
    combo: (u8, u8, u8, u8),
    /// Everything the cell needs, or the first reason it cannot be checked.
    inputs: Result<Inputs<'a>, String>,
}

impl Planned<'_> {
    /// One phase of one cluster on both sides, trusting that phase.
    fn is_diagonal(&self) -> bool {
        let (cl, ct, sl, st) = self.combo;
        self.cluster == self.peer && cl == ct && ct == sl && sl == st
    }
}

struct Inputs<'a> {
    client: &'a Arc<Workload>,
    client_trust: &'a Arc<[u8]>,
    server: &'a Arc<Workload>,
    server_trust: &'a Arc<[u8]>,
}

/// Builds and judges every cell.
///
/// Leaves are issued once per intermediate, and cells are judged on every core through one
/// [`HandshakeCache`]; cells and findings come out in the same order whatever the thread
/// timing. Only the transitions `wanted(cluster, n)` (n → n+1) are checked.
/// `progress(done, total)` is called on the calling thread as cells are judged.
pub fn build(
    phases: &Phases<'_>,
    trust_domain: &str,
    now: OffsetDateTime,
    wanted: &dyn Fn(&str, u8) -> bool,
    progress: &mut dyn FnMut(usize, usize),
) -> (Vec<CellInput>, Vec<Finding>) {
    let probes = mode(phases) == MatrixMode::Probes;
    let leaves = if probes {
        probe_workloads(&phases.secrets)
    } else {
        issued_workloads(&phases.secrets, phases.strategy, trust_domain, now)
    };
    let bundles = shared_bundles(&phases.secrets);
    let (groups, planned) = plan_cells(phases, &leaves, &bundles, wanted);
    let server_id = if probes {
        handshake::probe_spec(trust_domain).spiffe_id()
    } else {
        spec(trust_domain, "server").spiffe_id()
    };
    let cache = HandshakeCache::new(&server_id, now);
    let results = judge_all(&planned, &cache, probes, progress);
    let mut cells = Vec::with_capacity(planned.len());
    let tally = Tally {
        probes,
        ..Tally::default()
    };
    let mut tallies = vec![tally; groups.len()];
    for (p, result) in planned.iter().zip(results) {
        let cell = p.cell(result);
        tallies[p.group].add(&cell, p.peer != p.cluster);
        // Probe workloads carry no key: nothing else could run a handshake on them.
        let material = p
            .inputs
            .as_ref()
            .ok()
            .filter(|_| !probes)
            .map(|i| Material {
                client: i.client.clone(),
                client_trust: i.client_trust.clone(),
                server: i.server.clone(),
                server_trust: i.server_trust.clone(),
                server_id: server_id.clone(),
            });
        cells.push(CellInput { cell, material });
    }
    let findings = groups
        .into_iter()
        .zip(tallies)
        .map(|(subject, tally)| tally.finding(&subject))
        .collect();
    (cells, findings)
}

/// The two roles a cell's leaves play, in the order [`handshake::issue_leaves`] issues them.
const ROLES: [&str; 2] = ["client", "server"];

/// Per (cluster, phase, role): a leaf issued from the phase's signing key, presented with its
/// cert-chain.pem and bundle, or why a cell using it is not checked. One client and one server
/// leaf per intermediate: phases signed by the same certificate and key share them.
fn issued_workloads<'s>(
    by: &'s BTreeMap<(String, u8), &'s PhaseSecret>,
    strategy: Strategy,
    trust_domain: &str,
    now: OffsetDateTime,
) -> BTreeMap<(&'s str, u8, &'static str), Result<Arc<Workload>, String>> {
    let mut signers: BTreeMap<Signer<'_>, &PhaseSecret> = BTreeMap::new();
    for ((c, _), s) in by {
        signers.entry(signer(c, s)).or_insert(s);
    }
    let jobs: Vec<(Signer<'_>, &PhaseSecret)> = signers.into_iter().collect();
    let specs = ROLES.map(|sa| spec(trust_domain, sa));
    let issued = parallel::map(
        &jobs[..],
        |(_, s)| {
            let key = s.key.as_ref().map_or("", |k| k.expose());
            handshake::issue_leaves(&specs, &s.signer_pem, key, now).map_err(|e| e.to_string())
        },
        |_, _| {},
    );
    // Per signer, its leaves in ROLES order.
    let by_signer: BTreeMap<Signer<'_>, Result<Vec<handshake::Leaf>, String>> = jobs
        .iter()
        .zip(issued)
        .map(|((k, _), leaves)| (*k, leaves))
        .collect();
    let mut leaves = BTreeMap::new();
    for ((c, n), s) in by {
        let tail = handshake::ChainTail::new(&s.chain, &s.bundle).map_err(|e| e.to_string());
        let issued: Result<&[handshake::Leaf], String> = match by_signer.get(&signer(c, s)) {
            Some(Ok(leaves)) => Ok(leaves),
            Some(Err(e)) => Err(e.clone()),
            None => Err("no leaf was issued".to_string()),
        };
        for (i, sa) in ROLES.into_iter().enumerate() {
            let workload = issued
                .clone()
                .and_then(|leaves| {
                    leaves
                        .get(i)
                        .ok_or_else(|| "no leaf was issued".to_string())
                })
                .and_then(|leaf| Ok(Arc::new(leaf.present_with(tail.as_ref()?))))
                .map_err(|e| {
                    format!(
                        "no leaf could be issued from {c}/{}: {e}",
                        phase_dir(strategy, *n)
                    )
                });
            leaves.insert((c.as_str(), *n, sa), workload);
        }
    }
    leaves
}

/// Each phase's bundle, equal bundles as one value, so the cache builds one verifier for each
/// (clusters share their bundles).
fn shared_bundles<'s>(
    by: &'s BTreeMap<(String, u8), &'s PhaseSecret>,
) -> BTreeMap<(&'s str, u8), Arc<[u8]>> {
    let mut interned: BTreeMap<&[u8], Arc<[u8]>> = BTreeMap::new();
    by.iter()
        .map(|((c, n), s)| {
            let shared = interned
                .entry(s.bundle.as_slice())
                .or_insert_with(|| Arc::from(s.bundle.as_slice()));
            ((c.as_str(), *n), shared.clone())
        })
        .collect()
}

/// Every cell, in report order, grouped by (cluster, transition): each cluster with itself
/// and with its ring neighbour (see `verify::pairs` for why that covers every pair). Returns
/// the groups' subjects and the cells.
fn plan_cells<'a>(
    phases: &'a Phases<'_>,
    leaves: &'a BTreeMap<(&'a str, u8, &'static str), Result<Arc<Workload>, String>>,
    bundles: &'a BTreeMap<(&'a str, u8), Arc<[u8]>>,
    wanted: &dyn Fn(&str, u8) -> bool,
) -> (Vec<String>, Vec<Planned<'a>>) {
    let bundle = |c, n| bundles.get(&(c, n)).ok_or_else(|| phases.missing(c, n));
    let clusters = &phases.clusters;
    let mut groups: Vec<String> = Vec::new();
    let mut planned: Vec<Planned<'a>> = Vec::new();
    for (i, c) in clusters.iter().enumerate() {
        let peers: Vec<&String> = if clusters.len() > 1 {
            vec![c, &clusters[(i + 1) % clusters.len()]]
        } else {
            vec![c]
        };
        for n in (1..phases.strategy.last()).filter(|&n| wanted(c, n)) {
            let group = groups.len();
            for peer in &peers {
                for combo in combos(n) {
                    let (cl, ct, sl, st) = combo;
                    let inputs = (|| {
                        Ok(Inputs {
                            client: lookup(leaves, (c, cl, "client"), phases)?,
                            client_trust: bundle(c.as_str(), ct)?,
                            server: lookup(leaves, (peer, sl, "server"), phases)?,
                            server_trust: bundle(peer.as_str(), st)?,
                        })
                    })();
                    planned.push(Planned {
                        group,
                        cluster: c,
                        peer,
                        transition: n,
                        combo,
                        inputs,
                    });
                }
            }
            groups.push(format!(
                "{c}/{}→{}",
                phase_dir(phases.strategy, n),
                phase_dir(phases.strategy, n + 1)
            ));
        }
    }
    (groups, planned)
}

/// Decides every planned cell on every core, and returns the verdicts in report order.
/// Cells where one phase of a cluster meets itself go first, phase by phase (and transition
/// by transition: such a cell is in both transitions of its phase) across the fleet: each
/// real handshake they run proves both its ends, so most other cells need none (see
/// `HandshakeCache::judge`), and workers running side by side take different clusters,
/// whose leaves differ, rather than two cells sharing a leaf.
fn judge_all(
    planned: &[Planned<'_>],
    cache: &HandshakeCache,
    probes: bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<Result<Result<(), handshake::HandshakeError>, String>> {
    let total = planned.len();
    let mut done = 0;
    let mut order: Vec<usize> = (0..total).collect();
    order.sort_by_key(|&i| {
        let p = &planned[i];
        (!p.is_diagonal(), p.combo.0, p.transition)
    });
    let judged = parallel::map(
        &order,
        |&i| {
            planned[i]
                .inputs
                .as_ref()
                .map(|i| {
                    if probes {
                        cache.judge_trust(
                            i.client.chain_pem.as_bytes(),
                            i.client_trust,
                            i.server.chain_pem.as_bytes(),
                            i.server_trust,
                        )
                    } else {
                        cache.judge(i.client, i.client_trust, i.server, i.server_trust)
                    }
                })
                .map_err(String::clone)
        },
        |_, _| {
            done += 1;
            progress(done, total);
        },
    );
    let mut results: Vec<(usize, _)> = order.into_iter().zip(judged).collect();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

impl Planned<'_> {
    /// The report's cell for this planned cell and its verdict.
    fn cell(&self, result: Result<Result<(), handshake::HandshakeError>, String>) -> MatrixCell {
        let (cl, ct, sl, st) = self.combo;
        let (status, rejected_by, reason) = match result {
            Ok(Ok(())) => (CellStatus::Ok, None, None),
            Ok(Err(e)) => (
                CellStatus::Failed,
                e.rejected_by().map(|s| s.to_string()),
                Some(e.to_string()),
            ),
            Err(why) => (
                CellStatus::NotChecked,
                None,
                Some(format!("{NOT_CHECKED}{why}")),
            ),
        };
        MatrixCell {
            cluster: self.cluster.to_string(),
            transition: self.transition,
            client_leaf_phase: cl,
            client_trust_phase: ct,
            server_cluster: self.peer.to_string(),
            server_leaf_phase: sl,
            server_trust_phase: st,
            status,
            ok: status == CellStatus::Ok,
            rejected_by,
            reason,
        }
    }
}

/// The prefix of a not-checked cell's reason.
pub const NOT_CHECKED: &str = "not checked, because ";

/// One (cluster, transition) finding's count of cells.
#[derive(Debug, Clone, Default)]
struct Tally {
    /// Decided from probe chains: trust decisions, not handshakes.
    probes: bool,
    total: usize,
    failed: Vec<String>,
    not_checked: Vec<String>,
}

impl Tally {
    /// The (cluster, transition) finding: failed when a cell failed, not checked when no cell
    /// failed but some could not be judged.
    fn finding(&self, subject: &str) -> Finding {
        const HINT: &str = "while a promotion propagates, old and new leaves and bundles meet: every root a live leaf chains to must stay in every bundle, and no same-named root may come before it";
        if self.failed.is_empty() && !self.not_checked.is_empty() {
            Finding::not_checked(Code::HandshakeMatrix, subject, self.message())
        } else {
            Finding::new(
                Code::HandshakeMatrix,
                self.failed.is_empty(),
                subject,
                self.message(),
            )
            .hint(HINT)
        }
    }

    fn add(&mut self, c: &MatrixCell, other_cluster: bool) {
        self.total += 1;
        let reason = c.reason.clone().unwrap_or_default();
        match c.status {
            CellStatus::Ok => {}
            CellStatus::Failed => self.failed.push(format!(
                "client leaf {}/trust {} → {}server leaf {}/trust {}: {reason}",
                c.client_leaf_phase,
                c.client_trust_phase,
                if other_cluster {
                    format!("{} ", c.server_cluster)
                } else {
                    String::new()
                },
                c.server_leaf_phase,
                c.server_trust_phase,
            )),
            CellStatus::NotChecked => self.not_checked.push(reason),
        }
    }

    fn message(&self) -> String {
        let total = self.total;
        let (failed, not_checked) = (self.failed.len(), self.not_checked.len());
        let ok = total - failed - not_checked;
        if failed == 0 && not_checked == 0 && self.probes {
            return format!(
                "{total} trust decision(s) between probe leaves and bundles of both phases \
                 accept (no identity: no proof of possession)"
            );
        }
        if failed == 0 && not_checked == 0 {
            return format!(
                "{total} handshake(s) between leaves and bundles of both phases succeed"
            );
        }
        let what = if self.probes {
            "trust decision(s) on probe leaves"
        } else {
            "handshake(s)"
        };
        let mut parts = vec![format!("{ok} of {total} {what} ok")];
        if failed > 0 {
            parts.push(format!("{failed} fail (first: {})", self.failed[0]));
        }
        if not_checked > 0 {
            parts.push(format!("{not_checked} {}", self.not_checked[0]));
        }
        parts.join("; ")
    }
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

/// Runs the matrix for the `wanted` transitions over the readable `secrets` and adds it to
/// `report`, whose findings name the phases that could not be read; `progress(done, total)`
/// as cells are judged.
pub fn run(
    report: &mut Report,
    clusters: &[String],
    secrets: &[PhaseSecret],
    trust_domain: &str,
    now: OffsetDateTime,
    wanted: &dyn Fn(&str, u8) -> bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<CellInput> {
    let phases = Phases::from_report(report, clusters, secrets);
    report.matrix_mode = Some(mode(&phases));
    let (cells, findings) = build(&phases, trust_domain, now, wanted, progress);
    report.findings.extend(findings);
    report.matrix = cells.iter().map(|c| c.cell.clone()).collect();
    cells
}
