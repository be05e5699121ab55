"""The card's lineage: what made this model, from occi's commit to the eval task versions.

the occi version and git commit that ran each stage, the resolved config (config.yaml, with its hash), every data source
with its revision (hub, from `occi fetch`'s manifest) or its files' hash (local), documents and
tokens per language with the reasons documents were dropped, the tokenizer's hash, the checkpoints
used, and each evaluated task with its version, dataset and few-shot setting (read from lm-eval's
own results files). Also the model-index fields the card's front matter needs from those files.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

from occi import languages, provenance
from occi.corpora.sources import expand_sources, local_files
from occi.errors import OcciError
from occi.report.markdown_text import markdown_table
from occi.report.merge_section import merge_lineage
from occi.rundir import RunDir

LM_EVAL_URL = "https://github.com/EleutherAI/lm-evaluation-harness"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def eval_tasks(run: RunDir) -> dict[str, dict]:
    """Every task in the run's lm-eval results files: version, dataset, config, few-shot, lm-eval version."""
    tasks: dict[str, dict] = {}
    if not run.eval.is_dir():
        return tasks
    for path in sorted(run.eval.rglob("results*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        configs = data.get("configs") if isinstance(data.get("configs"), dict) else {}
        for task, config in configs.items():
            if not isinstance(config, dict):
                continue
            tasks[task] = {"version": (data.get("versions") or {}).get(task),
                           "dataset_path": config.get("dataset_path"), "dataset_name": config.get("dataset_name"),
                           "num_fewshot": (data.get("n-shot") or {}).get(task, config.get("num_fewshot")),
                           "lm_eval_version": data.get("lm_eval_version")}
    return tasks


def hub_dataset(info: dict | None) -> tuple[str, str | None] | None:
    """(hub dataset id, config) of a task whose data comes from the hub; None for local data."""
    path = (info or {}).get("dataset_path")
    if not isinstance(path, str) or "/" not in path or Path(path).exists():
        return None
    name = info.get("dataset_name")
    return path, name if isinstance(name, str) else None


def trained_languages(cfg) -> str:
    """The run's languages, saying which are not official EU languages."""
    names = ", ".join(f"{languages.get(c).name} ({c})" for c in cfg.languages)
    other = [c for c in cfg.languages if not languages.get(c).eu_official]
    if not other:
        return f"Trained on {len(cfg.languages)} languages, all official languages of the EU: {names}."
    return (f"Trained on {len(cfg.languages)} languages: {names}. Of these, "
            + ", ".join(f"{languages.get(c).name} ({c})" for c in other)
            + f" {'is' if len(other) == 1 else 'are'} not official EU language{'s' if len(other) > 1 else ''}.")


def _sources(cfg, run: RunDir) -> list[tuple]:
    manifest = run.read_json(run.fetch_manifest) or {}
    rows = []
    for source in cfg.corpora.sources:
        if source.kind == "hub":
            revisions = sorted({str(item.get("revision")) for item in manifest.get("items", {}).values()
                                if item.get("id") == source.dataset and item.get("revision")})
            where = f"`{source.dataset}`" + (f" ({source.subset})" if source.subset else "") + f", split {source.split}"
            pinned = ("revision " + ", ".join(f"`{r}`" for r in revisions)) if revisions else \
                "revision not recorded (no `occi fetch` manifest): the default branch when the corpora were built"
            rows.append((source.name, "hub", where, pinned))
            continue
        files: list[Path] = []
        for expanded in expand_sources(SimpleNamespace(sources=[source]), list(cfg.languages)):
            try:
                files += [Path(f) for f in local_files(expanded, cfg.corpora.base_dir)]
            except OcciError:  # a glob without files (a language the source lacks): nothing to hash
                continue
        files = sorted(set(files))
        digest = hashlib.sha256("".join(f"{f.name} {sha256(f)}\n" for f in files if f.is_file()).encode()).hexdigest()
        size = sum(f.stat().st_size for f in files if f.is_file())
        rows.append((source.name, source.kind, f"`{source.path}`",
                     f"{len(files)} file(s), {size:,} bytes, sha256 of their hashes `{digest[:16]}`" if files
                     else "no files found"))
    return rows


def lineage_section(cfg, run: RunDir) -> str:
    run = RunDir.of(run)
    made = {}
    for line in provenance.read(run.provenance):
        made.setdefault((line["occi"], line["commit"]), []).append(line["stage"])
    made_by = "; ".join(f"{number}, commit `{commit}` ({', '.join(dict.fromkeys(stages))})"
                        for (number, commit), stages in made.items()) or \
        f"not recorded (the run's stages predate {run.provenance.name})"
    lines = [markdown_table(["", ""], [("occi", made_by),
                               ("Resolved config", f"`config.yaml`, sha256 `{sha256(run.config_file)[:16]}` (below)"
                                if run.config_file.is_file() else "not frozen in this run")])]
    lines += ["", "Data sources:", "", markdown_table(["source", "kind", "what", "revision or content hash"], _sources(cfg, run))]
    stats = run.read_json(run.corpora_stats)
    blend = run.read_json(run.blend_file)
    if stats:
        rows = []
        for code in cfg.languages:
            entry = stats["languages"].get(code, {})
            tokens = ((blend or {}).get("languages", {}).get(code, {}).get("train", {}) or {}).get("tokens")
            drops = sorted((entry.get("drops") or {}).items(), key=lambda kv: -kv[1])
            rows.append((code, f"{entry.get('documents_in', 0):,}", f"{entry.get('documents_kept', 0):,}",
                         f"{tokens:,}" if tokens is not None else "n/a",
                         ", ".join(f"{reason} {count:,}" for reason, count in drops) or "none"))
        lines += ["", "Documents and tokens per language, with why documents were dropped:", "",
                  markdown_table(["language", "documents in", "kept", "training tokens", "dropped (reason count)"], rows)]
    else:
        lines += ["", f"_Corpus counts not available ({run.corpora_stats} is missing)._"]
    tokenizer = next((p for p in (run.tokenizer_model, run.tokenizer / "tokenizer.json") if p.is_file()), None)
    lines += ["", f"Tokenizer: `{tokenizer.name}` sha256 `{sha256(tokenizer)}`." if tokenizer
              else "Tokenizer: not available in this run."]
    export = run.read_json(run.hf / "occi_export.json")
    kept = sorted(p.name for p in run.checkpoints.glob("iter_*")) if run.checkpoints.is_dir() else []
    source = run.read_json(run.base / "source.json")
    checkpoints = (f"the exported model (`hf/`) is checkpoint iteration {export['iteration']}" if export
                   else "no exported model yet")
    checkpoints += f"; checkpoints kept: {', '.join(kept)}" if kept else ""
    if source:
        checkpoints += f"; continued from `{source.get('base')}` revision {source.get('revision') or 'default branch'}"
    lines += ["", f"Checkpoints: {checkpoints}."]
    merged = merge_lineage(run)
    lines += ["", merged] if merged else []
    tasks = eval_tasks(run)
    if tasks:
        rows = []
        for task, info in sorted(tasks.items()):
            hub = hub_dataset(info)
            rows.append((f"`{task}`", info["version"] if info["version"] is not None else "n/a",
                         f"`{hub[0]}`" + (f" ({hub[1]})" if hub[1] else "") if hub else "local (run files)",
                         info["num_fewshot"] if info["num_fewshot"] is not None else "n/a",
                         info["lm_eval_version"] or "n/a"))
        lines += ["", "Evaluation tasks (from lm-eval's results files):", "",
                  markdown_table(["task", "version", "dataset", "few-shot", "lm-eval"], rows)]
    if run.config_file.is_file():
        lines += ["", "<details><summary>The resolved config (config.yaml)</summary>", "", "```yaml",
                  run.config_file.read_text(encoding="utf-8").rstrip(), "```", "", "</details>"]
    return "\n".join(lines)
