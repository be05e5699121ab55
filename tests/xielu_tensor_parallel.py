"""Run under torchrun (2 processes) by tests/test_apertus.py: xIELU's scalar gradients on each
tensor-parallel rank's slice of the MLP's inner width, against one process holding the whole width.

    torchrun --nproc-per-node=2 tests/xielu_tensor_parallel.py OUT.pt
"""
from __future__ import annotations

import sys

import torch
import torch.distributed as dist


def main(out_file: str) -> None:
    from megatron.core import parallel_state

    from occi.train.layers.xielu import XIELU, TensorParallelXIELU

    dist.init_process_group("gloo")
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=2)
    rank = parallel_state.get_tensor_model_parallel_rank()
    generator = torch.Generator().manual_seed(0)
    x, weight = torch.randn(6, 8, generator=generator) * 2, torch.randn(6, 8, generator=generator)
    whole, split = XIELU(), TensorParallelXIELU()
    with torch.no_grad():
        for module in (whole, split):
            module.alpha_p.fill_(0.3)
            module.alpha_n.fill_(-0.2)
    (whole(x) * weight).sum().backward()
    part = slice(rank * 4, rank * 4 + 4)
    (split(x[:, part]) * weight[:, part]).sum().backward()
    if rank == 0:
        torch.save({"whole": torch.cat([whole.alpha_p.grad, whole.alpha_n.grad]),
                    "split": torch.cat([split.alpha_p.grad, split.alpha_n.grad])}, out_file)
    dist.barrier()
    parallel_state.destroy_model_parallel()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
