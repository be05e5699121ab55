"""The model card's part for a run with preference tuning (`occi dpo`): what it was tuned from, the
loss and its settings, the preference pairs (per language and source: rows read, kept, tokens, why
rows were dropped) and the curves of the loss and the chosen/rejected rewards. Names from the config
or the data are escaped: they show as text, never as markup."""
from __future__ import annotations

from pathlib import Path

from occi.plots import pyplot, save_png
from occi.report.markdown_text import table_cell as _md
from occi.rundir import RunDir


def is_tuned(run: RunDir) -> bool:
    """True when the exported model is the DPO checkpoint (occi/train/export.py)."""
    export = run.read_json(run.hf / "occi_export.json") or {}
    return bool(export.get("dpo")) or (not export and (run.dpo / "_DONE").exists())


def dpo_section(cfg, run: RunDir, out_dir: Path) -> list[str]:
    """["## Preference tuning", text, ...] for a model tuned with `occi dpo`; [] otherwise."""
    if not is_tuned(run):
        return []
    stats = run.read_json(run.dpo_stats) or {}
    summary = run.read_json(run.dpo_summary) or {}
    dpo = cfg.dpo
    start = ("this run's SFT model (its last SFT checkpoint)" if (run.sft / "_DONE").exists()
             else f"the imported base `{cfg.model.base}`" if hasattr(cfg.model, "base") and not run.is_done("train")
             else "this run's pretrained model (its last pretraining checkpoint)")
    lines = [f"This model is {start}, tuned on preference pairs (a prompt, a chosen and a rejected answer) with "
             "`occi dpo` (megatron-core; log-probabilities summed over the answer tokens only).",
             "", "| | |", "|---|---|", f"| Tuned from | {start} |"]
    if dpo:
        when = ("log-probabilities computed once before training" if dpo.reference == "precomputed"
                else "recomputed at every step")
        loss = (f"DPO (sigmoid), beta {dpo.beta:g}, reference: the starting model ({when})" if dpo.loss == "sigmoid"
                else f"SimPO (reference-free, mean answer log-probabilities), beta {dpo.beta:g}, "
                     f"gamma {dpo.simpo_gamma:g}")
        lines += [f"| Loss | {loss} |", f"| Epochs | {dpo.epochs} |", f"| Steps | {summary.get('steps', '?')} |",
                  f"| Batch | {dpo.global_batch_size} pairs, sequences of up to {stats.get('seq_length', '?')} tokens |",
                  f"| Learning rate | {dpo.lr:g} ({dpo.lr_schedule}, {dpo.warmup_fraction:.0%} warmup) "
                  f"to {dpo.min_lr:g} |"]
    if summary.get("hardware"):
        lines.append(f"| Hardware | {summary['hardware']} |")
    parts = ["## Preference tuning", "\n".join(lines)]
    if stats.get("languages"):
        rows = ["| language | rows read | pairs kept | tokens | answer tokens | dropped (why) |",
                "|---|---|---|---|---|---|"]
        for code, entry in stats["languages"].items():
            drops = sorted(entry["drops"].items(), key=lambda kv: -kv[1])
            why = ", ".join(f"{_md(reason)} {count}" for reason, count in drops)
            rows.append(f"| {_md(code)} | {entry['rows_in']:,} | {entry['kept']:,} | {entry['tokens']:,} | "
                        f"{entry['assistant_tokens']:,} | {why or '-'} |")
        parts.append("### Preference pairs per language\n\nEvery pair was checked when read: language ID of the "
                     "prompt, the chosen and the rejected answer, exact and near-duplicate prompts, malformed "
                     "turns, length.\n\n" + "\n".join(rows))
    if stats.get("sources"):
        rows = ["| source | kind | weight | pairs kept | written by |", "|---|---|---|---|---|"]
        for name, entry in stats["sources"].items():
            who = "; ".join(f"{_md(origin)}: {count:,}" for origin, count in entry.get("provenance", {}).items())
            rows.append(f"| {_md(name)} | {_md(entry['kind'])} | {entry['weight']:g} | {entry['kept']:,} | {who or '-'} |")
        parts.append("### Where the pairs came from\n\n" + "\n".join(rows))
    curve = plot_curves(run, out_dir / "dpo_curves.png")
    if curve:
        parts.append(f"![DPO loss and rewards]({curve.name})")
    return parts


def plot_curves(run: RunDir, path: Path) -> Path | None:
    """The loss and the mean chosen and rejected rewards per step."""
    from occi.train.logs import read_log  # loads torch: only when used

    records = {r["step"]: r for r in read_log(run.dpo) if r.get("kind") == "train"}
    if not records:
        return None

    steps = sorted(records)
    fig, (left, right) = pyplot().subplots(1, 2, figsize=(10, 4))
    left.plot(steps, [records[s]["loss"] for s in steps], color="#2b7bba")
    left.set_xlabel("step")
    left.set_ylabel("preference loss")
    right.plot(steps, [records[s]["rewards_chosen"] for s in steps], color="#2b9b5b", label="chosen")
    right.plot(steps, [records[s]["rewards_rejected"] for s in steps], color="#d95f5f", label="rejected")
    right.set_xlabel("step")
    right.set_ylabel("mean reward")
    right.legend()
    fig.tight_layout()
    save_png(fig, path)
    return path


def card_section(cfg, run: RunDir, out_dir: Path) -> str:
    """The dpo stage's section of the model card ("" for a run without preference tuning)."""
    return "\n\n".join(dpo_section(cfg, run, out_dir))
