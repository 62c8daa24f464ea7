#!/bin/bash
# The OCI runtime validation suite (opencontainers/runtime-tools) against
# an OCI runtime: barge-runtime by default, runc with --runtime.
#
# Builds runtimetest and every validation/NAME program from
# third_party/runtime-tools (the suite's sources, which Debian's
# golang-github-opencontainers-runtime-tools-dev package leaves out) against
# the library packages Debian ships under /usr/share/gocode, GOPATH mode,
# offline. Runs each program as root with RUNTIME set, in a directory
# holding runtimetest and a busybox-static rootfs tarball, and prints one
# line per program: NAME pass|fail|skip (counts of ok / not ok).
#
#   tests/oci-validation.sh [--runtime PATH] [--out DIR] [--check FILE] [NAME…]
#
# --check FILE: fails (exit 1) when a program listed in FILE (one name a
# line, # comments) does not pass: the recorded pass list must not shrink.
# Needs: root, golang-go, busybox-static, and the -dev packages listed in
# .ci/run.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
runtime=""
out=""
check=""
names=()
while [ $# -gt 0 ]; do
    case "$1" in
    --runtime) runtime=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --check) check=$2; shift 2 ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) echo "oci-validation: unknown flag $1" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
    esac
done

fail() { echo "oci-validation: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (the suite creates namespaces, cgroups and mounts)"
command -v go >/dev/null || fail "go not found: apt-get install golang-go"
[ -x /bin/busybox ] || fail "/bin/busybox not found: apt-get install busybox-static"
gocode=/usr/share/gocode/src
for lib in github.com/opencontainers/runtime-tools/generate github.com/google/uuid \
    github.com/opencontainers/runtime-spec/specs-go github.com/urfave/cli; do
    [ -d "$gocode/$lib" ] || fail "$gocode/$lib missing: install the -dev packages listed in .ci/run"
done

if [ -z "$runtime" ]; then
    barge="${CARGO_TARGET_DIR:-$repo/target}/debug/barge"
    [ -x "$barge" ] || fail "$barge not built: cargo build -p barge-cli"
    runtime=barge-runtime
fi
[ -n "$out" ] || out=$(mktemp -d /tmp/oci-validation.XXXXXX)
mkdir -p "$out"
out=$(cd "$out" && pwd)

# A GOPATH of our own: the suite's sources and tap-go (not in Debian) in
# it, the runtime-tools library packages linked from Debian's copy.
gopath=$out/gopath
rt=$gopath/src/github.com/opencontainers/runtime-tools
rm -rf "$gopath"
mkdir -p "$rt" "$gopath/src/github.com/mndrix"
cp -r "$repo/third_party/runtime-tools/validation" "$repo/third_party/runtime-tools/cmd" "$rt/"
cp -r "$repo/third_party/tap-go" "$gopath/src/github.com/mndrix/tap-go"
for d in "$gocode"/github.com/opencontainers/runtime-tools/*/; do
    ln -s "$d" "$rt/$(basename "$d")"
done
export GOPATH="$gopath:/usr/share/gocode" GO111MODULE=off GOFLAGS= CGO_ENABLED=0
export GOCACHE="${GOCACHE:-/var/cache/barge-oci-validation/go}"
mkdir -p "$GOCACHE" "$out/bin" "$out/run"
(cd "$rt" && go build -o "$out/run/runtimetest" ./cmd/runtimetest &&
    go build -o "$out/bin/" ./validation/...) || fail "building the suite failed"
rm -f "$out/bin/util"

# The rootfs every bundle unpacks: busybox-static with its applets linked,
# and the passwd/group the suite's process_user test expects.
rootfs=$out/rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs"/{bin,dev,proc,sys,etc,tmp}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:root\nnobody:x:65534:\n' >"$rootfs/etc/group"
tar -C "$rootfs" -czf "$out/run/rootfs-amd64.tar.gz" .

if [ "$runtime" = barge-runtime ]; then
    ln -sf "$barge" "$out/bin/barge-runtime"
    runtime=$out/bin/barge-runtime
fi
runtime=$(command -v "$runtime") || fail "runtime $runtime not found"

if [ ${#names[@]} -eq 0 ]; then
    for p in "$rt"/validation/*/; do
        n=$(basename "$p")
        [ "$n" = util ] || names+=("$n")
    done
fi

# One program at a time, each with a time limit: a hung container must
# not hang CI. TAP on stdout goes to NAME.tap, stderr to NAME.err.
results=$out/results
: >"$results"
for n in "${names[@]}"; do
    [ -x "$out/bin/$n" ] || fail "no validation program $n"
    status=0
    (cd "$out/run" && RUNTIME=$runtime timeout -k 5 60 "$out/bin/$n") \
        >"$out/$n.tap" 2>"$out/$n.err" </dev/null || status=$?
    ok=$(grep -cE '^ok ' "$out/$n.tap" || true)
    notok=$(grep -cE '^not ok ' "$out/$n.tap" || true)
    skip=$(grep -ciE '^ok .*# skip' "$out/$n.tap" || true)
    # The lifecycle programs (hooks, *_fail) print no test line: they pass
    # when they exit 0 with no "error" diagnostic.
    errors=$(grep -c '"error":' "$out/$n.tap" || true)
    if [ "$status" = 0 ] && [ "$notok" = 0 ] && [ "$ok" -gt 0 ] && [ "$skip" -lt "$ok" ]; then
        verdict=pass
    elif [ "$status" = 0 ] && [ "$notok" = 0 ] && [ "$ok" -gt 0 ]; then
        verdict=skip
    elif [ "$status" = 0 ] && [ "$notok" = 0 ] && [ "$errors" = 0 ]; then
        verdict=pass
    else
        verdict=fail
    fi
    printf '%s %s ok=%s not_ok=%s exit=%s\n' "$n" "$verdict" "$ok" "$notok" "$status" | tee -a "$results"
done
echo "oci-validation: $(grep -c ' pass ' "$results" || true) of ${#names[@]} pass; TAP in $out"

if [ -n "$check" ]; then
    missing=0
    while read -r n _; do
        case "$n" in '' | '#'*) continue ;; esac
        if ! grep -qE "^$n pass " "$results"; then
            echo "oci-validation: $n is on the pass list ($check) but did not pass: see $out/$n.tap and $out/$n.err" >&2
            missing=1
        fi
    done <"$check"
    [ "$missing" = 0 ] || exit 1
fi
