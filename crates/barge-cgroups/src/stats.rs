//! `barge stats`: samples of a container's usage, and docker's arithmetic
//! on two of them. CPU, memory, processes and block I/O come from its
//! cgroup ([`crate::Cgroup::usage`]), network I/O from its network
//! namespace (`/proc/PID/net/dev`, `lo` left out, [`parse_net_dev`]), host
//! CPU time from `/proc/stat`. Which container, and whether it runs, is the
//! caller's business (`barge-runtime`'s `stats::sample`).

use crate::Usage;
use std::time::Instant;

/// One look at a container.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    pub running: bool,
    pub usage: Usage,
    /// The host's CPU time, all CPUs, in nanoseconds (docker's "system usage").
    pub system_ns: u64,
    pub online_cpus: u32,
    pub net_rx: u64,
    pub net_tx: u64,
}

/// What `stats` shows for a container, from two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Numbers {
    pub cpu_percent: f64,
    pub memory: u64,
    /// The cgroup's limit, or the host's memory when there is none.
    pub memory_limit: u64,
    pub memory_percent: f64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
}

/// Host CPU time in nanoseconds from `/proc/stat` text: user, nice,
/// system, idle, iowait, irq and softirq of the `cpu` line, as docker sums them.
pub fn parse_proc_stat(text: &str, ticks_per_second: u64) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .map(|v| v.parse::<u64>().unwrap_or(0))
        .sum();
    Some(ticks.saturating_mul(1_000_000_000) / ticks_per_second.max(1))
}

/// Bytes received and sent on every interface but `lo`, from `/proc/PID/net/dev` text.
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0, 0);
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = counters.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
        rx += f.first().copied().unwrap_or(0);
        tx += f.get(8).copied().unwrap_or(0);
    }
    (rx, tx)
}

/// The host's memory, bytes (`MemTotal`).
pub fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                let kb = l.strip_prefix("MemTotal:")?.trim().trim_end_matches("kB").trim();
                kb.parse::<u64>().ok()
            })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Processors online (`/sys/devices/system/cpu/online`, such as `0-3,6`),
/// at least 1.
pub fn online_cpus() -> u32 {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| parse_cpu_list(&s))
        .unwrap_or(1)
        .max(1)
}

/// How many CPUs a kernel CPU list (`0-3,6`) names.
pub fn parse_cpu_list(text: &str) -> Option<u32> {
    let mut n = 0;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<u32>().ok()?.checked_sub(a.parse::<u32>().ok()?)? + 1,
            None => part.parse::<u32>().map(|_| 1).ok()?,
        };
    }
    Some(n)
}

impl Sample {
    /// A sample taken now of a container's cgroup `usage` and network
    /// counters `net` (received, sent); zeros for one that is not `running`.
    pub fn now(running: bool, usage: Usage, (net_rx, net_tx): (u64, u64)) -> Sample {
        Sample {
            at: Instant::now(),
            running,
            usage,
            system_ns: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|t| parse_proc_stat(&t, rustix::param::clock_ticks_per_second()))
                .unwrap_or(0),
            online_cpus: online_cpus(),
            net_rx,
            net_tx,
        }
    }
}

/// docker's numbers from an earlier and a later sample: CPU % is the
/// container's share of the host's CPU time over the interval times the
/// number of CPUs (100% is one CPU busy).
pub fn numbers(prev: &Sample, cur: &Sample, host_memory: u64) -> Numbers {
    let cpu_delta = cur.usage.cpu_ns.saturating_sub(prev.usage.cpu_ns) as f64;
    let system_delta = cur.system_ns.saturating_sub(prev.system_ns) as f64;
    let cpu_percent = if cur.running && cpu_delta > 0.0 && system_delta > 0.0 {
        cpu_delta / system_delta * f64::from(cur.online_cpus) * 100.0
    } else {
        0.0
    };
    let memory_limit = if cur.running {
        match cur.usage.memory_limit {
            Some(l) if host_memory == 0 || l < host_memory => l,
            _ => host_memory,
        }
    } else {
        0
    };
    let memory_percent = if memory_limit > 0 {
        cur.usage.memory as f64 / memory_limit as f64 * 100.0
    } else {
        0.0
    };
    Numbers {
        cpu_percent,
        memory: cur.usage.memory,
        memory_limit,
        memory_percent,
        net_rx: cur.net_rx,
        net_tx: cur.net_tx,
        block_read: cur.usage.block_read,
        block_write: cur.usage.block_write,
        pids: cur.usage.pids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cpu_time() {
        let stat = "cpu  100 5 50 800 10 3 2 7 0 0\ncpu0 50 2 25 400 5 1 1 3 0 0\n";
        // 970 ticks of 10ms; steal and guest are not counted, as in docker.
        assert_eq!(parse_proc_stat(stat, 100), Some(9_700_000_000));
        assert_eq!(parse_proc_stat("intr 1\n", 100), None);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3\n"), Some(4));
        assert_eq!(parse_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert!(online_cpus() >= 1);
    }

    #[test]
    fn network_without_loopback() {
        let dev = "Inter-|   Receive                                                |  Transmit\n \
face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:  999999      10    0    0    0     0          0         0   999999      10    0    0    0     0       0          0\n  \
eth0:    1200      12    0    0    0     0          0         0     3400      20    0    0    0     0       0          0\n";
        assert_eq!(parse_net_dev(dev), (1200, 3400));
    }

    #[test]
    fn docker_arithmetic() {
        let at = Instant::now();
        let s = |cpu_ns, system_ns, memory, limit| Sample {
            at,
            running: true,
            usage: Usage {
                cpu_ns,
                memory,
                memory_limit: limit,
                pids: 3,
                ..Default::default()
            },
            system_ns,
            online_cpus: 2,
            net_rx: 0,
            net_tx: 0,
        };
        // One CPU busy for a second on a two-CPU host: 1s of 2s system time.
        let n = numbers(
            &s(0, 0, 0, None),
            &s(1_000_000_000, 2_000_000_000, 1 << 20, None),
            8 << 30,
        );
        assert!((n.cpu_percent - 100.0).abs() < 1e-9, "{n:?}");
        assert_eq!(n.memory_limit, 8 << 30, "no limit: the host's memory");
        let n = numbers(&s(0, 0, 0, None), &s(0, 1, 8 << 20, Some(32 << 20)), 8 << 30);
        assert_eq!((n.memory_limit, n.memory_percent), (32 << 20, 25.0));
        assert_eq!(n.cpu_percent, 0.0);
        assert_eq!(n.pids, 3);
    }
}
