"""Stage 4: per-language evaluation with lm-eval."""
