"""The model card's answer-language fidelity section: per language, the share of the model's answers
to prompts in that language that occi's language ID reads as that language (occi/eval/fidelity.py)."""
from __future__ import annotations

from occi import languages
from occi.rundir import RunDir


def fidelity_section(run: RunDir, codes: list[str]) -> str | None:
    """The section's text, or None when the run's model was not evaluated with the fidelity suite."""
    from occi.eval.runner import own_table

    table = own_table(RunDir.of(run)) or {}
    cells = {c["language"]: c for c in table.get("cells", []) if c["family"] == "fidelity"}
    if not cells:
        return None
    lines = ["Of the model's answers to occi's prompts in each language (eval/data/fidelity/), the share that "
             "occi's language ID reads as the prompt's language (`occi eval --suite fidelity`; greedy answers, "
             "± binomial standard error). A low value means the model answers in another language, often "
             "English or a neighbour.", "", "| language | fidelity | answers |", "|---|---|---|"]
    for code in codes:
        cell = cells.get(code)
        if cell is None:
            continue
        name = f"{languages.get(code).name} ({code})"
        if cell["state"] != "done":
            lines.append(f"| {name} | {cell['state']} | – |")
            continue
        err = f" ± {cell['stderr']:.2f}" if cell.get("stderr") is not None else ""
        lines.append(f"| {name} | {cell['value']:.2f}{err} | {cell.get('answers', '–')} |")
    return "\n".join(lines)
