//! `rootroll init --from-dir`: scaffold a commented plan that imports today's CA from Istio
//! Makefile output or a `kubernetes.io/tls` set and generates the new root and intermediates.
//! The scaffolded plan is validated as `plan` would validate it, before anything is written.
//! `--from-cluster` imports a live `cacerts` Secret, `--from-render` a finished tree's phase-4
//! Secrets (the next rotation); both keep the intermediate's key only in an encrypted key state.

use std::path::{Path, PathBuf};

use crate::plan::PlanError;

/// What was found in the directory.
#[derive(Debug)]
pub struct Scaffold {
    /// The scaffolded plan, with comments, already validated.
    pub yaml: String,
    /// Names of the clusters found (one per import directory).
    pub clusters: Vec<String>,
    /// `makefile` or `tls`: which file set the directories hold.
    pub layout: &'static str,
    /// `true` when the root's private key was found next to the root bundle.
    pub root_key_found: bool,
}

/// Errors while scaffolding.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The directory holds no CA material rootroll can import.
    #[error("{} holds neither Istio Makefile output (ca-cert.pem, ca-key.pem, root-cert.pem) nor a tls.crt/tls.key/ca.crt set, nor subdirectories with them", dir.display())]
    NothingFound {
        /// The directory that was searched.
        dir: PathBuf,
    },
    /// The directory or one of its entries could not be read.
    #[error("cannot read {}", dir.display())]
    Read {
        /// The directory that failed.
        dir: PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
    /// A path that a plan cannot hold exactly.
    #[error("{path:?} {why}: a plan cannot name it exactly; rename or move the directory")]
    UnsafePath {
        /// The path found.
        path: PathBuf,
        /// Why a plan cannot hold it (for example `is not UTF-8`).
        why: &'static str,
    },
    /// What was found does not make a valid plan; `source` holds every problem, each naming
    /// the imported file, with the codes `plan` reports.
    #[error("{} cannot be imported", dir.display())]
    Invalid {
        /// The directory that was imported.
        dir: PathBuf,
        /// Every problem the validation found.
        #[source]
        source: PlanError,
    },
}

fn is_cluster_dir(d: &Path) -> Option<&'static str> {
    if d.join("tls.crt").is_file() && d.join("tls.key").is_file() {
        Some("tls")
    } else if d.join("ca-cert.pem").is_file() && d.join("ca-key.pem").is_file() {
        Some("makefile")
    } else {
        None
    }
}

/// `s` as a DNS label (a cluster name): lower case, other characters as `-`, at most 63.
pub fn dns_label(s: &str) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out = out.trim_matches('-').to_string();
    out.truncate(63);
    if out.is_empty() {
        "cluster".into()
    } else {
        out
    }
}

/// Relative path from `base` (a directory) to `target`, both absolute or both relative to cwd.
/// Refused when YAML could not carry it exactly: not UTF-8, or with a line break or another
/// control character.
fn relative(base: &Path, target: &Path) -> Result<String, InitError> {
    let unsafe_path = |why| InitError::UnsafePath {
        path: target.to_path_buf(),
        why,
    };
    let Some(text) = target.to_str() else {
        return Err(unsafe_path("is not UTF-8"));
    };
    if text.chars().any(char::is_control) {
        return Err(unsafe_path(
            "holds a line break or another control character",
        ));
    }
    // A plan written to `plan.yaml` has the empty path as its directory: the current one.
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (b, t) = (abs(base), abs(target));
    let bc: Vec<_> = b.components().collect();
    let tc: Vec<_> = t.components().collect();
    let common = bc.iter().zip(&tc).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_string(), bc.len() - common).collect();
    parts.extend(
        tc[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    Ok(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

/// Builds the plan text and validates it at `now`. `plan_dir` is where the plan will be
/// written (import paths are relative to it); `name` the plan name.
pub fn scaffold(
    dir: &Path,
    plan_dir: &Path,
    name: &str,
    cluster: Option<&str>,
    now: time::OffsetDateTime,
) -> Result<Scaffold, InitError> {
    let read_err = |source| InitError::Read {
        dir: dir.to_path_buf(),
        source,
    };
    // Either DIR is one cluster's directory, or it is a Makefile top directory
    // (root-cert.pem, root-key.pem) with one subdirectory per cluster.
    let mut clusters: Vec<(String, PathBuf, &'static str)> = Vec::new();
    if let Some(layout) = is_cluster_dir(dir) {
        let cname = cluster.map_or_else(
            || {
                dns_label(
                    &dir.file_name()
                        .map_or("cluster".into(), |n| n.to_string_lossy().into_owned()),
                )
            },
            str::to_string,
        );
        clusters.push((cname, dir.to_path_buf(), layout));
    } else {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(read_err)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        entries.sort();
        for p in entries {
            if let Some(layout) = is_cluster_dir(&p) {
                let cname = dns_label(
                    &p.file_name()
                        .map_or("cluster".into(), |n| n.to_string_lossy().into_owned()),
                );
                clusters.push((cname, p, layout));
            }
        }
    }
    if clusters.is_empty() {
        return Err(InitError::NothingFound {
            dir: dir.to_path_buf(),
        });
    }
    let layout = clusters[0].2;
    // The current root: the top directory if it has root-cert.pem (with its key), else the
    // first cluster directory's copy.
    let (root_dir, root_key_found) =
        if dir.join("root-cert.pem").is_file() && is_cluster_dir(dir).is_none() {
            (dir.to_path_buf(), dir.join("root-key.pem").is_file())
        } else {
            (
                clusters[0].1.clone(),
                clusters[0].1.join("root-key.pem").is_file(),
            )
        };
    let y = plan_yaml(&PlanText {
        header: format!(
            "# Istio root CA rotation plan, scaffolded by `rootroll init --from-dir {}`.\n\
             # Review every field, then: rootroll plan THIS-FILE; rootroll render THIS-FILE --out DIR\n",
            dir.display()
        ),
        name,
        format: secret_format(layout),
        recipients: &[],
        root_dir: relative(plan_dir, &root_dir)?,
        clusters: clusters
            .iter()
            .map(|(cname, cdir, _)| Ok((cname.clone(), relative(plan_dir, cdir)?, false)))
            .collect::<Result<_, InitError>>()?,
        new_root_cn: format!("Root CA ({name})"),
        carry: None,
    });
    check(&y, dir, plan_dir, now)?;
    Ok(Scaffold {
        yaml: y,
        clusters: clusters.into_iter().map(|c| c.0).collect(),
        layout,
        root_key_found,
    })
}

/// Validates the scaffolded plan as `plan` will, so that `init` never writes a plan `plan`
/// refuses. The problems are those of the imported files: they name `dir` (there is no plan
/// file yet to point into).
fn check(
    yaml: &str,
    dir: &Path,
    plan_dir: &Path,
    now: time::OffsetDateTime,
) -> Result<(), InitError> {
    // Imports resolve against the plan's directory; the file name itself is never read.
    let plan_path = plan_dir.join("plan.yaml");
    match crate::plan::validate(&plan_path, yaml.as_bytes(), now) {
        Ok(_) => Ok(()),
        Err(mut diagnostics) => {
            for d in &mut diagnostics {
                d.file = dir.to_path_buf();
                (d.line, d.column, d.source) = (0, 0, None);
            }
            Err(InitError::Invalid {
                dir: dir.to_path_buf(),
                source: PlanError::Invalid {
                    path: dir.to_path_buf(),
                    diagnostics,
                },
            })
        }
    }
}

/// The `secretFormat` of a directory or Secret layout.
fn secret_format(layout: &str) -> &'static str {
    if layout == "tls" {
        "kubernetes.io/tls"
    } else {
        "istiod"
    }
}

/// What a scaffolded plan says; both `init` modes write it with [`plan_yaml`].
struct PlanText<'a> {
    /// The opening comment lines.
    header: String,
    name: &'a str,
    format: &'static str,
    recipients: &'a [String],
    /// Where today's root-cert.pem is, relative to the plan.
    root_dir: String,
    /// (cluster name, its current intermediate's directory, whether that key is in the key
    /// state rather than the directory).
    clusters: Vec<(String, String, bool)>,
    /// The new root's common name (it must differ from the current root's).
    new_root_cn: String,
    /// The mesh, timing and gitops of a finished rotation, carried into the next plan
    /// (`--from-render`); `None`: the template's commented defaults.
    carry: Option<Carry>,
}

/// What the next plan keeps from a finished rollout (`--from-render`).
#[derive(serde::Serialize)]
struct Carry {
    trust_domain: String,
    istio_namespace: String,
    secret_name: String,
    data_plane: &'static str,
    min_istio_version: String,
    workload_cert_ttl: String,
    propagation_delay: String,
    safety_margin: String,
    engine: &'static str,
    repo_path: String,
    /// Argo CD's repository and revision, as the finished rollout had them.
    repo_url: Option<String>,
    target_revision: String,
    /// `spec.rollout.expiry`, as the finished rollout had it.
    expiry_warn: String,
    expiry_fail: String,
    /// `spec.rollout.waves` (the clusters carry over, so their promotion order does too).
    waves: Vec<Vec<String>>,
    /// The recipients by role, when the finished plan had them and no `--age-recipient`
    /// replaces them: least privilege carries over to the next rotation.
    roles: Option<CarryRoles>,
}

/// `spec.gitops.recipients`/`operators` and each cluster's `recipients`.
#[derive(serde::Serialize)]
struct CarryRoles {
    /// (name, age1… key), in name order.
    recipients: Vec<(String, String)>,
    operators: Vec<String>,
    clusters: std::collections::BTreeMap<String, Vec<String>>,
}

/// The commented plan text (templates/plan.yaml.j2): today's root and intermediates imported,
/// new ones generated. Every value goes through `|tojson`, so a directory named
/// `my certs: prod #1` is one quoted YAML string, as render writes its values.
fn plan_yaml(p: &PlanText<'_>) -> String {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .expect("the default syntax with keep_trailing_newline is valid"),
    );
    env.add_template("plan.yaml.j2", include_str!("../templates/plan.yaml.j2"))
        .expect("the embedded plan template parses");
    // Comment lines cannot carry a line break (it would end the comment): shown as `?`.
    let header: Vec<String> = p
        .header
        .lines()
        .map(|l| {
            l.trim_start_matches('#')
                .trim_start()
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect()
        })
        .collect();
    let clusters: Vec<_> = p
        .clusters
        .iter()
        .map(|(name, dir, key_in_state)| {
            minijinja::context! { name, dir, key_in_state }
        })
        .collect();
    env.get_template("plan.yaml.j2")
        .and_then(|t| {
            t.render(minijinja::context! {
                header,
                name => p.name,
                format => p.format,
                recipients => p.recipients.to_vec(),
                root_dir => &p.root_dir,
                clusters,
                new_root_cn => &p.new_root_cn,
                carry => minijinja::Value::from(minijinja::value::Serde(&p.carry)),
            })
        })
        .expect("the embedded plan template renders strings only")
}

/// What `init --from-cluster` makes of a live `cacerts` Secret.
pub struct FromSecret {
    /// The plan text.
    pub yaml: String,
    /// Public files to write, relative to the plan's directory (exact bytes from the Secret).
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// The current intermediate (PEM) and its key, for the encrypted key state only.
    pub cert_pem: String,
    /// The current intermediate's private key, kept out of the plan and the public files.
    pub key: crate::pki::PrivateKeyPem,
    /// `makefile` or `tls`: which keys the Secret used.
    pub layout: &'static str,
}

/// Builds a plan from the data of a live `cacerts` Secret. The root bundle and the chain are
/// kept byte for byte as public files; the key is returned for the encrypted state, never
/// written in plaintext.
pub fn from_secret(
    data: &std::collections::BTreeMap<String, Vec<u8>>,
    name: &str,
    cluster: &str,
    recipients: &[String],
) -> Result<FromSecret, String> {
    if data.contains_key("istio-generated") {
        return Err("the cacerts Secret has `istio-generated`: istiod runs a self-signed CA from it; \
                    rotate that CA by importing istio-ca-secret's ca-cert.pem/ca-key.pem with --from-dir"
            .into());
    }
    if data.contains_key("ca-crl.pem") {
        return Err(format!(
            "the cacerts Secret's `ca-crl.pem` {}; {}",
            crate::plan::CRL_WHY,
            crate::plan::CRL_FIX
        ));
    }
    let dir = PathBuf::from(format!("{cluster}-current"));
    let (layout, public, cert_key, key_key) = if data.contains_key("tls.crt") {
        ("tls", vec!["tls.crt", "ca.crt"], "tls.crt", "tls.key")
    } else {
        (
            "makefile",
            vec!["ca-cert.pem", "cert-chain.pem", "root-cert.pem"],
            "ca-cert.pem",
            "ca-key.pem",
        )
    };
    for k in public.iter().chain([&key_key]) {
        if !data.contains_key(*k) {
            return Err(format!(
                "the cacerts Secret has no `{k}`; its keys are: {}",
                data.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let files = public
        .iter()
        .map(|k| (dir.join(k), data[*k].clone()))
        .collect();
    let key_text = String::from_utf8(data[key_key].clone())
        .map_err(|_| format!("`{key_key}` is not PEM text"))?;
    let cert_ders = crate::pki::split_certificates(&data[cert_key])
        .map_err(|e| format!("`{cert_key}`: {e}"))?;
    let cert_pem = crate::pki::der_to_pem(&cert_ders[0]);
    let yaml = plan_yaml(&PlanText {
        header: format!(
            "# Istio root CA rotation plan, scaffolded by `rootroll init --from-cluster` from the live cacerts Secret.\n\
             # {dir}/ holds its public files byte for byte; the current intermediate's key is only in the\n\
             # encrypted key state of the output directory (key: state).\n",
            dir = dir.display()
        ),
        name,
        format: secret_format(layout),
        recipients,
        root_dir: dir.display().to_string(),
        clusters: vec![(cluster.to_string(), dir.display().to_string(), true)],
        new_root_cn: format!("Root CA ({name})"),
        carry: None,
    });
    Ok(FromSecret {
        yaml,
        files,
        cert_pem,
        key: crate::pki::PrivateKeyPem::new(key_text),
        layout,
    })
}

/// `init --from-dir`: scaffolds the plan and, with `output`, writes it there atomically
/// (`force` to overwrite). Import paths are made relative to the plan's directory.
pub fn from_dir(
    dir: &Path,
    output: Option<&Path>,
    name: &str,
    cluster: Option<&str>,
    force: bool,
    now: time::OffsetDateTime,
) -> Result<Scaffold, FromClusterError> {
    let plan_dir = output
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let s = scaffold(dir, &plan_dir, name, cluster, now)?;
    if let Some(path) = output {
        if path.exists() && !force {
            return Err(FromClusterError::Exists {
                path: path.to_path_buf(),
            });
        }
        crate::repo::write_file_atomic(path, s.yaml.as_bytes())?;
    }
    Ok(s)
}

/// An `init --from-cluster` request; the Secret's data was read by the caller.
pub struct FromCluster<'a> {
    /// The live Secret's data.
    pub data: &'a std::collections::BTreeMap<String, Vec<u8>>,
    /// Plan name.
    pub name: &'a str,
    /// Cluster name.
    pub cluster: &'a str,
    /// age recipients of the key state and of the plan's Secrets.
    pub recipients: &'a [String],
    /// Where the plan goes (its public files go next to it).
    pub output: &'a Path,
    /// The new output directory receiving the encrypted key state.
    pub out: &'a Path,
    /// Overwrite `output`.
    pub force: bool,
    /// The clock (for the SOPS metadata).
    pub now: time::OffsetDateTime,
}

/// What `init --from-cluster` wrote.
pub struct FromClusterDone {
    /// The layout of the Secret (`makefile` or `tls`).
    pub layout: &'static str,
    /// The directory holding the public files.
    pub public_dir: PathBuf,
    /// The encrypted key state.
    pub state: PathBuf,
}

/// Why `init` failed; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum FromClusterError {
    /// The plan file exists.
    #[error("{} exists; pass --force to overwrite it", path.display())]
    Exists {
        /// The plan file.
        path: PathBuf,
    },
    /// The output directory is not empty.
    #[error("{} is not empty: --from-cluster starts a new output directory", path.display())]
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// No recipient.
    #[error(
        "--from-cluster needs at least one --age-recipient: the imported CA key is only ever stored encrypted"
    )]
    NoRecipient,
    /// The Secret cannot be imported.
    #[error("{0}")]
    Secret(String),
    /// The directory cannot be scaffolded.
    #[error(transparent)]
    Scaffold(#[from] InitError),
    /// A recipient or the encryption failed.
    #[error(transparent)]
    Sops(#[from] crate::sops::SopsError),
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] crate::repo::WriteError),
    /// A directory could not be made.
    #[error("cannot create {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// `init --from-cluster`: writes the encrypted key state (the intermediate's key), then the
/// public files byte for byte next to the plan, then the plan, so that a plan never refers to
/// what could not be written.
pub fn from_cluster(req: &FromCluster<'_>) -> Result<FromClusterDone, FromClusterError> {
    use crate::state::{Entry, Generation, KeyState, StateId};
    if req.recipients.is_empty() {
        return Err(FromClusterError::NoRecipient);
    }
    let parsed: Vec<age::x25519::Recipient> = req
        .recipients
        .iter()
        .map(|r| crate::sops::parse_recipient(r))
        .collect::<Result<_, _>>()?;
    let to = Destination {
        output: req.output,
        out: req.out,
        force: req.force,
        now: req.now,
    };
    to.check()?;
    let s = from_secret(req.data, req.name, req.cluster, req.recipients)
        .map_err(FromClusterError::Secret)?;
    let mut st = KeyState::default();
    st.entries.insert(
        StateId::cluster(req.cluster, Generation::Current),
        Entry {
            spec: "imported".into(),
            cert: s.cert_pem.clone(),
            key: Some(s.key.clone()),
        },
    );
    let done = write_next(&s.yaml, &s.files, &st, &parsed, req.name, &to)?;
    Ok(FromClusterDone {
        layout: s.layout,
        public_dir: done.public_dir.join(format!("{}-current", req.cluster)),
        state: done.state,
    })
}

/// An `init --from-render` request: the next rotation from a finished tree.
pub struct FromRender<'a> {
    /// The finished rendered tree (every cluster at phase 4).
    pub dir: &'a Path,
    /// age identities that open its phase-4 Secrets.
    pub identities: &'a [age::x25519::Identity],
    /// The next plan's name.
    pub name: &'a str,
    /// age recipients of the next plan; empty: the finished rollout's.
    pub recipients: &'a [String],
    /// Where the plan goes (its public files go next to it).
    pub output: &'a Path,
    /// The next output directory, receiving the encrypted key state.
    pub out: &'a Path,
    /// Overwrite `output`.
    pub force: bool,
    /// The clock (SOPS metadata, the new root's name).
    pub now: time::OffsetDateTime,
}

/// Why `init --from-render` refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum FromRenderError {
    /// The tree cannot be read.
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    /// No identity was given or found.
    #[error(
        "--from-render needs an age identity that opens the phase-4 Secrets (--identity FILE, SOPS_AGE_KEY_FILE or SOPS_AGE_KEY): their keys become the next plan's current intermediates"
    )]
    NoIdentity,
    /// `--age-recipient` would replace the finished plan's recipients by role.
    #[error(
        "the finished plan names its recipients by role (spec.gitops.recipients, operators, each cluster's recipients): --age-recipient would encrypt every cluster's keys to the same recipients; drop --age-recipient to carry the roles into the next plan, then edit them there"
    )]
    RolesReplaced,
    /// The tree is an intermediate-only rotation, which `--from-render` does not continue.
    #[error(
        "the tree is an intermediate-only rotation (plan `{plan}`, strategy: intermediates): --from-render continues only a finished root rotation; start the next one with `rootroll init --from-cluster` on each cluster (it imports the live cacerts, today's intermediate with its key kept encrypted); nothing was written"
    )]
    IntermediatesTree {
        /// The finished rollout's plan name.
        plan: String,
    },
    /// A cluster is not at phase 4.
    #[error(
        "{cluster} is at phase {phase} ({pointer}): the rotation is not finished; promote every cluster to phase 4 first"
    )]
    NotFinished {
        /// The cluster.
        cluster: String,
        /// Its phase.
        phase: u8,
        /// Its pointer file.
        pointer: String,
    },
    /// A pointer or phase-4 Secret cannot be read, or does not belong to the rollout.
    #[error("{file}: {reason}")]
    Unusable {
        /// The file.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The identity cannot open a phase-4 Secret.
    #[error(
        "{file}: the identity cannot open it (give the identity of an operator it is encrypted to)"
    )]
    CannotOpen {
        /// The Secret.
        file: String,
        /// Why.
        #[source]
        source: Box<crate::sops::SopsError>,
    },
    /// Writing the next plan failed.
    #[error(transparent)]
    Write(#[from] FromClusterError),
}

/// The decrypted data of a phase Secret, base64-decoded; wiped on drop.
struct SecretData(std::collections::BTreeMap<String, Vec<u8>>);

impl Drop for SecretData {
    fn drop(&mut self) {
        for v in self.0.values_mut() {
            zeroize::Zeroize::zeroize(v);
        }
    }
}

/// Opens the phase-4 Secret of `cluster` and returns its data.
fn phase4_data(
    repo: &crate::repo::Repo,
    cluster: &str,
    ids: &[age::x25519::Identity],
) -> Result<SecretData, FromRenderError> {
    let unusable = |file: &str, reason: String| FromRenderError::Unusable {
        file: file.to_string(),
        reason,
    };
    let dir = crate::repo::phase_path(crate::model::Strategy::Roots, cluster, 4);
    let (rel, text) = match repo.phase_secret(cluster, 4) {
        Ok(Some(found)) => found,
        Ok(None) => return Err(unusable(&dir, "holds no cacerts Secret: re-render".into())),
        Err(e) => return Err(unusable(&dir, e)),
    };
    let plain = crate::sops::decrypt_yaml(&rel, &text, ids).map_err(|source| {
        FromRenderError::CannotOpen {
            file: rel.clone(),
            source: Box::new(source),
        }
    })?;
    let doc = crate::verify::offline::Wiped(
        serde_saphyr::from_str(&plain)
            .map_err(|e| unusable(&rel, format!("not YAML: {}", e.without_snippet())))?,
    );
    let label = &doc.0["metadata"]["labels"][crate::repo::keys::PLAN];
    if label.as_str() != Some(repo.rollout.plan.as_str()) {
        return Err(unusable(
            &rel,
            format!(
                "its {} label is {label}, not the rollout's plan `{}`: this Secret is from another plan",
                crate::repo::keys::PLAN,
                repo.rollout.plan
            ),
        ));
    }
    let mut data = SecretData(std::collections::BTreeMap::new());
    if let Some(map) = doc.0["data"].as_object() {
        for (k, v) in map {
            let bytes = v
                .as_str()
                .and_then(crate::verify::common::b64)
                .ok_or_else(|| unusable(&rel, format!("data `{k}` is not base64")))?;
            data.0.insert(k.clone(), bytes);
        }
    }
    Ok(data)
}

/// `init --from-render`: the next rotation's plan from a finished tree. Today's root (B) is
/// imported byte for byte from the phase-4 bundle and each cluster's phase-4 intermediate
/// becomes its current one, its key only in the encrypted key state of `out` (`key: state`);
/// a new root and new intermediates are generated. Mesh, timing and gitops carry over. Every
/// check runs before anything is written.
pub fn from_render(req: &FromRender<'_>) -> Result<FromClusterDone, FromRenderError> {
    use crate::state::{Entry, Generation, KeyState, StateId};
    let repo = crate::repo::Repo::open(req.dir)?;
    if repo.rollout.strategy == crate::model::Strategy::Intermediates {
        return Err(FromRenderError::IntermediatesTree {
            plan: repo.rollout.plan.clone(),
        });
    }
    if req.identities.is_empty() {
        return Err(FromRenderError::NoIdentity);
    }
    for c in &repo.clusters {
        let pointer = crate::repo::pointer(c);
        let phase = repo.active(c).map_err(|reason| FromRenderError::Unusable {
            file: pointer.clone(),
            reason,
        })?;
        if phase != 4 {
            return Err(FromRenderError::NotFinished {
                cluster: c.clone(),
                phase,
                pointer,
            });
        }
    }
    let rollout = &repo.rollout;
    // The roles carry over unless `--age-recipient` replaces them; the key state is then for
    // the operators only, as `render` encrypts it.
    let roles = rollout.gitops.roles.as_ref();
    if roles.is_some() && !req.recipients.is_empty() {
        // Least privilege is not dropped silently: each cluster's key reads only its own files.
        return Err(FromRenderError::RolesReplaced);
    }
    let recipients: Vec<String> = match roles {
        _ if !req.recipients.is_empty() => req.recipients.to_vec(),
        Some(r) => r
            .operators
            .iter()
            .filter_map(|o| r.recipients.get(o).cloned())
            .collect(),
        None => rollout.gitops.age_recipients.clone(),
    };
    if recipients.is_empty() {
        return Err(FromClusterError::NoRecipient.into());
    }
    let parsed: Vec<age::x25519::Recipient> = recipients
        .iter()
        .map(|r| crate::sops::parse_recipient(r))
        .collect::<Result<_, _>>()
        .map_err(FromClusterError::from)?;
    let mut files = Vec::new();
    let mut state = KeyState::default();
    let mut clusters = Vec::new();
    let mut layout = "makefile";
    let mut bundle: Option<(String, Vec<u8>)> = None;
    for c in &repo.clusters {
        let data = phase4_data(&repo, c, req.identities)?;
        let s = from_secret(&data.0, req.name, c, &recipients).map_err(|reason| {
            FromRenderError::Unusable {
                file: crate::repo::phase_path(crate::model::Strategy::Roots, c, 4),
                reason,
            }
        })?;
        let root_key = if s.layout == "tls" {
            "ca.crt"
        } else {
            "root-cert.pem"
        };
        match &bundle {
            None => bundle = Some((c.clone(), data.0[root_key].clone())),
            Some((first, b)) if *b != data.0[root_key] => {
                return Err(FromRenderError::Unusable {
                    file: crate::repo::phase_path(crate::model::Strategy::Roots, c, 4),
                    reason: format!(
                        "its phase-4 bundle differs from {first}'s: every cluster must trust the same root before the next rotation"
                    ),
                });
            }
            Some(_) => {}
        }
        layout = s.layout;
        state.entries.insert(
            StateId::cluster(c, Generation::Current),
            Entry {
                spec: "imported".into(),
                cert: s.cert_pem.clone(),
                key: Some(s.key.clone()),
            },
        );
        let dir = format!("{c}-current");
        clusters.push((c.clone(), dir, true));
        files.extend(s.files);
    }
    let root_dir = clusters
        .first()
        .map(|(_, d, _)| d.clone())
        .unwrap_or_default();
    let b_subject = rollout.new_root.subject().to_string();
    let mut new_root_cn = format!("Root CA ({}) {}", req.name, req.now.year());
    if b_subject.ends_with(&format!("CN={new_root_cn}")) {
        new_root_cn.push_str(" (next)");
    }
    let m = &rollout.mesh;
    let t = &rollout.timing;
    let yaml = plan_yaml(&PlanText {
        header: format!(
            "# The next Istio root CA rotation, scaffolded by `rootroll init --from-render` from the finished rotation `{}`.\n\
             # Today's root is phase 4's root-cert.pem, byte for byte ({root_dir}/); each cluster's current intermediate is\n\
             # its phase-4 one, whose key is only in the encrypted key state of the output directory (key: state).\n\
             # Render into a new directory, then replace the finished tree with it in one commit: the finished rotation\n\
             # stays in Git history.\n",
            rollout.plan
        ),
        name: req.name,
        format: secret_format(layout),
        recipients: &recipients,
        root_dir,
        clusters,
        new_root_cn,
        carry: Some(Carry {
            trust_domain: m.trust_domain.clone(),
            istio_namespace: m.istio_namespace.clone(),
            secret_name: m.secret_name.clone(),
            data_plane: match m.data_plane {
                crate::plan::DataPlane::Sidecar => "sidecar",
                crate::plan::DataPlane::Ambient => "ambient",
            },
            min_istio_version: String::from(m.min_istio_version),
            workload_cert_ttl: t.workload_cert_ttl.to_string(),
            propagation_delay: t.propagation_delay.to_string(),
            safety_margin: t.safety_margin.to_string(),
            engine: match rollout.gitops.engine {
                crate::plan::Engine::Flux => "flux",
                crate::plan::Engine::Argocd => "argocd",
            },
            repo_path: rollout.gitops.repo_path.clone(),
            repo_url: rollout.gitops.repo_url.clone(),
            target_revision: rollout.gitops.target_revision.clone(),
            expiry_warn: rollout.expiry.warn.to_string(),
            expiry_fail: rollout.expiry.fail.to_string(),
            waves: rollout.waves.clone(),
            roles: roles.map(|r| CarryRoles {
                recipients: r
                    .recipients
                    .iter()
                    .map(|(n, k)| (n.clone(), k.clone()))
                    .collect(),
                operators: r.operators.clone(),
                clusters: r.clusters.clone(),
            }),
        }),
    });
    let to = Destination {
        output: req.output,
        out: req.out,
        force: req.force,
        now: req.now,
    };
    write_next(&yaml, &files, &state, &parsed, req.name, &to).map_err(Into::into)
}

/// Where a scaffolded plan goes: the plan file (its public files next to it) and the new
/// output directory receiving the encrypted key state.
struct Destination<'a> {
    output: &'a Path,
    out: &'a Path,
    force: bool,
    now: time::OffsetDateTime,
}

impl Destination<'_> {
    /// The plan may be written (new, or `--force`) and `out` is new or empty.
    fn check(&self) -> Result<(), FromClusterError> {
        if self.output.exists() && !self.force {
            return Err(FromClusterError::Exists {
                path: self.output.to_path_buf(),
            });
        }
        if self.out.exists()
            && std::fs::read_dir(self.out)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            return Err(FromClusterError::NotEmpty {
                path: self.out.to_path_buf(),
            });
        }
        Ok(())
    }
}

/// Writes the encrypted key state into `out` (which must be new or empty), then the public
/// files next to the plan, then the plan, so a plan never refers to what was not written.
fn write_next(
    yaml: &str,
    files: &[(PathBuf, Vec<u8>)],
    state: &crate::state::KeyState,
    recipients: &[age::x25519::Recipient],
    name: &str,
    req: &Destination<'_>,
) -> Result<FromClusterDone, FromClusterError> {
    req.check()?;
    let plain = state.to_yaml(name);
    let sealed = crate::sops::encrypt_yaml(crate::repo::STATE_SOPS, &plain, recipients, req.now)?;
    let mut outputs = crate::repo::Outputs::default();
    outputs.files.insert(
        crate::repo::STATE_SOPS.into(),
        crate::repo::OutFile {
            bytes: sealed.into_bytes(),
            private: true,
        },
    );
    crate::repo::write(req.out, &outputs)?;
    let plan_dir = req
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    for (rel, bytes) in files {
        let p = plan_dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|source| FromClusterError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        crate::repo::write_file_atomic(&p, bytes)?;
    }
    crate::repo::write_file_atomic(req.output, yaml.as_bytes())?;
    Ok(FromClusterDone {
        layout: if files.iter().any(|(p, _)| p.ends_with("tls.crt")) {
            "tls"
        } else {
            "makefile"
        },
        public_dir: plan_dir.to_path_buf(),
        state: req.out.join(crate::repo::STATE_SOPS),
    })
}
