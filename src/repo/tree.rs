//! Writing the rendered tree: all or nothing.
//!
//! The new tree is written into a temporary sibling directory, made durable with one
//! `syncfs` (instead of an `fsync` per file and directory: a fleet render writes thousands of
//! files), and then swapped with the old one in a single `renameat2(RENAME_EXCHANGE)`; a crash
//! leaves either the old tree or the new one at the output path. Files rootroll did not write
//! (listed nowhere in the previous manifest) are carried over. Private files are 0600 and the
//! directories holding them 0700. When every file on disk already has the bytes and the mode
//! it would get, nothing is written at all.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::MANIFEST;

/// Threads creating the files of a new tree.
const WRITERS: usize = 8;

/// One output file.
#[derive(Clone, PartialEq, Eq)]
pub struct OutFile {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Holds private key material: written 0600, never printed.
    pub private: bool,
}

impl Drop for OutFile {
    /// A private file's plaintext (before sealing, or with --insecure-plaintext) is wiped.
    fn drop(&mut self) {
        if self.private {
            zeroize::Zeroize::zeroize(&mut self.bytes);
        }
    }
}

/// The whole rendered tree, keyed by `/`-separated relative path.
#[derive(Clone, Default)]
pub struct Outputs {
    /// Every file, by relative path.
    pub files: BTreeMap<String, OutFile>,
    /// Private files rendered without their key (the key state could not be opened): they
    /// can only keep their previous encrypted bytes.
    pub locked: std::collections::BTreeSet<String>,
}

impl Outputs {
    pub(crate) fn add(&mut self, path: String, bytes: impl Into<Vec<u8>>, private: bool) {
        self.files.insert(
            path,
            OutFile {
                bytes: bytes.into(),
                private,
            },
        );
    }
}

/// Errors while writing the output directory.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// `--out` is a file.
    #[error("{} exists and is not a directory; give a directory path for --out", path.display())]
    NotADirectory {
        /// The output directory.
        path: PathBuf,
    },
    /// `--out` is a symbolic link.
    #[error("{} is a symbolic link; give the real directory", path.display())]
    Symlink {
        /// The output directory.
        path: PathBuf,
    },
    /// `--out` holds files rootroll did not write.
    #[error("{} is not empty and was not written by rootroll (no {MANIFEST}); choose an empty or new directory", path.display())]
    Foreign {
        /// The output directory.
        path: PathBuf,
    },
    /// The new tree could not be built; the old one is untouched.
    #[error("{} was left as it was: the new tree could not be written", path.display())]
    LeftAsItWas {
        /// The output directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<WriteError>,
    },
    /// The manifest lists a path that is not inside the tree.
    #[error("{} is corrupt: it lists `{entry}`, which is not a path inside the tree; restore it from Git (or remove it and the files it listed)", path.display())]
    CorruptManifest {
        /// The manifest.
        path: PathBuf,
        /// The entry.
        entry: String,
    },
    /// Another render created the (new) output directory first.
    #[error("another render of {} finished first; nothing was written", path.display())]
    Raced {
        /// The output directory.
        path: PathBuf,
    },
    /// Something the user put in the tree stands where rootroll writes.
    #[error("{} is {what} where rootroll writes {wanted}; move it away and render again", path.display())]
    InTheWay {
        /// The user's entry.
        path: PathBuf,
        /// What it is.
        what: &'static str,
        /// What rootroll writes there.
        wanted: String,
    },
    /// A file system operation failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// New in this render.
    Added,
    /// Different bytes.
    Changed,
    /// The same bytes.
    Unchanged,
    /// No longer rendered (only files rootroll wrote).
    Removed,
}

/// Per-file changes, sorted by path.
pub type ChangeSet = BTreeMap<String, Change>;

/// Reads the files of a previous render (managed files only).
pub fn read_existing(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, WriteError> {
    let mut out = BTreeMap::new();
    for rel in managed_files(dir)? {
        let p = dir.join(&rel);
        if let Ok(bytes) = fs::read(&p) {
            out.insert(rel, bytes);
        }
    }
    Ok(out)
}

/// The files the manifest lists. Every entry must be a plain relative path inside the tree:
/// one that climbs out (`..`), is absolute or empty marks the manifest corrupt, and nothing is
/// read or removed through it.
fn managed_files(dir: &Path) -> Result<BTreeSet<String>, WriteError> {
    let m = dir.join(MANIFEST);
    let text = match fs::read_to_string(&m) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(io("read", &m)(e)),
    };
    let mut out = BTreeSet::new();
    for entry in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let inside = !entry.starts_with('/')
            && entry
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if !inside {
            return Err(WriteError::CorruptManifest {
                path: m,
                entry: entry.to_string(),
            });
        }
        out.insert(entry.to_string());
    }
    Ok(out)
}

/// Compares outputs with what is on disk.
pub fn diff(dir: &Path, outputs: &Outputs) -> Result<ChangeSet, WriteError> {
    let existing = if dir.exists() {
        read_existing(dir)?
    } else {
        BTreeMap::new()
    };
    let mut changes = ChangeSet::new();
    for (path, f) in &outputs.files {
        let c = match existing.get(path) {
            None => Change::Added,
            Some(old) if *old == f.bytes => Change::Unchanged,
            Some(_) => Change::Changed,
        };
        changes.insert(path.clone(), c);
    }
    for path in existing.keys() {
        if !outputs.files.contains_key(path) && path != MANIFEST {
            changes.insert(path.clone(), Change::Removed);
        }
    }
    changes.remove(MANIFEST);
    Ok(changes)
}

fn check_target(dir: &Path) -> Result<bool, WriteError> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("inspect", dir)(e)),
        Ok(m) if m.file_type().is_symlink() => Err(WriteError::Symlink {
            path: dir.to_path_buf(),
        }),
        Ok(m) if !m.is_dir() => Err(WriteError::NotADirectory {
            path: dir.to_path_buf(),
        }),
        Ok(_) => {
            let empty = fs::read_dir(dir).map_err(io("read", dir))?.next().is_none();
            if !empty && !dir.join(MANIFEST).exists() {
                return Err(WriteError::Foreign {
                    path: dir.to_path_buf(),
                });
            }
            Ok(true)
        }
    }
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io("create", path))?;
    f.write_all(bytes).map_err(io("write", path))
}

/// Replaces the single file `path` with `bytes` all at once: written to a sibling temporary
/// file (mode 0644), flushed, renamed over `path`, and the directory flushed. A failure or a
/// crash leaves the old file or the new one, never a part.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let prefix = format!(".{name}.rootroll-tmp-");
    // A temporary file left by a killed run is removed by the next one.
    remove_stale_temps(parent, &prefix);
    let tmp = parent.join(format!("{prefix}{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let written = write_file(&tmp, bytes, 0o644)
        .and_then(|()| {
            fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io("sync", &tmp))
        })
        .and_then(|()| fs::rename(&tmp, path).map_err(io("write", path)));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(parent)
}

/// Writes `bytes` to the new file `path` (which must not exist), mode 0600, flushed. On any
/// failure the partial file is removed: a full disk never leaves part of a secret behind.
pub fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("create (it must not exist)", path))?;
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
        drop(f);
        let _ = fs::remove_file(path);
        return Err(io("write (the partial file was removed)", path)(e));
    }
    Ok(())
}

/// Flushes everything written to the file system holding `path` (files, directories and
/// their entries) to stable storage.
fn sync_filesystem(path: &Path) -> Result<(), WriteError> {
    let dir = fs::File::open(path).map_err(io("open", path))?;
    rustix::fs::syncfs(&dir).map_err(|e| io("sync", path)(e.into()))
}

fn sync_dir(path: &Path) -> Result<(), WriteError> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io("sync", path))
}

/// Collects every file below `root` (relative paths, `/`-separated), not following links.
fn walk(root: &Path) -> Result<Vec<String>, WriteError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = root.join(&rel);
        for entry in fs::read_dir(&abs).map_err(io("read", &abs))? {
            let entry = entry.map_err(io("read", &abs))?;
            let rel = rel.join(entry.file_name());
            let ft = entry.file_type().map_err(io("inspect", &entry.path()))?;
            if ft.is_dir() {
                stack.push(rel);
            } else {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The manifest rootroll writes for `outputs`.
fn manifest(outputs: &Outputs) -> String {
    let mut manifest =
        String::from("# files written by rootroll render; others here are kept as they are\n");
    for path in outputs.files.keys() {
        manifest.push_str(path);
        manifest.push('\n');
    }
    manifest
}

/// Mode of every directory below the root that holds one of `files`: 0700 for a directory
/// directly holding a private file, 0755 otherwise.
fn dir_modes(files: &BTreeMap<String, OutFile>) -> BTreeMap<PathBuf, u32> {
    let mut dirs: BTreeMap<PathBuf, u32> = BTreeMap::new();
    for (rel, f) in files {
        let mut p = Path::new(rel).parent();
        while let Some(d) = p {
            if d.as_os_str().is_empty() {
                break;
            }
            let mode = dirs.entry(d.to_path_buf()).or_insert(0o755);
            // Only the directory directly holding a private file is 0700.
            if f.private && Some(d) == Path::new(rel).parent() {
                *mode = 0o700;
            }
            p = d.parent();
        }
    }
    dirs
}

fn file_mode(f: &OutFile) -> u32 {
    if f.private { 0o600 } else { 0o644 }
}

/// Is `dir` already exactly what writing `outputs` would make of it (same files, bytes,
/// manifest and modes)?
fn up_to_date(dir: &Path, outputs: &Outputs, changes: &ChangeSet) -> Result<bool, WriteError> {
    if changes.values().any(|c| *c != Change::Unchanged) {
        return Ok(false);
    }
    let m = dir.join(MANIFEST);
    match fs::read(&m) {
        Ok(bytes) if bytes == manifest(outputs).as_bytes() => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io("read", &m)(e)),
    }
    let mode_is = |path: &Path, want: u32| {
        fs::symlink_metadata(path).is_ok_and(|m| m.permissions().mode() & 0o7777 == want)
    };
    if !mode_is(dir, 0o755) || !mode_is(&m, 0o644) {
        return Ok(false);
    }
    let files_ok = outputs
        .files
        .iter()
        .all(|(rel, f)| mode_is(&dir.join(rel), file_mode(f)));
    let dirs_ok = dir_modes(&outputs.files)
        .iter()
        .all(|(d, mode)| mode_is(&dir.join(d), *mode));
    Ok(files_ok && dirs_ok)
}

/// Writes `outputs` to `dir` atomically. Returns what changed. A tree that is already up to
/// date is left alone: nothing is written.
pub fn write_tree(dir: &Path, outputs: &Outputs) -> Result<Written, WriteError> {
    let exists = check_target(dir)?;
    let changes = diff(dir, outputs)?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io("create", &parent))?;
    let name = dir
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let prefix = format!(".{name}.rootroll-tmp-");
    remove_stale_temps(&parent, &prefix);
    if exists && up_to_date(dir, outputs, &changes)? {
        return Ok(Written {
            changes,
            wrote: false,
        });
    }
    let tmp = parent.join(format!("{prefix}{}", std::process::id()));
    if fs::symlink_metadata(&tmp).is_ok() {
        remove_any(&tmp).map_err(io("remove", &tmp))?;
    }
    if let Err(e) = build_tree(&tmp, dir, exists, outputs) {
        let _ = remove_any(&tmp);
        return Err(WriteError::LeftAsItWas {
            path: dir.to_path_buf(),
            source: Box::new(e),
        });
    }
    // A temp tree left by a failure here is removed by the next render.
    swap(&tmp, dir, exists, &parent).inspect_err(|_| {
        let _ = remove_any(&tmp);
    })?;
    Ok(Written {
        changes,
        wrote: true,
    })
}

/// What [`write_tree`] did.
pub struct Written {
    /// Per-file changes against the previous tree.
    pub changes: ChangeSet,
    /// `false` when every file already had its bytes and mode: nothing was written at all.
    pub wrote: bool,
}

fn build_tree(tmp: &Path, dir: &Path, exists: bool, outputs: &Outputs) -> Result<(), WriteError> {
    fs::create_dir(tmp).map_err(io("create", tmp))?;
    fs::set_permissions(tmp, fs::Permissions::from_mode(0o755)).map_err(io("chmod", tmp))?;
    let mut files: BTreeMap<String, OutFile> = outputs.files.clone();
    // Links the user added, carried as links (pointing where they did): copying what they
    // name could pull a file from elsewhere, a key among them, into the tree.
    let mut links: Vec<(String, PathBuf)> = Vec::new();
    // Carry over files the user added to a previous render.
    if exists {
        carry_user_entries(dir, &mut files, &mut links)?;
    }
    files.insert(
        MANIFEST.into(),
        OutFile {
            bytes: manifest(outputs).into_bytes(),
            private: false,
        },
    );
    for (d, mode) in &dir_modes(&files) {
        let abs = tmp.join(d);
        fs::create_dir_all(&abs).map_err(io("create", &abs))?;
        fs::set_permissions(&abs, fs::Permissions::from_mode(*mode)).map_err(io("chmod", &abs))?;
    }
    // Creating a file is mostly waiting on the file system, so more writers than cores help.
    let files: Vec<(&String, &OutFile)> = files.iter().collect();
    crate::parallel::map_with(
        WRITERS,
        &files,
        |(rel, f)| write_file(&tmp.join(rel), &f.bytes, file_mode(f)),
        |_, _| {},
    )
    .into_iter()
    .collect::<Result<(), _>>()?;
    for (rel, target) in &links {
        let abs = tmp.join(rel);
        let parent = abs.parent().unwrap_or(tmp);
        fs::create_dir_all(parent).map_err(io("create", parent))?;
        std::os::unix::fs::symlink(target, &abs).map_err(io("create", &abs))?;
    }
    // One flush for the whole new tree (files, links, directories, entries) before it is
    // swapped in.
    sync_filesystem(tmp)
}

/// The files and links the user added to a previous render (listed in no manifest), to be
/// carried into the new tree; one that stands where rootroll writes is an error naming it.
fn carry_user_entries(
    dir: &Path,
    files: &mut BTreeMap<String, OutFile>,
    links: &mut Vec<(String, PathBuf)>,
) -> Result<(), WriteError> {
    let managed = managed_files(dir)?;
    for rel in walk(dir)? {
        if !managed.contains(&rel) && rel != MANIFEST && !files.contains_key(&rel) {
            let src = dir.join(&rel);
            let meta = fs::symlink_metadata(&src).map_err(io("inspect", &src))?;
            let prefix = format!("{rel}/");
            if let Some(file) = files.keys().find(|f| rel.starts_with(&format!("{f}/"))) {
                return Err(WriteError::InTheWay {
                    path: dir.join(file),
                    what: "a directory",
                    wanted: format!("the file {file}"),
                });
            }
            if let Some(wanted) = files.keys().find(|k| k.starts_with(&prefix)) {
                return Err(WriteError::InTheWay {
                    path: src,
                    what: if meta.file_type().is_symlink() {
                        "a symbolic link"
                    } else {
                        "a file"
                    },
                    wanted: format!("the directory {rel}/ (for {wanted})"),
                });
            }
            if meta.file_type().is_symlink() {
                links.push((rel, fs::read_link(&src).map_err(io("read", &src))?));
                continue;
            }
            if !meta.is_file() {
                // A pipe or socket holds nothing to carry.
                continue;
            }
            let bytes = fs::read(&src).map_err(io("read", &src))?;
            files.insert(
                rel,
                OutFile {
                    bytes,
                    private: meta.permissions().mode() & 0o077 == 0,
                },
            );
        }
    }
    Ok(())
}

fn swap(tmp: &Path, dir: &Path, exists: bool, parent: &Path) -> Result<(), WriteError> {
    if exists {
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            tmp,
            rustix::fs::CWD,
            dir,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .map_err(|e| io("swap in", dir)(e.into()))?;
        sync_dir(parent)?;
        // `tmp` now holds the previous tree.
        fs::remove_dir_all(tmp).map_err(io("remove", tmp))?;
    } else {
        // No replacing: a directory another render created meanwhile is never overwritten.
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            tmp,
            rustix::fs::CWD,
            dir,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::EXIST || e == rustix::io::Errno::NOTEMPTY => {
                return Err(WriteError::Raced {
                    path: dir.to_path_buf(),
                });
            }
            Err(e) => return Err(io("move into place", dir)(e.into())),
        }
    }
    sync_dir(parent)
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes temporary trees left next to the output by renders that were killed (they hold a
/// half-written new tree or the previous one, private files included). A tree whose process
/// still runs this program is left alone.
/// Removes the temporary tree a killed render of `dir` left beside it (its process is gone).
pub fn remove_stale_tree_temps(dir: &Path) {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Some(name) = dir.file_name() {
        remove_stale_temps(
            parent,
            &format!(".{}.rootroll-tmp-", name.to_string_lossy()),
        );
    }
}

fn remove_stale_temps(parent: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    let me = fs::read_link("/proc/self/exe").ok();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue; // replaced below
        }
        let alive = match fs::read_link(format!("/proc/{pid}/exe")) {
            Ok(exe) => me.as_ref().is_none_or(|m| *m == exe),
            // Gone, or a process we may not inspect: only the first is stale.
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        };
        if !alive {
            let _ = remove_any(&entry.path());
        }
    }
}
