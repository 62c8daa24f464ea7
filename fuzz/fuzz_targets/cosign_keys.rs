//! cosign key files: public keys (PEM and DER) and encrypted private keys
//! parse without panicking; a public key barge reads is written back the
//! same; an encrypted key with a cheap scrypt cost is decrypted (it fails
//! cleanly, or yields a key that signs what its public key verifies); and
//! a PKCS#8 private key that parses signs verifiably.
#![no_main]

use barge_trust::{EncryptedKey, PrivateKey, PublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = PublicKey::from_der(data) {
        let _ = k.verify(b"payload", data);
    }
    if let Ok(k) = PrivateKey::from_pkcs8_der(data) {
        signs(&k);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(k) = PublicKey::from_pem(text) {
        let pem = k.to_pem().unwrap_or_else(|e| panic!("{k:?} cannot be written: {e}"));
        let back = PublicKey::from_pem(&pem).unwrap_or_else(|e| panic!("{pem:?} does not read back: {e}"));
        assert_eq!(back, k);
    }
    if let Ok(e) = EncryptedKey::parse(text) {
        // Real keys cost 2^15 and up: too slow to run here, and parse() bounds the cost.
        if e.scrypt_log_n() <= 6 {
            if let Ok(k) = e.decrypt(b"") {
                signs(&k);
            }
        }
    }
});

fn signs(k: &PrivateKey) {
    let sig = k.sign(b"payload");
    k.public_key()
        .verify(b"payload", &sig)
        .unwrap_or_else(|e| panic!("{k:?}: its own signature does not verify: {e}"));
}
