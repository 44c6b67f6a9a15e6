//! The command line: parse the arguments ([`args`]), call one library function per command,
//! print its result and map it to an exit code (0 ok, 1 a gate failed or drift, 2 an error).
//! Only this module prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod show;

use show::{cmd_explain, cmd_inspect, cmd_status, show_render, show_report};

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser};
use time::OffsetDateTime;

use rootroll::plan::{self, PlanError};
use rootroll::repo::{self, Repo};
use rootroll::sops::{self, SopsError};
use rootroll::verify;
use rootroll::{init, model};

use args::{
    Cli, Command, DecryptArgs, Format, InitArgs, PromoteArgs, RenderArgs, VerifyCommand,
    VerifyLiveArgs, VerifyOfflineArgs,
};

/// Prints an error and its causes; plan diagnostics are printed in full.
pub fn print_error(err: &anyhow::Error) {
    if let Some(PlanError::Invalid { diagnostics, path }) =
        err.chain().find_map(|e| e.downcast_ref::<PlanError>())
    {
        for d in diagnostics {
            eprintln!("{d}");
        }
        let errors = diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!(
            "error: {} has {errors} problem(s); nothing was written",
            path.display()
        );
        return;
    }
    eprint!("error: {err}");
    for cause in err.chain().skip(1) {
        eprint!(": {cause}");
    }
    eprintln!();
}

/// Parses the command line and runs the command.
pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    let now = cli.now.unwrap_or_else(OffsetDateTime::now_utc);
    match cli.command {
        Command::Init(a) if a.from_dir.is_some() => cmd_init(&a, now),
        Command::Init(a) if a.from_cluster.is_some() => cmd_init_from_cluster(&a, now),
        Command::Init(a) if a.from_render.is_some() => cmd_init_from_render(&a, now),
        Command::Init(_) => {
            bail!("give --from-dir DIR, --from-cluster CONTEXT or --from-render DIR")
        }
        Command::Plan(a) => cmd_plan(&a.plan, a.format, a.out.as_deref(), now),
        Command::Render(a) => cmd_render(&a, now),
        Command::Decrypt(a) => cmd_decrypt(&a),
        Command::Inspect(a) => cmd_inspect(&a.file, a.format),
        Command::Promote(a) => cmd_promote(a, now),
        Command::Status(a) => cmd_status(&a.dir, a.format, now),
        Command::Explain(a) => cmd_explain(a.code.as_deref(), a.format),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "rootroll",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(VerifyCommand::Offline(a)) => cmd_verify_offline(&a, now),
        Command::Verify(VerifyCommand::Live(a)) => cmd_verify_live(&a, cli.now),
    }
}

fn cmd_init_from_render(a: &InitArgs, now: OffsetDateTime) -> Result<ExitCode> {
    let dir = a.from_render.as_deref().unwrap_or(Path::new("."));
    let (Some(output), Some(out)) = (&a.output, &a.out) else {
        bail!(
            "--from-render needs --output PLAN (public files go next to it) and --out DIR (a new directory for the next render, receiving the encrypted key state)"
        );
    };
    let ids = identities(&a.identity)?;
    let done = init::from_render(&init::FromRender {
        dir,
        identities: &ids,
        name: &a.name,
        recipients: &a.age_recipients,
        output,
        out,
        force: a.force,
        now,
    })?;
    eprintln!(
        "wrote {} (public files under {}) and the encrypted key state {}",
        output.display(),
        done.public_dir.display(),
        done.state.display()
    );
    eprintln!(
        "next: rootroll plan {0}; rootroll render {0} --out {1}; then replace {2} with {1} in one commit (the finished rotation stays in Git history)",
        output.display(),
        out.display(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_init_from_cluster(a: &InitArgs, now: OffsetDateTime) -> Result<ExitCode> {
    let context = a.from_cluster.as_deref().unwrap_or_default();
    let (Some(output), Some(out)) = (&a.output, &a.out) else {
        bail!(
            "--from-cluster needs --output PLAN (public files go next to it) and --out DIR (the encrypted key state)"
        );
    };
    let (namespace, secret) = (&a.namespace, &a.secret);
    let cluster = a
        .cluster
        .clone()
        .unwrap_or_else(|| init::dns_label(context));
    let data = runtime(false)?.block_on(async {
        let client = verify::cluster::client(Some(context), a.kubeconfig.as_deref())
            .await
            .context("cannot build a Kubernetes client")?;
        verify::cluster::secret_data(client, namespace, secret)
            .await
            .with_context(|| format!("cannot read Secret {namespace}/{secret}"))
    })?;
    let Some(data) = data else {
        bail!(
            "Secret {namespace}/{secret} does not exist in context {context}: nothing to import (is istiod using its self-signed CA?)"
        );
    };
    let done = init::from_cluster(&init::FromCluster {
        data: &data,
        name: &a.name,
        cluster: &cluster,
        recipients: &a.age_recipients,
        output,
        out,
        force: a.force,
        now,
    })?;
    eprintln!(
        "wrote {} and {}/ ({} layout, bytes as in the live Secret); the current intermediate's key is only in {} (encrypted)",
        output.display(),
        done.public_dir.display(),
        done.layout,
        done.state.display()
    );
    eprintln!(
        "next: rootroll plan {0} ; rootroll render {0} --out {1} --identity KEY",
        output.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_render(a: &RenderArgs, now: OffsetDateTime) -> Result<ExitCode> {
    let plan = load_plan(&a.plan, now)?;
    let ids = identities(&a.identity)?;
    let req = rootroll::render::Request {
        plan: &plan,
        out: &a.out,
        insecure_plaintext: a.insecure_plaintext,
        check: a.check,
        templates: a.templates.as_deref(),
        identities: repo::Identities {
            ids: &ids,
            explicit: !a.identity.is_empty(),
        },
        now,
    };
    let tty = std::io::stderr().is_terminal();
    let outcome = rootroll::render::execute(&req, &mut |id, done, total| {
        if tty {
            eprint!("\r\x1b[2Kgenerating CA {done}/{total}: {id}");
            if done >= total {
                eprintln!();
            }
        }
    })?;
    Ok(show_render(&a.out, &outcome))
}

fn cmd_promote(a: PromoteArgs, now: OffsetDateTime) -> Result<ExitCode> {
    let clusters = if a.all_clusters {
        repo::list_clusters(&a.dir)?
    } else if let Some(wave) = a.wave {
        rootroll::promote::wave_clusters(&a.dir, wave)?
    } else {
        a.cluster
    };
    let ids = identities(&a.identity)?;
    let moves = rootroll::promote::promote(&rootroll::promote::Request {
        dir: &a.dir,
        clusters,
        to: a.to,
        force: a.force,
        commit: a.commit,
        identities: &ids,
        now,
    })?;
    let strategy = repo::read_rollout(&a.dir)?.strategy;
    for m in &moves {
        println!(
            "{}: phase {} → {}",
            m.cluster,
            model::phase_dir(strategy, m.from),
            model::phase_dir(strategy, m.to)
        );
    }
    if a.commit {
        println!("committed");
    } else {
        println!("pointer(s) updated; commit them to apply (or use --commit)");
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_verify_offline(a: &VerifyOfflineArgs, now: OffsetDateTime) -> Result<ExitCode> {
    let ids = identities(&a.identity)?;
    let mut repo = Repo::open(&a.dir)?;
    repo.rollout.expiry = expiry_thresholds(repo.rollout.expiry, a.expiry_warn, a.expiry_fail)?;
    let opts = verify::offline::Options {
        identities: &ids,
        require_keys: a.require_keys,
        now,
    };
    // Thousands of handshakes on a large fleet: a progress line on a terminal, nothing on a
    // pipe, redrawn once per percent.
    let tty = std::io::stderr().is_terminal();
    let mut shown = 0;
    let report = verify::offline::execute(&repo, &opts, &mut |done, total| {
        let percent = done * 100 / total.max(1);
        if tty && (percent > shown || done == total) {
            shown = percent;
            eprint!("\r\x1b[2Khandshake matrix {done}/{total}");
            if done == total {
                eprint!("\r\x1b[2K");
            }
        }
    })?;
    show_report(&report, "rootroll verify offline", a.report)
}

/// The rollout's expiry thresholds with `--expiry-warn` / `--expiry-fail` applied; inverted
/// ones are refused, naming the flag (or the rollout value) on each side.
fn expiry_thresholds(
    rollout: model::ExpiryThresholds,
    warn: Option<rootroll::duration::Span>,
    fail: Option<rootroll::duration::Span>,
) -> Result<model::ExpiryThresholds> {
    let (w, f) = (warn.unwrap_or(rollout.warn), fail.unwrap_or(rollout.fail));
    model::ExpiryThresholds::new(w, f).map_err(|_| {
        let name = |given: bool, flag: &str, field: &str, v| {
            if given {
                format!("{flag} {v}")
            } else {
                format!("{field} {v} (the rollout file's, from spec.rollout.expiry in the plan)")
            }
        };
        anyhow::anyhow!(
            "{} is longer than {}: verify would fail before it ever warned; give a fail threshold shorter than the warn threshold",
            name(fail.is_some(), "--expiry-fail", "expiry.fail", f),
            name(warn.is_some(), "--expiry-warn", "expiry.warn", w),
        )
    })
}

fn cmd_verify_live(a: &VerifyLiveArgs, fixed_now: Option<OffsetDateTime>) -> Result<ExitCode> {
    let repo = Repo::open(&a.dir)?;
    let expectation = verify::live::Expectation::load(&repo, &a.cluster, a.phase)?;
    let clock = || fixed_now.unwrap_or_else(OffsetDateTime::now_utc);
    let mesh = &repo.rollout.mesh;
    if let Some(dump) = &a.from_dump {
        let snap = verify::dump::snapshot(dump, &mesh.istio_namespace, &mesh.secret_name);
        let report = verify::live::gates(&snap, &expectation, clock());
        return show_report(&report, "rootroll verify live", a.report);
    }
    let tty = std::io::stderr().is_terminal();
    let watch = verify::cluster::Watch {
        read_secret: !a.no_secret_read,
        concurrency: a.concurrency,
        deadline: a
            .wait
            .map(|w| std::time::Instant::now() + std::time::Duration::from_secs(w.as_secs())),
        strict: a.report.strict,
        now: &clock,
    };
    let progress: verify::cluster::Progress = std::sync::Arc::new(move |done, total| {
        if tty {
            eprint!("\r\x1b[2Kreading proxies {done}/{total}");
            if done >= total {
                eprintln!();
            }
        }
    });
    let on_retry = |failing: &[rootroll::gates::Code]| {
        let codes: Vec<&str> = failing.iter().map(|c| c.as_str()).collect();
        eprintln!(
            "waiting: {} gate(s) failing ({}); retrying in 10s",
            codes.len(),
            codes.join(", ")
        );
    };
    let report = runtime(true)?.block_on(async {
        let client = verify::cluster::client(a.context.as_deref(), a.kubeconfig.as_deref())
            .await
            .context("cannot build a Kubernetes client")?;
        anyhow::Ok(
            verify::cluster::watch(client, &repo, &expectation, &watch, progress, &on_retry)
                .await?,
        )
    })?;
    show_report(&report, "rootroll verify live", a.report)
}

/// The async runtime, for the commands that talk to a cluster.
fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime> {
    let mut b = if multi_thread {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn cmd_init(a: &InitArgs, now: OffsetDateTime) -> Result<ExitCode> {
    let dir = a.from_dir.as_deref().unwrap_or(Path::new("."));
    let output = a.output.as_deref();
    let s = init::from_dir(dir, output, &a.name, a.cluster.as_deref(), a.force, now)?;
    match output {
        Some(path) => {
            eprintln!(
                "wrote {}: {} cluster(s) ({}), {} layout{}",
                path.display(),
                s.clusters.len(),
                s.clusters.join(", "),
                s.layout,
                if s.root_key_found {
                    ", root key found"
                } else {
                    ""
                }
            );
            eprintln!(
                "next: add ageRecipients, then `rootroll plan {}`",
                path.display()
            );
        }
        None => print!("{}", s.yaml),
    }
    Ok(ExitCode::SUCCESS)
}

fn load_plan(path: &Path, now: OffsetDateTime) -> Result<plan::Plan> {
    let plan = plan::load(path, now)?;
    for w in &plan.warnings {
        eprintln!("{w}");
    }
    Ok(plan)
}

fn cmd_plan(
    path: &Path,
    format: Format,
    out: Option<&Path>,
    now: OffsetDateTime,
) -> Result<ExitCode> {
    let plan = load_plan(path, now)?;
    let materials = match out {
        Some(dir) => {
            let no_ids = repo::Identities {
                ids: &[],
                explicit: false,
            };
            let st = repo::read_key_state(dir, &no_ids)?;
            if rootroll::materials::count_to_generate(&plan, &st) > 0 {
                bail!(
                    "{} has no key state for every generated certificate of this plan; run render first",
                    dir.display()
                );
            }
            Some(rootroll::materials::materialize(
                &plan,
                &st,
                now,
                &mut |_, _, _| {},
            )?)
        }
        None => None,
    };
    let rollout = model::compile(&plan, materials.as_ref());
    let mut stdout = std::io::stdout().lock();
    match format {
        Format::Text => write!(stdout, "{}", rollout.to_text(&path.display().to_string()))?,
        Format::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(&rollout)?)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads age identities the way sops does (plus `--identity` files first).
fn identities(explicit: &[PathBuf]) -> Result<Vec<age::x25519::Identity>> {
    match sops::load_identities(explicit, &|k| std::env::var(k).ok()) {
        Ok(ids) => Ok(ids),
        Err(SopsError::NoIdentities { .. }) if explicit.is_empty() => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

fn cmd_decrypt(a: &DecryptArgs) -> Result<ExitCode> {
    let (file, identity, output, insecure) = (
        &a.file,
        &a.identity,
        a.output.as_deref(),
        a.insecure_write_plaintext,
    );
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {name}"))?;
    if !sops::claims_sops(&text) {
        bail!("{name} is not a SOPS-encrypted file (no `sops` block with a MAC)");
    }
    let ids = identities(identity)?;
    if ids.is_empty() {
        bail!(
            "no age identity found to decrypt {name}: give --identity FILE, or set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY"
        );
    }
    let plain = zeroize::Zeroizing::new(sops::decrypt_yaml(&name, &text, &ids)?);
    match output {
        Some(dest) => {
            if !insecure {
                bail!("writing decrypted private keys to a file needs --insecure-write-plaintext");
            }
            rootroll::repo::write_new_private(dest, plain.as_bytes())?;
            eprintln!(
                "wrote {} (0600, plaintext: delete it when done)",
                dest.display()
            );
        }
        None => {
            if !std::io::stdout().is_terminal() && !insecure {
                bail!(
                    "standard output is not a terminal: refusing to send decrypted private keys to a file or pipe; \
                     pass --insecure-write-plaintext if that is really wanted"
                );
            }
            std::io::stdout().lock().write_all(plain.as_bytes())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
