"""Stage 3, first half: the corpora as megatron indexed datasets, and the language blend."""
import occi.train  # noqa: F401  (silences megatron's CPU fallback warnings before megatron is imported)
