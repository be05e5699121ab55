"""Pictures of results: matplotlib without a display, PNGs written atomically."""
from __future__ import annotations

from pathlib import Path

from occi.fsutil import atomic_path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib  # loads matplotlib: only when used

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # loads matplotlib: only when used

    return plt


def save_png(fig, path: Path) -> None:
    """Writes `fig` to `path` as a PNG (atomically) and closes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    pyplot().close(fig)
