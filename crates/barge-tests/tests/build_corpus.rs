//! `barge build` against a peer: every case of `tests/build-corpus/`
//! (a Dockerfile and its context) is built by barge and by `buildah bud`
//! from the same base images in a loopback registry; the two final images
//! must hold the same files (path, type, mode, owner, size, content, link
//! target), the same config fields and the same number of layers. The
//! differences barge keeps on purpose are [`ALLOWED`], each listed with its
//! reason in docs/architecture.md ("Differences from buildah"); any other
//! difference fails, and so does an allowance no case needs any more.
//! `CORPUS_CASE=05` builds only the cases whose name contains `05`.

use barge_tests::image::{busybox_image, gcc_image};
use barge_tests::registry::Registry;
use barge_tests::{require_root_and, run_ok, sha256, Barge};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A difference kept on purpose: in `case` (a corpus directory, or `*`
/// for any), about `subject` (`file /path` or `config Field` or `layers`).
struct Allowed {
    case: &'static str,
    subject: &'static str,
}

/// Mirrors docs/architecture.md, "Differences from buildah".
const ALLOWED: &[Allowed] = &[
    // buildah leaves the mount points of RUN in the layer; BuildKit
    // removes such stubs, and so does barge.
    Allowed {
        case: "*",
        subject: "file /dev",
    },
    Allowed {
        case: "*",
        subject: "file /proc",
    },
    Allowed {
        case: "*",
        subject: "file /sys",
    },
    Allowed {
        case: "*",
        subject: "file /run",
    },
    Allowed {
        case: "*",
        subject: "file /etc/hosts",
    },
    Allowed {
        case: "*",
        subject: "file /etc/hostname",
    },
    Allowed {
        case: "*",
        subject: "file /etc/resolv.conf",
    },
    // SHELL applies to the shell form of ENTRYPOINT and CMD in docker;
    // buildah 1.28 uses /bin/sh -c.
    Allowed {
        case: "12-entrypoint-cmd",
        subject: "config Entrypoint",
    },
    // buildah removes a cache mount's mount point but keeps the parents it
    // made for it; BuildKit and barge remove those too.
    Allowed {
        case: "15-cache-mount",
        subject: "file /root/.cache",
    },
    // buildah 1.28 (Debian 12) has no here-documents.
    Allowed {
        case: "13-heredocs",
        subject: "build",
    },
];

/// The config fields compared.
const FIELDS: [&str; 10] = [
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Labels",
    "Volumes",
    "StopSignal",
    "Healthcheck",
];

/// A buildah with a store of its own (vfs: no overlay mounts needed).
struct Buildah {
    dir: tempfile::TempDir,
}

impl Buildah {
    fn new() -> Buildah {
        Buildah {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("runroot"))
            .args(["--storage-driver", "vfs"])
            .env("BUILDAH_ISOLATION", "chroot")
            // Its cache mounts and temporary files, in its own directory.
            .env("TMPDIR", self.dir.path());
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        run_ok(self.command().args(args))
    }
}

/// One file of an image's tree, as compared.
fn describe(path: &Path, md: &std::fs::Metadata) -> String {
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        "dir".to_string()
    } else if ft.is_symlink() {
        format!("link -> {}", std::fs::read_link(path).unwrap().display())
    } else if ft.is_file() {
        let data = std::fs::read(path).unwrap();
        format!("file {} bytes sha256:{}", data.len(), &sha256(&data)[..16])
    } else if ft.is_char_device() || ft.is_block_device() {
        format!("device {}", md.rdev())
    } else if ft.is_fifo() {
        "fifo".to_string()
    } else {
        "socket".to_string()
    };
    format!("{kind} mode {:o} owner {}:{}", md.mode() & 0o7777, md.uid(), md.gid())
}

/// Every path below `root` (as `/a/b`) with its description.
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, rel: &str, out: &mut BTreeMap<String, String>) {
        let dir = root.join(rel.trim_start_matches('/'));
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let r = format!("{rel}/{}", n.to_string_lossy());
            let p = root.join(r.trim_start_matches('/'));
            let md = std::fs::symlink_metadata(&p).unwrap();
            out.insert(r.clone(), describe(&p, &md));
            if md.is_dir() {
                walk(root, &r, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, "", &mut out);
    out
}

/// An image in buildah's store: its files (mounted), config and layer count.
struct Seen {
    files: BTreeMap<String, String>,
    config: BTreeMap<&'static str, Value>,
    layers: usize,
}

fn seen(buildah: &Buildah, image: &str, config: &Value, layers: usize) -> Seen {
    let ctr = buildah.ok(&["from", "--pull-never", image]).trim().to_string();
    let mount = PathBuf::from(buildah.ok(&["mount", &ctr]).trim());
    let files = tree(&mount);
    buildah.ok(&["rm", &ctr]);
    let config = FIELDS
        .iter()
        .map(|f| (*f, config.get(*f).cloned().unwrap_or(Value::Null)))
        .map(|(f, v)| (f, normalise(f, v)))
        .collect();
    Seen { files, config, layers }
}

/// What both builders may write differently without meaning anything
/// different: no value and an empty one; buildah's own version label.
fn normalise(field: &str, v: Value) -> Value {
    let v = match v {
        Value::Object(mut m) if field == "Labels" => {
            m.remove("io.buildah.version");
            Value::Object(m)
        }
        v => v,
    };
    match &v {
        Value::Array(a) if a.is_empty() => Value::Null,
        Value::Object(m) if m.is_empty() => Value::Null,
        Value::String(s) if s.is_empty() => Value::Null,
        _ => v,
    }
}

/// The differences of two images, as (subject, what barge has, what buildah has).
fn differences(barge: &Seen, buildah: &Seen) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let paths: BTreeSet<&String> = barge.files.keys().chain(buildah.files.keys()).collect();
    let none = "(absent)".to_string();
    for p in paths {
        let (a, b) = (
            barge.files.get(p).unwrap_or(&none),
            buildah.files.get(p).unwrap_or(&none),
        );
        if a != b {
            out.push((format!("file {p}"), a.clone(), b.clone()));
        }
    }
    for f in FIELDS {
        if barge.config[f] != buildah.config[f] {
            out.push((
                format!("config {f}"),
                barge.config[f].to_string(),
                buildah.config[f].to_string(),
            ));
        }
    }
    if barge.layers != buildah.layers {
        out.push(("layers".into(), barge.layers.to_string(), buildah.layers.to_string()));
    }
    out
}

/// The context of a case: its directory, or a copy with `@REGISTRY@` in
/// the Dockerfile written out (where an ARG cannot reach for buildah).
fn context(case: &Path, registry: &str) -> (Option<tempfile::TempDir>, PathBuf) {
    let text = std::fs::read_to_string(case.join("Dockerfile")).unwrap();
    if !text.contains("@REGISTRY@") {
        return (None, case.to_path_buf());
    }
    let copy = tempfile::tempdir().unwrap();
    run_ok(Command::new("cp").arg("-a").arg(case.join(".")).arg(copy.path()));
    std::fs::write(copy.path().join("Dockerfile"), text.replace("@REGISTRY@", registry)).unwrap();
    let dir = copy.path().to_path_buf();
    (Some(copy), dir)
}

#[test]
fn the_corpus_builds_as_buildah_builds_it() {
    if !require_root_and(&["busybox", "docker-registry", "skopeo", "umoci", "buildah", "gcc"]) {
        return;
    }
    let reg = Registry::anonymous();
    busybox_image(&reg, "busybox", "1", &[], |_| {});
    gcc_image(&reg, "gcc", "1");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/build-corpus");
    let mut cases: Vec<String> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "{cases:?}");
    if let Ok(only) = std::env::var("CORPUS_CASE") {
        cases.retain(|c| c.contains(&only));
    }
    let b = Barge::new();
    let buildah = Buildah::new();
    let registry_arg = format!("REGISTRY={}", reg.host());
    let mut unexpected = Vec::new();
    let mut used: BTreeSet<(&str, &str)> = BTreeSet::new();
    for case in &cases {
        let (_copy, dir) = context(&corpus.join(case), &reg.host());
        let d = dir.to_str().unwrap();
        let pushed = format!("{}/corpus-{case}:barge", reg.host());
        let o = b.run(&["build", "-q", "--build-arg", &registry_arg, "-t", &pushed, d]);
        if !o.status.success() {
            unexpected.push(format!("{case}: barge build: {}", String::from_utf8_lossy(&o.stderr)));
            continue;
        }
        b.ok(&["push", &pushed]);
        let barge_config: Value =
            serde_json::from_str(&b.ok(&["inspect", "--format", "{{json .Config}}", &pushed])).unwrap();
        let barge_layers: usize = b
            .ok(&["inspect", "--format", "{{len .RootFS.Layers}}", &pushed])
            .trim()
            .parse()
            .unwrap();
        buildah.ok(&["pull", "--quiet", "--tls-verify=false", &pushed]);
        let barge_seen = seen(&buildah, &pushed, &barge_config, barge_layers);

        let theirs = format!("localhost/corpus-{case}:buildah");
        let o = buildah
            .command()
            .args([
                "bud",
                "--quiet",
                "--layers",
                "--format",
                "docker",
                "--tls-verify=false",
                "--build-arg",
                &registry_arg,
                "-t",
                &theirs,
                d,
            ])
            .output()
            .unwrap();
        if !o.status.success() {
            let subject = "build";
            match ALLOWED.iter().find(|a| a.case == case && a.subject == subject) {
                Some(a) => {
                    used.insert((a.case, a.subject));
                }
                None => unexpected.push(format!("{case}: buildah bud: {}", String::from_utf8_lossy(&o.stderr))),
            }
            continue;
        }
        let inspected: Value = serde_json::from_str(&buildah.ok(&["inspect", "--type", "image", &theirs])).unwrap();
        let docker = &inspected["Docker"];
        let theirs_layers = docker["rootfs"]["diff_ids"].as_array().map_or(0, Vec::len);
        let buildah_seen = seen(&buildah, &theirs, &docker["config"], theirs_layers);

        for (subject, ours, other) in differences(&barge_seen, &buildah_seen) {
            match ALLOWED
                .iter()
                .find(|a| (a.case == "*" || a.case == case) && a.subject == subject)
            {
                Some(a) => {
                    used.insert((a.case, a.subject));
                }
                None => unexpected.push(format!("{case}: {subject}:\n    barge   {ours}\n    buildah {other}")),
            }
        }
    }
    assert!(
        unexpected.is_empty(),
        "differences from buildah:\n{}",
        unexpected.join("\n")
    );
    if std::env::var("CORPUS_CASE").is_err() {
        let stale: Vec<String> = ALLOWED
            .iter()
            .filter(|a| !used.contains(&(a.case, a.subject)))
            .map(|a| format!("{} {}", a.case, a.subject))
            .collect();
        assert!(stale.is_empty(), "allowed differences no case shows: {stale:?}");
    }
}
