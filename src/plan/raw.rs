//! The plan file as written: serde structs that mirror the YAML exactly.
//!
//! Every field that a semantic check may point at is wrapped in [`Spanned`], so
//! [`super::validate()`] can report file, line and column. Unknown fields are rejected by
//! serde (`deny_unknown_fields`); nothing here checks meaning.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// `S<T>`: a value with the place in the YAML it came from.
pub type S<T> = Spanned<T>;

/// The whole document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPlan {
    /// `apiVersion`: must be this build's [`crate::API_VERSION`].
    pub api_version: S<String>,
    /// `kind`: must be `RotationPlan`.
    pub kind: S<String>,
    /// `metadata`: the plan's name.
    pub metadata: RawMetadata,
    /// `spec`: what to rotate and how.
    pub spec: RawSpec,
}

/// `metadata` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMetadata {
    /// `metadata.name`: names the rollout.
    pub name: S<String>,
}

/// `spec` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSpec {
    /// `spec.mesh`; every field has a default.
    #[serde(default)]
    pub mesh: RawMesh,
    /// `spec.timing`; every field has a default.
    #[serde(default)]
    pub timing: RawTiming,
    /// `spec.gitops`; every field has a default.
    #[serde(default)]
    pub gitops: RawGitops,
    /// `spec.strategy`: `roots` (default: rotate the root and every intermediate) or
    /// `intermediates` (only the intermediates, under the unchanged root).
    pub strategy: Option<S<String>>,
    /// `spec.rotate`: which clusters an intermediate-only rotation rotates (all by default).
    pub rotate: Option<S<RawRotate>>,
    /// `spec.roots`: the current and the new root.
    pub roots: RawRoots,
    /// `spec.clusters`: every cluster with its two intermediates.
    pub clusters: S<Vec<RawCluster>>,
    /// `spec.rollout`; every field has a default.
    #[serde(default)]
    pub rollout: RawRollout,
}

/// `spec.rotate` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRotate {
    /// `clusters`: names from `spec.clusters`; the others keep their intermediate.
    pub clusters: S<Vec<S<String>>>,
}

/// `spec.rollout` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRollout {
    /// `expiry`: when `verify offline` warns and fails before the next rotation's start-by date.
    pub expiry: Option<S<RawExpiry>>,
    /// `waves`: lists of cluster names, promoted one list after the other.
    pub waves: Option<S<Vec<RawWave>>>,
}

/// `spec.rollout.expiry` as written: durations such as `90d`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpiry {
    /// Warn this long before the start-by date (default 90d).
    pub warn: Option<S<String>>,
    /// Fail this long before the start-by date (default 30d).
    pub fail: Option<S<String>>,
}

/// One wave as written: the names of the clusters it promotes together.
pub type RawWave = S<Vec<S<String>>>;

/// `spec.mesh` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMesh {
    /// SPIFFE trust domain (default `cluster.local`).
    pub trust_domain: Option<S<String>>,
    /// Namespace istiod runs in (default `istio-system`).
    pub istio_namespace: Option<S<String>>,
    /// Name of istiod's CA Secret (default `cacerts`).
    pub secret_name: Option<S<String>>,
    /// `istiod` (the four `*.pem` keys) or `kubernetes.io/tls`.
    pub secret_format: Option<S<String>>,
    /// `sidecar` or `ambient`.
    pub data_plane: Option<S<String>>,
    /// Oldest istiod version in the mesh, `major.minor[.patch]`.
    pub min_istio_version: Option<S<String>>,
}

/// `spec.timing` as written: durations such as `24h` or `30m`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTiming {
    /// Lifetime of workload certificates.
    #[serde(rename = "workloadCertTTL")]
    pub workload_cert_ttl: Option<S<String>>,
    /// Time for a changed Secret or bundle to reach every istiod and proxy.
    pub propagation_delay: Option<S<String>>,
    /// Extra time added to every soak.
    pub safety_margin: Option<S<String>>,
}

/// `spec.gitops` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGitops {
    /// `flux` or `argocd`.
    pub engine: Option<S<String>>,
    /// Where the output directory sits inside the Git repository (for Flux/Argo CD paths).
    pub repo_path: Option<S<String>>,
    /// The shorthand: age recipients (`age1…`) every encrypted file is readable by (they are
    /// the operators, and every cluster file is encrypted to them too).
    #[serde(default)]
    pub age_recipients: Vec<S<String>>,
    /// The Git repository URL Argo CD reads the rendered tree from (required with argocd).
    #[serde(rename = "repoURL")]
    pub repo_url: Option<S<String>>,
    /// The revision (branch, tag or commit) Argo CD follows; `HEAD` by default.
    pub target_revision: Option<S<String>>,
    /// The role form: every age recipient, named once (`name: age1…`).
    pub recipients: Option<S<BTreeMap<String, S<String>>>>,
    /// The role form: names (from `recipients`) of the operators, who decrypt everything.
    pub operators: Option<S<Vec<S<String>>>>,
}

/// `spec.roots` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRoots {
    /// The root the clusters trust today.
    pub current: S<RawCertSource>,
    /// The root to rotate to; absent for `strategy: intermediates`.
    pub new: Option<S<RawCertSource>>,
}

/// One entry of `spec.clusters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCluster {
    /// Cluster name.
    pub name: S<String>,
    /// The cluster's current and new intermediate.
    pub intermediates: RawIntermediates,
    /// The role form: names (from `spec.gitops.recipients`) of the cluster's Flux or KSOPS
    /// keys, which decrypt only this cluster's Secrets.
    pub recipients: Option<S<Vec<S<String>>>>,
}

/// `intermediates` of a cluster as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawIntermediates {
    /// The intermediate that signs workloads today.
    pub current: S<RawCertSource>,
    /// The intermediate, under the new root, that signs from phase 3 on.
    pub new: S<RawCertSource>,
}

/// Exactly one of `generate` or `import` (checked in validation, so both are reported with spans).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCertSource {
    /// Create the certificate at render time.
    pub generate: Option<RawGenerate>,
    /// Read an existing certificate (and key) from disk.
    pub import: Option<RawImport>,
}

/// `generate:` as written: what to create at render time.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGenerate {
    /// Key algorithm (for example `ecdsa-p256`).
    pub algorithm: Option<S<String>>,
    /// How long the certificate is valid, as a duration (`3650d`).
    pub validity: Option<S<String>>,
    /// Subject fields of the certificate.
    pub subject: Option<S<RawSubject>>,
}

/// `subject:` as written: the distinguished name of a generated certificate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSubject {
    /// `CN`.
    pub common_name: Option<String>,
    /// `O`.
    pub organization: Option<String>,
    /// `OU`.
    pub organizational_unit: Option<String>,
    /// `L`.
    pub locality: Option<String>,
}

/// `import:` as written: an existing CA on disk.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawImport {
    /// Directory holding Istio Makefile output or a `kubernetes.io/tls` set, relative to the plan.
    pub dir: S<String>,
    /// `auto` (default), `makefile` or `tls`.
    pub layout: Option<S<String>>,
    /// Where the private key is: `file` (default: `ca-key.pem`/`tls.key` in `dir`) or `state`
    /// (the encrypted key state of the output directory, as `init --from-cluster` leaves it).
    pub key: Option<S<String>>,
}
