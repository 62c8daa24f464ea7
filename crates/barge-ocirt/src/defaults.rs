//! `barge-runtime spec` (a starting `config.json`, runc's defaults) and
//! `barge-runtime features` (what this runtime implements, in the runtime
//! spec's features document).

use barge_runner::spec::Spec;
use serde_json::json;

/// runc's default bundle config: `sh` on a terminal as root, runc's three
/// capabilities, RLIMIT_NOFILE 1024, the standard mounts, masked and
/// read-only paths and new namespaces (`oci-spec`'s default is runc's).
pub fn spec() -> Result<serde_json::Value, serde_json::Error> {
    let spec = Spec::default();
    let mut v = serde_json::to_value(&spec)?;
    v["ociVersion"] = json!(barge_runner::spec::OCI_VERSION);
    v["hostname"] = json!("barge");
    v["process"]["terminal"] = json!(true);
    v["process"]["args"] = json!(["sh"]);
    // runc (since 1.1.2, CVE-2022-29162) writes no inheritable set.
    if let Some(caps) = v["process"]["capabilities"].as_object_mut() {
        caps.remove("inheritable");
    }
    Ok(v)
}

/// The features document (runtime-spec `features.md`).
pub fn features() -> serde_json::Value {
    let last = barge_runner::caps::last_cap() as usize;
    let caps: Vec<&str> = barge_runner::caps::ALL.iter().take(last + 1).copied().collect();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": barge_runner::spec::OCI_VERSION,
        "hooks": [],
        "mountOptions": [
            "bind", "rbind", "ro", "rw", "rro", "nosuid", "nodev", "noexec", "relatime", "noatime",
            "strictatime", "private", "rprivate"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
                ],
                "archs": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
        },
        "annotations": {"org.opencontainers.runc.checkpoint.enabled": "false"},
    })
}
