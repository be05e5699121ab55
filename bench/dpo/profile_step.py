"""Where the CPU time of an `occi dpo` step goes: the DPO trainer in this process (one rank, no
torchrun), on a run that bench/dpo/run.py kept, its steps timed in process CPU seconds.

    PYTHONPATH=$PWD .venv/bin/python bench/dpo/run.py --keep /tmp/occi-bench/dpo-run --rounds 1
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python bench/dpo/profile_step.py /tmp/occi-bench/dpo-run/occi \
        [--steps 12] [--profile torch|python] [--explicit-mask] [--sdpa]

The run is copied (its DPO checkpoints and log left out) into a temporary folder; one step is
run first and not counted. --profile prints torch's operator table or cProfile's functions.
Two experiments, both for measuring only, never how occi trains:
--explicit-mask gives every micro batch the [2m, 1, s, s] causal mask the DPO batches carried
before 2026-12-07 (the losses must come out bit-identical to those without it);
--sdpa swaps megatron's local DotProductAttention (baddbmm, masked softmax, bmm) for torch's
scaled_dot_product_attention, the kernel transformers (and so TRL) uses: what a fused attention
would save on this model (its losses differ in the last bits of float32).
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def explicit_mask() -> None:
    from occi.dpo import batches  # the module whose batch() the experiment wraps

    plain = batches.batch

    def with_mask(*args, **kwargs):
        batch = plain(*args, **kwargs)
        rows, length = batch["tokens"].shape
        causal = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
        batch["attention_mask"] = causal.expand(rows, 1, -1, -1).contiguous()
        return batch

    batches.batch = with_mask


def sdpa_attention() -> None:
    from megatron.core.transformer.dot_product_attention import DotProductAttention  # loads megatron: only for --sdpa

    def forward(self, query, key, value, attention_mask, attn_mask_type=None, attention_bias=None,
                packed_seq_params=None):
        q, k, v = (x.permute(1, 2, 0, 3) for x in (query, key, value))  # [s, b, heads, d] -> [b, heads, s, d]
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.softmax_scale,
                                             enable_gqa=k.shape[1] != q.shape[1])
        out = out.permute(2, 0, 1, 3).contiguous()
        return out.view(*out.shape[:2], -1)

    DotProductAttention.forward = forward


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path, help="an occi run folder with its DPO data (kept by bench/dpo/run.py)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--profile", choices=("torch", "python"))
    parser.add_argument("--explicit-mask", action="store_true")
    parser.add_argument("--sdpa", action="store_true")
    args = parser.parse_args()
    for key, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", str(29500 + os.getpid() % 1000)), ("RANK", "0"),
                       ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0")):
        os.environ.setdefault(key, value)
    from occi import config as config_module  # after the rank's environment is set
    from occi.dpo.trainer import DPOTrainer  # after the rank's environment is set
    from occi.train.trainer import _model_shape, setup_distributed  # after the rank's environment is set

    if args.explicit_mask:
        explicit_mask()
    if args.sdpa:
        sdpa_attention()
    run = Path(tempfile.mkdtemp(prefix="dpo-profile-")) / "run"
    shutil.copytree(args.run, run, ignore=shutil.ignore_patterns("checkpoints", "log.jsonl"), dirs_exist_ok=False)
    shutil.copytree(args.run / "checkpoints", run / "checkpoints")  # the starting weights (not DPO's own)
    cfg = config_module.load(str(run / "config.yaml"))
    setup_distributed(cfg.train, cfg.seed, _model_shape(cfg, run))
    trainer = DPOTrainer(cfg, run)
    trainer.step = trainer._resume()
    trainer.train_step()  # warm-up, not counted
    records = []

    def steps():
        for _ in range(min(args.steps, trainer.train.steps - trainer.step)):
            records.append(trainer.train_step())

    if args.profile == "torch":
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
            steps()
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
    elif args.profile == "python":
        profile = cProfile.Profile()
        profile.runcall(steps)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
    else:
        steps()
    cpu = sum(r["cpu_seconds"] for r in records)
    tokens = sum(r["tokens"] for r in records)
    print(f"{len(records)} steps, {cpu:.3f} CPU s, {tokens} tokens, {tokens / cpu:,.0f} tokens per CPU s, "
          f"load {os.getloadavg()[0]:.1f}; losses {[r['loss'] for r in records]}")
    shutil.rmtree(run.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
