#!/bin/sh
# A dtcall cluster on this machine, to try: one redis-server on a Unix socket
# and three dtcalld nodes on 127.0.0.1, each with its own settings directory
# made here the way an operator would make them (one server key pair, one
# users file and one cluster key, copied to every node). See README.md.
#
#   run-cluster.sh [--dir DIR] [--base-port N]   start, print where, run until Ctrl-C
#   run-cluster.sh [--dir DIR] stop               stop the cluster started in DIR
#   run-cluster.sh --check                        start, wait until the three nodes
#                                                 are in Redis, ask each for its status
#                                                 and metrics, make a call from node1 to
#                                                 node2 (when `call` is built), stop;
#                                                 exit 0 or 1
#
# Binaries: $DTCALLD, $DTCALL_KEYGEN, $DTCALL_CTL and $DTCALL_CLUSTER_CALL
# when set; else `--build DIR` (a Meson build directory); else the build/
# directory of the source tree this script is in; else the installed ones
# (beside this script's prefix, the PATH, /usr/local/sbin, /usr/sbin; `call`
# is not installed: build it from call.cpp). redis-server from the PATH or
# $REDIS_SERVER.
set -u

here=$(cd "$(dirname "$0")" && pwd)
mode=run
dir=""
build=""
base_port=""
nodes="node1 node2 node3"
ttl=6

say() { echo "run-cluster: $*"; }
die() { echo "run-cluster: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
    stop) mode=stop ;;
    --check) mode=check ;;
    --dir) [ $# -ge 2 ] || die "--dir needs a directory"; dir=$2; shift ;;
    --build) [ $# -ge 2 ] || die "--build needs a Meson build directory"; build=$2; shift ;;
    --base-port)
        [ $# -ge 2 ] || die "--base-port needs a number"
        case "$2" in *[!0-9]* | "") die "--base-port: \"$2\" is not a number" ;; esac
        if [ "$2" -lt 1024 ] || [ "$2" -gt 65000 ]; then die "--base-port: $2 is not in 1024-65000"; fi
        base_port=$2; shift ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument \"$1\" (try --help)" ;;
    esac
    shift
done

# --check picks its ports from its pid, so that two checks at once (a CI
# running tests in parallel) seldom meet, below the kernel's ephemeral range
# (32768-60999: sockets bound to port 0 get those; a check uses BASE+1 to
# BASE+303, and BASE is at most 31600); and when a port is taken anyway it
# tries again with others (CHECK_ATTEMPT counts, up to 3).
attempt=${CHECK_ATTEMPT:-1}
if [ -z "$base_port" ]; then
    if [ "$mode" = check ]; then
        base_port=$((10000 + (($$ + attempt * 7) % 55) * 400))
    else
        base_port=20000
    fi
fi

# The state directory: fixed by default so that `stop` finds it from another
# terminal; a fresh one for --check, which must never meet a cluster someone
# is trying by hand.
if [ -z "$dir" ]; then
    if [ "$mode" = check ]; then
        dir=$(mktemp -d "${TMPDIR:-/tmp}/dtcall-cluster-check-XXXXXX") || die "mktemp failed"
    else
        dir="${TMPDIR:-/tmp}/dtcall-cluster-$(id -u)"
    fi
fi

# --- stop ------------------------------------------------------------------
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

stop_all() {
    [ -f "$dir/pids" ] || return 0
    # The nodes first (SIGTERM: they end their calls and close politely),
    # then Redis.
    while read -r name pid; do
        [ "$name" = redis ] || { alive "$pid" && kill -TERM "$pid" 2>/dev/null; }
    done <"$dir/pids"
    while read -r name pid; do
        [ "$name" = redis ] && continue
        n=0
        while alive "$pid" && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
        alive "$pid" && { say "$name (pid $pid) did not stop within 5 s; killing it"; kill -KILL "$pid" 2>/dev/null; }
    done <"$dir/pids"
    while read -r name pid; do
        [ "$name" = redis ] || continue
        alive "$pid" && kill -TERM "$pid" 2>/dev/null
        n=0
        while alive "$pid" && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
    done <"$dir/pids"
    rm -f "$dir/pids"
}

if [ "$mode" = stop ]; then
    [ -f "$dir/pids" ] || die "no cluster runs in $dir (nothing to stop)"
    stop_all
    say "stopped the cluster in $dir (its logs stay in $dir/node*/log)"
    exit 0
fi

# --- binaries ----------------------------------------------------------------
# The first of the candidates that is an executable file.
first_of() {
    for f in "$@"; do [ -n "$f" ] && [ -f "$f" ] && [ -x "$f" ] && { echo "$f"; return 0; }; done
    return 1
}
on_path() { command -v "$1" 2>/dev/null || true; }
# Installed: this script is in PREFIX/share/doc/dtcall/examples/cluster.
prefix=$(cd "$here/../../../../.." 2>/dev/null && pwd)
source_build="$here/../../build"
[ -n "$build" ] && source_build=$build

dtcalld=$(first_of "${DTCALLD:-}" "$source_build/dtcalld/dtcalld" "$prefix/sbin/dtcalld" "$(on_path dtcalld)" \
    /usr/local/sbin/dtcalld /usr/sbin/dtcalld) ||
    die "dtcalld not found: build it (meson setup build && ninja -C build), give --build DIR, or set DTCALLD"
keygen=$(first_of "${DTCALL_KEYGEN:-}" "$source_build/dtcalld/dtcall-keygen" "$prefix/bin/dtcall-keygen" \
    "$(on_path dtcall-keygen)") ||
    die "dtcall-keygen not found: give --build DIR or set DTCALL_KEYGEN"
ctl=$(first_of "${DTCALL_CTL:-}" "$source_build/dtcalld/dtcall-ctl" "$prefix/bin/dtcall-ctl" "$(on_path dtcall-ctl)") ||
    die "dtcall-ctl not found: give --build DIR or set DTCALL_CTL"
# The example call program (call.cpp), built with the examples; optional.
call_places="${DTCALL_CLUSTER_CALL:+$DTCALL_CLUSTER_CALL }$source_build/examples/call"
# shellcheck disable=SC2086  # one candidate per word
call_program=$(first_of $call_places) || call_program=""
redis_server=$(first_of "${REDIS_SERVER:-}" "$(on_path redis-server)") ||
    die "redis-server not found (Debian: apt-get install redis-server)"
redis_cli=$(on_path redis-cli)
say "using $dtcalld, $keygen and $redis_server; $ctl"

# --- the state directory -----------------------------------------------------
if [ -f "$dir/pids" ]; then
    while read -r name pid; do
        alive "$pid" && die "a cluster already runs in $dir ($name, pid $pid); stop it with: $0 --dir $dir stop"
    done <"$dir/pids"
fi
rm -rf "$dir/shared" "$dir/redis" "$dir/node1" "$dir/node2" "$dir/node3" "$dir/pids"
mkdir -p "$dir" || die "cannot create $dir"
chmod 700 "$dir"

# --- what every node shares, made once ------------------------------------------
shared=$dir/shared
mkdir -p "$shared"
"$keygen" server "$shared" >/dev/null || die "dtcall-keygen server failed"
: >"$shared/users"
for user in alice bob carol; do
    "$keygen" "$user" "$shared" >/dev/null || die "dtcall-keygen $user failed"
    echo "$user > ${user}_public.na" >>"$shared/users"
done
"$keygen" --cluster-key "$shared/cluster.key" >/dev/null || die "dtcall-keygen --cluster-key failed"

# --- Redis -------------------------------------------------------------------
mkdir -p "$dir/redis"
socket=$dir/redis/redis.sock
"$redis_server" --port 0 --unixsocket "$socket" --unixsocketperm 700 --save "" --appendonly no \
    --dir "$dir/redis" --daemonize no --logfile "$dir/redis/redis.log" &
echo "redis $!" >"$dir/pids"
n=0
until [ -S "$socket" ] && { [ -z "$redis_cli" ] || [ "$("$redis_cli" -s "$socket" ping 2>/dev/null)" = PONG ]; }; do
    n=$((n + 1))
    [ $n -lt 100 ] || { stop_all; die "redis-server did not answer within 10 s; see $dir/redis/redis.log"; }
    sleep 0.1
done

# --- the nodes ---------------------------------------------------------------
# Node i: command port BASE+i (TCP), media port BASE+100+i (UDP), node
# address 127.0.0.1:BASE+200+i (UDP, node-to-node media), metrics on
# http://127.0.0.1:BASE+300+i/metrics, and the control socket for dtcall-ctl
# in its settings directory (`control = control`: relative paths are taken
# from there).
i=0
for node in $nodes; do
    i=$((i + 1))
    settings=$dir/$node/settings
    mkdir -p "$settings" "$dir/$node/log"
    # What an operator copies to each node; cp -p keeps the keys' mode 0600.
    cp -p "$shared/server_public.na" "$shared/server_private.na" "$shared/cluster.key" "$shared/users" \
        "$shared/alice_public.na" "$shared/bob_public.na" "$shared/carol_public.na" "$settings/"
    cat >"$settings/dtcalld.conf" <<EOF
# $node of the example cluster (examples/cluster/run-cluster.sh)
command = $((base_port + i))
media = $((base_port + 100 + i))
listen = 127.0.0.1
public_sodium = server_public.na
private_sodium = server_private.na
users = users
cluster_redis = unix:$socket
node_name = $node
node_address = 127.0.0.1:$((base_port + 200 + i))
cluster_key = cluster.key
cluster_ttl = $ttl
control = control
metrics = 127.0.0.1:$((base_port + 300 + i))
EOF
    "$dtcalld" --settings "$settings" --log "$dir/$node/log" >"$dir/$node/stdout.txt" 2>"$dir/$node/stderr.txt" &
    echo "$node $!" >>"$dir/pids"
done

trap 'echo; say "stopping"; stop_all; say "stopped (logs in $dir/node*/log)"; exit 0' INT TERM

# Every node is up ("ready:" in its log) and linked to Redis.
node_log() { cat "$dir/$1/log"/*.log 2>/dev/null; }
node_pid() { sed -n "s/^$1 //p" "$dir/pids"; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    limit=$1 what=$2
    shift 2
    n=0
    until "$@"; do
        n=$((n + 1))
        [ $n -lt $((limit * 10)) ] || return 1
        for node in $nodes; do
            alive "$(node_pid "$node")" || {
                say "$node stopped while waiting until $what:"
                tail -n 5 "$dir/$node/stderr.txt" >&2
                node_log "$node" | tail -n 5 >&2
                return 1
            }
        done
        sleep 0.1
    done
}
all_ready() { for node in $nodes; do node_log "$node" | grep -q "ready: command port" || return 1; done; }
all_linked() { for node in $nodes; do node_log "$node" | grep -q "): connected" || return 1; done; }
# Each node's heartbeat key is in Redis, so each hears the others' hellos
# (without redis-cli: one heartbeat period after they all connected).
all_in_redis() {
    if [ -n "$redis_cli" ]; then
        keys=""
        for node in $nodes; do keys="$keys dtcall:alive:$node"; done
        # shellcheck disable=SC2086  # one key per word
        [ "$("$redis_cli" -s "$socket" exists $keys 2>/dev/null)" = 3 ] &&
            [ "$("$redis_cli" -s "$socket" scard dtcall:nodes 2>/dev/null)" = 3 ]
    else
        sleep $((ttl / 3 + 1))
    fi
}

fail_and_stop() {
    if [ "$mode" = check ] && [ "$attempt" -lt 3 ] && cat "$dir"/node*/log/*.log 2>/dev/null | grep -q "already in use"; then
        say "a port of $base_port-$((base_port + 303)) is taken; trying other ports"
        stop_all
        rm -rf "$dir"
        CHECK_ATTEMPT=$((attempt + 1)) exec "$0" --check ${build:+--build "$build"}
    fi
    say "FAILED: $*"
    for node in $nodes; do
        echo "--- $node log (last lines):" >&2
        node_log "$node" | tail -n 8 >&2
    done
    stop_all
    exit 1
}

wait_for 20 "it is ready" all_ready || fail_and_stop "the three nodes were not all ready within 20 s"
wait_for 20 "it reaches Redis" all_linked || fail_and_stop "the three nodes did not all reach Redis within 20 s"
wait_for 20 "the nodes are in Redis" all_in_redis ||
    fail_and_stop "the three nodes were not all in Redis (dtcall:alive:NODE, dtcall:nodes) within 20 s"

# What a newcomer does next, checked: each node answers dtcall-ctl status,
# says it is linked to Redis in /metrics (with curl or wget, when either is
# here), and alice on node1 calls bob on node2 (when `call` is built).
fetch=""
if command -v curl >/dev/null 2>&1; then fetch="curl -fsS --max-time 5"
elif command -v wget >/dev/null 2>&1; then fetch="wget -q -T 5 -O -"
fi
check_tools() {
    i=0
    for node in $nodes; do
        i=$((i + 1))
        "$ctl" --control "$dir/$node/settings/control" status >"$dir/$node/status.txt" 2>&1 ||
            fail_and_stop "$node: dtcall-ctl --control $dir/$node/settings/control status failed: $(cat "$dir/$node/status.txt")"
        if [ -n "$fetch" ]; then
            url=http://127.0.0.1:$((base_port + 300 + i))/metrics
            # shellcheck disable=SC2086  # the fetch command is several words
            $fetch "$url" >"$dir/$node/metrics.txt" 2>&1 || fail_and_stop "$node: $fetch $url failed"
            grep -q '^dtcall_cluster_redis_connected 1$' "$dir/$node/metrics.txt" ||
                fail_and_stop "$node: $url has no \"dtcall_cluster_redis_connected 1\""
        fi
    done
    if [ -n "$fetch" ]; then
        say "each node answers dtcall-ctl status, and its /metrics says dtcall_cluster_redis_connected 1"
    else
        say "each node answers dtcall-ctl status (neither curl nor wget here: /metrics not checked)"
    fi
    if [ -n "$call_program" ]; then
        "$call_program" "$shared" "alice@127.0.0.1:$((base_port + 1)):$((base_port + 101))" \
            "bob@127.0.0.1:$((base_port + 2)):$((base_port + 102))" >"$dir/call.txt" 2>&1 ||
            { cat "$dir/call.txt" >&2; fail_and_stop "alice on node1 could not call bob on node2 ($call_program)"; }
        say "alice on node1 called bob on node2 with $call_program: $(grep '^media:' "$dir/call.txt")"
    else
        say "no call program found (looked for: $call_places): the cross-node call is not tried"
    fi
}

if [ "$mode" = check ]; then
    check_tools
    say "OK: redis-server and $nodes are up and see each other through Redis"
    stop_all
    rm -rf "$dir"
    exit 0
fi

cat <<EOF

A dtcall cluster runs in $dir:
  Redis      unix:$socket
EOF
i=0
for node in $nodes; do
    i=$((i + 1))
    cat <<EOF
  $node      command 127.0.0.1:$((base_port + i)) (TCP), media 127.0.0.1:$((base_port + 100 + i)) (UDP),
             node address 127.0.0.1:$((base_port + 200 + i)) (UDP, from the other nodes),
             metrics http://127.0.0.1:$((base_port + 300 + i))/metrics,
             control $dir/$node/settings/control, log in $dir/$node/log
EOF
done
cat <<EOF

Users alice, bob and carol may log in to any node; their key pairs and the
server's public key (which clients pin) are in $shared.
Each node's settings directory ($dir/node1/settings, ...) is what you would
copy to a real machine.

Who is online on node1:  $ctl --control $dir/node1/settings/control users
Its metrics:             curl -s http://127.0.0.1:$((base_port + 301))/metrics | grep ^dtcall_cluster
EOF
if [ -n "$call_program" ]; then
    echo "A call from node1 to node2:"
    echo "  $call_program $shared alice@127.0.0.1:$((base_port + 1)):$((base_port + 101)) bob@127.0.0.1:$((base_port + 2)):$((base_port + 102))"
else
    echo "A call from node1 to node2: build examples/cluster/call.cpp (ninja -C build examples/call), see README.md"
fi
[ -n "$redis_cli" ] && echo "What Redis holds: $redis_cli -s $socket hgetall dtcall:users:node1"
cat <<EOF

Stop with Ctrl-C, or from another terminal: $0 --dir $dir stop
EOF

# Until Ctrl-C, a `stop`, or every process gone.
while :; do
    [ -f "$dir/pids" ] || { say "stopped"; exit 0; }  # by `stop` from another terminal
    running=0
    while read -r name pid; do alive "$pid" && running=$((running + 1)); done <"$dir/pids"
    if [ "$running" -eq 0 ]; then say "everything has stopped"; exit 0; fi
    sleep 1 &
    wait $! 2>/dev/null
done
