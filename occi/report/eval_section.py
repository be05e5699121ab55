"""The evaluation section of the model card and its model-index results."""
from __future__ import annotations

import json
from pathlib import Path

from occi import languages

FAMILY_NAMES = {"bpb": "bits per byte on held-out text", "mc": "occi multiple choice",
                **{family: name for family, (name, _, _) in languages.BENCHMARKS.items()}}


def evaluation_section(cfg, run_dir: Path, model_name: str) -> tuple[str, list]:
    """The per-language results table and huggingface_hub EvalResults for the model-index."""
    from huggingface_hub import EvalResult

    from occi.eval.runner import format_table

    path = Path(run_dir) / "eval" / "table-hf.json"
    if not path.exists():
        return "_Not available: the evaluation results are missing from this run (eval/table-hf.json)._", []
    table = json.loads(path.read_text(encoding="utf-8"))
    results = [
        EvalResult(task_type="text-generation", task_name="Text Generation", dataset_type=cell["task"],
                   dataset_name=f"{FAMILY_NAMES.get(cell['family'], cell['family'])} ({cell['language']})",
                   dataset_config=cell["language"], dataset_split="test", metric_type=cell["metric"],
                   metric_value=round(cell["value"], 6), metric_name=cell["metric"])
        for cell in table["cells"] if cell["state"] == "done"
    ]
    text = ("Evaluated with lm-eval (`occi eval`); ± is the standard error. bits_per_byte: lower is better; "
            "accuracies: higher is better. Cells that could not run are shown as failed or missing, never as 0.\n\n"
            + format_table(table))
    return text, results
