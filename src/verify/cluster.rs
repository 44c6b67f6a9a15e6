//! Collecting a [`Snapshot`] from a live cluster with the `kube` client: paginated lists, the
//! cacerts Secret, and every proxy's admin dump through a port-forward to port 15000 (as
//! `istioctl proxy-config` does), with bounded concurrency.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::live::{Fetched, ProxyDump, Snapshot, proxy_kind};

/// Envoy and ztunnel admin port (facts §7).
pub const ADMIN_PORT: u16 = 15000;
const PAGE: u32 = 500;
const PROXY_TIMEOUT: Duration = Duration::from_secs(15);

fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => other.to_string(),
    }
}

/// `true` when the error means the API server could not be reached at all.
pub fn is_unreachable(e: &str) -> bool {
    !e.starts_with(|c: char| c.is_ascii_digit())
}

/// Lists every object, following `continue` tokens.
async fn list_all<K>(api: &Api<K>, lp: ListParams) -> Fetched<Vec<K>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut lp = lp.limit(PAGE);
    loop {
        let page = api.list(&lp).await.map_err(|e| describe(&e))?;
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        out.extend(page.items);
        match next {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// Minimal HTTP/1.1 GET over an established stream; handles Content-Length and chunked bodies.
async fn http_get<S>(mut stream: S, path: &str) -> Result<Vec<u8>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    stream
        .read_to_end(&mut buf)
        .await
        .map_err(|e| e.to_string())?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no HTTP response")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let body = &buf[split + 4..];
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200") {
        return Err(format!("admin answered `{status}`"));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut rest = body;
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or("bad chunked body")?;
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
                .map_err(|_| "bad chunk size")?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                return Ok(out);
            }
            if rest.len() < size {
                return Err("truncated chunked body".into());
            }
            out.extend_from_slice(&rest[..size]);
            rest = rest.get(size + 2..).unwrap_or_default();
        }
    }
    Ok(body.to_vec())
}

async fn admin_dump(
    pods: Api<Pod>,
    name: String,
    path: &'static str,
) -> Fetched<serde_json::Value> {
    let work = async {
        let mut pf = pods
            .portforward(&name, &[ADMIN_PORT])
            .await
            .map_err(|e| describe(&e))?;
        let stream = pf
            .take_stream(ADMIN_PORT)
            .ok_or("port-forward gave no stream")?;
        let body = http_get(stream, path).await?;
        drop(pf);
        serde_json::from_slice(&body).map_err(|e| format!("admin config_dump is not JSON: {e}"))
    };
    tokio::time::timeout(PROXY_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", PROXY_TIMEOUT.as_secs())))
}

/// Reports progress (done, total) while proxies are read.
pub type Progress = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// Collects everything the live gates need.
pub async fn snapshot(
    client: Client,
    istio_ns: &str,
    secret_name: &str,
    read_secret: bool,
    concurrency: usize,
    progress: Progress,
) -> Snapshot {
    let deployments = list_all(
        &Api::<Deployment>::namespaced(client.clone(), istio_ns),
        ListParams::default(),
    )
    .await;
    let istio_configmaps = list_all(
        &Api::<ConfigMap>::namespaced(client.clone(), istio_ns),
        ListParams::default(),
    )
    .await;
    let pods = list_all(&Api::<Pod>::all(client.clone()), ListParams::default()).await;
    let secret = if read_secret {
        Some(
            Api::<Secret>::namespaced(client.clone(), istio_ns)
                .get_opt(secret_name)
                .await
                .map_err(|e| describe(&e)),
        )
    } else {
        None
    };
    let root_configmaps = list_all(
        &Api::<ConfigMap>::all(client.clone()),
        ListParams::default().fields("metadata.name=istio-ca-root-cert"),
    )
    .await;
    let mutating_webhooks = list_all(
        &Api::<MutatingWebhookConfiguration>::all(client.clone()),
        ListParams::default(),
    )
    .await;
    let validating_webhooks = list_all(
        &Api::<ValidatingWebhookConfiguration>::all(client.clone()),
        ListParams::default(),
    )
    .await;

    let mut targets = Vec::new();
    if let Ok(pods) = &pods {
        for p in pods {
            let Some(kind) = proxy_kind(p) else { continue };
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            targets.push((
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
                kind,
                running,
            ));
        }
    }
    let total = targets.len();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, (ns, name, kind, running)) in targets.into_iter().enumerate() {
        let client = client.clone();
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let dump = if !running {
                Err("pod is not running".to_string())
            } else {
                let path = if kind == "ztunnel" {
                    "/config_dump"
                } else {
                    "/config_dump?mask=dynamic_active_secrets"
                };
                admin_dump(Api::<Pod>::namespaced(client, &ns), name.clone(), path).await
            };
            (
                i,
                ProxyDump {
                    namespace: ns,
                    pod: name,
                    kind: kind.to_string(),
                    dump,
                },
            )
        });
    }
    let mut proxies: Vec<(usize, ProxyDump)> = Vec::with_capacity(total);
    while let Some(res) = set.join_next().await {
        if let Ok(item) = res {
            proxies.push(item);
        }
        progress(proxies.len(), total);
    }
    proxies.sort_by_key(|(i, _)| *i);
    Snapshot {
        istio_namespace: istio_ns.to_string(),
        deployments,
        istio_configmaps,
        pods,
        secret,
        root_configmaps,
        mutating_webhooks,
        validating_webhooks,
        proxies: proxies.into_iter().map(|(_, p)| p).collect(),
        unread_hints: std::collections::BTreeMap::new(),
    }
}
