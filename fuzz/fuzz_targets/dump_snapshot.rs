//! `verify live --from-dump DIR` on arbitrary directories: the input is a packed dump
//! (`rootroll_fuzz::unpack`), written to a scratch directory and read back by
//! `verify::dump::snapshot`; every proxy dump read (and every file that is JSON) then goes
//! through `envoy_secrets` and `ztunnel_certs`, and the snapshot through the gates.

use std::collections::BTreeSet;

use rootroll::verify::live;

fn main() {
    let now = time::macros::datetime!(2027-01-01 00:00 UTC);
    let expect = live::Expectation {
        cluster: "fuzz".into(),
        phase: 3,
        ambient: true,
        secret_name: "cacerts".into(),
        format: rootroll::plan::SecretFormat::Istiod,
        public_sha256: "0".repeat(64),
        bundle_sha256: "0".repeat(64),
        roots: BTreeSet::from(["0".repeat(64)]),
        new_skid: Some("00".into()),
        current_skid: Some("01".into()),
        min_soak: rootroll::duration::Span::from_secs(3600),
        proven_soak: Some(rootroll::duration::Span::from_secs(1020)),
        dir: "3-switch-issuer".into(),
        new_issuer: true,
        exact_roots: false,
        ztunnel_restart: true,
    };
    afl::fuzz!(|data: &[u8]| {
        let files = rootroll_fuzz::unpack(data);
        let dir = rootroll_fuzz::scratch();
        rootroll_fuzz::write_unpacked(&dir, &files);
        let snap = rootroll::verify::dump::snapshot(&dir, "istio-system", "cacerts");
        for p in &snap.proxies {
            if let Ok(v) = &p.dump {
                let _ = live::envoy_secrets(v);
                let _ = live::ztunnel_certs(v);
            }
        }
        for (_, contents) in &files {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(contents) {
                let _ = live::envoy_secrets(&v);
                let _ = live::ztunnel_certs(&v);
            }
        }
        let report = live::gates(&snap, &expect, now);
        let _ = format!("{report:?}");
    });
}
