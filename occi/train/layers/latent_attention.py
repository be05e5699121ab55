"""megatron-core's local DotProductAttention for multi-head latent attention.

MLASelfAttention builds its core attention with k_channels and v_channels (query/key heads wider
than value heads); megatron-core 0.16 passes those only to Transformer Engine's attention, and the
local DotProductAttention refuses them. Its computation already reads the head widths from the
tensors; only its output width comes from the config's kv_channels, which occi sets to the value
head width for MLA (occi/train/model.py). So this class takes the two arguments and checks that."""
from __future__ import annotations

from megatron.core.transformer import multi_latent_attention
from megatron.core.transformer.dot_product_attention import DotProductAttention


class LatentDotProductAttention(DotProductAttention):
    """DotProductAttention that accepts MLA's separate key and value head widths."""

    def __init__(self, config, layer_number, attn_mask_type, attention_type, attention_dropout=None,
                 softmax_scale=None, k_channels=None, v_channels=None, cp_comm_type=None, pg_collection=None):
        if v_channels is not None and v_channels != config.kv_channels:
            raise ValueError(f"value heads of {v_channels} need kv_channels {v_channels}, not {config.kv_channels}")
        super().__init__(config, layer_number, attn_mask_type, attention_type, attention_dropout=attention_dropout,
                         softmax_scale=softmax_scale, cp_comm_type=cp_comm_type, pg_collection=pg_collection)


def without_transformer_engine() -> None:
    """Without Transformer Engine, megatron-core 0.16's multi_latent_attention still finds its TE
    names bound (to stand-ins that are not classes) and calls isinstance with one, which fails while
    the layer is built; its HAVE_TE False takes the plain path."""
    if not isinstance(multi_latent_attention.TELinear, type):
        multi_latent_attention.HAVE_TE = False
