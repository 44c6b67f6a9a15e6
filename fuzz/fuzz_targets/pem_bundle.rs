//! The PEM bundle parser on arbitrary bytes, and the summary of every certificate it accepts.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(ders) = rootroll::pki::split_certificates(data) {
            assert!(!ders.is_empty(), "an accepted bundle holds a certificate");
            for der in &ders {
                let _ = rootroll::pki::inspect_der(der);
                let _ = rootroll::pki::is_signed_by(der, der);
            }
            let _ = rootroll::pki::chains_to(&ders[0], &ders[1..], &ders);
        }
    });
}
