"""The memory and communication knobs of `train:` (issue #28) as megatron-core settings.

recompute -> TransformerConfig.recompute_granularity/method/num_layers; sequence_parallel and
context_parallel -> TransformerConfig (and the parallel state, for CP); distributed_optimizer and
overlap_* -> DistributedDataParallelConfig and OptimizerConfig. All of them run with gloo on the
CPU except context parallelism, whose attention is Transformer Engine's: without it the run is
refused in one line before any rank starts, and bench/gpu/ covers it.
"""
from __future__ import annotations

from occi.train.config import TrainConfig


def recompute_settings(train: TrainConfig) -> dict:
    """TransformerConfig's recompute fields."""
    if train.recompute == "none":
        return {}
    if train.recompute == "selective":
        return {"recompute_granularity": "selective", "recompute_modules": ["core_attn"]}
    if train.recompute_layers:  # the first N layers of each pipeline stage
        return {"recompute_granularity": "full", "recompute_method": "block",
                "recompute_num_layers": train.recompute_layers}
    return {"recompute_granularity": "full", "recompute_method": "uniform", "recompute_num_layers": 1}


def ddp_settings(train: TrainConfig) -> dict:
    """DistributedDataParallelConfig's fields for these knobs."""
    return {"use_distributed_optimizer": train.distributed_optimizer,
            "overlap_grad_reduce": train.overlap_grad_reduce,
            "overlap_param_gather": train.overlap_param_gather}


def refusal(train: TrainConfig, transformer_engine: bool) -> str | None:
    """Why this machine cannot train with these knobs (one line), or None. Everything but context
    parallelism runs with gloo on the CPU too (the overlaps then overlap gloo's reductions)."""
    if train.context_parallel > 1 and not transformer_engine:
        return (f"train.context_parallel {train.context_parallel} needs Transformer Engine's attention (megatron-core's "
                "own attention refuses context parallelism), so a CUDA device with transformer_engine installed; "
                "this machine has none: set train.context_parallel to 1 here, or train on GPUs")
    return None


def describe(train: TrainConfig) -> str:
    """The knobs in one line, for rendered job scripts and logs."""
    recompute = train.recompute
    if recompute == "full":
        recompute += f" ({train.recompute_layers} layers per stage)" if train.recompute_layers else " (every layer)"
    on = [name for name in ("distributed_optimizer", "sequence_parallel", "overlap_grad_reduce", "overlap_param_gather")
          if getattr(train, name)]
    return (f"recompute {recompute}, context_parallel {train.context_parallel}, "
            f"{', '.join(on) if on else 'no distributed optimizer, sequence parallelism or overlap'}")
