#!/usr/bin/env bash
# What the ops checks need (ops/tests, scripts/check_ops.py), idempotent and quick when present:
#   promtool     from Debian's `prometheus` package (apt-get, as scripts/setup.sh does); the same package's
#                server runs in ops/tests/test_dashboard_png.py
#   .venv-ops/   a small venv with pytest, PyYAML, jsonschema (Compose schema), kubernetes-validate
#                (k8s manifests), python-hcl2 (Terraform syntax) and matplotlib (scripts/render_dashboard.py),
#                pinned below
# Prints the venv's python on its last line. Run the checks with: make -f ops/Makefile.fragment ops-check
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$ROOT/.venv-ops
PINS=(pytest==9.0.3 PyYAML==6.0.3 jsonschema==4.26.0 kubernetes-validate==1.37.0 python-hcl2==8.1.4 matplotlib==3.11.2)

say() { echo "ops-setup: $*" >&2; }

if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { say "need root (or sudo) to apt-get install prometheus (promtool)"; exit 1; }
        sudo="sudo"
    fi
    say "installing prometheus (promtool and the server)"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d-less machines would start the packaged service: we only want the binaries.
    $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
        || { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
fi

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || { say "python3 -m venv failed (apt-get install python3-venv)"; exit 1; }
    # Keeps the venv out of git without touching the repository's .gitignore.
    echo '*' >"$VENV/.gitignore"
fi
if ! "$VENV/bin/python" - "${PINS[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    if version(name) != want:
        sys.exit(1)
PY
then
    say "installing ${PINS[*]} into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}"
fi
echo "$VENV/bin/python"
