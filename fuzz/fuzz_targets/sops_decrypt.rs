//! The SOPS reader (YAML, metadata, MAC, values) on arbitrary text, with the published demo
//! identity (plans/demo.agekey), so inputs built from the corpus's real files reach the MAC and
//! value checks.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let _ = rootroll::sops::is_encrypted(text);
        let _ = rootroll::sops::public_part(text);
        if let Ok(plain) = rootroll::sops::decrypt_yaml(
            "fuzz.sops.yaml",
            text,
            std::slice::from_ref(rootroll_fuzz::demo_identity()),
        ) {
            // What decrypts is YAML rootroll can read again.
            let _ = rootroll::sops::is_encrypted(&plain);
        }
    });
}
