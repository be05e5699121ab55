"""Run under torchrun (gloo, 2 ranks) by tests/test_memory.py: builds occi's real megatron model
(occi/train/model.py) with megatron's DDP and optimizer as the trainer does, for several layouts in
turn, and measures on each rank: the bytes of the weights, the gradient buffers and the optimizer
state after one optimizer step (unique storages), and the activations one micro batch keeps for
the backward pass (every tensor autograd saves, through torch.autograd.graph.saved_tensors_hooks,
unique storages, parameters excluded). Rank 0 writes the figures of every rank as JSON. On a GPU
(bench/memory/gpu_check.py) it also records the allocator's peak over a second training step.

    torchrun --nproc-per-node=2 tests/memory_measure.py LAYOUTS.json OUT.json
"""
from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist


def storages(tensors) -> dict[int, int]:
    """data pointer -> bytes of the storages behind these tensors."""
    found = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        if storage.nbytes():
            found[storage.data_ptr()] = storage.nbytes()
    return found


def measure(model_cfg, train, vocab: int, dtype: torch.dtype, seed: int = 1234) -> dict:
    from megatron.core import parallel_state
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer

    from occi.train.model import build_model, initialize_independent_of_layout
    from occi.train.trainer import setup_distributed

    setup_distributed(train, seed)
    on_gpu = torch.cuda.is_available()
    device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
    model = build_model(model_cfg, train, vocab, dtype)
    if model_cfg.is_moe:
        initialize_independent_of_layout(model, model_cfg, seed)
        for name, param in model.named_parameters():
            if ".experts." in name:
                param.allreduce = False
    if on_gpu:
        model.cuda()
    ddp_config = DistributedDataParallelConfig(grad_reduce_in_fp32=True,
                                               use_distributed_optimizer=train.distributed_optimizer)
    ddp = DistributedDataParallel(model.config, ddp_config, model)
    model.config.finalize_model_grads_func = finalize_model_grads
    optimizer = get_megatron_optimizer(OptimizerConfig(
        optimizer="adam", lr=1e-4, clip_grad=0.0, bf16=dtype == torch.bfloat16, params_dtype=dtype,
        use_distributed_optimizer=train.distributed_optimizer), [ddp])

    seq, batch = model_cfg.seq_length, train.micro_batch_size
    generator = torch.Generator().manual_seed(seed + parallel_state.get_data_parallel_rank())
    tokens = torch.randint(0, vocab, (batch, seq + 1), generator=generator)
    tokens = tokens.to(device)
    inputs, labels = tokens[:, :-1], tokens[:, 1:]
    positions = torch.arange(seq, device=device).expand(batch, -1)
    causal = torch.triu(torch.ones(1, 1, seq, seq, dtype=torch.bool, device=device), diagonal=1)
    parameters = storages(ddp.parameters())
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters and storage.nbytes():
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    ddp.zero_grad_buffer()
    optimizer.zero_grad()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = ddp(inputs, positions, causal, labels=labels).float().mean()
    activations = sum(saved.values())
    loss.backward()
    finalize_model_grads([ddp])
    optimizer.step()

    weights = sum(storages(ddp.parameters()).values())
    gradients = sum(storages(p.main_grad for p in ddp.parameters()).values())
    state = {}
    for inner in getattr(optimizer, "chained_optimizers", [optimizer]):
        torch_optimizer = inner.optimizer
        for group in torch_optimizer.param_groups:
            state.update(storages(group["params"]))
        for per_param in torch_optimizer.state.values():
            state.update(storages(v for v in per_param.values() if torch.is_tensor(v) and v.numel() > 1))
    optimizer_bytes = sum(n for ptr, n in state.items() if ptr not in parameters)
    result = {"weights": weights, "gradients": gradients, "optimizer": optimizer_bytes, "activations": activations}
    if on_gpu:  # a second step, with the optimizer state allocated: the allocator's peak
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        ddp.zero_grad_buffer()
        optimizer.zero_grad()
        ddp(inputs, positions, causal, labels=labels).float().mean().backward()
        finalize_model_grads([ddp])
        optimizer.step()
        torch.cuda.synchronize()
        result["peak_allocated"] = torch.cuda.max_memory_allocated()
    parallel_state.destroy_model_parallel()
    return result


def main(layouts_file: str, out_file: str) -> None:
    from occi.train.config import ModelConfig, TrainConfig

    jobs = json.loads(open(layouts_file).read())
    results = {}
    for job in jobs:
        model_cfg = ModelConfig(**job["model"])
        train = TrainConfig(**job["train"])
        dtype = torch.bfloat16 if train.precision == "bf16" else torch.float32
        mine = measure(model_cfg, train, job["vocab"], dtype)
        everyone = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, mine)
        results[job["name"]] = everyone
    if dist.get_rank() == 0:
        with open(out_file, "w") as handle:
            json.dump(results, handle, indent=1)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])
