//! Linux capabilities by name, docker's default set, `--cap-add/--cap-drop`.

/// Every capability the kernel defines, by number.
pub const ALL: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// docker's default capabilities.
pub const DOCKER_DEFAULT: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown capability {0:?}: use names like NET_ADMIN or CAP_NET_ADMIN, or ALL")]
pub struct UnknownCapability(pub String);

/// `NET_ADMIN`, `cap_net_admin` → `CAP_NET_ADMIN`.
fn normalise(name: &str) -> Result<String, UnknownCapability> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(UnknownCapability(name.to_string()))
    }
}

/// docker's rule: start from the default set, drop `drop` (ALL drops
/// everything), then add `add` (ALL adds everything).
pub fn resolve(add: &[String], drop: &[String]) -> Result<Vec<String>, UnknownCapability> {
    let is_all = |v: &[String]| v.iter().any(|c| c.eq_ignore_ascii_case("ALL"));
    let mut set: Vec<String> = DOCKER_DEFAULT.iter().map(|s| s.to_string()).collect();
    if is_all(drop) {
        set.clear();
    } else {
        let drop = drop.iter().map(|c| normalise(c)).collect::<Result<Vec<_>, _>>()?;
        set.retain(|c| !drop.contains(c));
    }
    if is_all(add) {
        set = ALL.iter().map(|s| s.to_string()).collect();
    } else {
        for c in add {
            let c = normalise(c)?;
            if !set.contains(&c) {
                set.push(c);
            }
        }
    }
    Ok(set)
}

/// The bit mask of a list of names (unknown names are errors).
pub fn mask(names: &[String]) -> Result<u64, UnknownCapability> {
    let mut m = 0u64;
    for n in names {
        let full = normalise(n)?;
        let bit = ALL
            .iter()
            .position(|c| *c == full)
            .ok_or_else(|| UnknownCapability(n.clone()))?;
        m |= 1 << bit;
    }
    Ok(m)
}

/// The highest capability number this kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(ALL.len() as u32 - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_drop_like_docker() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(resolve(&[], &[]).unwrap().len(), 14);
        let r = resolve(&s(&["net_admin"]), &s(&["CHOWN", "CAP_KILL"])).unwrap();
        assert!(r.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!r.contains(&"CAP_CHOWN".to_string()) && !r.contains(&"CAP_KILL".to_string()));
        assert_eq!(resolve(&s(&["SYS_TIME"]), &s(&["ALL"])).unwrap(), ["CAP_SYS_TIME"]);
        assert_eq!(resolve(&s(&["ALL"]), &[]).unwrap().len(), ALL.len());
        assert!(resolve(&s(&["BOGUS"]), &[]).is_err());
        assert_eq!(mask(&s(&["CAP_CHOWN", "KILL"])).unwrap(), 0b100001);
    }
}
