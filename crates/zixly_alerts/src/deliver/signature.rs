//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): a secret is `whsec_` +
//! base64 of random bytes; a message is signed as `v1,` + base64(HMAC-SHA256(secret bytes,
//! "{webhook-id}.{webhook-timestamp}.{body}")).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret: 32 random bytes (the spec asks for 24 to 64).
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The key bytes of a secret; `None` when it is not `whsec_` + base64 of 24..=64 bytes.
pub fn secret_bytes(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix(SECRET_PREFIX)?;
    let bytes = STANDARD.decode(b64).ok()?;
    (24..=64).contains(&bytes.len()).then_some(bytes)
}

/// The `webhook-signature` header value.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries (svix test vectors).
    #[test]
    fn matches_the_reference_vector() {
        let key = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn generated_secrets_parse() {
        let s = generate_secret();
        assert_eq!(secret_bytes(&s).map(|b| b.len()), Some(32));
        assert!(secret_bytes("whsec_short").is_none());
        assert!(secret_bytes("nope").is_none());
    }
}
