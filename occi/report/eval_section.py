"""The evaluation section of the model card and its model-index results."""
from __future__ import annotations


def evaluation_section(cfg, run_dir, model_name):
    return "_No evaluation results yet._", []
