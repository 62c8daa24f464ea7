//! `barge generate-key`, `barge sign` and `barge verify`: cosign's key-based
//! signing, with cosign's files and storage, so that cosign, podman and
//! skopeo read what barge writes and the other way round.

use super::login::{interactive, prompt};
use super::Env;
use crate::args::{GenerateKeyArgs, SignArgs, VerifyArgs};
use crate::failure::{Context, Failure};
use barge_oci::Reference;
use barge_trust::{PrivateKey, PublicKey};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use zeroize::Zeroizing;

/// The variable cosign (and so barge) reads the private key's password from.
const PASSWORD_ENV: &str = "COSIGN_PASSWORD";

/// The password from `$COSIGN_PASSWORD`, else asked on the terminal (twice when `confirm`).
fn password(confirm: bool) -> Result<Zeroizing<String>, Failure> {
    if let Some(p) = std::env::var_os(PASSWORD_ENV) {
        return p
            .into_string()
            .map(Zeroizing::new)
            .map_err(|_| Failure::msg(format!("{PASSWORD_ENV} is not valid UTF-8")));
    }
    if !interactive() {
        return Err(Failure::msg(format!(
            "no password for the private key: set {PASSWORD_ENV} (it may be empty) or run on a terminal"
        )));
    }
    let first = Zeroizing::new(
        prompt("Enter password for private key: ", false).context(|| "reading the password".to_string())?,
    );
    if confirm {
        let again = Zeroizing::new(
            prompt("Enter password for private key again: ", false).context(|| "reading the password".to_string())?,
        );
        if *first != *again {
            return Err(Failure::msg("passwords do not match"));
        }
    }
    Ok(first)
}

/// Creates `path` with `mode`, refusing to overwrite an existing file.
fn write_new(path: &Path, mode: u32, text: &str) -> Result<(), Failure> {
    let what = || format!("writing {}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .context(what)?;
    f.write_all(text.as_bytes()).context(what)?;
    f.sync_all().context(what)
}

pub fn generate_key(a: &GenerateKeyArgs) -> Result<i32, Failure> {
    let key_path = format!("{}.key", a.output_key_prefix);
    let pub_path = format!("{}.pub", a.output_key_prefix);
    for p in [&key_path, &pub_path] {
        if Path::new(p).exists() {
            return Err(Failure::msg(format!(
                "{p} already exists: remove it or choose --output-key-prefix"
            )));
        }
    }
    let password = password(true)?;
    let key = if a.ed25519 {
        PrivateKey::generate_ed25519()
    } else {
        PrivateKey::generate_p256()
    };
    let private = key
        .to_encrypted_pem(password.as_bytes())
        .context(|| "encrypting the private key".to_string())?;
    let public = key
        .public_key()
        .to_pem()
        .context(|| "encoding the public key".to_string())?;
    write_new(Path::new(&key_path), 0o600, &private)?;
    write_new(Path::new(&pub_path), 0o644, &public)?;
    eprintln!("Private key written to {key_path}");
    eprintln!("Public key written to {pub_path}");
    Ok(0)
}

fn read_text(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).context(|| format!("reading {}", path.display()))
}

pub fn sign(env: &Env, a: &SignArgs) -> Result<i32, Failure> {
    let reference = Reference::parse_default_tag(&a.image).context(|| format!("signing {}", a.image))?;
    let what = || format!("signing {}", reference.familiar());
    let encrypted =
        barge_trust::EncryptedKey::parse(&read_text(&a.key)?).context(|| format!("reading {}", a.key.display()))?;
    let password = password(false)?;
    let key = encrypted
        .decrypt(password.as_bytes())
        .context(|| format!("reading {}", a.key.display()))?;
    let client = env.client()?;
    let signed = barge_engine::trust::sign(&client, &reference, &key).context(what)?;
    if signed.already {
        eprintln!("{} already carries this signature", reference.familiar());
    } else {
        eprintln!("Pushing signature to: {}", reference.name());
    }
    println!("{}@{}", reference.name(), signed.digest);
    Ok(0)
}

pub fn verify(env: &Env, a: &VerifyArgs) -> Result<i32, Failure> {
    let reference = Reference::parse_default_tag(&a.image).context(|| format!("verifying {}", a.image))?;
    let Some(key_path) = a
        .key
        .as_deref()
        .filter(|_| a.certificate.is_none() && a.certificate_chain.is_none())
    else {
        return Err(Failure::msg(
            "keyless signatures (--certificate, --certificate-chain: Fulcio and Rekor) cannot be verified by barge; verify with --key",
        ));
    };
    let key = PublicKey::from_pem(&read_text(key_path)?).context(|| format!("reading {}", key_path.display()))?;
    let client = env.client()?;
    let (_, good) = barge_engine::trust::verify(&client, &reference, &key)
        .context(|| format!("verifying {}", reference.familiar()))?;
    eprintln!("\nVerification for {} --", reference.familiar());
    eprintln!("The following checks were performed on each of these signatures:");
    eprintln!("  - The cosign claims were validated");
    eprintln!("  - The signatures were verified against the specified public key");
    eprintln!();
    let payloads: Vec<serde_json::Value> = good
        .iter()
        .map(|v| serde_json::from_slice(&v.payload).unwrap_or(serde_json::Value::Null))
        .collect();
    println!("{}", serde_json::Value::Array(payloads));
    Ok(0)
}
