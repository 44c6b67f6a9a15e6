//! `kustomize-applies-phase`: what Flux or Argo CD will apply for each phase directory is
//! exactly that phase's Secret, byte-equal to the file the other gates checked.
//!
//! The build is written here rather than run through kustomize (no maintained Rust
//! implementation exists, and `verify` must not need kubectl): it follows `resources:` and
//! `generators:` (KSOPS `files:`) within the repository, refuses paths leaving it, remote
//! bases and every other field that could change what is applied. A test cross-checks it
//! against `kubectl kustomize`.

use std::path::{Path, PathBuf};

use super::Report;
use crate::gates::Code;
use crate::repo::{self, Repo};
use crate::verify::Finding;

/// The names kustomize accepts for a kustomization file.
const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields of a kustomization this build understands; any other one is refused.
const KNOWN_FIELDS: [&str; 4] = ["apiVersion", "kind", "resources", "generators"];

/// One YAML document the build outputs, and the file it comes from.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The file, relative to the repository.
    pub file: String,
    /// The whole file's bytes.
    pub file_bytes: Vec<u8>,
    /// The document's text.
    pub document: String,
}

/// Builds `dir` (relative to the repository `root`) as kustomize would: every document it
/// outputs, in order. `Err` says which file and entry cannot be followed.
pub fn build(root: &Path, dir: &str) -> Result<Vec<Applied>, String> {
    let root = root
        .canonicalize()
        .map_err(|e| format!("cannot open the repository {}: {e}", root.display()))?;
    let mut b = Builder {
        root,
        stack: Vec::new(),
        out: Vec::new(),
    };
    let start = b.resolve(&b.root.clone(), dir, "the phase directory")?;
    b.directory(&start)?;
    Ok(b.out)
}

struct Builder {
    root: PathBuf,
    /// The kustomization directories being built (a cycle is refused).
    stack: Vec<PathBuf>,
    out: Vec<Applied>,
}

impl Builder {
    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .unwrap_or(p)
            .display()
            .to_string()
    }

    /// `entry` of `from` (a directory) as a path inside the repository.
    fn resolve(&self, from: &Path, entry: &str, what: &str) -> Result<PathBuf, String> {
        if entry.contains("://") || entry.starts_with("git@") || entry.starts_with("github.com/") {
            return Err(format!(
                "{what} `{entry}` is remote: rootroll cannot check what it applies"
            ));
        }
        if Path::new(entry).is_absolute() {
            return Err(format!(
                "{what} `{entry}` is an absolute path: it leaves the repository"
            ));
        }
        let p = from
            .join(entry)
            .canonicalize()
            .map_err(|e| format!("{what} `{entry}` in {}: {e}", self.rel(from)))?;
        if !p.starts_with(&self.root) {
            return Err(format!(
                "{what} `{entry}` in {} leaves the repository",
                self.rel(from)
            ));
        }
        Ok(p)
    }

    /// Builds one kustomization directory.
    fn directory(&mut self, dir: &Path) -> Result<(), String> {
        if self.stack.iter().any(|d| d == dir) || self.stack.len() > 16 {
            return Err(format!("{} includes itself", self.rel(dir)));
        }
        let found: Vec<PathBuf> = KUSTOMIZATION_FILES
            .iter()
            .map(|f| dir.join(f))
            .filter(|p| p.is_file())
            .collect();
        let [file] = found.as_slice() else {
            return Err(format!(
                "{} has {} kustomization files (kustomize needs exactly one)",
                self.rel(dir),
                found.len()
            ));
        };
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", self.rel(file)))?;
        let k: serde_json::Value = serde_saphyr::from_str(&text)
            .map_err(|e| format!("{} is not YAML: {}", self.rel(file), e.without_snippet()))?;
        let fields = k
            .as_object()
            .ok_or_else(|| format!("{} is not a mapping", self.rel(file)))?;
        if let Some(other) = fields.keys().find(|f| !KNOWN_FIELDS.contains(&f.as_str())) {
            return Err(format!(
                "{} uses `{other}`, which changes what is applied: rootroll checks only resources and KSOPS generators",
                self.rel(file)
            ));
        }
        self.stack.push(dir.to_path_buf());
        for (field, generator) in [("resources", false), ("generators", true)] {
            for entry in entries(&k[field], field, &self.rel(file))? {
                let p = self.resolve(dir, &entry, field)?;
                if p.is_dir() {
                    self.directory(&p)?;
                } else if generator {
                    self.ksops(&p)?;
                } else {
                    self.resource(&p)?;
                }
            }
        }
        self.stack.pop();
        Ok(())
    }

    /// A KSOPS generator: its `files:` are decrypted and applied as resources.
    fn ksops(&mut self, file: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", self.rel(file)))?;
        let g: serde_json::Value = serde_saphyr::from_str(&text)
            .map_err(|e| format!("{} is not YAML: {}", self.rel(file), e.without_snippet()))?;
        if g["kind"] != "ksops"
            || !g["apiVersion"]
                .as_str()
                .is_some_and(|a| a.starts_with("viaduct.ai/"))
        {
            return Err(format!(
                "generator {} is not a KSOPS generator (viaduct.ai ksops)",
                self.rel(file)
            ));
        }
        let dir = file.parent().unwrap_or(&self.root).to_path_buf();
        for entry in entries(&g["files"], "files", &self.rel(file))? {
            let p = self.resolve(&dir, &entry, "KSOPS file")?;
            self.resource(&p)?;
        }
        Ok(())
    }

    /// A resource file: each of its documents.
    fn resource(&mut self, file: &Path) -> Result<(), String> {
        let bytes =
            std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", self.rel(file)))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        for doc in documents(&text) {
            self.out.push(Applied {
                file: self.rel(file),
                file_bytes: bytes.clone(),
                document: doc.to_string(),
            });
        }
        Ok(())
    }
}

/// The string entries of a list field (absent means none).
fn entries(v: &serde_json::Value, field: &str, file: &str) -> Result<Vec<String>, String> {
    match v {
        serde_json::Value::Null => Ok(Vec::new()),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{file}: `{field}` holds a non-string entry"))
            })
            .collect(),
        _ => Err(format!("{file}: `{field}` is not a list")),
    }
}

/// The YAML documents of a file that hold something (not only comments or blank lines).
fn documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            docs.push(&text[start..at]);
            start = at + line.len();
        }
        at += line.len();
    }
    docs.push(&text[start..]);
    docs.into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

/// `kustomize-applies-phase` for phase `n` of cluster `c`; `secret` is the phase Secret file
/// as [`Repo::phase_secret`] found it.
pub fn phase_applies_secret(
    repo: &Repo,
    c: &str,
    n: u8,
    secret: &Result<Option<(String, String)>, String>,
    r: &mut Report,
) {
    let subject = super::phase_subject(repo.rollout.strategy, c, n);
    let dir = repo::phase_path(repo.rollout.strategy, c, n);
    let Ok(Some((rel, text))) = secret else {
        let why = format!("because phase {n} has no readable Secret file");
        r.push(Finding::not_checked(
            Code::KustomizeAppliesPhase,
            &subject,
            why,
        ));
        return;
    };
    let (ok, msg) = match build(repo.dir(), &dir) {
        Err(why) => (
            false,
            format!("the phase {n} kustomization cannot be built: {why}"),
        ),
        Ok(applied) => judge(n, rel, text.as_bytes(), &applied),
    };
    r.push(
        Finding::new(Code::KustomizeAppliesPhase, ok, &subject, msg)
            .in_file(Some(&format!("{dir}/kustomization.yaml"))),
    );
}

/// Whether `applied` is exactly the phase Secret `rel` with the bytes `want`.
fn judge(n: u8, rel: &str, want: &[u8], applied: &[Applied]) -> (bool, String) {
    let files = super::joined(applied.iter().map(|a| a.file.as_str()));
    match applied {
        [] => (false, format!("phase {n} kustomization applies nothing")),
        [one] if one.file_bytes == want => {
            (true, format!("the engine applies exactly {}", one.file))
        }
        [one] => (
            false,
            format!(
                "phase {n} kustomization applies {}, not this phase's Secret {rel}",
                one.file
            ),
        ),
        many => (
            false,
            format!(
                "phase {n} kustomization applies {} documents ({files}), not only its Secret",
                many.len()
            ),
        ),
    }
}

/// The pointer kustomization lists exactly the active phase directory and nothing else that
/// could change what is applied.
pub fn pointer_resolves(repo: &Repo, c: &str, active: u8) -> Result<(), String> {
    let root = repo.dir().canonicalize().map_err(|e| e.to_string())?;
    let b = Builder {
        root: root.clone(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    let file = repo.path(&repo::pointer(c));
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let k: serde_json::Value = serde_saphyr::from_str(&text)
        .map_err(|e| format!("{} is not YAML: {}", repo::pointer(c), e.without_snippet()))?;
    let rel = repo::pointer(c);
    if let Some(other) = k
        .as_object()
        .into_iter()
        .flatten()
        .map(|(f, _)| f)
        .find(|f| !KNOWN_FIELDS.contains(&f.as_str()))
    {
        return Err(format!(
            "{rel} uses `{other}`, which changes what is applied"
        ));
    }
    if !entries(&k["generators"], "generators", &rel)?.is_empty() {
        return Err(format!(
            "{rel} has generators: the pointer must list only the active phase"
        ));
    }
    let dir = root.join(repo::cluster_dir(c));
    let want = b.resolve(
        &root,
        &repo::phase_path(repo.rollout.strategy, c, active),
        "phase",
    )?;
    let listed = entries(&k["resources"], "resources", &rel)?;
    let resolved: Vec<PathBuf> = listed
        .iter()
        .map(|e| b.resolve(&dir, e, "resource"))
        .collect::<Result<_, _>>()?;
    if resolved != [want] {
        return Err(format!(
            "{rel} lists {} instead of only {}",
            listed.join(", "),
            repo::pointer_resource(repo.rollout.strategy, active)
        ));
    }
    Ok(())
}
