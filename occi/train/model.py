"""The Llama architecture as a megatron-core GPTModel: RMSNorm, SwiGLU, rotary embeddings,
grouped-query attention, no biases, untied input and output embeddings; and the variations an
imported base may need (occi/families/): qkv biases (Qwen2), q/k norm (Qwen3), tied
embeddings, Llama 3.1 RoPE scaling, a sliding window (Mistral); Gemma 3's GeGLU, (1 + w) norms,
sandwich norms, scaled embeddings, softmax scale and local/global attention with a RoPE each, and
Apertus' ungated xIELU MLP (modules of their own in occi/train/layers/, on the local spec).

The model is built here; how it is parallelised (TP/PP sizes, DDP) is decided by the trainer.
On GPU with Transformer Engine installed the fused TE layer spec is used, else megatron's
local (pure PyTorch) spec; both have the same weights, and export handles both names. Sequence
parallelism (asked for, or a mixture of experts at TP > 1, where megatron-core requires it) uses
torch's RMSNorm marked sequence-parallel on the local spec.
"""
from __future__ import annotations

import hashlib
import math
import re

import torch

from occi.train.config import ModelConfig, TrainConfig, padded_vocab_size
from occi.train.knobs import recompute_settings
from occi.train.layers.activations import ACTIVATIONS
from occi.train.layers.embedding_scale import scale_embeddings
from occi.train.layers.spec import custom_block_spec, rewrite, uses_custom_layers


def transformer_config(model: ModelConfig, train: TrainConfig, dtype: torch.dtype):
    from megatron.core.transformer.transformer_config import MLATransformerConfig, TransformerConfig  # loads megatron: only when used

    on_gpu = torch.cuda.is_available()
    config_class = MLATransformerConfig if model.is_mla else TransformerConfig
    return config_class(**moe_settings(model, train), **recompute_settings(train), **mla_settings(model),
        num_layers=model.num_layers,
        hidden_size=model.hidden_size,
        ffn_hidden_size=model.ffn_hidden_size,
        num_attention_heads=model.num_attention_heads,
        num_query_groups=model.num_query_groups,
        kv_channels=model.mla_v_head_dim if model.is_mla else model.head_dim,
        normalization="RMSNorm",
        layernorm_epsilon=model.norm_epsilon,
        gated_linear_unit=model.mlp_activation != "xielu",
        activation_func=ACTIVATIONS[model.mlp_activation],
        softmax_scale=model.softmax_scale,
        add_bias_linear=model.linear_biases,
        softmax_type="learnable" if model.attention_sinks else "vanilla",
        activation_func_clamp_value=model.glu_clamp,
        glu_linear_offset=model.glu_linear_offset,
        add_qkv_bias=model.qkv_bias,
        qk_layernorm=model.qk_norm or model.is_mla,  # MLA: the norms of the q and kv latents
        # megatron keeps keys j >= i - window[0]: a window of W tokens, the token itself included
        window_size=(model.sliding_window - 1, 0) if model.sliding_window else None,
        window_attn_skip_freq=model.full_attention_every,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        init_method_std=model.init_method_std,
        tensor_model_parallel_size=train.tensor_parallel,
        pipeline_model_parallel_size=train.pipeline_parallel,
        # megatron-core refuses to train an MoE layer at TP > 1 without sequence parallelism (each
        # tensor-parallel rank routes its own slice of the sequence instead of all ranks the same tokens)
        sequence_parallel=uses_sequence_parallel(model, train),
        context_parallel_size=train.context_parallel,
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


def mla_settings(model: ModelConfig) -> dict:
    """MLATransformerConfig's multi-head latent attention fields (none without MLA): RoPE on the
    rotary part of each head, plain (mscale 1, softmax scale 1/sqrt(nope + rope dims)) or YaRN
    (megatron's MLA YaRN: the rotary part's cos and sin times mscale(factor, mscale) /
    mscale(factor, mscale_all_dim), the softmax scale times mscale(factor, mscale_all_dim) squared,
    the correction range rounded to whole dimensions, as transformers' DeepseekV3 does)."""
    if not model.is_mla:
        return {}
    widths = dict(q_lora_rank=model.mla_q_lora_rank, kv_lora_rank=model.mla_kv_lora_rank,
                  qk_head_dim=model.mla_qk_nope_head_dim, qk_pos_emb_head_dim=model.mla_qk_rope_head_dim,
                  v_head_dim=model.mla_v_head_dim, rotary_base=model.rotary_base)
    if not model.yarn_factor:
        return dict(widths, rope_type="rope", rotary_scaling_factor=1.0, mscale=1.0, mscale_all_dim=0.0)
    return dict(widths, rope_type="yarn", rotary_scaling_factor=model.yarn_factor,
                original_max_position_embeddings=model.yarn_original_context, beta_fast=model.yarn_beta_fast,
                beta_slow=model.yarn_beta_slow, mscale=1.0 if model.yarn_mscale is None else model.yarn_mscale,
                mscale_all_dim=model.yarn_mscale_all_dim or 0.0)


def uses_sequence_parallel(model: ModelConfig, train: TrainConfig) -> bool:
    """Asked for (train.sequence_parallel), or a mixture of experts at TP > 1: megatron-core refuses
    to train an MoE layer there without it (each tensor-parallel rank routes its own slice of the
    sequence instead of all ranks the same tokens)."""
    return train.sequence_parallel or (model.is_moe and train.tensor_parallel > 1)


def moe_settings(model: ModelConfig, train: TrainConfig) -> dict:
    """TransformerConfig's mixture-of-experts fields (none for a dense model).

    Routed experts run one after another (SequentialMLP): grouped GEMM needs CUDA kernels. The
    router takes the top-k of the logits and softmaxes over them, which equals Mixtral's softmax
    over all experts renormalised over the top k; moe_norm_top_k False softmaxes first (Qwen2-MoE)."""
    if not model.is_moe:
        return {}
    balancing = model.moe_balancing
    return dict(
        num_moe_experts=model.num_experts,
        moe_router_topk=model.moe_top_k,
        moe_ffn_hidden_size=model.expert_ffn_hidden_size,
        moe_shared_expert_intermediate_size=model.moe_shared_expert_ffn_hidden_size,
        moe_shared_expert_gate=model.moe_shared_expert_gate,
        moe_layer_freq=model.moe_layers,
        moe_router_pre_softmax=not model.moe_norm_top_k,
        moe_router_load_balancing_type="aux_loss" if balancing == "aux_loss" else "none",
        moe_aux_loss_coeff=model.moe_aux_loss_coeff if balancing == "aux_loss" else 0.0,
        moe_router_enable_expert_bias=balancing == "expert_bias",
        moe_router_score_function="sigmoid" if balancing == "expert_bias" else "softmax",
        moe_router_bias_update_rate=model.moe_bias_update_rate,
        moe_router_num_groups=model.moe_router_groups,
        moe_router_group_topk=model.moe_router_group_top_k,
        moe_router_topk_scaling_factor=model.moe_routed_scaling_factor if model.moe_routed_scaling_factor != 1 else None,
        moe_expert_capacity_factor=model.moe_capacity_factor,
        moe_token_dispatcher_type=token_dispatcher(train),
        moe_grouped_gemm=False,
        moe_router_dtype="fp32",
        expert_model_parallel_size=train.expert_parallel,
        expert_tensor_parallel_size=expert_tensor_parallel(model, train),
    )


def expert_tensor_parallel(model: ModelConfig, train: TrainConfig) -> int:
    """Tensor-parallel ranks an expert is split over: all of them, except for experts with biases
    (gpt-oss), which megatron-core 0.16 keeps whole on each rank ("Bias in Moe is only supported
    when ETP==1"); attention is still split."""
    return 1 if model.is_moe and model.linear_biases else train.tensor_parallel


def token_dispatcher(train: TrainConfig) -> str:
    """The configured dispatcher; auto: all-to-all on GPU, all-gather on CPU, where megatron's
    all-to-all dispatcher cannot start (it creates a torch.cuda.Stream for its host copies)."""
    if train.moe_token_dispatcher != "auto":
        return train.moe_token_dispatcher
    return "alltoall" if torch.cuda.is_available() else "allgather"


def has_transformer_engine() -> bool:
    """Whether this rank builds the fused Transformer Engine layer spec (a GPU with TE installed)."""
    if not torch.cuda.is_available():
        return False
    try:
        import transformer_engine  # noqa: F401  optional: transformer_engine may be missing (the except names the fix)
    except ImportError:
        return False
    return True


def layer_spec(config, model: ModelConfig | None = None):
    """One spec for every layer, or, with experts, a block spec saying which layers are MoE; a
    model using occi/train/layers' features gets megatron's local block spec with them."""
    from megatron.core.models.gpt.gpt_layer_specs import (
        get_gpt_decoder_block_spec,
        get_gpt_layer_local_spec,
        get_gpt_layer_with_transformer_engine_spec,
    )  # loads megatron: only when used

    if model is not None and uses_custom_layers(model):
        spec = custom_block_spec(config, model)
        return _with_sequence_parallel_norms(spec) if config.sequence_parallel else spec
    te = has_transformer_engine()
    if config.num_moe_experts or (config.sequence_parallel and not te):
        # a dense config gets dense layers here too; the block spec also names the final norm
        spec = get_gpt_decoder_block_spec(config, use_transformer_engine=te, normalization="RMSNorm")
        if not te and config.sequence_parallel:
            spec = _with_sequence_parallel_norms(spec)
    elif te:
        return get_gpt_layer_with_transformer_engine_spec(qk_layernorm=config.qk_layernorm,
                                                          multi_latent_attention=config.multi_latent_attention)
    else:
        spec = get_gpt_layer_local_spec(normalization="RMSNorm", qk_layernorm=config.qk_layernorm,
                                        multi_latent_attention=config.multi_latent_attention)
    return rewrite(spec, _latent_attention) if config.multi_latent_attention and not te else spec


def _latent_attention(value):
    from megatron.core.transformer.dot_product_attention import DotProductAttention  # loads megatron: only when used

    from occi.train.layers.latent_attention import LatentDotProductAttention  # loads megatron: only when used

    return LatentDotProductAttention if value is DotProductAttention else None


class SequenceParallelRMSNorm:
    """torch's RMSNorm in place of megatron's WrappedTorchNorm, which refuses sequence parallelism
    (the fused Transformer Engine norm is the only one megatron gives for it). The weight is marked
    sequence-parallel: each tensor-parallel rank sees its own slice of the sequence, and megatron's
    finalize_model_grads sums such weights' gradients over the tensor-parallel group."""

    def __new__(cls, config, hidden_size: int, eps: float = 1e-5, **_unused):
        norm = torch.nn.RMSNorm(hidden_size, eps=eps)
        norm.weight.sequence_parallel = True
        return norm


def _with_sequence_parallel_norms(spec):
    """The spec with every WrappedTorchNorm (layer, q/k and final norms) a SequenceParallelRMSNorm."""
    from megatron.core.transformer.torch_norm import WrappedTorchNorm  # loads megatron: only when used

    return rewrite(spec, lambda value: SequenceParallelRMSNorm if value is WrappedTorchNorm else None)


def _router_without_transformer_engine() -> None:
    """megatron-core 0.16.1's router reads moe_utils.te_general_gemm, a name bound only when
    Transformer Engine imports (else a NameError in the first forward); None selects its plain
    torch matmul."""
    from megatron.core.transformer.moe import moe_utils  # loads megatron: only when used

    if not hasattr(moe_utils, "te_general_gemm"):
        moe_utils.te_general_gemm = None


def build_model(model: ModelConfig, train: TrainConfig, vocab_size: int, dtype: torch.dtype):
    """The GPTModel part of this pipeline stage (megatron's parallel state must be set up)."""
    from megatron.core import parallel_state  # loads megatron: only when used
    from megatron.core.models.gpt import GPTModel  # loads megatron: only when used

    if model.is_moe:
        _router_without_transformer_engine()
    if model.is_mla and not has_transformer_engine():
        from occi.train.layers.latent_attention import without_transformer_engine  # loads megatron: only when used

        without_transformer_engine()
    config = transformer_config(model, train, dtype)
    yarn_for_every_head = model.yarn_factor and not model.is_mla  # latent attention rotates by itself
    if yarn_for_every_head:
        _set_yarn(config, model)
    gpt = GPTModel(
        config=config,
        transformer_layer_spec=layer_spec(config, model),
        vocab_size=padded_vocab_size(vocab_size, model, train.tensor_parallel),
        max_sequence_length=model.seq_length,
        pre_process=parallel_state.is_pipeline_first_stage(),
        post_process=parallel_state.is_pipeline_last_stage(),
        share_embeddings_and_output_weights=model.tied_embeddings,
        position_embedding_type="yarn" if yarn_for_every_head else "rope",
        rotary_base=model.rotary_base,
        rope_scaling=model.rope_scaling_factor is not None,
        rope_scaling_factor=model.rope_scaling_factor or 8.0,
        seq_len_interpolation_factor=model.rope_linear_factor,
    )
    if model.scale_embeddings and gpt.pre_process:
        scale_embeddings(gpt, model.hidden_size)
    if model.mlp_activation == "xielu":
        from occi.train.layers.xielu import give_each_mlp_its_xielu  # loads megatron: only when used

        give_each_mlp_its_xielu(gpt, dtype)
    return gpt


def _set_yarn(config, model: ModelConfig) -> None:
    """The YaRN settings GPTModel and the attention read from the config by name (megatron-core 0.16
    declares them on MLATransformerConfig only); mscale None: YaRN's 0.1 ln(factor) + 1, as
    transformers; fractional correction bounds (transformers' truncate false, gpt-oss)."""
    config.yarn_rotary_scaling_factor = model.yarn_factor
    config.yarn_original_max_position_embeddings = model.yarn_original_context
    config.yarn_beta_fast, config.yarn_beta_slow = model.yarn_beta_fast, model.yarn_beta_slow
    config.yarn_mscale = config.yarn_mscale_all_dim = None
    config.yarn_correction_range_round_to_int = False


def initialize_independent_of_layout(model, config: ModelConfig, seed: int) -> None:
    """Redraws every weight of this rank's part of the model from a generator seeded by the
    weight's global name (global layer number, global expert number), sliced for this rank's
    tensor-parallel part: the same model at every TP, PP and EP size.

    megatron's CPU initialisation draws the weights one after another from one generator, so at
    EP=2 (half the experts built per rank) every later tensor would differ from EP=1's. Same
    distributions as megatron's: normal(0, std) weights, std / sqrt(2 layers) for the output
    projections of attention and MLPs, norms at 1."""
    from megatron.core import parallel_state  # loads megatron: only when used

    def tensor_parallel_of(name: str) -> tuple[int, int]:
        if "local_experts." in name:  # experts split over the expert tensor-parallel ranks
            return (parallel_state.get_expert_tensor_parallel_world_size(),
                    parallel_state.get_expert_tensor_parallel_rank())
        return parallel_state.get_tensor_model_parallel_world_size(), parallel_state.get_tensor_model_parallel_rank()

    ep_rank = parallel_state.get_expert_model_parallel_rank()
    std, scaled = config.init_method_std, config.init_method_std / math.sqrt(2 * config.num_layers)
    with torch.no_grad():
        for name, param in _global_names(model, ep_rank):
            if ".activation_func." in name:  # xIELU's scalars keep their published starting values
                continue
            if name.endswith("layernorm.weight") or name.endswith("layer_norm_weight"):
                param.fill_(0.0 if config.zero_centered_norms else 1.0)  # (1 + w) norms start at w = 0
                continue
            if name.endswith(".bias") or name.endswith("expert_bias") or name.endswith("softmax_offset"):
                param.zero_()
                continue
            tp, tp_rank = tensor_parallel_of(name)
            split = getattr(param, "tensor_model_parallel", False) and tp > 1
            shape = list(param.shape)
            if split:
                shape[param.partition_dim] *= tp
            digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
            generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
            out_projection = name.endswith("linear_proj.weight") or name.endswith("linear_fc2.weight")
            full = torch.empty(shape, dtype=torch.float32).normal_(0.0, scaled if out_projection else std,
                                                                     generator=generator)
            if split:
                full = _tensor_parallel_part(name, param, full, tp, tp_rank, gated=config.mlp_activation != "xielu")
            param.copy_(full.to(param.dtype))


def _global_names(model, ep_rank: int):
    """(name with global layer and expert numbers, parameter) of this rank's part of a GPTModel."""
    from megatron.core import parallel_state  # loads megatron: only when used

    local_experts = (model.config.num_moe_experts or 0) // parallel_state.get_expert_model_parallel_world_size()
    layer_numbers = {f"decoder.layers.{i}.": f"decoder.layers.{layer.layer_number - 1}."
                     for i, layer in enumerate(model.decoder.layers)}
    for name, param in model.named_parameters():
        match = re.match(r"decoder\.layers\.\d+\.", name)
        if match:
            name = layer_numbers[match.group(0)] + name[match.end():]
        expert = re.search(r"local_experts\.(\d+)\.", name)
        if expert:
            number = ep_rank * local_experts + int(expert.group(1))
            name = name[: expert.start()] + f"local_experts.{number}." + name[expert.end():]
        yield name, param


def _tensor_parallel_part(name: str, param: torch.Tensor, full: torch.Tensor, tp: int, rank: int,
                          gated: bool) -> torch.Tensor:
    """The slice of a full tensor that tensor-parallel rank `rank` holds (a gated fc1 holds its part
    of the gate, then its part of the up projection)."""
    if gated and name.endswith("linear_fc1.weight"):
        gate, up = torch.chunk(full, 2, dim=0)
        return torch.cat([torch.chunk(gate, tp, dim=0)[rank], torch.chunk(up, tp, dim=0)[rank]])
    return torch.chunk(full, tp, dim=param.partition_dim)[rank]
