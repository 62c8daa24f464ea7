//! Health checks: docker's `HEALTHCHECK` and `--health-*`.
//!
//! A container's check is its image's `Healthcheck` with the flags laid
//! over it field by field ([`merge`]), kept in its `meta.json`. While the
//! container runs, a prober runs the test command inside it every interval,
//! exactly as `exec` does ([`Runtime::exec_entry`]: the container's
//! namespaces, cgroup, user, capabilities and seccomp filter), kills it at
//! the timeout, keeps the first [`MAX_OUTPUT`] bytes of its output, and
//! writes docker's `State.Health` to `health.json` in the container's
//! directory (atomically: `inspect`, `ps` and `stop` read it while it runs).
//!
//! The prober is a process the container's monitor forks before each
//! start: the monitor is single-threaded then (port forwarding starts
//! threads only after the start) and the prober inherits none of the
//! container's descriptors; it closes everything else it inherited, dies
//! with the monitor (`PR_SET_PDEATHSIG`), and the monitor kills it when the
//! container exits ([`Prober`]'s drop).

use crate::container::{Container, State, Status};
use crate::exec::ExecOptions;
use crate::{io_err, Runtime, RuntimeError};
use barge_oci::image::Healthcheck;
use barge_runner::sys::Forked;
use barge_runner::ChildIo;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::OwnedFd;
use rustix::process::{Pid, Signal, WaitOptions};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// docker's defaults: a probe every 30 s, 30 s each, 3 failures in a row.
const DEFAULT_INTERVAL: i64 = 30_000_000_000;
const DEFAULT_TIMEOUT: i64 = 30_000_000_000;
const DEFAULT_RETRIES: i64 = 3;
/// The shortest duration other than 0 (docker's `MinimumDuration`).
const MINIMUM_DURATION: i64 = 1_000_000;
/// Output bytes kept per probe (docker's `maxOutputLen`).
pub const MAX_OUTPUT: usize = 4096;
/// Probe results kept (docker's `maxLogEntries`).
pub const MAX_LOG: usize = 5;

/// `run`/`create`'s health flags, as given.
#[derive(Debug, Clone, Default)]
pub struct HealthOptions {
    /// `--health-cmd`: a command line for `/bin/sh -c`.
    pub cmd: Option<String>,
    /// `--health-interval`, `--health-timeout`, `--health-start-period`:
    /// Go durations.
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    /// `--health-retries`.
    pub retries: Option<i64>,
    /// `--no-healthcheck`.
    pub no_healthcheck: bool,
}

fn bad(message: impl Into<String>) -> RuntimeError {
    RuntimeError::BadOption(message.into())
}

impl HealthOptions {
    /// The container's own check, checked as docker's client and daemon
    /// check it (before any pull); `None` when no flag asks for one.
    pub fn validate(&self) -> Result<Option<Healthcheck>, RuntimeError> {
        let duration = |flag: &str, v: &Option<String>| -> Result<i64, RuntimeError> {
            match v {
                None => Ok(0),
                Some(v) => barge_oci::time::go_duration(v)
                    .map_err(|e| bad(format!("invalid argument {v:?} for \"{flag}\" flag: {e}"))),
            }
        };
        let interval = duration("--health-interval", &self.interval)?;
        let timeout = duration("--health-timeout", &self.timeout)?;
        let start_period = duration("--health-start-period", &self.start_period)?;
        let retries = self.retries.unwrap_or(0);
        let cmd = self.cmd.clone().filter(|c| !c.is_empty());
        let asked = cmd.is_some() || interval != 0 || timeout != 0 || start_period != 0 || retries != 0;
        if self.no_healthcheck {
            if asked {
                return Err(bad("--no-healthcheck conflicts with --health-* options"));
            }
            return Ok(Some(Healthcheck {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }));
        }
        if !asked {
            return Ok(None);
        }
        for (flag, v) in [
            ("--health-interval", interval),
            ("--health-timeout", timeout),
            ("--health-retries", retries),
            ("--health-start-period", start_period),
        ] {
            if v < 0 {
                return Err(bad(format!("{flag} cannot be negative")));
            }
        }
        for (field, v) in [
            ("Interval", interval),
            ("Timeout", timeout),
            ("StartPeriod", start_period),
        ] {
            if v != 0 && v < MINIMUM_DURATION {
                return Err(bad(format!("{field} in Healthcheck cannot be less than 1ms")));
            }
        }
        let set = |v: i64| (v != 0).then_some(v);
        Ok(Some(Healthcheck {
            test: cmd.map(|c| vec!["CMD-SHELL".into(), c]),
            interval: set(interval),
            timeout: set(timeout),
            start_period: set(start_period),
            retries: set(retries),
            ..Default::default()
        }))
    }
}

/// docker's merge of the user's check over the image's: each field the
/// user left unset (an empty test, a zero) comes from the image.
pub fn merge(user: Option<&Healthcheck>, image: Option<&Healthcheck>) -> Option<Healthcheck> {
    let Some(user) = user else {
        return image.cloned();
    };
    let mut h = user.clone();
    if let Some(image) = image {
        if h.test.as_ref().is_none_or(Vec::is_empty) {
            h.test = image.test.clone();
        }
        let unset = |v: Option<i64>| v.unwrap_or(0) == 0;
        if unset(h.interval) {
            h.interval = image.interval;
        }
        if unset(h.timeout) {
            h.timeout = image.timeout;
        }
        if unset(h.start_period) {
            h.start_period = image.start_period;
        }
        if unset(h.retries) {
            h.retries = image.retries;
        }
    }
    Some(h)
}

/// A check to run: the command and docker's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `["CMD", …]`'s arguments, or `/bin/sh -c` and `["CMD-SHELL", …]`'s.
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub retries: u32,
}

impl Check {
    /// The check a container's `Healthcheck` asks for, `CMD-SHELL` run
    /// by `shell` (the image's `SHELL`; `/bin/sh -c` when empty, as
    /// docker's `getShell`); `None` for none, `["NONE"]`, or a test docker
    /// would not run either.
    pub fn of(h: Option<&Healthcheck>, shell: &[String]) -> Option<Check> {
        let h = h?;
        let (kind, rest) = h.test.as_ref()?.split_first()?;
        let default_shell = ["/bin/sh".to_string(), "-c".to_string()];
        let shell = if shell.is_empty() { &default_shell[..] } else { shell };
        let argv = match kind.as_str() {
            "CMD" if !rest.is_empty() => rest.to_vec(),
            "CMD-SHELL" if !rest.is_empty() => shell.iter().chain(rest.iter()).cloned().collect(),
            _ => return None,
        };
        let ns = |v: Option<i64>, default: i64| Duration::from_nanos(v.filter(|n| *n > 0).unwrap_or(default) as u64);
        Some(Check {
            argv,
            interval: ns(h.interval, DEFAULT_INTERVAL),
            timeout: ns(h.timeout, DEFAULT_TIMEOUT),
            start_period: ns(h.start_period, 0),
            retries: h
                .retries
                .filter(|r| *r > 0)
                .unwrap_or(DEFAULT_RETRIES)
                .try_into()
                .unwrap_or(u32::MAX),
        })
    }
}

/// docker's health states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    /// The name `inspect` and `ps --filter health=` use.
    pub fn name(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }

    /// What `ps` shows in parentheses after `Up …`.
    pub fn ps_text(self) -> &'static str {
        match self {
            HealthStatus::Starting => "health: starting",
            other => other.name(),
        }
    }
}

/// One probe (docker's `HealthcheckResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProbeResult {
    pub start: String,
    pub end: String,
    /// The command's exit status; -1 when it timed out or could not start.
    pub exit_code: i64,
    pub output: String,
}

/// docker's `State.Health`: `health.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: HealthStatus,
    pub failing_streak: u32,
    /// The last [`MAX_LOG`] results, oldest first.
    pub log: Vec<ProbeResult>,
}

impl Health {
    pub fn starting() -> Health {
        Health {
            status: HealthStatus::Starting,
            failing_streak: 0,
            log: Vec::new(),
        }
    }

    /// Takes a result in as docker does: a success makes the container
    /// healthy (and ends the start period); a failure counts unless the
    /// container is still starting within its start period, and `retries`
    /// of them in a row make it unhealthy.
    pub fn record(&mut self, r: ProbeResult, in_start_period: bool, retries: u32) {
        if r.exit_code == 0 {
            self.failing_streak = 0;
            self.status = HealthStatus::Healthy;
        } else if !(self.status == HealthStatus::Starting && in_start_period) {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = HealthStatus::Unhealthy;
            }
        }
        self.log.push(r);
        let extra = self.log.len().saturating_sub(MAX_LOG);
        self.log.drain(..extra);
    }
}

fn health_path(c: &Container) -> PathBuf {
    c.dir.join("health.json")
}

/// The container's `State.Health`: `None` when it has no check, or has
/// not run with one; `starting` for a running one not yet probed.
pub fn current(c: &Container, st: &State) -> Option<Health> {
    Check::of(c.meta.healthcheck.as_ref(), &c.meta.shell)?;
    match barge_records::read_json(&health_path(c)) {
        Ok(h) => Some(h),
        Err(_) if st.status == Status::Running => Some(Health::starting()),
        Err(_) => None,
    }
}

/// The prober of one run of a container; killed and reaped when dropped.
pub(crate) struct Prober {
    pid: Pid,
}

impl Drop for Prober {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process(self.pid, Signal::KILL);
        let _ = rustix::process::waitpid(Some(self.pid), WaitOptions::empty());
    }
}

impl Runtime {
    /// Forks the prober of a container about to start (`None` without a
    /// check). Called while the caller is single-threaded and before the
    /// container's descriptors exist.
    pub(crate) fn fork_prober(&self, c: &Container) -> Option<Prober> {
        let check = Check::of(c.meta.healthcheck.as_ref(), &c.meta.shell)?;
        let parent = rustix::process::getpid();
        match barge_runner::sys::fork() {
            Ok(Forked::Child) => {
                self.prober(c, &check, parent);
                barge_runner::sys::exit(0)
            }
            Ok(Forked::Parent { child }) => Pid::from_raw(child).map(|pid| Prober { pid }),
            Err(e) => {
                let mut h = barge_records::read_json(&health_path(c)).unwrap_or_else(|_| Health::starting());
                h.log
                    .push(failed_probe(format!("starting the health check (fork): {e}")));
                let _ = barge_records::write_json(&health_path(c), &h);
                None
            }
        }
    }

    /// The prober process: waits for the container to run, then probes it
    /// every interval until it is gone (or the monitor kills this process).
    fn prober(&self, c: &Container, check: &Check, parent: Pid) {
        let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
        if rustix::process::getppid() != Some(parent) {
            return;
        }
        // Nothing of the monitor's: the caller's ready pipe, its terminal.
        if let Ok(null) = rustix::fs::open("/dev/null", rustix::fs::OFlags::RDWR, rustix::fs::Mode::empty()) {
            let _ = rustix::stdio::dup2_stdin(&null);
            let _ = rustix::stdio::dup2_stdout(&null);
            let _ = rustix::stdio::dup2_stderr(&null);
        }
        // Only this process's copies: it never returns to code that owns them.
        barge_runner::sys::close_from(3);
        let (pid, pid_start) = loop {
            match c.state() {
                Ok(st) if st.status == Status::Running => {
                    if let (Some(pid), Some(start)) = (st.pid, st.pid_start) {
                        break (pid, start);
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let running_since = Instant::now();
        let alive = || crate::container::process_start_time(pid) == Some(pid_start);
        let mut health: Health = barge_records::read_json(&health_path(c)).unwrap_or_else(|_| Health::starting());
        health.status = HealthStatus::Starting;
        health.failing_streak = 0;
        let _ = barge_records::write_json(&health_path(c), &health);
        loop {
            let wake = Instant::now() + check.interval;
            while Instant::now() < wake {
                if !alive() {
                    return;
                }
                std::thread::sleep((wake - Instant::now()).min(Duration::from_millis(100)));
            }
            let began = Instant::now();
            let result = self.probe(c, check);
            if !alive() {
                return;
            }
            health.record(result, began - running_since < check.start_period, check.retries);
            let _ = barge_records::write_json(&health_path(c), &health);
        }
    }

    /// Runs the check's command once inside the container.
    fn probe(&self, c: &Container, check: &Check) -> ProbeResult {
        // As docker's exec refuses: the command would join the frozen
        // cgroup and never run.
        if self.paused(c) {
            return failed_probe(format!(
                "Container {} is paused, unpause the container before exec",
                c.meta.id
            ));
        }
        let start = crate::now_rfc3339();
        match self.run_probe(c, check) {
            Ok((exit_code, output)) => ProbeResult {
                start,
                end: crate::now_rfc3339(),
                exit_code,
                output,
            },
            Err(e) => ProbeResult {
                start,
                ..failed_probe(e.to_string())
            },
        }
    }

    fn run_probe(&self, c: &Container, check: &Check) -> Result<(i64, String), RuntimeError> {
        let entry = self.exec_entry(
            c,
            &ExecOptions {
                args: check.argv.clone(),
                ..Default::default()
            },
        )?;
        let (out_r, out_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| io_err("creating a pipe")(e.into()))?;
        let err_w = out_w.try_clone().map_err(io_err("creating a pipe"))?;
        let started = entry.spawn(
            None,
            ChildIo::Fds {
                stdin: None,
                stdout: out_w,
                stderr: err_w,
            },
        )?;
        let deadline = Instant::now() + check.timeout;
        let mut output = Output::default();
        let mut exit: Option<i64> = None;
        // Set at the exit: a moment for output still on its way; a process
        // the command left behind holding the pipe cannot keep us longer.
        let mut drain_until: Option<Instant> = None;
        let mut out = Some(out_r);
        let mut buf = [0u8; 4096];
        loop {
            let now = Instant::now();
            if exit.is_none() && now >= deadline {
                kill_probe(&started);
                let ns = check.timeout.as_nanos().try_into().unwrap_or(i64::MAX);
                return Ok((
                    -1,
                    format!(
                        "Health check exceeded timeout ({})",
                        barge_oci::time::format_go_duration(ns)
                    ),
                ));
            }
            if drain_until.is_some_and(|d| now >= d) {
                break;
            }
            let Some(reader) = out.as_ref() else {
                if exit.is_some() {
                    break;
                }
                wait_pidfd_until(&started.pidfd, deadline);
                exit = reap(&started);
                continue;
            };
            let mut fds = vec![PollFd::new(reader, PollFlags::IN)];
            if exit.is_none() {
                fds.push(PollFd::new(&started.pidfd, PollFlags::IN));
            }
            let timeout = timespec(drain_until.unwrap_or(deadline).saturating_duration_since(now));
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(io_err("waiting for the health check")(e.into())),
            }
            let (read_ready, exited) = (
                !fds[0].revents().is_empty(),
                fds.get(1).is_some_and(|f| !f.revents().is_empty()),
            );
            drop(fds);
            if read_ready {
                match rustix::io::read(reader, &mut buf) {
                    Ok(0) => out = None,
                    Ok(n) => output.push(&buf[..n]),
                    Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                    Err(_) => out = None,
                }
            }
            if exited {
                exit = reap(&started);
                if exit.is_some() {
                    drain_until = Some(Instant::now() + Duration::from_millis(500));
                }
            }
        }
        Ok((exit.unwrap_or(-1), output.text()))
    }
}

/// A result for a probe that could not run.
fn failed_probe(message: String) -> ProbeResult {
    let now = crate::now_rfc3339();
    ProbeResult {
        start: now.clone(),
        end: now,
        exit_code: -1,
        output: message,
    }
}

/// The first [`MAX_OUTPUT`] bytes of a probe's stdout and stderr, `...`
/// after them when there was more (docker's `limitedBuffer`).
#[derive(Default)]
struct Output {
    kept: Vec<u8>,
    truncated: bool,
}

impl Output {
    fn push(&mut self, data: &[u8]) {
        let keep = MAX_OUTPUT.saturating_sub(self.kept.len()).min(data.len());
        self.kept.extend_from_slice(&data[..keep]);
        self.truncated |= keep < data.len();
    }

    fn text(self) -> String {
        let mut s = String::from_utf8_lossy(&self.kept).into_owned();
        if self.truncated {
            s.push_str("...");
        }
        s
    }
}

fn timespec(d: Duration) -> rustix::event::Timespec {
    rustix::event::Timespec {
        tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: d.subsec_nanos().into(),
    }
}

/// Blocks until the pidfd says its process exited, or `deadline`.
fn wait_pidfd_until(pidfd: &OwnedFd, deadline: Instant) {
    let timeout = timespec(deadline.saturating_duration_since(Instant::now()));
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    let _ = poll(&mut fds, Some(&timeout));
}

/// The probe's exit status once it exited.
fn reap(started: &barge_runner::Started) -> Option<i64> {
    let pid = Pid::from_raw(started.pid)?;
    match rustix::process::waitpid(Some(pid), WaitOptions::NOHANG) {
        Ok(Some((_, status))) => Some(crate::monitor::exit_code(status) as i64),
        _ => None,
    }
}

/// Kills a probe past its timeout: the command's process group (its
/// session inside the container: the command and what it started) and
/// the process waiting for it, then reaps that one.
fn kill_probe(started: &barge_runner::Started) {
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", started.pid)).unwrap_or_default();
    for pid in children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter_map(Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    }
    let _ = rustix::process::pidfd_send_signal(&started.pidfd, Signal::KILL);
    if let Some(pid) = Pid::from_raw(started.pid) {
        let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(v: serde_json::Value) -> Healthcheck {
        serde_json::from_value(v).unwrap()
    }

    fn result(code: i64) -> ProbeResult {
        ProbeResult {
            start: "s".into(),
            end: "e".into(),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn flags_become_the_users_check_with_dockers_messages() {
        let o = |f: fn(&mut HealthOptions)| {
            let mut o = HealthOptions::default();
            f(&mut o);
            o.validate().map_err(|e| e.to_string())
        };
        assert_eq!(o(|_| {}), Ok(None));
        assert_eq!(
            o(|o| {
                o.cmd = Some("true".into());
                o.interval = Some("200ms".into());
                o.retries = Some(2);
            })
            .map(|h| serde_json::to_value(h).unwrap()),
            Ok(serde_json::json!({"Test": ["CMD-SHELL", "true"], "Interval": 200_000_000, "Retries": 2}))
        );
        assert_eq!(
            o(|o| o.no_healthcheck = true).map(|h| serde_json::to_value(h).unwrap()),
            Ok(serde_json::json!({"Test": ["NONE"]}))
        );
        assert_eq!(
            o(|o| {
                o.no_healthcheck = true;
                o.retries = Some(1);
            }),
            Err("--no-healthcheck conflicts with --health-* options".into())
        );
        assert_eq!(
            o(|o| o.interval = Some("10us".into())),
            Err("Interval in Healthcheck cannot be less than 1ms".into())
        );
        assert_eq!(
            o(|o| o.timeout = Some("-1s".into())),
            Err("--health-timeout cannot be negative".into())
        );
        assert_eq!(
            o(|o| o.retries = Some(-1)),
            Err("--health-retries cannot be negative".into())
        );
        assert!(o(|o| o.start_period = Some("5".into()))
            .unwrap_err()
            .contains("--health-start-period"));
    }

    #[test]
    fn the_users_fields_override_the_images_one_by_one() {
        let image = hc(serde_json::json!({"Test": ["CMD", "/probe"], "Interval": 5, "Timeout": 6, "Retries": 7}));
        let user = hc(serde_json::json!({"Interval": 9}));
        let merged = merge(Some(&user), Some(&image)).unwrap();
        assert_eq!(
            serde_json::to_value(merged).unwrap(),
            serde_json::json!({"Test": ["CMD", "/probe"], "Interval": 9, "Timeout": 6, "Retries": 7})
        );
        assert_eq!(merge(None, Some(&image)), Some(image.clone()));
        let none = hc(serde_json::json!({"Test": ["NONE"]}));
        assert_eq!(Check::of(merge(Some(&none), Some(&image)).as_ref(), &[]), None);
        assert_eq!(merge(None, None), None);
    }

    #[test]
    fn checks_take_dockers_defaults_and_forms() {
        let shell_form = hc(serde_json::json!({"Test": ["CMD-SHELL", "exit 1"]}));
        let c = Check::of(Some(&shell_form), &[]).unwrap();
        assert_eq!(c.argv, ["/bin/sh", "-c", "exit 1"]);
        assert_eq!(
            (c.interval, c.timeout, c.start_period, c.retries),
            (Duration::from_secs(30), Duration::from_secs(30), Duration::ZERO, 3)
        );
        let shell = ["/bin/bash".to_string(), "-ec".into()];
        assert_eq!(
            Check::of(Some(&shell_form), &shell).unwrap().argv,
            ["/bin/bash", "-ec", "exit 1"],
            "the image's SHELL"
        );
        let exec_form = hc(serde_json::json!({"Test": ["CMD", "/bin/true", "-x"], "Retries": 1}));
        let c = Check::of(Some(&exec_form), &shell).unwrap();
        assert_eq!(
            (c.argv.as_slice(), c.retries),
            (&["/bin/true".to_string(), "-x".into()][..], 1)
        );
        for test in [
            serde_json::json!([]),
            serde_json::json!(["CMD"]),
            serde_json::json!(["X", "y"]),
        ] {
            assert_eq!(Check::of(Some(&hc(serde_json::json!({"Test": test}))), &[]), None);
        }
    }

    #[test]
    fn results_move_the_status_as_docker() {
        let mut h = Health::starting();
        h.record(result(1), true, 2);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 0));
        h.record(result(1), false, 2);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Starting, 1));
        h.record(result(0), false, 2);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Healthy, 0));
        // Once healthy, the start period no longer excuses a failure.
        h.record(result(1), true, 2);
        h.record(result(-1), true, 2);
        assert_eq!((h.status, h.failing_streak), (HealthStatus::Unhealthy, 2));
        for _ in 0..4 {
            h.record(result(3), false, 2);
        }
        assert_eq!(h.log.len(), MAX_LOG);
        assert_eq!(h.log[0].exit_code, -1);
    }

    #[test]
    fn output_is_kept_to_dockers_limit() {
        let mut o = Output::default();
        o.push(&[b'a'; 4000]);
        o.push(&[b'b'; 200]);
        let s = o.text();
        assert_eq!(s.len(), MAX_OUTPUT + 3);
        assert!(s.ends_with("bbb..."));
    }
}
