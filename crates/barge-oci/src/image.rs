//! Manifests, indexes and image configs, parsed from the exact bytes received.

use crate::digest::Digest;
use crate::media;
use crate::platform::Platform;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest manifest or index barge accepts (the distribution registry's own limit).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// Largest image config barge accepts.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }

    /// The URLs a blob may be fetched from besides its registry (a foreign
    /// layer's); empty for most blobs.
    pub fn urls(&self) -> &[String] {
        self.urls.as_deref().unwrap_or_default()
    }

    /// A non-distributable layer that says where else to get it: pushing it
    /// is left to its URLs unless the destination registry allows such
    /// artifacts (docker's `allow-nondistributable-artifacts`).
    pub fn is_foreign(&self) -> bool {
        media::is_non_distributable(&self.media_type) && !self.urls().is_empty()
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// An OCI image manifest or Docker v2 schema 2 manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    /// OCI 1.1: the manifest this one refers to (a signature's image, an SBOM's).
    #[serde(default)]
    pub subject: Option<Descriptor>,
    /// OCI 1.1: what kind of artifact this is, when it is not an image.
    #[serde(default)]
    pub artifact_type: Option<String>,
}

/// An OCI image index or Docker manifest list.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// No image manifest of an index is for the wanted platform (docker's message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no matching manifest for {wanted} in the manifest list entries (available: {available})")]
pub struct NoMatchingPlatform {
    pub wanted: String,
    pub available: String,
}

impl ImageIndex {
    /// The image manifest for `wanted` ([`crate::Platform::select`]'s choice
    /// among the image manifests that name a platform).
    pub fn select(&self, wanted: &crate::Platform) -> Result<&Descriptor, NoMatchingPlatform> {
        let candidates = self
            .manifests
            .iter()
            .filter(|d| crate::media::is_image_manifest(&d.media_type))
            .filter_map(|d| d.platform.as_ref().map(|p| (p, d)));
        wanted.select(candidates).ok_or_else(|| NoMatchingPlatform {
            wanted: wanted.to_string(),
            available: self
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// A parsed manifest of either kind, with its media type.
#[derive(Debug, Clone)]
pub enum Manifest {
    Image {
        media_type: String,
        manifest: Box<ImageManifest>,
    },
    Index {
        media_type: String,
        index: ImageIndex,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is {size} bytes, more than the {limit} bytes allowed")]
    TooLarge { size: u64, limit: u64 },
    #[error("this image uses the deprecated Docker Image manifest v2 schema 1, which barge does not support; ask the publisher to push it again with a current tool")]
    Schema1,
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("manifest is not valid JSON for {media_type}: {source}")]
    Json {
        media_type: String,
        source: serde_json::Error,
    },
    #[error("manifest has schemaVersion {0}, expected 2")]
    SchemaVersion(u32),
    #[error("manifest media type field {field:?} disagrees with the registry's Content-Type {header:?}")]
    MediaTypeMismatch { field: String, header: String },
    #[error("layer {index} has media type {media_type:?}, which barge cannot unpack")]
    UnsupportedLayer { index: usize, media_type: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

impl Manifest {
    /// Parses manifest bytes. `content_type` is the registry's `Content-Type`
    /// (or the descriptor's media type); the `mediaType` field wins when the
    /// header is generic, and a contradiction is an error.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge {
                size: bytes.len() as u64,
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let header = content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string());
        if matches!(
            header.as_deref(),
            Some(media::DOCKER_SCHEMA1) | Some(media::DOCKER_SCHEMA1_SIGNED)
        ) {
            return Err(ManifestError::Schema1);
        }
        let probe: Probe = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            media_type: header.clone().unwrap_or_else(|| "manifest".into()),
            source,
        })?;
        if probe.schema_version == Some(1) {
            return Err(ManifestError::Schema1);
        }
        let known = |m: &str| media::is_index(m) || media::is_image_manifest(m);
        let media_type = match (&probe.media_type, &header) {
            (Some(field), Some(h)) if known(h) && field != h => {
                return Err(ManifestError::MediaTypeMismatch {
                    field: field.clone(),
                    header: h.clone(),
                })
            }
            (Some(field), _) => field.clone(),
            (None, Some(h)) if known(h) => h.clone(),
            // OCI allows mediaType to be absent: tell by shape.
            (None, _) if probe.manifests.is_some() => media::OCI_INDEX.to_string(),
            (None, _) if probe.config.is_some() => media::OCI_MANIFEST.to_string(),
            (None, h) => return Err(ManifestError::UnsupportedMediaType(h.clone().unwrap_or_default())),
        };
        if media_type == media::DOCKER_SCHEMA1 || media_type == media::DOCKER_SCHEMA1_SIGNED {
            return Err(ManifestError::Schema1);
        }
        let json_err = |source| ManifestError::Json {
            media_type: media_type.clone(),
            source,
        };
        if media::is_index(&media_type) {
            let index: ImageIndex = serde_json::from_slice(bytes).map_err(json_err)?;
            if index.schema_version != 2 {
                return Err(ManifestError::SchemaVersion(index.schema_version));
            }
            Ok(Manifest::Index { media_type, index })
        } else if media::is_image_manifest(&media_type) {
            let manifest: ImageManifest = serde_json::from_slice(bytes).map_err(json_err)?;
            if manifest.schema_version != 2 {
                return Err(ManifestError::SchemaVersion(manifest.schema_version));
            }
            Ok(Manifest::Image {
                media_type,
                manifest: Box::new(manifest),
            })
        } else {
            Err(ManifestError::UnsupportedMediaType(media_type))
        }
    }

    pub fn media_type(&self) -> &str {
        match self {
            Manifest::Image { media_type, .. } | Manifest::Index { media_type, .. } => media_type,
        }
    }
}

impl ImageManifest {
    /// Checks that every layer is a media type barge can unpack.
    pub fn check_layers(&self) -> Result<(), ManifestError> {
        for (index, l) in self.layers.iter().enumerate() {
            if media::layer_compression(&l.media_type).is_none() {
                return Err(ManifestError::UnsupportedLayer {
                    index,
                    media_type: l.media_type.clone(),
                });
            }
        }
        Ok(())
    }
}

/// The parts of an image config barge reads. The full JSON is kept as
/// received; `raw` carries it for `inspect`.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default, deserialize_with = "ContainerConfig::deserialize_ordered")]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
    #[serde(default)]
    pub history: Vec<History>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub docker_version: Option<String>,
}

/// The `config` of an image config: how a container of the image runs,
/// with docker's names (its image spec v1.2 and the OCI image spec's
/// `config`). Fields barge does not know are kept in [`Self::other`], and
/// the order of the keys is kept too: [`Self::to_json`] writes back what
/// was read, byte for byte, with the keys set since appended in the order
/// they were set ([`Self::touch`]). `None` is a key absent or `null`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `user`, `uid`, `user:group`, `uid:gid`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `PORT/PROTO` → `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<serde_json::Map<String, serde_json::Value>>,
    /// `KEY=VALUE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// Windows only: the command line is already escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// Container paths → `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Dockerfile instructions run when the image is a build's base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<indexmap::IndexMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// The shell of shell-form commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Everything else (`Hostname`, `Image`, `Tty`, … and fields of
    /// later specs), as received.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
    /// The keys in the order read or set.
    #[serde(skip)]
    order: Vec<String>,
}

/// `config.Healthcheck`; durations in nanoseconds, 0 for the default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `[]` inherit, `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", command]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl ContainerConfig {
    /// Parses a `config` object, keeping the order of its keys.
    pub fn from_json(map: serde_json::Map<String, serde_json::Value>) -> Result<ContainerConfig, serde_json::Error> {
        let order = map.keys().cloned().collect();
        let mut c: ContainerConfig = serde_json::from_value(serde_json::Value::Object(map))?;
        c.order = order;
        Ok(c)
    }

    fn deserialize_ordered<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ContainerConfig>, D::Error> {
        match Option::<serde_json::Map<String, serde_json::Value>>::deserialize(d)? {
            Some(map) => ContainerConfig::from_json(map)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }

    /// Records that `key` (docker's name: `Env`, `Cmd`, …) is set now: a
    /// key new to the config is written after those there before. A key
    /// touched and left `None` is written as `null`, as docker writes a
    /// `Cmd` that an `ENTRYPOINT` cleared.
    pub fn touch(&mut self, key: &str) {
        if !self.order.iter().any(|k| k == key) {
            self.order.push(key.to_string());
        }
    }

    /// The config as JSON: the keys in the order read or touched (those
    /// left `None` as `null`), then any others set.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut fields = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m,
            // A struct of strings, lists and maps always serialises to an object.
            _ => serde_json::Map::new(),
        };
        let mut out = serde_json::Map::new();
        for k in &self.order {
            let v = fields.remove(k).unwrap_or(serde_json::Value::Null);
            out.insert(k.clone(), v);
        }
        out.extend(fields);
        out
    }

    /// The labels, sorted.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("image config is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("image config has rootfs type {0:?}, expected \"layers\"")]
    RootFsType(String),
    #[error("image config lists {diff_ids} layer diff IDs but the manifest has {layers} layers")]
    LayerCount { diff_ids: usize, layers: usize },
}

impl ImageConfig {
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, ConfigError> {
        let c: ImageConfig = serde_json::from_slice(bytes)?;
        if c.rootfs.kind != "layers" {
            return Err(ConfigError::RootFsType(c.rootfs.kind));
        }
        Ok(c)
    }

    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            variant: self.variant.clone(),
            ..Platform::default()
        }
    }

    /// The image's labels (`config.Labels`).
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.config.as_ref().map(ContainerConfig::labels).unwrap_or_default()
    }
}

/// The chain IDs of a list of layer diff IDs (image-spec: ChainID(L0) = DiffID(L0),
/// ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = chain_id(out.last(), d);
        out.push(next);
    }
    out
}

/// The chain ID of a layer with diff ID `diff_id` over the chain `parent`.
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(prev) => Digest::of(format!("{prev} {diff_id}").as_bytes()),
    }
}

/// The OCI form of a Docker v2s2 manifest or manifest list, for readers
/// that take only OCI (skopeo's, podman's and umoci's `oci:` layouts): the
/// document's own media type, its config's and its layers' become their OCI
/// equivalents ([`media::oci_equivalent`]); digests, sizes and every other
/// field stay as they are, so the config and layer blobs are shared. A
/// list's entries go through `child`, which gives the descriptor of the
/// entry's OCI form (or `None` to keep the entry as it is). Gives the OCI
/// media type and the bytes; `None` when the bytes are not a Docker
/// manifest or list.
pub fn docker_to_oci(
    bytes: &[u8],
    mut child: impl FnMut(&Descriptor) -> Option<Descriptor>,
) -> Option<(&'static str, Vec<u8>)> {
    use serde_json::Value;
    let mut doc: serde_json::Map<String, Value> = serde_json::from_slice(bytes).ok()?;
    let kind = doc.get("mediaType")?.as_str()?;
    if kind != media::DOCKER_MANIFEST && kind != media::DOCKER_MANIFEST_LIST {
        return None;
    }
    let oci = media::oci_equivalent(kind)?;
    doc.insert("mediaType".into(), Value::from(oci));
    let retype = |d: &mut Value| {
        if let Some(mt) = d.get_mut("mediaType") {
            if let Some(o) = mt.as_str().and_then(media::oci_equivalent) {
                *mt = Value::from(o);
            }
        }
    };
    if let Some(c) = doc.get_mut("config") {
        retype(c);
    }
    if let Some(Value::Array(layers)) = doc.get_mut("layers") {
        layers.iter_mut().for_each(retype);
    }
    if let Some(Value::Array(entries)) = doc.get_mut("manifests") {
        for e in entries.iter_mut() {
            let Ok(d) = serde_json::from_value::<Descriptor>(e.clone()) else {
                continue;
            };
            if let Some(new) = child(&d) {
                let Value::Object(fields) = e else { continue };
                fields.insert("mediaType".into(), Value::from(new.media_type));
                fields.insert("digest".into(), Value::from(new.digest.to_string()));
                fields.insert("size".into(), Value::from(new.size));
            }
        }
    }
    Some((oci, serde_json::to_vec(&doc).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_docker_and_oci_manifests() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{D}","size":1}},"layers":[{{"mediaType":"{}","digest":"{D}","size":2}}]}}"#,
            media::DOCKER_MANIFEST,
            media::DOCKER_CONFIG,
            media::DOCKER_LAYER_GZIP
        );
        let parsed = Manifest::parse(m.as_bytes(), Some(media::DOCKER_MANIFEST)).unwrap();
        assert!(matches!(parsed, Manifest::Image { ref media_type, .. } if media_type == media::DOCKER_MANIFEST));
        // OCI without mediaType field and a generic content type.
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{D}","size":1}},"layers":[]}}"#,
            media::OCI_CONFIG
        );
        let parsed = Manifest::parse(m.as_bytes(), Some("application/json")).unwrap();
        assert_eq!(parsed.media_type(), media::OCI_MANIFEST);
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{D}","size":3,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            media::OCI_MANIFEST
        );
        let parsed = Manifest::parse(i.as_bytes(), Some(media::OCI_INDEX)).unwrap();
        assert!(matches!(parsed, Manifest::Index { .. }));
    }

    #[test]
    fn an_index_selects_its_image_for_a_platform() {
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{m}","digest":"{D}","size":3,"platform":{{"architecture":"arm64","os":"linux"}}}},{{"mediaType":"{m}","digest":"{D}","size":4,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            m = media::OCI_MANIFEST
        );
        let Manifest::Index { index, .. } = Manifest::parse(i.as_bytes(), Some(media::OCI_INDEX)).unwrap() else {
            panic!("an index")
        };
        let amd64 = crate::Platform::parse("linux/amd64").unwrap();
        assert_eq!(index.select(&amd64).unwrap().size, 4);
        let s390x = crate::Platform::parse("linux/s390x").unwrap();
        assert_eq!(
            index.select(&s390x).unwrap_err().to_string(),
            "no matching manifest for linux/s390x in the manifest list entries (available: linux/arm64, linux/amd64)"
        );
    }

    #[test]
    fn rejects_schema1_oversize_and_contradictions() {
        let s1 = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert!(matches!(Manifest::parse(s1, None), Err(ManifestError::Schema1)));
        assert!(matches!(
            Manifest::parse(b"{}", Some(media::DOCKER_SCHEMA1_SIGNED)),
            Err(ManifestError::Schema1)
        ));
        let big = vec![b' '; MAX_MANIFEST_BYTES as usize + 1];
        assert!(matches!(
            Manifest::parse(&big, None),
            Err(ManifestError::TooLarge { .. })
        ));
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
            media::OCI_INDEX
        );
        assert!(matches!(
            Manifest::parse(m.as_bytes(), Some(media::DOCKER_MANIFEST)),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        assert!(Manifest::parse(b"not json", None).is_err());
        assert!(Manifest::parse(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#, None).is_err());
    }

    #[test]
    fn a_container_config_is_typed_and_written_back_as_read() {
        let text = r#"{"Hostname":"","User":"www","Env":["PATH=/bin","A=b"],"Cmd":null,"Image":"sha256:x","Volumes":{"/data":{}},"WorkingDir":"/srv","Entrypoint":["/init"],"OnBuild":null,"Labels":{"z":"1","a":"2"},"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000,"Future":1},"StopSignal":"SIGQUIT","Shell":["/bin/bash","-c"],"FutureField":{"x":[1,2]},"ExposedPorts":{"80/tcp":{}}}"#;
        let top = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{text},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        );
        let parsed = ImageConfig::parse(top.as_bytes()).unwrap();
        let c = parsed.config.as_ref().unwrap();
        assert_eq!(c.user.as_deref(), Some("www"));
        assert_eq!(
            c.env.as_deref(),
            Some(&["PATH=/bin".to_string(), "A=b".to_string()][..])
        );
        assert_eq!(c.cmd, None);
        assert_eq!(c.entrypoint.as_deref(), Some(&["/init".to_string()][..]));
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(c.healthcheck.as_ref().and_then(|h| h.interval), Some(1_000_000_000));
        assert!(c.exposed_ports.as_ref().unwrap().contains_key("80/tcp"));
        assert_eq!(c.other["FutureField"], serde_json::json!({"x": [1, 2]}));
        assert_eq!(
            parsed.labels().into_iter().collect::<Vec<_>>(),
            [("a".into(), "2".into()), ("z".into(), "1".into())]
        );
        // Read → write: the same bytes, unknown fields, nulls and key order kept.
        assert_eq!(serde_json::to_string(&c.to_json()).unwrap(), text);
    }

    #[test]
    fn keys_set_later_follow_in_the_order_touched() {
        let mut c =
            ContainerConfig::from_json(serde_json::from_str(r#"{"Env":["A=1"],"Cmd":["sh"]}"#).unwrap()).unwrap();
        c.labels = Some(
            [("b".to_string(), "1".to_string()), ("a".to_string(), "2".to_string())]
                .into_iter()
                .collect(),
        );
        c.touch("Labels");
        c.working_dir = Some("/w".into());
        c.touch("WorkingDir");
        c.cmd = None;
        c.touch("Cmd");
        assert_eq!(
            serde_json::to_string(&c.to_json()).unwrap(),
            r#"{"Env":["A=1"],"Cmd":null,"Labels":{"b":"1","a":"2"},"WorkingDir":"/w"}"#
        );
        assert!(ContainerConfig::from_json(serde_json::from_str(r#"{"Env":"not a list"}"#).unwrap()).is_err());
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let a: Digest = D.parse().unwrap();
        let b = Digest::of(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], Digest::of(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn docker_manifests_convert_to_oci_keeping_blobs() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{D}","size":1}},"layers":[{{"mediaType":"{}","digest":"{D}","size":2}},{{"mediaType":"{}","digest":"{D}","size":3,"urls":["http://x"]}}]}}"#,
            media::DOCKER_MANIFEST,
            media::DOCKER_CONFIG,
            media::DOCKER_LAYER_GZIP,
            media::DOCKER_LAYER_FOREIGN_GZIP
        );
        let (mt, oci) = docker_to_oci(m.as_bytes(), |_| None).unwrap();
        assert_eq!(mt, media::OCI_MANIFEST);
        let Manifest::Image { manifest, media_type } = Manifest::parse(&oci, None).unwrap() else {
            panic!("not an image")
        };
        assert_eq!(media_type, media::OCI_MANIFEST);
        assert_eq!(manifest.config.media_type, media::OCI_CONFIG);
        assert_eq!(manifest.layers[0].media_type, media::OCI_LAYER_GZIP);
        assert_eq!(manifest.layers[1].media_type, media::OCI_LAYER_NONDIST_GZIP);
        assert_eq!(manifest.layers[1].urls.as_deref(), Some(&["http://x".to_string()][..]));
        assert_eq!(manifest.layers[1].size, 3);
        // An OCI manifest is not converted.
        assert!(docker_to_oci(&oci, |_| None).is_none());

        let child = Digest::of(m.as_bytes());
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{child}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            media::DOCKER_MANIFEST_LIST,
            media::DOCKER_MANIFEST,
            m.len()
        );
        let to = Descriptor::new(media::OCI_MANIFEST, Digest::of(&oci), oci.len() as u64);
        let (_, converted) = docker_to_oci(list.as_bytes(), |d| (d.digest == child).then(|| to.clone())).unwrap();
        let Manifest::Index { index, media_type } = Manifest::parse(&converted, None).unwrap() else {
            panic!("not an index")
        };
        assert_eq!(media_type, media::OCI_INDEX);
        assert_eq!(index.manifests[0].digest, to.digest);
        assert_eq!(index.manifests[0].media_type, media::OCI_MANIFEST);
        assert_eq!(index.manifests[0].platform.as_ref().unwrap().architecture, "amd64");
    }
}
