#!/usr/bin/env bash
# The GPU checks of issues #20 and #28 on one GPU node, in under 15 minutes:
#   1. `occi doctor` on the demo config (versions, GPUs, all-reduce, I/O, tiny training at TP = GPUs, export);
#   2. the `1b` recipe for 100 steps in bf16 on random tokens: tokens/s and MFU (target >= 45 %);
#   3. export exactness on GPU, fp32 and bf16, against megatron's logits;
#   4. an async checkpoint, a kill (SIGKILL) and a resume from the last published checkpoint;
#   5. issue #28's knobs: recompute, distributed optimizer with overlap, SP at TP=2, CP=2 (needs TE).
# Usage, from the repository root: bash bench/gpu/run.sh [OUT_DIR]   (PYTHON=... to pick the interpreter)
# Results: OUT_DIR/{doctor.txt,doctor.json,throughput.json,export.json,kill_resume.json,knobs.json,summary.txt}
set -uo pipefail
OUT=${1:-${OUT:-bench/gpu/out}}
PY=${PYTHON:-python}
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/occi-gpu-bench.XXXXXX")
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
status=0
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

step "1/5 occi doctor demo"
timeout 200 "$PY" -m occi.cli doctor demo --run-dir "$WORK/doctor" 2>&1 | tail -n 60 | tee "$OUT/doctor.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
cp "$WORK/doctor/doctor.json" "$OUT/doctor.json" 2>/dev/null || status=1

step "2/5 1b, 100 steps, bf16"
timeout 150 "$PY" bench/gpu/checks.py throughput "$WORK/throughput" "$OUT/throughput.json" || status=1

step "3/5 export exactness on GPU (fp32, bf16)"
timeout 120 "$PY" bench/gpu/checks.py export "$WORK/export" "$OUT/export.json" || status=1

step "4/5 async checkpoint, kill, resume"
timeout 150 "$PY" bench/gpu/checks.py kill-resume "$WORK/kill" "$OUT/kill_resume.json" || status=1

step "5/5 memory and communication knobs (issue #28)"
timeout 400 "$PY" bench/gpu/checks.py knobs "$WORK/knobs" "$OUT/knobs.json" || status=1

step "summary"
"$PY" - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for name in ("throughput", "export", "kill_resume", "knobs"):
    path = out / f"{name}.json"
    print(f"{name:<12}", json.loads(path.read_text()) if path.exists() else "missing")
doctor = out / "doctor.json"
if doctor.exists():
    report = json.loads(doctor.read_text())
    print("doctor      ", "failed:", report["failed"], "warnings:", report["warnings"])
PY
rm -rf "$WORK"
exit "$status"
