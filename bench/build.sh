#!/bin/sh
# A two-stage build against buildah, side by side: a static C program
# compiled in a gcc image (busybox-static and the host's toolchain, made
# here as the test harness makes it) and copied into scratch. Cold: the
# base image stored, no build cache; warm: the same build again, nothing
# changed. Prints medians and barge/buildah ratios.
# Usage (as root): bench/build.sh      Environment: RUNS (default 5),
# BARGE (a barge binary; default: cargo build --release), BUILDAH_DRIVER
# (buildah's storage driver, default overlay).
set -eu
cd "$(dirname "$0")/.."
runs="${RUNS:-5}"
driver="${BUILDAH_DRIVER:-overlay}"

. bench/registry.sh
needs docker-registry skopeo umoci buildah busybox-static gcc libc6-dev python3
barge="$(barge_binary)"

work="$(mktemp -d /var/tmp/barge-bench-build.XXXXXX)"
trap 'for p in $(cat "$work"/*.pid 2>/dev/null); do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
reg="$(registry reg)"

# The gcc image: busybox-static with its applets, and the host's toolchain.
layout="$work/layout"
umoci init --layout "$layout" >/dev/null
umoci new --image "$layout:gcc" >/dev/null
umoci unpack --image "$layout:gcc" "$work/bundle" >/dev/null
rootfs="$work/bundle/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/usr/bin" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"; done
sh crates/barge-tests/src/gcc-files.sh "$rootfs"
umoci repack --image "$layout:gcc" "$work/bundle" >/dev/null
umoci config --image "$layout:gcc" --config.env PATH=/usr/bin:/bin --config.cmd /bin/sh >/dev/null
skopeo copy --quiet --dest-tls-verify=false "oci:$layout:gcc" "docker://$reg/gcc:1"

ctx="$work/ctx"
mkdir -p "$ctx"
cat >"$ctx/hello.c" <<'C'
#include <stdio.h>
int main(void) { puts("hello from a two-stage build"); return 0; }
C
cat >"$ctx/Dockerfile" <<DF
FROM $reg/gcc:1 AS build
WORKDIR /src
COPY hello.c .
RUN gcc -static -O2 -o /hello hello.c

FROM scratch
COPY --from=build /hello /hello
ENTRYPOINT ["/hello"]
DF

b="$barge --root $work/barge"
bh="buildah --root $work/buildah --runroot $work/buildah-run --storage-driver $driver"
export BUILDAH_ISOLATION=chroot
fresh_barge="rm -rf $work/barge && $b pull -q $reg/gcc:1"
fresh_buildah="$bh rm -a; $bh rmi -af; rm -rf $work/buildah $work/buildah-run; $bh pull -q --tls-verify=false docker://$reg/gcc:1"

# time_runs NAME PREPARE COMMAND: RUNS timed runs, PREPARE before each
# (untimed); records the median in $work/NAME.time.
time_runs() {
    : >"$work/$1.times"
    n=0
    while [ "$n" -lt "$runs" ]; do
        sh -c "$2" >/dev/null 2>&1
        t0="$(date +%s.%N)"
        sh -c "$3" >/dev/null 2>"$work/$1.err" || { cat "$work/$1.err" >&2; exit 1; }
        t1="$(date +%s.%N)"
        echo "$t0 $t1" >>"$work/$1.times"
        n=$((n + 1))
    done
    python3 - "$work/$1.times" >"$work/$1.time" <<'PY'
import statistics, sys
print(statistics.median(float(b) - float(a) for a, b in (l.split() for l in open(sys.argv[1]))))
PY
}

time_runs barge_cold "$fresh_barge" "$b build -q -t hello:1 $ctx"
time_runs barge_warm "true" "$b build -q -t hello:1 $ctx"
time_runs buildah_cold "$fresh_buildah" "$bh bud --layers --tls-verify=false -q -t hello:1 $ctx"
time_runs buildah_warm "true" "$bh bud --layers --tls-verify=false -q -t hello:1 $ctx"

# Both images run the program.
$b run --rm --network none hello:1 | grep -q "two-stage" || { echo "barge's image does not run" >&2; exit 1; }

python3 - "$work" "$driver" <<'PY'
import sys
work, driver = sys.argv[1], sys.argv[2]
t = lambda n: float(open(f"{work}/{n}.time").read())
print()
print(f"{'':44s} {'median':>10s}")
for name, label in [("barge_cold", "barge build, cold"), ("buildah_cold", f"buildah bud --layers ({driver}), cold"),
                    ("barge_warm", "barge build, warm, nothing changed"), ("buildah_warm", "buildah bud, warm")]:
    print(f"  {label:42s} {t(name) * 1000:8.1f} ms")
cold, warm = t("barge_cold") / t("buildah_cold"), t("barge_warm") / t("buildah_warm")
print("\nratios (barge / buildah):")
print(f"  cold {cold:5.2f} (target <= 0.5: {'met' if cold <= 0.5 else 'missed'})")
print(f"  warm {warm:5.2f}; barge warm {t('barge_warm') * 1000:.1f} ms "
      f"(target < 100 ms: {'met' if t('barge_warm') < 0.1 else 'missed'})")
PY
