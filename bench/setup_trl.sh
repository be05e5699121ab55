#!/usr/bin/env bash
# The separate virtual environment with TRL for bench/sft and bench/dpo (never occi's .venv):
#
#   bash bench/setup_trl.sh [--data /tmp/occi-bench]      (the venv: DATA/venv-trl)
#
# torch and transformers at the versions in occi's .venv, so that both sides run the same kernels.
set -euo pipefail

source "$(dirname "$0")/venv_setup.sh"
venv_setup_args setup_trl.sh "$@"
VENV=$DATA/venv-trl
PACKAGES=(torch==2.13.0 trl transformers==5.24.0 datasets)
venv_ready_or_continue "$VENV" TRL "${PACKAGES[@]}"
"${PYTHON:-python3}" -m venv "$VENV"
"$VENV/bin/pip" --disable-pip-version-check --quiet install "${PACKAGES[@]}"
venv_mark_ready "$VENV" "${PACKAGES[@]}"
echo "TRL's venv is ready in $VENV"
