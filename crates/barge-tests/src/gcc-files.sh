#!/bin/sh
# Copies the host's C toolchain into the root directory $1 (see gcc_image
# in image.rs; bench/build.sh uses it too).
set -eu
R="$1"
G="$(dirname "$(gcc -print-prog-name=cc1)")"
# Parents made 0755, whatever the host's modes (its /usr/include may be 0700).
copy() { mkdir -p "$R$(dirname "$1")"; cp -a "$1" "$R$1"; }
with_libs() {
    mkdir -p "$R$(dirname "$1")"
    cp -L "$1" "$R$1"
    for l in $(ldd "$1" | grep -o '/[^ ]*'); do
        mkdir -p "$R$(dirname "$l")"
        cp -L "$l" "$R$l"
    done
}
for n in gcc as ld; do
    real="$(readlink -f "$(command -v "$n")")"
    with_libs "$real"
    ln -sf "$real" "$R/usr/bin/$n"
done
ln -sf gcc "$R/usr/bin/cc"
for p in cc1 collect2 lto-wrapper liblto_plugin.so; do with_libs "$G/$p"; done
for f in "$G"/*.o "$G"/libgcc.a "$G"/libgcc_eh.a "$G"/libgcc_s.so "$G"/include; do
    [ -e "$f" ] && copy "$f"
done
dpkg -L libc6-dev linux-libc-dev | while read -r f; do
    if [ -f "$f" ] || [ -L "$f" ]; then copy "$f"; fi
done
