//! Container logs in docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
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
    pub fn push(&mut self, data: &[u8], log: &mut File) {
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
    pub fn finish(&mut self, log: &mut File) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.write(&rest, log);
        }
    }

    fn write(&self, line: &[u8], log: &mut File) {
        let entry = Entry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: self.stream.to_string(),
            time: crate::now_rfc3339(),
        };
        if let Ok(mut bytes) = serde_json::to_vec(&entry) {
            bytes.push(b'\n');
            // One write per entry keeps entries whole; a full disk loses log lines, not the container.
            let _ = log.write_all(&bytes);
        }
    }
}

/// Reads the entries of a log file from byte `offset`; returns them and the offset after the last whole line.
pub fn read_from(path: &std::path::Path, offset: u64) -> std::io::Result<(Vec<Entry>, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(e),
    };
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    let complete = buf.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
    let entries = buf[..complete]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    Ok((entries, offset + complete as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_and_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log.json");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&p).unwrap();
        let mut w = LineWriter::new("stdout");
        w.push(b"hello\nwor", &mut f);
        w.push(b"ld\n", &mut f);
        w.push(b"tail", &mut f);
        w.finish(&mut f);
        let (entries, end) = read_from(&p, 0).unwrap();
        assert_eq!(
            entries.iter().map(|e| e.log.as_str()).collect::<Vec<_>>(),
            ["hello\n", "world\n", "tail"]
        );
        assert!(entries.iter().all(|e| e.stream == "stdout"));
        assert_eq!(end, std::fs::metadata(&p).unwrap().len());
        let (none, _) = read_from(&p, end).unwrap();
        assert!(none.is_empty());
    }
}
