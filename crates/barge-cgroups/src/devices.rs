//! The container's device policy: which device nodes its processes may
//! create (`m`), read (`r`) and write (`w`), whatever mount they are on.
//!
//! One list for both cgroup versions: the bundle's
//! `linux.resources.devices` (docker's allow-list, from
//! `spec::default_device_rules`). The rules are read in order and the last
//! one that matches a device and an access decides; a device no rule
//! matches is refused. A rule of type `a` is every device and every access,
//! as the v1 devices controller reads it.
//!
//! On cgroup v1 the rules are the devices controller's `devices.deny` and
//! `devices.allow` lines. cgroup v2 has no such controller: there the rules
//! are compiled here into an eBPF program of type
//! `BPF_PROG_TYPE_CGROUP_DEVICE` (assembled below, no libbpf), loaded with
//! bpf(2) and attached to the container's cgroup (`BPF_CGROUP_DEVICE`,
//! `BPF_F_ALLOW_MULTI` as runc attaches it, so programs of parent cgroups
//! keep applying too) before any process joins the cgroup. The attachment
//! holds the program; it goes with the cgroup.

use barge_runner::spec::{LinuxDeviceCgroup as DeviceRule, LinuxDeviceType};
use barge_runner::sys::bpf;
use rustix::fd::OwnedFd;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("bad device rule {0}")]
    BadRule(String),
    #[error("loading the cgroup v2 device filter (bpf BPF_PROG_LOAD): {source}{log}")]
    Load { source: std::io::Error, log: String },
    #[error("attaching the device filter to cgroup {path}: {source}")]
    Attach { path: String, source: std::io::Error },
    #[error("querying the device filters of cgroup {path}: {source}")]
    Query { path: String, source: std::io::Error },
}

/// Access bits as the kernel passes them (`BPF_DEVCG_ACC_*`).
const MKNOD: u8 = 1;
const READ: u8 = 2;
const WRITE: u8 = 4;
/// Device types as the kernel passes them (`BPF_DEVCG_DEV_*`).
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// Which devices a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    All,
    Char,
    Block,
}

/// A checked device rule: numbers `None` for any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Kind,
    pub major: Option<i32>,
    pub minor: Option<i32>,
    /// `MKNOD | READ | WRITE` bits.
    pub access: u8,
}

impl Rule {
    /// A bundle's rule, checked: type `a`, `c` or `b` (absent is `a`),
    /// numbers absent or -1 for any, access letters of `rwm` (absent is all).
    pub fn parse(r: &DeviceRule) -> Result<Rule, DeviceError> {
        let bad = || DeviceError::BadRule(format!("{r:?}"));
        let kind = match r.typ() {
            None | Some(LinuxDeviceType::A) => Kind::All,
            Some(LinuxDeviceType::C) => Kind::Char,
            Some(LinuxDeviceType::B) => Kind::Block,
            // Not kinds the devices controller knows.
            Some(LinuxDeviceType::U | LinuxDeviceType::P) => return Err(bad()),
        };
        let number = |n: Option<i64>| match n {
            None | Some(-1) => Ok(None),
            Some(n) => i32::try_from(n).ok().filter(|n| *n >= 0).map(Some).ok_or_else(bad),
        };
        let access = match r.access().as_deref() {
            None => MKNOD | READ | WRITE,
            Some("") => return Err(bad()),
            Some(s) => s.chars().try_fold(0, |acc, c| match c {
                'm' => Ok(acc | MKNOD),
                'r' => Ok(acc | READ),
                'w' => Ok(acc | WRITE),
                _ => Err(bad()),
            })?,
        };
        Ok(Rule {
            allow: r.allow(),
            kind,
            major: number(r.major())?,
            minor: number(r.minor())?,
            access,
        })
    }

    /// The v1 devices controller's file and line for this rule.
    pub fn v1_line(&self) -> (&'static str, String) {
        let field = |n: Option<i32>| n.map(|n| n.to_string()).unwrap_or_else(|| "*".into());
        let kind = match self.kind {
            Kind::All => 'a',
            Kind::Char => 'c',
            Kind::Block => 'b',
        };
        let access: String = [('r', READ), ('w', WRITE), ('m', MKNOD)]
            .iter()
            .filter(|(_, bit)| self.access & bit != 0)
            .map(|(c, _)| *c)
            .collect();
        (
            if self.allow { "devices.allow" } else { "devices.deny" },
            format!("{kind} {}:{} {access}", field(self.major), field(self.minor)),
        )
    }
}

/// Every rule of a bundle, checked.
pub fn parse_all(rules: &[DeviceRule]) -> Result<Vec<Rule>, DeviceError> {
    rules.iter().map(Rule::parse).collect()
}

pub use barge_runner::sys::bpf::Insn;

// Opcodes: class | operation | source.
pub const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
pub const MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K (32-bit)
pub const MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
pub const AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
pub const RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
pub const JA: u8 = 0x05; // BPF_JMP | BPF_JA
pub const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
pub const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
pub const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// Registers: r0 the verdict (and scratch), r1 the context
// (`struct bpf_cgroup_dev_ctx`: access_type, major, minor, each a u32),
// r2 the access bits, r3 the device type, r4 major, r5 minor.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// The program for `rules`: for each access bit asked for (an open for
/// reading and writing asks for two), the rules from the last to the first;
/// the first that matches the device allows the bit (on to the next) or
/// denies the whole access (return 0); none matching denies. All bits
/// allowed returns 1. Jumps only go forward and no instruction is
/// unreachable, as the verifier wants.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut code = vec![
        insn(LDX_W, R2, R1, 0, 0),
        insn(MOV_X, R3, R2, 0, 0),
        insn(AND_K, R3, 0, 0, 0xffff),
        insn(RSH_K, R2, 0, 0, 16),
        insn(LDX_W, R4, R1, 4, 0),
        insn(LDX_W, R5, R1, 8, 0),
    ];
    // Points jump `at` to instruction `to`.
    let patch = |code: &mut Vec<Insn>, at: usize, to: usize| {
        // A program has at most a few hundred instructions.
        code[at].off = i16::try_from(to - at - 1).unwrap_or(i16::MAX);
    };
    let deny = |code: &mut Vec<Insn>| {
        code.push(insn(MOV_K, R0, 0, 0, 0));
        code.push(insn(EXIT, 0, 0, 0, 0));
    };
    for bit in [MKNOD, READ, WRITE] {
        // Jumps to the end of this bit's block: the bit is fine.
        let mut done = Vec::new();
        code.push(insn(MOV_X, R0, R2, 0, 0));
        code.push(insn(AND_K, R0, 0, 0, i32::from(bit)));
        done.push(code.len());
        code.push(insn(JEQ_K, R0, 0, 0, 0));
        let mut decided = false;
        for rule in rules.iter().rev() {
            let mut next = Vec::new();
            match rule.kind {
                Kind::All => {}
                kind => {
                    if rule.access & bit == 0 {
                        continue;
                    }
                    let dev = if kind == Kind::Char { DEV_CHAR } else { DEV_BLOCK };
                    next.push(code.len());
                    code.push(insn(JNE_K, R3, 0, 0, dev));
                    for (reg, n) in [(R4, rule.major), (R5, rule.minor)] {
                        if let Some(n) = n {
                            next.push(code.len());
                            code.push(insn(JNE_K, reg, 0, 0, n));
                        }
                    }
                }
            }
            if rule.allow {
                done.push(code.len());
                code.push(insn(JA, 0, 0, 0, 0));
            } else {
                deny(&mut code);
            }
            if next.is_empty() {
                // Matches everything: the rules before it are never reached.
                decided = true;
                break;
            }
            let here = code.len();
            for at in next {
                patch(&mut code, at, here);
            }
        }
        if !decided {
            deny(&mut code);
        }
        let here = code.len();
        for at in done {
            patch(&mut code, at, here);
        }
    }
    code.push(insn(MOV_K, R0, 0, 0, 1));
    code.push(insn(EXIT, 0, 0, 0, 0));
    code
}

/// Loads `code` as a cgroup device program; the verifier's log's last
/// line is in the error.
pub fn load(code: &[Insn]) -> Result<OwnedFd, DeviceError> {
    bpf::load_device_program(code).map_err(|bpf::LoadError { source, log }| DeviceError::Load { source, log })
}

fn open_dir(dir: &Path) -> std::io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).map_err(Into::into)
}

/// Compiles `rules`, loads the program and attaches it to the cgroup v2
/// directory `dir`. Any failure is an error: the container must not run
/// without its device policy.
pub fn attach(dir: &Path, rules: &[DeviceRule]) -> Result<(), DeviceError> {
    let prog = load(&program(&parse_all(rules)?))?;
    let err = |source| DeviceError::Attach {
        path: dir.display().to_string(),
        source,
    };
    let cgroup = open_dir(dir).map_err(err)?;
    bpf::attach_device_program(&cgroup, &prog).map_err(err)
}

/// The ids of the device programs attached to the cgroup v2 directory `dir` itself.
pub fn attached(dir: &Path) -> Result<Vec<u32>, DeviceError> {
    let err = |source| DeviceError::Query {
        path: dir.display().to_string(),
        source,
    };
    let cgroup = open_dir(dir).map_err(err)?;
    bpf::device_programs(&cgroup).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Runs `code` the way the kernel would for a device of type `dev`
    /// (`DEV_CHAR`/`DEV_BLOCK`), access bits `access`: only the
    /// instructions `program` emits.
    fn run(code: &[Insn], dev: i32, major: i32, minor: i32, access: u8) -> i64 {
        let ctx = [((access as i64) << 16) | dev as i64, major as i64, minor as i64];
        let mut r = [0i64; 6];
        let mut pc = 0;
        loop {
            let i = code[pc];
            let (dst, src) = ((i.regs & 15) as usize, (i.regs >> 4) as usize);
            let imm = i.imm as i64;
            pc += 1;
            let jump = |cond: bool, pc: &mut usize| {
                if cond {
                    *pc = (*pc as i64 + i.off as i64) as usize;
                }
            };
            match i.code {
                LDX_W => {
                    assert_eq!(src, 1, "loads come from the context");
                    r[dst] = ctx[i.off as usize / 4];
                }
                MOV_K => r[dst] = imm,
                MOV_X => r[dst] = r[src],
                AND_K => r[dst] &= imm,
                RSH_K => r[dst] >>= imm,
                JA => jump(true, &mut pc),
                JEQ_K => jump(r[dst] == imm, &mut pc),
                JNE_K => jump(r[dst] != imm, &mut pc),
                EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn rule(allow: bool, kind: &str, major: Option<i64>, minor: Option<i64>, access: &str) -> DeviceRule {
        let kind = match kind {
            "a" => LinuxDeviceType::A,
            "b" => LinuxDeviceType::B,
            "c" => LinuxDeviceType::C,
            "p" => LinuxDeviceType::P,
            other => panic!("no device type {other}"),
        };
        let mut r = DeviceRule::default();
        r.set_allow(allow)
            .set_typ(Some(kind))
            .set_major(major)
            .set_minor(minor)
            .set_access(Some(access.into()));
        r
    }

    #[test]
    fn docker_list_as_a_program() {
        let code = program(&parse_all(&barge_runner::spec::default_device_rules()).unwrap());
        let rw = READ | WRITE;
        assert_eq!(run(&code, DEV_CHAR, 1, 3, rw), 1, "/dev/null");
        assert_eq!(run(&code, DEV_CHAR, 136, 7, rw), 1, "a pty");
        assert_eq!(run(&code, DEV_CHAR, 5, 2, READ), 1, "ptmx");
        assert_eq!(run(&code, DEV_CHAR, 1, 11, WRITE), 0, "kmsg");
        assert_eq!(run(&code, DEV_BLOCK, 7, 0, READ), 0, "a loop device");
        assert_eq!(run(&code, DEV_BLOCK, 8, 0, rw), 0, "a disk");
        assert_eq!(run(&code, DEV_CHAR, 1, 1, READ), 0, "/dev/mem");
        assert_eq!(run(&code, DEV_BLOCK, 7, 0, MKNOD), 1, "any node may be made");
        assert_eq!(run(&code, DEV_CHAR, 1, 11, MKNOD), 1);
        assert_eq!(run(&code, DEV_CHAR, 1, 3, MKNOD | READ), 1);
        assert_eq!(
            run(&code, DEV_BLOCK, 7, 0, MKNOD | READ),
            0,
            "one bit refused is refusal"
        );
    }

    #[test]
    fn last_matching_rule_wins_per_access() {
        let rules = parse_all(&[
            rule(false, "a", None, None, "rwm"),
            rule(true, "c", Some(1), Some(3), "rwm"),
            rule(false, "c", Some(1), Some(3), "w"),
            rule(true, "b", Some(8), None, "r"),
        ])
        .unwrap();
        let code = program(&rules);
        assert_eq!(run(&code, DEV_CHAR, 1, 3, READ), 1);
        assert_eq!(run(&code, DEV_CHAR, 1, 3, WRITE), 0);
        assert_eq!(run(&code, DEV_CHAR, 1, 3, READ | WRITE), 0, "write is refused");
        assert_eq!(run(&code, DEV_BLOCK, 8, 1, READ), 1);
        assert_eq!(run(&code, DEV_BLOCK, 8, 1, WRITE), 0);
        assert_eq!(run(&code, DEV_CHAR, 8, 1, READ), 0, "the type counts");
        // Nothing matches: refused. `allow a` allows all.
        let none = program(&parse_all(&[rule(true, "c", Some(1), Some(3), "r")]).unwrap());
        assert_eq!(run(&none, DEV_CHAR, 1, 5, READ), 0);
        let all = program(
            &parse_all(&[
                rule(false, "c", Some(1), Some(3), "r"),
                rule(true, "a", None, None, "r"),
            ])
            .unwrap(),
        );
        assert_eq!(
            run(&all, DEV_CHAR, 1, 3, READ | WRITE),
            1,
            "type a is everything, as on v1"
        );
    }

    /// Root, a cgroup2 mount (hybrid hosts have one without controllers:
    /// device programs attach there all the same) and a directory whose
    /// device nodes open; else skipped, or failed in CI.
    fn real_cgroup2() -> Option<(PathBuf, tempfile::TempDir)> {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        let mount = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                let (pre, post) = l.split_once(" - ")?;
                let mount = pre.split(' ').nth(4)?;
                post.starts_with("cgroup2 ").then(|| PathBuf::from(mount))
            });
        let nodes = tempfile::tempdir().unwrap();
        let made = rustix::process::geteuid().is_root()
            && [("null", 3), ("kmsg", 11)].iter().all(|(name, minor)| {
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    nodes.path().join(name),
                    rustix::fs::FileType::CharacterDevice,
                    rustix::fs::Mode::from_raw_mode(0o600),
                    rustix::fs::makedev(1, *minor),
                )
                .is_ok()
            })
            && std::fs::OpenOptions::new()
                .write(true)
                .open(nodes.path().join("null"))
                .is_ok();
        match mount {
            Some(m) if made => Some((m, nodes)),
            _ if ci => panic!("prerequisite missing in CI: root, a cgroup2 mount, device nodes that open"),
            _ => {
                eprintln!("SKIPPED: needs root, a cgroup2 mount and device nodes that open");
                None
            }
        }
    }

    #[test]
    fn the_kernel_enforces_the_attached_program() {
        let Some((mount, nodes)) = real_cgroup2() else { return };
        let dir = mount.join(format!("barge-devices-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(attached(&dir).unwrap(), Vec::<u32>::new());
        attach(&dir, &barge_runner::spec::default_device_rules()).unwrap();
        assert_eq!(attached(&dir).unwrap().len(), 1, "one program attached");
        // A shell joins the cgroup, then opens the two nodes for writing.
        let script = format!(
            "echo 0 > {procs} || exit 10; : > {null} || exit 11; \
             err=$( (: > {kmsg}) 2>&1 ) && exit 12; \
             case \"$err\" in *'not permitted'*) exit 0;; *) echo \"$err\" >&2; exit 13;; esac",
            procs = dir.join("cgroup.procs").display(),
            null = nodes.path().join("null").display(),
            kmsg = nodes.path().join("kmsg").display(),
        );
        let out = std::process::Command::new("sh").args(["-c", &script]).output().unwrap();
        std::fs::remove_dir(&dir).unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "10: no joining the cgroup, 11: 1:3 refused, 12: 1:11 not refused, 13: not with EPERM ({})",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn rules_checked_and_written_for_v1() {
        let lines: Vec<_> = parse_all(&barge_runner::spec::default_device_rules())
            .unwrap()
            .iter()
            .map(Rule::v1_line)
            .collect();
        assert_eq!(lines[0], ("devices.deny", "a *:* rwm".to_string()));
        assert!(lines.contains(&("devices.allow", "c 136:* rwm".to_string())));
        assert!(lines.contains(&("devices.allow", "b *:* m".to_string())));
        for bad in [
            rule(true, "p", None, None, "r"),
            rule(true, "c", Some(-2), None, "r"),
            rule(true, "c", Some(1 << 40), None, "r"),
            rule(true, "c", None, None, "rx"),
            rule(true, "c", None, None, ""),
        ] {
            assert!(matches!(Rule::parse(&bad), Err(DeviceError::BadRule(_))), "{bad:?}");
        }
        assert_eq!(Rule::parse(&rule(true, "c", Some(-1), None, "r")).unwrap().major, None);
    }
}
