"""The model card's parts for continual pretraining of an imported base: the base itself (id,
revision, architecture, tokenizer policy), the front-matter fields Hugging Face links models
with, and the evaluation of base and continued model side by side."""
from __future__ import annotations

from pathlib import Path

from occi.eval.runner import own_table
from occi.rundir import RunDir



def front_matter(cfg) -> dict:
    """base_model (a hub id, or the base folder's name) and base_model_relation."""
    base = cfg.model.base
    return {"base_model": base if not Path(base).is_absolute() else Path(base).name, "base_model_relation": "finetune"}


TOKENIZER_POLICY = {"base": "the base model's tokenizer, kept as it is (token ids unchanged)",
                    "extend": "the base model's tokenizer extended with pieces learned on this run's corpora "
                              "(existing ids unchanged; new embedding rows start from the mean of the base "
                              "embeddings of the pieces the base splits them into)"}


def base_section(cfg, run_dir: Path) -> str:
    run = RunDir.of(run_dir)
    source = run.read_json(run.base / "source.json")
    if not source:
        return "_Not available: the base model is not imported in this run (base/source.json)._"
    revision = source.get("revision") or "default branch"
    folder = Path(source["folder"])
    if folder.parent.name == "snapshots":  # huggingface_hub's cache: the folder is the commit
        revision += f" (commit {folder.name})"
    rows = [("Base model", f"`{cfg.model.base}`"), ("Base revision", revision),
            ("Architecture", source["architecture"]), ("Parameters", f"{source['parameters']:,}"),
            ("Tokenizer", TOKENIZER_POLICY.get(cfg.tokenizer.source, cfg.tokenizer.source)),
            ("Imported at", f"tensor parallel {source['tensor_parallel']}, pipeline parallel {source['pipeline_parallel']}")]
    lines = ["| | |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    return ("This model continues the pretraining of an open base model (`occi import`, then `occi train` with a "
            "fresh optimizer and a re-warmed learning rate).\n\n" + "\n".join(lines))


def comparison(run_dir: Path, base_label: str | None) -> str:
    """Base and continued model side by side, per language and benchmark (empty when either is missing)."""
    run = RunDir.of(run_dir)
    own = own_table(run)
    base = run.read_json(run.eval_table(base_label)) if base_label else None
    if not own or not base:
        return ""
    index = {(c["language"], c["family"], c["metric"]): c for c in base["cells"] if c["state"] == "done"}
    rows = ["| lang | benchmark | base | continued | change |", "|---|---|---|---|---|"]
    for cell in own["cells"]:
        before = index.get((cell["language"], cell["family"], cell["metric"]))
        if cell["state"] != "done" or before is None:
            continue
        rows.append(f"| {cell['language']} | {cell['family']} ({cell['metric']}) | {before['value']:.3f} | "
                    f"{cell['value']:.3f} | {cell['value'] - before['value']:+.3f} |")
    if len(rows) == 2:
        return ""
    return "Base model and continued model on the same cells:\n\n" + "\n".join(rows)


def card_section(cfg, run: RunDir, out_dir: Path) -> str:
    """The import stage's `## Base model` section."""
    return "## Base model\n\n" + base_section(cfg, run)
