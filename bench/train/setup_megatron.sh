#!/usr/bin/env bash
# Puts the Megatron-LM side of bench/train part 1 under DATA once, so that the benchmark itself
# needs no network:
#   DATA/Megatron-LM   Megatron-LM's source at core_v0.16.1 (commit below), the tag of the
#                      megatron-core in occi's .venv: tools/preprocess_data.py and the packages
#                      it imports besides megatron/core (training, legacy, rl, post_training;
#                      megatron.core comes from the .venv). The megatron-core package on PyPI
#                      ships neither (its sdist holds megatron/core only), so the source comes
#                      from GitHub's archive of that commit, or with --from-git from a clone you have.
#   DATA/triton        triton from PyPI (pip install --target): megatron.training imports it even
#                      for preprocessing, and torch's CPU wheel has none.
# Nothing goes into occi's .venv or the system; no sudo.
#
#   bash bench/train/setup_megatron.sh [--data /tmp/occi-bench] [--from-git GIT_DIR]
set -euo pipefail

COMMIT=55ac7082517c3878ae653c07c09c534b8aed49f6   # tag core_v0.16.1
TRITON=3.9.0
DATA=/tmp/occi-bench
FROM_GIT=
while [ $# -gt 0 ]; do
    case "$1" in
        --data) DATA=$2; shift 2 ;;
        --from-git) FROM_GIT=$2; shift 2 ;;
        *) echo "setup_megatron.sh: unknown argument $1 (use --data DIR, --from-git GIT_DIR)" >&2; exit 2 ;;
    esac
done
PARTS=(tools megatron/training megatron/legacy megatron/rl megatron/post_training)
PY=${PYTHON:-$(cd "$(dirname "$0")/../.." && pwd)/.venv/bin/python}

if [ ! -f "$DATA/Megatron-LM/tools/preprocess_data.py" ]; then
    rm -rf "$DATA/Megatron-LM.tmp" && mkdir -p "$DATA/Megatron-LM.tmp"
    if [ -n "$FROM_GIT" ]; then
        git --git-dir "$FROM_GIT" archive "$COMMIT" "${PARTS[@]}" | tar -x -C "$DATA/Megatron-LM.tmp"
    else
        curl -fsSL "https://github.com/NVIDIA/Megatron-LM/archive/$COMMIT.tar.gz" \
            | tar -xz -C "$DATA/Megatron-LM.tmp" --strip-components 1 \
                "${PARTS[@]/#/Megatron-LM-$COMMIT/}"
    fi
    mv "$DATA/Megatron-LM.tmp" "$DATA/Megatron-LM"
fi
if [ ! -d "$DATA/triton/triton" ]; then
    "$PY" -m pip install --quiet --disable-pip-version-check --target "$DATA/triton.tmp" "triton==$TRITON"
    rm -rf "$DATA/triton" && mv "$DATA/triton.tmp" "$DATA/triton"
fi
echo "Megatron-LM $COMMIT in $DATA/Megatron-LM, triton $TRITON in $DATA/triton"
