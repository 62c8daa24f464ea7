//! Tar streams with raw, hostile names and headers, which the tar crate's
//! safe setters refuse to write: `../` and absolute names, links anywhere,
//! out-of-range device numbers, lying PAX records.

/// A tar stream built entry by entry.
pub struct RawTar {
    b: tar::Builder<Vec<u8>>,
}

impl Default for RawTar {
    fn default() -> Self {
        RawTar::new()
    }
}

impl RawTar {
    pub fn new() -> RawTar {
        RawTar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    /// A GNU header with `name` written into the name field as it is.
    pub fn header(kind: tar::EntryType, name: &str, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(1000);
        h.set_gid(1001);
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        let raw = &mut h.as_old_mut().name;
        raw.fill(0);
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h
    }

    fn link_name(h: &mut tar::Header, target: &str) {
        let raw = &mut h.as_old_mut().linkname;
        raw.fill(0);
        raw[..target.len()].copy_from_slice(target.as_bytes());
    }

    /// Appends `h` (checksummed here) with `data`.
    pub fn raw(mut self, mut h: tar::Header, data: &[u8]) -> RawTar {
        h.set_cksum();
        self.b.append(&h, data).expect("tar append");
        self
    }

    pub fn file(self, name: &str, data: &[u8], mode: u32) -> RawTar {
        let mut h = RawTar::header(tar::EntryType::Regular, name, mode);
        h.set_size(data.len() as u64);
        self.raw(h, data)
    }

    /// A file of `len` zero bytes, streamed rather than held.
    pub fn zeros(mut self, name: &str, len: u64) -> RawTar {
        let mut h = RawTar::header(tar::EntryType::Regular, name, 0o644);
        h.set_size(len);
        h.set_cksum();
        self.b
            .append(&h, std::io::Read::take(std::io::repeat(0), len))
            .expect("tar append");
        self
    }

    pub fn owned_file(self, name: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> RawTar {
        let mut h = RawTar::header(tar::EntryType::Regular, name, mode);
        h.set_size(data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.raw(h, data)
    }

    pub fn dir(self, name: &str, mode: u32) -> RawTar {
        let h = RawTar::header(tar::EntryType::Directory, name, mode);
        self.raw(h, &[])
    }

    /// A symlink or hard link (`kind`) named `name` to `target`.
    pub fn link(self, kind: tar::EntryType, name: &str, target: &str) -> RawTar {
        let mut h = RawTar::header(kind, name, 0o777);
        RawTar::link_name(&mut h, target);
        self.raw(h, &[])
    }

    pub fn symlink(self, name: &str, target: &str) -> RawTar {
        self.link(tar::EntryType::Symlink, name, target)
    }

    pub fn hardlink(self, name: &str, target: &str) -> RawTar {
        self.link(tar::EntryType::Link, name, target)
    }

    pub fn device(self, kind: tar::EntryType, name: &str, major: u32, minor: u32) -> RawTar {
        let mut h = RawTar::header(kind, name, 0o640);
        h.set_device_major(major).expect("device major");
        h.set_device_minor(minor).expect("device minor");
        self.raw(h, &[])
    }

    /// A PAX extended header with `records`, then a file.
    pub fn pax_file(mut self, name: &str, data: &[u8], records: &[(&str, &[u8])]) -> RawTar {
        self.b
            .append_pax_extensions(records.iter().copied())
            .expect("pax records");
        self.file(name, data, 0o644)
    }

    /// A header of type `kind` (`b'x'`, `b'L'`, …) that declares `size`
    /// bytes, followed by only one block: the stream ends early.
    pub fn declared_only(mut self, kind: u8, name: &str, size: u64) -> RawTar {
        let mut h = RawTar::header(tar::EntryType::new(kind), name, 0o644);
        h.set_size(size);
        h.set_cksum();
        self.b.append(&h, &[0u8; 512][..]).expect("tar append");
        self
    }

    pub fn bytes(self) -> Vec<u8> {
        self.b.into_inner().expect("tar finish")
    }
}
