"""bench/eval: the leaderboard over 1,000 result files, and occi's eval overhead over bare lm-eval.

  .venv/bin/python bench/eval/run.py RUN_DIR [--rounds N] [--languages de,fr,...] [--wide]
  (RUN_DIR: a run with corpora and an exported model, e.g. runs/demo after `occi run demo`)

1. writes 1,000 lm-eval results files (40 models x 25 languages, synthetic scores) and times
   `occi leaderboard` on them, as a user runs it (a new process, start-up included);
2. evaluates the offline suite's tasks (bits per byte + occi's MC questions) of the languages
   in one process, after an untimed warm-up, in alternating rounds (median reported):
   - bare: one `lm_eval.simple_evaluate` call over all tasks, model loading included;
   - bare+save: the same, then its results and samples saved with lm-eval's EvaluationTracker
     (what `lm_eval --output_path --log_samples` does; occi saves the same files);
   - occi: `occi.eval.runner.evaluate` (model loading, task files, one call per cell, files saved).
   `--wide` evaluates a wider random Llama with the run's tokenizer (hidden 512, 8 layers)
   instead of the run's model, for a model whose evaluation is not over in milliseconds.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
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
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "occi.cli", "leaderboard", str(folder), "--out", str(folder / "out")],
                   check=True, capture_output=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the command and the child it draws the heatmap in
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    shutil.rmtree(folder)
    return {"files": files, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
            "load_average_1min": os.getloadavg()[0]}


def wide_model(source: Path, target: Path) -> None:
    """A random Llama, hidden 512 x 8 layers, with the run's tokenizer files."""
    import torch
    from transformers import AutoConfig, LlamaConfig, LlamaForCausalLM

    base = AutoConfig.from_pretrained(source)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=base.vocab_size, hidden_size=512, intermediate_size=1408,
                                         num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8,
                                         max_position_embeddings=512, bos_token_id=base.bos_token_id,
                                         eos_token_id=base.eos_token_id, pad_token_id=base.pad_token_id))
    model.save_pretrained(target)
    for path in source.iterdir():
        if path.name.startswith(("tokenizer", "special_tokens")):
            shutil.copy(path, target / path.name)


def overhead_benchmark(run_dir: Path, codes: list[str], rounds: int, wide: bool) -> dict:
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from occi import config
    from occi.eval import runner, tasks
    from occi.rundir import RunDir

    cfg = config.load("demo")
    cfg.languages = codes
    cfg.eval.limit = None
    cfg.eval.device, cfg.eval.dtype = "cpu", "float32"
    work = Path(tempfile.mkdtemp(prefix="occi-evalbench-"))
    shutil.copytree(run_dir / "corpora", work / "corpora")
    if wide:
        wide_model(run_dir / "hf", work / "hf")
    else:
        shutil.copytree(run_dir / "hf", work / "hf")
    tasks_dir, _ = tasks.prepare(cfg, RunDir(work), heldout=True)
    names = [f"occi_{family}_{code}" for code in codes for family in ("bpb", "mc")]

    def bare(save: bool) -> float:
        started = time.perf_counter()
        lm = HFLM(pretrained=str(work / "hf"), device="cpu", dtype="float32", batch_size=cfg.eval.batch_size)
        results = lm_eval.simple_evaluate(model=lm, tasks=names, log_samples=True, random_seed=cfg.seed,
                                          numpy_random_seed=cfg.seed, torch_random_seed=cfg.seed,
                                          fewshot_random_seed=cfg.seed,
                                          task_manager=TaskManager(include_path=[str(tasks_dir), *map(str, tasks.task_folders(RunDir(work)))],
                                                                    include_defaults=False))
        if save:
            tracker = EvaluationTracker(output_path=str(work / "bare"))
            samples = results.pop("samples")
            tracker.save_results_aggregated(results=results, samples=samples)
            for task, task_samples in samples.items():
                tracker.save_results_samples(task_name=task, samples=task_samples)
        return time.perf_counter() - started

    def occi() -> float:
        shutil.rmtree(work / "eval" / "offline", ignore_errors=True)
        started = time.perf_counter()
        runner.evaluate(cfg, RunDir(work), progress=False)
        return time.perf_counter() - started

    # warm-up (untimed): imports, the datasets cache of every task, the model files' first read
    bare(save=False)
    occi()
    times: dict[str, list[float]] = {"bare": [], "bare+save": [], "occi": []}
    for _ in range(rounds):
        times["bare"].append(bare(save=False))
        times["bare+save"].append(bare(save=True))
        times["occi"].append(occi())
    shutil.rmtree(work)
    median = {key: statistics.median(values) for key, values in times.items()}
    return {"tasks": len(names), "rounds": rounds, "model": "wide random Llama (512 x 8)" if wide else str(run_dir / "hf"),
            **{f"{key}_s": round(value, 3) for key, value in median.items()},
            "overhead_vs_bare": round(median["occi"] / median["bare"] - 1, 3),
            "overhead_vs_bare_save": round(median["occi"] / median["bare+save"] - 1, 3)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--languages", default="de,fr,sv,pl,el")
    parser.add_argument("--wide", action="store_true")
    parser.add_argument("--skip-leaderboard", action="store_true")
    args = parser.parse_args()
    if not args.skip_leaderboard:
        board = leaderboard_benchmark()
        print(f"leaderboard over {board['files']} result files: {board['seconds']} s (target < 2 s), "
              f"CPU {board['cpu_seconds']} s, load average {board['load_average_1min']:.2f}", flush=True)
    r = overhead_benchmark(args.run_dir, args.languages.split(","), args.rounds, args.wide)
    print(f"eval of {r['tasks']} tasks on {r['model']}, median of {r['rounds']} rounds: bare simple_evaluate "
          f"{r['bare_s']} s, bare + saving results and samples {r['bare+save_s']} s, occi eval {r['occi_s']} s; "
          f"overhead {r['overhead_vs_bare']:+.1%} vs bare, {r['overhead_vs_bare_save']:+.1%} vs bare+save (target <= 10%)")
