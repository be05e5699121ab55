"""The predicted memory of one GPU as a picture: one stacked bar per layout (weights, gradients,
optimizer state, activations, recompute buffer, logits, runtime reserve), the GPUs' memory as lines."""
from __future__ import annotations

from pathlib import Path

from occi.plots import pyplot, save_png

PARTS = ["weights", "gradients", "optimizer", "activations", "recompute_buffer", "logits"]


def memory_png(bars: list[tuple[str, dict]], gpu_memory: dict[str, float], reserve_gib: float, path: Path) -> None:
    """bars: (label, {part: bytes}) in PARTS order; gpu_memory: {label: GiB} drawn as vertical lines."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, max(2.6, 1.2 + 0.55 * len(bars))))
    labels = [label for label, _ in bars]
    left = [0.0] * len(bars)
    colors = ["#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd", "#bbbbbb"]
    for part, color in zip([*PARTS, "reserve"], colors):
        widths = [(parts.get(part, 0.0) / 2**30 if part != "reserve" else reserve_gib) for _, parts in bars]
        ax.barh(labels, widths, left=left, color=color, label=part.replace("_", " "))
        left = [a + b for a, b in zip(left, widths)]
    for name, gib in sorted(gpu_memory.items(), key=lambda item: item[1]):
        ax.axvline(gib, color="black", linestyle="--", linewidth=1)
        ax.text(gib, 1.01, name, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("GiB per GPU (predicted peak, most loaded pipeline stage)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
