//! The signing material of one phase: `key-matches-cert`, `signer-is-ca`, `chain-to-bundle`
//! and `chain-order`, as istiod's load-time `Verify` would judge them (facts §9.3), and
//! `probe-chain`: the phase's public probe leaf stands for this Secret.

use super::read::Opened;
use super::shape::Data;
use super::{Ctx, PhaseSecret, Report};
use crate::gates::Code;
use crate::pki::{self, PrivateKeyPem};
use crate::repo;
use crate::verify::Finding;

/// The phase's signing certificate, key, bundle and served chain. `Err` (after pushing a
/// failed `signer-is-ca`) when the signing certificate cannot be parsed.
pub fn decode(
    ctx: &Ctx<'_>,
    subject: &str,
    cluster: &str,
    n: u8,
    opened: &Opened,
    data: &Data,
    r: &mut Report,
) -> Result<PhaseSecret, String> {
    let format = ctx.repo.rollout.mesh.secret_format;
    let cert_k = format.cert_key();
    let first = pki::split_certificates(&data[cert_k])
        .map_err(|e| e.to_string())
        .and_then(|ders| {
            pki::inspect_der(&ders[0]).map_err(|e| e.to_string())?;
            Ok(ders[0].clone())
        });
    let signer = match first {
        Ok(d) => d,
        Err(e) => {
            let msg = format!("phase {n} {cert_k} cannot be read: {e}");
            r.push(
                Finding::new(Code::SignerIsCa, false, subject, msg)
                    .in_file(Some(&opened.rel))
                    .hint("re-render"),
            );
            return Err(format!("phase {n} {cert_k} cannot be read"));
        }
    };
    let chain = if ctx.repo.rollout.tls_format() {
        [data["tls.crt"].as_slice(), data["ca.crt"].as_slice()].concat()
    } else {
        data["cert-chain.pem"].to_vec()
    };
    Ok(PhaseSecret {
        cluster: cluster.to_string(),
        phase: n,
        strategy: ctx.repo.rollout.strategy,
        file: opened.rel.clone(),
        signer_pem: pki::der_to_pem(&signer),
        signer,
        // Absent only when it is ciphertext and no identity opened it (`shape` checked that).
        key: data
            .get(format.private_key())
            .map(|k| PrivateKeyPem::new(String::from_utf8_lossy(k).into_owned())),
        bundle: data[format.bundle_key()].to_vec(),
        chain,
        probe: Err("its probe was not read".to_string()),
    })
}

/// `probe-chain`: `probe.pem` of the phase is a probe leaf of this Secret's signer, followed by
/// exactly its chain and bundle ([`crate::handshake::check_probe`]). Keeps the leaf in `s`
/// for the matrix, or why there is none.
pub fn probe(ctx: &Ctx<'_>, subject: &str, s: &mut PhaseSecret, r: &mut Report) {
    let rel = repo::probe_file(s.strategy, &s.cluster, s.phase);
    let td = &ctx.repo.rollout.mesh.trust_domain;
    let checked = match std::fs::read(ctx.repo.path(&rel)) {
        Ok(bytes) => crate::handshake::check_probe(&bytes, td, &s.signer, &s.chain, &s.bundle),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("it is missing".to_string()),
        Err(e) => Err(format!("it cannot be read: {e}")),
    };
    let n = s.phase;
    let msg = match &checked {
        Ok(_) => "probe leaf signed by the signing certificate, with the phase's chain and bundle"
            .to_string(),
        Err(why) => format!("phase {n} probe {rel}: {why}"),
    };
    r.push(Finding::new(Code::ProbeChain, checked.is_ok(), subject, msg).in_file(Some(&rel)));
    s.probe = match checked {
        // The file is the chain as istio-agent would present it (checked just now).
        Ok(_) => std::fs::read(ctx.repo.path(&rel)).map_err(|e| format!("{rel}: {e}")),
        Err(why) => Err(format!("{rel}: {why}")),
    };
}

/// The four signing-material gates of a decoded phase.
pub fn gates(ctx: &Ctx<'_>, subject: &str, opened: &Opened, s: &PhaseSecret, r: &mut Report) {
    let format = ctx.repo.rollout.mesh.secret_format;
    let (cert_k, key_k, bundle_k) = (format.cert_key(), format.private_key(), format.bundle_key());
    let file = Some(opened.rel.as_str());
    let n = s.phase;
    match &s.key {
        Some(key) => {
            let matches = pki::key_matches_cert(key, &s.signer).unwrap_or(false);
            let msg = if matches {
                format!("{key_k} belongs to {cert_k}")
            } else {
                format!("phase {n} {key_k} is not the private key of {cert_k}")
            };
            r.push(Finding::new(Code::KeyMatchesCert, matches, subject, msg).in_file(file));
        }
        None => {
            let what = format!("comparing {key_k} (ciphertext) with {cert_k}");
            r.push(super::read::needs_key(ctx, Code::KeyMatchesCert, subject, &what).in_file(file));
        }
    }

    // `decode` parsed it already.
    let Ok(c) = pki::inspect_der(&s.signer) else {
        return;
    };
    let eku_ok = c.ext_key_usage.is_empty()
        || c.ext_key_usage
            .iter()
            .any(|e| e == "serverAuth" || e == "any");
    let ca_ok = c.is_ca && c.key_cert_sign && eku_ok;
    let what = format!(
        "{}: CA {}, keyCertSign {}, EKU [{}]",
        c.subject,
        c.is_ca,
        c.key_cert_sign,
        c.ext_key_usage.join(", ")
    );
    let msg = if ca_ok {
        what
    } else {
        format!("phase {n} signing certificate cannot sign leaves ({what})")
    };
    r.push(Finding::new(Code::SignerIsCa, ca_ok, subject, msg).in_file(file));

    let roots = pki::split_certificates(&s.bundle).unwrap_or_default();
    let chain = pki::split_certificates(&s.chain).unwrap_or_default();
    let chained = chains_to_bundle(&s.signer, &chain, &roots);
    let msg = match &chained {
        Ok(path) => format!("{} chains to a root of {bundle_k} ({path})", c.subject),
        Err(why) => format!("phase {n} signing certificate does not chain to {bundle_k}: {why}"),
    };
    r.push(Finding::new(Code::ChainToBundle, chained.is_ok(), subject, msg).in_file(file));

    if !ctx.repo.rollout.tls_format() {
        let order = chain_order(&s.signer, &chain, &roots);
        let msg = match &order {
            Ok(()) => "cert-chain.pem = ca-cert.pem, then issuers up to a bundle root".to_string(),
            Err(why) => format!("phase {n} cert-chain.pem {why}"),
        };
        r.push(Finding::new(Code::ChainOrder, order.is_ok(), subject, msg).in_file(file));
    }
}

/// `cert-chain.pem` starts with the signer, each certificate is signed by the next, and it
/// ends at a root of the bundle; `Err` says where it goes wrong.
fn chain_order(signer: &[u8], chain: &[Vec<u8>], roots: &[Vec<u8>]) -> Result<(), String> {
    if chain.first().map(Vec::as_slice) != Some(signer) {
        return Err("does not start with ca-cert.pem".into());
    }
    if let Some(i) = chain
        .windows(2)
        .position(|w| !pki::is_signed_by(&w[0], &w[1]))
    {
        return Err(format!(
            "certificate {} is not signed by certificate {} after it",
            i + 1,
            i + 2
        ));
    }
    if !chain.last().is_some_and(|l| roots.contains(l)) {
        return Err("does not end at a root of root-cert.pem".into());
    }
    Ok(())
}

/// Walks from `cert` through the `chain` certificates to a root of `roots`.
fn chains_to_bundle(cert: &[u8], chain: &[Vec<u8>], roots: &[Vec<u8>]) -> Result<String, String> {
    if roots.iter().any(|r| r.as_slice() == cert) && pki::is_signed_by(cert, cert) {
        return Ok("0 hop(s)".to_string());
    }
    pki::chain_hops(cert, chain, roots, 8)
        .map(|hops| format!("{hops} hop(s)"))
        .map_err(|last| {
            let issuer = pki::inspect_der(last).map(|s| s.issuer).unwrap_or_default();
            format!("no root in the bundle signed `{issuer}`")
        })
}
