//! Container logs in docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`.
//!
//! With `--log-opt max-size=…` the log rotates as docker's json-file does:
//! before an entry is written to a file of `max-size` bytes or more,
//! `log.json` becomes `log.json.1` (`.1` becomes `.2`, …, the oldest of
//! `max-file` files is removed) and a new `log.json` is started; with one
//! file it is replaced. Readers stream the files oldest first, and `--tail`
//! scans backwards from the end, so no read holds more than an entry.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// A `--log-opt` docker's json-file driver would refuse, with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogOptError {
    #[error("unknown log opt '{0}' for json-file log driver")]
    Unknown(String),
    #[error("log opt '{0}' of the json-file log driver is not supported by barge (only max-size and max-file)")]
    Unsupported(String),
    #[error(transparent)]
    Size(#[from] crate::limits::LimitError),
    #[error("max-size must be a positive number")]
    SizeNotPositive,
    #[error("strconv.Atoi: parsing {0:?}: invalid syntax")]
    FileCount(String),
    #[error("max-file cannot be less than 1")]
    FileCountTooSmall,
    #[error("logger: no log driver named '{0}' is registered (barge has json-file and none)")]
    UnknownDriver(String),
    #[error("unknown log opt '{0}' for none log driver")]
    NoneTakesNoOpts(String),
}

/// Where a container's output is kept: docker's `--log-driver`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogDriver {
    /// docker's default: one JSON object a line, rotated by `--log-opt`.
    #[default]
    #[serde(rename = "json-file")]
    JsonFile,
    /// Nothing is kept; `logs` has nothing to read.
    #[serde(rename = "none")]
    None,
}

impl LogDriver {
    /// The driver a `--log-driver` value names (json-file when not given).
    pub fn parse(name: Option<&str>) -> Result<LogDriver, LogOptError> {
        match name {
            None | Some("json-file") => Ok(LogDriver::JsonFile),
            Some("none") => Ok(LogDriver::None),
            Some(other) => Err(LogOptError::UnknownDriver(other.to_string())),
        }
    }

    /// The name docker shows in `inspect`'s `HostConfig.LogConfig.Type`.
    pub fn name(self) -> &'static str {
        match self {
            LogDriver::JsonFile => "json-file",
            LogDriver::None => "none",
        }
    }

    pub fn is_json_file(&self) -> bool {
        *self == LogDriver::JsonFile
    }
}

/// How the log rotates: docker's json-file `max-size` and `max-file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Bytes a file may reach before the next entry starts a new one; `None` never rotates.
    pub max_size: Option<u64>,
    /// Files kept, the live one included (1 or more).
    pub max_file: u32,
}

impl Default for Rotation {
    fn default() -> Rotation {
        Rotation {
            max_size: None,
            max_file: 1,
        }
    }
}

impl Rotation {
    /// Reads the options as the json-file driver does (a `max-file` without `max-size` does nothing).
    pub fn from_opts(opts: &BTreeMap<String, String>) -> Result<Rotation, LogOptError> {
        let mut r = Rotation::default();
        for (k, v) in opts {
            match k.as_str() {
                "max-size" => {
                    let n = crate::limits::from_human_size(v)?;
                    if n <= 0 {
                        return Err(LogOptError::SizeNotPositive);
                    }
                    r.max_size = Some(n as u64);
                }
                "max-file" => {
                    let n: i64 = v.parse().map_err(|_| LogOptError::FileCount(v.clone()))?;
                    if n < 1 {
                        return Err(LogOptError::FileCountTooSmall);
                    }
                    r.max_file = u32::try_from(n).map_err(|_| LogOptError::FileCount(v.clone()))?;
                }
                "compress" | "labels" | "labels-regex" | "env" | "env-regex" | "tag" => {
                    return Err(LogOptError::Unsupported(k.clone()))
                }
                _ => return Err(LogOptError::Unknown(k.clone())),
            }
        }
        Ok(r)
    }
}

/// `--log-opt KEY=VALUE` flags as a map (a bare `KEY` has the empty value,
/// as docker's CLI has it), checked as the driver checks them: the none
/// driver takes no options.
pub fn parse_opts(driver: LogDriver, flags: &[String]) -> Result<BTreeMap<String, String>, LogOptError> {
    let opts: BTreeMap<String, String> = flags
        .iter()
        .map(|f| {
            let (k, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    if let (LogDriver::None, Some(key)) = (driver, opts.keys().next()) {
        return Err(LogOptError::NoneTakesNoOpts(key.clone()));
    }
    Rotation::from_opts(&opts)?;
    Ok(opts)
}

/// The name of rotated file `n` (`log.json.1` is the newest).
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The live log file, rotated as its options say.
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
}

impl LogFile {
    /// Opens `path` for appending (a restarted container continues its log).
    pub fn open(path: &Path, rotation: Rotation) -> std::io::Result<LogFile> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
        })
    }

    /// Writes one whole entry, rotating first when the file is full.
    fn write_entry(&mut self, bytes: &[u8]) {
        if self.rotation.max_size.is_some_and(|max| self.size >= max) {
            // As docker: a failed rotation loses log lines, not the container; keep writing where we can.
            let _ = self.rotate();
        }
        // One write per entry keeps entries whole; a full disk loses log lines, not the container.
        if self.file.write_all(bytes).is_ok() {
            self.size += bytes.len() as u64;
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let gone_ok = |r: std::io::Result<()>| match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        let n = self.rotation.max_file;
        if n >= 2 {
            gone_ok(std::fs::remove_file(rotated(&self.path, n - 1)))?;
            for i in (2..n).rev() {
                gone_ok(std::fs::rename(rotated(&self.path, i - 1), rotated(&self.path, i)))?;
            }
            gone_ok(std::fs::rename(&self.path, rotated(&self.path, 1)))?;
        } else {
            // A reader still on the old file finishes it; new entries go to a new one.
            gone_ok(std::fs::remove_file(&self.path))?;
        }
        self.file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Turns a byte stream into log entries, a line at a time.
pub struct LineWriter {
    stream: &'static str,
    partial: Vec<u8>,
}

/// Lines longer than this are split, as docker splits at 16 KiB.
const MAX_LINE: usize = 16 * 1024;

impl LineWriter {
    pub fn new(stream: &'static str) -> LineWriter {
        LineWriter {
            stream,
            partial: Vec::new(),
        }
    }

    /// Appends `data`, writing every completed line to `log`.
    pub fn push(&mut self, data: &[u8], log: &mut LogFile) {
        self.partial.extend_from_slice(data);
        while let Some(pos) = self
            .partial
            .iter()
            .position(|b| *b == b'\n')
            .or((self.partial.len() >= MAX_LINE).then_some(MAX_LINE - 1))
        {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            self.write(&line, log);
        }
    }

    /// Writes what is left (a last line without newline).
    pub fn finish(&mut self, log: &mut LogFile) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.write(&rest, log);
        }
    }

    fn write(&self, line: &[u8], log: &mut LogFile) {
        let entry = Entry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: self.stream.to_string(),
            time: crate::now_rfc3339(),
        };
        if let Ok(mut bytes) = serde_json::to_vec(&entry) {
            bytes.push(b'\n');
            log.write_entry(&bytes);
        }
    }
}

/// A line of the log longer than this is not an entry barge wrote (at most
/// 16 KiB of text, escaped); it is skipped rather than held in memory.
const MAX_ENTRY: usize = 1 << 20;

/// Where `tail` scans backwards, a block at a time.
const BLOCK: usize = 64 * 1024;

/// Where the last `n` whole lines of `f` start: the offset and how many
/// lines there are from it (fewer than `n` when the file has fewer). Bytes
/// after the last newline (an entry being written) are not a line.
fn last_lines(f: &File, n: usize) -> std::io::Result<(u64, usize)> {
    let mut pos = f.metadata()?.len();
    let mut buf = vec![0u8; BLOCK];
    let mut seen_end = false;
    let mut count = 0;
    while pos > 0 {
        let take = (pos as usize).min(BLOCK);
        pos -= take as u64;
        f.read_exact_at(&mut buf[..take], pos)?;
        for i in (0..take).rev() {
            if buf[i] != b'\n' {
                continue;
            }
            let after = pos + i as u64 + 1;
            if !seen_end {
                // The end of the last whole line.
                seen_end = true;
                if n == 0 {
                    return Ok((after, 0));
                }
                continue;
            }
            count += 1;
            if count == n {
                return Ok((after, n));
            }
        }
    }
    // The first line starts the file.
    Ok((0, if seen_end { count + 1 } else { 0 }))
}

/// Reads a container's log, rotated files included, oldest entry first,
/// and follows it across rotations.
pub struct Reader {
    path: PathBuf,
    /// Files still to read, oldest first, each at its read position; the last one is (or was) `log.json`.
    files: VecDeque<BufReader<File>>,
    /// A line not yet ended (an entry being written).
    partial: Vec<u8>,
    /// In a line too long to be an entry: skipped to its end.
    skipping: bool,
}

impl Reader {
    /// Opens the log at `path`: every entry, or with `tail` only the last `tail`.
    pub fn open(path: &Path, tail: Option<usize>) -> std::io::Result<Reader> {
        let open = |p: &Path| match File::open(p) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        };
        // Newest first: log.json, log.json.1, log.json.2, …
        let mut newest_first: Vec<File> = open(path)?.into_iter().collect();
        for i in 1.. {
            match open(&rotated(path, i))? {
                Some(f) => newest_first.push(f),
                None => break,
            }
        }
        let mut files = VecDeque::new();
        match tail {
            None => files.extend(newest_first.into_iter().rev().map(BufReader::new)),
            Some(n) => {
                let mut need = n;
                for mut f in newest_first {
                    let (offset, got) = last_lines(&f, need)?;
                    f.seek(SeekFrom::Start(offset))?;
                    files.push_front(BufReader::new(f));
                    need -= got;
                    if need == 0 {
                        break;
                    }
                }
            }
        }
        Ok(Reader {
            path: path.to_path_buf(),
            files,
            partial: Vec::new(),
            skipping: false,
        })
    }

    /// Hands every whole entry written so far to `f`, in order, and moves
    /// on to a new `log.json` when the one being read was rotated away.
    /// Stops early when `f` breaks.
    pub fn read(&mut self, f: &mut dyn FnMut(Entry) -> ControlFlow<()>) -> std::io::Result<ControlFlow<()>> {
        loop {
            while let Some(front) = self.files.front_mut() {
                if read_lines(front, &mut self.partial, &mut self.skipping, f)?.is_break() {
                    return Ok(ControlFlow::Break(()));
                }
                if self.files.len() == 1 {
                    break;
                }
                // A rotated file is complete: what it ends with is no part of the next one.
                self.files.pop_front();
                self.partial.clear();
                self.skipping = false;
            }
            let now = match File::open(&self.path) {
                Ok(now) => now,
                // Between the removal and the creation of a new log.json: it comes at the next read.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ControlFlow::Continue(())),
                Err(e) => return Err(e),
            };
            let rotated_away = match self.files.back() {
                Some(cur) => {
                    let (a, b) = (cur.get_ref().metadata()?, now.metadata()?);
                    (a.dev(), a.ino()) != (b.dev(), b.ino())
                }
                None => true,
            };
            if !rotated_away {
                return Ok(ControlFlow::Continue(()));
            }
            self.files.push_back(BufReader::new(now));
        }
    }
}

/// Reads the whole lines of `r` from where it is, keeping a line not yet ended in `partial`.
fn read_lines(
    r: &mut BufReader<File>,
    partial: &mut Vec<u8>,
    skipping: &mut bool,
    f: &mut dyn FnMut(Entry) -> ControlFlow<()>,
) -> std::io::Result<ControlFlow<()>> {
    use std::io::Read;
    loop {
        let room = (MAX_ENTRY + 1).saturating_sub(partial.len()) as u64;
        let n = r.by_ref().take(room).read_until(b'\n', partial)?;
        if n == 0 {
            return Ok(ControlFlow::Continue(()));
        }
        if partial.last() == Some(&b'\n') {
            if !std::mem::take(skipping) {
                if let Ok(entry) = serde_json::from_slice::<Entry>(partial) {
                    if f(entry).is_break() {
                        partial.clear();
                        return Ok(ControlFlow::Break(()));
                    }
                }
            }
            partial.clear();
        } else if partial.len() > MAX_ENTRY {
            partial.clear();
            *skipping = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads what `r` has now into `out`.
    fn drain(r: &mut Reader, out: &mut Vec<String>) {
        let flow = r
            .read(&mut |e| {
                out.push(e.log);
                ControlFlow::Continue(())
            })
            .unwrap();
        assert!(flow.is_continue());
    }

    fn all(p: &Path, tail: Option<usize>) -> Vec<String> {
        let mut out = Vec::new();
        drain(&mut Reader::open(p, tail).unwrap(), &mut out);
        out
    }

    #[test]
    fn lines_split_and_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log.json");
        let mut f = LogFile::open(&p, Rotation::default()).unwrap();
        let mut w = LineWriter::new("stdout");
        w.push(b"hello\nwor", &mut f);
        w.push(b"ld\n", &mut f);
        w.push(b"tail", &mut f);
        w.finish(&mut f);
        assert_eq!(all(&p, None), ["hello\n", "world\n", "tail"]);
        assert_eq!(all(&p, Some(2)), ["world\n", "tail"]);
        assert_eq!(all(&p, Some(9)), ["hello\n", "world\n", "tail"]);
        assert!(all(&p, Some(0)).is_empty());
    }

    #[test]
    fn a_partial_entry_waits_for_its_end() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log.json");
        std::fs::write(
            &p,
            "{\"log\":\"a\\n\",\"stream\":\"stdout\",\"time\":\"t\"}\n{\"log\":\"b",
        )
        .unwrap();
        let mut r = Reader::open(&p, Some(5)).unwrap();
        let mut got = Vec::new();
        drain(&mut r, &mut got);
        assert_eq!(got, ["a\n"]);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"\\n\",\"stream\":\"stderr\",\"time\":\"t\"}\n").unwrap();
        drain(&mut r, &mut got);
        assert_eq!(got, ["a\n", "b\n"]);
    }

    #[test]
    fn rotation_keeps_max_file_files_and_reads_them_in_order() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log.json");
        let rotation = Rotation {
            max_size: Some(200),
            max_file: 3,
        };
        let mut f = LogFile::open(&p, rotation).unwrap();
        let mut w = LineWriter::new("stdout");
        let mut follower = Reader::open(&p, Some(0)).unwrap();
        let mut followed = Vec::new();
        for i in 0..40 {
            w.push(format!("line {i}\n").as_bytes(), &mut f);
            if i % 3 == 0 {
                drain(&mut follower, &mut followed);
            }
        }
        drain(&mut follower, &mut followed);
        assert!(rotated(&p, 2).exists());
        assert!(!rotated(&p, 3).exists());
        let kept = all(&p, None);
        let n = kept.len();
        assert!(n < 40, "{kept:?}");
        let expect: Vec<String> = (40 - n..40).map(|i| format!("line {i}\n")).collect();
        assert_eq!(kept, expect);
        // A tail longer than log.json reaches into the rotated files.
        assert_eq!(all(&p, Some(n - 1)), expect[1..]);
        // A follower sees every entry once, across rotations.
        let everything: Vec<String> = (0..40).map(|i| format!("line {i}\n")).collect();
        assert_eq!(followed, everything);
    }

    #[test]
    fn options_are_checked_as_docker_does() {
        let p = |v: &[&str]| {
            parse_opts(
                LogDriver::JsonFile,
                &v.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        };
        let r = Rotation::from_opts(&p(&["max-size=10k", "max-file=3"]).unwrap()).unwrap();
        assert_eq!(
            r,
            Rotation {
                max_size: Some(10_000),
                max_file: 3
            }
        );
        assert_eq!(
            p(&["max-size=0"]).unwrap_err().to_string(),
            "max-size must be a positive number"
        );
        assert_eq!(p(&["max-size=-1"]).unwrap_err().to_string(), "invalid size: '-1'");
        assert_eq!(
            p(&["max-file=0"]).unwrap_err().to_string(),
            "max-file cannot be less than 1"
        );
        assert_eq!(
            p(&["max-file=x"]).unwrap_err().to_string(),
            "strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            p(&["frob=1"]).unwrap_err().to_string(),
            "unknown log opt 'frob' for json-file log driver"
        );
    }
}
