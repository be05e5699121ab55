"""What megatron-core 0.16 needs to run on a CPU-only PyTorch build (tests, the demo, laptops).

Applied only when CUDA is unavailable; on a GPU nothing here is touched. Megatron assumes CUDA
in a few places that have no switch:
1. torch.cuda.current_device() for buffers, RoPE frequencies and checkpoint broadcasts, and
   torch.cuda.synchronize() around checkpointing;
2. the RNG tracker snapshots CUDA generator states (redirected to the CPU generator);
3. its DDP, optimizer and pipeline schedules create tensors with device="cuda" literals
   (a TorchFunctionMode maps them to the CPU);
4. gradient clipping checks param.type() == "torch.cuda.FloatTensor": occi disables clipping on
   the CPU instead of faking the type (train/config.py says so).
"""
from __future__ import annotations

import torch

_CPU = torch.device("cpu")
_applied = False


class _CudaToCpu(torch.overrides.TorchFunctionMode):
    """Rewrites device="cuda..." to the CPU in every torch call; .cuda() becomes a no-op."""

    @staticmethod
    def _fix(device):
        if isinstance(device, str) and device.startswith("cuda"):
            return _CPU
        if isinstance(device, torch.device) and device.type == "cuda":
            return _CPU
        return device

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.cuda:
            return args[0]
        if "device" in kwargs:
            kwargs["device"] = self._fix(kwargs["device"])
        if func is torch.Tensor.to and len(args) > 1 and self._fix(args[1]) is _CPU:
            args = (args[0], _CPU, *args[2:])
        return func(*args, **kwargs)


def _patch_rng_tracker() -> None:
    import megatron.core.tensor_parallel.random as rng

    rng._get_cuda_rng_state = lambda *args, **kwargs: torch.get_rng_state()
    rng._set_cuda_rng_state = lambda state, *args, **kwargs: torch.set_rng_state(state)
    original_add = rng.CudaRNGStatesTracker.add

    def add(self, name, seed):
        if self.use_cudagraphable_rng:
            return original_add(self, name, seed)
        self._is_initialized = True
        if seed in self.seeds_:
            raise Exception(f"seed {seed} already exists")
        if name in self.states_:
            raise Exception(f"rng state {name} already exists")
        self.seeds_.add(seed)
        saved = torch.get_rng_state()
        torch.manual_seed(seed)
        self.states_[name] = torch.get_rng_state()
        torch.set_rng_state(saved)

    rng.CudaRNGStatesTracker.add = add


def apply() -> bool:
    """Applies the shim once, only without CUDA; returns True when it is active."""
    global _applied
    if torch.cuda.is_available():
        return False
    if not _applied:
        torch.cuda.current_device = lambda: _CPU
        torch.cuda.synchronize = lambda *args, **kwargs: None
        _patch_rng_tracker()
        _CudaToCpu().__enter__()  # stays active for the whole process
        _applied = True
    return True
