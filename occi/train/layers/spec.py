"""The local layer spec with the features of occi/train/layers swapped in, as a ModelConfig asks
for them. Transformer Engine's fused spec has no place for these modules, so a model using any of
them is built on the local spec, GPU or not."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from occi.train.config import ModelConfig


def uses_custom_layers(model: ModelConfig) -> bool:
    return model.zero_centered_norms or model.sandwich_norms or model.local_rotary_base is not None


def rewrite(spec: Any, change: Callable[[Any], Any]) -> Any:
    """`spec` with every value (walking lists and dataclass specs, innermost first) that
    `change` maps to something other than None replaced by what it maps to."""
    if isinstance(spec, list):
        spec = [rewrite(item, change) for item in spec]
    elif dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        spec = dataclasses.replace(spec, **{f.name: rewrite(getattr(spec, f.name), change)
                                            for f in dataclasses.fields(spec) if f.init})
    replaced = change(spec)
    return spec if replaced is None else replaced


def custom_block_spec(config, model: ModelConfig):
    """megatron's local block spec (layers and final norm) with this model's custom layers."""
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_decoder_block_spec  # loads megatron: only when used
    from megatron.core.tensor_parallel import RowParallelLinear  # loads megatron: only when used
    from megatron.core.transformer.attention import SelfAttention  # loads megatron: only when used
    from megatron.core.transformer.spec_utils import ModuleSpec  # loads megatron: only when used
    from megatron.core.transformer.torch_norm import WrappedTorchNorm  # loads megatron: only when used

    from occi.train.layers.local_rope import LocalRopeSelfAttention  # loads megatron: only when used
    from occi.train.layers.post_norm import RowParallelLinearWithPostNorm  # loads megatron: only when used
    from occi.train.layers.zero_centered_norm import ZeroCenteredRMSNorm  # loads torch: only when used

    norm = ZeroCenteredRMSNorm if model.zero_centered_norms else WrappedTorchNorm

    def change(value):
        if value is WrappedTorchNorm:
            return norm
        if value is RowParallelLinear and model.sandwich_norms:  # attention's linear_proj, the MLP's linear_fc2
            return ModuleSpec(module=RowParallelLinearWithPostNorm, params={"norm": norm})
        if isinstance(value, ModuleSpec) and value.module is SelfAttention and model.local_rotary_base is not None:
            return dataclasses.replace(value, module=LocalRopeSelfAttention,
                                       params={**value.params, "local_rotary_base": model.local_rotary_base})
        return None

    spec = get_gpt_decoder_block_spec(config, use_transformer_engine=False, normalization="RMSNorm")
    return rewrite(spec, change)
