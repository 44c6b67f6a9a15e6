//! Reading what a proxy holds from its admin dump: an Envoy's ROOTCA and `default` SDS secrets
//! (admin `config_dump` or `istioctl proxy-config secret -o json`, camelCase or snake_case) and
//! a ztunnel's identities; and whether a leaf was issued by a given intermediate.

use super::super::common::{b64, pem_certificates as pem_blocks};
use super::Ders;
use crate::pki;

/// Finds the first value under `keys` (camelCase or snake_case) anywhere in `v`.
fn find_key<'a>(v: &'a serde_json::Value, names: &[&str]) -> Option<&'a serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => {
            for n in names {
                if let Some(x) = m.get(*n) {
                    return Some(x);
                }
            }
            m.values().find_map(|x| find_key(x, names))
        }
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_key(x, names)),
        _ => None,
    }
}

/// Bytes of an Envoy DataSource (`inlineBytes` base64 or `inlineString`).
fn data_source(v: &serde_json::Value) -> Option<Vec<u8>> {
    if let Some(s) = v
        .get("inlineBytes")
        .or_else(|| v.get("inline_bytes"))
        .and_then(|x| x.as_str())
    {
        return b64(s);
    }
    v.get("inlineString")
        .or_else(|| v.get("inline_string"))
        .and_then(|x| x.as_str())
        .map(|s| s.as_bytes().to_vec())
}

/// What an Envoy holds: (ROOTCA certs, `default` chain certs), from an admin `config_dump`
/// or `istioctl proxy-config secret -o json`, camelCase or snake_case.
pub fn envoy_secrets(dump: &serde_json::Value) -> Result<(Ders, Ders), String> {
    let active = find_key(dump, &["dynamicActiveSecrets", "dynamic_active_secrets"])
        .and_then(|v| v.as_array())
        .ok_or("no dynamic active secrets in the dump")?;
    let by_name = |name: &str| {
        active
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| &s["secret"])
    };
    let root = by_name("ROOTCA")
        .and_then(|s| {
            s.get("validationContext")
                .or_else(|| s.get("validation_context"))
        })
        .and_then(|vc| vc.get("trustedCa").or_else(|| vc.get("trusted_ca")))
        .and_then(data_source)
        .ok_or("no ROOTCA secret with a trusted CA")?;
    let chain = by_name("default")
        .and_then(|s| s.get("tlsCertificate").or_else(|| s.get("tls_certificate")))
        .and_then(|t| {
            t.get("certificateChain")
                .or_else(|| t.get("certificate_chain"))
        })
        .and_then(data_source)
        .ok_or("no `default` secret with a certificate chain")?;
    Ok((pem_blocks(&root), pem_blocks(&chain)))
}

/// One identity a ztunnel holds, from its `config_dump` (`src/admin.rs` `CertsDump`, facts §7.3).
#[derive(Debug, Clone)]
pub struct ZtunnelCert {
    /// The SPIFFE identity.
    pub identity: String,
    /// `Available`, `Initializing` or `Unavailable: <err>`; empty when the dump has none.
    pub state: String,
    /// `rootCerts` (DER).
    pub roots: Ders,
    /// `certChain`, leaf first (DER).
    pub chain: Ders,
}

impl ZtunnelCert {
    /// ztunnel could not fetch this certificate (its CA client failed, istio-2026 §2).
    pub fn unavailable(&self) -> bool {
        self.state.starts_with("Unavailable")
    }
}

/// ztunnel identities from its config_dump or `istioctl ztunnel-config certificates -o json`.
pub fn ztunnel_certs(dump: &serde_json::Value) -> Result<Vec<ZtunnelCert>, String> {
    let certs = if dump.is_array() {
        Some(dump)
    } else {
        find_key(dump, &["certificates"])
    };
    let certs = certs
        .and_then(|c| c.as_array())
        .ok_or("no certificates in the ztunnel dump")?;
    let list = |v: &serde_json::Value| -> Vec<Vec<u8>> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["pem"].as_str().and_then(b64))
                    .flat_map(|p| pem_blocks(&p))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(certs
        .iter()
        .map(|c| ZtunnelCert {
            identity: c["identity"].as_str().unwrap_or("?").to_string(),
            state: c["state"].as_str().unwrap_or_default().to_string(),
            roots: list(
                c.get("rootCerts")
                    .or_else(|| c.get("root_certs"))
                    .unwrap_or(&serde_json::Value::Null),
            ),
            chain: list(
                c.get("certChain")
                    .or_else(|| c.get("cert_chain"))
                    .unwrap_or(&serde_json::Value::Null),
            ),
        })
        .collect())
}

/// `true` when the dump is an Envoy admin dump: a `config_dump` whose `configs` carry
/// `envoy.admin` types, or istioctl's secret output (`dynamicActiveSecrets`). Anything else
/// answered on the admin port is not an Envoy rootroll can read (istio-2026 §1, agentgateway).
pub fn is_envoy_dump(dump: &serde_json::Value) -> bool {
    let typed = dump["configs"].as_array().is_some_and(|cs| {
        cs.iter().any(|c| {
            c["@type"]
                .as_str()
                .is_some_and(|t| t.starts_with("type.googleapis.com/envoy.admin."))
        })
    });
    typed || find_key(dump, &["dynamicActiveSecrets", "dynamic_active_secrets"]).is_some()
}

/// `true` when the chain's leaf carries an authority key identifier equal to `skid` (the
/// check Istio's own ambient test uses to tell B-issued leaves).
pub(super) fn issued_by(chain: &Ders, skid: Option<&str>) -> bool {
    let akid = chain
        .first()
        .and_then(|l| pki::inspect_der(l).ok())
        .and_then(|s| s.authority_key_id);
    akid.is_some() && akid.as_deref() == skid
}
