//! Reading a stream on another thread, a few chunks ahead of its consumer,
//! so that producing the bytes (network, decompression) and consuming them
//! (hashing, writing files) overlap on two cores.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::Scope;

/// Reads `reader` on a thread of `scope` in chunks of `chunk` bytes, at most
/// `depth` chunks ahead. An error is handed over in order, and ends the
/// stream; dropping the returned reader stops the thread at its next chunk.
pub fn read_ahead<'scope, R: Read + Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    reader: R,
    chunk: usize,
    depth: usize,
) -> ChunkReader {
    read_ahead_with(scope, move || Ok(reader), chunk, depth)
}

/// [`read_ahead`] of the reader that `make` returns on the thread, for a
/// reader that cannot move between threads (ISA-L's decoder holds raw
/// pointers); an error from `make` is the stream's first and last item.
pub fn read_ahead_with<'scope, R, F>(
    scope: &'scope Scope<'scope, '_>,
    make: F,
    chunk: usize,
    depth: usize,
) -> ChunkReader
where
    R: Read,
    F: FnOnce() -> io::Result<R> + Send + 'scope,
{
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(depth);
    // Read chunks come back to be filled again: no allocation per chunk.
    let (back_tx, back_rx) = sync_channel::<Vec<u8>>(depth + 2);
    scope.spawn(move || {
        let mut reader = match make() {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        fill_chunks(&mut reader, &tx, &back_rx, chunk)
    });
    ChunkReader {
        rx,
        back: back_tx,
        current: Vec::new(),
        pos: 0,
    }
}

/// The reading thread's loop: whole chunks into `tx` until the end, an
/// error, or the consumer hangs up.
fn fill_chunks(
    reader: &mut impl Read,
    tx: &SyncSender<io::Result<Vec<u8>>>,
    back_rx: &Receiver<Vec<u8>>,
    chunk: usize,
) {
    loop {
        let mut buf = back_rx.try_recv().unwrap_or_default();
        buf.resize(chunk, 0);
        let mut filled = 0;
        // Whole chunks: fewer hand-overs.
        while filled < chunk {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if filled > 0 {
                        buf.truncate(filled);
                        let _ = tx.send(Ok(buf));
                    }
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        if filled == 0 {
            return;
        }
        buf.truncate(filled);
        if tx.send(Ok(buf)).is_err() {
            return;
        }
    }
}

/// The consuming end of [`read_ahead`].
pub struct ChunkReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    back: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    let done = std::mem::replace(&mut self.current, chunk);
                    let _ = self.back.try_send(done);
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The producer finished: the end of the stream.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_errors_arrive_in_order() {
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        std::thread::scope(|s| {
            let mut r = read_ahead(s, &data[..], 4096, 2);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, data);
        });
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("cut"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(7);
                self.0 -= n;
                Ok(n)
            }
        }
        std::thread::scope(|s| {
            let mut r = read_ahead(s, Failing(10_000), 4096, 2);
            let mut out = Vec::new();
            let e = r.read_to_end(&mut out).unwrap_err();
            assert_eq!(e.to_string(), "cut");
            assert_eq!(out.len(), 10_000, "what came before the error is delivered");
        });
    }
}
