//! The rendered repository: its layout and reading it back.
//!
//! Every path inside a rendered directory, and every label and annotation key rootroll puts on
//! a phase Secret, is defined here and nowhere else. [`Repo::open`] reads a finished render
//! once (the typed rollout file, the clusters, their active pointers) for verify, promote and
//! status; [`Previous::read`] reads what a render needs from the one before it (the managed
//! files, the key state, the pointers); [`write()`] and [`diff`] put a new tree in place or
//! compare it with the one on disk (through [`tree`], which does it atomically).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::model::{ROLLOUT_FORMAT_VERSION, Rollout, Strategy, phase_dir};
use crate::sops::{self, SopsError};
use crate::state::{KeyState, StateError};

pub mod tree;

pub use tree::{
    Change, ChangeSet, OutFile, Outputs, WriteError, Written, write_file_atomic, write_new_private,
};

/// The public rollout model, for verify, promote and status (no private material in it).
pub const ROLLOUT_JSON: &str = ".rootroll/rollout.json";
/// The list of files rootroll wrote.
pub const MANIFEST: &str = ".rootroll/manifest";
/// The key state, SOPS-encrypted.
pub const STATE_SOPS: &str = ".rootroll/state.sops.yaml";
/// The key state in plaintext (`--insecure-plaintext` only).
pub const STATE_PLAIN: &str = ".rootroll/state.yaml";
/// The sops creation rules, so `sops edit` re-encrypts a file the way rootroll does.
pub const SOPS_CONFIG: &str = ".sops.yaml";
/// Phase 0: the Helm values for istiod.
pub const PREREQ_HELM_VALUES: &str = "prerequisites/istiod-helm-values.yaml";
/// Phase 0: the IstioOperator overlay.
pub const PREREQ_ISTIOOPERATOR: &str = "prerequisites/istiooperator-overlay.yaml";
/// The reviewers' rollout guide.
pub const ROLLOUT_MD: &str = "ROLLOUT.md";
/// Where the cluster directories are.
pub const CLUSTERS: &str = "clusters";
/// The phase Secret's file name: encrypted, then plaintext (`--insecure-plaintext`).
pub const SECRET_FILES: [&str; 2] = ["cacerts.sops.yaml", "cacerts.yaml"];
/// The KSOPS generator next to an encrypted phase Secret (Argo CD).
pub const KSOPS_GENERATOR: &str = "secret-generator.yaml";

/// Labels and annotations rootroll puts on every phase Secret.
pub mod keys {
    /// `rootroll`.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// The plan name.
    pub const PLAN: &str = "rootroll.dev/plan";
    /// The phase number.
    pub const PHASE: &str = "rootroll.dev/phase";
    /// The phase name.
    pub const PHASE_NAME: &str = "rootroll.dev/phase-name";
    /// sha256 over the public entries (see `render::public_fingerprint`).
    pub const PUBLIC_SHA256: &str = "rootroll.dev/public-sha256";
    /// sha256 of the signing certificate (DER).
    pub const SIGNER_SHA256: &str = "rootroll.dev/signer-sha256";
    /// sha256 of the bundle bytes.
    pub const BUNDLE_SHA256: &str = "rootroll.dev/bundle-sha256";
}

/// Who an encrypted file of the tree is for: a file under `clusters/<name>/` is that
/// cluster's; any other (the key state) is the operators' only.
pub fn audience(path: &str) -> crate::plan::Audience<'_> {
    path.strip_prefix(CLUSTERS)
        .and_then(|p| p.strip_prefix('/'))
        .and_then(|p| p.split_once('/'))
        .filter(|(c, _)| !c.is_empty())
        .map_or(crate::plan::Audience::Operators, |(c, _)| {
            crate::plan::Audience::Cluster(c)
        })
}

/// A cluster's istio-ca directory.
pub fn cluster_dir(cluster: &str) -> String {
    format!("{CLUSTERS}/{cluster}/istio-ca")
}

/// A cluster's active-phase pointer kustomization.
pub fn pointer(cluster: &str) -> String {
    format!("{}/kustomization.yaml", cluster_dir(cluster))
}

/// The pointer's resource entry for a phase (`phases/2-trust-both`).
pub fn pointer_resource(strategy: Strategy, phase: u8) -> String {
    format!("phases/{}", phase_dir(strategy, phase))
}

/// A phase's probe chains (public; listed by no kustomization, so never applied).
pub fn probe_file(strategy: Strategy, cluster: &str, phase: u8) -> String {
    format!("{}/probe.pem", phase_path(strategy, cluster, phase))
}

/// A phase directory of a cluster.
pub fn phase_path(strategy: Strategy, cluster: &str, phase: u8) -> String {
    format!(
        "{}/{}",
        cluster_dir(cluster),
        pointer_resource(strategy, phase)
    )
}

/// The phase Secret's file name.
pub fn secret_file_name(encrypted: bool) -> &'static str {
    SECRET_FILES[usize::from(!encrypted)]
}

/// A file of a cluster's verify RBAC directory.
pub fn verify_rbac(cluster: &str, file: &str) -> String {
    format!("{CLUSTERS}/{cluster}/verify/{file}")
}

/// The Flux Kustomization (`flux/<cluster>-istio-ca.yaml`) or Argo CD Application.
pub fn engine_file(engine: crate::plan::Engine, cluster: &str) -> String {
    let dir = match engine {
        crate::plan::Engine::Flux => "flux",
        crate::plan::Engine::Argocd => "argocd",
    };
    format!("{dir}/{}.yaml", engine_object(cluster))
}

/// The name of the Flux Kustomization or Argo CD Application of a cluster.
pub fn engine_object(cluster: &str) -> String {
    format!("{cluster}-istio-ca")
}

/// Reads the active phase from a pointer kustomization written by rootroll.
pub fn parse_active(strategy: Strategy, pointer: &str) -> Option<u8> {
    parse_pointer(strategy, pointer).ok()
}

/// Reads the active phase from a pointer kustomization, or says why it names no single
/// phase: none, several, or a directory that is not a phase.
pub fn parse_pointer(strategy: Strategy, pointer: &str) -> Result<u8, String> {
    let mut found: Vec<u8> = Vec::new();
    for line in pointer.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("- ") {
            let rest = rest.trim().trim_matches('"');
            if let Some(p) = rest.strip_prefix("phases/") {
                let p = p.trim_end_matches('/');
                let n = p.split('-').next().and_then(|n| n.parse::<u8>().ok());
                // The whole directory name must match: `phases/2-bogus` is no phase 2.
                match n {
                    Some(n) if strategy.numbers().contains(&n) && p == phase_dir(strategy, n) => {
                        found.push(n);
                    }
                    _ => {
                        return Err(format!(
                            "names `phases/{p}`, a phase that does not exist (phases are {})",
                            strategy
                                .numbers()
                                .map(|n| format!("phases/{}", phase_dir(strategy, n)))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
            }
        }
    }
    match found.as_slice() {
        [n] => Ok(*n),
        [] => Err("names no phase (it must list exactly one `phases/<n>-<name>`)".to_string()),
        several => Err(format!(
            "names several phases ({}): exactly one must be active",
            several
                .iter()
                .map(|n| phase_dir(strategy, *n))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Errors reading a rendered repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The directory does not exist.
    #[error("{} does not exist: give the directory `rootroll render --out` wrote", dir.display())]
    NoSuchDir {
        /// The directory.
        dir: PathBuf,
    },
    /// No rollout file: not a render (or not yet).
    #[error("{} is not a rootroll render (no {ROLLOUT_JSON}); run `rootroll render` first", dir.display())]
    NotARender {
        /// The directory.
        dir: PathBuf,
    },
    /// A file rootroll wrote does not read back.
    #[error("{} is malformed: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// A file or directory cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A pointer does not name exactly one phase.
    #[error("{} does not name exactly one phase; fix it or remove it to reset to phase 1", path.display())]
    Pointer {
        /// The pointer file.
        path: PathBuf,
    },
    /// The key state does not read back.
    #[error(transparent)]
    State(#[from] StateError),
    /// The encrypted key state does not decrypt.
    #[error(transparent)]
    Sops(#[from] SopsError),
}

fn read(path: &Path) -> Result<String, RepoError> {
    std::fs::read_to_string(path).map_err(|source| RepoError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads the typed rollout file, refusing another format version by name.
pub fn read_rollout(dir: &Path) -> Result<Rollout, RepoError> {
    if !dir.is_dir() {
        return Err(RepoError::NoSuchDir {
            dir: dir.to_path_buf(),
        });
    }
    let path = dir.join(ROLLOUT_JSON);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RepoError::NotARender {
                dir: dir.to_path_buf(),
            });
        }
        Err(source) => return Err(RepoError::Read { path, source }),
    };
    let malformed = |reason: String| RepoError::Malformed {
        path: path.clone(),
        reason,
    };
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Header {
        format_version: Option<serde_json::Value>,
    }
    let header: Header = serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
    match header.format_version {
        Some(v) if v == ROLLOUT_FORMAT_VERSION => {}
        Some(v) => {
            return Err(malformed(format!(
                "formatVersion {v} is not the version this rootroll reads ({ROLLOUT_FORMAT_VERSION}); use the rootroll that rendered it, or re-render"
            )));
        }
        None => {
            return Err(malformed(format!(
                "no formatVersion (rendered by an older rootroll): re-render with this one to write format {ROLLOUT_FORMAT_VERSION}"
            )));
        }
    }
    let de = &mut serde_json::Deserializer::from_str(&text);
    let rollout: Rollout = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        malformed(format!("field `{field}`: {}", e.into_inner()))
    })?;
    rollout.check_shape().map_err(malformed)?;
    Ok(rollout)
}

/// The clusters of a rendered tree (directories `clusters/<name>/istio-ca`), sorted.
pub fn list_clusters(dir: &Path) -> Result<Vec<String>, RepoError> {
    let cdir = dir.join(CLUSTERS);
    let mut v: Vec<String> = std::fs::read_dir(&cdir)
        .map_err(|source| RepoError::Read {
            path: cdir.clone(),
            source,
        })?
        .filter_map(Result::ok)
        .filter(|e| e.path().join("istio-ca").is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Ok(v)
}

/// A rendered repository, opened for reading.
pub struct Repo {
    dir: PathBuf,
    /// The typed rollout model the tree was rendered from.
    pub rollout: Rollout,
    /// The cluster directories present in the tree, sorted.
    pub clusters: Vec<String>,
}

impl Repo {
    /// Reads the rollout file and the cluster list of `dir`.
    pub fn open(dir: &Path) -> Result<Self, RepoError> {
        let rollout = read_rollout(dir)?;
        let clusters = list_clusters(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            rollout,
            clusters,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The absolute path of `rel` inside the repository.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// The active phase of a cluster from its pointer, or why it cannot be read.
    pub fn active(&self, cluster: &str) -> Result<u8, String> {
        let p = self.path(&pointer(cluster));
        let text =
            std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        parse_pointer(self.rollout.strategy, &text)
            .map_err(|why| format!("{} does not name exactly one phase: it {why}", p.display()))
    }

    /// The phase Secret of a cluster: its path relative to the repository and its text.
    /// `Ok(None)` when neither file exists; `Err` lists the files that exist but cannot be read.
    pub fn phase_secret(
        &self,
        cluster: &str,
        phase: u8,
    ) -> Result<Option<(String, String)>, String> {
        let mut unreadable = Vec::new();
        for f in SECRET_FILES {
            let rel = format!("{}/{f}", phase_path(self.rollout.strategy, cluster, phase));
            match std::fs::read_to_string(self.path(&rel)) {
                Ok(text) => return Ok(Some((rel, text))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => unreadable.push(format!("{f}: {e}")),
            }
        }
        if unreadable.is_empty() {
            Ok(None)
        } else {
            Err(unreadable.join("; "))
        }
    }
}

/// How the key state is opened.
pub struct Identities<'a> {
    /// The age identities found.
    pub ids: &'a [age::x25519::Identity],
    /// `true` when they were given on the command line: then one of them must open the
    /// state; identities found in the environment may simply not belong to this plan.
    pub explicit: bool,
}

/// Reads the key state of a previous render. An encrypted state is opened when an identity
/// can; otherwise its public part is read and the keys stay locked.
pub fn read_key_state(dir: &Path, ids: &Identities<'_>) -> Result<KeyState, RepoError> {
    let sealed = dir.join(STATE_SOPS);
    if sealed.exists() {
        let name = sealed.display().to_string();
        let text = read(&sealed)?;
        if ids.ids.is_empty() {
            return Ok(KeyState::parse(&name, &text)?);
        }
        return match sops::decrypt_yaml(&name, &text, ids.ids) {
            Ok(plain) => Ok(KeyState::parse(&name, &plain)?),
            Err(SopsError::NoMatchingIdentity { .. }) if !ids.explicit => {
                Ok(KeyState::parse(&name, &text)?)
            }
            Err(e) => Err(e.into()),
        };
    }
    let plain = dir.join(STATE_PLAIN);
    if plain.exists() {
        let text = read(&plain)?;
        return Ok(KeyState::parse(&plain.display().to_string(), &text)?);
    }
    Ok(KeyState::default())
}

/// What a render needs from the tree it replaces.
#[derive(Default)]
pub struct Previous {
    /// The managed files' bytes, by relative path.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The key state (locked when no identity opens it).
    pub state: KeyState,
    /// Each cluster's active phase, for the clusters that have a pointer.
    pub active: BTreeMap<String, u8>,
}

impl Previous {
    /// Reads the previous render at `dir` (nothing when it does not exist yet), for the
    /// clusters of the plan.
    pub fn read<'a>(
        dir: &Path,
        strategy: Strategy,
        clusters: impl IntoIterator<Item = &'a str>,
        ids: &Identities<'_>,
    ) -> Result<Self, RepoError> {
        let files = if dir.is_dir() {
            tree::read_existing(dir).map_err(|e| RepoError::Malformed {
                path: dir.join(MANIFEST),
                reason: e.to_string(),
            })?
        } else {
            BTreeMap::new()
        };
        let state = read_key_state(dir, ids)?;
        let mut active = BTreeMap::new();
        for c in clusters {
            let p = dir.join(pointer(c));
            if let Ok(text) = std::fs::read_to_string(&p) {
                let n = parse_active(strategy, &text).ok_or(RepoError::Pointer { path: p })?;
                active.insert(c.to_string(), n);
            }
        }
        Ok(Self {
            files,
            state,
            active,
        })
    }
}

/// Puts a new tree in place atomically (see [`tree`]).
pub fn write(dir: &Path, outputs: &Outputs) -> Result<Written, WriteError> {
    tree::write_tree(dir, outputs)
}

/// Compares a new tree with the one on disk, file by file.
pub fn diff(dir: &Path, outputs: &Outputs) -> Result<ChangeSet, WriteError> {
    tree::diff(dir, outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_its_clusters_only_under_that_clusters_directory() {
        use crate::plan::Audience;
        assert_eq!(
            audience("clusters/us-east/istio-ca/phases/1-initial/cacerts.sops.yaml"),
            Audience::Cluster("us-east")
        );
        assert_eq!(audience(STATE_SOPS), Audience::Operators);
        for other in [
            "clusters/x",
            "clusters//a.sops.yaml",
            "clustersx/a/b.sops.yaml",
            "a.sops.yaml",
        ] {
            assert_eq!(audience(other), Audience::Operators, "{other}");
        }
    }

    #[test]
    fn a_pointer_names_exactly_one_existing_phase() {
        let parse_active = |p: &str| parse_active(Strategy::Roots, p);
        let parse_pointer = |p: &str| parse_pointer(Strategy::Roots, p);
        let ok = "resources:\n  - phases/2-trust-both\n";
        assert_eq!(parse_active(ok), Some(2));
        assert_eq!(
            parse_active("resources:\n  - \"phases/3-switch-issuer/\"\n"),
            Some(3)
        );
        // Each strategy knows only its own phases.
        let inter = "resources:\n  - phases/2-new-intermediate\n";
        assert_eq!(super::parse_active(Strategy::Intermediates, inter), Some(2));
        assert_eq!(parse_active(inter), None);
        assert_eq!(super::parse_active(Strategy::Intermediates, ok), None);
        assert_eq!(
            super::parse_active(
                Strategy::Intermediates,
                "resources:\n  - phases/4-finalize\n"
            ),
            None
        );
        for bad in [
            "resources: []\n",
            "resources:\n  - phases/2-bogus\n",
            "resources:\n  - phases/5-after\n",
            "resources:\n  - phases/1-initial\n  - phases/2-trust-both\n",
        ] {
            assert_eq!(parse_active(bad), None, "{bad}");
        }
        let why = |p: &str| parse_pointer(p).unwrap_err();
        assert!(why("resources:\n  - phases/5-after\n").contains("does not exist"));
        assert!(why("resources:\n  - phases/2-bogus\n").contains("does not exist"));
        assert!(
            why("resources:\n  - phases/1-initial\n  - phases/2-trust-both\n")
                .contains("several phases")
        );
        assert!(why("resources: []\n").contains("names no phase"));
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        assert_eq!(pointer("east"), "clusters/east/istio-ca/kustomization.yaml");
        assert_eq!(
            phase_path(Strategy::Roots, "east", 3),
            "clusters/east/istio-ca/phases/3-switch-issuer"
        );
        assert_eq!(secret_file_name(true), "cacerts.sops.yaml");
        assert_eq!(secret_file_name(false), "cacerts.yaml");
        assert_eq!(
            engine_file(crate::plan::Engine::Argocd, "east"),
            "argocd/east-istio-ca.yaml"
        );
    }
}
