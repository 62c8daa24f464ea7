#!/bin/busybox sh
# PID 1 of the cgroup v2 VM of tests/cgroup2_vm.rs: a systemd-like
# delegated subtree for user 1000, then rootless barge's limits in it and
# out of it. Each result is a "BARGE-VM name value" line on the console.

# The initramfs is rootfs, which pivot_root cannot leave: copied to a
# tmpfs first, and that made the root.
if [ ! -e /.switched ]; then
    /bin/busybox mkdir -p /new
    /bin/busybox mount -t tmpfs -o mode=755 root /new
    /bin/busybox cp -a /bin /usr /lib /lib64 /etc /init /overlay.ko /new/
    /bin/busybox touch /new/.switched
    exec /bin/busybox switch_root /new /init
fi
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
insmod /overlay.ko
mark() { echo "BARGE-VM $*"; }
mark kernel "$(uname -r)"

# systemd's layout: user@1000.service delegated (Delegate=yes) with the
# controllers passed down to it; the user's shell in a leaf inside.
cg=/sys/fs/cgroup
svc=$cg/user.slice/user-1000.slice/user@1000.service
mkdir -p "$svc/shell" "$cg/system.slice"
for d in "$cg" "$cg/user.slice" "$cg/user.slice/user-1000.slice"; do
    echo "+memory +cpu +pids" > "$d/cgroup.subtree_control"
done
chown 1000:1000 "$svc" "$svc/cgroup.procs" "$svc/cgroup.subtree_control" "$svc/cgroup.threads" \
    "$svc/shell" "$svc/shell/cgroup.procs" "$svc/shell/cgroup.subtree_control" "$svc/shell/cgroup.threads"
mark delegated "$(cat "$svc/cgroup.controllers")"

mkdir -p /tmp/u/data /tmp/u/config /tmp/u/run
chown -R 1000:1000 /tmp/u
chmod 700 /tmp/u/run
# The image: busybox and its applets, imported (no registry here).
mkdir -p /tmp/img/bin /tmp/img/proc /tmp/img/sys /tmp/img/dev /tmp/img/etc /tmp/img/tmp
cp /bin/busybox /tmp/img/bin/
for a in sh cat sleep echo true; do ln -s busybox "/tmp/img/bin/$a"; done
tar -C /tmp/img -cf /tmp/img.tar .
chmod 644 /tmp/img.tar

as_user() {
    su -s /bin/sh u -c "export HOME=/tmp/u XDG_DATA_HOME=/tmp/u/data XDG_CONFIG_HOME=/tmp/u/config XDG_RUNTIME_DIR=/tmp/u/run PATH=/bin:/usr/bin; $1"
}

echo $$ > "$svc/shell/cgroup.procs"
as_user 'barge import /tmp/img.tar img >/dev/null' && mark import ok
as_user 'barge run -d --name lim --network none --memory 32m --pids-limit 20 --cpus 0.5 img sleep 600 >/dev/null' \
    && mark detached ok
pid=$(as_user 'barge inspect -f "{{.State.Pid}}" lim')
dir=$cg$(cut -d: -f3 "/proc/$pid/cgroup")
mark in-cgroup "${dir#"$svc"/}"
mark memory.max "$(cat "$dir/memory.max")"
mark pids.max "$(cat "$dir/pids.max")"
mark cpu.max "$(cat "$dir/cpu.max")"
mark stats "$(as_user 'barge stats --no-stream --format "{{.MemUsage}}" lim')"
as_user 'barge update --memory 64m lim >/dev/null' && mark updated "$(cat "$dir/memory.max")"
as_user 'barge pause lim >/dev/null' && mark paused "$(cat "$dir/cgroup.freeze")"
as_user 'barge unpause lim >/dev/null' && mark unpaused "$(cat "$dir/cgroup.freeze")"
as_user 'barge rm -f lim >/dev/null'
[ -e "$dir" ] || mark removed ok
out=$(as_user 'barge run --rm --network none --pids-limit 20 img sh -c "i=0; while [ \$i -lt 40 ]; do sleep 60 & i=\$((i+1)); done; echo forked \$i" 2>&1')
case "$out" in *"can't fork"*) mark pids-enforced ok ;; *) mark pids-enforced "no: $out" ;; esac

# A controller the subtree lacks.
echo -pids > "$svc/cgroup.subtree_control"
echo -pids > "$cg/user.slice/user-1000.slice/cgroup.subtree_control"
mark no-pids "$(as_user 'barge run --rm --network none --pids-limit 5 img true' 2>&1)"

# Not delegated: the shell in a cgroup of root's.
echo $$ > "$cg/system.slice/cgroup.procs"
mark plain-run "$(as_user 'barge run --rm --network none img echo hi' 2>&1)"
mark plain-limit "$(as_user 'barge run --rm --network none --memory 32m img true' 2>&1)"
mark done
poweroff -f
