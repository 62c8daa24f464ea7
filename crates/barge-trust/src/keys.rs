//! cosign key files: `PUBLIC KEY` (SubjectPublicKeyInfo) PEM and the
//! password-protected private key PEM (`ENCRYPTED SIGSTORE PRIVATE KEY`, or
//! the older `ENCRYPTED COSIGN PRIVATE KEY`). The latter's body is JSON: an
//! scrypt KDF (N, r, p, salt) and a NaCl secretbox (XSalsa20-Poly1305, nonce)
//! whose plaintext is the PKCS#8 DER of the private key.

use crate::TrustError;
use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use p256::ecdsa::signature::{Signer, Verifier};
use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use spki::{DecodePublicKey, EncodePublicKey};
use zeroize::Zeroizing;

/// The PEM label cosign writes since 2.0.
pub const SIGSTORE_PRIVATE_KEY_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The PEM label older cosign versions wrote; still read.
pub const COSIGN_PRIVATE_KEY_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

const KDF_NAME: &str = "scrypt";
const CIPHER_NAME: &str = "nacl/secretbox";
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// cosign's parameters: N = 2^15, r = 8, p = 1.
const DEFAULT_LOG_N: u8 = 15;
const DEFAULT_R: u32 = 8;
const DEFAULT_P: u32 = 1;
/// scrypt needs 128·r·N bytes: refuse files that would make us allocate more.
const MAX_SCRYPT_MEMORY: u64 = 1 << 30;
const MAX_SCRYPT_P: u32 = 16;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A verification key: ECDSA P-256 (with SHA-256, DER signatures) or Ed25519.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A signing key of one of the kinds [`PublicKey`] verifies.
#[derive(Clone)]
pub enum PrivateKey {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PrivateKey::P256(_) => "PrivateKey::P256(..)",
            PrivateKey::Ed25519(_) => "PrivateKey::Ed25519(..)",
        })
    }
}

impl PublicKey {
    /// Reads a `PUBLIC KEY` PEM block (what `cosign generate-key-pair` writes to cosign.pub).
    pub fn from_pem(text: &str) -> Result<PublicKey, TrustError> {
        let (label, der) = pem_rfc7468::decode_vec(text.trim().as_bytes())
            .map_err(|e| TrustError::Key(format!("not a PEM public key: {e}")))?;
        if label != PUBLIC_KEY_LABEL {
            return Err(TrustError::Key(format!(
                "expected a {PUBLIC_KEY_LABEL:?} PEM block, found {label:?}"
            )));
        }
        PublicKey::from_der(&der)
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_der(der: &[u8]) -> Result<PublicKey, TrustError> {
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::P256(k));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::Ed25519(k));
        }
        Err(TrustError::Key(
            "unsupported public key: only ECDSA P-256 and Ed25519 keys are supported".into(),
        ))
    }

    /// The `PUBLIC KEY` PEM block.
    pub fn to_pem(&self) -> Result<String, TrustError> {
        let pem = match self {
            PublicKey::P256(k) => k.to_public_key_pem(pkcs8::LineEnding::LF),
            PublicKey::Ed25519(k) => k.to_public_key_pem(pkcs8::LineEnding::LF),
        };
        pem.map_err(|e| TrustError::Key(format!("cannot encode the public key: {e}")))
    }

    /// The key's algorithm, as messages name it.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::P256(_) => "ECDSA P-256",
            PublicKey::Ed25519(_) => "Ed25519",
        }
    }

    /// Checks a raw signature (ASN.1 DER for ECDSA, 64 bytes for Ed25519) over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), TrustError> {
        let ok = match self {
            PublicKey::P256(k) => p256::ecdsa::Signature::from_der(signature)
                .ok()
                .map(|s| k.verify(message, &s).is_ok()),
            PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(signature)
                .ok()
                .map(|s| k.verify_strict(message, &s).is_ok()),
        };
        match ok {
            Some(true) => Ok(()),
            Some(false) => Err(TrustError::BadSignature(
                "the signature does not verify with this key".into(),
            )),
            None => Err(TrustError::BadSignature(format!(
                "the signature is not a well-formed {} signature",
                self.algorithm()
            ))),
        }
    }
}

impl PrivateKey {
    /// A fresh ECDSA P-256 key, the kind `cosign generate-key-pair` makes.
    pub fn generate_p256() -> PrivateKey {
        PrivateKey::P256(p256::ecdsa::SigningKey::random(&mut OsRng))
    }

    /// A fresh Ed25519 key.
    pub fn generate_ed25519() -> PrivateKey {
        PrivateKey::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng))
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            PrivateKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
        }
    }

    /// Signs `message`: ECDSA over its SHA-256 (DER-encoded), or Ed25519 over the message itself.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            PrivateKey::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(message);
                s.to_der().as_bytes().to_vec()
            }
            PrivateKey::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
        }
    }

    /// Reads a PKCS#8 DER private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey, TrustError> {
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
            return Ok(PrivateKey::P256(k));
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
            return Ok(PrivateKey::Ed25519(k));
        }
        Err(TrustError::Key(
            "unsupported private key: only ECDSA P-256 and Ed25519 keys are supported".into(),
        ))
    }

    fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, TrustError> {
        let doc = match self {
            PrivateKey::P256(k) => k.to_pkcs8_der(),
            PrivateKey::Ed25519(k) => k.to_pkcs8_der(),
        }
        .map_err(|e| TrustError::Key(format!("cannot encode the private key: {e}")))?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// Reads an encrypted cosign private key PEM, decrypting it with `password`.
    pub fn from_encrypted_pem(text: &str, password: &[u8]) -> Result<PrivateKey, TrustError> {
        EncryptedKey::parse(text)?.decrypt(password)
    }

    /// The encrypted PEM cosign writes (`ENCRYPTED SIGSTORE PRIVATE KEY`), with cosign's scrypt cost.
    pub fn to_encrypted_pem(&self, password: &[u8]) -> Result<String, TrustError> {
        self.to_encrypted_pem_with(password, DEFAULT_LOG_N, DEFAULT_R, DEFAULT_P)
    }

    fn to_encrypted_pem_with(&self, password: &[u8], log_n: u8, r: u32, p: u32) -> Result<String, TrustError> {
        let mut salt = [0u8; SALT_LEN];
        OsRng.fill_bytes(&mut salt);
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let key = derive(password, &salt, log_n, r, p)?;
        let plain = self.to_pkcs8_der()?;
        let cipher = XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(key.as_slice()));
        let ciphertext = cipher
            .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), plain.as_slice())
            .map_err(|_| TrustError::Key("cannot encrypt the private key".into()))?;
        let envelope = Envelope {
            kdf: Kdf {
                name: KDF_NAME.into(),
                params: ScryptParams { n: 1u64 << log_n, r, p },
                salt: b64().encode(salt),
            },
            cipher: Cipher {
                name: CIPHER_NAME.into(),
                nonce: b64().encode(nonce),
            },
            ciphertext: b64().encode(ciphertext),
        };
        let json = serde_json::to_vec(&envelope).map_err(|e| TrustError::Key(e.to_string()))?;
        pem_rfc7468::encode_string(SIGSTORE_PRIVATE_KEY_LABEL, pkcs8::LineEnding::LF, &json)
            .map_err(|e| TrustError::Key(format!("cannot encode the private key PEM: {e}")))
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// An encrypted private key, parsed but not yet decrypted.
pub struct EncryptedKey {
    log_n: u8,
    r: u32,
    p: u32,
    salt: Vec<u8>,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl EncryptedKey {
    /// Parses the PEM and its JSON envelope, checking the KDF and cipher
    /// names and that the scrypt cost is sane, without running scrypt.
    pub fn parse(text: &str) -> Result<EncryptedKey, TrustError> {
        let (label, body) = pem_rfc7468::decode_vec(text.trim().as_bytes())
            .map_err(|e| TrustError::Key(format!("not a PEM private key: {e}")))?;
        if label != SIGSTORE_PRIVATE_KEY_LABEL && label != COSIGN_PRIVATE_KEY_LABEL {
            return Err(TrustError::Key(format!(
                "expected an {SIGSTORE_PRIVATE_KEY_LABEL:?} PEM block, found {label:?}"
            )));
        }
        let env: Envelope = serde_json::from_slice(&body)
            .map_err(|e| TrustError::Key(format!("the encrypted key is not valid JSON: {e}")))?;
        if env.kdf.name != KDF_NAME {
            return Err(TrustError::Key(format!(
                "unsupported key derivation {:?}",
                env.kdf.name
            )));
        }
        if env.cipher.name != CIPHER_NAME {
            return Err(TrustError::Key(format!("unsupported key cipher {:?}", env.cipher.name)));
        }
        let ScryptParams { n, r, p } = env.kdf.params;
        if n < 2 || !n.is_power_of_two() || r == 0 || p == 0 || p > MAX_SCRYPT_P {
            return Err(TrustError::Key(format!("invalid scrypt parameters N={n} r={r} p={p}")));
        }
        if 128u64.saturating_mul(u64::from(r)).saturating_mul(n) > MAX_SCRYPT_MEMORY {
            return Err(TrustError::Key(format!(
                "scrypt parameters N={n} r={r} need more than {MAX_SCRYPT_MEMORY} bytes of memory"
            )));
        }
        let field = |what: &str, v: &str| {
            b64()
                .decode(v)
                .map_err(|e| TrustError::Key(format!("the encrypted key's {what} is not base64: {e}")))
        };
        let salt = field("salt", &env.kdf.salt)?;
        let nonce = field("nonce", &env.cipher.nonce)?;
        if nonce.len() != NONCE_LEN {
            return Err(TrustError::Key(format!(
                "the secretbox nonce is {} bytes, expected {NONCE_LEN}",
                nonce.len()
            )));
        }
        Ok(EncryptedKey {
            log_n: n.trailing_zeros() as u8,
            r,
            p,
            salt,
            nonce,
            ciphertext: field("ciphertext", &env.ciphertext)?,
        })
    }

    /// log2 of scrypt's N: the cost of [`EncryptedKey::decrypt`].
    pub fn scrypt_log_n(&self) -> u8 {
        self.log_n
    }

    /// Derives the key from `password` and opens the secretbox.
    pub fn decrypt(&self, password: &[u8]) -> Result<PrivateKey, TrustError> {
        let key = derive(password, &self.salt, self.log_n, self.r, self.p)?;
        let cipher = XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(key.as_slice()));
        let plain = cipher
            .decrypt(
                crypto_secretbox::Nonce::from_slice(&self.nonce),
                self.ciphertext.as_slice(),
            )
            .map(Zeroizing::new)
            .map_err(|_| TrustError::Key("decryption failed: wrong password for the private key?".into()))?;
        PrivateKey::from_pkcs8_der(&plain)
    }
}

fn derive(password: &[u8], salt: &[u8], log_n: u8, r: u32, p: u32) -> Result<Zeroizing<[u8; 32]>, TrustError> {
    let params =
        scrypt::Params::new(log_n, r, p, 32).map_err(|e| TrustError::Key(format!("invalid scrypt parameters: {e}")))?;
    let mut out = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, salt, &params, out.as_mut_slice())
        .map_err(|e| TrustError::Key(format!("scrypt failed: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_key_round_trips_and_rejects_a_wrong_password() {
        let key = PrivateKey::generate_p256();
        let pem = key.to_encrypted_pem_with(b"pw", 4, 8, 1).expect("encrypt");
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
        let back = PrivateKey::from_encrypted_pem(&pem, b"pw").expect("decrypt");
        assert_eq!(back.public_key(), key.public_key());
        let err = PrivateKey::from_encrypted_pem(&pem, b"other").expect_err("wrong password");
        assert!(err.to_string().contains("wrong password"), "{err}");
    }

    #[test]
    fn ed25519_signs_and_verifies() {
        let key = PrivateKey::generate_ed25519();
        let pem = key.to_encrypted_pem_with(b"", 4, 8, 1).expect("encrypt");
        let back = PrivateKey::from_encrypted_pem(&pem, b"").expect("decrypt");
        let sig = back.sign(b"payload");
        let public = PublicKey::from_pem(&key.public_key().to_pem().expect("pem")).expect("parse");
        public.verify(b"payload", &sig).expect("verifies");
        assert!(public.verify(b"other", &sig).is_err());
    }

    /// A key pair `cosign generate-key-pair` made (empty password, N = 2^16),
    /// published as a test vector in sigstore/cosign's signature tests.
    const COSIGN_ED25519_KEY: &str = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjo2NTUzNiwiciI6
OCwicCI6MX0sInNhbHQiOiJxYVVSY1ppbTN3RE9ZMVlselFGaFdVWHBnMU5tZlAv
YndiM2ZpWE54ck5BPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJMRjNVN3crNXgzWmRvMlNGUkFicE1nY1N5Y2sxN3R1LyJ9LCJj
aXBoZXJ0ZXh0IjoiY2lUQTYrODVWRDdsTlpwRTVLdmpMdjJrTXNZdmtvOHNHV0tq
QTRYZDY2WFRaTUw3UG5xczQ2NloycDRyWGJUdXBlcStwSXlnSXhvS29UVmFHbG9N
RXc9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----
";
    const COSIGN_ED25519_PUB: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAFs2AhZmYWkoEsqUf6yotyIwVb5uATpuKK194tq8OkoQ=
-----END PUBLIC KEY-----
";

    #[test]
    fn a_key_cosign_made_decrypts_to_its_public_key() {
        let parsed = EncryptedKey::parse(COSIGN_ED25519_KEY).expect("parses");
        assert_eq!(parsed.scrypt_log_n(), 16);
        let key = parsed.decrypt(b"").expect("decrypts with the empty password");
        let public = PublicKey::from_pem(COSIGN_ED25519_PUB).expect("public key");
        assert_eq!(key.public_key(), public);
        assert_eq!(public.to_pem().expect("pem"), COSIGN_ED25519_PUB);
        public.verify(b"m", &key.sign(b"m")).expect("verifies");
        assert!(parsed.decrypt(b"hello").is_err());
    }

    #[test]
    fn absurd_scrypt_costs_are_refused_before_running() {
        let json = r#"{"kdf":{"name":"scrypt","params":{"N":1099511627776,"r":8,"p":1},"salt":""},"cipher":{"name":"nacl/secretbox","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},"ciphertext":""}"#;
        let pem = pem_rfc7468::encode_string(SIGSTORE_PRIVATE_KEY_LABEL, pkcs8::LineEnding::LF, json.as_bytes())
            .expect("pem");
        let err = EncryptedKey::parse(&pem).err().expect("refused");
        assert!(err.to_string().contains("memory"), "{err}");
    }
}
