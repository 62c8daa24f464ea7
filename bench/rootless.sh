#!/bin/sh
# Rootless barge against rootless podman, and against barge as root, side
# by side: `run --rm busybox /bin/true` with `--network none` and on each
# tool's default network, and a pull of busybox from a loopback registry.
# The user's commands go through `runuser`; a row times `runuser` alone.
# Usage (as root): bench/rootless.sh
# Environment: START_RUNS (default 30), RUNS (pulls, default 10),
# BENCH_USER (default barge-bench: created with a subordinate range if
# missing), BARGE (a barge binary; default: cargo build --release).
set -eu
cd "$(dirname "$0")/.."
runs="${RUNS:-10}"
start_runs="${START_RUNS:-30}"
user="${BENCH_USER:-barge-bench}"

. bench/registry.sh
needs docker-registry skopeo umoci hyperfine busybox-static python3 podman uidmap passt slirp4netns fuse-overlayfs util-linux
if ! id "$user" >/dev/null 2>&1; then
    useradd -M -s /usr/sbin/nologin "$user"
    usermod --add-subuids 800000-865535 --add-subgids 800000-865535 "$user"
fi
barge="$(barge_binary)"
cache=/var/tmp/barge-bench-cache
bench/images.sh "$cache" busybox

work="$(mktemp -d /var/tmp/barge-bench-rootless.XXXXXX)"
chmod 0755 "$work"
mkdir -p "$work/home" "$work/data" "$work/config" "$work/run"
cp "$barge" "$work/barge"
chown "$user:" "$work/home" "$work/data" "$work/config" "$work/run"
chmod 0700 "$work/run"
barge="$work/barge"
# The user's barge and podman, each with XDG directories under $work.
as_user="runuser -u $user -- env HOME=$work/home XDG_DATA_HOME=$work/data XDG_CONFIG_HOME=$work/config XDG_RUNTIME_DIR=$work/run"
podman="$as_user podman --root $work/data/podman --runroot $work/run/podman --storage-driver overlay --cgroup-manager cgroupfs --events-backend file"
# Registries record their pids here; the pause processes of barge and podman keep the users' namespaces.
trap 'for p in $(cat "$work"/*.pid "$work/run/barge/pause.pid" "$work/run/libpod/tmp/pause.pid" 2>/dev/null); do kill "$p" 2>/dev/null || true; done; sleep 0.5; rm -rf "$work"' EXIT
reg="$(registry main)"
skopeo copy --quiet --dest-tls-verify=false "oci:$cache/busybox/layout:latest" "docker://$reg/busybox:latest"
img="$reg/busybox:latest"
echo
echo "machine: $(nproc) cores, $(uname -r); user $user ($(grep "^$user:" /etc/subuid))"

fresh="sync; echo 3 > /proc/sys/vm/drop_caches"
json() { echo "$work/$1.json"; }
ulimits="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"

# 1. Container start, the image present in each store.
"$barge" --root "$work/root-store" pull -q "$img" >/dev/null
$as_user "$barge" pull -q "$img" >/dev/null
$podman pull -q --tls-verify=false "docker://$img" >/dev/null
hyperfine --style basic -N --warmup 3 --runs "$start_runs" --export-json "$(json start)" \
    -n "runuser -u USER -- true" "runuser -u $user -- true" \
    -n "root: barge run --network none" "$barge --root $work/root-store run --rm --network none $img /bin/true" \
    -n "user: barge run --network none" "$as_user $barge run --rm --network none $img /bin/true" \
    -n "user: podman run --network none" "$podman run --rm --network none $ulimits $img /bin/true" \
    -n "root: barge run (bridge)" "$barge --root $work/root-store run --rm $img /bin/true" \
    -n "user: barge run (user-mode)" "$as_user $barge run --rm $img /bin/true" \
    -n "user: podman run (slirp4netns)" "$podman run --rm $ulimits $img /bin/true"

# 2. Pull to ready-to-run, from a clean store each time. The page cache
# is dropped, then runuser run once: a cold runuser (PAM, its libraries)
# takes 50-200 ms, which is not what the user's rows compare.
# Each barge pull gets a new, empty store (`$work/pulls/*`, the link
# `root-pull` or `user-pull` to it) rather than one deleted in place:
# ext4's inode allocator walks past inodes freed in the last minute, and
# a store deleted and refilled at each run made whichever store's block
# group held more of them several times slower to fill (symlinkat).
warm_runuser="runuser -u $user -- true"
mkdir -p "$work/pulls"
chmod 0755 "$work/pulls"
new_store() { # LINK [USER]: points $work/LINK at a new empty directory
    echo "d=\$(mktemp -d $work/pulls/s.XXXXXX) && chmod 0755 \$d && ${2:+chown $2: \$d &&} ln -sfn \$d $work/$1"
}
as_user_pull="runuser -u $user -- env HOME=$work/home XDG_DATA_HOME=$work/user-pull XDG_CONFIG_HOME=$work/config XDG_RUNTIME_DIR=$work/run"
hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$(json pull)" \
    --prepare "$(new_store root-pull); $fresh" -n "root: barge pull" \
    "$barge --root $work/root-pull/barge pull -q $img" \
    --prepare "$(new_store user-pull "$user"); $fresh; $warm_runuser" -n "user: barge pull" \
    "$as_user_pull $barge pull -q $img" \
    --prepare "$podman rmi -af >/dev/null 2>&1 || true; $fresh; $warm_runuser" -n "user: podman pull" \
    "$podman pull -q --tls-verify=false docker://$img"

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
rows = []
def table(name):
    r = {x["command"]: x["median"] for x in json.load(open(f"{work}/{name}.json"))["results"]}
    print()
    for cmd, t in r.items():
        print(f"  {cmd:36s} median {t * 1000:8.1f} ms")
    return r
def ratio(what, a, b, limit=None):
    v = a / b
    if limit is None:
        rows.append(f"        {what}: {v:.3g}x")
    else:
        rows.append(f"  {'met ' if v <= limit else 'MISS'}  {what}: {v:.3g}x (target <= {limit:g}x)")
s = table("start")
p = table("pull")
# A user types `barge ...`, not `runuser ... barge ...`: the user's rows
# are compared without what runuser alone costs (its own row).
ru = s["runuser -u USER -- true"]
def user(r, cmd):
    return r[cmd] - ru
ratio("run --network none, user / podman rootless", user(s, "user: barge run --network none"), user(s, "user: podman run --network none"), 0.2)
ratio("run, default network, user / podman rootless", user(s, "user: barge run (user-mode)"), user(s, "user: podman run (slirp4netns)"), 0.2)
ratio("run --network none, user / root", user(s, "user: barge run --network none"), s["root: barge run --network none"], 1.2)
ratio("run, default network, user (user-mode) / root (bridge)", user(s, "user: barge run (user-mode)"), s["root: barge run (bridge)"], 1.2)
ratio("pull, user / podman rootless", user(p, "user: barge pull"), user(p, "user: podman pull"))
ratio("pull, user / root", user(p, "user: barge pull"), p["root: barge pull"], 1.2)
print(f"\n(the user's rows include runuser; the ratios take its median, {ru * 1000:.1f} ms, off them)")
print("\ntargets:")
print("\n".join(rows))
PY
