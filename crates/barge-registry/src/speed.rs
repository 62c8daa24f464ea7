//! The minimum transfer speed: `low-speed-limit` bytes per second over
//! `low-speed-time` seconds, as curl's options of those names.
//!
//! `read-timeout` bounds one silent read; a registry that sends a byte
//! every few seconds never trips it. [`Pace`] adds up the time barge spends
//! waiting for a body (reconnections included) and the bytes that came;
//! each time a window of `low-speed-time` is complete, fewer than
//! `low-speed-limit × low-speed-time` bytes in it end the transfer. Time
//! the caller spends elsewhere (unpacking, writing) is not counted, so a
//! slow disk is never mistaken for a slow registry.

use crate::client::ClientOptions;
use std::io::{self, Read};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub(crate) struct Pace {
    limit: u64,
    window: Duration,
    waited: Duration,
    bytes: u64,
}

/// Why a transfer was given up: the speed over the last window.
#[derive(Debug, Clone)]
pub(crate) struct TooSlow {
    pub(crate) bytes: u64,
    pub(crate) window: Duration,
    pub(crate) limit: u64,
}

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes in {} s, below the minimum of {} bytes/s (low-speed-limit and low-speed-time in barge.json)",
            self.bytes,
            self.window.as_secs(),
            self.limit
        )
    }
}

impl Pace {
    pub(crate) fn new(opts: &ClientOptions) -> Pace {
        Pace {
            limit: opts.low_speed_limit,
            window: opts.low_speed_time,
            waited: Duration::ZERO,
            bytes: 0,
        }
    }

    /// Records `n` bytes that took `took` to arrive.
    pub(crate) fn record(&mut self, n: usize, took: Duration) -> Result<(), TooSlow> {
        if self.limit == 0 || self.window.is_zero() {
            return Ok(());
        }
        self.waited += took;
        self.bytes += n as u64;
        if self.waited < self.window {
            return Ok(());
        }
        let wanted = (self.limit as f64 * self.waited.as_secs_f64()) as u64;
        if self.bytes < wanted {
            return Err(TooSlow {
                bytes: self.bytes,
                window: self.waited,
                limit: self.limit,
            });
        }
        self.waited = Duration::ZERO;
        self.bytes = 0;
        Ok(())
    }

    /// Times one read through [`Pace::record`]; a read that leaves the
    /// window below the limit fails with `TimedOut` carrying [`TooSlow`].
    pub(crate) fn read(&mut self, read: impl FnOnce() -> io::Result<usize>) -> io::Result<usize> {
        let start = Instant::now();
        let result = read();
        let n = *result.as_ref().unwrap_or(&0);
        self.record(n, start.elapsed())
            .map_err(|slow| io::Error::new(io::ErrorKind::TimedOut, SlowError(slow)))?;
        result
    }
}

/// [`TooSlow`] as the payload of an I/O error.
#[derive(Debug)]
pub(crate) struct SlowError(pub(crate) TooSlow);

impl std::fmt::Display for SlowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SlowError {}

/// The [`TooSlow`] an I/O error carries, if that is what it is.
pub(crate) fn too_slow(e: &io::Error) -> Option<TooSlow> {
    e.get_ref()?.downcast_ref::<SlowError>().map(|s| s.0.clone())
}

/// A reader paced by the client's minimum speed.
pub(crate) struct Paced<R> {
    pub(crate) inner: R,
    pub(crate) pace: Pace,
}

impl<R: Read> Read for Paced<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let inner = &mut self.inner;
        self.pace.read(|| inner.read(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(limit: u64, secs: u64) -> Pace {
        Pace::new(&ClientOptions {
            low_speed_limit: limit,
            low_speed_time: Duration::from_secs(secs),
            ..ClientOptions::default()
        })
    }

    #[test]
    fn a_trickle_fails_once_a_window_is_complete() {
        let mut p = pace(100, 10);
        for _ in 0..9 {
            assert!(p.record(1, Duration::from_secs(1)).is_ok());
        }
        let slow = p.record(1, Duration::from_secs(1)).unwrap_err();
        assert_eq!(slow.bytes, 10);
    }

    #[test]
    fn a_fast_window_starts_the_count_again_and_zero_disables() {
        let mut p = pace(100, 10);
        assert!(p.record(5000, Duration::from_secs(10)).is_ok());
        assert!(p.record(900, Duration::from_secs(9)).is_ok());
        assert!(p.record(200, Duration::from_secs(1)).is_ok());
        let mut off = pace(0, 10);
        assert!(off.record(0, Duration::from_secs(1000)).is_ok());
    }
}
