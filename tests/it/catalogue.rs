//! Every entry of the gate catalogue has a passing and a failing case (issue 11).
//!
//! The failing case of each code is one `match` arm, with no wildcard: a gate added to the
//! catalogue does not compile here until it has one. Each case breaks a fresh render the way a
//! hand edit (or a cluster) can, runs the real binary, and asserts that the gate ran and failed;
//! the clean trees and the healthy cluster dumps must pass every gate they are in scope for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use rootroll::gates::{Code, Scope};
use serde_json::{Value, json};

use crate::common::*;
use crate::envoy::EnvoyPair;
use crate::holes::new_intermediate_expiry;
use crate::live::{
    Cluster, envoy_dump, healthy, phase_secret, render_now, verify_dump_cluster, write_dump_with,
    ztunnel_dump,
};
use crate::verify::{edit, identity, phase_file, set_pointer};

const DEMO_KEY: &str = "plans/demo.agekey";

/// The codes in `v` (a JSON report) that ran and did not pass, any severity.
fn not_passed(v: &Value) -> BTreeSet<String> {
    findings(v, |f| f["passed"] == false && f["not_checked"].is_null())
}

/// The codes in `v` that ran and passed.
fn passed(v: &Value) -> BTreeSet<String> {
    findings(v, |f| f["passed"] == true && f["not_checked"].is_null())
}

fn findings(v: &Value, keep: impl Fn(&Value) -> bool) -> BTreeSet<String> {
    v["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("a JSON report: {v}"))
        .iter()
        .filter(|f| keep(f))
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The certificates of a PEM bundle, as separate PEM blocks.
fn pem_blocks(pem: &[u8]) -> Vec<Vec<u8>> {
    let text = std::str::from_utf8(pem).unwrap();
    let starts: Vec<usize> = text.match_indices("-----BEGIN").map(|(i, _)| i).collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, s)| text[*s..starts.get(n + 1).copied().unwrap_or(text.len())].into())
        .collect()
}

/// A data value of a rendered phase Secret.
fn data(out: &Path, cluster: &str, n: u8, key: &str) -> Vec<u8> {
    secret_data(&phase_secret(out, cluster, n))[key].clone()
}

/// Decrypts a phase Secret, replaces `from` by `to` in its plaintext, re-encrypts it.
fn edit_text(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    let plain = rootroll::sops::decrypt_yaml("t", &text, &[identity()]).unwrap();
    assert!(plain.contains(from), "{from} in {}", file.display());
    let recipient = identity().to_public();
    let sealed = rootroll::sops::encrypt_yaml(
        "t",
        &plain.replace(from, to),
        &[recipient],
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    std::fs::write(file, sealed).unwrap();
}

/// A self-signed certificate and key made by openssl, with extra `-addext` values.
fn openssl_cert(dir: &Path, subject: &str, ext: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "3650"])
        .args(["-subj", subject, "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    for e in ext {
        cmd.args(["-addext", e]);
    }
    must(&mut cmd);
    (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap())
}

/// The latest date the next rotation must start, as a clean `verify offline` reports it.
fn start_by(out: &Path) -> time::OffsetDateTime {
    let v = verify_offline(NOW, out);
    let at = v["expiry"][0]["startBy"]
        .as_str()
        .unwrap_or_else(|| panic!("expiry[0].startBy in {v:#}"));
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap()
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A broken tree for an offline gate: which render it starts from, the clock to verify at
/// (`None`: the tests' clock) and the edit.
struct OfflineCase {
    plan: &'static str,
    at: Option<fn(&Path) -> String>,
    edit: fn(&Path),
}

/// The failing case of every offline gate. No wildcard arm: a new offline gate needs one.
fn offline_case(code: Code) -> Option<OfflineCase> {
    let demo = |edit: fn(&Path)| {
        Some(OfflineCase {
            plan: "plans/demo.yaml",
            at: None,
            edit,
        })
    };
    let fleet = |edit: fn(&Path)| {
        Some(OfflineCase {
            plan: "plans/fleet.yaml",
            at: None,
            edit,
        })
    };
    // Phase 2 of the demo without root A: its signer (A's intermediate) no longer chains, the
    // reload from phase 1 drops a root, and workloads holding A's leaves fail the matrix.
    let drop_root_a = |out: &Path| {
        let roots = pem_blocks(&data(out, "demo", 2, "root-cert.pem"));
        edit(&phase_file(out, "demo", "2-trust-both"), |d| {
            d.insert("root-cert.pem".into(), roots[1].clone());
        });
    };
    match code {
        Code::ClustersPresent => fleet(|out| {
            std::fs::remove_dir_all(out.join("clusters/eu-central")).unwrap();
        }),
        Code::PointerValid => demo(|out| set_pointer(out, "demo", "9-nowhere")),
        Code::SecretShape => demo(|out| {
            edit(&phase_file(out, "demo", "2-trust-both"), |d| {
                d.remove("ca-key.pem");
            })
        }),
        Code::SopsMac => demo(|out| {
            let f = phase_file(out, "demo", "4-finalize");
            let text = std::fs::read_to_string(&f).unwrap();
            let tampered = text.replace("phase-name: finalize", "phase-name: finalise");
            assert_ne!(text, tampered);
            std::fs::write(&f, tampered).unwrap();
        }),
        Code::KeyMatchesCert => fleet(|out| {
            let key = data(out, "us-west", 2, "ca-key.pem");
            edit(&phase_file(out, "us-east", "2-trust-both"), |d| {
                d.insert("ca-key.pem".into(), key);
            });
        }),
        Code::SignerIsCa => demo(|out| {
            let dir = tempfile::tempdir().unwrap();
            let (cert, key) = openssl_cert(
                dir.path(),
                "/CN=not a CA",
                &["basicConstraints=critical,CA:FALSE"],
            );
            edit(&phase_file(out, "demo", "1-initial"), |d| {
                let mut chain = cert.clone();
                chain.extend_from_slice(&d["root-cert.pem"]);
                d.insert("ca-cert.pem".into(), cert);
                d.insert("ca-key.pem".into(), key);
                d.insert("cert-chain.pem".into(), chain);
            });
        }),
        Code::ChainToBundle | Code::ReloadRule | Code::HandshakeMatrix => demo(drop_root_a),
        Code::ChainOrder => demo(|out| {
            edit(&phase_file(out, "demo", "1-initial"), |d| {
                let mut blocks = pem_blocks(&d["cert-chain.pem"]);
                blocks.reverse();
                d.insert("cert-chain.pem".into(), blocks.concat());
            })
        }),
        Code::ValidityWindow => Some(OfflineCase {
            plan: "plans/demo.yaml",
            at: Some(|out| rfc3339(new_intermediate_expiry(out) + time::Duration::days(1))),
            edit: |_| {},
        }),
        Code::BundleRoots => demo(|out| {
            let ab = data(out, "demo", 2, "root-cert.pem");
            edit(&phase_file(out, "demo", "4-finalize"), |d| {
                d.insert("root-cert.pem".into(), ab);
            })
        }),
        Code::BundleBytes => demo(|out| {
            edit(&phase_file(out, "demo", "2-trust-both"), |d| {
                let mut blocks = pem_blocks(&d["root-cert.pem"]);
                blocks.reverse();
                d.insert("root-cert.pem".into(), blocks.concat());
            })
        }),
        // A comment pasted between root A and root B.
        Code::BundleBlocks => demo(|out| {
            edit(&phase_file(out, "demo", "2-trust-both"), |d| {
                let blocks = pem_blocks(&d["root-cert.pem"]);
                let pasted = [blocks[0].as_slice(), b"# root B\n", blocks[1].as_slice()].concat();
                d.insert("root-cert.pem".into(), pasted);
            })
        }),
        Code::AnnotationsMatch => demo(|out| {
            let f = phase_file(out, "demo", "2-trust-both");
            let text = std::fs::read_to_string(&f).unwrap();
            let at = text.find("rootroll.dev/bundle-sha256: ").unwrap() + 28;
            let value = text[at..at + 64].to_string();
            edit_text(&f, &value, &"0".repeat(64));
        }),
        Code::KustomizeAppliesPhase => demo(|out| {
            let k = out.join("clusters/demo/istio-ca/phases/3-switch-issuer/kustomization.yaml");
            let text = std::fs::read_to_string(&k).unwrap();
            let wrong = text.replace("  - \"cacerts.sops.yaml\"", "  - ../2-trust-both");
            assert_ne!(text, wrong);
            std::fs::write(&k, wrong).unwrap();
        }),
        // The demo's shortest rotation is 53 minutes.
        Code::ValidityFloor => Some(OfflineCase {
            plan: "plans/demo.yaml",
            at: Some(|out| {
                let end = time::Duration::days(2) + time::Duration::minutes(53);
                rfc3339(new_intermediate_expiry(out) - end)
            }),
            edit: |_| {},
        }),
        Code::ValidityMargin => Some(OfflineCase {
            plan: "plans/demo.yaml",
            at: Some(|out| {
                let end = time::Duration::days(60) + time::Duration::minutes(53);
                rfc3339(new_intermediate_expiry(out) - end)
            }),
            edit: |_| {},
        }),
        Code::Phase3BytesDiffer => demo(|out| {
            let ab = data(out, "demo", 2, "root-cert.pem");
            edit(&phase_file(out, "demo", "3-switch-issuer"), |d| {
                d.insert("root-cert.pem".into(), ab);
            })
        }),
        // Phase 3 still signs with A's intermediate.
        Code::SignerSequence => demo(|out| {
            let two = secret_data(&phase_secret(out, "demo", 2));
            edit(&phase_file(out, "demo", "3-switch-issuer"), |d| {
                for k in ["ca-cert.pem", "ca-key.pem", "cert-chain.pem"] {
                    d.insert(k.into(), two[k].clone());
                }
            })
        }),
        Code::BundleShared => fleet(|out| {
            let b = data(out, "us-west", 4, "root-cert.pem");
            edit(&phase_file(out, "us-east", "4-finalize"), |d| {
                let mut twice = d["root-cert.pem"].clone();
                twice.extend_from_slice(&b);
                d.insert("root-cert.pem".into(), twice);
            })
        }),
        Code::RootSubjectsDistinct => demo(|out| {
            let dir = tempfile::tempdir().unwrap();
            let (lookalike, _) = openssl_cert(dir.path(), "/O=Istio/CN=Root CA", &[]);
            edit(&phase_file(out, "demo", "2-trust-both"), |d| {
                let mut b = lookalike;
                b.extend_from_slice(&d["root-cert.pem"]);
                d.insert("root-cert.pem".into(), b);
            })
        }),
        Code::Lockstep => fleet(|out| {
            set_pointer(out, "us-east", "4-finalize");
            set_pointer(out, "us-west", "2-trust-both");
            set_pointer(out, "eu-central", "2-trust-both");
        }),
        // The next rotation's start-by date is 10 days (fail) or 60 days (warn) away.
        Code::RotationStartBy => Some(OfflineCase {
            plan: "plans/demo.yaml",
            at: Some(|out| rfc3339(start_by(out) - time::Duration::days(10))),
            edit: |_| {},
        }),
        Code::RotationStartSoon => Some(OfflineCase {
            plan: "plans/demo.yaml",
            at: Some(|out| rfc3339(start_by(out) - time::Duration::days(60))),
            edit: |_| {},
        }),
        // A hand-written Application left with the template's placeholder.
        Code::NoPlaceholder => demo(|out| {
            let app = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nspec:\n  source:\n    repoURL: REPLACE-WITH-YOUR-REPO-URL\n";
            std::fs::write(out.join("clusters/demo/argocd-app.yaml"), app).unwrap();
        }),
        // One Secret is also readable by a key the plan never named.
        Code::SopsRecipients => demo(|out| {
            let f = phase_file(out, "demo", "2-trust-both");
            let plain = rootroll::sops::decrypt_yaml(
                "t",
                &std::fs::read_to_string(&f).unwrap(),
                &[identity()],
            )
            .unwrap();
            let extra = age::x25519::Identity::generate().to_public();
            let to = [identity().to_public(), extra];
            let sealed =
                rootroll::sops::encrypt_yaml("t", &plain, &to, time::OffsetDateTime::now_utc())
                    .unwrap();
            std::fs::write(f, sealed).unwrap();
        }),
        // Phase 3's probe is phase 2's: signed by A's intermediate, not the Secret's signer.
        Code::ProbeChain => demo(|out| {
            let probe = |p: &str| out.join(format!("clusters/demo/istio-ca/phases/{p}/probe.pem"));
            std::fs::copy(probe("2-trust-both"), probe("3-switch-issuer")).unwrap();
        }),
        // Its own tree: rendered with --insecure-plaintext (see the test).
        Code::NoPlaintextPrivateKey => None,
        Code::PrereqMultiroot
        | Code::PrereqXdsAgent
        | Code::PrereqXdsAgentPods
        | Code::PrereqVersions
        | Code::NoRestart
        | Code::LiveSecretPhase
        | Code::RootConfigmap
        | Code::WebhookCaBundle
        | Code::ProxyReadable
        | Code::ProxyTrustsRoots
        | Code::ProxyLeafNewIssuer
        | Code::ZtunnelReadable
        | Code::ZtunnelTrustsNewRoot
        | Code::ZtunnelLeafNewIssuer
        | Code::SoakTime
        | Code::ZtunnelRestarted
        | Code::ProxiesVerified => unreachable!("{code} is a live gate"),
    }
}

fn verify_offline(at: &str, out: &Path) -> Value {
    let o = rootroll_at(
        at,
        &[
            "verify",
            "offline",
            out.to_str().unwrap(),
            "--identity",
            DEMO_KEY,
            "--format",
            "json",
        ],
    );
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("JSON report: {}{}", stdout(&o), stderr(&o)))
}

#[test]
fn every_offline_gate_passes_on_clean_trees_and_fails_on_its_broken_tree() {
    let offline: Vec<Code> = rootroll::gates::all()
        .filter(|g| g.scope == Scope::Offline)
        .map(|g| g.code)
        .collect();
    let base = tempfile::tempdir().unwrap();
    let mut clean_passed = BTreeSet::new();
    for plan in ["plans/demo.yaml", "plans/fleet.yaml"] {
        let out = base.path().join(plan);
        let o = rootroll(&["render", plan, "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v = verify_offline(NOW, &out);
        assert_eq!(not_passed(&v), BTreeSet::new(), "clean {plan}");
        clean_passed.extend(passed(&v));
    }
    for code in &offline {
        assert!(
            clean_passed.contains(code.as_str()),
            "{code} never ran and passed on a clean tree"
        );
    }

    let plain = render_plain("plans/demo.yaml");
    let v = verify_offline(NOW, &plain.path().join("out"));
    assert!(not_passed(&v).contains("no-plaintext-private-key"), "{v:#}");

    let cases: Vec<(Code, OfflineCase)> = offline
        .iter()
        .filter_map(|c| offline_case(*c).map(|case| (*c, case)))
        .collect();
    let failures = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((code, case)) = cases.get(i) else {
                        break;
                    };
                    let d = tempfile::tempdir().unwrap();
                    let out = d.path().join("out");
                    copy_dir(&base.path().join(case.plan), &out);
                    (case.edit)(&out);
                    let at = case.at.map_or_else(|| NOW.to_string(), |f| f(&out));
                    let v = verify_offline(&at, &out);
                    if !not_passed(&v).contains(code.as_str()) {
                        failures.lock().unwrap().push(format!(
                            "{code}: did not fail; failed: {:?}",
                            not_passed(&v)
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// What a live case starts from: the rendered plans and real Envoy dumps of each phase.
struct LiveBase {
    demo: crate::live::Rendered,
    ambient: crate::live::Rendered,
    /// Envoy's secrets dump loaded with each phase of the demo (index 0 = phase 1).
    envoy: Vec<Value>,
    /// The ambient waypoint's dump in each phase.
    waypoint: Vec<Value>,
}

/// A cluster dump for a live gate: the cluster, its proxies' and ztunnels' dumps.
struct LiveCase {
    cluster: &'static str,
    phase: u8,
    objects: Cluster,
    proxies: BTreeMap<String, Value>,
    ztunnels: BTreeMap<String, Value>,
}

impl LiveBase {
    /// A healthy cluster in `phase`: sidecars (demo) or a waypoint and two ztunnels (ambient).
    fn healthy(&self, cluster: &'static str, phase: u8) -> LiveCase {
        let ambient = cluster == "ambient";
        let out = if ambient {
            &self.ambient.out
        } else {
            &self.demo.out
        };
        let mut objects = healthy(out, cluster, phase, if ambient { 1 } else { 2 });
        let dumps = if ambient { &self.waypoint } else { &self.envoy };
        let proxies = objects
            .sidecars
            .iter()
            .map(|(_, p)| (p.clone(), dumps[usize::from(phase) - 1].clone()))
            .collect();
        let mut ztunnels = BTreeMap::new();
        if ambient {
            let pods = objects.objects.get_mut("pods.json").unwrap()["items"]
                .as_array_mut()
                .unwrap();
            for i in 0..2 {
                let name = format!("ztunnel-{i}");
                pods.push(json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "istio-system", "labels": {"app": "ztunnel"}},
                    "spec": {"containers": [{"name": "istio-proxy", "image": "docker.io/istio/ztunnel:1.28.0"}]},
                    // Restarted a day ago, after every phase was applied (a week ago).
                    "status": {"phase": "Running", "startTime": ago(86_400), "containerStatuses": [
                        {"name": "istio-proxy", "ready": true, "restartCount": 0, "image": "docker.io/istio/ztunnel:1.28.0", "imageID": "", "state": {"running": {"startedAt": ago(86_400)}}}
                    ]}
                }));
                ztunnels.insert(name, ztunnel_dump(out, cluster, phase, phase));
            }
        }
        LiveCase {
            cluster,
            phase,
            objects,
            proxies,
            ztunnels,
        }
    }

    fn run(&self, c: &LiveCase) -> Value {
        let out = if c.cluster == "ambient" {
            &self.ambient.out
        } else {
            &self.demo.out
        };
        let d = tempfile::tempdir().unwrap();
        write_dump_with(d.path(), &c.objects, &c.proxies, &c.ztunnels);
        verify_dump_cluster(out, d.path(), c.cluster, c.phase).2
    }
}

fn ago(secs: i64) -> String {
    rfc3339(time::OffsetDateTime::now_utc() - time::Duration::seconds(secs))
}

/// The failing case of every live gate. No wildcard arm: a new live gate needs one.
fn live_case(code: Code, b: &LiveBase) -> LiveCase {
    let mut c = match code {
        Code::ZtunnelReadable
        | Code::ZtunnelTrustsNewRoot
        | Code::ZtunnelLeafNewIssuer
        | Code::ZtunnelRestarted => b.healthy("ambient", 3),
        Code::ProxyTrustsRoots => b.healthy("demo", 2),
        _ => b.healthy("demo", 3),
    };
    let o = &mut c.objects.objects;
    match code {
        Code::PrereqMultiroot => {
            o.get_mut("deployments.json").unwrap()["items"][0]["spec"]["template"]["spec"]["containers"]
                [0]["env"] = json!([]);
        }
        Code::PrereqXdsAgent => {
            o.get_mut("configmaps.json").unwrap()["items"][0]["data"]["mesh"] =
                json!("defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n");
        }
        Code::PrereqXdsAgentPods => {
            o.get_mut("pods.json").unwrap()["items"][1]["spec"]["containers"][1]["env"] = json!([]);
        }
        Code::PrereqVersions => {
            o.get_mut("deployments.json").unwrap()["items"][0]["spec"]["template"]["spec"]["containers"]
                [0]["image"] = json!("docker.io/istio/pilot:1.25.1");
        }
        // A sidecar restarted a minute ago, after the phase was applied a week ago.
        Code::NoRestart => {
            let s =
                &mut o.get_mut("pods.json").unwrap()["items"][1]["status"]["containerStatuses"][0];
            s["restartCount"] = json!(1);
            s["state"]["running"]["startedAt"] = json!(ago(60));
        }
        Code::LiveSecretPhase => {
            c.objects.secret = healthy(&b.demo.out, "demo", 2, 0).secret;
        }
        Code::RootConfigmap => {
            let old = String::from_utf8(data(&b.demo.out, "demo", 2, "root-cert.pem")).unwrap();
            o.get_mut("configmaps.json").unwrap()["items"][2]["data"]["root-cert.pem"] = json!(old);
        }
        Code::WebhookCaBundle => {
            use base64::Engine as _;
            let one = data(&b.demo.out, "demo", 1, "root-cert.pem");
            o.get_mut("mutatingwebhookconfigurations.json").unwrap()["items"][0]["webhooks"][0]["clientConfig"]
                ["caBundle"] = json!(base64::engine::general_purpose::STANDARD.encode(one));
        }
        Code::ProxyReadable => {
            c.proxies.remove("web-0001");
        }
        // Phase 2 trusts A and B; this Envoy still holds phase 1's bundle (A only).
        Code::ProxyTrustsRoots => {
            c.proxies.insert("web-0001".into(), b.envoy[0].clone());
        }
        Code::ProxyLeafNewIssuer => {
            c.proxies.insert("web-0001".into(), b.envoy[1].clone());
        }
        Code::ZtunnelReadable => {
            c.ztunnels.remove("ztunnel-1");
        }
        Code::ZtunnelTrustsNewRoot => {
            let stale = ztunnel_dump(&b.ambient.out, "ambient", 3, 1);
            c.ztunnels.insert("ztunnel-1".into(), stale);
        }
        Code::ZtunnelLeafNewIssuer => {
            let stale = ztunnel_dump(&b.ambient.out, "ambient", 2, 3);
            c.ztunnels.insert("ztunnel-1".into(), stale);
        }
        // The phase was applied a minute ago.
        Code::SoakTime => {
            c.objects.secret["metadata"]["managedFields"][0]["time"] = json!(ago(60));
        }
        // ztunnel 1.28.0 (no CA root reload) has run since before phase 3 was applied.
        Code::ZtunnelRestarted => {
            let z = &mut o.get_mut("pods.json").unwrap()["items"][3]["status"];
            z["containerStatuses"][0]["state"]["running"]["startedAt"] = json!(ago(8 * 86_400));
        }
        // A pod of the istio-agentgateway GatewayClass: not Envoy, so not verified.
        Code::ProxiesVerified => {
            o.get_mut("pods.json").unwrap()["items"]
                .as_array_mut()
                .unwrap()
                .push(crate::live::agentgateway_pod());
        }
        Code::ClustersPresent
        | Code::PointerValid
        | Code::SecretShape
        | Code::SopsMac
        | Code::KeyMatchesCert
        | Code::SignerIsCa
        | Code::ChainToBundle
        | Code::ChainOrder
        | Code::ValidityWindow
        | Code::BundleRoots
        | Code::BundleBytes
        | Code::BundleBlocks
        | Code::AnnotationsMatch
        | Code::KustomizeAppliesPhase
        | Code::ValidityFloor
        | Code::ValidityMargin
        | Code::ReloadRule
        | Code::Phase3BytesDiffer
        | Code::SignerSequence
        | Code::BundleShared
        | Code::RootSubjectsDistinct
        | Code::Lockstep
        | Code::NoPlaintextPrivateKey
        | Code::HandshakeMatrix
        | Code::RotationStartBy
        | Code::RotationStartSoon
        | Code::NoPlaceholder
        | Code::SopsRecipients
        | Code::ProbeChain => unreachable!("{code} is an offline gate"),
    }
    c
}

#[test]
fn every_live_gate_passes_on_a_healthy_cluster_and_fails_on_its_fault() {
    let demo = render_now("plans/demo.yaml");
    let ambient = render_now("plans/ambient.yaml");
    let mut envoy = EnvoyPair::start();
    let dumps = |out: &Path, cluster: &str, envoy: &mut EnvoyPair| -> Vec<Value> {
        (1..=4)
            .map(|n| envoy_dump(envoy, out, cluster, n))
            .collect()
    };
    let b = LiveBase {
        envoy: dumps(&demo.out, "demo", &mut envoy),
        waypoint: dumps(&ambient.out, "ambient", &mut envoy),
        demo,
        ambient,
    };
    let live: Vec<Code> = rootroll::gates::all()
        .filter(|g| g.scope == Scope::Live)
        .map(|g| g.code)
        .collect();
    let mut healthy_passed = BTreeSet::new();
    for cluster in ["demo", "ambient"] {
        for phase in 1..=4 {
            let v = b.run(&b.healthy(cluster, phase));
            assert_eq!(not_passed(&v), BTreeSet::new(), "healthy {cluster} {phase}");
            healthy_passed.extend(passed(&v));
        }
    }
    let mut failures = Vec::new();
    for code in live {
        if !healthy_passed.contains(code.as_str()) {
            failures.push(format!("{code}: never ran and passed on a healthy cluster"));
        }
        let case = live_case(code, &b);
        let phases = code.gate().phases;
        assert!(
            phases.is_empty() || phases.contains(&0) || phases.contains(&case.phase),
            "{code}'s case is in phase {}, outside the gate's phases",
            case.phase
        );
        let v = b.run(&case);
        if !not_passed(&v).contains(code.as_str()) {
            failures.push(format!(
                "{code}: did not fail; failed: {:?}",
                not_passed(&v)
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
