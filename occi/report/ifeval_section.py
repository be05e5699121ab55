"""The model card's instruction-following section: per language, the share of occi's (or lm-eval's)
IFEval-style prompts whose every verifiable instruction the model followed (occi/eval/ifeval.py)."""
from __future__ import annotations

from pathlib import Path

from occi import languages
from occi.eval import ifeval
from occi.eval.intervals import wilson
from occi.eval.runner import own_table
from occi.plots import pyplot, save_png
from occi.rundir import RunDir

PLOT = "instruction_following.png"


def ifeval_section(run: RunDir, codes: list[str], out_dir: Path | None = None) -> str | None:
    """The section's text (and, with `out_dir`, its chart there), or None when the run's model was
    not evaluated with the ifeval suite."""
    table = own_table(RunDir.of(run)) or {}
    cells = {c["language"]: c for c in table.get("cells", []) if c["family"] == "ifeval"}
    if not cells:
        return None
    lines = ["Instruction following with verifiable constraints (`occi eval --suite ifeval`): per language, the share "
             "of prompts whose every instruction (length, format, case, keywords, answer language, end phrase, "
             "placeholders) the model's greedy answer follows, checked by rule (prompt-level strict accuracy, "
             "[95% Wilson interval]), and the share of single instructions followed. Prompts: occi's own, written "
             "in each language (eval/data/ifeval/), or lm-eval's IFEval task where it has one.", "",
             "| language | prompt-level | 95% interval | instruction-level | prompts | task |", "|---|---|---|---|---|---|"]
    done = {}
    for code in codes:
        cell = cells.get(code)
        if cell is None:
            continue
        name = f"{languages.get(code).name} ({code})"
        source = "lm-eval" if code in ifeval.UPSTREAM else "occi"
        if cell["state"] != "done":
            lines.append(f"| {name} | {cell['state']} | – | – | – | {cell['task']} ({source}) |")
            continue
        count = cell.get("answers") or 0
        # the value is passed prompts / count: its interval is the suite's Wilson interval of those
        low, high = wilson(round(cell["value"] * count), count) if count > 0 else (0.0, 1.0)
        done[code] = (cell["value"], low, high)
        inst = cell.get("instruction_level")
        lines.append(f"| {name} | {cell['value']:.2f} | [{low:.2f}, {high:.2f}] | "
                     f"{'–' if inst is None else f'{inst:.2f}'} | {count or '–'} | {cell['task']} ({source}) |")
    if out_dir is not None and done:
        plot(done, Path(out_dir) / PLOT)
        lines += ["", f"![instruction following per language]({PLOT})"]
    return "\n".join(lines)


def plot(values: dict[str, tuple[float, float, float]], path: Path) -> None:
    """Prompt-level strict accuracy per language with its 95% interval."""
    codes = list(values)
    heights = [values[c][0] for c in codes]
    errors = [[values[c][0] - values[c][1] for c in codes], [values[c][2] - values[c][0] for c in codes]]
    fig, ax = pyplot().subplots(figsize=(max(4.0, 0.4 * len(codes) + 2), 3.2))
    ax.bar(codes, heights, yerr=errors, capsize=3, color="#5a9e4b")
    ax.set_ylim(0, 1)
    ax.set_ylabel("prompts fully followed")
    ax.set_title("instruction following (95% interval)")
    fig.tight_layout()
    save_png(fig, path)
