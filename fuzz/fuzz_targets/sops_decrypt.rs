//! The SOPS reader on arbitrary text, with the published demo identity (plans/demo.agekey),
//! so inputs built from the corpus's real files reach the MAC and value checks.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn identity() -> &'static age::x25519::Identity {
    static ID: OnceLock<age::x25519::Identity> = OnceLock::new();
    ID.get_or_init(|| {
        include_str!("../../plans/demo.agekey")
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .expect("the demo key file holds an identity")
            .parse()
            .expect("the demo identity parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = rootroll::sops::is_encrypted(text);
    if let Ok(plain) =
        rootroll::sops::decrypt_yaml("fuzz.sops.yaml", text, std::slice::from_ref(identity()))
    {
        // What decrypts is YAML rootroll can read again.
        let _ = rootroll::sops::is_encrypted(&plain);
    }
});
