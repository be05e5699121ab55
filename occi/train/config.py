"""The model shape (a recipe under models/) and the training settings of a run."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from occi import ranges
from occi.errors import OcciError


@dataclass
class ModelConfig:
    num_layers: int
    """Transformer layers."""
    hidden_size: int
    """Width of the residual stream."""
    ffn_hidden_size: int
    """Inner width of the MLP."""
    num_attention_heads: int
    """Query heads."""
    num_query_groups: int
    """Key/value heads (grouped-query attention); equal to the query heads for plain MHA."""
    seq_length: int
    """Training sequence length in tokens."""
    description: str = ""
    """One line saying what this shape is for."""
    rotary_base: int = 10_000
    """Base of the rotary position embedding (Llama 2: 10k; Llama 3: 500k)."""
    norm_epsilon: float = 1e-5
    """RMSNorm epsilon."""
    init_method_std: float = 0.02
    """Standard deviation of the initial weights."""
    make_vocab_size_divisible_by: int = 128
    """The embedding is padded to a multiple of this (the same for every tensor-parallel size)."""
    kv_channels: int | None = None
    """Width of one attention head; None: hidden_size / num_attention_heads (Qwen3 sets its own)."""
    qkv_bias: bool = False
    """Biases on the query, key and value projections (Qwen2)."""
    qk_norm: bool = False
    """RMSNorm over each query and key head before RoPE (Qwen3, Apertus)."""
    mlp_activation: Literal["swiglu", "geglu", "quick_geglu", "xielu"] = "swiglu"
    """The MLP: swiglu, silu(gate) * up (Llama); geglu, GELU with the tanh approximation of the
    gate * up (Gemma's gelu_pytorch_tanh); quick_geglu, gate * sigmoid(1.702 gate) * up (gpt-oss,
    with glu_clamp and glu_linear_offset); xielu, xIELU(up) with no gate and two learnable scalars
    per layer (Apertus; occi/train/layers/xielu.py)."""
    tied_embeddings: bool = False
    """The output layer shares the input embedding's weights."""
    rope_scaling_factor: float | None = None
    """Llama 3.1 RoPE frequency scaling factor (low/high frequency factors 1 and 4, original
    context 8192, as megatron-core implements it); None: no scaling."""
    sliding_window: int | None = None
    """Each token attends to at most this many tokens, itself included (Mistral); None: all."""
    vocab_size: int | None = None
    """Embedding rows fixed by an imported base model (no padding); None: the tokenizer's
    vocabulary padded to make_vocab_size_divisible_by."""
    num_experts: int | None = None
    """Routed experts of each mixture-of-experts layer; None: a dense model (every layer an MLP)."""
    moe_top_k: int = 2
    """Experts each token is sent to."""
    moe_ffn_hidden_size: int | None = None
    """Inner width of one routed expert's SwiGLU MLP; None: ffn_hidden_size."""
    moe_shared_expert_ffn_hidden_size: int | None = None
    """Inner width of the shared expert every token also goes through (DeepSeek, Qwen2-MoE; several
    shared experts are one of their summed width); None: routed experts only (Mixtral, Qwen3-MoE)."""
    moe_shared_expert_gate: bool = False
    """A sigmoid gate (one linear unit of the token) scales the shared expert's output (Qwen2-MoE)."""
    moe_layer_interval: int = 1
    """After the first dense layers, every this-many-th layer is a mixture of experts; the rest
    are dense MLPs of ffn_hidden_size (1: all of them)."""
    moe_first_dense_layers: int = 0
    """Leading layers that stay dense (DeepSeek-V3 keeps its first 3)."""
    moe_norm_top_k: bool = True
    """The top-k router probabilities are renormalised to sum to 1 (Mixtral; Qwen3-MoE's
    norm_topk_prob); False: the softmax over all experts, top-k kept as they are (Qwen2-MoE)."""
    moe_balancing: Literal["aux_loss", "expert_bias", "none"] = "aux_loss"
    """Load balancing: the auxiliary loss (Switch/GShard), the aux-loss-free per-expert bias
    updated from the load (DeepSeek-V3), or none."""
    moe_aux_loss_coeff: float = 0.01
    """Weight of the auxiliary load-balancing loss (aux_loss balancing)."""
    moe_bias_update_rate: float = 1e-3
    """Step of the per-expert bias update (expert_bias balancing)."""
    moe_capacity_factor: float | None = None
    """Tokens an expert takes per step, as a multiple of an even share; the rest are dropped.
    None: no capacity, no token dropping."""
    glu_clamp: float | None = None
    """The gated MLP clamps its gate to at most this and its linear half to [-this, this] before
    the activation (gpt-oss' swiglu_limit); None: no clamp."""
    glu_linear_offset: float = 0.0
    """Added to the gated MLP's linear half before the product (gpt-oss: 1)."""
    linear_biases: bool = False
    """Biases on every linear layer but the embeddings: q/k/v, attention output, router, experts and
    MLPs (gpt-oss' attention_bias and expert biases); needs qkv_bias."""
    attention_sinks: bool = False
    """One learnable logit per attention head joins every softmax and takes its share of the
    probability without a value (gpt-oss' sinks; megatron's softmax_type learnable)."""
    yarn_factor: float | None = None
    """YaRN RoPE scaling factor (gpt-oss: 32); None: no YaRN. The attention is scaled by
    0.1 ln(factor) + 1 as YaRN says."""
    yarn_original_context: int = 4096
    """YaRN: the context the RoPE frequencies were trained for."""
    yarn_beta_fast: float = 32.0
    """YaRN: rotations per context above which a frequency is kept as trained."""
    yarn_beta_slow: float = 1.0
    """YaRN: rotations per context below which a frequency is fully interpolated."""
    yarn_mscale: float | None = None
    """YaRN of latent attention (DeepSeek-V3: 1.0): the numerator's weight on ln(factor) in the
    rotary part's attention factor, with yarn_mscale_all_dim; None: 1."""
    yarn_mscale_all_dim: float | None = None
    """YaRN of latent attention (DeepSeek-V3: 1.0): the denominator's weight on ln(factor) in the
    rotary part's attention factor, and the softmax scale is multiplied by (0.1 x this x ln(factor)
    + 1) squared; None: 0 (no such softmax scaling)."""
    zero_centered_norms: bool = False
    """Every RMSNorm scales by (1 + weight), computed in float32 (Gemma); its weights start at 0."""
    sandwich_norms: bool = False
    """An RMSNorm also after attention and after the MLP, before each residual add (Gemma 2/3's
    post_attention_layernorm and post_feedforward_layernorm)."""
    scale_embeddings: bool = False
    """The input embeddings are multiplied by sqrt(hidden_size), rounded to the weights' dtype (Gemma)."""
    softmax_scale: float | None = None
    """Attention scores are multiplied by this before the softmax (Gemma 3: query_pre_attn_scalar
    ** -0.5); None: 1 / sqrt(head width)."""
    full_attention_every: int | None = None
    """With sliding_window: every this-many-th layer (counting from 1) attends to all tokens and
    the others to the window (Gemma 3: 6); None: every layer keeps to the window."""
    local_rotary_base: int | None = None
    """RoPE base of the sliding-window layers (Gemma 3's rope_local_base_freq); None: rotary_base
    in every layer."""
    rope_linear_factor: float | None = None
    """Linear RoPE scaling: positions are divided by this (megatron's seq_len_interpolation_factor),
    in the layers that use rotary_base (with local_rotary_base: the full-attention layers only);
    None: no scaling."""
    moe_router_groups: int | None = None
    """Group-limited routing (DeepSeek-V3's node-limited routing, n_group): the routed experts fall
    in this many equal groups and a token picks its experts inside its best groups; None: no groups."""
    moe_router_group_top_k: int | None = None
    """Groups a token's experts come from (topk_group); a group scores the sum of its best
    moe_top_k / moe_router_group_top_k experts. Set with moe_router_groups."""
    moe_routed_scaling_factor: float = 1.0
    """The routed experts' weights are multiplied by this (DeepSeek-V3's routed_scaling_factor)."""
    mla_kv_lora_rank: int | None = None
    """Multi-head latent attention (DeepSeek-V2/V3): width of the compressed key/value latent the
    keys and values are projected up from; None: grouped-query attention."""
    mla_q_lora_rank: int | None = None
    """Multi-head latent attention: width of the compressed query latent; None: queries are
    projected from the hidden state directly."""
    mla_qk_nope_head_dim: int = 128
    """Multi-head latent attention: the part of each query/key head without rotary embedding."""
    mla_qk_rope_head_dim: int = 64
    """Multi-head latent attention: the rotary part of each query/key head (the key's is shared by all heads)."""
    mla_v_head_dim: int = 128
    """Multi-head latent attention: width of each value head."""

    def __post_init__(self) -> None:
        one = ranges.at_least(1)
        ranges.check(self, {"num_experts": one, "moe_top_k": one, "moe_ffn_hidden_size": one,
                            "moe_shared_expert_ffn_hidden_size": one, "moe_layer_interval": one,
                            "moe_first_dense_layers": ranges.at_least(0), "moe_aux_loss_coeff": ranges.at_least(0),
                            "moe_bias_update_rate": ranges.POSITIVE, "moe_capacity_factor": ranges.POSITIVE,
                            "moe_router_groups": one, "moe_router_group_top_k": one,
                            "moe_routed_scaling_factor": ranges.POSITIVE, "mla_kv_lora_rank": one,
                            "mla_q_lora_rank": one, "mla_qk_nope_head_dim": one, "mla_qk_rope_head_dim": one,
                            "mla_v_head_dim": one})
        if (self.moe_router_groups is None) != (self.moe_router_group_top_k is None):
            raise ValueError("moe_router_groups and moe_router_group_top_k are set together or not at all")
        if self.moe_router_groups is not None:
            if not self.num_experts or self.num_experts % self.moe_router_groups:
                raise ValueError(f"num_experts {self.num_experts} is not a multiple of moe_router_groups "
                                 f"{self.moe_router_groups}")
            if self.moe_router_group_top_k > self.moe_router_groups or self.moe_top_k % self.moe_router_group_top_k:
                raise ValueError(f"moe_router_group_top_k {self.moe_router_group_top_k} must divide moe_top_k "
                                 f"{self.moe_top_k} and be at most moe_router_groups {self.moe_router_groups}")
        if self.is_mla:
            if self.mla_qk_rope_head_dim % 2:
                raise ValueError(f"mla_qk_rope_head_dim {self.mla_qk_rope_head_dim} is odd; rotary dimensions come in pairs")
            if self.rope_scaling_factor is not None or self.sliding_window or self.qkv_bias or self.qk_norm:
                raise ValueError("multi-head latent attention (mla_kv_lora_rank) goes without rope_scaling_factor, "
                                 "sliding_window, qkv_bias and qk_norm")
        if self.num_experts is not None:
            if self.mlp_activation == "xielu":
                raise ValueError(f"mlp_activation {self.mlp_activation!r}: experts are gated MLPs; use swiglu "
                                 "(or another gated activation) with num_experts")
            if self.moe_top_k > self.num_experts:
                raise ValueError(f"moe_top_k {self.moe_top_k} is above num_experts {self.num_experts}")
            if not any(self.moe_layers):
                raise ValueError(f"moe_first_dense_layers {self.moe_first_dense_layers} leaves no mixture-of-experts "
                                 f"layer among the {self.num_layers} layers")
        ranges.check(self, {"num_layers": one, "hidden_size": one, "ffn_hidden_size": one, "num_attention_heads": one,
                            "num_query_groups": one, "seq_length": ranges.SEQ_LENGTH, "rotary_base": one,
                            "norm_epsilon": ranges.POSITIVE, "init_method_std": ranges.POSITIVE,
                            "make_vocab_size_divisible_by": one, "kv_channels": one, "sliding_window": one,
                            "rope_scaling_factor": ranges.POSITIVE, "vocab_size": one,
                            "softmax_scale": ranges.POSITIVE, "full_attention_every": ranges.at_least(2),
                            "local_rotary_base": one, "rope_linear_factor": ranges.at_least(1),
                            "glu_clamp": ranges.POSITIVE, "glu_linear_offset": ranges.between(-16, 16),
                            "yarn_factor": ranges.at_least(1), "yarn_original_context": one,
                            "yarn_beta_fast": ranges.POSITIVE, "yarn_beta_slow": ranges.POSITIVE,
                            "yarn_mscale": ranges.POSITIVE, "yarn_mscale_all_dim": ranges.POSITIVE})
        if (self.yarn_mscale is not None or self.yarn_mscale_all_dim is not None) and not (
                self.yarn_factor and self.is_mla):
            raise ValueError("yarn_mscale and yarn_mscale_all_dim scale the YaRN of latent attention; set yarn_factor "
                             "and the mla_* widths too, or leave them out")
        if self.linear_biases and not self.qkv_bias:
            raise ValueError("linear_biases biases q, k and v too; set qkv_bias as well")
        if self.yarn_factor and (self.rope_scaling_factor or self.rope_linear_factor):
            raise ValueError("yarn_factor and rope_scaling_factor / rope_linear_factor are two RoPE scalings; "
                             "choose one")
        if (self.full_attention_every or self.local_rotary_base) and not self.sliding_window:
            raise ValueError("full_attention_every and local_rotary_base describe sliding-window layers; "
                             "set sliding_window too")
        if self.rope_linear_factor and self.rope_scaling_factor:
            raise ValueError("rope_linear_factor and rope_scaling_factor are two RoPE scalings; choose one")
        if self.sandwich_norms and self.is_moe:
            raise ValueError("sandwich_norms are supported for dense models; unset num_experts or sandwich_norms")
        if self.kv_channels is None and self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}")
        if self.num_attention_heads % self.num_query_groups:
            raise ValueError(f"num_attention_heads {self.num_attention_heads} is not a multiple of num_query_groups {self.num_query_groups}")

    @property
    def head_dim(self) -> int:
        return self.kv_channels or self.hidden_size // self.num_attention_heads

    @property
    def is_mla(self) -> bool:
        return self.mla_kv_lora_rank is not None

    @property
    def is_moe(self) -> bool:
        return self.num_experts is not None

    @property
    def moe_layers(self) -> list[int]:
        """Per layer 1 for a mixture of experts, 0 for a dense MLP (megatron's moe_layer_freq list)."""
        if self.num_experts is None:
            return [0] * self.num_layers
        first, every = self.moe_first_dense_layers, self.moe_layer_interval
        return [int(i >= first and (i - first) % every == 0) for i in range(self.num_layers)]

    @property
    def expert_ffn_hidden_size(self) -> int:
        return self.moe_ffn_hidden_size or self.ffn_hidden_size

    def mlp_parameters(self) -> int:
        """Parameters of one dense MLP: SwiGLU's gate, up and down projections; xIELU's up and down
        projections and its two learnable scalars."""
        weights = 2 if self.mlp_activation == "xielu" else 3
        return weights * self.hidden_size * self.ffn_hidden_size + (2 if self.mlp_activation == "xielu" else 0)

    def mla_attention_parameters(self) -> int:
        """Weights of one multi-head latent attention block with its two layer norms."""
        h, heads, rope = self.hidden_size, self.num_attention_heads, self.mla_qk_rope_head_dim
        qk, kv = self.mla_qk_nope_head_dim + rope, self.mla_kv_lora_rank
        ql = self.mla_q_lora_rank
        query = h * ql + ql + ql * heads * qk if ql else h * heads * qk
        key_value = h * (kv + rope) + kv + kv * heads * (self.mla_qk_nope_head_dim + self.mla_v_head_dim)
        return query + key_value + heads * self.mla_v_head_dim * h + 2 * h

    def parameters(self, vocab_size: int, active: bool = False) -> int:
        """Parameter count (input and output embeddings counted once each unless tied); active:
        those one token uses (top-k of the routed experts, not all of them)."""
        h, f, d = self.hidden_size, self.ffn_hidden_size, self.head_dim
        q, kv = self.num_attention_heads * d, self.num_query_groups * d
        attention = h * (q + 2 * kv) + q * h + 2 * h
        attention += (q + 2 * kv if self.qkv_bias else 0) + (2 * d if self.qk_norm else 0)
        if self.is_mla:
            attention = self.mla_attention_parameters()
        attention += 2 * h if self.sandwich_norms else 0
        attention += (h if self.linear_biases else 0) + (self.num_attention_heads if self.attention_sinks else 0)
        bias = 1 if self.linear_biases else 0  # an MLP's biases: fc1's 2 x inner, fc2's hidden
        total = 0
        for moe in self.moe_layers:
            total += attention
            if not moe:
                total += self.mlp_parameters() + bias * (2 * f + h)
                continue
            experts, e = self.moe_top_k if active else self.num_experts, self.expert_ffn_hidden_size
            total += experts * (3 * h * e + bias * (2 * e + h)) + self.num_experts * (h + bias)  # experts + router
            if self.moe_shared_expert_ffn_hidden_size:
                total += 3 * h * self.moe_shared_expert_ffn_hidden_size + (h if self.moe_shared_expert_gate else 0)
        embeddings = (1 if self.tied_embeddings else 2) * vocab_size * h
        return total + embeddings + h


def flops_per_token(model: ModelConfig, vocab_size: int) -> float:
    """Training FLOPs per token: 6 x parameters (forward + backward matmuls) + attention (latent
    attention with its own head widths); for a
    mixture of experts the active parameters (the top-k experts a token goes through)."""
    lookup = 0 if model.tied_embeddings else vocab_size * model.hidden_size  # the input embedding is a lookup
    matmul_params = model.parameters(vocab_size, active=True) - lookup
    attention = 12 * model.num_layers * model.hidden_size * model.seq_length
    if model.is_mla:  # scores over query/key heads wider than the values they weigh, forward and backward
        widths = model.mla_qk_nope_head_dim + model.mla_qk_rope_head_dim + model.mla_v_head_dim
        attention = 6 * model.num_layers * model.num_attention_heads * widths * model.seq_length
    return 6 * matmul_params + attention




def padded_vocab_size(vocab: int, model: ModelConfig, tensor_parallel: int) -> int:
    """The embedding size: the vocabulary padded to a multiple of make_vocab_size_divisible_by
    (and of the tensor-parallel size). Unlike Megatron-LM's multiple x TP, the size does not
    change with TP (for TP sizes dividing the multiple), so checkpoints move between TP sizes.
    An imported base keeps its own embedding size."""
    if model.vocab_size is not None:
        if model.vocab_size % tensor_parallel:
            raise OcciError(f"the base model's vocabulary ({model.vocab_size} rows) does not split over "
                            f"tensor_parallel {tensor_parallel}; choose a tensor-parallel size dividing it")
        return model.vocab_size
    multiple = math.lcm(model.make_vocab_size_divisible_by, tensor_parallel)
    return -(-vocab // multiple) * multiple


@dataclass
class BaseModelConfig:
    """`model: {base: ...}`: continue from an open Hugging Face model; its config.json decides the
    family (occi/families/), so nothing here repeats it."""

    base: str
    """A Hugging Face hub id (downloaded with huggingface_hub) or a local folder holding
    config.json and *.safetensors (relative to the run config's folder)."""
    revision: str | None = None
    """Hub branch, tag or commit of the base; None: the default branch (ignored for folders)."""
    seq_length: int | None = None
    """Training sequence length; None: the base's context length, at most 4096 tokens."""

    def __post_init__(self) -> None:
        if not self.base.strip():
            raise ValueError("base: expected a hub id or a folder")
        ranges.check(self, {"seq_length": ranges.Range(2, ranges.SEQ_LENGTH.high)})


DEFAULT_WARMUP_STEPS = 10
"""train.warmup_steps when the config does not set it (clamped below train.steps)."""


@dataclass
class GoldfishConfig:
    """The Goldfish loss (Hans et al., 2024): a token is left out of the loss when a hash of the h
    tokens before it falls in 1 of k buckets, so the same passage always loses the same tokens and
    the model never learns to reproduce it verbatim (occi/train/goldfish.py)."""

    k: int = 50
    """About one token in k is dropped from the loss (50: 2%, mild enough for long pretraining;
    the paper's main experiments: 4)."""
    h: int = 50
    """The drop decision hashes the h tokens before each token (the paper's main experiments: 13)."""

    def __post_init__(self) -> None:
        ranges.check(self, {"k": ranges.at_least(2), "h": ranges.at_least(1)})


@dataclass
class FaultInjection:
    """A fault-injection drill: one batch of the data order made bad on purpose, to watch the
    stability guard handle it (tests, and checking a cluster set-up before a long run)."""

    batch: int
    """Position of the batch in the data order (0 for the first optimizer step's batch)."""
    fault: Literal["spike", "nan_loss", "nan_grad"]
    """spike: the batch's loss (so its gradients) is scaled by 1000, like a poisoned batch;
    nan_loss: its loss is NaN; nan_grad: its loss is finite but the gradients on the last
    data-parallel rank are NaN."""

    def __post_init__(self) -> None:
        ranges.check(self, {"batch": ranges.at_least(0)})


@dataclass
class StabilityConfig:
    """The stability guard: a step whose loss or gradient norm is NaN or infinite, or whose loss
    is a spike, never updates the weights; the policy says what happens instead."""

    policy: Literal["skip", "rollback", "stop", "off"] = "skip"
    """skip: drop the update and go on with the next batch; rollback: reload the last checkpoint
    and replay from there without the offending batch; stop: checkpoint nothing, stop with an
    error naming the step; off: no guard (a NaN trains on)."""
    spike_zscore: float = 6.0
    """A loss more than this many standard deviations above the mean of the last spike_window
    accepted losses is a spike."""
    spike_window: int = 50
    """Accepted losses the spike test compares against; no spike test until that many exist."""
    max_skipped_batches: int = 20
    """The run stops with an error once this many batches have been skipped (something is wrong
    beyond a few bad batches); the data order holds this many spare batches."""
    skip_batches: list[int] = field(default_factory=list)
    """Batches (positions in the data order, 0-based) left out from the start, e.g. ones an
    earlier run found bad: the run equals one whose data never held them."""
    inject: list[FaultInjection] = field(default_factory=list)
    """Fault-injection drills (see FaultInjection); empty in a real run."""

    def __post_init__(self) -> None:
        ranges.check(self, {"spike_zscore": ranges.POSITIVE, "spike_window": ranges.at_least(2),
                            "max_skipped_batches": ranges.at_least(0)})
        for batch in self.skip_batches:
            if batch not in ranges.at_least(0):
                raise ValueError(f"skip_batches: expected batch positions (integers at least 0), got {batch!r}")


@dataclass
class TrainConfig:
    tensor_parallel: int = 1
    """Tensor-parallel size (splits each layer over this many devices)."""
    pipeline_parallel: int = 1
    """Pipeline-parallel size (splits the layers into this many stages)."""
    data_parallel: int = 1
    """Data-parallel size; processes = tensor x pipeline x data parallel."""
    micro_batch_size: int = 4
    """Sequences per forward pass on one data-parallel rank."""
    global_batch_size: int = 8
    """Sequences per optimizer step over all ranks (a multiple of micro batch x data parallel)."""
    steps: int = 100
    """Optimizer steps of the whole run."""
    lr: float = 3e-3
    """Peak learning rate."""
    min_lr: float = 3e-4
    """Learning rate at the end of the decay."""
    warmup_steps: int | None = None
    """Linear warmup steps; not set: 10, at most steps - 1 (a default never makes a short run invalid)."""
    lr_schedule: Literal["cosine", "wsd", "constant", "linear"] = "cosine"
    """Decay after warmup: cosine, warmup-stable-decay (wsd), constant or linear."""
    wsd_decay_fraction: float = 0.2
    """wsd: share of the steps spent in the final decay."""
    weight_decay: float = 0.1
    """AdamW weight decay."""
    adam_beta1: float = 0.9
    """AdamW beta1."""
    adam_beta2: float = 0.95
    """AdamW beta2."""
    adam_eps: float = 1e-8
    """AdamW epsilon."""
    clip_grad: float = 1.0
    """Gradient-norm clipping on GPU; megatron's clipping needs CUDA tensors, so it is off on CPU."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """auto: bf16 on GPU, fp32 on CPU."""
    log_interval: int = 1
    """Steps between console/TensorBoard logs."""
    eval_interval: int = 50
    """Steps between per-language validation losses (and at the end)."""
    eval_samples: int = 8
    """Validation sequences per language."""
    save_interval: int = 50
    """Steps between checkpoints (and at the end)."""
    keep_last: int = 2
    """Checkpoints kept; older ones are deleted."""
    async_save: bool = True
    """Write checkpoints in the background on GPU (synchronous on CPU)."""
    peak_tflops: float | None = None
    """Peak dense bf16 TFLOP/s of one device, for the MFU estimate (None: known GPUs by name)."""
    stop_after_steps: int | None = None
    """Stop (with a checkpoint) after this many steps in this launch: tests, chained jobs."""
    expert_parallel: int = 1
    """Expert-parallel size: the routed experts of a layer are split over this many ranks, carved
    out of the data-parallel ranks (so data_parallel must be a multiple of it)."""
    moe_token_dispatcher: Literal["auto", "alltoall", "allgather"] = "auto"
    """How tokens reach the ranks holding their experts: all-to-all (each rank receives only the
    tokens of its experts; GPU only: megatron's all-to-all dispatcher copies split sizes on a CUDA
    stream), all-gather (every rank of the expert group sees every token; runs with gloo on CPU),
    auto: all-to-all on GPU, all-gather on CPU."""
    goldfish: GoldfishConfig | None = None
    """Memorisation control: {k, h} trains with the Goldfish loss (pretraining only); None: every
    token counts in the loss."""
    # memory and communication knobs (issue #28)
    recompute: Literal["none", "selective", "full"] = "none"
    """Activation recomputation: none; selective (the core attention of every layer is recomputed
    in the backward pass, megatron's "core_attn"); full (whole layers are recomputed)."""
    recompute_layers: int = 0
    """full: the first this-many layers of each pipeline stage are recomputed (megatron's "block"
    method); 0: every layer (the "uniform" method, one layer per unit)."""
    distributed_optimizer: bool = False
    """Shard the optimizer state (and fp32 main weights) over the data-parallel ranks (ZeRO-1);
    the gradients are reduce-scattered and the weights all-gathered instead of all-reduced."""
    sequence_parallel: bool = False
    """At tensor_parallel > 1, split the norms' and dropouts' activations along the sequence over
    the tensor-parallel ranks (a mixture of experts at TP > 1 always uses it)."""
    context_parallel: int = 1
    """Context-parallel size: each sequence is split over this many ranks, which exchange keys and
    values in attention (GPU with Transformer Engine only); processes = TP x CP x PP x DP."""
    overlap_grad_reduce: bool = False
    """Reduce gradients bucket by bucket while the backward pass is still running."""
    overlap_param_gather: bool = False
    """With the distributed optimizer and overlap_grad_reduce: all-gather the updated weights bucket
    by bucket while the next forward pass runs."""
    stability: StabilityConfig = field(default_factory=StabilityConfig)
    """What happens to a step whose loss or gradients blow up (occi/train/stability.py)."""
    trackers: list[Literal["tensorboard", "wandb", "mlflow"]] = field(default_factory=lambda: ["tensorboard"])
    """Experiment trackers that receive the metrics, events and config (rank 0 only): any of
    tensorboard (train/tensorboard/), wandb (WANDB_* variables: project, mode, ...), mlflow
    (MLFLOW_TRACKING_URI); resumed into the same tracker run after a restart."""

    def __post_init__(self) -> None:
        one = ranges.at_least(1)
        ranges.check(self, {"recompute_layers": ranges.at_least(0), "context_parallel": one})
        if self.recompute_layers and self.recompute != "full":
            raise ValueError(f"recompute_layers {self.recompute_layers} needs recompute: full "
                             f"(recompute is {self.recompute})")
        if self.sequence_parallel and self.tensor_parallel == 1:
            raise ValueError("sequence_parallel needs tensor_parallel > 1 (it splits the sequence over the "
                             "tensor-parallel ranks); set tensor_parallel or drop sequence_parallel")
        if self.overlap_param_gather and not (self.distributed_optimizer and self.overlap_grad_reduce):
            raise ValueError("overlap_param_gather needs distributed_optimizer: true (only sharded weights are "
                             "gathered) and overlap_grad_reduce: true (as Megatron-LM requires)")
        if len(set(self.trackers)) != len(self.trackers):
            raise ValueError(f"trackers: {self.trackers} names a tracker twice")
        ranges.check(self, {
            "tensor_parallel": one, "pipeline_parallel": one, "data_parallel": one, "micro_batch_size": one,
            "global_batch_size": one, "steps": one, "lr": ranges.POSITIVE, "min_lr": ranges.at_least(0),
            "warmup_steps": ranges.at_least(0), "wsd_decay_fraction": ranges.SHARE, "weight_decay": ranges.at_least(0),
            "adam_beta1": ranges.Range(0, 1, high_open=True), "adam_beta2": ranges.Range(0, 1, high_open=True),
            "adam_eps": ranges.POSITIVE, "clip_grad": ranges.at_least(0), "log_interval": one, "eval_interval": one,
            "eval_samples": one, "save_interval": one, "keep_last": one, "peak_tflops": ranges.POSITIVE,
            "stop_after_steps": one, "expert_parallel": one,
        })
        if self.global_batch_size % (self.micro_batch_size * self.data_parallel):
            raise ValueError(f"global_batch_size {self.global_batch_size} is not a multiple of "
                             f"micro_batch_size x data_parallel ({self.micro_batch_size * self.data_parallel})")
        if self.warmup_steps is None:
            self.warmup_steps = min(DEFAULT_WARMUP_STEPS, self.steps - 1)
        if self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps {self.warmup_steps} must be below steps {self.steps}")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr {self.min_lr} is above lr {self.lr}")

    @property
    def world_size(self) -> int:
        return self.tensor_parallel * self.context_parallel * self.pipeline_parallel * self.data_parallel
