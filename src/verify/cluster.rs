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

    let proxies = match &pods {
        Ok(pods) => read_proxies(&client, pods, concurrency, &progress).await,
        Err(_) => Vec::new(),
    };
    Snapshot {
        istio_namespace: istio_ns.to_string(),
        deployments,
        istio_configmaps,
        pods,
        secret,
        root_configmaps,
        mutating_webhooks,
        validating_webhooks,
        proxies,
        unread_hints: std::collections::BTreeMap::new(),
    }
}

/// Every proxy pod's admin dump, `concurrency` at a time, in pod order. A pod that is not
/// running, or whose read failed or panicked, gets its reason instead of a dump: none is
/// ever left out.
async fn read_proxies(
    client: &Client,
    pods: &[Pod],
    concurrency: usize,
    progress: &Progress,
) -> Vec<ProxyDump> {
    let targets: Vec<(String, String, &'static str, bool)> = pods
        .iter()
        .filter_map(|p| {
            let kind = proxy_kind(p)?;
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            Some((
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
                kind,
                running,
            ))
        })
        .collect();
    let total = targets.len();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, (ns, name, kind, running)) in targets.iter().cloned().enumerate() {
        let client = client.clone();
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let dump = if !running {
                Err("pod is not running".to_string())
            } else if kind == "agentgateway" {
                Err("agentgateway has no Envoy config_dump".to_string())
            } else {
                let path = if kind == "ztunnel" {
                    "/config_dump"
                } else {
                    "/config_dump?mask=dynamic_active_secrets"
                };
                admin_dump(Api::<Pod>::namespaced(client, &ns), name, path).await
            };
            (i, dump)
        });
    }
    let mut dumps: Vec<Option<Fetched<serde_json::Value>>> = vec![None; total];
    let mut done = 0;
    while let Some(res) = set.join_next().await {
        if let Ok((i, dump)) = res {
            dumps[i] = Some(dump);
        }
        done += 1;
        progress(done, total);
    }
    targets
        .into_iter()
        .zip(dumps)
        .map(|((namespace, pod, kind, _), dump)| ProxyDump {
            namespace,
            pod,
            kind: kind.to_string(),
            dump: dump.unwrap_or_else(|| Err("reading its admin endpoint failed".to_string())),
        })
        .collect()
}

/// Builds a Kubernetes client from a kubeconfig context (default: the current one; in a pod,
/// the service account).
pub async fn client(
    context: Option<&str>,
    kubeconfig: Option<&std::path::Path>,
) -> Result<Client, ClientError> {
    let opts = kube::config::KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                ClientError::Kubeconfig {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
            kube::Config::from_custom_kubeconfig(kc, &opts).await?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&opts).await?,
        None => kube::Config::infer()
            .await
            .map_err(|e| ClientError::Infer(Box::new(e)))?,
    };
    Client::try_from(config).map_err(ClientError::Build)
}

/// Why no Kubernetes client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig file does not read.
    #[error("cannot read kubeconfig {}", path.display())]
    Kubeconfig {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The kubeconfig does not give a usable configuration.
    #[error(transparent)]
    Config(#[from] kube::config::KubeconfigError),
    /// Neither a kubeconfig nor an in-cluster configuration was found.
    #[error(transparent)]
    Infer(Box<kube::config::InferConfigError>),
    /// The client cannot be built from the configuration.
    #[error(transparent)]
    Build(kube::Error),
}

/// Reads a Secret's data, `None` when it does not exist.
pub async fn secret_data(
    client: Client,
    namespace: &str,
    name: &str,
) -> Result<Option<std::collections::BTreeMap<String, Vec<u8>>>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    Ok(api.get_opt(name).await?.map(|s| {
        s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()
    }))
}

/// How a live verification runs.
pub struct Watch<'a> {
    /// Read the cacerts Secret (else only public data is compared).
    pub read_secret: bool,
    /// Proxies read at once.
    pub concurrency: usize,
    /// Keep checking until the gates pass or this deadline passes.
    pub deadline: Option<std::time::Instant>,
    /// Fail on warnings too.
    pub strict: bool,
    /// The clock the gates judge at.
    pub now: &'a (dyn Fn() -> time::OffsetDateTime + Sync),
}

/// What stops a live verification (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The API server did not answer.
    #[error("cannot reach the cluster: {0}")]
    Unreachable(String),
}

/// Collects a snapshot and judges it; with a deadline, again every 10 s while a gate fails.
/// `on_retry` is told the failing gate codes before each wait.
pub async fn watch(
    client: Client,
    repo: &crate::repo::Repo,
    expectation: &super::live::Expectation,
    w: &Watch<'_>,
    progress: Progress,
    on_retry: &(dyn Fn(&[crate::gates::Code]) + Sync),
) -> Result<super::Report, WatchError> {
    let mesh = &repo.rollout.mesh;
    loop {
        let snap = snapshot(
            client.clone(),
            &mesh.istio_namespace,
            &mesh.secret_name,
            w.read_secret,
            w.concurrency,
            progress.clone(),
        )
        .await;
        if let Err(e) = &snap.pods
            && is_unreachable(e)
        {
            return Err(WatchError::Unreachable(e.clone()));
        }
        let report = super::live::gates(&snap, expectation, (w.now)());
        let retry =
            report.failed(w.strict) && w.deadline.is_some_and(|d| std::time::Instant::now() < d);
        if !retry {
            return Ok(report);
        }
        let failing: Vec<crate::gates::Code> = report
            .findings
            .iter()
            .filter(|f| f.is_failure())
            .map(|f| f.code)
            .collect();
        on_retry(&failing);
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    }
}
