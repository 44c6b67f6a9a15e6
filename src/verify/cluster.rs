//! Collecting a [`Snapshot`] from a live cluster with the `kube` client: paginated lists, the
//! cacerts Secret, and every proxy's admin dump through a port-forward to port 15000 (as
//! `istioctl proxy-config` does), with bounded concurrency. The admin GET is hyper's HTTP/1.1
//! client over the port-forward stream, bounded in size ([`MAX_ADMIN_BODY`]) and time.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use super::live::{
    Fetched, ProxyDump, Publication, Snapshot, TRUST_BUNDLE_NAME, TRUST_BUNDLE_VERSIONS,
    TrustBundle, proxy_kind, publication,
};

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

/// A read kept for the gates: its value, or the error as they report it.
fn fetched<T>(r: Result<T, kube::Error>) -> Fetched<T> {
    r.map_err(|e| describe(&e))
}

/// `true` when the error means the API server could not be reached at all: it never
/// answered with a status (a connection, TLS or auth error rather than an API error).
fn is_unreachable(e: &kube::Error) -> bool {
    !matches!(e, kube::Error::Api(_))
}

/// Lists every object, following `continue` tokens.
async fn list_all<K>(api: &Api<K>, lp: ListParams) -> Result<Vec<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut lp = lp.limit(PAGE);
    loop {
        let page = api.list(&lp).await?;
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        out.extend(page.items);
        match next {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// Largest admin answer read: a ztunnel `config_dump` lists every workload of the mesh, a
/// few kB each; anything larger is refused rather than held in memory.
pub const MAX_ADMIN_BODY: usize = 128 << 20;

/// One `GET path` over an established stream (the port-forward to the admin port) with
/// hyper's HTTP/1.1 client: the body must be `200 OK` and at most `limit` bytes.
async fn admin_get<S>(stream: S, path: &str, limit: usize) -> Result<Vec<u8>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("admin HTTP handshake failed: {e}"))?;
    // The connection task ends when the response is read and `sender` is dropped, or when the
    // stream closes (the caller's timeout drops the port-forward).
    let conn = tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, "localhost")
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .map_err(|e| format!("admin request for {path}: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("admin GET {path} failed: {e}"))?;
    let status = response.status();
    if status != hyper::StatusCode::OK {
        conn.abort();
        return Err(format!("admin answered {status} to GET {path}"));
    }
    let body = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                format!("admin answer to GET {path} is over {limit} bytes")
            } else {
                format!("admin answer to GET {path} broke off: {e}")
            }
        })?
        .to_bytes();
    drop(sender);
    conn.abort();
    Ok(body.to_vec())
}

async fn admin_dump(
    pods: Api<Pod>,
    name: String,
    path: &'static str,
    timeout: Duration,
) -> Fetched<serde_json::Value> {
    let work = async {
        let mut pf = pods
            .portforward(&name, &[ADMIN_PORT])
            .await
            .map_err(|e| describe(&e))?;
        let stream = pf
            .take_stream(ADMIN_PORT)
            .ok_or("port-forward gave no stream")?;
        let body = admin_get(stream, path, MAX_ADMIN_BODY).await?;
        drop(pf);
        serde_json::from_slice(&body).map_err(|e| format!("admin config_dump is not JSON: {e}"))
    };
    bounded(timeout, work).await
}

/// `work`'s answer, or a failure naming the timeout when it takes longer.
async fn bounded<T>(
    timeout: Duration,
    work: impl std::future::Future<Output = Fetched<T>>,
) -> Fetched<T> {
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

/// Reports progress (done, total) while proxies are read.
pub type Progress = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// Collects everything the live gates need. A list that fails is kept as its reason (the
/// gates that need it fail closed); when the pods cannot be listed because the API server was
/// never reached, nothing can be judged and the collection stops.
pub async fn snapshot(
    client: Client,
    istio_ns: &str,
    secret_name: &str,
    read_secret: bool,
    concurrency: usize,
    progress: Progress,
) -> Result<Snapshot, WatchError> {
    let deployments = fetched(
        list_all(
            &Api::<Deployment>::namespaced(client.clone(), istio_ns),
            ListParams::default(),
        )
        .await,
    );
    let istio_configmaps = fetched(
        list_all(
            &Api::<ConfigMap>::namespaced(client.clone(), istio_ns),
            ListParams::default(),
        )
        .await,
    );
    let pods = match list_all(&Api::<Pod>::all(client.clone()), ListParams::default()).await {
        Err(e) if is_unreachable(&e) => return Err(WatchError::Unreachable(e)),
        other => fetched(other),
    };
    let secret = if read_secret {
        Some(fetched(
            Api::<Secret>::namespaced(client.clone(), istio_ns)
                .get_opt(secret_name)
                .await,
        ))
    } else {
        None
    };
    // What to read for root-configmap depends on the istiod Deployments' env (istio-2026 §1).
    let (root_configmaps, trust_bundle) =
        match publication(&deployments, &istio_configmaps, istio_ns) {
            Ok(p) => (
                root_configmaps(&client, &p).await,
                if p.trust_bundle.is_empty() {
                    None
                } else {
                    Some(cluster_trust_bundle(&client).await)
                },
            ),
            Err(why) => (Err(why), None),
        };
    let mutating_webhooks = fetched(
        list_all(
            &Api::<MutatingWebhookConfiguration>::all(client.clone()),
            ListParams::default(),
        )
        .await,
    );
    let validating_webhooks = fetched(
        list_all(
            &Api::<ValidatingWebhookConfiguration>::all(client.clone()),
            ListParams::default(),
        )
        .await,
    );

    let proxies = match &pods {
        Ok(pods) => read_proxies(&client, pods, concurrency, &progress).await,
        Err(_) => Vec::new(),
    };
    Ok(Snapshot {
        istio_namespace: istio_ns.to_string(),
        deployments,
        istio_configmaps,
        pods,
        secret,
        root_configmaps,
        trust_bundle,
        mutating_webhooks,
        validating_webhooks,
        proxies,
        unread_hints: std::collections::BTreeMap::new(),
    })
}

/// The root ConfigMaps of every name the istiod Deployments configure, in every namespace.
async fn root_configmaps(client: &Client, p: &Publication) -> Fetched<Vec<ConfigMap>> {
    let mut out = Vec::new();
    for name in p.configmaps.keys() {
        // `publication` only lets Kubernetes names through, so the selector cannot be bent.
        let lp = ListParams::default().fields(&format!("metadata.name={name}"));
        out.extend(fetched(
            list_all(&Api::<ConfigMap>::all(client.clone()), lp).await,
        )?);
    }
    Ok(out)
}

/// The ClusterTrustBundle `istio.io:istiod-ca:root-cert` from the first API version the server
/// serves ClusterTrustBundles in (API discovery: v1beta1, else v1alpha1; istio-2026 §1).
async fn cluster_trust_bundle(client: &Client) -> Fetched<Option<TrustBundle>> {
    for api_version in TRUST_BUNDLE_VERSIONS {
        let served = match client.list_api_group_resources(api_version).await {
            Ok(list) => list
                .resources
                .iter()
                .any(|r| r.name == "clustertrustbundles"),
            Err(kube::Error::Api(s)) if s.code == 404 => false,
            Err(e) => return Err(format!("discovery of {api_version}: {}", describe(&e))),
        };
        if !served {
            continue;
        }
        let (group, version) = api_version.split_once('/').unwrap_or_default();
        let resource = ApiResource {
            group: group.to_string(),
            version: version.to_string(),
            api_version: api_version.to_string(),
            kind: "ClusterTrustBundle".to_string(),
            plural: "clustertrustbundles".to_string(),
        };
        let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
        let Some(obj) = fetched(api.get_opt(TRUST_BUNDLE_NAME).await)? else {
            return Ok(None);
        };
        let mut v = serde_json::to_value(&obj).map_err(|e| e.to_string())?;
        // A served object carries its type; fill it in only where the answer left it out.
        if let Some(m) = v.as_object_mut() {
            m.entry("apiVersion").or_insert_with(|| api_version.into());
            m.entry("kind")
                .or_insert_with(|| "ClusterTrustBundle".into());
        }
        return TrustBundle::from_json(&v).map(Some);
    }
    Err(format!(
        "the API server serves clustertrustbundles in neither {}",
        TRUST_BUNDLE_VERSIONS.join(" nor ")
    ))
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
                admin_dump(
                    Api::<Pod>::namespaced(client, &ns),
                    name,
                    path,
                    PROXY_TIMEOUT,
                )
                .await
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
    /// The API server did not answer (no API status: a connection, TLS or auth error).
    #[error("cannot reach the cluster")]
    Unreachable(#[source] kube::Error),
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
        .await?;
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

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An admin endpoint on the far side of an in-memory stream: reads the request head,
    /// answers `response` (raw bytes, as a real server would put them on the wire), then
    /// waits for the client to hang up. Returns the client's end and the request it sent.
    fn admin(
        response: &'static [u8],
    ) -> (tokio::io::DuplexStream, tokio::task::JoinHandle<String>) {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(async move {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && server.read(&mut byte).await.unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = server.write_all(response).await;
            let mut rest = Vec::new();
            let _ = server.read_to_end(&mut rest).await;
            String::from_utf8_lossy(&head).into_owned()
        });
        (client, task)
    }

    #[tokio::test]
    async fn a_chunked_answer_is_read_whole_and_the_request_is_a_plain_get() {
        let (stream, server) = admin(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n",
        );
        let body = admin_get(stream, "/config_dump?mask=dynamic_active_secrets", 1024).await;
        assert_eq!(body.as_deref(), Ok(&b"hello world"[..]));
        let request = server.await.unwrap();
        assert!(
            request.starts_with("GET /config_dump?mask=dynamic_active_secrets HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.to_ascii_lowercase().contains("host: localhost\r\n"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn a_non_200_answer_names_its_status() {
        let (stream, _server) =
            admin(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy");
        let err = admin_get(stream, "/config_dump", 1024).await.unwrap_err();
        assert_eq!(
            err,
            "admin answered 503 Service Unavailable to GET /config_dump"
        );
    }

    #[tokio::test]
    async fn an_answer_over_the_limit_is_refused() {
        let (stream, _server) = admin(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world");
        let err = admin_get(stream, "/config_dump", 10).await.unwrap_err();
        assert_eq!(err, "admin answer to GET /config_dump is over 10 bytes");
        // Without a length up front (chunked), the limit holds as the body streams in.
        let (stream, _server) = admin(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
        );
        let err = admin_get(stream, "/config_dump", 10).await.unwrap_err();
        assert_eq!(err, "admin answer to GET /config_dump is over 10 bytes");
    }

    #[tokio::test]
    async fn a_truncated_or_garbled_answer_is_a_failure() {
        // The admin hangs up 95 bytes short of its Content-Length.
        let (client, mut server) = tokio::io::duplex(1024);
        let hang_up = tokio::spawn(async move {
            let mut buf = [0u8; 256];
            let _ = server.read(&mut buf).await;
            let _ = server
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
                .await;
        });
        let err = admin_get(client, "/config_dump", 1024).await.unwrap_err();
        hang_up.await.unwrap();
        assert!(
            err.starts_with("admin answer to GET /config_dump broke off"),
            "{err}"
        );
        // Something that is not HTTP at all.
        let (stream, _server) = admin(b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
        let err = admin_get(stream, "/config_dump", 1024).await.unwrap_err();
        assert!(err.starts_with("admin GET /config_dump failed"), "{err}");
    }

    #[tokio::test]
    async fn a_slow_admin_times_out() {
        // Headers arrive, the body never does.
        let (stream, _server) = admin(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel");
        let started = std::time::Instant::now();
        let got = bounded(
            Duration::from_millis(200),
            admin_get(stream, "/config_dump", 1024),
        )
        .await;
        assert_eq!(got, Err("no answer within 200ms".to_string()));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
