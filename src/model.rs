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

/// The phases of the intermediate-only rotation ([`Strategy::Intermediates`]): today's
/// intermediate with today's bundle A, the new intermediate with A+A (new bytes, the same
/// roots: every proxy re-signs at once, facts §2), and back to A (the steady state).
pub const INTERMEDIATE_PHASES: [(u8, &str); 4] = [
    (0, "prerequisites"),
    (1, "current"),
    (2, "new-intermediate"),
    (3, "settled"),
];

/// What a rollout rotates (`spec.strategy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The root and every intermediate: phases 1–4 of DESIGN.md (A → A+B → A+B+B → B).
    #[default]
    Roots,
    /// Only the selected clusters' intermediates, under the unchanged root: A → A+A → A.
    Intermediates,
}

impl Strategy {
    /// Every phase (number, name), phase 0 first.
    pub fn phases(self) -> &'static [(u8, &'static str)] {
        match self {
            Self::Roots => &PHASES,
            Self::Intermediates => &INTERMEDIATE_PHASES,
        }
    }
    /// The last phase: 4 for a root rotation, 3 for an intermediate-only one.
    pub fn last(self) -> u8 {
        match self {
            Self::Roots => 4,
            Self::Intermediates => 3,
        }
    }
    /// Phases 1 to [`Self::last`].
    pub fn numbers(self) -> std::ops::RangeInclusive<u8> {
        1..=self.last()
    }
    /// `true` for the root rotation, which `rollout.json` does not name (older renders).
    pub fn is_default(&self) -> bool {
        *self == Self::Roots
    }
    /// The name a plan uses in `spec.strategy`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Roots => "roots",
            Self::Intermediates => "intermediates",
        }
    }
}

/// Directory name of a rendered phase (`2-trust-both`, `2-new-intermediate`).
pub fn phase_dir(strategy: Strategy, number: u8) -> String {
    let name = strategy
        .phases()
        .get(usize::from(number))
        .map_or("unknown", |p| p.1);
    format!("{number}-{name}")
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
    /// What the rollout rotates; not written for a root rotation, so renders made before it
    /// existed read the same.
    #[serde(default, skip_serializing_if = "Strategy::is_default")]
    pub strategy: Strategy,
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
    /// Clusters of the plan an intermediate-only rotation leaves alone (`spec.rotate`): they
    /// keep their intermediate and get no phase tree. Empty (and not written) otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_rotated: Vec<String>,
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

/// The bytes of `root-cert.pem` in each phase 1 to [`Strategy::last`] (index 0 = phase 1):
/// A, A+B, A+B+B, B for a root rotation; A, A+A, A for an intermediate-only one.
pub fn bundles(m: &Materials, strategy: Strategy) -> Vec<Vec<u8>> {
    let append = |head: &[u8], tail: &[u8]| {
        let mut v = head.to_vec();
        if !v.ends_with(b"\n") {
            v.push(b'\n');
        }
        v.extend_from_slice(tail);
        v
    };
    let a = m.current_bundle.clone();
    match strategy {
        Strategy::Roots => {
            let b = m.new_bundle.clone();
            let ab = append(&a, &b);
            let abb = append(&ab, &b);
            vec![a, ab, abb, b]
        }
        // A+A byte-contains A and A is contained in A+A: both reload rules accept both steps
        // (facts §1.5), and the bytes change twice, so istiod pushes the bundle (facts §2).
        Strategy::Intermediates => {
            let aa = append(&a, &a);
            vec![a.clone(), aa, a]
        }
    }
}

impl Strategy {
    /// The phase in which the new intermediate starts signing: 3 (roots) or 2
    /// (intermediates). In ambient it soaks a whole workload TTL unless every ztunnel proves
    /// it re-signed (istio-2026 §2).
    pub fn switch_phase(self) -> u8 {
        match self {
            Self::Roots => 3,
            Self::Intermediates => 2,
        }
    }
    /// Which intermediate signs in phase `n` ≥ 1: the new one from phase 3 (roots) or
    /// phase 2 (intermediates) on.
    pub fn issuer(self, n: u8) -> Issuer {
        if n >= self.switch_phase() {
            Issuer::New
        } else {
            Issuer::Current
        }
    }
}

/// The signer of a cluster in phase `n` ≥ 1.
pub fn signer_for(
    strategy: Strategy,
    phase: u8,
    current: &Signer,
    new: &Signer,
) -> (Issuer, Signer) {
    match strategy.issuer(phase) {
        Issuer::New => (Issuer::New, new.clone()),
        Issuer::Current => (Issuer::Current, current.clone()),
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
    /// The phase where the issuer switches (phase 3, or phase 2 of an intermediate-only
    /// rotation): every leaf re-signed by the new intermediate. In ambient, a whole workload
    /// TTL plus the margin: `verify live` accepts `fast` instead once every ztunnel identity
    /// is proven issued by the new intermediate.
    pub switch_issuer: Span,
    /// Istio 1.21+ re-signs every leaf as soon as the bundle changes.
    pub immediate_resign: bool,
}

impl Soaks {
    /// The shortest possible rotation: the soaks of phases 1–3 (the `min_total` of a rollout).
    pub fn min_total(self) -> Span {
        self.fast + self.trust_both + self.switch_issuer
    }
    /// The shortest possible rotation of `strategy`: every phase's soak but the last one's.
    /// An intermediate-only rotation's phase 2 is a switch of issuer, so it soaks as phase 3
    /// of a root rotation does (facts §4.3).
    pub fn min_total_for(self, strategy: Strategy) -> Span {
        match strategy {
            Strategy::Roots => self.min_total(),
            Strategy::Intermediates => self.fast + self.switch_issuer,
        }
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

    let bundle_views = bundle_views(plan.strategy, &current_roots, &new_root);
    let bytes = materials.map(|m| bundles(m, plan.strategy));

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

    // Each phase: who signs, why, how the bundle relates to the previous one, the soak.
    let steps = match plan.strategy {
        Strategy::Roots => vec![
            (
                "GitOps takes ownership of cacerts with today's exact bytes: nothing changes in the mesh",
                None,
                "phase-1",
                "A",
                fast,
            ),
            (
                "every workload learns B while leaves still come from A's intermediate",
                Some("root B appended after A's exact bytes (A is a prefix)"),
                "A+B",
                "A and B",
                p2_soak,
            ),
            (
                "istiod signs with B's intermediate and every workload re-signs now",
                Some("B appended again: same root set, different bytes (A+B is a prefix)"),
                "A+B+B",
                "A and B",
                p3_soak,
            ),
            (
                "A is removed once no live leaf chains to it",
                Some("only B remains; its bytes appear verbatim in the previous bundle"),
                "B-only",
                "B",
                fast,
            ),
        ],
        // facts §2 item 5: istiod loads a new ca-cert/ca-key even when root-cert.pem is
        // unchanged, but only a change of the bundle bytes makes it push PCDS, and only that
        // push makes every agent re-sign at once (facts §2 items 1–3, Istio ≥ 1.21). Old leaves
        // chain to the same root throughout: nothing is stranded, so the new intermediate
        // only has to be proven in use before the old one is retired.
        Strategy::Intermediates => vec![
            (
                "GitOps takes ownership of cacerts with today's exact bytes: nothing changes in the mesh",
                None,
                "phase-1",
                "A",
                fast,
            ),
            (
                "istiod signs with the new intermediate and every workload re-signs now: the bundle becomes A+A, the same root with new bytes, so istiod pushes it and every connected proxy asks for a new leaf",
                Some("A appended again: the same roots, different bytes (A is a prefix)"),
                "A+A",
                "A",
                p3_soak,
            ),
            (
                "back to today's bundle A: the steady state, signed by the new intermediate; the old intermediate is retired",
                Some("A again; its bytes appear verbatim in the previous bundle"),
                "A",
                "A",
                fast,
            ),
        ],
    };
    for (i, (why, relation_text, bundle, roots, min_soak)) in steps.into_iter().enumerate() {
        let n = u8::try_from(i + 1).expect("at most four phases");
        phases.push(Phase {
            number: n,
            name: plan.strategy.phases()[usize::from(n)].1.into(),
            signer: Some(plan.strategy.issuer(n)),
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

    let min_total = soak.min_total_for(plan.strategy);
    Rollout {
        format_version: ROLLOUT_FORMAT_VERSION,
        plan: plan.name.clone(),
        strategy: plan.strategy,
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
        not_rotated: plan.not_rotated.clone(),
    }
}

/// The ambient soak rule of the phase where the issuer switches (istio-2026 §2), after a note's
/// first clause: `issuer` names the intermediate every ztunnel must be proven to hold.
fn ztunnel_proof_note(soak: &Soaks, issuer: &str) -> String {
    format!(
        "; `verify live` passes soak-time after {} once it proves every ztunnel identity issued by {issuer} (ztunnel-leaf-new-issuer), otherwise only after the whole workload TTL plus the margin, {}; `promote` counts that whole soak from Git, so promoting on the proof earlier takes `--force` (recorded in the commit)",
        soak.fast, soak.switch_issuer
    )
}

/// What an operator must know about phase `n` beyond its gates.
fn phase_notes(plan: &Plan, n: u8, soak: &Soaks) -> Vec<String> {
    let ambient = plan.mesh.data_plane == DataPlane::Ambient;
    let ns = &plan.mesh.istio_namespace;
    let mut notes = Vec::new();
    if plan.strategy == Strategy::Intermediates {
        match n {
            2 => {
                notes.push("root-cert.pem becomes A+A: the same root, new bytes, so istiod pushes the bundle and every connected proxy re-signs its leaf from the new intermediate at once; leaves of the old intermediate stay valid (same root) until they renew".to_string());
                if ambient {
                    notes.push(format!(
                        "ambient: ztunnel has no bundle push and re-issues at half-life only — restart the ztunnel DaemonSet (`kubectl rollout restart daemonset/ztunnel -n {ns}`) after this phase is applied{}",
                        ztunnel_proof_note(soak, "the new intermediate")
                    ));
                }
                if !soak.immediate_resign {
                    notes.push("Istio < 1.21 does not re-sign on a bundle change: leaves move to the new intermediate only at natural rotation, hence the longer soak".into());
                }
            }
            3 => notes.push("root-cert.pem is A again (contained in A+A): the bytes change once more, so proxies re-sign again, from the same new intermediate; the old intermediate can now be revoked or destroyed".into()),
            _ => {}
        }
        return notes;
    }
    match n {
        2 if ambient => notes.push(format!(
            "ambient: ztunnel learns roots only when a certificate renews (~half of {}) — run `kubectl rollout restart daemonset/ztunnel -n {ns}` after this phase is applied, or wait the full soak",
            plan.timing.workload_cert_ttl
        )),
        3 => {
            notes.push("root-cert.pem becomes A+B+B: the same roots, new bytes, so istiod pushes the bundle and every connected proxy re-signs its leaf from B's intermediate at once".to_string());
            if ambient {
                notes.push(format!(
                    "ambient: ztunnel has no PCDS and re-issues at half-life only, so A+B+B does not move it to B — restart the ztunnel DaemonSet after this phase is applied{}",
                    ztunnel_proof_note(soak, "B's intermediate")
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

/// The bundles of each phase as entries: A, A+B, A+B+B, B (roots) or A, A+A, A
/// (intermediates).
fn bundle_views(
    strategy: Strategy,
    current_roots: &[CertView],
    new_root: &CertView,
) -> Vec<Vec<BundleEntry>> {
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
    match strategy {
        Strategy::Roots => vec![
            a_entries.clone(),
            [a_entries.clone(), vec![b_entry.clone()]].concat(),
            [a_entries.clone(), vec![b_entry.clone(), b_entry.clone()]].concat(),
            vec![b_entry],
        ],
        Strategy::Intermediates => vec![
            a_entries.clone(),
            [a_entries.clone(), a_entries.clone()].concat(),
            a_entries,
        ],
    }
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
        why: match plan.strategy {
            Strategy::Roots => "istiod must hot-reload a new root and proxies must receive bundle pushes (PCDS) before anything changes",
            // facts §2–3: without both flags the A+A byte change pushes nothing, so nobody
            // re-signs before natural rotation.
            Strategy::Intermediates => "proxies must receive bundle pushes (PCDS) before anything changes: only a pushed byte change of the bundle makes them re-sign from the new intermediate at once",
        }
        .into(),
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
    let new_issuer = plan.strategy.issuer(n) == Issuer::New;
    let last_root_phase = plan.strategy == Strategy::Roots && n == 4;
    if new_issuer {
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
            if last_root_phase {
                "every ztunnel identity's rootCerts holds only B".to_string()
            } else {
                format!("every ztunnel identity's rootCerts contains {roots}")
            },
        ));
        if new_issuer {
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
    if ambient && n == plan.strategy.switch_phase() {
        // istio-2026 §2: the ztunnels' own proof shortens the whole-TTL soak.
        let proven = soaks(
            &plan.timing,
            plan.mesh.data_plane,
            plan.mesh.min_istio_version,
        )
        .fast;
        g.push(gate(
            Code::SoakTime,
            format!("at least {soak} since this phase was applied, or {proven} once every ztunnel identity is proven issued by the new intermediate (ztunnel-readable, ztunnel-leaf-new-issuer)"),
        ));
    } else {
        g.push(soak_gate(soak));
    }
    // Only a new root makes old ztunnel's CA client lose istiod (istio-2026.md §2); a new
    // intermediate under the same root does not.
    if ambient && plan.strategy == Strategy::Roots && n == 3 {
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

    /// Directory name of phase `number` of this rollout (`2-trust-both`).
    pub fn phase_dir(&self, number: u8) -> String {
        phase_dir(self.strategy, number)
    }

    /// The last phase (4, or 3 for an intermediate-only rotation).
    pub fn last_phase(&self) -> u8 {
        self.strategy.last()
    }

    /// A phase (0 to [`Self::last_phase`]).
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
        let last = self.strategy.last();
        if numbers != (0..=last).collect::<Vec<u8>>() {
            return Err(format!(
                "`phases` must be phases 0 to {last} in order for strategy {}, found {numbers:?}",
                self.strategy.name()
            ));
        }
        for p in &self.phases {
            if p.name != self.strategy.phases()[usize::from(p.number)].1 {
                return Err(format!(
                    "phase {} is named `{}`; strategy {} names it `{}`",
                    p.number,
                    p.name,
                    self.strategy.name(),
                    self.strategy.phases()[usize::from(p.number)].1
                ));
            }
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
        let intermediates = self.strategy == Strategy::Intermediates;
        if intermediates {
            o.push_str(
                "  strategy intermediates: the root stays; each listed cluster moves to a new intermediate under it\n    (A → A+A → A: the bundle bytes change so every proxy re-signs at once, facts §2; old leaves chain to the same root, so nothing is stranded)\n"
            );
            if !self.not_rotated.is_empty() {
                o.push_str(&format!(
                    "  not rotated (keep their intermediate, get no phase tree): {}\n",
                    self.not_rotated.join(", ")
                ));
            }
        }
        o.push_str("\nroots\n");
        for r in &self.current_roots {
            o.push_str(&format!("  A  {}  [{}]\n", r.subject(), r.short_id()));
        }
        if intermediates {
            o.push_str("  (unchanged: no new root)\n\nclusters (old → new intermediate)\n");
        } else {
            o.push_str(&format!(
                "  B  {}  [{}]\n\nclusters (one intermediate each)\n",
                self.new_root.subject(),
                self.new_root.short_id()
            ));
        }
        let (old_label, new_label) = if intermediates {
            ("old", "new")
        } else {
            ("A", "B")
        };
        for c in &self.clusters {
            o.push_str(&format!(
                "  {}\n    {old_label}: {}  [{}]\n    {new_label}: {}  [{}]\n",
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
                let signer = match (p.signer, intermediates) {
                    (Some(Issuer::New), false) => "B's intermediate",
                    (_, false) => "A's intermediate",
                    (Some(Issuer::New), true) => "the new intermediate",
                    (_, true) => "today's intermediate",
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
            let next = if p.number < self.last_phase() {
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
