//! `verify live`: gates over what a cluster is really running.
//!
//! Gathering and judging are separate: a [`Snapshot`] is collected either from the Kubernetes
//! API (with Envoy and ztunnel admin dumps read through port-forwards, see [`super::cluster`])
//! or from files (`--from-dump`, see [`super::dump`]), and [`gates`] turns it into a
//! [`Report`]. The same snapshot gives the same verdicts whichever way it was collected.
//!
//! Each gate (or small family) is one function in a file named after what it checks. A source
//! that could not be read is one failed finding with the reason; the gates that depend on it
//! are *not checked, because …* (see `Blocked`), never a pass and never the same failure again.

mod admin;
mod configmap;
mod pods;
mod prereq;
mod proxy;
mod secret;
mod soak;
mod webhook;
mod ztunnel;

use std::collections::BTreeSet;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use time::OffsetDateTime;

pub use admin::{ZtunnelCert, envoy_secrets, is_envoy_dump, ztunnel_certs};
pub use configmap::{TRUST_BUNDLE_NAME, TRUST_BUNDLE_VERSIONS, TrustBundle};
pub use pods::proxy_kind;
pub use prereq::{
    DEFAULT_ROOT_CONFIGMAP, Publication, image_version, publication, version_problem,
};

use super::Report;
use crate::duration::Span;
use crate::gates::Code;
use crate::plan::SecretFormat;
use crate::repo::{Repo, keys};

/// DER certificates.
pub type Ders = Vec<Vec<u8>>;

/// A source that could not be read: the reason is reported as a failed gate.
pub type Fetched<T> = Result<T, String>;

/// An Envoy (sidecar, gateway, waypoint) or ztunnel whose admin dump was read.
#[derive(Debug, Clone)]
pub struct ProxyDump {
    /// Namespace of the proxy's pod.
    pub namespace: String,
    /// Name of the proxy's pod.
    pub pod: String,
    /// `sidecar`, `gateway`, `waypoint`, `ztunnel` or `agentgateway`.
    pub kind: String,
    /// The admin `config_dump` (or ztunnel's), or why it could not be read.
    pub dump: Fetched<serde_json::Value>,
}

/// Everything the live gates look at.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Namespace istiod runs in, from the rendered mesh.
    pub istio_namespace: String,
    /// Deployments in the Istio namespace (istiod and its revisions).
    pub deployments: Fetched<Vec<Deployment>>,
    /// ConfigMaps in the Istio namespace (mesh config `istio`, `istio-<rev>`).
    pub istio_configmaps: Fetched<Vec<ConfigMap>>,
    /// Pods of the mesh: istiod, gateways, workloads with sidecars, ztunnel.
    pub pods: Fetched<Vec<Pod>>,
    /// `None` when the Secret was deliberately not read (`--no-secret-read`).
    pub secret: Option<Fetched<Option<Secret>>>,
    /// The root ConfigMaps istiod writes into every namespace: those with the names the istiod
    /// Deployments configure (`PILOT_CA_CERT_CONFIGMAP`, default `istio-ca-root-cert`).
    pub root_configmaps: Fetched<Vec<ConfigMap>>,
    /// The ClusterTrustBundle `istio.io:istiod-ca:root-cert` (`Ok(None)`: it does not exist);
    /// `None` when no istiod Deployment enables `ENABLE_CLUSTER_TRUST_BUNDLE_API`, so it was not read.
    pub trust_bundle: Option<Fetched<Option<TrustBundle>>>,
    /// Mutating webhooks (sidecar injection), whose `caBundle` must trust istiod.
    pub mutating_webhooks: Fetched<Vec<MutatingWebhookConfiguration>>,
    /// Validating webhooks (config validation), whose `caBundle` must trust istiod.
    pub validating_webhooks: Fetched<Vec<ValidatingWebhookConfiguration>>,
    /// Every proxy whose admin dump was requested.
    pub proxies: Vec<ProxyDump>,
    /// By gate code, how to fix a source that could not be read, replacing the live cluster's
    /// RBAC hint (a dump names the file to collect); empty for a live cluster.
    pub unread_hints: std::collections::BTreeMap<&'static str, String>,
}

/// What the cluster should be running, from the rendered directory.
#[derive(Debug, Clone)]
pub struct Expectation {
    /// Cluster name, as in the rendered tree.
    pub cluster: String,
    /// The phase the cluster's pointer says is active.
    pub phase: u8,
    /// `true` for an ambient mesh (ztunnel holds the workload certificates).
    pub ambient: bool,
    /// Name of istiod's CA Secret.
    pub secret_name: String,
    /// The Secret's keys (istiod files or `kubernetes.io/tls`).
    pub format: SecretFormat,
    /// The Secret's expected `rootroll.dev/public-sha256` annotation.
    pub public_sha256: String,
    /// SHA-256 of the phase's root bundle bytes.
    pub bundle_sha256: String,
    /// sha256 of every root of the phase's bundle (DER).
    pub roots: BTreeSet<String>,
    /// SKID of the new (phase 3–4) and current (phase 1–2) intermediates of this cluster.
    pub new_skid: Option<String>,
    /// SKID of the current intermediate (phases 1–2).
    pub current_skid: Option<String>,
    /// Minimum time the phase must soak before the next is promoted.
    pub min_soak: Span,
    /// The shorter soak that holds once the cluster itself proves the phase done: in ambient,
    /// the phase where the issuer switches, once every ztunnel identity is issued by the new
    /// intermediate (istio-2026 §2).
    pub proven_soak: Option<Span>,
    /// The phase's directory name (`3-switch-issuer`), for messages.
    pub dir: String,
    /// The phase signs with the new intermediate: every leaf must be issued by it.
    pub new_issuer: bool,
    /// The phase removes a root (phase 4 of a root rotation): a held root beyond the
    /// phase's own is stale.
    pub exact_roots: bool,
    /// The phase needs old ztunnel restarted (phase 3 of a root rotation: istiod now serves
    /// a certificate from the new root, istio-2026.md §2).
    pub ztunnel_restart: bool,
}

/// Errors that stop a live run (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The rendered repository cannot be read.
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    /// The expectation cannot be built from it.
    #[error("{0}")]
    Expectation(String),
}

impl Expectation {
    /// The expectation for `cluster` from a rendered repository; `phase` overrides the
    /// cluster's active pointer.
    pub fn load(repo: &Repo, cluster: &str, phase: Option<u8>) -> Result<Self, LiveError> {
        let model = &repo.rollout;
        let phase = match phase {
            Some(p) => p,
            None => repo.active(cluster).map_err(LiveError::Expectation)?,
        };
        let strategy = model.strategy;
        if !strategy.numbers().contains(&phase) {
            return Err(LiveError::Expectation(format!(
                "phase {phase} does not exist (1–{})",
                strategy.last()
            )));
        }
        let pdir = crate::repo::phase_path(strategy, cluster, phase);
        let (_, text) = repo
            .phase_secret(cluster, phase)
            .map_err(LiveError::Expectation)?
            .ok_or_else(|| LiveError::Expectation(format!("no cacerts file in {pdir}")))?;
        let doc: serde_json::Value =
            serde_saphyr::from_str(&text).map_err(|e| LiveError::Expectation(e.to_string()))?;
        let ann = |k: &str| {
            doc["metadata"]["annotations"][k]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| LiveError::Expectation(format!("{pdir} lacks {k}")))
        };
        let public_sha256 = ann(keys::PUBLIC_SHA256)?;
        let bundle_sha256 = ann(keys::BUNDLE_SHA256)?;
        let roots = model
            .phase(phase)
            .map(|p| {
                p.bundle
                    .iter()
                    .filter_map(|e| match &e.cert {
                        crate::model::CertView::Known(s) => Some(s.sha256.clone()),
                        crate::model::CertView::Planned { .. } => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let skid = |v: Option<&crate::model::CertView>| match v {
            Some(crate::model::CertView::Known(s)) => s.subject_key_id.clone(),
            _ => None,
        };
        let cl = model.cluster(cluster);
        Ok(Self {
            cluster: cluster.to_string(),
            phase,
            ambient: model.mesh.data_plane == crate::plan::DataPlane::Ambient,
            secret_name: model.mesh.secret_name.clone(),
            format: model.mesh.secret_format,
            public_sha256,
            bundle_sha256,
            roots,
            new_skid: skid(cl.map(|c| &c.new_intermediate)),
            current_skid: skid(cl.map(|c| &c.current_intermediate)),
            min_soak: model.min_soak(phase),
            proven_soak: (model.mesh.data_plane == crate::plan::DataPlane::Ambient
                && phase == strategy.switch_phase())
            .then(|| {
                crate::model::soaks(
                    &model.timing,
                    model.mesh.data_plane,
                    model.mesh.min_istio_version,
                )
                .fast
            }),
            dir: model.phase_dir(phase),
            new_issuer: strategy.issuer(phase) == crate::model::Issuer::New,
            exact_roots: strategy == crate::model::Strategy::Roots && phase == 4,
            ztunnel_restart: strategy == crate::model::Strategy::Roots && phase == 3,
        })
    }
}

/// Root causes found by earlier gates, for the gates that depend on them: each is the reason
/// (`because …`) a dependent gate is not checked.
#[derive(Debug, Default)]
pub(crate) struct Blocked {
    /// The live Secret was read and is not the expected phase (or does not exist).
    pub secret: Option<String>,
    /// Pods could not be listed, so no proxy was found or read.
    pub pods: Option<String>,
}

/// What one proxy identity holds, as read from its admin dump: `id` names it in messages
/// (`namespace/pod (kind)` for an Envoy, `namespace/pod spiffe://…` for a ztunnel identity).
pub(crate) struct Held {
    /// Names it in messages.
    pub id: String,
    /// The roots it trusts (DER).
    pub roots: Ders,
    /// The chain it presents, leaf first (DER).
    pub chain: Ders,
}

/// The gates of `codes` could not be judged, and why: one not-checked finding each.
pub(crate) fn not_checked_all(
    codes: Vec<crate::gates::Code>,
    cluster: &str,
    why: &str,
) -> Vec<crate::verify::Finding> {
    codes
        .into_iter()
        .map(|code| crate::verify::Finding::not_checked(code, cluster, why))
        .collect()
}

/// Judges a snapshot against the expectation: one call per gate family, root causes first.
pub fn gates(s: &Snapshot, e: &Expectation, now: OffsetDateTime) -> Report {
    let mut r = Report::default();
    r.findings.extend(prereq::istiod(s, e));
    r.push(prereq::mesh_config(s, e));
    r.findings.extend(prereq::data_plane(s, e));
    let (secret, not_phase) = secret::phase(s, e);
    r.push(secret);
    let blocked = Blocked {
        secret: not_phase,
        pods: s
            .pods
            .as_ref()
            .err()
            .map(|_| "because pods could not be listed (prereq-xds-agent-pods)".to_string()),
    };
    r.push(configmap::root_configmap(s, e, &blocked));
    r.push(webhook::ca_bundles(s, e, &blocked));
    r.findings.extend(proxy::envoys(s, e, &blocked));
    if e.ambient {
        r.findings.extend(ztunnel::identities(s, e, &blocked));
    }
    // In ambient the issuer switch may end early only on the ztunnels' own proof
    // (istio-2026 §2).
    let ztunnels_on_b = e.ambient
        && [Code::ZtunnelReadable, Code::ZtunnelLeafNewIssuer]
            .iter()
            .all(|&c| r.findings.iter().any(|f| f.code == c && f.passed));
    r.findings
        .extend(soak::since_applied(s, e, now, &blocked, ztunnels_on_b));
    if e.ambient && e.ztunnel_restart {
        r.push(ztunnel::restarted(s, e, &blocked));
    }
    r.push(proxy::unverified(s, e, &blocked));
    // A dump names the file to collect where a live cluster would need more RBAC.
    for f in r.findings.iter_mut().filter(|f| f.is_failure()) {
        if let Some(hint) = s.unread_hints.get(f.code.as_str())
            && f.message.contains("could not be read")
        {
            f.hint.clone_from(hint);
        }
    }
    r
}
