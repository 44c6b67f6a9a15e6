//! Hostile output directories and interrupted writes (issue 18): a corrupt manifest, a race
//! into a fresh directory, a user link in the way, status and promote edge cases, and
//! `promote --commit` killed at any point.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

fn render_demo(out: &Path) -> std::process::Output {
    rootroll(&[
        "render",
        "plans/demo.yaml",
        "--out",
        out.to_str().unwrap(),
        "--insecure-plaintext",
    ])
}

#[test]
fn a_manifest_listing_paths_outside_the_tree_is_refused_and_nothing_is_touched() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    assert!(render_demo(&out).status.success());
    let victim = d.path().join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    let manifest = out.join(".rootroll/manifest");
    let good = std::fs::read_to_string(&manifest).unwrap();
    for entry in [
        "../victim",
        &victim.display().to_string(),
        "clusters/../../victim",
        "a//b",
    ] {
        std::fs::write(&manifest, format!("{good}{entry}\n")).unwrap();
        let before = tree(&out);
        let o = render_demo(&out);
        assert_eq!(o.status.code(), Some(2), "{entry}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(
            err.contains(".rootroll/manifest is corrupt"),
            "{entry}: {err}"
        );
        assert!(err.contains(&format!("lists `{entry}`")), "{entry}: {err}");
        assert!(!stdout(&o).contains("removed"), "{}", stdout(&o));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert_eq!(tree(&out), before, "{entry}: the tree changed");
    }
}

#[test]
fn renders_racing_into_a_fresh_directory_never_fail_with_an_os_error() {
    let d = tempfile::tempdir().unwrap();
    let mut lost = 0;
    for round in 0..6 {
        let out = d.path().join(format!("out{round}"));
        let spawn = || {
            Command::new(env!("CARGO_BIN_EXE_rootroll"))
                .current_dir(root())
                .args(["--now", NOW, "render", "plans/demo.yaml", "--out"])
                .arg(&out)
                .arg("--insecure-plaintext")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        for child in [a, b] {
            let o = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            if !o.status.success() {
                lost += 1;
                assert!(
                    err.contains(&format!(
                        "another render of {} finished first; nothing was written",
                        out.display()
                    )),
                    "round {round}: {err}"
                );
            }
            assert!(!err.contains("os error"), "round {round}: {err}");
        }
        // Whoever won, the tree is a complete render.
        let o = rootroll(&[
            "render",
            "plans/demo.yaml",
            "--out",
            out.to_str().unwrap(),
            "--insecure-plaintext",
            "--check",
        ]);
        assert!(o.status.success(), "round {round}: {}", stdout(&o));
    }
    eprintln!("6 races into a fresh directory: {lost} render(s) lost");
}

#[test]
fn a_user_link_or_file_where_rootroll_writes_a_directory_is_named() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    assert!(render_demo(&out).status.success());
    let prereq = out.join("prerequisites");
    std::fs::remove_dir_all(&prereq).unwrap();
    std::os::unix::fs::symlink(d.path(), &prereq).unwrap();
    let o = render_demo(&out);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{} is a symbolic link where rootroll writes the directory prerequisites/",
            prereq.display()
        )),
        "{err}"
    );
    assert!(
        !err.contains("rootroll-tmp"),
        "the error names a temporary path: {err}"
    );
    assert!(
        std::fs::symlink_metadata(&prereq)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_no_op_render_says_nothing_was_written() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    assert!(render_demo(&out).status.success());
    let o = render_demo(&out);
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("is up to date: nothing was written (21 files)"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("wrote"), "{}", stdout(&o));
}

#[test]
fn status_of_a_missing_directory_or_with_a_garbage_pointer_exits_2_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("nope");
    let o = rootroll(&["status", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("{} does not exist", missing.display())),
        "{}",
        stderr(&o)
    );

    let out = d.path().join("out");
    assert!(render_demo(&out).status.success());
    let pointer = out.join("clusters/demo/istio-ca/kustomization.yaml");
    std::fs::write(&pointer, "resources: [garbage\n").unwrap();
    for format in ["text", "json"] {
        let o = rootroll(&["status", out.to_str().unwrap(), "--format", format]);
        assert_eq!(o.status.code(), Some(2), "{format}: {}", stdout(&o));
        assert!(
            stderr(&o).contains(&format!(
                "{} does not name exactly one phase",
                pointer.display()
            )),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn promote_skipping_a_phase_names_the_phases_one_step_away() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    assert!(render_demo(&out).status.success());
    let o = rootroll(&[
        "promote",
        out.to_str().unwrap(),
        "--cluster",
        "demo",
        "--to",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("demo is at phase 1: promote one phase at a time (to 2)"),
        "{}",
        stderr(&o)
    );
}

fn git_repo_with_demo() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = rendered_repo("plans/demo.yaml");
    let out = d.path().join("gitops");
    (d, out)
}

fn promote_commit(out: &Path, to: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rootroll"));
    c.current_dir(root())
        .args(["--now", NOW, "promote"])
        .arg(out)
        .args(["--cluster", "demo", "--to", to, "--commit", "--force"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

#[test]
fn a_staged_pointer_left_by_an_interrupted_promote_is_refused_by_name() {
    let (d, out) = git_repo_with_demo();
    let pointer = out.join("clusters/demo/istio-ca/kustomization.yaml");
    let text = std::fs::read_to_string(&pointer).unwrap();
    std::fs::write(
        &pointer,
        text.replace("phases/1-initial", "phases/2-trust-both"),
    )
    .unwrap();
    git(
        d.path(),
        &[
            "add",
            "--",
            "gitops/clusters/demo/istio-ca/kustomization.yaml",
        ],
    );
    let o = rootroll(&[
        "promote",
        out.to_str().unwrap(),
        "--cluster",
        "demo",
        "--to",
        "3",
        "--commit",
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(
            "gitops/clusters/demo/istio-ca/kustomization.yaml: a staged change was never committed"
        ),
        "{err}"
    );
    // Undone as the message says, the promotion goes through.
    git(
        d.path(),
        &[
            "restore",
            "--staged",
            "--worktree",
            "--",
            "gitops/clusters/demo/istio-ca/kustomization.yaml",
        ],
    );
    assert!(promote_commit(&out, "2").status().unwrap().success());
}

/// Waits (up to 10 s) until no process runs in `dir` (`git -C dir …` children of a killed
/// rootroll keep running).
/// The process group of a `/proc/PID/stat` line (field 5; the command, field 2, may hold
/// spaces and parentheses, so fields are counted after its last `)`).
fn process_group(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Waits until no process runs in `dir`, and none of process group `group`: a git that a
/// killed rootroll had forked but not yet moved into `dir` is still in its group.
fn wait_for_processes(dir: &Path, group: Option<u32>) {
    let dir = std::fs::canonicalize(dir).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        let busy = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    && (std::fs::read_link(e.path().join("cwd")).is_ok_and(|c| c.starts_with(&dir))
                        || group.is_some_and(|g| {
                            std::fs::read_to_string(e.path().join("stat"))
                                .is_ok_and(|s| process_group(&s) == Some(g))
                        }))
            });
        if !busy {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills `promote --commit` with SIGKILL at random points: the pointer is always the old one
/// or the new one, no temporary file stays after the next promote, and the repository is
/// either unchanged, committed, or left with a staged pointer that the next promote refuses
/// by name.
#[test]
fn promote_commit_killed_at_any_point_leaves_the_old_pointer_or_the_new_one() {
    let kills: usize = std::env::var("ROOTROLL_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let (d, out) = git_repo_with_demo();
    let pointer = out.join("clusters/demo/istio-ca/kustomization.yaml");
    let old = std::fs::read_to_string(&pointer).unwrap();
    let new = old.replace("phases/1-initial", "phases/2-trust-both");
    let start = Instant::now();
    assert!(promote_commit(&out, "2").status().unwrap().success());
    let full = start.elapsed();
    git(d.path(), &["reset", "-q", "--hard", "HEAD~1"]);
    let head = git(d.path(), &["rev-parse", "HEAD"]);
    let mut seed = (std::process::id() as u64) << 16 | 1;
    let (mut saw_old, mut saw_new) = (0, 0);
    for i in 0..kills {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % (full.as_micros() as u64 * 12 / 10 + 1));
        // Its own process group, so that the git it forks is found even before it runs in d.
        let mut child =
            std::os::unix::process::CommandExt::process_group(&mut promote_commit(&out, "2"), 0)
                .spawn()
                .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();
        // A `git add` or `git commit` that rootroll started outlives it: let it finish.
        wait_for_processes(d.path(), Some(child.id()));
        let now = std::fs::read_to_string(&pointer).unwrap();
        assert!(
            now == old || now == new,
            "kill {i} after {delay:?}: pointer is\n{now}"
        );
        if now == old {
            saw_old += 1
        } else {
            saw_new += 1
        }
        let committed = git(d.path(), &["rev-parse", "HEAD"]) != head;
        let staged = !git(d.path(), &["diff", "--cached", "--name-only"])
            .trim()
            .is_empty();
        if committed {
            assert_eq!(now, new, "kill {i}: committed but the pointer is old");
            assert!(!staged, "kill {i}: committed and something is still staged");
        } else if staged {
            // The next promote refuses it by name rather than building on it.
            let o = rootroll(&[
                "promote",
                out.to_str().unwrap(),
                "--cluster",
                "demo",
                "--to",
                "2",
                "--commit",
                "--force",
            ]);
            assert!(
                stderr(&o).contains("a staged change was never committed"),
                "kill {i}: {}",
                stderr(&o)
            );
        }
        // Back to the start: the next promote run cleans any temporary file a kill left.
        git(d.path(), &["reset", "-q", "--hard", head.trim()]);
        assert!(
            promote_commit(&out, "2").status().unwrap().success(),
            "kill {i}: the next promote failed"
        );
        let leftovers: Vec<String> = std::fs::read_dir(pointer.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("rootroll-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "kill {i}: left {leftovers:?}");
        git(d.path(), &["reset", "-q", "--hard", head.trim()]);
    }
    eprintln!(
        "promote --commit killed {kills} times: old pointer {saw_old}, new pointer {saw_new}"
    );
}
