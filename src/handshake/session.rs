//! One in-memory TLS 1.3 mutual handshake: a rustls `ClientConnection` and `ServerConnection`
//! pumped into each other through byte buffers until both finish and a byte of application
//! data has crossed each way.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, ServerName, UnixTime, pem::PemObject};
use rustls::time_provider::TimeProvider;
use rustls::{AlertDescription, ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use time::OffsetDateTime;

use super::verify::{MeshClientVerifier, SpiffeServerVerifier, anchors, rejection_from, unix_time};
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
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let clock = Arc::new(FixedClock(unix_time(now)));
    let algs = provider.signature_verification_algorithms;

    let client_chain = parse_certs(client.chain_pem.as_bytes(), Input::ClientChain)?;
    let client_key = parse_key(&client.key_pem, Input::ClientKey)?;
    let server_chain = parse_certs(server.chain_pem.as_bytes(), Input::ServerChain)?;
    let server_key = parse_key(&server.key_pem, Input::ServerKey)?;
    let client_anchors = anchors(
        &parse_certs(client_trust_pem, Input::ClientTrust)?,
        Input::ClientTrust,
    )?;
    let server_anchors = anchors(
        &parse_certs(server_trust_pem, Input::ServerTrust)?,
        Input::ServerTrust,
    )?;

    let mut client_config = ClientConfig::builder_with_details(provider.clone(), clock.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_err(Side::Client, e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier::new(
            client_anchors,
            clock.0,
            algs,
            expect_server_id,
        )))
        .with_client_auth_cert(client_chain, client_key)
        .map_err(|e| key_err(Input::ClientKey, e))?;
    let server_config = ServerConfig::builder_with_details(provider.clone(), clock.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_err(Side::Server, e))?
        .with_client_cert_verifier(Arc::new(MeshClientVerifier::new(
            server_anchors,
            clock.0,
            algs,
        )))
        .with_single_cert(server_chain, server_key)
        .map_err(|e| key_err(Input::ServerKey, e))?;

    // The name is never checked (the verifier matches the SPIFFE URI SAN) and not sent.
    client_config.enable_sni = false;
    let name =
        ServerName::try_from("workload.mesh.invalid").map_err(|e| config_err(Side::Client, e))?;
    let mut client_conn = ClientConnection::new(Arc::new(client_config), name)
        .map_err(|e| config_err(Side::Client, e))?;
    let mut server_conn =
        ServerConnection::new(Arc::new(server_config)).map_err(|e| config_err(Side::Server, e))?;

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
