"""The model card's parts for a run with supervised fine-tuning: what the chat model was tuned
from (its base_model relation), the chat data (per language and source: rows read, kept, tokens,
why rows were dropped, provenance), the schedule and loss curve, and how to chat with it. Names
from the config or the data (sources, teachers) are escaped: they show as text, never as markup."""
from __future__ import annotations

from pathlib import Path

from occi.plots import pyplot, save_png
from occi.report.markdown_text import table_cell as _md
from occi.rundir import RunDir


def is_chat(run: RunDir) -> bool:
    """True when the exported model is the SFT checkpoint (occi/train/export.py)."""
    export = run.read_json(run.hf / "occi_export.json") or {}
    return bool(export.get("sft")) or (not export and (run.sft / "_DONE").exists())


def adjust_front_matter(data, cfg, run: RunDir) -> None:
    """Tags and base_model_relation of a chat model (base_model itself is set for imported bases)."""
    if not is_chat(run):
        return
    data.tags = [*(data.tags or []), "sft", "chat", "conversational"]
    if (run.read_json(run.hf / "occi_export.json") or {}).get("dpo"):
        data.tags.append("dpo")
    if getattr(data, "base_model", None):
        data.base_model_relation = "finetune"


def sft_section(cfg, run: RunDir, out_dir: Path) -> list[str]:
    """["## Supervised fine-tuning", text] for a chat model; [] otherwise (and for a base tuned by DPO alone)."""
    if not is_chat(run) or (cfg.sft is None and not run.sft_stats.is_file()):
        return []
    stats = run.read_json(run.sft_stats) or {}
    summary = run.read_json(run.sft_summary) or {}
    sft = cfg.sft
    start = (f"the imported base `{cfg.model.base}`" if hasattr(cfg.model, "base") and not run.is_done("train")
             else "this run's pretrained model (its last pretraining checkpoint)")
    template = {"occi": "occi's default template (system, user and assistant role markers; reasoning as `<think>…</think>`)",
                "base": "the base model's own chat template"}.get(stats.get("template"), "unknown")
    lines = [f"This chat model is {start}, fine-tuned with `occi sft` (megatron-core, loss on assistant tokens "
             f"only{', conversations packed with attention reset at their boundaries' if sft and sft.packing else ''}).",
             "", "| | |", "|---|---|",
             f"| Fine-tuned from | {start} |",
             f"| Chat template | {template} |"]
    if sft:
        lines += [f"| Epochs | {sft.epochs} |", f"| Steps | {summary.get('steps', '?')} |",
                  f"| Batch | {sft.global_batch_size} sequences of {stats.get('seq_length', '?')} tokens |",
                  f"| Learning rate | {sft.lr:g} ({sft.lr_schedule}, {sft.warmup_fraction:.0%} warmup) to {sft.min_lr:g} |"]
    if summary.get("hardware"):
        lines.append(f"| Hardware | {summary['hardware']} |")
    parts = ["## Supervised fine-tuning", "\n".join(lines)]
    if stats.get("languages"):
        rows = ["| language | rows read | kept | tokens | answer tokens | dropped (why) |", "|---|---|---|---|---|---|"]
        for code, entry in stats["languages"].items():
            why = ", ".join(f"{_md(reason)} {count}" for reason, count in sorted(entry["drops"].items(), key=lambda kv: -kv[1]))
            rows.append(f"| {_md(code)} | {entry['rows_in']:,} | {entry['kept']:,} | {entry['tokens']:,} | "
                        f"{entry['assistant_tokens']:,} | {why or '-'} |")
        parts.append("### Chat data per language\n\nEvery conversation was checked when read: language ID of the "
                     "prompt and of the answer separately, exact and near-duplicate prompts, malformed turns, "
                     "length.\n\n" + "\n".join(rows))
    if stats.get("sources"):
        rows = ["| source | kind | weight | kept | provenance |", "|---|---|---|---|---|"]
        for name, entry in stats["sources"].items():
            provenance = ", ".join(f"{_md(who)} ({count:,} rows)" for who, count in entry.get("provenance", {}).items())
            rows.append(f"| {_md(name)} | {_md(entry['kind'])} | {entry['weight']:g} | {entry['kept']:,} | {provenance or '-'} |")
        parts.append("### Chat data sources\n\n" + "\n".join(rows))
    curve = _loss_curve(run, out_dir / "sft_loss_curve.png")
    if curve:
        parts.append(f"![SFT loss]({curve.name})")
    parts.append("### Chatting with it\n\n" + "\n".join([
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'tokenizer = AutoTokenizer.from_pretrained("path/to/hf")',
        'model = AutoModelForCausalLM.from_pretrained("path/to/hf")',
        'messages = [{"role": "user", "content": "Welche Sprache sprechen wir gerade?"}]',
        "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, "
        'return_tensors="pt")',
        "output = model.generate(**inputs, do_sample=False)",
        'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
        "```"]))
    return parts


def _loss_curve(run: RunDir, path: Path) -> Path | None:
    from occi.train.logs import read_log  # loads torch: only when used

    records = {r["step"]: r for r in read_log(run.sft) if r.get("kind") == "train"}
    if not records:
        return None
    fig, ax = pyplot().subplots(figsize=(7, 4))
    steps = sorted(records)
    ax.plot(steps, [records[s]["loss"] for s in steps], color="#2b7bba", label="SFT loss (assistant tokens)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per answer token)")
    ax.legend()
    fig.tight_layout()
    save_png(fig, path)
    return path


def card_section(cfg, run: RunDir, out_dir: Path) -> str:
    """The sft stage's section of the model card ("" for a run without chat tuning)."""
    return "\n\n".join(sft_section(cfg, run, out_dir))
