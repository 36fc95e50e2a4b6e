#!/bin/sh
# Prepare the Python tools the integration tests use (the test agent, Flask, gunicorn), in a private virtualenv
# under the build folder (nothing is installed system-wide).
#
#   scripts/test-env.sh        -> prints the venv path on stdout
#
# Safe to run again and again: when the venv already has ddapm-test-agent it
# returns at once.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
venv="${DDPROF_TEST_VENV:-$root/target/test-venv}"

# jemalloc, for the test that preloads it together with the library (Debian package;
# only root can install it, and the test says it is skipped when it is missing).
if ! ls /usr/lib/*/libjemalloc.so.2 >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get install -y -qq libjemalloc2 >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libjemalloc2 >/dev/null 2>&1; }) \
        || echo "test-env.sh: could not install libjemalloc2; the jemalloc test will be skipped" >&2
fi

# libc's separate debug info (Debian's libc6-dbg), for the test that names libc's internal
# functions from its symbol table; skipped with a message when it cannot be installed.
if [ ! -d /usr/lib/debug/.build-id ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get install -y -qq libc6-dbg >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libc6-dbg >/dev/null 2>&1; }) \
        || echo "test-env.sh: could not install libc6-dbg; the libc debug-file test will be skipped" >&2
fi

if [ -x "$venv/bin/ddapm-test-agent" ] && [ -x "$venv/bin/gunicorn" ] && [ -x "$venv/bin/python" ]; then
    echo "$venv"
    exit 0
fi

py="$HOME/.pyenv/versions/3.11.7/bin/python3.11"
if [ ! -x "$py" ]; then
    py=$(command -v python3 || true)
fi
if [ -z "$py" ]; then
    echo "test-env.sh: no python3 found (looked for ~/.pyenv/versions/3.11.7 and python3 on PATH)" >&2
    exit 1
fi

# A half-made venv (interrupted earlier) is rebuilt from scratch.
if [ ! -x "$venv/bin/python" ]; then
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    "$py" -m venv "$venv" >&2
fi

# ddapm-test-agent: the real Datadog test agent (upload tests); Flask and gunicorn: the
# service the Python-view test profiles.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check ddapm-test-agent flask gunicorn >&2

if [ ! -x "$venv/bin/ddapm-test-agent" ]; then
    echo "test-env.sh: ddapm-test-agent did not install into $venv" >&2
    exit 1
fi
echo "$venv"
