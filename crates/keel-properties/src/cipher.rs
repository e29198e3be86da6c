//! `{cipher}` values: Spring Security's `Encryptors.text(password, salt)` and the server-side decryption pass.
//!
//! The scheme: PBKDF2WithHmacSHA1 (1024 iterations, 256-bit key) over the hex-decoded salt,
//! AES-256/CBC/PKCS5Padding with a random 16-byte IV prepended, the whole hex-encoded.

use std::sync::Arc;

use aes::Aes256;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut as _, BlockEncryptMut as _, KeyIvInit as _};
use sha1::Sha1;

use crate::environment::Environment;
use crate::value::Value;

const CIPHER_PREFIX: &str = "{cipher}";
const DEFAULT_SALT_HEX: &str = "deadbeef";
const ITERATIONS: u32 = 1024;
const IV_LEN: usize = 16;

/// Why a value could not be encrypted or decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    /// The cipher text is not hex, or too short, or not whole AES blocks.
    #[error("cipher text is not hex-encoded IV + AES blocks")]
    Malformed,
    /// Padding check failed: wrong key or corrupted text ("Text not encrypted with this key").
    #[error("text not encrypted with this key")]
    WrongKey,
    /// The plain text is not UTF-8 (Spring would produce replacement characters; we refuse).
    #[error("decrypted text is not valid UTF-8")]
    NotUtf8,
    /// The salt is not hex.
    #[error("salt is not hex-encoded")]
    BadSalt,
    /// No randomness available for the IV.
    #[error("no randomness for the IV: {0}")]
    Random(String),
}

/// Turns the body of a `{cipher}` value (prefixes already stripped) into plain text.
pub trait Decryptor: Send + Sync {
    /// Decrypts `cipher_text`.
    fn decrypt(&self, cipher_text: &str) -> Result<String, CipherError>;
}

/// Turns plain text into the body of a `{cipher}` value (for `POST /encrypt`).
pub trait Encryptor: Send + Sync {
    /// Encrypts `plain_text`.
    fn encrypt(&self, plain_text: &str) -> Result<String, CipherError>;
}

/// Spring's `Encryptors.text(password, salt)`: the symmetric `encrypt.key` scheme.
#[derive(Clone)]
pub struct TextEncryptor {
    key: [u8; 32],
}

impl std::fmt::Debug for TextEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TextEncryptor { key: <redacted> }")
    }
}

impl TextEncryptor {
    /// A text encryptor for `password` with Spring's default salt `deadbeef`.
    pub fn new(password: &str) -> Self {
        // Invariant: the default salt is valid hex.
        Self::with_salt(password, DEFAULT_SALT_HEX).expect("default salt is hex")
    }

    /// A text encryptor for `password` and a hex `salt` (`encrypt.salt`).
    pub fn with_salt(password: &str, salt_hex: &str) -> Result<Self, CipherError> {
        let salt = hex::decode(salt_hex).map_err(|_| CipherError::BadSalt)?;
        let mut key = [0u8; 32];
        // Java's PBEKeySpec feeds the password chars to HMAC as UTF-8.
        pbkdf2::pbkdf2_hmac::<Sha1>(password.as_bytes(), &salt, ITERATIONS, &mut key);
        Ok(Self { key })
    }

    /// Encrypts with an explicit IV (tests pin vectors with this).
    pub fn encrypt_with_iv(&self, plain_text: &str, iv: [u8; IV_LEN]) -> String {
        let enc = cbc::Encryptor::<Aes256>::new(&self.key.into(), &iv.into());
        let ct = enc.encrypt_padded_vec_mut::<Pkcs7>(plain_text.as_bytes());
        let mut out = Vec::with_capacity(IV_LEN + ct.len());
        out.extend_from_slice(&iv);
        out.extend_from_slice(&ct);
        hex::encode(out)
    }
}

impl Decryptor for TextEncryptor {
    fn decrypt(&self, cipher_text: &str) -> Result<String, CipherError> {
        let bytes = hex::decode(cipher_text.trim()).map_err(|_| CipherError::Malformed)?;
        if bytes.len() < 2 * IV_LEN || bytes.len() % IV_LEN != 0 {
            return Err(CipherError::Malformed);
        }
        let (iv, ct) = bytes.split_at(IV_LEN);
        let dec = cbc::Decryptor::<Aes256>::new_from_slices(&self.key, iv)
            .map_err(|_| CipherError::Malformed)?;
        let plain = dec
            .decrypt_padded_vec_mut::<Pkcs7>(ct)
            .map_err(|_| CipherError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| CipherError::NotUtf8)
    }
}

impl Encryptor for TextEncryptor {
    fn encrypt(&self, plain_text: &str) -> Result<String, CipherError> {
        let mut iv = [0u8; IV_LEN];
        getrandom::fill(&mut iv).map_err(|e| CipherError::Random(e.to_string()))?;
        Ok(self.encrypt_with_iv(plain_text, iv))
    }
}

/// Drops `{name:value}` prefixes (`{key:alias}`, `{secret:…}`) before the cipher text, as
/// `EnvironmentPrefixHelper.stripPrefix` does; `{plain}` ends the prefixes explicitly.
pub fn strip_cipher_prefixes(value: &str) -> &str {
    if !value.contains('}') {
        return value;
    }
    if let Some(i) = value.find("{plain}") {
        return &value[i + "{plain}".len()..];
    }
    value.rfind('}').map_or(value, |i| &value[i + 1..])
}

impl Environment {
    /// Replaces every `{cipher}…` value with its plain text, as `CipherEnvironmentEncryptor`
    /// does: the key moves to the end of its source; a value that fails becomes
    /// `invalid.<key>` = `<n/a>`.
    pub fn decrypt(&mut self, decryptor: &dyn Decryptor) {
        for ps in &mut self.property_sources {
            if !ps.source.values().any(is_cipher) {
                continue;
            }
            let map = Arc::make_mut(&mut ps.source);
            let keys: Vec<String> = map
                .iter()
                .filter(|(_, v)| is_cipher(v))
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                let Some(Value::String(text)) = map.shift_remove(&key) else {
                    continue;
                };
                let body = strip_cipher_prefixes(&text[CIPHER_PREFIX.len()..]);
                match decryptor.decrypt(body) {
                    Ok(plain) => map.insert(key, Value::String(plain)),
                    Err(_) => {
                        map.insert(format!("invalid.{key}"), Value::String("<n/a>".to_owned()))
                    }
                };
            }
        }
    }
}

pub(crate) fn is_cipher(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.starts_with(CIPHER_PREFIX))
}

/// The cipher body of a `{cipher}` value, prefixes stripped.
pub(crate) fn cipher_body(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => s.strip_prefix(CIPHER_PREFIX).map(strip_cipher_prefixes),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPRING_VECTOR: &str = "762c11829d517b203ac94a0180f1950b133b83cde34296549d8fed611a9b2fb5";

    #[test]
    fn decrypts_spring_made_vector() {
        assert_eq!(
            TextEncryptor::new("foo").decrypt(SPRING_VECTOR).unwrap(),
            "foo"
        );
        assert_eq!(
            TextEncryptor::new("foo")
                .decrypt(&SPRING_VECTOR.to_uppercase())
                .unwrap(),
            "foo"
        );
    }

    #[test]
    fn wrong_key_and_garbage_fail() {
        assert!(TextEncryptor::new("bar").decrypt(SPRING_VECTOR).is_err());
        assert_eq!(
            TextEncryptor::new("foo").decrypt("zz"),
            Err(CipherError::Malformed)
        );
        assert_eq!(
            TextEncryptor::new("foo").decrypt("00ff"),
            Err(CipherError::Malformed)
        );
    }

    #[test]
    fn round_trips_with_random_iv() {
        let e = TextEncryptor::new("s3cret");
        let a = e.encrypt("hello wörld").unwrap();
        let b = e.encrypt("hello wörld").unwrap();
        assert_ne!(a, b, "IV must be random");
        assert_eq!(e.decrypt(&a).unwrap(), "hello wörld");
    }

    #[test]
    fn non_utf8_plaintext_is_a_failure() {
        let e = TextEncryptor::new("k");
        let enc = cbc::Encryptor::<Aes256>::new(&e.key.into(), &[7u8; 16].into());
        let ct = enc.encrypt_padded_vec_mut::<Pkcs7>(&[0xff, 0xfe]);
        let text = hex::encode([[7u8; 16].as_slice(), &ct].concat());
        assert_eq!(e.decrypt(&text), Err(CipherError::NotUtf8));
    }

    #[test]
    fn prefixes_are_stripped() {
        assert_eq!(strip_cipher_prefixes("{key:k1}{secret:s}abc"), "abc");
        assert_eq!(strip_cipher_prefixes("{plain}{x}"), "{x}");
        assert_eq!(strip_cipher_prefixes("abc"), "abc");
    }
}
