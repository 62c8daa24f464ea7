//! Types of the OCI image and distribution specs as barge uses them:
//! digests, docker-style image references, platforms, media types, and
//! parsing of manifests, indexes and image configs.
//!
//! This crate is shared vocabulary. It does no I/O: it does not talk HTTP
//! (that is `barge-registry`) and does not know the store's disk layout
//! (that is `barge-store`). Manifests and configs are parsed from the exact
//! bytes received and never re-serialised, so digests stay valid; a config
//! that barge writes (a build's) goes through [`ContainerConfig::to_json`],
//! which keeps the key order and unknown fields of what was read.

#![forbid(unsafe_code)]

pub mod digest;
pub mod image;
pub mod media;
pub mod platform;
pub mod reference;
pub mod time;

pub use digest::{Digest, DigestError, Hasher};
pub use image::{
    ContainerConfig, Descriptor, ImageConfig, ImageIndex, ImageManifest, Manifest, ManifestError, NoMatchingPlatform,
};
pub use platform::{Platform, PlatformError};
pub use reference::{Reference, ReferenceError};
