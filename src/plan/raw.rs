//! The plan file as written: serde structs that mirror the YAML exactly.
//!
//! Every field that a semantic check may point at is wrapped in [`Spanned`], so
//! [`super::validate()`] can report file, line and column. Unknown fields are rejected by
//! serde (`deny_unknown_fields`); nothing here checks meaning.

use serde::Deserialize;
use serde_saphyr::Spanned;

/// `S<T>`: a value with the place in the YAML it came from.
pub type S<T> = Spanned<T>;

/// The whole document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPlan {
    pub api_version: S<String>,
    pub kind: S<String>,
    pub metadata: RawMetadata,
    pub spec: RawSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMetadata {
    pub name: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSpec {
    #[serde(default)]
    pub mesh: RawMesh,
    #[serde(default)]
    pub timing: RawTiming,
    #[serde(default)]
    pub gitops: RawGitops,
    pub roots: RawRoots,
    pub clusters: S<Vec<RawCluster>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMesh {
    pub trust_domain: Option<S<String>>,
    pub istio_namespace: Option<S<String>>,
    pub secret_name: Option<S<String>>,
    /// `istiod` (the four `*.pem` keys) or `kubernetes.io/tls`.
    pub secret_format: Option<S<String>>,
    /// `sidecar` or `ambient`.
    pub data_plane: Option<S<String>>,
    pub min_istio_version: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTiming {
    #[serde(rename = "workloadCertTTL")]
    pub workload_cert_ttl: Option<S<String>>,
    pub propagation_delay: Option<S<String>>,
    pub safety_margin: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGitops {
    /// `flux` or `argocd`.
    pub engine: Option<S<String>>,
    /// Where the output directory sits inside the Git repository (for Flux/Argo CD paths).
    pub repo_path: Option<S<String>>,
    /// age recipients (`age1…`) every encrypted file is readable by.
    #[serde(default)]
    pub age_recipients: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRoots {
    pub current: S<RawCertSource>,
    pub new: S<RawCertSource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCluster {
    pub name: S<String>,
    pub intermediates: RawIntermediates,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawIntermediates {
    pub current: S<RawCertSource>,
    pub new: S<RawCertSource>,
}

/// Exactly one of `generate` or `import` (checked in validation, so both are reported with spans).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCertSource {
    pub generate: Option<RawGenerate>,
    pub import: Option<RawImport>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGenerate {
    pub algorithm: Option<S<String>>,
    pub validity: Option<S<String>>,
    pub subject: Option<S<RawSubject>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSubject {
    pub common_name: Option<String>,
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
    pub locality: Option<String>,
}

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
