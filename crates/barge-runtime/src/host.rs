//! What `info` reports of the machine containers run on, as docker's
//! Server section does.

/// The host as docker's `info` describes it.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// `uname -r`.
    pub kernel: String,
    /// `PRETTY_NAME` of /etc/os-release.
    pub operating_system: String,
    /// `uname -m` (`x86_64`, as docker prints it).
    pub machine: String,
    pub cpus: usize,
    /// MemTotal of /proc/meminfo, in bytes.
    pub memory: u64,
    /// The host name.
    pub name: String,
    /// 1 or 2; `None` when no cgroup hierarchy is mounted.
    pub cgroup_version: Option<u8>,
}

pub fn facts() -> HostFacts {
    let uname = rustix::system::uname();
    let text = |s: &std::ffi::CStr| s.to_string_lossy().into_owned();
    let operating_system = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    HostFacts {
        kernel: text(uname.release()),
        operating_system,
        machine: text(uname.machine()),
        cpus: barge_cgroups::stats::online_cpus() as usize,
        memory,
        name: text(uname.nodename()),
        cgroup_version: barge_cgroups::detect().map(|l| match l {
            barge_cgroups::Layout::V1(_) => 1,
            barge_cgroups::Layout::V2(_) => 2,
        }),
    }
}
