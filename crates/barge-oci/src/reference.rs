//! Image references with the docker CLI's normalisation rules.
//!
//! `busybox` is `docker.io/library/busybox:latest`; `user/app` is
//! `docker.io/user/app:latest`; a first component with a `.` or `:`, or
//! `localhost`, is a registry host. `name@sha256:…` and `name:tag@sha256:…`
//! pin a digest. Docker Hub's API host is `registry-1.docker.io`.

use crate::digest::{Digest, DigestError};
use std::fmt;

pub const DOCKER_HUB: &str = "docker.io";
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// A fully normalised image reference.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: {0:?} is empty")]
    Empty(String),
    #[error("invalid reference format: repository name {0:?} must be lowercase")]
    Uppercase(String),
    #[error("invalid reference format: {0:?} is not a valid repository name")]
    InvalidName(String),
    #[error("invalid reference format: {0:?} is not a valid registry host")]
    InvalidHost(String),
    #[error("invalid reference format: tag {0:?} is not valid (letters, digits, '_', '.', '-'; at most 128, not starting with '.' or '-')")]
    InvalidTag(String),
    #[error("invalid reference format: repository name {0:?} is longer than 255 characters")]
    NameTooLong(String),
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    #[error("invalid reference format: {0}")]
    Digest(#[from] DigestError),
}

impl Reference {
    /// Parses and normalises a reference as `docker pull` does.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty(input.to_string()));
        }
        if input.len() == 64 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ReferenceError::HexName(input.to_string()));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => (rest, Some(d.parse::<Digest>()?)),
            None => (input, None),
        };
        // A tag is after the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&rest[..i], Some(&rest[i + 1..]))
            }
            None => (rest, None),
        };
        if let Some(t) = tag {
            validate_tag(t)?;
        }
        let (registry, repository) = split_domain(name)?;
        validate_host(&registry, input)?;
        validate_path(&repository, input)?;
        if registry.len() + 1 + repository.len() > NAME_MAX {
            return Err(ReferenceError::NameTooLong(name.to_string()));
        }
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// Parses, and adds the tag `latest` when neither tag nor digest is given.
    pub fn parse_default_tag(input: &str) -> Result<Reference, ReferenceError> {
        let mut r = Reference::parse(input)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some("latest".to_string());
        }
        Ok(r)
    }

    /// The registry as written in references (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host:port to talk to (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// The repository path (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository` (`docker.io/library/busybox`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name as the docker CLI shows it (`busybox`, `user/app`, `host:5000/app`).
    ///
    /// Docker Hub's name is left out only when the rest cannot be taken for
    /// a registry: `docker.io/my.org/app` stays as it is, since `my.org/app`
    /// would name the registry `my.org`.
    pub fn familiar_name(&self) -> String {
        if self.registry != DOCKER_HUB {
            return self.name();
        }
        match self.repository.strip_prefix("library/") {
            Some(short) if !short.contains('/') => short.to_string(),
            _ => match self.repository.split_once('/') {
                Some((first, _)) if looks_like_host(first) => self.name(),
                _ => self.repository.clone(),
            },
        }
    }

    /// The familiar form with tag and digest (`busybox:latest`).
    pub fn familiar(&self) -> String {
        self.render(&self.familiar_name())
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        validate_tag(tag)?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository, tag and digest on another registry, below an
    /// optional path prefix: the name a mirror of this registry serves it as.
    pub fn moved_to(&self, registry: &str, prefix: &str) -> Result<Reference, ReferenceError> {
        let prefix = prefix.trim_matches('/');
        let repository = if prefix.is_empty() {
            self.repository.clone()
        } else {
            format!("{prefix}/{}", self.repository)
        };
        let mut r = Reference::parse(&format!("{registry}/{repository}"))?;
        r.tag = self.tag.clone();
        r.digest = self.digest.clone();
        Ok(r)
    }

    /// The same repository pinned to a digest, with no tag.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The tag or digest to ask the registry for: the digest when pinned.
    pub fn manifest_key(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    fn render(&self, name: &str) -> String {
        let mut s = name.to_string();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&self.name()))
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Is this first component of a name a registry host (docker's rule)?
fn looks_like_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost" || first.bytes().any(|b| b.is_ascii_uppercase())
}

fn split_domain(name: &str) -> Result<(String, String), ReferenceError> {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest)) if looks_like_host(first) => (first.to_string(), rest.to_string()),
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        DOCKER_HUB.to_string()
    } else {
        domain
    };
    let path = if domain == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    Ok((domain, path))
}

fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let ok = !tag.is_empty()
        && tag.len() <= TAG_MAX
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::InvalidTag(tag.to_string()))
    }
}

fn validate_host(host: &str, input: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::InvalidHost(input.to_string());
    let (h, port) = if let Some(rest) = host.strip_prefix('[') {
        // [IPv6]:port
        let (addr, after) = rest.split_once(']').ok_or_else(bad)?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        let port = match after {
            "" => None,
            a => Some(a.strip_prefix(':').ok_or_else(bad)?),
        };
        (None, port)
    } else {
        match host.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return Err(bad());
        }
    }
    if let Some(h) = h {
        let ok = !h.is_empty()
            && h.split('.').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !c.starts_with('-')
                    && !c.ends_with('-')
            });
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

fn validate_path(path: &str, input: &str) -> Result<(), ReferenceError> {
    if path.is_empty() {
        return Err(ReferenceError::InvalidName(input.to_string()));
    }
    for comp in path.split('/') {
        if comp.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(input.to_string()));
        }
        if !valid_path_component(comp) {
            return Err(ReferenceError::InvalidName(input.to_string()));
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        Reference::parse_default_tag(s).unwrap().to_string()
    }

    #[test]
    fn moved_to_a_mirror() {
        let r = Reference::parse_default_tag("busybox").unwrap();
        let m = r.moved_to("mirror.local:5000", "").unwrap();
        assert_eq!(m.to_string(), "mirror.local:5000/library/busybox:latest");
        assert_eq!(m.api_host(), "mirror.local:5000");
        let m = r.moved_to("mirror.local", "/hub/").unwrap();
        assert_eq!(m.to_string(), "mirror.local/hub/library/busybox:latest");
        let d = Reference::parse("quay.io/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
            .unwrap();
        assert_eq!(d.moved_to("localhost:1", "q").unwrap().digest(), d.digest());
        assert!(r.moved_to("Bad Host", "").is_err());
    }

    #[test]
    fn docker_normalisation() {
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(full("user/app"), "docker.io/user/app:latest");
        assert_eq!(full("docker.io/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            full("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(full("localhost/app"), "localhost/app:latest");
        assert_eq!(full("localhost:5000/a/b/c:v1"), "localhost:5000/a/b/c:v1");
        assert_eq!(full("127.0.0.1:5000/app:v1"), "127.0.0.1:5000/app:v1");
        assert_eq!(full("[::1]:5000/app"), "[::1]:5000/app:latest");
        assert_eq!(
            full("registry.gitlab.com/group/project/image:tag"),
            "registry.gitlab.com/group/project/image:tag"
        );
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(full(&format!("busybox@{d}")), format!("docker.io/library/busybox@{d}"));
        assert_eq!(
            full(&format!("busybox:1@{d}")),
            format!("docker.io/library/busybox:1@{d}")
        );
    }

    #[test]
    fn api_host_and_familiar() {
        let r = Reference::parse_default_tag("busybox").unwrap();
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.familiar(), "busybox:latest");
        let r = Reference::parse_default_tag("user/app:v2").unwrap();
        assert_eq!(r.familiar(), "user/app:v2");
        let r = Reference::parse_default_tag("localhost:5000/app").unwrap();
        assert_eq!(r.api_host(), "localhost:5000");
        assert_eq!(r.familiar(), "localhost:5000/app:latest");
        assert_eq!(r.manifest_key(), "latest");
    }

    #[test]
    fn invalid_references() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "busybox@sha256:short",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "host:port/app",
            "local host/app",
            "busybox:tag with space",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(matches!(Reference::parse("Busybox"), Err(ReferenceError::Uppercase(_))));
        let long = format!("a/{}", "b".repeat(300));
        assert!(matches!(Reference::parse(&long), Err(ReferenceError::NameTooLong(_))));
        assert!(Reference::parse(&format!("a:{}", "t".repeat(129))).is_err());
    }

    #[test]
    fn separators() {
        assert!(valid_path_component("a_b"));
        assert!(valid_path_component("a__b"));
        assert!(valid_path_component("a---b"));
        assert!(valid_path_component("a.b"));
        assert!(!valid_path_component("a___b"));
        assert!(!valid_path_component("a._b"));
    }
}
