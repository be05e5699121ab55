"""The evaluation section of the model card and its model-index results."""
from __future__ import annotations

from occi import languages
from occi.eval.results import format_table
from occi.report.lineage_section import eval_tasks, hub_dataset, LM_EVAL_URL
from occi.rundir import RunDir

FAMILY_NAMES = {"bpb": "bits per byte on held-out text", "mc": "occi multiple choice",
                "fidelity": "answer-language fidelity",
                **{family: name for family, (name, _, _) in languages.BENCHMARKS.items()}}


def evaluation_section(run: RunDir) -> tuple[str, list]:
    """The per-language results table of the run's own model and huggingface_hub EvalResults for
    the model-index."""
    from huggingface_hub import EvalResult  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it

    from occi.eval.runner import own_table  # loads pyarrow: only when used

    table = own_table(run)
    if table is None:
        return "_Not available: the evaluation results are missing from this run (eval/table-<model>.json)._", []
    tasks = eval_tasks(run)
    results = []
    for cell in table["cells"]:
        if cell["state"] != "done":
            continue
        hub = hub_dataset(tasks.get(cell["task"]))  # the task's hub dataset where its data is on the hub
        results.append(EvalResult(
            task_type="text-generation", task_name="Text Generation", dataset_type=hub[0] if hub else cell["task"],
            dataset_name=f"{FAMILY_NAMES.get(cell['family'], cell['family'])} ({cell['language']})",
            dataset_config=(hub[1] if hub else None) or cell["language"], dataset_split="test",
            dataset_args={"num_few_shot": cell.get("num_fewshot", 0)}, metric_type=cell["metric"],
            metric_value=round(cell["value"], 6), metric_name=cell["metric"],
            source_name=f"lm-eval task {cell['task']} (occi eval)", source_url=LM_EVAL_URL))
    text = ("Evaluated with lm-eval (`occi eval`); ± is the standard error. bits_per_byte: lower is better; "
            "accuracies: higher is better. Cells that could not run are shown as failed or missing, never as 0.\n\n"
            + format_table(table))
    return text, results
