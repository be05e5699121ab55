"""bench/import: `occi import` of a ~1B random Llama (bf16, 3 safetensors shards, made here) against
transformers' AutoModelForCausalLM.from_pretrained of the same folder: wall time and peak memory.

Each measurement runs in a fresh process that reports its own peak resident memory (ru_maxrss);
the two are alternated, `--repeats` times each, because timings on a shared machine vary by up
to 40 %. Each also reports its CPU time (user + system), which depends less on the other jobs of
a shared machine than the wall time does. The import runs at TP=1 PP=1 in-process, as `occi
import` does for one rank. `--baseline DIR` adds a row: the import of another checkout of occi
(e.g. `git archive COMMIT occi | tar -x -C DIR`), alternated with the others, for a before/after
measured side by side.

    .venv/bin/python bench/import/run.py [--work DIR] [--repeats 2] [--baseline DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHAPE = dict(vocab_size=32000, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
             num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=4096)

IMPORT = """
import resource, sys, time
started = time.monotonic()
from occi.cli import main
code = main(["import", sys.argv[1], "--run-dir", sys.argv[2]])
usage = resource.getrusage(resource.RUSAGE_SELF)
print("RESULT", code, time.monotonic() - started, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
"""
HF = """
import resource, sys, time
started = time.monotonic()
import torch
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.bfloat16)
if len(sys.argv) > 2:  # read every weight once: transformers 5 maps the shards and reads lazily
    total = sum(float(p.detach().float().sum()) for p in model.parameters())
usage = resource.getrusage(resource.RUSAGE_SELF)
print("RESULT", 0, time.monotonic() - started, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
"""


def make_base(folder: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if (folder / "config.json").exists():
        return
    torch.manual_seed(0)
    config = LlamaConfig(**SHAPE, tie_word_embeddings=False, dtype="bfloat16")
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model = model.to_empty(device="cpu").to(torch.bfloat16)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(1.0 if param.ndim == 1 else 0.0, 0.02)
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="1GB")
    (folder / "tokenizer.json").write_text(json.dumps({
        "version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": None, "post_processor": None,
        "decoder": None, "model": {"type": "WordLevel", "vocab": {f"w{i}": i for i in range(SHAPE["vocab_size"])},
                                   "unk_token": "w0"}}))


def measure(code: str, *args: str, root: Path = ROOT) -> tuple[float, float, float]:
    """(wall seconds, peak MB, CPU seconds) of `code` in a fresh process importing occi from `root`."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    # run in `root`: `python -c` puts the working folder ahead of PYTHONPATH on sys.path
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=root)
    line = next((l for l in result.stdout.splitlines() if l.startswith("RESULT")), None)
    if line is None or line.split()[1] != "0":
        raise RuntimeError(result.stderr[-3000:])
    _, _, seconds, kb, cpu = line.split()
    return float(seconds), int(kb) / 1024, float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="/tmp/occi-bench-import")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="another checkout of occi whose import is measured alongside")
    parser.add_argument("--make-base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_base:
        make_base(Path(args.make_base))
        return
    work = Path(args.work)
    base = work / "base"
    # in its own process: Linux keeps a process's peak resident memory across fork and exec, so a
    # parent that held the model would lend its peak to every measurement below
    subprocess.run([sys.executable, __file__, "--make-base", str(base)], check=True)
    shards = sorted(base.glob("*.safetensors"))
    largest = max(p.stat().st_size for p in shards) / 2 ** 20
    total = sum(p.stat().st_size for p in shards) / 2 ** 20
    per_layer = sum(p.stat().st_size for p in shards) / SHAPE["num_hidden_layers"] / 2 ** 20  # upper bound
    config = work / "run.yaml"
    config.write_text(json.dumps({"name": "bench", "languages": ["en"], "corpora": "demo", "tokenizer": "base",
                                  "model": {"base": str(base), "seq_length": 4096},
                                  "train": {"micro_batch_size": 1, "global_batch_size": 1, "steps": 2,
                                            "warmup_steps": 0}}))
    runs: dict[str, list[tuple[float, float, float]]] = {"occi import": [], "from_pretrained": [],
                                                         "from_pretrained + read every weight": []}
    if args.baseline:
        runs["occi import (baseline)"] = []
    for repeat in range(args.repeats):
        run_dir = work / f"run-{repeat}"
        subprocess.run(["rm", "-rf", str(run_dir)], check=True)
        runs["occi import"].append(measure(IMPORT, str(config), str(run_dir)))
        runs["from_pretrained"].append(measure(HF, str(base)))
        runs["from_pretrained + read every weight"].append(measure(HF, str(base), "touch"))
        if args.baseline:
            subprocess.run(["rm", "-rf", str(run_dir)], check=True)
            runs["occi import (baseline)"].append(measure(IMPORT, str(config), str(run_dir), root=args.baseline))
        print(repeat, {k: v[-1] for k, v in runs.items()}, flush=True)
    summary = {name: {"wall_s": statistics.median(s for s, _, _ in v), "peak_mb": statistics.median(m for _, m, _ in v),
                      "cpu_s": statistics.median(c for _, _, c in v), "runs": v} for name, v in runs.items()}
    summary["load_average_1min"] = os.getloadavg()[0]
    summary["shards"] = {"count": len(shards), "largest_mb": round(largest), "total_mb": round(total),
                         "one_layer_mb": round(per_layer)}
    touched = summary["from_pretrained + read every weight"]
    summary["ratio"] = {"wall": summary["occi import"]["wall_s"] / summary["from_pretrained"]["wall_s"],
                        "wall_vs_weights_read": summary["occi import"]["wall_s"] / touched["wall_s"],
                        "cpu_vs_weights_read": summary["occi import"]["cpu_s"] / touched["cpu_s"],
                        "peak": summary["occi import"]["peak_mb"] / summary["from_pretrained"]["peak_mb"],
                        "peak_vs_weights_read": summary["occi import"]["peak_mb"] / touched["peak_mb"],
                        "peak_over_largest_shard_plus_layer": summary["occi import"]["peak_mb"] / (largest + per_layer)}
    (work / "result.json").write_text(json.dumps(summary, indent=2))
    (ROOT / "bench" / "import" / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
