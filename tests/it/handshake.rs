//! Real mutual-TLS handshakes between simulated workloads across a root rotation.
//!
//! Roots A and B are ECDSA P-256 with distinct subjects, R is RSA-2048; each has a
//! `CA:true, pathlen:0` intermediate, and `cert-chain.pem` is intermediate + root, as the
//! Makefiles build it. All certs are valid around a fixed clock `NOW`, so nothing here depends
//! on the wall clock.

use std::sync::LazyLock;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, RsaKeySize,
};
use rootroll::handshake::{
    HandshakeCache, HandshakeError, Input, LeafSpec, Rejection, Side, Workload, issue_workload,
    mutual_tls,
};
use time::{Duration, OffsetDateTime};

/// 2027-01-15T08:00:00Z.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid timestamp")
}

#[derive(Clone, Copy)]
enum Alg {
    P256,
    Rsa2048,
}

struct Ca {
    cert_pem: String,
    key_pem: String,
}

fn ca(alg: Alg, subject: &[(DnType, &str)], parent: Option<&Ca>) -> Ca {
    ca_with(alg, subject, parent, true)
}

/// `ca`, choosing whether an intermediate carries an authority key identifier (Istio's
/// Makefile run with OpenSSL 1.1.1 wrote none).
fn ca_with(alg: Alg, subject: &[(DnType, &str)], parent: Option<&Ca>, akid: bool) -> Ca {
    let key = match alg {
        Alg::P256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
        Alg::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
    }
    .expect("keygen");
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    for (ty, value) in subject {
        params.distinguished_name.push(ty.clone(), *value);
    }
    params.not_before = now() - Duration::days(1);
    params.not_after = now() + Duration::days(365);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let cert = match parent {
        None => {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.self_signed(&key).expect("self-sign")
        }
        Some(parent) => {
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.use_authority_key_identifier_extension = akid;
            let parent_key = KeyPair::from_pem(&parent.key_pem).expect("parent key");
            let issuer = Issuer::from_ca_cert_pem(&parent.cert_pem, parent_key).expect("issuer");
            params.signed_by(&key, &issuer).expect("sign")
        }
    };
    Ca {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn root(alg: Alg, name: &str) -> Ca {
    ca(
        alg,
        &[
            (DnType::OrganizationName, "Istio"),
            (DnType::CommonName, name),
        ],
        None,
    )
}

fn intermediate(alg: Alg, parent: &Ca, cluster: &str) -> Ca {
    ca(
        alg,
        &[
            (DnType::OrganizationName, "Istio"),
            (DnType::CommonName, "Intermediate CA"),
            (DnType::LocalityName, cluster),
        ],
        Some(parent),
    )
}

/// One signing CA as a `cacerts` Secret carries it: intermediate, and its root.
struct Signer {
    int: Ca,
    root_pem: String,
}

impl Signer {
    fn cert_chain(&self) -> String {
        format!("{}{}", self.int.cert_pem, self.root_pem)
    }
}

struct Pki {
    root_a: String,
    root_b: String,
    root_r: String,
    /// P-256 intermediate under A.
    a: Signer,
    /// P-256 intermediate under B.
    b: Signer,
    /// RSA-2048 intermediate under RSA-2048 root R.
    r: Signer,
    /// RSA-2048 intermediate under P-256 root A.
    a_rsa: Signer,
}

static PKI: LazyLock<Pki> = LazyLock::new(|| {
    let root_a = root(Alg::P256, "Root CA A");
    let root_b = root(Alg::P256, "Root CA B");
    let root_r = root(Alg::Rsa2048, "Root CA R");
    let signer = |alg, root: &Ca, name| Signer {
        int: intermediate(alg, root, name),
        root_pem: root.cert_pem.clone(),
    };
    Pki {
        a: signer(Alg::P256, &root_a, "intermediateA"),
        b: signer(Alg::P256, &root_b, "intermediateB"),
        r: signer(Alg::Rsa2048, &root_r, "intermediateR"),
        a_rsa: signer(Alg::Rsa2048, &root_a, "intermediateA-rsa"),
        root_a: root_a.cert_pem,
        root_b: root_b.cert_pem,
        root_r: root_r.cert_pem,
    }
});

fn spec(namespace: &str, service_account: &str) -> LeafSpec {
    LeafSpec {
        trust_domain: "cluster.local".into(),
        namespace: namespace.into(),
        service_account: service_account.into(),
    }
}

fn issue(spec: &LeafSpec, signer: &Signer, root_bundle: &str, at: OffsetDateTime) -> Workload {
    issue_workload(
        spec,
        &signer.int.cert_pem,
        &signer.int.key_pem,
        signer.cert_chain().as_bytes(),
        root_bundle.as_bytes(),
        at,
    )
    .unwrap_or_else(|e| panic!("issue {}: {e}", spec.spiffe_id()))
}

fn client() -> LeafSpec {
    spec("shop", "frontend")
}

fn server() -> LeafSpec {
    spec("shop", "cart")
}

/// Handshake `c` → `s` with the given trust bundles, expecting the server's real identity.
fn tls(c: &Workload, c_trust: &str, s: &Workload, s_trust: &str) -> Result<(), HandshakeError> {
    mutual_tls(
        c,
        c_trust.as_bytes(),
        s,
        s_trust.as_bytes(),
        &server().spiffe_id(),
        now(),
    )
}

fn assert_rejected(result: Result<(), HandshakeError>, by: Side, reason: &Rejection) {
    match result {
        Err(HandshakeError::Rejected {
            by: got_by,
            reason: got,
        }) => {
            assert_eq!((got_by, &got), (by, reason));
        }
        other => panic!("expected {by} to reject with {reason}, got {other:?}"),
    }
}

// 1. Same root on both sides.
#[test]
fn same_root_handshake_succeeds() {
    let pki = &*PKI;
    let c = issue(&client(), &pki.a, &pki.root_a, now());
    let s = issue(&server(), &pki.a, &pki.root_a, now());
    tls(&c, &pki.root_a, &s, &pki.root_a).expect("A <-> A trusting A");
}

// 2. A leaf against a peer that trusts only B: refused, by the right side, as unknown issuer.
#[test]
fn client_trusting_only_b_rejects_a_server() {
    let pki = &*PKI;
    let c = issue(&client(), &pki.b, &pki.root_b, now());
    let s = issue(&server(), &pki.a, &pki.root_a, now());
    let result = tls(&c, &pki.root_b, &s, &pki.root_a);
    let err = result.as_ref().expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "client rejected server: unknown issuer (peer chain does not lead to a trusted root)"
    );
    assert_rejected(result, Side::Client, &Rejection::UnknownIssuer);
}

#[test]
fn server_trusting_only_b_rejects_an_a_client() {
    let pki = &*PKI;
    let c = issue(&client(), &pki.a, &pki.root_a, now());
    let s = issue(&server(), &pki.b, &pki.root_b, now());
    // The client trusts B, so it accepts the server; the server trusts only B.
    let result = tls(&c, &pki.root_b, &s, &pki.root_b);
    let err = result.as_ref().expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "server rejected client: unknown issuer (peer chain does not lead to a trusted root)"
    );
    assert_rejected(result, Side::Server, &Rejection::UnknownIssuer);
}

// 3. Phase 2/3 coexistence: A and B leaves meet while everyone trusts A+B (or A+B+B).
#[test]
fn mixed_a_and_b_leaves_interoperate_when_both_roots_are_trusted() {
    let pki = &*PKI;
    let ab = format!("{}{}", pki.root_a, pki.root_b);
    let abb = format!("{}{}{}", pki.root_a, pki.root_b, pki.root_b);
    // Phase 2 workloads still hold A leaves; phase 3 workloads already hold B leaves.
    let a_client = issue(&client(), &pki.a, &ab, now());
    let a_server = issue(&server(), &pki.a, &ab, now());
    let b_client = issue(&client(), &pki.b, &abb, now());
    let b_server = issue(&server(), &pki.b, &abb, now());
    for trust in [&ab, &abb] {
        tls(&a_client, trust, &b_server, trust).expect("A client -> B server");
        tls(&b_client, trust, &a_server, trust).expect("B client -> A server");
        tls(&a_client, trust, &a_server, trust).expect("A client -> A server");
        tls(&b_client, trust, &b_server, trust).expect("B client -> B server");
    }
    // Each side may be on a different phase's bundle.
    tls(&a_client, &ab, &b_server, &abb).expect("A+B client -> A+B+B server");
}

// 4a. An expired leaf, checked an hour after it lapsed.
#[test]
fn expired_server_leaf_is_rejected_by_the_client() {
    let pki = &*PKI;
    let issued = now() - Duration::hours(2);
    let c = issue(&client(), &pki.a, &pki.root_a, now());
    let s = issue(&server(), &pki.a, &pki.root_a, issued);
    let result = tls(&c, &pki.root_a, &s, &pki.root_a);
    assert_eq!(
        result.as_ref().err().map(ToString::to_string).as_deref(),
        Some(
            "client rejected server: certificate expired \
             (not after 2027-01-15T07:00:00Z, checked at 2027-01-15T08:00:00Z)"
        )
    );
    assert_rejected(
        result,
        Side::Client,
        &Rejection::Expired {
            not_after: Some(issued + Duration::hours(1)),
            at: Some(now()),
        },
    );
}

#[test]
fn expired_client_leaf_is_rejected_by_the_server() {
    let pki = &*PKI;
    let c = issue(&client(), &pki.a, &pki.root_a, now() - Duration::days(1));
    let s = issue(&server(), &pki.a, &pki.root_a, now());
    let result = tls(&c, &pki.root_a, &s, &pki.root_a);
    assert!(matches!(
        result,
        Err(HandshakeError::Rejected {
            by: Side::Server,
            reason: Rejection::Expired { .. }
        })
    ));
}

#[test]
fn leaf_from_the_future_is_not_yet_valid() {
    let pki = &*PKI;
    let c = issue(&client(), &pki.a, &pki.root_a, now());
    let s = issue(
        &server(),
        &pki.a,
        &pki.root_a,
        now() + Duration::minutes(10),
    );
    let result = tls(&c, &pki.root_a, &s, &pki.root_a);
    assert_rejected(
        result,
        Side::Client,
        &Rejection::NotYetValid {
            not_before: Some(now() + Duration::minutes(8)),
            at: Some(now()),
        },
    );
    // The istiod-style two-minute backdate absorbs small skew.
    let s = issue(&server(), &pki.a, &pki.root_a, now() + Duration::minutes(1));
    tls(&c, &pki.root_a, &s, &pki.root_a).expect("one minute of skew is tolerated");
}

// 4b. The chain is fine but the server is not who the client dialled.
#[test]
fn wrong_spiffe_id_is_a_mismatch() {
    let pki = &*PKI;
    let c = issue(&client(), &pki.a, &pki.root_a, now());
    let s = issue(&server(), &pki.a, &pki.root_a, now());
    let want = "spiffe://cluster.local/ns/shop/sa/payments";
    let result = mutual_tls(
        &c,
        pki.root_a.as_bytes(),
        &s,
        pki.root_a.as_bytes(),
        want,
        now(),
    );
    let err = result.as_ref().expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "client rejected server: spiffe id mismatch (expected \
         spiffe://cluster.local/ns/shop/sa/payments, presented \
         spiffe://cluster.local/ns/shop/sa/cart)"
    );
    assert_rejected(
        result,
        Side::Client,
        &Rejection::SpiffeIdMismatch {
            expected: want.into(),
            presented: vec![server().spiffe_id()],
        },
    );
    // A different trust domain is a different identity too.
    let other_td = LeafSpec {
        trust_domain: "other.local".into(),
        ..server()
    };
    let s = issue(&other_td, &pki.a, &pki.root_a, now());
    assert!(matches!(
        tls(&c, &pki.root_a, &s, &pki.root_a),
        Err(HandshakeError::Rejected {
            by: Side::Client,
            reason: Rejection::SpiffeIdMismatch { .. }
        })
    ));
}

// 5. RSA intermediates signing ECDSA leaves, under an RSA root and under an ECDSA root.
#[test]
fn rsa_intermediate_signs_ecdsa_leaves() {
    let pki = &*PKI;
    let c = issue(&client(), &pki.r, &pki.root_r, now());
    let s = issue(&server(), &pki.r, &pki.root_r, now());
    tls(&c, &pki.root_r, &s, &pki.root_r).expect("RSA root + RSA intermediate");

    let rsa_client = issue(&client(), &pki.a_rsa, &pki.root_a, now());
    let ecdsa_server = issue(&server(), &pki.a, &pki.root_a, now());
    tls(&rsa_client, &pki.root_a, &ecdsa_server, &pki.root_a)
        .expect("ECDSA root + RSA intermediate client");
    let ecdsa_client = issue(&client(), &pki.a, &pki.root_a, now());
    let rsa_server = issue(&server(), &pki.a_rsa, &pki.root_a, now());
    tls(&ecdsa_client, &pki.root_a, &rsa_server, &pki.root_a)
        .expect("ECDSA root + RSA intermediate server");

    // RSA and ECDSA hierarchies side by side, as a rotation between algorithms would have.
    let ar = format!("{}{}", pki.root_a, pki.root_r);
    let c = issue(&client(), &pki.r, &ar, now());
    let s = issue(&server(), &pki.a, &ar, now());
    tls(&c, &ar, &s, &ar).expect("RSA client -> ECDSA server");
    let c = issue(&client(), &pki.a, &ar, now());
    let s = issue(&server(), &pki.r, &ar, now());
    tls(&c, &ar, &s, &ar).expect("ECDSA client -> RSA server");
}

// 6. Envoy's phase-3 chain: leaf, intermediate B, root B, then the bundle A, B, B.
#[test]
fn phase_three_chain_with_duplicated_and_extra_roots_verifies() {
    let pki = &*PKI;
    let abb = format!("{}{}{}", pki.root_a, pki.root_b, pki.root_b);
    let s = issue(&server(), &pki.b, &abb, now());
    let certs = pem::parse_many(&s.chain_pem).expect("chain");
    assert_eq!(certs.len(), 6, "leaf + intermediate + root + A + B + B");

    let c = issue(&client(), &pki.b, &abb, now());
    tls(&c, &pki.root_b, &s, &pki.root_b).expect("trusting only B");
    tls(&c, &abb, &s, &abb).expect("trusting A+B+B");

    // Root A riding along in the chain is not trust: a client that trusts only A still refuses.
    let old = issue(&client(), &pki.a, &pki.root_a, now());
    assert_rejected(
        tls(&old, &pki.root_a, &s, &abb),
        Side::Client,
        &Rejection::UnknownIssuer,
    );
    // And the same from the server's side, against a phase-3 client.
    let old_server = issue(&server(), &pki.a, &pki.root_a, now());
    assert_rejected(
        tls(&c, &abb, &old_server, &pki.root_a),
        Side::Server,
        &Rejection::UnknownIssuer,
    );
}

/// Two roots with the DN Istio's Makefile gives every root, each with an intermediate that
/// carries an authority key identifier or not.
fn makefile_roots(akid: bool) -> ((Ca, Signer), (Ca, Signer)) {
    let makefile_dn = [
        (DnType::OrganizationName, "Istio"),
        (DnType::CommonName, "Root CA"),
    ];
    let pair = |cluster: &str| {
        let root = ca(Alg::P256, &makefile_dn, None);
        let int_dn = [
            (DnType::OrganizationName, "Istio"),
            (DnType::CommonName, "Intermediate CA"),
            (DnType::LocalityName, cluster),
        ];
        let signer = Signer {
            int: ca_with(Alg::P256, &int_dn, Some(&root), akid),
            root_pem: root.cert_pem.clone(),
        };
        (root, signer)
    };
    (pair("old"), pair("new"))
}

// Istio's Makefile gives every root the same DN. Where the intermediate names its root by
// authority key identifier, BoringSSL (and so the matrix) never takes the other root for its
// issuer: a peer trusting only the other one has no path at all.
#[test]
fn same_named_roots_are_told_apart_by_the_intermediates_akid() {
    let ((old_root, old), (new_root, new)) = makefile_roots(true);
    let c = issue(&client(), &old, &old_root.cert_pem, now());
    let s = issue(&server(), &new, &new_root.cert_pem, now());
    assert_rejected(
        tls(&c, &old_root.cert_pem, &s, &new_root.cert_pem),
        Side::Client,
        &Rejection::UnknownIssuer,
    );
    for both in [
        format!("{}{}", old_root.cert_pem, new_root.cert_pem),
        format!("{}{}", new_root.cert_pem, old_root.cert_pem),
    ] {
        tls(&c, &both, &s, &both).expect("both same-named roots trusted, in either order");
    }
}

// Without an authority key identifier, BoringSSL takes the first root of the bundle with the
// intermediate's issuer name and never tries another: listed first, a same-named root that did
// not sign breaks the path (OpenSSL: error 7, certificate signature failure), although the
// real root is trusted too. rustls-webpki alone would try both and pass.
#[test]
fn a_same_named_root_listed_first_breaks_intermediates_without_akid() {
    let ((old_root, old), (new_root, new)) = makefile_roots(false);
    let old_first = format!("{}{}", old_root.cert_pem, new_root.cert_pem);
    let new_first = format!("{}{}", new_root.cert_pem, old_root.cert_pem);
    let old_c = issue(&client(), &old, &old_first, now());
    let old_s = issue(&server(), &old, &old_first, now());
    let new_c = issue(&client(), &new, &new_first, now());
    let new_s = issue(&server(), &new, &new_first, now());

    tls(&old_c, &old_first, &old_s, &old_first).expect("old leaves, old root first");
    tls(&new_c, &new_first, &new_s, &new_first).expect("new leaves, new root first");
    assert_rejected(
        tls(&old_c, &new_first, &old_s, &old_first),
        Side::Client,
        &Rejection::BadSignature,
    );
    assert_rejected(
        tls(&old_c, &old_first, &new_s, &new_first),
        Side::Client,
        &Rejection::BadSignature,
    );
    assert_rejected(
        tls(&new_c, &new_first, &new_s, &old_first),
        Side::Server,
        &Rejection::BadSignature,
    );
}

// The shared cache remembers chain verdicts and certificate signature checks across
// handshakes. With same-named roots, path building checks the intermediate's signature
// against both roots' keys: a check remembered for one key or one bundle order must not
// answer for the other, whether the cell runs a handshake or is judged by the verifiers.
#[test]
fn cached_handshakes_keep_same_subject_roots_apart() {
    let ((old_root, _), (new_root, new)) = makefile_roots(false);
    let c = issue(&client(), &new, &new_root.cert_pem, now());
    let s = issue(&server(), &new, &new_root.cert_pem, now());
    let new_first = format!("{}{}", new_root.cert_pem, old_root.cert_pem);
    let old_first = format!("{}{}", old_root.cert_pem, new_root.cert_pem);
    let only_old = old_root.cert_pem.clone();
    let cache = HandshakeCache::new(&server().spiffe_id(), now());
    for judge in [false, true] {
        let run = |c_trust: &str, s_trust: &str| {
            let (ct, st) = (c_trust.as_bytes(), s_trust.as_bytes());
            if judge {
                cache.judge(&c, ct, &s, st)
            } else {
                cache.mutual_tls(&c, ct, &s, st)
            }
        };
        run(&new_first, &new_first).expect("the signing root first");
        assert_rejected(
            run(&old_first, &new_first),
            Side::Client,
            &Rejection::BadSignature,
        );
        assert_rejected(
            run(&new_first, &old_first),
            Side::Server,
            &Rejection::BadSignature,
        );
        assert_rejected(
            run(&only_old, &new_first),
            Side::Client,
            &Rejection::BadSignature,
        );
        run(&new_first, &new_first).expect("the signing root first, again");
    }
}

// `judge` decides with the verifiers and runs one real handshake per pair of workloads; it must
// give exactly what a full handshake gives, for passing and failing cells alike, whatever
// order the cells come in.
#[test]
fn judged_cells_match_full_handshakes() {
    let pki = &*PKI;
    let ab = format!("{}{}", pki.root_a, pki.root_b);
    let a_c = issue(&client(), &pki.a, &ab, now());
    let b_c = issue(&client(), &pki.b, &ab, now());
    let a_s = issue(&server(), &pki.a, &ab, now());
    let b_s = issue(&server(), &pki.b, &ab, now());
    let stale_s = issue(&server(), &pki.a, &pki.root_a, now() - Duration::hours(3));
    let impostor = Workload {
        chain_pem: pki.a.cert_chain(),
        key_pem: pki.a.int.key_pem.clone(),
    };
    let swapped = Workload {
        chain_pem: a_c.chain_pem.clone(),
        key_pem: b_c.key_pem.clone(),
    };
    let clients = [&a_c, &b_c, &swapped];
    let servers = [&a_s, &b_s, &stale_s, &impostor];
    let bundles = [pki.root_a.as_str(), pki.root_b.as_str(), ab.as_str(), ""];
    let cache = HandshakeCache::new(&server().spiffe_id(), now());
    let wrong_id = HandshakeCache::new("spiffe://cluster.local/ns/shop/sa/other", now());
    let describe = |r: Result<(), HandshakeError>| r.map_err(|e| (e.rejected_by(), e.to_string()));
    let (mut ok, mut failed) = (0, 0);
    // Twice over, so the second round meets every pair already handshaken or refused.
    for _ in 0..2 {
        for c in clients {
            for ct in bundles {
                for s in servers {
                    for st in bundles {
                        let (ctb, stb) = (ct.as_bytes(), st.as_bytes());
                        let full = describe(tls(c, ct, s, st));
                        assert_eq!(describe(cache.judge(c, ctb, s, stb)), full);
                        let full_wrong = describe(mutual_tls(
                            c,
                            ctb,
                            s,
                            stb,
                            "spiffe://cluster.local/ns/shop/sa/other",
                            now(),
                        ));
                        assert_eq!(describe(wrong_id.judge(c, ctb, s, stb)), full_wrong);
                        if full.is_ok() {
                            ok += 1;
                        } else {
                            failed += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(
        ok > 0 && failed > ok,
        "{ok} passing, {failed} failing cells compared"
    );
}

#[test]
fn ca_certificate_in_the_leaf_slot_is_refused() {
    let pki = &*PKI;
    let c = issue(&client(), &pki.a, &pki.root_a, now());
    let impostor = Workload {
        chain_pem: pki.a.cert_chain(),
        key_pem: pki.a.int.key_pem.clone(),
    };
    assert_rejected(
        tls(&c, &pki.root_a, &impostor, &pki.root_a),
        Side::Client,
        &Rejection::CaAsLeaf,
    );
}

#[test]
fn bad_inputs_name_the_input() {
    let pki = &*PKI;
    let c = issue(&client(), &pki.a, &pki.root_a, now());
    let s = issue(&server(), &pki.a, &pki.root_a, now());

    let swapped = Workload {
        chain_pem: c.chain_pem.clone(),
        key_pem: s.key_pem.clone(),
    };
    let err = tls(&swapped, &pki.root_a, &s, &pki.root_a).expect_err("key mismatch");
    assert!(matches!(
        err,
        HandshakeError::KeyMismatch {
            input: Input::ClientKey
        }
    ));
    assert_eq!(
        err.to_string(),
        "client workload key does not match its certificate"
    );

    let err = tls(&c, "", &s, &pki.root_a).expect_err("empty trust");
    assert_eq!(err.to_string(), "client trust bundle holds no certificate");

    let keyless = Workload {
        chain_pem: s.chain_pem.clone(),
        key_pem: "nope".into(),
    };
    let err = tls(&c, &pki.root_a, &keyless, &pki.root_a).expect_err("bad key");
    assert!(
        err.to_string()
            .starts_with("cannot use server workload key"),
        "{err}"
    );
}
