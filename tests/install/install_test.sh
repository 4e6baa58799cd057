#!/bin/sh
# A user's view of `meson install`: install into a temporary DESTDIR, check
# the installed files are exactly those the README lists (none missing, none
# extra), where the README and the man pages say, build
# examples/embed.cpp against the installed tree with nothing but c++ and
# pkg-config, run it (it serves a whole call on 127.0.0.1 and exits 0), and
# run the installed dtcalld on the installed sample settings. No root needed.
# Directories come from tests/install/meson.build. Exit 77 (skipped) only
# when c++ or pkg-config is missing (or readelf, which comes with the linker).
set -u

fail() { echo "FAIL: $*"; exit 1; }
note() { echo "--- $*"; }

CXX=c++
if [ "$SANITIZE" != none ]; then CXX="$SANITIZE_CXX -fsanitize=$SANITIZE"; fi
for tool in ${CXX%% *} pkg-config readelf; do
    command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not found"; exit 77; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dtcall-install-XXXXXX") || fail "mktemp"
daemon=""
cleanup() {
    [ -n "$daemon" ] && kill -9 "$daemon" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
dest=$tmp/dest

note "meson install --destdir $dest (prefix $PREFIX)"
"$MESON" install -C "$BUILD_ROOT" --destdir "$dest" --no-rebuild --quiet >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; fail "meson install"; }

# --- the install is exactly the README's list ("Install"), by the paths Meson
# was configured with: a missing file fails, and so does any file or link not
# on the list (which also covers anything outside the prefix but the unit).
{
    for f in libdtcall.so libdtcall.so.0 "libdtcall.so.$VERSION" libdtcall.a pkgconfig/dtcall.pc; do
        echo "$LIBDIR/$f"
    done
    (cd "$SOURCE_ROOT/include" && find dtcall ! -type d) | sed "s|^|$INCLUDEDIR/|"
    echo "$SBINDIR/dtcalld"
    echo "$BINDIR/dtcall-keygen"
    echo "$BINDIR/dtcall-users"
    echo "$BINDIR/dtcall-ctl"
    for page in man1/dtcall-keygen.1 man3/libdtcall.3 man5/dtcall-users.5 man5/dtcalld.conf.5 \
        man7/dtcall-protocol.7 man8/dtcall-users.8 man8/dtcalld.8 man8/dtcall-ctl.8; do echo "$MANDIR/$page"; done
    if [ "$BENCH" = true ]; then
        echo "$BINDIR/dtcall-bench"
        echo "$MANDIR/man1/dtcall-bench.1"
    fi
    for f in README.md examples/embed.cpp examples/control.cpp examples/cluster/run-cluster.sh \
        examples/cluster/README.md examples/cluster/call.cpp settings/dtcalld.conf settings/users \
        prometheus/prometheus.yml prometheus/dtcall.rules.yml prometheus/dtcall.rules.test.yml; do echo "$DOCDIR/$f"; done
    [ "$UNITDIR" = no ] || echo "$UNITDIR/dtcalld.service"
} | LC_ALL=C sort >"$tmp/expected"
(cd "$dest" && find . ! -type d) | sed 's|^\.||' | LC_ALL=C sort >"$tmp/installed"
missing=$(LC_ALL=C comm -23 "$tmp/expected" "$tmp/installed")
extra=$(LC_ALL=C comm -13 "$tmp/expected" "$tmp/installed")
[ -z "$missing" ] || fail "not installed: $(echo "$missing" | tr "\n" " ")"
[ -z "$extra" ] || fail "installed but not in the README's list: $(echo "$extra" | tr "\n" " ")"
note "installed exactly the $(wc -l <"$tmp/expected") files of the list"
if [ "$UNITDIR" != no ]; then
    grep -qx "ExecStart=$SBINDIR/dtcalld --settings /etc/dtoperator --log /var/log/dtoperator" \
        "$dest$UNITDIR/dtcalld.service" || fail "dtcalld.service: ExecStart does not name $SBINDIR/dtcalld"
fi

# --- the shared library: versioned SONAME, the unversioned name for -ldtcall.
soname=$(readelf -d "$dest$LIBDIR/libdtcall.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libdtcall.so.0 ] || fail "SONAME is '$soname', not libdtcall.so.0"
# The installed daemon links libdtcall statically and carries no path into
# the build tree (Meson drops the build RPATH on install).
readelf -d "$dest$SBINDIR/dtcalld" | grep -q 'NEEDED.*libdtcall' && fail "dtcalld needs libdtcall.so"
readelf -d "$dest$SBINDIR/dtcalld" | grep -F -q "$BUILD_ROOT" && fail "dtcalld has an RPATH into $BUILD_ROOT"

# --- pkg-config, as a user would call it. PKG_CONFIG_SYSROOT_DIR maps the
# .pc's paths into DESTDIR; --define-prefix cannot (it guesses the prefix two
# levels above the .pc, wrong for a multiarch libdir like lib/x86_64-linux-gnu).
PKG_CONFIG_PATH=$dest$LIBDIR/pkgconfig
PKG_CONFIG_SYSROOT_DIR=$dest
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
pkg-config --exists --print-errors dtcall || fail "pkg-config does not find dtcall"
[ "$(pkg-config --modversion dtcall)" = "$("$dest$SBINDIR/dtcalld" --version | sed 's/^dtcalld //')" ] ||
    fail "dtcall.pc version differs from dtcalld --version"
flags=$(pkg-config --cflags --libs dtcall) || fail "pkg-config --cflags --libs dtcall"
static_libs=$(pkg-config --static --libs dtcall | sed 's/-ldtcall\b/-l:libdtcall.a/') || fail "pkg-config --static"
note "pkg-config --cflags --libs dtcall: $flags"

# --- build the example against the installed tree, three compilers at once:
# exactly the README's command (shared library); the same against libdtcall.a
# with `pkg-config --static` (proves Requires.private); and every installed
# header in one translation unit (each is installed and compiles from there).
cp "$dest$DOCDIR/examples/embed.cpp" "$tmp/embed.cpp"
cflags=$(pkg-config --cflags dtcall)
# shellcheck disable=SC2086  # the flags are separate words on purpose
(cd "$tmp" && $CXX -std=c++17 embed.cpp $flags -o embed) >"$tmp/cc-shared.log" 2>&1 &
shared_pid=$!
# shellcheck disable=SC2086
$CXX -std=c++17 "$tmp/embed.cpp" $cflags $static_libs -o "$tmp/embed-static" >"$tmp/cc-static.log" 2>&1 &
static_pid=$!
# control.cpp: the same command plus libevent_extra (its HTTP API uses evhttp).
cp "$dest$DOCDIR/examples/control.cpp" "$tmp/control.cpp"
control_flags=$(pkg-config --cflags --libs dtcall libevent_extra) || fail "pkg-config --cflags --libs dtcall libevent_extra"
# shellcheck disable=SC2086
(cd "$tmp" && $CXX -std=c++17 control.cpp $control_flags -o control) >"$tmp/cc-control.log" 2>&1 &
control_pid=$!
# examples/cluster/call.cpp: what its own comment says, run below by the
# installed run-cluster.sh --check.
cp "$dest$DOCDIR/examples/cluster/call.cpp" "$tmp/call.cpp"
# shellcheck disable=SC2086
(cd "$tmp" && $CXX -std=c++17 call.cpp $flags -Wl,-rpath,"$dest$LIBDIR" -o call) >"$tmp/cc-call.log" 2>&1 &
call_pid=$!
for h in "$dest$INCLUDEDIR"/dtcall/*.hpp; do printf '#include <dtcall/%s>\n' "${h##*/}"; done >"$tmp/headers.cpp"
# shellcheck disable=SC2086
$CXX -std=c++17 -fsyntax-only $cflags "$tmp/headers.cpp" >"$tmp/cc-headers.log" 2>&1 &
headers_pid=$!
# The private-prefix command of the README: an RPATH instead of LD_LIBRARY_PATH.
# shellcheck disable=SC2086
(cd "$tmp" && $CXX -std=c++17 embed.cpp $flags -Wl,-rpath,"$dest$LIBDIR" -o embed-rpath) >"$tmp/cc-rpath.log" 2>&1 &
rpath_pid=$!
wait "$shared_pid" || { cat "$tmp/cc-shared.log"; fail "c++ -std=c++17 embed.cpp $flags -o embed"; }
wait "$rpath_pid" || { cat "$tmp/cc-rpath.log"; fail "c++ -std=c++17 embed.cpp $flags -Wl,-rpath,$dest$LIBDIR"; }
wait "$static_pid" || { cat "$tmp/cc-static.log"; fail "static link: $static_libs"; }
wait "$headers_pid" || { cat "$tmp/cc-headers.log"; fail "the installed headers do not compile"; }
wait "$control_pid" || { cat "$tmp/cc-control.log"; fail "c++ -std=c++17 control.cpp $control_flags -o control"; }
wait "$call_pid" || { cat "$tmp/cc-call.log"; fail "c++ -std=c++17 call.cpp $flags -o call"; }

readelf -d "$tmp/embed" | grep -q 'NEEDED.*\[libdtcall\.so\.0\]' || fail "embed does not need libdtcall.so.0"
readelf -d "$tmp/embed-static" | grep -q 'NEEDED.*libdtcall' && fail "embed-static needs libdtcall.so"

note "run embed (LD_LIBRARY_PATH=$dest$LIBDIR)"
LD_LIBRARY_PATH=$dest$LIBDIR "$tmp/embed" >"$tmp/embed.log" 2>&1 || { cat "$tmp/embed.log"; fail "embed exited non-zero"; }
grep -q "call ended, exiting" "$tmp/embed.log" || { cat "$tmp/embed.log"; fail "embed did not serve a call"; }
"$tmp/embed-static" >"$tmp/embed-static.log" 2>&1 || { cat "$tmp/embed-static.log"; fail "embed-static exited non-zero"; }
env -u LD_LIBRARY_PATH "$tmp/embed-rpath" >"$tmp/embed-rpath.log" 2>&1 || { cat "$tmp/embed-rpath.log"; fail "embed built with an RPATH exited non-zero"; }
note "run control (LD_LIBRARY_PATH=$dest$LIBDIR)"
LD_LIBRARY_PATH=$dest$LIBDIR "$tmp/control" >"$tmp/control.log" 2>&1 || { cat "$tmp/control.log"; fail "control exited non-zero"; }
grep -q "^\[control\] done" "$tmp/control.log" || { cat "$tmp/control.log"; fail "control did not finish its script"; }

# --- the installed dtcalld on the installed samples, keys by the installed
# dtcall-keygen: what the README's "Run as a service" does, minus root.
note "dtcalld on the sample settings"
settings=$tmp/settings
logs=$tmp/log
mkdir -p "$settings" "$logs" || fail "mkdir"
"$dest$BINDIR/dtcall-keygen" server "$settings" >/dev/null || fail "dtcall-keygen server"
# Free loopback ports, picked the way the process test does (bind 0, close).
ports=$("$PYTHON" -c '
import socket
for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, kind); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
tcp_port=$(echo "$ports" | sed -n 1p)
udp_port=$(echo "$ports" | sed -n 2p)
sed -e "s/^command = 1991 /command = $tcp_port /" -e "s/^media = 1961 /media = $udp_port /" \
    -e 's/^#listen = .*/listen = 127.0.0.1/' "$dest$DOCDIR/settings/dtcalld.conf" >"$settings/dtcalld.conf"
cp "$dest$DOCDIR/settings/users" "$settings/users"
grep -q "^command = $tcp_port " "$settings/dtcalld.conf" && grep -q "^media = $udp_port " "$settings/dtcalld.conf" &&
    grep -q "^listen = 127.0.0.1" "$settings/dtcalld.conf" || fail "sample dtcalld.conf: port or listen lines not found"

"$dest$SBINDIR/dtcalld" --settings "$settings" --log "$logs" </dev/null >"$tmp/dtcalld.out" 2>&1 &
daemon=$!
i=0
while [ $i -lt 100 ] && ! cat "$logs"/*.log 2>/dev/null | grep -q "ready: command port $tcp_port"; do
    kill -0 "$daemon" 2>/dev/null || break
    sleep 0.1
    i=$((i + 1))
done
log=$(cat "$logs"/*.log 2>/dev/null)
echo "$log" | grep -q "ready: command port $tcp_port" || { echo "$log"; cat "$tmp/dtcalld.out"; fail "dtcalld did not start"; }
echo "$log" | grep -q "$settings/users: 0 users" || { echo "$log"; fail "sample users file not read cleanly"; }
echo "$log" | grep -q "open files limit: " || { echo "$log"; fail "no open files limit line"; }
# The samples themselves must not draw warnings (an open-files shortfall on
# this machine would name no line, so it does not match).
echo "$log" | grep ' warn ' | grep -E "dtcalld\.conf:[0-9]|users:[0-9]" && fail "the samples draw warnings"
# Bounded: a watchdog kills it after 5 s, which shows as status 137.
kill -TERM "$daemon"
(sleep 5; kill -9 "$daemon") >/dev/null 2>&1 &
watchdog=$!
wait "$daemon"
status=$?
kill "$watchdog" 2>/dev/null
daemon=""
[ $status -eq 0 ] || fail "dtcalld exited $status after SIGTERM (137: it did not stop within 5 s)"

# --- the installed cluster example, run from where it is installed: it
# must find the installed dtcalld and dtcall-keygen by itself (beside its
# prefix). Needs redis-server; without it this step is left out.
if command -v redis-server >/dev/null 2>&1; then
    note "examples/cluster/run-cluster.sh --check, as installed"
    cluster_script=$dest$DOCDIR/examples/cluster/run-cluster.sh
    [ -x "$cluster_script" ] || fail "$cluster_script is not executable"
    env -u DTCALLD -u DTCALL_KEYGEN -u DTCALL_CTL DTCALL_CLUSTER_CALL="$tmp/call" TMPDIR="$tmp" "$cluster_script" --check \
        >"$tmp/cluster.log" 2>&1 || { cat "$tmp/cluster.log"; fail "the installed run-cluster.sh --check failed"; }
    grep -q "using $dest$SBINDIR/dtcalld, $dest$BINDIR/dtcall-keygen and .*; $dest$BINDIR/dtcall-ctl" "$tmp/cluster.log" ||
        { cat "$tmp/cluster.log"; fail "the installed run-cluster.sh did not use the installed binaries"; }
    grep -q "alice on node1 called bob on node2 with $tmp/call" "$tmp/cluster.log" ||
        { cat "$tmp/cluster.log"; fail "the installed run-cluster.sh did not make a call with call.cpp built here"; }
else
    note "redis-server not found: the installed cluster example is not run"
fi

echo "PASS: installed tree exactly as listed; embed built with pkg-config (shared and static) served a call;"
echo "      dtcalld ran on the sample settings"
