//! Test images, built byte for byte by the harness or by umoci and skopeo,
//! and pushed to a [`Registry`] over HTTP.

use crate::registry::Registry;
use crate::{run_ok, sha256};
use std::io::Write;
use std::path::Path;
use std::process::Command;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// An HTTP agent for the harness: statuses are values, TLS is not verified.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(ureq::tls::TlsConfig::builder().disable_verification(true).build())
        .build()
        .into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Builds a layer tarball entry by entry.
pub struct LayerBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(size);
    h
}

impl LayerBuilder {
    pub fn new() -> LayerBuilder {
        LayerBuilder {
            b: tar::Builder::new(Vec::new()),
        }
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        self.b.append_data(&mut h, path, &[][..]).expect("tar dir");
        self
    }

    pub fn file(self, path: &str, data: &[u8], mode: u32) -> Self {
        self.file_owned(path, data, mode, 0, 0)
    }

    pub fn file_owned(mut self, path: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.b.append_data(&mut h, path, data).expect("tar file");
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        self.b.append_link(&mut h, path, target).expect("tar symlink");
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = header(tar::EntryType::Link, 0o644, 0);
        self.b.append_link(&mut h, path, target).expect("tar hardlink");
        self
    }

    pub fn fifo(mut self, path: &str) -> Self {
        let mut h = header(tar::EntryType::Fifo, 0o600, 0);
        self.b.append_data(&mut h, path, &[][..]).expect("tar fifo");
        self
    }

    /// A whiteout removing `path` from lower layers.
    pub fn whiteout(self, path: &str) -> Self {
        let (dir, name) = path
            .rsplit_once('/')
            .map(|(d, n)| (format!("{d}/"), n))
            .unwrap_or((String::new(), path));
        self.file(&format!("{dir}.wh.{name}"), b"", 0o644)
    }

    /// Marks `dir` opaque: lower layers' content of it is hidden.
    pub fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"", 0o644)
    }

    pub fn build(self, compression: Compression) -> Layer {
        let tar = self.b.into_inner().expect("tar finish");
        Layer::from_tar(tar, compression)
    }
}

/// A layer blob with its digests.
#[derive(Debug, Clone)]
pub struct Layer {
    pub compression: Compression,
    pub blob: Vec<u8>,
    pub digest: String,
    pub diff_id: String,
}

impl Layer {
    pub fn from_tar(tar: Vec<u8>, compression: Compression) -> Layer {
        let diff_id = sha256(&tar);
        let blob = match compression {
            Compression::None => tar,
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&tar).expect("gzip");
                e.finish().expect("gzip")
            }
            Compression::Zstd => zstd::encode_all(&tar[..], 3).expect("zstd"),
        };
        Layer {
            compression,
            digest: sha256(&blob),
            blob,
            diff_id,
        }
    }

    fn media_type(&self, style: Style) -> &'static str {
        match (style, self.compression) {
            (Style::Oci, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
            (Style::Oci, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (Style::Oci, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (Style::Docker, Compression::Gzip) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            (Style::Docker, c) => panic!("docker v2 schema 2 layers are gzip, not {c:?}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Oci,
    Docker,
}

/// What goes into an image config besides its layers.
#[derive(Debug, Clone)]
pub struct Spec {
    pub arch: String,
    pub variant: Option<String>,
    pub created: String,
    pub labels: Vec<(String, String)>,
    pub cmd: Vec<String>,
    /// `created_by` of each history entry; `None` entries are empty layers.
    pub history: Vec<(String, bool)>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            arch: "amd64".into(),
            variant: None,
            created: "2024-01-02T03:04:05Z".into(),
            labels: Vec::new(),
            cmd: vec!["/bin/sh".into()],
            history: Vec::new(),
        }
    }
}

/// An image: config, manifest, layers, all as exact bytes.
#[derive(Debug, Clone)]
pub struct Image {
    pub style: Style,
    pub layers: Vec<Layer>,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub media_type: &'static str,
    pub spec: Spec,
}

impl Image {
    pub fn new(layers: Vec<Layer>, style: Style, spec: Spec) -> Image {
        let history: Vec<serde_json::Value> = if spec.history.is_empty() {
            layers.iter().map(|l| serde_json::json!({"created": spec.created, "created_by": format!("ADD layer {}", &l.diff_id[7..19])})).collect()
        } else {
            spec.history
                .iter()
                .map(|(by, empty)| {
                    let mut h = serde_json::json!({"created": spec.created, "created_by": by});
                    if *empty {
                        h["empty_layer"] = serde_json::Value::Bool(true);
                    }
                    h
                })
                .collect()
        };
        let labels: serde_json::Map<String, serde_json::Value> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let mut config = serde_json::json!({
            "architecture": spec.arch,
            "os": "linux",
            "created": spec.created,
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": spec.cmd, "Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
            "history": history,
        });
        if let Some(v) = &spec.variant {
            config["variant"] = serde_json::Value::String(v.clone());
        }
        let config = serde_json::to_vec(&config).expect("config json");
        let config_digest = sha256(&config);
        let (media_type, config_type) = match style {
            Style::Oci => (OCI_MANIFEST, "application/vnd.oci.image.config.v1+json"),
            Style::Docker => (DOCKER_MANIFEST, "application/vnd.docker.container.image.v1+json"),
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": config_type, "digest": config_digest, "size": config.len()},
            "layers": layers.iter().map(|l| serde_json::json!({"mediaType": l.media_type(style), "digest": l.digest, "size": l.blob.len()})).collect::<Vec<_>>(),
        });
        let manifest = serde_json::to_vec(&manifest).expect("manifest json");
        Image {
            style,
            manifest_digest: sha256(&manifest),
            layers,
            config,
            config_digest,
            manifest,
            media_type,
            spec,
        }
    }

    /// A one-layer image with a few files.
    pub fn simple(style: Style, compression: Compression, marker: &str) -> Image {
        let layer = LayerBuilder::new()
            .dir("etc/", 0o755)
            .file("etc/marker", marker.as_bytes(), 0o644)
            .file("bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
            .build(compression);
        Image::new(vec![layer], style, Spec::default())
    }

    /// The image ID barge must show (first 12 hex digits of the config digest).
    pub fn short_id(&self) -> &str {
        &self.config_digest[7..19]
    }

    /// Pushes layers, config and manifest under `repo:tag`.
    pub fn push(&self, reg: &Registry, repo: &str, tag: &str) {
        for l in &self.layers {
            push_blob(reg, repo, &l.blob);
        }
        push_blob(reg, repo, &self.config);
        push_manifest(reg, repo, tag, self.media_type, &self.manifest);
    }

    /// Writes an OCI image layout with this image tagged `tag` (for umoci).
    pub fn write_layout(&self, dir: &Path, tag: &str) {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).expect("layout dir");
        let put = |bytes: &[u8]| std::fs::write(blobs.join(&sha256(bytes)[7..]), bytes).expect("blob");
        for l in &self.layers {
            put(&l.blob);
        }
        put(&self.config);
        put(&self.manifest);
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": self.media_type, "digest": self.manifest_digest, "size": self.manifest.len(),
                           "annotations": {"org.opencontainers.image.ref.name": tag}}],
        });
        std::fs::write(dir.join("index.json"), index.to_string()).expect("index.json");
    }
}

/// An index (OCI) or manifest list (Docker) of `images`, each with its platform.
pub struct Index {
    pub bytes: Vec<u8>,
    pub digest: String,
    pub media_type: &'static str,
}

impl Index {
    pub fn new(images: &[&Image], style: Style) -> Index {
        let media_type = if style == Style::Oci { OCI_INDEX } else { DOCKER_LIST };
        let manifests: Vec<serde_json::Value> = images
            .iter()
            .map(|i| {
                let mut platform = serde_json::json!({"architecture": i.spec.arch, "os": "linux"});
                if let Some(v) = &i.spec.variant {
                    platform["variant"] = serde_json::Value::String(v.clone());
                }
                serde_json::json!({"mediaType": i.media_type, "digest": i.manifest_digest, "size": i.manifest.len(), "platform": platform})
            })
            .collect();
        let bytes = serde_json::to_vec(
            &serde_json::json!({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}),
        )
        .expect("index json");
        Index {
            digest: sha256(&bytes),
            bytes,
            media_type,
        }
    }

    /// Pushes every image by digest, then the index under `tag`.
    pub fn push(&self, images: &[&Image], reg: &Registry, repo: &str, tag: &str) {
        for i in images {
            i.push(reg, repo, &i.manifest_digest);
        }
        push_manifest(reg, repo, tag, self.media_type, &self.bytes);
    }
}

fn with_auth(
    req: ureq::RequestBuilder<ureq::typestate::WithBody>,
    auth: &Option<String>,
) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
    match auth {
        Some(a) => req.header("Authorization", a.as_str()),
        None => req,
    }
}

/// A monolithic blob upload: POST, then PUT with the digest.
pub fn push_blob(reg: &Registry, repo: &str, bytes: &[u8]) {
    let agent = agent();
    let auth = reg.push_auth(repo);
    let resp = with_auth(
        agent.post(format!("{}/v2/{repo}/blobs/uploads/", reg.base_url())),
        &auth,
    )
    .send_empty()
    .expect("POST upload");
    assert_eq!(resp.status().as_u16(), 202, "starting an upload to {repo}");
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("upload Location")
        .to_string();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("{}{location}", reg.base_url())
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let resp = with_auth(agent.put(format!("{url}{sep}digest={}", sha256(bytes))), &auth)
        .header("Content-Type", "application/octet-stream")
        .send(bytes)
        .expect("PUT blob");
    assert_eq!(resp.status().as_u16(), 201, "finishing an upload to {repo}");
}

pub fn push_manifest(reg: &Registry, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
    let agent = agent();
    let auth = reg.push_auth(repo);
    let mut resp = with_auth(
        agent.put(format!("{}/v2/{repo}/manifests/{reference}", reg.base_url())),
        &auth,
    )
    .header("Content-Type", media_type)
    .send(bytes)
    .expect("PUT manifest");
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(status, 201, "pushing manifest {repo}:{reference}: {body}");
}

/// A busybox image made by umoci from Debian's busybox-static and pushed by
/// skopeo: independent tools end to end. Returns its manifest digest.
pub fn busybox_via_umoci(reg: &Registry, repo: &str, tag: &str) -> String {
    busybox_image(reg, repo, tag, &[], |_| {})
}

/// A busybox image with every applet linked, an `/etc/passwd` with `root`
/// and `app` (1234:1234, in group `audio`), made by umoci and pushed by
/// skopeo. `config` are extra `umoci config` arguments; `extra` may add files.
pub fn busybox_image(reg: &Registry, repo: &str, tag: &str, config: &[&str], extra: impl FnOnce(&Path)) -> String {
    let work = tempfile::tempdir().expect("work dir");
    let layout = work.path().join("layout");
    let bundle = work.path().join("bundle");
    let image = format!("{}:{tag}", layout.display());
    run_ok(Command::new("umoci").args(["init", "--layout"]).arg(&layout));
    run_ok(Command::new("umoci").args(["new", "--image", &image]));
    run_ok(Command::new("umoci").args(["unpack", "--image", &image]).arg(&bundle));
    let rootfs = bundle.join("rootfs");
    for d in ["bin", "etc", "tmp", "root", "home/app"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("dir");
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
    let list = run_ok(Command::new("/bin/busybox").arg("--list"));
    for applet in list.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).expect("applet link");
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234:app:/home/app:/bin/sh\n",
    )
    .expect("passwd");
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1234:\naudio:x:29:app\n").expect("group");
    std::fs::set_permissions(rootfs.join("tmp"), std::os::unix::fs::PermissionsExt::from_mode(0o1777))
        .expect("tmp mode");
    extra(&rootfs);
    run_ok(Command::new("umoci").args(["repack", "--image", &image]).arg(&bundle));
    run_ok(
        Command::new("umoci")
            .args(["config", "--image", &image, "--config.cmd", "/bin/sh"])
            .args(config),
    );
    let dest = format!("docker://{}/{repo}:{tag}", reg.host());
    let mut skopeo = Command::new("skopeo");
    skopeo.args(["copy", "--quiet", "--dest-tls-verify=false"]);
    if let Some(a) = reg.push_auth(repo) {
        if a.starts_with("Basic ") {
            skopeo.args([
                "--dest-creds",
                &format!("{}:{}", crate::registry::USER, crate::registry::PASSWORD),
            ]);
        }
    }
    run_ok(skopeo.arg(format!("oci:{image}")).arg(&dest));
    manifest_digest(reg, repo, tag)
}

/// A store with [`busybox_image`] (with `config` and `extra`) pulled from a
/// fresh registry, or `None` (a failure under CI) without root, the
/// registry, umoci, skopeo or `tools`. Returns the image reference too.
pub fn busybox_store(
    tools: &[&str],
    config: &[&str],
    extra: impl FnOnce(&Path),
) -> Option<(Registry, crate::Barge, String)> {
    let mut needed = vec!["docker-registry", "umoci", "skopeo"];
    needed.extend_from_slice(tools);
    if !crate::require_root_and(&needed) {
        return None;
    }
    let reg = Registry::anonymous();
    busybox_image(&reg, "busybox", "latest", config, extra);
    let b = crate::Barge::new();
    let image = format!("{}/busybox", reg.host());
    b.ok(&["pull", "-q", &image]);
    Some((reg, b, image))
}

/// [`busybox_store`] for rootless barge: `user`'s store (see
/// [`crate::Barge::as_user`]) with busybox pulled, or `None` (a failure
/// under CI) without root and the tools rootless barge needs.
pub fn busybox_store_as(user_name: &str, subordinate: u32) -> Option<(Registry, crate::Barge, crate::User, String)> {
    if !crate::require_root_and(&["docker-registry", "umoci", "skopeo", "runuser", "useradd", "newuidmap"]) {
        return None;
    }
    let user = crate::User::ensure(user_name, Some(subordinate));
    let reg = Registry::anonymous();
    busybox_image(&reg, "busybox", "latest", &[], |_| {});
    let b = crate::Barge::as_user(&user);
    let image = format!("{}/busybox", reg.host());
    b.ok(&["pull", "-q", &image]);
    Some((reg, b, user, image))
}

/// A static program built once per test process from `helpers/NAME.c`,
/// alone in a directory of its own (so that it can be bound as a volume).
fn static_helper(name: &str) -> std::path::PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, std::path::PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, path)) = built.iter().find(|(n, _)| n == name) {
        return path.clone();
    }
    let dir = std::env::temp_dir().join(format!("barge-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("helper dir");
    let out = dir.join(name);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("helpers/{name}.c"));
    run_ok(Command::new("gcc").args(["-static", "-O1", "-o"]).arg(&out).arg(&src));
    built.push((name.to_string(), out.clone()));
    out
}

/// A static helper for IPC tests, built from `helpers/ipctool.c`:
/// `ipctool create KEY` makes a System V shared memory segment,
/// `ipctool find KEY` exits 0 when one with that key exists.
pub fn ipctool() -> std::path::PathBuf {
    static_helper("ipctool")
}

/// A static helper for the seccomp tests, built from `helpers/sysprobe.c`:
/// `sysprobe PROBE…` prints `PROBE OK|ERRNO-NAME|signal N` per probe.
pub fn sysprobe() -> std::path::PathBuf {
    static_helper("sysprobe")
}

/// The CVE-2019-5736 attacker, built from `helpers/exewatch.c`: `exewatch
/// SECONDS` keeps every other program it can open through `/proc/PID/exe`,
/// then writes to each (`held …`, then `WROTE …` or `refused …`).
pub fn exewatch() -> std::path::PathBuf {
    static_helper("exewatch")
}

/// A static program that prints its effective UID (helpers/euid.c).
pub fn euid() -> std::path::PathBuf {
    static_helper("euid")
}

/// A watcher for a container allowed to ptrace, built from
/// `helpers/procspy.c`: `procspy STOPFILE` reports other processes whose
/// environment holds `BARGE_TEST_SECRET` or whose capabilities exceed its
/// own bounding set.
pub fn procspy() -> std::path::PathBuf {
    static_helper("procspy")
}

/// The digest the registry serves for `repo:reference`.
pub fn manifest_digest(reg: &Registry, repo: &str, reference: &str) -> String {
    let agent = agent();
    let mut req = agent.head(format!("{}/v2/{repo}/manifests/{reference}", reg.base_url())).header(
        "Accept",
        "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json",
    );
    if let Some(a) = reg.push_auth(repo) {
        req = req.header("Authorization", a.as_str());
    }
    let resp = req.call().expect("HEAD manifest");
    resp.headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .expect("Docker-Content-Digest")
        .to_string()
}

/// The host's C toolchain (gcc's driver, cc1, collect2, binutils' `as`
/// and `ld`, libgcc, libc6-dev and the kernel headers), copied with the
/// libraries they load: enough for `gcc -static` in an image.
const GCC_FILES: &str = include_str!("gcc-files.sh");

/// [`busybox_image`] with the host's C toolchain: `gcc -static` works in it.
pub fn gcc_image(reg: &Registry, repo: &str, tag: &str) -> String {
    busybox_image(reg, repo, tag, &[], |root| {
        std::fs::create_dir_all(root.join("usr/bin")).expect("usr/bin");
        run_ok(Command::new("sh").arg("-c").arg(GCC_FILES).arg("gcc-files").arg(root));
    })
}
