#!/bin/sh
# Side-by-side pull benchmark: barge against skopeo and umoci, in one run.
# Usage (as root): bench/run.sh [MiB of random layer data, default 96]
# Prints the median of each tool and barge/peer ratios.
set -eu
cd "$(dirname "$0")/.."
size_mib="${1:-96}"

export DEBIAN_FRONTEND=noninteractive
for p in docker-registry skopeo umoci hyperfine busybox-static python3 runc; do
    command -v "$p" >/dev/null 2>&1 || dpkg-query -W "$p" >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -qq docker-registry skopeo umoci hyperfine busybox-static python3 runc; break; }
done
cargo build --release --bin barge
barge="$(pwd)/target/release/barge"

work="$(mktemp -d /var/tmp/barge-bench.XXXXXX)"
trap 'kill "$registry_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$work/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$work/registry.yml" 2>"$work/registry.log" &
registry_pid=$!
sleep 1

# A three-layer image: busybox; random (incompressible) data; text (compressible).
umoci init --layout "$work/src" >/dev/null
umoci new --image "$work/src:bench" >/dev/null
umoci unpack --image "$work/src:bench" "$work/b" >/dev/null
mkdir -p "$work/b/rootfs/bin" && cp /bin/busybox "$work/b/rootfs/bin/"
umoci repack --image "$work/src:bench" "$work/b" >/dev/null
mkdir -p "$work/b/rootfs/data"
i=0; while [ "$i" -lt 8 ]; do
    head -c "$((size_mib * 1024 * 1024 / 8))" /dev/urandom > "$work/b/rootfs/data/random.$i"; i=$((i + 1))
done
umoci repack --image "$work/src:bench" "$work/b" >/dev/null
mkdir -p "$work/b/rootfs/text"
i=0; while [ "$i" -lt 2000 ]; do seq 1 "$((size_mib * 10))" > "$work/b/rootfs/text/f.$i" 2>/dev/null; i=$((i + 50)); done
umoci repack --image "$work/src:bench" "$work/b" >/dev/null
skopeo copy --quiet --dest-tls-verify=false "oci:$work/src:bench" "docker://127.0.0.1:$port/bench:latest"
ref="127.0.0.1:$port/bench:latest"
echo "image: $(du -sh "$work/src/blobs" | cut -f1) of blobs, $(du -sh "$work/b/rootfs" | cut -f1) unpacked; machine: $(nproc) cores, $(uname -r)"

hyperfine --style basic --warmup 1 --runs "${RUNS:-5}" --export-json "$work/result.json" \
    --prepare "rm -rf $work/barge-root; sync" -n "barge pull" "$barge --root $work/barge-root pull -q $ref" \
    --prepare "rm -rf $work/skopeo-out; sync" -n "skopeo copy (blobs only)" "skopeo copy --quiet --src-tls-verify=false docker://$ref oci:$work/skopeo-out:bench" \
    --prepare "rm -rf $work/umoci-bundle; sync" -n "umoci unpack (local, no download)" "umoci unpack --image $work/src:bench $work/umoci-bundle"

python3 - "$work/result.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
b = r["barge pull"]
print()
for name, t in r.items():
    print(f"{name:36s} median {t*1000:8.1f} ms   barge/this = {b/t:5.2f}")
PY

# Container start: barge run --rm against runc run on an already unpacked bundle of the same image.
umoci init --layout "$work/bb" >/dev/null
umoci new --image "$work/bb:latest" >/dev/null
umoci unpack --image "$work/bb:latest" "$work/bbb" >/dev/null
mkdir -p "$work/bbb/rootfs/bin" && cp /bin/busybox "$work/bbb/rootfs/bin/" && ln -s busybox "$work/bbb/rootfs/bin/true"
umoci repack --image "$work/bb:latest" "$work/bbb" >/dev/null
skopeo copy --quiet --dest-tls-verify=false "oci:$work/bb:latest" "docker://127.0.0.1:$port/busybox:latest"
"$barge" --root "$work/run-root" pull -q "127.0.0.1:$port/busybox" >/dev/null
umoci unpack --image "$work/bb:latest" "$work/runc-bundle" >/dev/null
python3 - "$work/runc-bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(sys.argv[1], "w"))
PY
hyperfine --style basic -N --warmup 3 --runs "${START_RUNS:-30}" --export-json "$work/start.json" \
    -n "barge run --rm" "$barge --root $work/run-root run --rm 127.0.0.1:$port/busybox /bin/true" \
    -n "runc run (unpacked bundle)" "runc --root $work/runc-state run --bundle $work/runc-bundle bench"
python3 - "$work/start.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
b = r["barge run --rm"]
print()
for name, t in r.items():
    print(f"{name:36s} median {t*1000:8.1f} ms   barge/this = {b/t:5.2f}")
PY
