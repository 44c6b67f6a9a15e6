//! One in-memory TLS 1.3 mutual handshake: a rustls `ClientConnection` and `ServerConnection`
//! pumped into each other through byte buffers until both finish and a byte of application
//! data has crossed each way.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime, pem::PemObject,
};
use rustls::server::NoServerSessionStorage;
use rustls::time_provider::TimeProvider;
use rustls::{AlertDescription, ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use time::OffsetDateTime;

use super::verify::{
    Memo, MeshClientVerifier, SpiffeServerVerifier, Verdicts, anchors, digest, rejection_from,
    unix_time,
};
use super::{HandshakeError, Input, Rejection, Side, Workload, parse_certs};

/// Flights a TLS 1.3 mutual handshake needs are few; this only guards against a stall.
const MAX_ROUNDS: usize = 32;

/// Runs one mutual TLS handshake, TLS 1.3 only, in memory.
///
/// The client sends `client`'s whole chain and trusts every cert of `client_trust_pem`
/// (duplicates fine); it accepts the server only if the server leaf's URI SAN equals
/// `expect_server_id`. The server requires a client certificate chaining to
/// `server_trust_pem`. Both sides verify at `now`, and both use `now` as their clock.
///
/// A failure says which side refused which and why: see [`HandshakeError::Rejected`].
pub fn mutual_tls(
    client: &Workload,
    client_trust_pem: &[u8],
    server: &Workload,
    server_trust_pem: &[u8],
    expect_server_id: &str,
    now: OffsetDateTime,
) -> Result<(), HandshakeError> {
    HandshakeCache::new(expect_server_id, now).mutual_tls(
        client,
        client_trust_pem,
        server,
        server_trust_pem,
    )
}

/// Many handshakes between the same workloads and bundles, at one time and expecting one
/// server identity: each TLS configuration (parsed chain, key and trust anchors) is built
/// once per (workload, bundle) and chain verdicts are shared (see `Verdicts`). Session
/// resumption is off in every configuration, so each handshake is a full one: fresh key
/// exchange, both CertificateVerify signatures, Finished and data both ways. Usable from any
/// number of threads.
///
/// Configurations are keyed by the address of the borrowed inputs, which the `'a` borrow
/// keeps alive and unchanged for as long as the cache exists.
pub struct HandshakeCache<'a> {
    expect_server_id: String,
    now: OffsetDateTime,
    clients: Mutex<HashMap<InputKey, Arc<ClientConfig>>>,
    servers: Mutex<HashMap<InputKey, Arc<ServerConfig>>>,
    verdicts: Arc<Verdicts>,
    inputs: PhantomData<&'a [u8]>,
}

/// (workload address, trust bundle address, trust bundle length).
type InputKey = (usize, usize, usize);

fn input_key(w: &Workload, trust: &[u8]) -> InputKey {
    (
        std::ptr::from_ref(w) as usize,
        trust.as_ptr() as usize,
        trust.len(),
    )
}

/// The configuration kept under `key`, else `build`'s, kept (a failed build is not).
fn cached_or<T>(
    map: &Mutex<HashMap<InputKey, Arc<T>>>,
    key: InputKey,
    build: impl FnOnce() -> Result<T, HandshakeError>,
) -> Result<Arc<T>, HandshakeError> {
    let lock = || {
        map.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some(v) = lock().get(&key) {
        return Ok(v.clone());
    }
    let v = Arc::new(build()?);
    lock().insert(key, v.clone());
    Ok(v)
}

impl<'a> HandshakeCache<'a> {
    /// Handshakes at `now` where the client expects the server to be `expect_server_id`.
    pub fn new(expect_server_id: &str, now: OffsetDateTime) -> Self {
        Self {
            expect_server_id: expect_server_id.to_owned(),
            now,
            clients: Mutex::default(),
            servers: Mutex::default(),
            verdicts: Arc::default(),
            inputs: PhantomData,
        }
    }

    fn memo(&self, trust_pem: &[u8]) -> Memo {
        Memo {
            verdicts: self.verdicts.clone(),
            anchors_id: digest([trust_pem]),
        }
    }

    /// [`mutual_tls`] with this cache's identity and time: same inputs, same verdict.
    pub fn mutual_tls(
        &self,
        client: &'a Workload,
        client_trust_pem: &'a [u8],
        server: &'a Workload,
        server_trust_pem: &'a [u8],
    ) -> Result<(), HandshakeError> {
        // A side not seen before is parsed, the client first, so of several bad inputs the
        // client's is named.
        let client_config = cached_or(&self.clients, input_key(client, client_trust_pem), || {
            client_config(
                parse_side(client, client_trust_pem, Side::Client)?,
                &self.expect_server_id,
                self.now,
                self.memo(client_trust_pem),
            )
        })?;
        let server_config = cached_or(&self.servers, input_key(server, server_trust_pem), || {
            server_config(
                parse_side(server, server_trust_pem, Side::Server)?,
                self.now,
                self.memo(server_trust_pem),
            )
        })?;
        run(client_config, server_config)
    }
}

/// One end's inputs, parsed: the chain it presents, its key, and the anchors it trusts.
struct SideParts {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    anchors: Vec<TrustAnchor<'static>>,
}

/// Parses `side`'s workload and trust bundle, in that order, naming the bad input.
fn parse_side(w: &Workload, trust_pem: &[u8], side: Side) -> Result<SideParts, HandshakeError> {
    let (chain, key, trust) = match side {
        Side::Client => (Input::ClientChain, Input::ClientKey, Input::ClientTrust),
        Side::Server => (Input::ServerChain, Input::ServerKey, Input::ServerTrust),
    };
    Ok(SideParts {
        chain: parse_certs(w.chain_pem.as_bytes(), chain)?,
        key: parse_key(&w.key_pem, key)?,
        anchors: anchors(&parse_certs(trust_pem, trust)?, trust)?,
    })
}

/// aws-lc-rs with TLS_AES_128_GCM_SHA256 preferred, as Envoy's BoringSSL does for TLS 1.3
/// (rustls' default puts TLS_AES_256_GCM_SHA384 first), and the injected clock.
fn provider_and_clock(now: OffsetDateTime) -> (Arc<CryptoProvider>, Arc<FixedClock>) {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    (Arc::new(provider), Arc::new(FixedClock(unix_time(now))))
}

fn client_config(
    SideParts {
        chain,
        key,
        anchors,
    }: SideParts,
    expect_server_id: &str,
    now: OffsetDateTime,
    memo: Memo,
) -> Result<ClientConfig, HandshakeError> {
    let (provider, clock) = provider_and_clock(now);
    let algs = provider.signature_verification_algorithms;
    let mut config = ClientConfig::builder_with_details(provider.clone(), clock.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_err(Side::Client, e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier::new(
            anchors,
            clock.0,
            algs,
            expect_server_id,
            memo,
        )))
        .with_client_auth_cert(chain, key)
        .map_err(|e| key_err(Input::ClientKey, e))?;
    // The name is never checked (the verifier matches the SPIFFE URI SAN) and not sent.
    config.enable_sni = false;
    // Every handshake is a full one, even through a shared configuration.
    config.resumption = Resumption::disabled();
    Ok(config)
}

fn server_config(
    SideParts {
        chain,
        key,
        anchors,
    }: SideParts,
    now: OffsetDateTime,
    memo: Memo,
) -> Result<ServerConfig, HandshakeError> {
    let (provider, clock) = provider_and_clock(now);
    let algs = provider.signature_verification_algorithms;
    let mut config = ServerConfig::builder_with_details(provider.clone(), clock.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_err(Side::Server, e))?
        .with_client_cert_verifier(Arc::new(MeshClientVerifier::new(
            anchors, clock.0, algs, memo,
        )))
        .with_single_cert(chain, key)
        .map_err(|e| key_err(Input::ServerKey, e))?;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// One handshake and a byte of data each way between fresh connections of the two configs.
fn run(
    client_config: Arc<ClientConfig>,
    server_config: Arc<ServerConfig>,
) -> Result<(), HandshakeError> {
    let name =
        ServerName::try_from("workload.mesh.invalid").map_err(|e| config_err(Side::Client, e))?;
    let mut client_conn =
        ClientConnection::new(client_config, name).map_err(|e| config_err(Side::Client, e))?;
    let mut server_conn =
        ServerConnection::new(server_config).map_err(|e| config_err(Side::Server, e))?;

    let mut pair = Pair {
        client: &mut client_conn,
        server: &mut server_conn,
    };
    pair.handshake()?;
    pair.exchange()
}

struct Pair<'a> {
    client: &'a mut ClientConnection,
    server: &'a mut ServerConnection,
}

impl Pair<'_> {
    /// Moves flights both ways until neither side is handshaking and nothing is in flight.
    /// The first side to fail locally is the one that refused.
    fn handshake(&mut self) -> Result<(), HandshakeError> {
        for _ in 0..MAX_ROUNDS {
            let sent = self.client_to_server()? | self.server_to_client()?;
            if !sent && !self.client.is_handshaking() && !self.server.is_handshaking() {
                return Ok(());
            }
        }
        Err(HandshakeError::Incomplete)
    }

    /// Sends one request and one reply through the established session. In TLS 1.3 the
    /// client finishes before the server has judged its certificate, so this is what proves
    /// both ends really accepted each other.
    fn exchange(&mut self) -> Result<(), HandshakeError> {
        let io = |side: Side, e: std::io::Error| HandshakeError::Aborted {
            by: side,
            reason: e.to_string(),
        };
        self.client
            .writer()
            .write_all(b"ping")
            .map_err(|e| io(Side::Client, e))?;
        self.client_to_server()?;
        expect_plaintext(self.server.reader(), b"ping", Side::Server)?;
        self.server
            .writer()
            .write_all(b"pong")
            .map_err(|e| io(Side::Server, e))?;
        self.server_to_client()?;
        expect_plaintext(self.client.reader(), b"pong", Side::Client)
    }

    fn client_to_server(&mut self) -> Result<bool, HandshakeError> {
        let bytes = drain(self.client, Side::Client)?;
        feed(self.server, &bytes, Side::Server)?;
        Ok(!bytes.is_empty())
    }

    fn server_to_client(&mut self) -> Result<bool, HandshakeError> {
        let bytes = drain(self.server, Side::Server)?;
        feed(self.client, &bytes, Side::Client)?;
        Ok(!bytes.is_empty())
    }
}

/// Everything `conn` wants to send.
fn drain<D>(conn: &mut rustls::ConnectionCommon<D>, side: Side) -> Result<Vec<u8>, HandshakeError> {
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)
            .map_err(|e| HandshakeError::Aborted {
                by: side,
                reason: e.to_string(),
            })?;
    }
    Ok(out)
}

/// Delivers `bytes` to `conn` (owned by `side`) and processes them.
fn feed<D>(
    conn: &mut rustls::ConnectionCommon<D>,
    mut bytes: &[u8],
    side: Side,
) -> Result<(), HandshakeError> {
    while !bytes.is_empty() {
        conn.read_tls(&mut bytes)
            .map_err(|e| HandshakeError::Aborted {
                by: side,
                reason: e.to_string(),
            })?;
        conn.process_new_packets().map_err(|e| classify(side, e))?;
    }
    Ok(())
}

fn expect_plaintext(
    mut reader: rustls::Reader<'_>,
    want: &[u8],
    side: Side,
) -> Result<(), HandshakeError> {
    let mut got = vec![0u8; want.len()];
    match reader.read_exact(&mut got) {
        Ok(()) if got == want => Ok(()),
        Ok(()) => Err(HandshakeError::Aborted {
            by: side,
            reason: "application data arrived corrupted".into(),
        }),
        Err(e) => Err(HandshakeError::Aborted {
            by: side,
            reason: format!("no application data after the handshake: {e}"),
        }),
    }
}

/// Turns the error `side` hit while processing the peer's records into a verdict.
///
/// A local certificate error means `side` refused the peer. A received alert means the peer
/// refused `side` (normally the peer's own local error is seen first; this is the fallback).
fn classify(side: Side, e: rustls::Error) -> HandshakeError {
    match e {
        rustls::Error::InvalidCertificate(cert) => HandshakeError::Rejected {
            by: side,
            reason: rejection_from(&cert),
        },
        rustls::Error::NoCertificatesPresented => HandshakeError::Rejected {
            by: side,
            reason: Rejection::NoCertificate,
        },
        rustls::Error::AlertReceived(alert) => match alert_rejection(alert) {
            Some(reason) => HandshakeError::Rejected {
                by: side.peer(),
                reason,
            },
            None => HandshakeError::Aborted {
                by: side.peer(),
                reason: format!("sent alert {alert:?}"),
            },
        },
        other => HandshakeError::Aborted {
            by: side,
            reason: other.to_string(),
        },
    }
}

/// What a certificate alert from the peer says, as well as an alert can say it.
fn alert_rejection(alert: AlertDescription) -> Option<Rejection> {
    Some(match alert {
        AlertDescription::UnknownCA => Rejection::UnknownIssuer,
        AlertDescription::CertificateExpired => Rejection::Expired {
            not_after: None,
            at: None,
        },
        AlertDescription::CertificateRequired => Rejection::NoCertificate,
        AlertDescription::DecryptError => Rejection::BadSignature,
        AlertDescription::BadCertificate
        | AlertDescription::UnsupportedCertificate
        | AlertDescription::CertificateUnknown
        | AlertDescription::CertificateRevoked
        | AlertDescription::AccessDenied => Rejection::Other(format!("peer sent alert {alert:?}")),
        _ => return None,
    })
}

fn parse_key(pem: &str, input: Input) -> Result<PrivateKeyDer<'static>, HandshakeError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| HandshakeError::Key {
        input,
        reason: e.to_string(),
    })
}

fn key_err(input: Input, e: rustls::Error) -> HandshakeError {
    match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            HandshakeError::KeyMismatch { input }
        }
        other => HandshakeError::Key {
            input,
            reason: other.to_string(),
        },
    }
}

fn config_err(side: Side, e: impl std::fmt::Display) -> HandshakeError {
    HandshakeError::Config {
        side,
        reason: e.to_string(),
    }
}

/// rustls' clock for session tickets and verifier calls: always the injected `now`.
#[derive(Debug)]
struct FixedClock(UnixTime);

impl TimeProvider for FixedClock {
    fn current_time(&self) -> Option<UnixTime> {
        Some(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_errors_blame_the_local_side_and_alerts_blame_the_peer() {
        let local = classify(
            Side::Client,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(local.rejected_by(), Some(Side::Client));
        assert_eq!(local.rejection(), Some(&Rejection::UnknownIssuer));

        // The server received the client's "unknown CA" alert: the client refused the server.
        let alert = classify(
            Side::Server,
            rustls::Error::AlertReceived(AlertDescription::UnknownCA),
        );
        assert_eq!(alert.rejected_by(), Some(Side::Client));
        assert_eq!(alert.rejection(), Some(&Rejection::UnknownIssuer));

        let missing = classify(Side::Server, rustls::Error::NoCertificatesPresented);
        assert_eq!(missing.rejected_by(), Some(Side::Server));
        assert_eq!(missing.rejection(), Some(&Rejection::NoCertificate));

        let other = classify(
            Side::Client,
            rustls::Error::AlertReceived(AlertDescription::HandshakeFailure),
        );
        assert!(matches!(
            other,
            HandshakeError::Aborted {
                by: Side::Server,
                ..
            }
        ));
        assert_eq!(
            other.to_string(),
            "server aborted the handshake: sent alert HandshakeFailure"
        );
    }
}
