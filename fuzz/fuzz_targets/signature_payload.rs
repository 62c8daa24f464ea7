//! Signatures as registries serve them: a simple-signing payload never
//! panics the parser and, when it parses, what barge writes for it parses
//! back to the same value; a signature manifest's layers are read without
//! panicking whatever their annotations hold.
#![no_main]

use barge_oci::Manifest;
use barge_trust::attach::read_signatures;
use barge_trust::Payload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Payload::parse(data) {
        let written = p.to_bytes();
        let back =
            Payload::parse(&written).unwrap_or_else(|e| panic!("{p:?} written as {written:?} does not parse: {e}"));
        assert_eq!(back, p);
        let _ = p.identity();
    }
    if let Ok(Manifest::Image { manifest, .. }) = Manifest::parse(data, None) {
        if let Ok(sigs) = read_signatures(&manifest) {
            assert!(sigs.len() <= manifest.layers.len());
        }
    }
});
