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
# llama.cpp's Python bindings, for evaluating GGUF exports (`occi eval --model FILE.gguf`) and
# k-quants: PyPI has no wheel of it, so pip compiles llama.cpp (~5.5 min on 2 cores; needs cmake
# and g++). The built wheel is kept in $OCCI_WHEELS and reused by later installs and fresh clones.
# OCCI_LLAMA_CPP=0 skips it (GGUF export still works; GGUF evaluation and its tests do not).
LLAMA_CPP="llama-cpp-python==0.3.36"
WHEELS=${OCCI_WHEELS:-$HOME/.cache/occi-wheels}
if [ "${OCCI_LLAMA_CPP:-1}" != 0 ] && ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
    mkdir -p "$WHEELS"
    if ! ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
        if command -v cmake >/dev/null && command -v g++ >/dev/null; then
            echo "install: building $LLAMA_CPP once (about 5 minutes), cached in $WHEELS"
            CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "${PIP[@]}" wheel --no-deps -w "$WHEELS" "$LLAMA_CPP"
        else
            echo "install: $LLAMA_CPP skipped: building it needs cmake and g++ (apt-get install cmake g++)" >&2
        fi
    fi
    # pip takes the cached wheel over the source archive of the same version
    if ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
        "${PIP[@]}" install --find-links "$WHEELS" "$LLAMA_CPP"
    fi
fi
# vLLM for `backend: vllm` and its tests, in its own venv .venv-vllm (scripts/install-vllm.sh says
# why); with --test only. `make test` makes it in the background instead (see the Makefile).
if [ -n "$EXTRAS" ]; then bash scripts/install-vllm.sh; fi
echo "occi installed in $VENV ($("$VENV/bin/occi" --version))"
