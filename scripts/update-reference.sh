#!/usr/bin/env bash
# Regenerates the reference run's result files (reference/demo/) and the top-level MODEL_CARD.md
# from `occi run demo`. tests/test_pipeline.py checks that MODEL_CARD.md is what `occi card`
# produces from reference/demo/. Usage: scripts/update-reference.sh [RUN_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/demo}
OCCI=${OCCI:-.venv/bin/occi}
"$OCCI" run demo --run-dir "$RUN"
REF=reference/demo
rm -rf "$REF"
mkdir -p "$REF"/corpora "$REF"/tokenizer "$REF"/data "$REF"/train "$REF"/hf "$REF"/eval
cp configs/demo.yaml "$REF"/config.yaml
cp "$RUN"/corpora/stats.json "$REF"/corpora/
cp "$RUN"/tokenizer/report.json "$REF"/tokenizer/
cp "$RUN"/train/log.jsonl "$RUN"/train/summary.json "$REF"/train/
cp "$RUN"/hf/config.json "$REF"/hf/
cp "$RUN"/eval/table-hf.json "$REF"/eval/
# blend.json names files by absolute path: keep only what the card reads, without machine paths
"${OCCI%/occi}/python" - "$RUN"/data/blend.json "$REF"/data/blend.json <<'PY'
import json, sys
blend = json.load(open(sys.argv[1]))
for key in ("tokenizer", "megatron_data_path", "megatron_valid_data_path"):
    blend.pop(key, None)
for entry in blend["languages"].values():
    entry.pop("prefix", None)
    entry.pop("valid_prefix", None)
json.dump(blend, open(sys.argv[2], "w"), indent=2)
PY
"$OCCI" card "$REF"/config.yaml --run-dir "$REF" --out MODEL_CARD.md
echo "reference/demo and MODEL_CARD.md regenerated from $RUN"
