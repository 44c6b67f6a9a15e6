//! Every file of a rendered tree, read once for the gates that look at whole files
//! (`no-plaintext-private-key`, `no-placeholder`, `sops-recipients`). `.git` is skipped;
//! directory links are not followed (a link could loop), file links are read; pipes and
//! sockets hold no content. What cannot be listed or read is kept with the reason, and each
//! gate fails on it: an unread file is never a clean one.

use std::path::Path;

/// A file of the tree: its path relative to the tree (with `/`) and its bytes.
pub struct TreeFile {
    /// Relative path, `/`-separated.
    pub rel: String,
    /// The whole content.
    pub bytes: Vec<u8>,
}

/// The tree's files in path order, and what could not be read.
#[derive(Default)]
pub struct TreeFiles {
    /// Every regular file (or link to one), in path order.
    pub files: Vec<TreeFile>,
    /// (relative path, `cannot list: …` or `cannot read: …`), in path order.
    pub unreadable: Vec<(String, String)>,
}

/// Reads every file under `dir`.
pub fn read(dir: &Path) -> TreeFiles {
    let rel = |p: &Path| {
        p.strip_prefix(dir)
            .unwrap_or(p)
            .to_string_lossy()
            .replace('\\', "/")
    };
    let mut t = TreeFiles::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) => {
                t.unreadable.push((rel(&d), format!("cannot list: {e}")));
                continue;
            }
        };
        for e in entries {
            let e = match e {
                Ok(e) => e,
                Err(e) => {
                    t.unreadable.push((rel(&d), format!("cannot list: {e}")));
                    continue;
                }
            };
            if e.file_name() == ".git" {
                continue;
            }
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
                continue;
            }
            match std::fs::metadata(&p) {
                Ok(m) if !m.is_file() => continue, // a directory link, pipe or socket
                Ok(_) => {}
                Err(e) => {
                    t.unreadable.push((rel(&p), format!("cannot read: {e}")));
                    continue;
                }
            }
            match std::fs::read(&p) {
                Ok(bytes) => t.files.push(TreeFile {
                    rel: rel(&p),
                    bytes,
                }),
                Err(e) => t.unreadable.push((rel(&p), format!("cannot read: {e}"))),
            }
        }
    }
    t.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    t.unreadable.sort();
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_once_in_path_order_without_git_and_without_following_directory_links() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("b/c")).unwrap();
        std::fs::create_dir_all(d.path().join(".git")).unwrap();
        std::fs::write(d.path().join(".git/config"), "x").unwrap();
        std::fs::write(d.path().join("b/c/z.yaml"), "z").unwrap();
        std::fs::write(d.path().join("a.yaml"), "a").unwrap();
        std::os::unix::fs::symlink("b", d.path().join("loop")).unwrap();
        std::os::unix::fs::symlink("a.yaml", d.path().join("link.yaml")).unwrap();
        std::os::unix::fs::symlink("missing", d.path().join("dangling")).unwrap();
        let t = read(d.path());
        let rels: Vec<&str> = t.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["a.yaml", "b/c/z.yaml", "link.yaml"]);
        assert_eq!(t.files[2].bytes, b"a");
        assert_eq!(t.unreadable.len(), 1, "{:?}", t.unreadable);
        assert_eq!(t.unreadable[0].0, "dangling");
        assert!(t.unreadable[0].1.starts_with("cannot read: "));
    }
}
