#!/usr/bin/env bash
# Creates .venv-py at the repo root and installs tributary-ml (python/) with pinned versions
# (pyproject.toml + requirements.lock as constraints). Idempotent: quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' || {
    echo "python/setup.sh: needs Python 3.11 (set PYTHON=...)" >&2; exit 1; }
command -v redis-server >/dev/null 2>&1 || {
    echo "python/setup.sh: redis-server missing (scripts/setup.sh or apt-get install redis-server)" >&2; exit 1; }
stamp=.venv-py/.installed
want=$(cat python/pyproject.toml python/requirements.lock | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
[ -x .venv-py/bin/python ] || "$PY" -m venv .venv-py
.venv-py/bin/python -m pip install -q --upgrade pip
.venv-py/bin/python -m pip install -q -c python/requirements.lock -e 'python[e2e]'
echo "$want" > "$stamp"
echo "python/setup.sh: .venv-py ready"
