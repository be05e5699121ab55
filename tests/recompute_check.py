"""Run under torchrun (one rank) by tests/test_train_knobs.py: the same tiny GPTModel built with each
train.recompute setting, one forward and backward pass on the same tokens; writes per setting the
loss, every gradient, and how often a layer and its core attention ran forward (a recomputed
module runs again in the backward pass).

    torchrun --nproc-per-node=1 tests/recompute_check.py OUT.pt
"""
from __future__ import annotations

import dataclasses
import sys

import torch
import torch.distributed as dist

SETTINGS = {"none": {}, "selective": {"recompute": "selective"}, "full": {"recompute": "full"},
            "full_1_layer": {"recompute": "full", "recompute_layers": 1}}


def main(out_file: str) -> None:
    from megatron.core import tensor_parallel

    from occi.train.config import ModelConfig, TrainConfig
    from occi.train.model import build_model
    from occi.train.trainer import setup_distributed

    model_cfg = ModelConfig(num_layers=2, hidden_size=64, ffn_hidden_size=128, num_attention_heads=4,
                            num_query_groups=2, seq_length=32, make_vocab_size_divisible_by=64)
    base = TrainConfig(micro_batch_size=2, global_batch_size=2, steps=2, warmup_steps=0, precision="fp32")
    setup_distributed(base, seed=5)
    tokens = torch.randint(0, 128, (2, 32), generator=torch.Generator().manual_seed(0))
    labels = torch.roll(tokens, -1, dims=1)
    positions = torch.arange(32).expand(2, -1)
    causal = torch.triu(torch.ones(1, 1, 32, 32, dtype=torch.bool), diagonal=1)
    results = {}
    for name, knobs in SETTINGS.items():
        train = dataclasses.replace(base, **knobs)
        torch.manual_seed(5)
        tensor_parallel.model_parallel_cuda_manual_seed(5)
        model = build_model(model_cfg, train, 128, torch.float32)
        model.train()
        calls = {"layer_0": 0, "layer_1": 0, "core_attention_0": 0}

        def counter(key):
            def count(module, args):
                calls[key] += 1
            return count

        model.decoder.layers[0].register_forward_pre_hook(counter("layer_0"))
        model.decoder.layers[1].register_forward_pre_hook(counter("layer_1"))
        model.decoder.layers[0].self_attention.core_attention.register_forward_pre_hook(counter("core_attention_0"))
        loss = model(tokens, positions, causal, labels=labels).float().mean()
        loss.backward()
        results[name] = {"loss": loss.detach(), "calls": calls,
                         "grads": {n: p.grad.detach().clone() for n, p in model.named_parameters()}}
    torch.save(results, out_file)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
