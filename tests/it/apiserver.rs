//! An in-test Kubernetes API server.
//!
//! A real HTTPS server on loopback (rustls with the aws-lc-rs provider, a fresh test CA and a
//! serving certificate for 127.0.0.1/localhost, bearer-token auth) that answers the real API
//! paths with real-format JSON: GET of single objects, LIST with label/field selectors and
//! `limit`/`continue` pagination, `/version`, fault injection, and the websocket port-forward
//! protocol (`v4.channel.k8s.io`) as the kubelet speaks it, each forwarded port connected to a
//! real TCP address.
//!
//! Port-forward framing follows the kubelet's `pkg/kubelet/cri/streaming/portforward/websocket.go`
//! and `k8s.io/apimachinery/pkg/util/httpstream/wsstream/conn.go`, and is what
//! `kube-client/src/api/portforward.rs` expects: every binary message starts with a channel
//! byte; port `i` has data channel `2i` and error channel `2i+1`; right after the upgrade the
//! server writes the port (`u16` little-endian) once on each of the two channels; then data.
//! Frames from the client on an error channel or an unknown channel are ignored, as wsstream
//! does. A port whose target cannot be reached gets one error message on its error channel.
//! When every port's target has closed, the server closes the websocket.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message, protocol::Role};

/// Subprotocols accepted for port-forward, besides none at all (which wsstream also accepts,
/// with binary framing).
const PORTFORWARD_PROTOCOLS: &[&str] = &["v4.channel.k8s.io", "portforward.k8s.io"];

/// (apiVersion, kind, plural, namespaced) of the resources served even when empty.
const KINDS: &[(&str, &str, &str, bool)] = &[
    ("v1", "Pod", "pods", true),
    ("v1", "Namespace", "namespaces", false),
    ("v1", "ConfigMap", "configmaps", true),
    ("v1", "Secret", "secrets", true),
    ("v1", "Service", "services", true),
    ("v1", "ServiceAccount", "serviceaccounts", true),
    ("v1", "Endpoints", "endpoints", true),
    ("v1", "Node", "nodes", false),
    ("apps/v1", "Deployment", "deployments", true),
    ("apps/v1", "DaemonSet", "daemonsets", true),
    ("apps/v1", "StatefulSet", "statefulsets", true),
    ("apps/v1", "ReplicaSet", "replicasets", true),
    (
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
    ),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
    ),
    (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
];

#[derive(Clone, Debug, PartialEq, Eq)]
struct KindInfo {
    api_version: String,
    kind: String,
    plural: String,
    namespaced: bool,
}

/// (apiVersion, plural, namespace or "", name)
type ObjKey = (String, String, String, String);

#[derive(Default)]
struct State {
    objects: BTreeMap<ObjKey, Value>,
    /// Kinds seen in `put` that are not in `KINDS` (custom resources).
    extra_kinds: Vec<KindInfo>,
    resource_version: u64,
    fails: Vec<(String, u16)>,
    hits: HashMap<String, usize>,
    forwards: HashMap<(String, String, u16), SocketAddr>,
}

impl State {
    fn kinds(&self) -> impl Iterator<Item = KindInfo> + '_ {
        KINDS
            .iter()
            .map(|&(api_version, kind, plural, namespaced)| KindInfo {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
                plural: plural.to_owned(),
                namespaced,
            })
            .chain(self.extra_kinds.iter().cloned())
    }

    fn kind_by_plural(&self, api_version: &str, plural: &str) -> Option<KindInfo> {
        self.kinds()
            .find(|k| k.api_version == api_version && k.plural == plural)
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An in-test Kubernetes API server; see the module docs.
pub(crate) struct FakeApi {
    addr: SocketAddr,
    ca_pem: String,
    token: String,
    state: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeApi {
    /// Starts on 127.0.0.1:0 with a fresh test CA and serving cert for 127.0.0.1/localhost, and
    /// bearer-token auth (requests without `Authorization: Bearer <token>` get a 401 Status).
    /// Owns its own tokio runtime thread, so it works from sync tests (and from async ones).
    pub(crate) fn start() -> FakeApi {
        let (ca_pem, server_config) = tls_config();
        let token = format!("rootroll-test-{:016x}{:016x}", random_u64(), random_u64());
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake API server");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("listener address");
        let state: Shared = Arc::default();
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let ctx = Arc::new(ServerCtx {
            state: state.clone(),
            token: token.clone(),
            addr,
        });
        let thread = std::thread::Builder::new()
            .name(format!("fake-apiserver-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("fake-apiserver-worker")
                    .enable_all()
                    .build()
                    .expect("tokio runtime for the fake API server");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("tokio listener for the fake API server");
                    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
                    let _ = ready_tx.send(());
                    accept_loop(listener, acceptor, ctx, shutdown_rx).await;
                });
                // Open connections (port-forward sessions included) are cancelled here.
                rt.shutdown_timeout(Duration::from_secs(2));
            })
            .expect("spawn the fake API server thread");
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("fake API server started");
        FakeApi {
            addr,
            ca_pem,
            token,
            state,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// Writes a kubeconfig (server `https://127.0.0.1:PORT`, `certificate-authority-data`,
    /// token) whose current context, cluster and user are named after `context`, as
    /// `dir/<context>.kubeconfig`, and returns its path. Files for several servers can be
    /// merged with `KUBECONFIG=a:b`.
    pub(crate) fn kubeconfig(&self, dir: &Path, context: &str) -> PathBuf {
        let q = |s: &str| serde_json::to_string(s).expect("string to JSON");
        let ca_data = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        let user = format!("{context}-admin");
        let text = format!(
            "apiVersion: v1\n\
             kind: Config\n\
             preferences: {{}}\n\
             clusters:\n\
             - name: {cluster}\n\
             \x20 cluster:\n\
             \x20   server: {server}\n\
             \x20   certificate-authority-data: {ca}\n\
             users:\n\
             - name: {user}\n\
             \x20 user:\n\
             \x20   token: {token}\n\
             contexts:\n\
             - name: {cluster}\n\
             \x20 context:\n\
             \x20   cluster: {cluster}\n\
             \x20   user: {user}\n\
             \x20   namespace: default\n\
             current-context: {cluster}\n",
            cluster = q(context),
            server = q(&format!("https://127.0.0.1:{}", self.addr.port())),
            ca = q(&ca_data),
            user = q(&user),
            token = q(&self.token),
        );
        let path = dir.join(format!("{context}.kubeconfig"));
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Adds or replaces an object (full JSON with apiVersion, kind, metadata.name and, for
    /// namespaced kinds, metadata.namespace — "default" if absent). It is served at its real
    /// path and in its lists. `metadata.resourceVersion` is set from the server's counter;
    /// `uid` and `creationTimestamp` are filled in when absent. Kinds outside the built-in table (custom resources) get a plural made by
    /// the usual English rules and are namespaced iff `metadata.namespace` is set.
    pub(crate) fn put(&self, mut obj: Value) {
        let api_version = obj["apiVersion"]
            .as_str()
            .expect("put: object has no apiVersion")
            .to_owned();
        let kind = obj["kind"]
            .as_str()
            .expect("put: object has no kind")
            .to_owned();
        let name = obj["metadata"]["name"]
            .as_str()
            .expect("put: object has no metadata.name")
            .to_owned();
        let mut st = lock(&self.state);
        let known = st
            .kinds()
            .find(|k| k.api_version == api_version && k.kind == kind);
        let info = match known {
            Some(info) => info,
            None => {
                let info = KindInfo {
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                    plural: pluralize(&kind),
                    namespaced: obj["metadata"]["namespace"].is_string(),
                };
                st.extra_kinds.push(info.clone());
                info
            }
        };
        st.resource_version += 1;
        let rv = st.resource_version;
        let meta = obj["metadata"]
            .as_object_mut()
            .expect("put: metadata is an object");
        let namespace = if info.namespaced {
            let ns = meta
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_owned();
            meta.insert("namespace".into(), Value::String(ns.clone()));
            ns
        } else {
            meta.remove("namespace");
            String::new()
        };
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        meta.entry("uid").or_insert_with(|| {
            Value::String(format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                random_u64() as u32,
                random_u64() as u16,
                random_u64() & 0xfff,
                random_u64() & 0xfff,
                random_u64() & 0xffff_ffff_ffff
            ))
        });
        meta.entry("creationTimestamp")
            .or_insert_with(|| Value::String("2026-01-01T00:00:00Z".into()));
        st.objects
            .insert((api_version, info.plural, namespace, name), obj);
    }

    /// Serves `kind` at `api_version` (discovery, GET and LIST) before any object of it is
    /// `put`, as an API server that has the resource does: a GET of a missing object is then
    /// the object's 404 (`details.kind`), not the unknown path's.
    pub(crate) fn serve_kind(&self, api_version: &str, kind: &str, namespaced: bool) {
        let mut st = lock(&self.state);
        if st
            .kinds()
            .any(|k| k.api_version == api_version && k.kind == kind)
        {
            return;
        }
        st.extra_kinds.push(KindInfo {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            plural: pluralize(kind),
            namespaced,
        });
    }

    /// Makes every request whose path starts with `path_prefix` answer `code` (403, 500, …) with
    /// a real-format Status body. Checked after authentication, before routing. `code` 0 removes
    /// the fault for that prefix.
    pub(crate) fn fail(&self, path_prefix: &str, code: u16) {
        let mut st = lock(&self.state);
        st.fails.retain(|(p, _)| p != path_prefix);
        if code != 0 {
            st.fails.push((path_prefix.to_owned(), code));
        }
    }

    /// Registers `target` as the TCP address behind `port` of pod `namespace/pod` for
    /// `GET /api/v1/namespaces/{ns}/pods/{pod}/portforward?ports=N` (websocket). A pod with at
    /// least one forward exists for port-forward even without `put`.
    pub(crate) fn forward(&self, namespace: &str, pod: &str, port: u16, target: SocketAddr) {
        lock(&self.state)
            .forwards
            .insert((namespace.to_owned(), pod.to_owned(), port), target);
    }

    /// Number of requests (any method, any outcome, 401s included) whose path — without the
    /// query — starts with `path_prefix`.
    pub(crate) fn hits(&self, path_prefix: &str) -> usize {
        lock(&self.state)
            .hits
            .iter()
            .filter(|(path, _)| path.starts_with(path_prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn random_u64() -> u64 {
    // RandomState is seeded from the OS once per thread and then stepped for each instance.
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

fn pluralize(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    if lower.ends_with('s')
        || lower.ends_with("ch")
        || lower.ends_with("sh")
        || lower.ends_with('x')
    {
        return format!("{lower}es");
    }
    format!("{lower}s")
}

/// A fresh CA and a serving certificate for 127.0.0.1, ::1 and localhost, signed by it;
/// returns the CA PEM and a rustls server config on the aws-lc-rs provider.
fn tls_config() -> (String, rustls::ServerConfig) {
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rootroll-test-apiserver-ca");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let mut params = rcgen::CertificateParams::new(vec![
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        "localhost".to_owned(),
        "kubernetes.default.svc".to_owned(),
    ])
    .expect("serving cert params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kube-apiserver");
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let key = rcgen::KeyPair::generate().expect("serving key");
    let cert = params.signed_by(&key, &issuer).expect("sign serving cert");

    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone(), ca_cert.der().clone()], key_der)
        .expect("serving cert and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca_cert.pem(), config)
}

struct ServerCtx {
    state: Shared,
    token: String,
    addr: SocketAddr,
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    ctx: Arc<ServerCtx>,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        let (tcp, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(_) => continue,
            },
        };
        let acceptor = acceptor.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(&ctx, req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades()
                .await;
        });
    }
}

type Resp = Response<Full<Bytes>>;

fn json_response(code: u16, body: &Value) -> Resp {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .header("Cache-Control", "no-cache, private")
        .body(Full::new(Bytes::from(
            serde_json::to_vec(body).expect("serialize JSON"),
        )))
        .expect("build response")
}

/// A `metav1.Status` failure, as the API server writes it.
fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        s["details"] = details;
    }
    s
}

fn status_response(code: u16, reason: &str, message: &str, details: Option<Value>) -> Resp {
    json_response(code, &status(code, reason, message, details))
}

fn handle(ctx: &ServerCtx, mut req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    let query = parse_query(req.uri().query().unwrap_or(""));
    {
        let mut st = lock(&ctx.state);
        *st.hits.entry(path.clone()).or_default() += 1;
    }
    let authorized = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == ctx.token);
    if !authorized {
        return status_response(401, "Unauthorized", "Unauthorized", None);
    }
    let fault = lock(&ctx.state)
        .fails
        .iter()
        .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|&(_, code)| code);
    if let Some(code) = fault {
        return injected_failure(code, req.method(), &path);
    }
    if path == "/version" || path == "/version/" {
        return json_response(
            200,
            &json!({
                "major": "1",
                "minor": "33",
                "gitVersion": "v1.33.0",
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.24.0",
                "compiler": "gc",
                "platform": "linux/amd64"
            }),
        );
    }
    if req.method() == Method::GET
        && let Some(body) = discovery(&lock(&ctx.state), &path, ctx.addr)
    {
        return json_response(200, &body);
    }
    let Some(route) = route(&path) else {
        return not_found_path();
    };
    if let Route::PortForward { namespace, pod } = &route {
        if req.method() != Method::GET && req.method() != Method::POST {
            return method_not_allowed(req.method());
        }
        return portforward(ctx, &mut req, namespace, pod, &query);
    }
    if req.method() != Method::GET {
        return method_not_allowed(req.method());
    }
    if query
        .iter()
        .any(|(k, v)| k == "watch" && v != "false" && v != "0")
    {
        return status_response(
            400,
            "BadRequest",
            "watch is not supported by the rootroll test API server",
            None,
        );
    }
    let st = lock(&ctx.state);
    match route {
        Route::Get {
            api_version,
            plural,
            namespace,
            name,
        } => {
            let Some(kind) = st.kind_by_plural(&api_version, &plural) else {
                return not_found_path();
            };
            if kind.namespaced != namespace.is_some() {
                return not_found_path();
            }
            let key = (api_version, plural, namespace.unwrap_or_default(), name);
            match st.objects.get(&key) {
                Some(obj) => json_response(200, obj),
                None => not_found(&kind, &key.3),
            }
        }
        Route::List {
            api_version,
            plural,
            namespace,
        } => {
            let Some(kind) = st.kind_by_plural(&api_version, &plural) else {
                return not_found_path();
            };
            if namespace.is_some() && !kind.namespaced {
                return not_found_path();
            }
            match list(&st, &kind, namespace.as_deref(), &query) {
                Ok(body) => json_response(200, &body),
                Err(status) => json_response(400, &status),
            }
        }
        Route::PortForward { .. } => unreachable!("handled above"),
    }
}

/// Discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/{group}`, `/apis/{group}/{version}`)
/// for the served kinds; only `get` and `list` are advertised, as only they are served.
fn discovery(st: &State, path: &str, addr: SocketAddr) -> Option<Value> {
    let path = path.trim_end_matches('/');
    let kinds: Vec<KindInfo> = st.kinds().collect();
    let group_versions = |group: &str| -> Vec<Value> {
        let mut seen: Vec<&str> = Vec::new();
        for k in &kinds {
            if let Some((g, v)) = k.api_version.split_once('/')
                && g == group
                && !seen.contains(&v)
            {
                seen.push(v);
            }
        }
        seen.iter()
            .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
            .collect()
    };
    let group_doc = |group: &str| -> Option<Value> {
        let versions = group_versions(group);
        let preferred = versions.first()?.clone();
        Some(json!({"name": group, "versions": versions, "preferredVersion": preferred}))
    };
    let resource_list = |gv: &str| -> Option<Value> {
        let mut resources = Vec::new();
        for k in kinds.iter().filter(|k| k.api_version == gv) {
            resources.push(json!({
                "name": k.plural,
                "singularName": k.kind.to_ascii_lowercase(),
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": ["get", "list"],
            }));
            if gv == "v1" && k.plural == "pods" {
                resources.push(json!({
                    "name": "pods/portforward",
                    "singularName": "",
                    "namespaced": true,
                    "kind": "PodPortForwardOptions",
                    "verbs": ["create", "get"],
                }));
            }
        }
        if resources.is_empty() {
            return None;
        }
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }))
    };
    match path {
        "/api" => Some(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}],
        })),
        "/apis" => {
            let mut groups: Vec<&str> = Vec::new();
            for k in &kinds {
                if let Some((g, _)) = k.api_version.split_once('/')
                    && !groups.contains(&g)
                {
                    groups.push(g);
                }
            }
            let groups: Vec<Value> = groups.into_iter().filter_map(group_doc).collect();
            Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        "/api/v1" => resource_list("v1"),
        _ => {
            let rest = path.strip_prefix("/apis/")?;
            match rest.split_once('/') {
                None => {
                    let mut doc = group_doc(rest)?;
                    doc["kind"] = json!("APIGroup");
                    doc["apiVersion"] = json!("v1");
                    Some(doc)
                }
                Some((_, v)) if !v.contains('/') => resource_list(rest),
                Some(_) => None,
            }
        }
    }
}

fn not_found_path() -> Resp {
    status_response(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

fn not_found(kind: &KindInfo, name: &str) -> Resp {
    let mut details = json!({"name": name, "kind": kind.plural});
    if let Some((group, _)) = kind.api_version.split_once('/') {
        details["group"] = json!(group);
    }
    status_response(
        404,
        "NotFound",
        &format!("{} \"{}\" not found", kind.plural, name),
        Some(details),
    )
}

fn method_not_allowed(method: &Method) -> Resp {
    status_response(
        405,
        "MethodNotAllowed",
        &format!("the server does not allow this method on the requested resource ({method})"),
        Some(json!({})),
    )
}

fn injected_failure(code: u16, method: &Method, path: &str) -> Resp {
    let parsed = route(path);
    // (group, resource, namespace, name, verb)
    let (group, resource, namespace, name, verb) = match &parsed {
        Some(Route::Get {
            api_version,
            plural,
            namespace,
            name,
        }) => (
            api_version.split_once('/').map_or("", |(g, _)| g),
            plural.as_str(),
            namespace.as_deref(),
            Some(name.as_str()),
            "get",
        ),
        Some(Route::List {
            api_version,
            plural,
            namespace,
        }) => (
            api_version.split_once('/').map_or("", |(g, _)| g),
            plural.as_str(),
            namespace.as_deref(),
            None,
            "list",
        ),
        Some(Route::PortForward { namespace, pod }) => (
            "",
            "pods/portforward",
            Some(namespace.as_str()),
            Some(pod.as_str()),
            "create",
        ),
        None => (
            "",
            "",
            None,
            None,
            if method == Method::GET {
                "get"
            } else {
                "create"
            },
        ),
    };
    let mut details = json!({});
    if let Some(name) = name {
        details["name"] = json!(name);
    }
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    if !resource.is_empty() {
        details["kind"] = json!(resource.split('/').next().unwrap_or(resource));
    }
    let (reason, message) = match code {
        400 => ("BadRequest", "injected bad request".to_owned()),
        401 => ("Unauthorized", "Unauthorized".to_owned()),
        403 => {
            let what = match name {
                Some(n) => format!("{resource} \"{n}\""),
                None => resource.to_owned(),
            };
            let scope = match namespace {
                Some(ns) => format!("in the namespace \"{ns}\""),
                None => "at the cluster scope".to_owned(),
            };
            (
                "Forbidden",
                format!(
                    "{what} is forbidden: User \"system:serviceaccount:default:rootroll\" cannot \
                     {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
                ),
            )
        }
        404 => ("NotFound", format!("{resource} \"{}\" not found", name.unwrap_or(""))),
        409 => ("Conflict", "injected conflict".to_owned()),
        410 => (
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. \
             You can start a new list without the continue parameter."
                .to_owned(),
        ),
        422 => ("Invalid", "injected invalid".to_owned()),
        429 => ("TooManyRequests", "the server has received too many requests and has asked us to try again later".to_owned()),
        500 => {
            details["causes"] = json!([{"message": "injected failure"}]);
            (
                "InternalError",
                "Internal error occurred: injected failure".to_owned(),
            )
        }
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request".to_owned(),
        ),
        504 => ("Timeout", "the server was unable to return a response in the time allotted, but may still be processing the request".to_owned()),
        _ => ("", format!("injected failure {code}")),
    };
    status_response(code, reason, &message, Some(details))
}

#[derive(Debug)]
enum Route {
    Get {
        api_version: String,
        plural: String,
        namespace: Option<String>,
        name: String,
    },
    List {
        api_version: String,
        plural: String,
        namespace: Option<String>,
    },
    PortForward {
        namespace: String,
        pod: String,
    },
}

fn route(path: &str) -> Option<Route> {
    let (api_version, rest) = if let Some(rest) = path.strip_prefix("/api/v1/") {
        ("v1".to_owned(), rest)
    } else if path == "/api/v1" {
        return None;
    } else {
        let rest = path.strip_prefix("/apis/")?;
        let mut it = rest.splitn(3, '/');
        let group = it.next()?;
        let version = it.next()?;
        (format!("{group}/{version}"), it.next()?)
    };
    let segs: Vec<String> = rest
        .trim_end_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    if segs.iter().any(String::is_empty) {
        return None;
    }
    let seg = |i: usize| segs[i].clone();
    match segs.len() {
        1 => Some(Route::List {
            api_version,
            plural: seg(0),
            namespace: None,
        }),
        2 => Some(Route::Get {
            api_version,
            plural: seg(0),
            namespace: None,
            name: seg(1),
        }),
        3 if segs[0] == "namespaces" => Some(Route::List {
            api_version,
            plural: seg(2),
            namespace: Some(seg(1)),
        }),
        4 if segs[0] == "namespaces" => Some(Route::Get {
            api_version,
            plural: seg(2),
            namespace: Some(seg(1)),
            name: seg(3),
        }),
        5 if api_version == "v1"
            && segs[0] == "namespaces"
            && segs[2] == "pods"
            && segs[4] == "portforward" =>
        {
            Some(Route::PortForward {
                namespace: seg(1),
                pod: seg(3),
            })
        }
        _ => None,
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn query_get<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------------
// LIST

#[derive(Debug, PartialEq)]
enum LabelReq {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn valid_label_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_label_value(v: &str) -> bool {
    v.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Parses a label selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`,
/// comma-separated (ANDed).
fn parse_label_selector(s: &str) -> Result<Vec<LabelReq>, String> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("unbalanced parentheses")?,
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    let mut reqs = Vec::new();
    for term in terms {
        let term = term.trim();
        if term.is_empty() {
            if s.trim().is_empty() {
                continue;
            }
            return Err("empty requirement".into());
        }
        let set_op = [(" notin ", true), (" in ", false)]
            .into_iter()
            .find_map(|(op, negated)| term.split_once(op).map(|(k, v)| (k, v, negated)));
        let req = if let Some((k, values, negated)) = set_op {
            let k = k.trim();
            let values = values
                .trim()
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| format!("found '{values}', expected: '('"))?;
            let values: Vec<String> = values.split(',').map(|v| v.trim().to_owned()).collect();
            if values.iter().any(|v| !valid_label_value(v)) || !valid_label_key(k) {
                return Err(format!("invalid requirement: {term}"));
            }
            if negated {
                LabelReq::NotIn(k.to_owned(), values)
            } else {
                LabelReq::In(k.to_owned(), values)
            }
        } else if let Some(k) = term.strip_prefix('!') {
            LabelReq::NotExists(k.trim().to_owned())
        } else if let Some((k, v)) = term.split_once("!=") {
            LabelReq::Ne(k.trim().to_owned(), v.trim().to_owned())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            LabelReq::Eq(k.trim().to_owned(), v.trim().to_owned())
        } else {
            LabelReq::Exists(term.to_owned())
        };
        let (key, value) = match &req {
            LabelReq::Eq(k, v) | LabelReq::Ne(k, v) => (k, Some(v)),
            LabelReq::Exists(k)
            | LabelReq::NotExists(k)
            | LabelReq::In(k, _)
            | LabelReq::NotIn(k, _) => (k, None),
        };
        if !valid_label_key(key) || !value.is_none_or(|v| valid_label_value(v)) {
            return Err(format!("invalid requirement: {term}"));
        }
        reqs.push(req);
    }
    Ok(reqs)
}

fn labels_match(reqs: &[LabelReq], obj: &Value) -> bool {
    let labels = &obj["metadata"]["labels"];
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    reqs.iter().all(|r| match r {
        LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
        LabelReq::Ne(k, v) => get(k) != Some(v.as_str()),
        LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
        LabelReq::Exists(k) => get(k).is_some(),
        LabelReq::NotExists(k) => get(k).is_none(),
    })
}

/// Field selectors the real API server supports for a kind (besides metadata.name and
/// metadata.namespace, which every kind has).
fn extra_fields(kind: &KindInfo) -> &'static [&'static str] {
    match (kind.api_version.as_str(), kind.kind.as_str()) {
        ("v1", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("v1", "Secret") => &["type"],
        ("v1", "Namespace") => &["status.phase"],
        ("v1", "Node") => &["spec.unschedulable"],
        _ => &[],
    }
}

/// (field, value, negated)
type FieldReq = (String, String, bool);

fn parse_field_selector(s: &str, kind: &KindInfo) -> Result<Vec<FieldReq>, String> {
    let mut reqs = Vec::new();
    for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, value, negated) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, true)
        } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (f, v, false)
        } else {
            return Err(format!(
                "invalid selector: '{s}'; can't understand '{term}'"
            ));
        };
        let field = field.trim();
        if !(field == "metadata.name"
            || field == "metadata.namespace"
            || extra_fields(kind).contains(&field))
        {
            return Err(format!("field label not supported: {field}"));
        }
        reqs.push((field.to_owned(), value.trim().to_owned(), negated));
    }
    Ok(reqs)
}

fn fields_match(reqs: &[FieldReq], obj: &Value) -> bool {
    reqs.iter().all(|(field, want, negated)| {
        let mut v = obj;
        for part in field.split('.') {
            v = &v[part];
        }
        let have = match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Null => {
                if matches!(field.as_str(), "spec.hostNetwork" | "spec.unschedulable") {
                    "false".to_owned()
                } else {
                    String::new()
                }
            }
            _ => return false,
        };
        (have == *want) != *negated
    })
}

fn bad_request_status(message: &str) -> Value {
    status(400, "BadRequest", message, None)
}

fn bad_request(message: &str) -> Resp {
    status_response(400, "BadRequest", message, None)
}

fn list(
    st: &State,
    kind: &KindInfo,
    namespace: Option<&str>,
    query: &[(String, String)],
) -> Result<Value, Value> {
    let label_sel = query_get(query, "labelSelector").unwrap_or("");
    let field_sel = query_get(query, "fieldSelector").unwrap_or("");
    let resource = format!("/{}, Resource={}", kind.api_version, kind.plural);
    let labels = parse_label_selector(label_sel)
        .map_err(|e| bad_request_status(&format!("unable to parse requirement: {e}")))?;
    let fields = parse_field_selector(field_sel, kind).map_err(|e| {
        bad_request_status(&format!(
            "Unable to find \"{resource}\" that match label selector \"{label_sel}\", field \
             selector \"{field_sel}\": {e}"
        ))
    })?;
    let limit = match query_get(query, "limit") {
        None | Some("") => 0,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| bad_request_status(&format!("invalid limit \"{l}\"")))?,
    };
    let after = match query_get(query, "continue") {
        None | Some("") => None,
        Some(token) => Some(decode_continue(token).ok_or_else(|| {
            bad_request_status("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
        })?),
    };
    let matching: Vec<(&ObjKey, &Value)> = st
        .objects
        .iter()
        .filter(|((av, plural, ns, _), _)| {
            *av == kind.api_version
                && *plural == kind.plural
                && namespace.is_none_or(|want| want == ns)
        })
        .filter(|(key, _)| {
            after
                .as_ref()
                .is_none_or(|(ans, aname)| (&key.2, &key.3) > (ans, aname))
        })
        .filter(|(_, obj)| labels_match(&labels, obj) && fields_match(&fields, obj))
        .collect();
    let total = matching.len();
    let page = if limit > 0 { limit.min(total) } else { total };
    let items: Vec<Value> = matching[..page]
        .iter()
        .map(|(_, obj)| {
            // Items in a real list response carry no kind/apiVersion.
            let mut item = (*obj).clone();
            if let Some(map) = item.as_object_mut() {
                map.remove("kind");
                map.remove("apiVersion");
            }
            item
        })
        .collect();
    let rv = st.resource_version.to_string();
    let mut metadata = json!({ "resourceVersion": rv });
    if page < total {
        let (_, _, ns, name) = matching[page - 1].0;
        metadata["continue"] = json!(encode_continue(st.resource_version, ns, name));
        if label_sel.is_empty() && field_sel.is_empty() {
            metadata["remainingItemCount"] = json!(total - page);
        }
    }
    Ok(json!({
        "kind": format!("{}List", kind.kind),
        "apiVersion": kind.api_version,
        "metadata": metadata,
        "items": items,
    }))
}

/// The API server's continue token: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"key\0"}`.
fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    let key = if namespace.is_empty() {
        format!("{name}\u{0}")
    } else {
        format!("{namespace}/{name}\u{0}")
    };
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": key});
    base64::engine::general_purpose::URL_SAFE.encode(raw.to_string())
}

/// Returns the (namespace, name) the next page starts after.
fn decode_continue(token: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    if v["v"] != "meta.k8s.io/v1" || !v["rv"].is_u64() {
        return None;
    }
    let start = v["start"].as_str()?.strip_suffix('\u{0}')?;
    Some(match start.split_once('/') {
        Some((ns, name)) => (ns.to_owned(), name.to_owned()),
        None => (String::new(), start.to_owned()),
    })
}

// ---------------------------------------------------------------------------------------------
// Port-forward

fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> Vec<&str> {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

fn portforward(
    ctx: &ServerCtx,
    req: &mut Request<Incoming>,
    namespace: &str,
    pod: &str,
    query: &[(String, String)],
) -> Resp {
    let mut ports = Vec::new();
    for (k, v) in query {
        if k != "ports" && k != "port" {
            continue;
        }
        for p in v.split(',') {
            match p.trim().parse::<u16>() {
                Ok(port) if port > 0 => ports.push(port),
                _ => return bad_request(&format!("unable to parse \"{v}\" as a port")),
            }
        }
    }
    let targets: Vec<Option<SocketAddr>> = {
        let st = lock(&ctx.state);
        let exists = st.objects.contains_key(&(
            "v1".to_owned(),
            "pods".to_owned(),
            namespace.to_owned(),
            pod.to_owned(),
        )) || st
            .forwards
            .keys()
            .any(|(ns, p, _)| ns == namespace && p == pod);
        if !exists {
            let pods = KindInfo {
                api_version: "v1".into(),
                kind: "Pod".into(),
                plural: "pods".into(),
                namespaced: true,
            };
            return not_found(&pods, pod);
        }
        ports
            .iter()
            .map(|&port| {
                st.forwards
                    .get(&(namespace.to_owned(), pod.to_owned(), port))
                    .copied()
            })
            .collect()
    };
    if ports.is_empty() {
        return bad_request("query parameter \"port\" is required");
    }
    let is_ws = header_str(req, header::UPGRADE)
        .iter()
        .any(|v| v.eq_ignore_ascii_case("websocket"))
        && header_str(req, header::CONNECTION).iter().any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return bad_request("Upgrade request required");
    };
    if !is_ws {
        return bad_request("Upgrade request required");
    }
    let offered: Vec<String> = header_str(req, header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    // As wsstream's handshake: the first offered protocol that is supported; none offered is
    // the "" protocol (binary).
    let protocol = if offered.is_empty() {
        None
    } else {
        match offered
            .iter()
            .find(|p| PORTFORWARD_PROTOCOLS.contains(&p.as_str()))
        {
            Some(p) => Some(p.clone()),
            None => {
                return bad_request(&format!(
                    "unable to upgrade websocket connection: requested protocol(s) are not \
                     supported: {offered:?}; supports {PORTFORWARD_PROTOCOLS:?}"
                ));
            }
        }
    };
    let on_upgrade = hyper::upgrade::on(req);
    let pod_id = format!("{namespace}/{pod}");
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        forward_session(ws, pod_id, ports, targets).await;
    });
    let mut resp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(
            header::SEC_WEBSOCKET_ACCEPT,
            tungstenite::handshake::derive_accept_key(key.as_bytes()),
        )
        .body(Full::new(Bytes::new()))
        .expect("build 101 response");
    if let Some(p) = protocol {
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(&p).expect("protocol header"),
        );
    }
    resp
}

enum FromTarget {
    Data(u8, Vec<u8>),
    Done,
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut bin = Vec::with_capacity(data.len() + 1);
    bin.push(channel);
    bin.extend_from_slice(data);
    Message::binary(bin)
}

async fn forward_session<S>(
    mut ws: WebSocketStream<S>,
    pod_id: String,
    ports: Vec<u16>,
    targets: Vec<Option<SocketAddr>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // Port numbers first on each port's data and error channel, as the kubelet writes them.
    for (i, port) in ports.iter().enumerate() {
        let data_ch = (2 * i) as u8;
        for ch in [data_ch, data_ch + 1] {
            if ws.send(frame(ch, &port.to_le_bytes())).await.is_err() {
                return;
            }
        }
    }
    let (tx, mut rx) = mpsc::channel::<FromTarget>(64);
    // Client-to-target data goes through one unbounded queue and writer task per port, so a
    // slow target never stalls the websocket loop.
    let mut writers: Vec<Option<mpsc::UnboundedSender<Bytes>>> = Vec::new();
    let mut open = 0usize;
    for (i, (port, target)) in ports.iter().zip(&targets).enumerate() {
        let data_ch = (2 * i) as u8;
        let conn = match target {
            Some(addr) => {
                tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
                    .await
                    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connect: connection refused (no forward registered for this port)",
            )),
        };
        match conn {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let (mut read, mut write) = stream.into_split();
                let (wtx, mut wrx) = mpsc::unbounded_channel::<Bytes>();
                tokio::spawn(async move {
                    while let Some(data) = wrx.recv().await {
                        if write.write_all(&data).await.is_err() {
                            return;
                        }
                    }
                    let _ = write.shutdown().await;
                });
                writers.push(Some(wtx));
                open += 1;
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if tx
                                    .send(FromTarget::Data(data_ch, buf[..n].to_vec()))
                                    .await
                                    .is_err()
                                {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = tx.send(FromTarget::Done).await;
                });
            }
            Err(e) => {
                writers.push(None);
                let msg = format!(
                    "error forwarding port {port} to pod {pod_id}, uid : failed to connect to \
                     localhost:{port} inside the pod: {e}"
                );
                if ws.send(frame(data_ch + 1, msg.as_bytes())).await.is_err() {
                    return;
                }
            }
        }
    }
    drop(tx);
    while open > 0 {
        tokio::select! {
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Binary(bytes))) => {
                    // Odd (error) channels are write-only; unknown channels are ignored.
                    let Some(&ch) = bytes.first() else { continue };
                    if ch % 2 != 0 || bytes.len() == 1 {
                        continue;
                    }
                    if let Some(Some(w)) = writers.get(usize::from(ch / 2)) {
                        let _ = w.send(bytes.slice(1..));
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(FromTarget::Data(ch, data)) => {
                    if ws.send(frame(ch, &data)).await.is_err() {
                        return;
                    }
                }
                Some(FromTarget::Done) => open -= 1,
                None => open = 0,
            },
        }
    }
    drop(writers);
    // Every target closed (or none could be reached): close the websocket, as wsstream's
    // Conn.Close does when the kubelet's handler returns, and give the client a moment to
    // answer the close.
    let _ = ws.send(Message::Close(None)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Tests: the real kube client against the server.

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
    use kube::api::{Api, ListParams};
    use kube::config::{KubeConfigOptions, Kubeconfig};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("test runtime")
    }

    async fn client(kubeconfig: &Path, context: &str) -> kube::Client {
        let kc = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
        let opts = KubeConfigOptions {
            context: Some(context.to_owned()),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .expect("config from kubeconfig");
        kube::Client::try_from(config).expect("kube client")
    }

    fn pod(ns: &str, name: &str, labels: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [{"name": "istio-proxy", "image": "proxyv2"}]},
            "status": {"phase": "Running"}
        })
    }

    fn api_code<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String) {
        match r {
            Err(kube::Error::Api(s)) => (s.code, s.reason),
            other => panic!("expected kube::Error::Api, got {other:?}"),
        }
    }

    #[test]
    fn fake_api_lists_pods_across_namespaces_with_pagination() {
        let api = FakeApi::start();
        let dir = tempfile::tempdir().unwrap();
        let kc = api.kubeconfig(dir.path(), "primary");
        let mut want = Vec::new();
        for (ns, name) in [
            ("istio-system", "istiod-1"),
            ("istio-system", "istiod-2"),
            ("bookinfo", "productpage-1"),
            ("bookinfo", "reviews-1"),
            ("default", "sleep-1"),
        ] {
            api.put(pod(ns, name, json!({"app": name})));
            want.push(format!("{ns}/{name}"));
        }
        want.sort();
        rt().block_on(async {
            let client = client(&kc, "primary").await;
            assert_eq!(
                client.apiserver_version().await.unwrap().git_version,
                "v1.33.0"
            );
            let pods: Api<Pod> = Api::all(client.clone());
            let mut got = Vec::new();
            let mut lp = ListParams::default().limit(2);
            let mut pages = 0;
            loop {
                let page = pods.list(&lp).await.expect("list pods");
                pages += 1;
                assert!(page.items.len() <= 2);
                assert!(page.metadata.resource_version.is_some());
                for p in &page.items {
                    got.push(format!(
                        "{}/{}",
                        p.metadata.namespace.as_deref().unwrap(),
                        p.metadata.name.as_deref().unwrap()
                    ));
                }
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(token) => lp = lp.continue_token(&token),
                    None => break,
                }
            }
            got.sort();
            assert_eq!(got, want);
            assert_eq!(pages, 3);
            let one: Api<Pod> = Api::namespaced(client.clone(), "istio-system");
            let p = one.get("istiod-2").await.expect("get pod");
            assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
            assert_eq!(api_code(one.get("nope").await), (404, "NotFound".into()));
            // A served kind with no objects lists empty.
            let namespaces: Api<Namespace> = Api::all(client);
            assert!(
                namespaces
                    .list(&ListParams::default())
                    .await
                    .unwrap()
                    .items
                    .is_empty()
            );
        });
        assert_eq!(api.hits("/api/v1/pods"), 3);
        assert_eq!(api.hits("/api/v1/namespaces/istio-system/pods/istiod-2"), 1);
    }

    #[test]
    fn fake_api_label_and_field_selectors() {
        let api = FakeApi::start();
        let dir = tempfile::tempdir().unwrap();
        let kc = api.kubeconfig(dir.path(), "c1");
        api.put(pod(
            "istio-system",
            "istiod-a",
            json!({"app": "istiod", "istio.io/rev": "default"}),
        ));
        api.put(pod(
            "istio-system",
            "istiod-b",
            json!({"app": "istiod", "istio.io/rev": "canary"}),
        ));
        api.put(pod(
            "istio-system",
            "gateway",
            json!({"app": "istio-ingressgateway"}),
        ));
        api.put(pod(
            "bookinfo",
            "ratings",
            json!({"app": "ratings", "sidecar.istio.io/inject": "true"}),
        ));
        rt().block_on(async {
            let client = client(&kc, "c1").await;
            let pods: Api<Pod> = Api::all(client.clone());
            let names = |sel: ListParams| {
                let pods = pods.clone();
                async move {
                    let mut v: Vec<String> = pods
                        .list(&sel)
                        .await
                        .expect("list")
                        .items
                        .into_iter()
                        .map(|p| p.metadata.name.unwrap())
                        .collect();
                    v.sort();
                    v
                }
            };
            assert_eq!(
                names(ListParams::default().labels("app=istiod")).await,
                ["istiod-a", "istiod-b"]
            );
            assert_eq!(
                names(ListParams::default().labels("app=istiod,istio.io/rev!=canary")).await,
                ["istiod-a"]
            );
            assert_eq!(
                names(ListParams::default().labels("istio.io/rev")).await,
                ["istiod-a", "istiod-b"]
            );
            assert_eq!(
                names(ListParams::default().labels("!istio.io/rev")).await,
                ["gateway", "ratings"]
            );
            assert_eq!(
                names(ListParams::default().labels("app in (ratings,istio-ingressgateway)")).await,
                ["gateway", "ratings"]
            );
            assert_eq!(
                names(ListParams::default().labels("app!=istiod")).await,
                ["gateway", "ratings"]
            );
            assert_eq!(
                names(ListParams::default().fields("metadata.namespace=bookinfo")).await,
                ["ratings"]
            );
            assert_eq!(
                names(ListParams::default().fields("metadata.name=istiod-b")).await,
                ["istiod-b"]
            );
            assert_eq!(
                names(
                    ListParams::default()
                        .labels("app=istiod")
                        .fields("metadata.name!=istiod-b")
                )
                .await,
                ["istiod-a"]
            );
            // Selectors with pagination.
            let page = pods
                .list(&ListParams::default().labels("app").limit(1))
                .await
                .unwrap();
            assert_eq!(page.items.len(), 1);
            assert!(page.metadata.continue_.is_some());
            // An unsupported field is a 400, as on a real server.
            assert_eq!(
                api_code(
                    pods.list(&ListParams::default().fields("spec.foo=bar"))
                        .await
                ),
                (400, "BadRequest".into())
            );
            let ns_pods: Api<Pod> = Api::namespaced(client, "istio-system");
            assert_eq!(
                names_of(
                    ns_pods
                        .list(&ListParams::default().labels("app=istiod"))
                        .await
                        .unwrap()
                ),
                ["istiod-a", "istiod-b"]
            );
        });
    }

    fn names_of(list: kube::api::ObjectList<Pod>) -> Vec<String> {
        let mut v: Vec<String> = list
            .items
            .into_iter()
            .map(|p| p.metadata.name.unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn fake_api_injected_failures_and_auth() {
        let api = FakeApi::start();
        let dir = tempfile::tempdir().unwrap();
        let kc = api.kubeconfig(dir.path(), "c1");
        api.put(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "istio-ca-root-cert", "namespace": "istio-system"},
            "data": {"root-cert.pem": "x"}
        }));
        api.put(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "istiod", "namespace": "istio-system"},
            "spec": {"selector": {"matchLabels": {"app": "istiod"}}, "template": {"spec": {"containers": []}}}
        }));
        api.fail("/api/v1/namespaces/istio-system/configmaps", 403);
        api.fail("/apis/apps/v1", 500);
        let text = std::fs::read_to_string(&kc).unwrap();
        let wrong = dir.path().join("wrong.kubeconfig");
        std::fs::write(&wrong, text.replace(&api.token, "not-the-token")).unwrap();
        let none = dir.path().join("none.kubeconfig");
        let without: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("token:"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&none, without.replace("user:\n", "user: {}\n")).unwrap();
        rt().block_on(async {
            let client = client(&kc, "c1").await;
            let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "istio-system");
            assert_eq!(
                api_code(cms.list(&ListParams::default()).await),
                (403, "Forbidden".into())
            );
            assert_eq!(
                api_code(cms.get("istio-ca-root-cert").await),
                (403, "Forbidden".into())
            );
            let deps: Api<Deployment> = Api::all(client.clone());
            assert_eq!(
                api_code(deps.list(&ListParams::default()).await),
                (500, "InternalError".into())
            );
            api.fail("/apis/apps/v1", 0);
            assert_eq!(
                deps.list(&ListParams::default()).await.unwrap().items.len(),
                1
            );
            api.fail("/api/v1/namespaces/istio-system/configmaps", 0);
            assert_eq!(
                cms.get("istio-ca-root-cert").await.unwrap().data.unwrap()["root-cert.pem"],
                "x"
            );
            for bad in [&wrong, &none] {
                let client = super::tests::client(bad, "c1").await;
                let cms: Api<ConfigMap> = Api::namespaced(client, "istio-system");
                assert_eq!(
                    api_code(cms.list(&ListParams::default()).await),
                    (401, "Unauthorized".into()),
                    "{}",
                    bad.display()
                );
            }
        });
    }

    /// A one-shot HTTP/1.1 responder on loopback for `conns` connections, answering `body`.
    fn http_responder(
        body: String,
        conns: usize,
    ) -> (SocketAddr, std::thread::JoinHandle<Vec<String>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut requests = Vec::new();
            for _ in 0..conns {
                let (mut s, _) = listener.accept().unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&buf[..n]);
                }
                requests.push(String::from_utf8_lossy(&req).into_owned());
                write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    body.len(),
                    body
                )
                .unwrap();
            }
            requests
        });
        (addr, handle)
    }

    async fn config_dump(pods: &Api<Pod>, name: &str) -> String {
        let mut pf = pods.portforward(name, &[15000]).await.expect("portforward");
        let mut stream = pf.take_stream(15000).expect("stream for 15000");
        stream
            .write_all(
                b"GET /config_dump HTTP/1.1\r\nHost: localhost:15000\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let mut resp = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut resp))
            .await
            .expect("response in time")
            .unwrap();
        drop(stream);
        // kube's forwarder answers the server's close by sending its own close once the stream
        // is dropped, so `join` reports `SendAfterClosing` here, as against a real cluster.
        let _ = tokio::time::timeout(Duration::from_secs(5), pf.join()).await;
        let resp = String::from_utf8(resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        resp.split_once("\r\n\r\n").unwrap().1.to_owned()
    }

    #[test]
    fn fake_api_portforward_to_two_pods_concurrently() {
        let api = FakeApi::start();
        let dir = tempfile::tempdir().unwrap();
        let kc = api.kubeconfig(dir.path(), "c1");
        const A: &str = r#"{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.BootstrapConfigDump","pod":"a"}]}"#;
        const B: &str = r#"{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.BootstrapConfigDump","pod":"b"}]}"#;
        let (addr_a, ta) = http_responder(A.to_owned(), 1);
        let (addr_b, tb) = http_responder(B.to_owned(), 1);
        api.put(pod("bookinfo", "reviews-a", json!({})));
        api.forward("bookinfo", "reviews-a", 15000, addr_a);
        api.forward("bookinfo", "reviews-b", 15000, addr_b);
        rt().block_on(async {
            let client = client(&kc, "c1").await;
            let pods: Api<Pod> = Api::namespaced(client, "bookinfo");
            let (a, b) = tokio::join!(
                config_dump(&pods, "reviews-a"),
                config_dump(&pods, "reviews-b")
            );
            assert_eq!(a, A);
            assert_eq!(b, B);
            // Unknown pod: 404 before the upgrade.
            assert_eq!(
                api_code(pods.portforward("nope", &[15000]).await.map(|_| ())),
                (404, "NotFound".into())
            );
            // Known pod, nothing behind the port: the error channel says so.
            let mut pf = pods.portforward("reviews-a", &[15021]).await.unwrap();
            let err = tokio::time::timeout(Duration::from_secs(10), pf.take_error(15021).unwrap())
                .await
                .expect("error in time")
                .expect("an error message");
            assert!(
                err.contains("error forwarding port 15021 to pod bookinfo/reviews-a"),
                "{err}"
            );
        });
        for t in [ta, tb] {
            let reqs = t.join().unwrap();
            assert_eq!(reqs.len(), 1);
            assert!(
                reqs[0].starts_with("GET /config_dump HTTP/1.1\r\n"),
                "{reqs:?}"
            );
        }
        assert_eq!(
            api.hits("/api/v1/namespaces/bookinfo/pods/reviews-a/portforward"),
            2
        );
        assert_eq!(
            api.hits("/api/v1/namespaces/bookinfo/pods/reviews-b/portforward"),
            1
        );
    }

    #[test]
    fn fake_api_portforward_two_ports_large_body() {
        let api = FakeApi::start();
        let dir = tempfile::tempdir().unwrap();
        let kc = api.kubeconfig(dir.path(), "c1");
        let big = format!("{{\"configs\":\"{}\"}}", "x".repeat(3 << 20));
        let (addr_admin, ta) = http_responder(big.clone(), 1);
        let (addr_metrics, tb) = http_responder("# metrics\n".to_owned(), 1);
        api.forward("istio-system", "istiod-x", 15000, addr_admin);
        api.forward("istio-system", "istiod-x", 15014, addr_metrics);
        rt().block_on(async {
            let client = client(&kc, "c1").await;
            let pods: Api<Pod> = Api::namespaced(client, "istio-system");
            let mut pf = pods.portforward("istiod-x", &[15000, 15014]).await.unwrap();
            let exchange = |mut s: Box<dyn Stream>| async move {
                s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .await
                    .unwrap();
                let mut resp = Vec::new();
                tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut resp))
                    .await
                    .expect("response in time")
                    .unwrap();
                String::from_utf8(resp).unwrap()
            };
            let admin: Box<dyn Stream> = Box::new(pf.take_stream(15000).unwrap());
            let metrics: Box<dyn Stream> = Box::new(pf.take_stream(15014).unwrap());
            let (a, m) = tokio::join!(exchange(admin), exchange(metrics));
            assert_eq!(a.split_once("\r\n\r\n").unwrap().1.len(), big.len());
            assert!(a.ends_with(&big));
            assert!(m.ends_with("\r\n\r\n# metrics\n"), "{m}");
        });
        assert_eq!(ta.join().unwrap().len(), 1);
        assert_eq!(tb.join().unwrap().len(), 1);
    }

    trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
    impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

    #[test]
    fn fake_api_discovery_and_custom_resources() {
        use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
        let api = FakeApi::start();
        let dir = tempfile::tempdir().unwrap();
        let kc = api.kubeconfig(dir.path(), "c1");
        api.put(json!({
            "apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": "default", "namespace": "istio-system"},
            "spec": {"mtls": {"mode": "STRICT"}}
        }));
        api.put(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
        );
        rt().block_on(async {
            let client = client(&kc, "c1").await;
            let discovery = kube::discovery::Discovery::new(client.clone())
                .run()
                .await
                .expect("discovery");
            let (deploy, caps) = discovery
                .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
                .expect("apps/v1 Deployment discovered");
            assert_eq!(deploy.plural, "deployments");
            assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
            let (pa, _) = discovery
                .resolve_gvk(&GroupVersionKind::gvk(
                    "security.istio.io",
                    "v1",
                    "PeerAuthentication",
                ))
                .expect("custom resource discovered");
            let pas: Api<DynamicObject> = Api::namespaced_with(client.clone(), "istio-system", &pa);
            let list = pas.list(&ListParams::default()).await.unwrap();
            assert_eq!(list.items.len(), 1);
            assert_eq!(list.items[0].data["spec"]["mtls"]["mode"], "STRICT");
            let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
                "security.istio.io",
                "v1",
                "PeerAuthentication",
            ));
            let got = Api::<DynamicObject>::namespaced_with(client.clone(), "istio-system", &ar)
                .get("default")
                .await
                .unwrap();
            assert_eq!(got.metadata.name.as_deref(), Some("default"));
            let ns: Api<Namespace> = Api::all(client);
            let ns = ns.get("istio-system").await.unwrap();
            assert_eq!(ns.metadata.namespace, None);
        });
    }

    #[test]
    fn fake_api_parsers() {
        assert_eq!(
            percent_decode("app%3Distiod%2Cx%21%3Dy+z"),
            "app=istiod,x!=y z"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(pluralize("PeerAuthentication"), "peerauthentications");
        assert_eq!(pluralize("Gateway"), "gateways");
        assert_eq!(pluralize("Policy"), "policies");
        assert_eq!(pluralize("Sidecar"), "sidecars");
        assert_eq!(
            parse_label_selector("a=b, c!=d,e in (f, g),!h,i").unwrap(),
            vec![
                LabelReq::Eq("a".into(), "b".into()),
                LabelReq::Ne("c".into(), "d".into()),
                LabelReq::In("e".into(), vec!["f".into(), "g".into()]),
                LabelReq::NotExists("h".into()),
                LabelReq::Exists("i".into()),
            ]
        );
        assert!(parse_label_selector("a=(b").is_err());
        let token = encode_continue(7, "ns", "name");
        assert_eq!(decode_continue(&token), Some(("ns".into(), "name".into())));
        assert_eq!(decode_continue("garbage"), None);
        assert!(matches!(
            route("/api/v1/namespaces/x/pods/y/portforward"),
            Some(Route::PortForward { .. })
        ));
        assert!(route("/apis/apps").is_none());
    }
}
