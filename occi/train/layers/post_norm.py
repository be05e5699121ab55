"""A row-parallel linear layer followed by an RMSNorm: attention's output projection and the
MLP's down projection of a model with sandwich norms (Gemma 2/3 normalise each block's output
before the residual add; megatron-core's TransformerLayer has no place for that norm).

The norm sees the full hidden width (the row-parallel output is already reduced over tensor
parallelism) and is replicated on every tensor-parallel rank; its weight is checkpointed as
<projection>.post_layernorm.weight."""
from __future__ import annotations

from megatron.core.tensor_parallel import RowParallelLinear


class RowParallelLinearWithPostNorm(RowParallelLinear):
    def __init__(self, input_size: int, output_size: int, *, config, norm, **kwargs):
        super().__init__(input_size, output_size, config=config, **kwargs)
        self.post_layernorm = norm(config=config, hidden_size=output_size, eps=config.layernorm_epsilon)

    def forward(self, input_):
        output, bias = super().forward(input_)
        if bias is not None:  # the norm comes after the bias (megatron would add it later, in its bias-dropout-add)
            output, bias = output + bias, None
        return self.post_layernorm(output), bias
