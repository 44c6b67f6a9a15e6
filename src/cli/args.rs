//! The command line: clap definitions. Everything here is data; `mod.rs` runs it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use rootroll::duration::Span;

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
pub(crate) struct Cli {
    /// The time to plan and generate certificates at (RFC 3339), instead of the clock.
    /// Same plan + same keys + same --now give the same bytes.
    #[arg(long, global = true, value_name = "RFC3339", value_parser = parse_now)]
    pub(crate) now: Option<OffsetDateTime>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Scaffold a plan that imports today's CA and generates the new one.
    #[command(
        long_about = "Scaffold a commented plan that imports today's CA and generates the new one.\n\n\
--from-dir DIR reads Istio Makefile output (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem; \
optionally a top directory with root-key.pem and one subdirectory per cluster) or a kubernetes.io/tls set \
(tls.crt, tls.key, ca.crt).\n\n--from-cluster CONTEXT reads the live cacerts Secret: its public files are \
written byte for byte next to the plan, and the current intermediate's key goes only into the encrypted key \
state of --out DIR (encrypted to --age-recipient), never in plaintext.\n\n--from-render DIR starts the next rotation \
from a finished tree (every cluster at phase 4; --identity opens its phase-4 Secrets): today's root and each cluster's \
intermediate are imported byte for byte from phase 4 (the keys only into the encrypted key state of --out DIR), mesh, \
timing and gitops carry over, and a new root and intermediates are generated, so the next phase 1 is the old phase 4."
    )]
    Init(InitArgs),
    /// Validate a plan and print the computed rollout: phases, roots, signers, gates, soak times.
    Plan(PlanArgs),
    /// Generate or import key material and write every phase's manifests to DIR.
    #[command(
        long_about = "Generate or import key material and write every phase's manifests to DIR: \
one directory per cluster and phase with a kustomization and the cacerts Secret, the active-phase \
pointer (phase 1 after a first render; kept on re-render), Flux or Argo CD wiring, the phase-0 \
prerequisites and ROLLOUT.md. The tree is written atomically: on failure DIR is untouched. \
Generated keys are kept in DIR/.rootroll so a second render reuses them and changes no byte."
    )]
    Render(RenderArgs),
    /// Print a SOPS-encrypted manifest decrypted (MAC verified), for a human to read.
    Decrypt(DecryptArgs),
    /// Gate checks that say whether the next phase may be promoted.
    #[command(subcommand)]
    Verify(VerifyCommand),
    /// Move a cluster's active phase one step (forward, or back for a rollback).
    #[command(
        long_about = "Move the active-phase pointer of a cluster (or several, a wave with --wave N, or every \
cluster) one step forward, or one step back to roll back. Refused when it would skip a phase; when it would break the skew rule \
(clusters at most one phase apart: a canary cluster may enter phase 3 alone once every cluster is at 2, and \
phase 4 once every cluster is at 3); when the current phase's minimum soak has not passed since its pointer \
changed in Git (`rootroll status` shows what is left; an uncommitted pointer cannot prove it); or when an \
offline gate fails for the target phase. --force overrides all three and records each override in the commit \
(Rootroll-Forced: skew / soak / gates). With --commit the change is committed with `git` (your hooks and \
signing apply) and Rootroll-Plan/-Cluster/-From-Phase/-To-Phase trailers."
    )]
    Promote(PromoteArgs),
    /// Where each cluster is: active phase, when it was promoted, soak time left, next gates,
    /// when its CAs expire and the next rotation must start, and the exact next commands.
    Status(StatusArgs),
    /// Document the gates: `rootroll explain` lists every gate code, `rootroll explain CODE`
    /// says what one proves, when it runs and what to do when it fails.
    Explain(ExplainArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output: `rootroll man > rootroll.1`.
    Man,
    /// Summarise every certificate in a PEM bundle.
    Inspect(InspectArgs),
}

/// How `verify` prints its report.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ReportFormat {
    /// One line per gate family, every failure and warning in full, the matrix summary.
    Text,
    /// Every finding and matrix cell, as data.
    Json,
    /// JUnit XML for CI test views: one test case per finding and per matrix cell.
    Junit,
    /// A table for a pull-request comment or $GITHUB_STEP_SUMMARY.
    Markdown,
}

#[derive(Subcommand)]
pub(crate) enum VerifyCommand {
    /// Static gates over a rendered directory: every cluster, every phase, and the transition
    /// handshake matrix. Exit 0 when all pass, 1 when a gate fails, 2 on an error.
    #[command(
        long_about = "Static gates over a rendered directory, per cluster and phase: Secret shape, key matches \
certificate, signer is a CA, chain to the phase bundle, cert-chain.pem order, istiod's reload rule between \
consecutive bundles (byte containment before 1.30, set relation from 1.30) and phase 3 bytes differing from \
phase 2, validity through the rollout, shared bundles, lockstep of the active pointers, no plaintext private \
key, SOPS MAC, the latest date the next \
rotation must start (rotation-start-by fails within --expiry-fail, rotation-start-soon warns within --expiry-warn; \
certificates only, no key needed), and the transition handshake matrix. Without an identity every gate that needs no private key \
still runs (only private keys are ciphertext): the matrix is decided from the probe certificates written by \
render (trust decisions, no proof of possession), and sops-mac and key-matches-cert are not checked, never \
counted as passed; with --require-keys they fail instead. Exit 0 when all pass, 1 when a gate fails (warnings only with --strict), 2 on an error."
    )]
    Offline(VerifyOfflineArgs),
    /// Live gates against a running cluster (or a dump of one) for the phase it should run.
    #[command(
        long_about = "Live gates against a running cluster for the phase it should run (the cluster's active \
pointer in DIR, or --phase): ISTIO_MULTIROOT_MESH on every istiod revision; PROXY_CONFIG_XDS_AGENT in the mesh \
config and in every istio-proxy container; known-bad Istio and ztunnel versions; the live cacerts Secret is the \
expected phase (skip reading it with --no-secret-read); istiod publishes the phase's roots (the root ConfigMap, \
named by istiod's PILOT_CA_CERT_CONFIGMAP, default istio-ca-root-cert, holds the exact bundle in every namespace; \
with ENABLE_CLUSTER_TRUST_BUNDLE_API=true, the ClusterTrustBundle istio.io:istiod-ca:root-cert holds exactly its \
roots); webhook caBundles contain its roots; every Envoy (sidecar, gateway, waypoint) trusts exactly the \
phase's roots and, from phase 3, presents a leaf from the new intermediate (read from Envoy's admin config_dump \
through a port-forward); in ambient meshes the same for every ztunnel identity; no proxy restarted; minimum soak \
time elapsed. Anything unreadable fails its gate. Exit 0 all pass, 1 a gate failed, 2 the cluster cannot be \
reached. --from-dump DIR runs the same gates on kubectl/istioctl output collected elsewhere: pods.json \
(kubectl get pods -A -o json), deployments.json (kubectl get deployments -n istio-system -o json), configmaps.json \
(kubectl get configmaps -A -o json), mutatingwebhookconfigurations.json and validatingwebhookconfigurations.json, \
optionally secret.json, proxy-config/NAMESPACE/POD.json (istioctl proxy-config secret POD.NAMESPACE -o json), \
ztunnel-config/POD.json (istioctl ztunnel-config certificates POD.NAMESPACE -o json) and, when istiod runs with \
ENABLE_CLUSTER_TRUST_BUNDLE_API=true, clustertrustbundles.json (kubectl get clustertrustbundles.certificates.k8s.io \
-o json > DIR/clustertrustbundles.json); a file that is missing fails the gates that need it."
    )]
    Live(VerifyLiveArgs),
}

#[derive(clap::Args)]
pub(crate) struct InitArgs {
    /// Directory holding today's CA files.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present_any = ["from_cluster", "from_render"],
        conflicts_with_all = ["from_cluster", "from_render"]
    )]
    pub(crate) from_dir: Option<PathBuf>,
    /// A finished rendered tree (every cluster at phase 4): scaffold the next rotation, with
    /// today's root and intermediates imported from its phase-4 Secrets.
    #[arg(long, value_name = "DIR", conflicts_with = "from_cluster")]
    pub(crate) from_render: Option<PathBuf>,
    /// age identity that opens the phase-4 Secrets of --from-render (also SOPS_AGE_KEY_FILE,
    /// SOPS_AGE_KEY, ~/.config/sops/age/keys.txt).
    #[arg(long, value_name = "FILE", requires = "from_render")]
    pub(crate) identity: Vec<PathBuf>,
    /// kubeconfig context of the cluster whose live cacerts Secret is imported.
    #[arg(long, value_name = "CONTEXT")]
    pub(crate) from_cluster: Option<String>,
    /// kubeconfig file for --from-cluster (default: KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Namespace and name of the Secret for --from-cluster.
    #[arg(long, default_value = "istio-system")]
    pub(crate) namespace: String,
    #[arg(long, default_value = "cacerts")]
    pub(crate) secret: String,
    /// Output directory whose encrypted key state receives the imported key (--from-cluster,
    /// --from-render: a new or empty directory).
    #[arg(long, value_name = "DIR", conflicts_with = "from_dir")]
    pub(crate) out: Option<PathBuf>,
    /// age recipient of the key state and of the plan's Secrets (repeatable; --from-cluster;
    /// --from-render defaults to the finished rollout's).
    #[arg(long = "age-recipient", value_name = "AGE1…")]
    pub(crate) age_recipients: Vec<String>,
    /// Write the plan here instead of standard output (import paths are made relative to it).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Plan name (a DNS label).
    #[arg(long, default_value = "root-rotation")]
    pub(crate) name: String,
    /// Cluster name when DIR is a single cluster's directory.
    #[arg(long)]
    pub(crate) cluster: Option<String>,
    /// Overwrite --output if it exists.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(clap::Args)]
pub(crate) struct PlanArgs {
    pub(crate) plan: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
    /// A rendered directory whose key state supplies fingerprints of generated certificates.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct RenderArgs {
    pub(crate) plan: PathBuf,
    /// Output directory (created if missing; must be empty or a previous render).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Write private keys unencrypted instead of SOPS/age (local experiments only; never commit).
    #[arg(long)]
    pub(crate) insecure_plaintext: bool,
    /// Do not write; exit 1 and list the files that would change.
    #[arg(long)]
    pub(crate) check: bool,
    /// Directory of templates (*.j2) overriding the embedded ones of the same name.
    #[arg(long, value_name = "DIR")]
    pub(crate) templates: Option<PathBuf>,
    /// age identity file to open the encrypted key state (also SOPS_AGE_KEY_FILE,
    /// SOPS_AGE_KEY, ~/.config/sops/age/keys.txt). Needed only when a changed certificate
    /// must be signed or a Secret re-encrypted.
    #[arg(long, value_name = "FILE")]
    pub(crate) identity: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct DecryptArgs {
    pub(crate) file: PathBuf,
    /// age identity file (also SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, ~/.config/sops/age/keys.txt).
    #[arg(long, value_name = "FILE")]
    pub(crate) identity: Vec<PathBuf>,
    /// Write to this new file (0600) instead of the terminal; needs --insecure-write-plaintext.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Allow decrypted private keys to reach a file or a pipe.
    #[arg(long)]
    pub(crate) insecure_write_plaintext: bool,
}

#[derive(clap::Args)]
pub(crate) struct PromoteArgs {
    pub(crate) dir: PathBuf,
    /// The cluster to move (repeatable).
    #[arg(long, required_unless_present_any = ["all_clusters", "wave"])]
    pub(crate) cluster: Vec<String>,
    /// Move every cluster together.
    #[arg(long, conflicts_with_all = ["cluster", "wave"])]
    pub(crate) all_clusters: bool,
    /// Move every cluster of wave N (spec.rollout.waves, from 1; without waves the whole
    /// fleet is wave 1) in one commit.
    #[arg(long, value_name = "N", conflicts_with = "cluster")]
    pub(crate) wave: Option<usize>,
    /// Target phase (1–4).
    #[arg(long)]
    pub(crate) to: u8,
    /// Commit the pointer change with git.
    #[arg(long)]
    pub(crate) commit: bool,
    /// Promote even though the skew rule, the soak time or a gate says no (recorded in the commit).
    #[arg(long)]
    pub(crate) force: bool,
    /// age identity for the offline gates (SOPS MAC and Secret content).
    #[arg(long, value_name = "FILE")]
    pub(crate) identity: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct StatusArgs {
    pub(crate) dir: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
}

#[derive(clap::Args)]
pub(crate) struct InspectArgs {
    pub(crate) file: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
}

#[derive(clap::Args)]
pub(crate) struct VerifyOfflineArgs {
    pub(crate) dir: PathBuf,
    /// age identity file (also SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, ~/.config/sops/age/keys.txt).
    #[arg(long, value_name = "FILE")]
    pub(crate) identity: Vec<PathBuf>,
    /// Warn (rotation-start-soon) this long before the next rotation's start-by date
    /// (default: the plan's spec.rollout.expiry.warn, 90d).
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    pub(crate) expiry_warn: Option<Span>,
    /// Fail (rotation-start-by) this long before the next rotation's start-by date
    /// (default: the plan's spec.rollout.expiry.fail, 30d).
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    pub(crate) expiry_fail: Option<Span>,
    /// Fail the gates that need a private key (sops-mac, key-matches-cert) when no identity
    /// opens the Secrets, instead of reporting them not checked: the operator's pre-merge check.
    #[arg(long)]
    pub(crate) require_keys: bool,
    #[command(flatten)]
    pub(crate) report: ReportArgs,
}

#[derive(clap::Args)]
pub(crate) struct VerifyLiveArgs {
    pub(crate) dir: PathBuf,
    /// The cluster (a directory under DIR/clusters).
    #[arg(long)]
    pub(crate) cluster: String,
    /// kubeconfig context (default: the current context; in a pod: the service account).
    #[arg(long)]
    pub(crate) context: Option<String>,
    /// kubeconfig file (default: KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// The phase the cluster should run (default: its active pointer in DIR).
    #[arg(long)]
    pub(crate) phase: Option<u8>,
    /// Do not read the cacerts Secret (compare only public data).
    #[arg(long)]
    pub(crate) no_secret_read: bool,
    /// Proxies read at once.
    #[arg(long, default_value_t = 16)]
    pub(crate) concurrency: usize,
    /// Retry until the gates pass or this much time has passed (e.g. 10m).
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    pub(crate) wait: Option<Span>,
    /// Judge files collected with kubectl/istioctl instead of a live cluster.
    #[arg(long, value_name = "DIR")]
    pub(crate) from_dump: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) report: ReportArgs,
}

/// How a verify report is shown and judged (both verify commands).
#[derive(clap::Args, Clone, Copy)]
pub(crate) struct ReportArgs {
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: ReportFormat,
    /// Text: print every finding and every matrix group, not one line per gate family.
    #[arg(short, long)]
    pub(crate) verbose: bool,
    /// Fail on warnings too.
    #[arg(long)]
    pub(crate) strict: bool,
}

#[derive(clap::Args)]
pub(crate) struct ExplainArgs {
    /// A gate code (e.g. reload-rule); without one, every gate is listed.
    pub(crate) code: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: Format,
}

pub(crate) fn parse_span(s: &str) -> Result<Span, String> {
    Span::parse(s)
}

pub(crate) fn parse_now(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("`{s}` is not RFC 3339 (e.g. 2026-11-22T12:00:00Z): {e}"))
}
