//! `no-placeholder`: no file of the tree keeps a value left for the user to fill in (such
//! as the `REPLACE-WITH-YOUR-REPO-URL` an Argo CD Application once carried). Every text file
//! is read, as [`super::plaintext`] reads them; one that cannot be read fails the gate, and
//! each hit is named by file and line.

use super::Report;
use super::files::TreeFiles;
use crate::gates::Code;
use crate::verify::Finding;

/// What marks a value still to be filled in. Plan validation refuses them in the fields that
/// reach rendered files (repoURL), so a hit here is a hand edit or an override template.
pub const MARKERS: &[&str] = &["REPLACE-WITH-", "REPLACE_WITH_", "<REPLACE", "CHANGE-ME"];

/// Adds one finding: no text file of the tree (`.git` aside) holds a [`MARKERS`] entry.
pub fn scan(tree: &TreeFiles, r: &mut Report) {
    let mut hits: Vec<String> = tree
        .unreadable
        .iter()
        .map(|(rel, why)| format!("{rel} ({why})"))
        .collect();
    for f in &tree.files {
        // A file that is not text (an image a user added) holds no value to fill in.
        let Ok(text) = std::str::from_utf8(&f.bytes) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            if let Some(m) = MARKERS.iter().find(|m| line.contains(**m)) {
                let at = line.find(m).unwrap_or(0);
                let word: String = line[at..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
                    .collect();
                hits.push(format!("{}:{}: {word}", f.rel, i + 1));
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
        scan(&super::super::files::read(d.path()), &mut r);
        assert!(r.findings[0].passed, "{}", r.findings[0].message);
        std::fs::write(
            d.path().join("argocd/east.yaml"),
            "spec:\n  source:\n    repoURL: REPLACE-WITH-YOUR-REPO-URL\n",
        )
        .unwrap();
        let mut r = Report::default();
        scan(&super::super::files::read(d.path()), &mut r);
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
