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

HF = "https://huggingface.co/datasets/"
HUB = "hub file listing (huggingface.co/datasets/<id>/tree/main), via occi's search tool"
SEEN = "stored copies of the hub pages, read 2026-12-03 with occi's search tool: "
SCRIPT_CHECK = ("datasets 5.2 (installed) refuses a repository whose commit has <repo name>.py at its "
                "root (RuntimeError 'Dataset scripts are no longer supported'); lm-eval 0.4.13 pins no "
                "revision for any of these")
DATASETS = {
    # hub dataset id: (format on the hub, loads with datasets 4?, where this was checked)
    "facebook/flores": ("loading script", "no: dropped (lm-eval's FLORES pairs are not used)",
                        "lm-eval issue #3171 (datasets with loading scripts)"),
    "Muennighoff/xwinograd": ("JSON-lines + loading script xwinograd.py on main", "no: dropped (XWinograd)", HUB),
    "cambridgeltl/xcopa": ("parquet per language (converted by HF staff; xcopa.py removed)", "yes", HUB),
    "EleutherAI/lambada_openai": ("parquet per language (converted; the script kept as .txt)", "yes", HUB),
    "juletxara/xstory_cloze": (
        "parquet export <lang>/xstory_cloze-{train,eval}.parquet on refs/convert/parquet only; main not seen; "
        "its pages carry no 'Formats' badge (the hub shows one only for data-file repositories); the "
        "Muennighoff/xstory_cloze it copies has the loading script xstory_cloze.py",
        "uncertain: not if main still has xstory_cloze.py (xstorycloze_en/_es/_eu read it)",
        SEEN + HF + "juletxara/xstory_cloze/tree/681c9fd7fbd1b4957db8d6a5f45eadba059fc2b9/en (parquet-converter), "
        + HF + "Muennighoff/xstory_cloze/blob/465da57d055bcea2adda546831c814617dc3652d/xstory_cloze.py"),
    "wmt/wmt16": ("parquet per pair <pair>/ (HF staff conversion; commit 3923157 'Delete loading script' "
                  "removed wmt16.py)", "yes",
                  SEEN + HF + "wmt/wmt16/tree/c40135dc86c3fd218a79cb675ad3149aa68fc51a (cs-en/, de-en/ "
                  "parquet), " + HF + "wmt/wmt16/commit/3923157a85dd2f15031c2b4657a7ba7193237544"),
    "wmt/wmt14": ("parquet ('Formats: parquet' badge); only the parquet-converter export "
                  "fr-en/{train,test}/0000.parquet seen, no 'Delete loading script' commit seen (wmt15 and "
                  "wmt17 have one: 2713a3f, 4d4005c)", "expected (badge); main not seen",
                  SEEN + HF + "wmt/wmt14/blob/refs%2Fconvert%2Fparquet/fr-en/test/0000.parquet"),
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
    # Okapi (Lai et al. 2023), Alexandra Institute's copies
    "alexandrainst/m_arc": ("JSON-lines data/<lang>/{train,val,test}.jsonl ('Formats: json'); tree: data/, "
                            "README.md, no script", "yes",
                            SEEN + HF + "alexandrainst/m_arc/tree/fccba636dd033b73f846c5e1c678364b124cc59e ('Add en, "
                            "is, nb'), " + HF + "alexandrainst/m_arc/tree/7d0870e28f22de1959b0572abb1a0edb38c40253/data/en"),
    "alexandrainst/m_hellaswag": ("JSON-lines data files ('Formats: json' badge; commits 3837833 'fix: Issues "
                                  "with JSONL data features', 9d31dc9 'feat: Add en, is, nb back again')", "yes",
                                  SEEN + HF + "alexandrainst/m_hellaswag/commits/main"),
    "alexandrainst/m_mmlu": ("JSON-lines under data/ ('Formats: json'); tree: data/, .gitattributes, README.md, "
                             "no script", "yes",
                             SEEN + HF + "alexandrainst/m_mmlu/tree/c343b0e0a73391b5c78d87aa409f60e77b1ba0fc"),
    "alexandrainst/m_truthfulqa": ("JSON-lines data/<lang>/val.jsonl ('Formats: json')", "yes",
                                   SEEN + HF + "alexandrainst/m_truthfulqa/tree/main/data/ro"),
    "LumiOpen/arc_challenge_mt": ("JSON-lines <lang>/{train,validation,test}.jsonl ('Formats: json')", "yes",
                                  SEEN + HF + "LumiOpen/arc_challenge_mt/tree/main/da (commit 8c74042), "
                                  "tree/main/bg and /cs (commit 1b3b219)"),
    "CohereForAI/Global-MMLU": ("parquet <lang>/{dev,test}-00000-of-00001.parquet, README configs "
                                "(path zh/test-* ...); the repository now redirects to CohereLabs/Global-MMLU",
                                "yes", SEEN + HF + "CohereForAI/Global-MMLU/tree/87bb13b7b76b69bdbd928eeb0231bc8f5168e0f7/ko, "
                                + HF + "CohereForAI/Global-MMLU/commit/074b5c45588de30d5681999dee065479401a01ed"),
    "CohereForAI/include-base-44": ("parquet <Language>/test-00000-of-00001.parquet ('Formats: parquet'); now "
                                    "CohereLabs/include-base-44", "yes",
                                    SEEN + HF + "CohereForAI/include-base-44/commits/main/German/test-00000-of-00001.parquet"),
    "facebook/belebele": ("JSON-lines under data/ ('Formats: json'), README configs one per language (PR #6, "
                          "c25c4d7); the old viewer script moved to unused/belebele.py (not the root)", "yes",
                          SEEN + HF + "facebook/belebele/tree/c25c4d7bfbc5de244583947ba230fc4ee93d4a89"),
    "facebook/xnli": ("parquet <lang>/{train,validation,test}-00000-of-00001.parquet (HF staff, 'Convert dataset "
                      "to Parquet (#10)', b8dd5d7); tree: 16 folders, README, no script", "yes",
                      SEEN + HF + "facebook/xnli/tree/b8dd5d7af51114dbda02c0e3f6133f332186418e"),
    "mrlbenchmarks/global-piqa-nonparallel": (
        "not seen (only a README blame on a mirror, 30 kB); the task was added and updated by its authors in "
        "2025-26 (lm-eval PRs #3792, #3816), after datasets 4", "unverified",
        "searched " + HF + "mrlbenchmarks/global-piqa-nonparallel; github.com/EleutherAI/lm-evaluation-harness/pull/3792"),
    "jumelet/multiblimp": ("CSV data files ('Formats: csv' badge); tree not seen", "expected (badge)",
                           SEEN + HF + "jumelet/multiblimp/discussions/4"),
    "openai/MMMLU": ("CSV test/mmlu_<LANG>.csv ('Formats: csv'; 64d5b3a 'Upload 14 files')", "yes",
                     SEEN + HF + "openai/MMMLU/blob/main/test/mmlu_DE-DE.csv"),
    "li-lab/MMLU-ProX": ("parquet <lang>/{validation,test}-00000-of-00001.parquet ('Formats: parquet'; "
                         "c3c7427 '[version2] update test split of cs')", "yes",
                         SEEN + HF + "li-lab/MMLU-ProX/tree/main/cs"),
    "google-research-datasets/paws-x": ("parquet per language (HF conversion: commit c048ed5 'Add es data files' "
                                        "adds es/{train,validation,test}-00000-of-00001.parquet and README configs; "
                                        "the removal of paws-x.py not seen)", "expected",
                                        SEEN + HF + "paws-x/commit/c048ed55edd45940c529b4e3557ed9af1b312824"),
    "EleutherAI/lambada_multilingual_stablelm": (
        "not seen; its source, marcob/lambada_multilingual, has main = loading script lambada_multilingual.py + "
        "data/lambada_test_<lang>.jsonl, and lm-eval's PR adding these tasks (#1897, 2024-05-28) ran them with "
        "--trust_remote_code", "uncertain (lambada_openai_mt_stablelm_nl/_pt read it): not if it carries a "
        "lambada_multilingual_stablelm.py",
        "searched " + HF + "EleutherAI/lambada_multilingual_stablelm (no page); " + SEEN + HF
        + "marcob/lambada_multilingual/tree/main (7a8deab); github.com/EleutherAI/lm-evaluation-harness/pull/1897"),
    "allenai/ai2_arc": ("parquet ARC-Challenge/{train,validation,test}-* with README configs", "yes",
                        SEEN + HF + "allenai/ai2_arc/blob/e41544f1cce95e1e671a8c93438616372ad49fd4/README.md"),
    "Rowan/hellaswag": (
        "loading script hellaswag.py + dataset_infos.json on main (6002345, 18 commits, no data files); the "
        "parquet conversion (data/*.parquet + configs, 9c75cc0; 'Delete loading script' 049e808) sits in PR #7, "
        "listed open", "uncertain (the English `hellaswag` cell reads it): not from the main seen here; a later report (sglang PR #39481, 2026-09-14) "
        "says load_dataset('Rowan/hellaswag', split='validation') returns 10042 rows, datasets version not stated",
        SEEN + HF + "Rowan/hellaswag/tree/main, " + HF + "Rowan/hellaswag/tree/049e80830aedaee63cd025622acf83822eb46553, "
        + HF + "Rowan/hellaswag/discussions; " + SCRIPT_CHECK),
    "cais/mmlu": ("parquet per subject <subject>/mmlu-{dev,validation,test}.parquet ('Formats: parquet'; "
                  "4814eb2 'rename parquet files')", "yes",
                  SEEN + HF + "cais/mmlu/blob/1f6eb2a15aee1e81cb8f8a0276408c0e670c29a0/machine_learning/mmlu-test.parquet"),
    "truthfulqa/truthful_qa": ("parquet with README configs generation/multiple_choice (HF staff, 5875e4e "
                               "'Convert dataset to Parquet')", "yes",
                               SEEN + HF + "truthfulqa/truthful_qa/commit/5875e4e70c02cd3979dc842afe3481b7f6dd45e4"),
    # Basque (HiTZ), Catalan (Projecte Aina), Galician (Proxecto Nos) benches
    "HiTZ/PAWS-eu": ("JSON-lines paws-x.eu.test.jsonl, README configs data_files", "yes",
                     SEEN + HF + "HiTZ/PAWS-eu/blob/main/README.md (cc64e83)"),
    "HiTZ/XCOPA-eu": ("JSON-lines xcopa_{validation,test}.jsonl + README ('Formats: json'), no script", "yes",
                      SEEN + HF + "HiTZ/XCOPA-eu/tree/main (053b5d4)"),
    "HiTZ/xnli-eu": ("tab-separated xnli.{dev,test}.eu[.mt, .native].tsv + README configs ('Formats: csv'), "
                     "no script", "yes", SEEN + HF + "HiTZ/xnli-eu/tree/c130a23f9ed46424da4a6c7fe53ddc234c3aa2e2"),
    "projecte-aina/PAWS-ca": ("parquet data/{train,...}-00000-of-00001.parquet ('Formats: parquet'; 07e5ad3 "
                              "'Upload dataset'); an old script data/PAWS-ca.py (59e99cb), not at the root",
                              "yes", SEEN + HF + "projecte-aina/PAWS-ca/commits/main/data/train-00000-of-00001.parquet"),
    "projecte-aina/xnli-ca": ("parquet ('Formats: parquet'; 'Upload dataset' 2a2820f, 132d0f4 on main); an old "
                              "xnli_ca.py from 2023 whose name is not the repository's (xnli-ca), so "
                              "datasets does not refuse it", "yes",
                              SEEN + HF + "projecte-aina/xnli-ca/commits/eab4e62e8bf3da40611c78637974f1eb3c967353"),
    "projecte-aina/xstorycloze_ca": ("parquet ca/{train,eval}-00000-of-00001.parquet (PR #1 'Convert dataset to "
                                     "Parquet' 75b6005 deleted the loading script)", "yes",
                                     SEEN + HF + "projecte-aina/xstorycloze_ca/tree/main (4d5f283)"),
    "proxectonos/PAWS-gl": ("tab-separated paws_gl_test.tsv ('Formats: csv')", "yes",
                            SEEN + HF + "proxectonos/PAWS-gl/blob/9b2054b899bed34416a4b182e1d4775258546e7a/paws_gl_test.tsv"),
    "proxectonos/belebele_gl": ("JSON-lines belebele_glg_Latn.jsonl ('Formats: json')", "yes",
                                SEEN + HF + "proxectonos/belebele_gl/commits/main"),
    "proxectonos/truthfulqa_gl": ("parquet with README configs (ba8d545 'Added parquet version', 1f70b75 'Add "
                                  "configs to README.md'; 'Formats: parquet')", "yes",
                                  SEEN + HF + "proxectonos/truthfulqa_gl/commits/main"),
    "proxectonos/xnli_gl": ("tab-separated data files ('Formats: csv' badge); main tree not seen", "expected (badge)",
                            SEEN + HF + "proxectonos/xnli_gl/tree/refs%2Fconvert%2Fparquet"),
    "proxectonos/xstorycloze_gl": ("tab-separated XStoryCloze_{train,test}_gl.tsv + README ('Formats: csv')", "yes",
                                   SEEN + HF + "proxectonos/xstorycloze_gl/tree/main (81dafad)"),
}
"""What each referenced hub dataset is stored as (and so whether the installed `datasets`,
which runs no loading scripts, reads it)."""


def unsettled() -> dict[str, str]:
    """Datasets whose loading with the installed `datasets` was not established (neither "yes" nor a
    recorded "no") -> what was recorded."""
    return {name: loads for name, (_, loads, _) in DATASETS.items() if not loads.startswith(("yes", "no"))}


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
    open_ = unsettled()
    rows += ["", f"Not established from here ({len(open_)} of {len(DATASETS)}; a run that finds one broken fails "
             "those cells alone): " + ", ".join(f"{name} ({loads.split(':')[0].split(' (')[0]})"
                                                for name, loads in open_.items()) + "."]
    return (f"<!-- generated by `python -m occi.eval.suites`: do not edit -->\n# Benchmark coverage per language\n\n"
            f"Families: " + ", ".join(f"{f} = {name} ({shots}-shot, {metric})"
                                      for f, (name, shots, metric) in languages.BENCHMARKS.items())
            + ". The `*_eu20` and `sib200` families are occi's task folders (eval/tasks/occi_eu20, "
            "eval/tasks/occi_sib200) for benchmarks published by others; all others are lm-eval 0.4.13's own "
            "tasks. `upstream` counts a language's lm-eval families, `all` adds occi's task folders.\n\n" + markdown() + "\n\n## Datasets\n\n" + "\n".join(rows) + "\n")


def plot(path: Path, codes: list[str] | None = None) -> Path:
    """languages x families as a PNG: a filled square where the family exists."""
    import matplotlib  # loads matplotlib: only when used

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # loads matplotlib: only when used

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
