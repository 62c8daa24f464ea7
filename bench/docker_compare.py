#!/usr/bin/env python3
"""docker 20.10 and barge, side by side on the same command list.

Usage (as root): bench/docker_compare.py [-v]
Environment: BARGE (a barge binary; default target/release/barge, built if
missing), DOCKER (default /usr/bin/docker, Debian's docker.io).

Starts a dockerd of its own (its own data and exec roots and socket,
--iptables=false --bridge=none: the host's network is never touched),
builds one image FROM scratch with busybox-static in both tools from the
same Dockerfile, then runs every command of ROWS against each, docker
first, and compares exit code and standard output after normalising what
must differ (IDs, times, content hashes in history). Error messages are
shown (-v) but not compared: docker words them as a daemon's replies
("Error response from daemon: …", the runtime's "OCI runtime create
failed: …"), barge as a CLI's ("Error: what failed: why"). Prints one line
per row and the count of rows that match; -v shows both sides of the rows
that differ.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Each row: (name, arguments with {c} for the row's container name, stdin or None).
# Rows run in order; earlier rows create the containers later ones use.
ROWS = [
    ("images table", ["images", "cmp"], None),
    ("images --format", ["images", "--format", "{{.Repository}}:{{.Tag}}"], None),
    ("inspect Config.Cmd", ["inspect", "-f", "{{json .Config.Cmd}}", "cmp:1"], None),
    ("inspect Config.Env", ["inspect", "-f", "{{json .Config.Env}}", "cmp:1"], None),
    ("inspect Entrypoint null", ["inspect", "-f", "{{json .Config.Entrypoint}}", "cmp:1"], None),
    ("inspect Os/Architecture", ["image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", "cmp:1"], None),
    ("inspect range Env", ["inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", "cmp:1"], None),
    ("history columns", ["history", "--format", "{{.CreatedBy}}", "cmp:1"], None),
    ("inspect missing", ["inspect", "nope-nope"], None),
    ("tag", ["tag", "cmp:1", "cmp:2"], None),
    ("rmi tag", ["rmi", "cmp:2"], None),
    ("rmi missing", ["rmi", "nope-nope:1"], None),
    ("run echo", ["run", "--rm", "--network", "none", "cmp:1", "echo", "hi"], None),
    ("run exit code", ["run", "--rm", "--network", "none", "cmp:1", "sh", "-c", "exit 3"], None),
    ("run missing command", ["run", "--rm", "--network", "none", "cmp:1", "nope"], None),
    ("run not executable", ["run", "--rm", "--network", "none", "cmp:1", "/etc/passwd"], None),
    ("run -e", ["run", "--rm", "--network", "none", "-e", "A=1", "cmp:1", "sh", "-c", "echo $A"], None),
    ("run -w", ["run", "--rm", "--network", "none", "-w", "/srv/new", "cmp:1", "pwd"], None),
    ("run -u 1000 id", ["run", "--rm", "--network", "none", "-u", "1000", "cmp:1", "id"], None),
    ("run -u app id", ["run", "--rm", "--network", "none", "-u", "app", "cmp:1", "id"], None),
    ("run id", ["run", "--rm", "--network", "none", "cmp:1", "id"], None),
    ("run --entrypoint args", ["run", "--rm", "--network", "none", "--entrypoint", "echo", "cmp:1", "-e", "a\\tb"], None),
    ("run IMAGE --help goes in", ["run", "--rm", "--network", "none", "cmp:1", "echo", "--help"], None),
    ("run -i stdin", ["run", "--rm", "-i", "--network", "none", "cmp:1", "cat"], "piped\n"),
    ("run -it not a tty", ["run", "--rm", "-it", "--network", "none", "cmp:1", "true"], ""),
    ("run --network host hostname", ["run", "--rm", "--network", "host", "cmp:1", "hostname"], None),
    ("run /etc/hosts", ["run", "--rm", "--network", "none", "--hostname", "box", "cmp:1", "cat", "/etc/hosts"], None),
    ("run --hostname", ["run", "--rm", "--network", "none", "--hostname", "box", "cmp:1", "hostname"], None),
    ("run --add-host", ["run", "--rm", "--network", "none", "--add-host", "db:10.1.2.3", "cmp:1", "grep", "10.1.2.3", "/etc/hosts"], None),
    ("run cap list", ["run", "--rm", "--network", "none", "cmp:1", "grep", "CapEff", "/proc/self/status"], None),
    ("run Seccomp", ["run", "--rm", "--network", "none", "cmp:1", "grep", "^Seccomp:", "/proc/self/status"], None),
    ("run NoNewPrivs", ["run", "--rm", "--network", "none", "cmp:1", "grep", "NoNewPrivs", "/proc/self/status"], None),
    ("run --read-only", ["run", "--rm", "--network", "none", "--read-only", "cmp:1", "touch", "/x"], None),
    ("run --sysctl", ["run", "--rm", "--network", "none", "--sysctl", "kernel.shmmni=1000", "cmp:1", "cat", "/proc/sys/kernel/shmmni"], None),
    ("run bad flag", ["run", "--bogus", "cmp:1"], None),
    ("run missing image", ["run", "--rm", "127.0.0.1:1/nope"], None),
    ("run --privileged CapEff", ["run", "--rm", "--network", "none", "--privileged", "cmp:1", "grep", "CapEff", "/proc/self/status"], None),
    ("run --pid host", ["run", "--rm", "--network", "none", "--pid", "host", "cmp:1", "sh", "-c", "test -d /proc/1 && cat /proc/1/comm"], None),
    ("run --device", ["run", "--rm", "--network", "none", "--device", "/dev/zero:/dev/myzero", "cmp:1", "sh", "-c", "head -c 3 /dev/myzero | od -An -tx1"], None),
    ("run -v NAME", ["run", "--rm", "--network", "none", "-v", "cmpvol:/data", "cmp:1", "sh", "-c", "echo v > /data/f && cat /data/f"], None),
    ("run --tmpfs", ["run", "--rm", "--network", "none", "--tmpfs", "/scratch", "cmp:1", "sh", "-c", "grep -c ' /scratch ' /proc/mounts"], None),
    ("create --name", ["create", "--name", "{c}", "--network", "none", "cmp:1", "sleep", "300"], None),
    ("start", ["start", "{c}"], None),
    ("ps --format", ["ps", "--filter", "name={c}", "--format", "{{.Names}} {{.Image}} {{.Command}} {{.Status}}"], None),
    ("ps -q filter status", ["ps", "-q", "--filter", "status=running", "--filter", "name={c}"], None),
    ("exec echo", ["exec", "{c}", "echo", "in"], None),
    ("exec exit code", ["exec", "{c}", "sh", "-c", "exit 4"], None),
    ("exec missing command", ["exec", "{c}", "nope"], None),
    ("exec -w missing", ["exec", "-w", "/nope", "{c}", "true"], None),
    ("exec -u", ["exec", "-u", "1000", "{c}", "id", "-u"], None),
    ("exec -it not a tty", ["exec", "-it", "{c}", "true"], ""),
    ("cp into", ["cp", "/etc/hostname", "{c}:/tmp/h"], None),
    ("cp read back", ["exec", "{c}", "cat", "/tmp/h"], None),
    ("cp missing", ["cp", "{c}:/nope", "/tmp"], None),
    ("commit", ["commit", "{c}", "cmpc:1"], None),
    ("run committed", ["run", "--rm", "--network", "none", "cmpc:1", "cat", "/tmp/h"], None),
    ("rmi committed", ["rmi", "cmpc:1"], None),
    ("top", ["top", "{c}", "-o", "comm"], None),
    ("update", ["update", "--memory", "64m", "--memory-swap", "128m", "{c}"], None),
    ("inspect updated", ["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}", "{c}"], None),
    ("pause", ["pause", "{c}"], None),
    ("ps paused", ["ps", "--filter", "name={c}", "--format", "{{.Status}}"], None),
    ("unpause", ["unpause", "{c}"], None),
    ("rename", ["rename", "{c}", "{c}-2"], None),
    ("rename back", ["rename", "{c}-2", "{c}"], None),
    ("kill -s BOGUS", ["kill", "-s", "BOGUS", "{c}"], None),
    ("stop", ["stop", "-t", "1", "{c}"], None),
    ("wait", ["wait", "{c}"], None),
    ("inspect State.Status", ["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "{c}"], None),
    ("exec on stopped", ["exec", "{c}", "true"], None),
    ("logs", ["logs", "{c}"], None),
    ("diff", ["diff", "{c}"], None),
    ("rm", ["rm", "{c}"], None),
    ("rm missing", ["rm", "{c}"], None),
    ("logs missing", ["logs", "{c}"], None),
    ("run -d + logs", ["run", "-d", "--name", "{c}-d", "--network", "none", "cmp:1", "sh", "-c", "echo out; echo err >&2"], None),
    ("wait -d", ["wait", "{c}-d"], None),
    ("logs both streams", ["logs", "{c}-d"], None),
    ("rm -f", ["rm", "-f", "{c}-d"], None),
    ("typo verb", ["psx"], None),
    ("attach stopped", ["attach", "{c}-r"], None),
    ("create --restart", ["create", "--name", "{c}-r", "--restart", "on-failure:2", "--network", "none", "cmp:1", "true"], None),
    ("inspect RestartPolicy", ["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}", "{c}-r"], None),
    ("attach to created", ["attach", "{c}-r"], None),
    ("--restart with --rm", ["run", "--rm", "--restart", "always", "cmp:1", "true"], None),
    ("create --health-cmd", ["create", "--name", "{c}-h", "--health-cmd", "true", "--health-interval", "5s", "--network", "none", "cmp:1", "true"], None),
    ("inspect Healthcheck", ["inspect", "-f", "{{json .Config.Healthcheck}}", "{c}-h"], None),
    ("rm created", ["rm", "{c}-r", "{c}-h"], None),
    ("system df types", ["system", "df", "--format", "{{.Type}}"], None),
    ("--mount tmpfs", ["run", "--rm", "--network", "none", "--mount", "type=tmpfs,target=/t", "cmp:1", "sh", "-c", "grep -c ' /t ' /proc/mounts"], None),
    ("volume ls -q", ["volume", "ls", "-q", "--filter", "name=cmpvol"], None),
    ("volume inspect", ["volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Scope}}", "cmpvol"], None),
    ("volume rm", ["volume", "rm", "cmpvol"], None),
    ("container prune", ["container", "prune", "-f"], None),
]

DOCKERFILE = """FROM scratch
COPY rootfs/ /
ENV PATH=/bin
CMD ["sh"]
"""


def normalise(text):
    text = re.sub(r"sha256:[0-9a-f]{64}", "<DIGEST>", text)
    text = re.sub(r"(file|dir):[0-9a-f]{16,}…?", r"\1:<HASH>", text)
    text = re.sub(r"\b[0-9a-f]{64}\b", "<ID>", text)
    text = re.sub(r"\b[0-9a-f]{12}\b", "<ID>", text)
    text = re.sub(r"(About an?|Less than a|\d+) (seconds?|minutes?|hours?|days?|weeks?|months?|years?)( ago)?", "<TIME>", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)", "<DATE>", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    # Column widths follow the widest cell, a time here: compared apart.
    text = re.sub(r" {2,}", "  ", text)
    return text.strip()


def run(argv, stdin, env):
    p = subprocess.run(
        argv,
        input=stdin.encode() if stdin is not None else None,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=120,
    )
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def rootfs(dst):
    bindir = os.path.join(dst, "rootfs/bin")
    os.makedirs(bindir)
    shutil.copy("/bin/busybox", bindir)
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout.split()
    for a in applets:
        if a != "busybox":
            os.symlink("busybox", os.path.join(bindir, a))
    etc = os.path.join(dst, "rootfs/etc")
    os.makedirs(etc)
    with open(os.path.join(etc, "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
    with open(os.path.join(etc, "group"), "w") as f:
        f.write("root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n")
    for d in ["tmp", "root", "home/app", "srv"]:
        os.makedirs(os.path.join(dst, "rootfs", d))
    os.chmod(os.path.join(dst, "rootfs/tmp"), 0o1777)
    with open(os.path.join(dst, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)


def main():
    verbose = "-v" in sys.argv[1:]
    barge = os.environ.get("BARGE") or os.path.join(REPO, "target/release/barge")
    if not os.path.exists(barge):
        subprocess.run(["cargo", "build", "--release", "--bin", "barge"], cwd=REPO, check=True)
    docker = os.environ.get("DOCKER", "/usr/bin/docker")
    if not shutil.which("dockerd") or not os.path.exists(docker):
        subprocess.run(["apt-get", "install", "-y", "-qq", "docker.io", "busybox-static"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    work = tempfile.mkdtemp(prefix="barge-compare.", dir="/var/tmp")
    name = f"cmp{os.getpid()}"
    sock = os.path.join(work, "docker.sock")
    daemon = subprocess.Popen(
        ["dockerd", "--data-root", os.path.join(work, "docker"), "--exec-root", os.path.join(work, "exec"),
         "--pidfile", os.path.join(work, "docker.pid"), "-H", "unix://" + sock,
         "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--bridge=none"],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "dockerd.log"), "w"), start_new_session=True)
    denv = dict(os.environ, DOCKER_HOST="unix://" + sock, DOCKER_CONFIG=os.path.join(work, "docker-config"))
    benv = dict(os.environ, BARGE_ROOT=os.path.join(work, "barge"), BARGE_CONFIG=os.path.join(work, "barge-config"),
                DOCKER_CONFIG=os.path.join(work, "barge-docker-config"))
    try:
        for _ in range(100):
            if run([docker, "version"], None, denv)[0] == 0:
                break
            time.sleep(0.2)
        ctx = os.path.join(work, "ctx")
        rootfs(ctx)
        for tool, env in ((docker, denv), (barge, benv)):
            code, out, err = run([tool, "build", "-q", "-t", "cmp:1", ctx], None, env)
            if code != 0:
                sys.exit(f"{tool} build failed: {err}")
        same = 0
        lines = []
        for label, args, stdin in ROWS:
            args = [a.replace("{c}", name) for a in args]
            d = run([docker] + args, stdin, denv)
            b = run([barge] + args, stdin, benv)
            # Output shown to the user: stdout, and the first line of stderr (the message).
            def shape(r):
                first = r[2].strip().splitlines()[:1]
                return (r[0], normalise(r[1]), normalise(first[0]) if first else "")
            ds, bs = shape(d), shape(b)
            ok = ds[:2] == bs[:2]
            same += ok
            lines.append(f"{'same' if ok else 'DIFF'}  {label}")
            if not ok and verbose:
                lines.append(f"      docker {' '.join(args)}\n        exit {ds[0]} out {ds[1]!r} err {ds[2]!r}")
                lines.append(f"      barge\n        exit {bs[0]} out {bs[1]!r} err {bs[2]!r}")
        print("\n".join(lines))
        print(f"\n{same} of {len(ROWS)} rows match docker {run([docker, 'version', '-f', '{{.Server.Version}}'], None, denv)[1].strip()}")
    finally:
        for tool, env in ((docker, denv), (barge, benv)):
            run([tool, "rm", "-f", name, name + "-d", name + "-r", name + "-h"], None, env)
        daemon.terminate()
        daemon.wait(timeout=30)
        subprocess.run(["umount", "-R", os.path.join(work, "docker")], stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
