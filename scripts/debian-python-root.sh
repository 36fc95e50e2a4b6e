#!/bin/sh
# Builds a small Debian unstable root holding CPython 3.14 and 3.15 (interpreters, full
# standard library and the -dev headers, internal/ included), for the tests and for
# scripts/gen-python-offsets.sh, since pyenv here has only 3.8–3.13.
#
#   scripts/debian-python-root.sh [DIR]     -> prints DIR on stdout when it is ready
#
# DIR defaults to <repo>/target/debian-unstable-root. Run it again and again: a root that is
# ready (marker file plus both interpreters) returns at once. The root is built in a temporary
# folder beside DIR and renamed when complete, so an interrupted build never looks ready.
#
# Use it:   chroot DIR /usr/bin/python3.14 …
#           cc -DPy_BUILD_CORE -I DIR/usr/include/python3.14 -idirafter DIR/usr/include …
#             (Debian's pyconfig.h includes <x86_64-linux-gnu/python3.14/pyconfig.h>; -idirafter
#             finds that in the root and keeps the host's libc headers first)
#
# Exit status 3 means "cannot be had here" (not root, no debootstrap, no network, no
# mirror): callers skip the 3.14/3.15 tests. Any other non-zero status is a real failure.
# The host's apt sources are only read (for the mirror), never changed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
dir=${1:-"$root/target/debian-unstable-root"}
marker=.ddprof-root-ready
suite=unstable
packages=python3.14,python3.15-minimal,libpython3.14-dev,libpython3.15-dev,libpython3.15-stdlib

skip() {
    echo "debian-python-root.sh: $*; the CPython 3.14/3.15 tests will be skipped" >&2
    exit 3
}

ready() {
    [ -f "$1/$marker" ] && [ -x "$1/usr/bin/python3.14" ] && [ -x "$1/usr/bin/python3.15" ]
}

if ready "$dir"; then
    echo "$dir"
    exit 0
fi

[ "$(id -u)" = 0 ] || skip "not root (debootstrap and chroot need root)"

# One build at a time (parallel test binaries, make test): the others wait for it, then find
# the root ready.
mkdir -p "$(dirname "$dir")"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$dir.lock"
    flock 9
    if ready "$dir"; then
        echo "$dir"
        exit 0
    fi
fi

# debootstrap from the host's own packages.
if ! command -v debootstrap >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || skip "debootstrap is missing and there is no apt-get to install it"
    apt-get install -y -qq debootstrap >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq debootstrap >/dev/null 2>&1; } \
        || skip "could not install debootstrap with apt-get"
    command -v debootstrap >/dev/null 2>&1 || skip "debootstrap is not on PATH after installing it"
fi

# The Debian mirror the host's apt already uses: deb822 "URIs:" lines first, then the one-line
# sources.list format; security archives are passed over.
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    mirror=$(awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
    [ -n "$mirror" ] && break
done
if [ -z "$mirror" ]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        mirror=$(awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                                   if ($i !~ /security/) { print $i; exit } }' "$f")
        [ -n "$mirror" ] && break
    done
fi
[ -n "$mirror" ] || skip "found no Debian mirror in the host's apt sources"

parent=$(dirname "$dir")
mkdir -p "$parent"
tmp="$dir.tmp.$$"
log="$dir.log"

# Leaves no mount behind (debootstrap mounts proc/sys in the root it builds) and no half root.
unmount_under() {
    awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
}
cleanup() {
    if [ -d "$tmp" ]; then
        unmount_under "$tmp"
        rm -rf "$tmp"
    fi
}
# debootstrap runs in a session of its own, so that a signal to this script stops it (and the
# dpkg and downloads it started) at once instead of after the build.
child=""
stop_child() {
    [ -n "$child" ] || return 0
    kill -TERM -- "-$child" 2>/dev/null || kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
    child=""
}
trap cleanup EXIT
trap 'stop_child; exit 130' INT TERM HUP

# A DIR that exists without being a ready root is not ours to delete (it could be anything).
if [ -e "$dir" ] && ! rmdir "$dir" 2>/dev/null; then
    echo "debian-python-root.sh: $dir exists but is not a ready root (no $marker); remove it to rebuild" >&2
    exit 1
fi
# Temporary roots left by builds that were killed (their process is gone) are removed.
for t in "$dir".tmp.*; do
    [ -d "$t" ] || continue
    kill -0 "${t##*.tmp.}" 2>/dev/null && continue
    unmount_under "$t"
    rm -rf "$t"
done

echo "debian-python-root.sh: building Debian $suite root with CPython 3.14/3.15 from $mirror (1-2 minutes, log: $log)" >&2
setsid debootstrap --variant=minbase --include="$packages" "$suite" "$tmp" "$mirror" >"$log" 2>&1 </dev/null 9>&- &
child=$!
status=0
wait "$child" || status=$?
child=""
if [ "$status" != 0 ]; then
    tail -n 5 "$log" >&2 || true
    skip "debootstrap of Debian $suite from $mirror failed with status $status (network or package names? see $log)"
fi
unmount_under "$tmp"

# apt inside the root (e.g. to add gdb later) must accept a mirror whose Release has expired.
mkdir -p "$tmp/etc/apt/apt.conf.d"
printf 'Acquire::Check-Valid-Until "false";\n' > "$tmp/etc/apt/apt.conf.d/99ddprof-no-valid-until"

for v in 3.14 3.15; do
    [ -x "$tmp/usr/bin/python$v" ] || { echo "debian-python-root.sh: $tmp/usr/bin/python$v is missing" >&2; exit 1; }
    chroot "$tmp" "/usr/bin/python$v" -c 'import threading, sys; sys.exit(0)' \
        || { echo "debian-python-root.sh: python$v in the root does not run" >&2; exit 1; }
    [ -f "$tmp/usr/include/python$v/internal/pycore_frame.h" ] \
        || { echo "debian-python-root.sh: no internal headers for $v in the root" >&2; exit 1; }
done

# The headers must compile with the host's compiler (the offset generator runs on the host).
cc=${CC:-cc}
if command -v "$cc" >/dev/null 2>&1; then
    for v in 3.14 3.15; do
        printf '%s\n' '#include <Python.h>' '#include "internal/pycore_frame.h"' \
            '#include "internal/pycore_runtime.h"' \
            'int main(void) { return sizeof(_PyInterpreterFrame) == 0; }' > "$tmp/tmp/hdrcheck.c"
        # Debian's python3.X/pyconfig.h includes <x86_64-linux-gnu/python3.X/pyconfig.h>:
        # -idirafter finds it in the root while the host's own libc headers still come first.
        set -- -DPy_BUILD_CORE -I"$tmp/usr/include/python$v" -idirafter "$tmp/usr/include"
        "$cc" "$@" -o "$tmp/tmp/hdrcheck" "$tmp/tmp/hdrcheck.c" \
            || { echo "debian-python-root.sh: the host's $cc cannot compile against the $v headers" >&2; exit 1; }
        "$tmp/tmp/hdrcheck"
        rm -f "$tmp/tmp/hdrcheck" "$tmp/tmp/hdrcheck.c"
    done
fi

{
    echo "suite=$suite"
    echo "mirror=$mirror"
    echo "packages=$packages"
    for v in 3.14 3.15; do
        echo "python$v=$(chroot "$tmp" "/usr/bin/python$v" -c 'import sys; print(sys.version.split()[0])')"
    done
} > "$tmp/$marker"
mv "$tmp" "$dir"
echo "$dir"
