"""Qwen3: RMSNorm on each head's query and key; a sliding window only with use_sliding_window."""
from __future__ import annotations

from occi.families import Family, GgufSpec, common


def _fields(config: dict, where: str) -> dict:
    return common.llama_fields(config, where, qk_norm=True, sliding_window=False)


FAMILY = Family(
    model_type="qwen3", hf_class="Qwen3ForCausalLM", model_fields=_fields,
    layer_mappings=common.llama_layer, global_mappings=common.global_mappings,
    gguf=GgufSpec(arch="QWEN3", interleave_rope=False),  # llama.cpp rotates halves for Qwen
)
