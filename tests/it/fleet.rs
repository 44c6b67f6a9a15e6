//! The 100-cluster benchmark plan, rendered once (the example-plan tests skip the `fleet-*`
//! plans to keep CI fast): every offline gate passes, the whole handshake matrix included, and
//! a re-render of the unchanged plan writes nothing.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::common::{rootroll, stderr, stdout};

/// (inode, mtime) of every file and directory below `dir`.
fn identities(dir: &Path) -> BTreeMap<String, (u64, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            out.insert(rel, (m.ino(), m.mtime(), m.mtime_nsec()));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn fleet_100_ecdsa_renders_passes_every_gate_and_rerenders_as_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    let render = || rootroll(&["render", "plans/fleet-100-ecdsa.yaml", "--out", out_s]);

    let o = render();
    assert!(o.status.success(), "render failed: {}", stderr(&o));
    // Two roots and 200 intermediates.
    assert!(stderr(&o).contains("generated 202 CA(s)"), "{}", stderr(&o));

    let o = rootroll(&[
        "verify",
        "offline",
        out_s,
        "--identity",
        "plans/demo.agekey",
        "--format",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("verify printed no JSON ({e}): {}", stderr(&o)));
    let failed: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["passed"] != true)
        .map(|f| format!("{} {}: {}", f["code"], f["subject"], f["message"]))
        .collect();
    assert_eq!(failed, Vec::<String>::new());
    assert!(o.status.success(), "{}", stderr(&o));
    // 100 clusters × 3 transitions × (within the cluster + with the next) × 16 combinations.
    let matrix = report["matrix"].as_array().unwrap();
    assert_eq!(matrix.len(), 9600);
    assert!(matrix.iter().all(|c| c["ok"] == true));
    let matrix_findings: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "handshake-matrix")
        .collect();
    // One per cluster and transition, and the fleet's all-pairs finding (verify::pairs).
    assert_eq!(matrix_findings.len(), 300 + 1);
    let pairs = matrix_findings
        .iter()
        .find(|f| f["subject"] == "fleet")
        .unwrap();
    assert!(
        pairs["message"]
            .as_str()
            .unwrap()
            .starts_with("all 9900 (100×99) cross-cluster pairs covered by bundle-shared"),
        "{pairs}"
    );

    // Same plan, same keys: nothing generated, nothing rewritten, not even the tree's inodes.
    let before = identities(&out);
    let o = render();
    assert!(o.status.success(), "re-render failed: {}", stderr(&o));
    assert!(
        stdout(&o).contains("is up to date: nothing was written (1606 files)"),
        "{}",
        stdout(&o)
    );
    assert!(!stderr(&o).contains("generated"), "{}", stderr(&o));
    assert_eq!(identities(&out), before);

    // A file whose mode drifted is put right by the next render (the tree is rewritten).
    let key = out.join("clusters/cluster-0001/istio-ca/phases/1-initial/cacerts.sops.yaml");
    let bytes = std::fs::read(&key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = render();
    assert!(o.status.success(), "re-render failed: {}", stderr(&o));
    let meta = std::fs::metadata(&key).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read(&key).unwrap(), bytes);
}
