//! Rotation plans: the YAML a user writes ([`raw`]), and the checked [`Plan`] the rest of
//! rootroll works from. [`load`] reports every problem at once as [`Diagnostic`]s.

mod diag;
mod parse;
pub mod raw;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Diagnostics, Severity, SourceLine};
pub use validate::{CODES, validate};
pub(crate) use validate::{CRL_FIX, CRL_WHY};

use crate::duration::Span;
use crate::pki::{CaMaterial, GenerateSpec};

pub use crate::API_VERSION;
/// The `kind` every plan file must declare.
pub const KIND: &str = "RotationPlan";

/// Which keys the `cacerts` Secret uses (facts §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SecretFormat {
    /// `ca-cert.pem`, `ca-key.pem`, `root-cert.pem`, `cert-chain.pem`; type `Opaque`.
    #[serde(rename = "istiod")]
    Istiod,
    /// `tls.crt`, `tls.key`, `ca.crt`; type `kubernetes.io/tls`.
    #[serde(rename = "kubernetes.io/tls")]
    KubernetesTls,
}

impl SecretFormat {
    /// Every key of the Secret, sorted.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Self::Istiod => &[
                "ca-cert.pem",
                "ca-key.pem",
                "cert-chain.pem",
                "root-cert.pem",
            ],
            Self::KubernetesTls => &["ca.crt", "tls.crt", "tls.key"],
        }
    }
    /// The key holding the signing certificate (first) and any intermediates.
    pub fn cert_key(self) -> &'static str {
        match self {
            Self::Istiod => "ca-cert.pem",
            Self::KubernetesTls => "tls.crt",
        }
    }
    /// The key holding the private key: the only private entry.
    pub fn private_key(self) -> &'static str {
        match self {
            Self::Istiod => "ca-key.pem",
            Self::KubernetesTls => "tls.key",
        }
    }
    /// The key holding the root bundle.
    pub fn bundle_key(self) -> &'static str {
        match self {
            Self::Istiod => "root-cert.pem",
            Self::KubernetesTls => "ca.crt",
        }
    }
    /// The Kubernetes Secret `type` of this layout (`Opaque` or `kubernetes.io/tls`).
    pub fn secret_type(self) -> &'static str {
        match self {
            Self::Istiod => "Opaque",
            Self::KubernetesTls => "kubernetes.io/tls",
        }
    }
    /// The name a plan uses for this layout in `mesh.secretFormat`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Istiod => "istiod",
            Self::KubernetesTls => "kubernetes.io/tls",
        }
    }
}

/// How workloads get their certificates, which decides what the gates check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataPlane {
    /// Envoy sidecars next to each workload, restarted to pick up new certificates.
    Sidecar,
    /// Ambient mode: ztunnel on each node holds the workload certificates.
    Ambient,
}

/// The GitOps controller that applies the rendered phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Flux (`Kustomization` resources point at a phase directory).
    Flux,
    /// Argo CD (`Application` resources point at a phase directory).
    Argocd,
}

/// `major.minor[.patch]`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(into = "String", try_from = "String")]
pub struct IstioVersion {
    /// Major version, `1` for every Istio so far.
    pub major: u32,
    /// Minor version: decides which bundle reload rule istiod applies.
    pub minor: u32,
    /// Patch release, when the plan gives one.
    pub patch: Option<u32>,
}

impl IstioVersion {
    /// Reads `1.24`, `1.24.3` or `v1.24.3`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().trim_start_matches('v').split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) => Some(p.parse().ok()?),
            None => None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
        })
    }
    /// `true` when istiod uses the DER-set reload rule (1.30+) rather than byte containment.
    pub fn has_set_reload_rule(self) -> bool {
        (self.major, self.minor) >= (1, 30)
    }
    /// `true` from the first release of each line with the fix, with a missing patch read as
    /// `.0`: `fixed` lists `(minor, first fixed patch)` per line, and every minor above the last
    /// line's is fixed.
    fn at_least_fixed(self, fixed: &[(u32, u32)]) -> bool {
        let (major, minor, patch) = (self.major, self.minor, self.patch.unwrap_or(0));
        let newest = fixed.last().map_or(0, |&(m, _)| m);
        major > 1
            || major == 1
                && (minor > newest || fixed.iter().any(|&(m, p)| m == minor && patch >= p))
    }
    /// istio-2026 §2 (multi-root trust, istio/ztunnel#1510): ztunnel trusts every root of a
    /// CA response from 1.26.0, backported to 1.25.3 and 1.24.6. Older ztunnel trusts only the
    /// first root of a bundle, so an ambient root rotation cannot work on it.
    pub fn ztunnel_trusts_every_root(self) -> bool {
        self.at_least_fixed(&[(24, 6), (25, 3), (26, 0)])
    }
    /// istio-2026 §2 (CA client reload, istio/ztunnel#1775): from 1.30.0, backported to 1.29.2
    /// and 1.28.6, ztunnel rebuilds its CA channel when `root-cert.pem` changes; below, it must
    /// restart after phase 3 (istiod then serves a certificate from root B).
    pub fn ztunnel_reloads_ca_root(self) -> bool {
        self.at_least_fixed(&[(28, 6), (29, 2), (30, 0)])
    }
}

impl TryFrom<String> for IstioVersion {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
            .ok_or_else(|| format!("`{s}` is not an Istio version (major.minor[.patch])"))
    }
}

impl From<IstioVersion> for String {
    fn from(v: IstioVersion) -> Self {
        match v.patch {
            Some(p) => format!("{}.{}.{p}", v.major, v.minor),
            None => format!("{}.{}", v.major, v.minor),
        }
    }
}

/// The mesh being rotated (`spec.mesh`), with defaults applied.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mesh {
    /// SPIFFE trust domain the workload identities belong to (`cluster.local` by default).
    pub trust_domain: String,
    /// Namespace istiod runs in and reads its CA Secret from.
    pub istio_namespace: String,
    /// Name of the Secret istiod reads its signing CA from (`cacerts` by default).
    pub secret_name: String,
    /// Which keys that Secret uses.
    pub secret_format: SecretFormat,
    /// Sidecar or ambient: which proxies must pick up the new certificates.
    pub data_plane: DataPlane,
    /// Oldest istiod in any cluster: decides the bundle reload rule the phases must respect.
    pub min_istio_version: IstioVersion,
}

/// How long each phase must soak (`spec.timing`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    /// Lifetime of workload certificates: every workload has re-issued within this time.
    #[serde(rename = "workloadCertTTL")]
    pub workload_cert_ttl: Span,
    /// Time for a changed Secret or bundle to reach every istiod and proxy.
    pub propagation_delay: Span,
    /// Extra time added to every soak on top of the TTL and the propagation delay.
    pub safety_margin: Span,
}

/// Where and how the rendered phases are delivered (`spec.gitops`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gitops {
    /// The controller that applies the phases.
    pub engine: Engine,
    /// Where the output directory sits inside the Git repository, for the controller's paths.
    pub repo_path: String,
    /// The shorthand (`spec.gitops.ageRecipients`): the operators, and every encrypted file is
    /// readable by them. Empty in the role form.
    pub age_recipients: Vec<String>,
    /// The Git repository URL Argo CD reads the tree from; required with Argo CD, unused by
    /// Flux (its Kustomization names a GitRepository source instead).
    #[serde(rename = "repoURL", default, skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    /// The revision Argo CD follows (`HEAD` by default; written only when it differs).
    #[serde(
        default = "default_revision",
        skip_serializing_if = "is_default_revision"
    )]
    pub target_revision: String,
    /// The role form (`spec.gitops.recipients`, `operators`, each cluster's `recipients`);
    /// `None` for the shorthand. Written to `rollout.json` only when present, so trees
    /// rendered from the shorthand keep every byte, and a `rollout.json` without it (format 1
    /// as written before roles existed) reads as the shorthand it is: the field is additive,
    /// so `formatVersion` stays 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Roles>,
}

/// The revision Argo CD follows when the plan names none.
pub const DEFAULT_REVISION: &str = "HEAD";

fn default_revision() -> String {
    DEFAULT_REVISION.to_string()
}

fn is_default_revision(r: &str) -> bool {
    r == DEFAULT_REVISION
}

/// Recipients by role, as validated: every name resolves to a key of `recipients`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Roles {
    /// Every age recipient by its plan name.
    pub recipients: BTreeMap<String, String>,
    /// Names of the operators: they decrypt everything, the key state included.
    pub operators: Vec<String>,
    /// Names of each cluster's own recipients (its Flux or KSOPS key), by cluster.
    pub clusters: BTreeMap<String, Vec<String>>,
}

/// An age recipient and the name the plan gives it (`ageRecipients[0]` in the shorthand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The plan's name for it.
    pub name: String,
    /// The `age1…` public key.
    pub key: String,
}

/// Who an encrypted file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience<'a> {
    /// The operators only: the key state, and anything outside a cluster's directory.
    Operators,
    /// A cluster's files: the operators and that cluster's recipients.
    Cluster(&'a str),
}

impl Gitops {
    /// The operators: the shorthand's list, or the role form's `operators`.
    pub fn operators(&self) -> Vec<Recipient> {
        match &self.roles {
            None => self
                .age_recipients
                .iter()
                .enumerate()
                .map(|(i, key)| Recipient {
                    name: format!("ageRecipients[{i}]"),
                    key: key.clone(),
                })
                .collect(),
            Some(r) => r.named(&r.operators),
        }
    }

    /// Exactly the recipients a file for `audience` is encrypted to, in plan order, each key
    /// once. A cluster the roles do not name gets the operators only.
    pub fn recipients_for(&self, audience: Audience<'_>) -> Vec<Recipient> {
        let mut out = self.operators();
        if let (Some(r), Audience::Cluster(c)) = (&self.roles, audience) {
            out.extend(r.named(r.clusters.get(c).map_or(&[][..], Vec::as_slice)));
        }
        let mut seen = std::collections::BTreeSet::new();
        out.retain(|r| seen.insert(r.key.clone()));
        out
    }

    /// Every distinct recipient of the plan.
    pub fn all_recipients(&self) -> Vec<Recipient> {
        match &self.roles {
            None => self.operators(),
            Some(r) => r
                .recipients
                .iter()
                .map(|(name, key)| Recipient {
                    name: name.clone(),
                    key: key.clone(),
                })
                .collect(),
        }
    }

    /// The plan name of a key, if the plan lists it.
    pub fn name_of(&self, key: &str) -> Option<String> {
        self.all_recipients()
            .into_iter()
            .find(|r| r.key == key)
            .map(|r| r.name)
    }
}

impl Roles {
    /// The named recipients, in the given order; a name without a key is skipped (validation
    /// and [`Self::check`] refuse those).
    fn named(&self, names: &[String]) -> Vec<Recipient> {
        names
            .iter()
            .filter_map(|n| {
                self.recipients.get(n).map(|k| Recipient {
                    name: n.clone(),
                    key: k.clone(),
                })
            })
            .collect()
    }

    /// For a roles block read back from `rollout.json`: every name resolves, and the
    /// operators are not empty.
    pub fn check(&self) -> Result<(), String> {
        if self.operators.is_empty() {
            return Err("`gitops.roles.operators` is empty".into());
        }
        let lists = std::iter::once(("operators".to_string(), &self.operators)).chain(
            self.clusters
                .iter()
                .map(|(c, v)| (format!("clusters.{c}"), v)),
        );
        for (field, names) in lists {
            if let Some(n) = names.iter().find(|n| !self.recipients.contains_key(*n)) {
                return Err(format!(
                    "`gitops.roles.{field}` names `{n}`, which `gitops.roles.recipients` does not list"
                ));
            }
        }
        Ok(())
    }
}

/// A root as the plan describes it.
#[derive(Clone)]
pub enum RootInput {
    /// A root rootroll creates at render time.
    Generate(GenerateSpec),
    /// A root bundle that already exists on disk.
    Import(ImportedRoot),
}

/// A root bundle read from disk. `bundle` holds the file's bytes exactly.
#[derive(Clone)]
pub struct ImportedRoot {
    /// The bundle file, as the plan names it (resolved against the plan's directory).
    pub file: PathBuf,
    /// The bundle file's bytes, kept exactly so phase 1 serves what the clusters already trust.
    pub bundle: Vec<u8>,
    /// The certificate whose key was supplied (if any), else the first certificate.
    pub signer: CaMaterial,
    /// DER of every certificate in the bundle, in file order.
    pub certs: Vec<Vec<u8>>,
}

/// An intermediate as the plan describes it.
#[derive(Clone)]
pub enum IntermediateInput {
    /// An intermediate rootroll creates at render time, signed by the matching root.
    Generate(GenerateSpec),
    /// An existing signing CA read from an import directory.
    Import(ImportedIntermediate),
}

/// A signing CA read from disk, with its key and the exact chain bytes.
#[derive(Clone)]
pub struct ImportedIntermediate {
    /// The import directory (resolved against the plan's directory).
    pub dir: PathBuf,
    /// The signing CA certificate and, unless `key_from_state`, its private key.
    pub cert: CaMaterial,
    /// What istiod serves after the leaf: `cert-chain.pem`, or `tls.crt` for the TLS layout.
    pub chain: Vec<u8>,
    /// The key is not in `dir` but in the encrypted key state (`key: state`).
    pub key_from_state: bool,
}

/// One cluster of the mesh and its two intermediates.
#[derive(Clone)]
pub struct ClusterPlan {
    /// Cluster name: the name of its directory in every phase.
    pub name: String,
    /// The intermediate that signs workloads today (phases 1 and 2).
    pub current: IntermediateInput,
    /// The intermediate, under the new root, that signs from phase 3 on.
    pub new: IntermediateInput,
}

/// A plan whose every field has been checked.
#[derive(Clone)]
pub struct Plan {
    /// The plan file this was loaded from.
    pub file: PathBuf,
    /// `metadata.name`: names the rollout in outputs and reports.
    pub name: String,
    /// The mesh being rotated.
    pub mesh: Mesh,
    /// Soak inputs of every phase.
    pub timing: Timing,
    /// Controller, repository path and age recipients of the outputs.
    pub gitops: Gitops,
    /// The root (bundle) the clusters trust today.
    pub current_root: RootInput,
    /// The root the mesh rotates to; for [`crate::model::Strategy::Intermediates`] the current
    /// root again (the new intermediates are signed by it).
    pub new_root: RootInput,
    /// `spec.strategy`: what the rollout rotates.
    pub strategy: crate::model::Strategy,
    /// Every cluster that rotates, in plan order (`spec.rotate` selects them for an
    /// intermediate-only rotation).
    pub clusters: Vec<ClusterPlan>,
    /// Clusters of `spec.clusters` that `spec.rotate` leaves out, in plan order: they keep
    /// their intermediate and get no phase tree.
    pub not_rotated: Vec<String>,
    /// `spec.rollout.expiry`: when verify warns and fails before the next rotation's start-by date.
    pub expiry: crate::model::ExpiryThresholds,
    /// `spec.rollout.waves`: the clusters in promotion order, as the plan lists them; empty
    /// when the plan names no waves (the whole fleet is then one wave).
    pub waves: Vec<Vec<String>>,
    /// Warnings found while validating (errors would have stopped the load).
    pub warnings: Vec<Diagnostic>,
}

/// Errors that stop a plan from loading.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The plan file could not be read.
    #[error("cannot read plan {}", path.display())]
    Read {
        /// The plan file.
        path: PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
    /// The plan was read but has errors; every problem is in `diagnostics`.
    #[error("{} has {} problem(s)", path.display(), diagnostics.iter().filter(|d| d.is_error()).count())]
    Invalid {
        /// The plan file.
        path: PathBuf,
        /// Every error and warning found, sorted by place.
        diagnostics: Vec<Diagnostic>,
    },
}

/// Largest plan file accepted; real plans are a few kilobytes.
pub const MAX_PLAN_BYTES: u64 = 4 * 1024 * 1024;

/// Reads, parses and validates a plan file. `now` decides which imports have expired.
pub fn load(path: &Path, now: time::OffsetDateTime) -> Result<Plan, PlanError> {
    let read_err = |source| PlanError::Read {
        path: path.to_path_buf(),
        source,
    };
    let too_large = |size: String| {
        let mut d = Diagnostics::new(path);
        d.error(
            "plan-too-large",
            serde_saphyr::Location::UNKNOWN,
            format!(
                "the plan is {size} bytes; plans larger than {MAX_PLAN_BYTES} bytes are refused"
            ),
            "a rotation plan is a few kilobytes: check that the right file was given",
        );
        PlanError::Invalid {
            path: path.to_path_buf(),
            diagnostics: d.into_sorted(),
        }
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > MAX_PLAN_BYTES {
        return Err(too_large(meta.len().to_string()));
    }
    // A pipe or device reports no size: never read more than the limit from it either.
    let bytes = read_bounded(path, MAX_PLAN_BYTES).map_err(read_err)?;
    let Some(bytes) = bytes else {
        return Err(too_large(format!("more than {MAX_PLAN_BYTES}")));
    };
    validate(path, &bytes, now).map_err(|diagnostics| PlanError::Invalid {
        path: path.to_path_buf(),
        diagnostics,
    })
}

/// Reads at most `max` bytes of `path`; `None` when it holds more (a pipe, a device or a
/// file that grew), so a hostile path cannot make rootroll read without end.
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    // Sized up front so a key file is read into one buffer, never copied by a regrowth.
    let hint = file.metadata().map_or(0, |m| m.len().min(max));
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0) + 1);
    file.take(max + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}
