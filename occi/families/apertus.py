"""Apertus (Swiss AI): a Llama-like decoder with RMSNorm on each head's query and key, an ungated
MLP whose activation is xIELU with two learnable scalars per layer (ModelConfig.mlp_activation
"xielu", occi/train/layers/xielu.py), Llama 3.1 RoPE scaling, and its own names for the two
pre-norms (attention_layernorm, feedforward_layernorm). llama.cpp runs it as `apertus` (halves
rotated, so q/k are not interleaved) and reads the xIELU scalars as per-layer hyper-parameters."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from occi.errors import OcciError
from occi.families import Family, GgufSpec, common
from occi.families.mapping import Mapping, Rename

if TYPE_CHECKING:
    from occi.train.config import ModelConfig

XIELU_SCALARS = {"alpha_p": (1,), "alpha_n": (1,), "beta": (), "eps": ()}
"""transformers' xIELU tensors of each layer (mlp.act_fn.*) and their shapes; megatron holds them
as mlp.activation_func.* (alpha_p, alpha_n learned; beta, eps fixed buffers)."""
NORMS = {"input_layernorm": "attention_layernorm", "post_attention_layernorm": "feedforward_layernorm"}
"""The Llama names of the two pre-norms -> Apertus'."""


def _fields(config: dict, where: str) -> dict:
    if config.get("hidden_act") != "xielu":
        raise OcciError(f"{where}: hidden_act {config.get('hidden_act')!r}; occi's Apertus converter supports xielu")
    return {**common.llama_fields({**config, "hidden_act": "silu"}, where, qk_norm=True), "mlp_activation": "xielu"}


def _with_apertus_norms(mapping: Mapping) -> Mapping:
    for llama, apertus in NORMS.items():
        if isinstance(mapping, Rename) and mapping.hf.endswith(f".{llama}.weight"):
            return dataclasses.replace(mapping, hf=mapping.hf.replace(f".{llama}.", f".{apertus}."))
    return mapping


def _layer(model: "ModelConfig", layer: int) -> list[Mapping]:
    hf, mg = f"model.layers.{layer}.mlp.", f"decoder.layers.{layer}.mlp."
    h, f = model.hidden_size, model.ffn_hidden_size
    attention = [_with_apertus_norms(m) for m in common.attention_mappings(model, layer)]
    mlp = [Rename(f"{hf}up_proj.weight", f"{mg}linear_fc1.weight", (f, h)),
           Rename(f"{hf}down_proj.weight", f"{mg}linear_fc2.weight", (h, f))]
    scalars = [Rename(f"{hf}act_fn.{name}", f"{mg}activation_func.{name}", shape) for name, shape in XIELU_SCALARS.items()]
    return attention + mlp + scalars


def _gguf_scalars(writer, scalars: dict[str, float]) -> None:
    """llama.cpp's apertus reads xIELU's parameters as per-layer arrays, alpha_p and alpha_n as stored
    (it applies the softplus itself), as llama.cpp's own converter writes them."""
    for name in XIELU_SCALARS:
        by_layer = sorted((int(key.split(".")[2]), value) for key, value in scalars.items()
                          if key.endswith(f".act_fn.{name}"))
        getattr(writer, f"add_xielu_{name}")([value for _, value in by_layer])


FAMILY = Family(
    model_type="apertus", hf_class="ApertusForCausalLM", model_fields=_fields,
    layer_mappings=_layer, global_mappings=common.global_mappings,
    gguf=GgufSpec(arch="APERTUS", interleave_rope=False, scalar_hparams=_gguf_scalars),
)
