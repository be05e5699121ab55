"""The Llama architecture as a megatron-core GPTModel: RMSNorm, SwiGLU, rotary embeddings,
grouped-query attention, no biases, untied input and output embeddings.

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
    change with TP (for TP sizes dividing the multiple), so checkpoints move between TP sizes."""
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
        add_qkv_bias=False,
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

            return get_gpt_layer_with_transformer_engine_spec()
        except ImportError:
            pass
    return get_gpt_layer_local_spec(normalization="RMSNorm")


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
        share_embeddings_and_output_weights=False,
        position_embedding_type="rope",
        rotary_base=model.rotary_base,
    )


def flops_per_token(model: ModelConfig, vocab_size: int) -> float:
    """Training FLOPs per token: 6 x parameters (forward + backward matmuls) + attention."""
    matmul_params = model.parameters(vocab_size) - vocab_size * model.hidden_size  # input embedding is a lookup
    attention = 12 * model.num_layers * model.hidden_size * model.seq_length
    return 6 * matmul_params + attention
