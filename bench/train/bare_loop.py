"""A bare megatron-core training loop: the peer of `occi train` in bench/train/loop_overhead.py.

The same GPTModel (occi.train.model.build_model, so the architecture is identical), megatron DDP,
the megatron optimizer and the forward-backward schedule on the same blended GPTDataset, and
nothing else: no validation, no logs, no checkpoints, no signal checks. Prints tokens/s per step.

  torchrun --standalone --nproc-per-node 1 bench/train/bare_loop.py CONFIG RUN_DIR STEPS
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch


def main(config_path: str, run_dir: str, steps: int) -> None:
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
    from megatron.core.pipeline_parallel import get_forward_backward_func

    from occi import config
    from occi.rundir import RunDir
    from occi.train.model import build_model
    from occi.train.trainer import _build_datasets, _collate, setup_distributed

    cfg = config.load(config_path)
    setup_distributed(cfg.train, cfg.seed)
    blend = RunDir(Path(run_dir)).read_blend()  # its dataset prefixes resolved against the run
    model = build_model(cfg.model, cfg.train, blend["vocab_size"], torch.float32)
    model = DistributedDataParallel(model.config, DistributedDataParallelConfig(grad_reduce_in_fp32=True), model)
    model.config.finalize_model_grads_func = finalize_model_grads
    optimizer = get_megatron_optimizer(OptimizerConfig(optimizer="adam", lr=cfg.train.lr, clip_grad=0.0), [model])
    train_data, _ = _build_datasets(cfg, blend, cfg.model.seq_length)
    mbs, gbs, seq = cfg.train.micro_batch_size, cfg.train.global_batch_size, cfg.model.seq_length

    def forward_step(data_iterator, model):
        batch = next(data_iterator)
        output = model(batch["tokens"], batch["position_ids"], batch["attention_mask"], labels=batch["labels"])

        def loss_func(per_token_loss):
            mask = batch["loss_mask"].view(-1).float()
            return (per_token_loss.view(-1).float() * mask).sum() / mask.sum(), {}

        return output, loss_func

    for step in range(steps):
        started = time.monotonic()
        batches = [_collate([train_data[i] for i in range(step * gbs + m * mbs, step * gbs + (m + 1) * mbs)])
                   for m in range(gbs // mbs)]
        model.zero_grad_buffer()
        optimizer.zero_grad()
        get_forward_backward_func()(forward_step_func=forward_step, data_iterator=iter(batches), model=[model],
                                    num_microbatches=len(batches), seq_length=seq, micro_batch_size=mbs)
        optimizer.step()
        print(json.dumps({"step": step + 1, "tokens_per_s": gbs * seq / (time.monotonic() - started)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
