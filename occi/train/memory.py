"""Predicted peak memory of one training rank: weights, gradients, optimizer state, activations
and the largest temporary, per pipeline stage, from the model's shape and the parallel layout.

Torch-free: `occi plan`, `occi doctor` and `occi slurm submit` use it without a GPU. What is
counted is what occi's trainer builds (occi/train/model.py, occi/train/trainer.py) on a GPU:

- weights in the training precision; gradients in fp32 (megatron's DDP main-grad buffer,
  grad_reduce_in_fp32); with bf16, megatron's mixed-precision optimizer keeps fp32 main weights
  plus Adam's two fp32 moments (12 bytes a parameter; fp32 training: the two moments only). The
  distributed optimizer splits that state over the data-parallel ranks (the experts' over the
  expert-data-parallel ranks); weights and gradient buffers stay whole.
- activations kept for the backward pass, per micro batch and layer, term by term: the inputs of
  both norms (and their fp32 statistics), of the QKV projection and of the MLP (split over the
  tensor-parallel ranks only with sequence parallelism), q/k/v, the attention output, SwiGLU's five
  inner-width tensors (fc1's gate and up, SiLU's output, the up half's copy megatron's glu makes,
  their product), RoPE's cos/sin tables, and the attention's own state: flash attention's
  log-sum-exp (Transformer Engine, on GPU) or the unfused path's softmax probabilities, with k
  and v repeated per head and torch's RMSNorm keeping its normalised input too (megatron's local
  layers, on CPU). Dropout is off in occi, so no dropout masks. Context parallelism splits the
  sequence. The last stage adds the final norm, the output layer's input and the loss's fp32
  softmax; the first stage the token ids.
- a mixture-of-experts layer: the router (logits and probabilities, fp32), each token's top-k
  copies through its experts (all-to-all dispatch, balanced load: k x the tokens arrive at each
  expert-parallel rank on average), the shared expert and its gate.
- recompute: selective drops the core attention's internals (recomputed); full keeps only each
  recomputed layer's input, and re-materialises one layer at a time in the backward pass.
- pipeline parallelism (1F1B): stage i holds min(PP - i, micro batches) micro batches in flight.
- the largest temporary: the logits over the (tensor-parallel part of the) vocabulary in the
  training precision, alive next to megatron's fp32 copy in the loss (which becomes the saved
  softmax, counted with the activations).

Not counted: the CUDA context, NCCL and cuBLAS workspaces and the allocator's fragmentation;
RUNTIME_RESERVE_GIB stands for them when a plan decides whether a layout fits.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from occi.train.config import ModelConfig, TrainConfig

GIB = 1024 ** 3

RUNTIME_RESERVE_GIB = 3.0
"""Memory a GPU rank uses outside the tensors counted here: the CUDA context (about 0.5 GiB), NCCL's
communication buffers, cuBLAS/cuDNN workspaces and the caching allocator's fragmentation. An
assumption (nothing here measures a GPU), shown as its own line wherever a fit is decided."""


@dataclass(frozen=True)
class Layout:
    """How one training run is split and what it keeps; from a TrainConfig with `Layout.of`."""

    tensor_parallel: int = 1
    """TP size: attention heads, MLP widths and the vocabulary are split over it."""
    pipeline_parallel: int = 1
    """PP size: the layers are split into this many stages."""
    data_parallel: int = 1
    """DP size: replicas (the distributed optimizer splits its state over them)."""
    expert_parallel: int = 1
    """EP size: the routed experts are split over it."""
    context_parallel: int = 1
    """CP size: each sequence is split over it."""
    micro_batch_size: int = 1
    """Sequences per forward pass."""
    global_batch_size: int = 1
    """Sequences per optimizer step (sets the micro batches per step, so those in flight)."""
    sequence_parallel: bool = False
    """Whole-width activations split over the TP ranks."""
    recompute: str = "none"
    """none, selective (the core attention) or full (whole layers)."""
    recompute_layers: int = 0
    """Fully recomputed layers per stage (0: all)."""
    distributed_optimizer: bool = False
    """The optimizer state split over the data-parallel ranks."""
    bf16: bool = True
    """bf16 weights and activations with fp32 main weights; False: fp32 throughout."""
    transformer_engine: bool = True
    """Transformer Engine's layers (GPU: flash attention, fused norms); False: megatron's local
    layers (CPU: unfused attention, torch's RMSNorm)."""

    @classmethod
    def of(cls, train: TrainConfig, model: ModelConfig, on_gpu: bool = True) -> "Layout":
        """The layout a run of this config uses: on GPU bf16 (unless fp32 is asked for) and Transformer
        Engine's layers; on CPU (on_gpu False) megatron's local layers."""
        return cls(tensor_parallel=train.tensor_parallel, pipeline_parallel=train.pipeline_parallel,
                   data_parallel=train.data_parallel, expert_parallel=train.expert_parallel,
                   context_parallel=train.context_parallel, micro_batch_size=train.micro_batch_size,
                   global_batch_size=train.global_batch_size,
                   # megatron-core needs it for a mixture of experts at TP > 1 (occi/train/model.py)
                   sequence_parallel=train.tensor_parallel > 1 and (train.sequence_parallel or model.is_moe),
                   recompute=train.recompute, recompute_layers=train.recompute_layers,
                   distributed_optimizer=train.distributed_optimizer,
                   bf16=train.precision == "bf16" or (train.precision == "auto" and on_gpu),
                   transformer_engine=on_gpu)

    @property
    def micro_batches(self) -> int:
        """Micro batches per optimizer step on one data-parallel rank."""
        return max(1, self.global_batch_size // (self.micro_batch_size * self.data_parallel))

    @property
    def expert_data_parallel(self) -> int:
        """Ranks holding the same experts (megatron: world / (expert TP x EP x PP), expert TP = TP)."""
        return max(1, self.data_parallel * self.context_parallel // self.expert_parallel)


@dataclass
class StageMemory:
    """Bytes on one rank of one pipeline stage."""

    stage: int
    """Pipeline stage (0: the first)."""
    layers: int
    """Transformer layers on the stage."""
    parameters: int
    """Parameters on one rank of the stage."""
    expert_parameters: int
    """Of them, routed experts' parameters."""
    weights: float
    """Bytes of the weights."""
    gradients: float
    """Bytes of the fp32 gradient buffer."""
    optimizer: float
    """Bytes of the optimizer state."""
    activations: float
    """Bytes kept for the backward pass by the micro batches in flight."""
    in_flight: int
    """Micro batches whose activations the stage holds at once (1F1B)."""
    recompute_buffer: float
    """Bytes of the one layer full recompute re-materialises."""
    logits: float
    """Bytes of the largest temporary: the bf16 logits next to the loss's fp32 copy."""

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.recompute_buffer + self.logits


def stage_layers(num_layers: int, pipeline_parallel: int) -> list[list[int]]:
    """The layer indices of each pipeline stage (megatron's even split; leftovers to the first stages)."""
    base, extra = divmod(num_layers, pipeline_parallel)
    stages, start = [], 0
    for stage in range(pipeline_parallel):
        count = base + (stage < extra)
        stages.append(list(range(start, start + count)))
        start += count
    return stages


def layer_parameters(model: ModelConfig, moe: bool) -> tuple[int, int, int]:
    """(split over tensor-parallel ranks, replicated on each, routed experts) parameters of one layer."""
    h, d = model.hidden_size, model.head_dim
    q, kv = model.num_attention_heads * d, model.num_query_groups * d
    split = h * (q + 2 * kv) + q * h + (q + 2 * kv if model.qkv_bias else 0)
    replicated = 2 * h + (2 * d if model.qk_norm else 0)
    if model.is_mla:
        split, replicated = mla_parameters(model)
    if not moe:
        scalars = 2 if model.mlp_activation == "xielu" else 0  # xIELU's, on every rank
        return split + model.mlp_parameters() - scalars, replicated + scalars, 0
    shared = model.moe_shared_expert_ffn_hidden_size or 0
    split += 3 * h * shared
    replicated += model.num_experts * h + (h if shared and model.moe_shared_expert_gate else 0)
    return split, replicated, model.num_experts * 3 * h * model.expert_ffn_hidden_size


def mla_parameters(model: ModelConfig) -> tuple[int, int]:
    """(split, replicated) parameters of a multi-head latent attention block with the layer's two
    norms: the up projections and the output projection are split by heads; the down projections
    and the latent norms are whole on every tensor-parallel rank (Transformer Engine's duplicated
    linears). Their sum is ModelConfig.mla_attention_parameters (Megatron-LM's count too)."""
    h, heads, rope = model.hidden_size, model.num_attention_heads, model.mla_qk_rope_head_dim
    qk, kv, ql = model.mla_qk_nope_head_dim + rope, model.mla_kv_lora_rank, model.mla_q_lora_rank
    split = (ql if ql else h) * heads * qk + kv * heads * (model.mla_qk_nope_head_dim + model.mla_v_head_dim)
    split += heads * model.mla_v_head_dim * h
    replicated = (h * ql + ql if ql else 0) + h * (kv + rope) + kv + 2 * h
    return split, replicated


def mla_activation_terms(model: ModelConfig, tokens: float, positions: float, a: int, t: int) -> dict[str, float]:
    """Bytes multi-head latent attention keeps per layer (in place of q, k, v and the rotary tables):
    the latents before and after their norms (whole on every tensor-parallel rank), the up-projected
    heads, the rotated copies of their rotary parts, and the attention output."""
    heads, rope, ql, kv = (model.num_attention_heads, model.mla_qk_rope_head_dim, model.mla_q_lora_rank or 0,
                           model.mla_kv_lora_rank)
    qk = model.mla_qk_nope_head_dim + rope
    return {"latents (q, kv; before and after their norms)": tokens * (2 * ql + 2 * kv + rope) * a,
            "rotary tables": 2 * positions * rope * a,
            "q, k, v heads": tokens * heads * (2 * qk + model.mla_v_head_dim) * a / t,
            "rotated q and k parts": tokens * heads * 2 * rope * a / t,
            "attention output": tokens * heads * model.mla_v_head_dim * a / t}


def layer_activation_terms(model: ModelConfig, layout: Layout, moe: bool, seq_length: int) -> dict[str, float]:
    """Bytes one layer keeps for the backward pass for one micro batch on one rank, by what holds them."""
    t, a = layout.tensor_parallel, (2 if layout.bf16 else 4)
    positions = seq_length / layout.context_parallel
    tokens = positions * layout.micro_batch_size
    h, d = model.hidden_size, model.head_dim
    heads, q, kv = model.num_attention_heads, model.num_attention_heads * model.head_dim, model.num_query_groups * d
    full = t if layout.sequence_parallel else 1  # activations of the whole hidden width: split only with SP
    terms = {
        "norm inputs": 2 * tokens * h * a / full,
        "norm statistics": 2 * tokens * 4 / full,  # fp32 inverse RMS per token, one per norm
        "qkv projection input": tokens * h * a / full,
        # megatron's unfused RoPE keeps cos and sin of the positions for q and for k
        "rotary tables": 4 * positions * d * a,
    }
    if not layout.transformer_engine:  # torch's RMSNorm keeps its normalised input too (TE: input and statistics)
        terms["norm outputs before their weight"] = 2 * tokens * h * a / full
    if layout.transformer_engine:
        terms["q, k, v"] = tokens * (q + 2 * kv) * a / t
    else:  # megatron's local attention repeats k and v for every query head before its matmuls
        terms["q, k, v (k and v repeated per head)"] = tokens * 3 * q * a / t
    terms["attention output"] = tokens * q * a / t
    if model.is_mla:
        for name in [n for n in terms if n.startswith(("q, k, v", "rotary tables", "attention output"))]:
            del terms[name]
        terms.update(mla_activation_terms(model, tokens, positions, a, t))
    if layout.recompute != "selective":
        if layout.transformer_engine:
            terms["attention softmax statistics"] = tokens * heads * 4 / t
        else:  # the unfused path builds every score of the sequence, a sliding window only masks them
            terms["attention probabilities"] = tokens * heads * seq_length / layout.context_parallel * a / t
    terms["mlp input"] = tokens * h * a / full  # the second norm's output: the MLP's or router's input
    if not moe and model.mlp_activation == "xielu":
        # fc1's output, the products autograd keeps (alpha_p * x, expm1's output), fc2's input,
        # and the two one-byte masks (x > 0, x < eps)
        terms["xielu"] = tokens * (4 * a + 2) * model.ffn_hidden_size / t
        return terms
    if not moe:
        # fc1's output (gate and up), SiLU's output, the up half plus megatron's glu offset (a copy),
        # and their product, fc2's input
        terms["swiglu"] = tokens * 5 * model.ffn_hidden_size * a / t
        return terms
    k, fe, experts = model.moe_top_k, model.expert_ffn_hidden_size, model.num_experts
    # fp32 router scores and top-k indices and probabilities; the dispatcher's per-expert masks and
    # permutation indices
    terms["router and dispatch"] = tokens / full * (9 * experts + 28 * k)
    # k copies per token reach this rank's experts on average (balanced all-to-all; at TP > 1 gathered
    # over the tensor-parallel ranks, whose experts split the inner width); in each expert, megatron
    # multiplies the routing probability into the SwiGLU output: one more inner-width tensor than dense
    routed = tokens * k
    terms["expert inputs"] = routed * h * a
    terms["expert swiglu"] = routed * 6 * fe * a / t + routed * 4
    shared = model.moe_shared_expert_ffn_hidden_size
    if shared:
        terms["shared expert swiglu"] = tokens * 5 * shared * a / t
        if model.moe_shared_expert_gate:
            terms["shared expert gate"] = tokens * (h + 1) * a / full
    return terms


def full_recompute_input(model: ModelConfig, layout: Layout, seq_length: int) -> float:
    """Bytes a fully recomputed layer keeps: its input (the checkpoint)."""
    a = 2 if layout.bf16 else 4
    tokens = seq_length / layout.context_parallel * layout.micro_batch_size
    return tokens * model.hidden_size * a / (layout.tensor_parallel if layout.sequence_parallel else 1)


def estimate(model: ModelConfig, vocab_size: int, layout: Layout, seq_length: int | None = None) -> list[StageMemory]:
    """Bytes per rank of every pipeline stage (the most loaded rank of each: balanced experts)."""
    seq = seq_length or model.seq_length
    t, p = layout.tensor_parallel, layout.pipeline_parallel
    weight_bytes = 2 if layout.bf16 else 4
    state_bytes = 12 if layout.bf16 else 8  # fp32 main weights + two Adam moments; fp32: moments only
    moe_layers = model.moe_layers
    a = weight_bytes
    tokens = seq / layout.context_parallel * layout.micro_batch_size
    embedding = vocab_size * model.hidden_size
    stages = []
    for stage, layers in enumerate(stage_layers(model.num_layers, p)):
        split = replicated = experts = 0
        for index in layers:
            s, r, e = layer_parameters(model, bool(moe_layers[index]))
            split, replicated, experts = split + s, replicated + r, experts + e
        if stage == 0:
            split += embedding
        if stage == p - 1:
            replicated += model.hidden_size  # final norm
            if not model.tied_embeddings or p > 1:  # a tied output layer keeps its own copy on the last stage
                split += embedding
        dense_params = split / t + replicated
        expert_params = experts / (t * layout.expert_parallel)
        dp_shards = layout.data_parallel * layout.context_parallel if layout.distributed_optimizer else 1
        ep_shards = layout.expert_data_parallel if layout.distributed_optimizer else 1
        in_flight = min(p - stage, layout.micro_batches)
        per_layer = [sum(layer_activation_terms(model, layout, bool(moe_layers[i]), seq).values()) for i in layers]
        recomputed = 0
        if layout.recompute == "full":
            recomputed = min(layout.recompute_layers or len(layers), len(layers))
        kept = recomputed * full_recompute_input(model, layout, seq) + sum(per_layer[recomputed:])
        if stage == 0:
            kept += tokens * 8  # the token ids (int64) the embedding keeps for its gradient
        if stage == p - 1:
            # final norm input and statistics (and torch's normalised copy), the output layer's input;
            # the loss's saved fp32 softmax, target mask and targets
            norm_copies = 2 if layout.transformer_engine else 3
            kept += tokens * (model.hidden_size * a * norm_copies + 4) / (t if layout.sequence_parallel else 1)
            kept += tokens * (vocab_size / t * 4 + 9)
        buffer = max(per_layer[:recomputed], default=0.0)
        logits = tokens * vocab_size / t * a if stage == p - 1 and layout.bf16 else 0.0
        stages.append(StageMemory(
            stage=stage, layers=len(layers), parameters=round(dense_params + expert_params),
            expert_parameters=round(expert_params), weights=(dense_params + expert_params) * weight_bytes,
            gradients=(dense_params + expert_params) * 4,
            optimizer=dense_params * state_bytes / dp_shards + expert_params * state_bytes / ep_shards,
            activations=kept * in_flight, in_flight=in_flight, recompute_buffer=buffer, logits=logits))
    return stages


def peak(stages: list[StageMemory]) -> StageMemory:
    return max(stages, key=lambda s: s.total)


def gib(value: float) -> str:
    return f"{value / GIB:.1f} GiB"


def breakdown(stage: StageMemory, layout: Layout) -> list[tuple[str, str]]:
    """The rows a plan prints for the peak stage."""
    where = f"pipeline stage {stage.stage} of {layout.pipeline_parallel}, {stage.layers} layer(s)"
    experts = f", {stage.expert_parameters:,} of them experts" if stage.expert_parameters else ""
    optimizer = (f"distributed over {layout.data_parallel * layout.context_parallel} data-parallel ranks"
                 + (f", the experts' over {layout.expert_data_parallel}" if stage.expert_parameters else "")
                 if layout.distributed_optimizer else "not distributed")
    recompute = layout.recompute + (f" ({layout.recompute_layers or stage.layers} layer(s) per stage)"
                                    if layout.recompute == "full" else "")
    rows = [
        ("weights", f"{gib(stage.weights)} ({stage.parameters:,} parameters on this rank{experts}; {where})"),
        ("gradients", f"{gib(stage.gradients)} (fp32)"),
        ("optimizer", f"{gib(stage.optimizer)} (fp32 main weights and Adam moments, {optimizer})"),
        ("activations", f"{gib(stage.activations)} ({stage.in_flight} micro batch(es) in flight, recompute "
                        f"{recompute}, sequence parallel {'on' if layout.sequence_parallel else 'off'})"),
    ]
    if stage.recompute_buffer:
        rows.append(("recompute", f"{gib(stage.recompute_buffer)} (one layer re-materialised in the backward pass)"))
    if stage.logits:
        rows.append(("logits", f"{gib(stage.logits)} (the largest temporary: logits over the vocabulary in the loss)"))
    return rows


def fits(total: float, gpu_memory_gib: float) -> bool:
    return total + RUNTIME_RESERVE_GIB * GIB <= gpu_memory_gib * GIB


def divides(model: ModelConfig, vocab_size: int, tensor_parallel: int, pipeline_parallel: int) -> bool:
    """Whether the shape splits over these sizes (heads, KV groups, MLP widths, vocabulary, layers)."""
    t = tensor_parallel
    widths = [model.num_attention_heads, model.num_query_groups, model.ffn_hidden_size, vocab_size]
    if model.is_moe:
        widths.append(model.expert_ffn_hidden_size)
    return all(w % t == 0 for w in widths) and model.num_layers % pipeline_parallel == 0


def candidate_fixes(train: TrainConfig, model: ModelConfig) -> list[dict]:
    """Changes that lower a rank's memory, cheapest first, each with the same GPUs and global batch:
    the distributed optimizer and sequence parallelism cost no extra compute and move about the same
    bytes; selective recompute re-runs the attention core only; a smaller micro batch keeps the batch
    by accumulating more (smaller matmuls); full recompute of the fewest layers that fit adds up to a
    third of a layer's compute each; a larger tensor- then pipeline-parallel size (taken from the
    data-parallel ranks) adds communication in every layer or a pipeline bubble."""
    fixes: list[dict] = []
    if not train.distributed_optimizer and train.data_parallel * train.context_parallel > 1:
        fixes.append({"distributed_optimizer": True})
    if train.tensor_parallel > 1 and not train.sequence_parallel and not model.is_moe:
        fixes.append({"sequence_parallel": True})
    if train.recompute == "none":
        fixes.append({"recompute": "selective"})
    size = train.micro_batch_size // 2
    while size >= 1:
        if train.global_batch_size % (size * train.data_parallel) == 0:
            fixes.append({"micro_batch_size": size})
        size //= 2
    per_stage = math.ceil(model.num_layers / train.pipeline_parallel)
    if train.recompute != "full":
        fixes.extend({"recompute": "full", "recompute_layers": n if n < per_stage else 0} for n in range(1, per_stage + 1))
    for field, factor in (("tensor_parallel", 2), ("tensor_parallel", 4), ("pipeline_parallel", 2), ("pipeline_parallel", 4)):
        if train.data_parallel % factor == 0:
            fixes.append({field: getattr(train, field) * factor, "data_parallel": train.data_parallel // factor})
    return fixes


def cheapest_fix(train: TrainConfig, model: ModelConfig, vocab_size: int, gpu_memory_gib: float) -> dict | None:
    """The first change (alone, or added to all the free ones before it) after which the peak rank fits."""
    candidates = candidate_fixes(train, model)
    free = [c for c in candidates if set(c) <= {"distributed_optimizer", "sequence_parallel"}]
    all_free = {k: v for f in free for k, v in f.items()}
    tried: list[dict] = [*free, *([all_free] if len(free) > 1 else [])]
    for fix in candidates:
        if fix not in free:
            tried += [fix, {**all_free, **fix}] if free else [fix]
    for fix in tried:
        changed = _apply(train, fix)
        if changed is None or not divides(model, vocab_size, changed.tensor_parallel, changed.pipeline_parallel):
            continue
        if fits(peak(estimate(model, vocab_size, Layout.of(changed, model))).total, gpu_memory_gib):
            return fix
    return None


def _apply(train: TrainConfig, fix: dict) -> TrainConfig | None:
    try:
        changed = dataclasses.replace(train, **fix)
    except ValueError:  # e.g. the global batch no longer divides
        return None
    return changed if changed.data_parallel % changed.expert_parallel == 0 else None


def describe_fix(fix: dict) -> str:
    return ", ".join(f"train.{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in fix.items())
