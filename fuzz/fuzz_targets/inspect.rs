//! `rootroll inspect FILE`: every certificate of arbitrary bytes summarized and printed, blocks
//! of other kinds noted.

fn main() {
    let now = time::macros::datetime!(2027-01-01 00:00 UTC);
    afl::fuzz!(|data: &[u8]| {
        if let Ok((certs, _skipped)) = rootroll::pki::inspect_pem(data) {
            assert!(!certs.is_empty(), "an accepted file shows a certificate");
            for c in &certs {
                let _ = c.to_text();
                let _ = c.valid_at(now);
            }
        }
    });
}
