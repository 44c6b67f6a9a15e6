//! `verify offline`: static gates over a rendered repository, per cluster and phase.
//!
//! Everything is read from the directory itself (the Secrets, the kustomizations, the pointers
//! and `.rootroll/rollout.json`), so the gates check what Flux or Argo CD will apply, not what
//! rootroll meant to write. What cannot be read is one failed gate, the root cause; the gates
//! that depend on it are reported as not checked, never as passing.
//!
//! One file per family of gates: [`read`] (the phase Secret opens: sops-mac), [`shape`],
//! [`chain`] (key, signer, chain), [`bundle`] (the planned roots and bytes), [`annotations`],
//! [`validity`], [`reload`] (between consecutive phases), [`kustomize`] (what the engine
//! applies), [`fleet`] (cross-cluster), [`plaintext`], [`placeholder`], [`recipients`] (who
//! can decrypt) and [`expiry`] (when the next rotation must start).

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use super::{Finding, Report};
use crate::gates::Code;
use crate::pki::PrivateKeyPem;
use crate::repo::{Repo, RepoError};

pub mod annotations;
pub mod blocks;
pub mod bundle;
pub mod chain;
pub mod expiry;
pub mod files;
pub mod fleet;
pub mod kustomize;
pub mod placeholder;
pub mod plaintext;
pub mod read;
pub mod recipients;
pub mod reload;
pub mod shape;
pub mod validity;

pub use read::Wiped;

/// Errors that stop verification altogether (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The rendered repository cannot be read.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// The readable content of one phase Secret.
#[derive(Clone)]
pub struct PhaseSecret {
    /// Cluster the Secret belongs to.
    pub cluster: String,
    /// Phase number the Secret belongs to.
    pub phase: u8,
    /// The strategy of the rollout the phase belongs to (names its phases).
    pub strategy: crate::model::Strategy,
    /// The Secret's path in the rendered tree.
    pub file: String,
    /// Signing cert (first certificate of `ca-cert.pem` / `tls.crt`), DER.
    pub signer: Vec<u8>,
    /// The signing cert as it appears in the Secret, PEM.
    pub signer_pem: String,
    /// The signing CA's private key (decrypted; never printed); `None` when no identity
    /// could open it.
    pub key: Option<PrivateKeyPem>,
    /// `root-cert.pem` / `ca.crt`, exact bytes.
    pub bundle: Vec<u8>,
    /// What istiod serves after the leaf: `cert-chain.pem`, or `tls.crt` + `ca.crt`.
    pub chain: Vec<u8>,
    /// The phase's probe chain (PEM: leaf, chain, bundle) once `probe-chain` accepted it, or
    /// why there is none.
    pub probe: Result<Vec<u8>, String>,
}

/// Options for a run.
pub struct Options<'a> {
    /// age identities that open the encrypted Secrets; empty: the gates that need a key are
    /// not checked (failed with `require_keys`) and the matrix is decided from the probes.
    pub identities: &'a [age::x25519::Identity],
    /// `--require-keys`: a gate that needs a key and has none fails instead of being not
    /// checked.
    pub require_keys: bool,
    /// The planned time the checks are made at.
    pub now: OffsetDateTime,
}

/// What every per-phase gate is judged against.
pub struct Ctx<'a> {
    /// The rendered tree being checked.
    pub repo: &'a Repo,
    /// The run's options (identities, time of the checks).
    pub opts: &'a Options<'a>,
    /// The earliest the rollout can be over: now plus every phase's minimum soak.
    pub earliest_end: OffsetDateTime,
    /// Until when the CAs in use must stay valid: the earliest end plus the workload TTL and
    /// the safety margin (the last leaves issued before the end live that long).
    pub rollout_end: OffsetDateTime,
}

impl<'a> Ctx<'a> {
    fn new(repo: &'a Repo, opts: &'a Options<'a>) -> Self {
        let r = &repo.rollout;
        let earliest_end = opts.now + r.min_total.to_time();
        Self {
            repo,
            opts,
            earliest_end,
            rollout_end: earliest_end
                + (r.timing.workload_cert_ttl + r.timing.safety_margin).to_time(),
        }
    }
}

/// The subject of a phase's findings (`east/2-trust-both`).
pub fn phase_subject(strategy: crate::model::Strategy, cluster: &str, n: u8) -> String {
    format!("{cluster}/{}", crate::model::phase_dir(strategy, n))
}

/// Pushes a not-checked finding for each of `codes`, naming the root cause.
pub(crate) fn not_checked(r: &mut Report, codes: &[Code], subject: &str, because: &str) {
    for code in codes {
        r.push(Finding::not_checked(
            *code,
            subject,
            format!("because {because}"),
        ));
    }
}

/// Runs every static gate. Returns the report and the readable phase Secrets (for the matrix).
pub fn run(repo: &Repo, opts: &Options<'_>) -> Result<(Report, Vec<PhaseSecret>), VerifyError> {
    let ctx = Ctx::new(repo, opts);
    let mut r = Report::default();
    fleet::clusters_present(repo, &mut r);
    // Clusters are independent: check them on every core, then merge in order.
    let checked = crate::parallel::map(&repo.clusters, |c| check_cluster(&ctx, c), |_, _| {});
    let mut secrets: Vec<PhaseSecret> = Vec::new();
    let mut active: BTreeMap<String, u8> = BTreeMap::new();
    for (c, checked) in repo.clusters.iter().zip(checked) {
        r.findings.extend(checked.report.findings);
        if let Some(n) = checked.active {
            active.insert(c.clone(), n);
        }
        secrets.extend(checked.secrets.into_values());
    }
    let strategy = repo.rollout.strategy;
    fleet::bundle_shared(strategy, &secrets, &mut r);
    bundle::root_subjects_distinct(strategy, &secrets, &mut r);
    fleet::lockstep(&active, &mut r);
    // The whole-file gates share one read of the tree.
    let tree = files::read(repo.dir());
    plaintext::scan(&tree, &mut r);
    r.expiry = expiry::gates(repo, &active, opts.now, &mut r);
    placeholder::scan(&tree, &mut r);
    recipients::check(&tree, &repo.rollout.gitops, &mut r);
    Ok((r, secrets))
}

/// What one cluster's gates found.
struct ClusterCheck {
    report: Report,
    active: Option<u8>,
    secrets: BTreeMap<u8, PhaseSecret>,
}

/// The per-cluster gates: pointer, each phase, type stability, and the transition gates.
fn check_cluster(ctx: &Ctx<'_>, c: &str) -> ClusterCheck {
    let mut r = Report::default();
    let active = fleet::pointer(ctx.repo, c, &mut r);
    let mut secrets = BTreeMap::new();
    let mut unread = BTreeMap::new();
    for n in ctx.repo.rollout.strategy.numbers() {
        match check_phase(ctx, c, n, &mut r) {
            Ok(s) => {
                secrets.insert(n, s);
            }
            Err(why) => {
                unread.insert(n, why);
            }
        }
    }
    reload::transitions(ctx, c, &secrets, &unread, &mut r);
    ClusterCheck {
        report: r,
        active,
        secrets,
    }
}

/// The gates of one phase. `Err` is the root cause when the Secret could not be read; the
/// gates that need its content are then reported as not checked.
fn check_phase(ctx: &Ctx<'_>, c: &str, n: u8, r: &mut Report) -> Result<PhaseSecret, String> {
    let subject = phase_subject(ctx.repo.rollout.strategy, c, n);
    let file = ctx.repo.phase_secret(c, n);
    kustomize::phase_applies_secret(ctx.repo, c, n, &file, r);
    let read = read::open(ctx, &subject, c, n, file, r).and_then(|opened| {
        let data = shape::check(ctx, &subject, n, &opened, r)?;
        let secret = chain::decode(ctx, &subject, c, n, &opened, &data, r)?;
        Ok((opened, data, secret))
    });
    let (opened, data, mut secret) = match read {
        Ok(v) => v,
        Err(why) => {
            let codes: Vec<Code> = content_gates(ctx, n).collect();
            not_checked(r, &codes, &subject, &why);
            return Err(why);
        }
    };
    blocks::check(ctx, &subject, &data, r);
    chain::gates(ctx, &subject, &opened, &secret, r);
    chain::probe(ctx, &subject, &mut secret, r);
    bundle::planned(ctx, &subject, n, &secret, r);
    annotations::check(ctx, &subject, &opened, &data, &secret, r);
    validity::gates(ctx, &subject, n, &secret, r);
    Ok(secret)
}

/// The gates of phase `n` that need its Secret's decrypted content.
fn content_gates<'a>(ctx: &'a Ctx<'_>, n: u8) -> impl Iterator<Item = Code> + 'a {
    const CODES: &[Code] = &[
        Code::KeyMatchesCert,
        Code::SignerIsCa,
        Code::ChainToBundle,
        Code::ChainOrder,
        Code::BundleRoots,
        Code::BundleBytes,
        Code::BundleBlocks,
        Code::AnnotationsMatch,
        Code::ValidityWindow,
        Code::ValidityFloor,
        Code::ProbeChain,
    ];
    CODES.iter().copied().filter(move |code| {
        let phases = code.gate().phases;
        (phases.is_empty() || phases.contains(&n))
            && !(*code == Code::ChainOrder && ctx.repo.rollout.tls_format())
            && (*code != Code::BundleBytes || bundle::bytes_matter(ctx, n))
    })
}

/// `verify offline`: every static gate, then the transition handshake matrix over the phase
/// Secrets that could be read. `progress` is called as matrix cells are decided (done, total).
pub fn execute(
    repo: &Repo,
    opts: &Options<'_>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Report, VerifyError> {
    let (mut report, secrets) = run(repo, opts)?;
    super::matrix::run(
        &mut report,
        &repo.clusters,
        &secrets,
        &repo.rollout.mesh.trust_domain,
        opts.now,
        &|_, _| true,
        progress,
    );
    // Every ordered pair of clusters, from bundle-shared and each cluster's own cells.
    let pairs = super::pairs::covered(&report, repo.rollout.strategy, &repo.clusters);
    report.push(pairs);
    Ok(report)
}

/// Sorted, de-duplicated strings joined with `, `.
pub(crate) fn joined<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let set: BTreeSet<&str> = items.into_iter().collect();
    set.into_iter().collect::<Vec<_>>().join(", ")
}
