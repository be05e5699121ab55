"""The model card's answer-language fidelity section: per language, the share of the model's answers
to prompts in that language that occi's language ID reads as that language (occi/eval/fidelity.py)."""
from __future__ import annotations

from pathlib import Path

from occi import languages
from occi.plots import pyplot, save_png
from occi.rundir import RunDir

PLOT = "answer_language_fidelity.png"


def fidelity_section(run: RunDir, codes: list[str], out_dir: Path | None = None) -> str | None:
    """The section's text (and, with `out_dir`, its bar chart there), or None when the run's model
    was not evaluated with the fidelity suite."""
    from occi.eval.runner import own_table  # loads pyarrow: only when used

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
    done = {code: cells[code]["value"] for code in codes if code in cells and cells[code]["state"] == "done"}
    if out_dir is not None and done:
        plot(done, Path(out_dir) / PLOT)
        lines += ["", f"![answer-language fidelity per language]({PLOT})"]
    return "\n".join(lines)


def plot(values: dict[str, float], path: Path) -> None:
    """Fidelity per language as bars (0 to 1)."""
    fig, ax = pyplot().subplots(figsize=(max(4.0, 0.4 * len(values) + 2), 3.2))
    ax.bar(list(values), list(values.values()), color="#2b7bba")
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of answers in the prompt's language")
    ax.set_title("answer-language fidelity")
    fig.tight_layout()
    save_png(fig, path)
