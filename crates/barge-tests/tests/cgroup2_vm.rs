//! Rootless resource limits on cgroup v2 (issue 13), in a VM. This host's
//! cgroups are v1, where a user can be delegated nothing; so a Debian
//! kernel boots under qemu (TCG: no KVM needed) with an initramfs of the
//! debug barge, busybox, newuidmap/newgidmap and overlay.ko. Its `/init`
//! (`cgroup2_vm/init.sh`) delegates a subtree to user 1000 as systemd
//! does for `user@1000.service`, runs rootless barge in it (limits
//! written, enforced, shown by `stats`, changed by `update`, frozen by
//! `pause`, removed by `rm`) and out of it (no limit: runs; a limit
//! flag: refused, saying what is missing), and prints one `BARGE-VM name
//! value` line per result on the serial console, which is checked here.
//!
//! The kernel: `$BARGE_VM_KERNEL_DIR` (a Debian `linux-image-*-amd64`
//! package unpacked with `dpkg-deb -x`, as `.ci/run` does), else the
//! host's `/boot` and `/lib/modules`. The initramfs is written here as a
//! newc cpio with the owners and modes it needs (setuid-root newuidmap),
//! so building it needs no root.

use barge_tests::{barge_bin, have_tool, require};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INIT: &str = include_str!("cgroup2_vm/init.sh");
/// Where `.ci/run` unpacks the kernel package.
const CI_KERNEL_DIR: &str = "/var/cache/barge-vm";
/// The whole VM run, boot to power-off.
const VM_TIMEOUT: Duration = Duration::from_secs(240);

/// A kernel image and its overlayfs module.
struct Kernel {
    vmlinuz: PathBuf,
    overlay: PathBuf,
}

/// The first `boot/vmlinuz-VERSION` under `base` with its overlay.ko.
fn kernel_in(base: &Path) -> Option<Kernel> {
    let mut names: Vec<String> = std::fs::read_dir(base.join("boot"))
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("vmlinuz-") && n.ends_with("-amd64"))
        .collect();
    names.sort();
    names.into_iter().rev().find_map(|name| {
        let version = name.strip_prefix("vmlinuz-")?;
        let readable = |p: &Path| std::fs::File::open(p).is_ok();
        let vmlinuz = base.join("boot").join(&name);
        // Debian 13's packages have merged /usr: usr/lib/modules.
        let overlay = ["lib", "usr/lib"]
            .iter()
            .map(|lib| base.join(format!("{lib}/modules/{version}/kernel/fs/overlayfs/overlay.ko")))
            .find(|p| readable(p))?;
        readable(&vmlinuz).then_some(Kernel { vmlinuz, overlay })
    })
}

fn kernel() -> Option<Kernel> {
    let dir = std::env::var_os("BARGE_VM_KERNEL_DIR").map_or_else(|| PathBuf::from(CI_KERNEL_DIR), PathBuf::from);
    kernel_in(&dir).or_else(|| kernel_in(Path::new("/")))
}

/// A newc ("070701") cpio archive, the initramfs format, written entry by
/// entry; file contents are streamed from their files.
struct Cpio<W: Write> {
    out: W,
    ino: u32,
    dirs: BTreeSet<String>,
}

impl<W: Write> Cpio<W> {
    fn new(out: W) -> Self {
        Cpio {
            out,
            ino: 0,
            dirs: BTreeSet::new(),
        }
    }

    fn pad(&mut self, len: u64) {
        let pad = (4 - len % 4) % 4;
        self.out.write_all(&[0u8; 3][..pad as usize]).expect("writing the cpio");
    }

    fn header(&mut self, name: &str, mode: u32, uid: u32, size: u64) {
        self.ino += 1;
        let size = u32::try_from(size).expect("a file under 4 GiB");
        let fields = [
            self.ino,
            mode,
            uid,
            uid,
            1,
            0,
            size,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        let mut h = String::from("070701");
        for f in fields {
            h.push_str(&format!("{f:08X}"));
        }
        self.out.write_all(h.as_bytes()).expect("writing the cpio");
        self.out.write_all(name.as_bytes()).expect("writing the cpio");
        self.out.write_all(&[0]).expect("writing the cpio");
        self.pad(110 + name.len() as u64 + 1);
    }

    /// The directories above `name`, once each.
    fn parents(&mut self, name: &str) {
        let mut at = String::new();
        let parts: Vec<&str> = name.split('/').collect();
        for p in &parts[..parts.len() - 1] {
            at = if at.is_empty() {
                p.to_string()
            } else {
                format!("{at}/{p}")
            };
            if self.dirs.insert(at.clone()) {
                self.header(&at.clone(), 0o040755, 0, 0);
            }
        }
    }

    fn bytes(&mut self, name: &str, mode: u32, uid: u32, data: &[u8]) {
        self.parents(name);
        self.header(name, 0o100000 | mode, uid, data.len() as u64);
        self.out.write_all(data).expect("writing the cpio");
        self.pad(data.len() as u64);
    }

    fn file(&mut self, name: &str, mode: u32, from: &Path) {
        self.parents(name);
        let mut f = std::fs::File::open(from).unwrap_or_else(|e| panic!("opening {}: {e}", from.display()));
        let size = f.metadata().expect("file size").len();
        self.header(name, 0o100000 | mode, 0, size);
        let copied = std::io::copy(&mut f, &mut self.out).expect("copying into the cpio");
        assert_eq!(copied, size, "{} changed while it was copied", from.display());
        self.pad(size);
    }

    fn finish(mut self) -> W {
        self.header("TRAILER!!!", 0, 0, 0);
        self.out.flush().expect("writing the cpio");
        self.out
    }
}

/// The shared libraries `ldd` lists for `bins` (the loader included).
fn libraries(bins: &[&Path]) -> BTreeSet<PathBuf> {
    let out = Command::new("ldd").args(bins).output().expect("running ldd");
    assert!(out.status.success(), "ldd: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            // With several files, each one's list opens with "NAME:".
            if l.ends_with(':') {
                return None;
            }
            let path = l.split_once("=> ").map_or(l, |(_, p)| p);
            let path = path.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

fn first_file(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Writes the VM's initramfs to `path`.
fn initramfs(dir: &Path, path: &Path, kernel: &Kernel, busybox: &Path, newuidmap: &Path, newgidmap: &Path) {
    // Stripped, the debug binary is a quarter of its size: less to copy
    // and unpack under emulation.
    let barge = dir.join("barge");
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&barge)
        .arg(barge_bin())
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(barge_bin(), &barge).expect("copying barge");
    }
    let out = std::io::BufWriter::new(std::fs::File::create(path).expect("creating the initramfs"));
    let mut cpio = Cpio::new(out);
    cpio.bytes("init", 0o755, 0, INIT.as_bytes());
    cpio.file("bin/busybox", 0o755, busybox);
    cpio.file("bin/barge", 0o755, &barge);
    cpio.file("usr/bin/newuidmap", 0o4755, newuidmap);
    cpio.file("usr/bin/newgidmap", 0o4755, newgidmap);
    for lib in libraries(&[&barge, newuidmap, newgidmap]) {
        let name = lib
            .to_str()
            .expect("a UTF-8 library path")
            .trim_start_matches('/')
            .to_string();
        cpio.file(&name, 0o755, &lib);
    }
    cpio.file("overlay.ko", 0o644, &kernel.overlay);
    cpio.bytes(
        "etc/passwd",
        0o644,
        0,
        b"root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000:u:/tmp/u:/bin/sh\n",
    );
    cpio.bytes("etc/group", 0o644, 0, b"root:x:0:\nu:x:1000:\n");
    cpio.bytes("etc/subuid", 0o644, 0, b"u:100000:65536\n");
    cpio.bytes("etc/subgid", 0o644, 0, b"u:100000:65536\n");
    cpio.finish().into_inner().expect("writing the initramfs");
}

/// Boots the VM; returns its console and how long it ran.
fn boot(kernel: &Kernel, initrd: &Path, console: &Path) -> (String, Duration) {
    let log = std::fs::File::create(console).expect("creating the console log");
    let start = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-m", "512", "-smp", "2", "-nic", "none", "-kernel"])
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1", "-nographic", "-no-reboot"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the console log"))
        .stderr(log)
        .spawn()
        .expect("starting qemu-system-x86_64");
    let timed_out = loop {
        if child.try_wait().expect("waiting for qemu").is_some() {
            break false;
        }
        if start.elapsed() > VM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = String::from_utf8_lossy(&std::fs::read(console).expect("reading the console log")).into_owned();
    assert!(
        !timed_out,
        "the VM did not power off within {VM_TIMEOUT:?}; its console:\n{text}"
    );
    (text, start.elapsed())
}

/// The `BARGE-VM name value` lines: the first value of each name.
fn markers(console: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for l in console.lines() {
        let l = l.trim_end_matches(['\r', '\n']);
        let Some(rest) = l.split_once("BARGE-VM ").map(|(_, r)| r) else {
            continue;
        };
        let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
        out.entry(name.to_string()).or_insert_with(|| value.to_string());
    }
    out
}

#[test]
fn rootless_limits_in_a_delegated_cgroup2_subtree() {
    let kernel = kernel();
    let busybox = first_file(&["/usr/bin/busybox", "/bin/busybox"]);
    let newuidmap = first_file(&["/usr/bin/newuidmap"]);
    let newgidmap = first_file(&["/usr/bin/newgidmap"]);
    if !(require(
        "qemu-system-x86_64 (Debian qemu-system-x86)",
        have_tool("qemu-system-x86_64"),
    ) && require(
        "a Debian amd64 kernel with overlay.ko (in $BARGE_VM_KERNEL_DIR, /var/cache/barge-vm or /boot)",
        kernel.is_some(),
    ) && require("busybox (Debian busybox-static)", busybox.is_some())
        && require(
            "newuidmap and newgidmap (Debian uidmap)",
            newuidmap.is_some() && newgidmap.is_some(),
        )
        && require("ldd and strip", have_tool("ldd") && have_tool("strip")))
    {
        return;
    }
    let (Some(kernel), Some(busybox), Some(newuidmap), Some(newgidmap)) = (kernel, busybox, newuidmap, newgidmap)
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let initrd = dir.path().join("initrd.cpio");
    let built = Instant::now();
    initramfs(dir.path(), &initrd, &kernel, &busybox, &newuidmap, &newgidmap);
    let build_time = built.elapsed();
    let (console, vm_time) = boot(&kernel, &initrd, &dir.path().join("console.log"));
    eprintln!(
        "{}: initramfs built in {build_time:?}, the VM ran {vm_time:?}",
        kernel.vmlinuz.display()
    );
    let m = markers(&console);
    let get = |name: &str| m.get(name).map(String::as_str).unwrap_or("<missing>");
    let check = |name: &str, ok: &dyn Fn(&str) -> bool| {
        assert!(
            ok(get(name)),
            "VM result {name}: {:?}; the console:\n{console}",
            get(name)
        );
    };
    check("done", &|_| m.contains_key("done"));
    check("delegated", &|v| {
        ["memory", "cpu", "pids"].iter().all(|c| v.split(' ').any(|x| x == *c))
    });
    check("import", &|v| v == "ok");
    check("detached", &|v| v == "ok");
    check("in-cgroup", &|v| v.starts_with("barge/") && v.len() > "barge/".len());
    check("memory.max", &|v| v == "33554432");
    check("pids.max", &|v| v == "20");
    check("cpu.max", &|v| v == "50000 100000");
    check("stats", &|v| v.ends_with("/ 32MiB"));
    check("updated", &|v| v == "67108864");
    check("paused", &|v| v == "1");
    check("unpaused", &|v| v == "0");
    check("removed", &|v| v == "ok");
    check("pids-enforced", &|v| v == "ok");
    check("no-pids", &|v| {
        v.contains("--pids-limit needs a cgroup") && v.contains("the pids controller is not delegated")
    });
    check("plain-run", &|v| v == "hi");
    check("plain-limit", &|v| {
        v.contains("--memory needs a cgroup") && v.contains("no cgroup v2 subtree delegated to your user")
    });
}
