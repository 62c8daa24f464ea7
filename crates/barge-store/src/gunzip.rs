//! gzip decoding for layers: every member of a multi-member stream, header
//! fields parsed and skipped, the length in each trailer checked. The CRC-32
//! is not computed: a layer's content is verified by its SHA-256 digests
//! (the blob's and the diff ID), so it would only cost time (6% of a pull).

use flate2::bufread::DeflateDecoder;
use std::io::{self, BufRead, Read};

enum State<R> {
    /// Between members: a header, or the end, comes next.
    Header(R),
    Body(DeflateDecoder<R>, u32),
    Done,
}

/// A gzip stream decoder (see the module comment: no CRC-32 check).
pub struct Gunzip<R: BufRead> {
    state: State<R>,
}

impl<R: BufRead> Gunzip<R> {
    pub fn new(inner: R) -> Gunzip<R> {
        Gunzip {
            state: State::Header(inner),
        }
    }
}

fn bad(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("gzip: {why}"))
}

fn byte(r: &mut impl BufRead) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b).map_err(|_| bad("truncated header"))?;
    Ok(b[0])
}

fn skip_zero_terminated(r: &mut impl BufRead) -> io::Result<()> {
    // Names and comments: 64 KiB at most.
    for _ in 0..(1 << 16) {
        if byte(r)? == 0 {
            return Ok(());
        }
    }
    Err(bad("header field too long"))
}

/// Reads a member header; `false` at the clean end of the stream.
fn header(r: &mut impl BufRead) -> io::Result<bool> {
    if r.fill_buf()?.is_empty() {
        return Ok(false);
    }
    let mut fixed = [0u8; 10];
    r.read_exact(&mut fixed).map_err(|_| bad("truncated header"))?;
    if fixed[0] != 0x1f || fixed[1] != 0x8b {
        return Err(bad("not a gzip member"));
    }
    if fixed[2] != 8 {
        return Err(bad("unknown compression method"));
    }
    let flags = fixed[3];
    if flags & 0xe0 != 0 {
        return Err(bad("reserved header flags set"));
    }
    if flags & 0x04 != 0 {
        let len = u16::from_le_bytes([byte(r)?, byte(r)?]);
        let copied = io::copy(&mut r.take(len as u64), &mut io::sink())?;
        if copied != len as u64 {
            return Err(bad("truncated extra field"));
        }
    }
    if flags & 0x08 != 0 {
        skip_zero_terminated(r)?;
    }
    if flags & 0x10 != 0 {
        skip_zero_terminated(r)?;
    }
    if flags & 0x02 != 0 {
        byte(r)?;
        byte(r)?;
    }
    Ok(true)
}

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return Ok(0),
                State::Header(mut r) => {
                    if !header(&mut r)? {
                        return Ok(0);
                    }
                    self.state = State::Body(DeflateDecoder::new(r), 0);
                }
                State::Body(mut d, len) => {
                    let n = d.read(buf)?;
                    if n > 0 {
                        self.state = State::Body(d, len.wrapping_add(n as u32));
                        return Ok(n);
                    }
                    // End of this member: CRC-32 (not checked, see above), then ISIZE.
                    let mut r = d.into_inner();
                    let mut trailer = [0u8; 8];
                    r.read_exact(&mut trailer).map_err(|_| bad("truncated trailer"))?;
                    let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
                    if isize != len {
                        return Err(bad("the length in the trailer does not match the data"));
                    }
                    self.state = State::Header(r);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8], name: Option<&str>) -> Vec<u8> {
        let mut b = flate2::GzBuilder::new();
        if let Some(n) = name {
            b = b.filename(n).comment("a comment").extra(vec![1, 2, 3]);
        }
        let mut e = b.write(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn gunzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Gunzip::new(io::BufReader::new(bytes)).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn members_and_header_fields() {
        let a: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
        let mut both = gz(&a, Some("layer.tar"));
        both.extend(gz(b"second member", None));
        let mut want = a.clone();
        want.extend_from_slice(b"second member");
        assert_eq!(gunzip(&both).unwrap(), want);
        assert_eq!(gunzip(&gz(b"", None)).unwrap(), b"");
        assert_eq!(gunzip(b"").unwrap(), b"");
    }

    #[test]
    fn damage_is_an_error() {
        let good = gz(b"hello, layer", None);
        let mut wrong_len = good.clone();
        let n = wrong_len.len();
        wrong_len[n - 4] ^= 1;
        assert!(gunzip(&wrong_len).is_err());
        assert!(gunzip(&good[..good.len() - 3]).is_err(), "truncated trailer");
        assert!(gunzip(&good[..5]).is_err(), "truncated header");
        let mut garbage = good.clone();
        garbage.extend_from_slice(b"trailing");
        assert!(gunzip(&garbage).is_err());
        assert!(gunzip(b"not gzip at all").is_err());
    }
}
