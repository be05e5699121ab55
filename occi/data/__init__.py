"""Stage 3, first half: the corpora as megatron indexed datasets, and the language blend."""
