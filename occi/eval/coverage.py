"""Which benchmark families exist for which language: the table behind `occi coverage` and
eval/coverage.md (generated, a test checks there is no diff), and the gaps with their reasons.

Upstream families are lm-eval 0.4.13's own tasks; the EU20 and SIB-200 families are occi's task
folders (eval/tasks/occi_eu20, eval/tasks/occi_sib200) for benchmarks published by others
(OpenGPT-X; Adelani et al.). Both kinds count towards a language's coverage ("all"); occi's own
question set (occi_mc) is not a family here.
"""
from __future__ import annotations

from pathlib import Path

from occi import languages

MINIMUM = 2
"""Benchmark families (upstream or occi's task folders) every EU language should have."""

GAP_REASONS = {
    "ga": "lm-eval 0.4.13 has only MultiBLiMP for Irish (no Belebele, Global PIQA, MMLU or ARC "
          "translation covers it); SIB-200 does, through occi's task folder",
    "mt": "lm-eval 0.4.13 has only Belebele for Maltese (MultiBLiMP and Global PIQA lack it); "
          "SIB-200 covers it, through occi's task folder",
}
"""Languages below MINIMUM upstream families: why, and what covers them instead."""

HUB = "hub file listing (huggingface.co/datasets/<id>/tree/main), via occi's search tool"
NOT_SEEN = "not seen from here (no hub access); lm-eval 0.4.13 loads it without trust_remote_code"
DATASETS = {
    # hub dataset id: (format on the hub, loads with datasets 4?, where this was checked)
    "facebook/flores": ("loading script", "no: dropped (lm-eval's FLORES pairs are not used)",
                        "lm-eval issue #3171 (datasets with loading scripts)"),
    "Muennighoff/xwinograd": ("JSON-lines + loading script xwinograd.py on main", "no: dropped (XWinograd)", HUB),
    "cambridgeltl/xcopa": ("parquet per language (converted by HF staff; xcopa.py removed)", "yes", HUB),
    "EleutherAI/lambada_openai": ("parquet per language (converted; the script kept as .txt)", "yes", HUB),
    "juletxara/xstory_cloze": ("parquet export per language (refs/convert/parquet); main not seen", "unverified", HUB),
    "wmt/wmt16": ("parquet per pair (hub badge and parquet-converter commits); main not seen", "unverified", HUB),
    "wmt/wmt14": ("parquet per pair, as wmt16", "unverified", NOT_SEEN),
    "Davlan/sib200": ("loading script sib200.py + tab-separated files data/<code>/{train,dev,test}.tsv with a "
                      "header (index_id, category, text) and labels.txt; a parquet export on refs/convert/parquet",
                      "expected (read as csv files, sep tab; the same schema loads in the tests; no real file opened here)",
                      HUB + " (data/ell_Grek, data/azj_Latn: dev.tsv, labels.txt, test.tsv, train.tsv); public code "
                      "reading train.tsv with pandas read_csv(sep='\\t') and its `text` column"),
    "openGPT-X/arcx": ("loading script + JSON-lines arc_challenge_<LANG>_<split>.jsonl", "yes, read as json files",
                       HUB + "; Aleph Alpha eval-framework opengptx_eu20.py (columns, splits)"),
    "openGPT-X/hellaswagx": ("loading script + JSON-lines hellaswag_<LANG>_<split>.jsonl", "yes, read as json files",
                             "a download script of the files; eval-framework (columns, splits)"),
    "openGPT-X/mmlux": ("loading script + JSON-lines per language and split (per-subject or one file: not seen; "
                        "the leaves' glob *_<LANG>_<split>.jsonl matches either)", "yes, read as json files",
                        "commit history on the hub; eval-framework (columns, splits)"),
    "openGPT-X/truthfulqax": ("loading script + JSON-lines truthfulqa_{mc,gen}_<LANG>_validation.jsonl",
                              "yes, read as json files", HUB),
    "openGPT-X/gsm8kx": ("loading script + JSON-lines gsm8k_<LANG>_<split>.jsonl", "yes, read as json files",
                         "a download script of the files; eval-framework (columns, splits)"),
    **{name: ("data files", "unverified", NOT_SEEN) for name in (
        "alexandrainst/m_arc", "alexandrainst/m_hellaswag", "alexandrainst/m_mmlu", "alexandrainst/m_truthfulqa",
        "LumiOpen/arc_challenge_mt", "CohereForAI/Global-MMLU", "CohereForAI/include-base-44", "facebook/belebele",
        "facebook/xnli", "mrlbenchmarks/global-piqa-nonparallel", "jumelet/multiblimp", "openai/MMMLU",
        "li-lab/MMLU-ProX", "google-research-datasets/paws-x", "EleutherAI/lambada_multilingual_stablelm",
        "allenai/ai2_arc", "Rowan/hellaswag", "cais/mmlu", "truthfulqa/truthful_qa", "HiTZ/PAWS-eu",
        "HiTZ/XCOPA-eu", "HiTZ/xnli-eu", "projecte-aina/PAWS-ca", "projecte-aina/xnli-ca",
        "projecte-aina/xstorycloze_ca", "proxectonos/PAWS-gl", "proxectonos/belebele_gl",
        "proxectonos/truthfulqa_gl", "proxectonos/xnli_gl", "proxectonos/xstorycloze_gl")},
}
"""What each referenced hub dataset is stored as (and so whether the installed `datasets`,
which runs no loading scripts, reads it)."""


def table(codes: list[str] | None = None) -> dict[str, dict[str, str]]:
    """language -> family -> task, for every family that exists in that language."""
    return {code: languages.lm_eval_tasks(code) for code in (codes or list(languages.LANGUAGES))}


def upstream_families(code: str) -> list[str]:
    """The families of lm-eval's own tasks in this language."""
    return [f for f in languages.lm_eval_tasks(code) if f not in languages.OCCI_FAMILIES]


def families(code: str) -> list[str]:
    """Every family in this language: lm-eval's and occi's task folders."""
    return list(languages.lm_eval_tasks(code))


def shortfalls(codes: list[str] | None = None) -> dict[str, str]:
    """EU languages with fewer than MINIMUM families, upstream and occi's folders together ->
    the reason (or "" if none given)."""
    return {code: GAP_REASONS.get(code, "") for code in (codes or list(languages.EU_OFFICIAL))
            if languages.get(code).eu_official and len(families(code)) < MINIMUM}


def upstream_shortfalls(codes: list[str] | None = None) -> dict[str, str]:
    """EU languages with fewer than MINIMUM upstream families -> why, and what covers them."""
    return {code: GAP_REASONS.get(code, "") for code in (codes or list(languages.EU_OFFICIAL))
            if languages.get(code).eu_official and len(upstream_families(code)) < MINIMUM}


def markdown(codes: list[str] | None = None) -> str:
    cover = table(codes)
    names = list(languages.BENCHMARKS)
    lines = ["| lang | upstream | all | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    for code, tasks in cover.items():
        lines.append(f"| {code} | {len(upstream_families(code))} | {len(families(code))} | "
                     + " | ".join(f"`{tasks[f]}`" if f in tasks else "–" for f in names) + " |")
    lines += ["", "Gaps per language (families lm-eval 0.4.13 and occi do not have):", ""]
    for code, tasks in cover.items():
        lines.append(f"- {code} ({languages.get(code).name}): " + (", ".join(f for f in names if f not in tasks) or "none"))
    eu = [c for c in cover if languages.get(c).eu_official]
    short = shortfalls(eu)
    lines += ["", f"EU languages with fewer than {MINIMUM} families (upstream and occi's task folders): "
              + ("" if short else "none")]
    if short:
        lines += [""] + [f"- {code}: {reason}" for code, reason in short.items()]
    upstream_short = upstream_shortfalls(eu)
    if upstream_short:
        lines += ["", f"EU languages with fewer than {MINIMUM} upstream lm-eval families:", ""]
        lines += [f"- {code}: {reason}" for code, reason in upstream_short.items()]
    return "\n".join(lines)


def document() -> str:
    """eval/coverage.md: the table, the gaps and the datasets' formats."""
    rows = ["| dataset | format | loads with datasets 4 | checked from |", "|---|---|---|---|"]
    rows += [f"| {name} | {fmt} | {loads} | {where} |" for name, (fmt, loads, where) in DATASETS.items()]
    return (f"<!-- generated by `python -m occi.eval.suites`: do not edit -->\n# Benchmark coverage per language\n\n"
            f"Families: " + ", ".join(f"{f} = {name} ({shots}-shot, {metric})"
                                      for f, (name, shots, metric) in languages.BENCHMARKS.items())
            + ". The `*_eu20` and `sib200` families are occi's task folders (eval/tasks/occi_eu20, "
            "eval/tasks/occi_sib200) for benchmarks published by others; all others are lm-eval 0.4.13's own "
            "tasks. `upstream` counts a language's lm-eval families, `all` adds occi's task folders.\n\n" + markdown() + "\n\n## Datasets\n\n" + "\n".join(rows) + "\n")


def plot(path: Path, codes: list[str] | None = None) -> Path:
    """languages x families as a PNG: a filled square where the family exists."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cover = table(codes)
    names = list(languages.BENCHMARKS)
    grid = [[(2 if f in languages.OCCI_FAMILIES else 1) if f in tasks else 0 for f in names]
            for tasks in cover.values()]
    fig, ax = plt.subplots(figsize=(0.45 * len(names) + 2, 0.3 * len(cover) + 1.5))
    ax.imshow(grid, cmap=matplotlib.colors.ListedColormap(["#f2f2f2", "#2b7bba", "#f5a623"]), vmin=0, vmax=2)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(cover)), [f"{c} ({len(upstream_families(c))}/{len(families(c))})" for c in cover],
                  fontsize=8)
    ax.set_title("benchmark families per language, upstream/all (blue: lm-eval, orange: occi's task folders)",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
