//! `promote` and `status`: moving a cluster's active-phase pointer one step at a time, and
//! telling where every cluster is.
//!
//! Promotion is refused when it would skip a phase, break lockstep, or land on a phase whose
//! offline gates fail (unless forced). With `commit`, the change is committed by the `git`
//! binary so the user's hooks and signing apply; on any failure the pointer is restored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use time::OffsetDateTime;

use crate::duration::Span;
use crate::gates::Code;
use crate::model::{Strategy, phase_dir};
use crate::repo::{self, Repo, RepoError};
use crate::verify::offline::expiry::{self, ClusterExpiry};
use crate::verify::offline::{self, VerifyError};
use crate::verify::{Finding, Report, Severity};

/// Why a promotion was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    /// The rendered repository cannot be read.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The offline gates could not run.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The cluster has no directory in the tree.
    #[error("cluster `{cluster}` is not in {} (clusters: {known})", dir.display())]
    UnknownCluster {
        /// The cluster asked for.
        cluster: String,
        /// The rendered directory.
        dir: PathBuf,
        /// The clusters it has.
        known: String,
    },
    /// `--wave N` names no wave of the rollout.
    #[error("--wave {wave}: the rollout has {count} wave(s) ({listed}); give --wave 1 to {count}")]
    NoSuchWave {
        /// The wave asked for.
        wave: usize,
        /// How many waves there are.
        count: usize,
        /// Each wave's clusters.
        listed: String,
    },
    /// The target phase is not one of the rollout's (1–4, or 1–3 for intermediates).
    #[error("phase {to} does not exist; phases are {phases}")]
    NoSuchPhase {
        /// The phase asked for.
        to: u8,
        /// The rollout's phases, named (`1 (initial) to 4 (finalize)`).
        phases: String,
    },
    /// A pointer cannot be read or rewritten.
    #[error("{cluster}: {reason}")]
    Pointer {
        /// The cluster.
        cluster: String,
        /// What is wrong with its pointer.
        reason: String,
    },
    /// Nothing to move.
    #[error("{cluster} is already at phase {to}")]
    AlreadyThere {
        /// The cluster(s).
        cluster: String,
        /// The phase.
        to: u8,
    },
    /// The move skips a phase.
    #[error("{cluster} is at phase {from}: promote one phase at a time (to {})", one_step(*from, *last))]
    Skip {
        /// The cluster.
        cluster: String,
        /// Its phase.
        from: u8,
        /// The phase asked for.
        to: u8,
        /// The rollout's last phase.
        last: u8,
    },
    /// The fleet would be in phases that cannot coexist.
    #[error(
        "refused: {problem}; {} — move the clusters behind first (or together: --cluster A --cluster B, --all-clusters)",
        crate::fleet::RULE
    )]
    Skew {
        /// Which clusters are where.
        problem: String,
    },
    /// A phase's minimum soak has not passed yet.
    #[error(
        "refused: {cluster} entered phase {phase} {since}; its minimum soak is {min_soak}: {left} left (or pass --force, recorded in the commit)"
    )]
    Soaking {
        /// The cluster.
        cluster: String,
        /// The phase it is in.
        phase: u8,
        /// When it entered it.
        since: String,
        /// The phase's minimum soak.
        min_soak: Span,
        /// How long is left.
        left: Span,
    },
    /// The soak cannot be proven: the pointer is not in Git history.
    #[error(
        "refused: {cluster}'s pointer is not in Git history, so its phase-{phase} soak ({min_soak}) cannot be proven; commit the tree, or pass --force (recorded in the commit)"
    )]
    SoakUnproven {
        /// The cluster.
        cluster: String,
        /// The phase it is in.
        phase: u8,
        /// The phase's minimum soak.
        min_soak: Span,
    },
    /// Offline gates fail for the target phase.
    #[error(
        "refused: {count} offline gate(s) fail for the target phase ({codes}); run `rootroll verify offline` for details, or pass --force"
    )]
    GatesFail {
        /// How many.
        count: usize,
        /// Which, with their subjects.
        codes: String,
    },
    /// A pointer has a staged change that was never committed.
    #[error(
        "{paths}: a staged change was never committed (an interrupted `promote --commit`?); \
         undo it with `git restore --staged --worktree -- PATH` or commit it, then promote again"
    )]
    Staged {
        /// The staged pointers, as git names them.
        paths: String,
    },
    /// A `git` command failed.
    #[error("git {action} failed: {detail}")]
    Git {
        /// The git subcommand.
        action: String,
        /// What git said.
        detail: String,
    },
    /// A pointer could not be written.
    #[error(transparent)]
    WriteTree(#[from] crate::repo::WriteError),
    /// A pointer could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The pointer.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The phases one step from `from`: "2", or "1 or 3".
fn one_step(from: u8, last: u8) -> String {
    let steps: Vec<String> = [from.checked_sub(1), Some(from + 1)]
        .into_iter()
        .flatten()
        .filter(|p| (1..=last).contains(p))
        .map(|p| p.to_string())
        .collect();
    steps.join(" or ")
}

/// One cluster's move.
#[derive(Debug, Clone, Serialize)]
pub struct Move {
    /// The cluster.
    pub cluster: String,
    /// The phase it was at.
    pub from: u8,
    /// The phase it moves to.
    pub to: u8,
}

/// A promotion request.
pub struct Request<'a> {
    /// The rendered directory.
    pub dir: &'a Path,
    /// The clusters to move.
    pub clusters: Vec<String>,
    /// The target phase.
    pub to: u8,
    /// Move even though gates fail or the phases could not coexist.
    pub force: bool,
    /// Commit the pointer change with `git`.
    pub commit: bool,
    /// Identities for the offline gates (SOPS MAC, Secret content).
    pub identities: &'a [age::x25519::Identity],
    /// The time the gates are judged at.
    pub now: OffsetDateTime,
}

/// Gates relevant to landing `cluster` on phase `to`: that phase's own gates, the transition
/// into it, and fleet-wide gates other than lockstep (checked separately on the new state).
fn blocking(report: &Report, moves: &[Move], strategy: Strategy) -> Vec<Finding> {
    let phase_dir = |n: u8| phase_dir(strategy, n);
    report
        .findings
        .iter()
        .filter(|f| {
            !f.passed
                && f.severity == Severity::Error
                && f.code != Code::Lockstep
                && f.code != Code::PointerValid
        })
        .filter(|f| {
            // Fleet-wide gates ("fleet", "fleet/<phase>"); a cluster name holds no '/'.
            f.subject == "fleet"
                || f.subject.starts_with("fleet/")
                || moves.iter().any(|m| {
                    let lo = m.from.min(m.to);
                    let hi = m.from.max(m.to);
                    f.subject == format!("{}/{}", m.cluster, phase_dir(m.to))
                        || f.subject == format!("{}/{}→{}", m.cluster, phase_dir(lo), phase_dir(hi))
                })
        })
        .cloned()
        .collect()
}

fn replace_pointer(text: &str, strategy: Strategy, from: u8, to: u8) -> String {
    text.replace(
        &repo::pointer_resource(strategy, from),
        &repo::pointer_resource(strategy, to),
    )
}

fn write_atomic(path: &Path, text: &str) -> Result<(), PromoteError> {
    crate::repo::write_file_atomic(path, text.as_bytes()).map_err(PromoteError::WriteTree)
}

fn git(dir: &Path, args: &[&str]) -> Result<String, PromoteError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| PromoteError::Git {
            action: args.first().copied().unwrap_or("").to_string(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(PromoteError::Git {
            action: args.first().copied().unwrap_or("").to_string(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The repository's top directory and `paths` relative to it, as git names them.
fn git_paths(dir: &Path, paths: &[&Path]) -> Result<(PathBuf, Vec<String>), PromoteError> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    let top = PathBuf::from(top.trim());
    let rel = paths
        .iter()
        .map(|p| {
            std::path::absolute(p)
                .ok()
                .and_then(|a| a.strip_prefix(&top).ok().map(|r| r.display().to_string()))
                .unwrap_or_else(|| p.display().to_string())
        })
        .collect();
    Ok((top, rel))
}

/// Pointers with a staged change that was never committed (a `promote --commit` killed
/// between `git add` and `git commit`): promoting on top of one would hide it.
fn refuse_staged_pointers(repo: &Repo) -> Result<(), PromoteError> {
    let pointers: Vec<PathBuf> = repo
        .clusters
        .iter()
        .map(|c| repo.path(&repo::pointer(c)))
        .collect();
    let refs: Vec<&Path> = pointers.iter().map(PathBuf::as_path).collect();
    let (top, rel) = git_paths(repo.dir(), &refs)?;
    let mut args = vec!["diff", "--cached", "--name-only", "--"];
    args.extend(rel.iter().map(String::as_str));
    let staged = git(&top, &args)?;
    let staged: Vec<&str> = staged.lines().filter(|l| !l.is_empty()).collect();
    if staged.is_empty() {
        return Ok(());
    }
    Err(PromoteError::Staged {
        paths: staged.join(", "),
    })
}

/// The commit message for a promotion, with trailers a tool can parse; `forced` names the
/// checks `--force` overrode (`skew`, `soak`, `gates`), one `Rootroll-Forced` trailer each.
pub fn commit_message(plan: &str, strategy: Strategy, moves: &[Move], forced: &[&str]) -> String {
    let phase_dir = |n: u8| phase_dir(strategy, n);
    let names: Vec<&str> = moves.iter().map(|m| m.cluster.as_str()).collect();
    let to = moves[0].to;
    let verb = if moves[0].to > moves[0].from {
        "promote"
    } else {
        "roll back"
    };
    let mut msg = format!(
        "istio-ca: {verb} {} to phase {}\n\n",
        names.join(", "),
        phase_dir(to)
    );
    msg.push_str(&format!(
        "Move the active cacerts phase of the {} rotation \"{plan}\" one step.\n{}\n\n",
        match strategy {
            Strategy::Roots => "root CA",
            Strategy::Intermediates => "intermediate CA",
        },
        if forced.contains(&"gates") {
            "Forced: the gates were NOT checked before this commit."
        } else {
            "Gates were checked with `rootroll verify offline` before this commit."
        }
    ));
    msg.push_str(&format!("Rootroll-Plan: {plan}\n"));
    for m in moves {
        msg.push_str(&format!(
            "Rootroll-Cluster: {}\nRootroll-From-Phase: {}\nRootroll-To-Phase: {}\n",
            m.cluster,
            phase_dir(m.from),
            phase_dir(m.to)
        ));
    }
    for f in forced {
        msg.push_str(&format!("Rootroll-Forced: {f}\n"));
    }
    msg
}

/// The clusters of wave `wave` (from 1) of the rendered rollout at `dir`: `spec.rollout.waves`,
/// or the whole fleet as wave 1 when the plan names none.
pub fn wave_clusters(dir: &Path, wave: usize) -> Result<Vec<String>, PromoteError> {
    let waves = repo::read_rollout(dir)?.waves();
    match wave.checked_sub(1).and_then(|i| waves.get(i)) {
        Some(w) => Ok(w.clone()),
        None => Err(PromoteError::NoSuchWave {
            wave,
            count: waves.len(),
            listed: waves
                .iter()
                .enumerate()
                .map(|(i, w)| format!("{}: {}", i + 1, w.join(", ")))
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// Checks and performs a promotion (or a one-step rollback). Returns the moves made.
pub fn promote(req: &Request<'_>) -> Result<Vec<Move>, PromoteError> {
    let repo = Repo::open(req.dir)?;
    let strategy = repo.rollout.strategy;
    if !strategy.numbers().contains(&req.to) {
        let phases = strategy.phases();
        let last = usize::from(strategy.last());
        return Err(PromoteError::NoSuchPhase {
            to: req.to,
            phases: format!("1 ({}) to {last} ({})", phases[1].1, phases[last].1),
        });
    }
    // What a killed render or promote left behind goes first.
    crate::repo::tree::remove_stale_tree_temps(req.dir);
    if req.commit {
        refuse_staged_pointers(&repo)?;
    }
    let all = repo.clusters.clone();
    let mut active: BTreeMap<String, u8> = BTreeMap::new();
    for c in &all {
        let n = repo.active(c).map_err(|reason| PromoteError::Pointer {
            cluster: c.clone(),
            reason,
        })?;
        active.insert(c.clone(), n);
    }
    let moves = plan_moves(req, &active, &all, strategy.last())?;
    let mut after = active.clone();
    for m in &moves {
        after.insert(m.cluster.clone(), m.to);
    }
    let mut forced = Vec::new();
    if let Some(problem) = crate::fleet::skew_problem(&after) {
        if !req.force {
            return Err(PromoteError::Skew { problem });
        }
        forced.push("skew");
    }
    if let Err(e) = check_soak(&repo, &moves, req.now) {
        if !req.force {
            return Err(e);
        }
        forced.push("soak");
    }
    if req.force {
        forced.push("gates");
    } else {
        check_gates(&repo, req, &moves)?;
    }
    apply(&repo, req, &moves, &forced)?;
    Ok(moves)
}

/// When a cluster's pointer last changed in Git, if it is in a repository's history.
fn promoted_at(repo: &Repo, cluster: &str) -> Option<OffsetDateTime> {
    let pointer = repo.path(&repo::pointer(cluster));
    let out = git(
        pointer.parent()?,
        &["log", "-1", "--format=%cI", "--", "kustomization.yaml"],
    )
    .ok()?;
    OffsetDateTime::parse(out.trim(), &time::format_description::well_known::Rfc3339).ok()
}

/// Every forward move leaves a phase whose minimum soak has passed since the pointer entered
/// it (Git history, as `status` shows it). A rollback never waits.
fn check_soak(repo: &Repo, moves: &[Move], now: OffsetDateTime) -> Result<(), PromoteError> {
    for m in moves.iter().filter(|m| m.to > m.from) {
        let min_soak = repo.rollout.min_soak(m.from);
        if min_soak.as_secs() == 0 {
            continue;
        }
        let Some(at) = promoted_at(repo, &m.cluster) else {
            return Err(PromoteError::SoakUnproven {
                cluster: m.cluster.clone(),
                phase: m.from,
                min_soak,
            });
        };
        let elapsed = u64::try_from((now - at).whole_seconds()).unwrap_or(0);
        if elapsed < min_soak.as_secs() {
            return Err(PromoteError::Soaking {
                cluster: m.cluster.clone(),
                phase: m.from,
                since: at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                min_soak,
                left: Span::from_secs(min_soak.as_secs() - elapsed),
            });
        }
    }
    Ok(())
}

/// The moves a request asks for, each one phase forward or back.
fn plan_moves(
    req: &Request<'_>,
    active: &BTreeMap<String, u8>,
    all: &[String],
    last: u8,
) -> Result<Vec<Move>, PromoteError> {
    let mut moves = Vec::new();
    for c in &req.clusters {
        let Some(&from) = active.get(c) else {
            return Err(PromoteError::UnknownCluster {
                cluster: c.clone(),
                dir: req.dir.to_path_buf(),
                known: all.join(", "),
            });
        };
        if from == req.to {
            if req.clusters.len() > 1 {
                continue; // --all-clusters: some may already be there
            }
            return Err(PromoteError::AlreadyThere {
                cluster: c.clone(),
                to: req.to,
            });
        }
        if from.abs_diff(req.to) != 1 {
            return Err(PromoteError::Skip {
                cluster: c.clone(),
                from,
                to: req.to,
                last,
            });
        }
        moves.push(Move {
            cluster: c.clone(),
            from,
            to: req.to,
        });
    }
    if moves.is_empty() {
        return Err(PromoteError::AlreadyThere {
            cluster: req.clusters.join(", "),
            to: req.to,
        });
    }
    Ok(moves)
}

/// The offline gates and the moving clusters' handshake matrix, for the target phases.
fn check_gates(repo: &Repo, req: &Request<'_>, moves: &[Move]) -> Result<(), PromoteError> {
    let (mut report, secrets) = offline::run(
        repo,
        &offline::Options {
            identities: req.identities,
            // Promotion keeps to the operator's check: a gate that needs a key must run.
            require_keys: true,
            now: req.now,
        },
    )?;
    // The handshake matrix is a gate too: a transition whose leaves and bundles do not
    // meet must not be entered. Only the moving clusters' transitions are judged.
    crate::verify::matrix::run(
        &mut report,
        &repo.clusters,
        &secrets,
        &repo.rollout.mesh.trust_domain,
        req.now,
        &|cluster, n| {
            moves
                .iter()
                .any(|m| m.cluster == cluster && m.from.min(m.to) == n)
        },
        &mut |_, _| {},
    );
    let blocking = blocking(&report, moves, repo.rollout.strategy);
    if !blocking.is_empty() {
        let mut codes: Vec<String> = blocking
            .iter()
            .map(|f| format!("{} {}", f.code, f.subject))
            .collect();
        codes.dedup();
        return Err(PromoteError::GatesFail {
            count: blocking.len(),
            codes: codes.join(", "),
        });
    }
    Ok(())
}

/// Rewrites the pointers (and commits them); on any failure every pointer is restored and
/// nothing stays staged.
fn apply(
    repo: &Repo,
    req: &Request<'_>,
    moves: &[Move],
    forced: &[&str],
) -> Result<(), PromoteError> {
    let ctx = &repo.rollout;
    // Change the pointers; restore every one of them if anything after this fails.
    let mut originals = Vec::new();
    let mut updated = Vec::new();
    for m in moves {
        let p = repo.path(&repo::pointer(&m.cluster));
        let text = std::fs::read_to_string(&p).map_err(|source| PromoteError::Read {
            path: p.clone(),
            source,
        })?;
        // The rewritten pointer must name the target phase, or nothing would really move.
        let new = replace_pointer(&text, repo.rollout.strategy, m.from, m.to);
        if repo::parse_active(repo.rollout.strategy, &new) != Some(m.to) {
            return Err(PromoteError::Pointer {
                cluster: m.cluster.clone(),
                reason: format!(
                    "{} does not list `phases/{}` the way rootroll writes it; re-render or fix it by hand",
                    p.display(),
                    repo.rollout.phase_dir(m.from)
                ),
            });
        }
        originals.push((p.clone(), text));
        updated.push(new);
    }
    // Where git sees the pointers, found before anything changes (also used to unstage them).
    let git_repo = if req.commit {
        let paths: Vec<&Path> = originals.iter().map(|(p, _)| p.as_path()).collect();
        Some(git_paths(req.dir, &paths)?)
    } else {
        None
    };
    let result = (|| {
        for ((p, _), new) in originals.iter().zip(&updated) {
            write_atomic(p, new)?;
        }
        if let Some((top, rel)) = &git_repo {
            let mut add = vec!["add", "--"];
            add.extend(rel.iter().map(String::as_str));
            git(top, &add)?;
            let msg = commit_message(&ctx.plan, ctx.strategy, moves, forced);
            let mut commit = vec!["commit", "-m", msg.as_str(), "--"];
            commit.extend(rel.iter().map(String::as_str));
            git(top, &commit)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        for (p, text) in &originals {
            let _ = write_atomic(p, text);
        }
        if let Some((top, rel)) = &git_repo {
            // Unstage the pointers, so a later `git commit` cannot carry the refused move.
            let mut reset = vec!["reset", "-q", "--"];
            reset.extend(rel.iter().map(String::as_str));
            let _ = git(top, &reset);
        }
        return Err(e);
    }
    Ok(())
}

/// Where one cluster stands.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// The cluster.
    pub cluster: String,
    /// The wave it is promoted in (from 1; the whole fleet is wave 1 without
    /// `spec.rollout.waves`); `None` for a directory the rollout does not list.
    pub wave: Option<usize>,
    /// Its active phase, when the pointer reads.
    pub active_phase: Option<u8>,
    /// That phase's directory name.
    pub active_name: Option<String>,
    /// When the pointer last changed in Git (RFC 3339), if the directory is in a repository.
    #[serde(with = "time::serde::rfc3339::option")]
    pub promoted_at: Option<OffsetDateTime>,
    /// The active phase's minimum soak.
    pub min_soak: Option<Span>,
    /// Time left before the next promotion may happen; zero when the soak is over.
    pub soak_left: Option<Span>,
    /// Gate codes that must pass before the next phase.
    pub next_gates: Vec<crate::gates::Code>,
    /// Why the pointer could not be read.
    pub problem: Option<String>,
    /// When the active phase's CAs expire and the next rotation must start; `None` when the
    /// pointer or the expiry cannot be read (`expiry_problem` says why).
    pub expiry: Option<ClusterExpiry>,
    /// Why the expiry cannot be known.
    pub expiry_problem: Option<String>,
    /// What to run next and what it waits for; `None` when the pointer cannot be read.
    pub next: Option<NextStep>,
}

/// How a cluster continues from where it stands, as `status` names it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NextStep {
    /// The commands to run next, in order, ready to paste.
    pub commands: Vec<String>,
    /// What must hold before the last command can succeed (soak left, the skew rule, the
    /// live gates); empty when nothing does.
    pub waits_for: Vec<String>,
    /// Every cluster is at the last phase: this rotation is over.
    pub finished: bool,
}

/// What `status` says once every cluster is at the last phase (4, or 3 for an
/// intermediate-only rotation).
pub const FINISHED: &str = "rotation finished: the next one starts from a plan whose current root and intermediates are the last phase's (README: \"After the rotation\")";

/// `path` as a shell word: as is when it is plain, else single-quoted.
fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@%,".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What `cluster`, at phase `n` in a fleet at `active`, does next: `verify live` then
/// `promote` to `n + 1`, waiting for the soak (`soak_left`, as `promote` proves it from Git),
/// the skew rule and the live gates; or, once every cluster is at phase 4, `init
/// --from-render` (the next rotation's plan, and a new directory to render it into).
fn next_step(
    dir: &Path,
    model: &crate::model::Rollout,
    cluster: &str,
    n: u8,
    active: &BTreeMap<String, u8>,
    soak: (Option<OffsetDateTime>, Option<Span>),
) -> NextStep {
    let d = shell_word(dir);
    let last = model.last_phase();
    if n >= last {
        let behind: Vec<String> = active
            .iter()
            .filter(|(_, p)| **p < last)
            .map(|(c, p)| format!("{c} at phase {p}"))
            .collect();
        if behind.is_empty() && model.strategy == Strategy::Intermediates {
            // The root did not change: the next rotation's plan imports today's root and the
            // new intermediates (`init --from-dir`, or `--from-cluster` on each cluster).
            return NextStep {
                commands: Vec::new(),
                waits_for: Vec::new(),
                finished: true,
            };
        }
        if behind.is_empty() {
            let stem = dir.display().to_string();
            let stem = stem.trim_end_matches('/');
            return NextStep {
                commands: vec![format!(
                    "rootroll init --from-render {d} --output {} --out {}",
                    shell_word(Path::new(&format!("{stem}-next.yaml"))),
                    shell_word(Path::new(&format!("{stem}-next")))
                )],
                waits_for: Vec::new(),
                finished: true,
            };
        }
        return NextStep {
            commands: Vec::new(),
            waits_for: vec![format!(
                "this cluster is done; the rotation finishes when the others reach phase {last}: {}",
                behind.join(", ")
            )],
            finished: false,
        };
    }
    let to = n + 1;
    let mut waits = Vec::new();
    let min_soak = model.min_soak(n);
    match soak {
        (Some(at), Some(left)) if left.as_secs() > 0 => waits.push(format!(
            "soak: {left} left (phase {n} entered {}, minimum {min_soak})",
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        )),
        (None, _) if min_soak.as_secs() > 0 => waits.push(format!(
            "soak: the pointer is not in Git history, so the {min_soak} soak cannot be proven: commit the tree"
        )),
        _ => {}
    }
    let mut after = active.clone();
    after.insert(cluster.to_string(), to);
    if let Some(problem) = crate::fleet::skew_problem(&after) {
        waits.push(format!(
            "skew: {problem}; promote the clusters behind first"
        ));
    }
    let gates: Vec<&str> = model
        .phase(n)
        .map(|p| {
            p.gates_before_next
                .iter()
                .map(|g| g.code.as_str())
                .collect()
        })
        .unwrap_or_default();
    if !gates.is_empty() {
        let mut unique = gates.clone();
        unique.dedup();
        waits.push(format!(
            "live gates (verify live, in {cluster}'s kube context): {}",
            unique.join(", ")
        ));
    }
    NextStep {
        commands: vec![
            format!("rootroll verify live {d} --cluster {cluster}"),
            format!("rootroll promote {d} --cluster {cluster} --to {to} --commit"),
        ],
        waits_for: waits,
        finished: false,
    }
}

/// Status of every cluster of a rendered directory: phase, soak, gates, the expiry of the
/// active phase's CAs (thresholds from the rollout file) and the next step.
/// Status of every cluster of a rendered directory: sorted by name when the plan names no
/// waves, else wave by wave (in each wave's order), then any cluster directory the rollout
/// does not list.
pub fn status(dir: &Path, now: OffsetDateTime) -> Result<Vec<ClusterStatus>, PromoteError> {
    let repo = Repo::open(dir)?;
    let model = &repo.rollout;
    let mut ordered: Vec<&String> = if model.waves.is_empty() {
        Vec::new()
    } else {
        model
            .waves
            .iter()
            .flatten()
            .filter_map(|c| repo.clusters.iter().find(|have| *have == c))
            .collect()
    };
    let rest: Vec<&String> = repo
        .clusters
        .iter()
        .filter(|c| !ordered.contains(c))
        .collect();
    ordered.extend(rest);
    let mut out = Vec::new();
    for c in ordered {
        let (active, problem) = match repo.active(c) {
            Ok(n) => (Some(n), None),
            Err(e) => (None, Some(e)),
        };
        let promoted_at = promoted_at(&repo, c);
        let min_soak = active.map(|n| model.min_soak(n));
        let soak_left = match (promoted_at, min_soak) {
            (Some(at), Some(soak)) => {
                let elapsed = (now - at).whole_seconds().max(0) as u64;
                Some(Span::from_secs(soak.as_secs().saturating_sub(elapsed)))
            }
            _ => None,
        };
        let next_gates = active
            .and_then(|n| model.phase(n))
            .map(|p| p.gates_before_next.iter().map(|g| g.code).collect())
            .unwrap_or_default();
        let (expiry, expiry_problem) = match active {
            Some(n) => match expiry::cluster(&repo, c, n, now, model.expiry) {
                Ok(e) => (Some(e), None),
                Err(why) => (
                    None,
                    Some(format!("{c}: the expiry cannot be known: {why}")),
                ),
            },
            None => (None, None),
        };
        out.push(ClusterStatus {
            cluster: c.clone(),
            wave: model.wave_of(c),
            active_phase: active,
            active_name: active.map(|n| model.phase_dir(n)),
            promoted_at,
            min_soak,
            soak_left,
            next_gates,
            problem,
            expiry,
            expiry_problem,
            next: None,
        });
    }
    let active: BTreeMap<String, u8> = out
        .iter()
        .filter_map(|s| s.active_phase.map(|n| (s.cluster.clone(), n)))
        .collect();
    let complete = active.len() == out.len();
    for s in &mut out {
        // The next step of a fleet with an unreadable pointer cannot be judged (skew).
        if let (Some(n), true) = (s.active_phase, complete) {
            s.next = Some(next_step(
                dir,
                model,
                &s.cluster,
                n,
                &active,
                (s.promoted_at, s.soak_left),
            ));
        }
    }
    Ok(out)
}
