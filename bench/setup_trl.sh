#!/usr/bin/env bash
# The separate virtual environment with TRL for bench/sft and bench/dpo (never occi's .venv):
#
#   bash bench/setup_trl.sh [--data /tmp/occi-bench]      (the venv: DATA/venv-trl)
#
# torch and transformers at the versions in occi's .venv, so that both sides run the same kernels.
set -euo pipefail

DATA=/tmp/occi-bench
while [ $# -gt 0 ]; do
    case "$1" in
        --data) DATA=$2; shift 2 ;;
        *) echo "setup_trl.sh: unknown argument $1 (use --data DIR)" >&2; exit 2 ;;
    esac
done
VENV=$DATA/venv-trl
if [ -f "$VENV/.occi-bench-ready" ]; then
    echo "TRL's venv is ready in $VENV"
    exit 0
fi
"${PYTHON:-python3}" -m venv "$VENV"
"$VENV/bin/pip" --disable-pip-version-check --quiet install torch==2.13.0 trl transformers==5.24.0 datasets
touch "$VENV/.occi-bench-ready"
echo "TRL's venv is ready in $VENV"
