//! `rootroll init --from-dir`: scaffold a commented plan that imports today's CA from Istio
//! Makefile output or a `kubernetes.io/tls` set and generates the new root and intermediates.

use std::path::{Path, PathBuf};

/// What was found in the directory.
#[derive(Debug)]
pub struct Scaffold {
    pub yaml: String,
    pub clusters: Vec<String>,
    pub layout: &'static str,
    pub root_key_found: bool,
}

/// Errors while scaffolding.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{} holds neither Istio Makefile output (ca-cert.pem, ca-key.pem, root-cert.pem) nor a tls.crt/tls.key/ca.crt set, nor subdirectories with them", dir.display())]
    NothingFound { dir: PathBuf },
    #[error("cannot read {}", dir.display())]
    Read {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
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
fn relative(base: &Path, target: &Path) -> String {
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
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// Builds the plan text. `plan_dir` is where the plan will be written (import paths are
/// relative to it); `name` the plan name.
pub fn scaffold(
    dir: &Path,
    plan_dir: &Path,
    name: &str,
    cluster: Option<&str>,
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
        root_dir: relative(plan_dir, &root_dir),
        clusters: clusters
            .iter()
            .map(|(cname, cdir, _)| (cname.clone(), relative(plan_dir, cdir), false))
            .collect(),
    });
    Ok(Scaffold {
        yaml: y,
        clusters: clusters.into_iter().map(|c| c.0).collect(),
        layout,
        root_key_found,
    })
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
}

/// The commented plan text: today's root and intermediates imported, new ones generated.
fn plan_yaml(p: &PlanText<'_>) -> String {
    let PlanText {
        header,
        name,
        format,
        recipients,
        root_dir,
        clusters,
    } = p;
    let recipients = if recipients.is_empty() {
        " []".to_string()
    } else {
        recipients
            .iter()
            .map(|r| format!("\n      - {r}"))
            .collect()
    };
    let mut y = format!(
        "{header}\
         apiVersion: rootroll.dev/v1alpha1\n\
         kind: RotationPlan\n\
         metadata:\n  name: {name}\n\
         spec:\n\
         \x20 mesh:\n\
         \x20   trustDomain: cluster.local\n\
         \x20   istioNamespace: istio-system\n\
         \x20   secretName: cacerts\n\
         \x20   # Must match the live Secret: its type cannot change in place.\n\
         \x20   secretFormat: {format}\n\
         \x20   dataPlane: sidecar            # or ambient (adds ztunnel restart/wait gates)\n\
         \x20   minIstioVersion: \"1.22\"       # the oldest istiod/proxy version running\n\
         \x20 timing:\n\
         \x20   workloadCertTTL: 24h          # SECRET_TTL of your proxies\n\
         \x20   propagationDelay: 2m          # kubelet sync + istiod reload\n\
         \x20   safetyMargin: 15m\n\
         \x20 gitops:\n\
         \x20   engine: flux                  # or argocd\n\
         \x20   repoPath: .                   # where the rendered directory sits in your Git repo\n\
         \x20   # age recipients the rendered Secrets are encrypted to (Flux's key, each operator's).\n\
         \x20   ageRecipients:{recipients}\n\
         \x20 roots:\n\
         \x20   current:\n\
         \x20     # Today's root-cert.pem, kept byte for byte.\n\
         \x20     import:\n\
         \x20       dir: {root_dir}\n\
         \x20   new:\n\
         \x20     generate:\n\
         \x20       algorithm: ecdsa-p256       # rsa-2048|rsa-3072|rsa-4096|ecdsa-p256|ecdsa-p384\n\
         \x20       validity: 3650d\n\
         \x20       subject:\n\
         \x20         organization: Istio\n\
         \x20         commonName: Root CA ({name})   # must differ from the current root's subject\n\
         \x20 clusters:\n"
    );
    for (cname, cdir, key_in_state) in clusters {
        y.push_str(&format!(
            "    - name: {cname}\n\
             \x20     intermediates:\n\
             \x20       current:\n\
             \x20         import:\n\
             \x20           dir: {cdir}\n{}\
             \x20       new:\n\
             \x20         generate:\n\
             \x20           algorithm: ecdsa-p256\n\
             \x20           validity: 1825d\n",
            if *key_in_state {
                "            key: state\n"
            } else {
                ""
            }
        ));
    }
    y
}

/// What `init --from-cluster` makes of a live `cacerts` Secret.
pub struct FromSecret {
    /// The plan text.
    pub yaml: String,
    /// Public files to write, relative to the plan's directory (exact bytes from the Secret).
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// The current intermediate (PEM) and its key, for the encrypted key state only.
    pub cert_pem: String,
    pub key: crate::pki::PrivateKeyPem,
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
) -> Result<Scaffold, FromClusterError> {
    let plan_dir = output
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let s = scaffold(dir, &plan_dir, name, cluster)?;
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
    if req.output.exists() && !req.force {
        return Err(FromClusterError::Exists {
            path: req.output.to_path_buf(),
        });
    }
    if req.out.exists()
        && std::fs::read_dir(req.out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(FromClusterError::NotEmpty {
            path: req.out.to_path_buf(),
        });
    }
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
    let plain = st.to_yaml(req.name);
    let sealed = crate::sops::encrypt_yaml(crate::repo::STATE_SOPS, &plain, &parsed, req.now)?;
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
    for (rel, bytes) in &s.files {
        let p = plan_dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|source| FromClusterError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        crate::repo::write_file_atomic(&p, bytes)?;
    }
    crate::repo::write_file_atomic(req.output, s.yaml.as_bytes())?;
    Ok(FromClusterDone {
        layout: s.layout,
        public_dir: plan_dir.join(format!("{}-current", req.cluster)),
        state: req.out.join(crate::repo::STATE_SOPS),
    })
}
