//! Registry faults between barge and a real docker-registry: each gives a
//! successful pull after retries or one clear error, and never a damaged
//! store (`barge system check` after each).

use barge_tests::fault::{Fault, FaultProxy};
use barge_tests::image::{Compression, Image, LayerBuilder, Spec, Style};
use barge_tests::registry::Registry;
use barge_tests::{noise, require_root_and, Barge};
use std::process::Output;
use std::time::{Duration, Instant};

struct Setup {
    _reg: Registry,
    proxy: FaultProxy,
    image: Image,
}

fn setup() -> Setup {
    let reg = Registry::anonymous();
    let layers = (0..2)
        .map(|i| {
            LayerBuilder::new()
                .file(&format!("l{i}"), &noise(600_000, 7 + i), 0o644)
                .build(Compression::Gzip)
        })
        .collect();
    let image = Image::new(layers, Style::Oci, Spec::default());
    image.push(&reg, "app", "v1");
    let proxy = FaultProxy::start(&reg.host());
    Setup {
        _reg: reg,
        proxy,
        image,
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Setup {
    /// How many requests got a fault since the last `clear`.
    fn faulted(&self) -> usize {
        self.proxy.seen().iter().filter(|r| r.faulted).count()
    }

    fn reference(&self) -> String {
        format!("{}/app:v1", self.proxy.host())
    }

    fn blob_path(&self, i: usize) -> String {
        format!("/blobs/{}", self.image.layers[i].digest)
    }

    /// A pull in a fresh store that must succeed; the store is then whole.
    fn pull_ok(&self, what: &str) -> (Barge, Duration) {
        let b = Barge::new();
        let start = Instant::now();
        let o = b.run(&["pull", &self.reference()]);
        let took = start.elapsed();
        assert!(o.status.success(), "{what}: {}", text(&o));
        let check = b.run(&["system", "check"]);
        assert!(check.status.success(), "{what}: {}", text(&check));
        let id = b.ok(&["inspect", "--format", "{{.Id}}", &self.reference()]);
        assert_eq!(id.trim(), self.image.config_digest, "{what}");
        (b, took)
    }

    /// A pull that must fail with one clear error naming `expected`, leaving
    /// no image, no blob of it and a consistent store.
    fn pull_fails(&self, what: &str, expected: &str) -> Barge {
        let b = Barge::new();
        let o = b.run(&["pull", &self.reference()]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!o.status.success(), "{what} should fail: {err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("Error:")).collect();
        assert_eq!(errors.len(), 1, "{what}: one error line: {err}");
        assert!(errors[0].contains(expected), "{what}: {err}");
        let check = b.run(&["system", "check"]);
        assert!(check.status.success(), "{what}: {}", text(&check));
        assert!(b.ok(&["images", "-q"]).trim().is_empty(), "{what}: nothing tagged");
        for l in &self.image.layers {
            let blob = b.root().join("oci/blobs/sha256").join(&l.digest[7..]);
            if blob.exists() {
                // A layer that did arrive whole may stay; it must be right.
                assert_eq!(barge_tests::sha256(&std::fs::read(&blob).unwrap()), l.digest, "{what}");
            }
        }
        b
    }
}

#[test]
fn transient_server_errors_are_retried() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let s = setup();
    for code in [500, 502, 503] {
        s.proxy.clear();
        s.proxy.inject("GET", "/manifests/v1", Fault::Status(code, vec![]), 1);
        s.proxy.inject("GET", &s.blob_path(0), Fault::Status(code, vec![]), 2);
        s.pull_ok(&format!("HTTP {code}"));
        let faulted = s.proxy.seen().iter().filter(|r| r.faulted && r.status == code).count();
        assert!(faulted >= 3, "HTTP {code} injected: {:?}", s.proxy.seen());
    }
}

#[test]
fn rate_limits_are_waited_out() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let s = setup();
    s.proxy.inject(
        "GET",
        &s.blob_path(1),
        Fault::Status(429, vec![("Retry-After".into(), "2".into())]),
        1,
    );
    let (_, took) = s.pull_ok("429 with Retry-After in seconds");
    assert!(took >= Duration::from_secs(2), "waited {took:?}");

    // An HTTP-date three seconds ahead (IMF-fixdate, whole seconds).
    let when = std::time::SystemTime::now() + Duration::from_secs(3);
    let secs = when.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let date = http_date(secs);
    s.proxy.clear();
    s.proxy.inject(
        "GET",
        &s.blob_path(0),
        Fault::Status(429, vec![("Retry-After".into(), date.clone())]),
        1,
    );
    let (_, took) = s.pull_ok(&format!("429 with Retry-After: {date}"));
    assert!(took >= Duration::from_millis(1500), "waited {took:?} for {date}");
}

fn http_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        months[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn persistent_errors_end_in_one_clear_error() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let s = setup();
    s.proxy
        .inject("GET", &s.blob_path(1), Fault::Status(503, vec![]), u32::MAX);
    s.pull_fails("503 on every try", "503");
}

#[test]
fn cut_short_and_misdescribed_bodies_are_resumed() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let s = setup();
    s.proxy.inject("GET", &s.blob_path(0), Fault::Truncate(100_000), 1);
    s.pull_ok("a blob body cut at 100 kB");
    assert!(
        s.proxy
            .seen()
            .iter()
            .any(|r| r.range.as_deref().is_some_and(|r| r.starts_with("bytes=100000-"))),
        "resumed with Range: {:?}",
        s.proxy.seen()
    );

    let mut before = s.faulted();
    s.proxy.clear();
    s.proxy
        .inject("GET", &s.blob_path(0), Fault::ContentLengthDelta(-1000), 1);
    s.pull_ok("Content-Length 1000 short");
    assert_eq!(s.faulted(), before + 1);
    before += 1;
    s.proxy.clear();
    s.proxy
        .inject("GET", &s.blob_path(0), Fault::ContentLengthDelta(1000), 1);
    s.pull_ok("Content-Length 1000 too long");
    assert_eq!(s.faulted(), before + 1);
    before += 1;

    // The resumed request answered with the whole blob (200, not 206).
    s.proxy.clear();
    s.proxy.inject("GET", &s.blob_path(1), Fault::Truncate(50_000), 1);
    s.proxy.inject("GET", &s.blob_path(1), Fault::IgnoreRange, 1);
    s.pull_ok("200 instead of 206");
    assert_eq!(s.faulted(), before + 2, "{:?}", s.proxy.seen());
    before += 2;
    // A 206 whose Content-Range is not what was asked.
    s.proxy.clear();
    s.proxy.inject("GET", &s.blob_path(1), Fault::Truncate(50_000), 1);
    s.proxy.inject("GET", &s.blob_path(1), Fault::ShiftContentRange(7), 1);
    s.pull_ok("206 with the wrong Content-Range");
    assert_eq!(s.faulted(), before + 2, "{:?}", s.proxy.seen());
}

#[test]
fn a_stalled_body_times_out_and_is_resumed() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let s = setup();
    s.proxy
        .inject("GET", &s.blob_path(0), Fault::Stall(200_000, Duration::from_secs(8)), 1);
    let b = Barge::new();
    std::fs::write(b.dir.path().join("barge-config/barge.json"), r#"{"read-timeout": 2}"#).unwrap();
    let start = Instant::now();
    let o = b.run(&["pull", &s.reference()]);
    assert!(o.status.success(), "{}", text(&o));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "took {took:?}"
    );
    assert!(b.run(&["system", "check"]).status.success());
}

#[test]
fn damaged_content_is_never_stored() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let s = setup();
    // A byte flipped in a blob, every time it is sent.
    s.proxy.inject("GET", &s.blob_path(1), Fault::FlipByte(4000), u32::MAX);
    s.pull_fails("a flipped byte in a blob", "digest");
    // Once only: the pull run again gets it right.
    s.proxy.clear();
    s.proxy.inject("GET", &s.blob_path(1), Fault::FlipByte(4000), 1);
    let b = Barge::new();
    let first = b.run(&["pull", &s.reference()]);
    if !first.status.success() {
        assert!(b.run(&["system", "check"]).status.success());
        b.ok(&["pull", &s.reference()]);
    }
    assert!(b.run(&["system", "check"]).status.success());

    // A byte flipped in the manifest.
    s.proxy.clear();
    s.proxy.inject("GET", "/manifests/", Fault::FlipByte(30), u32::MAX);
    s.pull_fails("a flipped byte in the manifest", "digest");
    // A manifest served as another kind of manifest, or as schema 1.
    s.proxy.clear();
    s.proxy.inject(
        "GET",
        "/manifests/",
        Fault::ContentType("application/vnd.oci.image.index.v1+json".into()),
        u32::MAX,
    );
    s.pull_fails(
        "an image manifest served as an index",
        "disagrees with the registry's Content-Type",
    );
    s.proxy.clear();
    s.proxy.inject(
        "GET",
        "/manifests/",
        Fault::ContentType("application/vnd.docker.distribution.manifest.v1+prettyjws".into()),
        u32::MAX,
    );
    s.pull_fails("a schema 1 Content-Type", "schema 1");
    // A generic Content-Type: the manifest's own mediaType decides, and its digest checks out.
    s.proxy.clear();
    s.proxy
        .inject("GET", "/manifests/", Fault::ContentType("text/plain".into()), u32::MAX);
    s.pull_ok("a manifest served as text/plain");
}
