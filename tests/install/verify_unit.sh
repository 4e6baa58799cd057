#!/bin/sh
# dtcalld.service as generated for this build, checked by systemd itself:
# `systemd-analyze verify` must say nothing about it, and the offline
# `systemd-analyze security` exposure must stay at or below 2.0 (it is 1.4;
# a weakened unit fails here). verify wants ExecStart's binary to exist, so a
# copy of the unit points at the dtcalld of this build; the man pages of
# Documentation= are looked up in a MANPATH made from man/. Exit 77 (skipped)
# only when systemd-analyze is missing.
set -u

fail() { echo "FAIL: $*"; exit 1; }
command -v systemd-analyze >/dev/null 2>&1 || { echo "SKIP: systemd-analyze not found (Debian: apt-get install systemd)"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dtcall-unit-XXXXXX") || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT

# The copy must keep the name: verify takes the unit name from the file name.
sed "s|^ExecStart=$SBINDIR/dtcalld |ExecStart=$DTCALLD |" "$UNIT" >"$tmp/dtcalld.service"
grep -q "^ExecStart=$DTCALLD --settings " "$tmp/dtcalld.service" || fail "$UNIT: no ExecStart=$SBINDIR/dtcalld line"

man_check=--man=no
if command -v man >/dev/null 2>&1; then
    mkdir -p "$tmp/man/man1" "$tmp/man/man5" "$tmp/man/man8"
    for page in "$MAN_SOURCE"/*.[158]; do cp "$page" "$tmp/man/man${page##*.}/"; done
    MANPATH=$tmp/man
    export MANPATH
    man_check=--man=yes
fi

out=$(cd "$tmp" && systemd-analyze verify $man_check ./dtcalld.service 2>&1)
status=$?
[ -n "$out" ] && printf 'systemd-analyze verify:\n%s\n' "$out"
[ $status -eq 0 ] || fail "systemd-analyze verify exited $status"
# Complaints about other units of this machine are not ours; any about ours fail.
echo "$out" | grep -q dtcalld && fail "systemd-analyze verify has something to say about dtcalld.service"

# Offline security analysis needs systemd 250 or later; older ones skip it.
if systemd-analyze security --help 2>/dev/null | grep -q -- --offline; then
    (cd "$tmp" && systemd-analyze security --offline=true --threshold=20 --no-pager ./dtcalld.service) >"$tmp/security.txt" 2>&1 ||
        { cat "$tmp/security.txt"; fail "systemd-analyze security: exposure above 2.0"; }
    grep "Overall exposure" "$tmp/security.txt"
else
    echo "systemd-analyze security --offline not available: exposure not checked"
fi
echo "PASS: systemd-analyze verify is silent about dtcalld.service ($man_check)"
