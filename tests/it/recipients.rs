//! Recipients by role (issue 13): a cluster's Secrets are readable by the operators and that
//! cluster's key only, the key state by the operators only. Checked with the real `sops` and
//! `age-keygen`: migration from the shorthand keeps every key, `.sops.yaml` makes `sops` edits
//! keep each file's recipients, and `sops-recipients` fails a file with a key more or fewer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use crate::verify::failures;

const DEMO_KEY: &str = "plans/demo.agekey";
const DEMO_PUBLIC: &str = "age18wfpqaqejnsfp8ykhwxhhhgdruwrk2d8rlwfmp5tuf587npuaatsgu66et";
const CLUSTERS: [&str; 3] = ["us-east", "us-west", "eu-central"];

/// An age key made by the real `age-keygen`: its file and public key.
struct Key {
    file: PathBuf,
    public: String,
}

fn keygen(dir: &Path, name: &str) -> Key {
    let file = dir.join(format!("{name}.agekey"));
    must(Command::new("age-keygen").arg("-o").arg(&file));
    let public = String::from_utf8(must(Command::new("age-keygen").arg("-y").arg(&file)))
        .unwrap()
        .trim()
        .to_string();
    Key { file, public }
}

fn sops(key: &Path) -> Command {
    let mut c = Command::new("sops");
    c.arg("--disable-version-check")
        .env_remove("SOPS_AGE_KEY")
        .env("SOPS_AGE_KEY_FILE", key);
    c
}

/// Every SOPS file of a rendered tree (the `.sops.yaml` config aside).
fn sops_files(out: &Path) -> Vec<String> {
    tree(out)
        .into_keys()
        .filter(|p| p.ends_with(".sops.yaml") && p != ".sops.yaml")
        .collect()
}

/// The age recipients a SOPS file lists, read from its public `sops` block.
fn recipients_of(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let mut keys: Vec<String> = v["sops"]["age"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["recipient"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    keys
}

/// The plaintext `sops -d` gives with `key`, or `None` when the key cannot open the file.
fn decrypt(key: &Path, file: &Path) -> Option<Vec<u8>> {
    let o = sops(key).arg("decrypt").arg(file).output().unwrap();
    o.status.success().then_some(o.stdout)
}

/// A fleet rendered from plans/fleet.yaml (shorthand, demo key), then moved to the role form:
/// one operator key and three cluster keys made by age-keygen.
struct Migrated {
    dir: tempfile::TempDir,
    out: PathBuf,
    plan: PathBuf,
    operator: Key,
    clusters: BTreeMap<&'static str, Key>,
    /// `sops -d` of every SOPS file before the migration (demo key).
    before: BTreeMap<String, Vec<u8>>,
}

fn roles_plan(operator: &Key, clusters: &BTreeMap<&str, Key>) -> String {
    let fleet = std::fs::read_to_string(root().join("plans/fleet.yaml")).unwrap();
    let short = format!("    ageRecipients:\n      - {DEMO_PUBLIC}\n");
    assert!(
        fleet.contains(&short),
        "plans/fleet.yaml uses the shorthand"
    );
    let mut roles = format!("    recipients:\n      alice: {}\n", operator.public);
    for (c, k) in clusters {
        roles.push_str(&format!("      flux-{c}: {}\n", k.public));
    }
    roles.push_str("    operators: [alice]\n");
    let mut plan = fleet.replace(&short, &roles);
    for c in CLUSTERS {
        let at = format!("    - name: {c}\n");
        assert!(plan.contains(&at));
        plan = plan.replace(&at, &format!("{at}      recipients: [flux-{c}]\n"));
    }
    plan
}

fn migrated() -> Migrated {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = rootroll(&["render", "plans/fleet.yaml", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let demo = root().join(DEMO_KEY);
    let before: BTreeMap<String, Vec<u8>> = sops_files(&out)
        .into_iter()
        .map(|f| {
            let plain = decrypt(&demo, &out.join(&f)).expect("the demo key opens the shorthand");
            (f, plain)
        })
        .collect();
    assert!(before.len() > 12, "{:?}", before.keys());
    let operator = keygen(dir.path(), "alice");
    let clusters: BTreeMap<&str, Key> = CLUSTERS
        .iter()
        .map(|c| (*c, keygen(dir.path(), &format!("flux-{c}"))))
        .collect();
    let plan = dir.path().join("fleet-roles.yaml");
    std::fs::write(&plan, roles_plan(&operator, &clusters)).unwrap();
    // The old state is encrypted to the demo key: that identity opens it once.
    let o = rootroll(&[
        "render",
        plan.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--identity",
        DEMO_KEY,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    Migrated {
        dir,
        out,
        plan,
        operator,
        clusters,
        before,
    }
}

fn verify_json(out: &Path, identity: &Path) -> (Option<i32>, serde_json::Value) {
    let o = rootroll(&[
        "verify",
        "offline",
        out.to_str().unwrap(),
        "--identity",
        identity.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&o), stderr(&o)));
    (o.status.code(), v)
}

/// The messages of the `sops-recipients` findings that failed, by subject.
fn recipient_failures(v: &serde_json::Value) -> BTreeMap<String, String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "sops-recipients" && f["passed"] == false)
        .map(|f| {
            (
                f["subject"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn one_render_moves_the_shorthand_to_roles_keeping_every_key() {
    let m = migrated();
    let files = sops_files(&m.out);
    assert_eq!(files, m.before.keys().cloned().collect::<Vec<_>>());
    let state = ".rootroll/state.sops.yaml";
    for f in &files {
        let path = m.out.join(f);
        // The operator opens everything, and it is what was there before: same certificates,
        // same private keys, same fingerprint annotations. Nothing was regenerated.
        let plain = decrypt(&m.operator.file, &path)
            .unwrap_or_else(|| panic!("the operator key cannot open {f}"));
        assert!(
            plain == m.before[f],
            "{f}: content changed in the migration"
        );
        // Every file was re-encrypted: the demo key is in no role any more.
        assert!(
            decrypt(&root().join(DEMO_KEY), &path).is_none(),
            "{f}: still readable by the old shorthand key"
        );
        // Cluster A's key opens A's Secrets and nothing else (not B's, not the state).
        for (c, k) in &m.clusters {
            let mine = f.starts_with(&format!("clusters/{c}/"));
            assert_eq!(
                decrypt(&k.file, &path).is_some(),
                mine,
                "{f} with flux-{c}'s key"
            );
        }
        let mut want = vec![m.operator.public.clone()];
        if f != state {
            let c = f.split('/').nth(1).unwrap();
            want.push(m.clusters[c].public.clone());
        }
        want.sort();
        assert_eq!(recipients_of(&path), want, "{f}");
    }
    // The migrated tree passes every gate, the new one included, with the operator's key.
    let (code, v) = verify_json(&m.out, &m.operator.file);
    assert_eq!(failures(&v), vec![]);
    assert_eq!(code, Some(0));
    let passed = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "sops-recipients" && f["passed"] == true)
        .count();
    assert_eq!(passed, files.len());
    // CI's run, with no key at all, passes too: the matrix decided from the probes.
    let home = m.dir.path().join("no-key-home");
    std::fs::create_dir(&home).unwrap();
    let o = run(Command::new(env!("CARGO_BIN_EXE_rootroll"))
        .current_dir(root())
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", &home)
        .args(["--now", NOW, "verify", "offline"])
        .arg(&m.out)
        .args(["--format", "json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(failures(&v), vec![]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(v["matrix_mode"], "probes", "{}", v["matrix_mode"]);
    // rollout.json records the roles, so verify needs no plan.
    let rollout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m.out.join(".rootroll/rollout.json")).unwrap())
            .unwrap();
    assert_eq!(
        rollout["gitops"]["roles"]["operators"],
        serde_json::json!(["alice"])
    );
    assert_eq!(
        rollout["gitops"]["roles"]["clusters"]["us-east"],
        serde_json::json!(["flux-us-east"])
    );
    // `plan` says who can decrypt what.
    let o = rootroll(&["plan", m.plan.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("keys     operators (everything, the key state included): alice\n"),
        "{text}"
    );
    for c in CLUSTERS {
        assert!(
            text.contains(&format!("{c} Secrets: the operators and flux-{c}\n")),
            "{text}"
        );
    }
    // A second render with the operator's key changes no byte.
    let before = tree(&m.out);
    let o = rootroll(&[
        "render",
        m.plan.to_str().unwrap(),
        "--out",
        m.out.to_str().unwrap(),
        "--identity",
        m.operator.file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(tree(&m.out) == before, "the second render changed bytes");
    drop(m.dir);
}

#[test]
fn sops_edits_keep_each_files_planned_recipients() {
    let m = migrated();
    let config = std::fs::read_to_string(m.out.join(".sops.yaml")).unwrap();
    assert!(
        config.contains("path_regex: ^clusters/us\\-east/.*\\.sops\\.yaml$"),
        "{config}"
    );
    assert!(
        config.contains("path_regex: ^\\.rootroll/state\\.sops\\.yaml$"),
        "{config}"
    );
    let east = "clusters/us-east/istio-ca/phases/2-trust-both/cacerts.sops.yaml";
    let before = recipients_of(&m.out.join(east));
    // `sops set` re-encrypts the file (run where Flux users run it: the repository root).
    must(sops(&m.operator.file).current_dir(&m.out).args([
        "set",
        east,
        r#"["data"]["extra"]"#,
        r#""eA==""#,
    ]));
    assert_eq!(recipients_of(&m.out.join(east)), before);
    // A file created with `sops encrypt` under a cluster gets that cluster's recipients, and
    // the key state's path the operators only.
    let west = "clusters/us-west/istio-ca/extra.sops.yaml";
    std::fs::write(m.out.join(west), "data:\n  x: eA==\n").unwrap();
    must(
        sops(&m.operator.file)
            .current_dir(&m.out)
            .args(["encrypt", "-i", west]),
    );
    let mut want = vec![
        m.operator.public.clone(),
        m.clusters["us-west"].public.clone(),
    ];
    want.sort();
    assert_eq!(recipients_of(&m.out.join(west)), want);
    // `sops updatekeys` brings a file with a key too many back to the plan's recipients.
    let state = ".rootroll/state.sops.yaml";
    let east_key = m.clusters["us-east"].public.clone();
    must(sops(&m.operator.file).current_dir(&m.out).args([
        "rotate",
        "-i",
        "--add-age",
        &east_key,
        state,
    ]));
    assert_eq!(recipients_of(&m.out.join(state)).len(), 2);
    must(
        sops(&m.operator.file)
            .current_dir(&m.out)
            .args(["updatekeys", "-y", state]),
    );
    assert_eq!(
        recipients_of(&m.out.join(state)),
        vec![m.operator.public.clone()]
    );
}

#[test]
fn a_key_more_or_fewer_fails_sops_recipients_naming_file_and_recipient() {
    let m = migrated();
    let (code, v) = verify_json(&m.out, &m.operator.file);
    assert_eq!(code, Some(0), "{:?}", failures(&v));
    // Cluster us-west's key added to a us-east Secret, and to the key state: each is named.
    let east = "clusters/us-east/istio-ca/phases/3-switch-issuer/cacerts.sops.yaml";
    let state = ".rootroll/state.sops.yaml";
    let west = &m.clusters["us-west"].public;
    for f in [east, state] {
        must(sops(&m.operator.file).current_dir(&m.out).args([
            "rotate",
            "-i",
            "--add-age",
            west,
            f,
        ]));
    }
    // And us-central's own key removed from one of its Secrets.
    let eu = "clusters/eu-central/istio-ca/phases/1-initial/cacerts.sops.yaml";
    must(sops(&m.operator.file).current_dir(&m.out).args([
        "rotate",
        "-i",
        "--rm-age",
        &m.clusters["eu-central"].public,
        eu,
    ]));
    let (code, v) = verify_json(&m.out, &m.operator.file);
    assert_eq!(code, Some(1));
    let failed = recipient_failures(&v);
    let mut want = vec![east, eu, state];
    want.sort();
    assert_eq!(failed.keys().map(String::as_str).collect::<Vec<_>>(), want);
    for f in [east, state] {
        assert!(
            failed[f].contains(&format!("also readable by flux-us-west ({west})")),
            "{f}: {}",
            failed[f]
        );
    }
    assert!(
        failed[eu].contains("not readable by flux-eu-central"),
        "{}",
        failed[eu]
    );
    // A key the plan does not know is named by its key.
    let stranger = keygen(m.dir.path(), "stranger");
    let us_west = "clusters/us-west/istio-ca/phases/4-finalize/cacerts.sops.yaml";
    must(sops(&m.operator.file).current_dir(&m.out).args([
        "rotate",
        "-i",
        "--add-age",
        &stranger.public,
        us_west,
    ]));
    let (_, v) = verify_json(&m.out, &m.operator.file);
    let failed = recipient_failures(&v);
    assert!(
        failed[us_west].contains(&format!("{} (not in the plan)", stranger.public)),
        "{}",
        failed[us_west]
    );
    // `render --check` sees the drift, and one `render` puts every file back to its recipients.
    let render = |extra: &[&str]| {
        let mut args = vec![
            "render",
            m.plan.to_str().unwrap(),
            "--out",
            m.out.to_str().unwrap(),
            "--identity",
            m.operator.file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        rootroll(&args)
    };
    let o = render(&["--check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    for f in [east, eu, state, us_west] {
        assert!(
            stdout(&o).contains(f) || stderr(&o).contains(f),
            "{f}: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }
    let tampered = m.dir.path().join("tampered");
    must(Command::new("cp").arg("-a").arg(&m.out).arg(&tampered));
    let o = render(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (code, v) = verify_json(&m.out, &m.operator.file);
    assert_eq!(code, Some(0), "{:?}", failures(&v));
    // The gate reads only the public sops block: without any identity it still fails them.
    let home = m.dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let o = run(Command::new(env!("CARGO_BIN_EXE_rootroll"))
        .current_dir(root())
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", &home)
        .args(["--now", NOW, "verify", "offline"])
        .arg(&tampered)
        .args(["--format", "json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(recipient_failures(&v).len(), 4);
}

#[test]
fn a_bad_role_plan_writes_nothing() {
    for plan in [
        "tests/invalid/operators-empty.yaml",
        "tests/invalid/cluster-recipients-missing.yaml",
        "tests/invalid/recipient-unused.yaml",
        "tests/invalid/recipient-unknown.yaml",
        "tests/invalid/roles-recipient-invalid.yaml",
        "tests/invalid/recipients-both-forms.yaml",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let o = rootroll(&["render", plan, "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{plan}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("{plan}:")),
            "{plan}: {}",
            stderr(&o)
        );
        assert!(!out.exists(), "{plan}: something was written");
    }
}
