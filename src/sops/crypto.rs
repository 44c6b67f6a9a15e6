//! Key material and ciphers: the per-file data key, AES-256-GCM values with sops' 32-byte IVs,
//! and age wrapping of the data key. No type here implements `Debug`.

use aes_gcm::aead::consts::{U12, U32};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use super::format::EncParts;

/// AES-256-GCM with the 32-byte nonce sops uses.
type Aes256Gcm32 = AesGcm<Aes256, U32>;
/// AES-256-GCM with the standard 12-byte nonce (accepted on decrypt only).
type Aes256Gcm12 = AesGcm<Aes256, U12>;

const TAG_LEN: usize = 16;

/// The 32-byte per-file data key. Wiped on drop; deliberately not `Debug` or `Clone`.
pub(crate) struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh key from the OS RNG.
    pub(crate) fn generate() -> Result<DataKey, getrandom::Error> {
        let mut k = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut k[..])?;
        Ok(DataKey(k))
    }

    /// A key from decrypted bytes; None unless exactly 32 bytes.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<DataKey> {
        let mut k = Zeroizing::new([0u8; 32]);
        if bytes.len() != 32 {
            return None;
        }
        k.copy_from_slice(bytes);
        Some(DataKey(k))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Why a value could not be decrypted.
pub(crate) enum ValueError {
    /// Bad base64, IV length or tag length.
    Malformed(&'static str),
    /// The AEAD tag did not verify (wrong key, wrong AAD, modified ciphertext).
    Auth,
}

/// Encrypt one value: `ENC[AES256_GCM,data:..,iv:..,tag:..,type:<ty>]` with a fresh 32-byte IV.
pub(crate) fn encrypt_value(
    key: &DataKey,
    plaintext: &[u8],
    aad: &[u8],
    ty: &str,
) -> Result<String, EncryptValueError> {
    let mut iv = [0u8; 32];
    getrandom::fill(&mut iv).map_err(EncryptValueError::Random)?;
    let cipher = Aes256Gcm32::new_from_slice(key.bytes()).map_err(|_| EncryptValueError::Cipher)?;
    let sealed = cipher
        .encrypt(
            Nonce::<U32>::from_slice(&iv),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| EncryptValueError::Cipher)?;
    let (data, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    Ok(format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{ty}]",
        B64.encode(data),
        B64.encode(iv),
        B64.encode(tag)
    ))
}

/// Failure to encrypt a value.
pub(crate) enum EncryptValueError {
    Random(getrandom::Error),
    Cipher,
}

/// Decrypt the parts of an `ENC[...]` value. The result is wiped on drop.
pub(crate) fn decrypt_value(
    key: &DataKey,
    parts: &EncParts<'_>,
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ValueError> {
    let data = B64
        .decode(parts.data)
        .map_err(|_| ValueError::Malformed("its data is not valid base64"))?;
    let iv = B64
        .decode(parts.iv)
        .map_err(|_| ValueError::Malformed("its iv is not valid base64"))?;
    let tag = B64
        .decode(parts.tag)
        .map_err(|_| ValueError::Malformed("its tag is not valid base64"))?;
    if tag.len() != TAG_LEN {
        return Err(ValueError::Malformed("its tag is not 16 bytes"));
    }
    let mut sealed = data;
    sealed.extend_from_slice(&tag);
    let payload = Payload { msg: &sealed, aad };
    let plain = match iv.len() {
        32 => Aes256Gcm32::new_from_slice(key.bytes())
            .map_err(|_| ValueError::Auth)?
            .decrypt(Nonce::<U32>::from_slice(&iv), payload),
        12 => Aes256Gcm12::new_from_slice(key.bytes())
            .map_err(|_| ValueError::Auth)?
            .decrypt(Nonce::<U12>::from_slice(&iv), payload),
        _ => return Err(ValueError::Malformed("its iv is neither 32 nor 12 bytes")),
    };
    plain.map(Zeroizing::new).map_err(|_| ValueError::Auth)
}

/// Encrypt the raw data key to one age recipient, ASCII-armored with `\n` line endings.
pub(crate) fn wrap_key(
    recipient: &age::x25519::Recipient,
    key: &DataKey,
) -> Result<String, age::EncryptError> {
    let armored = age::encrypt_and_armor(recipient, key.bytes())?;
    Ok(armored.replace("\r\n", "\n"))
}

/// Try to decrypt one armored age file with an identity. The plaintext is wiped on drop.
pub(crate) fn unwrap_key(
    identity: &age::x25519::Identity,
    armored: &str,
) -> Option<Zeroizing<Vec<u8>>> {
    age::decrypt(identity, armored.trim().as_bytes())
        .ok()
        .map(Zeroizing::new)
}
