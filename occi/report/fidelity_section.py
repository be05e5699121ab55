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
             "occi's language ID reads as the prompt's language (`occi eval --suite fidelity`; greedy answers; "
             "the 95% Wilson interval; two models whose intervals overlap may still differ: compare their "
             "answers prompt by prompt). A low value means the model answers in another language, often "
             "English or a neighbour.", "", "| language | fidelity | 95% interval | answers |", "|---|---|---|---|"]
    for code in codes:
        cell = cells.get(code)
        if cell is None:
            continue
        name = f"{languages.get(code).name} ({code})"
        if cell["state"] != "done":
            lines.append(f"| {name} | {cell['state']} | – | – |")
            continue
        interval = cell.get("interval")
        shown = f"{interval[0]:.2f}–{interval[1]:.2f}" if interval else "–"
        lines.append(f"| {name} | {cell['value']:.2f} | {shown} | {cell.get('answers', '–')} |")
    done = {code: cells[code] for code in codes if code in cells and cells[code]["state"] == "done"}
    if out_dir is not None and done:
        plot({code: cell["value"] for code, cell in done.items()}, Path(out_dir) / PLOT,
             {code: cell["interval"] for code, cell in done.items() if cell.get("interval")})
        lines += ["", f"![answer-language fidelity per language]({PLOT})"]
    return "\n".join(lines)


def plot(values: dict[str, float], path: Path, intervals: dict[str, list[float]] | None = None) -> None:
    """Fidelity per language as bars (0 to 1), with their 95% intervals as error bars."""
    fig, ax = pyplot().subplots(figsize=(max(4.0, 0.4 * len(values) + 2), 3.2))
    intervals = intervals or {}
    below = [values[c] - intervals[c][0] if c in intervals else 0.0 for c in values]
    above = [intervals[c][1] - values[c] if c in intervals else 0.0 for c in values]
    ax.bar(list(values), list(values.values()), color="#2b7bba", yerr=[below, above], capsize=2, ecolor="#333333")
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of answers in the prompt's language")
    ax.set_title("answer-language fidelity")
    fig.tight_layout()
    save_png(fig, path)
