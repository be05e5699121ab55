"""The divisibility rules megatron-core puts on a model shape and a parallel layout, checked when
the config is loaded (not minutes later, in a traceback from inside the first training step).

Each rule is the one megatron-core enforces (TransformerConfig, the tensor-parallel linear
layers, the pipeline's layer split, the batch schedule); occi pads the vocabulary to a multiple
of both make_vocab_size_divisible_by and the tensor-parallel size (occi/train/model.py), so that
rule holds by construction and is checked here only as a guard.
"""
from __future__ import annotations

from occi.train.config import ModelConfig, TrainConfig, padded_vocab_size


def layout_problems(model: ModelConfig, train: TrainConfig, vocab_size: int | None = None) -> list[str]:
    """Every rule the model shape and parallel layout break, one sentence each."""
    tp, pp, dp = train.tensor_parallel, train.pipeline_parallel, train.data_parallel
    rules = [
        (model.num_attention_heads, tp, "model.num_attention_heads", "train.tensor_parallel",
         "each tensor-parallel rank holds whole attention heads"),
        (model.num_query_groups, tp, "model.num_query_groups", "train.tensor_parallel",
         "each tensor-parallel rank holds whole key/value heads"),
        (model.ffn_hidden_size, tp, "model.ffn_hidden_size", "train.tensor_parallel",
         "the MLP is split evenly over tensor-parallel ranks"),
        (model.num_layers, pp, "model.num_layers", "train.pipeline_parallel",
         "each pipeline stage holds the same number of layers"),
        (train.global_batch_size, train.micro_batch_size * dp, "train.global_batch_size",
         "train.micro_batch_size x train.data_parallel",
         "global batch = micro batch x data parallel x gradient-accumulation steps"),
    ]
    if vocab_size is not None:
        rules.append((padded_vocab_size(vocab_size, model, tp), tp, "the padded vocabulary",
                      "train.tensor_parallel", "the embedding is split evenly over tensor-parallel ranks"))
    ep = train.expert_parallel
    if model.is_moe:
        rules += [
            (model.num_experts, ep, "model.num_experts", "train.expert_parallel",
             "each expert-parallel rank holds the same number of whole experts"),
            (model.expert_ffn_hidden_size, tp, "the expert FFN width", "train.tensor_parallel",
             "each expert's MLP is split evenly over tensor-parallel ranks"),
        ]
        if model.moe_shared_expert_ffn_hidden_size:
            rules.append((model.moe_shared_expert_ffn_hidden_size, tp, "model.moe_shared_expert_ffn_hidden_size",
                          "train.tensor_parallel", "the shared expert is split evenly over tensor-parallel ranks"))
        if tp > 1:
            rules.append((model.seq_length, tp, "model.seq_length", "train.tensor_parallel",
                          "megatron-core trains experts at TP > 1 only with sequence parallelism, which gives each "
                          "tensor-parallel rank an equal slice of the sequence"))
    # megatron-core lays the expert ranks out as expert TP (= TP) x EP x expert DP x PP over the same
    # world as TP x DP x PP: EP comes out of the data-parallel ranks
    rules.append((dp, ep, "train.data_parallel", "train.expert_parallel",
                  f"expert-parallel groups are made of data-parallel ranks, so train.data_parallel must be a "
                  f"multiple of train.expert_parallel (the world size TP x PP x DP = {train.world_size} a multiple "
                  f"of TP x PP x EP = {tp * pp * ep}); raise train.data_parallel or lower train.expert_parallel"))
    if train.sequence_parallel and not model.is_moe:
        rules.append((model.seq_length, tp, "model.seq_length", "train.tensor_parallel",
                      "sequence parallelism gives each tensor-parallel rank an equal slice of the sequence"))
    if train.context_parallel > 1:
        rules.append((model.seq_length, 2 * train.context_parallel, "model.seq_length", "2 x train.context_parallel",
                      "context parallelism splits each sequence into 2 x CP chunks, two per rank"))
    problems = []
    layers_per_stage = model.num_layers // pp
    if train.recompute_layers > layers_per_stage:
        problems.append(f"train.recompute_layers ({train.recompute_layers}) is above the {layers_per_stage} layers of "
                        f"a pipeline stage (model.num_layers / train.pipeline_parallel)")
    if ep > 1 and not model.is_moe:
        problems.append(f"train.expert_parallel is {ep} but the model has no experts (model.num_experts is not set)")
    for value, divisor, name, divisor_name, why in rules:
        if value % divisor:
            problems.append(f"{name} ({value}) is not a multiple of {divisor_name} ({divisor}): {why}")
    return problems


def check_layout(model: ModelConfig, train: TrainConfig, vocab_size: int | None = None) -> None:
    """Raises ValueError naming every rule the layout breaks (one line)."""
    problems = layout_problems(model, train, vocab_size)
    if problems:
        raise ValueError("; ".join(problems) + "; change the model shape or the parallel sizes")
