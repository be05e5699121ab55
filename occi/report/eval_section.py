"""The evaluation section of the model card and its model-index results."""
from __future__ import annotations

from pathlib import Path

from occi import languages
from occi.basemodel import is_base_run
from occi.eval.results import format_table
from occi.eval.runner import own_table, registered_models
from occi.report.base_section import comparison
from occi.report.fidelity_section import fidelity_section
from occi.report.ifeval_section import ifeval_section
from occi.report.lineage_section import eval_tasks, hub_dataset, LM_EVAL_URL
from occi.rundir import RunDir

FAMILY_NAMES = {"bpb": "bits per byte on held-out text", "mc": "occi multiple choice",
                "fidelity": "answer-language fidelity", "ifeval": "instruction following (verifiable constraints)",
                **{family: name for family, (name, _, _) in languages.BENCHMARKS.items()}}


def evaluation_section(run: RunDir) -> tuple[str, list]:
    """The per-language results table of the run's own model and huggingface_hub EvalResults for
    the model-index."""
    from huggingface_hub import EvalResult  # huggingface_hub reads HF_HOME at import: only after `occi fetch --cluster` set it

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


def base_eval_label(run: RunDir) -> str | None:
    """The label the base model's evaluation has in this run (eval/models.json), if it was evaluated."""
    source = run.read_json(run.base / "source.json")
    models = registered_models(run)
    if not source:
        return None
    return next((label for label, path in models.items() if path in (source["folder"], source["base"])), None)


def card_section(cfg, run: RunDir, out_dir: Path) -> str:
    """The eval stage's sections: `## Evaluation` (beside the base model's for a continued run) and the
    answer-language fidelity and instruction following when they were measured."""
    text, _ = evaluation_section(run)
    side_by_side = comparison(run, base_eval_label(run)) if is_base_run(cfg) else ""
    sections = ["## Evaluation", text + "\n\n" + side_by_side if side_by_side else text]
    fidelity = fidelity_section(run, cfg.languages, out_dir)
    following = ifeval_section(run, cfg.languages, out_dir)
    return "\n\n".join(sections + (["## Answer-language fidelity", fidelity] if fidelity else [])
                       + (["## Instruction following", following] if following else []))
