//! `RawPlan` → `Plan`: every check, every problem reported at once with its place.
//!
//! Syntax and schema errors (bad YAML, unknown field, wrong type, duplicate key) come from
//! the YAML parser, which stops at the first; everything after parsing is collected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_saphyr::Location;
use time::OffsetDateTime;

use super::raw::{RawCertSource, RawGenerate, RawImport, RawPlan, RawSubject, S};
use super::*;
use crate::model::Strategy;
use crate::pki::{
    self, Algorithm, CaMaterial, GenerateSpec, KeyKind, PrivateKeyPem, Subject, inspect_der,
};

/// Every diagnostic code validation can emit, with what it means. Stable: never renamed.
pub const CODES: &[(&str, &str)] = &[
    (
        "yaml-invalid",
        "the file is not valid YAML or does not match the plan schema",
    ),
    (
        "plan-too-large",
        "the plan file is larger than any real plan",
    ),
    (
        "api-version-unsupported",
        "apiVersion is not rootroll.dev/v1alpha1",
    ),
    ("kind-unsupported", "kind is not RotationPlan"),
    (
        "name-unsafe",
        "a plan or cluster name cannot be used as a path segment and label",
    ),
    ("clusters-empty", "the plan names no cluster"),
    ("cluster-duplicate", "two clusters have the same name"),
    (
        "value-invalid",
        "a field holds a value outside its allowed set",
    ),
    ("duration-invalid", "a duration cannot be parsed"),
    (
        "duration-out-of-range",
        "a timing duration is outside the range rootroll accepts",
    ),
    (
        "validity-out-of-range",
        "a generated CA's validity is shorter than the rollout or ends after X.509's last date (9999-12-31)",
    ),
    (
        "trust-domain-invalid",
        "the trust domain is not a valid SPIFFE trust domain",
    ),
    (
        "istio-version-invalid",
        "minIstioVersion is not major.minor[.patch]",
    ),
    (
        "istio-version-unsupported",
        "the Istio version cannot hot-reload a new root",
    ),
    (
        "istio-version-caveat",
        "the Istio version rotates with known caveats",
    ),
    (
        "ambient-multicluster-shared-root",
        "an ambient mesh of several clusters: every cluster's cacerts must carry every root in use",
    ),
    (
        "cert-source-invalid",
        "a certificate has neither or both of generate and import",
    ),
    (
        "algorithm-unsupported",
        "a key algorithm is not one rootroll generates, or an imported CA's key is one istiod and Envoy cannot use",
    ),
    ("rsa-too-small", "an RSA key is shorter than 2048 bits"),
    (
        "import-crl",
        "an imported CA directory holds a ca-crl.pem, which rootroll does not carry through the phases",
    ),
    (
        "import-unreadable",
        "an imported file is missing or is not usable PEM",
    ),
    (
        "import-key-mismatch",
        "an imported key does not belong to its certificate",
    ),
    (
        "import-not-ca",
        "an imported certificate cannot act as a CA",
    ),
    (
        "import-expired",
        "an imported certificate is expired, not yet valid, or expires before the rollout ends",
    ),
    (
        "import-not-signed-by-root",
        "an imported intermediate is not signed by the plan's root",
    ),
    (
        "roots-new-missing",
        "spec.roots.new is absent and spec.strategy is not `intermediates`",
    ),
    (
        "roots-new-unused",
        "spec.strategy is `intermediates` but spec.roots.new is given",
    ),
    (
        "rotate-cluster-unknown",
        "spec.rotate.clusters names a cluster spec.clusters does not define, or one twice",
    ),
    (
        "rotate-without-intermediates",
        "spec.rotate selects clusters, but only an intermediate-only rotation can leave clusters out",
    ),
    (
        "root-key-missing",
        "intermediates must be generated under a root whose key was not given",
    ),
    (
        "intermediate-outlives-root",
        "an intermediate would stay valid after its root expires",
    ),
    (
        "root-subject-reused",
        "the new root has the same subject as the current root",
    ),
    (
        "recipient-invalid",
        "an age recipient is not an age1… X25519 public key",
    ),
    (
        "secret-format-mismatch",
        "the imported layout differs from the Secret format rendered",
    ),
    (
        "expiry-inverted",
        "spec.rollout.expiry.fail is longer than spec.rollout.expiry.warn",
    ),
    (
        "repo-url-missing",
        "engine argocd needs gitops.repoURL, the repository Argo CD reads the tree from",
    ),
    (
        "wave-cluster-unknown",
        "a wave lists a cluster the plan does not define",
    ),
    (
        "wave-cluster-duplicate",
        "a cluster is listed in more than one wave, or twice in one",
    ),
    (
        "wave-cluster-missing",
        "a cluster of the plan is in no wave",
    ),
    ("wave-empty", "a wave lists no cluster"),
    (
        "recipients-both-forms",
        "spec.gitops gives both ageRecipients and the role form (recipients, operators)",
    ),
    (
        "recipient-unknown",
        "a role names a recipient that spec.gitops.recipients does not list",
    ),
    (
        "recipient-unused",
        "a recipient of spec.gitops.recipients is listed in no role",
    ),
    (
        "recipient-duplicate",
        "one age key is listed under two names",
    ),
    (
        "operators-empty",
        "the role form names no operator, so the key state would be readable by no one",
    ),
    (
        "cluster-recipients-missing",
        "in the role form, a cluster names none of its own recipients",
    ),
];

struct Ctx<'a> {
    d: Diagnostics,
    base: PathBuf,
    now: OffsetDateTime,
    _file: &'a Path,
    /// How long every CA must stay valid from now; `None` while the timing is invalid.
    rollout: Option<RolloutNeed>,
    /// `spec.strategy`, once read: which root signs the new intermediates.
    strategy: Strategy,
}

/// What the rollout asks of every CA: to stay valid through the shortest rotation
/// (`model::soaks`, as `plan` prints it), then one workload TTL (the last leaves it signed)
/// and the safety margin. `verify offline`'s validity-window gate checks the same span.
#[derive(Clone, Copy)]
struct RolloutNeed {
    min_total: Span,
    ttl: Span,
    margin: Span,
}

impl RolloutNeed {
    fn total(self) -> Span {
        self.min_total + self.ttl + self.margin
    }
    fn explain(self) -> String {
        format!(
            "the shortest rotation {} + workloadCertTTL {} + safetyMargin {}",
            self.min_total, self.ttl, self.margin
        )
    }
}

/// The last instant an X.509 certificate can name (GeneralizedTime ends with year 9999).
const X509_END: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59 UTC);

/// The range a timing field accepts, and why.
struct Bounds {
    min: Span,
    max: Span,
    why: &'static str,
}

const TTL_BOUNDS: Bounds = Bounds {
    min: Span::from_mins(1),
    max: Span::from_days(90),
    why: "istiod signs workload certificates for at most 90d (MAX_WORKLOAD_CERT_TTL)",
};
const DELAY_BOUNDS: Bounds = Bounds {
    min: Span::from_secs(10),
    max: Span::from_days(1),
    why: "kubelet projects a changed Secret within a minute or two, istiod reloads in seconds",
};
const MARGIN_BOUNDS: Bounds = Bounds {
    min: Span::from_mins(1),
    max: Span::from_days(7),
    why: "it is added to every phase's soak time",
};

fn loc<T>(s: &S<T>) -> Location {
    s.referenced
}

/// DNS-1123 label: what Kubernetes accepts as a name and what is safe as a path segment.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn choice<T: Copy>(
    ctx: &mut Ctx<'_>,
    field: &str,
    value: &Option<S<String>>,
    default: T,
    allowed: &[(&str, T)],
) -> T {
    let Some(v) = value else { return default };
    match allowed.iter().find(|(name, _)| *name == v.value) {
        Some((_, t)) => *t,
        None => {
            let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
            ctx.d.error(
                "value-invalid",
                loc(v),
                format!("{field} `{}` is not one of: {}", v.value, names.join(", ")),
                format!("set {field} to one of: {}", names.join(", ")),
            );
            default
        }
    }
}

/// A timing field: parsed, then held to `bounds`. `None` when it is unusable (reported).
fn timing_span(
    ctx: &mut Ctx<'_>,
    field: &str,
    value: &Option<S<String>>,
    default: Span,
    bounds: &Bounds,
) -> Option<Span> {
    let Some(v) = value else {
        return Some(default);
    };
    let parsed = span(ctx, field, value, default)?;
    if parsed < bounds.min || parsed > bounds.max {
        ctx.d.error(
            "duration-out-of-range",
            loc(v),
            format!(
                "{field} {parsed} is {} {}",
                if parsed < bounds.min {
                    "shorter than"
                } else {
                    "longer than"
                },
                if parsed < bounds.min {
                    bounds.min
                } else {
                    bounds.max
                }
            ),
            format!(
                "set {field} between {} and {}: {}",
                bounds.min, bounds.max, bounds.why
            ),
        );
        return None;
    }
    Some(parsed)
}

/// Parses a duration field; `None` when it cannot be parsed (reported).
fn span(ctx: &mut Ctx<'_>, field: &str, value: &Option<S<String>>, default: Span) -> Option<Span> {
    let Some(v) = value else {
        return Some(default);
    };
    match Span::parse(&v.value) {
        Ok(s) => Some(s),
        Err(why) => {
            ctx.d.error(
                "duration-invalid",
                loc(v),
                format!("{field}: {why}"),
                "write durations like 30s, 2m, 24h, 3650d or 1h30m",
            );
            None
        }
    }
}

/// Validates a parsed plan. `bytes` is the file content, `path` where it came from.
pub fn validate(path: &Path, bytes: &[u8], now: OffsetDateTime) -> Result<Plan, Vec<Diagnostic>> {
    let mut ctx = Ctx {
        d: match std::str::from_utf8(bytes) {
            Ok(text) => Diagnostics::with_source(path, text),
            Err(_) => Diagnostics::new(path),
        },
        base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        now,
        _file: path,
        rollout: None,
        strategy: Strategy::Roots,
    };
    let raw: RawPlan = match super::parse::parse(bytes) {
        Ok(raw) => raw,
        Err(problems) => {
            for super::parse::YamlProblem { at, message } in problems {
                ctx.d.error(
                    "yaml-invalid",
                    at,
                    message,
                    "fix the YAML at this place; `rootroll init` writes a commented example plan",
                );
            }
            return Err(ctx.d.into_sorted());
        }
    };
    let plan = check(&mut ctx, raw, path);
    if ctx.d.has_errors() {
        return Err(ctx.d.into_sorted());
    }
    let mut plan = plan.expect("a plan is built whenever no error was recorded");
    plan.warnings = ctx.d.into_sorted();
    Ok(plan)
}

fn check(ctx: &mut Ctx<'_>, raw: RawPlan, path: &Path) -> Option<Plan> {
    let name = check_header(ctx, &raw);
    let spec = raw.spec;
    let mesh = check_mesh(ctx, &spec.mesh);
    let timing = check_timing(ctx, &spec.timing, mesh.data_plane, mesh.min_istio_version);
    let gitops = check_gitops(ctx, &spec.gitops, &spec.clusters);
    let strategy = check_strategy(ctx, &spec);
    ctx.strategy = strategy;
    let (current_root, new_root) = check_roots(ctx, &spec.roots, &name, strategy);
    let rotated = check_rotate(ctx, &spec, strategy);
    let selected =
        |c: &super::raw::RawCluster| rotated.as_ref().is_none_or(|r| r.contains(&c.name.value));
    let clusters = check_clusters(
        ctx,
        &spec.clusters,
        &name,
        (current_root.as_ref(), new_root.as_ref()),
        mesh.secret_format,
        &selected,
    );
    let not_rotated: Vec<String> = spec
        .clusters
        .value
        .iter()
        .filter(|c| !selected(c))
        .map(|c| c.name.value.clone())
        .collect();
    // istio-2026 §2 (istio/istio#61719, open): in ambient multicluster ztunnel ignores
    // meshConfig.caCertificates, so every root a peer cluster uses must be in each cluster's
    // cacerts bundle. rootroll renders one shared bundle per phase (bundle-shared checks it).
    if mesh.data_plane == DataPlane::Ambient && spec.clusters.value.len() > 1 {
        ctx.d.warn(
            "ambient-multicluster-shared-root",
            loc(&spec.clusters),
            format!(
                "note: ambient with {} clusters: ztunnel ignores meshConfig.caCertificates (istio/istio#61719), so every cluster's cacerts must carry every root any peer uses",
                spec.clusters.value.len()
            ),
            "rootroll renders the same root bundle for every cluster in each phase and bundle-shared verifies it: keep all clusters of the mesh in this one plan",
        );
    }
    let expiry = check_expiry(ctx, &spec.rollout);
    let waves = check_waves(ctx, &spec.rollout, &spec.clusters, &selected);
    Some(Plan {
        file: path.to_path_buf(),
        name,
        mesh,
        timing: timing?,
        gitops,
        current_root: current_root?,
        new_root: new_root?,
        strategy,
        clusters,
        not_rotated,
        expiry: expiry?,
        waves,
        warnings: Vec::new(),
    })
}

/// spec.rollout.expiry: two durations, `fail` no longer than `warn`.
fn check_expiry(
    ctx: &mut Ctx<'_>,
    r: &super::raw::RawRollout,
) -> Option<crate::model::ExpiryThresholds> {
    use crate::model::ExpiryThresholds;
    let default = ExpiryThresholds::default();
    let Some(e) = &r.expiry else {
        return Some(default);
    };
    let warn = span(ctx, "spec.rollout.expiry.warn", &e.value.warn, default.warn);
    let fail = span(ctx, "spec.rollout.expiry.fail", &e.value.fail, default.fail);
    match ExpiryThresholds::new(warn?, fail?) {
        Ok(t) => Some(t),
        Err((warn, fail)) => {
            let at = e.value.fail.as_ref().map_or_else(|| loc(e), loc);
            ctx.d.error(
                "expiry-inverted",
                at,
                format!(
                    "spec.rollout.expiry.fail ({fail}) is longer than spec.rollout.expiry.warn ({warn}): verify would fail before it ever warned"
                ),
                "set fail shorter than warn, e.g. expiry: {warn: 90d, fail: 30d}",
            );
            None
        }
    }
}

/// spec.rollout.waves: every cluster of the plan in exactly one non-empty wave, and nothing
/// else. Returns the waves as written (empty when the plan names none).
fn check_waves(
    ctx: &mut Ctx<'_>,
    rollout: &super::raw::RawRollout,
    clusters: &S<Vec<super::raw::RawCluster>>,
    selected: &dyn Fn(&super::raw::RawCluster) -> bool,
) -> Vec<Vec<String>> {
    let Some(waves) = &rollout.waves else {
        return Vec::new();
    };
    // Only the clusters that rotate are promoted, so only they are in waves.
    let defined: Vec<&str> = clusters
        .value
        .iter()
        .filter(|c| selected(c))
        .map(|c| c.name.value.as_str())
        .collect();
    let mut seen: BTreeMap<&str, (usize, Location)> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, wave) in waves.value.iter().enumerate() {
        let n = i + 1;
        if wave.value.is_empty() {
            ctx.d.error(
                "wave-empty",
                loc(wave),
                format!("rollout.waves[{i}] (wave {n}) lists no cluster"),
                "remove the empty wave, or list the clusters it promotes",
            );
        }
        for c in &wave.value {
            let name = c.value.as_str();
            if !defined.contains(&name) {
                ctx.d.error(
                    "wave-cluster-unknown",
                    loc(c),
                    format!(
                        "wave {n} lists cluster `{}`, which spec.clusters does not define{} (clusters: {})",
                        name.escape_debug(),
                        if defined.len() < clusters.value.len() {
                            " or spec.rotate leaves out"
                        } else {
                            ""
                        },
                        defined.join(", ")
                    ),
                    "list only clusters defined under spec.clusters (check the spelling)",
                );
            } else if let Some((first, at)) = seen.get(name) {
                ctx.d.error(
                    "wave-cluster-duplicate",
                    loc(c),
                    format!(
                        "cluster `{name}` is already in wave {first} (line {})",
                        at.line()
                    ),
                    "list every cluster in exactly one wave",
                );
            } else {
                seen.insert(name, (n, loc(c)));
            }
        }
        out.push(wave.value.iter().map(|c| c.value.clone()).collect());
    }
    for c in &clusters.value {
        if !seen.contains_key(c.name.value.as_str()) && defined.contains(&c.name.value.as_str()) {
            ctx.d.error(
                "wave-cluster-missing",
                loc(&c.name),
                format!("cluster `{}` is in no wave of rollout.waves", c.name.value),
                "add it to one wave (a cluster in no wave would never be promoted by --wave)",
            );
        }
    }
    out
}

/// apiVersion, kind and the plan's name (returned even when it is unsafe, to go on checking).
fn check_header(ctx: &mut Ctx<'_>, raw: &RawPlan) -> String {
    if raw.api_version.value != API_VERSION {
        ctx.d.error(
            "api-version-unsupported",
            loc(&raw.api_version),
            format!("apiVersion `{}` is not supported", raw.api_version.value),
            format!("set apiVersion: {API_VERSION}"),
        );
    }
    if raw.kind.value != KIND {
        ctx.d.error(
            "kind-unsupported",
            loc(&raw.kind),
            format!("kind `{}` is not supported", raw.kind.value),
            format!("set kind: {KIND}"),
        );
    }
    let name = raw.metadata.name.value.clone();
    if !is_dns_label(&name) {
        ctx.d.error(
            "name-unsafe",
            loc(&raw.metadata.name),
            format!("plan name `{}` is not a DNS-1123 label", name.escape_debug()),
            "use lowercase letters, digits and `-`, at most 63 characters (it becomes a label value)",
        );
    }
    name
}

/// spec.mesh.
fn check_mesh(ctx: &mut Ctx<'_>, m: &super::raw::RawMesh) -> Mesh {
    let trust_domain = m
        .trust_domain
        .as_ref()
        .map_or("cluster.local".to_string(), |v| v.value.clone());
    if let Some(v) = &m.trust_domain {
        let ok = !v.value.is_empty()
            && v.value.len() <= 255
            && v.value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
        if !ok {
            ctx.d.error(
                "trust-domain-invalid",
                loc(v),
                format!(
                    "trust domain `{}` is not a valid SPIFFE trust domain",
                    v.value.escape_debug()
                ),
                "use lowercase letters, digits, `.`, `-` and `_` (for example cluster.local)",
            );
        }
    }
    let istio_namespace = m
        .istio_namespace
        .as_ref()
        .map_or("istio-system".to_string(), |v| v.value.clone());
    let secret_name = m
        .secret_name
        .as_ref()
        .map_or("cacerts".to_string(), |v| v.value.clone());
    for (field, v) in [
        ("istioNamespace", &m.istio_namespace),
        ("secretName", &m.secret_name),
    ] {
        if let Some(v) = v
            && !is_dns_label(&v.value)
        {
            ctx.d.error(
                "name-unsafe",
                loc(v),
                format!(
                    "{field} `{}` is not a valid Kubernetes name",
                    v.value.escape_debug()
                ),
                "use lowercase letters, digits and `-`",
            );
        }
    }
    let secret_format = choice(
        ctx,
        "secretFormat",
        &m.secret_format,
        SecretFormat::Istiod,
        &[
            ("istiod", SecretFormat::Istiod),
            ("kubernetes.io/tls", SecretFormat::KubernetesTls),
        ],
    );
    let data_plane = choice(
        ctx,
        "dataPlane",
        &m.data_plane,
        DataPlane::Sidecar,
        &[
            ("sidecar", DataPlane::Sidecar),
            ("ambient", DataPlane::Ambient),
        ],
    );
    let min_istio_version = check_version(ctx, m.min_istio_version.as_ref(), data_plane);
    if let (DataPlane::Ambient, None, Some(dp)) = (data_plane, &m.min_istio_version, &m.data_plane)
    {
        // istio-2026 §2: which ztunnel runs decides whether an ambient rotation can work at all.
        ctx.d.error(
            "istio-version-unsupported",
            loc(dp),
            "ambient without mesh.minIstioVersion: rootroll cannot tell whether ztunnel trusts more than one root (1.26.0+, 1.25.3+, 1.24.6+)",
            "set mesh.minIstioVersion to the oldest istiod/ztunnel in the mesh, e.g. minIstioVersion: \"1.28.6\"",
        );
    }
    Mesh {
        trust_domain,
        istio_namespace,
        secret_name,
        secret_format,
        data_plane,
        min_istio_version,
    }
}

/// spec.timing, with the span the rollout needs recorded for the validity checks after it.
fn check_timing(
    ctx: &mut Ctx<'_>,
    t: &super::raw::RawTiming,
    data_plane: DataPlane,
    min_istio_version: IstioVersion,
) -> Option<Timing> {
    let ttl = timing_span(
        ctx,
        "workloadCertTTL",
        &t.workload_cert_ttl,
        Span::from_hours(24),
        &TTL_BOUNDS,
    );
    let delay = timing_span(
        ctx,
        "propagationDelay",
        &t.propagation_delay,
        Span::from_mins(2),
        &DELAY_BOUNDS,
    );
    let margin = timing_span(
        ctx,
        "safetyMargin",
        &t.safety_margin,
        Span::from_mins(15),
        &MARGIN_BOUNDS,
    );
    match (ttl, delay, margin) {
        (Some(ttl), Some(delay), Some(margin)) => {
            let timing = Timing {
                workload_cert_ttl: ttl,
                propagation_delay: delay,
                safety_margin: margin,
            };
            ctx.rollout = Some(RolloutNeed {
                min_total: crate::model::soaks(&timing, data_plane, min_istio_version).min_total(),
                ttl,
                margin,
            });
            Some(timing)
        }
        _ => None,
    }
}

/// spec.gitops, and the recipients each cluster names.
fn check_gitops(
    ctx: &mut Ctx<'_>,
    g: &super::raw::RawGitops,
    clusters: &S<Vec<super::raw::RawCluster>>,
) -> Gitops {
    let engine = choice(
        ctx,
        "engine",
        &g.engine,
        Engine::Flux,
        &[("flux", Engine::Flux), ("argocd", Engine::Argocd)],
    );
    let repo_path = g.repo_path.as_ref().map_or(".".to_string(), |v| {
        v.value.trim_end_matches('/').to_string()
    });
    if let Some(v) = &g.repo_path
        && (v.value.starts_with('/') || v.value.split('/').any(|p| p == ".."))
    {
        ctx.d.error(
            "value-invalid",
            loc(v),
            format!(
                "repoPath `{}` must be relative to the repository root",
                v.value
            ),
            "write the output directory's path inside the Git repository, e.g. gitops/istio-ca",
        );
    }
    let mut age_recipients = Vec::new();
    for r in &g.age_recipients {
        match recipient(&r.value) {
            Ok(v) => age_recipients.push(v),
            Err((message, hint)) => ctx.d.error("recipient-invalid", loc(r), message, hint),
        }
    }
    let repo_url = g.repo_url.as_ref().and_then(|v| match repo_url_problem(&v.value) {
        None => Some(v.value.clone()),
        Some(problem) => {
            ctx.d.error(
                "value-invalid",
                loc(v),
                format!("repoURL `{}` {problem}", v.value.escape_debug()),
                "write the URL Argo CD clones, e.g. https://github.com/ORG/REPO.git or git@github.com:ORG/REPO.git",
            );
            None
        }
    });
    if engine == Engine::Argocd && g.repo_url.is_none() {
        ctx.d.error(
            "repo-url-missing",
            g.engine.as_ref().map_or(Location::UNKNOWN, loc),
            "engine argocd needs spec.gitops.repoURL: every Application names the repository it reads",
            "add repoURL (and targetRevision, default HEAD) under spec.gitops, e.g. repoURL: https://github.com/ORG/REPO.git",
        );
    }
    let target_revision = match &g.target_revision {
        None => DEFAULT_REVISION.to_string(),
        Some(v) => {
            if v.value.is_empty() || v.value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                ctx.d.error(
                    "value-invalid",
                    loc(v),
                    format!(
                        "targetRevision `{}` is not a Git revision",
                        v.value.escape_debug()
                    ),
                    "name a branch, tag or commit (HEAD by default), without spaces",
                );
            }
            v.value.clone()
        }
    };
    let roles = check_roles(ctx, g, clusters);
    Gitops {
        engine,
        repo_path,
        age_recipients,
        repo_url,
        target_revision,
        roles,
    }
}

/// Why `url` cannot be the repository Argo CD clones: it must be `https://`, `http://`,
/// `ssh://` or `git://`, or scp-like `user@host:path`, and no placeholder.
fn repo_url_problem(url: &str) -> Option<&'static str> {
    if url.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("is empty or holds whitespace");
    }
    if crate::verify::offline::placeholder::MARKERS
        .iter()
        .any(|m| url.contains(m))
    {
        return Some("is still a placeholder");
    }
    let scheme = ["https://", "http://", "ssh://", "git://"]
        .iter()
        .find_map(|s| url.strip_prefix(s));
    let ok = match scheme {
        Some(rest) => rest.split('/').next().is_some_and(|host| !host.is_empty()),
        None => url.split_once(':').is_some_and(|(user_host, path)| {
            user_host
                .split_once('@')
                .is_some_and(|(u, h)| !u.is_empty() && !h.is_empty() && !h.contains('/'))
                && !path.is_empty()
        }),
    };
    (!ok).then_some("is not a Git URL (https://, ssh://, git:// or user@host:path)")
}

/// The role form: `spec.gitops.recipients` (every key, named once), `spec.gitops.operators`
/// and each cluster's `recipients`. `None` for the shorthand (`ageRecipients`), where a
/// cluster's `recipients` is an error: there are no names to resolve it against.
fn check_roles(
    ctx: &mut Ctx<'_>,
    g: &super::raw::RawGitops,
    clusters: &S<Vec<super::raw::RawCluster>>,
) -> Option<Roles> {
    let role_form = g.recipients.is_some() || g.operators.is_some();
    if !role_form {
        for c in &clusters.value {
            if let Some(list) = &c.recipients {
                ctx.d.error(
                    "recipient-unknown",
                    loc(list),
                    format!(
                        "cluster `{}` names recipients, but spec.gitops.recipients is missing, so no name resolves",
                        c.name.value
                    ),
                    "use the role form: every key once under spec.gitops.recipients (name: age1…), \
                     the operators under spec.gitops.operators, and no ageRecipients",
                );
            }
        }
        return None;
    }
    if let Some(first) = g.age_recipients.first() {
        ctx.d.error(
            "recipients-both-forms",
            loc(first),
            "spec.gitops.ageRecipients and spec.gitops.recipients/operators are both given",
            "keep one form: move each ageRecipients key under spec.gitops.recipients with a name \
             and list the operators' names under spec.gitops.operators (ageRecipients alone means: \
             operators, and every cluster file encrypted to them)",
        );
    }
    let mut recipients = BTreeMap::new();
    let mut by_key: BTreeMap<String, String> = BTreeMap::new();
    let empty = BTreeMap::new();
    let map = g.recipients.as_ref().map_or(&empty, |m| &m.value);
    for (name, key) in map {
        if name.is_empty()
            || name.len() > 63
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        {
            ctx.d.error(
                "value-invalid",
                loc(key),
                format!("recipient name {} is not a simple name", described(name)),
                "use letters, digits, `-`, `_`, `.` or `@`, at most 63 characters: names appear in errors and reports",
            );
        }
        match recipient(&key.value) {
            Ok(k) => {
                if let Some(first) = by_key.get(&k) {
                    ctx.d.error(
                        "recipient-duplicate",
                        loc(key),
                        format!("recipient `{name}` has the same key as `{first}`"),
                        "name every age key once and list that name in each role it has",
                    );
                } else {
                    by_key.insert(k.clone(), name.clone());
                }
                recipients.insert(name.clone(), k);
            }
            Err((message, hint)) => {
                ctx.d.error("recipient-invalid", loc(key), message, hint);
            }
        }
    }
    let mut used = std::collections::BTreeSet::new();
    let mut names = |ctx: &mut Ctx<'_>, list: &[S<String>], role: &str| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in list {
            if !map.contains_key(&n.value) {
                let shown = described(&n.value);
                ctx.d.error(
                    "recipient-unknown",
                    loc(n),
                    format!("{role} names {shown}, which spec.gitops.recipients does not list"),
                    "roles list names: add `NAME: age1…` under spec.gitops.recipients and write NAME here",
                );
            } else if !out.contains(&n.value) {
                used.insert(n.value.clone());
                out.push(n.value.clone());
            }
        }
        out
    };
    let operators = match &g.operators {
        Some(list) => names(ctx, &list.value, "spec.gitops.operators"),
        None => Vec::new(),
    };
    let operators_empty = g.operators.as_ref().is_none_or(|l| l.value.is_empty());
    if operators_empty {
        let at = match (&g.operators, &g.recipients) {
            (Some(l), _) => loc(l),
            (None, Some(m)) => loc(m),
            (None, None) => Location::UNKNOWN,
        };
        ctx.d.error(
            "operators-empty",
            at,
            "spec.gitops.operators names no one, but the key state (root and generated intermediate keys) is encrypted to the operators only",
            "list at least one operator (a human or the offline workstation) by its name in spec.gitops.recipients: re-rendering needs their key to open the state",
        );
    }
    let mut per_cluster = BTreeMap::new();
    for c in &clusters.value {
        let cname = &c.name.value;
        let list = match &c.recipients {
            Some(list) if !list.value.is_empty() => {
                names(ctx, &list.value, &format!("cluster `{cname}`: recipients"))
            }
            _ => {
                ctx.d.error(
                    "cluster-recipients-missing",
                    c.recipients.as_ref().map_or_else(|| loc(&c.name), loc),
                    format!("cluster `{cname}` names no recipient of its own"),
                    "add `recipients: [NAME]` to the cluster: the name of its Flux or KSOPS key in spec.gitops.recipients (only that key and the operators can decrypt its Secrets)",
                );
                Vec::new()
            }
        };
        per_cluster.insert(cname.clone(), list);
    }
    for (name, key) in map {
        if !used.contains(name) {
            ctx.d.error(
                "recipient-unused",
                loc(key),
                format!("recipient `{name}` is listed in no role"),
                "name it in spec.gitops.operators or in a cluster's recipients, or remove it: a key in no role can decrypt nothing",
            );
        }
    }
    Some(Roles {
        recipients,
        operators,
        clusters: per_cluster,
    })
}

/// spec.strategy: `roots` (the default) or `intermediates`.
fn check_strategy(ctx: &mut Ctx<'_>, spec: &super::raw::RawSpec) -> Strategy {
    match spec.strategy.as_ref() {
        None => Strategy::Roots,
        Some(s) => match s.value.as_str() {
            "roots" => Strategy::Roots,
            "intermediates" => Strategy::Intermediates,
            other => {
                ctx.d.error(
                    "value-invalid",
                    loc(s),
                    format!(
                        "strategy `{}` is not one of: roots, intermediates",
                        described(other)
                    ),
                    "use `roots` (rotate the root and every intermediate) or `intermediates` (only the intermediates, under today's root)",
                );
                Strategy::Roots
            }
        },
    }
}

/// spec.rotate: cluster names from spec.clusters, each once, and only with
/// `strategy: intermediates` (a new root must reach every cluster that shares it). `None`:
/// every cluster rotates.
fn check_rotate(
    ctx: &mut Ctx<'_>,
    spec: &super::raw::RawSpec,
    strategy: Strategy,
) -> Option<Vec<String>> {
    let rotate = spec.rotate.as_ref()?;
    if strategy != Strategy::Intermediates {
        ctx.d.error(
            "rotate-without-intermediates",
            loc(rotate),
            "spec.rotate selects clusters, but a root rotation must rotate every cluster that shares the root",
            "add `strategy: intermediates` to rotate only these clusters' intermediates, or remove spec.rotate",
        );
        return None;
    }
    let defined: Vec<&str> = spec
        .clusters
        .value
        .iter()
        .map(|c| c.name.value.as_str())
        .collect();
    let mut out: Vec<String> = Vec::new();
    if rotate.value.clusters.value.is_empty() {
        ctx.d.error(
            "rotate-cluster-unknown",
            loc(&rotate.value.clusters),
            "spec.rotate.clusters lists no cluster: nothing would rotate",
            "list the clusters to rotate, or remove spec.rotate to rotate every cluster",
        );
    }
    for c in &rotate.value.clusters.value {
        let name = c.value.as_str();
        if !defined.contains(&name) {
            ctx.d.error(
                "rotate-cluster-unknown",
                loc(c),
                format!(
                    "spec.rotate.clusters lists `{}`, which spec.clusters does not define (clusters: {})",
                    name.escape_debug(),
                    defined.join(", ")
                ),
                "list only clusters defined under spec.clusters (check the spelling)",
            );
        } else if out.iter().any(|o| o == name) {
            ctx.d.error(
                "rotate-cluster-unknown",
                loc(c),
                format!("spec.rotate.clusters lists `{name}` twice"),
                "list every cluster to rotate once",
            );
        } else {
            out.push(name.to_string());
        }
    }
    Some(out)
}

/// spec.roots: the current and the new root, which must not share a subject. An
/// intermediate-only rotation has no new root: its new intermediates are signed by the
/// current one, which is returned in both places.
fn check_roots(
    ctx: &mut Ctx<'_>,
    roots: &super::raw::RawRoots,
    name: &str,
    strategy: Strategy,
) -> (Option<RootInput>, Option<RootInput>) {
    let current_root = root_input(
        ctx,
        &roots.current,
        "roots.current",
        RootDefaults::current(),
    );
    let new_src = match (strategy, &roots.new) {
        (Strategy::Intermediates, None) => return (current_root.clone(), current_root),
        (Strategy::Intermediates, Some(n)) => {
            ctx.d.error(
                "roots-new-unused",
                loc(n),
                "strategy `intermediates` keeps today's root, but spec.roots.new names a new one",
                "remove spec.roots.new (the new intermediates are signed by roots.current), or remove `strategy: intermediates` to rotate the root",
            );
            return (current_root, None);
        }
        (Strategy::Roots, None) => {
            ctx.d.error(
                "roots-new-missing",
                loc(&roots.current),
                "spec.roots has no `new` root, and spec.strategy is not `intermediates`",
                "add `strategy: intermediates` under spec to rotate only the intermediates under roots.current, or give spec.roots.new to rotate the root",
            );
            return (current_root, None);
        }
        (Strategy::Roots, Some(n)) => n,
    };
    let new_root = root_input(ctx, new_src, "roots.new", RootDefaults::new(name));
    if let (Some(a), Some(b)) = (&current_root, &new_root) {
        let subj_a = root_subject(a);
        let subj_b = root_subject(b);
        if subj_a == subj_b {
            ctx.d.error(
                "root-subject-reused",
                loc(new_src),
                format!("the new root's subject `{subj_b}` equals the current root's"),
                "give the new root a distinct subject (e.g. add a generation to its commonName): Envoy looks issuers up by name",
            );
        }
    }
    (current_root, new_root)
}

/// spec.clusters: unique DNS-label names, each with its current and new intermediate.
fn check_clusters(
    ctx: &mut Ctx<'_>,
    list: &S<Vec<super::raw::RawCluster>>,
    name: &str,
    (current_root, new_root): (Option<&RootInput>, Option<&RootInput>),
    secret_format: SecretFormat,
    selected: &dyn Fn(&super::raw::RawCluster) -> bool,
) -> Vec<ClusterPlan> {
    if list.value.is_empty() {
        ctx.d.error(
            "clusters-empty",
            loc(list),
            "the plan names no cluster",
            "add at least one entry under spec.clusters",
        );
    }
    let mut seen: BTreeMap<String, Location> = BTreeMap::new();
    let mut clusters = Vec::new();
    for c in &list.value {
        let cname = c.name.value.clone();
        if !is_dns_label(&cname) {
            ctx.d.error(
                "name-unsafe",
                loc(&c.name),
                format!("cluster name `{}` is not a DNS-1123 label", cname.escape_debug()),
                "use lowercase letters, digits and `-`, at most 63 characters: it becomes a directory name",
            );
        }
        if let Some(first) = seen.get(&cname) {
            ctx.d.error(
                "cluster-duplicate",
                loc(&c.name),
                format!(
                    "cluster `{cname}` is already defined at line {}",
                    first.line()
                ),
                "give every cluster a unique name",
            );
        } else {
            seen.insert(cname.clone(), loc(&c.name));
        }
        let cur = intermediate_input(
            ctx,
            &c.intermediates.current,
            &format!("cluster {cname}: intermediates.current"),
            IntDefaults {
                common_name: "Intermediate CA".into(),
                locality: cname.clone(),
            },
            current_root,
            secret_format,
        );
        let new = intermediate_input(
            ctx,
            &c.intermediates.new,
            &format!("cluster {cname}: intermediates.new"),
            IntDefaults {
                common_name: format!("Intermediate CA ({name})"),
                locality: cname.clone(),
            },
            new_root,
            secret_format,
        );
        if let (Some(current), Some(new)) = (cur, new)
            && selected(c)
        {
            clusters.push(ClusterPlan {
                name: cname,
                current,
                new,
            });
        }
    }
    clusters
}

/// A name written in the plan, for a message: quoted, unless it is a key (a secret key is
/// never echoed).
fn described(text: &str) -> String {
    if text.to_ascii_uppercase().contains("AGE-SECRET-KEY-") {
        "an age secret key (not shown)".into()
    } else if crate::sops::check_recipient(text).is_ok() {
        format!("the age key `{text}`")
    } else {
        crate::sops::shown(text)
    }
}

/// An age recipient as the age crate parses it (the crate rootroll encrypts with), or why it
/// cannot be one: message and hint.
fn recipient(text: &str) -> Result<String, (String, String)> {
    crate::sops::check_recipient(text)
        .map(|r| r.to_string())
        .map_err(|p| (p.message, p.hint))
}

fn check_version(ctx: &mut Ctx<'_>, v: Option<&S<String>>, data_plane: DataPlane) -> IstioVersion {
    let default = IstioVersion {
        major: 1,
        minor: 22,
        patch: None,
    };
    let Some(v) = v else { return default };
    let Some(ver) = IstioVersion::parse(&v.value) else {
        ctx.d.error(
            "istio-version-invalid",
            loc(v),
            format!("minIstioVersion `{}` is not major.minor[.patch]", v.value),
            "quote it so YAML keeps it a string, e.g. minIstioVersion: \"1.24\"",
        );
        return default;
    };
    let mm = (ver.major, ver.minor);
    if mm < (1, 20) {
        ctx.d.error(
            "istio-version-unsupported",
            loc(v),
            format!(
                "Istio {} cannot hot-reload a new root in cacerts (needs 1.20+)",
                String::from(ver)
            ),
            "upgrade istiod to 1.21 or later before rotating the root",
        );
    } else if mm < (1, 21) {
        ctx.d.warn(
            "istio-version-caveat",
            loc(v),
            "Istio 1.20 reloads the root but proxies only re-sign at natural rotation (~12h per phase)",
            "upgrade to 1.21+ for immediate re-signing, or plan for long soak times",
        );
    }
    if matches!(
        (ver.major, ver.minor, ver.patch),
        (1, 24, Some(4)) | (1, 25, Some(1))
    ) {
        ctx.d.warn(
            "istio-version-caveat",
            loc(v),
            format!(
                "istiod {} trusts only the last root of a bundle (istio/istio#55793)",
                String::from(ver)
            ),
            "avoid istiod 1.24.4 and 1.25.1; use 1.24.5+ or 1.25.2+",
        );
    }
    // istio-2026 §2 (istio/ztunnel#1510): ztunnel below 1.24.6 / 1.25.3 / 1.26.0 trusts only
    // the first root of a bundle, so phase 2 (A+B) would cut it off from root B's peers.
    if data_plane == DataPlane::Ambient && !ver.ztunnel_trusts_every_root() {
        ctx.d.error(
            "istio-version-unsupported",
            loc(v),
            format!(
                "ambient: ztunnel {} trusts only the first root of a bundle (multi-root trust came in 1.26.0, backported to 1.25.3 and 1.24.6; istio/ztunnel#1510)",
                String::from(ver)
            ),
            "upgrade ztunnel to 1.26.0+ (or 1.25.3+ / 1.24.6+) before rotating an ambient mesh, and give the patch: minIstioVersion: \"1.25.3\"",
        );
    }
    ver
}

struct RootDefaults {
    common_name: String,
}

impl RootDefaults {
    fn current() -> Self {
        Self {
            common_name: "Root CA".into(),
        }
    }
    fn new(plan: &str) -> Self {
        Self {
            common_name: format!("Root CA ({plan})"),
        }
    }
}

struct IntDefaults {
    common_name: String,
    locality: String,
}

fn root_subject(r: &RootInput) -> String {
    match r {
        RootInput::Generate(g) => canonical_subject(&g.subject),
        RootInput::Import(i) => {
            let s = i.signer.summary().subject;
            // x509-parser prints `O=Istio, CN=Root CA`; compare the same way.
            s
        }
    }
}

fn canonical_subject(s: &Subject) -> String {
    s.to_string()
}

fn exactly_one<'a>(
    ctx: &mut Ctx<'_>,
    src: &'a S<RawCertSource>,
    what: &str,
) -> Option<Result<&'a RawGenerate, &'a RawImport>> {
    match (&src.value.generate, &src.value.import) {
        (Some(g), None) => Some(Ok(g)),
        (None, Some(i)) => Some(Err(i)),
        (gen_, _) => {
            let how = if gen_.is_some() { "both" } else { "neither" };
            ctx.d.error(
                "cert-source-invalid",
                loc(src),
                format!("{what} has {how} of `generate` and `import`"),
                "give exactly one: `generate: {algorithm: …}` or `import: {dir: …}`",
            );
            None
        }
    }
}

/// Why a generated CA's validity cannot be used: shorter than the rollout needs, or ending
/// after the last date X.509 can express. `None` when it is fine.
fn validity_problem(ctx: &Ctx<'_>, what: &str, validity: Span) -> Option<(String, String)> {
    let min = ctx.rollout.map_or(Span::from_secs(1), RolloutNeed::total);
    let max_days = (X509_END - ctx.now).whole_days().max(0);
    let range = match ctx.rollout {
        Some(_) => format!(
            "set validity between {min} and {max_days}d (from now to 9999-12-31, the last date X.509 can express)"
        ),
        None => format!(
            "set validity to at least the rollout's length and at most {max_days}d (from now to 9999-12-31, the last date X.509 can express)"
        ),
    };
    let ends = validity.after(ctx.now).filter(|end| *end <= X509_END);
    if ends.is_none() {
        return Some((
            format!(
                "{what}: validity {validity} would end after 9999-12-31, the last date X.509 can express"
            ),
            range,
        ));
    }
    if validity < min {
        let message = match ctx.rollout {
            Some(need) => format!(
                "{what}: validity {validity} is shorter than the rollout, which needs {min} ({})",
                need.explain()
            ),
            None => format!(
                "{what}: validity {validity} is empty: a CA must stay valid through the rollout (fix the timing to see how long that is)"
            ),
        };
        return Some((message, range));
    }
    None
}

fn generate_spec(
    ctx: &mut Ctx<'_>,
    g: &RawGenerate,
    what: &str,
    at: Location,
    default_validity: Span,
    default_subject: Subject,
) -> Option<GenerateSpec> {
    let algorithm = match &g.algorithm {
        None => Algorithm::EcdsaP256,
        Some(a) => match Algorithm::parse(&a.value) {
            Some(alg) => alg,
            None => {
                let small = a.value.starts_with("rsa-")
                    && a.value[4..].parse::<u32>().is_ok_and(|n| n < 2048);
                if small {
                    ctx.d.error(
                        "rsa-too-small",
                        loc(a),
                        format!("`{}` keys are too weak for a CA", a.value),
                        "use rsa-2048 or larger, or ecdsa-p256",
                    );
                } else {
                    ctx.d.error(
                        "algorithm-unsupported",
                        loc(a),
                        format!("algorithm `{}` is not supported", a.value),
                        format!("use one of: {}", Algorithm::NAMES.join(", ")),
                    );
                }
                return None;
            }
        },
    };
    let validity = span(ctx, "validity", &g.validity, default_validity)?;
    if let Some((message, hint)) = validity_problem(ctx, what, validity) {
        let at = g.validity.as_ref().map_or(at, loc);
        ctx.d.error("validity-out-of-range", at, message, hint);
        return None;
    }
    let subject = match &g.subject {
        None => default_subject,
        Some(s) => merge_subject(&s.value, default_subject),
    };
    Some(GenerateSpec {
        algorithm,
        validity,
        subject,
    })
}

fn merge_subject(s: &RawSubject, d: Subject) -> Subject {
    Subject {
        organization: s.organization.clone().or(d.organization),
        organizational_unit: s.organizational_unit.clone().or(d.organizational_unit),
        common_name: s.common_name.clone().or(d.common_name),
        locality: s.locality.clone().or(d.locality),
    }
}

fn root_input(
    ctx: &mut Ctx<'_>,
    src: &S<RawCertSource>,
    what: &str,
    defaults: RootDefaults,
) -> Option<RootInput> {
    match exactly_one(ctx, src, what)? {
        Ok(g) => {
            let subject = Subject {
                organization: Some("Istio".into()),
                common_name: Some(defaults.common_name),
                ..Subject::default()
            };
            generate_spec(ctx, g, what, loc(src), Span::from_days(3650), subject)
                .map(RootInput::Generate)
        }
        Err(i) => import_root(ctx, i, what).map(RootInput::Import),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Makefile,
    Tls,
}

/// Why a `ca-crl.pem` is refused (istio-2026 §1: istio/istio#56529, ztunnel 58733): istiod
/// 1.27+ distributes it from `cacerts` as CRLs and ztunnel 1.30+ enforces them. A rotation would
/// either drop the file (revoked certificates trusted again) or carry a CRL no phase's CA signed
/// (ztunnel refuses that CA's peers). Carrying one per phase needs the revocation list re-issued
/// by each phase's signing CA, which rootroll does not do, so it refuses instead of half-handling.
pub(crate) const CRL_WHY: &str = "is a certificate revocation list: istiod 1.27+ serves it with the CA and ztunnel 1.30+ enforces it, so every phase would need a CRL signed by that phase's signing CA, which rootroll does not generate (and dropping it would trust revoked certificates again)";
/// The manual step that makes a CA with a CRL importable.
pub(crate) const CRL_FIX: &str = "keep the CRL by hand until every certificate it revokes has expired, then remove ca-crl.pem from the live cacerts Secret (kubectl -n istio-system patch secret cacerts --type=json -p '[{\"op\":\"remove\",\"path\":\"/data/ca-crl.pem\"}]') and from the imported directory, and import again";

fn refuse_crl(ctx: &mut Ctx<'_>, i: &RawImport, dir: &Path, what: &str) {
    let crl = dir.join("ca-crl.pem");
    // Even a dangling link named ca-crl.pem says the live Secret carries a CRL.
    if crl.symlink_metadata().is_ok() {
        ctx.d.error(
            "import-crl",
            loc(&i.dir),
            format!("{what}: {} {CRL_WHY}", crl.display()),
            CRL_FIX,
        );
    }
}

fn layout(ctx: &mut Ctx<'_>, i: &RawImport, dir: &Path) -> Option<Layout> {
    match i.layout.as_ref().map(|l| l.value.as_str()) {
        None | Some("auto") => Some(
            if dir.join("tls.crt").exists()
                || dir.join("ca.crt").exists() && !dir.join("root-cert.pem").exists()
            {
                Layout::Tls
            } else {
                Layout::Makefile
            },
        ),
        Some("makefile") => Some(Layout::Makefile),
        Some("tls") => Some(Layout::Tls),
        Some(other) => {
            ctx.d.error(
                "value-invalid",
                loc(i.layout.as_ref().expect("matched Some above")),
                format!("layout `{other}` is not one of: auto, makefile, tls"),
                "use `makefile` for Istio Makefile output, `tls` for tls.crt/tls.key/ca.crt",
            );
            None
        }
    }
}

/// Largest imported PEM file read; CA files are a few kilobytes.
const MAX_IMPORT_BYTES: u64 = 1024 * 1024;

/// Reads a file under an import directory, reporting a diagnostic at the import's `dir`.
fn read_file(ctx: &mut Ctx<'_>, i: &RawImport, path: &Path, what: &str) -> Option<Vec<u8>> {
    match super::read_bounded(path, MAX_IMPORT_BYTES) {
        Ok(Some(b)) => Some(b),
        Ok(None) => {
            ctx.d.error(
                "import-unreadable",
                loc(&i.dir),
                format!(
                    "{what}: {} is larger than {MAX_IMPORT_BYTES} bytes",
                    path.display()
                ),
                "a CA certificate, chain or key is a few kilobytes: point `dir` at the CA files",
            );
            None
        }
        Err(e) => {
            ctx.d.error(
                "import-unreadable",
                loc(&i.dir),
                format!("{what}: cannot read {}: {e}", path.display()),
                "point `dir` at Istio Makefile output (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem) or a tls.crt/tls.key/ca.crt set",
            );
            None
        }
    }
}

fn read_key(ctx: &mut Ctx<'_>, i: &RawImport, path: &Path, what: &str) -> Option<PrivateKeyPem> {
    let bytes = read_file(ctx, i, path, what)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        use zeroize::Zeroize as _;
        e.into_bytes().zeroize();
    });
    let key = text.ok().map(PrivateKeyPem::new);
    let problem = match &key {
        None => Some("is not PEM text (it is not UTF-8)".to_string()),
        Some(k) => pki::key_problem(k),
    };
    if let Some(problem) = problem {
        ctx.d.error(
            "import-unreadable",
            loc(&i.dir),
            format!("{what}: {} {problem}", path.display()),
            format!(
                "supply {}; `openssl pkey -in KEY -out KEY.pem` decrypts a key and keeps only the key",
                pki::WANTED_KEY
            ),
        );
        return None;
    }
    key
}

fn parse_certs(
    ctx: &mut Ctx<'_>,
    i: &RawImport,
    path: &Path,
    bytes: &[u8],
    what: &str,
) -> Option<Vec<Vec<u8>>> {
    match pki::split_certificates(bytes) {
        Ok(c) => Some(c),
        Err(e) => {
            ctx.d.error(
                "import-unreadable",
                loc(&i.dir),
                format!("{what}: {}: {e}", path.display()),
                "the file must hold only PEM `CERTIFICATE` blocks",
            );
            None
        }
    }
}

/// Checks common to every imported CA certificate; returns false if any failed.
fn check_ca_cert(ctx: &mut Ctx<'_>, i: &RawImport, der: &[u8], what: &str) -> bool {
    let s = match inspect_der(der) {
        Ok(s) => s,
        Err(e) => {
            ctx.d
                .error(
                    "import-unreadable",
                    loc(&i.dir),
                    format!("{what}: {e}"),
                    "the certificate cannot be parsed: export it again as PEM (`openssl x509 -outform PEM`)",
                );
            return false;
        }
    };
    let mut ok = true;
    if !s.is_ca || !s.key_cert_sign {
        ctx.d.error(
            "import-not-ca",
            loc(&i.dir),
            format!(
                "{what}: `{}` is not a CA (basicConstraints CA:{}, keyCertSign {})",
                s.subject,
                if s.is_ca { "TRUE" } else { "FALSE" },
                if s.key_cert_sign { "set" } else { "missing" }
            ),
            "import the CA certificate (basicConstraints CA:TRUE with keyCertSign), not a workload or server certificate",
        );
        ok = false;
    }
    let usable = match &s.key {
        KeyKind::Rsa { .. } => true,
        KeyKind::Ec { curve } => ["P-256", "P-384", "P-521"].contains(&curve.as_str()),
        KeyKind::Other { .. } => false,
    };
    if !usable {
        ctx.d.error(
            "algorithm-unsupported",
            loc(&i.dir),
            format!(
                "{what}: `{}` has key type {}, which istiod and Envoy cannot verify",
                s.subject, s.key
            ),
            "re-issue the CA with an RSA (2048 bits or more) or ECDSA P-256, P-384 or P-521 key",
        );
        ok = false;
    }
    if let KeyKind::Rsa { bits } = s.key
        && bits < 2048
    {
        ctx.d.error(
            "rsa-too-small",
            loc(&i.dir),
            format!("{what}: `{}` has an RSA-{bits} key", s.subject),
            "re-issue the CA with at least RSA-2048 (or ECDSA P-256)",
        );
        ok = false;
    }
    if !s.valid_at(ctx.now) {
        let when = if ctx.now < s.not_before {
            "is not valid yet"
        } else {
            "has expired"
        };
        ctx.d.error(
            "import-expired",
            loc(&i.dir),
            format!(
                "{what}: `{}` {when} (valid {} to {})",
                s.subject,
                s.not_before.date(),
                s.not_after.date()
            ),
            "rotate with certificates that are valid now; an expired CA is rejected by istiod",
        );
        ok = false;
    } else if let Some(need) = ctx.rollout {
        let end = need.total().after(ctx.now);
        if end.is_none_or(|end| end > s.not_after) {
            ctx.d.error(
                "import-expired",
                loc(&i.dir),
                format!(
                    "{what}: `{}` expires {}, before the rollout ends: it must stay valid for {} ({})",
                    s.subject,
                    s.not_after.date(),
                    need.total(),
                    need.explain()
                ),
                "renew this CA before rotating, or shorten the timing so the rollout ends before it expires",
            );
            ok = false;
        }
    }
    if s.ext_key_usage
        .iter()
        .any(|e| e != "serverAuth" && e != "any")
        && !s.ext_key_usage.iter().any(|e| e == "serverAuth")
    {
        ctx.d.error(
            "import-not-ca",
            loc(&i.dir),
            format!("{what}: `{}` carries an extended key usage without serverAuth ({})", s.subject, s.ext_key_usage.join(", ")),
            "istiod's chain check requires CA certificates with no EKU, or one that includes serverAuth",
        );
        ok = false;
    }
    ok
}

fn import_root(ctx: &mut Ctx<'_>, i: &RawImport, what: &str) -> Option<ImportedRoot> {
    let dir = ctx.base.join(&i.dir.value);
    let layout = layout(ctx, i, &dir)?;
    let (file, key_file) = match layout {
        Layout::Makefile => (dir.join("root-cert.pem"), Some(dir.join("root-key.pem"))),
        Layout::Tls => (dir.join("ca.crt"), None),
    };
    let bundle = read_file(ctx, i, &file, what)?;
    let certs = parse_certs(ctx, i, &file, &bundle, what)?;
    let mut ok = true;
    for der in &certs {
        ok &= check_ca_cert(ctx, i, der, what);
    }
    // As for intermediates: the certificates' own problems (too small, expired) explain a
    // key that cannot be used, so they are reported instead.
    if !ok {
        return None;
    }
    let key = match key_file {
        Some(k) if k.exists() => Some(read_key(ctx, i, &k, what)?),
        _ => None,
    };
    let mut signer_idx = 0;
    if let Some(key) = &key {
        match certs
            .iter()
            .position(|der| pki::key_matches_cert(key, der).unwrap_or(false))
        {
            Some(idx) => signer_idx = idx,
            None => {
                ctx.d.error(
                    "import-key-mismatch",
                    loc(&i.dir),
                    format!("{what}: root-key.pem does not belong to any certificate in {}", file.display()),
                    "supply the root key that matches root-cert.pem, or remove root-key.pem and import the intermediates",
                );
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    let signer = CaMaterial::from_pem(pki::der_to_pem(&certs[signer_idx]), key).ok()?;
    Some(ImportedRoot {
        file,
        bundle,
        signer,
        certs,
    })
}

fn intermediate_input(
    ctx: &mut Ctx<'_>,
    src: &S<RawCertSource>,
    what: &str,
    defaults: IntDefaults,
    root: Option<&RootInput>,
    format: SecretFormat,
) -> Option<IntermediateInput> {
    match exactly_one(ctx, src, what)? {
        Ok(g) => {
            let subject = Subject {
                organization: Some("Istio".into()),
                common_name: Some(defaults.common_name),
                locality: Some(defaults.locality),
                ..Subject::default()
            };
            let spec = generate_spec(ctx, g, what, loc(src), Span::from_days(1825), subject)?;
            match root {
                Some(RootInput::Import(r)) if r.signer.key.is_none() => {
                    ctx.d.error(
                        "root-key-missing",
                        loc(src),
                        format!("{what} is to be generated, but the root imported from {} has no key", r.file.display()),
                        "put root-key.pem next to root-cert.pem, or import this intermediate instead of generating it",
                    );
                    return None;
                }
                Some(RootInput::Generate(root_spec)) if spec.validity > root_spec.validity => {
                    ctx.d.error(
                        "intermediate-outlives-root",
                        g.validity.as_ref().map_or(loc(src), loc),
                        format!("{what}: validity {} is longer than its root's {}", spec.validity, root_spec.validity),
                        "shorten the intermediate's validity; istiod rejects chains whose root expired",
                    );
                }
                Some(RootInput::Import(r)) => {
                    let root_end = r.signer.summary().not_after;
                    if spec
                        .validity
                        .after(ctx.now)
                        .is_none_or(|end| end > root_end)
                    {
                        ctx.d.error(
                            "intermediate-outlives-root",
                            g.validity.as_ref().map_or(loc(src), loc),
                            format!(
                                "{what}: validity {} runs past its root's expiry {}",
                                spec.validity,
                                root_end.date()
                            ),
                            "shorten the intermediate's validity to end before the root does",
                        );
                    }
                }
                _ => {}
            }
            Some(IntermediateInput::Generate(spec))
        }
        Err(i) => import_intermediate(ctx, i, what, root, format).map(IntermediateInput::Import),
    }
}

fn import_intermediate(
    ctx: &mut Ctx<'_>,
    i: &RawImport,
    what: &str,
    root: Option<&RootInput>,
    format: SecretFormat,
) -> Option<ImportedIntermediate> {
    let dir = ctx.base.join(&i.dir.value);
    // A CRL belongs to the signing CA whose cacerts it sits in.
    refuse_crl(ctx, i, &dir, what);
    let layout = layout(ctx, i, &dir)?;
    let imported_format = match layout {
        Layout::Makefile => SecretFormat::Istiod,
        Layout::Tls => SecretFormat::KubernetesTls,
    };
    if imported_format != format {
        ctx.d.warn(
            "secret-format-mismatch",
            loc(&i.dir),
            format!(
                "{what} is imported from the {} layout but the plan renders the {} format",
                imported_format.name(),
                format.name()
            ),
            "a Secret's type cannot change in place: set mesh.secretFormat to match the live cacerts Secret",
        );
    }
    let (cert_file, key_file) = match layout {
        Layout::Makefile => (dir.join("ca-cert.pem"), dir.join("ca-key.pem")),
        Layout::Tls => (dir.join("tls.crt"), dir.join("tls.key")),
    };
    let cert_bytes = read_file(ctx, i, &cert_file, what)?;
    let certs = parse_certs(ctx, i, &cert_file, &cert_bytes, what)?;
    // The certificate's own problems (not a CA, too small, expired) explain a key that
    // cannot be used, so they are reported first and instead.
    if !check_ca_cert(ctx, i, &certs[0], what) {
        return None;
    }
    let key_from_state = match i.key.as_ref().map(|k| k.value.as_str()) {
        None | Some("file") => false,
        Some("state") => true,
        Some(other) => {
            ctx.d.error(
                "value-invalid",
                loc(i.key.as_ref().expect("matched Some above")),
                format!("key `{other}` is not one of: file, state"),
                "use `file` (ca-key.pem/tls.key next to the certificate) or `state` (the encrypted key state)",
            );
            return None;
        }
    };
    let key = if key_from_state {
        None
    } else {
        Some(read_key(ctx, i, &key_file, what)?)
    };
    let mut ok = true;
    if let Some(key) = &key
        && !pki::key_matches_cert(key, &certs[0]).unwrap_or(false)
    {
        ctx.d.error(
            "import-key-mismatch",
            loc(&i.dir),
            format!(
                "{what}: {} does not belong to {}",
                key_file.display(),
                cert_file.display()
            ),
            "import the key that was generated with this certificate",
        );
        ok = false;
    }
    let chain = match layout {
        Layout::Makefile => {
            let chain_file = dir.join("cert-chain.pem");
            if chain_file.exists() {
                let bytes = read_file(ctx, i, &chain_file, what)?;
                let chain_certs = parse_certs(ctx, i, &chain_file, &bytes, what)?;
                if chain_certs.first() != Some(&certs[0]) {
                    ctx.d.error(
                        "import-unreadable",
                        loc(&i.dir),
                        format!("{what}: {} does not start with ca-cert.pem", chain_file.display()),
                        "cert-chain.pem must be ca-cert.pem followed by its issuers (istiod serves it as-is)",
                    );
                    ok = false;
                }
                bytes
            } else {
                // No chain file: build the Makefile's `cat ca-cert.pem root-cert.pem` later.
                Vec::new()
            }
        }
        Layout::Tls => cert_bytes.clone(),
    };
    if let Some(root) = root {
        let root_ders: Vec<Vec<u8>> = match root {
            RootInput::Import(r) => r.certs.clone(),
            RootInput::Generate(_) => Vec::new(),
        };
        if let RootInput::Generate(_) = root {
            ctx.d.error(
                "import-not-signed-by-root",
                loc(&i.dir),
                format!("{what} is imported but its root is to be generated, so it cannot be signed by it"),
                "import the root too (roots.*.import), or generate this intermediate",
            );
            ok = false;
        } else {
            // Signed by the root, or through the issuers ca-cert.pem carries, each of which
            // must chain on to the root too.
            let signed = pki::chains_to(&certs[0], &certs[1..], &root_ders);
            if !signed {
                let s = inspect_der(&certs[0]).map(|s| s.issuer).unwrap_or_default();
                // An intermediate-only rotation signs its new intermediates with today's root.
                let (root_field, why) = match ctx.strategy {
                    Strategy::Intermediates if what.ends_with("intermediates.new") => (
                        "roots.current",
                        " (strategy `intermediates`: the new intermediate must be issued by today's root)",
                    ),
                    _ if what.ends_with("intermediates.new") => ("roots.new", ""),
                    _ => ("roots.current", ""),
                };
                ctx.d.error(
                    "import-not-signed-by-root",
                    loc(&i.dir),
                    format!("{what}: the intermediate (issuer `{s}`) is not signed by any certificate of {root_field}{why}"),
                    "import the intermediate that was issued by this root, or import the matching root",
                );
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    let cert = CaMaterial::from_pem(pki::der_to_pem(&certs[0]), key).ok()?;
    // Keep the exact ca-cert.pem bytes when the file is one certificate (phase 1 must not change bytes).
    let cert = if certs.len() == 1 {
        CaMaterial {
            cert_pem: String::from_utf8(cert_bytes).unwrap_or(cert.cert_pem.clone()),
            ..cert
        }
    } else {
        cert
    };
    Some(ImportedIntermediate {
        dir,
        cert,
        chain,
        key_from_state,
    })
}
