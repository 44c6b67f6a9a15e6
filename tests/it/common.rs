//! Shared helpers: run the real binary, read rendered Secrets through `kubectl kustomize`,
//! call openssl.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The clock every test renders at (after the committed fixtures were made).
pub const NOW: &str = "2027-01-01T00:00:00Z";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn rootroll(args: &[&str]) -> Output {
    rootroll_at(NOW, args)
}

/// Runs rootroll with `--now AT`.
pub fn rootroll_at(at: &str, args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_rootroll"))
        .current_dir(root())
        .args(["--now", at])
        .args(args))
}

/// Runs a rootroll command. When `ROOTROLL_TEST_OUTPUT_DIR` is set (scripts/test.sh sets it),
/// what it printed is kept there, one file per run, so that scripts/scan-test-output.sh can
/// check that no private key reached a terminal, an error or a report in any test.
pub fn run(cmd: &mut Command) -> Output {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let o = cmd.output().expect("the rootroll binary runs");
    if let Some(dir) = std::env::var_os("ROOTROLL_TEST_OUTPUT_DIR") {
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut text = format!("args: {}\n--- stdout\n", args.join(" ")).into_bytes();
        text.extend_from_slice(&o.stdout);
        text.extend_from_slice(b"\n--- stderr\n");
        text.extend_from_slice(&o.stderr);
        let file = Path::new(&dir).join(format!("{}-{n}.out", std::process::id()));
        std::fs::write(&file, text)
            .unwrap_or_else(|e| panic!("cannot keep test output in {}: {e}", file.display()));
    }
    o
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a command that must succeed and returns its stdout.
pub fn must(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Renders `plan` (relative to the crate root) into a fresh temp dir, unencrypted.
pub fn render_plain(plan: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let o = rootroll(&[
        "render",
        plan,
        "--out",
        out.to_str().unwrap(),
        "--insecure-plaintext",
    ]);
    assert!(o.status.success(), "render {plan} failed: {}", stderr(&o));
    dir
}

/// Every document `kubectl kustomize DIR` builds, as JSON values.
pub fn kustomize(dir: &Path) -> Vec<serde_json::Value> {
    let out = must(Command::new("kubectl").arg("kustomize").arg(dir));
    let text = String::from_utf8(out).expect("kustomize prints UTF-8");
    text.split("\n---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).expect("kustomize output is YAML"))
        .collect()
}

/// The decoded `data` of a Secret.
pub fn secret_data(secret: &serde_json::Value) -> std::collections::BTreeMap<String, Vec<u8>> {
    use base64::Engine as _;
    secret["data"]
        .as_object()
        .expect("Secret has data")
        .iter()
        .map(|(k, v)| {
            let b = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().expect("data values are strings"))
                .expect("data values are base64");
            (k.clone(), b)
        })
        .collect()
}

/// `openssl verify -CAfile roots cert` (with optional untrusted intermediates).
pub fn openssl_verify(roots: &[u8], cert: &[u8], untrusted: Option<&[u8]>) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("roots.pem");
    let c = dir.path().join("cert.pem");
    std::fs::write(&r, roots).unwrap();
    std::fs::write(&c, cert).unwrap();
    let mut cmd = Command::new("openssl");
    // Verify at the rendered clock, as istiod would when the phase is applied then.
    let at =
        time::OffsetDateTime::parse(NOW, &time::format_description::well_known::Rfc3339).unwrap();
    cmd.arg("verify")
        .arg("-attime")
        .arg(at.unix_timestamp().to_string())
        .arg("-CAfile")
        .arg(&r);
    if let Some(u) = untrusted {
        let up = dir.path().join("untrusted.pem");
        std::fs::write(&up, u).unwrap();
        cmd.arg("-untrusted").arg(up);
    }
    let out = cmd.arg(&c).output().expect("openssl runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The public key (PEM) of a certificate or a private key, as openssl prints it.
pub fn openssl_pubkey(pem: &[u8], is_key: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("in.pem");
    std::fs::write(&f, pem).unwrap();
    let out = if is_key {
        must(
            Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&f),
        )
    } else {
        must(
            Command::new("openssl")
                .args(["x509", "-noout", "-pubkey", "-in"])
                .arg(&f),
        )
    };
    String::from_utf8(out).unwrap()
}

/// The plans shipped in `plans/`, except the `fleet-*` benchmark plans (100 clusters, or
/// RSA-4096 keys): rendering those in every example-plan test would make CI slow. `fleet.rs`
/// renders and verifies `fleet-100-ecdsa` once.
pub fn example_plans() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("plans"))
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.to_string();
            (p.extension()? == "yaml" && !name.starts_with("fleet-"))
                .then(|| format!("plans/{name}"))
        })
        .collect();
    v.sort();
    v
}

/// Byte content of every file under `dir`, keyed by relative path.
pub fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// `git -C dir args…`, which must succeed; its stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    String::from_utf8(must(Command::new("git").arg("-C").arg(dir).args(args))).unwrap()
}

/// A Git repo with `plan` rendered (encrypted) under `gitops/` and committed.
pub fn rendered_repo(plan: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    git(d.path(), &["init", "-q"]);
    git(d.path(), &["config", "user.email", "ci@example.com"]);
    git(d.path(), &["config", "user.name", "CI"]);
    git(d.path(), &["config", "commit.gpgsign", "false"]);
    let out = d.path().join("gitops");
    let o = rootroll(&["render", plan, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    git(d.path(), &["add", "-A"]);
    git(d.path(), &["commit", "-qm", "render"]);
    d
}

/// The `# public key: age1…` line of an age identity file (as age-keygen writes it).
pub fn age_public_key(identity: &Path) -> String {
    std::fs::read_to_string(identity)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap_or_else(|| panic!("{} has no public key line", identity.display()))
        .trim()
        .to_string()
}
