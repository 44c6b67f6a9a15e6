//! `verify live`: gates over what a cluster is really running.
//!
//! Gathering and judging are separate: a [`Snapshot`] is collected either from the Kubernetes
//! API (with Envoy and ztunnel admin dumps read through port-forwards, see [`super::kube`]) or
//! from files (`--from-dump`, see [`super::dump`]), and [`gates`] turns it into a [`Report`].
//! The same snapshot gives the same verdicts whichever way it was collected. Anything that
//! could not be read is a failed gate with the reason, never a pass.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use time::OffsetDateTime;

use super::{Finding, Report, Severity};
use crate::duration::Span;
use crate::model::phase_dir;
use crate::pki;
use crate::plan::IstioVersion;
use crate::render::{self, cluster_dir, keys};

/// DER certificates.
pub type Ders = Vec<Vec<u8>>;

/// A source that could not be read: the reason is reported as a failed gate.
pub type Fetched<T> = Result<T, String>;

/// An Envoy (sidecar, gateway, waypoint) or ztunnel whose admin dump was read.
#[derive(Debug, Clone)]
pub struct ProxyDump {
    pub namespace: String,
    pub pod: String,
    /// `sidecar`, `gateway`, `waypoint` or `ztunnel`.
    pub kind: String,
    pub dump: Fetched<serde_json::Value>,
}

/// Everything the live gates look at.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub istio_namespace: String,
    pub deployments: Fetched<Vec<Deployment>>,
    /// ConfigMaps in the Istio namespace (mesh config `istio`, `istio-<rev>`).
    pub istio_configmaps: Fetched<Vec<ConfigMap>>,
    pub pods: Fetched<Vec<Pod>>,
    /// `None` when the Secret was deliberately not read (`--no-secret-read`).
    pub secret: Option<Fetched<Option<Secret>>>,
    pub root_configmaps: Fetched<Vec<ConfigMap>>,
    pub mutating_webhooks: Fetched<Vec<MutatingWebhookConfiguration>>,
    pub validating_webhooks: Fetched<Vec<ValidatingWebhookConfiguration>>,
    pub proxies: Vec<ProxyDump>,
    /// By gate code, how to fix a source that could not be read, replacing the live cluster's
    /// RBAC hint (a dump names the file to collect); empty for a live cluster.
    pub unread_hints: BTreeMap<&'static str, String>,
}

/// What the cluster should be running, from the rendered directory.
#[derive(Debug, Clone)]
pub struct Expectation {
    pub cluster: String,
    pub phase: u8,
    pub ambient: bool,
    pub secret_name: String,
    pub public_sha256: String,
    pub bundle_sha256: String,
    /// sha256 of every root of the phase's bundle (DER).
    pub roots: BTreeSet<String>,
    /// SKID of the new (phase 3–4) and current (phase 1–2) intermediates of this cluster.
    pub new_skid: Option<String>,
    pub current_skid: Option<String>,
    pub min_soak: Span,
}

/// Errors that stop a live run (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Offline(#[from] super::offline::VerifyError),
    #[error("{0}")]
    Expectation(String),
}

impl Expectation {
    /// Reads the expectation for `cluster` from a rendered directory; `phase` overrides the
    /// cluster's active pointer.
    pub fn load(dir: &Path, cluster: &str, phase: Option<u8>) -> Result<Self, LiveError> {
        let ctx = super::offline::Context::load(dir)?;
        let phase = match phase {
            Some(p) => p,
            None => super::offline::active_phase(dir, cluster).map_err(LiveError::Expectation)?,
        };
        if !(1..=4).contains(&phase) {
            return Err(LiveError::Expectation(format!(
                "phase {phase} does not exist (1–4)"
            )));
        }
        let model: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(render::ROLLOUT_JSON))
                .map_err(|e| LiveError::Expectation(e.to_string()))?,
        )
        .map_err(|e| LiveError::Expectation(e.to_string()))?;
        let pdir = dir
            .join(cluster_dir(cluster))
            .join("phases")
            .join(phase_dir(phase));
        let text = ["cacerts.sops.yaml", "cacerts.yaml"]
            .iter()
            .find_map(|f| std::fs::read_to_string(pdir.join(f)).ok())
            .ok_or_else(|| {
                LiveError::Expectation(format!("no cacerts file in {}", pdir.display()))
            })?;
        let doc: serde_json::Value =
            serde_saphyr::from_str(&text).map_err(|e| LiveError::Expectation(e.to_string()))?;
        let ann = |k: &str| {
            doc["metadata"]["annotations"][k]
                .as_str()
                .map(str::to_string)
        };
        let public_sha256 = ann(keys::PUBLIC_SHA256).ok_or_else(|| {
            LiveError::Expectation(format!("{} lacks {}", pdir.display(), keys::PUBLIC_SHA256))
        })?;
        let bundle_sha256 = ann(keys::BUNDLE_SHA256).ok_or_else(|| {
            LiveError::Expectation(format!("{} lacks {}", pdir.display(), keys::BUNDLE_SHA256))
        })?;
        let roots = model["phases"][usize::from(phase)]["bundle"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["cert"]["sha256"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let cl = model["clusters"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == cluster))
            .cloned()
            .unwrap_or_default();
        Ok(Self {
            cluster: cluster.to_string(),
            phase,
            ambient: model["mesh"]["dataPlane"] == "ambient",
            secret_name: ctx.secret_name.clone(),
            public_sha256,
            bundle_sha256,
            roots,
            new_skid: cl["newIntermediate"]["subjectKeyId"]
                .as_str()
                .map(str::to_string),
            current_skid: cl["currentIntermediate"]["subjectKeyId"]
                .as_str()
                .map(str::to_string),
            min_soak: ctx.min_soak[usize::from(phase)],
        })
    }
}

fn finding(
    code: &'static str,
    severity: Severity,
    passed: bool,
    subject: &str,
    message: impl Into<String>,
    hint: &str,
    details: Vec<String>,
) -> Finding {
    Finding {
        code,
        severity,
        passed,
        subject: subject.to_string(),
        file: None,
        message: message.into(),
        hint: hint.to_string(),
        details,
    }
}

fn unreadable(code: &'static str, subject: &str, why: &str, hint: &str) -> Finding {
    finding(
        code,
        Severity::Error,
        false,
        subject,
        format!("could not be read: {why}"),
        hint,
        Vec::new(),
    )
}

/// `name=value` env of a container, literal values only.
fn env_of(c: &k8s_openapi::api::core::v1::Container) -> BTreeMap<String, String> {
    c.env
        .iter()
        .flatten()
        .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
        .collect()
}

/// Version from an image reference like `docker.io/istio/proxyv2:1.24.3-distroless`.
pub fn image_version(image: &str) -> Option<IstioVersion> {
    let tag = image.rsplit_once(':')?.1;
    let tag = tag.split(['-', '@']).next()?;
    IstioVersion::parse(tag).filter(|v| v.patch.is_some())
}

/// Known-bad multi-root versions (facts §3.3, §9.5). `component` is `istiod`, `proxy` or `ztunnel`.
pub fn version_problem(component: &str, v: IstioVersion) -> Option<String> {
    let (maj, min, patch) = (v.major, v.minor, v.patch.unwrap_or(0));
    if (maj, min) < (1, 21) && component != "ztunnel" {
        return Some(format!(
            "{component} {} is older than 1.21 (no immediate re-sign on bundle change)",
            String::from(v)
        ));
    }
    if component == "istiod" && matches!((maj, min, patch), (1, 24, 4) | (1, 25, 1)) {
        return Some(format!(
            "istiod {} trusts only the last root of a bundle (istio/istio#55793)",
            String::from(v)
        ));
    }
    if component == "ztunnel" {
        let ok = (maj, min) >= (1, 26)
            || (maj, min) == (1, 25) && patch >= 3
            || (maj, min) == (1, 24) && patch >= 6;
        if !ok {
            return Some(format!(
                "ztunnel {} trusts only the first root of a bundle",
                String::from(v)
            ));
        }
    }
    None
}

fn is_istiod(d: &Deployment) -> bool {
    let labels = d.metadata.labels.clone().unwrap_or_default();
    labels.get("app").is_some_and(|v| v == "istiod")
        || d.metadata
            .name
            .as_deref()
            .is_some_and(|n| n == "istiod" || n.starts_with("istiod-"))
}

/// The kind of an Istio proxy pod, or None when the pod runs no proxy.
pub fn proxy_kind(p: &Pod) -> Option<&'static str> {
    let labels = p.metadata.labels.clone().unwrap_or_default();
    let spec = p.spec.as_ref()?;
    if labels.get("app").is_some_and(|v| v == "ztunnel") {
        return Some("ztunnel");
    }
    let has_proxy = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| c.name == "istio-proxy");
    if !has_proxy {
        return None;
    }
    if labels
        .get("gateway.istio.io/managed")
        .is_some_and(|v| v == "istio.io-mesh-controller")
    {
        return Some("waypoint");
    }
    if labels.contains_key("istio") && labels.get("istio").is_some_and(|v| v.contains("gateway"))
        || labels.contains_key("gateway.networking.k8s.io/gateway-name")
    {
        return Some("gateway");
    }
    Some("sidecar")
}

fn istio_proxy(p: &Pod) -> Option<&k8s_openapi::api::core::v1::Container> {
    let spec = p.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == "istio-proxy")
}

fn pod_id(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.clone().unwrap_or_default(),
        p.metadata.name.clone().unwrap_or_default()
    )
}

fn pem_blocks(bytes: &[u8]) -> Vec<Vec<u8>> {
    pem::parse_many(bytes)
        .map(|v| {
            v.into_iter()
                .filter(|p| p.tag() == "CERTIFICATE")
                .map(|p| p.into_contents())
                .collect()
        })
        .unwrap_or_default()
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

/// Finds the first value under `keys` (camelCase or snake_case) anywhere in `v`.
fn find_key<'a>(v: &'a serde_json::Value, names: &[&str]) -> Option<&'a serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => {
            for n in names {
                if let Some(x) = m.get(*n) {
                    return Some(x);
                }
            }
            m.values().find_map(|x| find_key(x, names))
        }
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_key(x, names)),
        _ => None,
    }
}

/// Bytes of an Envoy DataSource (`inlineBytes` base64 or `inlineString`).
fn data_source(v: &serde_json::Value) -> Option<Vec<u8>> {
    if let Some(s) = v
        .get("inlineBytes")
        .or_else(|| v.get("inline_bytes"))
        .and_then(|x| x.as_str())
    {
        return b64(s);
    }
    v.get("inlineString")
        .or_else(|| v.get("inline_string"))
        .and_then(|x| x.as_str())
        .map(|s| s.as_bytes().to_vec())
}

/// What an Envoy holds: (ROOTCA certs, `default` chain certs), from an admin `config_dump`
/// or `istioctl proxy-config secret -o json`, camelCase or snake_case.
pub fn envoy_secrets(dump: &serde_json::Value) -> Result<(Ders, Ders), String> {
    let active = find_key(dump, &["dynamicActiveSecrets", "dynamic_active_secrets"])
        .and_then(|v| v.as_array())
        .ok_or("no dynamic active secrets in the dump")?;
    let by_name = |name: &str| {
        active
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| &s["secret"])
    };
    let root = by_name("ROOTCA")
        .and_then(|s| {
            s.get("validationContext")
                .or_else(|| s.get("validation_context"))
        })
        .and_then(|vc| vc.get("trustedCa").or_else(|| vc.get("trusted_ca")))
        .and_then(data_source)
        .ok_or("no ROOTCA secret with a trusted CA")?;
    let chain = by_name("default")
        .and_then(|s| s.get("tlsCertificate").or_else(|| s.get("tls_certificate")))
        .and_then(|t| {
            t.get("certificateChain")
                .or_else(|| t.get("certificate_chain"))
        })
        .and_then(data_source)
        .ok_or("no `default` secret with a certificate chain")?;
    Ok((pem_blocks(&root), pem_blocks(&chain)))
}

/// ztunnel identities: (identity, rootCerts, certChain) from its config_dump or
/// `istioctl ztunnel-config certificates -o json`.
pub fn ztunnel_certs(dump: &serde_json::Value) -> Result<Vec<(String, Ders, Ders)>, String> {
    let certs = if dump.is_array() {
        Some(dump)
    } else {
        find_key(dump, &["certificates"])
    };
    let certs = certs
        .and_then(|c| c.as_array())
        .ok_or("no certificates in the ztunnel dump")?;
    let list = |v: &serde_json::Value| -> Vec<Vec<u8>> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["pem"].as_str().and_then(b64))
                    .flat_map(|p| pem_blocks(&p))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(certs
        .iter()
        .map(|c| {
            let chain = list(
                c.get("certChain")
                    .or_else(|| c.get("cert_chain"))
                    .unwrap_or(&serde_json::Value::Null),
            );
            let roots = list(
                c.get("rootCerts")
                    .or_else(|| c.get("root_certs"))
                    .unwrap_or(&serde_json::Value::Null),
            );
            (
                c["identity"].as_str().unwrap_or("?").to_string(),
                roots,
                chain,
            )
        })
        .collect())
}

fn sha_set(ders: &[Vec<u8>]) -> BTreeSet<String> {
    ders.iter().map(|d| pki::sha256_hex(d)).collect()
}

/// Judges a snapshot against the expectation.
pub fn gates(s: &Snapshot, e: &Expectation, now: OffsetDateTime) -> Report {
    let mut r = Report::default();
    let c = e.cluster.as_str();
    let ns = s.istio_namespace.as_str();
    let fix =
        |code: &str, live: &'static str| s.unread_hints.get(code).map_or(live, String::as_str);
    let unreadable =
        |code, subject: &str, why: &str, hint| unreadable(code, subject, why, fix(code, hint));

    // Prerequisites: istiod.
    match &s.deployments {
        Err(why) => r.push(unreadable(
            "prereq-multiroot",
            c,
            why,
            "grant get/list on deployments in the Istio namespace",
        )),
        Ok(deps) => {
            let istiods: Vec<&Deployment> = deps.iter().filter(|d| is_istiod(d)).collect();
            let mut missing = Vec::new();
            let mut bad_versions = Vec::new();
            for d in &istiods {
                let name = d.metadata.name.clone().unwrap_or_default();
                let containers = d
                    .spec
                    .template
                    .spec
                    .as_ref()
                    .map(|p| p.containers.clone())
                    .unwrap_or_default();
                let discovery = containers
                    .iter()
                    .find(|c| c.name == "discovery")
                    .or(containers.first());
                let env = discovery.map(env_of).unwrap_or_default();
                if env
                    .get("ISTIO_MULTIROOT_MESH")
                    .map(|v| v.eq_ignore_ascii_case("true"))
                    != Some(true)
                {
                    missing.push(name.clone());
                }
                if let Some(v) = discovery
                    .and_then(|c| c.image.as_deref())
                    .and_then(image_version)
                    && let Some(p) = version_problem("istiod", v)
                {
                    bad_versions.push(format!("{name}: {p}"));
                }
            }
            r.push(finding(
                "prereq-multiroot",
                Severity::Error,
                !istiods.is_empty() && missing.is_empty(),
                c,
                if istiods.is_empty() {
                    format!("no istiod Deployment found in {ns}")
                } else if missing.is_empty() {
                    format!("ISTIO_MULTIROOT_MESH=true on {} istiod revision(s)", istiods.len())
                } else {
                    format!("{} of {} istiod revision(s) lack ISTIO_MULTIROOT_MESH=true", missing.len(), istiods.len())
                },
                "set pilot.env.ISTIO_MULTIROOT_MESH=\"true\" (prerequisites/istiod-helm-values.yaml) and roll istiod",
                missing,
            ));
            r.push(finding(
                "prereq-versions",
                Severity::Error,
                bad_versions.is_empty(),
                &format!("{c}/istiod"),
                if bad_versions.is_empty() {
                    "istiod versions support multi-root rotation".to_string()
                } else {
                    bad_versions.join("; ")
                },
                "upgrade istiod (avoid 1.24.4 and 1.25.1; 1.21+ for immediate re-signing)",
                Vec::new(),
            ));
        }
    }
    match &s.istio_configmaps {
        Err(why) => r.push(unreadable(
            "prereq-xds-agent",
            c,
            why,
            "grant get/list on configmaps in the Istio namespace",
        )),
        Ok(cms) => {
            let meshes: Vec<&ConfigMap> = cms
                .iter()
                .filter(|m| {
                    m.metadata.name.as_deref().is_some_and(|n| {
                        n == "istio"
                            || n.starts_with("istio-")
                                && m.data.as_ref().is_some_and(|d| d.contains_key("mesh"))
                    })
                })
                .filter(|m| m.data.as_ref().is_some_and(|d| d.contains_key("mesh")))
                .collect();
            let mut without = Vec::new();
            for m in &meshes {
                let mesh: serde_json::Value = m
                    .data
                    .as_ref()
                    .and_then(|d| d.get("mesh"))
                    .and_then(|t| serde_saphyr::from_str(t).ok())
                    .unwrap_or_default();
                let v = &mesh["defaultConfig"]["proxyMetadata"]["PROXY_CONFIG_XDS_AGENT"];
                if !(v == "true" || v == true) {
                    without.push(m.metadata.name.clone().unwrap_or_default());
                }
            }
            r.push(finding(
                "prereq-xds-agent",
                Severity::Error,
                !meshes.is_empty() && without.is_empty(),
                &format!("{c}/meshconfig"),
                if meshes.is_empty() { format!("no mesh config ConfigMap in {ns}") } else if without.is_empty() { "PROXY_CONFIG_XDS_AGENT=true in meshConfig.defaultConfig.proxyMetadata".into() } else { format!("mesh config {} lacks PROXY_CONFIG_XDS_AGENT=true", without.join(", ")) },
                "set meshConfig.defaultConfig.proxyMetadata.PROXY_CONFIG_XDS_AGENT=\"true\", then restart every proxy once",
                without,
            ));
        }
    }

    // Proxies' env and versions, restarts.
    let applied_at = applied_time(s);
    match &s.pods {
        Err(why) => r.push(unreadable(
            "prereq-xds-agent-pods",
            c,
            why,
            "grant list on pods in every namespace",
        )),
        Ok(pods) => {
            let proxies: Vec<&Pod> = pods
                .iter()
                .filter(|p| matches!(proxy_kind(p), Some(k) if k != "ztunnel"))
                .collect();
            let lacking: Vec<String> = proxies
                .iter()
                .filter(|p| {
                    istio_proxy(p)
                        .map(env_of)
                        .and_then(|e| e.get("PROXY_CONFIG_XDS_AGENT").cloned())
                        .map(|v| v.eq_ignore_ascii_case("true"))
                        != Some(true)
                })
                .map(|p| pod_id(p))
                .collect();
            r.push(finding(
                "prereq-xds-agent-pods",
                Severity::Error,
                lacking.is_empty(),
                c,
                if lacking.is_empty() { format!("all {} proxies run with PROXY_CONFIG_XDS_AGENT=true", proxies.len()) } else { format!("{} of {} proxies lack PROXY_CONFIG_XDS_AGENT=true (started before it was enabled)", lacking.len(), proxies.len()) },
                "restart those workloads once so the injector adds the env (kubectl rollout restart)",
                lacking,
            ));
            let mut bad = Vec::new();
            for p in pods {
                let kind = proxy_kind(p);
                let component = match kind {
                    Some("ztunnel") => "ztunnel",
                    Some(_) => "proxy",
                    None => continue,
                };
                let image = if component == "ztunnel" {
                    p.spec
                        .as_ref()
                        .and_then(|s| s.containers.first())
                        .and_then(|c| c.image.clone())
                } else {
                    istio_proxy(p).and_then(|c| c.image.clone())
                };
                if let Some(v) = image.as_deref().and_then(image_version)
                    && let Some(problem) = version_problem(component, v)
                {
                    bad.push(format!("{}: {problem}", pod_id(p)));
                }
            }
            r.push(finding(
                "prereq-versions",
                Severity::Error,
                bad.is_empty(),
                &format!("{c}/data-plane"),
                if bad.is_empty() {
                    "proxy and ztunnel versions support multi-root rotation".to_string()
                } else {
                    format!(
                        "{} pod(s) run a version that cannot rotate safely",
                        bad.len()
                    )
                },
                "upgrade proxies to 1.21+ and ztunnel to 1.26.0+ (or 1.25.3+/1.24.6+)",
                bad,
            ));
            if let Some(at) = applied_at {
                let restarted: Vec<String> = pods
                    .iter()
                    .filter(|p| proxy_kind(p).is_some())
                    .filter(|p| {
                        p.status
                            .as_ref()
                            .and_then(|st| st.container_statuses.as_ref())
                            .is_some_and(|cs| {
                                cs.iter().any(|c| {
                                    c.restart_count > 0
                                        && c.state
                                            .as_ref()
                                            .and_then(|s| s.running.as_ref())
                                            .and_then(|r| r.started_at.as_ref())
                                            .is_some_and(|t| t.0.as_second() > at.unix_timestamp())
                                })
                            })
                    })
                    .map(pod_id)
                    .collect();
                r.push(finding(
                    "no-restart",
                    Severity::Warning,
                    restarted.is_empty(),
                    c,
                    if restarted.is_empty() { "no proxy container restarted since the phase was applied".to_string() } else { format!("{} proxy pod(s) restarted since the phase was applied", restarted.len()) },
                    "look at why they restarted: a rotation should not need restarts (except ztunnel in ambient)",
                    restarted,
                ));
            }
        }
    }

    // The cacerts Secret.
    match &s.secret {
        None => {}
        Some(Err(why)) => r.push(unreadable(
            "live-secret-phase",
            c,
            why,
            "grant get on the cacerts Secret, or pass --no-secret-read",
        )),
        Some(Ok(None)) => r.push(finding(
            "live-secret-phase",
            Severity::Error,
            false,
            c,
            format!("Secret {ns}/{} does not exist", e.secret_name),
            "apply the phase (Flux/Argo CD) before verifying",
            Vec::new(),
        )),
        Some(Ok(Some(sec))) => {
            let labels = sec.metadata.labels.clone().unwrap_or_default();
            let ann = sec.metadata.annotations.clone().unwrap_or_default();
            let phase_label = labels.get(keys::PHASE).cloned().unwrap_or_default();
            let fp = ann.get(keys::PUBLIC_SHA256).cloned().unwrap_or_default();
            let data = sec.data.clone().unwrap_or_default();
            let public: Vec<(&str, &[u8])> = data
                .iter()
                .filter(|(k, _)| !k.ends_with("key.pem") && k.as_str() != "tls.key")
                .map(|(k, v)| (k.as_str(), v.0.as_slice()))
                .collect();
            let computed =
                (!public.is_empty()).then(|| render::public_fingerprint(public.into_iter()));
            let mut problems = Vec::new();
            if phase_label != e.phase.to_string() {
                problems.push(format!(
                    "label says phase {phase_label:?}, expected {}",
                    e.phase
                ));
            }
            if fp != e.public_sha256 {
                problems.push("public-content annotation differs from the rendered phase".into());
            }
            if let Some(c) = &computed
                && *c != e.public_sha256
            {
                problems.push("the Secret's certificates differ from the rendered phase".into());
            }
            if data.contains_key("istio-generated") {
                problems.push("has `istio-generated`".into());
            }
            r.push(finding(
                "live-secret-phase",
                Severity::Error,
                problems.is_empty(),
                c,
                if problems.is_empty() {
                    format!("{ns}/{} is phase {}", e.secret_name, phase_dir(e.phase))
                } else {
                    problems.join("; ")
                },
                "wait for Flux/Argo CD to apply the phase, or check the pointer",
                Vec::new(),
            ));
        }
    }

    // istio-ca-root-cert in every namespace, and webhooks.
    match &s.root_configmaps {
        Err(why) => r.push(unreadable(
            "root-configmap",
            c,
            why,
            "grant list on configmaps in every namespace",
        )),
        Ok(cms) => {
            let mut stale = Vec::new();
            for m in cms {
                let bytes = m
                    .data
                    .as_ref()
                    .and_then(|d| d.get("root-cert.pem"))
                    .map(|s| s.as_bytes().to_vec())
                    .unwrap_or_default();
                if pki::sha256_hex(&bytes) != e.bundle_sha256 {
                    stale.push(m.metadata.namespace.clone().unwrap_or_default());
                }
            }
            r.push(finding(
                "root-configmap",
                Severity::Error,
                !cms.is_empty() && stale.is_empty(),
                c,
                if cms.is_empty() { "no istio-ca-root-cert ConfigMap found".to_string() } else if stale.is_empty() { format!("istio-ca-root-cert holds the phase's exact bundle in all {} namespaces", cms.len()) } else { format!("{} of {} namespaces still hold another bundle", stale.len(), cms.len()) },
                "istiod rewrites these after it reloads cacerts: check istiod logs for \"Updating new ROOT-CA not supported\"",
                stale,
            ));
        }
    }
    let mut bundles: Vec<(String, Vec<u8>)> = Vec::new();
    let mut webhook_err = None;
    match &s.mutating_webhooks {
        Err(why) => webhook_err = Some(why.clone()),
        Ok(list) => {
            for w in list.iter().filter(|w| {
                w.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.contains("istio"))
            }) {
                for h in w.webhooks.iter().flatten() {
                    if let Some(b) = &h.client_config.ca_bundle {
                        bundles.push((
                            format!("{}/{}", w.metadata.name.clone().unwrap_or_default(), h.name),
                            b.0.clone(),
                        ));
                    }
                }
            }
        }
    }
    match &s.validating_webhooks {
        Err(why) => webhook_err = Some(why.clone()),
        Ok(list) => {
            for w in list.iter().filter(|w| {
                w.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.contains("istio"))
            }) {
                for h in w.webhooks.iter().flatten() {
                    if let Some(b) = &h.client_config.ca_bundle {
                        bundles.push((
                            format!("{}/{}", w.metadata.name.clone().unwrap_or_default(), h.name),
                            b.0.clone(),
                        ));
                    }
                }
            }
        }
    }
    match webhook_err {
        Some(why) => r.push(unreadable(
            "webhook-ca-bundle",
            c,
            &why,
            "grant list on mutating/validating webhook configurations",
        )),
        None => {
            let lacking: Vec<String> = bundles
                .iter()
                .filter(|(_, b)| !e.roots.is_subset(&sha_set(&pem_blocks(b))))
                .map(|(n, _)| n.clone())
                .collect();
            r.push(finding(
                "webhook-ca-bundle",
                Severity::Error,
                lacking.is_empty(),
                c,
                if lacking.is_empty() {
                    format!(
                        "{} Istio webhook caBundle(s) contain the phase's roots",
                        bundles.len()
                    )
                } else {
                    format!(
                        "{} webhook caBundle(s) lack a root of the phase",
                        lacking.len()
                    )
                },
                "istiod patches webhook caBundles after reloading; check its logs and RBAC",
                lacking,
            ));
        }
    }

    // Envoys and ztunnels.
    let envoys: Vec<&ProxyDump> = s.proxies.iter().filter(|p| p.kind != "ztunnel").collect();
    let mut unread = Vec::new();
    let mut trust_lag = Vec::new();
    let mut leaf_lag = Vec::new();
    for p in &envoys {
        let id = format!("{}/{} ({})", p.namespace, p.pod, p.kind);
        let parsed = p
            .dump
            .as_ref()
            .map_err(Clone::clone)
            .and_then(envoy_secrets);
        match parsed {
            Err(why) => unread.push(format!("{id}: {why}")),
            Ok((roots, chain)) => {
                if sha_set(&roots) != e.roots {
                    trust_lag.push(id.clone());
                }
                if e.phase >= 3 {
                    let akid = chain
                        .first()
                        .and_then(|l| pki::inspect_der(l).ok())
                        .and_then(|s| s.authority_key_id);
                    if akid.is_none() || akid != e.new_skid {
                        leaf_lag.push(id);
                    }
                }
            }
        }
    }
    let n = envoys.len();
    r.push(finding(
        "proxy-readable",
        Severity::Error,
        unread.is_empty(),
        c,
        if unread.is_empty() {
            format!("read the secrets of all {n} Envoy proxies")
        } else {
            format!("{} of {n} proxies could not be read", unread.len())
        },
        fix(
            "proxy-readable",
            "grant create on pods/portforward, and check the pods are running (admin port 15000)",
        ),
        unread,
    ));
    r.push(finding(
        "proxy-trusts-roots",
        Severity::Error,
        trust_lag.is_empty(),
        c,
        if trust_lag.is_empty() {
            format!("all {n} Envoy ROOTCA hold exactly the phase's roots")
        } else {
            format!(
                "{} of {n} proxies do not trust exactly the phase's roots",
                trust_lag.len()
            )
        },
        "check PROXY_CONFIG_XDS_AGENT on those pods, or restart them",
        trust_lag,
    ));
    if e.phase >= 3 {
        r.push(finding(
            "proxy-leaf-new-issuer",
            Severity::Error,
            leaf_lag.is_empty(),
            c,
            if leaf_lag.is_empty() { format!("all {n} proxies present leaves from the new intermediate") } else { format!("{} of {n} proxies still present leaves from intermediate A", leaf_lag.len()) },
            "wait for the re-sign (seconds with PROXY_CONFIG_XDS_AGENT), or restart those pods; never finalize before this passes",
            leaf_lag,
        ));
    }
    if e.ambient {
        let zs: Vec<&ProxyDump> = s.proxies.iter().filter(|p| p.kind == "ztunnel").collect();
        let mut unread = Vec::new();
        let mut trust_lag = Vec::new();
        let mut leaf_lag = Vec::new();
        let mut identities = 0;
        for z in &zs {
            match z
                .dump
                .as_ref()
                .map_err(Clone::clone)
                .and_then(ztunnel_certs)
            {
                Err(why) => unread.push(format!("{}/{}: {why}", z.namespace, z.pod)),
                Ok(certs) => {
                    for (identity, roots, chain) in certs {
                        identities += 1;
                        let id = format!("{}/{} {identity}", z.namespace, z.pod);
                        if !e.roots.is_subset(&sha_set(&roots))
                            || e.phase == 4 && sha_set(&roots) != e.roots
                        {
                            trust_lag.push(id.clone());
                        }
                        if e.phase >= 3 {
                            let akid = chain
                                .first()
                                .and_then(|l| pki::inspect_der(l).ok())
                                .and_then(|s| s.authority_key_id);
                            if akid.is_none() || akid != e.new_skid {
                                leaf_lag.push(id);
                            }
                        }
                    }
                }
            }
        }
        let restart = "kubectl rollout restart daemonset/ztunnel -n ".to_string() + ns;
        r.push(finding(
            "ztunnel-readable",
            Severity::Error,
            !zs.is_empty() && unread.is_empty(),
            c,
            if zs.is_empty() {
                "no ztunnel pod found in an ambient mesh".to_string()
            } else if unread.is_empty() {
                format!("read {identities} identities from {} ztunnel(s)", zs.len())
            } else {
                format!(
                    "{} of {} ztunnels could not be read",
                    unread.len(),
                    zs.len()
                )
            },
            fix(
                "ztunnel-readable",
                "grant create on pods/portforward for the ztunnel pods",
            ),
            unread,
        ));
        r.push(finding(
            "ztunnel-trusts-new-root",
            Severity::Error,
            trust_lag.is_empty(),
            c,
            if trust_lag.is_empty() { format!("all {identities} ztunnel identities trust the phase's roots") } else { format!("{} of {identities} ztunnel identities lag (ztunnel learns roots only when a certificate renews)", trust_lag.len()) },
            &format!("restart ztunnel ({restart}) or wait half the workload cert TTL"),
            trust_lag,
        ));
        if e.phase >= 3 {
            r.push(finding(
                "ztunnel-leaf-new-issuer",
                Severity::Error,
                leaf_lag.is_empty(),
                c,
                if leaf_lag.is_empty() { format!("all {identities} ztunnel identities hold leaves from the new intermediate") } else { format!("{} of {identities} ztunnel identities still hold leaves from intermediate A", leaf_lag.len()) },
                &format!("restart ztunnel ({restart}) or wait half the workload cert TTL before phase 4"),
                leaf_lag,
            ));
        }
    }

    // Soak time.
    match applied_at {
        None => r.push(finding("soak-time", Severity::Error, false, c, "cannot tell when the phase was applied (no managedFields time on the Secret or ConfigMaps)", "read access to the cacerts Secret or istio-ca-root-cert metadata is needed", Vec::new())),
        Some(at) => {
            let elapsed = Span::from_secs((now - at).whole_seconds().max(0) as u64);
            let ok = elapsed >= e.min_soak;
            r.push(finding(
                "soak-time",
                Severity::Error,
                ok,
                c,
                format!("{elapsed} since the phase was applied; minimum soak {}", e.min_soak),
                &format!("wait {} more before promoting", Span::from_secs(e.min_soak.as_secs().saturating_sub(elapsed.as_secs()))),
                Vec::new(),
            ));
        }
    }
    r
}

fn latest_managed(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<i64> {
    let managed = meta
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.time.as_ref())
        .map(|t| t.0.as_second())
        .max();
    managed.or_else(|| meta.creation_timestamp.as_ref().map(|t| t.0.as_second()))
}

/// When the phase was applied: the Secret's last managed-fields time, else the newest
/// istio-ca-root-cert write (istiod writes it right after reloading).
fn applied_time(s: &Snapshot) -> Option<OffsetDateTime> {
    let secs = match &s.secret {
        Some(Ok(Some(sec))) => latest_managed(&sec.metadata),
        _ => s
            .root_configmaps
            .as_ref()
            .ok()
            .and_then(|cms| cms.iter().filter_map(|m| latest_managed(&m.metadata)).max()),
    }?;
    OffsetDateTime::from_unix_timestamp(secs).ok()
}
