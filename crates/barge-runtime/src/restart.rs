//! docker's restart policies (`--restart no|on-failure[:N]|always|unless-stopped`),
//! kept without a daemon: the container's monitor process starts it again
//! after it exits, with docker's backoff, until the policy says no or a
//! user stops it (`stop`, `kill`, `rm -f`). Nothing restarts a container
//! whose monitor is gone (after a reboot, say): that is the init system's
//! job, for which `barge generate systemd` writes a unit.

use crate::RuntimeError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The policy's name, as docker spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    #[default]
    No,
    OnFailure,
    Always,
    UnlessStopped,
}

/// A container's restart policy (`HostConfig.RestartPolicy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    pub name: Policy,
    /// `on-failure:N`: at most N restarts (0: no limit).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_retries: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl RestartPolicy {
    /// `--restart` as docker reads it, with docker's messages.
    pub fn parse(text: &str) -> Result<RestartPolicy, RuntimeError> {
        let bad = |m: String| RuntimeError::BadOption(m);
        let mut parts = text.split(':');
        let name = parts.next().unwrap_or_default();
        let count = parts.next();
        if parts.next().is_some() {
            return Err(bad("invalid restart policy format".into()));
        }
        let max_retries = match count {
            None => 0,
            Some(n) => match n.parse::<i64>() {
                Err(_) => return Err(bad("maximum retry count must be an integer".into())),
                Ok(n) if n < 0 => return Err(bad("maximum retry count cannot be negative".into())),
                Ok(n) => u32::try_from(n).map_err(|_| bad("maximum retry count is too large".into()))?,
            },
        };
        let name = match name {
            "" | "no" => Policy::No,
            "on-failure" => Policy::OnFailure,
            "always" => Policy::Always,
            "unless-stopped" => Policy::UnlessStopped,
            other => return Err(bad(format!("invalid restart policy '{other}'"))),
        };
        if count.is_some() && name != Policy::OnFailure {
            return Err(bad(format!(
                "maximum retry count cannot be used with restart policy '{}'",
                text.split(':').next().unwrap_or_default()
            )));
        }
        Ok(RestartPolicy { name, max_retries })
    }

    pub fn is_no(&self) -> bool {
        self.name == Policy::No
    }

    /// docker's name of the policy (`HostConfig.RestartPolicy.Name`).
    pub fn name(&self) -> &'static str {
        match self.name {
            Policy::No => "no",
            Policy::OnFailure => "on-failure",
            Policy::Always => "always",
            Policy::UnlessStopped => "unless-stopped",
        }
    }

    /// Whether a container that exited with `code`, already restarted
    /// `count` times, goes again. A user's stop is checked by the caller.
    pub fn wants_restart(&self, code: i32, count: u32) -> bool {
        match self.name {
            Policy::No => false,
            Policy::OnFailure => code != 0 && (self.max_retries == 0 || count < self.max_retries),
            Policy::Always | Policy::UnlessStopped => true,
        }
    }
}

/// docker's delay before each restart: 100 ms, doubled each time up to a
/// minute, back to 100 ms after a run of at least 10 seconds.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

const FIRST: Duration = Duration::from_millis(100);
const LONGEST: Duration = Duration::from_secs(60);
const RAN_WELL: Duration = Duration::from_secs(10);

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST }
    }
}

impl Backoff {
    /// The delay before the restart of a run that lasted `ran`.
    pub fn delay(&mut self, ran: Duration) -> Duration {
        if ran >= RAN_WELL {
            self.next = FIRST;
        }
        let d = self.next;
        self.next = (self.next * 2).min(LONGEST);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_docker() {
        let p = |s: &str| RestartPolicy::parse(s).map_err(|e| e.to_string());
        assert_eq!(p("no").map(|r| r.is_no()), Ok(true));
        assert_eq!(p("").map(|r| r.is_no()), Ok(true));
        assert_eq!(
            p("on-failure:3"),
            Ok(RestartPolicy {
                name: Policy::OnFailure,
                max_retries: 3
            })
        );
        assert_eq!(p("unless-stopped").map(|r| r.name()), Ok("unless-stopped"));
        for (bad, msg) in [
            ("sometimes", "invalid restart policy 'sometimes'"),
            (
                "always:3",
                "maximum retry count cannot be used with restart policy 'always'",
            ),
            ("on-failure:x", "maximum retry count must be an integer"),
            ("on-failure:-1", "maximum retry count cannot be negative"),
            ("on-failure:1:2", "invalid restart policy format"),
        ] {
            assert!(p(bad).is_err_and(|e| e.contains(msg)), "{bad}: {:?}", p(bad));
        }
    }

    #[test]
    fn on_failure_counts_and_ignores_success() {
        let p = RestartPolicy::parse("on-failure:2").unwrap();
        assert!(p.wants_restart(1, 0) && p.wants_restart(1, 1));
        assert!(!p.wants_restart(1, 2) && !p.wants_restart(0, 0));
        let always = RestartPolicy::parse("always").unwrap();
        assert!(always.wants_restart(0, 1000));
        assert!(!RestartPolicy::default().wants_restart(1, 0));
    }

    #[test]
    fn backoff_doubles_to_a_minute_and_resets_after_a_good_run() {
        let mut b = Backoff::default();
        let short = Duration::from_secs(1);
        let delays: Vec<u128> = (0..12).map(|_| b.delay(short).as_millis()).collect();
        assert_eq!(&delays[..4], &[100, 200, 400, 800]);
        assert_eq!(*delays.last().unwrap(), 60_000);
        assert_eq!(b.delay(Duration::from_secs(10)).as_millis(), 100);
    }
}
