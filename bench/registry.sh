# Sourced by the bench scripts: what they all start with (the Debian
# packages they need, the barge binary they time) and docker-registries on
# loopback, under $work. Each registry records its pid in $work/NAME.pid
# (they start in command substitutions, which are subshells): the caller's
# EXIT trap kills them.

needs() { # PACKAGE...: installs those that are missing
    dpkg-query -W "$@" >/dev/null 2>&1 || {
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    }
}

barge_binary() { # prints the barge to time: $BARGE, else a release build of this tree
    if [ -n "${BARGE:-}" ]; then
        echo "$BARGE"
        return
    fi
    cargo build --release --bin barge >&2
    echo "${CARGO_TARGET_DIR:-$(pwd)/target}/release/barge"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

registry() { # NAME: a docker-registry on loopback, access log in $work/NAME.log; prints its host
    port="$(free_port)"
    cat >"$work/$1.yml" <<YML
version: 0.1
log: {level: info, formatter: text, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: $work/$1-data}}
http: {addr: 127.0.0.1:$port}
YML
    docker-registry serve "$work/$1.yml" >"$work/$1.log" 2>&1 &
    echo "$!" >"$work/$1.pid"
    until python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null; do sleep 0.1; done
    echo "127.0.0.1:$port"
}
