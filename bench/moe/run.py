"""bench/moe: moe-tiny against the dense model with the same active parameters, on this machine.

The dense peer is the tiny recipe with its FFN width set to top-k x the expert width (2 x 64 =
128), so a token goes through the same number of MLP weights in both; moe-tiny has 4 such
experts (about 1.6x the total parameters). Both train with `occi train` on the same prepared data
(the same samples in the same order), the same steps, batch and schedule; runs alternate
(moe, dense, moe, dense, ...) because timings on a shared 2-core machine drift. Reported: median
tokens/s over the steps after the first 10, and the training loss (mean of the last 10 steps) and
mean validation loss after the same number of tokens.

    python bench/moe/run.py --work /tmp/bench-moe --steps 300 --repeats 2
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

LANGS = ["de", "fr", "fi", "sv", "et", "pl"]
TRAIN = {"micro_batch_size": 4, "global_batch_size": 8, "warmup_steps": 10, "lr": 0.003, "min_lr": 0.0003,
         "log_interval": 1, "eval_samples": 16}
MODELS = {"moe-tiny": {"recipe": "moe-tiny"}, "dense-same-active": {"recipe": "tiny", "ffn_hidden_size": 128}}


def occi(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "occi.cli", *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"occi {' '.join(args)} failed:\n{result.stderr[-3000:]}")


def config(folder: Path, name: str, model: dict, steps: int) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": "bench-moe", "languages": LANGS, "corpora": {"recipe": "demo", "workers": 1},
        "tokenizer": {"recipe": "demo"}, "model": model,
        "train": {**TRAIN, "steps": steps, "eval_interval": steps, "save_interval": steps}}))
    return path


def measure(log: Path) -> dict:
    records = [json.loads(line) for line in log.read_text().splitlines()]
    train = {r["step"]: r for r in records if r["kind"] == "train"}
    valid = [r for r in records if r["kind"] == "valid"][-1]["loss"]
    steps = sorted(train)
    return {"tokens_per_s": statistics.median(train[s]["tokens_per_s"] for s in steps[10:]),
            "train_loss_last10": statistics.mean(train[s]["loss"] for s in steps[-10:]),
            "valid_loss": statistics.mean(valid.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    prepared = args.work / "prepared"
    if not (prepared / "data" / "_DONE").exists():
        setup = config(args.work, "prepare", MODELS["dense-same-active"], args.steps)
        for stage in (["corpora", "build"], ["tokenizer", "train"], ["data", "prepare"]):
            occi(*stage, str(setup), "--run-dir", str(prepared))
    from occi import config as config_module

    results: dict[str, list[dict]] = {name: [] for name in MODELS}
    for repeat in range(args.repeats):
        for name, model in MODELS.items():
            run_dir = args.work / f"{name}-{repeat}"
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.copytree(prepared, run_dir, ignore=shutil.ignore_patterns("config.yaml", "train", "checkpoints"))
            path = config(args.work, name, model, args.steps)
            occi("train", str(path), "--run-dir", str(run_dir))
            results[name].append(measure(run_dir / "train" / "log.jsonl"))
            print(f"{name} run {repeat + 1}: {results[name][-1]}", flush=True)
    vocab = json.loads((prepared / "data" / "blend.json").read_text())["vocab_size"]
    summary = {}
    for name, runs in results.items():
        shape = config_module.load(str(args.work / f"{name}.yaml")).model
        rows = -(-vocab // 128) * 128
        summary[name] = {"parameters": shape.parameters(rows), "active_parameters": shape.parameters(rows, active=True),
                         **{key: statistics.median(r[key] for r in runs) for key in runs[0]}}
    moe, dense = summary["moe-tiny"], summary["dense-same-active"]
    summary["ratios"] = {"tokens_per_s_moe_over_dense": moe["tokens_per_s"] / dense["tokens_per_s"],
                         "valid_loss_moe_minus_dense": moe["valid_loss"] - dense["valid_loss"],
                         "tokens_per_run": args.steps * TRAIN["global_batch_size"] * 128}
    (args.work / "result.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
