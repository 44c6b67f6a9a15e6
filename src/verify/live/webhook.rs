//! `webhook-ca-bundle`: every admission webhook that calls istiod (mutating and validating)
//! trusts the phase's roots. A webhook is istiod's when its `clientConfig.service` is istiod's
//! Service (`istiod`, `istiod-<rev>`) in the Istio namespace — by service, not by a name
//! containing "istio" (istio-2026 §1, #60774) — or, for a remote cluster's URL webhook, when
//! its configuration is named `istio…`.

use k8s_openapi::api::admissionregistration::v1::WebhookClientConfig;

use super::super::common::{pem_certificates, sha_set, some_names};
use super::{Blocked, Expectation, Snapshot};
use crate::gates::Code;
use crate::verify::Finding;

/// `configuration/webhook` and its client config, for every webhook of either kind.
fn client_configs(s: &Snapshot) -> Result<Vec<(String, &WebhookClientConfig)>, String> {
    let name = |n: &Option<String>, h: &str| format!("{}/{h}", n.as_deref().unwrap_or_default());
    let mutating = s.mutating_webhooks.as_ref()?.iter().flat_map(|w| {
        let hooks = w.webhooks.iter().flatten();
        hooks.map(|h| (name(&w.metadata.name, &h.name), &h.client_config))
    });
    let validating = s.validating_webhooks.as_ref()?.iter().flat_map(|w| {
        let hooks = w.webhooks.iter().flatten();
        hooks.map(|h| (name(&w.metadata.name, &h.name), &h.client_config))
    });
    Ok(mutating.chain(validating).collect())
}

fn calls_istiod(name: &str, cc: &WebhookClientConfig, istio_namespace: &str) -> bool {
    match &cc.service {
        Some(svc) => {
            svc.namespace == istio_namespace
                && (svc.name == "istiod" || svc.name.starts_with("istiod-"))
        }
        None => cc.url.is_some() && name.starts_with("istio"),
    }
}

pub(super) fn ca_bundles(s: &Snapshot, e: &Expectation, blocked: &Blocked) -> Finding {
    let c = e.cluster.as_str();
    let configs = match client_configs(s) {
        Ok(v) => v,
        Err(why) => {
            return Finding::new(
                Code::WebhookCaBundle,
                false,
                c,
                format!("webhook configurations could not be read: {why}"),
            )
            .hint(
                "grant list on mutatingwebhookconfigurations and validatingwebhookconfigurations",
            );
        }
    };
    if let Some(why) = &blocked.secret {
        return Finding::not_checked(Code::WebhookCaBundle, c, why);
    }
    let istiod: Vec<&(String, &WebhookClientConfig)> = configs
        .iter()
        .filter(|(n, cc)| calls_istiod(n, cc, &s.istio_namespace))
        .collect();
    if istiod.is_empty() {
        return Finding::not_checked(
            Code::WebhookCaBundle,
            c,
            format!(
                "because no webhook calls istiod's Service in {}",
                s.istio_namespace
            ),
        );
    }
    let lacking: Vec<String> = istiod
        .iter()
        .filter(|(_, cc)| {
            let roots = cc
                .ca_bundle
                .as_ref()
                .map(|b| sha_set(&pem_certificates(&b.0)));
            !roots.is_some_and(|r| e.roots.is_subset(&r))
        })
        .map(|(n, _)| n.clone())
        .collect();
    let n = istiod.len();
    let message = if lacking.is_empty() {
        format!("all {n} istiod webhook caBundles contain the phase's roots")
    } else {
        format!(
            "{} of {n} istiod webhook caBundles lack a root of the phase: {}",
            lacking.len(),
            some_names(&lacking)
        )
    };
    Finding::new(Code::WebhookCaBundle, lacking.is_empty(), c, message).details(lacking)
}
