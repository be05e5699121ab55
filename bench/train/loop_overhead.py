"""bench/train, part 2: `occi train` against a bare megatron-core loop on the same tiny config.

  .venv/bin/python bench/train/loop_overhead.py RUN_DIR [STEPS]

RUN_DIR is a run with prepared data (e.g. runs/demo after `occi run demo`). Both loops train the
demo's `tiny` model for STEPS steps (default 200) on a copy of its data, one process each, one
after the other; the figure is the median tokens/s over steps 21..STEPS (start-up excluded).
occi's validation and checkpoint intervals are set beyond the run, as a long run would have them
relative to a step; its per-step logging and signal check stay on.
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def main(run_dir: Path, steps: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="occi-loop-"))
    demo = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    demo["train"] = {**demo["train"], "steps": steps, "log_interval": 1, "eval_interval": 10 * steps,
                     "save_interval": 10 * steps, "warmup_steps": 2}
    config = work / "bench.yaml"
    config.write_text(yaml.safe_dump(demo))
    for name in ("occi", "bare"):
        (work / name).mkdir()
        for part in ("corpora", "tokenizer", "data"):
            shutil.copytree(run_dir / part, work / name / part)
    subprocess.run([sys.executable, "-m", "occi.cli", "train", str(config), "--run-dir", str(work / "occi")],
                   check=True, capture_output=True)
    occi_rates = [r["tokens_per_s"] for r in map(json.loads, (work / "occi" / "train" / "log.jsonl").read_text().splitlines())
                  if r["kind"] == "train" and r["step"] > 20]
    bare = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
                           str(REPO / "bench" / "train" / "bare_loop.py"), str(config), str(work / "bare"), str(steps)],
                          check=True, capture_output=True, text=True)
    bare_rates = [r["tokens_per_s"] for r in (json.loads(line) for line in bare.stdout.splitlines() if line.startswith("{"))
                  if r["step"] > 20]
    occi_median, bare_median = statistics.median(occi_rates), statistics.median(bare_rates)
    print(f"tiny model, {steps} steps, median tokens/s over steps 21..{steps}: occi {occi_median:,.0f}, "
          f"bare megatron-core loop {bare_median:,.0f}, ratio {occi_median / bare_median:.3f} (target >= 0.95)")
    shutil.rmtree(work)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 200)
