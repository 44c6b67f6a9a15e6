//! Shared by the fuzz targets: the demo identity, a scratch directory per process, and the
//! packed form of a `verify live --from-dump` directory (one file of the corpus holds a whole
//! directory, so the fuzzer mutates file contents and the set of files together).
//!
//! The packing is written here rather than taken from `arbitrary`: it stays text, so the
//! checked-in corpus is readable JSON and AFL++'s byte mutations land inside it.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

/// The published demo identity (plans/demo.agekey), so mutated real SOPS files reach the
/// MAC and value checks.
pub fn demo_identity() -> &'static age::x25519::Identity {
    static ID: OnceLock<age::x25519::Identity> = OnceLock::new();
    ID.get_or_init(|| {
        include_str!("../../plans/demo.agekey")
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .expect("the demo key file holds an identity")
            .parse()
            .expect("the demo identity parses")
    })
}

/// The repository's `tests/` directory (the import fixtures the example plans name).
pub fn repo_tests_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests"))
}

/// A fresh, empty directory for one execution: `$ROOTROLL_FUZZ_SCRATCH/<pid>` (AFL++ forks,
/// so each child has its own). Removed and made again on every call.
pub fn scratch() -> PathBuf {
    let base = std::env::var_os("ROOTROLL_FUZZ_SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("rootroll-fuzz"));
    let dir = base.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the fuzz scratch directory can be made");
    dir
}

/// Marks the start of a file in a packed dump: `==> proxy-config/shop/web.json <==` on a line
/// of its own (the header `head` prints between files).
pub const HEADER_OPEN: &str = "==> ";
pub const HEADER_CLOSE: &str = " <==";

/// Splits a packed dump into (relative path, contents). Text before the first header, and
/// files whose path is not 1–3 plain components (letters, digits, `.`, `_`, `-`; no `..`), are
/// dropped, so an input can never write outside the scratch directory.
pub fn unpack(data: &[u8]) -> Vec<(PathBuf, &[u8])> {
    let mut out = Vec::new();
    let mut current: Option<(PathBuf, usize)> = None;
    let mut pos = 0;
    while pos < data.len() {
        let end = data[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| pos + i + 1);
        let line = &data[pos..end];
        let trimmed = line.strip_suffix(b"\n").unwrap_or(line);
        if let Some(name) = trimmed
            .strip_prefix(HEADER_OPEN.as_bytes())
            .and_then(|r| r.strip_suffix(HEADER_CLOSE.as_bytes()))
        {
            if let Some((path, start)) = current.take() {
                out.push((path, &data[start..pos]));
            }
            current = safe_path(name).map(|p| (p, end));
        }
        pos = end;
    }
    if let Some((path, start)) = current {
        out.push((path, &data[start..]));
    }
    out
}

fn safe_path(name: &[u8]) -> Option<PathBuf> {
    let name = std::str::from_utf8(name).ok()?;
    let path = Path::new(name);
    let parts: Vec<_> = path.components().collect();
    let plain = |c: &Component| match c {
        Component::Normal(s) => s.to_str().is_some_and(|s| {
            s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        }),
        _ => false,
    };
    (!parts.is_empty() && parts.len() <= 3 && parts.iter().all(plain)).then(|| path.to_path_buf())
}

/// Writes a packed dump under `dir` (later files of the same name win).
pub fn write_unpacked(dir: &Path, files: &[(PathBuf, &[u8])]) {
    for (rel, contents) in files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent()
            && std::fs::create_dir_all(parent).is_err()
        {
            continue; // a file where a directory should be: that file stays as it is
        }
        let _ = std::fs::write(&p, contents);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_keeps_plain_paths_and_drops_the_rest() {
        let data = b"junk\n==> pods.json <==\n{\"items\":[]}\n==> ../x <==\nno\n==> proxy-config/shop/web.json <==\n{}";
        let files = unpack(data);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].0, Path::new("pods.json"));
        assert_eq!(files[0].1, b"{\"items\":[]}\n");
        assert_eq!(files[1].0, Path::new("proxy-config/shop/web.json"));
        assert_eq!(files[1].1, b"{}");
    }
}
