//! Platforms (`os/arch[/variant]`) and selecting one from an index.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Option::is_none")]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlatformError {
    #[error("invalid platform {0:?}: expected os/arch[/variant], for example linux/amd64 or linux/arm/v7")]
    Invalid(String),
}

impl Platform {
    /// Parses `os/arch[/variant]` (also `os` alone, meaning this host's arch).
    pub fn parse(s: &str) -> Result<Platform, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        if parts.is_empty() || parts.len() > 3 || !parts.iter().all(|p| valid(p)) {
            return Err(PlatformError::Invalid(s.to_string()));
        }
        let host = Platform::host();
        let os = parts[0].to_ascii_lowercase();
        let (architecture, variant) = match parts.len() {
            1 => (host.architecture, host.variant),
            _ => normalize_arch(
                &parts[1].to_ascii_lowercase(),
                parts.get(2).map(|v| v.to_ascii_lowercase()),
            ),
        };
        Ok(Platform {
            architecture,
            os,
            variant,
            ..Platform::default()
        })
    }

    /// The platform of this machine, as Go's GOOS/GOARCH name it.
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Platform {
            architecture: arch.to_string(),
            os: "linux".to_string(),
            variant: variant.map(str::to_string),
            ..Platform::default()
        }
    }

    /// Does a candidate from an index (or an image config) satisfy this wanted platform?
    /// A wanted variant must match (arm64's empty variant means v8); no wanted
    /// variant accepts any.
    pub fn matches(&self, candidate: &Platform) -> bool {
        let (arch, variant) = normalize_arch(&candidate.architecture, candidate.variant.clone());
        if self.os != candidate.os || self.architecture != arch {
            return false;
        }
        match (&self.variant, &variant) {
            (None, _) => true,
            (Some(want), Some(have)) => want == have,
            // An index entry without a variant satisfies the default variant.
            (Some(want), None) => default_variant(&arch) == Some(want.as_str()),
        }
    }

    /// Picks the best candidate for this platform: an exact variant match
    /// first, then the highest compatible variant, in index order.
    pub fn select<'a, T>(&self, candidates: impl IntoIterator<Item = (&'a Platform, T)>) -> Option<T> {
        let mut best: Option<(u8, T)> = None;
        for (p, item) in candidates {
            if !self.matches(p) {
                continue;
            }
            let (arch, variant) = normalize_arch(&p.architecture, p.variant.clone());
            let target = self.variant.as_deref().or(default_variant(&arch));
            let have = variant.as_deref().or(default_variant(&arch));
            let rank = if have == target { 2 } else { 1 };
            if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                best = Some((rank, item));
            }
        }
        best.map(|(_, t)| t)
    }
}

fn default_variant(arch: &str) -> Option<&'static str> {
    match arch {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    }
}

fn normalize_arch(arch: &str, variant: Option<String>) -> (String, Option<String>) {
    let variant = variant.filter(|v| !v.is_empty());
    match arch {
        "x86_64" | "x86-64" => ("amd64".into(), None),
        "aarch64" | "arm64" => (
            "arm64".into(),
            match variant.as_deref() {
                Some("8") | Some("v8") => Some("v8".into()),
                _ => variant,
            },
        ),
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "i386" => ("386".into(), None),
        other => (other.to_string(), variant),
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(p("linux/amd64").to_string(), "linux/amd64");
        assert_eq!(p("linux/arm/v7").to_string(), "linux/arm/v7");
        assert_eq!(p("linux/aarch64").to_string(), "linux/arm64");
        assert!(Platform::parse("linux/").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
        assert!(Platform::parse("linux amd64").is_err());
    }

    #[test]
    fn select_with_variants() {
        let cands = [
            p("linux/amd64"),
            p("linux/arm/v6"),
            p("linux/arm/v7"),
            Platform {
                variant: None,
                ..p("linux/arm64")
            },
        ];
        let pick = |want: &str| p(want).select(cands.iter().enumerate().map(|(i, c)| (c, i)));
        assert_eq!(pick("linux/amd64"), Some(0));
        assert_eq!(pick("linux/arm/v6"), Some(1));
        assert_eq!(pick("linux/arm/v7"), Some(2));
        assert_eq!(pick("linux/arm64"), Some(3));
        assert_eq!(pick("linux/arm64/v8"), Some(3));
        assert_eq!(pick("linux/arm"), Some(2));
        assert_eq!(pick("linux/arm/v5"), None);
        assert_eq!(pick("windows/amd64"), None);
        assert_eq!(pick("linux/s390x"), None);
    }
}
