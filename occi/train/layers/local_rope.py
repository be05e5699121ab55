"""Self-attention whose sliding-window layers rotate queries and keys with a RoPE base of their own
(Gemma 3: 10k for the local layers, 1M and linear scaling for the global ones).

GPTModel computes one rotary embedding and hands it to every layer; a sliding-window layer (the
same rule megatron's attention uses to give it the window: config.window_size and
window_attn_skip_freq, by global layer number) replaces it with its own, unscaled."""
from __future__ import annotations

from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding
from megatron.core.transformer.attention import SelfAttention
from megatron.core.transformer.utils import is_layer_window_attention


class LocalRopeSelfAttention(SelfAttention):
    def __init__(self, config, submodules, layer_number: int, *args, local_rotary_base: int, **kwargs):
        super().__init__(config, submodules, layer_number, *args, **kwargs)
        self.local_rotary = None
        if is_layer_window_attention(config.window_size, config.window_attn_skip_freq, layer_number):
            self.local_rotary = RotaryEmbedding(kv_channels=config.kv_channels, rotary_percent=1.0,
                                                rotary_base=local_rotary_base,
                                                use_cpu_initialization=config.use_cpu_initialization)

    def forward(self, hidden_states, *args, rotary_pos_emb=None, **kwargs):
        if self.local_rotary is not None and rotary_pos_emb is not None:
            rotary_pos_emb = self.local_rotary(rotary_pos_emb.shape[0])
        return super().forward(hidden_states, *args, rotary_pos_emb=rotary_pos_emb, **kwargs)
