//! One in-memory TLS 1.3 mutual handshake: a rustls `ClientConnection` and `ServerConnection`
//! pumped into each other through byte buffers until both finish and a byte of application
//! data has crossed each way; and [`HandshakeCache::judge`], which decides many such
//! handshakes with the same verifier objects and far fewer connections.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::io::{Read, Write};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use rustls::client::Resumption;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject};
use rustls::server::NoServerSessionStorage;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::time_provider::TimeProvider;
use rustls::{AlertDescription, ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use time::OffsetDateTime;

use super::verify::{
    Memo, MeshClientVerifier, SpiffeServerVerifier, Verdicts, digest, rejection_from, trust,
    unix_time,
};
use super::{HandshakeError, Input, Rejection, Side, Workload, parse_certs};

/// Flights a TLS 1.3 mutual handshake needs are few; this only guards against a stall.
const MAX_ROUNDS: usize = 32;

/// The name the client connects to. Never checked (the verifier matches the SPIFFE URI SAN)
/// and not sent.
const SERVER_NAME: &str = "workload.mesh.invalid";

/// Runs one mutual TLS handshake, TLS 1.3 only, in memory.
///
/// The client sends `client`'s whole chain and trusts `client_trust_pem` (duplicates fine);
/// it accepts the server only if the server leaf's URI SAN equals `expect_server_id`. The
/// server requires a client certificate chaining to `server_trust_pem`. Both sides verify at
/// `now`, and both use `now` as their clock. Chains are judged along the path Envoy's BoringSSL
/// would build (see `issuer`).
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
/// server identity. Each workload's chain and key are parsed once per side, each bundle's
/// verifier is built once per side, and chain verdicts are shared (see `Verdicts`). Session
/// resumption is off in every configuration, so each handshake that runs is a full one: fresh
/// key exchange, both CertificateVerify signatures, Finished and data both ways. Usable from
/// any number of threads.
///
/// Inputs are keyed by the address of the borrowed values, which the `'a` borrow keeps alive
/// and unchanged for as long as the cache exists.
pub struct HandshakeCache<'a> {
    expect_server_id: String,
    provider: Arc<CryptoProvider>,
    clock: Arc<FixedClock>,
    presented: Table<(usize, Side), Result<Arc<Presented>, HandshakeError>>,
    /// Chains judged without keys ([`HandshakeCache::judge_trust`]), parsed once per side.
    chains: Table<(TrustKey, Side), Result<ParsedChain, HandshakeError>>,
    client_verifiers: Table<TrustKey, Result<Arc<SpiffeServerVerifier>, HandshakeError>>,
    server_verifiers: Table<TrustKey, Result<Arc<MeshClientVerifier>, HandshakeError>>,
    /// Real handshakes between two presented workloads (client, server), run when a pair
    /// both verifiers accept has an end that has not completed one yet.
    handshakes: Table<(usize, usize), Result<(), HandshakeError>>,
    /// Leaves (DER, side) whose end has completed a real handshake on that side.
    proven: Mutex<HashSet<(Vec<u8>, Side)>>,
    verdicts: Arc<Verdicts>,
    inputs: PhantomData<&'a [u8]>,
}

/// (trust bundle address, length).
type TrustKey = (usize, usize);

/// A presented chain, parsed.
type ParsedChain = Arc<[CertificateDer<'static>]>;

fn trust_key(trust: &[u8]) -> TrustKey {
    (trust.as_ptr() as usize, trust.len())
}

fn workload_key(w: &Workload) -> usize {
    std::ptr::from_ref(w) as usize
}

/// A map filled on first use from any thread; a value is computed outside the lock (two
/// threads may both compute one, and get equal results).
struct Table<K, V>(Mutex<HashMap<K, V>>);

impl<K: Hash + Eq, V: Clone> Table<K, V> {
    fn new() -> Self {
        Self(Mutex::default())
    }

    fn get_or(&self, key: K, make: impl FnOnce() -> V) -> V {
        let lock = || {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(v) = lock().get(&key) {
            return v.clone();
        }
        let v = make();
        lock().insert(key, v.clone());
        v
    }
}

/// What one end sends and signs with: its chain, parsed, and its key loaded against the leaf
/// (the error, if the key cannot be used or does not match, is reported after the end's
/// trust bundle is read, as building its configuration would).
struct Presented {
    chain: Vec<CertificateDer<'static>>,
    certified: Result<Arc<CertifiedKey>, HandshakeError>,
}

/// One end ready to connect: its chain and key, and the verifier it judges its peer with.
struct End<V: ?Sized> {
    presented: Arc<Presented>,
    certified: Arc<CertifiedKey>,
    verifier: Arc<V>,
}

impl<'a> HandshakeCache<'a> {
    /// Handshakes at `now` where the client expects the server to be `expect_server_id`.
    pub fn new(expect_server_id: &str, now: OffsetDateTime) -> Self {
        // aws-lc-rs with TLS_AES_128_GCM_SHA256 preferred, as Envoy's BoringSSL does for
        // TLS 1.3 (rustls' default puts TLS_AES_256_GCM_SHA384 first).
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider
            .cipher_suites
            .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        Self {
            expect_server_id: expect_server_id.to_owned(),
            provider: Arc::new(provider),
            clock: Arc::new(FixedClock(unix_time(now))),
            presented: Table::new(),
            chains: Table::new(),
            client_verifiers: Table::new(),
            server_verifiers: Table::new(),
            handshakes: Table::new(),
            proven: Mutex::default(),
            verdicts: Arc::default(),
            inputs: PhantomData,
        }
    }

    /// [`mutual_tls`] with this cache's identity and time: same inputs, same verdict. Runs a
    /// real handshake on every call.
    pub fn mutual_tls(
        &self,
        client: &'a Workload,
        client_trust_pem: &'a [u8],
        server: &'a Workload,
        server_trust_pem: &'a [u8],
    ) -> Result<(), HandshakeError> {
        let (c, s) = self.ends(client, client_trust_pem, server, server_trust_pem)?;
        self.run(&c, &s)
    }

    /// The verdict [`HandshakeCache::mutual_tls`] gives for the same inputs, with far fewer
    /// real handshakes.
    ///
    /// Both ends' certificate checks are made by calling the very verifier objects the two
    /// configurations install, with the chains the peers send, in the order a TLS 1.3
    /// handshake makes them (the client judges the server's Certificate first). Whether a
    /// handshake then completes depends on nothing else the trust bundles touch: those
    /// verdicts are the only way a bundle enters a handshake (no CA hints are sent). The rest
    /// splits into what each end does on its own and what any two ends do alike (key
    /// exchange, Finished, data both ways). What an end does on its own depends on its leaf
    /// and the key that matches it (checked when its configuration loads): the key signs its
    /// CertificateVerify, which the peer checks against that leaf with the algorithms every
    /// configuration here shares; the rest of its chain only reaches the peer's verifier. So
    /// a real handshake runs whenever a pair both verifiers accept has an end whose leaf has
    /// not yet completed one on that side; once both have, the pair is known to complete. A
    /// failed real handshake is kept for its pair and proves nothing.
    pub fn judge(
        &self,
        client: &'a Workload,
        client_trust_pem: &'a [u8],
        server: &'a Workload,
        server_trust_pem: &'a [u8],
    ) -> Result<(), HandshakeError> {
        let (c, s) = self.ends(client, client_trust_pem, server, server_trust_pem)?;
        let name = ServerName::try_from(SERVER_NAME).map_err(|e| config_err(Side::Client, e))?;
        let (peer_leaf, peer_rest) = split(&s.presented.chain);
        c.verifier
            .verify_server_cert(peer_leaf, peer_rest, &name, &[], self.clock.0)
            .map_err(|e| classify(Side::Client, e))?;
        let (peer_leaf, peer_rest) = split(&c.presented.chain);
        s.verifier
            .verify_client_cert(peer_leaf, peer_rest, self.clock.0)
            .map_err(|e| classify(Side::Server, e))?;
        let leaf = |p: &Presented| split(&p.chain).0.as_ref().to_vec();
        let ends = [
            (leaf(&c.presented), Side::Client),
            (leaf(&s.presented), Side::Server),
        ];
        let proven = || {
            self.proven
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if ends.iter().all(|end| proven().contains(end)) {
            return Ok(());
        }
        let outcome = self
            .handshakes
            .get_or((workload_key(client), workload_key(server)), || {
                self.run(&c, &s)
            });
        if outcome.is_ok() {
            proven().extend(ends);
        }
        outcome
    }

    /// Both ends, parsed in the order [`mutual_tls`] names bad inputs: the client's chain,
    /// key, trust bundle and key match, then the same for the server.
    fn ends(
        &self,
        client: &'a Workload,
        client_trust_pem: &'a [u8],
        server: &'a Workload,
        server_trust_pem: &'a [u8],
    ) -> Result<(End<SpiffeServerVerifier>, End<MeshClientVerifier>), HandshakeError> {
        let presented = self.presented(client, Side::Client)?;
        let verifier = self.client_verifier(client_trust_pem)?;
        let client = End {
            certified: presented.certified.clone()?,
            presented,
            verifier,
        };
        let presented = self.presented(server, Side::Server)?;
        let verifier = self.server_verifier(server_trust_pem)?;
        let server = End {
            certified: presented.certified.clone()?,
            presented,
            verifier,
        };
        Ok((client, server))
    }

    /// The verifier a client trusting `trust_pem` installs, built once per bundle.
    fn client_verifier(
        &self,
        trust_pem: &'a [u8],
    ) -> Result<Arc<SpiffeServerVerifier>, HandshakeError> {
        self.client_verifiers.get_or(trust_key(trust_pem), || {
            let trust = trust(
                &parse_certs(trust_pem, Input::ClientTrust)?,
                Input::ClientTrust,
            )?;
            Ok(Arc::new(SpiffeServerVerifier::new(
                trust,
                self.clock.0,
                self.provider.signature_verification_algorithms,
                &self.expect_server_id,
                self.memo(trust_pem),
            )))
        })
    }

    /// The verifier a server trusting `trust_pem` installs, built once per bundle.
    fn server_verifier(
        &self,
        trust_pem: &'a [u8],
    ) -> Result<Arc<MeshClientVerifier>, HandshakeError> {
        self.server_verifiers.get_or(trust_key(trust_pem), || {
            let trust = trust(
                &parse_certs(trust_pem, Input::ServerTrust)?,
                Input::ServerTrust,
            )?;
            Ok(Arc::new(MeshClientVerifier::new(
                trust,
                self.clock.0,
                self.provider.signature_verification_algorithms,
                self.memo(trust_pem),
            )))
        })
    }

    /// The two certificate decisions of [`HandshakeCache::judge`] alone, for chains whose
    /// private keys are not at hand (the public probe leaves of a rendered tree): the client's
    /// verifier judges the server's chain, then the server's verifier the client's, with the
    /// very verifier objects a handshake's configurations install. This is a handshake's trust
    /// decision minus proof of possession: no CertificateVerify is signed, so it cannot show
    /// that a workload holds the key of its leaf.
    pub fn judge_trust(
        &self,
        client_chain_pem: &'a [u8],
        client_trust_pem: &'a [u8],
        server_chain_pem: &'a [u8],
        server_trust_pem: &'a [u8],
    ) -> Result<(), HandshakeError> {
        let chain = |pem: &'a [u8], side: Side, input: Input| {
            self.chains.get_or((trust_key(pem), side), || {
                parse_certs(pem, input).map(Arc::from)
            })
        };
        let client_chain = chain(client_chain_pem, Side::Client, Input::ClientChain)?;
        let client_verifier = self.client_verifier(client_trust_pem)?;
        let server_chain = chain(server_chain_pem, Side::Server, Input::ServerChain)?;
        let server_verifier = self.server_verifier(server_trust_pem)?;
        let name = ServerName::try_from(SERVER_NAME).map_err(|e| config_err(Side::Client, e))?;
        let (peer_leaf, peer_rest) = split(&server_chain);
        client_verifier
            .verify_server_cert(peer_leaf, peer_rest, &name, &[], self.clock.0)
            .map_err(|e| classify(Side::Client, e))?;
        let (peer_leaf, peer_rest) = split(&client_chain);
        server_verifier
            .verify_client_cert(peer_leaf, peer_rest, self.clock.0)
            .map_err(|e| classify(Side::Server, e))?;
        Ok(())
    }

    /// `w`'s chain and key as `side` presents them, parsed once.
    fn presented(&self, w: &'a Workload, side: Side) -> Result<Arc<Presented>, HandshakeError> {
        self.presented.get_or((workload_key(w), side), || {
            let (chain_input, key_input) = match side {
                Side::Client => (Input::ClientChain, Input::ClientKey),
                Side::Server => (Input::ServerChain, Input::ServerKey),
            };
            let chain = parse_certs(w.chain_pem.as_bytes(), chain_input)?;
            let key = parse_key(&w.key_pem, key_input)?;
            let certified = CertifiedKey::from_der(chain.clone(), key, &self.provider)
                .map(Arc::new)
                .map_err(|e| key_err(key_input, e));
            Ok(Arc::new(Presented { chain, certified }))
        })
    }

    fn memo(&self, trust_pem: &[u8]) -> Memo {
        Memo {
            verdicts: self.verdicts.clone(),
            anchors_id: digest([trust_pem]),
        }
    }

    /// A real handshake between fresh connections of the two ends' configurations.
    fn run(
        &self,
        c: &End<SpiffeServerVerifier>,
        s: &End<MeshClientVerifier>,
    ) -> Result<(), HandshakeError> {
        let client = client_config(&self.provider, &self.clock, c)?;
        let server = server_config(&self.provider, &self.clock, s)?;
        run(Arc::new(client), Arc::new(server))
    }
}

/// A presented chain as a verifier receives it: the leaf, and the rest.
fn split<'c>(
    chain: &'c [CertificateDer<'static>],
) -> (&'c CertificateDer<'static>, &'c [CertificateDer<'static>]) {
    let (leaf, rest) = chain
        .split_first()
        .expect("parse_certs returns at least one certificate");
    (leaf, rest)
}

fn client_config(
    provider: &Arc<CryptoProvider>,
    clock: &Arc<FixedClock>,
    end: &End<SpiffeServerVerifier>,
) -> Result<ClientConfig, HandshakeError> {
    let mut config = ClientConfig::builder_with_details(provider.clone(), clock.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_err(Side::Client, e))?
        .dangerous()
        .with_custom_certificate_verifier(end.verifier.clone())
        // What `with_client_auth_cert` builds, from the key loaded once.
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(end.certified.clone())));
    config.enable_sni = false;
    // Every handshake is a full one.
    config.resumption = Resumption::disabled();
    Ok(config)
}

fn server_config(
    provider: &Arc<CryptoProvider>,
    clock: &Arc<FixedClock>,
    end: &End<MeshClientVerifier>,
) -> Result<ServerConfig, HandshakeError> {
    let mut config = ServerConfig::builder_with_details(provider.clone(), clock.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_err(Side::Server, e))?
        .with_client_cert_verifier(end.verifier.clone())
        // What `with_single_cert` builds, from the key loaded once.
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(end.certified.clone())));
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// One handshake and a byte of data each way between fresh connections of the two configs.
fn run(
    client_config: Arc<ClientConfig>,
    server_config: Arc<ServerConfig>,
) -> Result<(), HandshakeError> {
    let name = ServerName::try_from(SERVER_NAME).map_err(|e| config_err(Side::Client, e))?;
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
