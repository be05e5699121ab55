"""The Llama architecture as a megatron-core GPTModel: RMSNorm, SwiGLU, rotary embeddings,
grouped-query attention, no biases, untied input and output embeddings; and the variations an
imported base may need (occi/train/hf_arch.py): qkv biases (Qwen2), q/k norm (Qwen3), tied
embeddings, Llama 3.1 RoPE scaling, a sliding window (Mistral).

The model is built here; how it is parallelised (TP/PP sizes, DDP) is decided by the trainer.
On GPU with Transformer Engine installed the fused TE layer spec is used, else megatron's
local (pure PyTorch) spec; both have the same weights, and export handles both names.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from occi.train.config import ModelConfig, TrainConfig


def padded_vocab_size(vocab_size: int, model: ModelConfig, tensor_parallel: int) -> int:
    """The embedding size: the vocabulary padded to a multiple of make_vocab_size_divisible_by
    (and of the tensor-parallel size). Unlike Megatron-LM's multiple x TP, the size does not
    change with TP (for TP sizes dividing the multiple), so checkpoints move between TP sizes.
    An imported base keeps its own embedding size."""
    if model.vocab_size is not None:
        if model.vocab_size % tensor_parallel:
            from occi.errors import OcciError

            raise OcciError(f"the base model's vocabulary ({model.vocab_size} rows) does not split over "
                            f"tensor_parallel {tensor_parallel}; choose a tensor-parallel size dividing it")
        return model.vocab_size
    multiple = math.lcm(model.make_vocab_size_divisible_by, tensor_parallel)
    return -(-vocab_size // multiple) * multiple


def transformer_config(model: ModelConfig, train: TrainConfig, dtype: torch.dtype):
    from megatron.core.transformer.transformer_config import TransformerConfig

    on_gpu = torch.cuda.is_available()
    return TransformerConfig(
        num_layers=model.num_layers,
        hidden_size=model.hidden_size,
        ffn_hidden_size=model.ffn_hidden_size,
        num_attention_heads=model.num_attention_heads,
        num_query_groups=model.num_query_groups,
        kv_channels=model.head_dim,
        normalization="RMSNorm",
        layernorm_epsilon=model.norm_epsilon,
        gated_linear_unit=True,
        activation_func=F.silu,
        add_bias_linear=False,
        add_qkv_bias=model.qkv_bias,
        qk_layernorm=model.qk_norm,
        # megatron keeps keys j >= i - window[0]: a window of W tokens, the token itself included
        window_size=(model.sliding_window - 1, 0) if model.sliding_window else None,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        init_method_std=model.init_method_std,
        tensor_model_parallel_size=train.tensor_parallel,
        pipeline_model_parallel_size=train.pipeline_parallel,
        pipeline_dtype=dtype,
        params_dtype=dtype,
        bf16=dtype == torch.bfloat16,
        # The full weight is initialised and then split: any TP size starts from the same model.
        use_cpu_initialization=not on_gpu,
        bias_dropout_fusion=False,
        apply_rope_fusion=False,
        masked_softmax_fusion=on_gpu,
        gradient_accumulation_fusion=False,
        persist_layer_norm=False,
    )


def layer_spec(config):
    from megatron.core.models.gpt.gpt_layer_specs import (
        get_gpt_layer_local_spec,
        get_gpt_layer_with_transformer_engine_spec,
    )

    if torch.cuda.is_available():
        try:
            import transformer_engine  # noqa: F401

            return get_gpt_layer_with_transformer_engine_spec(qk_layernorm=config.qk_layernorm)
        except ImportError:
            pass
    return get_gpt_layer_local_spec(normalization="RMSNorm", qk_layernorm=config.qk_layernorm)


def build_model(model: ModelConfig, train: TrainConfig, vocab_size: int, dtype: torch.dtype):
    """The GPTModel part of this pipeline stage (megatron's parallel state must be set up)."""
    from megatron.core import parallel_state
    from megatron.core.models.gpt import GPTModel

    config = transformer_config(model, train, dtype)
    return GPTModel(
        config=config,
        transformer_layer_spec=layer_spec(config),
        vocab_size=padded_vocab_size(vocab_size, model, train.tensor_parallel),
        max_sequence_length=model.seq_length,
        pre_process=parallel_state.is_pipeline_first_stage(),
        post_process=parallel_state.is_pipeline_last_stage(),
        share_embeddings_and_output_weights=model.tied_embeddings,
        position_embedding_type="rope",
        rotary_base=model.rotary_base,
        rope_scaling=model.rope_scaling_factor is not None,
        rope_scaling_factor=model.rope_scaling_factor or 8.0,
    )


def flops_per_token(model: ModelConfig, vocab_size: int) -> float:
    """Training FLOPs per token: 6 x parameters (forward + backward matmuls) + attention."""
    lookup = 0 if model.tied_embeddings else vocab_size * model.hidden_size  # the input embedding is a lookup
    matmul_params = model.parameters(vocab_size) - lookup
    attention = 12 * model.num_layers * model.hidden_size * model.seq_length
    return 6 * matmul_params + attention
