"""Run under torchrun by the import tests: megatron's logits from the run's latest checkpoint at the
run config's TP/PP (the vocabulary-parallel logits gathered), saved by rank 0.

    torchrun --nproc-per-node=N tests/megatron_forward.py CONFIG RUN_DIR TOKENS.pt OUT.pt
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def main(config_path: str, run_dir: str, tokens_file: str, out_file: str) -> None:
    from megatron.core import dist_checkpointing, parallel_state
    from megatron.core.pipeline_parallel import get_forward_backward_func
    from megatron.core.tensor_parallel import gather_from_tensor_model_parallel_region

    from occi import config as config_module
    from occi.train import checkpoints
    from occi.basemodel import run_model_config
    from occi.train.model import build_model
    from occi.train.trainer import setup_distributed

    cfg = config_module.load(config_path)
    tokens = torch.load(tokens_file)
    train = dataclasses.replace(cfg.train, data_parallel=1, micro_batch_size=tokens.shape[0],
                                global_batch_size=tokens.shape[0], precision="fp32")
    model_cfg = dataclasses.replace(run_model_config(cfg, Path(run_dir)), seq_length=tokens.shape[1])
    setup_distributed(train, cfg.seed, model_cfg)
    model = build_model(model_cfg, train, model_cfg.vocab_size, torch.float32)
    path = checkpoints.checkpoint_dir(Path(run_dir), checkpoints.latest_iteration(Path(run_dir)))
    model.load_state_dict(dist_checkpointing.load({"model": model.sharded_state_dict()}, str(path))["model"])
    model.eval()
    length = tokens.shape[1]
    positions = torch.arange(length).expand(tokens.shape[0], -1)
    causal = torch.triu(torch.ones(1, 1, length, length, dtype=torch.bool), diagonal=1)
    collected = []

    def forward_step(data_iterator, module):
        output = module(tokens, positions, causal)

        def keep(output_tensor, non_loss_data=False):
            collected.append(gather_from_tensor_model_parallel_region(output_tensor))
            return torch.zeros(()), {}

        return output, keep

    with torch.no_grad():
        get_forward_backward_func()(forward_step_func=forward_step, data_iterator=iter([None]), model=[model],
                                    num_microbatches=1, seq_length=length, micro_batch_size=tokens.shape[0],
                                    forward_only=True, collect_non_loss_data=True)
    if parallel_state.is_pipeline_last_stage() and parallel_state.get_tensor_model_parallel_rank() == 0:
        torch.save(collected[0].float(), out_file)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:5])
