//! Rendering: the rollout and its key material become the files of the GitOps repo, in
//! memory. Manifests come from minijinja templates embedded from `templates/` (overridable
//! with `--templates DIR`); every YAML file is parsed back before it is accepted.
//!
//! Templates run with auto-escaping off and strict undefined behaviour; every value placed
//! in YAML goes through `|tojson`, which yields a valid YAML scalar for any string.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use crate::materials::{ClusterMaterials, Materials};
use crate::model::{self, Rollout, phase_dir};
use crate::parallel;
use crate::pki;
use crate::plan::{Audience, Engine, Plan, SecretFormat};
use crate::repo::{self, Outputs, keys};

/// The embedded templates, by name.
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "secret.yaml.j2",
        include_str!("../templates/secret.yaml.j2"),
    ),
    (
        "phase-kustomization.yaml.j2",
        include_str!("../templates/phase-kustomization.yaml.j2"),
    ),
    (
        "pointer-kustomization.yaml.j2",
        include_str!("../templates/pointer-kustomization.yaml.j2"),
    ),
    (
        "ksops-generator.yaml.j2",
        include_str!("../templates/ksops-generator.yaml.j2"),
    ),
    (
        "flux-kustomization.yaml.j2",
        include_str!("../templates/flux-kustomization.yaml.j2"),
    ),
    (
        "argocd-application.yaml.j2",
        include_str!("../templates/argocd-application.yaml.j2"),
    ),
    (
        "prereq-helm-values.yaml.j2",
        include_str!("../templates/prereq-helm-values.yaml.j2"),
    ),
    (
        "prereq-istiooperator.yaml.j2",
        include_str!("../templates/prereq-istiooperator.yaml.j2"),
    ),
    ("ROLLOUT.md.j2", include_str!("../templates/ROLLOUT.md.j2")),
    (
        "verify-rbac.yaml.j2",
        include_str!("../templates/verify-rbac.yaml.j2"),
    ),
    (
        "verify-rbac-secret.yaml.j2",
        include_str!("../templates/verify-rbac-secret.yaml.j2"),
    ),
];

/// Errors while rendering.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// An override template cannot be read.
    #[error("cannot read template {}", path.display())]
    ReadTemplate {
        /// The template file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A template failed to render.
    #[error("template {name} failed: {detail}")]
    Template {
        /// The template.
        name: String,
        /// minijinja's message and its causes.
        detail: String,
    },
    /// A probe leaf could not be issued.
    #[error("cannot issue the probe leaf {path}: {reason}")]
    Probe {
        /// The probe file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A template produced a file that does not parse as YAML.
    #[error("template {name} produced invalid YAML for {path}: {reason}")]
    InvalidYaml {
        /// The template.
        name: String,
        /// The output file.
        path: String,
        /// The parser's message.
        reason: String,
    },
}

/// Render options decided by the CLI.
pub struct RenderOptions<'a> {
    /// Directory whose `*.j2` files replace the embedded ones of the same name.
    pub templates: Option<&'a Path>,
    /// Name Secret files `*.sops.yaml` (they are encrypted after rendering).
    pub encrypted: bool,
    /// Active phase per cluster (kept from a previous render; default 1).
    pub active: BTreeMap<String, u8>,
    /// The previous render's probe files, by path: each is kept while it still stands for
    /// its phase (see [`crate::handshake::check_probe`]).
    pub probes: BTreeMap<String, Vec<u8>>,
}

/// A Secret as the template sees it. Lists of pairs keep the order chosen here.
#[derive(Serialize)]
struct SecretView {
    name: String,
    namespace: String,
    #[serde(rename = "type")]
    type_: &'static str,
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    data: Vec<(String, String)>,
}

/// The public files of a phase Secret and its private key entry.
pub struct SecretContent {
    /// The public entries (certificates, bundle), by key.
    pub public: Vec<(&'static str, Vec<u8>)>,
    /// The private key entry.
    pub private: (&'static str, Vec<u8>),
}

impl SecretContent {
    /// sha256 over the public entries, sorted by key: `key\nlen\nbytes` each.
    pub fn public_sha256(&self) -> String {
        public_fingerprint(self.public.iter().map(|(k, v)| (*k, v.as_slice())))
    }
}

/// sha256 over `(key, bytes)` pairs sorted by key: `key\nlen\nbytes` each.
pub fn public_fingerprint<'a>(entries: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<_> = entries.collect();
    sorted.sort_by_key(|(k, _)| *k);
    let mut h = Sha256::new();
    for (k, v) in sorted {
        h.update(k.as_bytes());
        h.update(format!("\n{}\n", v.len()).as_bytes());
        h.update(v);
    }
    pki::hex(&h.finalize())
}

/// The four (or three) keys of a phase Secret (facts §1.2, §9.3).
pub fn secret_content(
    format: SecretFormat,
    signer: &crate::materials::Signer,
    bundle: &[u8],
) -> SecretContent {
    // A locked key (the encrypted state was not opened) is left empty; such a Secret can
    // only keep its previous encrypted bytes (see `seal`).
    let key = signer
        .cert
        .key
        .as_ref()
        .map(|k| k.expose().as_bytes().to_vec())
        .unwrap_or_default();
    match format {
        SecretFormat::Istiod => SecretContent {
            public: vec![
                ("ca-cert.pem", signer.cert.cert_pem.as_bytes().to_vec()),
                ("cert-chain.pem", signer.chain.clone()),
                ("root-cert.pem", bundle.to_vec()),
            ],
            private: ("ca-key.pem", key),
        },
        // istiod builds the chain as tls.crt + ca.crt, so tls.crt is the signing cert (with
        // any intermediates between it and the root).
        SecretFormat::KubernetesTls => {
            let mut tls_crt = signer.cert.cert_pem.as_bytes().to_vec();
            if let Ok(chain) = pki::split_certificates(&signer.chain) {
                // Keep intermediates but not the root: ca.crt supplies the roots.
                for der in chain.iter().skip(1) {
                    if !pki::inspect_der(der).map(|s| s.self_signed).unwrap_or(true) {
                        tls_crt.extend_from_slice(pki::der_to_pem(der).as_bytes());
                    }
                }
            }
            SecretContent {
                public: vec![("ca.crt", bundle.to_vec()), ("tls.crt", tls_crt)],
                private: ("tls.key", key),
            }
        }
    }
}

fn environment(templates: Option<&Path>) -> Result<Environment<'static>, RenderError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .expect("the default syntax with keep_trailing_newline is valid"),
    );
    for (name, embedded) in TEMPLATES {
        let source = match templates.map(|d| d.join(name)) {
            Some(path) if path.exists() => std::fs::read_to_string(&path)
                .map_err(|source| RenderError::ReadTemplate { path, source })?,
            _ => (*embedded).to_string(),
        };
        env.add_template_owned(*name, source)
            .map_err(|e| template_err(name, &e))?;
    }
    Ok(env)
}

fn template_err(name: &str, e: &minijinja::Error) -> RenderError {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(&format!(": {s}"));
        source = s.source();
    }
    RenderError::Template {
        name: name.to_string(),
        detail,
    }
}

fn render_one(
    env: &Environment<'_>,
    name: &str,
    ctx: minijinja::Value,
) -> Result<String, RenderError> {
    env.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| template_err(name, &e))
}

/// Renders a YAML file and parses it back (read past, not built: only validity matters).
fn render_yaml(
    env: &Environment<'_>,
    name: &str,
    path: &str,
    ctx: minijinja::Value,
) -> Result<String, RenderError> {
    let text = render_one(env, name, ctx)?;
    check_yaml(name, path, &text)?;
    Ok(text)
}

/// Parses one YAML document `name` rendered for `path`, only to know it is valid.
fn check_yaml(name: &str, path: &str, doc: &str) -> Result<(), RenderError> {
    serde_saphyr::from_str::<serde::de::IgnoredAny>(doc)
        .map(|_| ())
        .map_err(|e| RenderError::InvalidYaml {
            name: name.to_string(),
            path: path.to_string(),
            reason: e.without_snippet().to_string(),
        })
}

/// Renders every file of the output directory (plaintext; encryption is a later step).
pub fn render(
    plan: &Plan,
    rollout: &Rollout,
    m: &Materials,
    opts: &RenderOptions<'_>,
) -> Result<Outputs, RenderError> {
    let env = environment(opts.templates)?;
    let mut out = Outputs::default();
    let bundles = model::bundles(m, plan.strategy);
    let secret_file = repo::secret_file_name(opts.encrypted);
    let ksops = opts.encrypted && plan.gitops.engine == Engine::Argocd;
    let ctx = ClusterContext {
        env: &env,
        plan,
        rollout,
        bundles: &bundles,
        opts,
        secret_file,
        ksops,
    };
    // Clusters are independent: render them on every core, then merge in plan order.
    let rendered = parallel::map(&m.clusters, |cm| render_cluster(&ctx, cm), |_, _| {});
    let mut active_names = BTreeMap::new();
    for (cm, files) in m.clusters.iter().zip(rendered) {
        let files = files?;
        out.files.extend(files.files);
        out.locked.extend(files.locked);
        active_names.insert(
            cm.name.clone(),
            phase_dir(plan.strategy, active_phase(opts, &cm.name)),
        );
    }

    for (tpl, path) in [
        ("prereq-helm-values.yaml.j2", repo::PREREQ_HELM_VALUES),
        ("prereq-istiooperator.yaml.j2", repo::PREREQ_ISTIOOPERATOR),
    ] {
        let text = render_yaml(&env, tpl, path, minijinja::context! { plan => &plan.name })?;
        out.add(path.to_string(), text, false);
    }

    let plan_file = plan.file.file_name().map_or_else(
        || plan.file.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    let text = render_one(
        &env,
        "ROLLOUT.md.j2",
        minijinja::context! {
            r => Serde(rollout), plan_file, encrypted => opts.encrypted, active => active_names,
            intermediates => rollout.strategy == model::Strategy::Intermediates,
            last => rollout.last_phase(),
            waves => rollout.waves(),
            wave_of => rollout.clusters.iter().map(|c| (c.name.clone(), rollout.wave_of(&c.name))).collect::<BTreeMap<_, _>>(),
        },
    )?;
    out.add(repo::ROLLOUT_MD.into(), text, false);
    // The public model, for `verify`, `promote` and `status` (no private material in it).
    let mut json = serde_json::to_string_pretty(rollout).expect("the rollout model serializes");
    json.push('\n');
    out.add(repo::ROLLOUT_JSON.into(), json, false);
    Ok(out)
}

/// What every cluster's files are rendered from.
struct ClusterContext<'a> {
    env: &'a Environment<'static>,
    plan: &'a Plan,
    rollout: &'a Rollout,
    bundles: &'a [Vec<u8>],
    opts: &'a RenderOptions<'a>,
    secret_file: &'static str,
    ksops: bool,
}

/// A cluster's active phase: kept from the previous render, 1 on the first. A cluster that
/// joins a fleet already rendered starts at the fleet's lowest active phase: a phase every
/// other cluster is at or one step past, so the skew rule holds (past phase 2 it signs with
/// B's intermediate from the start, with the bundle every other cluster carries).
fn active_phase(opts: &RenderOptions<'_>, cluster: &str) -> u8 {
    opts.active
        .get(cluster)
        .copied()
        .unwrap_or_else(|| opts.active.values().min().copied().unwrap_or(1))
}

/// The files of one cluster: its phases, pointer, verify RBAC and GitOps wiring.
fn render_cluster(ctx: &ClusterContext<'_>, cm: &ClusterMaterials) -> Result<Outputs, RenderError> {
    let ClusterContext {
        env,
        plan,
        rollout,
        opts,
        ..
    } = *ctx;
    let mut out = Outputs::default();
    let active = active_phase(opts, &cm.name);
    for phase in &rollout.phases[1..] {
        render_phase(ctx, cm, phase, &mut out)?;
    }
    for (tpl, file) in [
        ("verify-rbac.yaml.j2", "rbac.yaml"),
        ("verify-rbac-secret.yaml.j2", "rbac-secret-read.yaml"),
    ] {
        let path = repo::verify_rbac(&cm.name, file);
        let text = render_one(
            env,
            tpl,
            minijinja::context! { cluster => &cm.name, namespace => &plan.mesh.istio_namespace, secret_name => &plan.mesh.secret_name },
        )?;
        for doc in text.split("\n---\n") {
            check_yaml(tpl, &path, doc)?;
        }
        out.add(path, text, false);
    }
    let ppath = repo::pointer(&cm.name);
    let text = render_yaml(
        env,
        "pointer-kustomization.yaml.j2",
        &ppath,
        minijinja::context! { plan => &plan.name, cluster => &cm.name, active => repo::pointer_resource(plan.strategy, active) },
    )?;
    out.add(ppath, text, false);

    render_engine(ctx, cm, &mut out)?;
    Ok(out)
}

/// One phase of a cluster: its Secret, its kustomization and (KSOPS) its generator.
fn render_phase(
    ctx: &ClusterContext<'_>,
    cm: &ClusterMaterials,
    phase: &model::Phase,
    out: &mut Outputs,
) -> Result<(), RenderError> {
    let ClusterContext {
        env,
        plan,
        bundles,
        secret_file,
        ksops,
        ..
    } = *ctx;
    let n = phase.number;
    let (_, signer) = model::signer_for(plan.strategy, n, &cm.current, &cm.new);
    let bundle = &bundles[usize::from(n) - 1];
    let content = secret_content(plan.mesh.secret_format, &signer, bundle);
    let secret = secret_view(plan, phase, &signer, &content, bundle);
    let pdir = repo::phase_path(plan.strategy, &cm.name, n);
    let path = format!("{pdir}/{secret_file}");
    let text = render_yaml(
        env,
        "secret.yaml.j2",
        &path,
        minijinja::context! { secret => Serde(&secret) },
    )?;
    if signer.cert.key.is_none() {
        out.locked.insert(path.clone());
    }
    out.add(path, text, true);
    let probe_path = repo::probe_file(plan.strategy, &cm.name, n);
    if let Some(probe) = probe(ctx, &probe_path, &signer, &content)? {
        out.add(probe_path, probe, false);
    }
    let gen_file = repo::KSOPS_GENERATOR;
    let kpath = format!("{pdir}/kustomization.yaml");
    let text = render_yaml(
        env,
        "phase-kustomization.yaml.j2",
        &kpath,
        minijinja::context! {
            plan => &plan.name, cluster => &cm.name, phase => Serde(phase),
            ksops, secret_file => if ksops { gen_file } else { secret_file },
        },
    )?;
    out.add(kpath, text, false);
    if ksops {
        let gpath = format!("{pdir}/{gen_file}");
        let text = render_yaml(
            env,
            "ksops-generator.yaml.j2",
            &gpath,
            minijinja::context! { name => format!("{}-phase-{n}", plan.mesh.secret_name), file => format!("./{secret_file}") },
        )?;
        out.add(gpath, text, false);
    }
    Ok(())
}

/// A phase's probe chain (public): the previous one while it still stands for the phase,
/// otherwise a new one from the signer's key; `None` when the key is locked and there is no
/// valid previous probe (verify then reports it missing).
fn probe(
    ctx: &ClusterContext<'_>,
    path: &str,
    signer: &crate::materials::Signer,
    content: &SecretContent,
) -> Result<Option<Vec<u8>>, RenderError> {
    let entry = |k: &str| {
        content
            .public
            .iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default()
    };
    // What istiod serves after a leaf, as `verify offline` reads it from the Secret.
    let (chain, bundle) = match ctx.plan.mesh.secret_format {
        SecretFormat::Istiod => (entry("cert-chain.pem").to_vec(), entry("root-cert.pem")),
        SecretFormat::KubernetesTls => (
            [entry("tls.crt"), entry("ca.crt")].concat(),
            entry("ca.crt"),
        ),
    };
    let td = &ctx.plan.mesh.trust_domain;
    let err = |reason: String| RenderError::Probe {
        path: path.to_string(),
        reason,
    };
    let signer_der = pki::split_certificates(signer.cert.cert_pem.as_bytes())
        .map_err(|e| err(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| err("the signing certificate is empty".to_string()))?;
    if let Some(old) = ctx.opts.probes.get(path)
        && crate::handshake::check_probe(old, td, &signer_der, &chain, bundle).is_ok()
    {
        return Ok(Some(old.clone()));
    }
    let Some(key) = signer.cert.key.as_ref() else {
        return Ok(None);
    };
    crate::handshake::issue_probe(td, &signer.cert.cert_pem, key.expose(), &chain, bundle)
        .map(|p| Some(p.into_bytes()))
        .map_err(|e| err(e.to_string()))
}

/// The phase Secret as the template sees it: labels, fingerprint annotations, sorted data.
fn secret_view(
    plan: &Plan,
    phase: &model::Phase,
    signer: &crate::materials::Signer,
    content: &SecretContent,
    bundle: &[u8],
) -> SecretView {
    let n = phase.number;
    let mut annotations = vec![
        (keys::PUBLIC_SHA256.to_string(), content.public_sha256()),
        (keys::SIGNER_SHA256.to_string(), signer.cert.fingerprint()),
        (keys::BUNDLE_SHA256.to_string(), pki::sha256_hex(bundle)),
    ];
    match plan.gitops.engine {
        Engine::Flux => annotations.push((
            "kustomize.toolkit.fluxcd.io/prune".into(),
            "disabled".into(),
        )),
        Engine::Argocd => annotations.push((
            "argocd.argoproj.io/sync-options".into(),
            "Prune=false,Delete=false".into(),
        )),
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut data: Vec<(String, String)> = content
        .public
        .iter()
        .map(|(k, v)| (k.to_string(), b64.encode(v)))
        .collect();
    data.push((
        content.private.0.to_string(),
        b64.encode(&content.private.1),
    ));
    data.sort();
    SecretView {
        name: plan.mesh.secret_name.clone(),
        namespace: plan.mesh.istio_namespace.clone(),
        type_: plan.mesh.secret_format.secret_type(),
        labels: vec![
            (keys::MANAGED_BY.into(), "rootroll".into()),
            (keys::PLAN.into(), plan.name.clone()),
            (keys::PHASE.into(), n.to_string()),
            (keys::PHASE_NAME.into(), phase.name.to_string()),
        ],
        annotations,
        data,
    }
}

/// The Flux Kustomization or Argo CD Application of a cluster.
fn render_engine(
    ctx: &ClusterContext<'_>,
    cm: &ClusterMaterials,
    out: &mut Outputs,
) -> Result<(), RenderError> {
    let ClusterContext {
        env, plan, opts, ..
    } = *ctx;
    let cdir = repo::cluster_dir(&cm.name);
    let repo_dir = if plan.gitops.repo_path == "." {
        format!("./{cdir}")
    } else {
        format!(
            "./{}/{cdir}",
            plan.gitops.repo_path.trim_start_matches("./")
        )
    };
    let name = repo::engine_object(&cm.name);
    let path = repo::engine_file(plan.gitops.engine, &cm.name);
    match plan.gitops.engine {
        Engine::Flux => {
            let text = render_yaml(
                env,
                "flux-kustomization.yaml.j2",
                &path,
                minijinja::context! { cluster => &cm.name, name, path => repo_dir, encrypted => opts.encrypted, decryption_secret => "sops-age" },
            )?;
            out.add(path, text, false);
        }
        Engine::Argocd => {
            let text = render_yaml(
                env,
                "argocd-application.yaml.j2",
                &path,
                minijinja::context! {
                    cluster => &cm.name, name, path => repo_dir, namespace => &plan.mesh.istio_namespace,
                    repo_url => &plan.gitops.repo_url, target_revision => &plan.gitops.target_revision,
                },
            )?;
            out.add(path, text, false);
        }
    }
    Ok(())
}

/// The `.sops.yaml` creation rules matching what rootroll writes, for `sops edit`: one rule
/// per cluster (its files go to the operators and that cluster's keys) and one for the key
/// state (operators only), anchored and most specific first; the shorthand has one rule for
/// the state and one for every other file, all to the operators. The key state has every
/// value encrypted, a phase Secret only its private keys ([`crate::sops::encrypted_regex_for`]).
fn sops_config(plan: &Plan) -> String {
    use crate::sops::{ALL_DATA_REGEX, PRIVATE_KEYS_REGEX};
    let g = &plan.gitops;
    let keys = |audience| {
        g.recipients_for(audience)
            .into_iter()
            .map(|r| r.key)
            .collect::<Vec<_>>()
            .join(",")
    };
    let rule = |path_regex: &str, regex: &str, audience| {
        format!(
            "  - path_regex: {path_regex}\n    encrypted_regex: {regex}\n    age: >-\n      {}\n",
            keys(audience)
        )
    };
    let mut out = String::from(
        "# Written by rootroll: `sops edit` on a file here re-encrypts it the way rootroll does.\n",
    );
    if g.roles.is_none() {
        out.push_str("creation_rules:\n");
        out.push_str(&rule(
            "state\\.sops\\.yaml$",
            ALL_DATA_REGEX,
            Audience::Operators,
        ));
        out.push_str(&rule(
            "\\.sops\\.yaml$",
            PRIVATE_KEYS_REGEX,
            Audience::Operators,
        ));
        return out;
    }
    out.push_str(
        "# One rule per path, most specific first: a cluster's files are readable by the operators\n\
         # and that cluster's keys, the key state by the operators only.\n\
         creation_rules:\n",
    );
    for c in &plan.clusters {
        let dir = regex::escape(&format!("{}/{}/", repo::CLUSTERS, c.name));
        out.push_str(&rule(
            &format!("^{dir}.*\\.sops\\.yaml$"),
            PRIVATE_KEYS_REGEX,
            Audience::Cluster(&c.name),
        ));
    }
    out.push_str(&rule(
        &format!("^{}$", regex::escape(repo::STATE_SOPS)),
        ALL_DATA_REGEX,
        Audience::Operators,
    ));
    out
}

/// A `render` run, as the command line asked for it.
pub struct Request<'a> {
    /// The validated plan.
    pub plan: &'a Plan,
    /// The output directory.
    pub out: &'a Path,
    /// Write private keys unencrypted.
    pub insecure_plaintext: bool,
    /// Compare only; write nothing.
    pub check: bool,
    /// Templates overriding the embedded ones.
    pub templates: Option<&'a Path>,
    /// The identities that may open the previous key state.
    pub identities: repo::Identities<'a>,
    /// The clock.
    pub now: time::OffsetDateTime,
}

/// What a `render` run did (or, with `check`, would do).
pub enum Outcome {
    /// The tree was written.
    Written {
        /// Per-file changes.
        changes: crate::repo::ChangeSet,
        /// `false` when every file was already up to date: nothing was written.
        wrote: bool,
        /// The CAs generated in this run, in plan order.
        generated: Vec<crate::state::StateId>,
        /// How many recipients the private keys were encrypted to (0: plaintext).
        recipients: usize,
        /// Encrypted files kept without comparing their content (no identity opens them).
        not_compared: Vec<String>,
    },
    /// `check`: every file is up to date; the encrypted files listed could be compared only
    /// by their public part (no identity opens them).
    UpToDate {
        /// Encrypted files whose content could not be compared.
        not_compared: Vec<String>,
    },
    /// `check`: these files would change.
    Drift(Vec<(String, crate::repo::Change)>),
    /// `check`: a certificate must be re-signed, but its issuer is locked (no identity), so the
    /// files holding it cannot be listed.
    DriftLocked {
        /// The certificate whose spec changed.
        id: crate::state::StateId,
    },
}

/// Why a render failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// Encryption was asked for but the plan lists no recipient.
    #[error(
        "{}: spec.gitops.ageRecipients is empty, so the CA private keys cannot be encrypted; \
         add the age public key of Flux/Argo CD and of each operator (`age-keygen -y KEYFILE`), \
         or pass --insecure-plaintext for a throwaway local render",
        plan.display()
    )]
    NoRecipients {
        /// The plan file.
        plan: PathBuf,
    },
    /// The previous render cannot be read.
    #[error(transparent)]
    Repo(#[from] repo::RepoError),
    /// Key material could not be made.
    #[error("give --identity FILE or set SOPS_AGE_KEY_FILE to open the key state")]
    Locked(#[source] crate::materials::MaterialsError),
    /// Key material could not be made.
    #[error(transparent)]
    Materials(#[from] crate::materials::MaterialsError),
    /// A template failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Encryption failed.
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
    /// Writing or comparing the tree failed.
    #[error(transparent)]
    Write(#[from] crate::repo::WriteError),
}

/// Renders a plan into its output directory: reads the previous render, materializes the key
/// material, renders, seals and writes (or compares, with `check`).
/// `progress` is called once per generated CA key (id, done, total).
pub fn execute(
    req: &Request<'_>,
    progress: crate::materials::Progress<'_>,
) -> Result<Outcome, ExecuteError> {
    use crate::materials::{MaterialsError, materialize};
    let plan = req.plan;
    let encrypted = !req.insecure_plaintext;
    if encrypted && plan.gitops.operators().is_empty() {
        return Err(ExecuteError::NoRecipients {
            plan: plan.file.clone(),
        });
    }
    let previous = repo::Previous::read(
        req.out,
        plan.strategy,
        plan.clusters.iter().map(|c| c.name.as_str()),
        &req.identities,
    )?;
    let materials = match materialize(plan, &previous.state, req.now, progress) {
        Ok(m) => m,
        Err(MaterialsError::IssuerLocked { id }) if req.check => {
            return Ok(Outcome::DriftLocked { id });
        }
        Err(e @ MaterialsError::IssuerLocked { .. }) => return Err(ExecuteError::Locked(e)),
        Err(e) => return Err(e.into()),
    };
    let rollout = model::compile(plan, Some(&materials));
    // The previous probes, kept while they stand for their phase.
    let probes = plan
        .clusters
        .iter()
        .flat_map(|c| {
            rollout.phases[1..]
                .iter()
                .map(|p| repo::probe_file(plan.strategy, &c.name, p.number))
        })
        .filter_map(|path| Some((path.clone(), std::fs::read(req.out.join(&path)).ok()?)))
        .collect();
    let opts = RenderOptions {
        templates: req.templates,
        encrypted,
        active: previous.active,
        probes,
    };
    let mut outputs = render(plan, &rollout, &materials, &opts)?;
    let state_path = if encrypted {
        repo::STATE_SOPS
    } else {
        repo::STATE_PLAIN
    };
    if !materials.state.is_unlocked() {
        outputs.locked.insert(state_path.to_string());
    }
    let state_yaml = materials.state.to_yaml(&plan.name);
    outputs.add(state_path.into(), state_yaml.as_bytes(), true);
    let mut not_compared = Vec::new();
    if encrypted {
        outputs.add(repo::SOPS_CONFIG.into(), sops_config(plan), false);
        let locked = outputs.locked.clone();
        let sealed = crate::seal::seal(
            &mut outputs,
            &crate::seal::SealOptions {
                existing: &previous.files,
                gitops: &plan.gitops,
                locked: &locked,
                identities: req.identities.ids,
                now: req.now,
                dry_run: req.check,
            },
        )?;
        not_compared = sealed.not_compared;
    }
    if req.check {
        let drift: Vec<_> = repo::diff(req.out, &outputs)?
            .into_iter()
            .filter(|(_, c)| *c != crate::repo::Change::Unchanged)
            .collect();
        return Ok(if drift.is_empty() {
            Outcome::UpToDate { not_compared }
        } else {
            Outcome::Drift(drift)
        });
    }
    let written = repo::write(req.out, &outputs)?;
    Ok(Outcome::Written {
        changes: written.changes,
        wrote: written.wrote,
        generated: materials.generated,
        recipients: if encrypted {
            plan.gitops.all_recipients().len()
        } else {
            0
        },
        not_compared,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(gitops: &str, east: &str, west: &str) -> Plan {
        let text = format!(
            "apiVersion: rootroll.dev/v1alpha1\nkind: RotationPlan\nmetadata: {{name: t}}\nspec:\n  gitops:\n{gitops}  roots:\n    current: {{generate: {{subject: {{commonName: A}}}}}}\n    new: {{generate: {{subject: {{commonName: B}}}}}}\n  clusters:\n    - name: us\n      intermediates: {{current: {{generate: {{}}}}, new: {{generate: {{}}}}}}\n{east}    - name: us-east\n      intermediates: {{current: {{generate: {{}}}}, new: {{generate: {{}}}}}}\n{west}"
        );
        let now = time::macros::datetime!(2027-01-01 00:00 UTC);
        match crate::plan::validate(Path::new("t.yaml"), text.as_bytes(), now) {
            Ok(p) => p,
            Err(d) => panic!(
                "{}",
                d.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }

    const OP: &str = "age1c99f55nm8ja9dr5zsvsjktgtwdchreyn38hanrzzzcevmfxst4sq3j6krc";
    const US: &str = "age1mxurxdsm6rrurcgt9yj95l7zk75xz2qjcjga9klucjyy0a479e5sy2sesl";
    const EAST: &str = "age1klv9ysd66trn5pee33ma7qw0q4vpz0mcrmcwjc27qkqys24pk49q0yt8v7";

    /// The rules as sops reads them: (path_regex, encrypted_regex, age).
    fn rules(config: &str) -> Vec<(String, String, String)> {
        let v: serde_json::Value = serde_saphyr::from_str(config).unwrap();
        v["creation_rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap().to_string();
                (s("path_regex"), s("encrypted_regex"), s("age"))
            })
            .collect()
    }

    /// The recipients sops picks for `path`: the first rule whose path_regex matches.
    fn chosen(rules: &[(String, String, String)], path: &str) -> Option<String> {
        rules
            .iter()
            .find(|(re, _, _)| regex::Regex::new(re).unwrap().is_match(path))
            .map(|(_, _, age)| age.clone())
    }

    #[test]
    fn sops_rules_give_each_path_exactly_its_recipients() {
        let p = plan(
            &format!(
                "    recipients: {{op: {OP}, flux-us: {US}, flux-us-east: {EAST}}}\n    operators: [op]\n"
            ),
            "      recipients: [flux-us]\n",
            "      recipients: [flux-us-east]\n",
        );
        let rules = rules(&sops_config(&p));
        assert_eq!(rules.len(), 3);
        // A cluster's Secrets have only their private keys encrypted; the key state all of it.
        let regexes: Vec<&str> = rules.iter().map(|(_, e, _)| e.as_str()).collect();
        assert_eq!(
            regexes,
            [
                crate::sops::PRIVATE_KEYS_REGEX,
                crate::sops::PRIVATE_KEYS_REGEX,
                crate::sops::ALL_DATA_REGEX
            ]
        );
        let phase = "istio-ca/phases/1-initial/cacerts.sops.yaml";
        assert_eq!(
            chosen(&rules, &format!("clusters/us/{phase}")),
            Some(format!("{OP},{US}"))
        );
        // A cluster whose name extends another's gets its own rule, not the shorter one's.
        assert_eq!(
            chosen(&rules, &format!("clusters/us-east/{phase}")),
            Some(format!("{OP},{EAST}"))
        );
        assert_eq!(chosen(&rules, repo::STATE_SOPS), Some(OP.to_string()));
        // Anchored: no other path, and no file that merely contains a cluster's path.
        for other in [
            "x/clusters/us/a.sops.yaml",
            "clusters/us/a.yaml",
            "clusters/usx/a.sops.yaml",
            "x/.rootroll/state.sops.yaml",
        ] {
            assert_eq!(chosen(&rules, other), None, "{other}");
        }
    }

    #[test]
    fn the_shorthand_gives_every_file_to_the_operators() {
        let p = plan(&format!("    ageRecipients: [{OP}, {US}]\n"), "", "");
        assert_eq!(
            sops_config(&p),
            format!(
                "# Written by rootroll: `sops edit` on a file here re-encrypts it the way rootroll does.\ncreation_rules:\n  - path_regex: state\\.sops\\.yaml$\n    encrypted_regex: {}\n    age: >-\n      {OP},{US}\n  - path_regex: \\.sops\\.yaml$\n    encrypted_regex: {}\n    age: >-\n      {OP},{US}\n",
                crate::sops::ALL_DATA_REGEX,
                crate::sops::PRIVATE_KEYS_REGEX
            )
        );
    }
}
