//! `no-placeholder`: no file of the tree keeps a value left for the user to fill in (such
//! as the `REPLACE-WITH-YOUR-REPO-URL` an Argo CD Application once carried). Every text file
//! is read, as [`super::plaintext`] reads them; one that cannot be read fails the gate, and
//! each hit is named by file and line.

use std::path::Path;

use super::Report;
use crate::gates::Code;
use crate::verify::Finding;

/// What marks a value still to be filled in. Plan validation refuses them in the fields that
/// reach rendered files (repoURL), so a hit here is a hand edit or an override template.
pub const MARKERS: &[&str] = &["REPLACE-WITH-", "REPLACE_WITH_", "<REPLACE", "CHANGE-ME"];

/// Adds one finding: no text file under `dir` (`.git` aside) holds a [`MARKERS`] entry.
pub fn scan(dir: &Path, r: &mut Report) {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) => {
                hits.push(format!("{} (cannot list: {e})", d.display()));
                continue;
            }
        };
        for e in entries {
            let e = match e {
                Ok(e) => e,
                Err(e) => {
                    hits.push(format!("{} (cannot list: {e})", d.display()));
                    continue;
                }
            };
            let p = e.path();
            if e.file_name() == ".git" {
                continue;
            }
            let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
            // Directories are walked without following links (a link could loop).
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
                continue;
            }
            match std::fs::metadata(&p) {
                Ok(m) if !m.is_file() => continue, // a directory link, pipe or socket
                Ok(_) => {}
                Err(e) => {
                    hits.push(format!("{rel} (cannot read: {e})"));
                    continue;
                }
            }
            let bytes = match std::fs::read(&p) {
                Ok(b) => b,
                Err(e) => {
                    hits.push(format!("{rel} (cannot read: {e})"));
                    continue;
                }
            };
            // A file that is not text (an image a user added) holds no value to fill in.
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            for (i, line) in text.lines().enumerate() {
                if let Some(m) = MARKERS.iter().find(|m| line.contains(**m)) {
                    let at = line.find(m).unwrap_or(0);
                    let word: String = line[at..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
                        .collect();
                    hits.push(format!("{rel}:{}: {word}", i + 1));
                }
            }
        }
    }
    hits.sort();
    let msg = if hits.is_empty() {
        "no placeholder in any file".to_string()
    } else {
        format!("placeholder(s) left to fill in: {}", hits.join("; "))
    };
    r.push(Finding::new(
        Code::NoPlaceholder,
        hits.is_empty(),
        "fleet",
        msg,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placeholder_is_named_by_file_and_line_and_a_clean_tree_passes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("argocd")).unwrap();
        std::fs::write(d.path().join("a.yaml"), "kind: X\n").unwrap();
        let mut r = Report::default();
        scan(d.path(), &mut r);
        assert!(r.findings[0].passed, "{}", r.findings[0].message);
        std::fs::write(
            d.path().join("argocd/east.yaml"),
            "spec:\n  source:\n    repoURL: REPLACE-WITH-YOUR-REPO-URL\n",
        )
        .unwrap();
        let mut r = Report::default();
        scan(d.path(), &mut r);
        let f = &r.findings[0];
        assert!(!f.passed);
        assert_eq!(f.code, Code::NoPlaceholder);
        assert!(
            f.message
                .contains("argocd/east.yaml:3: REPLACE-WITH-YOUR-REPO-URL"),
            "{}",
            f.message
        );
    }
}
