"""What megatron-core 0.16 needs to run on a CPU-only PyTorch build (tests, the demo, laptops).

Applied only when CUDA is unavailable; on a GPU nothing here is touched. Megatron assumes CUDA
in a few places that have no switch:
1. torch.cuda.current_device() for buffers, RoPE frequencies and checkpoint broadcasts, and
   torch.cuda.synchronize() around checkpointing;
2. the RNG tracker snapshots CUDA generator states (redirected to the CPU generator);
3. its DDP, optimizer and pipeline schedules create tensors with device="cuda" literals
   (a TorchFunctionMode maps them to the CPU);
4. gradient clipping checks param.type() == "torch.cuda.FloatTensor": occi disables clipping on
   the CPU instead of faking the type (train/config.py says so);
5. the distributed optimizer sorts the weights into fp32 and 16-bit groups by the same CUDA type
   names, and refuses any other: while it builds those groups (only then), a tensor's type()
   answers with the CUDA name of its dtype;
6. without Transformer Engine or Apex the distributed optimizer wraps torch's AdamW, which keeps
   a "step" count per weight, and megatron's checkpoint code for that case trips three times:
   it reads the counts from the optimizer state, empty before the first step (so a fresh
   process cannot load: the state is first filled by one zero-gradient step at learning rate 0,
   megatron's own `_init_optimizer_states_with_dummy_values`); it restores one count tensor
   shared by every weight, which AdamW would then increment once per weight and step (each
   weight gets its own copy); and it copies each weight's state from the checkpoint, which has
   no count (a KeyError: the copy keeps the restored count).
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


class _CudaTypeNames(torch.overrides.TorchFunctionMode):
    """tensor.type() answers "torch.cuda.FloatTensor" for a CPU float tensor (and so on)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if func is torch.Tensor.type and len(args) == 1 and not kwargs and isinstance(result, str) \
                and not result.startswith("torch.cuda."):
            return result.replace("torch.", "torch.cuda.", 1)
        return result


def _patch_distributed_optimizer() -> None:
    from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer  # loads megatron: only when used

    build_groups = DistributedOptimizer._build_model_and_main_param_groups.__func__

    def build_with_cuda_type_names(cls, *args, **kwargs):
        with _CudaTypeNames():
            return build_groups(cls, *args, **kwargs)

    DistributedOptimizer._build_model_and_main_param_groups = classmethod(build_with_cuda_type_names)

    from megatron.core.optimizer import distrib_optimizer  # loads megatron: only when used

    if distrib_optimizer.HAVE_APEX_OR_TE:
        return
    sharded_state_dict = DistributedOptimizer.sharded_state_dict

    def sharded_state_dict_with_state(self, model_sharded_state_dict=None, is_loading: bool = False, **kwargs):
        if is_loading and not self.optimizer.state:
            self._init_optimizer_states_with_dummy_values()
        return sharded_state_dict(self, model_sharded_state_dict or {}, is_loading, **kwargs)

    set_states = DistributedOptimizer._set_main_param_and_optimizer_states

    def set_states_keeping_step(self, model_param, tensors):
        if not self.config.use_precision_aware_optimizer_no_fp8_or_ds_fp8:
            group_index, group_order = self.model_param_group_index_map[model_param]
            state = self.optimizer.state[self.optimizer.param_groups[group_index]["params"][group_order]]
            if "step" in state and "step" not in tensors:
                state["step"] = state["step"].clone()
                tensors = {**tensors, "step": state["step"]}
        return set_states(self, model_param, tensors)

    DistributedOptimizer.sharded_state_dict = sharded_state_dict_with_state
    DistributedOptimizer._set_main_param_and_optimizer_states = set_states_keeping_step


def _patch_rng_tracker() -> None:
    import megatron.core.tensor_parallel.random as rng  # loads megatron: only when used

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
        _patch_distributed_optimizer()
        _CudaToCpu().__enter__()  # stays active for the whole process
        _applied = True
    return True
