#!/bin/sh
# The registry toolkit against skopeo, side by side: `barge tags` of a
# repository of 2,500 tags against `skopeo list-tags`, and `barge mirror`
# of a repository of 20 tags, each image with an SBOM referrer, against
# `skopeo sync` (first copy and unchanged re-run): medians of wall time
# and the requests both registries logged, with their ratios.
# Usage (as root): bench/toolkit.sh      Environment: RUNS (default 5),
# BARGE (a barge binary; default: cargo build --release).
set -eu
cd "$(dirname "$0")/.."
runs="${RUNS:-5}"

. bench/registry.sh
needs docker-registry skopeo umoci busybox-static python3
barge="$(barge_binary)"

work="$(mktemp -d /var/tmp/barge-bench-toolkit.XXXXXX)"
trap 'for p in $(cat "$work"/*.pid 2>/dev/null); do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
src="$(registry src)"
dst="$(registry dst)"

# 20 images: busybox-static, and a small layer of its own each.
layout="$work/layout"
umoci init --layout "$layout" >/dev/null
umoci new --image "$layout:base" >/dev/null
umoci unpack --image "$layout:base" "$work/bundle" >/dev/null
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/"
umoci repack --refresh-bundle --image "$layout:base" "$work/bundle" >/dev/null
i=1
while [ "$i" -le 20 ]; do
    echo "image $i" >"$work/bundle/rootfs/marker"
    umoci repack --image "$layout:t$i" "$work/bundle" >/dev/null
    skopeo copy --quiet --dest-tls-verify=false "oci:$layout:t$i" "docker://$src/app:t$i"
    # Its SBOM, attached by digest (the sha256-<hex> index: docker-registry has no referrers API).
    echo "{\"spdxVersion\":\"SPDX-2.3\",\"name\":\"t$i\"}" >"$work/sbom.json"
    "$barge" --root "$work/barge-setup" artifact push --artifact-type application/spdx+json \
        --subject "$src/app:t$i" "$src/app" "$work/sbom.json:application/spdx+json" >/dev/null 2>&1
    i=$((i + 1))
done

# 2,500 tags of one manifest, put straight through the API.
python3 - "$src" "$layout" <<'PY'
import json, sys, urllib.request
src, layout = sys.argv[1], sys.argv[2]
index = json.load(open(f"{layout}/index.json"))
desc = next(d for d in index["manifests"] if d["annotations"]["org.opencontainers.image.ref.name"] == "t1")
body = open(f"{layout}/blobs/sha256/{desc['digest'][7:]}", "rb").read()
for blob in [json.loads(body)["config"]] + json.loads(body)["layers"]:
    # Mounted from app, where skopeo put them.
    req = urllib.request.Request(f"http://{src}/v2/many/blobs/uploads/?mount={blob['digest']}&from=app", method="POST")
    urllib.request.urlopen(req).read()
for i in range(2500):
    req = urllib.request.Request(f"http://{src}/v2/many/manifests/tag{i:04d}", data=body, method="PUT",
                                 headers={"Content-Type": desc["mediaType"]})
    urllib.request.urlopen(req).read()
PY

# Requests in a registry's access log since line $2.
requests() { tail -n +"$(($2 + 1))" "$work/$1.log" | grep -c '"\(GET\|HEAD\|PUT\|POST\|PATCH\|DELETE\) /v2/' || true; }
lines() { wc -l <"$work/$1.log"; }

# time_runs NAME PREPARE COMMAND: RUNS timed runs, PREPARE before each
# (untimed); records the median in $work/NAME.time and the requests of
# the last run (both registries) in $work/NAME.req.
time_runs() {
    : >"$work/$1.times"
    n=0
    while [ "$n" -lt "$runs" ]; do
        sh -c "$2" >/dev/null 2>&1
        s0="$(lines src)"
        d0="$(lines dst)"
        t0="$(date +%s.%N)"
        sh -c "$3" >/dev/null 2>"$work/$1.err" || { cat "$work/$1.err" >&2; exit 1; }
        t1="$(date +%s.%N)"
        sleep 0.3
        echo "$t0 $t1" >>"$work/$1.times"
        echo "$(($(requests src "$s0") + $(requests dst "$d0")))" >"$work/$1.req"
        n=$((n + 1))
    done
    python3 - "$work/$1.times" >"$work/$1.time" <<'PY'
import statistics, sys
print(statistics.median(float(b) - float(a) for a, b in (l.split() for l in open(sys.argv[1]))))
PY
}

wipe_dst="rm -rf $work/dst-data $work/barge-root"
time_runs barge_tags "true" "$barge --root $work/barge-root tags $src/many"
time_runs skopeo_tags "true" "skopeo list-tags --tls-verify=false docker://$src/many"
sync="skopeo sync --all --src docker --dest docker --src-tls-verify=false --dest-tls-verify=false $src/app $dst/skopeo"
time_runs skopeo_sync "$wipe_dst" "$sync"
time_runs skopeo_resync "true" "$sync"
time_runs barge_mirror "$wipe_dst" "$barge --root $work/barge-root mirror -q $src/app $dst/app"
# Unchanged re-runs: the destination already holds everything.
time_runs barge_rerun "true" "$barge --root $work/barge-root mirror -q $src/app $dst/app"

# What arrived: barge's destination lists each SBOM as a referrer.
"$barge" --root "$work/barge-root" referrers --format '{{.ArtifactType}}' "$dst/app:t7" 2>/dev/null | grep -q spdx ||
    { echo "the mirror lost the SBOM of t7" >&2; exit 1; }

python3 - "$work" <<'PY'
import sys
work = sys.argv[1]
t = lambda n: float(open(f"{work}/{n}.time").read())
r = lambda n: int(open(f"{work}/{n}.req").read())
print()
print(f"{'':44s} {'median':>10s} {'requests':>9s}")
for name, label in [("barge_tags", "barge tags (2,500 tags)"), ("skopeo_tags", "skopeo list-tags"),
                    ("barge_mirror", "barge mirror (20 tags + SBOMs)"), ("skopeo_sync", "skopeo sync --all"),
                    ("barge_rerun", "barge mirror, unchanged re-run"), ("skopeo_resync", "skopeo sync, unchanged re-run")]:
    print(f"  {label:42s} {t(name) * 1000:8.1f} ms {r(name):9d}")
print("\nratios (barge / skopeo; target <= 0.5 for the mirror):")
for a, b, what in [("barge_tags", "skopeo_tags", "tags"), ("barge_mirror", "skopeo_sync", "mirror"),
                   ("barge_rerun", "skopeo_resync", "mirror re-run")]:
    rr = r(a) / r(b) if r(b) else float("nan")
    print(f"  {what:16s} time {t(a) / t(b):5.2f}   requests {rr:5.2f}")
PY
