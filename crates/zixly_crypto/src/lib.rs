//! `zixly_crypto` — encryption of secrets at rest (OAuth access and refresh tokens).
//!
//! Layout:
//! - [`Keyring`]: the current key plus older keys kept only for decryption. `encrypt` always uses
//!   the current key; `decrypt` picks the key named in the ciphertext, so keys can rotate without
//!   a flag day (`zixly keys rotate` re-encrypts everything under the current key, after which the
//!   old keys can be dropped).
//! - [`SecretString`]: a string whose `Debug`/`Display` never show the value.
//! - [`keyfile`]: the embedded default's key file (`DIR/encryption.keys`, mode 0600).
//!
//! Ciphertext format (version 1), stored as `bytea`:
//! `[version u8 = 1][key id, 4 bytes][nonce, 12 bytes][AES-256-GCM ciphertext + 16-byte tag]`.
//! The nonce is random (96 bits from the OS RNG) for every encryption. The caller passes associated
//! data (e.g. `tenant/integration/access_token`) that is authenticated but not stored: a ciphertext
//! copied to another row or column fails to decrypt instead of silently becoming that row's secret.
//!
//! A key id is the first 4 bytes of SHA-256("zixly-key-id\0" || key): derived, so an operator only
//! ever handles keys, never ids, and the id reveals nothing usable about the key.
//!
//! Invariant: no secret (key or plaintext) appears in any `Debug`, `Display` or error message.

pub mod keyfile;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("encryption key must be 32 bytes encoded in base64 (got {0})")]
    BadKey(&'static str),
    #[error("ciphertext is malformed ({0})")]
    Malformed(&'static str),
    #[error("ciphertext was encrypted with key {0:08x}, which is not configured (was the key rotated away too early?)")]
    UnknownKey(u32),
    #[error(
        "ciphertext failed authentication (wrong key, tampered data or copied from another record)"
    )]
    Authentication,
    #[error("decrypted secret is not UTF-8")]
    NotUtf8,
}

/// A secret string: `Debug` and `Display` print `[redacted]`. Read it with [`SecretString::expose`],
/// only where it is sent to the party it belongs to.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl std::fmt::Display for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString(s)
    }
}

struct Key {
    id: u32,
    cipher: Aes256Gcm,
}

impl Key {
    fn new(bytes: &[u8; 32]) -> Key {
        Key {
            id: key_id(bytes),
            cipher: Aes256Gcm::new(bytes.into()),
        }
    }
}

/// The id of a key (see the crate docs).
pub fn key_id(key: &[u8; 32]) -> u32 {
    let digest = Sha256::new()
        .chain_update(b"zixly-key-id\0")
        .chain_update(key)
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A fresh random 256-bit key.
pub fn generate_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

/// Standard base64 of a key (the form of `ZIXLY_ENCRYPTION_KEY` and of key-file lines).
pub fn encode_key(key: &[u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// Parses a base64 key (standard alphabet, padding optional; surrounding whitespace ignored).
pub fn decode_key(text: &str) -> Result<[u8; 32], CryptoError> {
    let text = text.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .map_err(|_| CryptoError::BadKey("not base64"))?;
    bytes
        .try_into()
        .map_err(|_| CryptoError::BadKey("wrong length"))
}

/// The keys in use: one current key (encrypts) and older keys (decrypt only).
pub struct Keyring {
    current: Key,
    older: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let older: Vec<String> = self.older.iter().map(|k| format!("{:08x}", k.id)).collect();
        f.debug_struct("Keyring")
            .field("current", &format_args!("{:08x}", self.current.id))
            .field("older", &older)
            .finish()
    }
}

impl Keyring {
    pub fn new(current: &[u8; 32], older: &[[u8; 32]]) -> Keyring {
        let current = Key::new(current);
        let older = older
            .iter()
            .map(Key::new)
            .filter(|k| k.id != current.id)
            .collect();
        Keyring { current, older }
    }

    /// From base64 keys: `ZIXLY_ENCRYPTION_KEY` and the comma-separated `ZIXLY_ENCRYPTION_OLD_KEYS`.
    pub fn from_base64(current: &str, older: &str) -> Result<Keyring, CryptoError> {
        let current = decode_key(current)?;
        let older = older
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(decode_key)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Keyring::new(&current, &older))
    }

    pub fn current_key_id(&self) -> u32 {
        self.current.id
    }

    fn key(&self, id: u32) -> Option<&Key> {
        std::iter::once(&self.current)
            .chain(&self.older)
            .find(|k| k.id == id)
    }

    /// Encrypts `plaintext` under the current key with a fresh random nonce, binding `aad`.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .current
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encryption cannot fail for inputs below 64 GiB");
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&self.current.id.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn encrypt_str(&self, secret: &SecretString, aad: &[u8]) -> Vec<u8> {
        self.encrypt(secret.expose().as_bytes(), aad)
    }

    /// The key id a ciphertext names.
    pub fn key_id_of(ciphertext: &[u8]) -> Result<u32, CryptoError> {
        if ciphertext.len() < HEADER_LEN + TAG_LEN {
            return Err(CryptoError::Malformed("too short"));
        }
        if ciphertext[0] != VERSION {
            return Err(CryptoError::Malformed("unknown version"));
        }
        Ok(u32::from_be_bytes([
            ciphertext[1],
            ciphertext[2],
            ciphertext[3],
            ciphertext[4],
        ]))
    }

    pub fn decrypt(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let id = Self::key_id_of(ciphertext)?;
        let key = self.key(id).ok_or(CryptoError::UnknownKey(id))?;
        let nonce = Nonce::from_slice(&ciphertext[1 + KEY_ID_LEN..HEADER_LEN]);
        key.cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &ciphertext[HEADER_LEN..],
                    aad,
                },
            )
            .map_err(|_| CryptoError::Authentication)
    }

    pub fn decrypt_str(&self, ciphertext: &[u8], aad: &[u8]) -> Result<SecretString, CryptoError> {
        let bytes = self.decrypt(ciphertext, aad)?;
        String::from_utf8(bytes)
            .map(SecretString)
            .map_err(|_| CryptoError::NotUtf8)
    }

    /// True when `ciphertext` is not under the current key (rotation must re-encrypt it).
    pub fn needs_reencryption(&self, ciphertext: &[u8]) -> bool {
        Self::key_id_of(ciphertext) != Ok(self.current.id)
    }

    /// Decrypts with whichever key applies and encrypts again under the current key.
    pub fn reencrypt(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let plain = self.decrypt(ciphertext, aad)?;
        Ok(self.encrypt(&plain, aad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let key = generate_key();
        let ring = Keyring::new(&key, &[]);
        let ct = ring.encrypt(b"refresh-token-value", b"t/i/refresh");
        assert_eq!(ct[0], 1);
        assert_eq!(
            u32::from_be_bytes(ct[1..5].try_into().unwrap()),
            key_id(&key)
        );
        assert_eq!(
            ct.len(),
            HEADER_LEN + b"refresh-token-value".len() + TAG_LEN
        );
        assert_eq!(
            ring.decrypt(&ct, b"t/i/refresh").unwrap(),
            b"refresh-token-value"
        );
    }

    #[test]
    fn nonces_are_fresh() {
        let ring = Keyring::new(&generate_key(), &[]);
        let a = ring.encrypt(b"x", b"");
        let b = ring.encrypt(b"x", b"");
        assert_ne!(a[5..17], b[5..17]);
        assert_ne!(a, b);
    }

    #[test]
    fn wrong_aad_or_tampering_fails() {
        let ring = Keyring::new(&generate_key(), &[]);
        let mut ct = ring.encrypt(b"secret", b"tenant-a/access");
        assert_eq!(
            ring.decrypt(&ct, b"tenant-b/access"),
            Err(CryptoError::Authentication)
        );
        let last = ct.len() - 1;
        ct[last] ^= 1;
        assert_eq!(
            ring.decrypt(&ct, b"tenant-a/access"),
            Err(CryptoError::Authentication)
        );
        assert_eq!(
            ring.decrypt(&ct[..10], b""),
            Err(CryptoError::Malformed("too short"))
        );
        let mut v2 = ring.encrypt(b"secret", b"");
        v2[0] = 2;
        assert_eq!(
            ring.decrypt(&v2, b""),
            Err(CryptoError::Malformed("unknown version"))
        );
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_readable_and_reencrypts() {
        let old = generate_key();
        let new = generate_key();
        let before = Keyring::new(&old, &[]);
        let ct = before.encrypt(b"token", b"aad");
        let rotated = Keyring::new(&new, &[old]);
        assert!(rotated.needs_reencryption(&ct));
        assert_eq!(rotated.decrypt(&ct, b"aad").unwrap(), b"token");
        let again = rotated.reencrypt(&ct, b"aad").unwrap();
        assert!(!rotated.needs_reencryption(&again));
        let only_new = Keyring::new(&new, &[]);
        assert_eq!(only_new.decrypt(&again, b"aad").unwrap(), b"token");
        assert_eq!(
            only_new.decrypt(&ct, b"aad"),
            Err(CryptoError::UnknownKey(key_id(&old)))
        );
    }

    #[test]
    fn keys_parse_from_base64_and_never_print() {
        let key = generate_key();
        let encoded = encode_key(&key);
        let ring = Keyring::from_base64(&format!(" {encoded}\n"), "").unwrap();
        assert_eq!(ring.current_key_id(), key_id(&key));
        let debug = format!("{ring:?}");
        assert!(!debug.contains(&encoded), "{debug}");
        assert_eq!(
            Keyring::from_base64("c2hvcnQ=", "").unwrap_err(),
            CryptoError::BadKey("wrong length")
        );
        assert_eq!(
            Keyring::from_base64("!!!", "").unwrap_err(),
            CryptoError::BadKey("not base64")
        );
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "[redacted] SecretString([redacted])");
    }
}
