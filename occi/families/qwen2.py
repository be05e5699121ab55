"""Qwen2 / Qwen2.5: biases on q, k and v; a sliding window only with use_sliding_window."""
from __future__ import annotations

from occi.families import Family, GgufSpec, common


def _fields(config: dict, where: str) -> dict:
    return common.llama_fields(config, where, qkv_bias=True, sliding_window=False)


FAMILY = Family(
    model_type="qwen2", hf_class="Qwen2ForCausalLM", model_fields=_fields,
    layer_mappings=common.llama_layer, global_mappings=common.global_mappings,
    gguf=GgufSpec(arch="QWEN2", interleave_rope=False),  # llama.cpp rotates halves for Qwen
)
