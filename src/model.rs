//! The rollout model: what every phase of every cluster holds, why, and what must be true
//! before the next phase. [`compile`] decides everything; `plan` prints it and `render`
//! writes it. No I/O, no clock.

use serde::{Deserialize, Serialize};

use crate::duration::Span;
use crate::gates::Code;
use crate::materials::{Materials, Signer};
use crate::pki::{self, CertSummary, GenerateSpec};
use crate::plan::{DataPlane, IntermediateInput, Plan, RootInput};

/// The phases of the default strategy (DESIGN.md), phase 0 being the prerequisites.
pub const PHASES: [(u8, &str); 5] = [
    (0, "prerequisites"),
    (1, "initial"),
    (2, "trust-both"),
    (3, "switch-issuer"),
    (4, "finalize"),
];

/// Directory name of a rendered phase (`2-trust-both`).
pub fn phase_dir(number: u8) -> String {
    format!("{number}-{}", PHASES[number as usize].1)
}

/// Which intermediate signs workload certificates in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Issuer {
    /// The cluster's current intermediate, under the current root.
    Current,
    /// The cluster's new intermediate, under the new root.
    New,
}

/// A certificate as the plan knows it: inspected when it exists, described when it will be
/// generated at render time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    tag = "state",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
pub enum CertView {
    /// The certificate exists (imported, or generated at an earlier render) and was inspected.
    Known(Box<CertSummary>),
    /// The certificate will be generated at render time.
    Planned {
        /// Key algorithm it will be generated with.
        algorithm: String,
        /// How long it will be valid.
        validity: Span,
        /// Its subject, as the plan gives it.
        subject: String,
    },
}

impl CertView {
    fn planned(spec: &GenerateSpec) -> Self {
        Self::Planned {
            algorithm: spec.algorithm.name().to_string(),
            validity: spec.validity,
            subject: spec.subject.to_string(),
        }
    }
    /// The certificate's subject, known or planned.
    pub fn subject(&self) -> &str {
        match self {
            Self::Known(s) => &s.subject,
            Self::Planned { subject, .. } => subject,
        }
    }
    /// `sha256 abcd…` or `generated at render`.
    pub fn short_id(&self) -> String {
        match self {
            Self::Known(s) => format!("sha256:{}", &s.sha256[..16]),
            Self::Planned { algorithm, .. } => format!("{algorithm}, generated at render"),
        }
    }
}

/// A root bundle entry, in file order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleEntry {
    /// `A` (a current root) or `B` (the new root).
    pub root: RootName,
    /// The certificate of this entry.
    pub cert: CertView,
}

/// Which root a bundle entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootName {
    /// A current root (today's bundle).
    A,
    /// The new root.
    B,
}

impl RootName {
    /// `A` or `B`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
        }
    }
}

/// What the bundle bytes of a phase are compared with the previous phase's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Relation {
    /// How the bundle was built from the previous one.
    pub description: String,
    /// istiod 1.20–1.29: one bundle's bytes contain the other's. `None` until bytes exist.
    pub byte_containment: Option<bool>,
    /// istiod 1.30+: one set of certificates contains the other.
    pub set_relation: Option<bool>,
    /// Whether the bundle's bytes differ from the previous phase's; `None` until bytes exist.
    pub bytes_change: Option<bool>,
}

/// A gate that must pass before the next phase is promoted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseGate {
    /// The gate's catalogue code, shared with `verify`.
    pub code: Code,
    /// What it checks in this phase.
    pub description: String,
}

/// One phase, shared by every cluster (phases run in lockstep).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase {
    /// Phase number, 0 (prerequisites) to 4 (finalize).
    pub number: u8,
    /// Phase name, as in [`PHASES`].
    pub name: String,
    /// Which intermediate signs workloads in this phase; `None` for phase 0.
    pub signer: Option<Issuer>,
    /// The root bundle istiod serves in this phase, in file order.
    pub bundle: Vec<BundleEntry>,
    /// SHA-256 of the bundle's bytes; `None` until the roots exist.
    pub bundle_sha256: Option<String>,
    /// How this phase's bundle relates to the previous phase's; `None` for the first.
    pub relation_to_previous: Option<Relation>,
    /// Why the phase exists, in one sentence for ROLLOUT.md.
    pub why: String,
    /// Minimum time to stay in this phase before promoting the next.
    pub min_soak: Span,
    /// [`Self::min_soak`] in seconds, for readers of `rollout.json`.
    pub min_soak_secs: u64,
    /// Gates that must pass before the next phase is promoted.
    pub gates_before_next: Vec<PhaseGate>,
    /// Operator notes printed with the phase.
    pub notes: Vec<String>,
}

/// One cluster of the rollout and its two intermediates.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// Cluster name, as in the plan.
    pub name: String,
    /// The intermediate that signs workloads in phases 1 and 2.
    pub current_intermediate: CertView,
    /// The intermediate that signs from phase 3 on.
    pub new_intermediate: CertView,
}

/// The version of the rollout file format (`.rootroll/rollout.json`) this build writes and
/// reads. Bump it when a field changes meaning; readers refuse any other version.
pub const ROLLOUT_FORMAT_VERSION: u32 = 1;

/// The whole computed rollout. Written at render as `.rootroll/rollout.json` and read back
/// (typed) by verify, promote and status through [`crate::repo`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// [`ROLLOUT_FORMAT_VERSION`].
    pub format_version: u32,
    /// The plan's `metadata.name`.
    pub plan: String,
    /// The mesh being rotated, as the plan gives it.
    pub mesh: crate::plan::Mesh,
    /// The plan's soak inputs.
    pub timing: crate::plan::Timing,
    /// The plan's controller, repository path and age recipients.
    pub gitops: crate::plan::Gitops,
    /// Every root in today's bundle (A), in file order.
    pub current_roots: Vec<CertView>,
    /// The root the mesh rotates to (B).
    pub new_root: CertView,
    /// Every cluster, in plan order.
    pub clusters: Vec<ClusterView>,
    /// Phases 0–4, in order.
    pub phases: Vec<Phase>,
    /// Sum of the minimum soak times of phases 1–3: the shortest possible rotation.
    pub min_total: Span,
    /// How long new CA material must outlive the earliest end of the rollout. Written only
    /// when it differs from the default, so renders made before it existed read the same.
    #[serde(default, skip_serializing_if = "ValidityFloor::is_default")]
    pub validity_floor: ValidityFloor,
    /// When `verify offline` warns and fails before the next rotation's start-by date
    /// (`spec.rollout.expiry`). Written only when it differs from the default.
    #[serde(default, skip_serializing_if = "ExpiryThresholds::is_default")]
    pub expiry: ExpiryThresholds,
    /// `spec.rollout.waves` as the plan lists them; empty (and not written) when the plan
    /// names none. Read it through [`Rollout::waves`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<Vec<String>>,
}

/// How long before the latest date the next rotation must start `verify offline` warns
/// (`rotation-start-soon`) and fails (`rotation-start-by`). `fail` ≤ `warn` by construction
/// ([`Self::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RawExpiryThresholds")]
pub struct ExpiryThresholds {
    /// Within this span of the start-by date, `rotation-start-soon` warns.
    pub warn: Span,
    /// Within this span of the start-by date, `rotation-start-by` fails.
    pub fail: Span,
}

/// [`ExpiryThresholds`] as a rollout file holds it, before the order is checked.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawExpiryThresholds {
    warn: Span,
    fail: Span,
}

impl TryFrom<RawExpiryThresholds> for ExpiryThresholds {
    type Error = String;
    fn try_from(r: RawExpiryThresholds) -> Result<Self, String> {
        Self::new(r.warn, r.fail)
            .map_err(|(w, f)| format!("expiry: fail {f} is longer than warn {w}"))
    }
}

impl Default for ExpiryThresholds {
    fn default() -> Self {
        Self {
            warn: Span::from_days(90),
            fail: Span::from_days(30),
        }
    }
}

impl ExpiryThresholds {
    /// The thresholds, or both back when `fail` is longer than `warn` (inverted).
    pub fn new(warn: Span, fail: Span) -> Result<Self, (Span, Span)> {
        if fail > warn {
            return Err((warn, fail));
        }
        Ok(Self { warn, fail })
    }
    /// `true` for the default thresholds (90 and 30 days).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// How long the new root and intermediates must stay valid after the earliest possible end
/// of the rollout: less than `fail` fails `validity-floor`, less than `warn` warns
/// (`validity-margin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidityFloor {
    /// Below this remaining validity, `validity-floor` fails.
    pub fail: Span,
    /// Below this remaining validity, `validity-margin` warns.
    pub warn: Span,
}

impl Default for ValidityFloor {
    fn default() -> Self {
        Self {
            fail: Span::from_days(30),
            warn: Span::from_days(90),
        }
    }
}

impl ValidityFloor {
    /// `true` for the default thresholds (30 and 90 days).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The bytes of `root-cert.pem` in each phase 1–4 (index 0 = phase 1).
pub fn bundles(m: &Materials) -> [Vec<u8>; 4] {
    let a = m.current_bundle.clone();
    let mut ab = a.clone();
    if !ab.ends_with(b"\n") {
        ab.push(b'\n');
    }
    let b = m.new_bundle.clone();
    ab.extend_from_slice(&b);
    let mut abb = ab.clone();
    if !abb.ends_with(b"\n") {
        abb.push(b'\n');
    }
    abb.extend_from_slice(&b);
    [a, ab, abb, b]
}

/// The signer of a cluster in a phase 1–4.
pub fn signer_for(phase: u8, current: &Signer, new: &Signer) -> (Issuer, Signer) {
    if phase >= 3 {
        (Issuer::New, new.clone())
    } else {
        (Issuer::Current, current.clone())
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Does istiod 1.20–1.29 accept `new` after `old`? (raw byte containment either way)
pub fn byte_reload_ok(old: &[u8], new: &[u8]) -> bool {
    old == new || contains(old, new) || contains(new, old)
}

/// Does istiod 1.30+ accept `new` after `old`? (DER set subset or superset)
pub fn set_reload_ok(old: &[u8], new: &[u8]) -> bool {
    use std::collections::BTreeSet;
    let (Ok(a), Ok(b)) = (pki::split_certificates(old), pki::split_certificates(new)) else {
        return false;
    };
    let a: BTreeSet<_> = a.into_iter().collect();
    let b: BTreeSet<_> = b.into_iter().collect();
    a.is_subset(&b) || b.is_subset(&a)
}

fn gate(code: Code, description: impl Into<String>) -> PhaseGate {
    PhaseGate {
        code,
        description: description.into(),
    }
}

/// The minimum soak times of the phases, from the timing alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Soaks {
    /// Phases 1 and 4: propagation delay plus safety margin.
    pub fast: Span,
    /// Phase 2 (every workload learns B).
    pub trust_both: Span,
    /// Phase 3 (every leaf re-signed by B's intermediate). In ambient, a whole workload TTL
    /// plus the margin: `verify live` accepts `fast` instead once every ztunnel identity is
    /// proven issued by B's intermediate.
    pub switch_issuer: Span,
    /// Istio 1.21+ re-signs every leaf as soon as the bundle changes.
    pub immediate_resign: bool,
}

impl Soaks {
    /// The shortest possible rotation: the soaks of phases 1–3 (the `min_total` of a rollout).
    pub fn min_total(self) -> Span {
        self.fast + self.trust_both + self.switch_issuer
    }
}

/// How long each phase must soak. Plan validation uses it too: every CA must stay valid
/// through the shortest rotation plus a workload TTL and the margin.
pub fn soaks(
    t: &crate::plan::Timing,
    data_plane: DataPlane,
    min_istio_version: crate::plan::IstioVersion,
) -> Soaks {
    let ambient = data_plane == DataPlane::Ambient;
    let fast = t.propagation_delay + t.safety_margin;
    // Leaves renew at 50% ± 1% of their lifetime (facts §4.2).
    let natural = t.workload_cert_ttl.scaled(51, 100) + t.propagation_delay + t.safety_margin;
    // istio-2026 §2: ztunnel has no PCDS, so A+B+B does not make it re-sign; before root A
    // goes (phase 4) every ztunnel identity must be B-issued. Without that proof from the
    // ztunnels themselves (`verify live`, ztunnel-leaf-new-issuer), only a whole workload TTL
    // plus the margin guarantees it.
    let whole_ttl = t.workload_cert_ttl + t.propagation_delay + t.safety_margin;
    let immediate_resign = min_istio_version
        >= crate::plan::IstioVersion {
            major: 1,
            minor: 21,
            patch: None,
        };
    Soaks {
        fast,
        trust_both: if ambient {
            natural
        } else {
            fast + Span::from_mins(2)
        },
        switch_issuer: if ambient {
            whole_ttl
        } else if !immediate_resign {
            natural
        } else {
            fast
        },
        immediate_resign,
    }
}

/// Computes the rollout. With `materials`, certificates are inspected and bundle relations
/// computed from the real bytes; without, generated certificates are shown as planned.
pub fn compile(plan: &Plan, materials: Option<&Materials>) -> Rollout {
    let t = &plan.timing;
    let soak = soaks(t, plan.mesh.data_plane, plan.mesh.min_istio_version);
    let Soaks {
        fast,
        trust_both: p2_soak,
        switch_issuer: p3_soak,
        ..
    } = soak;

    let (current_roots, new_root, clusters) = cert_views(plan, materials);

    let bundle_views = bundle_views(&current_roots, &new_root);
    let bytes = materials.map(bundles);

    let relation = |n: usize, description: &str| -> Relation {
        match &bytes {
            Some(b) => Relation {
                description: description.to_string(),
                byte_containment: Some(byte_reload_ok(&b[n - 1], &b[n])),
                set_relation: Some(set_reload_ok(&b[n - 1], &b[n])),
                bytes_change: Some(b[n - 1] != b[n]),
            },
            None => Relation {
                description: description.to_string(),
                byte_containment: None,
                set_relation: None,
                bytes_change: None,
            },
        }
    };

    let mut phases = vec![prereq_phase(plan)];

    let live_gates =
        |n: u8, bundle: &str, roots: &str, soak: Span| live_gates(plan, n, bundle, roots, soak);

    // Phases 1–4: who signs, why, how the bundle relates to the previous one, the soak.
    let steps = [
        (
            Issuer::Current,
            "GitOps takes ownership of cacerts with today's exact bytes: nothing changes in the mesh",
            None,
            "phase-1",
            "A",
            fast,
        ),
        (
            Issuer::Current,
            "every workload learns B while leaves still come from A's intermediate",
            Some("root B appended after A's exact bytes (A is a prefix)"),
            "A+B",
            "A and B",
            p2_soak,
        ),
        (
            Issuer::New,
            "istiod signs with B's intermediate and every workload re-signs now",
            Some("B appended again: same root set, different bytes (A+B is a prefix)"),
            "A+B+B",
            "A and B",
            p3_soak,
        ),
        (
            Issuer::New,
            "A is removed once no live leaf chains to it",
            Some("only B remains; its bytes appear verbatim in the previous bundle"),
            "B-only",
            "B",
            fast,
        ),
    ];
    for (i, (signer, why, relation_text, bundle, roots, min_soak)) in steps.into_iter().enumerate()
    {
        let n = u8::try_from(i + 1).expect("four phases");
        phases.push(Phase {
            number: n,
            name: PHASES[usize::from(n)].1.into(),
            signer: Some(signer),
            bundle: bundle_views[i].clone(),
            bundle_sha256: bytes.as_ref().map(|b| pki::sha256_hex(&b[i])),
            relation_to_previous: relation_text.map(|d| relation(i, d)),
            why: why.into(),
            min_soak,
            min_soak_secs: min_soak.as_secs(),
            gates_before_next: live_gates(n, bundle, roots, min_soak),
            notes: phase_notes(plan, n, &soak),
        });
    }

    let min_total = soak.min_total();
    Rollout {
        format_version: ROLLOUT_FORMAT_VERSION,
        plan: plan.name.clone(),
        mesh: plan.mesh.clone(),
        timing: plan.timing.clone(),
        gitops: plan.gitops.clone(),
        current_roots,
        new_root,
        clusters,
        phases,
        min_total,
        validity_floor: ValidityFloor::default(),
        expiry: plan.expiry,
        waves: plan.waves.clone(),
    }
}

/// What an operator must know about phase `n` beyond its gates.
fn phase_notes(plan: &Plan, n: u8, soak: &Soaks) -> Vec<String> {
    let ambient = plan.mesh.data_plane == DataPlane::Ambient;
    let ns = &plan.mesh.istio_namespace;
    let mut notes = Vec::new();
    match n {
        2 if ambient => notes.push(format!(
            "ambient: ztunnel learns roots only when a certificate renews (~half of {}) — run `kubectl rollout restart daemonset/ztunnel -n {ns}` after this phase is applied, or wait the full soak",
            plan.timing.workload_cert_ttl
        )),
        3 => {
            notes.push("root-cert.pem becomes A+B+B: the same roots, new bytes, so istiod pushes the bundle and every connected proxy re-signs its leaf from B's intermediate at once".to_string());
            if ambient {
                notes.push(format!(
                    "ambient: ztunnel has no PCDS and re-issues at half-life only, so A+B+B does not move it to B — restart the ztunnel DaemonSet after this phase is applied; phase 4 may follow after {} once `verify live` proves every ztunnel identity issued by B's intermediate (ztunnel-leaf-new-issuer), otherwise only after the whole workload TTL plus the margin, {}",
                    soak.fast, soak.switch_issuer
                ));
                notes.push("ambient: ztunnel below 1.28.6 / 1.29.2 / 1.30.0 must restart after this phase (ztunnel-restarted): its CA client cannot reconnect once istiod serves a certificate from root B, and its certificates go Unavailable".to_string());
            }
            if !soak.immediate_resign {
                notes.push("Istio < 1.21 does not re-sign on a bundle change: leaves move to B only at natural rotation".into());
            }
        }
        4 => notes.push(
            "established connections are not re-validated; only new handshakes need B".into(),
        ),
        _ => {}
    }
    notes
}

/// How the plan's roots and intermediates are shown: inspected when they exist, planned when
/// they will be generated.
fn cert_views(
    plan: &Plan,
    materials: Option<&Materials>,
) -> (Vec<CertView>, CertView, Vec<ClusterView>) {
    let current_roots: Vec<CertView> = match (materials, &plan.current_root) {
        (Some(m), _) => m
            .current_roots
            .iter()
            .filter_map(|d| pki::inspect_der(d).ok())
            .map(|s| CertView::Known(Box::new(s)))
            .collect(),
        (None, RootInput::Import(r)) => r
            .certs
            .iter()
            .filter_map(|d| pki::inspect_der(d).ok())
            .map(|s| CertView::Known(Box::new(s)))
            .collect(),
        (None, RootInput::Generate(spec)) => vec![CertView::planned(spec)],
    };
    let new_root = match (materials, &plan.new_root) {
        (Some(m), _) => CertView::Known(Box::new(m.new_root.summary())),
        (None, RootInput::Import(r)) => CertView::Known(Box::new(r.signer.summary())),
        (None, RootInput::Generate(spec)) => CertView::planned(spec),
    };
    let clusters: Vec<ClusterView> = plan
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let view = |input: &IntermediateInput, known: Option<&Signer>| match (known, input) {
                (Some(s), _) => CertView::Known(Box::new(s.cert.summary())),
                (None, IntermediateInput::Import(imp)) => {
                    CertView::Known(Box::new(imp.cert.summary()))
                }
                (None, IntermediateInput::Generate(spec)) => CertView::planned(spec),
            };
            let cm = materials.map(|m| &m.clusters[i]);
            ClusterView {
                name: c.name.clone(),
                current_intermediate: view(&c.current, cm.map(|m| &m.current)),
                new_intermediate: view(&c.new, cm.map(|m| &m.new)),
            }
        })
        .collect();
    (current_roots, new_root, clusters)
}

/// The bundles of phases 1–4 as entries: A, A+B, A+B+B, B.
fn bundle_views(current_roots: &[CertView], new_root: &CertView) -> [Vec<BundleEntry>; 4] {
    let a_entries: Vec<BundleEntry> = current_roots
        .iter()
        .map(|c| BundleEntry {
            root: RootName::A,
            cert: c.clone(),
        })
        .collect();
    let b_entry = BundleEntry {
        root: RootName::B,
        cert: new_root.clone(),
    };
    [
        a_entries.clone(),
        [a_entries.clone(), vec![b_entry.clone()]].concat(),
        [a_entries.clone(), vec![b_entry.clone(), b_entry.clone()]].concat(),
        vec![b_entry.clone()],
    ]
}

/// Phase 0: the prerequisites and their live gates.
fn prereq_phase(plan: &Plan) -> Phase {
    let ns = &plan.mesh.istio_namespace;
    let ambient = plan.mesh.data_plane == DataPlane::Ambient;
    let mut prereq_gates = vec![
        gate(
            Code::PrereqMultiroot,
            format!(
                "ISTIO_MULTIROOT_MESH=true on every istiod Deployment in {ns} (one istiod rollout)"
            ),
        ),
        gate(
            Code::PrereqXdsAgent,
            "PROXY_CONFIG_XDS_AGENT=true in meshConfig.defaultConfig.proxyMetadata",
        ),
        gate(
            Code::PrereqXdsAgentPods,
            "PROXY_CONFIG_XDS_AGENT=true in the env of every running istio-proxy container (one rollout of every proxy)",
        ),
        gate(
            Code::PrereqVersions,
            format!(
                "istiod and proxies ≥ {} and not 1.24.4 or 1.25.1",
                String::from(plan.mesh.min_istio_version)
            ),
        ),
    ];
    if ambient {
        prereq_gates.push(gate(
            Code::PrereqVersions,
            "ztunnel ≥ 1.24.6 / 1.25.3 / 1.26.0: older ztunnel trusts only the first root of a bundle",
        ));
    }
    Phase {
        number: 0,
        name: PHASES[0].1.into(),
        signer: None,
        bundle: Vec::new(),
        bundle_sha256: None,
        relation_to_previous: None,
        why: "istiod must hot-reload a new root and proxies must receive bundle pushes (PCDS) before anything changes".into(),
        min_soak: Span::default(),
        min_soak_secs: Span::default().as_secs(),
        gates_before_next: prereq_gates,
        notes: vec!["apply prerequisites/ to your Istio installation (Helm values or IstioOperator), then restart istiod and every proxy once".into()],
    }
}

/// What `verify live` checks in phase `n` (src/verify/live), besides phase 0's
/// prerequisites: exactly these codes. `bundle` names the bundle, `roots` its root set.
fn live_gates(plan: &Plan, n: u8, bundle: &str, roots: &str, soak: Span) -> Vec<PhaseGate> {
    let ns = &plan.mesh.istio_namespace;
    let ambient = plan.mesh.data_plane == DataPlane::Ambient;
    let secret_gate = gate(
        Code::LiveSecretPhase,
        format!(
            "the live {}/{} Secret carries this phase's public fingerprint",
            ns, plan.mesh.secret_name
        ),
    );
    let soak_gate = |s: Span| {
        gate(
            Code::SoakTime,
            format!("at least {s} since this phase was applied"),
        )
    };

    let mut g = vec![
        secret_gate.clone(),
        gate(
            Code::RootConfigmap,
            format!(
                "istiod publishes exactly the {bundle} bundle (its root ConfigMaps' bytes, or its ClusterTrustBundle's roots)"
            ),
        ),
        gate(
            Code::WebhookCaBundle,
            format!("the caBundle of every webhook calling istiod contains {roots}"),
        ),
        gate(
            Code::ProxyReadable,
            "every Envoy (sidecar, gateway, waypoint) answers its admin config_dump",
        ),
        gate(
            Code::ProxyTrustsRoots,
            format!("every Envoy ROOTCA holds exactly {roots}"),
        ),
    ];
    if n >= 3 {
        g.push(gate(
            Code::ProxyLeafNewIssuer,
            "every Envoy default certificate is issued by the new intermediate (leaf AKID = new intermediate SKID)",
        ));
    }
    if ambient {
        g.push(gate(
            Code::ZtunnelReadable,
            "every ztunnel answers its admin config_dump",
        ));
        g.push(gate(
            Code::ZtunnelTrustsNewRoot,
            if n == 4 {
                "every ztunnel identity's rootCerts holds only B".to_string()
            } else {
                format!("every ztunnel identity's rootCerts contains {roots}")
            },
        ));
        if n >= 3 {
            g.push(gate(
                Code::ZtunnelLeafNewIssuer,
                "every ztunnel identity's certChain[0] is issued by the new intermediate",
            ));
        }
    }
    g.push(gate(
        Code::NoRestart,
        "no proxy container restarted since this phase was applied (a warning)",
    ));
    if ambient && n == 3 {
        // istio-2026 §2: the ztunnels' own proof shortens the whole-TTL soak.
        let proven = soaks(
            &plan.timing,
            plan.mesh.data_plane,
            plan.mesh.min_istio_version,
        )
        .fast;
        g.push(gate(
            Code::SoakTime,
            format!("at least {soak} since this phase was applied, or {proven} once every ztunnel identity is proven issued by B's intermediate (ztunnel-readable, ztunnel-leaf-new-issuer)"),
        ));
    } else {
        g.push(soak_gate(soak));
    }
    if ambient && n == 3 {
        g.push(gate(
            Code::ZtunnelRestarted,
            "every ztunnel below 1.28.6 / 1.29.2 / 1.30.0 started after this phase was applied",
        ));
    }
    g.push(gate(
        Code::ProxiesVerified,
        "every proxy is an Envoy or ztunnel rootroll reads; agentgateway pods and non-Envoy admin dumps are listed as not verified (a warning)",
    ));
    g
}

impl Rollout {
    /// `true` when the Secret uses the `kubernetes.io/tls` keys.
    pub fn tls_format(&self) -> bool {
        self.mesh.secret_format == crate::plan::SecretFormat::KubernetesTls
    }

    /// A phase (0–4).
    pub fn phase(&self, number: u8) -> Option<&Phase> {
        self.phases.iter().find(|p| p.number == number)
    }

    /// The minimum soak of a phase (0 for a phase that does not exist).
    pub fn min_soak(&self, number: u8) -> Span {
        self.phase(number).map(|p| p.min_soak).unwrap_or_default()
    }

    /// The clusters in promotion order: the plan's waves, or the whole fleet as one wave.
    pub fn waves(&self) -> Vec<Vec<String>> {
        if self.waves.is_empty() {
            vec![self.clusters.iter().map(|c| c.name.clone()).collect()]
        } else {
            self.waves.clone()
        }
    }

    /// The wave (1-based) a cluster is promoted in; `None` for a cluster the rollout does
    /// not list.
    pub fn wave_of(&self, cluster: &str) -> Option<usize> {
        self.waves()
            .iter()
            .position(|w| w.iter().any(|c| c == cluster))
            .map(|i| i + 1)
    }

    /// A cluster of the rollout.
    pub fn cluster(&self, name: &str) -> Option<&ClusterView> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// Checks what the type cannot say: phases 0–4, each once and in order.
    pub fn check_shape(&self) -> Result<(), String> {
        let numbers: Vec<u8> = self.phases.iter().map(|p| p.number).collect();
        if numbers != [0, 1, 2, 3, 4] {
            return Err(format!(
                "`phases` must be phases 0 to 4 in order, found {numbers:?}"
            ));
        }
        if let Some(roles) = &self.gitops.roles {
            roles.check()?;
        }
        Ok(())
    }

    /// The `plan` command's text output.
    pub fn to_text(&self, plan_file: &str) -> String {
        let mut o = String::new();
        let m = &self.mesh;
        o.push_str(&format!("plan {} ({plan_file})\n", self.plan));
        o.push_str(&format!(
            "  mesh     trust domain {}, Secret {}/{} ({} format), {}, Istio ≥ {}\n",
            m.trust_domain,
            m.istio_namespace,
            m.secret_name,
            m.secret_format.name(),
            match m.data_plane {
                DataPlane::Sidecar => "sidecar",
                DataPlane::Ambient => "ambient",
            },
            String::from(m.min_istio_version)
        ));
        o.push_str(&format!(
            "  timing   workload cert TTL {}, propagation {}, margin {}; shortest rotation {}\n",
            self.timing.workload_cert_ttl,
            self.timing.propagation_delay,
            self.timing.safety_margin,
            self.min_total
        ));
        o.push_str(&format!(
            "  gitops   {}\n",
            match self.gitops.engine {
                crate::plan::Engine::Flux => "Flux",
                crate::plan::Engine::Argocd => "Argo CD",
            }
        ));
        // Who can decrypt what (the role form; the shorthand keeps its output).
        if let Some(roles) = &self.gitops.roles {
            o.push_str(&format!(
                "  keys     operators (everything, the key state included): {}\n",
                roles.operators.join(", ")
            ));
            for c in &self.clusters {
                let own = roles.clusters.get(&c.name).map_or(&[][..], Vec::as_slice);
                o.push_str(&format!(
                    "           {} Secrets: the operators and {}\n",
                    c.name,
                    own.join(", ")
                ));
            }
        }
        o.push_str("\nroots\n");
        for r in &self.current_roots {
            o.push_str(&format!("  A  {}  [{}]\n", r.subject(), r.short_id()));
        }
        o.push_str(&format!(
            "  B  {}  [{}]\n\nclusters (one intermediate each)\n",
            self.new_root.subject(),
            self.new_root.short_id()
        ));
        for c in &self.clusters {
            o.push_str(&format!(
                "  {}\n    A: {}  [{}]\n    B: {}  [{}]\n",
                c.name,
                c.current_intermediate.subject(),
                c.current_intermediate.short_id(),
                c.new_intermediate.subject(),
                c.new_intermediate.short_id()
            ));
        }
        if !self.waves.is_empty() {
            o.push_str("\nwaves (promoted in this order)\n");
            for (i, w) in self.waves.iter().enumerate() {
                o.push_str(&format!("  {}  {}\n", i + 1, w.join(", ")));
            }
        }
        for p in &self.phases {
            o.push('\n');
            if p.number == 0 {
                o.push_str(&format!("phase 0 {}\n", p.name));
            } else {
                let bundle: Vec<&str> = p.bundle.iter().map(|e| e.root.as_str()).collect();
                let signer = match p.signer {
                    Some(Issuer::New) => "B's intermediate",
                    _ => "A's intermediate",
                };
                o.push_str(&format!(
                    "phase {} {}: signs with {signer}; root-cert.pem = {}; minimum soak {}\n",
                    p.number,
                    p.name,
                    bundle.join("+"),
                    p.min_soak
                ));
                if let Some(sha) = &p.bundle_sha256 {
                    o.push_str(&format!("  bundle sha256:{}\n", &sha[..16]));
                }
            }
            o.push_str(&format!("  why: {}\n", p.why));
            if let Some(r) = &p.relation_to_previous {
                let verdict = |v: Option<bool>| match v {
                    Some(true) => "accepted",
                    Some(false) => "REJECTED",
                    None => "checked at render",
                };
                o.push_str(&format!(
                    "  from previous: {} (istiod 1.20–1.29 byte rule: {}; 1.30+ set rule: {})\n",
                    r.description,
                    verdict(r.byte_containment),
                    verdict(r.set_relation)
                ));
            }
            for n in &p.notes {
                o.push_str(&format!("  note: {n}\n"));
            }
            let next = if p.number < 4 {
                format!("before phase {}", p.number + 1)
            } else {
                "to finish".into()
            };
            o.push_str(&format!("  gates {next}:\n"));
            for g in &p.gates_before_next {
                o.push_str(&format!("    [{}] {}\n", g.code, g.description));
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_rules() {
        let a = b"AAA\n".to_vec();
        let ab = b"AAA\nBBB\n".to_vec();
        let abb = b"AAA\nBBB\nBBB\n".to_vec();
        let b = b"BBB\n".to_vec();
        assert!(byte_reload_ok(&a, &ab));
        assert!(byte_reload_ok(&ab, &abb));
        assert!(byte_reload_ok(&abb, &b));
        assert!(!byte_reload_ok(b"BBB\nAAA\n", &ab));
    }
}
