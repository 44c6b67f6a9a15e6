//! Command-line interface: clap definitions, one function per command, and how results are
//! shown. Only this file prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use rootroll::duration::Span;
use rootroll::materials::materialize;
use rootroll::model::compile;
use rootroll::plan::{self, PlanError};
use rootroll::render::{self, RenderOptions, cluster_dir, parse_active};
use rootroll::sops::{self, SopsError};
use rootroll::state::{self, KeyState};
use rootroll::write::{self, Change};
use rootroll::{init, pki, seal};

const ABOUT: &str =
    "Compile an Istio root CA rotation plan into ordered, encrypted GitOps manifests.";
const LONG_ABOUT: &str = "\
Compile an Istio root CA rotation plan into ordered, encrypted GitOps manifests.

A rotation moves the mesh from root A to root B in four phases, each a complete cacerts Secret:
  1 initial        sign with A's intermediate; root-cert.pem = A (today's exact bytes)
  2 trust-both     sign with A's intermediate; root-cert.pem = A+B
  3 switch-issuer  sign with B's intermediate; root-cert.pem = A+B+B (bytes change: proxies re-sign)
  4 finalize       sign with B's intermediate; root-cert.pem = B

Typical use:
  rootroll init --from-dir ./istio-certs > plan.yaml   # import today's CA
  rootroll plan plan.yaml                              # review the phases and gates
  rootroll render plan.yaml --out gitops/istio-ca      # write the GitOps tree, commit it

Exit codes: 0 ok, 1 drift found by --check (or a failed gate), 2 an error.";

#[derive(Parser)]
#[command(name = "rootroll", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    /// The time to plan and generate certificates at (RFC 3339), instead of the clock.
    /// Same plan + same keys + same --now give the same bytes.
    #[arg(long, global = true, value_name = "RFC3339", value_parser = parse_now)]
    now: Option<OffsetDateTime>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Scaffold a plan that imports today's CA and generates the new one.
    #[command(
        long_about = "Scaffold a commented plan from Istio Makefile output (ca-cert.pem, ca-key.pem, \
root-cert.pem, cert-chain.pem; optionally a top directory with root-key.pem and one subdirectory per \
cluster) or a kubernetes.io/tls set (tls.crt, tls.key, ca.crt). The current root is imported byte for \
byte; the new root and intermediates are generated."
    )]
    #[command(
        long_about = "Scaffold a commented plan that imports today's CA and generates the new one.\n\n\
--from-dir DIR reads Istio Makefile output (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem; \
optionally a top directory with root-key.pem and one subdirectory per cluster) or a kubernetes.io/tls set \
(tls.crt, tls.key, ca.crt).\n\n--from-cluster CONTEXT reads the live cacerts Secret: its public files are \
written byte for byte next to the plan, and the current intermediate's key goes only into the encrypted key \
state of --out DIR (encrypted to --age-recipient), never in plaintext."
    )]
    Init {
        /// Directory holding today's CA files.
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "from_cluster",
            conflicts_with = "from_cluster"
        )]
        from_dir: Option<PathBuf>,
        /// kubeconfig context of the cluster whose live cacerts Secret is imported.
        #[arg(long, value_name = "CONTEXT")]
        from_cluster: Option<String>,
        /// kubeconfig file for --from-cluster (default: KUBECONFIG or ~/.kube/config).
        #[arg(long, value_name = "FILE")]
        kubeconfig: Option<PathBuf>,
        /// Namespace and name of the Secret for --from-cluster.
        #[arg(long, default_value = "istio-system")]
        namespace: String,
        #[arg(long, default_value = "cacerts")]
        secret: String,
        /// Output directory whose encrypted key state receives the imported key (--from-cluster).
        #[arg(long, value_name = "DIR", requires = "from_cluster")]
        out: Option<PathBuf>,
        /// age recipient of the key state and of the plan's Secrets (repeatable; --from-cluster).
        #[arg(long = "age-recipient", value_name = "AGE1…")]
        age_recipients: Vec<String>,
        /// Write the plan here instead of standard output (import paths are made relative to it).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Plan name (a DNS label).
        #[arg(long, default_value = "root-rotation")]
        name: String,
        /// Cluster name when DIR is a single cluster's directory.
        #[arg(long)]
        cluster: Option<String>,
        /// Overwrite --output if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Validate a plan and print the computed rollout: phases, roots, signers, gates, soak times.
    Plan {
        plan: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// A rendered directory whose key state supplies fingerprints of generated certificates.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Generate or import key material and write every phase's manifests to DIR.
    #[command(
        long_about = "Generate or import key material and write every phase's manifests to DIR: \
one directory per cluster and phase with a kustomization and the cacerts Secret, the active-phase \
pointer (phase 1 after a first render; kept on re-render), Flux or Argo CD wiring, the phase-0 \
prerequisites and ROLLOUT.md. The tree is written atomically: on failure DIR is untouched. \
Generated keys are kept in DIR/.rootroll so a second render reuses them and changes no byte."
    )]
    Render {
        plan: PathBuf,
        /// Output directory (created if missing; must be empty or a previous render).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Write private keys unencrypted instead of SOPS/age (local experiments only; never commit).
        #[arg(long)]
        insecure_plaintext: bool,
        /// Do not write; exit 1 and list the files that would change.
        #[arg(long)]
        check: bool,
        /// Directory of templates (*.j2) overriding the embedded ones of the same name.
        #[arg(long, value_name = "DIR")]
        templates: Option<PathBuf>,
        /// age identity file to open the encrypted key state (also SOPS_AGE_KEY_FILE,
        /// SOPS_AGE_KEY, ~/.config/sops/age/keys.txt). Needed only when a changed certificate
        /// must be signed or a Secret re-encrypted.
        #[arg(long, value_name = "FILE")]
        identity: Vec<PathBuf>,
    },
    /// Print a SOPS-encrypted manifest decrypted (MAC verified), for a human to read.
    Decrypt {
        file: PathBuf,
        /// age identity file (also SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, ~/.config/sops/age/keys.txt).
        #[arg(long, value_name = "FILE")]
        identity: Vec<PathBuf>,
        /// Write to this new file (0600) instead of the terminal; needs --insecure-write-plaintext.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Allow decrypted private keys to reach a file or a pipe.
        #[arg(long)]
        insecure_write_plaintext: bool,
    },
    /// Gate checks that say whether the next phase may be promoted.
    #[command(subcommand)]
    Verify(VerifyCommand),
    /// Move a cluster's active phase one step (forward, or back for a rollback).
    #[command(
        long_about = "Move the active-phase pointer of a cluster (or every cluster) one step forward, or one \
step back to roll back. Refused when it would skip a phase, break lockstep across clusters (no cluster enters \
phase 3 before all are at 2, nor 4 before all are at 3), or when an offline gate fails for the target phase, \
unless --force. With --commit the change is committed with `git` (your hooks and signing apply) and \
Rootroll-Plan/-Cluster/-From-Phase/-To-Phase trailers."
    )]
    Promote {
        dir: PathBuf,
        /// The cluster to move (repeatable).
        #[arg(long, required_unless_present = "all_clusters")]
        cluster: Vec<String>,
        /// Move every cluster together.
        #[arg(long, conflicts_with = "cluster")]
        all_clusters: bool,
        /// Target phase (1–4).
        #[arg(long)]
        to: u8,
        /// Commit the pointer change with git.
        #[arg(long)]
        commit: bool,
        /// Promote even though gates fail or lockstep breaks.
        #[arg(long)]
        force: bool,
        /// age identity for the offline gates (SOPS MAC and Secret content).
        #[arg(long, value_name = "FILE")]
        identity: Vec<PathBuf>,
    },
    /// Where each cluster is: active phase, when it was promoted, soak time left, next gates.
    Status {
        dir: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to standard output.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff) to standard output: `rootroll man > rootroll.1`.
    Man,
    /// Summarise every certificate in a PEM bundle.
    Inspect {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
    Junit,
}

#[derive(Subcommand)]
enum VerifyCommand {
    /// Static gates over a rendered directory: every cluster, every phase, and the transition
    /// handshake matrix. Exit 0 when all pass, 1 when a gate fails, 2 on an error.
    #[command(
        long_about = "Static gates over a rendered directory, per cluster and phase: Secret shape, key matches \
certificate, signer is a CA, chain to the phase bundle, cert-chain.pem order, istiod's reload rule between \
consecutive bundles (byte containment before 1.30, set relation from 1.30) and phase 3 bytes differing from \
phase 2, validity through the rollout, shared bundles, lockstep of the active pointers, no plaintext private \
key, SOPS MAC (needs an identity: without one the gate fails, it is never skipped), and the transition \
handshake matrix. Exit 0 when all pass, 1 when a gate fails (warnings only with --strict), 2 on an error."
    )]
    Offline {
        dir: PathBuf,
        /// age identity file (also SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, ~/.config/sops/age/keys.txt).
        #[arg(long, value_name = "FILE")]
        identity: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
        /// Fail on warnings too.
        #[arg(long)]
        strict: bool,
    },
    /// Live gates against a running cluster (or a dump of one) for the phase it should run.
    #[command(
        long_about = "Live gates against a running cluster for the phase it should run (the cluster's active \
pointer in DIR, or --phase): ISTIO_MULTIROOT_MESH on every istiod revision; PROXY_CONFIG_XDS_AGENT in the mesh \
config and in every istio-proxy container; known-bad Istio and ztunnel versions; the live cacerts Secret is the \
expected phase (skip reading it with --no-secret-read); istio-ca-root-cert in every namespace holds the phase's \
exact bundle; webhook caBundles contain its roots; every Envoy (sidecar, gateway, waypoint) trusts exactly the \
phase's roots and, from phase 3, presents a leaf from the new intermediate (read from Envoy's admin config_dump \
through a port-forward); in ambient meshes the same for every ztunnel identity; no proxy restarted; minimum soak \
time elapsed. Anything unreadable fails its gate. Exit 0 all pass, 1 a gate failed, 2 the cluster cannot be \
reached. --from-dump DIR runs the same gates on kubectl/istioctl output collected elsewhere."
    )]
    Live {
        dir: PathBuf,
        /// The cluster (a directory under DIR/clusters).
        #[arg(long)]
        cluster: String,
        /// kubeconfig context (default: the current context; in a pod: the service account).
        #[arg(long)]
        context: Option<String>,
        /// kubeconfig file (default: KUBECONFIG or ~/.kube/config).
        #[arg(long, value_name = "FILE")]
        kubeconfig: Option<PathBuf>,
        /// The phase the cluster should run (default: its active pointer in DIR).
        #[arg(long)]
        phase: Option<u8>,
        /// Do not read the cacerts Secret (compare only public data).
        #[arg(long)]
        no_secret_read: bool,
        /// Proxies read at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Retry until the gates pass or this much time has passed (e.g. 10m).
        #[arg(long, value_name = "DURATION", value_parser = parse_span)]
        wait: Option<Span>,
        /// Judge files collected with kubectl/istioctl instead of a live cluster.
        #[arg(long, value_name = "DIR")]
        from_dump: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
        /// Fail on warnings too.
        #[arg(long)]
        strict: bool,
    },
}

fn parse_span(s: &str) -> Result<Span, String> {
    Span::parse(s)
}

fn parse_now(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("`{s}` is not RFC 3339 (e.g. 2026-11-22T12:00:00Z): {e}"))
}

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

pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    let now = cli.now.unwrap_or_else(OffsetDateTime::now_utc);
    match cli.command {
        Command::Init {
            from_dir: Some(from_dir),
            output,
            name,
            cluster,
            force,
            ..
        } => cmd_init(
            &from_dir,
            output.as_deref(),
            &name,
            cluster.as_deref(),
            force,
            now,
        ),
        Command::Init {
            from_cluster: Some(context),
            kubeconfig,
            namespace,
            secret,
            out,
            age_recipients,
            output,
            name,
            cluster,
            force,
            ..
        } => cmd_init_from_cluster(
            &FromCluster {
                context: &context,
                kubeconfig: kubeconfig.as_deref(),
                namespace: &namespace,
                secret: &secret,
                out: out.as_deref(),
                recipients: &age_recipients,
                output: output.as_deref(),
                name: &name,
                cluster: cluster.as_deref(),
                force,
            },
            now,
        ),
        Command::Init { .. } => bail!("give --from-dir DIR or --from-cluster CONTEXT"),
        Command::Plan { plan, format, out } => cmd_plan(&plan, format, out.as_deref(), now),
        Command::Render {
            plan,
            out,
            insecure_plaintext,
            check,
            templates,
            identity,
        } => cmd_render(
            &plan,
            &out,
            &RenderArgs {
                insecure_plaintext,
                check,
                templates: templates.as_deref(),
                identity: &identity,
            },
            now,
        ),
        Command::Decrypt {
            file,
            identity,
            output,
            insecure_write_plaintext,
        } => cmd_decrypt(
            &file,
            &identity,
            output.as_deref(),
            insecure_write_plaintext,
        ),
        Command::Inspect { file, format } => cmd_inspect(&file, format),
        Command::Promote {
            dir,
            cluster,
            all_clusters,
            to,
            commit,
            force,
            identity,
        } => cmd_promote(
            &dir,
            cluster,
            all_clusters,
            to,
            commit,
            force,
            &identity,
            now,
        ),
        Command::Status { dir, format } => cmd_status(&dir, format, now),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "rootroll",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(VerifyCommand::Offline {
            dir,
            identity,
            format,
            strict,
        }) => cmd_verify_offline(&dir, &identity, format, strict, now),
        Command::Verify(VerifyCommand::Live {
            dir,
            cluster,
            context,
            kubeconfig,
            phase,
            no_secret_read,
            concurrency,
            wait,
            from_dump,
            format,
            strict,
        }) => cmd_verify_live(
            &LiveArgs {
                dir: &dir,
                cluster: &cluster,
                context: context.as_deref(),
                kubeconfig: kubeconfig.as_deref(),
                phase,
                read_secret: !no_secret_read,
                concurrency,
                wait,
                from_dump: from_dump.as_deref(),
                strict,
            },
            format,
            cli.now,
        ),
    }
}

fn cmd_init(
    dir: &Path,
    output: Option<&Path>,
    name: &str,
    cluster: Option<&str>,
    force: bool,
    now: OffsetDateTime,
) -> Result<ExitCode> {
    let plan_dir = output
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let s = init::scaffold(dir, &plan_dir, name, cluster, now)?;
    match output {
        Some(path) => {
            if path.exists() && !force {
                bail!("{} exists; pass --force to overwrite it", path.display());
            }
            write::write_file_atomic(path, s.yaml.as_bytes())?;
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
            let st = read_state(dir, &[])?;
            if rootroll::materials::count_to_generate(&plan, &st) > 0 {
                bail!(
                    "{} has no key state for every generated certificate of this plan; run render first",
                    dir.display()
                );
            }
            Some(materialize(&plan, &st, now, &mut |_, _, _| {})?)
        }
        None => None,
    };
    let rollout = compile(&plan, materials.as_ref());
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

/// Reads the key state of a previous render. An encrypted state is opened when an identity
/// can; otherwise its public part is read and the keys stay locked.
fn read_state(out: &Path, explicit: &[PathBuf]) -> Result<KeyState> {
    let sealed = out.join(state::SOPS_PATH);
    if sealed.exists() {
        let name = sealed.display().to_string();
        let text =
            std::fs::read_to_string(&sealed).with_context(|| format!("cannot read {name}"))?;
        let ids = identities(explicit)?;
        if ids.is_empty() {
            return Ok(KeyState::parse(&name, &text)?);
        }
        return match sops::decrypt_yaml(&name, &text, &ids) {
            Ok(plain) => Ok(KeyState::parse(&name, &plain)?),
            Err(SopsError::NoMatchingIdentity { .. }) if explicit.is_empty() => {
                Ok(KeyState::parse(&name, &text)?)
            }
            Err(e) => Err(e.into()),
        };
    }
    let plain = out.join(state::PLAIN_PATH);
    if plain.exists() {
        let text = std::fs::read_to_string(&plain)
            .with_context(|| format!("cannot read {}", plain.display()))?;
        return Ok(KeyState::parse(&plain.display().to_string(), &text)?);
    }
    Ok(KeyState::default())
}

const SOPS_CONFIG: &str = ".sops.yaml";

fn sops_config(recipients: &[String]) -> String {
    format!(
        "# Written by rootroll: `sops edit` on a file here re-encrypts it the way rootroll does.\n\
         creation_rules:\n  - path_regex: \\.sops\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: >-\n      {}\n",
        recipients.join(",")
    )
}

struct RenderArgs<'a> {
    insecure_plaintext: bool,
    check: bool,
    templates: Option<&'a Path>,
    identity: &'a [PathBuf],
}

fn cmd_render(
    path: &Path,
    out: &Path,
    a: &RenderArgs<'_>,
    now: OffsetDateTime,
) -> Result<ExitCode> {
    let plan = load_plan(path, now)?;
    let encrypted = !a.insecure_plaintext;
    if encrypted && plan.gitops.age_recipients.is_empty() {
        bail!(
            "{}: spec.gitops.ageRecipients is empty, so the CA private keys cannot be encrypted; \
             add the age public key of Flux/Argo CD and of each operator (`age-keygen -y KEYFILE`), \
             or pass --insecure-plaintext for a throwaway local render",
            path.display()
        );
    }
    let existing = if out.is_dir() {
        write::read_existing(out)?
    } else {
        BTreeMap::new()
    };
    let st = read_state(out, a.identity)?;
    // Keep each cluster's active phase across renders.
    let mut active = BTreeMap::new();
    for c in &plan.clusters {
        let pointer = out.join(cluster_dir(&c.name)).join("kustomization.yaml");
        if let Ok(text) = std::fs::read_to_string(&pointer) {
            let n = parse_active(&text).with_context(|| {
                format!(
                    "{} does not name exactly one phase; fix it or remove it to reset to phase 1",
                    pointer.display()
                )
            })?;
            active.insert(c.name.clone(), n);
        }
    }
    let tty = std::io::stderr().is_terminal();
    let mut progress = |id: &str, done: usize, total: usize| {
        if tty {
            eprint!("\r\x1b[2Kgenerating CA {done}/{total}: {id}");
            if done >= total {
                eprintln!();
            }
        }
    };
    let materials = match materialize(&plan, &st, now, &mut progress) {
        Ok(m) => m,
        Err(rootroll::pki::PkiError::IssuerLocked { id }) if a.check => {
            println!("changed   certificate {id} (its spec changed), and every file holding it");
            println!(
                "{} is out of date; give --identity to list every file",
                out.display()
            );
            return Ok(ExitCode::from(1));
        }
        Err(e @ rootroll::pki::PkiError::IssuerLocked { .. }) => {
            return Err(anyhow::Error::new(e)
                .context("give --identity FILE or set SOPS_AGE_KEY_FILE to open the key state"));
        }
        Err(e) => return Err(e.into()),
    };
    let rollout = compile(&plan, Some(&materials));
    let opts = RenderOptions {
        templates: a.templates,
        encrypted,
        active,
    };
    let mut outputs = render::render(&plan, &rollout, &materials, &opts)?;
    let state_path = if encrypted {
        state::SOPS_PATH
    } else {
        state::PLAIN_PATH
    };
    if !materials.state.is_unlocked() {
        outputs.locked.insert(state_path.to_string());
    }
    let state_yaml = materials.state.to_yaml(&plan.name);
    outputs.files.insert(
        state_path.into(),
        render::OutFile {
            bytes: state_yaml.as_bytes().to_vec(),
            private: true,
        },
    );
    if encrypted {
        outputs.files.insert(
            SOPS_CONFIG.into(),
            render::OutFile {
                bytes: sops_config(&plan.gitops.age_recipients).into_bytes(),
                private: false,
            },
        );
        let locked = outputs.locked.clone();
        seal::seal(
            &mut outputs,
            &existing,
            &plan.gitops.age_recipients,
            &locked,
            now,
            a.check,
        )?;
    }
    if a.check {
        let changes = write::diff(out, &outputs)?;
        let drift: Vec<_> = changes
            .iter()
            .filter(|(_, c)| **c != Change::Unchanged)
            .collect();
        if drift.is_empty() {
            println!("{} is up to date", out.display());
            return Ok(ExitCode::SUCCESS);
        }
        for (p, c) in &drift {
            println!("{:<9} {}", format!("{c:?}").to_lowercase(), p);
        }
        println!(
            "{} file(s) of {} would change; run `rootroll render` and commit",
            drift.len(),
            out.display()
        );
        return Ok(ExitCode::from(1));
    }
    let changes = write::write_tree(out, &outputs)?;
    let count = |k: Change| changes.values().filter(|c| **c == k).count();
    if !materials.generated.is_empty() {
        // A fleet generates thousands: name the first few.
        let shown = materials.generated.len().min(8);
        let more = materials.generated.len() - shown;
        eprintln!(
            "generated {} CA(s): {}{}",
            materials.generated.len(),
            materials.generated[..shown].join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    if encrypted {
        eprintln!(
            "private keys encrypted with SOPS/age to {} recipient(s)",
            plan.gitops.age_recipients.len()
        );
    } else {
        eprintln!(
            "warning: private keys were written unencrypted (--insecure-plaintext); do not commit {}",
            out.display()
        );
    }
    println!(
        "wrote {}: {} added, {} changed, {} unchanged, {} removed",
        out.display(),
        count(Change::Added),
        count(Change::Changed),
        count(Change::Unchanged),
        count(Change::Removed)
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_decrypt(
    file: &Path,
    identity: &[PathBuf],
    output: Option<&Path>,
    insecure: bool,
) -> Result<ExitCode> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {name}"))?;
    if !sops::is_encrypted(&text) {
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
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest)
                .with_context(|| format!("cannot create {} (it must not exist)", dest.display()))?;
            if let Err(e) = f.write_all(plain.as_bytes()).and_then(|()| f.sync_all()) {
                // Never leave part of the plaintext behind (a full disk, a quota).
                drop(f);
                let _ = std::fs::remove_file(dest);
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot write {}; the partial file was removed",
                    dest.display()
                )));
            }
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

fn print_report(
    report: &rootroll::verify::Report,
    format: ReportFormat,
    suite: &str,
) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match format {
        ReportFormat::Text => write!(
            stdout,
            "{}",
            report.to_text(std::io::stdout().is_terminal())
        )?,
        ReportFormat::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(report)?)?,
        ReportFormat::Junit => write!(stdout, "{}", report.to_junit(suite))?,
    }
    Ok(())
}

fn cmd_verify_offline(
    dir: &Path,
    identity: &[PathBuf],
    format: ReportFormat,
    strict: bool,
    now: OffsetDateTime,
) -> Result<ExitCode> {
    let ids = identities(identity)?;
    let opts = rootroll::verify::offline::Options {
        identities: &ids,
        now,
    };
    let (mut report, secrets) = rootroll::verify::offline::run(dir, &opts)?;
    let ctx = rootroll::verify::offline::Context::load(dir)?;
    // Thousands of handshakes on a large fleet: a progress line on a terminal, nothing on a
    // pipe, redrawn once per percent.
    let tty = std::io::stderr().is_terminal();
    let mut shown = 0;
    rootroll::verify::matrix::run(
        &mut report,
        &secrets,
        &ctx.trust_domain,
        now,
        &|_, _| true,
        &mut |done, total| {
            let percent = done * 100 / total.max(1);
            if tty && (percent > shown || done == total) {
                shown = percent;
                eprint!("\r\x1b[2Khandshake matrix {done}/{total}");
                if done == total {
                    eprint!("\r\x1b[2K");
                }
            }
        },
    );
    print_report(&report, format, "rootroll verify offline")?;
    Ok(if report.failed(strict) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[allow(clippy::too_many_arguments)]
fn cmd_promote(
    dir: &Path,
    cluster: Vec<String>,
    all: bool,
    to: u8,
    commit: bool,
    force: bool,
    identity: &[PathBuf],
    now: OffsetDateTime,
) -> Result<ExitCode> {
    let clusters = if all {
        rootroll::verify::offline::clusters(dir)?
    } else {
        cluster
    };
    let ids = identities(identity)?;
    let moves = rootroll::promote::promote(&rootroll::promote::Request {
        dir,
        clusters,
        to,
        force,
        commit,
        identities: &ids,
        now,
    })?;
    for m in &moves {
        println!(
            "{}: phase {} → {}",
            m.cluster,
            rootroll::model::phase_dir(m.from),
            rootroll::model::phase_dir(m.to)
        );
    }
    if commit {
        println!("committed");
    } else {
        println!("pointer(s) updated; commit them to apply (or use --commit)");
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_status(dir: &Path, format: Format, now: OffsetDateTime) -> Result<ExitCode> {
    let st = rootroll::promote::status(dir, now)?;
    let mut stdout = std::io::stdout().lock();
    match format {
        Format::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(&st)?)?,
        Format::Text => {
            writeln!(
                stdout,
                "{:<16} {:<18} {:<26} {:<14} next gates",
                "CLUSTER", "PHASE", "PROMOTED", "SOAK LEFT"
            )?;
            for c in &st {
                let promoted = c
                    .promoted_at
                    .and_then(|t| t.format(&Rfc3339).ok())
                    .unwrap_or_else(|| "unknown (not in Git)".into());
                let soak = match (c.soak_left, c.min_soak) {
                    (Some(l), _) if l.as_secs() == 0 => "done".to_string(),
                    (Some(l), _) => l.to_string(),
                    (None, Some(m)) => format!("≥{m}"),
                    _ => "-".into(),
                };
                writeln!(
                    stdout,
                    "{:<16} {:<18} {:<26} {:<14} {}",
                    c.cluster,
                    c.active_name
                        .clone()
                        .unwrap_or_else(|| c.problem.clone().unwrap_or_default()),
                    promoted,
                    soak,
                    c.next_gates.join(", ")
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

struct LiveArgs<'a> {
    dir: &'a Path,
    cluster: &'a str,
    context: Option<&'a str>,
    kubeconfig: Option<&'a Path>,
    phase: Option<u8>,
    read_secret: bool,
    concurrency: usize,
    wait: Option<Span>,
    from_dump: Option<&'a Path>,
    strict: bool,
}

async fn kube_client(context: Option<&str>, kubeconfig: Option<&Path>) -> Result<kube::Client> {
    let opts = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &opts).await?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&opts).await?,
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

fn cmd_verify_live(
    a: &LiveArgs<'_>,
    format: ReportFormat,
    fixed_now: Option<OffsetDateTime>,
) -> Result<ExitCode> {
    use rootroll::verify::live;
    let expectation = live::Expectation::load(a.dir, a.cluster, a.phase)?;
    let ctx = rootroll::verify::offline::Context::load(a.dir)?;
    let now = || fixed_now.unwrap_or_else(OffsetDateTime::now_utc);
    if let Some(dump) = a.from_dump {
        let snap = rootroll::verify::dump::snapshot(dump, &ctx.namespace, &ctx.secret_name);
        let report = live::gates(&snap, &expectation, now());
        print_report(&report, format, "rootroll verify live")?;
        return Ok(if report.failed(a.strict) {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let tty = std::io::stderr().is_terminal();
    let deadline = a
        .wait
        .map(|w| std::time::Instant::now() + std::time::Duration::from_secs(w.as_secs()));
    rt.block_on(async {
        let client = kube_client(a.context, a.kubeconfig)
            .await
            .context("cannot build a Kubernetes client")?;
        loop {
            let progress: rootroll::verify::cluster::Progress =
                std::sync::Arc::new(move |done, total| {
                    if tty {
                        eprint!("\r\x1b[2Kreading proxies {done}/{total}");
                        if done >= total {
                            eprintln!();
                        }
                    }
                });
            let snap = rootroll::verify::cluster::snapshot(
                client.clone(),
                &ctx.namespace,
                &ctx.secret_name,
                a.read_secret,
                a.concurrency,
                progress,
            )
            .await;
            if let Err(e) = &snap.pods
                && rootroll::verify::cluster::is_unreachable(e)
            {
                bail!("cannot reach the cluster: {e}");
            }
            let report = live::gates(&snap, &expectation, now());
            let failed = report.failed(a.strict);
            let retry = failed && deadline.is_some_and(|d| std::time::Instant::now() < d);
            if retry {
                let left: Vec<String> = report
                    .findings
                    .iter()
                    .filter(|f| !f.passed)
                    .map(|f| f.code.to_string())
                    .collect();
                eprintln!(
                    "waiting: {} gate(s) failing ({}); retrying in 10s",
                    left.len(),
                    left.join(", ")
                );
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                continue;
            }
            print_report(&report, format, "rootroll verify live")?;
            return Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            });
        }
    })
}

struct FromCluster<'a> {
    context: &'a str,
    kubeconfig: Option<&'a Path>,
    namespace: &'a str,
    secret: &'a str,
    out: Option<&'a Path>,
    recipients: &'a [String],
    output: Option<&'a Path>,
    name: &'a str,
    cluster: Option<&'a str>,
    force: bool,
}

fn cmd_init_from_cluster(a: &FromCluster<'_>, now: OffsetDateTime) -> Result<ExitCode> {
    let (Some(output), Some(out)) = (a.output, a.out) else {
        bail!(
            "--from-cluster needs --output PLAN (public files go next to it) and --out DIR (the encrypted key state)"
        );
    };
    if a.recipients.is_empty() {
        bail!(
            "--from-cluster needs at least one --age-recipient: the imported CA key is only ever stored encrypted"
        );
    }
    let parsed: Vec<age::x25519::Recipient> = a
        .recipients
        .iter()
        .map(|r| sops::parse_recipient(r))
        .collect::<Result<_, _>>()?;
    if output.exists() && !a.force {
        bail!("{} exists; pass --force to overwrite it", output.display());
    }
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} is not empty: --from-cluster starts a new output directory",
            out.display()
        );
    }
    let cluster = a
        .cluster
        .map_or_else(|| init::dns_label(a.context), str::to_string);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let secret = rt.block_on(async {
        let client = kube_client(Some(a.context), a.kubeconfig)
            .await
            .context("cannot build a Kubernetes client")?;
        let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
            kube::Api::namespaced(client, a.namespace);
        api.get_opt(a.secret)
            .await
            .with_context(|| format!("cannot read Secret {}/{}", a.namespace, a.secret))
    })?;
    let Some(secret) = secret else {
        bail!(
            "Secret {}/{} does not exist in context {}: nothing to import (is istiod using its self-signed CA?)",
            a.namespace,
            a.secret,
            a.context
        );
    };
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    let s = init::from_secret(&data, a.name, &cluster, a.recipients).map_err(anyhow::Error::msg)?;
    // The key state first: if it cannot be written, no plan refers to it.
    let mut st = KeyState::default();
    st.entries.insert(
        format!("{cluster}-current"),
        rootroll::state::Entry {
            spec: "imported".into(),
            cert: s.cert_pem.clone(),
            key: Some(s.key.clone()),
        },
    );
    let plain = st.to_yaml(a.name);
    let sealed = sops::encrypt_yaml(state::SOPS_PATH, &plain, &parsed, now)?;
    let mut outputs = render::Outputs::default();
    outputs.files.insert(
        state::SOPS_PATH.into(),
        render::OutFile {
            bytes: sealed.into_bytes(),
            private: true,
        },
    );
    write::write_tree(out, &outputs)?;
    let plan_dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    for (rel, bytes) in &s.files {
        let p = plan_dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        write::write_file_atomic(&p, bytes)?;
    }
    // The plan last: it names the files above.
    write::write_file_atomic(output, s.yaml.as_bytes())?;
    eprintln!(
        "wrote {} and {}/ ({} layout, bytes as in the live Secret); the current intermediate's key is only in {} (encrypted)",
        output.display(),
        plan_dir.join(format!("{cluster}-current")).display(),
        s.layout,
        out.join(state::SOPS_PATH).display()
    );
    eprintln!(
        "next: rootroll plan {} ; rootroll render {} --out {} --identity KEY",
        output.display(),
        output.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_inspect(file: &Path, format: Format) -> Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let blocks =
        pem::parse_many(&bytes).with_context(|| format!("{} is not PEM", file.display()))?;
    let mut summaries = Vec::new();
    let mut skipped = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        if b.tag() == "CERTIFICATE" {
            let s = pki::inspect_der(b.contents())
                .with_context(|| format!("{}: certificate {}", file.display(), i + 1))?;
            summaries.push(s);
        } else {
            skipped.push(format!("block {} ({}) not shown", i + 1, b.tag()));
        }
    }
    if summaries.is_empty() {
        bail!("{} holds no certificate", file.display());
    }
    let mut stdout = std::io::stdout().lock();
    match format {
        Format::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(&summaries)?)?,
        Format::Text => {
            for (i, s) in summaries.iter().enumerate() {
                writeln!(stdout, "certificate {} of {}", i + 1, summaries.len())?;
                write!(stdout, "{}", s.to_text())?;
            }
        }
    }
    for s in skipped {
        eprintln!("note: {}: {s}", file.display());
    }
    Ok(ExitCode::SUCCESS)
}
