//! `secret-shape`: each phase is a complete cacerts Secret of the live type. Every phase is
//! held to the one planned type, so the type cannot change between phases (Kubernetes would
//! need a delete and a re-create).

use std::collections::{BTreeMap, BTreeSet};

use zeroize::Zeroizing;

use super::read::Opened;
use super::{Ctx, Report};
use crate::gates::Code;
use crate::verify::Finding;
use crate::verify::common::b64;

/// A Secret's decoded `data`, wiped on drop.
pub type Data = BTreeMap<String, Zeroizing<Vec<u8>>>;

/// Every way the document is not the cacerts Secret of phase `n`; `withheld` are its
/// ciphertext entries no identity opened (present, but not readable).
fn problems(
    ctx: &Ctx<'_>,
    n: u8,
    doc: &serde_json::Value,
    withheld: &BTreeSet<String>,
) -> Vec<String> {
    let rollout = &ctx.repo.rollout;
    let mesh = &rollout.mesh;
    let want_keys = mesh.secret_format.keys();
    let no_data = serde_json::Map::new();
    let data = doc["data"].as_object().unwrap_or(&no_data);
    let mut keys: Vec<&str> = data.keys().chain(withheld).map(String::as_str).collect();
    keys.sort_unstable();
    let mut p = Vec::new();
    if doc["kind"] != "Secret" || doc["apiVersion"] != "v1" {
        p.push("not a v1 Secret".to_string());
    }
    if doc["metadata"]["name"] != mesh.secret_name.as_str()
        || doc["metadata"]["namespace"] != mesh.istio_namespace.as_str()
    {
        p.push(format!("not {}/{}", mesh.istio_namespace, mesh.secret_name));
    }
    if keys != want_keys {
        p.push(format!("has keys {keys:?} instead of {want_keys:?}"));
    }
    if data.contains_key("istio-generated") {
        p.push("has `istio-generated` (istiod would treat cacerts as its self-signed CA)".into());
    }
    if doc["immutable"] == true {
        p.push("is immutable: true (the next phase could not update it in place)".into());
    }
    let want_type = mesh.secret_format.secret_type();
    let secret_type = doc["type"].as_str().unwrap_or("Opaque");
    if secret_type != want_type {
        p.push(format!("has type {secret_type} instead of {want_type}"));
    }
    let label = &doc["metadata"]["labels"][crate::repo::keys::PHASE];
    if *label != n.to_string().as_str() {
        p.push(format!(
            "has label {} {label} in the directory of phase {n}",
            crate::repo::keys::PHASE
        ));
    }
    if data
        .values()
        .any(|v| v.as_str().and_then(b64).is_none_or(|b| b.is_empty()))
    {
        p.push("has a data value that is empty or not base64".into());
    }
    p
}

/// `secret-shape`: returns the decoded data, or the root cause when the shape is wrong.
pub fn check(
    ctx: &Ctx<'_>,
    subject: &str,
    n: u8,
    opened: &Opened,
    r: &mut Report,
) -> Result<Data, String> {
    let doc = &opened.doc.0;
    let problems = problems(ctx, n, doc, &opened.withheld);
    let file = Some(opened.rel.as_str());
    if !problems.is_empty() {
        let msg = format!("the phase {n} Secret {}", problems.join("; "));
        r.push(Finding::new(Code::SecretShape, false, subject, msg).in_file(file));
        return Err(format!("phase {n} is not a complete cacerts Secret"));
    }
    let mesh = &ctx.repo.rollout.mesh;
    r.push(
        Finding::new(
            Code::SecretShape,
            true,
            subject,
            format!(
                "{} {}/{} with {}",
                mesh.secret_format.secret_type(),
                mesh.istio_namespace,
                mesh.secret_name,
                mesh.secret_format.keys().join(", ")
            ),
        )
        .in_file(file),
    );
    Ok(doc["data"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), Zeroizing::new(b64(v.as_str()?)?))))
        .collect())
}
