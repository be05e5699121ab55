"""Llama (1, 2, 3, 3.1 with its `llama3` RoPE scaling): the family every dense recipe exports to."""
from __future__ import annotations

from occi.families import Family, GgufSpec, common


def _exports_recipe(model) -> str | None:
    if model.is_mla:
        return "multi-head latent attention"
    if model.is_moe:
        return "a recipe with experts"
    return {"xielu": "an xIELU MLP", "geglu": "a GeGLU MLP", "quick_geglu": "gpt-oss' clamped GLU"}.get(
        model.mlp_activation)


FAMILY = Family(
    model_type="llama", hf_class="LlamaForCausalLM", model_fields=common.llama_fields,
    layer_mappings=common.llama_layer, global_mappings=common.global_mappings,
    export_values=common.dense_export_values, exports_recipe=_exports_recipe,
    gguf=GgufSpec(arch="LLAMA", interleave_rope=True),
)
