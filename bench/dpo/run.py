"""DPO throughput: `occi dpo` (megatron-core) against TRL's DPOTrainer on CPU, the same tiny model,
the same preference pairs, sequence length, batch and epochs, one after the other on one machine.

    PYTHONPATH=$PWD .venv/bin/python bench/dpo/run.py [--languages en,de,fr,fi,sv,et] [--epochs 1] [--rounds 3]
        [--hidden 512 --layers 8 --heads 8 --kv-heads 4 --ffn 1536]

The model is the tests' tiny random Qwen2 base (tests/hf_bases.py: 4 layers, width 64, a 300-piece
byte-level BPE tokenizer), or that base at the width and depth given, imported by `occi import`;
TRL tunes the very same files. The pairs are
made from the bundled chat-demo set: a conversation's first question, its answer as chosen and the
next conversation's answer (same language) as rejected. occi's data checks are off (language ID,
dedup) so both train on every pair; both cut sequences at 128 tokens (keep the start). Both use
their precomputed reference log-probabilities (computed before the first step, not timed) and one
micro batch per step, no activation recomputation (TRL's DPOConfig turns gradient checkpointing
on by default; here it is off, as in occi). Seconds are those of the training steps only (occi: dpo/log.jsonl; TRL: a
callback around each step), wall and CPU (the process's CPU seconds of every thread: on a shared
machine the steadier figure); tokens are the pairs' training positions (tokens minus one per
sequence), no padding (both pad a step to its longest sequence, occi to a multiple of 8).
`--rounds N` alternates occi and TRL N times on the same imported model. Writes
bench/dpo/result.json (or --out).
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
        self.cpu_seconds = 0.0
    def on_step_begin(self, args, state, control, **kw):
        self.started, self.cpu_started = time.perf_counter(), time.process_time()
    def on_step_end(self, args, state, control, **kw):
        self.seconds += time.perf_counter() - self.started
        self.cpu_seconds += time.process_time() - self.cpu_started
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
print(json.dumps({"steps": clock.steps, "seconds": clock.seconds, "cpu_seconds": clock.cpu_seconds,
                  "tokens": positions * int(epochs),
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
    parser.add_argument("--rounds", type=int, default=1, help="occi then TRL, this many times")
    parser.add_argument("--hidden", type=int, help="the base's width (default: the tests' 64)")
    parser.add_argument("--layers", type=int, help="its layers (default 4)")
    parser.add_argument("--heads", type=int, help="its attention heads (default 4)")
    parser.add_argument("--kv-heads", type=int, help="its key-value heads (default 2)")
    parser.add_argument("--ffn", type=int, help="its MLP width (default 96)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "dpo" / "result.json")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (bench/dpo/profile_step.py "
                        "profiles its occi run); default: a temporary folder, removed")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from hf_bases import make_base

    env = {"OMP_NUM_THREADS": str(args.threads)}
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-dpo-"))
    work.mkdir(parents=True, exist_ok=True)
    languages = args.languages.split(",")
    shape = {key: value for key, value in (("hidden_size", args.hidden), ("num_hidden_layers", args.layers),
                                           ("num_attention_heads", args.heads), ("num_key_value_heads", args.kv_heads),
                                           ("intermediate_size", args.ffn)) if value is not None}
    if args.layers is not None:  # the config's per-layer attention types follow its depth
        shape["layer_types"] = ["full_attention"] * args.layers
    base = make_base(work / "base", "qwen2", **shape)
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
    script = work / "trl_dpo.py"
    script.write_text(TRL_SCRIPT)
    rounds = []
    for number in range(args.rounds):
        shutil.rmtree(ours / "dpo", ignore_errors=True)  # a fresh DPO stage on the same imported model
        load_before = round(os.getloadavg()[0], 1)
        occi("dpo", str(config_file), "--run-dir", str(ours), env=env)
        records = [json.loads(line) for line in (ours / "dpo" / "log.jsonl").read_text().splitlines()]
        steps = [r for r in records if r["kind"] == "train"]
        occi_result = {"steps": len(steps), "seconds": sum(r["seconds"] for r in steps),
                       "cpu_seconds": sum(r["cpu_seconds"] for r in steps), "tokens": sum(r["tokens"] for r in steps),
                       "pairs": sum(r["pairs"] for r in steps) // args.epochs, "final_loss": steps[-1]["loss"]}
        result = subprocess.run([args.trl_python, str(script), str(base), str(ours / "dpo" / "tokenizer"), str(data),
                                 str(work / "trl-out"), str(args.epochs), str(SEQ), str(args.batch), "1e-4", "0.1"],
                                env={**os.environ, **env}, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"TRL failed:\n{result.stderr[-3000:]}")
        trl_result = json.loads(result.stdout.strip().splitlines()[-1])
        for r in (occi_result, trl_result):
            r["tokens_per_s"] = r["tokens"] / r["seconds"]
            r["tokens_per_cpu_s"] = r["tokens"] / r["cpu_seconds"]
        rounds.append({"load_before": load_before, "load_after": round(os.getloadavg()[0], 1),
                       "occi": occi_result, "trl": trl_result,
                       "ratio_tokens_per_s": occi_result["tokens_per_s"] / trl_result["tokens_per_s"],
                       "ratio_tokens_per_cpu_s": occi_result["tokens_per_cpu_s"] / trl_result["tokens_per_cpu_s"]})
        print(json.dumps(rounds[-1]), flush=True)
    version = subprocess.run([args.trl_python, "-c", "import trl, transformers, torch; print(trl.__version__, "
                              "transformers.__version__, torch.__version__)"], capture_output=True, text=True).stdout.split()
    model = json.loads((base / "config.json").read_text())
    report = {"data": f"corpora/chat-demo as pairs ({len(rows)} pairs, {len(languages)} languages)",
              "model": (f"tests/hf_bases.py qwen2 ({model['num_hidden_layers']} layers, width {model['hidden_size']}, "
                        f"{model['num_attention_heads']}/{model['num_key_value_heads']} heads, MLP "
                        f"{model['intermediate_size']}, 300-piece tokenizer), random weights"),
              "seq_length": SEQ, "pairs_per_step": args.batch, "epochs": args.epochs, "threads": args.threads,
              "trl_versions": version, "rounds": rounds,
              "ratio_tokens_per_s": [r["ratio_tokens_per_s"] for r in rounds],
              "ratio_tokens_per_cpu_s": [r["ratio_tokens_per_cpu_s"] for r in rounds]}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("model", "ratio_tokens_per_s", "ratio_tokens_per_cpu_s")}, indent=2))
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
