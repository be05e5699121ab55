#!/usr/bin/env bash
# Creates .venv (or $OCCI_VENV) with occi and everything it needs, CPU-only.
# Idempotent: re-running only installs what changed. Usage: scripts/install.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${OCCI_VENV:-.venv}
EXTRAS=""
[ "${1:-}" = "--test" ] && EXTRAS="[test]"

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade "pip>=24"
# CPU build first: an unpinned torch requested by a dependency would pull a multi-GB CUDA build.
"$VENV/bin/python" -c "import torch" 2>/dev/null || "${PIP[@]}" install "torch==2.13.0"
"${PIP[@]}" install -e ".$EXTRAS"
echo "occi installed in $VENV ($("$VENV/bin/occi" --version))"
