"""The training-content summary (occi/report/content_summary.py) as Markdown, section by section
in the template's numbering; every figure is the summary's JSON, formatted."""
from __future__ import annotations

from occi.report.markdown_text import markdown_table
from occi.train.goldfish import describe as describe_goldfish

NOT_APPLIED = "not applied"
TUNING_NAMES = {"sft": "supervised fine-tuning", "dpo": "preference tuning"}
"""The tuning stages whose data the summary lists beside the pretraining corpora."""
"""What the summary says of a processing step the run did not record."""
TEMPLATE_SECTIONS = {
    "1": "General information",
    "1.1": "Provider identification",
    "1.2": "Model identification",
    "1.3": "Modalities, overall training data size and other characteristics",
    "2": "List of data sources",
    "2.1": "Publicly available datasets",
    "2.2": "Private non-publicly available datasets obtained from third parties",
    "2.2.1": "Datasets commercially licensed by rightsholders or their representatives",
    "2.2.2": "Private datasets obtained from other third parties",
    "2.3": "Data crawled and scraped from online sources",
    "2.4": "User data",
    "2.5": "Synthetic data",
    "2.6": "Other sources of data",
    "3": "Data processing aspects",
    "3.1": "Respect of reservation of rights from text and data mining exception or limitation",
    "3.2": "Removal of illegal content",
    "3.3": "Other information (optional)",
}
"""The template's section numbers and titles, as published (checked against the template's fields in
the July 2025 version; the December 2025 Communication adopted the same template)."""


def _table(header: list[str], rows: list[tuple]) -> str:
    return markdown_table(header, rows) if rows else "None."


def _number(value) -> str:
    return f"{value:,}" if isinstance(value, int) else ("n/a" if value is None else str(value))


def _sources_table(rows: list[dict]) -> str:
    return _table(["source", "used for", "link", "revision", "licence", "size", "share of pretraining text"],
                  [(r["name"], r["used_for"], f"`{r['link']}`", r.get("revision") or "n/a", r.get("license", "n/a"),
                    f"{r['documents']:,} documents, {r['bytes']:,} bytes, {r['words']:,} words" if "documents" in r
                    else _tuning_size(r),
                    f"{100 * r['share_of_bytes']:.2f}%" if "share_of_bytes" in r else "n/a") for r in rows])


def _tuning_size(row: dict) -> str:
    """A fine-tuning or preference source's size: rows read, kept (with their tokens), dropped by reason."""
    unit = "conversations" if "conversations" in row else "pairs"
    return (f"{row['rows_in']:,} rows read, {row[unit]:,} {unit} kept, {row['tokens']:,} tokens "
            f"({row['tokens_planned']:,} over its epochs); dropped: {_drops(row['dropped'])}")


def _drops(reasons: dict) -> str:
    return ", ".join(f"{reason} {count:,}" for reason, count in sorted(reasons.items())) or "none dropped"


def render(summary: dict) -> str:
    s = summary["sections"]
    status = ("complete" if summary["status"] == "complete"
              else f"incomplete: {len(summary['todo'])} to-do line(s) below")
    out = [f"# Public summary of training content: {summary['model']}", "",
           f"Following the {summary['template']}. Written by `occi card` from the records of the run "
           f"`{summary['run']}`; do not edit it by hand. Status: **{status}**."]
    if summary["todo"]:
        out += ["", "## To do", "", *[f"- TO DO {line}" for line in summary["todo"]]]
    out += ["", _heading("1"), *_identification(s["1.1"], s["1.2"]), *_characteristics(s["1.3"])]
    out += ["", _heading("2"), *_data_sources(s)]
    out += ["", _heading("3"), *_processing(s["3.1"], s["3.2"], s["3.3"])]
    return "\n".join(out) + "\n"


def _heading(number: str) -> str:
    """The template's own section heading: "## 1. General information", "### 2.2.1 Datasets ..."."""
    depth = number.count(".")
    return f"{'#' * (depth + 2)} {number}{'.' if depth == 0 else ''} {TEMPLATE_SECTIONS[number]}"


def _identification(provider: dict, model: dict) -> list[str]:
    out = ["", _heading("1.1"), "",
           _table(["", ""], [("Provider", provider["name"]), ("Contact", provider["contact"]),
                             ("Authorised representative", provider["authorised_representative"])]),
           "", _heading("1.2"), "",
           _table(["", ""], [("Model", model["name"]), ("Placed on the EU market", model["placed_on_market"]),
                             ("Training", model["training"])])]
    if model["dependencies"]:
        rows = [(f"`{x['base_model']}`", x["revision"], x["summary"]) for x in model["dependencies"]]
        out += ["", "Model dependencies:", "", _table(["base model", "revision", "its training-content summary"], rows)]
    return out


def _characteristics(d: dict) -> list[str]:
    size, latest = d["training_data_size"]["text"], d["latest_collection"]
    out = ["", _heading("1.3"), "",
           _table(["", ""], [
               ("Modalities", ", ".join(d["modalities"])),
               ("Training data size (text)", f"{size['range'] or 'n/a'}: {size['tokens']:,} tokens "
                f"({size['pretraining_tokens']:,} pretraining, {size['sft_tokens']:,} fine-tuning, "
                f"{size['dpo_tokens']:,} preference tuning)"),
               ("Tokens trained (pretraining)", f"{d['tokens_trained']:,} in {d['steps']:,} steps"),
               *[(f"Tokens trained ({TUNING_NAMES[stage]})", f"{done['tokens']:,} in {done['steps']:,} steps")
                 for stage, done in d["tuning_trained"].items()],
               ("Types of content", "; ".join(d["content_types"])),
               ("Latest date of data collection",
                latest["date"] + (f" ({latest['from']})" if latest["from"] else ""))]),
           "", "Languages (tokens trained from the training log's data order; "
           "epochs = tokens trained / tokens in the data):", ""]
    if d["languages_recorded"]:
        out.append(_table(["language", "tokens trained", "share", "tokens in the data", "epochs"],
                          [(f"{r['name']} ({r['language']})", f"{r['tokens_trained']:,}", f"{100 * r['share']:.2f}%",
                            _number(r["tokens_in_data"]), _number(r["epochs"])) for r in d["languages"]]))
    else:
        out.append("_The training log does not record the samples per language (train/log.jsonl); planned blend "
                   "weights:_ " + ", ".join(f"{r['language']} {_number(r['blend_weight'])}" for r in d["languages"]))
    return out


def _data_sources(s: dict) -> list[str]:
    out = []
    for number in ("2.1", "2.2.1", "2.2.2", "2.3", "2.4", "2.5", "2.6"):
        section = s[number]
        if number == "2.2.1":
            out += ["", _heading("2.2")]
        out += ["", _heading(number), "", _sources_table(section["sources"])]
        if number == "2.3" and section["sources"]:
            domains = section["domains"]
            out += ["", f"Crawler: {section['crawler']}.", "",
                    f"Top domains by content size ({domains.get('method') or NOT_APPLIED}; top "
                    f"{100 * domains.get('share', 0.1):.0f}% of {domains.get('listed', 0):,} domains listed):", "",
                    _table(["domain", "documents", "bytes"],
                           [(x["domain"], f"{x['documents']:,}", f"{x['bytes']:,}") for x in domains["top"]])]
        if number == "2.5":
            out += ["", "Distillation (`occi distill`): " + _distillation(section["distillation"])]
    return out


def _distillation(distill: dict | None) -> str:
    if not distill:
        return f"{NOT_APPLIED}."
    prompts = "; ".join(f"{code}: {', '.join(f'`{f}`' for f in files)}" for code, files in distill["prompts"].items())
    rows = ", ".join(f"{code} {n:,}" for code, n in distill["rows"].items())
    read = ", ".join(f"{code} {n:,}" for code, n in distill.get("prompt_rows", {}).items())
    return (f"teacher `{distill['teacher']}` ({distill['revision']}); prompts: {prompts}"
            + (f"; prompts read: {read}" if read else "") + f"; answers kept: {rows}.")


def _processing(rights: dict, illegal: dict, other: dict) -> list[str]:
    pii, decontamination, goldfish = other["personal_data"], other["decontamination"], other["memorisation_control"]
    rows = [("Documents", f"{_number(other['documents_in'])} read, {_number(other['documents_kept'])} kept"),
            ("Language identification", f"{other['language_identification']['model']}; dropped: "
             + _drops(other["language_identification"]["documents_dropped"])),
            *[(f"Quality filter `{step}`", "dropped: " + _drops(reasons))
              for step, reasons in sorted(other["quality_filters"].items())],
            ("Deduplication", "dropped: " + _drops(other["deduplication"]["documents_dropped"])),
            ("Personal data (PII)", NOT_APPLIED if pii == NOT_APPLIED else "found: " + _drops(pii["found"])),
            ("Benchmark decontamination", NOT_APPLIED if decontamination == NOT_APPLIED else
             f"{decontamination['ngram']}-gram overlap, action {decontamination['action']}; found: "
             + _drops(decontamination["found"]) + "; dropped: " + _drops(decontamination["documents_dropped"])
             + "".join(f"; not checked: {task}" for task in decontamination.get("not_checked", []))),
            ("Memorisation control", NOT_APPLIED if goldfish == NOT_APPLIED else
             describe_goldfish(goldfish["k"], goldfish["h"], goldfish.get("logged")))]
    if other["sft_checks"]:
        rows.append(("Fine-tuning data checks", f"{other['sft_checks']['conversations_kept']:,} conversations kept; "
                     "dropped: " + _drops(other["sft_checks"]["dropped"])))
    if other.get("dpo_checks"):
        rows.append(("Preference data checks", f"{other['dpo_checks']['pairs_kept']:,} pairs kept; "
                     "dropped: " + _drops(other["dpo_checks"]["dropped"])))
    return ["", _heading("3.1"), "",
            _lists_text(rights["optout_lists"], "opt-out")
            + (f" Crawler behaviour: {rights['crawler']}." if rights["crawler"] else ""),
            "", _heading("3.2"), "", _lists_text(illegal["blocklists"], "block"),
            "", _heading("3.3"), "", _table(["step", "what the run records"], rows)]


def _lists_text(block: dict, word: str) -> str:
    if not block.get("applied"):
        return f"{NOT_APPLIED.capitalize()}: no {word} list was configured (corpora `url_filter`)."
    return f"Documents whose URL is on a {word} list were removed:\n\n" + _table(
        ["list", "entries", "documents dropped"],
        [(x["name"], _number(x["entries"]), f"{x['documents_dropped']:,}") for x in block["lists"]])
