//! `live-secret-phase`: the live cacerts Secret is the expected phase. It is the root cause
//! for every gate that judges what istiod and the proxies made of the phase: when the Secret
//! was read and is another phase, those gates are not checked.

use k8s_openapi::api::core::v1::Secret;

use super::{Expectation, Snapshot};
use crate::gates::Code;
use crate::repo::keys;
use crate::verify::Finding;

/// The finding, and the reason dependent gates are not checked when the live Secret is not
/// this phase.
pub(super) fn phase(s: &Snapshot, e: &Expectation) -> (Finding, Option<String>) {
    let c = e.cluster.as_str();
    let name = format!("{}/{}", s.istio_namespace, e.secret_name);
    match &s.secret {
        None => (
            Finding::not_checked(
                Code::LiveSecretPhase,
                c,
                format!("because {name} was not read (--no-secret-read)"),
            ),
            None,
        ),
        Some(Err(why)) => (
            Finding::new(
                Code::LiveSecretPhase,
                false,
                c,
                format!("{name} could not be read: {why}"),
            )
            .hint("grant get on the cacerts Secret (verify/rbac-secret-read.yaml), or pass --no-secret-read"),
            None,
        ),
        Some(Ok(None)) => (
            Finding::new(
                Code::LiveSecretPhase,
                false,
                c,
                format!("{name} does not exist"),
            ),
            Some(format!("because {name} does not exist (live-secret-phase)")),
        ),
        Some(Ok(Some(sec))) => judge(sec, e, &name),
    }
}

fn judge(sec: &Secret, e: &Expectation, name: &str) -> (Finding, Option<String>) {
    let c = e.cluster.as_str();
    let mut other_phase = Vec::new();
    let phase_label = sec
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(keys::PHASE))
        .map(String::as_str);
    if phase_label != Some(e.phase.to_string().as_str()) {
        other_phase.push(format!(
            "its {} label is {}, not {}",
            keys::PHASE,
            phase_label.map_or("missing".to_string(), |p| format!("{p:?}")),
            e.phase
        ));
    }
    let annotation = sec
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(keys::PUBLIC_SHA256));
    if annotation != Some(&e.public_sha256) {
        other_phase.push("its public-content annotation differs from the rendered phase's".into());
    }
    if public_fingerprint(sec, e).is_some_and(|fp| fp != e.public_sha256) {
        other_phase.push("its certificates differ from the rendered phase's".into());
    }
    let extra = unexpected_keys(sec, e);
    let dir = &e.dir;
    let blocked = (!other_phase.is_empty())
        .then(|| format!("because the live Secret is not phase {dir} (live-secret-phase)"));
    let finding = if other_phase.is_empty() && extra.is_empty() {
        Finding::new(
            Code::LiveSecretPhase,
            true,
            c,
            format!("{name} is phase {dir}"),
        )
    } else if other_phase.is_empty() {
        Finding::new(
            Code::LiveSecretPhase,
            false,
            c,
            format!("{name} is phase {dir} but also holds {}", extra.join(", ")),
        )
        .hint("remove the extra keys: istiod prefers tls.crt over ca-cert.pem, and istio-generated turns cacerts into its self-signed CA")
    } else {
        let mut problems = other_phase;
        problems.extend(extra.iter().map(|k| format!("it holds {k}")));
        Finding::new(
            Code::LiveSecretPhase,
            false,
            c,
            format!("{name} is not phase {dir}: {}", problems.join("; ")),
        )
    };
    (finding, blocked)
}

/// The fingerprint of the Secret's public entries (every key of the format but the private
/// key), or None when it has none of them.
fn public_fingerprint(sec: &Secret, e: &Expectation) -> Option<String> {
    let data = sec.data.as_ref()?;
    let public: Vec<(&str, &[u8])> = e
        .format
        .keys()
        .iter()
        .filter(|k| **k != e.format.private_key())
        .filter_map(|k| data.get(*k).map(|v| (*k, v.0.as_slice())))
        .collect();
    (!public.is_empty()).then(|| crate::render::public_fingerprint(public.into_iter()))
}

/// Keys the phase's format does not have (`istio-generated`, a stale `tls.crt`, …).
fn unexpected_keys(sec: &Secret, e: &Expectation) -> Vec<String> {
    let names = sec.data.iter().flatten().map(|(k, _)| k);
    let names = names.chain(sec.string_data.iter().flatten().map(|(k, _)| k));
    names
        .filter(|k| !e.format.keys().contains(&k.as_str()))
        .map(|k| format!("`{k}`"))
        .collect()
}
