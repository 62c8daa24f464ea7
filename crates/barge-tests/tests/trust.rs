//! Signatures and policy end to end, against independent peers.
//!
//! Debian's skopeo 1.9 and podman 4.3 are built with sigstore disabled
//! ("Debian-local change: sigstore disabled"): they can neither make nor
//! check these signatures. The independent party is therefore OpenSSL:
//! it makes a key pair and signs a payload the test writes into cosign's
//! storage layout byte by byte, which barge must verify and pull; and it
//! verifies the signatures barge writes, read back over plain HTTP. Then
//! barge refuses, storing nothing, an unsigned image, another key's
//! signature, a signature for another repository and one for a manifest
//! the tag no longer names.

use barge_tests::image::{agent, push_manifest, Compression, Image, Style};
use barge_tests::registry::Registry;
use barge_tests::{require_root_and, run_ok, Barge};
use std::path::{Path, PathBuf};
use std::process::Command;

const PASSWORD: &str = "correct horse";

/// A key pair made by `barge generate-key` in `dir` (PREFIX.key, PREFIX.pub).
struct Keys {
    private: PathBuf,
    public: PathBuf,
}

/// barge with `args` and `$COSIGN_PASSWORD` set to `password`: its output.
fn with_password(b: &Barge, password: &str, args: &[&str]) -> std::process::Output {
    b.command()
        .args(args)
        .env("COSIGN_PASSWORD", password)
        .output()
        .unwrap_or_else(|e| panic!("barge {args:?}: {e}"))
}

/// [`with_password`] with the right password, asserting success: stdout.
fn ok_with_password(b: &Barge, args: &[&str]) -> String {
    let out = with_password(b, PASSWORD, args);
    assert!(
        out.status.success(),
        "barge {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn generate_key(b: &Barge, dir: &Path, prefix: &str) -> Keys {
    let p = dir.join(prefix);
    ok_with_password(b, &["generate-key", "--output-key-prefix", &p.display().to_string()]);
    Keys {
        private: p.with_extension("key"),
        public: p.with_extension("pub"),
    }
}

/// policy.json demanding a signature by `public` for everything on `host`
/// (with `identity` as signedIdentity), and registries.d enabling sigstore
/// attachments there; written into `dir` (barge's config dir, or one for the peers).
fn write_policy(dir: &Path, host: &str, public: &Path, identity: serde_json::Value) -> PathBuf {
    let policy = serde_json::json!({
        "default": [{"type": "insecureAcceptAnything"}],
        "transports": {"docker": {host: [{
            "type": "sigstoreSigned",
            "keyPath": public,
            "signedIdentity": identity,
        }]}}
    });
    std::fs::create_dir_all(dir.join("registries.d")).expect("registries.d");
    std::fs::write(
        dir.join("registries.d/test.yaml"),
        format!("docker:\n  {host}:\n    use-sigstore-attachments: true\n"),
    )
    .expect("registries.d file");
    let path = dir.join("policy.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&policy).expect("json")).expect("policy.json");
    path
}

fn repo_digest_or_exact() -> serde_json::Value {
    serde_json::json!({"type": "matchRepoDigestOrExact"})
}

fn barge_config(b: &Barge) -> PathBuf {
    b.dir.path().join("barge-config")
}

fn sign_with_barge(b: &Barge, keys: &Keys, reference: &str) -> String {
    ok_with_password(b, &["sign", "--key", &keys.private.display().to_string(), reference])
}

fn stored_references(b: &Barge) -> Vec<String> {
    b.index()["manifests"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r["annotations"]["org.opencontainers.image.ref.name"].as_str())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The refusal names the rule, and nothing of the image reached the store.
fn assert_refused(b: &Barge, reference: &str, expect: &str) {
    let err = b.fails(&["pull", reference]);
    assert!(err.contains("sigstoreSigned") && err.contains(expect), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    if b.root().join("oci/index.json").exists() {
        let refs = stored_references(b);
        assert!(
            !refs.iter().any(|r| r.contains(reference)),
            "{reference} was stored: {refs:?}"
        );
    }
}

const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

fn openssl(args: &[&str]) -> String {
    run_ok(Command::new("openssl").args(args))
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A private key made by OpenSSL at `key` (P-256, or Ed25519), and its public key at `public`.
fn openssl_key(key: &Path, public: Option<&Path>, ed25519: bool) {
    let key = key.display().to_string();
    if ed25519 {
        openssl(&["genpkey", "-algorithm", "ED25519", "-out", &key]);
    } else {
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ]);
    }
    if let Some(p) = public {
        openssl(&["pkey", "-in", &key, "-pubout", "-out", &p.display().to_string()]);
    }
}

/// Signs `payload` with OpenSSL's key `key`: ECDSA over SHA-256 (DER) for
/// P-256, Ed25519 over the payload itself; the signature bytes.
fn openssl_sign(dir: &Path, key: &Path, payload: &[u8], ed25519: bool) -> Vec<u8> {
    let input = dir.join("payload").display().to_string();
    let sig = dir.join("payload.sig").display().to_string();
    let key = key.display().to_string();
    std::fs::write(&input, payload).expect("payload");
    if ed25519 {
        openssl(&[
            "pkeyutl", "-sign", "-inkey", &key, "-rawin", "-in", &input, "-out", &sig,
        ]);
    } else {
        openssl(&["dgst", "-sha256", "-sign", &key, "-out", &sig, &input]);
    }
    std::fs::read(sig).expect("signature")
}

/// Whether OpenSSL finds `sig` a signature of `payload` by `public` (as [`openssl_sign`] makes them).
fn openssl_verifies(dir: &Path, public: &Path, payload: &[u8], sig: &[u8], ed25519: bool) -> bool {
    let input = dir.join("checked").display().to_string();
    let sig_file = dir.join("checked.sig").display().to_string();
    let public = public.display().to_string();
    std::fs::write(&input, payload).expect("payload");
    std::fs::write(&sig_file, sig).expect("signature");
    let mut cmd = Command::new("openssl");
    if ed25519 {
        cmd.args([
            "pkeyutl", "-verify", "-pubin", "-inkey", &public, "-rawin", "-in", &input, "-sigfile", &sig_file,
        ]);
    } else {
        cmd.args(["dgst", "-sha256", "-verify", &public, "-signature", &sig_file, &input]);
    }
    cmd.output().expect("openssl").status.success()
}

/// Writes cosign's signature manifest for `digest` in `repo` by hand: the
/// payloads as layers, each signature in its annotation, under `sha256-<hex>.sig`.
fn push_signatures(reg: &Registry, repo: &str, digest: &str, signed: &[(Vec<u8>, Vec<u8>)]) {
    let mut layers = Vec::new();
    for (payload, signature) in signed {
        barge_tests::image::push_blob(reg, repo, payload);
        layers.push(serde_json::json!({
            "mediaType": SIMPLE_SIGNING,
            "size": payload.len(),
            "digest": barge_tests::sha256(payload),
            "annotations": {SIGNATURE_ANNOTATION: b64(signature)},
        }));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "", "os": "", "config": {},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l["digest"].clone()).collect::<Vec<_>>()},
    }))
    .expect("config");
    barge_tests::image::push_blob(reg, repo, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": barge_tests::sha256(&config)},
        "layers": layers,
    }))
    .expect("manifest");
    let tag = format!("sha256-{}.sig", &digest[7..]);
    push_manifest(reg, repo, &tag, "application/vnd.oci.image.manifest.v1+json", &manifest);
}

/// A registry holding one image as `REPO:v1` in each of `repos`, and a private barge.
fn registry_with(marker: &str, repos: &[&str]) -> (Registry, Image, Barge) {
    let reg = Registry::anonymous();
    let img = Image::simple(Style::Oci, Compression::Gzip, marker);
    for repo in repos {
        img.push(&reg, repo, "v1");
    }
    (reg, img, Barge::new())
}

fn payload(identity: &str, digest: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{identity}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

#[test]
fn an_openssl_signature_verifies_and_its_image_pulls_under_the_policy() {
    if !require_root_and(&["docker-registry", "openssl"]) {
        return;
    }
    let (reg, img, b) = registry_with("signed-by-openssl", &["signed", "plain"]);
    let host = reg.host();
    let dir = b.dir.path();
    let key = dir.join("openssl.key");
    let public = dir.join("openssl.pub");
    openssl_key(&key, Some(&public), false);
    let ed_key = dir.join("ed.key");
    let ed_public = dir.join("ed.pub");
    openssl_key(&ed_key, Some(&ed_public), true);
    let reference = format!("{host}/signed:v1");
    let signed = payload(&reference, &img.manifest_digest);
    // A stranger's signature first: barge must look past it.
    let stranger = dir.join("stranger.key");
    openssl_key(&stranger, None, false);
    let sigs = vec![
        (signed.clone(), openssl_sign(dir, &stranger, &signed, false)),
        (signed.clone(), openssl_sign(dir, &key, &signed, false)),
        (signed.clone(), openssl_sign(dir, &ed_key, &signed, true)),
    ];
    push_signatures(&reg, "signed", &img.manifest_digest, &sigs);

    let out = b.ok(&["verify", "--key", &public.display().to_string(), &reference]);
    let payloads: serde_json::Value = serde_json::from_str(&out).expect("verify prints JSON");
    assert_eq!(payloads.as_array().map(Vec::len), Some(1), "{payloads}");
    assert_eq!(
        payloads[0]["critical"]["image"]["docker-manifest-digest"],
        img.manifest_digest.as_str()
    );
    let out = b.ok(&["verify", "--key", &ed_public.display().to_string(), &reference]);
    let payloads: serde_json::Value = serde_json::from_str(&out).expect("verify prints JSON");
    assert_eq!(payloads.as_array().map(Vec::len), Some(1), "Ed25519: {payloads}");

    write_policy(&barge_config(&b), &host, &public, repo_digest_or_exact());
    b.ok(&["pull", "-q", &reference]);
    let inspect: serde_json::Value =
        serde_json::from_str(&b.ok(&["image", "inspect", &reference])).expect("inspect JSON");
    assert_eq!(
        inspect[0]["VerifiedSignatures"],
        serde_json::json!([barge_tests::sha256(&signed)]),
        "{inspect}"
    );
    // A second pull, up to date, passes the policy again.
    b.ok(&["pull", "-q", &reference]);

    // The same image under another name carries no signature: refused, not stored.
    assert_refused(&b, &format!("{host}/plain:v1"), "no signature exists");
    // Without registries.d, signatures are not looked up (as podman): refused, saying why.
    std::fs::remove_dir_all(barge_config(&b).join("registries.d")).expect("remove registries.d");
    b.ok(&["rmi", &reference]);
    let err = b.fails(&["pull", &reference]);
    assert!(err.contains("use-sigstore-attachments"), "{err}");
}

#[test]
fn openssl_verifies_what_barge_signs() {
    if !require_root_and(&["docker-registry", "openssl"]) {
        return;
    }
    let (reg, img, b) = registry_with("signed-by-barge", &["app"]);
    let host = reg.host();
    let dir = b.dir.path();
    let keys = generate_key(&b, dir, "cosign");
    let key_text = std::fs::read_to_string(&keys.private).expect("key");
    assert!(
        key_text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"),
        "{key_text}"
    );
    let reference = format!("{host}/app:v1");
    let out = sign_with_barge(&b, &keys, &reference);
    assert_eq!(out.trim(), format!("{host}/app@{}", img.manifest_digest));
    // Signing again adds nothing; another key adds a signature.
    sign_with_barge(&b, &keys, &reference);
    let ed = dir.join("ed");
    ok_with_password(
        &b,
        &[
            "generate-key",
            "--ed25519",
            "--output-key-prefix",
            &ed.display().to_string(),
        ],
    );
    let ed = Keys {
        private: ed.with_extension("key"),
        public: ed.with_extension("pub"),
    };
    sign_with_barge(&b, &ed, &reference);

    let tag = format!("sha256-{}.sig", &img.manifest_digest[7..]);
    let manifest = registry_get(&reg, &format!("app/manifests/{tag}"));
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).expect("signature manifest JSON");
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    assert_eq!(layers.len(), 2, "{manifest}");
    for (layer, public, ed25519) in [(&layers[0], &keys.public, false), (&layers[1], &ed.public, true)] {
        assert_eq!(layer["mediaType"], SIMPLE_SIGNING);
        let digest = layer["digest"].as_str().expect("digest");
        let body = registry_get(&reg, &format!("app/blobs/{digest}"));
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("payload JSON");
        assert_eq!(parsed["critical"]["type"], "cosign container image signature");
        assert_eq!(parsed["critical"]["identity"]["docker-reference"], reference.as_str());
        assert_eq!(
            parsed["critical"]["image"]["docker-manifest-digest"],
            img.manifest_digest.as_str()
        );
        use base64::Engine as _;
        let annotation = layer["annotations"][SIGNATURE_ANNOTATION]
            .as_str()
            .expect("signature annotation");
        let sig = base64::engine::general_purpose::STANDARD
            .decode(annotation)
            .expect("base64");
        assert!(
            openssl_verifies(dir, public, &body, &sig, ed25519),
            "OpenSSL rejects {layer}"
        );
        let mut tampered = body.clone();
        tampered.push(b' ');
        assert!(!openssl_verifies(dir, public, &tampered, &sig, ed25519));
    }
}

#[test]
fn barge_refuses_unsigned_foreign_misnamed_and_moved_images() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let host = reg.host();
    let b = Barge::new();
    let keys = generate_key(&b, b.dir.path(), "cosign");
    let other = generate_key(&b, b.dir.path(), "other");
    write_policy(&barge_config(&b), &host, &keys.public, repo_digest_or_exact());

    // Unsigned.
    Image::simple(Style::Oci, Compression::Gzip, "unsigned").push(&reg, "unsigned", "v1");
    assert_refused(&b, &format!("{host}/unsigned:v1"), "no signature exists");

    // Signed by a key the policy does not trust.
    Image::simple(Style::Oci, Compression::Gzip, "other-key").push(&reg, "otherkey", "v1");
    sign_with_barge(&b, &other, &format!("{host}/otherkey:v1"));
    assert_refused(&b, &format!("{host}/otherkey:v1"), "not made by a trusted key");

    // Signed for another repository: the signature manifest copied beside a copy of the image.
    let img = Image::simple(Style::Oci, Compression::Gzip, "identity");
    img.push(&reg, "signed-here", "v1");
    sign_with_barge(&b, &keys, &format!("{host}/signed-here:v1"));
    img.push(&reg, "copied-there", "v1");
    copy_signature_manifest(
        &reg,
        "signed-here",
        "copied-there",
        &img.manifest_digest,
        &img.manifest_digest,
    );
    assert_refused(&b, &format!("{host}/copied-there:v1"), "does not match");
    // Signed for another tag of the same repository.
    img.push(&reg, "signed-here", "v2");
    assert_refused(&b, &format!("{host}/signed-here:v2"), "does not match");
    // The original passes: the refusals above are about the image, not the key.
    b.ok(&["pull", "-q", &format!("{host}/signed-here:v1")]);
    // By digest, matchRepoDigestOrExact asks only for the repository.
    b.ok(&["pull", "-q", &format!("{host}/signed-here@{}", img.manifest_digest)]);

    // The tag moved to another manifest, which carries the old manifest's signature.
    let first = Image::simple(Style::Oci, Compression::Gzip, "before");
    first.push(&reg, "tampered", "v1");
    sign_with_barge(&b, &keys, &format!("{host}/tampered:v1"));
    let second = Image::simple(Style::Oci, Compression::Gzip, "after");
    second.push(&reg, "tampered", "v1");
    copy_signature_manifest(
        &reg,
        "tampered",
        "tampered",
        &first.manifest_digest,
        &second.manifest_digest,
    );
    assert_refused(&b, &format!("{host}/tampered:v1"), "is for manifest");
    // run of an image not yet present goes through the same gate.
    let err = b.fails(&["run", "--rm", &format!("{host}/tampered:v1"), "true"]);
    assert!(err.contains("is for manifest"), "{err}");
    // copy too, and writes nothing.
    let out = tempfile::tempdir().expect("copy destination");
    let err = b.fails(&[
        "copy",
        &format!("docker://{host}/tampered:v1"),
        &format!("oci:{}:x", out.path().display()),
    ]);
    assert!(err.contains("is for manifest"), "{err}");
    let index = std::fs::read(out.path().join("index.json")).unwrap_or_else(|_| b"{}".to_vec());
    let index: serde_json::Value = serde_json::from_slice(&index).expect("index.json");
    assert!(index["manifests"].as_array().is_none_or(Vec::is_empty), "{index}");
    let blobs = std::fs::read_dir(out.path().join("blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(blobs, 0, "the refused copy wrote blobs");
}

/// `GET /v2/PATH` (a manifest is asked for as an OCI image manifest): the body.
fn registry_get(reg: &Registry, path: &str) -> Vec<u8> {
    agent()
        .get(format!("{}/v2/{path}", reg.base_url()))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .body_mut()
        .read_to_vec()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Puts the signature manifest of `from_digest` in `from_repo` under the
/// signature tag of `to_digest` in `to_repo`, with its blobs.
fn copy_signature_manifest(reg: &Registry, from_repo: &str, to_repo: &str, from_digest: &str, to_digest: &str) {
    let from_tag = format!("sha256-{}.sig", &from_digest[7..]);
    let to_tag = format!("sha256-{}.sig", &to_digest[7..]);
    let manifest = registry_get(reg, &format!("{from_repo}/manifests/{from_tag}"));
    let parsed: serde_json::Value = serde_json::from_slice(&manifest).expect("signature manifest JSON");
    let mut descs = vec![parsed["config"].clone()];
    descs.extend(parsed["layers"].as_array().cloned().unwrap_or_default());
    for d in descs {
        let digest = d["digest"].as_str().expect("digest");
        let blob = registry_get(reg, &format!("{from_repo}/blobs/{digest}"));
        barge_tests::image::push_blob(reg, to_repo, &blob);
    }
    push_manifest(
        reg,
        to_repo,
        &to_tag,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    );
}

#[test]
fn signatures_survive_a_mirror_and_verify_on_the_destination() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let src = Registry::anonymous();
    let dst = Registry::anonymous();
    let img = Image::simple(Style::Oci, Compression::Gzip, "mirrored");
    img.push(&src, "team/app", "v1");
    let b = Barge::new();
    let keys = generate_key(&b, b.dir.path(), "cosign");
    sign_with_barge(&b, &keys, &format!("{}/team/app:v1", src.host()));

    // The policy applies to mirror's source, and the signature travels.
    write_policy(
        &barge_config(&b),
        &dst.host(),
        &keys.public,
        serde_json::json!({
            "type": "remapIdentity",
            "prefix": format!("{}/copy", dst.host()),
            "signedPrefix": src.host(),
        }),
    );
    b.ok(&[
        "mirror",
        &format!("{}/team/app", src.host()),
        &format!("{}/copy/team/app", dst.host()),
    ]);
    let copied = format!("{}/copy/team/app:v1", dst.host());
    b.ok(&["verify", "--key", &keys.public.display().to_string(), &copied]);
    b.ok(&["pull", "-q", &copied]);
    let inspect: serde_json::Value = serde_json::from_str(&b.ok(&["image", "inspect", &copied])).expect("inspect");
    assert_eq!(
        inspect[0]["VerifiedSignatures"].as_array().map(Vec::len),
        Some(1),
        "{inspect}"
    );

    // Without the remap, the mirror's name is not the signed one.
    write_policy(&barge_config(&b), &dst.host(), &keys.public, repo_digest_or_exact());
    b.ok(&["rmi", &copied]);
    assert_refused(&b, &copied, "does not match");

    // barge copy carries signatures too.
    let dest = format!("{}/single:v1", dst.host());
    b.ok(&[
        "copy",
        &format!("docker://{}/team/app:v1", src.host()),
        &format!("docker://{dest}"),
    ]);
    b.ok(&["verify", "--key", &keys.public.display().to_string(), &dest]);
}

#[test]
fn verify_and_sign_fail_in_one_line() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let reg = Registry::anonymous();
    let b = Barge::new();
    let keys = generate_key(&b, b.dir.path(), "cosign");
    let other = generate_key(&b, b.dir.path(), "other");
    Image::simple(Style::Oci, Compression::Gzip, "verify").push(&reg, "v", "v1");
    let reference = format!("{}/v:v1", reg.host());
    let unsigned = b.fails(&["verify", "--key", &keys.public.display().to_string(), &reference]);
    assert!(unsigned.contains("no signatures"), "{unsigned}");
    sign_with_barge(&b, &keys, &reference);
    let wrong = b.fails(&["verify", "--key", &other.public.display().to_string(), &reference]);
    assert!(
        wrong.contains("not made by a trusted key") && wrong.trim().lines().count() == 1,
        "{wrong}"
    );
    // A wrong password is refused before anything is pushed.
    let out = with_password(
        &b,
        "wrong",
        &["sign", "--key", &keys.private.display().to_string(), &reference],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("wrong password"), "{err}");
    let keyless = b.fails(&["verify", "--certificate", "/dev/null", &reference]);
    assert!(keyless.contains("keyless"), "{keyless}");
    // generate-key does not overwrite.
    let prefix = b.dir.path().join("cosign").display().to_string();
    let again = with_password(&b, PASSWORD, &["generate-key", "--output-key-prefix", &prefix]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && err.contains("already exists"), "{err}");
}
