"""What a mixture-of-experts run logs per step: the load-balancing loss and, per layer, how the
tokens spread over the experts (the smallest and largest expert's share of the routed tokens; an
even spread gives each expert 1/num_experts); and the PNG of expert load per layer at the end.

The counts come from a forward hook on each megatron router (its routing map: tokens x experts),
summed over the micro batches of a step and over all ranks (at TP > 1 sequence parallelism gives
each tensor-parallel rank its own slice of the tokens; without it they would route the same ones,
and the sum is divided by the tensor-parallel size). The auxiliary loss is the one megatron's routers record in
their logging tracker (the loss before its coefficient), averaged over micro batches and layers.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from occi.plots import pyplot, save_png


class ExpertLoad:
    """Counts routed tokens per layer and expert on this rank; `collect` (every rank) sums them."""

    def __init__(self, model, num_layers: int, num_experts: int, moe_layers: int, device: torch.device):
        from megatron.core.transformer.moe.router import TopKRouter  # loads megatron: only when used

        self.moe_layers = moe_layers
        self.counts = torch.zeros(num_layers, num_experts, dtype=torch.float64, device=device)
        self.sequence_parallel = model.config.sequence_parallel
        self.routers = []
        for module in model.modules():
            if isinstance(module, TopKRouter):
                module.register_forward_hook(self._hook)
                self.routers.append(module)

    def _hook(self, router, inputs, output) -> None:
        if router.training:  # validation batches are not part of the training load
            _, routing_map = output
            self.counts[router.layer_number - 1] += routing_map.reshape(-1, self.counts.shape[1]).sum(0).double()

    def collect(self, microbatches: int) -> dict:
        """The step's `aux_loss` (None without one), `share_min`/`share_max` per mixture layer and
        `expert_tokens` [layer][expert]; resets the counts and megatron's tracker."""
        from megatron.core import parallel_state  # loads megatron: only when used
        from megatron.core.transformer.moe.moe_utils import (
            clear_aux_losses_tracker,
            get_moe_layer_wise_logging_tracker,
            reduce_aux_losses_tracker_across_ranks,
        )  # loads megatron: only when used

        counts = self.counts.clone()
        dist.all_reduce(counts)
        if not self.sequence_parallel:
            counts /= parallel_state.get_tensor_model_parallel_world_size()
        self.counts.zero_()
        tracker = get_moe_layer_wise_logging_tracker()
        aux = None
        if "load_balancing_loss" in tracker:
            reduce_aux_losses_tracker_across_ranks(["load_balancing_loss"])
            aux = tracker["load_balancing_loss"]["values"].float().sum().item() / microbatches / self.moe_layers
            clear_aux_losses_tracker()
        moe_rows = [row for row in counts.tolist() if sum(row) > 0]
        shares = [[value / sum(row) for value in row] for row in moe_rows]
        record = {"aux_loss": aux, "share_min": [min(s) for s in shares], "share_max": [max(s) for s in shares],
                  "expert_tokens": [[int(v) for v in row] for row in counts.tolist()]}
        if any(router.expert_bias is not None for router in self.routers):
            record["expert_bias"] = self._expert_bias()
        return record

    def _expert_bias(self) -> list[list[float]]:
        """Per mixture layer, the routing bias of each expert after this step's update (megatron's
        finalize_model_grads moves it against the load; aux-loss-free balancing). Each router is
        whole on every rank of its pipeline stage: the sum over ranks is divided by its holders."""
        bias = torch.zeros_like(self.counts)
        holders = torch.zeros(self.counts.shape[0], dtype=torch.float64, device=self.counts.device)
        for router in self.routers:
            bias[router.layer_number - 1] = router.expert_bias.double()
            holders[router.layer_number - 1] = 1
        dist.all_reduce(bias)
        dist.all_reduce(holders)
        return [[round(v / held, 6) for v in row] for row, held in zip(bias.tolist(), holders.tolist()) if held]


def console(record: dict) -> str:
    """The mixture part of a step's console line: aux loss and the widest min-max share over layers."""
    text = f" aux {record['aux_loss']:.4f}" if record.get("aux_loss") is not None else ""
    if record.get("share_min"):
        text += f" expert share {min(record['share_min']):.2f}-{max(record['share_max']):.2f}"
    if record.get("expert_bias"):
        text += f" expert bias ±{max(abs(v) for row in record['expert_bias'] for v in row):.4f}"
    return text


def plot_expert_load(records: list[dict], path: Path) -> Path | None:
    """PNG: per layer, each expert's share of the tokens routed over the whole run (left) and the
    smallest and largest share per step (right). None when the log holds no expert counts."""
    steps = {}
    for record in records:
        if record.get("kind") == "train" and record.get("expert_tokens"):
            steps[record["step"]] = record  # a resumed run's repeated steps keep their last value
    if not steps:
        return None
    total = torch.tensor([steps[s]["expert_tokens"] for s in sorted(steps)], dtype=torch.float64).sum(0)
    layers = [i for i in range(total.shape[0]) if total[i].sum() > 0]
    share = total[layers] / total[layers].sum(1, keepdim=True)
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.5 * len(layers) + 3))
    image = left.imshow(share.numpy(), aspect="auto", cmap="viridis", vmin=0)
    if share.shape[1] <= 32:
        left.set_xticks(range(share.shape[1]))
    left.set_xlabel("expert")
    left.set_ylabel("layer")
    left.set_yticks(range(len(layers)), [str(i) for i in layers])
    left.set_title(f"share of routed tokens (even: {1 / share.shape[1]:.3f})")
    fig.colorbar(image, ax=left)
    ordered = sorted(steps)
    for index, layer in enumerate(layers):
        low = [steps[s]["share_min"][index] for s in ordered]
        high = [steps[s]["share_max"][index] for s in ordered]
        line, = right.plot(ordered, high, label=f"layer {layer} max")
        right.plot(ordered, low, linestyle="--", color=line.get_color(), label=f"layer {layer} min")
    right.axhline(1 / share.shape[1], color="grey", linewidth=0.8)
    right.set_xlabel("step")
    right.set_ylabel("expert share of tokens")
    right.set_title("smallest and largest expert share per step")
    right.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    save_png(fig, path)
    return path
