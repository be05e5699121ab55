"""One rank of the doctor's all-reduce test (started by torchrun, one rank per GPU):
`python -m occi.preflight.allreduce OUT.json MEGABYTES`. Rank 0 writes the median time and the
bus bandwidth, 2 (n-1)/n x bytes / time, the figure nccl-tests reports."""
from __future__ import annotations

import json
import os
import statistics
import sys
import time


def main(out: str, megabytes: int, repeats: int = 10) -> None:
    import torch  # loads torch: only when used
    import torch.distributed as dist  # loads torch: only when used

    local = int(os.environ.get("LOCAL_RANK", "0"))
    on_gpu = torch.cuda.is_available()
    if on_gpu:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if on_gpu else "gloo")
    device = torch.device("cuda", local) if on_gpu else torch.device("cpu")
    tensor = torch.ones(megabytes * 2**20 // 4, dtype=torch.float32, device=device)
    for _ in range(3):  # warm-up: connections are set up on first use
        dist.all_reduce(tensor)
    times = []
    for _ in range(repeats):
        if on_gpu:
            torch.cuda.synchronize()
        started = time.perf_counter()
        dist.all_reduce(tensor)
        if on_gpu:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    world = dist.get_world_size()
    seconds = statistics.median(times)
    size = tensor.numel() * 4
    if dist.get_rank() == 0:
        with open(out, "w", encoding="utf-8") as handle:
            json.dump({"bytes": size, "seconds": seconds, "algbw_gbs": size / seconds / 1e9,
                       "busbw_gbs": size / seconds / 1e9 * 2 * (world - 1) / world, "ranks": world,
                       "backend": dist.get_backend()}, handle)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
