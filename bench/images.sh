#!/bin/sh
# Builds the benchmark images as OCI layouts under $1 (a cache directory),
# once: later runs reuse what a finished earlier run left.
#   busybox/   busybox-static, one layer
#   debian/    debootstrap --variant=minbase, then python3, then gcc: three layers
#   big/       one layer of 1 GiB of incompressible data
# Needs root (debootstrap, chroot) and Debian's package mirror.
# Further arguments name the images to build (default: all three).
set -eu
cache="$1"
shift
mkdir -p "$cache"
names="$*"
want() { [ -z "$names" ] || case " $names " in *" $1 "*) ;; *) return 1 ;; esac; }

new_layout() { # DIR NAME: an empty image unpacked into DIR/bundle
    rm -rf "$1"
    umoci init --layout "$1/layout" >/dev/null
    umoci new --image "$1/layout:$2" >/dev/null
    umoci unpack --image "$1/layout:$2" "$1/bundle" >/dev/null
}

repack() { # DIR NAME: a new layer from what changed in DIR/bundle/rootfs
    umoci repack --refresh-bundle --image "$1/layout:$2" "$1/bundle" >/dev/null
}

if want busybox && [ ! -f "$cache/busybox/done" ]; then
    d="$cache/busybox"
    new_layout "$d" latest
    mkdir -p "$d/bundle/rootfs/bin"
    cp /bin/busybox "$d/bundle/rootfs/bin/"
    for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$d/bundle/rootfs/bin/$a"; done
    repack "$d" latest
    umoci config --image "$d/layout:latest" --config.cmd /bin/sh >/dev/null
    touch "$d/done"
fi

if want debian && [ ! -f "$cache/debian/done" ]; then
    d="$cache/debian"
    new_layout "$d" latest
    root="$d/bundle/rootfs"
    echo "debootstrap --variant=minbase bookworm (a minute or two)..." >&2
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$d/debootstrap.log" 2>&1
    rm -f "$root"/var/cache/apt/archives/*.deb
    repack "$d" latest
    for pkgs in python3 gcc; do
        echo "installing $pkgs..." >&2
        cp "$root/etc/resolv.conf" "$d/resolv.conf.image"
        cp /etc/resolv.conf "$root/etc/resolv.conf"
        mount -t proc proc "$root/proc"
        # shellcheck disable=SC2086
        chroot "$root" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs && apt-get clean" \
            >"$d/apt-$pkgs.log" 2>&1 || { umount "$root/proc"; cat "$d/apt-$pkgs.log" >&2; exit 1; }
        umount "$root/proc"
        rm -rf "$root"/var/lib/apt/lists/*
        cp "$d/resolv.conf.image" "$root/etc/resolv.conf"
        repack "$d" latest
    done
    umoci config --image "$d/layout:latest" --config.cmd /bin/bash >/dev/null
    touch "$d/done"
fi

if want big && [ ! -f "$cache/big/done" ]; then
    d="$cache/big"
    new_layout "$d" latest
    mkdir -p "$d/bundle/rootfs/data"
    i=0
    while [ "$i" -lt 8 ]; do
        head -c 134217728 /dev/urandom >"$d/bundle/rootfs/data/part.$i"
        i=$((i + 1))
    done
    repack "$d" latest
    touch "$d/done"
fi

# What was built, for the results.
for i in busybox debian big; do
    want "$i" || continue
    python3 - "$cache/$i/layout" "$i" <<'PY'
import json, sys
layout, name = sys.argv[1], sys.argv[2]
idx = json.load(open(f"{layout}/index.json"))
digest = idx["manifests"][0]["digest"].split(":")[1]
m = json.load(open(f"{layout}/blobs/sha256/{digest}"))
sizes = [l["size"] for l in m["layers"]]
print(f"  {name}: {len(sizes)} layers, {sum(sizes) / 1e6:.0f} MB compressed ({', '.join(f'{s / 1e6:.0f}' for s in sizes)})", file=sys.stderr)
PY
done
