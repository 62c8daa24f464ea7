//! containers' `policy.json`: which images may be pulled, by transport and
//! scope. barge reads the `docker` transport (registries); scopes are tried
//! from the most specific (`host/repo:tag`, `host/repo`, its parent
//! namespaces, `host`, `*.domain` wildcards) to the transport's default
//! (`""`) and then the global `default`. Every requirement of the chosen
//! list must hold.

use crate::attach::Attached;
use crate::keys::PublicKey;
use crate::payload::Payload;
use crate::TrustError;
use barge_oci::{Digest, Reference};
use base64::Engine as _;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The transport name of registries in policy.json.
pub const DOCKER_TRANSPORT: &str = "docker";

/// A parsed policy file.
#[derive(Debug, Clone)]
pub struct Policy {
    path: PathBuf,
    default: Vec<Requirement>,
    docker: Vec<(String, Vec<Requirement>)>,
}

/// One requirement of a policy list.
#[derive(Debug, Clone)]
pub enum Requirement {
    InsecureAcceptAnything,
    Reject,
    SigstoreSigned(SigstoreSigned),
    /// A requirement barge knows but cannot check (`signedBy`: GPG): it rejects, saying why.
    Unsupported {
        kind: String,
        why: String,
    },
}

/// `sigstoreSigned`: a signature by one of `keys` whose identity satisfies `identity`.
#[derive(Debug, Clone)]
pub struct SigstoreSigned {
    pub keys: Vec<PublicKey>,
    pub identity: IdentityRule,
    /// Why this requirement cannot be met by barge (keyless Fulcio, Rekor), if so.
    pub unsupported: Option<String>,
}

/// `signedIdentity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityRule {
    MatchExact,
    MatchRepoDigestOrExact,
    MatchRepository,
    ExactReference(Reference),
    ExactRepository(Reference),
    RemapIdentity { prefix: String, signed_prefix: String },
}

impl Requirement {
    /// The `type` as written in policy.json.
    pub fn kind(&self) -> &str {
        match self {
            Requirement::InsecureAcceptAnything => "insecureAcceptAnything",
            Requirement::Reject => "reject",
            Requirement::SigstoreSigned(_) => "sigstoreSigned",
            Requirement::Unsupported { kind, .. } => kind,
        }
    }
}

/// A signature to evaluate: what the signature manifest lists, with its payload fetched.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub attached: Attached,
    pub payload: Vec<u8>,
}

/// A signature that satisfied a `sigstoreSigned` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The digest of the signed payload blob (the signature manifest's layer).
    pub signature_digest: Digest,
    /// The identity it was signed for.
    pub identity: String,
    /// The key's algorithm.
    pub algorithm: &'static str,
}

/// Why and where the policy accepted an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The scope whose requirements applied (`default` for the global default).
    pub scope: String,
    /// Signatures that satisfied signature requirements (empty if none were required).
    pub verified: Vec<Verified>,
}

impl Policy {
    /// Parses policy.json text; relative key paths are taken from `path`'s directory.
    pub fn parse(text: &str, path: &Path) -> Result<Policy, TrustError> {
        let err = |msg: String| TrustError::Policy {
            path: path.to_path_buf(),
            msg,
        };
        let root: Value = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        let root = root.as_object().ok_or_else(|| err("not a JSON object".into()))?;
        let dir = path.parent().unwrap_or(Path::new("/"));
        let default = match root.get("default") {
            Some(v) => requirements(v, dir).map_err(|m| err(format!("default: {m}")))?,
            None => return Err(err("it has no \"default\" policy".into())),
        };
        let mut docker = Vec::new();
        if let Some(transports) = root.get("transports") {
            let transports = transports
                .as_object()
                .ok_or_else(|| err("\"transports\" is not an object".into()))?;
            if let Some(scopes) = transports.get(DOCKER_TRANSPORT) {
                let scopes = scopes
                    .as_object()
                    .ok_or_else(|| err("transports.docker is not an object".into()))?;
                for (scope, v) in scopes {
                    let reqs = requirements(v, dir).map_err(|m| err(format!("transports.docker {scope:?}: {m}")))?;
                    docker.push((scope.clone(), reqs));
                }
            }
        }
        Ok(Policy {
            path: path.to_path_buf(),
            default,
            docker,
        })
    }

    /// Reads a policy file.
    pub fn load(path: &Path) -> Result<Policy, TrustError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrustError::Policy {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        Policy::parse(&text, path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The scope that applies to `image` and its requirements.
    pub fn requirements_for(&self, image: &Reference) -> (String, &[Requirement]) {
        for scope in scopes(image) {
            if let Some((s, reqs)) = self.docker.iter().find(|(s, _)| *s == scope) {
                let label = if s.is_empty() {
                    "transports.docker \"\"".to_string()
                } else {
                    format!("transports.docker {s:?}")
                };
                return (label, reqs);
            }
        }
        ("default".to_string(), &self.default)
    }

    /// Whether evaluating `image` will need its signatures.
    pub fn needs_signatures(&self, image: &Reference) -> bool {
        self.requirements_for(image)
            .1
            .iter()
            .any(|r| matches!(r, Requirement::SigstoreSigned(_)))
    }

    /// Evaluates the policy for `image` whose manifest has `digest`.
    /// `signatures` is called at most once, only if a requirement needs them.
    pub fn evaluate(
        &self,
        image: &Reference,
        digest: &Digest,
        signatures: &mut dyn FnMut() -> Result<Vec<Candidate>, TrustError>,
    ) -> Result<Decision, TrustError> {
        let (scope, reqs) = self.requirements_for(image);
        let reject = |kind: &str, why: String| TrustError::Rejected {
            image: image.to_string(),
            rule: format!("{kind:?} in {scope} of {}", self.path.display()),
            why,
        };
        if reqs.is_empty() {
            return Err(reject("(empty)", "an empty requirement list rejects everything".into()));
        }
        let mut fetched: Option<Vec<Candidate>> = None;
        let mut verified = Vec::new();
        for req in reqs {
            match req {
                Requirement::InsecureAcceptAnything => {}
                Requirement::Reject => return Err(reject(req.kind(), "the policy rejects this image".into())),
                Requirement::Unsupported { why, .. } => return Err(reject(req.kind(), why.clone())),
                Requirement::SigstoreSigned(s) => {
                    if let Some(why) = &s.unsupported {
                        return Err(reject(req.kind(), why.clone()));
                    }
                    if fetched.is_none() {
                        fetched = Some(signatures()?);
                    }
                    let candidates = fetched.as_deref().unwrap_or_default();
                    match s.accept(image, digest, candidates) {
                        Ok(v) => verified.push(v),
                        Err(why) => return Err(reject(req.kind(), why)),
                    }
                }
            }
        }
        Ok(Decision { scope, verified })
    }
}

impl SigstoreSigned {
    /// The first candidate that verifies, or why none did.
    pub fn accept(&self, image: &Reference, digest: &Digest, candidates: &[Candidate]) -> Result<Verified, String> {
        if candidates.is_empty() {
            return Err("a signature was required, but no signature exists".into());
        }
        let mut reasons: Vec<String> = Vec::new();
        for c in candidates {
            match self.check(image, digest, c) {
                Ok(v) => return Ok(v),
                Err(why) => {
                    if !reasons.contains(&why) {
                        reasons.push(why)
                    }
                }
            }
        }
        Err(reasons.join("; "))
    }

    fn check(&self, image: &Reference, digest: &Digest, c: &Candidate) -> Result<Verified, String> {
        let (payload, key) = verify_candidate(&self.keys, digest, c)?;
        let signed = payload.identity().map_err(|e| e.to_string())?;
        if !self.identity.matches(image, &signed) {
            return Err(format!(
                "the signature is for {:?}, which does not match {} ({})",
                payload.docker_reference,
                image,
                self.identity.name()
            ));
        }
        Ok(Verified {
            signature_digest: c.attached.layer.digest.clone(),
            identity: payload.docker_reference,
            algorithm: key.algorithm(),
        })
    }
}

/// Checks one signature without its identity: made by one of `keys`, over a
/// well-formed payload, for manifest `digest`. Returns the payload and the key.
pub fn verify_candidate<'k>(
    keys: &'k [PublicKey],
    digest: &Digest,
    c: &Candidate,
) -> Result<(Payload, &'k PublicKey), String> {
    let sig = c
        .attached
        .signature
        .as_ref()
        .map_err(|e| format!("signature {}: {e}", c.attached.layer.digest))?;
    let key = keys
        .iter()
        .find(|k| k.verify(&c.payload, sig).is_ok())
        .ok_or_else(|| {
            if c.attached.keyless {
                "the signature was not made by a trusted key (it carries a certificate: keyless signatures cannot be verified by barge)".to_string()
            } else {
                "the signature was not made by a trusted key".to_string()
            }
        })?;
    let payload = Payload::parse(&c.payload).map_err(|e| e.to_string())?;
    if payload.manifest_digest != *digest {
        return Err(format!(
            "the signature is for manifest {}, not {digest} (was the image changed after signing?)",
            payload.manifest_digest
        ));
    }
    Ok((payload, key))
}

impl IdentityRule {
    pub fn name(&self) -> &'static str {
        match self {
            IdentityRule::MatchExact => "matchExact",
            IdentityRule::MatchRepoDigestOrExact => "matchRepoDigestOrExact",
            IdentityRule::MatchRepository => "matchRepository",
            IdentityRule::ExactReference(_) => "exactReference",
            IdentityRule::ExactRepository(_) => "exactRepository",
            IdentityRule::RemapIdentity { .. } => "remapIdentity",
        }
    }

    /// Whether a signature for `signed` is acceptable for `image`.
    pub fn matches(&self, image: &Reference, signed: &Reference) -> bool {
        match self {
            IdentityRule::MatchExact => exact(image, signed),
            IdentityRule::MatchRepoDigestOrExact => repo_digest_or_exact(image, signed),
            IdentityRule::MatchRepository => image.name() == signed.name(),
            IdentityRule::ExactReference(r) => exact(r, signed),
            IdentityRule::ExactRepository(r) => r.name() == signed.name(),
            IdentityRule::RemapIdentity { prefix, signed_prefix } => {
                let text = image.to_string();
                let remapped = match text.strip_prefix(prefix.as_str()) {
                    Some(rest) if rest.is_empty() || rest.starts_with(['/', ':', '@']) => {
                        match Reference::parse(&format!("{signed_prefix}{rest}")) {
                            Ok(r) => r,
                            Err(_) => return false,
                        }
                    }
                    _ => image.clone(),
                };
                repo_digest_or_exact(&remapped, signed)
            }
        }
    }
}

fn name_only(r: &Reference) -> bool {
    r.tag().is_none() && r.digest().is_none()
}

fn exact(a: &Reference, b: &Reference) -> bool {
    !name_only(a) && !name_only(b) && a.to_string() == b.to_string()
}

fn repo_digest_or_exact(image: &Reference, signed: &Reference) -> bool {
    if image.digest().is_some() {
        image.name() == signed.name()
    } else {
        exact(image, signed)
    }
}

/// The scopes that may name `image`, most specific first, ending with the transport default `""`.
pub fn scopes(image: &Reference) -> Vec<String> {
    let name = image.name();
    let mut out = vec![image.to_string(), name.clone()];
    let mut ns = name.as_str();
    while let Some(i) = ns.rfind('/') {
        ns = &ns[..i];
        out.push(ns.to_string());
    }
    let host = image.registry();
    let bare = host.split(':').next().unwrap_or(host);
    let mut rest = bare;
    while let Some(i) = rest.find('.') {
        rest = &rest[i + 1..];
        if !rest.is_empty() {
            out.push(format!("*.{rest}"));
        }
    }
    out.push(String::new());
    out.dedup();
    out
}

fn requirements(v: &Value, dir: &Path) -> Result<Vec<Requirement>, String> {
    let list = v.as_array().ok_or("not a list of requirements")?;
    list.iter().map(|r| requirement(r, dir)).collect()
}

fn requirement(v: &Value, dir: &Path) -> Result<Requirement, String> {
    let o = v.as_object().ok_or("a requirement is not an object")?;
    let kind = o
        .get("type")
        .and_then(Value::as_str)
        .ok_or("a requirement has no \"type\"")?;
    match kind {
        "insecureAcceptAnything" => Ok(Requirement::InsecureAcceptAnything),
        "reject" => Ok(Requirement::Reject),
        "signedBy" => Ok(Requirement::Unsupported {
            kind: kind.into(),
            why: "GPG (simple signing) signatures are not supported by barge; use sigstoreSigned".into(),
        }),
        "sigstoreSigned" => sigstore(o, dir).map(Requirement::SigstoreSigned),
        other => Err(format!("unknown requirement type {other:?}")),
    }
}

fn sigstore(o: &Map<String, Value>, dir: &Path) -> Result<SigstoreSigned, String> {
    let mut keys = Vec::new();
    let strings = |field: &str| -> Result<Vec<String>, String> {
        match o.get(field) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or(format!("{field} holds a non-string"))
                })
                .collect(),
            Some(_) => Err(format!("{field} is not a string")),
        }
    };
    let mut paths = strings("keyPath")?;
    paths.extend(strings("keyPaths")?);
    for p in paths {
        let full = dir.join(&p);
        let text = std::fs::read_to_string(&full).map_err(|e| format!("keyPath {}: {e}", full.display()))?;
        keys.push(PublicKey::from_pem(&text).map_err(|e| format!("keyPath {}: {e}", full.display()))?);
    }
    let mut datas = strings("keyData")?;
    datas.extend(strings("keyDatas")?);
    for d in datas {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map_err(|e| format!("keyData is not base64: {e}"))?;
        let text = String::from_utf8(pem).map_err(|_| "keyData is not a PEM text".to_string())?;
        keys.push(PublicKey::from_pem(&text).map_err(|e| format!("keyData: {e}"))?);
    }
    let unsupported = if o.contains_key("fulcio") || o.contains_key("pki") {
        Some("keyless (Fulcio certificate) signatures cannot be verified by barge: use keyPath or keyData".into())
    } else if o.contains_key("rekorPublicKeyPath")
        || o.contains_key("rekorPublicKeyData")
        || o.contains_key("rekorPublicKeyPaths")
        || o.contains_key("rekorPublicKeyDatas")
    {
        Some("Rekor transparency-log proofs cannot be verified by barge".into())
    } else if keys.is_empty() {
        return Err("sigstoreSigned needs keyPath, keyPaths, keyData or keyDatas".into());
    } else {
        None
    };
    let identity = match o.get("signedIdentity") {
        None => IdentityRule::MatchRepoDigestOrExact,
        Some(v) => identity(v)?,
    };
    Ok(SigstoreSigned {
        keys,
        identity,
        unsupported,
    })
}

fn identity(v: &Value) -> Result<IdentityRule, String> {
    let o = v.as_object().ok_or("signedIdentity is not an object")?;
    let field = |name: &str| -> Result<String, String> {
        o.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(format!("signedIdentity needs {name:?}"))
    };
    let parse = |name: &str| -> Result<Reference, String> {
        let text = field(name)?;
        Reference::parse(&text).map_err(|e| format!("signedIdentity {name}: {e}"))
    };
    match o.get("type").and_then(Value::as_str) {
        Some("matchExact") => Ok(IdentityRule::MatchExact),
        Some("matchRepoDigestOrExact") => Ok(IdentityRule::MatchRepoDigestOrExact),
        Some("matchRepository") => Ok(IdentityRule::MatchRepository),
        Some("exactReference") => {
            let r = parse("dockerReference")?;
            if name_only(&r) {
                return Err("exactReference needs a tag or digest".into());
            }
            Ok(IdentityRule::ExactReference(r))
        }
        Some("exactRepository") => Ok(IdentityRule::ExactRepository(parse("dockerRepository")?)),
        Some("remapIdentity") => Ok(IdentityRule::RemapIdentity {
            prefix: field("prefix")?,
            signed_prefix: field("signedPrefix")?,
        }),
        Some(other) => Err(format!("unknown signedIdentity type {other:?}")),
        None => Err("signedIdentity has no \"type\"".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attach::signature_layer;
    use crate::keys::PrivateKey;

    fn r(s: &str) -> Reference {
        Reference::parse_default_tag(s).expect("ref")
    }

    fn policy_with_key(key: &PublicKey, identity: &str) -> Policy {
        let data = base64::engine::general_purpose::STANDARD.encode(key.to_pem().expect("pem"));
        let text = format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{
                "localhost:5000/open":[{{"type":"insecureAcceptAnything"}}],
                "localhost:5000":[{{"type":"sigstoreSigned","keyData":"{data}","signedIdentity":{identity}}}]
            }}}}}}"#
        );
        Policy::parse(&text, Path::new("/etc/containers/policy.json")).expect("policy")
    }

    fn candidate(key: &PrivateKey, identity: &str, digest: &Digest) -> Candidate {
        let payload = Payload::for_image(&r(identity), digest).to_bytes();
        let sig = key.sign(&payload);
        Candidate {
            attached: Attached {
                layer: signature_layer(&payload, &sig),
                signature: Ok(sig),
                keyless: false,
            },
            payload,
        }
    }

    #[test]
    fn scopes_go_from_specific_to_default() {
        assert_eq!(
            scopes(&r("registry.example.com:5000/ns/app:v1")),
            [
                "registry.example.com:5000/ns/app:v1",
                "registry.example.com:5000/ns/app",
                "registry.example.com:5000/ns",
                "registry.example.com:5000",
                "*.example.com",
                "*.com",
                ""
            ]
        );
        let key = PrivateKey::generate_p256().public_key();
        let p = policy_with_key(&key, r#"{"type":"matchRepoDigestOrExact"}"#);
        assert_eq!(
            p.requirements_for(&r("localhost:5000/open")).0,
            "transports.docker \"localhost:5000/open\""
        );
        assert!(p.needs_signatures(&r("localhost:5000/app")));
        assert_eq!(p.requirements_for(&r("quay.io/x")).0, "default");
    }

    #[test]
    fn sigstore_signed_accepts_only_a_matching_signature_by_the_key() {
        let key = PrivateKey::generate_p256();
        let other = PrivateKey::generate_p256();
        let p = policy_with_key(&key.public_key(), r#"{"type":"matchRepoDigestOrExact"}"#);
        let image = r("localhost:5000/app:v1");
        let digest = Digest::of(b"manifest");
        let eval = |cands: Vec<Candidate>| p.evaluate(&image, &digest, &mut || Ok(cands.clone()));

        let ok = eval(vec![
            candidate(&other, "localhost:5000/app:v1", &digest),
            candidate(&key, "localhost:5000/app:v1", &digest),
        ])
        .expect("accepted");
        assert_eq!(ok.verified.len(), 1);
        assert_eq!(ok.verified[0].identity, "localhost:5000/app:v1");

        let msg = |e: TrustError| e.to_string();
        let unsigned = msg(eval(vec![]).expect_err("unsigned"));
        assert!(
            unsigned.contains("no signature exists") && unsigned.contains("sigstoreSigned"),
            "{unsigned}"
        );
        let wrong_key = msg(eval(vec![candidate(&other, "localhost:5000/app:v1", &digest)]).expect_err("key"));
        assert!(wrong_key.contains("trusted key"), "{wrong_key}");
        let tampered =
            msg(eval(vec![candidate(&key, "localhost:5000/app:v1", &Digest::of(b"x"))]).expect_err("digest"));
        assert!(tampered.contains("not sha256:"), "{tampered}");
        let elsewhere = msg(eval(vec![candidate(&key, "localhost:5000/other:v1", &digest)]).expect_err("identity"));
        assert!(elsewhere.contains("does not match"), "{elsewhere}");
        let other_tag = msg(eval(vec![candidate(&key, "localhost:5000/app:v2", &digest)]).expect_err("tag"));
        assert!(other_tag.contains("does not match"), "{other_tag}");
        // By digest, the repository is enough.
        let pinned = image.with_digest(digest.clone());
        p.evaluate(&pinned, &digest, &mut || {
            Ok(vec![candidate(&key, "localhost:5000/app:v2", &digest)])
        })
        .expect("digest reference");
        let rejected = p
            .evaluate(&r("quay.io/x"), &digest, &mut || Ok(vec![]))
            .expect_err("reject");
        assert!(rejected.to_string().contains("\"reject\" in default"), "{rejected}");
    }

    #[test]
    fn identity_rules() {
        let sig = r("src.example.com/team/app:v1");
        let remap = IdentityRule::RemapIdentity {
            prefix: "mirror.local:5000/copy".into(),
            signed_prefix: "src.example.com/team".into(),
        };
        assert!(remap.matches(&r("mirror.local:5000/copy/app:v1"), &sig));
        assert!(!remap.matches(&r("mirror.local:5000/copyx/app:v1"), &sig));
        assert!(!remap.matches(&r("mirror.local:5000/copy/app:v2"), &sig));
        assert!(IdentityRule::MatchRepository.matches(&r("src.example.com/team/app:v9"), &sig));
        assert!(!IdentityRule::MatchRepository.matches(&r("src.example.com/team/other:v1"), &sig));
        assert!(IdentityRule::MatchExact.matches(&r("src.example.com/team/app:v1"), &sig));
        let repo_only = Reference::parse("src.example.com/team/app").expect("ref");
        assert!(!IdentityRule::MatchExact.matches(&r("src.example.com/team/app:v1"), &repo_only));
        assert!(IdentityRule::ExactRepository(repo_only.clone()).matches(&r("any/thing"), &sig));
    }

    #[test]
    fn bad_policies_are_errors_naming_the_place() {
        let bad = |text: &str| Policy::parse(text, Path::new("/p.json")).expect_err("bad").to_string();
        assert!(bad("{}").contains("no \"default\""));
        assert!(bad(r#"{"default":[{"type":"nope"}]}"#).contains("unknown requirement type"));
        assert!(bad(r#"{"default":[{"type":"sigstoreSigned"}]}"#).contains("needs keyPath"));
        let p = Policy::parse(
            r#"{"default":[{"type":"sigstoreSigned","fulcio":{}}]}"#,
            Path::new("/p.json"),
        )
        .expect("keyless parses");
        let e = p
            .evaluate(&r("a/b"), &Digest::of(b""), &mut || Ok(vec![]))
            .expect_err("keyless");
        assert!(e.to_string().contains("keyless"), "{e}");
    }
}
