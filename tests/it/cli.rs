//! The binary as users run it: help, inspect, exit codes.

use crate::common::*;

#[test]
fn help_teaches_the_phases_and_commands() {
    let o = rootroll(&["--help"]);
    assert!(o.status.success());
    let text = stdout(&o);
    for want in [
        "3 switch-issuer",
        "A+B+B",
        "init",
        "plan",
        "render",
        "inspect",
        "decrypt",
        "Exit codes",
    ] {
        assert!(text.contains(want), "--help lacks {want}");
    }
}

#[test]
fn inspect_summarises_every_certificate_of_a_bundle() {
    let o = rootroll(&["inspect", "tests/fixtures/makefile/cluster1/cert-chain.pem"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("certificate 1 of 2") && text.contains("certificate 2 of 2"));
    assert!(text.contains("O=Istio, CN=Intermediate CA, L=cluster1"));
    assert!(text.contains("CA (pathlen 0)"));
    assert!(text.contains("RSA 4096"));
    assert!(text.contains("DNSName(istiod.istio-system.svc)"));
    let o = rootroll(&[
        "inspect",
        "tests/fixtures/makefile/root-cert.pem",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["subject"], "O=Istio, CN=Root CA");
    assert_eq!(v[0]["isCa"], true);
    assert_eq!(v[0]["selfSigned"], true);
    assert_eq!(v[0]["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn inspect_never_prints_a_private_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("mixed.pem");
    let mut bytes =
        std::fs::read(root().join("tests/fixtures/makefile/cluster1/ca-cert.pem")).unwrap();
    let key = std::fs::read(root().join("tests/fixtures/makefile/cluster1/ca-key.pem")).unwrap();
    bytes.extend_from_slice(&key);
    std::fs::write(&f, bytes).unwrap();
    let o = rootroll(&["inspect", f.to_str().unwrap()]);
    assert!(o.status.success());
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("block 2 (PRIVATE KEY) not shown"), "{all}");
    let body: String = String::from_utf8_lossy(&key)
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(!all.contains(&body), "key material leaked");
}

#[test]
fn inspect_of_a_missing_or_non_pem_file_exits_2() {
    let o = rootroll(&["inspect", "no/such/file.pem"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no/such/file.pem"));
    let o = rootroll(&["inspect", "README.md"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn man_page_and_completions_come_from_the_clap_definitions() {
    let o = rootroll(&["man"]);
    assert!(o.status.success());
    let man = stdout(&o);
    assert!(man.contains(".TH rootroll 1"));
    for sub in ["render", "verify", "promote", "status"] {
        assert!(man.contains(sub), "man page lacks {sub}");
    }
    let o = rootroll(&["completions", "bash"]);
    assert!(o.status.success());
    let bash = stdout(&o);
    assert!(
        bash.contains("complete")
            && bash.contains("--insecure-plaintext")
            && bash.contains("--all-clusters")
    );
    // bash accepts the script.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.bash");
    std::fs::write(&f, bash).unwrap();
    must(std::process::Command::new("bash").arg("-n").arg(&f));
}

#[test]
fn explain_documents_every_gate_of_the_catalogue() {
    let o = rootroll(&["explain"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list = stdout(&o);
    for code in rootroll::gates::Code::ALL {
        let line = list
            .lines()
            .find(|l| l.split_whitespace().next() == Some(code.as_str()))
            .unwrap_or_else(|| panic!("{code} not listed:\n{list}"));
        assert!(line.contains(code.gate().title), "{line}");
        let one = rootroll(&["explain", code.as_str()]);
        assert!(one.status.success(), "{code}: {}", stderr(&one));
        let text = stdout(&one);
        for part in [code.gate().proves, code.gate().hint, code.gate().doc] {
            assert!(text.contains(part), "{code}: {part:?} missing from\n{text}");
        }
    }
    let o = rootroll(&["explain", "no-such-gate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`no-such-gate` is not a gate code"),
        "{}",
        stderr(&o)
    );
    let o = rootroll(&["explain", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v.as_array().unwrap().len(),
        rootroll::gates::Code::ALL.len()
    );
}
