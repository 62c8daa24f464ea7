//! `docker update`: new limits and restart policy for a container. A
//! running container's cgroup takes the limits at once; its bundle's
//! `linux.resources` and its record keep them for the next start. The
//! flags are `run`'s ([`Limits`]), parsed and checked as `run` does.

use crate::container::{self, Container, Status};
use crate::limits::Limits;
use crate::restart::RestartPolicy;
use crate::spec::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
use crate::{Runtime, RuntimeError};

/// What `update` was asked to change: a `None` (or a zero, as docker
/// takes it) leaves the value as it is.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub limits: Limits,
    pub restart: Option<RestartPolicy>,
}

impl Runtime {
    /// Applies `u` to the container: to its cgroup when it runs, to its
    /// bundle and record in any case (the monitor reads the policy anew
    /// before each decision).
    pub fn update(&self, c: &Container, u: &Update) -> Result<(), RuntimeError> {
        let _lock = self.lock()?;
        let mut c = Container::load(&c.dir)?;
        if let Some(policy) = u.restart {
            if c.meta.auto_remove && !policy.is_no() {
                return Err(RuntimeError::BadOption(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container".into(),
                ));
            }
        }
        if u.limits != Limits::default() {
            if crate::rootless::rootless() {
                crate::rootless::check_limits(&u.limits)?;
            }
            let mut spec = c.spec()?;
            let current = crate::spec::resources(&spec).cloned().unwrap_or_default();
            let (merged, delta) = merge(&current, &u.limits, crate::create::online_cpus())?;
            if c.state()?.status == Status::Running {
                if c.meta.runtime.is_some() {
                    crate::runner::external_update(&c, &delta)?;
                } else if let Some(cg) = barge_cgroups::Cgroup::load(&c.dir) {
                    cg.update(&delta)?;
                } else if c.state()?.status == Status::Running {
                    // Not an exit in between (its cgroup goes with it): a start without one.
                    return Err(RuntimeError::BadOption(format!(
                        "container {} runs without a cgroup (started where barge could make none): its limits cannot change until it is started again",
                        c.meta.name
                    )));
                }
            }
            let mut linux = crate::spec::linux(&spec)?.clone();
            linux.set_resources(Some(merged));
            spec.set_linux(Some(linux));
            container::write_json(&c.dir.join("config.json"), &spec)?;
        }
        if let Some(policy) = u.restart {
            c.meta.restart = policy;
            container::write_json(&c.dir.join("meta.json"), &c.meta)?;
        }
        Ok(())
    }
}

/// The bundle's resources after `asked` (`merged`), and what to write to
/// a running cgroup (`delta`: only what changes, with the memory+swap
/// pair whole, as v2's `memory.swap.max` is their difference).
fn merge(
    current: &LinuxResources,
    asked: &Limits,
    online_cpus: usize,
) -> Result<(LinuxResources, LinuxResources), RuntimeError> {
    let mem = current.memory().unwrap_or_default();
    let given = |v: Option<i64>| v.filter(|v| *v != 0);
    let (memory, swap, reservation) = (
        given(asked.memory),
        given(asked.memory_swap),
        given(asked.memory_reservation),
    );
    if let (Some(m), None, Some(s)) = (memory, swap, mem.swap()) {
        if s > 0 && m > s {
            return Err(RuntimeError::BadOption(
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
                    .into(),
            ));
        }
    }
    let limit = memory.or(mem.limit());
    let swap = swap.or(mem.swap());
    let reservation = reservation.or(mem.reservation());
    Limits {
        memory: limit,
        memory_swap: swap,
        memory_reservation: reservation,
        nano_cpus: asked.nano_cpus,
        ..Limits::default()
    }
    .validate(online_cpus)?;

    let mut merged = current.clone();
    let mut delta = LinuxResources::default();
    if memory.is_some() || given(asked.memory_swap).is_some() || given(asked.memory_reservation).is_some() {
        let mut m = mem;
        m.set_limit(limit).set_swap(swap).set_reservation(reservation);
        merged.set_memory(Some(m));
        let mut d = LinuxMemory::default();
        if memory.is_some() || given(asked.memory_swap).is_some() {
            d.set_limit(limit).set_swap(swap);
        }
        d.set_reservation(given(asked.memory_reservation));
        delta.set_memory(Some(d));
    }
    let shares = asked.cpu_shares.filter(|s| *s > 0);
    let quota = given(asked.nano_cpus).map(|n| n * crate::limits::CPU_PERIOD as i64 / 1_000_000_000);
    if shares.is_some() || quota.is_some() {
        let mut cpu = current.cpu().clone().unwrap_or_default();
        let mut d = LinuxCpu::default();
        if let Some(s) = shares {
            cpu.set_shares(Some(s));
            d.set_shares(Some(s));
        }
        if let Some(q) = quota {
            cpu.set_quota(Some(q)).set_period(Some(crate::limits::CPU_PERIOD));
            d.set_quota(Some(q)).set_period(Some(crate::limits::CPU_PERIOD));
        }
        merged.set_cpu(Some(cpu));
        delta.set_cpu(Some(d));
    }
    if let Some(p) = asked.pids_limit {
        let mut d = LinuxPids::default();
        d.set_limit(if p > 0 { p } else { -1 });
        merged.set_pids((p > 0).then_some(d));
        delta.set_pids(Some(d));
    }
    Ok((merged, delta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_limits(memory: i64) -> LinuxResources {
        Limits {
            memory: Some(memory),
            pids_limit: Some(10),
            ..Limits::default()
        }
        .resources()
    }

    #[test]
    fn memory_above_the_set_swap_needs_the_swap_too() {
        let current = run_limits(32 << 20);
        let asked = Limits {
            memory: Some(100 << 20),
            ..Limits::default()
        };
        let e = merge(&current, &asked, 2).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("Memory limit should be smaller than already set memoryswap limit"));
        let both = Limits {
            memory_swap: Some(200 << 20),
            ..asked
        };
        let (merged, delta) = merge(&current, &both, 2).unwrap();
        let m = merged.memory().unwrap();
        assert_eq!((m.limit(), m.swap()), (Some(100 << 20), Some(200 << 20)));
        assert_eq!(delta.memory().as_ref().and_then(|m| m.swap()), Some(200 << 20));
        assert_eq!(merged.pids().map(|p| p.limit()), Some(10), "kept as it was");
        assert!(delta.pids().is_none() && delta.cpu().is_none(), "only what changes");
        assert!(merged.devices().is_some() && delta.devices().is_none());
    }

    #[test]
    fn run_checks_apply_to_the_merged_limits() {
        let current = run_limits(32 << 20);
        let swap_below = Limits {
            memory_swap: Some(16 << 20),
            ..Limits::default()
        };
        assert_eq!(
            merge(&current, &swap_below, 2).unwrap_err().to_string(),
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        );
        let cpus = Limits {
            nano_cpus: Some(8_000_000_000),
            ..Limits::default()
        };
        assert!(merge(&current, &cpus, 2).is_err());
    }

    #[test]
    fn unlimited_pids_leave_the_bundle_and_write_max() {
        let asked = Limits {
            pids_limit: Some(-1),
            cpu_shares: Some(512),
            nano_cpus: Some(500_000_000),
            ..Limits::default()
        };
        let (merged, delta) = merge(&run_limits(32 << 20), &asked, 2).unwrap();
        assert!(merged.pids().is_none());
        assert_eq!(delta.pids().map(|p| p.limit()), Some(-1));
        let c = merged.cpu().clone().unwrap();
        assert_eq!(
            (c.shares(), c.quota(), c.period()),
            (Some(512), Some(50_000), Some(100_000))
        );
        let s = barge_cgroups::settings(&delta, barge_cgroups::Version::V2).unwrap();
        assert!(s.contains(&("pids", "pids.max", "max".into())));
        assert!(s.contains(&("cpu", "cpu.max", "50000 100000".into())));
    }
}
