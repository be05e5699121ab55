"""bench/eval: the leaderboard over 1,000 result files, and occi's eval overhead over bare lm-eval.

  .venv/bin/python bench/eval/run.py RUN_DIR     (a run with an exported model, e.g. runs/demo)

1. writes 1,000 lm-eval results files (40 models x 25 languages, synthetic scores) and times
   `occi leaderboard` on them, as a user runs it (a new process, start-up included);
2. evaluates the same offline tasks (bits per byte + occi's MC questions, 5 languages) twice in
   this process, after an untimed warm-up call: one bare `lm_eval.simple_evaluate` call over all
   tasks (model loading included), and occi's evaluate() (model loading included), which runs one
   cell per language x family and saves lm-eval's files per cell.
"""
from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def leaderboard_benchmark() -> dict:
    from occi import languages

    folder = Path(tempfile.mkdtemp(prefix="occi-board-"))
    codes = list(languages.LANGUAGES)[:25]
    rng = random.Random(0)
    for model in range(40):
        for code in codes:
            tasks = {task: {f"{languages.BENCHMARKS[f][2]},none": rng.random(), f"{languages.BENCHMARKS[f][2]}_stderr,none": 0.01}
                     for f, task in languages.lm_eval_tasks(code).items()}
            path = folder / f"model-{model:02d}" / code / "results_2026-01-01T00-00-00.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"results": tasks, "config": {"model_args": f"pretrained=org/model-{model:02d}"}}))
    files = len(list(folder.rglob("results*.json")))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "occi.cli", "leaderboard", str(folder), "--out", str(folder / "out")],
                   check=True, capture_output=True)
    seconds = time.perf_counter() - started
    shutil.rmtree(folder)
    return {"files": files, "seconds": round(seconds, 2)}


def overhead_benchmark(run_dir: Path) -> dict:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from occi import config
    from occi.eval import runner

    cfg = config.load("demo")
    cfg.languages = ["de", "fr", "sv", "pl", "el"]
    cfg.eval.limit = None
    work = Path(tempfile.mkdtemp(prefix="occi-evalbench-"))
    shutil.copytree(run_dir / "corpora", work / "corpora")
    shutil.copytree(run_dir / "hf", work / "hf")
    tasks_dir = runner.prepare_tasks(cfg, work)
    names = [f"occi_{family}_{code}" for code in cfg.languages for family in ("bpb", "mc")]
    # warm-up (untimed): imports and the model files' first read are paid before either side runs
    lm = HFLM(pretrained=str(work / "hf"), device="cpu", dtype="float32", batch_size=cfg.eval.batch_size)
    lm_eval.simple_evaluate(model=lm, tasks=names[:1], task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False))
    started = time.perf_counter()
    lm = HFLM(pretrained=str(work / "hf"), device="cpu", dtype="float32", batch_size=cfg.eval.batch_size)
    lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False),
                            log_samples=True)
    bare = time.perf_counter() - started
    started = time.perf_counter()
    runner.evaluate(cfg, work, progress=False)
    occi_seconds = time.perf_counter() - started
    shutil.rmtree(work)
    return {"tasks": len(names), "bare_simple_evaluate_s": round(bare, 2), "occi_eval_s": round(occi_seconds, 2),
            "overhead": round(occi_seconds / bare - 1, 3)}


if __name__ == "__main__":
    board = leaderboard_benchmark()
    print(f"leaderboard over {board['files']} result files: {board['seconds']} s (target < 2 s)")
    overhead = overhead_benchmark(Path(sys.argv[1]))
    print(f"eval of {overhead['tasks']} tasks: bare simple_evaluate {overhead['bare_simple_evaluate_s']} s, "
          f"occi eval {overhead['occi_eval_s']} s, overhead {overhead['overhead']:+.1%} (target <= 10%)")
