//! Resource limits as docker takes them on the command line (`--memory
//! 512m`, `--memory-swap -1`, `--cpus 1.5`, `--cpu-shares`, `--pids-limit`,
//! `--ulimit nofile=1024:2048`), checked with docker's messages, and turned
//! into the bundle's `linux.resources` and `process.rlimits`.

use crate::spec::{self, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources, PosixRlimit, PosixRlimitType};
use std::str::FromStr;

/// docker refuses memory limits below this (`linuxMinMemory`).
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;
/// The CFS period docker uses for `--cpus`, in microseconds.
pub use barge_cgroups::CPU_PERIOD;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("invalid size: '{0}'")]
    Size(String),
    #[error("failed to parse {0} as a rational number")]
    Cpus(String),
    #[error("value is too precise")]
    TooPrecise,
    #[error("invalid ulimit argument: {0}")]
    UlimitArgument(String),
    #[error("invalid ulimit type: {0}")]
    UlimitType(String),
    #[error("too many limit value arguments - {0}, can only have up to two, `soft[:hard]`")]
    UlimitValues(String),
    #[error("ulimit soft limit must be less than or equal to hard limit: {0} > {1}")]
    UlimitOrder(i64, i64),
    #[error("Minimum memory limit allowed is 6MB")]
    MemoryTooSmall,
    #[error("You should always set the Memory limit when using Memoryswap limit, see usage")]
    SwapWithoutMemory,
    #[error("Minimum memoryswap limit should be larger than memory limit, see usage")]
    SwapTooSmall,
    #[error("Minimum memory reservation allowed is 6MB")]
    ReservationTooSmall,
    #[error("Minimum memory limit can not be less than memory reservation limit, see usage")]
    ReservationAboveMemory,
    #[error("Range of CPUs is from 0.01 to {0}.00, as there are only {0} CPUs available")]
    CpuRange(usize),
    #[error("Invalid value {0} for cpuset {1}")]
    CpusetSyntax(String, &'static str),
    #[error("Requested {what} are not available - requested {list}, available: {available}")]
    CpusetUnavailable {
        what: &'static str,
        list: String,
        available: String,
    },
}

/// One `--ulimit NAME=SOFT[:HARD]`; -1 is unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// What `run`/`create` were asked to limit. `None` is docker's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// `--memory`, bytes.
    pub memory: Option<i64>,
    /// `--memory-swap`: memory plus swap in bytes, -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    /// `--cpus` in billionths of a CPU.
    pub nano_cpus: Option<i64>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<u64>,
    /// `--pids-limit`; 0 or -1 for unlimited.
    pub pids_limit: Option<i64>,
    pub ulimits: Vec<Ulimit>,
    /// `--memory-reservation`, bytes: the soft limit.
    pub memory_reservation: Option<i64>,
    /// `--cpuset-cpus`: the CPUs the container may run on (`0-3,5`).
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`: the memory nodes it may allocate from.
    pub cpuset_mems: Option<String>,
}

impl Limits {
    /// The flags given that only a cgroup enforces (`--ulimit` is not
    /// one), each with the cgroup v2 controller it needs.
    pub fn cgroup_flags(&self) -> Vec<(&'static str, &'static str)> {
        let pairs = [
            (self.memory.is_some(), "--memory", "memory"),
            (self.memory_swap.is_some(), "--memory-swap", "memory"),
            (self.memory_reservation.is_some(), "--memory-reservation", "memory"),
            (self.nano_cpus.is_some(), "--cpus", "cpu"),
            (self.cpu_shares.is_some(), "--cpu-shares", "cpu"),
            (self.pids_limit.is_some_and(|p| p > 0), "--pids-limit", "pids"),
            (self.cpuset_cpus.is_some(), "--cpuset-cpus", "cpuset"),
            (self.cpuset_mems.is_some(), "--cpuset-mems", "cpuset"),
        ];
        pairs
            .into_iter()
            .filter(|(given, _, _)| *given)
            .map(|(_, flag, controller)| (flag, controller))
            .collect()
    }
}

/// go-units' `RAMInBytes`: `512m`, `1g`, `1.5GiB`, `100` (bytes); binary multiples.
pub fn parse_size(s: &str) -> Result<i64, LimitError> {
    parse_units(s, 1024.0)
}

/// go-units' `FromHumanSize` (json-file's `max-size`): as [`parse_size`], decimal multiples.
pub fn from_human_size(s: &str) -> Result<i64, LimitError> {
    parse_units(s, 1000.0)
}

fn parse_units(s: &str, base: f64) -> Result<i64, LimitError> {
    let bad = || LimitError::Size(s.to_string());
    let digits_end = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.contains("..") {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let mut chars = unit.chars().peekable();
    let mult: f64 = match chars.peek() {
        Some('k') => base,
        Some('m') => base.powi(2),
        Some('g') => base.powi(3),
        Some('t') => base.powi(4),
        Some('p') => base.powi(5),
        _ => 1.0,
    };
    if mult > 1.0 {
        chars.next();
    }
    let rest: String = chars.collect();
    // What may follow the multiplier: nothing, `b`, `i`, or `ib`.
    if !matches!(rest.as_str(), "" | "b" | "i" | "ib") {
        return Err(bad());
    }
    let bytes = value * mult;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

/// `--memory-swap`: a size, or -1 for unlimited swap.
pub fn parse_memory_swap(s: &str) -> Result<i64, LimitError> {
    if s == "-1" {
        return Ok(-1);
    }
    parse_size(s)
}

/// `--cpus 1.5` as billionths of a CPU (docker's `NanoCPUs`).
pub fn parse_cpus(s: &str) -> Result<i64, LimitError> {
    let bad = || LimitError::Cpus(s.to_string());
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 9 {
        return Err(LimitError::TooPrecise);
    }
    let whole: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let mut part: i64 = 0;
    for (i, d) in frac.bytes().enumerate() {
        part += i64::from(d - b'0') * 10i64.pow(8 - i as u32);
    }
    let nano = whole
        .checked_mul(1_000_000_000)
        .and_then(|w| w.checked_add(part))
        .ok_or_else(bad)?;
    Ok(if neg { -nano } else { nano })
}

pub use barge_runner::process::rlimit_resource;
/// The rlimit names docker accepts, with their OCI spellings.
use barge_runner::process::RLIMITS as ULIMITS;

/// go-units' `ParseUlimit`: `NAME=SOFT[:HARD]`.
pub fn parse_ulimit(s: &str) -> Result<Ulimit, LimitError> {
    let (name, values) = s
        .split_once('=')
        .ok_or_else(|| LimitError::UlimitArgument(s.to_string()))?;
    if !ULIMITS.iter().any(|(n, _, _)| *n == name) {
        return Err(LimitError::UlimitType(name.to_string()));
    }
    let num = |v: &str| v.parse::<i64>().map_err(|_| LimitError::UlimitArgument(s.to_string()));
    let parts: Vec<&str> = values.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [soft] => (num(soft)?, num(soft)?),
        [soft, hard] => (num(soft)?, num(hard)?),
        _ => return Err(LimitError::UlimitValues(values.to_string())),
    };
    // -1 (unlimited) is the largest value there is.
    let order = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
    if order(soft) > order(hard) {
        return Err(LimitError::UlimitOrder(soft, hard));
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// `--cpuset-cpus` or `--cpuset-mems` (`what`: `cpus` or `mems`) against
/// the host's online list `available` (`0-1`): docker's checks and words.
pub fn check_cpuset(list: &str, what: &'static str, available: &str) -> Result<(), LimitError> {
    let missing =
        barge_cgroups::cpus_missing(list, available).map_err(|_| LimitError::CpusetSyntax(list.to_string(), what))?;
    if missing.is_empty() {
        return Ok(());
    }
    Err(LimitError::CpusetUnavailable {
        what: if what == "cpus" { "CPUs" } else { "memory nodes" },
        list: list.to_string(),
        available: available.trim().to_string(),
    })
}

/// The host's online CPUs or memory nodes (`cpu` or `node`), as the
/// kernel lists them; one node (`0`) where the kernel has no NUMA.
fn online_list(kind: &str) -> String {
    std::fs::read_to_string(format!("/sys/devices/system/{kind}/online"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "0".into())
}

fn rlimit_value(v: i64) -> u64 {
    if v < 0 {
        u64::MAX
    } else {
        v as u64
    }
}

impl Limits {
    /// docker's checks of the combination (the daemon's, with its messages).
    pub fn validate(&self, online_cpus: usize) -> Result<(), LimitError> {
        let memory = self.memory.unwrap_or(0);
        if memory != 0 && memory < MIN_MEMORY {
            return Err(LimitError::MemoryTooSmall);
        }
        match self.memory_swap {
            Some(swap) if swap > 0 && memory == 0 => return Err(LimitError::SwapWithoutMemory),
            Some(swap) if swap > 0 && swap < memory => return Err(LimitError::SwapTooSmall),
            _ => {}
        }
        let reservation = self.memory_reservation.unwrap_or(0);
        if reservation != 0 && reservation < MIN_MEMORY {
            return Err(LimitError::ReservationTooSmall);
        }
        if memory > 0 && reservation > 0 && memory < reservation {
            return Err(LimitError::ReservationAboveMemory);
        }
        if let Some(n) = self.nano_cpus {
            if n != 0 && (n < 10_000_000 || n > online_cpus as i64 * 1_000_000_000) {
                return Err(LimitError::CpuRange(online_cpus));
            }
        }
        if let Some(list) = &self.cpuset_cpus {
            check_cpuset(list, "cpus", &online_list("cpu"))?;
        }
        if let Some(list) = &self.cpuset_mems {
            check_cpuset(list, "mems", &online_list("node"))?;
        }
        Ok(())
    }

    /// `linux.resources`: docker's device rules and whatever was asked.
    pub fn resources(&self) -> LinuxResources {
        let reservation = self.memory_reservation.filter(|r| *r > 0);
        let limit = self.memory.filter(|m| *m > 0);
        let memory = (limit.is_some() || reservation.is_some()).then(|| {
            let mut m = LinuxMemory::default();
            m.set_limit(limit)
                .set_swap(limit.map(|limit| match self.memory_swap {
                    // docker's default: as much swap as memory.
                    Some(s) if s == -1 || s > 0 => s,
                    _ => limit.saturating_mul(2),
                }))
                .set_reservation(reservation);
            m
        });
        let quota = self
            .nano_cpus
            .filter(|n| *n > 0)
            .map(|n| n * CPU_PERIOD as i64 / 1_000_000_000);
        let shares = self.cpu_shares.filter(|s| *s > 0);
        let (cpus, mems) = (self.cpuset_cpus.clone(), self.cpuset_mems.clone());
        let cpu = (quota.is_some() || shares.is_some() || cpus.is_some() || mems.is_some()).then(|| {
            let mut c = LinuxCpu::default();
            c.set_shares(shares)
                .set_quota(quota)
                .set_period(quota.map(|_| CPU_PERIOD))
                .set_cpus(cpus)
                .set_mems(mems);
            c
        });
        let pids = self.pids_limit.filter(|p| *p > 0).map(|limit| {
            let mut p = LinuxPids::default();
            p.set_limit(limit);
            p
        });
        let mut r = LinuxResources::default();
        r.set_devices(Some(spec::default_device_rules()))
            .set_memory(memory)
            .set_cpu(cpu)
            .set_pids(pids);
        r
    }

    /// `process.rlimits`: `base` (barge's RLIMIT_NOFILE) overridden by `--ulimit`.
    pub fn rlimits(&self, base: Vec<PosixRlimit>) -> Result<Vec<PosixRlimit>, crate::RuntimeError> {
        let mut out = base;
        for u in &self.ulimits {
            let Some((_, oci, _)) = ULIMITS.iter().find(|(n, _, _)| *n == u.name) else {
                continue;
            };
            let kind = PosixRlimitType::from_str(oci)
                .map_err(|_| crate::RuntimeError::Corrupt(format!("no rlimit {oci} in the runtime spec")))?;
            out.retain(|r| r.typ() != kind);
            out.push(spec::rlimit(kind, rlimit_value(u.soft), rlimit_value(u.hard))?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_that_need_a_cgroup_are_named() {
        assert!(Limits::default().cgroup_flags().is_empty());
        let ulimits_only = Limits {
            ulimits: vec![Ulimit {
                name: "nofile".into(),
                soft: 10,
                hard: 10,
            }],
            pids_limit: Some(-1),
            ..Limits::default()
        };
        assert!(
            ulimits_only.cgroup_flags().is_empty(),
            "rlimits and 'unlimited' need none"
        );
        let all = Limits {
            memory: Some(1 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(10),
            ..Limits::default()
        };
        assert_eq!(
            all.cgroup_flags(),
            [("--memory", "memory"), ("--cpus", "cpu"), ("--pids-limit", "pids")]
        );
    }

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("32mb"), Ok(32 << 20));
        assert_eq!(parse_size("64 k"), Ok(64 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("100b"), Ok(100));
        for bad in ["", "m", "-1", "12x", "1.2.3.m", "1gg", ".5g", "5.g", "1 gb x"] {
            assert_eq!(parse_size(bad), Err(LimitError::Size(bad.into())), "{bad}");
        }
        assert_eq!(parse_memory_swap("-1"), Ok(-1));
        assert_eq!(parse_memory_swap("1g"), Ok(1 << 30));
        assert_eq!(LimitError::Size("12x".into()).to_string(), "invalid size: '12x'");
    }

    #[test]
    fn cpus_as_nano_cpus() {
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("0.01"), Ok(10_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus(".5"), Ok(500_000_000));
        assert_eq!(parse_cpus("0.0000000001"), Err(LimitError::TooPrecise));
        assert_eq!(parse_cpus("abc"), Err(LimitError::Cpus("abc".into())));
        assert_eq!(
            LimitError::Cpus("abc".into()).to_string(),
            "failed to parse abc as a rational number"
        );
    }

    #[test]
    fn ulimits_like_go_units() {
        assert_eq!(
            parse_ulimit("nofile=1024:2048"),
            Ok(Ulimit {
                name: "nofile".into(),
                soft: 1024,
                hard: 2048
            })
        );
        assert_eq!(parse_ulimit("nproc=100").map(|u| (u.soft, u.hard)), Ok((100, 100)));
        assert_eq!(parse_ulimit("core=-1").map(|u| (u.soft, u.hard)), Ok((-1, -1)));
        assert_eq!(parse_ulimit("bogus=1"), Err(LimitError::UlimitType("bogus".into())));
        assert_eq!(parse_ulimit("nofile"), Err(LimitError::UlimitArgument("nofile".into())));
        assert_eq!(
            parse_ulimit("nofile=x"),
            Err(LimitError::UlimitArgument("nofile=x".into()))
        );
        assert_eq!(
            parse_ulimit("nofile=1:2:3"),
            Err(LimitError::UlimitValues("1:2:3".into()))
        );
        assert_eq!(parse_ulimit("nofile=20:10"), Err(LimitError::UlimitOrder(20, 10)));
        let l = Limits {
            ulimits: vec![parse_ulimit("nofile=10:20").unwrap(), parse_ulimit("core=-1").unwrap()],
            ..Default::default()
        };
        let r = l
            .rlimits(vec![
                spec::rlimit(PosixRlimitType::RlimitNofile, 1 << 20, 1 << 20).unwrap()
            ])
            .unwrap();
        let r: Vec<(String, u64, u64)> = r.iter().map(|r| (r.typ().to_string(), r.soft(), r.hard())).collect();
        assert_eq!(
            r,
            [
                ("RLIMIT_NOFILE".to_string(), 10, 20),
                ("RLIMIT_CORE".to_string(), u64::MAX, u64::MAX)
            ]
        );
        assert_eq!(rlimit_resource("RLIMIT_NPROC"), Some(rustix::process::Resource::Nproc));
    }

    #[test]
    fn docker_checks() {
        let l = |memory: Option<i64>, memory_swap: Option<i64>| Limits {
            memory,
            memory_swap,
            ..Default::default()
        };
        assert_eq!(l(Some(4 << 20), None).validate(2), Err(LimitError::MemoryTooSmall));
        assert_eq!(
            LimitError::MemoryTooSmall.to_string(),
            "Minimum memory limit allowed is 6MB"
        );
        assert_eq!(l(None, Some(1 << 30)).validate(2), Err(LimitError::SwapWithoutMemory));
        assert_eq!(
            l(Some(1 << 30), Some(1 << 29)).validate(2),
            Err(LimitError::SwapTooSmall)
        );
        assert_eq!(l(Some(1 << 30), Some(-1)).validate(2), Ok(()));
        let cpus = |n| Limits {
            nano_cpus: Some(n),
            ..Default::default()
        };
        assert_eq!(cpus(3_000_000_000).validate(2), Err(LimitError::CpuRange(2)));
        assert_eq!(
            LimitError::CpuRange(2).to_string(),
            "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"
        );
        assert_eq!(cpus(1_000_000).validate(2), Err(LimitError::CpuRange(2)));
        assert_eq!(cpus(500_000_000).validate(2), Ok(()));
        let reserve = |memory: Option<i64>, r: i64| Limits {
            memory,
            memory_reservation: Some(r),
            ..Default::default()
        };
        assert_eq!(reserve(None, 1 << 20).validate(2), Err(LimitError::ReservationTooSmall));
        assert_eq!(
            reserve(Some(16 << 20), 32 << 20).validate(2),
            Err(LimitError::ReservationAboveMemory)
        );
        assert_eq!(reserve(Some(32 << 20), 16 << 20).validate(2), Ok(()));
    }

    #[test]
    fn cpusets_checked_as_docker_checks_them() {
        assert_eq!(check_cpuset("0-1", "cpus", "0-1\n"), Ok(()));
        assert_eq!(check_cpuset("1,0", "cpus", "0-3"), Ok(()));
        assert_eq!(
            check_cpuset("0-3", "cpus", "0-1").unwrap_err().to_string(),
            "Requested CPUs are not available - requested 0-3, available: 0-1"
        );
        assert_eq!(
            check_cpuset("1", "mems", "0").unwrap_err().to_string(),
            "Requested memory nodes are not available - requested 1, available: 0"
        );
        for bad in ["", "a", "1-", "3-1", "0 1", "0,,1", "-1", "99999"] {
            assert_eq!(
                check_cpuset(bad, "cpus", "0-1"),
                Err(LimitError::CpusetSyntax(bad.into(), "cpus")),
                "{bad}"
            );
        }
        let r = Limits {
            cpuset_cpus: Some("0".into()),
            cpuset_mems: Some("0".into()),
            ..Default::default()
        }
        .resources();
        let c = r.cpu().as_ref().unwrap();
        assert_eq!((c.cpus().as_deref(), c.mems().as_deref()), (Some("0"), Some("0")));
        assert_eq!((c.shares(), c.quota()), (None, None));
    }

    #[test]
    fn resources_as_docker_writes_them() {
        let r = Limits {
            memory: Some(32 << 20),
            nano_cpus: Some(500_000_000),
            cpu_shares: Some(512),
            pids_limit: Some(20),
            ..Default::default()
        }
        .resources();
        let m = r.memory().unwrap();
        assert_eq!((m.limit(), m.swap()), (Some(32 << 20), Some(64 << 20)));
        let c = r.cpu().as_ref().unwrap();
        assert_eq!(
            (c.shares(), c.quota(), c.period()),
            (Some(512), Some(50_000), Some(100_000))
        );
        assert_eq!(r.pids().map(|p| p.limit()), Some(20));
        assert!(!r.devices().as_ref().unwrap()[0].allow(), "deny everything first");
        let unlimited_swap = Limits {
            memory: Some(32 << 20),
            memory_swap: Some(-1),
            pids_limit: Some(-1),
            ..Default::default()
        }
        .resources();
        assert_eq!(unlimited_swap.memory().and_then(|m| m.swap()), Some(-1));
        assert_eq!(unlimited_swap.pids(), &None);
        assert_eq!(unlimited_swap.cpu(), &None);
    }
}
