#!/bin/sh
# make bench: runs scripts/bench.py (the overhead table) with pyenv's CPython 3.11 when present,
# else python3. Run from anywhere; the table is printed on stdout, progress on stderr.
set -e
cd "$(dirname "$0")/.."
py=$(ls -d "$HOME"/.pyenv/versions/3.11*/bin/python3.11 2>/dev/null | sort -V | tail -n 1)
[ -n "$py" ] && [ -x "$py" ] || py=$(command -v python3)
exec "$py" scripts/bench.py "$@"
