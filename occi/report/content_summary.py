"""The EU AI Act's public summary of training content (Article 53(1)(d), Recital 107), written by
`occi card` as report/training-content-summary.{md,json}.

It follows the sections and numbering of the AI Office's template (TEMPLATE below): 1 general
information, 2 the list of data sources by category, 3 data processing. Every figure comes from the
run's own records: corpora/stats.json (documents, bytes and drops per source, language and step;
the url_filter, PII and decontamination counts), corpora/domains.json, fetch.json (revisions,
collection dates), data/blend.json (tokens per language), train/log.jsonl (the samples training
actually read per language), sft/data/stats.json and distill/stats.json. What only the provider
knows comes from the config's `provider:` block; each missing field becomes a to-do line, and
`occi card --push` refuses a summary with to-do lines unless --allow-incomplete is given.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from occi import languages
from occi.basemodel import is_base_run, run_model_config
from occi.errors import OcciError
from occi.fsutil import atomic_write_json, atomic_write_text
from occi.report.content_summary_markdown import NOT_APPLIED, TEMPLATE_SECTIONS, TUNING_NAMES, render
from occi.rundir import RunDir
from occi.train import goldfish

TEMPLATE = ("Explanatory Notice and Template for the Public Summary of Training Content for general-purpose AI "
            "models (AI Office, published 24 July 2025; Commission Communication C(2025) 8311 of 5 December 2025)")
SIZE_RANGES = ((1e9, "less than 1 billion tokens"), (10e12, "1 billion to 10 trillion tokens"),
               (float("inf"), "more than 10 trillion tokens"))
"""The template's ranges for the overall training data size of the text modality."""
SPECIAL_STEPS = {"langid", "dedup", "url_filter", "decontaminate", "read"}
"""Drop steps shown on their own; the other steps are the quality filters."""


def write(cfg, run: RunDir, out_dir: Path) -> tuple[Path, dict]:
    """Writes training-content-summary.{md,json} into out_dir; returns the Markdown path and the summary."""
    summary = build(cfg, RunDir.of(run))
    atomic_write_json(out_dir / "training-content-summary.json", summary)
    return atomic_write_text(out_dir / "training-content-summary.md", render(summary)), summary


def read_status(folder: Path) -> dict | None:
    """The written summary's JSON (status, to-do lines), or None when there is none."""
    return RunDir(folder).read_json(Path(folder) / "training-content-summary.json")


# ------------------------------------------------------------------ the summary as data

def build(cfg, run: RunDir) -> dict:
    todo: list[str] = []
    stats = run.read_json(run.corpora_stats) or {}
    provider = cfg.provider
    sections = {
        "1.1": _provider(provider, todo),
        "1.2": _model(cfg, run, todo),
        "1.3": _modalities(cfg, run, stats, todo),
        **_sources(cfg, run, stats, todo),
        **_processing(cfg, run, stats),
    }
    return {"template": TEMPLATE, "model": cfg.model_name, "run": cfg.name,
            "status": "complete" if not todo else "incomplete", "todo": todo, "sections": sections}


def _need(value, key: str, what: str, todo: list[str]) -> str:
    if not value:
        todo.append(f"provider.{key}: {what}")
    return value or "TO DO"


def _provider(provider, todo) -> dict:
    return {"title": TEMPLATE_SECTIONS["1.1"],
            "name": _need(provider.name, "name", "the provider's name", todo),
            "contact": _need(provider.contact, "contact", "how to contact the provider", todo),
            "authorised_representative": provider.authorised_representative or "none given"}


def _model(cfg, run: RunDir, todo) -> dict:

    section = {"title": TEMPLATE_SECTIONS["1.2"], "name": cfg.model_name,
               "placed_on_market": _need(provider_date(cfg.provider.placed_on_market), "placed_on_market",
                                         "the date the model is placed on the EU market (YYYY-MM-DD)", todo),
               "training": "continued pretraining of a base model" if is_base_run(cfg) else "trained from scratch",
               "dependencies": []}
    if is_base_run(cfg):
        source = run.read_json(run.base / "source.json") or {}
        section["dependencies"].append({
            "base_model": cfg.model.base, "revision": source.get("revision") or cfg.model.revision or "default branch",
            "summary": _need(cfg.provider.base_model_summary, "base_model_summary",
                             f"where the training-content summary of the base model {cfg.model.base} is", todo)})
    return section


def provider_date(value) -> str:
    return str(value) if value else ""


def trained_tokens(cfg, run: RunDir) -> tuple[dict[str, int] | None, int, int]:
    """({language: tokens trained}, tokens trained in all, steps) from the training log's last step;
    the per-language counts are None for a log that does not record them."""
    from occi.train.logs import read_log  # loads torch: only when used

    train = {r["step"]: r for r in read_log(run.train) if r.get("kind") == "train"}
    if not train:
        return None, 0, 0
    last = train[max(train)]
    try:
        seq_length = run_model_config(cfg, run).seq_length
    except OcciError:  # an imported base without base/config.json: no shape, no token counts
        return None, 0, max(train)
    total = last["step"] * cfg.train.global_batch_size * seq_length
    samples = last.get("language_samples")
    return ({code: count * seq_length for code, count in samples.items()} if samples else None), total, last["step"]


def _modalities(cfg, run: RunDir, stats: dict, todo) -> dict:
    blend = run.read_json(run.blend_file) or {}
    data_tokens = sum(entry["train"]["tokens"] for entry in blend.get("languages", {}).values())
    sft = run.read_json(run.sft_stats)
    sft_tokens = sft["totals"]["tokens"] if sft else 0
    dpo = run.read_json(run.dpo_stats)
    dpo_tokens = dpo["totals"]["tokens"] if dpo else 0
    per_language, total, steps = trained_tokens(cfg, run)
    rows = []
    for code in cfg.languages:
        in_data = (blend.get("languages", {}).get(code) or {}).get("train", {}).get("tokens")
        row = {"language": code, "name": languages.get(code).name, "tokens_in_data": in_data,
               "blend_weight": (blend.get("languages", {}).get(code) or {}).get("weight")}
        if per_language is not None:
            trained = per_language.get(code, 0)
            row.update(tokens_trained=trained, share=round(trained / total, 6) if total else 0.0,
                       epochs=round(trained / in_data, 3) if in_data else None)
        rows.append(row)
    size = data_tokens + sft_tokens + dpo_tokens
    size_range = next(label for limit, label in SIZE_RANGES if size < limit) if size else None
    content = ["text: natural-language documents (" + ", ".join(sorted({s.kind for s in cfg.corpora.sources})) + ")"]
    if sft:
        content.append("text: chat conversations for supervised fine-tuning")
    if dpo:
        content.append("text: preference pairs (a prompt with a chosen and a rejected answer) for preference tuning")
    if run.read_json(run.distill_stats):
        content.append("text: answers written by a teacher model (synthetic)")
    tuning = {stage: dict(zip(("tokens", "steps"), tuning_tokens_trained(run, run.stage_folder(stage))))
              for stage, stats in (("sft", sft), ("dpo", dpo)) if stats}
    return {"title": TEMPLATE_SECTIONS["1.3"],
            "modalities": ["text"],
            "training_data_size": {"text": {"tokens": size, "pretraining_tokens": data_tokens, "sft_tokens": sft_tokens,
                                            "dpo_tokens": dpo_tokens, "range": size_range}},
            "tokens_trained": total, "steps": steps, "tuning_trained": tuning, "content_types": content,
            "latest_collection": _latest_collection(cfg, run, todo), "languages": rows,
            "languages_recorded": per_language is not None}


def _latest_collection(cfg, run: RunDir, todo) -> dict:
    manifest = run.read_json(run.fetch_manifest) or {}
    fetched = [item["fetched_at"][:10] for item in manifest.get("items", {}).values() if item.get("fetched_at")]
    declared = provider_date(cfg.provider.data_collected_until)
    local = [s.name for s in cfg.corpora.sources if s.kind != "hub"]
    unfetched = [s.name for s in cfg.corpora.sources if s.kind == "hub"] if not fetched else []
    if (local or unfetched) and not declared:
        _need("", "data_collected_until", "the latest date the data of " + ", ".join(local + unfetched)
              + " was collected (YYYY-MM-DD)", todo)
    dates = fetched + ([declared] if declared else [])
    return {"date": max(dates) if dates else "TO DO",
            "from": ("fetch.json" if fetched else "") + (" and " if fetched and declared else "")
                    + ("provider.data_collected_until" if declared else "")}


def category(cfg, source) -> str | None:
    """A source's template category: declared in provider.source_categories, hub datasets public by
    default, None for an undeclared local source."""
    declared = cfg.provider.source_categories.get(source.name)
    return declared or ("public" if source.kind == "hub" else None)


def _sources(cfg, run: RunDir, stats: dict, todo) -> dict:
    manifest = run.read_json(run.fetch_manifest) or {}
    sft = run.read_json(run.sft_stats) or {}
    kept_bytes = sum(entry.get("bytes_kept", 0) for entry in stats.get("sources", {}).values())
    listed = defaultdict(list)
    for source in cfg.corpora.sources:
        entry = stats.get("sources", {}).get(source.name, {})
        revisions = sorted({str(item["revision"]) for item in manifest.get("items", {}).values()
                            if item.get("id") == source.dataset and item.get("revision")})
        row = {"name": source.name, "used_for": "pretraining", "kind": source.kind,
               "link": f"https://huggingface.co/datasets/{source.dataset}" if source.kind == "hub" and source.dataset
               and "/" in source.dataset else (source.dataset or source.path),
               "revision": ", ".join(revisions) or None, "license": source.license or "not stated",
               "documents": entry.get("documents_kept", 0), "bytes": entry.get("bytes_kept", 0),
               "words": entry.get("words_kept", 0),
               "share_of_bytes": round(entry.get("bytes_kept", 0) / kept_bytes, 6) if kept_bytes else 0.0}
        listed[_category_or_todo(cfg, source, todo)].append(row)
    for stage, stats_of_stage in (("sft", sft), ("dpo", run.read_json(run.dpo_stats) or {})):
        section = getattr(cfg, stage)
        for source in (section.sources if section else []):
            listed[_category_or_todo(cfg, source, todo)].append(
                tuning_source(stage, source, stats_of_stage, manifest))
    crawled = {"title": TEMPLATE_SECTIONS["2.3"], "sources": listed["crawled"]}
    if listed["crawled"]:
        crawled["crawler"] = _need(cfg.provider.crawler, "crawler",
                                   "the crawler's name and behaviour (robots.txt, opt-outs)", todo)
        crawled["domains"] = _top_domains(run, [row["name"] for row in listed["crawled"]], cfg.provider.sme)
    return {
        "2.1": {"title": TEMPLATE_SECTIONS["2.1"], "sources": listed["public"]},
        "2.2.1": {"title": TEMPLATE_SECTIONS["2.2.1"], "sources": listed["licensed"]},
        "2.2.2": {"title": TEMPLATE_SECTIONS["2.2.2"], "sources": listed["private"]},
        "2.3": crawled,
        "2.4": {"title": TEMPLATE_SECTIONS["2.4"], "sources": listed["user"]},
        "2.5": {"title": TEMPLATE_SECTIONS["2.5"], "sources": listed["synthetic"], "distillation": _distillation(cfg, run)},
        "2.6": {"title": TEMPLATE_SECTIONS["2.6"], "sources": listed["other"] + listed["undeclared"]},
    }


TUNING = {"sft": (TUNING_NAMES["sft"], "conversations"), "dpo": (TUNING_NAMES["dpo"], "pairs")}
"""What the rows of a tuning stage's sources are used for and called."""


def tuning_source(stage: str, source, stats: dict, manifest: dict) -> dict:
    """A fine-tuning (sft) or preference (dpo) source as the summary lists it, from <stage>/data/stats.json:
    rows read, kept and dropped by reason, their tokens, and the tokens its epochs planned to train."""
    entry = stats.get("sources", {}).get(source.name, {})
    used_for, unit = TUNING[stage]
    revisions = sorted({str(item["revision"]) for item in manifest.get("items", {}).values()
                        if source.dataset and item.get("id") == source.dataset and item.get("revision")})
    return {"name": source.name, "used_for": used_for, "kind": source.kind, "link": source.dataset or source.path or "this run's `occi distill` output",
            "revision": ", ".join(revisions) or None, "license": source.license or "not stated",
            "rows_in": entry.get("rows_in", 0), unit: entry.get("kept", 0), "dropped": entry.get("drops", {}),
            "tokens": entry.get("tokens", 0),
            "tokens_planned": entry.get("tokens_per_epoch", 0) * stats.get("epochs", 0)}


def tuning_tokens_trained(run: RunDir, folder: Path) -> tuple[int, int]:
    """(tokens, steps) a tuning stage trained, from its log's training records (the `tokens` of each step)."""
    from occi.train.logs import read_log  # loads torch: only when used

    steps = {r["step"]: r for r in read_log(folder) if r.get("kind") == "train"}
    return sum(r.get("tokens", 0) for r in steps.values()), len(steps)


def _category_or_todo(cfg, source, todo) -> str:
    found = category(cfg, source)
    if found is None:
        todo.append(f"provider.source_categories.{source.name}: declare the category of the local source "
                    f"{source.name!r} (public, licensed, private, crawled, user, synthetic or other)")
        return "undeclared"
    return found


def _top_domains(run: RunDir, sources: list[str], sme: bool) -> dict:
    """The crawled sources' domains by bytes, over their languages; the top 10% (SMEs: 5%, at most
    1,000) of the domains domains.json lists."""
    domains = run.read_json(run.corpora / "domains.json")
    if not domains:
        return {"method": NOT_APPLIED, "top": []}
    merged: dict[str, dict] = defaultdict(lambda: {"documents": 0, "bytes": 0})
    for source in sources:
        for entry in (domains.get("sources", {}).get(source) or {}).values():
            for item in entry.get("top", []):
                merged[item["domain"]]["documents"] += item["documents"]
                merged[item["domain"]]["bytes"] += item["bytes"]
    ranked = sorted(merged.items(), key=lambda kv: (-kv[1]["bytes"], kv[0]))
    share = 0.05 if sme else 0.10
    count = max(1, round(share * len(ranked))) if ranked else 0
    count = min(count, 1000) if sme else count
    return {"method": domains.get("method", ""), "listed": len(ranked), "share": share,
            "top": [{"domain": name, **numbers} for name, numbers in ranked[:count]]}


def _distillation(cfg, run: RunDir) -> dict | None:
    stats = run.read_json(run.distill_stats)
    if not stats or cfg.distill is None:
        return None
    return {"teacher": stats["teacher"], "revision": stats.get("revision") or "default branch",
            "prompts": {code: files if isinstance(files, list) else [files]
                        for code, files in cfg.distill.prompts.items()},
            "rows": {code: entry["rows"] for code, entry in stats["languages"].items()},
            "prompt_rows": {code: entry["prompts"] for code, entry in stats["languages"].items() if "prompts" in entry}}


def _steps(drops: dict) -> dict[str, dict[str, int]]:
    by_step: dict[str, dict[str, int]] = defaultdict(dict)
    for key, count in drops.items():
        step, _, reason = key.partition("/")
        by_step[step][reason] = count
    return by_step


def _url_lists(stats: dict, kind: str) -> dict:
    block = stats.get("url_filter")
    if not block:
        return {"applied": False}
    lists = {name: info for name, info in block.get("lists", {}).items() if info.get("kind") == kind}
    dropped = block.get("dropped", {})
    return {"applied": bool(lists),
            "lists": [{"name": name, "entries": info.get("entries"),
                       "documents_dropped": sum((dropped.get(name) or {}).values())} for name, info in lists.items()]}


def _processing(cfg, run: RunDir, stats: dict) -> dict:
    totals = (stats.get("totals") or {}).get("drops", {})
    steps = _steps(totals)
    quality = {step: reasons for step, reasons in steps.items() if step not in SPECIAL_STEPS}
    pii = stats.get("pii")
    pii_totals: dict[str, int] = defaultdict(int)
    for counts in (pii or {}).values():
        for kind, count in counts.items():
            pii_totals[kind] += count
    decontamination = stats.get("decontamination")
    goldfish = cfg.train.goldfish
    sft = run.read_json(run.sft_stats)
    dpo = run.read_json(run.dpo_stats)
    langid = cfg.corpora.langid
    return {
        "3.1": {"title": TEMPLATE_SECTIONS["3.1"],
                "optout_lists": _url_lists(stats, "optout"), "crawler": cfg.provider.crawler or None},
        "3.2": {"title": TEMPLATE_SECTIONS["3.2"], "blocklists": _url_lists(stats, "blocklist")},
        "3.3": {"title": TEMPLATE_SECTIONS["3.3"],
                "language_identification": {"model": langid.model or f"{langid.backend} (default model)",
                                            "documents_dropped": steps.get("langid", {})},
                "quality_filters": quality,
                "deduplication": {"documents_dropped": steps.get("dedup", {})},
                "personal_data": ({"found": dict(pii_totals), "per_language": pii} if pii is not None
                                  else NOT_APPLIED),
                "decontamination": ({"ngram": decontamination.get("ngram"), "action": decontamination.get("action"),
                                     "found": {b: sum(v.values()) for b, v in decontamination.get("found", {}).items()},
                                     "documents_dropped": steps.get("decontaminate", {}),
                                     "not_checked": decontamination.get("not_checked", [])}
                                    if decontamination else NOT_APPLIED),
                "memorisation_control": ({"method": "Goldfish loss (Hans et al., 2024)", "k": goldfish.k,
                                          "h": goldfish.h, "logged": _goldfish_totals(run)}
                                         if goldfish else NOT_APPLIED),
                "sft_checks": ({"conversations_kept": sft["totals"]["kept"], "dropped": sft["totals"]["drops"]}
                               if sft else None),
                "dpo_checks": ({"pairs_kept": dpo["totals"]["kept"], "dropped": dpo["totals"]["drops"]}
                               if dpo else None),
                "documents_in": (stats.get("totals") or {}).get("documents_in"),
                "documents_kept": (stats.get("totals") or {}).get("documents_kept")},
    }


def _goldfish_totals(run: RunDir) -> dict | None:
    from occi.train.logs import read_log  # loads torch: only when used

    return goldfish.logged_totals(read_log(run.train))
