"""SFT throughput: `occi sft` (megatron-core, packing) against TRL's SFTTrainer (packing) on CPU,
the same tiny model, the same chat data, the same sequence length, batch and epochs, one after
the other in one run on the same machine.

    bash bench/setup_trl.sh                     # /tmp/occi-bench/venv-trl (--data moves it)
    .venv/bin/python bench/sft/run.py RUN_DIR --trl-python /tmp/occi-bench/venv-trl/bin/python [--epochs 3]

RUN_DIR is a run of configs/demo-sft.yaml whose `train` stage is done (the demo model). The
script copies it twice: occi fine-tunes one copy (`occi sft`, then its log gives the tokens and
seconds of the training steps); the other copy's pretraining checkpoint is exported to transformers
and TRL fine-tunes that model (same weights) on the same conversations rendered with the same
chat template. Both count the seconds of their training steps only (not start-up): occi from
sft/log.jsonl, TRL from a callback around its steps. Tokens: conversation tokens without padding;
loss tokens: the assistant tokens (occi trains on those only; TRL here trains on every token,
its default for `messages` data, which is the same compute per token).
Writes bench/sft/result.json.
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

TRL_SCRIPT = r'''
import json, sys, time
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer

model_dir, data_file, out, epochs, seq, batch, lr = sys.argv[1:8]
torch.manual_seed(0)
tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
rows = [json.loads(line) for line in open(data_file, encoding="utf-8")]
dataset = Dataset.from_list([{"messages": r["messages"]} for r in rows])

class Clock(TrainerCallback):
    def __init__(self):
        self.seconds, self.steps, self.started = 0.0, 0, None
    def on_step_begin(self, args, state, control, **kw):
        self.started = time.perf_counter()
    def on_step_end(self, args, state, control, **kw):
        self.seconds += time.perf_counter() - self.started
        self.steps += 1

clock = Clock()
config = SFTConfig(output_dir=out, num_train_epochs=int(epochs), per_device_train_batch_size=int(batch),
                   gradient_accumulation_steps=1, learning_rate=float(lr), lr_scheduler_type="cosine",
                   warmup_steps=1, max_length=int(seq), packing=True, logging_steps=1000, save_strategy="no",
                   report_to=[], use_cpu=True, dataloader_num_workers=0, seed=0, bf16=False, fp16=False)
trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[clock])
tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"]) * int(epochs)
result = trainer.train()
print(json.dumps({"steps": clock.steps, "seconds": clock.seconds, "tokens": tokens,
                  "sequences_per_epoch": len(trainer.train_dataset), "final_loss": result.training_loss}))
'''


def occi(*args: str, env: dict | None = None) -> None:
    result = subprocess.run([sys.executable, "-m", "occi.cli", *args], env={**os.environ, **(env or {})},
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"occi {' '.join(args)} failed:\n{result.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--trl-python", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    env = {"OMP_NUM_THREADS": str(args.threads)}
    work = Path(tempfile.mkdtemp(prefix="bench-sft-"))
    config = yaml.safe_load((REPO / "configs" / "demo-sft.yaml").read_text())
    config["sft"]["epochs"] = args.epochs
    config["sft"]["log_interval"] = 1  # every step's tokens and seconds
    config["sft"]["sources"][0]["path"] = str(REPO / "corpora" / "chat-demo" / "*.jsonl")
    config_file = work / "bench.yaml"
    config_file.write_text(yaml.safe_dump(config, allow_unicode=True))
    sft = config["sft"]

    ours = work / "occi"
    shutil.copytree(args.run_dir, ours, ignore=shutil.ignore_patterns("sft", "hf", "config.yaml", "eval", "report"))
    occi("sft", str(config_file), "--run-dir", str(ours), env=env)
    records = [json.loads(line) for line in (ours / "sft" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "train"]
    occi_result = {"steps": len(steps), "seconds": sum(r["seconds"] for r in steps),
                   "tokens": sum(r["tokens"] for r in steps), "loss_tokens": sum(r["loss_tokens"] for r in steps),
                   "final_loss": steps[-1]["loss"]}

    theirs = work / "trl"
    shutil.copytree(args.run_dir, theirs, ignore=shutil.ignore_patterns("sft", "hf", "config.yaml", "eval", "report"))
    occi("export", str(config_file), "--run-dir", str(theirs))  # the pretrained model, same weights
    shutil.copytree(ours / "sft" / "tokenizer", theirs / "hf", dirs_exist_ok=True)  # the same chat template
    data = work / "chat.jsonl"
    data.write_text("".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "corpora" / "chat-demo").glob("*.jsonl"))))
    script = work / "trl_sft.py"
    script.write_text(TRL_SCRIPT)
    result = subprocess.run([args.trl_python, str(script), str(theirs / "hf"), str(data), str(work / "trl-out"),
                             str(args.epochs), "128", str(sft["global_batch_size"]),  # 128: the tiny model's seq_length
                             str(sft["lr"])], env={**os.environ, **env}, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"TRL failed:\n{result.stderr[-3000:]}")
    trl_result = json.loads(result.stdout.strip().splitlines()[-1])
    version = subprocess.run([args.trl_python, "-c", "import trl, transformers, torch; print(trl.__version__, "
                              "transformers.__version__, torch.__version__)"], capture_output=True, text=True).stdout.split()

    for r in (occi_result, trl_result):
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
    occi_result["loss_tokens_per_s"] = occi_result["loss_tokens"] / occi_result["seconds"]
    files = sorted((REPO / "corpora" / "chat-demo").glob("*.jsonl"))
    rows = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in files)
    report = {"data": f"corpora/chat-demo ({rows} conversations, {len(files)} languages)",
              "model": "tiny (2 layers, width 64)",
              "seq_length": 128, "global_batch_size": sft["global_batch_size"], "epochs": args.epochs,
              "threads": args.threads, "trl": {"versions": version, **trl_result}, "occi": occi_result,
              "ratio_tokens_per_s": occi_result["tokens_per_s"] / trl_result["tokens_per_s"]}
    (REPO / "bench" / "sft" / "result.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
