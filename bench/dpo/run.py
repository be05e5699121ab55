"""DPO throughput: `occi dpo` (megatron-core) against TRL's DPOTrainer on CPU, the same tiny model,
the same preference pairs, sequence length, batch and epochs, one after the other on one machine.

    PYTHONPATH=$PWD .venv/bin/python bench/dpo/run.py [--languages en,de,fr,fi,sv,et] [--epochs 1]

The model is the tests' tiny random Qwen2 base (tests/hf_bases.py: 4 layers, width 64, a 300-piece
byte-level BPE tokenizer), imported by `occi import`; TRL tunes the very same files. The pairs are
made from the bundled chat-demo set: a conversation's first question, its answer as chosen and the
next conversation's answer (same language) as rejected. occi's data checks are off (language ID,
dedup) so both train on every pair; both cut sequences at 128 tokens (keep the start). Both use
their precomputed reference log-probabilities (computed before the first step, not timed) and one
micro batch per step, no activation recomputation (TRL's DPOConfig turns gradient checkpointing
on by default; here it is off, as in occi). Seconds are those of the training steps only (occi: dpo/log.jsonl; TRL: a
callback around each step); tokens are the pairs' training positions (tokens minus one per
sequence), no padding (occi pads every sequence to 128, TRL to the longest of its batch).
Writes bench/dpo/result.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SEQ = 128

TRL_SCRIPT = r'''
import json, sys, time
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import DPOConfig, DPOTrainer

model_dir, tokenizer_dir, data_file, out, epochs, seq, batch, lr, beta = sys.argv[1:10]
torch.manual_seed(0)
tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
rows = [json.loads(line) for line in open(data_file, encoding="utf-8")]
dataset = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])

class Clock(TrainerCallback):
    def __init__(self):
        self.seconds, self.steps, self.started = 0.0, 0, None
    def on_step_begin(self, args, state, control, **kw):
        self.started = time.perf_counter()
    def on_step_end(self, args, state, control, **kw):
        self.seconds += time.perf_counter() - self.started
        self.steps += 1

clock = Clock()
config = DPOConfig(output_dir=out, num_train_epochs=int(epochs), per_device_train_batch_size=int(batch),
                   gradient_accumulation_steps=1, learning_rate=float(lr), lr_scheduler_type="constant",
                   beta=float(beta), max_length=int(seq), precompute_ref_log_probs=True, logging_steps=1000,
                   save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0, seed=0,
                   bf16=False, fp16=False, gradient_checkpointing=False)
trainer = DPOTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[clock])
positions = sum(min(len(e["prompt_ids"]) + len(e[side]), int(seq)) - 1
                for e in trainer.train_dataset for side in ("chosen_ids", "rejected_ids"))
result = trainer.train()
print(json.dumps({"steps": clock.steps, "seconds": clock.seconds, "tokens": positions * int(epochs),
                  "pairs": len(trainer.train_dataset), "final_loss": result.training_loss}))
'''


def pairs_from_chat_demo(languages: list[str]) -> list[dict]:
    rows = []
    for code in languages:
        conversations = [json.loads(line) for line in
                         (REPO / "corpora" / "chat-demo" / f"{code}.jsonl").read_text(encoding="utf-8").splitlines()]
        exchanges = []
        for conversation in conversations:
            turns = [m for m in conversation["messages"] if m["role"] != "system"]
            exchanges.append((turns[0]["content"], turns[1]["content"]))
        for number, (question, answer) in enumerate(exchanges):
            other = exchanges[(number + 1) % len(exchanges)][1]
            if other != answer:
                rows.append({"prompt": [{"role": "user", "content": question}],
                             "chosen": [{"role": "assistant", "content": answer}],
                             "rejected": [{"role": "assistant", "content": other}], "language": code})
    return rows


def occi(*args: str, env: dict | None = None) -> None:
    result = subprocess.run([sys.executable, "-m", "occi.cli", *args], env={**os.environ, **(env or {})},
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"occi {' '.join(args)} failed:\n{result.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--languages", default="en,de,fr,fi,sv,et")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8, help="pairs per step (one micro batch)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trl-python", default=sys.executable)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from hf_bases import make_base

    env = {"OMP_NUM_THREADS": str(args.threads)}
    work = Path(tempfile.mkdtemp(prefix="bench-dpo-"))
    languages = args.languages.split(",")
    base = make_base(work / "base", "qwen2")
    rows = pairs_from_chat_demo(languages)
    data = work / "pairs.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    dpo = {"sources": [{"name": "pairs", "kind": "jsonl", "path": str(data)}],
           "checks": {"language_id": False, "dedup": {"exact": False, "near": False}, "too_long": "truncate"},
           "epochs": args.epochs, "micro_batch_size": args.batch, "global_batch_size": args.batch, "lr": 1e-4,
           "lr_schedule": "constant", "warmup_fraction": 0.0, "beta": 0.1, "seq_length": SEQ, "save_interval": 10000}
    config = {"name": "bench-dpo", "languages": languages, "corpora": {"recipe": "demo", "workers": 1},
              "tokenizer": "base", "model": {"base": str(base), "seq_length": SEQ}, "dpo": dpo}
    config_file = work / "bench.yaml"
    config_file.write_text(yaml.safe_dump(config, allow_unicode=True))

    ours = work / "occi"
    occi("import", str(config_file), "--run-dir", str(ours), env=env)
    occi("dpo", str(config_file), "--run-dir", str(ours), env=env)
    records = [json.loads(line) for line in (ours / "dpo" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "train"]
    occi_result = {"steps": len(steps), "seconds": sum(r["seconds"] for r in steps),
                   "tokens": sum(r["tokens"] for r in steps), "pairs": sum(r["pairs"] for r in steps) // args.epochs,
                   "final_loss": steps[-1]["loss"]}

    script = work / "trl_dpo.py"
    script.write_text(TRL_SCRIPT)
    result = subprocess.run([args.trl_python, str(script), str(base), str(ours / "dpo" / "tokenizer"), str(data),
                             str(work / "trl-out"), str(args.epochs), str(SEQ), str(args.batch), "1e-4", "0.1"],
                            env={**os.environ, **env}, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"TRL failed:\n{result.stderr[-3000:]}")
    trl_result = json.loads(result.stdout.strip().splitlines()[-1])
    version = subprocess.run([args.trl_python, "-c", "import trl, transformers, torch; print(trl.__version__, "
                              "transformers.__version__, torch.__version__)"], capture_output=True, text=True).stdout.split()
    for r in (occi_result, trl_result):
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
    load = os.getloadavg()
    report = {"data": f"corpora/chat-demo as pairs ({len(rows)} pairs, {len(languages)} languages)",
              "model": "tests/hf_bases.py qwen2 (4 layers, width 64, 300-piece tokenizer), random weights",
              "seq_length": SEQ, "pairs_per_step": args.batch, "epochs": args.epochs, "threads": args.threads,
              "load_average_after": [round(x, 1) for x in load], "trl": {"versions": version, **trl_result},
              "occi": occi_result, "ratio_tokens_per_s": occi_result["tokens_per_s"] / trl_result["tokens_per_s"]}
    (REPO / "bench" / "dpo" / "result.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
