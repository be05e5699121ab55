"""Mistral (7B v0.1 and later): Llama's layers with a sliding attention window."""
from __future__ import annotations

from occi.families import Family, GgufSpec, common

FAMILY = Family(
    model_type="mistral", hf_class="MistralForCausalLM", model_fields=common.llama_fields,
    layer_mappings=common.llama_layer, global_mappings=common.global_mappings,
    gguf=GgufSpec(arch="LLAMA", interleave_rope=True),
)
