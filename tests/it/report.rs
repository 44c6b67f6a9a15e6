//! What a person reads from `verify`: the real binary on a fresh render (every gate passes)
//! and on a tampered one (a sops-edited ciphertext fails its MAC), in text (default and
//! `--verbose`), markdown and JUnit; colour only where NO_COLOR/CLICOLOR and the terminal
//! allow it; and hostile text from a cluster dump that stays inert in every format.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

const KEY: &str = "plans/demo.agekey";
const COLOUR_VARS: [&str; 4] = ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "TERM"];

fn render(plan: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = rootroll(&["render", plan, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    (dir, out)
}

/// A render of the demo plan whose phase-4 Secret was edited in its encrypted file the way
/// an operator's text editor would: its MAC no longer verifies.
fn tampered() -> (tempfile::TempDir, PathBuf) {
    let (d, out) = render("plans/demo.yaml");
    let f = out.join("clusters/demo/istio-ca/phases/4-finalize/cacerts.sops.yaml");
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.contains("rootroll.dev/phase-name: finalize"));
    std::fs::write(
        &f,
        text.replace(
            "rootroll.dev/phase-name: finalize",
            "rootroll.dev/phase-name: finalise",
        ),
    )
    .unwrap();
    (d, out)
}

/// `verify offline OUT --identity KEY ARGS…` with no colour variables but `env`.
fn verify(out: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rootroll"));
    cmd.current_dir(root())
        .args(["--now", NOW, "verify", "offline"])
        .arg(out)
        .args(["--identity", KEY])
        .args(args);
    for v in COLOUR_VARS {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// The JSON report of the same run: the data the other formats must agree with.
fn json(out: &Path) -> serde_json::Value {
    let o = verify(out, &["--format", "json"], &[]);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)))
}

fn findings(v: &serde_json::Value) -> &Vec<serde_json::Value> {
    v["findings"].as_array().unwrap()
}

/// Each finding's code, in first-appearance order, with how many findings and passes it has.
fn families(v: &serde_json::Value) -> Vec<(String, usize, usize)> {
    let mut fams: Vec<(String, usize, usize)> = Vec::new();
    for f in findings(v) {
        let code = f["code"].as_str().unwrap().to_string();
        let passed = usize::from(f["passed"] == true);
        match fams.iter_mut().find(|(c, _, _)| *c == code) {
            Some((_, n, p)) => {
                *n += 1;
                *p += passed;
            }
            None => fams.push((code, 1, passed)),
        }
    }
    fams
}

fn cells(v: &serde_json::Value) -> (usize, usize) {
    let m = v["matrix"].as_array().unwrap();
    (m.iter().filter(|c| c["ok"] == true).count(), m.len())
}

/// The family line of `code` (status, code, then its counts), exactly one.
fn family<'a>(text: &'a str, status: &str, code: &str) -> &'a str {
    let prefix = format!("{status} {code:<24} ");
    let found: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.strip_prefix(&prefix)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    assert_eq!(found.len(), 1, "one family line {prefix:?} in:\n{text}");
    found[0]
}

/// The line of `text` that starts with `prefix` (exactly one).
fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    let found: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "one line starting {prefix:?} in:\n{text}");
    found[0]
}

/// Parses XML with Python's expat (xml.dom.minidom) and prints, per test case that did not
/// pass, `tag<TAB>classname<TAB>name<TAB>message<TAB>text` (newlines as `\\n`); the first line is `tests<TAB>failures`.
fn parse_junit(xml: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit.xml");
    std::fs::write(&file, xml).unwrap();
    let script = r#"
import sys, xml.dom.minidom as m
d = m.parse(sys.argv[1])
s = d.getElementsByTagName('testsuite')[0]
print(s.getAttribute('tests') + '\t' + s.getAttribute('failures'))
for tag in ('failure', 'skipped'):
    for e in d.getElementsByTagName(tag):
        c = e.parentNode
        text = ''.join(n.data for n in e.childNodes if n.nodeType == n.TEXT_NODE)
        print('\t'.join([tag, c.getAttribute('classname'), c.getAttribute('name'), e.getAttribute('message'), text]).replace('\n', '\\n'))
"#;
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "not well-formed XML: {}\n{xml}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_passing_run_prints_one_line_per_gate_family_and_the_counts() {
    let (_d, out) = render("plans/fleet.yaml");
    let v = json(&out);
    let o = verify(&out, &[], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(!text.contains('\u{1b}'), "no colour on a pipe:\n{text}");
    let fams = families(&v);
    for (code, n, passed) in &fams {
        assert_eq!(n, passed, "fresh render: {code} passes");
        let l = family(&text, "PASS", code);
        assert!(l.contains(&format!(" {n} of {n} passed ")), "{l}");
    }
    // Nothing listed one by one: no subject of a passing finding appears.
    assert!(!text.contains("us-east/1-initial"), "{text}");
    let (ok, total) = cells(&v);
    assert_eq!((ok, total), (288, 288));
    for t in ["1→2", "2→3", "3→4"] {
        let l = line(&text, &format!("  phase {t} "));
        assert!(l.contains("96 of 96") && l.contains("cells ok"), "{l}");
    }
    assert_eq!(
        text.lines().last().unwrap(),
        format!(
            "{} passed, 0 failed, 0 warnings, 0 not checked; matrix 288 of 288 cells ok",
            findings(&v).len()
        )
    );
    // Every ordered pair of clusters, under the matrix (verify::pairs).
    line(
        &text,
        "  all 6 (3×2) cross-cluster pairs covered by bundle-shared",
    );
    // How the matrix ran (an identity was given: real handshakes).
    assert!(
        text.contains(
            "\nmatrix: decided by real TLS 1.3 handshakes between leaves issued from the CA keys\n"
        ),
        "{text}"
    );
    // The family lines, the matrix heading, its 3 transitions, the pairs line, the mode,
    // blank lines, the count.
    assert_eq!(
        text.lines().count(),
        fams.len() + 1 + 1 + 3 + 1 + 1 + 1 + 1,
        "{text}"
    );

    // --verbose: every finding on its own line, and every matrix group.
    let o = verify(&out, &["--verbose"], &[]);
    assert_eq!(o.status.code(), Some(0));
    let verbose = stdout(&o);
    let listed = verbose.lines().filter(|l| l.starts_with("PASS ")).count();
    assert_eq!(listed, findings(&v).len(), "{verbose}");
    assert!(verbose.contains("us-east/1-initial"));
    assert_eq!(
        verbose.matches("within the cluster").count(),
        9,
        "{verbose}"
    );
}

#[test]
fn a_tampered_run_shows_the_failure_in_full_and_exits_1() {
    let (_d, out) = tampered();
    let v = json(&out);
    let failed: Vec<&serde_json::Value> = findings(&v)
        .iter()
        .filter(|f| f["passed"] == false && f["severity"] == "error" && f["not_checked"].is_null())
        .collect();
    assert!(!failed.is_empty());
    let o = verify(&out, &[], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    let fam = family(&text, "FAIL", "sops-mac");
    assert!(fam.contains(" 3 of 4 passed, 1 failed "), "{fam}");
    // The failure in full: status, code, subject and what is wrong, then file and hint.
    let at = text
        .find(&format!(
            "FAIL {:<24} {:<28} mac mismatch in ",
            "sops-mac", "demo/4-finalize"
        ))
        .unwrap_or_else(|| panic!("sops-mac failure in full:\n{text}"));
    let block: Vec<&str> = text[at..].lines().take(3).collect();
    assert_eq!(
        block[1],
        "     file: clusters/demo/istio-ca/phases/4-finalize/cacerts.sops.yaml"
    );
    assert!(block[2].starts_with("     hint: "), "{block:?}");
    assert!(text.contains(&format!("\nfailures and warnings ({}):\n", failed.len())));
    // Every failed finding is printed, with its code and subject.
    for f in &failed {
        let want = format!(
            "FAIL {:<24} {}",
            f["code"].as_str().unwrap(),
            f["subject"].as_str().unwrap()
        );
        assert!(text.contains(&want), "{want:?} missing:\n{text}");
    }
    let passed = findings(&v).iter().filter(|f| f["passed"] == true).count();
    let not_checked = findings(&v)
        .iter()
        .filter(|f| !f["not_checked"].is_null())
        .count();
    // The tampered phase is one root cause: what depends on it is not checked, not failed.
    assert!(not_checked > 0);
    let (ok, total) = cells(&v);
    let cells_not_checked = v["matrix"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "not-checked")
        .count();
    // The cells that need the tampered phase were never judged: counted apart, never as ok.
    assert_eq!(ok + cells_not_checked, total);
    assert_eq!(
        text.lines().last().unwrap(),
        format!(
            "{passed} passed, {} failed, 0 warnings, {not_checked} not checked; matrix {ok} of {total} cells ok, {cells_not_checked} not checked",
            failed.len()
        )
    );
}

#[test]
fn markdown_is_a_table_with_one_row_per_gate_and_the_failures_in_detail() {
    let (_d, out) = render("plans/demo.yaml");
    let o = verify(&out, &["--format", "markdown"], &[]);
    assert_eq!(o.status.code(), Some(0));
    let md = stdout(&o);
    assert!(
        md.starts_with("### rootroll verify offline — ✅ passed\n"),
        "{md}"
    );
    assert!(md.contains("\n| Gate | Result | Count | Details |\n|---|---|---|---|\n"));
    for (code, n, _) in families(&json(&out)) {
        let row = line(&md, &format!("| `{code}` "));
        assert!(row.contains(&format!("| ✅ pass | {n} of {n} |")), "{row}");
    }
    assert!(md.contains("| phase 2→3 | ✅ pass | 16 of 16 |"), "{md}");

    let (_d, out) = tampered();
    let o = verify(&out, &["--format", "markdown"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let md = stdout(&o);
    assert!(
        md.starts_with("### rootroll verify offline — ❌ failed\n"),
        "{md}"
    );
    let row = line(&md, "| `sops-mac` ");
    assert!(
        row.contains("| ❌ fail | 3 of 4, 1 failed | **demo/4-finalize**: mac mismatch in "),
        "{row}"
    );
    assert!(
        row.contains(
            "(file `clusters/demo/istio-ca/phases/4-finalize/cacerts.sops.yaml`)<br>*hint:* "
        ),
        "{row}"
    );
    // Every row has the table's 5 column bars and no more.
    for row in md.lines().filter(|l| l.starts_with("| `")) {
        assert_eq!(
            row.matches('|').count() - row.matches("\\|").count(),
            5,
            "{row}"
        );
    }
}

#[test]
fn junit_parses_and_carries_each_failure() {
    let (_d, out) = render("plans/demo.yaml");
    let v = json(&out);
    let o = verify(&out, &["--format", "junit"], &[]);
    assert_eq!(o.status.code(), Some(0));
    let parsed = parse_junit(&stdout(&o));
    let tests = findings(&v).len() + cells(&v).1;
    assert_eq!(parsed, vec![format!("{tests}\t0")]);

    let (_d, out) = tampered();
    let v = json(&out);
    let o = verify(&out, &["--format", "junit"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let parsed = parse_junit(&stdout(&o));
    let failed = findings(&v)
        .iter()
        .filter(|f| f["passed"] == false && f["severity"] == "error" && f["not_checked"].is_null())
        .count();
    let (ok, total) = cells(&v);
    let tests = findings(&v).len() + total;
    assert_eq!(parsed[0], format!("{tests}\t{}", failed + total - ok));
    assert!(
        parsed.iter().any(|l| l.starts_with(
            "failure\tdemo/4-finalize\tsops-mac\tmac mismatch in clusters/demo/istio-ca/phases/4-finalize/cacerts.sops.yaml"
        )),
        "{parsed:#?}"
    );
}

#[test]
fn colour_follows_no_color_clicolor_and_the_terminal() {
    let (_d, out) = render("plans/demo.yaml");
    let red_or_green = |o: &Output| stdout(o).contains("\u{1b}[32mPASS\u{1b}[0m");
    assert!(!red_or_green(&verify(&out, &[], &[])), "pipe: no colour");
    assert!(red_or_green(&verify(&out, &[], &[("CLICOLOR_FORCE", "1")])));
    let o = verify(&out, &[], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(!stdout(&o).contains('\u{1b}'), "NO_COLOR wins");

    // On a terminal (util-linux `script` runs the command under a pseudo-terminal and copies
    // what it showed to its stdout).
    let in_terminal = |env: &str| {
        let mut cmd = Command::new("script");
        cmd.current_dir(root());
        for v in COLOUR_VARS {
            cmd.env_remove(v);
        }
        let line = format!(
            "{env} TERM=xterm-256color {} --now {NOW} verify offline {} --identity {KEY}",
            env!("CARGO_BIN_EXE_rootroll"),
            out.display()
        );
        run(cmd.args(["-q", "-e", "-c", &line, "/dev/null"]))
    };
    let o = in_terminal("");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(red_or_green(&o), "a terminal gets colour: {:?}", stdout(&o));
    for off in ["NO_COLOR=1", "CLICOLOR=0"] {
        let o = in_terminal(off);
        let shown = stdout(&o);
        assert!(shown.contains("PASS secret-shape "), "{shown:?}");
        assert!(!shown.contains("\u{1b}[3"), "{off}: no colour: {shown:?}");
    }
}

/// A pod name from a cluster dump holding escape sequences, NUL, markup and characters XML
/// forbids: the live gates echo it, and no format lets it act.
#[test]
fn hostile_text_from_a_cluster_dump_stays_inert_in_every_format() {
    let (d, out) = render("plans/demo.yaml");
    let dump = d.path().join("dump");
    std::fs::create_dir_all(&dump).unwrap();
    let name = "evil\u{1b}[2J\u{1b}[31m\u{0}<b>&amp;</b>\u{7}\u{ffff}\u{fffe}\u{202e}|x\ny";
    let pods = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [{
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "bookinfo", "labels": {"app": "reviews"}},
        "spec": {"containers": [{"name": "app", "image": "app"},
                                {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.28.0"}]},
        "status": {"phase": "Running"}}]});
    std::fs::write(dump.join("pods.json"), pods.to_string()).unwrap();
    let live = |format: &str, env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rootroll"));
        cmd.current_dir(root())
            .args(["--now", NOW, "verify", "live"]);
        cmd.arg(&out)
            .args(["--cluster", "demo", "--phase", "2", "--from-dump"])
            .arg(&dump)
            .args(["--format", format]);
        for v in COLOUR_VARS {
            cmd.env_remove(v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    };
    let escaped = "evil\\u{1b}[2J\\u{1b}[31m\\u{0}<b>&amp;</b>\\u{7}\\u{ffff}\\u{fffe}\\u{202e}|x";

    // Text, even with colour forced: our styles only, the name's bytes shown as escapes.
    let o = live("text", &[("CLICOLOR_FORCE", "1")]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(text.contains(escaped), "{text}");
    // (Our own red is `ESC[31m`; the name's clear-screen `ESC[2J` must not survive.)
    for bad in ["\u{1b}[2J", "\u{0}", "\u{7}", "\u{ffff}", "\u{202e}"] {
        assert!(
            !text.contains(bad),
            "{bad:?} reached the terminal: {text:?}"
        );
    }

    let o = live("junit", &[]);
    assert_eq!(o.status.code(), Some(1));
    let parsed = parse_junit(&stdout(&o));
    assert!(
        parsed
            .iter()
            .any(|l| l
                .starts_with("failure\tdemo\tproxy-readable\t1 of 1 proxies could not be read")),
        "{parsed:#?}"
    );
    // The details name the pod: the parser gives back our visible escapes, markup as text.
    let readable = parsed
        .iter()
        .find(|l| l.contains("\tproxy-readable\t"))
        .unwrap();
    assert!(
        readable.contains(&format!("bookinfo/{escaped}")),
        "{readable}"
    );

    let o = live("markdown", &[]);
    let md = stdout(&o);
    let row = line(&md, "| `proxy-readable` ");
    assert_eq!(
        row.matches('|').count() - row.matches("\\|").count(),
        5,
        "{row}"
    );
    assert!(
        row.contains("evil\\u{1b}[2J\\u{1b}[31m\\u{0}&lt;b&gt;&amp;amp;&lt;/b&gt;"),
        "{row}"
    );
    assert!(!md.contains('\u{1b}') && !md.contains("<b>"), "{md}");
}
