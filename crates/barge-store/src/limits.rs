//! Limits on what one layer may unpack to, against decompression bombs.
//!
//! Two numbers, both settable (barge.json `max-layer-size` and
//! `max-layer-ratio`): the bytes of the uncompressed tar stream, and, once
//! that stream is past [`RATIO_GRACE`], its ratio to the compressed bytes read
//! so far. Deflate cannot expand more than about 1032:1, so the default ratio
//! never refuses a real gzip layer; it stops zstd bombs, which reach 30000:1.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What one layer may unpack to. Zero turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerLimits {
    /// Bytes of the uncompressed tar stream.
    pub max_size: u64,
    /// Uncompressed bytes per compressed byte, checked past [`RATIO_GRACE`].
    pub max_ratio: u64,
}

impl Default for LayerLimits {
    fn default() -> Self {
        LayerLimits {
            max_size: 256 << 30,
            max_ratio: 2000,
        }
    }
}

/// Uncompressed bytes a layer may produce before its ratio is checked.
pub const RATIO_GRACE: u64 = 1 << 30;

/// Why a layer was stopped; carried inside an `io::Error` out of the readers.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LimitExceeded(pub String);

/// Counts the bytes read through it into a shared counter.
pub struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R> Counting<R> {
    pub fn new(inner: R) -> (Counting<R>, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        (
            Counting {
                inner,
                count: count.clone(),
            },
            count,
        )
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A decompressed stream held to [`LayerLimits`]; `compressed` counts what
/// the decompressor consumed (`None` for an uncompressed layer).
pub struct Limited<R> {
    inner: R,
    limits: LayerLimits,
    compressed: Option<Arc<AtomicU64>>,
    produced: u64,
}

impl<R> Limited<R> {
    pub fn new(inner: R, limits: LayerLimits, compressed: Option<Arc<AtomicU64>>) -> Limited<R> {
        Limited {
            inner,
            limits,
            compressed,
            produced: 0,
        }
    }

    fn check(&self) -> io::Result<()> {
        let l = self.limits;
        if l.max_size > 0 && self.produced > l.max_size {
            return Err(io::Error::other(LimitExceeded(format!(
                "the layer unpacks to more than {} bytes (max-layer-size)",
                l.max_size
            ))));
        }
        if let (Some(c), true) = (&self.compressed, l.max_ratio > 0 && self.produced > RATIO_GRACE) {
            let read = c.load(Ordering::Relaxed).max(1);
            if self.produced / read > l.max_ratio {
                return Err(io::Error::other(LimitExceeded(format!(
                    "the layer expands {}:1 ({} bytes from {read}), more than the {}:1 allowed (max-layer-ratio): a decompression bomb?",
                    self.produced / read,
                    self.produced,
                    l.max_ratio
                ))));
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.produced += n as u64;
        self.check()?;
        Ok(n)
    }
}

/// The compression a stream starts with, by its magic bytes.
pub fn sniff(head: &[u8]) -> barge_oci::media::Compression {
    use barge_oci::media::Compression;
    match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        _ => Compression::None,
    }
}

/// `reader` decompressed as `compression` says, held to `limits` (size,
/// and ratio to what was read): for archives that no digest vouches for
/// (a `docker save` file, an `ADD`ed tarball), so gzip's CRC is checked.
pub fn decompress_limited<'a>(
    reader: impl Read + Send + 'a,
    compression: barge_oci::media::Compression,
    limits: LayerLimits,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    use barge_oci::media::Compression;
    let (counted, read) = Counting::new(reader);
    let decoded: Box<dyn Read + Send + 'a> = match compression {
        Compression::None => Box::new(counted),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(counted)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(counted)?),
    };
    let read = (compression != Compression::None).then_some(read);
    Ok(Box::new(Limited::new(decoded, limits, read)))
}

/// The limit message if `e` came from a [`Limited`] reader.
pub fn exceeded(e: &io::Error) -> Option<String> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<LimitExceeded>())
        .map(|l| l.0.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_and_ratio_stop_the_stream() {
        let zeros = io::repeat(0).take(10_000);
        let mut r = Limited::new(
            zeros,
            LayerLimits {
                max_size: 4096,
                max_ratio: 0,
            },
            None,
        );
        let e = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert!(exceeded(&e).unwrap().contains("more than 4096 bytes"), "{e}");

        let (counted, n) = Counting::new(io::repeat(0).take(RATIO_GRACE / 4000 + 1));
        let mut r = Limited::new(
            counted.chain(io::repeat(0).take(2 * RATIO_GRACE)),
            LayerLimits {
                max_size: 0,
                max_ratio: 2000,
            },
            Some(n),
        );
        let e = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert!(exceeded(&e).unwrap().contains("decompression bomb"), "{e}");

        let mut fine = Limited::new(&b"abc"[..], LayerLimits::default(), None);
        assert_eq!(io::copy(&mut fine, &mut io::sink()).unwrap(), 3);
    }
}
