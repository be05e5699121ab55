"""What the numba kernels of the corpora filters share: the text as an array."""
from __future__ import annotations

import numpy as np


def code_points(text: str) -> np.ndarray:
    """The text as one uint32 per character (lone surrogates included, as str counts them)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
