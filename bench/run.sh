#!/bin/sh
# barge against skopeo, podman, umoci and runc, side by side in one run.
# Usage (as root): bench/run.sh      Environment: RUNS (default 5), START_RUNS (default 30),
# BARGE (a barge binary; default: cargo build --release), START_ONLY=1 (only the
# container start rows, section 3)
# Builds its images once into /var/tmp/barge-bench-cache (bench/images.sh),
# serves them from a local docker-registry, and prints medians, ratios and
# whether each target of bench/README.md is met.
set -eu
cd "$(dirname "$0")/.."
runs="${RUNS:-5}"
start_runs="${START_RUNS:-30}"
start_only="${START_ONLY:-}"

. bench/registry.sh
needs docker-registry skopeo umoci hyperfine busybox-static python3 runc podman debootstrap time docker.io containerd
barge="$(barge_binary)"
cache=/var/tmp/barge-bench-cache
images="busybox debian big"
[ -z "$start_only" ] || images=busybox
# shellcheck disable=SC2086
bench/images.sh "$cache" $images

work="$(mktemp -d /var/tmp/barge-bench.XXXXXX)"
# Registries record their pids here (they start in command substitutions, which are subshells).
trap 'for p in $(cat "$work"/*.pid 2>/dev/null); do kill "$p" 2>/dev/null || true; done; sleep 1; podman $podman_flags rmi -af >/dev/null 2>&1 || true; umount -R "$work/podman/overlay" "$work/docker" "$work/ctrd" 2>/dev/null || true; rm -rf "$work"' EXIT
reg="$(registry main)"
for i in $images; do
    skopeo copy --quiet --dest-tls-verify=false "oci:$cache/$i/layout:latest" "docker://$reg/$i:latest"
done
echo
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -z "$start_only" ]; then
    deb_unpacked="$(du -sm "$cache/debian/bundle/rootfs" | cut -f1)"
    deb_files="$(find "$cache/debian/bundle/rootfs" | wc -l)"
    echo "debian image: ${deb_unpacked} MB and ${deb_files} files unpacked"
fi

podman_flags="--root $work/podman --runroot $work/podman-run --storage-driver overlay"
fresh="sync; echo 3 > /proc/sys/vm/drop_caches"

# dockerd and containerd with roots and sockets of their own; they never
# touch the host's network (no iptables rules, no bridge).
dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" --pidfile "$work/dockerd.pid.file" \
    -H "unix://$work/docker.sock" --iptables=false --ip6tables=false --ip-masq=false --bridge=none \
    --storage-driver overlay2 >"$work/dockerd.log" 2>&1 &
echo "$!" >"$work/dockerd.pid"
docker="docker -H unix://$work/docker.sock"
printf 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n' >"$work/ctrd.toml"
# A clean containerd for each pull: a new one on an empty root (its content
# store would otherwise already hold the blobs).
cat >"$work/ctrd-fresh.sh" <<SH
[ -f "$work/ctrd.pid" ] && { kill "\$(cat "$work/ctrd.pid")" 2>/dev/null || true; sleep 0.5; }
umount -R "$work/ctrd" 2>/dev/null || true
rm -rf "$work/ctrd" "$work/ctrd-state"
containerd --config "$work/ctrd.toml" --root "$work/ctrd" --state "$work/ctrd-state" \\
    --address "$work/ctrd.sock" >"$work/ctrd.log" 2>&1 &
echo "\$!" >"$work/ctrd.pid"
until ctr -a "$work/ctrd.sock" version >/dev/null 2>&1; do sleep 0.1; done
SH
until $docker version >/dev/null 2>&1; do sleep 0.2; done
json() { echo "$work/$1.json"; }

if [ -z "$start_only" ]; then
# 1. Pull to ready-to-run (blobs stored, layers unpacked) of the three-layer image.
hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$(json pull)" \
    --prepare "rm -rf $work/barge-root; $fresh" -n "barge pull" \
    "$barge --root $work/barge-root pull -q $reg/debian:latest" \
    --prepare "rm -rf $work/skopeo-out; $fresh" -n "skopeo copy (blobs only)" \
    "skopeo copy --quiet --src-tls-verify=false docker://$reg/debian:latest oci:$work/skopeo-out:x" \
    --prepare "podman $podman_flags rmi -af >/dev/null 2>&1 || true; $fresh" -n "podman pull, then sync (durable, as barge)" \
    "podman $podman_flags pull -q --tls-verify=false docker://$reg/debian:latest && sync" \
    --prepare "podman $podman_flags rmi -af >/dev/null 2>&1 || true; $fresh" -n "podman pull" \
    "podman $podman_flags pull -q --tls-verify=false docker://$reg/debian:latest" \
    --prepare "rm -rf $work/umoci-bundle; $fresh" -n "umoci unpack (local, no download)" \
    "umoci unpack --image $cache/debian/layout:latest $work/umoci-bundle" \
    --prepare "$docker rmi -f $reg/debian:latest >/dev/null 2>&1 || true; $fresh" -n "docker pull" \
    "$docker pull -q $reg/debian:latest" \
    --prepare "sh $work/ctrd-fresh.sh; $fresh" -n "ctr image pull (unpacked)" \
    "ctr -a $work/ctrd.sock image pull --plain-http $reg/debian:latest"

# 2. Blob-only copy into an OCI layout.
hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$(json copy)" \
    --prepare "rm -rf $work/barge-oci; $fresh" -n "barge copy" \
    "$barge --root $work/unused copy -q docker://$reg/debian:latest oci:$work/barge-oci:x" \
    --prepare "rm -rf $work/skopeo-oci; $fresh" -n "skopeo copy" \
    "skopeo copy --quiet --src-tls-verify=false docker://$reg/debian:latest oci:$work/skopeo-oci:x" \
    --prepare "rm -rf $work/skopeo-oci; $fresh" -n "skopeo copy, then sync (durable, as barge)" \
    "skopeo copy --quiet --src-tls-verify=false docker://$reg/debian:latest oci:$work/skopeo-oci:x && sync"
fi

# 3. Container start.
"$barge" --root "$work/run-root" pull -q "$reg/busybox:latest" >/dev/null
podman $podman_flags pull -q --tls-verify=false "docker://$reg/busybox:latest" >/dev/null
$docker pull -q "$reg/busybox:latest" >/dev/null
umoci unpack --image "$cache/busybox/layout:latest" "$work/runc-bundle" >/dev/null
python3 - "$work/runc-bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(sys.argv[1], "w"))
PY
# The pulls above leave data for the disk: written back now, not during the
# first tool's runs; and then the discards and writeback that `sync` does
# not wait for (this VM's ext4 is mounted `discard`): until the disk has
# done nothing for a second, at most 30 s.
sync
quiet_disk() {
    dev="$(findmnt -no SOURCE --target "$work" | sed 's#^/dev/##')"
    prev=""
    for _ in $(seq 30); do
        # writes, sectors written, I/Os in flight, discards (/proc/diskstats)
        cur="$(awk -v d="$dev" '$3 == d { print $8, $10, $12, $15 }' /proc/diskstats)"
        [ "$cur" = "$prev" ] && return
        prev="$cur"
        sleep 1
    done
}
quiet_disk
hyperfine --style basic -N --warmup 3 --runs "$start_runs" --export-json "$(json start)" \
    -n "barge run --rm" "$barge --root $work/run-root run --rm --network none $reg/busybox /bin/true" \
    -n "runc run (unpacked bundle)" "runc --root $work/runc-state run --bundle $work/runc-bundle bench" \
    -n "podman run --rm" "podman $podman_flags run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 $reg/busybox /bin/true" \
    -n "barge run --rm (bridge)" "$barge --root $work/run-root run --rm $reg/busybox /bin/true" \
    -n "podman run --rm (bridge)" "podman $podman_flags run --rm --network bridge --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 $reg/busybox /bin/true" \
    -n "docker run --rm" "$docker run --rm --network none $reg/busybox /bin/true"

# 3b. barge-runtime (barge invoked under that name) against runc under the
# same engine. crun is not among them: it refuses to run on this cgroup v1 host.
ln -s "$barge" "$work/barge-runtime"
sh "$work/ctrd-fresh.sh"
ctr -a "$work/ctrd.sock" image pull --plain-http "$reg/busybox:latest" >/dev/null
hyperfine --style basic -N --warmup 3 --runs "$start_runs" --export-json "$(json engines)" \
    -n "podman --runtime barge-runtime run --rm" "podman $podman_flags --runtime $work/barge-runtime run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 $reg/busybox /bin/true" \
    -n "podman --runtime runc run --rm" "podman $podman_flags --runtime runc run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 $reg/busybox /bin/true" \
    -n "ctr run --rm --runc-binary barge-runtime" "ctr -a $work/ctrd.sock run --rm --runc-binary $work/barge-runtime $reg/busybox:latest bench-barge /bin/true" \
    -n "ctr run --rm (runc)" "ctr -a $work/ctrd.sock run --rm $reg/busybox:latest bench-runc /bin/true"

if [ -n "$start_only" ]; then
    python3 - "$work" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(f"{sys.argv[1]}/start.json"))["results"]}
base = r["barge run --rm"]
for cmd, t in r.items():
    print(f"  {cmd:38s} median {t * 1000:9.1f} ms   barge run --rm/this = {base / t:5.2f}")
print(f"  barge run --rm (bridge) / podman run --rm (bridge) = {r['barge run --rm (bridge)'] / r['podman run --rm (bridge)']:.3f}")
e = {x["command"]: x["median"] for x in json.load(open(f"{sys.argv[1]}/engines.json"))["results"]}
for cmd, t in e.items():
    print(f"  {cmd:42s} median {t * 1000:9.1f} ms")
print(f"  podman: barge-runtime / runc = {e['podman --runtime barge-runtime run --rm'] / e['podman --runtime runc run --rm']:.3f}")
print(f"  ctr: barge-runtime / runc = {e['ctr run --rm --runc-binary barge-runtime'] / e['ctr run --rm (runc)']:.3f}")
PY
    exit 0
fi

# 4. Peak memory of a pull of one 1 GiB layer.
rm -rf "$work/big-root"
/usr/bin/time -f "%M" -o "$work/big-rss" "$barge" --root "$work/big-root" pull -q "$reg/big:latest" >/dev/null
rm -rf "$work/big-root"

# 5. Scale.
#    barge images over 10,000 tags of one image.
"$barge" --root "$work/tags-root" pull -q "$reg/busybox:latest" >/dev/null
python3 - "$work/tags-root/oci/index.json" <<'PY'
import copy, json, os, sys
path = sys.argv[1]
idx = json.load(open(path))
row = idx["manifests"][0]
name = row["annotations"]["org.opencontainers.image.ref.name"].rsplit(":", 1)[0]
for i in range(10000):
    r = copy.deepcopy(row)
    r["annotations"]["org.opencontainers.image.ref.name"] = f"{name}:t{i}"
    idx["manifests"].append(r)
json.dump(idx, open(path + ".tmp", "w"))
os.replace(path + ".tmp", path)
PY
#    a pull of an image already present: one manifest HEAD.
hyperfine --style basic -N --warmup 3 --runs "$start_runs" --export-json "$(json scale)" \
    -n "barge images (10,001 tags)" "$barge --root $work/tags-root images" \
    -n "barge pull (already present)" "$barge --root $work/run-root pull -q $reg/busybox:latest"
#    mirror re-run over 100 unchanged tags: requests on both registries.
dst="$(registry mirror-dst)"
i=0
while [ "$i" -lt 100 ]; do "$barge" --root "$work/run-root" tag "$reg/busybox:latest" "$reg/many:t$i"; i=$((i + 1)); done
"$barge" --root "$work/run-root" push -q --all-tags "$reg/many" >/dev/null
"$barge" --root "$work/run-root" mirror -q "$reg/many" "$dst/many"
before_src="$(wc -l <"$work/main.log")"
before_dst="$(wc -l <"$work/mirror-dst.log")"
"$barge" --root "$work/run-root" mirror -q "$reg/many" "$dst/many"
sleep 0.5
# Requests in a registry's access log since line $2 whose path matches $3.
requests() { tail -n +"$(($2 + 1))" "$work/$1.log" | grep '"\(GET\|HEAD\|PUT\|POST\|PATCH\|DELETE\) /v2/' | grep -c "$3" || true; }
per_tag=$(($(requests main "$before_src" '/manifests/\|/blobs/') + $(requests mirror-dst "$before_dst" '/manifests/\|/blobs/')))
all=$(($(requests main "$before_src" .) + $(requests mirror-dst "$before_dst" .)))
echo "mirror re-run over 100 unchanged tags: $per_tag manifest/blob requests, $((all - per_tag)) others (/v2/ and tags/list)"
mirror_requests="$per_tag"

python3 - "$work" "$(cat "$work/big-rss")" "$mirror_requests" <<'PY'
import json, sys
work, rss_kib, mirror_requests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def load(name):
    return {r["command"]: r["median"] for r in json.load(open(f"{work}/{name}.json"))["results"]}
rows = []
def table(name, base=None):
    r = load(name)
    print()
    for cmd, t in r.items():
        ratio = "" if base is None or cmd == base else f"   {base}/this = {r[base] / t:5.2f}"
        print(f"  {cmd:38s} median {t * 1000:9.1f} ms{ratio}")
    return r
def target(what, value, limit, unit=""):
    ok = value <= limit
    rows.append(f"  {'met ' if ok else 'MISS'}  {what}: {value:.3g}{unit} (target <= {limit:g}{unit})")
pull = table("pull", "barge pull")
target("pull / skopeo copy", pull["barge pull"] / pull["skopeo copy (blobs only)"], 1.0, "x")
target("pull / podman pull", pull["barge pull"] / pull["podman pull"], 0.1, "x")
target("pull / docker pull", pull["barge pull"] / pull["docker pull"], 0.25, "x")
target("pull / ctr image pull", pull["barge pull"] / pull["ctr image pull (unpacked)"], 0.25, "x")
copy = table("copy", "barge copy")
target("copy / skopeo copy", copy["barge copy"] / copy["skopeo copy"], 0.35, "x")
print("  (barge makes every blob durable before it returns; skopeo and podman leave")
print("   their writes in the page cache: the 'then sync' rows compare like with like)")
start = table("start", "barge run --rm")
target("run / runc run", start["barge run --rm"] / start["runc run (unpacked bundle)"], 0.4, "x")
target("run / podman run", start["barge run --rm"] / start["podman run --rm"], 0.06, "x")
target("run / podman run, both on a bridge", start["barge run --rm (bridge)"] / start["podman run --rm (bridge)"], 0.06, "x")
target("run / docker run, --network none", start["barge run --rm"] / start["docker run --rm"], 0.1, "x")
target("run on a bridge", start["barge run --rm (bridge)"] * 1000, 25, " ms")
table("engines")
target("peak RSS, pull of a 1 GiB layer", rss_kib / 1024, 100, " MiB")
scale = table("scale")
target("barge images, 10,001 tags", scale["barge images (10,001 tags)"] * 1000, 100, " ms")
target("barge pull, image present", scale["barge pull (already present)"] * 1000, 50, " ms")
target("mirror re-run, manifest/blob requests per unchanged tag", mirror_requests / 100, 1, "")
print("\ntargets:")
print("\n".join(rows))
PY
